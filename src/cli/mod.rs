//! Command-line interface: argument definitions and dispatch to one module per command.

mod append;
mod catalog;
mod create;
mod from_catalog;
mod history;
mod info;
mod ingest;
mod refs;
mod series;
mod stac;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use gridstore::options::{parse_lock_wait, parse_threads};
use gridstore::shard::Shard;
use gridstore::store::lock::LockWait;
use gridstore::store::maintenance::{remove_store, verify};
use gridstore::store::{compact, resolve_store_path, Closed, Snapshot};

#[derive(Parser)]
#[command(
    name = "gridstore",
    version,
    about = "A chunked, multi-resolution store for gridded data that GDAL tools open directly",
    after_help = "Create a store with: gdal_translate -of GRIDSTORE input.tif output.gridstore"
)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a store's grid, extent, levels, bands and size
    Info {
        /// The store (its directory, or its gridstore.json)
        store: String,
        /// Print the manifest as JSON instead
        #[arg(long)]
        json: bool,
    },
    /// Check every object of a snapshot (present, size, checksum); changes nothing
    Verify {
        store: String,
        /// Check this snapshot instead of the current one
        #[arg(long)]
        snapshot: Option<u64>,
    },
    /// List the snapshots of a store, newest first: when, what wrote them, tiles changed
    Log { store: String },
    /// Make an earlier snapshot the current state again (a new commit: nothing is lost)
    Rollback {
        store: String,
        /// The snapshot to bring back, as listed by `gridstore log`
        #[arg(long, value_name = "ID")]
        to: u64,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Remove snapshots beyond the newest N, and every object no kept snapshot uses
    Gc {
        store: String,
        /// How many of the newest snapshots to keep (the current one included)
        #[arg(long, value_name = "N")]
        keep: usize,
        /// On object storage, where writers take no lock: keep every snapshot that was
        /// current less than this long ago, and every object of a write that started less
        /// than this long ago (a write in flight)
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Remove what a failed or killed write left behind (the next writer does it too)
    Repair {
        store: String,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Delete a store and everything in it
    Rm {
        store: String,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Add rasters of any CRS to a store in one commit; where they overlap, later files win
    Ingest(IngestCmd),
    /// Append time slices to a store (creating it from the first), one commit per slice
    Append {
        #[command(flatten)]
        cmd: Box<append::AppendCmd>,
        /// Worker threads, 1 to 1024 [default: all cores; at least 16 for a store on the network]
        #[arg(long, value_parser = threads_arg)]
        threads: Option<usize>,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Remove time steps from a store (earlier snapshots keep them)
    DeleteTime {
        store: String,
        /// The times of the steps to remove (ISO 8601)
        #[arg(required = true)]
        times: Vec<String>,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Index sources by place, time and properties, and search them (a SQLite file or a
    /// PostgreSQL database)
    Catalog(catalog::CatalogCmd),
    /// Print one point's values over the time steps of a store (CSV or JSON)
    Series(series::SeriesCmd),
    /// Write kerchunk references (JSON) through which xarray, zarr and fsspec read a
    /// snapshot of the store as Zarr arrays, one group per level, without GDAL
    Refs(refs::RefsCmd),
    /// Write a STAC Collection, one Item per time step and an ItemCollection for a store
    #[command(after_help = "Example: gridstore stac rain.gridstore -o rain-stac\n\
        Then: cd rain-stac && gdalinfo STACIT:\"item-collection.json\" (GDAL 3.6 opens \
        relative hrefs from the working directory; see docs/STAC.md)")]
    Stac(stac::StacCmd),
    /// Copy every closed block of time steps into time blocks, which point series read
    /// fast (one commit; `gridstore append` does it after its slices)
    #[command(
        after_help = "A block of steps is closed when the axis's last step is at or \
        after its last tick. Blocks span the store's time.series_block ticks (128 unless \
        set at creation); a store made before time blocks gets 128 in this commit."
    )]
    Compact {
        store: String,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Make an empty store on an explicit grid
    #[command(
        after_help = "Example: a national grid at 0.5 m, tiles of 512 pixels:\n  \
        gridstore create dop.gridstore --crs EPSG:25832 --origin 280000 6100000 \\\n    \
        --cell-size 0.5 --bands 3 --type Byte"
    )]
    Create(create::CreateCmd),
}

/// `gridstore ingest`'s arguments.
#[derive(clap::Args)]
struct IngestCmd {
    /// The store to add to (create it with `gridstore create` or gdal_translate)
    store: String,
    /// GDAL-readable rasters, in the order they apply
    files: Vec<String>,
    /// Also read file names from this file, one per line
    #[arg(long, value_name = "FILE")]
    from_list: Option<PathBuf>,
    #[command(flatten)]
    from_catalog: from_catalog::FromCatalog,
    /// How sources not on the store grid are warped (gdalwarp -r names)
    #[arg(long, short = 'r', default_value = "nearest")]
    resampling: String,
    /// Worker threads, 1 to 1024 [default: all cores; at least 16 for a store on the network]
    #[arg(long, value_parser = threads_arg)]
    threads: Option<usize>,
    #[command(flatten)]
    wait: WaitArg,
    /// Commit after about this many MB of tiles, so an interrupted run resumes from
    /// there when started again with the same files
    #[arg(long, value_name = "MB", default_value_t = gridstore::gdal::ingest::DEFAULT_CHECKPOINT_MB,
          value_parser = clap::value_parser!(u64).range(1..=MAX_CHECKPOINT_MB))]
    checkpoint_mb: u64,
    /// Start from the first file even if an interrupted run of the same files can resume
    #[arg(long)]
    restart: bool,
    /// Write only part I of N tile-disjoint parts of this ingest (I from 0 to N-1), so
    /// that N processes started with the same arguments write it together
    #[arg(long, value_name = "I/N", value_parser = shard_arg)]
    shard: Option<Shard>,
    /// Do not record the files among the store's sources (docs/CATALOG.md)
    #[arg(long)]
    no_sources: bool,
    /// No progress bar
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// What a write does when another writer holds the store.
#[derive(clap::Args, Clone, Copy)]
struct WaitArg {
    /// If another writer holds the store, wait up to this many seconds for it (0, the
    /// default: fail at once, naming the holder; a part of a write given --shard waits up
    /// to a week unless told otherwise)
    #[arg(long = "wait", value_name = "SECONDS", value_parser = wait_arg)]
    given: Option<LockWait>,
}

