//! The chunk object: one tile of one level, all bands, compressed, with checksums.
//!
//! Layout of version 3, the one written (all integers little-endian; docs/FORMAT.md §5):
//!
//! ```text
//! offset     size  field
//!   0         4    magic "GSCK"
//!   4         1    chunk format version (3; versions 1 and 2 are still read)
//!   5         1    compression code        (0 none, 1 zstd, 2 deflate, 3 lz4)
//!   6         1    predictor code          (0 none, 1 horizontal, 2 floating point)
//!   7         1    data type (GDALDataType code)
//!   8         2    band count
//!  10         2    flags                   (bit 0: a validity mask follows the bands)
//!  12         4    tile width in pixels
//!  16         4    tile height in pixels
//!  20         4    payload length n        (the object is 28 + n + 4 bytes)
//!  24         2    rows per block R
//!  26         2    columns per block C
//!  28         8    base: the snapshot whose chunk of this tile holds the frames this one
//!                  refers to (0: none, every frame is here)
//!  36         12F  frame table: per frame, its length, its CRC-32C, and where it is (0:
//!                  in this object; otherwise its offset in the base chunk)
//!  36+12F     4    CRC-32C of bytes [0, 36 + 12F): the head
//!  40+12F     ..   the frames stored here, in table order
//!  28+n       4    CRC-32C of bytes [0, 28 + n): the whole object
//! ```
//!
//! Each band is cut into blocks of R rows and C columns (those at the right and bottom
//! edges may be smaller), row of blocks after row of blocks; every block is compressed on
//! its own after the predictor (applied to the block's samples as one sequence, or, in
//! chunks that keep a version 2 chunk's strips, to each row), as one frame, band after band;
//! then, if flagged, one frame holds the mask packed one bit per pixel (row-major, least
//! significant bit first, 1 = data).
//!
//! Blocks are what make a level update cheap: a change under one child of a parent lands in
//! one quadrant of it, and one quarter of that quadrant at the level above, and so on. A
//! parent reads, checks and decodes only the frames of the blocks it must complete
//! ([`read_blocks`]), and writes a chunk holding only the frames it re-encoded
//! ([`encode_parts`]): the others stay where they are, in the chunk it updated, which
//! becomes the new chunk's *base*. A chunk never refers to more than one base, and a base
//! never refers to another: a reader fetches at most two objects per tile. The frames' own
//! checksums make this safe: a frame read from the base is checked against the CRC the
//! referring chunk's table holds.
//!
//! Version 2 is version 3 with strips (blocks as wide as the tile: the reserved field at 26
//! is 0), without the base field, and with 8-byte table entries (length and CRC): every
//! frame is in the object. A version 2 chunk can be the base of a version 3 one, which then
//! keeps its strips. Version 1 is one compressed stream with no table: concatenated, the
//! frames of a chunk of strips decompress to its payload.

mod decode;
mod encode;
mod head;
pub mod time_block;

#[cfg(test)]
mod tests;

pub use decode::{decode, decode_into, read_blocks, Chunk, Location};
pub use encode::{
    encode, encode_block_in_row, encode_block_row, encode_from_frames, encode_parts, Blocks,
    NewFrame, Parts, Piece, Reuse,
};
pub use head::{Frame, Head};

use std::cell::RefCell;

use crate::codec::{Compression, Predictor};
use crate::dtype::DataType;

pub const MAGIC: [u8; 4] = *b"GSCK";
/// The version this build writes.
pub const VERSION: u8 = 3;
/// Frames all in the object, 8-byte table entries. Still read, and a valid base.
const VERSION_2: u8 = 2;
/// The first version: one compressed stream, no blocks. Still read.
const VERSION_1: u8 = 1;
/// The fixed fields every version starts with.
pub const HEADER_LEN: usize = 28;
pub const TRAILER_LEN: usize = 4;
/// Version 3: the base's snapshot, after the fixed fields.
const BASE_FIELD_LEN: usize = 8;
/// Bytes per frame in a version 3 table: length, CRC-32C and where the frame is.
const TABLE_ENTRY_LEN: usize = 12;
/// Bytes per frame in a version 2 table: length and CRC-32C.
const V2_TABLE_ENTRY_LEN: usize = 8;
const FLAG_MASK: u16 = 1;
/// Version 3: the predictor runs over each block's samples as one sequence (row after row)
/// rather than row by row. Blocks narrower than the tile then give the predictor and the
/// codec long runs (measured: 1.5x faster to compress Float32, 2% smaller); chunks that
/// keep a version 2 chunk's strips keep its row by row prediction.
const FLAG_WHOLE_BLOCKS: u16 = 2;
/// A tile with at least this many blocks to encode has them encoded in parallel.
const PARALLEL_BLOCKS: usize = 4;
/// A tile read inside a pool with at least this many frames to decode has them decoded in
/// parallel.
const PARALLEL_FRAMES: usize = 4;

