//! Hrefs of the exported documents: relative to the file that holds them by default (so the
//! output directory and the store can move together), or absolute under a base URL where
//! the output directory is published.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Something an href points at.
#[derive(Debug, Clone)]
pub enum Target {
    /// A local path (absolute, with symbolic links resolved).
    Local(PathBuf),
    /// A location that is already absolute: a URL or a GDAL `/vsi...` path.
    Absolute(String),
}

/// How hrefs are written for one export.
#[derive(Debug, Clone)]
pub struct Hrefs {
    /// The output directory, absolute.
    out_dir: PathBuf,
    /// Where the output directory is published, without a trailing `/`.
    base: Option<String>,
}

impl Hrefs {
    pub fn new(out_dir: &Path, base: Option<&str>) -> Result<Hrefs> {
        let out_dir = out_dir
            .canonicalize()
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", out_dir.display())))?;
        let base = base.map(|b| b.trim_end_matches('/').to_string());
        if base.as_deref() == Some("") {
            return Err(Error::InvalidInput(
                "--href-base is empty: give the URL or absolute path where the output \
                 directory will be published"
                    .into(),
            ));
        }
        Ok(Hrefs { out_dir, base })
    }

    /// True when hrefs are absolute (a base was given).
    pub fn absolute(&self) -> bool {
        self.base.is_some()
    }

    /// The href of `target` as written in a file in `from` (a directory inside the output
    /// directory, "" for the output directory itself).
    pub fn href(&self, target: &Target, from: &str) -> Result<String> {
        let path = match target {
            Target::Absolute(s) => return Ok(s.clone()),
            Target::Local(p) => p,
        };
        let from_top = relative(&self.out_dir, path);
        match &self.base {
            Some(base) => join(base, &from_top),
            None => Ok(relative(&self.out_dir.join(from), path)),
        }
    }

    /// `rel` (relative to the output directory, perhaps climbing out of it) as an absolute
    /// path, `..` resolved by its text.
    pub fn out_path(&self, rel: &str) -> PathBuf {
        let mut out = self.out_dir.clone();
        for c in Path::new(rel).components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(n) => out.push(n),
                _ => {}
            }
        }
        out
    }

    /// The href of a file the export writes, `name` relative to the output directory.
    pub fn own(&self, name: &str, from: &str) -> Result<String> {
        self.href(&Target::Local(self.out_path(name)), from)
    }
}

/// `to` relative to directory `from`, with `/` separators (both absolute).
fn relative(from: &Path, to: &Path) -> String {
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".into(); a.len() - common];
    parts.extend(
        b[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// `rel` (which may start with `../`) resolved against `base`.
fn join(base: &str, rel: &str) -> Result<String> {
    let (root, path) = match base.find("://") {
        Some(i) => match base[i + 3..].find('/') {
            Some(j) => base.split_at(i + 3 + j),
            None => (base, ""),
        },
        None => ("", base),
    };
    let mut segments: Vec<&str> = path.split('/').collect();
    for part in rel.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                // The first segment of a path is empty (it starts with "/"): keep it.
                if segments.len() <= 1 {
                    return Err(Error::InvalidInput(format!(
                        "the store lies outside {base}, where --href-base says the output \
                         directory is published; write the output nearer the store, or \
                         give a base higher up"
                    )));
                }
                segments.pop();
            }
            p => segments.push(p),
        }
    }
    Ok(format!("{root}{}", segments.join("/")))
}

/// The path GDAL opens for an href: URLs through its virtual file systems.
pub fn gdal_path(href: &str) -> String {
    for (scheme, vsi) in [
        ("https://", "/vsicurl/https://"),
        ("http://", "/vsicurl/http://"),
        ("s3://", "/vsis3/"),
        ("gs://", "/vsigs/"),
        ("az://", "/vsiaz/"),
    ] {
        if let Some(rest) = href.strip_prefix(scheme) {
            return format!("{vsi}{rest}");
        }
    }
    href.to_string()
}

/// The driver's connection string for `href` with a selection (`TIME=...`), or without one.
pub fn connection(href: &str, selection: Option<&str>) -> String {
    match selection {
        Some(sel) => format!("GRIDSTORE:\"{}\":{sel}", gdal_path(href)),
        None => format!("GRIDSTORE:{}", gdal_path(href)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_out_of_the_output() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            relative(&p("/a/out/items"), &p("/a/dem.gridstore")),
            "../../dem.gridstore"
        );
        assert_eq!(
            relative(&p("/a/out"), &p("/a/out/items/x.json")),
            "items/x.json"
        );
    }

    #[test]
    fn bases_take_relative_paths() {
        let j = |b, r| join(b, r).unwrap();
        assert_eq!(
            j("https://ex.org/data/stac", "../dem.gridstore"),
            "https://ex.org/data/dem.gridstore"
        );
        assert_eq!(
            j("https://ex.org/stac", "items/a.json"),
            "https://ex.org/stac/items/a.json"
        );
        assert_eq!(j("/srv/stac", "../x.gridstore"), "/srv/x.gridstore");
        assert!(join("https://ex.org", "../x").is_err());
    }

    #[test]
    fn urls_become_gdal_paths() {
        assert_eq!(
            connection(
                "https://ex.org/r.gridstore",
                Some("TIME=2024-01-01T00:00:00Z")
            ),
            "GRIDSTORE:\"/vsicurl/https://ex.org/r.gridstore\":TIME=2024-01-01T00:00:00Z"
        );
        assert_eq!(
            connection("s3://b/r.gridstore", None),
            "GRIDSTORE:/vsis3/b/r.gridstore"
        );
    }
}
