//! What a catalog holds: items with a footprint, a half-open UTC time interval, flat
//! queryable properties, nested user data and band descriptions.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value as Json};

use super::footprint::{Footprint, GeoJson};
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
        serde_json::to_value(self.stac_feature()).unwrap_or(Json::Null)
    }

    /// [`Item::to_stac`] to be serialized as it is written, without a JSON tree.
    pub fn stac_feature(&self) -> StacFeature<'_> {
        StacFeature(self)
    }
}

/// See [`Item::stac_feature`].
pub struct StacFeature<'a>(&'a Item);

impl Serialize for StacFeature<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let item = self.0;
        let fp = &item.footprint;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", "Feature")?;
        m.serialize_entry("stac_version", "1.1.0")?;
        m.serialize_entry("id", &item.id)?;
        m.serialize_entry("collection", &item.collection)?;
        m.serialize_entry("bbox", &fp.bbox_4326())?;
        m.serialize_entry("geometry", &fp.wgs84_geometry())?;
        m.serialize_entry("properties", &StacProperties(item))?;
        m.serialize_entry("links", &[(); 0])?;
        match &item.href {
            Some(href) => m.serialize_entry(
                "assets",
                &json!({"data": {"href": href, "roles": ["data"]}}),
            )?,
            None => m.serialize_entry("assets", &json!({}))?,
        }
        m.end()
    }
}

/// A Feature's `properties`: the flat ones, then those the item holds as fields.
struct StacProperties<'a>(&'a Item);

impl Serialize for StacProperties<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let fields = item_fields(self.0);
        let mut m = s.serialize_map(None)?;
        for (k, v) in &self.0.properties {
            // A flat property named as a field the item writes gives way to the field.
            if !fields.iter().any(|(name, _)| name == k) {
                m.serialize_entry(k, v)?;
            }
        }
        for (name, value) in &fields {
            m.serialize_entry(name, value)?;
        }
        m.end()
    }
}

/// A property a Feature takes from the item's own fields.
enum Field<'a> {
    Null,
    Text(String),
    Geometry(GeoJson),
    Bounds(&'a [f64; 4]),
    Json(&'a Json),
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Field::Null => s.serialize_unit(),
            Field::Text(t) => s.serialize_str(t),
            Field::Geometry(g) => g.serialize(s),
            Field::Bounds(b) => b.serialize(s),
            Field::Json(j) => j.serialize(s),
        }
    }
}

/// The properties a Feature takes from the item's fields: times, projection and bands.
fn item_fields(item: &Item) -> Vec<(&'static str, Field<'_>)> {
    let fp = &item.footprint;
    let mut fields = Vec::with_capacity(8);
    if item.end_us == item.start_us + 1 {
        fields.push(("datetime", Field::Text(format_us(item.start_us))));
    } else {
        fields.push(("datetime", Field::Null));
        fields.push(("start_datetime", Field::Text(format_us(item.start_us))));
        // STAC's end is inclusive.
        fields.push(("end_datetime", Field::Text(format_us(item.end_us - 1))));
    }
    match fp.crs.epsg {
        Some(code) => fields.push(("proj:code", Field::Text(format!("EPSG:{code}")))),
        None => fields.push(("proj:wkt2", Field::Text(fp.crs.wkt.clone()))),
    }
    fields.push(("proj:geometry", Field::Geometry(fp.native_geometry())));
    fields.push(("proj:bbox", Field::Bounds(&fp.native_bounds)));
    if !item.bands.is_null() {
        fields.push(("bands", Field::Json(&item.bands)));
    }
    if !item.extra.is_null() {
        fields.push(("gridstore:extra", Field::Json(&item.extra)));
    }
    fields
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::String(t) => s.serialize_str(t),
            Value::Datetime(us) => s.serialize_str(&format_us(*us)),
        }
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
