//! Crafted stores: objects whose checksums are valid but whose contents lie, and store
//! directories holding what no writer put there (issue 16, "hostile input").
//!
//! Each test builds a real store, copies it once per command it runs, crafts the hostile
//! object in the copy, and runs the command under bounds: `gdalinfo -checksum`, the GDAL
//! Python bindings (tests/python/hostile.py) and the `gridstore` commands. Every command
//! must end by itself within [`TIME_LIMIT`] (it is killed after that), with no signal,
//! within [`MEMORY_LIMIT`] of address space, without a panic, and without deleting or
//! changing anything it had no business touching: the store's files, and a directory beside
//! the store that symlinks point into, are compared before and after.
//!
//! Objects are crafted from docs/FORMAT.md with this file's own small encoders (index nodes
//! §4, chunk heads §5, manifests §3), and every checksum is recomputed, so that what is
//! tested is the decoders' own checks, not the CRCs. Where a command must fail (a non-zero
//! exit; `gdalinfo -checksum` exits 0 after a band failed to read, so there its `ERROR`
//! lines count), its message must name the damaged object (its key, such as `index/2/0`,
//! `chunks/2/...` or `gridstore.json`) or say what is wrong in a few words; the wording is
//! matched loosely and case-insensitively (see [`Case`]).
//!
//! Set HOSTILE_VERBOSE=1 (with `-- --nocapture`) to see how every command ended.
//!
//! All failures of a test are gathered and reported together, one line per command, so a
//! run shows everything that misbehaves rather than the first thing.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::{Read, Seek};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A command still running after this long is taken as hung and killed. A healthy run of
/// any command here takes well under a second on these small stores.
const TIME_LIMIT: Duration = Duration::from_secs(20);

/// The address space each command may use (`RLIMIT_AS`). Healthy runs of every command on
/// these stores fit in 200 MiB (measured with `prlimit --as`; mostly shared libraries and
/// thread stacks), so this leaves room for machines with many more cores; an allocation of
/// gigabytes from a number read in a file fails under it instead of being made. glibc's
/// per-thread malloc arenas (64 MiB of address space each) are capped through
/// `MALLOC_ARENA_MAX`, so the bound does not depend on the number of cores.
const MEMORY_LIMIT: u64 = 1536 << 20;

fn gridstore() -> &'static str {
    env!("CARGO_BIN_EXE_gridstore")
}

// ---------------------------------------------------------------------------------------
// Running a command under bounds.

/// How a command ended.
struct Ran {
    label: String,
    /// `None` when it was killed for running past [`TIME_LIMIT`].
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The last lines of its output, for a report.
    fn tail(&self) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let start = lines.len().saturating_sub(3);
        let mut tail = lines[start..].join(" | ");
        if tail.len() > 400 {
            let mut cut = 400;
            while !tail.is_char_boundary(cut) {
                cut -= 1;
            }
            tail.truncate(cut);
            tail.push_str("...");
        }
        tail
    }
}

/// Runs `c` with its address space limited to [`MEMORY_LIMIT`], killing it after
/// [`TIME_LIMIT`]; its output goes to files, so a full pipe never stalls it.
fn bounded(mut c: Command, label: String) -> Ran {
    let mut out = tempfile::tempfile().expect("a temporary file");
    let mut err = tempfile::tempfile().expect("a temporary file");
    // Backtraces would bury a panic's message; the message is what the report shows.
    c.env("MALLOC_ARENA_MAX", "2")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"));
    // SAFETY: the closure runs in the forked child before exec; it only calls setrlimit,
    // which is async-signal-safe, on a value on its own stack, and allocates nothing.
    unsafe {
        c.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            break Some(status);
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |f: &mut std::fs::File| {
        let mut bytes = Vec::new();
        f.rewind().expect("rewind");
        f.read_to_end(&mut bytes).expect("read output");
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let ran = Ran {
        label,
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    };
    show(&ran);
    ran
}

/// With HOSTILE_VERBOSE set, prints how every command ended, to check that passing cases
/// pass for the right reason (`cargo test --test hostile -- --nocapture`).
fn show(ran: &Ran) {
    if std::env::var_os("HOSTILE_VERBOSE").is_some() {
        let how = match ran.status {
            None => "killed after the time limit".to_string(),
            Some(s) => match s.signal() {
                Some(sig) => signal_name(sig),
                None => format!("exit {}", s.code().unwrap_or(-1)),
            },
        };
        println!("{}: {how}: {}", ran.label, ran.tail());
    }
}

/// A GDAL tool, Python, or the CLI, set up as common::cmd does (this build's plugin).
fn program(program: &str, args: &[String]) -> Command {
    let mut c = cmd(program);
    c.args(args);
    c
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// What a command must do with a crafted store.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Fail with a clear error: a non-zero exit and a message naming the damage.
    Fails,
    /// Succeed (a stale lock taken over, text printed escaped).
    Succeeds,
    /// Either, as long as it ends by itself within the bounds; a failure must still be a
    /// clear one. For commands that need not read the damaged object (`info` reads only the
    /// manifest, `rollback --to 1` may restore an intact snapshot), or that may skip what
    /// lies beyond what the index records.
    Either,
}

/// Signal names for the report.
fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        _ => "",
    };
    format!("signal {sig} {name}")
}

/// True when `text` contains any of `needles`, ignoring case.
fn mentions(text: &str, needles: &[&str]) -> bool {
    let text = text.to_lowercase();
    needles.iter().any(|n| text.contains(&n.to_lowercase()))
}

/// What a program says when it ran out of address space or threads: it tried to use more
/// than [`MEMORY_LIMIT`] (a number read from a file, or a file read to its end that has
/// none), so a clean-looking error that says this is no pass.
const EXHAUSTED: &[&str] = &[
    "out of memory",
    "memory allocation of",
    "Cannot allocate memory",
    "os error 12",
    "Resource temporarily unavailable",
    "os error 11",
];

/// What is wrong with how a command ended, if anything. `names` are what a clear error
/// message mentions (any one of them).
fn judge(ran: &Ran, expect: Expect, names: &[&str]) -> Option<String> {
    let Some(status) = ran.status else {
        return Some(format!(
            "did not finish within {} s (killed); output: {}",
            TIME_LIMIT.as_secs(),
            ran.tail()
        ));
    };
    if let Some(sig) = status.signal() {
        return Some(format!("{}; output: {}", signal_name(sig), ran.tail()));
    }
    let text = ran.text();
    if text.contains("panicked") {
        return Some(format!(
            "exit {:?} after a panic: {}",
            status.code(),
            ran.tail()
        ));
    }
    if EXHAUSTED.iter().any(|m| text.contains(m)) {
        return Some(format!(
            "exit {:?} after running into the memory bound (without it, it would have taken \
             the machine's memory or threads): {}",
            status.code(),
            ran.tail()
        ));
    }
    let failed = !status.success() || gdal_reported_error(ran);
    let code = status.code();
    match expect {
        Expect::Succeeds if failed => Some(format!(
            "failed (exit {code:?}), expected success: {}",
            ran.tail()
        )),
        Expect::Fails if !failed => Some(format!(
            "succeeded (exit 0), expected a clear error: {}",
            ran.tail()
        )),
        _ if !failed || expect == Expect::Succeeds => None,
        _ if !mentions(&text, names) => Some(format!(
            "exit {code:?}, but the message names none of {names:?}: {}",
            ran.tail()
        )),
        _ => None,
    }
}

