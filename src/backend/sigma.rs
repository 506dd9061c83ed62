//! The Sigma backend: one Sigma rule (`dist/sigma/<stem>.yml`) per detection.
//!
//! - The detection section is built from the IR: each `let` the condition
//!   uses becomes a named selection when its expression fits one (a map is an
//!   AND, a list of maps an OR, a value list an OR on one field); otherwise
//!   its representable parts become selections `<let>_<n>` and the let is
//!   inlined into the condition. The condition is then printed by the shared
//!   [`printer`] with a dialect whose references are selection names.
//! - Values: plain Sigma values are case-insensitive and treat `*` `?` as
//!   wildcards, so a literal `\` is escaped with `\`. A value `sigma check`
//!   would flag as a plain string (a literal `*` or `?`, a control
//!   character, text Python reads as a number) is written as a literal
//!   regex instead (`x|re|i: '^a\*b$'`, anchored for `==`, `startswith`,
//!   `endswith`), so the output has no `sigma check` issue; `cased` is
//!   `|cased`, `like` globs become plain wildcard values (or
//!   `startswith`/`endswith`/`contains` when that is what they say),
//!   `matches` is `|re|i` (`|re` when cased), `x != v` is "present and not
//!   equal" (`x|exists: true` and `not x: v`; numeric `!=` is `|gt` or `|lt`).
//! - The YAML is written by a small emitter over a `serde_yaml::Value` built
//!   in key order, and read back with serde_yaml to prove it says the same.
//!   It does not use `serde_yaml::to_string`: that writes `yes`, `on`,
//!   `1_000`, `12:30:00` or `=` unquoted, which YAML 1.1 readers such as
//!   PyYAML (used by pySigma) read as booleans, numbers or tags.
//! - Negated selections carry their fields' `null` guards (`not (s and not
//!   s_absent)`): neutral by Sigma's rules, and they keep pySigma's
//!   three-valued EQL and ES|QL from dropping records without the field.
//! - TLP tags: only the levels both TLP 1.0 and 2.0 know (green, amber,
//!   red); any other is a reported loss.
//! - Losses (indicators, output settings without a Sigma place, free tags,
//!   the runbook) are returned and written as `# ` comments at the top of
//!   each file, through the `sigma/rule` template.

use super::printer::{self, Dialect, Unprintable};
use super::yaml::{emit_yaml, is_break, yaml_printable};
use super::{Artifact, Backend, BackendError, Loss, Rendered, Target};
use crate::ir::{Cmp, Detection, Expr, Field, Glob, GlobTok, Let, Op, Rule, Seg, Value};
use crate::sources::{forms, project};
use serde_yaml::{Mapping, Value as Yaml};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

pub const TEMPLATES: &[(&str, &str)] = &[(
    "sigma/rule",
    include_str!("../../templates/sigma/rule.tera"),
)];

pub struct Sigma;

impl Backend for Sigma {
    fn target(&self) -> Target {
        Target::Sigma
    }

    fn render(&self, rule: &Rule) -> Result<Rendered, BackendError> {
        let mut out = Rendered::default();
        for (i, det) in rule.detections.iter().enumerate() {
            let sf = sigma_forms().get(&det.source);
            if let Some(sf) = sf {
                for (p, why) in sf.unserved(&det.platforms, "Sigma") {
                    out.losses
                        .push(Loss::unsupported(&det.stem, format!("platform {p}"), why));
                }
            }
            let forms: Vec<&SigmaForm> = sf
                .map(|sf| sf.serving(&det.platforms).collect())
                .unwrap_or_default();
            let first = sf.and_then(|sf| sf.forms.first());
            // The canonical document serves the first form's platforms (or
            // every platform of a source without forms).
            let canonical_serves: Vec<String> = match first {
                Some(f) => f
                    .platforms
                    .iter()
                    .filter(|p| det.platforms.contains(p))
                    .cloned()
                    .collect(),
                None => det.platforms.clone(),
            };
            if !canonical_serves.is_empty() {
                // A condition Sigma cannot write loses this document only: the
                // loss policy decides (it is accepted under `lossy`), and the
                // other targets and documents are built all the same.
                if let Err(u) = detection_section(det) {
                    out.losses.push(Loss::unsupported(
                        &det.stem,
                        "match (the whole detection: no Sigma rule is written)",
                        format!("{}: {}", u.construct, u.reason),
                    ));
                    for p in &canonical_serves {
                        out.losses.push(Loss::unsupported(
                            &det.stem,
                            format!("platform {p}"),
                            "no Sigma rule reads it: the detection's condition cannot be written (see the `match` note)",
                        ));
                    }
                } else {
                    let (doc, losses) = document(rule, i)?;
                    let path = format!("{}.yml", det.stem);
                    write_document(
                        rule,
                        det,
                        &canonical_serves,
                        context_lines(&canonical_serves),
                        &doc,
                        &losses,
                        &path,
                        &mut out,
                    )?;
                    push_coverage(
                        det,
                        &canonical_serves,
                        first.map(|f| f.label.as_str()),
                        &path,
                        &mut out,
                    );
                    out.losses.extend(losses);
                }
            }
            for form in forms {
                if first.is_some_and(|f| std::ptr::eq(f, form)) {
                    continue;
                }
                let Some(platform) = form.spec.projection.as_deref() else {
                    continue;
                };
                match projected_document(rule, i, form, platform) {
                    Ok((doc, losses)) => {
                        let path = format!("{}__{}.yml", det.stem, form.name);
                        let served = vec![platform.to_string()];
                        let context = vec![comment_text(&format!(
                            "Field names are those of {} as the {} fields name them; the condition is detc's projection of the rule's onto that record (src/sources/projections.yaml).",
                            project::projection(&det.source, platform)
                                .map_or("platform's record", |p| p.record.as_str()),
                            form.spec.service
                        ))];
                        write_document(
                            rule, det, &served, context, &doc, &losses, &path, &mut out,
                        )?;
                        push_coverage(det, &served, Some(&form.label), &path, &mut out);
                        out.losses.extend(losses);
                    }
                    Err(loss) => out.losses.push(loss),
                }
            }
        }
        // Documents of one detection share rule-level losses: report each once.
        out.dedup_losses();
        Ok(out)
    }

    /// The pySigma pipelines the built detections need (`pipelines/*.yaml`,
    /// see [`super::sigma_pipelines`]).
    fn shared(&self, rules: &[&Rule]) -> Result<Vec<Artifact>, BackendError> {
        Ok(super::sigma_pipelines::pipelines(rules))
    }
}

fn push_coverage(
    det: &Detection,
    platforms: &[String],
    via: Option<&str>,
    path: &str,
    out: &mut Rendered,
) {
    // Sigma writes the whole condition or no document.
    out.served(det, platforms, via.unwrap_or("Sigma"), path, &det.condition);
}

