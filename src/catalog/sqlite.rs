//! The SQLite backend: one file, WAL mode, an R*Tree over the boxes of the footprints'
//! EPSG:4326 parts, properties as JSON queried with `json_extract`, and a summary row per
//! collection and CRS kept in each write's transaction. The schema is described in
//! docs/FORMAT.md ("The catalog").

mod schema;
mod stream;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, Transaction};

use super::footprint::Bbox;
use super::query::Prepared;
use super::tally::{merge_into, Tally};
use super::{Catalog, Crs, CrsSummary, Item, ItemStream, Search, Value};
use crate::error::{Error, Result};

/// Above this many 4326 parts, a footprint's parts are indexed as two boxes (west and east
/// of the prime meridian) instead of one box each: still a superset for the prefilter.
const MAX_INDEXED_PARTS: usize = 256;

/// Row ids of R*Tree entries: the item's row id shifted left by this, plus the part.
const PART_BITS: u32 = 16;

/// SQLite's page cache while adding items, in KiB (SQLite's default is 2 MiB). A bulk add
/// inserts into the R*Tree and the time and property indexes at places spread over the
/// whole file; with the default cache nearly every insert reads pages back from the file
/// and spills dirty ones mid-transaction. The connection keeps it once it has added;
/// a connection that only searches (every `catalog search`) keeps the default, so that
/// streaming a large catalog stays in little memory.
const ADD_CACHE_KIB: i64 = 256 << 10;

/// Pages the write-ahead log may hold before SQLite copies them into the file, while
/// adding items (SQLite's default is 1000): 1 GiB of 4 KiB pages. Each batch rewrites
/// many of the same index pages, spread over the whole time index and R*Tree; the
/// fewer the copies, the fewer times each is written (a million items: 6.4 GB written
/// in all, against 7.9 GB with a 128 MiB log). The cost is disk space: while a large
/// add runs, the log can grow to about this much beside the catalog file; the last
/// connection to close copies it in and removes it.
const ADD_CHECKPOINT_PAGES: i64 = 262144;

/// A catalog in a SQLite file.
pub struct SqliteCatalog {
    path: PathBuf,
    conn: Connection,
}

impl SqliteCatalog {
    /// Opens an existing catalog file.
    pub fn open(path: &Path) -> Result<SqliteCatalog> {
        if !path.exists() {
            return Err(Error::Catalog {
                location: path.display().to_string(),
                detail: "no catalog here. Create one with `gridstore catalog init`".into(),
            });
        }
        let conn = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        schema::check(&conn, path)?;
        Ok(SqliteCatalog {
            path: path.to_path_buf(),
            conn,
        })
    }

    /// Creates the file and its schema (or opens it if it is already a catalog).
    pub fn create(path: &Path) -> Result<SqliteCatalog> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = connect(path, flags)?;
        schema::create_or_check(&conn, path)?;
        Ok(SqliteCatalog {
            path: path.to_path_buf(),
            conn,
        })
    }

    fn db_error(&self, e: rusqlite::Error) -> Error {
        db_error(&self.path, e)
    }
}

/// Opens the connection with the settings every use needs.
fn connect(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let flags = flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| db_error(path, e))?;
    // Bound what one value can be, so a damaged or hostile file cannot make us allocate
    // without limit.
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, 64 << 20)
        .map_err(|e| db_error(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| db_error(path, e))?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
        .map_err(|e| db_error(path, e))?;
    Ok(conn)
}

pub(crate) fn db_error(path: &Path, e: rusqlite::Error) -> Error {
    let hint = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                ". Another program is writing to the catalog; try again when it is done"
            }
            rusqlite::ErrorCode::NotADatabase => ". The file is not a SQLite catalog",
            rusqlite::ErrorCode::DatabaseCorrupt => {
                ". The catalog file is damaged; rebuild it with `gridstore catalog add`"
            }
            rusqlite::ErrorCode::DiskFull => ". The disk is full; nothing of this write was kept",
            rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::PermissionDenied => {
                ". The catalog cannot be written: check its permissions"
            }
            _ => "",
        },
        _ => "",
    };
    Error::Catalog {
        location: path.display().to_string(),
        detail: format!("catalog database: {e}{hint}"),
    }
}

