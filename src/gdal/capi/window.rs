//! A small window read over many GDAL bands of a time view at once (rasterio's
//! `read(window=Window(x, y, 1, 1))`, `gdallocationinfo`): one routed read of the ticks
//! ([`read_series_window`]): time blocks where a closed block has them, else per step only
//! the blocks of its chunk that the window meets, in parallel. GDAL's own path would read
//! a whole block per band, one band after another.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::grid::PixelRect;
use crate::store::{read_series_window, Snapshot, TickOut};

use super::time_view::Source;

/// Reads `rect` (pixels of `level`) of each source into its plane: `sources[i]` goes to
/// `planes[i]`, a `w * h` buffer of the store's type. Pixels without data get the band's
/// fill value.
pub fn read_window(
    snap: &Snapshot,
    level: u8,
    rect: PixelRect,
    sources: &[Source],
    planes: Vec<&mut [u8]>,
) -> Result<()> {
    // The planes of each tick: one routed output per tick.
    let mut by_tick: BTreeMap<u32, Vec<(usize, &mut [u8])>> = BTreeMap::new();
    for (source, data) in sources.iter().zip(planes) {
        by_tick
            .entry(source.tick)
            .or_default()
            .push((source.band, data));
    }
    let mut outs: Vec<TickOut<'_>> = by_tick
        .into_iter()
        .map(|(tick, bands)| TickOut {
            tick,
            bands,
            mask: None,
        })
        .collect();
    read_series_window(snap, level, rect, &mut outs)?;
    Ok(())
}
