//! References for the chunks no tile holds: inline chunks of the fill value.
//!
//! Zarr fills a chunk its store reports missing with the array's fill value, but fsspec
//! 2022.11 (Debian 12's) fails a read that meets a chunk without a reference instead. So, unless told to leave them out, every chunk of the arrays that no
//! stored tile holds gets a reference to inline data: one block of the band's fill value,
//! encoded as the store encodes its frames (a few dozen bytes once compressed).

use serde_json::Value;

use super::walk::{chunk_key, ChunkEntry, Slot};
use super::{zarr, Plan};
use crate::chunk::Encoding;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// Most chunks given inline data in one set of references (about 60 bytes of JSON each).
pub const MAX_INLINE_CHUNKS: u64 = 20_000_000;

/// What to do with the chunks that no tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A reference to inline data holding the fill value (what fsspec 2022.11 needs).
    Inline,
    /// No reference: for readers whose fsspec reports such chunks as missing, which Zarr
    /// then fills with the fill value.
    Omit,
}

/// Follows the chunks referenced, in the order of the walk (time step, then level), and
/// writes inline references for the chunks of each (step, level) that no tile held.
pub(super) struct Filler<'a> {
    plan: &'a Plan,
    /// The encoded block of each band's fill value, as `base64:` text.
    blocks: Vec<String>,
    /// The (step, level) pair being walked, as `step * levels + level`.
    current: Option<u64>,
    /// Which chunks of the current pair were referenced, one bit each (row-major).
    seen: Vec<u64>,
    /// Which chunks of the `mask` array of the current pair were referenced.
    seen_mask: Vec<u64>,
    /// The inline chunk of a tile without data in the `mask` array (all zeros).
    no_data_mask: String,
    on: bool,
}

impl<'a> Filler<'a> {
    pub fn new(plan: &'a Plan, m: &Manifest, missing: Missing, store: &str) -> Result<Self> {
        let on = missing == Missing::Inline;
        if on {
            let total = plan.chunk_count().saturating_mul(plan.names.len() as u64);
            if total > MAX_INLINE_CHUNKS {
                return Err(Error::InvalidInput(format!(
                    "{store}: its arrays have {total} chunks, more than the {MAX_INLINE_CHUNKS} \
                     given inline data for the tiles not stored; write the references with \
                     --missing omit (readers then fill those chunks themselves, which fsspec \
                     2022.11 does not do)"
                )));
            }
        }
        let blocks = match on {
            true => (0..m.bands.len())
                .map(|b| fill_block(plan, m, b))
                .collect::<Result<_>>()?,
            false => Vec::new(),
        };
        let no_data_mask = match on && plan.mask {
            true => encoded(&plan.encoding, &vec![0; plan.tile * plan.tile / 8])?,
            false => String::new(),
        };
        Ok(Filler {
            plan,
            blocks,
            current: None,
            seen: Vec::new(),
            seen_mask: Vec::new(),
            no_data_mask,
            on,
        })
    }

    fn pairs(&self) -> u64 {
        self.plan.step_count() * self.plan.levels.len() as u64
    }

    fn pair_of(&self, slot: &Slot) -> u64 {
        slot.step * self.plan.levels.len() as u64 + u64::from(slot.level)
    }

    /// Notes a referenced chunk, first writing the missing chunks of the pairs the walk
    /// has left behind.
    pub fn note(
        &mut self,
        slot: &Slot,
        mask: bool,
        emit: &mut dyn FnMut(ChunkEntry) -> Result<()>,
    ) -> Result<()> {
        if !self.on {
            return Ok(());
        }
        let pair = self.pair_of(slot);
        match self.current {
            Some(cur) if cur == pair => {}
            Some(cur) if cur > pair => {
                return Err(Error::InvalidInput(format!(
                    "the tiles of step {} and level {} came out of order",
                    slot.step, slot.level
                )))
            }
            cur => {
                let from = match cur {
                    Some(c) => {
                        self.flush(c, emit)?;
                        c + 1
                    }
                    None => 0,
                };
                for q in from..pair {
                    self.clear();
                    self.flush(q, emit)?;
                }
                self.current = Some(pair);
                self.clear();
            }
        }
        let level = &self.plan.levels[usize::from(slot.level)];
        let (cols, seen) = match mask {
            true => (level.mask_chunks().1, &mut self.seen_mask),
            false => (level.chunk_cols(), &mut self.seen),
        };
        let bit = slot.row * cols + slot.col;
        let word = (bit / 64) as usize;
        if seen.len() <= word {
            seen.resize(word + 1, 0);
        }
        seen[word] |= 1 << (bit % 64);
        Ok(())
    }

