//! Kerchunk references: a store as Zarr v2 arrays for readers without GDAL (xarray, zarr,
//! fsspec), whose chunks are byte ranges of the store's own chunk objects.
//!
//! The references (kerchunk JSON, version 1; docs/FORMAT.md, "Kerchunk references") hold
//! one Zarr group per level, `level_<z>`. Each holds one array per store band, `(y, x)` or
//! `(time, y, x)`, chunked by the blocks the store's chunks are cut in (R x C), so that
//! each band block of a tile, one frame of its chunk, is one Zarr chunk read through
//! numcodecs filters and a compressor that undo the chunk's predictor and codec. Beside
//! them: `x` and `y` (cell centres), `time` (CF units and calendar), `spatial_ref` (the
//! CF grid mapping, with the CRS as WKT) and, where some band has no nodata, `mask` (each
//! tile's mask frame, packed 8 pixels a byte). Chunk references are
//! `["{{root}}/<object key>", offset, length]`, with `root` a template, so that the
//! references move with the store.
//!
//! Everything is read through the store's [`Storage`](crate::storage::Storage): the
//! manifest, the index, and each chunk's head (one ranged read per tile); every offset and
//! length comes from a head checked as readers check it.

mod fill;
mod walk;
pub mod zarr;

pub use fill::{Missing, MAX_INLINE_CHUNKS};

use std::io::Write;

use serde_json::{json, Map, Value};

use crate::chunk::{self, Encoding};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::grid::{div_floor, Layout};
use crate::manifest::Manifest;
use crate::store::Snapshot;
use crate::time::{AxisKind, TimeDimension};
use zarr::Codecs;

/// Most columns or rows of level 0 (their coordinates are inline: 8 bytes each, a third
/// more as base64).
const MAX_COORDINATES: i64 = 1 << 26;
/// Most steps along the time dimension (their times are inline: 8 bytes each).
const MAX_LISTED_STEPS: usize = 10_000_000;

/// What [`write_references`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Levels, one group each.
    pub levels: usize,
    /// Arrays of data per level (one per store band).
    pub arrays: usize,
    /// Zarr chunks of the stored tiles (band blocks and masks), all levels and arrays.
    pub chunks: u64,
    /// Zarr chunks no tile holds, given inline data of the fill value ([`Missing::Inline`]).
    pub filled: u64,
    /// Length of the time dimension (`None`: the store has no time axis).
    pub steps: Option<u64>,
}

/// How the arrays of the references lie over the store: their levels, chunk shape, time
/// steps, names and codecs.
pub(crate) struct Plan {
    levels: Vec<LevelGrid>,
    /// Rows and columns of a Zarr chunk: the blocks of the store's chunks.
    block: (usize, usize),
    time: Option<TimeDimension>,
    /// The array of each store band.
    names: Vec<String>,
    dtype: DataType,
    encoding: Encoding,
    /// What decodes the store's encoding, or why nothing in numcodecs does.
    codecs: std::result::Result<Codecs, String>,
    /// Whether the arrays include `mask`, the tiles' validity masks (some band has no
    /// nodata value).
    mask: bool,
    /// The tile size T: the `mask` array has one chunk per tile.
    tile: usize,
    /// The inline chunk of a tile whose pixels all hold data (no mask frame).
    all_valid_mask: String,
}

/// One level's arrays, in level pixel coordinates: they start at (`ax0`, `ay0`), the
/// dataset's corner moved up and left onto the chunk grid, and end at (`x1`, `y1`), the
/// dataset's far corner.
struct LevelGrid {
    group: String,
    level: u8,
    /// The dataset's corner at this level.
    x0: i64,
    y0: i64,
    ax0: i64,
    ay0: i64,
    x1: i64,
    y1: i64,
    /// Rows and columns of a chunk.
    block: (usize, usize),
    /// The tile size: a `mask` chunk is one tile.
    tile: usize,
}