impl Catalog for SqliteCatalog {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn add_batch(&mut self, items: &[Item]) -> Result<()> {
        for item in items {
            item.validate()?;
        }
        let path = self.path.clone();
        self.conn
            .pragma_update(None, "cache_size", -ADD_CACHE_KIB)
            .and_then(|_| {
                self.conn
                    .pragma_update(None, "wal_autocheckpoint", ADD_CHECKPOINT_PAGES)
            })
            .map_err(|e| db_error(&path, e))?;
        let tx = self.conn.transaction().map_err(|e| db_error(&path, e))?;
        add_in(&tx, items).map_err(|e| db_error(&path, e))?;
        tx.commit().map_err(|e| db_error(&path, e))
    }

    fn remove(&mut self, collection: &str, ids: Option<&[String]>) -> Result<u64> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| db_error(&path, e))?;
        let n = remove_in(&tx, collection, ids).map_err(|e| db_error(&path, e))?;
        tx.commit().map_err(|e| db_error(&path, e))?;
        Ok(n)
    }

    fn search<'a>(&'a self, search: &Search) -> Result<ItemStream<'a>> {
        let prepared = Prepared::new(search)?;
        let max_span = self
            .conn
            .query_row("SELECT max(max_span) FROM summary", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map_err(|e| self.db_error(e))?
            .unwrap_or(0);
        Ok(Box::new(stream::Pages::new(
            &self.conn, &self.path, prepared, max_span,
        )?))
    }

    fn summaries(&self, collections: &[String]) -> Result<Vec<CrsSummary>> {
        summaries(&self.conn, collections).map_err(|e| self.db_error(e))
    }

    fn collections(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT DISTINCT collection FROM summary ORDER BY collection")
            .map_err(|e| self.db_error(e))?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
        rows.map_err(|e| self.db_error(e))
    }
}

fn add_in(tx: &Transaction, items: &[Item]) -> rusqlite::Result<()> {
    let mut crs_ids: HashMap<String, i64> = HashMap::new();
    let mut tallies: BTreeMap<(String, i64), Tally> = BTreeMap::new();
    let mut replaced: HashSet<String> = HashSet::new();
    for item in items {
        if delete_item(tx, &item.collection, &item.id)? {
            replaced.insert(item.collection.clone());
        }
        let crs_id = crs_id(tx, &mut crs_ids, &item.footprint.crs)?;
        insert_item(tx, item, crs_id)?;
        merge_into(
            &mut tallies,
            (item.collection.clone(), crs_id),
            Tally::of(item),
        );
    }
    for ((collection, crs_id), t) in &tallies {
        if !replaced.contains(collection) {
            merge_summary(tx, collection, *crs_id, t)?;
        }
    }
    for collection in &replaced {
        recompute_summary(tx, collection)?;
    }
    Ok(())
}

fn crs_id(tx: &Transaction, cache: &mut HashMap<String, i64>, crs: &Crs) -> rusqlite::Result<i64> {
    let key = crs.key();
    if let Some(id) = cache.get(&key) {
        return Ok(*id);
    }
    tx.prepare_cached(
        "INSERT INTO crs (key, wkt, epsg) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO NOTHING",
    )?
    .execute(params![key, crs.wkt, crs.epsg])?;
    let id = tx
        .prepare_cached("SELECT crs_id FROM crs WHERE key = ?1")?
        .query_row([&key], |r| r.get(0))?;
    cache.insert(key, id);
    Ok(id)
}