/// Write one Sigma document, with its notes, through the template.
#[allow(clippy::too_many_arguments)]
fn write_document(
    rule: &Rule,
    det: &Detection,
    platforms: &[String],
    context: Vec<String>,
    doc: &Yaml,
    losses: &[Loss],
    path: &str,
    out: &mut Rendered,
) -> Result<(), BackendError> {
    let body = emit_yaml(doc);
    let back: Yaml = serde_yaml::from_str(&body)?;
    if back != *doc {
        return Err(BackendError(format!(
            "{}: internal error: the Sigma YAML does not read back as written",
            det.stem
        )));
    }
    let mut ctx = tera::Context::new();
    ctx.insert("rule", &comment_text(&rule.name));
    ctx.insert("source", &comment_text(&det.source));
    ctx.insert("platforms", &comment_text(&platforms.join(", ")));
    ctx.insert("context", &context);
    let notes: Vec<Vec<String>> = losses.iter().map(note_lines).collect();
    ctx.insert("notes", &notes);
    ctx.insert("body", &body);
    let contents = super::render_template("sigma/rule", &ctx)?;
    out.files.push(Artifact {
        path: path.to_string(),
        contents,
    });
    Ok(())
}

// ---------------------------------------------------------------------------
// Metadata

/// The Sigma tag of an ATT&CK tactic id (`TA0003` -> `attack.persistence`).
pub fn tactic_tag(id: &str) -> Option<String> {
    super::attack::tactic_slug(id).map(|slug| format!("attack.{slug}"))
}

/// The Sigma tag of an ATT&CK technique (`T1053.007` -> `attack.t1053.007`).
pub fn technique_tag(id: &str) -> String {
    format!("attack.{}", id.to_ascii_lowercase())
}

/// A Sigma form's own facts (the shared model of [`crate::sources::forms`],
/// kept in `src/sources/sigma.yaml`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub product: String,
    #[serde(default)]
    pub service: String,
    /// The platform whose projection turns the condition into one over its record.
    #[serde(default)]
    pub projection: Option<String>,
    /// What the title adds for a form after the first.
    #[serde(default)]
    pub title: Option<String>,
    /// Record path -> Sigma field name (a path below a listed one keeps its rest).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

pub type SigmaForm = forms::Form<Spec>;

/// Every source's Sigma forms, keyed by detc source name.
pub fn sigma_forms() -> &'static forms::TargetForms<Spec> {
    static FORMS: OnceLock<forms::TargetForms<Spec>> = OnceLock::new();
    FORMS.get_or_init(|| forms::load("sigma.yaml", include_str!("../sources/sigma.yaml")))
}

/// Sigma logsource (product, service) of a source: its first form's.
pub fn logsource(source: &str) -> (String, String) {
    match sigma_forms().get(source).and_then(|f| f.forms.first()) {
        Some(f) => (f.spec.product.clone(), f.spec.service.clone()),
        None => {
            let (p, s) = source.split_once('.').unwrap_or((source, ""));
            (p.into(), s.into())
        }
    }
}

/// A form's Sigma name of a record path.
fn sigma_name(form: &SigmaForm, f: &Field) -> Option<Field> {
    let keys: Vec<&str> = f.keys().map(|k| k.unwrap_or("**")).collect();
    (1..=keys.len()).rev().find_map(|n| {
        let to = form.spec.fields.get(&keys[..n].join("."))?;
        let mut segs: Vec<Seg> = to.split('.').map(|k| Seg::Key(k.to_string())).collect();
        segs.extend(f.0[n..].iter().cloned());
        Some(Field(segs))
    })
}

/// `x cased == "v"` as `x: v` and `x|re: '^v$'`: pySigma's Splunk backend
/// refuses `|cased`, and a regex is case-sensitive everywhere.
fn cased_as_regex(e: &Expr) -> Expr {
    match e {
        Expr::And(xs) => Expr::And(xs.iter().map(cased_as_regex).collect()),
        Expr::Or(xs) => Expr::Or(xs.iter().map(cased_as_regex).collect()),
        Expr::Not(x) => Expr::Not(Box::new(cased_as_regex(x))),
        Expr::Cmp(c)
            if c.op == Op::Eq
                && c.cased
                && !c.all
                && c.values.iter().all(|v| matches!(v, Value::Str(_))) =>
        {
            let lits: Vec<String> = c
                .values
                .iter()
                .filter_map(|v| project::literal(&v.text(), true).ok())
                .collect();
            let mut re = c.clone();
            re.op = Op::Matches;
            re.values = vec![Value::Regex(format!("^({})$", lits.join("|")))];
            // The plain (case-insensitive) value as well: it is implied, and
            // gives pySigma's Splunk backend a search term (a query made of
            // `| regex` filters only is written as no query at all).
            let mut plain = c.clone();
            plain.cased = false;
            Expr::And(vec![Expr::Cmp(plain), Expr::Cmp(re)])
        }
        other => other.clone(),
    }
}

/// The document of a projection form (`<stem>__<form>.yml`): the condition
/// over the platform's record under the form's logsource. `Err` is the
/// loss that keeps it from being written.
fn projected_document(
    rule: &Rule,
    index: usize,
    form: &SigmaForm,
    platform: &str,
) -> Result<(Yaml, Vec<Loss>), Loss> {
    let det = &rule.detections[index];
    let stem = det.stem.as_str();
    let construct = format!("match ({} form: no {stem}__{}.yml)", form.name, form.name);
    let p = project::projection(&det.source, platform).ok_or_else(|| {
        Loss::unsupported(
            stem,
            &construct,
            format!("no projection of {} onto {platform}", det.source),
        )
    })?;
    let projected = p.project(det, &det.condition).map_err(|errors| {
        let text: Vec<String> = errors
            .iter()
            .map(|(c, why)| format!("{c}: {why}"))
            .collect();
        Loss::unsupported(stem, &construct, text.join("; "))
    })?;
    if project::constant(&projected) == Some(false) {
        return Err(Loss::unsupported(
            stem,
            &construct,
            format!("the condition can never hold on {}", p.record),
        ));
    }
    let named = project::rename(&projected, &|f| sigma_name(form, f))
        .map_err(|why| Loss::unsupported(stem, &construct, why))?;
    let named = cased_as_regex(&named);
    let mut projected_det = det.clone();
    projected_det.lets = Vec::new();
    projected_det.indicators = Vec::new();
    projected_det.condition = named;
    projected_det.output = Default::default();
    projected_det.platforms = vec![platform.to_string()];
    detection_section(&projected_det).map_err(|u| {
        Loss::unsupported(stem, &construct, format!("{}: {}", u.construct, u.reason))
    })?;
    let id = super::naming::derived_id(&document_id(rule, index), &format!("sigma:{}", form.name));
    let title = format!(
        "{} ({})",
        super::naming::detection_title(rule, index),
        form.spec.title.as_deref().unwrap_or(&form.name)
    );
    let (doc, mut losses) = document_as(
        rule,
        index,
        &projected_det,
        (&form.spec.product, &form.spec.service),
        id,
        title,
        vec![document_id(rule, index)],
    )
    .map_err(|e| Loss::unsupported(stem, &construct, e.0))?;
    if !det.output.group_by.is_empty()
        || !det.output.values.is_empty()
        || !det.output.summary.is_empty()
    {
        losses.push(Loss::not_applicable(
            stem,
            format!("fields ({} form)", form.name),
            "the output fields are canonical fields, which this record holds under other names or only as parts of its text: the document lists none",
        ));
    }
    Ok((doc, losses))
}

