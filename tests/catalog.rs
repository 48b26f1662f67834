//! The catalog conformance suite on the SQLite backend, and what is particular to it.

use gridstore::catalog::{conformance, sqlite::SqliteCatalog, Catalog};

fn fresh(dir: &tempfile::TempDir, name: &str) -> Box<dyn Catalog> {
    Box::new(SqliteCatalog::create(&dir.path().join(format!("{name}.sqlite"))).unwrap())
}

#[test]
fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    for (name, check) in conformance::CHECKS {
        eprintln!("conformance: {name}");
        check(&mut *fresh(&dir, name));
    }
}

#[test]
fn writes_during_a_search_on_a_second_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let mut writer = SqliteCatalog::create(&path).unwrap();
    let reader = SqliteCatalog::open(&path).unwrap();
    conformance::writes_during_a_search(&reader, &mut writer);
}

mod common;

use std::path::Path;
use std::process::Output;

use common::{failed_cleanly, python_ok, s, tmp};
use serde_json::Value as Json;

fn gridstore(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gridstore"))
        .args(args)
        .output()
        .expect("run gridstore")
}

fn ok(args: &[&str]) -> (String, String) {
    let out = gridstore(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "gridstore {args:?} failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// The items a search prints (JSON lines).
fn search(catalog: &Path, args: &[&str]) -> Vec<Json> {
    let mut all = vec!["catalog", "search", s(catalog)];
    all.extend_from_slice(args);
    ok(&all)
        .0
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn names(items: &[Json]) -> Vec<String> {
    items
        .iter()
        .map(|i| {
            let id = i["id"].as_str().unwrap();
            Path::new(id)
                .file_name()
                .map_or(id, |n| n.to_str().unwrap())
                .to_string()
        })
        .collect()
}

fn rasters(dir: &Path) -> Vec<String> {
    python_ok("catalog_rasters.py", &[s(dir)]);
    ["half", "later", "pole"]
        .iter()
        .map(|n| s(&dir.join(format!("{n}.tif"))).to_string())
        .collect()
}

#[test]
fn cli_rasters_add_search_extent_rm() {
    let dir = tmp();
    let files = rasters(dir.path());
    let cat = dir.path().join("catalog.sqlite");
    ok(&["catalog", "init", s(&cat)]);
    let mut add = vec![
        "catalog",
        "add",
        s(&cat),
        "--collection",
        "obs",
        "--batch",
        "2",
    ];
    add.extend(files.iter().map(String::as_str));
    assert!(ok(&add).0.contains("added 3 item(s)"));
    // The western half of half.tif is nodata: its footprint is the eastern half only.
    // x 500-510 km in UTM 31N at 52.3°N is about 3.00-3.15°E; 510-520 km 3.15-3.29°E.
    assert_eq!(
        names(&search(&cat, &["--bbox", "3.02,52.27,3.12,52.33"])),
        ["later.tif"]
    );
    assert_eq!(
        names(&search(&cat, &["--bbox", "3.2,52.27,3.25,52.33"])),
        ["half.tif", "later.tif"]
    );
    // The same place as a polygon in the rasters' CRS.
    let poly = "POLYGON((515000 5795000,516000 5795000,516000 5796000,515000 5795000))";
    let found = search(&cat, &["--polygon", poly, "--polygon-crs", "EPSG:32631"]);
    assert_eq!(names(&found), ["half.tif", "later.tif"]);
    let item = &found[0];
    assert_eq!(item["properties"]["proj:code"], "EPSG:32631");
    assert_eq!(item["properties"]["CLOUD"], 12.5);
    assert_eq!(item["properties"]["datetime"], "2024-03-31T00:30:00Z");
    assert_eq!(item["properties"]["bands"][0]["name"], "level");
    assert_eq!(item["properties"]["bands"][0]["data_type"], "int16");
    // Near the North Pole at any longitude: only the polar raster.
    assert_eq!(
        names(&search(&cat, &["--bbox", "-170,89,-160,90"])),
        ["pole.tif"]
    );
    assert_eq!(
        names(&search(&cat, &["--bbox", "170,85,-170,86"])),
        ["pole.tif"]
    );
    // 31 March in Amsterdam (23 h, from 30 March 23:00 UTC): half.tif, and pole.tif
    // (30 March 23:30 UTC) too; in UTC only half.tif.
    let day = |tz: &str| names(&search(&cat, &["--day", "2024-03-31", "--tz", tz]));
    assert_eq!(day("Europe/Amsterdam"), ["pole.tif", "half.tif"]);
    assert_eq!(day("UTC"), ["half.tif"]);
    assert_eq!(
        names(&search(
            &cat,
            &["--time", "2024-04-01/..", "--order", "desc"]
        )),
        ["later.tif"]
    );
    assert_eq!(
        names(&search(
            &cat,
            &["--where", "CLOUD >= 12.5", "--where", "SENSOR = abc"]
        )),
        ["half.tif"]
    );
    assert_eq!(ok(&["catalog", "search", s(&cat), "--count"]).0.trim(), "3");
    // A limit prints a resume token on stderr; --after continues exactly.
    let (first, stderr) = ok(&["catalog", "search", s(&cat), "--limit", "2"]);
    assert_eq!(first.lines().count(), 2);
    let token = stderr
        .split_whitespace()
        .nth(1)
        .expect("a token after next:");
    let rest = search(&cat, &["--after", token]);
    assert_eq!(names(&rest), ["later.tif"]);
    // Other formats.
    let (fc, _) = ok(&["catalog", "search", s(&cat), "--format", "itemcollection"]);
    let fc: Json = serde_json::from_str(&fc).unwrap();
    assert_eq!(fc["features"].as_array().unwrap().len(), 3);
    let (seq, _) = ok(&["catalog", "search", s(&cat), "--format", "geojson-seq"]);
    assert!(seq.lines().all(|l| l.starts_with('\u{1e}')) && seq.lines().count() == 3);
    // The time a search took, on stderr only.
    let (timed, stderr) = ok(&["catalog", "search", s(&cat), "--timing"]);
    assert_eq!(timed.lines().count(), 3);
    assert!(
        stderr.starts_with("searched in ") && stderr.trim_end().ends_with("ms: 3 item(s)"),
        "{stderr}"
    );
    // Extent.
    let (extent, _) = ok(&["catalog", "extent", s(&cat)]);
    let e: Json = serde_json::from_str(&extent).unwrap();
    assert_eq!(e["count"], 3);
    assert_eq!(e["time"]["start"], "2024-03-30T23:30:00Z");
    assert_eq!(e["bbox"][3].as_f64().unwrap(), 90.0);
    let (utm, _) = ok(&[
        "catalog",
        "extent",
        s(&cat),
        "--crs",
        "EPSG:32631",
        "--collection",
        "obs",
    ]);
    let u: Json = serde_json::from_str(&utm).unwrap();
    assert_eq!(u["crs"], "EPSG:32631");
    // Remove one, then the collection.
    let half = s(&std::fs::canonicalize(&files[0]).unwrap()).to_string();
    assert!(
        ok(&["catalog", "rm", s(&cat), "--collection", "obs", &half])
            .0
            .contains("removed 1")
    );
    assert_eq!(ok(&["catalog", "search", s(&cat), "--count"]).0.trim(), "2");
    ok(&["catalog", "rm", s(&cat), "--collection", "obs"]);
    let (extent, _) = ok(&["catalog", "extent", s(&cat)]);
    let e: Json = serde_json::from_str(&extent).unwrap();
    assert_eq!((e["count"].as_u64(), e["bbox"].is_null()), (Some(0), true));
}

#[test]
fn cli_stac_items_and_round_trip() {
    let dir = tmp();
    let cat = dir.path().join("stac.sqlite");
    ok(&["catalog", "init", s(&cat)]);
    // A UTM 60S footprint across 180° (proj:geometry + proj:code), and an ItemCollection
    // of two items in 4326, one cut at the antimeridian as RFC 7946 asks.
    let utm = serde_json::json!({
        "type": "Feature", "stac_version": "1.1.0", "id": "fiji", "collection": "s2",
        "geometry": null, "links": [], "assets": {"data": {"href": "s3://b/fiji.tif"}},
        "properties": {"datetime": "2024-05-01T22:00:00Z", "proj:code": "EPSG:32760",
            "proj:geometry": {"type": "Polygon", "coordinates": [[[700000, 8200000], [900000, 8200000],
                [900000, 8400000], [700000, 8400000], [700000, 8200000]]]},
            "eo:cloud_cover": 3, "processing": {"level": "L2A", "steps": [1, 2]}}
    });
    let cut = serde_json::json!({"type": "MultiPolygon", "coordinates": [
        [[[175, -20], [180, -20], [180, -10], [175, -10], [175, -20]]],
        [[[-180, -20], [-175, -20], [-175, -10], [-180, -10], [-180, -20]]]]});
    let fc = serde_json::json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "wide", "geometry": cut, "links": [], "assets": {},
         "properties": {"start_datetime": "2024-05-01T00:00:00Z", "end_datetime": "2024-05-01T23:59:59.999999Z"}},
        {"type": "Feature", "id": "greenwich", "links": [], "assets": {},
         "geometry": {"type": "Polygon", "coordinates": [[[-1, -20], [1, -20], [1, -10], [-1, -10], [-1, -20]]]},
         "properties": {"datetime": "2024-05-02T00:00:00Z"}}]});
    let (a, b) = (dir.path().join("fiji.json"), dir.path().join("fc.json"));
    std::fs::write(&a, utm.to_string()).unwrap();
    std::fs::write(&b, fc.to_string()).unwrap();
    // Items without a collection need --collection.
    let err = failed_cleanly(&gridstore(&["catalog", "add", s(&cat), "--stac", s(&b)]));
    assert!(err.contains("--collection"), "{err}");
    ok(&["catalog", "add", s(&cat), "--stac", s(&a)]);
    ok(&[
        "catalog",
        "add",
        s(&cat),
        "--stac",
        "--collection",
        "s2",
        s(&b),
    ]);
    let across = search(&cat, &["--bbox", "179.5,-16,-179.5,-15"]);
    assert_eq!(names(&across), ["wide", "fiji"]);
    // West < east is the box the other way round: nearly the whole globe.
    let globe = search(&cat, &["--bbox", "-179.5,-16,179.5,-15"]);
    assert_eq!(names(&globe), ["wide", "fiji", "greenwich"]);
    assert_eq!(
        names(&search(&cat, &["--bbox", "-5,-16,5,-15"])),
        ["greenwich"]
    );
    let fiji = &across[1];
    assert_eq!(
        fiji["properties"]["gridstore:extra"]["processing"]["level"],
        "L2A"
    );
    assert_eq!(fiji["assets"]["data"]["href"], "s3://b/fiji.tif");
    let bbox = fiji["bbox"].as_array().unwrap();
    assert!(
        bbox[0].as_f64() > bbox[2].as_f64(),
        "west > east across 180°: {bbox:?}"
    );
    assert_eq!(
        names(&search(&cat, &["--where", "eo:cloud_cover < 5"])),
        ["fiji"]
    );
    // What search prints goes back in unchanged.
    let (lines, _) = ok(&["catalog", "search", s(&cat)]);
    let dump = dir.path().join("dump.jsonl");
    std::fs::write(&dump, &lines).unwrap();
    let copy = dir.path().join("copy.sqlite");
    ok(&["catalog", "init", s(&copy)]);
    ok(&["catalog", "add", s(&copy), "--stac", s(&dump)]);
    let (again, _) = ok(&["catalog", "search", s(&copy)]);
    assert_eq!(again, lines);
}

