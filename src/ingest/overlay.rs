//! Laying a source's pixels over a store tile: where the source holds data, its values
//! replace the stored ones; where it has none (nodata, masked, outside it), the stored
//! values stay. Nodata in a source never erases data.

use crate::dtype::{DataType, Sample};
use crate::error::Result;
use crate::grid::{PixelRect, TileLoc};
use crate::tile::{BandValidity, Tile};
use crate::with_sample_type;

use super::valid_cells::ValidCells;
use super::{RasterSource, Window};
use std::sync::Arc;

/// A source whose pixel `(x, y)` is level-0 pixel `(x0 + x, y0 + y)` of the store grid.
pub struct PlacedSource<S> {
    pub source: S,
    pub x0: i64,
    pub y0: i64,
    /// The source's own nodata value per band (its missing pixels), if any.
    pub nodata: Vec<Option<f64>>,
    /// Where to mark the source pixels found to hold data, for its record's footprint.
    pub cells: Option<Arc<ValidCells>>,
}

/// Reusable buffers for reading a source window the size of a tile.
#[derive(Default)]
pub struct Scratch {
    data: Vec<u64>,
    mask: Vec<u8>,
}

impl<S: RasterSource> PlacedSource<S> {
    /// The level-0 pixels the source covers.
    pub fn footprint(&self) -> PixelRect {
        PixelRect::new(
            self.x0,
            self.y0,
            self.x0 + self.source.width() as i64,
            self.y0 + self.source.height() as i64,
        )
    }

