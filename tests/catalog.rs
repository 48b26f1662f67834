//! The catalog conformance suite on the SQLite backend, and what is particular to it.

use gridstore::catalog::{conformance, sqlite::SqliteCatalog, Catalog};

fn fresh(dir: &tempfile::TempDir, name: &str) -> Box<dyn Catalog> {
    Box::new(SqliteCatalog::create(&dir.path().join(format!("{name}.sqlite"))).unwrap())
}

#[test]
fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    for (name, check) in conformance::CHECKS {
        eprintln!("conformance: {name}");
        check(&mut *fresh(&dir, name));
    }
}
