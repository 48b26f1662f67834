//! One write to a store, all or nothing.
//!
//! Commit protocol (docs/FORMAT.md has the full story and the failure cases):
//! 1. Hold `writer.lock`; the new snapshot id is the committed id + 1.
//! 2. Write new chunks as `chunks/<id>/...` and new index nodes as `index/<id>/...`. Nothing
//!    committed is ever overwritten, so readers of older snapshots are undisturbed.
//! 3. Write the new manifest as `snapshots/<id>.json`, make everything durable (`sync`).
//! 4. Replace `gridstore.json` with the new manifest atomically: this is the commit point.
//! 5. Release the lock.
//!
//! A write that stops anywhere before step 4 leaves the old state current; its objects are
//! all under id + 1 and are removed by the abort here, or by the next writer if the process
//! died.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::chunk;
use crate::error::{Error, Result};
use crate::index::{apply_changes, Entry, IndexReader, NodeWriter, TileKey, NODE_PREFIX};
use crate::manifest::{snapshot_key, IndexSpec, Manifest, SnapshotInfo, MANIFEST_KEY};
use crate::storage::{LocalStorage, Storage};
use crate::tile::Tile;

use super::lock::{LockWait, WriterLock};
use super::snapshot::Snapshot;

/// Everything needed to create a store: where, and its manifest without data.
pub struct NewStore {
    pub path: PathBuf,
    pub manifest: Manifest,
}

pub struct Transaction {
    storage: Arc<dyn Storage>,
    base: Option<Arc<Snapshot>>,
    index: Arc<IndexReader>,
    /// What `commit` publishes; writers update its extent and metadata as they go.
    pub manifest: Manifest,
    seq: u64,
    writer: String,
    changes: Mutex<BTreeMap<TileKey, Option<Entry>>>,
    lock: Option<WriterLock>,
    /// Set when this transaction made the store directory: an abort removes it.
    created_dir: Option<PathBuf>,
    finished: bool,
}

