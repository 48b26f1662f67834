//! GDAL's `Create`: a new store made from a dataset that a tool describes and fills piece
//! by piece (gdalwarp, gdal_calc.py, gdal_merge.py, gdal_rasterize, gdal_grid, rasterio's
//! write mode, `Driver.Create`).
//!
//! The size, bands and type come first; the georeferencing and band settings arrive
//! through setters, before or between pixel writes. The store's grid is anchored at the
//! raster's top-left corner, so block (x, y) of the dataset is tile (x, y) whatever the
//! geotransform turns out to be: pixels go into the store's transaction as they come (the
//! same edit session as update mode), and the store's manifest is written by the first
//! commit, at a flush once the geotransform is known or at the close.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_double, c_int};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use super::super::cpl::{from_c, guard};
use super::super::source::metadata_map;
use super::{option_pairs, palette_interp_name, required_str, StoreHandle, View};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::grid::PixelRect;
use crate::index::IndexReader;
use crate::ingest::{
    check_nodata_fits, default_pyramid, grid_placement, new_store_manifest, settings_are_fixed,
    Editor, SourceInfo,
};
use crate::manifest::MAX_COLOR_ENTRIES;
use crate::manifest::{BandSpec, ColorTable, Manifest};
use crate::options::CreateOptions;
use crate::store::{check_store_name, resolve_store_path, NewStore, Snapshot};

/// What `Create` is asked for.
struct Request<'a> {
    name: &'a str,
    width: c_int,
    height: c_int,
    bands: c_int,
    data_type: DataType,
    options: &'a [(String, String)],
}

impl StoreHandle {
    /// Starts creating a store: its directory and writer lock exist from now on, its
    /// manifest from the first commit.
    fn create(req: &Request) -> Result<StoreHandle> {
        let opts = CreateOptions::parse(req.options)?;
        let root = resolve_store_path(req.name);
        check_store_name(&root)?;
        let (width, height, bands) = check_shape(req)?;
        let source = SourceInfo {
            description: req.name.to_string(),
            width,
            height,
            data_type: req.data_type,
            geotransform: None,
            crs_wkt: String::new(),
            bands: default_bands(bands),
            metadata: BTreeMap::new(),
        };
        let manifest = new_store_manifest(&source, &opts)?;
        let extent = PixelRect::new(0, 0, width as i64, height as i64);
        let view = unwritten(&root, &manifest, extent);
        let described = View::of(&root, &view, opts.threads, true)?;
        let writer = format!("GDAL Create of {}", root.display());
        let new = NewStore {
            path: root.clone(),
            manifest,
        };
        let editor = Editor::create(new, extent, &writer)?;
        Ok(StoreHandle {
            snapshot: RwLock::new(Arc::new(view)),
            editor: Some(Mutex::new(editor)),
            read_threads: opts.threads,
            root,
            creation: Some(opts),
            view: described,
        })
    }

    pub(super) fn is_creating(&self) -> bool {
        self.view.info.creating != 0
    }

    /// Applies `change` to the description of the store being created, and tells GDAL the
    /// new one. On a store that exists, only a change that changes nothing is accepted.
    fn describe(&mut self, change: impl FnOnce(&mut Manifest) -> Result<()>) -> Result<()> {
        self.editor()?.describe_new_store(change)?;
        if !self.is_creating() {
            return Ok(());
        }
        let manifest = self.editor()?.manifest()?.clone();
        let view = unwritten(&self.root, &manifest, self.view.layout.base);
        self.view = View::of(&self.root, &view, self.read_threads, true)?;
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(view);
        Ok(())
    }

    /// Readies the store being created for its first commit; false while that commit
    /// should wait (no geotransform yet, and not closing).
    pub(super) fn ready_to_create(&mut self, at_closing: bool) -> Result<bool> {
        if !self.is_creating() {
            return Ok(true);
        }
        if !at_closing && !self.snap().manifest().grid.georeferenced {
            return Ok(false);
        }
        let opts = self
            .creation
            .clone()
            .expect("a store being created keeps its options");
        self.describe(|m| {
            // Bands with a colour table get their own default resampling, known only now.
            m.pyramids = vec![default_pyramid(&m.bands, &opts)?];
            Ok(())
        })?;
        Ok(true)
    }

    fn set_geotransform(&mut self, gt: [f64; 6]) -> Result<()> {
        if !self.is_creating() {
            let info = &self.view.info;
            return match info.has_geotransform != 0 && info.geotransform == gt {
                true => Ok(()),
                false => Err(settings_are_fixed()),
            };
        }
        let (origin, cell_size, georeferenced) = grid_placement(Some(gt))?;
        self.describe(|m| {
            m.grid.origin = origin;
            m.grid.cell_size = cell_size;
            m.grid.georeferenced = georeferenced;
            Ok(())
        })
    }

    fn set_band(&mut self, band: usize, spec: BandSpec) -> Result<()> {
        let dtype = self.snap().manifest().data_type;
        if band >= self.view.bands.len() {
            return Err(Error::InvalidInput(format!(
                "no band {} in this store",
                band + 1
            )));
        }
        if let Some(nd) = spec.nodata {
            check_nodata_fits(nd, dtype, band)?;
        }
        self.describe(|m| {
            m.bands[band] = spec;
            Ok(())
        })
    }
}

/// The bands of a new dataset before any is described: grey, and undefined beyond the
/// first, as a GTiff's are.
fn default_bands(count: usize) -> Vec<BandSpec> {
    let mut bands = vec![BandSpec::gray(None); count];
    for b in bands.iter_mut().skip(1) {
        b.color_interp = "Undefined".into();
    }
    bands
}

