//! The fuzz targets, by name.

pub mod chunk;
pub mod codec;
pub mod index;
pub mod manifest;

use std::path::Path;

use super::engine::{self, Report, Settings};
use crate::codec::Compression;

/// Every target, in the order runs go through them.
pub const NAMES: [&str; 9] = [
    "manifest",
    "snapshot",
    "lock",
    "index",
    "chunk",
    "codec-zstd",
    "codec-deflate",
    "codec-lz4",
    "codec-none",
];

/// Runs the target called `name`; `None` if there is none.
pub fn run(name: &str, settings: &Settings) -> Option<Report> {
    Some(match name {
        "manifest" => engine::run(&manifest::ManifestTarget, settings),
        "snapshot" => engine::run(&manifest::SnapshotTarget, settings),
        "lock" => engine::run(&manifest::LockTarget, settings),
        "index" => engine::run(&index::IndexTarget, settings),
        "chunk" => engine::run(&chunk::ChunkTarget, settings),
        other => engine::run(&codec::CodecTarget(codec_of(other)?), settings),
    })
}

/// Runs one input through the target called `name`; `None` if there is none.
pub fn replay(name: &str, input: &[u8]) -> Option<String> {
    Some(match name {
        "manifest" => engine::replay(&manifest::ManifestTarget, input),
        "snapshot" => engine::replay(&manifest::SnapshotTarget, input),
        "lock" => engine::replay(&manifest::LockTarget, input),
        "index" => engine::replay(&index::IndexTarget, input),
        "chunk" => engine::replay(&chunk::ChunkTarget, input),
        other => engine::replay(&codec::CodecTarget(codec_of(other)?), input),
    })
}

/// Writes the seeds of every target under `dir` (`fuzz/corpus`); returns how many.
pub fn write_corpus(dir: &Path) -> std::io::Result<usize> {
    let mut n = engine::write_corpus(&manifest::ManifestTarget, dir)?;
    n += engine::write_corpus(&manifest::SnapshotTarget, dir)?;
    n += engine::write_corpus(&manifest::LockTarget, dir)?;
    n += engine::write_corpus(&index::IndexTarget, dir)?;
    n += engine::write_corpus(&chunk::ChunkTarget, dir)?;
    for name in &NAMES[5..] {
        if let Some(c) = codec_of(name) {
            n += engine::write_corpus(&codec::CodecTarget(c), dir)?;
        }
    }
    Ok(n)
}

fn codec_of(name: &str) -> Option<Compression> {
    Some(match name {
        "codec-zstd" => Compression::Zstd,
        "codec-deflate" => Compression::Deflate,
        "codec-lz4" => Compression::Lz4,
        "codec-none" => Compression::None,
        _ => return None,
    })
}
