//! The chunk object: one tile of one level, all bands, compressed, with a checksum.
//!
//! Layout (all integers little-endian; see docs/FORMAT.md §5):
//!
//! ```text
//! offset size  field
//!   0     4    magic "GSCK"
//!   4     1    chunk format version (2; version 1 is still read)
//!   5     1    compression code        (0 none, 1 zstd, 2 deflate, 3 lz4)
//!   6     1    predictor code          (0 none, 1 horizontal, 2 floating point)
//!   7     1    data type (GDALDataType code)
//!   8     2    band count
//!  10     2    flags                   (bit 0: a validity mask follows the bands)
//!  12     4    tile width in pixels
//!  16     4    tile height in pixels
//!  20     4    payload length n
//!  24     2    rows per strip R        (version 1: reserved, zero)
//!  26     2    reserved, zero
//!  28     n    payload
//! 28+n    4    CRC-32C of bytes [0, 28 + n)
//! ```
//!
//! A version 2 payload is a table of frame lengths (one u32 per frame) followed by the
//! frames: each band cut into strips of R rows (the last may be shorter), every strip
//! compressed on its own after the predictor, band after band; then, if flagged, one frame
//! with the mask packed one bit per pixel (row-major, least significant bit first, 1 =
//! data). Decompressed and concatenated, the frames are the version 1 payload, which is one
//! compressed stream.
//!
//! Strips are what make a level update cheap: a parent whose change is confined to some
//! rows re-encodes only the strips of those rows and copies the others as they are
//! ([`encode_reusing`]), and decodes only the strips it needs ([`Chunk::decode_rows_into`]).

use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;

use crate::codec::{Compression, Predictor};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::tile::{SampleBuf, Tile};

pub const MAGIC: [u8; 4] = *b"GSCK";
/// The version this build writes.
pub const VERSION: u8 = 2;
/// The first version: one compressed stream, no strips. Still read.
const VERSION_1: u8 = 1;
pub const HEADER_LEN: usize = 28;
pub const TRAILER_LEN: usize = 4;
const FLAG_MASK: u16 = 1;
/// Uncompressed bytes a strip of one band aims at: large enough to compress as well as a
/// whole tile, small enough that a change of a few rows re-encodes little else.
#[cfg(not(test))]
const STRIP_TARGET_BYTES: usize = 64 << 10;
/// Strips are never thinner than this (an even number: strip edges must stay on even rows,
/// which aggregation pairs).
#[cfg(not(test))]
const MIN_STRIP_ROWS: usize = 16;
// Unit tests use tiles of 16 to 64 pixels: tiny strips give them several strips per tile,
// so that the strip logic, not only the one-strip case, is what they test.
#[cfg(test)]
const STRIP_TARGET_BYTES: usize = 64;
#[cfg(test)]
const MIN_STRIP_ROWS: usize = 2;

/// How chunks are encoded; fixed per store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub compression: Compression,
    pub level: i32,
    pub predictor: Predictor,
}

/// The rows per strip a writer uses for tiles of `size` pixels with samples of
/// `sample_size` bytes: a power of two, at least 16, at most the tile.
pub fn strip_rows(size: usize, sample_size: usize) -> usize {
    let rows = (STRIP_TARGET_BYTES / (size * sample_size).max(1)).max(1);
    rows.next_power_of_two().clamp(MIN_STRIP_ROWS, size.max(1))
}

