//! The multidimensional view of a store (docs/DRIVER.md, "Multidimensional view"):
//! `gdalmdiminfo` of time stores made by `gridstore append` (real netCDF series, a regular
//! axis with a hole, a CRS, packed values), `gdalmdimtranslate -subset` to netCDF and Zarr
//! read back by xarray (or GDAL), reads with steps and bad requests, and a classic open
//! that still takes the classic path.
//!
//! Every expectation is taken from the classic view of the same store by
//! tests/python/time_mdim_checks.py, not from a copy of the output.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use serde_json::Value;

const CHECKS: &str = "time_mdim_checks.py";

fn gridstore() -> String {
    env!("CARGO_BIN_EXE_gridstore").to_string()
}

/// A store made by `gridstore append` of a real netCDF series in ../shared/data.
fn real_store(dir: &Path, name: &str) -> PathBuf {
    let store = dir.join(format!("{name}.gridstore"));
    ok(
        &gridstore(),
        &["append", s(&store), s(&sample(&format!("{name}.nc"))), "-q"],
    );
    store
}

/// Four slices (EPSG:32633, two variables, see time_mdim_checks.py `slices`).
fn slices(dir: &Path) -> Vec<PathBuf> {
    python_ok(CHECKS, &["slices", s(dir), "4"]);
    (0..4).map(|i| dir.join(format!("s{i}.tif"))).collect()
}

/// An hourly store of slices 0, 1 and 3: a hole at the third step; 32-pixel tiles.
fn hourly_with_hole(dir: &Path, src: &[PathBuf]) -> PathBuf {
    let store = dir.join("hourly.gridstore");
    for i in [0, 1, 3] {
        let time = format!("2024-01-01T0{i}:00:00Z");
        ok(
            &gridstore(),
            &[
                "append",
                s(&store),
                s(&src[i]),
                "--time",
                &time,
                "--time-step",
                "PT1H",
                "--insert",
                "--co",
                "BLOCKSIZE=32",
                "-q",
            ],
        );
    }
    store
}

/// A store of three monthly slices packed as UInt16 with a scale (irregular axis).
fn packed(dir: &Path, src: &[PathBuf]) -> PathBuf {
    let store = dir.join("packed.gridstore");
    for (i, slice) in src.iter().take(3).enumerate() {
        let time = format!("2024-0{}-01T00:00:00Z", i + 1);
        ok(
            &gridstore(),
            &[
                "append",
                s(&store),
                s(slice),
                "--time",
                &time,
                "--type",
                "UInt16",
                "--scale",
                "0.01",
                "--offset",
                "0",
                "-q",
            ],
        );
    }
    store
}

fn mdiminfo(dataset: &str) -> Value {
    serde_json::from_str(&ok("gdalmdiminfo", &[dataset])).expect("gdalmdiminfo's JSON")
}

#[test]
fn gdalmdiminfo_of_real_series_shows_what_the_classic_view_shows() {
    let dir = tmp();
    for name in ["test_stageiv_xyt", "bcsd_obs_1999"] {
        let store = real_store(dir.path(), name);
        python_ok(CHECKS, &["info", s(&store)]);
    }
}

#[test]
fn gdalmdiminfo_shows_holes_crs_nodata_scale_and_offset() {
    let dir = tmp();
    let src = slices(dir.path());
    let hourly = hourly_with_hole(dir.path(), &src);
    python_ok(CHECKS, &["info", s(&hourly)]);
    let doc = mdiminfo(s(&hourly));
    // The hole is a step of the time dimension, as it is a band of the classic view.
    assert_eq!(doc["dimensions"][0]["size"], 4, "{doc}");
    assert_eq!(
        doc["arrays"]["rain"]["block_size"],
        serde_json::json!([1, 32, 32])
    );
    let packed = packed(dir.path(), &src);
    python_ok(CHECKS, &["info", s(&packed)]);
    let doc = mdiminfo(s(&packed));
    assert_eq!(doc["arrays"]["rain"]["datatype"], "UInt16", "{doc}");
    assert_eq!(doc["arrays"]["rain"]["scale"], 0.01, "{doc}");
}

