//! Streaming search results: keyset pages of candidates from SQL, each candidate
//! checked exactly in Rust, in constant memory.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, Row};

use super::db_error;
use crate::catalog::footprint::Footprint;
use crate::catalog::item::{Item, Value};
use crate::catalog::query::{Order, Prepared, ResumeToken};
use crate::catalog::when::solar_shift_us;
use crate::catalog::{page_rows, Crs, PAGE_SIZE};
use crate::error::{Error, Result};

const COLUMNS: &str = "rid, collection, id, t_start, t_end, crs_id, native_wkb, nminx, nminy, \
    nmaxx, nmaxy, wgs84_wkb, centroid_lon, props, dtprops, extra, bands, href";

/// Keys of candidates read per query. An area's candidates come from the R*Tree in no
/// order, so each query sorts all of them, however few it returns: the pages of keys are
/// larger than the pages of rows (`PAGE_SIZE`), which are read from them.
const KEY_PAGE_SIZE: usize = 16 * PAGE_SIZE;

/// A candidate as its page of keys gives it: its row id, and its place in time order.
struct Key {
    rid: i64,
    start_us: i64,
    collection: String,
    id: String,
}

/// The pages of a search.
pub struct Pages<'a> {
    conn: &'a Connection,
    path: &'a Path,
    prepared: Prepared,
    /// The WHERE clause without the keyset condition, and its parameters.
    filter: String,
    params: Vec<Sql>,
    /// Where the next page of keys starts (exclusive): after the last key read.
    after: Option<ResumeToken>,
    /// Keys of the page of candidates being read, not read yet.
    keys: VecDeque<Key>,
    /// The last page of keys has been read.
    keys_exhausted: bool,
    buffer: VecDeque<Item>,
    remaining: Option<u64>,
    pages_read: u32,
    crs: HashMap<i64, Crs>,
    failed: bool,
}