impl LevelGrid {
    /// Rows of chunks of the arrays.
    fn chunk_rows(&self) -> u64 {
        self.height().div_ceil(self.block.0 as u64)
    }
    /// Columns of chunks of the arrays.
    fn chunk_cols(&self) -> u64 {
        self.width().div_ceil(self.block.1 as u64)
    }
    /// Rows and columns of chunks of the `mask` array (one per tile).
    fn mask_chunks(&self) -> (u64, u64) {
        let t = self.tile as u64;
        (self.height().div_ceil(t), self.width().div_ceil(t))
    }
    fn width(&self) -> u64 {
        (self.x1 - self.ax0) as u64
    }
    fn height(&self) -> u64 {
        (self.y1 - self.ay0) as u64
    }
}

impl Plan {
    /// The length of the time dimension (1 without one).
    fn step_count(&self) -> u64 {
        self.time.as_ref().map_or(1, TimeDimension::len)
    }

    /// Chunks of one array over all levels and steps.
    fn chunk_count(&self) -> u64 {
        let per_step: u64 = self
            .levels
            .iter()
            .map(|l| l.chunk_rows().saturating_mul(l.chunk_cols()))
            .fold(0, u64::saturating_add);
        per_step.saturating_mul(self.step_count())
    }
}

/// The group holding level `z`.
pub fn group_name(z: u8) -> String {
    format!("level_{z}")
}

/// Writes kerchunk JSON references (version 1) of `snap` to `out`; chunk references name
/// objects as `{{root}}/<key>`, and the template `root` is `root` (the store's location as
/// readers of the references will reach it: a path relative to where they run, or a URL).
///
/// Refuses a store without data, a tile size that is not a whole number of blocks, and
/// any chunk whose encoding numcodecs cannot decode, naming it, the reason and what to
/// do. On an error, what was written to `out` is incomplete.
pub fn write_references(
    snap: &Snapshot,
    root: &str,
    missing: Missing,
    out: &mut dyn Write,
) -> Result<Summary> {
    let plan = plan(snap)?;
    let store = snap.location().display().to_string();
    let mut filler = fill::Filler::new(&plan, snap.manifest(), missing, &store)?;
    let mut refs = RefsWriter::begin(out, root)?;
    let mut written = 0u64;
    let mut put = |c: walk::ChunkEntry| {
        written += 1;
        refs.entry(&c.key, &c.value)
    };
    let chunks = {
        let mut emit = |c: walk::ChunkEntry| -> Result<()> {
            filler.note(&c.slot, c.mask, &mut put)?;
            put(c)
        };
        walk::for_each_chunk(snap, &plan, &mut emit)?
    };
    filler.finish(&mut put)?;
    let filled = written - chunks;
    let codecs = plan.codecs.clone().map_err(|reason| {
        Error::NotSupported(format!(
            "{}: the store's encoding cannot be given to Zarr readers: {reason}. Copy it into a \
             new store with -co COMPRESS=ZSTD and make references of that",
            snap.location().display()
        ))
    })?;
    for (key, value) in metadata(snap, &plan, &codecs)? {
        refs.entry(&key, &Value::String(value))?;
    }
    refs.end()?;
    Ok(Summary {
        levels: plan.levels.len(),
        arrays: plan.names.len(),
        chunks,
        filled,
        steps: plan.time.as_ref().map(TimeDimension::len),
    })
}

