//! Appending time slices to a store: each slice's steps are found, checked against the
//! store and each other before anything is written, then written one atomic commit per
//! slice, under one hold of the writer lock.
//!
//! A rerun with the same slices resumes: a step whose tick the store already holds with
//! the same content digest is skipped. A step whose tick is taken by other content is
//! refused unless `replace` is set; a step before the last one needs `insert`.

use std::ffi::CString;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use gdal_sys::GDALDatasetH;
use sha2::{Digest, Sha256};

use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ingest::new_store_manifest;
use crate::manifest::{Manifest, MANIFEST_KEY};
use crate::options::CreateOptions;
use crate::store::lock::Recovered;
use crate::store::{check_store_name, NewStore, Snapshot, StepRecord, Transaction};
use crate::time::{AxisKind, BoundsSpec, Calendar, CfUnits, DateTime, Step, TimeAxis, TimeSpec};

use super::cpl::{last_error_message, report_warning, QuietErrors};
use super::ingest::{check_placement, merge_dataset, IngestOptions, OpenedDataset};
use super::slice_time::{slice_axis, slice_steps, SliceStep, TimeSource};
use super::source::{describe, drop_impossible_nodata};

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
    pub replace: bool,
    pub insert: bool,
    pub ingest: IngestOptions,
    /// Wait this long for each slice to exist and stop growing.
    pub wait_for_slices: Option<Duration>,
    pub dry_run: bool,
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
    let opened: Vec<OpenedDataset> = slices
        .iter()
        .map(|s| OpenedDataset::open(s))
        .collect::<Result<_>>()?;
    let existing = root.join(MANIFEST_KEY).exists();
    let current = existing.then(|| Snapshot::open(root, None)).transpose()?;
    // SAFETY: the handles are open and used on this thread only.
    let (manifest, creates) = match &current {
        Some(s) => (s.manifest().clone(), false),
        None => unsafe { (new_manifest(root, &opened, slices, opts)?, true) },
    };
    let spec = manifest.time.clone().ok_or_else(|| no_axis(root))?;
    let axis = spec.axis()?;
    // SAFETY: as above.
    let steps = unsafe { plan(&opened, slices, opts, &manifest, &axis, current.as_ref())? };
    let mut report = AppendReport {
        axis: spec,
        steps,
        creates,
        committed: Vec::new(),
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
    unsafe { write(root, &opened, slices, opts, manifest, &mut report, progress)? };
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

/// The manifest of the store the first slice creates: its grid, bands and type, and the
/// axis the options describe.
unsafe fn new_manifest(
    root: &Path,
    opened: &[OpenedDataset],
    slices: &[String],
    opts: &AppendOptions,
) -> Result<Manifest> {
    check_store_name(root)?;
    let first = opened[0].0;
    // SAFETY (block): a valid handle, used on this thread only.
    unsafe {
        let own = slice_axis(first)?;
        let calendar = match &opts.axis.calendar {
            Some(c) => Calendar::parse(c)?,
            None => own.calendar.unwrap_or(Calendar::Standard),
        };
        let steps = slice_steps(first, &slices[0], &opts.time, calendar)?;
        let step = &steps[0];
        let view = band_view(first, &step.bands, opts.data_type)?;
        let mut info = describe(view.handle())?;
        drop_impossible_nodata(&mut info)
            .iter()
            .for_each(|w| report_warning(w));
        let create = CreateOptions::parse(&opts.create)?;
        let mut m = new_store_manifest(&info, &create)?;
        m.time = Some(new_axis(&opts.axis, calendar, step.at, own.units)?);
        Ok(m)
    }
}

/// A new store's axis: regular with `--time-step`, else irregular to the second.
fn new_axis(
    o: &AxisOptions,
    calendar: Calendar,
    first: DateTime,
    slice_units: Option<String>,
) -> Result<TimeSpec> {
    let (kind, step) = match &o.step {
        Some(s) => (AxisKind::Regular, Step::parse(s)?),
        None => (AxisKind::Irregular, Step::Seconds(1)),
    };
    let origin = match (&o.origin, kind) {
        (Some(text), _) => DateTime::parse(text, calendar)?,
        (None, AxisKind::Regular) => first,
        // To the second from 1970 reaches 2106; earlier data starts at its own year.
        (None, AxisKind::Irregular) => {
            let year = if first.year() >= 1970 {
                1970
            } else {
                first.year()
            };
            DateTime::new(calendar, (year, 1, 1), (0, 0, 0))?
        }
    };
    let units = match o.units.as_ref().or(slice_units.as_ref()) {
        Some(u) => Some(CfUnits::parse(u, calendar)?),
        None => None,
    };
    let mut spec = TimeSpec::new(kind, calendar, origin, step, units)?;
    spec.bounds = o.bounds.clone();
    spec.axis()?;
    Ok(spec)
}

/// Every step of every slice, checked: bands and type, grid, tick, order, and what to do.
unsafe fn plan(
    opened: &[OpenedDataset],
    slices: &[String],
    opts: &AppendOptions,
    m: &Manifest,
    axis: &TimeAxis,
    current: Option<&Snapshot>,
) -> Result<Vec<PlannedStep>> {
    let spec = m.time.as_ref().expect("checked by the caller");
    let mut last = spec.last;
    let mut planned: Vec<PlannedStep> = Vec::new();
    for (i, (ds, name)) in opened.iter().zip(slices).enumerate() {
        // SAFETY (block): a valid handle, used on this thread only.
        let steps = unsafe { slice_steps(ds.0, name, &opts.time, axis.calendar())? };
        // SAFETY: as above.
        let digest = unsafe { slice_digest(ds.0, name)? };
        for step in steps {
            // SAFETY: as above.
            unsafe { check_step(ds.0, name, &step, m, opts)? };
            let tick = axis.tick(&step.at).map_err(|e| in_slice(name, e))?;
            let digest = step_digest(&digest, &step, tick);
            let action = decide(
                name, &step, tick, &digest, &mut last, current, &planned, opts,
            )?;
            planned.push(PlannedStep {
                slice: i,
                bands: step.bands,
                at: step.at,
                tick,
                digest,
                action,
            });
        }
    }
    Ok(planned)
}

fn in_slice(name: &str, e: Error) -> Error {
    Error::InvalidInput(format!("{name}: {e}"))
}

/// Checks a step's bands and type against the store, and that it lands on the store grid.
unsafe fn check_step(
    ds: GDALDatasetH,
    name: &str,
    step: &SliceStep,
    m: &Manifest,
    opts: &AppendOptions,
) -> Result<()> {
    if step.bands.len() != m.bands.len() {
        return Err(Error::InvalidInput(format!(
            "{name}: the step at {} has {} band(s), the store {}; a slice must have the \
             store's bands",
            step.at,
            step.bands.len(),
            m.bands.len()
        )));
    }
    // SAFETY (block): forwarded contract.
    unsafe {
        let view = band_view(ds, &step.bands, opts.data_type)?;
        let info = describe(view.handle())?;
        if info.data_type != m.data_type {
            return Err(Error::InvalidInput(format!(
                "{name}: its type is {}, the store's {}; give --type {} to convert it",
                info.data_type.name(),
                m.data_type.name(),
                m.data_type.name()
            )));
        }
        check_placement(view.handle(), m, opts.ingest.resampling).map_err(|e| in_slice(name, e))
    }
}

/// What to do with a step at `tick`, given the store and the steps planned before it.
#[allow(clippy::too_many_arguments)]
fn decide(
    name: &str,
    step: &SliceStep,
    tick: u32,
    digest: &str,
    last: &mut Option<u32>,
    current: Option<&Snapshot>,
    planned: &[PlannedStep],
    opts: &AppendOptions,
) -> Result<Action> {
    let at = step.at;
    if planned.iter().any(|p| p.tick == tick) {
        return Err(Error::InvalidInput(format!(
            "{name}: the time {at} is given twice among the slices"
        )));
    }
    let held = match current {
        Some(s) => s.step_record(tick)?,
        None => None,
    };
    if let Some(record) = held {
        if record.digest == digest {
            return Ok(Action::Skip);
        }
        if !opts.replace {
            return Err(Error::InvalidInput(format!(
                "{name}: the store already holds the time {at} (written from {}); give \
                 --replace to replace it",
                record.source
            )));
        }
        return Ok(Action::Replace);
    }
    if let Some(l) = *last {
        if tick <= l && !opts.insert {
            return Err(Error::InvalidInput(format!(
                "{name}: the time {at} is not after the store's last step; an append adds \
                 steps in time order (give --insert to put it between existing steps)"
            )));
        }
    }
    *last = Some(last.map_or(tick, |l| l.max(tick)));
    Ok(Action::Add)
}

/// Writes the planned steps, one commit per slice, under one hold of the lock.
unsafe fn write(
    root: &Path,
    opened: &[OpenedDataset],
    slices: &[String],
    opts: &AppendOptions,
    manifest: Manifest,
    report: &mut AppendReport,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<()> {
    let writer = format!("gridstore append ({} slice(s))", slices.len());
    let mut txn = if report.creates {
        let new = NewStore {
            path: root.to_path_buf(),
            manifest,
        };
        Transaction::create(new, &writer)?
    } else {
        Transaction::begin(root, &writer, opts.ingest.wait)?
    };
    report.recovered = txn.recovered().cloned();
    let total = report.steps.len().max(1) as f64;
    for (i, ds) in opened.iter().enumerate() {
        let todo: Vec<&PlannedStep> = report
            .steps
            .iter()
            .filter(|s| s.slice == i && s.action != Action::Skip)
            .collect();
        if todo.is_empty() {
            continue;
        }
        for step in &todo {
            // SAFETY: forwarded contract.
            unsafe { write_step(&mut txn, ds.0, &slices[i], step, opts)? };
            let done = report.steps.iter().position(|s| std::ptr::eq(s, *step));
            if !progress(done.map_or(0.0, |d| (d + 1) as f64 / total)) {
                return Err(Error::Interrupted);
            }
        }
        let (committed, next) = txn.commit_and_continue()?;
        report.committed.push(committed.snapshot.id);
        report.axis = committed.time.clone().unwrap_or(report.axis.clone());
        txn = next;
    }
    txn.abort();
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
) -> Result<()> {
    txn.set_tick(step.tick);
    if step.action == Action::Replace {
        txn.remove_step(step.tick)?;
    }
    // SAFETY (block): forwarded contract.
    unsafe {
        let view = band_view(ds, &step.bands, opts.data_type)?;
        merge_dataset(txn, view.handle(), &opts.ingest, &mut |_| true)?;
    }
    let record = StepRecord {
        time: step.at.to_string(),
        source: name.to_string(),
        digest: step.digest.clone(),
    };
    txn.put_step(step.tick, &record)
}

/// A dataset of some bands of a slice, converted to `dtype` if given: the slice itself
/// when that is all of it, else an in-memory VRT.
enum BandView {
    Whole(GDALDatasetH),
    Vrt(GDALDatasetH),
}

impl BandView {
    fn handle(&self) -> GDALDatasetH {
        match self {
            BandView::Whole(h) | BandView::Vrt(h) => *h,
        }
    }
}

impl Drop for BandView {
    fn drop(&mut self) {
        if let BandView::Vrt(h) = self {
            // SAFETY: made by `band_view`, closed once.
            unsafe { gdal_sys::GDALClose(*h) };
        }
    }
}

unsafe fn band_view(
    ds: GDALDatasetH,
    bands: &[usize],
    dtype: Option<DataType>,
) -> Result<BandView> {
    // SAFETY: valid handle (contract).
    let count = unsafe { gdal_sys::GDALGetRasterCount(ds) }.max(0) as usize;
    let all = bands.iter().copied().eq(1..=count);
    if all && dtype.is_none() {
        return Ok(BandView::Whole(ds));
    }
    let mut args: Vec<String> = vec!["-of".into(), "VRT".into()];
    for b in bands {
        args.extend(["-b".into(), b.to_string()]);
    }
    if let Some(t) = dtype {
        args.extend(["-ot".into(), t.name().to_string()]);
    }
    let c: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()).expect("no NUL in options"))
        .collect();
    let mut ptrs: Vec<*mut std::ffi::c_char> = c.iter().map(|a| a.as_ptr() as *mut _).collect();
    ptrs.push(std::ptr::null_mut());
    let empty = CString::new("").expect("no NUL");
    // SAFETY: a NULL-terminated list of NUL-terminated options, alive for the call; the
    // options object is freed after use; an empty name makes an in-memory VRT.
    let out = unsafe {
        let o = gdal_sys::GDALTranslateOptionsNew(ptrs.as_mut_ptr(), std::ptr::null_mut());
        let out = gdal_sys::GDALTranslate(empty.as_ptr(), ds, o, std::ptr::null_mut());
        gdal_sys::GDALTranslateOptionsFree(o);
        out
    };
    if out.is_null() {
        return Err(Error::InvalidInput(format!(
            "cannot select bands {bands:?} of the slice: {}",
            last_error_message()
        )));
    }
    Ok(BandView::Vrt(out))
}