impl<'a> Pages<'a> {
    /// `max_span`: the longest item time in the catalog, which bounds how early a
    /// matching item can start.
    pub fn new(
        conn: &'a Connection,
        path: &'a Path,
        prepared: Prepared,
        max_span: i64,
    ) -> Result<Pages<'a>> {
        let by_time = read_by_time(conn, &prepared, max_span).map_err(|e| db_error(path, e))?;
        let (filter, params) = where_clause(&prepared, max_span, by_time);
        Ok(Pages {
            conn,
            path,
            after: prepared.search.after.clone(),
            remaining: prepared.search.limit,
            pages_read: 0,
            prepared,
            filter,
            params,
            keys: VecDeque::new(),
            keys_exhausted: false,
            buffer: VecDeque::new(),
            crs: HashMap::new(),
            failed: false,
        })
    }

    /// Reads the next rows of candidates and keeps those that match.
    fn fill(&mut self) -> Result<()> {
        if self.keys.is_empty() {
            self.next_keys()?;
        }
        let take = self.keys.len().min(PAGE_SIZE);
        let keys: Vec<Key> = self.keys.drain(..take).collect();
        for (crs_id, mut item) in self.read_rows(&keys)? {
            let fp = std::mem::replace(&mut item.footprint, placeholder());
            item.footprint = Footprint::from_stored(
                self.crs_of(crs_id)?,
                fp.native_wkb,
                fp.native_bounds,
                fp.wgs84_wkb,
                fp.centroid_lon,
            )?;
            if self.prepared.matches(&item)? {
                self.buffer.push_back(item);
            }
        }
        Ok(())
    }

    /// Reads the keys of the next page of candidates, in the search's order, after the
    /// last page's (the keyset condition).
    fn next_keys(&mut self) -> Result<()> {
        let order = self.prepared.search.order;
        let (cmp, dir) = match order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let mut params = self.params.clone();
        let mut clause = self.filter.clone();
        if let Some(t) = &self.after {
            clause.push_str(&format!(" AND (t_start, collection, id) {cmp} (?, ?, ?)"));
            params.extend([
                Sql::Integer(t.start_us),
                Sql::Text(t.collection.clone()),
                Sql::Text(t.id.clone()),
            ]);
        }
        let page = page_rows(self.remaining, self.pages_read, KEY_PAGE_SIZE);
        self.pages_read += 1;
        // The page's keys first, then its rows: SQLite sorts what it selects, and
        // sorting whole rows (footprints and all) of every candidate of an area costs
        // many times what the keys cost.
        let sql = format!(
            "SELECT rid, t_start, collection, id FROM items WHERE {clause} \
             ORDER BY t_start {dir}, collection {dir}, id {dir} LIMIT {page}"
        );
        let keys = self.read_keys(&sql, params)?;
        self.keys_exhausted = keys.len() < page;
        if let Some(last) = keys.last() {
            self.after = Some(ResumeToken {
                start_us: last.start_us,
                collection: last.collection.clone(),
                id: last.id.clone(),
                order,
            });
        }
        self.keys = keys.into();
        Ok(())
    }

    fn read_keys(&self, sql: &str, params: Vec<Sql>) -> Result<Vec<Key>> {
        let err = |e| db_error(self.path, e);
        let mut st = self.conn.prepare_cached(sql).map_err(err)?;
        let keys = st
            .query_map(rusqlite::params_from_iter(params), |r| {
                Ok(Key {
                    rid: r.get(0)?,
                    start_us: r.get(1)?,
                    collection: r.get(2)?,
                    id: r.get(3)?,
                })
            })
            .map_err(err)?;
        keys.collect::<rusqlite::Result<_>>().map_err(err)
    }

    /// The rows of `keys`, in that order. An item added again since its key was read
    /// has a new row id: it is read by its collection and id, if it kept its start time
    /// (else its new key comes in another page, or behind this search). An item removed
    /// is left out.
    fn read_rows(&self, keys: &[Key]) -> Result<Vec<(i64, Item)>> {
        let err = |e| db_error(self.path, e);
        let by_rid = format!("SELECT {COLUMNS} FROM items WHERE rid = ?1");
        let by_name = format!("SELECT {COLUMNS} FROM items WHERE collection = ?1 AND id = ?2");
        let mut by_rid = self.conn.prepare_cached(&by_rid).map_err(err)?;
        let mut by_name = self.conn.prepare_cached(&by_name).map_err(err)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let found = match self.row_of(by_rid.query([key.rid]).map_err(err)?, key)? {
                Some(row) => Some(row),
                None => {
                    self.row_of(by_name.query([&key.collection, &key.id]).map_err(err)?, key)?
                }
            };
            out.extend(found);
        }
        Ok(out)
    }

    /// The first of `rows`, if it is the item `key` names at the time it gives.
    fn row_of(&self, mut rows: rusqlite::Rows, key: &Key) -> Result<Option<(i64, Item)>> {
        let Some(row) = rows.next().map_err(|e| db_error(self.path, e))? else {
            return Ok(None);
        };
        let (crs_id, item) = decode(row).map_err(|e| self.decode_error(e))?;
        let same =
            item.start_us == key.start_us && item.collection == key.collection && item.id == key.id;
        Ok(same.then_some((crs_id, item)))
    }

    fn decode_error(&self, e: DecodeError) -> Error {
        match e {
            DecodeError::Sql(e) => db_error(self.path, e),
            DecodeError::Json(what) => Error::Catalog {
                location: self.path.display().to_string(),
                detail: format!(
                    "an item's {what} is not valid JSON; the catalog is damaged: remove and \
                     add that collection again"
                ),
            },
        }
    }

    fn crs_of(&mut self, crs_id: i64) -> Result<Crs> {
        if let Some(c) = self.crs.get(&crs_id) {
            return Ok(c.clone());
        }
        let crs = self
            .conn
            .prepare_cached("SELECT wkt, epsg FROM crs WHERE crs_id = ?1")
            .and_then(|mut st| {
                st.query_row([crs_id], |r| {
                    Ok(Crs {
                        wkt: r.get(0)?,
                        epsg: r.get(1)?,
                    })
                })
            })
            .map_err(|e| db_error(self.path, e))?;
        self.crs.insert(crs_id, crs.clone());
        Ok(crs)
    }
}

