//! The fuzzing loop: mutate a corpus input, fix its checksums, decode it under
//! `catch_unwind` with a timer and the allocation counter, check it against the reference,
//! and record what went wrong.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::last_input::LastInput;
use super::{alloc, mutate, Rng, Target};

/// An input that took longer than this to decode is a finding.
pub const SLOW: Duration = Duration::from_secs(1);
/// An input still running after this long is a hang: the process prints it and exits.
pub const HANG: Duration = Duration::from_secs(20);
/// Inputs kept per kind of finding (the rest are only counted).
const SAVED_PER_FINDING: usize = 3;

/// How to run one target.
#[derive(Debug, Clone)]
pub struct Settings {
    pub execs: u64,
    pub seed: u64,
    /// Where the committed corpus is (`fuzz/corpus`): `<dir>/<target>/*` are added to the
    /// target's seeds.
    pub corpus: Option<PathBuf>,
    /// Where inputs of findings are saved (`<dir>/<target>/<kind>-<n>.bin`), and where the
    /// input being decoded is kept (`<dir>/<target>/last-input`).
    pub findings: PathBuf,
    /// Called after each input; true when it reached code no input had reached before, so
    /// that the input joins the corpus (coverage guidance; `None`: no guidance).
    pub coverage: Option<fn() -> bool>,
}

/// What went wrong with one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The decoder panicked.
    Panic,
    /// The decoder accepted the input, but the reference disagrees (or panicked).
    Mismatch,
    Slow,
    OverAllocation,
    /// A valid object from [`Target::seeds`] was refused: the decoder or the generator
    /// is wrong.
    SeedRefused,
}

/// Inputs that went wrong in the same way (same kind, same place).
#[derive(Debug, Clone)]
pub struct Finding {
    /// Findings are numbered in the order they were first met (and their inputs saved
    /// under that number).
    pub id: usize,
    pub kind: Kind,
    /// What happened to the first of them.
    pub detail: String,
    pub count: u64,
    /// Where the first few inputs were saved.
    pub saved: Vec<PathBuf>,
}

/// The result of running one target.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    pub execs: u64,
    /// Inputs the decoder accepted (the rest it refused with an error).
    pub accepted: u64,
    pub corpus: usize,
    pub wall: Duration,
    pub slowest: Duration,
    /// The largest single allocation any input made while decoding.
    pub largest_alloc: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn summary(&self) -> String {
        let secs = self.wall.as_secs_f64();
        let mut s = format!(
            "{:<14} {:>10} execs in {:>7.1} s ({:>8.0}/s), {:>5.1}% accepted, corpus {}, \
             slowest {:.1} ms, largest allocation {} bytes, {} finding(s)",
            self.target,
            self.execs,
            secs,
            self.execs as f64 / secs.max(1e-9),
            100.0 * self.accepted as f64 / (self.execs.max(1)) as f64,
            self.corpus,
            self.slowest.as_secs_f64() * 1e3,
            self.largest_alloc,
            self.findings.len(),
        );
        for f in &self.findings {
            s += &format!(
                "\n    {:?} x{}: {} (saved: {})",
                f.kind,
                f.count,
                f.detail,
                f.saved
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        s
    }
}

thread_local! {
    /// The message and place of the last panic on this thread, set by the quiet hook.
    static PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `target` as `settings` say and reports what it found.
pub fn run<T: Target>(target: &T, settings: &Settings) -> Report {
    let dir = settings.findings.join(target.name());
    let mut corpus = target.seeds();
    let generated = corpus.len();
    if let Some(root) = &settings.corpus {
        // The committed corpus holds the generated seeds too: only the others are added.
        let known: HashSet<Vec<u8>> = corpus.iter().cloned().collect();
        let files = read_corpus(&root.join(target.name()));
        corpus.extend(files.into_iter().filter(|f| !known.contains(f)));
    }
    let mut last = LastInput::create(&dir.join("last-input")).ok();
    let watchdog = Watchdog::start(dir.join("last-input"));
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(quiet_hook));

    let mut rng = Rng::new(settings.seed);
    let mut findings: BTreeMap<String, Finding> = BTreeMap::new();
    let mut report = Report {
        target: target.name(),
        execs: 0,
        accepted: 0,
        corpus: 0,
        wall: Duration::ZERO,
        slowest: Duration::ZERO,
        largest_alloc: 0,
        findings: Vec::new(),
    };
    let start = Instant::now();
    for exec in 0..settings.execs {
        // The seeds go in unchanged first: each must decode and pass the reference.
        let input = match corpus.get(exec as usize) {
            Some(seed) => seed.clone(),
            None => mutated(target, &corpus, &mut rng),
        };
        if let Some(last) = &mut last {
            last.record(exec, &input);
        }
        watchdog.begin();
        let outcome = execute(target, &input);
        watchdog.end();
        report.execs += 1;
        report.accepted += u64::from(outcome.accepted);
        report.slowest = report.slowest.max(outcome.time);
        report.largest_alloc = report.largest_alloc.max(outcome.usage.largest);
        if (exec as usize) < generated && !outcome.accepted {
            let detail = format!("seed {exec} was refused");
            record(&mut findings, &dir, Kind::SeedRefused, detail, &input);
        }
        for (kind, detail) in outcome.problems {
            record(&mut findings, &dir, kind, detail, &input);
        }
        if settings.coverage.is_some_and(|new_edges| new_edges()) {
            corpus.push(input);
        }
    }
    report.wall = start.elapsed();
    std::panic::set_hook(previous_hook);
    report.corpus = corpus.len();
    report.findings = findings.into_values().collect();
    report
}

/// Runs one input (a saved finding, say) through `target` as [`run`] would, and says what
/// happened.
pub fn replay<T: Target>(target: &T, input: &[u8]) -> String {
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(quiet_hook));
    let outcome = execute(target, input);
    std::panic::set_hook(previous_hook);
    let mut s = format!(
        "{}: {} in {:.1} ms, largest allocation {} bytes (bound {})",
        target.name(),
        if outcome.accepted {
            "accepted"
        } else {
            "refused"
        },
        outcome.time.as_secs_f64() * 1e3,
        outcome.usage.largest,
        target.alloc_bound(input),
    );
    for (kind, detail) in outcome.problems {
        s += &format!("\n    {kind:?}: {detail}");
    }
    s
}

