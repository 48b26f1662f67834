//! Ingesting GDAL rasters into an existing store: one open dataset (what `gdal_translate`
//! hands the driver), or many files (`gridstore ingest`), each placed on the store grid and
//! merged by [`crate::ingest::merge`].

use std::collections::VecDeque;
use std::ffi::CString;
use std::path::Path;

use gdal_sys::GDALDatasetH;

use crate::error::{Error, Result};
use crate::grid::{PixelRect, TileLoc};
use crate::ingest::{merge, PlacedSource, Scratch, SourceSet};
use crate::manifest::Manifest;
use crate::store::lock::LockWait;
use crate::store::Transaction;
use crate::tile::{BandValidity, Tile};

use super::cpl::last_error_message;
use super::placement::{place, Placed, WarpResampling};
use super::source::{describe, GdalSource};

/// How an ingest into an existing store runs.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    pub resampling: WarpResampling,
    /// Encoder threads, and reader threads for file lists.
    pub threads: usize,
    pub wait: LockWait,
}

/// What an ingest did.
#[derive(Debug, Clone)]
pub struct IngestReport {
    pub tiles_changed: usize,
    /// The committed manifest, or `None` when no source held any data (nothing committed).
    pub committed: Option<Manifest>,
}

/// A source placed on the store grid, ready to lay over tiles.
struct Prepared {
    // Field order matters: the placed view (maybe a warped VRT over `_opened`) closes
    // before the dataset it reads.
    reader: PlacedSource<GdalSource>,
    _placed: Placed,
    _opened: Option<OpenedDataset>,
}

impl Prepared {
    /// # Safety
    /// `ds` must be valid, outlive the value, and be used by no other thread meanwhile.
    unsafe fn new(
        ds: GDALDatasetH,
        opened: Option<OpenedDataset>,
        m: &Manifest,
        resampling: WarpResampling,
    ) -> Result<Prepared> {
        // SAFETY (block): forwarded contract; the placed dataset lives in the same value.
        unsafe {
            let info = describe(ds)?;
            let placed = place(ds, &info, m, resampling)?;
            let n = info.bands.len();
            let view = if placed.is_warped() {
                // The warped view adds an alpha band (where the source has data) after the
                // source's bands; the mask reads it, the pixel reads do not.
                let mut view = describe(placed.ds)?;
                view.bands.truncate(n);
                view
            } else {
                info
            };
            let nodata = view.bands.iter().map(|b| b.nodata).collect();
            let mut source = GdalSource::new(placed.ds, &view).reading_as(m.data_type);
            if placed.is_warped() {
                source = source.with_mask_band(n);
            }
            Ok(Prepared {
                reader: PlacedSource {
                    source,
                    x0: placed.x0,
                    y0: placed.y0,
                    nodata,
                },
                _placed: placed,
                _opened: opened,
            })
        }
    }

    fn footprint(&self) -> PixelRect {
        self.reader.footprint()
    }
}

// Open flags of gdal.h (macros, so not in the generated bindings).
const GDAL_OF_RASTER: u32 = 0x02;
const GDAL_OF_VERBOSE_ERROR: u32 = 0x40;

/// A dataset this module opened, closed when dropped.
struct OpenedDataset(GDALDatasetH);