    /// Reads the level-0 pixels `part` (inside the source) into `scratch`, from its top-left
    /// corner, as a tile of `size` x `size` pixels per band (`bytes` in all), and the
    /// source's mask if it has one.
    fn read(
        &mut self,
        part: PixelRect,
        size: usize,
        bytes: usize,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let win = Window {
            x: (part.x0 - self.x0) as usize,
            y: (part.y0 - self.y0) as usize,
            w: part.width() as usize,
            h: part.height() as usize,
        };
        // Freshly zeroed memory is mapped on first write, which the read is (a buffer that
        // [`whole_tile`](Self::whole_tile) took is made anew this way).
        if scratch.data.len() < bytes.div_ceil(8) {
            scratch.data = vec![0; bytes.div_ceil(8)];
        }
        let data = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut scratch.data)[..bytes];
        let mask = if self.source.has_mask() {
            scratch.mask.resize(size * size, 0);
            Some(&mut scratch.mask[..])
        } else {
            None
        };
        self.source.read_window(win, size, size * size, data, mask)
    }

    /// Reads rows `rows` of level-0 tile `loc` (of `size` pixels) from the source into
    /// `out` (every band's rows, band after band, as `dtype`), when the source covers the
    /// whole tile and holds data at every pixel of every band there: nothing of what lies
    /// under them can show, so they need no tile to be laid over. False otherwise, with
    /// `out` left in any state (the caller then lays the source as usual, which reads it
    /// again). A tile read so, row by row or at once, needs no copy.
    pub fn whole_rows(
        &mut self,
        loc: TileLoc,
        rows: std::ops::Range<usize>,
        dtype: DataType,
        size: usize,
        out: &mut [u8],
        scratch: &mut Scratch,
    ) -> Result<bool> {
        let tile_rect = loc.pixel_rect(size as u32);
        if tile_rect.intersect(&self.footprint()) != tile_rect {
            return Ok(false);
        }
        let height = rows.len();
        let win = Window {
            x: (tile_rect.x0 - self.x0) as usize,
            y: (tile_rect.y0 - self.y0) as usize + rows.start,
            w: size,
            h: height,
        };
        let mask = if self.source.has_mask() {
            scratch.mask.resize(height * size, 0);
            Some(&mut scratch.mask[..])
        } else {
            None
        };
        self.source
            .read_window(win, size, height * size, out, mask)?;
        if self.source.has_mask() && scratch.mask[..height * size].contains(&0) {
            return Ok(false);
        }
        let full = with_sample_type!(dtype, T => {
            let src: &[T] = bytemuck::cast_slice(out);
            src.chunks_exact(height * size).zip(&self.nodata).all(|(plane, nodata)| {
                let nodata = nodata.map(T::from_f64_round);
                plane.iter().all(|v| !v.is_nan() && nodata != Some(*v))
            })
        });
        if let (true, Some(cells)) = (full, &self.cells) {
            for y in win.y..win.y + height {
                cells.mark_run(y, win.x, win.x + size);
            }
        }
        Ok(full)
    }

    /// Lays the source's part of level-0 tile `loc` over `tile` (which has the store's data
    /// type, converted from the source's by the source). Says which level-0 pixels received
    /// data.
    pub fn overlay(
        &mut self,
        loc: TileLoc,
        tile: &mut Tile,
        validity: &[BandValidity],
        scratch: &mut Scratch,
    ) -> Result<Laid> {
        let size = tile.size;
        let tile_rect = loc.pixel_rect(size as u32);
        let part = tile_rect.intersect(&self.footprint());
        if part.is_empty() {
            return Ok(Laid::default());
        }
        let bytes = size * size * tile.bands * tile.dtype.size();
        self.read(part, size, bytes, scratch)?;
        let placement = Placement {
            dx: (part.x0 - tile_rect.x0) as usize,
            dy: (part.y0 - tile_rect.y0) as usize,
            w: part.width() as usize,
            h: part.height() as usize,
        };
        let mask = self.source.has_mask().then_some(&scratch.mask[..]);
        let (sx, sy) = ((part.x0 - self.x0) as usize, (part.y0 - self.y0) as usize);
        let cells = self.cells.as_deref();
        let mut mark = |y: usize, x0: usize, x1: usize| {
            if let Some(c) = cells {
                c.mark_run(sy + y, sx + x0, sx + x1);
            }
        };
        let covered = with_sample_type!(tile.dtype, T => {
            let src: &[T] = bytemuck::cast_slice(&bytemuck::cast_slice::<u64, u8>(&scratch.data)[..bytes]);
            overlay_typed::<T>(tile, src, mask, placement, &self.nodata, validity, &mut mark)
        });
        tile.normalize_mask();
        Ok(Laid {
            covered: covered.map(|(x0, y0, x1, y1)| {
                PixelRect::new(
                    tile_rect.x0 + x0 as i64,
                    tile_rect.y0 + y0 as i64,
                    tile_rect.x0 + x1 as i64,
                    tile_rect.y0 + y1 as i64,
                )
            }),
        })
    }
}

/// What laying a source over a tile did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Laid {
    /// The bounding box of the level-0 pixels that received data, if any did.
    pub covered: Option<PixelRect>,
}

/// Where a source window sits in a tile: its top-left at `(dx, dy)`, `w` x `h` pixels.
#[derive(Clone, Copy)]
struct Placement {
    dx: usize,
    dy: usize,
    w: usize,
    h: usize,
}

/// Copies the source pixels that hold data into the tile; returns the bounding box (tile
/// pixels, half-open) of the pixels that did, and calls `mark(y, x0, x1)` with each run of
/// them (in the placed window's pixels).
fn overlay_typed<T: Sample>(
    tile: &mut Tile,
    src: &[T],
    mask: Option<&[u8]>,
    p: Placement,
    src_nodata: &[Option<f64>],
    validity: &[BandValidity],
    mark: &mut dyn FnMut(usize, usize, usize),
) -> Option<(usize, usize, usize, usize)> {
    let layer = Layer::new(tile.size, src, mask, src_nodata, validity);
    let dst = tile.data.typed_mut::<T>();
    let mut tile_mask = tile.mask.take();
    let mut touched = Touched::new();
    for y in 0..p.h {
        let si0 = y * layer.size;
        let di0 = (p.dy + y) * layer.size + p.dx;
        let row = (si0, di0, p.w);
        // The common case: a row where every band holds data everywhere is copied whole.
        let xs = if layer.row_is_whole(si0, p.w) {
            layer.copy_row(dst, tile_mask.as_deref_mut(), row);
            mark(y, 0, p.w);
            (p.w > 0).then_some((0, p.w))
        } else {
            layer.lay_row(dst, tile_mask.as_deref_mut(), row, &mut |x0, x1| {
                mark(y, x0, x1)
            })
        };
        if let Some((x0, x1)) = xs {
            touched.add(p.dx + x0, p.dx + x1, p.dy + y);
        }
    }
    tile.mask = tile_mask;
    touched.rect()
}

