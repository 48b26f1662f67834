//! Ingesting GDAL rasters into an existing store: one open dataset (what `gdal_translate`
//! hands the driver), or many files (`gridstore ingest`), each placed on the store grid and
//! merged by [`crate::ingest::merge`].

use std::collections::VecDeque;
use std::ffi::CString;
use std::ops::Range;
use std::path::Path;

use gdal_sys::GDALDatasetH;
use rayon::prelude::*;
use std::sync::Arc;

use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::grid::{PixelRect, TileLoc};
use crate::ingest::valid_cells::ValidCells;
use crate::ingest::RasterSource;
use crate::ingest::{merge, merge_jobs, plan, Job, Laid, PlacedSource, Scratch, SourceSet};
use crate::manifest::{Checkpoint, Manifest};
use crate::shard::{part_of_tiles, Shard};
use crate::store::lock::{LockWait, Recovered};
use crate::store::Transaction;
use crate::tile::{BandValidity, Tile};

use super::cpl::{last_error_message, report_warning};
use super::placement::{place, Placed, WarpResampling};
use super::source::{describe, drop_impossible_nodata, GdalSource};

/// How an ingest into an existing store runs.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    pub resampling: WarpResampling,
    /// Encoder threads, and reader threads for file lists.
    pub threads: usize,
    pub wait: LockWait,
    /// Record the sources read with the commit (docs/FORMAT.md §12).
    pub record_sources: bool,
}

/// What an ingest did.
#[derive(Debug, Clone)]
pub struct IngestReport {
    pub tiles_changed: usize,
    /// The committed manifest, or `None` when no source held any data (nothing committed).
    pub committed: Option<Manifest>,
    /// A writer that had died holding the lock, taken over (its unfinished write removed).
    pub recovered: Option<Recovered>,
}

/// A source placed on the store grid, ready to lay over tiles.
struct Prepared {
    // Field order matters: the placed view (maybe a warped VRT over `_opened`) closes
    // before the dataset it reads.
    reader: PlacedSource<GdalSource>,
    placed: Placed,
    _opened: Option<OpenedDataset>,
    /// What the user should hear about the source (nodata values dropped), for the caller
    /// to report once: a source is prepared again by each reader thread that reads it.
    warnings: Vec<String>,
}

impl Prepared {
    /// # Safety
    /// `ds` must be valid, outlive the value, and be used by no other thread meanwhile.
    unsafe fn new(
        ds: GDALDatasetH,
        opened: Option<OpenedDataset>,
        m: &Manifest,
        resampling: WarpResampling,
    ) -> Result<Prepared> {
        // SAFETY (block): forwarded contract; the placed dataset lives in the same value.
        unsafe {
            let mut info = describe(ds)?;
            let warnings = drop_impossible_nodata(&mut info);
            let placed = place(ds, &info, m, resampling)?;
            let n = info.bands.len();
            let view = if placed.is_warped() {
                // The warped view adds an alpha band (where the source has data) after the
                // source's bands; the mask reads it, the pixel reads do not. It carries the
                // source's nodata over, already warned about.
                let mut view = describe(placed.ds)?;
                drop_impossible_nodata(&mut view);
                view.bands.truncate(n);
                view
            } else {
                info
            };
            let nodata = view.bands.iter().map(|b| b.nodata).collect();
            let mut source = GdalSource::new(placed.ds, &view).reading_as(m.data_type);
            if placed.is_warped() {
                source = source.with_mask_band(n);
            }
            Ok(Prepared {
                reader: PlacedSource {
                    source,
                    x0: placed.x0,
                    y0: placed.y0,
                    nodata,
                    cells: None,
                },
                placed,
                _opened: opened,
                warnings,
            })
        }
    }

    fn footprint(&self) -> PixelRect {
        self.reader.footprint()
    }

    /// A grid on which reading this source marks where it holds data, if it does so:
    /// placed on the store grid by an offset, not warped.
    fn new_cells(&self) -> Option<Arc<ValidCells>> {
        let source = &self.reader.source;
        (!self.placed.is_warped())
            .then(|| Arc::new(ValidCells::new(source.width(), source.height())))
    }

