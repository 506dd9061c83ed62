//! The Splunk backend: a contentctl 5.6.2 content folder plus the plain query.
//!
//! ```text
//! detections/<name stem>.yml         contentctl detection (holds `search`)
//! macros/<name stem>_filter.yml      the empty filter macro users edit (`search *`)
//! macros/<source macro>.yml          shared: `kube_audit`, `azure_monitor_activity`
//! <detection stem>.spl               the query alone, for people and diffs
//! ```
//!
//! contentctl derives the detection file name and the filter macro from the
//! detection `name` (the rule title, lower-cased, ` - . /` to `_`), so those
//! two follow the title; the `.spl` file follows the rule name like every
//! other target's output.
//!
//! The search has seed 003's shape:
//! `` `macro` <search terms> [| where <post-filter>] | fillnull | stats ... by ... [| rename ...] | `<name stem>_filter` ``.
//! The match is split into its top-level `and` conjuncts: each one the search
//! command can express exactly becomes search terms ([`SearchTerms`]); the
//! others go to one `| where` clause ([`WhereExpr`], eval syntax), which
//! handles literal `*`, `cased`, regexes, `?` globs, CIDR and numeric tests on
//! string fields. Both are dialects of the one shared printer.

use super::printer::{self, Dialect};
use super::text::spl_str;
use super::{render_template, Artifact, Backend, BackendError, Loss, Rendered, Target};
use crate::ir::{
    Cmp, Detection, Expr, Field, Glob, GlobTok, Op, Rule, Severity, Status, TemplatePart, Value,
};
use crate::sources::{self, forms, Catalog, FieldType};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::OnceLock;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "splunk/detection.yml",
        include_str!("../../templates/splunk/detection.yml.tera"),
    ),
    (
        "splunk/macro.yml",
        include_str!("../../templates/splunk/macro.yml.tera"),
    ),
    (
        "splunk/data_source.yml",
        include_str!("../../templates/splunk/data_source.yml.tera"),
    ),
    (
        "splunk/story.yml",
        include_str!("../../templates/splunk/story.yml.tera"),
    ),
    (
        "splunk/query.spl",
        include_str!("../../templates/splunk/query.spl.tera"),
    ),
];

/// contentctl's limit on a detection name.
pub const MAX_NAME: usize = 67;

/// A Splunk form's own facts (`src/sources/splunk.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Appended to the title to name this form's detection (` - AKS`),
    /// except for the first form of a rule's first detection.
    pub title: String,
    #[serde(rename = "macro")]
    pub source_macro: MacroDef,
    /// Base-search terms after the macro that pick the source's records.
    #[serde(default)]
    pub select: Option<String>,
    /// Search-time commands that make the canonical fields; the rule's
    /// terms then follow in `| search`.
    #[serde(default)]
    pub decode: Vec<String>,
    /// Canonical Splunk field name (a prefix at a dot) -> the stored one.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// contentctl data source names (`splunk_content.yaml`).
    pub data_sources: Vec<String>,
    pub story: String,
    pub asset_type: String,
    pub security_domain: String,
    pub how_to_implement: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacroDef {
    pub name: String,
    pub definition: String,
    pub description: String,
}

pub type Form = forms::Form<Spec>;

/// Every source's Splunk forms.
pub fn tables() -> &'static forms::TargetForms<Spec> {
    static T: OnceLock<forms::TargetForms<Spec>> = OnceLock::new();
    T.get_or_init(|| forms::load("splunk.yaml", include_str!("../sources/splunk.yaml")))
}

/// The data sources and stories the forms reference (`splunk_content.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    pub data_sources: Vec<DataSource>,
    pub stories: Vec<Story>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    pub name: String,
    pub id: String,
    /// splunk/security_content defines it under the same name.
    #[serde(default)]
    pub security_content: bool,
    pub description: String,
    pub source: String,
    pub sourcetype: String,
    #[serde(default)]
    pub ta: Option<Ta>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ta {
    pub name: String,
    pub url: String,
    pub version: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Story {
    pub name: String,
    pub id: String,
    #[serde(default)]
    pub security_content: bool,
    pub description: String,
    pub narrative: String,
    #[serde(default)]
    pub references: Vec<String>,
}

pub fn content() -> &'static Content {
    static C: OnceLock<Content> = OnceLock::new();
    C.get_or_init(|| {
        serde_yaml::from_str(include_str!("../sources/splunk_content.yaml"))
            .expect("built-in src/sources/splunk_content.yaml is valid")
    })
}

pub struct Splunk;

impl Backend for Splunk {
    fn target(&self) -> Target {
        Target::Splunk
    }

    fn render(&self, rule: &Rule) -> Result<Rendered, BackendError> {
        let mut out = Rendered::default();
        for (index, det) in rule.detections.iter().enumerate() {
            let stem = det.stem.as_str();
            let Some(sf) = tables().get(&det.source) else {
                return Err(BackendError(format!(
                    "{stem}: the splunk backend has no forms for source `{}` (src/sources/splunk.yaml)",
                    det.source
                )));
            };
            let mut common = Vec::new();
            for (p, why) in sf.unserved(&det.platforms, "Splunk") {
                common.push(Loss::unsupported(stem, format!("platform {p}"), why));
            }
            for (nth, form) in sf.serving(&det.platforms).enumerate() {
                render_detection(rule, index, det, form, nth, &common, &mut out)?;
            }
            out.losses.extend(common);
        }
        // The forms of one detection share most losses: report each once.
        out.dedup_losses();
        Ok(out)
    }