/// A source's pixels as they are laid over a tile of `size` x `size`, band after band.
struct Layer<'a, T> {
    size: usize,
    src: &'a [T],
    mask: Option<&'a [u8]>,
    /// Each band's nodata value, in the tile's type.
    nodata: Vec<Option<T>>,
    /// Which bands' validity is kept in the tile's mask (they have no nodata value).
    masked: Vec<bool>,
}

impl<'a, T: Sample> Layer<'a, T> {
    fn new(
        size: usize,
        src: &'a [T],
        mask: Option<&'a [u8]>,
        src_nodata: &[Option<f64>],
        validity: &[BandValidity],
    ) -> Self {
        Layer {
            size,
            src,
            mask,
            nodata: src_nodata
                .iter()
                .map(|v| v.map(T::from_f64_round))
                .collect(),
            masked: validity.iter().map(|v| v.nodata.is_none()).collect(),
        }
    }

    /// Whether `v` is data in band `b`.
    fn holds(&self, b: usize, v: T) -> bool {
        !v.is_nan() && self.nodata[b] != Some(v)
    }

    /// Whether every band holds data in every pixel of the row of `w` pixels from `si0`.
    fn row_is_whole(&self, si0: usize, w: usize) -> bool {
        let n = self.size * self.size;
        self.mask.is_none()
            && (0..self.nodata.len()).all(|b| {
                self.src[b * n + si0..][..w]
                    .iter()
                    .all(|v| self.holds(b, *v))
            })
    }

    /// Copies the row of `w` pixels from `si0` in the source to `di0` in the tile, whole.
    fn copy_row(&self, dst: &mut [T], tile_mask: Option<&mut [u8]>, (si0, di0, w): Row) {
        let n = self.size * self.size;
        for b in 0..self.nodata.len() {
            dst[b * n + di0..][..w].copy_from_slice(&self.src[b * n + si0..][..w]);
        }
        if let (true, Some(m)) = (self.masked.iter().any(|m| *m), tile_mask) {
            m[di0..di0 + w].fill(255);
        }
    }

    /// Copies the pixels of the row that hold data, calling `mark(x0, x1)` with each run
    /// of them; returns the first and past the last that did.
    fn lay_row(
        &self,
        dst: &mut [T],
        mut tile_mask: Option<&mut [u8]>,
        (si0, di0, w): Row,
        mark: &mut dyn FnMut(usize, usize),
    ) -> Option<(usize, usize)> {
        let (mut first, mut end) = (usize::MAX, 0);
        let mut run: Option<usize> = None;
        for x in 0..w {
            let any = self.mask.is_none_or(|m| m[si0 + x] != 0)
                && self.lay_pixel(dst, tile_mask.as_deref_mut(), si0 + x, di0 + x);
            if any {
                first = first.min(x);
                end = x + 1;
                run.get_or_insert(x);
            } else if let Some(start) = run.take() {
                mark(start, x);
            }
        }
        if let Some(start) = run {
            mark(start, w);
        }
        (first < end).then_some((first, end))
    }

    /// Copies the bands of source pixel `si` that hold data to tile pixel `di`; true
    /// when any did.
    fn lay_pixel(&self, dst: &mut [T], tile_mask: Option<&mut [u8]>, si: usize, di: usize) -> bool {
        let n = self.size * self.size;
        let (mut any, mut any_masked) = (false, false);
        for b in 0..self.nodata.len() {
            let v = self.src[b * n + si];
            if self.holds(b, v) {
                dst[b * n + di] = v;
                any = true;
                any_masked |= self.masked[b];
            }
        }
        if let (true, Some(m)) = (any_masked, tile_mask) {
            m[di] = 255;
        }
        any
    }
}

