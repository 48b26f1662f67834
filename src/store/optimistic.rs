//! Commits without a lock, for stores on object storage (docs/FORMAT.md §7).
//!
//! A writer reads the manifest with its version, claims a snapshot id ([`super::claims`]),
//! writes its chunks, index nodes and snapshot manifest under that id, and commits by
//! replacing `gridstore.json` only if it is still at the version read (`If-Match`). When
//! another commit came first, the writer starts over from the new state (a rebase): its
//! chunks stay as written, and only what both commits changed is looked at again.
//!
//! - A level-0 tile, a step record or a time block that both changed is a conflict: the
//!   write fails with [`Error::Conflict`], and running it again merges it with the new
//!   state.
//! - A level tile above that both changed is made again from its four children
//!   ([`crate::pyramid::rebuild_from_children`]): shards of one ingest share the level
//!   tiles along their borders, and all share the top one.
//! - The manifest's settings are merged three ways (a setting changed by one side only
//!   takes that side's value), and the extents are joined. The sources a write recorded
//!   are linked after the other's ([`super::sources`]).
//!
//! A failed conditional write does not say whether it failed because of the condition or
//! because the response was lost after it succeeded. The writer therefore reads the
//! manifest back: its own snapshot there (or in the history behind the current one) means
//! the commit is in.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::grid::{Layout, PixelRect};
use crate::index::{Entry, TileKey, TIME_BLOCKS};
use crate::manifest::{snapshot_key, Manifest, MANIFEST_KEY, MAX_MANIFEST_LEN};
use crate::storage::{Storage, Version};

use super::snapshot::Snapshot;

/// How many times a write starts over from a newer state before it gives up.
pub const MAX_REBASES: u32 = 24;

/// How far back through the history a writer looks for its own commit.
const MAX_READ_BACK: usize = 256;

/// The committed manifest with its version; `None` when there is none.
pub fn read_committed(storage: &dyn Storage) -> Result<Option<(Manifest, Version)>> {
    let Some((bytes, version)) = storage.read_versioned(MANIFEST_KEY, MAX_MANIFEST_LEN)? else {
        return Ok(None);
    };
    let manifest = Manifest::parse(&bytes, &storage.location().join(MANIFEST_KEY))?;
    Ok(Some((manifest, version)))
}

/// After a conditional write of the manifest that failed: whether `ours` (the manifest
/// this writer tried to commit) is in anyway, in the current state or in the history
/// behind it; and the current state.
pub fn landed(
    storage: &dyn Storage,
    ours: &Manifest,
) -> Result<(bool, Option<(Manifest, Version)>)> {
    let current = read_committed(storage)?;
    let Some((m, _)) = &current else {
        return Ok((false, current));
    };
    let is_ours = |m: &Manifest| {
        m.snapshot.id == ours.snapshot.id
            && m.snapshot.created == ours.snapshot.created
            && m.snapshot.writer == ours.snapshot.writer
    };
    let mut at = m.clone();
    for _ in 0..MAX_READ_BACK {
        if is_ours(&at) {
            return Ok((true, current));
        }
        // Parents are older than their children: below our id, ours cannot come.
        let Some(parent) = at.snapshot.parent.filter(|p| *p >= ours.snapshot.id) else {
            break;
        };
        if parent >= at.snapshot.id {
            break;
        }
        let key = snapshot_key(parent);
        let Some(bytes) = storage.read_at_most(&key, MAX_MANIFEST_LEN)? else {
            break;
        };
        at = Manifest::parse(&bytes, &storage.location().join(key))?;
    }
    Ok((false, current))
}

