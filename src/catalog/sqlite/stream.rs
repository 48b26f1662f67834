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

/// Ids of candidates read per query. An area's candidates come from the R*Tree in no
/// order, so each query sorts all of them, however few it returns: the pages of ids are
/// larger than the pages of rows (`PAGE_SIZE`), which are read from them.
const ID_PAGE_SIZE: usize = 16 * PAGE_SIZE;

/// The pages of a search.
pub struct Pages<'a> {
    conn: &'a Connection,
    path: &'a Path,
    prepared: Prepared,
    /// The WHERE clause without the keyset condition, and its parameters.
    filter: String,
    params: Vec<Sql>,
    /// Where the next page starts (exclusive).
    after: Option<ResumeToken>,
    /// Ids of the page of candidates being read, not read yet.
    rids: VecDeque<i64>,
    /// The last page of ids has been read.
    ids_exhausted: bool,
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
            rids: VecDeque::new(),
            ids_exhausted: false,
            buffer: VecDeque::new(),
            crs: HashMap::new(),
            failed: false,
        })
    }

    /// Reads the next rows of candidates and keeps those that match.
    fn fill(&mut self) -> Result<()> {
        if self.rids.is_empty() {
            self.next_ids()?;
        }
        let take = self.rids.len().min(PAGE_SIZE);
        let rids: Vec<i64> = self.rids.drain(..take).collect();
        let rows = self.read_rows(&rids)?;
        if let Some(last) = rows.last() {
            self.after = Some(ResumeToken::after(&last.1, self.prepared.search.order));
        }
        for (crs_id, mut item) in rows {
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

    /// Reads the ids of the next page of candidates, in the search's order. The page
    /// ends where the rows read so far end (the keyset condition).
    fn next_ids(&mut self) -> Result<()> {
        let (cmp, dir) = match self.prepared.search.order {
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
        let page = page_rows(self.remaining, self.pages_read, ID_PAGE_SIZE);
        self.pages_read += 1;
        // The page's row ids first, then its rows: SQLite sorts what it selects, and
        // sorting whole rows (footprints and all) of every candidate of an area costs
        // many times what the ids cost.
        let sql = format!(
            "SELECT rid FROM items WHERE {clause} \
             ORDER BY t_start {dir}, collection {dir}, id {dir} LIMIT {page}"
        );
        let rids = self.read_rids(&sql, params)?;
        self.ids_exhausted = rids.len() < page;
        self.rids = rids.into();
        Ok(())
    }

    fn read_rids(&self, sql: &str, params: Vec<Sql>) -> Result<Vec<i64>> {
        let err = |e| db_error(self.path, e);
        let mut st = self.conn.prepare_cached(sql).map_err(err)?;
        let rids = st
            .query_map(rusqlite::params_from_iter(params), |r| r.get(0))
            .map_err(err)?;
        rids.collect::<rusqlite::Result<_>>().map_err(err)
    }

    /// The rows of `rids`, in that order; a row removed since its id was read is left out.
    fn read_rows(&self, rids: &[i64]) -> Result<Vec<(i64, Item)>> {
        let err = |e| db_error(self.path, e);
        let sql = format!("SELECT {COLUMNS} FROM items WHERE rid = ?1");
        let mut st = self.conn.prepare_cached(&sql).map_err(err)?;
        let mut out = Vec::with_capacity(rids.len().min(PAGE_SIZE));
        for rid in rids {
            let mut rows = st.query([rid]).map_err(err)?;
            if let Some(row) = rows.next().map_err(err)? {
                out.push(decode(row).map_err(|e| self.decode_error(e))?);
            }
        }
        Ok(out)
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
        while self.buffer.is_empty() && !(self.ids_exhausted && self.rids.is_empty()) {
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
