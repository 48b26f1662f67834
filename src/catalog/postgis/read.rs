//! Searching: keyset pages in time order, narrowed in SQL (time, collections, part boxes,
//! properties) and decided by the exact test; and the summaries.

use std::collections::{BTreeMap, VecDeque};

use postgres::types::ToSql;
use postgres::{Row, Statement};
use serde_json::Value as Json;

use super::PostgisCatalog;
use crate::catalog::query::Prepared;
use crate::catalog::{
    page_rows, Bbox, CrsSummary, Footprint, Item, ItemStream, Op, Order, PropertyFilter, Search,
    Value, PAGE_SIZE,
};
use crate::error::Result;

/// Every column of an item, as [`item_of`] reads them.
const COLUMNS: &str = "i.collection, i.id, i.t_start, i.t_end, i.crs_id, i.native_wkb, \
                       i.native_bounds, i.wgs84_wkb, i.boxes, i.centroid_lon, i.props, i.extra, \
                       i.bands, i.href";

type Param = Box<dyn ToSql + Sync>;

pub fn search<'a>(catalog: &'a PostgisCatalog, search: &Search) -> Result<ItemStream<'a>> {
    let prepared = Prepared::new(search)?;
    let longest = longest_span(catalog, &search.collections)?;
    let (conditions, params) = conditions(&prepared, longest);
    // By area, candidates come from the spatial index in no order, and each query sorts
    // all of them: their keys are read in large pages, then their rows. Otherwise the
    // time index gives them in order, and rows are read in pages at once.
    let by_keys = prepared.area.is_some();
    let selected = match by_keys {
        true => "i.t_start, i.collection, i.id",
        false => COLUMNS,
    };
    let sql = |keyset: bool| page_sql(selected, &conditions, params.len(), search.order, keyset);
    let mut client = catalog.client.borrow_mut();
    let fail = |e| catalog.fail(e, "cannot search");
    let first = client.prepare(&sql(false)).map_err(fail)?;
    let next = client.prepare(&sql(true)).map_err(fail)?;
    let rows = match by_keys {
        true => Some(
            client
                .prepare(&format!("SELECT {COLUMNS}{OF_KEYS}"))
                .map_err(fail)?,
        ),
        false => None,
    };
    drop(client);
    let keyset = search
        .after
        .as_ref()
        .map(|t| (t.start_us, t.collection.clone(), t.id.clone()));
    Ok(Box::new(Pages {
        catalog,
        prepared,
        first,
        next,
        rows,
        params,
        keyset,
        keys: VecDeque::new(),
        pages_exhausted: false,
        buffer: VecDeque::new(),
        failed: false,
        returned: 0,
        pages_read: 0,
    }))
}

/// The query of a page: `selected` of the items that meet `conditions` (whose parameters
/// are `$1` to `$n`), in `order`, at most `$n+1` of them, after the sort key
/// `($n+2, $n+3, $n+4)` when `keyset`.
fn page_sql(selected: &str, conditions: &[String], n: usize, order: Order, keyset: bool) -> String {
    let (dir, after) = match order {
        Order::Asc => ("", ">"),
        Order::Desc => (" DESC", "<"),
    };
    let mut wheres = conditions.to_vec();
    if keyset {
        wheres.push(format!(
            "(i.t_start, i.collection, i.id) {after} (${}, ${}, ${})",
            n + 2,
            n + 3,
            n + 4
        ));
    }
    let wheres = match wheres.is_empty() {
        true => "TRUE".to_string(),
        false => wheres.join(" AND "),
    };
    format!(
        "SELECT {selected} FROM gridstore.items i WHERE {wheres} \
         ORDER BY i.t_start{dir}, i.collection{dir}, i.id{dir} LIMIT ${}",
        n + 1
    )
}

/// Keys of candidates read per query. Candidates found by area come from the spatial
/// index in no order, so each query sorts all of them, however few it returns: the pages
/// of keys are larger than the pages of rows (`PAGE_SIZE`), which are read from them.
const KEY_PAGE_SIZE: usize = 16 * PAGE_SIZE;

