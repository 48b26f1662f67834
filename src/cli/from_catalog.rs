//! `--from-catalog`: the sources of `gridstore ingest` and `gridstore append` found by a
//! catalog search instead of named one by one, streamed in time order.

use anyhow::{bail, Context, Result};

use gridstore::catalog::{self, when::format_us, Order};

use super::catalog::Criteria;

/// Where `gridstore ingest` and `gridstore append` may take their sources from.
#[derive(clap::Args)]
pub struct FromCatalog {
    /// Take the sources from this catalog (a SQLite file or a postgresql:// URL): the data
    /// of the items matching --collection, --bbox/--polygon, --time-range, --day and
    /// --where, in time order
    #[arg(long, value_name = "CATALOG")]
    pub from_catalog: Option<String>,
    #[command(flatten)]
    pub criteria: Criteria,
    /// With --from-catalog: only items whose time overlaps START/END (half-open; either
    /// side may be ..)
    #[arg(long, value_name = "START/END", requires = "from_catalog")]
    pub time_range: Option<String>,
}

/// A source a catalog names: its data, and the start of its time.
pub struct Source {
    pub path: String,
    pub start_us: i64,
}

impl FromCatalog {
    /// The sources of the matching items in time order, or `None` without --from-catalog.
    pub fn sources(&self) -> Result<Option<Vec<Source>>> {
        let Some(location) = &self.from_catalog else {
            if self.criteria.any() {
                bail!(
                    "--collection, --bbox, --polygon, --day and --where choose items of a \
                     catalog: give --from-catalog CATALOG too"
                );
            }
            return Ok(None);
        };
        let search = self
            .criteria
            .search(self.time_range.as_deref(), Order::Asc)?;
        let catalog = catalog::open(location)?;
        let mut sources = Vec::new();
        for item in catalog.search(&search)? {
            let item = item?;
            let path = item.href.with_context(|| {
                format!(
                    "item {}/{} of {location} names no data (no href): add the rasters \
                     themselves, or STAC items with a `data` asset",
                    item.collection, item.id
                )
            })?;
            sources.push(Source {
                path,
                start_us: item.start_us,
            });
        }
        if sources.is_empty() {
            bail!(
                "no item of {location} matches: nothing to write (try the same criteria with \
                 `gridstore catalog search`)"
            );
        }
        Ok(Some(sources))
    }
}

/// The instant of a source, as `--time` takes it.
pub fn instant(source: &Source) -> String {
    format_us(source.start_us)
}