    /// Marks where this source holds data on `cells` as it is read; a warped source marks
    /// nothing, and says so.
    fn mark_on(&mut self, cells: Option<&Arc<ValidCells>>) {
        match (cells, self.placed.is_warped()) {
            (Some(c), false) => self.reader.cells = Some(c.clone()),
            (Some(c), true) => c.set_incomplete(),
            (None, _) => {}
        }
    }
}

// Open flags of gdal.h (macros, so not in the generated bindings).
const GDAL_OF_RASTER: u32 = 0x02;
const GDAL_OF_VERBOSE_ERROR: u32 = 0x40;

/// A dataset this module opened, closed when dropped.
pub(crate) struct OpenedDataset(pub(crate) GDALDatasetH);

impl OpenedDataset {
    pub(crate) fn open(path: &str) -> Result<OpenedDataset> {
        let c = CString::new(path).map_err(|_| {
            Error::InvalidInput(format!("{path:?}: a file name cannot contain NUL"))
        })?;
        // SAFETY: NUL-terminated name; null option lists are allowed.
        let ds = unsafe {
            gdal_sys::GDALOpenEx(
                c.as_ptr(),
                GDAL_OF_RASTER | GDAL_OF_VERBOSE_ERROR,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if ds.is_null() {
            return Err(Error::InvalidInput(format!(
                "{path}: cannot open it as a raster: {}",
                last_error_message()
            )));
        }
        Ok(OpenedDataset(ds))
    }
}

impl Drop for OpenedDataset {
    fn drop(&mut self) {
        // SAFETY: opened by `open`, closed once.
        unsafe { gdal_sys::GDALClose(self.0) };
    }
}

// SAFETY: each handle is used by one thread at a time: it moves with the reader that owns it.
unsafe impl Send for OpenedDataset {}
unsafe impl Send for Prepared {}

/// Reusable per-thread state for laying sources over tiles.
struct Overlayer {
    validity: Vec<BandValidity>,
    scratch: Scratch,
}

/// The one dataset `gdal_translate` passes, read by one thread.
struct OneDataset {
    prepared: Prepared,
    overlay: Overlayer,
}

impl SourceSet for OneDataset {
    fn overlay(&mut self, _: usize, loc: TileLoc, tile: &mut Tile) -> Result<Laid> {
        let o = &mut self.overlay;
        self.prepared
            .reader
            .overlay(loc, tile, &o.validity, &mut o.scratch)
    }

    fn whole_rows(
        &mut self,
        _: usize,
        loc: TileLoc,
        rows: Range<usize>,
        dtype: DataType,
        size: usize,
        out: &mut [u8],
    ) -> Result<bool> {
        let scratch = &mut self.overlay.scratch;
        self.prepared
            .reader
            .whole_rows(loc, rows, dtype, size, out, scratch)
    }
}

/// Merges an open dataset into the store at `root` and commits.
///
/// # Safety
/// `ds` must be valid for the call and used by no other thread meanwhile.
pub unsafe fn ingest_dataset(
    root: &Path,
    ds: GDALDatasetH,
    opts: &IngestOptions,
    writer: &str,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<IngestReport> {
    let mut txn = Transaction::begin(root, writer, opts.wait)?;
    // SAFETY: forwarded contract.
    let cells = unsafe { dataset_cells(ds) };
    // SAFETY: forwarded contract.
    let report = unsafe { merge_dataset(&mut txn, ds, opts, Some(&cells), progress)? };
    // SAFETY: forwarded contract.
    let name = unsafe { dataset_name(ds) };
    if report.tiles_changed > 0 && !name.is_empty() && opts.record_sources {
        // SAFETY: forwarded contract.
        txn.record_sources(unsafe { record_or_warn(ds, &name, None, now_us(), Some(&cells)) });
    }
    finish(txn, report.tiles_changed)
}

/// A grid of valid cells over an open dataset's pixels, nothing marked yet.
///
/// # Safety
/// `ds` must be valid for the call.
pub(crate) unsafe fn dataset_cells(ds: GDALDatasetH) -> Arc<ValidCells> {
    // SAFETY: forwarded contract.
    let (w, h) = unsafe {
        (
            gdal_sys::GDALGetRasterXSize(ds),
            gdal_sys::GDALGetRasterYSize(ds),
        )
    };
    Arc::new(ValidCells::new(w.max(0) as usize, h.max(0) as usize))
}

/// The name GDAL gives an open dataset (its path, for a file): empty for one made in
/// memory.
///
/// # Safety
/// `ds` must be valid for the call.
pub(crate) unsafe fn dataset_name(ds: GDALDatasetH) -> String {
    // SAFETY: forwarded contract; GDAL returns a NUL-terminated string it owns.
    let p = unsafe { gdal_sys::GDALGetDescription(ds) };
    match p.is_null() {
        true => String::new(),
        // SAFETY: as above.
        false => unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned(),
    }
}

/// Checks that an open dataset can be placed on the grid of the store `m` describes (on it,
/// or warped onto it), without reading its pixels.
///
/// # Safety
/// `ds` must be valid for the call and used by no other thread meanwhile.
pub unsafe fn check_placement(
    ds: GDALDatasetH,
    m: &Manifest,
    resampling: WarpResampling,
) -> Result<()> {
    // SAFETY: forwarded contract.
    unsafe { Prepared::new(ds, None, m, resampling) }.map(|_| ())
}

/// Places an open dataset on the grid of the store `txn` writes and merges it into the
/// current tick, levels included, marking where it holds data on `cells`; the caller
/// commits.
///
/// # Safety
/// `ds` must be valid for the call and used by no other thread meanwhile.
pub unsafe fn merge_dataset(
    txn: &mut Transaction,
    ds: GDALDatasetH,
    opts: &IngestOptions,
    cells: Option<&Arc<ValidCells>>,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<crate::ingest::MergeReport> {
    // SAFETY: forwarded contract.
    let mut prepared = unsafe { Prepared::new(ds, None, &txn.manifest, opts.resampling)? };
    prepared.mark_on(cells);
    prepared.warnings.iter().for_each(|w| report_warning(w));
    let footprint = prepared.footprint();
    let reader = OneDataset {
        prepared,
        overlay: Overlayer {
            validity: txn.manifest.validity(),
            scratch: Scratch::default(),
        },
    };
    let mut readers: Vec<Box<dyn SourceSet>> = vec![Box::new(reader)];
    merge(txn, &[footprint], &mut readers, opts.threads, progress)
}

fn finish(txn: Transaction, tiles_changed: usize) -> Result<IngestReport> {
    let recovered = txn.recovered().cloned();
    let committed = if tiles_changed == 0 {
        txn.abort();
        None
    } else {
        Some(txn.commit()?)
    };
    Ok(IngestReport {
        tiles_changed,
        committed,
        recovered,
    })
}

/// Files read by one reader thread, opened when first needed; a few stay open.
struct FileSet<'a> {
    paths: &'a [String],
    /// Where each source holds data, marked as it is read (none: not marked).
    cells: &'a [Option<Arc<ValidCells>>],
    manifest: &'a Manifest,
    resampling: WarpResampling,
    open: VecDeque<(usize, Prepared)>,
    overlay: Overlayer,
}

/// How many files one reader keeps open: tiles come in Z-order, so a file's tiles are
/// mostly read together, and a handful of open files covers the neighbourhood.
const OPEN_FILES_PER_READER: usize = 16;

impl FileSet<'_> {
    /// Where source `source` is in `open`, opened now if it is not open (closing the
    /// longest open one if too many are).
    fn open(&mut self, source: usize) -> Result<usize> {
        let at = match self.open.iter().position(|(i, _)| *i == source) {
            Some(at) => at,
            None => {
                if self.open.len() >= OPEN_FILES_PER_READER {
                    self.open.pop_front();
                }
                let opened = OpenedDataset::open(&self.paths[source])?;
                let ds = opened.0;
                // SAFETY: `opened` moves into the same value, so `ds` outlives the view; this
                // reader is its only user.
                let mut p =
                    unsafe { Prepared::new(ds, Some(opened), self.manifest, self.resampling)? };
                p.mark_on(self.cells[source].as_ref());
                self.open.push_back((source, p));
                self.open.len() - 1
            }
        };
        Ok(at)
    }
}

impl SourceSet for FileSet<'_> {
    fn overlay(&mut self, source: usize, loc: TileLoc, tile: &mut Tile) -> Result<Laid> {
        let at = self.open(source)?;
        let o = &mut self.overlay;
        self.open[at]
            .1
            .reader
            .overlay(loc, tile, &o.validity, &mut o.scratch)
    }

    fn whole_rows(
        &mut self,
        source: usize,
        loc: TileLoc,
        rows: Range<usize>,
        dtype: DataType,
        size: usize,
        out: &mut [u8],
    ) -> Result<bool> {
        let at = self.open(source)?;
        let scratch = &mut self.overlay.scratch;
        self.open[at]
            .1
            .reader
            .whole_rows(loc, rows, dtype, size, out, scratch)
    }
}

/// How `ingest_files` commits: after about this many bytes of level-0 tiles (uncompressed),
/// so that an interrupted run loses at most that much work.
pub const DEFAULT_CHECKPOINT_MB: u64 = 2048;

/// How a run of `ingest_files` commits and resumes.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoints {
    /// Commit after about this many bytes of level-0 tiles.
    pub bytes: u64,
    /// Ignore an interrupted run of the same inputs and start from the first file.
    pub restart: bool,
}

