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

pub use node::{Node, RecordValue, Records, NODE_PREFIX};
pub use tree::{
    apply_changes, decode_root_copy, encode_root_copy, IndexReader, NodeWriter, Tree, INTERNAL_MAX,
    LEAF_MAX, MAX_DEPTH, MAX_ROOT_COPY,
};

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

/// The tick whose keys are the step records of a time axis (docs/FORMAT.md §8), not
/// tiles: step `t`'s record is key `(STEP_RECORDS, 0, 0, t ^ 2^31 as i32, 0)`, so the
/// records sort after every tile, in tick order, in a range of their own.
pub const STEP_RECORDS: u32 = u32::MAX;
/// The pyramid id of time-block chunks (docs/FORMAT.md §8): the time block of level-0 tile
/// (`col`, `row`) over ticks `[k·D, (k+1)·D)` is key `(k·D, TIME_BLOCKS, 0, col, row)`. It
/// sorts after every tile of its first tick, and no map read asks for it: level-0 tiles
/// always have pyramid 0, and a store has one pyramid.
pub const TIME_BLOCKS: u8 = u8::MAX;
pub use crate::keys::{CHUNK_PREFIX, STEP_PREFIX, WRITE_PREFIXES};

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

    /// The key of step `t`'s record.
    pub fn step_record(t: u32) -> Self {
        TileKey {
            time: STEP_RECORDS,
            pyramid: 0,
            level: 0,
            col: (t ^ (1 << 31)) as i32,
            row: 0,
        }
    }

    /// The step whose record this key is, if it is one.
    pub fn recorded_step(&self) -> Option<u32> {
        let record = (self.time, self.pyramid, self.level, self.row) == (STEP_RECORDS, 0, 0, 0);
        record.then_some(self.col as u32 ^ (1 << 31))
    }

    /// The key of the time block of level-0 tile (`col`, `row`) whose first tick is `first`.
    pub fn time_block(first: u32, col: i32, row: i32) -> Self {
        TileKey {
            time: first,
            pyramid: TIME_BLOCKS,
            level: 0,
            col,
            row,
        }
    }

    /// Whether this key is a time block's, not a tile's or a step record's.
    pub fn is_time_block(&self) -> bool {
        self.pyramid == TIME_BLOCKS && self.level == 0 && self.time != STEP_RECORDS
    }

    /// The bounds `[lo, hi)` of the keys of the time blocks whose first tick is `first`.
    pub fn time_blocks_of(first: u32) -> (Self, Self) {
        let lo = TileKey::time_block(first, i32::MIN, i32::MIN);
        let hi = TileKey { level: 1, ..lo };
        (lo, hi)
    }

    /// The tick of the step or tile this key is about (`None` for a time block, which
    /// covers many).
    pub fn tick(&self) -> Option<u32> {
        if self.is_time_block() {
            return None;
        }
        self.recorded_step().or(Some(self.time))
    }

    /// The first key after every step record and tile of the index (an exclusive bound).
    pub fn after_all() -> Self {
        TileKey {
            time: STEP_RECORDS,
            pyramid: 1,
            level: 0,
            col: i32::MIN,
            row: i32::MIN,
        }
    }

    /// The first key of tick `t` (an inclusive bound for its tiles).
    pub fn first_of_tick(t: u32) -> Self {
        TileKey {
            time: t,
            pyramid: 0,
            level: 0,
            col: i32::MIN,
            row: i32::MIN,
        }
    }

    /// The tile as messages name it.
    pub fn describe(&self) -> String {
        let TileKey {
            time,
            pyramid,
            level,
            col,
            row,
        } = *self;
        format!("(time {time}, pyramid {pyramid}, level {level}, column {col}, row {row})")
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

    /// The 16 x 16 block of level-0 tiles (row, column) that holds this tile's top-left
    /// corner: the one a tile of level 0 is in, and the one of its children's top-left
    /// child for a tile above.
    pub(crate) fn corner_block(&self) -> (i64, i64) {
        // No store has a level above MAX_LEVEL (32), where an i32 index shifted still fits
        // an i64. The bound only matters for a name that is no chunk of the store (a level
        // the key's u8 allows but no store reaches), which then parses to a block its name
        // does not give instead of overflowing the shift.
        let z = u32::from(self.level.min(crate::grid::MAX_LEVEL));
        let corner = |i: i32| (i64::from(i) << z) >> BLOCK_SHIFT;
        (corner(self.row), corner(self.col))
    }

    /// The object holding this tile's chunk when written by snapshot `seq`, named as
    /// `naming` says.
    pub fn object_key(&self, seq: u64, naming: ChunkNaming) -> String {
        crate::keys::tile_object(self, seq, naming)
    }

    /// Where the chunk `e` of this tile lies, in a store that names chunks as `naming`
    /// says: in its pack, or in an object of its own.
    pub fn chunk_at(&self, e: &Entry, naming: ChunkNaming) -> ChunkAt {
        match e.pack() {
            Some(pack) => ChunkAt {
                object: crate::keys::pack(e.seq, pack),
                offset: e.offset,
            },
            None => ChunkAt {
                object: self.object_key(e.seq, naming),
                offset: 0,
            },
        }
    }

    /// The tile whose chunk is `rest`, a key below `chunks/<seq>/` named as `naming` says.
    pub fn from_object_key(rest: &str, naming: ChunkNaming) -> Option<TileKey> {
        crate::keys::tile_of_chunk(rest, naming)
    }
}

