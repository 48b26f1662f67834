//! The sources each write records with its commit (docs/FORMAT.md §12), and
//! `gridstore catalog add --store`, which puts the sources of a store's state into a
//! catalog: through `gdal_translate`, `gridstore ingest` and `gridstore append`, across
//! rollbacks and `gc`, and with crafted source lists.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use common::{failed_cleanly, ingest, ok, python_ok, run, s, tmp};

fn gridstore(args: &[&str]) -> String {
    ok(env!("CARGO_BIN_EXE_gridstore"), args)
}

/// The four rasters of tests/python/catalog_sources.py: west_0, east_1, west_2, east_3,
/// an hour apart by their metadata, each with a nodata corner.
fn rasters(dir: &Path) -> Vec<String> {
    python_ok("catalog_sources.py", &[s(dir)]);
    ["west_0", "east_1", "west_2", "east_3"]
        .iter()
        .map(|n| s(&dir.join(format!("{n}.tif"))).to_string())
        .collect()
}

/// Every item of `collection` in the catalog, by id.
fn items(cat: &str, collection: &str) -> BTreeMap<String, Value> {
    gridstore(&["catalog", "search", cat, "--collection", collection])
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// The snapshot that recorded an item of a store's sources.
fn snapshot_of(item: &Value) -> i64 {
    item["properties"]["gridstore:snapshot"].as_i64().unwrap()
}

/// A fresh catalog in `dir` with the sources of `store` as collection `collection`.
fn catalogue(dir: &Path, store: &Path, collection: &str, more: &[&str]) -> BTreeMap<String, Value> {
    let cat = dir.join(format!("{collection}.sqlite"));
    gridstore(&["catalog", "init", s(&cat)]);
    let mut args = vec![
        "catalog",
        "add",
        s(&cat),
        "--store",
        s(store),
        "--collection",
        collection,
    ];
    args.extend(more);
    gridstore(&args);
    items(s(&cat), collection)
}

/// Equal JSON, numbers to within 1e-9 (coordinates are written to that precision).
fn near(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= 1e-9
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| near(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| near(v, w)))
        }
        _ => a == b,
    }
}

/// The absolute path a catalog gives a raster as its id.
fn id_of(file: &str) -> String {
    std::fs::canonicalize(file).unwrap().display().to_string()
}

#[test]
fn every_writer_records_its_sources_as_the_catalog_sees_the_files() {
    let dir = tmp();
    let files = rasters(dir.path());
    let store = dir.path().join("rain.gridstore");
    ingest(&files[0], &store, &["BLOCKSIZE=32"]); // CreateCopy: snapshot 1
    gridstore(&["ingest", "-q", s(&store), &files[1]]); // snapshot 2
    ingest(&files[2], &store, &[]); // CreateCopy into the store: snapshot 3
    let recorded = catalogue(dir.path(), &store, "rain", &[]);

    // The same files added to a catalog directly: the records must say what those say.
    let direct_cat = dir.path().join("direct.sqlite");
    gridstore(&["catalog", "init", s(&direct_cat)]);
    let mut add = vec!["catalog", "add", s(&direct_cat), "--collection", "direct"];
    add.extend(files[..3].iter().map(String::as_str));
    gridstore(&add);
    let direct = items(s(&direct_cat), "direct");

    assert_eq!(recorded.len(), 3, "{recorded:#?}");
    for (n, file) in files[..3].iter().enumerate() {
        let id = id_of(file);
        let (mut got, want) = (recorded[&id].clone(), &direct[&id]);
        assert_eq!(snapshot_of(&got), n as i64 + 1, "{file}");
        got["properties"]
            .as_object_mut()
            .unwrap()
            .remove("gridstore:snapshot");
        for field in ["geometry", "bbox", "properties", "assets"] {
            assert!(
                near(&got[field], &want[field]),
                "{file}: {field}: {} against {}",
                got[field],
                want[field]
            );
        }
        assert_eq!(got["collection"], "rain");
    }
    // The footprint is the valid data, not the raster's rectangle: the nodata corner is out.
    let ring = recorded[&id_of(&files[0])]["properties"]["proj:geometry"]["coordinates"][0]
        .as_array()
        .unwrap()
        .len();
    assert!(ring > 5, "a rectangle: {ring} points");
    // The catalog finds the sources by place and time, as it would the files.
    let cat = dir.path().join("rain.sqlite");
    let east = gridstore(&["catalog", "search", s(&cat), "--bbox", "5.7,52.1,5.9,52.5"]);
    assert_eq!(east.lines().count(), 1, "{east}");
    assert!(east.contains("east_1"), "{east}");
    let hour = gridstore(&[
        "catalog",
        "search",
        s(&cat),
        "--time",
        "2024-05-01T02:00:00Z/2024-05-01T03:00:00Z",
    ]);
    assert_eq!(hour.lines().count(), 1, "{hour}");
    assert!(hour.contains("west_2"), "{hour}");

    // Written again, a source is recorded once, by its newest write.
    gridstore(&["ingest", "-q", s(&store), &files[0]]);
    let again = catalogue(dir.path(), &store, "again", &[]);
    assert_eq!(again.len(), 3);
    assert_eq!(snapshot_of(&again[&id_of(&files[0])]), 4);
}

