//! The chunk object: one tile of one level, all bands, compressed, with a checksum.
//!
//! Layout (all integers little-endian; see docs/FORMAT.md):
//!
//! ```text
//! offset size  field
//!   0     4    magic "GSCK"
//!   4     1    chunk format version (1)
//!   5     1    compression code        (0 none, 1 zstd, 2 deflate, 3 lz4)
//!   6     1    predictor code          (0 none, 1 horizontal, 2 floating point)
//!   7     1    data type (GDALDataType code)
//!   8     2    band count
//!  10     2    flags                   (bit 0: a validity mask follows the bands)
//!  12     4    tile width in pixels
//!  16     4    tile height in pixels
//!  20     4    compressed payload length
//!  24     4    reserved, zero
//!  28     n    payload
//! 28+n    4    CRC-32C of bytes [0, 28 + n)
//! ```
//!
//! The uncompressed payload is each band's plane after the predictor, then, if flagged, the
//! mask packed one bit per pixel (row-major, least significant bit first, 1 = data).

use std::cell::RefCell;
use std::path::Path;

use crate::codec::{Compression, Predictor};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::tile::{SampleBuf, Tile};

pub const MAGIC: [u8; 4] = *b"GSCK";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 28;
pub const TRAILER_LEN: usize = 4;
const FLAG_MASK: u16 = 1;

/// How chunks are encoded; fixed per store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub compression: Compression,
    pub level: i32,
    pub predictor: Predictor,
}

thread_local! {
    // The predictor output and the decompressed payload are tile-sized; reusing one buffer
    // per thread keeps the hot path free of large allocations.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Encodes a tile into a chunk object.
pub fn encode(tile: &Tile, enc: &Encoding) -> Result<Vec<u8>> {
    let width = tile.dtype.size();
    SCRATCH.with(|scratch| {
        let mut raw = scratch.borrow_mut();
        raw.clear();
        for b in 0..tile.bands {
            enc.predictor
                .encode(width, tile.size, tile.band_bytes(b), &mut raw);
        }
        if let Some(mask) = &tile.mask {
            pack_bits(mask, &mut raw);
        }
        let mut out = Vec::with_capacity(HEADER_LEN + raw.len() / 2);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(enc.compression.code());
        out.push(enc.predictor.code());
        out.push(tile.dtype.gdal_code() as u8);
        out.extend_from_slice(&(tile.bands as u16).to_le_bytes());
        let flags = if tile.mask.is_some() { FLAG_MASK } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&(tile.size as u32).to_le_bytes());
        out.extend_from_slice(&(tile.size as u32).to_le_bytes());
        out.extend_from_slice(&[0u8; 8]); // payload length, reserved: filled below
        enc.compression.compress(enc.level, &raw, &mut out)?;
        let payload_len = (out.len() - HEADER_LEN) as u32;
        out[20..24].copy_from_slice(&payload_len.to_le_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    })
}

/// The CRC-32C a chunk object carries in its trailer (also kept in the tile index).
pub fn stored_checksum(object: &[u8]) -> Option<u32> {
    let tail = object.get(object.len().checked_sub(TRAILER_LEN)?..)?;
    Some(u32::from_le_bytes(tail.try_into().ok()?))
}

/// What a reader expects of a chunk: the store's data type, band count and tile size.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub dtype: DataType,
    pub bands: usize,
    pub size: usize,
}

/// Decodes a chunk object, checking its checksum and that it matches the store. `path` is
/// only used in error messages.
pub fn decode(object: &[u8], expected: &Expected, path: &Path) -> Result<Tile> {
    let n = expected.size * expected.size;
    let mut data = SampleBuf::zeroed(n * expected.bands * expected.dtype.size());
    let mut mask = vec![0u8; n];
    let has_mask = decode_into(object, expected, path, data.bytes_mut(), Some(&mut mask))?;
    Ok(Tile {
        dtype: expected.dtype,
        bands: expected.bands,
        size: expected.size,
        data,
        mask: has_mask.then_some(mask),
    })
}

