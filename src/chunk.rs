//! The chunk object: one tile of one level, all bands, compressed, with checksums.
//!
//! Layout (all integers little-endian; see docs/FORMAT.md §5):
//!
//! ```text
//! offset    size  field
//!   0        4    magic "GSCK"
//!   4        1    chunk format version (2; version 1 is still read)
//!   5        1    compression code        (0 none, 1 zstd, 2 deflate, 3 lz4)
//!   6        1    predictor code          (0 none, 1 horizontal, 2 floating point)
//!   7        1    data type (GDALDataType code)
//!   8        2    band count
//!  10        2    flags                   (bit 0: a validity mask follows the bands)
//!  12        4    tile width in pixels
//!  16        4    tile height in pixels
//!  20        4    payload length n
//!  24        2    rows per strip R        (version 1: reserved, zero)
//!  26        2    reserved, zero
//!  28        8F   frame table: per frame, its length and its CRC-32C (u32 each)
//!  28+8F     4    CRC-32C of bytes [0, 28 + 8F): the head
//!  32+8F     ..   the frames
//!  28+n      4    CRC-32C of bytes [0, 28 + n): the whole object
//! ```
//!
//! Each band is cut into strips of R rows (the last may be shorter); every strip is
//! compressed on its own after the predictor, as one frame, band after band; then, if
//! flagged, one frame holds the mask packed one bit per pixel (row-major, least significant
//! bit first, 1 = data). Decompressed and concatenated, the frames are the version 1
//! payload, which is one compressed stream with no table.
//!
//! Strips are what make a level update cheap: a parent whose change is confined to some
//! rows reads, checks and decodes only the frames of those rows ([`read_rows`]), and writes
//! a chunk whose other frames are ranges of the old object ([`encode_parts`]), which the
//! storage copies without reading. The frames' own checksums make that safe: the new
//! object's checksum is combined from theirs, so a frame damaged on disk stays detectable in
//! the copy.

use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;

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
/// A tile with at least this many strips to encode has them encoded in parallel.
const PARALLEL_STRIPS: usize = 4;
/// Bytes per frame in the table: length and CRC-32C.
const TABLE_ENTRY_LEN: usize = 8;
/// Bytes a reader of part of a chunk fetches first: its head, for tiles of up to 4096 rows
/// in strips of 16 (more is fetched when a head is longer).
pub const HEAD_PROBE_LEN: usize = 4096;
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
    let parts = encode_parts(tile, enc, None)?;
    // Without an old chunk, the head and every frame are one fresh run.
    assert_eq!(parts.pieces, [Piece::Fresh(0..parts.fresh.len())]);
    let mut out = parts.fresh;
    out.extend_from_slice(&parts.crc.to_le_bytes());
    Ok(out)
}

/// A chunk object as pieces: runs of fresh bytes (the head, newly encoded frames) and
/// ranges of an older object (frames kept), then the trailer (the CRC-32C `crc`).
pub struct Parts {
    /// The head, then the newly encoded frames.
    pub fresh: Vec<u8>,
    pub pieces: Vec<Piece>,
    pub crc: u32,
    /// The length of the whole object.
    pub len: usize,
}

/// Where a run of bytes of a [`Parts`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A range of [`Parts::fresh`].
    Fresh(Range<usize>),
    /// A range of the old object.
    Old(Range<usize>),
}

