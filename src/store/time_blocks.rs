//! Time blocks in a store: reading one, making one's frames from the per-step tiles of
//! its ticks, checking one against them, and finding the ones a write makes stale.
//!
//! A time block holds, for one level-0 tile location and one block of D consecutive ticks,
//! the same samples as the per-step tiles of those ticks, laid out so that a point's D
//! values lie together (docs/FORMAT.md §8, the codec in [`crate::chunk::time_block`]). It
//! is a copy: the per-step tiles stay, and map reads keep reading them. A write to any
//! tick of a block removes the block's time blocks in the same commit, so a time block
//! never disagrees with the steps of the snapshot that holds it.

use std::ops::Range;
use std::path::PathBuf;

use crate::area::Area;
use crate::chunk::time_block::{BlockExpected, BlockHead, BlockShape, HEAD_PROBE_LEN};
use crate::chunk::{self, block_size};
use crate::error::{Error, Result};
use crate::grid::TileLoc;
use crate::index::{Entry, TileKey, Tree};
use crate::manifest::Manifest;
use crate::tile::fill_value;
use crate::with_sample_type;

use super::{ChunkRef, Snapshot};

/// The ticks per time block of a store, if it has time blocks (`time.series_block`).
pub fn series_block(m: &Manifest) -> Option<u32> {
    m.time.as_ref()?.series_block
}

/// What a time block of `m` starting at tick `first` must be.
fn expected(m: &Manifest, ticks: u32, first: u32) -> BlockExpected {
    BlockExpected {
        tile: m.chunk_shape(),
        ticks,
        first,
    }
}

/// How a writer cuts the time blocks of `m` whose first tick is `first`.
pub fn new_shape(m: &Manifest, ticks: u32, first: u32) -> BlockShape {
    let size = m.grid.tile_size as usize;
    let side = chunk::time_block::spatial_side(size, ticks as usize, m.data_type.size());
    BlockShape {
        dtype: m.data_type,
        bands: m.bands.len(),
        size,
        ticks: ticks as usize,
        first,
        rows: side,
        cols: side,
        masked: m.uses_mask(),
    }
}

/// A stored time block known by its checked head, to be read in part.
pub struct BlockRef {
    pub key: TileKey,
    pub object: String,
    pub path: PathBuf,
    pub head: BlockHead,
}

/// Reads and checks the head of the time block `key`, whose index entry is `e`: every
/// field against the store and the entry before anything is allocated from it.
pub fn read_head(snap: &Snapshot, key: &TileKey, e: &Entry) -> Result<BlockRef> {
    let m = snap.manifest();
    let object = key.object_key(e.seq, m.chunk_naming());
    let path = snap.location().join(&object);
    let Some(ticks) = series_block(m) else {
        return Err(Error::corrupt(
            &path,
            "a time block in a store whose time axis has no series_block",
        ));
    };
    if key.time % ticks != 0 {
        return Err(Error::corrupt(
            &path,
            format!(
                "a time block at tick {}, which does not start a block of {ticks} ticks",
                key.time
            ),
        ));
    }
    let exp = expected(m, ticks, key.time);
    let size = e.size as usize;
    if size > exp.max_object_len() {
        return Err(Error::corrupt(
            &path,
            format!(
                "the index records a time block of {size} bytes, more than any time block of \
                 this store can take ({})",
                exp.max_object_len()
            ),
        ));
    }
    let mut bytes = Vec::new();
    let missing = || Error::corrupt(&path, "time block object is missing or cut short");
    if !snap
        .storage()
        .read_range(&object, 0, HEAD_PROBE_LEN.min(size), &mut bytes)?
    {
        return Err(missing());
    }
    let len = BlockHead::len_from(&bytes, &exp, &path)?;
    if len > bytes.len() {
        if len > size {
            return Err(Error::corrupt(
                &path,
                format!("the time block's head claims {len} bytes, its object has {size}"),
            ));
        }
        if !snap.storage().read_range(&object, 0, len, &mut bytes)? || bytes.len() != len {
            return Err(missing());
        }
    }
    let head = BlockHead::parse(&bytes, size, &exp, &path)?;
    Ok(BlockRef {
        key: *key,
        object,
        path,
        head,
    })
}

