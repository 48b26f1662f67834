//! Command-line interface: argument definitions and dispatch to one module per command.

mod info;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use gridstore::store::maintenance::{history, remove_store, verify};
use gridstore::store::{resolve_store_path, Snapshot};

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
    /// List the snapshots of a store, newest first
    Log { store: String },
    /// Delete a store and everything in it
    Rm { store: String },
}

fn store_path(name: &str) -> PathBuf {
    resolve_store_path(name)
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        Command::Info { store, json } => {
            let snapshot = Snapshot::open(&store_path(&store), None)?;
            if json {
                println!(
                    "{}",
                    String::from_utf8_lossy(&snapshot.manifest().to_json())
                );
            } else {
                print!("{}", info::describe(&snapshot));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { store, snapshot } => {
            let snap = Snapshot::open(&store_path(&store), snapshot)?;
            let report = verify(&snap)?;
            for p in &report.problems {
                println!("DAMAGED {}: {}", p.object, p.detail);
            }
            println!(
                "checked snapshot {}: {} index nodes, {} tiles, {} bytes of chunks: {}",
                snap.manifest().snapshot.id,
                report.nodes_checked,
                report.tiles_checked,
                report.bytes_checked,
                if report.problems.is_empty() {
                    "no problems".to_string()
                } else {
                    format!("{} problem(s)", report.problems.len())
                }
            );
            Ok(if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Log { store } => {
            for s in history(&store_path(&store))? {
                println!(
                    "{:>6}  {}  +{} -{} tiles  {}",
                    s.id, s.created, s.tiles_written, s.tiles_removed, s.writer
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rm { store } => {
            let path = store_path(&store);
            remove_store(&path)?;
            println!("removed {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
