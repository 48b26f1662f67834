//! Chunks: the head (`Head::len_from`, `Head::parse`) and the frames (`Chunk::decode`, with
//! a base chunk for the frames a chunk keeps there), against `chunk::encode`.
//!
//! An input is the shape the reader expects (which comes from the validated manifest, so
//! mutations leave it alone), then the chunk object, then its base:
//!
//! ```text
//! 0  1  data type (GDAL code)      5  4  length of the chunk object n
//! 1  2  band count                 9  n  the chunk object
//! 3  2  tile size                9+n  .. the base chunk (may be empty)
//! ```

use std::path::Path;

use crate::area::Area;
use crate::chunk::{self, Chunk, Encoding, Expected, Head, Reuse};
use crate::codec::{Compression, Predictor};
use crate::dtype::DataType;
use crate::fuzz::{Field, Target};
use crate::tile::{SampleBuf, Tile};

const PREFIX: usize = 9;
/// What decoding may allocate at once beyond the decoded tile and its mask.
pub const MARGIN: usize = 1 << 20;
const HEADER_LEN: usize = chunk::HEADER_LEN;

pub struct ChunkTarget;

/// An input split into its parts.
struct Input<'a> {
    expected: Expected,
    object: &'a [u8],
    base: &'a [u8],
}

impl<'a> Input<'a> {
    fn split(input: &'a [u8]) -> Option<Input<'a>> {
        let prefix = input.get(..PREFIX)?;
        let dtype = DataType::from_gdal_code(prefix[0] as u32).ok()?;
        let bands = u16::from_le_bytes([prefix[1], prefix[2]]) as usize;
        let size = u16::from_le_bytes([prefix[3], prefix[4]]) as usize;
        let n = u32::from_le_bytes(prefix[5..9].try_into().ok()?) as usize;
        let rest = &input[PREFIX..];
        let (object, base) = rest.split_at(n.min(rest.len()));
        Some(Input {
            expected: Expected { dtype, bands, size },
            object,
            base,
        })
    }

    fn join(expected: &Expected, object: &[u8], base: &[u8]) -> Vec<u8> {
        let mut out = vec![expected.dtype.gdal_code() as u8];
        out.extend_from_slice(&(expected.bands as u16).to_le_bytes());
        out.extend_from_slice(&(expected.size as u16).to_le_bytes());
        out.extend_from_slice(&(object.len() as u32).to_le_bytes());
        out.extend_from_slice(object);
        out.extend_from_slice(base);
        out
    }

    /// The decoded size of a tile of the expected shape, mask included.
    fn tile_bytes(&self) -> usize {
        let e = &self.expected;
        e.size * e.size * (e.bands * e.dtype.size() + 1)
    }
}

/// A decoded tile, and the codec and predictor its chunk names (to re-encode it with).
pub struct Decoded {
    tile: Tile,
    encoding: Encoding,
}

impl Target for ChunkTarget {
    type Decoded = Decoded;

    fn name(&self) -> &'static str {
        "chunk"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        seeds()
    }

    fn fixed_prefix(&self) -> usize {
        PREFIX
    }

    fn fields(&self, input: &[u8]) -> Vec<Field> {
        let mut fields: Vec<Field> = [
            (4, 1),
            (5, 1),
            (6, 1),
            (7, 1),
            (8, 2),
            (10, 2),
            (12, 4),
            (16, 4),
            (20, 4),
            (24, 2),
            (26, 2),
            (28, 8),
        ]
        .into_iter()
        .map(|(offset, width)| Field {
            offset: PREFIX + offset,
            width,
        })
        .collect();
        // The first frames' table entries (length, CRC, where) of a version 3 head.
        for i in 0..4 {
            for k in [0, 8] {
                fields.push(Field {
                    offset: PREFIX + 36 + 12 * i + k,
                    width: 4,
                });
            }
        }
        fields.retain(|f| f.offset + f.width <= input.len());
        fields
    }

    fn fix_checksums(&self, input: &mut [u8], lengths: bool) {
        let Some(parts) = Input::split(input) else {
            return;
        };
        let (n, base) = (parts.object.len(), parts.base.to_vec());
        fix_object(&mut input[PREFIX..PREFIX + n], &base, lengths);
    }

