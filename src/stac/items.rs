//! The Items: one per time step of a store (or one for a store without time), each with the
//! store's place (EPSG:4326 and native), its bands, and assets that open that step.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::Result;

use super::facts::StoreFacts;
use super::hrefs::{connection, Hrefs, Target};
use super::model::{
    Asset, Item, ItemProperties, Link, PROJECTION_EXT, RASTER_EXT, STAC_VERSION, STORE_MEDIA_TYPE,
};

/// The id of the item of the step at `instant` (`None`: the store without time).
pub fn item_id(facts: &StoreFacts, instant: Option<&str>) -> String {
    match instant {
        None => facts.id.clone(),
        Some(at) => {
            let compact: String = at.chars().filter(|c| !matches!(c, '-' | ':')).collect();
            format!("{}-{compact}", facts.id)
        }
    }
}

/// The item of tick `t` (or of the whole store), with hrefs for a file in `from`.
pub fn item(facts: &StoreFacts, hrefs: &Hrefs, t: Option<u32>, from: &str) -> Result<Item> {
    let (when, instant) = step(facts, t)?;
    let id = item_id(facts, instant.as_deref());
    let mut gridstore = BTreeMap::new();
    gridstore.insert("gridstore:snapshot".into(), Value::from(facts.snapshot_id));
    let properties = ItemProperties {
        datetime: when.datetime,
        start_datetime: when.start,
        end_datetime: when.end,
        created: facts.created.clone(),
        projection: facts.projection.clone(),
        gridstore,
    };
    let mut extensions = vec![PROJECTION_EXT.to_string()];
    if uses_raster_fields(facts) {
        extensions.push(RASTER_EXT.to_string());
    }
    Ok(Item {
        kind: "Feature",
        stac_version: STAC_VERSION,
        stac_extensions: extensions,
        links: item_links(hrefs, &id, from)?,
        assets: assets(facts, hrefs, instant.as_deref(), from)?,
        id,
        collection: facts.id.clone(),
        geometry: facts.geometry.clone(),
        bbox: facts.bbox,
        properties,
    })
}

/// True when some band has a `raster:*` field, so the raster extension applies.
pub fn uses_raster_fields(facts: &StoreFacts) -> bool {
    facts
        .bands
        .iter()
        .any(|b| b.scale.is_some() || b.offset.is_some() || b.spatial_resolution.is_some())
}

/// When an item is valid.
struct When {
    datetime: String,
    start: Option<String>,
    end: Option<String>,
}

/// The item's time and, for a time step, its instant.
fn step(facts: &StoreFacts, t: Option<u32>) -> Result<(When, Option<String>)> {
    let (Some(time), Some(t)) = (&facts.time, t) else {
        // A store without time: the one instant it knows is when its state was committed.
        let when = When {
            datetime: facts.created.clone(),
            start: None,
            end: None,
        };
        return Ok((when, None));
    };
    let at = time.axis.instant(t)?.to_string();
    let interval = time.axis.interval(t)?;
    let when = When {
        datetime: at.clone(),
        start: interval.as_ref().map(|(a, _)| a.to_string()),
        end: interval.as_ref().map(|(_, b)| b.to_string()),
    };
    Ok((when, Some(at)))
}

/// The `data` asset (the store, or one step of it) and the kerchunk references.
fn assets(
    facts: &StoreFacts,
    hrefs: &Hrefs,
    instant: Option<&str>,
    from: &str,
) -> Result<BTreeMap<String, Asset>> {
    let mut out = BTreeMap::new();
    out.insert("data".into(), data_asset(facts, hrefs, instant, from)?);
    if let Some(refs) = &facts.refs {
        out.insert("references".into(), references_asset(hrefs, refs, from)?);
    }
    Ok(out)
}

/// The store as GDAL opens it: the time step at `instant` by its connection string
/// (`TIME=<instant>`); a whole store by its path (relative hrefs stay plain paths, which
/// STAC clients resolve against the file), or by the `GRIDSTORE:` prefix for a store on
/// the network.
pub fn data_asset(
    facts: &StoreFacts,
    hrefs: &Hrefs,
    instant: Option<&str>,
    from: &str,
) -> Result<Asset> {
    let href = hrefs.href(&facts.store, from)?;
    let remote = href.contains("://") || href.starts_with("/vsi");
    let href = match instant {
        Some(at) => connection(&href, Some(&format!("TIME={at}"))),
        None if remote => connection(&href, None),
        None => href,
    };
    let (title, description) = match instant {
        Some(at) => (
            format!("Time step {at}"),
            "This time step of the store, every store band as a band (GDAL, gridstore driver)",
        ),
        None => (
            "The store".to_string(),
            "The store at full resolution, its levels as overviews (GDAL, gridstore driver)",
        ),
    };
    Ok(Asset {
        href,
        media_type: STORE_MEDIA_TYPE.into(),
        title: Some(title),
        description: Some(description.into()),
        roles: vec!["data".into()],
        bands: facts.bands.clone(),
        cloud_format: None,
    })
}

/// The store's kerchunk references (JSON, version 1), for xarray through fsspec.
pub fn references_asset(hrefs: &Hrefs, refs: &Target, from: &str) -> Result<Asset> {
    Ok(Asset {
        href: hrefs.href(refs, from)?,
        media_type: "application/json".into(),
        title: Some("Kerchunk references".into()),
        description: Some(
            "Kerchunk references (version 1) to the store's chunks, for xarray and zarr \
             through fsspec's reference file system"
                .into(),
        ),
        roles: vec!["data".into()],
        bands: Vec::new(),
        cloud_format: Some("kerchunk".into()),
    })
}

/// collection, parent, root, and self when hrefs are absolute (STAC wants a self link
/// absolute; a catalog with relative links leaves it out).
fn item_links(hrefs: &Hrefs, id: &str, from: &str) -> Result<Vec<Link>> {
    let collection = hrefs.own("collection.json", from)?;
    let mut links = vec![
        Link::json("collection", collection.clone()),
        Link::json("parent", collection.clone()),
        Link::json("root", collection),
    ];
    if hrefs.absolute() {
        let own = hrefs.own(&format!("items/{id}.json"), from)?;
        links.push(Link {
            media_type: Some("application/geo+json".into()),
            ..Link::json("self", own)
        });
    }
    Ok(links)
}

/// The links of the ItemCollection: its collection, and itself when hrefs are absolute.
pub fn item_collection_links(hrefs: &Hrefs) -> Result<Vec<Link>> {
    let mut links = vec![Link::json("collection", hrefs.own("collection.json", "")?)];
    if hrefs.absolute() {
        links.push(Link {
            media_type: Some("application/geo+json".into()),
            ..Link::json("self", hrefs.own("item-collection.json", "")?)
        });
    }
    Ok(links)
}
