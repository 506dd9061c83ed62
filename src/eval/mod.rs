//! The reference evaluator: the semantics of the language over JSON events.
//! Every backend is checked against it.
//!
//! - An absent or null field satisfies no comparison; `exists` tests presence.
//! - Arrays match when any element matches; `**` reaches a key at any depth.
//! - Strings compare case-insensitively unless `cased`.
//! - Numeric comparisons accept numbers and strings that parse as numbers.
//! - Booleans are JSON booleans and the strings `true`/`false`, exactly.

use crate::ir::{Cmp, Detection, Expr, Field, Glob, GlobTok, Op, Rule, Seg, Severity, Value};
use crate::sources::normalize::normalize;
use regex::{Regex, RegexBuilder};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::net::IpAddr;

/// The outcome of one detection on one event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub matched: bool,
    /// Indicators whose condition also holds (only when `matched`).
    pub indicators: Vec<String>,
    /// The rule severity raised by matching indicators.
    pub severity: Severity,
}

/// Compiled regexes of a rule, built once.
#[derive(Default)]
pub struct Evaluator {
    regexes: HashMap<(String, bool), Option<Regex>>,
}

impl Evaluator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Evaluate `rule` on a record from `platform`: pick the detection whose
    /// source covers the platform, normalise, then match.
    pub fn eval_record(&mut self, rule: &Rule, platform: &str, record: &Json) -> Option<Verdict> {
        let det = rule
            .detections
            .iter()
            .find(|d| d.platforms.iter().any(|p| p == platform))?;
        let verdict = match normalize(platform, record) {
            Some(event) => self.eval_detection(det, rule.meta.severity, &event),
            None => Verdict {
                matched: false,
                indicators: vec![],
                severity: rule.meta.severity,
            },
        };
        Some(verdict)
    }

    /// Evaluate one detection on an already normalised event.
    pub fn eval_detection(&mut self, det: &Detection, base: Severity, event: &Json) -> Verdict {
        let matched = self.eval(det, &det.condition, event);
        let mut indicators = Vec::new();
        let mut severity = base;
        if matched {
            for ind in &det.indicators {
                if self.eval(det, &ind.expr, event) {
                    indicators.push(ind.name.clone());
                    severity = severity.max(ind.severity);
                }
            }
        }
        Verdict {
            matched,
            indicators,
            severity,
        }
    }

    pub fn eval(&mut self, det: &Detection, expr: &Expr, event: &Json) -> bool {
        match expr {
            Expr::And(xs) => xs.iter().all(|x| self.eval(det, x, event)),
            Expr::Or(xs) => xs.iter().any(|x| self.eval(det, x, event)),
            Expr::Not(x) => !self.eval(det, x, event),
            Expr::Ref(name) => match det.let_expr(name) {
                Some(e) => self.eval(det, e, event),
                None => false,
            },
            Expr::Cmp(c) => self.cmp(c, event),
        }
    }

    fn cmp(&mut self, c: &Cmp, event: &Json) -> bool {
        let leaves = lookup(event, &c.field);
        if c.op == Op::Exists {
            return !leaves.is_empty();
        }
        let one = |this: &mut Self, v: &Value| leaves.iter().any(|leaf| this.leaf(c, leaf, v));
        if c.all {
            c.values.iter().all(|v| one(self, v))
        } else {
            c.values.iter().any(|v| one(self, v))
        }
    }

    /// One value against one leaf. The match over operators is exhaustive:
    /// a new operator does not compile until it has a meaning here.
    fn leaf(&mut self, c: &Cmp, leaf: &Json, v: &Value) -> bool {
        let numeric = |cmp: fn(f64, f64) -> bool| match (number(leaf), value_number(v)) {
            (Some(a), Some(b)) => cmp(a, b),
            _ => false,
        };
        match c.op {
            // `exists` is decided on the leaves as a whole, in `cmp`.
            Op::Exists => true,
            Op::Lt => numeric(|a, b| a < b),
            Op::Le => numeric(|a, b| a <= b),
            Op::Gt => numeric(|a, b| a > b),
            Op::Ge => numeric(|a, b| a >= b),
            Op::Eq | Op::Ne => equal(c, leaf, v).is_some_and(|eq| eq == (c.op == Op::Eq)),
            Op::Cidr => {
                let (Some(text), Value::Net(net)) = (scalar_text(leaf), v) else {
                    return false;
                };
                text.parse::<IpAddr>()
                    .is_ok_and(|ip| net.net().contains(&ip))
            }
            Op::Matches | Op::Like => {
                let Some(text) = scalar_text(leaf) else {
                    return false;
                };
                let re = match v {
                    Value::Glob(g) => glob_to_regex(g),
                    Value::Regex(r) => r.clone(),
                    _ => return false,
                };
                self.regex(&re, c.cased).is_some_and(|r| r.is_match(&text))
            }
            Op::StartsWith | Op::EndsWith | Op::Contains => {
                let (Some(have), Some(want)) = (scalar_text(leaf), v.as_str()) else {
                    return false;
                };
                let (have, want) = if c.cased {
                    (have, want.to_string())
                } else {
                    (
                        crate::fold::fold(&have).into_owned(),
                        crate::fold::fold(want).into_owned(),
                    )
                };
                match c.op {
                    Op::StartsWith => have.starts_with(&want),
                    Op::EndsWith => have.ends_with(&want),
                    _ => have.contains(&want),
                }
            }
        }
    }

    fn regex(&mut self, pattern: &str, cased: bool) -> Option<&Regex> {
        self.regexes
            .entry((pattern.to_string(), cased))
            .or_insert_with(|| compiled(pattern, cased))
            .as_ref()
    }
}

