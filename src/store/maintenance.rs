//! Whole-store operations that are not reads or writes of data: checking every object,
//! repairing after a crash, removing a store.

use std::path::Path;

use rayon::prelude::*;

use crate::chunk::Head;
use crate::error::{Error, Result};
use crate::index::{Entry, Node, TileKey, Tree};
use crate::manifest::MANIFEST_KEY;
use sha2::{Digest, Sha256};

use std::sync::Arc;

use crate::storage::{LocalStorage, Storage};

use super::lock::{discard_unfinished_write, Cleanup, LockWait, Recovered, WriterLock, LOCK_KEY};
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
    /// SHA-256 of the snapshot's content: its extent and every tile's key and the length
    /// and checksum of each of its chunk's frames. Two states with equal digests read the
    /// same, whichever writes made them: neither the snapshot that wrote a chunk counts, nor
    /// whether its frames are kept in it or in its base.
    pub content_digest: String,
}

/// Checks every object the snapshot refers to: index nodes (checksums), and every chunk
/// (present, size and checksum as the index says, decodes). Changes nothing.
pub fn verify(snapshot: &Snapshot) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut tiles: Vec<(TileKey, Entry)> = Vec::new();
    // The walk checks every node's place in the tree too: a damaged index (a node that
    // loops back, one too deep, keys out of place) is a problem found, not a hang.
    let tree = Tree::of(snapshot.manifest());
    let visited = snapshot.index().visit_nodes(tree, &mut |_, node| {
        report.nodes_checked += 1;
        if let Node::Leaf(entries) = node {
            tiles.extend(entries.iter());
        }
        Ok(())
    });
    if let Err(e) = visited {
        report.problems.push(Problem {
            object: "index".into(),
            detail: e.to_string(),
        });
    }
    let results: Vec<(u64, Result<FrameSums>)> = tiles
        .par_iter()
        .map(|(key, entry)| match snapshot.check_chunk(key, entry) {
            Ok(head) => (entry.size as u64, Ok(frame_sums(&head, entry))),
            Err(e) => (0, Err(e)),
        })
        .collect();
    let mut frames = Vec::with_capacity(tiles.len());
    for ((key, entry), (bytes, checked)) in tiles.iter().zip(results) {
        report.tiles_checked += 1;
        report.bytes_checked += bytes;
        match checked {
            Ok(sums) => frames.push(sums),
            Err(e) => {
                frames.push(Vec::new());
                report.problems.push(Problem {
                    object: key.object_key(entry.seq, snapshot.manifest().chunk_naming()),
                    detail: e.to_string(),
                });
            }
        }
    }
    report.content_digest = content_digest(snapshot.manifest(), &tiles, &frames);
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

/// (length, CRC-32C) of each frame of a chunk.
type FrameSums = Vec<(u32, u32)>;

/// (length, CRC-32C) of every frame of a chunk: what it holds, wherever its frames are
/// kept. A chunk of the first format, one stream without a table, counts as one frame
/// with the object's checksum.
fn frame_sums(head: &Head, entry: &Entry) -> FrameSums {
    if !head.has_frame_table() {
        return vec![(entry.size, entry.crc)];
    }
    head.frames()
        .iter()
        .map(|f| (f.len as u32, f.crc))
        .collect()
}

fn content_digest(
    m: &crate::manifest::Manifest,
    tiles: &[(TileKey, Entry)],
    frames: &[FrameSums],
) -> String {
    let mut h = Sha256::new();
    match m.extent {
        Some(e) => {
            for v in [e.x0, e.y0, e.x1, e.y1] {
                h.update(v.to_le_bytes());
            }
        }
        None => h.update(b"no extent"),
    }
    for ((k, _), sums) in tiles.iter().zip(frames) {
        h.update(k.time.to_le_bytes());
        h.update([k.pyramid, k.level]);
        h.update(k.col.to_le_bytes());
        h.update(k.row.to_le_bytes());
        h.update((sums.len() as u32).to_le_bytes());
        for (len, crc) in sums {
            h.update(len.to_le_bytes());
            h.update(crc.to_le_bytes());
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Deletes a store. Refuses anything that is not a store, and a store being written.
pub fn remove_store(root: &Path, wait: LockWait) -> Result<()> {
    let is_store = root.join(MANIFEST_KEY).is_file();
    // A creation that died leaves a directory with a lock but no manifest yet.
    let is_unfinished = root.is_dir() && !is_store && root.join(LOCK_KEY).is_file();
    if !is_store && !is_unfinished {
        return Err(Error::StoreNotFound {
            path: root.to_path_buf(),
            detail: "there is no gridstore.json, so nothing was removed".into(),
        });
    }
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(root));
    let lock = WriterLock::acquire(storage, "gridstore rm", wait)?;
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

/// What `repair` found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairReport {
    /// The lock of a writer that died, taken over; its unfinished write was removed.
    pub recovered: Option<Recovered>,
    /// Leftovers of an unfinished write found without a lock, and removed.
    pub cleanup: Cleanup,
    /// The store was an interrupted creation (nothing ever committed), and was removed.
    pub removed_unfinished_creation: bool,
}

/// Removes what a failed write left behind: takes over a dead writer's lock and deletes
/// everything its write made. A store whose creation never committed is removed. A live
/// writer is never disturbed: its lock makes this wait or fail like any other writer.
pub fn repair(root: &Path, wait: LockWait) -> Result<RepairReport> {
    let unfinished = is_unfinished_creation(root);
    if !unfinished {
        Snapshot::open(root, None)?; // a store, before a lock is taken in it
    }
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(root));
    let lock = WriterLock::acquire(storage.clone(), "gridstore repair", wait)?;
    let recovered = lock.recovered().cloned();
    if unfinished && !root.join(MANIFEST_KEY).exists() {
        std::fs::remove_dir_all(root).map_err(|e| Error::io(root, "removing", e))?;
        drop(lock); // its file went with the directory
        return Ok(RepairReport {
            cleanup: Cleanup {
                seq: 1,
                removed: Vec::new(),
            },
            recovered,
            removed_unfinished_creation: true,
        });
    }
    let cleanup = discard_unfinished_write(&*storage)?;
    lock.release()?;
    Ok(RepairReport {
        recovered,
        cleanup,
        removed_unfinished_creation: false,
    })
}

/// Names a store directory may hold before its first commit.
const UNFINISHED_STORE_ENTRIES: [&str; 4] = [LOCK_KEY, "chunks", "index", "snapshots"];

/// True for a directory left by a store creation that never committed: it has a writer
/// lock, no manifest, and nothing but objects a creation writes.
pub fn is_unfinished_creation(root: &Path) -> bool {
    if root.join(MANIFEST_KEY).exists() || !root.join(LOCK_KEY).is_file() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return false;
    };
    let temporaries = [format!(".{MANIFEST_KEY}."), format!(".{LOCK_KEY}.")];
    entries.flatten().all(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        UNFINISHED_STORE_ENTRIES.contains(&name.as_ref())
            || temporaries.iter().any(|t| name.starts_with(t.as_str()))
    })
}
