//! Times the SQLite catalog: bulk add of generated items, then searches and streaming.
//!
//! cargo bench --bench catalog_sqlite -- build N FILE   (generate N items, add them)
//! cargo bench --bench catalog_sqlite -- query FILE     (searches; peak memory of this run)
//!
//! Items: footprints in UTM zones (1, 2, 31, 32, 59, 60, north and south), polar
//! stereographic (EPSG:3413, 3031) and geographic CRSs, some across 180°; start times
//! over ten years; five properties.

use std::time::Instant;

use gridstore::catalog::sqlite::SqliteCatalog;
use gridstore::catalog::{
    Area, Catalog, Day, Footprint, Item, PropertyFilter, Search, TimeRange, Value,
};

fn rect(w: f64, s: f64, e: f64, n: f64) -> String {
    format!("POLYGON(({w} {s},{e} {s},{e} {n},{w} {n},{w} {s}))")
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn item(rng: &mut Rng, k: u64) -> Item {
    let t0 = 1_420_070_400_000_000i64; // 2015-01-01
    let start = t0 + (rng.next() * 3652.0 * 86_400e6) as i64;
    let (crs, wkt) = match k % 10 {
        0..=5 => {
            let zone = [1, 2, 31, 32, 59, 60][(rng.next() * 6.0) as usize];
            let south = rng.next() < 0.5;
            let (x, y) = (100_000.0 + rng.next() * 700_000.0, 1e6 + rng.next() * 7e6);
            let epsg = if south { 32700 } else { 32600 } + zone;
            (
                format!("EPSG:{epsg}"),
                rect(x, y, x + 110_000.0, y + 110_000.0),
            )
        }
        6 => {
            let (x, y) = (-3e6 + rng.next() * 5.5e6, -3e6 + rng.next() * 5.5e6);
            ("EPSG:3413".to_string(), rect(x, y, x + 5e5, y + 5e5))
        }
        7 => {
            let (x, y) = (-3e6 + rng.next() * 5.5e6, -3e6 + rng.next() * 5.5e6);
            ("EPSG:3031".to_string(), rect(x, y, x + 5e5, y + 5e5))
        }
        _ => {
            let (w, s) = (-180.0 + rng.next() * 359.0, -70.0 + rng.next() * 140.0);
            (
                "EPSG:4326".to_string(),
                rect(w, s, w + 1.0 + rng.next(), s + 1.0),
            )
        }
    };
    let mut properties = std::collections::BTreeMap::new();
    properties.insert(
        "eo:cloud_cover".into(),
        Value::Float((rng.next() * 1000.0).round() / 10.0),
    );
    properties.insert("orbit".into(), Value::Int((rng.next() * 200.0) as i64));
    properties.insert(
        "platform".into(),
        Value::String(["s2a", "s2b", "l8", "l9"][(rng.next() * 4.0) as usize].into()),
    );
    properties.insert("processed".into(), Value::Datetime(start + 86_400_000_000));
    properties.insert("quality".into(), Value::Float(rng.next()));
    Item {
        id: format!("item-{k:08}"),
        collection: ["c1", "c2", "c3"][(k % 3) as usize].into(),
        start_us: start,
        end_us: start + 1,
        footprint: Footprint::from_wkt(&crs, &wkt).expect("footprint"),
        properties,
        extra: serde_json::Value::Null,
        bands: serde_json::Value::Null,
        href: None,
    }
}

fn build(n: u64, path: &str) {
    let _ = std::fs::remove_file(path);
    let mut cat = SqliteCatalog::create(path.as_ref()).unwrap();
    let mut rng = Rng(0x2545f4914f6cdd1d);
    let (mut make, mut add) = (0.0, 0.0);
    let mut k = 0;
    while k < n {
        let t = Instant::now();
        let batch: Vec<Item> = (k..(k + 10_000).min(n))
            .map(|i| item(&mut rng, i))
            .collect();
        make += t.elapsed().as_secs_f64();
        let t = Instant::now();
        cat.add_batch(&batch).unwrap();
        add += t.elapsed().as_secs_f64();
        k += batch.len() as u64;
    }
    let size = std::fs::metadata(path).unwrap().len() as f64 / 1e6;
    println!("items {n}: footprints {make:.1} s, add_batch {add:.1} s, file {size:.0} MB");
}

/// Runs a search twice: the first run also makes the coordinate transformations it needs
/// (kept for later searches of the same process), the second shows a warm search.
fn timed(cat: &dyn Catalog, name: &str, search: Search) {
    let t = Instant::now();
    let n = count(cat, &search);
    let cold = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    count(cat, &search);
    let warm = t.elapsed().as_secs_f64() * 1e3;
    println!("{name}: {n} items in {cold:.1} ms (again: {warm:.1} ms)");
}

/// Reads every result, failing on errors.
fn count(cat: &dyn Catalog, search: &Search) -> u64 {
    let all = cat.search(search).unwrap();
    all.map(|r| r.map(|_| 1u64))
        .sum::<gridstore::Result<u64>>()
        .unwrap()
}

fn us(text: &str) -> i64 {
    gridstore::catalog::when::parse_instant(text).unwrap()
}

fn query(path: &str) {
    let cat = SqliteCatalog::open(path.as_ref()).unwrap();
    let month = TimeRange {
        start: Some(us("2020-06-01")),
        end: Some(us("2020-07-01")),
    };
    timed(
        &cat,
        "box across 180°, one month",
        Search {
            area: Some(Area::Bbox {
                bbox: [170.0, -40.0, -170.0, 10.0],
                crs: None,
            }),
            time: Some(month),
            ..Default::default()
        },
    );
    timed(
        &cat,
        "polygon in EPSG:3413, one month",
        Search {
            area: Some(Area::Polygon {
                wkt: rect(-5e5, -5e5, 5e5, 5e5),
                crs: Some("EPSG:3413".into()),
            }),
            time: Some(month),
            ..Default::default()
        },
    );
    timed(
        &cat,
        "local day (Europe/Amsterdam)",
        Search {
            day: Some(Day::parse("2020-03-29", "Europe/Amsterdam").unwrap()),
            ..Default::default()
        },
    );
    timed(
        &cat,
        "property filter, one month",
        Search {
            properties: vec![PropertyFilter::parse("eo:cloud_cover < 5").unwrap()],
            time: Some(month),
            ..Default::default()
        },
    );
    let t = Instant::now();
    let n = count(&cat, &Search::default());
    println!(
        "stream all in time order: {n} items in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let e = cat.extent(&[], None).unwrap();
    println!(
        "extent: {} items in {:.2} ms",
        e.count,
        t.elapsed().as_secs_f64() * 1e3
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(l) = status.lines().find(|l| l.starts_with("VmHWM")) {
        println!(
            "peak memory of the query run: {}",
            l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["build", n, path] => build(n.parse().expect("N"), path),
        ["query", path] => query(path),
        _ => eprintln!("usage: catalog_sqlite build N FILE | query FILE"),
    }
}
