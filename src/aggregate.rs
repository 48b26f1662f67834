//! Aggregation: how a pixel of one level is made from the 2x2 pixels below it.
//!
//! Every method considers only the children that hold data (see [`crate::tile`]); a parent
//! with no such child holds no data. Levels are built from the level just below, so level
//! `z` is the method applied `z` times.
//!
//! - `Average`: the mean of the children with data, computed in f64 and rounded to nearest
//!   (ties away from zero) for integer types.
//! - `Nearest`: the first child with data, in the order top-left, top-right, bottom-left,
//!   bottom-right.
//! - `Min` / `Max`: the smallest / largest child with data.
//! - `Mode`: the most frequent value among the children with data; ties go to the smallest.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::area::Area;
use crate::dtype::Sample;
use crate::error::{Error, Result};
use crate::tile::{fill_value, BandValidity, SampleBuf, Tile, ValidityTest};
use crate::with_sample_type;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resampling {
    Average,
    Nearest,
    Min,
    Max,
    Mode,
}

impl Resampling {
    pub const ALL: [Resampling; 5] = [
        Resampling::Average,
        Resampling::Nearest,
        Resampling::Min,
        Resampling::Max,
        Resampling::Mode,
    ];

    /// The name GDAL uses (`RESAMPLING=` values and overview metadata).
    pub fn gdal_name(self) -> &'static str {
        match self {
            Resampling::Average => "AVERAGE",
            Resampling::Nearest => "NEAREST",
            Resampling::Min => "MIN",
            Resampling::Max => "MAX",
            Resampling::Mode => "MODE",
        }
    }

    pub fn from_gdal_name(name: &str) -> Result<Resampling> {
        let upper = name.trim().to_ascii_uppercase();
        Resampling::ALL
            .into_iter()
            .find(|r| r.gdal_name() == upper)
            .ok_or_else(|| {
                Error::option(
                    "RESAMPLING",
                    name,
                    "one of AVERAGE, NEAREST, MIN, MAX, MODE (several, comma separated, give \
                     one per band)",
                )
            })
    }
}

/// An area of a tile reduced to half size: what a changed tile hands its parent. `data`
/// holds `area.rows.len() / 2` rows of `area.cols.len() / 2` samples per band
/// (band-sequential); `mask` the validity of the bands without nodata, in the same layout,
/// `None` when the tile had no mask (all valid).
#[derive(Debug, Clone, PartialEq)]
pub struct Reduced {
    /// The pixels of the source tile these come from (even bounds).
    pub area: Area,
    pub data: SampleBuf,
    pub mask: Option<Vec<u8>>,
}

impl Reduced {
    /// Samples per band, and per mask.
    pub fn pixels(&self) -> usize {
        self.area.pixels() / 4
    }
}

/// Aggregates a tile to half its size: pixel `(y, x)` of the result comes from pixels
/// `(2y..2y+2, 2x..2x+2)`. `methods` and `bands` have one entry per band.
pub fn downsample(tile: &Tile, methods: &[Resampling], bands: &[BandValidity]) -> Reduced {
    downsample_area(tile, &Area::whole(tile.size), methods, bands)
}

/// [`downsample`] for the pixels of `area` only (even bounds): a parent pixel depends only
/// on the 2 x 2 pixels below it, so a change confined to an area of a tile changes only the
/// parent pixels above it.
pub fn downsample_area(
    tile: &Tile,
    area: &Area,
    methods: &[Resampling],
    bands: &[BandValidity],
) -> Reduced {
    assert_eq!(tile.size % 2, 0, "tiles have an even size");
    let even = |r: &Range<usize>| r.start % 2 == 0 && r.end % 2 == 0 && r.end <= tile.size;
    assert!(
        even(&area.rows) && even(&area.cols),
        "area {area:?} of a tile of {} has even bounds",
        tile.size
    );
    let size = tile.size;
    let n = size * size;
    let out_n = area.pixels() / 4;
    let mask = tile.mask.as_ref().map(|m| downsample_mask(m, size, area));
    let mut data = SampleBuf::zeroed(out_n * tile.bands * tile.dtype.size());
    with_sample_type!(tile.dtype, T => {
        let src = tile.data.typed::<T>();
        let dst = data.typed_mut::<T>();
        for b in 0..tile.bands {
            let band_mask = if bands[b].nodata.is_none() { tile.mask.as_deref() } else { None };
            let parent_mask = if bands[b].nodata.is_none() { mask.as_deref() } else { None };
            downsample_band::<T>(
                methods[b],
                Children { plane: &src[b * n..(b + 1) * n], mask: band_mask, size, area },
                &bands[b],
                &mut dst[b * out_n..(b + 1) * out_n],
                parent_mask,
            );
        }
    });
    Reduced {
        area: area.clone(),
        data,
        mask,
    }
}

