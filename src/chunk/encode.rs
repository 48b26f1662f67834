//! Encoding tiles into chunk objects: whole, block row by block row as a tile arrives, or
//! as an update of an older chunk.

use std::ops::Range;

use rayon::prelude::*;

use super::{
    block_size, frame_count, head_len, pack_bits, Encoding, Head, BLOCK, FLAG_MASK,
    FLAG_WHOLE_BLOCKS, MAGIC, PARALLEL_BLOCKS, SCRATCH, TRAILER_LEN, VERSION,
};
use crate::area::Area;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::tile::Tile;

/// Encodes a tile into a chunk object that holds all of its frames.
pub fn encode(tile: &Tile, enc: &Encoding) -> Result<Vec<u8>> {
    let parts = encode_parts(tile, enc, None)?;
    assert!(
        parts.copies_nothing(),
        "a chunk encoded whole holds all its frames"
    );
    Ok(parts.object(&[], &[]))
}

/// A chunk object as pieces, in order: the head, newly encoded frames, and ranges of older
/// objects (frames copied), then the trailer (the CRC-32C `crc`). Frames the chunk refers
/// to in its `base` are in no piece. The storage writes the pieces as they are, so the
/// frames are never gathered into one buffer.
pub struct Parts {
    pub head: Vec<u8>,
    /// The newly encoded frames, which [`Piece::New`] names by index.
    pub frames: Vec<NewFrame>,
    pub pieces: Vec<Piece>,
    pub crc: u32,
    /// The length of the whole object.
    pub len: usize,
    /// The snapshot whose chunk of the tile holds the frames the new chunk refers to
    /// (0: none).
    pub base: u64,
}

impl Parts {
    /// True when every piece is the head or a new frame.
    pub fn copies_nothing(&self) -> bool {
        self.pieces
            .iter()
            .all(|p| matches!(p, Piece::Head | Piece::New(_)))
    }

    /// The bytes of a piece that is not a copy.
    pub fn bytes(&self, piece: &Piece) -> Option<&[u8]> {
        match piece {
            Piece::Head => Some(&self.head),
            Piece::New(i) => Some(&self.frames[*i].bytes),
            Piece::Old(_) | Piece::OldBase(_) => None,
        }
    }

    /// The whole object, its copied ranges taken from `old` and `old_base`.
    pub fn object(&self, old: &[u8], old_base: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for piece in &self.pieces {
            match piece {
                Piece::Old(r) => out.extend_from_slice(&old[r.clone()]),
                Piece::OldBase(r) => out.extend_from_slice(&old_base[r.clone()]),
                fresh => out.extend_from_slice(self.bytes(fresh).expect("not a copy")),
            }
        }
        out.extend_from_slice(&self.crc.to_le_bytes());
        debug_assert_eq!(out.len(), self.len);
        out
    }
}

/// Where a run of bytes of a [`Parts`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// [`Parts::head`].
    Head,
    /// A frame of [`Parts::frames`].
    New(usize),
    /// A range of the old chunk's object.
    Old(Range<usize>),
    /// A range of the old chunk's base.
    OldBase(Range<usize>),
}

/// The chunk a tile is an update of: the tile equals it outside the area `changed`.
pub struct Reuse<'a> {
    pub old: &'a Head,
    /// The snapshot that wrote the old chunk.
    pub old_seq: u64,
    pub changed: Area,
    /// Whether the new chunk may keep frames where they are in the old chunk, naming it as
    /// its base. A chunk in a pack is no base (docs/FORMAT.md §5): its kept frames are
    /// copied.
    pub referable: bool,
}

/// A new chunk keeps referring to frames of an older chunk only while they are at least
/// this fraction (1 / n) of its bytes; below, it copies them and holds all of its frames
/// again. This bounds what an updated tile costs: a reader fetches at most the tile's
/// bytes again from the base, and the base, kept whole while referred to, holds at most
/// n times the frames the tile still uses there.
const MIN_BASE_SHARE: usize = 4;

/// How a chunk cuts its tile: blocks of `rows` x `cols` pixels of a `size`-pixel tile,
/// and whether the predictor runs over each block as one sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocks {
    size: usize,
    rows: usize,
    cols: usize,
    whole: bool,
}

impl Blocks {
    /// The blocks a writer cuts a new chunk of a `size`-pixel tile of `dtype` into.
    pub fn for_new(size: usize, dtype: DataType) -> Blocks {
        let side = block_size(size, dtype.size());
        Blocks {
            size,
            rows: side,
            cols: side,
            whole: true,
        }
    }

