//! CRS definitions given by users ("EPSG:32633", a PROJ string, WKT, a file) as WKT.

use std::ffi::{c_char, c_void, CString};

use crate::error::{Error, Result};

use super::cpl::{from_c, last_error_message, CStringList};

/// Parses anything `gdalsrsinfo` accepts and returns it as WKT2.
pub fn wkt_from_user_input(definition: &str) -> Result<String> {
    let c = CString::new(definition)
        .map_err(|_| Error::InvalidInput("a CRS definition cannot contain NUL".into()))?;
    // SAFETY: the SRS handle is created and destroyed here; the exported string is freed
    // with VSIFree as GDAL requires.
    unsafe {
        let srs = gdal_sys::OSRNewSpatialReference(std::ptr::null());
        if gdal_sys::OSRSetFromUserInput(srs, c.as_ptr()) != 0 {
            let detail = last_error_message();
            gdal_sys::OSRDestroySpatialReference(srs);
            return Err(Error::InvalidInput(format!(
                "{definition:?} is not a CRS GDAL knows ({detail}); give an EPSG code \
                 (EPSG:25832), a PROJ string or WKT"
            )));
        }
        let options = CStringList::new(["FORMAT=WKT2_2019".to_string()]);
        let mut out: *mut c_char = std::ptr::null_mut();
        let err = gdal_sys::OSRExportToWktEx(srs, &mut out, options.as_ptr() as *const *const _);
        let wkt = if err == 0 { from_c(out) } else { None };
        gdal_sys::VSIFree(out as *mut c_void);
        gdal_sys::OSRDestroySpatialReference(srs);
        wkt.ok_or_else(|| Error::Gdal(format!("cannot write {definition:?} as WKT")))
    }
}

/// Registers GDAL's drivers once, for programs (the CLI) that read rasters themselves.
pub fn register_drivers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: GDALAllRegister has no preconditions; Once keeps it to one call.
    ONCE.call_once(|| unsafe { gdal_sys::GDALAllRegister() });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsg_codes_become_wkt() {
        let wkt = wkt_from_user_input("EPSG:32633").unwrap();
        assert!(wkt.contains("UTM zone 33N"), "{wkt}");
        let e = wkt_from_user_input("not a crs").unwrap_err().to_string();
        assert!(e.contains("not a CRS"), "{e}");
    }
}
