//! `gridstore ingest`: many rasters into a store in one commit, with a progress bar.

use std::path::Path;

use anyhow::{bail, Context, Result};

use gridstore::gdal::crs::register_drivers;
use gridstore::gdal::ingest::{ingest_files, Checkpoints, FilesReport, IngestOptions};
use gridstore::gdal::placement::WarpResampling;
use gridstore::shard::Shard;
use gridstore::store::lock::LockWait;

pub struct IngestArgs<'a> {
    pub store: &'a Path,
    pub files: Vec<String>,
    pub from_list: Option<&'a Path>,
    pub resampling: &'a str,
    pub threads: usize,
    pub wait: LockWait,
    pub checkpoint_mb: u64,
    pub restart: bool,
    pub shard: Shard,
    pub no_sources: bool,
    pub quiet: bool,
}

/// Reads a list of files: one per line; blank lines and lines starting with `#` are skipped.
fn read_list(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the list of files", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

pub fn run(args: IngestArgs) -> Result<()> {
    let mut files = args.files;
    if let Some(list) = args.from_list {
        files.extend(read_list(list)?);
    }
    if files.is_empty() {
        bail!("no files to ingest: name them after the store, or give --from-list FILE");
    }
    register_drivers();
    let opts = IngestOptions {
        resampling: WarpResampling::from_name(args.resampling)?,
        threads: args.threads,
        wait: args.wait,
        record_sources: !args.no_sources,
    };
    let checkpoints = Checkpoints {
        bytes: args.checkpoint_mb.max(1) << 20,
        restart: args.restart,
    };
    let bar = super::progress_bar(args.quiet);
    let writer = match args.shard.is_whole() {
        true => format!("gridstore ingest ({} files)", files.len()),
        false => format!(
            "gridstore ingest ({} files, part {})",
            files.len(),
            args.shard
        ),
    };
    let report = ingest_files(
        args.store,
        &files,
        &opts,
        checkpoints,
        args.shard,
        &writer,
        &mut |f| {
            bar.set_position((f * 1000.0) as u64);
            true
        },
    );
    bar.finish_and_clear();
    print_report(&report?, files.len(), args.shard);
    Ok(())
}

/// What an ingest of `files` files (part `shard` of it) did, as lines for the user.
fn print_report(report: &FilesReport, files: usize, shard: Shard) {
    if let Some(r) = &report.recovered {
        println!("{}", r.describe());
    }
    if !shard.is_whole() {
        println!(
            "part {shard}: {} of the {} level-0 tiles the files touch",
            report.part_tiles, report.plan_tiles
        );
    }
    if report.already_done {
        println!(
            "these {files} file(s) were already ingested completely by an earlier run (the \
             current snapshot is its last commit); nothing to do. --restart ingests them again"
        );
        return;
    }
    if report.resumed_after > 0 {
        println!(
            "resumed an interrupted run of the same files: {} of {} checkpoint(s) had been \
             committed and were skipped",
            report.resumed_after, report.batches
        );
    }
    let part = match shard.is_whole() {
        true => String::new(),
        false => format!(" (part {shard})"),
    };
    match &report.committed {
        Some(m) => println!(
            "ingested {files} file(s){part}: {} tiles changed; now snapshot {}",
            report.tiles_changed, m.snapshot.id
        ),
        None if !shard.is_whole() => println!(
            "part {shard} of this ingest holds no data on the store grid; nothing committed"
        ),
        None if report.resumed_after > 0 => {
            println!("the rest of the files hold no data on the store grid; nothing more committed")
        }
        None => println!(
            "the {files} file(s) hold no data where they fall on the store grid; nothing committed"
        ),
    }
}
