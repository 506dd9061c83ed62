//! The Microsoft Sentinel backend: one Azure-Sentinel analytic rule
//! (`kind: Scheduled` YAML, as in the Azure/Azure-Sentinel repository) and
//! its KQL (`.kql`) per detection and table form. Where each source's
//! records land, per platform, is data: `src/sources/sentinel.yaml`. A
//! source with two forms (AKS in resource-specific or in Azure diagnostics
//! mode) gives one rule per form: deploy the one that matches the
//! workspace's diagnostic settings (`<stem>__aksaudit.yaml` or
//! `<stem>__azurediagnostics.yaml`). GKE's `GCPAuditLogs` form derives the
//! audit Event from the Cloud Audit LogEntry in the query (the data file's
//! `extend`s), as detc's GKE normalisation does.
//!
//! Semantics, operator by operator (Kusto query language reference; the
//! generated queries are checked by Kusto.Language, and their verdicts by
//! duckdb-kql in the tests):
//! - Case-insensitive `==`, `in`, `!=` are `=~`, `in~`, `!~`; `cased` uses
//!   `==`, `in`, `!=`. `startswith`, `endswith`, `contains` are
//!   case-insensitive in KQL; `cased` uses their `_cs` forms.
//! - `like` and `matches` are `matches regex` (RE2): a glob becomes an
//!   anchored RE2 pattern, a portable regex is passed as it is (RE2 reads the
//!   portable subset as Rust's `regex` does), `(?i)` unless `cased`.
//! - Fields in dynamic columns are read with `tostring()` (never null: an
//!   absent property is the empty string) and `toreal()` for numbers; a
//!   string column holds an absent value as the empty string, so `exists`
//!   is `isnotempty()` there and `isnotnull()` on dynamic properties.
//! - Numbers: `toreal(x)` is null when `x` is absent or not numeric, and a
//!   comparison with null is null, so under `not` a numeric comparison gets
//!   `isnotnull(toreal(x)) and` in front (the language: an absent field
//!   satisfies no comparison, so `not failed` holds without a status).
//! - `x != v` needs `x` present, as the language says.
//! - `cidr` is `ipv4_is_in_range` / `ipv6_is_in_range`.
//! - An array field, or a `**` path, is unsupported: KQL compares dynamic
//!   arrays only through `mv-apply`, which a row filter cannot hold.

use super::attack;
use super::printer::{self, Unprintable};
use super::schedule::{self, Window};
use super::table::{Cased, Column, Columns, Ops, Table};
use super::{naming, text, Artifact, Backend, BackendError, Loss, Rendered, Target};
use crate::ir::{Cmp, Detection, Expr, Field, Rule, Severity, Status, TemplatePart};
use crate::sources::forms;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

pub const TEMPLATES: &[(&str, &str)] = &[(
    "sentinel/rule.yaml",
    include_str!("../../templates/sentinel/rule.yaml.tera"),
)];

pub struct Sentinel;

// ------------------------------------------------------------------ tables

/// One source's entry in `sentinel.yaml` (the shared model of
/// [`crate::sources::forms`]).
pub type SourceForms = forms::SourceForms<Spec>;

/// Where one platform's records land and how the query reads them.
pub type Form = forms::Form<Spec>;

/// A Sentinel form's own facts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The tabular expression that selects the rows.
    pub query: String,
    /// The time column.
    pub time: String,
    pub connector: Connector,
    /// Canonical path (a top-level key, or a dotted sub-path) -> column.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnDef>,
    /// A dynamic column holding the canonical event as it is.
    #[serde(default)]
    pub root: Option<String>,
    /// The query builds that event with the empty string for what the
    /// record lacks: a field is present only when it is not empty.
    #[serde(default)]
    pub empty_is_absent: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Connector {
    pub id: String,
    pub data_types: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    pub column: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// The Sentinel entity this column identifies (`AzureResource`).
    #[serde(default)]
    pub entity: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Dynamic,
    Real,
    Long,
}

/// Every source's Sentinel forms, keyed by detc source name.
pub fn tables() -> &'static BTreeMap<String, SourceForms> {
    static TABLES: OnceLock<BTreeMap<String, SourceForms>> = OnceLock::new();
    TABLES.get_or_init(|| forms::load("sentinel.yaml", include_str!("../sources/sentinel.yaml")))
}

