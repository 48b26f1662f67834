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
    #[arg(long, value_name = "REFS_HREF", conflicts_with = "with_refs")]
    pub refs: Option<String>,
    /// Also write the snapshot's kerchunk references to DIR/references.json (as
    /// `gridstore refs` does) and add them as each item's `references` asset
    #[arg(long)]
    pub with_refs: bool,
    /// The data's licence: an SPDX expression, or "other"
    #[arg(long, default_value = "other")]
    pub license: String,
    /// Export this snapshot instead of the current one
    #[arg(long)]
    pub snapshot: Option<u64>,
}

/// The file `--with-refs` writes into DIR.
const REFERENCES: &str = "references.json";

pub fn run(cmd: &StacCmd) -> Result<()> {
    gridstore::gdal::crs::register_drivers();
    let store = super::store_path(&cmd.store);
    let snapshot = Snapshot::open(&store, cmd.snapshot)?;
    let refs = match cmd.with_refs {
        true => {
            std::fs::create_dir_all(&cmd.output)?;
            super::refs::write_beside(&store, &snapshot, &cmd.output.join(REFERENCES))?;
            Some(REFERENCES)
        }
        false => cmd.refs.as_deref(),
    };
    let done = export(
        &snapshot,
        &ExportOptions {
            out_dir: &cmd.output,
            href_base: cmd.href_base.as_deref(),
            refs,
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
