//! Grid geometry: tile locations, pixel rectangles, and how a store's extent becomes the
//! levels GDAL shows.
//!
//! Pixel coordinates are integers relative to the grid origin, at the resolution of a given
//! level: pixel `x` of level `z` covers level-0 pixels `[x * 2^z, (x + 1) * 2^z)`. Tile
//! `(z, col, row)` covers level-`z` pixels `[col * T, (col + 1) * T)` (likewise for rows), so
//! the tiles of every level are anchored at the origin and data arriving later lands on the
//! same tiles. Coordinates may be negative: a store grows left of and above its origin.

use serde::{Deserialize, Serialize};

/// The aggregation factor between two consecutive levels. Fixed by the format.
pub const FACTOR: i64 = 2;

/// Smallest and largest tile edge, in pixels, a store accepts.
pub const MIN_TILE_SIZE: u32 = 16;
pub const MAX_TILE_SIZE: u32 = 4096;

/// How far (in tiles of level 0) a store's extent may reach from the origin in any
/// direction. Tile columns and rows are `i32`; this bound leaves room for the differences,
/// doublings and `+ 1`s done on them, and with 16-pixel tiles still allows 2^33 pixels.
pub const MAX_TILE_INDEX: i64 = 1 << 29;

/// Highest level a store may reach; with 16-pixel tiles this covers 2^36 pixels a side.
pub const MAX_LEVEL: u8 = 32;

/// Floor division that rounds toward negative infinity.
#[inline]
pub fn div_floor(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

/// Ceiling division for a positive divisor.
#[inline]
pub fn div_ceil(a: i64, b: i64) -> i64 {
    -div_floor(-a, b)
}

/// A tile of one level of one pyramid, in one time step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TileLoc {
    pub level: u8,
    pub col: i32,
    pub row: i32,
}

impl TileLoc {
    pub fn new(level: u8, col: i32, row: i32) -> Self {
        TileLoc { level, col, row }
    }

    /// The tile of the next level up that covers this one.
    pub fn parent(self) -> TileLoc {
        TileLoc {
            level: self.level + 1,
            col: self.col.div_euclid(2),
            row: self.row.div_euclid(2),
        }
    }

    /// Which quarter of its parent this tile fills: 0 top-left, 1 top-right, 2 bottom-left,
    /// 3 bottom-right.
    pub fn quadrant(self) -> usize {
        (self.col.rem_euclid(2) + 2 * self.row.rem_euclid(2)) as usize
    }

    /// The four tiles of the level below, in quadrant order.
    pub fn children(self) -> [TileLoc; 4] {
        assert!(self.level > 0, "level 0 has no children");
        let (l, c, r) = (self.level - 1, self.col * 2, self.row * 2);
        [
            TileLoc::new(l, c, r),
            TileLoc::new(l, c + 1, r),
            TileLoc::new(l, c, r + 1),
            TileLoc::new(l, c + 1, r + 1),
        ]
    }

    /// The level-`level` pixels this tile covers.
    pub fn pixel_rect(self, tile_size: u32) -> PixelRect {
        let t = tile_size as i64;
        PixelRect::new(
            self.col as i64 * t,
            self.row as i64 * t,
            (self.col as i64 + 1) * t,
            (self.row as i64 + 1) * t,
        )
    }
}

/// A half-open rectangle of pixels `[x0, x1) x [y0, y1)` at some level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PixelRect {
    pub x0: i64,
    pub y0: i64,
    pub x1: i64,
    pub y1: i64,
}

impl PixelRect {
    pub fn new(x0: i64, y0: i64, x1: i64, y1: i64) -> Self {
        PixelRect { x0, y0, x1, y1 }
    }

    pub fn width(&self) -> i64 {
        (self.x1 - self.x0).max(0)
    }

    pub fn height(&self) -> i64 {
        (self.y1 - self.y0).max(0)
    }

    pub fn is_empty(&self) -> bool {
        self.x1 <= self.x0 || self.y1 <= self.y0
    }

    pub fn intersect(&self, o: &PixelRect) -> PixelRect {
        PixelRect::new(
            self.x0.max(o.x0),
            self.y0.max(o.y0),
            self.x1.min(o.x1),
            self.y1.min(o.y1),
        )
    }

    pub fn union(&self, o: &PixelRect) -> PixelRect {
        if self.is_empty() {
            return *o;
        }
        if o.is_empty() {
            return *self;
        }
        PixelRect::new(
            self.x0.min(o.x0),
            self.y0.min(o.y0),
            self.x1.max(o.x1),
            self.y1.max(o.y1),
        )
    }

    /// The smallest rectangle at `levels` levels up that covers this one.
    pub fn coarsen(&self, levels: u8) -> PixelRect {
        let f = FACTOR.pow(levels as u32);
        PixelRect::new(
            div_floor(self.x0, f),
            div_floor(self.y0, f),
            div_ceil(self.x1, f),
            div_ceil(self.y1, f),
        )
    }

