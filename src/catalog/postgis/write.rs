//! Adding and removing items: one transaction per batch, copied in binary.

use std::collections::{HashMap, HashSet};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::Transaction;
use serde_json::{json, Map, Value as Json};

use super::summary::{self, Tallies, Tally};
use super::{schema, PostgisCatalog};
use crate::catalog::{Crs, Item, Value};
use crate::error::Result;

/// The columns of [`schema::STAGE`], in order.
const STAGE_TYPES: [Type; 14] = [
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT4,
    Type::BYTEA,
    Type::FLOAT8_ARRAY,
    Type::BYTEA,
    Type::FLOAT8_ARRAY,
    Type::FLOAT8,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::TEXT,
];

/// Adds `items` (the last of several with the same collection and id wins) in one
/// transaction, with the parts' boxes and the summaries.
pub fn add_batch(catalog: &mut PostgisCatalog, items: &[Item]) -> Result<()> {
    for item in items {
        item.validate()?;
    }
    let items = last_of_each(items);
    if items.is_empty() {
        return Ok(());
    }
    let crs_ids = crs_ids(catalog, &items)?;
    let mut client = catalog.client.borrow_mut();
    let fail = |e| catalog.fail(e, "cannot add the items");
    let mut tx = client.transaction().map_err(fail)?;
    tx.batch_execute(schema::STAGE).map_err(fail)?;
    copy_into_stage(&mut tx, &items, &crs_ids).map_err(fail)?;
    let replaced: i64 = tx
        .query_one(
            "SELECT count(*) FROM stage s JOIN gridstore.items i \
             ON i.collection = s.collection AND i.id = s.id",
            &[],
        )
        .map_err(fail)?
        .get(0);
    if replaced > 0 {
        tx.execute(
            "DELETE FROM gridstore.parts p USING stage s \
             WHERE p.collection = s.collection AND p.id = s.id",
            &[],
        )
        .map_err(fail)?;
    }
    tx.execute(schema::MERGE_STAGE, &[]).map_err(fail)?;
    tx.execute(schema::STAGE_PARTS, &[]).map_err(fail)?;
    if replaced > 0 {
        let collections: HashSet<&str> = items.iter().map(|i| i.collection.as_str()).collect();
        for c in collections {
            summary::rebuild(&mut tx, c).map_err(fail)?;
        }
    } else {
        let mut tallies = Tallies::new();
        for item in &items {
            let key = (item.collection.clone(), crs_ids[&item.footprint.crs.key()]);
            summary::add(&mut tallies, key, Tally::of(item));
        }
        summary::grow(&mut tx, &tallies).map_err(fail)?;
    }
    tx.commit().map_err(fail)
}

/// Removes items (or a whole collection) and brings its summaries up to date.
pub fn remove(
    catalog: &mut PostgisCatalog,
    collection: &str,
    ids: Option<&[String]>,
) -> Result<u64> {
    let mut client = catalog.client.borrow_mut();
    let fail = |e| catalog.fail(e, "cannot remove the items");
    let mut tx = client.transaction().map_err(fail)?;
    let removed = match ids {
        Some(ids) => {
            tx.execute(
                "DELETE FROM gridstore.parts WHERE collection = $1 AND id = ANY($2)",
                &[&collection, &ids],
            )
            .map_err(fail)?;
            tx.execute(
                "DELETE FROM gridstore.items WHERE collection = $1 AND id = ANY($2)",
                &[&collection, &ids],
            )
            .map_err(fail)?
        }
        None => {
            tx.execute(
                "DELETE FROM gridstore.parts WHERE collection = $1",
                &[&collection],
            )
            .map_err(fail)?;
            tx.execute(
                "DELETE FROM gridstore.items WHERE collection = $1",
                &[&collection],
            )
            .map_err(fail)?
        }
    };
    summary::rebuild(&mut tx, collection).map_err(fail)?;
    tx.commit().map_err(fail)?;
    Ok(removed)
}

/// The items without earlier duplicates of a (collection, id) pair: a row may be written
/// only once per statement.
fn last_of_each(items: &[Item]) -> Vec<&Item> {
    let mut last: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        last.insert((&item.collection, &item.id), i);
    }
    items
        .iter()
        .enumerate()
        .filter(|(i, item)| last[&(item.collection.as_str(), item.id.as_str())] == *i)
        .map(|(_, item)| item)
        .collect()
}

/// The id of each CRS of the items, by key, recorded in the CRS table when new.
fn crs_ids(catalog: &PostgisCatalog, items: &[&Item]) -> Result<HashMap<String, i32>> {
    let mut ids = HashMap::new();
    for item in items {
        let crs = &item.footprint.crs;
        let key = crs.key();
        if ids.contains_key(&key) {
            continue;
        }
        let id = crs_id(catalog, &key, crs)?;
        ids.insert(key, id);
    }
    Ok(ids)
}

fn crs_id(catalog: &PostgisCatalog, key: &str, crs: &Crs) -> Result<i32> {
    let epsg = crs.epsg.and_then(|e| i32::try_from(e).ok());
    let row = catalog
        .client
        .borrow_mut()
        .query_one(
            "INSERT INTO gridstore.crs (key, wkt, epsg) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING crs_id",
            &[&key, &crs.wkt, &epsg],
        )
        .map_err(|e| catalog.fail(e, "cannot record a CRS"))?;
    let id: i32 = row.get(0);
    catalog.crs.borrow_mut().insert(id, crs.clone());
    Ok(id)
}

fn copy_into_stage(
    tx: &mut Transaction,
    items: &[&Item],
    crs_ids: &HashMap<String, i32>,
) -> std::result::Result<(), postgres::Error> {
    let sink = tx.copy_in("COPY stage FROM STDIN (FORMAT binary)")?;
    let mut writer = BinaryCopyInWriter::new(sink, &STAGE_TYPES);
    for item in items {
        let fp = &item.footprint;
        let crs_id = crs_ids[&fp.crs.key()];
        let boxes: Vec<f64> = fp.boxes.iter().flatten().copied().collect();
        let props = properties_json(item);
        let extra = (!item.extra.is_null()).then_some(&item.extra);
        let bands = (!item.bands.is_null()).then_some(&item.bands);
        let row: [&(dyn ToSql + Sync); 14] = [
            &item.collection,
            &item.id,
            &item.start_us,
            &item.end_us,
            &crs_id,
            &fp.native_wkb,
            &fp.native_bounds.as_slice(),
            &fp.wgs84_wkb,
            &boxes,
            &fp.centroid_lon,
            &props,
            &extra,
            &bands,
            &item.href,
        ];
        writer.write(&row)?;
    }
    writer.finish()?;
    Ok(())
}

/// The flat properties as stored: numbers and strings as JSON, datetimes as `{"t": µs}`
/// (so that a filter compares them as instants, and a string never passes for one).
pub fn properties_json(item: &Item) -> Json {
    let mut map = Map::new();
    for (k, v) in &item.properties {
        let stored = match v {
            Value::Int(i) => json!(i),
            Value::Float(f) => json!(f),
            Value::String(s) => json!(s),
            Value::Datetime(us) => json!({ "t": us }),
        };
        map.insert(k.clone(), stored);
    }
    Json::Object(map)
}
