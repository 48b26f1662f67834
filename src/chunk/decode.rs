//! Decoding chunk objects: whole, or only some of their blocks.

use std::path::Path;

use rayon::prelude::*;

use super::head::BlockDst;
use super::{stored_checksum, Expected, Head, HEADER_LEN, PARALLEL_FRAMES, TRAILER_LEN, VERSION_1};
use crate::area::Area;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::tile::{SampleBuf, Tile};

/// Decodes a chunk object that holds all of its frames, checking its checksum and that it
/// matches the store. `path` is only used in error messages.
pub fn decode(object: &[u8], expected: &Expected, path: &Path) -> Result<Tile> {
    Chunk::parse(object, expected, path)?.decode()
}

/// Decodes a chunk that holds all of its frames straight into caller buffers: `data`
/// takes the bands (band-sequential, tile-sized planes) and `mask`, if given, the validity
/// mask (all 255 when the chunk has none). Returns whether the chunk carries a mask.
pub fn decode_into(
    object: &[u8],
    expected: &Expected,
    path: &Path,
    data: &mut [u8],
    mask: Option<&mut [u8]>,
) -> Result<bool> {
    let chunk = Chunk::parse(object, expected, path)?;
    chunk.decode_into(data, mask)?;
    Ok(chunk.head.has_mask)
}

/// The bytes of a chunk's base that hold its frames there ([`Head::base_span`]).
struct BaseBytes<'a> {
    bytes: &'a [u8],
    /// Where `bytes` start in the base object.
    start: usize,
    path: &'a Path,
}

/// A whole chunk object whose checksum and head have been checked, with the part of its
/// base it refers to once given ([`Chunk::with_base`]).
pub struct Chunk<'a> {
    head: Head,
    object: &'a [u8],
    path: &'a Path,
    base: Option<BaseBytes<'a>>,
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
        Ok(Chunk {
            head,
            object,
            path,
            base: None,
        })
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Gives the chunk the bytes of its base that [`Head::base_span`] names: `bytes`, read
    /// from offset `start` of the base object at `path`. Frames taken from there are
    /// checked against their checksums when decoded.
    pub fn with_base(mut self, bytes: &'a [u8], start: usize, path: &'a Path) -> Chunk<'a> {
        self.base = Some(BaseBytes { bytes, start, path });
        self
    }

    /// Frame `i`'s bytes, whether they must be checked, and the path of the object they
    /// are in (for messages).
    fn frame(&self, i: usize) -> Result<(&[u8], bool, &Path)> {
        let f = self.head.frames[i];
        if !f.in_base {
            return Ok((&self.object[f.offset..f.offset + f.len], false, self.path));
        }
        let base = self.base.as_ref().ok_or_else(|| {
            Error::corrupt(
                self.path,
                "the chunk keeps frames in a base chunk that was not read",
            )
        })?;
        let bytes = f
            .offset
            .checked_sub(base.start)
            .and_then(|at| base.bytes.get(at..at + f.len))
            .ok_or_else(|| {
                Error::corrupt(
                    base.path,
                    format!(
                        "the chunk {} keeps frame {i} here, which this object does not hold",
                        self.path.display()
                    ),
                )
            })?;
        Ok((bytes, true, self.path))
    }

    /// Decodes the whole tile.
    pub fn decode(&self) -> Result<Tile> {
        let (dtype, bands, size): (DataType, usize, usize) =
            (self.head.dtype, self.head.bands, self.head.size);
        let n = size * size;
        let mut data = SampleBuf::zeroed(n * bands * dtype.size());
        let mut mask = vec![0u8; n];
        self.decode_into(data.bytes_mut(), Some(&mut mask))?;
        Ok(Tile {
            dtype,
            bands,
            size,
            data,
            mask: self.head.has_mask.then_some(mask),
        })
    }

    /// Decodes the whole tile into `data` (band-sequential, tile-sized planes) and, if
    /// given, the validity mask into `mask` (all 255 when the chunk has none).
    pub fn decode_into(&self, data: &mut [u8], mask: Option<&mut [u8]>) -> Result<()> {
        self.decode_area_into(&Area::whole(self.head.size), data, mask)
    }

    /// Decodes the blocks that meet `area` (the whole chunk for a version 1 chunk) into
    /// `data` (band-sequential, tile-sized planes: other pixels are left alone) and, if
    /// given, the whole validity mask into `mask` (all 255 when the chunk has none).
    pub fn decode_area_into(
        &self,
        area: &Area,
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
        if head.version == VERSION_1 {
            let (bytes, check, path) = self.frame(0)?;
            return head.decode_whole_v1(bytes, check, data, mask, path);
        }
        let blocks = head.blocks_meeting(area);
        let frames: Vec<usize> = (0..head.bands)
            .flat_map(|b| blocks.iter().map(move |&k| head.frame_of(b, k)))
            .collect();
        let dsts = head.block_dsts(data, &frames);
        let decode = |(i, dst): (usize, BlockDst<'_>)| {
            let (bytes, check, path) = self.frame(i)?;
            head.decode_block(i, bytes, check, dst, path)
        };
        let mut work = frames.iter().copied().zip(dsts);
        // Inside a pool, the blocks of one tile are decoded side by side: a reader waiting
        // for one tile gets it sooner.
        if frames.len() >= PARALLEL_FRAMES && rayon::current_thread_index().is_some() {
            work.collect::<Vec<_>>()
                .into_par_iter()
                .try_for_each(decode)?;
        } else {
            work.try_for_each(decode)?;
        }
        match (mask, head.mask_frame()) {
            (Some(m), Some(i)) => {
                let (bytes, check, path) = self.frame(i)?;
                head.decode_mask(i, bytes, check, m, path)
            }
            (Some(m), None) => {
                m.fill(255);
                Ok(())
            }
            (None, _) => Ok(()),
        }
    }
}