/// From the rows of every column ([`COLUMNS`]), and then the key's start time: those of
/// the items whose start times, collections and ids are `$1`, `$2` and `$3`, in that
/// order. An item added again since its key was read is kept only if it kept its start
/// time (else its new key comes in another page, or behind the search): the caller
/// compares the two start times (a join on all three lets PostgreSQL choose a slower plan).
const OF_KEYS: &str = ", k.t_start FROM unnest($1::bigint[], $2::text[], $3::text[]) \
    WITH ORDINALITY AS k(t_start, collection, id, n) JOIN gridstore.items i \
    ON i.collection = k.collection AND i.id = k.id ORDER BY k.n";

/// The column of a row of [`OF_KEYS`] that holds its key's start time.
const KEY_START: usize = 14;

/// The SQL conditions that narrow a search to its candidates, and their parameters
/// (`$1`, `$2`, ... in order). Never narrower than [`Prepared::matches`].
fn conditions(prepared: &Prepared, longest: i64) -> (Vec<String>, Vec<Param>) {
    let mut c = Conditions::default();
    let s = &prepared.search;
    if !s.collections.is_empty() {
        let p = c.param(Box::new(s.collections.clone()));
        c.wheres.push(format!("i.collection = ANY({p})"));
    }
    if let Some(end) = prepared.time.end {
        let p = c.param(Box::new(end));
        c.wheres.push(format!("i.t_start < {p}"));
    }
    if let Some(start) = prepared.time.start {
        // An item starting before `start - longest` ends before `start`: the bound lets
        // the time index skip them.
        let p = c.param(Box::new(start));
        let q = c.param(Box::new(start.saturating_sub(longest)));
        c.wheres.push(format!("i.t_end > {p} AND i.t_start >= {q}"));
    }
    if let Some(area) = &prepared.area {
        let boxes: Vec<String> = area.boxes.iter().map(|b| c.envelope(*b)).collect();
        c.wheres.push(format!(
            "(i.collection, i.id) IN (SELECT collection, id FROM gridstore.parts WHERE {})",
            boxes.join(" OR ")
        ));
    }
    for f in &s.properties {
        let w = c.property(f);
        c.wheres.push(w);
    }
    (c.wheres, c.params)
}

#[derive(Default)]
struct Conditions {
    wheres: Vec<String>,
    params: Vec<Param>,
}

impl Conditions {
    /// Adds a parameter; its placeholder.
    fn param(&mut self, value: Param) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// Whether a part's box meets `b` (west, south, east, north; west <= east).
    fn envelope(&mut self, b: Bbox) -> String {
        let [w, s, e, n] = b.map(|v| self.param(Box::new(v)));
        format!("box && ST_MakeEnvelope({w}, {s}, {e}, {n}, 4326)")
    }

    /// A property filter on the stored JSON (numbers and strings as such, datetimes as
    /// `{"t": µs}`): the property must exist with the filter's kind.
    fn property(&mut self, f: &PropertyFilter) -> String {
        let key = self.param(Box::new(f.key.clone()));
        let op = match f.op {
            Op::Ne => "<>",
            other => other.sql(),
        };
        match &f.value {
            Value::Int(_) | Value::Float(_) => {
                let v = self.param(Box::new(f.value.as_f64().unwrap_or(f64::NAN)));
                format!(
                    "jsonb_typeof(i.props -> {key}) = 'number' AND \
                     (i.props ->> {key})::float8 {op} {v}"
                )
            }
            Value::String(s) => {
                let v = self.param(Box::new(s.clone()));
                format!(
                    "jsonb_typeof(i.props -> {key}) = 'string' AND \
                     (i.props ->> {key}) COLLATE \"C\" {op} {v}"
                )
            }
            Value::Datetime(us) => {
                let v = self.param(Box::new(*us));
                format!(
                    "jsonb_typeof(i.props -> {key}) = 'object' AND \
                     (i.props -> {key} ->> 't')::bigint {op} {v}"
                )
            }
        }
    }
}