fn insert_item(tx: &Transaction, item: &Item, crs_id: i64) -> rusqlite::Result<()> {
    let fp = &item.footprint;
    let (props, dtprops) = encode_properties(&item.properties);
    let json_or_null = |v: &serde_json::Value| (!v.is_null()).then(|| v.to_string());
    let boxes = indexed_boxes(&fp.boxes);
    let w84 = fp.bbox_4326();
    tx.prepare_cached(
        "INSERT INTO items (collection, id, t_start, t_end, crs_id, native_wkb, nminx, nminy, \
         nmaxx, nmaxy, west, south, east, north, wgs84_wkb, centroid_lon, nparts, props, \
         dtprops, extra, bands, href) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
         ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
    )?
    .execute(params![
        item.collection,
        item.id,
        item.start_us,
        item.end_us,
        crs_id,
        fp.native_wkb,
        fp.native_bounds[0],
        fp.native_bounds[1],
        fp.native_bounds[2],
        fp.native_bounds[3],
        w84[0],
        w84[1],
        w84[2],
        w84[3],
        fp.wgs84_wkb,
        fp.centroid_lon,
        boxes.len() as i64,
        props,
        dtprops,
        json_or_null(&item.extra),
        json_or_null(&item.bands),
        item.href,
    ])?;
    let rid = tx.last_insert_rowid();
    let mut st = tx.prepare_cached(
        "INSERT INTO items_rtree (pid, minx, maxx, miny, maxy) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (k, b) in boxes.iter().enumerate() {
        st.execute(params![
            (rid << PART_BITS) + k as i64,
            b[0],
            b[2],
            b[1],
            b[3]
        ])?;
    }
    Ok(())
}

/// The boxes to index: one per part, or two (west and east) for very fragmented
/// footprints.
fn indexed_boxes(boxes: &[Bbox]) -> Vec<Bbox> {
    if boxes.len() <= MAX_INDEXED_PARTS {
        return boxes.to_vec();
    }
    let union = |keep: &dyn Fn(&Bbox) -> bool| {
        boxes.iter().filter(|b| keep(b)).copied().reduce(|a, b| {
            [
                a[0].min(b[0]),
                a[1].min(b[1]),
                a[2].max(b[2]),
                a[3].max(b[3]),
            ]
        })
    };
    let west = union(&|b: &Bbox| b[0] + b[2] < 0.0);
    let east = union(&|b: &Bbox| b[0] + b[2] >= 0.0);
    west.into_iter().chain(east).collect()
}

/// Numbers and strings as one JSON object, datetimes (µs) as another.
fn encode_properties(props: &BTreeMap<String, Value>) -> (String, String) {
    let mut plain = serde_json::Map::new();
    let mut dates = serde_json::Map::new();
    for (k, v) in props {
        match v {
            Value::Datetime(us) => dates.insert(k.clone(), (*us).into()),
            other => plain.insert(k.clone(), other.to_json()),
        };
    }
    (
        serde_json::Value::Object(plain).to_string(),
        serde_json::Value::Object(dates).to_string(),
    )
}

/// Deletes one item and its R*Tree rows; whether it was there.
fn delete_item(tx: &Transaction, collection: &str, id: &str) -> rusqlite::Result<bool> {
    let found: Option<(i64, i64)> = tx
        .prepare_cached("SELECT rid, nparts FROM items WHERE collection = ?1 AND id = ?2")?
        .query_row([collection, id], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    let Some((rid, nparts)) = found else {
        return Ok(false);
    };
    delete_rid(tx, rid, nparts)?;
    Ok(true)
}

fn delete_rid(tx: &Transaction, rid: i64, nparts: i64) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached("DELETE FROM items_rtree WHERE pid = ?1")?;
    for k in 0..nparts {
        st.execute([(rid << PART_BITS) + k])?;
    }
    tx.prepare_cached("DELETE FROM items WHERE rid = ?1")?
        .execute([rid])?;
    Ok(())
}

