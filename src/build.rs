//! `detc build`: render every rule for every target, apply the loss policy,
//! write the build report, and replace the output directory atomically.

use crate::backend::{Artifact, BackendError, LossKind, Rendered, Target};
use crate::ir::Rule;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Options {
    pub targets: Vec<Target>,
    /// Accept unsupported constructs for every rule and target (as notes).
    pub lossy: bool,
    /// Every loss, even a format without a place for a setting, is an error.
    pub strict: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            targets: Target::ALL.to_vec(),
            lossy: false,
            strict: false,
        }
    }
}

/// What one target made of one rule.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rule: String,
    pub target: Target,
    pub result: Result<Rendered, BackendError>,
}

/// Render one rule for one target.
pub fn render(rule: &Rule, target: Target) -> Result<Rendered, BackendError> {
    crate::backend::backend(target).render(rule)
}

/// The build: files relative to the output directory, the report, and errors.
#[derive(Debug, Default)]
pub struct Build {
    pub files: BTreeMap<String, String>,
    pub report: String,
    pub errors: Vec<String>,
    /// Losses per target, for the command's summary line.
    pub losses: BTreeMap<Target, usize>,
}

pub fn build(rules: &[&Rule], opts: &Options) -> Build {
    build_with(rules, opts, |rule, _| rule.meta.version)
}

/// [`build`], with the version each rule's files carry for each target
/// (from `detc.lock`, see [`crate::workflow::lock`]).
pub fn build_with(
    rules: &[&Rule],
    opts: &Options,
    version: impl Fn(&Rule, Target) -> u32,
) -> Build {
    let mut b = Build::default();
    // A rule whose own tests fail is not built for any target.
    for rule in rules {
        for t in crate::eval::run_tests(rule).into_iter().filter(|t| !t.ok) {
            b.errors.push(format!(
                "{}: test {:?} [{}] fails: {}",
                rule.name, t.name, t.platform, t.detail
            ));
        }
    }
    let mut rows = Vec::new();
    for target in &opts.targets {
        for rule in rules {
            let v = version(rule, *target);
            let outcome = if v == rule.meta.version {
                render(rule, *target)
            } else {
                let mut versioned = (*rule).clone();
                versioned.meta.version = v;
                render(&versioned, *target)
            };
            match &outcome {
                Ok(r) => {
                    *b.losses.entry(*target).or_default() += r.losses.len();
                    for loss in &r.losses {
                        let accepted = opts.lossy || rule.meta.lossy.contains(target);
                        let fatal =
                            opts.strict || (loss.kind == LossKind::Unsupported && !accepted);
                        if fatal {
                            let how = if opts.strict {
                                "--strict makes every loss an error".to_string()
                            } else {
                                format!("to accept it as a visible note, add `lossy = [{target}]` to the rule or build with --lossy")
                            };
                            b.errors.push(format!(
                                "{}: {target}: cannot express {loss}; {how}",
                                rule.name
                            ));
                        }
                    }
                    for f in &r.files {
                        add_file(&mut b, *target, f);
                    }
                }
                Err(e) => b.errors.push(format!("{}: {target}: {e}", rule.name)),
            }
            rows.push(Outcome {
                rule: rule.name.clone(),
                target: *target,
                result: outcome,
            });
        }
        match crate::backend::backend(*target).shared(rules) {
            Ok(files) => files.iter().for_each(|f| add_file(&mut b, *target, f)),
            Err(e) => b.errors.push(format!("{target}: {e}")),
        }
    }
    b.report = report(&rows, opts);
    b.files.insert("REPORT.md".into(), b.report.clone());
    b
}

fn add_file(b: &mut Build, target: Target, f: &Artifact) {
    let path = format!("{}/{}", target.name(), f.path);
    if b.files.insert(path.clone(), f.contents.clone()).is_some() {
        b.errors.push(format!("two outputs write {path}"));
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `dist/REPORT.md`: one row per rule and target, then every loss.
pub fn report(rows: &[Outcome], opts: &Options) -> String {
    let mut s = String::from("# detc build report\n\n");
    let _ = writeln!(
        s,
        "Targets: {}. Losses: `unsupported` = the target cannot express the construct's meaning (an error unless the rule has `lossy = [target]` or the build ran with --lossy); `not_applicable` = the format has no place for the setting.{}\n",
        opts.targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
        if opts.strict { " Built with --strict." } else { "" }
    );
    s.push_str("| rule | target | status | files | losses |\n|---|---|---|---|---|\n");
    for r in rows {
        let (status, files, losses) = match &r.result {
            Ok(x) => (
                if x.losses.is_empty() {
                    "exact"
                } else {
                    "with notes"
                },
                x.files
                    .iter()
                    .map(|f| format!("`{}`", f.path))
                    .collect::<Vec<_>>()
                    .join(", "),
                x.losses.len().to_string(),
            ),
            Err(_) => ("failed", String::new(), "-".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {status} | {} | {losses} |",
            r.rule,
            r.target,
            cell(&files)
        );
    }
    s.push_str("\n## Losses and failures\n\n");
    let mut any = false;
    for r in rows {
        match &r.result {
            Ok(x) => {
                for l in &x.losses {
                    any = true;
                    let kind = match l.kind {
                        LossKind::Unsupported => "unsupported",
                        LossKind::NotApplicable => "not_applicable",
                    };
                    let _ = writeln!(
                        s,
                        "- `{}` → {} (`{}`): **{kind}** `{}`: {}",
                        r.rule,
                        r.target,
                        l.stem,
                        cell(&l.construct),
                        cell(&l.reason)
                    );
                }
            }
            Err(e) => {
                any = true;
                let _ = writeln!(
                    s,
                    "- `{}` → {}: **failed**: {}",
                    r.rule,
                    r.target,
                    cell(&e.0)
                );
            }
        }
    }
    if !any {
        s.push_str("None: every construct was rendered exactly.\n");
    }
    s
}

/// Write `files` to `out` atomically: into a temporary sibling directory,
/// then swap it in. On any error the previous `out` is untouched.
pub fn write_atomically(out: &Path, files: &BTreeMap<String, String>) -> std::io::Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".detc-staging-")
        .tempdir_in(&parent)?;
    for (rel, contents) in files {
        let path = staging.path().join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, contents)?;
    }
    let staged = staging.keep();
    if out.exists() {
        let old = tempfile::Builder::new()
            .prefix(".detc-old-")
            .tempdir_in(&parent)?
            .keep();
        std::fs::remove_dir(&old)?;
        std::fs::rename(out, &old)?;
        if let Err(e) = std::fs::rename(&staged, out) {
            let _ = std::fs::rename(&old, out);
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e);
        }
        std::fs::remove_dir_all(&old)?;
    } else if let Err(e) = std::fs::rename(&staged, out) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e);
    }
    Ok(())
}
