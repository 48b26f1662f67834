//! A small window read over many GDAL bands of a time view at once (rasterio's
//! `read(window=Window(x, y, 1, 1))`, `gdallocationinfo`): one walk of the tile index for
//! every step, then per step only the blocks of its chunk that the window meets, steps in
//! parallel. GDAL's own path would read a whole block per band, one band after another.

use std::cell::RefCell;
use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::area::Area;
use crate::chunk;
use crate::error::Result;
use crate::grid::PixelRect;
use crate::index::{Entry, TileKey};
use crate::store::Snapshot;
use crate::tile::fill_value;
use crate::with_sample_type;

use super::time_view::Source;

/// One GDAL band's output: the store band it takes, and a `w * h` buffer of the store's
/// type.
pub struct Plane<'a> {
    pub band: usize,
    pub data: &'a mut [u8],
}

/// Reads `rect` (pixels of `level`) of each source into its plane: `sources[i]` goes to
/// `planes[i]`. Pixels without data get the band's fill value.
pub fn read_window(
    snap: &Snapshot,
    level: u8,
    rect: PixelRect,
    sources: &[Source],
    planes: Vec<&mut [u8]>,
) -> Result<()> {
    let ts = snap.manifest().grid.tile_size;
    let locs: Vec<_> = rect.tiles(level, ts).iter().collect();
    // The planes of each tick, so that ticks can be read in parallel.
    let mut by_tick: BTreeMap<u32, Vec<Plane<'_>>> = BTreeMap::new();
    for (source, data) in sources.iter().zip(planes) {
        fill(snap, source.band, data);
        by_tick.entry(source.tick).or_default().push(Plane {
            band: source.band,
            data,
        });
    }
    let keys: Vec<TileKey> = by_tick
        .keys()
        .flat_map(|&t| locs.iter().map(move |&loc| TileKey::new(t, 0, loc)))
        .collect();
    let entries = snap.entries(&keys)?;
    let per_tick = locs.len().max(1);
    let mut work: Vec<TickWork<'_, '_>> = by_tick
        .into_values()
        .zip(keys.chunks(per_tick).zip(entries.chunks(per_tick)))
        .map(|(planes, (keys, entries))| TickWork {
            planes,
            keys,
            entries,
        })
        .collect();
    work.par_iter_mut().try_for_each(|w| {
        for (key, entry) in w.keys.iter().zip(w.entries) {
            if let Some(e) = entry {
                copy_tile_part(snap, key, e, &rect, &mut w.planes)?;
            }
        }
        Ok(())
    })
}

/// The planes of one tick, and the tiles of that tick the window meets.
struct TickWork<'p, 'k> {
    planes: Vec<Plane<'p>>,
    keys: &'k [TileKey],
    entries: &'k [Option<Entry>],
}

/// Fills a plane with store band `band`'s fill value.
fn fill(snap: &Snapshot, band: usize, data: &mut [u8]) {
    let v = &snap.validity()[band];
    with_sample_type!(snap.manifest().data_type, T => {
        let plane: &mut [T] = bytemuck::cast_slice_mut(data);
        plane.fill(fill_value::<T>(v));
    });
}

/// Decodes the blocks of tile `key` that `rect` meets and copies that part into `planes`.
fn copy_tile_part(
    snap: &Snapshot,
    key: &TileKey,
    e: &Entry,
    rect: &PixelRect,
    planes: &mut [Plane<'_>],
) -> Result<()> {
    let m = snap.manifest();
    let ts = m.grid.tile_size as usize;
    let dsize = m.data_type.size();
    let tile_rect = key.loc().pixel_rect(m.grid.tile_size);
    let part = tile_rect.intersect(rect);
    if part.is_empty() {
        return Ok(());
    }
    let (tx, ty) = (
        (part.x0 - tile_rect.x0) as usize,
        (part.y0 - tile_rect.y0) as usize,
    );
    let (pw, ph) = (part.width() as usize, part.height() as usize);
    thread_local! {
        static TILE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        static MASK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    TILE.with(|tile| {
        MASK.with(|mask| {
            let (mut tile, mut mask) = (tile.borrow_mut(), mask.borrow_mut());
            tile.resize(ts * ts * m.bands.len() * dsize, 0);
            mask.resize(ts * ts, 0);
            let c = snap.head_of(key, e)?;
            if c.head.has_frame_table() {
                let blocks = c.head.blocks_meeting(&Area::new(ty..ty + ph, tx..tx + pw));
                let read = |at, offset, len| snap.read_chunk_range(&c, at, offset, len);
                chunk::read_blocks(&c.head, &blocks, read, &mut tile, Some(&mut mask), &c.path)?;
            } else {
                snap.read_tile_into(key, Some(*e), &mut tile, Some(&mut mask))?;
            }
            let w = rect.width() as usize;
            let (rx, ry) = ((part.x0 - rect.x0) as usize, (part.y0 - rect.y0) as usize);
            for p in planes.iter_mut() {
                let src = &tile[p.band * ts * ts * dsize..(p.band + 1) * ts * ts * dsize];
                for y in 0..ph {
                    let s = ((ty + y) * ts + tx) * dsize;
                    let d = ((ry + y) * w + rx) * dsize;
                    p.data[d..d + pw * dsize].copy_from_slice(&src[s..s + pw * dsize]);
                }
            }
            Ok(())
        })
    })
}
