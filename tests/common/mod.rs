//! Helpers shared by the integration tests of the targets.
#![allow(dead_code)]

use detc::backend::Artifact;
use detc::ir::{Detection, Expr, Field, Rule};
use serde_json::Value as Json;
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

/// The fields a condition compares (through its lets), `**` paths left out.
pub fn referenced_fields(det: &Detection, e: &Expr, out: &mut Vec<Field>) {
    match e {
        Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| referenced_fields(det, x, out)),
        Expr::Not(x) => referenced_fields(det, x, out),
        Expr::Ref(n) => {
            if let Some(x) = det.let_expr(n) {
                referenced_fields(det, x, out)
            }
        }
        Expr::Cmp(c) => {
            if !out.contains(&c.field) && !c.field.has_any_depth() {
                out.push(c.field.clone())
            }
        }
    }
}

/// `v` without the value at `path` (in every element of an array on the way).
pub fn remove_path(v: &mut Json, path: &[String]) {
    match v {
        Json::Array(items) => items.iter_mut().for_each(|i| remove_path(i, path)),
        Json::Object(m) => match path {
            [last] => {
                m.remove(last);
            }
            [first, rest @ ..] => {
                if let Some(x) = m.get_mut(first) {
                    remove_path(x, rest)
                }
            }
            [] => {}
        },
        _ => {}
    }
}

/// `v` with every string upper-cased.
pub fn upper(v: &Json) -> Json {
    match v {
        Json::String(s) => Json::String(s.to_uppercase()),
        Json::Array(xs) => Json::Array(xs.iter().map(upper).collect()),
        Json::Object(m) => Json::Object(m.iter().map(|(k, x)| (k.clone(), upper(x))).collect()),
        other => other.clone(),
    }
}

/// A validator wrapper under tests/validators/.
pub fn validator(name: &str) -> PathBuf {
    root().join("tests/validators").join(name)
}

/// Compile one rule text (test `file` paths relative to rules/).
pub fn compile(text: &str) -> Rule {
    let mut rules = detc::load::compile_text("test.rule", text, &root().join("rules"))
        .unwrap_or_else(|r| panic!("rule does not check: {:?}", r.diagnostics));
    assert_eq!(rules.len(), 1);
    rules.remove(0)
}

/// Write generated files into `dir`; their paths.
pub fn write_files(dir: &Path, files: &[Artifact]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|f| {
            let p = dir.join(&f.path);
            std::fs::write(&p, &f.contents).expect("write");
            p
        })
        .collect()
}

/// The fields a detection compares, in its match and its indicators.
pub fn compared_fields(det: &Detection) -> Vec<Field> {
    let mut fields = Vec::new();
    referenced_fields(det, &det.condition, &mut fields);
    for i in &det.indicators {
        referenced_fields(det, &i.expr, &mut fields);
    }
    fields
}

/// `event` under `label`, after one variant per compared field removed and
/// one with every string upper-cased.
pub fn with_variants(fields: &[Field], label: &str, event: Json, out: &mut Vec<(String, Json)>) {
    for f in fields {
        let mut e = event.clone();
        let segs: Vec<String> = f
            .keys()
            .map(|k| k.unwrap_or_default().to_string())
            .collect();
        remove_path(&mut e, &segs);
        out.push((format!("{label} without {}", f.dotted()), e));
    }
    out.push((format!("{label} upper-cased"), upper(&event)));
    out.push((label.to_string(), event));
}

/// How an Elastic language narrows an expression (see
/// `detc::backend::elastic::Narrowed`).
pub type Narrow =
    fn(&Detection, &Expr) -> Result<detc::backend::elastic::Narrowed, Vec<(String, String)>>;

/// detc's verdict on what the query keeps: the narrowed match, and with an
/// indicator the narrowed indicator too.
pub fn narrowed_verdict(
    ev: &mut detc::eval::Evaluator,
    det: &Detection,
    event: &Json,
    indicator: Option<&str>,
    narrow: Narrow,
) -> bool {
    let Ok(cond) = narrow(det, &det.condition) else {
        return false;
    };
    if !ev.eval(det, &cond.expr, event) {
        return false;
    }
    match indicator {
        None => true,
        Some(name) => {
            let ind = det
                .indicators
                .iter()
                .find(|i| i.name == name)
                .expect("indicator");
            narrow(det, &ind.expr).is_ok_and(|n| ev.eval(det, &n.expr, event))
        }
    }
}

/// A rule test whose verdict the narrowing changes (`full` before, `want`
/// after) must be named in the narrowing's loss: the problem when it is not.
#[allow(clippy::too_many_arguments)]
pub fn unnamed_narrowing(
    rule: &Rule,
    losses: &[detc::backend::Loss],
    det: &Detection,
    path: &str,
    label: &str,
    indicator: Option<&str>,
    full: bool,
    want: bool,
) -> Option<String> {
    if full == want || !rule.tests.iter().any(|t| t.name == label) {
        return None;
    }
    let construct = match indicator {
        None => "match (narrowed)".to_string(),
        Some(i) => format!("indicator {i} (narrowed)"),
    };
    let named = losses.iter().any(|l| {
        l.stem == det.stem && l.construct == construct && l.reason.contains(&format!("\"{label}\""))
    });
    (!named).then(|| {
        format!(
            "{}: {path}: `{label}` changes verdict under the narrowing, and the `{construct}` loss does not name it",
            rule.name
        )
    })
}

/// `e` with the value at `path` set to `v` (objects made on the way), or
/// removed when `v` is null: a variant of a test record.
pub fn with_value(e: &Json, path: &[&str], v: Json) -> Json {
    let mut e = e.clone();
    let mut cur = &mut e;
    for (i, k) in path.iter().enumerate() {
        let Json::Object(m) = cur else { break };
        if i + 1 == path.len() {
            if v.is_null() {
                m.remove(*k);
            } else {
                m.insert(k.to_string(), v.clone());
            }
            break;
        }
        cur = m
            .entry(k.to_string())
            .or_insert_with(|| serde_json::json!({}));
    }
    e
}