#[test]
fn cli_errors_say_what_to_do() {
    let dir = tmp();
    python_ok("catalog_rasters.py", &[s(dir.path())]);
    let cat = dir.path().join("c.sqlite");
    let err = failed_cleanly(&gridstore(&["catalog", "search", s(&cat)]));
    assert!(err.contains("catalog init"), "{err}");
    ok(&["catalog", "init", s(&cat)]);
    let notime = dir.path().join("notime.tif");
    let err = failed_cleanly(&gridstore(&["catalog", "add", s(&cat), s(&notime)]));
    assert!(err.contains("--time"), "{err}");
    ok(&[
        "catalog",
        "add",
        s(&cat),
        "--time",
        "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z",
        s(&notime),
    ]);
    let err = failed_cleanly(&gridstore(&[
        "catalog",
        "search",
        s(&cat),
        "--where",
        "CLOUD ~ 3",
    ]));
    assert!(err.contains("OP one of"), "{err}");
    let err = failed_cleanly(&gridstore(&[
        "catalog",
        "search",
        s(&cat),
        "--after",
        "garbage",
    ]));
    assert!(err.contains("resume token"), "{err}");
    let err = failed_cleanly(&gridstore(&[
        "catalog",
        "search",
        s(&cat),
        "--bbox",
        "10,5,20,4",
    ]));
    assert!(err.contains("south < north"), "{err}");
    // A catalog from a newer gridstore is refused, and so is a foreign database.
    let py = format!(
        "import sqlite3; c = sqlite3.connect('{}'); \
         c.execute(\"UPDATE catalog_meta SET value = '99' WHERE key = 'schema_version'\"); c.commit()",
        s(&cat)
    );
    assert!(std::process::Command::new("/usr/bin/python3")
        .args(["-c", &py])
        .status()
        .unwrap()
        .success());
    let err = failed_cleanly(&gridstore(&["catalog", "search", s(&cat)]));
    assert!(err.contains("newer gridstore"), "{err}");
}

