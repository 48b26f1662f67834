//! A small window over many ticks, routed by shape: the one read behind `gridstore series`
//! and the GDAL time view's many-band window read.
//!
//! At level 0, ticks in a block that has a time block for a tile are read from it: its
//! head and, per spatial block the window meets, its frames in one range read (a point's
//! D ticks are one frame per band). Every other (tick, tile) is read from the step's own
//! chunk: its head and the frames of the blocks the window meets. Map reads (one tick, any
//! window) do not come here; they read per-step tiles.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::area::Area;
use crate::chunk;
use crate::error::Result;
use crate::grid::{PixelRect, TileLoc};
use crate::index::{Entry, TileKey};

use super::time_blocks::{fill_bytes, read_frames, read_head, series_block, BlockRef};
use super::Snapshot;

/// Where one tick's window goes: the store bands wanted, each with a buffer of
/// `w × h` samples of the store's type, and optionally the mask (`w × h` bytes, 255 data,
/// 0 none; a store band with nodata needs none).
pub struct TickOut<'a> {
    pub tick: u32,
    pub bands: Vec<(usize, &'a mut [u8])>,
    pub mask: Option<&'a mut [u8]>,
}

/// What a window read touched: how many time blocks and how many per-step chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesRead {
    pub time_blocks: usize,
    pub step_chunks: usize,
}