// ------------------------------------------------------------------ KQL text

/// A double-quoted KQL string (see [`text::c_quoted`]).
pub fn kql_str(s: &str) -> Result<String, String> {
    text::c_quoted(s, "KQL")
}

/// A KQL identifier: plain when it is one, else `['...']`.
fn kql_name(k: &str) -> Result<String, String> {
    let plain = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(k.to_string())
    } else {
        Ok(format!("[{}]", kql_str(k)?))
    }
}

/// `base` followed by the property path `keys` (`.a` or `["a.b"]`).
fn property(base: &str, keys: &[&str]) -> Result<String, String> {
    let mut out = base.to_string();
    for k in keys {
        let plain = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain {
            out.push('.');
            out.push_str(k);
        } else {
            out.push('[');
            out.push_str(&kql_str(k)?);
            out.push(']');
        }
    }
    Ok(out)
}

/// A portable regex as an RE2 pattern literal, `(?i)` unless cased. RE2
/// reads the portable subset as Rust does, except a nested class `[[a]]`,
/// which RE2 reads as `[` `a` `]`: refused.
fn re2(pattern: &str, cased: bool) -> Result<String, String> {
    use regex_syntax::ast::{self, Visitor};
    struct Nested(bool);
    impl Visitor for Nested {
        type Output = bool;
        type Err = ();
        fn finish(self) -> Result<bool, ()> {
            Ok(self.0)
        }
        fn visit_class_set_item_pre(&mut self, item: &ast::ClassSetItem) -> Result<(), ()> {
            if matches!(item, ast::ClassSetItem::Bracketed(_)) {
                self.0 = true;
            }
            Ok(())
        }
    }
    let parsed = ast::parse::ParserBuilder::new()
        .nest_limit(64)
        .build()
        .parse(pattern)
        .map_err(|e| format!("regex does not parse: {e}"))?;
    if ast::visit(&parsed, Nested(false)).unwrap_or(true) {
        return Err("a nested character class means something else in RE2".into());
    }
    kql_str(&format!("{}{pattern}", if cased { "" } else { "(?i)" }))
}

const OPS: Ops = Ops {
    target: "KQL",
    and: " and ",
    or: " or ",
    not: "not",
    eq: Cased {
        folded: Some("{f} =~ {v}"),
        cased: Some("{f} == {v}"),
    },
    eq_any: Cased {
        folded: Some("{f} in~ ({vs})"),
        cased: Some("{f} in ({vs})"),
    },
    ne: Cased {
        folded: Some("{f} !~ {v}"),
        cased: Some("{f} != {v}"),
    },
    starts_with: Cased {
        folded: Some("{f} startswith {v}"),
        cased: Some("{f} startswith_cs {v}"),
    },
    ends_with: Cased {
        folded: Some("{f} endswith {v}"),
        cased: Some("{f} endswith_cs {v}"),
    },
    contains: Cased {
        folded: Some("{f} contains {v}"),
        cased: Some("{f} contains_cs {v}"),
    },
    like: Cased {
        folded: Some("{f} matches regex {v}"),
        cased: Some("{f} matches regex {v}"),
    },
    matches: Cased {
        folded: Some("{f} matches regex {v}"),
        cased: Some("{f} matches regex {v}"),
    },
    num_eq: Some("{n} == {v}"),
    bool_eq: None,
    bool_ne: None,
    num_ne: Some("{n} != {v}"),
    lt: Some("{n} < {v}"),
    le: Some("{n} <= {v}"),
    gt: Some("{n} > {v}"),
    ge: Some("{n} >= {v}"),
    cidr4: Some("ipv4_is_in_range({f}, {v})"),
    cidr6: Some("ipv6_is_in_range({f}, {v})"),
    guard: "({g} and {c})",
};

/// A canonical field in one form: the expression that reads it, and
/// whether that is a string column.
struct Read {
    expr: String,
    ty: ColumnType,
    entity: Option<String>,
}

/// One form of one detection, as a [`Columns`] target.
struct Kql<'a> {
    form: &'a Form,
}

