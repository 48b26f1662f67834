//! Creating a store from a raster.
//!
//! The calling thread reads the source one tile at a time, straight into tile buffers, and
//! hands the tiles through a small bounded queue to worker threads that encode and write
//! them and build the levels above as they go. Reading and encoding overlap, and memory
//! holds a few tiles, the pending parents of one row of tiles per level, and whatever the
//! source keeps cached (a few of its blocks for tiled sources, one row of tiles for striped
//! ones): it does not grow with the size of the raster.

mod edit;
mod merge;
mod new_store;
mod overlay;
pub mod valid_cells;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use valid_cells::ValidCells;

use rayon::prelude::*;

use crate::dtype::{DataType, Sample};
use crate::error::{Error, Result};
use crate::grid::{Layout, PixelRect, TileLoc, TileRange};
use crate::index::TileKey;
use crate::manifest::Manifest;
use crate::pyramid::PyramidBuilder;
use crate::store::{NewStore, Transaction};
use crate::tile::{BandValidity, Tile};
use crate::with_sample_type;

pub use edit::{settings_are_fixed, Editor};
pub use merge::{merge, merge_jobs, plan, Job, MergeReport, SourceSet};
pub use new_store::{
    check_nodata_fits, default_pyramid, grid_placement, new_store_manifest, SourceInfo,
};
pub use overlay::{Laid, PlacedSource, Scratch};

/// A window of a source raster, in its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// A raster to ingest, read window by window.
pub trait RasterSource {
    fn width(&self) -> usize;
    fn height(&self) -> usize;
    fn band_count(&self) -> usize;
    fn data_type(&self) -> DataType;
    /// True when the source marks missing pixels with a mask beyond nodata values (an
    /// alpha band or a per-dataset mask), which `read_window` then fills in.
    fn has_mask(&self) -> bool;
    /// Reads `win` of every band, converted to `data_type()`, into `data`: rows `size`
    /// samples apart, bands `band_stride` samples apart (`size * size` for a tile-sized
    /// buffer), starting at its top-left corner; and, when the source has one, the mask
    /// (255 data, 0 none) into `mask`, rows `size` apart.
    fn read_window(
        &mut self,
        win: Window,
        size: usize,
        band_stride: usize,
        data: &mut [u8],
        mask: Option<&mut [u8]>,
    ) -> Result<()>;
    /// Tells the source that the tile just read (and, with `row_done`, the whole row of
    /// tiles) will not be read again, so it can drop what it cached for it.
    fn release(&mut self, tile_size: usize, row_done: bool) {
        let _ = (tile_size, row_done);
    }
}

/// A tile read from the source, on its way to the encoders.
struct Fresh {
    loc: TileLoc,
    tile: Tile,
    saw_missing: bool,
}

/// Creates a store at `new.path` holding `source`, whose pixel (0, 0) becomes level-0
/// pixel (0, 0) of the grid. `progress` gets the fraction done and returns false to cancel.
pub fn create_store(
    new: NewStore,
    source: &mut dyn RasterSource,
    threads: usize,
    writer: &str,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<Manifest> {
    create_store_recording(new, source, None, threads, writer, progress)
}

/// How a new store records its source (docs/FORMAT.md §12): `cells` are marked where the
/// source holds data as it is read, then `make` makes the record of them.
pub struct Recorder<'a> {
    pub cells: ValidCells,
    pub make: MakeRecord<'a>,
}

/// Makes a source's record (a STAC Item) of the cells where it holds data.
pub type MakeRecord<'a> = Box<dyn FnOnce(&ValidCells) -> Option<serde_json::Value> + 'a>;

