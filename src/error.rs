//! Error type shared by the whole library.
//!
//! Every variant renders as a sentence that says what went wrong and, where the user can do
//! something about it, what to do. The GDAL boundary maps [`Error::kind`] onto a
//! `CPLErrorNum`, and the CLI prints the message as is.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Broad classes of failure; the C boundary turns each into a GDAL error number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Something that should exist does not (store, manifest, snapshot).
    NotFound,
    /// An operating-system level read or write failed.
    Io,
    /// Stored bytes do not match what the format says they must be.
    Corrupt,
    /// The store, option or input uses something this build does not support.
    NotSupported,
    /// A value given by the user is not acceptable.
    IllegalArgument,
    /// The user interrupted the operation (GDAL progress callback returned FALSE).
    Interrupted,
    /// Another writer holds the store.
    Locked,
    /// GDAL itself reported a failure.
    Gdal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: no gridstore here ({detail}). Check the path; a store is a directory named *.gridstore with a gridstore.json inside")]
    StoreNotFound { path: PathBuf, detail: String },

    // The I/O error is part of the message, not a separate cause, so that tools printing
    // an error with its causes do not repeat it.
    #[error("{path}: {action} failed: {cause}{}", io_hint(cause))]
    Io {
        path: PathBuf,
        action: &'static str,
        cause: std::io::Error,
    },

    #[error(
        "{path}: {detail}. The store is damaged; `gridstore verify` lists every damaged object"
    )]
    Corrupt { path: PathBuf, detail: String },

    #[error("{path}: the manifest is damaged ({detail}). Every committed state is kept in the store's snapshots/ folder: copy the newest snapshots/<id>.json over gridstore.json to restore the last one")]
    BadManifest { path: PathBuf, detail: String },

    #[error("{path}: written by a newer gridstore (format version {found}); this build reads versions up to {supported}. Upgrade gridstore to open it")]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error("{0}")]
    NotSupported(String),

    #[error("invalid value {value:?} for {name}: {expected}")]
    InvalidOption {
        name: String,
        value: String,
        expected: String,
    },

    #[error("{0}")]
    InvalidInput(String),

    #[error("{path} already exists. {hint}")]
    AlreadyExists { path: PathBuf, hint: String },

    #[error("interrupted by the user; nothing was committed")]
    Interrupted,

    #[error("{0}")]
    Locked(String),

    /// Another writer committed first, and this write could not go on top of it.
    #[error("{0}")]
    Conflict(String),

    #[error("GDAL: {0}")]
    Gdal(String),

    /// A catalog database failed or holds what it should not.
    #[error("{location}: {detail}")]
    Catalog { location: String, detail: String },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::StoreNotFound { .. } => ErrorKind::NotFound,
            Error::Io { .. } => ErrorKind::Io,
            Error::Corrupt { .. } | Error::BadManifest { .. } => ErrorKind::Corrupt,
            Error::NewerFormat { .. } | Error::NotSupported(_) => ErrorKind::NotSupported,
            Error::InvalidOption { .. } | Error::InvalidInput(_) | Error::AlreadyExists { .. } => {
                ErrorKind::IllegalArgument
            }
            Error::Interrupted => ErrorKind::Interrupted,
            Error::Locked(_) | Error::Conflict(_) => ErrorKind::Locked,
            Error::Gdal(_) => ErrorKind::Gdal,
            Error::Catalog { .. } => ErrorKind::Io,
        }
    }

    pub fn io(path: impl AsRef<Path>, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            action,
            cause: source,
        }
    }

    pub fn corrupt(path: impl AsRef<Path>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.as_ref().to_path_buf(),
            detail: detail.into(),
        }
    }

    pub fn option(
        name: impl Into<String>,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Error::InvalidOption {
            name: name.into(),
            value: value.into(),
            expected: expected.into(),
        }
    }
}

/// What to do about I/O failures whose fix is plain.
fn io_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            ". The disk is full: nothing of this write was committed and the store is as it \
             was; free some space and run the write again"
        }
        Some(libc::EROFS) => ". The file system is read-only",
        Some(libc::EACCES) | Some(libc::EPERM) => {
            ". Permission denied: check who owns the store and its folders"
        }
        _ => "",
    }
}