/// How a store names its chunk objects under `chunks/<seq>/` (docs/FORMAT.md §1), fixed
/// when the store is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkNaming {
    /// `<t>_<p>_<brow>_<bcol>/<z>_<row>_<col>`: one directory per 16 x 16 block of
    /// level-0 tiles, holding them and the tiles above whose top-left corner is in the
    /// block. A small write makes one directory for all its levels. The names hold no
    /// dot, so that GDAL's `/vsicurl/` fetches such an object in one GET, where it asks
    /// for the size of a name with a dot first (format version 3).
    Blocks,
    /// As [`ChunkNaming::Blocks`], and packs `<n>`: objects holding several chunks one after
    /// the other, named by a number from 1 (format version 4 on).
    Packs,
    /// `<t>.<p>.<brow>.<bcol>/<z>.<row>.<col>`: as [`ChunkNaming::Blocks`] with dots, the
    /// stores of format version 2.
    DottedBlocks,
    /// `<t>/<p>/<z>/<row>/<col>`: the stores of format version 1.
    Nested,
}

impl ChunkNaming {
    /// The naming of the stores of format version `version`.
    pub fn of_format(version: u32) -> ChunkNaming {
        match version {
            0 | 1 => ChunkNaming::Nested,
            2 => ChunkNaming::DottedBlocks,
            3 => ChunkNaming::Blocks,
            _ => ChunkNaming::Packs,
        }
    }

    /// How many directory levels below `chunks/<seq>/` a chunk's key has.
    pub fn depth(self) -> usize {
        match self {
            ChunkNaming::Packs | ChunkNaming::Blocks | ChunkNaming::DottedBlocks => 2,
            ChunkNaming::Nested => 5,
        }
    }

    /// Whether chunks may lie in packs, `chunks/<seq>/<n>`.
    pub fn has_packs(self) -> bool {
        self == ChunkNaming::Packs
    }

    /// What separates the numbers within a name of a block naming.
    pub(crate) fn separator(self) -> char {
        match self {
            ChunkNaming::DottedBlocks => '.',
            ChunkNaming::Packs | ChunkNaming::Blocks | ChunkNaming::Nested => '_',
        }
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
/// A chunk that keeps some of its frames in an older chunk of the same tile (a level
/// update that rewrote only what changed) names the snapshot that wrote that one as its
/// `base`; 0 when the chunk holds all of its frames. A chunk written with others into one
/// object, a pack, names that pack (`pack`, from 1, of snapshot `seq`) and where in it the
/// chunk starts (`offset`); pack 0 is a chunk that is an object of its own, named after
/// its tile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub size: u32,
    pub crc: u32,
    #[serde(default)]
    pub base: u64,
    #[serde(default)]
    pub pack: u32,
    #[serde(default)]
    pub offset: u64,
}

impl Entry {
    /// The snapshot whose chunk of the same tile holds frames this one refers to, if any.
    pub fn base(&self) -> Option<u64> {
        (self.base != 0).then_some(self.base)
    }

    /// The pack holding the chunk, if it is in one.
    pub fn pack(&self) -> Option<u32> {
        (self.pack != 0).then_some(self.pack)
    }
}

/// Where the bytes of a chunk lie: from `offset` of the object `object`, for as many bytes
/// as its index entry says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkAt {
    pub object: String,
    pub offset: u64,
}

/// An index node object: `index/<seq>/<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeRef {
    pub seq: u64,
    pub id: u32,
}

