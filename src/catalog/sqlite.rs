//! The SQLite backend: one file, R*Tree over the footprints' 4326 parts.

use std::path::{Path, PathBuf};

use super::{Catalog, CrsSummary, Item, ItemStream, Search};
use crate::error::{Error, Result};

/// A catalog in a SQLite file.
pub struct SqliteCatalog {
    path: PathBuf,
}

impl SqliteCatalog {
    /// Opens an existing catalog file.
    pub fn open(path: &Path) -> Result<SqliteCatalog> {
        Err(Error::NotSupported(format!(
            "{}: not implemented yet",
            path.display()
        )))
    }

    /// Creates the file and its schema (or opens it if it is already a catalog).
    pub fn create(path: &Path) -> Result<SqliteCatalog> {
        Err(Error::NotSupported(format!(
            "{}: not implemented yet",
            path.display()
        )))
    }
}

impl Catalog for SqliteCatalog {
    fn location(&self) -> String {
        self.path.display().to_string()
    }
    fn add_batch(&mut self, _items: &[Item]) -> Result<()> {
        Err(Error::NotSupported("not implemented yet".into()))
    }
    fn remove(&mut self, _collection: &str, _ids: Option<&[String]>) -> Result<u64> {
        Err(Error::NotSupported("not implemented yet".into()))
    }
    fn search<'a>(&'a self, _search: &Search) -> Result<ItemStream<'a>> {
        Err(Error::NotSupported("not implemented yet".into()))
    }
    fn summaries(&self, _collections: &[String]) -> Result<Vec<CrsSummary>> {
        Err(Error::NotSupported("not implemented yet".into()))
    }
    fn collections(&self) -> Result<Vec<String>> {
        Err(Error::NotSupported("not implemented yet".into()))
    }
}
