//! What a catalog holds: items with a footprint, a half-open UTC time interval, flat
//! queryable properties, nested user data and band descriptions.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use super::footprint::Footprint;
use super::when::{format_us, parse_instant};
use crate::error::{Error, Result};

/// A flat, queryable property value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    String(String),
    /// UTC microseconds since 1970-01-01.
    Datetime(i64),
}

impl Value {
    /// The number, for integers and floats.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The kind of value, as comparisons group them: numbers, strings or datetimes.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Int(_) | Value::Float(_) => ValueKind::Number,
            Value::String(_) => ValueKind::String,
            Value::Datetime(_) => ValueKind::Datetime,
        }
    }

    /// As JSON: numbers and strings as such, datetimes as RFC 3339 strings.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Int(i) => json!(i),
            Value::Float(f) => json!(f),
            Value::String(s) => json!(s),
            Value::Datetime(us) => json!(format_us(*us)),
        }
    }

    /// From JSON: numbers, strings that are RFC 3339 datetimes (as datetimes), and other
    /// strings; `None` for anything else (objects, arrays, booleans, null), which are not
    /// queryable.
    pub fn from_json(v: &Json) -> Option<Value> {
        match v {
            Json::Number(n) => Some(match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64()?),
            }),
            Json::String(s) => Some(match parse_rfc3339_strict(s) {
                Some(us) => Value::Datetime(us),
                None => Value::String(s.clone()),
            }),
            _ => None,
        }
    }
}

/// Only full RFC 3339 timestamps (date, time and offset) count as datetimes in properties,
/// so that strings such as "2024" or "12" stay strings.
fn parse_rfc3339_strict(s: &str) -> Option<i64> {
    if s.len() < 20 || s.as_bytes().get(10).is_none_or(|&b| b != b'T' && b != b't') {
        return None;
    }
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_microsecond())
}

/// Numbers, strings and datetimes compare only within their own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Number,
    String,
    Datetime,
}

/// One catalog entry.
#[derive(Debug, Clone)]
pub struct Item {
    /// Unique within its collection.
    pub id: String,
    pub collection: String,
    /// Start of the item's time, UTC microseconds, included.
    pub start_us: i64,
    /// End of the item's time, UTC microseconds, excluded (`start_us + 1` for an instant).
    pub end_us: i64,
    pub footprint: Footprint,
    /// Flat queryable properties.
    pub properties: BTreeMap<String, Value>,
    /// Arbitrary nested user data, kept and returned as given (`Json::Null` for none).
    pub extra: Json,
    /// STAC 1.1 `bands` (an array, or `Json::Null` for none).
    pub bands: Json,
    /// Where the data is (a path or URL), if anywhere.
    pub href: Option<String>,
}

impl Item {
    /// Checks what every backend relies on: a non-empty id and collection, a non-empty
    /// time interval, property keys usable in queries.
    pub fn validate(&self) -> Result<()> {
        if self.id.is_empty() || self.collection.is_empty() {
            return Err(Error::InvalidInput(format!(
                "item {:?} of collection {:?}: an item needs a non-empty id and collection",
                self.id, self.collection
            )));
        }
        if self.end_us <= self.start_us {
            return Err(Error::InvalidInput(format!(
                "item {:?}: its time ends ({}) before or when it starts ({}); the end is \
                 excluded, so an instant ends one microsecond after it starts",
                self.id,
                format_us(self.end_us),
                format_us(self.start_us)
            )));
        }
        for (key, value) in &self.properties {
            check_property_key(key)?;
            if let Value::Float(f) = value {
                if !f.is_finite() {
                    return Err(Error::InvalidInput(format!(
                        "item {:?}: property {key:?} is {f}, not a finite number",
                        self.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// The item as a STAC-like GeoJSON Feature: geometry in EPSG:4326 (cut at the
    /// antimeridian), `properties` with the flat properties, times, projection fields and
    /// `bands`; nested user data under `properties["gridstore:extra"]`.
    pub fn to_stac(&self) -> Json {
        let mut props = Map::new();
        for (k, v) in &self.properties {
            props.insert(k.clone(), v.to_json());
        }
        if self.end_us == self.start_us + 1 {
            props.insert("datetime".into(), json!(format_us(self.start_us)));
        } else {
            props.insert("datetime".into(), Json::Null);
            props.insert("start_datetime".into(), json!(format_us(self.start_us)));
            // STAC's end is inclusive.
            props.insert("end_datetime".into(), json!(format_us(self.end_us - 1)));
        }
        let fp = &self.footprint;
        match fp.crs.epsg {
            Some(code) => props.insert("proj:code".into(), json!(format!("EPSG:{code}"))),
            None => props.insert("proj:wkt2".into(), json!(fp.crs.wkt)),
        };
        props.insert("proj:geometry".into(), fp.native_geojson());
        props.insert("proj:bbox".into(), json!(fp.native_bounds));
        if !self.bands.is_null() {
            props.insert("bands".into(), self.bands.clone());
        }
        if !self.extra.is_null() {
            props.insert("gridstore:extra".into(), self.extra.clone());
        }
        let mut feature = json!({
            "type": "Feature",
            "stac_version": "1.1.0",
            "id": self.id,
            "collection": self.collection,
            "bbox": fp.bbox_4326(),
            "geometry": fp.wgs84_geojson(),
            "properties": props,
            "links": [],
            "assets": {},
        });
        if let Some(href) = &self.href {
            feature["assets"] = json!({"data": {"href": href, "roles": ["data"]}});
        }
        feature
    }
}

/// Property keys end up in JSON paths and SQL; these characters are refused.
pub fn check_property_key(key: &str) -> Result<()> {
    if key.is_empty() || key.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(Error::InvalidInput(format!(
            "property name {key:?}: a property name must be non-empty and contain no \
             quote, backslash or control character"
        )));
    }
    Ok(())
}

/// Reads a datetime property or time bound given as text (RFC 3339, or a date or
/// date-time without offset, taken as UTC).
pub fn datetime_us(text: &str) -> Result<i64> {
    parse_instant(text)
}