    fn clear(&mut self) {
        self.seen.clear();
        self.seen_mask.clear();
    }

    /// Writes the missing chunks of the pairs not finished yet.
    pub fn finish(&mut self, emit: &mut dyn FnMut(ChunkEntry) -> Result<()>) -> Result<()> {
        if !self.on {
            return Ok(());
        }
        let from = match self.current {
            Some(c) => {
                self.flush(c, emit)?;
                c + 1
            }
            None => 0,
        };
        for q in from..self.pairs() {
            self.clear();
            self.flush(q, emit)?;
        }
        Ok(())
    }

    /// Writes an inline reference for every chunk of pair `pair` not marked as seen.
    fn flush(&self, pair: u64, emit: &mut dyn FnMut(ChunkEntry) -> Result<()>) -> Result<()> {
        let levels = self.plan.levels.len() as u64;
        let (step, level) = (pair / levels, (pair % levels) as u8);
        let grid = &self.plan.levels[usize::from(level)];
        let slot = |(row, col)| Slot {
            step,
            level,
            row,
            col,
        };
        for slot in unseen(grid.chunk_rows(), grid.chunk_cols(), &self.seen).map(slot) {
            for (band, name) in self.plan.names.iter().enumerate() {
                emit(ChunkEntry {
                    slot,
                    mask: false,
                    key: chunk_key(self.plan, slot, name),
                    value: Value::String(self.blocks[band].clone()),
                })?;
            }
        }
        if self.plan.mask {
            let (rows, cols) = grid.mask_chunks();
            for slot in unseen(rows, cols, &self.seen_mask).map(slot) {
                emit(ChunkEntry {
                    slot,
                    mask: true,
                    key: chunk_key(self.plan, slot, "mask"),
                    value: Value::String(self.no_data_mask.clone()),
                })?;
            }
        }
        Ok(())
    }
}

/// The (row, column) of every chunk of a `rows` x `cols` grid whose bit in `seen` is clear.
fn unseen(rows: u64, cols: u64, seen: &[u64]) -> impl Iterator<Item = (u64, u64)> + '_ {
    (0..rows * cols)
        .filter(move |bit| {
            seen.get((bit / 64) as usize)
                .is_none_or(|w| w & (1 << (bit % 64)) == 0)
        })
        .map(move |bit| (bit / cols, bit % cols))
}

/// One chunk of band `band`'s fill value, encoded as the store encodes a block (the
/// predictor over the block as one sequence, then the codec), as `base64:` text.
fn fill_block(plan: &Plan, m: &Manifest, band: usize) -> Result<String> {
    let (rows, cols) = plan.block;
    let samples = rows * cols;
    let fill = m.bands[band].nodata.unwrap_or(0.0);
    let one = sample_bytes(m.data_type, fill);
    let mut plane = Vec::with_capacity(samples * one.len());
    for _ in 0..samples {
        plane.extend_from_slice(&one);
    }
    let enc = plan.encoding;
    let mut predicted = Vec::with_capacity(plane.len());
    enc.predictor
        .encode(m.data_type.size(), samples, &plane, &mut predicted);
    let mut frame = Vec::new();
    enc.compression
        .compress(enc.level, &predicted, &mut frame)?;
    Ok(format!("base64:{}", zarr::base64(&frame)))
}

/// `value` as one little-endian sample of `dtype` (a nodata value fits its band's type).
fn sample_bytes(dtype: DataType, value: f64) -> Vec<u8> {
    match dtype {
        DataType::Byte => vec![value as u8],
        DataType::UInt16 => (value as u16).to_le_bytes().to_vec(),
        DataType::Int16 => (value as i16).to_le_bytes().to_vec(),
        DataType::UInt32 => (value as u32).to_le_bytes().to_vec(),
        DataType::Int32 => (value as i32).to_le_bytes().to_vec(),
        DataType::Float32 => (value as f32).to_le_bytes().to_vec(),
        DataType::Float64 => value.to_le_bytes().to_vec(),
    }
}

/// `raw` compressed as the store compresses a frame (no predictor: a mask), as `base64:`
/// text.
pub(super) fn encoded(enc: &Encoding, raw: &[u8]) -> Result<String> {
    let mut frame = Vec::new();
    enc.compression.compress(enc.level, raw, &mut frame)?;
    Ok(format!("base64:{}", zarr::base64(&frame)))
}