/// Which object a frame is read from: the chunk's own, or its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Object,
    Base,
}

/// Decodes blocks `blocks` (by index, as [`Head::blocks_meeting`] gives them) of every band
/// of a chunk (version 2 or later), and its whole mask (all 255 when it has none) into
/// `mask` if given, fetching only their frames through `read(location, offset, len)` and
/// checking each against its own checksum: an update in place needs no more of a chunk.
pub fn read_blocks(
    head: &Head,
    blocks: &[usize],
    mut read: impl FnMut(Location, usize, usize) -> Result<Vec<u8>>,
    data: &mut [u8],
    mask: Option<&mut [u8]>,
    path: &Path,
) -> Result<()> {
    assert!(
        head.version != VERSION_1,
        "only blocks of version 2 chunks and later are read alone"
    );
    let location = |i: usize| match head.frames[i].in_base {
        true => Location::Base,
        false => Location::Object,
    };
    let mut frames: Vec<usize> = (0..head.bands)
        .flat_map(|b| blocks.iter().map(move |&k| head.frame_of(b, k)))
        .collect();
    frames.sort_unstable();
    frames.dedup();
    let mut dsts = head.block_dsts(data, &frames).into_iter();
    // Frames next to each other in one object are fetched together.
    let mut at = 0;
    while at < frames.len() {
        let i = frames[at];
        let mut end = at + 1;
        while end < frames.len() {
            let (prev, next) = (head.frames[frames[end - 1]], head.frames[frames[end]]);
            if location(frames[end]) != location(i) || next.offset != prev.offset + prev.len {
                break;
            }
            end += 1;
        }
        let first = head.frames[i];
        let last = head.frames[frames[end - 1]];
        let bytes = read(
            location(i),
            first.offset,
            last.offset + last.len - first.offset,
        )?;
        for &j in &frames[at..end] {
            let f = head.frames[j];
            let from = f.offset - first.offset;
            let frame = bytes
                .get(from..from + f.len)
                .ok_or_else(|| Error::corrupt(path, format!("chunk ends inside frame {j}")))?;
            let dst = dsts.next().expect("one destination per frame");
            head.decode_block(j, frame, true, dst, path)?;
        }
        at = end;
    }
    if let Some(mask) = mask {
        match head.mask_frame() {
            Some(i) => {
                let f = head.frames[i];
                let bytes = read(location(i), f.offset, f.len)?;
                if bytes.len() != f.len {
                    return Err(Error::corrupt(path, "chunk ends inside its mask"));
                }
                head.decode_mask(i, &bytes, true, mask, path)?;
            }
            None => mask.fill(255),
        }
    }
    Ok(())
}
