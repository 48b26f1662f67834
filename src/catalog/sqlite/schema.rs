//! The SQLite catalog's schema, its version, and the checks made when a file is opened.

use std::path::Path;

use rusqlite::Connection;

use super::db_error;
use crate::error::{Error, Result};

/// What `catalog_meta.format` holds in every gridstore catalog.
pub const FORMAT_NAME: &str = "gridstore-catalog";

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

const CREATE: &str = "
CREATE TABLE catalog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE crs (
    crs_id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    wkt TEXT NOT NULL,
    epsg INTEGER
);
CREATE TABLE items (
    rid INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    t_start INTEGER NOT NULL,
    t_end INTEGER NOT NULL,
    crs_id INTEGER NOT NULL REFERENCES crs(crs_id),
    native_wkb BLOB NOT NULL,
    nminx REAL NOT NULL, nminy REAL NOT NULL, nmaxx REAL NOT NULL, nmaxy REAL NOT NULL,
    west REAL NOT NULL, south REAL NOT NULL, east REAL NOT NULL, north REAL NOT NULL,
    wgs84_wkb BLOB NOT NULL,
    centroid_lon REAL NOT NULL,
    nparts INTEGER NOT NULL,
    props TEXT NOT NULL,
    dtprops TEXT NOT NULL,
    extra TEXT,
    bands TEXT,
    href TEXT,
    UNIQUE (collection, id)
);
CREATE INDEX items_time ON items (t_start, collection, id);
CREATE VIRTUAL TABLE items_rtree USING rtree (pid, minx, maxx, miny, maxy);
CREATE TABLE summary (
    collection TEXT NOT NULL,
    crs_id INTEGER NOT NULL REFERENCES crs(crs_id),
    count INTEGER NOT NULL,
    t_min INTEGER NOT NULL,
    t_max INTEGER NOT NULL,
    max_span INTEGER NOT NULL,
    minx REAL NOT NULL, miny REAL NOT NULL, maxx REAL NOT NULL, maxy REAL NOT NULL,
    west REAL NOT NULL, south REAL NOT NULL, east REAL NOT NULL, north REAL NOT NULL,
    PRIMARY KEY (collection, crs_id)
);
";

/// Creates the schema in an empty database, or checks an existing one.
pub fn create_or_check(conn: &Connection, path: &Path) -> Result<()> {
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(|e| db_error(path, e))?;
    if tables > 0 {
        return check(conn, path);
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| db_error(path, e))?;
    let meta = format!(
        "INSERT INTO catalog_meta VALUES ('format', '{FORMAT_NAME}'), \
         ('schema_version', '{SCHEMA_VERSION}');"
    );
    conn.execute_batch(&format!("BEGIN; {CREATE} {meta} COMMIT;"))
        .map_err(|e| db_error(path, e))
}

/// Refuses a database that is not a gridstore catalog, or one of a newer schema.
pub fn check(conn: &Connection, path: &Path) -> Result<()> {
    let foreign = || Error::Catalog {
        location: path.display().to_string(),
        detail: "this SQLite database is not a gridstore catalog (it has no catalog_meta \
                 table naming the format); give a catalog made by `gridstore catalog init`"
            .into(),
    };
    let value = |key: &str| -> Result<Option<String>> {
        match conn.query_row(
            "SELECT value FROM catalog_meta WHERE key = ?1",
            [key],
            |r| r.get::<_, String>(0),
        ) {
            Ok(v) => Ok(Some(v)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::NotADatabase =>
            {
                Err(db_error(path, rusqlite::Error::SqliteFailure(f, None)))
            }
            Err(_) => Err(foreign()),
        }
    };
    if value("format")?.as_deref() != Some(FORMAT_NAME) {
        return Err(foreign());
    }
    let version: u32 = value("schema_version")?
        .and_then(|v| v.parse().ok())
        .ok_or_else(foreign)?;
    if version > SCHEMA_VERSION {
        return Err(Error::Catalog {
            location: path.display().to_string(),
            detail: format!(
                "written by a newer gridstore (catalog schema {version}); this build reads \
                 schema {SCHEMA_VERSION}. Upgrade gridstore to use it"
            ),
        });
    }
    Ok(())
}