/// `pattern` compiled for the evaluator. Case-insensitive is detc's folding
/// (`crate::fold`), written into the pattern; Rust's `(?i)` would also fold
/// `ſ` to `s`. Memoised for the process: rules share their regexes, and
/// compiling them was a twentieth of a build.
#[cached::proc_macro::cached(
    size = 4096,
    key = "(String, bool)",
    convert = "{ (pattern.to_string(), cased) }"
)]
fn compiled(pattern: &str, cased: bool) -> Option<Regex> {
    let pattern = if cased {
        pattern.to_string()
    } else {
        crate::fold::expand_regex(pattern, crate::fold::Ascii::Explicit)?
    };
    RegexBuilder::new(&pattern)
        .size_limit(crate::check::regex_subset::EVAL_SIZE_LIMIT)
        .build()
        .ok()
}

/// `==` between a leaf and a value, or `None` when they cannot be compared
/// (then neither `==` nor `!=` holds: `!=` needs a comparable value).
fn equal(c: &Cmp, leaf: &Json, v: &Value) -> Option<bool> {
    match v {
        Value::Num(n) => Some(number(leaf)? == n.as_f64()?),
        Value::Bool(b) => {
            let actual = match leaf {
                Json::Bool(x) => *x,
                // Exactly the JSON text of a boolean: Elasticsearch's boolean
                // fields refuse any other spelling (docs/language.md).
                Json::String(s) if s == "true" => true,
                Json::String(s) if s == "false" => false,
                _ => return None,
            };
            Some(actual == *b)
        }
        Value::Str(want) => {
            let have = scalar_text(leaf)?;
            Some(if c.cased {
                have == *want
            } else {
                crate::fold::fold(&have) == crate::fold::fold(want)
            })
        }
        Value::Regex(_) | Value::Glob(_) | Value::Net(_) => None,
    }
}

/// `like` glob to an anchored regex: `*` any run, `?` one character,
/// `\*` `\?` `\\` literal.
pub fn glob_to_regex(glob: &Glob) -> String {
    let mut re = String::from("(?s)^");
    for t in glob.tokens() {
        match t {
            GlobTok::Any => re.push_str(".*"),
            GlobTok::One => re.push('.'),
            GlobTok::Lit(c) => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

/// A scalar as the text string comparisons see.
fn scalar_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn value_number(v: &Value) -> Option<f64> {
    match v {
        Value::Num(n) => n.as_f64(),
        _ => None,
    }
}

/// All non-null leaf values at `field`, arrays flattened.
pub fn lookup<'a>(event: &'a Json, field: &Field) -> Vec<&'a Json> {
    let mut current = vec![event];
    for seg in &field.0 {
        let mut next = Vec::new();
        for v in current {
            match seg {
                Seg::Key(k) => step(v, k, &mut next),
                Seg::AnyDepth => descendants(v, &mut next),
            }
        }
        current = next;
    }
    let mut out = Vec::new();
    for v in current {
        flatten(v, &mut out);
    }
    out
}

fn step<'a>(v: &'a Json, key: &str, out: &mut Vec<&'a Json>) {
    match v {
        Json::Object(m) => {
            if let Some(x) = m.get(key) {
                out.push(x);
            }
        }
        Json::Array(items) => items.iter().for_each(|i| step(i, key, out)),
        _ => {}
    }
}

