//! The conformance suite every catalog backend passes: the same checks, each run on a
//! fresh, empty catalog. Spatial results are compared with a brute-force computation over
//! all items (OGR intersects on the EPSG:4326 parts of every item, a different test from
//! the backends' exact one in the item's CRS), times and properties with the rules
//! evaluated directly, and the notable cases also with hand-written expectations.
//!
//! Use from an integration test:
//! ```ignore
//! for (name, check) in gridstore::catalog::conformance::CHECKS {
//!     check(&mut *make_empty_catalog());
//! }
//! ```
//! Each check panics with a message on failure.

use std::collections::BTreeMap;

use serde_json::json;

use super::footprint::{Area, Footprint, PreparedArea};
use super::item::{Item, Value};
use super::query::{Order, PropertyFilter, ResumeToken, Search};
use super::when::{parse_instant, Day, TimeRange, HOUR_US};
use super::Catalog;

/// A check of the suite: runs on an empty catalog, panics on failure.
pub type Check = fn(&mut dyn Catalog);

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("add_search_remove", add_search_remove),
    ("antimeridian", antimeridian),
    ("poles", poles),
    ("local_days_across_dst", local_days_across_dst),
    (
        "solar_days_near_the_date_line",
        solar_days_near_the_date_line,
    ),
    ("property_filters", property_filters),
    ("nested_data_kept", nested_data_kept),
    ("streaming_order_and_resume", streaming_order_and_resume),
    (
        "limits_met_past_dropped_candidates",
        limits_met_past_dropped_candidates,
    ),
    ("narrow_time_or_narrow_area", narrow_time_or_narrow_area),
    ("extent_follows_writes", extent_follows_writes),
    ("bulk_batches_and_replacement", bulk_batches_and_replacement),
    (
        "random_queries_match_brute_force",
        random_queries_match_brute_force,
    ),
];

/// Runs every check, each on a fresh catalog from `make`.
pub fn run_all(make: &mut dyn FnMut() -> Box<dyn Catalog>) {
    for (name, check) in CHECKS {
        eprintln!("catalog conformance: {name}");
        check(&mut *make());
    }
}

/// Two handles on one catalog: while `reader` streams a search (in time order, and by
/// area), `writer` adds items again (one at its time with new data, one moved later, one
/// moved earlier) and removes one. The item added again at its time comes once, with its
/// new data; the removed one does not come; none comes twice or out of time order; the
/// others come once each.
pub fn writes_during_a_search(reader: &dyn Catalog, writer: &mut dyn Catalog) {
    let t0 = us("2020-01-01T00:00:00Z");
    let at = |i: i64| t0 + i * HOUR_US;
    let items: Vec<Item> = (0..2500)
        .map(|i| {
            let wkt = rect(0.0, 0.0, 1.0, 1.0);
            item(
                "w",
                &format!("k{i:04}"),
                "EPSG:4326",
                &wkt,
                at(i),
                at(i) + 1,
            )
        })
        .collect();
    add(writer, &items);
    for area in [None, bbox(-1.0, -1.0, 2.0, 2.0)] {
        let search = Search {
            area: area.clone(),
            ..Default::default()
        };
        let mut stream = reader.search(&search).unwrap();
        let mut seen: Vec<Item> = stream.by_ref().take(10).map(|r| r.unwrap()).collect();
        let mut same = items[1500].clone();
        same.properties.insert("v".into(), Value::Int(2));
        let mut later = items[2000].clone();
        (later.start_us, later.end_us) = (at(3000), at(3000) + 1);
        let mut earlier = items[1800].clone();
        (earlier.start_us, earlier.end_us) = (at(-1), at(-1) + 1);
        add(writer, &[same, later, earlier]);
        writer.remove("w", Some(&["k1900".to_string()])).unwrap();
        seen.extend(stream.map(|r| r.unwrap()));
        let ids: Vec<&str> = seen.iter().map(|i| i.id.as_str()).collect();
        let what = format!("area {area:?}");
        let count = |id: &str| ids.iter().filter(|i| **i == id).count();
        assert!(
            ids.iter().all(|id| count(id) == 1),
            "{what}: an item came twice"
        );
        let in_order = seen.windows(2).all(|w| w[0].start_us <= w[1].start_us);
        assert!(in_order, "{what}: an item came out of time order");
        let k1500 = seen.iter().find(|i| i.id == "k1500");
        let v = k1500.and_then(|i| i.properties.get("v"));
        assert_eq!(v, Some(&Value::Int(2)), "{what}: k1500 with its new data");
        assert_eq!(count("k1900"), 0, "{what}: the removed item came");
        let others: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !["k1800", "k2000"].contains(id))
            .collect();
        let want: Vec<String> = (0..2500)
            .filter(|i| ![1800, 1900, 2000].contains(i))
            .map(|i| format!("k{i:04}"))
            .collect();
        assert_eq!(others, want, "{what}: the items not moved, in time order");
        add(writer, &items[1500..2001]);
    }
}