    /// The source macros, data sources and stories the rules' detections
    /// use, once each: with them `dist/splunk` is a complete contentctl
    /// content tree.
    fn shared(&self, rules: &[&Rule]) -> Result<Vec<Artifact>, BackendError> {
        let mut macros = BTreeMap::new();
        let mut data_sources = BTreeMap::new();
        let mut stories = BTreeMap::new();
        for det in rules.iter().flat_map(|r| &r.detections) {
            let Some(sf) = tables().get(&det.source) else {
                continue;
            };
            for form in sf.serving(&det.platforms) {
                let m = &form.spec.source_macro;
                macros.insert(m.name.as_str(), m);
                for d in &form.spec.data_sources {
                    data_sources.insert(d.as_str(), ());
                }
                stories.insert(form.spec.story.as_str(), ());
            }
        }
        let mut files = Vec::new();
        for m in macros.values() {
            let ctx = tera::Context::from_serialize(json!({
                "rule": null,
                "name": m.name,
                "definition": m.definition,
                "description": m.description,
            }))?;
            files.push(Artifact {
                path: format!("macros/{}.yml", m.name),
                contents: render_template("splunk/macro.yml", &ctx)?,
            });
        }
        let c = content();
        for name in data_sources.keys() {
            let d = c
                .data_sources
                .iter()
                .find(|d| d.name == *name)
                .ok_or_else(|| {
                    BackendError(format!(
                        "data source `{name}` is not in src/sources/splunk_content.yaml"
                    ))
                })?;
            let ctx = tera::Context::from_serialize(json!({ "d": d }))?;
            files.push(Artifact {
                path: format!("data_sources/{}.yml", name_stem(&d.name)),
                contents: render_template("splunk/data_source.yml", &ctx)?,
            });
        }
        for name in stories.keys() {
            let st = c
                .stories
                .iter()
                .find(|st| st.name == *name)
                .ok_or_else(|| {
                    BackendError(format!(
                        "story `{name}` is not in src/sources/splunk_content.yaml"
                    ))
                })?;
            let ctx = tera::Context::from_serialize(json!({ "s": st }))?;
            files.push(Artifact {
                path: format!("stories/{}.yml", name_stem(&st.name)),
                contents: render_template("splunk/story.yml", &ctx)?,
            });
        }
        Ok(files)
    }
}

/// The shared files (relative to `dist/splunk/`) that splunk/security_content
/// already defines: `detc build --splunk-security-content` leaves them out.
pub fn security_content_files() -> Vec<String> {
    let c = content();
    c.data_sources
        .iter()
        .filter(|d| d.security_content)
        .map(|d| format!("data_sources/{}.yml", name_stem(&d.name)))
        .chain(
            c.stories
                .iter()
                .filter(|s| s.security_content)
                .map(|s| format!("stories/{}.yml", name_stem(&s.name))),
        )
        .collect()
}

/// contentctl's file stem for a content name: lower case, ` - . /` to `_`.
pub fn name_stem(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ' ' | '-' | '.' | '/' => '_',
            c => c,
        })
        .collect::<String>()
        .to_lowercase()
}

fn render_detection(
    rule: &Rule,
    index: usize,
    det: &Detection,
    form: &Form,
    nth: usize,
    common: &[Loss],
    out: &mut Rendered,
) -> Result<(), BackendError> {
    let stem = det.stem.as_str();
    let spec = &form.spec;
    let cat = sources::catalog(&det.source)
        .ok_or_else(|| BackendError(format!("{stem}: unknown source `{}`", det.source)))?;

    // The first form of the first detection carries the rule's title (and
    // id); every other one names its form.
    let name = if index == 0 && nth == 0 {
        rule.meta.title.clone()
    } else {
        format!("{} - {}", rule.meta.title, spec.title)
    };
    let spl_stem = if nth == 0 {
        stem.to_string()
    } else {
        format!("{stem}__{}", form.name)
    };
    if name.chars().count() > MAX_NAME {
        return Err(BackendError(format!(
            "{stem}: the Splunk detection name `{name}` has {} characters; contentctl allows at most {MAX_NAME}: shorten the title",
            name.chars().count()
        )));
    }
    let file_stem = name_stem(&name);
    if file_stem.is_empty()
        || !file_stem
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(BackendError(format!(
            "{stem}: the Splunk detection name `{name}` gives the file and filter macro name `{file_stem}`, \
             which contentctl cannot use: keep titles to ASCII letters, digits, spaces, `-`, `.` and `/`"
        )));
    }
    let filter = format!("{file_stem}_filter");

    let mut losses = common.to_vec();
    let fields = Fields {
        cat,
        rename: &spec.rename,
    };
    let q = build_query(det, spec, &fields, &filter, &mut losses)?;
    if q.dropped {
        let changes = crate::eval::verdict_changes(
            rule,
            det,
            &form.platforms,
            &det.inlined(&det.condition),
            &det.inlined(&q.kept),
        );
        if !changes.is_empty() {
            losses.push(Loss::unsupported(
                stem,
                "match (test verdicts)",
                format!(
                    "without the conditions left out, the search gives another verdict on the tests {}",
                    changes.join(", ")
                ),
            ));
        }
    }
    let alert = alert_settings(rule, det, &q, &mut losses);
    metadata_losses(rule, det, &mut losses);

    let meta = &rule.meta;
    let mut description = meta.description.trim().to_string();
    if let Some(rb) = meta
        .runbook
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        description.push_str("\n\nRunbook:\n");
        description.push_str(rb);
    }
    let fps = meta
        .false_positives
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let known_false_positives = match fps.chars().count() {
        0 => "None documented.".to_string(),
        1..=3 => format!("{fps} (as written in the rule)"),
        _ => fps,
    };
    let (references, others): (Vec<&String>, Vec<&String>) = meta
        .references
        .iter()
        .partition(|r| r.starts_with("https://") || r.starts_with("http://"));
    for r in others {
        losses.push(Loss::not_applicable(
            stem,
            format!("reference {r:?}"),
            "contentctl `references` holds http(s) URLs only",
        ));
    }
    let status = match meta.status {
        Status::Experimental | Status::Test => "experimental",
        Status::Stable | Status::Deprecated => {
            losses.push(Loss::not_applicable(
                stem,
                format!("status {}", meta.status.as_str()),
                "emitted as `experimental`: contentctl `production` needs attack-data tests and drilldowns, `deprecated` a deprecation mapping",
            ));
            "experimental"
        }
    };
    // contentctl rejects a technique listed with one of its own sub-techniques.
    let techniques: Vec<&String> = meta
        .techniques
        .iter()
        .filter(|t| {
            let parent_of_listed = meta
                .techniques
                .iter()
                .any(|u| u.len() > t.len() && u.starts_with(t.as_str()) && u[t.len()..].starts_with('.'));
            if parent_of_listed {
                losses.push(Loss::not_applicable(
                    stem,
                    format!("ATT&CK technique {t}"),
                    "contentctl does not accept a technique next to its own sub-technique; the sub-technique is kept",
                ));
            }
            !parent_of_listed
        })
        .collect();
    let id = if index == 0 && nth == 0 {
        meta.id.clone()
    } else {
        derived_uuid(&meta.id, &spl_stem)
    };
    let how_to_implement = format!(
        "{} Edit the `{filter}` macro to filter out false positives.",
        spec.how_to_implement
    );

    let notes: Vec<String> = losses.iter().map(|l| note_text(l, "")).collect();
    let ctx = tera::Context::from_serialize(json!({
        "rule": rule.name,
        "source": det.source,
        "notes": notes,
        "name": name,
        "id": id,
        "version": meta.version,
        "date": meta.modified.as_deref().unwrap_or(&meta.date),
        "author": meta.author,
        "status": status,
        "description": description,
        "data_sources": spec.data_sources,
        "search": q.stages.join(" | "),
        "how_to_implement": how_to_implement,
        "known_false_positives": known_false_positives,
        "references": references,
        "schedule": alert.schedule,
        "notable": alert.notable,
        "rba": alert.rba,
        "story": spec.story,
        "asset_type": spec.asset_type,
        "techniques": techniques,
        "security_domain": spec.security_domain,
        "throttling": alert.throttling,
    }))?;
    out.served(
        det,
        &form.platforms,
        &form.label,
        &format!("detections/{file_stem}.yml"),
        &q.kept,
    );
    out.files.push(Artifact {
        path: format!("detections/{file_stem}.yml"),
        contents: render_template("splunk/detection.yml", &ctx)?,
    });

    let ctx = tera::Context::from_serialize(json!({
        "rule": rule.name,
        "name": filter,
        "definition": "search *",
        "description": "Update this macro to limit the output results to filter out false positives.",
    }))?;
    out.files.push(Artifact {
        path: format!("macros/{filter}.yml"),
        contents: render_template("splunk/macro.yml", &ctx)?,
    });

    let spl_notes: Vec<String> = losses.iter().map(|l| note_text(l, "`")).collect();
    let ctx = tera::Context::from_serialize(json!({
        "notes": spl_notes,
        "query": q.stages.join("\n| "),
    }))?;
    out.files.push(Artifact {
        path: format!("{spl_stem}.spl"),
        contents: render_template("splunk/query.spl", &ctx)?,
    });
    out.losses.extend(losses);
    Ok(())
}

