//! DEFLATE (zlib framing), for readers that only speak zlib.

use std::io::Write;

use flate2::{write::ZlibEncoder, Decompress, FlushDecompress, Status};

use crate::error::{Error, Result};

pub const DEFAULT_LEVEL: i32 = 6;
pub const LEVELS: (i32, i32) = (1, 9);

/// The longest zlib stream DEFLATE makes of `raw_len` bytes: zlib's conservative bound
/// (`deflateBound` for any settings: stored blocks cost at most an eighth and a sixty-fourth
/// more, plus 5 bytes of block header), with the 2-byte zlib header and 4-byte checksum.
pub fn max_encoded_len(raw_len: usize) -> usize {
    raw_len
        .saturating_add(raw_len.div_ceil(8))
        .saturating_add(raw_len.div_ceil(64))
        .saturating_add(5 + 6)
}

pub fn compress(level: i32, raw: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let mut enc = ZlibEncoder::new(std::mem::take(out), flate2::Compression::new(level as u32));
    let done = enc.write_all(raw).and_then(|_| enc.finish());
    match done {
        Ok(v) => {
            *out = v;
            Ok(())
        }
        Err(e) => Err(Error::InvalidInput(format!(
            "deflate compression failed: {e}"
        ))),
    }
}

pub fn decompress(packed: &[u8], out: &mut [u8]) -> std::result::Result<(), String> {
    let mut d = Decompress::new(true);
    match d.decompress(packed, out, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) if d.total_out() as usize == out.len() => Ok(()),
        Ok(_) => Err(format!(
            "deflate stream ended early: {} of {} bytes",
            d.total_out(),
            out.len()
        )),
        Err(e) => Err(format!("deflate: {e}")),
    }
}
