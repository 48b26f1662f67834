//! Joining chunk checksums: gridstore's table of powers against the matrix method of the
//! `crc32c` crate, on the lengths chunk frames have (compressed strips of a few KiB to
//! 64 KiB).
//!
//! Run: `cargo bench --bench checksum_join`. Prints the median time per join of each, over
//! several rounds, and checks both give the same checksums.

use std::hint::black_box;
use std::time::Instant;

const JOINS: usize = 20_000;
const ROUNDS: usize = 9;

/// Frame lengths from 2 KiB to 64 KiB, spread over the range.
fn length(i: usize) -> usize {
    2048 + (i * 7919) % (62 << 10)
}

/// Median nanoseconds per join of `join` over `ROUNDS` rounds, and the last round's result.
fn time(join: impl Fn(u32, u32, usize) -> u32) -> (f64, u32) {
    let mut per_join = Vec::with_capacity(ROUNDS);
    let mut acc = 0;
    for _ in 0..ROUNDS {
        acc = 0u32;
        let start = Instant::now();
        for i in 0..JOINS {
            acc = join(black_box(acc), i as u32, length(i));
        }
        per_join.push(start.elapsed().as_secs_f64() * 1e9 / JOINS as f64);
    }
    per_join.sort_by(f64::total_cmp);
    (per_join[ROUNDS / 2], acc)
}

fn main() {
    let (matrix, a) = time(crc32c::crc32c_combine);
    let (table, b) = time(gridstore::checksum::crc32c_combine);
    assert_eq!(a, b, "the two methods disagree");
    println!("| method | median ns per join |");
    println!("|---|---:|");
    println!("| crc32c crate (matrix squaring) | {matrix:.0} |");
    println!("| gridstore (table of powers) | {table:.0} |");
    println!();
    println!(
        "{JOINS} joins per round, median of {ROUNDS} rounds: the table of powers is {:.0}x faster.",
        matrix / table
    );
}