/// UTC microseconds of an ISO 8601 instant.
pub fn us(text: &str) -> i64 {
    parse_instant(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// An item with a footprint given as WKT in a CRS, and no properties.
pub fn item(collection: &str, id: &str, crs: &str, wkt: &str, start: i64, end: i64) -> Item {
    Item {
        id: id.into(),
        collection: collection.into(),
        start_us: start,
        end_us: end,
        footprint: Footprint::from_wkt(crs, wkt)
            .unwrap_or_else(|e| panic!("footprint {wkt} in {crs}: {e}")),
        properties: BTreeMap::new(),
        extra: serde_json::Value::Null,
        bands: serde_json::Value::Null,
        href: None,
    }
}

/// A WKT rectangle.
pub fn rect(w: f64, s: f64, e: f64, n: f64) -> String {
    format!("POLYGON(({w} {s},{e} {s},{e} {n},{w} {n},{w} {s}))")
}

/// "collection/id" of each result, failing on errors.
fn found(cat: &dyn Catalog, search: &Search) -> Vec<String> {
    cat.search(search)
        .unwrap_or_else(|e| panic!("search {search:?}: {e}"))
        .map(|r| r.unwrap_or_else(|e| panic!("search {search:?}: {e}")))
        .map(|i| format!("{}/{}", i.collection, i.id))
        .collect()
}

/// What a search must return, computed item by item: the 4326 parts of footprint and
/// query intersected by OGR, time overlap, day and property rules evaluated directly.
pub fn brute_force(items: &[Item], search: &Search) -> Vec<String> {
    let area = search
        .area
        .as_ref()
        .map(|a| PreparedArea::new(a).expect("query area"));
    let time = search.time.unwrap_or_default();
    let mut hits: Vec<&Item> = items
        .iter()
        .filter(|i| search.collections.is_empty() || search.collections.contains(&i.collection))
        .filter(|i| time.overlaps(i.start_us, i.end_us))
        .filter(|i| {
            search.day.as_ref().is_none_or(|d| {
                d.matches(i.start_us, i.end_us, i.footprint.centroid_lon)
                    .unwrap()
            })
        })
        .filter(|i| search.properties.iter().all(|p| p.matches(i)))
        .filter(|i| {
            area.as_ref()
                .is_none_or(|a| i.footprint.intersects_in_wgs84(a).unwrap())
        })
        .collect();
    hits.sort_by(|a, b| {
        (a.start_us, &a.collection, &a.id).cmp(&(b.start_us, &b.collection, &b.id))
    });
    if search.order == Order::Desc {
        hits.reverse();
    }
    let hits = hits
        .into_iter()
        .filter(|i| search.after.as_ref().is_none_or(|t| t.precedes(i)));
    let limit = search.limit.map_or(usize::MAX, |l| l as usize);
    hits.take(limit)
        .map(|i| format!("{}/{}", i.collection, i.id))
        .collect()
}

fn add(cat: &mut dyn Catalog, items: &[Item]) {
    cat.add_batch(items)
        .unwrap_or_else(|e| panic!("add_batch: {e}"));
}

/// Checks a search against the brute force, and returns its results.
fn agree(cat: &dyn Catalog, items: &[Item], search: &Search) -> Vec<String> {
    let got = found(cat, search);
    let want = brute_force(items, search);
    assert_eq!(got, want, "search {search:?}");
    got
}

fn bbox(w: f64, s: f64, e: f64, n: f64) -> Option<Area> {
    Some(Area::Bbox {
        bbox: [w, s, e, n],
        crs: None,
    })
}

fn add_search_remove(cat: &mut dyn Catalog) {
    let t = us("2024-05-01T10:00:00Z");
    let items = vec![
        item(
            "a",
            "x1",
            "EPSG:4326",
            &rect(5.0, 50.0, 6.0, 51.0),
            t,
            t + 1,
        ),
        item(
            "a",
            "x2",
            "EPSG:32631",
            &rect(600000.0, 5500000.0, 700000.0, 5600000.0),
            t + HOUR_US,
            t + 2 * HOUR_US,
        ),
        item(
            "b",
            "x1",
            "EPSG:4326",
            &rect(-10.0, 40.0, -9.0, 41.0),
            t - HOUR_US,
            t,
        ),
    ];
    add(cat, &items);
    assert_eq!(found(cat, &Search::default()), ["b/x1", "a/x1", "a/x2"]);
    assert_eq!(cat.collections().unwrap(), ["a", "b"]);
    let only_a = Search {
        collections: vec!["a".into()],
        ..Default::default()
    };
    assert_eq!(agree(cat, &items, &only_a), ["a/x1", "a/x2"]);
    assert_eq!(cat.count(&only_a).unwrap(), 2);
    // EPSG:32631 at x 600-700 km, y 5500-5600 km is about 4.4°E, 49.6°N: not x1's box.
    let near_x2 = Search {
        area: bbox(4.0, 49.0, 4.9, 50.5),
        ..Default::default()
    };
    assert_eq!(agree(cat, &items, &near_x2), ["a/x2"]);
    assert_eq!(
        cat.remove("a", Some(&["x1".into(), "nope".into()]))
            .unwrap(),
        1
    );
    assert_eq!(found(cat, &Search::default()), ["b/x1", "a/x2"]);
    assert_eq!(cat.remove("b", None).unwrap(), 1);
    assert_eq!(cat.collections().unwrap(), ["a"]);
    let got = cat
        .search(&Search::default())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        got.footprint, items[1].footprint,
        "the footprint comes back as stored"
    );
    assert_eq!(
        (got.start_us, got.end_us),
        (items[1].start_us, items[1].end_us)
    );
}

/// Items near 180°: UTM zones 1 and 60 (both crossing it), EPSG:4326 boxes crossing it
/// (given with longitudes past 180), and ones near but not across it.
fn antimeridian_items() -> Vec<Item> {
    let t = us("2024-01-01T00:00:00Z");
    vec![
        item(
            "am",
            "utm60",
            "EPSG:32760",
            &rect(700000.0, 8200000.0, 900000.0, 8400000.0),
            t,
            t + 1,
        ),
        item(
            "am",
            "utm1",
            "EPSG:32701",
            &rect(100000.0, 8200000.0, 300000.0, 8400000.0),
            t,
            t + 1,
        ),
        item(
            "am",
            "geo-across",
            "EPSG:4326",
            &rect(179.0, -20.0, 181.0, -10.0),
            t,
            t + 1,
        ),
        item(
            "am",
            "geo-west",
            "EPSG:4326",
            &rect(170.0, -20.0, 175.0, -10.0),
            t,
            t + 1,
        ),
        item(
            "am",
            "geo-east",
            "EPSG:4326",
            &rect(-175.0, -20.0, -170.0, -10.0),
            t,
            t + 1,
        ),
        item(
            "am",
            "greenwich",
            "EPSG:4326",
            &rect(-1.0, -20.0, 1.0, -10.0),
            t,
            t + 1,
        ),
        // UTM 60 north of the others, so it is only found by boxes reaching 30°S+.
        item(
            "am",
            "utm60-north",
            "EPSG:32660",
            &rect(700000.0, 3300000.0, 900000.0, 3500000.0),
            t,
            t + 1,
        ),
    ]
}

fn antimeridian(cat: &mut dyn Catalog) {
    let items = antimeridian_items();
    add(cat, &items);
    for it in &items[..3] {
        assert!(
            it.footprint.boxes.len() == 2,
            "{} is cut at 180°: {:?}",
            it.id,
            it.footprint.boxes
        );
        let b = it.footprint.bbox_4326();
        assert!(
            b[0] > b[2],
            "{}: the bbox of a footprint across 180° has west > east: {b:?}",
            it.id
        );
    }
    let search = |area| Search {
        area,
        ..Default::default()
    };
    // Just east of 180° (179.9°W): the three items across it, not the ones beside it.
    let across = agree(cat, &items, &search(bbox(-179.95, -16.0, -179.9, -15.0)));
    assert_eq!(across, ["am/geo-across", "am/utm1", "am/utm60"]);
    let across = agree(cat, &items, &search(bbox(179.9, -16.0, 179.95, -15.0)));
    assert_eq!(across, ["am/geo-across", "am/utm1", "am/utm60"]);
    // A box across 180° (west > east) finds those and the neighbours it reaches, and not
    // Greenwich (the mistake that reads it as 179°W..179°E).
    let wide = agree(cat, &items, &search(bbox(172.0, -19.0, -172.0, -11.0)));
    assert_eq!(
        wide,
        [
            "am/geo-across",
            "am/geo-east",
            "am/geo-west",
            "am/utm1",
            "am/utm60"
        ]
    );
    // The same box read the other way round (179°W to 179°E) finds only the rest.
    let other = agree(cat, &items, &search(bbox(-172.0, -19.0, 172.0, -11.0)));
    assert_eq!(other, ["am/geo-east", "am/geo-west", "am/greenwich"]);
    // A polygon in UTM 60 across 180° finds what it covers on both sides.
    let poly = Some(Area::Polygon {
        wkt: rect(750000.0, 8250000.0, 1100000.0, 8300000.0),
        crs: Some("EPSG:32760".into()),
    });
    let hits = agree(cat, &items, &search(poly));
    assert!(
        hits.contains(&"am/utm1".to_string()) && hits.contains(&"am/geo-across".to_string()),
        "{hits:?}"
    );
    assert!(!hits.contains(&"am/greenwich".to_string()));
}

fn poles(cat: &mut dyn Catalog) {
    let t = us("2024-01-01T00:00:00Z");
    let items = vec![
        item(
            "p",
            "arctic-pole",
            "EPSG:3413",
            &rect(-1e6, -1e6, 1e6, 1e6),
            t,
            t + 1,
        ),
        item(
            "p",
            "arctic-off",
            "EPSG:3413",
            &rect(1.5e6, -5e5, 2.5e6, 5e5),
            t,
            t + 1,
        ),
        item(
            "p",
            "antarctic-pole",
            "EPSG:3031",
            &rect(-1e6, -1e6, 1e6, 1e6),
            t,
            t + 1,
        ),
        item(
            "p",
            "svalbard",
            "EPSG:4326",
            &rect(10.0, 77.0, 20.0, 80.0),
            t,
            t + 1,
        ),
        item(
            "p",
            "geo-cap",
            "EPSG:4326",
            &rect(-180.0, 88.0, 180.0, 90.0),
            t,
            t + 1,
        ),
    ];
    add(cat, &items);
    for (i, south) in [(0, false), (2, true)] {
        let b = items[i].footprint.bbox_4326();
        let pole = if south { b[1] } else { b[3] };
        assert!(
            (pole.abs() - 90.0).abs() < 1e-9,
            "{}: its 4326 parts reach the pole: {b:?}",
            items[i].id
        );
        assert!(
            b[0] <= -180.0 + 1e-9 && b[2] >= 180.0 - 1e-9,
            "{}: all longitudes: {b:?}",
            items[i].id
        );
    }
    let search = |area| Search {
        area,
        ..Default::default()
    };
    // Near the North Pole at any longitude.
    for lon in [-179.0, -90.0, 0.0, 45.0, 135.0, 179.5] {
        let hits = agree(cat, &items, &search(bbox(lon, 89.0, lon + 0.4, 89.5)));
        assert_eq!(hits, ["p/arctic-pole", "p/geo-cap"], "at {lon}°");
    }
    let hits = agree(cat, &items, &search(bbox(-60.0, -89.9, -59.0, -89.8)));
    assert_eq!(hits, ["p/antarctic-pole"]);
    // A polygon in EPSG:3413 around the pole.
    let around = Some(Area::Polygon {
        wkt: rect(-3e5, -3e5, 3e5, 3e5),
        crs: Some("EPSG:3413".into()),
    });
    assert_eq!(
        agree(cat, &items, &search(around)),
        ["p/arctic-pole", "p/geo-cap"]
    );
    // A polygon in EPSG:3413 over Svalbard (about 15°E, 78.5°N) and the arctic box.
    let (x, y) = (1.18e6, -4.4e5);
    let _ = (x, y);
    let svalbard = Some(Area::Polygon {
        wkt: rect(4e5, -1.2e6, 9e5, -7e5),
        crs: Some("EPSG:3413".into()),
    });
    let hits = agree(cat, &items, &search(svalbard));
    assert!(hits.contains(&"p/arctic-pole".to_string()), "{hits:?}");
    // EPSG:3031 polygon off the pole finds only the antarctic item.
    let south = Some(Area::Polygon {
        wkt: rect(5e5, 5e5, 9e5, 9e5),
        crs: Some("EPSG:3031".into()),
    });
    assert_eq!(agree(cat, &items, &search(south)), ["p/antarctic-pole"]);
}

fn hourly(collection: &str, lon: f64, from: &str, hours: i64) -> Vec<Item> {
    let t0 = us(from);
    (0..hours)
        .map(|h| {
            let t = t0 + h * HOUR_US;
            let wkt = rect(lon - 0.1, 52.0, lon + 0.1, 52.2);
            item(collection, &format!("h{h:03}"), "EPSG:4326", &wkt, t, t + 1)
        })
        .collect()
}

fn local_days_across_dst(cat: &mut dyn Catalog) {
    let mut items = hourly("ams", 4.9, "2024-03-29T00:00:00Z", 96);
    items.extend(hourly("ams2", 4.9, "2024-10-25T00:00:00Z", 96));
    add(cat, &items);
    for (day, hours, first) in [
        ("2024-03-31", 23, "2024-03-30T23:00:00Z"),
        ("2024-10-27", 25, "2024-10-26T22:00:00Z"),
        ("2024-03-30", 24, "2024-03-29T23:00:00Z"),
    ] {
        let search = Search {
            day: Some(Day::parse(day, "Europe/Amsterdam").unwrap()),
            ..Default::default()
        };
        let hits = agree(cat, &items, &search);
        assert_eq!(
            hits.len(),
            hours,
            "{day} in Amsterdam has {hours} hourly items"
        );
        let first_item = cat.search(&search).unwrap().next().unwrap().unwrap();
        assert_eq!(
            first_item.start_us,
            us(first),
            "{day} starts at local midnight"
        );
    }
    // An item spanning midnight belongs to both days; the time range and the day combine.
    let span = item(
        "span",
        "night",
        "EPSG:4326",
        &rect(4.0, 52.0, 5.0, 53.0),
        us("2024-06-01T21:30:00Z"),
        us("2024-06-01T22:30:00Z"),
    );
    add(cat, std::slice::from_ref(&span));
    items.push(span);
    for day in ["2024-06-01", "2024-06-02"] {
        let search = Search {
            day: Some(Day::parse(day, "Europe/Amsterdam").unwrap()),
            ..Default::default()
        };
        assert_eq!(agree(cat, &items, &search), ["span/night"]);
    }
    let search = Search {
        day: Some(Day::parse("2024-06-02", "Europe/Amsterdam").unwrap()),
        time: Some(TimeRange::parse("../2024-06-01T21:00:00Z").unwrap()),
        ..Default::default()
    };
    assert!(found(cat, &search).is_empty());
}

fn solar_days_near_the_date_line(cat: &mut dyn Catalog) {
    let t = us("2024-01-01T13:00:00Z");
    let place = |id: &str, lon: f64| {
        item(
            "sun",
            id,
            "EPSG:4326",
            &rect(lon - 0.5, -17.0, lon + 0.5, -16.0),
            t,
            t + 1,
        )
    };
    let mut items = vec![
        place("e179", 179.0),  // 00:56 solar on 2 January
        place("w179", -179.0), // 01:04 solar on 1 January
        place("greenwich", 0.0),
    ];
    // Across 180° in UTM 60: its centroid is 179.9°E or 179.9°W, whichever side the
    // polygon's centroid falls on.
    items.push(item(
        "sun",
        "utm60",
        "EPSG:32760",
        &rect(700000.0, 8200000.0, 900000.0, 8400000.0),
        t,
        t + 1,
    ));
    add(cat, &items);
    let day = |d: &str| Search {
        day: Some(Day::parse(d, "solar").unwrap()),
        ..Default::default()
    };
    let jan2 = agree(cat, &items, &day("2024-01-02"));
    assert!(
        jan2.contains(&"sun/e179".to_string()) && !jan2.contains(&"sun/w179".to_string()),
        "{jan2:?}"
    );
    let jan1 = agree(cat, &items, &day("2024-01-01"));
    assert!(
        jan1.contains(&"sun/w179".to_string()) && jan1.contains(&"sun/greenwich".to_string()),
        "{jan1:?}"
    );
    assert!(!jan1.contains(&"sun/e179".to_string()));
    // Each item is on exactly one solar day.
    let utm = &items[3];
    let on1 = jan1.contains(&"sun/utm60".to_string());
    let on2 = jan2.contains(&"sun/utm60".to_string());
    assert!(
        on1 != on2,
        "utm60 (centroid {}°) on one day",
        utm.footprint.centroid_lon
    );
    assert!(found(cat, &day("2023-12-31")).is_empty());
    assert!(found(cat, &day("2024-01-03")).is_empty());
}

fn property_filters(cat: &mut dyn Catalog) {
    let t0 = us("2024-01-01T00:00:00Z");
    let mut items = Vec::new();
    for i in 0..40i64 {
        let mut it = item(
            "props",
            &format!("i{i:02}"),
            "EPSG:4326",
            &rect(0.0, 0.0, 1.0, 1.0),
            t0 + i,
            t0 + i + 1,
        );
        let p = &mut it.properties;
        p.insert("eo:cloud_cover".into(), Value::Float(i as f64 * 2.5));
        p.insert("orbit".into(), Value::Int(i % 7));
        p.insert(
            "platform".into(),
            Value::String(["sentinel-2a", "sentinel-2b", "landsat-9"][i as usize % 3].into()),
        );
        p.insert("created".into(), Value::Datetime(t0 + i * 86_400_000_000));
        if i % 4 == 0 {
            // The same name with another kind of value: never matches a number filter.
            p.insert("mixed".into(), Value::String(format!("{i}")));
        } else {
            p.insert("mixed".into(), Value::Int(i));
        }
        items.push(it);
    }
    add(cat, &items);
    let ops = ["<", "<=", "=", "!=", ">=", ">"];
    let values = [
        "eo:cloud_cover {} 50",
        "eo:cloud_cover {} 52.5",
        "orbit {} 3",
        "platform {} sentinel-2b",
        "platform {} \"landsat-9\"",
        "created {} 2024-01-20T00:00:00Z",
        "mixed {} 20",
        "mixed {} \"12\"",
        "absent {} 1",
    ];
    for v in values {
        for op in ops {
            let f = PropertyFilter::parse(&v.replace("{}", op)).unwrap();
            let search = Search {
                properties: vec![f],
                ..Default::default()
            };
            agree(cat, &items, &search);
        }
    }
    let parse = |t: &str| PropertyFilter::parse(t).unwrap();
    let two = Search {
        properties: vec![
            parse("eo:cloud_cover < 20"),
            parse("platform = sentinel-2a"),
        ],
        ..Default::default()
    };
    assert_eq!(found(cat, &two), ["props/i00", "props/i03", "props/i06"]);
    let mixed = Search {
        properties: vec![parse("mixed >= 36")],
        ..Default::default()
    };
    assert_eq!(found(cat, &mixed), ["props/i37", "props/i38", "props/i39"]);
    let got = cat
        .search(&Search {
            limit: Some(1),
            ..Default::default()
        })
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        got.properties, items[0].properties,
        "properties come back with their kinds"
    );
}

