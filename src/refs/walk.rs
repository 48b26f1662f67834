//! Walking a snapshot's tiles: each chunk's head read and checked, and every frame of a
//! band block turned into the reference of one Zarr chunk.

use rayon::prelude::*;
use serde_json::{json, Value};

use super::zarr::{codecs, Codecs};
use super::Plan;
use crate::chunk::Frame;
use crate::error::{Error, Result};
use crate::index::{Entry, TileKey, Tree, STEP_RECORDS};
use crate::store::{ChunkRef, Snapshot};

/// Chunks whose heads are read at once, in parallel (a head is one ranged read: on
/// object storage, one request each).
const BATCH: usize = 256;

/// Where a Zarr chunk lies: the position along the time dimension (0 without one), the
/// level, and the chunk's row and column in the level's arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub step: u64,
    pub level: u8,
    pub row: u64,
    pub col: u64,
}

/// One Zarr chunk: where it lies, its key in the references and where its bytes are.
pub(super) struct ChunkEntry {
    pub slot: Slot,
    /// A chunk of the `mask` array (whose chunks are tiles), not of a band's.
    pub mask: bool,
    pub key: String,
    pub value: Value,
}

/// The key of the chunk of array `name` at `slot`.
pub(super) fn chunk_key(plan: &Plan, slot: Slot, name: &str) -> String {
    let group = &plan.levels[usize::from(slot.level)].group;
    let Slot { step, row, col, .. } = slot;
    match plan.time {
        Some(_) => format!("{group}/{name}/{step}.{row}.{col}"),
        None => format!("{group}/{name}/{row}.{col}"),
    }
}

/// Calls `emit` with the reference of every band block of every tile of the snapshot
/// that the arrays of `plan` show, and returns how many there were. Tiles whose encoding
/// numcodecs cannot decode are refused, naming the chunk and the reason.
pub(super) fn for_each_chunk(
    snap: &Snapshot,
    plan: &Plan,
    emit: &mut dyn FnMut(ChunkEntry) -> Result<()>,
) -> Result<u64> {
    let lo = TileKey::first_of_tick(0);
    let hi = TileKey::first_of_tick(STEP_RECORDS);
    let mut batch: Vec<(TileKey, Entry, Option<u64>)> = Vec::with_capacity(BATCH);
    let mut count = 0u64;
    let mut flush = |batch: &mut Vec<(TileKey, Entry, Option<u64>)>| -> Result<()> {
        let refs: Vec<Vec<ChunkEntry>> = batch
            .par_iter()
            .map(|(key, entry, step)| tile_refs(snap, plan, key, entry, *step))
            .collect::<Result<_>>()?;
        batch.clear();
        for r in refs.into_iter().flatten() {
            count += 1;
            emit(r)?;
        }
        Ok(())
    };
    snap.index()
        .range(Tree::of(snap.manifest()), &lo, &hi, &mut |key, entry| {
            // Time blocks (another pyramid) are copies of level-0 data; step records sort
            // after every tile.
            if key.pyramid != 0 || usize::from(key.level) >= plan.levels.len() {
                return Ok(true);
            }
            let step = match &plan.time {
                Some(steps) => match steps.index_of(key.time) {
                    Some(i) => Some(i),
                    None => return Ok(true),
                },
                None if key.time == 0 => None,
                None => return Ok(true),
            };
            batch.push((key, entry, step));
            if batch.len() >= BATCH {
                flush(&mut batch)?;
            }
            Ok(true)
        })?;
    flush(&mut batch)?;
    Ok(count)
}

/// The references of one tile's band blocks, after checking that its chunk can be read
/// through them.
fn tile_refs(
    snap: &Snapshot,
    plan: &Plan,
    key: &TileKey,
    entry: &Entry,
    step: Option<u64>,
) -> Result<Vec<ChunkEntry>> {
    let c = snap.head_of(key, entry)?;
    check_expressible(&c, plan)?;
    check_base_holds_frames(snap, &c)?;
    let head = &c.head;
    let level = &plan.levels[usize::from(key.level)];
    let size = head.size() as i64;
    let (rows, cols) = plan.block;
    let naming = snap.manifest().chunk_naming();
    let base_object = head.base().map(|b| key.object_key(b, naming));
    let mut out = Vec::new();
    for k in 0..head.blocks() {
        let area = head.block_area(k);
        let top = i64::from(key.row) * size + area.rows.start as i64;
        let left = i64::from(key.col) * size + area.cols.start as i64;
        if top >= level.y1 || left >= level.x1 || top < level.ay0 || left < level.ax0 {
            continue;
        }
        let slot = Slot {
            step: step.unwrap_or(0),
            level: key.level,
            row: ((top - level.ay0) / rows as i64) as u64,
            col: ((left - level.ax0) / cols as i64) as u64,
        };
        for (band, name) in plan.names.iter().enumerate() {
            let frame = head.frames()[band * head.blocks() + k];
            out.push(ChunkEntry {
                slot,
                mask: false,
                key: chunk_key(plan, slot, name),
                value: frame_ref(&c, frame, base_object.as_deref()),
            });
        }
    }
    if plan.mask {
        out.extend(mask_ref(plan, key, &c, step, base_object.as_deref()));
    }
    Ok(out)
}

