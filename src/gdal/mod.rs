//! Everything that talks to GDAL: reading source datasets, and the C ABI the driver shim
//! (cpp-shim/) calls.

pub mod append;
pub mod capi;
pub mod cpl;
pub mod crs;
pub mod ingest;
pub mod placement;
pub mod slice_time;
pub mod source;
pub mod time_translate;
pub mod variables;