    fn decode(&self, input: &[u8]) -> Option<Decoded> {
        let input = Input::split(input)?;
        let path = Path::new("chunks/2/0_0_0_0/0_0_0");
        // A reader of part of a chunk learns its head's length first.
        std::hint::black_box(Head::len_from(input.object));
        let chunk = Chunk::parse(input.object, &input.expected, path).ok()?;
        let chunk = match chunk.head().base_span() {
            Some(_) => chunk.with_base(input.base, 0, Path::new("chunks/1/0_0_0_0/0_0_0")),
            None => chunk,
        };
        let tile = chunk.decode().ok()?;
        let encoding = Encoding {
            compression: Compression::from_code(input.object[5])?,
            level: 1,
            predictor: Predictor::from_code(input.object[6])?,
        };
        Some(Decoded { tile, encoding })
    }

    fn check(&self, input: &[u8], d: Decoded) -> Result<(), String> {
        let input = Input::split(input).ok_or("the input no longer splits")?;
        let object = chunk::encode(&d.tile, &d.encoding)
            .map_err(|e| format!("the decoded tile does not encode: {e}"))?;
        let back = chunk::decode(&object, &input.expected, Path::new("again"))
            .map_err(|e| format!("the re-encoded chunk is refused: {e}"))?;
        if back.data.bytes() != d.tile.data.bytes() {
            return Err("the re-encoded chunk decodes to other samples".into());
        }
        let valid = |t: &Tile| t.mask.clone().unwrap_or_else(|| vec![255; t.pixels()]);
        if valid(&back) != valid(&d.tile) {
            return Err("the re-encoded chunk decodes to another mask".into());
        }
        Ok(())
    }

    fn alloc_bound(&self, input: &[u8]) -> usize {
        Input::split(input).map_or(MARGIN, |i| i.tile_bytes() + MARGIN)
    }
}

