//! The Collection: the whole store, its extent in space and time, what its items hold
//! (`item_assets`, `summaries`), and the datacube extension's dimensions and variables.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::Result;

use super::facts::StoreFacts;
use super::hrefs::Hrefs;
use super::items::{data_asset, references_asset, uses_raster_fields};
use super::model::{
    Collection, Dimension, Extent, ItemAsset, Link, SpatialExtent, TemporalExtent, Variable,
    DATACUBE_EXT, PROJECTION_EXT, RASTER_EXT, STAC_VERSION, STORE_MEDIA_TYPE,
};

/// The collection of the store, linking to its items, given as (id, datetime) in time
/// order.
pub fn collection(
    facts: &StoreFacts,
    hrefs: &Hrefs,
    items: &[(String, String)],
    license: &str,
) -> Result<Collection> {
    let mut extensions = vec![PROJECTION_EXT.to_string(), DATACUBE_EXT.to_string()];
    if uses_raster_fields(facts) {
        extensions.push(RASTER_EXT.to_string());
    }
    let mut assets = BTreeMap::new();
    assets.insert("data".into(), data_asset(facts, hrefs, None, "")?);
    if let Some(refs) = &facts.refs {
        assets.insert("references".into(), references_asset(hrefs, refs, "")?);
    }
    Ok(Collection {
        kind: "Collection",
        stac_version: STAC_VERSION,
        stac_extensions: extensions,
        id: facts.id.clone(),
        title: facts.id.clone(),
        description: description(facts, items.len()),
        license: license.to_string(),
        extent: Extent {
            spatial: SpatialExtent {
                bbox: vec![facts.bbox],
            },
            temporal: TemporalExtent {
                interval: vec![interval(facts)?],
            },
        },
        summaries: summaries(facts, &interval(facts)?),
        item_assets: item_assets(facts),
        assets,
        dimensions: dimensions(facts, items)?,
        variables: variables(facts),
        links: links(hrefs, items)?,
    })
}

fn description(facts: &StoreFacts, items: usize) -> String {
    let time = match &facts.time {
        None => "a store without time axis, one item".to_string(),
        Some(t) => format!(
            "a store with a {} time axis, one item per time step ({items})",
            t.axis.kind.name()
        ),
    };
    format!(
        "gridstore store {} (snapshot {}): {time}",
        facts.id, facts.snapshot_id
    )
}

/// The time the items cover: from the first step to the last (their intervals when the
/// axis has bounds); for a store without time, the instant its snapshot was committed,
/// which is its one item's datetime.
fn interval(facts: &StoreFacts) -> Result<[Option<String>; 2]> {
    let Some(t) = &facts.time else {
        return Ok([Some(facts.created.clone()), Some(facts.created.clone())]);
    };
    let start = match t.axis.interval(t.first)? {
        Some((a, _)) => a,
        None => t.axis.instant(t.first)?,
    };
    let end = match t.axis.interval(t.last)? {
        Some((_, b)) => b,
        None => t.axis.instant(t.last)?,
    };
    Ok([Some(start.to_string()), Some(end.to_string())])
}

fn summaries(facts: &StoreFacts, when: &[Option<String>; 2]) -> BTreeMap<String, Value> {
    let p = &facts.projection;
    let mut out = BTreeMap::new();
    out.insert("proj:code".into(), json!([p.code]));
    out.insert("proj:epsg".into(), json!([p.epsg]));
    out.insert("proj:shape".into(), json!([p.shape]));
    out.insert("bands".into(), json!(facts.bands));
    out.insert(
        "datetime".into(),
        json!({"minimum": when[0], "maximum": when[1]}),
    );
    out
}

fn item_assets(facts: &StoreFacts) -> BTreeMap<String, ItemAsset> {
    let mut out = BTreeMap::new();
    let what = if facts.time.is_some() {
        "One time step of the store"
    } else {
        "The store"
    };
    out.insert(
        "data".into(),
        ItemAsset {
            media_type: STORE_MEDIA_TYPE.into(),
            title: what.into(),
            roles: vec!["data".into()],
            bands: facts.bands.clone(),
            cloud_format: None,
        },
    );
    if facts.refs.is_some() {
        out.insert(
            "references".into(),
            ItemAsset {
                media_type: "application/json".into(),
                title: "Kerchunk references".into(),
                roles: vec!["data".into()],
                bands: Vec::new(),
                cloud_format: Some("kerchunk".into()),
            },
        );
    }
    out
}

/// x, y (native CRS, extent and step as the geotransform has them), time, and bands.
fn dimensions(
    facts: &StoreFacts,
    items: &[(String, String)],
) -> Result<BTreeMap<String, Dimension>> {
    let p = &facts.projection;
    let reference = match (&p.epsg, &p.wkt2) {
        (Some(code), _) => json!(code),
        (None, Some(wkt)) => json!(wkt),
        (None, None) => Value::Null,
    };
    let mut out = BTreeMap::new();
    let spatial = |axis, extent, step| Dimension::Spatial {
        kind: "spatial",
        axis,
        extent,
        step,
        reference_system: reference.clone(),
    };
    out.insert(
        "x".into(),
        spatial("x", [p.bbox[0], p.bbox[2]], p.transform[0]),
    );
    out.insert(
        "y".into(),
        spatial("y", [p.bbox[1], p.bbox[3]], p.transform[4]),
    );
    if let Some(t) = &facts.time {
        let [first, last] = interval(facts)?;
        let values = match t.step {
            Some(_) => None,
            None => Some(items.iter().map(|(_, at)| at.clone()).collect()),
        };
        out.insert(
            "time".into(),
            Dimension::Temporal {
                kind: "temporal",
                extent: [first, last],
                values,
                step: t.step.clone(),
            },
        );
    }
    out.insert(
        "bands".into(),
        Dimension::Bands {
            kind: "bands",
            values: facts.band_names(),
        },
    );
    Ok(out)
}

/// One variable per store band, over (time,) y, x.
fn variables(facts: &StoreFacts) -> BTreeMap<String, Variable> {
    let mut dims: Vec<String> = Vec::new();
    if facts.time.is_some() {
        dims.push("time".into());
    }
    dims.extend(["y".to_string(), "x".to_string()]);
    facts
        .bands
        .iter()
        .map(|b| {
            (
                b.name.clone(),
                Variable {
                    dimensions: dims.clone(),
                    kind: "data",
                    nodata: b.nodata.clone(),
                    data_type: b.data_type.clone(),
                    unit: b.unit.clone(),
                },
            )
        })
        .collect()
}

/// root and an item link per item; self when hrefs are absolute.
fn links(hrefs: &Hrefs, items: &[(String, String)]) -> Result<Vec<Link>> {
    let mut links = vec![Link::json("root", hrefs.own("collection.json", "")?)];
    if hrefs.absolute() {
        links.push(Link::json("self", hrefs.own("collection.json", "")?));
    }
    for (id, _) in items {
        links.push(Link {
            media_type: Some("application/geo+json".into()),
            ..Link::json("item", hrefs.own(&format!("items/{id}.json"), "")?)
        });
    }
    Ok(links)
}
