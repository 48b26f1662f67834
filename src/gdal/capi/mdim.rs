//! The multidimensional view of a store (GDAL's `GDAL_OF_MULTIDIM_RASTER` opens:
//! `gdalmdiminfo`, `gdalmdimtranslate`), the Rust half of cpp-shim/gridstore_mdim.cpp
//! (docs/DRIVER.md, "Multidimensional view"):
//!
//! - a root group with dimensions `time` (a time store only), `y` and `x`;
//! - one array per store band, named as the classic view names the variable, of
//!   dimensions `(time, y, x)` (or `(y, x)` without time).
//!
//! The time dimension lists the steps the classic view shows as bands: every tick from the
//! first to the last step of a regular axis (a hole reads as nodata), the steps held of an
//! irregular one. Its values are in the axis's CF units. Reads go through the same window
//! read as the classic view's point reads ([`super::window::read_window`]), several steps
//! at once.

use std::ffi::{c_char, c_int, c_ulonglong, c_void, CString};
use std::path::{Path, PathBuf};

use super::ffi::{GsMdimArrayInfo, GsMdimInfo};
use super::time_view::{variable_name, Source};
use super::{c_string, gdal_sizes, option_pairs, read_pool, required_str, window};
use crate::error::{Error, Result};
use crate::grid::{Layout, PixelRect};
use crate::options::{self, OpenOptions};
use crate::store::{resolve_store_path, Snapshot};
use crate::time::{AxisKind, TimeAxis, TimeDimension};

/// Most steps an irregular axis may list in this view: the ticks are held in memory (4
/// bytes each) for as long as the dataset is open.
const MAX_LISTED_STEPS: usize = 10_000_000;

/// Most bytes one [`gridstore_mdim_read`] call fills: the shim reads in parts far smaller
/// than this; a larger request is a mistake, refused before anything is allocated.
const MAX_READ_BYTES: usize = 1 << 30;

/// An open store as the multidimensional view shows it (`GsMdim *` in C).
pub struct MdimHandle {
    snap: Snapshot,
    root: PathBuf,
    layout: Layout,
    threads: usize,
    /// The axis of a time store; `None` for a store without time (one step, tick 0).
    axis: Option<TimeAxis>,
    steps: TimeDimension,
    info: GsMdimInfo,
    arrays: Vec<ArrayStrings>,
    /// Strings `info` points into.
    _strings: [CString; 3],
}

/// The strings of one array's [`GsMdimArrayInfo`].
struct ArrayStrings {
    name: CString,
    unit: CString,
    description: CString,
}

