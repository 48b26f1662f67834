//! Where a source holds data, on a coarse grid over its pixels, marked while a write reads
//! it: the footprint of the source's record (docs/FORMAT.md §12) then costs no second read.
//!
//! The grid has at most [`MAX_CELLS`] cells on the source's longer side; cell `(c, r)`
//! covers the source pixels whose column `x` has `x · cols / width = c` (and rows alike),
//! the cells GDAL averages a raster to when it reads it at that size. A cell is marked when
//! any of its pixels holds data in any band. Writers on many threads mark one grid.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::dtype::Sample;
use crate::tile::{BandValidity, Tile, ValidityTest};
use crate::with_sample_type;

/// The most cells on the longer side of a source.
pub const MAX_CELLS: usize = 512;

/// The cells of one source.
pub struct ValidCells {
    width: u64,
    height: u64,
    cols: u64,
    rows: u64,
    marked: Vec<AtomicBool>,
    /// Cleared when a write read the source in a way that marks nothing (warped onto the
    /// grid): the cells then say nothing of it.
    complete: AtomicBool,
}

impl ValidCells {
    /// The grid over a source of `width` x `height` pixels, nothing marked.
    pub fn new(width: usize, height: usize) -> ValidCells {
        let factor = width.max(height).div_ceil(MAX_CELLS).max(1);
        let (cols, rows) = (
            width.div_ceil(factor).max(1),
            height.div_ceil(factor).max(1),
        );
        ValidCells {
            width: width.max(1) as u64,
            height: height.max(1) as u64,
            cols: cols as u64,
            rows: rows as u64,
            marked: (0..cols * rows).map(|_| AtomicBool::new(false)).collect(),
            complete: AtomicBool::new(true),
        }
    }

    /// Says that some of the source was read without marking its cells.
    pub fn set_incomplete(&self) {
        self.complete.store(false, Ordering::Relaxed);
    }

    /// Whether every read of the source marked its cells.
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Relaxed)
    }

    /// Columns and rows of the grid.
    pub fn shape(&self) -> (usize, usize) {
        (self.cols as usize, self.rows as usize)
    }

    /// The cell column of source column `x` (and of rows alike with `row_of`).
    fn col_of(&self, x: u64) -> u64 {
        (x * self.cols / self.width).min(self.cols - 1)
    }

    fn row_of(&self, y: u64) -> u64 {
        (y * self.rows / self.height).min(self.rows - 1)
    }

    /// Marks the cells of source pixels `x0..x1` on row `y`.
    pub fn mark_run(&self, y: usize, x0: usize, x1: usize) {
        if x1 <= x0 {
            return;
        }
        let row = self.row_of(y as u64) * self.cols;
        for c in self.col_of(x0 as u64)..=self.col_of(x1 as u64 - 1) {
            self.marked[(row + c) as usize].store(true, Ordering::Relaxed);
        }
    }

    /// Marks the cells of the source pixels of `tile` (whose pixel (0, 0) is source pixel
    /// (`x0`, `y0`)) in its first `w` x `h` pixels that hold data in some band.
    pub fn mark_tile(
        &self,
        tile: &Tile,
        bands: &[BandValidity],
        x0: usize,
        y0: usize,
        w: usize,
        h: usize,
    ) {
        with_sample_type!(tile.dtype, T => self.mark_typed::<T>(tile, bands, x0, y0, w, h));
    }

    fn mark_typed<T: Sample>(
        &self,
        tile: &Tile,
        bands: &[BandValidity],
        x0: usize,
        y0: usize,
        w: usize,
        h: usize,
    ) {
        let (size, n) = (tile.size, tile.size * tile.size);
        let data = tile.data.typed::<T>();
        let tests: Vec<ValidityTest<T>> = bands.iter().map(ValidityTest::new).collect();
        // A band without nodata marks its missing pixels in the tile's mask.
        let holds = |i: usize| {
            tests.iter().enumerate().any(|(b, t)| {
                t.holds_data(data[b * n + i])
                    && (t.has_nodata() || tile.mask.as_ref().is_none_or(|m| m[i] != 0))
            })
        };
        for y in 0..h {
            let mut run: Option<usize> = None;
            for x in 0..=w {
                let valid = x < w && holds(y * size + x);
                match (valid, run) {
                    (true, None) => run = Some(x),
                    (false, Some(start)) => {
                        self.mark_run(y0 + y, x0 + start, x0 + x);
                        run = None;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Which cells are marked, row by row.
    pub fn marked(&self) -> Vec<bool> {
        self.marked
            .iter()
            .map(|m| m.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_follow_the_proportional_grid() {
        // 1001 pixels: factor 2, 501 cells, the last one narrower.
        let cells = ValidCells::new(1001, 10);
        assert_eq!(cells.shape(), (501, 5));
        cells.mark_run(0, 1000, 1001);
        cells.mark_run(9, 0, 1);
        let m = cells.marked();
        assert!(m[500] && m[4 * 501]);
        assert_eq!(m.iter().filter(|&&v| v).count(), 2);
    }

    #[test]
    fn a_tile_marks_where_any_band_holds_data() {
        let bands = [
            BandValidity { nodata: Some(-1.0) },
            BandValidity { nodata: Some(-1.0) },
        ];
        let mut tile = Tile::empty(crate::dtype::DataType::Float32, &bands, 4);
        tile.data.typed_mut::<f32>()[5] = 3.0; // band 0, pixel (1, 1)
        tile.data.typed_mut::<f32>()[16 + 15] = f32::NAN; // band 1: NaN is no data
        let cells = ValidCells::new(8, 8);
        cells.mark_tile(&tile, &bands, 4, 0, 4, 4);
        let m = cells.marked();
        assert_eq!(m.iter().filter(|&&v| v).count(), 1);
        assert!(m[8 + 5], "source pixel (5, 1)");
    }
}