impl WaitArg {
    /// The policy given, or failing at once.
    fn policy(self) -> LockWait {
        self.given.unwrap_or(LockWait::Fail)
    }

    /// The policy given; without one, what a write split by `--shard` does: the parts of
    /// one write are started together and take the lock one after another, so a part
    /// waits for the others rather than failing.
    fn policy_for(self, shard: Option<Shard>) -> LockWait {
        match (self.given, shard) {
            (Some(p), _) => p,
            (None, Some(_)) => LockWait::Wait(SHARD_LOCK_WAIT),
            (None, None) => LockWait::Fail,
        }
    }
}

/// How long a part of a write split by `--shard` waits for the lock unless `--wait` says
/// otherwise: a week.
const SHARD_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// `--shard I/N`.
fn shard_arg(v: &str) -> Result<Shard, String> {
    v.parse::<Shard>().map_err(|e| e.to_string())
}

/// Largest `--checkpoint-mb`: 1 TiB of tiles between commits (the count is shifted into
/// bytes).
const MAX_CHECKPOINT_MB: u64 = 1 << 20;

/// `--threads`, checked as `NUM_THREADS` is.
fn threads_arg(v: &str) -> Result<usize, String> {
    parse_threads(v).map_err(|e| e.to_string())
}

/// `--wait`, checked as `LOCK_TIMEOUT` is.
fn wait_arg(v: &str) -> Result<LockWait, String> {
    parse_lock_wait(Some(v)).map_err(|e| e.to_string())
}

/// The progress bar with ETA of the commands that write (hidden with `--quiet`).
fn progress_bar(hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{wide_bar}] {percent:>3}% ETA {eta}",
        )
        .expect("valid template"),
    );
    bar
}