    /// The tiles that overlap this rectangle (a rectangle of level `level` pixels).
    pub fn tiles(&self, level: u8, tile_size: u32) -> TileRange {
        let t = tile_size as i64;
        if self.is_empty() {
            return TileRange::empty(level);
        }
        TileRange {
            level,
            col0: div_floor(self.x0, t) as i32,
            row0: div_floor(self.y0, t) as i32,
            col1: div_ceil(self.x1, t) as i32,
            row1: div_ceil(self.y1, t) as i32,
        }
    }
}

/// A rectangle of tiles `[col0, col1) x [row0, row1)` of one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRange {
    pub level: u8,
    pub col0: i32,
    pub row0: i32,
    pub col1: i32,
    pub row1: i32,
}

impl TileRange {
    pub fn empty(level: u8) -> Self {
        TileRange {
            level,
            col0: 0,
            row0: 0,
            col1: 0,
            row1: 0,
        }
    }

    pub fn cols(&self) -> i32 {
        (self.col1 - self.col0).max(0)
    }

    pub fn rows(&self) -> i32 {
        (self.row1 - self.row0).max(0)
    }

    pub fn len(&self) -> usize {
        self.cols() as usize * self.rows() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, t: TileLoc) -> bool {
        t.level == self.level
            && (self.col0..self.col1).contains(&t.col)
            && (self.row0..self.row1).contains(&t.row)
    }

    /// Tiles of one row of this range, left to right.
    pub fn row(&self, row: i32) -> impl Iterator<Item = TileLoc> + '_ {
        (self.col0..self.col1).map(move |c| TileLoc::new(self.level, c, row))
    }

    /// All tiles, row by row.
    pub fn iter(&self) -> impl Iterator<Item = TileLoc> + '_ {
        (self.row0..self.row1).flat_map(move |r| self.row(r))
    }
}

/// How a store's data extent is presented as a GDAL dataset and its overviews.
///
/// The dataset covers the data extent, except that its top-left corner is moved up and left
/// onto a multiple of `2^top` pixels so that every level's pixels line up exactly with the
/// base pixels (GDAL assumes an overview covers exactly the extent of its base). A store
/// created from one raster has its origin at the raster's corner, so it needs no such move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub tile_size: u32,
    /// Level-0 pixels of the dataset.
    pub base: PixelRect,
    /// Highest level: the first one at which the whole dataset fits in one tile's size.
    pub top: u8,
}

impl Layout {
    /// The layout for a non-empty data extent (level-0 pixels).
    pub fn for_extent(extent: PixelRect, tile_size: u32) -> Layout {
        assert!(!extent.is_empty(), "an empty extent has no layout");
        let t = tile_size as i64;
        let mut top = 0u8;
        loop {
            let f = FACTOR.pow(top as u32);
            let x0 = div_floor(extent.x0, f) * f;
            let y0 = div_floor(extent.y0, f) * f;
            let base = PixelRect::new(x0, y0, extent.x1, extent.y1);
            let w = div_ceil(base.width(), f);
            let h = div_ceil(base.height(), f);
            if (w <= t && h <= t) || top == MAX_LEVEL {
                return Layout {
                    tile_size,
                    base,
                    top,
                };
            }
            top += 1;
        }
    }

    pub fn level_count(&self) -> usize {
        self.top as usize + 1
    }

    /// The dataset's pixels at `level`, in level pixel coordinates. `x0`/`y0` are exact
    /// because `base` is aligned; the far edges round up so no data is cut off.
    pub fn level_rect(&self, level: u8) -> PixelRect {
        let f = FACTOR.pow(level as u32);
        PixelRect::new(
            self.base.x0 / f,
            self.base.y0 / f,
            div_ceil(self.base.x1, f),
            div_ceil(self.base.y1, f),
        )
    }

    pub fn level_size(&self, level: u8) -> (i64, i64) {
        let r = self.level_rect(level);
        (r.width(), r.height())
    }
}

/// Placement of the grid on the earth: pixel `(x, y)` of level 0 has its top-left corner at
/// `origin + (x * cell_size[0], y * cell_size[1])` (as in a GDAL geotransform without
/// rotation; `cell_size[1]` is negative for north-up grids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Georef {
    /// CRS as WKT; empty when the grid has no CRS.
    pub crs_wkt: String,
    pub origin: [f64; 2],
    pub cell_size: [f64; 2],
}

