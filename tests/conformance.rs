//! GDAL conformance: the driver behaves as users of GDAL's own drivers expect. Mask flags
//! of alpha bands as GTiff reports them, a nodata value the type cannot hold, no ERROR
//! lines on a run that succeeds, no PAM sidecars, "Build pyramids", damaged manifests,
//! error classes, sizes GDAL cannot hold; through the GDAL tools, the GDAL Python
//! bindings, rasterio, and headless QGIS.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Output;

fn conformance(args: &[&str]) -> String {
    python_ok("conformance.py", args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a run succeeded without printing any GDAL error, and returns its stderr.
fn succeeded_without_errors(what: &str, out: &Output) -> String {
    let err = stderr(out);
    assert!(out.status.success(), "{what} failed: {err}");
    assert!(!err.contains("ERROR"), "{what} printed errors: {err}");
    err
}

fn gridstore(args: &[&str]) -> Output {
    cmd(env!("CARGO_BIN_EXE_gridstore"))
        .args(args)
        .output()
        .expect("the gridstore binary")
}

/// A Byte store of 1000 x 700 pixels with 64-pixel tiles: levels 2, 4, 8 and 16.
fn byte_store(dir: &Path) -> PathBuf {
    let src = dir.join("src.tif");
    python_ok("make_raster.py", &[s(&src), "Byte", "1000", "700", "1"]);
    let store = dir.join("b.gridstore");
    ingest(s(&src), &store, &["BLOCKSIZE=64"]);
    store
}

/// A raster on the grid of `byte_store`'s store, over part of it, whose values (200 and
/// 201) change the store's statistics when written into it.
fn make_patch(dir: &Path, patch: &Path) {
    let src = dir.join("src.tif");
    let args = "-q -srcwin 100 100 500 400 -scale 0 255 200 201";
    let mut all: Vec<&str> = args.split_whitespace().collect();
    all.extend([s(&src), s(patch)]);
    ok("gdal_translate", &all);
}

#[test]
fn mask_flags_of_an_alpha_band_are_gtiffs() {
    for bands in ["4", "2"] {
        let dir = tmp();
        let src = dir.path().join("alpha.tif");
        let store = dir.path().join("alpha.gridstore");
        conformance(&["make-alpha", s(&src), bands]);
        ingest(s(&src), &store, &["BLOCKSIZE=64"]);
        let out = conformance(&["mask-flags", s(&src), s(&store)]);
        // Colour bands: the alpha band is their mask; the alpha band is all valid.
        let n: usize = bands.parse().unwrap();
        let mut want = vec!["PER_DATASET|ALPHA"; n - 1];
        want.push("ALL_VALID");
        assert_eq!(out.trim(), format!("ok {}", want.join(" ")));
    }
}

#[test]
fn a_nodata_value_the_type_cannot_hold_is_dropped_with_a_warning() {
    let dir = tmp();
    let src = dir.path().join("minus1.tif");
    conformance(&["make-byte", s(&src), "-1"]);
    let store = dir.path().join("b.gridstore");
    let out = translate_into(&src, &store, &["BLOCKSIZE=64"]);
    let err = succeeded_without_errors("gdal_translate", &out);
    assert!(
        err.contains("Warning") && err.contains("nodata value -1 cannot occur in a Byte band"),
        "no warning about the nodata value: {err}"
    );
    assert_eq!(band_checksums(s(&store)), band_checksums(s(&src)));
    conformance(&["nodata", s(&store), "none"]);
    // Into an existing store as well.
    let out = translate_into(&src, &store, &[]);
    let err = succeeded_without_errors("gdal_translate into the store", &out);
    assert!(err.contains("cannot occur"), "{err}");
    assert_eq!(band_checksums(s(&store)), band_checksums(s(&src)));

    // A nodata value that can occur keeps working.
    let src = dir.path().join("seven.tif");
    conformance(&["make-byte", s(&src), "7"]);
    let store = dir.path().join("seven.gridstore");
    let out = translate_into(&src, &store, &["BLOCKSIZE=64"]);
    let err = succeeded_without_errors("gdal_translate", &out);
    assert!(!err.contains("Warning"), "{err}");
    conformance(&["nodata", s(&store), "7"]);
    assert_eq!(band_checksums(s(&store)), band_checksums(s(&src)));
}

#[test]
fn a_geostationary_ingest_prints_no_error() {
    let dir = tmp();
    let src = dir.path().join("geos.tif");
    conformance(&["make-geos", s(&src)]);
    // The store is in a projected CRS: transforming the corners of the disk, which are in
    // space, to it fails.
    let grid = "--crs EPSG:3035 --origin 0 8000000 --cell-size 20000 --type Byte --tile-size 64";
    let mut checksums_seen = Vec::new();
    for (name, how) in [("translated", "gdal_translate"), ("ingested", "ingest")] {
        let store = dir.path().join(format!("{name}.gridstore"));
        let mut create = vec!["create", s(&store)];
        create.extend(grid.split_whitespace());
        succeeded_without_errors("gridstore create", &gridstore(&create));
        let out = match how {
            "gdal_translate" => translate_into(&src, &store, &[]),
            _ => gridstore(&["ingest", "-q", s(&store), s(&src)]),
        };
        succeeded_without_errors(how, &out);
        // The part of the disk that the European grid (LAEA) covers.
        let info = ok("gdalinfo", &[s(&store)]);
        assert!(info.contains("Size is 919, 706"), "{info}");
        checksums_seen.push(band_checksums(s(&store)));
    }
    assert_eq!(checksums_seen[0], checksums_seen[1]);
}

/// Every `*.aux.xml` file under `dir`.
fn sidecars(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.to_string_lossy().ends_with(".aux.xml") {
                found.push(p);
            }
        }
    }
    found
}

