//! The catalog: an index of items (source rasters, STAC items) with footprints, times and
//! properties, searchable by place, time and property, streamed in time order.
//!
//! One interface, [`Catalog`], with two backends: SQLite ([`sqlite`], the default: a
//! `*.sqlite` file) and PostgreSQL + PostGIS (a `postgresql://` URL). The same
//! [`conformance`] suite checks both.
//!
//! What every backend shares lives here and is backend-neutral: items ([`item`]),
//! footprints and query areas ([`footprint`], the only code that calls OGR/OSR), times and
//! days ([`when`]), searches and their exact test ([`query`]). A backend's index only
//! narrows the candidates; [`query::Prepared::matches`] decides.

pub mod antimeridian;
pub mod cells;
pub mod conformance;
pub mod footprint;
pub mod geojson;
pub mod item;
pub(crate) mod ogr;
pub mod outline;
pub mod postgis;
pub mod query;
pub mod raster;
pub mod sqlite;
pub mod stac_input;
pub mod tally;
pub mod when;
pub mod wkb;

pub use footprint::{Area, Bbox, Crs, Footprint};
pub use item::{Item, Value};
pub use query::{Op, Order, PropertyFilter, ResumeToken, Search};
pub use when::{Day, DayZone, TimeRange};

use crate::error::Result;

/// Items streamed by a search, in the search's order.
pub type ItemStream<'a> = Box<dyn Iterator<Item = Result<Item>> + 'a>;

/// How many rows a backend reads per page while streaming, at most.
pub const PAGE_SIZE: usize = 1000;

/// How many rows a backend reads for its next page: `most`, or, while a search with a
/// limit still wants fewer items than that, what it wants, doubled for each page read
/// before (the SQL filter is exact on time and properties, so a small limit is usually
/// met by the first page without reading rows only to drop them).
pub fn page_rows(still_wanted: Option<u64>, pages_read: u32, most: usize) -> usize {
    let Some(wanted) = still_wanted else {
        return most;
    };
    let grown = wanted.max(1).saturating_mul(1u64 << pages_read.min(16));
    usize::try_from(grown).map_or(most, |n| n.min(most))
}

/// A catalog backend.
pub trait Catalog: Send {
    /// Where the catalog is (a path or a URL without its password), for messages.
    fn location(&self) -> String;

    /// Adds items, replacing any with the same collection and id, in one transaction,
    /// and updates the collections' summaries in it.
    fn add_batch(&mut self, items: &[Item]) -> Result<()>;

    /// Brings the query planner's statistics up to date after a bulk add, so the next
    /// searches are planned for the catalog as it now is (none needed by default).
    fn refresh_statistics(&mut self) -> Result<()> {
        Ok(())
    }

    /// Removes items of a collection: those with the given ids, or all of them (the
    /// collection goes) when `ids` is `None`. Returns how many were removed.
    fn remove(&mut self, collection: &str, ids: Option<&[String]>) -> Result<u64>;