fn nested_data_kept(cat: &mut dyn Catalog) {
    let mut it = item("n", "deep", "EPSG:4326", &rect(0.0, 0.0, 1.0, 1.0), 0, 10);
    it.extra = json!({"processing": {"steps": [1, 2, {"name": "x", "ok": true, "none": null}], "note": "é \"q\""}});
    it.bands = json!([{"name": "b1", "data_type": "float32", "nodata": "nan", "unit": "K"}]);
    it.href = Some("/data/scene 1.tif".into());
    add(cat, std::slice::from_ref(&it));
    let got = cat
        .search(&Search::default())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(got.extra, it.extra);
    assert_eq!(got.bands, it.bands);
    assert_eq!(got.href, it.href);
    let stac = got.to_stac();
    assert_eq!(stac["properties"]["gridstore:extra"], it.extra);
    assert_eq!(stac["properties"]["start_datetime"], "1970-01-01T00:00:00Z");
}

/// A limited search whose candidates mostly fail the exact test (their boxes meet the
/// query box, their triangles do not) still returns its limit, over several pages.
fn limits_met_past_dropped_candidates(cat: &mut dyn Catalog) {
    let t0 = us("2021-06-01T00:00:00Z");
    let triangle = "POLYGON((0 0,1 0,0 1,0 0))";
    let items: Vec<Item> = (0..2400)
        .map(|i| {
            let wkt = if i % 9 == 0 {
                rect(0.0, 0.0, 1.0, 1.0)
            } else {
                triangle.to_string()
            };
            let t = t0 + i * HOUR_US;
            item(
                "lim",
                &format!("t{i:04}"),
                "EPSG:4326",
                &wkt,
                t,
                t + HOUR_US,
            )
        })
        .collect();
    add(cat, &items);
    for (limit, order) in [(1, Order::Asc), (40, Order::Desc), (150, Order::Asc)] {
        let search = Search {
            area: bbox(0.8, 0.8, 0.95, 0.95),
            limit: Some(limit),
            order,
            ..Default::default()
        };
        assert_eq!(agree(cat, &items, &search).len(), limit as usize);
    }
}

