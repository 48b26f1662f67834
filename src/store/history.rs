//! The history of a store: listing snapshots, making an earlier one current again, and
//! removing what no kept snapshot needs.
//!
//! Every commit leaves its manifest in `snapshots/<id>.json`, and objects are never
//! overwritten, so each snapshot stays readable until `gc` expires it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::index::{Entry, IndexReader, Node, NodeRef, TileKey, NODE_PREFIX};
use crate::manifest::{snapshot_key, Manifest, SnapshotInfo};
use crate::storage::{LocalStorage, Storage};

use super::lock::{LockWait, WriterLock};
use super::snapshot::Snapshot;
use super::transaction::Transaction;

const SNAPSHOT_PREFIX: &str = "snapshots/";
const CHUNK_PREFIX: &str = "chunks/";

/// The snapshots of a store, newest first, following parents from the current one until
/// the history ends or was removed by `gc`.
pub fn history(root: &Path) -> Result<Vec<SnapshotInfo>> {
    let current = Snapshot::open(root, None)?;
    Ok(chain(&**current.storage(), current.manifest(), usize::MAX)?
        .into_iter()
        .map(|m| m.snapshot)
        .collect())
}

/// Up to `limit` manifests from `current` back through its parents.
fn chain(storage: &dyn Storage, current: &Manifest, limit: usize) -> Result<Vec<Manifest>> {
    let mut out = vec![current.clone()];
    let mut next = current.snapshot.parent;
    while let Some(id) = next {
        if out.len() >= limit {
            break;
        }
        let key = snapshot_key(id);
        let Some(bytes) = storage.read_at_most(&key, super::snapshot::MAX_MANIFEST_LEN)? else {
            break; // expired by gc
        };
        let m = Manifest::parse(&bytes, &storage.location().join(key))?;
        next = m.snapshot.parent;
        out.push(m);
    }
    Ok(out)
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
    let earlier = Snapshot::open_in(base.storage().clone(), Some(to))?;
    let earlier = earlier.manifest();
    if earlier.store_id != current.store_id {
        return Err(Error::corrupt(
            root.join(snapshot_key(to)),
            "this snapshot belongs to another store (its store_id differs)",
        ));
    }
    let (written, removed) = count_differences(base.index(), current, earlier)?;
    txn.restore(earlier, written, removed);
    txn.commit()
}

/// How many tiles differ between two states: present in `to` with another chunk or not
/// in `from` (written), and present in `from` only (removed).
fn count_differences(index: &IndexReader, from: &Manifest, to: &Manifest) -> Result<(u64, u64)> {
    let all = |m: &Manifest| -> Result<BTreeMap<TileKey, Entry>> {
        let mut out = BTreeMap::new();
        index.visit_nodes(m.index.root, &mut |_, node| {
            if let Node::Leaf(entries) = node {
                out.extend(entries.iter());
            }
            Ok(())
        })?;
        Ok(out)
    };
    let (old, new) = (all(from)?, all(to)?);
    let written = new.iter().filter(|(k, e)| old.get(k) != Some(e)).count();
    let removed = old.keys().filter(|k| !new.contains_key(k)).count();
    Ok((written as u64, removed as u64))
}

/// What `gc` removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcReport {
    /// Ids of the snapshots kept, newest first.
    pub kept: Vec<u64>,
    pub snapshots_removed: usize,
    pub chunks_removed: usize,
    pub nodes_removed: usize,
}

