//! The time-block chunk: one level-0 tile location's samples over a block of D consecutive
//! ticks, cut so that a point's D values lie together (docs/FORMAT.md §8).
//!
//! Layout of version 1 (all integers little-endian):
//!
//! ```text
//! offset     size      field
//!   0         4        magic "GSTB"
//!   4         1        time-block format version (1)
//!   5         1        compression code        (as chunks, §5)
//!   6         1        predictor code
//!   7         1        data type (GDALDataType code)
//!   8         2        band count
//!  10         2        flags                   (bit 0: a mask frame follows each block's bands)
//!  12         4        tile size T
//!  16         4        ticks per block D
//!  20         4        first tick of the block
//!  24         2        rows per spatial block R
//!  26         2        columns per spatial block C
//!  28         4        object length
//!  32         ⌈D/8⌉    present bitmap: bit j (LSB first) set when tick first + j is a step
//!  32+P       8F       frame table: per frame, its length and CRC-32C
//!  32+P+8F    4        CRC-32C of the head (every byte before this field)
//!  ..         ..       the frames, in table order
//!  len-4      4        CRC-32C of every byte before it: the whole object
//! ```
//!
//! The tile is cut into spatial blocks of R x C pixels (smaller at the right and bottom
//! edges), row of blocks after row of blocks. Each block has one frame per band, then, when
//! flagged, one mask frame; a block's frames are next to each other, so a point costs one
//! range read. A band frame holds the block's pixels row-major, each pixel's D samples
//! together in tick order, through the predictor (each pixel's series as one row) and the
//! codec. A mask frame holds one bit per (pixel, tick) in the same order, packed LSB first,
//! 1 = data. Ticks without a step hold the band's fill value and mask bit 0.

use std::path::Path;

use super::{pack_bits, unpack_bits, Encoding, Expected};
use crate::codec::{Compression, Predictor};
use crate::dtype::DataType;
use crate::error::{Error, Result};

pub const MAGIC: [u8; 4] = *b"GSTB";
/// The time-block format version this build writes and reads.
pub const VERSION: u8 = 1;
/// The fixed fields before the present bitmap.
const FIXED_LEN: usize = 32;
const ENTRY_LEN: usize = 8;
const CRC_LEN: usize = 4;
const FLAG_MASK: u16 = 1;
/// The most ticks a block may span: a store's `series_block` is checked against it.
pub const MAX_BLOCK_TICKS: u32 = 4096;
/// The most bytes one frame may decode to: what a reader allocates per frame at most.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// The most frames a time-block chunk may have: bounds its head (8 MiB of table).
pub const MAX_FRAMES: usize = 1 << 20;
/// What a writer aims a band frame's decoded size at: big enough to compress well and to
/// serve a point of D ticks from one frame, small enough that a point reads little else.
const FRAME_TARGET_BYTES: usize = 256 << 10;
/// Bytes a reader fetches first: the fixed fields, enough for most heads.
pub const HEAD_PROBE_LEN: usize = 16 << 10;

/// What the store and the index say a time-block chunk must be: the store's tile shape,
/// the ticks per block, and the block's first tick.
#[derive(Debug, Clone, Copy)]
pub struct BlockExpected {
    pub tile: Expected,
    pub ticks: u32,
    pub first: u32,
}

impl BlockExpected {
    /// The longest object a block of this store can be: every frame at the longest its
    /// codec makes, the mask, the head at its largest. Index entries and heads claiming
    /// more are refused before anything is allocated.
    pub fn max_object_len(&self) -> usize {
        let d = self.ticks as usize;
        let pixels = self.tile.size.saturating_mul(self.tile.size);
        let samples = pixels
            .saturating_mul(d)
            .saturating_mul(self.tile.bands)
            .saturating_mul(self.tile.dtype.size());
        let bits = pixels.saturating_mul(d).div_ceil(8);
        let data = samples.saturating_add(bits);
        data.saturating_add(data / 64)
            .saturating_add(MAX_FRAMES * ENTRY_LEN)
            .saturating_add(super::CHUNK_LEN_MARGIN)
    }
}

/// The side of the square spatial blocks a writer cuts a block of `ticks` ticks of samples
/// of `sample_size` bytes into: the largest power of two whose band frame stays within
/// [`FRAME_TARGET_BYTES`], at most the tile.
pub fn spatial_side(size: usize, ticks: usize, sample_size: usize) -> usize {
    let mut side = 1;
    while (2 * side) * (2 * side) * ticks * sample_size <= FRAME_TARGET_BYTES && 2 * side <= size {
        side *= 2;
    }
    side
}

