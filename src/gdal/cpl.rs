//! GDAL's error reporting, C strings, and the guard every C entry point runs in.
//!
//! No Rust panic may unwind into C or C++: since Rust 1.81 that aborts the process, which in
//! QGIS would lose the user's session. [`guard`] catches panics and errors, reports them
//! through `CPLError`, and returns a failure value instead.

use std::cell::Cell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, Once};

use crate::error::{Error, ErrorKind};

// Error numbers of cpl_error.h (macros, so not in the generated bindings).
pub const CPLE_APP_DEFINED: c_int = 1;
pub const CPLE_FILE_IO: c_int = 3;
pub const CPLE_OPEN_FAILED: c_int = 4;
pub const CPLE_ILLEGAL_ARG: c_int = 5;
pub const CPLE_NOT_SUPPORTED: c_int = 6;
pub const CPLE_NO_WRITE_ACCESS: c_int = 8;
pub const CPLE_USER_INTERRUPT: c_int = 9;

/// The `CPLErrorNum` GDAL's own drivers use for each kind of failure, so that callers
/// (rasterio's exception classes, QGIS's messages) tell them apart the usual way: a missing
/// dataset fails to open, a failed read or write is a file I/O error, damaged contents are
/// the driver's own ("application defined") error.
fn error_number(kind: ErrorKind) -> c_int {
    match kind {
        ErrorKind::NotFound => CPLE_OPEN_FAILED,
        ErrorKind::Io => CPLE_FILE_IO,
        ErrorKind::Corrupt => CPLE_APP_DEFINED,
        ErrorKind::NotSupported => CPLE_NOT_SUPPORTED,
        ErrorKind::IllegalArgument => CPLE_ILLEGAL_ARG,
        ErrorKind::Interrupted => CPLE_USER_INTERRUPT,
        ErrorKind::Locked => CPLE_NO_WRITE_ACCESS,
        ErrorKind::Gdal => CPLE_APP_DEFINED,
    }
}

/// Emits a GDAL error (`CE_Failure`) with a message.
pub fn report_failure(number: c_int, message: &str) {
    emit(gdal_sys::CPLErr::CE_Failure, number, message);
}

/// Emits a GDAL warning (`CE_Warning`): something the user should know that did not stop
/// the operation.
pub fn report_warning(message: &str) {
    emit(gdal_sys::CPLErr::CE_Warning, CPLE_APP_DEFINED, message);
}

fn emit(class: gdal_sys::CPLErr::Type, number: c_int, message: &str) {
    let text = CString::new(format!("GRIDSTORE: {message}").replace('\0', " "))
        .expect("NULs were replaced");
    // SAFETY: "%s" with one NUL-terminated string argument is a valid format call.
    unsafe { gdal_sys::CPLError(class, number, c"%s".as_ptr(), text.as_ptr()) };
}

pub fn report(e: &Error) {
    report_failure(error_number(e.kind()), &e.to_string());
}

/// While alive, GDAL errors on this thread are kept from the user: the last one stays
/// readable with [`last_error_message`], but nothing is printed. For probing calls whose
/// failures are expected and handled, such as transforming the corners of a source that
/// lie off the Earth (a geostationary view): GDAL reports each such point as an error,
/// which would print `ERROR 1` lines on a run that succeeds.
pub struct QuietErrors {
    // GDAL's handler stack is per thread: the guard must be dropped on the thread that
    // pushed it.
    _same_thread: std::marker::PhantomData<*const ()>,
}

impl QuietErrors {
    pub fn push() -> QuietErrors {
        // SAFETY: pushes GDAL's own quiet handler on this thread's stack; `Drop` pops it on
        // the same thread (the type is neither Send nor Sync).
        unsafe { gdal_sys::CPLPushErrorHandler(Some(gdal_sys::CPLQuietErrorHandler)) };
        QuietErrors {
            _same_thread: std::marker::PhantomData,
        }
    }
}

impl Drop for QuietErrors {
    fn drop(&mut self) {
        // SAFETY: pops the handler `push` pushed, on the thread that pushed it.
        unsafe { gdal_sys::CPLPopErrorHandler() };
    }
}

/// The message of the last GDAL error on this thread.
pub fn last_error_message() -> String {
    // SAFETY: CPLGetLastErrorMsg returns a pointer to a thread-local NUL-terminated
    // string (never null), valid until the next CPL call on this thread; we copy it at once.
    unsafe { from_c(gdal_sys::CPLGetLastErrorMsg()) }.unwrap_or_default()
}

