//! Ingesting sources into an existing store, at the cost of the tiles they touch.
//!
//! The plan lists, for every level-0 tile any source touches, the sources that touch it in
//! the order given. Reader threads take tiles in Z-order (so the parents they complete are
//! near each other and few are pending at a time), start from the stored tile, lay each
//! source over it in turn (so a later source wins where sources overlap, as if they were
//! ingested one by one) and hand the result to encoder threads, which store it and feed the
//! pyramid builder. Tiles that receive no data stay as they are. Levels are updated once,
//! for all sources together.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use rayon::prelude::*;

use crate::aggregate::{downsample_rows, Reduced, Resampling};
use crate::chunk::{encode_block_in_row, encode_from_frames, Blocks, Encoding, NewFrame, Parts};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::grid::{PixelRect, TileLoc};
use crate::index::TileKey;
use crate::ingest::Laid;
use crate::manifest::Manifest;
use crate::pyramid::{levels_to_update, PyramidBuilder};
use crate::store::Transaction;
use crate::tile::{BandValidity, SampleBuf, Tile};

/// The sources of one ingest as one reader thread sees them: it lays source `i` over a
/// tile. Each reader thread gets its own, so none is shared between threads.
pub trait SourceSet: Send {
    /// Lays source `source`'s part of level-0 tile `loc` over `tile`; says which level-0
    /// pixels received data.
    fn overlay(&mut self, source: usize, loc: TileLoc, tile: &mut Tile) -> Result<Laid>;

    /// Reads rows `rows` of level-0 tile `loc` from source `source` into `out` (every
    /// band's rows, band after band), if the source fills every pixel of every band there
    /// (see [`PlacedSource::whole_rows`]).
    ///
    /// [`PlacedSource::whole_rows`]: crate::ingest::PlacedSource::whole_rows
    fn whole_rows(
        &mut self,
        source: usize,
        loc: TileLoc,
        rows: Range<usize>,
        dtype: DataType,
        size: usize,
        out: &mut [u8],
    ) -> Result<bool>;
}

/// One level-0 tile to update, and the sources that touch it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub loc: TileLoc,
    pub sources: Vec<u32>,
}

/// Lists the tiles the sources' footprints touch, each with its sources in the given order,
/// sorted in Z-order.
pub fn plan(footprints: &[PixelRect], tile_size: u32) -> Vec<Job> {
    let mut by_tile: HashMap<TileLoc, Vec<u32>> = HashMap::new();
    for (i, f) in footprints.iter().enumerate() {
        for loc in f.tiles(0, tile_size).iter() {
            by_tile.entry(loc).or_default().push(i as u32);
        }
    }
    let (c0, r0) = by_tile.keys().fold((i32::MAX, i32::MAX), |(c, r), t| {
        (c.min(t.col), r.min(t.row))
    });
    let mut jobs: Vec<Job> = by_tile
        .into_iter()
        .map(|(loc, sources)| Job { loc, sources })
        .collect();
    jobs.sort_by_key(|j| z_order((j.loc.col - c0) as u32, (j.loc.row - r0) as u32));
    jobs
}

/// Interleaves the bits of `x` and `y`.
fn z_order(x: u32, y: u32) -> u64 {
    fn spread(v: u32) -> u64 {
        let mut v = v as u64;
        v = (v | (v << 16)) & 0x0000_ffff_0000_ffff;
        v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff;
        v = (v | (v << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
        v = (v | (v << 2)) & 0x3333_3333_3333_3333;
        v = (v | (v << 1)) & 0x5555_5555_5555_5555;
        v
    }
    spread(x) | (spread(y) << 1)
}

/// What an ingest changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeReport {
    /// Level-0 tiles that received data.
    pub tiles_changed: usize,
    /// Level-0 pixels that received data.
    pub written: Option<PixelRect>,
}

/// A tile on its way from a reader to the encoders; `None` when no source had data in it.
/// `streamed` holds its chunk and quarter when the reader made them already
/// ([`read_streamed`]).
struct Merged {
    loc: TileLoc,
    tile: Option<Tile>,
    streamed: Option<Streamed>,
}

/// A tile's chunk, and the quarter it hands its parent (`None`: no parent is built), made
/// while the tile was read.
struct Streamed {
    chunk: Parts,
    quarter: Option<Reduced>,
}

/// A merge of at most this many tiles per encoder thread reads each tile that one source
/// fills in rows of blocks, and has the encoders encode each row while it reads the next
/// ([`read_streamed`]): with so few tiles there is no next tile to read while one is
/// encoded, and a one-tile patch would otherwise read, then encode, one after the other.
const STREAMED_TILES_PER_THREAD: usize = 1;

/// Where a reader has the tiles it reads in rows of blocks encoded, and how; and how they
/// are reduced for their parents, if any.
#[derive(Clone, Copy)]
struct Streaming<'p> {
    pool: &'p rayon::ThreadPool,
    enc: Encoding,
    reduction: Option<(&'p [Resampling], &'p [BandValidity])>,
}

/// What [`merge_tile`] made of a job: the tile, the level-0 pixels that received data, and
/// the tile's chunk and quarter when they were made while it was read.
type MergedTile = (Tile, Option<PixelRect>, Option<Streamed>);

