//! A decoded tile: the samples of every band of one tile, and which of them hold data.
//!
//! Samples are band-sequential and row-major (`band, row, col`) in a buffer aligned for any
//! sample type. Validity follows GDAL: a band with a nodata value marks missing pixels with
//! it (NaN always counts as missing in float bands); bands without one share a per-tile mask
//! (255 = data, 0 = none), which exists only when some pixel is missing.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::area::Area;
use crate::dtype::{DataType, Sample};
use crate::with_sample_type;

/// What the tile code needs to know about each band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandValidity {
    pub nodata: Option<f64>,
}

/// A byte buffer backed by `u64` words, so it can be viewed as a slice of any sample type.
#[derive(Clone, Default, PartialEq)]
pub struct SampleBuf {
    words: Vec<u64>,
    len: usize,
}

impl SampleBuf {
    pub fn zeroed(len: usize) -> Self {
        SampleBuf {
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }

    /// A buffer of the first `len` bytes of `words`.
    pub fn from_words(words: Vec<u64>, len: usize) -> Self {
        assert!(
            len <= words.len() * 8,
            "{len} bytes do not fit in {} words",
            words.len()
        );
        SampleBuf { words, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }

    pub fn typed<T: Sample>(&self) -> &[T] {
        bytemuck::cast_slice(self.bytes())
    }

    pub fn typed_mut<T: Sample>(&mut self) -> &mut [T] {
        bytemuck::cast_slice_mut(self.bytes_mut())
    }
}

impl std::fmt::Debug for SampleBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SampleBuf({} bytes)", self.len)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub dtype: DataType,
    pub bands: usize,
    /// Edge length in pixels (tiles are square).
    pub size: usize,
    pub data: SampleBuf,
    /// Per-pixel validity for the bands without nodata; `None` means all valid.
    pub mask: Option<Vec<u8>>,
}

/// Value of a missing pixel: the nodata value, or 0 for bands without one.
pub fn fill_value<T: Sample>(v: &BandValidity) -> T {
    v.nodata.map(T::from_f64_round).unwrap_or_default()
}

/// Tells whether a sample holds data, for a band with the given validity.
#[derive(Clone, Copy)]
pub struct ValidityTest<T: Sample> {
    nodata: Option<T>,
}

impl<T: Sample> ValidityTest<T> {
    pub fn new(v: &BandValidity) -> Self {
        ValidityTest {
            nodata: v.nodata.map(T::from_f64_round),
        }
    }

    /// True for a sample that is neither nodata nor NaN; the mask is checked separately.
    #[inline(always)]
    pub fn holds_data(&self, x: T) -> bool {
        !x.is_nan() && self.nodata != Some(x)
    }

    pub fn has_nodata(&self) -> bool {
        self.nodata.is_some()
    }
}

impl Tile {
    /// A tile with no data: every band filled with its missing value.
    pub fn empty(dtype: DataType, bands: &[BandValidity], size: usize) -> Tile {
        let n = size * size;
        let mut data = SampleBuf::zeroed(n * bands.len() * dtype.size());
        with_sample_type!(dtype, T => {
            let typed = data.typed_mut::<T>();
            for (b, v) in bands.iter().enumerate() {
                typed[b * n..(b + 1) * n].fill(fill_value::<T>(v));
            }
        });
        let any_without_nodata = bands.iter().any(|b| b.nodata.is_none());
        Tile {
            dtype,
            bands: bands.len(),
            size,
            data,
            mask: any_without_nodata.then(|| vec![0u8; n]),
        }
    }

    /// A tile of zero samples and no mask, for a caller that fills it: memory of rows it
    /// never writes is never touched.
    pub fn zeroed(dtype: DataType, bands: usize, size: usize) -> Tile {
        Tile {
            dtype,
            bands,
            size,
            data: SampleBuf::zeroed(size * size * bands * dtype.size()),
            mask: None,
        }
    }

    pub fn pixels(&self) -> usize {
        self.size * self.size
    }

    pub fn band_bytes(&self, band: usize) -> &[u8] {
        let n = self.pixels() * self.dtype.size();
        &self.data.bytes()[band * n..(band + 1) * n]
    }

    pub fn band<T: Sample>(&self, band: usize) -> ArrayView2<'_, T> {
        let n = self.pixels();
        ArrayView2::from_shape(
            (self.size, self.size),
            &self.data.typed::<T>()[band * n..(band + 1) * n],
        )
        .expect("tile buffers are size x size per band")
    }

