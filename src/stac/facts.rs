//! What the STAC documents say about a store, read once from its snapshot: where it lies
//! (native and EPSG:4326), its bands, its time axis, and the hrefs of the store and of its
//! kerchunk references.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::store::Snapshot;
use crate::time::{Calendar, TimeAxis};

use super::footprint;
use super::hrefs::{Hrefs, Target};
use super::model::{data_type_name, nodata_value, Band, Projection};

/// A store as the STAC documents describe it.
pub struct StoreFacts {
    /// The collection's id: the store's name without `.gridstore`.
    pub id: String,
    pub snapshot_id: u64,
    /// When the snapshot was committed (RFC 3339).
    pub created: String,
    pub projection: Projection,
    /// The footprint in EPSG:4326, and its bbox.
    pub geometry: Value,
    pub bbox: [f64; 4],
    pub bands: Vec<Band>,
    /// The store's location, and that of its kerchunk references.
    pub store: Target,
    pub refs: Option<Target>,
    pub time: Option<TimeFacts>,
}

/// A store's time axis.
pub struct TimeFacts {
    pub axis: TimeAxis,
    /// The ISO 8601 step of a regular axis; `None` for an irregular one.
    pub step: Option<String>,
    pub first: u32,
    pub last: u32,
}

impl StoreFacts {
    pub fn read(snapshot: &Snapshot, refs: Option<&str>, hrefs: &Hrefs) -> Result<StoreFacts> {
        let m = snapshot.manifest();
        let location = snapshot.location();
        let what = location.display();
        if m.grid.crs_wkt.is_empty() || !m.grid.georeferenced {
            return Err(Error::InvalidInput(format!(
                "{what}: the store has no CRS or no georeferencing, so it has no place on the \
                 earth for STAC items (geometry, bbox); give it a CRS when it is made \
                 (gdal_translate -a_srs, gridstore create --crs)"
            )));
        }
        let layout = snapshot.layout().ok_or_else(|| {
            Error::InvalidInput(format!(
                "{what}: the store holds no data yet: nothing to describe"
            ))
        })?;
        let (w, h) = layout.level_size(0);
        let gt = m.georef().geotransform(0, layout.base.x0, layout.base.y0);
        let projection = projection(m, gt, [w as u64, h as u64])?;
        let (geometry, bbox) = footprint::footprint_4326(&m.grid.crs_wkt, projection.bbox)?;
        let store = if crate::storage::is_vsi_path(location) {
            Target::Absolute(location.display().to_string())
        } else {
            Target::Local(location.canonicalize().map_err(|e| Error::Io {
                path: location.to_path_buf(),
                action: "find",
                cause: e,
            })?)
        };
        Ok(StoreFacts {
            id: collection_id(location),
            snapshot_id: m.snapshot.id,
            created: m.snapshot.created.clone(),
            geometry,
            bbox,
            bands: bands(m, gt),
            store,
            refs: refs.map(|r| refs_target(r, hrefs)),
            time: time_facts(m, &what.to_string())?,
            projection,
        })
    }

    /// The first and last ticks of the time axis; `None` for a store without time.
    pub fn time_range(&self) -> Option<(u32, u32)> {
        self.time.as_ref().map(|t| (t.first, t.last))
    }

    /// The datacube's name of each band (as the driver names a time store's variables).
    pub fn band_names(&self) -> Vec<String> {
        self.bands.iter().map(|b| b.name.clone()).collect()
    }
}

/// The store's name without its `.gridstore` extension.
pub fn collection_id(location: &std::path::Path) -> String {
    let name = location
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gridstore".into());
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The projection extension's fields for a raster of `shape` ([w, h]) at geotransform `gt`.
fn projection(m: &Manifest, gt: [f64; 6], shape: [u64; 2]) -> Result<Projection> {
    let [w, h] = shape;
    let (xa, xb) = (gt[0], gt[0] + w as f64 * gt[1]);
    let (ya, yb) = (gt[3], gt[3] + h as f64 * gt[5]);
    let bbox = [xa.min(xb), ya.min(yb), xa.max(xb), ya.max(yb)];
    let epsg = footprint::epsg_code(&m.grid.crs_wkt)?;
    let ring: Vec<[f64; 2]> = vec![
        [bbox[0], bbox[1]],
        [bbox[2], bbox[1]],
        [bbox[2], bbox[3]],
        [bbox[0], bbox[3]],
        [bbox[0], bbox[1]],
    ];
    Ok(Projection {
        code: epsg.map(|c| format!("EPSG:{c}")),
        epsg,
        wkt2: match epsg {
            Some(_) => None,
            None => Some(m.grid.crs_wkt.clone()),
        },
        geometry: json!({"type": "Polygon", "coordinates": [ring]}),
        bbox,
        shape: [h, w],
        transform: [gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]],
    })
}

/// The bands as STAC 1.1 common metadata has them (names as the driver's variables).
fn bands(m: &Manifest, gt: [f64; 6]) -> Vec<Band> {
    let square = gt[1].abs() == gt[5].abs();
    m.bands
        .iter()
        .enumerate()
        .map(|(i, b)| Band {
            name: crate::gdal::capi::time_view::variable_name(m, i),
            nodata: b.nodata.map(nodata_value),
            data_type: data_type_name(m.data_type).into(),
            unit: Some(b.unit.trim().to_string()).filter(|u| !u.is_empty()),
            scale: b.scale.filter(|&s| s != 1.0),
            offset: b.offset.filter(|&o| o != 0.0),
            spatial_resolution: square.then_some(gt[1].abs()),
        })
        .collect()
}

/// The kerchunk references' location: URLs and absolute paths as given, other paths
/// relative to the output directory.
fn refs_target(refs: &str, hrefs: &Hrefs) -> Target {
    if refs.contains("://") || refs.starts_with('/') {
        Target::Absolute(refs.to_string())
    } else {
        Target::Local(hrefs.out_path(refs))
    }
}

/// The time axis, refused when its calendar is not the one STAC's datetimes use.
fn time_facts(m: &Manifest, what: &str) -> Result<Option<TimeFacts>> {
    let Some(spec) = &m.time else {
        return Ok(None);
    };
    let axis = spec.axis()?;
    if !matches!(
        axis.calendar(),
        Calendar::Standard | Calendar::ProlepticGregorian
    ) {
        return Err(Error::NotSupported(format!(
            "{what}: the time axis is in the {} calendar, whose dates STAC (Gregorian, UTC) \
             cannot hold; read the store through GDAL or xarray instead",
            axis.calendar()
        )));
    }
    let (Some(first), Some(last)) = (spec.first, spec.last) else {
        return Err(Error::InvalidInput(format!(
            "{what}: the store's time axis holds no step yet: nothing to describe"
        )));
    };
    let step = match spec.kind {
        crate::time::AxisKind::Regular => Some(spec.step.clone()),
        crate::time::AxisKind::Irregular => None,
    };
    Ok(Some(TimeFacts {
        axis,
        step,
        first,
        last,
    }))
}
