//! The local backend: objects as files under a directory, with durable, atomic commits;
//! the directory as a whole (made, checked, emptied, removed, measured) in [`store_dir`].

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{ErrorKind as IoKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Part, Staged, Storage};
use crate::error::{Error, Result};

mod store_dir;

pub use store_dir::{DirEntry, Entries, EntryKind};

/// Objects as files under a directory.
///
/// Nothing found in the directory is trusted to be what gridstore put there. Objects are
/// read only if they are regular files, opened so that a FIFO or device cannot block the
/// open, and never followed through a symbolic link in their place. Objects are written
/// only as new files (`O_CREAT | O_EXCL`, which never follows a symbolic link either), in
/// directories checked to be real directories, not symbolic links to elsewhere: nothing
/// planted in a store can redirect a write out of it.
pub struct LocalStorage {
    root: PathBuf,
    /// Directories below the root checked to be real directories (made or found), so the
    /// write path asks the kernel once per directory.
    made_dirs: Mutex<HashSet<PathBuf>>,
    /// Files and directories written since the last `sync`, while they are few; `None` once
    /// there are too many to sync one by one.
    unsynced: Mutex<Option<Vec<PathBuf>>>,
}

/// A temporary file next to `path`: `.<name>.<pid>.<n>.<suffix>`, so what a killed
/// process left can be told apart and removed (docs/FORMAT.md §7); `n` keeps the threads
/// of one process apart.
fn temporary_beside(path: &Path, suffix: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("object");
    path.with_file_name(format!(".{name}.{}.{n}.{suffix}", std::process::id()))
}

/// Up to this many new files and directories, `sync` fsyncs them one by one; beyond, one
/// syncfs() is cheaper. (A small write must not wait for the whole file system to flush
/// what other programs wrote.)
const MAX_SYNC_ONE_BY_ONE: usize = 256;

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStorage {
            root: root.into(),
            made_dirs: Mutex::new(HashSet::new()),
            unsynced: Mutex::new(Some(Vec::new())),
        }
    }

    /// Remembers a new file or directory for the next `sync`. Returns whether it will be
    /// synced on its own (false once there are too many, and one syncfs() will do).
    fn written(&self, path: &Path) -> bool {
        let mut unsynced = self.unsynced.lock().expect("poisoned");
        match unsynced.as_mut() {
            Some(list) if list.len() >= MAX_SYNC_ONE_BY_ONE => {
                *unsynced = None;
                false
            }
            Some(list) => {
                list.push(path.to_path_buf());
                true
            }
            None => false,
        }
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Makes sure the directory holding `path` exists below the root, and that it and
    /// every directory between it and the root is a real directory: a symbolic link there
    /// (to a directory outside the store, say) is an error, not followed.
    fn ensure_parent(&self, path: &Path) -> Result<()> {
        let Some(dir) = path.parent() else {
            return Ok(());
        };
        if self.made_dirs.lock().expect("poisoned").contains(dir) {
            return Ok(());
        }
        let below = dir.strip_prefix(&self.root).map_err(|_| {
            Error::InvalidInput(format!(
                "{}: not inside the store at {}",
                dir.display(),
                self.root.display()
            ))
        })?;
        let mut at = self.root.clone();
        for part in below.components() {
            let std::path::Component::Normal(name) = part else {
                return Err(Error::InvalidInput(format!(
                    "{}: an object name may not leave its directory",
                    path.display()
                )));
            };
            at.push(name);
            if self.made_dirs.lock().expect("poisoned").contains(&at) {
                continue;
            }
            if self.make_dir(&at)? {
                // A new directory must reach the disk with its files.
                let _ = self.written(&at);
            }
            self.made_dirs.lock().expect("poisoned").insert(at.clone());
        }
        Ok(())
    }

    /// Makes directory `dir` unless it is one already; returns whether it made it. Anything
    /// else there (a symbolic link, a file) is an error.
    fn make_dir(&self, dir: &Path) -> Result<bool> {
        match fs::create_dir(dir) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == IoKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(dir, "creating a directory", e)),
        }
        let found = fs::symlink_metadata(dir).map_err(|e| Error::io(dir, "opening", e))?;
        if found.is_dir() {
            return Ok(false);
        }
        Err(Error::corrupt(
            dir,
            format!(
                "{} stands where the store keeps a directory; gridstore never makes one, so \
                 it was put there by something else and nothing is written through it: \
                 remove it",
                file_kind(&found.file_type())
            ),
        ))
    }
}

