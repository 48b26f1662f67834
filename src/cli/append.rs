//! `gridstore append` and `gridstore delete-time`: time steps into and out of a store.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use gridstore::dtype::DataType;
use gridstore::gdal::append::{
    append_part, Action, AppendOptions, AppendReport, AxisOptions, Packing,
};
use gridstore::gdal::crs::register_drivers;
use gridstore::gdal::ingest::IngestOptions;
use gridstore::gdal::placement::WarpResampling;
use gridstore::gdal::slice_time::TimeSource;
use gridstore::options::split_pairs;
use gridstore::shard::Shard;
use gridstore::store::delete_steps;
use gridstore::store::lock::LockWait;
use gridstore::time::BoundsSpec;

use super::from_catalog::{self, FromCatalog, Source};

/// The arguments of `gridstore append`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    gridstore append rain.gridstore RAD_*.tif --time-pattern 'RAD_%Y%m%d%H%M.tif' --time-step PT5M\n  \
    gridstore append stageiv.gridstore stageiv.nc   (times from the netCDF time axis)")]
pub struct AppendCmd {
    /// The store (created by the first slice if it does not exist)
    pub store: String,
    /// GDAL-readable slices, each one or more time steps
    #[arg(required_unless_present = "from_catalog")]
    pub slices: Vec<String>,
    #[command(flatten)]
    pub from_catalog: FromCatalog,
    /// The time of a slice that holds one step (ISO 8601)
    #[arg(long, conflicts_with_all = ["time_pattern", "time_item"])]
    pub time: Option<String>,
    /// Read each slice's time from its file name, e.g. 'RAD_%Y%m%d%H%M.tif'
    #[arg(long, value_name = "PATTERN", conflicts_with = "time_item")]
    pub time_pattern: Option<String>,
    /// Read each slice's time from this metadata item of the dataset
    #[arg(long, value_name = "KEY")]
    pub time_item: Option<String>,
    /// New store: the step of a regular axis (PT5M, PT1H, P1D, P1M, ...); none: irregular
    #[arg(long, value_name = "DURATION")]
    pub time_step: Option<String>,
    /// New store: the CF calendar (standard, proleptic_gregorian, noleap, all_leap, 360_day)
    #[arg(long)]
    pub calendar: Option<String>,
    /// New store: the CF units of the time values, e.g. 'minutes since 2020-01-01'
    #[arg(long)]
    pub units: Option<String>,
    /// New store: the instant of the axis's first tick
    #[arg(long, value_name = "ISO8601")]
    pub time_origin: Option<String>,
    /// New store: each step covers the interval of this length ending at its time
    #[arg(long, value_name = "DURATION")]
    pub accumulation: Option<String>,
    /// Convert slices to this type (a new store gets it)
    #[arg(long = "type", value_name = "TYPE")]
    pub data_type: Option<String>,
    /// Pack values as integers of --type: stored = round((value - offset) / scale)
    #[arg(long, allow_negative_numbers = true, requires = "data_type")]
    pub scale: Option<f64>,
    /// The offset of packed values (with --scale)
    #[arg(long, allow_negative_numbers = true, requires = "scale")]
    pub offset: Option<f64>,
    /// New store: creation options as with gdal_translate -co (BLOCKSIZE, COMPRESS, ...)
    #[arg(long = "co", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Replace steps the store already holds at the same time
    #[arg(long)]
    pub replace: bool,
    /// Allow steps before the last one (between existing steps, or in holes)
    #[arg(long)]
    pub insert: bool,
    /// Wait up to this many seconds for each slice to exist and stop growing
    #[arg(long, value_name = "SECONDS")]
    pub wait_for_slices: Option<u64>,
    /// Check everything and print the plan; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How slices not on the store grid are warped (gdalwarp -r names)
    #[arg(long, short = 'r', default_value = "nearest")]
    pub resampling: String,
    /// Do not compact the blocks of time steps the slices close into time blocks
    /// afterwards (by default a commit of its own; `gridstore compact` does it later)
    #[arg(long)]
    pub no_compact: bool,
    /// Do not record the slices among the store's sources (docs/CATALOG.md)
    #[arg(long)]
    pub no_sources: bool,
    /// Write only part I of N parts of these slices (I from 0 to N-1; each slice whole, in
    /// runs of time order), so that N processes started with the same arguments append
    /// them together into an existing store
    #[arg(long, value_name = "I/N", value_parser = super::shard_arg)]
    pub shard: Option<Shard>,
    /// No progress bar
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl AppendCmd {
    fn time_source(&self, from_catalog: &[Source]) -> TimeSource {
        match (&self.time, &self.time_pattern, &self.time_item) {
            (Some(t), _, _) => TimeSource::Fixed(t.clone()),
            (_, Some(p), _) => TimeSource::Pattern(p.clone()),
            (_, _, Some(k)) => TimeSource::Item(k.clone()),
            _ if !from_catalog.is_empty() => TimeSource::PerSlice(
                from_catalog
                    .iter()
                    .map(|s| (s.path.clone(), from_catalog::instant(s)))
                    .collect(),
            ),
            _ => TimeSource::Metadata,
        }
    }
}

pub fn run(store: &Path, mut cmd: AppendCmd, threads: usize, wait: LockWait) -> Result<()> {
    register_drivers();
    let catalogued = cmd.from_catalog.sources()?.unwrap_or_default();
    cmd.slices.extend(catalogued.iter().map(|s| s.path.clone()));
    let opts = AppendOptions {
        time: cmd.time_source(&catalogued),
        axis: AxisOptions {
            step: cmd.time_step.clone(),
            calendar: cmd.calendar.clone(),
            units: cmd.units.clone(),
            origin: cmd.time_origin.clone(),
            bounds: cmd.accumulation.clone().map(|before| BoundsSpec {
                before,
                after: "PT0S".into(),
            }),
        },
        create: split_pairs(&cmd.options),
        data_type: cmd
            .data_type
            .as_deref()
            .map(DataType::from_name)
            .transpose()?,
        packing: cmd.scale.map(|scale| Packing {
            scale,
            offset: cmd.offset.unwrap_or(0.0),
        }),
        replace: cmd.replace,
        insert: cmd.insert,
        ingest: IngestOptions {
            resampling: WarpResampling::from_name(&cmd.resampling)?,
            threads,
            wait,
            record_sources: !cmd.no_sources,
        },
        wait_for_slices: cmd.wait_for_slices.map(Duration::from_secs),
        dry_run: cmd.dry_run,
        compact: !cmd.no_compact,
    };
    let bar = super::progress_bar(cmd.quiet || cmd.dry_run);
    let shard = cmd.shard.unwrap_or(Shard::WHOLE);
    let report = append_part(store, &cmd.slices, &opts, shard, &mut |f| {
        bar.set_position((f * 1000.0) as u64);
        true
    });
    bar.finish_and_clear();
    print_report(store, &cmd, &report?);
    Ok(())
}

fn print_report(store: &Path, cmd: &AppendCmd, r: &AppendReport) {
    if let Some(rec) = &r.recovered {
        println!("{}", rec.describe());
    }
    let count = |a: Action| r.steps.iter().filter(|s| s.action == a).count();
    if let Some(shard) = cmd.shard.filter(|s| !s.is_whole()) {
        let slices: std::collections::BTreeSet<usize> = r.steps.iter().map(|s| s.slice).collect();
        println!(
            "part {shard} of the {} slice(s): {} slice(s)",
            cmd.slices.len(),
            slices.len()
        );
    }
    if cmd.dry_run {
        println!("plan for {} (nothing written):", store.display());
        for s in &r.steps {
            let what = match s.action {
                Action::Add => "add",
                Action::Replace => "replace",
                Action::Skip => "skip (already in)",
            };
            println!("  {} {what} from {}", s.at, cmd.slices[s.slice]);
        }
    }
    println!(
        "{}{} step(s) added, {} replaced, {} already in; the store holds {} step(s){}",
        if r.creates && !cmd.dry_run {
            "created the store; "
        } else {
            ""
        },
        count(Action::Add),
        count(Action::Replace),
        count(Action::Skip),
        r.axis.steps,
        match r.committed.last() {
            Some(id) => format!("; now snapshot {id}"),
            None => String::new(),
        }
    );
    let c = &r.compacted;
    if let Some(id) = c.snapshot {
        println!(
            "compacted {} closed block(s) of time steps into {} time block(s); now snapshot {id}",
            c.blocks, c.chunks
        );
    }
}

/// `gridstore delete-time STORE TIME...`.
pub fn delete_time(store: &Path, times: &[String], wait: LockWait) -> Result<()> {
    if times.is_empty() {
        bail!("name the times to delete (ISO 8601)");
    }
    let m = delete_steps(store, times, wait)?;
    println!(
        "deleted {} step(s); the store holds {} step(s); now snapshot {} (earlier snapshots \
         keep the steps: `gridstore rollback` brings them back)",
        times.len(),
        m.time.as_ref().map_or(0, |t| t.steps),
        m.snapshot.id
    );
    Ok(())
}
