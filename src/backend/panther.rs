//! The Panther backend: for each detection, `rules/<stem>.py` (a
//! self-contained Python rule) and `rules/<stem>.yml` (its spec and tests),
//! run offline by `pat test`.
//!
//! The Python file carries a fixed runtime (in the template) that mirrors
//! `sources::normalize` and the evaluator's comparison semantics; the rule's
//! own parts (lets, condition, indicators, output) are generated here: the
//! boolean structure through the shared [`printer`], each comparison as a
//! call into the runtime with every literal written by [`python_str`].
//!
//! Known differences from the Rust evaluator, all outside the test data:
//! case folding uses Python's `str.lower()` and `re.IGNORECASE` (the Unicode
//! tables of Python 3.11 instead of Rust's), Python `re` has no size limit,
//! and JSON decoding of AKS `properties.log` has Python's nesting limit
//! instead of serde_json's 128 levels.

use super::printer::{self, Dialect};
use super::text::{comment_text, python_str, yaml_str};
use super::{Artifact, Backend, BackendError, Loss, Rendered, Target};
use crate::ir::{
    Cmp, Detection, Expr, Field, Op, Rule, Seg, Severity, Status, TemplatePart, Value,
};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "panther/rule.py",
        include_str!("../../templates/panther/rule.py.tera"),
    ),
    (
        "panther/rule.yml",
        include_str!("../../templates/panther/rule.yml.tera"),
    ),
];

pub struct Panther;

impl Backend for Panther {
    fn target(&self) -> Target {
        Target::Panther
    }

    fn render(&self, rule: &Rule) -> Result<Rendered, BackendError> {
        let mut out = Rendered::default();
        for (index, det) in rule.detections.iter().enumerate() {
            let mut losses = detection_losses(det);
            let tests = tests_yaml(rule, det, &mut losses);
            let py = python_file(rule, det, &losses)?;
            let yml = yaml_file(rule, det, index, &losses, tests)?;
            out.files.push(Artifact {
                path: format!("rules/{}.py", det.stem),
                contents: py,
            });
            out.files.push(Artifact {
                path: format!("rules/{}.yml", det.stem),
                contents: yml,
            });
            out.losses.extend(losses);
        }
        Ok(out)
    }
}

/// The Panther log type of a platform and how the runtime turns its records
/// into the source's events (`event`: as is; `aks`, `gke`: see normalize.rs).
pub fn log_type(platform: &str) -> Option<(&'static str, &'static str)> {
    match platform {
        "kubernetes" | "eks" => Some(("Amazon.EKS.Audit", "event")),
        "azure" => Some(("Azure.MonitorActivity", "event")),
        "aks" => Some(("Azure.MonitorActivity", "aks")),
        "gke" => Some(("GCP.AuditLog", "gke")),
        _ => None,
    }
}

/// `Severity` in the YAML spec.
pub fn spec_severity(s: Severity) -> &'static str {
    match s {
        Severity::Informational => "Info",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    }
}

/// The value `severity(event)` returns.
pub fn python_severity(s: Severity) -> &'static str {
    match s {
        Severity::Informational => "INFO",
        Severity::Low => "LOW",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

// ------------------------------------------------------------------ Python

/// Conditions as Python over the runtime's helpers. `lets` are the names of
/// the detection's lets, in order: each becomes a function `_let_<i>_<name>`.
pub struct PyDialect<'a> {
    pub lets: Vec<&'a str>,
}

impl<'a> PyDialect<'a> {
    pub fn new(det: &'a Detection) -> Self {
        PyDialect {
            lets: det.lets.iter().map(|l| l.name.as_str()).collect(),
        }
    }
}

impl Dialect for PyDialect<'_> {
    fn reference(&self, name: &str) -> Option<String> {
        let i = self.lets.iter().position(|l| *l == name)?;
        Some(format!("{}(ev)", py_fn("_let", i, name)))
    }

    fn cmp(&self, c: &Cmp) -> Result<String, String> {
        Ok(py_cmp(c))
    }
}

/// A generated function name: unique by index, readable when `name` is plain.
fn py_fn(prefix: &str, index: usize, name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("{prefix}_{index}_{name}")
    } else {
        format!("{prefix}_{index}")
    }
}

/// A field path as a Python tuple (`_ANY` for `**`).
pub fn py_path(field: &Field) -> String {
    let segs: Vec<String> = field
        .0
        .iter()
        .map(|s| match s {
            Seg::Key(k) => python_str(k),
            Seg::AnyDepth => "_ANY".to_string(),
        })
        .collect();
    py_tuple(&segs)
}