impl Kql<'_> {
    fn read(&self, field: &Field) -> Result<Read, String> {
        if field.has_any_depth() {
            return Err(format!(
                "`{field}` reaches a key at any depth; a KQL row filter reads fixed properties, and a dynamic column's keys at any depth have no form"
            ));
        }
        let keys: Vec<&str> = field.keys().map(|k| k.unwrap_or_default()).collect();
        if let Some(root) = &self.form.spec.root {
            return Ok(Read {
                expr: property(root, &keys)?,
                ty: ColumnType::Dynamic,
                entity: None,
            });
        }
        // The longest mapped prefix of the path.
        for n in (1..=keys.len()).rev() {
            let prefix = keys[..n].join(".");
            let Some(def) = self.form.spec.columns.get(&prefix) else {
                continue;
            };
            let col = kql_name(&def.column)?;
            let rest = &keys[n..];
            return match def.ty {
                ColumnType::Dynamic => Ok(Read {
                    expr: property(&col, rest)?,
                    ty: ColumnType::Dynamic,
                    entity: def.entity.clone(),
                }),
                ty if rest.is_empty() => Ok(Read {
                    expr: col,
                    ty,
                    entity: def.entity.clone(),
                }),
                _ => Err(format!(
                    "`{field}`: the column {} holds a scalar, not `{}`",
                    def.column,
                    rest.join(".")
                )),
            };
        }
        Err(format!(
            "`{field}` has no column in {} ({}): Log Analytics does not keep it",
            self.form.label, self.form.name
        ))
    }
}

impl Columns for Kql<'_> {
    fn ops(&self) -> &'static Ops {
        &OPS
    }

    fn column(&self, c: &Cmp) -> Result<Column, String> {
        let r = self.read(&c.field)?;
        if c.info.is_array() && c.op != crate::ir::Op::Exists {
            return Err(format!(
                "`{}` is an array: a KQL row filter compares its elements only through mv-apply",
                c.field
            ));
        }
        let number = format!("toreal({})", r.expr);
        Ok(match r.ty {
            ColumnType::String => Column {
                raw: r.expr.clone(),
                boolean: false,
                exists: format!("isnotempty({})", r.expr),
                text: r.expr,
                num_guard: Some(format!("isnotnull({number})")),
                number: Ok(number),
                text_guard: None,
            },
            ColumnType::Dynamic => Column {
                raw: r.expr.clone(),
                boolean: false,
                exists: if self.form.spec.empty_is_absent {
                    format!("isnotempty(tostring({}))", r.expr)
                } else {
                    format!("isnotnull({})", r.expr)
                },
                text: format!("tostring({})", r.expr),
                num_guard: Some(format!("isnotnull({number})")),
                number: Ok(number),
                text_guard: None,
            },
            ColumnType::Real | ColumnType::Long => Column {
                raw: r.expr.clone(),
                boolean: false,
                exists: format!("isnotnull({})", r.expr),
                text: format!("tostring({})", r.expr),
                num_guard: Some(format!("isnotnull({})", r.expr)),
                number: Ok(r.expr),
                text_guard: None,
            },
        })
    }

    fn string(&self, s: &str) -> Result<String, String> {
        kql_str(s)
    }

    fn number(&self, n: &serde_json::Number) -> Result<String, String> {
        match n.as_f64() {
            Some(f) if f.is_finite() => Ok(n.to_string()),
            _ => Err(format!("{n} is not a finite number")),
        }
    }

    fn glob(&self, glob: &crate::ir::Glob, cased: bool) -> Result<String, String> {
        let re = crate::eval::glob_to_regex(glob);
        kql_str(&format!("{}{re}", if cased { "" } else { "(?i)" }))
    }

    fn regex(&self, re: &str, cased: bool) -> Result<String, String> {
        re2(re, cased)
    }
}

/// `expr` as the lines of a `where`.
fn condition(kql: &Kql, det: &Detection, expr: &Expr) -> Result<String, Unprintable> {
    printer::print_conjuncts(&Table(kql), det, expr, "\n    and ")
}

// ------------------------------------------------------------------ documents

/// A column name of the alert for an output name (`objectRef.namespace` ->
/// `objectRef_namespace`), valid in KQL and in `customDetails` keys.
fn output_column(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        out.insert_str(0, "f_");
    }
    out
}

/// Sentinel's severities (no `Critical`).
fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Informational => "Informational",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High | Severity::Critical => "High",
    }
}

