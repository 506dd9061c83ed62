//! `detc build --check`: compare a build held in memory with a directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Drift {
    /// On disk, with other contents than a fresh build.
    Differs(String),
    /// Generated, but not on disk.
    Missing(String),
    /// On disk, but no longer generated.
    Stale(String),
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Differs(p) => write!(f, "differs  {p}"),
            Drift::Missing(p) => write!(f, "missing  {p}"),
            Drift::Stale(p) => write!(f, "stale    {p}"),
        }
    }
}

/// Every file of `dir` (relative, `/`-separated) that is not what `files`
/// holds, and every file of `files` that `dir` lacks. Only paths for which
/// `in_scope` holds are compared. Sorted by path.
pub fn compare(
    dir: &Path,
    files: &BTreeMap<String, String>,
    in_scope: impl Fn(&str) -> bool,
) -> std::io::Result<Vec<Drift>> {
    let mut on_disk = BTreeMap::new();
    if dir.exists() {
        for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
            let entry = entry.map_err(std::io::Error::other)?;
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(dir)
                .map_err(std::io::Error::other)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            on_disk.insert(rel, entry.into_path());
        }
    }
    let mut out = Vec::new();
    for (rel, contents) in files {
        if !in_scope(rel) {
            continue;
        }
        match on_disk.get(rel) {
            None => out.push(Drift::Missing(rel.clone())),
            Some(p) => {
                if std::fs::read(p)? != contents.as_bytes() {
                    out.push(Drift::Differs(rel.clone()));
                }
            }
        }
    }
    for rel in on_disk.keys() {
        if in_scope(rel) && !files.contains_key(rel) {
            out.push(Drift::Stale(rel.clone()));
        }
    }
    out.sort_by(|a, b| key(a).cmp(key(b)));
    Ok(out)
}

fn key(d: &Drift) -> &str {
    match d {
        Drift::Differs(p) | Drift::Missing(p) | Drift::Stale(p) => p,
    }
}