/// Decodes a chunk straight into caller buffers: `data` takes the bands (band-sequential,
/// tile-sized planes) and `mask`, if given, the validity mask (all 255 when the chunk has
/// none). Returns whether the chunk carries a mask.
pub fn decode_into(
    object: &[u8],
    expected: &Expected,
    path: &Path,
    data: &mut [u8],
    mask: Option<&mut [u8]>,
) -> Result<bool> {
    let bad = |detail: String| Error::corrupt(path, detail);
    if object.len() < HEADER_LEN + TRAILER_LEN {
        return Err(bad(format!(
            "chunk is truncated ({} bytes, a chunk has at least {})",
            object.len(),
            HEADER_LEN + TRAILER_LEN
        )));
    }
    if object[0..4] != MAGIC {
        return Err(bad("not a gridstore chunk (bad magic bytes)".into()));
    }
    let body = &object[..object.len() - TRAILER_LEN];
    let want = stored_checksum(object).expect("length checked above");
    let got = crc32c::crc32c(body);
    if want != got {
        return Err(bad(format!(
            "chunk checksum mismatch (stored {want:08x}, computed {got:08x}): the chunk was \
             changed or truncated after it was written"
        )));
    }
    if object[4] != VERSION {
        return Err(Error::NotSupported(format!(
            "{}: chunk format version {} is newer than this build supports ({VERSION}); \
             upgrade gridstore",
            path.display(),
            object[4]
        )));
    }
    let compression = Compression::from_code(object[5])
        .ok_or_else(|| bad(format!("unknown compression code {}", object[5])))?;
    let predictor = Predictor::from_code(object[6])
        .ok_or_else(|| bad(format!("unknown predictor code {}", object[6])))?;
    let dtype = DataType::from_gdal_code(object[7] as u32)
        .map_err(|_| bad(format!("unknown data type code {}", object[7])))?;
    let bands = u16::from_le_bytes([object[8], object[9]]) as usize;
    let flags = u16::from_le_bytes([object[10], object[11]]);
    let w = u32::from_le_bytes(object[12..16].try_into().expect("4 bytes")) as usize;
    let h = u32::from_le_bytes(object[16..20].try_into().expect("4 bytes")) as usize;
    let payload_len = u32::from_le_bytes(object[20..24].try_into().expect("4 bytes")) as usize;
    if dtype != expected.dtype
        || bands != expected.bands
        || w != expected.size
        || h != expected.size
    {
        return Err(bad(format!(
            "chunk holds {bands} band(s) of {} at {w}x{h}, but the store has {} band(s) of {} \
             at {}x{}",
            dtype.name(),
            expected.bands,
            expected.dtype.name(),
            expected.size,
            expected.size
        )));
    }
    if HEADER_LEN + payload_len != body.len() {
        return Err(bad(format!(
            "payload length {payload_len} does not match the object size {}",
            object.len()
        )));
    }
    let has_mask = flags & FLAG_MASK != 0;
    let n = w * h;
    let plane_len = n * dtype.size();
    assert_eq!(data.len(), plane_len * bands, "tile-sized output buffer");
    let raw_len = plane_len * bands + if has_mask { n.div_ceil(8) } else { 0 };
    SCRATCH.with(|scratch| {
        let mut raw = scratch.borrow_mut();
        raw.clear();
        raw.resize(raw_len, 0);
        compression
            .decompress(&body[HEADER_LEN..], &mut raw)
            .map_err(|e| bad(format!("payload does not decompress: {e}")))?;
        for (src, dst) in raw[..plane_len * bands]
            .chunks_exact(plane_len)
            .zip(data.chunks_exact_mut(plane_len))
        {
            predictor.decode(dtype.size(), w, src, dst);
        }
        if let Some(mask) = mask {
            if has_mask {
                unpack_bits(&raw[plane_len * bands..], mask);
            } else {
                mask.fill(255);
            }
        }
        Ok(has_mask)
    })
}

