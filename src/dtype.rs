//! Sample data types a store can hold, and the [`Sample`] trait that lets the codecs and the
//! aggregators be written once for all of them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The data types of GDAL that gridstore stores. Names follow GDAL (`Byte`, `UInt16`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Byte,
    UInt16,
    Int16,
    UInt32,
    Int32,
    Float32,
    Float64,
}

impl DataType {
    pub const ALL: [DataType; 7] = [
        DataType::Byte,
        DataType::UInt16,
        DataType::Int16,
        DataType::UInt32,
        DataType::Int32,
        DataType::Float32,
        DataType::Float64,
    ];

    /// Bytes per sample.
    pub fn size(self) -> usize {
        match self {
            DataType::Byte => 1,
            DataType::UInt16 | DataType::Int16 => 2,
            DataType::UInt32 | DataType::Int32 | DataType::Float32 => 4,
            DataType::Float64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::Float32 | DataType::Float64)
    }

    /// Whether a sample of this type can hold `value` (a nodata value, say). Integer types
    /// hold no fraction, NaN or value out of their range (such as -1 for Byte, common as
    /// nodata in real files); float types hold any value.
    pub fn can_hold(self, value: f64) -> bool {
        let (lo, hi) = match self {
            DataType::Byte => (0.0, u8::MAX as f64),
            DataType::UInt16 => (0.0, u16::MAX as f64),
            DataType::Int16 => (i16::MIN as f64, i16::MAX as f64),
            DataType::UInt32 => (0.0, u32::MAX as f64),
            DataType::Int32 => (i32::MIN as f64, i32::MAX as f64),
            DataType::Float32 | DataType::Float64 => return true,
        };
        value.fract() == 0.0 && (lo..=hi).contains(&value)
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::Byte => "Byte",
            DataType::UInt16 => "UInt16",
            DataType::Int16 => "Int16",
            DataType::UInt32 => "UInt32",
            DataType::Int32 => "Int32",
            DataType::Float32 => "Float32",
            DataType::Float64 => "Float64",
        }
    }

    /// The numeric code of the matching `GDALDataType`.
    pub fn gdal_code(self) -> u32 {
        match self {
            DataType::Byte => 1,
            DataType::UInt16 => 2,
            DataType::Int16 => 3,
            DataType::UInt32 => 4,
            DataType::Int32 => 5,
            DataType::Float32 => 6,
            DataType::Float64 => 7,
        }
    }

    /// Maps a `GDALDataType` code to a storable type, with a message naming the way out for
    /// the types a store cannot hold.
    pub fn from_gdal_code(code: u32) -> Result<DataType> {
        Ok(match code {
            1 => DataType::Byte,
            2 => DataType::UInt16,
            3 => DataType::Int16,
            4 => DataType::UInt32,
            5 => DataType::Int32,
            6 => DataType::Float32,
            7 => DataType::Float64,
            8..=11 => {
                return Err(Error::NotSupported(format!(
                    "complex data type {} cannot be stored in a gridstore; convert it first, \
                     for example with gdal_translate -ot Float32 (keeps the real part)",
                    gdal_type_name(code)
                )))
            }
            12 | 13 => {
                return Err(Error::NotSupported(format!(
                    "64-bit integer data type {} cannot be stored in a gridstore; convert it \
                     with gdal_translate -ot Float64 or -ot Int32",
                    gdal_type_name(code)
                )))
            }
            _ => {
                return Err(Error::NotSupported(format!(
                    "data type {} cannot be stored in a gridstore; supported: Byte, UInt16, \
                     Int16, UInt32, Int32, Float32, Float64",
                    gdal_type_name(code)
                )))
            }
        })
    }

    pub fn from_name(name: &str) -> Result<DataType> {
        DataType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::option(
                    "data type",
                    name,
                    "one of Byte, UInt16, Int16, UInt32, Int32, Float32, Float64",
                )
            })
    }

    /// True when every value of `self` is exactly representable in `wider`.
    pub fn fits_in(self, wider: DataType) -> bool {
        use DataType::*;
        match (self, wider) {
            (a, b) if a == b => true,
            (Byte, UInt16 | Int16 | UInt32 | Int32 | Float32 | Float64) => true,
            (UInt16, UInt32 | Int32 | Float32 | Float64) => true,
            (Int16, Int32 | Float32 | Float64) => true,
            (UInt32 | Int32, Float64) => true,
            (Float32, Float64) => true,
            _ => false,
        }
    }
}

