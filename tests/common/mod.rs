//! Helpers shared by the integration tests: the freshly built plugin, the real GDAL tools
//! and Python readers, sample data, and checksums.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A folder holding only this build's plugin as `gdal_GRIDSTORE.so`, for GDAL_DRIVER_PATH.
/// Each test process makes its own, so a rebuild never changes a plugin GDAL has loaded.
/// The library is the one cargo built next to this test binary (same profile).
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps");
        let lib = profile_dir.join("libgridstore.so");
        assert!(
            lib.exists(),
            "{} is missing: build the plugin first (scripts/test.sh runs `cargo build --release`)",
            lib.display()
        );
        let dir = profile_dir.join(format!("test-gdalplugins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A hard link costs no space (every test process makes one); a copy only where
        // links cannot be made. A folder left by an earlier process of the same id is
        // emptied first: copying onto its link would empty the one plugin all share.
        let plugin = dir.join("gdal_GRIDSTORE.so");
        match std::fs::remove_file(&plugin) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{e}"),
            _ => {}
        }
        if std::fs::hard_link(&lib, &plugin).is_err() {
            std::fs::copy(&lib, &plugin).unwrap();
        }
        dir
    })
}

/// A command with GDAL set up to load this build's plugin and nothing else from plugins.
pub fn cmd(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env("GDAL_DRIVER_PATH", plugin_dir())
        .env_remove("CPL_DEBUG")
        .env("GDAL_PAM_ENABLED", "NO");
    c
}

/// Runs a GDAL tool (or any program) and returns its output, whatever its exit status.
pub fn run(program: &str, args: &[&str]) -> Output {
    cmd(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// What a process printed: its stdout, then its stderr.
pub fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs and insists on success, returning stdout.
pub fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({:?}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a helper script from tests/python with Debian's Python (system GDAL, rasterio).
pub fn python(script: &str, args: &[&str]) -> Output {
    let path = root().join("tests/python").join(script);
    let mut c = cmd("/usr/bin/python3");
    c.arg(path).args(args);
    c.output()
        .expect("/usr/bin/python3 (install python3-gdal python3-rasterio)")
}

pub fn python_ok(script: &str, args: &[&str]) -> String {
    let out = python(script, args);
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The real sample rasters: $GRIDSTORE_SAMPLE_DATA, ../shared/data, or target/sample-data
/// (filled by scripts/sample-data.sh).
pub fn sample(name: &str) -> PathBuf {
    let mut dirs = Vec::new();
    if let Ok(d) = std::env::var("GRIDSTORE_SAMPLE_DATA") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(root().join("../shared/data"));
    dirs.push(root().join("target/sample-data"));
    for d in &dirs {
        let p = d.join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("sample raster {name} not found in {dirs:?}: run scripts/sample-data.sh");
}

/// The arguments of `gdal_translate -q -of GRIDSTORE [-co OPTION]... SRC STORE`.
fn translate_into_args<'a>(src: &'a Path, store: &'a Path, options: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-q", "-of", "GRIDSTORE"];
    for o in options {
        args.extend(["-co", o]);
    }
    args.extend([s(src), s(store)]);
    args
}

/// `gdal_translate` of `src` into (or as) the store, whatever its outcome.
pub fn translate_into(src: &Path, store: &Path, options: &[&str]) -> Output {
    run("gdal_translate", &translate_into_args(src, store, options))
}

/// `translate_into`, insisting on success.
pub fn translate_into_ok(src: &Path, store: &Path, options: &[&str]) -> String {
    ok("gdal_translate", &translate_into_args(src, store, options))
}

/// The checksums `gdalinfo -checksum` prints, in order (bands, then their overviews).
pub fn checksums(dataset: &str) -> Vec<String> {
    checksums_opened_with(dataset, &[])
}

/// `checksums`, with more gdalinfo arguments (open options, for example).
pub fn checksums_opened_with(dataset: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["-checksum"];
    all.extend_from_slice(args);
    all.push(dataset);
    ok("gdalinfo", &all)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("Checksum=")
                .or_else(|| l.strip_prefix("Overviews checksum: "))
                .map(str::to_string)
        })
        .collect()
}

/// Band checksums only.
pub fn band_checksums(dataset: &str) -> Vec<String> {
    ok("gdalinfo", &["-checksum", dataset])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Checksum=").map(str::to_string))
        .collect()
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("gridstore-test")
        .tempdir()
        .unwrap()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `gdal_translate -of GRIDSTORE src dst` with creation options.
pub fn ingest(src: &str, dst: &Path, options: &[&str]) {
    let mut args = vec!["-q", "-of", "GRIDSTORE"];
    for o in options {
        args.push("-co");
        args.push(o);
    }
    args.push(src);
    args.push(s(dst));
    ok("gdal_translate", &args);
}

/// Asserts a process ended by itself (no crash signal) and failed, and returns its stderr.
pub fn failed_cleanly(out: &Output) -> String {
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.signal(), None, "the process crashed: {stderr}");
    assert!(
        !out.status.success(),
        "expected a failure, got success: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "a panic message leaked: {stderr}"
    );
    stderr
}

/// A small valid store (a Landsat scene in 64 x 64 tiles) in `dir`, to damage or to plant
/// things in.
pub fn small_store(dir: &Path) -> PathBuf {
    let store = dir.join("ok.gridstore");
    ingest(s(&sample("L7_ETMs.tif")), &store, &["BLOCKSIZE=64"]);
    store
}

/// Where the chunk of tile `key` of a store's current snapshot lies: its object, and the
/// bytes of that object it takes (all of them, or its part of a pack).
pub fn tile_chunk(
    store: &Path,
    key: gridstore::index::TileKey,
) -> (PathBuf, std::ops::Range<usize>) {
    let snap = gridstore::store::Snapshot::open(store, None).unwrap();
    let e = snap.entry(&key).unwrap().expect("the tile holds data");
    let at = snap.chunk_at(&key, &e);
    let start = at.offset as usize;
    (store.join(at.object), start..start + e.size as usize)
}

/// The first chunk object of a store, in name order (in a store of packs, the first pack
/// holds the first level-0 tiles).
pub fn first_chunk(store: &Path) -> PathBuf {
    let mut dir = store.join("chunks");
    loop {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        let first = entries.into_iter().next().expect("a chunk");
        if first.is_file() {
            return first;
        }
        dir = first;
    }
}

/// gdal_translate of the whole store to a GeoTIFF: reads every chunk.
pub fn read_all(store: &Path) -> Output {
    let out = store.parent().unwrap().join("out.tif");
    run("gdal_translate", &["-q", s(store), s(&out)])
}
/// Copies a directory tree (a store, to damage or change a copy of it).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub mod servers;
