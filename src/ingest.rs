//! Creating a store from a raster: the source is read in strips one tile high, each strip
//! is cut into tiles that are encoded and written in parallel, and the levels above are
//! built as the strips go by. Memory stays bounded by the tile size times the raster width.
//!
//! Reading runs on its own thread, one strip ahead of the encoders, so I/O and compression
//! overlap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use rayon::prelude::*;

use std::collections::BTreeMap;

use crate::dtype::{DataType, Sample};
use crate::error::{Error, Result};
use crate::grid::{Layout, PixelRect, TileLoc};
use crate::index::TileKey;
use crate::manifest::{
    BandSpec, EncodingSpec, GridSpec, IndexSpec, Manifest, PyramidSpec, SnapshotInfo, FORMAT_NAME,
    FORMAT_VERSION,
};
use crate::options::CreateOptions;
use crate::pyramid::PyramidBuilder;
use crate::store::{NewStore, Transaction};
use crate::tile::{BandValidity, Tile};
use crate::with_sample_type;

/// A raster that can be read in horizontal strips of all bands.
pub trait RasterSource: Send {
    fn width(&self) -> usize;
    fn height(&self) -> usize;
    fn band_count(&self) -> usize;
    fn data_type(&self) -> DataType;
    /// True when the source marks missing pixels with a mask beyond nodata values (an
    /// alpha band or a per-dataset mask), which `read_rows` then fills in.
    fn has_mask(&self) -> bool;
    /// Reads rows `y0..y0 + rows` of every band, converted to `data_type()`, into `data`
    /// (band-sequential) and, when the source has one, the mask (255 data, 0 none).
    fn read_rows(
        &mut self,
        y0: usize,
        rows: usize,
        data: &mut [u8],
        mask: Option<&mut [u8]>,
    ) -> Result<()>;
}

/// What a source raster is, as far as the store it becomes needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// The source's name, for messages and history.
    pub description: String,
    pub width: usize,
    pub height: usize,
    pub data_type: DataType,
    /// GDAL geotransform; `None` for a raster without georeferencing.
    pub geotransform: Option<[f64; 6]>,
    pub crs_wkt: String,
    pub bands: Vec<BandSpec>,
    pub metadata: BTreeMap<String, String>,
}

/// The manifest of a new store holding `source`: the grid is the source's own, with its
/// top-left corner as origin.
pub fn new_store_manifest(source: &SourceInfo, opts: &CreateOptions) -> Result<Manifest> {
    let (origin, cell_size, georeferenced) = match source.geotransform {
        Some(gt) => {
            if gt[2] != 0.0 || gt[4] != 0.0 {
                return Err(Error::NotSupported(
                    "the source grid is rotated or sheared; a store's grid is north-up: \
                     warp it first with gdalwarp"
                        .into(),
                ));
            }
            if gt[1] == 0.0 || gt[5] == 0.0 || !gt.iter().all(|v| v.is_finite()) {
                return Err(Error::InvalidInput(format!(
                    "the source geotransform {gt:?} has a zero or non-finite cell size"
                )));
            }
            ([gt[0], gt[3]], [gt[1], gt[5]], true)
        }
        None => ([0.0, 0.0], [1.0, 1.0], false),
    };
    for (i, b) in source.bands.iter().enumerate() {
        if let Some(nd) = b.nodata {
            check_nodata_fits(nd, source.data_type, i)?;
        }
    }
    let has_table: Vec<bool> = source
        .bands
        .iter()
        .map(|b| b.color_table.is_some())
        .collect();
    let resampling = opts.resolve_resampling(&has_table)?;
    Ok(Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        store_id: random_id(),
        snapshot: SnapshotInfo {
            id: 0,
            parent: None,
            created: String::new(),
            writer: String::new(),
            tiles_written: 0,
            tiles_removed: 0,
        },
        grid: GridSpec {
            crs_wkt: source.crs_wkt.clone(),
            origin,
            cell_size,
            georeferenced,
            tile_size: opts.tile_size,
            factor: 2,
        },
        data_type: source.data_type,
        bands: source.bands.clone(),
        metadata: source.metadata.clone(),
        encoding: EncodingSpec {
            compression: opts.compression,
            level: opts.level,
            predictor: opts.resolve_predictor(source.data_type)?,
        },
        pyramids: vec![PyramidSpec {
            name: "default".into(),
            resampling,
        }],
        extent: None,
        all_valid: true,
        time: None,
        index: IndexSpec {
            root: None,
            tiles: 0,
            bytes: 0,
        },
    })
}