/// Recomputes what a chunk object's checksums cover, as far as its head can be read: each
/// frame's CRC in the table (frames in the base taken from `base`), the head's CRC and the
/// object's; with `lengths`, the payload length first.
fn fix_object(object: &mut [u8], base: &[u8], lengths: bool) {
    let len = object.len();
    if len < HEADER_LEN + 4 {
        return;
    }
    if lengths {
        object[20..24].copy_from_slice(&((len - HEADER_LEN - 4) as u32).to_le_bytes());
    }
    if let Some(head_len) = fix_frames(object, base) {
        let crc = crc32c::crc32c(&object[..head_len - 4]);
        object[head_len - 4..head_len].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32c::crc32c(&object[..len - 4]);
    object[len - 4..].copy_from_slice(&crc.to_le_bytes());
}

/// Sets the CRC of every frame in the table of a version 2 or 3 head to that of the bytes
/// the frame names; returns the head's length, or `None` when the head does not fit.
fn fix_frames(object: &mut [u8], base: &[u8]) -> Option<usize> {
    let u16_at = |o: &[u8], at: usize| u16::from_le_bytes([o[at], o[at + 1]]) as u64;
    let u32_at =
        |o: &[u8], at: usize| u32::from_le_bytes(o[at..at + 4].try_into().unwrap_or_default());
    let version = object[4];
    let (table, entry_len) = match version {
        2 => (HEADER_LEN, 8),
        3 => (HEADER_LEN + 8, 12),
        _ => return None,
    };
    let size = u32_at(object, 16) as u64;
    let rows = u16_at(object, 24).max(1);
    let cols = if version == 2 {
        size
    } else {
        u16_at(object, 26)
    }
    .max(1);
    let masked = u16_at(object, 10) & 1;
    let frames = u16_at(object, 8)
        .checked_mul(size.div_ceil(rows))?
        .checked_mul(size.div_ceil(cols))?
        .checked_add(masked)?;
    let head_len = (frames as usize)
        .checked_mul(entry_len)?
        .checked_add(table + 4)?;
    if head_len > object.len() {
        return None;
    }
    let mut at = head_len;
    for i in 0..frames as usize {
        let entry = table + entry_len * i;
        let frame_len = u32_at(object, entry) as usize;
        let elsewhere = if version == 3 {
            u32_at(object, entry + 8) as usize
        } else {
            0
        };
        let bytes = if elsewhere == 0 {
            let b = object.get(at..at.saturating_add(frame_len));
            at = at.saturating_add(frame_len);
            b
        } else {
            base.get(elsewhere..elsewhere.saturating_add(frame_len))
        };
        if let Some(bytes) = bytes {
            let crc = crc32c::crc32c(bytes);
            object[entry + 4..entry + 8].copy_from_slice(&crc.to_le_bytes());
        }
    }
    Some(head_len)
}

/// Samples of a tile that compress as real data does: smooth, with some noise, and for
/// floats some NaN.
fn sample_tile(dtype: DataType, bands: usize, size: usize, masked: bool, seed: usize) -> Tile {
    let mut data = SampleBuf::zeroed(size * size * bands * dtype.size());
    let width = dtype.size();
    let bytes = data.bytes_mut();
    for (i, sample) in bytes.chunks_exact_mut(width).enumerate() {
        let (b, y, x) = (i / (size * size), i / size % size, i % size);
        let smooth = (x + 2 * y + 50 * b + seed) as f64;
        let noise = ((i * 7919 + seed) % 13) as f64;
        let v = smooth + noise;
        match dtype {
            DataType::Float32 => {
                let v = if (i + seed) % 97 == 0 {
                    f32::NAN
                } else {
                    v as f32 * 0.37
                };
                sample.copy_from_slice(&v.to_le_bytes());
            }
            DataType::Float64 => {
                let v = if (i + seed) % 89 == 0 {
                    f64::NAN
                } else {
                    v * -1.37e10
                };
                sample.copy_from_slice(&v.to_le_bytes());
            }
            _ => sample.copy_from_slice(&(v as u64).to_le_bytes()[..width]),
        }
    }
    let mask = masked.then(|| {
        (0..size * size)
            .map(|i| {
                if (i / size + i % size) % 5 == 0 {
                    0
                } else {
                    255
                }
            })
            .collect()
    });
    Tile {
        dtype,
        bands,
        size,
        data,
        mask,
    }
}

fn expected(tile: &Tile) -> Expected {
    Expected {
        dtype: tile.dtype,
        bands: tile.bands,
        size: tile.size,
    }
}

const CODECS: [Compression; 4] = [
    Compression::Zstd,
    Compression::Deflate,
    Compression::Lz4,
    Compression::None,
];

/// Chunks of every data type, codec and predictor, of one block and of several, with and
/// without a mask, of all three chunk versions, and updates that keep frames in a base.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, dtype) in DataType::ALL.into_iter().enumerate() {
        for (j, compression) in CODECS.into_iter().enumerate() {
            let predictor = match (i + j) % 3 {
                0 => Predictor::default_for(dtype),
                1 => Predictor::None,
                _ => Predictor::Horizontal,
            };
            let enc = Encoding {
                compression,
                level: compression.default_level(),
                predictor,
            };
            let size = [16, 32, 48][(i + j) % 3];
            let tile = sample_tile(dtype, 1 + (i + j) % 3, size, j % 2 == 0, i * 4 + j);
            if let Ok(object) = chunk::encode(&tile, &enc) {
                out.push(Input::join(&expected(&tile), &object, &[]));
            }
            let version = [1, 2][(i + j) % 2];
            let rows = [1, 7, 16][j % 3];
            let object = old_chunk(version, &tile, &enc, rows);
            out.push(Input::join(&expected(&tile), &object, &[]));
        }
    }
    // Tiles of several blocks (Float32 blocks are 128 pixels), and updates of one block of
    // them, which keep the other blocks' frames in the old chunk, their base.
    for (i, compression) in [Compression::Zstd, Compression::Lz4]
        .into_iter()
        .enumerate()
    {
        let enc = Encoding {
            compression,
            level: compression.default_level(),
            predictor: Predictor::FloatingPoint,
        };
        let tile = sample_tile(DataType::Float32, 1, 256, i == 0, 5);
        let Ok(old) = chunk::encode(&tile, &enc) else {
            continue;
        };
        out.push(Input::join(&expected(&tile), &old, &[]));
        let Ok(parsed) = Chunk::parse(&old, &expected(&tile), Path::new("old")) else {
            continue;
        };
        let changed = sample_tile(DataType::Float32, 1, 256, i == 0, 6);
        let reuse = Reuse {
            old: parsed.head(),
            old_seq: 1,
            changed: Area::new(0..100, 0..100),
            referable: true,
        };
        let mut update = tile.clone();
        // Only the changed area differs from the old tile.
        let n = 256 * 256 * 4;
        for b in 0..update.bands {
            for y in 0..100 {
                let row = b * n + y * 256 * 4;
                update.data.bytes_mut()[row..row + 400]
                    .copy_from_slice(&changed.data.bytes()[row..row + 400]);
            }
        }
        if let Ok(parts) = chunk::encode_parts(&update, &enc, Some(reuse)) {
            let new = parts.object(&old, &[]);
            out.push(Input::join(&expected(&tile), &new, &old));
        }
    }
    out
}