/// A wide area over a short time, and a small area over a long time, give what the brute
/// force gives (a backend may read the candidates by time or by area).
fn narrow_time_or_narrow_area(cat: &mut dyn Catalog) {
    let t0 = us("2022-01-01T00:00:00Z");
    let items: Vec<Item> = (0..800)
        .map(|i| {
            let (x, y) = ((i % 40) as f64 * 4.0 - 80.0, (i / 40) as f64 * 4.0 - 40.0);
            let t = t0 + i * 6 * HOUR_US;
            let wkt = rect(x, y, x + 3.0, y + 3.0);
            item(
                "plan",
                &format!("p{i:03}"),
                "EPSG:4326",
                &wkt,
                t,
                t + HOUR_US,
            )
        })
        .chain((0..40).map(|i| {
            // Across 180° (longitudes past it in their own CRS): boxes west > east.
            let y = (i % 20) as f64 * 4.0 - 40.0;
            let t = t0 + i * 6 * HOUR_US + 3 * HOUR_US;
            let wkt = rect(178.0, y, 182.0, y + 3.0);
            item(
                "plan",
                &format!("a{i:02}"),
                "EPSG:4326",
                &wkt,
                t,
                t + HOUR_US,
            )
        }))
        .collect();
    add(cat, &items);
    let day = |d: i64| TimeRange {
        start: Some(t0 + d * 24 * HOUR_US),
        end: Some(t0 + (d + 1) * 24 * HOUR_US),
    };
    let searches = [
        (bbox(-90.0, -50.0, 90.0, 50.0), Some(day(3))),
        (bbox(-70.0, -30.0, 10.0, 20.0), Some(day(100))),
        (bbox(-79.5, -39.5, -78.5, -38.5), None),
        (bbox(-79.5, -39.5, -74.5, -34.5), Some(day(0))),
        // Either side of 180°, and across it, over one day: fewer items in the day than
        // in the area.
        (bbox(-179.9, -50.0, -170.0, 50.0), Some(day(3))),
        (bbox(170.0, -50.0, 179.9, 50.0), Some(day(3))),
        (bbox(175.0, -50.0, -175.0, 50.0), Some(day(4))),
    ];
    for (area, time) in searches {
        for order in [Order::Asc, Order::Desc] {
            let search = Search {
                area: area.clone(),
                time,
                order,
                ..Default::default()
            };
            assert!(!agree(cat, &items, &search).is_empty(), "{search:?}");
        }
    }
}

