//! `detc verify`: every rule test through every engine that runs here,
//! against the reference evaluator.
//!
//! For each rule, test and engine, the test's records are given to the
//! engine as the target receives them and its verdict is compared with
//! [`crate::eval`]'s on the same record:
//!
//! - **panther**: the generated Python (`dist/panther` in a temporary
//!   directory) on each record as a Panther Log, by the panther driver in the
//!   `panther` venv; the match, the indicators and the severity.
//! - **sigma**: the `sigma-rust` crate on the generated document that serves
//!   the platform (the canonical one on the normalised event, the
//!   `__gcp_audit` one on a GKE LogEntry named as the gcp.audit logsource
//!   names it); the match.
//! - **elastic** (EQL) and **esql**: `eql_eval.py` and `esql_eval.py` on the
//!   Elasticsearch document the integration stores, through the file that
//!   serves the platform and its indicator companions; the match and the
//!   indicators the companions tell.
//! - **sentinel**: `kql_eval.py` (duckdb-kql) on the record as the Log
//!   Analytics row of each table form; the row filter only.
//! - **splunk**: no SPL engine runs here: never checked.
//!
//! A verdict that differs from the reference is a disagreement, unless the
//! rule accepts the target's loss (`lossy`), the loss names the test, and
//! the engine gives the evaluator's verdict on what the target renders: then
//! it is an accepted loss, shown as such. The Python engines run from
//! scripts embedded in the binary, written to a temporary directory, with
//! the interpreters of the validator venvs (`DETC_VENV_DIR`, default
//! `<repository>/.venv`); one process per engine for the whole run.

use crate::backend::elastic::{self, elastic_document, field_table, Narrowed};
use crate::backend::{panther, sentinel, sigma, LossKind, Rendered};
use crate::eval::{Evaluator, Verdict};
use crate::ir::{Detection, Expr, Rule};
use crate::sources::normalize::{normalize, records_ref};
use crate::target::Target;
use serde::Serialize;
use serde_json::{json, Value as Json};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const EQL_EVAL: &str = include_str!("../tests/validators/eql_eval.py");
const ESQL_EVAL: &str = include_str!("../tests/validators/esql_eval.py");
const ESQL_PARSE: &str = include_str!("../tests/validators/esql_parse.py");
const KQL_EVAL: &str = include_str!("../tests/validators/kql_eval.py");
const KQL_SCHEMAS: &str = include_str!("../tests/validators/kql/schemas.json");
const PANTHER_DRIVER: &str = include_str!("../tests/panther_driver.py");

/// The engines, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    Panther,
    Sigma,
    Elastic,
    Esql,
    Sentinel,
    Splunk,
}

impl Engine {
    pub const ALL: [Engine; 6] = [
        Engine::Panther,
        Engine::Sigma,
        Engine::Elastic,
        Engine::Esql,
        Engine::Sentinel,
        Engine::Splunk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Panther => "panther",
            Engine::Sigma => "sigma",
            Engine::Elastic => "elastic",
            Engine::Esql => "esql",
            Engine::Sentinel => "sentinel",
            Engine::Splunk => "splunk",
        }
    }

    /// What runs the target's output here.
    pub fn runner(self) -> &'static str {
        match self {
            Engine::Panther => "the generated Python (panther venv)",
            Engine::Sigma => "sigma-rust",
            Engine::Elastic => "eql_eval.py (panther venv, eql 1.0.1)",
            Engine::Esql => "esql_eval.py (esql venv, esql-parser 9.1.3)",
            Engine::Sentinel => "kql_eval.py (kql venv, duckdb-kql 1.1.2), row filter",
            Engine::Splunk => "none: no SPL engine runs here",
        }
    }

    pub fn target(self) -> Target {
        match self {
            Engine::Panther => Target::Panther,
            Engine::Sigma => Target::Sigma,
            Engine::Elastic => Target::Elastic,
            Engine::Esql => Target::Esql,
            Engine::Sentinel => Target::Sentinel,
            Engine::Splunk => Target::Splunk,
        }
    }

    /// The venv whose python runs the engine, if it needs one.
    fn venv(self) -> Option<&'static str> {
        match self {
            Engine::Panther | Engine::Elastic => Some("panther"),
            Engine::Esql => Some("esql"),
            Engine::Sentinel => Some("kql"),
            Engine::Sigma | Engine::Splunk => None,
        }
    }
}

/// One engine's verdict on one test.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Cell {
    /// The reference's verdict.
    Agrees { verdict: String },
    /// Another verdict, or the engine failed on the rule.
    Disagrees { verdict: String, detail: String },
    /// Another verdict, as a loss the rule accepts (`lossy`) and the build
    /// reports: the engine gives the evaluator's verdict on what the target renders.
    Lossy { verdict: String, detail: String },
    /// No verdict: why. `missing` when the engine itself is not installed.
    NotChecked { reason: String, missing: bool },
}

impl Cell {
    fn not_checked(reason: impl Into<String>) -> Cell {
        Cell::NotChecked {
            reason: reason.into(),
            missing: false,
        }
    }
}

/// One test of one rule, through every engine.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub rule: String,
    pub test: String,
    pub platform: String,
    pub expected: String,
    /// The reference evaluator's verdict.
    pub reference: String,
    /// Whether the reference gives the test's expected verdict.
    pub reference_ok: bool,
    pub reference_detail: String,
    pub engines: BTreeMap<Engine, Cell>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    pub tests: usize,
    pub agree: usize,
    pub disagree: usize,
    pub lossy: usize,
    pub not_checked: usize,
    /// Not checked because an engine is not installed.
    pub missing: usize,
    /// Tests whose reference verdict is not the expected one.
    pub reference_failures: usize,
}

