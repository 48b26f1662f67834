//! A counting allocator: the fuzz binaries install it with `#[global_allocator]` to learn
//! the largest single allocation and the peak of live bytes while one input is decoded.
//!
//! Requests above [`HARD_LIMIT`] fail (the process then aborts, and the long run's parent
//! records the input that did it): a decoder that asks for terabytes must not take the
//! machine's memory with it before the finding is recorded.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// The largest allocation the fuzz binaries let through.
pub const HARD_LIMIT: usize = 1 << 30;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// What was allocated since the last [`reset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The largest single allocation (or reallocation's new size), in bytes.
    pub largest: usize,
    /// The most bytes live at once, counted from the reset.
    pub peak: usize,
}

/// Starts a new measurement.
pub fn reset() {
    LARGEST.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    LIVE.store(0, Relaxed);
}

pub fn usage() -> Usage {
    Usage {
        largest: LARGEST.load(Relaxed),
        peak: PEAK.load(Relaxed),
    }
}

/// Runs `f` without counting what it allocates against the input being decoded: for the
/// harness's own work in the middle of a decode (a panic hook capturing a backtrace).
pub fn uncounted<R>(f: impl FnOnce() -> R) -> R {
    let before = usage();
    let out = f();
    LARGEST.store(before.largest, Relaxed);
    PEAK.store(before.peak, Relaxed);
    out
}

/// Whether this process allocates through [`Counting`]; if not, [`usage`] stays zero.
pub fn installed() -> bool {
    INSTALLED.load(Relaxed)
}

/// The system allocator, counting. Frees of memory allocated before a reset can take the
/// live count below zero: it saturates at zero, which only ever under-counts the peak.
pub struct Counting;

impl Counting {
    fn note(size: usize) {
        INSTALLED.store(true, Relaxed);
        LARGEST.fetch_max(size, Relaxed);
        let live = LIVE.fetch_add(size, Relaxed).saturating_add(size);
        PEAK.fetch_max(live, Relaxed);
    }

    fn forget(size: usize) {
        let _ = LIVE.fetch_update(Relaxed, Relaxed, |l| Some(l.saturating_sub(size)));
    }
}

// SAFETY: every call is passed on to `System` unchanged (or refused with a null pointer,
// which callers must handle); the counters are atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::note(layout.size());
        if layout.size() > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::note(layout.size());
        if layout.size() > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::forget(layout.size());
        // SAFETY: `ptr` came from `System` with this layout (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::note(new_size);
        if new_size > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        Self::forget(layout.size());
        // SAFETY: as for `dealloc`, and the caller's contract for `realloc` is unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
