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
//!
//! On object storage there is no lock: writers claim their ids and commit by a conditional
//! write of the manifest, starting over from the new state when another came first
//! ([`super::optimistic`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::area::Area;
use crate::chunk::{self, Piece};
use crate::error::{Error, Result};
use crate::index::NODE_PREFIX;
use crate::index::{
    apply_changes, Entry, IndexReader, NodeWriter, TileKey, Tree, MAX_ROOT_COPY, WRITE_PREFIXES,
};
use crate::keys::SOURCE_PREFIX;
use crate::manifest::{
    snapshot_key, Checkpoint, IndexSpec, Manifest, SnapshotInfo, SourceListRef, MANIFEST_KEY,
    MAX_MANIFEST_LEN,
};
use crate::storage::{Commits, Expect, LocalStorage, Part, Storage, Version, Written};
use crate::tile::Tile;

use super::claims;
use super::optimistic::{self, MAX_REBASES};
use super::packs::{self, Held, Packer, HELD};

use super::lock::{check_next_id_is_free, read_lock, snapshot_after, LockWait, WriterLock};
use super::snapshot::{ChunkRef, Snapshot};
use super::steps::{refresh_counts, StepRecord};

/// Everything needed to create a store: where, and its manifest without data.
pub struct NewStore {
    pub path: PathBuf,
    pub manifest: Manifest,
}

struct Restored {
    snapshot: u64,
    index: IndexSpec,
    tiles_written: u64,
    tiles_removed: u64,
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
    /// What this write read, one record per source id, for the snapshot's source list.
    sources: Vec<serde_json::Value>,
    /// Set by `restore`: the state this write brings back, and how many tiles that changes.
    restored: Option<Restored>,
    checkpoint: Option<Checkpoint>,
    lock: Option<WriterLock>,
    /// The time step (tick) the tiles written go to: 0 in a store without a time axis.
    tick: u32,
    /// Ticks whose committed tiles this write removed ([`Transaction::remove_step`]): tiles
    /// written there start from nothing, not from the committed state.
    cleared: std::collections::HashSet<u32>,
    /// The time steps this write changed, for the snapshot's record (set at publish).
    step_changes: Option<crate::manifest::StepChanges>,
    /// Set when this transaction made the store directory: an abort removes it.
    created_dir: Option<PathBuf>,
    /// Set on a storage without a lock (object storage): how this write commits.
    optimistic: Option<Optimistic>,
    /// The chunks held back to be stored in packs (a store of format 4 on).
    packer: Packer,
    finished: bool,
}

/// What a write without a lock knows of its commit.
struct Optimistic {
    /// The version of the manifest this write started from; `None` when creating.
    version: Option<Version>,
    /// The ids this write claimed, oldest first; it commits as the last.
    claimed: Vec<u64>,
}

/// How an attempt to publish the manifest ended.
enum Published {
    Done(Manifest),
    /// Another writer committed first: the current manifest and its version.
    Lost(Manifest, Version),
}