/// Says what kind of file `t` is, for messages.
fn file_kind(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a regular file"
    }
}

/// The error for an object that is not a regular file (`what` says what it is).
fn not_an_object(path: &Path, what: &str) -> Error {
    Error::corrupt(
        path,
        format!(
            "the object is {what}, not a regular file; gridstore only ever writes regular \
             files, so it was put there by something else and is not read: remove it"
        ),
    )
}

/// Opens the object at `path` to read it, with its length; `None` when it does not exist.
/// It must be a regular file: a symbolic link in its place is not followed (`O_NOFOLLOW`),
/// and a FIFO or device cannot block the open (`O_NONBLOCK`, which changes nothing for a
/// regular file) before `fstat` finds it is not one.
fn open_object(path: &Path) -> Result<Option<(fs::File, u64)>> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path);
    let f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == IoKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_an_object(path, "a symbolic link"))
        }
        // What a socket, or a device without a driver, answers to an open.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return Err(not_an_object(path, "a socket or device"))
        }
        Err(e) => return Err(Error::io(path, "reading", e)),
    };
    let meta = f.metadata().map_err(|e| Error::io(path, "reading", e))?;
    if !meta.is_file() {
        return Err(not_an_object(path, file_kind(&meta.file_type())));
    }
    Ok(Some((f, meta.len())))
}

/// Creates a new file at `path` for writing: `O_CREAT | O_EXCL`, so neither a file nor a
/// symbolic link there is ever written through.
fn create_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// The error for a new object whose name is taken.
fn already_exists(path: &Path) -> Error {
    Error::AlreadyExists {
        path: path.to_path_buf(),
        hint: "A new object is never written over an existing one: run `gridstore repair`".into(),
    }
}

/// Reads all of `f`, an object of `len` bytes by its `fstat`, into `buf` (replacing its
/// content) if that is at most `max_len` bytes; a longer object is an error, and so is one
/// that grows past `max_len` while being read.
fn read_whole(path: &Path, f: fs::File, len: u64, max_len: usize, buf: &mut Vec<u8>) -> Result<()> {
    use std::io::Read;
    let too_long = |len: u64| {
        Error::corrupt(
            path,
            format!("the object is {len} bytes, more than the {max_len} it may be"),
        )
    };
    if len > max_len as u64 {
        return Err(too_long(len));
    }
    buf.clear();
    buf.reserve_exact(len as usize);
    f.take(max_len as u64 + 1)
        .read_to_end(buf)
        .map_err(|e| Error::io(path, "reading", e))?;
    if buf.len() > max_len {
        return Err(too_long(buf.len() as u64));
    }
    Ok(())
}

impl Storage for LocalStorage {
    fn location(&self) -> &Path {
        &self.root
    }

    fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key);
        let Some((f, len)) = open_object(&path)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        // Bounded by the length of a regular file, not by a number read from one.
        read_whole(&path, f, len, isize::MAX as usize, &mut buf)?;
        Ok(Some(buf))
    }

    fn read_into(&self, key: &str, max_len: usize, buf: &mut Vec<u8>) -> Result<bool> {
        let path = self.path(key);
        let Some((f, len)) = open_object(&path)? else {
            return Ok(false);
        };
        read_whole(&path, f, len, max_len, buf)?;
        Ok(true)
    }

    fn read_range(&self, key: &str, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<bool> {
        use std::os::unix::fs::FileExt;
        let path = self.path(key);
        let Some((f, size)) = open_object(&path)? else {
            return Ok(false);
        };
        // Only what the object holds is allocated, whatever length is asked for.
        let len = size.saturating_sub(offset).min(len as u64) as usize;
        buf.clear();
        buf.resize(len, 0);
        let mut got = 0;
        while got < len {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(Error::io(&path, "reading", e)),
            }
        }
        buf.truncate(got);
        Ok(true)
    }

    fn write(&self, key: &str, data: &[u8]) -> Result<()> {
        self.write_parts(key, &[Part::Bytes(data)])
    }

    fn write_parts(&self, key: &str, parts: &[Part<'_>]) -> Result<()> {
        let path = self.path(key);
        self.ensure_parent(&path)?;
        let mut f = create_file(&path).map_err(|e| match e.kind() {
            IoKind::AlreadyExists => already_exists(&path),
            _ => Error::io(&path, "writing", e),
        })?;
        // The object copied from, opened once for all its ranges.
        let mut source: Option<(&str, PathBuf, fs::File)> = None;
        // Runs of bytes between copies go to the file in one call each.
        let mut pending: Vec<&[u8]> = Vec::new();
        let written = |e| Error::io(&path, "writing", e);
        for part in parts {
            match *part {
                Part::Bytes(data) => pending.push(data),
                Part::Copy { key, offset, len } => {
                    write_all_slices(&mut f, &pending).map_err(written)?;
                    pending.clear();
                    if source.as_ref().is_none_or(|(k, _, _)| *k != key) {
                        let from = self.path(key);
                        let Some((src, _)) = open_object(&from)? else {
                            return Err(Error::io(&from, "copying from", IoKind::NotFound.into()));
                        };
                        source = Some((key, from, src));
                    }
                    let (_, from, src) = source.as_ref().expect("opened above");
                    copy_range(src, from, offset, len, &mut f).map_err(written)?;
                }
            }
        }
        write_all_slices(&mut f, &pending).map_err(written)?;
        if self.written(&path) {
            // The commit will fsync this file: start writing it to disk now, so that the
            // fsync finds the work done instead of waiting for it.
            start_writeback(&f);
        }
        Ok(())
    }

    fn create_new(&self, key: &str, data: &[u8]) -> Result<bool> {
        let path = self.path(key);
        self.ensure_parent(&path)?;
        // The object must appear with its whole content or not at all: a process killed
        // between creating a file and writing it would leave an empty lock that nobody
        // could attribute. So the content goes to a temporary file first, which a hard
        // link then publishes under the key, failing if the key exists (like O_EXCL).
        let tmp = temporary_beside(&path, "new");
        let written = create_file(&tmp).and_then(|mut f| f.write_all(data));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            // Named after the object, not the temporary file nobody knows of.
            return Err(Error::io(&path, "creating", e));
        }
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == IoKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(&path, "creating", e)),
        }
    }

    fn claim(&self, key: &str, expected: &[u8], new: &[u8]) -> Result<bool> {
        let path = self.path(key);
        // Claimants take turns, so checking the object and replacing it is one step for
        // them. Nobody else changes it meanwhile: other writers only create it where it is
        // missing (it is not) or delete their own (its holder is the one being replaced).
        // (Moving the object aside to check it, as this once did, left a moment without
        // it, in which a third writer could create it while the second put back the
        // first's: two holders.)
        let _turn = ClaimTurn::take(&path)?;
        match self.read(key)? {
            Some(held) if held == expected => {}
            _ => return Ok(false),
        }
        // Renamed over it: a reader finds the old content or the new, never nothing.
        let (tmp, _) = write_temporary(&path, "claim", new, false)
            .map_err(|e| Error::io(&path, "claiming", e))?;
        rename_over(&tmp, &path).map_err(|e| Error::io(&path, "claiming", e))?;
        Ok(true)
    }

    fn replace(&self, key: &str, data: &[u8]) -> Result<()> {
        let path = self.path(key);
        self.ensure_parent(&path)?;
        // Write a temporary file beside the target, make it durable, then rename it over the
        // target: rename is atomic on POSIX file systems.
        let (tmp, _) = write_temporary(&path, "tmp", data, true)
            .map_err(|e| Error::io(&path, "replacing", e))?;
        rename_into_place(&tmp, &path)
    }

    fn stage(&self, key: &str, data: &[u8]) -> Result<Staged> {
        let path = self.path(key);
        self.ensure_parent(&path)?;
        // The temporary file `replace` would write, left for the commit's sync to make
        // durable.
        let (tmp, f) = write_temporary(&path, "tmp", data, false)
            .map_err(|e| Error::io(&path, "replacing", e))?;
        if self.written(&tmp) {
            start_writeback(&f);
        }
        Ok(Staged {
            key: key.to_string(),
            data: Vec::new(),
            file: Some(tmp),
        })
    }

    fn publish(&self, mut staged: Staged) -> Result<()> {
        let path = self.path(&staged.key);
        let Some(tmp) = staged.file.take() else {
            return self.replace(&staged.key, &staged.data);
        };
        rename_into_place(&tmp, &path)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path, "deleting", e)),
        }
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let path = self.path(prefix.trim_end_matches('/'));
        self.made_dirs
            .lock()
            .expect("poisoned")
            .retain(|d| !d.starts_with(&path));
        match fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path, "deleting", e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let path = self.path(prefix.trim_end_matches('/'));
        let entries = match fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(path, "listing", e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&path, "listing", e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync(&self) -> Result<()> {
        let unsynced = self.unsynced.lock().expect("poisoned").replace(Vec::new());
        match unsynced {
            // A few objects: fsync each, and the directories holding them (so their names
            // are durable too).
            Some(paths) => {
                let mut targets: BTreeSet<PathBuf> = paths.iter().cloned().collect();
                targets.extend(
                    paths
                        .iter()
                        .filter_map(|p| p.parent().map(Path::to_path_buf)),
                );
                sync_each(&targets.into_iter().collect::<Vec<_>>())
            }
            // Many: one syncfs() makes every file and directory written so far durable, far
            // cheaper than an fsync per chunk.
            None => {
                let dir =
                    fs::File::open(&self.root).map_err(|e| Error::io(&self.root, "opening", e))?;
                sync_file_system(&dir).map_err(|e| Error::io(&self.root, "syncing", e))
            }
        }
    }
}