    /// The items matching `search`, ordered by (start time, collection, id) in the
    /// search's direction, read page by page (constant memory).
    fn search<'a>(&'a self, search: &Search) -> Result<ItemStream<'a>>;

    /// How many items match (reads them all; searches do not count by default).
    fn count(&self, search: &Search) -> Result<u64> {
        let mut n = 0;
        for item in self.search(search)? {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// The summary rows of these collections (all when empty), one per collection and
    /// CRS, kept up to date by every write: never a scan of the items.
    fn summaries(&self, collections: &[String]) -> Result<Vec<CrsSummary>>;

    /// The names of the collections, sorted.
    fn collections(&self) -> Result<Vec<String>>;

    /// The temporal and spatial extent of these collections (all when empty), in `crs`
    /// (EPSG:4326 when `None`), from the summaries.
    fn extent(&self, collections: &[String], crs: Option<&str>) -> Result<Extent> {
        Extent::from_summaries(&self.summaries(collections)?, crs)
    }

    /// The extent of the items a search finds, in `crs` (EPSG:4326 when `None`). Unlike
    /// [`Catalog::extent`] this reads the matching items (in constant memory).
    fn search_extent(&self, search: &Search, crs: Option<&str>) -> Result<Extent> {
        let mut rows: Vec<CrsSummary> = Vec::new();
        for item in self.search(search)? {
            let item = item?;
            let key = item.footprint.crs.key();
            let row = CrsSummary {
                collection: String::new(),
                crs: item.footprint.crs.clone(),
                count: 1,
                start_us: item.start_us,
                end_us: item.end_us,
                native_bounds: item.footprint.native_bounds,
                wgs84_bbox: item.footprint.bbox_4326(),
            };
            match rows.iter_mut().find(|r| r.crs.key() == key) {
                Some(r) => r.merge(&row),
                None => rows.push(row),
            }
        }
        Extent::from_summaries(&rows, crs)
    }
}

impl CrsSummary {
    /// Adds another row of the same CRS to this one.
    pub fn merge(&mut self, o: &CrsSummary) {
        let (a, b) = (self.native_bounds, o.native_bounds);
        self.count += o.count;
        self.start_us = self.start_us.min(o.start_us);
        self.end_us = self.end_us.max(o.end_us);
        self.native_bounds = [
            a[0].min(b[0]),
            a[1].min(b[1]),
            a[2].max(b[2]),
            a[3].max(b[3]),
        ];
        self.wgs84_bbox = footprint::merge_wrapped(self.wgs84_bbox, o.wgs84_bbox);
    }
}

/// What a backend keeps per collection and CRS, updated in each write's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct CrsSummary {
    pub collection: String,
    pub crs: Crs,
    pub count: u64,
    /// Earliest start (µs UTC).
    pub start_us: i64,
    /// Latest end (µs UTC, excluded).
    pub end_us: i64,
    /// The union of the items' native bounds, in `crs`.
    pub native_bounds: Bbox,
    /// The items' extent in EPSG:4326: west, south, east, north with west > east when it
    /// crosses the antimeridian (merged with [`footprint::merge_wrapped`]).
    pub wgs84_bbox: Bbox,
}

/// The extent of some items.
#[derive(Debug, Clone, PartialEq)]
pub struct Extent {
    pub count: u64,
    /// Earliest start and latest end (end excluded), µs UTC; `None` without items.
    pub time: Option<(i64, i64)>,
    /// West, south, east, north in `crs`; in EPSG:4326, west > east when the extent
    /// crosses the antimeridian. `None` without items.
    pub bbox: Option<Bbox>,
    /// The CRS of `bbox`, as asked (`EPSG:4326` by default).
    pub crs: String,
}

impl Extent {
    /// Combines summary rows: the time range, and in EPSG:4326 the rows' 4326 extents,
    /// in another CRS the native bounds of each CRS transformed into it.
    pub fn from_summaries(rows: &[CrsSummary], crs: Option<&str>) -> Result<Extent> {
        let target = crs.unwrap_or("EPSG:4326");
        let count = rows.iter().map(|r| r.count).sum();
        let time = rows
            .iter()
            .map(|r| (r.start_us, r.end_us))
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
        let bbox = if rows.is_empty() {
            None
        } else if Crs::from_user(target)?.epsg == Some(4326) {
            rows.iter()
                .map(|r| r.wgs84_bbox)
                .reduce(footprint::merge_wrapped)
        } else {
            let bounds: Vec<(Crs, Bbox)> = rows
                .iter()
                .map(|r| (r.crs.clone(), r.native_bounds))
                .collect();
            Some(footprint::union_bounds_in(&bounds, target)?)
        };
        Ok(Extent {
            count,
            time,
            bbox,
            crs: target.to_string(),
        })
    }
}

/// Whether a location names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgresql://") || location.starts_with("postgres://")
}

/// Opens an existing catalog: a `postgresql://` URL, or a SQLite file.
pub fn open(location: &str) -> Result<Box<dyn Catalog>> {
    if is_postgres(location) {
        return Ok(Box::new(postgis::PostgisCatalog::open(location)?));
    }
    Ok(Box::new(sqlite::SqliteCatalog::open(location.as_ref())?))
}

/// Creates a catalog (its schema) and opens it; an existing catalog of this version is
/// opened as is.
pub fn init(location: &str) -> Result<Box<dyn Catalog>> {
    if is_postgres(location) {
        return Ok(Box::new(postgis::PostgisCatalog::create(location)?));
    }
    Ok(Box::new(sqlite::SqliteCatalog::create(location.as_ref())?))
}
