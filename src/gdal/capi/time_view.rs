//! What a dataset shows of a store with a time axis, in the netCDF driver's convention so
//! that rioxarray, `gdal_translate -of netCDF` and QGIS understand it (docs/DRIVER.md,
//! "Time stores"):
//!
//! - one variable (store band) over time: a GDAL band per time step, in time order, each
//!   described by its ISO 8601 label and carrying `NETCDF_DIM_time`;
//! - one time step (`TIME=`): every store band at that step, as a store without time;
//! - several variables and no `BAND=`: no bands, a subdataset per variable.
//!
//! A store without time is one moment at tick 0, shown as it always was.

use std::path::Path;

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::options::{connection_string, TimeSelection};
use crate::store::Snapshot;
use crate::time::{AxisKind, DateTime, TimeAxis, TimeSpec, MAX_TICK};

/// Most time steps shown as bands unless `LAST` or `MAX_BANDS` asks otherwise: more makes
/// every GDAL client slow (each band is an object with its metadata) for little use.
pub const MAX_TIME_BANDS: usize = 10_000;

/// Where a GDAL band's pixels come from: store band `band` at tick `tick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub tick: u32,
    pub band: usize,
}

/// A GDAL band as a time view shows it: its source, and what it says beyond the store
/// band's own settings.
#[derive(Debug, Clone)]
pub struct ShownBand {
    pub source: Source,
    /// Replaces the store band's description (a time step's label).
    pub description: Option<String>,
    /// Added to the store band's metadata.
    pub metadata: Vec<String>,
}

/// What a dataset shows of a store.
#[derive(Debug, Clone)]
pub struct Shown {
    pub bands: Vec<ShownBand>,
    /// How many consecutive GDAL bands one read of the store fills: all of them when they
    /// are the store bands of one tick (one chunk holds them all), 1 when each is a tick.
    pub bands_per_read: usize,
    /// True when each band has its own validity (each is a time step), so that the bands
    /// without nodata cannot share one mask.
    pub masks_per_band: bool,
    /// True when some band shown is a hole of the axis (no data at all).
    pub shows_holes: bool,
    /// Added to the store's dataset metadata.
    pub metadata: Vec<String>,
    /// `SUBDATASET_<n>_NAME/DESC` items.
    pub subdatasets: Vec<String>,
    /// True for a time store: the time items of the store's own metadata (copied from the
    /// slices, e.g. a netCDF's `NETCDF_DIM_time_VALUES` of its own steps) are left out,
    /// since the view says what time each band is (see [`is_time_item`]).
    pub replaces_time_items: bool,
}

/// Whether a metadata item is one of those that describe a time axis in the netCDF
/// convention (`NETCDF_DIM_*`, `NETCDF_VARNAME`, `time#*`), which a time view sets itself.
pub fn is_time_item(key: &str) -> bool {
    key.starts_with("NETCDF_DIM_") || key == "NETCDF_VARNAME" || key.starts_with("time#")
}

/// What a dataset opened with `sel` shows of `snap`, whose store is at `root`.
pub fn shown(root: &Path, snap: &Snapshot, sel: &TimeSelection) -> Result<Shown> {
    let m = snap.manifest();
    let Some(spec) = &m.time else {
        if !sel.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{}: BAND, TIME, TIME_RANGE, LAST and MAX_BANDS choose time steps, and this \
                 store has no time axis; open it without them",
                root.display()
            )));
        }
        return Ok(moment(0, &all_bands(m), Vec::new()));
    };
    let axis = spec.axis()?;
    let variable = match &sel.band {
        Some(v) => Some(variable_of(m, v)?),
        None => None,
    };
    if let Some(at) = &sel.at {
        let tick = step_at(snap, spec, &axis, at)?;
        let bands = variable.map_or_else(|| all_bands(m), |v| vec![v]);
        let mut shown = moment(tick, &bands, vec![format!("TIME={}", axis.label(tick)?)]);
        shown.shows_holes = snap.step_entry(tick)?.is_none();
        shown.replaces_time_items = true;
        return Ok(shown);
    }
    let ticks = selected_ticks(snap, spec, &axis, sel)?;
    match variable {
        Some(v) => series(snap, spec, &axis, v, ticks),
        None if m.bands.len() == 1 => series(snap, spec, &axis, 0, ticks),
        None => variables(root, m, &axis, &ticks, sel),
    }
}