/// The longest time span of an item in these collections (all when empty).
fn longest_span(catalog: &PostgisCatalog, collections: &[String]) -> Result<i64> {
    let row = catalog
        .client
        .borrow_mut()
        .query_one(
            "SELECT coalesce(max(longest), 0)::bigint FROM gridstore.summaries \
             WHERE cardinality($1::text[]) = 0 OR collection = ANY($1)",
            &[&collections],
        )
        .map_err(|e| catalog.fail(e, "cannot read the summaries"))?;
    Ok(row.get(0))
}

/// A search read page by page: pages of rows, or a page of candidates' keys, then their
/// rows a page at a time.
struct Pages<'a> {
    catalog: &'a PostgisCatalog,
    prepared: Prepared,
    first: Statement,
    next: Statement,
    /// The rows of a page of keys, when pages of keys are read before their rows (see
    /// [`search`]).
    rows: Option<Statement>,
    params: Vec<Param>,
    /// Where the next page starts (exclusive): the sort key of the last row read, or of
    /// the last key read (or the resume token's).
    keyset: Option<(i64, String, String)>,
    /// Sort keys (start time, collection, id) of the page of candidates being read, not
    /// read yet.
    keys: VecDeque<(i64, String, String)>,
    /// The query's last page has been read.
    pages_exhausted: bool,
    buffer: VecDeque<Item>,
    failed: bool,
    returned: u64,
    pages_read: u32,
}

impl Pages<'_> {
    /// Reads the next rows of candidates into the buffer, keeping those that match.
    fn fill(&mut self) -> Result<()> {
        // A prepared statement is a shared handle: cloning it copies no query.
        let (rows, by_keys) = match self.rows.clone() {
            Some(of_keys) => (self.rows_of_next_keys(&of_keys)?, true),
            None => (self.next_page(PAGE_SIZE)?, false),
        };
        for row in &rows {
            let item = item_of(self.catalog, row)?;
            match by_keys {
                true if row.get::<_, i64>(KEY_START) != item.start_us => continue,
                true => {}
                false => {
                    self.keyset = Some((item.start_us, item.collection.clone(), item.id.clone()))
                }
            }
            if self.prepared.matches(&item)? {
                self.buffer.push_back(item);
            }
        }
        Ok(())
    }

    /// The rows of the next keys of the page of keys being read (by `of_keys`, the
    /// statement of [`OF_KEYS`]), after reading that page if none of its keys are left.
    fn rows_of_next_keys(&mut self, of_keys: &Statement) -> Result<Vec<Row>> {
        if self.keys.is_empty() {
            let keys = self.next_page(KEY_PAGE_SIZE)?;
            self.keys = keys
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            self.keyset = self.keys.back().cloned();
        }
        let take = self.keys.len().min(PAGE_SIZE);
        let (mut starts, mut collections, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for (t, c, id) in self.keys.drain(..take) {
            starts.push(t);
            collections.push(c);
            ids.push(id);
        }
        self.catalog
            .client
            .borrow_mut()
            .query(of_keys, &[&starts, &collections, &ids])
            .map_err(|e| self.catalog.fail(e, "cannot search"))
    }

    /// The next page of the search's query (keys or rows), of at most `most` rows, in the
    /// search's order, after the keyset.
    fn next_page(&mut self, most: usize) -> Result<Vec<Row>> {
        let wanted = self
            .prepared
            .search
            .limit
            .map(|l| l.saturating_sub(self.returned));
        let page = page_rows(wanted, self.pages_read, most);
        self.pages_read += 1;
        let limit = page as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> = self.params.iter().map(|p| p.as_ref()).collect();
        params.push(&limit);
        let rows = match &self.keyset {
            Some((t, c, id)) => {
                params.extend([t as &(dyn ToSql + Sync), c, id]);
                self.catalog.client.borrow_mut().query(&self.next, &params)
            }
            None => self.catalog.client.borrow_mut().query(&self.first, &params),
        }
        .map_err(|e| self.catalog.fail(e, "cannot search"))?;
        self.pages_exhausted = rows.len() < page;
        Ok(rows)
    }
}

