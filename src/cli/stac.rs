//! `gridstore stac`: writes a STAC Collection, Items and an ItemCollection for a store.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use gridstore::stac::{export, ExportOptions};
use gridstore::store::Snapshot;

#[derive(Args)]
pub struct StacCmd {
    /// The store (a directory, its gridstore.json, or a /vsis3/... path)
    pub store: String,
    /// The directory to write collection.json, items/ and item-collection.json into
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: PathBuf,
    /// Where DIR will be published (a URL or an absolute path): hrefs are then absolute
    /// under it; without it they are relative to the file that holds them
    #[arg(long, value_name = "URL")]
    pub href_base: Option<String>,
    /// The href of the store's kerchunk references (`gridstore refs`), relative to DIR
    /// unless a URL or an absolute path: added as each item's `references` asset
    #[arg(long, value_name = "REFS_HREF")]
    pub refs: Option<String>,
    /// The data's licence: an SPDX expression, or "other"
    #[arg(long, default_value = "other")]
    pub license: String,
    /// Export this snapshot instead of the current one
    #[arg(long)]
    pub snapshot: Option<u64>,
}

pub fn run(cmd: &StacCmd) -> Result<()> {
    gridstore::gdal::crs::register_drivers();
    let snapshot = Snapshot::open(&super::store_path(&cmd.store), cmd.snapshot)?;
    let done = export(
        &snapshot,
        &ExportOptions {
            out_dir: &cmd.output,
            href_base: cmd.href_base.as_deref(),
            refs: cmd.refs.as_deref(),
            license: &cmd.license,
        },
    )?;
    println!(
        "wrote {} item(s), {} and {}",
        done.items,
        done.collection.display(),
        done.item_collection.display()
    );
    Ok(())
}