impl NodeRef {
    pub fn object_key(&self) -> String {
        crate::keys::node(self.seq, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_records_sort_after_tiles_in_tick_order() {
        let ticks = [0u32, 1, 15, 16, 17, 1 << 31, (1 << 31) + 1, u32::MAX - 1];
        let keys: Vec<TileKey> = ticks.iter().map(|&t| TileKey::step_record(t)).collect();
        for w in keys.windows(2) {
            assert!(w[0] < w[1], "{w:?}");
        }
        for (&t, k) in ticks.iter().zip(&keys) {
            assert_eq!(k.recorded_step(), Some(t));
            assert!(*k > TileKey::new(u32::MAX - 1, 255, TileLoc::new(40, i32::MAX, i32::MAX)));
            assert!(*k < TileKey::after_all());
        }
        assert_eq!(
            TileKey::step_record(7).object_key(3, ChunkNaming::Blocks),
            "steps/3/7"
        );
        assert_eq!(TileKey::base(0, 0).recorded_step(), None);
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
    fn object_keys_name_the_tile_and_read_back() {
        let k = TileKey {
            time: 2,
            pyramid: 1,
            level: 3,
            col: -4,
            row: 17,
        };
        // Its top-left corner is level-0 tile (136, -32): block (8, -2).
        let blocks = k.object_key(9, ChunkNaming::Blocks);
        assert_eq!(blocks, "chunks/9/2_1_8_-2/3_17_-4");
        let dotted = k.object_key(9, ChunkNaming::DottedBlocks);
        assert_eq!(dotted, "chunks/9/2.1.8.-2/3.17.-4");
        let nested = k.object_key(9, ChunkNaming::Nested);
        assert_eq!(nested, "chunks/9/2/1/3/17/-4");
        for (key, naming) in [
            (blocks, ChunkNaming::Blocks),
            (dotted, ChunkNaming::DottedBlocks),
            (nested, ChunkNaming::Nested),
        ] {
            let rest = key.strip_prefix("chunks/9/").unwrap();
            assert_eq!(rest.matches('/').count() + 1, naming.depth());
            assert_eq!(TileKey::from_object_key(rest, naming), Some(k));
        }
        for junk in [
            "2.1.8/3.17.-4",
            "2.1.8.-2/3.17",
            "2.1.8.-1/3.17.-4",
            "a.1.8.-2/3.17.-4",
            "2.1.0.0/200.5.5",
        ] {
            assert_eq!(
                TileKey::from_object_key(junk, ChunkNaming::DottedBlocks),
                None,
                "{junk}"
            );
            let undotted = junk.replace('.', "_");
            assert_eq!(
                TileKey::from_object_key(&undotted, ChunkNaming::Blocks),
                None,
                "{undotted}"
            );
            assert_eq!(TileKey::from_object_key(junk, ChunkNaming::Nested), None);
        }
        // One naming's name is no chunk in another's.
        let rest = |naming| {
            let key = k.object_key(9, naming);
            key.strip_prefix("chunks/9/").unwrap().to_string()
        };
        let dotted = rest(ChunkNaming::DottedBlocks);
        assert_eq!(TileKey::from_object_key(&dotted, ChunkNaming::Blocks), None);
        let undotted = rest(ChunkNaming::Blocks);
        assert_eq!(
            TileKey::from_object_key(&undotted, ChunkNaming::DottedBlocks),
            None
        );
        // A tile and its ancestors up to the level of 16 x 16 tiles share a directory.
        let dir = |k: TileKey| {
            let key = k.object_key(1, ChunkNaming::Blocks);
            key.rsplit_once('/').unwrap().0.to_string()
        };
        let mut loc = TileLoc::new(0, 37, 21);
        let first = dir(TileKey::new(0, 0, loc));
        for _ in 0..4 {
            loc = loc.parent();
            assert_eq!(dir(TileKey::new(0, 0, loc)), first, "{loc:?}");
        }
        assert_ne!(dir(TileKey::base(37, 5)), first);
    }

    #[test]
    fn time_blocks_sort_after_their_first_ticks_tiles_and_name_objects() {
        let tb = TileKey::time_block(256, -3, 7);
        assert!(tb.is_time_block());
        assert_eq!(tb.tick(), None);
        assert!(tb > TileKey::new(256, 0, TileLoc::new(30, i32::MAX, i32::MAX)));
        assert!(tb < TileKey::first_of_tick(257));
        let (lo, hi) = TileKey::time_blocks_of(256);
        assert!(lo <= tb && tb < hi);
        assert!(!TileKey::base(1, 1).is_time_block());
        assert_eq!(TileKey::step_record(4).tick(), Some(4));
        for naming in [
            ChunkNaming::Blocks,
            ChunkNaming::DottedBlocks,
            ChunkNaming::Nested,
        ] {
            let key = tb.object_key(5, naming);
            let rest = key.strip_prefix("chunks/5/").unwrap();
            assert_eq!(TileKey::from_object_key(rest, naming), Some(tb));
        }
    }

    #[test]
    fn level_zero_keys_ignore_the_pyramid() {
        assert_eq!(TileKey::new(0, 3, TileLoc::new(0, 1, 1)).pyramid, 0);
        assert_eq!(TileKey::new(0, 3, TileLoc::new(1, 1, 1)).pyramid, 3);
    }
}