impl Iterator for Pages<'_> {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Result<Item>> {
        if self.failed || self.remaining == Some(0) {
            return None;
        }
        while self.buffer.is_empty() && !(self.keys_exhausted && self.keys.is_empty()) {
            if let Err(e) = self.fill() {
                self.failed = true;
                return Some(Err(e));
            }
        }
        let item = self.buffer.pop_front()?;
        if let Some(r) = &mut self.remaining {
            *r -= 1;
        }
        Some(Ok(item))
    }
}

/// At most this many items in a search's time range are counted to choose its plan.
const COUNTED_BY_TIME: i64 = 50_000;

/// Whether a search with both a time range and an area reads its candidates in time
/// order from the time index, each checked against the area's item ids, rather than
/// item by item from the area's ids: when the range holds fewer items than the area's
/// boxes. SQLite's planner cannot tell (it knows nothing of how many ids the R*Tree
/// gives), so both are counted, each count stopping at the other's.
fn read_by_time(conn: &Connection, p: &Prepared, max_span: i64) -> rusqlite::Result<bool> {
    let (Some(area), Some(start), Some(end)) = (&p.area, p.time.start, p.time.end) else {
        return Ok(false);
    };
    let in_range: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM (SELECT 1 FROM items WHERE t_start < ?1 AND t_start > ?2 \
             LIMIT {COUNTED_BY_TIME})"
        ),
        [end, start.saturating_sub(max_span)],
        |r| r.get(0),
    )?;
    if in_range >= COUNTED_BY_TIME {
        return Ok(false);
    }
    let (boxes, params) = rtree_boxes(&area.boxes);
    let in_area: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM (SELECT 1 FROM items_rtree WHERE {boxes} LIMIT {})",
            in_range + 1
        ),
        rusqlite::params_from_iter(params),
        |r| r.get(0),
    )?;
    Ok(in_area > in_range)
}

/// The R*Tree condition for 4326 boxes (west, south, east, north), and its parameters.
fn rtree_boxes(boxes: &[[f64; 4]]) -> (String, Vec<Sql>) {
    let mut params = Vec::new();
    let mut conditions = Vec::new();
    for b in boxes {
        conditions.push("(minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)");
        params.extend([b[2], b[0], b[3], b[1]].map(Sql::Real));
    }
    (conditions.join(" OR "), params)
}

/// The condition that an item's 4326 box (`west > east` across 180°) meets one of the
/// 4326 `boxes` (west, south, east, north, none across 180°), and its parameters.
fn row_boxes(boxes: &[[f64; 4]]) -> (String, Vec<Sql>) {
    let mut params = Vec::new();
    let mut conditions = Vec::new();
    for b in boxes {
        conditions.push(
            "(south <= ? AND north >= ? AND CASE WHEN west <= east \
             THEN west <= ? AND east >= ? ELSE west <= ? OR east >= ? END)",
        );
        params.extend([b[3], b[1], b[2], b[0], b[2], b[0]].map(Sql::Real));
    }
    (format!("({})", conditions.join(" OR ")), params)
}

