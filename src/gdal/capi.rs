//! The functions the C++ driver shim calls (declared in cpp-shim/gridstore_capi.h), and the
//! plugin's registration entry point.
//!
//! Every function runs inside [`guard`]: failures become `CPLError`s and a failure return
//! value, and no panic crosses into C++.

use std::ffi::{c_char, c_int, c_uchar, c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use gdal_sys::{GDALDatasetH, GDALProgressFunc};
use once_cell::sync::Lazy;

use super::cpl::CPLE_NOT_SUPPORTED;
use super::cpl::{
    from_c, from_c_list, guard, install_panic_hook, report_failure, report_warning, CStringList,
};
use super::ingest::{dataset_name, ingest_dataset, now_us, record_or_warn, IngestOptions};
use super::placement::WarpResampling;
use super::source::{describe, drop_impossible_nodata, GdalSource, GMF_ALL_VALID, GMF_PER_DATASET};
use crate::chunk::decodes_side_by_side;
use crate::error::{Error, Result};
use crate::grid::{Layout, PixelRect, TileLoc};
use crate::index::{Entry, TileKey};
use crate::ingest::valid_cells::ValidCells;
use crate::ingest::{create_store_recording, new_store_manifest, Editor, Recorder};
use crate::manifest::MANIFEST_KEY;
use crate::options::{self, CreateOptions, OpenOptions, TimeSelection};
use crate::store::{
    check_store_name, resolve_store_path, NewStore, Snapshot, NAME_PREFIX, STORE_EXTENSION,
};

#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/capi_bindings.rs"));
}
pub use ffi::{GsBandInfo, GsDatasetInfo};

mod create;
mod mdim;
pub(crate) mod time_view;
pub use time_view::variable_name;
mod window;

use time_view::{Shown, Source};

/// An open store as the shim holds it (`GsStore *` in C).
pub struct StoreHandle {
    /// The state reads see: the snapshot opened, or the last one this handle committed
    /// (while a store is being created, a view of its manifest without tiles).
    snapshot: RwLock<Arc<Snapshot>>,
    /// The write session of a dataset opened for update, or being created.
    editor: Option<Mutex<Editor>>,
    root: PathBuf,
    read_threads: usize,
    /// The creation options of a store being created (GDAL's `Create`), needed again when
    /// it is committed.
    creation: Option<CreateOptions>,
    view: View,
}

/// What the shim is told about a store, built from its manifest; the strings and lists
/// live here, as long as the handle, or until the manifest of a store being created
/// changes.
struct View {
    layout: Layout,
    /// Width and height of each level's dataset, checked to be sizes GDAL can hold.
    level_sizes: Vec<(c_int, c_int)>,
    info: GsDatasetInfo,
    crs: CString,
    metadata: CStringList,
    image_structure: CStringList,
    subdatasets: CStringList,
    /// Where each GDAL band's pixels come from.
    sources: Vec<Source>,
    bands: Vec<BandStrings>,
}

/// The strings a [`GsBandInfo`] points into, owned by the handle.
struct BandStrings {
    description: CString,
    color_interp: CString,
    unit: CString,
    palette_interp: c_int,
    resampling: CString,
    color_table: Vec<i16>,
    metadata: CStringList,
}

impl BandStrings {
    /// The strings of a GDAL band showing store band `b` (whose levels are made by
    /// `resampling`) as `shown` says.
    fn of(
        b: &crate::manifest::BandSpec,
        resampling: &str,
        shown: &time_view::ShownBand,
        keep: impl Fn(&str) -> bool,
    ) -> BandStrings {
        let metadata = b
            .metadata
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| format!("{k}={v}"))
            .chain(shown.metadata.iter().cloned());
        BandStrings {
            description: c_string(shown.description.as_deref().unwrap_or(&b.description)),
            color_interp: c_string(&b.color_interp),
            unit: c_string(&b.unit),
            palette_interp: palette_interp_code(
                b.color_table.as_ref().map_or("RGB", |t| t.interp.as_str()),
            ),
            resampling: c_string(resampling),
            color_table: b
                .color_table
                .as_ref()
                .map(|t| t.entries.iter().flatten().copied().collect())
                .unwrap_or_default(),
            metadata: CStringList::new(metadata),
        }
    }
}

/// `GDALPaletteInterp` for a palette interpretation name.
fn palette_interp_code(name: &str) -> c_int {
    match name {
        "Gray" => 0,
        "CMYK" => 2,
        "HLS" => 3,
        _ => 1, // RGB
    }
}

/// The palette interpretation name of a `GDALPaletteInterp`.
fn palette_interp_name(code: c_int) -> &'static str {
    match code {
        0 => "Gray",
        2 => "CMYK",
        3 => "HLS",
        _ => "RGB",
    }
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).expect("NULs were replaced")
}

impl StoreHandle {
    fn open(name: &str, open_options: &[(String, String)], update: bool) -> Result<StoreHandle> {
        // Selections in the name come after the open options, so they win.
        let (name, selected) = options::split_connection(name)?;
        let all: Vec<(String, String)> = open_options.iter().cloned().chain(selected).collect();
        let opts = OpenOptions::parse(&all)?;
        let root = resolve_store_path(&name);
        if update {
            refuse_time_update(&root)?;
        }
        if update && opts.snapshot.is_some() {
            return Err(Error::InvalidInput(format!(
                "{}: SNAPSHOT opens a past state, which cannot be changed; open it read-only \
                 (to make a past state current again, use `gridstore rollback`)",
                root.display()
            )));
        }
        // The lock first, so that the state opened is the one writes will build on.
        let editor = if update {
            let writer = format!("GDAL update of {}", root.display());
            let editor = Editor::open(&root, &writer, opts.lock_wait)?;
            if let Some(r) = editor.recovered() {
                report_warning(&r.describe());
            }
            Some(editor)
        } else {
            None
        };
        let snapshot = Snapshot::open(&root, opts.snapshot)?;
        let threads = read_threads(&root, &all, opts.threads);
        let view = View::showing(&root, &snapshot, threads, false, &opts.time)?;
        Ok(StoreHandle {
            read_threads: threads,
            view,
            snapshot: RwLock::new(Arc::new(snapshot)),
            editor: editor.map(Mutex::new),
            root,
            creation: None,
        })
    }

