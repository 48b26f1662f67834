//! Where a store's objects live.
//!
//! The store talks to its objects through the small [`Storage`] trait: whole-object reads
//! and writes by key, ranged reads, one atomic replace for the manifest, and listing for
//! maintenance only (opening and reading never list). Keys are `/`-separated relative
//! paths. The trait maps one to one onto object storage (GET, ranged GET, PUT, conditional
//! PUT, DELETE, LIST). Backends: [`LocalStorage`], files under a directory, whose writers
//! take a lock file; and [`VsiStorage`], GDAL's virtual file systems (`/vsis3/`, `/vsigs/`,
//! `/vsiaz/`, `/vsicurl/`, ...), whose writers commit optimistically by conditional writes
//! where the backend has them (`/vsis3/`, `/vsiaz/`) and which is read-only elsewhere; and
//! [`MemoryStorage`], objects in memory with object-storage semantics and injected faults,
//! for tests of the commit protocol. [`open`] picks one for a path.

mod local;
mod memory;
mod vsi;
mod vsi_azure;
mod vsi_fresh;

use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

pub use local::{DirEntry, Entries, EntryKind, LocalStorage};
pub use memory::{Fault, FaultRule, MemoryStorage, StorageOp};
pub use vsi::{is_vsi_path, VsiStorage};

/// Refuses to write to the store at `root` when its storage cannot take a safe commit
/// (HTTP, or object storage without tested conditional writes): `doing` says what was
/// asked, as in "append to it".
pub fn check_writable(root: &Path, doing: &str) -> Result<()> {
    if is_vsi_path(root) && !vsi::writes_conditionally(root) {
        return Err(vsi::read_only(root, doing));
    }
    Ok(())
}

/// Waits a little, more after each lost race (`round` from 0), and at random, so that
/// writers that lost a race for an object together (in other processes, or other threads
/// of this one) do not race again together.
pub fn back_off(round: u32) {
    use std::hash::{BuildHasher, RandomState};
    // A hasher seeded afresh each time, fed the time and the thread: a random number.
    let random = RandomState::new().hash_one((
        std::time::SystemTime::now(),
        std::thread::current().id(),
        std::process::id(),
    ));
    let ceiling_ms = 20u64 << round.min(6);
    std::thread::sleep(std::time::Duration::from_millis(random % ceiling_ms));
}

/// The storage of the store at `root`: GDAL's virtual file systems for a path they own
/// (`/vsis3/bucket/dem.gridstore`, `/vsicurl/https://...`), else the local disk.
pub fn open(root: &Path) -> Arc<dyn Storage> {
    if is_vsi_path(root) {
        Arc::new(VsiStorage::new(root))
    } else {
        Arc::new(LocalStorage::new(root))
    }
}

/// How writers of a store on a storage make their commits safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commits {
    /// One writer at a time, under the lock file `writer.lock`; the manifest is replaced by
    /// an atomic rename (local disk).
    Locked,
    /// Writers run at once without a lock; each makes its commit by a conditional write of
    /// the manifest, and starts over from the new state when another commit came first
    /// (object storage; docs/FORMAT.md §7).
    Optimistic,
}

/// An object's version as the storage names it (the ETag on object storage): what a
/// conditional write compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub String);

/// The condition of a conditional write.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// The object must not exist (`If-None-Match: *`).
    Absent,
    /// The object must still be at this version (`If-Match`).
    At(&'a Version),
}

/// What a conditional write did.
#[derive(Debug)]
pub enum Written {
    Done,
    /// The condition did not hold, and nothing was written.
    Refused,
    /// The write failed, and whether it took place is not known (a lost response, or a
    /// backend that does not say why a write failed): the caller reads the object back.
    Unknown(Error),
}

pub trait Storage: Send + Sync {
    /// Where the store is, for messages.
    fn location(&self) -> &Path;

    /// Reads a whole object; `Ok(None)` when it does not exist. For objects the store
    /// knows no bound for (a lock); objects it does know one for are read with
    /// [`read_at_most`](Storage::read_at_most).
    fn read(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Reads a whole object of at most `max_len` bytes; `Ok(None)` when it does not exist.
    /// A longer object is damaged: an error, and nothing of it is read.
    fn read_at_most(&self, key: &str, max_len: usize) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        Ok(self.read_into(key, max_len, &mut buf)?.then_some(buf))
    }

    /// [`read_at_most`](Storage::read_at_most) into `buf` (replacing its content), so hot
    /// read paths can reuse one buffer. Returns false when the object does not exist.
    fn read_into(&self, key: &str, max_len: usize, buf: &mut Vec<u8>) -> Result<bool>;