impl Report {
    pub fn tally(&self) -> Tally {
        let mut t = Tally {
            tests: self.rows.len(),
            ..Default::default()
        };
        for r in &self.rows {
            t.reference_failures += usize::from(!r.reference_ok);
            for c in r.engines.values() {
                match c {
                    Cell::Agrees { .. } => t.agree += 1,
                    Cell::Disagrees { .. } => t.disagree += 1,
                    Cell::Lossy { .. } => t.lossy += 1,
                    Cell::NotChecked { missing, .. } => {
                        t.not_checked += 1;
                        t.missing += usize::from(*missing);
                    }
                }
            }
        }
        t
    }

    /// The report as Markdown: the table, then the notes its cells point to.
    pub fn markdown(&self) -> String {
        let mut notes: Vec<String> = Vec::new();
        let mut note = |text: String| -> usize {
            match notes.iter().position(|n| *n == text) {
                Some(i) => i + 1,
                None => {
                    notes.push(text);
                    notes.len()
                }
            }
        };
        let mut out = String::from("| rule | test | platform | expected | reference |");
        for e in Engine::ALL {
            let _ = write!(out, " {} |", e.name());
        }
        out.push_str("\n|---|---|---|---|---|");
        for _ in Engine::ALL {
            out.push_str("---|");
        }
        out.push('\n');
        let mut disagreements = Vec::new();
        for r in &self.rows {
            let reference = if r.reference_ok {
                r.reference.clone()
            } else {
                disagreements.push(format!(
                    "{} / {}: the reference evaluator fails the test: {}",
                    r.rule, r.test, r.reference_detail
                ));
                format!("**{} (FAILS the test)**", r.reference)
            };
            let _ = write!(
                out,
                "| {} | {} | {} | {} | {} |",
                r.rule,
                md(&r.test),
                r.platform,
                r.expected,
                reference
            );
            for e in Engine::ALL {
                let text = match r.engines.get(&e) {
                    None => String::new(),
                    Some(Cell::Agrees { verdict }) => verdict.clone(),
                    Some(Cell::Disagrees { verdict, detail }) => {
                        disagreements.push(format!(
                            "{} / {} / {}: {detail}",
                            r.rule,
                            r.test,
                            e.name()
                        ));
                        format!("**DISAGREES: {verdict}**")
                    }
                    Some(Cell::Lossy { verdict, detail }) => {
                        let n = note(format!("{}: accepted loss: {detail}", e.name()));
                        format!("{verdict} (lossy [{n}])")
                    }
                    Some(Cell::NotChecked { reason, .. }) => {
                        let n = note(format!("{}: {reason}", e.name()));
                        format!("not checked [{n}]")
                    }
                };
                let _ = write!(out, " {} |", md(&text));
            }
            out.push('\n');
        }
        if !notes.is_empty() {
            out.push('\n');
            for (i, n) in notes.iter().enumerate() {
                let _ = writeln!(out, "[{}] {}", i + 1, n.replace('\n', " "));
            }
        }
        if !disagreements.is_empty() {
            out.push_str("\nDisagreements:\n");
            for d in &disagreements {
                let _ = writeln!(out, "- {}", d.replace('\n', " "));
            }
        }
        let t = self.tally();
        let _ =
            writeln!(
            out,
            "\n{} tests: {} verdicts agree, {} disagree, {} accepted losses, {} not checked{}{}",
            t.tests,
            t.agree,
            t.disagree,
            t.lossy,
            t.not_checked,
            if t.missing > 0 {
                format!(" ({} because an engine is not installed)", t.missing)
            } else {
                String::new()
            },
            if t.reference_failures > 0 {
                format!("; {} tests fail in the reference evaluator", t.reference_failures)
            } else {
                String::new()
            }
        );
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&json!({"rows": self.rows, "tally": self.tally()}))
            .unwrap_or_default()
    }
}

/// A Markdown cell: no pipe or line break breaks the table.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Where the engines come from.
#[derive(Debug, Clone)]
pub struct Options {
    /// The validator venvs (`<dir>/<name>/bin/python`).
    pub venv_dir: PathBuf,
}

/// The venv directory: `DETC_VENV_DIR`, else `<repository of base>/.venv`.
pub fn default_venv_dir(base: &Path) -> PathBuf {
    match std::env::var_os("DETC_VENV_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => crate::files::repository_root(base).join(".venv"),
    }
}

// ------------------------------------------------------------------ per record

/// What an engine says of one record (or one record in one form).
#[derive(Debug, Clone)]
enum Obs {
    Verdict {
        matched: bool,
        /// (the indicators the engine can tell, those that hold), sorted.
        indicators: Option<(Vec<String>, Vec<String>)>,
        /// A difference the engine found itself (Panther's severity).
        problem: Option<String>,
        /// The evaluator's verdict on what the target renders, when the
        /// target narrows the condition as a loss the rule accepts; and
        /// the loss.
        narrowed: Option<(bool, Vec<String>, String)>,
    },
    /// The engine failed on the rule (a crash, a query it rejects).
    Failed(String),
    NotChecked(String),
}

/// Observations per (rule index, test index): (label, record index, obs).
type Observations = HashMap<(usize, usize), Vec<(String, usize, Obs)>>;

fn verdict_text(matched: bool, indicators: &[String]) -> String {
    match (matched, indicators.is_empty()) {
        (false, _) => "no match".into(),
        (true, true) => "match".into(),
        (true, false) => format!("match [{}]", indicators.join(", ")),
    }
}