fn py_tuple(items: &[String]) -> String {
    match items.len() {
        0 => "()".to_string(),
        1 => format!("({},)", items[0]),
        _ => format!("({})", items.join(", ")),
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A number as a Python float literal (`None` if not finite).
fn py_float(n: &serde_json::Number) -> String {
    match n.as_f64() {
        // Debug is the shortest round-trip form and always has `.` or `e`.
        Some(f) if f.is_finite() => format!("{f:?}"),
        _ => "None".to_string(),
    }
}

/// One value of a comparison as the runtime expects it for `op`; `None`
/// where the evaluator never matches that kind of value with that operator.
pub fn py_value(op: Op, v: &Value) -> String {
    match (op, v) {
        (Op::Eq | Op::Ne, Value::Str(s)) => python_str(s),
        (Op::Eq | Op::Ne, Value::Bool(b)) => py_bool(*b).to_string(),
        (Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge, Value::Num(n)) => py_float(n),
        (Op::StartsWith | Op::EndsWith | Op::Contains, Value::Str(s)) => python_str(s),
        (Op::Like, Value::Glob(g)) => python_str(g.source()),
        (Op::Matches, Value::Regex(r)) => python_str(r),
        (Op::Cidr, Value::Net(net)) => python_str(&net.net().to_string()),
        _ => "None".to_string(),
    }
}

/// One comparison as a runtime call.
pub fn py_cmp(c: &Cmp) -> String {
    let path = py_path(&c.field);
    let func = match c.op {
        Op::Exists => return format!("_exists(ev, {path})"),
        Op::Eq => "_eq",
        Op::Ne => "_ne",
        Op::StartsWith => "_startswith",
        Op::EndsWith => "_endswith",
        Op::Contains => "_contains",
        Op::Like => "_like",
        Op::Matches => "_matches",
        Op::Lt => "_lt",
        Op::Le => "_le",
        Op::Gt => "_gt",
        Op::Ge => "_ge",
        Op::Cidr => "_cidr",
    };
    let values: Vec<String> = c.values.iter().map(|v| py_value(c.op, v)).collect();
    format!(
        "{func}(ev, {path}, {}, {}, {})",
        py_tuple(&values),
        py_bool(c.cased),
        py_bool(c.all)
    )
}

/// A JSON value as a Python literal.
pub fn py_literal(v: &Json) -> String {
    match v {
        Json::Null => "None".into(),
        Json::Bool(b) => py_bool(*b).into(),
        Json::Number(n) => {
            if n.is_f64() {
                py_float(n)
            } else {
                n.to_string()
            }
        }
        Json::String(s) => python_str(s),
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(py_literal).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", python_str(k), py_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `and`/`or` groups without members print as nothing: refuse them.
fn check_groups(e: &Expr) -> Result<(), BackendError> {
    match e {
        Expr::And(xs) | Expr::Or(xs) if xs.is_empty() => Err(BackendError(
            "an empty and/or group cannot be written in Python".into(),
        )),
        Expr::And(xs) | Expr::Or(xs) => xs.iter().try_for_each(check_groups),
        Expr::Not(x) => check_groups(x),
        _ => Ok(()),
    }
}

fn print_py(d: &PyDialect, det: &Detection, e: &Expr) -> Result<String, BackendError> {
    check_groups(e)?;
    printer::print(d, det, e)
        .map_err(|u| BackendError(format!("cannot write {}: {}", u.construct, u.reason)))
}

fn function(name: &str, body: &str) -> String {
    format!("def {name}(ev):\n    return {body}\n\n\n")
}

/// The fields of the alert context: group-by, values, summary (first
/// occurrence of a field wins), keyed by output name.
fn context_fields(det: &Detection) -> Vec<(String, &Field)> {
    let mut out: Vec<(String, &Field)> = Vec::new();
    let fields = det
        .output
        .group_by
        .iter()
        .chain(det.output.values.iter().map(|a| &a.field))
        .chain(&det.output.summary);
    for f in fields {
        let name = det.output.output_name(f);
        if !out.iter().any(|(n, g)| *g == f || *n == name) {
            out.push((name, f));
        }
    }
    out
}

/// Whether a field can hold several values (an array on its path, or `**`).
fn is_list(source: &str, field: &Field) -> bool {
    if field.has_any_depth() {
        return true;
    }
    match crate::sources::catalog(source).map(|c| c.resolve(field)) {
        Some(Ok(r)) => r.free_form || r.arrays.iter().any(|a| *a),
        _ => true,
    }
}

fn rule_code(det: &Detection, severity: Severity) -> Result<String, BackendError> {
    let d = PyDialect::new(det);
    let mut code = String::new();
    for (i, l) in det.lets.iter().enumerate() {
        code.push_str(&format!("# let {}\n", comment_text(&l.name)));
        code.push_str(&function(
            &py_fn("_let", i, &l.name),
            &print_py(&d, det, &l.expr)?,
        ));
    }
    code.push_str("# match\n");
    code.push_str(&function("_condition", &print_py(&d, det, &det.condition)?));
    let mut table = Vec::new();
    for (i, ind) in det.indicators.iter().enumerate() {
        let name = py_fn("_indicator", i, &ind.name);
        code.push_str(&format!(
            "# indicator {} severity {}\n",
            comment_text(&ind.name),
            ind.severity.as_str()
        ));
        code.push_str(&function(&name, &print_py(&d, det, &ind.expr)?));
        table.push(format!(
            "    ({}, {}, {name}),\n",
            python_str(&ind.name),
            python_str(python_severity(ind.severity))
        ));
    }
    code.push_str(&format!(
        "_BASE_SEVERITY = {}\n\n",
        python_str(python_severity(severity))
    ));
    code.push_str(&format!(
        "# (name, severity, test) of each indicator\n_INDICATORS = ({})\n\n\n",
        if table.is_empty() {
            String::new()
        } else {
            format!("\n{}", table.concat())
        }
    ));

    code.push_str(
        "def rule(event):\n    ev = _normalize(event)\n    return ev is not None and bool(_condition(ev))\n\n\n",
    );
    code.push_str(
        "def detc_indicators(event):\n    \"\"\"Names of the indicators that hold on a matching event.\"\"\"\n    ev = _normalize(event)\n    if ev is None or not _condition(ev):\n        return []\n    return [name for name, _, test in _INDICATORS if test(ev)]\n\n\n",
    );
    if !det.indicators.is_empty() {
        code.push_str(
            "def severity(event):\n    \"\"\"The rule severity raised by the matching indicators; DEFAULT when none matches.\"\"\"\n    ev = _normalize(event)\n    if ev is None:\n        return \"DEFAULT\"\n    raised = [level for _, level, test in _INDICATORS if test(ev)]\n    if not raised:\n        return \"DEFAULT\"\n    return max(raised + [_BASE_SEVERITY], key=_SEVERITY_RANK.get)\n\n\n",
        );
    }
    if let Some(t) = &det.output.title {
        let parts: Vec<String> =
            t.0.iter()
                .map(|p| match p {
                    TemplatePart::Text(s) => python_str(s),
                    TemplatePart::Field(f) => format!("_display(ev, {})", py_path(f)),
                })
                .collect();
        code.push_str(&format!(
            "def title(event):\n    ev = _normalize(event)\n    return \"\".join([{}])\n\n\n",
            parts.join(", ")
        ));
    }
    if !det.output.group_by.is_empty() {
        let parts: Vec<String> = det
            .output
            .group_by
            .iter()
            .map(|f| format!("_display(ev, {})", py_path(f)))
            .collect();
        code.push_str(&format!(
            "def dedup(event):\n    ev = _normalize(event)\n    return \":\".join([{}])\n\n\n",
            parts.join(", ")
        ));
    }
    let mut entries: Vec<String> = context_fields(det)
        .iter()
        .map(|(name, f)| {
            format!(
                "        {}: _context_value(ev, {}, {}),\n",
                python_str(name),
                py_path(f),
                py_bool(is_list(&det.source, f))
            )
        })
        .collect();
    let taken = context_fields(det)
        .iter()
        .any(|(n, _)| n == "detc_indicators");
    if !det.indicators.is_empty() && !taken {
        entries.push("        \"detc_indicators\": detc_indicators(event),\n".to_string());
    }
    code.push_str(&format!(
        "def alert_context(event):\n    ev = _normalize(event)\n    return {{\n{}    }}\n",
        entries.concat()
    ));
    Ok(code)
}

/// The detection's log types: Panther log type -> how records become events.
fn log_types(det: &Detection) -> BTreeMap<&'static str, &'static str> {
    det.platforms.iter().filter_map(|p| log_type(p)).collect()
}

fn python_file(rule: &Rule, det: &Detection, losses: &[Loss]) -> Result<String, BackendError> {
    let types = log_types(det);
    if types.is_empty() {
        return Err(BackendError(format!(
            "no platform of source {} ({}) has a Panther log type",
            det.source,
            det.platforms.join(", ")
        )));
    }
    let m = &rule.meta;
    let meta = json!({
        "rule": rule.name,
        "source": det.source,
        "id": m.id,
        "title": m.title,
        "description": m.description,
        "author": m.author,
        "date": m.date,
        "modified": m.modified,
        "status": m.status.as_str(),
        "severity": m.severity.as_str(),
        "techniques": m.techniques,
        "tactics": m.tactics,
        "references": m.references,
        "false_positives": m.false_positives,
        "runbook": m.runbook,
        "related": m.related.iter().map(|r| json!({"id": r.id, "type": r.kind.as_str()})).collect::<Vec<_>>(),
        "tags": m.tags,
    });
    let loss_list: Vec<Json> = losses.iter().map(|l| Json::String(l.note())).collect();
    let type_map = format!(
        "{{{}}}",
        types
            .iter()
            .map(|(t, how)| format!("{}: {}", python_str(t), python_str(how)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut ctx = tera::Context::new();
    ctx.insert("rule_name", &comment_text(&rule.name));
    ctx.insert("source", &comment_text(&det.source));
    ctx.insert(
        "notes",
        &losses
            .iter()
            .map(|l| comment_text(&l.note()))
            .collect::<Vec<_>>(),
    );
    ctx.insert("meta", &py_literal(&meta));
    ctx.insert("losses", &py_literal(&Json::Array(loss_list)));
    ctx.insert("log_types", &type_map);
    ctx.insert("code", &rule_code(det, m.severity)?);
    super::render_template("panther/rule.py", &ctx)
}

// ------------------------------------------------------------------ YAML

/// A YAML double-quoted scalar.
pub fn yq(s: &str) -> String {
    yaml_str(s)
}

/// A number YAML 1.1 (PyYAML, as pat loads specs) reads back as the same
/// int or float: floats always carry `.` and a signed exponent.
pub fn yaml_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_string()
    } else {
        format!("{mantissa}.0")
    };
    let exp = if exp.starts_with('-') {
        exp.to_string()
    } else {
        format!("+{exp}")
    };
    format!("{mantissa}e{exp}")
}

/// A JSON value as YAML flow collections, one member a line, every string
/// double-quoted; continuation lines are indented by at least `indent`.
pub fn yaml_json(v: &Json, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let inner = " ".repeat(indent + 2);
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => yaml_number(n),
        Json::String(s) => yq(s),
        Json::Array(items) if items.is_empty() => "[]".into(),
        Json::Object(m) if m.is_empty() => "{}".into(),
        Json::Array(items) => {
            let body: Vec<String> = items
                .iter()
                .map(|x| format!("{inner}{}", yaml_json(x, indent + 2)))
                .collect();
            format!("[\n{}\n{pad}]", body.join(",\n"))
        }
        Json::Object(m) => {
            let body: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{inner}{}: {}", yq(k), yaml_json(x, indent + 2)))
                .collect();
            format!("{{\n{}\n{pad}}}", body.join(",\n"))
        }
    }
}

/// A Panther name (`RuleID`, `DisplayName`) may not contain `" & < > %`.
pub fn panther_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("and"),
            '"' => out.push('\''),
            '<' => out.push('('),
            '>' => out.push(')'),
            '%' => out.push_str("pct"),
            c => out.push(c),
        }
    }
    out
}

fn panther_status(s: Status) -> &'static str {
    match s {
        // `Status: Experimental` rules are left out of `pat zip` uploads.
        Status::Experimental | Status::Test => "Test",
        Status::Stable => "Stable",
        Status::Deprecated => "Deprecated",
    }
}