/// The Sigma `id` of detection `index` (see [`super::naming::detection_id`]).
pub fn document_id(rule: &Rule, index: usize) -> String {
    super::naming::detection_id(rule, index)
}

/// Sigma tag namespaces that pySigma accepts.
const TAG_NAMESPACES: &[&str] = &["attack", "car", "cve", "d3fend", "detection", "stp", "tlp"];

/// TLP levels both of pySigma's TLP validators (1.0 and 2.0) accept.
const TLP_LEVELS: &[&str] = &["green", "amber", "red"];

fn valid_free_tag(tag: &str) -> bool {
    let Some((ns, name)) = tag.split_once('.') else {
        return false;
    };
    let ok = |s: &str, dot: bool| {
        !s.is_empty()
            && s.chars().all(|c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || c == '-'
                    || c == '_'
                    || (dot && c == '.')
            })
    };
    TAG_NAMESPACES.contains(&ns) && ok(ns, false) && ok(name, true)
}

fn s(v: &str) -> Yaml {
    Yaml::String(v.to_string())
}

fn seq_of(items: impl IntoIterator<Item = Yaml>) -> Yaml {
    Yaml::Sequence(items.into_iter().collect())
}

/// The Sigma document of detection `index` and what it could not express.
pub fn document(rule: &Rule, index: usize) -> Result<(Yaml, Vec<Loss>), BackendError> {
    let det = &rule.detections[index];
    let (product, service) = logsource(&det.source);
    document_as(
        rule,
        index,
        det,
        (&product, &service),
        document_id(rule, index),
        super::naming::detection_title(rule, index),
        Vec::new(),
    )
}

/// The document of `det` (detection `index` of `rule`, or its projection)
/// under a logsource, id and title; `related` ids come first.
fn document_as(
    rule: &Rule,
    index: usize,
    det: &Detection,
    (product, service): (&str, &str),
    id: String,
    title: String,
    first_related: Vec<String>,
) -> Result<(Yaml, Vec<Loss>), BackendError> {
    let meta = &rule.meta;
    let stem = det.stem.as_str();
    let mut losses = Vec::new();

    let detection = detection_section(det).map_err(|u| {
        BackendError(format!(
            "{stem}: the condition cannot be written in Sigma: {}: {}",
            u.construct, u.reason
        ))
    })?;

    let mut doc = Mapping::new();
    doc.insert(s("title"), s(&title));
    doc.insert(s("id"), s(&id));

    let mut related: Vec<(String, &str)> =
        first_related.into_iter().map(|r| (r, "similar")).collect();
    for j in (0..rule.detections.len()).filter(|j| *j != index) {
        related.push((document_id(rule, j), "similar"));
    }
    for r in &meta.related {
        related.push((r.id.clone(), r.kind.as_str()));
    }
    let mut seen = BTreeSet::new();
    related.retain(|(id, _)| seen.insert(id.clone()));
    if !related.is_empty() {
        doc.insert(
            s("related"),
            seq_of(related.iter().map(|(id, kind)| {
                let mut m = Mapping::new();
                m.insert(s("id"), s(id));
                m.insert(s("type"), s(kind));
                Yaml::Mapping(m)
            })),
        );
    }
    doc.insert(s("status"), s(meta.status.as_str()));
    let description = meta.description.trim();
    if !description.is_empty() {
        doc.insert(s("description"), s(description));
    }
    let mut refs = meta.references.clone();
    let mut seen = BTreeSet::new();
    refs.retain(|r| seen.insert(r.clone()));
    if !refs.is_empty() {
        doc.insert(s("references"), seq_of(refs.iter().map(|r| s(r))));
    }
    if !meta.author.trim().is_empty() {
        doc.insert(s("author"), s(meta.author.trim()));
    }
    doc.insert(s("date"), s(&meta.date));
    if let Some(m) = &meta.modified {
        doc.insert(s("modified"), s(m));
    }

    let mut tags: Vec<String> = Vec::new();
    for t in &meta.tactics {
        match tactic_tag(t) {
            Some(tag) => tags.push(tag),
            None => losses.push(Loss::not_applicable(
                stem,
                format!("attack {t}"),
                "not an ATT&CK Enterprise tactic id with a known Sigma tag",
            )),
        }
    }
    tags.extend(meta.techniques.iter().map(|t| technique_tag(t)));
    for t in &meta.tags {
        if let Some(level) = t.strip_prefix("tlp.").filter(|l| !TLP_LEVELS.contains(l)) {
            losses.push(Loss::not_applicable(
                stem,
                format!("tag {t}"),
                format!(
                    "`{level}` is not a TLP level every Sigma validator accepts: pySigma checks TLP 1.0 (white, green, amber, red) and 2.0 (clear, green, amber, amber-strict, red), and only {} are in both",
                    TLP_LEVELS.join(", ")
                ),
            ));
        } else if valid_free_tag(t) {
            tags.push(t.clone());
        } else {
            losses.push(Loss::not_applicable(
                stem,
                format!("tag {t}"),
                "Sigma tags are `namespace.name` in lower case with a namespace of attack, car, cve, d3fend, detection, stp or tlp",
            ));
        }
    }
    let mut seen = BTreeSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    if !tags.is_empty() {
        doc.insert(s("tags"), seq_of(tags.iter().map(|t| s(t))));
    }

    let mut ls = Mapping::new();
    ls.insert(s("product"), s(product));
    if !service.is_empty() {
        ls.insert(s("service"), s(service));
    }
    doc.insert(s("logsource"), Yaml::Mapping(ls));
    doc.insert(s("detection"), Yaml::Mapping(detection));

    let fields = output_fields(det, &mut losses);
    if !fields.is_empty() {
        doc.insert(s("fields"), seq_of(fields.iter().map(|f| s(f))));
    }
    if !meta.false_positives.is_empty() {
        doc.insert(
            s("falsepositives"),
            seq_of(meta.false_positives.iter().map(|f| s(f))),
        );
    }
    doc.insert(s("level"), s(meta.severity.as_str()));

    if meta
        .runbook
        .as_deref()
        .is_some_and(|r| !r.trim().is_empty())
    {
        losses.push(Loss::not_applicable(
            stem,
            "runbook",
            "Sigma rules have no runbook field",
        ));
    }
    for ind in &det.indicators {
        let detail = match Lowering::new(det).lower(&ind.expr, "indicator") {
            Ok(_) => String::new(),
            Err(u) => format!(
                "; its condition is not expressible either ({}: {})",
                u.construct, u.reason
            ),
        };
        losses.push(Loss::unsupported(
            stem,
            format!("indicator {}", ind.name),
            format!(
                "Sigma has no severity-raising indicators: the rule fires at level {} and cannot raise it to {} when the indicator matches{detail}",
                meta.severity.as_str(),
                ind.severity.as_str()
            ),
        ));
    }
    output_losses(det, &mut losses);
    Ok((Yaml::Mapping(doc), losses))
}