/// Decodes frames `frames` (next to each other in the object) of a time block, fetched
/// in one read and each checked against its checksum.
pub fn read_frames(snap: &Snapshot, b: &BlockRef, frames: Range<usize>) -> Result<Vec<Vec<u8>>> {
    let table = b.head.frames();
    let (first, last) = (table[frames.start], table[frames.end - 1]);
    let len = last.offset + last.len - first.offset;
    let mut bytes = Vec::new();
    let found = snap
        .storage()
        .read_range(&b.object, first.offset as u64, len, &mut bytes)?;
    if !found || bytes.len() != len {
        return Err(Error::corrupt(
            &b.path,
            "time block object is missing or cut short",
        ));
    }
    frames
        .map(|i| {
            let f = table[i];
            let at = f.offset - first.offset;
            b.head.decode_frame(i, &bytes[at..at + f.len], &b.path)
        })
        .collect()
}

/// What [`gather_frames`] hands each spatial block's frames to: `(s, raws)`.
pub type FrameSink<'a> = dyn FnMut(usize, &[Vec<u8>]) -> Result<()> + 'a;

/// Calls `f(s, raws)` for every spatial block `s` of a time block cut as `shape`, in
/// order, with what its frames must decode to: each band's samples, then the mask (one
/// byte per pixel and tick, 255 data), as the per-step tiles of location `loc` in `snap`
/// give them. `present[j]` says whether tick `shape.first + j` is a step.
///
/// The tile is taken a strip of rows at a time, each step's chunk decoding only the blocks
/// of the strip: memory is one strip of all D ticks (`bands × H × T × D` samples, and as
/// many mask bytes, H the rows of a chunk's block, 128 for Float32: 32 MiB for a 512-pixel
/// Float32 tile and D = 128) and one tile, whatever the number of steps.
pub fn gather_frames(
    snap: &Snapshot,
    shape: &BlockShape,
    loc: TileLoc,
    present: &[bool],
    f: &mut FrameSink<'_>,
) -> Result<()> {
    let (size, d, bands) = (shape.size, shape.ticks, shape.bands);
    let dsize = shape.dtype.size();
    let steps: Vec<u32> = (0..d)
        .filter(|&j| present[j])
        .map(|j| shape.first + j as u32)
        .collect();
    let keys: Vec<TileKey> = steps.iter().map(|&t| TileKey::new(t, 0, loc)).collect();
    let entries = snap.entries(&keys)?;
    // Each step's chunk head, read once for all strips.
    let heads: Vec<Option<ChunkRef>> = keys
        .iter()
        .zip(&entries)
        .map(|(k, e)| e.as_ref().map(|e| snap.head_of(k, e)).transpose())
        .collect::<Result<_>>()?;
    let strip = strip_rows(shape, block_size(size, dsize));
    let mut tile = vec![0u8; size * size * bands * dsize];
    let mut tile_mask = vec![0u8; size * size];
    let validity = snap.validity();
    for y0 in (0..size).step_by(strip) {
        let y1 = (y0 + strip).min(size);
        // Step by step, each band's rows of the strip, as the steps' tiles hold them.
        let band_plane = (y1 - y0) * size * dsize;
        let mut data = vec![0u8; d * bands * band_plane];
        for (i, plane) in data.chunks_exact_mut(band_plane).enumerate() {
            fill_bytes(shape.dtype, &validity[i % bands], plane);
        }
        let mask_plane = if shape.masked { (y1 - y0) * size } else { 0 };
        let mut mask = vec![0u8; d * mask_plane];
        for (((key, entry), head), &t) in keys.iter().zip(&entries).zip(&heads).zip(&steps) {
            let (Some(e), Some(c)) = (entry, head) else {
                continue;
            };
            let j = (t - shape.first) as usize;
            read_rows(snap, key, e, c, y0..y1, &mut tile, &mut tile_mask)?;
            for b in 0..bands {
                let src = b * size * size * dsize + y0 * size * dsize;
                let dst = (j * bands + b) * band_plane;
                data[dst..dst + band_plane].copy_from_slice(&tile[src..src + band_plane]);
            }
            let dst = j * mask_plane;
            mask[dst..dst + mask_plane]
                .copy_from_slice(&tile_mask[y0 * size..y0 * size + mask_plane]);
        }
        let strip = StripData {
            y0,
            data: &data,
            band_plane,
            mask: &mask,
            mask_plane,
        };
        let row_blocks = y0 / shape.rows..y1.div_ceil(shape.rows);
        for s in
            row_blocks.flat_map(|by| (0..shape.across()).map(move |bx| by * shape.across() + bx))
        {
            f(s, &block_frames(shape, s, &strip))?;
        }
    }
    Ok(())
}

