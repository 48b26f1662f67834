//! The tile index: which chunk object holds each tile of a snapshot.
//!
//! It is a B+tree of immutable node objects. A commit writes new nodes only along the paths
//! to the tiles it changed and shares every other node with the previous snapshot, so a
//! snapshot is one root reference, opening costs the same for any store size, and a lookup
//! reads one node per tree level (about three for a billion tiles), each cached.

mod node;
mod tree;

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

pub use node::{Node, NODE_PREFIX};
pub use tree::{apply_changes, IndexReader, NodeWriter, INTERNAL_MAX, LEAF_MAX};

use crate::grid::TileLoc;

/// A tile of a store: its place in time, which pyramid, and where in that pyramid. Level 0
/// is shared by all pyramids and always has `pyramid == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TileKey {
    pub time: u32,
    pub pyramid: u8,
    pub level: u8,
    pub col: i32,
    pub row: i32,
}

/// Tiles are ordered in 16x16 blocks within a level, so that nearby tiles share index
/// leaves both across and down.
const BLOCK_SHIFT: u32 = 4;

impl TileKey {
    pub fn new(time: u32, pyramid: u8, loc: TileLoc) -> Self {
        TileKey {
            time,
            pyramid: if loc.level == 0 { 0 } else { pyramid },
            level: loc.level,
            col: loc.col,
            row: loc.row,
        }
    }

    /// A level-0 tile of the first time step.
    pub fn base(col: i32, row: i32) -> Self {
        TileKey::new(0, 0, TileLoc::new(0, col, row))
    }

    pub fn loc(&self) -> TileLoc {
        TileLoc::new(self.level, self.col, self.row)
    }

    fn order(&self) -> (u32, u8, u8, i32, i32, i32, i32) {
        (
            self.time,
            self.pyramid,
            self.level,
            self.row >> BLOCK_SHIFT,
            self.col >> BLOCK_SHIFT,
            self.row,
            self.col,
        )
    }

    /// The object holding this tile's chunk when written by snapshot `seq`.
    pub fn object_key(&self, seq: u64, keys: ChunkKeys) -> String {
        let (t, p, z, row, col) = (self.time, self.pyramid, self.level, self.row, self.col);
        match keys {
            ChunkKeys::Nested => format!("chunks/{seq}/{t}/{p}/{z}/{row}/{col}"),
            ChunkKeys::Flat => format!("chunks/{seq}/{t}.{p}.{z}.{row}.{col}"),
        }
    }
}

/// How a store names chunk objects under `chunks/<seq>/` (docs/FORMAT.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKeys {
    /// `t/p/z/row/col`: the first stores (format version 1).
    Nested,
    /// `t.p.z.row.col`: one directory per write, so a small write makes one directory,
    /// not one per level and row of tiles (format version 2).
    Flat,
}

impl ChunkKeys {
    /// The naming of stores of format version `version`.
    pub fn of_format(version: u32) -> ChunkKeys {
        if version >= 2 {
            ChunkKeys::Flat
        } else {
            ChunkKeys::Nested
        }
    }

    /// How many levels of "directories" a chunk key has under `chunks/<seq>/`.
    pub fn depth(self) -> usize {
        match self {
            ChunkKeys::Nested => 5,
            ChunkKeys::Flat => 1,
        }
    }

    /// The tile a chunk key under `chunks/<seq>/` holds (`rest` is the part after it).
    pub fn parse(self, rest: &str) -> Option<TileKey> {
        let sep = match self {
            ChunkKeys::Nested => '/',
            ChunkKeys::Flat => '.',
        };
        let parts: Vec<&str> = rest.split(sep).collect();
        let [t, p, z, row, col] = parts[..] else {
            return None;
        };
        Some(TileKey {
            time: t.parse().ok()?,
            pyramid: p.parse().ok()?,
            level: z.parse().ok()?,
            row: row.parse().ok()?,
            col: col.parse().ok()?,
        })
    }
}

impl Ord for TileKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order().cmp(&other.order())
    }
}

impl PartialOrd for TileKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a tile's chunk is: written by snapshot `seq`, `size` bytes, with this CRC-32C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub size: u32,
    pub crc: u32,
}

/// An index node object: `index/<seq>/<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeRef {
    pub seq: u64,
    pub id: u32,
}

impl NodeRef {
    pub fn object_key(&self) -> String {
        format!("{NODE_PREFIX}{}/{}", self.seq, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_name_and_parse_both_layouts() {
        let key = TileKey::new(3, 1, TileLoc::new(2, -5, 7));
        let nested = key.object_key(12, ChunkKeys::Nested);
        let flat = key.object_key(12, ChunkKeys::Flat);
        assert_eq!(nested, "chunks/12/3/1/2/7/-5");
        assert_eq!(flat, "chunks/12/3.1.2.7.-5");
        assert_eq!(ChunkKeys::Nested.parse("3/1/2/7/-5"), Some(key));
        assert_eq!(ChunkKeys::Flat.parse("3.1.2.7.-5"), Some(key));
        assert_eq!(ChunkKeys::Flat.parse("3/1/2/7/-5"), None);
        assert_eq!(ChunkKeys::of_format(1), ChunkKeys::Nested);
        assert_eq!(ChunkKeys::of_format(2), ChunkKeys::Flat);
    }

    #[test]
    fn keys_order_by_time_pyramid_level_then_block() {
        let a = TileKey::base(15, 0);
        let b = TileKey::base(0, 1);
        let c = TileKey::base(16, 0);
        assert!(a < b, "same 16x16 block: row-major");
        assert!(c > b, "next block comes after the whole first block");
        let up = TileKey::new(0, 0, TileLoc::new(1, -100, -100));
        assert!(up > c);
        assert!(
            TileKey {
                time: 1,
                ..TileKey::base(-5, -5)
            } > up
        );
    }

    #[test]
    fn level_zero_keys_ignore_the_pyramid() {
        assert_eq!(TileKey::new(0, 3, TileLoc::new(0, 1, 1)).pyramid, 0);
        assert_eq!(TileKey::new(0, 3, TileLoc::new(1, 1, 1)).pyramid, 3);
    }
}