impl OpenedDataset {
    fn open(path: &str) -> Result<OpenedDataset> {
        let c = CString::new(path).map_err(|_| {
            Error::InvalidInput(format!("{path:?}: a file name cannot contain NUL"))
        })?;
        // SAFETY: NUL-terminated name; null option lists are allowed.
        let ds = unsafe {
            gdal_sys::GDALOpenEx(
                c.as_ptr(),
                GDAL_OF_RASTER | GDAL_OF_VERBOSE_ERROR,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if ds.is_null() {
            return Err(Error::InvalidInput(format!(
                "{path}: cannot open it as a raster: {}",
                last_error_message()
            )));
        }
        Ok(OpenedDataset(ds))
    }
}

impl Drop for OpenedDataset {
    fn drop(&mut self) {
        // SAFETY: opened by `open`, closed once.
        unsafe { gdal_sys::GDALClose(self.0) };
    }
}

// SAFETY: each handle is used by one thread at a time: it moves with the reader that owns it.
unsafe impl Send for OpenedDataset {}
unsafe impl Send for Prepared {}

/// Reusable per-thread state for laying sources over tiles.
struct Overlayer {
    validity: Vec<BandValidity>,
    scratch: Scratch,
}

/// The one dataset `gdal_translate` passes, read by one thread.
struct OneDataset {
    prepared: Prepared,
    overlay: Overlayer,
}

impl SourceSet for OneDataset {
    fn overlay(&mut self, _: usize, loc: TileLoc, tile: &mut Tile) -> Result<Option<PixelRect>> {
        let o = &mut self.overlay;
        self.prepared
            .reader
            .overlay(loc, tile, &o.validity, &mut o.scratch)
    }
}

/// Merges an open dataset into the store at `root` and commits.
///
/// # Safety
/// `ds` must be valid for the call and used by no other thread meanwhile.
pub unsafe fn ingest_dataset(
    root: &Path,
    ds: GDALDatasetH,
    opts: &IngestOptions,
    writer: &str,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<IngestReport> {
    let mut txn = Transaction::begin(root, writer, opts.wait)?;
    // SAFETY: forwarded contract.
    let prepared = unsafe { Prepared::new(ds, None, &txn.manifest, opts.resampling)? };
    let footprint = prepared.footprint();
    let reader = OneDataset {
        prepared,
        overlay: Overlayer {
            validity: txn.manifest.validity(),
            scratch: Scratch::default(),
        },
    };
    let report = merge(
        &mut txn,
        &[footprint],
        vec![Box::new(reader)],
        opts.threads,
        progress,
    )?;
    finish(txn, report.tiles_changed)
}

fn finish(txn: Transaction, tiles_changed: usize) -> Result<IngestReport> {
    if tiles_changed == 0 {
        txn.abort();
        return Ok(IngestReport {
            tiles_changed,
            committed: None,
        });
    }
    Ok(IngestReport {
        tiles_changed,
        committed: Some(txn.commit()?),
    })
}

/// Files read by one reader thread, opened when first needed; a few stay open.
struct FileSet<'a> {
    paths: &'a [String],
    manifest: &'a Manifest,
    resampling: WarpResampling,
    open: VecDeque<(usize, Prepared)>,
    overlay: Overlayer,
}

/// How many files one reader keeps open: tiles come in Z-order, so a file's tiles are
/// mostly read together, and a handful of open files covers the neighbourhood.
const OPEN_FILES_PER_READER: usize = 16;

impl SourceSet for FileSet<'_> {
    fn overlay(
        &mut self,
        source: usize,
        loc: TileLoc,
        tile: &mut Tile,
    ) -> Result<Option<PixelRect>> {
        let at = match self.open.iter().position(|(i, _)| *i == source) {
            Some(at) => at,
            None => {
                if self.open.len() >= OPEN_FILES_PER_READER {
                    self.open.pop_front();
                }
                let opened = OpenedDataset::open(&self.paths[source])?;
                let ds = opened.0;
                // SAFETY: `opened` moves into the same value, so `ds` outlives the view; this
                // reader is its only user.
                let p = unsafe { Prepared::new(ds, Some(opened), self.manifest, self.resampling)? };
                self.open.push_back((source, p));
                self.open.len() - 1
            }
        };
        let o = &mut self.overlay;
        self.open[at]
            .1
            .reader
            .overlay(loc, tile, &o.validity, &mut o.scratch)
    }
}

/// Ingests files into the store at `root` in one commit; where files overlap, the later
/// one wins. Every file is opened and checked before anything is written.
pub fn ingest_files(
    root: &Path,
    paths: &[String],
    opts: &IngestOptions,
    writer: &str,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<IngestReport> {
    let mut txn = Transaction::begin(root, writer, opts.wait)?;
    let mut footprints = Vec::with_capacity(paths.len());
    for path in paths {
        let opened = OpenedDataset::open(path)?;
        let ds = opened.0;
        // SAFETY: `opened` lives in the value, which is dropped right after.
        let p = unsafe { Prepared::new(ds, Some(opened), &txn.manifest, opts.resampling) }
            .map_err(|e| prefix_error(path, e))?;
        footprints.push(p.footprint());
    }
    let manifest = txn.manifest.clone();
    let readers: Vec<Box<dyn SourceSet + '_>> = (0..opts.threads.max(1))
        .map(|_| {
            Box::new(FileSet {
                paths,
                manifest: &manifest,
                resampling: opts.resampling,
                open: VecDeque::new(),
                overlay: Overlayer {
                    validity: manifest.validity(),
                    scratch: Scratch::default(),
                },
            }) as Box<dyn SourceSet + '_>
        })
        .collect();
    let report = merge(&mut txn, &footprints, readers, opts.threads, progress)?;
    finish(txn, report.tiles_changed)
}

/// Names the file in an error that does not already.
fn prefix_error(path: &str, e: Error) -> Error {
    let msg = e.to_string();
    if msg.contains(path) {
        e
    } else {
        Error::InvalidInput(format!("{path}: {msg}"))
    }
}
