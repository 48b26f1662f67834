//! gdal_translate into a store and back: every data type, several bands, nodata, NaN,
//! georeferencing, colour tables, masks. The round trip must give identical checksums and
//! identical pixels, and the levels must match an independent computation.

mod common;
use common::*;

fn round_trip(name: &str, make: &[&str], creation: &[&str]) {
    let dir = tmp();
    let src = dir.path().join(format!("{name}.tif"));
    let store = dir.path().join(format!("{name}.gridstore"));
    let back = dir.path().join(format!("{name}.back.tif"));
    let mut args = vec![s(&src)];
    args.extend_from_slice(make);
    python_ok("make_raster.py", &args);
    ingest(s(&src), &store, creation);
    ok("gdal_translate", &["-q", s(&store), s(&back)]);
    assert_eq!(
        band_checksums(s(&src)),
        band_checksums(s(&back)),
        "{name}: checksums"
    );
    python_ok("compare.py", &[s(&src), s(&store)]);
    python_ok("compare.py", &[s(&src), s(&back)]);
    python_ok("levels.py", &[s(&src), s(&store)]);
}

#[test]
fn every_data_type_round_trips_with_identical_checksums() {
    for t in [
        "Byte", "UInt16", "Int16", "UInt32", "Int32", "Float32", "Float64",
    ] {
        // An odd size, so tiles at the edges are partly outside the raster.
        round_trip(t, &[t, "211", "147", "2"], &["BLOCKSIZE=32"]);
    }
}

#[test]
fn every_codec_and_predictor_round_trips() {
    for (i, co) in [
        ["COMPRESS=ZSTD", "PREDICTOR=NO"],
        ["COMPRESS=DEFLATE", "PREDICTOR=YES"],
        ["COMPRESS=LZ4", "PREDICTOR=STANDARD"],
        ["COMPRESS=NONE", "PREDICTOR=YES"],
        ["COMPRESS=ZSTD", "LEVEL=9"],
    ]
    .iter()
    .enumerate()
    {
        for t in ["Int16", "Float32"] {
            let mut opts = vec!["BLOCKSIZE=64"];
            opts.extend_from_slice(co);
            round_trip(
                &format!("codec{i}{t}"),
                &[t, "150", "130", "1", "--seed", "7"],
                &opts,
            );
        }
    }
}

#[test]
fn nodata_and_nan_are_kept() {
    round_trip(
        "nodata_int",
        &["Int16", "190", "170", "3", "--nodata", "-9999", "--holes"],
        &["BLOCKSIZE=32"],
    );
    round_trip(
        "nodata_nan",
        &["Float32", "190", "170", "1", "--nodata", "nan", "--holes"],
        &["BLOCKSIZE=32"],
    );
    round_trip(
        "nan_values",
        &["Float64", "190", "170", "1", "--nan"],
        &["BLOCKSIZE=32"],
    );
    round_trip(
        "nodata_and_nan",
        &[
            "Float32", "190", "170", "1", "--nodata", "-1", "--nan", "--holes",
        ],
        &["BLOCKSIZE=32"],
    );
}

#[test]
fn colour_tables_are_kept_and_levels_use_nearest() {
    round_trip(
        "palette",
        &["Byte", "200", "120", "1", "--colortable", "--classes", "12"],
        &["BLOCKSIZE=16"],
    );
    let dir = tmp();
    let src = dir.path().join("p.tif");
    let store = dir.path().join("p.gridstore");
    python_ok(
        "make_raster.py",
        &[
            s(&src),
            "Byte",
            "200",
            "120",
            "1",
            "--colortable",
            "--classes",
            "12",
        ],
    );
    ingest(s(&src), &store, &["BLOCKSIZE=16"]);
    let info = ok("gdalinfo", &[s(&store)]);
    assert!(
        info.contains("Color Table (RGB with 256 entries)"),
        "{info}"
    );
    assert!(info.contains("ColorInterp=Palette"), "{info}");
}

#[test]
fn an_alpha_band_becomes_the_mask() {
    round_trip(
        "alpha",
        &["Byte", "203", "150", "3", "--alpha", "--holes"],
        &["BLOCKSIZE=32"],
    );
    let dir = tmp();
    let src = dir.path().join("a.tif");
    let store = dir.path().join("a.gridstore");
    python_ok(
        "make_raster.py",
        &[s(&src), "Byte", "203", "150", "3", "--alpha", "--holes"],
    );
    ingest(s(&src), &store, &["BLOCKSIZE=32"]);
    let info = ok("gdalinfo", &[s(&store)]);
    assert!(info.contains("Mask Flags: PER_DATASET"), "{info}");
}

