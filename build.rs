//! Builds the GDAL driver shim (cpp-shim/) into the library and generates the Rust side of
//! the C ABI header with bindgen, so both languages share one definition of its structs.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let shim = PathBuf::from("cpp-shim");
    for f in [
        "gridstore_capi.h",
        "gridstore_dataset.h",
        "gridstore_dataset.cpp",
        "gridstore_driver.cpp",
        "gridstore_mdim.h",
        "gridstore_mdim.cpp",
    ] {
        println!("cargo:rerun-if-changed={}", shim.join(f).display());
    }
    let gdal = find_gdal();
    // The plugin must be built for the GDAL minor version it loads into (C++ ABI).
    println!("cargo:rustc-env=GRIDSTORE_GDAL_MAJOR={}", gdal.version.0);
    println!("cargo:rustc-env=GRIDSTORE_GDAL_MINOR={}", gdal.version.1);

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file(shim.join("gridstore_driver.cpp"))
        .file(shim.join("gridstore_dataset.cpp"))
        .file(shim.join("gridstore_mdim.cpp"))
        .include(&shim)
        .flag("-fvisibility=hidden")
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-Wno-unused-parameter");
    for dir in &gdal.include_dirs {
        build.include(dir);
    }
    build.compile("gridstore_shim");

    let mut bindings = bindgen::Builder::default()
        .header(shim.join("gridstore_capi.h").to_string_lossy())
        .allowlist_type("Gs.*")
        .allowlist_function("gridstore_shim_register")
        .opaque_type("GsStore")
        .layout_tests(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &gdal.include_dirs {
        bindings = bindings.clang_arg(format!("-I{}", dir.display()));
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .generate()
        .expect("bindgen could not parse cpp-shim/gridstore_capi.h (is libclang installed?)")
        .write_to_file(out.join("capi_bindings.rs"))
        .expect("writing the generated bindings");
}

struct Gdal {
    include_dirs: Vec<PathBuf>,
    version: (u32, u32),
}

/// Finds GDAL's headers and version with pkg-config, falling back to gdal-config.
fn find_gdal() -> Gdal {
    let run = |cmd: &str, args: &[&str]| -> Option<String> {
        let out = Command::new(cmd).args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let cflags = run("pkg-config", &["--cflags-only-I", "gdal"])
        .or_else(|| run("gdal-config", &["--cflags"]))
        .unwrap_or_else(|| "-I/usr/include/gdal".into());
    let version = run("pkg-config", &["--modversion", "gdal"])
        .or_else(|| run("gdal-config", &["--version"]))
        .expect("GDAL not found: install libgdal-dev (it provides pkg-config's gdal.pc)");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let include_dirs = cflags
        .split_whitespace()
        .filter_map(|f| f.strip_prefix("-I"))
        .map(PathBuf::from)
        .collect();
    Gdal {
        include_dirs,
        version,
    }
}