fn pack_bits(mask: &[u8], out: &mut Vec<u8>) {
    for chunk in mask.chunks(8) {
        let mut byte = 0u8;
        for (i, m) in chunk.iter().enumerate() {
            if *m != 0 {
                byte |= 1 << i;
            }
        }
        out.push(byte);
    }
}

fn unpack_bits(bits: &[u8], out: &mut [u8]) {
    for (i, m) in out.iter_mut().enumerate() {
        *m = if bits[i / 8] & (1 << (i % 8)) != 0 {
            255
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Sample;
    use crate::tile::BandValidity;
    use crate::with_sample_type;
    use proptest::prelude::*;

    fn random_tile(dtype: DataType, bands: usize, size: usize, seed: u64, mask: bool) -> Tile {
        let v: Vec<BandValidity> = (0..bands).map(|_| BandValidity { nodata: None }).collect();
        let mut t = Tile::empty(dtype, &v, size);
        let mut x = seed | 1;
        with_sample_type!(dtype, T => {
            for (i, s) in t.data.typed_mut::<T>().iter_mut().enumerate() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                // Mix smooth and noisy values so the predictors see both.
                let smooth = (i % size) as f64 * 0.5 + (i / size) as f64;
                *s = T::from_f64_round(if x % 3 == 0 { (x % 200) as f64 } else { smooth });
            }
        });
        t.mask = mask.then(|| {
            (0..size * size)
                .map(|i| if i % 7 == 0 { 0 } else { 255 })
                .collect()
        });
        t
    }

    fn expected(t: &Tile) -> Expected {
        Expected {
            dtype: t.dtype,
            bands: t.bands,
            size: t.size,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_type_codec_and_predictor_round_trips(
            dtype in prop::sample::select(DataType::ALL.to_vec()),
            compression in prop::sample::select(vec![Compression::None, Compression::Zstd,
                                                     Compression::Deflate, Compression::Lz4]),
            predictor in prop::sample::select(vec![Predictor::None, Predictor::Horizontal,
                                                   Predictor::FloatingPoint]),
            bands in 1usize..4, seed in any::<u64>(), mask in any::<bool>()) {
            let tile = random_tile(dtype, bands, 16, seed, mask);
            let enc = Encoding { compression, level: compression.default_level(), predictor };
            let obj = encode(&tile, &enc).unwrap();
            let back = decode(&obj, &expected(&tile), Path::new("t")).unwrap();
            prop_assert_eq!(back, tile);
        }

        #[test]
        fn any_flipped_byte_is_detected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let tile = random_tile(DataType::Float32, 2, 32, 7, true);
            let enc = Encoding { compression: Compression::Zstd, level: 3,
                                 predictor: Predictor::FloatingPoint };
            let mut obj = encode(&tile, &enc).unwrap();
            let i = pos.index(obj.len());
            obj[i] ^= 1 << bit;
            prop_assert!(decode(&obj, &expected(&tile), Path::new("t")).is_err());
        }
    }

    #[test]
    fn truncation_is_reported_as_corruption() {
        let tile = random_tile(DataType::UInt16, 1, 64, 3, false);
        let enc = Encoding {
            compression: Compression::Zstd,
            level: 3,
            predictor: Predictor::Horizontal,
        };
        let obj = encode(&tile, &enc).unwrap();
        for cut in [0, 10, obj.len() / 2, obj.len() - 1] {
            let e = decode(&obj[..cut], &expected(&tile), Path::new("c/0/0")).unwrap_err();
            assert!(
                e.to_string().contains("c/0/0") && e.to_string().contains("damaged"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_chunk_of_another_shape_is_refused() {
        let tile = random_tile(DataType::Byte, 3, 16, 1, false);
        let enc = Encoding {
            compression: Compression::Lz4,
            level: 0,
            predictor: Predictor::None,
        };
        let obj = encode(&tile, &enc).unwrap();
        let mut other = expected(&tile);
        other.bands = 2;
        assert!(decode(&obj, &other, Path::new("x")).is_err());
    }
}
