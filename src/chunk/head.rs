//! The head of a chunk: what it holds, and where each of its frames is.

use std::marker::PhantomData;
use std::ops::Range;
use std::path::Path;

use super::{
    frame_count, head_len, unpack_bits, Encoding, Expected, BASE_FIELD_LEN, FLAG_MASK,
    FLAG_WHOLE_BLOCKS, HEADER_LEN, MAGIC, SCRATCH, TABLE_ENTRY_LEN, TRAILER_LEN,
    V2_TABLE_ENTRY_LEN, VERSION, VERSION_1, VERSION_2,
};
use crate::area::Area;
use crate::codec::{Compression, Predictor};
use crate::dtype::DataType;
use crate::error::{Error, Result};

/// Where a frame lies, and its CRC-32C: at `offset` in its chunk object, or, when
/// `in_base`, in the chunk's base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub offset: usize,
    pub len: usize,
    pub crc: u32,
    pub in_base: bool,
}

/// The checked head of a chunk: what it holds, how its bands are cut in blocks and, from
/// version 2 on, where each frame lies.
#[derive(Debug, Clone)]
pub struct Head {
    pub(super) version: u8,
    pub(super) compression: Compression,
    pub(super) predictor: Predictor,
    pub(super) dtype: DataType,
    pub(super) bands: usize,
    pub(super) size: usize,
    pub(super) has_mask: bool,
    /// Rows and columns per block; a version 1 chunk is one block holding everything, mask
    /// included.
    pub(super) block_rows: usize,
    pub(super) block_cols: usize,
    /// Whether the predictor ran over each block as one sequence, not row by row.
    pub(super) whole_blocks: bool,
    pub(super) frames: Vec<Frame>,
    /// The snapshot whose chunk of the same tile holds the frames `in_base` (0: none).
    pub(super) base: u64,
    /// The length of the whole object.
    pub(super) object_len: usize,
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Head {
    /// The length of the head of a chunk from its first bytes (the fixed fields), or
    /// `None` when they are too few (then [`parse`](Head::parse) says what is wrong).
    pub fn len_from(start: &[u8]) -> Option<usize> {
        if start.len() < HEADER_LEN {
            return None;
        }
        let version = start[4];
        if version == VERSION_1 {
            return Some(HEADER_LEN);
        }
        let bands = u16_at(start, 8);
        let masked = u16_at(start, 10) as u16 & FLAG_MASK != 0;
        let height = u32_at(start, 16) as usize;
        let (rows, cols) = block_shape(version, start, height);
        Some(head_len(
            version,
            frame_count(bands, height, rows.max(1), cols.max(1), masked),
        ))
    }

    /// Checks the head at the start of `start` (at least [`len_from`](Head::len_from)
    /// bytes of the object) against the store and its own checksum.
    pub fn parse(start: &[u8], expected: &Expected, path: &Path) -> Result<Head> {
        let mut head = Head::parse_header(start, expected, path)?;
        if head.version == VERSION_1 {
            head.check_frame_len(0, head.frames[0].len, path)?;
            return Ok(head);
        }
        let (count, len) = head.parse_blocks(start, path)?;
        head.frames = head.parse_frames(start, count, len, expected.max_chunk_len(), path)?;
        Ok(head)
    }

    /// The fixed header: checked against the store and bounded, with the whole payload
    /// as its one frame (what a version 1 chunk is).
    fn parse_header(start: &[u8], expected: &Expected, path: &Path) -> Result<Head> {
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
        let (compression, predictor, dtype) = super::codec_fields(start, path)?;
        let bands = u16_at(start, 8);
        let flags = u16_at(start, 10) as u16;
        let (w, h) = (u32_at(start, 12) as usize, u32_at(start, 16) as usize);
        let object_len = HEADER_LEN + u32_at(start, 20) as usize + TRAILER_LEN;
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
        let max_len = expected.max_chunk_len();
        if object_len > max_len {
            return Err(bad(format!(
                "the chunk claims {object_len} bytes, more than any chunk of this store's \
                 tiles can take ({max_len})"
            )));
        }
        Ok(Head {
            version,
            compression,
            predictor,
            dtype,
            bands,
            size: w,
            has_mask: flags & FLAG_MASK != 0,
            block_rows: w.max(1),
            block_cols: w.max(1),
            whole_blocks: version == VERSION && flags & FLAG_WHOLE_BLOCKS != 0,
            frames: vec![Frame {
                offset: HEADER_LEN,
                len: object_len - HEADER_LEN - TRAILER_LEN,
                crc: 0,
                in_base: false,
            }],
            base: 0,
            object_len,
        })
    }

    /// Takes the blocks' shape (and, version 3 on, the base) of a chunk with a frame table,
    /// and checks that the table fits in the object and the head's checksum. Returns the
    /// number of frames and the head's length.
    fn parse_blocks(&mut self, start: &[u8], path: &Path) -> Result<(usize, usize)> {
        let bad = |detail: String| Error::corrupt(path, detail);
        let (rows, cols) = block_shape(self.version, start, self.size);
        if rows == 0 || cols == 0 {
            return Err(bad(format!(
                "the chunk's blocks of {rows} x {cols} pixels cut nothing"
            )));
        }
        let count = frame_count(self.bands, self.size, rows, cols, self.has_mask);
        let len = head_len(self.version, count);
        let object_len = self.object_len;
        if len.saturating_add(TRAILER_LEN) > object_len {
            return Err(bad(format!(
                "its blocks of {rows} x {cols} pixels make {count} frames, whose table \
                 takes more than the {object_len} bytes of the chunk"
            )));
        }
        if start.len() < len {
            return Err(bad(format!(
                "the head of {len} bytes runs past the {} bytes read",
                start.len()
            )));
        }
        let (want, got) = (u32_at(start, len - 4), crc32c::crc32c(&start[..len - 4]));
        if want != got {
            return Err(bad(format!(
                "chunk head checksum mismatch (stored {want:08x}, computed {got:08x}): the \
                 chunk was changed after it was written"
            )));
        }
        self.block_rows = rows;
        self.block_cols = cols;
        if self.version != VERSION_2 {
            self.base = u64_at(start, HEADER_LEN);
        }
        Ok((count, len))
    }

    /// The `count` frames of the table in a head of `len` bytes, each bounded: those stored
    /// in the object must fill its payload exactly, those kept in the base must lie within
    /// `max_len`, the longest any chunk of the store's tiles can be.
    fn parse_frames(
        &self,
        start: &[u8],
        count: usize,
        len: usize,
        max_len: usize,
        path: &Path,
    ) -> Result<Vec<Frame>> {
        let bad = |detail: String| Error::corrupt(path, detail);
        let object_len = self.object_len;
        let (table, entry_len) = match self.version {
            VERSION_2 => (HEADER_LEN, V2_TABLE_ENTRY_LEN),
            _ => (HEADER_LEN + BASE_FIELD_LEN, TABLE_ENTRY_LEN),
        };
        // The table was checked to lie inside the object, so `count` is bounded by the
        // object's length, itself bounded by the store's tile size.
        let mut frames = Vec::with_capacity(count);
        // Frames stored here follow the head in table order; the others are in the base.
        let mut at = len;
        for i in 0..count {
            let entry = table + entry_len * i;
            let frame_len = u32_at(start, entry) as usize;
            let crc = u32_at(start, entry + 4);
            let elsewhere = match self.version {
                VERSION_2 => 0,
                _ => u32_at(start, entry + 8) as usize,
            };
            self.check_frame_len(i, frame_len, path)?;
            if elsewhere == 0 {
                frames.push(Frame {
                    offset: at,
                    len: frame_len,
                    crc,
                    in_base: false,
                });
                at += frame_len;
                if at + TRAILER_LEN > object_len {
                    return Err(bad(format!(
                        "frame {i} ends at byte {at}, past the payload of the {object_len}-byte \
                         chunk"
                    )));
                }
                continue;
            }
            if self.base == 0 {
                return Err(bad(format!(
                    "frame {i} is in a base chunk, but the chunk names none"
                )));
            }
            // The base is a chunk of the same tile: it is bounded as this one is.
            if elsewhere + frame_len > max_len {
                return Err(bad(format!(
                    "frame {i} is kept at bytes {elsewhere}..{} of the base chunk, beyond \
                     any chunk of this store's tiles ({max_len} bytes)",
                    elsewhere + frame_len
                )));
            }
            frames.push(Frame {
                offset: elsewhere,
                len: frame_len,
                crc,
                in_base: true,
            });
        }
        if at + TRAILER_LEN != object_len {
            return Err(bad(format!(
                "the frames hold {} bytes, the payload {}",
                at - len,
                object_len - TRAILER_LEN - len
            )));
        }
        Ok(frames)
    }

    /// The bytes frame `i` decodes to: a block of one band, the packed mask, or (version 1)
    /// the whole tile. Derived from the store's tile shape and the head's blocks alone.
    fn frame_raw_len(&self, i: usize) -> usize {
        let (pixels, width) = (self.size * self.size, self.dtype.size());
        let mask_len = pixels.div_ceil(8);
        if self.version == VERSION_1 {
            return self.bands * pixels * width + if self.has_mask { mask_len } else { 0 };
        }
        if i >= self.bands * self.blocks() {
            return mask_len;
        }
        let area = self.block_area(i % self.blocks());
        area.rows.len() * area.cols.len() * width
    }

    /// Refuses a frame `len` bytes long if the chunk's codec never makes one that long of
    /// what the frame decodes to: before anything is read or allocated for it.
    fn check_frame_len(&self, i: usize, len: usize, path: &Path) -> Result<()> {
        let raw = self.frame_raw_len(i);
        let max = self.compression.max_encoded_len(raw);
        if len <= max {
            return Ok(());
        }
        Err(Error::corrupt(
            path,
            format!(
                "frame {i} claims {len} bytes, but {} makes at most {max} of the {raw} bytes \
                 it decodes to",
                self.compression.option_name()
            ),
        ))
    }

    pub fn has_mask(&self) -> bool {
        self.has_mask
    }

    /// The compressor of the chunk's frames.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The predictor of the chunk's frames.
    pub fn predictor(&self) -> Predictor {
        self.predictor
    }

    /// The length of the whole object.
    pub fn object_len(&self) -> usize {
        self.object_len
    }

    /// Where each frame is, in table order (a version 1 chunk is one frame, without a
    /// checksum of its own).
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// False for a chunk of the first format: one stream, without a table of frames.
    pub fn has_frame_table(&self) -> bool {
        self.version != VERSION_1
    }

    /// The snapshot whose chunk of the same tile holds some of this chunk's frames.
    pub fn base(&self) -> Option<u64> {
        (self.base != 0).then_some(self.base)
    }

    /// The bytes of the base chunk that hold this chunk's frames there: what a reader of
    /// the whole tile fetches of the base (`None`: no frame is there).
    pub fn base_span(&self) -> Option<Range<usize>> {
        let mut there = self.frames.iter().filter(|f| f.in_base);
        let first = there.next()?;
        Some(there.fold(first.offset..first.offset + first.len, |r, f| {
            r.start.min(f.offset)..r.end.max(f.offset + f.len)
        }))
    }

    /// True when [`encode_parts`](super::encode_parts) with `enc` reuses this chunk's
    /// frames: it has a table of frames (version 2 or later), and the same codec and
    /// predictor. (The codec level is not recorded, but it is fixed per store.) The new
    /// chunk keeps its blocks.
    pub fn frames_reusable(&self, enc: &Encoding) -> bool {
        self.version >= VERSION_2
            && self.compression == enc.compression
            && self.predictor == enc.predictor
    }

    /// The tile's width and height in pixels.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Rows and columns per block.
    pub fn block_shape(&self) -> (usize, usize) {
        (self.block_rows, self.block_cols)
    }

    /// Whether the predictor runs over each block as one sequence (else row by row).
    pub fn predicts_whole_blocks(&self) -> bool {
        self.whole_blocks
    }

    fn blocks_across(&self) -> usize {
        self.size.div_ceil(self.block_cols)
    }

    /// Blocks per band.
    pub fn blocks(&self) -> usize {
        self.size.div_ceil(self.block_rows) * self.blocks_across()
    }

    /// The pixels block `k` of each band covers (blocks row by row).
    pub fn block_area(&self, k: usize) -> Area {
        let (by, bx) = (k / self.blocks_across(), k % self.blocks_across());
        let (r, c) = (by * self.block_rows, bx * self.block_cols);
        Area::new(
            r..(r + self.block_rows).min(self.size),
            c..(c + self.block_cols).min(self.size),
        )
    }

    /// The blocks that meet `area`, in order.
    pub fn blocks_meeting(&self, area: &Area) -> Vec<usize> {
        let area = area.intersect(&Area::whole(self.size));
        if area.is_empty() {
            return Vec::new();
        }
        let across = self.blocks_across();
        let rows = area.rows.start / self.block_rows..area.rows.end.div_ceil(self.block_rows);
        let cols = area.cols.start / self.block_cols..area.cols.end.div_ceil(self.block_cols);
        rows.flat_map(|by| cols.clone().map(move |bx| by * across + bx))
            .collect()
    }

    /// The frame holding block `k` of band `b`.
    pub(super) fn frame_of(&self, b: usize, k: usize) -> usize {
        if self.version == VERSION_1 {
            return 0;
        }
        b * self.blocks() + k
    }

    /// The index of the mask frame, if the chunk has one of its own.
    pub(super) fn mask_frame(&self) -> Option<usize> {
        (self.has_mask && self.version != VERSION_1).then(|| self.frames.len() - 1)
    }

    /// Checks frame `i`'s bytes against its checksum, if `check` (a reader that checked
    /// the whole object need not, for frames stored in it).
    fn check_frame(&self, i: usize, bytes: &[u8], check: bool, path: &Path) -> Result<()> {
        if !check || crc32c::crc32c(bytes) == self.frames[i].crc {
            return Ok(());
        }
        let whose = match self.frames[i].in_base {
            true => " (kept in the chunk's base)",
            false => "",
        };
        Err(Error::corrupt(
            path,
            format!(
                "frame {i}{whose} checksum mismatch: the chunk was changed after it was written"
            ),
        ))
    }

    /// Decodes a version 1 chunk's one frame into `data` (band-sequential tile planes)
    /// and, if given, its mask into `mask`.
    pub(super) fn decode_whole_v1(
        &self,
        bytes: &[u8],
        check: bool,
        data: &mut [u8],
        mask: Option<&mut [u8]>,
        path: &Path,
    ) -> Result<()> {
        self.check_frame(0, bytes, check, path)?;
        let (size, width) = (self.size, self.dtype.size());
        let plane_len = size * size * width;
        let mask_len = if self.has_mask {
            (size * size).div_ceil(8)
        } else {
            0
        };
        SCRATCH.with(|scratch| {
            let mut raw = scratch.borrow_mut();
            raw.clear();
            raw.resize(plane_len * self.bands + mask_len, 0);
            self.compression
                .decompress(bytes, &mut raw)
                .map_err(|e| Error::corrupt(path, format!("payload does not decompress: {e}")))?;
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
            Ok(())
        })
    }

    /// Decodes the mask frame `i` into `mask` (one byte per pixel).
    pub(super) fn decode_mask(
        &self,
        i: usize,
        bytes: &[u8],
        check: bool,
        mask: &mut [u8],
        path: &Path,
    ) -> Result<()> {
        self.check_frame(i, bytes, check, path)?;
        SCRATCH.with(|scratch| {
            let mut raw = scratch.borrow_mut();
            raw.clear();
            raw.resize((self.size * self.size).div_ceil(8), 0);
            self.compression
                .decompress(bytes, &mut raw)
                .map_err(|e| Error::corrupt(path, format!("the mask does not decompress: {e}")))?;
            unpack_bits(&raw, mask);
            Ok(())
        })
    }

    /// Where each of `frames` (frames of blocks, each named once) decodes to in `data`
    /// (band-sequential tile planes): one [`BlockDst`] per frame, in the order given. They
    /// reach disjoint bytes, so frames can be decoded on several threads at once.
    pub(super) fn block_dsts<'a>(&self, data: &'a mut [u8], frames: &[usize]) -> Vec<BlockDst<'a>> {
        let width = self.dtype.size();
        let plane_len = self.size * self.size * width;
        assert_eq!(
            data.len(),
            plane_len * self.bands,
            "tile-sized output buffer"
        );
        assert!(
            self.version != VERSION_1 && frames.iter().all(|&i| i < self.bands * self.blocks()),
            "frames of blocks"
        );
        let mut named = vec![false; self.bands * self.blocks()];
        for &i in frames {
            assert!(
                !std::mem::replace(&mut named[i], true),
                "frame {i} named twice"
            );
        }
        let ptr = data.as_mut_ptr();
        frames
            .iter()
            .map(|&i| {
                let (b, k) = (i / self.blocks(), i % self.blocks());
                let area = self.block_area(k);
                BlockDst {
                    ptr,
                    first: b * plane_len + (area.rows.start * self.size + area.cols.start) * width,
                    stride: self.size * width,
                    row_bytes: area.cols.len() * width,
                    rows: area.rows.len(),
                    _planes: PhantomData,
                }
            })
            .collect()
    }

    /// Decodes block frame `i`, whose bytes are `bytes`, into `dst` (from
    /// [`Head::block_dsts`]).
    pub(super) fn decode_block(
        &self,
        i: usize,
        bytes: &[u8],
        check: bool,
        dst: BlockDst<'_>,
        path: &Path,
    ) -> Result<()> {
        self.check_frame(i, bytes, check, path)?;
        let width = self.dtype.size();
        SCRATCH.with(|scratch| {
            let mut raw = scratch.borrow_mut();
            raw.clear();
            raw.resize(dst.rows * dst.row_bytes, 0);
            self.compression.decompress(bytes, &mut raw).map_err(|e| {
                let (b, k) = (i / self.blocks(), i % self.blocks());
                Error::corrupt(
                    path,
                    format!("band {} block {k} does not decompress: {e}", b + 1),
                )
            })?;
            let cols = dst.row_bytes / width;
            if self.whole_blocks {
                self.predictor
                    .decode_block(width, cols, &raw, dst.into_rows());
            } else {
                for (src, row) in raw.chunks_exact(dst.row_bytes).zip(dst.into_rows()) {
                    self.predictor.decode(width, cols, src, row);
                }
            }
            Ok(())
        })
    }
}