/// Up to this many fsync calls run at once. They wait on the disk, not the CPU, and a file
/// system commits concurrent ones together (one journal commit for all of them on ext4 and
/// XFS), so a commit of a few dozen new files and directories waits about as long as for one.
const PARALLEL_SYNCS: usize = 8;

/// Makes each file or directory in `paths` durable (fsync), several at a time.
fn sync_each(paths: &[PathBuf]) -> Result<()> {
    let sync_one = |p: &PathBuf| -> Result<()> {
        let f = fs::File::open(p).map_err(|e| Error::io(p, "opening", e))?;
        f.sync_all().map_err(|e| Error::io(p, "syncing", e))
    };
    let workers = paths.len().min(PARALLEL_SYNCS);
    if workers <= 1 {
        return paths.iter().try_for_each(sync_one);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || -> Result<()> {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match paths.get(i) {
                Some(p) => sync_one(p)?,
                None => return Ok(()),
            }
        }
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
        let mine = work();
        helpers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .fold(mine, Result::and)
    })
}

/// Writes `data` to a new temporary file beside `path` (see [`temporary_beside`]), synced
/// to disk if `durable`; returns its name and the open file. Nothing is left behind if it
/// fails.
fn write_temporary(
    path: &Path,
    suffix: &str,
    data: &[u8],
    durable: bool,
) -> std::io::Result<(PathBuf, fs::File)> {
    let tmp = temporary_beside(path, suffix);
    let written = (|| {
        let mut f = create_file(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        Ok(f)
    })();
    match written {
        Ok(f) => Ok((tmp, f)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Renames a written temporary file over `path` (atomic on POSIX file systems); the
/// temporary file goes if the rename fails.
fn rename_over(tmp: &Path, path: &Path) -> std::io::Result<()> {
    fs::rename(tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(tmp);
    })
}

/// [`rename_over`], then a sync of the directory, without which the rename itself is not
/// durable.
fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    rename_over(tmp, path).map_err(|e| Error::io(path, "replacing", e))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, "syncing", e))?;
    }
    Ok(())
}

/// A turn at claiming an object: an exclusive advisory lock (`flock`) on the directory
/// holding it, held until dropped. The kernel releases it when its holder exits, so a
/// claimant that dies leaves nothing stale behind, and no file is added to the store.
struct ClaimTurn {
    _locked: fs::File,
}

impl ClaimTurn {
    fn take(path: &Path) -> Result<ClaimTurn> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let file = fs::File::open(dir).map_err(|e| Error::io(dir, "opening", e))?;
        lock_exclusive(&file).map_err(|e| Error::io(dir, "locking", e))?;
        Ok(ClaimTurn { _locked: file })
    }
}

#[cfg(unix)]
fn lock_exclusive(f: &fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock only uses the descriptor, which `f` keeps open for the call.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != IoKind::Interrupted {
            return Err(e);
        }
    }
}

/// Without advisory locks, claimants are not serialized.
#[cfg(not(unix))]
fn lock_exclusive(_f: &fs::File) -> std::io::Result<()> {
    Ok(())
}

