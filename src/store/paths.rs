//! How the names users type map to a store directory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::MANIFEST_KEY;

/// Directory suffix of a store.
pub const STORE_EXTENSION: &str = "gridstore";
/// Prefix that names a store explicitly in GDAL (`GRIDSTORE:/data/dem.gridstore`).
pub const NAME_PREFIX: &str = "GRIDSTORE:";

/// The store directory for a name given to GDAL or the CLI: the directory itself, its
/// manifest (what a file dialog returns), or either with the `GRIDSTORE:` prefix.
pub fn resolve_store_path(name: &str) -> PathBuf {
    let name = name.strip_prefix(NAME_PREFIX).unwrap_or(name);
    let path = Path::new(name);
    if path.file_name().and_then(|n| n.to_str()) == Some(MANIFEST_KEY) {
        return path.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    // "dem.gridstore/" names the same store as "dem.gridstore".
    PathBuf::from(name.trim_end_matches('/'))
}

/// Refuses a new store's name that GDAL would not recognize when opening it.
pub fn check_store_name(path: &Path) -> Result<()> {
    let named_right = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(STORE_EXTENSION));
    if named_right {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "{}: name the store *.{STORE_EXTENSION} (for example out.{STORE_EXTENSION}), so GDAL \
         recognizes it when opening",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_of_naming_a_store() {
        let want = PathBuf::from("/d/x.gridstore");
        for name in [
            "/d/x.gridstore",
            "/d/x.gridstore/",
            "/d/x.gridstore/gridstore.json",
            "GRIDSTORE:/d/x.gridstore",
            "GRIDSTORE:/d/x.gridstore/gridstore.json",
        ] {
            assert_eq!(resolve_store_path(name), want, "{name}");
        }
    }
}
