//! The history of a store: listing snapshots, making an earlier one current again, and
//! removing what no kept snapshot needs.
//!
//! Every commit leaves its manifest in `snapshots/<id>.json`, and objects are never
//! overwritten, so each snapshot stays readable until `gc` expires it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use crate::error::{Error, Result};
use crate::index::{
    ChunkNaming, Entry, IndexReader, Node, NodeRef, TileKey, Tree, CHUNK_PREFIX, NODE_PREFIX,
    STEP_PREFIX,
};
use crate::keys::{
    canonical_number, snapshot_id as snapshot_id_of, source_list_part, SOURCE_PREFIX,
};
use crate::manifest::{snapshot_key, Manifest, SnapshotInfo, SNAPSHOT_PREFIX};
use crate::storage::{Commits, Storage};
use std::time::Duration;

use super::lock::{check_next_id_is_free, LockWait, WriterLock};
use super::snapshot::Snapshot;
use super::transaction::Transaction;

/// The snapshots of a store, newest first, following parents from the current one until
/// the history ends or was removed by `gc`.
pub fn history(root: &Path) -> Result<Vec<SnapshotInfo>> {
    let current = Snapshot::open(root, None)?;
    Ok(chain(&**current.storage(), current.manifest(), usize::MAX)?
        .into_iter()
        .map(|m| m.snapshot)
        .collect())
}

/// Up to `limit` manifests from `current` back through its parents. A snapshot's parent is
/// always older than it, which is checked at each step: so the walk ends (after at most as
/// many steps as there are snapshot files), and a cycle or a parent that is not older is
/// reported as damaged history rather than followed.
pub(super) fn chain(
    storage: &dyn Storage,
    current: &Manifest,
    limit: usize,
) -> Result<Vec<Manifest>> {
    let mut out = vec![current.clone()];
    loop {
        let child = out.last().expect("starts with the current manifest");
        let Some(id) = child.snapshot.parent else {
            break;
        };
        if out.len() >= limit {
            break;
        }
        let child_key = snapshot_key(child.snapshot.id);
        if id >= child.snapshot.id {
            return Err(damaged_history(
                storage.location().join(child_key),
                format!(
                    "snapshot {} names snapshot {id} as its parent, which is not older",
                    child.snapshot.id
                ),
            ));
        }
        let key = snapshot_key(id);
        let Some(bytes) = storage.read_at_most(&key, crate::manifest::MAX_MANIFEST_LEN)? else {
            break; // expired by gc
        };
        let path = storage.location().join(&key);
        let m = Manifest::parse(&bytes, &path)?;
        if m.snapshot.id != id {
            return Err(damaged_history(
                path,
                format!(
                    "the file of snapshot {id} describes snapshot {}",
                    m.snapshot.id
                ),
            ));
        }
        out.push(m);
    }
    Ok(out)
}

/// The error for a snapshot manifest at `path` that does not fit in the store's history.
fn damaged_history(path: impl AsRef<Path>, detail: impl std::fmt::Display) -> Error {
    Error::corrupt(path, format!("damaged history: {detail}"))
}

/// The ids of the snapshot manifests kept in `snapshots/`, and the names there that are
/// none (left alone).
pub(super) fn snapshot_files(storage: &dyn Storage) -> Result<(Vec<u64>, Vec<String>)> {
    let mut ids = Vec::new();
    let mut others = Vec::new();
    for name in storage.list(SNAPSHOT_PREFIX)? {
        match snapshot_id_of(&name) {
            Some(id) => ids.push(id),
            None => others.push(format!("{SNAPSHOT_PREFIX}{name}")),
        }
    }
    Ok((ids, others))
}

/// Makes snapshot `to` the current state again, as a new commit: the snapshots after it
/// stay in the history, so a rollback can itself be rolled back.
pub fn rollback(root: &Path, to: u64, wait: LockWait) -> Result<Manifest> {
    // A snapshot that does not exist is reported as such, even while another writer holds
    // the lock.
    Snapshot::open(root, Some(to))?;
    let mut txn = Transaction::begin(root, &format!("gridstore rollback --to {to}"), wait)?;
    let base = txn.base().expect("an existing store has a base").clone();
    let current = base.manifest();
    if to == current.snapshot.id {
        return Err(Error::InvalidInput(format!(
            "{}: snapshot {to} is already the current state; nothing to roll back",
            root.display()
        )));
    }
    let earlier_key = snapshot_key(to);
    // A snapshot newer than the current state cannot be in its history (ids only grow):
    // making its index current under a smaller id would name chunks of later snapshots.
    if to > current.snapshot.id {
        return Err(damaged_history(
            root.join(&earlier_key),
            format!(
                "snapshot {to} is newer than the current state (snapshot {}), which no \
                 commit can leave behind; gridstore.json may have been replaced by an older \
                 snapshot. Nothing was changed",
                current.snapshot.id
            ),
        ));
    }
    let earlier = Snapshot::open_in(base.storage().clone(), Some(to))?;
    let earlier = earlier.manifest();
    if earlier.store_id != current.store_id {
        return Err(Error::corrupt(
            root.join(&earlier_key),
            "this snapshot belongs to another store (its store_id differs)",
        ));
    }
    if earlier.snapshot.id != to {
        return Err(damaged_history(
            root.join(&earlier_key),
            format!(
                "the file of snapshot {to} describes snapshot {}",
                earlier.snapshot.id
            ),
        ));
    }
    let (written, removed) = count_differences(base.index(), current, earlier)?;
    txn.restore(earlier, written, removed);
    txn.commit()
}