/// [`create_store`], recording the source as `recorder` says.
pub fn create_store_recording(
    new: NewStore,
    source: &mut dyn RasterSource,
    recorder: Option<Recorder<'_>>,
    threads: usize,
    writer: &str,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<Manifest> {
    let threads = threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start worker threads: {e}")))?;
    if !progress(0.0) {
        return Err(Error::Interrupted);
    }
    let mut txn = Transaction::create(new, writer)?;
    let (w, h) = (source.width(), source.height());
    let extent = PixelRect::new(0, 0, w as i64, h as i64);
    txn.manifest.extent = Some(extent);
    let ts = txn.manifest.grid.tile_size;
    let layout = Layout::for_extent(extent, ts);
    let tiles = extent.tiles(0, ts);
    let all_valid = AtomicBool::new(true);
    {
        let txn = &txn;
        let builder = PyramidBuilder::new(txn, 0, 0, layout.top, tiles.iter(), []);
        std::thread::scope(|scope| -> Result<()> {
            // Room for a couple of tiles per worker: enough to keep them busy, no more.
            let (tx, rx) = mpsc::sync_channel::<Fresh>(threads * 2);
            let (builder, all_valid) = (&builder, &all_valid);
            let workers =
                scope.spawn(move || pool.install(|| store_tiles(txn, builder, rx, all_valid)));
            let read = read_tiles(
                source,
                &tiles,
                &txn.manifest,
                recorder.as_ref().map(|r| &r.cells),
                &tx,
                progress,
            );
            drop(tx);
            let worked = workers
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            read.and(worked)
        })?;
    }
    txn.manifest.all_valid = all_valid.load(Ordering::Relaxed);
    if let Some(r) = recorder {
        txn.record_sources((r.make)(&r.cells));
    }
    txn.commit()
}

/// The workers of [`create_store_recording`]: each stores the tiles it receives and hands
/// them to the levels; then the levels are finished.
fn store_tiles(
    txn: &Transaction,
    builder: &PyramidBuilder<'_>,
    received: mpsc::Receiver<Fresh>,
    all_valid: &AtomicBool,
) -> Result<()> {
    received.into_iter().par_bridge().try_for_each(|fresh| {
        if fresh.saw_missing {
            all_valid.store(false, Ordering::Relaxed);
        }
        let has_data = txn.put_tile(TileKey::new(0, 0, fresh.loc), &fresh.tile)?;
        builder.offer(
            fresh.loc,
            builder.quarter_of(has_data.then_some(&fresh.tile)),
        );
        builder.build_ready()
    })?;
    builder.finish()
}

/// Reads the level-0 `tiles` of a source placed at grid pixel (0, 0) of the store `m`
/// describes, row by row, marks in `cells` where they hold data, and sends them to the
/// workers; `progress` is told the fraction read and returns false to stop. Returns early,
/// without an error, when the workers stopped: theirs is the error to report.
fn read_tiles(
    source: &mut dyn RasterSource,
    tiles: &TileRange,
    m: &Manifest,
    cells: Option<&ValidCells>,
    tx: &mpsc::SyncSender<Fresh>,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<()> {
    let (ts, dtype, validity) = (m.grid.tile_size as usize, m.data_type, &m.validity()[..]);
    let (w, h) = (source.width(), source.height());
    let total = tiles.len().max(1) as f64;
    let mut done = 0usize;
    for row in tiles.row0..tiles.row1 {
        for loc in tiles.row(row) {
            let (tile, saw_missing) = read_tile(source, loc, ts, dtype, validity)?;
            if let Some(cells) = cells {
                mark_read_tile(cells, &tile, validity, loc, (w, h));
            }
            source.release(ts, loc.col + 1 == tiles.col1);
            let fresh = Fresh {
                loc,
                tile,
                saw_missing,
            };
            if tx.send(fresh).is_err() {
                return Ok(());
            }
            done += 1;
            if !progress(done as f64 / total) {
                return Err(Error::Interrupted);
            }
        }
    }
    Ok(())
}

/// Marks where level-0 tile `loc`, as read from a source of `size` pixels placed at grid
/// pixel (0, 0), holds data.
fn mark_read_tile(
    cells: &ValidCells,
    tile: &Tile,
    validity: &[BandValidity],
    loc: TileLoc,
    size: (usize, usize),
) {
    let (x, y) = (loc.col as usize * tile.size, loc.row as usize * tile.size);
    let (w, h) = (tile.size.min(size.0 - x), tile.size.min(size.1 - y));
    cells.mark_tile(tile, validity, x, y, w, h);
}

/// Reads the level-0 tile at `loc` of a source placed at grid pixel (0, 0); also says
/// whether the source's mask marked any of its pixels as missing.
fn read_tile(
    source: &mut dyn RasterSource,
    loc: TileLoc,
    size: usize,
    dtype: DataType,
    validity: &[BandValidity],
) -> Result<(Tile, bool)> {
    let mut tile = Tile::empty(dtype, validity, size);
    let (x, y) = (loc.col as usize * size, loc.row as usize * size);
    let win = Window {
        x,
        y,
        w: size.min(source.width() - x),
        h: size.min(source.height() - y),
    };
    let mut src_mask = source.has_mask().then(|| vec![255u8; size * size]);
    source.read_window(
        win,
        size,
        size * size,
        tile.data.bytes_mut(),
        src_mask.as_deref_mut(),
    )?;
    // Pixels the source covers hold data, unless its mask says otherwise.
    if let Some(mask) = tile.mask.as_mut() {
        for row in mask.chunks_exact_mut(size).take(win.h) {
            row[..win.w].fill(255);
        }
    }
    let mut saw_missing = false;
    if let Some(src_mask) = &src_mask {
        with_sample_type!(dtype, T => {
            saw_missing = apply_source_mask::<T>(&mut tile, src_mask, win, validity);
        });
    }
    tile.normalize_mask();
    Ok((tile, saw_missing))
}

/// Marks the pixels the source mask rejects as missing: in the tile mask (bands without
/// nodata) and as nodata values (bands with one). Returns whether there were any.
fn apply_source_mask<T: Sample>(
    tile: &mut Tile,
    src_mask: &[u8],
    win: Window,
    validity: &[BandValidity],
) -> bool {
    let size = tile.size;
    let n = size * size;
    let mut any = false;
    for y in 0..win.h {
        for x in 0..win.w {
            let i = y * size + x;
            if src_mask[i] != 0 {
                continue;
            }
            any = true;
            if let Some(mask) = tile.mask.as_mut() {
                mask[i] = 0;
            }
            let data = tile.data.typed_mut::<T>();
            for (b, v) in validity.iter().enumerate() {
                if let Some(nd) = v.nodata {
                    data[b * n + i] = T::from_f64_round(nd);
                }
            }
        }
    }
    any
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::Snapshot;

    /// An in-memory source: `bands` planes of `w x h` Float32 values.
    pub struct MemSource {
        pub w: usize,
        pub h: usize,
        pub planes: Vec<Vec<f32>>,
        pub mask: Option<Vec<u8>>,
    }

    impl RasterSource for MemSource {
        fn width(&self) -> usize {
            self.w
        }
        fn height(&self) -> usize {
            self.h
        }
        fn band_count(&self) -> usize {
            self.planes.len()
        }
        fn data_type(&self) -> DataType {
            DataType::Float32
        }
        fn has_mask(&self) -> bool {
            self.mask.is_some()
        }
        fn read_window(
            &mut self,
            win: Window,
            size: usize,
            band_stride: usize,
            data: &mut [u8],
            mask: Option<&mut [u8]>,
        ) -> Result<()> {
            let out: &mut [f32] = bytemuck::cast_slice_mut(data);
            for (b, p) in self.planes.iter().enumerate() {
                for y in 0..win.h {
                    let s = (win.y + y) * self.w + win.x;
                    let d = b * band_stride + y * size;
                    out[d..d + win.w].copy_from_slice(&p[s..s + win.w]);
                }
            }
            if let (Some(m), Some(src)) = (mask, &self.mask) {
                for y in 0..win.h {
                    let s = (win.y + y) * self.w + win.x;
                    m[y * size..y * size + win.w].copy_from_slice(&src[s..s + win.w]);
                }
            }
            Ok(())
        }
    }

    pub fn manifest(
        path: &std::path::Path,
        bands: usize,
        nodata: Option<f64>,
        ts: u32,
    ) -> NewStore {
        let mut m = crate::manifest::tests::sample();
        m.grid.tile_size = ts;
        m.bands = vec![m.bands[0].clone(); bands];
        for b in &mut m.bands {
            b.nodata = nodata;
        }
        m.pyramids[0].resampling = vec![crate::aggregate::Resampling::Average; bands];
        NewStore {
            path: path.to_path_buf(),
            manifest: m,
        }
    }

    fn surface(w: usize, h: usize) -> Vec<f32> {
        (0..w * h)
            .map(|i| ((i % w) as f32 * 0.37).sin() * 100.0 + (i / w) as f32)
            .collect()
    }

    #[test]
    fn a_created_store_reads_back_exactly_at_every_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gridstore");
        let (w, h) = (300, 170);
        let plane = surface(w, h);
        let mut src = MemSource {
            w,
            h,
            planes: vec![plane.clone()],
            mask: None,
        };
        let m = create_store(
            manifest(&path, 1, None, 64),
            &mut src,
            2,
            "test",
            &mut |_| true,
        )
        .unwrap();
        assert_eq!(m.extent, Some(PixelRect::new(0, 0, 300, 170)));
        assert!(m.all_valid);
        let snap = Snapshot::open(&path, None).unwrap();
        let layout = *snap.layout().unwrap();
        assert_eq!(layout.top, 3);
        let mut buf = vec![0u8; w * h * 4];
        snap.read_region(
            0,
            0,
            0,
            PixelRect::new(0, 0, w as i64, h as i64),
            &mut buf,
            None,
        )
        .unwrap();
        assert_eq!(bytemuck::cast_slice::<u8, f32>(&buf), &plane[..]);
        // Level 1 is the mean of 2x2 blocks, cut at the far edges.
        let (lw, lh) = layout.level_size(1);
        let mut l1 = vec![0u8; (lw * lh) as usize * 4];
        let mut m1 = vec![0u8; (lw * lh) as usize];
        snap.read_region(0, 0, 1, layout.level_rect(1), &mut l1, Some(&mut m1))
            .unwrap();
        let l1: &[f32] = bytemuck::cast_slice(&l1);
        for y in 0..lh as usize {
            for x in 0..lw as usize {
                let mut s = 0.0f64;
                let mut n = 0;
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let (sx, sy) = (2 * x + dx, 2 * y + dy);
                    if sx < w && sy < h {
                        s += plane[sy * w + sx] as f64;
                        n += 1;
                    }
                }
                assert_eq!(l1[y * lw as usize + x], (s / n as f64) as f32, "({x},{y})");
                assert_eq!(m1[y * lw as usize + x], 255);
            }
        }
    }

    #[test]
    fn cancelling_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.gridstore");
        let mut src = MemSource {
            w: 200,
            h: 200,
            planes: vec![surface(200, 200)],
            mask: None,
        };
        let mut calls = 0;
        let r = create_store(
            manifest(&path, 1, None, 32),
            &mut src,
            2,
            "test",
            &mut |_| {
                calls += 1;
                calls < 3
            },
        );
        assert!(matches!(r, Err(Error::Interrupted)));
        assert!(!path.exists());
    }

    #[test]
    fn masked_pixels_are_missing_and_empty_tiles_are_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gridstore");
        let (w, h) = (128, 64);
        // The left half is masked out: its two 32x32 tile columns hold no data.
        let mask: Vec<u8> = (0..w * h)
            .map(|i| if i % w < 64 { 0 } else { 255 })
            .collect();
        let mut src = MemSource {
            w,
            h,
            planes: vec![surface(w, h)],
            mask: Some(mask),
        };
        let m = create_store(
            manifest(&path, 1, None, 32),
            &mut src,
            1,
            "test",
            &mut |_| true,
        )
        .unwrap();
        assert!(!m.all_valid);
        let snap = Snapshot::open(&path, None).unwrap();
        assert!(snap.read_tile(&TileKey::base(0, 0)).unwrap().is_none());
        assert!(snap.read_tile(&TileKey::base(3, 1)).unwrap().is_some());
        // Level 0 (8 tiles, 4 empty) + level 1 (2 tiles, 1 empty) + level 2 (1 tile).
        assert_eq!(m.index.tiles, 4 + 1 + 1);
    }
}
