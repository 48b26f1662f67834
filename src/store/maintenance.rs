//! Whole-store operations that are not reads or writes of data: checking every object,
//! listing history, removing a store.

use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::index::{Node, TileKey};
use crate::manifest::{snapshot_key, Manifest, SnapshotInfo, MANIFEST_KEY};

use super::lock::{LockWait, WriterLock};
use super::snapshot::Snapshot;

/// One problem `verify` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub object: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifyReport {
    pub tiles_checked: u64,
    pub nodes_checked: u64,
    pub bytes_checked: u64,
    pub problems: Vec<Problem>,
}

/// Checks every object the snapshot refers to: index nodes (checksums), and every chunk
/// (present, size and checksum as the index says, decodes). Changes nothing.
pub fn verify(snapshot: &Snapshot) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut tiles: Vec<(TileKey, crate::index::Entry)> = Vec::new();
    let root = snapshot.manifest().index.root;
    let visited = snapshot.index().visit_nodes(root, &mut |_, node| {
        report.nodes_checked += 1;
        if let Node::Leaf(entries) = node {
            tiles.extend(entries.iter().copied());
        }
        Ok(())
    });
    if let Err(e) = visited {
        report.problems.push(Problem {
            object: "index".into(),
            detail: e.to_string(),
        });
    }
    let results: Vec<(u64, Option<Problem>)> = tiles
        .par_iter()
        .map(|(key, entry)| match snapshot.fetch(key, entry) {
            Ok(_) => (entry.size as u64, None),
            Err(e) => (
                0,
                Some(Problem {
                    object: key.object_key(entry.seq),
                    detail: e.to_string(),
                }),
            ),
        })
        .collect();
    for (bytes, problem) in results {
        report.tiles_checked += 1;
        report.bytes_checked += bytes;
        report.problems.extend(problem);
    }
    let m = snapshot.manifest();
    if report.problems.is_empty() && report.tiles_checked != m.index.tiles {
        report.problems.push(Problem {
            object: MANIFEST_KEY.into(),
            detail: format!(
                "the manifest counts {} tiles but the index holds {}",
                m.index.tiles, report.tiles_checked
            ),
        });
    }
    Ok(report)
}

/// The snapshots of a store, newest first, following parents from the current one until
/// the history ends or was removed.
pub fn history(root: &Path) -> Result<Vec<SnapshotInfo>> {
    let current = Snapshot::open(root, None)?;
    let storage = current.storage().clone();
    let mut out = vec![current.manifest().snapshot.clone()];
    let mut next = current.manifest().snapshot.parent;
    while let Some(id) = next {
        let key = snapshot_key(id);
        let Some(bytes) = storage.read(&key)? else {
            break; // removed by gc
        };
        let m = Manifest::parse(&bytes, &storage.location().join(key))?;
        next = m.snapshot.parent;
        out.push(m.snapshot);
    }
    Ok(out)
}

/// Deletes a store. Refuses anything that is not a store, and a store being written.
pub fn remove_store(root: &Path) -> Result<()> {
    let is_store = root.join(MANIFEST_KEY).is_file();
    // A creation that died leaves a directory with a lock but no manifest yet.
    let is_unfinished = root.is_dir() && !is_store && root.join(super::lock::LOCK_KEY).is_file();
    if !is_store && !is_unfinished {
        return Err(Error::StoreNotFound {
            path: root.to_path_buf(),
            detail: "there is no gridstore.json, so nothing was removed".into(),
        });
    }
    let storage: std::sync::Arc<dyn crate::storage::Storage> =
        std::sync::Arc::new(crate::storage::LocalStorage::new(root));
    let lock = WriterLock::acquire(storage, "gridstore rm", LockWait::Fail)?;
    // Remove the manifest first: from then on the directory is no store, even if removing
    // the rest is interrupted.
    if is_store {
        std::fs::remove_file(root.join(MANIFEST_KEY))
            .map_err(|e| Error::io(root.join(MANIFEST_KEY), "removing", e))?;
    }
    std::fs::remove_dir_all(root).map_err(|e| Error::io(root, "removing", e))?;
    drop(lock); // its file went with the directory
    Ok(())
}