/// A Sentinel duration as the Azure-Sentinel YAML writes it (`5m`, `1h`, `14d`).
fn duration(minutes: u64) -> String {
    match minutes {
        m if m % (24 * 60) == 0 => format!("{}d", m / (24 * 60)),
        m if m % 60 == 0 => format!("{}h", m / 60),
        m => format!("{m}m"),
    }
}

#[derive(Serialize)]
struct FieldMapping {
    identifier: &'static str,
    column: String,
}

#[derive(Serialize)]
struct EntityMapping {
    entity_type: String,
    fields: Vec<FieldMapping>,
}

#[derive(Serialize)]
struct YamlCtx {
    notes: Vec<String>,
    id: String,
    name: String,
    description: String,
    severity: &'static str,
    connector: Connector,
    frequency: String,
    period: String,
    tactics: Vec<String>,
    techniques: Vec<String>,
    query_lines: Vec<String>,
    entities: Vec<EntityMapping>,
    details: Vec<(String, String)>,
    display_name: Option<String>,
    severity_column: Option<String>,
    version: String,
}

/// The parts of the output block a form renders, and what it cannot.
struct Shaped {
    /// `| summarize ...` and what follows it, if the output aggregates.
    tail: Vec<String>,
    /// Output name -> (alert column, scalar per alert, entity hint).
    columns: Vec<(String, String, bool, Option<String>)>,
}

fn shape(kql: &Kql, det: &Detection, severity_rank: Option<&str>) -> Result<Shaped, Unprintable> {
    let o = &det.output;
    let bad = |f: &Field, reason: String| Unprintable {
        construct: format!("output field {f}"),
        reason,
    };
    let mut by = Vec::new();
    let mut aggs = Vec::new();
    let mut columns = Vec::new();
    for f in &o.group_by {
        let r = kql.read(f).map_err(|e| bad(f, e))?;
        let name = output_column(&o.output_name(f));
        let text = match r.ty {
            ColumnType::String => r.expr,
            _ => format!("tostring({})", r.expr),
        };
        by.push(format!("{name} = {text}"));
        columns.push((o.output_name(f), name, true, r.entity));
    }
    for a in &o.values {
        let r = kql.read(&a.field).map_err(|e| bad(&a.field, e))?;
        let name = output_column(&o.output_name(&a.field));
        aggs.push(format!("{name} = make_set({}, 100)", r.expr));
        columns.push((o.output_name(&a.field), name, false, r.entity));
    }
    // Without group_by or values the rule alerts per event, which carries
    // its own time: `time_range` needs no column.
    if by.is_empty() && aggs.is_empty() {
        return Ok(Shaped {
            tail: Vec::new(),
            columns,
        });
    }
    let mut head = vec!["Count = count()".to_string()];
    if o.time_range {
        head.push(format!("FirstSeen = min({})", kql.form.spec.time));
        head.push(format!("LastSeen = max({})", kql.form.spec.time));
    }
    if let Some(rank) = severity_rank {
        head.push(format!("DetcSeverityRank = max({rank})"));
    }
    head.extend(aggs);
    let mut tail = vec![format!(
        "| summarize {}{}",
        head.join(", "),
        if by.is_empty() {
            String::new()
        } else {
            format!("\n    by {}", by.join(", "))
        }
    )];
    if severity_rank.is_some() {
        tail.push(
            "| extend DetcSeverity = case(DetcSeverityRank >= 3, \"High\", DetcSeverityRank == 2, \"Medium\", DetcSeverityRank == 1, \"Low\", \"Informational\")"
                .to_string(),
        );
    }
    Ok(Shaped { tail, columns })
}

fn rank(s: Severity) -> u8 {
    match s {
        Severity::Informational => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High | Severity::Critical => 3,
    }
}

/// The query of one form: rows, window, condition, severity, output.
struct Query {
    text: String,
    columns: Vec<(String, String, bool, Option<String>)>,
    severity_column: Option<String>,
}