impl MdimHandle {
    fn open(name: &str, open_options: &[(String, String)]) -> Result<MdimHandle> {
        let (name, selected) = options::split_connection(name)?;
        let all: Vec<(String, String)> = open_options.iter().cloned().chain(selected).collect();
        let opts = OpenOptions::parse(&all)?;
        let root = resolve_store_path(&name);
        if !opts.time.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{}: {} choose the bands of the classic raster view; the multidimensional \
                 view shows every time step and variable. Subset it instead (for example \
                 `gdalmdimtranslate -subset 'time(<first>,<last>)'`, values in the time \
                 variable's units), or choose steps in the classic view (gdalinfo, \
                 gdal_translate)",
                root.display(),
                options::TIME_SELECTION_OPTIONS.join(", ")
            )));
        }
        let snap = Snapshot::open(&root, opts.snapshot)?;
        let m = snap.manifest();
        let layout = *snap.layout().ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: the store holds no data yet; add some (`gridstore append` or \
                 gdal_translate) before opening it",
                root.display()
            ))
        })?;
        // The same checks as the classic view: sizes GDAL can hold, a band, a block size.
        let (width, height) = gdal_sizes(&root, m, &layout)?[0];
        let axis = m.time.as_ref().map(|spec| spec.axis()).transpose()?;
        let steps = time_steps(&root, &snap)?;
        let (units, calendar) = match &axis {
            Some(a) => (a.units().format(), a.calendar().name().to_string()),
            None => (String::new(), String::new()),
        };
        let strings = [
            c_string(&m.grid.crs_wkt),
            c_string(&units),
            c_string(&calendar),
        ];
        let arrays = array_names(m)
            .into_iter()
            .zip(&m.bands)
            .map(|(name, b)| ArrayStrings {
                name: c_string(&name),
                unit: c_string(&b.unit),
                description: c_string(&b.description),
            })
            .collect();
        let info = GsMdimInfo {
            width,
            height,
            tile_size: m.grid.tile_size as c_int,
            data_type: m.data_type.gdal_code() as c_int,
            has_geotransform: m.grid.georeferenced as c_int,
            geotransform: m.georef().geotransform(0, layout.base.x0, layout.base.y0),
            has_time: axis.is_some() as c_int,
            time_count: steps.len(),
            time_units: strings[1].as_ptr(),
            calendar: strings[2].as_ptr(),
            array_count: m.bands.len() as c_int,
            crs_wkt: strings[0].as_ptr(),
        };
        Ok(MdimHandle {
            threads: opts.threads,
            snap,
            root,
            layout,
            axis,
            steps,
            info,
            arrays,
            _strings: strings,
        })
    }

    fn array_info(&self, array: usize) -> Result<GsMdimArrayInfo> {
        let (Some(s), Some(b)) = (
            self.arrays.get(array),
            self.snap.manifest().bands.get(array),
        ) else {
            return Err(Error::InvalidInput(format!(
                "{}: no array {array} (the store has {} bands)",
                self.root.display(),
                self.arrays.len()
            )));
        };
        Ok(GsMdimArrayInfo {
            name: s.name.as_ptr(),
            unit: s.unit.as_ptr(),
            description: s.description.as_ptr(),
            has_nodata: b.nodata.is_some() as c_int,
            nodata: b.nodata.unwrap_or(0.0),
            has_scale: b.scale.is_some() as c_int,
            scale: b.scale.unwrap_or(1.0),
            has_offset: b.offset.is_some() as c_int,
            offset: b.offset.unwrap_or(0.0),
        })
    }

    /// The CF values of steps `start..start + out.len()`.
    fn time_values(&self, start: u64, out: &mut [f64]) -> Result<()> {
        let axis = self.axis.as_ref().ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: the store has no time axis",
                self.root.display()
            ))
        })?;
        for (i, v) in (start..).zip(out.iter_mut()) {
            *v = axis.value(self.tick(i)?)?;
        }
        Ok(())
    }

    /// The tick of step `i` of the time dimension, or an error naming the dimension's size.
    fn tick(&self, i: u64) -> Result<u32> {
        self.steps.tick(i).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: no step {i} along the time dimension, which has {} steps",
                self.root.display(),
                self.steps.len()
            ))
        })
    }

    /// Reads window `rect` (level-0 dataset pixels) of store band `band` at the steps
    /// `steps` into `out`, one plane per step.
    fn read(
        &self,
        band: usize,
        steps: &[u64],
        win: (i64, i64, usize, usize),
        out: &mut [u8],
    ) -> Result<()> {
        let m = self.snap.manifest();
        let (x, y, w, h) = win;
        let fits = x >= 0
            && y >= 0
            && w > 0
            && h > 0
            && x + w as i64 <= i64::from(self.info.width)
            && y + h as i64 <= i64::from(self.info.height);
        if band >= m.bands.len() || !fits {
            return Err(Error::InvalidInput(format!(
                "{}: cannot read array {band} over the window {x},{y} {w}x{h}: the store has \
                 {} arrays of {} x {} pixels",
                self.root.display(),
                m.bands.len(),
                self.info.width,
                self.info.height
            )));
        }
        let plane = w * h * m.data_type.size();
        let bytes = plane
            .checked_mul(steps.len())
            .filter(|&b| b <= MAX_READ_BYTES);
        if bytes != Some(out.len()) {
            return Err(Error::InvalidInput(format!(
                "{}: a read of {} steps of {w}x{h} pixels does not fit its buffer of {} \
                 bytes, or is more than {MAX_READ_BYTES} bytes at once",
                self.root.display(),
                steps.len(),
                out.len()
            )));
        }
        let sources = steps
            .iter()
            .map(|&i| {
                Ok(Source {
                    tick: self.tick(i)?,
                    band,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let origin = self.layout.level_rect(0);
        let rect = PixelRect::new(
            origin.x0 + x,
            origin.y0 + y,
            origin.x0 + x + w as i64,
            origin.y0 + y + h as i64,
        );
        let planes: Vec<&mut [u8]> = out.chunks_mut(plane).collect();
        let snap = &self.snap;
        read_pool(self.threads)?.install(|| window::read_window(snap, 0, rect, &sources, planes))
    }
}

/// The steps along the time dimension of `snap` (see the module's doc).
fn time_steps(root: &Path, snap: &Snapshot) -> Result<TimeDimension> {
    let Some(spec) = &snap.manifest().time else {
        return Ok(TimeDimension::Consecutive { first: 0, count: 1 });
    };
    let (Some(first), Some(last)) = (spec.first, spec.last) else {
        return Err(Error::InvalidInput(format!(
            "{}: the store's time axis holds no steps yet; append some before opening it",
            root.display()
        )));
    };
    if first > last {
        return Err(Error::corrupt(
            root.join(crate::manifest::MANIFEST_KEY),
            format!("its time axis starts at tick {first}, after its last tick {last}"),
        ));
    }
    if spec.kind == AxisKind::Regular {
        let count = u64::from(last - first) + 1;
        return Ok(TimeDimension::Consecutive { first, count });
    }
    let ticks = snap.steps(first, last, MAX_LISTED_STEPS + 1)?;
    if ticks.len() > MAX_LISTED_STEPS {
        return Err(Error::NotSupported(format!(
            "{}: the irregular time axis holds more than {MAX_LISTED_STEPS} steps, more than \
             the multidimensional view lists; open it with the classic view and TIME_RANGE",
            root.display()
        )));
    }
    Ok(TimeDimension::Listed(ticks))
}

/// The array name of each store band: its variable name (as the classic view gives it),
/// made unique within the group, where the dimensions `time`, `y` and `x` live too, by
/// appending `_<band number>`.
fn array_names(m: &crate::manifest::Manifest) -> Vec<String> {
    let mut taken: Vec<String> = ["time", "y", "x"].map(String::from).to_vec();
    let mut names = Vec::new();
    for band in 0..m.bands.len() {
        let mut name = variable_name(m, band);
        if taken.contains(&name) {
            name = format!("{name}_{}", band + 1);
        }
        while taken.contains(&name) {
            name.push('_');
        }
        taken.push(name.clone());
        names.push(name);
    }
    names
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_mdim_open(
    filename: *const c_char,
    open_options: *mut *mut c_char,
) -> *mut MdimHandle {
    super::guard(std::ptr::null_mut(), || {
        // SAFETY: GDAL passes a NUL-terminated name and a valid (or null) option list.
        let name = unsafe { required_str(filename, "file name")? };
        // SAFETY: see above.
        let opts = unsafe { option_pairs(open_options) };
        Ok(Box::into_raw(Box::new(MdimHandle::open(&name, &opts)?)))
    })
}

/// # Safety
/// `mdim` comes from `gridstore_mdim_open` and is closed once.
#[no_mangle]
pub unsafe extern "C" fn gridstore_mdim_close(mdim: *mut MdimHandle) {
    super::guard((), || {
        if !mdim.is_null() {
            // SAFETY: from Box::into_raw in gridstore_mdim_open, closed once.
            drop(unsafe { Box::from_raw(mdim) });
        }
        Ok(())
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_mdim_info(mdim: *const MdimHandle, info: *mut GsMdimInfo) {
    super::guard((), || {
        // SAFETY: a valid handle and a writable struct from the shim.
        unsafe { *info = (*mdim).info };
        Ok(())
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_mdim_array_info(
    mdim: *const MdimHandle,
    array: c_int,
    info: *mut GsMdimArrayInfo,
) -> c_int {
    super::guard(1, || {
        // SAFETY: a valid handle and a writable struct from the shim.
        let h = unsafe { &*mdim };
        let found = h.array_info(usize::try_from(array).unwrap_or(usize::MAX))?;
        // SAFETY: see above.
        unsafe { *info = found };
        Ok(0)
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
pub unsafe extern "C" fn gridstore_mdim_time_values(
    mdim: *const MdimHandle,
    start: c_ulonglong,
    count: c_ulonglong,
    values: *mut f64,
) -> c_int {
    super::guard(1, || {
        // SAFETY: a valid handle.
        let h = unsafe { &*mdim };
        let in_range = start
            .checked_add(count)
            .is_some_and(|end| end <= h.steps.len());
        let Some(n) = usize::try_from(count).ok().filter(|_| in_range) else {
            return Err(Error::InvalidInput(format!(
                "{}: no time steps {start}..{start}+{count}: the time dimension has {} steps",
                h.root.display(),
                h.steps.len()
            )));
        };
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: the shim passes room for `count` doubles, and `count` is in range.
        let out = unsafe { std::slice::from_raw_parts_mut(values, n) };
        h.time_values(start, out)?;
        Ok(0)
    })
}

/// # Safety
/// Called by the shim with the pointers cpp-shim/gridstore_capi.h describes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn gridstore_mdim_read(
    mdim: *mut MdimHandle,
    array: c_int,
    step_count: c_int,
    steps: *const c_ulonglong,
    x: c_int,
    y: c_int,
    w: c_int,
    h: c_int,
    out: *mut c_void,
) -> c_int {
    super::guard(1, || {
        // SAFETY: a valid handle.
        let handle = unsafe { &*mdim };
        let (Ok(n), Ok(wu), Ok(hu), Ok(band)) = (
            usize::try_from(step_count),
            usize::try_from(w),
            usize::try_from(h),
            usize::try_from(array),
        ) else {
            return Err(Error::InvalidInput(format!(
                "{}: bad read of array {array}: {step_count} steps, window {x},{y} {w}x{h}",
                handle.root.display()
            )));
        };
        let dsize = handle.snap.manifest().data_type.size();
        let bytes = n
            .checked_mul(wu)
            .and_then(|v| v.checked_mul(hu))
            .and_then(|v| v.checked_mul(dsize))
            .filter(|&b| b <= MAX_READ_BYTES && n > 0)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{}: a read of {n} steps of {w}x{h} pixels is empty or more than \
                     {MAX_READ_BYTES} bytes at once",
                    handle.root.display()
                ))
            })?;
        // SAFETY: the shim passes `step_count` step indices and an output buffer of
        // step_count * w * h samples of the store's type (`bytes`, checked above).
        let (steps, out) = unsafe {
            (
                std::slice::from_raw_parts(steps, n),
                std::slice::from_raw_parts_mut(out as *mut u8, bytes),
            )
        };
        handle.read(band, steps, (i64::from(x), i64::from(y), wu, hu), out)?;
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_names_are_unique_and_leave_the_dimensions_alone() {
        let mut m = crate::manifest::tests::sample();
        let template = m.bands[0].clone();
        m.bands = vec![
            template.clone(),
            template.clone(),
            template.clone(),
            template,
        ];
        let names = ["rain", "rain", "x", ""];
        for (b, n) in m.bands.iter_mut().zip(names) {
            b.description = n.to_string();
            b.metadata.clear();
        }
        assert_eq!(array_names(&m), ["rain", "rain_2", "x_3", "band4"]);
    }
}