/// Band statistics (minimum, maximum, mean, standard deviation) as `gdalinfo -stats`
/// gives them with PAM enabled, as it is by default outside these tests.
fn statistics(dataset: &Path) -> Vec<[f64; 4]> {
    let out = cmd("gdalinfo")
        .env("GDAL_PAM_ENABLED", "YES")
        .args(["-stats", "-json", s(dataset)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            ["minimum", "maximum", "mean", "stdDev"].map(|k| b[k].as_f64().expect("statistics"))
        })
        .collect()
}

#[test]
fn statistics_are_never_kept_in_a_sidecar() {
    let dir = tmp();
    let store = byte_store(dir.path());
    let before = statistics(&store);
    let by_manifest = statistics(&store.join("gridstore.json"));
    assert_eq!(before, by_manifest);
    assert_eq!(sidecars(dir.path()), Vec::<PathBuf>::new());

    // An update changes the statistics; they are those of the new state, as a fresh copy
    // of it has them.
    let patch = dir.path().join("patch.tif");
    make_patch(dir.path(), &patch);
    translate_into_ok(&patch, &store, &[]);
    let after = statistics(&store);
    assert_ne!(after, before, "the patch did not change the statistics");
    assert_eq!(after, statistics(&store.join("gridstore.json")));
    assert_eq!(sidecars(dir.path()), Vec::<PathBuf>::new());
    // A GeoTIFF copy, elsewhere (GTiff keeps its statistics in a sidecar).
    let elsewhere = tmp();
    let fresh = elsewhere.path().join("fresh.tif");
    ok("gdal_translate", &["-q", s(&store), s(&fresh)]);
    assert_eq!(after, statistics(&fresh));
}

#[test]
fn a_handle_open_for_update_forgets_its_statistics_when_it_commits() {
    let dir = tmp();
    let store = byte_store(dir.path());
    conformance(&["update-stats", s(&store)]);
}

#[test]
fn building_pyramids_succeeds_for_the_stores_levels_and_refuses_others() {
    let dir = tmp();
    let store = byte_store(dir.path());
    let before = checksums(s(&store));
    for levels in [&["2", "4", "8", "16"][..], &["4"], &[]] {
        for ro in [false, true] {
            let mut args = if ro { vec!["-ro"] } else { vec![] };
            args.push(s(&store));
            args.extend_from_slice(levels);
            let out = run("gdaladdo", &args);
            let err = succeeded_without_errors(&format!("gdaladdo {args:?}"), &out);
            assert!(!err.contains("Warning"), "{err}");
        }
    }
    for args in [
        vec![s(&store), "3"],
        vec![s(&store), "2", "32"],
        vec![s(&store), "1000"],
        vec!["-ro", s(&store), "32"],
        vec!["-clean", s(&store)],
    ] {
        let err = failed_cleanly(&run("gdaladdo", &args));
        assert!(err.contains("ERROR 6"), "not CPLE_NotSupported: {err}");
        assert!(err.contains("the store has levels 2..16"), "{err}");
        if args[0] != "-clean" {
            assert!(err.contains("levels are built by every write"), "{err}");
        }
    }
    // Nothing was built, removed or left beside the store.
    assert_eq!(checksums(s(&store)), before);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".ovr")), "{names:?}");
}