/// What `ingest_files` did.
#[derive(Debug, Clone)]
pub struct FilesReport {
    pub tiles_changed: usize,
    /// Level-0 tiles the files touch, and how many of them this part of the run has.
    pub plan_tiles: usize,
    pub part_tiles: usize,
    /// The last manifest committed by this run (`None`: nothing was committed).
    pub committed: Option<Manifest>,
    /// Checkpoint batches of the run in all, and how many an earlier, interrupted run of the
    /// same inputs had already committed (skipped by this one).
    pub batches: u64,
    pub resumed_after: u64,
    /// The current state already holds a completed run of exactly these inputs.
    pub already_done: bool,
    /// A writer that had died holding the lock, taken over (its unfinished write removed).
    pub recovered: Option<Recovered>,
}

/// Ingests files into the store at `root`; where files overlap, the later one wins, as if
/// they were ingested one by one. Every file is opened and checked before anything is
/// written.
///
/// With a `shard` other than [`Shard::WHOLE`], only that part of the level-0 tiles the
/// files touch is written (see [`crate::shard`]); the parts of one plan, written by any
/// processes in any order, make the same store as the whole plan written at once.
///
/// The level-0 tiles to write are planned in Z-order and committed in batches
/// (checkpoints), each with its levels updated, so every commit is a complete state. Each
/// checkpoint records a digest of the inputs and how many batches are done: started again
/// with the same inputs after an interruption, the run skips the committed batches.
pub fn ingest_files(
    root: &Path,
    paths: &[String],
    opts: &IngestOptions,
    checkpoints: Checkpoints,
    shard: Shard,
    writer: &str,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<FilesReport> {
    // On object storage, a commit that lost to another writer's on the same tiles fails
    // with a conflict after its own objects were removed: the ingest then starts again
    // from the new state, which merges the files with what the other wrote. Batches
    // committed before are resumed, not written again.
    let mut tries = 1;
    loop {
        match ingest_files_once(root, paths, opts, checkpoints, shard, writer, progress) {
            Err(Error::Conflict(why)) if tries < MAX_INGEST_TRIES => {
                report_warning(&format!(
                    "{why} (starting over: try {} of {MAX_INGEST_TRIES})",
                    tries + 1
                ));
                tries += 1;
            }
            other => return other,
        }
    }
}

/// How many times an ingest starts over after losing to another writer.
const MAX_INGEST_TRIES: u32 = 8;

fn ingest_files_once(
    root: &Path,
    paths: &[String],
    opts: &IngestOptions,
    checkpoints: Checkpoints,
    shard: Shard,
    writer: &str,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<FilesReport> {
    let mut txn = Transaction::begin(root, writer, opts.wait)?;
    let (footprints, mut cells) = prepare_files(paths, &txn.manifest, opts.resampling)?;
    let manifest = txn.manifest.clone();
    let jobs = plan(&footprints, manifest.grid.tile_size);
    let plan_tiles = jobs.len();
    let jobs = part_of_tiles(jobs, shard, |j| j.loc);
    let per_batch = (checkpoints.bytes / manifest.tile_bytes().max(1) as u64).max(1) as usize;
    let batches: Vec<&[Job]> = jobs.chunks(per_batch).collect();
    let run = run_digest(&manifest, paths, opts, per_batch, shard);
    let mut report = FilesReport {
        tiles_changed: 0,
        plan_tiles,
        part_tiles: jobs.len(),
        committed: None,
        batches: batches.len() as u64,
        resumed_after: 0,
        already_done: false,
        recovered: txn.recovered().cloned(),
    };
    if !checkpoints.restart {
        report.resume(manifest.snapshot.checkpoint.as_ref(), &run);
    }
    if report.already_done {
        txn.abort();
        return Ok(report);
    }
    if report.resumed_after > 0 || !shard.is_whole() || !opts.record_sources {
        // This run reads only part of each source: its records read their masks.
        cells.iter_mut().for_each(|c| *c = None);
    }
    let mut readers = file_readers(paths, &cells, &manifest, opts);
    let total = jobs.len().max(1) as f64;
    let mut done_jobs: usize = batches[..report.resumed_after as usize]
        .iter()
        .map(|b| b.len())
        .sum();
    let start = report.resumed_after as usize;
    for (i, batch) in batches.iter().enumerate().skip(start) {
        let before = done_jobs;
        let mut batch_progress =
            |f: f64| progress((before as f64 + f * batch.len() as f64) / total);
        let merged = merge_jobs(
            &mut txn,
            &footprints,
            batch,
            &mut readers,
            opts.threads,
            &mut batch_progress,
        )?;
        done_jobs += batch.len();
        if merged.tiles_changed == 0 {
            continue; // nothing to commit; the next batch goes on in the same write
        }
        report.tiles_changed += merged.tiles_changed;
        txn.set_checkpoint(Checkpoint {
            run: run.clone(),
            done: i as u64 + 1,
            of: report.batches,
        });
        if i + 1 == batches.len() {
            if opts.record_sources {
                txn.record_sources(file_records(paths, &jobs, &cells));
            }
            report.committed = Some(txn.commit()?);
            return Ok(report);
        }
        let (committed, next) = txn.commit_and_continue()?;
        report.committed = Some(committed);
        txn = next;
    }
    // A run resumed after its last commit with data still completes with one.
    if opts.record_sources && (report.committed.is_some() || report.resumed_after > 0) {
        let records = file_records(paths, &jobs, &cells);
        if let Some(committed) = commit_records(txn, records, run, report.batches)? {
            report.committed = Some(committed);
        }
    } else {
        txn.abort();
    }
    Ok(report)
}

impl FilesReport {
    /// Takes up the run that `checkpoint` (the current state's) records, if it is the run
    /// `run` of as many batches: the batches it committed are skipped.
    fn resume(&mut self, checkpoint: Option<&Checkpoint>, run: &str) {
        if let Some(c) = checkpoint.filter(|c| c.run == run && c.of == self.batches) {
            self.resumed_after = c.done;
            self.already_done = c.done == c.of;
        }
    }
}

/// Opens each file and places it on the store's grid: its level-0 footprint, and where
/// it holds data, to be marked as it is read (none when it is warped).
fn prepare_files(
    paths: &[String],
    manifest: &Manifest,
    resampling: WarpResampling,
) -> Result<(Vec<PixelRect>, Vec<Marks>)> {
    let mut footprints = Vec::with_capacity(paths.len());
    let mut cells = Vec::with_capacity(paths.len());
    for path in paths {
        let opened = OpenedDataset::open(path)?;
        let ds = opened.0;
        // SAFETY: `opened` lives in the value, which is dropped right after.
        let p = unsafe { Prepared::new(ds, Some(opened), manifest, resampling) }
            .map_err(|e| prefix_error(path, e))?;
        p.warnings.iter().for_each(|w| report_warning(w));
        footprints.push(p.footprint());
        cells.push(p.new_cells());
    }
    Ok((footprints, cells))
}

/// Where a source holds data, marked as it is read (none: not marked).
type Marks = Option<Arc<ValidCells>>;

/// One reader of the files per thread.
fn file_readers<'a>(
    paths: &'a [String],
    cells: &'a [Marks],
    manifest: &'a Manifest,
    opts: &IngestOptions,
) -> Vec<Box<dyn SourceSet + 'a>> {
    (0..opts.threads.max(1))
        .map(|_| {
            Box::new(FileSet {
                paths,
                cells,
                manifest,
                resampling: opts.resampling,
                open: VecDeque::new(),
                overlay: Overlayer {
                    validity: manifest.validity(),
                    scratch: Scratch::default(),
                },
            }) as Box<dyn SourceSet + 'a>
        })
        .collect()
}

