//! Encoding tiles into chunk objects, whole or as an update of an older chunk.

use std::ops::Range;

use rayon::prelude::*;

use super::{
    block_size, frame_count, head_len, pack_bits, Encoding, Head, BLOCK, FLAG_MASK,
    FLAG_WHOLE_BLOCKS, MAGIC, PARALLEL_BLOCKS, SCRATCH, TRAILER_LEN, VERSION,
};
use crate::area::Area;
use crate::error::{Error, Result};
use crate::tile::Tile;

/// Encodes a tile into a chunk object that holds all of its frames.
pub fn encode(tile: &Tile, enc: &Encoding) -> Result<Vec<u8>> {
    let parts = encode_parts(tile, enc, None)?;
    // Without an old chunk, the head and every frame are one fresh run.
    assert_eq!(parts.pieces, [Piece::Fresh(0..parts.fresh.len())]);
    let mut out = parts.fresh;
    out.extend_from_slice(&parts.crc.to_le_bytes());
    Ok(out)
}

/// A chunk object as pieces: runs of fresh bytes (the head, newly encoded frames) and
/// ranges of older objects (frames copied), then the trailer (the CRC-32C `crc`). Frames
/// the chunk refers to in its `base` are in no piece.
pub struct Parts {
    /// The head, then the newly encoded frames.
    pub fresh: Vec<u8>,
    pub pieces: Vec<Piece>,
    pub crc: u32,
    /// The length of the whole object.
    pub len: usize,
    /// The snapshot whose chunk of the tile holds the frames the new chunk refers to
    /// (0: none).
    pub base: u64,
}

/// Where a run of bytes of a [`Parts`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A range of [`Parts::fresh`].
    Fresh(Range<usize>),
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
}

/// A new chunk keeps referring to frames of an older chunk only while they are at least
/// this fraction (1 / n) of its bytes; below, it copies them and holds all of its frames
/// again. This bounds what an updated tile costs: a reader fetches at most the tile's
/// bytes again from the base, and the base, kept whole while referred to, holds at most
/// n times the frames the tile still uses there.
const MIN_BASE_SHARE: usize = 4;

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