#[test]
fn gdalmdimtranslate_subsets_time_into_netcdf_and_zarr_that_xarray_reads() {
    let dir = tmp();
    let out = |name: &str| dir.path().join(name);
    let monthly = real_store(dir.path(), "bcsd_obs_1999");
    for (fmt, file) in [("netCDF", "monthly.nc"), ("Zarr", "monthly.zarr")] {
        let target = out(file);
        python_ok(
            CHECKS,
            &["translate", s(&monthly), fmt, s(&target), "3", "5"],
        );
    }
    let src = slices(dir.path());
    // Steps 1..3 of the hourly axis, the hole included (nodata in the export).
    let hourly = hourly_with_hole(dir.path(), &src);
    let target = out("hourly.nc");
    python_ok(
        CHECKS,
        &["translate", s(&hourly), "netCDF", s(&target), "1", "3"],
    );
    let packed = packed(dir.path(), &src);
    let target = out("packed.nc");
    python_ok(
        CHECKS,
        &["translate", s(&packed), "netCDF", s(&target), "0", "1"],
    );
    // GDAL 3.6's Zarr writer keeps the CRS as UTF-8 text that Debian's zarr cannot decode
    // (see docs/DRIVER.md): a store with a CRS is checked through GDAL's own reader.
    let target = out("hourly.zarr");
    let args = [
        "translate",
        s(&hourly),
        "Zarr",
        s(&target),
        "0",
        "2",
        "gdal",
    ];
    python_ok(CHECKS, &args);
}

#[test]
fn reads_with_steps_match_the_classic_view_and_bad_requests_fail_cleanly() {
    let dir = tmp();
    let src = slices(dir.path());
    python_ok(
        CHECKS,
        &["requests", s(&hourly_with_hole(dir.path(), &src))],
    );
    let real = real_store(dir.path(), "test_stageiv_xyt");
    python_ok(CHECKS, &["requests", s(&real)]);
    // The classic view's selections are refused, saying how to subset instead.
    for option in [
        "TIME_RANGE=2024-01-01T00:00:00Z/2024-01-01T01:00:00Z",
        "LAST=2",
    ] {
        let err = failed_cleanly(&run("gdalmdiminfo", &["-oo", option, s(&real)]));
        assert!(err.contains("gdalmdimtranslate -subset"), "{err}");
    }
    let err = failed_cleanly(&run(
        "gdalmdimtranslate",
        &[
            "-subset",
            "time(0,1)",
            s(&real),
            s(&dir.path().join("none.nc")),
        ],
    ));
    assert!(!err.is_empty());
}

#[test]
fn a_classic_open_takes_the_classic_path() {
    let dir = tmp();
    let store = real_store(dir.path(), "test_stageiv_xyt");
    python_ok(CHECKS, &["classic", s(&store)]);
    let tif = dir.path().join("series.tif");
    ok("gdal_translate", &["-q", s(&store), s(&tif)]);
    let info: Value =
        serde_json::from_str(&ok("gdalinfo", &["-json", s(&tif)])).expect("gdalinfo -json");
    let doc = mdiminfo(s(&store));
    let steps = &doc["dimensions"][0]["size"];
    assert_eq!(
        info["bands"].as_array().map(Vec::len),
        steps.as_u64().map(|n| n as usize),
        "the GeoTIFF has a band per time step"
    );
}

#[test]
fn a_store_without_time_has_y_x_arrays() {
    let dir = tmp();
    let src = slices(dir.path());
    let store = dir.path().join("still.gridstore");
    ingest(s(&src[0]), &store, &["BLOCKSIZE=32"]);
    let doc = mdiminfo(s(&store));
    let names: Vec<&str> = doc["dimensions"]
        .as_array()
        .expect("dimensions")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["y", "x"], "{doc}");
    let rain = &doc["arrays"]["rain"];
    assert_eq!(rain["dimensions"], serde_json::json!(["/y", "/x"]), "{doc}");
    assert_eq!(rain["block_size"], serde_json::json!([32, 32]), "{doc}");
    // Its pixels are the slice's.
    let out = dir.path().join("still.nc");
    ok("gdalmdimtranslate", &["-q", s(&store), s(&out)]);
    let classic = band_checksums(s(&src[0]));
    let exported = band_checksums(&format!("NETCDF:\"{}\":rain", s(&out)));
    assert_eq!(classic[..1], exported[..], "rain differs after the export");
}
