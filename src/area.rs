//! Rectangles of pixels within one tile: what a write changes in a tile, and which of a
//! chunk's blocks hold it.

use std::ops::Range;

/// The pixels of rows `rows` and columns `cols` of a tile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Area {
    pub rows: Range<usize>,
    pub cols: Range<usize>,
}

impl Area {
    pub fn new(rows: Range<usize>, cols: Range<usize>) -> Area {
        Area { rows, cols }
    }

    /// Every pixel of a tile of `size` pixels.
    pub fn whole(size: usize) -> Area {
        Area::new(0..size, 0..size)
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() || self.cols.is_empty()
    }

    /// The pixels in both; empty if they do not meet.
    pub fn intersect(&self, other: &Area) -> Area {
        Area::new(
            self.rows.start.max(other.rows.start)..self.rows.end.min(other.rows.end),
            self.cols.start.max(other.cols.start)..self.cols.end.min(other.cols.end),
        )
    }

    pub fn meets(&self, other: &Area) -> bool {
        !self.intersect(other).is_empty()
    }

    /// Whether every pixel of `other` is in this area (an empty one always is).
    pub fn contains(&self, other: &Area) -> bool {
        other.is_empty()
            || (self.rows.start <= other.rows.start
                && other.rows.end <= self.rows.end
                && self.cols.start <= other.cols.start
                && other.cols.end <= self.cols.end)
    }

    /// The smallest area holding both (an empty one adds nothing).
    pub fn hull(&self, other: &Area) -> Area {
        match (self.is_empty(), other.is_empty()) {
            (true, _) => other.clone(),
            (_, true) => self.clone(),
            _ => Area::new(
                self.rows.start.min(other.rows.start)..self.rows.end.max(other.rows.end),
                self.cols.start.min(other.cols.start)..self.cols.end.max(other.cols.end),
            ),
        }
    }

    /// The area widened to even bounds, within a tile of `size` (even) pixels: aggregation
    /// pairs rows and columns.
    pub fn even(&self, size: usize) -> Area {
        let widen = |r: &Range<usize>| r.start & !1..(r.end + 1).min(size) & !1;
        Area::new(widen(&self.rows), widen(&self.cols))
    }

    /// Where the pixels of this area (of a child tile of `size` pixels, even bounds) land in
    /// the parent, when the child fills the parent's quadrant `quadrant` (0 top-left, 1
    /// top-right, 2 bottom-left, 3 bottom-right).
    pub fn in_parent(&self, quadrant: usize, size: usize) -> Area {
        let half = size / 2;
        let (top, left) = ((quadrant / 2) * half, (quadrant % 2) * half);
        Area::new(
            top + self.rows.start / 2..top + self.rows.end / 2,
            left + self.cols.start / 2..left + self.cols.end / 2,
        )
    }

    pub fn pixels(&self) -> usize {
        if self.is_empty() {
            0
        } else {
            self.rows.len() * self.cols.len()
        }
    }
}

/// The quadrant `q` of a tile of `size` pixels, as an area.
pub fn quadrant(q: usize, size: usize) -> Area {
    Area::whole(size).in_parent(q, size)
}

/// Whether `area` lies within the union of `parts`, one (possibly empty) area per quadrant
/// of a tile of `size` pixels, each inside its quadrant.
pub fn covered_by_quadrants(area: &Area, parts: &[Area; 4], size: usize) -> bool {
    (0..4).all(|q| {
        let here = area.intersect(&quadrant(q, size));
        parts[q].contains(&here)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_meet_hull_and_contain() {
        let a = Area::new(2..6, 0..4);
        let b = Area::new(4..8, 2..10);
        assert_eq!(a.intersect(&b), Area::new(4..6, 2..4));
        assert!(a.meets(&b));
        assert!(!a.meets(&Area::new(6..8, 0..4)), "touching is not meeting");
        assert_eq!(a.hull(&b), Area::new(2..8, 0..10));
        assert_eq!(a.hull(&Area::default()), a);
        assert!(a.hull(&b).contains(&a) && a.contains(&Area::default()));
        assert!(!a.contains(&b));
        assert_eq!(Area::new(3..7, 1..8).even(8), Area::new(2..8, 0..8));
    }

    #[test]
    fn child_areas_land_in_their_quadrant() {
        let child = Area::new(0..4, 2..8);
        assert_eq!(child.in_parent(0, 8), Area::new(0..2, 1..4));
        assert_eq!(child.in_parent(3, 8), Area::new(4..6, 5..8));
        assert_eq!(quadrant(1, 8), Area::new(0..4, 4..8));
        assert_eq!(quadrant(2, 8), Area::new(4..8, 0..4));
    }

    #[test]
    fn coverage_is_checked_quadrant_by_quadrant() {
        let size = 8;
        let mut parts: [Area; 4] = Default::default();
        parts[0] = quadrant(0, size);
        parts[1] = Area::new(0..2, 4..8);
        // Within quadrant 0: covered. Reaching into quadrant 1's uncovered rows: not.
        assert!(covered_by_quadrants(&Area::new(0..4, 0..4), &parts, size));
        assert!(covered_by_quadrants(&Area::new(0..2, 0..8), &parts, size));
        assert!(!covered_by_quadrants(&Area::new(0..4, 2..6), &parts, size));
        assert!(!covered_by_quadrants(&Area::new(3..5, 0..2), &parts, size));
    }
}