fn all_bands(m: &Manifest) -> Vec<usize> {
    (0..m.bands.len()).collect()
}

/// Store bands `bands` at tick `tick`, as a store without time shows them.
fn moment(tick: u32, bands: &[usize], metadata: Vec<String>) -> Shown {
    Shown {
        bands: bands
            .iter()
            .map(|&band| ShownBand {
                source: Source { tick, band },
                description: None,
                metadata: Vec::new(),
            })
            .collect(),
        bands_per_read: bands.len().max(1),
        masks_per_band: false,
        shows_holes: false,
        metadata,
        subdatasets: Vec::new(),
        replaces_time_items: false,
    }
}

/// The name of store band `band` as a variable: its description, else the variable name
/// its source gave it (a netCDF's, kept in the band's metadata), else `band<N>`.
pub fn variable_name(m: &Manifest, band: usize) -> String {
    let b = &m.bands[band];
    let from_source = b.metadata.get("NETCDF_VARNAME").map(|n| n.trim());
    match (b.description.trim(), from_source) {
        ("", Some(n)) if !n.is_empty() => n.to_string(),
        ("", _) => format!("band{}", band + 1),
        (d, _) => d.to_string(),
    }
}

/// The store band `BAND=<value>` names: a number from 1, or a variable's name.
fn variable_of(m: &Manifest, value: &str) -> Result<usize> {
    let n = m.bands.len();
    if let Ok(i) = value.trim().parse::<usize>() {
        if (1..=n).contains(&i) {
            return Ok(i - 1);
        }
    }
    if let Some(b) = (0..n).find(|&b| variable_name(m, b) == value) {
        return Ok(b);
    }
    let names: Vec<String> = (0..n).map(|b| variable_name(m, b)).collect();
    Err(Error::option(
        "BAND",
        value,
        format!(
            "a band number from 1 to {n}, or one of the store's variables: {}",
            names.join(", ")
        ),
    ))
}

/// How the axis reads in messages: its kind, steps, first and last labels.
fn describe_axis(spec: &TimeSpec, axis: &TimeAxis) -> String {
    let span = match (spec.first, spec.last) {
        (Some(f), Some(l)) => format!(
            " from {} to {}",
            axis.label(f).unwrap_or_default(),
            axis.label(l).unwrap_or_default()
        ),
        _ => String::new(),
    };
    format!(
        "the store's {} time axis holds {} step(s){span} ({} calendar)",
        spec.kind.name(),
        spec.steps,
        axis.calendar()
    )
}

/// The tick of `TIME=<at>`: an instant of a step the store holds (or a hole of a regular
/// axis, which reads as nodata).
fn step_at(snap: &Snapshot, spec: &TimeSpec, axis: &TimeAxis, at: &str) -> Result<u32> {
    let bad = |why: String| Error::option("TIME", at, why);
    let instant = DateTime::parse(at, axis.calendar())
        .map_err(|e| bad(format!("an ISO 8601 instant ({e})")))?;
    let tick = axis
        .tick(&instant)
        .map_err(|e| bad(format!("{e}; {}", describe_axis(spec, axis))))?;
    let inside = matches!((spec.first, spec.last), (Some(f), Some(l)) if (f..=l).contains(&tick));
    let held = match spec.kind {
        AxisKind::Regular => inside,
        AxisKind::Irregular => inside && snap.step_entry(tick)?.is_some(),
    };
    if !held {
        return Err(bad(format!(
            "an instant the store holds; {}",
            describe_axis(spec, axis)
        )));
    }
    Ok(tick)
}