/// How many tiles differ between two states: present in `to` with another chunk or not
/// in `from` (written), and present in `from` only (removed). Both indexes are walked
/// completely and must hold the tile counts their manifests record.
fn count_differences(index: &IndexReader, from: &Manifest, to: &Manifest) -> Result<(u64, u64)> {
    let all = |m: &Manifest| -> Result<BTreeMap<TileKey, Entry>> {
        let mut out = BTreeMap::new();
        let found = index.visit_nodes(Tree::of(m), &mut |_, node| {
            if let Node::Leaf(entries) = node {
                out.extend(entries.iter());
            }
            Ok(())
        })?;
        check_tile_count(&**index.storage(), m, found)?;
        Ok(out)
    };
    let (old, new) = (all(from)?, all(to)?);
    let written = new.iter().filter(|(k, e)| old.get(k) != Some(e)).count();
    let removed = old.keys().filter(|k| !new.contains_key(k)).count();
    Ok((written as u64, removed as u64))
}

/// Checks that a complete walk of the index of snapshot `m` found the tiles it records.
fn check_tile_count(storage: &dyn Storage, m: &Manifest, found: u64) -> Result<()> {
    if found == m.index.tiles {
        return Ok(());
    }
    Err(Error::corrupt(
        storage.location().join(snapshot_key(m.snapshot.id)),
        format!(
            "damaged index: snapshot {} records {} tiles but its index holds {found}",
            m.snapshot.id, m.index.tiles
        ),
    ))
}

/// What `gc` removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcReport {
    /// Ids of the snapshots kept, newest first.
    pub kept: Vec<u64>,
    pub snapshots_removed: usize,
    /// Chunks and step records removed.
    pub chunks_removed: usize,
    pub nodes_removed: usize,
    /// Source lists of removed snapshots.
    pub source_lists_removed: usize,
    /// Names under `snapshots/`, `chunks/` and `index/` that are no object a writer makes,
    /// left where they are: gc deletes only what it knows to be a store's own.
    pub unknown_left: Vec<String>,
    /// Writers on object storage presumed dead (claims older than the grace period) whose
    /// claims were removed, with what they left.
    pub dead_writers: usize,
}

/// Keeps the `keep` newest snapshots of the history (the current one among them) and
/// removes every other snapshot, and every chunk and index node no kept snapshot uses.
///
/// Nothing is removed unless the history and the index of every kept snapshot were walked
/// completely, without finding damage, and each index holds the tiles its manifest
/// records: a damaged index could hide objects that are still needed.
///
/// On local disk, holds the writer lock, so no write adds objects meanwhile. On object
/// storage, where writers take no lock, it also keeps, for `grace`, every snapshot that was
/// current less than `grace` ago and every object of a write in flight (a claim younger
/// than `grace`): see [`InFlight`]. Readers of the current state are unaffected; a reader
/// that opened a snapshot being removed may find its chunks gone and reports them missing.
pub fn gc(root: &Path, keep: usize, grace: Duration, wait: LockWait) -> Result<GcReport> {
    if keep == 0 {
        return Err(Error::InvalidInput(
            "--keep must be at least 1: the current snapshot is always kept".into(),
        ));
    }
    Snapshot::open(root, None)?; // a store, before a lock is taken in it
    let storage = crate::storage::open(root);
    let optimistic = storage.commits() == Commits::Optimistic;
    let lock = match optimistic {
        true => None,
        false => Some(WriterLock::acquire(storage.clone(), "gridstore gc", wait)?),
    };
    let current = Snapshot::open_in(storage.clone(), None)?;
    let reach = Reach::find(&*storage, current.manifest(), current.index(), keep, grace)
        .map_err(stopped_before_removing)?;
    let report = reach.sweep(&*storage, current.manifest().chunk_naming())?;
    if let Some(lock) = lock {
        lock.release()?;
    }
    Ok(report)
}

