//! `detc build`: render every rule for every target, apply the loss policy,
//! write the build report, and replace the output directory atomically.
//!
//! Rules are rendered in parallel (rayon), each rule for every target, and
//! their files are handed to a sink as they are made: [`build_to_dir`]
//! writes them straight into the staging directory and drops them, so memory
//! holds the IR and a small summary per rule, not the output. [`build_with`]
//! collects the same files in memory (for `build --check`, `diff` and tests).
//! Everything order-dependent (errors, the report, shared files) is assembled
//! afterwards in rule order, so the output is byte-identical to a serial build.

use crate::backend::{Artifact, BackendError, Loss, LossKind, Settings, Target};
use crate::ir::Rule;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Options {
    pub targets: Vec<Target>,
    /// Accept unsupported constructs for every rule and target (as notes).
    pub lossy: bool,
    /// Every loss, even a format without a place for a setting, is an error.
    pub strict: bool,
    /// Leave out the Splunk data sources and stories splunk/security_content
    /// already defines (for output merged into that repository).
    pub splunk_security_content: bool,
    /// What some backends read (`--panther-log-type`).
    pub settings: Settings,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            targets: Target::ALL.to_vec(),
            lossy: false,
            strict: false,
            splunk_security_content: false,
            settings: Settings::default(),
        }
    }
}

/// What one target made of one rule, as the report needs it (the files'
/// contents are gone by then: only their paths are kept).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rule: String,
    pub target: Target,
    /// The files written (relative to `dist/<target>/`) and the losses, or the error.
    pub result: Result<(Vec<String>, Vec<Kept>), BackendError>,
    /// Which file serves which platform of each detection (empty on error).
    pub coverage: Vec<Covered>,
    /// Files whose rendered condition gives another verdict than the
    /// rule's on some of its tests: (file, the tests).
    pub verdicts: Vec<(String, Vec<String>)>,
}

/// A coverage row as the build keeps it: the integration label is shared
/// by every rule served through it.
#[derive(Debug, Clone)]
pub struct Covered {
    pub stem: String,
    pub source: String,
    pub platform: String,
    pub via: Arc<str>,
    /// Relative to `dist/<target>/`.
    pub file: String,
}

/// A loss as the build keeps it for the report: the detection's output stem
/// and its note, shared by every rule with the same note (thousands of rules
/// share a handful of notes).
#[derive(Debug, Clone)]
pub struct Kept {
    pub stem: String,
    pub note: Arc<Note>,
}

/// What was lost and why, without the detection.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Note {
    pub kind: LossKind,
    pub construct: String,
    pub reason: String,
}

impl Kept {
    pub fn loss(&self) -> Loss {
        Loss {
            kind: self.note.kind,
            stem: self.stem.clone(),
            construct: self.note.construct.clone(),
            reason: self.note.reason.clone(),
        }
    }
}

/// The notes seen so far, each once.
type Notes = Mutex<HashSet<Arc<Note>>>;

/// The integration labels seen so far, each once.
type Vias = Mutex<HashSet<Arc<str>>>;

fn intern(vias: &Vias, s: &str) -> Arc<str> {
    let mut set = vias.lock().expect("no panic while holding the lock");
    if let Some(v) = set.get(s) {
        return v.clone();
    }
    let v: Arc<str> = Arc::from(s);
    set.insert(v.clone());
    v
}

fn keep(notes: &Notes, loss: Loss) -> Kept {
    let note = Note {
        kind: loss.kind,
        construct: loss.construct,
        reason: loss.reason,
    };
    let mut seen = notes.lock().expect("no panic while holding the lock");
    let note = match seen.get(&note) {
        Some(n) => n.clone(),
        None => {
            let n = Arc::new(note);
            seen.insert(n.clone());
            n
        }
    };
    Kept {
        stem: loss.stem,
        note,
    }
}

/// Render one rule for one target, with the default settings.
pub fn render(rule: &Rule, target: Target) -> Result<crate::backend::Rendered, BackendError> {
    crate::backend::backend(target).render(rule)
}