    /// The blocks of an existing chunk, which an update of it keeps.
    fn of(head: &Head) -> Blocks {
        let (rows, cols) = head.block_shape();
        Blocks {
            size: head.size(),
            rows,
            cols,
            whole: head.predicts_whole_blocks(),
        }
    }

    /// Rows per block.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Rows of blocks.
    pub fn block_rows(&self) -> usize {
        self.size.div_ceil(self.rows)
    }

    /// Blocks in a row of blocks.
    pub fn across(&self) -> usize {
        self.size.div_ceil(self.cols)
    }

    /// Blocks per band.
    pub fn per_band(&self) -> usize {
        self.block_rows() * self.across()
    }

    /// The pixels block `k` covers (blocks row by row).
    fn block(&self, k: usize) -> Area {
        let (r, c) = (
            (k / self.across()) * self.rows,
            (k % self.across()) * self.cols,
        );
        Area::new(
            r..(r + self.rows).min(self.size),
            c..(c + self.cols).min(self.size),
        )
    }
}

/// A frame encoded on its own buffer, with its CRC-32C.
pub struct NewFrame {
    bytes: Vec<u8>,
    crc: u32,
}

/// Encodes block `k` of one band whose rows, from row `first_row` of the tile on, are
/// `plane` (whole rows of the tile, one after the other).
fn encode_block(
    blocks: &Blocks,
    enc: &Encoding,
    width: usize,
    plane: &[u8],
    first_row: usize,
    k: usize,
) -> Result<NewFrame> {
    let area = blocks.block(k);
    let tile_row = blocks.size * width;
    let row_bytes = area.cols.len() * width;
    let row = |y: usize| {
        let at = (y - first_row) * tile_row + area.cols.start * width;
        &plane[at..at + row_bytes]
    };
    SCRATCH.with(|scratch| {
        let mut raw = scratch.borrow_mut();
        raw.clear();
        if !blocks.whole {
            for y in area.rows.clone() {
                enc.predictor
                    .encode(width, area.cols.len(), row(y), &mut raw);
            }
        } else if area.cols.len() == blocks.size {
            // Whole rows: the block lies in the tile as one run.
            let at = (area.rows.start - first_row) * row_bytes;
            let run = &plane[at..at + area.rows.len() * row_bytes];
            enc.predictor.encode(width, area.pixels(), run, &mut raw);
        } else {
            BLOCK.with(|block| {
                let mut block = block.borrow_mut();
                block.clear();
                for y in area.rows.clone() {
                    block.extend_from_slice(row(y));
                }
                enc.predictor.encode(width, area.pixels(), &block, &mut raw);
            });
        }
        let mut bytes = Vec::new();
        enc.compression.compress(enc.level, &raw, &mut bytes)?;
        let crc = crc32c::crc32c(&bytes);
        Ok(NewFrame { bytes, crc })
    })
}

/// Encodes the blocks of block row `i` of every band of a tile of `dtype` cut as `blocks`,
/// from `band_rows`: for each band, the tile's rows of that block row. Returns them band
/// after band, left to right: what [`encode_from_frames`] takes, block row after block
/// row. A tile can so be encoded while the rest of it is still being read.
pub fn encode_block_row(
    blocks: &Blocks,
    enc: &Encoding,
    dtype: DataType,
    band_rows: &[&[u8]],
    i: usize,
) -> Result<Vec<NewFrame>> {
    band_rows
        .iter()
        .flat_map(|rows| (0..blocks.across()).map(move |j| (rows, j)))
        .map(|(rows, j)| encode_block_in_row(blocks, enc, dtype, rows, i, j))
        .collect()
}

/// Block `j` of block row `i` of one band, whose rows of that block row are `rows`: one
/// frame of [`encode_block_row`].
pub fn encode_block_in_row(
    blocks: &Blocks,
    enc: &Encoding,
    dtype: DataType,
    rows: &[u8],
    i: usize,
    j: usize,
) -> Result<NewFrame> {
    let k = i * blocks.across() + j;
    encode_block(blocks, enc, dtype.size(), rows, i * blocks.rows, k)
}

