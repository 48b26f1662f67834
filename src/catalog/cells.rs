//! The valid cells of a raster as rectangles, the pieces its valid-data footprint is made
//! from, few enough to merge quickly and to give a footprint of bounded size.
//!
//! A grid whose valid cells are scattered (nodata pixels sprinkled over the data, or a
//! checkerboard) makes many small rectangles, and their union a footprint with about as
//! many holes or parts: a 512 x 512 checkerboard makes 131,072 squares. Such a grid is
//! coarsened, 2 x 2 cells into one that is valid when any of them is, until its valid
//! cells make at most [`MAX_RECTANGLES`]. The footprint then covers a little more than the
//! data (small gaps in it close), never less: it still holds every valid cell.

/// The most rectangles a footprint is made from. A compact area of data in a grid of 512
/// rows makes about one rectangle per row, or two where it is concave; a footprint made of
/// more is coarser (cells of 2 x 2 or more) but still holds every valid cell.
pub const MAX_RECTANGLES: usize = 1024;

/// Rectangles of valid cells, in the cells of the grid given to [`rectangles`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// The first column, and one past the last.
    pub cols: (usize, usize),
    /// The first row, and one past the last.
    pub rows: (usize, usize),
}

/// Rectangles that together cover the valid cells of a `width` x `height` grid (row by
/// row, `true` = valid), each cell in one of them, at most [`MAX_RECTANGLES`] of them; and
/// how many cells of the grid along each side one cell they were made on spans: 1 when
/// they cover exactly the valid cells, more when the grid had to be coarsened. Their rows
/// and columns count the cells of the grid given, the last ones clipped to it.
pub fn rectangles(width: usize, height: usize, valid: &[bool]) -> (Vec<Rect>, usize) {
    assert_eq!(
        valid.len(),
        width * height,
        "a grid of width x height cells"
    );
    let mut found = exact_rectangles(width, height, valid);
    // The grid is copied only when it is coarsened.
    let (mut w, mut h, mut grid, mut factor) = (width, height, Vec::new(), 1);
    while found.len() > MAX_RECTANGLES {
        let next = coarsened(w, h, if factor == 1 { valid } else { &grid });
        (w, h, grid) = next;
        factor *= 2;
        found = exact_rectangles(w, h, &grid);
    }
    let scale = |(a, b): (usize, usize), end: usize| ((a * factor).min(end), (b * factor).min(end));
    let rects = found
        .into_iter()
        .map(|r| Rect {
            cols: scale(r.cols, width),
            rows: scale(r.rows, height),
        })
        .collect();
    (rects, factor)
}

/// Runs of valid cells, each extended downwards while the rows below repeat it.
fn exact_rectangles(width: usize, height: usize, valid: &[bool]) -> Vec<Rect> {
    let mut done = Vec::new();
    let mut open: Vec<Rect> = Vec::new();
    for row in 0..=height {
        let runs = match row < height {
            true => runs_of(&valid[row * width..(row + 1) * width]),
            false => Vec::new(),
        };
        let mut still = Vec::with_capacity(runs.len());
        for mut r in open.drain(..) {
            match runs.contains(&r.cols) {
                true => still.push(r),
                false => {
                    r.rows.1 = row;
                    done.push(r);
                }
            }
        }
        for cols in runs {
            if !still.iter().any(|r| r.cols == cols) {
                still.push(Rect {
                    cols,
                    rows: (row, row),
                });
            }
        }
        open = still;
    }
    done
}

/// The grid of 2 x 2 cells, each valid when any of its cells is.
fn coarsened(width: usize, height: usize, valid: &[bool]) -> (usize, usize, Vec<bool>) {
    let (w, h) = (width.div_ceil(2), height.div_ceil(2));
    let mut out = vec![false; w * h];
    for (i, _) in valid.iter().enumerate().filter(|(_, v)| **v) {
        let (col, row) = (i % width, i / width);
        out[(row / 2) * w + col / 2] = true;
    }
    (w, h, out)
}

/// The runs of `true` in a row, as (first, one past last).
fn runs_of(row: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &v) in row.iter().chain(std::iter::once(&false)).enumerate() {
        match (v, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which cells the rectangles cover, as a grid.
    fn covered(width: usize, height: usize, rects: &[Rect]) -> Vec<bool> {
        let mut out = vec![false; width * height];
        for r in rects {
            for row in r.rows.0..r.rows.1 {
                for col in r.cols.0..r.cols.1 {
                    assert!(!out[row * width + col], "cell ({col}, {row}) covered twice");
                    out[row * width + col] = true;
                }
            }
        }
        out
    }

    #[test]
    fn a_compact_area_is_covered_exactly() {
        // A disc with a square hole: about one rectangle per row, two where the hole is.
        let (w, h) = (300, 200);
        let valid: Vec<bool> = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f64 - 150.0, (i / w) as f64 - 100.0);
                x.hypot(y) < 95.0 && !(x.abs() < 20.0 && y.abs() < 10.0)
            })
            .collect();
        let (rects, factor) = rectangles(w, h, &valid);
        assert!(rects.len() <= MAX_RECTANGLES, "{}", rects.len());
        assert_eq!(covered(w, h, &rects), valid);
        assert_eq!(factor, 1);
    }

    #[test]
    fn scattered_cells_are_coarsened_into_few_rectangles_holding_them_all() {
        let (w, h) = (511, 512);
        let checkerboard: Vec<bool> = (0..w * h).map(|i| (i % w + i / w) % 2 == 0).collect();
        assert!(exact_rectangles(w, h, &checkerboard).len() > 100_000);
        let (rects, factor) = rectangles(w, h, &checkerboard);
        assert!(rects.len() <= MAX_RECTANGLES, "{}", rects.len());
        let covers = covered(w, h, &rects);
        assert!(checkerboard.iter().zip(&covers).all(|(v, c)| !v || *c));
        // Every 2 x 2 block holds a valid cell: one coarsening covers the grid whole.
        assert!(covers.iter().all(|c| *c));
        assert_eq!(factor, 2);
    }

    #[test]
    fn no_valid_cell_makes_no_rectangle() {
        assert!(rectangles(4, 3, &[false; 12]).0.is_empty());
        assert!(rectangles(0, 0, &[]).0.is_empty());
    }
}
