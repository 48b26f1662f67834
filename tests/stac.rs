//! `gridstore stac` (docs/STAC.md): the Collection, Items and ItemCollection of a store
//! without time (a real DEM), of a regular and an irregular time axis, and of a footprint
//! across the antimeridian. Every document is validated offline against the vendored JSON
//! schemas (tests/schemas) by tests/python/stac_checks.py; GDAL's STACIT driver opens the
//! ItemCollection and reads the store's pixels; each item's asset opens its own time step.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

const CHECKS: &str = "stac_checks.py";

fn gridstore() -> String {
    env!("CARGO_BIN_EXE_gridstore").to_string()
}

/// Runs stac_checks.py in `dir` (hrefs relative to the working directory are how GDAL 3.6's
/// STACIT driver and GDAL itself open them).
fn checks_in(dir: &Path, args: &[&str]) -> Output {
    cmd("/usr/bin/python3")
        .current_dir(dir)
        .arg(root().join("tests/python").join(CHECKS))
        .args(args)
        .output()
        .expect("/usr/bin/python3")
}

fn checks_ok_in(dir: &Path, args: &[&str]) -> String {
    let out = checks_in(dir, args);
    assert!(
        out.status.success(),
        "{CHECKS} {args:?} in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// `gridstore stac STORE -o OUT [extra...]`, then the offline schema validation of OUT.
fn export(store: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["stac", s(store), "-o", s(out)];
    args.extend_from_slice(extra);
    ok(&gridstore(), &args);
    let valid = python_ok(CHECKS, &["validate", s(out)]);
    assert!(valid.starts_with("valid:"), "{valid}");
    read_json(&out.join("collection.json"))
}

fn features(out: &Path) -> Vec<Value> {
    let list = read_json(&out.join("item-collection.json"));
    assert_eq!(list["type"], "FeatureCollection");
    list["features"].as_array().expect("features").clone()
}

/// The slices of stac_checks.py in `dir`: s0..s3.tif (EPSG:32633) and fiji.tif.
fn slices(dir: &Path) -> Vec<PathBuf> {
    python_ok(CHECKS, &["slices", s(dir)]);
    (0..4).map(|i| dir.join(format!("s{i}.tif"))).collect()
}

fn append(store: &Path, slice: &Path, time: &str, step: Option<&str>) {
    let mut args = vec![
        "append",
        s(store),
        s(slice),
        "--time",
        time,
        "-q",
        "--insert",
    ];
    args.extend(["--co", "BLOCKSIZE=32"]);
    if let Some(step) = step {
        args.extend(["--time-step", step]);
    }
    ok(&gridstore(), &args);
}

#[test]
fn a_dem_without_time_is_one_item_that_validates_and_stacit_reads() {
    let dir = tmp();
    let store = dir.path().join("olinda.gridstore");
    translate_into_ok(&sample("olinda_dem_utm25s.tif"), &store, &[]);
    let out = dir.path().join("stac");
    let coll = export(&store, &out, &[]);
    let created = coll["extent"]["temporal"]["interval"][0][0].clone();
    assert_eq!(coll["extent"]["temporal"]["interval"][0][1], created);
    assert!(coll["cube:dimensions"].get("time").is_none(), "{coll}");
    let items = features(&out);
    assert_eq!(items.len(), 1);
    let p = &items[0]["properties"];
    // The one instant a store without time knows: when its snapshot was committed.
    assert_eq!(p["datetime"], created);
    // A bound CRS without an EPSG code: proj:wkt2, and null codes (STACIT then reads WKT).
    assert!(p["proj:epsg"].is_null() && p["proj:code"].is_null(), "{p}");
    assert!(p["proj:wkt2"].as_str().unwrap().contains("UTM"), "{p}");
    assert_eq!(p["proj:shape"], serde_json::json!([111, 111]));
    assert_eq!(items[0]["assets"]["data"]["href"], "../olinda.gridstore");
    let listing = out.join("item-collection.json");
    python_ok(CHECKS, &["projection", s(&listing), s(&store)]);
    // STACIT, from the output directory (GDAL 3.6 opens hrefs relative to the working
    // directory), reads the store's pixels.
    let info = checks_ok_in(
        &out,
        &[
            "same",
            "STACIT:\"item-collection.json\"",
            "../olinda.gridstore",
        ],
    );
    let direct = python_ok(CHECKS, &["same", s(&store), s(&store)]);
    assert_eq!(info, direct);
    let gdalinfo = cmd("gdalinfo")
        .current_dir(&out)
        .arg("STACIT:\"item-collection.json\"")
        .output()
        .unwrap();
    assert!(gdalinfo.status.success(), "{gdalinfo:?}");
    assert!(String::from_utf8_lossy(&gdalinfo.stdout).contains("Size is 111, 111"));
    // With --href-base every href is absolute: STACIT opens it from anywhere.
    let published = dir.path().join("published");
    let base = s(&published).to_string();
    let coll = export(&store, &published, &["--href-base", &base]);
    let links = coll["links"].as_array().unwrap();
    assert!(links
        .iter()
        .any(|l| l["rel"] == "self" && l["href"] == format!("{base}/collection.json")));
    let listing = published.join("item-collection.json");
    let from_elsewhere = python_ok(
        CHECKS,
        &["same", &format!("STACIT:\"{}\"", s(&listing)), s(&store)],
    );
    assert_eq!(from_elsewhere, direct);
}

#[test]
fn a_regular_axis_has_an_item_per_step_and_each_asset_opens_its_step() {
    let dir = tmp();
    let src = slices(dir.path());
    let store = dir.path().join("rain.gridstore");
    let times = [
        "2024-01-01T00:00:00Z",
        "2024-01-01T01:00:00Z",
        "2024-01-01T03:00:00Z",
    ];
    for (i, t) in [0, 1, 3].into_iter().zip(times) {
        append(&store, &src[i], t, Some("PT1H"));
    }
    let out = dir.path().join("stac");
    let coll = export(&store, &out, &["--refs", "../rain.refs.json"]);
    let time = &coll["cube:dimensions"]["time"];
    assert_eq!(time["step"], "PT1H", "{time}");
    assert_eq!(time["extent"], serde_json::json!([times[0], times[2]]));
    assert!(time.get("values").is_none(), "{time}");
    assert_eq!(
        coll["cube:dimensions"]["bands"]["values"],
        serde_json::json!(["rain", "temp"])
    );
    assert_eq!(
        coll["cube:variables"]["rain"]["dimensions"],
        serde_json::json!(["time", "y", "x"])
    );
    assert_eq!(coll["cube:dimensions"]["x"]["reference_system"], 32633);
    let items = features(&out);
    // One item per step held; the hole at 02:00 has none.
    let when: Vec<&str> = items
        .iter()
        .map(|i| i["properties"]["datetime"].as_str().unwrap())
        .collect();
    assert_eq!(when, times);
    let p = &items[0]["properties"];
    assert_eq!(
        (p["proj:epsg"].clone(), p["proj:code"].clone()),
        (32633.into(), "EPSG:32633".into())
    );
    let band = &items[0]["assets"]["data"]["bands"][0];
    assert_eq!(
        (band["name"].as_str(), band["nodata"].as_i64()),
        (Some("rain"), Some(-9999))
    );
    let refs = &items[0]["assets"]["references"];
    assert_eq!(
        (refs["cloud_format"].as_str(), refs["href"].as_str()),
        (Some("kerchunk"), Some("../rain.refs.json"))
    );
    let own = read_json(&out.join("items/rain-20240101T010000Z.json"));
    assert_eq!(own["assets"]["references"]["href"], "../../rain.refs.json");
    assert_eq!(
        own["assets"]["data"]["href"],
        "GRIDSTORE:\"../../rain.gridstore\":TIME=2024-01-01T01:00:00Z"
    );
    // Each item's asset opens its own step: the slices appended at those times.
    let names: Vec<String> = [0, 1, 3].iter().map(|i| s(&src[*i]).to_string()).collect();
    let mut args = vec!["hrefs", "item-collection.json", "data"];
    args.extend(names.iter().map(String::as_str));
    checks_ok_in(&out, &args);
    checks_ok_in(
        &out,
        &[
            "hrefs",
            "items/rain-20240101T010000Z.json",
            "data",
            &names[1],
        ],
    );
    let wrong = checks_in(
        &out,
        &[
            "hrefs",
            "items/rain-20240101T010000Z.json",
            "data",
            &names[0],
        ],
    );
    assert!(!wrong.status.success(), "step 1 read as step 0");
    // STACIT mosaics the items in time order: the latest step covers the others.
    let last = format!("GRIDSTORE:\"{}\":TIME={}", s(&store), times[2]);
    let listing = out.join("item-collection.json");
    python_ok(CHECKS, &["projection", s(&listing), s(&store)]);
    let mosaic = checks_ok_in(&out, &["same", "STACIT:\"item-collection.json\"", &last]);
    assert_eq!(mosaic, python_ok(CHECKS, &["same", &last, s(&src[3])]));
}

#[test]
fn an_irregular_axis_lists_its_instants() {
    let dir = tmp();
    let src = slices(dir.path());
    let store = dir.path().join("obs.gridstore");
    let times = [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:07:00Z",
        "2024-01-03T12:00:00Z",
        "2024-02-01T00:00:00Z",
    ];
    for (slice, t) in src.iter().zip(times) {
        append(&store, slice, t, None);
    }
    let out = dir.path().join("stac");
    let coll = export(&store, &out, &[]);
    let time = &coll["cube:dimensions"]["time"];
    assert_eq!(time["values"], serde_json::json!(times), "{time}");
    assert!(time["step"].is_null(), "{time}");
    let items = features(&out);
    assert_eq!(items.len(), 4);
    let names: Vec<&str> = src.iter().map(|p| s(p)).collect();
    let mut args = vec!["hrefs", "item-collection.json", "data"];
    args.extend(&names);
    checks_ok_in(&out, &args);
}

#[test]
fn a_footprint_across_the_antimeridian_is_cut_there() {
    let dir = tmp();
    slices(dir.path());
    let store = dir.path().join("fiji.gridstore");
    translate_into_ok(&dir.path().join("fiji.tif"), &store, &[]);
    let out = dir.path().join("stac");
    let coll = export(&store, &out, &[]);
    let item = &features(&out)[0];
    assert_eq!(
        item["geometry"]["type"], "MultiPolygon",
        "{}",
        item["geometry"]
    );
    let bbox: Vec<f64> = item["bbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // RFC 7946 §5.2: west > east across the antimeridian.
    assert!(bbox[0] > 170.0 && bbox[2] < -170.0, "{bbox:?}");
    assert_eq!(coll["extent"]["spatial"]["bbox"][0], item["bbox"]);
    assert_eq!(item["properties"]["proj:epsg"], 32760);
    let own = out.join("items/fiji.json");
    python_ok(CHECKS, &["projection", s(&own), s(&store)]);
    checks_ok_in(
        &out,
        &[
            "same",
            "STACIT:\"item-collection.json\"",
            "../fiji.gridstore",
        ],
    );
}

#[test]
fn accumulations_give_intervals_and_packed_bands_their_scale() {
    let dir = tmp();
    let src = slices(dir.path());
    let store = dir.path().join("acc.gridstore");
    for (i, t) in ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"]
        .iter()
        .enumerate()
    {
        let args = [
            "append",
            s(&store),
            s(&src[i]),
            "--time",
            t,
            "-q",
            "--time-step",
            "PT1H",
            "--accumulation",
            "PT1H",
            "--type",
            "Int16",
            "--scale",
            "0.5",
            "--offset",
            "1",
        ];
        ok(&gridstore(), &args);
    }
    let out = dir.path().join("stac");
    let coll = export(&store, &out, &[]);
    let item = read_json(&out.join("items/acc-20240101T010000Z.json"));
    let p = &item["properties"];
    assert_eq!(p["datetime"], "2024-01-01T01:00:00Z");
    assert_eq!(p["start_datetime"], "2024-01-01T00:00:00Z");
    assert_eq!(p["end_datetime"], "2024-01-01T01:00:00Z");
    assert_eq!(
        coll["extent"]["temporal"]["interval"][0],
        serde_json::json!(["2023-12-31T23:00:00Z", "2024-01-01T01:00:00Z"])
    );
    let band = &item["assets"]["data"]["bands"][0];
    assert_eq!(band["raster:scale"], 0.5, "{band}");
    assert_eq!(band["raster:offset"], 1.0, "{band}");
    assert_eq!(band["data_type"], "int16", "{band}");
    let ext = item["stac_extensions"].as_array().unwrap();
    assert!(ext
        .iter()
        .any(|e| e.as_str().unwrap().contains("raster/v2.0.0")));
}

#[test]
fn nan_nodata_is_spelled_nan_and_stacit_keeps_it() {
    let dir = tmp();
    slices(dir.path());
    let store = dir.path().join("nan.gridstore");
    translate_into_ok(&dir.path().join("nan.tif"), &store, &[]);
    let out = dir.path().join("stac");
    let coll = export(&store, &out, &[]);
    let band = &features(&out)[0]["assets"]["data"]["bands"][0];
    assert_eq!(band["nodata"], "nan", "{band}");
    assert_eq!(band["unit"], "mm", "{band}");
    assert_eq!(coll["cube:variables"]["band1"]["nodata"], "nan");
    assert_eq!(coll["cube:dimensions"]["x"]["reference_system"], 4326);
    checks_ok_in(
        &out,
        &[
            "same",
            "STACIT:\"item-collection.json\"",
            "../nan.gridstore",
        ],
    );
}

/// Writes `doc` changed by `f` over `path`.
fn edit(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut doc = read_json(path);
    f(&mut doc);
    std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
}

#[test]
fn validation_fails_on_broken_documents_and_on_projection_v2_with_proj_epsg() {
    let dir = tmp();
    slices(dir.path());
    let store = dir.path().join("fiji.gridstore");
    translate_into_ok(&dir.path().join("fiji.tif"), &store, &[]);
    let out = dir.path().join("stac");
    export(&store, &out, &[]);
    let item = out.join("items/fiji.json");
    let broken = |f: &dyn Fn(&mut Value)| {
        let copy = dir.path().join("broken");
        let _ = std::fs::remove_dir_all(&copy);
        copy_dir(&out, &copy);
        edit(&copy.join("items/fiji.json"), f);
        let v = python(CHECKS, &["validate", s(&copy)]);
        assert!(!v.status.success(), "a broken item validated");
        String::from_utf8_lossy(&v.stderr).into_owned()
    };
    let e = broken(&|d| d["assets"]["data"]["bands"][0]["nodata"] = "NaN".into());
    assert!(e.contains("nodata"), "{e}");
    let e = broken(&|d| d["properties"]["proj:shape"] = serde_json::json!([150]));
    assert!(e.contains("projection/v1.2.0"), "{e}");
    let e = broken(&|d| {
        d["properties"].as_object_mut().unwrap().remove("datetime");
    });
    assert!(e.contains("item.json"), "{e}");
    // Projection v2.0.0 forbids proj:epsg, which GDAL 3.6's STACIT needs: hence v1.2.0.
    let v2 = "https://stac-extensions.github.io/projection/v2.0.0/schema.json";
    edit(&item, |d| d["stac_extensions"] = serde_json::json!([v2]));
    assert!(!python(CHECKS, &["against", s(&item), v2]).status.success());
    edit(&item, |d| {
        d["properties"].as_object_mut().unwrap().remove("proj:epsg");
    });
    python_ok(CHECKS, &["against", s(&item), v2]);
}

#[test]
fn a_store_on_s3_exports_with_connection_strings_that_open_its_steps() {
    let server = common::servers::moto("bucket");
    let dir = tmp();
    let src = slices(dir.path());
    let store = "/vsis3/bucket/rain.gridstore";
    let times = ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"];
    for (slice, t) in src.iter().zip(times) {
        let args = [
            "append",
            store,
            s(slice),
            "--time",
            t,
            "-q",
            "--time-step",
            "PT1H",
        ];
        common::servers::ok_s3(&server, &gridstore(), &args);
    }
    let out = dir.path().join("stac");
    common::servers::ok_s3(&server, &gridstore(), &["stac", store, "-o", s(&out)]);
    python_ok(CHECKS, &["validate", s(&out)]);
    let items = features(&out);
    assert_eq!(
        items[1]["assets"]["data"]["href"],
        format!("GRIDSTORE:\"{store}\":TIME={}", times[1])
    );
    let script = root().join("tests/python").join(CHECKS);
    let reads = cmd("/usr/bin/python3")
        .current_dir(&out)
        .envs(common::servers::s3_env(server.port))
        .args([
            s(&script),
            "hrefs",
            "item-collection.json",
            "data",
            s(&src[0]),
            s(&src[1]),
        ])
        .output()
        .unwrap();
    assert!(reads.status.success(), "{reads:?}");
}

#[test]
fn a_store_without_a_crs_is_refused_saying_why() {
    let dir = tmp();
    let nc = format!("NETCDF:\"{}\":pr", s(&sample("bcsd_obs_1999.nc")));
    let store = dir.path().join("pr.gridstore");
    ok(&gridstore(), &["append", s(&store), &nc, "-q"]);
    let out = run(
        &gridstore(),
        &["stac", s(&store), "-o", s(&dir.path().join("stac"))],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no CRS") && err.contains("-a_srs"), "{err}");
}

#[test]
fn with_refs_writes_references_xarray_reads_as_gdal_does() {
    let dir = tmp();
    let src = slices(dir.path());
    let store = dir.path().join("rain.gridstore");
    for (i, t) in [(0, "2024-01-01T00:00:00Z"), (1, "2024-01-01T01:00:00Z")] {
        append(&store, &src[i], t, Some("PT1H"));
    }
    let out = dir.path().join("stac");
    let coll = export(&store, &out, &["--with-refs"]);
    assert_eq!(coll["assets"]["references"]["href"], "references.json");
    let item = &features(&out)[1];
    let asset = &item["assets"]["references"];
    assert_eq!(asset["cloud_format"], "kerchunk");
    // The asset names the file written beside the collection, whose root leads back to the
    // store: xarray reads every level of it bit for bit as GDAL reads the store.
    let refs = out.join(asset["href"].as_str().unwrap());
    assert_eq!(refs, out.join("references.json"));
    let compared = python_ok("refs_checks.py", &["compare", s(&store), s(&refs)]);
    assert!(compared.lines().count() >= 1, "{compared}");
}