/// Settings of a detection Panther has no place for.
fn detection_losses(det: &Detection) -> Vec<Loss> {
    let mut losses = Vec::new();
    for p in &det.platforms {
        if log_type(p).is_none() {
            losses.push(Loss::unsupported(
                &det.stem,
                format!("platform {p}"),
                "Panther has no log type for this platform",
            ));
        }
    }
    if det.output.schedule.is_some() {
        losses.push(Loss::not_applicable(
            &det.stem,
            "output.schedule",
            "Panther streaming rules run on each event as it arrives; there is no search schedule or time window",
        ));
    }
    if det.output.risk.is_some() {
        losses.push(Loss::not_applicable(
            &det.stem,
            "output.risk",
            "Panther has no risk score, risk objects or risk message; severity() and alert_context() carry the signal",
        ));
    }
    let mut regexes = Vec::new();
    collect_regexes(&det.condition, &mut regexes);
    det.lets
        .iter()
        .for_each(|l| collect_regexes(&l.expr, &mut regexes));
    det.indicators
        .iter()
        .for_each(|i| collect_regexes(&i.expr, &mut regexes));
    regexes.sort();
    regexes.dedup();
    for r in regexes {
        if has_nested_class(&r) {
            losses.push(Loss::unsupported(
                &det.stem,
                format!("regex /{r}/"),
                "a class nested in a class means a union in Rust regex but is read differently by Python re",
            ));
        }
    }
    losses
}