/// Encodes a tile as [`Parts`]. With `reuse` = (`old`, `changed`), the strips that lie
/// wholly outside the rows `changed` are not encoded but taken from the chunk whose head is
/// `old`: the caller vouches that the tile equals it there. Strips are reused only when
/// [`Head::strips_reusable`] says so (a caller that decoded only part of the old chunk must
/// check that first); otherwise the whole tile is encoded. Put together, the parts are the
/// same, byte for byte, as [`encode`] gives.
pub fn encode_parts(
    tile: &Tile,
    enc: &Encoding,
    reuse: Option<(&Head, Range<usize>)>,
) -> Result<Parts> {
    let width = tile.dtype.size();
    let rows = strip_rows(tile.size, width);
    let strips = tile.size.div_ceil(rows);
    let reuse = reuse.filter(|(old, _)| {
        old.strips_reusable(enc)
            && (old.size, old.bands, old.dtype) == (tile.size, tile.bands, tile.dtype)
    });
    let count = frame_count(tile.bands, tile.size, rows, tile.mask.is_some());
    let head_len = head_len(count);
    // (length, CRC) of every frame, and where its bytes come from. The head goes first, in
    // room kept for it.
    let mut table = Vec::with_capacity(count);
    let mut fresh = Vec::with_capacity(head_len + tile.data.len() / 2);
    fresh.resize(head_len, 0);
    let mut pieces = vec![Piece::Fresh(0..head_len)];
    let push = |piece: Piece, pieces: &mut Vec<Piece>| match (pieces.last_mut(), piece) {
        (Some(Piece::Fresh(a)), Piece::Fresh(b)) if a.end == b.start => a.end = b.end,
        (Some(Piece::Old(a)), Piece::Old(b)) if a.end == b.start => a.end = b.end,
        (_, piece) => pieces.push(piece),
    };
    let row_bytes = tile.size * width;
    let strip = |s: usize| s * rows..((s + 1) * rows).min(tile.size);
    // Appends strip `s` of band `b`, encoded, to `out`; returns its length and CRC.
    let encode_strip = |b: usize, s: usize, out: &mut Vec<u8>| -> Result<(usize, u32)> {
        let r = strip(s);
        let bytes = &tile.band_bytes(b)[r.start * row_bytes..r.end * row_bytes];
        SCRATCH.with(|scratch| {
            let mut raw = scratch.borrow_mut();
            raw.clear();
            enc.predictor.encode(width, tile.size, bytes, &mut raw);
            let start = out.len();
            enc.compression.compress(enc.level, &raw, out)?;
            Ok((out.len() - start, crc32c::crc32c(&out[start..])))
        })
    };
    let kept = |s: usize| {
        reuse
            .as_ref()
            .filter(|(_, changed)| !overlaps(&strip(s), changed))
            .map(|(old, _)| old)
    };
    // A big tile's strips are spread over the worker threads, so that the last tile of a
    // write is not encoded by one thread while the others wait. Only inside a worker pool,
    // which sets how many threads a write may use.
    let to_encode: Vec<(usize, usize)> = (0..tile.bands)
        .flat_map(|b| (0..strips).map(move |s| (b, s)))
        .filter(|(_, s)| kept(*s).is_none())
        .collect();
    let mut apart: std::vec::IntoIter<Result<EncodedStrip>> =
        if to_encode.len() >= PARALLEL_STRIPS && rayon::current_thread_index().is_some() {
            to_encode
                .par_iter()
                .map(|&(b, s)| {
                    let mut out = Vec::new();
                    encode_strip(b, s, &mut out).map(|f| (out, f))
                })
                .collect::<Vec<_>>()
                .into_iter()
        } else {
            Vec::new().into_iter()
        };
    for b in 0..tile.bands {
        for s in 0..strips {
            if let Some(old) = kept(s) {
                let f = old.frames[b * strips + s];
                table.push((f.len, f.crc));
                push(Piece::Old(f.offset..f.offset + f.len), &mut pieces);
                continue;
            }
            let start = fresh.len();
            let (len, crc) = match apart.next() {
                Some(encoded) => {
                    let (bytes, frame) = encoded?;
                    fresh.extend_from_slice(&bytes);
                    frame
                }
                None => encode_strip(b, s, &mut fresh)?,
            };
            table.push((len, crc));
            push(Piece::Fresh(start..start + len), &mut pieces);
        }
    }
    if let Some(mask) = &tile.mask {
        let mut packed = Vec::with_capacity(mask.len() / 8);
        pack_bits(mask, &mut packed);
        let start = fresh.len();
        enc.compression.compress(enc.level, &packed, &mut fresh)?;
        table.push((fresh.len() - start, crc32c::crc32c(&fresh[start..])));
        push(Piece::Fresh(start..fresh.len()), &mut pieces);
    }
    let frames_len: usize = table.iter().map(|(len, _)| len).sum();
    let payload_len = u32::try_from(head_len - HEADER_LEN + frames_len)
        .map_err(|_| Error::InvalidInput("a tile compresses to more than 4 GiB".into()))?;
    let mut head = Vec::with_capacity(head_len);
    head.extend_from_slice(&MAGIC);
    head.push(VERSION);
    head.push(enc.compression.code());
    head.push(enc.predictor.code());
    head.push(tile.dtype.gdal_code() as u8);
    head.extend_from_slice(&(tile.bands as u16).to_le_bytes());
    let flags = if tile.mask.is_some() { FLAG_MASK } else { 0 };
    head.extend_from_slice(&flags.to_le_bytes());
    head.extend_from_slice(&(tile.size as u32).to_le_bytes());
    head.extend_from_slice(&(tile.size as u32).to_le_bytes());
    head.extend_from_slice(&payload_len.to_le_bytes());
    head.extend_from_slice(&(rows as u16).to_le_bytes());
    head.extend_from_slice(&[0u8; 2]);
    for (len, crc) in &table {
        head.extend_from_slice(&(*len as u32).to_le_bytes());
        head.extend_from_slice(&crc.to_le_bytes());
    }
    let head_crc = crc32c::crc32c(&head);
    head.extend_from_slice(&head_crc.to_le_bytes());
    // The object's checksum, from the checksums of its pieces: copied frames need not be
    // read to be summed.
    let crc = table.iter().fold(crc32c::crc32c(&head), |acc, (len, crc)| {
        crate::checksum::crc32c_combine(acc, *crc, *len)
    });
    fresh[..head_len].copy_from_slice(&head);
    Ok(Parts {
        len: head_len + frames_len + TRAILER_LEN,
        fresh,
        pieces,
        crc,
    })
}

