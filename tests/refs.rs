//! `gridstore refs`: kerchunk references through which xarray, zarr and fsspec (Debian's,
//! offline) read a store without GDAL. Every store here is made with the real CLI or
//! gdal_translate, from real sample rasters and generated ones; tests/python/refs_checks.py
//! opens each level of the references with xarray and compares every array, bit for bit,
//! with gdal_translate of the same store and overview level.

mod common;
use common::servers;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

const CHECKS: &str = "refs_checks.py";

fn gridstore() -> String {
    env!("CARGO_BIN_EXE_gridstore").to_string()
}

/// `gridstore refs STORE -o <store name>.json` beside the store, plus `extra` arguments;
/// returns the references' path.
fn refs(store: &Path, extra: &[&str]) -> PathBuf {
    let out = store.with_extension("json");
    let mut args = vec!["refs", s(store), "-o", s(&out)];
    args.extend_from_slice(extra);
    ok(&gridstore(), &args);
    out
}

/// Compares every level of `refs` with gdal_translate of `store`; returns the levels
/// checked (one JSON line each).
fn compare(store: &Path, refs: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["compare", s(store), s(refs)];
    args.extend_from_slice(extra);
    python_ok(CHECKS, &args)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line per level"))
        .collect()
}

fn read_refs(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).expect("references are JSON")
}

/// A metadata document of the references (`.zarray`, `.zattrs`), parsed.
fn document(refs: &Value, key: &str) -> Value {
    let text = refs["refs"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}"));
    serde_json::from_str(text).unwrap()
}

/// A raster written by make_raster.py.
fn raster(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut all = vec![s(&path)];
    all.extend_from_slice(args);
    python_ok("make_raster.py", &all);
    path
}

#[test]
fn float32_with_a_nodata_hole_and_the_floating_point_predictor_reads_as_gdal_at_every_level() {
    let dir = tmp();
    let src = raster(
        dir.path(),
        "f32.tif",
        &[
            "Float32", "1500", "1300", "1", "--nodata", "-9999", "--holes", "--nan",
        ],
    );
    let store = dir.path().join("f32.gridstore");
    translate_into_ok(&src, &store, &["PREDICTOR=YES"]);
    let path = refs(&store, &[]);
    let levels = compare(&store, &path, &[]);
    assert_eq!(levels.len(), 3, "{levels:?}");
    let r = read_refs(&path);
    assert_eq!(r["version"], 1);
    assert_eq!(r["templates"]["root"], "f32.gridstore");
    let meta = document(&r, "level_0/band 1/.zarray");
    assert_eq!(meta["dtype"], ">f4");
    assert_eq!(meta["chunks"], serde_json::json!([128, 128]));
    assert_eq!(meta["fill_value"], -9999.0);
    assert_eq!(meta["filters"][0]["id"], "shuffle");
    assert_eq!(meta["compressor"]["id"], "zstd");
    let attrs = document(&r, "level_0/band 1/.zattrs");
    assert_eq!(attrs["grid_mapping"], "spatial_ref");
    assert_eq!(attrs["_ARRAY_DIMENSIONS"], serde_json::json!(["y", "x"]));
    let crs = document(&r, "level_0/spatial_ref/.zattrs");
    assert!(crs["crs_wkt"].as_str().unwrap().contains("UTM zone 33N"));

    // The comparison catches a wrong mapping: without the byte delta, or read as
    // little-endian samples, the same frames give other values.
    for (field, wrong) in [
        (
            "filters",
            serde_json::json!([{"id": "shuffle", "elementsize": 4}]),
        ),
        ("dtype", serde_json::json!("<f4")),
    ] {
        let mut broken = r.clone();
        let key = "level_0/band 1/.zarray";
        let mut meta = document(&r, key);
        meta[field] = wrong;
        broken["refs"][key] = Value::String(meta.to_string());
        let bad = dir.path().join("broken.json");
        std::fs::write(&bad, broken.to_string()).unwrap();
        let out = python(CHECKS, &["compare", s(&store), s(&bad)]);
        assert!(!out.status.success(), "a wrong {field} went unnoticed");
    }
}