/// Lays the sources (whose level-0 footprints are `footprints`) over the store in `txn`,
/// updates the levels, the extent and the validity flag. One reader thread runs per
/// element of `readers`; `threads` encode. `progress` is called on the calling thread with
/// the fraction done and returns false to cancel. The caller commits.
pub fn merge(
    txn: &mut Transaction,
    footprints: &[PixelRect],
    readers: &mut [Box<dyn SourceSet + '_>],
    threads: usize,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<MergeReport> {
    let jobs = plan(footprints, txn.manifest.grid.tile_size);
    merge_jobs(txn, footprints, &jobs, readers, threads, progress)
}

/// Refuses a write that would add levels above the top of a store holding time steps:
/// the new levels would be built for the step written only, and the others would read
/// nothing there.
fn check_levels_can_grow(txn: &Transaction, forced: &[TileLoc]) -> Result<()> {
    let steps = txn.manifest.time.as_ref().map_or(0, |t| t.steps);
    if forced.is_empty() || steps == 0 {
        return Ok(());
    }
    Err(Error::NotSupported(format!(
        "{}: this slice reaches so far beyond the store's extent that the store would need \
         more levels, which its {steps} time step(s) do not have; nothing was written. \
         Append slices within the store's extent, or make the store with the larger extent \
         first (gridstore create)",
        txn.location().display()
    )))
}

/// The level-0 pixels `jobs` may change: each tile's part of the footprints of its sources.
fn reach_of(jobs: &[Job], footprints: &[PixelRect], tile_size: u32) -> Option<PixelRect> {
    jobs.iter()
        .flat_map(|j| {
            let tile = j.loc.pixel_rect(tile_size);
            j.sources
                .iter()
                .map(move |&s| footprints[s as usize].intersect(&tile))
        })
        .filter(|r| !r.is_empty())
        .reduce(|a, b| a.union(&b))
}

/// Lays a job's sources over its stored tile, in order; returns the tile and the level-0
/// pixels that received data.
///
/// A source whose footprint covers the whole tile may leave nothing of what was stored
/// there: then the stored tile need not be read and decoded (a tile-sized patch costs one
/// decode less). If the last such source fills every pixel of every band, what the tile
/// held and the sources before it cannot show: its pixels become the tile, and only the
/// sources after it are laid on top. Otherwise everything is done in order from the stored
/// tile. With `streaming`, such a tile that no source after it touches is read in rows of
/// blocks and encoded as it comes.
fn merge_tile(
    txn: &Transaction,
    footprints: &[PixelRect],
    job: &Job,
    reader: &mut dyn SourceSet,
    dtype: DataType,
    validity: &[BandValidity],
    streaming: Option<Streaming<'_>>,
) -> Result<MergedTile> {
    let size = txn.manifest.grid.tile_size;
    let key = TileKey::new(txn.tick(), 0, job.loc);
    let base = txn.committed_for_tick();
    let stored = match base {
        Some(b) => b.entry(&key)?.map(|e| (b, e)),
        None => None,
    };
    let tile_rect = job.loc.pixel_rect(size);
    let covering = job
        .sources
        .iter()
        .rposition(|&s| footprints[s as usize].intersect(&tile_rect) == tile_rect);
    if let (Some(_), Some(last)) = (stored, covering) {
        let source = job.sources[last] as usize;
        let rest = &job.sources[last + 1..];
        let shape = (dtype, validity.len(), size as usize);
        let whole = match streaming {
            Some(s) if rest.is_empty() => read_streamed(reader, source, job.loc, shape, s)?,
            _ => read_whole(reader, source, job.loc, shape)?.map(|tile| (tile, None)),
        };
        if let Some((mut tile, encoded)) = whole {
            let covered = lay(reader, job.loc, rest, &mut tile, Some(tile_rect))?;
            return Ok((tile, covered, encoded));
        }
    }
    let mut tile = match stored {
        Some((b, e)) => b.fetch(&key, &e)?,
        None => Tile::empty(dtype, validity, size as usize),
    };
    let covered = lay(reader, job.loc, &job.sources, &mut tile, None)?;
    Ok((tile, covered, None))
}

/// Tile `loc` as source `source` holds it, if the source fills every pixel of every band
/// there; `shape` is (data type, bands, tile size).
fn read_whole(
    reader: &mut dyn SourceSet,
    source: usize,
    loc: TileLoc,
    (dtype, bands, size): (DataType, usize, usize),
) -> Result<Option<Tile>> {
    let mut data = SampleBuf::zeroed(size * size * bands * dtype.size());
    let whole = reader.whole_rows(source, loc, 0..size, dtype, size, data.bytes_mut())?;
    Ok(whole.then_some(Tile {
        dtype,
        bands,
        size,
        data,
        mask: None,
    }))
}

/// [`read_whole`], a row of blocks at a time: each row of blocks is encoded, and reduced
/// for the parent, on the pool while the next is read. Returns the tile, its chunk and its
/// quarter.
fn read_streamed(
    reader: &mut dyn SourceSet,
    source: usize,
    loc: TileLoc,
    (dtype, bands, size): (DataType, usize, usize),
    streaming: Streaming<'_>,
) -> Result<Option<(Tile, Option<Streamed>)>> {
    let blocks = Blocks::for_new(size, dtype);
    let plane = size * size * dtype.size();
    let row_of_blocks = blocks.rows() * size * dtype.size();
    let mut data = SampleBuf::zeroed(plane * bands);
    let mut rows_of = RowReader {
        reader,
        source,
        loc,
        dtype,
        size,
        scratch: Vec::new(),
    };
    // Per row of blocks: its frames (band after band, left to right) and its quarter.
    let mut frames: Vec<Vec<Option<Result<NewFrame>>>> = (0..blocks.block_rows())
        .map(|_| (0..bands * blocks.across()).map(|_| None).collect())
        .collect();
    let mut quarters: Vec<Option<Reduced>> = (0..blocks.block_rows()).map(|_| None).collect();
    let enc = streaming.enc;
    let whole = streaming.pool.in_place_scope(|scope| -> Result<bool> {
        // Every band plane cut in rows of blocks: each is written here once, then only read
        // by the tasks that encode and reduce it.
        let mut planes: Vec<_> = data
            .bytes_mut()
            .chunks_mut(plane)
            .map(|p| p.chunks_mut(row_of_blocks))
            .collect();
        let rows_of_work = frames.iter_mut().zip(quarters.iter_mut()).enumerate();
        for (i, (slots, quarter)) in rows_of_work {
            let rows = i * blocks.rows()..((i + 1) * blocks.rows()).min(size);
            let mut band_rows: Vec<&mut [u8]> = planes
                .iter_mut()
                .map(|p| p.next().expect("a row of blocks per band"))
                .collect();
            if !rows_of.read(rows.clone(), &mut band_rows)? {
                return Ok(false);
            }
            let band_rows: Vec<&[u8]> = band_rows.into_iter().map(|r| &*r).collect();
            // The last row: nothing is left to read, so this thread does its work while
            // the pool finishes the rest.
            let here = i + 1 == blocks.block_rows();
            if let Some((methods, validity)) = streaming.reduction {
                let band_rows = band_rows.clone();
                run_on(scope, here, move || {
                    let reduced = downsample_rows(dtype, &band_rows, rows, size, methods, validity);
                    *quarter = Some(reduced);
                });
            }
            for (n, slot) in slots.iter_mut().enumerate() {
                let rows = band_rows[n / blocks.across()];
                let j = n % blocks.across();
                run_on(scope, here, move || {
                    *slot = Some(encode_block_in_row(&blocks, &enc, dtype, rows, i, j));
                });
            }
        }
        Ok(true)
    })?;
    if !whole {
        return Ok(None);
    }
    let streamed = finish_streamed(&blocks, &streaming, (dtype, bands), frames, quarters)?;
    let tile = Tile {
        dtype,
        bands,
        size,
        data,
        mask: None,
    };
    Ok(Some((tile, Some(streamed))))
}

/// Runs `work` as a task of `scope`'s pool, or at once on this thread when `here`.
fn run_on<'s>(scope: &rayon::Scope<'s>, here: bool, work: impl FnOnce() + Send + 's) {
    match here {
        true => work(),
        false => scope.spawn(move |_| work()),
    }
}

/// Reads rows of one source's part of a tile, every band at once.
struct RowReader<'r> {
    reader: &'r mut dyn SourceSet,
    source: usize,
    loc: TileLoc,
    dtype: DataType,
    size: usize,
    /// Several bands are read into this buffer, band after band, then moved to their planes.
    scratch: Vec<u64>,
}