/// Where one block decodes to in a tile's band-sequential planes: `rows` runs of
/// `row_bytes` bytes, `stride` apart, from byte `first`. [`Head::block_dsts`] hands out
/// one per block; blocks do not overlap, so each is the only way to its bytes, like the
/// `&mut` it was cut from.
pub(super) struct BlockDst<'a> {
    ptr: *mut u8,
    first: usize,
    stride: usize,
    row_bytes: usize,
    rows: usize,
    _planes: PhantomData<&'a mut [u8]>,
}

// SAFETY: a BlockDst is the only handle on its bytes (see Head::block_dsts), so it may move
// to another thread as the `&mut [u8]` it stands for could.
unsafe impl Send for BlockDst<'_> {}

impl<'a> BlockDst<'a> {
    /// The block's rows, top to bottom, each handed out once.
    fn into_rows(self) -> impl Iterator<Item = &'a mut [u8]> {
        (0..self.rows).map(move |y| {
            // SAFETY: Head::block_dsts cut this from a `&'a mut [u8]` of whole tile planes
            // and the block's rows lie inside them (its area is inside the tile); no other
            // BlockDst reaches these bytes (blocks of one band do not overlap, and bands
            // are separate planes), and each row is made once, so no two live slices alias.
            unsafe {
                std::slice::from_raw_parts_mut(
                    self.ptr.add(self.first + y * self.stride),
                    self.row_bytes,
                )
            }
        })
    }
}

/// Rows and columns per block in a head of `version`, for tiles `size` pixels wide.
fn block_shape(version: u8, start: &[u8], size: usize) -> (usize, usize) {
    let rows = u16_at(start, 24);
    match version {
        VERSION_2 => (rows, size),
        _ => (rows, u16_at(start, 26)),
    }
}