/// A row of a placed window: its first pixel in the source and in the tile, and its width.
type Row = (usize, usize, usize);

/// The box of tile pixels that received data, grown row by row.
struct Touched {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl Touched {
    fn new() -> Self {
        Touched {
            x0: usize::MAX,
            y0: usize::MAX,
            x1: 0,
            y1: 0,
        }
    }

    /// Adds pixels `x0..x1` of row `y`, rows coming in increasing order.
    fn add(&mut self, x0: usize, x1: usize, y: usize) {
        self.x0 = self.x0.min(x0);
        self.x1 = self.x1.max(x1);
        self.y0 = self.y0.min(y);
        self.y1 = y + 1;
    }

    /// The box (x0, y0, x1, y1, half-open), if any pixel was added.
    fn rect(&self) -> Option<(usize, usize, usize, usize)> {
        (self.x0 < self.x1).then_some((self.x0, self.y0, self.x1, self.y1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DataType;
    use crate::ingest::tests::MemSource;

    fn placed(x0: i64, y0: i64, w: usize, h: usize, value: f32) -> PlacedSource<MemSource> {
        PlacedSource {
            source: MemSource {
                w,
                h,
                planes: vec![vec![value; w * h]],
                mask: None,
            },
            x0,
            y0,
            nodata: vec![Some(-1.0)],
            cells: None,
        }
    }

    #[test]
    fn the_cells_marked_are_the_source_pixels_laid() {
        // A 12 x 12 source at (-4, -4) with nodata on its diagonal and in a block: pixel
        // (x, y) of it holds data unless x == y or 6 <= x < 9 on rows 1 and 2.
        let (w, h) = (12, 12);
        let holds = |x: usize, y: usize| x != y && !((6..9).contains(&x) && (1..3).contains(&y));
        let mut a = placed(-4, -4, w, h, 1.0);
        for y in 0..h {
            for x in 0..w {
                if !holds(x, y) {
                    a.source.planes[0][y * w + x] = -1.0;
                }
            }
        }
        let cells = Arc::new(ValidCells::new(w, h));
        a.cells = Some(cells.clone());
        let validity = [BandValidity { nodata: Some(-9.0) }];
        let mut s = Scratch::default();
        // Tiles of 8: the source lies over four of them, each laid in part.
        for (col, row) in [(-1, -1), (0, -1), (-1, 0), (0, 0)] {
            let mut tile = Tile::empty(DataType::Float32, &validity, 8);
            a.overlay(TileLoc::new(0, col, row), &mut tile, &validity, &mut s)
                .unwrap();
        }
        let want: Vec<bool> = (0..w * h).map(|i| holds(i % w, i / w)).collect();
        assert_eq!(cells.marked(), want);
    }

    #[test]
    fn valid_pixels_replace_and_nodata_keeps() {
        let validity = [BandValidity { nodata: Some(-9.0) }];
        let mut tile = Tile::empty(DataType::Float32, &validity, 16);
        let mut s = Scratch::default();
        let mut a = placed(-4, -4, 10, 10, 1.0);
        let got = a
            .overlay(TileLoc::new(0, 0, 0), &mut tile, &validity, &mut s)
            .unwrap();
        assert_eq!(got.covered, Some(PixelRect::new(0, 0, 6, 6)));
        // A source of nodata over the same pixels changes nothing.
        let mut b = placed(0, 0, 16, 16, -1.0);
        let got = b
            .overlay(TileLoc::new(0, 0, 0), &mut tile, &validity, &mut s)
            .unwrap();
        assert_eq!(got, Laid::default());
        assert_eq!(tile.band::<f32>(0)[[5, 5]], 1.0);
        assert_eq!(tile.band::<f32>(0)[[6, 6]], -9.0);
        // A source with data replaces.
        let mut c = placed(5, 5, 2, 2, 7.0);
        c.overlay(TileLoc::new(0, 0, 0), &mut tile, &validity, &mut s)
            .unwrap();
        assert_eq!(tile.band::<f32>(0)[[5, 5]], 7.0);
        assert_eq!(tile.band::<f32>(0)[[6, 6]], 7.0);
        assert_eq!(tile.band::<f32>(0)[[4, 4]], 1.0);
    }

    #[test]
    fn masked_stores_mark_new_pixels_valid() {
        let validity = [BandValidity { nodata: None }];
        let mut tile = Tile::empty(DataType::Float32, &validity, 16);
        let mut s = Scratch::default();
        let mut src = placed(16 + 3, 0, 2, 1, 5.0);
        let got = src
            .overlay(TileLoc::new(0, 1, 0), &mut tile, &validity, &mut s)
            .unwrap();
        assert_eq!(got.covered, Some(PixelRect::new(19, 0, 21, 1)));
        let mask = tile.mask.as_ref().unwrap();
        assert_eq!((mask[2], mask[3], mask[4], mask[5]), (0, 255, 255, 0));
    }

    #[test]
    fn a_source_is_a_whole_tile_only_when_every_band_of_every_pixel_holds_data() {
        let two_bands = |hole_in_second: bool| PlacedSource {
            source: MemSource {
                w: 16,
                h: 16,
                planes: vec![(0..256).map(|i| i as f32).collect(), {
                    let mut p = vec![2.0; 256];
                    if hole_in_second {
                        p[37] = -1.0;
                    }
                    p
                }],
                mask: None,
            },
            x0: 0,
            y0: 0,
            nodata: vec![Some(-1.0), Some(-1.0)],
            cells: None,
        };
        let mut s = Scratch::default();
        let loc = TileLoc::new(0, 0, 0);
        let f32s = |b: &[u8]| -> Vec<f32> { bytemuck::cast_slice(b).to_vec() };
        let mut out = vec![0u64; 2 * 256 / 2];
        let bytes = bytemuck::cast_slice_mut::<u64, u8>(&mut out);
        let whole = two_bands(false).whole_rows(loc, 0..16, DataType::Float32, 16, bytes, &mut s);
        assert!(whole.unwrap(), "every pixel holds data");
        let all = f32s(bytes);
        assert_eq!((all[2 * 16 + 3], all[256 + 255]), (35.0, 2.0));
        // Rows of it, band after band, read the same.
        let mut rows = vec![0u64; 2 * 4 * 16 / 2];
        let part = bytemuck::cast_slice_mut::<u64, u8>(&mut rows);
        let whole = two_bands(false).whole_rows(loc, 4..8, DataType::Float32, 16, part, &mut s);
        assert!(whole.unwrap());
        let part = f32s(part);
        assert_eq!(part[..64], all[64..128]);
        assert_eq!(part[64..], all[256 + 64..256 + 128]);
        // One band missing at one pixel: what the tile held there must stay.
        let none = two_bands(true).whole_rows(loc, 0..16, DataType::Float32, 16, bytes, &mut s);
        assert!(!none.unwrap());
        // The rows around that pixel are whole.
        let mut rows = vec![0u64; 2 * 2 * 16 / 2];
        let part = bytemuck::cast_slice_mut::<u64, u8>(&mut rows);
        assert!(two_bands(true)
            .whole_rows(loc, 0..2, DataType::Float32, 16, part, &mut s)
            .unwrap());
        assert!(!two_bands(true)
            .whole_rows(loc, 2..4, DataType::Float32, 16, part, &mut s)
            .unwrap());
        // Covering only part of the tile is never whole.
        let mut one = vec![0u64; 256 / 2];
        let one = bytemuck::cast_slice_mut::<u64, u8>(&mut one);
        let part =
            placed(0, 0, 16, 15, 1.0).whole_rows(loc, 0..16, DataType::Float32, 16, one, &mut s);
        assert!(!part.unwrap());
    }
}