/// A strip encoded on its own buffer: its bytes, and its length and CRC.
type EncodedStrip = (Vec<u8>, (usize, u32));

/// How many frames a version 2 chunk has: one per strip of `rows` rows of each band of a
/// `size`-pixel tile, and one for the mask.
fn frame_count(bands: usize, size: usize, rows: usize, masked: bool) -> usize {
    bands * size.div_ceil(rows) + usize::from(masked)
}

/// The length of a version 2 head with `frames` frames.
fn head_len(frames: usize) -> usize {
    HEADER_LEN + TABLE_ENTRY_LEN * frames + 4
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
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
    Ok(chunk.head.has_mask)
}

/// Where a frame lies in its chunk object, and its CRC-32C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub offset: usize,
    pub len: usize,
    pub crc: u32,
}

/// The checked head of a chunk: what it holds and, in version 2, where each frame lies.
#[derive(Debug, Clone)]
pub struct Head {
    version: u8,
    compression: Compression,
    predictor: Predictor,
    dtype: DataType,
    bands: usize,
    size: usize,
    has_mask: bool,
    /// Rows per strip; a version 1 chunk is one strip holding everything, mask included.
    strip_rows: usize,
    frames: Vec<Frame>,
    /// The length of the whole object.
    object_len: usize,
}

impl Head {
    /// The length of the head of a chunk from its first [`HEADER_LEN`] bytes, or `None`
    /// when they are too few (then [`parse`](Head::parse) says what is wrong).
    pub fn len_from(start: &[u8]) -> Option<usize> {
        if start.len() < HEADER_LEN {
            return None;
        }
        if start[4] == VERSION_1 {
            return Some(HEADER_LEN);
        }
        let bands = u16::from_le_bytes([start[8], start[9]]) as usize;
        let flags = u16::from_le_bytes([start[10], start[11]]);
        let height = u32::from_le_bytes(start[16..20].try_into().expect("4 bytes")) as usize;
        let rows = u16::from_le_bytes([start[24], start[25]]) as usize;
        let masked = flags & FLAG_MASK != 0;
        Some(head_len(frame_count(bands, height, rows.max(1), masked)))
    }