/// The cell of one test from its observations and the reference per record.
fn cell(obs: &[(String, usize, Obs)], reference: &[Verdict]) -> Cell {
    if obs.is_empty() {
        return Cell::not_checked("no record of the test reaches the engine");
    }
    let mut problems = Vec::new();
    let mut lossy = Vec::new();
    let mut unchecked = None;
    let mut any_match = false;
    let mut shown: Vec<String> = Vec::new();
    for (label, i, o) in obs {
        let want = &reference[*i];
        let mut want_ind = want.indicators.clone();
        want_ind.sort();
        match o {
            Obs::NotChecked(why) => {
                unchecked.get_or_insert_with(|| why.clone());
            }
            Obs::Failed(why) => problems.push(format!("{label}: {why}")),
            Obs::Verdict {
                matched,
                indicators,
                problem,
                narrowed,
            } => {
                let got_ind = indicators
                    .as_ref()
                    .map(|(_, g)| g.clone())
                    .unwrap_or_default();
                if *matched && !any_match {
                    any_match = true;
                    shown = got_ind.clone();
                }
                // The reference's indicators among those the engine can tell.
                let want_told = |told: &[String], list: &[String]| -> Vec<String> {
                    list.iter().filter(|x| told.contains(x)).cloned().collect()
                };
                let differs = |m: bool, ind: &[String]| -> Option<String> {
                    if *matched != m {
                        return Some(format!(
                            "reference {}, engine {}",
                            verdict_text(m, &[]),
                            verdict_text(*matched, &[])
                        ));
                    }
                    if let (true, Some((told, got))) = (m, indicators) {
                        let w = want_told(told, ind);
                        if &w != got {
                            return Some(format!(
                                "indicators: reference [{}], engine [{}]",
                                w.join(", "),
                                got.join(", ")
                            ));
                        }
                    }
                    None
                };
                match differs(want.matched, &want_ind) {
                    None => {
                        if let Some(p) = problem {
                            problems.push(format!("{label}: {p}"));
                        }
                    }
                    Some(d) => match narrowed {
                        Some((nm, nind, loss)) if differs(*nm, nind).is_none() => {
                            lossy.push(format!("{label}: {d}; {loss}"))
                        }
                        _ => problems.push(format!("{label}: {d}")),
                    },
                }
            }
        }
    }
    let verdict = verdict_text(any_match, &shown);
    if !problems.is_empty() {
        Cell::Disagrees {
            verdict,
            detail: problems.join("; "),
        }
    } else if let Some(reason) = unchecked {
        Cell::not_checked(reason)
    } else if !lossy.is_empty() {
        Cell::Lossy {
            verdict,
            detail: lossy.join("; "),
        }
    } else {
        Cell::Agrees { verdict }
    }
}

// ------------------------------------------------------------------ the run

/// Verify `rules`. Errors are I/O errors (a temporary directory).
pub fn verify(rules: &[&Rule], opts: &Options) -> std::io::Result<Report> {
    let tmp = tempfile::Builder::new().prefix("detc-verify-").tempdir()?;
    let scripts = tmp.path().join("scripts");
    std::fs::create_dir_all(scripts.join("kql"))?;
    for (name, text) in [
        ("eql_eval.py", EQL_EVAL),
        ("esql_eval.py", ESQL_EVAL),
        ("esql_parse.py", ESQL_PARSE),
        ("kql_eval.py", KQL_EVAL),
        ("kql/schemas.json", KQL_SCHEMAS),
        ("panther_driver.py", PANTHER_DRIVER),
    ] {
        std::fs::write(scripts.join(name), text)?;
    }
    let ctx = Ctx {
        rules,
        tmp: tmp.path(),
        scripts: &scripts,
        opts,
    };
    // The reference, per test and per record.
    let mut ev = Evaluator::new();
    let reference: Vec<Vec<Vec<Verdict>>> = rules
        .iter()
        .map(|rule| {
            rule.tests
                .iter()
                .map(|t| {
                    records_ref(&t.event)
                        .iter()
                        .map(|r| {
                            ev.eval_record(rule, &t.platform, r)
                                .unwrap_or_else(|| no_match(rule))
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let mut per_engine: BTreeMap<Engine, Result<Observations, String>> = BTreeMap::new();
    for engine in Engine::ALL {
        let missing = engine.venv().and_then(|v| {
            let p = python(opts, v);
            (!p.exists()).then(|| {
                format!(
                    "no python at {} (run .ci/setup-validators, or set DETC_VENV_DIR)",
                    p.display()
                )
            })
        });
        let result = match missing {
            Some(why) => Err(why),
            None => Ok(match engine {
                Engine::Panther => ctx.panther()?,
                Engine::Sigma => ctx.sigma(),
                Engine::Elastic | Engine::Esql => ctx.elastic(engine)?,
                Engine::Sentinel => ctx.sentinel()?,
                Engine::Splunk => Observations::new(),
            }),
        };
        per_engine.insert(engine, result);
    }
    let results: Vec<Vec<crate::eval::TestResult>> =
        rules.iter().map(|r| crate::eval::run_tests(r)).collect();
    let mut rows = Vec::new();
    for (ri, rule) in rules.iter().enumerate() {
        for (ti, t) in rule.tests.iter().enumerate() {
            let res = &results[ri][ti];
            let mut engines = BTreeMap::new();
            for engine in Engine::ALL {
                let c = match (&per_engine[&engine], engine) {
                    (_, Engine::Splunk) => Cell::not_checked("no SPL engine runs here"),
                    (Err(why), _) => Cell::NotChecked {
                        reason: why.clone(),
                        missing: true,
                    },
                    (Ok(obs), _) => cell(
                        obs.get(&(ri, ti)).map(Vec::as_slice).unwrap_or(&[]),
                        &reference[ri][ti],
                    ),
                };
                engines.insert(engine, c);
            }
            let mut ind = res.verdict.indicators.clone();
            ind.sort();
            rows.push(Row {
                rule: rule.name.clone(),
                test: t.name.clone(),
                platform: t.platform.clone(),
                expected: match &t.expect.indicators {
                    Some(i) if t.expect.matched => verdict_text(true, i),
                    _ => verdict_text(t.expect.matched, &[]),
                },
                reference: verdict_text(res.verdict.matched, &ind),
                reference_ok: res.ok,
                reference_detail: res.detail.clone(),
                engines,
            });
        }
    }
    Ok(Report { rows })
}

fn no_match(rule: &Rule) -> Verdict {
    Verdict {
        matched: false,
        indicators: vec![],
        severity: rule.meta.severity,
    }
}

fn python(opts: &Options, venv: &str) -> PathBuf {
    opts.venv_dir.join(venv).join("bin").join("python")
}

struct Ctx<'a> {
    rules: &'a [&'a Rule],
    tmp: &'a Path,
    scripts: &'a Path,
    opts: &'a Options,
}

/// Run `script --batch` (or the driver's mode) with `request` on stdin; its JSON output.
fn run_json(
    python: &Path,
    script: &Path,
    args: &[&str],
    cwd: &Path,
    request: &Json,
) -> Result<Json, String> {
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        // eql imports every `eql_*` module on sys.path as a plugin: run elsewhere.
        .current_dir(cwd)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let input = request.to_string();
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}{}",
            script.file_name().unwrap_or_default().to_string_lossy(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{}: output is not JSON: {e}",
            script.file_name().unwrap_or_default().to_string_lossy()
        )
    })
}

/// The rendering of every rule for a target (or why not).
fn renders(rules: &[&Rule], target: Target) -> Vec<Result<Rendered, String>> {
    rules
        .iter()
        .map(|r| {
            crate::build::render(r, target)
                .map_err(|e| format!("{} cannot render: {e}", target.name()))
        })
        .collect()
}

/// The detection of `rule` serving `platform`.
fn detection<'r>(rule: &'r Rule, platform: &str) -> Option<&'r Detection> {
    rule.detections
        .iter()
        .find(|d| d.platforms.iter().any(|p| p == platform))
}

