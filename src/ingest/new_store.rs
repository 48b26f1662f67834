//! A new store's manifest, made from what a source raster is.

use std::collections::BTreeMap;

use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::manifest::{
    BandSpec, EncodingSpec, GridSpec, IndexSpec, Manifest, PyramidSpec, SnapshotInfo, FORMAT_NAME,
};
use crate::options::CreateOptions;

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
    let (origin, cell_size, georeferenced) = grid_placement(source.geotransform)?;
    for (i, b) in source.bands.iter().enumerate() {
        if let Some(nd) = b.nodata {
            check_nodata_fits(nd, source.data_type, i)?;
        }
    }
    let pyramid = default_pyramid(&source.bands, opts)?;
    Ok(Manifest {
        format: FORMAT_NAME.into(),
        format_version: opts.format_version,
        store_id: random_id(),
        snapshot: SnapshotInfo {
            id: 0,
            parent: None,
            created: String::new(),
            writer: String::new(),
            tiles_written: 0,
            tiles_removed: 0,
            restores: None,
            checkpoint: None,
            steps: None,
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
        pyramids: vec![pyramid],
        extent: None,
        all_valid: true,
        time: None,
        index: IndexSpec {
            root: None,
            tiles: 0,
            bytes: 0,
            root_copy: None,
        },
        sources: None,
    })
}

/// Where a grid lies, from a GDAL geotransform: the origin (top-left corner of pixel
/// (0, 0)), the cell size, and whether it is georeferenced at all (`None`: pixel space).
pub type Placement = ([f64; 2], [f64; 2], bool);

/// The placement of a raster's own grid, from its geotransform (north-up only).
pub fn grid_placement(geotransform: Option<[f64; 6]>) -> Result<Placement> {
    let Some(gt) = geotransform else {
        return Ok(([0.0, 0.0], [1.0, 1.0], false));
    };
    if gt[2] != 0.0 || gt[4] != 0.0 {
        return Err(Error::NotSupported(format!(
            "the geotransform {gt:?} is rotated or sheared; a store's grid is north-up: \
             warp the raster first with gdalwarp"
        )));
    }
    if gt[1] == 0.0 || gt[5] == 0.0 || !gt.iter().all(|v| v.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "the geotransform {gt:?} has a zero or non-finite cell size"
        )));
    }
    Ok(([gt[0], gt[3]], [gt[1], gt[5]], true))
}

/// The one pyramid of a new store: each band's levels made as the options say, by
/// default averaged (nearest for bands with a colour table).
pub fn default_pyramid(bands: &[BandSpec], opts: &CreateOptions) -> Result<PyramidSpec> {
    let has_table: Vec<bool> = bands.iter().map(|b| b.color_table.is_some()).collect();
    Ok(PyramidSpec {
        name: "default".into(),
        resampling: opts.resolve_resampling(&has_table)?,
    })
}

/// An integer band's nodata value must be one of its values, or nothing could equal it.
pub fn check_nodata_fits(nd: f64, dtype: DataType, band: usize) -> Result<()> {
    if !dtype.can_hold(nd) {
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