/// Works out the arrays: refuses what Zarr's regular chunk grid cannot hold.
fn plan(snap: &Snapshot) -> Result<Plan> {
    let m = snap.manifest();
    let store = snap.location();
    let layout = snap.layout().ok_or_else(|| {
        Error::InvalidInput(format!(
            "{}: the store holds no data yet, so there is nothing to reference",
            store.display()
        ))
    })?;
    let size = m.grid.tile_size as usize;
    let side = chunk::block_size(size, m.data_type.size());
    if size % side != 0 {
        return Err(Error::NotSupported(format!(
            "{}: its tiles of {size} pixels are cut in blocks of {side}, and the last blocks \
             of each tile are smaller: a Zarr array's chunks are all one size. Copy it into \
             a new store with a tile size that is a multiple of {side} (gdal_translate -of \
             GRIDSTORE -co BLOCKSIZE={} OLD.gridstore NEW.gridstore)",
            store.display(),
            size.div_ceil(side) * side
        )));
    }
    let (width, height) = layout.level_size(0);
    if width.max(height) > MAX_COORDINATES {
        return Err(Error::NotSupported(format!(
            "{}: the store is {width} x {height} pixels; references hold the x and y of every \
             column and row inline, for at most {MAX_COORDINATES} a side",
            store.display()
        )));
    }
    let enc = m.encoding();
    Ok(Plan {
        levels: level_grids(layout, size, side),
        block: (side, side),
        time: steps(snap)?,
        names: array_names(m),
        dtype: m.data_type,
        encoding: enc,
        codecs: zarr::codecs(m.data_type, enc.compression, enc.level, enc.predictor, true),
        mask: m.uses_mask(),
        tile: size,
        all_valid_mask: fill::encoded(&enc, &vec![0xff; size * size / 8])?,
    })
}

/// The arrays of each level: they start at the dataset's corner moved up and left onto
/// the tile grid (so that the `mask` array's chunks are tiles, and the others' blocks).
fn level_grids(layout: &Layout, tile: usize, side: usize) -> Vec<LevelGrid> {
    let t = tile as i64;
    (0..layout.level_count() as u8)
        .map(|z| {
            let r = layout.level_rect(z);
            LevelGrid {
                group: group_name(z),
                level: z,
                x0: r.x0,
                y0: r.y0,
                ax0: div_floor(r.x0, t) * t,
                ay0: div_floor(r.y0, t) * t,
                x1: r.x1,
                y1: r.y1,
                block: (side, side),
                tile,
            }
        })
        .collect()
}

/// The time dimension of a store with a time axis.
fn steps(snap: &Snapshot) -> Result<Option<TimeDimension>> {
    let Some(spec) = &snap.manifest().time else {
        return Ok(None);
    };
    let (Some(first), Some(last)) = (spec.first, spec.last) else {
        return Ok(Some(TimeDimension::Listed(Vec::new())));
    };
    if spec.kind == AxisKind::Regular {
        let count = u64::from(last.saturating_sub(first)) + 1;
        if count > MAX_LISTED_STEPS as u64 {
            return Err(Error::NotSupported(format!(
                "{}: the regular time axis spans {count} ticks from its first step to its \
                 last, more than the {MAX_LISTED_STEPS} whose times references hold inline",
                snap.location().display()
            )));
        }
        return Ok(Some(TimeDimension::Consecutive { first, count }));
    }
    let ticks = snap.steps(first, last, MAX_LISTED_STEPS + 1)?;
    if ticks.len() > MAX_LISTED_STEPS {
        return Err(Error::NotSupported(format!(
            "{}: the irregular time axis holds more than {MAX_LISTED_STEPS} steps, more than \
             references are written for",
            snap.location().display()
        )));
    }
    Ok(Some(TimeDimension::Listed(ticks)))
}

/// The array of each store band: its variable name (as GDAL's views give it), made unique
/// beside the coordinates by appending `_<band number>`.
fn array_names(m: &Manifest) -> Vec<String> {
    let mut taken: Vec<String> = ["time", "y", "x", "spatial_ref", "mask"]
        .map(String::from)
        .to_vec();
    let mut names = Vec::new();
    for band in 0..m.bands.len() {
        // A name is a key prefix: no `/`, and not one of Zarr's own names.
        let mut name = crate::gdal::capi::variable_name(m, band).replace('/', "_");
        if name.starts_with('.') || name.is_empty() {
            name = format!("band{}", band + 1);
        }
        if taken.contains(&name) {
            name = format!("{name}_{}", band + 1);
        }
        while taken.contains(&name) {
            name.push('_');
        }
        taken.push(name.clone());
        names.push(name);
    }
    names
}

