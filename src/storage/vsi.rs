//! The backend for stores on GDAL's virtual file systems: object storage (`/vsis3/`,
//! `/vsigs/`, `/vsiaz/`, `/vsiadls/`, `/vsioss/`, `/vsiswift/`) and HTTP (`/vsicurl/`), so
//! a store there is opened with the same paths, credentials and configuration options
//! (`AWS_*`, `GS_*`, `AZURE_*`, `GDAL_HTTP_*`) as any GDAL dataset.
//!
//! Writes need conditional writes (`If-None-Match: *` for every new object, `If-Match` for
//! the manifest), which GDAL passes on as request headers. They are used on `/vsis3/` and
//! `/vsiaz/`, where they were tested against an S3 server and an Azure Blob Storage
//! emulator (Azure needs more care: [`super::vsi_azure`]); every other file system is
//! read-only here.
//!
//! Every read is one open of the object: never a listing (objects whose names have a dot
//! are opened with `DISABLE_READDIR_ON_OPEN`), and the object's bytes are asked for in one
//! request where the caller knows a bound for them. GDAL makes a request when it opens an
//! object (a HEAD over HTTP, a GET of the first bytes on the object stores) unless its
//! name has no dot and listings are left enabled: chunks, packs, index nodes and step
//! records are opened so, and their first read brings their bytes and size in one GET
//! ([`opens_lazily`]). GDAL caches what it fetched
//! across opens; that is right for every object but the few that are replaced in place
//! (the manifest and the writer lock, the only objects at the top of a store), whose
//! cached bytes are dropped before each read, one thread at a time
//! ([`super::vsi_fresh`]).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;

use gdal_sys::{
    CPLErrorReset, CPLGetLastErrorMsg, CPLPopErrorHandler, CPLPushErrorHandler,
    CPLQuietErrorHandler, CPLSetThreadLocalConfigOption, CSLDestroy, VSICloseDir,
    VSICurlPartialClearCache, VSIFCloseL, VSIFOpenEx2L, VSIFReadL, VSIFSeekL, VSIFTellL,
    VSIFWriteL, VSIGetFileMetadata, VSIGetNextDirEntry, VSIOpenDir, VSIReadDir, VSIUnlink,
    VSILFILE,
};

use super::vsi_azure::{self, ThreadOptions};
use super::vsi_fresh::{self, FreshRead};
use super::{Commits, Expect, Storage, Version, Written};
use crate::error::{Error, Result};
use crate::keys::is_replaced_in_place;

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

/// A range of an object that ends within this many bytes of its start is read from the
/// start in the open's one request; one further out, in a request of its own after the
/// open's first.
const ONE_REQUEST_RANGE: usize = 1 << 20;

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

/// True when GDAL opens the object at `key` without a request, leaving its first read to
/// fetch its bytes and size in one GET: so for a name with no dot opened with listings
/// enabled (GDAL lists a directory only for a name with a dot, and asks for the object's
/// size or first bytes at the open only when it did not list), on HTTP and on the object
/// stores alike. Objects replaced in place are always opened so that their existence is
/// checked at once.
fn opens_lazily(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    !name.contains('.') && !is_replaced_in_place(key)
}

/// `VSI_STAT_EXISTS_FLAG`, cpl_vsi.h: a stat that only asks whether the object exists.
const VSI_STAT_EXISTS_FLAG: c_int = 1;

/// The file systems whose writers commit here: those whose conditional writes were tested.
const CONDITIONAL_WRITES: &[&str] = &["/vsis3/", "/vsiaz/"];

/// True when stores at `root` can be written: its file system has conditional writes.
pub fn writes_conditionally(root: &Path) -> bool {
    let s = root.to_string_lossy();
    CONDITIONAL_WRITES.iter().any(|p| s.starts_with(p))
}