impl RowReader<'_> {
    /// Reads `rows` of the tile into `band_rows` (those rows of each band's plane); false
    /// when the source does not hold them whole.
    fn read(&mut self, rows: Range<usize>, band_rows: &mut [&mut [u8]]) -> Result<bool> {
        let (source, loc, dtype, size) = (self.source, self.loc, self.dtype, self.size);
        if let [only] = band_rows {
            return self.reader.whole_rows(source, loc, rows, dtype, size, only);
        }
        let len = band_rows.iter().map(|r| r.len()).sum::<usize>();
        self.scratch.resize(len.div_ceil(8), 0);
        let read = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.scratch)[..len];
        let whole = self
            .reader
            .whole_rows(source, loc, rows, dtype, size, read)?;
        let per_band = len / band_rows.len();
        for (to, from) in band_rows.iter_mut().zip(read.chunks(per_band)) {
            to.copy_from_slice(from);
        }
        Ok(whole)
    }
}

/// The chunk of a streamed tile from the frames of its rows of blocks, and its quarter
/// from theirs.
fn finish_streamed(
    blocks: &Blocks,
    streaming: &Streaming<'_>,
    (dtype, bands): (DataType, usize),
    frames: Vec<Vec<Option<Result<NewFrame>>>>,
    quarters: Vec<Option<Reduced>>,
) -> Result<Streamed> {
    let rows_of_frames = frames
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|f| f.expect("every block was encoded"))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let chunk = encode_from_frames(blocks, &streaming.enc, dtype, bands, rows_of_frames, None)?;
    let quarter = streaming.reduction.map(|_| {
        let parts = quarters
            .into_iter()
            .map(|q| q.expect("every row was reduced"));
        Reduced::join(parts.collect(), dtype, bands)
    });
    Ok(Streamed { chunk, quarter })
}

/// Lays `sources` over `tile` in order; returns `covered` grown by the pixels that
/// received data.
fn lay(
    reader: &mut dyn SourceSet,
    loc: TileLoc,
    sources: &[u32],
    tile: &mut Tile,
    mut covered: Option<PixelRect>,
) -> Result<Option<PixelRect>> {
    for &s in sources {
        if let Some(r) = reader.overlay(s as usize, loc, tile)?.covered {
            covered = Some(covered.map_or(r, |c| c.union(&r)));
        }
    }
    Ok(covered)
}

