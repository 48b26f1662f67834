//! The summary rows (one per collection and CRS), kept up to date in each write's
//! transaction so that extents never scan the items.

use std::collections::BTreeMap;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Transaction;

pub use crate::catalog::tally::{merge_into as add, Tally};
use crate::catalog::Bbox;

type PgResult<T> = std::result::Result<T, postgres::Error>;

/// Tallies keyed by (collection, crs id).
pub type Tallies = BTreeMap<(String, i32), Tally>;

/// Folds a batch's tallies into the stored rows (when the batch replaced nothing).
pub fn grow(tx: &mut Transaction, tallies: &Tallies) -> PgResult<()> {
    for ((collection, crs_id), t) in tallies {
        let old = tx.query_opt(
            "SELECT count, t_start, t_end, longest, minx, miny, maxx, maxy, west, south, east, \
             north FROM gridstore.summaries WHERE collection = $1 AND crs_id = $2 FOR UPDATE",
            &[collection, crs_id],
        )?;
        let merged = match old {
            Some(r) => Tally {
                count: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
                start: r.get(1),
                end: r.get(2),
                max_span: r.get(3),
                bounds: [r.get(4), r.get(5), r.get(6), r.get(7)],
                wgs84: [r.get(8), r.get(9), r.get(10), r.get(11)],
            }
            .merge(*t),
            None => *t,
        };
        write(tx, collection, *crs_id, &merged)?;
    }
    Ok(())
}

fn write(tx: &mut Transaction, collection: &str, crs_id: i32, t: &Tally) -> PgResult<()> {
    let (b, w) = (t.bounds, t.wgs84);
    let count = i64::try_from(t.count).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO gridstore.summaries VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14) ON CONFLICT (collection, crs_id) DO UPDATE SET count = $3, \
         t_start = $4, t_end = $5, longest = $6, minx = $7, miny = $8, maxx = $9, maxy = $10, \
         west = $11, south = $12, east = $13, north = $14",
        &[
            &collection,
            &crs_id,
            &count,
            &t.start,
            &t.end,
            &t.max_span,
            &b[0],
            &b[1],
            &b[2],
            &b[3],
            &w[0],
            &w[1],
            &w[2],
            &w[3],
        ],
    )?;
    Ok(())
}

/// Rebuilds a collection's rows from its items (streamed): after replacements and
/// removals, which can shrink them. A write-time scan of that collection only.
pub fn rebuild(tx: &mut Transaction, collection: &str) -> PgResult<()> {
    tx.execute(
        "DELETE FROM gridstore.summaries WHERE collection = $1",
        &[&collection],
    )?;
    let mut tallies = Tallies::new();
    {
        let mut rows = tx.query_raw(
            "SELECT crs_id, t_start, t_end, native_bounds, boxes FROM gridstore.items \
             WHERE collection = $1",
            [collection],
        )?;
        while let Some(r) = rows.next()? {
            let nb: Vec<f64> = r.get(3);
            let boxes: Vec<f64> = r.get(4);
            let (Ok(bounds), true) = (<Bbox>::try_from(nb), boxes.len() % 4 == 0) else {
                continue; // a damaged row; a search reports it
            };
            let parts: Vec<Bbox> = boxes
                .chunks_exact(4)
                .map(|b| [b[0], b[1], b[2], b[3]])
                .collect();
            let (start, end): (i64, i64) = (r.get(1), r.get(2));
            let t = Tally {
                count: 1,
                start,
                end,
                max_span: end.saturating_sub(start),
                bounds,
                wgs84: crate::catalog::footprint::wrapped_bbox(&parts),
            };
            add(&mut tallies, (collection.to_string(), r.get(0)), t);
        }
    }
    for ((c, crs_id), t) in &tallies {
        write(tx, c, *crs_id, t)?;
    }
    Ok(())
}
