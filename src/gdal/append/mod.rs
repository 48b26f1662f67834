//! Appending time slices to a store: each slice's steps are found, checked against the
//! store and each other before anything is written, then written one atomic commit per
//! slice, under one hold of the writer lock.
//!
//! A rerun with the same slices resumes: a step whose tick the store already holds with
//! the same content digest is skipped. A step whose tick is taken by other content is
//! refused unless `replace` is set; a step before the last one needs `insert`.

mod convert;
mod plan;
mod shard;
mod slices;

use std::path::Path;
use std::time::Duration;

use gdal_sys::GDALDatasetH;

use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::store::lock::Recovered;
use crate::store::{compact_in, Closed, Compacted, NewStore, Snapshot, StepRecord, Transaction};
use crate::time::{BoundsSpec, Calendar, DateTime, TimeSpec};

use super::ingest::{
    dataset_cells, merge_dataset, now_us, record_or_warn, IngestOptions, OpenedDataset,
};
use super::slice_time::TimeSource;
use crate::ingest::valid_cells::ValidCells;
pub use convert::Packing;
use convert::{band_view, Conversion};
use plan::{new_manifest, plan};
pub use shard::append_part;
use slices::{open_slice, wait_for_slice};
use std::sync::Arc;

/// How a new store's time axis is made (ignored for an existing store).
#[derive(Debug, Clone, Default)]
pub struct AxisOptions {
    /// The step of a regular axis (ISO 8601 duration); none: irregular, to the second.
    pub step: Option<String>,
    pub calendar: Option<String>,
    pub units: Option<String>,
    /// The instant of tick 0 (default: the first slice's time on a regular axis).
    pub origin: Option<String>,
    pub bounds: Option<BoundsSpec>,
}

#[derive(Debug, Clone)]
pub struct AppendOptions {
    pub time: TimeSource,
    pub axis: AxisOptions,
    /// Creation options of a new store (`BLOCKSIZE`, `COMPRESS`, ...).
    pub create: Vec<(String, String)>,
    /// Convert slices to this type (a new store gets it): the declared conversion.
    pub data_type: Option<DataType>,
    /// Store floats as scaled integers of `data_type`: `stored = round((value - offset) /
    /// scale)`; GDAL reports the scale and offset, so readers unpack. A store made packed
    /// packs every later slice the same way.
    pub packing: Option<Packing>,
    pub replace: bool,
    pub insert: bool,
    pub ingest: IngestOptions,
    /// Wait this long for each slice to exist and stop growing.
    pub wait_for_slices: Option<Duration>,
    pub dry_run: bool,
    /// After the slices, compact the blocks of ticks they closed (and those whose time
    /// blocks they dropped) into time blocks, in a commit of its own.
    pub compact: bool,
}

/// What is done with a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Replace,
    /// Already in the store with the same content (a rerun resuming).
    Skip,
}