fn streaming_order_and_resume(cat: &mut dyn Catalog) {
    // More than two pages, with many items sharing a start time, in two collections.
    let t0 = us("2020-01-01T00:00:00Z");
    let items: Vec<Item> = (0..2600)
        .map(|i| {
            let coll = if i % 2 == 0 { "s1" } else { "s2" };
            let t = t0 + (i / 5) * HOUR_US;
            item(
                coll,
                &format!("k{:04}", (i * 7919) % 2600),
                "EPSG:4326",
                &rect(0.0, 0.0, 1.0, 1.0),
                t,
                t + HOUR_US,
            )
        })
        .collect();
    for chunk in items.chunks(700) {
        add(cat, chunk);
    }
    for order in [Order::Asc, Order::Desc] {
        let all = Search {
            order,
            ..Default::default()
        };
        let full = agree(cat, &items, &all);
        assert_eq!(full.len(), 2600);
        // Page through with a limit and the token of the last item each time.
        let mut resumed = Vec::new();
        let mut after = None;
        loop {
            let search = Search {
                order,
                limit: Some(333),
                after: after.clone(),
                ..Default::default()
            };
            let page: Vec<Item> = cat.search(&search).unwrap().map(|r| r.unwrap()).collect();
            let Some(last) = page.last() else { break };
            let token = ResumeToken::after(last, order).encode();
            after = Some(ResumeToken::decode(&token).unwrap());
            resumed.extend(page.iter().map(|i| format!("{}/{}", i.collection, i.id)));
        }
        assert_eq!(
            resumed, full,
            "resuming with tokens gives the full list exactly ({order:?})"
        );
    }
    // A token of the other order is refused.
    let t = ResumeToken::after(&items[0], Order::Asc);
    let err = cat.search(&Search {
        order: Order::Desc,
        after: Some(t),
        ..Default::default()
    });
    assert!(err.is_err());
    // A time window with a token.
    let window = Search {
        time: Some(TimeRange {
            start: Some(t0 + 100 * HOUR_US),
            end: Some(t0 + 110 * HOUR_US),
        }),
        order: Order::Desc,
        after: Some(ResumeToken::after(&items[530], Order::Desc)),
        ..Default::default()
    };
    agree(cat, &items, &window);
}

