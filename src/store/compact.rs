//! Compaction: the time blocks of closed blocks of ticks, written in one commit.
//!
//! A block of D ticks `[k·D, (k+1)·D)` is *closed* when the axis's last step is at or past
//! its last tick: appends have moved on, and its steps change only by a replace, an insert
//! or a delete (which drop its time blocks again, [`super::time_blocks::stale`]). For each
//! closed block with at least two steps and no time blocks yet, every level-0 tile location
//! holding data in any of its steps gets a time block, made from the steps' tiles. Tile
//! locations are done in parallel, each a strip at a time
//! ([`super::time_blocks::gather_frames`] states the memory bound).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rayon::prelude::*;

use crate::chunk::time_block::{assemble, encode_band_frame, encode_mask_frame};
use crate::error::{Error, Result};
use crate::grid::TileLoc;
use crate::index::{TileKey, Tree};
use crate::time::{DEFAULT_SERIES_BLOCK, MAX_TICK};

use super::lock::LockWait;
use super::time_blocks::{gather_frames, has_blocks, new_shape};
use super::{Snapshot, Transaction};

/// What a compaction wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Blocks of ticks compacted.
    pub blocks: usize,
    /// Time-block chunks written (one per block and tile location).
    pub chunks: usize,
    /// The snapshot that holds them (`None` when there was nothing to compact).
    pub snapshot: Option<u64>,
}

/// Which closed blocks a compaction looks at.
#[derive(Debug, Clone, Copy)]
pub enum Closed {
    /// Every closed block.
    All,
    /// The closed blocks that end at or after this tick: after an append, the first tick
    /// it wrote.
    From(u32),
}

/// Compacts the store at `root` in one commit (`gridstore compact`). A store without
/// `time.series_block` (made before time blocks) gets the default in that commit.
pub fn compact(root: &Path, which: Closed, wait: LockWait) -> Result<Compacted> {
    let mut txn = Transaction::begin(root, "gridstore compact", wait)?;
    let report = compact_in(&mut txn, which)?;
    if report.chunks == 0 {
        txn.abort();
        return Ok(report);
    }
    let m = txn.commit()?;
    Ok(Compacted {
        snapshot: Some(m.snapshot.id),
        ..report
    })
}

/// Writes the time blocks of the closed blocks `which` names into `txn`, which must hold
/// no other change (it reads the steps from its base).
pub fn compact_in(txn: &mut Transaction, which: Closed) -> Result<Compacted> {
    let Some(spec) = txn.manifest.time.clone() else {
        return Err(Error::InvalidInput(format!(
            "{}: this store has no time axis; only the steps of a time axis are compacted",
            txn.location().display()
        )));
    };
    assert_eq!(
        txn.changed_tiles(),
        0,
        "a compaction is a commit of its own"
    );
    let Some(base) = txn.base().cloned() else {
        return Ok(Compacted::default());
    };
    let d = spec.series_block.unwrap_or(DEFAULT_SERIES_BLOCK);
    let blocks = closed_blocks(&base, d, spec.last, which)?;
    let mut report = Compacted::default();
    for (first, present) in blocks {
        if has_blocks(&base, first)? {
            continue;
        }
        let locs = tile_locations(&base, first, d)?;
        let keys: Vec<TileKey> = locs
            .iter()
            .map(|&(col, row)| TileKey::time_block(first, col, row))
            .collect();
        locs.par_iter()
            .zip(&keys)
            .try_for_each(|(&(col, row), key)| {
                write_block(
                    txn,
                    &base,
                    d,
                    first,
                    TileLoc::new(0, col, row),
                    &present,
                    *key,
                )
            })?;
        report.blocks += 1;
        report.chunks += keys.len();
    }
    if report.chunks > 0 {
        if let Some(t) = txn.manifest.time.as_mut() {
            t.series_block = Some(d);
        }
    }
    Ok(report)
}

/// The closed blocks of `d` ticks `which` names that hold at least two steps, by first
/// tick, with which of their ticks are steps. Found from the steps themselves, so an axis
/// whose ticks start far from 0 costs its steps, not its ticks.
fn closed_blocks(
    snap: &Snapshot,
    d: u32,
    last: Option<u32>,
    which: Closed,
) -> Result<BTreeMap<u32, Vec<bool>>> {
    let Some(last) = last else {
        return Ok(BTreeMap::new());
    };
    // The last tick of the last closed block.
    let closed_blocks = (u64::from(last) + 1) / u64::from(d);
    if closed_blocks == 0 {
        return Ok(BTreeMap::new());
    }
    let end = (closed_blocks * u64::from(d) - 1) as u32;
    let from = match which {
        Closed::All => 0,
        Closed::From(t) => {
            if u64::from(t / d) >= closed_blocks {
                return Ok(BTreeMap::new());
            }
            t - t % d
        }
    };
    let mut out: BTreeMap<u32, Vec<bool>> = BTreeMap::new();
    for t in snap.steps(from, end, usize::MAX)? {
        let first = t - t % d;
        out.entry(first).or_insert_with(|| vec![false; d as usize])[(t - first) as usize] = true;
    }
    out.retain(|_, present| present.iter().filter(|&&p| p).count() >= 2);
    Ok(out)
}

/// The level-0 tile locations (column, row) holding data in any step of the block of `d`
/// ticks from `first`.
fn tile_locations(snap: &Snapshot, first: u32, d: u32) -> Result<Vec<(i32, i32)>> {
    let end = (u64::from(first) + u64::from(d)).min(u64::from(MAX_TICK) + 1) as u32;
    let (lo, hi) = (TileKey::first_of_tick(first), TileKey::first_of_tick(end));
    let mut locs = BTreeSet::new();
    snap.index()
        .range(Tree::of(snap.manifest()), &lo, &hi, &mut |k, _| {
            if k.level == 0 && k.pyramid == 0 {
                locs.insert((k.col, k.row));
            }
            Ok(true)
        })?;
    Ok(locs.into_iter().collect())
}

/// Makes and stores the time block `key` of tile `loc` over the block from `first`.
fn write_block(
    txn: &Transaction,
    base: &Snapshot,
    d: u32,
    first: u32,
    loc: TileLoc,
    present: &[bool],
    key: TileKey,
) -> Result<()> {
    let m = base.manifest();
    let shape = new_shape(m, d, first);
    let enc = m.encoding();
    let mut frames = Vec::with_capacity(shape.blocks() * shape.frames_per_block());
    gather_frames(base, &shape, loc, present, &mut |_, raws| {
        for (i, raw) in raws.iter().enumerate() {
            frames.push(match i < shape.bands {
                true => encode_band_frame(&enc, shape.dtype, shape.ticks, raw)?,
                false => encode_mask_frame(&enc, raw)?,
            });
        }
        Ok(())
    })?;
    let object = assemble(&shape, &enc, present, frames)?;
    txn.put_time_block(key, &object)
}
