//! The read-only backend for stores on GDAL's virtual file systems: object storage
//! (`/vsis3/`, `/vsigs/`, `/vsiaz/`, `/vsiadls/`, `/vsioss/`, `/vsiswift/`) and HTTP
//! (`/vsicurl/`), so a store there is opened with the same paths, credentials and
//! configuration options (`AWS_*`, `GS_*`, `AZURE_*`, `GDAL_HTTP_*`) as any GDAL dataset.
//!
//! Every read is one open of the object: never a listing (objects are opened with
//! `DISABLE_READDIR_ON_OPEN`, since keys have dots), and the object's bytes are asked for
//! in one request where the caller knows a bound for them. GDAL caches what it fetched
//! across opens; that is right for every object but the few that are replaced in place
//! (the manifest and the writer lock, the only objects at the top of a store), whose
//! cached bytes are dropped before each read.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;

use gdal_sys::{
    CPLSetThreadLocalConfigOption, VSICurlPartialClearCache, VSIFCloseL, VSIFOpenEx2L, VSIFReadL,
    VSIFSeekL, VSIFTellL, VSILFILE,
};

use super::Storage;
use crate::error::{Error, Result};

extern "C" {
    // cpl_vsi_error.h; not in the generated bindings.
    fn VSIErrorReset();
    fn VSIGetLastErrorNo() -> c_int;
    fn VSIGetLastErrorMsg() -> *const c_char;
}

/// `VSIE_AWSObjectNotFound`, cpl_vsi_error.h: what /vsis3/ sets for a missing key.
const VSIE_AWS_OBJECT_NOT_FOUND: c_int = 8;

/// How many bytes of an object GDAL fetches with its first request when the caller gives
/// no bound: GDAL's own default chunk (`CPL_VSIL_CURL_CHUNK_SIZE`).
const DEFAULT_FIRST_REQUEST: usize = 16384;

/// The largest first request: larger objects are read in further ranges.
const MAX_FIRST_REQUEST: usize = 64 << 20;

/// True for a path GDAL's virtual file systems own (`/vsis3/...`, `/vsicurl/...`).
pub fn is_vsi_path(path: &Path) -> bool {
    let Some(s) = path.to_str() else {
        return false;
    };
    let Some(rest) = s.strip_prefix("/vsi") else {
        return false;
    };
    // `/vsiXXX/` followed by something.
    rest.split_once('/').is_some_and(|(fs, tail)| {
        !fs.is_empty() && fs.bytes().all(|b| b.is_ascii_alphanumeric()) && !tail.is_empty()
    })
}

/// A store read through GDAL's virtual file systems.
pub struct VsiStorage {
    root: PathBuf,
}

impl VsiStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        VsiStorage { root: root.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The object at `key` as an open handle, `None` when it does not exist. `first`
    /// bytes are fetched by the open's own request.
    fn open(&self, key: &str, first: usize) -> Result<Option<Handle>> {
        let path = self.path(key);
        let c_path = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| Error::InvalidInput(format!("{}: a NUL in the path", path.display())))?;
        if is_replaced_in_place(key) {
            // SAFETY: a NUL-terminated path; GDAL only compares it as a prefix.
            unsafe { VSICurlPartialClearCache(c_path.as_ptr()) };
        }
        let first = first
            .clamp(DEFAULT_FIRST_REQUEST, MAX_FIRST_REQUEST)
            .to_string();
        let first = CString::new(first).expect("digits");
        let readdir = CString::new("DISABLE_READDIR_ON_OPEN=YES").expect("no NUL");
        let mut options = [readdir.as_ptr() as *mut c_char, ptr::null_mut()];
        const INGESTED: &CStr = c"GDAL_INGESTED_BYTES_AT_OPEN";
        // SAFETY: NUL-terminated strings that outlive the calls; the option list is
        // null-terminated. The thread-local option is reset before returning.
        let handle = unsafe {
            CPLSetThreadLocalConfigOption(INGESTED.as_ptr(), first.as_ptr());
            VSIErrorReset();
            let h = VSIFOpenEx2L(c_path.as_ptr(), c"rb".as_ptr(), 1, options.as_mut_ptr());
            CPLSetThreadLocalConfigOption(INGESTED.as_ptr(), ptr::null());
            h
        };
        if !handle.is_null() {
            return Ok(Some(Handle { raw: handle, path }));
        }
        // SAFETY: plain getters of the thread's last VSI error.
        let (code, msg) = unsafe { (VSIGetLastErrorNo(), VSIGetLastErrorMsg()) };
        // SAFETY: GDAL returns a NUL-terminated string it owns (possibly empty).
        let msg = if msg.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(msg) }
                .to_string_lossy()
                .into_owned()
        };
        if code == 0 || code == VSIE_AWS_OBJECT_NOT_FOUND || msg.contains("404") {
            return Ok(None);
        }
        Err(Error::io(
            &path,
            "opening",
            std::io::Error::other(format!(
                "{msg} (check the path, the credentials and GDAL's network options)"
            )),
        ))
    }

    fn read_only(&self, what: &str) -> Error {
        read_only(&self.root, what)
    }
}

/// The error for a write to a store on a virtual file system: `what` was asked.
pub fn read_only(root: &Path, what: &str) -> Error {
    Error::NotSupported(format!(
        "{}: cannot {what}: this version reads stores on {} but does not write there \
         (a safe commit on object storage needs conditional writes, not done yet). Write to \
         a local store and copy it there (for example with `aws s3 sync`)",
        root.display(),
        vsi_prefix(root),
    ))
}