fn build_query(
    kql: &Kql,
    rule: &Rule,
    det: &Detection,
    window: &Window,
    losses: &mut Vec<Loss>,
) -> Result<Query, Unprintable> {
    let stem = det.stem.as_str();
    let mut lines = vec![kql.form.spec.query.clone()];
    if window.to_secs > 0 {
        lines.push(format!(
            "| where {} <= ago({})",
            kql.form.spec.time,
            schedule::span(window.to_secs)
        ));
    }
    lines.push(format!("| where {}", condition(kql, det, &det.condition)?));
    // Indicators raise the alert's severity through a column.
    let base = rank(rule.meta.severity);
    let mut arms = Vec::new();
    for ind in &det.indicators {
        match condition(kql, det, &ind.expr) {
            Ok(c) if rank(ind.severity) > base => arms.push(format!(
                "iff({}, {}, {base})",
                c.replace("\n    and ", " and "),
                rank(ind.severity)
            )),
            Ok(_) => losses.push(Loss::not_applicable(
                stem,
                format!("indicator {}", ind.name),
                format!(
                    "its severity {} does not raise the rule's {} in Sentinel's four levels",
                    ind.severity.as_str(),
                    rule.meta.severity.as_str()
                ),
            )),
            Err(u) => losses.push(Loss::unsupported(
                stem,
                format!("indicator {}", ind.name),
                format!("{}: {}", u.construct, u.reason),
            )),
        }
    }
    let severity_rank = if arms.is_empty() {
        None
    } else {
        lines.push(format!(
            "| extend DetcSeverityRank = max_of({base}, {})",
            arms.join(", ")
        ));
        Some("DetcSeverityRank")
    };
    let shaped = shape(kql, det, severity_rank)?;
    let aggregated = !shaped.tail.is_empty();
    lines.extend(shaped.tail);
    let severity_column = match (severity_rank, aggregated) {
        (None, _) => None,
        (Some(_), true) => Some("DetcSeverity".to_string()),
        (Some(_), false) => {
            lines.push(
                "| extend DetcSeverity = case(DetcSeverityRank >= 3, \"High\", DetcSeverityRank == 2, \"Medium\", DetcSeverityRank == 1, \"Low\", \"Informational\")"
                    .to_string(),
            );
            Some("DetcSeverity".to_string())
        }
    };
    Ok(Query {
        text: lines.join("\n"),
        columns: shaped.columns,
        severity_column,
    })
}

/// Sentinel entities from the risk objects and threats of the output block.
fn entities(
    det: &Detection,
    columns: &[(String, String, bool, Option<String>)],
    losses: &mut Vec<Loss>,
) -> Vec<EntityMapping> {
    let Some(risk) = &det.output.risk else {
        return Vec::new();
    };
    let stem = det.stem.as_str();
    let mut out: Vec<EntityMapping> = Vec::new();
    for (name, kind) in risk.objects.iter().chain(&risk.threats) {
        let Some((_, col, scalar, hint)) = columns.iter().find(|(n, ..)| n == name) else {
            losses.push(Loss::not_applicable(
                stem,
                format!("output.risk {name}"),
                "not a column of the alert (group_by or values), so no entity is mapped",
            ));
            continue;
        };
        if !scalar {
            losses.push(Loss::not_applicable(
                stem,
                format!("output.risk {name}"),
                format!("`{col}` is a set of values (make_set); Sentinel maps an entity from one value per alert, so none is mapped"),
            ));
            continue;
        }
        let (entity, identifier) = match (hint.as_deref(), kind.as_str()) {
            (Some("AzureResource"), _) => ("AzureResource", "ResourceId"),
            (_, "user") => ("Account", "Name"),
            (_, "system") => ("Host", "HostName"),
            (_, "ip_address") => ("IP", "Address"),
            (_, other) => {
                losses.push(Loss::not_applicable(
                    stem,
                    format!("output.risk {name}"),
                    format!("the risk type `{other}` has no Sentinel entity detc maps"),
                ));
                continue;
            }
        };
        match out.iter_mut().find(|e| e.entity_type == entity) {
            Some(e) if e.fields.len() < 3 => e.fields.push(FieldMapping {
                identifier,
                column: col.clone(),
            }),
            Some(_) => losses.push(Loss::not_applicable(
                stem,
                format!("output.risk {name}"),
                "Sentinel maps at most 3 fields per entity",
            )),
            None => out.push(EntityMapping {
                entity_type: entity.to_string(),
                fields: vec![FieldMapping {
                    identifier,
                    column: col.clone(),
                }],
            }),
        }
    }
    if out.len() > 5 {
        out.truncate(5);
        losses.push(Loss::not_applicable(
            stem,
            "output.risk",
            "Sentinel maps at most 5 entities: the first 5 are kept",
        ));
    }
    out
}

