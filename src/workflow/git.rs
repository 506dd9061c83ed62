//! Git revisions as rule trees, by running the `git` binary: `git archive`
//! of the revision, unpacked into a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A revision checked out into a temporary directory (removed on drop).
pub struct Checkout {
    _dir: tempfile::TempDir,
    /// The directory in the checkout that corresponds to the current directory.
    pub cwd: PathBuf,
}

fn git(args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// Whether `spec` names a commit of the repository around the current directory.
pub fn is_revision(spec: &str) -> bool {
    git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{spec}^{{commit}}"),
    ])
    .is_ok()
}

/// Check out `rev` (any revision `git rev-parse` understands) into a temporary directory.
pub fn checkout(rev: &str) -> Result<Checkout, String> {
    if rev.starts_with('-') {
        return Err(format!("`{rev}` is not a revision"));
    }
    let commit = git(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
        .map_err(|_| format!("`{rev}` is neither a path nor a git revision"))?;
    let commit = String::from_utf8_lossy(&commit).trim().to_string();
    let prefix = String::from_utf8_lossy(&git(&["rev-parse", "--show-prefix"])?)
        .trim()
        .to_string();
    let tar = git(&["archive", "--format=tar", &commit])?;
    let dir = tempfile::Builder::new()
        .prefix("detc-rev-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    tar::Archive::new(tar.as_slice())
        .unpack(dir.path())
        .map_err(|e| format!("unpacking {rev}: {e}"))?;
    let cwd = dir.path().join(prefix);
    Ok(Checkout { _dir: dir, cwd })
}

/// `path` (relative to the current directory) inside a checkout.
pub fn inside(c: &Checkout, path: &Path) -> Result<PathBuf, String> {
    let here = std::env::current_dir().map_err(|e| e.to_string())?;
    let rel = if path.is_absolute() {
        path.strip_prefix(&here)
            .map_err(|_| format!("{} is outside the current directory", path.display()))?
    } else {
        path
    };
    Ok(c.cwd.join(rel))
}