#[test]
fn two_int16_bands_deflate_and_the_horizontal_predictor_read_as_gdal() {
    let dir = tmp();
    let src = raster(
        dir.path(),
        "i16.tif",
        &["Int16", "700", "600", "2", "--nodata", "-32768", "--holes"],
    );
    let store = dir.path().join("i16.gridstore");
    translate_into_ok(
        &src,
        &store,
        &["COMPRESS=DEFLATE", "PREDICTOR=STANDARD", "BLOCKSIZE=256"],
    );
    let path = refs(&store, &[]);
    let levels = compare(&store, &path, &[]);
    assert_eq!(levels.len(), 3);
    assert_eq!(levels[0]["arrays"], serde_json::json!(["band 1", "band 2"]));
    let meta = document(&read_refs(&path), "level_1/band 2/.zarray");
    assert_eq!(meta["compressor"]["id"], "zlib");
    assert_eq!(
        meta["filters"],
        serde_json::json!([{"id": "delta", "dtype": "<i2"}])
    );
    assert_eq!(meta["fill_value"], -32768);
}

#[test]
fn real_rasters_read_as_gdal_byte_int16_float32_with_levels_palettes_and_no_compression() {
    let dir = tmp();
    let cases: [(&str, &[&str], usize); 4] = [
        ("L7_ETMs.tif", &["BLOCKSIZE=64"], 4),
        ("lc.tif", &["BLOCKSIZE=32"], 3),
        ("elev.tif", &[], 1),
        (
            "olinda_dem_utm25s.tif",
            &["COMPRESS=NONE", "BLOCKSIZE=32"],
            3,
        ),
    ];
    for (name, options, levels) in cases {
        let store = dir.path().join(name.replace(".tif", ".gridstore"));
        translate_into_ok(&sample(name), &store, options);
        let path = refs(&store, &[]);
        let checked = compare(&store, &path, &[]);
        assert_eq!(checked.len(), levels, "{name}: {checked:?}");
    }
    // Without georeferencing: x and y on the dataset's pixel grid, in level-0 pixels.
    let src = raster(
        dir.path(),
        "plain.tif",
        &["UInt16", "90", "70", "1", "--nogeo"],
    );
    let plain = dir.path().join("plain.gridstore");
    translate_into_ok(&src, &plain, &["BLOCKSIZE=32"]);
    let path = refs(&plain, &[]);
    assert_eq!(compare(&plain, &path, &[]).len(), 3);
    let r = read_refs(&path);
    assert!(r["refs"].get("level_0/spatial_ref/.zarray").is_none());
    // Byte bands without nodata: a missing tile reads 0, as in GDAL.
    let r = read_refs(&dir.path().join("L7_ETMs.json"));
    let meta = document(&r, "level_3/band6/.zarray");
    assert_eq!(
        (meta["dtype"].clone(), meta["fill_value"].clone()),
        ("|u1".into(), 0.into())
    );
    // Int16 with nodata, geographic coordinates.
    let r = read_refs(&dir.path().join("elev.json"));
    assert_eq!(document(&r, "level_0/x/.zattrs")["units"], "degrees_east");
    assert_eq!(
        document(&r, "level_0/elevation/.zarray")["fill_value"],
        -32768
    );
    let r = read_refs(&dir.path().join("olinda_dem_utm25s.json"));
    let meta = document(&r, "level_2/band1/.zarray");
    assert_eq!(meta["compressor"], Value::Null);
}

/// Appends `slice` at `time` to `store` on an hourly axis, in tiles of 32 pixels, with
/// time blocks of two ticks (compacted after each append once closed).
fn append_hourly(store: &Path, slice: &Path, time: &str) {
    ok(
        &gridstore(),
        &[
            "append",
            s(store),
            s(slice),
            "--time",
            time,
            "--time-step",
            "PT1H",
            "--insert",
            "--co",
            "BLOCKSIZE=32",
            "--co",
            "SERIES_BLOCK=2",
            "-q",
        ],
    );
}