/// Reads `rect` (pixels of `level`) at every tick of `outs` into their buffers. Pixels
/// without data get the band's fill value and mask 0; so do ticks that are not steps.
/// `outs` is sorted by tick on return (the time blocks serve runs of ticks).
pub fn read_series_window(
    snap: &Snapshot,
    level: u8,
    rect: PixelRect,
    outs: &mut [TickOut<'_>],
) -> Result<SeriesRead> {
    for out in outs.iter_mut() {
        fill(snap, out);
    }
    outs.sort_by_key(|o| o.tick);
    let locs: Vec<TileLoc> = rect
        .tiles(level, snap.manifest().grid.tile_size)
        .iter()
        .collect();
    let counts = Counts::default();
    let served = match (level, series_block(snap.manifest())) {
        (0, Some(d)) => from_time_blocks(snap, d, &rect, &locs, outs, &counts)?,
        _ => HashSet::new(),
    };
    let d = series_block(snap.manifest()).unwrap_or(1);
    // The (tick, tile) pairs no time block served, resolved in one walk of the index.
    let mut keys = Vec::new();
    let mut owner = Vec::new();
    for (i, out) in outs.iter().enumerate() {
        for loc in &locs {
            if !served.contains(&(out.tick - out.tick % d, loc.col, loc.row)) {
                keys.push(TileKey::new(out.tick, 0, *loc));
                owner.push(i);
            }
        }
    }
    let entries = snap.entries(&keys)?;
    let mut per_out: Vec<Vec<(TileKey, Entry)>> = outs.iter().map(|_| Vec::new()).collect();
    for ((key, entry), i) in keys.into_iter().zip(entries).zip(owner) {
        if let Some(e) = entry {
            per_out[i].push((key, e));
        }
    }
    outs.par_iter_mut()
        .zip(per_out)
        .try_for_each(|(out, tiles)| {
            for (key, e) in tiles {
                copy_step_part(snap, &key, &e, &rect, out)?;
                counts.steps.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, crate::error::Error>(())
        })?;
    Ok(SeriesRead {
        time_blocks: counts.blocks.into_inner(),
        step_chunks: counts.steps.into_inner(),
    })
}

#[derive(Default)]
struct Counts {
    blocks: AtomicUsize,
    steps: AtomicUsize,
}

/// Fills a tick's buffers as missing.
fn fill(snap: &Snapshot, out: &mut TickOut<'_>) {
    for (b, data) in out.bands.iter_mut() {
        fill_bytes(snap.manifest().data_type, &snap.validity()[*b], data);
    }
    if let Some(m) = out.mask.as_deref_mut() {
        m.fill(0);
    }
}

/// Reads the ticks of `outs` (sorted) whose blocks have time blocks for the tiles `locs`
/// from those. Returns the (first tick of the block, column, row) of every time block
/// found, whether it served a pixel or not: the per-step tiles of those need no read.
fn from_time_blocks(
    snap: &Snapshot,
    d: u32,
    rect: &PixelRect,
    locs: &[TileLoc],
    outs: &mut [TickOut<'_>],
    counts: &Counts,
) -> Result<HashSet<(u32, i32, i32)>> {
    // The ticks of `outs` cut by block: each group is read by one worker.
    let mut groups: Vec<&mut [TickOut<'_>]> = Vec::new();
    let mut rest = outs;
    while let Some(first) = rest.first() {
        let k = first.tick / d;
        let n = rest.iter().take_while(|o| o.tick / d == k).count();
        let (group, tail) = rest.split_at_mut(n);
        groups.push(group);
        rest = tail;
    }
    let keys: Vec<TileKey> = groups
        .iter()
        .flat_map(|g| {
            let first = g[0].tick - g[0].tick % d;
            locs.iter()
                .map(move |l| TileKey::time_block(first, l.col, l.row))
        })
        .collect();
    let entries = snap.entries(&keys)?;
    let per_group = locs.len();
    let found: HashSet<(u32, i32, i32)> = keys
        .iter()
        .zip(&entries)
        .filter(|(_, e)| e.is_some())
        .map(|(k, _)| (k.time, k.col, k.row))
        .collect();
    groups
        .into_par_iter()
        .zip(
            keys.par_chunks(per_group)
                .zip(entries.par_chunks(per_group)),
        )
        .try_for_each(|(group, (keys, entries))| {
            for (key, entry) in keys.iter().zip(entries) {
                if let Some(e) = entry {
                    let b = read_head(snap, key, e)?;
                    copy_block_part(snap, &b, rect, group)?;
                    counts.blocks.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, crate::error::Error>(())
        })?;
    Ok(found)
}

/// Copies the part of `rect` in the time block `b`'s tile into the ticks of `group` that
/// are steps of it.
fn copy_block_part(
    snap: &Snapshot,
    b: &BlockRef,
    rect: &PixelRect,
    group: &mut [TickOut<'_>],
) -> Result<()> {
    let shape = b.head.shape;
    let ts = snap.manifest().grid.tile_size;
    let tile_rect = TileLoc::new(0, b.key.col, b.key.row).pixel_rect(ts);
    let part = tile_rect.intersect(rect);
    if part.is_empty() {
        return Ok(());
    }
    let (d, dsize, w) = (shape.ticks, shape.dtype.size(), rect.width() as usize);
    let (ty0, tx0) = (
        (part.y0 - tile_rect.y0) as usize,
        (part.x0 - tile_rect.x0) as usize,
    );
    let (ph, pw) = (part.height() as usize, part.width() as usize);
    let first_s = shape.block_of(ty0, tx0);
    let last_s = shape.block_of(ty0 + ph - 1, tx0 + pw - 1);
    let across = shape.across();
    for by in first_s / across..=last_s / across {
        for bx in first_s % across..=last_s % across {
            let s = by * across + bx;
            let frames = read_frames(snap, b, b.head.frames_of_block(s))?;
            let (rows, cols) = shape.block_rect(s);
            let area = Area::new(rows.clone(), cols.clone())
                .intersect(&Area::new(ty0..ty0 + ph, tx0..tx0 + pw));
            for out in group.iter_mut() {
                let j = (out.tick - shape.first) as usize;
                if j >= d || !b.head.present()[j] {
                    continue;
                }
                for y in area.rows.clone() {
                    for x in area.cols.clone() {
                        let at = ((y - rows.start) * cols.len() + (x - cols.start)) * d + j;
                        let o = (y - ty0 + (part.y0 - rect.y0) as usize) * w
                            + (x - tx0 + (part.x0 - rect.x0) as usize);
                        for (band, data) in out.bands.iter_mut() {
                            data[o * dsize..(o + 1) * dsize]
                                .copy_from_slice(&frames[*band][at * dsize..(at + 1) * dsize]);
                        }
                        if let Some(m) = out.mask.as_deref_mut() {
                            m[o] = match shape.masked {
                                true => frames[shape.bands][at],
                                false => 255,
                            };
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Decodes the blocks of the per-step tile `key` that `rect` meets and copies that part
/// into `out`.
fn copy_step_part(
    snap: &Snapshot,
    key: &TileKey,
    e: &Entry,
    rect: &PixelRect,
    out: &mut TickOut<'_>,
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
                // The mask frame is the whole tile's: decoded only when asked for.
                let want_mask = out.mask.is_some().then_some(&mut mask[..]);
                chunk::read_blocks(&c.head, &blocks, read, &mut tile, want_mask, &c.path)?;
            } else {
                snap.read_tile_into(key, Some(*e), &mut tile, Some(&mut mask))?;
            }
            let w = rect.width() as usize;
            let (rx, ry) = ((part.x0 - rect.x0) as usize, (part.y0 - rect.y0) as usize);
            for (band, data) in out.bands.iter_mut() {
                let src = &tile[*band * ts * ts * dsize..(*band + 1) * ts * ts * dsize];
                for y in 0..ph {
                    let s = ((ty + y) * ts + tx) * dsize;
                    let d = ((ry + y) * w + rx) * dsize;
                    data[d..d + pw * dsize].copy_from_slice(&src[s..s + pw * dsize]);
                }
            }
            if let Some(out_mask) = out.mask.as_deref_mut() {
                for y in 0..ph {
                    let s = (ty + y) * ts + tx;
                    let d = (ry + y) * w + rx;
                    out_mask[d..d + pw].copy_from_slice(&mask[s..s + pw]);
                }
            }
            Ok(())
        })
    })
}