/// [`downsample`] for rows `rows` of a tile of `size` pixels without a mask, held apart:
/// `band_rows[b]` are band `b`'s rows, as bytes of `dtype` (what a tile read a row of
/// blocks at a time has ready before the rest of it). [`Reduced::join`] puts such parts
/// back together.
pub fn downsample_rows(
    dtype: crate::dtype::DataType,
    band_rows: &[&[u8]],
    rows: Range<usize>,
    size: usize,
    methods: &[Resampling],
    bands: &[BandValidity],
) -> Reduced {
    assert!(
        rows.start % 2 == 0 && rows.len() % 2 == 0,
        "rows {rows:?} have even bounds"
    );
    let area = Area::new(0..rows.len(), 0..size);
    let out_n = area.pixels() / 4;
    let mut data = SampleBuf::zeroed(out_n * band_rows.len() * dtype.size());
    with_sample_type!(dtype, T => {
        let dst = data.typed_mut::<T>();
        for (b, plane) in band_rows.iter().enumerate() {
            let plane: &[T] = bytemuck::cast_slice(plane);
            downsample_band::<T>(
                methods[b],
                Children { plane, mask: None, size, area: &area },
                &bands[b],
                &mut dst[b * out_n..(b + 1) * out_n],
                None,
            );
        }
    });
    Reduced {
        area: Area::new(rows, 0..size),
        data,
        mask: None,
    }
}

impl Reduced {
    /// The reduction of the rows of `parts` together: parts of the same columns of one
    /// tile, without masks, whose rows follow each other.
    pub fn join(parts: Vec<Reduced>, dtype: crate::dtype::DataType, bands: usize) -> Reduced {
        let first = parts.first().expect("at least one part").area.clone();
        let rows = first.rows.start..parts.last().expect("non-empty").area.rows.end;
        let area = Area::new(rows, first.cols.clone());
        let (width, out_n) = (dtype.size(), area.pixels() / 4);
        let mut data = SampleBuf::zeroed(out_n * bands * width);
        let out = data.bytes_mut();
        let (mut at, mut next_row) = (0, area.rows.start);
        for part in &parts {
            assert!(
                part.mask.is_none() && part.area.cols == first.cols,
                "parts of one kind"
            );
            assert_eq!(
                part.area.rows.start, next_row,
                "parts in the order of their rows"
            );
            next_row = part.area.rows.end;
            let n = part.pixels();
            for b in 0..bands {
                let to = (b * out_n + at) * width;
                out[to..to + n * width]
                    .copy_from_slice(&part.data.bytes()[b * n * width..(b + 1) * n * width]);
            }
            at += n;
        }
        assert_eq!(at, out_n, "the parts cover their rows");
        Reduced {
            area,
            data,
            mask: None,
        }
    }
}

/// The pixels of one band of a tile that an area of its parent comes from.
#[derive(Clone, Copy)]
struct Children<'a, T> {
    /// The band's rows, `size` samples each, from the tile's first row or from the
    /// area's.
    plane: &'a [T],
    /// The tile's mask, if the band has no nodata and the tile a mask.
    mask: Option<&'a [u8]>,
    size: usize,
    /// The pixels to reduce (even bounds).
    area: &'a Area,
}