/// A chunk of an older version: 1 (one compressed stream of the predicted planes and the
/// packed mask) or 2 (strips of `rows` rows, one frame each, with a table of lengths and
/// CRCs), as docs/FORMAT.md §5 lays them out.
fn old_chunk(version: u8, tile: &Tile, enc: &Encoding, rows: usize) -> Vec<u8> {
    let (size, width) = (tile.size, tile.dtype.size());
    let mask = tile.mask.as_ref().map(|m| {
        let mut bits = vec![0u8; m.len().div_ceil(8)];
        for (i, &v) in m.iter().enumerate() {
            bits[i / 8] |= u8::from(v != 0) << (i % 8);
        }
        bits
    });
    let compress = |raw: &[u8]| {
        let mut packed = Vec::new();
        let _ = enc.compression.compress(enc.level, raw, &mut packed);
        packed
    };
    let mut frames = Vec::new();
    if version == 1 {
        let mut raw = Vec::new();
        for b in 0..tile.bands {
            enc.predictor
                .encode(width, size, tile.band_bytes(b), &mut raw);
        }
        raw.extend_from_slice(mask.as_deref().unwrap_or_default());
        frames.push(compress(&raw));
    } else {
        for b in 0..tile.bands {
            for strip in tile.band_bytes(b).chunks(rows * size * width) {
                let mut raw = Vec::new();
                enc.predictor.encode(width, size, strip, &mut raw);
                frames.push(compress(&raw));
            }
        }
        if let Some(mask) = &mask {
            frames.push(compress(mask));
        }
    }
    let mut head = b"GSCK".to_vec();
    head.extend_from_slice(&[
        version,
        enc.compression.code(),
        enc.predictor.code(),
        tile.dtype.gdal_code() as u8,
    ]);
    head.extend_from_slice(&(tile.bands as u16).to_le_bytes());
    head.extend_from_slice(&u16::from(mask.is_some()).to_le_bytes());
    head.extend_from_slice(&(size as u32).to_le_bytes());
    head.extend_from_slice(&(size as u32).to_le_bytes());
    let table_len = if version == 2 {
        8 * frames.len() + 4
    } else {
        0
    };
    let payload = table_len + frames.iter().map(Vec::len).sum::<usize>();
    head.extend_from_slice(&(payload as u32).to_le_bytes());
    head.extend_from_slice(&(if version == 1 { 0 } else { rows as u16 }).to_le_bytes());
    head.extend_from_slice(&[0, 0]);
    if version == 2 {
        for f in &frames {
            head.extend_from_slice(&(f.len() as u32).to_le_bytes());
            head.extend_from_slice(&crc32c::crc32c(f).to_le_bytes());
        }
        let crc = crc32c::crc32c(&head);
        head.extend_from_slice(&crc.to_le_bytes());
    }
    let mut object = head;
    frames.iter().for_each(|f| object.extend_from_slice(f));
    let crc = crc32c::crc32c(&object);
    object.extend_from_slice(&crc.to_le_bytes());
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error a chunk input gets from `Chunk::parse`.
    fn parse_error(input: &[u8]) -> String {
        let parts = Input::split(input).unwrap();
        match Chunk::parse(parts.object, &parts.expected, Path::new("c")) {
            Ok(_) => "accepted".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn after_a_mutation_the_checksums_are_right_and_the_head_checks_speak() {
        let seeds = seeds();
        let v3 = seeds
            .iter()
            .find(|s| Input::split(s).unwrap().object[4] == chunk::VERSION)
            .unwrap();
        assert!(ChunkTarget.decode(v3).is_some(), "the seed decodes");
        // One band more than the store has.
        let mut more_bands = v3.clone();
        more_bands[PREFIX + 8] += 1;
        ChunkTarget.fix_checksums(&mut more_bands, false);
        let e = parse_error(&more_bands);
        assert!(e.contains("band(s)") && !e.contains("checksum"), "{e}");
        // The first frame one byte longer than it is.
        let mut longer = v3.clone();
        longer[PREFIX + 36] += 1;
        let e = parse_error(&longer);
        assert!(
            e.contains("checksum"),
            "without the fix, the checksum speaks: {e}"
        );
        ChunkTarget.fix_checksums(&mut longer, false);
        let e = parse_error(&longer);
        // The frames no longer fill the payload exactly: a length check refuses them.
        assert!(e.contains("payload") && !e.contains("checksum"), "{e}");
    }

    #[test]
    fn every_seed_decodes_and_passes_the_reference() {
        for seed in seeds() {
            let decoded = ChunkTarget.decode(&seed).expect("a valid chunk decodes");
            ChunkTarget.check(&seed, decoded).unwrap();
        }
    }
}