/// A strip of rows from `y0` of every step of a block: `data` holds, step after step, each
/// band's rows (`band_plane` bytes each); `mask` each step's mask rows (`mask_plane`).
struct StripData<'a> {
    y0: usize,
    data: &'a [u8],
    band_plane: usize,
    mask: &'a [u8],
    mask_plane: usize,
}

/// The samples of `pixels` (rows and columns of a strip) over `d` steps, each pixel's `d`
/// samples together: a band frame's order. `planes` holds the steps' planes of `plane`
/// bytes, the one wanted every `stride`-th, of `N`-byte samples in rows of `size`. A
/// sample's copy is one move (`N` is a constant), and each block row is read from every
/// step in turn, so the transposition stays in the cache.
fn series_of<const N: usize>(
    planes: &[u8],
    plane: usize,
    stride: usize,
    d: usize,
    pixels: (Range<usize>, Range<usize>),
    size: usize,
) -> Vec<u8> {
    let (rows, cols) = pixels;
    let mut out = vec![0u8; rows.len() * cols.len() * d * N];
    let mut o = 0;
    for y in rows {
        for x in cols.clone() {
            for j in 0..d {
                let at = j * stride * plane + (y * size + x) * N;
                out[o..o + N].copy_from_slice(&planes[at..at + N]);
                o += N;
            }
        }
    }
    out
}

/// Fills `bytes` (samples of `dtype`, however aligned) with the fill value of a band of
/// validity `v`.
pub fn fill_bytes(dtype: crate::dtype::DataType, v: &crate::tile::BandValidity, bytes: &mut [u8]) {
    with_sample_type!(dtype, T => {
        let value = fill_value::<T>(v);
        let one = bytemuck::bytes_of(&value);
        for sample in bytes.chunks_exact_mut(one.len()) {
            sample.copy_from_slice(one);
        }
    });
}

/// Rows per strip of [`gather_frames`]: the rows of a chunk's block (so each step's
/// blocks are decoded once), a whole number of spatial blocks.
fn strip_rows(shape: &BlockShape, chunk_block: usize) -> usize {
    (chunk_block / shape.rows).max(1) * shape.rows
}

/// Decodes rows `rows` (at least) of the per-step tile `key`, whose entry is `e` and
/// head `c`, into tile-sized buffers.
fn read_rows(
    snap: &Snapshot,
    key: &TileKey,
    e: &Entry,
    c: &ChunkRef,
    rows: Range<usize>,
    tile: &mut [u8],
    mask: &mut [u8],
) -> Result<()> {
    if !c.head.has_frame_table() {
        return snap.read_tile_into(key, Some(*e), tile, Some(mask));
    }
    let blocks = c.head.blocks_meeting(&Area::new(rows, 0..c.head.size()));
    let read = |at, offset, len| snap.read_chunk_range(c, at, offset, len);
    chunk::read_blocks(&c.head, &blocks, read, tile, Some(mask), &c.path)
}

/// The raw frames of spatial block `s` (which lies in `strip`): each band's, then the mask.
fn block_frames(shape: &BlockShape, s: usize, strip: &StripData<'_>) -> Vec<Vec<u8>> {
    let (rows, cols) = shape.block_rect(s);
    let local = (rows.start - strip.y0)..(rows.end - strip.y0);
    let (d, size, bands) = (shape.ticks, shape.size, shape.bands);
    let mut out: Vec<Vec<u8>> = (0..bands)
        .map(|b| {
            let planes = &strip.data[b * strip.band_plane..];
            let px = (local.clone(), cols.clone());
            match shape.dtype.size() {
                1 => series_of::<1>(planes, strip.band_plane, bands, d, px, size),
                2 => series_of::<2>(planes, strip.band_plane, bands, d, px, size),
                4 => series_of::<4>(planes, strip.band_plane, bands, d, px, size),
                _ => series_of::<8>(planes, strip.band_plane, bands, d, px, size),
            }
        })
        .collect();
    if shape.masked {
        let px = (local, cols);
        out.push(series_of::<1>(strip.mask, strip.mask_plane, 1, d, px, size));
    }
    out
}