/// `v` itself and every value below it (the `**` of `a.**.b` may be empty).
fn descendants<'a>(v: &'a Json, out: &mut Vec<&'a Json>) {
    out.push(v);
    match v {
        Json::Object(m) => m.values().for_each(|x| descendants(x, out)),
        Json::Array(items) => items.iter().for_each(|x| descendants(x, out)),
        _ => {}
    }
}

fn flatten<'a>(v: &'a Json, out: &mut Vec<&'a Json>) {
    match v {
        Json::Null => {}
        Json::Array(items) => items.iter().for_each(|x| flatten(x, out)),
        other => out.push(other),
    }
}

/// The result of one `test` of a rule.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub name: String,
    pub platform: String,
    pub ok: bool,
    /// What was expected and what happened.
    pub detail: String,
    pub verdict: Verdict,
}

/// The tests of `det` (on `platforms`) whose verdict differs between the
/// condition `full` and `kept` (what a target rendered), as `"name"` texts.
pub fn verdict_changes(
    rule: &Rule,
    det: &Detection,
    platforms: &[String],
    full: &Expr,
    kept: &Expr,
) -> Vec<String> {
    let mut ev = Evaluator::new();
    let mut out = Vec::new();
    for t in rule
        .tests
        .iter()
        .filter(|t| det.platforms.contains(&t.platform) && platforms.contains(&t.platform))
    {
        let mut before = false;
        let mut after = false;
        for record in crate::sources::normalize::records_ref(&t.event) {
            if let Some(event) = crate::sources::normalize::normalize(&t.platform, record) {
                before |= ev.eval(det, full, &event);
                after |= ev.eval(det, kept, &event);
            }
        }
        if before != after {
            out.push(format!("\"{}\"", t.name));
        }
    }
    out
}

/// Run a rule's tests through the evaluator.
pub fn run_tests(rule: &Rule) -> Vec<TestResult> {
    let mut ev = Evaluator::new();
    rule.tests
        .iter()
        .map(|t| {
            // An export of several records (Event Hub `{"records": [...]}`)
            // matches when one of its records does.
            let no_match = Verdict {
                matched: false,
                indicators: vec![],
                severity: rule.meta.severity,
            };
            let verdicts = crate::sources::normalize::records_ref(&t.event)
                .iter()
                .filter_map(|record| ev.eval_record(rule, &t.platform, record))
                .collect::<Vec<_>>();
            let verdict = verdicts.into_iter().find(|v| v.matched).unwrap_or(no_match);
            let mut ok = verdict.matched == t.expect.matched;
            let mut detail = format!(
                "expected {}, got {}",
                if t.expect.matched {
                    "match"
                } else {
                    "no match"
                },
                if verdict.matched { "match" } else { "no match" }
            );
            if let (true, Some(want)) = (ok, &t.expect.indicators) {
                let mut got = verdict.indicators.clone();
                got.sort();
                if &got != want {
                    ok = false;
                    detail = format!(
                        "expected indicators [{}], got [{}]",
                        want.join(", "),
                        got.join(", ")
                    );
                }
            }
            TestResult {
                name: t.name.clone(),
                platform: t.platform.clone(),
                ok,
                detail,
                verdict,
            }
        })
        .collect()
}

/// Records of an events file: NDJSON, a JSON array, a single object, or an
/// Event Hub export `{"records": [...]}`.
pub fn parse_records(text: &str) -> Result<Vec<Json>, serde_json::Error> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(text).map(crate::sources::normalize::records);
    }
    let mut out = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<Json>() {
        out.extend(crate::sources::normalize::records(value?));
    }
    Ok(out)
}
