//! Byte-level compression of chunk payloads, and the predictors that make samples compress
//! well.
//!
//! Each codec lives in its own module behind the same two functions; [`Compression`] names
//! them in the manifest and in chunk headers.

mod deflate;
mod lz4;
pub mod predictor;
mod zstd;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use predictor::Predictor;

/// A byte compressor. The numeric codes are stored in chunk headers and must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Zstd,
    Deflate,
    Lz4,
}

impl Compression {
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
            Compression::Deflate => 2,
            Compression::Lz4 => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Compression> {
        Some(match code {
            0 => Compression::None,
            1 => Compression::Zstd,
            2 => Compression::Deflate,
            3 => Compression::Lz4,
            _ => return None,
        })
    }

    /// Parses a GDAL-style `COMPRESS=` value.
    pub fn from_option(value: &str) -> Result<Compression> {
        Ok(match value.to_ascii_uppercase().as_str() {
            "NONE" => Compression::None,
            "ZSTD" => Compression::Zstd,
            "DEFLATE" => Compression::Deflate,
            "LZ4" => Compression::Lz4,
            _ => {
                return Err(Error::option(
                    "COMPRESS",
                    value,
                    "one of ZSTD, DEFLATE, LZ4, NONE",
                ))
            }
        })
    }

    pub fn option_name(self) -> &'static str {
        match self {
            Compression::None => "NONE",
            Compression::Zstd => "ZSTD",
            Compression::Deflate => "DEFLATE",
            Compression::Lz4 => "LZ4",
        }
    }

    /// The level used when none is given: fast enough to keep ingest I/O-bound.
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Zstd => zstd::DEFAULT_LEVEL,
            Compression::Deflate => deflate::DEFAULT_LEVEL,
            Compression::None | Compression::Lz4 => 0,
        }
    }

    /// Accepted `LEVEL=` values, or `None` when the codec has no levels.
    pub fn level_range(self) -> Option<(i32, i32)> {
        match self {
            Compression::Zstd => Some(zstd::LEVELS),
            Compression::Deflate => Some(deflate::LEVELS),
            Compression::None | Compression::Lz4 => None,
        }
    }

    pub fn check_level(self, level: i32) -> Result<()> {
        match self.level_range() {
            Some((lo, hi)) if (lo..=hi).contains(&level) => Ok(()),
            Some((lo, hi)) => Err(Error::option(
                "LEVEL",
                level.to_string(),
                format!("{} accepts levels {lo} to {hi}", self.option_name()),
            )),
            None => Ok(()),
        }
    }

    /// Appends the compressed form of `raw` to `out`.
    pub fn compress(self, level: i32, raw: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match self {
            Compression::None => {
                out.extend_from_slice(raw);
                Ok(())
            }
            Compression::Zstd => zstd::compress(level, raw, out),
            Compression::Deflate => deflate::compress(level, raw, out),
            Compression::Lz4 => lz4::compress(raw, out),
        }
    }

    /// The longest stream this codec makes of `raw_len` bytes, whatever they hold: a stored
    /// stream longer than this for what it must decode to was not written by it, and is
    /// refused before anything is allocated for it.
    pub fn max_encoded_len(self, raw_len: usize) -> usize {
        match self {
            Compression::None => raw_len,
            Compression::Zstd => zstd::max_encoded_len(raw_len),
            Compression::Deflate => deflate::max_encoded_len(raw_len),
            Compression::Lz4 => lz4::max_encoded_len(raw_len),
        }
    }

    /// Decompresses `packed` into `out`, which must be exactly the uncompressed size. A
    /// stream that does not fill `out` exactly is an error (`detail` says how), and so is
    /// one that holds more: nothing beyond `out` is ever decoded or allocated.
    pub fn decompress(self, packed: &[u8], out: &mut [u8]) -> std::result::Result<(), String> {
        match self {
            Compression::None => {
                if packed.len() != out.len() {
                    return Err(format!(
                        "payload holds {} bytes, expected {}",
                        packed.len(),
                        out.len()
                    ));
                }
                out.copy_from_slice(packed);
                Ok(())
            }
            Compression::Zstd => zstd::decompress(packed, out),
            Compression::Deflate => deflate::decompress(packed, out),
            Compression::Lz4 => lz4::decompress(packed, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Compression; 4] = [
        Compression::None,
        Compression::Zstd,
        Compression::Deflate,
        Compression::Lz4,
    ];

    proptest! {
        #[test]
        fn every_codec_round_trips(data in prop::collection::vec(any::<u8>(), 0..5000),
                                   repeat in 1usize..4) {
            let raw: Vec<u8> = data.iter().cycle().take(data.len() * repeat).copied().collect();
            for c in ALL {
                let mut packed = Vec::new();
                c.compress(c.default_level(), &raw, &mut packed).unwrap();
                let mut back = vec![0u8; raw.len()];
                c.decompress(&packed, &mut back).unwrap();
                prop_assert_eq!(&back, &raw);
            }
        }
    }

    proptest! {
        #[test]
        fn no_stream_is_longer_than_its_codec_bound(data in prop::collection::vec(any::<u8>(), 0..70_000)) {
            // Random bytes do not compress: the worst case each bound must cover.
            for c in ALL {
                let mut packed = Vec::new();
                c.compress(c.default_level(), &data, &mut packed).unwrap();
                prop_assert!(packed.len() <= c.max_encoded_len(data.len()), "{:?}", c);
            }
        }
    }

    /// A stream that decodes to more than the caller expects (a "zip bomb": a few bytes
    /// that expand to gigabytes) is an error, not a larger buffer.
    #[test]
    fn a_stream_that_decodes_to_more_than_expected_is_an_error() {
        let raw = vec![0u8; 1 << 20];
        for c in ALL {
            let mut packed = Vec::new();
            c.compress(c.default_level(), &raw, &mut packed).unwrap();
            for expected in [raw.len() - 1, 1000, 0] {
                let mut out = vec![0u8; expected];
                let e = c.decompress(&packed, &mut out);
                assert!(e.is_err(), "{c:?} into {expected} bytes");
            }
        }
    }

    #[test]
    fn a_stream_that_decodes_to_less_than_expected_is_an_error() {
        let raw = vec![5u8; 4096];
        for c in ALL {
            let mut packed = Vec::new();
            c.compress(c.default_level(), &raw, &mut packed).unwrap();
            let mut out = vec![0u8; raw.len() + 1];
            assert!(c.decompress(&packed, &mut out).is_err(), "{c:?}");
        }
    }

    #[test]
    fn a_truncated_stream_is_an_error_not_garbage() {
        let raw: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for c in ALL {
            let mut packed = Vec::new();
            c.compress(c.default_level(), &raw, &mut packed).unwrap();
            packed.truncate(packed.len() / 2);
            let mut back = vec![0u8; raw.len()];
            assert!(c.decompress(&packed, &mut back).is_err(), "{c:?}");
        }
    }

    #[test]
    fn options_parse_and_levels_are_checked() {
        assert_eq!(Compression::from_option("zstd").unwrap(), Compression::Zstd);
        assert!(Compression::from_option("JPEG")
            .unwrap_err()
            .to_string()
            .contains("ZSTD, DEFLATE"));
        assert!(Compression::Zstd.check_level(30).is_err());
        assert!(Compression::Deflate.check_level(9).is_ok());
        for c in ALL {
            assert_eq!(Compression::from_code(c.code()), Some(c));
        }
    }
}
