//! What a conditional write on Azure (`/vsiaz/`) needs beyond the request header, given
//! how GDAL writes a blob (3.6, and its source since).
//!
//! - GDAL answers a `409 Conflict` to a blob's PUT by deleting the blob and sending the
//!   PUT again (it takes the 409 for "the blob has another type"). Azure answers a refused
//!   `If-None-Match: *` with `409 BlobAlreadyExists`, so that retry would turn a refused
//!   creation into a replacement. Each write is therefore sent with
//!   `x-ms-delete-snapshots: only` among GDAL's HTTP headers: the header means nothing to a
//!   PUT, and makes that DELETE remove only the blob's snapshots, never the blob. The
//!   second PUT is then refused like the first, and the write fails as it must. A refused
//!   `If-Match` is a `412`, which GDAL does not retry.
//! - A blob larger than GDAL's `VSIAZ_CHUNK_SIZE` is written as an append blob in several
//!   requests, each carrying the condition, so it can neither be created nor replaced
//!   conditionally. The chunk size is held at its largest (4 MiB) and larger objects are
//!   refused; packs stay within it (`Storage::max_object_bytes`).
//! - GDAL opens a blob with a `HEAD` for its size, then a `GET` for its bytes: a blob
//!   replaced in between reads torn (the old size, the new bytes). The objects replaced in
//!   place (the manifest, claims) are read between two reads of their ETag there, and read
//!   again when it changed.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr;

use gdal_sys::{CPLGetConfigOption, CPLGetThreadLocalConfigOption, CPLSetThreadLocalConfigOption};

use crate::error::{Error, Result};

/// GDAL's largest `VSIAZ_CHUNK_SIZE` in MiB, the size of a blob written in one PUT.
pub(super) const SINGLE_PUT_MIB: usize = 4;

/// The header that keeps GDAL's delete-and-retry on a 409 from deleting the blob.
const KEEP_BLOB_ON_RETRY: &str = "x-ms-delete-snapshots: only";

/// True for a store on Azure Blob Storage.
pub fn is_azure(root: &Path) -> bool {
    root.to_string_lossy().starts_with("/vsiaz/")
}

/// The thread-local GDAL options a conditional write of `len` bytes at `path` on Azure is
/// made with; an error for an object too large to be written in one request.
pub fn write_options(path: &Path, len: usize) -> Result<ThreadOptions> {
    if len > SINGLE_PUT_MIB << 20 {
        return Err(Error::NotSupported(format!(
            "{}: cannot write an object of {len} bytes on /vsiaz/: a conditional write there \
             must be a single request, which GDAL makes for at most {SINGLE_PUT_MIB} MiB. \
             Give the store smaller tiles (`gridstore create --tile-size`, `-co BLOCKSIZE`) or a \
             compression",
            path.display()
        )));
    }
    // SAFETY: a NUL-terminated name; GDAL returns a string it owns (or null), copied at once.
    let current = unsafe {
        let v = CPLGetConfigOption(c"GDAL_HTTP_HEADERS".as_ptr(), ptr::null());
        (!v.is_null()).then(|| CStr::from_ptr(v).to_string_lossy().into_owned())
    };
    let headers = match current {
        Some(h) if !h.trim().is_empty() => format!("{h}\r\n{KEEP_BLOB_ON_RETRY}"),
        _ => KEEP_BLOB_ON_RETRY.to_string(),
    };
    Ok(ThreadOptions::set(&[
        (c"GDAL_HTTP_HEADERS", headers),
        (c"VSIAZ_CHUNK_SIZE", SINGLE_PUT_MIB.to_string()),
    ]))
}

/// GDAL configuration options set for the calling thread while the value lives; their
/// previous thread-local values are put back when it drops.
pub struct ThreadOptions {
    saved: Vec<(&'static CStr, Option<CString>)>,
}

impl ThreadOptions {
    /// No option set.
    pub fn none() -> ThreadOptions {
        ThreadOptions { saved: Vec::new() }
    }

    fn set(options: &[(&'static CStr, String)]) -> ThreadOptions {
        let mut saved = Vec::with_capacity(options.len());
        for (name, value) in options {
            let value = CString::new(value.as_str()).expect("no NUL in an option");
            // SAFETY: NUL-terminated strings; GDAL copies the value it is given and
            // returns its own string (or null), copied before the option is changed.
            unsafe {
                let old = CPLGetThreadLocalConfigOption(name.as_ptr(), ptr::null());
                saved.push((*name, (!old.is_null()).then(|| CStr::from_ptr(old).into())));
                CPLSetThreadLocalConfigOption(name.as_ptr(), value.as_ptr());
            }
        }
        ThreadOptions { saved }
    }
}

impl Drop for ThreadOptions {
    fn drop(&mut self) {
        for (name, old) in self.saved.drain(..).rev() {
            let old = old.as_ref().map_or(ptr::null(), |v| v.as_ptr());
            // SAFETY: NUL-terminated strings (or null, which unsets); GDAL copies them.
            unsafe { CPLSetThreadLocalConfigOption(name.as_ptr(), old) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_option(name: &CStr) -> Option<String> {
        // SAFETY: a NUL-terminated name; the returned string is copied at once.
        unsafe {
            let v = CPLGetThreadLocalConfigOption(name.as_ptr(), ptr::null());
            (!v.is_null()).then(|| CStr::from_ptr(v).to_string_lossy().into_owned())
        }
    }

    #[test]
    fn options_hold_while_the_value_lives_and_the_old_ones_come_back() {
        let name = c"VSIAZ_CHUNK_SIZE";
        let before = ThreadOptions::set(&[(name, "2".into())]);
        {
            let path = Path::new("/vsiaz/c/s.gridstore/gridstore.json");
            let _options = write_options(path, 10).unwrap();
            assert_eq!(thread_option(name).as_deref(), Some("4"));
            let headers = thread_option(c"GDAL_HTTP_HEADERS").unwrap();
            assert!(headers.ends_with(KEEP_BLOB_ON_RETRY), "{headers}");
        }
        assert_eq!(thread_option(name).as_deref(), Some("2"));
        assert_eq!(thread_option(c"GDAL_HTTP_HEADERS"), None);
        drop(before);
        assert_eq!(thread_option(name), None);
    }

    #[test]
    fn objects_over_one_put_are_refused() {
        let path = Path::new("/vsiaz/c/s.gridstore/chunks/1/0");
        assert!(write_options(path, 4 << 20).is_ok());
        let err = write_options(path, (4 << 20) + 1)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("4 MiB") && err.contains("--tile-size"),
            "{err}"
        );
        assert!(is_azure(Path::new("/vsiaz/c/s")));
        assert!(!is_azure(Path::new("/vsiaz_streaming/c/s")));
        assert!(!is_azure(Path::new("/vsis3/c/s")));
    }
}