/// An integer band's nodata value must be one of its values, or nothing could equal it.
fn check_nodata_fits(nd: f64, dtype: DataType, band: usize) -> Result<()> {
    let range = match dtype {
        DataType::Byte => (0.0, 255.0),
        DataType::UInt16 => (0.0, 65535.0),
        DataType::Int16 => (-32768.0, 32767.0),
        DataType::UInt32 => (0.0, u32::MAX as f64),
        DataType::Int32 => (i32::MIN as f64, i32::MAX as f64),
        DataType::Float32 | DataType::Float64 => return Ok(()),
    };
    if nd.fract() != 0.0 || nd < range.0 || nd > range.1 || nd.is_nan() {
        return Err(Error::InvalidInput(format!(
            "band {}: nodata value {nd} is not a {} value; set one that is with \
             gdal_translate -a_nodata",
            band + 1,
            dtype.name()
        )));
    }
    Ok(())
}

/// 128 random bits as hex, naming a store for good.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    if bytes == [0u8; 16] {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        bytes[..8].copy_from_slice(&(t.as_nanos() as u64).to_le_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rows of the source, as read.
struct Strip {
    y0: usize,
    rows: usize,
    data: Vec<u8>,
    mask: Option<Vec<u8>>,
}

/// Creates a store at `new.path` holding `source`, whose pixel (0, 0) becomes level-0
/// pixel (0, 0) of the grid. `progress` gets the fraction done and returns false to cancel.
pub fn create_store(
    new: NewStore,
    mut source: Box<dyn RasterSource>,
    threads: usize,
    writer: &str,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<Manifest> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start worker threads: {e}")))?;
    if !progress(0.0) {
        return Err(Error::Interrupted);
    }
    let mut txn = Transaction::create(new, writer)?;
    let (w, h) = (source.width(), source.height());
    let extent = PixelRect::new(0, 0, w as i64, h as i64);
    txn.manifest.extent = Some(extent);
    let ts = txn.manifest.grid.tile_size;
    let layout = Layout::for_extent(extent, ts);
    let tiles = extent.tiles(0, ts);
    let all_valid = AtomicBool::new(true);
    {
        let txn = &txn;
        let builder = PyramidBuilder::new(txn, 0, 0, layout.top, tiles.iter(), []);
        let cutter = TileCutter {
            dtype: txn.manifest.data_type,
            validity: txn.manifest.validity(),
            size: ts as usize,
            width: w,
        };
        let strip_len = ts as usize * w * source.band_count() * source.data_type().size();
        let with_mask = source.has_mask();
        std::thread::scope(|scope| -> Result<()> {
            // Two strip buffers circulate: one being read, one being cut into tiles (the
            // channel has no room of its own, so no third strip waits in it).
            let (full_tx, full_rx) = mpsc::sync_channel::<Result<Strip>>(0);
            let (empty_tx, empty_rx) = mpsc::channel::<Strip>();
            let reader = scope.spawn(move || {
                for row in tiles.row0..tiles.row1 {
                    let y0 = row as usize * ts as usize;
                    let rows = (ts as usize).min(h - y0);
                    let mut strip = empty_rx.try_recv().unwrap_or_else(|_| Strip {
                        y0: 0,
                        rows: 0,
                        data: vec![0; strip_len],
                        mask: with_mask.then(|| vec![0; ts as usize * w]),
                    });
                    strip.y0 = y0;
                    strip.rows = rows;
                    let n = rows * w;
                    let per_band = n * source.data_type().size();
                    let bands = source.band_count();
                    let read = source.read_rows(
                        y0,
                        rows,
                        &mut strip.data[..per_band * bands],
                        strip.mask.as_mut().map(|m| &mut m[..n]),
                    );
                    let failed = read.is_err();
                    if full_tx.send(read.map(|_| strip)).is_err() || failed {
                        return;
                    }
                }
            });
            let total = tiles.rows().max(1) as f64;
            for (i, row) in (tiles.row0..tiles.row1).enumerate() {
                let strip = full_rx
                    .recv()
                    .map_err(|_| Error::Gdal("the source reader stopped unexpectedly".into()))??;
                let made: Vec<(TileLoc, Option<Tile>)> = pool.install(|| {
                    tiles
                        .row(row)
                        .collect::<Vec<_>>()
                        .into_par_iter()
                        .map(|loc| {
                            let (tile, saw_missing) = cutter.cut(&strip, loc);
                            if saw_missing {
                                all_valid.store(false, Ordering::Relaxed);
                            }
                            let has_data = txn.put_tile(TileKey::new(0, 0, loc), &tile)?;
                            let quarter = builder.quarter_of(has_data.then_some(&tile));
                            Ok((loc, quarter))
                        })
                        .collect::<Result<_>>()
                })?;
                for (loc, quarter) in made {
                    builder.offer(loc, quarter);
                }
                pool.install(|| builder.build_ready())?;
                let _ = empty_tx.send(strip);
                if !progress((i + 1) as f64 / total) {
                    return Err(Error::Interrupted);
                }
            }
            drop(full_rx);
            let _ = reader.join();
            pool.install(|| builder.finish())
        })?;
    }
    txn.manifest.all_valid = all_valid.load(Ordering::Relaxed);
    txn.commit()
}