/// Commits the files' source `records` on their own, when the last batches changed
/// nothing: that completes the run as its last checkpoint would have. Without records
/// there is nothing to commit.
fn commit_records(
    mut txn: Transaction,
    records: Vec<serde_json::Value>,
    run: String,
    batches: u64,
) -> Result<Option<Manifest>> {
    if records.is_empty() {
        txn.abort();
        return Ok(None);
    }
    txn.record_sources(records);
    txn.set_checkpoint(Checkpoint {
        run,
        done: batches,
        of: batches,
    });
    Ok(Some(txn.commit()?))
}

/// The source records (docs/FORMAT.md §12) of the files `jobs` read, made on all cores. A
/// file whose record cannot be made is reported and left out: the data goes in all the
/// same.
fn file_records(
    paths: &[String],
    jobs: &[Job],
    cells: &[Option<Arc<ValidCells>>],
) -> Vec<serde_json::Value> {
    let mut used = vec![false; paths.len()];
    for s in jobs.iter().flat_map(|j| &j.sources) {
        used[*s as usize] = true;
    }
    let written = now_us();
    let records: Vec<Option<serde_json::Value>> = (paths, cells, used)
        .into_par_iter()
        .map(|(path, cells, used)| {
            let opened = used.then(|| OpenedDataset::open(path).ok()).flatten()?;
            // SAFETY: `opened` is this thread's own and lives through the call.
            unsafe { record_or_warn(opened.0, path, None, written, cells.as_deref()) }
        })
        .collect();
    records.into_iter().flatten().collect()
}

