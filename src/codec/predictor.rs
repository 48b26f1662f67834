//! Predictors: reversible transforms applied to each row of a sample plane before
//! compression, so that smooth data turns into long runs of small numbers.
//!
//! - `Horizontal` stores each sample as its difference from the left neighbour, with
//!   wrapping arithmetic on the sample's width (TIFF predictor 2).
//! - `FloatingPoint` splits each row into byte planes, most significant byte first, and then
//!   differences consecutive bytes (TIFF predictor 3). Exponents and high mantissa bytes of
//!   neighbouring floats are nearly equal, so whole planes become zeros.
//!
//! Planes are little-endian sample bytes; `width` is the sample size in bytes.

use serde::{Deserialize, Serialize};

use crate::dtype::DataType;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predictor {
    None,
    Horizontal,
    FloatingPoint,
}

impl Predictor {
    pub fn code(self) -> u8 {
        match self {
            Predictor::None => 0,
            Predictor::Horizontal => 1,
            Predictor::FloatingPoint => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Predictor> {
        Some(match code {
            0 => Predictor::None,
            1 => Predictor::Horizontal,
            2 => Predictor::FloatingPoint,
            _ => return None,
        })
    }

    /// The predictor `PREDICTOR=YES` picks: floating point for floats, horizontal otherwise.
    pub fn default_for(dtype: DataType) -> Predictor {
        if dtype.is_float() {
            Predictor::FloatingPoint
        } else {
            Predictor::Horizontal
        }
    }

    /// Parses `PREDICTOR=` with the values of GDAL's COG driver (and GTiff's 1/2/3).
    pub fn from_option(value: &str, dtype: DataType) -> Result<Predictor> {
        let p = match value.to_ascii_uppercase().as_str() {
            "YES" | "TRUE" | "ON" => Predictor::default_for(dtype),
            "NO" | "FALSE" | "OFF" | "1" => Predictor::None,
            "STANDARD" | "2" => Predictor::Horizontal,
            "FLOATING_POINT" | "3" => Predictor::FloatingPoint,
            _ => {
                return Err(Error::option(
                    "PREDICTOR",
                    value,
                    "one of YES, NO, STANDARD, FLOATING_POINT",
                ))
            }
        };
        if p == Predictor::FloatingPoint && !dtype.is_float() {
            return Err(Error::option(
                "PREDICTOR",
                value,
                format!(
                    "FLOATING_POINT applies to Float32/Float64 data, not {}; use YES or STANDARD",
                    dtype.name()
                ),
            ));
        }
        Ok(p)
    }

    /// Appends the transformed form of `plane` (rows of `cols` samples) to `out`.
    pub fn encode(self, width: usize, cols: usize, plane: &[u8], out: &mut Vec<u8>) {
        let row_bytes = width * cols;
        debug_assert_eq!(plane.len() % row_bytes, 0);
        match self {
            Predictor::None => out.extend_from_slice(plane),
            Predictor::Horizontal => {
                let start = out.len();
                out.resize(start + plane.len(), 0);
                let dst = &mut out[start..];
                for (src, dst) in plane
                    .chunks_exact(row_bytes)
                    .zip(dst.chunks_exact_mut(row_bytes))
                {
                    match width {
                        1 => diff_u8(src, dst),
                        2 => diff_u16(src, dst),
                        4 => diff_u32(src, dst),
                        8 => diff_u64(src, dst),
                        _ => unreachable!("no {width}-byte samples"),
                    }
                }
            }
            Predictor::FloatingPoint => {
                let start = out.len();
                out.resize(start + plane.len(), 0);
                let dst = &mut out[start..];
                for (src, dst) in plane
                    .chunks_exact(row_bytes)
                    .zip(dst.chunks_exact_mut(row_bytes))
                {
                    shuffle_diff_row(width, cols, src, dst);
                }
            }
        }
    }

    /// Reverses [`Predictor::encode`]: `src` and `dst` have the same length.
    pub fn decode(self, width: usize, cols: usize, src: &[u8], dst: &mut [u8]) {
        let row_bytes = width * cols;
        debug_assert_eq!(src.len(), dst.len());
        match self {
            Predictor::None => dst.copy_from_slice(src),
            Predictor::Horizontal => {
                for (src, dst) in src
                    .chunks_exact(row_bytes)
                    .zip(dst.chunks_exact_mut(row_bytes))
                {
                    match width {
                        1 => prefix_sum_bytes(src, dst),
                        2 => _ = undiff_u16(0, src, dst),
                        4 => _ = undiff_u32(0, src, dst),
                        8 => _ = undiff_u64(0, src, dst),
                        _ => unreachable!("no {width}-byte samples"),
                    }
                }
            }
            Predictor::FloatingPoint => {
                for (src, dst) in src
                    .chunks_exact(row_bytes)
                    .zip(dst.chunks_exact_mut(row_bytes))
                {
                    unshuffle_undiff_row(width, cols, src, dst);
                }
            }
        }
    }

    /// Reverses [`Predictor::encode`] of a block predicted as one sequence of
    /// `src.len() / width` samples, laid out as rows of `cols` samples, writing each row
    /// into the next of `rows`: a block goes straight into its place in a tile, without
    /// an intermediate copy.
    pub fn decode_block<'a>(
        self,
        width: usize,
        cols: usize,
        src: &[u8],
        rows: impl Iterator<Item = &'a mut [u8]>,
    ) {
        let row_bytes = width * cols;
        let src_rows = src.chunks_exact(row_bytes);
        match self {
            Predictor::None => {
                for (src, dst) in src_rows.zip(rows) {
                    dst.copy_from_slice(src);
                }
            }
            Predictor::Horizontal => {
                // The running sum carries from the end of one row to the start of the next.
                let mut carry = 0u64;
                for (src, dst) in src_rows.zip(rows) {
                    carry = match width {
                        1 => prefix_sum_bytes_from(carry as u8, src, dst) as u64,
                        2 => undiff_u16(carry as u16, src, dst) as u64,
                        4 => undiff_u32(carry as u32, src, dst) as u64,
                        8 => undiff_u64(carry, src, dst),
                        _ => unreachable!("no {width}-byte samples"),
                    };
                }
            }
            Predictor::FloatingPoint => ROW.with(|sums| {
                // The byte planes span the whole block: row y is samples [y·cols, (y+1)·cols)
                // of every plane.
                let mut sums = sums.borrow_mut();
                sums.resize(src.len(), 0);
                prefix_sum_bytes(src, &mut sums);
                let samples = src.len() / width;
                for (y, dst) in rows.take(samples / cols.max(1)).enumerate() {
                    gather_samples(width, &sums, samples, y * cols, dst);
                }
            }),
        }
    }
}

/// Generates the wrapping difference and its inverse for one sample width.
macro_rules! differencing {
    ($diff:ident, $undiff:ident, $t:ty) => {
        fn $diff(src: &[u8], dst: &mut [u8]) {
            const N: usize = std::mem::size_of::<$t>();
            let mut prev: $t = 0;
            for (s, d) in src.chunks_exact(N).zip(dst.chunks_exact_mut(N)) {
                let v = <$t>::from_le_bytes(s.try_into().expect("exact chunk"));
                d.copy_from_slice(&v.wrapping_sub(prev).to_le_bytes());
                prev = v;
            }
        }

        /// The running sum of `src`'s samples, starting from `acc`; returns the last.
        fn $undiff(mut acc: $t, src: &[u8], dst: &mut [u8]) -> $t {
            const N: usize = std::mem::size_of::<$t>();
            for (s, d) in src.chunks_exact(N).zip(dst.chunks_exact_mut(N)) {
                acc = acc.wrapping_add(<$t>::from_le_bytes(s.try_into().expect("exact chunk")));
                d.copy_from_slice(&acc.to_le_bytes());
            }
            acc
        }
    };
}

/// Bytes have no word to gather; their running sum is [`prefix_sum_bytes`].
fn diff_u8(src: &[u8], dst: &mut [u8]) {
    let mut prev = 0u8;
    for (s, d) in src.iter().zip(dst.iter_mut()) {
        *d = s.wrapping_sub(prev);
        prev = *s;
    }
}
differencing!(diff_u16, undiff_u16, u16);
differencing!(diff_u32, undiff_u32, u32);
differencing!(diff_u64, undiff_u64, u64);

/// Byte plane `k` (most significant first) of sample `i` goes to `dst[k * cols + i]`, as
/// the difference from the byte before it in that order.
fn shuffle_diff_row(width: usize, cols: usize, src: &[u8], dst: &mut [u8]) {
    if width != 4 {
        let mut prev = 0u8;
        for k in 0..width {
            let byte = width - 1 - k;
            for (i, d) in dst[k * cols..(k + 1) * cols].iter_mut().enumerate() {
                let b = src[i * width + byte];
                *d = b.wrapping_sub(prev);
                prev = b;
            }
        }
        return;
    }
    ROW.with(|row| {
        let mut row = row.borrow_mut();
        row.resize(src.len(), 0);
        {
            let (p0, rest) = row.split_at_mut(cols);
            let (p1, rest) = rest.split_at_mut(cols);
            let (p2, p3) = rest.split_at_mut(cols);
            // Plane 0 is the most significant byte (byte 3 of a little-endian sample).
            deinterleave4(src, p3, p2, p1, p0);
        }
        byte_differences(&row, dst);
    })
}

/// The inverse of [`interleave4`]: byte `k` of every 4-byte sample into plane `bk`.
fn deinterleave4(src: &[u8], b0: &mut [u8], b1: &mut [u8], b2: &mut [u8], b3: &mut [u8]) {
    let done = simd::deinterleave4(src, b0, b1, b2, b3);
    for i in done..b0.len() {
        b0[i] = src[4 * i];
        b1[i] = src[4 * i + 1];
        b2[i] = src[4 * i + 2];
        b3[i] = src[4 * i + 3];
    }
}

/// `dst[i] = src[i] - src[i - 1]` (mod 256), with `src[-1] = 0`.
fn byte_differences(src: &[u8], dst: &mut [u8]) {
    if src.is_empty() {
        return;
    }
    dst[0] = src[0];
    // Written over overlapping windows, which the compiler turns into vector subtractions.
    for ((d, cur), prev) in dst[1..].iter_mut().zip(&src[1..]).zip(src) {
        *d = cur.wrapping_sub(*prev);
    }
}

/// Reverses [`shuffle_diff_row`]: a running sum over the row's bytes, then each sample
/// gathered from its byte planes and written in order.
fn unshuffle_undiff_row(width: usize, cols: usize, src: &[u8], dst: &mut [u8]) {
    ROW.with(|row| {
        let mut row = row.borrow_mut();
        row.resize(src.len(), 0);
        prefix_sum_bytes(src, &mut row);
        gather_samples(width, &row, cols, 0, dst);
    })
}

/// Writes into `dst` the samples `from..from + dst.len() / width` of `planes`: `width`
/// byte planes of `plane_len` bytes each, plane k holding byte `width - 1 - k` of every
/// sample.
fn gather_samples(width: usize, planes: &[u8], plane_len: usize, from: usize, dst: &mut [u8]) {
    let n = dst.len() / width;
    let plane = |k: usize| &planes[k * plane_len + from..k * plane_len + from + n];
    if width == 4 {
        interleave4(plane(3), plane(2), plane(1), plane(0), dst);
    } else {
        for k in 0..width {
            let byte = width - 1 - k;
            for (i, v) in plane(k).iter().enumerate() {
                dst[i * width + byte] = *v;
            }
        }
    }
}

thread_local! {
    static ROW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `dst[4i..4i+4] = [b0[i], b1[i], b2[i], b3[i]]`: four byte planes back into samples.
fn interleave4(b0: &[u8], b1: &[u8], b2: &[u8], b3: &[u8], dst: &mut [u8]) {
    let n = b0.len();
    debug_assert!(b1.len() == n && b2.len() == n && b3.len() == n && dst.len() == 4 * n);
    let done = simd::interleave4(b0, b1, b2, b3, dst);
    for i in done..n {
        dst[4 * i..4 * i + 4].copy_from_slice(&[b0[i], b1[i], b2[i], b3[i]]);
    }
}

/// `dst[i] = src[0] + ... + src[i]` (mod 256).
fn prefix_sum_bytes(src: &[u8], dst: &mut [u8]) {
    prefix_sum_bytes_from(0, src, dst);
}

/// `dst[i] = carry + src[0] + ... + src[i]` (mod 256); returns the last sum.
fn prefix_sum_bytes_from(carry: u8, src: &[u8], dst: &mut [u8]) -> u8 {
    let (done, mut carry) = simd::prefix_sum_bytes(carry, src, dst);
    for (a, b) in src[done..].iter().zip(&mut dst[done..]) {
        carry = carry.wrapping_add(*a);
        *b = carry;
    }
    carry
}

/// Vectorised kernels. Each handles a prefix of its input and returns how far it got; the
/// callers finish the rest with plain loops, which are also the reference the tests use.
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// Sixteen bytes per step: the running sum inside a register is built by adding copies
    /// shifted by 1, 2, 4 and 8 bytes, then the carry from the previous step is added.
    pub fn prefix_sum_bytes(mut carry: u8, src: &[u8], dst: &mut [u8]) -> (usize, u8) {
        let n = src.len().min(dst.len()) / 16 * 16;
        // SAFETY: SSE2 is part of the x86_64 baseline; every load and store touches bytes
        // [i, i + 16) with i + 16 <= n, inside both slices (unaligned access is used).
        unsafe {
            let mut acc = _mm_set1_epi8(carry as i8);
            let mut i = 0;
            while i < n {
                let mut x = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
                x = _mm_add_epi8(x, _mm_slli_si128(x, 1));
                x = _mm_add_epi8(x, _mm_slli_si128(x, 2));
                x = _mm_add_epi8(x, _mm_slli_si128(x, 4));
                x = _mm_add_epi8(x, _mm_slli_si128(x, 8));
                x = _mm_add_epi8(x, acc);
                _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, x);
                // Broadcast the last byte (the running total) for the next step.
                let last = _mm_srli_si128(x, 15);
                let last = _mm_unpacklo_epi8(last, last);
                let last = _mm_unpacklo_epi16(last, last);
                acc = _mm_shuffle_epi32(last, 0);
                i += 16;
            }
            if n > 0 {
                carry = dst[n - 1];
            }
        }
        (n, carry)
    }