/// The objects a writer replaces in place (the manifest, the lock): those at the top of
/// a store. Every other object is written once and never changes.
fn is_replaced_in_place(key: &str) -> bool {
    !key.contains('/')
}

/// `/vsis3/` of `/vsis3/bucket/x.gridstore`, for messages.
fn vsi_prefix(root: &Path) -> String {
    let s = root.to_string_lossy();
    let end = s[1..].find('/').map_or(s.len(), |i| i + 2);
    s[..end].to_string()
}

/// An open object, closed when dropped.
struct Handle {
    raw: *mut VSILFILE,
    path: PathBuf,
}

impl Handle {
    /// The object's length.
    fn len(&self) -> Result<u64> {
        // SAFETY: `raw` is an open handle; seeking to the end asks for no data.
        let end = unsafe {
            if VSIFSeekL(self.raw, 0, libc::SEEK_END) != 0 {
                return Err(self.failed("finding the length of"));
            }
            VSIFTellL(self.raw)
        };
        Ok(end)
    }

    /// Reads `len` bytes from `offset` into `buf` (replacing its content); fewer where
    /// the object ends.
    fn read_at(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        buf.resize(len, 0);
        // SAFETY: `raw` is an open handle and `buf` has room for `len` bytes.
        let got = unsafe {
            if VSIFSeekL(self.raw, offset, libc::SEEK_SET) != 0 {
                return Err(self.failed("seeking in"));
            }
            VSIFReadL(buf.as_mut_ptr() as *mut c_void, 1, len, self.raw)
        };
        buf.truncate(got);
        Ok(())
    }

    fn failed(&self, what: &'static str) -> Error {
        Error::io(
            &self.path,
            what,
            std::io::Error::other("GDAL's virtual file system failed"),
        )
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: `raw` was opened by VSIFOpenEx2L and is closed once, here.
        unsafe { VSIFCloseL(self.raw) };
    }
}

// SAFETY: a VSI handle is used by one thread at a time (it lives inside one call of the
// storage) and GDAL's virtual file systems allow a handle to move between threads.
unsafe impl Send for Handle {}

impl Storage for VsiStorage {
    fn location(&self) -> &Path {
        &self.root
    }

    fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        Ok(self
            .read_into(key, isize::MAX as usize, &mut buf)?
            .then_some(buf))
    }

    fn read_into(&self, key: &str, max_len: usize, buf: &mut Vec<u8>) -> Result<bool> {
        let Some(h) = self.open(key, max_len.saturating_add(1))? else {
            return Ok(false);
        };
        let len = h.len()?;
        if len > max_len as u64 {
            return Err(Error::corrupt(
                &h.path,
                format!("the object is {len} bytes, more than the {max_len} it can be"),
            ));
        }
        h.read_at(0, len as usize, buf)?;
        if buf.len() as u64 != len {
            return Err(h.failed("reading"));
        }
        Ok(true)
    }

    fn read_range(&self, key: &str, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<bool> {
        let Some(h) = self.open(key, 0)? else {
            return Ok(false);
        };
        // Only what the object holds is allocated, whatever length is asked for.
        let len = h.len()?.saturating_sub(offset).min(len as u64) as usize;
        h.read_at(offset, len, buf)?;
        Ok(true)
    }

    fn write(&self, _key: &str, _data: &[u8]) -> Result<()> {
        Err(self.read_only("write an object"))
    }

    fn create_new(&self, _key: &str, _data: &[u8]) -> Result<bool> {
        Err(self.read_only("write an object"))
    }

    fn claim(&self, _key: &str, _expected: &[u8], _new: &[u8]) -> Result<bool> {
        Err(self.read_only("take the writer lock"))
    }

    fn replace(&self, _key: &str, _data: &[u8]) -> Result<()> {
        Err(self.read_only("commit"))
    }

    fn delete(&self, _key: &str) -> Result<()> {
        Err(self.read_only("delete an object"))
    }

    fn delete_prefix(&self, _prefix: &str) -> Result<()> {
        Err(self.read_only("delete objects"))
    }

    fn list(&self, _prefix: &str) -> Result<Vec<String>> {
        Err(self.read_only("list objects"))
    }

    fn sync(&self) -> Result<()> {
        Err(self.read_only("commit"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsi_paths_are_told_apart() {
        for p in [
            "/vsis3/b/x.gridstore",
            "/vsicurl/http://h/x.gridstore",
            "/vsimem/x.gridstore",
        ] {
            assert!(is_vsi_path(Path::new(p)), "{p}");
        }
        for p in [
            "/data/x.gridstore",
            "/vsi/x",
            "/vsis3",
            "/vsis3/",
            "vsis3/b/x",
            "/vsi-x/y",
        ] {
            assert!(!is_vsi_path(Path::new(p)), "{p}");
        }
        assert_eq!(vsi_prefix(Path::new("/vsis3/b/x.gridstore")), "/vsis3/");
    }

    #[test]
    fn only_top_level_objects_are_replaced_in_place() {
        assert!(is_replaced_in_place("gridstore.json"));
        assert!(is_replaced_in_place("writer.lock"));
        assert!(!is_replaced_in_place("chunks/3/0.0.0.0/1.0.0"));
        assert!(!is_replaced_in_place("snapshots/17.json"));
    }
}