fn extent_follows_writes(cat: &mut dyn Catalog) {
    let mut items = antimeridian_items();
    items.retain(|i| i.id != "greenwich" && i.id != "utm60-north");
    for (k, it) in items.iter_mut().enumerate() {
        it.start_us = us("2024-01-01T00:00:00Z") + k as i64 * HOUR_US;
        it.end_us = it.start_us + HOUR_US;
    }
    add(cat, &items);
    let e = cat.extent(&[], None).unwrap();
    assert_eq!(e.count, items.len() as u64);
    assert_eq!(
        e.time,
        Some((items[0].start_us, items.last().unwrap().end_us))
    );
    let b = e.bbox.unwrap();
    assert!(b[0] > b[2], "the extent crosses 180°: {b:?}");
    let s = cat.search_extent(&Search::default(), None).unwrap();
    assert_eq!((s.count, s.time), (e.count, e.time));
    let sb = s.bbox.unwrap();
    assert!(
        sb.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9),
        "{sb:?} {b:?}"
    );
    let one = Search {
        time: Some(TimeRange {
            start: Some(items[1].start_us),
            end: Some(items[1].end_us),
        }),
        ..Default::default()
    };
    let s = cat.search_extent(&one, Some("EPSG:32760")).unwrap();
    assert_eq!(
        (s.count, s.time),
        (1, Some((items[1].start_us, items[1].end_us)))
    );
    assert!(
        (b[0] - 170.0).abs() < 1e-6 && (b[2] + 170.0).abs() < 1e-6,
        "{b:?}"
    );
    // In UTM 60 the extent holds every footprint.
    let utm = cat
        .extent(&["am".into()], Some("EPSG:32760"))
        .unwrap()
        .bbox
        .unwrap();
    assert!(utm[0] < 700000.0 && utm[2] > 900000.0, "{utm:?}");
    // Removing the east side shrinks it.
    let east: Vec<String> = ["geo-east", "utm1", "geo-across", "utm60"]
        .map(String::from)
        .to_vec();
    assert_eq!(cat.remove("am", Some(&east)).unwrap(), 4);
    let e = cat.extent(&[], None).unwrap();
    assert_eq!(e.count, 1);
    let b = e.bbox.unwrap();
    assert!(
        (b[0] - 170.0).abs() < 1e-6 && (b[2] - 175.0).abs() < 1e-6,
        "{b:?}"
    );
    let west = items.iter().find(|i| i.id == "geo-west").unwrap();
    assert_eq!(e.time, Some((west.start_us, west.end_us)));
    cat.remove("am", None).unwrap();
    let e = cat.extent(&[], None).unwrap();
    assert_eq!((e.count, e.time, e.bbox), (0, None, None));
}

