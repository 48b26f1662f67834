//! Writing level-0 (full-resolution) windows into a store, as GDAL's update mode does:
//! block by block and band by band, then a flush that commits everything written so far
//! in one transaction and refreshes the levels above the tiles it touched.
//!
//! Tiles being edited are kept decoded; past a memory budget the oldest are parked in the
//! transaction as chunks (invisible to readers until the commit) and decoded again if they
//! are written or read once more.
//!
//! The same session creates a new store for GDAL's `Create`: the store's description
//! (georeferencing, bands) may still change between writes, every written pixel holds data,
//! and the first commit makes the store, with the raster's whole size as its extent.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::dtype::Sample;
use crate::error::{Error, Result};
use crate::grid::{PixelRect, TileLoc};
use crate::index::TileKey;
use crate::manifest::Manifest;
use crate::pyramid::{levels_to_update, PyramidBuilder};
use crate::store::lock::LockWait;
use crate::store::{NewStore, Transaction};
use crate::tile::{fill_value, BandValidity, Tile};
use crate::with_sample_type;

/// How many bytes of decoded tiles an edit keeps in memory.
#[derive(Clone, Copy)]
struct Budget {
    /// Beyond this, the tiles written whole are parked in the transaction first: a writer
    /// going row by row (GDAL tools, rasterio) then holds about one row of tiles.
    whole_tiles_above: usize,
    /// Beyond this, the oldest tiles are parked.
    most: usize,
}

const BUDGET: Budget = Budget {
    whole_tiles_above: 64 << 20,
    most: 256 << 20,
};

pub struct Editor {
    root: PathBuf,
    writer: String,
    wait: LockWait,
    txn: Option<Transaction>,
    /// Edited tiles held decoded, and the order they were first held in.
    decoded: HashMap<TileLoc, Tile>,
    order: VecDeque<TileLoc>,
    /// Sample bytes of the decoded tiles.
    decoded_bytes: usize,
    budget: Budget,
    /// Every tile edited since the last commit, decoded or parked.
    dirty: BTreeSet<TileLoc>,
    /// Samples written into each decoded tile since it was decoded (overlapping writes
    /// count twice): a tile is taken as written whole once they reach its size.
    filled: HashMap<TileLoc, usize>,
    written: Option<PixelRect>,
    /// Set for a session that creates its store (GDAL's `Create`).
    creation: Option<Creation>,
}

/// What a session creating a store keeps besides its edits.
struct Creation {
    /// The raster's pixels, the new store's extent whatever is written.
    extent: PixelRect,
    /// The band validity of every nodata setting so far, oldest first: a tile made under
    /// an older one is brought up to date before it is written again or stored.
    validities: Vec<Vec<BandValidity>>,
    /// The validity (index in `validities`) each edited tile was made under.
    made_under: HashMap<TileLoc, usize>,
    /// True once the first commit has made the store.
    committed: bool,
}

impl Creation {
    fn current(&self) -> usize {
        self.validities.len() - 1
    }

    /// The validity `loc` was made under, when it is not the current one.
    fn stale(&self, loc: &TileLoc) -> Option<&[BandValidity]> {
        let at = *self.made_under.get(loc)?;
        (at != self.current()).then(|| self.validities[at].as_slice())
    }

    /// Re-reads the edited tile at `loc` under the current validity if it was made under
    /// an older one.
    fn bring_up_to_date(&mut self, loc: TileLoc, tile: &mut Tile) {
        if let Some(from) = self.stale(&loc) {
            tile.revalidate(from, &self.validities[self.current()]);
            self.made_under.insert(loc, self.current());
        }
    }
}

impl Editor {
    /// Starts an edit session on the store at `root`, taking the writer lock at once so a
    /// conflicting writer is reported when the dataset is opened, not at the first write.
    pub fn open(root: &Path, writer: &str, wait: LockWait) -> Result<Editor> {
        let txn = Transaction::begin(root, writer, wait)?;
        Ok(Editor {
            root: root.to_path_buf(),
            writer: writer.to_string(),
            wait,
            txn: Some(txn),
            decoded: HashMap::new(),
            order: VecDeque::new(),
            decoded_bytes: 0,
            budget: BUDGET,
            dirty: BTreeSet::new(),
            filled: HashMap::new(),
            written: None,
            creation: None,
        })
    }

