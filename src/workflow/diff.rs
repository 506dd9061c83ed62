//! `detc diff BASE HEAD`: what a change to the rules changes in the
//! generated output, per rule and target, and in each rule's test verdicts.
//! Markdown for a pull-request comment, or the same as JSON.

use crate::backend::{Settings, Target};
use crate::ir::Rule;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Added,
    Changed,
    Removed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Changed => "changed",
            Status::Removed => "removed",
        }
    }
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub base: String,
    pub head: String,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
    /// Rules that differ, by name.
    pub rules: Vec<RuleDiff>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleDiff {
    pub rule: String,
    pub status: Status,
    /// Targets whose output differs.
    pub targets: Vec<String>,
    pub tests_before: Option<TestTally>,
    pub tests_after: Option<TestTally>,
    /// Tests whose expectation or verdict differs (or that were added or removed).
    pub tests: Vec<TestChange>,
    pub outputs: Vec<OutputDiff>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TestTally {
    pub passed: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestState {
    /// `match`, `match with [a, b]` or `no match`.
    pub expect: String,
    /// What the reference evaluator says: `match [a, b]` or `no match`.
    pub verdict: String,
    pub pass: bool,
}

impl TestState {
    fn cell(&self) -> String {
        format!(
            "expect {}; got {}: {}",
            self.expect,
            self.verdict,
            if self.pass { "pass" } else { "**FAIL**" }
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TestChange {
    pub name: String,
    pub platform: String,
    pub before: Option<TestState>,
    pub after: Option<TestState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputDiff {
    pub target: String,
    /// Path under the target's output directory.
    pub path: String,
    pub status: Status,
    /// Unified diff of the query alone (`None` when only metadata changed).
    pub query_diff: Option<String>,
    /// Unified diff of the whole file (`None` when the file is the query).
    pub file_diff: Option<String>,
    /// Whether the file holds the query (false for metadata-only files such
    /// as Panther's YAML).
    pub has_query: bool,
}

/// A rule's rendered files per target (`path -> contents`); a target that
/// cannot render the rule holds one `ERROR` entry with the message.
type Outputs = BTreeMap<Target, BTreeMap<String, String>>;

fn outputs(rule: &Rule, targets: &[Target], settings: &Settings) -> Outputs {
    targets
        .iter()
        .map(|&t| {
            let files = match crate::build::render_with(rule, t, settings) {
                Ok(r) => r.files.into_iter().map(|f| (f.path, f.contents)).collect(),
                Err(e) => BTreeMap::from([("ERROR".to_string(), format!("{e}\n"))]),
            };
            (t, files)
        })
        .collect()
}

fn tests(rule: &Rule) -> BTreeMap<String, (String, TestState)> {
    crate::eval::run_tests(rule)
        .into_iter()
        .zip(&rule.tests)
        .map(|(r, t)| {
            let expect = match (&t.expect.matched, &t.expect.indicators) {
                (false, _) => "no match".to_string(),
                (true, None) => "match".to_string(),
                (true, Some(i)) => format!("match with [{}]", i.join(", ")),
            };
            let verdict = if r.verdict.matched {
                let mut i = r.verdict.indicators.clone();
                i.sort();
                if i.is_empty() {
                    "match".to_string()
                } else {
                    format!("match [{}]", i.join(", "))
                }
            } else {
                "no match".to_string()
            };
            (
                r.name,
                (
                    r.platform,
                    TestState {
                        expect,
                        verdict,
                        pass: r.ok,
                    },
                ),
            )
        })
        .collect()
}

fn tally(t: &BTreeMap<String, (String, TestState)>) -> TestTally {
    let passed = t.values().filter(|(_, s)| s.pass).count();
    TestTally {
        passed,
        failed: t.len() - passed,
    }
}

/// The query part of a generated file, found by its format: the `search`,
/// `query` or `detection` key of YAML, `rule.query` or `query` of TOML; a
/// Python file (Panther) or any other file is all query. `None` when the file
/// is the query.
fn query_of(path: &str, text: &str) -> Option<String> {
    const KEYS: [&str; 3] = ["search", "query", "detection"];
    if path.ends_with(".yml") || path.ends_with(".yaml") {
        let v: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
        let map = v.as_mapping()?;
        let q = KEYS.iter().find_map(|k| map.get(*k))?;
        return Some(match q.as_str() {
            Some(s) => format!("{}\n", s.trim_end()),
            None => serde_yaml::to_string(q).ok()?,
        });
    }
    if path.ends_with(".toml") {
        let v: toml::Value = toml::from_str(text).ok()?;
        let q = v
            .get("rule")
            .and_then(|r| r.get("query"))
            .or_else(|| v.get("query"))?;
        return Some(format!("{}\n", q.as_str()?.trim_end()));
    }
    None
}

fn unified(a: &str, b: &str, from: &str, to: &str) -> String {
    similar::TextDiff::from_lines(a, b)
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string()
}

fn output_diffs(
    target: Target,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<OutputDiff> {
    let paths: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for path in paths {
        let (a, b) = (before.get(path), after.get(path));
        if a == b {
            continue;
        }
        let status = match (a, b) {
            (None, _) => Status::Added,
            (_, None) => Status::Removed,
            _ => Status::Changed,
        };
        let (a, b) = (a.map_or("", |s| s), b.map_or("", |s| s));
        let (from, to) = (format!("a/{target}/{path}"), format!("b/{target}/{path}"));
        let (qa, qb) = (query_of(path, a), query_of(path, b));
        let structured = [".yml", ".yaml", ".toml"].iter().any(|x| path.ends_with(x));
        let has_query = qa.is_some() || qb.is_some() || !structured;
        let (query_diff, file_diff) = if !has_query {
            (None, Some(unified(a, b, &from, &to)))
        } else if qa.is_some() || qb.is_some() {
            let (qa, qb) = (qa.unwrap_or_default(), qb.unwrap_or_default());
            let q = (qa != qb).then(|| unified(&qa, &qb, &from, &to));
            (q, Some(unified(a, b, &from, &to)))
        } else {
            (Some(unified(a, b, &from, &to)), None)
        };
        out.push(OutputDiff {
            target: target.name().to_string(),
            path: path.clone(),
            status,
            query_diff,
            file_diff,
            has_query,
        });
    }
    out
}

/// Compare two rule sets, rendered for `targets`.
pub fn compare(
    base_label: &str,
    head_label: &str,
    base: &[&Rule],
    head: &[&Rule],
    targets: &[Target],
    settings: &Settings,
) -> Report {
    let by_name = |rules: &[&Rule]| -> BTreeMap<String, Rule> {
        rules
            .iter()
            .map(|r| (r.name.clone(), (*r).clone()))
            .collect()
    };
    let (base, head) = (by_name(base), by_name(head));
    let names: BTreeSet<&String> = base.keys().chain(head.keys()).collect();
    let mut report = Report {
        base: base_label.to_string(),
        head: head_label.to_string(),
        added: 0,
        changed: 0,
        removed: 0,
        unchanged: 0,
        rules: vec![],
    };
    let none = BTreeMap::new();
    for name in names {
        let (b, h) = (base.get(name), head.get(name));
        let (ob, oh) = (
            b.map(|r| outputs(r, targets, settings)),
            h.map(|r| outputs(r, targets, settings)),
        );
        let (tb, th) = (b.map(tests), h.map(tests));
        let mut diffs = Vec::new();
        for &t in targets {
            let before = ob.as_ref().and_then(|o| o.get(&t)).unwrap_or(&none);
            let after = oh.as_ref().and_then(|o| o.get(&t)).unwrap_or(&none);
            diffs.extend(output_diffs(t, before, after));
        }
        let test_names: BTreeSet<&String> =
            tb.iter().chain(th.iter()).flat_map(|m| m.keys()).collect();
        let mut test_changes = Vec::new();
        for tn in test_names {
            let x = tb.as_ref().and_then(|m| m.get(tn));
            let y = th.as_ref().and_then(|m| m.get(tn));
            if x.map(|v| &v.1) != y.map(|v| &v.1) {
                test_changes.push(TestChange {
                    name: tn.clone(),
                    platform: y.or(x).map(|v| v.0.clone()).unwrap_or_default(),
                    before: x.map(|v| v.1.clone()),
                    after: y.map(|v| v.1.clone()),
                });
            }
        }
        let status = match (b, h) {
            (None, _) => Status::Added,
            (_, None) => Status::Removed,
            (Some(x), Some(y)) => {
                let same_ir = crate::ir::to_yaml(x).ok() == crate::ir::to_yaml(y).ok();
                if diffs.is_empty() && test_changes.is_empty() && same_ir {
                    report.unchanged += 1;
                    continue;
                }
                Status::Changed
            }
        };
        match status {
            Status::Added => report.added += 1,
            Status::Changed => report.changed += 1,
            Status::Removed => report.removed += 1,
        }
        let mut affected: Vec<String> = Vec::new();
        for d in &diffs {
            if !affected.contains(&d.target) {
                affected.push(d.target.clone());
            }
        }
        report.rules.push(RuleDiff {
            rule: name.clone(),
            status,
            targets: affected,
            tests_before: tb.as_ref().map(tally),
            tests_after: th.as_ref().map(tally),
            tests: test_changes,
            outputs: diffs,
        });
    }
    report
}

/// A code fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

fn fenced(s: &mut String, lang: &str, text: &str) {
    let f = fence(text);
    let _ = writeln!(s, "{f}{lang}");
    s.push_str(text);
    if !text.ends_with('\n') {
        s.push('\n');
    }
    let _ = writeln!(s, "{f}");
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn tally_cell(t: Option<TestTally>) -> String {
    match t {
        None => "-".to_string(),
        Some(t) => format!("{} pass, {} fail", t.passed, t.failed),
    }
}

/// The report as Markdown, for a pull-request comment.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## detc diff: `{}` → `{}`\n",
        cell(&r.base),
        cell(&r.head)
    );
    let _ = writeln!(
        s,
        "{} rule(s) added, {} changed, {} removed, {} unchanged.\n",
        r.added, r.changed, r.removed, r.unchanged
    );
    if r.rules.is_empty() {
        s.push_str("No rule and no generated output changed.\n");
        return s;
    }
    s.push_str("| rule | change | targets affected | tests before | tests after |\n|---|---|---|---|---|\n");
    for d in &r.rules {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} |",
            d.rule,
            d.status.as_str(),
            if d.targets.is_empty() {
                "none".to_string()
            } else {
                d.targets.join(", ")
            },
            tally_cell(d.tests_before),
            tally_cell(d.tests_after)
        );
    }
    for d in &r.rules {
        let _ = writeln!(s, "\n### `{}` ({})\n", d.rule, d.status.as_str());
        if d.tests.is_empty() {
            s.push_str("No test changed its expectation or verdict.\n");
        } else {
            s.push_str("Tests whose expectation or verdict changed:\n\n| test | platform | before | after |\n|---|---|---|---|\n");
            for t in &d.tests {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} |",
                    cell(&t.name),
                    t.platform,
                    t.before.as_ref().map_or("-".to_string(), |x| x.cell()),
                    t.after.as_ref().map_or("-".to_string(), |x| x.cell())
                );
            }
        }
        for o in &d.outputs {
            let _ = writeln!(
                s,
                "\n#### {} `{}` ({})\n",
                o.target,
                o.path,
                o.status.as_str()
            );
            if !o.has_query {
                s.push_str("No query in this file (metadata and tests):\n\n");
                fenced(&mut s, "diff", o.file_diff.as_deref().unwrap_or(""));
                continue;
            }
            match &o.query_diff {
                Some(q) => {
                    s.push_str("Query:\n\n");
                    fenced(&mut s, "diff", q);
                }
                None => s.push_str("The query is unchanged.\n"),
            }
            if let Some(f) = &o.file_diff {
                s.push_str("\n<details><summary>Whole file, with the metadata</summary>\n\n");
                fenced(&mut s, "diff", f);
                s.push_str("\n</details>\n");
            }
        }
    }
    s
}