/// A corpus input, mutated one to four times, its checksums recomputed (nine times in
/// ten: the tenth exercises the checksum checks themselves).
fn mutated<T: Target>(target: &T, corpus: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut input = rng.pick(corpus).clone();
    let other = rng.pick(corpus);
    let fixed = target.fixed_prefix().min(input.len());
    for _ in 0..1 + rng.below(4) {
        if rng.one_in(2) && target.mutate_structured(&mut input, other, rng) {
            continue;
        }
        let fields = target.fields(&input);
        mutate::bytes(&mut input, fixed, &fields, other, rng);
    }
    if !rng.one_in(10) {
        target.fix_checksums(&mut input, rng.one_in(2));
    }
    input
}

/// What happened to one input.
struct Outcome {
    accepted: bool,
    time: Duration,
    usage: alloc::Usage,
    problems: Vec<(Kind, String)>,
}

fn execute<T: Target>(target: &T, input: &[u8]) -> Outcome {
    let bound = target.alloc_bound(input);
    alloc::reset();
    let started = Instant::now();
    let decoded = catch_unwind(AssertUnwindSafe(|| target.decode(input)));
    let time = started.elapsed();
    let usage = alloc::usage();
    let mut problems = Vec::new();
    let mut accepted = false;
    match decoded {
        Err(_) => problems.push((Kind::Panic, last_panic())),
        Ok(None) => {}
        Ok(Some(value)) => {
            accepted = true;
            match catch_unwind(AssertUnwindSafe(|| target.check(input, value))) {
                Ok(Ok(())) => {}
                Ok(Err(why)) => problems.push((Kind::Mismatch, why)),
                Err(_) => problems.push((
                    Kind::Mismatch,
                    format!("the reference panicked: {}", last_panic()),
                )),
            }
        }
    }
    if time > SLOW {
        problems.push((Kind::Slow, format!("took {:.2} s", time.as_secs_f64())));
    }
    if usage.largest > bound {
        problems.push((
            Kind::OverAllocation,
            format!(
                "allocated {} bytes at once (bound {bound}; {} live at the peak)",
                usage.largest, usage.peak
            ),
        ));
    }
    Outcome {
        accepted,
        time,
        usage,
        problems,
    }
}

/// Keeps a panic's message and place for the finding instead of printing them. A panic
/// in the standard library (an arithmetic overflow in `i64::abs`, a slice index) gets the
/// place in gridstore's own code that called it, which is where the bug is.
fn quiet_hook(info: &std::panic::PanicHookInfo) {
    let inside_std = info
        .location()
        .is_some_and(|l| own_source(l.file()).is_none());
    let mut message = info.to_string();
    if inside_std {
        let trace = alloc::uncounted(|| std::backtrace::Backtrace::force_capture().to_string());
        if let Some(place) = own_caller(&trace) {
            message += &format!(" (reached from {place})");
        }
    }
    PANIC.with(|p| *p.borrow_mut() = message);
}

/// A path in gridstore's own sources, relative to `src/` (paths in panics and backtraces
/// are relative to the package, or absolute); `None` for any other file.
fn own_source(path: &str) -> Option<&str> {
    let path = path.strip_prefix("./").unwrap_or(path);
    path.strip_prefix("src/").or_else(|| {
        path.strip_prefix(env!("CARGO_MANIFEST_DIR"))?
            .strip_prefix("/src/")
    })
}