#[test]
fn time_axes_read_as_gdal_with_cf_time_regular_irregular_levels_and_a_hole() {
    let dir = tmp();
    // Real series: monthly (irregular, two variables) and hourly (regular, NaN nodata).
    for name in ["bcsd_obs_1999", "test_stageiv_xyt"] {
        let store = dir.path().join(format!("{name}.gridstore"));
        let nc = sample(&format!("{name}.nc"));
        ok(&gridstore(), &["append", s(&store), s(&nc), "-q"]);
        let path = refs(&store, &[]);
        let checked = compare(&store, &path, &[]);
        assert_eq!(checked.len(), 1);
        let r = read_refs(&path);
        let time = document(&r, "level_0/time/.zattrs");
        let info: Value =
            serde_json::from_str(&ok(&gridstore(), &["info", "--json", s(&store)])).unwrap();
        assert_eq!(time["calendar"], info["time"]["calendar"]);
        assert_eq!(time["units"], info["time"]["units"]);
    }
    // Generated slices on an hourly axis with a hole at 02:00, in tiles of 32 pixels: three
    // levels, and a time dimension of four steps, the hole reading as nodata.
    let store = dir.path().join("hourly.gridstore");
    for i in [0, 1, 3] {
        let seed = (i + 1).to_string();
        let name = format!("s{i}.tif");
        let slice = raster(
            dir.path(),
            &name,
            &[
                "Float32", "100", "80", "1", "--nodata", "-9999", "--holes", "--seed", &seed,
            ],
        );
        append_hourly(&store, &slice, &format!("2024-01-01T0{i}:00:00Z"));
    }
    let index = ok(&gridstore(), &["info", "--json", s(&store)]);
    assert!(index.contains("\"series_block\": 2"), "{index}");
    assert!(
        store.join("chunks").read_dir().unwrap().any(|d| {
            let d = d.unwrap().path();
            d.read_dir().unwrap().any(|e| {
                let name = e.unwrap().file_name();
                name.to_string_lossy().starts_with("0_255_")
            })
        }),
        "ticks 0 and 1 were not compacted into time blocks"
    );
    let path = refs(&store, &[]);
    let checked = compare(&store, &path, &[]);
    assert_eq!(checked.len(), 3, "{checked:?}");
    assert_eq!(checked[0]["shape"], serde_json::json!([4, 80, 100]));
    let r = read_refs(&path);
    let attrs = document(&r, "level_2/band 1/.zattrs");
    assert_eq!(
        attrs["_ARRAY_DIMENSIONS"],
        serde_json::json!(["time", "y", "x"])
    );
    // The hole's chunks are inline blocks of nodata (fsspec 2022.11 fails reads that meet
    // a chunk without a reference), or left out when asked.
    let hole = &r["refs"]["level_0/band 1/2.0.0"];
    assert!(hole.as_str().unwrap().starts_with("base64:"), "{hole}");
    let omitted = refs(&store, &["--missing", "omit"]);
    assert!(read_refs(&omitted)["refs"]
        .get("level_0/band 1/2.0.0")
        .is_none());

    // Bands without nodata: the `mask` array holds each step's validity (an alpha band's
    // holes), compared with GDAL's mask of every step, the hole's empty.
    let masked = dir.path().join("masked.gridstore");
    for i in [0, 1, 3] {
        let seed = (i + 11).to_string();
        let name = format!("m{i}.tif");
        let slice = raster(
            dir.path(),
            &name,
            &[
                "Float32", "100", "80", "1", "--alpha", "--holes", "--seed", &seed,
            ],
        );
        append_hourly(&masked, &slice, &format!("2024-01-01T0{i}:00:00Z"));
    }
    let path = refs(&masked, &[]);
    let checked = compare(&masked, &path, &[]);
    assert_eq!(checked.len(), 3);
    assert!(checked
        .iter()
        .all(|l| l["arrays"].as_array().unwrap().contains(&"mask".into())));
    let r = read_refs(&path);
    let meta = document(&r, "level_0/mask/.zarray");
    assert_eq!(meta["chunks"], serde_json::json!([1, 32, 4]));
}