/// The size and band count asked for, checked.
fn check_shape(req: &Request) -> Result<(usize, usize, usize)> {
    if req.width < 1 || req.height < 1 || req.bands < 1 {
        return Err(Error::InvalidInput(format!(
            "{}: a store is at least 1 x 1 pixels with at least one band ({} x {} pixels of \
             {} bands were asked for)",
            req.name, req.width, req.height, req.bands
        )));
    }
    Ok((req.width as usize, req.height as usize, req.bands as usize))
}

/// A view of the manifest of a store being created, covering `extent`: its reads find no
/// tiles (the edit session lays what was written over them).
fn unwritten(root: &Path, manifest: &Manifest, extent: PixelRect) -> Snapshot {
    let storage = crate::storage::open(root);
    let mut m = manifest.clone();
    m.extent = Some(extent);
    let index = Arc::new(IndexReader::new(storage.clone(), 1));
    Snapshot::from_parts(storage, m, index)
}

/// A band's settings as the shim gives them.
///
/// # Safety
/// The pointers in `info` must be null or valid for the call (NUL-terminated strings, a
/// NULL-terminated list, and `4 * color_table_size` shorts).
unsafe fn band_spec(info: &crate::gdal::capi::GsBandInfo) -> Result<BandSpec> {
    let n = usize::try_from(info.color_table_size)
        .ok()
        .filter(|n| *n <= MAX_COLOR_ENTRIES && (*n == 0 || !info.color_table.is_null()))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "a colour table of {} entries (at most {MAX_COLOR_ENTRIES})",
                info.color_table_size
            ))
        })?;
    let color_table = (n > 0).then(|| {
        // SAFETY: the caller passes 4 shorts per entry.
        let values = unsafe { std::slice::from_raw_parts(info.color_table, 4 * n) };
        ColorTable {
            interp: palette_interp_name(info.palette_interp).into(),
            entries: values
                .chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect(),
        }
    });
    // Scale 1 and offset 0 are no scaling, as a CreateCopy source's are read.
    let scale = (info.has_scale != 0 && info.scale != 1.0).then_some(info.scale);
    let offset = (info.has_offset != 0 && info.offset != 0.0).then_some(info.offset);
    // SAFETY: forwarded contract.
    let text = |p: *const c_char| unsafe { from_c(p) }.unwrap_or_default();
    Ok(BandSpec {
        nodata: (info.has_nodata != 0).then_some(info.nodata),
        description: text(info.description),
        color_interp: Some(text(info.color_interp))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "Undefined".into()),
        color_table,
        scale,
        offset,
        unit: text(info.unit),
        // SAFETY: forwarded contract.
        metadata: unsafe { metadata_map(info.metadata) },
    })
}

/// The store type for a `GDALDataType` asked of `Create`, or why there is none.
fn store_type(name: &str, code: c_int) -> Result<DataType> {
    let code = u32::try_from(code).unwrap_or(0);
    DataType::from_gdal_code(code).map_err(|_| {
        Error::NotSupported(format!(
            "{name}: a store cannot hold data type {}; the types a store holds are Byte, \
             UInt16, Int16, UInt32, Int32, Float32 and Float64",
            crate::dtype::gdal_type_name(code)
        ))
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_create(
    filename: *const c_char,
    width: c_int,
    height: c_int,
    bands: c_int,
    data_type: c_int,
    options: *mut *mut c_char,
) -> *mut StoreHandle {
    guard(std::ptr::null_mut(), || {
        // SAFETY: GDAL passes a NUL-terminated name and a valid (or null) option list.
        let name = unsafe { required_str(filename, "file name")? };
        let options = unsafe { option_pairs(options) };
        let data_type = store_type(&name, data_type)?;
        let req = Request {
            name: &name,
            width,
            height,
            bands,
            data_type,
            options: &options,
        };
        Ok(Box::into_raw(Box::new(StoreHandle::create(&req)?)))
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_set_geotransform(
    store: *mut StoreHandle,
    geotransform: *const c_double,
) -> c_int {
    guard(1, || {
        if geotransform.is_null() {
            return Err(Error::InvalidInput("no geotransform was given".into()));
        }
        // SAFETY: valid handle (see gridstore_close) and 6 doubles from the shim.
        let (s, gt) = unsafe { (&mut *store, *(geotransform as *const [f64; 6])) };
        s.set_geotransform(gt)?;
        Ok(0)
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_set_crs(store: *mut StoreHandle, wkt: *const c_char) -> c_int {
    guard(1, || {
        // SAFETY: valid handle and a NUL-terminated string (or null) from the shim.
        let (s, wkt) = unsafe { (&mut *store, from_c(wkt).unwrap_or_default()) };
        s.describe(|m| {
            m.grid.crs_wkt = wkt;
            Ok(())
        })?;
        Ok(0)
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_set_band(
    store: *mut StoreHandle,
    band: c_int,
    info: *const crate::gdal::capi::GsBandInfo,
) -> c_int {
    guard(1, || {
        if info.is_null() {
            return Err(Error::InvalidInput("no band settings were given".into()));
        }
        // SAFETY: valid handle, and band settings whose pointers live for the call.
        let (s, spec) = unsafe { (&mut *store, band_spec(&*info)?) };
        let band = usize::try_from(band)
            .map_err(|_| Error::InvalidInput(format!("no band {band} in this store")))?;
        s.set_band(band, spec)?;
        Ok(0)
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_set_metadata(
    store: *mut StoreHandle,
    metadata: *mut *mut c_char,
) -> c_int {
    guard(1, || {
        // SAFETY: valid handle and a NULL-terminated list (or null) from the shim.
        let (s, map) = unsafe { (&mut *store, metadata_map(metadata)) };
        s.describe(|m| {
            m.metadata = map;
            Ok(())
        })?;
        Ok(0)
    })
}
