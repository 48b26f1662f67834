//! Joining CRC-32C checksums: the checksum of `a` followed by `b`, from the checksums of
//! `a` and `b` and the length of `b`, without reading either.
//!
//! A chunk's checksum covers the whole object, but a level update copies most of its frames
//! from the old chunk without reading them; their checksums are in the frame table. So the
//! object's checksum is put together from the checksums of its pieces, one join per frame.
//!
//! A CRC is the remainder of the message (as a polynomial over GF(2)) modulo the CRC
//! polynomial, up to the pre- and post-conditioning the two inputs already carry. Appending
//! `n` bytes multiplies the first message by `x^(8n)`, so
//! `crc(a ++ b) = crc(a) * x^(8n) mod P  xor  crc(b)`. The power is built from a table of
//! `x^(2^k) mod P` with one multiplication per set bit of `n`, each 32 shift-and-xor steps.
//! The classic matrix-squaring method, which the `crc32c` crate uses, squares 32x32 bit
//! matrices at every step and is about fifty times slower (`cargo bench --bench
//! checksum_join`; docs/PERFORMANCE.md).
//!
//! Bits are reflected, as CRC-32C computes them: the most significant bit of a `u32` is
//! the coefficient of `x^0`.

/// The CRC-32C (Castagnoli) polynomial, reflected.
const POLY: u32 = 0x82F6_3B78;

/// `x^1`, reflected.
const X1: u32 = 1 << 30;

/// `a * b mod P`.
const fn multiply(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut bit = 1u32 << 31; // x^0 of `a`
    while bit != 0 {
        if a & bit != 0 {
            product ^= b;
        }
        // b := b * x mod P
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        bit >>= 1;
    }
    product
}

/// `x^(2^k) mod P` for k = 0..64: enough for any `u64` count of bits.
const POWERS: [u32; 64] = {
    let mut t = [0u32; 64];
    t[0] = X1;
    let mut k = 1;
    while k < 64 {
        t[k] = multiply(t[k - 1], t[k - 1]);
        k += 1;
    }
    t
};

/// `x^(8 * bytes) mod P`.
fn shift_for(bytes: u64) -> u32 {
    let mut power = 1u32 << 31; // x^0
    let mut k = 3; // 8 * bytes = bytes << 3
    let mut n = bytes;
    while n != 0 {
        if n & 1 != 0 {
            power = multiply(POWERS[k], power);
        }
        n >>= 1;
        k += 1;
    }
    power
}

/// The CRC-32C of `a` followed by `b`, given `crc_a`, `crc_b` and `b`'s length.
pub fn crc32c_combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    multiply(shift_for(len_b as u64), crc_a) ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn joined_checksums_equal_the_checksum_of_the_joined_bytes(
            a in proptest::collection::vec(any::<u8>(), 0..300),
            b in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
            let joined = crc32c_combine(crc32c::crc32c(&a), crc32c::crc32c(&b), b.len());
            prop_assert_eq!(joined, crc32c::crc32c(&whole));
        }
    }

    #[test]
    fn long_pieces_join_too() {
        // Lengths with many bits set exercise most of the table.
        let a: Vec<u8> = (0..70_001u32).map(|i| (i * 31 % 251) as u8).collect();
        let b: Vec<u8> = (0..131_071u32).map(|i| (i * 17 % 253) as u8).collect();
        let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
        let joined = crc32c_combine(crc32c::crc32c(&a), crc32c::crc32c(&b), b.len());
        assert_eq!(joined, crc32c::crc32c(&whole));
    }

    #[test]
    fn joining_an_empty_piece_changes_nothing() {
        assert_eq!(crc32c_combine(0xDEAD_BEEF, 0, 0), 0xDEAD_BEEF);
    }
}
