//! Placing what changed children hand over into their parent tile.
//!
//! A child hands over an area of itself reduced to half size ([`Reduced`]), or nothing at
//! all when it holds no data any more. Child `q` (0 top-left, 1 top-right, 2 bottom-left,
//! 3 bottom-right) fills the parent's quadrant `q`, and its pixel `(r, c)` becomes the
//! parent pixel `(qy * T/2 + r/2, qx * T/2 + c/2)` ([`Area::in_parent`]).

use crate::aggregate::Reduced;
use crate::area::Area;
use crate::dtype::DataType;
use crate::tile::{fill_value, BandValidity, Tile};
use crate::with_sample_type;

/// What one child hands its parent: `None` for a child without data, whose whole quadrant
/// then holds no data.
pub type Handed = Option<Reduced>;

/// The child pixels a hand-over covers: all of them for a child without data.
pub fn handed_area(handed: &Handed, size: usize) -> Area {
    handed
        .as_ref()
        .map_or(Area::whole(size), |r| r.area.clone())
}

/// Writes the hand-overs of the children in `received` into `tile`; the rest of the tile
/// stays as it is. Pixels of the tile that nothing covers must hold what they held before.
pub fn place(
    tile: &mut Tile,
    validity: &[BandValidity],
    handed: &[Handed; 4],
    received: &[bool; 4],
) {
    let size = tile.size;
    let n = size * size;
    // A tile without a mask has data everywhere; it needs one only when a hand-over
    // brings pixels without data (to bands that have no nodata value to show it).
    let brings_missing =
        (0..4).any(|q| received[q] && !matches!(&handed[q], Some(Reduced { mask: None, .. })));
    if validity.iter().any(|v| v.nodata.is_none()) && tile.mask.is_none() && brings_missing {
        tile.mask = Some(vec![255; n]);
    }
    let dtype = tile.dtype;
    for q in (0..4).filter(|q| received[*q]) {
        let area = handed_area(&handed[q], size).in_parent(q, size);
        let (height, width, left) = (area.rows.len(), area.cols.len(), area.cols.start);
        with_sample_type!(dtype, T => {
            let dst = tile.data.typed_mut::<T>();
            for (b, v) in validity.iter().enumerate() {
                let fill = fill_value::<T>(v);
                for y in 0..height {
                    let d = b * n + (area.rows.start + y) * size + left;
                    match &handed[q] {
                        Some(r) => {
                            let s = (b * height + y) * width;
                            dst[d..d + width].copy_from_slice(&r.data.typed::<T>()[s..s + width]);
                        }
                        None => dst[d..d + width].fill(fill),
                    }
                }
            }
        });
        if let Some(mask) = tile.mask.as_mut() {
            for y in 0..height {
                let d = (area.rows.start + y) * size + left;
                let row = &mut mask[d..d + width];
                match &handed[q] {
                    Some(Reduced { mask: Some(m), .. }) => {
                        row.copy_from_slice(&m[y * width..(y + 1) * width])
                    }
                    Some(Reduced { mask: None, .. }) => row.fill(255),
                    None => row.fill(0),
                }
            }
        }
    }
    tile.normalize_mask();
}

/// A tile made of four whole quarters; a missing one holds no data.
pub fn assemble(
    dtype: DataType,
    validity: &[BandValidity],
    size: usize,
    quarters: &[Handed; 4],
) -> Tile {
    let mut out = Tile::empty(dtype, validity, size);
    let present = quarters.each_ref().map(|q| q.is_some());
    for r in quarters.iter().flatten() {
        assert_eq!(r.area, Area::whole(size), "assembled quarters are whole");
    }
    // `Tile::empty` starts with a mask of "no data", so the missing quarters keep it.
    place(&mut out, validity, quarters, &present);
    out
}