/// `fields`: group-by, values and summary fields, in that order, once each.
fn output_fields(det: &Detection, losses: &mut Vec<Loss>) -> Vec<String> {
    let o = &det.output;
    let all = o
        .group_by
        .iter()
        .chain(o.values.iter().map(|a| &a.field))
        .chain(o.summary.iter());
    let mut out: Vec<String> = Vec::new();
    for f in all {
        match field_name(f) {
            Ok(name) => {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            Err(reason) => {
                let construct = format!("output field {f}");
                if !losses.iter().any(|l| l.construct == construct) {
                    losses.push(Loss::not_applicable(&det.stem, construct, reason));
                }
            }
        }
    }
    out
}

fn output_losses(det: &Detection, losses: &mut Vec<Loss>) {
    let o = &det.output;
    let stem = det.stem.as_str();
    let mut na = |construct: &str, reason: String| {
        losses.push(Loss::not_applicable(stem, construct, reason))
    };
    if !o.group_by.is_empty() {
        let times = if o.time_range {
            " (nor add first/last seen times)"
        } else {
            ""
        };
        na(
            "output.group_by",
            format!("Sigma rules do not aggregate{times}; the group-by fields are listed in `fields` for display only"),
        );
    }
    let aliases: Vec<String> = o
        .values
        .iter()
        .filter_map(|a| a.alias.as_ref().map(|al| format!("{} as {al}", a.field)))
        .collect();
    if !aliases.is_empty() {
        na(
            "output.values",
            format!(
                "Sigma `fields` cannot rename fields: aliases {} are dropped",
                aliases.join(", ")
            ),
        );
    }
    if !o.rename.is_empty() {
        let list: Vec<String> = o
            .rename
            .iter()
            .map(|(f, to)| format!("{f} = {to}"))
            .collect();
        na(
            "output.rename",
            format!("Sigma has no output renames ({})", list.join(", ")),
        );
    }
    if o.title.is_some() {
        na(
            "output.title",
            "Sigma has no per-alert title template".into(),
        );
    }
    if let Some(m) = o.dedup_minutes {
        na(
            "output.dedup",
            format!("Sigma has no alert deduplication ({m}m)"),
        );
    }
    if let Some(sch) = &o.schedule {
        na(
            "output.schedule",
            format!(
                "Sigma has no schedule (cron {}, earliest {}, latest {}): the SIEM that runs the rule decides",
                sch.cron, sch.earliest, sch.latest
            ),
        );
    }
    if let Some(r) = &o.risk {
        na(
            "output.risk",
            format!(
                "Sigma has no risk scoring (score {}, impact {}, confidence {}); `level` carries the severity only",
                r.score, r.impact, r.confidence
            ),
        );
    }
}

// ---------------------------------------------------------------------------
// Detection: selections and condition

/// One detection item, `field|modifiers: value(s)`: a single value is written
/// as a scalar, several as a list.
type Item = (String, Vec<Yaml>);
/// AND of items: one YAML map.
type Map = Vec<Item>;
/// OR of maps: a selection (one map, or a list of maps).
type Form = Vec<Map>;

/// Words a selection may not be called (condition keywords, reserved keys).
const RESERVED: &[&str] = &[
    "and",
    "or",
    "not",
    "of",
    "them",
    "all",
    "condition",
    "timeframe",
];

fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "sel_");
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&out)) {
        out.push_str("_sel");
    }
    out
}

/// A Sigma field name: the dotted path.
pub fn field_name(f: &Field) -> Result<String, String> {
    let mut parts = Vec::with_capacity(f.0.len());
    for seg in &f.0 {
        match seg {
            Seg::AnyDepth => {
                return Err("`**` (a key at any depth) has no Sigma form: Sigma field names are fixed dotted paths".into())
            }
            Seg::Key(k) if k.is_empty() || k.contains('.') || k.contains('|') => {
                return Err(format!(
                    "the key {k:?} cannot be part of a Sigma field name (`.` separates levels and `|` starts modifiers)"
                ))
            }
            Seg::Key(k) => parts.push(k.as_str()),
        }
    }
    if parts.is_empty() {
        return Err("empty field path".into());
    }
    Ok(parts.join("."))
}

/// A literal string as a Sigma value: `*`, `?` and `\` escaped with `\`.
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Booleans as the exact strings a boolean may also be (`true`, `false`),
/// each once, as case-sensitive regexes: pySigma's backends refuse `|cased`,
/// and a regex is case-sensitive everywhere.
fn bool_texts(bools: impl Iterator<Item = bool>) -> Vec<Yaml> {
    let mut out: Vec<Yaml> = Vec::new();
    for b in bools {
        let t = Yaml::String(format!("^{b}$"));
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// A string value that `sigma check` reports when written as a plain
/// Sigma string: a literal `*` or `?` (EscapedWildcardIssue), a control
/// character (ControlCharacterIssue), or text Python's `int()` reads as a
/// number (NumberAsStringIssue). Such values are written as `|re` regexes
/// instead, which say the same and carry none of those issues.
pub fn needs_regex(v: &str) -> bool {
    let numeric = !v.is_empty()
        && !v.contains(' ')
        && v.chars().any(char::is_numeric)
        && v.trim()
            .chars()
            .all(|c| c.is_numeric() || matches!(c, '_' | '+' | '-'));
    numeric
        || v.chars()
            .any(|c| matches!(c, '*' | '?') || (c as u32) < 0x20 || c == '\u{7f}')
}

/// `v` as a regex matching it literally: metacharacters escaped, control
/// characters as `\xHH` (no raw control character in the YAML).
pub fn regex_literal(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push_str(&regex_syntax::escape(&c.to_string())),
        }
    }
    out
}