/// How a time-block chunk is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockShape {
    pub dtype: DataType,
    pub bands: usize,
    pub size: usize,
    pub ticks: usize,
    pub first: u32,
    pub rows: usize,
    pub cols: usize,
    pub masked: bool,
}

impl BlockShape {
    /// Spatial blocks across the tile.
    pub fn across(&self) -> usize {
        self.size.div_ceil(self.cols)
    }

    /// Spatial blocks in the tile.
    pub fn blocks(&self) -> usize {
        self.size.div_ceil(self.rows) * self.across()
    }

    /// Frames per spatial block: its bands, and the mask when there is one.
    pub fn frames_per_block(&self) -> usize {
        self.bands + usize::from(self.masked)
    }

    fn frame_count(&self) -> usize {
        self.blocks().saturating_mul(self.frames_per_block())
    }

    /// Pixels (rows, columns) of spatial block `s`.
    pub fn block_rect(&self, s: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (by, bx) = (s / self.across(), s % self.across());
        let (r, c) = (by * self.rows, bx * self.cols);
        (
            r..(r + self.rows).min(self.size),
            c..(c + self.cols).min(self.size),
        )
    }

    /// The spatial block holding pixel (`row`, `col`) of the tile.
    pub fn block_of(&self, row: usize, col: usize) -> usize {
        (row / self.rows) * self.across() + col / self.cols
    }

    /// Bytes band frame of spatial block `s` decodes to.
    fn band_frame_len(&self, s: usize) -> usize {
        let (r, c) = self.block_rect(s);
        r.len() * c.len() * self.ticks * self.dtype.size()
    }

    /// Bytes mask frame of spatial block `s` decodes to (packed bits).
    fn mask_frame_len(&self, s: usize) -> usize {
        let (r, c) = self.block_rect(s);
        (r.len() * c.len() * self.ticks).div_ceil(8)
    }

    fn head_len(&self) -> usize {
        FIXED_LEN + self.ticks.div_ceil(8) + self.frame_count() * ENTRY_LEN + CRC_LEN
    }
}

/// One compressed frame and its CRC-32C.
pub struct BlockFrame {
    pub bytes: Vec<u8>,
    pub crc: u32,
}

/// Encodes a band frame: `samples` holds the spatial block's pixels row-major, each
/// pixel's `ticks` samples in tick order.
pub fn encode_band_frame(
    enc: &Encoding,
    dtype: DataType,
    ticks: usize,
    samples: &[u8],
) -> Result<BlockFrame> {
    let mut raw = Vec::with_capacity(samples.len());
    enc.predictor.encode(dtype.size(), ticks, samples, &mut raw);
    compress(enc, &raw)
}

/// Encodes a mask frame: one byte per (pixel, tick) in band-frame order, non-zero = data.
pub fn encode_mask_frame(enc: &Encoding, mask: &[u8]) -> Result<BlockFrame> {
    let mut packed = Vec::with_capacity(mask.len().div_ceil(8));
    pack_bits(mask, &mut packed);
    compress(enc, &packed)
}

fn compress(enc: &Encoding, raw: &[u8]) -> Result<BlockFrame> {
    let mut bytes = Vec::new();
    enc.compression.compress(enc.level, raw, &mut bytes)?;
    let crc = crc32c::crc32c(&bytes);
    Ok(BlockFrame { bytes, crc })
}

/// A time-block object ready to write: its head, its frames in table order, and its
/// trailer (the CRC-32C of the whole object, also kept in the tile index).
pub struct BlockObject {
    pub head: Vec<u8>,
    pub frames: Vec<BlockFrame>,
    pub crc: u32,
    pub len: usize,
}

impl BlockObject {
    /// The object's bytes as pieces, in order, trailer last.
    pub fn pieces(&self) -> Vec<&[u8]> {
        let mut out: Vec<&[u8]> = vec![&self.head];
        out.extend(self.frames.iter().map(|f| &f.bytes[..]));
        out
    }

    /// The whole object (tests, and crafted objects).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for p in self.pieces() {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&self.crc.to_le_bytes());
        out
    }
}

