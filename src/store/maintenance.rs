//! Whole-store operations that are not reads or writes of data: checking every object,
//! repairing after a crash, removing a store.

use std::path::Path;

use rayon::prelude::*;

use crate::chunk::Head;
use crate::error::{Error, Result};
use crate::index::{Entry, Node, TileKey, Tree, WRITE_PREFIXES};
use crate::keys::SNAPSHOT_PREFIX;
use crate::manifest::{Manifest, MANIFEST_KEY, MAX_MANIFEST_LEN};
use crate::text::printable;
use sha2::{Digest, Sha256};

use std::sync::Arc;

use crate::storage::{EntryKind, LocalStorage, Storage};

use super::lock::{
    discard_unfinished_write, Cleanup, LockInfo, LockWait, Recovered, WriterLock, LOCK_KEY,
    MAX_LOCK_BYTES,
};
use super::snapshot::Snapshot;
use super::steps::StepRecord;

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

/// How many tiles `verify` reads at once over the network: their chunks fetched together
/// are held in memory until checked.
const VERIFY_BATCH: usize = 64;

/// Checks every object the snapshot refers to: index nodes (checksums), every chunk
/// (present, size and checksum as the index says, decodes), and its source list. Changes
/// nothing.
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
    let root_copy = || {
        let id = snapshot.manifest().snapshot.id;
        let manifest = snapshot.location().join(crate::manifest::snapshot_key(id));
        snapshot
            .index()
            .check_root_copy(&snapshot.manifest().index, &manifest)
    };
    for e in [visited.map(|_| ()), root_copy()]
        .into_iter()
        .filter_map(|r| r.err())
    {
        report.problems.push(Problem {
            object: "index".into(),
            detail: e.to_string(),
        });
    }
    let check = |(key, entry): &(TileKey, Entry)| match check_object(snapshot, key, entry) {
        Ok(sums) => (entry.size as u64, Ok(sums)),
        Err(e) => (0, Err(e)),
    };
    // Over the network, a batch of tiles (in key order) at a time: the chunks of a batch
    // that lie together in a pack come in one request.
    let remote = snapshot.storage().reads_by_request();
    let results: Vec<(u64, Result<FrameSums>)> = match remote {
        true => {
            let mut results = Vec::with_capacity(tiles.len());
            for batch in tiles.chunks(VERIFY_BATCH) {
                let checked = snapshot.with_prefetched(batch, || {
                    Ok(batch.par_iter().map(check).collect::<Vec<_>>())
                })?;
                results.extend(checked);
            }
            results
        }
        false => tiles.par_iter().map(check).collect(),
    };
    let mut frames = Vec::with_capacity(tiles.len());
    for ((key, entry), (bytes, checked)) in tiles.iter().zip(results) {
        report.tiles_checked += 1;
        report.bytes_checked += bytes;
        match checked {
            Ok(sums) => frames.push(sums),
            Err(e) => {
                frames.push(Vec::new());
                report.problems.push(Problem {
                    object: chunk_name(snapshot, key, entry),
                    detail: e.to_string(),
                });
            }
        }
    }
    report.content_digest = content_digest(snapshot.manifest(), &tiles, &frames);
    let m = snapshot.manifest();
    // The source lists are no content (two writes of the same tiles from other files read
    // the same), but the state's objects all the same.
    let storage = &**snapshot.storage();
    if let Err(e) = super::sources::walk(storage, m.sources.as_ref(), &mut |_, _| true) {
        report.problems.push(Problem {
            object: "sources".into(),
            detail: e.to_string(),
        });
    }
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

/// The object of a chunk, for a report; in a pack, with the tile whose chunk it is.
fn chunk_name(snapshot: &Snapshot, key: &TileKey, entry: &Entry) -> String {
    let at = snapshot.chunk_at(key, entry);
    match entry.pack() {
        Some(_) => format!("{}, the chunk of tile {}", at.object, key.describe()),
        None => at.object,
    }
}

/// (length, CRC-32C) of each frame of a chunk.
type FrameSums = Vec<(u32, u32)>;

/// Checks the object an index entry points to: a chunk (present, size and checksum as the
/// entry says, decodes), a time block (that too, and it holds what its steps' tiles hold),
/// or a step record (present, size and checksum, parses, and names
/// the instant its tick has). Returns what the content digest counts of it: a chunk's
/// frames, a record as one frame.
fn check_object(snapshot: &Snapshot, key: &TileKey, entry: &Entry) -> Result<FrameSums> {
    if key.is_time_block() {
        return super::time_blocks::check(snapshot, key, entry);
    }
    let Some(t) = key.recorded_step() else {
        let head = snapshot.check_chunk(key, entry)?;
        return Ok(frame_sums(&head, entry));
    };
    let record = StepRecord::read(&**snapshot.storage(), key, entry)?;
    let object = key.object_key(entry.seq, snapshot.manifest().chunk_naming());
    let Some(spec) = &snapshot.manifest().time else {
        return Err(Error::InvalidInput(format!(
            "{object}: a step record in a store without a time axis"
        )));
    };
    let instant = spec.axis()?.instant(t)?.to_string();
    if record.time != instant {
        return Err(Error::InvalidInput(format!(
            "{object}: damaged step record: it says {} but its tick {t} is {instant}",
            record.time
        )));
    }
    Ok(vec![(entry.size, entry.crc)])
}

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