/// How a `like` glob is written in Sigma: the modifier that states it best
/// (`None` for a plain wildcard value) and the Sigma value.
pub fn glob_value(glob: &Glob) -> (Option<&'static str>, String) {
    enum Tok {
        Star,
        One,
        Lit(char),
    }
    // Runs of `*` are one wildcard.
    let mut toks: Vec<Tok> = Vec::new();
    for t in glob.tokens() {
        match t {
            GlobTok::Any => {
                if !matches!(toks.last(), Some(Tok::Star)) {
                    toks.push(Tok::Star)
                }
            }
            GlobTok::One => toks.push(Tok::One),
            GlobTok::Lit(c) => toks.push(Tok::Lit(*c)),
        }
    }
    let lit = |ts: &[Tok]| -> Option<String> {
        ts.iter()
            .map(|t| match t {
                Tok::Lit(c) => Some(*c),
                _ => None,
            })
            .collect::<Option<String>>()
    };
    let n = toks.len();
    let starts = matches!(toks.first(), Some(Tok::Star));
    let ends = matches!(toks.last(), Some(Tok::Star));
    if let Some(l) = lit(&toks) {
        return (None, escape_value(&l));
    }
    if n >= 3 && starts && ends {
        if let Some(l) = lit(&toks[1..n - 1]) {
            return (Some("contains"), escape_value(&l));
        }
    }
    if n >= 2 && ends && !starts {
        if let Some(l) = lit(&toks[..n - 1]) {
            return (Some("startswith"), escape_value(&l));
        }
    }
    if n >= 2 && starts && !ends {
        if let Some(l) = lit(&toks[1..]) {
            return (Some("endswith"), escape_value(&l));
        }
    }
    let mut out = String::new();
    for t in &toks {
        match t {
            Tok::Star => out.push('*'),
            Tok::One => out.push('?'),
            Tok::Lit(c) => out.push_str(&escape_value(&c.to_string())),
        }
    }
    (None, out)
}

fn num(n: &serde_json::Number) -> Yaml {
    if let Some(i) = n.as_i64() {
        Yaml::Number(i.into())
    } else if let Some(u) = n.as_u64() {
        Yaml::Number(u.into())
    } else {
        Yaml::Number(n.as_f64().unwrap_or(0.0).into())
    }
}

fn key(name: &str, mods: &[&str]) -> String {
    let mut k = name.to_string();
    for m in mods {
        k.push('|');
        k.push_str(m);
    }
    k
}

fn single(c: &Cmp, v: &Value) -> Cmp {
    Cmp {
        values: vec![v.clone()],
        all: false,
        ..c.clone()
    }
}

/// Turns the IR into selections and a condition that refers to them.
struct Lowering<'a> {
    det: &'a Detection,
    selections: Vec<(String, Form)>,
    taken: BTreeSet<String>,
    /// let name -> the expression that stands for it in the condition.
    memo: BTreeMap<String, Expr>,
    /// Lets that are not one selection, rewritten, under internal names.
    inlined: Vec<Let>,
}

impl<'a> Lowering<'a> {
    fn new(det: &'a Detection) -> Self {
        let taken = det.lets.iter().map(|l| sanitize(&l.name)).collect();
        Lowering {
            det,
            selections: Vec::new(),
            taken,
            memo: BTreeMap::new(),
            inlined: Vec::new(),
        }
    }

    fn fresh(&mut self, base: &str) -> String {
        let base = sanitize(base);
        let mut n = 1;
        loop {
            let name = format!("{base}_{n}");
            if self.taken.insert(name.clone()) {
                return name;
            }
            n += 1;
        }
    }