fn collect_regexes(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| collect_regexes(x, out)),
        Expr::Not(x) => collect_regexes(x, out),
        Expr::Ref(_) => {}
        Expr::Cmp(c) => out.extend(c.values.iter().filter_map(|v| match v {
            Value::Regex(r) => Some(r.clone()),
            _ => None,
        })),
    }
}

/// Whether a regex holds a bracketed class inside another one (`[a[bc]]`).
pub fn has_nested_class(pattern: &str) -> bool {
    use regex_syntax::ast::{Ast, ClassSet, ClassSetItem};
    fn item(i: &ClassSetItem) -> bool {
        match i {
            ClassSetItem::Bracketed(_) => true,
            ClassSetItem::Union(u) => u.items.iter().any(item),
            _ => false,
        }
    }
    fn set(s: &ClassSet) -> bool {
        match s {
            ClassSet::Item(i) => item(i),
            ClassSet::BinaryOp(_) => true,
        }
    }
    fn walk(a: &Ast) -> bool {
        match a {
            Ast::ClassBracketed(c) => set(&c.kind),
            Ast::Repetition(r) => walk(&r.ast),
            Ast::Group(g) => walk(&g.ast),
            Ast::Alternation(x) => x.asts.iter().any(walk),
            Ast::Concat(x) => x.asts.iter().any(walk),
            _ => false,
        }
    }
    regex_syntax::ast::parse::Parser::new()
        .parse(pattern)
        .map(|a| walk(&a))
        .unwrap_or(false)
}