/// Render one rule for one target under build settings.
pub fn render_with(
    rule: &Rule,
    target: Target,
    settings: &Settings,
) -> Result<crate::backend::Rendered, BackendError> {
    crate::backend::backend(target).render_with(rule, settings)
}

/// The build: files relative to the output directory (empty when they were
/// streamed to disk) and errors; `REPORT.md` and `REPORT.json` are among the files.
#[derive(Debug, Default)]
pub struct Build {
    pub files: BTreeMap<String, String>,
    /// How many files the build made (REPORT.md and REPORT.json included).
    pub file_count: usize,
    pub errors: Vec<String>,
    /// Losses per target, for the command's summary line.
    pub losses: BTreeMap<Target, usize>,
    /// Per platform and target: how many detections a file serves there,
    /// and how many lose the platform, for the summary line.
    pub platforms: BTreeMap<String, BTreeMap<Target, (usize, usize)>>,
}

impl Build {
    /// `aks 6/6 targets, eks 5/6 (lost: sentinel), ...`: per platform, the
    /// targets that serve it in every detection, and those that lose it.
    pub fn coverage_summary(&self, targets: &[Target]) -> String {
        self.platforms
            .iter()
            .map(|(p, per)| {
                let lost: Vec<&str> = targets
                    .iter()
                    .filter(|t| per.get(t).is_none_or(|&(_, l)| l > 0))
                    .map(|t| t.name())
                    .collect();
                let served = targets.len() - lost.len();
                if lost.is_empty() {
                    format!("{p} {served}/{}", targets.len())
                } else {
                    format!("{p} {served}/{} (lost: {})", targets.len(), lost.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn build(rules: &[&Rule], opts: &Options) -> Build {
    build_with(rules, opts, |rule, _| rule.meta.version)
}

/// [`build`], with the version each rule's files carry for each target
/// (from `detc.lock`, see [`crate::workflow::lock`]). The files are kept in memory.
pub fn build_with(
    rules: &[&Rule],
    opts: &Options,
    version: impl Fn(&Rule, Target) -> u32 + Sync,
) -> Build {
    let files = Mutex::new(BTreeMap::new());
    let mut b = build_streaming(rules, opts, version, &|path: &str, contents: String| {
        files
            .lock()
            .expect("no panic while holding the lock")
            .insert(path.to_string(), contents);
        Ok(())
    })
    .expect("writing to memory cannot fail");
    b.files = files.into_inner().expect("no panic while holding the lock");
    b
}

/// [`build_with`], writing each file into a staging directory as soon as it
/// is rendered, then swapping it in for `out` when the build has no error
/// (otherwise `out` is left untouched). `Build::files` stays empty.
pub fn build_to_dir(
    rules: &[&Rule],
    opts: &Options,
    version: impl Fn(&Rule, Target) -> u32 + Sync,
    out: &Path,
) -> std::io::Result<Build> {
    let parent = parent_of(out);
    std::fs::create_dir_all(&parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".detc-staging-")
        .tempdir_in(&parent)?;
    let root = staging.path();
    let b = build_streaming(rules, opts, version, &|rel: &str, contents: String| {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, contents)
    })?;
    if b.errors.is_empty() {
        swap_in(staging.keep(), out)?;
    }
    Ok(b)
}

/// A file sink: relative path, contents. Called from several threads.
type Sink<'a> = dyn Fn(&str, String) -> std::io::Result<()> + Sync + 'a;

/// One rule's part of the build, made on any thread.
struct RuleResult {
    test_errors: Vec<String>,
    /// Per target of `opts.targets`, in order.
    targets: Vec<Outcome>,
}

fn build_rule(
    rule: &Rule,
    opts: &Options,
    version: &(dyn Fn(&Rule, Target) -> u32 + Sync),
    sink: &Sink,
    notes: &Notes,
    vias: &Vias,
) -> std::io::Result<RuleResult> {
    // A rule whose own tests fail is not built for any target.
    let test_errors = crate::eval::run_tests(rule)
        .into_iter()
        .filter(|t| !t.ok)
        .map(|t| {
            format!(
                "{}: test {:?} [{}] fails: {}",
                rule.name, t.name, t.platform, t.detail
            )
        })
        .collect();
    let mut targets = Vec::with_capacity(opts.targets.len());
    for &target in &opts.targets {
        let v = version(rule, target);
        let rendered = if v == rule.meta.version {
            render_with(rule, target, &opts.settings)
        } else {
            let mut versioned = rule.clone();
            versioned.meta.version = v;
            render_with(&versioned, target, &opts.settings)
        };
        let mut coverage = Vec::new();
        let mut verdicts = Vec::new();
        let result = match rendered {
            Ok(r) => {
                // The tests on what each file actually tests: a change must be
                // reported by the backend as a `match` loss.
                let mut silent = Vec::new();
                for c in &r.conditions {
                    let Some(det) = rule.detections.iter().find(|d| d.stem == c.stem) else {
                        continue;
                    };
                    if c.expr == det.condition {
                        continue;
                    }
                    let changes = crate::eval::verdict_changes(
                        rule,
                        det,
                        &c.platforms,
                        &det.inlined(&det.condition),
                        &det.inlined(&c.expr),
                    );
                    if changes.is_empty() {
                        continue;
                    }
                    let reported = r.losses.iter().any(|l| {
                        l.stem == c.stem
                            && l.kind == LossKind::Unsupported
                            && l.construct.starts_with("match")
                    });
                    if !reported {
                        silent.push(format!(
                            "{}: {target}: internal error: {} changes the verdict of the tests {} without reporting it",
                            rule.name,
                            c.file,
                            changes.join(", ")
                        ));
                    }
                    verdicts.push((c.file.clone(), changes));
                }
                if let Some(e) = silent.into_iter().next() {
                    targets.push(Outcome {
                        rule: rule.name.clone(),
                        target,
                        result: Err(BackendError(e)),
                        coverage: Vec::new(),
                        verdicts: Vec::new(),
                    });
                    continue;
                }
                coverage = r
                    .coverage
                    .into_iter()
                    .map(|c| Covered {
                        via: intern(vias, &c.via),
                        stem: c.stem,
                        source: c.source,
                        platform: c.platform,
                        file: c.file,
                    })
                    .collect();
                let mut paths = Vec::with_capacity(r.files.len());
                for f in r.files {
                    sink(&format!("{}/{}", target.name(), f.path), f.contents)?;
                    paths.push(f.path);
                }
                Ok((
                    paths,
                    r.losses.into_iter().map(|l| keep(notes, l)).collect(),
                ))
            }
            Err(e) => Err(e),
        };
        targets.push(Outcome {
            rule: rule.name.clone(),
            target,
            result,
            coverage,
            verdicts,
        });
    }
    Ok(RuleResult {
        test_errors,
        targets,
    })
}

fn build_streaming(
    rules: &[&Rule],
    opts: &Options,
    version: impl Fn(&Rule, Target) -> u32 + Sync,
    sink: &Sink,
) -> std::io::Result<Build> {
    let notes = Notes::default();
    let vias = Vias::default();
    let results: Vec<RuleResult> = rules
        .par_iter()
        .map(|rule| build_rule(rule, opts, &version, sink, &notes, &vias))
        .collect::<std::io::Result<_>>()?;
    let mut b = Build::default();
    for r in &results {
        b.errors.extend(r.test_errors.iter().cloned());
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut rows = Vec::with_capacity(rules.len() * opts.targets.len());
    let mut add = |b: &mut Build, path: String| {
        if !seen.insert(path.clone()) {
            b.errors.push(format!("two outputs write {path}"));
        }
    };
    let mut results: Vec<std::vec::IntoIter<Outcome>> =
        results.into_iter().map(|r| r.targets.into_iter()).collect();
    for target in &opts.targets {
        for (rule, outcomes) in rules.iter().zip(results.iter_mut()) {
            let outcome = outcomes.next().expect("one outcome per target");
            for c in &outcome.coverage {
                b.platforms
                    .entry(c.platform.clone())
                    .or_default()
                    .entry(*target)
                    .or_default()
                    .0 += 1;
            }
            if let Ok((_, losses)) = &outcome.result {
                for p in losses.iter().filter_map(|k| lost_platform(&k.note)) {
                    b.platforms
                        .entry(p.to_string())
                        .or_default()
                        .entry(*target)
                        .or_default()
                        .1 += 1;
                }
            }
            match &outcome.result {
                Ok((paths, losses)) => {
                    *b.losses.entry(*target).or_default() += losses.len();
                    for kept in losses {
                        let loss = kept.loss();
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
                    for p in paths {
                        add(&mut b, format!("{}/{p}", target.name()));
                    }
                }
                Err(e) => b.errors.push(format!("{}: {target}: {e}", rule.name)),
            }
            rows.push(outcome);
        }
        match crate::backend::backend(*target).shared(rules) {
            Ok(mut files) => {
                if *target == Target::Splunk && opts.splunk_security_content {
                    let theirs = crate::backend::splunk::security_content_files();
                    files.retain(|f| !theirs.contains(&f.path));
                }
                for Artifact { path, contents } in files {
                    let path = format!("{}/{path}", target.name());
                    add(&mut b, path.clone());
                    sink(&path, contents)?;
                }
            }
            Err(e) => b.errors.push(format!("{target}: {e}")),
        }
    }
    sink("REPORT.md", report(&rows, opts))?;
    sink("REPORT.json", report_json(&rows, opts))?;
    b.file_count = seen.len() + 2;
    Ok(b)
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn kind_name(k: LossKind) -> &'static str {
    match k {
        LossKind::Unsupported => "unsupported",
        LossKind::NotApplicable => "not_applicable",
    }
}

fn status(r: &Outcome) -> &'static str {
    match &r.result {
        Ok((_, losses)) if losses.is_empty() => "exact",
        Ok(_) => "with notes",
        Err(_) => "failed",
    }
}

/// One distinct note of a target: kind, construct and reason.
type NoteKey<'a> = (Target, LossKind, &'a str, &'a str);

/// Each distinct note once per target, in order of first appearance, with
/// the rules (in build order, each once) it applies to.
fn distinct_notes(rows: &[Outcome]) -> Vec<(NoteKey<'_>, Vec<&str>)> {
    let mut index: std::collections::HashMap<NoteKey, usize> = Default::default();
    let mut notes: Vec<(NoteKey, Vec<&str>)> = Vec::new();
    for r in rows {
        let Ok((_, losses)) = &r.result else { continue };
        for l in losses {
            let key = (
                r.target,
                l.note.kind,
                l.note.construct.as_str(),
                l.note.reason.as_str(),
            );
            let i = *index.entry(key).or_insert_with(|| {
                notes.push((key, Vec::new()));
                notes.len() - 1
            });
            let rules = &mut notes[i].1;
            if rules.last() != Some(&r.rule.as_str()) {
                rules.push(&r.rule);
            }
        }
    }
    notes
}

/// The platform an `unsupported` loss says a target cannot serve.
fn lost_platform(note: &Note) -> Option<&str> {
    (note.kind == LossKind::Unsupported)
        .then(|| note.construct.strip_prefix("platform "))
        .flatten()
}

/// Detections listed one by one in the report's coverage matrix; a larger
/// build lists the integrations only (REPORT.json has every row).
const MATRIX_DETECTIONS: usize = 50;

/// The report's coverage section: per target, source and platform the
/// integration that serves it (or why none does), then the matrix of
/// detection x platform x target naming each file.
fn coverage<'a>(rows: &'a [Outcome], opts: &Options) -> String {
    let mut s = String::from(
        "\n## Coverage\n\nWhich integration serves each platform in each target, and which generated file reads it. \
         A platform a target cannot serve through its standard integration is an `unsupported` loss (**lost**).\n\n\
         | target | source | platform | integration | detections |\n|---|---|---|---|---|\n",
    );
    // stem -> source, from any target's rows.
    let mut source_of: BTreeMap<&'a str, &'a str> = BTreeMap::new();
    for r in rows {
        for c in &r.coverage {
            source_of.insert(&c.stem, &c.source);
        }
    }
    // (target, source, platform, lost?, via or lost reason) -> detections.
    type Key<'k> = (Target, &'k str, &'k str, bool, &'k str);
    let mut counts: std::collections::HashMap<Key<'a>, usize> = Default::default();
    // The detections (stems) the build covers, to decide on the matrix.
    let mut stems: HashSet<&'a str> = HashSet::new();
    for r in rows {
        for c in &r.coverage {
            *counts
                .entry((r.target, &c.source, &c.platform, false, &c.via))
                .or_default() += 1;
            stems.insert(&c.stem);
        }
        if let Ok((_, losses)) = &r.result {
            for k in losses {
                if let Some(p) = lost_platform(&k.note) {
                    let src = source_of.get(k.stem.as_str()).copied().unwrap_or("-");
                    *counts
                        .entry((r.target, src, p, true, &k.note.reason))
                        .or_default() += 1;
                    stems.insert(&k.stem);
                }
            }
        }
    }
    let mut legend: Vec<(Key, usize)> = counts.into_iter().collect();
    let ord = |t: Target| opts.targets.iter().position(|x| *x == t);
    legend.sort_by(|a, b| {
        (ord(a.0 .0), a.0 .1, a.0 .2, a.0 .3, a.0 .4).cmp(&(
            ord(b.0 .0),
            b.0 .1,
            b.0 .2,
            b.0 .3,
            b.0 .4,
        ))
    });
    for ((t, src, p, lost, via), n) in &legend {
        let via = if *lost {
            format!("**lost**: {via}")
        } else {
            via.to_string()
        };
        let _ = writeln!(s, "| {t} | {src} | {p} | {} | {n} |", cell(&via));
    }
    if stems.len() > MATRIX_DETECTIONS {
        let _ = writeln!(
            s,
            "\n{} detections: the matrix of files per detection is in REPORT.json (`coverage`).",
            stems.len()
        );
        return s;
    }
    // (rule, stem, platform) in first-seen order, then target -> cell.
    type Matrix<'a> = Vec<((&'a str, &'a str, &'a str), BTreeMap<Target, String>)>;
    let mut matrix: Matrix<'a> = Vec::new();
    let mut index: std::collections::HashMap<(&'a str, &'a str, &'a str), usize> =
        Default::default();
    {
        let mut put = |key: (&'a str, &'a str, &'a str), t: Target, text: String| {
            let i = *index.entry(key).or_insert_with(|| {
                matrix.push((key, BTreeMap::new()));
                matrix.len() - 1
            });
            let cells = &mut matrix[i].1;
            match cells.get_mut(&t) {
                Some(c) => {
                    c.push_str("<br>");
                    c.push_str(&text);
                }
                None => {
                    cells.insert(t, text);
                }
            }
        };
        for r in rows {
            for c in &r.coverage {
                put(
                    (&r.rule, &c.stem, &c.platform),
                    r.target,
                    format!("`{}`", c.file),
                );
            }
            if let Ok((_, losses)) = &r.result {
                for k in losses {
                    if let Some(p) = lost_platform(&k.note) {
                        put((&r.rule, &k.stem, p), r.target, "**lost**".into());
                    }
                }
            }
        }
    }
    let _ = write!(
        s,
        "\n| rule | detection | platform | {} |\n|---|---|---|{}\n",
        opts.targets
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(opts.targets.len())
    );
    for ((rule, stem, p), cells) in &matrix {
        let _ = writeln!(
            s,
            "| {rule} | {stem} | {p} | {} |",
            opts.targets
                .iter()
                .map(|t| cells.get(t).map_or("-".to_string(), |c| cell(c)))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    s
}

/// `dist/REPORT.md`: a summary per target, a table per target (one row per
/// rule), then each distinct note once with the rules it applies to, then
/// the failures.
pub fn report(rows: &[Outcome], opts: &Options) -> String {
    let mut s = String::from("# detc build report\n\n");
    let _ = writeln!(
        s,
        "Targets: {}. Losses: `unsupported` = the target cannot express the construct's meaning (an error unless the rule has `lossy = [target]` or the build ran with --lossy); `not_applicable` = the format has no place for the setting.{}\n",
        opts.targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
        if opts.strict { " Built with --strict." } else { "" }
    );
    s.push_str("| target | rules | exact | with notes | failed | files | notes |\n|---|---|---|---|---|---|---|\n");
    for t in &opts.targets {
        let mine = || rows.iter().filter(|r| r.target == *t);
        let count = |st: &str| mine().filter(|r| status(r) == st).count();
        let files: usize = mine()
            .filter_map(|r| r.result.as_ref().ok())
            .map(|(f, _)| f.len())
            .sum();
        let notes: usize = mine()
            .filter_map(|r| r.result.as_ref().ok())
            .map(|(_, l)| l.len())
            .sum();
        let _ = writeln!(
            s,
            "| {t} | {} | {} | {} | {} | {files} | {notes} |",
            mine().count(),
            count("exact"),
            count("with notes"),
            count("failed"),
        );
    }
    let notes = distinct_notes(rows);
    for t in &opts.targets {
        let _ = write!(
            s,
            "\n## {t}\n\n| rule | status | files | notes |\n|---|---|---|---|\n"
        );
        for r in rows.iter().filter(|r| r.target == *t) {
            let (files, losses) = match &r.result {
                Ok((f, l)) => (
                    f.iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    l.len().to_string(),
                ),
                Err(_) => (String::new(), "-".into()),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {losses} |",
                r.rule,
                status(r),
                cell(&files)
            );
        }
    }
    s.push_str(&coverage(rows, opts));
    let changed: Vec<_> = rows.iter().filter(|r| !r.verdicts.is_empty()).collect();
    s.push_str("\n## Verdict changes\n\nThe rule's tests run on the condition each generated file actually tests (what is left where a target drops a part). ");
    if changed.is_empty() {
        s.push_str("No file gives another verdict than the rule.\n");
    } else {
        s.push_str("These files give another verdict on the tests named (accepted: the rule is `lossy` for the target, and the file's notes say what was dropped):\n\n| rule | target | file | tests |\n|---|---|---|---|\n");
        for r in changed {
            for (file, tests) in &r.verdicts {
                let _ = writeln!(
                    s,
                    "| {} | {} | `{}` | {} |",
                    r.rule,
                    r.target,
                    cell(file),
                    cell(&tests.join(", "))
                );
            }
        }
    }
    s.push_str("\n## Notes\n\nEach distinct note once per target, with the rules it applies to.\n");
    if notes.is_empty() {
        s.push_str("\nNone: every construct was rendered exactly.\n");
    }
    for t in &opts.targets {
        let mine: Vec<_> = notes.iter().filter(|((nt, ..), _)| nt == t).collect();
        if mine.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n### {t}\n");
        for ((_, kind, construct, reason), rules) in mine {
            let _ = writeln!(
                s,
                "- **{}** `{}`: {} ({} rule{}: {})",
                kind_name(*kind),
                cell(construct),
                cell(reason),
                rules.len(),
                if rules.len() == 1 { "" } else { "s" },
                rules
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let failed: Vec<_> = rows.iter().filter(|r| r.result.is_err()).collect();
    if !failed.is_empty() {
        s.push_str("\n## Failures\n\n");
        for r in failed {
            if let Err(e) = &r.result {
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
    s
}

#[derive(Serialize)]
struct JsonReport<'a> {
    targets: Vec<&'static str>,
    strict: bool,
    lossy: bool,
    /// Each distinct note once per target, with the rules it applies to.
    notes: Vec<JsonNote<'a>>,
    /// One entry per rule and target, in build order.
    results: Vec<JsonResult<'a>>,
}

#[derive(Serialize)]
struct JsonNote<'a> {
    target: &'static str,
    kind: &'static str,
    construct: &'a str,
    reason: &'a str,
    rules: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    rule: &'a str,
    target: &'static str,
    status: &'static str,
    /// Relative to `dist/<target>/`.
    files: &'a [String],
    /// The detection (output stem) and the index of its note in `notes`.
    losses: Vec<JsonLoss<'a>>,
    /// Which file serves which platform of each detection, through which integration.
    coverage: Vec<JsonCoverage<'a>>,
    /// Files whose rendered condition changes test verdicts: file -> tests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    verdict_changes: Vec<(&'a str, &'a [String])>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonCoverage<'a> {
    stem: &'a str,
    source: &'a str,
    platform: &'a str,
    via: &'a str,
    file: &'a str,
}

#[derive(Serialize)]
struct JsonLoss<'a> {
    stem: &'a str,
    note: usize,
}

/// `dist/REPORT.json`: the report for tools.
pub fn report_json(rows: &[Outcome], opts: &Options) -> String {
    let notes = distinct_notes(rows);
    let index: std::collections::HashMap<NoteKey, usize> = notes
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (*k, i))
        .collect();
    let results = rows
        .iter()
        .map(|r| {
            let (files, losses, error): (&[String], _, _) = match &r.result {
                Ok((f, l)) => (
                    f,
                    l.iter()
                        .map(|l| JsonLoss {
                            stem: &l.stem,
                            note: index[&(
                                r.target,
                                l.note.kind,
                                l.note.construct.as_str(),
                                l.note.reason.as_str(),
                            )],
                        })
                        .collect(),
                    None,
                ),
                Err(e) => (&[], Vec::new(), Some(e.0.as_str())),
            };
            JsonResult {
                rule: &r.rule,
                target: r.target.name(),
                status: status(r),
                files,
                losses,
                coverage: r
                    .coverage
                    .iter()
                    .map(|c| JsonCoverage {
                        stem: &c.stem,
                        source: &c.source,
                        platform: &c.platform,
                        via: &c.via,
                        file: &c.file,
                    })
                    .collect(),
                verdict_changes: r
                    .verdicts
                    .iter()
                    .map(|(f, t)| (f.as_str(), t.as_slice()))
                    .collect(),
                error,
            }
        })
        .collect();
    let report = JsonReport {
        targets: opts.targets.iter().map(|t| t.name()).collect(),
        strict: opts.strict,
        lossy: opts.lossy,
        notes: notes
            .into_iter()
            .map(|((t, kind, construct, reason), rules)| JsonNote {
                target: t.name(),
                kind: kind_name(kind),
                construct,
                reason,
                rules,
            })
            .collect(),
        results,
    };
    let mut s = serde_json::to_string(&report).expect("the report serialises");
    s.push('\n');
    s
}

fn parent_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Replace `out` with the directory `staged` (a sibling), keeping the old
/// `out` until the new one is in place.
fn swap_in(staged: PathBuf, out: &Path) -> std::io::Result<()> {
    let parent = parent_of(out);
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
        remove_tree(&old)?;
    } else if let Err(e) = std::fs::rename(&staged, out) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e);
    }
    Ok(())
}

/// `remove_dir_all`, one top-level entry per thread.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.par_iter().try_for_each(|e| {
        if e.file_type()?.is_dir() {
            std::fs::remove_dir_all(e.path())
        } else {
            std::fs::remove_file(e.path())
        }
    })?;
    std::fs::remove_dir(dir)
}

/// Write `files` to `out` atomically: into a temporary sibling directory,
/// then swap it in. On any error the previous `out` is untouched.
pub fn write_atomically(out: &Path, files: &BTreeMap<String, String>) -> std::io::Result<()> {
    let parent = parent_of(out);
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
    swap_in(staging.keep(), out)
}