/// `gdalinfo -checksum` exits 0 even when reading a band failed: it prints the error and
/// a checksum of -1. Such a run counts as failed.
fn gdal_reported_error(ran: &Ran) -> bool {
    ran.label.starts_with("gdalinfo")
        && (ran.stderr.contains("ERROR") || ran.stdout.contains("Checksum=-1"))
}

// ---------------------------------------------------------------------------------------
// What is in a directory, to tell what a command deleted or changed.

/// One entry of a directory tree, as seen without following symlinks.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Dir,
    /// A regular file: its length and a hash of its first MiB (enough to see a rewrite;
    /// some crafted chunks are sparse files of gigabytes).
    File(u64, u64),
    Link(PathBuf),
    /// A FIFO, socket or device: never opened here.
    Special,
}

fn item(path: &Path) -> Option<Item> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let kind = meta.file_type();
    Some(if kind.is_symlink() {
        Item::Link(std::fs::read_link(path).unwrap_or_default())
    } else if kind.is_dir() {
        Item::Dir
    } else if kind.is_file() {
        let mut head = Vec::new();
        if let Ok(f) = std::fs::File::open(path) {
            let _ = f.take(1 << 20).read_to_end(&mut head);
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        head.hash(&mut h);
        Item::File(meta.len(), h.finish())
    } else {
        Item::Special
    })
}