    /// Under `not`, each selection `s` on fields that may be absent becomes
    /// `s and not s_absent`, `s_absent` listing `field: null` for each of
    /// its fields. By Sigma's rules the guard changes nothing (a selection
    /// on an absent field does not match), but converters that map a
    /// selection to a three-valued comparison (pySigma's EQL and ES|QL:
    /// `not x == "v"` is null, so false, when `x` is absent) then keep the
    /// records without the field, as detc's semantics and every other
    /// target do. A selection whose maps test different fields, or that is
    /// itself a `null` test, is left as it is.
    fn guard(&mut self, e: &Expr, negated: bool) -> Expr {
        match e {
            Expr::Not(x) => Expr::Not(Box::new(self.guard(x, true))),
            Expr::And(xs) => Expr::And(xs.iter().map(|x| self.guard(x, negated)).collect()),
            Expr::Or(xs) => Expr::Or(xs.iter().map(|x| self.guard(x, negated)).collect()),
            Expr::Cmp(_) => e.clone(),
            Expr::Ref(name) if name.starts_with('\u{0}') => {
                if negated {
                    if let Some(i) = self.inlined.iter().position(|l| &l.name == name) {
                        let body = self.inlined[i].expr.clone();
                        let guarded = self.guard(&body, true);
                        self.inlined[i].expr = guarded;
                    }
                }
                e.clone()
            }
            Expr::Ref(name) => {
                if !negated {
                    return e.clone();
                }
                let Some(form) = self
                    .selections
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, f)| f.clone())
                else {
                    return e.clone();
                };
                let fields_of = |m: &Map| -> BTreeSet<String> {
                    m.iter()
                        .map(|(k, _)| k.split('|').next().unwrap_or_default().to_string())
                        .collect()
                };
                let Some(first) = form.first().map(fields_of) else {
                    return e.clone();
                };
                let null_test = form
                    .iter()
                    .flatten()
                    .any(|(_, vs)| vs.iter().any(|v| matches!(v, Yaml::Null)));
                if null_test || form.iter().any(|m| fields_of(m) != first) {
                    return e.clone();
                }
                // One guard per set of fields, shared by the selections on it.
                let maps: Form = first
                    .iter()
                    .map(|f| vec![(f.clone(), vec![Yaml::Null])])
                    .collect();
                let absent = match self
                    .selections
                    .iter()
                    .find(|(n, f)| n.ends_with("_absent") && *f == maps)
                {
                    Some((n, _)) => n.clone(),
                    None => {
                        let absent = format!("{name}_absent");
                        if self.taken.contains(&absent) {
                            return e.clone();
                        }
                        self.add(absent.clone(), maps);
                        absent
                    }
                };
                Expr::And(vec![e.clone(), Expr::Not(Box::new(Expr::Ref(absent)))])
            }
        }
    }

    fn add(&mut self, name: String, form: Form) -> Expr {
        self.taken.insert(name.clone());
        self.selections.push((name.clone(), form));
        Expr::Ref(name)
    }

    /// An equivalent expression for comparisons that are not one detection
    /// item: `all` lists (other than `contains`, which has `|contains|all`)
    /// become an AND of single values; `x != "v"` ("present and not equal")
    /// becomes `not (x absent or x == "v")`, i.e. `not` of `[{x: null}, {x: v}]`.
    fn expand(&self, c: &Cmp) -> Result<Option<Expr>, Unprintable> {
        if c.op == Op::Exists {
            return Ok(None);
        }
        // `|contains|all` cannot hold a value written as a regex (`|re|all`
        // is an issue for `sigma check`): then each value is its own item.
        let awkward = c.values.iter().any(|v| match v {
            Value::Str(x) => needs_regex(x),
            _ => false,
        });
        if c.values.len() > 1 && c.all && (c.op != Op::Contains || awkward) {
            return Ok(Some(Expr::And(
                c.values.iter().map(|v| Expr::Cmp(single(c, v))).collect(),
            )));
        }
        // Letters beyond ASCII: Sigma engines fold them each their own way,
        // so the value is a case-sensitive `|re` with every letter's case
        // partners written out (`crate::fold`). `!=` is expanded below into
        // `not (absent or ==)`, whose `==` comes back here.
        let spelled =
            |v: &Value| super::table::spelled_out(c.op, v, &crate::fold::has_cased_non_ascii);
        if !c.cased && c.op != Op::Ne && c.values.iter().any(|v| spelled(v).is_some()) {
            if c.values.len() > 1 {
                return Ok(Some(Expr::Or(
                    c.values.iter().map(|v| Expr::Cmp(single(c, v))).collect(),
                )));
            }
            let re = c.values.first().and_then(spelled).unwrap_or_default();
            return Ok(Some(Expr::Cmp(Cmp {
                op: Op::Matches,
                values: vec![Value::Regex(re)],
                cased: true,
                all: false,
                ..c.clone()
            })));
        }
        if c.op == Op::Ne
            && c.values
                .iter()
                .any(|v| matches!(v, Value::Str(_) | Value::Regex(_)))
        {
            if c.values.len() > 1 {
                return Ok(Some(Expr::Or(
                    c.values.iter().map(|v| Expr::Cmp(single(c, v))).collect(),
                )));
            }
            if c.info.is_array() {
                return Err(Unprintable {
                    construct: c.to_string(),
                    reason: "`!=` on an array field holds when some element differs; Sigma can only say \"not equal to any element\"".into(),
                });
            }
            let exists = Cmp {
                op: Op::Exists,
                values: vec![],
                cased: false,
                all: false,
                field: c.field.clone(),
                info: c.info.clone(),
            };
            let eq = Cmp {
                op: Op::Eq,
                ..c.clone()
            };
            let absent = Expr::Not(Box::new(Expr::Cmp(exists)));
            return Ok(Some(Expr::Not(Box::new(Expr::Or(vec![
                absent,
                Expr::Cmp(eq),
            ])))));
        }
        Ok(None)
    }

    /// The selection form of one comparison (after [`Self::expand`]), or
    /// `None` for `exists`, which is `not x: null`.
    fn cmp_form(&self, c: &Cmp) -> Result<Option<Form>, Unprintable> {
        let bad = |reason: String| Unprintable {
            construct: c.to_string(),
            reason,
        };
        let name = field_name(&c.field).map_err(bad)?;
        let text = |v: &Value| match v {
            Value::Str(x) | Value::Regex(x) => x.clone(),
            other => other.text(),
        };
        let cased = |mods: &mut Vec<&str>| {
            if c.cased {
                mods.push("cased")
            }
        };
        let one_map = |k: String, vals: Vec<Yaml>| vec![vec![(k, vals)]];
        Ok(Some(match c.op {
            // Sigma's `x: null` is "x is null or absent", the language's
            // `not x exists`. (The `|exists` modifier would say the same, but
            // pySigma's EQL backend cannot convert it.)
            Op::Exists => return Ok(None),
            Op::Eq => {
                // Strings (case-insensitive unless `cased`) and the rest
                // (numbers, booleans: no case) need different keys.
                let strs: Vec<Yaml> = c
                    .values
                    .iter()
                    .filter_map(|v| match v {
                        Value::Str(x) if !needs_regex(x) => Some(Yaml::String(escape_value(x))),
                        Value::Regex(x) => Some(Yaml::String(escape_value(x))),
                        _ => None,
                    })
                    .collect();
                let res: Vec<Yaml> = c
                    .values
                    .iter()
                    .filter_map(|v| match v {
                        Value::Str(x) if needs_regex(x) => {
                            Some(Yaml::String(format!("^{}$", regex_literal(x))))
                        }
                        _ => None,
                    })
                    .collect();
                let others: Vec<Yaml> = c
                    .values
                    .iter()
                    .filter_map(|v| match v {
                        Value::Num(n) => Some(num(n)),
                        Value::Bool(b) => Some(Yaml::Bool(*b)),
                        _ => None,
                    })
                    .collect();
                let mut form = Vec::new();
                if !strs.is_empty() {
                    let mut mods = Vec::new();
                    cased(&mut mods);
                    form.push(vec![(key(&name, &mods), strs)]);
                }
                if !res.is_empty() {
                    let mods: &[&str] = if c.cased { &["re"] } else { &["re", "i"] };
                    form.push(vec![(key(&name, mods), res)]);
                }
                if !others.is_empty() {
                    form.push(vec![(name.clone(), others)]);
                }
                // A boolean is also the exact text "true"/"false" (a Sigma
                // boolean matches only a boolean).
                let texts = bool_texts(c.values.iter().filter_map(|v| match v {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                }));
                if !texts.is_empty() {
                    form.push(vec![(key(&name, &["re"]), texts)]);
                }
                form
            }
            Op::Ne => {
                // Only numbers and booleans reach here (strings are expanded).
                let mut gt = Vec::new();
                let mut bools = Vec::new();
                for v in &c.values {
                    match v {
                        Value::Num(n) => gt.push(num(n)),
                        Value::Bool(b) => bools.push(Yaml::Bool(!b)),
                        _ => return Err(bad("internal: string `!=` was not expanded".into())),
                    }
                }
                let mut form = Vec::new();
                if !gt.is_empty() {
                    // A number that differs is greater or smaller.
                    form.push(vec![(key(&name, &["gt"]), gt.clone())]);
                    form.push(vec![(key(&name, &["lt"]), gt)]);
                }
                if !bools.is_empty() {
                    let texts = bool_texts(bools.iter().filter_map(|b| match b {
                        Yaml::Bool(b) => Some(*b),
                        _ => None,
                    }));
                    form.push(vec![(name.clone(), bools)]);
                    form.push(vec![(key(&name, &["re"]), texts)]);
                }
                form
            }
            Op::StartsWith | Op::EndsWith | Op::Contains => {
                let m = match c.op {
                    Op::StartsWith => "startswith",
                    Op::EndsWith => "endswith",
                    _ => "contains",
                };
                let mut mods = vec![m];
                cased(&mut mods);
                let all = c.all && c.values.len() > 1;
                if all {
                    mods.push("all");
                }
                // Values `sigma check` would flag become regexes (see
                // `needs_regex`); under `all` the regexes are ANDed items of
                // one map, otherwise a second map ORed with the plain values.
                let (awkward, plain): (Vec<&Value>, Vec<&Value>) =
                    c.values.iter().partition(|v| needs_regex(&text(v)));
                let re = |v: &Value| {
                    let lit = regex_literal(&text(v));
                    Yaml::String(match c.op {
                        Op::StartsWith => format!("^{lit}"),
                        Op::EndsWith => format!("{lit}$"),
                        _ => lit,
                    })
                };
                let re_mods: &[&str] = if c.cased { &["re"] } else { &["re", "i"] };
                let mut map: Map = Vec::new();
                if !plain.is_empty() {
                    map.push((
                        key(&name, &mods),
                        plain
                            .iter()
                            .map(|v| Yaml::String(escape_value(&text(v))))
                            .collect(),
                    ));
                }
                if awkward.is_empty() {
                    vec![map]
                } else if all {
                    // `expand` splits an `all` list that holds such a value.
                    return Err(bad(
                        "internal: an `all` list with a regex value was not expanded".into(),
                    ));
                } else {
                    let mut form = Vec::new();
                    if !map.is_empty() {
                        form.push(map);
                    }
                    form.push(vec![(
                        key(&name, re_mods),
                        awkward.into_iter().map(re).collect(),
                    )]);
                    form
                }
            }
            Op::Like => {
                // Group the globs by the modifier that writes them.
                let mut groups: Vec<(Option<&str>, Vec<Yaml>)> = Vec::new();
                for v in &c.values {
                    let Value::Glob(g) = v else {
                        continue;
                    };
                    let (m, val) = glob_value(g);
                    match groups.iter_mut().find(|(gm, _)| *gm == m) {
                        Some((_, vals)) => vals.push(Yaml::String(val)),
                        None => groups.push((m, vec![Yaml::String(val)])),
                    }
                }
                groups
                    .into_iter()
                    .map(|(m, vals)| {
                        let mut mods: Vec<&str> = m.into_iter().collect();
                        cased(&mut mods);
                        vec![(key(&name, &mods), vals)]
                    })
                    .collect()
            }
            Op::Matches => {
                let mods: &[&str] = if c.cased { &["re"] } else { &["re", "i"] };
                one_map(
                    key(&name, mods),
                    c.values.iter().map(|v| Yaml::String(text(v))).collect(),
                )
            }
            Op::Cidr => one_map(
                key(&name, &["cidr"]),
                c.values.iter().map(|v| Yaml::String(text(v))).collect(),
            ),
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let m = match c.op {
                    Op::Lt => "lt",
                    Op::Le => "lte",
                    Op::Gt => "gt",
                    _ => "gte",
                };
                let mut vals = Vec::new();
                for v in &c.values {
                    match v {
                        Value::Num(n) => vals.push(num(n)),
                        _ => return Err(bad("numeric comparisons need numbers".into())),
                    }
                }
                one_map(key(&name, &[m]), vals)
            }
        }))
    }

    /// The selection form of `e`, if it fits one selection.
    fn form(&self, e: &Expr) -> Result<Option<Form>, Unprintable> {
        match e {
            Expr::Ref(_) => Ok(None),
            Expr::Cmp(c) => match self.expand(c)? {
                Some(x) => self.form(&x),
                None => self.cmp_form(c),
            },
            Expr::Not(x) => match x.as_ref() {
                Expr::Cmp(c) if c.op == Op::Exists => {
                    let name = field_name(&c.field).map_err(|reason| Unprintable {
                        construct: c.to_string(),
                        reason,
                    })?;
                    Ok(Some(vec![vec![(name, vec![Yaml::Null])]]))
                }
                Expr::Not(y) => self.form(y),
                _ => Ok(None),
            },
            Expr::And(xs) => {
                let mut map: Map = Vec::new();
                for x in xs {
                    let Some(f) = self.form(x)? else {
                        return Ok(None);
                    };
                    match merge_and(&map, &f) {
                        Some(m) => map = m,
                        None => return Ok(None),
                    }
                }
                Ok(Some(vec![map]))
            }
            Expr::Or(xs) => {
                let mut form: Form = Vec::new();
                for x in xs {
                    let Some(f) = self.form(x)? else {
                        return Ok(None);
                    };
                    form.extend(f);
                }
                Ok(Some(merge_or(form)))
            }
        }
    }

    /// The condition expression of a `let`, lowering it on first use.
    fn lower_let(&mut self, name: &str) -> Result<Expr, Unprintable> {
        if let Some(e) = self.memo.get(name) {
            return Ok(e.clone());
        }
        let det = self.det;
        let Some(expr) = det.let_expr(name) else {
            return Err(Unprintable {
                construct: name.into(),
                reason: "unknown name".into(),
            });
        };
        let out = match self.form(expr)? {
            Some(form) => self.add(sanitize(name), form),
            None => {
                let lowered = self.lower(expr, &sanitize(name))?;
                // A name no selection can have: the printer inlines it.
                let internal = format!("\u{0}{name}");
                self.inlined.push(Let {
                    name: internal.clone(),
                    expr: lowered,
                });
                Expr::Ref(internal)
            }
        };
        self.memo.insert(name.to_string(), out.clone());
        Ok(out)
    }

    /// `e` with every comparison (and every representable sub-expression)
    /// replaced by a reference to a new selection named `<base>_<n>`.
    fn lower(&mut self, e: &Expr, base: &str) -> Result<Expr, Unprintable> {
        if let Some(form) = self.form(e)? {
            let name = self.fresh(base);
            return Ok(self.add(name, form));
        }
        match e {
            Expr::Ref(name) => self.lower_let(name),
            Expr::Not(x) => Ok(Expr::Not(Box::new(self.lower(x, base)?))),
            Expr::Cmp(c) => match self.expand(c)? {
                Some(x) => self.lower(&x, base),
                None => match self.cmp_form(c)? {
                    Some(form) => {
                        let name = self.fresh(base);
                        Ok(self.add(name, form))
                    }
                    // `x exists`: `not x: null`.
                    None => Ok(Expr::Not(Box::new(
                        self.lower(&Expr::Not(Box::new(e.clone())), base)?,
                    ))),
                },
            },
            Expr::And(xs) | Expr::Or(xs) => {
                let is_and = matches!(e, Expr::And(_));
                // Children that fit selections are grouped into one where
                // they can be (one map for AND, one list of maps for OR).
                let mut parts: Vec<Result<Form, Expr>> = Vec::new();
                for x in xs {
                    match self.form(x)? {
                        Some(f) => {
                            let merged = match parts.iter_mut().find_map(|p| p.as_mut().ok()) {
                                Some(group) if is_and => match (group.len(), f.len()) {
                                    (1, 1) => merge_and(&group[0], &f).map(|m| *group = vec![m]),
                                    _ => None,
                                },
                                Some(group) => {
                                    group.extend(f.clone());
                                    *group = merge_or(std::mem::take(group));
                                    Some(())
                                }
                                None => None,
                            };
                            if merged.is_none() {
                                parts.push(Ok(f));
                            }
                        }
                        None => parts.push(Err(x.clone())),
                    }
                }
                let mut out = Vec::with_capacity(parts.len());
                for p in parts {
                    out.push(match p {
                        Ok(form) => {
                            let name = self.fresh(base);
                            self.add(name, form)
                        }
                        Err(x) => self.lower(&x, base)?,
                    });
                }
                Ok(if is_and {
                    Expr::And(out)
                } else {
                    Expr::Or(out)
                })
            }
        }
    }
}

