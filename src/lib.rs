//! gridstore: a chunked, multi-resolution store for gridded data, and a GDAL driver for it.

pub mod aggregate;
pub mod area;
pub mod catalog;
pub mod checksum;
pub mod chunk;
pub mod codec;
pub mod dtype;
pub mod error;
/// Fuzz targets and their engine, for `tests/fuzz.rs` and `bench/fuzz.rs`.
#[doc(hidden)]
pub mod fuzz;
pub mod grid;
pub mod tile;

pub use error::{Error, ErrorKind, Result};
pub mod gdal;
pub mod index;
pub mod ingest;
pub mod keys;
pub mod manifest;
pub mod options;
pub mod pyramid;
pub mod refs;
pub mod shard;
pub mod stac;
pub mod storage;
pub mod store;
pub mod text;
pub mod time;