impl Georef {
    /// The geotransform of a dataset whose pixel (0, 0) is pixel `(x0, y0)` of `level`.
    pub fn geotransform(&self, level: u8, x0: i64, y0: i64) -> [f64; 6] {
        let f = FACTOR.pow(level as u32) as f64;
        let (dx, dy) = (self.cell_size[0] * f, self.cell_size[1] * f);
        [
            self.origin[0] + x0 as f64 * dx,
            dx,
            0.0,
            self.origin[1] + y0 as f64 * dy,
            0.0,
            dy,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parent_and_children_are_inverse() {
        let t = TileLoc::new(3, -5, 7);
        for (q, c) in t.children().into_iter().enumerate() {
            assert_eq!(c.parent(), t);
            assert_eq!(c.quadrant(), q);
        }
    }

    #[test]
    fn negative_tiles_have_the_right_parent() {
        assert_eq!(TileLoc::new(0, -1, -1).parent(), TileLoc::new(1, -1, -1));
        assert_eq!(TileLoc::new(0, -2, 1).parent(), TileLoc::new(1, -1, 0));
        assert_eq!(TileLoc::new(0, -1, 0).quadrant(), 1);
    }

    #[test]
    fn tile_range_covers_a_rect() {
        let r = PixelRect::new(-1, 0, 513, 512).tiles(0, 512);
        assert_eq!((r.col0, r.col1, r.row0, r.row1), (-1, 2, 0, 1));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn layout_of_a_tile_multiple() {
        let l = Layout::for_extent(PixelRect::new(0, 0, 8192, 8192), 512);
        assert_eq!(l.top, 4);
        assert_eq!(l.level_size(4), (512, 512));
        assert_eq!(l.level_size(1), (4096, 4096));
    }

    #[test]
    fn layout_of_an_odd_size_rounds_far_edges_up() {
        let l = Layout::for_extent(PixelRect::new(0, 0, 349, 352), 16);
        assert_eq!(l.top, 5);
        assert_eq!(l.level_size(1), (175, 176));
        assert_eq!(l.level_size(5), (11, 11));
    }

    #[test]
    fn small_raster_has_one_level() {
        let l = Layout::for_extent(PixelRect::new(0, 0, 84, 46), 512);
        assert_eq!(l.top, 0);
        assert_eq!(l.level_count(), 1);
    }

    #[test]
    fn unaligned_extent_is_moved_to_an_aligned_corner() {
        let l = Layout::for_extent(PixelRect::new(-3, 5, 1000, 900), 256);
        assert_eq!(l.top, 2);
        assert_eq!((l.base.x0, l.base.y0), (-4, 4));
        assert_eq!(l.level_rect(2).x0, -1);
    }

    #[test]
    fn geotransform_scales_with_level() {
        let g = Georef {
            crs_wkt: String::new(),
            origin: [100.0, 50.0],
            cell_size: [10.0, -10.0],
        };
        assert_eq!(
            g.geotransform(0, 2, 3),
            [120.0, 10.0, 0.0, 20.0, 0.0, -10.0]
        );
        assert_eq!(
            g.geotransform(1, 1, 1),
            [120.0, 20.0, 0.0, 30.0, 0.0, -20.0]
        );
    }

    proptest! {
        #[test]
        fn layout_invariants(x0 in -5000i64..5000, y0 in -5000i64..5000,
                             w in 1i64..20000, h in 1i64..20000,
                             ts in prop::sample::select(vec![16u32, 64, 256, 512])) {
            let ext = PixelRect::new(x0, y0, x0 + w, y0 + h);
            let l = Layout::for_extent(ext, ts);
            let f = FACTOR.pow(l.top as u32);
            // The dataset holds the extent, its corner is aligned, it grows by less than one
            // top-level pixel, and the top level fits one tile.
            prop_assert_eq!(l.base.intersect(&ext), ext);
            prop_assert_eq!(l.base.x0.rem_euclid(f), 0);
            prop_assert_eq!(l.base.y0.rem_euclid(f), 0);
            prop_assert!(ext.x0 - l.base.x0 < f && ext.y0 - l.base.y0 < f);
            let (tw, th) = l.level_size(l.top);
            prop_assert!(tw <= ts as i64 && th <= ts as i64);
            // Level sizes halve (rounding up) from one level to the next.
            for z in 1..=l.top {
                let (pw, ph) = l.level_size(z - 1);
                let (cw, ch) = l.level_size(z);
                prop_assert_eq!(cw, div_ceil(pw, 2));
                prop_assert_eq!(ch, div_ceil(ph, 2));
            }
        }

        #[test]
        fn every_pixel_is_in_exactly_one_tile(x in -100_000i64..100_000, ts in 16u32..600) {
            let r = PixelRect::new(x, 0, x + 1, 1).tiles(0, ts);
            prop_assert_eq!(r.len(), 1);
            let t = TileLoc::new(0, r.col0, r.row0);
            let pr = t.pixel_rect(ts);
            prop_assert!(pr.x0 <= x && x < pr.x1);
        }
    }
}