/// The SQL prefilter of a search: a superset of what [`Prepared::matches`] accepts.
/// `by_time`: see [`read_by_time`].
fn where_clause(p: &Prepared, max_span: i64, by_time: bool) -> (String, Vec<Sql>) {
    let s = &p.search;
    let mut parts = vec!["1".to_string()];
    let mut params = Vec::new();
    if !s.collections.is_empty() {
        let marks = vec!["?"; s.collections.len()].join(", ");
        parts.push(format!("collection IN ({marks})"));
        params.extend(s.collections.iter().map(|c| Sql::Text(c.clone())));
    }
    if let Some(end) = p.time.end {
        parts.push("t_start < ?".into());
        params.push(Sql::Integer(end));
    }
    if let Some(start) = p.time.start {
        // t_end > start, and (so that the time index serves it) t_start > start - span.
        parts.push("t_end > ? AND t_start > ?".into());
        params.push(Sql::Integer(start));
        params.push(Sql::Integer(start.saturating_sub(max_span)));
    }
    if let Some(day) = p.solar() {
        if let Ok(r) = day.utc_range() {
            // The item's own solar day: UTC day shifted by its centroid's longitude
            // (rounded as `solar_shift_us` rounds).
            let shift = "CAST(round(centroid_lon * 240000000.0) AS INTEGER)";
            parts.push(format!("t_start < ? - {shift} AND t_end > ? - {shift}"));
            params.push(Sql::Integer(r.end.unwrap_or(i64::MAX)));
            params.push(Sql::Integer(r.start.unwrap_or(i64::MIN)));
            debug_assert_eq!(solar_shift_us(1.0), 240_000_000);
        }
    }
    for f in &s.properties {
        let path = format!("'$.\"{}\"'", f.key.replace('\'', "''"));
        let (column, typed) = match &f.value {
            Value::Datetime(us) => ("dtprops", Sql::Integer(*us)),
            Value::Int(i) => ("props", Sql::Integer(*i)),
            Value::Float(x) => ("props", Sql::Real(*x)),
            Value::String(t) => ("props", Sql::Text(t.clone())),
        };
        let kind = match &f.value {
            Value::Datetime(_) => "'integer'",
            Value::Int(_) | Value::Float(_) => "'integer', 'real'",
            Value::String(_) => "'text'",
        };
        parts.push(format!(
            "json_type({column}, {path}) IN ({kind}) AND json_extract({column}, {path}) {} ?",
            f.op.sql()
        ));
        params.push(typed);
    }
    if let Some(area) = &p.area {
        let (boxes, box_params) = match by_time {
            // Read by time, each row is read anyway: its own 4326 box is checked, where
            // the ids of every part box in the area would have to be gathered first.
            true => row_boxes(&area.boxes),
            false => {
                let (boxes, params) = rtree_boxes(&area.boxes);
                let ids = format!("rid IN (SELECT pid >> 16 FROM items_rtree WHERE {boxes})");
                (ids, params)
            }
        };
        params.extend(box_params);
        parts.push(boxes);
    }
    (parts.join(" AND "), params)
}

/// An empty footprint, replaced at once.
fn placeholder() -> Footprint {
    Footprint {
        crs: Crs {
            wkt: String::new(),
            epsg: None,
        },
        native_wkb: Vec::new(),
        native_bounds: [0.0; 4],
        wgs84_wkb: Vec::new(),
        boxes: Vec::new(),
        centroid_lon: 0.0,
    }
}

enum DecodeError {
    Sql(rusqlite::Error),
    Json(&'static str),
}

impl From<rusqlite::Error> for DecodeError {
    fn from(e: rusqlite::Error) -> Self {
        DecodeError::Sql(e)
    }
}

/// One row as an item (its CRS filled in by the caller) with its CRS id.
fn decode(r: &Row) -> std::result::Result<(i64, Item), DecodeError> {
    let json =
        |i: usize, what: &'static str| -> std::result::Result<serde_json::Value, DecodeError> {
            match r.get::<_, Option<String>>(i)? {
                None => Ok(serde_json::Value::Null),
                Some(t) => serde_json::from_str(&t).map_err(|_| DecodeError::Json(what)),
            }
        };
    let mut properties = std::collections::BTreeMap::new();
    if let serde_json::Value::Object(m) = json(13, "properties")? {
        for (k, v) in m {
            let v = match v {
                serde_json::Value::String(s) => Value::String(s),
                other => Value::from_json(&other).ok_or(DecodeError::Json("properties"))?,
            };
            properties.insert(k, v);
        }
    }
    if let serde_json::Value::Object(m) = json(14, "datetime properties")? {
        for (k, v) in m {
            let us = v.as_i64().ok_or(DecodeError::Json("datetime properties"))?;
            properties.insert(k, Value::Datetime(us));
        }
    }
    let footprint = Footprint {
        native_wkb: r.get(6)?,
        native_bounds: [r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
        wgs84_wkb: r.get(11)?,
        centroid_lon: r.get(12)?,
        ..placeholder()
    };
    let item = Item {
        id: r.get(2)?,
        collection: r.get(1)?,
        start_us: r.get(3)?,
        end_us: r.get(4)?,
        footprint,
        properties,
        extra: json(15, "extra data")?,
        bands: json(16, "bands")?,
        href: r.get(17)?,
    };
    Ok((r.get(5)?, item))
}