#[test]
fn every_resampling_method_matches_the_reference() {
    for (i, (make, method)) in [
        (vec!["Int16", "--nodata", "-9999", "--holes"], "MODE"),
        (vec!["UInt16", "--nodata", "0", "--holes"], "MIN"),
        (vec!["Int32"], "MAX"),
        (vec!["Float32", "--nodata", "-1", "--holes"], "NEAREST"),
        (vec!["Byte", "--classes", "6"], "MODE"),
        (vec!["Float64", "--nan"], "AVERAGE"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp();
        let src = dir.path().join(format!("m{i}.tif"));
        let store = dir.path().join(format!("m{i}.gridstore"));
        let mut args = vec![s(&src), make[0], "173", "219", "1"];
        args.extend_from_slice(&make[1..]);
        python_ok("make_raster.py", &args);
        let co = format!("RESAMPLING={method}");
        ingest(s(&src), &store, &["BLOCKSIZE=16", &co]);
        let out = python_ok("levels.py", &[s(&src), s(&store), method]);
        assert!(out.contains("level 4"), "expected several levels: {out}");
    }
}

#[test]
fn per_band_methods_and_metadata() {
    let dir = tmp();
    let src = dir.path().join("b.tif");
    let store = dir.path().join("b.gridstore");
    python_ok("make_raster.py", &[s(&src), "Int16", "120", "100", "3"]);
    ingest(
        s(&src),
        &store,
        &["BLOCKSIZE=16", "RESAMPLING=MIN,MAX,AVERAGE"],
    );
    python_ok("levels.py", &[s(&src), s(&store), "MIN", "MAX", "AVERAGE"]);
    let info = ok("gdalinfo", &[s(&store)]);
    assert!(info.contains("TEST_ITEM=kept"), "dataset metadata: {info}");
    assert!(
        info.contains("Description = band 2"),
        "band description: {info}"
    );
}

#[test]
fn geotransform_and_crs_are_preserved() {
    let dir = tmp();
    let src = dir.path().join("g.tif");
    let store = dir.path().join("g.gridstore");
    python_ok(
        "make_raster.py",
        &[s(&src), "Byte", "64", "48", "1", "--epsg", "3035"],
    );
    ingest(s(&src), &store, &[]);
    let a = ok("gdalinfo", &["-json", s(&src)]);
    let b = ok("gdalinfo", &["-json", s(&store)]);
    let a: serde_json::Value = serde_json::from_str(&a).unwrap();
    let b: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(a["geoTransform"], b["geoTransform"]);
    assert_eq!(a["coordinateSystem"], b["coordinateSystem"]);
    assert_eq!(a["cornerCoordinates"], b["cornerCoordinates"]);
}

#[test]
fn a_raster_without_georeferencing_stays_without() {
    let dir = tmp();
    let src = dir.path().join("plain.tif");
    let store = dir.path().join("plain.gridstore");
    python_ok(
        "make_raster.py",
        &[s(&src), "Byte", "40", "30", "1", "--nogeo"],
    );
    ingest(s(&src), &store, &[]);
    let info = ok("gdalinfo", &[s(&store)]);
    assert!(!info.contains("Origin ="), "{info}");
    assert_eq!(band_checksums(s(&src)), band_checksums(s(&store)));
}

#[test]
fn stores_open_by_directory_manifest_and_prefix() {
    let dir = tmp();
    let store = dir.path().join("e.gridstore");
    ingest(s(&sample("elev.tif")), &store, &["BLOCKSIZE=32"]);
    let want = band_checksums(s(&store));
    let manifest = store.join("gridstore.json");
    let prefixed = format!("GRIDSTORE:{}", s(&store));
    for name in [s(&manifest), &prefixed, &format!("{}/", s(&store))] {
        assert_eq!(band_checksums(name), want, "{name}");
    }
}

#[test]
fn progress_is_reported_and_cancelling_leaves_nothing() {
    let dir = tmp();
    let src = sample("L7_ETMs.tif");
    let store = dir.path().join("p.gridstore");
    let out = python_ok("progress.py", &[s(&src), s(&store)]);
    assert!(
        out.contains("completed") && out.contains(" 0.0 1.0"),
        "{out}"
    );
    let cancelled = dir.path().join("c.gridstore");
    let out = python_ok("progress.py", &[s(&src), s(&cancelled), "0.4"]);
    assert!(
        out.contains("cancelled") && out.contains("interrupted"),
        "{out}"
    );
    assert!(
        !cancelled.exists(),
        "a cancelled copy leaves nothing behind"
    );
    // gdal_translate prints GDAL's progress bar.
    let text = ok(
        "gdal_translate",
        &[
            "-of",
            "GRIDSTORE",
            s(&src),
            s(&dir.path().join("t.gridstore")),
        ],
    );
    assert!(
        text.contains("0...10...20...30...40...50...60...70...80...90...100 - done."),
        "{text}"
    );
}