impl Iterator for Pages<'_> {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Result<Item>> {
        if self
            .prepared
            .search
            .limit
            .is_some_and(|l| self.returned >= l)
        {
            return None;
        }
        while self.buffer.is_empty() && !self.failed {
            if self.pages_exhausted && self.keys.is_empty() {
                return None;
            }
            if let Err(e) = self.fill() {
                self.failed = true;
                return Some(Err(e));
            }
        }
        let item = self.buffer.pop_front()?;
        self.returned += 1;
        Some(Ok(item))
    }
}

/// An item from its row, checking what the database hands back.
fn item_of(catalog: &PostgisCatalog, row: &Row) -> Result<Item> {
    let collection: String = row.get(0);
    let id: String = row.get(1);
    let damaged = |what: &str| catalog.error(format!("item {collection}/{id}: {what}"));
    let native_bounds: Vec<f64> = row.get(6);
    let native_bounds: Bbox = native_bounds
        .try_into()
        .map_err(|_| damaged("its native bounds are not 4 numbers"))?;
    let flat: Vec<f64> = row.get(8);
    if flat.is_empty() || flat.len() % 4 != 0 {
        return Err(damaged("its part boxes are not groups of 4 numbers"));
    }
    let boxes = flat
        .chunks_exact(4)
        .map(|b| [b[0], b[1], b[2], b[3]])
        .collect();
    let props: Json = row.get(10);
    let properties = properties_of(&props).ok_or_else(|| damaged("its properties are damaged"))?;
    let item = Item {
        start_us: row.get(2),
        end_us: row.get(3),
        footprint: Footprint {
            crs: catalog.crs_of(row.get(4))?,
            native_wkb: row.get(5),
            native_bounds,
            wgs84_wkb: row.get(7),
            boxes,
            centroid_lon: row.get(9),
        },
        properties,
        extra: row.get::<_, Option<Json>>(11).unwrap_or(Json::Null),
        bands: row.get::<_, Option<Json>>(12).unwrap_or(Json::Null),
        href: row.get(13),
        collection,
        id,
    };
    Ok(item)
}

/// The flat properties from their stored JSON (see `write::properties_json`).
fn properties_of(stored: &Json) -> Option<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for (k, v) in stored.as_object()? {
        let value = match v {
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64()?),
            },
            Json::String(s) => Value::String(s.clone()),
            Json::Object(o) => Value::Datetime(o.get("t")?.as_i64()?),
            _ => return None,
        };
        out.insert(k.clone(), value);
    }
    Some(out)
}

pub fn summaries(catalog: &PostgisCatalog, collections: &[String]) -> Result<Vec<CrsSummary>> {
    let rows = catalog
        .client
        .borrow_mut()
        .query(
            "SELECT collection, crs_id, count, t_start, t_end, minx, miny, maxx, maxy, west, \
             south, east, north FROM gridstore.summaries \
             WHERE cardinality($1::text[]) = 0 OR collection = ANY($1) \
             ORDER BY collection, crs_id",
            &[&collections],
        )
        .map_err(|e| catalog.fail(e, "cannot read the summaries"))?;
    rows.iter()
        .map(|r| {
            let count: i64 = r.get(2);
            Ok(CrsSummary {
                collection: r.get(0),
                crs: catalog.crs_of(r.get(1))?,
                count: u64::try_from(count).unwrap_or(0),
                start_us: r.get(3),
                end_us: r.get(4),
                native_bounds: [r.get(5), r.get(6), r.get(7), r.get(8)],
                wgs84_bbox: [r.get(9), r.get(10), r.get(11), r.get(12)],
            })
        })
        .collect()
}