#[test]
fn a_damaged_manifest_gives_the_stores_own_error() {
    let dir = tmp();
    let store = byte_store(dir.path());
    let manifest = std::fs::read(store.join("gridstore.json")).unwrap();
    let renamed = dir.path().join("renamed");
    for (what, bytes) in [
        ("empty", &b""[..]),
        ("garbage", &b"\x00\x17\x03 binary"[..]),
        ("truncated", &manifest[..manifest.len() / 2]),
        ("not a store's", &br#"{"type": "Feature"}"#[..]),
    ] {
        std::fs::write(store.join("gridstore.json"), bytes).unwrap();
        for path in [store.clone(), store.join("gridstore.json")] {
            let err = failed_cleanly(&run("gdalinfo", &[s(&path)]));
            assert!(
                err.contains("the manifest is damaged") && err.contains("gridstore.json"),
                "{what} manifest, opened as {}: {err}",
                path.display()
            );
        }
        // Out of a *.gridstore directory, a manifest that is not JSON is still claimed.
        if what != "not a store's" {
            let _ = std::fs::remove_dir_all(&renamed);
            std::fs::create_dir(&renamed).unwrap();
            std::fs::write(renamed.join("gridstore.json"), bytes).unwrap();
            let err = failed_cleanly(&run("gdalinfo", &[s(&renamed.join("gridstore.json"))]));
            assert!(err.contains("the manifest is damaged"), "{what}: {err}");
            assert!(!err.contains("not recognized"), "{what}: {err}");
        }
    }
}

#[test]
fn errors_have_gdals_classes_in_rasterio_and_gdal() {
    let dir = tmp();
    let store = byte_store(dir.path());
    std::fs::write(store.join("gridstore.json"), b"{ \"format\": \"gridst").unwrap();
    let out = conformance(&[
        "errors",
        s(&dir.path().join("missing.gridstore")),
        s(&store),
        s(&dir.path().join("src.tif")),
        s(&dir.path().join("new.gridstore")),
    ]);
    assert!(out.starts_with("ok"), "{out}");
}

/// Sets the extent of the store's manifest (left, top, right, bottom in level-0 pixels).
fn set_extent(store: &Path, extent: [i64; 4]) {
    let path = store.join("gridstore.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let e = &mut m["extent"];
    for (k, v) in ["x0", "y0", "x1", "y1"].iter().zip(extent) {
        assert!(e.get(*k).is_some(), "extent fields changed: {e}");
        e[*k] = v.into();
    }
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
}

#[test]
fn sizes_gdal_cannot_hold_never_reach_it() {
    let dir = tmp();
    let store = byte_store(dir.path());
    for extent in [
        [0, 0, 0, 700],
        [0, 0, 1000, 0],
        [0, 0, 1 << 40, 700],
        [0, 0, 1000, 1 << 33],
        [-(1 << 62), 0, 1 << 62, 700],
        [i64::MIN + 1, 0, i64::MAX, 700],
    ] {
        set_extent(&store, extent);
        for args in [vec!["-checksum", s(&store)], vec![s(&store)]] {
            let err = failed_cleanly(&run("gdalinfo", &args));
            assert!(err.contains(s(&store)), "{extent:?}: {err}");
        }
    }
}

/// Whether QGIS's Python bindings are installed (CI installs them: .ci/run).
fn qgis_installed() -> bool {
    cmd("/usr/bin/python3")
        .args(["-c", "import qgis.core"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn qgis_uses_stores_as_it_uses_other_rasters() {
    if !qgis_installed() {
        println!("skipped: QGIS is not installed (apt-get install qgis python3-qgis)");
        return;
    }
    let dir = tmp();
    let store = byte_store(dir.path());
    let work = tmp();
    let patch = work.path().join("patch.tif");
    make_patch(dir.path(), &patch);
    std::fs::remove_file(dir.path().join("src.tif")).unwrap();
    let runtime = work.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let script = root().join("tests/python/qgis_checks.py");
    let out = cmd("/usr/bin/python3")
        .arg(script)
        .args([s(&store), s(&patch), s(work.path())])
        // As QGIS users run it: PAM on, no display, a profile of its own.
        .env("GDAL_PAM_ENABLED", "YES")
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("QGIS_CUSTOM_CONFIG_PATH", work.path().join("profile"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "qgis_checks.py failed:\n{stdout}{}",
        stderr(&out)
    );
}