/// A parent pixel holds data when any of its children does. `mask` is a whole tile's of
/// `size` pixels; the result covers `area` halved.
fn downsample_mask(mask: &[u8], size: usize, area: &Area) -> Vec<u8> {
    let (h, w) = (area.rows.len() / 2, area.cols.len() / 2);
    let mut out = vec![0u8; h * w];
    if w == 0 {
        return out;
    }
    for (y, row) in out.chunks_exact_mut(w).enumerate() {
        let at = (area.rows.start + 2 * y) * size + area.cols.start;
        let (r0, r1) = (&mask[at..], &mask[at + size..]);
        for (x, o) in row.iter_mut().enumerate() {
            let any = r0[2 * x] | r0[2 * x + 1] | r1[2 * x] | r1[2 * x + 1];
            *o = if any != 0 { 255 } else { 0 };
        }
    }
    out
}

fn downsample_band<T: Sample>(
    method: Resampling,
    children: Children<'_, T>,
    validity: &BandValidity,
    dst: &mut [T],
    parent_mask: Option<&[u8]>,
) {
    let mut run = |all: fn([T; 4]) -> T, some: fn(&[T]) -> T| {
        reduce(children, validity, dst, parent_mask, all, some)
    };
    match method {
        Resampling::Average => run(|v| T::mean4(v[0], v[1], v[2], v[3]), average::<T>),
        Resampling::Nearest => run(|v| v[0], |v| v[0]),
        Resampling::Min => run(|v| min::<T>(&v), min::<T>),
        Resampling::Max => run(|v| max::<T>(&v), max::<T>),
        Resampling::Mode => run(|v| mode::<T>(&v), mode::<T>),
    }
}

/// Computes every parent pixel: `all` when its four children hold data (the common case,
/// kept branch-light), `some` on the children that do otherwise (never an empty list).
#[inline(always)]
fn reduce<T: Sample>(
    children: Children<'_, T>,
    validity: &BandValidity,
    dst: &mut [T],
    parent_mask: Option<&[u8]>,
    all: fn([T; 4]) -> T,
    some: fn(&[T]) -> T,
) {
    let Children {
        plane: src,
        mask,
        size,
        area,
    } = children;
    let w = area.cols.len() / 2;
    if w == 0 {
        return;
    }
    let test = ValidityTest::<T>::new(validity);
    let fill = fill_value::<T>(validity);
    // A parent the mask marks as data whose children are all NaN is NaN itself (0 for
    // integers, which have no NaN and so never get here).
    let nan = T::from_f64_round(f64::NAN);
    // Integers without nodata or mask: every child holds data.
    let always_valid = mask.is_none() && !test.has_nodata() && !T::TYPE.is_float();
    for (y, out) in dst.chunks_exact_mut(w).enumerate() {
        let top = (area.rows.start + 2 * y) * size + area.cols.start;
        let (r0, r1) = (&src[top..top + 2 * w], &src[top + size..top + size + 2 * w]);
        if always_valid {
            for (x, o) in out.iter_mut().enumerate() {
                *o = all([r0[2 * x], r0[2 * x + 1], r1[2 * x], r1[2 * x + 1]]);
            }
            continue;
        }
        for (x, o) in out.iter_mut().enumerate() {
            let v = [r0[2 * x], r0[2 * x + 1], r1[2 * x], r1[2 * x + 1]];
            let idx = [
                top + 2 * x,
                top + 2 * x + 1,
                top + size + 2 * x,
                top + size + 2 * x + 1,
            ];
            let mut ok = [false; 4];
            for k in 0..4 {
                ok[k] = test.holds_data(v[k]) && mask.is_none_or(|m| m[idx[k]] != 0);
            }
            if ok == [true; 4] {
                *o = all(v);
                continue;
            }
            let mut vals = [T::default(); 4];
            let mut n = 0;
            for k in 0..4 {
                if ok[k] {
                    vals[n] = v[k];
                    n += 1;
                }
            }
            *o = if n > 0 {
                some(&vals[..n])
            } else if parent_mask.is_some_and(|m| m[y * w + x] != 0) {
                nan
            } else {
                fill
            };
        }
    }
}

#[inline(always)]
fn average<T: Sample>(v: &[T]) -> T {
    let sum: f64 = v.iter().map(|x| x.to_f64()).sum();
    T::from_f64_round(sum / v.len() as f64)
}

