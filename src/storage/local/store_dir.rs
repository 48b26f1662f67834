//! The store directory as a whole, on the local disk: what its root and the entries in it
//! are, making it, emptying it, removing it, and how much it holds. The mechanics only:
//! what the store refuses, and what it says then, is decided by the callers.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;

use super::LocalStorage;
use crate::error::{Error, Result};

/// What an entry of a store directory is, as found in its place: a symbolic link is one,
/// whatever it points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    SymbolicLink,
    /// A FIFO, socket or device.
    Special,
}

impl EntryKind {
    fn of(t: fs::FileType) -> EntryKind {
        if t.is_symlink() {
            EntryKind::SymbolicLink
        } else if t.is_dir() {
            EntryKind::Directory
        } else if t.is_file() {
            EntryKind::File
        } else {
            EntryKind::Special
        }
    }

    /// What it is, for messages ("its writer.lock is a symbolic link").
    pub fn describe(self) -> &'static str {
        match self {
            EntryKind::File => "a file",
            EntryKind::Directory => "a directory",
            EntryKind::SymbolicLink => "a symbolic link",
            EntryKind::Special => "a special file (FIFO, socket or device)",
        }
    }
}

/// The entries directly in a store directory, as it lists them.
pub struct Entries(fs::ReadDir);

impl Iterator for Entries {
    type Item = io::Result<DirEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|e| e.map(DirEntry))
    }
}

/// One entry of a store directory.
pub struct DirEntry(fs::DirEntry);

impl DirEntry {
    pub fn name(&self) -> OsString {
        self.0.file_name()
    }

    /// What the entry is, without following a symbolic link.
    pub fn kind(&self) -> io::Result<EntryKind> {
        self.0.file_type().map(EntryKind::of)
    }
}

impl LocalStorage {
    /// Whether the root is a directory, following a symbolic link there (a store may be
    /// reached through one). An error of kind `NotFound` when nothing is there.
    pub fn root_is_dir(&self) -> io::Result<bool> {
        fs::metadata(&self.root).map(|m| m.is_dir())
    }

    /// Where the root is a symbolic link, what it points to.
    pub fn root_link_target(&self) -> Option<PathBuf> {
        fs::read_link(&self.root).ok()
    }

    /// Makes the root directory (its parent must exist).
    pub fn create_root(&self) -> io::Result<()> {
        fs::create_dir(&self.root)
    }

    /// Removes the root directory and everything in it; symbolic links inside are removed,
    /// never followed.
    pub fn remove_all(&self) -> Result<()> {
        self.forget_dirs();
        fs::remove_dir_all(&self.root).map_err(|e| Error::io(&self.root, "removing", e))
    }

    /// Whether something is at `key`, following a symbolic link there; false when that
    /// cannot be told.
    pub fn exists(&self, key: &str) -> bool {
        self.path(key).exists()
    }

    /// What is at `key`, without following a symbolic link there. An error of kind
    /// `NotFound` when nothing is.
    pub fn entry_kind(&self, key: &str) -> io::Result<EntryKind> {
        fs::symlink_metadata(self.path(key)).map(|m| EntryKind::of(m.file_type()))
    }

    /// Lists the entries directly in the root directory.
    pub fn entries(&self) -> io::Result<Entries> {
        fs::read_dir(&self.root).map(Entries)
    }

