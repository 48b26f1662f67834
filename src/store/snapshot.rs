//! A read-only view of one committed state of a store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use rayon::prelude::*;

use crate::chunk::{self, Chunk, Head, Location};
use crate::error::{Error, Result};
use crate::grid::{Layout, PixelRect, TileLoc};
use crate::index::{ChunkAt, Entry, IndexReader, TileKey, Tree};
use crate::manifest::{snapshot_key, Manifest, MANIFEST_KEY, MAX_MANIFEST_LEN};
use crate::storage::{self, LocalStorage, Storage};
use crate::tile::{fill_value, BandValidity, Tile};
use crate::with_sample_type;

use super::prefetch::{self, Fetched};

/// Decoded tiles kept per open snapshot, for reads that straddle tile edges.
pub const DEFAULT_TILE_CACHE_BYTES: usize = 64 << 20;
/// Index nodes kept per open snapshot (a node is at most about 52 KiB: 2048 children).
const CACHED_NODES: usize = 256;

pub struct Snapshot {
    storage: Arc<dyn Storage>,
    manifest: Manifest,
    layout: Option<Layout>,
    validity: Vec<BandValidity>,
    index: Arc<IndexReader>,
    tiles: Mutex<TileCache>,
    /// Chunks fetched ahead by [`Snapshot::with_prefetched`].
    fetched: Fetched,
}

impl Snapshot {
    /// Opens the current state of the store at `root`, or snapshot `id` of its history.
    /// Opens snapshot `id` (the current one when `None`) of the store at `root`: a local
    /// directory, or a path on GDAL's virtual file systems (`/vsis3/bucket/x.gridstore`).
    pub fn open(root: &Path, id: Option<u64>) -> Result<Snapshot> {
        if !storage::is_vsi_path(root) {
            check_store_dir(root)?;
        }
        Snapshot::open_in(storage::open(root), id)
    }

    pub fn open_in(storage: Arc<dyn Storage>, id: Option<u64>) -> Result<Snapshot> {
        let key = match id {
            Some(id) => snapshot_key(id),
            None => MANIFEST_KEY.to_string(),
        };
        let path = storage.location().join(&key);
        let found = storage.read_at_most(&key, MAX_MANIFEST_LEN)?;
        let bytes = found.ok_or_else(|| match id {
            Some(id) => Error::InvalidInput(format!(
                "{}: there is no snapshot {id} (it may have been removed by gc); \
                 `gridstore log` lists the snapshots",
                storage.location().display()
            )),
            None => no_manifest(storage.location()),
        })?;
        let manifest = Manifest::parse(&bytes, &path)?;
        let index = Arc::new(IndexReader::new(storage.clone(), CACHED_NODES));
        index.take_root_copy(&manifest.index, &path)?;
        Ok(Snapshot::from_parts(storage, manifest, index))
    }