    pub fn band_mut<T: Sample>(&mut self, band: usize) -> ArrayViewMut2<'_, T> {
        let n = self.pixels();
        let size = self.size;
        ArrayViewMut2::from_shape(
            (size, size),
            &mut self.data.typed_mut::<T>()[band * n..(band + 1) * n],
        )
        .expect("tile buffers are size x size per band")
    }

    /// True when no band holds data at any pixel: such tiles are not stored.
    pub fn is_empty(&self, bands: &[BandValidity]) -> bool {
        !self.area_holds_data(bands, &Area::whole(self.size))
    }

    /// True when some band holds data at some pixel of the rows `rows`.
    pub fn area_holds_data(&self, bands: &[BandValidity], area: &Area) -> bool {
        with_sample_type!(self.dtype, T => self.area_holds_data_typed::<T>(bands, area))
    }

    fn area_holds_data_typed<T: Sample>(&self, bands: &[BandValidity], area: &Area) -> bool {
        let n = self.pixels();
        let typed = self.data.typed::<T>();
        let rows = |y: usize| y * self.size + area.cols.start..y * self.size + area.cols.end;
        bands.iter().enumerate().any(|(b, v)| {
            let plane = &typed[b * n..(b + 1) * n];
            let test = ValidityTest::<T>::new(v);
            area.rows
                .clone()
                .any(|y| match (&self.mask, test.has_nodata()) {
                    (Some(mask), false) => plane[rows(y)]
                        .iter()
                        .zip(&mask[rows(y)])
                        .any(|(x, m)| *m != 0 && test.holds_data(*x)),
                    _ => plane[rows(y)].iter().any(|x| test.holds_data(*x)),
                })
        })
    }

    /// Re-reads a tile made under band validity `from` under `to` (a band's nodata value
    /// changed): a pixel missing under `from` stays missing (a band that gains a nodata
    /// value holds it there), and the mask, when `to` needs one, marks the pixels where a
    /// band without nodata holds data.
    pub fn revalidate(&mut self, from: &[BandValidity], to: &[BandValidity]) {
        with_sample_type!(self.dtype, T => self.revalidate_typed::<T>(from, to));
        self.normalize_mask();
    }

    fn revalidate_typed<T: Sample>(&mut self, from: &[BandValidity], to: &[BandValidity]) {
        let n = self.pixels();
        let old_mask = self.mask.take();
        let mut mask = to.iter().any(|v| v.nodata.is_none()).then(|| vec![0u8; n]);
        let data = self.data.typed_mut::<T>();
        for (b, (was, now)) in from.iter().zip(to).enumerate() {
            let test = ValidityTest::<T>::new(was);
            let fill = fill_value::<T>(now);
            let plane = &mut data[b * n..(b + 1) * n];
            for (i, x) in plane.iter_mut().enumerate() {
                let unmasked = test.has_nodata() || old_mask.as_ref().is_none_or(|m| m[i] != 0);
                let holds = unmasked && test.holds_data(*x);
                match (now.nodata, mask.as_mut()) {
                    (Some(_), _) if !holds => *x = fill,
                    (None, Some(m)) if holds => m[i] = 255,
                    _ => {}
                }
            }
        }
        self.mask = mask;
    }

    /// Drops a mask that marks every pixel valid, so it is not stored.
    pub fn normalize_mask(&mut self) {
        if self
            .mask
            .as_ref()
            .is_some_and(|m| m.iter().all(|v| *v != 0))
        {
            self.mask = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revalidating_keeps_missing_pixels_missing() {
        let none = [BandValidity { nodata: None }];
        let some = [BandValidity { nodata: Some(-1.0) }];
        // Made without nodata: pixel 0 written as 0, pixel 1 written as 5, the rest unwritten.
        let mut t = Tile::empty(DataType::Int16, &none, 4);
        t.data.typed_mut::<i16>()[1] = 5;
        let m = t.mask.as_mut().unwrap();
        m[0] = 255;
        m[1] = 255;
        let mut gained = t.clone();
        gained.revalidate(&none, &some);
        let v = gained.data.typed::<i16>();
        assert_eq!((v[0], v[1], v[2], v[15]), (0, 5, -1, -1));
        assert!(gained.mask.is_none());
        // And back: the pixels that held -1 are missing, the others hold data.
        gained.revalidate(&some, &none);
        let mask = gained.mask.as_ref().unwrap();
        assert_eq!((mask[0], mask[1], mask[2], mask[15]), (255, 255, 0, 0));
    }

    #[test]
    fn revalidating_a_full_tile_drops_its_mask() {
        let none = [BandValidity { nodata: None }];
        let mut t = Tile::empty(DataType::Byte, &none, 2);
        t.mask.as_mut().unwrap().fill(255);
        t.revalidate(&none, &none);
        assert!(t.mask.is_none());
    }

    #[test]
    fn empty_tiles_hold_the_fill_value() {
        let bands = [
            BandValidity {
                nodata: Some(-9999.0),
            },
            BandValidity { nodata: None },
        ];
        let t = Tile::empty(DataType::Int16, &bands, 16);
        assert!(t.band::<i16>(0).iter().all(|v| *v == -9999));
        assert!(t.band::<i16>(1).iter().all(|v| *v == 0));
        assert!(t.mask.as_ref().unwrap().iter().all(|m| *m == 0));
        assert!(t.is_empty(&bands));
    }

    #[test]
    fn one_valid_pixel_makes_a_tile_non_empty() {
        let bands = [BandValidity { nodata: Some(0.0) }];
        let mut t = Tile::empty(DataType::Float32, &bands, 16);
        assert!(t.is_empty(&bands));
        t.band_mut::<f32>(0)[[3, 4]] = f32::NAN;
        assert!(t.is_empty(&bands), "NaN is not data");
        t.band_mut::<f32>(0)[[3, 4]] = 1.0;
        assert!(!t.is_empty(&bands));
    }

    #[test]
    fn float32_nodata_compares_at_float32_precision() {
        let test = ValidityTest::<f32>::new(&BandValidity { nodata: Some(1e20) });
        assert!(!test.holds_data(1e20f32));
        assert!(test.holds_data(1.0));
    }
}
