//! Fuzzing of every decoder that reads bytes from a store: manifests, snapshot manifests,
//! lock files, index nodes, chunks, and each codec with its predictor.
//!
//! Each [`Target`] decodes one kind of object and checks the result against a reference:
//! decoding either fails with an error, or yields values that re-encode to an equal object
//! that decodes to the same values again. The [`engine`] feeds targets inputs made by
//! mutating a seed corpus (valid objects from [`Target::seeds`] plus the files under
//! `fuzz/corpus/<target>/`), with checksums recomputed after each mutation so that the
//! decoders' own checks are what is exercised, not only the checksums. It records as a
//! finding every input that panics, fails the reference, takes over a second, or makes an
//! allocation over the target's bound (measured by the [`alloc::Counting`] allocator, which
//! the fuzz binaries install).
//!
//! `tests/fuzz.rs` runs a short fixed-seed round of every target; `bench/fuzz.rs` is the
//! long run, coverage-guided when built as `scripts/fuzz.sh` builds it (fuzz/README.md).

pub mod alloc;
pub mod coverage;
pub mod engine;
pub mod last_input;
pub mod mutate;
pub mod targets;

pub use engine::{run, Finding, Report, Settings};

/// A small, fast, seedable random source (SplitMix64): fuzz runs must be reproducible from
/// their seed, and need no cryptographic quality.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A header field of a binary format: where it is and how wide, so that mutations can
/// write interesting integers (0, -1, sizes just off the real ones) exactly into it.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub offset: usize,
    pub width: usize,
}

/// One decoder under test, with the reference its results are checked against.
pub trait Target {
    /// What a successful decode yields, handed to [`check`](Target::check).
    type Decoded;

    /// The name of the target: its corpus is `fuzz/corpus/<name>/`.
    fn name(&self) -> &'static str;

    /// Valid objects to start from, made by the encoders (deterministic).
    fn seeds(&self) -> Vec<Vec<u8>>;

    /// Bytes at the start of every input that mutations leave alone (the shape a target
    /// decodes against, which comes from the validated manifest, not from the object).
    fn fixed_prefix(&self) -> usize {
        0
    }

    /// Header fields of the object in `input` (offsets into the whole input).
    fn fields(&self, _input: &[u8]) -> Vec<Field> {
        Vec::new()
    }

    /// Changes `input` in a way that knows the format (structured JSON edits, say), or
    /// returns false to let the engine apply byte mutations.
    fn mutate_structured(&self, _input: &mut Vec<u8>, _other: &[u8], _rng: &mut Rng) -> bool {
        false
    }

    /// Recomputes the checksums (and, when `lengths`, the length fields) the format
    /// carries, after a mutation.
    fn fix_checksums(&self, _input: &mut [u8], _lengths: bool) {}

    /// The decoder: `None` when it refused the input with an error.
    fn decode(&self, input: &[u8]) -> Option<Self::Decoded>;

    /// The reference: re-encodes what was decoded and checks that it decodes to the same
    /// values again. Runs outside the allocation measurement.
    fn check(&self, input: &[u8], decoded: Self::Decoded) -> std::result::Result<(), String>;

    /// The largest single allocation decoding `input` may make.
    fn alloc_bound(&self, input: &[u8]) -> usize;
}