/// Every entry under `root` (relative paths), `root` itself as "", without following
/// symlinks; empty when `root` does not exist.
fn listing(root: &Path) -> BTreeMap<String, Item> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Item>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if let Some(it) = item(&path) {
                let is_dir = it == Item::Dir;
                out.insert(rel, it);
                if is_dir {
                    walk(root, &path, out);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Some(it) = item(root) {
        let is_dir = it == Item::Dir;
        out.insert(String::new(), it);
        if is_dir {
            walk(root, root, &mut out);
        }
    }
    out
}

/// What went missing or changed between two listings, leaving alone the paths in
/// `may_change` (and everything below them).
fn losses(
    before: &BTreeMap<String, Item>,
    after: &BTreeMap<String, Item>,
    may_change: &[String],
) -> Vec<String> {
    let free = |p: &str| {
        may_change
            .iter()
            .any(|m| p == m || p.starts_with(&format!("{m}/")))
    };
    before
        .iter()
        .filter(|(p, _)| !free(p))
        .filter_map(|(p, was)| match after.get(p) {
            None => Some(format!("deleted {p:?}")),
            Some(now) if now != was => Some(format!("changed {p:?} ({was:?} -> {now:?})")),
            Some(_) => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The store every test crafts from.

/// A real store of two snapshots, and rasters to write into it.
///
/// Snapshot 1: a 600 x 500 Float32 raster (nodata -9999) in 256-pixel tiles, so 3 x 2
/// tiles at level 0, 2 at level 1 and one at level 2 (the top), each band cut in four
/// 128 x 128 blocks (frames). Snapshot 2: a 50 x 50 patch written with `gridstore ingest`,
/// which rewrites one level-0 tile and updates its ancestors, the top tile among them, so
/// that the current snapshot has index nodes and chunks of its own under `index/2/` and
/// `chunks/2/`. `patch2` is a second patch for writes into a crafted store: it lands in
/// the same tiles.
struct Base {
    _dir: tempfile::TempDir,
    store: PathBuf,
    patch2: PathBuf,
}

fn make_raster(path: &Path, x: usize, y: usize, w: usize, h: usize, value: f64) {
    let (x0, y0) = (500000.0 + 10.0 * x as f64, 5000000.0 - 10.0 * y as f64);
    let args = [x0, y0, w as f64, h as f64, value].map(|v| v.to_string());
    let mut all = vec!["make", s(path)];
    all.extend(args.iter().map(String::as_str));
    all.extend(["--nodata", "-9999"]);
    python_ok("update_cases.py", &all);
}

fn base() -> Base {
    let dir = tmp();
    let a = dir.path().join("a.tif");
    make_raster(&a, 0, 0, 600, 500, 100.0);
    let store = dir.path().join("base.gridstore");
    ingest(s(&a), &store, &["BLOCKSIZE=256"]);
    let patch = dir.path().join("patch.tif");
    make_raster(&patch, 20, 20, 50, 50, 7.0);
    ok(gridstore(), &["ingest", "-q", s(&store), s(&patch)]);
    let patch2 = dir.path().join("patch2.tif");
    make_raster(&patch2, 40, 40, 50, 50, 3.0);
    Base {
        _dir: dir,
        store,
        patch2,
    }
}

/// A fresh copy of the base store to craft in, beside a directory `outside` (holding a
/// canary file) that crafted symlinks may point into.
struct Site {
    _dir: tempfile::TempDir,
    store: PathBuf,
    outside: PathBuf,
}

impl Base {
    fn copy(&self) -> Site {
        let dir = tmp();
        let store = dir.path().join("s.gridstore");
        let out = Command::new("cp")
            .args(["-a", s(&self.store), s(&store)])
            .output()
            .expect("cp");
        assert!(out.status.success(), "cp -a failed: {out:?}");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(
            outside.join("canary.txt"),
            "precious, not part of any store\n",
        )
        .unwrap();
        Site {
            _dir: dir,
            store,
            outside,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The commands run against a crafted store.

#[derive(Clone, Copy, Debug)]
enum Cmd {
    /// `gdalinfo -checksum STORE`: every band and overview read through the driver.
    GdalChecksum,
    /// tests/python/hostile.py: the same through the GDAL Python bindings.
    Python,
    Info,
    Verify,
    Log,
    Gc(usize),
    Repair,
    Rollback(u64),
    /// `gridstore ingest` of [`Base::patch2`] into the store.
    Ingest,
    Rm,
}

impl Cmd {
    fn command(self, store: &Path, patch: &Path) -> (String, Command) {
        let st = s(store).to_string();
        let cli = |args: Vec<String>| {
            let label = format!("gridstore {}", args[0]);
            (label, program(gridstore(), &args))
        };
        match self {
            Cmd::GdalChecksum => (
                "gdalinfo -checksum".into(),
                program("gdalinfo", &strings(&["-checksum", &st])),
            ),
            Cmd::Python => {
                let script = root().join("tests/python/hostile.py");
                (
                    "GDAL Python".into(),
                    program("/usr/bin/python3", &strings(&[s(&script), &st])),
                )
            }
            Cmd::Info => cli(strings(&["info", &st])),
            Cmd::Verify => cli(strings(&["verify", &st])),
            Cmd::Log => cli(strings(&["log", &st])),
            Cmd::Gc(keep) => {
                let (label, c) = cli(strings(&["gc", "--keep", &keep.to_string(), &st]));
                (format!("{label} --keep {keep}"), c)
            }
            Cmd::Repair => cli(strings(&["repair", &st])),
            Cmd::Rollback(to) => {
                let (label, c) = cli(strings(&["rollback", "--to", &to.to_string(), &st]));
                (format!("{label} --to {to}"), c)
            }
            Cmd::Ingest => cli(strings(&["ingest", "-q", &st, s(patch)])),
            Cmd::Rm => cli(strings(&["rm", &st])),
        }
    }
}

/// A crafted case: how to damage a copy of the base store, what a clear message about it
/// mentions, and what each command must do.
struct Case<'a> {
    /// Damages the store of a fresh copy; returns the store-relative paths it planted,
    /// which a command that may write is allowed to remove (a planted symlink, for
    /// example).
    craft: &'a dyn Fn(&Site) -> Vec<String>,
    /// What a clear error about this damage mentions, any one of them, case-insensitive:
    /// the damaged object's key, or a few words saying what is wrong.
    names: &'a [&'a str],
    plan: &'a [(Cmd, Expect)],
}

/// Runs every command of the case, each on its own freshly crafted copy, and returns one
/// line per problem.
fn run_case(base: &Base, case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    for &(cmd, expect) in case.plan {
        let site = base.copy();
        let planted = (case.craft)(&site);
        let (store_before, outside_before) = (listing(&site.store), listing(&site.outside));
        let (label, c) = cmd.command(&site.store, &base.patch2);
        let ran = bounded(c, label.clone());
        if let Some(p) = judge(&ran, expect, case.names) {
            problems.push(format!("{label}: {p}"));
        }
        // A command that must fail changes nothing; one that may succeed may replace the
        // manifest and take or drop the lock, and remove what was planted.
        let mut may_change: Vec<String> = Vec::new();
        if expect != Expect::Fails {
            may_change.extend(["gridstore.json".into(), "writer.lock".into()]);
            may_change.extend(planted);
        }
        for loss in losses(&store_before, &listing(&site.store), &may_change) {
            problems.push(format!("{label}: in the store: {loss}"));
        }
        for loss in losses(&outside_before, &listing(&site.outside), &[]) {
            problems.push(format!("{label}: OUTSIDE the store: {loss}"));
        }
        for new in listing(&site.outside).keys() {
            if !outside_before.contains_key(new) {
                problems.push(format!("{label}: wrote OUTSIDE the store: {new:?}"));
            }
        }
    }
    problems
}

fn assert_no_problems(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------
// Crafting index nodes (docs/FORMAT.md §4: version 4 nodes).

const NODE_HEADER: usize = 16;
const KEY_LEN: usize = 14;
const LEAF: u8 = 0;
const INTERNAL: u8 = 1;

/// A node record: the 14-byte key as stored, and the value bytes (a leaf's 24-byte entry,
/// or 36 bytes with a pack; an internal node's 12-byte child reference).
#[derive(Clone, Debug)]
struct Record {
    key: [u8; KEY_LEN],
    value: Vec<u8>,
}

impl Record {
    fn level(&self) -> u8 {
        self.key[5]
    }
    fn col(&self) -> i32 {
        i32::from_le_bytes(self.key[6..10].try_into().unwrap())
    }
    fn row(&self) -> i32 {
        i32::from_le_bytes(self.key[10..14].try_into().unwrap())
    }
    fn seq(&self) -> u64 {
        u64::from_le_bytes(self.value[0..8].try_into().unwrap())
    }
    fn set_u32(&mut self, at: usize, v: u32) {
        self.value[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn set_u64(&mut self, at: usize, v: u64) {
        self.value[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    /// A child reference to node `index/<seq>/<id>` under this key.
    fn child(key: [u8; KEY_LEN], seq: u64, id: u32) -> Record {
        let mut value = seq.to_le_bytes().to_vec();
        value.extend_from_slice(&id.to_le_bytes());
        Record { key, value }
    }
}

/// Reads a version 4 or 5 node: its kind and records.
fn read_node(path: &Path) -> (u8, Vec<Record>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[0..4], b"GSIX", "{}", path.display());
    assert!([4, 5].contains(&b[4]), "{}: node version", path.display());
    let kind = b[5];
    let count = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
    let body = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
    let rec = body / count.max(1);
    let records = (0..count)
        .map(|i| {
            let r = &b[NODE_HEADER + i * rec..NODE_HEADER + (i + 1) * rec];
            Record {
                key: r[..KEY_LEN].try_into().unwrap(),
                value: r[KEY_LEN..].to_vec(),
            }
        })
        .collect();
    (kind, records)
}

/// Writes a node of `kind` holding `records` as given (in whatever order), with a valid
/// CRC: version 5 for leaf records with packs, else version 4.
fn write_node(path: &Path, kind: u8, records: &[Record]) {
    let body: Vec<u8> = records
        .iter()
        .flat_map(|r| r.key.iter().chain(&r.value).copied())
        .collect();
    let version = match records.first() {
        Some(r) if r.value.len() == 36 => 5,
        _ => 4,
    };
    let mut b = b"GSIX".to_vec();
    b.extend_from_slice(&[version, kind, 0, 0]);
    b.extend_from_slice(&(records.len() as u32).to_le_bytes());
    b.extend_from_slice(&(body.len() as u32).to_le_bytes());
    b.extend_from_slice(&body);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b).unwrap();
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// The current snapshot's index root `(seq, id)`.
fn root_node(store: &Path) -> (u64, u32) {
    let m = read_json(&store.join("gridstore.json"));
    let r = &m["index"]["root"];
    (r["seq"].as_u64().unwrap(), r["id"].as_u64().unwrap() as u32)
}

fn node_path(store: &Path, seq: u64, id: u32) -> PathBuf {
    store.join(format!("index/{seq}/{id}"))
}

/// The current snapshot's leaf records (walking down from the root), and the leaf node
/// that holds the top tile's entry.
fn current_leaves(store: &Path) -> Vec<((u64, u32), Vec<Record>)> {
    fn walk(store: &Path, at: (u64, u32), out: &mut Vec<((u64, u32), Vec<Record>)>) {
        let (kind, records) = read_node(&node_path(store, at.0, at.1));
        if kind == LEAF {
            out.push((at, records));
            return;
        }
        for r in records {
            let id = u32::from_le_bytes(r.value[8..12].try_into().unwrap());
            walk(store, (r.seq(), id), out);
        }
    }
    let mut out = Vec::new();
    walk(store, root_node(store), &mut out);
    out
}

/// Writes crafted nodes `(id, kind, records)` of the current snapshot (2), each with a
/// valid CRC; one of them may replace the root node, which keeps its key, so that the
/// store holds no orphan node a gc could rightly delete.
fn write_nodes(store: &Path, nodes: &[(u32, u8, Vec<Record>)]) -> Vec<String> {
    let (seq, _) = root_node(store);
    for (id, kind, records) in nodes {
        write_node(&node_path(store, seq, *id), *kind, records);
    }
    Vec::new()
}

/// All of the current snapshot's leaf records, in key order.
fn all_entries(store: &Path) -> Vec<Record> {
    current_leaves(store)
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect()
}

/// Ids for crafted nodes: above any a writer of these small stores uses.
const CRAFTED_ID: u32 = 900;

/// What a clear error about a damaged index of snapshot 2 mentions.
const INDEX_NAMES: &[&str] = &["index/2/", "damaged index", "index is damaged"];

/// What every command must do with a damaged index in the current snapshot (2), whose
/// parent (1) is intact.
const INDEX_PLAN: &[(Cmd, Expect)] = &[
    (Cmd::GdalChecksum, Expect::Fails),
    (Cmd::Python, Expect::Fails),
    (Cmd::Info, Expect::Either),
    (Cmd::Verify, Expect::Fails),
    (Cmd::Log, Expect::Either),
    (Cmd::Gc(1), Expect::Fails),
    (Cmd::Repair, Expect::Either),
    (Cmd::Rollback(1), Expect::Either),
    (Cmd::Ingest, Expect::Fails),
];

fn index_case(craft: &dyn Fn(&Site) -> Vec<String>) {
    let base = base();
    assert_no_problems(run_case(
        &base,
        &Case {
            craft,
            names: INDEX_NAMES,
            plan: INDEX_PLAN,
        },
    ));
}

#[test]
fn index_node_pointing_at_itself() {
    // The root, internal, with one child: itself.
    index_case(&|site| {
        let (seq, root) = root_node(&site.store);
        let first = all_entries(&site.store)[0].key;
        write_nodes(
            &site.store,
            &[(root, INTERNAL, vec![Record::child(first, seq, root)])],
        )
    });
}

#[test]
fn index_node_pointing_at_an_ancestor() {
    // root -> [leaf with the first half, node B]; B -> [leaf with the second half, root]:
    // a lookup of a key in the second half goes round root, B, root, ...
    index_case(&|site| {
        let (seq, root) = root_node(&site.store);
        let entries = all_entries(&site.store);
        let mid = entries.len() / 2;
        let (b, low, high) = (CRAFTED_ID, CRAFTED_ID + 1, CRAFTED_ID + 2);
        let last = entries[entries.len() - 1].key;
        write_nodes(
            &site.store,
            &[
                (low, LEAF, entries[..mid].to_vec()),
                (high, LEAF, entries[mid..].to_vec()),
                (
                    b,
                    INTERNAL,
                    vec![
                        Record::child(entries[mid].key, seq, high),
                        Record::child(last, seq, root),
                    ],
                ),
                (
                    root,
                    INTERNAL,
                    vec![
                        Record::child(entries[0].key, seq, low),
                        Record::child(entries[mid].key, seq, b),
                    ],
                ),
            ],
        )
    });
}

#[test]
fn internal_index_node_with_no_entries() {
    index_case(&|site| {
        let (_, root) = root_node(&site.store);
        write_nodes(&site.store, &[(root, INTERNAL, vec![])])
    });
}

#[test]
fn internal_index_node_with_children_out_of_order() {
    // The two halves' leaves listed high first: a binary search would miss tiles silently.
    index_case(&|site| {
        let (seq, root) = root_node(&site.store);
        let entries = all_entries(&site.store);
        let mid = entries.len() / 2;
        let (low, high) = (CRAFTED_ID, CRAFTED_ID + 1);
        write_nodes(
            &site.store,
            &[
                (low, LEAF, entries[..mid].to_vec()),
                (high, LEAF, entries[mid..].to_vec()),
                (
                    root,
                    INTERNAL,
                    vec![
                        Record::child(entries[mid].key, seq, high),
                        Record::child(entries[0].key, seq, low),
                    ],
                ),
            ],
        )
    });
}

#[test]
fn index_leaf_with_keys_out_of_order() {
    // The root leaf's entries in reverse order: lookups would miss tiles silently.
    index_case(&|site| {
        let (_, root) = root_node(&site.store);
        let mut entries = all_entries(&site.store);
        entries.reverse();
        write_nodes(&site.store, &[(root, LEAF, entries)])
    });
}

/// Internal nodes of one child each above the leaf: far deeper than these nine tiles need
/// (one leaf), and deeper than any store can need (64 levels, docs/FORMAT.md §4).
const CHAIN_DEPTH: u32 = 200;

/// Sets the copy of the root node that the current manifest (and its snapshot's own copy)
/// carries: what a write on object storage puts there, crafted here on disk.
fn set_root_copy(store: &Path, copy: &str) {
    let (seq, _) = root_node(store);
    for key in [
        "gridstore.json".to_string(),
        format!("snapshots/{seq}.json"),
    ] {
        let path = store.join(key);
        let mut m = read_json(&path);
        m["index"]["root_copy"] = Value::String(copy.to_string());
        write_json(&path, &m);
    }
}

#[test]
fn root_copy_in_the_manifest_that_differs_from_the_root_node() {
    // A valid node of snapshot 2, the root's entries with another checksum for the last
    // chunk: readers take it, so gc must not mark from the object what they do not see
    // (nor the other way round), and verify reports it.
    let base = base();
    assert_no_problems(run_case(
        &base,
        &Case {
            craft: &|site| {
                let (seq, id) = root_node(&site.store);
                let (kind, records) = read_node(&node_path(&site.store, seq, id));
                assert_eq!(kind, LEAF, "the base store's root is a leaf");
                let mut records = records;
                let last = records.last_mut().unwrap();
                let crc = u32::from_le_bytes(last.value[12..16].try_into().unwrap());
                last.set_u32(12, crc ^ 1);
                let crafted = site.store.join("crafted-node");
                write_node(&crafted, LEAF, &records);
                let bytes = std::fs::read(&crafted).unwrap();
                std::fs::remove_file(&crafted).unwrap();
                set_root_copy(&site.store, &gridstore::index::encode_root_copy(&bytes));
                Vec::new()
            },
            names: &["copy of the index root", "checksum"],
            plan: &[
                (Cmd::GdalChecksum, Expect::Either),
                (Cmd::Verify, Expect::Fails),
                (Cmd::Gc(1), Expect::Fails),
                (Cmd::Rollback(1), Expect::Either),
                (Cmd::Ingest, Expect::Either),
            ],
        },
    ));
}

#[test]
fn root_copy_in_the_manifest_that_is_no_node() {
    let base = base();
    for copy in ["not base64 at all!", "R1NJWA=="] {
        assert_no_problems(run_case(
            &base,
            &Case {
                craft: &|site| {
                    set_root_copy(&site.store, copy);
                    Vec::new()
                },
                names: &["copy of the index root", "copy of index/"],
                plan: &[
                    (Cmd::GdalChecksum, Expect::Fails),
                    (Cmd::Python, Expect::Fails),
                    (Cmd::Verify, Expect::Fails),
                    (Cmd::Gc(1), Expect::Fails),
                    (Cmd::Ingest, Expect::Fails),
                    (Cmd::Rollback(1), Expect::Either),
                ],
            },
        ));
    }
}

#[test]
fn index_chain_deeper_than_any_store_needs() {
    index_case(&|site| {
        let (seq, _) = root_node(&site.store);
        let entries = all_entries(&site.store);
        let first = entries[0].key;
        let mut nodes = vec![(CRAFTED_ID, LEAF, entries)];
        for i in 1..CHAIN_DEPTH {
            let id = CRAFTED_ID + i;
            nodes.push((id, INTERNAL, vec![Record::child(first, seq, id - 1)]));
        }
        // Every node is older than its parent, as a writer makes them, so only the depth
        // bound can stop a walk down this chain; the manifests name its top as the root.
        let top = CRAFTED_ID + CHAIN_DEPTH - 1;
        edit_manifests(&site.store, &|m| {
            m["index"]["root"] = json!({"seq": seq, "id": top});
        });
        write_nodes(&site.store, &nodes)
    });
}

// ---------------------------------------------------------------------------------------
// Crafting chunks (docs/FORMAT.md §5: version 3 chunks).

const CHUNK_HEADER: usize = 28;
const BASE_FIELD: usize = 8;
const TABLE_ENTRY: usize = 12;

/// A chunk object's fields, and its frames as stored.
struct ChunkObject {
    /// The 28-byte fixed header.
    header: Vec<u8>,
    base: u64,
    /// Table entries: length, CRC, where (0: here, else offset in the base).
    table: Vec<(u32, u32, u32)>,
    /// The bytes of the frames stored here, in table order.
    frames: Vec<u8>,
}

impl ChunkObject {
    fn parse(b: &[u8]) -> ChunkObject {
        assert_eq!(&b[0..4], b"GSCK");
        assert_eq!(b[4], 3, "chunk version");
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]) as usize;
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let (bands, flags, size) = (u16_at(8), u16_at(10), u32_at(12) as usize);
        let (rows, cols) = (u16_at(24), u16_at(26));
        let count = bands * size.div_ceil(rows) * size.div_ceil(cols) + (flags & 1);
        let table: Vec<(u32, u32, u32)> = (0..count)
            .map(|i| {
                let at = CHUNK_HEADER + BASE_FIELD + TABLE_ENTRY * i;
                (u32_at(at), u32_at(at + 4), u32_at(at + 8))
            })
            .collect();
        let frames_at = CHUNK_HEADER + BASE_FIELD + TABLE_ENTRY * count + 4;
        ChunkObject {
            header: b[..CHUNK_HEADER].to_vec(),
            base: u64::from_le_bytes(b[CHUNK_HEADER..CHUNK_HEADER + 8].try_into().unwrap()),
            table,
            frames: b[frames_at..b.len() - 4].to_vec(),
        }
    }

    fn u16_at(&self, at: usize) -> usize {
        u16::from_le_bytes([self.header[at], self.header[at + 1]]) as usize
    }

    /// Whether the last frame is the validity mask.
    fn masked(&self) -> bool {
        self.u16_at(10) & 1 == 1
    }

    /// Frames per band, from the tile size and block shape in the header.
    fn blocks_per_band(&self) -> usize {
        let size = u32::from_le_bytes(self.header[12..16].try_into().unwrap()) as usize;
        size.div_ceil(self.u16_at(24)) * size.div_ceil(self.u16_at(26))
    }

    fn set_u16(&mut self, at: usize, v: u16) {
        self.header[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    /// The object, with its payload length, head CRC and trailer CRC all valid for what it
    /// holds; `payload` overrides the payload length field when given.
    fn bytes(&self, payload: Option<u32>) -> Vec<u8> {
        let mut b = self.header.clone();
        b.extend_from_slice(&self.base.to_le_bytes());
        for (len, crc, at) in &self.table {
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&crc.to_le_bytes());
            b.extend_from_slice(&at.to_le_bytes());
        }
        let n = (b.len() + 4 + self.frames.len() - CHUNK_HEADER) as u32;
        b[20..24].copy_from_slice(&payload.unwrap_or(n).to_le_bytes());
        let head_crc = crc32c::crc32c(&b);
        b.extend_from_slice(&head_crc.to_le_bytes());
        b.extend_from_slice(&self.frames);
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }
}

/// The top tile of the current snapshot: its chunk's path, the leaf holding its entry,
/// and the entry's position there.
struct TopTile {
    store: PathBuf,
    chunk: PathBuf,
    leaf: (u64, u32),
    records: Vec<Record>,
    at: usize,
}

fn top_tile(store: &Path) -> TopTile {
    // The base store's current index is one leaf (nine tiles).
    let (leaf, records) = current_leaves(store).into_iter().next().expect("a leaf");
    let at = (0..records.len())
        .max_by_key(|&i| records[i].level())
        .expect("a tile");
    let r = &records[at];
    let z = u32::from(r.level());
    let (row, col) = (r.row(), r.col());
    let block = |i: i32| (i64::from(i) << z) >> 4;
    let key = format!(
        "chunks/{}/0_0_{}_{}/{z}_{row}_{col}",
        r.seq(),
        block(row),
        block(col)
    );
    assert_eq!(r.seq(), 2, "the patch rewrote the top tile in snapshot 2");
    TopTile {
        store: store.to_path_buf(),
        chunk: store.join(key),
        leaf,
        records,
        at,
    }
}

impl TopTile {
    /// Writes `object` as the tile's chunk and records its size and CRC (and `base`) in
    /// its index entry, so that the index agrees with it: only the decoder's own checks
    /// can find what is wrong.
    fn replace(mut self, object: &[u8], base: u64) -> Vec<String> {
        std::fs::write(&self.chunk, object).unwrap();
        let crc = u32::from_le_bytes(object[object.len() - 4..].try_into().unwrap());
        let r = &mut self.records[self.at];
        r.set_u32(8, object.len() as u32);
        r.set_u32(12, crc);
        r.set_u64(16, base);
        write_node(
            &node_path(&self.store, self.leaf.0, self.leaf.1),
            LEAF,
            &self.records,
        );
        Vec::new()
    }

    fn object(&self) -> ChunkObject {
        ChunkObject::parse(&std::fs::read(&self.chunk).unwrap())
    }
}

const CHUNK_NAMES: &[&str] = &[
    "chunks/2/",
    "chunks/1/",
    "damaged chunk",
    "chunk is damaged",
];

/// What every command must do with a damaged chunk of the top tile: every read of the
/// overviews, `verify`, and the level update of any write read it.
const CHUNK_PLAN: &[(Cmd, Expect)] = &[
    (Cmd::GdalChecksum, Expect::Fails),
    (Cmd::Python, Expect::Fails),
    (Cmd::Info, Expect::Either),
    (Cmd::Verify, Expect::Fails),
    (Cmd::Repair, Expect::Either),
    (Cmd::Rollback(1), Expect::Either),
    (Cmd::Ingest, Expect::Fails),
];

fn chunk_case(plan: &[(Cmd, Expect)], craft: &dyn Fn(&Site) -> Vec<String>) {
    let base = base();
    assert_no_problems(run_case(
        &base,
        &Case {
            craft,
            names: CHUNK_NAMES,
            plan,
        },
    ));
}

#[test]
fn chunk_head_claiming_a_huge_band_count() {
    // 65535 bands, with a frame table of that many (empty) frames: every checksum holds.
    chunk_case(CHUNK_PLAN, &|site| {
        let top = top_tile(&site.store);
        let mut c = top.object();
        c.set_u16(8, u16::MAX);
        let frames = u16::MAX as usize * c.blocks_per_band() + usize::from(c.masked());
        c.table = vec![(0, 0, 0); frames];
        c.frames.clear();
        c.base = 0;
        let object = c.bytes(None);
        top.replace(&object, 0)
    });
}

#[test]
fn chunk_head_claiming_huge_blocks() {
    // Blocks of 65535 x 65535 pixels in a 256-pixel tile: one frame per band, which the
    // table then holds (the first frames kept), all checksums valid.
    chunk_case(CHUNK_PLAN, &|site| {
        let top = top_tile(&site.store);
        let mut c = top.object();
        // The first frame of each band, and the mask's, kept with their bytes.
        let bands = c.u16_at(8);
        let per_band = c.blocks_per_band();
        let mut wanted: Vec<usize> = (0..bands).map(|b| b * per_band).collect();
        if c.masked() {
            wanted.push(c.table.len() - 1);
        }
        let mut starts = Vec::new();
        let mut at = 0;
        for (len, _, where_) in &c.table {
            starts.push(at);
            if *where_ == 0 {
                at += *len as usize;
            }
        }
        let table: Vec<_> = wanted.iter().map(|&i| c.table[i]).collect();
        let frames: Vec<u8> = wanted
            .iter()
            .filter(|&&i| c.table[i].2 == 0)
            .flat_map(|&i| c.frames[starts[i]..starts[i] + c.table[i].0 as usize].to_vec())
            .collect();
        c.set_u16(24, u16::MAX);
        c.set_u16(26, u16::MAX);
        c.table = table;
        c.frames = frames;
        let object = c.bytes(None);
        top.replace(&object, c.base)
    });
}

#[test]
fn chunk_head_claiming_a_huge_tile_hence_frame_count() {
    // A tile of 4294967295 x 4294967295 pixels: the frame table it implies (and the head
    // length computed from it) is petabytes. The head's own CRC cannot be valid for a head
    // that long; the object's CRC and the index entry are.
    chunk_case(CHUNK_PLAN, &|site| {
        let top = top_tile(&site.store);
        let mut b = std::fs::read(&top.chunk).unwrap();
        b[12..20].copy_from_slice(&[0xff; 8]);
        let n = b.len();
        let crc = crc32c::crc32c(&b[..n - 4]);
        b[n - 4..].copy_from_slice(&crc.to_le_bytes());
        top.replace(&b, 0)
    });
}

#[test]
fn chunk_head_claiming_huge_frame_lengths() {
    // A frame stored in the object claims 2 GiB and the payload length agrees, so the head adds up;
    // the object is as small as before, and its size and CRC are what the index records.
    chunk_case(CHUNK_PLAN, &|site| {
        let top = top_tile(&site.store);
        let mut c = top.object();
        let real = c.bytes(None);
        let n = u32::from_le_bytes(real[20..24].try_into().unwrap());
        let claim = 0x7fff_0000u32;
        let here = c
            .table
            .iter()
            .position(|f| f.2 == 0)
            .expect("a frame in the object");
        let old = c.table[here].0;
        c.table[here].0 = claim;
        let object = c.bytes(Some(n - old + claim));
        top.replace(&object, c.base)
    });
}

#[test]
fn chunk_frame_in_base_claiming_huge_sizes() {
    // The first frame is said to be in the base (snapshot 1's chunk of the same tile, which
    // exists) at offset 1.75 GiB, 2 GiB long; the head and the index entry name the base.
    chunk_case(CHUNK_PLAN, &|site| {
        let top = top_tile(&site.store);
        let mut c = top.object();
        let (len, crc, at) = c.table[0];
        if at == 0 {
            c.frames.drain(..len as usize);
        }
        c.table[0] = (0x7fff_0000, crc, 0x7000_0000);
        c.base = 1;
        let object = c.bytes(None);
        top.replace(&object, 1)
    });
}

#[test]
fn chunk_object_far_larger_than_its_index_entry() {
    // 3 GiB of (sparse) bytes after the object; the index still records its true size.
    // Reading only what the index records is as good as refusing the object.
    let plan = &[
        (Cmd::GdalChecksum, Expect::Either),
        (Cmd::Python, Expect::Either),
        (Cmd::Verify, Expect::Fails),
        (Cmd::Ingest, Expect::Either),
    ];
    chunk_case(plan, &|site| {
        let top = top_tile(&site.store);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&top.chunk)
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len + (3 << 30)).unwrap();
        Vec::new()
    });
}

// ---------------------------------------------------------------------------------------
// Manifests.

fn edit_manifests(store: &Path, edit: &dyn Fn(&mut Value)) {
    for path in [store.join("gridstore.json"), store.join("snapshots/2.json")] {
        let mut m = read_json(&path);
        edit(&mut m);
        write_json(&path, &m);
    }
}

/// A manifest whose extent (level-0 pixels) is `x0, y0, x1, y1`, in the current manifest
/// and snapshot 2's: every field of it is a valid i64, and no store can have it.
fn extent_case(x0: i64, y0: i64, x1: i64, y1: i64) {
    let base = base();
    assert_no_problems(run_case(
        &base,
        &Case {
            craft: &|site| {
                edit_manifests(&site.store, &|m| {
                    m["extent"] = json!({"x0": x0, "y0": y0, "x1": x1, "y1": y1});
                });
                Vec::new()
            },
            names: &["gridstore.json", "snapshots/2.json", "extent"],
            plan: &[
                (Cmd::GdalChecksum, Expect::Fails),
                (Cmd::Python, Expect::Fails),
                (Cmd::Info, Expect::Fails),
                (Cmd::Verify, Expect::Fails),
                (Cmd::Log, Expect::Either),
                (Cmd::Gc(1), Expect::Fails),
                (Cmd::Repair, Expect::Either),
                (Cmd::Rollback(1), Expect::Either),
                (Cmd::Ingest, Expect::Fails),
            ],
        },
    ));
}

#[test]
fn manifest_with_an_enormous_extent() {
    // 2^63 pixels across, which overflows i64 widths: GDAL was handed a dataset 0 pixels
    // wide (gdalinfo -checksum once died of SIGFPE on it).
    let huge = 1i64 << 62;
    extent_case(-huge, -huge, huge, huge);
}

#[test]
fn manifest_with_an_extent_at_the_end_of_the_i64_range() {
    // A small extent (807 pixels square) whose corner lies beyond any tile column or row
    // an i32 can number, and with no room left for arithmetic on its coordinates.
    let far = i64::MAX - 807;
    extent_case(far, far, i64::MAX, i64::MAX);
}

#[test]
fn snapshot_parent_cycle() {
    // Snapshot 1 names snapshot 2 as its parent: 2 -> 1 -> 2 -> ... `log` and a gc that
    // keeps more than the history holds must stop with an error, not run out of memory.
    let base = base();
    assert_no_problems(run_case(
        &base,
        &Case {
            craft: &|site| {
                let path = site.store.join("snapshots/1.json");
                let mut m = read_json(&path);
                m["snapshot"]["parent"] = json!(2);
                write_json(&path, &m);
                Vec::new()
            },
            names: &["snapshots/1.json", "snapshots/2.json", "cycle", "loop"],
            plan: &[
                (Cmd::GdalChecksum, Expect::Either),
                (Cmd::Info, Expect::Either),
                (Cmd::Verify, Expect::Either),
                (Cmd::Log, Expect::Fails),
                (Cmd::Gc(1_000_000), Expect::Fails),
                (Cmd::Rollback(1), Expect::Either),
            ],
        },
    ));
}

/// Sets the current snapshot's id to `id`, then writes: the write must fail before it
/// writes anything (ids name objects; a wrapped id reuses old names), and `repair` then
/// must delete nothing.
fn write_after_snapshot_id(id: u64) {
    let base = base();
    let site = base.copy();
    let path = site.store.join("gridstore.json");
    let mut m = read_json(&path);
    m["snapshot"]["id"] = json!(id);
    write_json(&path, &m);
    let names = &[
        "snapshot id",
        "snapshot ids",
        "largest",
        "range",
        "gridstore.json",
    ];
    let mut problems = Vec::new();
    let before = listing(&site.store);
    for cmd in [Cmd::Ingest, Cmd::Rollback(1), Cmd::Repair] {
        let (label, c) = cmd.command(&site.store, &base.patch2);
        let ran = bounded(c, label.clone());
        let expect = match cmd {
            Cmd::Repair => Expect::Either,
            _ => Expect::Fails,
        };
        if let Some(p) = judge(&ran, expect, names) {
            problems.push(format!("{label}: {p}"));
        }
        let after = listing(&site.store);
        for loss in losses(&before, &after, &[]) {
            problems.push(format!("{label}: {loss}"));
        }
        for new in after.keys().filter(|k| !before.contains_key(*k)) {
            problems.push(format!("{label}: wrote {new:?}"));
        }
    }
    assert_no_problems(problems);
}

#[test]
fn write_after_the_largest_snapshot_id() {
    write_after_snapshot_id((1 << 53) - 1);
}

#[test]
fn write_after_snapshot_id_u64_max() {
    write_after_snapshot_id(u64::MAX);
}

#[test]
fn control_characters_in_writer_name_are_printed_escaped() {
    let base = base();
    let site = base.copy();
    let evil = "evil \u{1b}[2J\u{1b}]0;owned\u{7}\ninjected line\r\u{9b}31m";
    edit_manifests(&site.store, &|m| {
        m["snapshot"]["writer"] = json!(evil);
        m["bands"][0]["description"] = json!(evil);
    });
    let mut problems = Vec::new();
    for cmd in [Cmd::Log, Cmd::Info] {
        let (label, c) = cmd.command(&site.store, &base.patch2);
        let ran = bounded(c, label.clone());
        if let Some(p) = judge(&ran, Expect::Succeeds, &[]) {
            problems.push(format!("{label}: {p}"));
            continue;
        }
        let raw: Vec<char> = ran
            .stdout
            .chars()
            .filter(|c| c.is_control() && *c != '\n')
            .collect();
        if !raw.is_empty() {
            problems.push(format!(
                "{label}: prints control characters raw: {raw:?} in {:?}",
                ran.stdout
            ));
        }
        if ran.stdout.lines().any(|l| l.starts_with("injected line")) {
            problems.push(format!(
                "{label}: a newline in the writer name starts a line of its own: {:?}",
                ran.stdout
            ));
        }
        if !ran.stdout.contains("evil") {
            problems.push(format!("{label}: the writer name is not shown at all"));
        }
    }
    assert_no_problems(problems);
}

// ---------------------------------------------------------------------------------------
// `gridstore rm` and the destructive commands on what is not a store.

/// What a refusal to treat a directory as a store mentions.
const NOT_A_STORE: &[&str] = &[
    "not a gridstore",
    "not a store",
    "no store",
    "gridstore.json",
    "refus",
];

/// Runs the destructive commands on `dir` (not a store), each on a fresh copy: all must
/// refuse and delete nothing.
fn refuses_non_store(make: &dyn Fn(&Path)) {
    let mut problems = Vec::new();
    for cmd in [Cmd::Rm, Cmd::Repair, Cmd::Gc(1), Cmd::Rollback(1)] {
        let dir = tmp();
        let target = dir.path().join("precious.gridstore");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("thesis.tex"), "years of work\n").unwrap();
        std::fs::create_dir(target.join("data")).unwrap();
        std::fs::write(target.join("data/results.csv"), "1,2,3\n").unwrap();
        make(&target);
        let before = listing(dir.path());
        let (label, c) = cmd.command(&target, Path::new("/nonexistent.tif"));
        let ran = bounded(c, label.clone());
        if let Some(p) = judge(&ran, Expect::Fails, NOT_A_STORE) {
            problems.push(format!("{label}: {p}"));
        }
        for loss in losses(&before, &listing(dir.path()), &[]) {
            problems.push(format!("{label}: {loss}"));
        }
    }
    assert_no_problems(problems);
}

#[test]
fn rm_refuses_a_directory_holding_an_empty_writer_lock() {
    refuses_non_store(&|d| std::fs::write(d.join("writer.lock"), "").unwrap());
}

#[test]
fn rm_refuses_a_directory_holding_an_unparsable_manifest() {
    refuses_non_store(&|d| std::fs::write(d.join("gridstore.json"), "{ not json").unwrap());
}

#[test]
fn rm_of_a_symlink_to_a_store_deletes_all_or_nothing() {
    // Refusing is fine, and so is removing the link or the whole store; removing the
    // store's manifest and leaving the rest (half a store) is not.
    let base = base();
    let site = base.copy();
    let link = site.store.with_file_name("link.gridstore");
    std::os::unix::fs::symlink(&site.store, &link).unwrap();
    let store_before = listing(&site.store);
    let outside_before = listing(&site.outside);
    let (label, c) = Cmd::Rm.command(&link, &base.patch2);
    let ran = bounded(c, label.clone());
    let mut problems = Vec::new();
    if let Some(p) = judge(
        &ran,
        Expect::Either,
        &["link.gridstore", "symlink", "symbolic link"],
    ) {
        problems.push(format!("{label}: {p}"));
    }
    let store_after = listing(&site.store);
    if !store_after.is_empty() && store_after != store_before {
        problems.push(format!(
            "{label}: deleted half the store behind the link: {:?}",
            losses(&store_before, &store_after, &[])
        ));
    }
    for loss in losses(&outside_before, &listing(&site.outside), &[]) {
        problems.push(format!("{label}: OUTSIDE the store: {loss}"));
    }
    assert_no_problems(problems);
}

// ---------------------------------------------------------------------------------------
// What a store directory holds that no writer put there.

/// Writers into a store with something planted where the next commit (snapshot 3) writes.
/// Each may fail or avoid what was planted; nothing outside the store may change.
const WRITERS: &[(Cmd, Expect)] = &[
    (Cmd::Ingest, Expect::Either),
    (Cmd::Rollback(1), Expect::Either),
    (Cmd::Repair, Expect::Either),
];

const PLANTED_NAMES: &[&str] = &[
    "symlink",
    "symbolic link",
    "snapshots/3",
    "chunks/3",
    "index/3",
    "exists",
];

fn planted_case(craft: &dyn Fn(&Site) -> Vec<String>) {
    let base = base();
    assert_no_problems(run_case(
        &base,
        &Case {
            craft,
            names: PLANTED_NAMES,
            plan: WRITERS,
        },
    ));
}

#[test]
fn symlinked_next_snapshot_manifest_to_an_existing_file_outside() {
    planted_case(&|site| {
        let target = site.outside.join("target.json");
        std::fs::write(&target, "precious file outside the store\n").unwrap();
        std::os::unix::fs::symlink(&target, site.store.join("snapshots/3.json")).unwrap();
        vec!["snapshots/3.json".into()]
    });
}

#[test]
fn symlinked_next_snapshot_manifest_to_a_new_file_outside() {
    planted_case(&|site| {
        let target = site.outside.join("new.json");
        std::os::unix::fs::symlink(&target, site.store.join("snapshots/3.json")).unwrap();
        vec!["snapshots/3.json".into()]
    });
}

#[test]
fn symlinked_next_chunk_and_index_directories_outside() {
    planted_case(&|site| {
        let mut planted = Vec::new();
        for name in ["chunks", "index"] {
            let target = site.outside.join(format!("{name}3"));
            std::fs::create_dir(&target).unwrap();
            std::os::unix::fs::symlink(&target, site.store.join(format!("{name}/3"))).unwrap();
            planted.push(format!("{name}/3"));
        }
        planted
    });
}

fn mkfifo(path: &Path) {
    let out = Command::new("mkfifo").arg(path).output().expect("mkfifo");
    assert!(out.status.success(), "mkfifo {}: {out:?}", path.display());
}

/// A device where a file should be: a symlink to /dev/zero, which reads forever.
fn zero_device(path: &Path) {
    std::os::unix::fs::symlink("/dev/zero", path).unwrap();
}

/// Puts what `make` makes (a FIFO, a device) in place of the manifest: every command must
/// fail quickly, without blocking on it or reading it forever.
fn special_manifest(make: fn(&Path)) {
    let base = base();
    let names = &["gridstore.json", "not a regular file", "fifo", "device"];
    assert_no_problems(run_case(
        &base,
        &Case {
            craft: &|site| {
                let m = site.store.join("gridstore.json");
                std::fs::remove_file(&m).unwrap();
                make(&m);
                Vec::new()
            },
            names,
            plan: &[
                (Cmd::GdalChecksum, Expect::Fails),
                (Cmd::Python, Expect::Fails),
                (Cmd::Info, Expect::Fails),
                (Cmd::Verify, Expect::Fails),
                (Cmd::Log, Expect::Fails),
                (Cmd::Gc(1), Expect::Fails),
                (Cmd::Repair, Expect::Fails),
                (Cmd::Rollback(1), Expect::Fails),
                (Cmd::Ingest, Expect::Fails),
                (Cmd::Rm, Expect::Fails),
            ],
        },
    ));
}

/// Puts what `make` makes in place of the top tile's chunk: every reader of it must fail
/// quickly.
fn special_chunk(make: fn(&Path)) {
    let base = base();
    let names = &["chunks/2/", "not a regular file", "fifo", "device"];
    assert_no_problems(run_case(
        &base,
        &Case {
            craft: &|site| {
                let chunk = top_tile(&site.store).chunk;
                std::fs::remove_file(&chunk).unwrap();
                make(&chunk);
                Vec::new()
            },
            names,
            plan: &[
                (Cmd::GdalChecksum, Expect::Fails),
                (Cmd::Python, Expect::Fails),
                (Cmd::Info, Expect::Either),
                (Cmd::Verify, Expect::Fails),
                (Cmd::Repair, Expect::Either),
                (Cmd::Ingest, Expect::Fails),
            ],
        },
    ));
}

#[test]
fn fifo_in_place_of_the_manifest() {
    special_manifest(mkfifo);
}

#[test]
fn fifo_in_place_of_a_chunk() {
    special_chunk(mkfifo);
}

#[test]
fn device_in_place_of_the_manifest() {
    special_manifest(zero_device);
}

#[test]
fn device_in_place_of_a_chunk() {
    special_chunk(zero_device);
}

// ---------------------------------------------------------------------------------------
// Locks, options.

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

/// A writer lock of this host naming a process that cannot exist and a start in the
/// future: stale, so every writer and `repair` take it over.
fn impossible_lock(pid: u64, process_start: Option<u64>) {
    let base = base();
    let lock = json!({
        "host": hostname(),
        "pid": pid,
        "process_start": process_start,
        "started": "2999-01-01T00:00:00Z",
        "writer": "a writer from the future",
    });
    assert_no_problems(run_case(
        &base,
        &Case {
            craft: &|site| {
                write_json(&site.store.join("writer.lock"), &lock);
                vec!["writer.lock".into()]
            },
            names: &["writer.lock", "lock"],
            plan: &[
                (Cmd::Repair, Expect::Succeeds),
                (Cmd::Ingest, Expect::Succeeds),
                (Cmd::Rollback(1), Expect::Succeeds),
            ],
        },
    ));
}

#[test]
fn lock_of_pid_u32_max_is_stale() {
    // As a pid_t, 4294967295 is -1: kill(-1, 0) asks about every process there is.
    impossible_lock(u32::MAX as u64, None);
}

#[test]
fn lock_of_a_pid_beyond_pid_max_started_in_the_future_is_stale() {
    impossible_lock(99_999_999, Some(u64::MAX / 2));
}

#[test]
fn num_threads_100000_is_refused_quickly() {
    let base = base();
    let site = base.copy();
    let st = s(&site.store).to_string();
    let out_tif = site.outside.join("copy.gridstore");
    let script = root().join("tests/python/hostile.py");
    let runs: Vec<(String, Command)> = vec![
        (
            "gdalinfo -oo NUM_THREADS=100000".into(),
            program(
                "gdalinfo",
                &strings(&["-checksum", "-oo", "NUM_THREADS=100000", &st]),
            ),
        ),
        (
            "GDAL Python NUM_THREADS=100000".into(),
            program(
                "/usr/bin/python3",
                &strings(&[s(&script), &st, "NUM_THREADS=100000"]),
            ),
        ),
        (
            "gdal_translate -co NUM_THREADS=100000".into(),
            program(
                "gdal_translate",
                &strings(&[
                    "-q",
                    "-of",
                    "GRIDSTORE",
                    "-co",
                    "NUM_THREADS=100000",
                    s(&base.patch2),
                    s(&out_tif),
                ]),
            ),
        ),
        (
            "gridstore ingest --threads 100000".into(),
            program(
                gridstore(),
                &strings(&["ingest", "-q", "--threads", "100000", &st, s(&base.patch2)]),
            ),
        ),
    ];
    let mut problems = Vec::new();
    let before = listing(&site.store);
    for (label, c) in runs {
        let ran = bounded(c, label.clone());
        if let Some(p) = judge(&ran, Expect::Fails, &["NUM_THREADS", "threads"]) {
            problems.push(format!("{label}: {p}"));
        }
    }
    for loss in losses(&before, &listing(&site.store), &[]) {
        problems.push(format!("in the store: {loss}"));
    }
    assert_no_problems(problems);
}

// ---------------------------------------------------------------------------------------
// The harness itself: a healthy store passes every command within the bounds, so the
// failures above are the crafted objects' doing.

#[test]
fn healthy_store_passes_every_command_within_the_bounds() {
    let base = base();
    let plan = [
        Cmd::GdalChecksum,
        Cmd::Python,
        Cmd::Info,
        Cmd::Verify,
        Cmd::Log,
        Cmd::Repair,
        Cmd::Ingest,
        Cmd::Rollback(1),
        Cmd::Gc(1),
    ];
    let mut problems = Vec::new();
    for cmd in plan {
        let site = base.copy();
        let (label, c) = cmd.command(&site.store, &base.patch2);
        let ran = bounded(c, label.clone());
        if let Some(p) = judge(&ran, Expect::Succeeds, &[]) {
            problems.push(format!("{label}: {p}"));
        }
    }
    assert_no_problems(problems);
}