/// [`merge`] for some of the planned jobs only (one checkpoint of a long ingest).
pub fn merge_jobs(
    txn: &mut Transaction,
    footprints: &[PixelRect],
    jobs: &[Job],
    readers: &mut [Box<dyn SourceSet + '_>],
    threads: usize,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<MergeReport> {
    let ts = txn.manifest.grid.tile_size;
    let Some(touched) = reach_of(jobs, footprints, ts) else {
        return Ok(MergeReport::default());
    };
    let old_extent = txn.manifest.extent;
    let reach = old_extent.map_or(touched, |e| e.union(&touched));
    let (top, forced) = levels_to_update(old_extent, reach, ts);
    check_levels_can_grow(txn, &forced)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start worker threads: {e}")))?;
    let (written, tiles_changed) = {
        let txn = &*txn;
        let builder =
            PyramidBuilder::new(txn, txn.tick(), 0, top, jobs.iter().map(|j| j.loc), forced);
        let run = Run {
            txn,
            footprints,
            jobs,
            pool: &pool,
            builder: &builder,
            validity: txn.manifest.validity(),
            // With one thread in all, the reader encodes too: nothing runs beside it.
            single: threads <= 1 && readers.len() == 1,
            streams: readers.len() == 1
                && threads > 1
                && jobs.len() <= threads * STREAMED_TILES_PER_THREAD,
            next: AtomicUsize::new(0),
            cancelled: AtomicBool::new(false),
            written: Mutex::new(None),
            changed: AtomicUsize::new(0),
        };
        run.run(readers, threads, progress)?;
        let written = run.written.into_inner().expect("poisoned");
        (written, run.changed.into_inner())
    };
    if let Some(w) = written {
        grow_extent(&mut txn.manifest, w);
    }
    Ok(MergeReport {
        tiles_changed,
        written,
    })
}

/// Grows the manifest's extent by `written`, the level-0 pixels that received data.
fn grow_extent(m: &mut Manifest, written: PixelRect) {
    let grown = m.extent.map_or(written, |old| old.union(&written));
    // Pixels outside the old extent may be missing unless the sources filled them all;
    // keeping track of that exactly is not worth it, so the mask is then read.
    if Some(grown) != m.extent {
        m.all_valid = false;
    }
    m.extent = Some(grown);
}

/// One run of [`merge_jobs`]: what its readers and encoders share.
///
/// Readers take jobs in turn, merge each tile and send it to the encoders over a bounded
/// channel; the encoders store it and hand it to the levels. Each stored tile sends a tick
/// to the calling thread, which reports progress. With one reader, it reads on the calling
/// thread.
struct Run<'a> {
    txn: &'a Transaction,
    footprints: &'a [PixelRect],
    jobs: &'a [Job],
    pool: &'a rayon::ThreadPool,
    builder: &'a PyramidBuilder<'a>,
    validity: Vec<BandValidity>,
    /// One thread in all: the reader encodes each tile it merged, in the pool.
    single: bool,
    /// The reader has the pool encode the rows of blocks of tiles it reads
    /// ([`read_streamed`]), and the encoders take tiles one at a time.
    streams: bool,
    /// The next job to take.
    next: AtomicUsize,
    /// Set when the run stops early: an error, or the caller's progress said so.
    cancelled: AtomicBool,
    /// The level-0 pixels that received data so far.
    written: Mutex<Option<PixelRect>>,
    /// The level-0 tiles stored so far.
    changed: AtomicUsize,
}

impl Run<'_> {
    /// Runs the readers and the encoders to the end, or until one fails or `progress`
    /// says to stop.
    fn run(
        &self,
        readers: &mut [Box<dyn SourceSet + '_>],
        threads: usize,
        progress: &mut dyn FnMut(f64) -> bool,
    ) -> Result<()> {
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::sync_channel::<Merged>(threads.max(1) * 2);
            let (ticks_tx, ticks_rx) = mpsc::channel::<()>();
            // One reader reads on this thread: a thread of its own would cost a start-up,
            // and a memory arena of its own warmed from cold, on the path of a small write.
            let mut inline = None;
            let mut reading = Vec::new();
            match readers {
                [only] => inline = Some(only),
                _ => {
                    for reader in readers.iter_mut() {
                        let (tx, ticks_tx) = (tx.clone(), ticks_tx.clone());
                        reading.push(
                            scope.spawn(move || self.read(&mut **reader, tx, ticks_tx, &mut || {})),
                        );
                    }
                }
            }
            // The committed parents a small write rebuilds are decoded while its tiles are
            // being read.
            self.builder.start_fetch_ahead(scope);
            let ticks = ticks_tx.clone();
            let encoding = scope.spawn(move || self.encode_all(rx, ticks));
            let mut progress = Progress::start(progress, self.jobs.len(), &self.cancelled);
            let mut result = match inline {
                Some(reader) => {
                    // Progress is reported between tiles, from the tiles stored so far.
                    let mut between = || {
                        while ticks_rx.try_recv().is_ok() {
                            progress.tick(&self.cancelled);
                        }
                    };
                    let read = self.read(&mut **reader, tx, ticks_tx, &mut between);
                    self.cancel_on_error(read)
                }
                None => {
                    drop(tx);
                    drop(ticks_tx);
                    Ok(())
                }
            };
            for () in ticks_rx {
                progress.tick(&self.cancelled);
            }
            for r in reading {
                let r = r.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                result = result.and(self.cancel_on_error(r));
            }
            let encoded = encoding
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            // A reader's error explains why the encoders stopped, so it comes first.
            result.and(encoded)?;
            match progress.interrupted {
                true => Err(Error::Interrupted),
                false => Ok(()),
            }
        })
    }

    /// `result`, after stopping the run if it is an error.
    fn cancel_on_error(&self, result: Result<()>) -> Result<()> {
        if result.is_err() {
            self.cancelled.store(true, Ordering::Relaxed);
        }
        result
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// How a reader has the tiles it reads encoded as they come, if it does.
    fn streaming(&self) -> Option<Streaming<'_>> {
        self.streams.then(|| Streaming {
            pool: self.pool,
            enc: self.txn.manifest.encoding(),
            reduction: self.builder.reduction(),
        })
    }

    /// Takes jobs until none is left (or the run stops), merges each and hands it on to the
    /// encoders, or encodes it itself when it is the only thread; `between` runs after
    /// each tile.
    fn read(
        &self,
        reader: &mut dyn SourceSet,
        tx: mpsc::SyncSender<Merged>,
        ticks: mpsc::Sender<()>,
        between: &mut dyn FnMut(),
    ) -> Result<()> {
        while !self.is_cancelled() {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = self.jobs.get(i) else {
                return Ok(());
            };
            let merged = self.merge(job, reader)?;
            if self.single {
                // In the pool, so that the levels it starts stay on its one thread.
                self.pool.install(|| self.encode(merged))?;
                let _ = ticks.send(());
            } else if tx.send(merged).is_err() {
                return Ok(()); // the encoders stopped: their error is reported
            }
            between();
        }
        Ok(())
    }

    /// Merges one job's tile, and records the pixels that received data.
    fn merge(&self, job: &Job, reader: &mut dyn SourceSet) -> Result<Merged> {
        let (txn, dtype) = (self.txn, self.txn.manifest.data_type);
        let (tile, covered, streamed) = merge_tile(
            txn,
            self.footprints,
            job,
            reader,
            dtype,
            &self.validity,
            self.streaming(),
        )?;
        if let Some(r) = covered {
            let mut w = self.written.lock().expect("poisoned");
            *w = Some(w.map_or(r, |c| c.union(&r)));
        }
        Ok(Merged {
            loc: job.loc,
            tile: covered.is_some().then_some(tile),
            streamed,
        })
    }

    /// Stores a merged tile and hands it to the levels, which go on building what it
    /// completes.
    fn encode(&self, m: Merged) -> Result<()> {
        let Some(tile) = &m.tile else {
            self.builder.unchanged(m.loc);
            return self.builder.build_ready();
        };
        let has_data = !tile.is_empty(&self.validity);
        let key = TileKey::new(self.txn.tick(), 0, m.loc);
        let (chunk, quarter) = match m.streamed {
            Some(s) => (Some(s.chunk), Some(s.quarter)),
            None => (None, None),
        };
        // The levels above (this tile's quarter first) go on while this tile is encoded,
        // on this thread: the encode is the part another thread can take.
        let (built, stored) = rayon::join(
            || {
                let quarter =
                    quarter.unwrap_or_else(|| self.builder.quarter_of(has_data.then_some(tile)));
                self.builder.offer(m.loc, quarter);
                self.builder.build_ready()
            },
            || match &chunk {
                Some(chunk) => self.txn.put_encoded(key, chunk),
                None => self.txn.put_tile(key, tile),
            },
        );
        stored?;
        self.changed.fetch_add(1, Ordering::Relaxed);
        built
    }

    /// The encoders' thread: encodes every tile received, ticking for each, then finishes
    /// the levels.
    fn encode_all(&self, received: mpsc::Receiver<Merged>, ticks: mpsc::Sender<()>) -> Result<()> {
        let result = if self.single {
            // The reader encodes, in the pool's one thread: wait for it outside the pool,
            // which a wait inside would block.
            for _ in received {}
            drop(ticks);
            self.finish()
        } else if self.streams {
            // The reader has the pool encode rows of blocks while it reads: no pool thread
            // may wait for tiles then, or none might be left for those rows. Tiles are
            // taken one by one outside the pool, each using all of it.
            received
                .into_iter()
                .try_for_each(|m| {
                    self.pool.install(|| self.encode(m))?;
                    let _ = ticks.send(());
                    Ok(())
                })
                .and_then(|()| self.finish())
        } else {
            self.pool.install(|| {
                received.into_iter().par_bridge().try_for_each(|m| {
                    self.encode(m)?;
                    let _ = ticks.send(());
                    Ok(())
                })?;
                self.finish()
            })
        };
        self.cancel_on_error(result)
    }

    /// Builds the levels left, unless the run stopped.
    fn finish(&self) -> Result<()> {
        match self.is_cancelled() {
            true => Ok(()),
            false => self.pool.install(|| self.builder.finish()),
        }
    }
}