/// The reference of a tile's mask as a chunk of the `mask` array: its mask frame, or, for
/// a tile without one (every pixel holds data), the inline chunk of all ones.
fn mask_ref(
    plan: &Plan,
    key: &TileKey,
    c: &ChunkRef,
    step: Option<u64>,
    base_object: Option<&str>,
) -> Option<ChunkEntry> {
    let level = &plan.levels[usize::from(key.level)];
    let t = plan.tile as i64;
    let (top, left) = (i64::from(key.row) * t, i64::from(key.col) * t);
    if top >= level.y1 || left >= level.x1 || top < level.ay0 || left < level.ax0 {
        return None;
    }
    let slot = Slot {
        step: step.unwrap_or(0),
        level: key.level,
        row: ((top - level.ay0) / t) as u64,
        col: ((left - level.ax0) / t) as u64,
    };
    let head = &c.head;
    let value = match head.has_mask() {
        true => {
            let frame = head.frames()[plan.names.len() * head.blocks()];
            frame_ref(c, frame, base_object)
        }
        false => Value::String(plan.all_valid_mask.clone()),
    };
    Some(ChunkEntry {
        slot,
        mask: true,
        key: chunk_key(plan, slot, "mask"),
        value,
    })
}

/// The reference of one frame of chunk `c`: where it lies in the chunk's object (after
/// the chunk's own start, in a pack) or in its base's.
fn frame_ref(c: &ChunkRef, frame: Frame, base_object: Option<&str>) -> Value {
    let (object, offset) = match (frame.in_base, base_object) {
        (true, Some(base)) => (base, frame.offset as u64),
        _ => (c.object.as_str(), c.offset + frame.offset as u64),
    };
    json!([format!("{{{{root}}}}/{object}"), offset, frame.len])
}

/// Refuses a chunk numcodecs cannot decode as the arrays say, with the reason and what to
/// do.
fn check_expressible(c: &ChunkRef, plan: &Plan) -> Result<()> {
    let head = &c.head;
    let refuse = |reason: String| {
        Error::NotSupported(format!(
            "{}: the chunk of tile {} cannot be given to Zarr readers: {reason}. Copy the \
             store into a new one with the default encoding (gdal_translate -of GRIDSTORE \
             -co COMPRESS=ZSTD OLD.gridstore NEW.gridstore) and make references of that",
            c.path.display(),
            c.key.describe()
        ))
    };
    if !head.has_frame_table() {
        return Err(refuse(
            "it is one compressed stream of the whole tile (chunk format version 1), \
             not blocks"
                .into(),
        ));
    }
    if head.block_shape() != plan.block {
        let (r, c) = head.block_shape();
        return Err(refuse(format!(
            "it is cut in blocks of {r} x {c} pixels, the store's other chunks in {} x {}, and \
             a Zarr array has one chunk shape",
            plan.block.0, plan.block.1
        )));
    }
    let m = plan.encoding;
    let found: Codecs = codecs(
        plan.dtype,
        head.compression(),
        m.level,
        head.predictor(),
        head.predicts_whole_blocks(),
    )
    .map_err(refuse)?;
    if Ok(&found) != plan.codecs.as_ref() {
        return Err(refuse(format!(
            "it is encoded with {} and the {:?} predictor, the store with {} and the {:?} \
             predictor",
            head.compression().option_name(),
            head.predictor(),
            m.compression.option_name(),
            m.predictor
        )));
    }
    Ok(())
}

/// Checks that the base chunk a chunk keeps frames in reaches as far as those frames:
/// the offsets come from the chunk's head, and a reference must not point past an object.
fn check_base_holds_frames(snap: &Snapshot, c: &ChunkRef) -> Result<()> {
    let Some(span) = c.head.base_span() else {
        return Ok(());
    };
    if span.is_empty() {
        return Ok(());
    }
    let last = snap.read_chunk_range(c, crate::chunk::Location::Base, span.end - 1, 1)?;
    debug_assert_eq!(last.len(), 1);
    Ok(())
}