/// What a write that starts over from `new` (committed after `old`, the state it began
/// from) makes again: `Ok` with the level tiles to make again from their children, in the
/// order to make them (lowest level first); a conflict when both changed the same level-0
/// tile, step record or time block.
///
/// Level tiles both changed are made again. So are all tiles, over the joined extent, of
/// the levels above the lower of the two sides' tops, when together they reach higher
/// (parts of an empty store that together outgrow the top each built): one side did not
/// build those levels, or built them without the other's data. In a store with a time
/// axis, where levels are per time step, a change of levels is a conflict instead.
pub fn level_tiles_to_rebuild(
    old: &Snapshot,
    new: &Snapshot,
    ours: &BTreeMap<TileKey, Option<Entry>>,
    our_manifest: &Manifest,
) -> Result<Vec<TileKey>> {
    let theirs = new.manifest();
    let tile_size = theirs.grid.tile_size;
    let joined = join(our_manifest.extent, theirs.extent).filter(|e| !e.is_empty());
    let joined_top = joined.map(|e| Layout::for_extent(e, tile_size).top);
    let tops = [
        new.layout().map(|l| l.top),
        our_manifest.layout().map(|l| l.top),
    ];
    let lowest_top = tops.iter().flatten().copied().min();
    let levels_change = tops.iter().any(|t| t.is_some() && *t != joined_top);
    if levels_change && (theirs.time.is_some() || theirs.pyramids.len() != 1) {
        return Err(conflict(
            new,
            "the two writes together need another number of levels than each made",
        ));
    }
    let mut rebuild = Vec::new();
    for (key, mine) in ours {
        if old.entry(key)? == new.entry(key)? {
            continue;
        }
        let level_tile = key.level > 0 && key.pyramid != TIME_BLOCKS && key.tick().is_some();
        if level_tile {
            rebuild.push(*key);
        } else if key.is_time_block() && mine.is_none() {
            // This write drops a time block because it changed a step there: whatever
            // the other wrote into that block is stale all the same.
        } else {
            return Err(conflict(
                new,
                &format!("both wrote tile {}", key.describe()),
            ));
        }
    }
    if let (true, Some(low), Some(top), Some(extent)) =
        (levels_change, lowest_top, joined_top, joined)
    {
        rebuild.retain(|k| k.level <= low);
        for level in low + 1..=top {
            let tiles = extent.coarsen(level).tiles(level, tile_size);
            rebuild.extend(tiles.iter().map(|loc| TileKey::new(0, 0, loc)));
        }
    }
    rebuild.sort_by_key(|k| (k.level, k.time, k.pyramid, k.row, k.col));
    Ok(rebuild)
}

/// The manifest of a write that started from `base`, made as `ours`, and now goes on top
/// of `theirs`: settings three-way merged, extents joined, and `theirs`' index and time
/// axis (whose counts the commit brings up to date).
pub fn merge_manifests(base: &Manifest, ours: &Manifest, theirs: &Manifest) -> Result<Manifest> {
    let settings = |m: &Manifest| {
        let mut v = serde_json::to_value(m).expect("a manifest serializes");
        let map = v.as_object_mut().expect("an object");
        // Derived from the writes, not settings: each commit brings them up to date (the
        // sources link is made again on top of the other's when this write commits).
        for derived in ["snapshot", "index", "extent", "all_valid", "sources"] {
            map.remove(derived);
        }
        if let Some(t) = map.get_mut("time").and_then(|t| t.as_object_mut()) {
            for count in ["steps", "first", "last"] {
                t.remove(count);
            }
        }
        v
    };
    let (b, o, t) = (settings(base), settings(ours), settings(theirs));
    let mut merged = serde_json::to_value(theirs).expect("a manifest serializes");
    let (bo, oo, out) = (
        b.as_object().expect("object"),
        o.as_object().expect("object"),
        merged.as_object_mut().expect("object"),
    );
    for (name, value) in oo {
        let theirs_value = t.get(name);
        if bo.get(name) == Some(value) || theirs_value == Some(value) {
            continue; // unchanged by us, or changed the same way
        }
        if bo.get(name) != theirs_value {
            return Err(Error::Conflict(format!(
                "both writes changed the store's `{name}`; run the write again: it starts \
                 from the other's result"
            )));
        }
        // Only we changed it: ours, keeping theirs' counts of the time axis.
        let mut value = value.clone();
        if let (Some(v), Some(old)) = (
            value.as_object_mut(),
            out.get(name).and_then(|x| x.as_object()),
        ) {
            for count in ["steps", "first", "last"] {
                if let Some(c) = old.get(count) {
                    v.insert(count.to_string(), c.clone());
                }
            }
        }
        out.insert(name.clone(), value);
    }
    let mut merged: Manifest = serde_json::from_value(merged).map_err(|e| {
        Error::Conflict(format!(
            "the merged manifest does not read ({e}); run the write again"
        ))
    })?;
    merged.extent = join(ours.extent, theirs.extent);
    merged.all_valid = all_valid(ours, theirs, merged.extent);
    Ok(merged)
}

fn join(a: Option<PixelRect>, b: Option<PixelRect>) -> Option<PixelRect> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.union(&b)),
        (a, b) => a.or(b),
    }
}

/// Whether every pixel of the joined extent `joined` holds data: when each side's extent
/// is full and the two extents together are exactly the rectangle that holds both.
fn all_valid(ours: &Manifest, theirs: &Manifest, joined: Option<PixelRect>) -> bool {
    let (Some(a), Some(b), Some(j)) = (ours.extent, theirs.extent, joined) else {
        return ours.all_valid && theirs.all_valid;
    };
    let area = |r: &PixelRect| r.width() as u128 * r.height() as u128;
    let common = area(&a.intersect(&b));
    ours.all_valid && theirs.all_valid && area(&a) + area(&b) - common == area(&j)
}

/// The error for a write that cannot go on top of another that came first.
fn conflict(new: &Snapshot, what: &str) -> Error {
    Error::Conflict(format!(
        "{}: another writer committed snapshot {} first, and {what}; nothing of this write \
         was committed. Run it again: it then starts from the new state",
        new.location().display(),
        new.manifest().snapshot.id
    ))
}
