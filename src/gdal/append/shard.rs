//! One part of an append split among processes (`--shard I/N`).
//!
//! Every part reads the times of all the slices (not their pixels), checks the whole
//! append as one append would (no time twice; in time order unless `insert`; no step of
//! the store among or after its times unless `insert`), and takes the slices of its part:
//! the slices in time order cut into contiguous runs of about equal numbers of steps, each
//! slice whole in one part. Steps of different parts go to different ticks, so parts are
//! written independently, in any order; only the store's time blocks span parts, and each
//! part compacts from the first tick of the whole append, so that the part committed last
//! compacts every block the append closed, whatever the order.

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Error, Result};
use crate::shard::Shard;
use crate::store::{compact, Closed, Snapshot};
use crate::time::{DateTime, TimeAxis, MAX_TICK};

use super::super::slice_time::slice_steps;
use super::slices::{open_slice, wait_for_slice};
use super::{append, no_axis, AppendOptions, AppendReport};

/// A slice's steps, as ticks of the store's axis with their instants.
struct SliceTicks {
    ticks: Vec<(u32, DateTime)>,
}

/// Appends part `shard` of `slices` to the existing store at `root`. The report's steps
/// name slices by their place in `slices`.
pub fn append_part(
    root: &Path,
    slices: &[String],
    opts: &AppendOptions,
    shard: Shard,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<AppendReport> {
    if shard.is_whole() {
        return append(root, slices, opts, progress);
    }
    if !crate::store::store_exists(root)? {
        return Err(Error::InvalidInput(format!(
            "{}: the parts of an append (--shard) write into an existing store, and this one \
             does not exist yet: append the first slice without --shard to create it, then \
             start the parts",
            root.display()
        )));
    }
    let current = Snapshot::open(root, None)?;
    let spec = current
        .manifest()
        .time
        .clone()
        .ok_or_else(|| no_axis(root))?;
    let axis = spec.axis()?;
    if let Some(limit) = opts.wait_for_slices {
        slices.iter().try_for_each(|s| wait_for_slice(s, limit))?;
    }
    let all = slices
        .iter()
        .map(|name| slice_ticks(name, opts, &axis))
        .collect::<Result<Vec<_>>>()?;
    check_whole_append(slices, &all, opts, &current)?;
    let first = all.iter().flat_map(|s| &s.ticks).map(|t| t.0).min();
    drop(current);
    let mine = slices_of_part(&all, shard);
    let names: Vec<String> = mine.iter().map(|&i| slices[i].clone()).collect();
    if names.is_empty() {
        return Ok(empty_report(spec));
    }
    // The whole append was checked for order above; this part's steps may come before
    // those another part has written already.
    let part_opts = AppendOptions {
        insert: true,
        compact: false,
        ..opts.clone()
    };
    let mut report = append(root, &names, &part_opts, progress)?;
    for s in &mut report.steps {
        s.slice = mine[s.slice];
    }
    if let (true, false, Some(first)) = (opts.compact, report.committed.is_empty(), first) {
        if !opts.dry_run {
            report.compacted = compact(root, Closed::From(first), opts.ingest.wait)?;
            if let Some(t) = Snapshot::open(root, None)?.manifest().time.clone() {
                report.axis = t;
            }
        }
    }
    Ok(report)
}

/// The steps of slice `name` as ticks of `axis` (the slice is opened, its pixels not read).
fn slice_ticks(name: &str, opts: &AppendOptions, axis: &TimeAxis) -> Result<SliceTicks> {
    let opened = open_slice(name)?;
    // SAFETY: the dataset is open for the call and used on this thread only.
    let steps = unsafe { slice_steps(opened.0, name, &opts.time, axis.calendar())? };
    let ticks = steps
        .iter()
        .map(|s| {
            axis.tick(&s.at)
                .map(|t| (t, s.at))
                .map_err(|e| Error::InvalidInput(format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SliceTicks { ticks })
}

/// Checks the whole append as one append checks its slices: no time twice, and unless
/// `insert`, times in the order given and after every step the store holds that is not
/// one of them (steps of these slices the store holds are those of parts written already,
/// or of an earlier run of the same append).
fn check_whole_append(
    names: &[String],
    all: &[SliceTicks],
    opts: &AppendOptions,
    current: &Snapshot,
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut previous: Option<u32> = None;
    for (name, slice) in names.iter().zip(all) {
        for &(tick, at) in &slice.ticks {
            if !seen.insert(tick) {
                return Err(Error::InvalidInput(format!(
                    "{name}: the time {at} is given twice among the slices"
                )));
            }
            if !opts.insert && previous.is_some_and(|p| tick <= p) {
                return Err(Error::InvalidInput(format!(
                    "{name}: the time {at} comes before a time of an earlier slice; the \
                     parts of an append (--shard) take the slices in time order: list them \
                     in time order, or give --insert"
                )));
            }
            previous = Some(tick);
        }
    }
    let Some(&first) = seen.iter().min() else {
        return Ok(());
    };
    if opts.insert {
        return Ok(());
    }
    let held = current.steps(first, MAX_TICK, seen.len() + 1)?;
    if let Some(&other) = held.iter().find(|t| !seen.contains(t)) {
        let at = current.manifest().time.as_ref().map(|s| s.axis());
        let when = match at {
            Some(Ok(axis)) => axis.label(other)?,
            _ => format!("tick {other}"),
        };
        return Err(Error::InvalidInput(format!(
            "{}: the store holds a step at {when}, after the first time of these slices, \
             that is not one of them; an append adds steps in time order (give --insert to \
             put them between existing steps)",
            current.location().display()
        )));
    }
    Ok(())
}

/// The slices (by place) of part `shard`: all slices by their first tick, cut into
/// contiguous runs of about equal numbers of steps.
fn slices_of_part(all: &[SliceTicks], shard: Shard) -> Vec<usize> {
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by_key(|&i| all[i].ticks.iter().map(|t| t.0).min().unwrap_or(u32::MAX));
    let range = shard.range_of_weights(order.len(), |i| all[order[i]].ticks.len() as u64);
    let mut mine = order[range].to_vec();
    mine.sort_unstable();
    mine
}

/// What a part with no slices reports: nothing written.
fn empty_report(axis: crate::time::TimeSpec) -> AppendReport {
    AppendReport {
        steps: Vec::new(),
        axis,
        creates: false,
        committed: Vec::new(),
        compacted: Default::default(),
        recovered: None,
    }
}