impl Transaction {
    /// Starts the write that creates a new store at `new.path`.
    pub fn create(new: NewStore, writer: &str) -> Result<Transaction> {
        let path = &new.path;
        crate::storage::check_writable(path, "create a store there")?;
        let storage = crate::storage::open(path);
        if storage.commits() == Commits::Optimistic {
            return Transaction::create_optimistic(new, storage, writer);
        }
        let created_dir = prepare_new_store_dir(path)?;
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(path));
        let lock = match WriterLock::acquire(storage.clone(), writer, LockWait::Fail) {
            Ok(l) => l,
            Err(e) => {
                if let Some(dir) = &created_dir {
                    let _ = LocalStorage::new(dir).remove_all();
                }
                return Err(e);
            }
        };
        let mut txn = Transaction::start(storage, None, without_data(new.manifest), 1, writer);
        txn.lock = Some(lock);
        txn.created_dir = created_dir;
        Ok(txn)
    }

    /// Starts the creation of a store on object storage: it commits only if no store is
    /// there by then.
    fn create_optimistic(
        new: NewStore,
        storage: Arc<dyn Storage>,
        writer: &str,
    ) -> Result<Transaction> {
        if storage
            .read_at_most(MANIFEST_KEY, MAX_MANIFEST_LEN)?
            .is_some()
        {
            return Err(Error::AlreadyExists {
                path: new.path,
                hint: "It is a gridstore; remove it first with `gridstore rm`, or write into \
                       it"
                .into(),
            });
        }
        let seq = claims::claim_next(&*storage, 0, writer)?;
        let mut txn = Transaction::start(storage, None, without_data(new.manifest), seq, writer);
        txn.optimistic = Some(Optimistic {
            version: None,
            claimed: vec![seq],
        });
        Ok(txn)
    }

    /// A write by `writer` under id `seq`, from the committed state `base` (none when
    /// creating), with no lock or claim yet.
    fn start(
        storage: Arc<dyn Storage>,
        base: Option<Arc<Snapshot>>,
        manifest: Manifest,
        seq: u64,
        writer: &str,
    ) -> Transaction {
        let index = match &base {
            Some(b) => b.index().clone(),
            None => Arc::new(IndexReader::new(storage.clone(), 256)),
        };
        let packer = Packer::for_storage(&*storage);
        Transaction {
            index,
            storage,
            base,
            manifest,
            seq,
            writer: writer.to_string(),
            changes: Mutex::new(BTreeMap::new()),
            restored: None,
            checkpoint: None,
            lock: None,
            tick: 0,
            cleared: Default::default(),
            step_changes: None,
            sources: Vec::new(),
            created_dir: None,
            optimistic: None,
            packer,
            finished: false,
        }
    }

    /// Starts a write to an existing store, from its latest committed state.
    pub fn begin(root: &Path, writer: &str, wait: LockWait) -> Result<Transaction> {
        crate::storage::check_writable(root, "write to it")?;
        let storage = crate::storage::open(root);
        if storage.commits() == Commits::Optimistic {
            return Transaction::begin_optimistic(storage, writer);
        }
        Transaction::begin_locked(root, storage, writer, wait)
    }

    /// Starts a write to the store in `storage` (any backend; for tests of the commit
    /// protocol against injected faults).
    pub fn begin_in(
        storage: Arc<dyn Storage>,
        writer: &str,
        wait: LockWait,
    ) -> Result<Transaction> {
        match storage.commits() {
            Commits::Optimistic => Transaction::begin_optimistic(storage, writer),
            Commits::Locked => {
                let lock = WriterLock::acquire(storage.clone(), writer, wait)?;
                Transaction::continue_under(storage, lock, writer)
            }
        }
    }

    /// Starts the creation of a store in `storage`, which commits optimistically (object
    /// storage, or a backend for tests).
    pub fn create_in(
        storage: Arc<dyn Storage>,
        new: NewStore,
        writer: &str,
    ) -> Result<Transaction> {
        Transaction::create_optimistic(new, storage, writer)
    }

    fn begin_locked(
        root: &Path,
        storage: Arc<dyn Storage>,
        writer: &str,
        wait: LockWait,
    ) -> Result<Transaction> {
        // Check that this is a store before taking a lock in it; its manifest is read once
        // the lock is held.
        super::snapshot::check_is_store(root)?;
        let lock = WriterLock::acquire(storage.clone(), writer, wait)?;
        Transaction::continue_under(storage, lock, writer)
    }

    /// A write under a lock already held, from the state committed now.
    fn continue_under(
        storage: Arc<dyn Storage>,
        lock: WriterLock,
        writer: &str,
    ) -> Result<Transaction> {
        // Read the current state only now: another writer may have committed meanwhile.
        let base = Arc::new(Snapshot::open_in(storage.clone(), None)?);
        let manifest = base.manifest().clone();
        // Nothing is written under an id that is used up, or that a snapshot can reach
        // (the objects there would be overwritten, and removed again if this write fails).
        let seq = snapshot_after(&*storage, manifest.snapshot.id)?;
        check_next_id_is_free(&*storage, Some(&manifest), seq)?;
        let mut txn = Transaction::start(storage, Some(base), manifest, seq, writer);
        txn.lock = Some(lock);
        Ok(txn)
    }

    /// A write without a lock (object storage), from the state committed now, under an id
    /// it claims.
    fn begin_optimistic(storage: Arc<dyn Storage>, writer: &str) -> Result<Transaction> {
        let Some((manifest, version)) = optimistic::read_committed(&*storage)? else {
            return Err(Error::StoreNotFound {
                path: storage.location().to_path_buf(),
                detail: format!("{MANIFEST_KEY} is missing"),
            });
        };
        let index = Arc::new(IndexReader::new(storage.clone(), 256));
        let base = Arc::new(Snapshot::from_parts(
            storage.clone(),
            manifest.clone(),
            index,
        ));
        let seq = claims::claim_next(&*storage, manifest.snapshot.id, writer)?;
        let mut txn = Transaction::start(storage, Some(base), manifest, seq, writer);
        txn.optimistic = Some(Optimistic {
            version: Some(version),
            claimed: vec![seq],
        });
        Ok(txn)
    }

    /// The writer that died holding the lock this write took over, if any; its unfinished
    /// write was removed.
    pub fn recovered(&self) -> Option<&super::lock::Recovered> {
        self.lock.as_ref()?.recovered()
    }

    /// The committed state this write started from (`None` when creating).
    pub fn base(&self) -> Option<&Arc<Snapshot>> {
        self.base.as_ref()
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The time step whose tiles this write writes now.
    pub fn tick(&self) -> u32 {
        self.tick
    }

    /// The committed state the tiles of the current tick are laid over and their levels
    /// updated from: the base, unless this write removed the tick's committed tiles (a step
    /// being replaced starts from nothing).
    pub fn committed_for_tick(&self) -> Option<&Arc<Snapshot>> {
        if self.cleared.contains(&self.tick) {
            return None;
        }
        self.base.as_ref()
    }

    /// Makes the tiles written from now on those of time step `t`.
    pub fn set_tick(&mut self, t: u32) {
        self.tick = t;
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

    /// Reads back a tile as this write has it so far: the chunk it stored, or else the
    /// base state's; `None` when neither holds the tile.
    pub fn read_current(&self, key: &TileKey) -> Result<Option<Tile>> {
        let Some(mut entry) = self.current_entry(key)? else {
            return Ok(None);
        };
        if entry.pack == HELD {
            if let Some(tile) = self.read_held(key)? {
                return Ok(Some(tile));
            }
            // Its pack was written meanwhile, and its entry says where it is now.
            entry = self
                .current_entry(key)?
                .filter(|e| e.pack != HELD)
                .ok_or_else(|| {
                    Error::corrupt(self.location(), "a chunk held for a pack was lost")
                })?;
        }
        let tile = match &self.base {
            Some(base) => base.fetch(key, &entry)?,
            // A store being created has no committed state: its chunks are read through a
            // view of the manifest being written (the chunk layout does not change in a
            // write).
            None => Snapshot::from_parts(
                self.storage.clone(),
                self.manifest.clone(),
                self.index.clone(),
            )
            .fetch(key, &entry)?,
        };
        Ok(Some(tile))
    }

    /// Decodes the chunk held back for `key` (or being written in a pack); `None` once its
    /// pack is written.
    fn read_held(&self, key: &TileKey) -> Result<Option<Tile>> {
        let path = self
            .location()
            .join(key.object_key(self.seq, self.manifest.chunk_naming()));
        match self.packer.held(key) {
            Some(bytes) => chunk::decode(&bytes, &self.manifest.chunk_shape(), &path).map(Some),
            None => Ok(None),
        }
    }

    /// Stores a tile, or records that it holds no data any more. Returns whether it holds
    /// data. Safe to call from many threads for different tiles.
    pub fn put_tile(&self, key: TileKey, tile: &Tile) -> Result<bool> {
        if tile.is_empty(&self.manifest.validity()) {
            if self.current_entry(&key)?.is_some() {
                self.drop_own_chunk(key)?;
                self.changes.lock().expect("poisoned").insert(key, None);
            }
            return Ok(false);
        }
        let parts = chunk::encode_parts(tile, &self.manifest.encoding(), None)?;
        self.store_parts(key, &parts, None)?;
        Ok(true)
    }

    /// Stores a tile that holds data as `chunk`, the chunk (holding all its frames) it was
    /// encoded into.
    pub fn put_encoded(&self, key: TileKey, chunk: &chunk::Parts) -> Result<bool> {
        self.store_parts(key, chunk, None)?;
        Ok(true)
    }

    /// Stores a tile that holds data and differs from its committed chunk `committed` only
    /// in the area `changed`: only the blocks of that area are encoded; the new chunk keeps
    /// the others where they are, or has the storage copy them without reading them (a
    /// level update above a small write).
    pub fn put_changed_area(
        &self,
        key: TileKey,
        tile: &Tile,
        committed: &ChunkRef,
        changed: Area,
    ) -> Result<()> {
        let enc = self.manifest.encoding();
        let reuse = chunk::Reuse {
            old: &committed.head,
            old_seq: committed.seq,
            changed,
            referable: !committed.packed,
        };
        let parts = chunk::encode_parts(tile, &enc, Some(reuse))?;
        self.store_parts(key, &parts, Some(committed))
    }

    /// Writes a chunk as its parts: its own bytes as they lie in their buffers, and the
    /// ranges it copies from `committed` (the chunk it updates) or that chunk's base.
    fn store_parts(
        &self,
        key: TileKey,
        parts: &chunk::Parts,
        committed: Option<&ChunkRef>,
    ) -> Result<()> {
        let naming = self.manifest.chunk_naming();
        if naming.has_packs() && committed.is_none() && parts.base == 0 && parts.copies_nothing() {
            return self.hold(key, parts);
        }
        let trailer = parts.crc.to_le_bytes();
        let old_base = committed
            .and_then(|c| c.head.base())
            .map(|b| key.object_key(b, naming));
        fn copy<'p>(object: Option<(&'p str, u64)>, r: &Range<usize>) -> Part<'p> {
            let (key, start) =
                object.expect("only an update copies ranges, of its chunk or its base");
            Part::Copy {
                key,
                offset: start + r.start as u64,
                len: r.len(),
            }
        }
        let mut list = Vec::with_capacity(parts.pieces.len() + 1);
        for piece in &parts.pieces {
            list.push(match piece {
                Piece::Old(r) => copy(committed.map(|c| (c.object.as_str(), c.offset)), r),
                Piece::OldBase(r) => copy(old_base.as_deref().map(|b| (b, 0)), r),
                fresh => Part::Bytes(parts.bytes(fresh).expect("not a copy")),
            });
        }
        list.push(Part::Bytes(&trailer));
        self.drop_own_chunk(key)?;
        self.storage
            .write_parts(&key.object_key(self.seq, naming), &list)?;
        self.record(key, parts.len, parts.crc, parts.base);
        Ok(())
    }

    /// Holds a chunk back to store it in a pack, and writes its block's pack once the
    /// block's held chunks are large enough.
    fn hold(&self, key: TileKey, parts: &chunk::Parts) -> Result<()> {
        self.drop_own_chunk(key)?;
        let held = Held {
            key,
            bytes: parts.object(&[], &[]).into(),
            crc: parts.crc,
        };
        let entry = Entry {
            seq: self.seq,
            size: parts.len as u32,
            crc: parts.crc,
            pack: HELD,
            ..Entry::default()
        };
        self.changes
            .lock()
            .expect("poisoned")
            .insert(key, Some(entry));
        match self.packer.hold(held) {
            Some(full) => self.write_pack(self.packer.next_number()?, full),
            None => Ok(()),
        }
    }

    /// Writes `chunks` as one pack and records where each lies in it. A tile stored again
    /// meanwhile keeps its newer entry.
    fn write_pack(&self, pack: u32, chunks: Vec<Held>) -> Result<()> {
        let list: Vec<Part<'_>> = chunks.iter().map(|c| Part::Bytes(&c.bytes)).collect();
        self.storage
            .write_parts(&crate::keys::pack(self.seq, pack), &list)?;
        let mut changes = self.changes.lock().expect("poisoned");
        for (key, entry) in packs::entries(self.seq, pack, &chunks) {
            let still_held = changes
                .get(&key)
                .copied()
                .flatten()
                .is_some_and(|e| e.pack == HELD && (e.size, e.crc) == (entry.size, entry.crc));
            if still_held {
                changes.insert(key, Some(entry));
            }
        }
        drop(changes);
        self.packer.written(&chunks);
        Ok(())
    }

    /// Writes every chunk still held as packs, a block's to a pack, numbered in index
    /// order; at once on object storage. After it, no entry of this write is held.
    fn write_held(&self) -> Result<()> {
        let packs = self
            .packer
            .take_all()
            .into_iter()
            .map(|g| Ok((self.packer.next_number()?, g)))
            .collect::<Result<Vec<_>>>()?;
        match self.optimistic.is_some() {
            true => {
                use rayon::prelude::*;
                packs
                    .into_par_iter()
                    .try_for_each(|(n, g)| self.write_pack(n, g))?
            }
            false => packs
                .into_iter()
                .try_for_each(|(n, g)| self.write_pack(n, g))?,
        }
        let changes = self.changes.lock().expect("poisoned");
        match changes
            .iter()
            .find(|(_, e)| e.is_some_and(|e| e.pack == HELD))
        {
            Some((key, _)) => Err(Error::corrupt(
                self.location(),
                format!(
                    "the chunk of tile {} was never written to a pack",
                    key.describe()
                ),
            )),
            None => Ok(()),
        }
    }

    /// Deletes the chunk this write stored for `key` earlier, if any, before it stores
    /// another or none: an edit parks a tile as a chunk, then may change it again. No
    /// reader can reach that chunk, and objects are never written over.
    fn drop_own_chunk(&self, key: TileKey) -> Result<()> {
        self.packer.forget(&key);
        let earlier = self.changes.lock().expect("poisoned").get(&key).copied();
        match earlier {
            // A chunk in a pack stays there, unreachable once replaced.
            Some(Some(e)) if self.is_own(e.seq) && e.pack().is_none() => self
                .storage
                .delete(&key.object_key(e.seq, self.manifest.chunk_naming())),
            _ => Ok(()),
        }
    }

    /// True for the ids this write writes under: its own, and those it claimed before it
    /// started over from a newer state.
    fn is_own(&self, seq: u64) -> bool {
        seq == self.seq
            || self
                .optimistic
                .as_ref()
                .is_some_and(|o| o.claimed.contains(&seq))
    }

    /// Records that this write holds time step `t` (a store with a time axis), with what
    /// its record says. Its tiles are written as any tile is, under tick `t`.
    pub fn put_step(&self, t: u32, record: &StepRecord) -> Result<()> {
        let key = TileKey::step_record(t);
        let bytes = record.encode();
        self.drop_own_chunk(key)?;
        self.storage.write(
            &key.object_key(self.seq, self.manifest.chunk_naming()),
            &bytes,
        )?;
        self.record(key, bytes.len(), crc32c::crc32c(&bytes), 0);
        Ok(())
    }

    /// Stores a time block (docs/FORMAT.md §8) under `key`, a time-block key.
    pub fn put_time_block(
        &self,
        key: TileKey,
        object: &chunk::time_block::BlockObject,
    ) -> Result<()> {
        let trailer = object.crc.to_le_bytes();
        let mut list: Vec<Part<'_>> = object.pieces().into_iter().map(Part::Bytes).collect();
        list.push(Part::Bytes(&trailer));
        self.drop_own_chunk(key)?;
        self.storage.write_parts(
            &key.object_key(self.seq, self.manifest.chunk_naming()),
            &list,
        )?;
        self.record(key, object.len, object.crc, 0);
        Ok(())
    }

    /// Removes the time blocks of every block of ticks this write touches (a step or tile
    /// written or removed there), so that no reader of the new snapshot sees a series
    /// that disagrees with its steps. The next compaction makes them again.
    fn drop_stale_time_blocks(&self) -> Result<()> {
        let (Some(base), Some(d)) = (&self.base, super::time_blocks::series_block(&self.manifest))
        else {
            return Ok(());
        };
        let touched: Vec<u32> = {
            let changes = self.changes.lock().expect("poisoned");
            changes.keys().filter_map(|k| k.tick()).collect()
        };
        if touched.is_empty() {
            return Ok(());
        }
        for key in super::time_blocks::stale(base, d, &touched)? {
            let mut changes = self.changes.lock().expect("poisoned");
            changes.entry(key).or_insert(None);
        }
        Ok(())
    }

    /// Removes time step `t`: its record and every tile of it, in every pyramid and level.
    /// Earlier snapshots keep them.
    pub fn remove_step(&mut self, t: u32) -> Result<()> {
        self.cleared.insert(t);
        let (lo, hi) = (TileKey::first_of_tick(t), TileKey::first_of_tick(t + 1));
        let mut keys = vec![TileKey::step_record(t)];
        if let Some(base) = &self.base {
            base.index()
                .range(Tree::of(base.manifest()), &lo, &hi, &mut |k, _| {
                    keys.push(k);
                    Ok(true)
                })?;
        }
        let own: Vec<TileKey> = {
            let changes = self.changes.lock().expect("poisoned");
            changes.range(lo..hi).map(|(k, _)| *k).collect()
        };
        keys.extend(own);
        for key in keys {
            self.drop_own_chunk(key)?;
            let present = self.current_entry(&key)?.is_some();
            if present {
                self.changes.lock().expect("poisoned").insert(key, None);
            }
        }
        Ok(())
    }

    /// Records a chunk this write stored, for the index.
    fn record(&self, key: TileKey, size: usize, crc: u32, base: u64) {
        let entry = Entry {
            seq: self.seq,
            size: size as u32,
            crc,
            base,
            ..Entry::default()
        };
        self.changes
            .lock()
            .expect("poisoned")
            .insert(key, Some(entry));
    }

    /// Records the sources this write read (STAC Items with a string `id`, see
    /// [`super::sources`]), kept with the snapshot it commits. A record replaces an earlier
    /// one of the same id.
    pub fn record_sources(&mut self, records: impl IntoIterator<Item = serde_json::Value>) {
        for record in records {
            let id = record.get("id").cloned();
            self.sources.retain(|r| r.get("id") != id.as_ref());
            self.sources.push(record);
        }
    }

    /// Number of tiles written or removed so far.
    pub fn changed_tiles(&self) -> usize {
        self.changes.lock().expect("poisoned").len()
    }

    /// Makes this write bring back the state of an earlier snapshot (`gridstore rollback`)
    /// instead of changing tiles: its index, extent and metadata become current again.
    /// `tiles_written` and `tiles_removed` say how many tiles that changes.
    pub fn restore(&mut self, earlier: &Manifest, tiles_written: u64, tiles_removed: u64) {
        assert!(
            self.changed_tiles() == 0,
            "a restoring write changes no tiles itself"
        );
        let snapshot = self.manifest.snapshot.clone();
        self.manifest = earlier.clone();
        self.manifest.snapshot = snapshot;
        self.restored = Some(Restored {
            snapshot: earlier.snapshot.id,
            index: earlier.index.clone(),
            tiles_written,
            tiles_removed,
        });
    }

    /// Records how far a multi-commit ingest has got, in the snapshot this write makes.
    pub fn set_checkpoint(&mut self, checkpoint: Checkpoint) {
        self.checkpoint = Some(checkpoint);
    }

    /// Publishes everything written, atomically. Returns the committed manifest.
    pub fn commit(mut self) -> Result<Manifest> {
        let committed = self.publish()?;
        self.release_claims();
        if let Some(lock) = self.lock.take() {
            lock.release()?;
        }
        Ok(committed)
    }

    /// Removes this write's claims once it is committed. One left behind (the request
    /// failed) only keeps gc off the id for its grace period.
    fn release_claims(&mut self) {
        if let Some(o) = self.optimistic.take() {
            for id in o.claimed {
                let _ = claims::release(&*self.storage, id);
            }
        }
    }

    /// Commits, and starts the next write from the new state without letting go of the
    /// lock, so no other writer comes in between (an ingest's checkpoints).
    pub fn commit_and_continue(mut self) -> Result<(Manifest, Transaction)> {
        let committed = self.publish()?;
        if self.optimistic.is_some() {
            self.release_claims();
            let next = Transaction::begin_optimistic(self.storage.clone(), &self.writer)?;
            return Ok((committed, next));
        }
        let lock = self.lock.take().expect("a live transaction holds the lock");
        let next = Transaction::continue_under(self.storage.clone(), lock, &self.writer)?;
        Ok((committed, next))
    }

    /// Writes the index and the manifest and makes the manifest current. From its return
    /// on, nothing may be rolled back.
    fn publish(&mut self) -> Result<Manifest> {
        if let Some(r) = self.restored.take() {
            self.manifest.index = r.index;
            return match self.publish_manifest(
                r.tiles_written,
                r.tiles_removed,
                Some(r.snapshot),
            )? {
                Published::Done(m) => Ok(m),
                Published::Lost(m, _) => Err(self.lost_to(&m, "a rollback goes on no other state")),
            };
        }
        self.drop_stale_time_blocks()?;
        let mut rebases = 0;
        loop {
            match self.publish_changes()? {
                Published::Done(m) => return Ok(m),
                Published::Lost(current, version) => {
                    rebases += 1;
                    if rebases > MAX_REBASES {
                        return Err(self.lost_to(
                            &current,
                            &format!("other writers committed first {MAX_REBASES} times in a row"),
                        ));
                    }
                    crate::storage::back_off(rebases);
                    self.rebase(current, version)?;
                }
            }
        }
    }

    /// The error for a write that gives up against the commit `current` of another.
    fn lost_to(&self, current: &Manifest, why: &str) -> Error {
        Error::Conflict(format!(
            "{}: another writer committed snapshot {} first, and {why}; nothing of this \
             write was committed. Run it again: it then starts from the new state",
            self.location().display(),
            current.snapshot.id
        ))
    }

    /// Starts this write over on top of `current`, which another writer committed since
    /// this write's base: its chunks stay, level tiles both changed are made again from
    /// their children, and the next try commits under a newly claimed id.
    fn rebase(&mut self, current: Manifest, version: Version) -> Result<()> {
        let Some(old) = self.base.take() else {
            return Err(self.lost_to(&current, "a new store cannot go on top of another"));
        };
        if !self.cleared.is_empty() {
            return Err(self.lost_to(&current, "this write replaces time steps"));
        }
        // The index nodes and the snapshot manifest of the last try were made for the old
        // state: of no use now.
        self.storage
            .delete_prefix(&crate::keys::write_dir(NODE_PREFIX, self.seq))?;
        self.storage.delete(&snapshot_key(self.seq))?;
        self.storage
            .delete_prefix(&crate::keys::write_dir(SOURCE_PREFIX, self.seq))?;
        let new = Arc::new(Snapshot::from_parts(
            self.storage.clone(),
            current.clone(),
            self.index.clone(),
        ));
        let changes = self.changes.lock().expect("poisoned").clone();
        let shared = optimistic::level_tiles_to_rebuild(&old, &new, &changes, &self.manifest)?;
        self.manifest = optimistic::merge_manifests(old.manifest(), &self.manifest, &current)?;
        let o = self
            .optimistic
            .as_mut()
            .expect("only optimistic writes start over");
        // Above every id of this write, so that each index node is newer than what it
        // points to.
        let after = o
            .claimed
            .iter()
            .copied()
            .fold(current.snapshot.id, u64::max);
        let seq = claims::claim_next(&*self.storage, after, &self.writer)?;
        o.claimed.push(seq);
        o.version = Some(version);
        self.seq = seq;
        self.base = Some(new);
        for key in shared {
            crate::pyramid::rebuild_from_children(self, key)?;
        }
        self.drop_stale_time_blocks()
    }

    /// Writes the index of every change and tries to commit it.
    fn publish_changes(&mut self) -> Result<Published> {
        self.write_held()?;
        let changes: Vec<(TileKey, Option<Entry>)> = self
            .changes
            .lock()
            .expect("poisoned")
            .iter()
            .map(|(k, e)| (*k, *e))
            .collect();
        let tree = match &self.base {
            Some(b) => Tree::of(b.manifest()),
            None => Tree {
                root: None,
                snapshot: 0,
            },
        };
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
        let write_nodes = || {
            let mut nodes = NodeWriter::new(&*self.storage, &self.index, self.seq);
            apply_changes(&self.index, tree, &changes, &mut nodes)
        };
        // The index nodes and the list of sources are new objects of their own. On object
        // storage, where each is a round trip, they are written at once; on disk one after
        // the other, so that a write that does not fit fails at the first that did not.
        let (new_root, sources) = match self.optimistic.is_some() {
            true => std::thread::scope(|scope| {
                let sources = scope.spawn(self.linked_sources());
                let root = write_nodes();
                let sources = sources
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                (root, sources)
            }),
            false => {
                let root = write_nodes()?;
                (Ok(root), self.linked_sources()())
            }
        };
        let new_root = new_root?;
        self.manifest.sources = sources?;
        self.refresh_steps(&changes, new_root)?;
        self.manifest.index = IndexSpec {
            root: new_root,
            tiles: tiles.max(0) as u64,
            bytes: bytes.max(0) as u64,
            root_copy: self.root_copy(new_root)?,
        };
        self.publish_manifest(written, removed, None)
    }

    /// The copy of the new root node the manifest carries on storage where every read is
    /// a request, when the root is small enough ([`MAX_ROOT_COPY`]).
    fn root_copy(&self, root: Option<crate::index::NodeRef>) -> Result<Option<String>> {
        let Some(root) = root.filter(|_| self.storage.reads_by_request()) else {
            return Ok(None);
        };
        let bytes = self.index.node_bytes(root)?;
        Ok((bytes.len() <= MAX_ROOT_COPY).then(|| crate::index::encode_root_copy(&bytes)))
    }

    /// Brings the time axis's step counts up to date with the step records `changes` adds
    /// and removes.
    fn refresh_steps(
        &mut self,
        changes: &[(TileKey, Option<Entry>)],
        root: Option<crate::index::NodeRef>,
    ) -> Result<()> {
        let Some(spec) = self.manifest.time.as_mut() else {
            return Ok(());
        };
        let (mut added, mut removed, mut written) = (Vec::new(), Vec::new(), Vec::new());
        for (key, new) in changes {
            let Some(t) = key.recorded_step() else {
                continue;
            };
            let old = match &self.base {
                Some(b) => b.entry(key)?,
                None => None,
            };
            match (old.is_some(), new.is_some()) {
                (false, true) => added.push(t),
                (true, false) => removed.push(t),
                _ => {}
            }
            if new.is_some() {
                written.push(t);
            }
        }
        if !written.is_empty() || !removed.is_empty() {
            let axis = spec.axis()?;
            let label = |t: Option<&u32>| t.map(|&t| axis.label(t)).transpose();
            self.step_changes = Some(crate::manifest::StepChanges {
                written: written.len() as u64,
                removed: removed.len() as u64,
                first: label(written.iter().min())?,
                last: label(written.iter().max())?,
            });
        }
        let tree = Tree {
            root,
            snapshot: self.seq,
        };
        refresh_counts(spec, &self.index, tree, &added, &removed)
    }

    /// What the manifest links to as the sources of its state: a new list of what this
    /// write recorded (written now), after the base's; else the base's, as it is now (after
    /// a rebase, the one the other writer left).
    fn linked_sources(&self) -> impl FnOnce() -> Result<Option<SourceListRef>> + Send + '_ {
        let carried = self
            .base
            .as_ref()
            .and_then(|b| b.manifest().sources.clone());
        let (storage, seq, sources) = (&*self.storage, self.seq, &self.sources);
        move || {
            Ok(match sources.is_empty() {
                true => carried,
                false => Some(super::sources::write(storage, seq, carried, sources)?),
            })
        }
    }

    fn publish_manifest(
        &mut self,
        tiles_written: u64,
        tiles_removed: u64,
        restores: Option<u64>,
    ) -> Result<Published> {
        self.manifest.snapshot = SnapshotInfo {
            id: self.seq,
            parent: self.base.as_ref().map(|b| b.manifest().snapshot.id),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            writer: self.writer.clone(),
            tiles_written,
            tiles_removed,
            restores,
            checkpoint: self.checkpoint.take(),
            steps: self.step_changes.take(),
        };
        self.manifest.check_before_commit()?;
        let json = self.manifest.to_json();
        self.storage.write(&snapshot_key(self.seq), &json)?;
        if self.optimistic.is_some() {
            return self.publish_conditionally(&json);
        }
        let manifest = self.storage.stage(MANIFEST_KEY, &json)?;
        self.storage.sync()?;
        if let Err(e) = self.storage.publish(manifest) {
            // The replace may have failed after the rename (syncing the directory): then
            // the write is current and its objects must stay.
            if self.storage.read(MANIFEST_KEY).ok().flatten().as_deref() == Some(&json[..]) {
                self.finished = true;
            }
            return Err(e);
        }
        // Committed: from here on nothing may be rolled back.
        self.finished = true;
        Ok(Published::Done(self.manifest.clone()))
    }

    /// Commits `json` by replacing the manifest only if it is still at the version this
    /// write started from (or, creating, only if there is none). When that fails, the
    /// manifest is read back: the commit may have landed all the same (a lost response).
    fn publish_conditionally(&mut self, json: &[u8]) -> Result<Published> {
        let o = self.optimistic.as_ref().expect("an optimistic write");
        let expect = match &o.version {
            Some(v) => Expect::At(v),
            None => Expect::Absent,
        };
        let failure = match self.storage.write_if(MANIFEST_KEY, json, expect) {
            Written::Done => None,
            Written::Refused => Some(None),
            Written::Unknown(e) => Some(Some(e)),
        };
        if let Some(error) = failure {
            let (landed, current) = match optimistic::landed(&*self.storage, &self.manifest) {
                Ok(found) => found,
                // A write that failed without saying why may be in: its objects must stay
                // (gc removes them once its claim is old, if it is not).
                Err(read) => match error {
                    Some(write) => {
                        self.finished = true;
                        return Err(self.outcome_unknown(write, read));
                    }
                    None => return Err(read),
                },
            };
            if !landed {
                return self.not_landed(error, current);
            }
        }
        self.finished = true;
        Ok(Published::Done(self.manifest.clone()))
    }

    /// The error for a commit whose manifest write failed without saying why (`write`),
    /// and whose read-back failed too (`read`): whether it is in is not known.
    fn outcome_unknown(&self, write: Error, read: Error) -> Error {
        Error::io(
            self.location().join(MANIFEST_KEY),
            "committing",
            std::io::Error::other(format!(
                "the manifest write failed ({write}), and so did reading it back to see \
                 whether the commit is in ({read}). The commit may be in: its objects are \
                 kept. `gridstore log` shows whether it is; if not, `gridstore gc` removes \
                 them once their claim is older than its grace period"
            )),
        )
    }

    /// What a conditional commit that did not land means, from the state now current.
    fn not_landed(
        &self,
        error: Option<Error>,
        current: Option<(Manifest, Version)>,
    ) -> Result<Published> {
        let started_from = self.optimistic.as_ref().and_then(|o| o.version.as_ref());
        let failed = || {
            error.unwrap_or_else(|| {
                Error::io(
                    self.location().join(MANIFEST_KEY),
                    "committing",
                    std::io::Error::other("the storage refused the write"),
                )
            })
        };
        match current {
            // Unchanged: the write failed for another reason than the condition.
            Some((_, v)) if Some(&v) == started_from => Err(failed()),
            None if started_from.is_none() => Err(failed()),
            Some(_) if started_from.is_none() => Err(Error::AlreadyExists {
                path: self.location().to_path_buf(),
                hint: "Another writer created a store there at the same time; write into it".into(),
            }),
            Some((m, v)) => Ok(Published::Lost(m, v)),
            None => Err(Error::StoreNotFound {
                path: self.location().to_path_buf(),
                detail: "the store was removed while this write was running".into(),
            }),
        }
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
        if let Some(o) = self.optimistic.take() {
            for seq in o.claimed {
                let _ = self.remove_objects_of(seq);
                let _ = claims::release(&*self.storage, seq);
            }
            return;
        }
        if let Some(dir) = self.created_dir.take() {
            let _ = LocalStorage::new(dir).remove_all();
        } else {
            for prefix in WRITE_PREFIXES {
                let _ = self
                    .storage
                    .delete_prefix(&crate::keys::write_dir(prefix, self.seq));
            }
            let _ = self.storage.delete(&snapshot_key(self.seq));
        }
        // The lock goes last, so no other writer starts while debris is being removed.
        self.lock.take();
    }
}