/// Encodes a tile as [`Parts`]. With `reuse`, the blocks that lie wholly outside the
/// changed area are not encoded: the caller vouches that the tile equals the old chunk
/// there. The new chunk cuts the tile as the old one did and refers to those blocks where
/// they are (the old chunk, or the old chunk's own base: there is never more than one
/// base), or copies them when too few of its bytes would stay elsewhere
/// ([`MIN_BASE_SHARE`]). Blocks are reused only when [`Head::frames_reusable`] says so (a
/// caller that decoded only part of the old chunk must check that first); otherwise the
/// whole tile is encoded, in the blocks of [`block_size`]. Every frame is byte for byte
/// what encoding the whole tile in the same blocks gives, wherever it is kept.
pub fn encode_parts(tile: &Tile, enc: &Encoding, reuse: Option<Reuse<'_>>) -> Result<Parts> {
    let width = tile.dtype.size();
    let reuse = reuse.filter(|r| {
        r.old.frames_reusable(enc)
            && (r.old.size, r.old.bands, r.old.dtype) == (tile.size, tile.bands, tile.dtype)
    });
    // An update keeps the old chunk's blocks, and how its predictor ran over them.
    let (block_rows, block_cols, whole_blocks) = match &reuse {
        Some(r) => {
            let (rows, cols) = r.old.block_shape();
            (rows, cols, r.old.predicts_whole_blocks())
        }
        None => {
            let side = block_size(tile.size, width);
            (side, side, true)
        }
    };
    let across = tile.size.div_ceil(block_cols);
    let per_band = tile.size.div_ceil(block_rows) * across;
    let count = frame_count(
        tile.bands,
        tile.size,
        block_rows,
        block_cols,
        tile.mask.is_some(),
    );
    let block = |k: usize| {
        let (r, c) = ((k / across) * block_rows, (k % across) * block_cols);
        Area::new(
            r..(r + block_rows).min(tile.size),
            c..(c + block_cols).min(tile.size),
        )
    };
    // Where each band block comes from (the mask, last, is always encoded afresh).
    let sources: Vec<Source> = (0..tile.bands * per_band)
        .map(|i| match &reuse {
            Some(r) if !block(i % per_band).meets(&r.changed) => {
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
    // Appends block `k` of band `b`, encoded, to `out`; returns its length and CRC.
    let encode_block = |b: usize, k: usize, out: &mut Vec<u8>| -> Result<(usize, u32)> {
        let area = block(k);
        let plane = tile.band_bytes(b);
        let row_bytes = area.cols.len() * width;
        let row = |y: usize| {
            let at = (y * tile.size + area.cols.start) * width;
            &plane[at..at + row_bytes]
        };
        SCRATCH.with(|scratch| {
            let mut raw = scratch.borrow_mut();
            raw.clear();
            if !whole_blocks {
                for y in area.rows.clone() {
                    enc.predictor
                        .encode(width, area.cols.len(), row(y), &mut raw);
                }
            } else if area.cols.len() == tile.size {
                // Whole rows: the block lies in the tile as one run.
                let at = area.rows.start * row_bytes;
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
            let start = out.len();
            enc.compression.compress(enc.level, &raw, out)?;
            Ok((out.len() - start, crc32c::crc32c(&out[start..])))
        })
    };
    // The new frames, each on a buffer of its own. A big tile's blocks are spread over the
    // worker threads, so that the last tile of a write is not encoded by one thread while
    // the others wait. Only inside a worker pool, which sets how many threads a write may
    // use.
    let to_encode: Vec<usize> = (0..sources.len())
        .filter(|&i| matches!(sources[i], Source::Encode))
        .collect();
    let encode_one = |&i: &usize| -> Result<(Vec<u8>, (usize, u32))> {
        let mut out = Vec::new();
        encode_block(i / per_band, i % per_band, &mut out).map(|f| (out, f))
    };
    let mut encoded: Vec<(Vec<u8>, (usize, u32))> =
        if to_encode.len() >= PARALLEL_BLOCKS && rayon::current_thread_index().is_some() {
            to_encode
                .par_iter()
                .map(encode_one)
                .collect::<Result<_>>()?
        } else {
            to_encode.iter().map(encode_one).collect::<Result<_>>()?
        };
    if let Some(mask) = &tile.mask {
        let mut packed = Vec::with_capacity(mask.len() / 8);
        pack_bits(mask, &mut packed);
        let mut out = Vec::new();
        enc.compression.compress(enc.level, &packed, &mut out)?;
        let crc = crc32c::crc32c(&out);
        let len = out.len();
        encoded.push((out, (len, crc)));
    }

    // Refer to the kept frames where they are, or copy them if too few bytes would stay
    // there. The base is the old chunk itself, or its own base if it has one: frames
    // stored in an old chunk that has a base are copied, so no chain of bases forms.
    let (old_base, old_seq) = reuse.as_ref().map_or((0, 0), |r| (r.old.base, r.old_seq));
    let new_base = if old_base != 0 { old_base } else { old_seq };
    let referable = |s: &Source| match s {
        Source::InOld(_) => old_base == 0,
        Source::InOldBase(_) => true,
        Source::Encode => false,
    };
    let len_of = |s: &Source| match s {
        Source::InOld(f) | Source::InOldBase(f) => f.len,
        Source::Encode => 0,
    };
    let referred: usize = sources.iter().filter(|s| referable(s)).map(len_of).sum();
    let total: usize = sources.iter().map(len_of).sum::<usize>()
        + encoded.iter().map(|(_, (len, _))| len).sum::<usize>();
    let keep_base = referred > 0 && referred * MIN_BASE_SHARE >= total;

    let head_len = head_len(VERSION, count);
    // (length, CRC, where) of every frame, where = 0 for frames stored in the new object.
    let mut table: Vec<(usize, u32, usize)> = Vec::with_capacity(count);
    let local_len = total - if keep_base { referred } else { 0 };
    let mut fresh = Vec::with_capacity(head_len + encoded.iter().map(|e| e.0.len()).sum::<usize>());
    fresh.resize(head_len, 0);
    let mut pieces = vec![Piece::Fresh(0..head_len)];
    let push = |piece: Piece, pieces: &mut Vec<Piece>| match (pieces.last_mut(), piece) {
        (Some(Piece::Fresh(a)), Piece::Fresh(b)) if a.end == b.start => a.end = b.end,
        (Some(Piece::Old(a)), Piece::Old(b)) if a.end == b.start => a.end = b.end,
        (Some(Piece::OldBase(a)), Piece::OldBase(b)) if a.end == b.start => a.end = b.end,
        (_, piece) => pieces.push(piece),
    };
    let mut new_frames = encoded.into_iter();
    let mut append_fresh = |fresh: &mut Vec<u8>, pieces: &mut Vec<Piece>| {
        let (bytes, (len, crc)) = new_frames.next().expect("one encoded frame per fresh one");
        let start = fresh.len();
        fresh.extend_from_slice(&bytes);
        push(Piece::Fresh(start..start + len), pieces);
        (len, crc)
    };
    for s in &sources {
        match *s {
            Source::Encode => {
                let (len, crc) = append_fresh(&mut fresh, &mut pieces);
                table.push((len, crc, 0));
            }
            _ if keep_base && referable(s) => {
                let (Source::InOld(f) | Source::InOldBase(f)) = *s else {
                    unreachable!("referable frames are kept ones")
                };
                table.push((f.len, f.crc, f.offset));
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
    if tile.mask.is_some() {
        let (len, crc) = append_fresh(&mut fresh, &mut pieces);
        table.push((len, crc, 0));
    }
    debug_assert_eq!(table.len(), count);

    let payload_len = u32::try_from(head_len - super::HEADER_LEN + local_len)
        .map_err(|_| Error::InvalidInput("a tile compresses to more than 4 GiB".into()))?;
    let base = if keep_base { new_base } else { 0 };
    let mut head = Vec::with_capacity(head_len);
    head.extend_from_slice(&MAGIC);
    head.push(VERSION);
    head.push(enc.compression.code());
    head.push(enc.predictor.code());
    head.push(tile.dtype.gdal_code() as u8);
    head.extend_from_slice(&(tile.bands as u16).to_le_bytes());
    let flags = if tile.mask.is_some() { FLAG_MASK } else { 0 }
        | if whole_blocks { FLAG_WHOLE_BLOCKS } else { 0 };
    head.extend_from_slice(&flags.to_le_bytes());
    head.extend_from_slice(&(tile.size as u32).to_le_bytes());
    head.extend_from_slice(&(tile.size as u32).to_le_bytes());
    head.extend_from_slice(&payload_len.to_le_bytes());
    head.extend_from_slice(&(block_rows as u16).to_le_bytes());
    head.extend_from_slice(&(block_cols as u16).to_le_bytes());
    head.extend_from_slice(&base.to_le_bytes());
    for &(len, crc, at) in &table {
        let at = u32::try_from(at)
            .map_err(|_| Error::InvalidInput("a chunk of more than 4 GiB".into()))?;
        head.extend_from_slice(&(len as u32).to_le_bytes());
        head.extend_from_slice(&crc.to_le_bytes());
        head.extend_from_slice(&at.to_le_bytes());
    }
    let head_crc = crc32c::crc32c(&head);
    head.extend_from_slice(&head_crc.to_le_bytes());
    debug_assert_eq!(head.len(), head_len);
    // The object's checksum, from the checksums of its pieces: copied frames need not be
    // read to be summed.
    let crc = table
        .iter()
        .filter(|(_, _, at)| *at == 0)
        .fold(crc32c::crc32c(&head), |acc, &(len, crc, _)| {
            crate::checksum::crc32c_combine(acc, crc, len)
        });
    fresh[..head_len].copy_from_slice(&head);
    Ok(Parts {
        len: head_len + local_len + TRAILER_LEN,
        fresh,
        pieces,
        crc,
        base,
    })
}