    /// Starts a session that creates the store `new` describes, `extent` pixels large; the
    /// directory holds nothing readable until the first commit.
    pub fn create(new: NewStore, extent: PixelRect, writer: &str) -> Result<Editor> {
        let validity = new.manifest.validity();
        let root = new.path.clone();
        let txn = Transaction::create(new, writer)?;
        Ok(Editor {
            root,
            writer: writer.to_string(),
            wait: LockWait::Fail,
            txn: Some(txn),
            decoded: HashMap::new(),
            order: VecDeque::new(),
            decoded_bytes: 0,
            budget: BUDGET,
            dirty: BTreeSet::new(),
            filled: HashMap::new(),
            written: None,
            creation: Some(Creation {
                extent,
                validities: vec![validity],
                made_under: HashMap::new(),
                committed: false,
            }),
        })
    }

    /// True while the session's store is still being created (before its first commit).
    pub fn is_creating(&self) -> bool {
        self.creation.as_ref().is_some_and(|c| !c.committed)
    }

    /// Changes the description of the store being created (its grid, bands, metadata),
    /// which `change` makes on a copy of the manifest. Once the store exists, a change that
    /// leaves the description as it is succeeds and any other is refused.
    pub fn describe_new_store(
        &mut self,
        change: impl FnOnce(&mut Manifest) -> Result<()>,
    ) -> Result<()> {
        let mut m = self.manifest()?.clone();
        change(&mut m)?;
        if !self.is_creating() {
            if &m == self.manifest()? {
                return Ok(());
            }
            return Err(settings_are_fixed());
        }
        m.check_description()?;
        let validity = m.validity();
        self.txn()?.manifest = m;
        let creation = self.creation.as_mut().expect("checked above");
        if creation.validities.last() != Some(&validity) {
            creation.validities.push(validity);
        }
        Ok(())
    }

    /// The writer that died holding the lock this session took over, if any.
    pub fn recovered(&self) -> Option<&crate::store::lock::Recovered> {
        self.txn.as_ref()?.recovered()
    }

    fn txn(&mut self) -> Result<&mut Transaction> {
        if self.txn.is_none() {
            self.txn = Some(Transaction::begin(&self.root, &self.writer, self.wait)?);
        }
        Ok(self.txn.as_mut().expect("just set"))
    }

    /// The manifest writes go to.
    pub fn manifest(&mut self) -> Result<&Manifest> {
        Ok(&self.txn()?.manifest)
    }

    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The tile as edited so far: decoded, parked, committed, or empty.
    fn tile_mut(&mut self, loc: TileLoc) -> Result<&mut Tile> {
        if !self.decoded.contains_key(&loc) {
            let txn = self.txn()?;
            let m = &txn.manifest;
            let (dtype, size, validity) = (m.data_type, m.grid.tile_size as usize, m.validity());
            let tile = match txn.read_current(&TileKey::new(0, 0, loc))? {
                Some(tile) => tile,
                None => {
                    if let Some(c) = self.creation.as_mut() {
                        c.made_under.insert(loc, c.current());
                    }
                    Tile::empty(dtype, &validity, size)
                }
            };
            self.park_if_full(tile.data.len())?;
            self.decoded_bytes += tile.data.len();
            self.decoded.insert(loc, tile);
            self.order.push_back(loc);
        }
        let tile = self.decoded.get_mut(&loc).expect("just inserted");
        if let Some(c) = self.creation.as_mut() {
            c.bring_up_to_date(loc, tile);
        }
        Ok(tile)
    }

    /// Makes room for `incoming` more decoded bytes: past a first threshold the tiles
    /// written whole are parked, past the budget the oldest.
    fn park_if_full(&mut self, incoming: usize) -> Result<()> {
        if self.decoded_bytes + incoming > self.budget.whole_tiles_above {
            let whole: Vec<TileLoc> = self
                .filled
                .iter()
                .filter(|(loc, n)| **n >= self.samples_to_fill(**loc))
                .map(|(loc, _)| *loc)
                .collect();
            for loc in whole {
                self.park(loc)?;
            }
        }
        while self.decoded_bytes + incoming > self.budget.most {
            let Some(loc) = self.order.pop_front() else {
                break;
            };
            self.park(loc)?;
        }
        Ok(())
    }

