//! LZ4 block format: the fastest decoder, for stores read far more often than written.

use crate::error::Result;

/// The longest block LZ4 makes of `raw_len` bytes (the size its encoder reserves).
pub fn max_encoded_len(raw_len: usize) -> usize {
    lz4_flex::block::get_maximum_output_size(raw_len)
}

pub fn compress(raw: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.resize(start + max_encoded_len(raw.len()), 0);
    let n = lz4_flex::block::compress_into(raw, &mut out[start..])
        .expect("the output was sized with get_maximum_output_size");
    out.truncate(start + n);
    Ok(())
}

pub fn decompress(packed: &[u8], out: &mut [u8]) -> std::result::Result<(), String> {
    let n = lz4_flex::block::decompress_into(packed, out).map_err(|e| format!("lz4: {e}"))?;
    if n != out.len() {
        return Err(format!("lz4 block holds {n} bytes, expected {}", out.len()));
    }
    Ok(())
}
