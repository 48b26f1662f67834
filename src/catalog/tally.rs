//! What a backend's summary row holds for some items of one collection and CRS, and how
//! two such tallies combine: kept up to date by every write, so that extents never scan.

use std::collections::BTreeMap;

use super::footprint::merge_wrapped;
use super::{Bbox, Item};

#[derive(Debug, Clone, Copy)]
pub struct Tally {
    pub count: u64,
    /// Earliest start (µs UTC).
    pub start: i64,
    /// Latest end (µs UTC, excluded).
    pub end: i64,
    /// The longest item time (end - start): lets a search bound its time index scan.
    pub max_span: i64,
    /// The union of the native bounds.
    pub bounds: Bbox,
    /// The extent in EPSG:4326, west > east across the antimeridian.
    pub wgs84: Bbox,
}

impl Tally {
    pub fn of(item: &Item) -> Tally {
        Tally {
            count: 1,
            start: item.start_us,
            end: item.end_us,
            max_span: item.end_us.saturating_sub(item.start_us),
            bounds: item.footprint.native_bounds,
            wgs84: item.footprint.bbox_4326(),
        }
    }

    pub fn merge(self, o: Tally) -> Tally {
        let (a, b) = (self.bounds, o.bounds);
        Tally {
            count: self.count + o.count,
            start: self.start.min(o.start),
            end: self.end.max(o.end),
            max_span: self.max_span.max(o.max_span),
            bounds: [
                a[0].min(b[0]),
                a[1].min(b[1]),
                a[2].max(b[2]),
                a[3].max(b[3]),
            ],
            wgs84: merge_wrapped(self.wgs84, o.wgs84),
        }
    }
}

/// Adds `t` to the tally kept under `key`.
pub fn merge_into<K: Ord>(map: &mut BTreeMap<K, Tally>, key: K, t: Tally) {
    let merged = match map.get(&key) {
        Some(old) => old.merge(t),
        None => t,
    };
    map.insert(key, merged);
}
