//! Reading files a rule names: only regular files, at most a limit of bytes
//! (a named pipe would block and `/dev/zero` never ends, whatever
//! `metadata().len()` says), and, for test events, only inside the rule
//! repository.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The bytes of the regular file `path`, refusing anything else and
/// anything over `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    // `metadata` does not open the file, so a FIFO is refused before a
    // read could block on it.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "over the {limit}-byte limit"
        )));
    }
    Ok(bytes)
}

/// The rule repository holding `dir`: the nearest ancestor (or `dir`
/// itself) with a `.git` or a `detc.lock`; else the current directory when
/// `dir` lies below it (detc runs from the repository's top); else `dir`.
/// Test event paths may not leave it.
pub fn repository_root(dir: &Path) -> PathBuf {
    let start = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if let Some(marked) = start
        .ancestors()
        .find(|a| a.join(".git").exists() || a.join("detc.lock").is_file())
    {
        return marked.to_path_buf();
    }
    match std::env::current_dir().and_then(std::fs::canonicalize) {
        Ok(cwd) if start.starts_with(&cwd) => cwd,
        _ => start,
    }
}

/// `base.join(rel)` when it stays inside `root` once symbolic links and
/// `..` are resolved; the resolved path, or why not.
pub fn confined(root: &Path, base: &Path, rel: &Path) -> Result<PathBuf, String> {
    let full = base.join(rel);
    let real = std::fs::canonicalize(&full).map_err(|e| e.to_string())?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(format!(
            "{} is outside the rule repository {}",
            real.display(),
            root.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_reads_refuse_what_is_not_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.json");
        std::fs::write(&f, "12345").unwrap();
        assert_eq!(read_bounded(&f, 5).unwrap(), b"12345");
        assert!(read_bounded(&f, 4).is_err());
        assert!(read_bounded(dir.path(), 10).is_err());
        #[cfg(unix)]
        {
            assert!(read_bounded(Path::new("/dev/zero"), 10).is_err());
        }
    }

    #[test]
    fn event_paths_stay_in_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("rules")).unwrap();
        std::fs::write(root.join("rules/e.json"), "{}").unwrap();
        assert!(confined(&root, &root.join("rules"), Path::new("e.json")).is_ok());
        assert!(confined(&root, &root.join("rules"), Path::new("../rules/e.json")).is_ok());
        assert!(confined(
            &root.join("rules"),
            &root.join("rules"),
            Path::new("../rules/../x")
        )
        .is_err());
        std::fs::write(root.join("outside.json"), "{}").unwrap();
        assert!(confined(
            &root.join("rules"),
            &root.join("rules"),
            Path::new("../outside.json")
        )
        .is_err());
    }
}