/// Writes every byte of `slices`, in order, with as few calls as the file takes.
fn write_all_slices(f: &mut fs::File, slices: &[&[u8]]) -> std::io::Result<()> {
    let mut io: Vec<std::io::IoSlice<'_>> = slices
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| std::io::IoSlice::new(s))
        .collect();
    let mut rest = &mut io[..];
    while !rest.is_empty() {
        match f.write_vectored(rest) {
            Ok(0) => return Err(IoKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == IoKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Asks the kernel to start writing a file's data to disk, without waiting for it. Only a
/// head start for a later fsync: a failure here is seen by that fsync.
#[cfg(target_os = "linux")]
fn start_writeback(f: &fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads the descriptor, which `f` keeps open for the call.
    unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &fs::File) {}

/// Appends `len` bytes of the file `src` (at `from`, for messages) at `offset` to `to`.
/// The kernel copies them between files (`copy_file_range`), without bringing them into
/// this process.
fn copy_range(
    src: &fs::File,
    from: &Path,
    offset: u64,
    len: usize,
    to: &mut fs::File,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let done = copy_in_kernel(src, offset, len, to);
    if done < len {
        // Not supported here (or the source ended early): copy the rest through memory.
        let mut rest = vec![0; len - done];
        src.read_exact_at(&mut rest, offset + done as u64)
            .map_err(|e| match e.kind() {
                IoKind::UnexpectedEof => std::io::Error::new(
                    IoKind::UnexpectedEof,
                    format!(
                        "{} ends before the {len} bytes to copy from {offset}",
                        from.display()
                    ),
                ),
                _ => e,
            })?;
        to.write_all(&rest)?;
    }
    Ok(())
}

/// Copies as much as `copy_file_range` will of `len` bytes at `offset` of `src` to the end
/// of `dst`; returns how many bytes it copied.
#[cfg(target_os = "linux")]
fn copy_in_kernel(src: &fs::File, offset: u64, len: usize, dst: &mut fs::File) -> usize {
    use std::os::fd::AsRawFd;
    let mut done = 0usize;
    while done < len {
        let mut off_in = (offset + done as u64) as libc::loff_t;
        // SAFETY: both descriptors stay open for the call; `off_in` is a valid pointer to a
        // local, and a null output offset means "at the file position", which it advances.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                std::ptr::null_mut(),
                len - done,
                0,
            )
        };
        if n <= 0 {
            break; // unsupported, across file systems, or the end of the source
        }
        done += n as usize;
    }
    done
}

#[cfg(not(target_os = "linux"))]
fn copy_in_kernel(_: &fs::File, _: u64, _: usize, _: &mut fs::File) -> usize {
    0
}

#[cfg(target_os = "linux")]
fn sync_file_system(dir: &fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs only reads the descriptor, which `dir` keeps open for the call.
    let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn sync_file_system(_dir: &fs::File) -> std::io::Result<()> {
    // SAFETY: sync() takes no arguments and cannot fail.
    unsafe { libc::sync() };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_written_from_parts_and_ranges_of_others() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        let a: Vec<u8> = (0..100).collect();
        s.write("x/a", &a).unwrap();
        let parts = [
            Part::Bytes(b"<"),
            Part::Copy {
                key: "x/a",
                offset: 10,
                len: 5,
            },
            Part::Copy {
                key: "x/a",
                offset: 50,
                len: 3,
            },
            Part::Bytes(b">"),
        ];
        s.write_parts("y/b", &parts).unwrap();
        let want = [b"<".as_slice(), &a[10..15], &a[50..53], b">"].concat();
        assert_eq!(s.read("y/b").unwrap().unwrap(), want);
        let mut range = Vec::new();
        assert!(s.read_range("y/b", 1, 5, &mut range).unwrap());
        assert_eq!(range, a[10..15]);
        assert!(s.read_range("y/b", 9, 50, &mut range).unwrap());
        assert_eq!(range, b">", "a range stops where the object ends");
        // A range past the end of the object copied from is an error, not a short object.
        let past = [Part::Copy {
            key: "x/a",
            offset: 98,
            len: 5,
        }];
        let e = s.write_parts("y/c", &past).unwrap_err();
        assert!(e.to_string().contains("ends before"), "{e}");
    }

    #[test]
    fn objects_round_trip_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        assert_eq!(s.read("a/b/c").unwrap(), None);
        s.write("a/b/c", b"hello").unwrap();
        assert_eq!(s.read("a/b/c").unwrap().unwrap(), b"hello");
        assert_eq!(s.list("a/b/").unwrap(), vec!["c".to_string()]);
        s.delete_prefix("a/").unwrap();
        assert_eq!(s.read("a/b/c").unwrap(), None);
        s.write("a/b/c", b"again").unwrap();
        assert_eq!(s.read("a/b/c").unwrap().unwrap(), b"again");
        s.sync().unwrap();
    }

    #[test]
    fn create_new_refuses_an_existing_object() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        assert!(s.create_new("lock", b"1").unwrap());
        assert!(!s.create_new("lock", b"2").unwrap());
        assert_eq!(s.read("lock").unwrap().unwrap(), b"1");
    }

    #[test]
    fn a_staged_replace_takes_effect_only_when_published() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        s.replace("m.json", b"1").unwrap();
        let staged = s.stage("m.json", b"2").unwrap();
        assert_eq!(s.read("m.json").unwrap().unwrap(), b"1");
        s.sync().unwrap();
        s.publish(staged).unwrap();
        assert_eq!(s.read("m.json").unwrap().unwrap(), b"2");
        // One dropped unpublished changes nothing and leaves no file behind.
        drop(s.stage("m.json", b"3").unwrap());
        assert_eq!(s.read("m.json").unwrap().unwrap(), b"2");
        assert_eq!(s.list("").unwrap(), vec!["m.json".to_string()]);
    }

    #[test]
    fn replace_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        s.replace("m.json", b"1").unwrap();
        s.replace("m.json", b"2").unwrap();
        assert_eq!(s.read("m.json").unwrap().unwrap(), b"2");
        assert_eq!(s.list("").unwrap(), vec!["m.json".to_string()]);
    }

    // Hostile directories: what is found in a store was not necessarily put there by
    // gridstore.

    /// Runs `f` on another thread and fails (rather than hanging the test run) if it has
    /// not returned after a long while: a read that blocks is what these tests look for.
    fn without_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("the read blocked")
    }

    fn mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that lives for the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_fifo_in_place_of_an_object_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("chunks/1")).unwrap();
        mkfifo(&dir.path().join("chunks/1/x"));
        mkfifo(&dir.path().join("gridstore.json"));
        let root = dir.path().to_path_buf();
        let errors = without_blocking(move || {
            let s = LocalStorage::new(&root);
            let mut buf = Vec::new();
            [
                s.read("gridstore.json").map(|_| ()),
                s.read_at_most("gridstore.json", 1 << 20).map(|_| ()),
                s.read_into("chunks/1/x", 100, &mut buf).map(|_| ()),
                s.read_range("chunks/1/x", 0, 100, &mut buf).map(|_| ()),
                s.write_parts(
                    "chunks/2/y",
                    &[Part::Copy {
                        key: "chunks/1/x",
                        offset: 0,
                        len: 10,
                    }],
                ),
            ]
            .map(|r| r.unwrap_err().to_string())
        });
        for e in errors {
            assert!(e.contains("is a FIFO"), "{e}");
        }
    }

    #[test]
    fn objects_that_are_not_regular_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"not the store's").unwrap();
        let s = LocalStorage::new(dir.path());
        fs::create_dir(dir.path().join("a-directory")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        let e = s.read("a-directory").unwrap_err().to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");
        for key in ["link", "zero"] {
            let e = s.read_at_most(key, 1 << 20).unwrap_err().to_string();
            assert!(e.contains("is a symbolic link"), "{e}");
        }
    }

    #[test]
    fn a_read_never_takes_more_than_the_object_holds_or_may_hold() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        s.write("o", &[7; 100]).unwrap();
        // A range far beyond the object allocates only what it holds.
        let mut buf = Vec::new();
        assert!(s.read_range("o", 40, 1 << 40, &mut buf).unwrap());
        assert_eq!(buf, [7; 60]);
        assert!(buf.capacity() < 1 << 20);
        assert!(s.read_range("o", 1 << 50, 1 << 40, &mut buf).unwrap());
        assert!(buf.is_empty());
        // A bounded read of an object longer than the bound is an error.
        assert_eq!(s.read_at_most("o", 100).unwrap().unwrap().len(), 100);
        let e = s.read_at_most("o", 99).unwrap_err().to_string();
        assert!(e.contains("100 bytes, more than the 99"), "{e}");
        assert!(s.read_into("o", 10, &mut buf).is_err());
        assert_eq!(s.read_at_most("missing", 10).unwrap(), None);
    }

    #[test]
    fn a_new_object_is_never_written_over_anything() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        s.write("chunks/1/a", b"first").unwrap();
        let e = s.write("chunks/1/a", b"second").unwrap_err().to_string();
        assert!(
            e.contains("already exists") && e.contains("gridstore repair"),
            "{e}"
        );
        assert_eq!(s.read("chunks/1/a").unwrap().unwrap(), b"first");
        // Symbolic links planted where the next writes go, to a file outside the store
        // and to a name there that does not exist yet: neither is written through.
        let target = outside.path().join("target");
        fs::write(&target, b"outside").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("chunks/1/b")).unwrap();
        let dangling = outside.path().join("new");
        std::os::unix::fs::symlink(&dangling, dir.path().join("chunks/1/c")).unwrap();
        for key in ["chunks/1/b", "chunks/1/c"] {
            let e = s.write(key, b"redirected").unwrap_err().to_string();
            assert!(e.contains("already exists"), "{e}");
        }
        assert_eq!(fs::read(&target).unwrap(), b"outside");
        assert!(!dangling.exists());
    }

    #[test]
    fn a_symlinked_directory_does_not_redirect_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("chunks")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("chunks/7")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("index")).unwrap();
        let s = LocalStorage::new(dir.path());
        for key in ["chunks/7/0/0/a", "chunks/7/b", "index/7/0"] {
            let e = s.write(key, b"redirected").unwrap_err().to_string();
            assert!(e.contains("a symbolic link stands where"), "{e}");
        }
        let e = s.replace("index/m.json", b"x").unwrap_err().to_string();
        assert!(e.contains("a symbolic link stands where"), "{e}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        // A file in place of a directory is refused too.
        fs::write(dir.path().join("snapshots"), b"").unwrap();
        let e = s.write("snapshots/1.json", b"{}").unwrap_err().to_string();
        assert!(e.contains("a regular file stands where"), "{e}");
        // The store's own directories are fine, and checked once.
        s.write("chunks/8/a", b"1").unwrap();
        s.write("chunks/8/b", b"2").unwrap();
        assert_eq!(s.list("chunks/8/").unwrap(), ["a", "b"]);
    }

    #[test]
    fn replace_puts_a_file_in_place_of_a_symlink_without_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("m.json");
        fs::write(&target, b"outside").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("m.json")).unwrap();
        let s = LocalStorage::new(dir.path());
        s.replace("m.json", b"1").unwrap();
        let staged = s.stage("m.json", b"2").unwrap();
        s.publish(staged).unwrap();
        let m = fs::symlink_metadata(dir.path().join("m.json")).unwrap();
        assert!(m.is_file());
        assert_eq!(s.read("m.json").unwrap().unwrap(), b"2");
        assert_eq!(fs::read(&target).unwrap(), b"outside");
    }

    #[test]
    fn deletes_do_not_follow_symlinks_out_of_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(outside.path().join("sub")).unwrap();
        fs::write(outside.path().join("sub/keep"), b"outside").unwrap();
        fs::write(outside.path().join("keep"), b"outside").unwrap();
        let s = LocalStorage::new(dir.path());
        s.write("chunks/3/a", b"1").unwrap();
        let link = |from: &Path, at: &str| {
            std::os::unix::fs::symlink(from, dir.path().join(at)).unwrap();
        };
        // Inside a tree deleted, as the tree itself, and as one object.
        link(outside.path(), "chunks/3/link");
        link(outside.path(), "chunks/4");
        link(&outside.path().join("keep"), "chunks/3/file-link");
        link(outside.path(), "gone");
        s.delete_prefix("chunks/4/").unwrap();
        assert!(!dir.path().join("chunks/4").exists());
        s.delete("gone").unwrap();
        s.delete_prefix("chunks/").unwrap();
        assert!(!dir.path().join("chunks").exists());
        assert_eq!(
            fs::read(outside.path().join("sub/keep")).unwrap(),
            b"outside"
        );
        assert_eq!(fs::read(outside.path().join("keep")).unwrap(), b"outside");
    }
}