fn render_form(
    rule: &Rule,
    index: usize,
    det: &Detection,
    form: &Form,
    common: &[Loss],
    out: &mut Rendered,
) -> Result<(), BackendError> {
    let stem = det.stem.as_str();
    let kql = Kql { form };
    let mut losses = common.to_vec();
    let default = Window {
        interval_min: 5,
        from_secs: 5 * 60,
        to_secs: 0,
    };
    let window = schedule::window(det, "a Sentinel rule", default, &mut losses);
    let query = match build_query(&kql, rule, det, &window, &mut losses) {
        Ok(q) => q,
        Err(u) => {
            out.losses.push(Loss::unsupported(
                stem,
                format!(
                    "match (the whole {} form: no Sentinel rule is written)",
                    form.name
                ),
                format!("{}: {}", u.construct, u.reason),
            ));
            // Each platform the form would serve is lost with it.
            for p in form.platforms.iter().filter(|p| det.platforms.contains(p)) {
                out.losses.push(Loss::unsupported(
                    stem,
                    format!("platform {p}"),
                    format!(
                        "the {} form's query cannot be written (see the `match` note), so no Sentinel rule reads {p} there",
                        form.name
                    ),
                ));
            }
            return Ok(());
        }
    };
    // Azure-Sentinel's limits: 5 minutes to 14 days, period >= frequency.
    let max = 14 * 24 * 60;
    let mut frequency = window.interval_min;
    let mut period = window.from_secs.div_ceil(60);
    if frequency < 5 || frequency > max || period > max {
        losses.push(Loss::not_applicable(
            stem,
            "output.schedule",
            format!(
                "Sentinel runs a rule every 5 minutes to 14 days over at most 14 days; every {} over {} becomes every {} over {}",
                schedule::minutes(frequency),
                schedule::minutes(period),
                schedule::minutes(frequency.clamp(5, max)),
                schedule::minutes(period.clamp(frequency.clamp(5, max), max))
            ),
        ));
        frequency = frequency.clamp(5, max);
        period = period.clamp(frequency, max);
    }
    period = period.max(frequency);

    // The output block's other settings.
    let o = &det.output;
    let mut display_name = None;
    if let Some(t) = &o.title {
        let mut format = String::new();
        let mut fields = 0;
        let mut missing = None;
        for part in &t.0 {
            match part {
                TemplatePart::Text(s) => format.push_str(s),
                TemplatePart::Field(f) => {
                    let name = o.output_name(f);
                    match query
                        .columns
                        .iter()
                        .find(|(n, _, scalar, _)| *n == name && *scalar)
                    {
                        Some((_, col, ..)) => {
                            fields += 1;
                            format.push_str(&format!("{{{{{col}}}}}"));
                        }
                        None => missing = Some(f.to_string()),
                    }
                }
            }
        }
        match (missing, fields) {
            (Some(f), _) => losses.push(Loss::not_applicable(
                stem,
                "output.title",
                format!("`{f}` is not a per-alert column (group_by), so the alert keeps the rule's name"),
            )),
            (None, n) if n > 3 => losses.push(Loss::not_applicable(
                stem,
                "output.title",
                format!("Sentinel's alertDisplayNameFormat takes at most 3 columns, the title has {n}: the alert keeps the rule's name"),
            )),
            _ => display_name = Some(format),
        }
    }
    if let Some(m) = o.dedup_minutes {
        losses.push(Loss::not_applicable(
            stem,
            "output.dedup",
            format!("a scheduled Sentinel rule raises every result of every run; the {m}m per-group throttle has no place (incident grouping merges alerts into incidents, it does not drop them)"),
        ));
    }
    if let Some(r) = &o.risk {
        losses.push(Loss::not_applicable(
            stem,
            "output.risk",
            format!(
                "Sentinel alerts carry severity and entities, not a risk score: score {}, impact, confidence and message have no place",
                r.score
            ),
        ));
    }
    if !o.summary.is_empty() {
        losses.push(Loss::not_applicable(
            stem,
            "output.summary",
            "the alert's columns (group_by and values) are its summary",
        ));
    }
    let entities = entities(det, &query.columns, &mut losses);
    let mut details: Vec<(String, String)> = Vec::new();
    for (name, col, scalar, _) in &query.columns {
        if *scalar {
            continue;
        }
        if col.len() > 20 {
            losses.push(Loss::not_applicable(
                stem,
                format!("output.values {name}"),
                format!("`{col}` is longer than the 20 characters a Sentinel custom detail name may have"),
            ));
            continue;
        }
        if details.len() == 20 {
            losses.push(Loss::not_applicable(
                stem,
                format!("output.values {name}"),
                "Sentinel keeps at most 20 custom details",
            ));
            continue;
        }
        details.push((col.clone(), col.clone()));
    }

    let mut notes: Vec<String> = losses.iter().map(Loss::note).collect();
    notes.insert(
        0,
        format!(
            "reads {}; deploy it where the workspace holds that table",
            form.label
        ),
    );
    let det_id = naming::detection_id(rule, index);
    let id = naming::derived_id(&det_id, &format!("sentinel:{}", form.name));
    let title = naming::detection_title(rule, index);
    // A source with several forms names the tables in each rule's name.
    let several = tables().get(&det.source).is_some_and(|f| f.forms.len() > 1);
    let mut name = if several {
        format!("{title} ({})", form.name_short())
    } else {
        title
    };
    if rule.meta.status == Status::Deprecated {
        name.insert_str(0, "[Deprecated] ");
    }
    let mut threats = Vec::new();
    let th = attack::threats(rule, stem, &mut Vec::new());
    for t in &th {
        threats.push(t.tactic.name.replace(' ', ""));
    }
    let ctx = YamlCtx {
        notes: notes.clone(),
        id,
        name,
        description: description(rule),
        severity: severity(rule.meta.severity),
        connector: form.spec.connector.clone(),
        frequency: duration(frequency),
        period: duration(period),
        tactics: threats,
        techniques: rule.meta.techniques.clone(),
        query_lines: query.text.lines().map(str::to_string).collect(),
        entities,
        details,
        display_name,
        severity_column: query.severity_column.clone(),
        version: format!("1.0.{}", rule.meta.version.saturating_sub(1)),
    };
    let base = format!("{stem}__{}", form.name);
    // A Sentinel rule holds the whole condition (a form that cannot is not written).
    out.served(
        det,
        &form.platforms,
        &form.label,
        &format!("{base}.yaml"),
        &det.condition,
    );
    out.files.push(Artifact {
        path: format!("{base}.yaml"),
        contents: super::render_template(
            "sentinel/rule.yaml",
            &tera::Context::from_serialize(&ctx)?,
        )?,
    });
    let mut kql_file = String::new();
    for n in &notes {
        kql_file.push_str(&format!("// detc note: {}\n", text::comment_text(n)));
    }
    kql_file.push_str(&query.text);
    kql_file.push('\n');
    out.files.push(Artifact {
        path: format!("{base}.kql"),
        contents: kql_file,
    });
    out.losses.extend(losses.into_iter().skip(common.len()));
    Ok(())
}