/// Copies a C string; `None` for a null pointer.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string valid for the call.
pub unsafe fn from_c(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and NUL-terminated by the caller's contract.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// Copies a NULL-terminated list of C strings (GDAL's `char**` string lists).
///
/// # Safety
/// `list` must be null or a NULL-terminated array of NUL-terminated strings.
pub unsafe fn from_c_list(list: *const *mut c_char) -> Vec<String> {
    let mut out = Vec::new();
    if list.is_null() {
        return out;
    }
    let mut i = 0;
    loop {
        // SAFETY: the array is NULL-terminated, so every index up to the NULL is in bounds.
        let item = unsafe { *list.add(i) };
        if item.is_null() {
            return out;
        }
        // SAFETY: each item is a NUL-terminated string per the contract.
        out.extend(unsafe { from_c(item) });
        i += 1;
    }
}

/// An owned NULL-terminated `char**` list whose pointers stay valid as long as it lives.
#[derive(Default)]
pub struct CStringList {
    strings: Vec<CString>,
    pointers: Vec<*mut c_char>,
}

// SAFETY: the raw pointers point into `strings`, owned by the same value and never
// mutated after construction, so sharing or moving the list across threads is sound.
unsafe impl Send for CStringList {}
unsafe impl Sync for CStringList {}

impl CStringList {
    pub fn new<I: IntoIterator<Item = String>>(items: I) -> Self {
        let strings: Vec<CString> = items
            .into_iter()
            .map(|s| CString::new(s.replace('\0', " ")).expect("NULs were replaced"))
            .collect();
        let mut pointers: Vec<*mut c_char> =
            strings.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        pointers.push(std::ptr::null_mut());
        CStringList { strings, pointers }
    }

    pub fn as_ptr(&self) -> *mut *mut c_char {
        self.pointers.as_ptr() as *mut *mut c_char
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

thread_local! {
    /// Set while this thread runs inside [`guard`].
    static IN_GUARD: Cell<bool> = const { Cell::new(false) };
}
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Installs a panic hook that keeps panics in gridstore's own code off stderr (they become
/// GDAL errors) and leaves any other panic in the process to the previous hook.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = IN_GUARD.with(|g| g.get()) || rayon::current_thread_index().is_some();
            if ours {
                let message = match info.payload().downcast_ref::<&str>() {
                    Some(s) => s.to_string(),
                    None => info
                        .payload()
                        .downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_else(|| "unknown panic".into()),
                };
                let place = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("{message}{place}"));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning an error or a panic into a `CPLError` and `failed`.
pub fn guard<T>(failed: T, f: impl FnOnce() -> Result<T, Error>) -> T {
    let outer = IN_GUARD.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(outer));
    match result {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            report(&e);
            failed
        }
        Err(_) => {
            let what = LAST_PANIC
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_else(|| "unknown panic".into());
            report_failure(
                CPLE_APP_DEFINED,
                &format!(
                    "internal error ({what}). The operation was stopped and nothing was \
                     committed; please report this"
                ),
            );
            failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_gdal_error_and_a_failure_value() {
        install_panic_hook();
        // SAFETY: resets this thread's GDAL error state.
        unsafe { gdal_sys::CPLErrorReset() };
        let got = guard(7, || -> Result<i32, Error> { panic!("boom") });
        assert_eq!(got, 7);
        let msg = last_error_message();
        assert!(
            msg.contains("internal error (boom") && msg.contains("nothing was committed"),
            "{msg}"
        );
    }

    #[test]
    fn a_panic_in_a_worker_thread_is_caught_too() {
        install_panic_hook();
        let got = guard(0, || -> Result<i32, Error> {
            use rayon::prelude::*;
            let v: Vec<i32> = (0..100)
                .into_par_iter()
                .map(|i| if i == 57 { panic!("worker {i}") } else { i })
                .collect();
            Ok(v.len() as i32)
        });
        assert_eq!(got, 0);
        assert!(last_error_message().contains("internal error"));
    }

    #[test]
    fn errors_are_reported_with_their_message() {
        let got = guard(false, || {
            Err(Error::InvalidInput("bad thing; do this".into()))
        });
        assert!(!got);
        assert_eq!(last_error_message(), "GRIDSTORE: bad thing; do this");
    }
}