    /// A view of `manifest`, sharing an index reader (and its cache) with other views.
    pub fn from_parts(
        storage: Arc<dyn Storage>,
        manifest: Manifest,
        index: Arc<IndexReader>,
    ) -> Snapshot {
        let cached = (DEFAULT_TILE_CACHE_BYTES / manifest.tile_bytes().max(1)).max(8);
        Snapshot {
            layout: manifest.layout(),
            validity: manifest.validity(),
            storage,
            manifest,
            index,
            tiles: Mutex::new(TileCache::new(cached)),
            fetched: Fetched::default(),
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// `None` for a store with no data yet.
    pub fn layout(&self) -> Option<&Layout> {
        self.layout.as_ref()
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn index(&self) -> &Arc<IndexReader> {
        &self.index
    }

    pub fn validity(&self) -> &[BandValidity] {
        &self.validity
    }

    pub fn location(&self) -> &Path {
        self.storage.location()
    }

    /// The index entry of a tile, if the tile is stored.
    pub fn entry(&self, key: &TileKey) -> Result<Option<Entry>> {
        self.index.get(Tree::of(&self.manifest), key)
    }

    /// The index entries of many tiles, in one walk of the index on this thread (see
    /// [`IndexReader::get_many`]).
    pub fn entries(&self, keys: &[TileKey]) -> Result<Vec<Option<Entry>>> {
        self.index.get_many(Tree::of(&self.manifest), keys)
    }

    /// The index entry of time step `t`'s record: `None` when the snapshot does not hold
    /// that step.
    pub fn step_entry(&self, t: u32) -> Result<Option<Entry>> {
        self.entry(&TileKey::step_record(t))
    }

    /// The record of time step `t`, if the snapshot holds it.
    pub fn step_record(&self, t: u32) -> Result<Option<super::StepRecord>> {
        let key = TileKey::step_record(t);
        match self.entry(&key)? {
            Some(e) => super::StepRecord::read(&*self.storage, &key, &e).map(Some),
            None => Ok(None),
        }
    }

    /// The ticks of the time steps held from `from` to `to` (inclusive), in order, at most
    /// `limit` of them.
    pub fn steps(&self, from: u32, to: u32, limit: usize) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        super::for_each_step(
            &self.index,
            Tree::of(&self.manifest),
            from,
            to,
            &mut |t, _| {
                out.push(t);
                out.len() < limit
            },
        )?;
        Ok(out)
    }

    /// Reads and decodes a stored tile; `None` when the tile holds no data.
    pub fn read_tile(&self, key: &TileKey) -> Result<Option<Tile>> {
        match self.entry(key)? {
            Some(e) => self.fetch(key, &e).map(Some),
            None => Ok(None),
        }
    }

    /// Where the chunk of `key` that `e` points to lies.
    pub fn chunk_at(&self, key: &TileKey, e: &Entry) -> ChunkAt {
        key.chunk_at(e, self.manifest.chunk_naming())
    }

    fn object_path(&self, key: &TileKey, e: &Entry) -> PathBuf {
        self.storage.location().join(self.chunk_at(key, e).object)
    }

    /// Reads the whole chunk `e` points to into `buf`; false when its object is missing.
    /// Only as much as the index records is read: a chunk of its own object that is longer
    /// is damaged, one in a pack ends where the entry says.
    fn read_chunk(&self, key: &TileKey, e: &Entry, buf: &mut Vec<u8>) -> Result<bool> {
        let at = self.chunk_at(key, e);
        if let Some(bytes) = self.fetched.take(&at, e.size as usize) {
            buf.clear();
            buf.extend_from_slice(&bytes);
            return Ok(true);
        }
        match e.pack() {
            Some(_) => self
                .storage
                .read_range(&at.object, at.offset, e.size as usize, buf),
            None => self.storage.read_into(&at.object, e.size as usize, buf),
        }
    }

    /// Runs `read`, a read of the chunks of `tiles` (each with its index entry), after
    /// fetching those that lie close together in packs, neighbours in one request each and
    /// the requests in parallel; what `read` does not take is let go of after. A request
    /// that fails leaves its chunks to be fetched one by one, which reports the failure.
    pub fn with_prefetched<T>(
        &self,
        tiles: &[(TileKey, Entry)],
        read: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        use rayon::prelude::*;
        let at: Vec<_> = tiles
            .iter()
            .map(|(k, e)| (self.chunk_at(k, e), *e))
            .collect();
        let spans = prefetch::spans(&at);
        spans.par_iter().for_each(|s| {
            let mut bytes = Vec::new();
            let read = self
                .storage
                .read_range(&s.object, s.start, s.len as usize, &mut bytes);
            if let Ok(true) = read {
                self.fetched.keep(s, &bytes);
            }
        });
        let result = read();
        self.fetched.forget(&spans);
        result
    }

    /// Fetches and decodes the chunk an entry points to, checking it against the entry.
    pub fn fetch(&self, key: &TileKey, e: &Entry) -> Result<Tile> {
        self.with_chunk(key, e, |c| c.decode())
    }

    /// Fetches, checks and decodes the chunk an entry points to, and returns its head:
    /// everything `gridstore verify` asks of a chunk.
    pub fn check_chunk(&self, key: &TileKey, e: &Entry) -> Result<Head> {
        self.with_chunk(key, e, |c| c.decode().map(|_| c.head().clone()))
    }

    /// The head of a stored tile's chunk, checked against its own checksum and the index
    /// entry, for reading the chunk in part ([`read_chunk_range`]); `None` when the tile
    /// holds no data.
    ///
    /// [`read_chunk_range`]: Snapshot::read_chunk_range
    pub fn read_head(&self, key: &TileKey) -> Result<Option<ChunkRef>> {
        match self.entry(key)? {
            Some(e) => self.head_of(key, &e).map(Some),
            None => Ok(None),
        }
    }

    /// [`Snapshot::read_head`] for a reader that goes on to read the chunk's blocks: a
    /// chunk of at most [`WHOLE_CHUNK_LEN`] bytes is read whole, in one request (its size
    /// is in the index), and its blocks are then taken from memory.
    pub fn open_chunk(&self, key: &TileKey) -> Result<Option<ChunkRef>> {
        match self.entry(key)? {
            Some(e) => self.chunk_ref(key, &e, WHOLE_CHUNK_LEN).map(Some),
            None => Ok(None),
        }
    }

    /// [`Snapshot::read_head`] of a tile whose index entry is known.
    pub fn head_of(&self, key: &TileKey, e: &Entry) -> Result<ChunkRef> {
        self.chunk_ref(key, e, 0)
    }

    /// The head of the chunk of `key`, read with its first [`chunk::HEAD_PROBE_LEN`] bytes,
    /// or whole when it is at most `whole_up_to` bytes long.
    fn chunk_ref(&self, key: &TileKey, e: &Entry, whole_up_to: usize) -> Result<ChunkRef> {
        let e = *e;
        let ChunkAt { object, offset } = self.chunk_at(key, &e);
        let path = self.object_path(key, &e);
        let expected = self.manifest.chunk_shape();
        check_entry_size(&e, &expected, &path)?;
        let mut bytes = Vec::new();
        let size = e.size as usize;
        let probe = match size <= whole_up_to {
            true => size,
            false => chunk::HEAD_PROBE_LEN.min(size),
        };
        if !self
            .storage
            .read_range(&object, offset, probe, &mut bytes)?
        {
            return Err(Error::corrupt(path, "chunk object is missing"));
        }
        if let Some(len) = Head::len_from(&bytes).filter(|len| *len > bytes.len()) {
            // The head lies inside the object, whose length the index records.
            if len > e.size as usize {
                return Err(Error::corrupt(
                    path,
                    format!(
                        "the chunk head claims {len} bytes, more than the {} bytes the index \
                         records for the whole chunk",
                        e.size
                    ),
                ));
            }
            self.storage.read_range(&object, offset, len, &mut bytes)?;
        }
        let head = Head::parse(&bytes, &expected, &path)?;
        if head.object_len() != e.size as usize {
            return Err(Error::corrupt(
                path,
                format!(
                    "chunk of {} bytes does not match the index ({} bytes)",
                    head.object_len(),
                    e.size
                ),
            ));
        }
        check_base_against_entry(&head, &e, &path)?;
        let whole = (bytes.len() == size).then(|| Arc::<[u8]>::from(bytes));
        Ok(ChunkRef {
            key: *key,
            seq: e.seq,
            object,
            offset,
            packed: e.pack().is_some(),
            path,
            head,
            whole,
        })
    }

    /// `len` bytes from `offset` of a chunk, or of its base; a chunk that ends before is
    /// damaged.
    pub fn read_chunk_range(
        &self,
        c: &ChunkRef,
        at: Location,
        offset: usize,
        len: usize,
    ) -> Result<Vec<u8>> {
        let (object, start, whose) = match (at, c.head.base()) {
            (Location::Base, Some(base)) => (
                c.key.object_key(base, self.manifest.chunk_naming()),
                0,
                format!(", which {} keeps frames in,", c.path.display()),
            ),
            _ => (c.object.clone(), c.offset, String::new()),
        };
        let mut bytes = Vec::new();
        let found = match (&c.whole, object == c.object) {
            (Some(whole), true) => {
                let end = offset.saturating_add(len).min(whole.len());
                bytes.extend_from_slice(&whole[offset.min(end)..end]);
                true
            }
            _ => self
                .storage
                .read_range(&object, start + offset as u64, len, &mut bytes)?,
        };
        if !found || bytes.len() != len {
            return Err(Error::corrupt(
                self.storage.location().join(&object),
                format!("chunk object{whose} is missing or cut short"),
            ));
        }
        Ok(bytes)
    }

    /// Fetches a chunk into a reused per-thread buffer, checks it against its index entry,
    /// fetches the part of its base it keeps frames in, if any, and hands the chunk to `f`.
    fn with_chunk<T>(
        &self,
        key: &TileKey,
        e: &Entry,
        f: impl FnOnce(&Chunk<'_>) -> Result<T>,
    ) -> Result<T> {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
            static BASE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with(|buf| {
            let mut bytes = buf.borrow_mut();
            let path = self.object_path(key, e);
            let expected = self.manifest.chunk_shape();
            check_entry_size(e, &expected, &path)?;
            // Read only as much as the index records: a longer object is damaged.
            if !self.read_chunk(key, e, &mut bytes)? {
                return Err(Error::corrupt(path, "chunk object is missing"));
            }
            check_against_entry(&bytes, e, &path)?;
            let chunk = Chunk::parse(&bytes, &expected, &path)?;
            check_base_against_entry(chunk.head(), e, &path)?;
            let (Some(base), Some(span)) = (chunk.head().base(), chunk.head().base_span()) else {
                return f(&chunk);
            };
            BASE.with(|held| {
                let mut held = held.borrow_mut();
                let base_key = key.object_key(base, self.manifest.chunk_naming());
                let base_path = self.storage.location().join(&base_key);
                let found =
                    self.storage
                        .read_range(&base_key, span.start as u64, span.len(), &mut held)?;
                if !found || held.len() != span.len() {
                    return Err(Error::corrupt(
                        &base_path,
                        format!(
                            "chunk object is missing or cut short: {} keeps frames in it",
                            path.display()
                        ),
                    ));
                }
                f(&chunk.with_base(&held, span.start, &base_path))
            })
        })
    }

    /// Tiles through the decoded-tile cache, `None` for those that hold no data. The index
    /// entries of the tiles not cached are resolved first, on this thread; their chunks are
    /// then read and decoded in parallel.
    fn cached_tiles(&self, keys: &[TileKey]) -> Result<Vec<Option<Arc<Tile>>>> {
        let mut tiles = vec![None; keys.len()];
        let mut missing = Vec::new();
        {
            let mut cache = self.tiles.lock().expect("poisoned");
            for (i, k) in keys.iter().enumerate() {
                match cache.get(k) {
                    Some(t) => tiles[i] = Some(t.clone()),
                    None => missing.push(i),
                }
            }
        }
        let wanted: Vec<TileKey> = missing.iter().map(|&i| keys[i]).collect();
        let entries = self.entries(&wanted)?;
        let fetch = |(key, entry): (&TileKey, &Option<Entry>)| -> Result<Option<Arc<Tile>>> {
            let Some(e) = entry else { return Ok(None) };
            let tile = Arc::new(self.fetch(key, e)?);
            self.tiles.lock().expect("poisoned").put(*key, tile.clone());
            Ok(Some(tile))
        };
        let fetched: Vec<Option<Arc<Tile>>> = if wanted.len() > 1 {
            wanted
                .par_iter()
                .zip(&entries)
                .map(fetch)
                .collect::<Result<_>>()?
        } else {
            wanted
                .iter()
                .zip(&entries)
                .map(fetch)
                .collect::<Result<_>>()?
        };
        for (i, t) in missing.into_iter().zip(fetched) {
            tiles[i] = t;
        }
        Ok(tiles)
    }

    /// Decodes the whole tile `key`, whose index entry is `entry`, straight into `data`
    /// (and `mask`), tile-sized buffers in the layout of [`Snapshot::read_region`]; a tile
    /// without data is filled as missing.
    pub fn read_tile_into(
        &self,
        key: &TileKey,
        entry: Option<Entry>,
        data: &mut [u8],
        mask: Option<&mut [u8]>,
    ) -> Result<()> {
        match entry {
            Some(e) => self.with_chunk(key, &e, |c| c.decode_into(data, mask)),
            None => {
                let ts = self.manifest.grid.tile_size as usize;
                self.fill_missing(data, mask, ts * ts);
                Ok(())
            }
        }
    }

    /// Reads a rectangle of `level` pixels of `pyramid` at tick `time` into `data` (band-sequential,
    /// `rect.width() * rect.height()` samples per band, the store's data type) and, if
    /// given, the validity mask into `mask` (255 data, 0 none). Pixels without data get the
    /// band's fill value. Tiles are decoded in parallel.
    pub fn read_region(
        &self,
        time: u32,
        pyramid: u8,
        level: u8,
        rect: PixelRect,
        data: &mut [u8],
        mut mask: Option<&mut [u8]>,
    ) -> Result<()> {
        let (w, h) = (rect.width() as usize, rect.height() as usize);
        let dsize = self.manifest.data_type.size();
        let bands = self.manifest.bands.len();
        assert_eq!(data.len(), w * h * bands * dsize, "data buffer size");
        let ts = self.manifest.grid.tile_size;
        let range = rect.tiles(level, ts);
        let keys: Vec<TileKey> = range
            .iter()
            .map(|loc| TileKey::new(time, pyramid, loc))
            .collect();
        // A request that is exactly one tile (GDAL's blocks when the dataset is aligned on
        // the tiles) decodes straight into the caller's buffer, without a cache: GDAL's
        // block cache already keeps it.
        if keys.len() == 1 && rect == keys[0].loc().pixel_rect(ts) {
            return self.read_tile_into(&keys[0], self.entry(&keys[0])?, data, mask);
        }
        self.fill_missing(data, mask.as_deref_mut(), w * h);
        let tiles = self.cached_tiles(&keys)?;
        for (key, tile) in keys.iter().zip(&tiles) {
            if let Some(tile) = tile {
                copy_tile_into(tile, key.loc(), ts, &rect, data, mask.as_deref_mut());
            }
        }
        Ok(())
    }

    fn fill_missing(&self, data: &mut [u8], mask: Option<&mut [u8]>, n: usize) {
        let dsize = self.manifest.data_type.size();
        with_sample_type!(self.manifest.data_type, T => {
            for (b, v) in self.validity.iter().enumerate() {
                let plane: &mut [T] = bytemuck::cast_slice_mut(&mut data[b * n * dsize..(b + 1) * n * dsize]);
                plane.fill(fill_value::<T>(v));
            }
        });
        if let Some(m) = mask {
            m.fill(0);
        }
    }
}

/// Copies the part of `tile` (at `loc`) that falls in `rect` into the region buffers.
fn copy_tile_into(
    tile: &Tile,
    loc: TileLoc,
    tile_size: u32,
    rect: &PixelRect,
    data: &mut [u8],
    mask: Option<&mut [u8]>,
) {
    let tr = loc.pixel_rect(tile_size);
    let part = tr.intersect(rect);
    if part.is_empty() {
        return;
    }
    let ts = tile_size as usize;
    let (w, h) = (rect.width() as usize, rect.height() as usize);
    let dsize = tile.dtype.size();
    let row_bytes = part.width() as usize * dsize;
    let (tx, ty) = ((part.x0 - tr.x0) as usize, (part.y0 - tr.y0) as usize);
    let (rx, ry) = ((part.x0 - rect.x0) as usize, (part.y0 - rect.y0) as usize);
    for b in 0..tile.bands {
        let src = tile.band_bytes(b);
        let dst = &mut data[b * w * h * dsize..(b + 1) * w * h * dsize];
        for y in 0..part.height() as usize {
            let s = ((ty + y) * ts + tx) * dsize;
            let d = ((ry + y) * w + rx) * dsize;
            dst[d..d + row_bytes].copy_from_slice(&src[s..s + row_bytes]);
        }
    }
    if let Some(mask) = mask {
        // The mask describes the bands without nodata; a tile without one is all data.
        for y in 0..part.height() as usize {
            let d = (ry + y) * w + rx;
            let dst = &mut mask[d..d + part.width() as usize];
            match &tile.mask {
                Some(m) => {
                    let s = (ty + y) * ts + tx;
                    dst.copy_from_slice(&m[s..s + part.width() as usize]);
                }
                None => dst.fill(255),
            }
        }
    }
}

/// Whether a store (its manifest) is at `root`, on local disk or object storage. Only
/// whether it is there: whether it reads is for the open to find out.
pub fn store_exists(root: &Path) -> Result<bool> {
    if storage::is_vsi_path(root) {
        let storage = storage::open(root);
        return Ok(storage
            .read_at_most(MANIFEST_KEY, MAX_MANIFEST_LEN)?
            .is_some());
    }
    Ok(LocalStorage::new(root).exists(MANIFEST_KEY))
}

/// Checks that `root` is a store (a directory with a manifest) without reading it: enough
/// before taking a lock there, which reads the manifest anyway once it holds the lock.
pub fn check_is_store(root: &Path) -> Result<()> {
    check_store_dir(root)?;
    match LocalStorage::new(root).entry_kind(MANIFEST_KEY) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(no_manifest(root)),
        Err(e) => Err(Error::io(root.join(MANIFEST_KEY), "opening", e)),
    }
}

fn no_manifest(root: &Path) -> Error {
    Error::StoreNotFound {
        path: root.to_path_buf(),
        detail: format!(
            "{MANIFEST_KEY} is missing; if a creation was interrupted, `gridstore repair` \
             removes what it left, then create the store again"
        ),
    }
}

/// Explains what is wrong with a path that should be a store directory.
fn check_store_dir(root: &Path) -> Result<()> {
    match LocalStorage::new(root).root_is_dir() {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::StoreNotFound {
            path: root.to_path_buf(),
            detail: "it is a file, not a store directory".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::StoreNotFound {
            path: root.to_path_buf(),
            detail: "it does not exist".into(),
        }),
        Err(e) => Err(Error::io(root, "opening", e)),
    }
}

/// A stored chunk known by its head, to be read in part.
pub struct ChunkRef {
    pub key: TileKey,
    /// The snapshot that wrote it.
    pub seq: u64,
    /// Its object key, and where in that object it starts.
    pub object: String,
    pub offset: u64,
    /// Whether it is in a pack (so no base of another chunk).
    pub packed: bool,
    /// Where it is, for messages.
    pub path: PathBuf,
    pub head: Head,
    /// The whole object, when it was read whole: its blocks are then read from here.
    pub whole: Option<Arc<[u8]>>,
}

/// Chunks up to this size are read whole by [`Snapshot::open_chunk`]: one request for the
/// head and the blocks, where reading the head and then the blocks takes two on object
/// storage.
pub const WHOLE_CHUNK_LEN: usize = 1 << 20;

/// Checks that the chunk size an index entry records is one a tile of this store can have,
/// before anything is read or allocated for it.
fn check_entry_size(e: &Entry, expected: &chunk::Expected, path: &Path) -> Result<()> {
    let max = expected.max_chunk_len();
    if e.size as usize <= max {
        return Ok(());
    }
    Err(Error::corrupt(
        path,
        format!(
            "the index records a chunk of {} bytes, more than any chunk of this store's tiles \
             can take ({max})",
            e.size
        ),
    ))
}

/// Checks that a fetched chunk object is the one its index entry names.
fn check_against_entry(bytes: &[u8], e: &Entry, path: &Path) -> Result<()> {
    if bytes.len() == e.size as usize && chunk::stored_checksum(bytes) == Some(e.crc) {
        return Ok(());
    }
    Err(Error::corrupt(
        path,
        format!(
            "chunk does not match the index ({} bytes with checksum {:08x}; the index says {} \
             bytes with {:08x})",
            bytes.len(),
            chunk::stored_checksum(bytes).unwrap_or(0),
            e.size,
            e.crc
        ),
    ))
}

/// Checks that a chunk names the base its index entry names.
fn check_base_against_entry(head: &Head, e: &Entry, path: &Path) -> Result<()> {
    if head.base() == e.base() {
        return Ok(());
    }
    Err(Error::corrupt(
        path,
        format!(
            "chunk keeps frames in the chunk of snapshot {}, the index says {}",
            head.base().map_or("none".into(), |b| b.to_string()),
            e.base().map_or("none".into(), |b| b.to_string())
        ),
    ))
}

/// Decoded tiles, least recently used out first, up to `cap` of them. The map grows as
/// tiles come: a store of small tiles allows hundreds of thousands, and making room for
/// all of them up front would cost every open a large zeroed allocation.
struct TileCache {
    map: LruCache<TileKey, Arc<Tile>>,
    cap: usize,
}

impl TileCache {
    fn new(cap: usize) -> Self {
        TileCache {
            map: LruCache::unbounded(),
            cap: cap.max(1),
        }
    }

    fn get(&mut self, key: &TileKey) -> Option<&Arc<Tile>> {
        self.map.get(key)
    }

    fn put(&mut self, key: TileKey, tile: Arc<Tile>) {
        if self.map.len() >= self.cap && !self.map.contains(&key) {
            self.map.pop_lru();
        }
        self.map.put(key, tile);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DataType;

    #[test]
    fn the_tile_cache_keeps_the_most_recently_used_up_to_its_cap() {
        let tile = Arc::new(Tile::empty(DataType::Byte, &[], 16));
        let key = |c| TileKey::base(c, 0);
        let mut cache = TileCache::new(2);
        cache.put(key(1), tile.clone());
        cache.put(key(2), tile.clone());
        assert!(cache.get(&key(1)).is_some()); // 1 is now the most recent
        cache.put(key(3), tile.clone());
        assert!(cache.get(&key(2)).is_none(), "the least recently used goes");
        assert!(cache.get(&key(1)).is_some() && cache.get(&key(3)).is_some());
        cache.put(key(3), tile); // replacing does not evict
        assert!(cache.get(&key(1)).is_some());
        assert_eq!(cache.map.len(), 2);
    }
}