impl Form {
    /// The form's tables, for rule names (`AKSAudit, AKSAuditAdmin`).
    fn name_short(&self) -> String {
        self.spec.connector.data_types.join(", ")
    }
}

/// The description, with what Sentinel has no field for appended as text.
fn description(rule: &Rule) -> String {
    let m = &rule.meta;
    let mut d = m.description.trim_end().to_string();
    if let Some(r) = &m.runbook {
        d.push_str("\n\nTriage:\n");
        d.push_str(r.trim_end());
    }
    if !m.false_positives.is_empty() {
        d.push_str("\n\nFalse positives:\n");
        for f in &m.false_positives {
            d.push_str(&format!("- {f}\n"));
        }
        d.truncate(d.trim_end().len());
    }
    if !m.references.is_empty() {
        d.push_str("\n\nReferences:\n");
        for r in &m.references {
            d.push_str(&format!("- {r}\n"));
        }
        d.truncate(d.trim_end().len());
    }
    d
}

/// Losses every form of a detection shares (rule-level metadata).
fn rule_losses(rule: &Rule, det: &Detection) -> Vec<Loss> {
    let stem = det.stem.as_str();
    let m = &rule.meta;
    let mut losses = Vec::new();
    let mut attack_losses = Vec::new();
    attack::threats(rule, stem, &mut attack_losses);
    losses.extend(attack_losses);
    if m.severity == Severity::Critical {
        losses.push(Loss::not_applicable(
            stem,
            "severity",
            "Sentinel has no critical severity: rendered as High",
        ));
    }
    match m.status {
        Status::Experimental | Status::Test => losses.push(Loss::not_applicable(
            stem,
            "status",
            format!(
                "a Sentinel analytic rule has no status: `{}` is not carried, and the rule alerts once enabled",
                m.status.as_str()
            ),
        )),
        Status::Stable | Status::Deprecated => {}
    }
    if !m.tags.is_empty() {
        losses.push(Loss::not_applicable(
            stem,
            "tags",
            "a Sentinel analytic rule has no free tags",
        ));
    }
    if !m.related.is_empty() {
        losses.push(Loss::not_applicable(
            stem,
            "related",
            "a Sentinel analytic rule has no related-rules field",
        ));
    }
    if !o_rename_is_kept(det) {
        losses.push(Loss::not_applicable(
            stem,
            "output.rename",
            "renamed fields that are not group_by or values columns do not reach the alert",
        ));
    }
    losses
}

