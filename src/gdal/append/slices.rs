//! Opening slices: waiting for them to be complete, and combining the variables of a file.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

use super::super::cpl::QuietErrors;
use super::super::ingest::OpenedDataset;
use super::super::variables::combine_variables;

/// Opens a slice; a file of several variables on one grid opens as their combination.
pub(super) fn open_slice(name: &str) -> Result<OpenedDataset> {
    let opened = OpenedDataset::open(name)?;
    // SAFETY: the dataset is open and used on this thread only.
    Ok(unsafe { combine_variables(opened.0, name)? }.unwrap_or(opened))
}

/// Waits until the slice `name` exists, opens, and its size stopped changing, for at most
/// `limit`. A name that is no file (a subdataset such as `NETCDF:"f.nc":var`, a remote
/// object) has no size to watch: it is ready once it opens.
pub(super) fn wait_for_slice(name: &str, limit: Duration) -> Result<()> {
    let started = Instant::now();
    let mut last_size = None;
    loop {
        let size = std::fs::metadata(name).ok().map(|m| m.len());
        let settled = size.is_none() || size == last_size;
        if settled && opens_quietly(name) {
            return Ok(());
        }
        if started.elapsed() >= limit {
            return Err(Error::InvalidInput(format!(
                "{name}: {} after waiting {} s (--wait-for-slices)",
                if size.is_some() {
                    "still being written, or not a raster GDAL opens,"
                } else {
                    "does not exist (or does not open as a raster)"
                },
                limit.as_secs()
            )));
        }
        last_size = size;
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Whether `name` opens as a raster, without GDAL printing why not (a slice waited for is
/// expected not to, a while).
fn opens_quietly(name: &str) -> bool {
    let _quiet = QuietErrors::push();
    OpenedDataset::open(name).is_ok()
}
