//! The real sample rasters (see the data README): each survives gdal_translate into a store
//! and back with identical checksums, and its levels hold the right values.

mod common;
use common::*;

fn check(source: &str, block: &str) {
    let dir = tmp();
    let store = dir.path().join("s.gridstore");
    let back = dir.path().join("back.tif");
    ingest(source, &store, &[&format!("BLOCKSIZE={block}")]);
    ok("gdal_translate", &["-q", s(&store), s(&back)]);
    assert_eq!(band_checksums(source), band_checksums(s(&back)), "{source}");
    python_ok("compare.py", &[source, s(&store)]);
    let levels = python_ok("levels.py", &[source, s(&store)]);
    assert!(
        levels.contains("level 2"),
        "{source}: expected levels: {levels}"
    );
}

#[test]
fn landsat_six_bands_odd_size() {
    check(s(&sample("L7_ETMs.tif")), "32");
}

/// The coordinate system section of gdalinfo's report.
fn crs_section(dataset: &str) -> String {
    let info = ok("gdalinfo", &[dataset]);
    let start = info.find("Coordinate System is:").expect("a CRS");
    let end = info
        .find("Data axis to CRS axis mapping")
        .expect("axis mapping");
    info[start..end].to_string()
}

#[test]
fn dem_with_a_datum_shift_crs() {
    let src = sample("olinda_dem_utm25s.tif");
    check(s(&src), "16");
    let dir = tmp();
    let store = dir.path().join("d.gridstore");
    ingest(s(&src), &store, &["BLOCKSIZE=16"]);
    // The whole CRS (here a BOUNDCRS with its datum shift) survives, word for word.
    assert_eq!(crs_section(s(&store)), crs_section(s(&src)));
}

#[test]
fn land_cover_classes_with_palette() {
    check(s(&sample("lc.tif")), "16");
}

#[test]
fn elevation_int16_with_nodata_in_lon_lat() {
    check(s(&sample("elev.tif")), "16");
}

#[test]
fn netcdf_subdataset_with_twelve_monthly_bands() {
    let src = format!("NETCDF:\"{}\":pr", s(&sample("bcsd_obs_1999.nc")));
    check(&src, "16");
}

#[test]
fn netcdf_polar_stereographic_with_nan_nodata() {
    let src = format!(
        "NETCDF:\"{}\":Total_precipitation_surface_1_Hour_Accumulation",
        s(&sample("test_stageiv_xyt.nc"))
    );
    check(&src, "16");
}
