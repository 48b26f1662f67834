//! Time arithmetic for time axes: CF calendars, instants, CF units and regular steps.
//!
//! A time axis labels each step with an instant, and every tool that sees the axis (GDAL's
//! netCDF conventions, xarray, cftime) speaks CF: a count of units since a reference, in a
//! named calendar. This module is that arithmetic and nothing else: no I/O, no store. All of
//! it is closed-form and checked: no loops over years, no panics, overflow is an error.
//!
//! - [`Calendar`]: which dates exist, and day numbers (`calendar.rs`).
//! - [`DateTime`]: an instant to the second, ISO 8601 text, seconds in a calendar
//!   (`instant.rs`).
//! - [`CfUnits`]: `minutes since 2020-01-01T00:00:00Z`, values to and from instants
//!   (`units.rs`).
//! - [`Step`], [`RegularAxis`]: ISO 8601 durations and the axis `origin + n * step`
//!   (`step.rs`).
//! - [`TimeSpec`], [`TimeAxis`]: a store's axis as the manifest holds it, and its ticks
//!   (`axis.rs`).

mod axis;
mod calendar;
mod dimension;
mod instant;
mod step;
mod units;

pub use axis::{AxisKind, BoundsSpec, TimeAxis, TimeSpec, DEFAULT_SERIES_BLOCK, MAX_TICK};
pub use calendar::{Calendar, MAX_YEAR, MIN_YEAR};
pub use dimension::TimeDimension;
pub use instant::{DateTime, SECONDS_PER_DAY};
pub use step::{RegularAxis, Step};
pub use units::{CfUnits, TimeUnit};
