//! The STAC documents `gridstore stac` writes, as plain serde structs: a Collection, Items
//! and an ItemCollection (STAC 1.1.0), with the fields of the projection (v1.2.0), raster
//! (v2.0.0) and datacube (v2.3.0) extensions that a store fills.
//!
//! Only what gridstore writes is modelled; optional fields left empty are not written.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

pub const STAC_VERSION: &str = "1.1.0";
/// Projection v1.2.0: the last version that has both `proj:code` and `proj:epsg` (v2.0.0
/// removed `proj:epsg`, which GDAL 3.6's STACIT driver needs).
pub const PROJECTION_EXT: &str = "https://stac-extensions.github.io/projection/v1.2.0/schema.json";
pub const RASTER_EXT: &str = "https://stac-extensions.github.io/raster/v2.0.0/schema.json";
pub const DATACUBE_EXT: &str = "https://stac-extensions.github.io/datacube/v2.3.0/schema.json";

/// The media type of a gridstore store (no registered one exists).
pub const STORE_MEDIA_TYPE: &str = "application/vnd.gridstore";

#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub rel: String,
    pub href: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl Link {
    pub fn json(rel: &str, href: String) -> Link {
        Link {
            rel: rel.into(),
            href,
            media_type: Some("application/json".into()),
            title: None,
        }
    }
}

/// A band as STAC 1.1 common metadata describes it, with the raster extension's packing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Band {
    pub name: String,
    /// A number, or "nan", "inf", "-inf".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodata: Option<Value>,
    pub data_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(rename = "raster:scale", skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    #[serde(rename = "raster:offset", skip_serializing_if = "Option::is_none")]
    pub offset: Option<f64>,
    #[serde(
        rename = "raster:spatial_resolution",
        skip_serializing_if = "Option::is_none"
    )]
    pub spatial_resolution: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Asset {
    pub href: String,
    #[serde(rename = "type")]
    pub media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<Band>,
    /// Set on kerchunk references (`"kerchunk"`), as CEDA's and other clients look for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_format: Option<String>,
}

/// An asset as the Collection's `item_assets` announces it: no href.
#[derive(Debug, Clone, Serialize)]
pub struct ItemAsset {
    #[serde(rename = "type")]
    pub media_type: String,
    pub title: String,
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<Band>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_format: Option<String>,
}

/// Where an item lies in its own CRS (projection extension).
#[derive(Debug, Clone, Serialize)]
pub struct Projection {
    /// "EPSG:n", or null for a CRS without an EPSG code (then `proj:wkt2` says it).
    #[serde(rename = "proj:code")]
    pub code: Option<String>,
    /// The same code as a number, for GDAL 3.6's STACIT driver; null with `proj:code`.
    #[serde(rename = "proj:epsg")]
    pub epsg: Option<u32>,
    #[serde(rename = "proj:wkt2", skip_serializing_if = "Option::is_none")]
    pub wkt2: Option<String>,
    #[serde(rename = "proj:geometry")]
    pub geometry: Value,
    #[serde(rename = "proj:bbox")]
    pub bbox: [f64; 4],
    /// [rows, columns].
    #[serde(rename = "proj:shape")]
    pub shape: [u64; 2],
    /// Rasterio's order: [xres, 0, x0, 0, yres, y0].
    #[serde(rename = "proj:transform")]
    pub transform: [f64; 6],
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemProperties {
    /// The step's instant; for a store without time, when its snapshot was committed.
    pub datetime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_datetime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_datetime: Option<String>,
    pub created: String,
    #[serde(flatten)]
    pub projection: Projection,
    /// `gridstore:*` fields: the store's snapshot and the step's tick.
    #[serde(flatten)]
    pub gridstore: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub stac_version: &'static str,
    pub stac_extensions: Vec<String>,
    pub id: String,
    pub collection: String,
    pub geometry: Value,
    /// [west, south, east, north]; west > east when the item crosses the antimeridian.
    pub bbox: [f64; 4],
    pub properties: ItemProperties,
    pub links: Vec<Link>,
    pub assets: BTreeMap<String, Asset>,
}

/// A GeoJSON FeatureCollection of items, which GDAL's STACIT driver opens.
#[derive(Debug, Clone, Serialize)]
pub struct ItemCollection<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub features: &'a [Item],
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpatialExtent {
    pub bbox: Vec<[f64; 4]>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TemporalExtent {
    pub interval: Vec<[Option<String>; 2]>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Extent {
    pub spatial: SpatialExtent,
    pub temporal: TemporalExtent,
}

/// A datacube dimension: spatial (x, y), temporal, or the bands.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Dimension {
    Spatial {
        #[serde(rename = "type")]
        kind: &'static str,
        axis: &'static str,
        extent: [f64; 2],
        step: f64,
        reference_system: Value,
    },
    Temporal {
        #[serde(rename = "type")]
        kind: &'static str,
        extent: [Option<String>; 2],
        #[serde(skip_serializing_if = "Option::is_none")]
        values: Option<Vec<String>>,
        /// ISO 8601 duration of a regular axis; null for an irregular one.
        step: Option<String>,
    },
    Bands {
        #[serde(rename = "type")]
        kind: &'static str,
        values: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Variable {
    pub dimensions: Vec<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodata: Option<Value>,
    pub data_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Collection {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub stac_version: &'static str,
    pub stac_extensions: Vec<String>,
    pub id: String,
    pub title: String,
    pub description: String,
    pub license: String,
    pub extent: Extent,
    pub summaries: BTreeMap<String, Value>,
    pub item_assets: BTreeMap<String, ItemAsset>,
    pub assets: BTreeMap<String, Asset>,
    #[serde(rename = "cube:dimensions")]
    pub dimensions: BTreeMap<String, Dimension>,
    #[serde(rename = "cube:variables")]
    pub variables: BTreeMap<String, Variable>,
    pub links: Vec<Link>,
}

/// STAC's name of a sample type (common metadata `data_type`).
pub fn data_type_name(t: crate::dtype::DataType) -> &'static str {
    use crate::dtype::DataType::*;
    match t {
        Byte => "uint8",
        UInt16 => "uint16",
        Int16 => "int16",
        UInt32 => "uint32",
        Int32 => "int32",
        Float32 => "float32",
        Float64 => "float64",
    }
}

/// A nodata value as STAC writes it: a number, or "nan", "inf", "-inf".
pub fn nodata_value(v: f64) -> Value {
    if v.is_nan() {
        Value::from("nan")
    } else if v.is_infinite() {
        Value::from(if v > 0.0 { "inf" } else { "-inf" })
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodata_spells_nan_and_infinities_as_strings() {
        assert_eq!(nodata_value(f64::NAN), Value::from("nan"));
        assert_eq!(nodata_value(f64::NEG_INFINITY), Value::from("-inf"));
        assert_eq!(nodata_value(-9999.0), Value::from(-9999));
        assert_eq!(nodata_value(0.5), Value::from(0.5));
    }
}
