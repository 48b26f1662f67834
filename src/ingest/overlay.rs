//! Laying a source's pixels over a store tile: where the source holds data, its values
//! replace the stored ones; where it has none (nodata, masked, outside it), the stored
//! values stay. Nodata in a source never erases data.

use crate::dtype::Sample;
use crate::error::Result;
use crate::grid::{PixelRect, TileLoc};
use crate::tile::{BandValidity, Tile};
use crate::with_sample_type;

use super::{RasterSource, Window};

/// A source whose pixel `(x, y)` is level-0 pixel `(x0 + x, y0 + y)` of the store grid.
pub struct PlacedSource<S> {
    pub source: S,
    pub x0: i64,
    pub y0: i64,
    /// The source's own nodata value per band (its missing pixels), if any.
    pub nodata: Vec<Option<f64>>,
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
        let win = Window {
            x: (part.x0 - self.x0) as usize,
            y: (part.y0 - self.y0) as usize,
            w: part.width() as usize,
            h: part.height() as usize,
        };
        let bytes = size * size * tile.bands * tile.dtype.size();
        scratch.data.resize(bytes.div_ceil(8), 0);
        let data = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut scratch.data)[..bytes];
        let mask = if self.source.has_mask() {
            scratch.mask.resize(size * size, 0);
            Some(&mut scratch.mask[..])
        } else {
            None
        };
        self.source.read_window(win, size, data, mask)?;
        let placement = Placement {
            dx: (part.x0 - tile_rect.x0) as usize,
            dy: (part.y0 - tile_rect.y0) as usize,
            w: win.w,
            h: win.h,
        };
        let mask = self.source.has_mask().then_some(&scratch.mask[..]);
        let (covered, every_pixel) = with_sample_type!(tile.dtype, T => {
            let src: &[T] = bytemuck::cast_slice(&bytemuck::cast_slice::<u64, u8>(&scratch.data)[..bytes]);
            overlay_typed::<T>(tile, src, mask, placement, &self.nodata, validity)
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
            whole_tile: every_pixel && part == tile_rect,
        })
    }
}

/// What laying a source over a tile did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Laid {
    /// The bounding box of the level-0 pixels that received data, if any did.
    pub covered: Option<PixelRect>,
    /// Every pixel of the tile received data in every band: nothing of what the tile held
    /// before is left.
    pub whole_tile: bool,
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
/// pixels, half-open) of the pixels that did, and whether every pixel of the placement
/// received data in every band.
fn overlay_typed<T: Sample>(
    tile: &mut Tile,
    src: &[T],
    mask: Option<&[u8]>,
    p: Placement,
    src_nodata: &[Option<f64>],
    validity: &[BandValidity],
) -> (Option<(usize, usize, usize, usize)>, bool) {
    let size = tile.size;
    let n = size * size;
    let nodata: Vec<Option<T>> = src_nodata
        .iter()
        .map(|v| v.map(T::from_f64_round))
        .collect();
    let masked: Vec<bool> = validity.iter().map(|v| v.nodata.is_none()).collect();
    let (mut bx0, mut by0, mut bx1, mut by1) = (usize::MAX, usize::MAX, 0, 0);
    let dst = tile.data.typed_mut::<T>();
    let mut tile_mask = tile.mask.take();
    let any_masked = masked.iter().any(|m| *m);
    let mut every_pixel = true;
    for y in 0..p.h {
        let si0 = y * size;
        let di0 = (p.dy + y) * size + p.dx;
        // The common case: a row where every band holds data everywhere is copied whole.
        let whole_row = mask.is_none()
            && (0..nodata.len()).all(|b| {
                src[b * n + si0..b * n + si0 + p.w]
                    .iter()
                    .all(|v| !v.is_nan() && nodata[b] != Some(*v))
            });
        if whole_row {
            for b in 0..nodata.len() {
                dst[b * n + di0..b * n + di0 + p.w]
                    .copy_from_slice(&src[b * n + si0..b * n + si0 + p.w]);
            }
            if any_masked {
                if let Some(m) = tile_mask.as_mut() {
                    m[di0..di0 + p.w].fill(255);
                }
            }
            if p.w > 0 {
                bx0 = bx0.min(p.dx);
                bx1 = bx1.max(p.dx + p.w);
                by0 = by0.min(p.dy + y);
                by1 = p.dy + y + 1;
            }
            continue;
        }
        let mut row_any = false;
        for x in 0..p.w {
            let si = si0 + x;
            if mask.is_some_and(|m| m[si] == 0) {
                every_pixel = false;
                continue;
            }
            let di = di0 + x;
            let (mut any, mut any_masked) = (false, false);
            for b in 0..nodata.len() {
                let v = src[b * n + si];
                if v.is_nan() || nodata[b] == Some(v) {
                    every_pixel = false;
                    continue;
                }
                dst[b * n + di] = v;
                any = true;
                any_masked |= masked[b];
            }
            if any_masked {
                if let Some(m) = tile_mask.as_mut() {
                    m[di] = 255;
                }
            }
            if any {
                row_any = true;
                bx0 = bx0.min(p.dx + x);
                bx1 = bx1.max(p.dx + x + 1);
            }
        }
        if row_any {
            by0 = by0.min(p.dy + y);
            by1 = p.dy + y + 1;
        }
    }
    tile.mask = tile_mask;
    ((bx0 < bx1).then_some((bx0, by0, bx1, by1)), every_pixel)
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
        }
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
        assert!(!got.whole_tile);
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
    fn a_tile_is_whole_only_when_every_band_of_every_pixel_received_data() {
        let validity = [BandValidity { nodata: None }, BandValidity { nodata: None }];
        let two_bands = |hole_in_second: bool| PlacedSource {
            source: MemSource {
                w: 16,
                h: 16,
                planes: vec![vec![1.0; 256], {
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
        };
        let mut s = Scratch::default();
        let loc = TileLoc::new(0, 0, 0);
        let mut tile = Tile::empty(DataType::Float32, &validity, 16);
        let laid = two_bands(false)
            .overlay(loc, &mut tile, &validity, &mut s)
            .unwrap();
        assert!(laid.whole_tile);
        // One band missing at one pixel: what the tile held there must stay.
        let mut tile = Tile::empty(DataType::Float32, &validity, 16);
        let laid = two_bands(true)
            .overlay(loc, &mut tile, &validity, &mut s)
            .unwrap();
        assert!(!laid.whole_tile);
        assert_eq!(laid.covered, Some(PixelRect::new(0, 0, 16, 16)));
        // Covering only part of the tile is never whole.
        let mut tile = Tile::empty(DataType::Float32, &validity, 16);
        let laid = placed(0, 0, 16, 15, 1.0)
            .overlay(loc, &mut tile, &validity[..1], &mut s)
            .unwrap();
        assert!(!laid.whole_tile);
    }
}