/// Keeps the `keep` newest snapshots of the history (the current one among them) and
/// removes every other snapshot, and every chunk and index node no kept snapshot uses.
///
/// Holds the writer lock, so no write adds objects meanwhile. Readers of the current state
/// are unaffected; a reader that opened a snapshot being removed may find its chunks gone
/// and reports them missing.
pub fn gc(root: &Path, keep: usize, wait: LockWait) -> Result<GcReport> {
    if keep == 0 {
        return Err(Error::InvalidInput(
            "--keep must be at least 1: the current snapshot is always kept".into(),
        ));
    }
    Snapshot::open(root, None)?; // a store, before a lock is taken in it
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(root));
    let lock = WriterLock::acquire(storage.clone(), "gridstore gc", wait)?;
    let current = Snapshot::open_in(storage.clone(), None)?;
    let kept = chain(&*storage, current.manifest(), keep)?;
    let mut report = GcReport {
        kept: kept.iter().map(|m| m.snapshot.id).collect(),
        ..GcReport::default()
    };

    // Mark: every node and chunk a kept snapshot reaches, and the chunks those keep frames
    // in. Snapshots share most of their index, so a node seen before is not walked again.
    let index = current.index();
    let mut nodes: HashSet<NodeRef> = HashSet::new();
    let mut chunks: HashSet<(u64, TileKey)> = HashSet::new();
    for m in &kept {
        mark(index, m.index.root, &mut nodes, &mut chunks)?;
    }

    // Sweep. Expired manifests go first: once they are gone nobody can open those
    // snapshots, so removing their objects next is safe even if interrupted.
    let kept_ids: HashSet<u64> = report.kept.iter().copied().collect();
    for name in storage.list(SNAPSHOT_PREFIX)? {
        let id = name
            .strip_suffix(".json")
            .and_then(|s| s.parse::<u64>().ok());
        if id.is_some_and(|id| !kept_ids.contains(&id)) {
            storage.delete(&format!("{SNAPSHOT_PREFIX}{name}"))?;
            report.snapshots_removed += 1;
        }
    }
    let used_seqs: HashSet<u64> = chunks.iter().map(|(seq, _)| *seq).collect();
    let naming = current.manifest().chunk_naming();
    for seq in numbered(&*storage, CHUNK_PREFIX)? {
        let prefix = format!("{CHUNK_PREFIX}{seq}/");
        let objects = list_deep(&*storage, &prefix, naming.depth())?;
        if !used_seqs.contains(&seq) {
            storage.delete_prefix(&prefix)?;
            report.chunks_removed += objects.len();
            continue;
        }
        for rest in objects {
            let used =
                TileKey::from_object_key(&rest, naming).is_some_and(|k| chunks.contains(&(seq, k)));
            if !used {
                storage.delete(&format!("{prefix}{rest}"))?;
                report.chunks_removed += 1;
            }
        }
    }
    for seq in numbered(&*storage, NODE_PREFIX)? {
        let prefix = format!("{NODE_PREFIX}{seq}/");
        let ids = storage.list(&prefix)?;
        let unused: Vec<&String> = ids
            .iter()
            .filter(|id| {
                let used = id.parse().ok().map(|id| NodeRef { seq, id });
                !used.is_some_and(|r| nodes.contains(&r))
            })
            .collect();
        if unused.len() == ids.len() {
            storage.delete_prefix(&prefix)?;
        } else {
            for id in &unused {
                storage.delete(&format!("{prefix}{id}"))?;
            }
        }
        report.nodes_removed += unused.len();
    }
    lock.release()?;
    Ok(report)
}

fn mark(
    index: &IndexReader,
    at: Option<NodeRef>,
    nodes: &mut HashSet<NodeRef>,
    chunks: &mut HashSet<(u64, TileKey)>,
) -> Result<()> {
    let Some(at) = at else { return Ok(()) };
    if !nodes.insert(at) {
        return Ok(()); // shared with a snapshot marked before: so is everything below it
    }
    match &*index.node(at)? {
        Node::Leaf(entries) => {
            for (k, e) in entries.iter() {
                chunks.insert((e.seq, k));
                // A chunk that keeps frames in an older chunk of its tile needs that one too.
                if let Some(base) = e.base() {
                    chunks.insert((base, k));
                }
            }
        }
        Node::Internal(children) => {
            for (_, child) in children.iter() {
                mark(index, Some(child), nodes, chunks)?;
            }
        }
    }
    Ok(())
}

/// The snapshot-id directories under `prefix` (`chunks/` or `index/`).
fn numbered(storage: &dyn Storage, prefix: &str) -> Result<Vec<u64>> {
    Ok(storage
        .list(prefix)?
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect())
}

/// Keys `depth` levels below `prefix`, relative to it.
fn list_deep(storage: &dyn Storage, prefix: &str, depth: usize) -> Result<Vec<String>> {
    let mut level = vec![String::new()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for rel in &level {
            for name in storage.list(&format!("{prefix}{rel}"))? {
                next.push(format!("{rel}{name}/"));
            }
        }
        level = next;
    }
    Ok(level
        .into_iter()
        .map(|k| k.trim_end_matches('/').to_string())
        .collect())
}