#[test]
fn tiles_not_stored_read_as_gdal_reads_them_in_a_sparse_store_without_nodata() {
    let dir = tmp();
    let src = raster(dir.path(), "a.tif", &["Byte", "200", "150", "2"]);
    // The same raster again 1200 pixels further east: the tiles between hold nothing.
    let far = dir.path().join("far.tif");
    ok(
        "gdal_translate",
        &[
            "-q",
            "-a_ullr",
            "476720",
            "3751320",
            "482720",
            "3746820",
            s(&src),
            s(&far),
        ],
    );
    let store = dir.path().join("sparse.gridstore");
    translate_into_ok(&src, &store, &["BLOCKSIZE=64"]);
    translate_into_ok(&far, &store, &[]);
    let path = refs(&store, &[]);
    let checked = compare(&store, &path, &[]);
    assert_eq!(checked[0]["shape"], serde_json::json!([150, 1400]));
    assert_eq!(
        checked[0]["arrays"],
        serde_json::json!(["band 1", "band 2", "mask"])
    );
    let r = read_refs(&path);
    let between = &r["refs"]["level_0/mask/0.10"];
    assert!(
        between.as_str().unwrap().starts_with("base64:"),
        "{between}"
    );
    let between = &r["refs"]["level_0/band 2/0.10"];
    assert!(
        between.as_str().unwrap().starts_with("base64:"),
        "{between}"
    );
}

#[test]
fn a_patched_store_refers_to_frames_kept_in_two_objects_and_each_snapshot_reads_as_gdal() {
    let dir = tmp();
    let src = raster(
        dir.path(),
        "f32.tif",
        &["Float32", "1500", "1300", "1", "--nodata", "-9999"],
    );
    let store = dir.path().join("p.gridstore");
    translate_into_ok(&src, &store, &["PREDICTOR=YES"]);
    let patch = dir.path().join("patch.tif");
    python_ok(
        CHECKS,
        &["patch", s(&src), s(&patch), "600", "500", "64", "64"],
    );
    translate_into_ok(&patch, &store, &[]);
    // The level tiles above the first patch are objects of their own (their chunks of
    // snapshot 1 are in packs, which no chunk keeps frames in); above a second patch
    // there, they keep most of their frames in those.
    let again = dir.path().join("patch2.tif");
    python_ok(
        CHECKS,
        &["patch", s(&patch), s(&again), "20", "20", "32", "32"],
    );
    let patch = again;
    translate_into_ok(&patch, &store, &[]);

    let now = refs(&store, &[]);
    compare(&store, &now, &[]);
    // A level tile updated in place keeps most of its frames in the chunk of snapshot 2.
    let mut snapshots: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, value) in read_refs(&now)["refs"].as_object().unwrap() {
        let Some(url) = value.get(0).and_then(Value::as_str) else {
            continue;
        };
        let object = url
            .strip_prefix("{{root}}/chunks/")
            .expect("a chunk object");
        let (seq, tile) = object.split_once('/').unwrap();
        if key.starts_with("level_1/") {
            snapshots
                .entry(tile.to_string())
                .or_default()
                .insert(seq.to_string());
        }
    }
    assert!(
        snapshots.values().any(|s| s.len() == 2),
        "no level-1 tile refers to two objects: {snapshots:?}"
    );

    // The references of snapshot 1 read what GDAL reads of snapshot 1, not the patch.
    let before = store.with_file_name("p1.json");
    ok(
        &gridstore(),
        &["refs", s(&store), "--snapshot", "1", "-o", s(&before)],
    );
    compare(&store, &before, &["--snapshot", "1"]);
    let out = python(CHECKS, &["compare", s(&store), s(&before)]);
    assert!(
        !out.status.success(),
        "snapshot 1 read as the current state"
    );
}