/// Every metadata entry: the root group, and per level its group, coordinates, grid
/// mapping and arrays (`.zgroup`, `.zattrs`, `.zarray` documents and inline chunks).
fn metadata(snap: &Snapshot, plan: &Plan, codecs: &Codecs) -> Result<Vec<(String, String)>> {
    let m = snap.manifest();
    let mut out = vec![
        (".zgroup".to_string(), json!({"zarr_format": 2}).to_string()),
        (
            ".zattrs".to_string(),
            zarr::ascii_json(&root_attrs(m, plan)),
        ),
    ];
    let time = time_coordinate(m, plan)?;
    for level in &plan.levels {
        let g = &level.group;
        let mut put = |key: String, value: String| out.push((format!("{g}/{key}"), value));
        put(".zgroup".into(), json!({"zarr_format": 2}).to_string());
        put(".zattrs".into(), json!({"level": level.level}).to_string());
        let gt = geotransform(m, level);
        put_coordinates(&mut put, m, level, &gt, time.as_ref());
        if !m.grid.crs_wkt.is_empty() {
            put_spatial_ref(&mut put, m, &gt);
        }
        put_arrays(&mut put, m, plan, level, codecs);
    }
    Ok(out)
}

/// Where a level's metadata goes: a key below the level's group, and its value.
type Put<'a> = dyn FnMut(String, String) + 'a;

/// The time coordinate's values (in its CF units) and attributes, for a store with time.
fn time_coordinate(m: &Manifest, plan: &Plan) -> Result<Option<(Vec<f64>, Value)>> {
    let (Some(steps), Some(spec)) = (&plan.time, &m.time) else {
        return Ok(None);
    };
    let axis = spec.axis()?;
    let values = steps
        .ticks()
        .into_iter()
        .map(|t| axis.value(t))
        .collect::<Result<Vec<f64>>>()?;
    let attrs = json!({"units": spec.units, "calendar": spec.calendar,
        "standard_name": "time", "axis": "T"});
    Ok(Some((values, attrs)))
}

/// A level's coordinates, `x`, `y` and `time` if any, each in one inline chunk.
fn put_coordinates(
    put: &mut Put<'_>,
    m: &Manifest,
    level: &LevelGrid,
    gt: &[f64; 6],
    time: Option<&(Vec<f64>, Value)>,
) {
    for (axis, values) in [("x", x_values(level, gt)), ("y", y_values(level, gt))] {
        let (meta, chunk) = zarr::inline_f64(&values);
        put(format!("{axis}/.zarray"), meta);
        put(
            format!("{axis}/.zattrs"),
            zarr::zattrs(&[axis], coordinate_attrs(m, axis)),
        );
        put(format!("{axis}/0"), chunk);
    }
    if let Some((values, attrs)) = time {
        let (meta, chunk) = zarr::inline_f64(values);
        put("time/.zarray".into(), meta);
        put(
            "time/.zattrs".into(),
            zarr::zattrs(&["time"], as_map(attrs.clone())),
        );
        put("time/0".into(), chunk);
    }
}

/// The CF grid mapping variable `spatial_ref`: the CRS and the level's geotransform.
fn put_spatial_ref(put: &mut Put<'_>, m: &Manifest, gt: &[f64; 6]) {
    let plain = Codecs {
        dtype: "<i4".into(),
        filters: Value::Null,
        compressor: Value::Null,
    };
    put(
        "spatial_ref/.zarray".into(),
        zarr::zarray(&[], &[], &plain, json!(0)).expect("metadata"),
    );
    let gt_text = gt.map(|v| v.to_string()).join(" ");
    let attrs = json!({"crs_wkt": m.grid.crs_wkt, "spatial_ref": m.grid.crs_wkt,
        "GeoTransform": gt_text});
    put(
        "spatial_ref/.zattrs".into(),
        zarr::zattrs(&[], as_map(attrs)),
    );
}

