//! Zstandard, the default codec: the best ratio for its speed on gridded data.

use std::cell::RefCell;

use crate::error::{Error, Result};

/// Level 1: level 3 compresses gridded data only ~3% better at ~1.6x the time (docs/PERFORMANCE.md).
pub const DEFAULT_LEVEL: i32 = 1;
pub const LEVELS: (i32, i32) = (1, 22);

thread_local! {
    // Compression contexts are expensive to set up; each worker thread keeps one per level.
    static COMPRESSOR: RefCell<Option<(i32, ::zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<::zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// The longest frame zstd makes of `raw_len` bytes (its own `ZSTD_compressBound`).
pub fn max_encoded_len(raw_len: usize) -> usize {
    ::zstd::zstd_safe::compress_bound(raw_len)
}

pub fn compress(level: i32, raw: &[u8], out: &mut Vec<u8>) -> Result<()> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            let c = ::zstd::bulk::Compressor::new(level)
                .map_err(|e| Error::NotSupported(format!("zstd level {level}: {e}")))?;
            *slot = Some((level, c));
        }
        let (_, c) = slot.as_mut().expect("set above");
        let start = out.len();
        out.reserve(::zstd::zstd_safe::compress_bound(raw.len()));
        // Append after what `out` already holds: a Vec alone would be written from its start.
        let mut cursor = std::io::Cursor::new(&mut *out);
        cursor.set_position(start as u64);
        c.compress_to_buffer(raw, &mut cursor)
            .map(|_| ())
            .map_err(|e| Error::InvalidInput(format!("zstd compression failed: {e}")))
    })
}

pub fn decompress(packed: &[u8], out: &mut [u8]) -> std::result::Result<(), String> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(::zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?);
        }
        let d = slot.as_mut().expect("set above");
        let n = d
            .decompress_to_buffer(packed, out)
            .map_err(|e| format!("zstd: {e}"))?;
        if n != out.len() {
            return Err(format!(
                "zstd stream holds {n} bytes, expected {}",
                out.len()
            ));
        }
        Ok(())
    })
}