/// Puts a time-block chunk together. `present[j]` says whether tick `shape.first + j` is a
/// step; `frames` are every spatial block's frames in table order.
pub fn assemble(
    shape: &BlockShape,
    enc: &Encoding,
    present: &[bool],
    frames: Vec<BlockFrame>,
) -> Result<BlockObject> {
    assert_eq!(
        frames.len(),
        shape.frame_count(),
        "every frame of the block"
    );
    assert_eq!(present.len(), shape.ticks, "one present bit per tick");
    let head_len = shape.head_len();
    let len = head_len + frames.iter().map(|f| f.bytes.len()).sum::<usize>() + CRC_LEN;
    let len32 = u32::try_from(len).map_err(|_| {
        Error::InvalidInput(
            "a time block compresses to more than 4 GiB: use a smaller series_block".into(),
        )
    })?;
    let mut head = Vec::with_capacity(head_len);
    head.extend_from_slice(&MAGIC);
    head.push(VERSION);
    head.push(enc.compression.code());
    head.push(enc.predictor.code());
    head.push(shape.dtype.gdal_code() as u8);
    head.extend_from_slice(&(shape.bands as u16).to_le_bytes());
    let flags = if shape.masked { FLAG_MASK } else { 0 };
    head.extend_from_slice(&flags.to_le_bytes());
    head.extend_from_slice(&(shape.size as u32).to_le_bytes());
    head.extend_from_slice(&(shape.ticks as u32).to_le_bytes());
    head.extend_from_slice(&shape.first.to_le_bytes());
    head.extend_from_slice(&(shape.rows as u16).to_le_bytes());
    head.extend_from_slice(&(shape.cols as u16).to_le_bytes());
    head.extend_from_slice(&len32.to_le_bytes());
    let bits: Vec<u8> = present.iter().map(|&p| u8::from(p)).collect();
    pack_bits(&bits, &mut head);
    for f in &frames {
        head.extend_from_slice(&(f.bytes.len() as u32).to_le_bytes());
        head.extend_from_slice(&f.crc.to_le_bytes());
    }
    let head_crc = crc32c::crc32c(&head);
    head.extend_from_slice(&head_crc.to_le_bytes());
    debug_assert_eq!(head.len(), head_len);
    let crc = frames.iter().fold(crc32c::crc32c(&head), |acc, f| {
        crate::checksum::crc32c_combine(acc, f.crc, f.bytes.len())
    });
    Ok(BlockObject {
        head,
        frames,
        crc,
        len,
    })
}

/// Where a frame lies in the object, and its CRC-32C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockFrameRef {
    pub offset: usize,
    pub len: usize,
    pub crc: u32,
}