/// A level's data arrays: the mask, if the store has one, and each band.
fn put_arrays(put: &mut Put<'_>, m: &Manifest, plan: &Plan, level: &LevelGrid, codecs: &Codecs) {
    let dims: Vec<&str> = match plan.time {
        Some(_) => vec!["time", "y", "x"],
        None => vec!["y", "x"],
    };
    let (rows, cols) = (plan.block.0 as u64, plan.block.1 as u64);
    let (shape, chunks) = match &plan.time {
        Some(steps) => (
            vec![steps.len(), level.height(), level.width()],
            vec![1, rows, cols],
        ),
        None => (vec![level.height(), level.width()], vec![rows, cols]),
    };
    if plan.mask {
        put("mask/.zarray".into(), mask_zarray(plan, level, codecs));
        let mut mask_dims = dims.clone();
        *mask_dims.last_mut().expect("x") = "mask_x";
        let attrs = json!({"long_name": "validity of the bands without nodata: 8 \
            pixels of x a byte, least significant bit first, 1 = data \
            (numpy.unpackbits(mask, axis=-1, bitorder='little'))"});
        put(
            "mask/.zattrs".into(),
            zarr::zattrs(&mask_dims, as_map(attrs)),
        );
    }
    let mapped = !m.grid.crs_wkt.is_empty();
    for (band, name) in plan.names.iter().enumerate() {
        let b = &m.bands[band];
        // A missing tile reads as the nodata value, or 0 in a band without one.
        let fill = zarr::fill_value(b.nodata.unwrap_or(0.0), m.data_type);
        let meta = zarr::zarray(&shape, &chunks, codecs, fill).expect("metadata");
        put(format!("{name}/.zarray"), meta);
        put(
            format!("{name}/.zattrs"),
            zarr::zattrs(&dims, band_attrs(m, band, mapped)),
        );
    }
}

/// The `.zarray` of a level's `mask`: one chunk of T rows of T / 8 bytes per tile (the
/// tile's mask frame), compressed as the store's frames, without a predictor; 0 (no data)
/// where no tile is.
fn mask_zarray(plan: &Plan, level: &LevelGrid, codecs: &Codecs) -> String {
    let t = plan.tile as u64;
    let bytes = Codecs {
        dtype: "|u1".into(),
        filters: Value::Null,
        compressor: codecs.compressor.clone(),
    };
    let (shape, chunks) = match &plan.time {
        Some(steps) => (
            vec![steps.len(), level.height(), level.width().div_ceil(8)],
            vec![1, t, t / 8],
        ),
        None => (
            vec![level.height(), level.width().div_ceil(8)],
            vec![t, t / 8],
        ),
    };
    zarr::zarray(&shape, &chunks, &bytes, json!(0)).expect("metadata")
}

fn as_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn root_attrs(m: &Manifest, plan: &Plan) -> Value {
    let datasets: Vec<Value> = plan
        .levels
        .iter()
        .map(|l| json!({"path": l.group, "level": l.level}))
        .collect();
    json!({
        "multiscales": [{"name": "gridstore levels", "datasets": datasets}],
        "gridstore": {"store_id": m.store_id, "snapshot": m.snapshot.id},
    })
}

/// The geotransform of level `level`'s arrays (from their corner on the chunk grid); for a
/// store without georeferencing, that of the dataset's pixel grid (level-0 pixels, y down,
/// the dataset's corner at 0), as GDAL gives it.
fn geotransform(m: &Manifest, level: &LevelGrid) -> [f64; 6] {
    if m.grid.georeferenced {
        return m.georef().geotransform(level.level, level.ax0, level.ay0);
    }
    let f = (1u64 << level.level) as f64;
    [
        (level.ax0 - level.x0) as f64 * f,
        f,
        0.0,
        (level.ay0 - level.y0) as f64 * f,
        0.0,
        f,
    ]
}

