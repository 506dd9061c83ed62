//! Helpers shared by the integration tests of the targets.
#![allow(dead_code)]

use detc::ir::Rule;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crate root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A program of a validator venv (`.venv/<venv>/bin/<bin>`, or under
/// `$DETC_VENV_DIR`). A missing venv fails the test: validators are never
/// skipped.
pub fn venv_bin(venv: &str, bin: &str) -> PathBuf {
    let dir = std::env::var_os("DETC_VENV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"));
    let p = dir.join(venv).join("bin").join(bin);
    assert!(
        p.exists(),
        "{} is missing: run .ci/setup-validators to build the validator venvs",
        p.display()
    );
    p
}

/// Run a command; (success, stdout + stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every rule under rules/, which must all check.
pub fn project_rules() -> Vec<Rule> {
    let loads = detc::load::load(&[root().join("rules")]).expect("rules/ loads");
    assert!(
        loads.failures.is_empty(),
        "rules that do not check:\n{}",
        loads
            .failures
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!loads.rules.is_empty(), "no rules under rules/");
    loads.rules.into_iter().map(|l| l.rule).collect()
}
