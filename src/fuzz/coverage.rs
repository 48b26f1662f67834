//! Coverage guidance on the stable toolchain. Built with `-C passes=sancov-module
//! -C llvm-args=-sanitizer-coverage-inline-8bit-counters` and the `fuzzing` feature (what
//! `scripts/fuzz.sh` does), LLVM gives every edge of the instrumented code a byte counter,
//! and each module registers its counters through `__sanitizer_cov_8bit_counters_init`
//! before `main`. After each input, [`new_edges`] looks for counters that moved and were
//! never seen to before, and clears them. Without the instrumentation nothing registers and
//! [`available`] is false. The callback is defined only with the feature: every binary of
//! an instrumented build links it, and no other build should export it.
//!
//! Most modules (the command line, GDAL glue, dependencies no decoder calls) never count
//! anything while fuzzing: only the modules seen counting are scanned after each input,
//! and all of them every [`FULL_SCAN`] inputs, which keeps the scan cheap.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

/// Inputs between two scans of every module.
const FULL_SCAN: u64 = 256;

struct Counters {
    /// Each module's counters: where they start and how many.
    ranges: Vec<(usize, usize)>,
    /// Per range, one flag per counter: reached by some input before.
    seen: Vec<Vec<bool>>,
    /// The ranges seen counting (scanned after every input).
    active: Vec<usize>,
    inputs: u64,
}

static COUNTERS: Mutex<Counters> = Mutex::new(Counters {
    ranges: Vec::new(),
    seen: Vec::new(),
    active: Vec::new(),
    inputs: 0,
});

/// Called by each instrumented module's constructor, before `main`.
#[cfg(feature = "fuzzing")]
///
/// # Safety
/// `start..stop` must be the module's counter array, live for the whole process (LLVM's
/// contract for this callback).
#[no_mangle]
pub unsafe extern "C" fn __sanitizer_cov_8bit_counters_init(start: *mut u8, stop: *mut u8) {
    if let Ok(mut c) = COUNTERS.lock() {
        let len = (stop as usize).saturating_sub(start as usize);
        c.ranges.push((start as usize, len));
        c.seen.push(vec![false; len]);
    }
}

/// Whether this binary was built with the instrumentation.
pub fn available() -> bool {
    COUNTERS
        .lock()
        .map(|c| !c.ranges.is_empty())
        .unwrap_or(false)
}

/// The edges reached so far, and how many the instrumented code has.
pub fn edges() -> (usize, usize) {
    COUNTERS
        .lock()
        .map(|c| {
            let reached = c.seen.iter().flatten().filter(|&&b| b).count();
            (reached, c.ranges.iter().map(|r| r.1).sum())
        })
        .unwrap_or_default()
}

/// True when the input just run reached an edge no input had reached; clears the counters.
pub fn new_edges() -> bool {
    let Ok(mut c) = COUNTERS.lock() else {
        return false;
    };
    let c = &mut *c;
    c.inputs += 1;
    let mut new = false;
    if c.inputs % FULL_SCAN == 1 {
        for r in 0..c.ranges.len() {
            let (moved, fresh) = scan(c.ranges[r], &mut c.seen[r]);
            new |= fresh;
            if moved && !c.active.contains(&r) {
                c.active.push(r);
            }
        }
    } else {
        for &r in &c.active {
            new |= scan(c.ranges[r], &mut c.seen[r]).1;
        }
    }
    new
}

/// Reads and clears one module's counters: whether any had moved, and whether one moved
/// that never had (which `seen` then records).
fn scan((start, len): (usize, usize), seen: &mut [bool]) -> (bool, bool) {
    // SAFETY: LLVM registered `start..start + len` as a counter array that lives as long as
    // the process. Instrumented code bumps these bytes without atomics (here, and on the
    // watchdog thread); reading and clearing them as atomics is the closest Rust has
    // (libFuzzer reads them the same way), and a lost bump only loses a hint.
    let bytes: &[AtomicU8] = unsafe { std::slice::from_raw_parts(start as *const AtomicU8, len) };
    // SAFETY: atomics of 8 and 1 bytes have the layout of the integers; words are read
    // only where the slice is aligned for them, the ends byte by byte.
    let (head, words, tail) = unsafe { bytes.align_to::<AtomicU64>() };
    let (mut moved, mut fresh) = (false, false);
    let mut visit = |i: usize, c: &AtomicU8| {
        if c.load(Relaxed) != 0 {
            c.store(0, Relaxed);
            moved = true;
            fresh |= !std::mem::replace(&mut seen[i], true);
        }
    };
    head.iter().enumerate().for_each(|(i, c)| visit(i, c));
    for (w, word) in words.iter().enumerate() {
        if word.load(Relaxed) != 0 {
            let at = head.len() + 8 * w;
            bytes[at..at + 8]
                .iter()
                .enumerate()
                .for_each(|(i, c)| visit(at + i, c));
        }
    }
    let at = head.len() + 8 * words.len();
    tail.iter().enumerate().for_each(|(i, c)| visit(at + i, c));
    (moved, fresh)
}
