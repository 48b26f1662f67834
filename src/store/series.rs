//! Point time series: one pixel's values over many time steps.
//!
//! Each step's tile is a chunk cut into blocks, each band's block its own frame (docs/
//! FORMAT.md §5). So a point costs, per step, the chunk's head and the one frame per band
//! (and the mask) holding the pixel: a few KiB read and decoded, not the tile. Steps are
//! read in parallel.

use rayon::prelude::*;

use crate::area::Area;
use crate::chunk::{self, Location};
use crate::dtype::Sample;
use crate::error::Result;
use crate::grid::TileLoc;
use crate::index::{Entry, TileKey};
use crate::tile::{BandValidity, SampleBuf, ValidityTest};
use crate::with_sample_type;

use super::Snapshot;

/// One step of a point series: its tick, and each band's value (`None`: no data there).
#[derive(Debug, Clone, PartialEq)]
pub struct PointSample {
    pub tick: u32,
    pub values: Vec<Option<f64>>,
}

/// The values at level-0 grid pixel (`x`, `y`) at each of `ticks`, in their order.
pub fn point_series(snap: &Snapshot, ticks: &[u32], x: i64, y: i64) -> Result<Vec<PointSample>> {
    let ts = i64::from(snap.manifest().grid.tile_size);
    let (col, row) = (x.div_euclid(ts), y.div_euclid(ts));
    let at = ((y - row * ts) as usize, (x - col * ts) as usize);
    let loc = match (i32::try_from(col), i32::try_from(row)) {
        (Ok(c), Ok(r)) => TileLoc::new(0, c, r),
        // Beyond any tile index: no step holds data there.
        _ => return Ok(ticks.iter().map(|&t| missing(snap, t)).collect()),
    };
    let keys: Vec<TileKey> = ticks.iter().map(|&t| TileKey::new(t, 0, loc)).collect();
    let entries = snap.entries(&keys)?;
    keys.par_iter()
        .zip(entries)
        .map(|(key, entry)| match entry {
            Some(e) => sample_at(snap, key, &e, at),
            None => Ok(missing(snap, key.time)),
        })
        .collect()
}

fn missing(snap: &Snapshot, tick: u32) -> PointSample {
    PointSample {
        tick,
        values: vec![None; snap.manifest().bands.len()],
    }
}

/// Every band's value at (`row`, `col`) of the tile `key`, whose index entry is `e`.
fn sample_at(
    snap: &Snapshot,
    key: &TileKey,
    e: &Entry,
    (row, col): (usize, usize),
) -> Result<PointSample> {
    let m = snap.manifest();
    let size = m.grid.tile_size as usize;
    let bands = m.bands.len();
    let plane = size * size;
    thread_local! {
        static DATA: std::cell::RefCell<SampleBuf> = std::cell::RefCell::new(SampleBuf::default());
        static MASK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    DATA.with(|data| {
        MASK.with(|mask| {
            let (mut data, mut mask) = (data.borrow_mut(), mask.borrow_mut());
            let len = plane * bands * m.data_type.size();
            if data.len() != len {
                *data = SampleBuf::zeroed(len);
            }
            mask.resize(plane, 255);
            read_pixel_blocks(snap, key, e, (row, col), data.bytes_mut(), &mut mask)?;
            let valid_mask = mask[row * size + col] != 0;
            let values = (0..bands)
                .map(|b| {
                    let v = value(
                        data.bytes(),
                        m.data_type,
                        b * plane + row * size + col,
                        &snap.validity()[b],
                    );
                    v.filter(|_| valid_mask || snap.validity()[b].nodata.is_some())
                })
                .collect();
            Ok(PointSample {
                tick: key.time,
                values,
            })
        })
    })
}

/// Decodes the blocks of the chunk of `key` that hold (`row`, `col`), every band's, and
/// the mask, into tile-sized buffers. A chunk of the first format is decoded whole.
fn read_pixel_blocks(
    snap: &Snapshot,
    key: &TileKey,
    e: &Entry,
    (row, col): (usize, usize),
    data: &mut [u8],
    mask: &mut [u8],
) -> Result<()> {
    let c = snap.head_of(key, e)?;
    if !c.head.has_frame_table() {
        return snap.read_tile_into(key, Some(*e), data, Some(mask));
    }
    let blocks = c
        .head
        .blocks_meeting(&Area::new(row..row + 1, col..col + 1));
    let read = |at: Location, offset: usize, len: usize| snap.read_chunk_range(&c, at, offset, len);
    chunk::read_blocks(&c.head, &blocks, read, data, Some(mask), &c.path)
}

/// Sample `i` of `bytes` as `f64`, `None` when the band's validity says it holds no data.
fn value(bytes: &[u8], dtype: crate::dtype::DataType, i: usize, v: &BandValidity) -> Option<f64> {
    with_sample_type!(dtype, T => {
        let samples: &[T] = bytemuck::cast_slice(bytes);
        let x = samples[i];
        ValidityTest::<T>::new(v).holds_data(x).then(|| x.to_f64())
    })
}
