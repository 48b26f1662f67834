//! How the names users type map to a store directory.

use std::path::{Path, PathBuf};

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