#[derive(Debug, Clone)]
pub struct PlannedStep {
    pub slice: usize,
    pub bands: Vec<usize>,
    pub at: DateTime,
    pub tick: u32,
    pub digest: String,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub struct AppendReport {
    pub steps: Vec<PlannedStep>,
    /// The axis as it is (or, for a dry run, would be) after the append.
    pub axis: TimeSpec,
    pub creates: bool,
    /// Snapshots committed, one per slice that wrote anything.
    pub committed: Vec<u64>,
    /// What the compaction after the slices wrote (its snapshot is not in `committed`).
    pub compacted: Compacted,
    pub recovered: Option<Recovered>,
}

/// Appends `slices` to the store at `root` (created by the first slice if absent).
pub fn append(
    root: &Path,
    slices: &[String],
    opts: &AppendOptions,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<AppendReport> {
    if slices.is_empty() {
        return Err(Error::InvalidInput("no slices to append".into()));
    }
    if let Some(limit) = opts.wait_for_slices {
        slices.iter().try_for_each(|s| wait_for_slice(s, limit))?;
    }
    let mut opened: Vec<Option<OpenedDataset>> = slices
        .iter()
        .map(|s| open_slice(s).map(Some))
        .collect::<Result<_>>()?;
    let handles: Vec<GDALDatasetH> = opened.iter().flatten().map(|o| o.0).collect();
    // Every slice stays open from the checks to its commit (so what is written is what was
    // checked), then is closed: an open dataset keeps what GDAL read of it (cached blocks,
    // decoding buffers), which a long append would otherwise hold for every slice.
    let mut written = |i: usize| opened[i] = None;
    // SAFETY: each dataset stays open until `written` is called for it, after its last use,
    // and is used on this thread only.
    unsafe { append_opened(root, slices, &handles, opts, progress, &mut written) }
}

/// [`append`] of open datasets (`gdal_translate` hands the driver one), named `names`.
///
/// # Safety
/// Every handle must be valid for the call and used by no other thread meanwhile.
pub unsafe fn append_datasets(
    root: &Path,
    names: &[String],
    opened: &[GDALDatasetH],
    opts: &AppendOptions,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<AppendReport> {
    // SAFETY: forwarded contract; the caller keeps its datasets.
    unsafe { append_opened(root, names, opened, opts, progress, &mut |_| {}) }
}

/// [`append_datasets`], calling `written(i)` once slice `i` is committed and no longer
/// used.
///
/// # Safety
/// Every handle must be valid until `written` is called for it (or the call returns), and
/// used by no other thread meanwhile.
unsafe fn append_opened(
    root: &Path,
    names: &[String],
    opened: &[GDALDatasetH],
    opts: &AppendOptions,
    progress: &mut dyn FnMut(f64) -> bool,
    written: &mut dyn FnMut(usize),
) -> Result<AppendReport> {
    let existing = crate::store::store_exists(root)?;
    let current = existing.then(|| Snapshot::open(root, None)).transpose()?;
    // SAFETY (block): forwarded contract.
    let (manifest, creates) = match &current {
        Some(s) => (s.manifest().clone(), false),
        None => unsafe { (new_manifest(root, opened, names, opts)?, true) },
    };
    let spec = manifest.time.clone().ok_or_else(|| no_axis(root))?;
    let axis = spec.axis()?;
    // SAFETY: as above.
    let steps = unsafe { plan(opened, names, opts, &manifest, &axis, current.as_ref())? };
    let mut report = AppendReport {
        axis: spec,
        steps,
        creates,
        committed: Vec::new(),
        compacted: Compacted::default(),
        recovered: None,
    };
    if opts.dry_run {
        for s in report.steps.iter().filter(|s| s.action == Action::Add) {
            report.axis.note_added(s.tick);
        }
        return Ok(report);
    }
    drop(current);
    // SAFETY: as above.
    let slices = OpenSlices {
        handles: opened,
        names,
        written,
    };
    unsafe { write(root, slices, opts, manifest, &mut report, progress)? };
    Ok(report)
}

fn no_axis(root: &Path) -> Error {
    Error::InvalidInput(format!(
        "{}: this store has no time axis, so slices cannot be appended to it; append into a \
         new store (the first slice creates it), or use `gridstore ingest` to add data to \
         this one",
        root.display()
    ))
}

/// The slices of an append as [`write`] takes them: open datasets, their names, and what
/// to call once slice `i` is committed and no longer used.
struct OpenSlices<'a> {
    handles: &'a [GDALDatasetH],
    names: &'a [String],
    written: &'a mut dyn FnMut(usize),
}

/// Writes the planned steps, one commit per slice, under one hold of the lock.
unsafe fn write(
    root: &Path,
    slices: OpenSlices<'_>,
    opts: &AppendOptions,
    manifest: Manifest,
    report: &mut AppendReport,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<()> {
    let writer = format!("gridstore append ({} slice(s))", slices.names.len());
    let mut txn = if report.creates {
        // A new store covers its first slice whole (see `new_manifest`).
        let extent = manifest.extent;
        let new = NewStore {
            path: root.to_path_buf(),
            manifest,
        };
        let mut txn = Transaction::create(new, &writer)?;
        txn.manifest.extent = extent;
        txn
    } else {
        Transaction::begin(root, &writer, opts.ingest.wait)?
    };
    report.recovered = txn.recovered().cloned();
    let to_write = report
        .steps
        .iter()
        .filter(|s| s.action != Action::Skip)
        .count();
    let total = to_write.max(1) as f64;
    let mut written = 0usize;
    let calendar = report.axis.axis()?.calendar();
    for (i, ds) in slices.handles.iter().enumerate() {
        let todo: Vec<&PlannedStep> = report
            .steps
            .iter()
            .filter(|s| s.slice == i && s.action != Action::Skip)
            .collect();
        if todo.is_empty() {
            (slices.written)(i);
            continue;
        }
        // SAFETY: forwarded contract.
        let cells = unsafe { dataset_cells(*ds) };
        for step in &todo {
            // SAFETY: forwarded contract.
            unsafe { write_step(&mut txn, *ds, &slices.names[i], step, opts, &cells)? };
            written += 1;
            if !progress(written as f64 / total) {
                return Err(Error::Interrupted);
            }
        }
        let time = utc_range(&todo, calendar);
        // SAFETY: forwarded contract.
        if opts.ingest.record_sources {
            // SAFETY: forwarded contract.
            let record =
                unsafe { record_or_warn(*ds, &slices.names[i], time, now_us(), Some(&cells)) };
            txn.record_sources(record);
        }
        let (committed, next) = txn.commit_and_continue()?;
        (slices.written)(i);
        report.committed.push(committed.snapshot.id);
        report.axis = committed.time.clone().unwrap_or(report.axis.clone());
        txn = next;
    }
    if !opts.compact || report.committed.is_empty() {
        txn.abort();
        return Ok(());
    }
    compact_after(txn, report)
}

/// The UTC interval of `steps` (from the first instant to just after the last), in
/// microseconds; `None` on a calendar whose dates are not the real world's (a model's
/// 360-day year, say).
fn utc_range(steps: &[&PlannedStep], calendar: Calendar) -> Option<(i64, i64)> {
    if !matches!(calendar, Calendar::Standard | Calendar::ProlepticGregorian) {
        return None;
    }
    let us: Vec<i64> = steps
        .iter()
        .map(|s| s.at.to_seconds(calendar).ok()?.checked_mul(1_000_000))
        .collect::<Option<_>>()?;
    Some((*us.iter().min()?, us.iter().max()?.checked_add(1)?))
}

/// Compacts, in a commit of its own, the blocks of ticks from the first the append
/// touched on: those its steps closed, and those whose time blocks its replaces and
/// inserts dropped. An append that closes no block costs a walk of the steps of the
/// block it wrote in, and commits nothing.
fn compact_after(mut txn: Transaction, report: &mut AppendReport) -> Result<()> {
    let written = report.steps.iter().filter(|s| s.action != Action::Skip);
    let Some(from) = written.map(|s| s.tick).min() else {
        txn.abort();
        return Ok(());
    };
    report.compacted = compact_in(&mut txn, Closed::From(from))?;
    if report.compacted.chunks == 0 {
        txn.abort();
        return Ok(());
    }
    let m = txn.commit()?;
    report.compacted.snapshot = Some(m.snapshot.id);
    report.axis = m.time.unwrap_or(report.axis.clone());
    Ok(())
}

/// Writes one step into the transaction: its tiles and levels under its tick, and its
/// record.
unsafe fn write_step(
    txn: &mut Transaction,
    ds: GDALDatasetH,
    name: &str,
    step: &PlannedStep,
    opts: &AppendOptions,
    cells: &Arc<ValidCells>,
) -> Result<()> {
    txn.set_tick(step.tick);
    if step.action == Action::Replace {
        txn.remove_step(step.tick)?;
    }
    // SAFETY (block): forwarded contract.
    unsafe {
        let conversion = Conversion::for_store(opts, Some(&txn.manifest))?;
        let view = band_view(ds, &step.bands, conversion)?;
        merge_dataset(txn, view.handle(), &opts.ingest, Some(cells), &mut |_| true)?;
    }
    let record = StepRecord {
        time: step.at.to_string(),
        source: name.to_string(),
        digest: step.digest.clone(),
    };
    txn.put_step(step.tick, &record)
}