/// Merge a map into an AND map: no key may repeat.
fn merge_and(map: &Map, form: &Form) -> Option<Map> {
    if form.len() != 1 {
        return None;
    }
    let mut out = map.clone();
    for (k, v) in &form[0] {
        if out.iter().any(|(k2, _)| k2 == k) {
            return None;
        }
        out.push((k.clone(), v.clone()));
    }
    Some(out)
}

/// Merge one-item maps on the same key into one value list (an OR), except
/// for `|all` lists and `null` (kept alone: `x: null` reads best, and
/// evaluators differ on null inside lists).
fn merge_or(form: Form) -> Form {
    let mut out: Form = Vec::new();
    for map in form {
        if out.contains(&map) {
            continue;
        }
        if let [(k, vals)] = map.as_slice() {
            let mergeable = !k.split('|').any(|m| m == "all") && !vals.contains(&Yaml::Null);
            if mergeable {
                let target = out
                    .iter_mut()
                    .find(|m| m.len() == 1 && &m[0].0 == k && !m[0].1.contains(&Yaml::Null));
                if let Some(target) = target {
                    for v in vals {
                        if !target[0].1.contains(v) {
                            target[0].1.push(v.clone());
                        }
                    }
                    continue;
                }
            }
        }
        out.push(map);
    }
    out
}

