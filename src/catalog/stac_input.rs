//! Catalog items from STAC: a Feature, an ItemCollection (FeatureCollection), or JSON
//! lines of either.
//!
//! The footprint is `proj:geometry` in the CRS of `proj:code` / `proj:epsg` /
//! `proj:wkt2` when the item (or its first asset carrying them) has both, else the item's
//! `geometry` in EPSG:4326. Times: `datetime`, or `start_datetime` / `end_datetime` (STAC's
//! inclusive end becomes an excluded end one microsecond later). Flat properties (numbers,
//! strings, RFC 3339 timestamps) are queryable; nested ones, and the assets, are kept as
//! the item's extra data.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use super::footprint::{Crs, Footprint};
use super::item::{check_property_key, Item, Value};
use super::when::parse_instant;
use crate::error::{Error, Result};

/// Properties that become the item's time, footprint or bands rather than properties.
const RESERVED: &[&str] = &[
    "datetime",
    "start_datetime",
    "end_datetime",
    "proj:geometry",
    "proj:code",
    "proj:epsg",
    "proj:wkt2",
    "proj:projjson",
    "proj:bbox",
    "bands",
    "gridstore:extra",
];

/// The STAC items in a text: one JSON document (Feature or FeatureCollection), or JSON
/// lines. `collection` overrides the items' own collection; items without one need it.
pub fn items_from_text(text: &str, collection: Option<&str>, origin: &str) -> Result<Vec<Item>> {
    let docs: Vec<Json> = match serde_json::from_str::<Json>(text) {
        Ok(doc) => vec![doc],
        Err(_) => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| {
                serde_json::from_str(l.trim_start_matches('\u{1e}')).map_err(|e| {
                    Error::InvalidInput(format!("{origin}, line {}: not JSON ({e})", n + 1))
                })
            })
            .collect::<Result<_>>()?,
    };
    let mut out = Vec::new();
    for doc in docs {
        match doc.get("type").and_then(Json::as_str) {
            Some("FeatureCollection") => {
                let features = doc
                    .get("features")
                    .and_then(Json::as_array)
                    .ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "{origin}: a FeatureCollection without features"
                        ))
                    })?;
                for f in features {
                    out.push(item_from_stac(f, collection).map_err(|e| located(origin, e))?);
                }
            }
            _ => out.push(item_from_stac(&doc, collection).map_err(|e| located(origin, e))?),
        }
    }
    Ok(out)
}

fn located(origin: &str, e: Error) -> Error {
    match e {
        Error::InvalidInput(m) => Error::InvalidInput(format!("{origin}: {m}")),
        other => other,
    }
}

/// One STAC Item as a catalog item.
pub fn item_from_stac(f: &Json, collection: Option<&str>) -> Result<Item> {
    if f.get("type").and_then(Json::as_str) != Some("Feature") {
        return Err(Error::InvalidInput(
            "not a STAC Item (a GeoJSON object with \"type\": \"Feature\")".into(),
        ));
    }
    let id = f
        .get("id")
        .and_then(Json::as_str)
        .ok_or_else(|| Error::InvalidInput("a STAC Item without a string \"id\"".into()))?;
    let bad = |what: String| Error::InvalidInput(format!("item {id:?}: {what}"));
    let collection = collection
        .or_else(|| f.get("collection").and_then(Json::as_str))
        .ok_or_else(|| bad("has no \"collection\"; give one with --collection".into()))?;
    let empty = Map::new();
    let props = f
        .get("properties")
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let (start_us, end_us) = times(props).map_err(|e| bad(e.to_string()))?;
    let footprint = footprint(f, props).map_err(|e| bad(e.to_string()))?;
    let (properties, mut extra) = split_properties(props);
    if let Some(assets) = f
        .get("assets")
        .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
    {
        extra.insert("assets".into(), assets.clone());
    }
    let extra = match props.get("gridstore:extra") {
        Some(own) => own.clone(),
        None if extra.is_empty() => Json::Null,
        None => Json::Object(extra),
    };
    Ok(Item {
        id: id.to_string(),
        collection: collection.to_string(),
        start_us,
        end_us,
        footprint,
        properties,
        extra,
        bands: props.get("bands").cloned().unwrap_or(Json::Null),
        href: href(f),
    })
}

fn times(props: &Map<String, Json>) -> Result<(i64, i64)> {
    let get = |k: &str| props.get(k).and_then(Json::as_str);
    if let (Some(a), Some(b)) = (get("start_datetime"), get("end_datetime")) {
        let (a, b) = (parse_instant(a)?, parse_instant(b)?);
        if b < a {
            return Err(Error::InvalidInput(
                "end_datetime is before start_datetime".into(),
            ));
        }
        return Ok((a, b + 1));
    }
    let t = get("datetime").ok_or_else(|| {
        Error::InvalidInput(
            "has no time (properties.datetime, or start_datetime and end_datetime)".into(),
        )
    })?;
    let t = parse_instant(t)?;
    Ok((t, t + 1))
}

/// `proj:*` fields from the properties, else from the first asset that has them.
fn footprint(f: &Json, props: &Map<String, Json>) -> Result<Footprint> {
    let assets = f.get("assets").and_then(Json::as_object);
    let holders = std::iter::once(props).chain(
        assets
            .into_iter()
            .flat_map(|a| a.values().filter_map(Json::as_object)),
    );
    for h in holders {
        let Some(geometry) = h.get("proj:geometry") else {
            continue;
        };
        let crs = if let Some(code) = h.get("proj:code").and_then(Json::as_str) {
            Some(code.to_string())
        } else if let Some(epsg) = h.get("proj:epsg").and_then(Json::as_i64) {
            Some(format!("EPSG:{epsg}"))
        } else {
            h.get("proj:wkt2")
                .and_then(Json::as_str)
                .map(str::to_string)
        };
        if let Some(crs) = crs {
            return Footprint::from_geojson(Crs::from_user(&crs)?, geometry);
        }
    }
    let geometry = f.get("geometry").filter(|g| !g.is_null()).ok_or_else(|| {
        Error::InvalidInput("has neither a geometry nor proj:geometry with its CRS".into())
    })?;
    Footprint::from_geojson(Crs::wgs84(), geometry)
}

/// Flat properties (queryable) and the rest (kept).
fn split_properties(props: &Map<String, Json>) -> (BTreeMap<String, Value>, Map<String, Json>) {
    let mut flat = BTreeMap::new();
    let mut rest = Map::new();
    for (k, v) in props {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        match Value::from_json(v).filter(|_| check_property_key(k).is_ok()) {
            Some(value) => {
                flat.insert(k.clone(), value);
            }
            None if !v.is_null() => {
                rest.insert(k.clone(), v.clone());
            }
            None => {}
        }
    }
    (flat, rest)
}

/// The `data` asset's href, else the first asset's.
fn href(f: &Json) -> Option<String> {
    let assets = f.get("assets")?.as_object()?;
    let asset = assets.get("data").or_else(|| assets.values().next())?;
    asset.get("href")?.as_str().map(str::to_string)
}