    /// Sixteen samples per step: for each byte position, shift it to the bottom of every
    /// 32-bit lane, mask it, and pack four vectors of lanes down to sixteen bytes.
    pub fn deinterleave4(
        src: &[u8],
        b0: &mut [u8],
        b1: &mut [u8],
        b2: &mut [u8],
        b3: &mut [u8],
    ) -> usize {
        let n = b0.len() / 16 * 16;
        // SAFETY: SSE2 is baseline on x86_64; loads read [4i, 4i + 64) of src (src.len() ==
        // 4 * b0.len(), checked by the caller through the plane sizes) and stores write
        // [i, i + 16) of each plane, in bounds as i + 16 <= n.
        unsafe {
            let low = _mm_set1_epi32(0xff);
            let mut i = 0;
            while i < n {
                let p = src.as_ptr().add(4 * i) as *const __m128i;
                let v = [
                    _mm_loadu_si128(p),
                    _mm_loadu_si128(p.add(1)),
                    _mm_loadu_si128(p.add(2)),
                    _mm_loadu_si128(p.add(3)),
                ];
                macro_rules! plane {
                    ($shift:literal, $out:expr) => {{
                        let t: [__m128i; 4] = [
                            _mm_and_si128(_mm_srli_epi32(v[0], $shift), low),
                            _mm_and_si128(_mm_srli_epi32(v[1], $shift), low),
                            _mm_and_si128(_mm_srli_epi32(v[2], $shift), low),
                            _mm_and_si128(_mm_srli_epi32(v[3], $shift), low),
                        ];
                        // Values are 0..=255, so the signed 32->16 pack is exact.
                        let lo = _mm_packs_epi32(t[0], t[1]);
                        let hi = _mm_packs_epi32(t[2], t[3]);
                        _mm_storeu_si128(
                            $out.as_mut_ptr().add(i) as *mut __m128i,
                            _mm_packus_epi16(lo, hi),
                        );
                    }};
                }
                plane!(0, b0);
                plane!(8, b1);
                plane!(16, b2);
                plane!(24, b3);
                i += 16;
            }
        }
        n
    }

