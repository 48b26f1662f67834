//! Python readers users have: Debian's rasterio and the GDAL bindings read stores,
//! windows and overviews included.

mod common;
use common::*;

#[test]
fn rasterio_and_gdal_python_read_windows_and_overviews() {
    for (name, make, block) in [
        (
            "float",
            vec![
                "Float32", "1000", "700", "1", "--nodata", "-9999", "--holes",
            ],
            "64",
        ),
        ("rgb", vec!["Byte", "777", "555", "3"], "128"),
        ("int", vec!["UInt16", "513", "257", "2"], "256"),
    ] {
        let dir = tmp();
        let src = dir.path().join(format!("{name}.tif"));
        let store = dir.path().join(format!("{name}.gridstore"));
        let mut args = vec![s(&src)];
        args.extend_from_slice(&make);
        python_ok("make_raster.py", &args);
        ingest(s(&src), &store, &[&format!("BLOCKSIZE={block}")]);
        let out = python_ok("readers.py", &[s(&src), s(&store)]);
        assert!(out.starts_with("ok"), "{out}");
    }
}

#[test]
fn rasterio_reads_a_real_scene() {
    let src = sample("L7_ETMs.tif");
    let dir = tmp();
    let store = dir.path().join("l7.gridstore");
    ingest(s(&src), &store, &["BLOCKSIZE=64"]);
    let out = python_ok("readers.py", &[s(&src), s(&store)]);
    assert!(out.contains("overviews [2, 4, 8]"), "{out}");
}