#[test]
fn a_state_keeps_the_sources_of_its_data_across_rollback_and_gc() {
    let dir = tmp();
    let files = rasters(dir.path());
    let store = dir.path().join("rain.gridstore");
    ingest(&files[0], &store, &["BLOCKSIZE=32"]);
    for file in &files[1..3] {
        gridstore(&["ingest", "-q", s(&store), file]);
    }
    gridstore(&["rollback", s(&store), "--to", "2"]); // snapshot 4 holds snapshot 2's data
    let ids = |m: &BTreeMap<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    let first_two: Vec<String> = {
        let mut v: Vec<String> = files[..2].iter().map(|f| id_of(f)).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&catalogue(dir.path(), &store, "now", &[])), first_two);
    let before = catalogue(dir.path(), &store, "before", &["--snapshot", "3"]);
    assert_eq!(before.len(), 3);

    let lists = |store: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(store.join("sources"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(lists(&store), ["1", "2", "3"]);
    let out = gridstore(&["gc", s(&store), "--keep", "1"]);
    assert!(out.contains("1 source list(s)"), "{out}");
    // Snapshots 1 and 2 are gone, but their data, and so their sources, are the state's.
    assert_eq!(lists(&store), ["1", "2"]);
    assert_eq!(
        ids(&catalogue(dir.path(), &store, "after_gc", &[])),
        first_two
    );
    let verify = gridstore(&["verify", s(&store)]);
    assert!(verify.contains("no problems"), "{verify}");
}

#[test]
fn append_records_each_slice_at_its_time() {
    let dir = tmp();
    let files = rasters(dir.path());
    let store = dir.path().join("series.gridstore");
    // Times of their own, a month after what the files' metadata says.
    for (file, time) in [
        (&files[0], "2024-06-01T00:00:00Z"),
        (&files[2], "2024-06-01T01:00:00Z"),
    ] {
        gridstore(&[
            "append",
            "-q",
            s(&store),
            file,
            "--time",
            time,
            "--time-step",
            "PT1H",
        ]);
    }
    let got = catalogue(dir.path(), &store, "series", &[]);
    let at = |n: usize| got[&id_of(&files[n])]["properties"]["datetime"].clone();
    assert_eq!(at(0), json!("2024-06-01T00:00:00Z"));
    assert_eq!(at(2), json!("2024-06-01T01:00:00Z"));
    // Told not to, a write records nothing, and the state keeps the earlier records.
    let mut args = vec!["append", "-q", s(&store), &files[1], "--no-sources"];
    args.extend(["--time", "2024-06-01T02:00:00Z", "--time-step", "PT1H"]);
    gridstore(&args);
    let later = catalogue(dir.path(), &store, "later", &[]);
    assert_eq!(later.len(), 2, "{later:#?}");
    let snaps: Vec<i64> = [0, 2]
        .iter()
        .map(|&n| snapshot_of(&got[&id_of(&files[n])]))
        .collect();
    assert_eq!(snaps, [1, 2]);
}

/// A store of two snapshots, each with a source list, to craft.
fn two_lists(dir: &Path) -> PathBuf {
    let files = rasters(dir);
    let store = dir.join("crafted.gridstore");
    ingest(&files[0], &store, &["BLOCKSIZE=32"]);
    gridstore(&["ingest", "-q", s(&store), &files[1]]);
    store
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Replaces source list `id` with `bytes`, and makes every manifest's link to it say its
/// new length, count and CRC-32C, so that only what the list says is wrong.
fn craft_list(store: &Path, id: u64, bytes: &[u8], count: u64) {
    std::fs::write(store.join(format!("sources/{id}/0.jsonl")), bytes).unwrap();
    let link = json!({"id": id, "part": 0, "count": count, "bytes": bytes.len(),
                      "crc32c": crc32c::crc32c(bytes)});
    for m in [store.join("gridstore.json"), store.join("snapshots/2.json")] {
        let mut v = read_json(&m);
        if v["sources"]["id"] == json!(id) {
            v["sources"] = link.clone();
        }
        std::fs::write(&m, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
}

/// Every object of a store, to see that nothing was removed.
fn objects(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![store.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out.sort();
    out
}

/// `catalog add --store` and `verify` report `what`, and `gc` removes nothing.
fn refused(store: &Path, what: &str) {
    let dir = store.parent().unwrap();
    let cat = dir.join("c.sqlite");
    let _ = std::fs::remove_file(&cat);
    gridstore(&["catalog", "init", s(&cat)]);
    let bin = env!("CARGO_BIN_EXE_gridstore");
    let err = failed_cleanly(&run(bin, &["catalog", "add", s(&cat), "--store", s(store)]));
    assert!(err.contains(what), "{err}");
    let verify = run(bin, &["verify", s(store)]);
    let text = String::from_utf8_lossy(&verify.stdout).to_string()
        + &String::from_utf8_lossy(&verify.stderr);
    assert!(text.contains(what), "verify: {text}");
    let before = objects(store);
    // gc would remove snapshot 1 and so must know which lists the state still needs.
    let gc = run(bin, &["gc", s(store), "--keep", "1"]);
    assert!(
        !gc.status.success(),
        "gc went on: {}",
        String::from_utf8_lossy(&gc.stdout)
    );
    assert_eq!(objects(store), before, "gc removed something");
}

#[test]
fn crafted_source_lists_with_valid_checksums_are_caught() {
    let header = |prev: Value| format!("{}\n", json!({ "previous": prev }));
    let record = "{\"id\":\"x\",\"type\":\"Feature\"}\n";
    // A list linking to itself: a walk that followed it would never end.
    let dir = tmp();
    let store = two_lists(dir.path());
    let own = read_json(&store.join("gridstore.json"))["sources"].clone();
    let text = header(own) + record;
    craft_list(&store, 2, text.as_bytes(), 1);
    refused(&store, "not older");

    // A list that holds more sources than its link says.
    let dir = tmp();
    let store = two_lists(dir.path());
    let prev = read_json(&store.join("snapshots/1.json"))["sources"].clone();
    let text = header(prev.clone()) + record + record;
    craft_list(&store, 2, text.as_bytes(), 1);
    refused(&store, "more than the 1 sources");

    // A list whose link to the one before it is broken (that one is missing).
    let dir = tmp();
    let store = two_lists(dir.path());
    std::fs::remove_file(store.join("sources/1/0.jsonl")).unwrap();
    refused(&store, "is missing");

    // A manifest that says its newest list is a later snapshot's.
    let dir = tmp();
    let store = two_lists(dir.path());
    let m = store.join("gridstore.json");
    let mut v = read_json(&m);
    v["sources"]["id"] = json!(3);
    std::fs::write(&m, serde_json::to_vec(&v).unwrap()).unwrap();
    let bin = env!("CARGO_BIN_EXE_gridstore");
    let err = failed_cleanly(&run(bin, &["info", s(&store)]));
    assert!(err.contains("sources.id 3"), "{err}");
}

#[test]
fn a_stores_sources_go_into_postgis_as_into_sqlite() {
    let dir = tmp();
    let files = rasters(dir.path());
    let store = dir.path().join("rain.gridstore");
    ingest(&files[0], &store, &["BLOCKSIZE=32"]);
    let mut args = vec!["ingest", "-q", s(&store)];
    args.extend(files[1..].iter().map(String::as_str));
    gridstore(&args);
    let pg = common::servers::postgres();
    let url = pg.url();
    gridstore(&["catalog", "init", &url]);
    gridstore(&["catalog", "add", &url, "--store", s(&store)]);
    let from_pg = items(&url, "rain");
    let from_sqlite = catalogue(dir.path(), &store, "rain", &[]);
    assert_eq!(from_pg.len(), 4);
    assert_eq!(
        from_pg.keys().collect::<Vec<_>>(),
        from_sqlite.keys().collect::<Vec<_>>()
    );
    for (id, item) in &from_pg {
        assert!(
            near(item, &from_sqlite[id]),
            "{id}: {item} against {}",
            from_sqlite[id]
        );
    }
    let east = gridstore(&["catalog", "search", &url, "--bbox", "5.7,52.1,5.9,52.5"]);
    assert_eq!(east.lines().count(), 2, "{east}");
}

/// The footprint of the record of the only source of a store made from `raster`.
fn recorded_footprint(dir: &Path, name: &str, raster: &[&str]) -> Value {
    let src = dir.join(format!("{name}.tif"));
    let mut args = vec![s(&src)];
    args.extend_from_slice(raster);
    python_ok("make_raster.py", &args);
    let store = dir.join(format!("{name}.gridstore"));
    ingest(s(&src), &store, &[]);
    let list = std::fs::read_to_string(store.join("sources/1/0.jsonl")).unwrap();
    let record: Value = serde_json::from_str(list.lines().nth(1).unwrap()).unwrap();
    record["geometry"].clone()
}

/// The positions of a GeoJSON Polygon or MultiPolygon.
fn positions(geometry: &Value) -> Vec<&Value> {
    let depth = match geometry["type"].as_str() {
        Some("Polygon") => 2,
        Some("MultiPolygon") => 3,
        other => panic!("not a polygon: {other:?}"),
    };
    let mut level: Vec<&Value> = vec![&geometry["coordinates"]];
    for _ in 0..depth {
        level = level
            .into_iter()
            .flat_map(|v| v.as_array().unwrap())
            .collect();
    }
    level
}

#[test]
fn scattered_nodata_makes_a_footprint_of_bounded_size_that_holds_all_data() {
    let dir = tmp();
    let d = dir.path();
    let shape = ["Float32", "512", "512", "1", "--nodata", "-9999"];
    let whole = recorded_footprint(d, "whole", &shape);
    // Every other pixel is nodata: 131,072 holes, one per pixel, would the footprint
    // follow them.
    let mut checkerboard = shape.to_vec();
    checkerboard.push("--checkerboard");
    let scattered = recorded_footprint(d, "scattered", &checkerboard);
    let points = positions(&scattered).len();
    let most = 5 * gridstore::catalog::cells::MAX_RECTANGLES;
    assert!(points <= most, "{points} points, more than {most}");
    // Each 2 x 2 block of pixels holds data: the footprint is the whole raster's.
    assert!(
        scattered == whole,
        "{points} points in {} (the whole raster: {whole})",
        scattered["type"]
    );
}
