//! Separate dataset handles in separate threads, as QGIS uses them: every thread reads the
//! same values, including overviews, with no interference.

mod common;
use common::*;

use std::ffi::{c_void, CString};

/// GDAL_OF_RASTER from gdal.h (a macro, so not in the bindings).
const GDAL_OF_RASTER: u32 = 0x02;

/// Reads a band (and its overviews) through the GDAL C API and sums the samples.
fn read_sums(path: &str) -> Vec<f64> {
    let name = CString::new(path).unwrap();
    // SAFETY: plain GDAL C API use: a handle opened, read, and closed by this thread only.
    unsafe {
        let ds = gdal_sys::GDALOpenEx(
            name.as_ptr(),
            GDAL_OF_RASTER,
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
        );
        assert!(!ds.is_null(), "open failed");
        let mut sums = Vec::new();
        for b in 1..=gdal_sys::GDALGetRasterCount(ds) {
            let band = gdal_sys::GDALGetRasterBand(ds, b);
            let mut bands = vec![band];
            for o in 0..gdal_sys::GDALGetOverviewCount(band) {
                bands.push(gdal_sys::GDALGetOverview(band, o));
            }
            for h in bands {
                let (w, hgt) = (
                    gdal_sys::GDALGetRasterBandXSize(h),
                    gdal_sys::GDALGetRasterBandYSize(h),
                );
                let mut buf = vec![0f64; (w * hgt) as usize];
                let err = gdal_sys::GDALRasterIO(
                    h,
                    gdal_sys::GDALRWFlag::GF_Read,
                    0,
                    0,
                    w,
                    hgt,
                    buf.as_mut_ptr() as *mut c_void,
                    w,
                    hgt,
                    gdal_sys::GDALDataType::GDT_Float64,
                    0,
                    0,
                );
                assert_eq!(err, gdal_sys::CPLErr::CE_None);
                sums.push(buf.iter().sum());
            }
        }
        gdal_sys::GDALClose(ds);
        sums
    }
}

#[test]
fn separate_handles_in_separate_threads_read_the_same_values() {
    let dir = tmp();
    let src = dir.path().join("t.tif");
    let store = dir.path().join("t.gridstore");
    python_ok(
        "make_raster.py",
        &[
            s(&src),
            "Float32",
            "900",
            "700",
            "3",
            "--nodata",
            "-1",
            "--holes",
        ],
    );
    ingest(s(&src), &store, &["BLOCKSIZE=64"]);
    // This process registers the driver straight from the library under test.
    // SAFETY: registration happens once, before any thread opens a dataset.
    unsafe {
        gridstore::gdal::capi::GDALRegister_GRIDSTORE();
        gdal_sys::GDALAllRegister();
    }
    let want = read_sums(s(&store));
    let store = s(&store).to_string();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || (0..5).map(|_| read_sums(&store)).collect::<Vec<_>>())
        })
        .collect();
    for t in threads {
        for sums in t.join().expect("reader thread") {
            assert_eq!(sums, want);
        }
    }
}
