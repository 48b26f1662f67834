//! The PostgreSQL + PostGIS backend, for catalogs that outgrow one file or are shared by
//! many machines: a `postgresql://` URL.
//!
//! Items are one row each in `gridstore.items`; each 4326 part of a footprint is one box
//! in `gridstore.parts` under a GiST index (the spatial prefilter, as SQLite's R*Tree), so
//! an item that crosses the antimeridian is found by the box on either side and never by
//! a box spanning the world. Batches are copied (`COPY ... BINARY`) into a staging table
//! and merged in one transaction with the summaries. Searches page by keyset on
//! (t_start, collection, id); every candidate gets the exact test of
//! [`super::query::Prepared::matches`].

mod read;
mod schema;
mod summary;
mod write;

use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;

use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

use super::{Catalog, CrsSummary, Item, ItemStream, Search};
use crate::catalog::Crs;
use crate::error::{Error, Result};

/// A catalog in a PostgreSQL database with PostGIS.
pub struct PostgisCatalog {
    client: RefCell<Client>,
    location: String,
    /// The CRS table as far as this handle has read or written it.
    crs: RefCell<HashMap<i32, Crs>>,
}

/// Settings for the catalog's sessions. Compiling a search just in time took longer than
/// running it on a million items. And the planner, which cannot tell how many items a
/// filter on properties keeps (it guesses one), would scan and sort the whole table where
/// walking the time index fills a page of results early.
const SESSION_SETTINGS: &str = "-c jit=off -c enable_seqscan=off";

impl PostgisCatalog {
    /// Opens the catalog in an existing database; it must have been made by
    /// [`PostgisCatalog::create`] (`gridstore catalog init`).
    pub fn open(url: &str) -> Result<PostgisCatalog> {
        let catalog = PostgisCatalog::connect(url)?;
        catalog.check_version()?;
        Ok(catalog)
    }

    /// Makes the catalog's tables in the database (PostGIS too when the user may), or
    /// opens the catalog already there.
    pub fn create(url: &str) -> Result<PostgisCatalog> {
        let catalog = PostgisCatalog::connect(url)?;
        let made = catalog.client.borrow_mut().batch_execute(schema::CREATE);
        made.map_err(|e| {
            let refused = [SqlState::INSUFFICIENT_PRIVILEGE, SqlState::UNDEFINED_FILE];
            let doing = match e.code() {
                Some(code) if refused.contains(code) => {
                    "cannot make the catalog's tables; the user needs CREATE on the database \
                     and PostGIS installed (CREATE EXTENSION postgis, by a superuser)"
                }
                _ => "cannot make the catalog's tables",
            };
            catalog.fail(e, doing)
        })?;
        catalog
            .client
            .borrow_mut()
            .execute(
                "INSERT INTO gridstore.meta VALUES ('version', $1) ON CONFLICT DO NOTHING",
                &[&schema::VERSION.to_string()],
            )
            .map_err(|e| catalog.fail(e, "cannot record the catalog version"))?;
        catalog.check_version()?;
        Ok(catalog)
    }

    fn connect(url: &str) -> Result<PostgisCatalog> {
        let mut config = Config::from_str(url).map_err(|e| {
            Error::option(
                "catalog",
                redacted(url),
                format!("a PostgreSQL URL such as postgresql://user@host:5432/dbname ({e})"),
            )
        })?;
        let location = describe(&config);
        let options = match config.get_options() {
            Some(given) => format!("{given} {SESSION_SETTINGS}"),
            None => SESSION_SETTINGS.to_string(),
        };
        config.options(&options);
        let client = config.connect(NoTls).map_err(|e| Error::Catalog {
            location: location.clone(),
            detail: format!(
                "cannot connect ({e}); check that the server runs and the URL's host, port, \
                 user, password and database"
            ),
        })?;
        Ok(PostgisCatalog {
            client: RefCell::new(client),
            location,
            crs: RefCell::new(HashMap::new()),
        })
    }