/// Damage found before gc removed anything, said so.
fn stopped_before_removing(e: Error) -> Error {
    match e {
        Error::Corrupt { path, detail } => Error::corrupt(
            path,
            format!("{detail}; gc stopped before removing anything"),
        ),
        other => other,
    }
}

/// What gc keeps: the snapshots, and what they reach, found before anything is removed.
struct Reach {
    /// The kept snapshots' manifests, from the current one back.
    kept: Vec<Manifest>,
    marked: Marked,
    /// The parts of source lists the kept snapshots name, as (snapshot, part).
    listed: HashSet<(u64, u32)>,
    in_flight: InFlight,
    /// The ids of the snapshot manifests in the store.
    snapshot_ids: Vec<u64>,
    /// Objects under `snapshots/` that no writer names so.
    unknown: Vec<String>,
}

impl Reach {
    /// Walks the history back from the `current` manifest (whose index is `index`) for
    /// `keep` snapshots, and more on object storage while they were current less than
    /// `grace` ago, and everything they reach; refuses a history a commit cannot leave.
    fn find(
        storage: &dyn Storage,
        current: &Manifest,
        index: &IndexReader,
        keep: usize,
        grace: Duration,
    ) -> Result<Reach> {
        let optimistic = storage.commits() == Commits::Optimistic;
        let (snapshot_ids, unknown) = snapshot_files(storage)?;
        let in_flight = match optimistic {
            true => InFlight::find(storage, grace)?,
            false => InFlight::default(),
        };
        if optimistic {
            in_flight.check_later_snapshots(storage, current.snapshot.id, &snapshot_ids)?;
        } else {
            let next = current.snapshot.id.saturating_add(1);
            check_next_id_is_free(storage, Some(current), next)?;
        }
        let keep = match optimistic {
            true => keep.max(current_within(storage, current, grace)?),
            false => keep,
        };
        let kept = chain(storage, current, keep)?;
        let marked = mark(storage, index, &kept)?;
        let listed = super::sources::reachable(storage, kept.iter().map(|m| m.sources.clone()))?;
        Ok(Reach {
            kept,
            marked,
            listed,
            in_flight,
            snapshot_ids,
            unknown,
        })
    }

    /// Removes every snapshot manifest and object of the store that nothing kept reaches
    /// and no write in flight may own; leaves what is not the store's own. Expired
    /// manifests go first: once they are gone nobody can open those snapshots, so
    /// removing their objects next is safe even if interrupted. The claims of dead writers
    /// go last: until then, their ids stay out of new claims.
    fn sweep(self, storage: &dyn Storage, naming: ChunkNaming) -> Result<GcReport> {
        let Reach {
            kept,
            marked,
            listed,
            in_flight,
            snapshot_ids,
            mut unknown,
        } = self;
        let mut report = GcReport {
            kept: kept.iter().map(|m| m.snapshot.id).collect(),
            ..GcReport::default()
        };
        let kept_ids: HashSet<u64> = report.kept.iter().copied().collect();
        let young = &in_flight.young;
        for id in snapshot_ids {
            if !kept_ids.contains(&id) && !young.contains(&id) {
                storage.delete(&snapshot_key(id))?;
                report.snapshots_removed += 1;
            }
        }
        // Whether an object named `rest` below the prefix for snapshot `seq` is kept; `None`
        // when no writer names one so. The objects of writes in flight are not looked at.
        let chunks = Layout {
            prefix: CHUNK_PREFIX,
            depth: naming.depth(),
            is_pack: &|name| naming.has_packs() && crate::keys::pack_of(name).is_some(),
        };
        let (removed, left) = sweep(storage, &chunks, young, |seq, rest| {
            if chunks.is_pack(rest) {
                return crate::keys::pack_of(rest).map(|p| marked.packs.contains(&(seq, p)));
            }
            let key = TileKey::from_object_key(rest, naming)?;
            // Only a name a writer would give that tile: another spelling of the same
            // numbers is no chunk of the store.
            (key.object_key(seq, naming) == format!("{CHUNK_PREFIX}{seq}/{rest}"))
                .then(|| marked.chunks.contains(&(seq, key)))
        })?;
        report.chunks_removed = removed;
        unknown.extend(left);
        let (removed, left) = sweep(storage, &Layout::flat(NODE_PREFIX), young, |seq, rest| {
            let id = canonical_number(rest)?;
            Some(marked.nodes.contains_key(&NodeRef { seq, id }))
        })?;
        report.nodes_removed = removed;
        unknown.extend(left);
        let (removed, left) = sweep(storage, &Layout::flat(STEP_PREFIX), young, |seq, rest| {
            let t = canonical_number(rest)?;
            Some(marked.chunks.contains(&(seq, TileKey::step_record(t))))
        })?;
        report.chunks_removed += removed;
        unknown.extend(left);
        let (removed, left) = sweep(storage, &Layout::flat(SOURCE_PREFIX), young, |seq, rest| {
            source_list_part(rest).map(|part| listed.contains(&(seq, part)))
        })?;
        report.source_lists_removed = removed;
        unknown.extend(left);
        report.unknown_left = unknown;
        for id in &in_flight.dead {
            super::claims::release(storage, *id)?;
        }
        report.dead_writers = in_flight.dead.len();
        Ok(report)
    }
}