thread_local! {
    // The predictor output and the decompressed strips are reused per thread, which keeps
    // the hot path free of large allocations.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Encodes a tile into a chunk object.
pub fn encode(tile: &Tile, enc: &Encoding) -> Result<Vec<u8>> {
    encode_reusing(tile, enc, None)
}

/// Encodes a tile, copying from `reuse` = (`old`, `changed`) the compressed strips that lie
/// wholly outside the rows `changed`: the caller vouches that the tile equals `old` there.
/// Strips are copied only when [`Chunk::strips_reusable`] says so; otherwise the whole tile
/// is encoded, so a caller that decoded only part of `old` must check that first. The
/// result is the same, byte for byte, as [`encode`].
pub fn encode_reusing(
    tile: &Tile,
    enc: &Encoding,
    reuse: Option<(&Chunk<'_>, Range<usize>)>,
) -> Result<Vec<u8>> {
    let width = tile.dtype.size();
    let rows = strip_rows(tile.size, width);
    let strips = tile.size.div_ceil(rows);
    let reuse = reuse.filter(|(old, _)| {
        old.strips_reusable(enc)
            && (old.size, old.bands, old.dtype) == (tile.size, tile.bands, tile.dtype)
    });
    let frames = tile.bands * strips + usize::from(tile.mask.is_some());
    let mut out = Vec::with_capacity(HEADER_LEN + 4 * frames + tile.data.len() / 2);
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
    out.extend_from_slice(&[0u8; 4]); // payload length: filled below
    out.extend_from_slice(&(rows as u16).to_le_bytes());
    out.extend_from_slice(&[0u8; 2]);
    let table = out.len();
    out.resize(table + 4 * frames, 0);
    let row_bytes = tile.size * width;
    SCRATCH.with(|scratch| -> Result<()> {
        let mut raw = scratch.borrow_mut();
        for b in 0..tile.bands {
            let plane = tile.band_bytes(b);
            for s in 0..strips {
                let r = s * rows..((s + 1) * rows).min(tile.size);
                let start = out.len();
                let kept = reuse.as_ref().filter(|(_, changed)| !overlaps(&r, changed));
                match kept {
                    Some((old, _)) => out.extend_from_slice(old.frame(b * strips + s)),
                    None => {
                        raw.clear();
                        let bytes = &plane[r.start * row_bytes..r.end * row_bytes];
                        enc.predictor.encode(width, tile.size, bytes, &mut raw);
                        enc.compression.compress(enc.level, &raw, &mut out)?;
                    }
                }
                set_frame_len(&mut out, table, b * strips + s, start);
            }
        }
        if let Some(mask) = &tile.mask {
            raw.clear();
            pack_bits(mask, &mut raw);
            let start = out.len();
            enc.compression.compress(enc.level, &raw, &mut out)?;
            set_frame_len(&mut out, table, frames - 1, start);
        }
        Ok(())
    })?;
    let payload_len = u32::try_from(out.len() - HEADER_LEN)
        .map_err(|_| Error::InvalidInput("a tile compresses to more than 4 GiB".into()))?;
    out[20..24].copy_from_slice(&payload_len.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Records in the frame table that frame `frame` runs from `start` to the end of `out`.
fn set_frame_len(out: &mut [u8], table: usize, frame: usize, start: usize) {
    let len = out.len() - start;
    let at = table + 4 * frame;
    out[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
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
    let chunk = Chunk::parse(object, expected, path)?;
    chunk.decode_rows_into(0..expected.size, data, mask)?;
    Ok(chunk.has_mask)
}

/// A chunk object whose checksum, header and frame table have been checked.
pub struct Chunk<'a> {
    object: &'a [u8],
    path: &'a Path,
    version: u8,
    compression: Compression,
    predictor: Predictor,
    dtype: DataType,
    bands: usize,
    size: usize,
    has_mask: bool,
    /// Rows per strip; a version 1 chunk is one strip holding everything, mask included.
    strip_rows: usize,
    /// Where each frame lies in `object`.
    frames: Vec<Range<usize>>,
}

impl<'a> Chunk<'a> {
    /// Checks a chunk object against its checksum and the store (`path` is only used in
    /// error messages).
    pub fn parse(object: &'a [u8], expected: &Expected, path: &'a Path) -> Result<Chunk<'a>> {
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
                "chunk checksum mismatch (stored {want:08x}, computed {got:08x}): the chunk \
                 was changed or truncated after it was written"
            )));
        }
        let version = object[4];
        if version > VERSION {
            return Err(Error::NotSupported(format!(
                "{}: chunk format version {version} is newer than this build supports \
                 ({VERSION}); upgrade gridstore",
                path.display(),
            )));
        }
        if version < VERSION_1 {
            return Err(bad(format!("unknown chunk format version {version}")));
        }
        let compression = Compression::from_code(object[5])
            .ok_or_else(|| bad(format!("unknown compression code {}", object[5])))?;
        let predictor = Predictor::from_code(object[6])
            .ok_or_else(|| bad(format!("unknown predictor code {}", object[6])))?;
        let dtype = DataType::from_gdal_code(object[7] as u32)
            .map_err(|_| bad(format!("unknown data type code {}", object[7])))?;
        let u16_at = |at: usize| u16::from_le_bytes([object[at], object[at + 1]]) as usize;
        let u32_at =
            |at: usize| u32::from_le_bytes(object[at..at + 4].try_into().expect("4 bytes"));
        let bands = u16_at(8);
        let has_mask = u16_at(10) as u16 & FLAG_MASK != 0;
        let (w, h) = (u32_at(12) as usize, u32_at(16) as usize);
        let payload_len = u32_at(20) as usize;
        if dtype != expected.dtype
            || bands != expected.bands
            || w != expected.size
            || h != expected.size
        {
            return Err(bad(format!(
                "chunk holds {bands} band(s) of {} at {w}x{h}, but the store has {} band(s) \
                 of {} at {}x{}",
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
        let (strip_rows, frames) = if version == VERSION_1 {
            (w.max(1), std::iter::once(HEADER_LEN..body.len()).collect())
        } else {
            let rows = u16_at(24);
            if rows == 0 {
                return Err(bad("the chunk's strips have no rows".into()));
            }
            let count = bands * w.div_ceil(rows) + usize::from(has_mask);
            let table_end = HEADER_LEN + 4 * count;
            if table_end > body.len() {
                return Err(bad(format!(
                    "the frame table of {count} frames runs past the payload"
                )));
            }
            let mut frames = Vec::with_capacity(count);
            let mut at = table_end;
            for i in 0..count {
                let len = u32_at(HEADER_LEN + 4 * i) as usize;
                frames.push(at..at + len);
                at += len;
            }
            if at != body.len() {
                return Err(bad(format!(
                    "the frames hold {} bytes, the payload {}",
                    at - table_end,
                    body.len() - table_end
                )));
            }
            (rows, frames)
        };
        Ok(Chunk {
            object,
            path,
            version,
            compression,
            predictor,
            dtype,
            bands,
            size: w,
            has_mask,
            strip_rows,
            frames,
        })
    }

    pub fn has_mask(&self) -> bool {
        self.has_mask
    }

    /// True when [`encode_reusing`] with `enc` copies this chunk's strips: it is laid out
    /// as this build writes chunks, with the same codec and predictor. (The codec level is
    /// not recorded, but it is fixed per store.)
    pub fn strips_reusable(&self, enc: &Encoding) -> bool {
        self.version == VERSION
            && self.compression == enc.compression
            && self.predictor == enc.predictor
            && self.strip_rows == strip_rows(self.size, self.dtype.size())
    }

    /// The rows the strips that meet `rows` cover: what [`decode_rows_into`] decodes.
    ///
    /// [`decode_rows_into`]: Chunk::decode_rows_into
    pub fn strip_span(&self, rows: Range<usize>) -> Range<usize> {
        if rows.is_empty() {
            return 0..0;
        }
        let r = self.strip_rows;
        (rows.start / r) * r..(rows.end.div_ceil(r) * r).min(self.size)
    }

    fn frame(&self, i: usize) -> &'a [u8] {
        &self.object[self.frames[i].clone()]
    }

    /// Decodes the strips that meet `rows` (the whole chunk for a version 1 chunk) into
    /// `data` (band-sequential, tile-sized planes: other rows are left alone) and, if given,
    /// the whole validity mask into `mask` (all 255 when the chunk has none).
    pub fn decode_rows_into(
        &self,
        rows: Range<usize>,
        data: &mut [u8],
        mask: Option<&mut [u8]>,
    ) -> Result<()> {
        let bad = |detail: String| Error::corrupt(self.path, detail);
        let (size, width) = (self.size, self.dtype.size());
        let n = size * size;
        let plane_len = n * width;
        assert_eq!(
            data.len(),
            plane_len * self.bands,
            "tile-sized output buffer"
        );
        let mask_len = if self.has_mask { n.div_ceil(8) } else { 0 };
        SCRATCH.with(|scratch| -> Result<()> {
            let mut raw = scratch.borrow_mut();
            if self.version == VERSION_1 {
                raw.clear();
                raw.resize(plane_len * self.bands + mask_len, 0);
                self.compression
                    .decompress(self.frame(0), &mut raw)
                    .map_err(|e| bad(format!("payload does not decompress: {e}")))?;
                for (src, dst) in raw[..plane_len * self.bands]
                    .chunks_exact(plane_len)
                    .zip(data.chunks_exact_mut(plane_len))
                {
                    self.predictor.decode(width, size, src, dst);
                }
                if let Some(mask) = mask {
                    match self.has_mask {
                        true => unpack_bits(&raw[plane_len * self.bands..], mask),
                        false => mask.fill(255),
                    }
                }
                return Ok(());
            }
            let strips = size.div_ceil(self.strip_rows);
            let span = self.strip_span(rows);
            let row_bytes = size * width;
            for b in 0..self.bands {
                let plane = &mut data[b * plane_len..(b + 1) * plane_len];
                for s in span.start / self.strip_rows..span.end.div_ceil(self.strip_rows) {
                    let r = s * self.strip_rows..((s + 1) * self.strip_rows).min(size);
                    let out = &mut plane[r.start * row_bytes..r.end * row_bytes];
                    raw.clear();
                    raw.resize(out.len(), 0);
                    self.compression
                        .decompress(self.frame(b * strips + s), &mut raw)
                        .map_err(|e| {
                            bad(format!("band {} strip {s} does not decompress: {e}", b + 1))
                        })?;
                    self.predictor.decode(width, size, &raw, out);
                }
            }
            if let Some(mask) = mask {
                if self.has_mask {
                    raw.clear();
                    raw.resize(mask_len, 0);
                    self.compression
                        .decompress(self.frame(self.frames.len() - 1), &mut raw)
                        .map_err(|e| bad(format!("the mask does not decompress: {e}")))?;
                    unpack_bits(&raw, mask);
                } else {
                    mask.fill(255);
                }
            }
            Ok(())
        })
    }
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

    /// A chunk as the first stores wrote it: the whole content as one compressed stream.
    fn encode_version_1(tile: &Tile, enc: &Encoding) -> Vec<u8> {
        let mut raw = Vec::new();
        for b in 0..tile.bands {
            enc.predictor
                .encode(tile.dtype.size(), tile.size, tile.band_bytes(b), &mut raw);
        }
        if let Some(mask) = &tile.mask {
            pack_bits(mask, &mut raw);
        }
        let mut out = MAGIC.to_vec();
        out.extend([1, enc.compression.code(), enc.predictor.code()]);
        out.push(tile.dtype.gdal_code() as u8);
        out.extend((tile.bands as u16).to_le_bytes());
        out.extend((tile.mask.is_some() as u16).to_le_bytes());
        out.extend((tile.size as u32).to_le_bytes());
        out.extend((tile.size as u32).to_le_bytes());
        let mut packed = Vec::new();
        enc.compression
            .compress(enc.level, &raw, &mut packed)
            .unwrap();
        out.extend((packed.len() as u32).to_le_bytes());
        out.extend([0u8; 4]);
        out.extend(packed);
        let crc = crc32c::crc32c(&out);
        out.extend(crc.to_le_bytes());
        out
    }

    /// `tile` with rows `rows` of every band (and the mask) taken from `other`.
    fn with_rows_of(tile: &Tile, other: &Tile, rows: Range<usize>) -> Tile {
        let mut out = tile.clone();
        let row = tile.size * tile.dtype.size();
        let plane = tile.size * row;
        for b in 0..tile.bands {
            let r = b * plane + rows.start * row..b * plane + rows.end * row;
            out.data.bytes_mut()[r.clone()].copy_from_slice(&other.data.bytes()[r]);
        }
        if let (Some(m), Some(o)) = (out.mask.as_mut(), other.mask.as_ref()) {
            let r = rows.start * tile.size..rows.end * tile.size;
            m[r.clone()].copy_from_slice(&o[r]);
        }
        out
    }

    fn zstd_float() -> Encoding {
        Encoding {
            compression: Compression::Zstd,
            level: 1,
            predictor: Predictor::FloatingPoint,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Re-encoding only the strips of changed rows gives the bytes a whole encode gives.
        #[test]
        fn reencoding_changed_rows_equals_encoding_the_tile(
            dtype in prop::sample::select(DataType::ALL.to_vec()),
            compression in prop::sample::select(vec![Compression::None, Compression::Zstd,
                                                     Compression::Deflate, Compression::Lz4]),
            bands in 1usize..3, mask in any::<bool>(),
            a in 0usize..32, len in 0usize..32, seed in any::<u64>()) {
            let old = random_tile(dtype, bands, 32, seed, mask);
            let changed = a.min(32 - len)..(a + len).min(32);
            let new = with_rows_of(&old, &random_tile(dtype, bands, 32, seed ^ 99, mask),
                                   changed.clone());
            let enc = Encoding { compression, level: compression.default_level(),
                                 predictor: Predictor::default_for(dtype) };
            let old_obj = encode(&old, &enc).unwrap();
            let parsed = Chunk::parse(&old_obj, &expected(&old), Path::new("t")).unwrap();
            prop_assert!(parsed.strips_reusable(&enc));
            let reused = encode_reusing(&new, &enc, Some((&parsed, changed))).unwrap();
            prop_assert_eq!(reused, encode(&new, &enc).unwrap());
        }
    }

    #[test]
    fn strips_outside_the_changed_rows_are_copied_not_encoded() {
        let (a, b) = (
            random_tile(DataType::Float32, 2, 32, 1, true),
            random_tile(DataType::Float32, 2, 32, 2, true),
        );
        let enc = zstd_float();
        let old = encode(&a, &enc).unwrap();
        let parsed = Chunk::parse(&old, &expected(&a), Path::new("t")).unwrap();
        // Told that only rows 8..12 changed, the encoder takes every other strip from the
        // old chunk, whatever the tile holds there.
        let obj = encode_reusing(&b, &enc, Some((&parsed, 8..12))).unwrap();
        let back = decode(&obj, &expected(&a), Path::new("t")).unwrap();
        assert_eq!(parsed.strip_span(8..12), 8..12);
        let mut want = with_rows_of(&a, &b, 8..12);
        want.mask = b.mask.clone(); // the mask is always encoded whole
        assert_eq!(back, want);
    }

    #[test]
    fn only_the_strips_meeting_the_rows_are_decoded() {
        let tile = random_tile(DataType::Int16, 2, 32, 5, false);
        let obj = encode(&tile, &zstd_float()).unwrap();
        let chunk = Chunk::parse(&obj, &expected(&tile), Path::new("t")).unwrap();
        // Unit tests write strips of 2 rows: rows 5..9 lie in the strips of rows 4..10.
        assert_eq!(chunk.strip_span(5..9), 4..10);
        let mut data = vec![0xAAu8; tile.data.len()];
        chunk.decode_rows_into(5..9, &mut data, None).unwrap();
        let row = 32 * 2;
        for b in 0..2 {
            for y in 0..32 {
                let r = b * 32 * row + y * row..b * 32 * row + (y + 1) * row;
                if (4..10).contains(&y) {
                    assert_eq!(data[r.clone()], tile.data.bytes()[r], "band {b} row {y}");
                } else {
                    assert!(data[r].iter().all(|v| *v == 0xAA), "band {b} row {y}");
                }
            }
        }
    }

    #[test]
    fn version_1_chunks_still_decode_and_are_reencoded_whole() {
        for mask in [false, true] {
            let tile = random_tile(DataType::Float32, 2, 32, 11, mask);
            let enc = zstd_float();
            let v1 = encode_version_1(&tile, &enc);
            assert_eq!(decode(&v1, &expected(&tile), Path::new("t")).unwrap(), tile);
            let chunk = Chunk::parse(&v1, &expected(&tile), Path::new("t")).unwrap();
            assert!(!chunk.strips_reusable(&enc));
            assert_eq!(chunk.strip_span(3..4), 0..32, "one stream: all or nothing");
            let other = random_tile(DataType::Float32, 2, 32, 12, mask);
            let obj = encode_reusing(&other, &enc, Some((&chunk, 0..2))).unwrap();
            assert_eq!(obj, encode(&other, &enc).unwrap());
        }
    }

    #[test]
    fn a_frame_table_that_does_not_add_up_is_corruption() {
        let tile = random_tile(DataType::Byte, 1, 32, 3, false);
        let mut obj = encode(&tile, &zstd_float()).unwrap();
        // One byte more for the first frame, and a checksum that matches again: the frames
        // now run past the payload.
        let first = u32::from_le_bytes(obj[28..32].try_into().unwrap());
        obj[28..32].copy_from_slice(&(first + 1).to_le_bytes());
        let end = obj.len() - 4;
        let crc = crc32c::crc32c(&obj[..end]);
        obj[end..].copy_from_slice(&crc.to_le_bytes());
        let e = decode(&obj, &expected(&tile), Path::new("c/1")).unwrap_err();
        assert!(e.to_string().contains("frames hold"), "{e}");
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