    /// Samples a write must give tile `loc` to fill it: every band of its pixels (within
    /// the raster, for a store being created).
    fn samples_to_fill(&self, loc: TileLoc) -> usize {
        let Some(txn) = self.txn.as_ref() else {
            return usize::MAX;
        };
        let m = &txn.manifest;
        let mut rect = loc.pixel_rect(m.grid.tile_size);
        if let Some(c) = &self.creation {
            rect = rect.intersect(&c.extent);
        }
        (rect.width() * rect.height()) as usize * m.bands.len()
    }

    /// Moves a decoded tile into the transaction (if it was written) and out of memory.
    fn park(&mut self, loc: TileLoc) -> Result<()> {
        self.filled.remove(&loc);
        let Some(mut tile) = self.decoded.remove(&loc) else {
            return Ok(());
        };
        self.decoded_bytes -= tile.data.len();
        if !self.dirty.contains(&loc) {
            return Ok(());
        }
        if let Some(c) = self.creation.as_mut() {
            c.bring_up_to_date(loc, &mut tile);
        }
        let txn = self
            .txn
            .as_ref()
            .expect("tiles are decoded within a transaction");
        txn.put_tile(TileKey::new(0, 0, loc), &tile)?;
        Ok(())
    }

    /// Writes band `band` of the level-0 pixels `rect` from `data` (the store's type, rows
    /// `stride` samples apart).
    ///
    /// Writing a band's fill value (0 for bands without nodata) onto a pixel that holds no
    /// data leaves it without data: GDAL writes whole blocks back, and the untouched
    /// missing pixels of a block must not turn into zeros. A raster being created is GDAL's
    /// own dataset, as a GTiff would be: there a block (tile) written at all holds data in
    /// every pixel, those not written holding the fill value.
    pub fn write(
        &mut self,
        band: usize,
        rect: PixelRect,
        data: &[u8],
        stride: usize,
    ) -> Result<()> {
        let (dtype, ts, validity, bands) = {
            let m = self.manifest()?;
            (m.data_type, m.grid.tile_size, m.validity(), m.bands.len())
        };
        if band >= bands {
            return Err(Error::InvalidInput(format!(
                "no band {} in this store",
                band + 1
            )));
        }
        let need =
            ((rect.height().max(1) - 1) as usize * stride + rect.width() as usize) * dtype.size();
        if rect.is_empty() || data.len() < need {
            return Err(Error::InvalidInput(format!(
                "a write of {} x {} pixels came with {} bytes",
                rect.width(),
                rect.height(),
                data.len()
            )));
        }
        let v = validity[band];
        let raster = self.creation.as_ref().map(|c| c.extent);
        for loc in rect.tiles(0, ts).iter() {
            let part = rect.intersect(&loc.pixel_rect(ts));
            // Marked once, at the tile's first write: the mark is stored with the tile.
            let first_write = !self.dirty.contains(&loc);
            let tile = self.tile_mut(loc)?;
            if let (Some(raster), true) = (raster, first_write) {
                holds_data_everywhere(tile, raster.intersect(&loc.pixel_rect(ts)), loc, ts);
            }
            let to = Placement {
                rect,
                part,
                tile_rect: loc.pixel_rect(ts),
            };
            with_sample_type!(dtype, T => {
                let src: &[T] = bytemuck::cast_slice(&data[..need]);
                write_part::<T>(tile, band, &v, src, stride, &to);
            });
            tile.normalize_mask();
            self.dirty.insert(loc);
            *self.filled.entry(loc).or_default() += (part.width() * part.height()) as usize;
        }
        self.written = Some(self.written.map_or(rect, |w| w.union(&rect)));
        Ok(())
    }

