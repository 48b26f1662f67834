//! `gridstore refs`: kerchunk references of a store, for xarray, zarr and fsspec without
//! GDAL.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use gridstore::refs::{write_references, Missing};
use gridstore::storage::is_vsi_path;
use gridstore::store::Snapshot;

#[derive(clap::Args)]
#[command(
    after_help = "Open the references in Python (fsspec, zarr, xarray):\n  \
    import xarray\n  \
    ds = xarray.open_dataset(\"reference://\", engine=\"zarr\", group=\"level_0\", chunks={},\n      \
    backend_kwargs={\"consolidated\": False, \"storage_options\": {\"fo\": \"dem.json\"}})\n\
    (chunks={}: dask reads a chunk at a time; fsspec 2022.11 can mix up the chunks of a \
    read of many.) \
    Chunks are named {{root}}/<object of the store>. fsspec resolves a relative root from \
    the directory Python runs in: open from there, or give the store's place at open with \
    \"template_overrides\": {\"root\": \"/data/dem.gridstore\"} beside \"fo\". The \
    references hold for the snapshot they were made of, until `gridstore gc` removes it."
)]
pub struct RefsCmd {
    /// The store (its directory, or a /vsis3/ path)
    pub store: String,
    /// Reference this snapshot instead of the current one
    #[arg(long)]
    snapshot: Option<u64>,
    /// Write the references to this file instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// What to write for the chunks no tile holds: "inline", a reference to a few bytes of
    /// the fill value each, or "omit", no reference (smaller, for readers whose fsspec
    /// reports such chunks as missing, which Zarr then fills; fsspec 2022.11 fails the read)
    #[arg(long, default_value = "inline", value_parser = ["inline", "omit"])]
    missing: String,
    /// The value of the `root` template, where readers find the store [default: the
    /// store's path relative to the directory of FILE (or as given, without -o); an
    /// s3://, gs://, az:// or https:// URL for a store on object storage or HTTP]
    #[arg(long)]
    root: Option<String>,
}

pub fn run(store: &Path, cmd: &RefsCmd) -> Result<()> {
    let snap = Snapshot::open(store, cmd.snapshot)?;
    let root = match &cmd.root {
        Some(r) => r.clone(),
        None => default_root(store, cmd.output.as_deref())?,
    };
    let missing = match cmd.missing.as_str() {
        "omit" => Missing::Omit,
        _ => Missing::Inline,
    };
    let summary = match &cmd.output {
        None => write_stdout(&snap, &root, missing)?,
        Some(file) => write_file(&snap, &root, missing, file)?,
    };
    let steps = match summary.steps {
        Some(n) => format!(", {n} time steps"),
        None => String::new(),
    };
    eprintln!(
        "references of snapshot {}: {} level(s), {} array(s) each{steps}, {} chunk(s) in the \
         store, {} of the fill value inline; root {root}",
        snap.manifest().snapshot.id,
        summary.levels,
        summary.arrays,
        summary.chunks,
        summary.filled
    );
    Ok(())
}

/// Writes the references of `snap` (of the store at `store`) to `file`, its root the
/// store's path relative to the file's directory (a URL for a store on the network).
pub fn write_beside(store: &Path, snap: &Snapshot, file: &Path) -> Result<()> {
    let root = default_root(store, Some(file))?;
    write_file(snap, &root, Missing::Inline, file)?;
    Ok(())
}

/// Writes the references to a temporary file beside `file`, then renames it over `file`:
/// a refusal or an error leaves no partial references behind.
fn write_file(
    snap: &Snapshot,
    root: &str,
    missing: Missing,
    file: &Path,
) -> Result<gridstore::refs::Summary> {
    let name = file
        .file_name()
        .with_context(|| format!("{}: not a file name", file.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = file.with_file_name(tmp_name);
    let written = (|| -> Result<gridstore::refs::Summary> {
        let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut out = BufWriter::new(f);
        let summary = write_references(snap, root, missing, &mut out)?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, file).with_context(|| format!("renaming to {}", file.display()))?;
        Ok(summary)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes the references to standard output once they are complete: they are made in a
/// temporary file first, so that a refusal half way prints nothing a reader could take for
/// references.
fn write_stdout(snap: &Snapshot, root: &str, missing: Missing) -> Result<gridstore::refs::Summary> {
    let tmp = std::env::temp_dir().join(format!("gridstore-refs-{}.json", std::process::id()));
    let written = (|| -> Result<gridstore::refs::Summary> {
        let f = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        let mut out = BufWriter::new(f);
        let summary = write_references(snap, root, missing, &mut out)?;
        out.flush()
            .with_context(|| format!("writing {}", tmp.display()))?;
        drop(out);
        let mut f = File::open(&tmp).with_context(|| format!("reading {}", tmp.display()))?;
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        std::io::copy(&mut f, &mut lock).context("writing the references to standard output")?;
        lock.flush()
            .context("writing the references to standard output")?;
        Ok(summary)
    })();
    let _ = std::fs::remove_file(&tmp);
    written
}

/// Where readers of the references find the store: a URL for a store on object storage
/// or HTTP; else its path relative to the directory the references are written to, or the
/// path as given when they go to standard output.
fn default_root(store: &Path, output: Option<&Path>) -> Result<String> {
    let text = store.to_string_lossy();
    if is_vsi_path(store) {
        return Ok(url_of_vsi(&text));
    }
    let Some(output) = output else {
        return Ok(text.trim_end_matches('/').to_string());
    };
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}: the directory of the output", dir.display()))?;
    let store = store
        .canonicalize()
        .with_context(|| format!("{}: the store", store.display()))?;
    Ok(relative(&dir, &store).to_string_lossy().into_owned())
}

/// The fsspec URL of a GDAL virtual file system path (the path itself when there is none).
fn url_of_vsi(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    for (prefix, scheme) in [
        ("/vsis3/", "s3://"),
        ("/vsigs/", "gs://"),
        ("/vsiaz/", "az://"),
    ] {
        if let Some(rest) = trimmed.strip_prefix(prefix) {
            return format!("{scheme}{rest}");
        }
    }
    match trimmed.strip_prefix("/vsicurl/") {
        Some(url) => url.to_string(),
        None => trimmed.to_string(),
    }
}

/// The path that leads from directory `from` to `to`, both absolute.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for c in &to[common..] {
        path.push(c);
    }
    if path.as_os_str().is_empty() {
        path.push(".");
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_directory() {
        let r = |a: &str, b: &str| relative(Path::new(a), Path::new(b));
        assert_eq!(
            r("/d/refs", "/d/dem.gridstore"),
            Path::new("../dem.gridstore")
        );
        assert_eq!(r("/d", "/d/dem.gridstore"), Path::new("dem.gridstore"));
        assert_eq!(r("/d/dem.gridstore", "/d/dem.gridstore"), Path::new("."));
    }

    #[test]
    fn object_storage_paths_become_urls() {
        assert_eq!(
            url_of_vsi("/vsis3/bucket/a.gridstore/"),
            "s3://bucket/a.gridstore"
        );
        assert_eq!(
            url_of_vsi("/vsicurl/https://host/a.gridstore"),
            "https://host/a.gridstore"
        );
    }
}