/// Reports the fraction of tiles stored to the caller's `progress`, until it says to stop
/// (once stopped, nothing more is reported).
struct Progress<'p> {
    report: &'p mut dyn FnMut(f64) -> bool,
    done: usize,
    total: f64,
    interrupted: bool,
}

impl<'p> Progress<'p> {
    /// Reports that nothing is done yet; a refusal stops the run (`cancelled`) at once.
    fn start(report: &'p mut dyn FnMut(f64) -> bool, jobs: usize, cancelled: &AtomicBool) -> Self {
        let interrupted = !report(0.0);
        if interrupted {
            cancelled.store(true, Ordering::Relaxed);
        }
        Progress {
            report,
            done: 0,
            total: jobs.max(1) as f64,
            interrupted,
        }
    }

    /// Counts a stored tile.
    fn tick(&mut self, cancelled: &AtomicBool) {
        if self.interrupted {
            return;
        }
        self.done += 1;
        if !(self.report)(self.done as f64 / self.total) {
            self.interrupted = true;
            cancelled.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::tests::{manifest, MemSource};
    use crate::ingest::{PlacedSource, Scratch};
    use crate::store::lock::LockWait;
    use crate::store::{NewStore, Snapshot};
    use crate::tile::BandValidity;
    use proptest::prelude::*;
    use std::path::Path;

    /// In-memory sources placed on the grid, as one reader sees them.
    struct MemSet {
        sources: Vec<PlacedSource<MemSource>>,
        validity: Vec<BandValidity>,
        scratch: Scratch,
        /// How many times a source was read (for tests that watch reading stop).
        reads: std::sync::Arc<AtomicUsize>,
    }

    impl MemSet {
        fn new(sources: Vec<PlacedSource<MemSource>>, validity: Vec<BandValidity>) -> MemSet {
            MemSet {
                sources,
                validity,
                scratch: Scratch::default(),
                reads: Default::default(),
            }
        }
    }

    impl SourceSet for MemSet {
        fn overlay(&mut self, i: usize, loc: TileLoc, tile: &mut Tile) -> Result<Laid> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.sources[i].overlay(loc, tile, &self.validity, &mut self.scratch)
        }

        fn whole_rows(
            &mut self,
            i: usize,
            loc: TileLoc,
            rows: Range<usize>,
            dtype: DataType,
            size: usize,
            out: &mut [u8],
        ) -> Result<bool> {
            if rows.start == 0 {
                self.reads.fetch_add(1, Ordering::Relaxed);
            }
            self.sources[i].whole_rows(loc, rows, dtype, size, out, &mut self.scratch)
        }
    }

    /// A patch: where it goes, its size, a seed for its values, and whether it has holes.
    type Patch = (i64, i64, usize, usize, u32, bool);

    fn source(p: &Patch, nodata: Option<f64>) -> PlacedSource<MemSource> {
        let &(x0, y0, w, h, seed, holes) = p;
        let hole = |i: usize| holes && (i * 7 + seed as usize) % 5 == 0;
        let plane: Vec<f32> = (0..w * h)
            .map(|i| match (hole(i), nodata) {
                (true, Some(nd)) => nd as f32,
                _ => ((i as u32).wrapping_mul(2654435761) ^ seed) as f32 % 1000.0,
            })
            .collect();
        let mask = (holes && nodata.is_none())
            .then(|| (0..w * h).map(|i| if hole(i) { 0 } else { 255 }).collect());
        PlacedSource {
            source: MemSource {
                w,
                h,
                planes: vec![plane],
                mask,
            },
            x0,
            y0,
            nodata: vec![nodata],
            cells: None,
        }
    }

    fn new_empty(path: &Path, nodata: Option<f64>, ts: u32) {
        let NewStore { path, manifest } = manifest(path, 1, nodata, ts);
        Transaction::create(NewStore { path, manifest }, "test")
            .unwrap()
            .commit()
            .unwrap();
    }

    fn ingest(path: &Path, sources: Vec<PlacedSource<MemSource>>, threads: usize) {
        ingest_in_batches(path, sources, threads, usize::MAX);
    }

    /// Ingests the sources committing after every `per_batch` planned tiles, as the
    /// checkpoints of a long ingest do.
    fn ingest_in_batches(
        path: &Path,
        sources: Vec<PlacedSource<MemSource>>,
        threads: usize,
        per_batch: usize,
    ) {
        let mut txn = Transaction::begin(path, "test", LockWait::Fail).unwrap();
        let footprints: Vec<PixelRect> = sources.iter().map(|s| s.footprint()).collect();
        let set = MemSet::new(sources, txn.manifest.validity());
        let mut readers: Vec<Box<dyn SourceSet>> = vec![Box::new(set)];
        let jobs = plan(&footprints, txn.manifest.grid.tile_size);
        for batch in jobs.chunks(per_batch) {
            merge_jobs(
                &mut txn,
                &footprints,
                batch,
                &mut readers,
                threads,
                &mut |_| true,
            )
            .unwrap();
            txn = txn.commit_and_continue().unwrap().1;
        }
        txn.abort();
    }

    /// Every stored tile of every level, keyed by location.
    fn all_tiles(path: &Path) -> Vec<(TileLoc, Tile)> {
        let snap = Snapshot::open(path, None).unwrap();
        let layout = *snap.layout().unwrap();
        let ts = layout.tile_size;
        let mut out = Vec::new();
        for z in 0..=layout.top {
            for loc in layout.level_rect(z).tiles(z, ts).iter() {
                if let Some(t) = snap.read_tile(&TileKey::new(0, 0, loc)).unwrap() {
                    out.push((loc, t));
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Patches merged one commit at a time give the same level-0 data and the same
        /// levels, bit for bit, as one build from scratch of the final level-0 data.
        #[test]
        fn incremental_levels_equal_a_full_rebuild(
            patches in prop::collection::vec(
                (-70i64..90, -70i64..90, 1usize..60, 1usize..60, any::<u32>(), any::<bool>()),
                1..6),
            masked in any::<bool>(),
        ) {
            let nodata = if masked { None } else { Some(-9999.0) };
            let dir = tempfile::tempdir().unwrap();
            let step = dir.path().join("step.gridstore");
            new_empty(&step, nodata, 16);
            for p in &patches {
                ingest(&step, vec![source(p, nodata)], 2);
            }
            // The final level-0 data as one source, into a fresh store.
            let snap = Snapshot::open(&step, None).unwrap();
            let extent = snap.manifest().extent.unwrap();
            let (w, h) = (extent.width() as usize, extent.height() as usize);
            let mut data = vec![0u8; w * h * 4];
            let mut mask = vec![0u8; w * h];
            snap.read_region(0, 0, 0, extent, &mut data, Some(&mut mask)).unwrap();
            let whole = PlacedSource {
                source: MemSource {
                    w,
                    h,
                    planes: vec![bytemuck::cast_slice::<u8, f32>(&data).to_vec()],
                    mask: masked.then_some(mask),
                },
                x0: extent.x0,
                y0: extent.y0,
                nodata: vec![nodata],
                cells: None,
            };
            let fresh = dir.path().join("fresh.gridstore");
            new_empty(&fresh, nodata, 16);
            ingest(&fresh, vec![whole], 1);
            let (a, b) = (all_tiles(&step), all_tiles(&fresh));
            prop_assert_eq!(a.len(), b.len());
            for ((la, ta), (lb, tb)) in a.iter().zip(&b) {
                prop_assert_eq!(la, lb);
                prop_assert!(ta == tb, "tile {:?} differs", la);
            }
        }

        /// Many sources in one ingest equal ingesting them one by one, in order, also when
        /// the ingest commits in batches of planned tiles (checkpoints).
        #[test]
        fn one_bulk_ingest_equals_sequential_ingests(
            patches in prop::collection::vec(
                (-40i64..60, -40i64..60, 1usize..50, 1usize..50, any::<u32>(), any::<bool>()),
                2..7),
            per_batch in prop_oneof![Just(usize::MAX), 1usize..6],
        ) {
            let nodata = Some(-1.0);
            let dir = tempfile::tempdir().unwrap();
            let (one, many) = (dir.path().join("one.gridstore"), dir.path().join("many.gridstore"));
            new_empty(&one, nodata, 16);
            new_empty(&many, nodata, 16);
            for p in &patches {
                ingest(&one, vec![source(p, nodata)], 1);
            }
            ingest_in_batches(&many, patches.iter().map(|p| source(p, nodata)).collect(), 2, per_batch);
            let (a, b) = (all_tiles(&one), all_tiles(&many));
            prop_assert_eq!(a.len(), b.len());
            for ((la, ta), (lb, tb)) in a.iter().zip(&b) {
                prop_assert_eq!(la, lb);
                prop_assert!(ta == tb, "tile {:?} differs", la);
            }
            let (ma, mb) = (
                Snapshot::open(&one, None).unwrap().manifest().extent,
                Snapshot::open(&many, None).unwrap().manifest().extent,
            );
            prop_assert_eq!(ma, mb);
        }
    }

    /// Ingests one source; the error, if the merge fails.
    fn try_ingest(path: &Path, source: PlacedSource<MemSource>) -> Result<()> {
        let mut txn = Transaction::begin(path, "test", LockWait::Fail).unwrap();
        let footprints = [source.footprint()];
        let set = MemSet::new(vec![source], txn.manifest.validity());
        let mut readers: Vec<Box<dyn SourceSet>> = vec![Box::new(set)];
        merge(&mut txn, &footprints, &mut readers, 2, &mut |_| true)?;
        txn.commit().map(|_| ())
    }

    /// Merges one source (read on the calling thread) with `threads` encoders, reporting
    /// progress to `progress`, and commits; returns the outcome and how many tiles were
    /// read from the source.
    fn merge_one(
        path: &Path,
        p: &Patch,
        threads: usize,
        progress: &mut dyn FnMut(f64) -> bool,
    ) -> (Result<()>, usize) {
        let mut txn = Transaction::begin(path, "test", LockWait::Fail).unwrap();
        let source = source(p, None);
        let footprints = [source.footprint()];
        let set = MemSet::new(vec![source], txn.manifest.validity());
        let reads = set.reads.clone();
        let mut readers: Vec<Box<dyn SourceSet>> = vec![Box::new(set)];
        let merged = merge(&mut txn, &footprints, &mut readers, threads, progress);
        let outcome = merged.and_then(|_| txn.commit().map(|_| ()));
        (outcome, reads.load(Ordering::Relaxed))
    }

    #[test]
    fn one_reader_reports_progress_to_the_end_and_can_be_cancelled() {
        // 8 x 6 tiles of 16 pixels.
        let patch: Patch = (0, 0, 128, 96, 5, false);
        for threads in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.gridstore");
            new_empty(&path, None, 16);
            let mut seen = Vec::new();
            let (outcome, read) = merge_one(&path, &patch, threads, &mut |f| {
                seen.push(f);
                true
            });
            outcome.unwrap();
            assert_eq!(read, 48);
            assert_eq!(seen.first(), Some(&0.0), "{threads} threads");
            assert_eq!(seen.last(), Some(&1.0), "{threads} threads");
            assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
            let before = all_tiles(&path);

            // Cancelled a third of the way: reading stops soon after (progress is reported
            // while the source is read, not only once it has all been), the merge fails as
            // interrupted, and the store is as it was.
            let (outcome, read) =
                merge_one(&path, &(0, 0, 128, 96, 6, false), threads, &mut |f| f < 0.3);
            assert!(matches!(outcome, Err(Error::Interrupted)), "{outcome:?}");
            assert!(read < 40, "{threads} threads: {read} of 48 tiles read");
            assert!(all_tiles(&path) == before, "{threads} threads");

            // Cancelled before it starts: nothing is read.
            let (outcome, read) = merge_one(&path, &patch, threads, &mut |_| false);
            assert!(matches!(outcome, Err(Error::Interrupted)), "{outcome:?}");
            assert_eq!(read, 0, "{threads} threads");
            assert!(all_tiles(&path) == before, "{threads} threads");
        }
    }

    #[test]
    fn a_source_filling_a_whole_tile_does_not_read_the_stored_one() {
        for nodata in [Some(-9999.0), None] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.gridstore");
            new_empty(&path, nodata, 16);
            ingest(&path, vec![source(&(0, 0, 32, 16, 1, false), nodata)], 1);
            // Damage both stored level-0 tiles: reading either one fails.
            let snap = Snapshot::open(&path, None).unwrap();
            for col in [0, 1] {
                let key = TileKey::new(0, 0, TileLoc::new(0, col, 0));
                let e = snap.entry(&key).unwrap().unwrap();
                let at = snap.chunk_at(&key, &e);
                let file = path.join(at.object);
                let mut bytes = std::fs::read(&file).unwrap();
                let mid = at.offset as usize + e.size as usize / 2;
                bytes[mid] ^= 0x55;
                std::fs::write(&file, bytes).unwrap();
            }
            // A source with data in every pixel of tile 0 replaces it without reading it.
            try_ingest(&path, source(&(0, 0, 16, 16, 2, false), nodata)).unwrap();
            let snap = Snapshot::open(&path, None).unwrap();
            let got = snap.read_tile(&TileKey::base(0, 0)).unwrap().unwrap();
            let mut want = Tile::empty(DataType::Float32, snap.validity(), 16);
            let mut s = Scratch::default();
            source(&(0, 0, 16, 16, 2, false), nodata)
                .overlay(TileLoc::new(0, 0, 0), &mut want, snap.validity(), &mut s)
                .unwrap();
            assert!(got == want, "{nodata:?}");
            // A source with holes over tile 1 must keep what the stored tile has under
            // them, so it reads it, and finds the damage.
            let err = try_ingest(&path, source(&(16, 0, 16, 16, 3, true), nodata)).unwrap_err();
            assert!(err.to_string().contains("checksum"), "{err}");
        }
    }

    #[test]
    fn a_tile_read_in_rows_of_blocks_is_stored_as_one_read_at_once() {
        // Two stores with the same tiles; a patch filling tile 1 of each, merged with two
        // threads (read in rows of blocks, encoded as they come) and with one (at once).
        let stores: Vec<_> = [2, 1]
            .iter()
            .map(|threads| {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("s.gridstore");
                new_empty(&path, None, 32);
                ingest(&path, vec![source(&(0, 0, 64, 32, 1, false), None)], 1);
                let reads = |path: &Path| {
                    let mut txn = Transaction::begin(path, "test", LockWait::Fail).unwrap();
                    let patch = source(&(32, 0, 32, 32, 2, false), None);
                    let footprints = [patch.footprint()];
                    let set = MemSet::new(vec![patch], txn.manifest.validity());
                    let reads = set.reads.clone();
                    let mut readers: Vec<Box<dyn SourceSet>> = vec![Box::new(set)];
                    merge(&mut txn, &footprints, &mut readers, *threads, &mut |_| true).unwrap();
                    txn.commit().unwrap();
                    reads.load(Ordering::Relaxed)
                };
                assert_eq!(
                    reads(&path),
                    1,
                    "{threads} threads: the source is read once"
                );
                (dir, path)
            })
            .collect();
        let chunk = |path: &Path| {
            let snap = Snapshot::open(path, None).unwrap();
            let key = TileKey::new(0, 0, TileLoc::new(0, 1, 0));
            let e = snap.entry(&key).unwrap().unwrap();
            let at = snap.chunk_at(&key, &e);
            let bytes = std::fs::read(path.join(at.object)).unwrap();
            let start = at.offset as usize;
            (e.seq, bytes[start..start + e.size as usize].to_vec())
        };
        let (streamed, at_once) = (chunk(&stores[0].1), chunk(&stores[1].1));
        assert_eq!(streamed.0, 3, "written by the patch");
        assert!(streamed.1 == at_once.1, "the same chunk, byte for byte");
        assert!(all_tiles(&stores[0].1) == all_tiles(&stores[1].1));
    }

    #[test]
    fn plan_keeps_source_order_per_tile() {
        let footprints = [
            PixelRect::new(0, 0, 32, 16),
            PixelRect::new(-8, 0, 8, 8),
            PixelRect::new(16, 0, 17, 1),
        ];
        let jobs = plan(&footprints, 16);
        let find = |c, r| {
            jobs.iter()
                .find(|j| j.loc == TileLoc::new(0, c, r))
                .map(|j| j.sources.clone())
        };
        assert_eq!(jobs.len(), 3);
        assert_eq!(find(0, 0), Some(vec![0, 1]));
        assert_eq!(find(-1, 0), Some(vec![1]));
        assert_eq!(find(1, 0), Some(vec![0, 2]));
    }

    #[test]
    fn z_order_keeps_quads_together() {
        let mut cells: Vec<(u32, u32)> = (0..4).flat_map(|y| (0..4).map(move |x| (x, y))).collect();
        cells.sort_by_key(|&(x, y)| z_order(x, y));
        // The first four cells are the top-left quad.
        let first: Vec<_> = cells[..4].to_vec();
        assert_eq!(first, vec![(0, 0), (1, 0), (0, 1), (1, 1)]);
    }
}
