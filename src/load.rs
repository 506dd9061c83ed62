//! Reading rule files: discovery, parsing, checking and the checks that span
//! several files (duplicate rule names and ids).

use crate::diag::{Diagnostic, Report, SourceFile, Span};
use crate::ir::Rule;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A checked rule and the file it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub rule: Rule,
}

/// Rules that checked, and the reports of files that did not.
#[derive(Debug, Default)]
pub struct Loads {
    pub rules: Vec<Loaded>,
    pub failures: Vec<Report>,
}

/// Compile one rule text. `base_dir` resolves test `file "..."` paths.
pub fn compile_text(name: &str, text: &str, base_dir: &Path) -> Result<Vec<Rule>, Report> {
    // A byte-order mark is no part of the rule (editors on Windows add one).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let file = SourceFile::new(name, text);
    let ast = crate::syntax::parse(text).map_err(|d| Report {
        file: file.clone(),
        diagnostics: vec![d],
    })?;
    crate::check::check_file(&ast, text, base_dir)
        .map_err(|diagnostics| Report { file, diagnostics })
}

/// Read and compile one rule file.
pub fn compile_path(path: &Path) -> Result<Vec<Rule>, Report> {
    let name = path.display().to_string();
    let fail = |msg: String, hint: &str| Report {
        file: SourceFile::new(name.clone(), ""),
        diagnostics: vec![Diagnostic::whole_file(msg).hint(hint)],
    };
    let limit = crate::syntax::MAX_FILE_BYTES as u64;
    let bytes = crate::files::read_bounded(path, limit).map_err(|e| {
        if e.to_string().starts_with("over the") {
            fail(
                format!("{name}: detc reads rule files of at most {limit} bytes"),
                "keep large test events in separate JSON files and reference them with `file \"...\"`",
            )
        } else {
            fail(format!("cannot read {name}: {e}"), "check the path")
        }
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
        Report {
            file: SourceFile::new(name.clone(), text),
            diagnostics: vec![Diagnostic::new(
                "rule files must be UTF-8 text",
                Span::new(at, at + 1),
            )
            .label("not UTF-8")
            .hint("this looks like a binary file or another encoding; save it as UTF-8")],
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    compile_text(&name, &text, base)
}

/// `*.rule` files under `paths` (files are taken as given; directories are
/// walked in sorted order, skipping folders named `invalid`, which hold
/// must-fail inputs).
pub fn rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
            continue;
        }
        if !p.is_dir() {
            return Err(format!("{}: no such file or directory", p.display()));
        }
        let walker = walkdir::WalkDir::new(p)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                !(e.file_type().is_dir() && e.depth() > 0 && e.file_name() == "invalid")
            });
        for entry in walker {
            let entry = entry.map_err(|e| e.to_string())?;
            if entry.file_type().is_file() && entry.path().extension().is_some_and(|x| x == "rule")
            {
                out.push(entry.into_path());
            }
        }
    }
    if out.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(format!("no .rule files under {}", shown.join(", ")));
    }
    Ok(out)
}

/// Compile every rule file under `paths`, then check names and ids across files.
pub fn load(paths: &[PathBuf]) -> Result<Loads, String> {
    let mut loads = Loads::default();
    // Files are parsed and checked in parallel; results are kept in file order.
    use rayon::prelude::*;
    let files = rule_files(paths)?;
    let compiled: Vec<_> = files.par_iter().map(|path| compile_path(path)).collect();
    for (path, result) in files.into_iter().zip(compiled) {
        match result {
            Ok(rules) => loads.rules.extend(rules.into_iter().map(|rule| Loaded {
                path: path.clone(),
                rule,
            })),
            Err(report) => loads.failures.push(report),
        }
    }
    // Names are file stems: two that differ only in case collide on
    // case-insensitive file systems, so they are compared folded.
    let mut by_name: HashMap<String, (PathBuf, String)> = HashMap::new();
    let mut by_id: HashMap<String, (PathBuf, String)> = HashMap::new();
    let mut keep = Vec::new();
    for l in std::mem::take(&mut loads.rules) {
        let mut diags = Vec::new();
        // Read again only to show a diagnostic.
        let text = || std::fs::read_to_string(&l.path).unwrap_or_default();
        if let Some((first, other)) = by_name.get(&l.rule.name.to_lowercase()) {
            let what = if *other == l.rule.name {
                format!(
                    "rule name `{}` is also used in {}",
                    l.rule.name,
                    first.display()
                )
            } else {
                format!(
                    "rule name `{}` differs only in case from `{other}` in {}: their output files collide on case-insensitive file systems",
                    l.rule.name,
                    first.display()
                )
            };
            diags.push(
                Diagnostic::new(what, l.rule.spans.name)
                    .label("duplicate name")
                    .hint("rule names are output file names; rename one"),
            );
        }
        if let Some((first, name)) = by_id.get(&l.rule.meta.id) {
            diags.push(
                Diagnostic::new(
                    format!(
                        "rule id {} is also the id of `{name}` in {}",
                        l.rule.meta.id,
                        first.display()
                    ),
                    l.rule.spans.id,
                )
                .label("duplicate id")
                .hint("each rule needs its own UUID (uuidgen makes one)"),
            );
        }
        if diags.is_empty() {
            by_name.insert(
                l.rule.name.to_lowercase(),
                (l.path.clone(), l.rule.name.clone()),
            );
            by_id.insert(
                l.rule.meta.id.clone(),
                (l.path.clone(), l.rule.name.clone()),
            );
            keep.push(l);
        } else {
            loads.failures.push(Report {
                file: SourceFile::new(l.path.display().to_string(), text()),
                diagnostics: diags,
            });
        }
    }
    loads.rules = keep;
    Ok(loads)
}