/// A loss as one line of comment text: no line breaks or other control
/// characters, and `drop` written as `'` (backticks would end an SPL comment).
fn note_text(l: &Loss, drop: &str) -> String {
    l.note()
        .chars()
        .map(|c| {
            // Also the characters YAML 1.1 reads as line breaks.
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') {
                ' '
            } else if drop.contains(c) {
                '\''
            } else {
                c
            }
        })
        .collect()
}

/// A stable UUID for a rule's second and later detections (contentctl ids
/// are unique): version 8, from the rule id and the detection stem.
fn derived_uuid(rule_id: &str, stem: &str) -> String {
    fn fnv(seed: u64, data: &[u8]) -> u64 {
        data.iter().fold(seed, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        })
    }
    let key = format!("{rule_id}\0{stem}");
    let a = fnv(0xcbf2_9ce4_8422_2325, key.as_bytes());
    let b = fnv(a ^ 0x9e37_79b9_7f4a_7c15, key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

// ------------------------------------------------------------------ fields

/// The Splunk name of a catalog field: JSON arrays carry `{}`
/// (`sourceIPs{}`, `requestObject.spec.containers{}.image`).
pub fn spl_field_name(cat: &Catalog, field: &Field) -> Result<String, String> {
    if field.has_any_depth() {
        return Err("Splunk flattens JSON into one field per full path; `**` (a key at any depth) has no exact search or eval form".into());
    }
    let res = cat.resolve(field)?;
    let mut name = String::new();
    for (i, key) in field.keys().enumerate() {
        let key = key.unwrap_or_default();
        if i > 0 {
            name.push('.');
        }
        name.push_str(key);
        if res.arrays.get(i).copied().unwrap_or(false) {
            name.push_str("{}");
        }
    }
    Ok(name)
}

/// How a form's search names canonical fields: the catalog's Splunk name,
/// then the form's `rename` (a prefix at a dot).
pub struct Fields<'a> {
    pub cat: &'a Catalog,
    pub rename: &'a BTreeMap<String, String>,
}

impl Fields<'_> {
    pub fn name(&self, field: &Field) -> Result<String, String> {
        Ok(self.stored(&spl_field_name(self.cat, field)?))
    }

    /// The stored name of a canonical Splunk name (the longest renamed prefix wins).
    pub fn stored(&self, canonical: &str) -> String {
        self.rename
            .iter()
            .filter(|(from, _)| {
                canonical
                    .strip_prefix(from.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            })
            .max_by_key(|(from, _)| from.len())
            .map(|(from, to)| format!("{to}{}", &canonical[from.len()..]))
            .unwrap_or_else(|| canonical.to_string())
    }
}

/// Characters a field name may hold bare in a search, `stats`, `by` or `rename`.
fn is_plain_spl_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '{' | '}'))
        && !matches!(
            name,
            "AND" | "OR" | "NOT" | "IN" | "XOR" | "as" | "AS" | "by" | "BY"
        )
}

/// A field name as written in the search command and in `stats`/`rename`:
/// bare when plain, else double-quoted.
pub fn search_field(name: &str) -> Result<String, String> {
    if name.chars().any(|c| c == '`' || c.is_control()) {
        return Err(format!(
            "the field name {name:?} holds a backtick or control character, which SPL cannot quote"
        ));
    }
    Ok(if is_plain_spl_name(name) {
        name.to_string()
    } else {
        spl_str(name)
    })
}

/// A field reference in `where`/`eval`: always single-quoted.
pub fn where_field(name: &str) -> Result<String, String> {
    if name
        .chars()
        .any(|c| matches!(c, '\'' | '\\' | '`') || c.is_control())
    {
        return Err(format!(
            "the field name {name:?} holds a quote, backslash, backtick or control character, which eval field references cannot hold"
        ));
    }
    Ok(format!("'{name}'"))
}

fn is_scalar(ty: FieldType) -> bool {
    matches!(
        ty,
        FieldType::String
            | FieldType::Number
            | FieldType::Bool
            | FieldType::Ip
            | FieldType::Timestamp
    )
}

