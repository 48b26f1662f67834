//! Opening, reading and writing stores.
//!
//! - [`Snapshot`]: a read-only view of one committed state. It never changes while open.
//! - [`Transaction`]: one write. New chunks and index nodes go to new objects named after
//!   the snapshot being made; `commit` publishes them all at once by replacing the manifest.
//! - [`lock`]: the one-writer-at-a-time lock and the recovery of writes that died.

pub mod claims;
mod compact;
pub mod history;
pub mod lock;
pub mod maintenance;
mod optimistic;
mod packs;
mod paths;
mod prefetch;
mod series;
mod series_window;
mod snapshot;
pub mod sources;
mod steps;
pub mod time_blocks;
mod transaction;

pub use compact::{compact, compact_in, Closed, Compacted};
pub use optimistic::MAX_REBASES;
pub use paths::{check_store_name, resolve_store_path, NAME_PREFIX, STORE_EXTENSION};
pub use series::{point_series, point_series_counted, PointSample};
pub use series_window::{read_series_window, SeriesRead, TickOut};
pub use snapshot::{store_exists, ChunkRef, Snapshot, DEFAULT_TILE_CACHE_BYTES};
pub use steps::{delete_steps, for_each_step, StepRecord, MAX_RECORD_BYTES};
pub use transaction::{NewStore, Transaction};