pub fn gdal_type_name(code: u32) -> &'static str {
    match code {
        0 => "Unknown",
        8 => "CInt16",
        9 => "CInt32",
        10 => "CFloat32",
        11 => "CFloat64",
        12 => "UInt64",
        13 => "Int64",
        14 => "Int8",
        _ => "(unknown)",
    }
}

/// A sample type: the Rust type behind one [`DataType`].
///
/// The conversions to and from `f64` are exact for every type (a `u32`/`i32` fits in the
/// 53-bit mantissa), which is what lets the aggregators compute in `f64` and round once.
pub trait Sample:
    Copy + Default + PartialEq + PartialOrd + std::fmt::Debug + Send + Sync + bytemuck::Pod + 'static
{
    const TYPE: DataType;
    fn to_f64(self) -> f64;
    /// Converts a value computed in `f64` back, rounding to nearest (ties away from zero) and
    /// clamping to the type's range for integers.
    fn from_f64_round(v: f64) -> Self;
    /// NaN for float types; never true for integers.
    fn is_nan(self) -> bool;
    /// The mean of four samples, rounded as [`Sample::from_f64_round`] rounds: the fast
    /// path of the average when all four children hold data.
    fn mean4(a: Self, b: Self, c: Self, d: Self) -> Self;
    /// Bit pattern as an unsigned integer of the same width, for the horizontal predictor.
    fn to_bits_u64(self) -> u64;
    fn from_bits_u64(bits: u64) -> Self;
}

macro_rules! impl_int_sample {
    ($t:ty, $dt:expr, $ut:ty) => {
        impl Sample for $t {
            const TYPE: DataType = $dt;
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f64_round(v: f64) -> Self {
                // Round half away from zero without a libm call: truncate, then step by one
                // when the remainder reaches a half. NaN truncates to 0.
                let t = v as i64;
                let frac = v - t as f64;
                let r = if frac >= 0.5 {
                    t.saturating_add(1)
                } else if frac <= -0.5 {
                    t.saturating_sub(1)
                } else {
                    t
                };
                r.clamp(<$t>::MIN as i64, <$t>::MAX as i64) as $t
            }
            #[inline]
            fn mean4(a: Self, b: Self, c: Self, d: Self) -> Self {
                // Exact in integers: (s + 2) / 4 rounds half up for s >= 0, and the mirror
                // image below zero rounds half down, i.e. half away from zero throughout.
                let s = a as i64 + b as i64 + c as i64 + d as i64;
                (if s >= 0 {
                    (s + 2) >> 2
                } else {
                    -((2 - s) >> 2)
                }) as $t
            }
            #[inline]
            fn is_nan(self) -> bool {
                false
            }
            #[inline]
            fn to_bits_u64(self) -> u64 {
                self as $ut as u64
            }
            #[inline]
            fn from_bits_u64(bits: u64) -> Self {
                bits as $ut as $t
            }
        }
    };
}

impl_int_sample!(u8, DataType::Byte, u8);
impl_int_sample!(u16, DataType::UInt16, u16);
impl_int_sample!(i16, DataType::Int16, u16);
impl_int_sample!(u32, DataType::UInt32, u32);
impl_int_sample!(i32, DataType::Int32, u32);