fn exists_check(c: &Cmp) -> Result<(), String> {
    let res = &c.info;
    if res.free_form || !is_scalar(res.ty) {
        return Err(format!(
            "`{}` may hold an object, and Splunk keeps only the leaf fields of JSON objects, so its presence cannot be tested",
            c.field
        ));
    }
    Ok(())
}

// ------------------------------------------------------------ search terms

/// The search command: `f="v"`, wildcards, `IN`, `NOT`, upper-case operators,
/// every nested group in parentheses (it evaluates OR before AND).
pub struct SearchTerms<'a> {
    pub fields: &'a Fields<'a>,
}

/// A literal value for a search term: `*` is always a wildcard (a backslash
/// cannot escape it), and backticks would be read as a macro call.
fn search_literal(s: &str) -> Result<(), String> {
    if s.contains('*') {
        return Err("a literal `*` (always a wildcard in search terms)".into());
    }
    if s.contains('`') {
        return Err("a backtick (read as a macro call in search terms)".into());
    }
    if s.chars().any(char::is_control) {
        return Err("a line break or control character".into());
    }
    Ok(())
}

/// A `like` glob as a search wildcard pattern, when it only uses `*`.
fn glob_to_search(glob: &Glob) -> Result<String, String> {
    let mut out = String::new();
    for t in glob.tokens() {
        match t {
            GlobTok::Any => out.push('*'),
            GlobTok::One => return Err("a `?` wildcard (search terms only know `*`)".into()),
            GlobTok::Lit('*') => {
                return Err("an escaped `*` (always a wildcard in search terms)".into())
            }
            GlobTok::Lit(c) => out.push(*c),
        }
    }
    if out.contains('\\') {
        return Err("a backslash next to wildcards".into());
    }
    if out.contains('`') || out.chars().any(char::is_control) {
        return Err("a backtick or control character".into());
    }
    Ok(out)
}

impl SearchTerms<'_> {
    fn term(
        &self,
        c: &Cmp,
        f: &str,
        ty: FieldType,
        multi: bool,
        v: &Value,
    ) -> Result<String, String> {
        let needs_where = |why: String| Err(format!("{why}: goes to the `| where` post-filter"));
        let no_form = || {
            Err(format!(
                "`{}` with this value has no Splunk form",
                c.op.keyword()
            ))
        };
        let numeric = |n: &serde_json::Number| {
            if ty != FieldType::Number {
                return needs_where("a numeric comparison on a field that is not a number".into());
            }
            if c.op == Op::Ne {
                // `x!=403` also holds for a value that is no number; the
                // language's `!=` needs one (`where` tests tonumber()).
                return needs_where("`!=` with a number".into());
            }
            let op = match c.op {
                Op::Eq => "=",
                Op::Ne => "!=",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Gt => ">",
                _ => ">=",
            };
            Ok(format!("{f}{op}{n}"))
        };
        // Exhaustive over operators: a new one has no search form until it
        // is given one here (or sent to the `where` post-filter).
        match c.op {
            Op::Exists => no_form(),
            Op::Eq | Op::Ne => match v {
                Value::Str(s) if c.op == Op::Eq => match search_literal(s) {
                    Ok(()) => Ok(format!("{f}={}", spl_str(s))),
                    Err(why) => needs_where(why),
                },
                Value::Str(s) => {
                    if multi {
                        return needs_where("`!=` on an array field".into());
                    }
                    match search_literal(s) {
                        Ok(()) => Ok(format!("{f}!={}", spl_str(s))),
                        Err(why) => needs_where(why),
                    }
                }
                // A boolean is exactly `true` or `false` (JSON's spelling), and
                // search terms ignore case: `where` tests the exact text.
                Value::Bool(_) => needs_where("a boolean (exactly `true`/`false`)".into()),
                Value::Num(n) => numeric(n),
                Value::Regex(_) | Value::Glob(_) | Value::Net(_) => no_form(),
            },
            Op::StartsWith | Op::EndsWith | Op::Contains => {
                let Value::Str(s) = v else {
                    return no_form();
                };
                if let Err(why) = search_literal(s) {
                    return needs_where(why);
                }
                if s.contains('\\') {
                    return needs_where("a backslash next to wildcards".into());
                }
                let pat = match c.op {
                    Op::StartsWith => format!("{s}*"),
                    Op::EndsWith => format!("*{s}"),
                    _ => format!("*{s}*"),
                };
                Ok(format!("{f}={}", spl_str(&pat)))
            }
            Op::Like => match v {
                Value::Glob(g) => match glob_to_search(g) {
                    Ok(pat) => Ok(format!("{f}={}", spl_str(&pat))),
                    Err(why) => needs_where(why),
                },
                _ => no_form(),
            },
            Op::Lt | Op::Le | Op::Gt | Op::Ge => match v {
                Value::Num(n) => numeric(n),
                _ => no_form(),
            },
            Op::Matches => needs_where("a regex".into()),
            Op::Cidr => needs_where("a CIDR test".into()),
        }
    }
}

/// SPL's boolean tokens, the same in search terms and in `where`: upper-case
/// operators, and every nested group parenthesised (the search command
/// evaluates OR before AND, `where` the reverse).
macro_rules! spl_boolean_tokens {
    () => {
        fn and_op(&self) -> &str {
            " AND "
        }
        fn or_op(&self) -> &str {
            " OR "
        }
        fn not_prefix(&self) -> &str {
            "NOT "
        }
        fn always_parenthesise(&self) -> bool {
            true
        }
    };
}

impl Dialect for SearchTerms<'_> {
    spl_boolean_tokens!();
    fn cmp(&self, c: &Cmp) -> Result<String, String> {
        let name = self.fields.name(&c.field)?;
        let f = search_field(&name)?;
        if c.op == Op::Exists {
            exists_check(c)?;
            return Ok(format!("{f}=*"));
        }
        if c.cased {
            return Err("a case-sensitive comparison (search terms ignore case): goes to the `| where` post-filter".into());
        }
        if c.values
            .iter()
            .any(|v| crate::fold::has_cased_non_ascii(&v.text()))
        {
            return Err("letters beyond ASCII that have case (Splunk folds them by its own tables): goes to the `| where` post-filter".into());
        }
        let res = &c.info;
        let multi = res.is_array();
        let terms = c
            .values
            .iter()
            .map(|v| self.term(c, &f, res.ty, multi, v))
            .collect::<Result<Vec<_>, _>>()?;
        if terms.len() == 1 {
            return Ok(terms.into_iter().next().unwrap_or_default());
        }
        if c.op == Op::Eq && !c.all && c.values.iter().all(|v| matches!(v, Value::Str(_))) {
            let list: Vec<String> = c.values.iter().map(|v| spl_str(&v.text())).collect();
            return Ok(format!("{f} IN ({})", list.join(", ")));
        }
        let op = if c.all { " AND " } else { " OR " };
        Ok(format!("({})", terms.join(op)))
    }
}