/// SHA-256 of what a slice is: a file's content; for a name that is no file (a subdataset
/// such as `NETCDF:"f.nc":var`), the name and the content of every file GDAL reads the
/// dataset from, so that a source changed since is not taken for one already in. A name
/// with no file behind it (a remote object) is its name alone.
///
/// # Safety
/// `ds` must be the valid handle of `name`, open.
unsafe fn slice_digest(ds: GDALDatasetH, name: &str) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    if is_file(name) {
        hash_file(&mut h, name)?;
        return Ok(h.finalize().into());
    }
    h.update(name.as_bytes());
    // SAFETY: forwarded contract.
    for file in unsafe { file_list(ds) }.iter().filter(|f| is_file(f)) {
        h.update(file.as_bytes());
        hash_file(&mut h, file)?;
    }
    Ok(h.finalize().into())
}

fn is_file(name: &str) -> bool {
    std::fs::metadata(name).is_ok_and(|m| m.is_file())
}

fn hash_file(h: &mut Sha256, name: &str) -> Result<()> {
    let cannot = |e: std::io::Error| Error::InvalidInput(format!("{name}: cannot read it: {e}"));
    let mut f = std::fs::File::open(name).map_err(cannot)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(cannot)?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

/// The files GDAL reads the dataset `ds` from.
unsafe fn file_list(ds: GDALDatasetH) -> Vec<String> {
    // SAFETY: valid handle (contract); the list is NULL-terminated, NULL when empty, and
    // ours to free.
    unsafe {
        let list = gdal_sys::GDALGetFileList(ds);
        if list.is_null() {
            return Vec::new();
        }
        let mut files = Vec::new();
        let mut i = 0;
        while !(*list.add(i)).is_null() {
            files.push(
                std::ffi::CStr::from_ptr(*list.add(i))
                    .to_string_lossy()
                    .into_owned(),
            );
            i += 1;
        }
        gdal_sys::CSLDestroy(list);
        files
    }
}

/// A step's digest: its slice's content, its bands and its tick.
fn step_digest(slice: &[u8; 32], step: &SliceStep, tick: u32) -> String {
    let mut h = Sha256::new();
    h.update(slice);
    for b in &step.bands {
        h.update((*b as u64).to_le_bytes());
    }
    h.update(tick.to_le_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until the slice `name` exists, opens, and its size stopped changing, for at most
/// `limit`. A name that is no file (a subdataset such as `NETCDF:"f.nc":var`, a remote
/// object) has no size to watch: it is ready once it opens.
fn wait_for_slice(name: &str, limit: Duration) -> Result<()> {
    let started = Instant::now();
    let mut last_size = None;
    loop {
        let size = std::fs::metadata(name).ok().map(|m| m.len());
        let settled = size.is_none() || size == last_size;
        if settled && opens_quietly(name) {
            return Ok(());
        }
        if started.elapsed() >= limit {
            return Err(Error::InvalidInput(format!(
                "{name}: {} after waiting {} s (--wait-for-slices)",
                if size.is_some() {
                    "still being written, or not a raster GDAL opens,"
                } else {
                    "does not exist (or does not open as a raster)"
                },
                limit.as_secs()
            )));
        }
        last_size = size;
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Whether `name` opens as a raster, without GDAL printing why not (a slice waited for is
/// expected not to, a while).
fn opens_quietly(name: &str) -> bool {
    let _quiet = QuietErrors::push();
    OpenedDataset::open(name).is_ok()
}