    /// Lays the edited tiles over a level-0 read of `rect` (all bands, band-sequential, as
    /// `Snapshot::read_region` fills it), so a session reads back what it wrote.
    pub fn overlay_read(
        &mut self,
        rect: PixelRect,
        data: &mut [u8],
        mut mask: Option<&mut [u8]>,
    ) -> Result<()> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let ts = self.manifest()?.grid.tile_size;
        let touched: Vec<TileLoc> = rect
            .tiles(0, ts)
            .iter()
            .filter(|l| self.dirty.contains(l))
            .collect();
        let (w, h) = (rect.width() as usize, rect.height() as usize);
        for loc in touched {
            let tile_rect = loc.pixel_rect(ts);
            let part = rect.intersect(&tile_rect);
            let tile = self.tile_mut(loc)?;
            let size = tile.size;
            let dsize = tile.dtype.size();
            let bytes = tile.data.bytes();
            let (tx, ty) = (
                (part.x0 - tile_rect.x0) as usize,
                (part.y0 - tile_rect.y0) as usize,
            );
            let (dx, dy) = ((part.x0 - rect.x0) as usize, (part.y0 - rect.y0) as usize);
            let pw = part.width() as usize;
            for b in 0..tile.bands {
                for y in 0..part.height() as usize {
                    let s = (b * size * size + (ty + y) * size + tx) * dsize;
                    let d = (b * w * h + (dy + y) * w + dx) * dsize;
                    data[d..d + pw * dsize].copy_from_slice(&bytes[s..s + pw * dsize]);
                }
            }
            if let Some(mask) = mask.as_deref_mut() {
                for y in 0..part.height() as usize {
                    let d = (dy + y) * w + dx;
                    match &tile.mask {
                        Some(m) => {
                            let s = (ty + y) * size + tx;
                            mask[d..d + pw].copy_from_slice(&m[s..s + pw]);
                        }
                        None => mask[d..d + pw].fill(255),
                    }
                }
            }
        }
        Ok(())
    }

    /// Commits everything written since the last commit, with its levels. Returns the new
    /// manifest, or `None` when nothing was written. A session creating its store commits
    /// the first time even with nothing written: the store then exists, without data.
    pub fn commit(&mut self, threads: usize) -> Result<Option<Manifest>> {
        let creating = self.is_creating();
        if self.dirty.is_empty() && !creating {
            return Ok(None);
        }
        let mut txn = self.txn.take().expect("edits happen within a transaction");
        let written = self.written.take();
        let reach = match (&self.creation, written) {
            (Some(c), w) if creating => w.map_or(c.extent, |w| w.union(&c.extent)),
            (_, w) => w.expect("dirty tiles come from writes"),
        };
        let dirty: Vec<TileLoc> = std::mem::take(&mut self.dirty).into_iter().collect();
        let tiles = self.take_edited(&dirty);
        let ts = txn.manifest.grid.tile_size;
        let old_extent = txn.manifest.extent;
        let grown = old_extent.map_or(reach, |e| e.union(&reach));
        let (top, forced) = levels_to_update(old_extent, grown, ts);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| Error::InvalidInput(format!("cannot start worker threads: {e}")))?;
        let gaps = creating.then(|| Gaps::new(reach, ts));
        {
            let txn = &txn;
            let builder = PyramidBuilder::new(txn, 0, 0, top, dirty.iter().copied(), forced);
            std::thread::scope(|scope| {
                // The committed parents of a small flush are decoded beside its tiles.
                builder.start_fetch_ahead(scope);
                pool.install(|| {
                    store_tiles(txn, &builder, tiles, gaps.as_ref())?;
                    builder.finish()
                })
            })?;
        }
        let m = &mut txn.manifest;
        match &gaps {
            // Every pixel of the new store holds data only if every tile was written whole.
            Some(g) => m.all_valid = dirty.len() == reach.tiles(0, ts).len() && !g.found(),
            None if Some(grown) != m.extent => m.all_valid = false,
            None => {}
        }
        m.extent = Some(grown);
        let committed = txn.commit()?;
        if let Some(c) = self.creation.as_mut() {
            c.committed = true;
            c.made_under.clear();
            c.validities.drain(..c.validities.len() - 1);
        }
        Ok(Some(committed))
    }

    /// Takes the edited tiles out of the session for a commit, each with the validity it was
    /// made under if that is no longer the current one.
    fn take_edited(&mut self, dirty: &[TileLoc]) -> Vec<Edited> {
        let mut decoded = std::mem::take(&mut self.decoded);
        self.order.clear();
        self.filled.clear();
        self.decoded_bytes = 0;
        dirty
            .iter()
            .map(|loc| Edited {
                loc: *loc,
                tile: decoded.remove(loc),
                stale_from: self
                    .creation
                    .as_ref()
                    .and_then(|c| c.stale(loc))
                    .map(<[BandValidity]>::to_vec),
            })
            .collect()
    }

    /// Drops everything written since the last commit and releases the lock.
    pub fn abort(&mut self) {
        if let Some(txn) = self.txn.take() {
            txn.abort();
        }
        self.decoded.clear();
        self.order.clear();
        self.filled.clear();
        self.decoded_bytes = 0;
        self.dirty.clear();
        self.written = None;
    }
}