/// The chunk of a tile of `bands` bands of `dtype` cut as `blocks`, all of whose frames
/// are encoded: `rows_of_frames[i]` holds what [`encode_block_row`] gave for block row
/// `i`. `mask` is the tile's validity mask, if it has one.
pub fn encode_from_frames(
    blocks: &Blocks,
    enc: &Encoding,
    dtype: DataType,
    bands: usize,
    rows_of_frames: Vec<Vec<NewFrame>>,
    mask: Option<&[u8]>,
) -> Result<Parts> {
    assert_eq!(
        rows_of_frames.len(),
        blocks.block_rows(),
        "one list per block row"
    );
    let across = blocks.across();
    // Block rows come band after band; the table wants bands one after the other.
    let mut by_band: Vec<Vec<Option<NewFrame>>> = (0..bands)
        .map(|_| (0..blocks.per_band()).map(|_| None).collect())
        .collect();
    for (i, row) in rows_of_frames.into_iter().enumerate() {
        assert_eq!(
            row.len(),
            bands * across,
            "every band's blocks of block row {i}"
        );
        for (n, frame) in row.into_iter().enumerate() {
            by_band[n / across][i * across + n % across] = Some(frame);
        }
    }
    let frames: Vec<NewFrame> = by_band
        .into_iter()
        .flatten()
        .map(|f| f.expect("every block encoded"))
        .collect();
    let sources = vec![Source::Encode; frames.len()];
    let shape = Shape {
        blocks: *blocks,
        dtype,
        bands,
    };
    assemble(&shape, enc, &sources, frames, mask, None)
}

/// How a frame of the new chunk is made.
#[derive(Clone, Copy)]
enum Source {
    /// Encoded now.
    Encode,
    /// The old chunk's frame, stored in the old chunk.
    InOld(super::Frame),
    /// The old chunk's frame, stored in its base.
    InOldBase(super::Frame),
}

impl Source {
    /// The length of a kept frame; 0 for one encoded now.
    fn len(&self) -> usize {
        match self {
            Source::InOld(f) | Source::InOldBase(f) => f.len,
            Source::Encode => 0,
        }
    }
}

/// Encodes a tile as [`Parts`]. With `reuse`, the blocks that lie wholly outside the
/// changed area are not encoded: the caller vouches that the tile equals the old chunk
/// there. The new chunk cuts the tile as the old one did and refers to those blocks where
/// they are (the old chunk, or the old chunk's own base: there is never more than one
/// base), or copies them when too few of its bytes would stay elsewhere
/// ([`MIN_BASE_SHARE`]). Blocks are reused only when [`Head::frames_reusable`] says so (a
/// caller that decoded only part of the old chunk must check that first); otherwise the
/// whole tile is encoded, in the blocks of [`Blocks::for_new`]. Every frame is byte for
/// byte what encoding the whole tile in the same blocks gives, wherever it is kept.
pub fn encode_parts(tile: &Tile, enc: &Encoding, reuse: Option<Reuse<'_>>) -> Result<Parts> {
    let width = tile.dtype.size();
    let reuse = reuse.filter(|r| {
        r.old.frames_reusable(enc)
            && (r.old.size, r.old.bands, r.old.dtype) == (tile.size, tile.bands, tile.dtype)
    });
    // An update keeps the old chunk's blocks, and how its predictor ran over them.
    let blocks = match &reuse {
        Some(r) => Blocks::of(r.old),
        None => Blocks::for_new(tile.size, tile.dtype),
    };
    let per_band = blocks.per_band();
    // Where each band block comes from (the mask, last, is always encoded afresh).
    let sources: Vec<Source> = (0..tile.bands * per_band)
        .map(|i| match &reuse {
            Some(r) if !blocks.block(i % per_band).meets(&r.changed) => {
                let f = r.old.frames[i];
                if f.in_base {
                    Source::InOldBase(f)
                } else {
                    Source::InOld(f)
                }
            }
            _ => Source::Encode,
        })
        .collect();
    // The new frames, each on a buffer of its own. A big tile's blocks are spread over the
    // worker threads, so that the last tile of a write is not encoded by one thread while
    // the others wait. Only inside a worker pool, which sets how many threads a write may
    // use.
    let to_encode: Vec<usize> = (0..sources.len())
        .filter(|&i| matches!(sources[i], Source::Encode))
        .collect();
    let encode_one = |&i: &usize| {
        encode_block(
            &blocks,
            enc,
            width,
            tile.band_bytes(i / per_band),
            0,
            i % per_band,
        )
    };
    let encoded: Vec<NewFrame> =
        if to_encode.len() >= PARALLEL_BLOCKS && rayon::current_thread_index().is_some() {
            to_encode
                .par_iter()
                .map(encode_one)
                .collect::<Result<_>>()?
        } else {
            to_encode.iter().map(encode_one).collect::<Result<_>>()?
        };
    let shape = Shape {
        blocks,
        dtype: tile.dtype,
        bands: tile.bands,
    };
    let old = reuse.as_ref().map(|r| Old {
        base: r.old.base,
        seq: r.old_seq,
        referable: r.referable,
    });
    assemble(&shape, enc, &sources, encoded, tile.mask.as_deref(), old)
}