    /// Checks the head at the start of `start` (at least [`len_from`](Head::len_from)
    /// bytes of the object) against the store and its own checksum.
    pub fn parse(start: &[u8], expected: &Expected, path: &Path) -> Result<Head> {
        let bad = |detail: String| Error::corrupt(path, detail);
        if start.len() < HEADER_LEN + TRAILER_LEN {
            return Err(bad(format!(
                "chunk is truncated ({} bytes, a chunk has at least {})",
                start.len(),
                HEADER_LEN + TRAILER_LEN
            )));
        }
        if start[0..4] != MAGIC {
            return Err(bad("not a gridstore chunk (bad magic bytes)".into()));
        }
        let version = start[4];
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
        let compression = Compression::from_code(start[5])
            .ok_or_else(|| bad(format!("unknown compression code {}", start[5])))?;
        let predictor = Predictor::from_code(start[6])
            .ok_or_else(|| bad(format!("unknown predictor code {}", start[6])))?;
        let dtype = DataType::from_gdal_code(start[7] as u32)
            .map_err(|_| bad(format!("unknown data type code {}", start[7])))?;
        let u16_at = |at: usize| u16::from_le_bytes([start[at], start[at + 1]]) as usize;
        let u32_at = |at: usize| u32::from_le_bytes(start[at..at + 4].try_into().expect("4 bytes"));
        let bands = u16_at(8);
        let has_mask = u16_at(10) as u16 & FLAG_MASK != 0;
        let (w, h) = (u32_at(12) as usize, u32_at(16) as usize);
        let object_len = HEADER_LEN + u32_at(20) as usize + TRAILER_LEN;
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
        let mut head = Head {
            version,
            compression,
            predictor,
            dtype,
            bands,
            size: w,
            has_mask,
            strip_rows: w.max(1),
            frames: vec![Frame {
                offset: HEADER_LEN,
                len: object_len - HEADER_LEN - TRAILER_LEN,
                crc: 0,
            }],
            object_len,
        };
        if version == VERSION_1 {
            return Ok(head);
        }
        let rows = u16_at(24);
        if rows == 0 {
            return Err(bad("the chunk's strips have no rows".into()));
        }
        let count = frame_count(bands, w, rows, has_mask);
        let len = head_len(count);
        if start.len() < len {
            return Err(bad(format!(
                "the head of {len} bytes runs past the {} bytes read",
                start.len()
            )));
        }
        let (want, got) = (u32_at(len - 4), crc32c::crc32c(&start[..len - 4]));
        if want != got {
            return Err(bad(format!(
                "chunk head checksum mismatch (stored {want:08x}, computed {got:08x}): the \
                 chunk was changed after it was written"
            )));
        }
        head.strip_rows = rows;
        head.frames.clear();
        let mut at = len;
        for i in 0..count {
            let entry = HEADER_LEN + TABLE_ENTRY_LEN * i;
            let frame_len = u32_at(entry) as usize;
            head.frames.push(Frame {
                offset: at,
                len: frame_len,
                crc: u32_at(entry + 4),
            });
            at += frame_len;
        }
        if at + TRAILER_LEN != object_len {
            return Err(bad(format!(
                "the frames hold {} bytes, the payload {}",
                at - len,
                object_len - TRAILER_LEN - len
            )));
        }
        Ok(head)
    }

    pub fn has_mask(&self) -> bool {
        self.has_mask
    }

    /// The length of the whole object.
    pub fn object_len(&self) -> usize {
        self.object_len
    }

    /// True when [`encode_parts`] with `enc` reuses this chunk's strips: it is laid out as
    /// this build writes chunks, with the same codec and predictor. (The codec level is not
    /// recorded, but it is fixed per store.)
    pub fn strips_reusable(&self, enc: &Encoding) -> bool {
        self.version == VERSION
            && self.compression == enc.compression
            && self.predictor == enc.predictor
            && self.strip_rows == strip_rows(self.size, self.dtype.size())
    }

    /// The rows the strips that meet `rows` cover: what decoding `rows` decodes.
    pub fn strip_span(&self, rows: Range<usize>) -> Range<usize> {
        if rows.is_empty() {
            return 0..0;
        }
        let r = self.strip_rows;
        (rows.start / r) * r..(rows.end.div_ceil(r) * r).min(self.size)
    }

    fn strips(&self) -> usize {
        self.size.div_ceil(self.strip_rows)
    }

