//! STAC export of a store (`gridstore stac`): a STAC 1.1.0 Collection for the store, one
//! Item per time step (or one for a store without time), and an ItemCollection of all the
//! items, which GDAL's STACIT driver opens as a mosaic.
//!
//! - [`model`]: the documents, as serde structs.
//! - [`footprint`]: EPSG codes and footprints in EPSG:4326 (GDAL).
//! - [`hrefs`]: relative or absolute hrefs, and the driver's connection strings.
//! - [`facts`]: what the documents say about the store, read once from its snapshot.
//! - [`items`], [`collection`]: the documents built from those facts.
//!
//! Everything is read through the snapshot's storage, so a store on `/vsis3/` exports as a
//! local one does; the documents are written to a local directory.

pub mod collection;
pub mod facts;
pub mod footprint;
pub mod hrefs;
pub mod items;
pub mod model;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::Snapshot;

pub use facts::StoreFacts;
use hrefs::Hrefs;

/// What `gridstore stac` was asked for.
#[derive(Debug, Clone)]
pub struct ExportOptions<'a> {
    /// The output directory (created if missing).
    pub out_dir: &'a Path,
    /// Where the output directory is published: hrefs are absolute under it.
    pub href_base: Option<&'a str>,
    /// The href of the store's kerchunk references, relative to the output directory
    /// unless it is a URL or an absolute path.
    pub refs: Option<&'a str>,
    /// The data's licence (an SPDX expression, or "other").
    pub license: &'a str,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub collection: PathBuf,
    pub item_collection: PathBuf,
    pub items: u64,
}

/// Items written per page of the time axis: memory stays bounded however many steps.
const STEPS_PER_PAGE: usize = 4096;

/// Writes `collection.json`, `items/<id>.json` and `item-collection.json` for `snapshot`.
pub fn export(snapshot: &Snapshot, opts: &ExportOptions) -> Result<Exported> {
    let items_dir = opts.out_dir.join("items");
    std::fs::create_dir_all(&items_dir).map_err(|e| Error::Io {
        path: items_dir.clone(),
        action: "create",
        cause: e,
    })?;
    let hrefs = Hrefs::new(opts.out_dir, opts.href_base)?;
    let facts = StoreFacts::read(snapshot, opts.refs, &hrefs)?;
    let listing = opts.out_dir.join("item-collection.json");
    let mut list = ListWriter::create(&listing, &items::item_collection_links(&hrefs)?)?;
    let mut ids = Vec::new();
    let mut write_item = |t: Option<u32>| -> Result<()> {
        let own = items::item(&facts, &hrefs, t, "items")?;
        let path = items_dir.join(format!("{}.json", own.id));
        write_json(&path, &own)?;
        list.push(&items::item(&facts, &hrefs, t, "")?)?;
        ids.push((own.id, own.properties.datetime));
        Ok(())
    };
    match facts.time_range() {
        None => write_item(None)?,
        Some((first, last)) => {
            let mut from = first;
            loop {
                let page = snapshot.steps(from, last, STEPS_PER_PAGE)?;
                for &t in &page {
                    write_item(Some(t))?;
                }
                match page.last() {
                    Some(&t) if page.len() == STEPS_PER_PAGE && t < last => from = t + 1,
                    _ => break,
                }
            }
        }
    }
    list.finish()?;
    let path = opts.out_dir.join("collection.json");
    write_json(
        &path,
        &collection::collection(&facts, &hrefs, &ids, opts.license)?,
    )?;
    Ok(Exported {
        collection: path,
        item_collection: listing,
        items: ids.len() as u64,
    })
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        action: "write",
        cause: e,
    }
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
    text.push(b'\n');
    std::fs::write(path, text).map_err(|e| io_error(path, e))
}

/// Writes a FeatureCollection one feature at a time.
struct ListWriter {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    count: u64,
}

impl ListWriter {
    fn create(path: &Path, links: &[model::Link]) -> Result<ListWriter> {
        let file = std::fs::File::create(path).map_err(|e| io_error(path, e))?;
        let mut w = ListWriter {
            path: path.to_path_buf(),
            out: std::io::BufWriter::new(file),
            count: 0,
        };
        let links = serde_json::to_string(links).expect("links serialize");
        w.write(
            format!("{{\"type\": \"FeatureCollection\", \"links\": {links}, \"features\": [\n")
                .as_bytes(),
        )?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| io_error(&self.path, e))
    }

    fn push(&mut self, item: &model::Item) -> Result<()> {
        if self.count > 0 {
            self.write(b",\n")?;
        }
        let text = serde_json::to_vec(item).expect("items serialize");
        self.write(&text)?;
        self.count += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.write(b"\n]}\n")?;
        self.out.flush().map_err(|e| io_error(&self.path, e))
    }
}