/// Renames apply to group_by and values columns, which the alert carries.
fn o_rename_is_kept(det: &Detection) -> bool {
    let o = &det.output;
    o.rename
        .iter()
        .all(|(f, _)| o.group_by.contains(f) || o.values.iter().any(|a| &a.field == f))
}

fn render_detection(
    rule: &Rule,
    index: usize,
    det: &Detection,
    out: &mut Rendered,
) -> Result<(), BackendError> {
    let stem = det.stem.as_str();
    let Some(forms) = tables().get(&det.source) else {
        out.losses.push(Loss::unsupported(
            stem,
            format!("source {}", det.source),
            "no Sentinel table for this source (src/sources/sentinel.yaml)",
        ));
        return Ok(());
    };
    let mut common = Vec::new();
    for p in &det.platforms {
        if forms.forms.iter().any(|f| f.platforms.contains(p)) {
            continue;
        }
        let why = forms
            .lost
            .get(p)
            .cloned()
            .unwrap_or_else(|| "no Sentinel table holds this platform's records".into());
        common.push(Loss::unsupported(stem, format!("platform {p}"), why));
    }
    common.extend(rule_losses(rule, det));
    out.losses.extend(common.iter().cloned());
    for form in &forms.forms {
        if form.platforms.iter().any(|p| det.platforms.contains(p)) {
            render_form(rule, index, det, form, &common, out)?;
        }
    }
    Ok(())
}

impl Backend for Sentinel {
    fn target(&self) -> Target {
        Target::Sentinel
    }

    fn render(&self, rule: &Rule) -> Result<Rendered, BackendError> {
        let mut out = Rendered::default();
        for (i, det) in rule.detections.iter().enumerate() {
            render_detection(rule, i, det, &mut out)?;
        }
        // Forms of one detection share their losses: report each once.
        out.dedup_losses();
        Ok(out)
    }
}

/// The Log Analytics table a record lands in through the form `form`
/// (`aksaudit`: AKSAudit or AKSAuditAdmin by the record's category).
pub fn table_of(form: &str, record: &serde_json::Value) -> Option<&'static str> {
    Some(match form {
        "aksaudit" => match record.get("category").and_then(serde_json::Value::as_str) {
            Some(c) if c.eq_ignore_ascii_case("kube-audit-admin") => "AKSAuditAdmin",
            _ => "AKSAudit",
        },
        "azurediagnostics" => "AzureDiagnostics",
        "azureactivity" => "AzureActivity",
        "gcpauditlogs" => "GCPAuditLogs",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_names() {
        assert_eq!(kql_str("a\"b\\c\n").unwrap(), r#""a\"b\\c\n""#);
        assert!(kql_str("a\u{1}").is_err());
        assert_eq!(
            property("Event", &["objectRef", "a.b"]).unwrap(),
            r#"Event.objectRef["a.b"]"#
        );
        assert_eq!(output_column("objectRef.namespace"), "objectRef_namespace");
        assert_eq!(output_column("1x"), "f_1x");
        assert_eq!(duration(60), "1h");
        assert_eq!(duration(70), "70m");
        assert_eq!(duration(14 * 24 * 60), "14d");
    }

    #[test]
    fn every_form_loads() {
        assert_eq!(forms::check("sentinel", tables()), Vec::<String>::new());
    }
}