/// The checked head of a time-block chunk.
#[derive(Debug, Clone)]
pub struct BlockHead {
    pub shape: BlockShape,
    compression: Compression,
    predictor: Predictor,
    present: Vec<bool>,
    frames: Vec<BlockFrameRef>,
    object_len: usize,
    /// The CRC-32C of the whole head, its own checksum included.
    head_crc: u32,
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl BlockHead {
    /// The head's length from the object's first [`FIXED_LEN`] bytes, once they are checked
    /// against `expected` (`None` when too few bytes; [`BlockHead::parse`] says what is
    /// wrong with them).
    pub fn len_from(start: &[u8], expected: &BlockExpected, path: &Path) -> Result<usize> {
        let shape = fixed_fields(start, expected, path)?;
        Ok(shape.0.head_len())
    }

    /// Checks a head (the first [`BlockHead::len_from`] bytes of an object of `object_len`
    /// bytes, as its index entry says) against the store and its own checksum.
    pub fn parse(
        start: &[u8],
        object_len: usize,
        expected: &BlockExpected,
        path: &Path,
    ) -> Result<BlockHead> {
        let bad = |detail: String| Error::corrupt(path, detail);
        let (shape, compression, predictor, claimed_len) = fixed_fields(start, expected, path)?;
        if claimed_len != object_len {
            return Err(bad(format!(
                "the time block says it is {claimed_len} bytes, the index says {object_len}"
            )));
        }
        let head_len = shape.head_len();
        if head_len + CRC_LEN > object_len {
            return Err(bad(format!(
                "the time block's head takes {head_len} bytes, more than its {object_len}-byte \
                 object holds"
            )));
        }
        if start.len() < head_len {
            return Err(bad(format!(
                "the time block's head is cut short ({} of {head_len} bytes)",
                start.len()
            )));
        }
        let crc_at = head_len - CRC_LEN;
        if crc32c::crc32c(&start[..crc_at]) != u32_at(start, crc_at) {
            return Err(bad(
                "time block head checksum mismatch: it was changed after it was written".into(),
            ));
        }
        let bits = &start[FIXED_LEN..FIXED_LEN + shape.ticks.div_ceil(8)];
        let mut present = vec![0u8; shape.ticks];
        unpack_bits(bits, &mut present);
        let table = FIXED_LEN + shape.ticks.div_ceil(8);
        let mut frames = Vec::with_capacity(shape.frame_count());
        let mut at = head_len;
        for i in 0..shape.frame_count() {
            let e = table + i * ENTRY_LEN;
            let len = u32_at(start, e) as usize;
            let raw = frame_raw_len(&shape, i);
            let max = compression.max_encoded_len(raw);
            if len > max {
                return Err(bad(format!(
                    "time block frame {i} claims {len} bytes, but {} makes at most {max} of the \
                     {raw} bytes it decodes to",
                    compression.option_name()
                )));
            }
            frames.push(BlockFrameRef {
                offset: at,
                len,
                crc: u32_at(start, e + 4),
            });
            at += len;
            if at + CRC_LEN > object_len {
                return Err(bad(format!(
                    "time block frame {i} ends at byte {at}, past the payload of the \
                     {object_len}-byte object"
                )));
            }
        }
        if at + CRC_LEN != object_len {
            return Err(bad(format!(
                "the time block's frames end at byte {at}, its object at {}",
                object_len - CRC_LEN
            )));
        }
        Ok(BlockHead {
            shape,
            compression,
            predictor,
            present: present.iter().map(|&p| p != 0).collect(),
            frames,
            object_len,
            head_crc: crc32c::crc32c(&start[..head_len]),
        })
    }

    /// The CRC-32C the whole object must carry in its trailer (and its index entry), from
    /// the head's bytes and the frames' checksums: once every frame is checked against its
    /// own, this checks the object without holding it whole.
    pub fn object_crc(&self) -> u32 {
        self.frames.iter().fold(self.head_crc, |acc, f| {
            crate::checksum::crc32c_combine(acc, f.crc, f.len)
        })
    }

    /// Whether tick `shape.first + j` is a step of the block.
    pub fn present(&self) -> &[bool] {
        &self.present
    }

    pub fn frames(&self) -> &[BlockFrameRef] {
        &self.frames
    }

    pub fn object_len(&self) -> usize {
        self.object_len
    }

    /// The frames of spatial block `s`: band frames, then the mask frame if any.
    pub fn frames_of_block(&self, s: usize) -> std::ops::Range<usize> {
        let n = self.shape.frames_per_block();
        s * n..(s + 1) * n
    }

    /// Decodes frame `i`, whose bytes are `bytes`, after checking its CRC: a band frame to
    /// its samples (pixels row-major, each pixel's ticks together), a mask frame to one
    /// byte per (pixel, tick), 255 = data, 0 = none.
    pub fn decode_frame(&self, i: usize, bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
        let f = self.frames[i];
        if bytes.len() != f.len || crc32c::crc32c(bytes) != f.crc {
            return Err(Error::corrupt(
                path,
                format!(
                    "time block frame {i} checksum mismatch: it was changed after it was written"
                ),
            ));
        }
        let raw_len = frame_raw_len(&self.shape, i);
        let mut raw = vec![0u8; raw_len];
        self.compression.decompress(bytes, &mut raw).map_err(|e| {
            Error::corrupt(
                path,
                format!("time block frame {i} does not decompress: {e}"),
            )
        })?;
        let per = self.shape.frames_per_block();
        if self.shape.masked && i % per == per - 1 {
            let (r, c) = self.shape.block_rect(i / per);
            let mut mask = vec![0u8; r.len() * c.len() * self.shape.ticks];
            unpack_bits(&raw, &mut mask);
            return Ok(mask);
        }
        let mut out = vec![0u8; raw_len];
        let width = self.shape.dtype.size();
        self.predictor
            .decode(width, self.shape.ticks, &raw, &mut out);
        Ok(out)
    }
}

/// The bytes frame `i` of a block cut as `shape` decompresses to.
fn frame_raw_len(shape: &BlockShape, i: usize) -> usize {
    let per = shape.frames_per_block();
    let s = i / per;
    if shape.masked && i % per == per - 1 {
        shape.mask_frame_len(s)
    } else {
        shape.band_frame_len(s)
    }
}

/// The fixed fields of a head, each checked against what the store and the index say
/// before anything is computed from them: (shape, codec, predictor, object length).
fn fixed_fields(
    start: &[u8],
    expected: &BlockExpected,
    path: &Path,
) -> Result<(BlockShape, Compression, Predictor, usize)> {
    let bad = |detail: String| Error::corrupt(path, detail);
    if start.len() < FIXED_LEN {
        return Err(bad(format!(
            "time block is truncated ({} bytes, its fixed fields take {FIXED_LEN})",
            start.len()
        )));
    }
    if start[0..4] != MAGIC {
        return Err(bad("not a gridstore time block (bad magic bytes)".into()));
    }
    if start[4] != VERSION {
        return Err(Error::NotSupported(format!(
            "{}: time block format version {} is not one this build reads ({VERSION}); \
             upgrade gridstore",
            path.display(),
            start[4]
        )));
    }
    let (compression, predictor, dtype) = super::codec_fields(start, path)?;
    let t = &expected.tile;
    let bands = u16_at(start, 8);
    let size = u32_at(start, 12) as usize;
    if (dtype, bands, size) != (t.dtype, t.bands, t.size) {
        return Err(bad(format!(
            "the time block holds {bands} {} band(s) of {size}-pixel tiles, the store {} {} \
             band(s) of {}-pixel tiles",
            dtype.name(),
            t.bands,
            t.dtype.name(),
            t.size
        )));
    }
    let (ticks, first) = (u32_at(start, 16), u32_at(start, 20));
    if ticks != expected.ticks || first != expected.first {
        return Err(bad(format!(
            "the time block spans {ticks} ticks from tick {first}, but the store's blocks span \
             {} ticks and its index puts this one at tick {}",
            expected.ticks, expected.first
        )));
    }
    let (rows, cols) = (u16_at(start, 24), u16_at(start, 26));
    if rows == 0 || cols == 0 || rows > size || cols > size {
        return Err(bad(format!(
            "the time block's spatial blocks are {rows} x {cols} pixels, not 1 to {size}"
        )));
    }
    let flags = u16_at(start, 10) as u16;
    if flags & !FLAG_MASK != 0 {
        return Err(bad(format!("unknown time block flags {flags:#x}")));
    }
    let shape = BlockShape {
        dtype,
        bands,
        size,
        ticks: ticks as usize,
        first,
        rows,
        cols,
        masked: flags & FLAG_MASK != 0,
    };
    let frame_bytes = rows * cols * shape.ticks * dtype.size();
    if frame_bytes > MAX_FRAME_BYTES {
        return Err(bad(format!(
            "the time block's frames decode to {frame_bytes} bytes each, more than the \
             {MAX_FRAME_BYTES} a reader allows"
        )));
    }
    if shape.frame_count() > MAX_FRAMES {
        return Err(bad(format!(
            "the time block has {} frames, more than the {MAX_FRAMES} a reader allows",
            shape.frame_count()
        )));
    }
    let object_len = u32_at(start, 28) as usize;
    Ok((shape, compression, predictor, object_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> BlockShape {
        BlockShape {
            dtype: DataType::Float32,
            bands: 2,
            size: 16,
            ticks: 8,
            first: 16,
            rows: 8,
            cols: 8,
            masked: true,
        }
    }

    fn expected(s: &BlockShape) -> BlockExpected {
        BlockExpected {
            tile: Expected {
                dtype: s.dtype,
                bands: s.bands,
                size: s.size,
            },
            ticks: s.ticks as u32,
            first: s.first,
        }
    }

    fn enc() -> Encoding {
        Encoding {
            compression: Compression::Zstd,
            level: 1,
            predictor: Predictor::FloatingPoint,
        }
    }

    /// A block whose sample at (pixel p, tick j) of band b is p * 100 + j + b / 2.
    fn build(s: &BlockShape) -> (BlockObject, Vec<Vec<u8>>) {
        let mut frames = Vec::new();
        let mut raws = Vec::new();
        for k in 0..s.blocks() {
            let (r, c) = s.block_rect(k);
            let n = r.len() * c.len();
            for b in 0..s.bands {
                let v: Vec<f32> = (0..n * s.ticks)
                    .map(|i| ((i / s.ticks) * 100 + i % s.ticks) as f32 + b as f32 / 2.0)
                    .collect();
                let bytes = bytemuck::cast_slice(&v).to_vec();
                frames.push(encode_band_frame(&enc(), s.dtype, s.ticks, &bytes).unwrap());
                raws.push(bytes);
            }
            let mask: Vec<u8> = (0..n * s.ticks).map(|i| (i % 3 != 0) as u8 * 255).collect();
            frames.push(encode_mask_frame(&enc(), &mask).unwrap());
            raws.push(mask);
        }
        let present: Vec<bool> = (0..s.ticks).map(|j| j != 5).collect();
        (assemble(s, &enc(), &present, frames).unwrap(), raws)
    }

    #[test]
    fn a_block_reads_back_frame_by_frame() {
        let s = shape();
        let (obj, raws) = build(&s);
        let bytes = obj.to_bytes();
        assert_eq!(bytes.len(), obj.len);
        assert_eq!(crc32c::crc32c(&bytes[..bytes.len() - 4]), obj.crc);
        let p = Path::new("b");
        let len = BlockHead::len_from(&bytes, &expected(&s), p).unwrap();
        let head = BlockHead::parse(&bytes[..len], bytes.len(), &expected(&s), p).unwrap();
        assert_eq!(head.shape, s);
        assert!(!head.present()[5]);
        assert!(head.present()[4]);
        for (i, f) in head.frames().iter().enumerate() {
            let got = head
                .decode_frame(i, &bytes[f.offset..f.offset + f.len], p)
                .unwrap();
            assert_eq!(got, raws[i], "frame {i}");
        }
        assert_eq!(head.frames_of_block(1), 3..6);
        assert_eq!(head.object_crc(), obj.crc);
        assert_eq!(s.block_of(9, 3), 2);
    }

    /// Rewrites a field of a head and fixes its checksum, so only the field is wrong.
    fn craft(bytes: &[u8], at: usize, value: &[u8]) -> Vec<u8> {
        let mut b = bytes.to_vec();
        b[at..at + value.len()].copy_from_slice(value);
        b
    }

    #[test]
    fn crafted_heads_are_refused_before_allocating() {
        let s = shape();
        let (obj, _) = build(&s);
        let bytes = obj.to_bytes();
        let p = Path::new("b");
        let e = expected(&s);
        let cases: [(usize, Vec<u8>, &str); 5] = [
            (16, 9u32.to_le_bytes().to_vec(), "spans 9 ticks"),
            (20, 0u32.to_le_bytes().to_vec(), "from tick 0"),
            (24, 0u16.to_le_bytes().to_vec(), "spatial blocks"),
            (8, 3u16.to_le_bytes().to_vec(), "3 Float32 band"),
            (0, b"GSCK".to_vec(), "magic"),
        ];
        for (at, v, want) in cases {
            let b = craft(&bytes, at, &v);
            let err = BlockHead::len_from(&b, &e, p).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
        // A huge spatial block: refused by its frame size, not allocated.
        let big = BlockExpected {
            tile: Expected {
                size: 4096,
                ..e.tile
            },
            ticks: 4096,
            ..e
        };
        let mut b = craft(&bytes, 12, &4096u32.to_le_bytes());
        b = craft(&b, 16, &4096u32.to_le_bytes());
        b = craft(&b, 24, &4096u16.to_le_bytes());
        b = craft(&b, 26, &4096u16.to_le_bytes());
        let err = BlockHead::len_from(&b, &big, p).unwrap_err();
        assert!(err.to_string().contains("more than the"), "{err}");
    }

    #[test]
    fn an_oversized_frame_length_is_refused_with_a_valid_head_checksum() {
        let s = shape();
        let (obj, _) = build(&s);
        let mut head = obj.head.clone();
        let table = FIXED_LEN + s.ticks.div_ceil(8);
        head[table..table + 4].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let n = head.len();
        let crc = crc32c::crc32c(&head[..n - 4]);
        head[n - 4..].copy_from_slice(&crc.to_le_bytes());
        let err = BlockHead::parse(&head, obj.len, &expected(&s), Path::new("b")).unwrap_err();
        assert!(err.to_string().contains("claims 1073741824 bytes"), "{err}");
    }

    #[test]
    fn spatial_blocks_aim_at_the_frame_target() {
        assert_eq!(spatial_side(512, 128, 4), 16);
        assert_eq!(spatial_side(512, 128, 1), 32);
        assert_eq!(spatial_side(8, 4, 1), 8);
    }
}