/// On object storage, the writes gc must leave alone: claims younger than the grace
/// period (writers in flight); and the claims of writers presumed dead (older), whose
/// objects nothing reaches unless their commit landed.
#[derive(Default)]
struct InFlight {
    young: HashSet<u64>,
    dead: Vec<u64>,
}

impl InFlight {
    fn find(storage: &dyn Storage, grace: Duration) -> Result<InFlight> {
        let mut found = InFlight::default();
        for name in storage.list(super::claims::CLAIM_PREFIX)? {
            let Some(id) = canonical_number::<u64>(&name) else {
                continue;
            };
            // Read each claim itself: a listing may lag behind a claim just made.
            match super::claims::read(storage, id)? {
                None => {}
                Some(Some(c)) if c.age().is_some_and(|a| a < grace) => {
                    found.young.insert(id);
                }
                Some(_) => found.dead.push(id),
            }
        }
        Ok(found)
    }

    /// Refuses, as [`check_no_later_snapshot`] does, a snapshot manifest newer than the
    /// current state that no writer's claim explains.
    fn check_later_snapshots(
        &self,
        storage: &dyn Storage,
        current: u64,
        snapshot_ids: &[u64],
    ) -> Result<()> {
        let unexplained: Vec<u64> = snapshot_ids
            .iter()
            .copied()
            .filter(|id| *id > current && !self.young.contains(id) && !self.dead.contains(id))
            .collect();
        check_no_later_snapshot(storage, current, &unexplained)
    }
}

/// How many snapshots of the history, from the current one back, were current less than
/// `grace` ago: a writer or reader that started from one of them may still read it.
fn current_within(storage: &dyn Storage, current: &Manifest, grace: Duration) -> Result<usize> {
    let now = std::time::SystemTime::now();
    let recent = |m: &Manifest| {
        humantime::parse_rfc3339(&m.snapshot.created)
            .map_or(true, |t| now.duration_since(t).unwrap_or_default() < grace)
    };
    let mut n = 1;
    // Snapshot n (counting from 1 at the current one) was current until its child was
    // made; it is kept while that child is recent.
    for m in chain(storage, current, usize::MAX)? {
        if !recent(&m) {
            break;
        }
        n += 1;
    }
    Ok(n)
}

/// Refuses a store holding the manifest of a snapshot newer than its current state: no
/// commit leaves one (a write that dies before committing leaves its manifest, but the
/// next writer removes it before anything else), so `gridstore.json` was replaced by an
/// older state, and the newer snapshots may still be wanted.
pub(super) fn check_no_later_snapshot(
    storage: &dyn Storage,
    current: u64,
    snapshot_ids: &[u64],
) -> Result<()> {
    // The manifest one past the current state may be an unfinished write's.
    let next = current.saturating_add(1);
    match snapshot_ids.iter().copied().filter(|&id| id > next).max() {
        Some(later) => Err(damaged_history(
            storage.location().join(snapshot_key(later)),
            format!(
                "this snapshot is newer than the store's current state (snapshot {current}), \
                 which no commit leaves behind: gridstore.json may have been replaced by \
                 an older snapshot. If so, copy the newest snapshots/<id>.json over it; \
                 `gridstore rollback` goes back to an earlier state safely. Nothing was \
                 removed"
            ),
        )),
        None => Ok(()),
    }
}

/// What the kept snapshots reach.
struct Marked {
    /// Every index node, with the number of tiles below it.
    nodes: HashMap<NodeRef, u64>,
    /// Every chunk, as (the snapshot that wrote it, its tile): the chunks the indexes name
    /// and the ones those keep frames in.
    chunks: HashSet<(u64, TileKey)>,
    /// Every pack holding a chunk the indexes name, as (the snapshot that wrote it, its
    /// number).
    packs: HashSet<(u64, u32)>,
}