#[test]
fn references_moved_with_the_store_still_read_and_their_root_can_be_given_at_open() {
    let dir = tmp();
    let store = dir.path().join("l7.gridstore");
    translate_into_ok(&sample("L7_ETMs.tif"), &store, &["BLOCKSIZE=64"]);
    // Written inside the store: the root is "." and the references travel inside it.
    let inside = store.join("refs.json");
    ok(&gridstore(), &["refs", s(&store), "-o", s(&inside)]);
    assert_eq!(read_refs(&inside)["templates"]["root"], ".");

    let elsewhere = tmp();
    let moved = elsewhere.path().join("moved.gridstore");
    copy_dir(&store, &moved);
    std::fs::remove_dir_all(&store).unwrap();
    let refs = moved.join("refs.json");
    // Relative roots resolve from where the reader runs.
    compare(&moved, &refs, &["--chdir", s(&moved)]);
    // From anywhere else, with the store's place given at open.
    compare(&moved, &refs, &["--chdir", "/", "--root", s(&moved)]);
    let lost = python(CHECKS, &["compare", s(&moved), s(&refs), "--chdir", "/"]);
    assert!(
        !lost.status.success(),
        "a root that leads nowhere read data"
    );
}

#[test]
fn without_an_output_file_the_references_go_to_standard_output_with_the_path_given() {
    let dir = tmp();
    let store = dir.path().join("lc.gridstore");
    translate_into_ok(&sample("lc.tif"), &store, &[]);
    let text = ok(&gridstore(), &["refs", s(&store)]);
    let r: Value = serde_json::from_str(&text).expect("JSON on standard output");
    assert_eq!(r["templates"]["root"], s(&store));
    assert!(r["refs"]["level_0/Layer_1/0.0"].is_array());
}

#[test]
fn encodings_numcodecs_cannot_decode_are_refused_by_name_leaving_no_file() {
    let dir = tmp();
    let lz4 = dir.path().join("lz4.gridstore");
    translate_into_ok(&sample("elev.tif"), &lz4, &["COMPRESS=LZ4"]);
    let out_file = dir.path().join("lz4.json");
    let out = run(&gridstore(), &["refs", s(&lz4), "-o", s(&out_file)]);
    let stderr = failed_cleanly(&out);
    let tile = "the chunk of tile (time 0, pyramid 0, level 0, column 0, row 0)";
    for needed in ["chunks/1/1", tile, "LZ4", "length", "COMPRESS=ZSTD"] {
        assert!(stderr.contains(needed), "{needed:?} missing from: {stderr}");
    }
    assert!(!out_file.exists(), "a refused store left references behind");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // To standard output: nothing, rather than the start of references.
    let out = run(&gridstore(), &["refs", s(&lz4)]);
    failed_cleanly(&out);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Tiles of 400 Float32 pixels end in blocks of 16 rows: not one Zarr chunk shape.
    let src = raster(
        dir.path(),
        "f.tif",
        &["Float32", "500", "450", "1", "--nodata", "-9999"],
    );
    let odd = dir.path().join("odd.gridstore");
    translate_into_ok(&src, &odd, &["BLOCKSIZE=400"]);
    let out = run(&gridstore(), &["refs", s(&odd)]);
    let stderr = failed_cleanly(&out);
    for needed in ["400 pixels", "blocks of 128", "BLOCKSIZE=512"] {
        assert!(stderr.contains(needed), "{needed:?} missing from: {stderr}");
    }
}

#[test]
fn a_store_on_s3_is_read_through_gdal_and_gets_an_s3_root() {
    let server = servers::moto("stores");
    let dir = tmp();
    let vsi = "/vsis3/stores/l7.gridstore";
    let src = sample("L7_ETMs.tif");
    let options = ["-q", "-of", "GRIDSTORE", "-co", "BLOCKSIZE=64"];
    let mut args = options.to_vec();
    args.extend([s(&src), vsi]);
    servers::ok_s3(&server, "gdal_translate", &args);
    let text = servers::ok_s3(&server, &gridstore(), &["refs", vsi]);
    let remote: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(remote["templates"]["root"], "s3://stores/l7.gridstore");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /stores/l7.gridstore/chunks/")),
        "the chunk heads were not read from S3"
    );

    // The same store made locally has the same chunks: the references of the one on S3,
    // with their root pointed at the local one, read as GDAL reads it.
    let local = dir.path().join("l7.gridstore");
    translate_into_ok(&src, &local, &["BLOCKSIZE=64"]);
    let refs_path = dir.path().join("remote.json");
    std::fs::write(&refs_path, &text).unwrap();
    let checked = compare(&local, &refs_path, &["--root", s(&local)]);
    assert_eq!(checked.len(), 4);
}