/// What a directory a command is to change or delete turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    /// A store with a manifest that reads.
    Committed,
    /// What a creation that never committed leaves: a gridstore lock, and nothing but
    /// objects a creation writes.
    UnfinishedCreation,
}

/// Checks that `root` is a gridstore store before `command` (`rm`, `gc`, `repair`,
/// `rollback`) changes or deletes anything in it. A directory that merely holds a file
/// named `gridstore.json` or `writer.lock` is not one: its manifest must read as a
/// manifest, or (without one) its lock as a lock and its other entries as what a creation
/// writes. The error says what is wrong and that nothing was changed.
pub fn check_store_to_change(root: &Path, command: &str) -> Result<StoreState> {
    let refuse = |detail: String| Error::StoreNotFound {
        path: root.to_path_buf(),
        detail: format!("{detail}; nothing was removed or changed by `gridstore {command}`"),
    };
    crate::storage::check_writable(root, &format!("run `gridstore {command}` on it"))?;
    if crate::storage::is_vsi_path(root) {
        return check_store_on_object_storage(root, command);
    }
    let dir = LocalStorage::new(root);
    match dir.root_is_dir() {
        Ok(true) => {}
        Ok(false) => return Err(refuse("it is a file, not a store directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse("it does not exist".into()))
        }
        Err(e) => return Err(Error::io(root, "opening", e)),
    }
    match dir.entry_kind(MANIFEST_KEY) {
        Ok(EntryKind::File) => {
            check_manifest_reads(&dir, root, command)?;
            Ok(StoreState::Committed)
        }
        Ok(kind) => Err(refuse(format!(
            "its {MANIFEST_KEY} is {}, not a file",
            kind.describe()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match unfinished_creation(&dir) {
            Ok(()) => Ok(StoreState::UnfinishedCreation),
            Err(why) => Err(refuse(format!(
                "it has no {MANIFEST_KEY}, and is not what an interrupted creation leaves \
                 ({why}). If it is a store, restore its manifest from snapshots/; if not, \
                 delete it yourself"
            ))),
        },
        Err(e) => Err(Error::io(root.join(MANIFEST_KEY), "opening", e)),
    }
}

/// [`check_store_to_change`] on object storage, where a store is its manifest: one that
/// reads is a store; without one, nothing is a store there.
fn check_store_on_object_storage(root: &Path, command: &str) -> Result<StoreState> {
    let storage = crate::storage::open(root);
    if storage
        .read_at_most(MANIFEST_KEY, MAX_MANIFEST_LEN)?
        .is_none()
    {
        return Err(Error::StoreNotFound {
            path: root.to_path_buf(),
            detail: format!(
                "it has no {MANIFEST_KEY}; nothing was removed or changed by `gridstore \
                 {command}`"
            ),
        });
    }
    check_manifest_reads(&*storage, root, command)?;
    Ok(StoreState::Committed)
}

/// Reads the manifest through the storage layer (which bounds what it reads) and parses it.
fn check_manifest_reads(storage: &dyn Storage, root: &Path, command: &str) -> Result<()> {
    let path = root.join(MANIFEST_KEY);
    let bytes = storage
        .read_at_most(MANIFEST_KEY, MAX_MANIFEST_LEN)?
        .unwrap_or_default();
    match Manifest::parse(&bytes, &path) {
        Ok(_) => Ok(()),
        Err(e @ Error::BadManifest { .. }) => Err(Error::InvalidInput(format!(
            "{e}. Nothing was removed or changed: `gridstore {command}` acts only on a store \
             whose manifest reads; if {} is not a store, delete it yourself",
            root.display()
        ))),
        Err(e) => Err(e),
    }
}

/// Deletes a store. Refuses anything that is not a store, a store being written, and a
/// path that is a symbolic link (deleting through it would remove what it points to, and
/// removing only the link is not deleting the store).
pub fn remove_store(root: &Path, wait: LockWait) -> Result<()> {
    if crate::storage::is_vsi_path(root) {
        return remove_store_on_object_storage(root);
    }
    let dir = LocalStorage::new(root);
    if let Some(target) = dir.root_link_target() {
        return Err(Error::InvalidInput(format!(
            "{} is a symbolic link to {}; nothing was removed. To delete the store, run \
             `gridstore rm` on {} itself; to drop only the link, delete it with rm",
            root.display(),
            target.display(),
            target.display()
        )));
    }
    let state = check_store_to_change(root, "rm")?;
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(root));
    let lock = WriterLock::acquire(storage, "gridstore rm", wait)?;
    // Remove the manifest first: from then on the directory is no store, even if removing
    // the rest is interrupted.
    if state == StoreState::Committed {
        dir.remove_file(MANIFEST_KEY)?;
    }
    // Symbolic links inside the store are removed without being followed.
    dir.remove_all()?;
    drop(lock); // its file went with the directory
    Ok(())
}

/// Deletes a store on object storage: its manifest first (from then on it is no store, and
/// writers in flight fail to commit), then every object under it.
fn remove_store_on_object_storage(root: &Path) -> Result<()> {
    check_store_to_change(root, "rm")?;
    let storage = crate::storage::open(root);
    storage.delete(MANIFEST_KEY)?;
    for name in storage.list("")? {
        match storage.list(&format!("{name}/"))?.is_empty() {
            true => storage.delete(&name)?,
            false => storage.delete_prefix(&format!("{name}/"))?,
        }
    }
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
    if crate::storage::is_vsi_path(root) {
        check_store_to_change(root, "repair")?;
        return Err(Error::InvalidInput(format!(
            "{}: nothing to repair on object storage: writers there take no lock, and \
             `gridstore gc` removes what writers that died left once their claims are older \
             than its grace period (--grace)",
            root.display()
        )));
    }
    // A store, before a lock is taken in it.
    let unfinished = check_store_to_change(root, "repair")? == StoreState::UnfinishedCreation;
    let dir = LocalStorage::new(root);
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(root));
    let lock = WriterLock::acquire(storage.clone(), "gridstore repair", wait)?;
    let recovered = lock.recovered().cloned();
    if unfinished && !dir.exists(MANIFEST_KEY) {
        dir.remove_all()?;
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

/// Whether `name` is a directory a store may hold before its first commit (besides its
/// lock and the temporaries of its manifest and lock): one a write puts its objects under,
/// or the snapshots'.
fn written_before_first_commit(name: &str) -> bool {
    WRITE_PREFIXES
        .iter()
        .chain([&SNAPSHOT_PREFIX])
        .any(|prefix| prefix.strip_suffix('/') == Some(name))
}

/// True for a directory left by a store creation that never committed: it has a writer
/// lock that reads as one, no manifest, and nothing but objects a creation writes.
pub fn is_unfinished_creation(root: &Path) -> bool {
    let dir = LocalStorage::new(root);
    !dir.exists(MANIFEST_KEY) && unfinished_creation(&dir).is_ok()
}

/// Checks that the store directory `dir` (which has no manifest) holds only what a
/// creation writes: `Err` says what else it holds.
fn unfinished_creation(dir: &LocalStorage) -> std::result::Result<(), String> {
    match dir.entry_kind(LOCK_KEY) {
        Ok(EntryKind::File) => {}
        Ok(kind) => return Err(format!("its {LOCK_KEY} is {}", kind.describe())),
        Err(_) => return Err(format!("it has no {LOCK_KEY}")),
    }
    let bytes = read_small(dir, LOCK_KEY, MAX_LOCK_BYTES)
        .map_err(|e| format!("its {LOCK_KEY} cannot be read: {e}"))?;
    LockInfo::parse(&bytes)
        .map_err(|why| format!("its {LOCK_KEY} is not a gridstore lock: {why}"))?;
    let entries = dir
        .entries()
        .map_err(|e| format!("it cannot be listed: {e}"))?;
    let temporaries = [format!(".{MANIFEST_KEY}."), format!(".{LOCK_KEY}.")];
    for entry in entries {
        let entry = entry.map_err(|e| format!("it cannot be listed: {e}"))?;
        let name = entry.name();
        let name = name.to_string_lossy();
        let kind = entry.kind().map_err(|e| format!("{name}: {e}"))?;
        let expected = if written_before_first_commit(&name) {
            kind == EntryKind::Directory
        } else {
            kind == EntryKind::File
                && (name == LOCK_KEY || temporaries.iter().any(|t| name.starts_with(t.as_str())))
        };
        if !expected {
            return Err(format!(
                "it holds {} \"{}\", which no gridstore creation writes",
                kind.describe(),
                printable(&name)
            ));
        }
    }
    Ok(())
}

/// The content of file `key` of at most `most` bytes; a longer one is an error, unread.
fn read_small(dir: &LocalStorage, key: &str, most: u64) -> std::io::Result<Vec<u8>> {
    let bytes = dir.read_start(key, most + 1)?;
    if bytes.len() as u64 > most {
        return Err(std::io::Error::other(format!(
            "it is larger than any lock ({most} bytes)"
        )));
    }
    Ok(bytes)
}