/// Condition printing: references are selection names; every comparison has
/// been turned into a selection before printing.
struct SelectionNames<'a>(&'a BTreeSet<String>);

impl Dialect for SelectionNames<'_> {
    /// Sigma tools differ in how carefully they apply precedence: be explicit.
    fn always_parenthesise(&self) -> bool {
        true
    }
    fn reference(&self, name: &str) -> Option<String> {
        self.0.contains(name).then(|| name.to_string())
    }
    fn cmp(&self, _c: &Cmp) -> Result<String, String> {
        Err("internal: a comparison was not turned into a selection".into())
    }
}

fn item_value(vals: &[Yaml]) -> Yaml {
    match vals {
        [one] => one.clone(),
        many => Yaml::Sequence(many.to_vec()),
    }
}

fn map_yaml(map: &Map) -> Yaml {
    let mut m = Mapping::new();
    for (k, v) in map {
        m.insert(Yaml::String(k.clone()), item_value(v));
    }
    Yaml::Mapping(m)
}

/// The `detection` section of a detection: its selections and `condition`.
pub fn detection_section(det: &Detection) -> Result<Mapping, Unprintable> {
    let mut low = Lowering::new(det);
    // Lets in their (dependency) order, the ones the condition uses only.
    let mut used = BTreeSet::new();
    collect_refs(det, &det.condition, &mut used);
    for l in &det.lets {
        if used.contains(&l.name) {
            low.lower_let(&l.name)?;
        }
    }
    // A condition that is one selection is called `selection`, as in SigmaHQ.
    let condition = match low.form(&det.condition)? {
        Some(form) if !low.taken.contains("selection") => low.add("selection".into(), form),
        _ => low.lower(&det.condition, "selection")?,
    };
    let condition = low.guard(&condition, false);
    let names: BTreeSet<String> = low.selections.iter().map(|(n, _)| n.clone()).collect();
    let synthetic = Detection {
        lets: std::mem::take(&mut low.inlined),
        condition: condition.clone(),
        indicators: Vec::new(),
        ..det.clone()
    };
    let text = printer::print(&SelectionNames(&names), &synthetic, &condition)?;
    let mut out = Mapping::new();
    for (name, form) in &low.selections {
        let v = match form.as_slice() {
            [one] => map_yaml(one),
            many => Yaml::Sequence(many.iter().map(map_yaml).collect()),
        };
        out.insert(Yaml::String(name.clone()), v);
    }
    out.insert(s("condition"), Yaml::String(text));
    Ok(out)
}

fn collect_refs(det: &Detection, e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Ref(n) => {
            if out.insert(n.clone()) {
                if let Some(x) = det.let_expr(n) {
                    collect_refs(det, x, out);
                }
            }
        }
        Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| collect_refs(det, x, out)),
        Expr::Not(x) => collect_refs(det, x, out),
        Expr::Cmp(_) => {}
    }
}

// ---------------------------------------------------------------------------
// Comments

/// Text safe inside a `# ` comment: line breaks (including YAML 1.1's NEL,
/// LS and PS) become spaces, other non-printable characters `\u{..}`.
pub fn comment_text(v: &str) -> String {
    v.split(is_break)
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(comment_char)
        .collect()
}

fn comment_char(c: char) -> String {
    if yaml_printable(c) && c != '\u{feff}' {
        c.to_string()
    } else {
        c.escape_unicode().to_string()
    }
}

/// One loss as comment lines: `kind: construct: reason`, the reason's own
/// lines kept as continuation lines.
fn note_lines(l: &Loss) -> Vec<String> {
    let kind = l.kind.label();
    let mut lines: Vec<String> = l
        .reason
        .split(is_break)
        .map(|x| comment_text(x.trim_end()))
        .collect();
    lines.retain(|x| !x.is_empty());
    let head = format!(
        "{kind}: {}: {}",
        comment_text(&l.construct),
        lines.first().cloned().unwrap_or_default()
    );
    let mut out = vec![head];
    out.extend(lines.into_iter().skip(1));
    out
}

fn context_lines(platforms: &[String]) -> Vec<String> {
    let normalised: Vec<&str> = platforms
        .iter()
        .map(String::as_str)
        .filter(|p| *p == "aks")
        .collect();
    if normalised.is_empty() {
        return Vec::new();
    }
    vec![comment_text(
        "AKS records hold the audit Event as the JSON string properties.log: convert with pipelines/splunk-aks.yaml for Splunk, or read them through Elastic's Kubernetes integration (azure-eventhub input) with pipelines/elastic-kubernetes-audit.yaml.",
    )]
}

#[cfg(test)]
mod form_tests {
    use super::*;

    #[test]
    fn every_form_loads() {
        assert_eq!(forms::check("sigma", sigma_forms()), Vec::<String>::new());
        assert_eq!(
            logsource("kubernetes.audit"),
            ("kubernetes".to_string(), "audit".to_string())
        );
        assert_eq!(
            logsource("azure.activity"),
            ("azure".to_string(), "activitylogs".to_string())
        );
    }
}