fn store_path(name: &str) -> PathBuf {
    resolve_store_path(name)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let done = match args.command {
        // The one command whose exit status says more than success or failure.
        Command::Verify { store, snapshot } => return run_verify(&store_path(&store), snapshot),
        Command::Info { store, json } => show_info(&store_path(&store), json),
        Command::Log { store } => history::log(&store_path(&store)),
        Command::Rollback { store, to, wait } => {
            history::run_rollback(&store_path(&store), to, wait.policy())
        }
        Command::Gc {
            store,
            keep,
            grace,
            wait,
        } => history::run_gc(&store_path(&store), keep, grace, wait.policy()),
        Command::Repair { store, wait } => history::run_repair(&store_path(&store), wait.policy()),
        Command::Ingest(cmd) => run_ingest(cmd),
        Command::Create(cmd) => create::run(cmd),
        Command::Append { cmd, threads, wait } => {
            let store = store_path(&cmd.store);
            let threads = threads.unwrap_or_else(|| gridstore::options::default_threads(&store));
            let wait = wait.policy_for(cmd.shard);
            append::run(&store, *cmd, threads, wait)
        }
        Command::DeleteTime { store, times, wait } => {
            append::delete_time(&store_path(&store), &times, wait.policy())
        }
        Command::Compact { store, wait } => run_compact(&store_path(&store), wait.policy()),
        Command::Refs(cmd) => refs::run(&store_path(&cmd.store), &cmd),
        Command::Stac(cmd) => stac::run(&cmd),
        Command::Catalog(cmd) => catalog::run(cmd),
        Command::Series(cmd) => series::run(&store_path(&cmd.store), &cmd),
        Command::Rm { store, wait } => {
            let path = store_path(&store);
            remove_store(&path, wait.policy())?;
            println!("removed {}", path.display());
            Ok(())
        }
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// `gridstore ingest`: the files named, listed and found in a catalog, into the store.
fn run_ingest(cmd: IngestCmd) -> Result<()> {
    let IngestCmd {
        store,
        mut files,
        from_list,
        from_catalog,
        resampling,
        threads,
        wait,
        checkpoint_mb,
        restart,
        shard,
        no_sources,
        quiet,
    } = cmd;
    let store = store_path(&store);
    let catalogued = from_catalog.sources()?.unwrap_or_default();
    files.extend(catalogued.into_iter().map(|s| s.path));
    ingest::run(ingest::IngestArgs {
        store: &store,
        files,
        from_list: from_list.as_deref(),
        resampling: &resampling,
        threads: threads.unwrap_or_else(|| gridstore::options::default_threads(&store)),
        wait: wait.policy_for(shard),
        checkpoint_mb,
        restart,
        shard: shard.unwrap_or(Shard::WHOLE),
        no_sources,
        quiet,
    })
}

/// `gridstore info`: the store's description, or its manifest as JSON.
fn show_info(store: &Path, json: bool) -> Result<()> {
    let snapshot = Snapshot::open(store, None)?;
    match json {
        true => println!(
            "{}",
            String::from_utf8_lossy(&snapshot.manifest().to_json())
        ),
        false => print!("{}", info::describe(&snapshot)),
    }
    Ok(())
}

/// `gridstore verify`: every damaged object, the content digest and a summary; fails when
/// anything is damaged.
fn run_verify(store: &Path, snapshot: Option<u64>) -> Result<ExitCode> {
    let snap = Snapshot::open(store, snapshot)?;
    let report = verify(&snap)?;
    for p in &report.problems {
        println!("DAMAGED {}: {}", p.object, p.detail);
    }
    println!("content digest: {}", report.content_digest);
    let problems = match report.problems.len() {
        0 => "no problems".to_string(),
        n => format!("{n} problem(s)"),
    };
    println!(
        "checked snapshot {}: {} index nodes, {} tiles, {} bytes of chunks: {problems}",
        snap.manifest().snapshot.id,
        report.nodes_checked,
        report.tiles_checked,
        report.bytes_checked,
    );
    Ok(match report.problems.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

/// `gridstore compact`: the closed blocks of time steps, each into time blocks.
fn run_compact(store: &Path, wait: LockWait) -> Result<()> {
    let c = compact(store, Closed::All, wait)?;
    match c.snapshot {
        Some(id) => println!(
            "compacted {} block(s) of time steps into {} time block(s); now snapshot {id}",
            c.blocks, c.chunks
        ),
        None => println!(
            "{}: no closed block of time steps to compact",
            store.display()
        ),
    }
    Ok(())
}
