//! The input being decoded, kept in a memory-mapped file so that it survives the process:
//! when an input aborts the process (or hangs it until it is killed), the file holds that
//! input, and how many executions had run, for whoever runs the fuzzer to record.
//!
//! Layout: the execution number (u64 LE), the input's length (u64 LE), the input (cut at
//! [`CAPACITY`] bytes). Writing is a copy into shared memory, cheap enough for every input.

use std::fs::OpenOptions;
use std::path::Path;

/// The most input bytes kept.
pub const CAPACITY: usize = 16 << 20;
const HEADER: usize = 16;

pub struct LastInput {
    map: *mut u8,
}

impl LastInput {
    /// Maps `path` (created or truncated).
    pub fn create(path: &Path) -> std::io::Result<LastInput> {
        use std::os::unix::io::AsRawFd;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len((HEADER + CAPACITY) as u64)?;
        // SAFETY: a fresh shared mapping of a file of exactly this length, opened read-write;
        // no other part of this process maps it. The mapping outlives `file` (as mmap
        // allows) and is unmapped in `drop`.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                HEADER + CAPACITY,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(LastInput { map: map.cast() })
    }

    /// Records `input` as execution number `exec`.
    pub fn record(&mut self, exec: u64, input: &[u8]) {
        let len = input.len().min(CAPACITY);
        // SAFETY: `map` is a live, writable mapping of HEADER + CAPACITY bytes that only
        // this value writes (`&mut self`), and `len <= CAPACITY`.
        let map = unsafe { std::slice::from_raw_parts_mut(self.map, HEADER + CAPACITY) };
        map[0..8].copy_from_slice(&exec.to_le_bytes());
        map[8..16].copy_from_slice(&(input.len() as u64).to_le_bytes());
        map[HEADER..HEADER + len].copy_from_slice(&input[..len]);
    }

    /// Reads a file written by [`record`](LastInput::record): the execution number and the
    /// input, or `None` if the file does not hold one.
    pub fn read(path: &Path) -> Option<(u64, Vec<u8>)> {
        let bytes = std::fs::read(path).ok()?;
        let exec = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
        let len = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?) as usize;
        let input = bytes.get(HEADER..HEADER + len.min(CAPACITY))?.to_vec();
        Some((exec, input))
    }
}

impl Drop for LastInput {
    fn drop(&mut self) {
        // SAFETY: `map` is the mapping made in `create`, of this length, not used after.
        unsafe {
            libc::munmap(self.map.cast(), HEADER + CAPACITY);
        }
    }
}
