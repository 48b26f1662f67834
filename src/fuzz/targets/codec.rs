//! One codec with its predictor: `Compression::decompress` into a buffer of the expected
//! size, then `Predictor::decode` (row by row) or `decode_block` (a block as one
//! sequence), against compressing the decoded samples again.
//!
//! An input is how the samples are laid out, then the compressed stream:
//!
//! ```text
//! 0  1  predictor code (taken modulo 3)       2  2  samples per row (modulo 1024, at least 1)
//! 1  1  sample width: 1, 2, 4 or 8 (index     4  2  rows (modulo 1024, at least 1)
//!       modulo 4)                             6  1  1: predicted as one sequence
//! 7  .. the compressed stream
//! ```

use crate::codec::{Compression, Predictor};
use crate::fuzz::{Field, Target};

const PREFIX: usize = 7;
/// What decompression may allocate at once beyond its output (a codec's own state).
pub const MARGIN: usize = 1 << 20;

pub struct CodecTarget(pub Compression);

/// How the samples of an input are laid out.
#[derive(Debug, Clone, Copy)]
struct Shape {
    predictor: Predictor,
    width: usize,
    cols: usize,
    rows: usize,
    whole: bool,
}

impl Shape {
    fn read(input: &[u8]) -> Option<Shape> {
        let p = input.get(..PREFIX)?;
        let dim = |at: usize| (u16::from_le_bytes([p[at], p[at + 1]]) as usize % 1024).max(1);
        Some(Shape {
            predictor: Predictor::from_code(p[0] % 3)?,
            width: [1, 2, 4, 8][p[1] as usize % 4],
            cols: dim(2),
            rows: dim(4),
            whole: p[6] & 1 == 1,
        })
    }

    fn write(&self) -> Vec<u8> {
        let mut out = vec![self.predictor.code(), self.width.trailing_zeros() as u8];
        out.extend_from_slice(&(self.cols as u16).to_le_bytes());
        out.extend_from_slice(&(self.rows as u16).to_le_bytes());
        out.push(u8::from(self.whole));
        out
    }

    fn len(&self) -> usize {
        self.width * self.cols * self.rows
    }

    /// Samples from `raw`, the decompressed stream.
    fn unpredict(&self, raw: &[u8]) -> Vec<u8> {
        let mut samples = vec![0u8; raw.len()];
        if self.whole {
            let rows = samples.chunks_exact_mut(self.width * self.cols);
            self.predictor
                .decode_block(self.width, self.cols, raw, rows);
        } else {
            self.predictor
                .decode(self.width, self.cols, raw, &mut samples);
        }
        samples
    }

    /// The stream to compress for `samples`.
    fn predict(&self, samples: &[u8]) -> Vec<u8> {
        let mut raw = Vec::with_capacity(samples.len());
        let cols = if self.whole {
            self.cols * self.rows
        } else {
            self.cols
        };
        self.predictor.encode(self.width, cols, samples, &mut raw);
        raw
    }
}

impl Target for CodecTarget {
    type Decoded = Vec<u8>;

    fn name(&self) -> &'static str {
        match self.0 {
            Compression::Zstd => "codec-zstd",
            Compression::Deflate => "codec-deflate",
            Compression::Lz4 => "codec-lz4",
            Compression::None => "codec-none",
        }
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (i, predictor) in [
            Predictor::None,
            Predictor::Horizontal,
            Predictor::FloatingPoint,
        ]
        .into_iter()
        .enumerate()
        {
            for (j, width) in [1, 2, 4, 8].into_iter().enumerate() {
                let shape = Shape {
                    predictor,
                    width,
                    cols: [1, 16, 100, 200][(i + j) % 4],
                    rows: [1, 3, 16, 32][j],
                    whole: (i + j) % 2 == 0,
                };
                let samples: Vec<u8> = (0..shape.len())
                    .map(|k| ((k / width) as f64 * 0.7).sin().to_bits().to_le_bytes()[k % 8])
                    .collect();
                let mut input = shape.write();
                if self
                    .0
                    .compress(self.0.default_level(), &shape.predict(&samples), &mut input)
                    .is_ok()
                {
                    out.push(input);
                }
            }
        }
        out
    }

    fn fields(&self, input: &[u8]) -> Vec<Field> {
        let mut fields = vec![
            Field {
                offset: 2,
                width: 2,
            },
            Field {
                offset: 4,
                width: 2,
            },
        ];
        // The stream's own header: lengths and flags in its first bytes.
        for (offset, width) in [(PREFIX, 4), (PREFIX + 4, 4), (PREFIX + 1, 1)] {
            if offset + width <= input.len() {
                fields.push(Field { offset, width });
            }
        }
        fields
    }

    fn decode(&self, input: &[u8]) -> Option<Vec<u8>> {
        let shape = Shape::read(input)?;
        let mut raw = vec![0u8; shape.len()];
        self.0.decompress(&input[PREFIX..], &mut raw).ok()?;
        Some(shape.unpredict(&raw))
    }

    fn check(&self, input: &[u8], samples: Vec<u8>) -> Result<(), String> {
        let shape = Shape::read(input).ok_or("the input no longer has a shape")?;
        let mut packed = Vec::new();
        self.0
            .compress(
                self.0.default_level(),
                &shape.predict(&samples),
                &mut packed,
            )
            .map_err(|e| format!("the samples do not compress: {e}"))?;
        let mut raw = vec![0u8; shape.len()];
        self.0
            .decompress(&packed, &mut raw)
            .map_err(|e| format!("the recompressed stream is refused: {e}"))?;
        if shape.unpredict(&raw) != samples {
            return Err(format!(
                "{shape:?}: recompressed, the samples read back differently"
            ));
        }
        Ok(())
    }

    fn alloc_bound(&self, input: &[u8]) -> usize {
        Shape::read(input).map_or(0, |s| s.len()) + MARGIN
    }
}
