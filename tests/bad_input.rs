//! Every kind of bad input gets a clear GDAL error, a non-zero exit, and no crash.

mod common;
use common::*;

use std::path::PathBuf;

#[test]
fn missing_store() {
    let err = failed_cleanly(&run("gdalinfo", &["/nonexistent/x.gridstore"]));
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn a_file_where_a_store_should_be() {
    let dir = tmp();
    let f = dir.path().join("file.gridstore");
    std::fs::write(&f, "not a store").unwrap();
    let err = failed_cleanly(&run("gdalinfo", &[s(&f)]));
    assert!(err.contains("is a file, not a store directory"), "{err}");
}

#[test]
fn unreadable_manifest() {
    let dir = tmp();
    let st = small_store(dir.path());
    // A manifest that cannot be read as a file (here: a directory in its place).
    std::fs::remove_file(st.join("gridstore.json")).unwrap();
    std::fs::create_dir(st.join("gridstore.json")).unwrap();
    let err = failed_cleanly(&run("gdalinfo", &[s(&st)]));
    assert!(
        err.contains("gridstore.json") && err.contains("is a directory, not a regular file"),
        "{err}"
    );
}

#[test]
fn store_without_manifest() {
    let dir = tmp();
    let st = small_store(dir.path());
    std::fs::remove_file(st.join("gridstore.json")).unwrap();
    let err = failed_cleanly(&run("gdalinfo", &[s(&st)]));
    assert!(err.contains("gridstore.json is missing"), "{err}");
}

#[test]
fn truncated_manifest() {
    let dir = tmp();
    let st = small_store(dir.path());
    let m = st.join("gridstore.json");
    let text = std::fs::read(&m).unwrap();
    std::fs::write(&m, &text[..text.len() / 3]).unwrap();
    let err = failed_cleanly(&run("gdalinfo", &[s(&st)]));
    assert!(
        err.contains("manifest is damaged") && err.contains("truncated"),
        "{err}"
    );
    assert!(err.contains("snapshots/"), "says how to restore: {err}");
}

#[test]
fn garbled_manifest() {
    let dir = tmp();
    let st = small_store(dir.path());
    let m = st.join("gridstore.json");
    let text = std::fs::read_to_string(&m)
        .unwrap()
        .replace("\"tile_size\": 64", "\"tile_size\": \"big\"");
    std::fs::write(&m, text).unwrap();
    let err = failed_cleanly(&run("gdalinfo", &[s(&st)]));
    assert!(
        err.contains("manifest is damaged") && err.contains("tile_size"),
        "{err}"
    );
}

#[test]
fn newer_format_version() {
    let dir = tmp();
    let st = small_store(dir.path());
    let m = st.join("gridstore.json");
    let text = std::fs::read_to_string(&m)
        .unwrap()
        .replace("\"format_version\": 4", "\"format_version\": 5");
    std::fs::write(&m, text).unwrap();
    let err = failed_cleanly(&run("gdalinfo", &[s(&st)]));
    assert!(
        err.contains("newer gridstore (format version 5)") && err.contains("Upgrade"),
        "{err}"
    );
}

#[test]
fn corrupt_chunk_is_detected_not_returned() {
    let dir = tmp();
    let st = small_store(dir.path());
    let chunk = first_chunk(&st);
    let mut bytes = std::fs::read(&chunk).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01; // one flipped bit
    std::fs::write(&chunk, bytes).unwrap();
    let err = failed_cleanly(&read_all(&st));
    assert!(
        err.contains("checksum mismatch") && err.contains("gridstore verify"),
        "{err}"
    );
}

#[test]
fn truncated_chunk() {
    let dir = tmp();
    let st = small_store(dir.path());
    let chunk = first_chunk(&st);
    let bytes = std::fs::read(&chunk).unwrap();
    std::fs::write(&chunk, &bytes[..bytes.len() - 10]).unwrap();
    let err = failed_cleanly(&read_all(&st));
    assert!(err.contains("does not match the index"), "{err}");
}

#[test]
fn missing_chunk() {
    let dir = tmp();
    let st = small_store(dir.path());
    std::fs::remove_file(first_chunk(&st)).unwrap();
    let err = failed_cleanly(&read_all(&st));
    assert!(err.contains("chunk object is missing"), "{err}");
}

#[test]
fn unwritable_targets() {
    let dir = tmp();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let src = sample("elev.tif");
    for target in [
        file.join("x.gridstore"),
        PathBuf::from("/nonexistent-dir/x.gridstore"),
        PathBuf::from("/proc/x.gridstore"),
    ] {
        let err = failed_cleanly(&run(
            "gdal_translate",
            &["-q", "-of", "GRIDSTORE", s(&src), s(&target)],
        ));
        assert!(
            err.contains(s(&target)) && err.contains("creating the store directory"),
            "{err}"
        );
        assert!(!target.exists());
    }
}

#[test]
fn unsupported_data_types() {
    let dir = tmp();
    for (t, hint) in [
        ("CFloat32", "complex"),
        ("Int64", "64-bit"),
        ("UInt64", "64-bit"),
    ] {
        let vrt = dir.path().join(format!("{t}.vrt"));
        ok(
            "gdal_translate",
            &[
                "-q",
                "-of",
                "VRT",
                "-ot",
                t,
                s(&sample("elev.tif")),
                s(&vrt),
            ],
        );
        let target = dir.path().join(format!("{t}.gridstore"));
        let err = failed_cleanly(&run(
            "gdal_translate",
            &["-q", "-of", "GRIDSTORE", s(&vrt), s(&target)],
        ));
        assert!(err.contains(hint) && err.contains("-ot"), "{t}: {err}");
        assert!(!target.exists(), "{t}: nothing is left behind");
    }
}

#[test]
fn bad_creation_option_values() {
    let dir = tmp();
    let src = sample("elev.tif");
    for (opt, hint) in [
        ("BLOCKSIZE=100", "multiple of 16"),
        ("BLOCKSIZE=8", "multiple of 16"),
        ("COMPRESS=JPEG", "ZSTD, DEFLATE, LZ4, NONE"),
        ("LEVEL=99", "1 to 22"),
        ("PREDICTOR=FLOATING_POINT", "Float32/Float64"),
        ("PREDICTOR=MAYBE", "YES, NO"),
        ("RESAMPLING=CUBIC", "AVERAGE, NEAREST"),
        ("RESAMPLING=MIN,MAX", "one per band"),
        ("NUM_THREADS=lots", "ALL_CPUS"),
    ] {
        let target = dir.path().join("o.gridstore");
        let err = failed_cleanly(&run(
            "gdal_translate",
            &["-q", "-of", "GRIDSTORE", "-co", opt, s(&src), s(&target)],
        ));
        assert!(err.contains(hint), "{opt}: {err}");
        assert!(!target.exists(), "{opt}: nothing is left behind");
    }
}

#[test]
fn bad_open_option_values() {
    let dir = tmp();
    let st = small_store(dir.path());
    let err = failed_cleanly(&run("gdalinfo", &["-oo", "SNAPSHOT=abc", s(&st)]));
    assert!(
        err.contains("SNAPSHOT") && err.contains("gridstore log"),
        "{err}"
    );
    let err = failed_cleanly(&run("gdalinfo", &["-oo", "SNAPSHOT=42", s(&st)]));
    assert!(err.contains("no snapshot 42"), "{err}");
    let err = failed_cleanly(&run("gdalinfo", &["-oo", "NUM_THREADS=-1", s(&st)]));
    assert!(err.contains("NUM_THREADS"), "{err}");
}

#[test]
fn a_target_not_named_gridstore() {
    let dir = tmp();
    let target = dir.path().join("out.tif");
    let err = failed_cleanly(&run(
        "gdal_translate",
        &["-q", "-of", "GRIDSTORE", s(&sample("elev.tif")), s(&target)],
    ));
    assert!(err.contains("*.gridstore"), "{err}");
}

#[test]
fn gdal_translate_never_deletes_an_existing_store() {
    let dir = tmp();
    let st = small_store(dir.path());
    let before = checksums(s(&st));
    // Onto an existing store, gdal_translate adds to it; the same data again changes nothing.
    for target in [st.clone(), st.join("gridstore.json")] {
        ok(
            "gdal_translate",
            &[
                "-q",
                "-of",
                "GRIDSTORE",
                s(&sample("L7_ETMs.tif")),
                s(&target),
            ],
        );
        assert_eq!(checksums(s(&st)), before, "the data is unchanged");
    }
    // Options contradicting the store's fixed encoding are refused, naming them.
    let err = failed_cleanly(&run(
        "gdal_translate",
        &[
            "-q",
            "-of",
            "GRIDSTORE",
            "-co",
            "BLOCKSIZE=128",
            "-co",
            "COMPRESS=LZ4",
            s(&sample("L7_ETMs.tif")),
            s(&st),
        ],
    ));
    assert!(
        err.contains("BLOCKSIZE=128 (the store has 64)") && err.contains("COMPRESS=LZ4"),
        "{err}"
    );
    assert_eq!(checksums(s(&st)), before);
    // GDAL's own delete refuses, and says how to remove a store.
    let out = run("gdalmanage", &["delete", s(&st)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("gridstore rm"));
    assert_eq!(checksums(s(&st)), before);
}

#[test]
fn a_directory_that_is_not_a_store_is_left_alone() {
    let dir = tmp();
    let target = dir.path().join("busy.gridstore");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("precious.txt"), "keep me").unwrap();
    let err = failed_cleanly(&run(
        "gdal_translate",
        &["-q", "-of", "GRIDSTORE", s(&sample("elev.tif")), s(&target)],
    ));
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(target.join("precious.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn a_vector_source_is_refused() {
    let dir = tmp();
    let geojson = dir.path().join("p.geojson");
    std::fs::write(&geojson, r#"{"type":"FeatureCollection","features":[]}"#).unwrap();
    let out = run(
        "gdal_translate",
        &[
            "-q",
            "-of",
            "GRIDSTORE",
            s(&geojson),
            s(&dir.path().join("v.gridstore")),
        ],
    );
    failed_cleanly(&out);
}