    /// Sixteen samples per step, with two rounds of byte and word unpacking.
    pub fn interleave4(b0: &[u8], b1: &[u8], b2: &[u8], b3: &[u8], dst: &mut [u8]) -> usize {
        let n = b0.len() / 16 * 16;
        // SAFETY: SSE2 is baseline on x86_64; loads read [i, i + 16) of each plane and
        // stores write [4i, 4i + 64) of dst, all in bounds as i + 16 <= n and
        // dst.len() == 4 * b0.len() (checked by the caller).
        unsafe {
            let mut i = 0;
            while i < n {
                let a = _mm_loadu_si128(b0.as_ptr().add(i) as *const __m128i);
                let b = _mm_loadu_si128(b1.as_ptr().add(i) as *const __m128i);
                let c = _mm_loadu_si128(b2.as_ptr().add(i) as *const __m128i);
                let d = _mm_loadu_si128(b3.as_ptr().add(i) as *const __m128i);
                let ab_lo = _mm_unpacklo_epi8(a, b);
                let ab_hi = _mm_unpackhi_epi8(a, b);
                let cd_lo = _mm_unpacklo_epi8(c, d);
                let cd_hi = _mm_unpackhi_epi8(c, d);
                let out = dst.as_mut_ptr().add(4 * i) as *mut __m128i;
                _mm_storeu_si128(out, _mm_unpacklo_epi16(ab_lo, cd_lo));
                _mm_storeu_si128(out.add(1), _mm_unpackhi_epi16(ab_lo, cd_lo));
                _mm_storeu_si128(out.add(2), _mm_unpacklo_epi16(ab_hi, cd_hi));
                _mm_storeu_si128(out.add(3), _mm_unpackhi_epi16(ab_hi, cd_hi));
                i += 16;
            }
        }
        n
    }
}