fn bulk_batches_and_replacement(cat: &mut dyn Catalog) {
    let t0 = us("2015-01-01T00:00:00Z");
    let make = |i: i64, shift: f64| {
        let lon = -170.0 + (i % 340) as f64 + shift;
        item(
            "bulk",
            &format!("{i:05}"),
            "EPSG:4326",
            &rect(lon, -5.0, lon + 0.5, -4.5),
            t0 + i * HOUR_US,
            t0 + (i + 1) * HOUR_US,
        )
    };
    let items: Vec<Item> = (0..6000).map(|i| make(i, 0.0)).collect();
    for chunk in items.chunks(2000) {
        add(cat, chunk);
    }
    assert_eq!(cat.count(&Search::default()).unwrap(), 6000);
    // Adding the same ids again replaces them: no duplicates, new footprints.
    let moved: Vec<Item> = (0..100).map(|i| make(i, 0.25)).collect();
    add(cat, &moved);
    assert_eq!(cat.count(&Search::default()).unwrap(), 6000);
    let first = cat
        .search(&Search::default())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(first.footprint, moved[0].footprint);
    assert_eq!(cat.extent(&[], None).unwrap().count, 6000);
    // A batch with one bad item adds nothing.
    let mut bad = vec![make(7000, 0.0), make(7001, 0.0)];
    bad[1].end_us = bad[1].start_us;
    assert!(cat.add_batch(&bad).is_err());
    assert_eq!(cat.count(&Search::default()).unwrap(), 6000);
}