    /// Reads up to `len` bytes of an object from `offset` into `buf` (replacing its
    /// content; fewer where the object ends). Returns false when the object does not exist.
    fn read_range(&self, key: &str, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<bool> {
        let Some(all) = self.read(key)? else {
            return Ok(false);
        };
        let start = (offset as usize).min(all.len());
        buf.clear();
        buf.extend_from_slice(&all[start..(start + len).min(all.len())]);
        Ok(true)
    }

    /// Writes a new object (creating any parent "directories"). Not atomic: only objects no
    /// reader can reach yet are written this way. An object already at `key` is an error,
    /// never overwritten: every object is written once, under a name no other has had.
    fn write(&self, key: &str, data: &[u8]) -> Result<()>;

    /// Writes a new object made of `parts` one after the other: bytes, or ranges of
    /// existing objects, which a backend may copy without reading them (a level update
    /// keeps most of a chunk as it was). Like [`write`](Storage::write) otherwise.
    fn write_parts(&self, key: &str, parts: &[Part<'_>]) -> Result<()> {
        let mut data = Vec::new();
        let mut range = Vec::new();
        for part in parts {
            match part {
                Part::Bytes(b) => data.extend_from_slice(b),
                Part::Copy { key, offset, len } => {
                    if !self.read_range(key, *offset, *len, &mut range)? || range.len() != *len {
                        return Err(Error::io(
                            self.location().join(key),
                            "copying from",
                            std::io::Error::from(IoKind::UnexpectedEof),
                        ));
                    }
                    data.extend_from_slice(&range);
                }
            }
        }
        self.write(key, &data)
    }

    /// Creates an object only if it does not exist; `Ok(false)` when it already does.
    fn create_new(&self, key: &str, data: &[u8]) -> Result<bool>;

    /// Replaces object `key` with `new` only if it still holds exactly `expected`, and
    /// returns whether it did (taking over a dead writer's lock: two writers that both
    /// saw it stale must not both take it). On object storage, a `PUT` with `If-Match`.
    fn claim(&self, key: &str, expected: &[u8], new: &[u8]) -> Result<bool>;

    /// Replaces an object atomically and durably: a reader sees the old or the new content,
    /// never a mix, and after a crash the new content survives if this returned `Ok`.
    fn replace(&self, key: &str, data: &[u8]) -> Result<()>;

    /// A [`replace`](Storage::replace) in two halves, for a commit: this half writes what
    /// will replace `key` so that the next [`sync`](Storage::sync) makes it durable with
    /// everything else the commit wrote; [`publish`](Storage::publish) then only puts it in
    /// place. The commit point waits for one fsync fewer. Dropped unpublished, it is
    /// discarded.
    fn stage(&self, key: &str, data: &[u8]) -> Result<Staged> {
        Ok(Staged {
            key: key.to_string(),
            data: data.to_vec(),
            file: None,
        })
    }

    /// Puts a [`stage`](Storage::stage)d object in place, atomically and durably as
    /// `replace` does.
    fn publish(&self, staged: Staged) -> Result<()> {
        self.replace(&staged.key, &staged.data)
    }

    /// Deletes an object; deleting a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// Deletes every object under `prefix` (a key ending in `/`).
    fn delete_prefix(&self, prefix: &str) -> Result<()>;

    /// Lists the keys directly under `prefix`, without the prefix. For maintenance only.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Makes every object written so far durable. Called before a commit publishes them.
    fn sync(&self) -> Result<()>;

    /// Whether every read is a request over the network, whose count matters more than
    /// the bytes it brings (object storage, HTTP): writes there make larger packs and put
    /// a copy of the index root in the manifest.
    fn reads_by_request(&self) -> bool {
        false
    }

    /// The most bytes one object may be written with here, if there is such a bound.
    fn max_object_bytes(&self) -> Option<usize> {
        None
    }

    /// How writers commit on this storage.
    fn commits(&self) -> Commits {
        Commits::Locked
    }

    /// Reads a whole object of at most `max_len` bytes with its version, for a
    /// conditional write of it; `Ok(None)` when it does not exist. Storages whose writers
    /// commit optimistically have it.
    fn read_versioned(&self, key: &str, _max_len: usize) -> Result<Option<(Vec<u8>, Version)>> {
        Err(Error::NotSupported(format!(
            "{}: {key}: this storage keeps no object versions",
            self.location().display()
        )))
    }

    /// Writes `data` to `key` if `expect` holds. Storages whose writers commit
    /// optimistically have it.
    fn write_if(&self, key: &str, _data: &[u8], _expect: Expect<'_>) -> Written {
        Written::Unknown(Error::NotSupported(format!(
            "{}: {key}: this storage has no conditional writes",
            self.location().display()
        )))
    }
}

/// An object written by [`Storage::stage`], waiting for [`Storage::publish`].
pub struct Staged {
    key: String,
    /// The content, for a backend that writes it when publishing.
    data: Vec<u8>,
    /// A local temporary file holding the content, removed if never published.
    file: Option<PathBuf>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A piece of an object written by [`Storage::write_parts`].
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    Bytes(&'a [u8]),
    /// `len` bytes of object `key` from `offset`.
    Copy {
        key: &'a str,
        offset: u64,
        len: usize,
    },
}