/// The ticks `sel` shows, in time order: every tick from the first to the last step of a
/// regular axis (holes included, which read as nodata), the steps held of an irregular
/// one; within `TIME_RANGE`, the last `LAST` of them, at most `MAX_BANDS` (default
/// [`MAX_TIME_BANDS`]) unless `LAST` says so.
fn selected_ticks(
    snap: &Snapshot,
    spec: &TimeSpec,
    axis: &TimeAxis,
    sel: &TimeSelection,
) -> Result<Vec<u32>> {
    let (Some(first), Some(last)) = (spec.first, spec.last) else {
        return Ok(Vec::new());
    };
    let empty = || {
        let (a, b) = sel.range.clone().unwrap_or_default();
        Error::option(
            "TIME_RANGE",
            format!("{a}/{b}"),
            format!("a range that holds a step; {}", describe_axis(spec, axis)),
        )
    };
    let (lo, hi) = match &sel.range {
        Some((a, b)) => {
            let bound = |text: &str| {
                DateTime::parse(text, axis.calendar()).map_err(|e| {
                    Error::option(
                        "TIME_RANGE",
                        format!("{a}/{b}"),
                        format!("START/END, two ISO 8601 instants ({e})"),
                    )
                })
            };
            let (start, end) = (bound(a)?, bound(b)?);
            let lo = first.max(first_tick_from(axis, &start));
            match last_tick_to(axis, &end).map(|t| t.min(last)) {
                Some(hi) if lo <= hi => (lo, hi),
                _ => return Err(empty()),
            }
        }
        None => (first, last),
    };
    let cap = sel.max_bands.unwrap_or(MAX_TIME_BANDS);
    let limit = sel.last.unwrap_or(cap);
    let (ticks, more) = last_ticks(snap, spec.kind, lo, hi, limit)?;
    if ticks.is_empty() {
        return Err(empty());
    }
    if more && sel.last.is_none() {
        super::super::cpl::report_warning(&format!(
            "{}: {} time steps are selected, more than {cap} bands (MAX_BANDS); only the last \
             {cap} are shown. Choose steps with the open options TIME_RANGE=START/END or LAST=N \
             (or TIME=<instant> for one step)",
            snap.location().display(),
            match spec.kind {
                AxisKind::Regular => (u64::from(hi - lo) + 1).to_string(),
                AxisKind::Irregular => "more".to_string(),
            }
        ));
    }
    Ok(ticks)
}

/// The last `limit` ticks from `lo` to `hi`, and whether there were more.
fn last_ticks(
    snap: &Snapshot,
    kind: AxisKind,
    lo: u32,
    hi: u32,
    limit: usize,
) -> Result<(Vec<u32>, bool)> {
    if kind == AxisKind::Regular {
        let count = u64::from(hi - lo) + 1;
        let from = match count > limit as u64 {
            true => hi - (limit as u32 - 1),
            false => lo,
        };
        return Ok(((from..=hi).collect(), count > limit as u64));
    }
    let ticks = snap.steps(lo, hi, limit.saturating_add(1))?;
    if ticks.len() <= limit {
        return Ok((ticks, false));
    }
    // More steps than wanted: the latest tick from which `limit` steps remain, by bisection
    // (each probe walks at most `limit` index entries, never the whole axis).
    let (mut a, mut b) = (lo, hi);
    while a < b {
        let mid = a + (b - a).div_ceil(2);
        if snap.steps(mid, hi, limit)?.len() >= limit {
            a = mid;
        } else {
            b = mid - 1;
        }
    }
    Ok((snap.steps(a, hi, limit)?, true))
}

/// The first tick at or after `at`.
fn first_tick_from(axis: &TimeAxis, at: &DateTime) -> u32 {
    // Instants grow with ticks on every calendar and step: a bisection. A tick whose
    // instant cannot be counted lies beyond any instant that parses.
    let (mut lo, mut hi) = (0u32, MAX_TICK);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match axis.instant(mid) {
            Ok(t) if t < *at => lo = mid + 1,
            _ => hi = mid,
        }
    }
    lo
}

/// The last tick at or before `at`; `None` when `at` comes before tick 0.
fn last_tick_to(axis: &TimeAxis, at: &DateTime) -> Option<u32> {
    let t = first_tick_from(axis, at);
    match axis.instant(t) {
        Ok(i) if i == *at => Some(t),
        _ => t.checked_sub(1),
    }
}