/// Cuts level-0 tiles out of strips of a source placed at grid pixel (0, 0).
struct TileCutter {
    dtype: DataType,
    validity: Vec<BandValidity>,
    size: usize,
    width: usize,
}

impl TileCutter {
    /// The tile at `loc` from `strip` (which covers its rows), and whether the source mask
    /// marked any of its pixels as missing.
    fn cut(&self, strip: &Strip, loc: TileLoc) -> (Tile, bool) {
        with_sample_type!(self.dtype, T => self.cut_typed::<T>(strip, loc))
    }

    fn cut_typed<T: Sample>(&self, strip: &Strip, loc: TileLoc) -> (Tile, bool) {
        let ts = self.size;
        let mut tile = Tile::empty(self.dtype, &self.validity, ts);
        let x0 = loc.col as usize * ts;
        let cols = ts.min(self.width - x0);
        let rows = strip.rows;
        let n_strip = rows * self.width;
        let n_tile = ts * ts;
        let src: &[T] =
            bytemuck::cast_slice(&strip.data[..n_strip * self.validity.len() * T::TYPE.size()]);
        let dst = tile.data.typed_mut::<T>();
        for b in 0..self.validity.len() {
            for y in 0..rows {
                let s = b * n_strip + y * self.width + x0;
                let d = b * n_tile + y * ts;
                dst[d..d + cols].copy_from_slice(&src[s..s + cols]);
            }
        }
        // Pixels the source covers hold data, unless its mask says otherwise.
        if let Some(mask) = tile.mask.as_mut() {
            for y in 0..rows {
                mask[y * ts..y * ts + cols].fill(255);
            }
        }
        let mut saw_missing = false;
        if let Some(src_mask) = &strip.mask {
            for y in 0..rows {
                for x in 0..cols {
                    if src_mask[y * self.width + x0 + x] != 0 {
                        continue;
                    }
                    saw_missing = true;
                    if let Some(mask) = tile.mask.as_mut() {
                        mask[y * ts + x] = 0;
                    }
                    // Bands with nodata carry missing pixels in their values.
                    for (b, v) in self.validity.iter().enumerate() {
                        if let Some(nd) = v.nodata {
                            dst[b * n_tile + y * ts + x] = T::from_f64_round(nd);
                        }
                    }
                }
            }
        }
        tile.normalize_mask();
        (tile, saw_missing)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::Snapshot;

    /// An in-memory source: `bands` planes of `w x h` Float32 values.
    pub struct MemSource {
        pub w: usize,
        pub h: usize,
        pub planes: Vec<Vec<f32>>,
        pub mask: Option<Vec<u8>>,
    }

    impl RasterSource for MemSource {
        fn width(&self) -> usize {
            self.w
        }
        fn height(&self) -> usize {
            self.h
        }
        fn band_count(&self) -> usize {
            self.planes.len()
        }
        fn data_type(&self) -> DataType {
            DataType::Float32
        }
        fn has_mask(&self) -> bool {
            self.mask.is_some()
        }
        fn read_rows(
            &mut self,
            y0: usize,
            rows: usize,
            data: &mut [u8],
            mask: Option<&mut [u8]>,
        ) -> Result<()> {
            let n = rows * self.w;
            let out: &mut [f32] = bytemuck::cast_slice_mut(data);
            for (b, p) in self.planes.iter().enumerate() {
                out[b * n..(b + 1) * n].copy_from_slice(&p[y0 * self.w..(y0 + rows) * self.w]);
            }
            if let (Some(m), Some(src)) = (mask, &self.mask) {
                m.copy_from_slice(&src[y0 * self.w..(y0 + rows) * self.w]);
            }
            Ok(())
        }
    }

    pub fn manifest(
        path: &std::path::Path,
        bands: usize,
        nodata: Option<f64>,
        ts: u32,
    ) -> NewStore {
        let mut m = crate::manifest::tests::sample();
        m.grid.tile_size = ts;
        m.bands = vec![m.bands[0].clone(); bands];
        for b in &mut m.bands {
            b.nodata = nodata;
        }
        m.pyramids[0].resampling = vec![crate::aggregate::Resampling::Average; bands];
        NewStore {
            path: path.to_path_buf(),
            manifest: m,
        }
    }

    fn surface(w: usize, h: usize) -> Vec<f32> {
        (0..w * h)
            .map(|i| ((i % w) as f32 * 0.37).sin() * 100.0 + (i / w) as f32)
            .collect()
    }

    #[test]
    fn a_created_store_reads_back_exactly_at_every_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gridstore");
        let (w, h) = (300, 170);
        let plane = surface(w, h);
        let src = MemSource {
            w,
            h,
            planes: vec![plane.clone()],
            mask: None,
        };
        let m = create_store(
            manifest(&path, 1, None, 64),
            Box::new(src),
            2,
            "test",
            &mut |_| true,
        )
        .unwrap();
        assert_eq!(m.extent, Some(PixelRect::new(0, 0, 300, 170)));
        assert!(m.all_valid);
        let snap = Snapshot::open(&path, None).unwrap();
        let layout = *snap.layout().unwrap();
        assert_eq!(layout.top, 3);
        let mut buf = vec![0u8; w * h * 4];
        snap.read_region(
            0,
            0,
            PixelRect::new(0, 0, w as i64, h as i64),
            &mut buf,
            None,
        )
        .unwrap();
        assert_eq!(bytemuck::cast_slice::<u8, f32>(&buf), &plane[..]);
        // Level 1 is the mean of 2x2 blocks, cut at the far edges.
        let (lw, lh) = layout.level_size(1);
        let mut l1 = vec![0u8; (lw * lh) as usize * 4];
        let mut m1 = vec![0u8; (lw * lh) as usize];
        snap.read_region(0, 1, layout.level_rect(1), &mut l1, Some(&mut m1))
            .unwrap();
        let l1: &[f32] = bytemuck::cast_slice(&l1);
        for y in 0..lh as usize {
            for x in 0..lw as usize {
                let mut s = 0.0f64;
                let mut n = 0;
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let (sx, sy) = (2 * x + dx, 2 * y + dy);
                    if sx < w && sy < h {
                        s += plane[sy * w + sx] as f64;
                        n += 1;
                    }
                }
                assert_eq!(l1[y * lw as usize + x], (s / n as f64) as f32, "({x},{y})");
                assert_eq!(m1[y * lw as usize + x], 255);
            }
        }
    }

    #[test]
    fn cancelling_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.gridstore");
        let src = MemSource {
            w: 200,
            h: 200,
            planes: vec![surface(200, 200)],
            mask: None,
        };
        let mut calls = 0;
        let r = create_store(
            manifest(&path, 1, None, 32),
            Box::new(src),
            2,
            "test",
            &mut |_| {
                calls += 1;
                calls < 3
            },
        );
        assert!(matches!(r, Err(Error::Interrupted)));
        assert!(!path.exists());
    }

    #[test]
    fn masked_pixels_are_missing_and_empty_tiles_are_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gridstore");
        let (w, h) = (128, 64);
        // The left half is masked out: its two 32x32 tile columns hold no data.
        let mask: Vec<u8> = (0..w * h)
            .map(|i| if i % w < 64 { 0 } else { 255 })
            .collect();
        let src = MemSource {
            w,
            h,
            planes: vec![surface(w, h)],
            mask: Some(mask),
        };
        let m = create_store(
            manifest(&path, 1, None, 32),
            Box::new(src),
            1,
            "test",
            &mut |_| true,
        )
        .unwrap();
        assert!(!m.all_valid);
        let snap = Snapshot::open(&path, None).unwrap();
        assert!(snap.read_tile(&TileKey::base(0, 0)).unwrap().is_none());
        assert!(snap.read_tile(&TileKey::base(3, 1)).unwrap().is_some());
        // Level 0 (8 tiles, 4 empty) + level 1 (2 tiles, 1 empty) + level 2 (1 tile).
        assert_eq!(m.index.tiles, 4 + 1 + 1);
    }
}