/// Whether a whole tile of `bands` bands of `dtype`, `size` pixels wide, cut as writers cut
/// it, has frames enough to be decoded side by side when read inside a pool. A reader of
/// one tile enters a pool only then: for a tile of one frame the hand-over to the pool
/// costs more than the decode.
pub fn decodes_side_by_side(size: usize, dtype: DataType, bands: usize) -> bool {
    let blocks = Blocks::for_new(size, dtype);
    bands * blocks.block_rows() * blocks.across() >= PARALLEL_FRAMES
}
/// Bytes a reader of part of a chunk fetches first: its head, for up to 336 frames (more is
/// fetched when a head is longer).
pub const HEAD_PROBE_LEN: usize = 4096;
/// Uncompressed bytes a block of one band holds at most: large enough to compress as well
/// as a whole tile, small enough that a change in one corner re-encodes little else.
#[cfg(not(test))]
const BLOCK_TARGET_BYTES: usize = 64 << 10;
/// Blocks are never narrower than this (an even number: block edges must stay on even rows
/// and columns, which aggregation pairs).
#[cfg(not(test))]
const MIN_BLOCK: usize = 16;
// Unit tests use tiles of 16 to 64 pixels: tiny blocks give them many blocks per tile, so
// that the block logic, not only the one-block case, is what they test.
#[cfg(test)]
const BLOCK_TARGET_BYTES: usize = 64;
#[cfg(test)]
const MIN_BLOCK: usize = 2;

/// How chunks are encoded; fixed per store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub compression: Compression,
    pub level: i32,
    pub predictor: Predictor,
}

/// The side of the square blocks a writer cuts tiles of `size` pixels with samples of
/// `sample_size` bytes into: the whole tile if it fits the target, else the largest power of
/// two whose square does (128 for Float32, 256 for Byte), never below [`MIN_BLOCK`]. A
/// quadrant of a tile of power-of-two size is then whole blocks, and so is each quarter of
/// it down to one block.
pub fn block_size(size: usize, sample_size: usize) -> usize {
    if size * size * sample_size <= BLOCK_TARGET_BYTES {
        return size.max(1);
    }
    let mut side = MIN_BLOCK;
    while (2 * side) * (2 * side) * sample_size <= BLOCK_TARGET_BYTES {
        side *= 2;
    }
    side.min(size)
}

thread_local! {
    // The predictor output and the decompressed blocks are reused per thread, which keeps
    // the hot path free of large allocations.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    // A block's samples gathered from the rows of a tile.
    static BLOCK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What a reader expects of a chunk: the store's data type, band count and tile size.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub dtype: DataType,
    pub bands: usize,
    pub size: usize,
}

/// Room a chunk may take beyond its tile's decoded size (see [`Expected::max_chunk_len`]):
/// its head and frame table, and each frame's codec framing. A tile cut in blocks of a few
/// pixels (as the unit tests cut theirs), or in strips one row high, needs far less.
pub const CHUNK_LEN_MARGIN: usize = 1 << 20;

impl Expected {
    /// The bytes the whole tile decodes to: every band's samples, and the mask packed one
    /// bit per pixel.
    pub fn decoded_len(&self) -> usize {
        let pixels = self.size.saturating_mul(self.size);
        pixels
            .saturating_mul(self.bands)
            .saturating_mul(self.dtype.size())
            .saturating_add(pixels.div_ceil(8))
    }

    /// The longest chunk object a tile of this store can be: its decoded size, a
    /// sixty-fourth more (what codecs add to data that does not compress, at most a
    /// 255th for zstd and LZ4), and [`CHUNK_LEN_MARGIN`]. Every size read from a chunk
    /// head or an index entry is checked against this before anything is allocated for
    /// it, so no number in a file can make a reader allocate more.
    pub fn max_chunk_len(&self) -> usize {
        let decoded = self.decoded_len();
        decoded
            .saturating_add(decoded / 64)
            .saturating_add(CHUNK_LEN_MARGIN)
    }
}

/// The CRC-32C a chunk object carries in its trailer (also kept in the tile index).
pub fn stored_checksum(object: &[u8]) -> Option<u32> {
    let tail = object.get(object.len().checked_sub(TRAILER_LEN)?..)?;
    Some(u32::from_le_bytes(tail.try_into().ok()?))
}

/// How many frames a chunk of blocks has: one per block of `rows` x `cols` pixels of each
/// band of a `size`-pixel tile, and one for the mask.
/// (Saturating: the fields of a damaged head may claim more than a `usize` holds, and the
/// result is then checked against the object's length.)
fn frame_count(bands: usize, size: usize, rows: usize, cols: usize, masked: bool) -> usize {
    bands
        .saturating_mul(size.div_ceil(rows))
        .saturating_mul(size.div_ceil(cols))
        .saturating_add(usize::from(masked))
}

/// The length of the head of a chunk of `version` with `frames` frames (saturating, as
/// [`frame_count`]).
fn head_len(version: u8, frames: usize) -> usize {
    let (fixed, entry) = match version {
        VERSION_1 => return HEADER_LEN,
        VERSION_2 => (HEADER_LEN + 4, V2_TABLE_ENTRY_LEN),
        _ => (HEADER_LEN + BASE_FIELD_LEN + 4, TABLE_ENTRY_LEN),
    };
    frames.saturating_mul(entry).saturating_add(fixed)
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

/// The codec fields chunks and time blocks share at bytes 5 to 7 of their header:
/// compression, predictor and data type codes, each checked to be one this build knows.
pub(crate) fn codec_fields(
    start: &[u8],
    path: &std::path::Path,
) -> crate::error::Result<(Compression, Predictor, DataType)> {
    let bad = |detail: String| crate::error::Error::corrupt(path, detail);
    let compression = Compression::from_code(start[5])
        .ok_or_else(|| bad(format!("unknown compression code {}", start[5])))?;
    let predictor = Predictor::from_code(start[6])
        .ok_or_else(|| bad(format!("unknown predictor code {}", start[6])))?;
    let dtype = DataType::from_gdal_code(start[7] as u32)
        .map_err(|_| bad(format!("unknown data type code {}", start[7])))?;
    Ok((compression, predictor, dtype))
}