/// `catalog add --stac -` whose writes fail while its standard input stays open (a pipe
/// from a program still running) stops with the error, instead of waiting for a line
/// that may never come.
#[test]
fn an_add_from_standard_input_stops_at_a_failed_write() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tmp();
    let cat = dir.path().join("piped.sqlite");
    ok(&["catalog", "init", s(&cat)]);
    let item = |id: &str| {
        serde_json::json!({
            "type": "Feature", "stac_version": "1.1.0", "id": id, "collection": "c",
            "links": [], "assets": {},
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
            "properties": {"datetime": "2024-05-01T00:00:00Z"}
        })
        .to_string()
            + "\n"
    };
    let mut add = Command::new(env!("CARGO_BIN_EXE_gridstore"))
        .args(["catalog", "add", s(&cat), "--stac", "-", "--batch", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = add.stdin.take().unwrap();
    stdin.write_all(item("first").as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Once the first item is in, another program takes the catalog for writing.
    let other = rusqlite::Connection::open(&cat).unwrap();
    let added = |c: &rusqlite::Connection| -> i64 {
        c.query_row("SELECT count(*) FROM items", [], |r| r.get(0))
            .unwrap_or(0)
    };
    let start = std::time::Instant::now();
    while added(&other) == 0 {
        assert!(
            start.elapsed().as_secs() < 60,
            "the first item was not added"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    stdin.write_all(item("second").as_bytes()).unwrap();
    stdin.flush().unwrap();
    // The write of the second waits for the lock (up to 30 s), then fails.
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = add.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed().as_secs() > 90 {
            add.kill().unwrap();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    other.execute_batch("ROLLBACK").unwrap();
    drop(stdin);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut add.stderr.take().unwrap(), &mut stderr).unwrap();
    let status = status.expect("the add still ran 90 s after its write failed, stdin open");
    assert!(!status.success());
    assert!(stderr.contains("Another program is writing"), "{stderr}");
    assert_eq!(added(&other), 1);
}

/// A raster whose nodata pixels are scattered (every other one, as on a checkerboard)
/// is catalogued with a footprint of bounded size that holds all its data: the same as
/// the raster's with every pixel valid.
#[test]
fn scattered_nodata_gives_a_footprint_of_bounded_size() {
    let dir = tmp();
    let cat = dir.path().join("c.sqlite");
    ok(&["catalog", "init", s(&cat)]);
    for (name, more) in [("whole", None), ("scattered", Some("--checkerboard"))] {
        let file = dir.path().join(format!("{name}.tif"));
        let mut args = vec![s(&file), "Float32", "512", "512", "1", "--nodata", "-9999"];
        args.extend(more);
        python_ok("make_raster.py", &args);
        let time = ["--time", "2024-01-01"];
        ok(&["catalog", "add", s(&cat), time[0], time[1], s(&file)]);
    }
    let items = search(&cat, &[]);
    let geometry = |name: &str| {
        let item = items.iter().find(|i| names(&[(*i).clone()]) == [name]);
        item.unwrap_or_else(|| panic!("no {name} in {items:?}"))["geometry"].clone()
    };
    let (whole, scattered) = (geometry("whole.tif"), geometry("scattered.tif"));
    let text = scattered.to_string();
    assert!(text.len() < 10_000, "{} bytes of footprint", text.len());
    assert_eq!(scattered, whole);
}