// ---------------------------------------------------------------- where

/// The `| where` post-filter, in eval syntax: field names in single quotes,
/// strings matched with `match()` on an escaped, anchored PCRE (case-insensitive
/// through `(?i)` unless `cased`), arrays through `mvfilter()`. Every
/// comparison is total (true or false, never null), so `NOT` keeps events
/// without the field, as the language's `not` does.
pub struct WhereExpr<'a> {
    pub fields: &'a Fields<'a>,
}

/// Literal text inside a PCRE: letters, digits and a few safe characters as
/// they are, other ASCII as `\xHH` (so no quote, backslash, backtick, `$` or
/// line break reaches the SPL string), other characters as they are (UTF-8
/// bytes match themselves whether or not PCRE runs in UTF mode).
pub fn pcre_literal(s: &str, out: &mut String) {
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | '-' | '/' | ':' | '@' | ',' | '=') {
            out.push(c);
        } else if c.is_ascii() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') {
            // C1 controls and the separators YAML reads as breaks never
            // appear raw in the .spl or the detection YAML.
            out.push_str(&format!("\\x{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
}

/// [`pcre_literal`], with each letter beyond ASCII that has case written as
/// the alternation of its partners (`(?:Ä|ä)`) unless `cased`: `(?i)` then
/// folds ASCII only as detc does (`crate::fold`), and an alternation means
/// the same whether or not PCRE runs in UTF mode (a class would not).
fn pcre_folded(s: &str, cased: bool, out: &mut String) {
    for c in s.chars() {
        if cased || !crate::fold::cased_non_ascii(c) {
            pcre_literal(&c.to_string(), out);
            continue;
        }
        out.push_str("(?:");
        for (i, m) in crate::fold::class(c).into_iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            pcre_literal(&m.to_string(), out);
        }
        out.push(')');
    }
}

/// A `like` glob as an anchored PCRE: `*` any run, `?` one character,
/// `\` escapes the next character.
fn glob_pcre(glob: &Glob, cased: bool) -> String {
    let mut out = String::from("^");
    for t in glob.tokens() {
        match t {
            GlobTok::Any => out.push_str(".*"),
            GlobTok::One => out.push('.'),
            GlobTok::Lit(c) => pcre_folded(&c.to_string(), cased, &mut out),
        }
    }
    out.push_str("\\z");
    out
}

/// A rule regex (the portable subset) for PCRE: backticks and ASCII control
/// characters written as hex escapes, everything else as written.
fn pcre_user(re: &str) -> String {
    let hex = |c: char| format!("\\x{:02x}", c as u32);
    let mut out = String::new();
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) if n == '`' || n.is_ascii_control() => out.push_str(&hex(n)),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push_str("\\\\"),
            },
            c if c == '`' || c.is_ascii_control() => out.push_str(&hex(c)),
            c => out.push(c),
        }
    }
    out
}

impl WhereExpr<'_> {
    /// A predicate on one value of the field `r`; total for non-null values.
    fn pred(&self, c: &Cmp, r: &str, v: &Value) -> Result<String, String> {
        let flags = if c.cased { "" } else { "(?i)" };
        let re = |body: String| format!("match({r}, {})", spl_str(&format!("{flags}{body}")));
        let lit = |s: &str| {
            let mut o = String::new();
            pcre_folded(s, c.cased, &mut o);
            o
        };
        let num = |op: &str, n: &serde_json::Number| {
            format!("(isnotnull(tonumber({r})) AND tonumber({r}){op}{n})")
        };
        let no_form = || {
            Err(format!(
                "`{}` with this value has no Splunk form",
                c.op.keyword()
            ))
        };
        // Exhaustive over operators, like the search terms.
        Ok(match c.op {
            Op::Exists => return no_form(),
            Op::Eq | Op::Ne => match v {
                Value::Str(s) if c.op == Op::Eq => re(format!("^{}\\z", lit(s))),
                Value::Str(s) => format!("NOT {}", re(format!("^{}\\z", lit(s)))),
                Value::Bool(b) => {
                    // `!= true` holds for a false value only; the text is exact.
                    let want = if c.op == Op::Eq { *b } else { !*b };
                    format!("match({r}, \"^{want}\\\\z\")")
                }
                Value::Num(n) if c.op == Op::Eq => num("==", n),
                Value::Num(n) => num("!=", n),
                Value::Regex(_) | Value::Glob(_) | Value::Net(_) => return no_form(),
            },
            Op::StartsWith | Op::EndsWith | Op::Contains => {
                let Value::Str(s) = v else {
                    return no_form();
                };
                match c.op {
                    Op::StartsWith => re(format!("^{}", lit(s))),
                    Op::EndsWith => re(format!("{}\\z", lit(s))),
                    _ => re(lit(s)),
                }
            }
            Op::Like => {
                let Value::Glob(g) = v else {
                    return no_form();
                };
                let flags = if c.cased { "(?s)" } else { "(?is)" };
                format!(
                    "match({r}, {})",
                    spl_str(&format!("{flags}{}", glob_pcre(g, c.cased)))
                )
            }
            Op::Matches => {
                let Value::Regex(x) = v else {
                    return no_form();
                };
                if !c.cased && crate::fold::regex_has_cased_non_ascii(x) {
                    return Err("a case-insensitive regex with letters beyond ASCII that have case: Splunk's PCRE folds them by its own tables (or not at all outside UTF mode), and a class of them would match bytes".into());
                }
                re(pcre_user(x))
            }
            Op::Cidr => {
                let Some(net) = v.as_str().filter(|_| matches!(v, Value::Net(_))) else {
                    return no_form();
                };
                if net.chars().any(|ch| ch == '`' || ch.is_control()) {
                    return Err("a network with a backtick or control character".into());
                }
                format!("cidrmatch({}, {r})", spl_str(net))
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let Value::Num(n) = v else {
                    return no_form();
                };
                let op = match c.op {
                    Op::Lt => "<",
                    Op::Le => "<=",
                    Op::Gt => ">",
                    _ => ">=",
                };
                num(op, n)
            }
        })
    }
}

