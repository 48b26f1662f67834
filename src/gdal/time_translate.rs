//! `gdal_translate -of GRIDSTORE` of time data: a source whose bands are time steps
//! (netCDF with a time axis, GRIB) makes or extends a time store, and `-co TIME=<ISO>`
//! writes the source as one step. The work is `gridstore append`'s, on the open dataset.

use std::path::Path;

use gdal_sys::GDALDatasetH;

use crate::error::Result;
use crate::options::{find, CreateOptions};
use crate::store::Snapshot;

use super::append::{append_datasets, AppendOptions, AxisOptions};
use super::cpl::from_c;
use super::ingest::IngestOptions;
use super::placement::WarpResampling;
use super::slice_time::TimeSource;

/// Creation options that make a copy a time write.
const TIME_OPTIONS: [&str; 6] = [
    "TIME",
    "TIME_REPLACE",
    "TIME_INSERT",
    "TIME_STEP",
    "TIME_CALENDAR",
    "TIME_UNITS",
];

/// Writes `source` into the store at `path` as time steps, if it is a time write: a
/// `TIME*` option is given, or the source's bands carry times and the store is new or has
/// a time axis. Returns false (nothing done) otherwise.
///
/// # Safety
/// `source` must be a valid dataset handle used by no other thread during the call.
pub unsafe fn translate(
    path: &Path,
    source: GDALDatasetH,
    raw: &[(String, String)],
    opts: &CreateOptions,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<bool> {
    let asked = TIME_OPTIONS.iter().any(|k| find(raw, k).is_some());
    // SAFETY: forwarded contract.
    let carries = unsafe { carries_time(source) };
    let time_write = asked || (carries && store_takes_time(path)?);
    if !time_write {
        return Ok(false);
    }
    let yes = |k: &str| find(raw, k).is_some_and(|v| v.eq_ignore_ascii_case("YES"));
    let append = AppendOptions {
        time: match find(raw, "TIME") {
            Some(t) => TimeSource::Fixed(t.to_string()),
            None => TimeSource::Metadata,
        },
        axis: AxisOptions {
            step: find(raw, "TIME_STEP").map(str::to_string),
            calendar: find(raw, "TIME_CALENDAR").map(str::to_string),
            units: find(raw, "TIME_UNITS").map(str::to_string),
            origin: None,
            bounds: None,
        },
        create: raw.to_vec(),
        data_type: None,
        packing: None,
        replace: yes("TIME_REPLACE"),
        insert: yes("TIME_INSERT"),
        compact: true,
        ingest: IngestOptions {
            resampling: match &opts.warp_resampling {
                Some(name) => WarpResampling::from_name(name)?,
                None => WarpResampling::default(),
            },
            threads: opts.threads,
            wait: opts.lock_wait,
            record_sources: true,
        },
        wait_for_slices: None,
        dry_run: false,
    };
    // SAFETY: forwarded contract.
    let name = unsafe { from_c(gdal_sys::GDALGetDescription(source)) }.unwrap_or_default();
    // SAFETY: forwarded contract.
    unsafe { append_datasets(path, &[name], &[source], &append, progress)? };
    Ok(true)
}

/// A store that does not exist yet, or has a time axis.
fn store_takes_time(path: &Path) -> Result<bool> {
    if !crate::store::store_exists(path)? {
        return Ok(true);
    }
    Ok(Snapshot::open(path, None)?.manifest().time.is_some())
}

/// Whether the source's bands carry times: a netCDF time axis or GRIB valid times.
unsafe fn carries_time(ds: GDALDatasetH) -> bool {
    // SAFETY (block): valid handle (contract); keys are NUL-terminated literals.
    unsafe {
        let units = gdal_sys::GDALGetMetadataItem(ds, c"time#units".as_ptr(), std::ptr::null());
        let band = gdal_sys::GDALGetRasterBand(ds, 1);
        if band.is_null() {
            return false;
        }
        let item = |k: &std::ffi::CStr| {
            !gdal_sys::GDALGetMetadataItem(band, k.as_ptr(), std::ptr::null()).is_null()
        };
        (!units.is_null() && item(c"NETCDF_DIM_time")) || item(c"GRIB_VALID_TIME")
    }
}