/// Why no file of `r` serves `platform` of `det`: the loss naming the
/// platform, or the losses of the detection.
fn lost(target: Target, r: &Rendered, det: &Detection, platform: &str) -> String {
    let named = format!("platform {platform}");
    if let Some(l) = r
        .losses
        .iter()
        .find(|l| l.stem == det.stem && l.construct == named)
    {
        return format!("{} lost platform {platform}: {}", target.name(), l.reason);
    }
    let whole: Vec<String> = r
        .losses
        .iter()
        .filter(|l| l.stem == det.stem && l.kind == LossKind::Unsupported)
        .map(|l| l.construct.clone())
        .collect();
    format!(
        "no {} file serves {platform} (reported losses: {})",
        target.name(),
        if whole.is_empty() {
            "none".to_string()
        } else {
            whole.join(", ")
        }
    )
}

impl Ctx<'_> {
    // -------------------------------------------------------------- Panther

    fn panther(&self) -> std::io::Result<Observations> {
        let mut obs = Observations::new();
        let dir = self.tmp.join("panther");
        let rendered = renders(self.rules, Target::Panther);
        if let Ok(shared) = crate::backend::backend(Target::Panther).shared(self.rules) {
            for f in shared {
                write_under(&dir, &f.path, &f.contents)?;
            }
        }
        // (rule, test, record, stem, log)
        let mut cases = Vec::new();
        for (ri, (rule, r)) in self.rules.iter().zip(&rendered).enumerate() {
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    for ti in 0..rule.tests.len() {
                        obs.entry((ri, ti)).or_default().push((
                            "rule".into(),
                            0,
                            Obs::NotChecked(e.clone()),
                        ));
                    }
                    continue;
                }
            };
            for f in &r.files {
                write_under(&dir, &f.path, &f.contents)?;
            }
            for (ti, t) in rule.tests.iter().enumerate() {
                let Some(det) = detection(rule, &t.platform) else {
                    continue;
                };
                let covered = r
                    .coverage
                    .iter()
                    .any(|c| c.stem == det.stem && c.platform == t.platform);
                for (i, record) in records_ref(&t.event).iter().enumerate() {
                    let label = format!("record {i}");
                    let o = if !covered {
                        Obs::NotChecked(lost(Target::Panther, r, det, &t.platform))
                    } else if !record.is_object() {
                        // Panther receives objects only.
                        Obs::Verdict {
                            matched: false,
                            indicators: None,
                            problem: None,
                            narrowed: None,
                        }
                    } else {
                        let mut log = record.clone();
                        if let (Json::Object(m), Some((lt, _))) =
                            (&mut log, panther::log_type(&t.platform))
                        {
                            m.insert("p_log_type".into(), json!(lt));
                        }
                        cases.push((ri, ti, i, det.stem.clone(), log));
                        continue;
                    };
                    obs.entry((ri, ti)).or_default().push((label, i, o));
                }
            }
        }
        if cases.is_empty() {
            return Ok(obs);
        }
        let request = json!({
            "dir": dir.join("rules"),
            "cases": cases.iter().map(|c| json!({"stem": c.3, "log": c.4})).collect::<Vec<_>>(),
        });
        let answer = run_json(
            &python(self.opts, "panther"),
            &self.scripts.join("panther_driver.py"),
            &["verdicts"],
            self.tmp,
            &request,
        );
        let results = answer.as_ref().ok().and_then(|a| a["results"].as_array());
        for (n, (ri, ti, i, _, _)) in cases.iter().enumerate() {
            let rule = self.rules[*ri];
            let o = match (results.and_then(|rs| rs.get(n)), &answer) {
                (_, Err(e)) => Obs::Failed(e.clone()),
                (None, _) => Obs::Failed("the panther driver gave no result".into()),
                (Some(got), _) => match got.get("error") {
                    Some(err) => Obs::Failed(format!(
                        "the generated Python raised: {}",
                        err.as_str().unwrap_or("").lines().last().unwrap_or("")
                    )),
                    None => {
                        let matched = got["matched"].as_bool().unwrap_or(false);
                        let det = detection(rule, &rule.tests[*ti].platform);
                        let all: Vec<String> = det
                            .map(|d| d.indicators.iter().map(|x| x.name.clone()).collect())
                            .unwrap_or_default();
                        let got_ind: Vec<String> = got["indicators"]
                            .as_array()
                            .map(|xs| {
                                xs.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                        // The severity, which Panther alone raises with the indicators.
                        let mut ev = Evaluator::new();
                        let want = ev
                            .eval_record(
                                rule,
                                &rule.tests[*ti].platform,
                                &records_ref(&rule.tests[*ti].event)[*i],
                            )
                            .unwrap_or_else(|| no_match(rule));
                        let want_sev = if want.indicators.is_empty() {
                            "DEFAULT"
                        } else {
                            panther::python_severity(want.severity)
                        };
                        let problem = (matched && want.matched && got["severity"] != want_sev)
                            .then(|| {
                                format!(
                                    "severity: reference {want_sev}, engine {}",
                                    got["severity"]
                                )
                            });
                        Obs::Verdict {
                            matched,
                            indicators: Some((all, got_ind)),
                            problem,
                            narrowed: None,
                        }
                    }
                },
            };
            obs.entry((*ri, *ti))
                .or_default()
                .push((format!("record {i}"), *i, o));
        }
        Ok(obs)
    }

    // -------------------------------------------------------------- Sigma

    fn sigma(&self) -> Observations {
        let mut obs = Observations::new();
        let rendered = renders(self.rules, Target::Sigma);
        for (ri, (rule, r)) in self.rules.iter().zip(&rendered).enumerate() {
            let mut compiled: HashMap<String, Result<sigma_rust::Rule, String>> = HashMap::new();
            for (ti, t) in rule.tests.iter().enumerate() {
                let push = |obs: &mut Observations, i: usize, o: Obs| {
                    obs.entry((ri, ti))
                        .or_default()
                        .push((format!("record {i}"), i, o))
                };
                let r = match r {
                    Ok(r) => r,
                    Err(e) => {
                        push(&mut obs, 0, Obs::NotChecked(e.clone()));
                        continue;
                    }
                };
                let Some(det) = detection(rule, &t.platform) else {
                    continue;
                };
                let Some(cov) = r
                    .coverage
                    .iter()
                    .find(|c| c.stem == det.stem && c.platform == t.platform)
                else {
                    push(
                        &mut obs,
                        0,
                        Obs::NotChecked(lost(Target::Sigma, r, det, &t.platform)),
                    );
                    continue;
                };
                let doc = compiled.entry(cov.file.clone()).or_insert_with(|| {
                    let f = r
                        .files
                        .iter()
                        .find(|f| f.path == cov.file)
                        .ok_or_else(|| format!("no {} among the Sigma files", cov.file))?;
                    let yaml: Yaml = serde_yaml::from_str(&f.contents)
                        .map_err(|e| format!("{} is not YAML: {e}", cov.file))?;
                    sigma_rust::rule_from_yaml(&sigma_rust_text(&yaml))
                        .map_err(|e| format!("sigma-rust cannot read {}: {e}", cov.file))
                });
                let gcp = cov.file.ends_with("__gcp_audit.yml");
                for (i, record) in records_ref(&t.event).iter().enumerate() {
                    let o = match &*doc {
                        Err(e) => Obs::NotChecked(e.clone()),
                        Ok(doc) => {
                            // The event the logsource holds: the LogEntry as gcp.audit
                            // names it, or the canonical event (none: the record is not
                            // an event of the source, and no rule sees it).
                            let event = if gcp {
                                record.is_object().then(|| gcp_audit_record(record))
                            } else {
                                normalize(&t.platform, record)
                            };
                            match event.map(|e| sigma_rust_event(&e)) {
                                None => Obs::Verdict {
                                    matched: false,
                                    indicators: None,
                                    problem: None,
                                    narrowed: None,
                                },
                                Some(Err(e)) => Obs::NotChecked(e),
                                Some(Ok(e)) => Obs::Verdict {
                                    matched: doc.is_match(&e),
                                    indicators: None,
                                    problem: None,
                                    narrowed: None,
                                },
                            }
                        }
                    };
                    push(&mut obs, i, o);
                }
            }
        }
        obs
    }

    // -------------------------------------------------------------- Elastic EQL and ES|QL

    fn elastic(&self, engine: Engine) -> std::io::Result<Observations> {
        let target = engine.target();
        let (ext, script, venv) = match engine {
            Engine::Esql => ("esql", "esql_eval.py", "esql"),
            _ => ("eql", "eql_eval.py", "panther"),
        };
        let narrow: Narrow = match engine {
            Engine::Esql => crate::backend::esql::narrowed,
            _ => elastic::narrowed,
        };
        let mut obs = Observations::new();
        let rendered = renders(self.rules, target);
        // One job per query file: (query, documents, types, table).
        let mut jobs: Vec<(String, Vec<Json>, String)> = Vec::new();
        let mut job_of: HashMap<(usize, String), usize> = HashMap::new();
        // (rule, test, record, main job + doc index, companions (indicator, job, doc index), narrowed)
        struct Pending {
            ri: usize,
            ti: usize,
            i: usize,
            main: (usize, usize),
            companions: Vec<(String, usize, usize)>,
            narrowed: Option<(bool, Vec<String>, String)>,
        }
        let mut pending: Vec<Pending> = Vec::new();
        let mut ev = Evaluator::new();
        for (ri, (rule, r)) in self.rules.iter().zip(&rendered).enumerate() {
            for (ti, t) in rule.tests.iter().enumerate() {
                let mut push = |i: usize, o: Obs| {
                    obs.entry((ri, ti))
                        .or_default()
                        .push((format!("record {i}"), i, o))
                };
                let r = match r {
                    Ok(r) => r,
                    Err(e) => {
                        push(0, Obs::NotChecked(e.clone()));
                        continue;
                    }
                };
                let Some(det) = detection(rule, &t.platform) else {
                    continue;
                };
                let Some(cov) = r
                    .coverage
                    .iter()
                    .find(|c| c.stem == det.stem && c.platform == t.platform)
                else {
                    push(0, Obs::NotChecked(lost(target, r, det, &t.platform)));
                    continue;
                };
                let base = cov.file.trim_end_matches(".toml").to_string();
                let form = elastic::elastic_forms()
                    .get(&det.source)
                    .and_then(|s| s.forms.iter().find(|f| f.platforms.contains(&t.platform)));
                let Some(form) = form else {
                    push(
                        0,
                        Obs::NotChecked(format!("no Elastic form serves {}", t.platform)),
                    );
                    continue;
                };
                let projected = form.spec.projection.is_some();
                let query_of = |path: &str| -> Option<String> {
                    r.files.iter().find(|f| f.path == path).map(|f| {
                        f.contents
                            .lines()
                            .filter(|l| !l.starts_with("//"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                };
                let mut job = |path: String, jobs: &mut Vec<(String, Vec<Json>, String)>| {
                    let q = query_of(&path)?;
                    Some(*job_of.entry((ri, path)).or_insert_with(|| {
                        jobs.push((q, Vec::new(), form.spec.table.clone()));
                        jobs.len() - 1
                    }))
                };
                let Some(main) = job(format!("{base}.{ext}"), &mut jobs) else {
                    push(
                        0,
                        Obs::NotChecked(format!(
                            "no {base}.{ext} among the {} files",
                            target.name()
                        )),
                    );
                    continue;
                };
                let companions: Vec<(String, usize)> = det
                    .indicators
                    .iter()
                    .filter_map(|ind| {
                        job(format!("{base}__{}.{ext}", ind.name), &mut jobs)
                            .map(|j| (ind.name.clone(), j))
                    })
                    .collect();
                let accepted = rule.meta.lossy.contains(&target);
                let named = r.losses.iter().find(|l| {
                    l.stem == det.stem
                        && l.construct.contains("narrowed")
                        && l.reason.contains(&format!("\"{}\"", t.name))
                });
                for (i, record) in records_ref(&t.event).iter().enumerate() {
                    // The document the integration stores.
                    let doc = if projected {
                        record
                            .is_object()
                            .then(|| elastic_document(&form.spec.table, record))
                            .flatten()
                    } else {
                        normalize(&t.platform, record)
                            .and_then(|e| elastic_document(&det.source, &e))
                    };
                    let Some(doc) = doc else {
                        // Not an event of the source: no document in the data stream.
                        push(
                            i,
                            Obs::Verdict {
                                matched: false,
                                indicators: None,
                                problem: None,
                                narrowed: None,
                            },
                        );
                        continue;
                    };
                    // The evaluator on what the target renders (the narrowed condition),
                    // when the rule accepts the loss that names this test.
                    let narrowed = match (accepted, named, projected) {
                        (true, Some(loss), false) => normalize(&t.platform, record).map(|e| {
                            let keeps = |x: &Expr, ev: &mut Evaluator| {
                                narrow(det, x).is_ok_and(|n| ev.eval(det, &n.expr, &e))
                            };
                            let m = keeps(&det.condition, &mut ev);
                            let inds = if m {
                                det.indicators
                                    .iter()
                                    .filter(|ind| keeps(&ind.expr, &mut ev))
                                    .map(|ind| ind.name.clone())
                                    .collect()
                            } else {
                                Vec::new()
                            };
                            (m, inds, format!("reported as `{}`", loss.construct))
                        }),
                        _ => None,
                    };
                    let mut at = |j: usize| {
                        jobs[j].1.push(doc.clone());
                        (j, jobs[j].1.len() - 1)
                    };
                    let main_at = at(main);
                    let comp_at = companions
                        .iter()
                        .map(|(n, j)| {
                            let (j, k) = at(*j);
                            (n.clone(), j, k)
                        })
                        .collect();
                    pending.push(Pending {
                        ri,
                        ti,
                        i,
                        main: main_at,
                        companions: comp_at,
                        narrowed,
                    });
                }
            }
        }
        if pending.is_empty() {
            return Ok(obs);
        }
        let request = json!({
            "jobs": jobs.iter().map(|(q, docs, table)| match engine {
                Engine::Esql => json!({"query": q, "docs": docs, "types": types(table)}),
                _ => json!({"query": q, "events": docs}),
            }).collect::<Vec<_>>(),
        });
        let answer = run_json(
            &python(self.opts, venv),
            &self.scripts.join(script),
            &["--batch"],
            self.tmp,
            &request,
        );
        let verdict = |j: usize, k: usize| -> Result<bool, String> {
            let a = answer.as_ref().map_err(Clone::clone)?;
            let res = &a["results"][j];
            if let Some(e) = res.get("error").and_then(Json::as_str) {
                return Err(e.to_string());
            }
            res["verdicts"][k]
                .as_bool()
                .ok_or_else(|| format!("{script} gave no verdict"))
        };
        for p in pending {
            let o = (|| {
                let matched = verdict(p.main.0, p.main.1)?;
                let mut told = Vec::new();
                let mut got = Vec::new();
                for (name, j, k) in &p.companions {
                    told.push(name.clone());
                    // A companion alerts when the match and its indicator hold.
                    if verdict(*j, *k)? && matched {
                        got.push(name.clone());
                    }
                }
                told.sort();
                got.sort();
                Ok::<_, String>(Obs::Verdict {
                    matched,
                    indicators: Some((told, got)),
                    problem: None,
                    narrowed: p.narrowed.clone(),
                })
            })();
            let o = o.unwrap_or_else(|e| {
                // An ES|QL construct esql_eval.py does not evaluate is no verdict, not a wrong one.
                if e.starts_with("unsupported:") {
                    Obs::NotChecked(format!("{script}: {e}"))
                } else {
                    Obs::Failed(format!("{script}: {e}"))
                }
            });
            obs.entry((p.ri, p.ti))
                .or_default()
                .push((format!("record {}", p.i), p.i, o));
        }
        Ok(obs)
    }

    // -------------------------------------------------------------- Sentinel

    fn sentinel(&self) -> std::io::Result<Observations> {
        let mut obs = Observations::new();
        let rendered = renders(self.rules, Target::Sentinel);
        // (query, table, records)
        let mut jobs: Vec<(String, String, Vec<Json>)> = Vec::new();
        let mut job_of: HashMap<(usize, String, String), usize> = HashMap::new();
        // (rule, test, record, label, job, index)
        let mut pending: Vec<(usize, usize, usize, String, usize, usize)> = Vec::new();
        for (ri, (rule, r)) in self.rules.iter().zip(&rendered).enumerate() {
            for (ti, t) in rule.tests.iter().enumerate() {
                let mut push = |i: usize, label: String, o: Obs| {
                    obs.entry((ri, ti)).or_default().push((label, i, o))
                };
                let r = match r {
                    Ok(r) => r,
                    Err(e) => {
                        push(0, "rule".into(), Obs::NotChecked(e.clone()));
                        continue;
                    }
                };
                let Some(det) = detection(rule, &t.platform) else {
                    continue;
                };
                let forms: Vec<_> = sentinel::tables()
                    .get(&det.source)
                    .map(|s| {
                        s.forms
                            .iter()
                            .filter(|f| f.platforms.contains(&t.platform))
                            .collect()
                    })
                    .unwrap_or_default();
                if forms.is_empty() {
                    push(
                        0,
                        "rule".into(),
                        Obs::NotChecked(lost(Target::Sentinel, r, det, &t.platform)),
                    );
                    continue;
                }
                for form in forms {
                    let path = format!("{}__{}.kql", det.stem, form.name);
                    let Some(f) = r.files.iter().find(|f| f.path == path) else {
                        push(
                            0,
                            form.name.clone(),
                            Obs::NotChecked(format!(
                                "no {path}: {}",
                                lost(Target::Sentinel, r, det, &t.platform)
                            )),
                        );
                        continue;
                    };
                    let query = row_filter(&f.contents);
                    for (i, record) in records_ref(&t.event).iter().enumerate() {
                        let Some(table) = sentinel::table_of(&form.name, record) else {
                            push(
                                i,
                                format!("record {i}, {}", form.name),
                                Obs::NotChecked(format!("no table for form {}", form.name)),
                            );
                            continue;
                        };
                        let j = *job_of
                            .entry((ri, path.clone(), table.to_string()))
                            .or_insert_with(|| {
                                jobs.push((query.clone(), table.to_string(), Vec::new()));
                                jobs.len() - 1
                            });
                        jobs[j].2.push(record.clone());
                        pending.push((
                            ri,
                            ti,
                            i,
                            format!("record {i}, {table}"),
                            j,
                            jobs[j].2.len() - 1,
                        ));
                    }
                }
            }
        }
        if pending.is_empty() {
            return Ok(obs);
        }
        let request = json!({
            "jobs": jobs.iter().map(|(q, table, records)| json!({"query": q, "table": table, "records": records})).collect::<Vec<_>>(),
        });
        let answer = run_json(
            &python(self.opts, "kql"),
            &self.scripts.join("kql_eval.py"),
            &["--batch"],
            self.tmp,
            &request,
        );
        for (ri, ti, i, label, j, k) in pending {
            let o = match &answer {
                Err(e) => Obs::Failed(e.clone()),
                Ok(a) => {
                    let res = &a["results"][j];
                    match (
                        res.get("error").and_then(Json::as_str),
                        res["verdicts"][k].as_str(),
                    ) {
                        (Some(e), _) => Obs::Failed(format!("kql_eval.py: {e}")),
                        (None, Some("true")) => Obs::Verdict {
                            matched: true,
                            indicators: None,
                            problem: None,
                            narrowed: None,
                        },
                        (None, Some("false")) => Obs::Verdict {
                            matched: false,
                            indicators: None,
                            problem: None,
                            narrowed: None,
                        },
                        (None, Some(skip)) => Obs::NotChecked(format!("duckdb-kql: {skip}")),
                        (None, None) => Obs::Failed("kql_eval.py gave no verdict".into()),
                    }
                }
            };
            obs.entry((ri, ti)).or_default().push((label, i, o));
        }
        Ok(obs)
    }
}

/// How an Elastic language narrows an expression.
type Narrow = fn(&Detection, &Expr) -> Result<Narrowed, Vec<(String, String)>>;

fn write_under(dir: &Path, rel: &str, contents: &str) -> std::io::Result<()> {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(p, contents)
}

/// The mapping types of a field table's Elasticsearch fields, for esql_eval.py.
pub fn types(table: &str) -> Json {
    let mut m = serde_json::Map::new();
    if let Some(t) = field_table(table) {
        for (_, e) in &t.fields {
            m.insert(e.name.clone(), Json::String(e.ty.clone()));
        }
        for (name, e) in &t.ecs_fields {
            m.insert(name.clone(), Json::String(e.ty.clone()));
        }
    }
    Json::Object(m)
}

/// The row filter of a Sentinel query, `//` notes left out: the aggregation
/// and the run-time window are cut, since a verdict is about one record.
pub fn row_filter(contents: &str) -> String {
    let mut out = Vec::new();
    for line in contents.lines().filter(|l| !l.starts_with("//")) {
        if line.starts_with("| summarize") {
            break;
        }
        if line.starts_with("| where TimeGenerated <= ago(") {
            continue;
        }
        out.push(line);
    }
    out.join("\n")
}

// ------------------------------------------------------------------ sigma-rust

/// A generated Sigma document in the dialect sigma-rust 0.7 understands:
/// `|re|i` (the `i` flag is unknown to it) as `|re` with a `(?i)` prefix,
/// and `x: null` (the specification's "null or absent", which sigma-rust
/// reads as "present and null") as `x|exists: false`. Nothing else changes.
pub fn sigma_rust_text(doc: &Yaml) -> String {
    fn item(k: &str, v: &Yaml) -> (String, Yaml) {
        let mods: Vec<&str> = k.split('|').collect();
        if mods.len() > 1 && mods.contains(&"re") && mods.contains(&"i") {
            let k = mods
                .iter()
                .filter(|m| **m != "i")
                .copied()
                .collect::<Vec<_>>()
                .join("|");
            let prefix = |x: &Yaml| Yaml::String(format!("(?i){}", x.as_str().unwrap_or_default()));
            let v = match v {
                Yaml::Sequence(xs) => Yaml::Sequence(xs.iter().map(prefix).collect()),
                one => prefix(one),
            };
            return (k, v);
        }
        if v.is_null() {
            return (format!("{k}|exists"), Yaml::Bool(false));
        }
        (k.to_string(), v.clone())
    }
    fn map(m: &serde_yaml::Mapping) -> Yaml {
        let mut out = serde_yaml::Mapping::new();
        for (k, v) in m {
            let (k, v) = item(k.as_str().unwrap_or_default(), v);
            out.insert(Yaml::String(k), v);
        }
        Yaml::Mapping(out)
    }
    let mut doc = doc.clone();
    if let Some(det) = doc.get_mut("detection").and_then(Yaml::as_mapping_mut) {
        for (name, sel) in det.iter_mut() {
            if name.as_str() == Some("condition") {
                continue;
            }
            *sel = match &*sel {
                Yaml::Mapping(m) => map(m),
                Yaml::Sequence(xs) => Yaml::Sequence(
                    xs.iter()
                        .map(|x| x.as_mapping().map(map).unwrap_or_else(|| x.clone()))
                        .collect(),
                ),
                other => other.clone(),
            };
        }
    }
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// Null members removed: the language reads null as absent.
fn without_nulls(v: &Json) -> Json {
    match v {
        Json::Object(m) => Json::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), without_nulls(x)))
                .collect(),
        ),
        Json::Array(xs) => Json::Array(xs.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Lists of objects as objects of lists (`containers: [{image: a}, {image: b}]`
/// as `containers: {image: [a, b]}`), as Elasticsearch indexes object arrays
/// and Splunk's `containers{}.image` reads them: a dotted Sigma path through a
/// list then means "any element", the language's meaning. sigma-rust only
/// follows objects, so it gets this form.
pub fn object_lists_flattened(v: &Json) -> Json {
    match v {
        Json::Object(m) => Json::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), object_lists_flattened(x)))
                .collect(),
        ),
        Json::Array(xs) if !xs.is_empty() && xs.iter().all(Json::is_object) => {
            let mut merged: serde_json::Map<String, Json> = serde_json::Map::new();
            for x in xs {
                for (k, val) in x.as_object().into_iter().flatten() {
                    let slot = merged
                        .entry(k.clone())
                        .or_insert_with(|| Json::Array(Vec::new()));
                    if let Json::Array(list) = slot {
                        match val {
                            Json::Array(inner) => list.extend(inner.iter().cloned()),
                            other => list.push(other.clone()),
                        }
                    }
                }
            }
            // sigma-rust applies `|re` to a scalar only: a one-element list is that element.
            for val in merged.values_mut() {
                if let Json::Array(list) = val {
                    if list.len() == 1 {
                        *val = list.pop().unwrap_or(Json::Null);
                    }
                }
            }
            object_lists_flattened(&Json::Object(merged))
        }
        Json::Array(xs) => Json::Array(xs.iter().map(object_lists_flattened).collect()),
        other => other.clone(),
    }
}

/// An event as sigma-rust reads it (see [`object_lists_flattened`]).
pub fn sigma_rust_event(event: &Json) -> Result<sigma_rust::Event, String> {
    let event = without_nulls(&object_lists_flattened(event));
    sigma_rust::event_from_json(&event.to_string())
        .map_err(|e| format!("sigma-rust cannot read the event: {e}"))
}

/// A GKE LogEntry as a gcp.audit record named as the Sigma GKE document
/// names its fields (`src/sources/sigma.yaml`, form gcp_audit).
pub fn gcp_audit_record(entry: &Json) -> Json {
    let mut out = json!({});
    let Some(form) = sigma::sigma_forms()
        .get("kubernetes.audit")
        .and_then(|s| s.forms.iter().find(|f| f.name == "gcp_audit"))
    else {
        return out;
    };
    for (from, to) in &form.spec.fields {
        let mut v = entry;
        let mut found = true;
        for k in from.split('.') {
            match v.get(k) {
                Some(x) => v = x,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found || v.is_null() {
            continue;
        }
        let mut cur = &mut out;
        let keys: Vec<&str> = to.split('.').collect();
        for (i, k) in keys.iter().enumerate() {
            let Json::Object(m) = cur else { break };
            if i + 1 == keys.len() {
                m.insert(k.to_string(), v.clone());
                break;
            }
            cur = m.entry(k.to_string()).or_insert_with(|| json!({}));
        }
    }
    out
}