    /// Refuses a database without the catalog's tables, or with tables of another version.
    fn check_version(&self) -> Result<()> {
        let row = self.client.borrow_mut().query_opt(
            "SELECT value FROM gridstore.meta WHERE key = 'version'",
            &[],
        );
        let version = match row {
            Ok(Some(row)) => row.get::<_, String>(0),
            _ => {
                return Err(self.error(
                    "holds no gridstore catalog; make one with `gridstore catalog init URL`",
                ))
            }
        };
        match version.parse::<i32>() {
            Ok(schema::VERSION) => Ok(()),
            _ => Err(self.error(format!(
                "holds a gridstore catalog of version {version:?}; this build reads version {}: \
                 use the gridstore that made it",
                schema::VERSION
            ))),
        }
    }

    fn error(&self, detail: impl Into<String>) -> Error {
        Error::Catalog {
            location: self.location.clone(),
            detail: detail.into(),
        }
    }

    /// A database error, with what was being done.
    fn fail(&self, e: postgres::Error, doing: &str) -> Error {
        let cause = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        };
        self.error(format!("{doing}: {cause}"))
    }

    /// The CRS of an id, read from the CRS table when this handle has not seen it.
    fn crs_of(&self, id: i32) -> Result<Crs> {
        if let Some(c) = self.crs.borrow().get(&id) {
            return Ok(c.clone());
        }
        let row = self
            .client
            .borrow_mut()
            .query_opt(
                "SELECT wkt, epsg FROM gridstore.crs WHERE crs_id = $1",
                &[&id],
            )
            .map_err(|e| self.fail(e, "cannot read a CRS"))?
            .ok_or_else(|| self.error(format!("an item names CRS {id}, which is not recorded")))?;
        let epsg: Option<i32> = row.get(1);
        let crs = Crs {
            wkt: row.get(0),
            epsg: epsg.and_then(|e| u32::try_from(e).ok()),
        };
        self.crs.borrow_mut().insert(id, crs.clone());
        Ok(crs)
    }
}

impl Catalog for PostgisCatalog {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn add_batch(&mut self, items: &[Item]) -> Result<()> {
        write::add_batch(self, items)
    }

    fn refresh_statistics(&mut self) -> Result<()> {
        // PostgreSQL's autovacuum analyzes a table only some time after it changed: until
        // then a search after a bulk add is planned for the tables as they were (a search
        // of an area joins the items to their parts' boxes, so both count). VACUUM also
        // marks the rows just added as committed on their pages, which the first searches
        // would otherwise write in passing.
        self.client
            .borrow_mut()
            .batch_execute("VACUUM (ANALYZE) gridstore.items, gridstore.parts")
            .map_err(|e| self.fail(e, "cannot update the statistics of the items"))
    }

    fn remove(&mut self, collection: &str, ids: Option<&[String]>) -> Result<u64> {
        write::remove(self, collection, ids)
    }

    fn search<'a>(&'a self, search: &Search) -> Result<ItemStream<'a>> {
        read::search(self, search)
    }

    fn summaries(&self, collections: &[String]) -> Result<Vec<CrsSummary>> {
        read::summaries(self, collections)
    }

    fn collections(&self) -> Result<Vec<String>> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT DISTINCT collection FROM gridstore.summaries ORDER BY 1",
                &[],
            )
            .map_err(|e| self.fail(e, "cannot list the collections"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// `postgresql://user@host:port/dbname`, without the password, for messages.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgresql://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// A URL with any password replaced, for messages about a URL that does not parse.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            match user_info.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redacted("postgresql://me:secret@db:5432/x"),
            "postgresql://me:***@db:5432/x"
        );
        let config = Config::from_str("postgresql://me:secret@db:5433/x").unwrap();
        assert_eq!(describe(&config), "postgresql://me@db:5433/x");
    }
}