/// Other architectures use the plain loops.
#[cfg(not(target_arch = "x86_64"))]
mod simd {
    pub fn deinterleave4(
        _src: &[u8],
        _b0: &mut [u8],
        _b1: &mut [u8],
        _b2: &mut [u8],
        _b3: &mut [u8],
    ) -> usize {
        0
    }

    pub fn prefix_sum_bytes(carry: u8, _src: &[u8], _dst: &mut [u8]) -> (usize, u8) {
        (0, carry)
    }

    pub fn interleave4(_b0: &[u8], _b1: &[u8], _b2: &[u8], _b3: &[u8], _dst: &mut [u8]) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(p: Predictor, width: usize, cols: usize, plane: &[u8]) -> Vec<u8> {
        let mut enc = Vec::new();
        p.encode(width, cols, plane, &mut enc);
        assert_eq!(enc.len(), plane.len());
        let mut dec = vec![0u8; plane.len()];
        p.decode(width, cols, &enc, &mut dec);
        dec
    }

    proptest! {
        #[test]
        fn every_predictor_and_width_round_trips(
            width in prop::sample::select(vec![1usize, 2, 4, 8]),
            cols in 1usize..40, rows in 1usize..6, seed in any::<u64>()) {
            let mut x = seed;
            let plane: Vec<u8> = (0..width * cols * rows).map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 56) as u8
            }).collect();
            for p in [Predictor::None, Predictor::Horizontal, Predictor::FloatingPoint] {
                prop_assert_eq!(round_trip(p, width, cols, &plane), plane.clone());
            }
        }
    }

    proptest! {
        #[test]
        fn word_prefix_sum_matches_a_byte_loop(
            src in prop::collection::vec(any::<u8>(), 0..100), carry in any::<u8>()) {
            let mut want = Vec::new();
            let mut acc = carry;
            for b in &src {
                acc = acc.wrapping_add(*b);
                want.push(acc);
            }
            let mut got = vec![0u8; src.len()];
            let last = prefix_sum_bytes_from(carry, &src, &mut got);
            prop_assert_eq!(last, acc);
            prop_assert_eq!(got, want);
        }

        /// A block decoded into its place in a wider plane reads as the block decoded on
        /// its own and copied there row by row.
        #[test]
        fn a_block_decodes_into_its_place(width in prop::sample::select(vec![1usize, 2, 4, 8]),
            cols in 1usize..40, rows in 1usize..6, pad in 0usize..9, seed in any::<u64>()) {
            let mut x = seed;
            let block: Vec<u8> = (0..width * cols * rows).map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 56) as u8
            }).collect();
            let stride = width * (cols + pad);
            for p in [Predictor::None, Predictor::Horizontal, Predictor::FloatingPoint] {
                let mut encoded = Vec::new();
                p.encode(width, cols * rows, &block, &mut encoded);
                let mut want = vec![7u8; stride * rows];
                let mut alone = vec![0u8; block.len()];
                p.decode(width, cols * rows, &encoded, &mut alone);
                for (y, row) in alone.chunks_exact(width * cols).enumerate() {
                    want[y * stride..y * stride + row.len()].copy_from_slice(row);
                }
                let mut got = vec![7u8; stride * rows];
                let row_bytes = width * cols;
                p.decode_block(width, cols, &encoded, got.chunks_mut(stride).map(|r| &mut r[..row_bytes]));
                prop_assert_eq!(&alone, &block);
                prop_assert_eq!(got, want);
            }
        }
    }

    proptest! {
        #[test]
        fn vector_deinterleave_inverts_interleave(n in 0usize..70, seed in any::<u8>()) {
            let src: Vec<u8> = (0..4 * n).map(|i| (i as u8).wrapping_mul(37) ^ seed).collect();
            let mut planes = vec![vec![0u8; n]; 4];
            {
                let [a, b, c, d] = &mut planes[..] else { unreachable!() };
                deinterleave4(&src, a, b, c, d);
            }
            for i in 0..n {
                for k in 0..4 {
                    prop_assert_eq!(planes[k][i], src[4 * i + k]);
                }
            }
            let mut back = vec![0u8; 4 * n];
            interleave4(&planes[0], &planes[1], &planes[2], &planes[3], &mut back);
            prop_assert_eq!(back, src);
        }

        #[test]
        fn vector_interleave_matches_a_loop(n in 0usize..70, seed in any::<u8>()) {
            let planes: Vec<Vec<u8>> = (0..4u8)
                .map(|k| (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed ^ (k * 64))).collect())
                .collect();
            let mut got = vec![0u8; 4 * n];
            interleave4(&planes[0], &planes[1], &planes[2], &planes[3], &mut got);
            let want: Vec<u8> = (0..n).flat_map(|i| [planes[0][i], planes[1][i], planes[2][i], planes[3][i]]).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn horizontal_differences_wrap_per_sample() {
        let plane: Vec<u8> = [1000u16, 1003, 999, 65535]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut enc = Vec::new();
        Predictor::Horizontal.encode(2, 4, &plane, &mut enc);
        let words: Vec<u16> = enc
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(words, vec![1000, 3, 65532, 64536]);
    }

    #[test]
    fn floating_point_predictor_zeroes_smooth_rows() {
        let plane: Vec<u8> = (0..64).flat_map(|_| 1234.5f32.to_le_bytes()).collect();
        let mut enc = Vec::new();
        Predictor::FloatingPoint.encode(4, 64, &plane, &mut enc);
        // A constant row becomes the first byte of each plane followed by zeros.
        assert!(enc.iter().filter(|b| **b != 0).count() <= 4);
    }

    #[test]
    fn options() {
        assert_eq!(
            Predictor::from_option("YES", DataType::Float32).unwrap(),
            Predictor::FloatingPoint
        );
        assert_eq!(
            Predictor::from_option("YES", DataType::Int16).unwrap(),
            Predictor::Horizontal
        );
        let e = Predictor::from_option("FLOATING_POINT", DataType::Byte).unwrap_err();
        assert!(e.to_string().contains("Float32"), "{e}");
        assert!(Predictor::from_option("MAYBE", DataType::Byte).is_err());
    }
}