    fn snap(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn editor(&self) -> Result<std::sync::MutexGuard<'_, Editor>> {
        match &self.editor {
            Some(e) => Ok(e.lock().unwrap_or_else(|p| p.into_inner())),
            None => Err(Error::InvalidInput(
                "the store was opened read-only; open it in update mode to write".into(),
            )),
        }
    }

    /// Writes band `band` of a level-0 window (dataset pixels; rows `stride` samples apart).
    fn write(&self, band: usize, win: Window, data: &[u8], stride: usize) -> Result<()> {
        let rect = PixelRect::new(
            self.view.layout.base.x0 + win.x,
            self.view.layout.base.y0 + win.y,
            self.view.layout.base.x0 + win.x + win.w as i64,
            self.view.layout.base.y0 + win.y + win.h as i64,
        );
        self.editor()?.write(band, rect, data, stride)
    }

    /// Commits what was written; later reads see the committed state. The first commit of
    /// a store being created waits for its geotransform, or for the close.
    fn flush(&mut self, at_closing: bool) -> Result<()> {
        if self.editor.is_none() || !self.ready_to_create(at_closing)? {
            return Ok(());
        }
        let creating = self.is_creating();
        let committed = self.editor()?.commit(self.read_threads)?;
        if let Some(m) = committed {
            let fresh = Snapshot::open(&self.root, Some(m.snapshot.id))?;
            if creating {
                self.view = View::of(&self.root, &fresh, self.read_threads, false)?;
            }
            *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        }
        Ok(())
    }

    fn band_info(&self, band: usize) -> GsBandInfo {
        let snap = self.snap();
        let spec = &snap.manifest().bands[self.view.sources[band].band];
        let s = &self.view.bands[band];
        GsBandInfo {
            has_nodata: spec.nodata.is_some() as c_int,
            nodata: spec.nodata.unwrap_or(0.0),
            description: s.description.as_ptr(),
            color_interp: s.color_interp.as_ptr(),
            unit: s.unit.as_ptr(),
            has_scale: spec.scale.is_some() as c_int,
            scale: spec.scale.unwrap_or(1.0),
            has_offset: spec.offset.is_some() as c_int,
            offset: spec.offset.unwrap_or(0.0),
            color_table_size: (s.color_table.len() / 4) as c_int,
            color_table: s.color_table.as_ptr(),
            palette_interp: s.palette_interp,
            resampling: s.resampling.as_ptr(),
            metadata: s.metadata.as_ptr(),
        }
    }

    /// Reads a window of a level at tick `tick`: every store band into `data` (or a scratch
    /// buffer when only the mask is wanted), and the mask.
    fn read(
        &self,
        tick: u32,
        level: u8,
        win: Window,
        data: Option<&mut [u8]>,
        mask: Option<&mut [u8]>,
    ) -> Result<()> {
        let Window { w, h, .. } = win;
        let rect = self.level_pixels(level, win)?;
        let snap = self.snap();
        let m = snap.manifest();
        let mut scratch;
        let data = match data {
            Some(d) => d,
            None => {
                scratch = vec![0u8; w * h * m.bands.len() * m.data_type.size()];
                &mut scratch[..]
            }
        };
        match (&self.editor, level) {
            (Some(_), 0) => {
                let mut mask = mask;
                snap.read_region(tick, 0, level, rect, data, mask.as_deref_mut())?;
                self.editor()?.overlay_read(rect, data, mask)
            }
            _ => snap.read_region(tick, 0, level, rect, data, mask),
        }
    }
}

impl View {
    /// What GDAL is told about `snapshot`, all of it; `creating` for a store not made yet.
    fn of(root: &Path, snapshot: &Snapshot, read_threads: usize, creating: bool) -> Result<View> {
        View::showing(
            root,
            snapshot,
            read_threads,
            creating,
            &TimeSelection::default(),
        )
    }

    /// What GDAL is told about `snapshot` as `sel` chooses (see time_view).
    fn showing(
        root: &Path,
        snapshot: &Snapshot,
        read_threads: usize,
        creating: bool,
        sel: &TimeSelection,
    ) -> Result<View> {
        let m = snapshot.manifest();
        let layout = *snapshot.layout().ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: the store holds no data yet; ingest some (gdal_translate or \
                 `gridstore ingest`) before opening it",
                root.display()
            ))
        })?;
        let level_sizes = gdal_sizes(root, m, &layout)?;
        let (w, h) = level_sizes[0];
        let shown = time_view::shown(root, snapshot, sel)?;
        let info = GsDatasetInfo {
            width: w,
            height: h,
            band_count: c_int::try_from(shown.bands.len()).map_err(|_| {
                Error::InvalidInput(format!("{}: too many bands to show", root.display()))
            })?,
            level_count: level_sizes.len() as c_int,
            tile_size: m.grid.tile_size as c_int,
            data_type: m.data_type.gdal_code() as c_int,
            has_geotransform: m.grid.georeferenced as c_int,
            geotransform: m.georef().geotransform(0, layout.base.x0, layout.base.y0),
            mask_flags: mask_flags(m, &shown),
            read_threads: read_threads.min(c_int::MAX as usize) as c_int,
            min_parallel_blocks: min_parallel_blocks(root) as c_int,
            creating: creating as c_int,
            bands_per_read: shown.bands_per_read.min(c_int::MAX as usize) as c_int,
            masks_per_band: shown.masks_per_band as c_int,
        };
        let pyramid = m
            .pyramids
            .first()
            .filter(|p| p.resampling.len() == m.bands.len())
            .ok_or_else(|| {
                damaged(
                    root,
                    "it names no level resampling method for some of its bands".into(),
                )
            })?;
        // The store's own time items give way to the view's.
        let keep = |k: &str| !(shown.replaces_time_items && time_view::is_time_item(k));
        let bands = shown
            .bands
            .iter()
            .map(|s| {
                let b = s.source.band;
                BandStrings::of(&m.bands[b], pyramid.resampling[b].gdal_name(), s, keep)
            })
            .collect();
        let metadata = CStringList::new(
            m.metadata
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| format!("{k}={v}"))
                .chain(shown.metadata.iter().cloned()),
        );
        let image_structure = CStringList::new([
            format!("COMPRESSION={}", m.encoding.compression.option_name()),
            "INTERLEAVE=PIXEL".to_string(),
        ]);
        Ok(View {
            crs: c_string(&m.grid.crs_wkt),
            info,
            layout,
            level_sizes,
            metadata,
            image_structure,
            subdatasets: CStringList::new(shown.subdatasets.iter().cloned()),
            sources: shown.bands.iter().map(|b| b.source).collect(),
            bands,
        })
    }
}

