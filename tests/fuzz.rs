//! A short fuzz run of every target, with a fixed seed: the same inputs every time. The
//! long run is `scripts/fuzz.sh` (docs/RELIABILITY.md).

use std::path::PathBuf;
use std::sync::Mutex;

use gridstore::fuzz::alloc::{self, Counting};
use gridstore::fuzz::{targets, Settings};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs take the process-wide panic hook and allocation counters: one at a time.
static ONE_RUN: Mutex<()> = Mutex::new(());

/// Executions per target: about 10 s in all in a release build (the targets differ in
/// speed by a factor of 20).
fn execs(target: &str) -> u64 {
    match target {
        "manifest" => 30_000,
        "snapshot" => 25_000,
        "lock" => 100_000,
        "index" => 300_000,
        "chunk" => 40_000,
        "codec-zstd" => 80_000,
        "codec-deflate" => 25_000,
        _ => 150_000,
    }
}

#[test]
fn every_decoder_survives_a_short_fuzz_run() {
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    for name in targets::NAMES {
        let settings = Settings {
            execs: execs(name),
            seed: 1,
            corpus: Some(root.join("fuzz/corpus")),
            findings: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings"),
            coverage: None,
        };
        let report = targets::run(name, &settings).expect("a target of that name");
        println!("{}", report.summary());
        if !report.findings.is_empty() {
            failures.push(report.summary());
        }
    }
    assert!(alloc::installed(), "allocations are counted");
    assert!(failures.is_empty(), "findings:\n{}", failures.join("\n"));
}

/// A decoder with planted bugs: it panics on inputs starting 0xAA, decodes inputs starting
/// 0xBB to something that does not re-encode, and allocates 8 MiB for inputs starting 0xCC.
struct Planted;

impl gridstore::fuzz::Target for Planted {
    type Decoded = u8;

    fn name(&self) -> &'static str {
        "planted"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![vec![0; 4]]
    }

    fn decode(&self, input: &[u8]) -> Option<u8> {
        match input.first()? {
            0xaa => panic!("planted panic"),
            0xcc => Some(std::hint::black_box(vec![1u8; 8 << 20])[0]),
            &b => Some(b),
        }
    }

    fn check(&self, _input: &[u8], decoded: u8) -> Result<(), String> {
        match decoded {
            0xbb => Err("planted mismatch".into()),
            _ => Ok(()),
        }
    }

    fn alloc_bound(&self, _input: &[u8]) -> usize {
        1 << 20
    }
}

#[test]
fn the_engine_finds_planted_panics_mismatches_and_allocations() {
    use gridstore::fuzz::engine::{self, Kind};
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let findings = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-planted");
    let settings = Settings {
        execs: 100_000,
        seed: 7,
        corpus: None,
        findings: findings.clone(),
        coverage: None,
    };
    let report = engine::run(&Planted, &settings);
    let kinds: Vec<&Kind> = report.findings.iter().map(|f| &f.kind).collect();
    for kind in [Kind::Panic, Kind::Mismatch, Kind::OverAllocation] {
        assert!(
            kinds.contains(&&kind),
            "{kind:?} not found: {}",
            report.summary()
        );
    }
    // Each finding's input is saved, and reproduces it.
    let panic = report
        .findings
        .iter()
        .find(|f| f.kind == Kind::Panic)
        .unwrap();
    assert!(panic.detail.contains("planted panic"), "{}", panic.detail);
    let input = std::fs::read(&panic.saved[0]).unwrap();
    assert_eq!(input[0], 0xaa);
}