    /// Decodes frame `i`, whose bytes are `bytes`, into its rows of `data` (band-sequential
    /// tile planes) or, for the mask frame, into `mask`. `check` verifies the frame's own
    /// checksum (a reader that checked the whole object need not).
    fn decode_frame(
        &self,
        i: usize,
        bytes: &[u8],
        check: bool,
        data: &mut [u8],
        mask: Option<&mut [u8]>,
        path: &Path,
    ) -> Result<()> {
        let bad = |detail: String| Error::corrupt(path, detail);
        let (size, width) = (self.size, self.dtype.size());
        let n = size * size;
        let plane_len = n * width;
        let mask_len = if self.has_mask { n.div_ceil(8) } else { 0 };
        if check && crc32c::crc32c(bytes) != self.frames[i].crc {
            return Err(bad(format!(
                "frame {i} checksum mismatch: the chunk was changed after it was written"
            )));
        }
        SCRATCH.with(|scratch| -> Result<()> {
            let mut raw = scratch.borrow_mut();
            if self.version == VERSION_1 {
                raw.clear();
                raw.resize(plane_len * self.bands + mask_len, 0);
                self.compression
                    .decompress(bytes, &mut raw)
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
            let strips = self.strips();
            if i == self.bands * strips {
                let Some(mask) = mask else { return Ok(()) };
                raw.clear();
                raw.resize(mask_len, 0);
                self.compression
                    .decompress(bytes, &mut raw)
                    .map_err(|e| bad(format!("the mask does not decompress: {e}")))?;
                unpack_bits(&raw, mask);
                return Ok(());
            }
            let (b, s) = (i / strips, i % strips);
            let row_bytes = size * width;
            let r = s * self.strip_rows..((s + 1) * self.strip_rows).min(size);
            let out = &mut data[b * plane_len..(b + 1) * plane_len]
                [r.start * row_bytes..r.end * row_bytes];
            raw.clear();
            raw.resize(out.len(), 0);
            self.compression
                .decompress(bytes, &mut raw)
                .map_err(|e| bad(format!("band {} strip {s} does not decompress: {e}", b + 1)))?;
            self.predictor.decode(width, size, &raw, out);
            Ok(())
        })
    }

    /// The frames (by index) that hold the strips meeting `rows` of band `b`.
    fn band_frames(&self, b: usize, rows: Range<usize>) -> Range<usize> {
        if self.version == VERSION_1 {
            return 0..1;
        }
        let span = self.strip_span(rows);
        let strips = self.strips();
        b * strips + span.start / self.strip_rows..b * strips + span.end.div_ceil(self.strip_rows)
    }
}

/// A whole chunk object whose checksum and head have been checked.
pub struct Chunk<'a> {
    head: Head,
    object: &'a [u8],
    path: &'a Path,
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
        let body = &object[..object.len() - TRAILER_LEN];
        let want = stored_checksum(object).expect("length checked above");
        let got = crc32c::crc32c(body);
        if want != got {
            return Err(bad(format!(
                "chunk checksum mismatch (stored {want:08x}, computed {got:08x}): the chunk \
                 was changed or truncated after it was written"
            )));
        }
        let head = Head::parse(object, expected, path)?;
        if head.object_len != object.len() {
            return Err(bad(format!(
                "payload length {} does not match the object size {}",
                head.object_len - HEADER_LEN - TRAILER_LEN,
                object.len()
            )));
        }
        Ok(Chunk { head, object, path })
    }

    pub fn head(&self) -> &Head {
        &self.head
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
        let head = &self.head;
        let plane_len = head.size * head.size * head.dtype.size();
        assert_eq!(
            data.len(),
            plane_len * head.bands,
            "tile-sized output buffer"
        );
        let frame = |i: usize| {
            let f = head.frames[i];
            &self.object[f.offset..f.offset + f.len]
        };
        if head.version == VERSION_1 {
            return head.decode_frame(0, frame(0), false, data, mask, self.path);
        }
        if !rows.is_empty() {
            for b in 0..head.bands {
                for i in head.band_frames(b, rows.clone()) {
                    head.decode_frame(i, frame(i), false, data, None, self.path)?;
                }
            }
        }
        match mask {
            Some(m) if head.has_mask => {
                let i = head.frames.len() - 1;
                head.decode_frame(i, frame(i), false, data, Some(m), self.path)
            }
            Some(m) => {
                m.fill(255);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// Decodes the strips of a version 2 chunk that meet `rows`, and its whole mask (all 255
/// when it has none) into `mask` if given, fetching only their frames through
/// `read(offset, len)` and checking each against its own checksum: an update in place
/// needs no more of a chunk. Returns the rows decoded.
pub fn read_rows(
    head: &Head,
    rows: Range<usize>,
    mut read: impl FnMut(usize, usize) -> Result<Vec<u8>>,
    data: &mut [u8],
    mask: Option<&mut [u8]>,
    path: &Path,
) -> Result<Range<usize>> {
    assert_eq!(
        head.version, VERSION,
        "only strips of version 2 chunks are read alone"
    );
    if !rows.is_empty() {
        for b in 0..head.bands {
            let frames = head.band_frames(b, rows.clone());
            let Some(first) = frames.clone().next().map(|i| head.frames[i]) else {
                continue;
            };
            let last = head.frames[frames.end - 1];
            let bytes = read(first.offset, last.offset + last.len - first.offset)?;
            for i in frames {
                let f = head.frames[i];
                let at = f.offset - first.offset;
                let frame = bytes
                    .get(at..at + f.len)
                    .ok_or_else(|| Error::corrupt(path, format!("chunk ends inside frame {i}")))?;
                head.decode_frame(i, frame, true, data, None, path)?;
            }
        }
    }
    if let Some(mask) = mask {
        if head.has_mask {
            let i = head.frames.len() - 1;
            let f = head.frames[i];
            let bytes = read(f.offset, f.len)?;
            if bytes.len() != f.len {
                return Err(Error::corrupt(path, "chunk ends inside its mask"));
            }
            head.decode_frame(i, &bytes, true, data, Some(mask), path)?;
        } else {
            mask.fill(255);
        }
    }
    Ok(head.strip_span(rows))
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

    /// The object [`encode_parts`] describes, its old ranges taken from `old`.
    fn assemble(parts: &Parts, old: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &parts.pieces {
            match piece {
                Piece::Fresh(r) => out.extend_from_slice(&parts.fresh[r.clone()]),
                Piece::Old(r) => out.extend_from_slice(&old[r.clone()]),
            }
        }
        out.extend_from_slice(&parts.crc.to_le_bytes());
        assert_eq!(out.len(), parts.len);
        out
    }

    fn head_of(object: &[u8], t: &Tile) -> Head {
        Chunk::parse(object, &expected(t), Path::new("t"))
            .unwrap()
            .head()
            .clone()
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
            let head = head_of(&old_obj, &old);
            prop_assert!(head.strips_reusable(&enc));
            let parts = encode_parts(&new, &enc, Some((&head, changed))).unwrap();
            prop_assert_eq!(assemble(&parts, &old_obj), encode(&new, &enc).unwrap());
        }
    }

    #[test]
    fn strips_outside_the_changed_rows_are_taken_from_the_old_chunk() {
        let (a, b) = (
            random_tile(DataType::Float32, 2, 32, 1, true),
            random_tile(DataType::Float32, 2, 32, 2, true),
        );
        let enc = zstd_float();
        let old = encode(&a, &enc).unwrap();
        let head = head_of(&old, &a);
        assert_eq!(head.strip_span(8..12), 8..12);
        // Told that only rows 8..12 changed, the encoder takes every other strip from the
        // old chunk, whatever the tile holds there: the strips before band 1's, from there
        // to band 2's, and after (the mask is always encoded afresh).
        let parts = encode_parts(&b, &enc, Some((&head, 8..12))).unwrap();
        let old_runs = parts
            .pieces
            .iter()
            .filter(|p| matches!(p, Piece::Old(_)))
            .count();
        assert_eq!(old_runs, 3, "{:?}", parts.pieces);
        let back = decode(&assemble(&parts, &old), &expected(&a), Path::new("t")).unwrap();
        let mut want = with_rows_of(&a, &b, 8..12);
        want.mask = b.mask.clone(); // the mask is always encoded whole
        assert_eq!(back, want);
    }

    #[test]
    fn strips_encoded_in_parallel_give_the_same_chunk() {
        let tile = random_tile(DataType::Float32, 3, 32, 9, true);
        let enc = zstd_float();
        let alone = encode(&tile, &enc).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let together = pool.install(|| encode(&tile, &enc).unwrap());
        assert_eq!(alone, together);
        let head = head_of(&alone, &tile);
        let parts = pool.install(|| encode_parts(&tile, &enc, Some((&head, 4..20))).unwrap());
        assert_eq!(assemble(&parts, &alone), alone);
    }

    #[test]
    fn a_damaged_frame_copied_into_a_new_chunk_stays_detectable() {
        let (a, b) = (
            random_tile(DataType::Float32, 1, 32, 1, false),
            random_tile(DataType::Float32, 1, 32, 2, false),
        );
        let enc = zstd_float();
        let mut old = encode(&a, &enc).unwrap();
        let head = head_of(&old, &a);
        let parts = encode_parts(&b, &enc, Some((&head, 0..2))).unwrap();
        // Damage a frame that the update copies without reading.
        let last = head.frames[head.frames.len() - 1];
        old[last.offset + last.len / 2] ^= 0x10;
        let e = decode(&assemble(&parts, &old), &expected(&a), Path::new("c")).unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
    }

    #[test]
    fn reading_rows_fetches_and_checks_only_their_frames() {
        let tile = random_tile(DataType::Int16, 2, 32, 5, true);
        let mut obj = encode(&tile, &zstd_float()).unwrap();
        let head = head_of(&obj, &tile);
        // Unit tests write strips of 2 rows: rows 5..9 lie in the strips of rows 4..10.
        assert_eq!(head.strip_span(5..9), 4..10);
        let mut data = vec![0xAAu8; tile.data.len()];
        let mut mask = vec![0u8; 32 * 32];
        let mut fetched = Vec::new();
        let read = |offset: usize, len: usize| {
            fetched.push(offset..offset + len);
            Ok(obj[offset..offset + len].to_vec())
        };
        let p = Path::new("t");
        let rows = read_rows(&head, 5..9, read, &mut data, Some(&mut mask), p).unwrap();
        assert_eq!(rows, 4..10);
        // One read per band and one for the mask, of 3 strips each.
        assert_eq!(fetched.len(), 3, "{fetched:?}");
        assert_eq!(Some(mask), tile.mask.clone());
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
        // A damaged frame it reads is reported; one it does not read cannot matter to it.
        let f = head.frames[head.band_frames(1, 5..9).start];
        obj[f.offset] ^= 1;
        let read = |offset: usize, len: usize| Ok(obj[offset..offset + len].to_vec());
        let e = read_rows(&head, 5..9, read, &mut data, None, p).unwrap_err();
        assert!(
            e.to_string().contains("frame") && e.to_string().contains("damaged"),
            "{e}"
        );
        let read = |offset: usize, len: usize| Ok(obj[offset..offset + len].to_vec());
        assert!(read_rows(&head, 20..22, read, &mut data, None, p).is_ok());
    }

    #[test]
    fn version_1_chunks_still_decode_and_are_reencoded_whole() {
        for mask in [false, true] {
            let tile = random_tile(DataType::Float32, 2, 32, 11, mask);
            let enc = zstd_float();
            let v1 = encode_version_1(&tile, &enc);
            assert_eq!(decode(&v1, &expected(&tile), Path::new("t")).unwrap(), tile);
            let head = head_of(&v1, &tile);
            assert!(!head.strips_reusable(&enc));
            assert_eq!(head.strip_span(3..4), 0..32, "one stream: all or nothing");
            let other = random_tile(DataType::Float32, 2, 32, 12, mask);
            let parts = encode_parts(&other, &enc, Some((&head, 0..2))).unwrap();
            assert!(parts.pieces.iter().all(|p| matches!(p, Piece::Fresh(_))));
            assert_eq!(assemble(&parts, &v1), encode(&other, &enc).unwrap());
        }
    }

    #[test]
    fn a_frame_table_that_does_not_add_up_is_corruption() {
        let tile = random_tile(DataType::Byte, 1, 32, 3, false);
        let mut obj = encode(&tile, &zstd_float()).unwrap();
        // One byte more for the first frame, and checksums that match again: the frames
        // now run past the payload.
        let first = u32::from_le_bytes(obj[28..32].try_into().unwrap());
        obj[28..32].copy_from_slice(&(first + 1).to_le_bytes());
        let head_end = Head::len_from(&obj).unwrap() - 4;
        let crc = crc32c::crc32c(&obj[..head_end]);
        obj[head_end..head_end + 4].copy_from_slice(&crc.to_le_bytes());
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