/// The mask flags of the bands without nodata: all valid when every pixel of every band
/// shown holds data (a hole of the time axis holds none); otherwise a mask, which a time
/// view gives each band (each is its own step) and other views share between bands.
fn mask_flags(m: &crate::manifest::Manifest, shown: &Shown) -> c_int {
    if !m.uses_mask() || (m.all_valid && !shown.shows_holes) {
        GMF_ALL_VALID
    } else if shown.masks_per_band {
        0
    } else {
        GMF_PER_DATASET
    }
}

/// GDAL's update mode writes blocks of bands, and a time store's bands are time steps,
/// written as whole slices by their own tools: refused, saying which.
fn refuse_time_update(root: &Path) -> Result<()> {
    let current = Snapshot::open(root, None)?;
    if current.manifest().time.is_none() {
        return Ok(());
    }
    Err(Error::NotSupported(format!(
        "{}: the store has a time axis, and GDAL's update mode cannot write to it. Add or \
         replace time steps with `gridstore append {} SLICES...` or `gdal_translate -co \
         TIME=<instant> SOURCE {}`, and open the store read-only",
        root.display(),
        root.display(),
        root.display()
    )))
}

/// The manifest of the store at `root` is damaged: `detail` says how.
fn damaged(root: &Path, detail: String) -> Error {
    Error::BadManifest {
        path: root.join(MANIFEST_KEY),
        detail,
    }
}

/// The dataset size of every level, checked against what GDAL can hold: a width and height
/// from 1 to `INT_MAX` (a zero-width dataset makes GDAL divide by zero), bands, and a block
/// whose bytes fit in an `int`. Checked here, at open, whatever the manifest reader already
/// checked, because a size GDAL cannot hold crashes the whole process (QGIS, a server).
fn gdal_sizes(
    root: &Path,
    m: &crate::manifest::Manifest,
    layout: &Layout,
) -> Result<Vec<(c_int, c_int)>> {
    let tile = m.grid.tile_size as i64;
    let block_bytes = tile
        .saturating_mul(tile)
        .saturating_mul(m.data_type.size() as i64);
    if tile < 1 || block_bytes > c_int::MAX as i64 {
        return Err(damaged(
            root,
            format!("its tile size {tile} is not a usable block size"),
        ));
    }
    if m.bands.is_empty() {
        return Err(damaged(root, "it lists no bands".into()));
    }
    let base = layout.base;
    let size = |a: i64, b: i64| b.checked_sub(a).filter(|d| *d >= 1);
    let (Some(w), Some(h)) = (size(base.x0, base.x1), size(base.y0, base.y1)) else {
        return Err(damaged(
            root,
            format!(
                "its extent ({}, {}) to ({}, {}) is empty or beyond the range of pixel \
                 coordinates",
                base.x0, base.y0, base.x1, base.y1
            ),
        ));
    };
    if w > c_int::MAX as i64 || h > c_int::MAX as i64 {
        return Err(Error::NotSupported(format!(
            "{}: the store is {w} x {h} pixels, more than GDAL can address (at most {} \
             a side). If it should not be this large, its manifest is damaged: run \
             `gridstore verify`",
            root.display(),
            c_int::MAX
        )));
    }
    (0..layout.level_count())
        .map(|level| {
            let (lw, lh) = layout.level_size(level as u8);
            let fits = |v: i64| (1..=c_int::MAX as i64).contains(&v);
            if fits(lw) && fits(lh) {
                Ok((lw as c_int, lh as c_int))
            } else {
                Err(damaged(
                    root,
                    format!("its level {level} would be {lw} x {lh} pixels"),
                ))
            }
        })
        .collect()
}

/// A window of a level, in dataset pixels of that level.
#[derive(Clone, Copy)]
struct Window {
    x: i64,
    y: i64,
    w: usize,
    h: usize,
}

/// Reads GDAL's `char**` option list into pairs.
///
/// # Safety
/// `list` must be null or a valid NULL-terminated string list.
unsafe fn option_pairs(list: *mut *mut c_char) -> Vec<(String, String)> {
    // SAFETY: forwarded contract.
    options::split_pairs(&unsafe { from_c_list(list) })
}

/// # Safety
/// `p` must be null or a NUL-terminated string.
unsafe fn required_str(p: *const c_char, what: &str) -> Result<String> {
    // SAFETY: forwarded contract.
    unsafe { from_c(p) }.ok_or_else(|| Error::InvalidInput(format!("{what} is missing")))
}

