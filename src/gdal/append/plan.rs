//! Planning an append: the new store's manifest and axis, and every step of every slice
//! checked (bands, type, grid, tick, order) with what to do with it, before anything is
//! written.

use std::io::Read;
use std::path::Path;

use gdal_sys::GDALDatasetH;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::grid::PixelRect;
use crate::ingest::new_store_manifest;
use crate::manifest::Manifest;
use crate::options::CreateOptions;
use crate::store::{check_store_name, Snapshot};
use crate::time::{AxisKind, Calendar, CfUnits, DateTime, Step, TimeAxis, TimeSpec};

use super::super::cpl::report_warning;
use super::super::ingest::check_placement;
use super::super::slice_time::{slice_axis, slice_steps, SliceStep};
use super::super::source::{describe, drop_impossible_nodata};
use super::convert::{band_view, Conversion};
use super::{Action, AppendOptions, AxisOptions, PlannedStep};

/// The manifest of the store the first slice creates: its grid, bands and type, and the
/// axis the options describe.
pub(super) unsafe fn new_manifest(
    root: &Path,
    opened: &[GDALDatasetH],
    slices: &[String],
    opts: &AppendOptions,
) -> Result<Manifest> {
    check_store_name(root)?;
    let first = opened[0];
    // SAFETY (block): a valid handle, used on this thread only.
    unsafe {
        let own = slice_axis(first)?;
        let calendar = match &opts.axis.calendar {
            Some(c) => Calendar::parse(c)?,
            None => own.calendar.unwrap_or(Calendar::Standard),
        };
        let steps = slice_steps(first, &slices[0], &opts.time, calendar)?;
        let step = &steps[0];
        let conversion = Conversion::for_store(opts, None)?;
        let view = band_view(first, &step.bands, conversion)?;
        let mut info = describe(view.handle())?;
        drop_impossible_nodata(&mut info)
            .iter()
            .for_each(|w| report_warning(w));
        let create = CreateOptions::parse(&opts.create)?;
        let mut m = new_store_manifest(&info, &create)?;
        let mut axis = new_axis(&opts.axis, calendar, step.at, own.units)?;
        if let Some(d) = series_block_option(&opts.create)? {
            axis.series_block = Some(d);
        }
        m.time = Some(axis);
        // The store covers the first slice whole, as a store gdal_translate makes does,
        // even where no step has data; whether every pixel holds data is not tracked
        // across steps, so masks are read.
        m.extent = Some(PixelRect::new(0, 0, info.width as i64, info.height as i64));
        m.all_valid = false;
        Ok(m)
    }
}

/// The creation option `SERIES_BLOCK`: ticks per time block (docs/FORMAT.md §8).
fn series_block_option(create: &[(String, String)]) -> Result<Option<u32>> {
    let max = crate::chunk::time_block::MAX_BLOCK_TICKS;
    let Some(v) = crate::options::find(create, "SERIES_BLOCK") else {
        return Ok(None);
    };
    match v.parse::<u32>() {
        Ok(d) if (1..=max).contains(&d) => Ok(Some(d)),
        _ => Err(Error::option(
            "SERIES_BLOCK",
            v,
            format!("a number of ticks per time block from 1 to {max}"),
        )),
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
pub(super) unsafe fn plan(
    opened: &[GDALDatasetH],
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
        let steps = unsafe { slice_steps(*ds, name, &opts.time, axis.calendar())? };
        // SAFETY: as above.
        let digest = unsafe { slice_digest(*ds, name)? };
        for step in steps {
            // SAFETY: as above.
            unsafe { check_step(*ds, name, &step, m, opts)? };
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
        let view = band_view(ds, &step.bands, Conversion::for_store(opts, Some(m))?)?;
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
                 --replace (-co TIME_REPLACE=YES through GDAL) to replace it",
                record.source
            )));
        }
        return Ok(Action::Replace);
    }
    if let Some(l) = *last {
        if tick <= l && !opts.insert {
            return Err(Error::InvalidInput(format!(
                "{name}: the time {at} is not after the store's last step; an append adds \
                 steps in time order (give --insert, or -co TIME_INSERT=YES \
                 through GDAL, to put it between existing steps)"
            )));
        }
    }
    *last = Some(last.map_or(tick, |l| l.max(tick)));
    Ok(Action::Add)
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