impl Dialect for WhereExpr<'_> {
    spl_boolean_tokens!();
    fn cmp(&self, c: &Cmp) -> Result<String, String> {
        let name = self.fields.name(&c.field)?;
        let r = where_field(&name)?;
        if c.op == Op::Exists {
            exists_check(c)?;
            return Ok(format!("isnotnull({r})"));
        }
        let res = &c.info;
        // Arrays, and free-form fields that may be arrays, test each value.
        let multi = res.free_form || res.is_array();
        let parts = c
            .values
            .iter()
            .map(|v| {
                let p = self.pred(c, &r, v)?;
                Ok(if multi {
                    format!("coalesce(mvcount(mvfilter({p})), 0)>0")
                } else {
                    format!("(isnotnull({r}) AND {p})")
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if parts.len() == 1 {
            return Ok(parts.into_iter().next().unwrap_or_default());
        }
        let op = if c.all { " AND " } else { " OR " };
        Ok(format!("({})", parts.join(op)))
    }
}

// ---------------------------------------------------------------- query

/// The search, stage by stage, and the output columns it produces.
pub struct Query {
    pub stages: Vec<String>,
    /// The conjuncts of the match the search holds (all, unless some could
    /// not be written), as the condition the search tests.
    pub kept: Expr,
    /// Whether a conjunct was left out.
    pub dropped: bool,
    /// Output field -> Splunk column after `stats` and `rename`.
    columns: Vec<(Field, String)>,
}

impl Query {
    fn column(&self, f: &Field) -> Option<&str> {
        self.columns
            .iter()
            .find(|(g, _)| g == f)
            .map(|(_, c)| c.as_str())
    }
}

/// The top-level `and` conjuncts of `e`, looking through `let` names.
fn conjuncts(det: &Detection, e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::And(xs) => xs.iter().for_each(|x| conjuncts(det, x, out)),
        Expr::Ref(n) => match det.let_expr(n) {
            Some(inner) => conjuncts(det, inner, out),
            None => out.push(e.clone()),
        },
        _ => out.push(e.clone()),
    }
}

/// Whether `e` prints at OR level (and so needs parentheses next to others).
fn is_or(det: &Detection, e: &Expr) -> bool {
    match e {
        Expr::Or(xs) => xs.len() > 1 || xs.first().is_some_and(|x| is_or(det, x)),
        Expr::And(xs) => xs.len() == 1 && is_or(det, &xs[0]),
        Expr::Ref(n) => det.let_expr(n).is_some_and(|x| is_or(det, x)),
        _ => false,
    }
}

/// Output names the alert refers to (title, risk message and objects).
fn referenced_names(det: &Detection) -> Vec<String> {
    let out = &det.output;
    let mut names: Vec<String> = Vec::new();
    if let Some(t) = &out.title {
        for p in &t.0 {
            if let TemplatePart::Field(f) = p {
                names.push(out.output_name(f));
            }
        }
    }
    if let Some(r) = &out.risk {
        for p in &r.message.0 {
            if let TemplatePart::Field(f) = p {
                names.push(f.dotted());
            }
        }
        names.extend(r.objects.iter().chain(&r.threats).map(|(n, _)| n.clone()));
    }
    names
}

pub fn build_query(
    det: &Detection,
    spec: &Spec,
    fields: &Fields,
    filter: &str,
    losses: &mut Vec<Loss>,
) -> Result<Query, BackendError> {
    let stem = det.stem.as_str();
    let mut parts = Vec::new();
    conjuncts(det, &det.condition, &mut parts);
    let mut kept: Vec<Expr> = Vec::new();
    let mut dropped = false;
    let (mut terms, mut wheres) = (Vec::new(), Vec::new());
    let search = SearchTerms { fields };
    let post = WhereExpr { fields };
    for part in &parts {
        let wrap = |s: String| {
            if is_or(det, part) {
                format!("({s})")
            } else {
                s
            }
        };
        match printer::print(&search, det, part) {
            Ok(s) => {
                terms.push(wrap(s));
                kept.push(part.clone());
            }
            Err(_) => match printer::print(&post, det, part) {
                Ok(s) => {
                    wheres.push(wrap(s));
                    kept.push(part.clone());
                }
                // The whole conjunct is replaced by "true": say which one,
                // and that the search then matches whether it holds or not.
                Err(u) => {
                    dropped = true;
                    losses.push(Loss::unsupported(
                    stem,
                    format!("match condition `{}`", det.inlined(part)),
                    format!(
                        "`{}` cannot be written ({}): the whole condition is left out of the Splunk search, which then matches whether it holds or not",
                        u.construct, u.reason
                    ),
                    ))
                }
            },
        }
    }
    if terms.is_empty() && wheres.is_empty() {
        // Left with no condition, the search would alert on every event of
        // the source: refused, whatever `lossy` says.
        return Err(BackendError(format!(
            "{stem}: no part of the match condition can be written in Splunk, so the search would match every event of the source"
        )));
    }
    let mut first = format!("`{}`", spec.source_macro.name);
    if let Some(select) = &spec.select {
        first.push(' ');
        first.push_str(select);
    }
    let mut stages = vec![first];
    // Without a decoding step the terms filter in the base search; after
    // one, they filter the decoded events.
    if !terms.is_empty() {
        if spec.decode.is_empty() {
            stages[0].push(' ');
            stages[0].push_str(&terms.join(" "));
        } else {
            stages.extend(spec.decode.iter().cloned());
            stages.push(format!("search {}", terms.join(" ")));
        }
    } else {
        stages.extend(spec.decode.iter().cloned());
    }
    if !wheres.is_empty() {
        stages.push(format!("where {}", wheres.join(" AND ")));
    }
    let mut columns: Vec<(Field, String)> = Vec::new();
    let out = &det.output;
    let referenced = referenced_names(det);
    let mut renames: Vec<(usize, String)> = Vec::new();
    let mut bad_field = |f: &Field, why: String| {
        losses.push(Loss::unsupported(
            stem,
            format!("output field `{f}`"),
            format!("{why}; left out of the Splunk results"),
        ));
    };
    // A field that keeps its own column: its Splunk name, unless the rule
    // renames it, or the alert refers to it under a name Splunk does not
    // produce (`sourceIPs{}` referred to as `sourceIPs`).
    let own_column =
        |f: &Field, renames: &mut Vec<(usize, String)>| -> Result<(String, String), String> {
            let canonical = spl_field_name(fields.cat, f)?;
            let name = fields.stored(&canonical);
            let quoted = search_field(&name)?;
            let wanted = out.output_name(f);
            let explicit = out.rename.iter().position(|(g, _)| g == f);
            // A field the form reads under another name keeps its canonical
            // column, so every form's results have the same columns.
            if explicit.is_some()
                || name != canonical
                || (wanted != name && referenced.contains(&wanted))
            {
                let to = search_field(&wanted)?;
                // Explicit renames keep the rule's order, automatic ones follow.
                renames.push((explicit.unwrap_or(usize::MAX), format!("{quoted} as {to}")));
                return Ok((quoted, wanted));
            }
            Ok((quoted, name))
        };
    // Title and summary fields, which the results must carry.
    let mut shown: Vec<&Field> = Vec::new();
    if let Some(t) = &out.title {
        shown.extend(t.0.iter().filter_map(|p| match p {
            TemplatePart::Field(f) => Some(f),
            TemplatePart::Text(_) => None,
        }));
    }
    shown.extend(&out.summary);
    shown.retain(|f| !f.has_any_depth());

    if out.group_by.is_empty() && out.values.is_empty() {
        // No aggregation asked for: one result per event, as in the other targets.
        for f in shown {
            if columns.iter().any(|(g, _)| g == f) {
                continue;
            }
            match own_column(f, &mut renames) {
                Ok((_, column)) => columns.push((f.clone(), column)),
                Err(why) => bad_field(f, why),
            }
        }
    } else {
        stages.push("fillnull".into());
        let mut stats = String::from("stats count");
        if out.time_range {
            stats.push_str(" min(_time) as firstTime max(_time) as lastTime");
        }
        let values =
            |f: &Field, as_name: String, stats: &mut String, columns: &mut Vec<(Field, String)>| {
                fields
                    .name(f)
                    .and_then(|n| Ok((search_field(&n)?, search_field(&as_name)?)))
                    .map(|(n, a)| {
                        stats.push_str(&format!(" values({n}) as {a}"));
                        columns.push((f.clone(), as_name));
                    })
            };
        for v in &out.values {
            if let Err(why) = values(
                &v.field,
                out.output_name(&v.field),
                &mut stats,
                &mut columns,
            ) {
                bad_field(&v.field, why);
            }
        }
        // Shown fields the results would not carry otherwise become values too.
        for f in shown {
            if !out.group_by.contains(f) && !columns.iter().any(|(g, _)| g == f) {
                if let Err(why) = values(f, f.dotted(), &mut stats, &mut columns) {
                    bad_field(f, why);
                }
            }
        }
        let mut by = Vec::new();
        for g in &out.group_by {
            match own_column(g, &mut renames) {
                Ok((quoted, column)) => {
                    by.push(quoted);
                    columns.push((g.clone(), column));
                }
                Err(why) => bad_field(g, why),
            }
        }
        if !by.is_empty() {
            stats.push_str(" by ");
            stats.push_str(&by.join(" "));
        }
        stages.push(stats);
    }
    renames.sort_by_key(|(order, _)| *order);
    if !renames.is_empty() {
        let list: Vec<String> = renames.into_iter().map(|(_, r)| r).collect();
        stages.push(format!("rename {}", list.join(", ")));
    }
    stages.push(format!("`{filter}`"));
    Ok(Query {
        stages,
        columns,
        kept: if dropped {
            Expr::And(kept)
        } else {
            det.condition.clone()
        },
        dropped,
    })
}

// ------------------------------------------------------------- alerting

#[derive(Default)]
struct Alert {
    schedule: serde_json::Value,
    notable: serde_json::Value,
    rba: serde_json::Value,
    throttling: serde_json::Value,
}

/// contentctl's notable severity for the highest risk score.
fn score_severity(score: u32) -> Severity {
    match score {
        0..=20 => Severity::Informational,
        21..=40 => Severity::Low,
        41..=60 => Severity::Medium,
        61..=80 => Severity::High,
        _ => Severity::Critical,
    }
}

const THREAT_TYPES: &[&str] = &[
    "certificate_common_name",
    "certificate_organization",
    "certificate_serial",
    "certificate_unit",
    "command",
    "domain",
    "email_address",
    "email_subject",
    "file_hash",
    "file_name",
    "file_path",
    "http_user_agent",
    "ip_address",
    "process",
    "process_name",
    "parent_process",
    "parent_process_name",
    "process_hash",
    "registry_path",
    "registry_value_name",
    "registry_value_text",
    "service",
    "signature",
    "system",
    "tls_hash",
    "url",
];

fn alert_settings(rule: &Rule, det: &Detection, q: &Query, losses: &mut Vec<Loss>) -> Alert {
    let stem = det.stem.as_str();
    let out = &det.output;
    let mut alert = Alert::default();

    // contentctl's TTP default deployment has the same values.
    let (cron, earliest, latest) = match &out.schedule {
        Some(s) => (s.cron.as_str(), s.earliest.as_str(), s.latest.as_str()),
        None => ("0 * * * *", "-70m@m", "-10m@m"),
    };
    alert.schedule = json!({ "cron": cron, "earliest": earliest, "latest": latest });

    // The notable event's title: `{field}` becomes `$column$`.
    let mut title_columns: Vec<String> = Vec::new();
    let mut rule_title = "%name%".to_string();
    if let Some(t) = &out.title {
        let mut s = String::new();
        let mut why = None;
        for p in &t.0 {
            match p {
                TemplatePart::Text(x) if x.contains('%') || x.contains('$') => {
                    why = Some("its text holds `%` or `$`, which contentctl and Splunk read as substitutions".to_string());
                }
                TemplatePart::Text(x) => s.push_str(x),
                TemplatePart::Field(f) => match q.column(f) {
                    Some(c) => {
                        s.push_str(&format!("${c}$"));
                        if !title_columns.iter().any(|x| x == c) {
                            title_columns.push(c.to_string());
                        }
                    }
                    None => why = Some(format!("`{f}` is not in the search results")),
                },
            }
        }
        match why {
            None => rule_title = s,
            Some(w) => losses.push(Loss::not_applicable(
                stem,
                "output.title",
                format!("{w}; the notable title is the detection name"),
            )),
        }
    }
    let key_columns: Vec<String> = if title_columns.is_empty() {
        out.group_by
            .iter()
            .filter_map(|g| q.column(g).map(str::to_string))
            .collect()
    } else {
        title_columns
    };
    alert.notable = json!({ "title": rule_title, "fields": key_columns });

    if let Some(m) = out.dedup_minutes {
        if key_columns.is_empty() {
            losses.push(Loss::not_applicable(
                stem,
                "output.dedup",
                "Splunk throttling needs fields to throttle on, and the search has no group-by or title fields",
            ));
        } else {
            alert.throttling = json!({ "fields": key_columns, "period": format!("{m}m") });
        }
    }

    let severity_from = match &out.risk {
        None => None,
        Some(risk) => {
            losses.push(Loss::not_applicable(
                stem,
                "output.risk impact/confidence",
                format!("contentctl 5 risk objects carry only the score ({}); impact {} and confidence {} have no place", risk.score, risk.impact, risk.confidence),
            ));
            let mut message = String::new();
            for p in &risk.message.0 {
                match p {
                    TemplatePart::Text(x) => {
                        if x.contains('$') {
                            losses.push(Loss::not_applicable(
                                stem,
                                "output.risk.message",
                                "`$` in the text is dropped: Splunk reads `$...$` as a field",
                            ));
                        }
                        message.push_str(&x.replace('$', ""));
                    }
                    TemplatePart::Field(f) => message.push_str(&format!("${}$", f.dotted())),
                }
            }
            let objects: Vec<serde_json::Value> = risk
                .objects
                .iter()
                .map(|(field, ty)| json!({ "field": field, "type": ty, "score": risk.score }))
                .collect();
            let mut threats = Vec::new();
            for (field, ty) in &risk.threats {
                if THREAT_TYPES.contains(&ty.as_str()) {
                    threats.push(json!({ "field": field, "type": ty }));
                } else {
                    losses.push(Loss::not_applicable(
                        stem,
                        format!("risk threat object {field} ({ty})"),
                        "contentctl has no such threat object type",
                    ));
                }
            }
            if objects.is_empty() {
                losses.push(Loss::unsupported(
                    stem,
                    "output.risk",
                    "Splunk RBA attributes risk to risk objects (user, system, other) and the rule names none, so no risk events are created",
                ));
                None
            } else if risk.score == 0 {
                losses.push(Loss::unsupported(
                    stem,
                    "output.risk",
                    "contentctl risk scores are 1..100; a score of 0 creates no risk",
                ));
                None
            } else {
                alert.rba = json!({ "message": message, "risk_objects": objects, "threat_objects": threats });
                Some(risk.score)
            }
        }
    };
    let notable_severity = severity_from.map_or(Severity::High, score_severity);
    if notable_severity != rule.meta.severity {
        losses.push(Loss::not_applicable(
            stem,
            format!("severity {}", rule.meta.severity.as_str()),
            match severity_from {
                Some(s) => format!(
                    "contentctl sets the notable severity from the risk score ({s}: {})",
                    notable_severity.as_str()
                ),
                None => "without risk objects contentctl gives notables severity high".to_string(),
            },
        ));
    }
    alert
}

fn metadata_losses(rule: &Rule, det: &Detection, losses: &mut Vec<Loss>) {
    let stem = det.stem.as_str();
    let meta = &rule.meta;
    for ind in &det.indicators {
        losses.push(Loss::unsupported(
            stem,
            format!(
                "indicator {} (severity {})",
                ind.name,
                ind.severity.as_str()
            ),
            "a contentctl detection has one fixed severity; Splunk cannot raise it per result",
        ));
    }
    if !meta.tactics.is_empty() {
        losses.push(Loss::not_applicable(
            stem,
            format!("ATT&CK tactics {}", meta.tactics.join(", ")),
            "contentctl lists techniques only (`mitre_attack_id`) and derives tactics from its ATT&CK enrichment",
        ));
    }
    if !meta.related.is_empty() {
        losses.push(Loss::not_applicable(
            stem,
            "related",
            "contentctl detections have no related-rule links",
        ));
    }
    if !meta.tags.is_empty() {
        losses.push(Loss::not_applicable(
            stem,
            format!("tags {}", meta.tags.join(", ")),
            "contentctl tags are a fixed schema with no free tags",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_stems_follow_contentctl() {
        assert_eq!(
            name_stem("Kubernetes CronJob/Job Modification"),
            "kubernetes_cronjob_job_modification"
        );
        assert_eq!(name_stem("A - B.c"), "a___b_c");
    }

    #[test]
    fn pcre_literal_escapes_everything_special() {
        let mut s = String::new();
        pcre_literal("a.b*\"`$\\\n(é", &mut s);
        assert_eq!(s, "a\\x2eb\\x2a\\x22\\x60\\x24\\x5c\\x0a\\x28é");
        // C1 controls and line separators never appear raw.
        let mut s = String::new();
        pcre_literal("a\u{85}b\u{9f}\u{2028}", &mut s);
        assert_eq!(s, "a\\x{85}b\\x{9f}\\x{2028}");
    }

    #[test]
    fn derived_uuid_is_stable_and_distinct() {
        let a = derived_uuid("6a6f1c1e-5d0b-4a8e-9c55-2f7b1d7b0c31", "x_azure");
        assert_eq!(
            a,
            derived_uuid("6a6f1c1e-5d0b-4a8e-9c55-2f7b1d7b0c31", "x_azure")
        );
        assert_ne!(
            a,
            derived_uuid("6a6f1c1e-5d0b-4a8e-9c55-2f7b1d7b0c31", "y_azure")
        );
        assert!(uuid::Uuid::try_parse(&a).is_ok());
    }
}