/// How many times a manifest is read again when it changed while being read.
const VERSIONED_READ_TRIES: usize = 5;

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
        self.open_as(key, first, false)
    }

    /// As [`Self::open`], but where GDAL can ([`opens_lazily`]) the open makes no
    /// request: then the handle's `lazy` is set, and whether the object exists is known
    /// only after its first read ([`Self::open_and_start`]).
    fn open_to_read(&self, key: &str, first: usize) -> Result<Option<Handle>> {
        self.open_as(key, first, opens_lazily(key))
    }

    /// Opens the object at `key` to read up to `piece` bytes from `offset`, a read made
    /// here when GDAL opens the object lazily: its first request then brings the bytes and
    /// the object's length. `None` when the object does not exist; otherwise the handle and
    /// how many bytes `buf` holds (none from an object opened at once, whose length is
    /// known without a read).
    fn open_and_start(
        &self,
        key: &str,
        first: usize,
        (offset, piece): (u64, usize),
        buf: &mut Vec<u8>,
    ) -> Result<Option<(Handle, usize)>> {
        buf.clear();
        let Some(h) = self.open_to_read(key, first)? else {
            return Ok(None);
        };
        if !h.lazy {
            return Ok(Some((h, 0)));
        }
        h.read_at(offset, piece, buf)?;
        let got = buf.len();
        if got == 0 && !h.exists() {
            // GDAL takes a failed first request (a server error as much as a 404) for a
            // missing object: the request for its size, made now, tells which.
            drop(h);
            self.forget(key)?;
            return Ok(self.open(key, first)?.map(|h| (h, 0)));
        }
        // The object ended, or the read failed.
        if got < piece && h.len()?.saturating_sub(offset) > got as u64 {
            return Err(h.failed("reading"));
        }
        Ok(Some((h, got)))
    }

    fn open_as(&self, key: &str, first: usize, lazy: bool) -> Result<Option<Handle>> {
        let path = self.path(key);
        let c_path = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| Error::InvalidInput(format!("{}: a NUL in the path", path.display())))?;
        let fresh = is_replaced_in_place(key).then(|| vsi_fresh::hold(&path));
        if fresh.is_some() {
            // SAFETY: a NUL-terminated path; GDAL only compares it as a prefix.
            unsafe { VSICurlPartialClearCache(c_path.as_ptr()) };
        }
        let first = first
            .clamp(DEFAULT_FIRST_REQUEST, MAX_FIRST_REQUEST)
            .to_string();
        let first = CString::new(first).expect("digits");
        // Set either way, whatever `GDAL_DISABLE_READDIR_ON_OPEN` the user configured: a
        // lazy open needs listings enabled, any other must not list.
        let readdir = match lazy {
            true => c"DISABLE_READDIR_ON_OPEN=NO",
            false => c"DISABLE_READDIR_ON_OPEN=YES",
        };
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
            return Ok(Some(Handle {
                raw: handle,
                path,
                lazy,
                _fresh: fresh,
            }));
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

    fn c_path(&self, key: &str) -> Result<CString> {
        let path = self.path(key);
        CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| Error::InvalidInput(format!("{}: a NUL in the path", path.display())))
    }

    /// Drops what GDAL cached of the objects under `key` (an object or a prefix).
    fn forget(&self, key: &str) -> Result<()> {
        let c_path = self.c_path(key)?;
        // SAFETY: a NUL-terminated path; GDAL only compares it as a prefix.
        unsafe { VSICurlPartialClearCache(c_path.as_ptr()) };
        Ok(())
    }

    /// The keys of every object below the prefix `dir`, relative to it, at any depth.
    fn objects_below(&self, dir: &str) -> Result<Vec<String>> {
        self.forget(dir)?;
        let c_path = self.c_path(dir)?;
        let mut names = Vec::new();
        // SAFETY: a NUL-terminated path; GDAL returns a directory handle (or null) that
        // is closed once below; each entry and its NUL-terminated name stay valid until the
        // next call on the handle, and the name is copied before that.
        unsafe {
            let handle = VSIOpenDir(c_path.as_ptr(), -1, ptr::null());
            if handle.is_null() {
                return Ok(names);
            }
            loop {
                let entry = VSIGetNextDirEntry(handle);
                if entry.is_null() {
                    break;
                }
                let entry = &*entry;
                let is_dir =
                    entry.bModeKnown != 0 && (entry.nMode as u32 & libc::S_IFMT) == libc::S_IFDIR;
                let name = CStr::from_ptr(entry.pszName).to_string_lossy();
                if !is_dir && !name.ends_with('/') && !name.is_empty() {
                    names.push(name.into_owned());
                }
            }
            VSICloseDir(handle);
        }
        Ok(names)
    }

    /// Refuses a write when this file system has no tested conditional writes.
    fn check_writes(&self, what: &str) -> Result<()> {
        match writes_conditionally(&self.root) {
            true => Ok(()),
            false => Err(self.read_only(what)),
        }
    }

    /// PUTs `data` at `key` with the request `headers` (`Name=value`): one request, made
    /// when the handle closes. Errors carry GDAL's message; GDAL's own report of it is
    /// kept quiet, since a refused condition is an expected outcome. An object replaced in
    /// place is written in its turn ([`vsi_fresh`]), and what GDAL cached of it on the way
    /// is dropped before the turn ends.
    fn put(&self, key: &str, data: &[u8], headers: &[String]) -> Result<()> {
        self.check_writes("write an object")?;
        let fresh = is_replaced_in_place(key).then(|| vsi_fresh::hold(&self.path(key)));
        let put = self.put_now(key, data, headers);
        if fresh.is_some() {
            self.forget(key)?;
        }
        put
    }

    fn put_now(&self, key: &str, data: &[u8], headers: &[String]) -> Result<()> {
        let c_path = self.c_path(key)?;
        let _options = match vsi_azure::is_azure(&self.root) {
            true => vsi_azure::write_options(&self.path(key), data.len())?,
            false => ThreadOptions::none(),
        };
        let headers: Vec<CString> = headers
            .iter()
            .map(|h| CString::new(h.as_str()).expect("no NUL in a header"))
            .collect();
        let mut options: Vec<*mut c_char> =
            headers.iter().map(|h| h.as_ptr() as *mut c_char).collect();
        options.push(ptr::null_mut());
        // SAFETY: NUL-terminated strings and a null-terminated option list that outlive the
        // calls; `data` is valid for `data.len()` bytes; the handle is closed exactly once;
        // the error handler pushed is popped before returning.
        let ok = unsafe {
            CPLPushErrorHandler(Some(CPLQuietErrorHandler));
            CPLErrorReset();
            let h = VSIFOpenEx2L(c_path.as_ptr(), c"wb".as_ptr(), 1, options.as_mut_ptr());
            let ok = !h.is_null() && {
                let wrote = VSIFWriteL(data.as_ptr() as *const c_void, 1, data.len(), h);
                let closed = VSIFCloseL(h) == 0;
                wrote == data.len() && closed
            };
            CPLPopErrorHandler();
            ok
        };
        if ok {
            return Ok(());
        }
        Err(Error::io(
            self.path(key),
            "writing",
            std::io::Error::other(last_cpl_error()),
        ))
    }

    /// The whole object at `key` into `buf`, in one open: `false` when it does not exist,
    /// an error when it is longer than `max_len`.
    fn read_once(&self, key: &str, max_len: usize, buf: &mut Vec<u8>) -> Result<bool> {
        let bound = max_len.saturating_add(1);
        let piece = bound.min(ONE_REQUEST_RANGE);
        let Some((h, have)) = self.open_and_start(key, bound, (0, piece), buf)? else {
            return Ok(false);
        };
        let len = h.len()?;
        if len > max_len as u64 {
            return Err(Error::corrupt(
                &h.path,
                format!("the object is {len} bytes, more than the {max_len} it can be"),
            ));
        }
        if have as u64 != len {
            h.read_at(0, len as usize, buf)?;
        }
        if buf.len() as u64 != len {
            return Err(h.failed("reading"));
        }
        Ok(true)
    }

    /// Whether the object at `key` holds exactly `data` (`None`: it does not exist), read
    /// fresh from the server.
    fn holds(&self, key: &str, data: &[u8]) -> Result<Option<bool>> {
        let _fresh = vsi_fresh::hold(&self.path(key));
        self.forget(key)?;
        let Some(h) = self.open(key, data.len() + 1)? else {
            return Ok(None);
        };
        if h.len()? != data.len() as u64 {
            return Ok(Some(false));
        }
        let mut buf = Vec::new();
        match h.read_at(0, data.len(), &mut buf) {
            Ok(()) => Ok(Some(buf == data)),
            // Deleted between the request for its size and the one for its bytes, it is
            // missing; otherwise the read failed.
            Err(e) => {
                drop(h);
                self.forget(key)?;
                match self.open(key, 0)? {
                    None => Ok(None),
                    Some(_) => Err(e),
                }
            }
        }
    }

    /// The object's ETag, by GDAL's request for its headers; `None` when it does not
    /// exist.
    fn etag(&self, key: &str) -> Result<Option<Version>> {
        let _fresh = vsi_fresh::hold(&self.path(key));
        self.forget(key)?;
        let c_path = self.c_path(key)?;
        // SAFETY: NUL-terminated strings; GDAL returns a null-terminated list of
        // NUL-terminated strings (or null) that is ours to free, freed once below.
        unsafe {
            CPLPushErrorHandler(Some(CPLQuietErrorHandler));
            let list = VSIGetFileMetadata(c_path.as_ptr(), c"HEADERS".as_ptr(), ptr::null_mut());
            CPLPopErrorHandler();
            if list.is_null() {
                return Ok(None);
            }
            let mut etag = None;
            let mut i = 0;
            while !(*list.add(i)).is_null() {
                let line = CStr::from_ptr(*list.add(i)).to_string_lossy();
                if let Some((name, value)) = line.split_once('=') {
                    if name.trim().eq_ignore_ascii_case("etag") {
                        etag = Some(Version(value.trim().to_string()));
                    }
                }
                i += 1;
            }
            CSLDestroy(list);
            Ok(etag)
        }
    }
}