/// The rule's tests for this detection's platforms, as template entries.
fn tests_yaml(rule: &Rule, det: &Detection, losses: &mut Vec<Loss>) -> Vec<Json> {
    let mut out = Vec::new();
    for t in rule
        .tests
        .iter()
        .filter(|t| det.platforms.contains(&t.platform))
    {
        let Some((lt, _)) = log_type(&t.platform) else {
            continue;
        };
        // An Event Hub export holds several records; Panther tests one Log
        // each. "No match" over the file is "no match" for every record, so
        // it splits exactly; "some record matches" has no per-record form.
        let records: Vec<(String, &Json)> = match t.event.get("records") {
            Some(Json::Array(items)) if t.event.as_object().is_some_and(|o| o.len() == 1) => {
                if t.expect.matched {
                    losses.push(Loss::not_applicable(
                        &det.stem,
                        format!("test {:?}", t.name),
                        "an Event Hub `records` file matches when one of its records does; a Panther test Log is one event (left out)",
                    ));
                    continue;
                }
                let n = items.len();
                items
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (format!("{} [record {}/{n}]", t.name, i + 1), r))
                    .collect()
            }
            _ => vec![(t.name.clone(), &t.event)],
        };
        for (name, record) in records {
            let Json::Object(event) = record else {
                losses.push(Loss::not_applicable(
                    &det.stem,
                    format!("test {name:?}"),
                    "the test event is not a JSON object",
                ));
                continue;
            };
            let mut notes = vec![format!("detc test on {}, event {}", t.platform, t.origin)];
            let mut event = event.clone();
            match event.get("p_log_type") {
                Some(Json::String(s)) if s == lt => {}
                Some(other) => {
                    notes.push(format!(
                        "p_log_type {other} replaced by {lt}, the log type of platform {}",
                        t.platform
                    ));
                    event.insert("p_log_type".into(), json!(lt));
                }
                None => {
                    event.insert("p_log_type".into(), json!(lt));
                }
            }
            if let Some(want) = &t.expect.indicators {
                notes.push(format!(
                    "detc also expects exactly the indicators [{}]; pat checks only the match (see tests/panther.rs)",
                    want.join(", ")
                ));
            }
            out.push(json!({
                "name": yq(&name),
                "expected": t.expect.matched.to_string(),
                "log": format!("      {}", yaml_json(&Json::Object(event), 6)),
                "notes": notes.iter().map(|n| comment_text(n)).collect::<Vec<_>>(),
            }));
        }
    }
    out
}