impl Sample for f32 {
    const TYPE: DataType = DataType::Float32;
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn from_f64_round(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    #[inline]
    fn mean4(a: Self, b: Self, c: Self, d: Self) -> Self {
        ((a as f64 + b as f64 + c as f64 + d as f64) / 4.0) as f32
    }
    #[inline]
    fn to_bits_u64(self) -> u64 {
        self.to_bits() as u64
    }
    #[inline]
    fn from_bits_u64(bits: u64) -> Self {
        f32::from_bits(bits as u32)
    }
}

impl Sample for f64 {
    const TYPE: DataType = DataType::Float64;
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64_round(v: f64) -> Self {
        v
    }
    #[inline]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    #[inline]
    fn mean4(a: Self, b: Self, c: Self, d: Self) -> Self {
        (a + b + c + d) / 4.0
    }
    #[inline]
    fn to_bits_u64(self) -> u64 {
        self.to_bits()
    }
    #[inline]
    fn from_bits_u64(bits: u64) -> Self {
        f64::from_bits(bits)
    }
}

/// Runs `$body` with `$T` bound to the Rust sample type of `$dtype`.
#[macro_export]
macro_rules! with_sample_type {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::dtype::DataType::Byte => {
                type $T = u8;
                $body
            }
            $crate::dtype::DataType::UInt16 => {
                type $T = u16;
                $body
            }
            $crate::dtype::DataType::Int16 => {
                type $T = i16;
                $body
            }
            $crate::dtype::DataType::UInt32 => {
                type $T = u32;
                $body
            }
            $crate::dtype::DataType::Int32 => {
                type $T = i32;
                $body
            }
            $crate::dtype::DataType::Float32 => {
                type $T = f32;
                $body
            }
            $crate::dtype::DataType::Float64 => {
                type $T = f64;
                $body
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdal_codes_round_trip() {
        for t in DataType::ALL {
            assert_eq!(DataType::from_gdal_code(t.gdal_code()).unwrap(), t);
            assert_eq!(DataType::from_name(t.name()).unwrap(), t);
        }
    }

    #[test]
    fn complex_and_64bit_types_are_refused_with_a_way_out() {
        let e = DataType::from_gdal_code(10).unwrap_err().to_string();
        assert!(e.contains("CFloat32") && e.contains("-ot"), "{e}");
        let e = DataType::from_gdal_code(13).unwrap_err().to_string();
        assert!(e.contains("Int64") && e.contains("-ot"), "{e}");
    }

    #[test]
    fn rounding_is_half_away_from_zero_and_clamped() {
        assert_eq!(u8::from_f64_round(2.5), 3);
        assert_eq!(i16::from_f64_round(-2.5), -3);
        assert_eq!(u8::from_f64_round(300.0), 255);
        assert_eq!(i16::from_f64_round(-1e9), i16::MIN);
    }

    #[test]
    fn integer_mean_of_four_matches_rounding_in_f64() {
        for (a, b, c, d) in [
            (1i16, 2, 2, 2),
            (-1, -2, -2, -2),
            (0, 0, 1, 1),
            (0, 0, -1, -1),
            (-3, 3, 5, 7),
        ] {
            let want = i16::from_f64_round((a as f64 + b as f64 + c as f64 + d as f64) / 4.0);
            assert_eq!(i16::mean4(a, b, c, d), want, "{a} {b} {c} {d}");
        }
        assert_eq!(u8::mean4(255, 255, 255, 254), 255);
        assert_eq!(i32::mean4(i32::MIN, i32::MIN, i32::MIN, i32::MIN), i32::MIN);
    }

    #[test]
    fn bit_patterns_round_trip() {
        assert_eq!(i16::from_bits_u64((-5i16).to_bits_u64()), -5);
        assert_eq!(f32::from_bits_u64(1.5f32.to_bits_u64()), 1.5);
        assert_eq!(i32::from_bits_u64(i32::MIN.to_bits_u64()), i32::MIN);
    }
}