impl Transaction {
    /// Removes what this write put under id `seq`.
    fn remove_objects_of(&self, seq: u64) -> Result<()> {
        for prefix in WRITE_PREFIXES {
            self.storage
                .delete_prefix(&crate::keys::write_dir(prefix, seq))?;
        }
        self.storage.delete(&snapshot_key(seq))
    }
}

/// `manifest` as a new store has it before its first commit: no data.
fn without_data(mut manifest: Manifest) -> Manifest {
    manifest.extent = None;
    manifest.sources = None;
    manifest.index = IndexSpec {
        root: None,
        tiles: 0,
        bytes: 0,
        root_copy: None,
    };
    manifest
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Removes from a store directory without a lock the temporary files of a manifest or lock
/// that a killed creation was writing (`.writer.lock.<pid>.<n>.new`): only those of
/// processes that are gone, so that a creation killed before its lock was in place can be
/// run again.
fn remove_dead_temporaries(dir: &LocalStorage) -> Result<()> {
    dir.remove_files_where(super::lock::temporary_of_dead_process)
}

/// A creation of this store died before committing: empties the directory so the store
/// can be created afresh. Refused while the creating process is alive.
fn take_over_unfinished_creation(dir: &LocalStorage) -> Result<Option<PathBuf>> {
    let path = dir.location();
    let holder = read_lock(dir)?;
    if let Some(h) = holder.filter(|h| !h.is_stale()) {
        return Err(Error::Locked(format!(
            "{}: this store is being created by {}; wait for it to finish",
            path.display(),
            h.describe()
        )));
    }
    dir.remove_contents("removing what an interrupted creation left")?;
    Ok(Some(path.to_path_buf()))
}

/// Makes sure `path` can become a new store. Returns the directory if this call made it.
fn prepare_new_store_dir(path: &Path) -> Result<Option<PathBuf>> {
    let dir = LocalStorage::new(path);
    match dir.root_is_dir() {
        Ok(true) => {
            if dir.exists(MANIFEST_KEY) {
                return Err(Error::AlreadyExists {
                    path: path.to_path_buf(),
                    hint: "It is a gridstore; remove it first with `gridstore rm`, or write \
                           into it"
                        .into(),
                });
            }
            if super::maintenance::is_unfinished_creation(path) {
                return take_over_unfinished_creation(&dir);
            }
            remove_dead_temporaries(&dir)?;
            let leftovers = dir
                .entries()
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
        Ok(false) => Err(Error::AlreadyExists {
            path: path.to_path_buf(),
            hint: "It is a file; a store is a directory. Choose another name".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            dir.create_root().map_err(|e| {
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
