//! Splitting one write into parts that independent processes write into the same store:
//! part `I` of `N` (`--shard I/N`). Every process computes the same split from the same
//! arguments, so no process hands out work to the others.
//!
//! Level-0 tiles are split into contiguous ranges of their Z-order (interleaved bits of the
//! column and row, counted from a fixed corner far outside any grid), balanced by tile
//! count. A range of Z-order is made of whole aligned blocks of 2^L x 2^L tiles, which are
//! exactly the level-L tiles above them, so two parts share at most one tile of each level
//! at each of the `N - 1` places where the order is cut.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::grid::TileLoc;

/// Part `index` of `count` parts of a write (`0 <= index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// The whole write, in one part.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Part `index` of `count`; refuses an index that is not below the count.
    pub fn new(index: u32, count: u32) -> Result<Shard> {
        if count == 0 {
            return Err(Error::InvalidInput(
                "a write cannot be split into 0 parts: give --shard I/N with N at least 1".into(),
            ));
        }
        if index >= count {
            return Err(Error::InvalidInput(format!(
                "there is no part {index} of {count}: parts are numbered from 0 to {} \
                 (a Slurm array or a Kubernetes Indexed Job counts from 0 too)",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// True for the whole write (1 part).
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// The positions of this part among `len` items cut into `count` contiguous runs whose
    /// lengths differ by at most one.
    pub fn range(&self, len: usize) -> Range<usize> {
        self.range_of_weights(len, |_| 1)
    }

    /// The positions of this part among `len` items of `weight(i)` each, cut into `count`
    /// contiguous runs of about equal weight: item `i` goes to the part its first unit of
    /// weight falls in. Items are never split; some parts may be empty.
    pub fn range_of_weights(&self, len: usize, weight: impl Fn(usize) -> u64) -> Range<usize> {
        let total: u64 = (0..len).map(&weight).sum();
        let n = u128::from(self.count);
        let part_of = |before: u64| -> u32 {
            if total == 0 {
                0
            } else {
                (u128::from(before) * n / u128::from(total)) as u32
            }
        };
        // Parts only grow along the items, so this part starts after the items of the
        // parts before it and ends after its own.
        let (mut before, mut start, mut end) = (0u64, 0usize, 0usize);
        for i in 0..len {
            let p = part_of(before);
            start += usize::from(p < self.index);
            end += usize::from(p <= self.index);
            before += weight(i);
        }
        start..end
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// `I/N`, as `--shard` takes it.
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            Error::InvalidInput(format!(
                "--shard {s:?}: give the part as I/N, e.g. --shard 0/4 for the first of 4 \
                 parts (I from 0 to N-1)"
            ))
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let number = |v: &str| -> Result<u32> {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            v.parse::<u32>().map_err(|_| {
                Error::InvalidInput(format!("--shard {s:?}: {v} is too large a number"))
            })
        };
        Shard::new(number(i)?, number(n)?)
    }
}

/// The Z-order of level-0 tile `loc`, counted from a corner 2^31 tiles up and left of tile
/// (0, 0), so that every aligned block of 2^L x 2^L tiles (one level-L tile) is one run of
/// the order.
pub fn tile_order(loc: TileLoc) -> u64 {
    // Flipping the sign bit maps i32 onto u32 keeping order and power-of-two alignment.
    let x = (loc.col as u32) ^ 0x8000_0000;
    let y = (loc.row as u32) ^ 0x8000_0000;
    spread(x) | (spread(y) << 1)
}

/// The bits of `v` moved to the even bit positions.
fn spread(v: u32) -> u64 {
    let mut v = u64::from(v);
    v = (v | (v << 16)) & 0x0000_ffff_0000_ffff;
    v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff;
    v = (v | (v << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    v = (v | (v << 2)) & 0x3333_3333_3333_3333;
    v = (v | (v << 1)) & 0x5555_5555_5555_5555;
    v
}

/// This part of `items`, each at level-0 tile `loc_of(item)`: all items sorted in
/// [`tile_order`], cut into `shard.count()` contiguous runs of about equal length. The
/// part keeps the order it had in `items`.
pub fn part_of_tiles<T>(items: Vec<T>, shard: Shard, loc_of: impl Fn(&T) -> TileLoc) -> Vec<T> {
    if shard.is_whole() {
        return items;
    }
    let mut order: Vec<(u64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, t)| (tile_order(loc_of(t)), i))
        .collect();
    order.sort_unstable();
    let mut mine = vec![false; items.len()];
    for &(_, i) in &order[shard.range(order.len())] {
        mine[i] = true;
    }
    items
        .into_iter()
        .zip(mine)
        .filter_map(|(t, m)| m.then_some(t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_i_of_n_and_refuses_the_rest() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard::new(2, 4).unwrap());
        assert_eq!("0/1".parse::<Shard>().unwrap(), Shard::WHOLE);
        for bad in [
            "4/4", "1/0", "0/0", "3", "a/2", "-1/2", "1/2/3", "", "/", "1/",
        ] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("--shard") || e.contains("part"), "{bad}: {e}");
        }
        let e = "4/4".parse::<Shard>().unwrap_err().to_string();
        assert!(e.contains("from 0 to 3"), "{e}");
    }

    #[test]
    fn parts_cover_every_item_once_balanced() {
        for len in [0usize, 1, 2, 5, 17, 100] {
            for n in 1..=7u32 {
                let mut next = 0;
                for i in 0..n {
                    let r = Shard::new(i, n).unwrap().range(len);
                    assert_eq!(r.start, next, "len {len} n {n} part {i}");
                    let lo = len / n as usize;
                    assert!(r.len() == lo || r.len() == lo + 1, "{len} {n} {i} {r:?}");
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn weighted_parts_keep_items_whole() {
        let w = [5u64, 1, 1, 1, 1, 1];
        let parts: Vec<_> = (0..2)
            .map(|i| {
                Shard::new(i, 2)
                    .unwrap()
                    .range_of_weights(w.len(), |j| w[j])
            })
            .collect();
        assert_eq!(parts, vec![0..1, 1..6]);
        // More parts than items: some are empty, none overlaps.
        let parts: Vec<_> = (0..4)
            .map(|i| Shard::new(i, 4).unwrap().range_of_weights(2, |_| 1))
            .collect();
        assert_eq!(parts.iter().map(|r| r.len()).sum::<usize>(), 2);
    }

    #[test]
    fn a_part_of_tiles_is_made_of_whole_upper_tiles() {
        // 16 x 16 tiles from (-8, -8): 4 parts of 64 tiles are the 4 aligned 8x8 blocks.
        let locs: Vec<TileLoc> = (-8..8)
            .flat_map(|r| (-8..8).map(move |c| TileLoc::new(0, c, r)))
            .collect();
        for i in 0..4 {
            let part = part_of_tiles(locs.clone(), Shard::new(i, 4).unwrap(), |l| *l);
            assert_eq!(part.len(), 64);
            let blocks: std::collections::HashSet<_> = part
                .iter()
                .map(|l| (l.col.div_euclid(8), l.row.div_euclid(8)))
                .collect();
            assert_eq!(blocks.len(), 1, "part {i} spans {blocks:?}");
        }
    }
}