/// What a chunk holds: its blocks, type and bands.
struct Shape {
    blocks: Blocks,
    dtype: DataType,
    bands: usize,
}

/// The chunk an update keeps frames of: its base, the snapshot that wrote it, and whether
/// it may be a base itself.
#[derive(Clone, Copy)]
struct Old {
    base: u64,
    seq: u64,
    referable: bool,
}

/// Puts a chunk together: the frames `sources` say are encoded come from `encoded`, in
/// order; the mask, if any, is encoded here. `old` is the old chunk when `sources` keep
/// frames of one.
fn assemble(
    shape: &Shape,
    enc: &Encoding,
    sources: &[Source],
    mut encoded: Vec<NewFrame>,
    mask: Option<&[u8]>,
    old: Option<Old>,
) -> Result<Parts> {
    if let Some(mask) = mask {
        encoded.push(encode_mask(enc, mask)?);
    }
    let (old_base, old_seq) = old.map_or((0, 0), |o| (o.base, o.seq));
    let keep_base =
        keeps_base(sources, &encoded, old_base) && old.is_some_and(|o| o.referable || o.base != 0);
    let (table, pieces) = lay_out(sources, &encoded, mask.is_some(), keep_base, old_base);
    let count = frame_count(
        shape.bands,
        shape.blocks.size,
        shape.blocks.rows,
        shape.blocks.cols,
        mask.is_some(),
    );
    debug_assert_eq!(table.len(), count);
    // The base is the old chunk itself, or its own base if it has one.
    let base = match keep_base {
        true if old_base != 0 => old_base,
        true => old_seq,
        false => 0,
    };
    let local_len: usize = table.iter().filter(|f| f.2 == 0).map(|f| f.0).sum();
    let head = head(shape, enc, mask.is_some(), base, local_len, &table)?;
    // The object's checksum, from the checksums of its pieces: copied frames need not be
    // read to be summed.
    let crc = table
        .iter()
        .filter(|(_, _, at)| *at == 0)
        .fold(crc32c::crc32c(&head), |acc, &(len, crc, _)| {
            crate::checksum::crc32c_combine(acc, crc, len)
        });
    Ok(Parts {
        len: head.len() + local_len + TRAILER_LEN,
        head,
        frames: encoded,
        pieces,
        crc,
        base,
    })
}

/// The validity mask (one byte per pixel, 0 or 1) as a frame: packed one bit per pixel
/// and compressed.
fn encode_mask(enc: &Encoding, mask: &[u8]) -> Result<NewFrame> {
    let mut packed = Vec::with_capacity(mask.len() / 8);
    pack_bits(mask, &mut packed);
    let mut bytes = Vec::new();
    enc.compression.compress(enc.level, &packed, &mut bytes)?;
    let crc = crc32c::crc32c(&bytes);
    Ok(NewFrame { bytes, crc })
}

/// Whether the new chunk refers to the kept frames where they are rather than copying
/// them: only while they are at least a [`MIN_BASE_SHARE`]th of its bytes. Frames stored
/// in an old chunk that has a base (`old_base`) are always copied, so no chain of bases
/// forms.
fn keeps_base(sources: &[Source], encoded: &[NewFrame], old_base: u64) -> bool {
    let referred: usize = sources
        .iter()
        .filter(|s| is_referable(s, old_base))
        .map(Source::len)
        .sum();
    let total: usize = sources.iter().map(Source::len).sum::<usize>()
        + encoded.iter().map(|f| f.bytes.len()).sum::<usize>();
    referred > 0 && referred * MIN_BASE_SHARE >= total
}

/// Whether the new chunk may refer to frame `s` where it is, given the old chunk's base.
fn is_referable(s: &Source, old_base: u64) -> bool {
    match s {
        Source::InOld(_) => old_base == 0,
        Source::InOldBase(_) => true,
        Source::Encode => false,
    }
}