fn remove_in(tx: &Transaction, collection: &str, ids: Option<&[String]>) -> rusqlite::Result<u64> {
    let mut n = 0;
    match ids {
        Some(ids) => {
            for id in ids {
                n += delete_item(tx, collection, id)? as u64;
            }
        }
        None => {
            let rows: Vec<(i64, i64)> = tx
                .prepare_cached("SELECT rid, nparts FROM items WHERE collection = ?1")?
                .query_map([collection], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (rid, nparts) in rows {
                delete_rid(tx, rid, nparts)?;
                n += 1;
            }
        }
    }
    if n > 0 {
        recompute_summary(tx, collection)?;
    }
    Ok(n)
}

/// Adds a batch's tally to the stored summary row.
fn merge_summary(
    tx: &Transaction,
    collection: &str,
    crs_id: i64,
    t: &Tally,
) -> rusqlite::Result<()> {
    let old = tx
        .prepare_cached(
            "SELECT count, t_min, t_max, minx, miny, maxx, maxy, west, south, east, north, \
             max_span FROM summary WHERE collection = ?1 AND crs_id = ?2",
        )?
        .query_row(params![collection, crs_id], |r| {
            Ok(Tally {
                count: r.get::<_, i64>(0)? as u64,
                start: r.get(1)?,
                end: r.get(2)?,
                bounds: [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
                wgs84: [r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
                max_span: r.get(11)?,
            })
        });
    let merged = match old {
        Ok(old) => old.merge(*t),
        Err(rusqlite::Error::QueryReturnedNoRows) => *t,
        Err(e) => return Err(e),
    };
    write_summary(tx, collection, crs_id, &merged)
}

fn write_summary(
    tx: &Transaction,
    collection: &str,
    crs_id: i64,
    t: &Tally,
) -> rusqlite::Result<()> {
    let (b, w) = (t.bounds, t.wgs84);
    tx.prepare_cached(
        "INSERT OR REPLACE INTO summary (collection, crs_id, count, t_min, t_max, minx, miny, \
         maxx, maxy, west, south, east, north, max_span) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        collection,
        crs_id,
        t.count as i64,
        t.start,
        t.end,
        b[0],
        b[1],
        b[2],
        b[3],
        w[0],
        w[1],
        w[2],
        w[3],
        t.max_span
    ])?;
    Ok(())
}

/// Rebuilds a collection's summary rows from its items: after removals and
/// replacements, which can shrink them (a write-time scan of that collection only).
fn recompute_summary(tx: &Transaction, collection: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM summary WHERE collection = ?1")?
        .execute([collection])?;
    let mut tallies = BTreeMap::new();
    {
        let mut st = tx.prepare_cached(
            "SELECT crs_id, t_start, t_end, nminx, nminy, nmaxx, nmaxy, west, south, east, \
             north FROM items WHERE collection = ?1",
        )?;
        let mut rows = st.query([collection])?;
        while let Some(r) = rows.next()? {
            let (start, end): (i64, i64) = (r.get(1)?, r.get(2)?);
            let t = Tally {
                count: 1,
                start,
                end,
                max_span: end - start,
                bounds: [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
                wgs84: [r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
            };
            merge_into(&mut tallies, (collection.to_string(), r.get(0)?), t);
        }
    }
    for ((c, crs_id), t) in &tallies {
        write_summary(tx, c, *crs_id, t)?;
    }
    Ok(())
}

fn summaries(conn: &Connection, collections: &[String]) -> rusqlite::Result<Vec<CrsSummary>> {
    let mut st = conn.prepare_cached(
        "SELECT s.collection, c.wkt, c.epsg, s.count, s.t_min, s.t_max, s.minx, s.miny, \
         s.maxx, s.maxy, s.west, s.south, s.east, s.north FROM summary s JOIN crs c ON c.crs_id = s.crs_id \
         ORDER BY s.collection, c.key",
    )?;
    let rows = st.query_map([], |r| {
        Ok(CrsSummary {
            collection: r.get(0)?,
            crs: Crs {
                wkt: r.get(1)?,
                epsg: r.get(2)?,
            },
            count: r.get::<_, i64>(3)? as u64,
            start_us: r.get(4)?,
            end_us: r.get(5)?,
            native_bounds: [r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?],
            wgs84_bbox: [r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?],
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        let row = row?;
        if collections.is_empty() || collections.contains(&row.collection) {
            out.push(row);
        }
    }
    Ok(out)
}