/// Tells whether `filename` names a store, looking only at the name and the header bytes:
/// GDAL asks every driver on every open, before GTiff's turn.
///
/// A store's own directory, and a file named like a manifest that is one or may have been
/// one (empty, not JSON, or in a `*.gridstore` directory), are claimed even when damaged, so
/// that opening them gives the store's own error saying what is wrong rather than GDAL's
/// "not recognized as a supported file format".
pub fn identify(filename: &str, header: &[u8], is_directory: bool) -> bool {
    if filename.starts_with(NAME_PREFIX) {
        return true;
    }
    let is_store_dir = |p: &Path| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case(STORE_EXTENSION))
    };
    let path = Path::new(filename.trim_end_matches('/'));
    if is_store_dir(path) {
        return true;
    }
    if is_directory || path.file_name().and_then(|n| n.to_str()) != Some(MANIFEST_KEY) {
        return false;
    }
    // The manifest, as a file dialog returns it.
    let first = header.iter().find(|b| !b.is_ascii_whitespace());
    path.parent().is_some_and(is_store_dir)
        || first != Some(&b'{')
        || contains(header, b"\"gridstore\"")
        || contains(header, b"\"format_version\"")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_identify(
    filename: *const c_char,
    header: *const c_uchar,
    header_bytes: c_int,
    is_directory: c_int,
) -> c_int {
    guard(0, || {
        // SAFETY: GDAL passes its open-info file name (NUL-terminated) and a header buffer
        // of `header_bytes` bytes (or null when empty).
        let name = unsafe { from_c(filename) }.unwrap_or_default();
        let header = if header.is_null() || header_bytes <= 0 {
            &[][..]
        } else {
            // SAFETY: see above.
            unsafe { std::slice::from_raw_parts(header, header_bytes as usize) }
        };
        Ok(identify(&name, header, is_directory != 0) as c_int)
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_open(
    filename: *const c_char,
    open_options: *mut *mut c_char,
    update: c_int,
) -> *mut StoreHandle {
    guard(std::ptr::null_mut(), || {
        // SAFETY: GDAL passes a NUL-terminated name and a valid (or null) option list.
        let name = unsafe { required_str(filename, "file name")? };
        let opts = unsafe { option_pairs(open_options) };
        Ok(Box::into_raw(Box::new(StoreHandle::open(
            &name,
            &opts,
            update != 0,
        )?)))
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_write_block(
    store: *mut StoreHandle,
    band: c_int,
    x: c_int,
    y: c_int,
    w: c_int,
    h: c_int,
    data: *const c_void,
    stride: c_int,
) -> c_int {
    guard(1, || {
        // SAFETY: valid handle (see gridstore_close).
        let s = unsafe { &*store };
        if w <= 0 || h <= 0 || x < 0 || y < 0 || stride < w || band < 1 {
            return Err(Error::InvalidInput(format!(
                "bad write of band {band}: window {x},{y} {w}x{h}, stride {stride}"
            )));
        }
        let dsize = s.snap().manifest().data_type.size();
        let len = ((h as usize - 1) * stride as usize + w as usize) * dsize;
        // SAFETY: the shim passes a block buffer with h rows of `stride` samples.
        let data = unsafe { std::slice::from_raw_parts(data as *const u8, len) };
        let win = Window {
            x: x as i64,
            y: y as i64,
            w: w as usize,
            h: h as usize,
        };
        s.write(band as usize - 1, win, data, stride as usize)?;
        Ok(0)
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_flush(store: *mut StoreHandle, at_closing: c_int) -> c_int {
    guard(1, || {
        // SAFETY: valid handle (see gridstore_close).
        unsafe { &mut *store }.flush(at_closing != 0)?;
        Ok(0)
    })
}

/// # Safety (for all functions taking a handle)
/// `store` must come from `gridstore_open` and not yet be closed; the shim guarantees it.
/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_close(store: *mut StoreHandle) {
    guard((), || {
        if !store.is_null() {
            // SAFETY: the pointer came from Box::into_raw in gridstore_open and is closed once.
            drop(unsafe { Box::from_raw(store) });
        }
        Ok(())
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_dataset_info(
    store: *const StoreHandle,
    info: *mut GsDatasetInfo,
) {
    guard((), || {
        // SAFETY: valid handle (see gridstore_close) and a writable struct from the shim.
        unsafe { *info = (*store).view.info };
        Ok(())
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_crs_wkt(store: *const StoreHandle) -> *const c_char {
    // SAFETY: valid handle; the string lives as long as the handle.
    guard(std::ptr::null(), || {
        Ok(unsafe { (*store).view.crs.as_ptr() })
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_metadata(
    store: *const StoreHandle,
    domain: *const c_char,
) -> *mut *mut c_char {
    guard(std::ptr::null_mut(), || {
        // SAFETY: valid handle; domain is null or NUL-terminated.
        let (s, domain) = unsafe { (&*store, from_c(domain).unwrap_or_default()) };
        Ok(match domain.as_str() {
            "" => s.view.metadata.as_ptr(),
            "IMAGE_STRUCTURE" => s.view.image_structure.as_ptr(),
            "SUBDATASETS" => s.view.subdatasets.as_ptr(),
            _ => std::ptr::null_mut(),
        })
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_band_info(
    store: *const StoreHandle,
    band: c_int,
    info: *mut GsBandInfo,
) {
    guard((), || {
        // SAFETY: valid handle and writable struct; the band index is checked.
        let s = unsafe { &*store };
        if band < 0 || band as usize >= s.view.bands.len() {
            return Err(Error::InvalidInput(format!("no band {}", band + 1)));
        }
        unsafe { *info = s.band_info(band as usize) };
        Ok(())
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_level_size(
    store: *const StoreHandle,
    level: c_int,
    width: *mut c_int,
    height: *mut c_int,
) {
    guard((), || {
        // SAFETY: valid handle and writable ints from the shim.
        let s = unsafe { &*store };
        let Some(&(w, h)) = usize::try_from(level)
            .ok()
            .and_then(|l| s.view.level_sizes.get(l))
        else {
            return Err(Error::InvalidInput(format!(
                "no level {level} in this store"
            )));
        };
        unsafe {
            *width = w;
            *height = h;
        }
        Ok(())
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_read_mask(
    store: *mut StoreHandle,
    level: c_int,
    band: c_int,
    x: c_int,
    y: c_int,
    w: c_int,
    h: c_int,
    mask: *mut c_uchar,
) -> c_int {
    guard(1, || {
        if w <= 0 || h <= 0 || x < 0 || y < 0 || !(0..=255).contains(&level) || mask.is_null() {
            return Err(Error::InvalidInput(format!(
                "bad mask window {x},{y} {w}x{h} at level {level}"
            )));
        }
        // SAFETY: valid handle; the shim passes a mask buffer of w*h bytes.
        let s = unsafe { &*store };
        let source = s.source(band)?;
        let mask = unsafe { std::slice::from_raw_parts_mut(mask, w as usize * h as usize) };
        let win = Window {
            x: x as i64,
            y: y as i64,
            w: w as usize,
            h: h as usize,
        };
        s.read(source.tick, level as u8, win, None, Some(mask))?;
        Ok(0)
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_read_window(
    store: *mut StoreHandle,
    level: c_int,
    x: c_int,
    y: c_int,
    w: c_int,
    h: c_int,
    band_count: c_int,
    band_map: *const c_int,
    planes: *mut *mut c_void,
) -> c_int {
    guard(1, || {
        if w <= 0 || h <= 0 || x < 0 || y < 0 || band_count <= 0 {
            return Err(Error::InvalidInput(format!(
                "bad window {x},{y} {w}x{h} of {band_count} bands at level {level}"
            )));
        }
        // SAFETY: valid handle; the shim passes `band_count` band numbers and as many
        // buffers of w*h samples of the store's type.
        let s = unsafe { &*store };
        let n = band_count as usize;
        let (map, ptrs) = unsafe {
            (
                std::slice::from_raw_parts(band_map, n),
                std::slice::from_raw_parts(planes as *const *mut u8, n),
            )
        };
        let sources = map
            .iter()
            .map(|&b| s.source(b))
            .collect::<Result<Vec<Source>>>()?;
        let level = u8::try_from(level)
            .map_err(|_| Error::InvalidInput(format!("no level {level} in this store")))?;
        let win = Window {
            x: x as i64,
            y: y as i64,
            w: w as usize,
            h: h as usize,
        };
        let rect = s.level_pixels(level, win)?;
        let snap = s.snap();
        let bytes = win.w * win.h * snap.manifest().data_type.size();
        // SAFETY: see above; each buffer is distinct and holds w*h samples.
        let planes: Vec<&mut [u8]> = ptrs
            .iter()
            .map(|&p| unsafe { std::slice::from_raw_parts_mut(p, bytes) })
            .collect();
        read_pool(s.read_threads)?
            .install(|| window::read_window(&snap, level, rect, &sources, planes))?;
        Ok(0)
    })
}

/// Below this many blocks, decoding them one after the other is faster than waking worker
/// threads (measured: a 4-block read in a fresh process). Over the network, where a block
/// costs a request, two are enough.
const MIN_PARALLEL_BLOCKS: usize = 8;
const MIN_PARALLEL_REMOTE_BLOCKS: usize = 2;

/// The fewest blocks a read of the store at `root` reads at once, in parallel; the shim
/// prefetches the blocks of a window that GDAL has not cached from as many on.
fn min_parallel_blocks(root: &Path) -> usize {
    match crate::storage::is_vsi_path(root) {
        true => MIN_PARALLEL_REMOTE_BLOCKS,
        false => MIN_PARALLEL_BLOCKS,
    }
}

/// The read threads of a handle: `NUM_THREADS` when given, else the cores, or
/// [`crate::options::REMOTE_THREADS`] for a store on GDAL's virtual file systems.
fn read_threads(root: &Path, options: &[(String, String)], parsed: usize) -> usize {
    let given = options
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("NUM_THREADS"));
    if crate::storage::is_vsi_path(root) && !given {
        parsed.max(crate::options::REMOTE_THREADS)
    } else {
        parsed
    }
}

/// How many read pools of distinct sizes are kept: handles usually all use the default,
/// and a process that tries many sizes must not keep threads for each for good.
const KEPT_READ_POOLS: usize = 4;

/// The worker pool for decoding with `threads` threads, shared by every dataset handle of
/// the process that asks for the same number: QGIS opens a handle per thread, and a pool
/// each would multiply threads. The least recently used size is dropped beyond
/// `KEPT_READ_POOLS` (its threads end once no handle uses it).
fn read_pool(threads: usize) -> Result<std::sync::Arc<rayon::ThreadPool>> {
    use std::sync::{Arc, Mutex};
    type Pools = Vec<(usize, Arc<rayon::ThreadPool>)>; // least recently used first
    static POOLS: Lazy<Mutex<Pools>> = Lazy::new(|| Mutex::new(Vec::new()));
    let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = pools.iter().position(|(n, _)| *n == threads) {
        let hit = pools.remove(i);
        pools.push(hit.clone());
        return Ok(hit.1);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("gridstore-read-{i}"))
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start {threads} reader threads: {e}")))?;
    let pool = Arc::new(pool);
    if pools.len() >= KEPT_READ_POOLS {
        pools.remove(0);
    }
    pools.push((threads, pool.clone()));
    Ok(pool)
}

/// A block that is one whole stored tile, with the tile's index entry.
type DirectTile = (TileKey, Option<Entry>);

/// The windows of a block request, one entry each: columns, rows, widths, heights.
type Windows<'a> = (&'a [c_int], &'a [c_int], &'a [c_int], &'a [c_int]);

/// A block of one tick: the destination of each store band, a `block_size`-strided
/// buffer, or null to skip the band.
struct BlockTarget {
    x: i64,
    y: i64,
    w: usize,
    h: usize,
    tick: u32,
    bands: Vec<*mut u8>,
}

impl BlockTarget {
    fn window(&self) -> Window {
        Window {
            x: self.x,
            y: self.y,
            w: self.w,
            h: self.h,
        }
    }
}

// SAFETY: the pointers address distinct GDAL block buffers that the calling thread keeps
// locked for the duration of the call; each is written by exactly one task.
unsafe impl Send for BlockTarget {}
unsafe impl Sync for BlockTarget {}

impl StoreHandle {
    /// The source of GDAL band `band` (from 1).
    fn source(&self, band: c_int) -> Result<Source> {
        usize::try_from(band)
            .ok()
            .and_then(|b| b.checked_sub(1))
            .and_then(|b| self.view.sources.get(b))
            .copied()
            .ok_or_else(|| Error::InvalidInput(format!("no band {band} in this dataset")))
    }

    /// The blocks of the requested `windows` (`bands` buffers each, from `first_band`, in
    /// `ptrs`).
    fn targets_of_windows(
        &self,
        (xs, ys, ws, hs): Windows<'_>,
        first_band: c_int,
        bands: usize,
        ptrs: &[*mut u8],
    ) -> Result<Vec<BlockTarget>> {
        let mut targets: Vec<BlockTarget> = Vec::new();
        for i in 0..xs.len() {
            let window = (
                xs[i] as i64,
                ys[i] as i64,
                ws[i].max(0) as usize,
                hs[i].max(0) as usize,
            );
            let band_ptrs = &ptrs[i * bands..(i + 1) * bands];
            targets.extend(self.block_targets(window, first_band, band_ptrs)?);
        }
        Ok(targets)
    }

    /// Reads the blocks `targets` of `level` (`stride` x `stride` samples a buffer), in
    /// parallel where there are enough of them.
    fn read_targets(&self, level: u8, stride: usize, targets: &[BlockTarget]) -> Result<()> {
        use rayon::prelude::*;
        let snap = self.snap();
        let plan = self.plan_reads(&snap, level, stride, targets)?;
        let read = |(t, direct): &(&BlockTarget, Option<DirectTile>)| match direct {
            Some((key, entry)) => {
                let bytes = stride * stride * snap.manifest().data_type.size();
                // SAFETY: see BlockTarget; a direct block's one buffer holds stride * stride
                // samples.
                let out = unsafe { std::slice::from_raw_parts_mut(t.bands[0], bytes) };
                snap.read_tile_into(key, *entry, out, None)
            }
            None => self.read_block(level, t, stride),
        };
        let m = snap.manifest();
        let frames_side_by_side =
            decodes_side_by_side(m.grid.tile_size as usize, m.data_type, m.bands.len());
        let read_all = || {
            if plan.len() >= min_parallel_blocks(&self.root) && self.read_threads > 1 {
                read_pool(self.read_threads)?.install(|| plan.par_iter().try_for_each(read))
            } else if self.read_threads > 1 && frames_side_by_side {
                // Few blocks: each is read in turn, its frames decoded side by side.
                read_pool(self.read_threads)?.install(|| plan.iter().try_for_each(read))
            } else {
                plan.iter().try_for_each(read)
            }
        };
        // Over the network, the chunks that lie together in a pack come in one request.
        if !snap.storage().reads_by_request() {
            return read_all();
        }
        let tiles = self.tiles_of_targets(&snap, level, targets)?;
        read_pool(self.read_threads)?.install(|| snap.with_prefetched(&tiles, read_all))
    }

    /// The stored tiles that the blocks `targets` of `level` meet, with their index
    /// entries.
    fn tiles_of_targets(
        &self,
        snap: &Snapshot,
        level: u8,
        targets: &[BlockTarget],
    ) -> Result<Vec<(TileKey, Entry)>> {
        let ts = snap.manifest().grid.tile_size;
        let mut keys = Vec::new();
        for t in targets {
            let rect = self.level_pixels(level, t.window())?;
            let tiles = rect.tiles(level, ts);
            keys.extend(tiles.iter().map(|loc| TileKey::new(t.tick, 0, loc)));
        }
        keys.sort_unstable();
        keys.dedup();
        let entries = snap.entries(&keys)?;
        let stored = keys.into_iter().zip(entries);
        Ok(stored.filter_map(|(k, e)| Some((k, e?))).collect())
    }

    /// Each of `targets` with, for a block that is a whole tile, its key and index entry:
    /// resolved here, in one walk, before the threads start (see IndexReader::get_many).
    fn plan_reads<'t>(
        &self,
        snap: &Snapshot,
        level: u8,
        stride: usize,
        targets: &'t [BlockTarget],
    ) -> Result<Vec<(&'t BlockTarget, Option<DirectTile>)>> {
        let direct: Vec<Option<TileKey>> = targets
            .iter()
            .map(|t| self.direct_tile(level, t, stride))
            .collect();
        let wanted: Vec<TileKey> = direct.iter().flatten().copied().collect();
        let mut found = snap.entries(&wanted)?.into_iter();
        Ok(targets
            .iter()
            .zip(&direct)
            .map(|(t, k)| (t, k.map(|k| (k, found.next().expect("one entry per key")))))
            .collect())
    }

    /// The targets of block window (x, y, w, h) for GDAL bands `first..first + ptrs.len()`:
    /// one per tick those bands show, each store band pointing where its GDAL band goes.
    fn block_targets(
        &self,
        (x, y, w, h): (i64, i64, usize, usize),
        first: c_int,
        ptrs: &[*mut u8],
    ) -> Result<Vec<BlockTarget>> {
        let store_bands = self.snap().manifest().bands.len();
        let mut targets: Vec<BlockTarget> = Vec::new();
        for (i, &p) in ptrs.iter().enumerate() {
            let src = self.source(first + i as c_int)?;
            let at = match targets.iter().position(|t| t.tick == src.tick) {
                Some(at) => at,
                None => {
                    targets.push(BlockTarget {
                        x,
                        y,
                        w,
                        h,
                        tick: src.tick,
                        bands: vec![std::ptr::null_mut(); store_bands],
                    });
                    targets.len() - 1
                }
            };
            targets[at].bands[src.band] = p;
        }
        Ok(targets)
    }

    /// Where a window of a level's dataset lies in that level's pixels.
    fn level_pixels(&self, level: u8, win: Window) -> Result<PixelRect> {
        if level as usize >= self.view.layout.level_count() {
            return Err(Error::InvalidInput(format!(
                "no level {level} in this store"
            )));
        }
        let origin = self.view.layout.level_rect(level);
        Ok(PixelRect::new(
            origin.x0 + win.x,
            origin.y0 + win.y,
            origin.x0 + win.x + win.w as i64,
            origin.y0 + win.y + win.h as i64,
        ))
    }

    /// The stored tile a block is, when it can be decoded straight into GDAL's buffer: one
    /// band, a block that is exactly one tile (the dataset's origin is on the tile grid),
    /// and no unflushed writes to lay over it.
    fn direct_tile(&self, level: u8, t: &BlockTarget, stride: usize) -> Option<TileKey> {
        let ts = self.view.layout.tile_size as usize;
        if self.editor.is_some()
            || t.bands.len() != 1
            || t.bands[0].is_null()
            || (t.w, t.h, stride) != (ts, ts, ts)
        {
            return None;
        }
        let rect = self.level_pixels(level, t.window()).ok()?;
        let tiles = rect.tiles(level, self.view.layout.tile_size);
        let loc = TileLoc::new(level, tiles.col0, tiles.row0);
        (tiles.len() == 1 && loc.pixel_rect(self.view.layout.tile_size) == rect)
            .then(|| TileKey::new(t.tick, 0, loc))
    }

    /// Reads one block into its band buffers (rows `stride` samples apart).
    fn read_block(&self, level: u8, t: &BlockTarget, stride: usize) -> Result<()> {
        let snap = self.snap();
        let m = snap.manifest();
        let dsize = m.data_type.size();
        let ts = m.grid.tile_size as usize;
        // One band, a whole tile, a tile-wide buffer: decode in place.
        if t.bands.len() == 1 && t.w == ts && t.h == ts && stride == ts && !t.bands[0].is_null() {
            // SAFETY: see BlockTarget; the buffer holds stride * stride samples.
            let out = unsafe { std::slice::from_raw_parts_mut(t.bands[0], ts * ts * dsize) };
            return self.read(t.tick, level, t.window(), Some(out), None);
        }
        thread_local! {
            static REGION: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        REGION.with(|region| {
            let mut region = region.borrow_mut();
            let plane = t.w * t.h * dsize;
            region.resize(plane * t.bands.len(), 0);
            self.read(t.tick, level, t.window(), Some(&mut region[..]), None)?;
            for (b, dst) in t.bands.iter().enumerate() {
                if dst.is_null() {
                    continue;
                }
                // SAFETY: see BlockTarget; stride * stride samples per block buffer.
                let dst = unsafe { std::slice::from_raw_parts_mut(*dst, stride * stride * dsize) };
                let src = &region[b * plane..(b + 1) * plane];
                if t.w < stride || t.h < stride {
                    dst.fill(0);
                }
                for y in 0..t.h {
                    dst[y * stride * dsize..(y * stride + t.w) * dsize]
                        .copy_from_slice(&src[y * t.w * dsize..(y + 1) * t.w * dsize]);
                }
            }
            Ok(())
        })
    }
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_read_blocks(
    store: *mut StoreHandle,
    level: c_int,
    first_band: c_int,
    band_count: c_int,
    count: c_int,
    xs: *const c_int,
    ys: *const c_int,
    ws: *const c_int,
    hs: *const c_int,
    blocks: *mut *mut c_void,
    block_size: c_int,
) -> c_int {
    guard(1, || {
        if count <= 0 {
            return Ok(0);
        }
        if !(0..=255).contains(&level) || block_size <= 0 || band_count <= 0 {
            return Err(Error::InvalidInput(format!(
                "bad block request at level {level}"
            )));
        }
        let n = count as usize;
        // SAFETY: valid handle; the shim passes `count` entries per window array and
        // `count * band_count` block pointers (see the header).
        let s = unsafe { &*store };
        let bands = band_count as usize;
        let (xs, ys, ws, hs, ptrs) = unsafe {
            (
                std::slice::from_raw_parts(xs, n),
                std::slice::from_raw_parts(ys, n),
                std::slice::from_raw_parts(ws, n),
                std::slice::from_raw_parts(hs, n),
                std::slice::from_raw_parts(blocks as *const *mut u8, n * bands),
            )
        };
        let windows = (xs, ys, ws, hs);
        let targets = s.targets_of_windows(windows, first_band, bands, ptrs)?;
        s.read_targets(level as u8, block_size as usize, &targets)?;
        Ok(0)
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_create_copy(
    filename: *const c_char,
    source: GDALDatasetH,
    options: *mut *mut c_char,
    progress: GDALProgressFunc,
    progress_data: *mut c_void,
) -> c_int {
    guard(1, || {
        // SAFETY: GDAL passes a NUL-terminated name, an open source dataset that we use
        // only on this call (and one reader thread at a time), and a valid option list.
        let name = unsafe { required_str(filename, "target name")? };
        let raw = unsafe { option_pairs(options) };
        let opts = CreateOptions::parse(&raw)?;
        let path = resolve_store_path(&name);
        check_store_name(&path)?;
        let mut report = |f: f64| match progress {
            // SAFETY: GDAL's progress callback with its own data pointer.
            Some(cb) => unsafe { cb(f, std::ptr::null(), progress_data) != 0 },
            None => true,
        };
        // SAFETY: the source handle as GDAL passed it, used on this call only.
        if unsafe {
            crate::gdal::time_translate::translate(&path, source, &raw, &opts, &mut report)?
        } {
            return Ok(0);
        }
        if crate::store::store_exists(&path)? {
            // SAFETY: the source handle as GDAL passed it, used on this call only.
            return unsafe { ingest_into_existing(&path, source, &raw, &opts, &mut report) };
        }
        let mut info = unsafe { describe(source)? };
        drop_impossible_nodata(&mut info)
            .iter()
            .for_each(|w| report_warning(w));
        let manifest = new_store_manifest(&info, &opts)?;
        let mut reader = unsafe { GdalSource::new(source, &info) };
        let writer = format!("GDAL CreateCopy of {}", info.description);
        // Writing to the network is waiting too: as many workers as reads use there.
        let threads = read_threads(&path, &raw, opts.threads);
        // SAFETY: the source handle as GDAL passed it, used on this thread only.
        let name = unsafe { dataset_name(source) };
        let recorder = (!name.is_empty()).then(|| Recorder {
            cells: ValidCells::new(info.width, info.height),
            // SAFETY: as above; the record is made on this thread, after the read.
            make: Box::new(move |cells| unsafe {
                record_or_warn(source, &name, None, now_us(), Some(cells))
            }),
        });
        create_store_recording(
            NewStore { path, manifest },
            &mut reader,
            recorder,
            threads,
            &writer,
            &mut report,
        )?;
        Ok(0)
    })
}

/// `gdal_translate` onto an existing store: the source is merged into it (warped onto its
/// grid if need be); new valid pixels replace old ones, nodata erases nothing.
///
/// # Safety
/// `source` must be a valid dataset handle used by no other thread during the call.
unsafe fn ingest_into_existing(
    path: &std::path::Path,
    source: GDALDatasetH,
    raw: &[(String, String)],
    opts: &CreateOptions,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<c_int> {
    let current = Snapshot::open(path, None)?;
    opts.check_against(raw, current.manifest())?;
    drop(current);
    let resampling = match &opts.warp_resampling {
        Some(name) => WarpResampling::from_name(name)?,
        None => WarpResampling::default(),
    };
    let ingest = IngestOptions {
        resampling,
        threads: opts.threads,
        wait: opts.lock_wait,
        record_sources: true,
    };
    // SAFETY: forwarded contract.
    let description = unsafe { from_c(gdal_sys::GDALGetDescription(source)) }.unwrap_or_default();
    let writer = format!("GDAL CreateCopy into the store, from {description}");
    // SAFETY: forwarded contract.
    let report = unsafe { ingest_dataset(path, source, &ingest, &writer, progress)? };
    if let Some(r) = &report.recovered {
        report_warning(&r.describe());
    }
    Ok(0)
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_delete(filename: *const c_char) -> c_int {
    guard(1, || {
        // SAFETY: NUL-terminated name from GDAL.
        let name = unsafe { from_c(filename) }.unwrap_or_default();
        let path = resolve_store_path(&name);
        // GDAL "deletes" the target of every CreateCopy first; a store that is not there
        // yet has nothing to delete.
        if !crate::store::store_exists(&path).unwrap_or(true) {
            return Ok(0);
        }
        report_failure(
            CPLE_NOT_SUPPORTED,
            &format!(
                "{}: stores are not deleted through GDAL, so that a gdal_translate or \
                 gdalmanage call cannot remove a whole collection by accident. Use \
                 `gridstore rm {}`",
                path.display(),
                path.display()
            ),
        );
        Ok(1)
    })
}

static CREATION_OPTIONS: Lazy<CString> = Lazy::new(|| c_string(&options::creation_option_list()));
static OPEN_OPTIONS: Lazy<CString> = Lazy::new(|| c_string(&options::open_option_list()));
static VERSION: Lazy<CString> = Lazy::new(|| c_string(env!("CARGO_PKG_VERSION")));

#[no_mangle]
pub extern "C" fn gridstore_creation_option_list() -> *const c_char {
    guard(std::ptr::null(), || Ok(CREATION_OPTIONS.as_ptr()))
}

#[no_mangle]
pub extern "C" fn gridstore_open_option_list() -> *const c_char {
    guard(std::ptr::null(), || Ok(OPEN_OPTIONS.as_ptr()))
}

#[no_mangle]
pub extern "C" fn gridstore_version() -> *const c_char {
    guard(std::ptr::null(), || Ok(VERSION.as_ptr()))
}

/// Entry point GDAL calls when it loads `gdal_GRIDSTORE.so` from its plugin path.
#[no_mangle]
#[allow(non_snake_case)]
pub extern "C" fn GDALRegister_GRIDSTORE() {
    guard((), || {
        let major: c_int = env!("GRIDSTORE_GDAL_MAJOR")
            .parse()
            .expect("set by build.rs");
        let minor: c_int = env!("GRIDSTORE_GDAL_MINOR")
            .parse()
            .expect("set by build.rs");
        // SAFETY: GDALCheckVersion only compares numbers; it reports a mismatch itself.
        if unsafe { gdal_sys::GDALCheckVersion(major, minor, c"GRIDSTORE".as_ptr()) } == 0 {
            return Ok(());
        }
        install_panic_hook();
        // A write waiting for another writer's lock (LOCK_TIMEOUT) says so, or QGIS would
        // seem to hang.
        crate::store::lock::set_wait_notice(report_warning);
        // SAFETY: the shim's registration takes no arguments and catches its own exceptions.
        unsafe { ffi::gridstore_shim_register() };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_is_strict() {
        assert!(identify("/d/dem.gridstore", b"", true));
        assert!(identify("/d/dem.gridstore/", b"", true));
        assert!(identify("/d/missing.gridstore", b"", false));
        assert!(identify("GRIDSTORE:/anything", b"", false));
        let header = br#"{ "format": "gridstore", "format_version": 1 }"#;
        assert!(identify("/d/dem.gridstore/gridstore.json", header, false));
        assert!(identify("/d/renamed/gridstore.json", header, false));
        assert!(!identify(
            "/d/other/gridstore.json",
            b"{\"type\": \"Feature\"}",
            false
        ));
        assert!(!identify("/d/image.tif", b"II*\0", false));
        assert!(!identify("/d/dir", b"", true));
        assert!(!identify("/d/gridstore.json", b"", true));
        assert!(!identify("/d/other.json", b"", false));
    }

    #[test]
    fn sizes_gdal_cannot_hold_are_refused() {
        let m = crate::manifest::tests::sample();
        let root = Path::new("/d/x.gridstore");
        let layout = |x0: i64, x1: i64, top: u8| Layout {
            tile_size: 256,
            base: PixelRect::new(x0, 0, x1, 100),
            top,
        };
        let sizes = gdal_sizes(root, &m, &layout(0, 1000, 2)).unwrap();
        assert_eq!(sizes, vec![(1000, 100), (500, 50), (250, 25)]);
        for (x0, x1, top) in [
            (0, 0, 0),
            (10, 5, 0),
            (-(1 << 62), 1 << 62, 0),
            (i64::MIN, i64::MAX, 0),
        ] {
            let err = gdal_sizes(root, &m, &layout(x0, x1, top)).unwrap_err();
            assert_eq!(err.kind(), crate::error::ErrorKind::Corrupt, "{err}");
            assert!(
                err.to_string().contains("/d/x.gridstore/gridstore.json"),
                "{err}"
            );
        }
        let err = gdal_sizes(root, &m, &layout(0, 1 << 31, 0)).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::NotSupported, "{err}");
        assert!(
            err.to_string().contains("more than GDAL can address"),
            "{err}"
        );
        let mut no_tiles = m.clone();
        no_tiles.grid.tile_size = 0;
        assert!(gdal_sizes(root, &no_tiles, &layout(0, 1000, 2)).is_err());
        let mut no_bands = m.clone();
        no_bands.bands.clear();
        assert!(gdal_sizes(root, &no_bands, &layout(0, 1000, 2)).is_err());
    }

    #[test]
    fn identify_claims_damaged_manifests() {
        // Empty, truncated or garbled: the store's own error says what is wrong.
        assert!(identify("/d/renamed/gridstore.json", b"", false));
        assert!(identify(
            "/d/renamed/gridstore.json",
            b"\0\x17garbage",
            false
        ));
        assert!(identify(
            "/d/renamed/gridstore.json",
            b"{\"format\": \"gridstore\", \"format_version\": 2, \"store_id\": \"ab",
            false
        ));
        // Inside a store directory, whatever it holds.
        assert!(identify(
            "/d/dem.gridstore/gridstore.json",
            b"{\"type\": \"Feature\"}",
            false
        ));
        assert!(identify("/d/dem.GRIDSTORE/gridstore.json", b"", false));
    }
}