/// The source record of an open dataset, or `None` (reported) when it cannot be made.
///
/// # Safety
/// `ds` must be valid for the call and used by no other thread meanwhile.
pub(crate) unsafe fn record_or_warn(
    ds: GDALDatasetH,
    name: &str,
    time: Option<(i64, i64)>,
    written: i64,
    cells: Option<&ValidCells>,
) -> Option<serde_json::Value> {
    // SAFETY: forwarded contract.
    match unsafe { crate::catalog::raster::source_record(ds, name, time, written, cells) } {
        Ok(record) => Some(record),
        Err(e) => {
            report_warning(&format!(
                "{name}: not recorded among the store's sources, for catalogs ({e}); its \
                 data is written all the same"
            ));
            None
        }
    }
}

/// Now, in microseconds since 1970 (UTC).
pub(crate) fn now_us() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_micros() as i64)
}

/// A digest of what a run of `ingest_files` reads and how it splits the work: the store,
/// each file's name, size and modification time, the options that change the result, the
/// batch size and the part of the plan. A rerun resumes only if all of these are the same.
fn run_digest(
    m: &Manifest,
    paths: &[String],
    opts: &IngestOptions,
    per_batch: usize,
    shard: Shard,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(m.store_id.as_bytes());
    h.update(format!("{:?}", opts.resampling).as_bytes());
    h.update((per_batch as u64).to_le_bytes());
    if !shard.is_whole() {
        // The whole plan keeps the digest it had before parts existed.
        h.update(shard.to_string().as_bytes());
    }
    for path in paths {
        // Files named through GDAL's virtual file systems have no metadata here; their
        // names alone identify them.
        let meta = std::fs::metadata(path).ok();
        let name = std::fs::canonicalize(path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| path.clone());
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        let size = meta.as_ref().map_or(0, |m| m.len());
        let modified = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(size.to_le_bytes());
        h.update(modified.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Names the file in an error that does not already.
fn prefix_error(path: &str, e: Error) -> Error {
    let msg = e.to_string();
    if msg.contains(path) {
        e
    } else {
        Error::InvalidInput(format!("{path}: {msg}"))
    }
}