/// Why a store's georeferencing or band settings cannot be changed once it exists.
pub fn settings_are_fixed() -> Error {
    Error::NotSupported(
        "the georeferencing and band settings of a store are fixed when it is made (by \
         gdal_translate, `gridstore create`, or the first flush or close of a new GDAL \
         dataset); they cannot be changed afterwards"
            .into(),
    )
}

/// Marks every pixel of `inside` (the part of tile `loc` within the raster) as holding
/// data, as a block of a GTiff does once written.
fn holds_data_everywhere(tile: &mut Tile, inside: PixelRect, loc: TileLoc, tile_size: u32) {
    let Some(mask) = tile.mask.as_mut() else {
        return;
    };
    let origin = loc.pixel_rect(tile_size);
    let (x0, x1) = (
        (inside.x0 - origin.x0) as usize,
        (inside.x1 - origin.x0) as usize,
    );
    for y in (inside.y0 - origin.y0) as usize..(inside.y1 - origin.y0) as usize {
        let row = y * tile.size;
        mask[row + x0..row + x1].fill(255);
    }
}

/// Where a written window lands in one tile.
#[derive(Clone, Copy)]
struct Placement {
    /// The whole window written, the part of it in this tile, and the tile (level-0 pixels).
    rect: PixelRect,
    part: PixelRect,
    tile_rect: PixelRect,
}

/// Copies the part of a written window that falls in one tile.
fn write_part<T: Sample>(
    tile: &mut Tile,
    band: usize,
    v: &BandValidity,
    src: &[T],
    stride: usize,
    to: &Placement,
) {
    let Placement {
        rect,
        part,
        tile_rect,
    } = *to;
    let size = tile.size;
    let n = size * size;
    let fill = fill_value::<T>(v);
    let masked = v.nodata.is_none();
    let mut mask = tile.mask.take();
    let dst = &mut tile.data.typed_mut::<T>()[band * n..(band + 1) * n];
    for y in part.y0..part.y1 {
        let s = (y - rect.y0) as usize * stride + (part.x0 - rect.x0) as usize;
        let d = (y - tile_rect.y0) as usize * size + (part.x0 - tile_rect.x0) as usize;
        for (i, value) in src[s..s + part.width() as usize].iter().enumerate() {
            if let (Some(m), true) = (&mut mask, masked) {
                if m[d + i] == 0 && *value == fill {
                    continue;
                }
                m[d + i] = 255;
            }
            dst[d + i] = *value;
        }
    }
    tile.mask = mask;
}

impl Drop for Editor {
    fn drop(&mut self) {
        self.abort();
    }
}

/// A tile of a commit: held decoded, or parked in the transaction (`tile` is `None`).
struct Edited {
    loc: TileLoc,
    tile: Option<Tile>,
    /// The validity the tile was made under, when the bands' nodata changed since.
    stale_from: Option<Vec<BandValidity>>,
}

/// Whether some pixel of a new store's extent holds no data, found as its tiles are stored.
struct Gaps {
    extent: PixelRect,
    tile_size: u32,
    found: std::sync::atomic::AtomicBool,
}

impl Gaps {
    fn new(extent: PixelRect, tile_size: u32) -> Gaps {
        Gaps {
            extent,
            tile_size,
            found: false.into(),
        }
    }

