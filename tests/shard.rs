//! `--shard I/N` through the real CLI: N processes started at once, each writing its part of
//! one ingest or append into one store, make the store one process makes (the same
//! `gridstore verify` content digest and `gdalinfo -checksum` at every level); the parts
//! are disjoint and cover the whole write; bad values of the flag are refused.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

fn gridstore() -> &'static str {
    env!("CARGO_BIN_EXE_gridstore")
}

/// A new empty catalog in `dir`.
fn catalog(dir: &Path) -> String {
    let path = dir.join("catalog.sqlite");
    let _ = std::fs::remove_file(&path);
    ok(gridstore(), &["catalog", "init", s(&path)]);
    s(&path).to_string()
}

/// The content digest `gridstore verify` prints; verify must pass.
fn digest(store: &Path) -> String {
    let out = ok(gridstore(), &["verify", s(store)]);
    out.lines()
        .find_map(|l| l.strip_prefix("content digest: "))
        .unwrap_or_else(|| panic!("verify printed no digest:\n{out}"))
        .to_string()
}

/// Starts `gridstore ARGS... --shard I/N` for every I of `parts` at once; waits for all,
/// insists each succeeded, and returns their outputs in the order of `parts`.
fn run_parts(args: &[&str], n: u32, parts: &[u32]) -> Vec<String> {
    run_parts_with(&[], args, n, parts)
}