    /// Reads at most `len` bytes from the start of the file at `key`. Only for a file just
    /// found to be a regular one ([`entry_kind`](LocalStorage::entry_kind)): the open
    /// follows a symbolic link, and would wait on a FIFO.
    pub fn read_start(&self, key: &str, len: u64) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        fs::File::open(self.path(key))?
            .take(len)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Removes the file at `key`, which must be there: a missing one is an error (unlike
    /// [`delete`](crate::storage::Storage::delete)).
    pub fn remove_file(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        fs::remove_file(&path).map_err(|e| Error::io(&path, "removing", e))
    }

    /// Removes the regular files directly in the root directory whose names `doomed`
    /// accepts; anything else is left.
    pub fn remove_files_where(&self, doomed: impl Fn(&str) -> bool) -> Result<()> {
        let listing = |e| Error::io(&self.root, "listing", e);
        for entry in fs::read_dir(&self.root).map_err(listing)? {
            let entry = entry.map_err(listing)?;
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            let name = entry.file_name();
            if is_file && name.to_str().is_some_and(&doomed) {
                fs::remove_file(entry.path())
                    .map_err(|e| Error::io(entry.path(), "removing", e))?;
            }
        }
        Ok(())
    }

    /// Removes everything in the root directory, leaving it empty; `doing` names the
    /// removal in the error for an entry that cannot be removed.
    pub fn remove_contents(&self, doing: &'static str) -> Result<()> {
        self.forget_dirs();
        let listing = |e| Error::io(&self.root, "listing", e);
        for entry in fs::read_dir(&self.root).map_err(listing)? {
            let p = entry.map_err(listing)?.path();
            let removed = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            removed.map_err(|e| Error::io(&p, doing, e))?;
        }
        Ok(())
    }

    /// Forgets the directories known to be there, before they are removed: a later write
    /// makes them again.
    fn forget_dirs(&self) {
        self.made_dirs.lock().expect("poisoned").clear();
    }

    /// Files under the root, recursively, and their bytes; entries that cannot be read
    /// are skipped. Walks the whole tree: for reports, never on a read or write path.
    pub fn usage(&self) -> (u64, u64) {
        let mut stack = vec![self.root.clone()];
        let (mut files, mut bytes) = (0u64, 0u64);
        while let Some(d) = stack.pop() {
            let Ok(entries) = fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push(entry.path()),
                    Ok(_) => {
                        files += 1;
                        bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    }
                    Err(_) => {}
                }
            }
        }
        (files, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;
    use std::os::unix::fs::symlink;

    #[test]
    fn entries_are_told_apart_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        fs::write(dir.path().join("f"), b"x").unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        symlink(outside.path(), dir.path().join("to-dir")).unwrap();
        assert_eq!(s.entry_kind("f").unwrap(), EntryKind::File);
        assert_eq!(s.entry_kind("d").unwrap(), EntryKind::Directory);
        assert_eq!(s.entry_kind("to-dir").unwrap(), EntryKind::SymbolicLink);
        let missing = s.entry_kind("none").unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let mut listed: Vec<(String, EntryKind)> = s
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.name().into_string().unwrap(), e.kind().unwrap())
            })
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            listed,
            [
                ("d".into(), EntryKind::Directory),
                ("f".into(), EntryKind::File),
                ("to-dir".into(), EntryKind::SymbolicLink)
            ]
        );
        // The root itself is followed: a store may be reached through a link.
        let linked = dir.path().join("to-dir");
        assert!(LocalStorage::new(&linked).root_is_dir().unwrap());
        assert_eq!(
            LocalStorage::new(&linked).root_link_target().unwrap(),
            outside.path()
        );
        assert!(!LocalStorage::new(dir.path().join("f"))
            .root_is_dir()
            .unwrap());
    }

    #[test]
    fn only_accepted_regular_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        for name in ["doomed", "kept"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        fs::create_dir(dir.path().join("doomed-dir")).unwrap();
        symlink(dir.path().join("kept"), dir.path().join("doomed-link")).unwrap();
        s.remove_files_where(|n| n.starts_with("doomed")).unwrap();
        let mut left: Vec<String> = s.list("").unwrap();
        left.sort();
        assert_eq!(left, ["doomed-dir", "doomed-link", "kept"]);
    }

    #[test]
    fn emptying_and_removing_never_reach_outside_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), b"outside").unwrap();
        let root = dir.path().join("s");
        let s = LocalStorage::new(&root);
        s.create_root().unwrap();
        s.write("chunks/1/a", b"1234").unwrap();
        s.write("lock", b"12").unwrap();
        assert_eq!(s.usage(), (2, 6));
        symlink(outside.path(), root.join("link")).unwrap();
        s.remove_contents("emptying").unwrap();
        assert_eq!(s.entries().unwrap().count(), 0);
        s.write("chunks/1/a", b"1").unwrap();
        symlink(outside.path(), root.join("chunks/link")).unwrap();
        s.remove_all().unwrap();
        assert!(!root.exists());
        assert_eq!(fs::read(outside.path().join("keep")).unwrap(), b"outside");
        let e = s.remove_file("gone").unwrap_err().to_string();
        assert!(e.contains("removing"), "{e}");
    }

    #[test]
    fn the_start_of_a_file_is_read_no_further() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        fs::write(dir.path().join("f"), b"0123456789").unwrap();
        assert_eq!(s.read_start("f", 4).unwrap(), b"0123");
        assert_eq!(s.read_start("f", 40).unwrap(), b"0123456789");
        assert!(s.exists("f") && !s.exists("g"));
    }
}