    fn found(&self) -> bool {
        self.found.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Looks at a stored tile (`None`: one without data) for masked pixels in the extent.
    fn look_at(&self, loc: TileLoc, tile: Option<&Tile>) {
        let tile_rect = loc.pixel_rect(self.tile_size);
        let inside = self.extent.intersect(&tile_rect);
        let gap = match tile.map(|t| &t.mask) {
            None => true,
            Some(None) => false,
            Some(Some(mask)) => (inside.y0..inside.y1).any(|y| {
                let row = (y - tile_rect.y0) as usize * self.tile_size as usize;
                let cols = (inside.x0 - tile_rect.x0) as usize..(inside.x1 - tile_rect.x0) as usize;
                mask[row + cols.start..row + cols.end].contains(&0)
            }),
        };
        if gap {
            self.found.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Stores the tiles of a flush and hands them to the levels. A parked tile is already in
/// the transaction and is read back, and stored again if its validity changed since.
fn store_tiles(
    txn: &Transaction,
    builder: &PyramidBuilder,
    tiles: Vec<Edited>,
    gaps: Option<&Gaps>,
) -> Result<()> {
    let current = txn.manifest.validity();
    tiles.into_par_iter().try_for_each(|e| -> Result<()> {
        let key = TileKey::new(0, 0, e.loc);
        let parked = e.tile.is_none();
        let tile = match e.tile {
            Some(t) => Some(t),
            None => txn.read_current(&key)?,
        };
        let stored = match (tile, e.stale_from) {
            (Some(mut t), Some(from)) => {
                t.revalidate(&from, &current);
                txn.put_tile(key, &t)?.then_some(t)
            }
            (Some(t), None) if !parked => txn.put_tile(key, &t)?.then_some(t),
            (tile, _) => tile,
        };
        if let Some(g) = gaps {
            g.look_at(e.loc, stored.as_ref());
        }
        builder.offer(e.loc, builder.quarter_of(stored.as_ref()));
        builder.build_ready()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::create_store;
    use crate::ingest::tests::{manifest, MemSource};
    use crate::store::Snapshot;

    const W: usize = 70;
    const H: usize = 50;

    fn plane() -> Vec<f32> {
        (0..W * H)
            .map(|i| ((i * 7919) % 1000) as f32 - 20.0)
            .collect()
    }

    /// A session creating a 70 x 50 single-band Float32 store of 16-pixel tiles, whose
    /// budget holds `tiles` decoded tiles.
    fn creating(path: &Path, tiles: usize) -> Editor {
        let mut new = manifest(path, 1, None, 16);
        new.manifest.extent = None;
        let extent = PixelRect::new(0, 0, W as i64, H as i64);
        let mut e = Editor::create(new, extent, "test").unwrap();
        let tile = 16 * 16 * 4;
        e.budget = Budget {
            whole_tiles_above: tile * tiles / 2,
            most: tile * tiles,
        };
        e
    }

    /// Writes `plane` in 9 x 7 windows in a scattered order.
    fn write_scattered(e: &mut Editor, plane: &[f32], rows: std::ops::Range<usize>) {
        let mut windows: Vec<(usize, usize)> = rows
            .step_by(7)
            .flat_map(|y| (0..W).step_by(9).map(move |x| (x, y)))
            .collect();
        windows.sort_by_key(|(x, y)| (x * 31 + y * 17) % 23);
        for (x, y) in windows {
            let (w, h) = (9.min(W - x), 7.min(H - y));
            let mut buf = Vec::with_capacity(w * h);
            for r in y..y + h {
                buf.extend_from_slice(&plane[r * W + x..r * W + x + w]);
            }
            let rect = PixelRect::new(x as i64, y as i64, (x + w) as i64, (y + h) as i64);
            e.write(0, rect, bytemuck::cast_slice(&buf), w).unwrap();
        }
    }

    /// Every level of two stores, read whole, with masks.
    fn levels(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
        let snap = Snapshot::open(path, None).unwrap();
        let layout = *snap.layout().unwrap();
        (0..layout.level_count() as u8)
            .map(|level| {
                let rect = layout.level_rect(level);
                let n = (rect.width() * rect.height()) as usize;
                let (mut data, mut mask) = (vec![0u8; n * 4], vec![0u8; n]);
                snap.read_region(0, 0, level, rect, &mut data, Some(&mut mask))
                    .unwrap();
                (data, mask)
            })
            .collect()
    }

    /// The same raster made by the ingest of a new store, with `nodata`.
    fn reference(path: &Path, plane: Vec<f32>, nodata: Option<f64>) {
        let mut src = MemSource {
            w: W,
            h: H,
            planes: vec![plane],
            mask: None,
        };
        create_store(manifest(path, 1, nodata, 16), &mut src, 2, "t", &mut |_| {
            true
        })
        .unwrap();
    }

    #[test]
    fn a_created_store_equals_a_fresh_ingest_of_the_same_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let (made, fresh) = (
            dir.path().join("a.gridstore"),
            dir.path().join("b.gridstore"),
        );
        // A budget of 4 tiles out of 20: most tiles are parked and read back.
        let mut e = creating(&made, 4);
        write_scattered(&mut e, &plane(), 0..H);
        let m = e.commit(2).unwrap().unwrap();
        assert!(m.all_valid, "every pixel was written");
        assert_eq!(m.extent, Some(PixelRect::new(0, 0, W as i64, H as i64)));
        reference(&fresh, plane(), None);
        assert_eq!(levels(&made), levels(&fresh));
    }

    #[test]
    fn nodata_set_after_tiles_were_parked_applies_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let (made, fresh) = (
            dir.path().join("a.gridstore"),
            dir.path().join("b.gridstore"),
        );
        let mut e = creating(&made, 4);
        let values = plane();
        write_scattered(&mut e, &values, 0..28);
        // -20 is a value the plane holds: under the new nodata those pixels hold none.
        e.describe_new_store(|m| {
            m.bands[0].nodata = Some(-20.0);
            Ok(())
        })
        .unwrap();
        write_scattered(&mut e, &values, 28..H);
        e.commit(2).unwrap().unwrap();
        reference(&fresh, values, Some(-20.0));
        assert_eq!(levels(&made), levels(&fresh));
    }

    #[test]
    fn pixels_of_tiles_never_written_hold_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.gridstore");
        let mut e = creating(&path, 100);
        write_scattered(&mut e, &plane(), 0..14);
        let m = e.commit(1).unwrap().unwrap();
        assert!(!m.all_valid);
        let snap = Snapshot::open(&path, None).unwrap();
        let rect = PixelRect::new(0, 0, W as i64, H as i64);
        let (mut data, mut mask) = (vec![0u8; W * H * 4], vec![0u8; W * H]);
        snap.read_region(0, 0, 0, rect, &mut data, Some(&mut mask))
            .unwrap();
        // Rows 0 to 13 were written: the tiles holding them (rows 0 to 15) hold data.
        assert!(mask[..16 * W].iter().all(|v| *v == 255));
        assert!(mask[16 * W..].iter().all(|v| *v == 0));
    }

    #[test]
    fn a_store_created_without_writes_exists_without_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.gridstore");
        let m = creating(&path, 100).commit(1).unwrap().unwrap();
        assert_eq!((m.index.tiles, m.snapshot.id), (0, 1));
        assert!(Snapshot::open(&path, None).unwrap().layout().is_some());
    }

    #[test]
    fn a_creation_dropped_before_its_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.gridstore");
        let mut e = creating(&path, 4);
        write_scattered(&mut e, &plane(), 0..H);
        assert!(path.exists());
        drop(e);
        assert!(!path.exists());
    }

    #[test]
    fn the_description_is_fixed_once_the_store_exists() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = creating(&dir.path().join("a.gridstore"), 4);
        e.commit(1).unwrap();
        assert!(
            e.describe_new_store(|_| Ok(())).is_ok(),
            "no change is accepted"
        );
        let changed = e.describe_new_store(|m| {
            m.bands[0].nodata = Some(1.0);
            Ok(())
        });
        assert!(matches!(changed, Err(Error::NotSupported(_))));
    }
}