impl Transaction {
    /// Starts the write that creates a new store at `new.path`.
    pub fn create(new: NewStore, writer: &str) -> Result<Transaction> {
        let path = &new.path;
        let created_dir = prepare_new_store_dir(path)?;
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(path));
        let lock = match WriterLock::acquire(storage.clone(), writer, LockWait::Fail) {
            Ok(l) => l,
            Err(e) => {
                if let Some(dir) = &created_dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(e);
            }
        };
        let mut manifest = new.manifest;
        manifest.extent = None;
        manifest.index = IndexSpec {
            root: None,
            tiles: 0,
            bytes: 0,
        };
        Ok(Transaction {
            index: Arc::new(IndexReader::new(storage.clone(), 256)),
            storage,
            base: None,
            manifest,
            seq: 1,
            writer: writer.to_string(),
            changes: Mutex::new(BTreeMap::new()),
            lock: Some(lock),
            created_dir,
            finished: false,
        })
    }

    /// Starts a write to an existing store, from its latest committed state.
    pub fn begin(root: &Path, writer: &str, wait: LockWait) -> Result<Transaction> {
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(root));
        // Check that this is a store before taking a lock in it.
        Snapshot::open(root, None)?;
        let lock = WriterLock::acquire(storage.clone(), writer, wait)?;
        // Read the current state only now: another writer may have committed meanwhile.
        let base = Arc::new(Snapshot::open_in(storage.clone(), None)?);
        let manifest = base.manifest().clone();
        Ok(Transaction {
            index: base.index().clone(),
            seq: manifest.snapshot.id + 1,
            storage,
            base: Some(base),
            manifest,
            writer: writer.to_string(),
            changes: Mutex::new(BTreeMap::new()),
            lock: Some(lock),
            created_dir: None,
            finished: false,
        })
    }

    /// The committed state this write started from (`None` when creating).
    pub fn base(&self) -> Option<&Arc<Snapshot>> {
        self.base.as_ref()
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn location(&self) -> &Path {
        self.storage.location()
    }

    /// The entry a tile has in this write so far, or else in the base state.
    pub fn current_entry(&self, key: &TileKey) -> Result<Option<Entry>> {
        if let Some(e) = self.changes.lock().expect("poisoned").get(key) {
            return Ok(*e);
        }
        match &self.base {
            Some(b) => b.entry(key),
            None => Ok(None),
        }
    }

    /// Stores a tile, or records that it holds no data any more. Returns whether it holds
    /// data. Safe to call from many threads for different tiles.
    pub fn put_tile(&self, key: TileKey, tile: &Tile) -> Result<bool> {
        if tile.is_empty(&self.manifest.validity()) {
            if self.current_entry(&key)?.is_some() {
                self.changes.lock().expect("poisoned").insert(key, None);
            }
            return Ok(false);
        }
        let object = chunk::encode(tile, &self.manifest.encoding())?;
        self.storage.write(&key.object_key(self.seq), &object)?;
        let entry = Entry {
            seq: self.seq,
            size: object.len() as u32,
            crc: chunk::stored_checksum(&object).expect("encoded chunks have a trailer"),
        };
        self.changes
            .lock()
            .expect("poisoned")
            .insert(key, Some(entry));
        Ok(true)
    }

    /// Number of tiles written or removed so far.
    pub fn changed_tiles(&self) -> usize {
        self.changes.lock().expect("poisoned").len()
    }

    /// Publishes everything written, atomically. Returns the committed manifest.
    pub fn commit(mut self) -> Result<Manifest> {
        let changes: Vec<(TileKey, Option<Entry>)> =
            std::mem::take(&mut *self.changes.lock().expect("poisoned"))
                .into_iter()
                .collect();
        let root = self.base.as_ref().and_then(|b| b.manifest().index.root);
        let (mut tiles, mut bytes) = (
            self.manifest.index.tiles as i64,
            self.manifest.index.bytes as i64,
        );
        let (mut written, mut removed) = (0u64, 0u64);
        for (key, new) in &changes {
            let old = match &self.base {
                Some(b) => b.entry(key)?,
                None => None,
            };
            tiles += new.is_some() as i64 - old.is_some() as i64;
            bytes += new.map_or(0, |e| e.size as i64) - old.map_or(0, |e| e.size as i64);
            match new {
                Some(_) => written += 1,
                None => removed += 1,
            }
        }
        let mut nodes = NodeWriter::new(&*self.storage, &self.index, self.seq);
        let new_root = apply_changes(&self.index, root, &changes, &mut nodes)?;
        self.manifest.index = IndexSpec {
            root: new_root,
            tiles: tiles.max(0) as u64,
            bytes: bytes.max(0) as u64,
        };
        self.manifest.snapshot = SnapshotInfo {
            id: self.seq,
            parent: self.base.as_ref().map(|b| b.manifest().snapshot.id),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            writer: self.writer.clone(),
            tiles_written: written,
            tiles_removed: removed,
        };
        let json = self.manifest.to_json();
        self.storage.write(&snapshot_key(self.seq), &json)?;
        self.storage.sync()?;
        self.storage.replace(MANIFEST_KEY, &json)?;
        // Committed: from here on nothing may be rolled back.
        self.finished = true;
        if let Some(lock) = self.lock.take() {
            lock.release()?;
        }
        Ok(self.manifest.clone())
    }

    /// Drops everything written; the store stays as it was.
    pub fn abort(mut self) {
        self.discard();
    }

    fn discard(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(dir) = self.created_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        } else {
            let _ = self.storage.delete_prefix(&format!("chunks/{}/", self.seq));
            let _ = self
                .storage
                .delete_prefix(&format!("{NODE_PREFIX}{}/", self.seq));
            let _ = self.storage.delete(&snapshot_key(self.seq));
        }
        // The lock goes last, so no other writer starts while debris is being removed.
        self.lock.take();
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Makes sure `path` can become a new store. Returns the directory if this call made it.
fn prepare_new_store_dir(path: &Path) -> Result<Option<PathBuf>> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            if path.join(MANIFEST_KEY).exists() {
                return Err(Error::AlreadyExists {
                    path: path.to_path_buf(),
                    hint: "It is a gridstore; remove it first with `gridstore rm`, or write \
                           into it"
                        .into(),
                });
            }
            let leftovers = std::fs::read_dir(path)
                .map_err(|e| Error::io(path, "listing", e))?
                .count();
            if leftovers > 0 {
                return Err(Error::AlreadyExists {
                    path: path.to_path_buf(),
                    hint: "It is a directory that is not empty and holds no gridstore; choose \
                           another name or empty it"
                        .into(),
                });
            }
            Ok(None)
        }
        Ok(_) => Err(Error::AlreadyExists {
            path: path.to_path_buf(),
            hint: "It is a file; a store is a directory. Choose another name".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(path).map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    "creating the store directory (its parent directory does not exist)"
                } else {
                    "creating the store directory"
                };
                Error::io(path, hint, e)
            })?;
            Ok(Some(path.to_path_buf()))
        }
        Err(e) => Err(Error::io(path, "creating the store directory", e)),
    }
}