/// Walks the index of every snapshot in `kept` completely. Snapshots share most of their
/// index, so a node walked for one is not walked again for the next.
fn mark(storage: &dyn Storage, index: &IndexReader, kept: &[Manifest]) -> Result<Marked> {
    let mut marked = Marked {
        nodes: HashMap::new(),
        chunks: HashSet::new(),
        packs: HashSet::new(),
    };
    for m in kept {
        let name = storage.location().join(snapshot_key(m.snapshot.id));
        index.check_root_copy(&m.index, &name)?;
        let (chunks, packs) = (&mut marked.chunks, &mut marked.packs);
        let found = index.visit_new_nodes(Tree::of(m), &mut marked.nodes, &mut |_, node| {
            if let Node::Leaf(entries) = node {
                for (k, e) in entries.iter() {
                    match e.pack() {
                        Some(pack) => packs.insert((e.seq, pack)),
                        None => chunks.insert((e.seq, k)),
                    };
                    // A chunk that keeps frames in an older chunk of its tile needs that
                    // one too.
                    if let Some(base) = e.base() {
                        chunks.insert((base, k));
                    }
                }
            }
            Ok(())
        })?;
        check_tile_count(storage, m, found)?;
    }
    Ok(marked)
}

/// Removes the objects under `<prefix><seq>/` (`depth` levels below it) that `used` says
/// no kept snapshot uses (`Some(false)`). Names that are no object of the store (`used`
/// gives `None`, or a directory name that is no snapshot id) are left where they are, and
/// so is everything of a snapshot id in `in_flight`, which is not even listed. Returns how
/// many objects were removed, and the names left.
fn sweep(
    storage: &dyn Storage,
    layout: &Layout<'_>,
    in_flight: &HashSet<u64>,
    used: impl Fn(u64, &str) -> Option<bool>,
) -> Result<(usize, Vec<String>)> {
    let prefix = layout.prefix;
    let (mut removed, mut unknown) = (0, Vec::new());
    for name in storage.list(prefix)? {
        let Some(seq) = canonical_number::<u64>(&name) else {
            unknown.push(format!("{prefix}{name}"));
            continue;
        };
        if in_flight.contains(&seq) {
            continue; // a write in flight: all of it is kept
        }
        let dir = crate::keys::write_dir(prefix, seq);
        let (objects, odd) = list_deep(storage, &dir, layout);
        let mut kept_any = !odd.is_empty();
        unknown.extend(odd);
        for rest in objects {
            match used(seq, &rest) {
                Some(false) => {
                    storage.delete(&format!("{dir}{rest}"))?;
                    removed += 1;
                }
                Some(true) => kept_any = true,
                None => {
                    unknown.push(format!("{dir}{rest}"));
                    kept_any = true;
                }
            }
        }
        if !kept_any {
            storage.delete_prefix(&dir)?; // the directories left empty
        }
    }
    Ok((removed, unknown))
}

/// How the objects a write makes lie below `<prefix><seq>/`: `depth` levels below it, or,
/// for the names `is_pack` accepts, one level below it.
struct Layout<'a> {
    prefix: &'a str,
    depth: usize,
    is_pack: &'a dyn Fn(&str) -> bool,
}

impl Layout<'_> {
    /// Objects named right below `<prefix><seq>/`.
    fn flat(prefix: &str) -> Layout<'_> {
        Layout {
            prefix,
            depth: 1,
            is_pack: &|_| false,
        }
    }

    fn is_pack(&self, rest: &str) -> bool {
        (self.is_pack)(rest)
    }
}

/// Keys below `prefix` as `layout` lays them out, relative to it; and the keys (with the
/// prefix) that could not be listed on the way down (a file where a directory belongs,
/// say), which are then no object of the store's.
fn list_deep(
    storage: &dyn Storage,
    prefix: &str,
    layout: &Layout<'_>,
) -> (Vec<String>, Vec<String>) {
    let mut level = vec![String::new()];
    let (mut objects, mut odd) = (Vec::new(), Vec::new());
    for depth in 0..layout.depth {
        let mut next = Vec::new();
        for rel in &level {
            let Ok(names) = storage.list(&format!("{prefix}{rel}")) else {
                odd.push(format!("{prefix}{}", rel.trim_end_matches('/')));
                continue;
            };
            for n in names {
                match depth == 0 && layout.is_pack(&n) {
                    true => objects.push(n),
                    false => next.push(format!("{rel}{n}/")),
                }
            }
        }
        level = next;
    }
    objects.extend(
        level
            .into_iter()
            .map(|k| k.trim_end_matches('/').to_string()),
    );
    (objects, odd)
}