/// The innermost frame of a backtrace in gridstore's own code outside this harness, as
/// `src/<file>:<line>`.
fn own_caller(trace: &str) -> Option<String> {
    let own: Vec<&str> = trace
        .lines()
        .filter_map(|l| l.trim().strip_prefix("at "))
        .filter_map(own_source)
        .collect();
    let place = own
        .iter()
        .find(|at| !at.starts_with("fuzz/"))
        .or(own.first())?;
    // Line, not column: the same bug reached from the same line is one finding.
    let line = place
        .rsplit_once(':')
        .map_or(*place, |(file_line, _)| file_line);
    Some(format!("src/{line}"))
}

fn last_panic() -> String {
    PANIC.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// Counts the finding under its kind and place (a panic's location, the first words of a
/// mismatch), saving the first few inputs of each.
fn record(
    findings: &mut BTreeMap<String, Finding>,
    dir: &Path,
    kind: Kind,
    detail: String,
    input: &[u8],
) {
    let place = match kind {
        Kind::Panic => {
            let at = detail.split(':').take(3).collect::<Vec<_>>().join(":");
            let from = detail.rfind(" (reached from ").map_or("", |i| &detail[i..]);
            at + from
        }
        Kind::Mismatch => detail.chars().take(40).collect(),
        Kind::Slow | Kind::OverAllocation | Kind::SeedRefused => String::new(),
    };
    let key = format!("{kind:?} {place}");
    let n = findings.len();
    let f = findings.entry(key).or_insert_with(|| Finding {
        id: n,
        kind: kind.clone(),
        detail,
        count: 0,
        saved: Vec::new(),
    });
    f.count += 1;
    if f.saved.len() < SAVED_PER_FINDING {
        let name = format!("{:?}-{}-{}.bin", kind, f.id, f.saved.len()).to_lowercase();
        let path = dir.join(name);
        if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&path, input).is_ok() {
            f.saved.push(path);
        }
    }
}

/// The files of a corpus directory, in name order (none if it does not exist).
pub fn read_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Writes `target`'s seeds to `<dir>/<target>/seed-<n>.bin`, replacing what was there.
pub fn write_corpus<T: Target>(target: &T, dir: &Path) -> std::io::Result<usize> {
    let dir = dir.join(target.name());
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let seeds = target.seeds();
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}.bin")), seed)?;
    }
    Ok(seeds.len())
}

/// A thread that ends the process when one input runs for [`HANG`]: the input cannot be
/// interrupted, and its file (kept by [`LastInput`]) is the finding.
struct Watchdog {
    /// Milliseconds since `origin` at which the current input started, plus one; 0 while
    /// no input runs.
    started: Arc<AtomicU64>,
    origin: Instant,
}

impl Watchdog {
    fn start(last_input: PathBuf) -> Watchdog {
        let started = Arc::new(AtomicU64::new(0));
        let origin = Instant::now();
        let watched = Arc::clone(&started);
        // The thread ends with the watchdog (when it holds the last reference).
        std::thread::spawn(move || {
            while Arc::strong_count(&watched) > 1 {
                std::thread::sleep(Duration::from_millis(200));
                let at = watched.load(Relaxed);
                let now = origin.elapsed().as_millis() as u64 + 1;
                if at != 0 && now.saturating_sub(at) > HANG.as_millis() as u64 {
                    eprintln!(
                        "fuzz: an input has run for over {} s; it is in {}",
                        HANG.as_secs(),
                        last_input.display()
                    );
                    std::process::exit(HANG_EXIT);
                }
            }
        });
        Watchdog { started, origin }
    }

    fn begin(&self) {
        self.started
            .store(self.origin.elapsed().as_millis() as u64 + 1, Relaxed);
    }

    fn end(&self) {
        self.started.store(0, Relaxed);
    }
}

/// The exit status of a process the watchdog ended.
pub const HANG_EXIT: i32 = 86;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_standard_library_is_placed_in_the_code_that_called_it() {
        let trace = "   0: core::panicking::panic_const::panic_const_neg_overflow
             at /rustc/abc/library/core/src/panicking.rs:175:17
   1: core::num::<impl i64>::abs
             at /rustc/abc/library/core/src/num/mod.rs:418:5
   2: gridstore::manifest::validate::check_extent::{{closure}}
             at ./src/manifest/validate.rs:271:52
   3: gridstore::fuzz::targets::manifest::parse_manifest
             at ./src/fuzz/targets/manifest.rs:140:13";
        assert_eq!(
            own_caller(trace).as_deref(),
            Some("src/manifest/validate.rs:271")
        );
        // Only the harness in the trace: the harness's own frame.
        let harness = trace.replace("./src/manifest/validate.rs", "/rustc/x.rs");
        assert_eq!(
            own_caller(&harness).as_deref(),
            Some("src/fuzz/targets/manifest.rs:140")
        );
        assert_eq!(
            own_caller("   0: main\n             at /rustc/x.rs:1:1"),
            None
        );
    }
}