#[inline(always)]
fn min<T: Sample>(v: &[T]) -> T {
    v.iter()
        .copied()
        .fold(v[0], |a, b| if b < a { b } else { a })
}

#[inline(always)]
fn max<T: Sample>(v: &[T]) -> T {
    v.iter()
        .copied()
        .fold(v[0], |a, b| if b > a { b } else { a })
}

#[inline(always)]
fn mode<T: Sample>(v: &[T]) -> T {
    let mut best = v[0];
    let mut best_count = 0;
    for &a in v {
        let count = v.iter().filter(|b| **b == a).count();
        if count > best_count || (count == best_count && a < best) {
            best = a;
            best_count = count;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DataType;
    use proptest::prelude::*;

    /// The reference: a plain, obviously correct reading of the definitions above.
    fn brute_force(
        method: Resampling,
        px: &[(f64, bool)], // the four children: value, holds data
    ) -> Option<f64> {
        let valid: Vec<f64> = px.iter().filter(|p| p.1).map(|p| p.0).collect();
        if valid.is_empty() {
            return None;
        }
        Some(match method {
            Resampling::Average => valid.iter().sum::<f64>() / valid.len() as f64,
            Resampling::Nearest => valid[0],
            Resampling::Min => valid.iter().cloned().fold(f64::INFINITY, f64::min),
            Resampling::Max => valid.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            Resampling::Mode => {
                let mut sorted = valid.clone();
                sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
                let mut best = (0, 0.0);
                for v in &sorted {
                    let c = valid.iter().filter(|w| *w == v).count();
                    if c > best.0 {
                        best = (c, *v);
                    }
                }
                best.1
            }
        })
    }

    fn check<T: Sample>(
        method: Resampling,
        values: &[T],
        nodata: Option<f64>,
        mask: Option<Vec<u8>>,
    ) {
        let size = 8;
        let bands = [BandValidity { nodata }];
        let mut tile = Tile::empty(T::TYPE, &bands, size);
        tile.data.typed_mut::<T>().copy_from_slice(values);
        tile.mask = mask.clone();
        let out = downsample(&tile, &[method], &bands);
        let nd = nodata.map(T::from_f64_round);
        for y in 0..size / 2 {
            for x in 0..size / 2 {
                let px: Vec<(f64, bool)> = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .iter()
                    .map(|(dy, dx)| {
                        let i = (2 * y + dy) * size + 2 * x + dx;
                        let v = values[i];
                        let masked = nodata.is_none() && mask.as_ref().is_some_and(|m| m[i] == 0);
                        (v.to_f64(), !v.is_nan() && Some(v) != nd && !masked)
                    })
                    .collect();
                let got = out.data.typed::<T>()[y * (size / 2) + x];
                match brute_force(method, &px) {
                    Some(want) => assert_eq!(
                        got,
                        T::from_f64_round(want),
                        "{method:?} at ({y},{x}) of {px:?}"
                    ),
                    None if nodata.is_some() => assert_eq!(Some(got), nd),
                    None => assert_eq!(
                        out.mask.as_ref().unwrap()[y * size / 2 + x],
                        0,
                        "a parent of masked pixels is masked"
                    ),
                }
            }
        }
    }

    proptest! {
        #[test]
        fn every_method_matches_the_reference_for_integers(
            method in prop::sample::select(Resampling::ALL.to_vec()),
            values in prop::collection::vec(-3i16..4, 64),
            use_nodata in any::<bool>(),
            mask in prop::collection::vec(prop::sample::select(vec![0u8, 255]), 64)) {
            if use_nodata {
                check::<i16>(method, &values, Some(0.0), None);
            } else {
                check::<i16>(method, &values, None, Some(mask));
            }
        }

        #[test]
        fn every_method_matches_the_reference_for_floats(
            method in prop::sample::select(Resampling::ALL.to_vec()),
            values in prop::collection::vec(prop::sample::select(
                vec![f32::NAN, -1.5, 0.0, 2.25, 7.0, 1e20]), 64)) {
            check::<f32>(method, &values, Some(1e20), None);
        }

        #[test]
        fn byte_average_rounds_half_up(values in prop::collection::vec(any::<u8>(), 64)) {
            check::<u8>(Resampling::Average, &values, None, None);
        }
    }

    #[test]
    fn gdal_names() {
        for r in Resampling::ALL {
            assert_eq!(Resampling::from_gdal_name(r.gdal_name()).unwrap(), r);
        }
        assert_eq!(
            Resampling::from_gdal_name("average").unwrap(),
            Resampling::Average
        );
        assert!(Resampling::from_gdal_name("CUBIC").is_err());
    }

    #[test]
    fn mode_ties_go_to_the_smallest_value() {
        assert_eq!(mode(&[3u8, 1, 3, 1]), 1);
        assert_eq!(mode(&[5u8, 2, 5, 9]), 5);
        let _ = DataType::Byte;
    }

    #[test]
    fn rows_held_apart_reduce_and_join_to_the_whole() {
        let size = 16;
        let bands = [
            BandValidity { nodata: Some(-1.0) },
            BandValidity { nodata: None },
        ];
        let mut tile = Tile::empty(DataType::Float32, &bands, size);
        for (i, v) in tile.data.typed_mut::<f32>().iter_mut().enumerate() {
            *v = ((i * 37) % 11) as f32 + if i % 9 == 0 { -1.0 } else { 0.0 };
        }
        tile.mask = None; // every pixel valid in the band without nodata
        let methods = [Resampling::Average, Resampling::Max];
        let whole = downsample(&tile, &methods, &bands);
        let plane = size * size * 4;
        let parts: Vec<Reduced> = [0..6, 6..12, 12..16]
            .into_iter()
            .map(|rows| {
                let band_rows: Vec<&[u8]> = (0..2)
                    .map(|b| {
                        &tile.data.bytes()
                            [b * plane + rows.start * size * 4..b * plane + rows.end * size * 4]
                    })
                    .collect();
                downsample_rows(DataType::Float32, &band_rows, rows, size, &methods, &bands)
            })
            .collect();
        assert_eq!(parts[1].area, Area::new(6..12, 0..16));
        assert_eq!(Reduced::join(parts, DataType::Float32, 2), whole);
    }

    #[test]
    fn downsampling_an_area_gives_that_part_of_the_whole() {
        let size = 16;
        let bands = [
            BandValidity { nodata: None },
            BandValidity { nodata: Some(0.0) },
        ];
        let mut tile = Tile::empty(DataType::Float32, &bands, size);
        for (i, v) in tile.data.typed_mut::<f32>().iter_mut().enumerate() {
            *v = ((i * 37) % 11) as f32;
        }
        tile.mask = Some(
            (0..size * size)
                .map(|i| if i % 5 == 0 { 0 } else { 255 })
                .collect(),
        );
        let methods = [Resampling::Average, Resampling::Mode];
        let whole = downsample(&tile, &methods, &bands);
        let (half, h) = (size / 2, (size / 2) * (size / 2));
        for area in [
            Area::new(4..10, 0..16),
            Area::new(2..8, 6..14),
            Area::new(0..16, 14..16),
        ] {
            let part = downsample_area(&tile, &area, &methods, &bands);
            assert_eq!(part.area, area);
            let (rows, cols) = (
                area.rows.start / 2..area.rows.end / 2,
                area.cols.start / 2..area.cols.end / 2,
            );
            let want = |plane: &[f32]| -> Vec<f32> {
                rows.clone()
                    .flat_map(|y| cols.clone().map(move |x| plane[y * half + x]))
                    .collect()
            };
            for b in 0..2 {
                let n = part.pixels();
                assert_eq!(
                    part.data.typed::<f32>()[b * n..(b + 1) * n],
                    want(&whole.data.typed::<f32>()[b * h..(b + 1) * h])[..],
                    "{area:?} band {b}"
                );
            }
            let mask: Vec<f32> = whole
                .mask
                .as_ref()
                .unwrap()
                .iter()
                .map(|m| *m as f32)
                .collect();
            let got: Vec<f32> = part.mask.unwrap().iter().map(|m| *m as f32).collect();
            assert_eq!(got, want(&mask), "{area:?} mask");
        }
    }
}
