//! The long fuzz run: every target (or those named) in a child process of its own, so that
//! an input that aborts the process or hangs it is recorded and the run goes on.
//!
//! ```text
//! cargo bench --bench fuzz -- [--execs N] [--seed S] [--targets a,b] [--timeout-restarts K]
//! cargo bench --bench fuzz -- --write-corpus     # regenerates fuzz/corpus from the encoders
//! cargo bench --bench fuzz -- --targets T --replay FILE   # runs one saved input again
//! ```
//!
//! `--execs` is the total over the targets (10 million by default), split evenly. Findings
//! are saved under `target/fuzz-findings/<target>/`; the run exits non-zero if there are
//! any. `scripts/fuzz.sh` runs this with overflow checks and debug assertions on.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use gridstore::fuzz::alloc::Counting;
use gridstore::fuzz::coverage;
use gridstore::fuzz::engine::HANG_EXIT;
use gridstore::fuzz::last_input::LastInput;
use gridstore::fuzz::{targets, Settings};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Times a target's child may die (abort, hang) before the run gives up on the target.
const MAX_RESTARTS: u32 = 20;

struct Args {
    execs: u64,
    seed: u64,
    targets: Vec<String>,
    child: Option<String>,
    write_corpus: bool,
    replay: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        execs: 10_000_000,
        seed: 1,
        targets: targets::NAMES.iter().map(|s| s.to_string()).collect(),
        child: None,
        write_corpus: false,
        replay: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--execs" => args.execs = number(&value("--execs")?)?,
            "--seed" => args.seed = number(&value("--seed")?)?,
            "--targets" => {
                args.targets = value("--targets")?.split(',').map(String::from).collect()
            }
            "--child" => args.child = Some(value("--child")?),
            "--write-corpus" => args.write_corpus = true,
            "--replay" => args.replay = Some(PathBuf::from(value("--replay")?)),
            "--bench" => {} // added by `cargo bench`
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(bad) = args
        .targets
        .iter()
        .find(|t| !targets::NAMES.contains(&t.as_str()))
    {
        return Err(format!(
            "no target {bad:?}; the targets are {}",
            targets::NAMES.join(", ")
        ));
    }
    Ok(args)
}

fn number(s: &str) -> Result<u64, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn settings(execs: u64, seed: u64) -> Settings {
    Settings {
        execs,
        seed,
        corpus: Some(root().join("fuzz/corpus")),
        findings: root().join("target/fuzz-findings"),
        coverage: coverage::available().then_some(coverage::new_edges as fn() -> bool),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fuzz: {e}");
            std::process::exit(2);
        }
    };
    if args.write_corpus {
        match targets::write_corpus(&root().join("fuzz/corpus")) {
            Ok(n) => println!("wrote {n} seeds under fuzz/corpus"),
            Err(e) => {
                eprintln!("fuzz: cannot write the corpus: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Some(file) = &args.replay {
        replay(file, &args.targets);
    }
    if let Some(name) = &args.child {
        child(name, &args);
    }
    let per_target = args.execs.div_ceil(args.targets.len() as u64);
    let start = Instant::now();
    let (mut total, mut findings) = (0, 0);
    for name in &args.targets {
        let (execs, found) = run_target(name, per_target, args.seed);
        total += execs;
        findings += found;
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "total: {total} executions of {} target(s) in {wall:.1} s ({:.0}/s, seed {}), \
         {findings} finding(s)",
        args.targets.len(),
        total as f64 / wall,
        args.seed
    );
    std::process::exit(i32::from(findings > 0));
}

/// Runs the input in `file` through each of `targets` and prints what happened.
fn replay(file: &std::path::Path, targets: &[String]) -> ! {
    let input = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("fuzz: cannot read {}: {e}", file.display());
            std::process::exit(2);
        }
    };
    for name in targets {
        if let Some(what) = targets::replay(name, &input) {
            println!("{what}");
        }
    }
    std::process::exit(0);
}

/// Runs one target in this process and prints its report, then a line for the parent:
/// `RESULT <execs> <findings>`.
fn child(name: &str, args: &Args) -> ! {
    let Some(report) = targets::run(name, &settings(args.execs, args.seed)) else {
        std::process::exit(2);
    };
    println!("{}", report.summary());
    if coverage::available() {
        let (reached, all) = coverage::edges();
        println!("    coverage-guided: {reached} of {all} instrumented edges reached");
    }
    let found: u64 = report.findings.iter().map(|f| f.count).sum();
    println!("RESULT {} {found}", report.execs);
    std::process::exit(0);
}

/// Runs `execs` executions of `name` in child processes, restarting after one dies;
/// returns the executions made and the findings.
fn run_target(name: &str, execs: u64, seed: u64) -> (u64, u64) {
    let (mut done, mut found, mut restarts) = (0, 0, 0);
    while done < execs && restarts <= MAX_RESTARTS {
        // Each restart goes on with another seed, so it does not meet the same input again.
        let seed = seed.wrapping_add(u64::from(restarts) * 1_000_003);
        let out = Command::new(std::env::current_exe().expect("the running binary"))
            .args(["--child", name, "--execs", &(execs - done).to_string()])
            .args(["--seed", &seed.to_string()])
            .stderr(Stdio::inherit())
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                eprintln!("fuzz: cannot start a child for {name}: {e}");
                return (done, found + 1);
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some((n, f)) = result_line(&text) {
            text.lines()
                .filter(|l| !l.starts_with("RESULT"))
                .for_each(|l| println!("{l}"));
            return (done + n, found + f);
        }
        // The child died: the input it was decoding is the finding.
        let (n, saved) = save_last_input(name, out.status, restarts);
        done += n + 1;
        found += 1;
        restarts += 1;
        println!(
            "{name}: the child {} after {n} executions; its input is in {}",
            describe(out.status),
            saved.display()
        );
    }
    (done, found)
}

fn result_line(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("RESULT "))?;
    let mut parts = line.split(' ').skip(1).map(|s| s.parse().ok());
    Some((parts.next()??, parts.next()??))
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(HANG_EXIT), _) => "hung".into(),
        (_, Some(sig)) => format!("died of signal {sig}"),
        (code, _) => format!("exited with {code:?}"),
    }
}

/// Copies the dead child's last input to a finding file; returns the executions it had
/// made and where the input is.
fn save_last_input(name: &str, status: ExitStatus, n: u32) -> (u64, PathBuf) {
    let dir = root().join("target/fuzz-findings").join(name);
    let (exec, input) = LastInput::read(&dir.join("last-input")).unwrap_or_default();
    let kind = if status.code() == Some(HANG_EXIT) {
        "hang"
    } else {
        "abort"
    };
    let path = dir.join(format!("{kind}-{n}.bin"));
    if let Err(e) = std::fs::write(&path, input) {
        eprintln!("fuzz: cannot save {}: {e}", path.display());
    }
    (exec, path)
}