/// Which ticks of the block starting at `first` (of `ticks` ticks) are steps of `snap`.
pub fn present_steps(snap: &Snapshot, first: u32, ticks: u32) -> Result<Vec<bool>> {
    let mut present = vec![false; ticks as usize];
    let last = first.saturating_add(ticks - 1).min(crate::time::MAX_TICK);
    for t in snap.steps(first, last, usize::MAX)? {
        present[(t - first) as usize] = true;
    }
    Ok(present)
}

/// What `verify` asks of a time block: its head and every frame check, its present bits
/// name exactly the steps of its ticks, and every frame holds what the per-step tiles
/// hold. Returns each frame's (length, CRC-32C), for the content digest.
pub fn check(snap: &Snapshot, key: &TileKey, e: &Entry) -> Result<Vec<(u32, u32)>> {
    let b = read_head(snap, key, e)?;
    let shape = b.head.shape;
    let present = present_steps(snap, shape.first, shape.ticks as u32)?;
    for (j, (&said, &is)) in b.head.present().iter().zip(&present).enumerate() {
        if said != is {
            let t = shape.first + j as u32;
            let detail = match said {
                true => format!("its present bits name tick {t}, which holds no step"),
                false => format!("its present bits leave out tick {t}, which is a step"),
            };
            return Err(Error::corrupt(&b.path, detail));
        }
    }
    let loc = TileLoc::new(0, key.col, key.row);
    gather_frames(snap, &shape, loc, &present, &mut |s, want| {
        let got = read_frames(snap, &b, b.head.frames_of_block(s))?;
        for (i, (got, want)) in got.iter().zip(want).enumerate() {
            if got != want {
                let what = match i < shape.bands {
                    true => format!("band {}", i + 1),
                    false => "the mask".into(),
                };
                return Err(Error::corrupt(
                    &b.path,
                    format!(
                        "spatial block {s}, {what}: the time block differs from the tiles of \
                         its steps (compaction rebuilds it after `gridstore rollback` to \
                         before it, or delete-time and re-append the steps)"
                    ),
                ));
            }
        }
        Ok(())
    })?;
    // Every frame was checked against its checksum above: the object's follows from them.
    let mut trailer = Vec::new();
    let at = (e.size as usize - 4) as u64;
    let read = snap.storage().read_range(&b.object, at, 4, &mut trailer)?;
    if !read || trailer.len() != 4 {
        return Err(Error::corrupt(
            &b.path,
            "time block object is missing or cut short",
        ));
    }
    let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    if stored != e.crc || b.head.object_crc() != e.crc {
        return Err(Error::corrupt(
            &b.path,
            "time block checksum does not match the index: it was changed after it was written",
        ));
    }
    Ok(b.head
        .frames()
        .iter()
        .map(|f| (f.len as u32, f.crc))
        .collect())
}

/// The time blocks `snap` holds for the blocks of `ticks` ticks that contain any of
/// `touched`: what a write to those ticks must remove in its own commit.
pub fn stale(snap: &Snapshot, ticks: u32, touched: &[u32]) -> Result<Vec<TileKey>> {
    let mut firsts: Vec<u32> = touched.iter().map(|t| t - t % ticks).collect();
    firsts.sort_unstable();
    firsts.dedup();
    let mut out = Vec::new();
    for first in firsts {
        let (lo, hi) = TileKey::time_blocks_of(first);
        snap.index()
            .range(Tree::of(snap.manifest()), &lo, &hi, &mut |k, _| {
                out.push(k);
                Ok(true)
            })?;
    }
    Ok(out)
}

/// Whether `snap` holds any time block starting at tick `first`.
pub fn has_blocks(snap: &Snapshot, first: u32) -> Result<bool> {
    let (lo, hi) = TileKey::time_blocks_of(first);
    let mut any = false;
    snap.index()
        .range(Tree::of(snap.manifest()), &lo, &hi, &mut |_, _| {
            any = true;
            Ok(false)
        })?;
    Ok(any)
}
