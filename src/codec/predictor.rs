//! Predictors: reversible transforms applied to each row of a sample plane before
//! compression, so that smooth data turns into long runs of small numbers.
//!
//! - `Horizontal` stores each sample as its difference from the left neighbour, with
//!   wrapping arithmetic on the sample's width (TIFF predictor 2).
//! - `FloatingPoint` splits each row into byte planes, most significant byte first, and then
//!   differences consecutive bytes (TIFF predictor 3). Exponents and high mantissa bytes of
//!   neighbouring floats are nearly equal, so whole planes become zeros.
//!
//! Planes are little-endian sample bytes; `width` is the sample size in bytes.

use serde::{Deserialize, Serialize};

use crate::dtype::DataType;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predictor {
    None,
    Horizontal,
    FloatingPoint,
}

impl Predictor {
    pub fn code(self) -> u8 {
        match self {
            Predictor::None => 0,
            Predictor::Horizontal => 1,
            Predictor::FloatingPoint => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Predictor> {
        Some(match code {
            0 => Predictor::None,
            1 => Predictor::Horizontal,
            2 => Predictor::FloatingPoint,
            _ => return None,
        })
    }

    /// The predictor `PREDICTOR=YES` picks: floating point for floats, horizontal otherwise.
    pub fn default_for(dtype: DataType) -> Predictor {
        if dtype.is_float() {
            Predictor::FloatingPoint
        } else {
            Predictor::Horizontal
        }
    }

    /// Parses `PREDICTOR=` with the values of GDAL's COG driver (and GTiff's 1/2/3).
    pub fn from_option(value: &str, dtype: DataType) -> Result<Predictor> {
        let p = match value.to_ascii_uppercase().as_str() {
            "YES" | "TRUE" | "ON" => Predictor::default_for(dtype),
            "NO" | "FALSE" | "OFF" | "1" => Predictor::None,
            "STANDARD" | "2" => Predictor::Horizontal,
            "FLOATING_POINT" | "3" => Predictor::FloatingPoint,
            _ => {
                return Err(Error::option(
                    "PREDICTOR",
                    value,
                    "one of YES, NO, STANDARD, FLOATING_POINT",
                ))
            }
        };
        if p == Predictor::FloatingPoint && !dtype.is_float() {
            return Err(Error::option(
                "PREDICTOR",
                value,
                format!(
                    "FLOATING_POINT applies to Float32/Float64 data, not {}; use YES or STANDARD",
                    dtype.name()
                ),
            ));
        }
        Ok(p)
    }

    /// Appends the transformed form of `plane` (rows of `cols` samples) to `out`.
    pub fn encode(self, width: usize, cols: usize, plane: &[u8], out: &mut Vec<u8>) {
        let row_bytes = width * cols;
        debug_assert_eq!(plane.len() % row_bytes, 0);
        match self {
            Predictor::None => out.extend_from_slice(plane),
            Predictor::Horizontal => {
                let start = out.len();
                out.resize(start + plane.len(), 0);
                let dst = &mut out[start..];
                for (src, dst) in plane
                    .chunks_exact(row_bytes)
                    .zip(dst.chunks_exact_mut(row_bytes))
                {
                    match width {
                        1 => diff_u8(src, dst),
                        2 => diff_u16(src, dst),
                        4 => diff_u32(src, dst),
                        8 => diff_u64(src, dst),
                        _ => unreachable!("no {width}-byte samples"),
                    }
                }
            }
            Predictor::FloatingPoint => {
                let start = out.len();
                out.resize(start + plane.len(), 0);
                let dst = &mut out[start..];
                for (src, dst) in plane
                    .chunks_exact(row_bytes)
                    .zip(dst.chunks_exact_mut(row_bytes))
                {
                    shuffle_row(width, cols, src, dst);
                    for j in (1..dst.len()).rev() {
                        dst[j] = dst[j].wrapping_sub(dst[j - 1]);
                    }
                }
            }
        }
    }

    /// Reverses [`Predictor::encode`]: `src` and `dst` have the same length.
    pub fn decode(self, width: usize, cols: usize, src: &[u8], dst: &mut [u8]) {
        let row_bytes = width * cols;
        debug_assert_eq!(src.len(), dst.len());
        match self {
            Predictor::None => dst.copy_from_slice(src),
            Predictor::Horizontal => {
                for (src, dst) in src
                    .chunks_exact(row_bytes)
                    .zip(dst.chunks_exact_mut(row_bytes))
                {
                    match width {
                        1 => undiff_u8(src, dst),
                        2 => undiff_u16(src, dst),
                        4 => undiff_u32(src, dst),
                        8 => undiff_u64(src, dst),
                        _ => unreachable!("no {width}-byte samples"),
                    }
                }
            }
            Predictor::FloatingPoint => {
                let mut row = vec![0u8; row_bytes];
                for (src, dst) in src
                    .chunks_exact(row_bytes)
                    .zip(dst.chunks_exact_mut(row_bytes))
                {
                    let mut acc = 0u8;
                    for (r, s) in row.iter_mut().zip(src) {
                        acc = acc.wrapping_add(*s);
                        *r = acc;
                    }
                    unshuffle_row(width, cols, &row, dst);
                }
            }
        }
    }
}

/// Generates the wrapping difference and its inverse for one sample width.
macro_rules! differencing {
    ($diff:ident, $undiff:ident, $t:ty) => {
        fn $diff(src: &[u8], dst: &mut [u8]) {
            const N: usize = std::mem::size_of::<$t>();
            let mut prev: $t = 0;
            for (s, d) in src.chunks_exact(N).zip(dst.chunks_exact_mut(N)) {
                let v = <$t>::from_le_bytes(s.try_into().expect("exact chunk"));
                d.copy_from_slice(&v.wrapping_sub(prev).to_le_bytes());
                prev = v;
            }
        }

        fn $undiff(src: &[u8], dst: &mut [u8]) {
            const N: usize = std::mem::size_of::<$t>();
            let mut acc: $t = 0;
            for (s, d) in src.chunks_exact(N).zip(dst.chunks_exact_mut(N)) {
                acc = acc.wrapping_add(<$t>::from_le_bytes(s.try_into().expect("exact chunk")));
                d.copy_from_slice(&acc.to_le_bytes());
            }
        }
    };
}
differencing!(diff_u8, undiff_u8, u8);
differencing!(diff_u16, undiff_u16, u16);
differencing!(diff_u32, undiff_u32, u32);
differencing!(diff_u64, undiff_u64, u64);

/// Byte plane `k` (most significant first) of sample `i` goes to `dst[k * cols + i]`.
fn shuffle_row(width: usize, cols: usize, src: &[u8], dst: &mut [u8]) {
    for (i, sample) in src.chunks_exact(width).enumerate() {
        for k in 0..width {
            dst[k * cols + i] = sample[width - 1 - k];
        }
    }
}

fn unshuffle_row(width: usize, cols: usize, src: &[u8], dst: &mut [u8]) {
    for (i, sample) in dst.chunks_exact_mut(width).enumerate() {
        for k in 0..width {
            sample[width - 1 - k] = src[k * cols + i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(p: Predictor, width: usize, cols: usize, plane: &[u8]) -> Vec<u8> {
        let mut enc = Vec::new();
        p.encode(width, cols, plane, &mut enc);
        assert_eq!(enc.len(), plane.len());
        let mut dec = vec![0u8; plane.len()];
        p.decode(width, cols, &enc, &mut dec);
        dec
    }

    proptest! {
        #[test]
        fn every_predictor_and_width_round_trips(
            width in prop::sample::select(vec![1usize, 2, 4, 8]),
            cols in 1usize..40, rows in 1usize..6, seed in any::<u64>()) {
            let mut x = seed;
            let plane: Vec<u8> = (0..width * cols * rows).map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 56) as u8
            }).collect();
            for p in [Predictor::None, Predictor::Horizontal, Predictor::FloatingPoint] {
                prop_assert_eq!(round_trip(p, width, cols, &plane), plane.clone());
            }
        }
    }

    #[test]
    fn horizontal_differences_wrap_per_sample() {
        let plane: Vec<u8> = [1000u16, 1003, 999, 65535]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut enc = Vec::new();
        Predictor::Horizontal.encode(2, 4, &plane, &mut enc);
        let words: Vec<u16> = enc
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(words, vec![1000, 3, 65532, 64536]);
    }

    #[test]
    fn floating_point_predictor_zeroes_smooth_rows() {
        let plane: Vec<u8> = (0..64).flat_map(|_| 1234.5f32.to_le_bytes()).collect();
        let mut enc = Vec::new();
        Predictor::FloatingPoint.encode(4, 64, &plane, &mut enc);
        // A constant row becomes the first byte of each plane followed by zeros.
        assert!(enc.iter().filter(|b| **b != 0).count() <= 4);
    }

    #[test]
    fn options() {
        assert_eq!(
            Predictor::from_option("YES", DataType::Float32).unwrap(),
            Predictor::FloatingPoint
        );
        assert_eq!(
            Predictor::from_option("YES", DataType::Int16).unwrap(),
            Predictor::Horizontal
        );
        let e = Predictor::from_option("FLOATING_POINT", DataType::Byte).unwrap_err();
        assert!(e.to_string().contains("Float32"), "{e}");
        assert!(Predictor::from_option("MAYBE", DataType::Byte).is_err());
    }
}
