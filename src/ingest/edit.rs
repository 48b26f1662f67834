//! Writing base-level windows into a store, as GDAL's update mode does: block by block and
//! band by band, then a flush that commits everything written so far in one transaction
//! and refreshes the levels above the tiles it touched.
//!
//! Tiles being edited are kept decoded; past a memory budget the oldest are parked in the
//! transaction as chunks (invisible to readers until the commit) and decoded again if they
//! are written or read once more.

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
use crate::store::Transaction;
use crate::tile::{fill_value, BandValidity, Tile};
use crate::with_sample_type;

/// Decoded tiles an edit keeps in memory before parking the oldest in the transaction.
const MAX_DECODED_BYTES: usize = 256 << 20;

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
    /// Every tile edited since the last commit, decoded or parked.
    dirty: BTreeSet<TileLoc>,
    written: Option<PixelRect>,
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
            dirty: BTreeSet::new(),
            written: None,
        })
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
            let key = TileKey::new(0, 0, loc);
            let m = &txn.manifest;
            let (dtype, size, validity) = (m.data_type, m.grid.tile_size as usize, m.validity());
            let tile = match (txn.current_entry(&key)?, txn.base()) {
                (Some(entry), Some(base)) => base.fetch(&key, &entry)?,
                _ => Tile::empty(dtype, &validity, size),
            };
            self.park_if_full(tile.data.len())?;
            self.decoded_bytes += tile.data.len();
            self.decoded.insert(loc, tile);
            self.order.push_back(loc);
        }
        Ok(self.decoded.get_mut(&loc).expect("just inserted"))
    }

    /// Parks the oldest decoded tiles until `incoming` more bytes fit the budget.
    fn park_if_full(&mut self, incoming: usize) -> Result<()> {
        while self.decoded_bytes + incoming > MAX_DECODED_BYTES {
            let Some(loc) = self.order.pop_front() else {
                break;
            };
            let Some(tile) = self.decoded.remove(&loc) else {
                continue;
            };
            self.decoded_bytes -= tile.data.len();
            if self.dirty.contains(&loc) {
                let txn = self
                    .txn
                    .as_ref()
                    .expect("tiles are decoded within a transaction");
                txn.put_tile(TileKey::new(0, 0, loc), &tile)?;
            }
        }
        Ok(())
    }

    /// Writes band `band` of the level-0 pixels `rect` from `data` (the store's type, rows
    /// `stride` samples apart).
    ///
    /// Writing a band's fill value (0 for bands without nodata) onto a pixel that holds no
    /// data leaves it without data: GDAL writes whole blocks back, and the untouched
    /// missing pixels of a block must not turn into zeros.
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
        for loc in rect.tiles(0, ts).iter() {
            let part = rect.intersect(&loc.pixel_rect(ts));
            let tile = self.tile_mut(loc)?;
            with_sample_type!(dtype, T => {
                let src: &[T] = bytemuck::cast_slice(&data[..need]);
                write_part::<T>(tile, band, &v, src, stride, rect, part, loc.pixel_rect(ts));
            });
            tile.normalize_mask();
            self.dirty.insert(loc);
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
    /// manifest, or `None` when nothing was written.
    pub fn commit(&mut self, threads: usize) -> Result<Option<Manifest>> {
        if self.dirty.is_empty() {
            return Ok(None);
        }
        let mut txn = self.txn.take().expect("edits happen within a transaction");
        let written = self.written.take().expect("dirty tiles come from writes");
        let dirty = std::mem::take(&mut self.dirty);
        let mut decoded = std::mem::take(&mut self.decoded);
        self.order.clear();
        self.decoded_bytes = 0;
        let ts = txn.manifest.grid.tile_size;
        let old_extent = txn.manifest.extent;
        let (top, forced) = levels_to_update(
            old_extent,
            old_extent.map_or(written, |e| e.union(&written)),
            ts,
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| Error::InvalidInput(format!("cannot start worker threads: {e}")))?;
        let dirty_list: Vec<TileLoc> = dirty.iter().copied().collect();
        let tiles: Vec<(TileLoc, Option<Tile>)> = dirty_list
            .iter()
            .map(|loc| (*loc, decoded.remove(loc)))
            .collect();
        {
            let txn = &txn;
            let builder = PyramidBuilder::new(txn, 0, 0, top, dirty_list.iter().copied(), forced);
            std::thread::scope(|scope| {
                // The committed parents of a small flush are decoded beside its tiles.
                builder.start_fetch_ahead(scope);
                pool.install(|| {
                    store_tiles(txn, &builder, tiles)?;
                    builder.finish()
                })
            })?;
        }
        let m = &mut txn.manifest;
        let grown = old_extent.map_or(written, |e| e.union(&written));
        if Some(grown) != m.extent {
            m.all_valid = false;
        }
        m.extent = Some(grown);
        Ok(Some(txn.commit()?))
    }

    /// Drops everything written since the last commit and releases the lock.
    pub fn abort(&mut self) {
        if let Some(txn) = self.txn.take() {
            txn.abort();
        }
        self.decoded.clear();
        self.order.clear();
        self.decoded_bytes = 0;
        self.dirty.clear();
        self.written = None;
    }
}

/// Copies the part of a written window that falls in one tile.
#[allow(clippy::too_many_arguments)]
fn write_part<T: Sample>(
    tile: &mut Tile,
    band: usize,
    v: &BandValidity,
    src: &[T],
    stride: usize,
    rect: PixelRect,
    part: PixelRect,
    tile_rect: PixelRect,
) {
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

/// Stores the tiles of a flush and hands them to the levels: each parked tile (`None`) is
/// already in the transaction and is read back.
fn store_tiles(
    txn: &Transaction,
    builder: &PyramidBuilder,
    tiles: Vec<(TileLoc, Option<Tile>)>,
) -> Result<()> {
    tiles
        .into_par_iter()
        .try_for_each(|(loc, tile)| -> Result<()> {
            let key = TileKey::new(0, 0, loc);
            let (tile, has_data) = match tile {
                Some(t) => {
                    let has = txn.put_tile(key, &t)?;
                    (t, has)
                }
                // Parked: already in the transaction.
                None => match (txn.current_entry(&key)?, txn.base()) {
                    (Some(e), Some(base)) => (base.fetch(&key, &e)?, true),
                    _ => {
                        builder.offer(loc, None);
                        return builder.build_ready();
                    }
                },
            };
            builder.offer(loc, builder.quarter_of(has_data.then_some(&tile)));
            builder.build_ready()
        })
}