/// A chunk's frame table, each frame's (length, CRC, where it is: 0 when stored in the
/// new object, else its offset in the base), and the pieces the object is written from.
type Layout = (Vec<(usize, u32, usize)>, Vec<Piece>);

/// Lays the frames out in table order: encoded ones from `encoded` (the mask last, if
/// `masked`), kept ones referred to in the base when `keep_base` says so and they can be,
/// else copied; adjacent copied ranges become one piece.
fn lay_out(
    sources: &[Source],
    encoded: &[NewFrame],
    masked: bool,
    keep_base: bool,
    old_base: u64,
) -> Layout {
    let mut table = Vec::with_capacity(sources.len() + 1);
    let mut pieces = vec![Piece::Head];
    let push = |piece: Piece, pieces: &mut Vec<Piece>| match (pieces.last_mut(), piece) {
        (Some(Piece::Old(a)), Piece::Old(b)) if a.end == b.start => a.end = b.end,
        (Some(Piece::OldBase(a)), Piece::OldBase(b)) if a.end == b.start => a.end = b.end,
        (_, piece) => pieces.push(piece),
    };
    let mut next_new = 0;
    let mut append_new = |pieces: &mut Vec<Piece>| {
        let f = &encoded[next_new];
        pieces.push(Piece::New(next_new));
        next_new += 1;
        (f.bytes.len(), f.crc, 0)
    };
    for s in sources {
        match *s {
            Source::Encode => table.push(append_new(&mut pieces)),
            Source::InOld(f) | Source::InOldBase(f) if keep_base && is_referable(s, old_base) => {
                table.push((f.len, f.crc, f.offset))
            }
            Source::InOld(f) => {
                push(Piece::Old(f.offset..f.offset + f.len), &mut pieces);
                table.push((f.len, f.crc, 0));
            }
            Source::InOldBase(f) => {
                push(Piece::OldBase(f.offset..f.offset + f.len), &mut pieces);
                table.push((f.len, f.crc, 0));
            }
        }
    }
    if masked {
        table.push(append_new(&mut pieces));
    }
    debug_assert_eq!(next_new, encoded.len());
    (table, pieces)
}

/// The head of a version 3 chunk: header, base, frame table and the head's checksum;
/// `local_len` bytes of frames follow it in the object.
fn head(
    shape: &Shape,
    enc: &Encoding,
    masked: bool,
    base: u64,
    local_len: usize,
    table: &[(usize, u32, usize)],
) -> Result<Vec<u8>> {
    let Blocks {
        size,
        rows,
        cols,
        whole,
    } = shape.blocks;
    let head_len = head_len(VERSION, table.len());
    let payload_len = u32::try_from(head_len - super::HEADER_LEN + local_len)
        .map_err(|_| Error::InvalidInput("a tile compresses to more than 4 GiB".into()))?;
    let mut head = Vec::with_capacity(head_len);
    head.extend_from_slice(&MAGIC);
    head.push(VERSION);
    head.push(enc.compression.code());
    head.push(enc.predictor.code());
    head.push(shape.dtype.gdal_code() as u8);
    head.extend_from_slice(&(shape.bands as u16).to_le_bytes());
    let flags = if masked { FLAG_MASK } else { 0 } | if whole { FLAG_WHOLE_BLOCKS } else { 0 };
    head.extend_from_slice(&flags.to_le_bytes());
    head.extend_from_slice(&(size as u32).to_le_bytes());
    head.extend_from_slice(&(size as u32).to_le_bytes());
    head.extend_from_slice(&payload_len.to_le_bytes());
    head.extend_from_slice(&(rows as u16).to_le_bytes());
    head.extend_from_slice(&(cols as u16).to_le_bytes());
    head.extend_from_slice(&base.to_le_bytes());
    for &(len, crc, at) in table {
        let at = u32::try_from(at)
            .map_err(|_| Error::InvalidInput("a chunk of more than 4 GiB".into()))?;
        head.extend_from_slice(&(len as u32).to_le_bytes());
        head.extend_from_slice(&crc.to_le_bytes());
        head.extend_from_slice(&at.to_le_bytes());
    }
    let head_crc = crc32c::crc32c(&head);
    head.extend_from_slice(&head_crc.to_le_bytes());
    debug_assert_eq!(head.len(), head_len);
    Ok(head)
}