fn yaml_file(
    rule: &Rule,
    det: &Detection,
    index: usize,
    losses: &[Loss],
    tests: Vec<Json>,
) -> Result<String, BackendError> {
    let m = &rule.meta;
    let mut notes: Vec<String> = losses.iter().map(Loss::note).collect();
    let title = if index == 0 {
        m.title.clone()
    } else {
        format!("{} ({})", m.title, det.source)
    };
    let display = panther_name(&title);
    if display != title {
        notes.push("DisplayName: Panther names cannot hold \" & < > %; they were replaced".into());
    }
    let display = if display.is_empty() {
        det.stem.clone()
    } else {
        display
    };
    let rule_id = panther_name(&det.stem);
    if m.status == Status::Experimental {
        notes.push("status experimental is written as Status: Test, since pat zip silently leaves Status: Experimental rules out of uploads".into());
    }
    if m.status == Status::Deprecated {
        notes.push("Status: Deprecated rules are left out of pat zip uploads".into());
    }
    if det
        .platforms
        .iter()
        .any(|p| matches!(log_type(p), Some((_, how)) if how != "event"))
        && !det.output.summary.is_empty()
    {
        notes.push("SummaryAttributes name normalised event fields, which Azure.MonitorActivity (AKS) and GCP.AuditLog (GKE) records hold elsewhere; alert_context() carries them for every log type".into());
    }
    for (want, what) in [("true", "matching"), ("false", "non-matching")] {
        if !tests.iter().any(|t| t["expected"] == want) {
            notes.push(format!(
                "this detection has no {what} test: `pat test --minimum-tests 2` wants one of each"
            ));
        }
    }
    let mut description = m.description.clone();
    if !m.false_positives.is_empty() {
        description.push_str("\n\nFalse positives:");
        for f in &m.false_positives {
            description.push_str(&format!("\n- {f}"));
        }
    }
    // Panther's Reference is a link: the first reference that is a URL.
    // The rest, or a reference that is no URL, go into the description.
    let url = m
        .references
        .iter()
        .find(|r| r.starts_with("https://") || r.starts_with("http://"));
    if m.references.len() > 1 || (url.is_none() && !m.references.is_empty()) {
        description.push_str("\n\nReferences:");
        for r in &m.references {
            description.push_str(&format!("\n- {r}"));
        }
    }
    let mut reports = Vec::new();
    for tactic in &m.tactics {
        for technique in &m.techniques {
            reports.push(yq(&format!("{tactic}:{technique}")));
        }
    }
    if m.tactics.is_empty() {
        reports.extend(m.techniques.iter().map(|t| yq(t)));
    } else if m.techniques.is_empty() {
        reports.extend(m.tactics.iter().map(|t| yq(t)));
    }
    let mut ctx = tera::Context::new();
    ctx.insert("rule_name", &comment_text(&rule.name));
    ctx.insert("source", &comment_text(&det.source));
    ctx.insert(
        "notes",
        &notes.iter().map(|n| comment_text(n)).collect::<Vec<_>>(),
    );
    ctx.insert("filename", &yq(&format!("{}.py", det.stem)));
    ctx.insert("rule_id", &yq(&rule_id));
    ctx.insert("display_name", &yq(&display));
    ctx.insert("description", &yq(&description));
    ctx.insert("runbook", &m.runbook.as_deref().map(yq));
    ctx.insert("reference", &url.map(|r| yq(r)));
    ctx.insert("severity", &yq(spec_severity(m.severity)));
    ctx.insert("reports", &reports);
    ctx.insert(
        "log_types",
        &log_types(det).keys().map(|t| yq(t)).collect::<Vec<_>>(),
    );
    ctx.insert("tags", &m.tags.iter().map(|t| yq(t)).collect::<Vec<_>>());
    ctx.insert("dedup", &det.output.dedup_minutes);
    ctx.insert(
        "summary",
        &det.output
            .summary
            .iter()
            .map(|f| yq(&f.dotted()))
            .collect::<Vec<_>>(),
    );
    ctx.insert("status", &yq(panther_status(m.status)));
    ctx.insert("tests", &tests);
    super::render_template("panther/rule.yml", &ctx)
}