/// The x of each column's centre.
fn x_values(level: &LevelGrid, gt: &[f64; 6]) -> Vec<f64> {
    (0..level.width())
        .map(|j| gt[0] + (j as f64 + 0.5) * gt[1])
        .collect()
}

/// The y of each row's centre.
fn y_values(level: &LevelGrid, gt: &[f64; 6]) -> Vec<f64> {
    (0..level.height())
        .map(|i| gt[3] + (i as f64 + 0.5) * gt[5])
        .collect()
}

/// Whether a WKT CRS is geographic (its first keyword), for the CF names of the axes.
fn is_geographic(wkt: &str) -> bool {
    let keyword = wkt.trim_start().split('[').next().unwrap_or("");
    matches!(keyword, "GEOGCRS" | "GEOGCS" | "GEOGRAPHICCRS")
}

/// The CF attributes of coordinate `axis` (`x` or `y`).
fn coordinate_attrs(m: &Manifest, axis: &str) -> Map<String, Value> {
    let wkt = &m.grid.crs_wkt;
    let attrs = match (axis, wkt.is_empty(), is_geographic(wkt)) {
        (_, true, _) => json!({"long_name": format!("{axis} of the pixel grid")}),
        ("x", false, true) => json!({"standard_name": "longitude", "units": "degrees_east",
            "axis": "X"}),
        (_, false, true) => json!({"standard_name": "latitude", "units": "degrees_north",
            "axis": "Y"}),
        ("x", false, false) => json!({"standard_name": "projection_x_coordinate", "axis": "X"}),
        _ => json!({"standard_name": "projection_y_coordinate", "axis": "Y"}),
    };
    as_map(attrs)
}

/// The CF attributes of store band `band`'s array: its grid mapping, scale and offset,
/// unit and description.
fn band_attrs(m: &Manifest, band: usize, mapped: bool) -> Map<String, Value> {
    let b = &m.bands[band];
    let mut attrs = Map::new();
    // Which store band (from 1) the array holds: GDAL's band number.
    attrs.insert("gridstore_band".into(), json!(band + 1));
    if mapped {
        attrs.insert("grid_mapping".into(), json!("spatial_ref"));
    }
    if let Some(scale) = b.scale {
        attrs.insert("scale_factor".into(), json!(scale));
    }
    if let Some(offset) = b.offset {
        attrs.insert("add_offset".into(), json!(offset));
    }
    if !b.unit.is_empty() {
        attrs.insert("units".into(), json!(b.unit));
    }
    if !b.description.is_empty() {
        attrs.insert("long_name".into(), json!(b.description));
    }
    attrs
}

/// Writes the references document as it goes: the chunk references of a large store are
/// never all held in memory.
struct RefsWriter<'a> {
    out: &'a mut dyn Write,
    first: bool,
}

impl<'a> RefsWriter<'a> {
    fn begin(out: &'a mut dyn Write, root: &str) -> Result<Self> {
        let head = format!(
            "{{\"version\":1,\"templates\":{{\"root\":{}}},\"refs\":{{",
            Value::String(root.to_string())
        );
        let mut w = RefsWriter { out, first: true };
        w.write(head.as_bytes())?;
        Ok(w)
    }

    /// One reference: `key` and its value (a JSON document as text, inline data, or
    /// `[url, offset, length]`).
    fn entry(&mut self, key: &str, value: &Value) -> Result<()> {
        let sep = if std::mem::replace(&mut self.first, false) {
            "\n"
        } else {
            ",\n"
        };
        let line = format!("{sep}{}:{value}", Value::String(key.to_string()));
        self.write(line.as_bytes())
    }

    fn end(mut self) -> Result<()> {
        self.write(b"\n}}\n")?;
        self.out
            .flush()
            .map_err(|e| Error::io("references", "writing", e))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io("references", "writing", e))
    }
}