/// Store band `variable` at each of `ticks`, a band per tick.
fn series(
    snap: &Snapshot,
    spec: &TimeSpec,
    axis: &TimeAxis,
    variable: usize,
    ticks: Vec<u32>,
) -> Result<Shown> {
    let name = variable_name(snap.manifest(), variable);
    let values = ticks
        .iter()
        .map(|&t| axis.value(t))
        .collect::<Result<Vec<f64>>>()?;
    let bands = ticks
        .iter()
        .zip(&values)
        .map(|(&tick, value)| {
            Ok(ShownBand {
                source: Source {
                    tick,
                    band: variable,
                },
                description: Some(axis.label(tick)?),
                metadata: vec![
                    format!("NETCDF_DIM_time={value}"),
                    format!("NETCDF_VARNAME={name}"),
                ],
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let shows_holes = match (spec.kind, ticks.first(), ticks.last()) {
        (AxisKind::Regular, Some(&a), Some(&b)) if spec.holes() > 0 => {
            snap.steps(a, b, ticks.len())?.len() < ticks.len()
        }
        _ => false,
    };
    let mut metadata = Vec::new();
    if !ticks.is_empty() {
        let list: Vec<String> = values.iter().map(f64::to_string).collect();
        metadata = vec![
            "NETCDF_DIM_EXTRA={time}".to_string(),
            // Type 6 (double): GDAL 3.6's netCDF writer mishandles 64-bit integers.
            format!("NETCDF_DIM_time_DEF={{{},6}}", ticks.len()),
            format!("NETCDF_DIM_time_VALUES={{{}}}", list.join(",")),
            format!("time#units={}", axis.units().format()),
            format!("time#calendar={}", axis.calendar().name()),
            "time#standard_name=time".to_string(),
            "time#axis=T".to_string(),
        ];
    }
    Ok(Shown {
        bands,
        bands_per_read: 1,
        masks_per_band: true,
        shows_holes,
        metadata,
        subdatasets: Vec::new(),
        replaces_time_items: true,
    })
}

/// No bands: a subdataset per variable, each carrying the time selection of this open.
fn variables(
    root: &Path,
    m: &Manifest,
    axis: &TimeAxis,
    ticks: &[u32],
    sel: &TimeSelection,
) -> Result<Shown> {
    let span = match (ticks.first(), ticks.last()) {
        (Some(&a), Some(&b)) => format!(
            "{} time steps from {} to {}",
            ticks.len(),
            axis.label(a)?,
            axis.label(b)?
        ),
        _ => "no time steps".to_string(),
    };
    let mut subdatasets = Vec::new();
    for band in 0..m.bands.len() {
        let mut pairs = vec![("BAND", (band + 1).to_string())];
        if let Some((a, b)) = &sel.range {
            pairs.push(("TIME_RANGE", format!("{a}/{b}")));
        }
        if let Some(n) = sel.last {
            pairs.push(("LAST", n.to_string()));
        }
        if let Some(n) = sel.max_bands {
            pairs.push(("MAX_BANDS", n.to_string()));
        }
        let n = band + 1;
        subdatasets.push(format!(
            "SUBDATASET_{n}_NAME={}",
            connection_string(&root.display().to_string(), &pairs)
        ));
        subdatasets.push(format!(
            "SUBDATASET_{n}_DESC={}: {span} ({})",
            variable_name(m, band),
            m.data_type.name()
        ));
    }
    Ok(Shown {
        bands: Vec::new(),
        bands_per_read: 1,
        masks_per_band: false,
        shows_holes: false,
        metadata: Vec::new(),
        subdatasets,
        replaces_time_items: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Calendar, Step};

    fn monthly_360_day() -> TimeAxis {
        let cal = Calendar::parse("360_day").unwrap();
        let origin = DateTime::parse("2000-01-01T00:00:00Z", cal).unwrap();
        TimeSpec::new(
            AxisKind::Regular,
            cal,
            origin,
            Step::parse("P1M").unwrap(),
            None,
        )
        .unwrap()
        .axis()
        .unwrap()
    }

    #[test]
    fn range_ends_between_steps_round_inwards() {
        let axis = monthly_360_day();
        let at = |s: &str| DateTime::parse(s, axis.calendar()).unwrap();
        // 30 February exists in this calendar: the second month's last day.
        let mid = at("2000-02-30T12:00:00Z");
        assert_eq!(first_tick_from(&axis, &mid), 2);
        assert_eq!(last_tick_to(&axis, &mid), Some(1));
        let exact = at("2000-03-01T00:00:00Z");
        assert_eq!(first_tick_from(&axis, &exact), 2);
        assert_eq!(last_tick_to(&axis, &exact), Some(2));
        let before = at("1999-12-30T00:00:00Z");
        assert_eq!(first_tick_from(&axis, &before), 0);
        assert_eq!(last_tick_to(&axis, &before), None);
        let far = at("8999-12-30T12:00:00Z");
        assert_eq!(last_tick_to(&axis, &far), Some(7000 * 12 - 1));
    }
}