/// A small deterministic generator (xorshift), so that failures repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.next()
    }
}

fn random_item(rng: &mut Rng, k: usize) -> Item {
    let t0 = us("2023-01-01T00:00:00Z");
    let start = t0 + (rng.range(0.0, 60.0) * 24.0) as i64 * HOUR_US;
    let end = start + (rng.range(0.0, 72.0) as i64 + 1) * HOUR_US;
    let (crs, wkt) = match k % 5 {
        0 => {
            let (w, s) = (rng.range(-180.0, 175.0), rng.range(-80.0, 75.0));
            (
                "EPSG:4326".to_string(),
                rect(w, s, w + rng.range(0.5, 6.0), s + rng.range(0.5, 5.0)),
            )
        }
        1 | 2 => {
            let zone = [1, 2, 30, 31, 59, 60][(rng.next() * 6.0) as usize % 6];
            let south = rng.next() < 0.5;
            let x = rng.range(150000.0, 750000.0);
            let y = if south {
                rng.range(1.0e6, 9.0e6)
            } else {
                rng.range(0.0, 8.0e6)
            };
            let epsg = if south { 32700 + zone } else { 32600 + zone };
            (
                format!("EPSG:{epsg}"),
                rect(x, y, x + rng.range(2e4, 3e5), y + rng.range(2e4, 3e5)),
            )
        }
        3 => {
            let (x, y) = (rng.range(-3e6, 2.5e6), rng.range(-3e6, 2.5e6));
            (
                "EPSG:3413".to_string(),
                rect(x, y, x + rng.range(1e5, 1.5e6), y + rng.range(1e5, 1.5e6)),
            )
        }
        _ => {
            let (x, y) = (rng.range(-3e6, 2.5e6), rng.range(-3e6, 2.5e6));
            (
                "EPSG:3031".to_string(),
                rect(x, y, x + rng.range(1e5, 1.5e6), y + rng.range(1e5, 1.5e6)),
            )
        }
    };
    let mut it = item(
        ["r1", "r2"][k % 2],
        &format!("g{k:04}"),
        &crs,
        &wkt,
        start,
        end,
    );
    it.properties.insert(
        "cloud".into(),
        Value::Float((rng.range(0.0, 100.0) * 10.0).round() / 10.0),
    );
    it
}

fn random_area(rng: &mut Rng, k: usize) -> Area {
    match k % 4 {
        0 => {
            let w = rng.range(-180.0, 180.0);
            let mut e = w + rng.range(1.0, 40.0);
            if e > 180.0 {
                e -= 360.0; // crosses the antimeridian
            }
            let s = rng.range(-90.0, 80.0);
            Area::Bbox {
                bbox: [w, s, e, (s + rng.range(1.0, 30.0)).min(90.0)],
                crs: None,
            }
        }
        1 => {
            let w = rng.range(165.0, 179.0);
            let s = rng.range(-70.0, 60.0);
            Area::Bbox {
                bbox: [
                    w,
                    s,
                    -180.0 + rng.range(1.0, 15.0),
                    s + rng.range(2.0, 20.0),
                ],
                crs: None,
            }
        }
        2 => {
            let (x, y) = (rng.range(-2.5e6, 2e6), rng.range(-2.5e6, 2e6));
            let crs = if rng.next() < 0.5 {
                "EPSG:3413"
            } else {
                "EPSG:3031"
            };
            Area::Polygon {
                wkt: rect(x, y, x + rng.range(2e5, 2e6), y + rng.range(2e5, 2e6)),
                crs: Some(crs.into()),
            }
        }
        _ => {
            let x = rng.range(200000.0, 700000.0);
            let y = rng.range(2.0e6, 8.0e6);
            let crs = ["EPSG:32760", "EPSG:32701", "EPSG:32631"][(rng.next() * 3.0) as usize % 3];
            Area::Polygon {
                wkt: rect(x, y, x + 4e5, y + 4e5),
                crs: Some(crs.into()),
            }
        }
    }
}

fn random_queries_match_brute_force(cat: &mut dyn Catalog) {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let items: Vec<Item> = (0..1500).map(|k| random_item(&mut rng, k)).collect();
    add(cat, &items);
    let mut nonempty = 0;
    for k in 0..80 {
        let mut search = Search {
            area: Some(random_area(&mut rng, k)),
            ..Default::default()
        };
        if k % 3 == 0 {
            let a = us("2023-01-01T00:00:00Z") + (rng.range(0.0, 50.0) * 24.0) as i64 * HOUR_US;
            search.time = Some(TimeRange {
                start: Some(a),
                end: Some(a + 10 * 24 * HOUR_US),
            });
        }
        if k % 5 == 0 {
            search
                .properties
                .push(PropertyFilter::parse("cloud < 50").unwrap());
        }
        if k % 2 == 1 {
            search.order = Order::Desc;
        }
        if !agree(cat, &items, &search).is_empty() {
            nonempty += 1;
        }
    }
    assert!(
        nonempty > 40,
        "the random queries mostly find something ({nonempty} of 80)"
    );
}