/// Whether the ETag `version` is the MD5 digest of `data` (as hexadecimal digits, in
/// quotes or not).
fn is_md5_of(version: &Version, data: &[u8]) -> bool {
    use md5::{Digest, Md5};
    let hex: String = Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    version.0.trim_matches('"').eq_ignore_ascii_case(&hex)
}

/// The message of GDAL's last error on this thread.
fn last_cpl_error() -> String {
    // SAFETY: GDAL returns a NUL-terminated string it owns (possibly empty).
    let msg = unsafe { CStr::from_ptr(CPLGetLastErrorMsg()) }
        .to_string_lossy()
        .into_owned();
    match msg.is_empty() {
        true => "GDAL's virtual file system failed".into(),
        false => msg,
    }
}

/// The error for a write to a store on a virtual file system without tested conditional
/// writes: `what` was asked.
pub fn read_only(root: &Path, what: &str) -> Error {
    Error::NotSupported(format!(
        "{}: cannot {what}: stores on {} are read-only, since a safe commit needs conditional \
         writes (If-None-Match, If-Match), which gridstore uses on /vsis3/ and /vsiaz/ only. \
         Write to a local store and copy it there, or use an S3-compatible endpoint through \
         /vsis3/",
        root.display(),
        vsi_prefix(root),
    ))
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
    /// Opened without a request ([`opens_lazily`]): the object's existence and length
    /// are known after its first read.
    lazy: bool,
    /// For an object replaced in place, held until the handle is closed (fields drop
    /// after `drop`).
    _fresh: Option<FreshRead>,
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

    /// Whether the object exists; answered from what GDAL learnt by the reads before.
    fn exists(&self) -> bool {
        let Ok(c_path) = CString::new(self.path.to_string_lossy().as_bytes()) else {
            return false;
        };
        // SAFETY: a NUL-terminated path, and room for what GDAL writes: `VSIStatBufL` is
        // the C library's `struct stat64` (cpl_vsi.h), which the bindings leave opaque,
        // so the buffer is the `libc` crate's definition of it, all zeros being valid.
        unsafe {
            let mut stat: libc::stat64 = std::mem::zeroed();
            let buf = (&mut stat as *mut libc::stat64).cast::<gdal_sys::VSIStatBufL>();
            gdal_sys::VSIStatExL(c_path.as_ptr(), buf, VSI_STAT_EXISTS_FLAG) == 0
        }
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
        if is_replaced_in_place(key) && vsi_azure::is_azure(&self.root) {
            // GDAL takes the size from one request and the bytes from another: an object
            // replaced in between would read torn, so the read is checked by its version.
            return Ok(match self.read_versioned(key, max_len)? {
                Some((data, _)) => {
                    *buf = data;
                    true
                }
                None => false,
            });
        }
        self.read_once(key, max_len, buf)
    }

    fn read_range(&self, key: &str, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<bool> {
        // A range that ends near the start of the object comes with the open's first
        // request: one GET, where GDAL would otherwise fetch its first 16 KiB and then
        // the rest.
        let end = offset.saturating_add(len as u64);
        let first = match end <= ONE_REQUEST_RANGE as u64 {
            true => end as usize,
            false => 0,
        };
        let piece = len.min(MAX_FIRST_REQUEST);
        let Some((h, have)) = self.open_and_start(key, first, (offset, piece), buf)? else {
            return Ok(false);
        };
        // A lazy first read that stopped short reached the object's end. Otherwise the
        // range is read up to the object's length (known by now), so that only what the
        // object holds is allocated, whatever length is asked for.
        if !h.lazy || (have == piece && piece < len) {
            let len = h.len()?.saturating_sub(offset).min(len as u64) as usize;
            h.read_at(offset, len, buf)?;
        }
        Ok(true)
    }

    fn write(&self, key: &str, data: &[u8]) -> Result<()> {
        self.put(key, data, &[IF_ABSENT.to_string()])
    }

    fn create_new(&self, key: &str, data: &[u8]) -> Result<bool> {
        let mut tries = CREATE_TRIES;
        loop {
            let put = self.put(key, data, &[IF_ABSENT.to_string()]);
            // What is there tells what happened, whatever the PUT said: a refused PUT may
            // fail (the object exists), or be lost after it succeeded, or (on `/vsiaz/`,
            // whose 409 GDAL answers with a DELETE and a second PUT) report success when
            // that DELETE found the object gone. Missing now, the object may have been
            // there and been deleted since (a claim released): the write is tried again,
            // after a pause, lest the writers that keep taking it win each time.
            if let Some(ours) = self.holds(key, data)? {
                return Ok(ours);
            }
            tries -= 1;
            if tries == 0 {
                let writes = match put {
                    Ok(()) => format!("the server accepted each of {CREATE_TRIES} writes"),
                    Err(e) => format!(
                        "each of {CREATE_TRIES} writes was refused or failed (the last: {e})"
                    ),
                };
                return Err(Error::io(
                    self.path(key),
                    "creating",
                    std::io::Error::other(format!(
                        "{writes}, yet the object was missing each time it was read back: \
                         other writers may be creating and deleting it very fast (try again), \
                         or these credentials may not write there"
                    )),
                ));
            }
            super::back_off(CREATE_TRIES - tries - 1);
        }
    }

    fn claim(&self, _key: &str, _expected: &[u8], _new: &[u8]) -> Result<bool> {
        Err(self.read_only("take the writer lock (writers on object storage take none)"))
    }

    fn replace(&self, _key: &str, _data: &[u8]) -> Result<()> {
        Err(self.read_only("replace an object without a condition"))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.check_writes("delete an object")?;
        let _fresh = is_replaced_in_place(key).then(|| vsi_fresh::hold(&self.path(key)));
        let c_path = self.c_path(key)?;
        // SAFETY: a NUL-terminated path; the error handler pushed is popped.
        let failed = unsafe {
            CPLPushErrorHandler(Some(CPLQuietErrorHandler));
            CPLErrorReset();
            let failed = VSIUnlink(c_path.as_ptr()) != 0;
            CPLPopErrorHandler();
            failed
        };
        self.forget(key)?;
        // Deleting a missing object is no error; one that is still there is.
        if failed && self.open(key, 0)?.is_some() {
            return Err(Error::io(
                self.path(key),
                "deleting",
                std::io::Error::other(last_cpl_error()),
            ));
        }
        Ok(())
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.check_writes("delete objects")?;
        let prefix = prefix.trim_end_matches('/');
        // A "directory" is a common prefix of keys: its objects go one by one, found in
        // one recursive listing (on S3 one paged LIST without a delimiter).
        for name in self.objects_below(prefix)? {
            self.delete(&format!("{prefix}/{name}"))?;
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        // GDAL caches a listing under the directory's name without the trailing `/`:
        // dropped by that name (as a prefix, it covers everything below too), or a name
        // whose objects were all deleted since would still be listed.
        let dir = prefix.trim_end_matches('/');
        self.forget(dir)?;
        let c_path = self.c_path(dir)?;
        // SAFETY: a NUL-terminated path; GDAL returns a null-terminated list of
        // NUL-terminated strings (or null), ours to free, freed once below.
        let names = unsafe {
            let list = VSIReadDir(c_path.as_ptr());
            let mut names = Vec::new();
            if !list.is_null() {
                let mut i = 0;
                while !(*list.add(i)).is_null() {
                    names.push(CStr::from_ptr(*list.add(i)).to_string_lossy().into_owned());
                    i += 1;
                }
                CSLDestroy(list);
            }
            names
        };
        Ok(names
            .into_iter()
            .map(|n| n.trim_end_matches('/').to_string())
            .filter(|n| !n.is_empty() && n != "." && n != "..")
            .collect())
    }

    fn sync(&self) -> Result<()> {
        // Each object is durable once its PUT returned.
        self.check_writes("commit")
    }

    fn reads_by_request(&self) -> bool {
        true
    }

    fn max_object_bytes(&self) -> Option<usize> {
        vsi_azure::is_azure(&self.root).then_some(vsi_azure::SINGLE_PUT_MIB << 20)
    }

    fn commits(&self) -> Commits {
        Commits::Optimistic
    }

    fn read_versioned(&self, key: &str, max_len: usize) -> Result<Option<(Vec<u8>, Version)>> {
        // GDAL returns no version with an object's bytes: its ETag is asked before and
        // after the read, and the read counts only when both agree, or when the ETag is
        // the MD5 digest of the bytes read, which S3 and Cloud Storage give an object
        // written in one request: then they are that version's bytes, and the second
        // request is saved.
        let _fresh = vsi_fresh::hold(&self.path(key));
        let mut failed = None;
        for _ in 0..VERSIONED_READ_TRIES {
            let Some(before) = self.etag(key)? else {
                return Ok(None);
            };
            self.forget(key)?;
            let mut buf = Vec::new();
            let read = self.read_once(key, max_len, &mut buf);
            if matches!(read, Ok(true)) && is_md5_of(&before, &buf) {
                return Ok(Some((buf, before)));
            }
            // Replaced (or deleted) while it was read, what was read may mix two versions,
            // or fail for it: it is read again. So is a read that failed although the
            // version held (a passing network failure).
            if self.etag(key)?.as_ref() == Some(&before) {
                match read {
                    Ok(found) => return Ok(found.then_some((buf, before))),
                    Err(e) => failed = Some(e),
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Err(Error::io(
            self.path(key),
            "reading",
            std::io::Error::other(format!(
                "it changed each of the {VERSIONED_READ_TRIES} times it was read; other \
                 writers are committing very fast, try again"
            )),
        ))
    }

    fn write_if(&self, key: &str, data: &[u8], expect: Expect<'_>) -> Written {
        let header = match expect {
            Expect::Absent => IF_ABSENT.to_string(),
            Expect::At(v) => format!("If-Match={}", v.0),
        };
        match self.put(key, data, &[header]) {
            Ok(()) => Written::Done,
            // GDAL does not say whether the server refused the condition or the request
            // failed: the caller reads the object back.
            Err(e) => Written::Unknown(e),
        }
    }
}

/// How many times `create_new` writes an object that was missing each time it was read
/// back after its write, before it reports the failure.
const CREATE_TRIES: u32 = 8;

/// The request header of a write that must not replace an object.
const IF_ABSENT: &str = "If-None-Match=*";

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
        assert!(!is_replaced_in_place("chunks/3/0_0_0_0/1_0_0"));
        assert!(!is_replaced_in_place("snapshots/17.json"));
    }
}