/// [`run_parts`] with the environment `env` (an S3 server's configuration).
fn run_parts_with(
    env: &[(&'static str, String)],
    args: &[&str],
    n: u32,
    parts: &[u32],
) -> Vec<String> {
    let children: Vec<(u32, Child)> = parts
        .iter()
        .map(|&i| {
            let child = cmd(gridstore())
                .envs(env.iter().cloned())
                .args(args)
                .args(["--shard", &format!("{i}/{n}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start gridstore");
            (i, child)
        })
        .collect();
    children
        .into_iter()
        .map(|(i, c)| {
            let out = c.wait_with_output().unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr),
            );
            assert!(
                out.status.success(),
                "part {i}/{n} of {args:?} failed:\n{stdout}{stderr}"
            );
            // Parts are tile-disjoint: one that lost a race goes on top of the winner, it
            // never has to start over.
            assert!(
                !stderr.contains("starting over"),
                "part {i}/{n} of {args:?}:\n{stderr}"
            );
            stdout
        })
        .collect()
}

/// Every part of `n`.
fn all_parts(n: u32) -> Vec<u32> {
    (0..n).collect()
}

/// The level-0 tiles an ingest's output says it changed (0 when it committed nothing).
fn tiles_changed(output: &str) -> usize {
    output
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(3)
        .find(|w| w[1] == "tiles" && w[2] == "changed;")
        .map_or(0, |w| w[0].parse().unwrap())
}

/// The level-0 tiles of its part a part of an ingest names, and of the whole plan.
fn part_tiles(output: &str) -> (usize, usize) {
    let line = output
        .lines()
        .find(|l| l.ends_with("level-0 tiles the files touch"))
        .unwrap_or_else(|| panic!("no part line in {output}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[2].parse().unwrap(), words[5].parse().unwrap())
}

/// Overlapping rasters with nodata and holes, some off the store grid by half a pixel and
/// one in another CRS, over about 19 x 15 tiles of 32 pixels (6 levels).
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for i in 0..8 {
        let f = dir.join(format!("f{i}.tif"));
        let (x0, y0) = (
            500000.0 + (i % 4) as f64 * 1300.0 + (i % 2) as f64 * 5.0,
            5000000.0 - (i / 4) as f64 * 1900.0 - (i % 3) as f64 * 400.0,
        );
        let (x0, y0, value) = (x0.to_string(), y0.to_string(), (i * 100).to_string());
        let mut args = vec!["make", s(&f), &x0, &y0, "230", "260", &value];
        args.extend(["--nodata", "-9999"]);
        if i % 3 == 0 {
            args.push("--hole");
        }
        python_ok("update_cases.py", &args);
        files.push(f);
    }
    let geo = dir.join("geo.tif");
    ok(
        "gdalwarp",
        &["-q", "-t_srs", "EPSG:4326", s(&files[5]), s(&geo)],
    );
    files.push(geo);
    files
}

/// The grid of the stores the sources go to (`gridstore create` options).
const GRID: &str = "--crs EPSG:32631 --origin 500000 5000000 --cell-size 10 --tile-size 32 \
                    --nodata -9999";

/// A new empty store on the sources' grid.
fn empty_store(path: &Path) {
    let mut args = vec!["create", s(path)];
    args.extend(GRID.split_whitespace());
    ok(gridstore(), &args);
}

fn ingest_args<'a>(store: &'a Path, files: &'a [PathBuf]) -> Vec<&'a str> {
    let mut args = vec!["ingest", "-q", "--threads", "2", s(store)];
    args.extend(files.iter().map(|f| s(f)));
    args
}

#[test]
fn parts_of_an_ingest_make_the_store_one_ingest_makes() {
    let dir = tmp();
    let files = sources(dir.path());
    let whole = dir.path().join("whole.gridstore");
    empty_store(&whole);
    let out = ok(gridstore(), &ingest_args(&whole, &files));
    let all_tiles = tiles_changed(&out);
    assert!(all_tiles > 200, "{out}");
    let (want_digest, want_sums) = (digest(&whole), checksums(s(&whole)));
    let levels = want_sums
        .iter()
        .map(|l| l.split(", ").count())
        .sum::<usize>();
    assert!(levels >= 6, "several levels: {want_sums:?}");

    for n in [1u32, 2, 4] {
        let store = dir.path().join(format!("parts{n}.gridstore"));
        empty_store(&store);
        let outs = run_parts(&ingest_args(&store, &files), n, &all_parts(n));
        // Disjoint parts covering the whole plan, balanced by tile count.
        let changed: Vec<usize> = outs.iter().map(|o| tiles_changed(o)).collect();
        assert_eq!(
            changed.iter().sum::<usize>(),
            all_tiles,
            "{n} parts: {outs:?}"
        );
        if n > 1 {
            let planned: Vec<(usize, usize)> = outs.iter().map(|o| part_tiles(o)).collect();
            let sum = planned.iter().map(|p| p.0).sum::<usize>();
            assert_eq!(sum, planned[0].1, "{n} parts: {outs:?}");
            let (lo, hi) = (planned.iter().min().unwrap(), planned.iter().max().unwrap());
            assert!(hi.0 - lo.0 <= 1, "{n} parts: {planned:?}");
        }
        assert_eq!(digest(&store), want_digest, "{n} parts");
        assert_eq!(checksums(s(&store)), want_sums, "{n} parts");
        let recorded = ok(
            gridstore(),
            &["catalog", "add", &catalog(dir.path()), "--store", s(&store)],
        );
        assert!(
            recorded.contains(&format!("added {} item", files.len())),
            "{n} parts: {recorded}"
        );
    }

    // One after another, the last part first: the extent, and with it the levels, grows
    // from the other corner.
    let store = dir.path().join("backward.gridstore");
    empty_store(&store);
    for i in (0..4).rev() {
        run_parts(&ingest_args(&store, &files), 4, &[i]);
    }
    assert_eq!(digest(&store), want_digest, "4 parts, last first");
    assert_eq!(checksums(s(&store)), want_sums, "4 parts, last first");

    // The comparison sees a missing part.
    let store = dir.path().join("missing.gridstore");
    empty_store(&store);
    run_parts(&ingest_args(&store, &files), 4, &[0, 1, 3]);
    assert_ne!(digest(&store), want_digest);
}

#[test]
fn parts_at_once_into_a_store_on_s3_make_the_store_one_ingest_makes() {
    let dir = tmp();
    let files = sources(dir.path());
    let whole = dir.path().join("whole.gridstore");
    empty_store(&whole);
    ok(gridstore(), &ingest_args(&whole, &files));
    let want = digest(&whole);
    let server = servers::moto("stores");
    let env = servers::s3_env(server.port);
    for n in [2u32, 4] {
        // Into an empty store (whose levels the parts together outgrow) and into one
        // holding the whole extent already (whose levels they keep).
        for (k, prefill) in [(0, false), (1, true)] {
            let vsi = format!("/vsis3/stores/parts{n}-{k}.gridstore");
            let mut create = vec!["create", &vsi];
            create.extend(GRID.split_whitespace());
            servers::ok_s3(&server, gridstore(), &create);
            if prefill {
                servers::ok_s3(&server, gridstore(), &ingest_args(Path::new(&vsi), &files));
            }
            run_parts_with(
                &env,
                &ingest_args(Path::new(&vsi), &files),
                n,
                &all_parts(n),
            );
            assert_eq!(remote_digest(&server, &vsi), want, "{n} parts into {vsi}");
            // Each part recorded the sources it read, and every list stayed in the chain of
            // lists however the commits raced.
            let add = ["catalog", "add", &catalog(dir.path()), "--store", &vsi];
            let recorded = servers::ok_s3(&server, gridstore(), &add);
            let all = format!("added {} item", files.len());
            assert!(recorded.contains(&all), "{n} parts into {vsi}: {recorded}");
            servers::checks_s3(&server, &["same", s(&whole), &format!("GRIDSTORE:{vsi}")]);
        }
    }
}

/// The content digest `gridstore verify` prints for a store on the S3 server.
fn remote_digest(server: &servers::Server, store: &str) -> String {
    let out = servers::ok_s3(server, gridstore(), &["verify", store]);
    assert!(out.contains("no problems"), "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("content digest: "))
        .unwrap_or_else(|| panic!("verify printed no digest:\n{out}"))
        .to_string()
}

/// Slices of 5-minute radar-like rasters with gaps in time, on 2024-01-01 from 00:00 to
/// 01:25: with blocks of 4 steps of 5 minutes, the parts of 2 and of 4 leave blocks that
/// only a later part closes.
fn time_slices(dir: &Path) -> Vec<PathBuf> {
    let times = [
        (0, 0),
        (0, 5),
        (0, 10),
        (0, 20),
        (0, 25),
        (1, 0),
        (1, 5),
        (1, 10),
        (1, 20),
        (1, 25),
    ];
    times
        .iter()
        .enumerate()
        .map(|(i, (h, m))| {
            let p = dir.join(format!("RAD_20240101{h:02}{m:02}.tif"));
            let seed = (i + 1).to_string();
            let mut args = vec!["tiff", s(&p), "150", "110", &seed];
            if i % 3 == 0 {
                args.push("--hole");
            }
            python_ok("time_slices.py", &args);
            p
        })
        .collect()
}

const RADAR: &str = "RAD_%Y%m%d%H%M.tif";

#[test]
fn parts_of_an_append_make_the_store_one_append_makes() {
    let dir = tmp();
    let slices = time_slices(dir.path());
    for axis in [&["--time-step", "PT5M"][..], &[]] {
        // The store is made once, from the first slice; every part is given all slices.
        let make = |path: &Path| {
            let mut args = vec!["append", "-q", s(path), "--time-pattern", RADAR];
            args.extend(["--co", "BLOCKSIZE=64", "--co", "SERIES_BLOCK=4"]);
            args.extend_from_slice(axis);
            args.push(s(&slices[0]));
            ok(gridstore(), &args);
        };
        let mut args = vec!["append", "-q", "--time-pattern", RADAR];
        args.extend(slices.iter().map(|p| s(p)));
        let with_store = |store: &Path| {
            let mut a = args.clone();
            a.insert(2, s(store));
            a.iter().map(|x| x.to_string()).collect::<Vec<_>>()
        };
        let whole = dir.path().join("whole.gridstore");
        make(&whole);
        let a = with_store(&whole);
        ok(
            gridstore(),
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let (want_digest, want_sums) = (digest(&whole), checksums(s(&whole)));
        let a = |store: &Path| with_store(store);
        for n in [1u32, 2, 4] {
            // All at once, then one after another in both orders (a scheduler with one
            // slot): which part commits last changes which blocks a part sees closed.
            let forward = all_parts(n);
            let backward: Vec<u32> = forward.iter().rev().copied().collect();
            let runs: Vec<Vec<&[u32]>> = vec![
                vec![&forward[..]],
                forward.chunks(1).collect(),
                backward.chunks(1).collect(),
            ];
            for (r, run) in runs.into_iter().enumerate() {
                let store = dir.path().join(format!("parts{n}-{r}.gridstore"));
                make(&store);
                let args = a(&store);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let outs: Vec<String> = run
                    .iter()
                    .flat_map(|parts| run_parts(&args, n, parts))
                    .collect();
                let added: usize = outs.iter().map(|o| steps_added(o)).sum();
                let what = format!("{axis:?}, {n} parts, run {r}: {outs:?}");
                assert_eq!(added, slices.len() - 1, "{what}");
                assert_eq!(digest(&store), want_digest, "{what}");
                assert_eq!(checksums(s(&store)), want_sums, "{what}");
                std::fs::remove_dir_all(&store).unwrap();
            }
        }
        // The comparison sees a missing part.
        let store = dir.path().join("missing.gridstore");
        make(&store);
        let a = with_store(&store);
        run_parts(
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
            4,
            &[0, 2, 3],
        );
        assert_ne!(digest(&store), want_digest, "{axis:?}");
        std::fs::remove_dir_all(&store).unwrap();
        std::fs::remove_dir_all(&whole).unwrap();
    }
}

/// The steps an append's output says it added.
fn steps_added(output: &str) -> usize {
    let at = output.find(" step(s) added").expect("a summary line");
    let start = output[..at]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    output[start..at].parse().unwrap()
}

#[test]
fn parts_of_an_append_refuse_what_they_cannot_write_apart() {
    let dir = tmp();
    let slices = time_slices(dir.path());
    let store = dir.path().join("t.gridstore");
    let part = |extra: &[&str], names: &[&PathBuf]| {
        let mut args = vec!["append", "-q", s(&store), "--time-pattern", RADAR];
        args.extend_from_slice(extra);
        args.extend(names.iter().map(|p| s(p)));
        args.extend(["--shard", "0/2"]);
        run(gridstore(), &args)
    };
    // No store yet: the parts would each try to make it.
    let err = failed_cleanly(&part(&["--time-step", "PT5M"], &[&slices[0], &slices[1]]));
    assert!(err.contains("without --shard to create it"), "{err}");
    assert!(!store.exists());
    ok(
        gridstore(),
        &[
            "append",
            "-q",
            s(&store),
            "--time-pattern",
            RADAR,
            "--time-step",
            "PT5M",
            "--time-origin",
            "2024-01-01T00:00:00Z",
            s(&slices[4]),
        ],
    );
    let before = digest(&store);
    // Slices out of time order.
    let err = failed_cleanly(&part(&[], &[&slices[6], &slices[5]]));
    assert!(
        err.contains("time order") && err.contains("--insert"),
        "{err}"
    );
    // A step of the store (minute 20) after the first time of the slices, not among them.
    let err = failed_cleanly(&part(&[], &[&slices[3], &slices[5]]));
    assert!(
        err.contains("store holds a step") && err.contains("--insert"),
        "{err}"
    );
    // The same time twice.
    let err = failed_cleanly(&part(&["--insert"], &[&slices[5], &slices[5]]));
    assert!(err.contains("given twice"), "{err}");
    assert_eq!(digest(&store), before, "nothing written");
    // With --insert, the parts put steps before the store's last one.
    let out = part(
        &["--insert"],
        &[&slices[1], &slices[2], &slices[3], &slices[5]],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_shard_values_are_refused() {
    let dir = tmp();
    let store = dir.path().join("s.gridstore");
    empty_store(&store);
    let f = dir.path().join("f.tif");
    python_ok(
        "update_cases.py",
        &["make", s(&f), "500000", "5000000", "40", "40", "1"],
    );
    let before = digest(&store);
    let cases = [
        ("4/4", "from 0 to 3"),
        ("1/0", "0 parts"),
        ("0/0", "0 parts"),
        ("3", "I/N"),
        ("a/2", "I/N"),
        ("-1/2", "I/N"),
        ("1/2/3", "I/N"),
        ("99999999999/2", "too large"),
    ];
    for (value, says) in cases {
        for command in ["ingest", "append"] {
            let out = run(
                gridstore(),
                &[command, s(&store), s(&f), &format!("--shard={value}")],
            );
            let err = failed_cleanly(&out);
            assert!(err.contains(says), "{command} --shard {value}: {err}");
        }
    }
    assert_eq!(digest(&store), before, "nothing written");
}
