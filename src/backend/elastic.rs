//! The Elastic backend: one elastic/detection-rules TOML rule and its EQL
//! query (`<stem>.toml`, `<stem>.eql`) per detection and form, plus one
//! companion rule per expressible indicator (`<base>__<indicator>.toml/.eql`).
//!
//! Forms (`src/sources/elastic.yaml`, the model of [`crate::sources::forms`]):
//! how each platform's records reach Elasticsearch. The first form of a
//! source writes `<stem>.*` (kubernetes.audit: the Kubernetes integration's
//! `audit_logs`, for raw, EKS and AKS); another writes `<stem>__<form>.*`
//! with its own `rule_id` (a UUID v5 of the detection's id and
//! `elastic:<form>`): GKE is `<stem>__gcp_audit.*` on the GCP integration's
//! `logs-gcp.audit-*`, whose documents keep the Cloud Audit LogEntry, so the
//! condition is first projected onto the LogEntry
//! ([`crate::sources::project`]) and then read through the `gcp.audit` field
//! table. Each rule's `setup` names the integration input each platform it
//! serves needs, and each pushes a [`forms::Coverage`] row per platform. A
//! platform no form serves is an `unsupported` loss with the file's reason.
//!
//! Queries target the real integrations through the field table kept as data
//! in `src/sources/elastic_fields.yaml` (canonical path -> Elasticsearch
//! field, mapping type, indexed). A comparison on a field that EQL cannot
//! search (text, flattened, nested, object, unmapped, or a `**` path) is a
//! [`Loss::unsupported`] naming the field and why.
//!
//! Semantics, operator by operator (facts from the Elasticsearch EQL docs and
//! `x-pack/plugin/eql` QueryTranslator, checked with eql 1.0.1):
//! - Case-insensitive equality: `f : "v"` becomes a case-insensitive `term`
//!   query, but `:` expands `*` and `?`; so values holding `*`, `?` or `\`
//!   use `f in~ ("v")`, which is always a verbatim `term` query.
//!   `cased` uses `==` / `in`.
//! - `startswith` / `endswith` / `contains` use `like~` (`like` when cased)
//!   with `v*`, `*v`, `*v*`: `like` is a Lucene wildcard query where `\`
//!   escapes `*`, `?` and `\`, so the value is matched literally. The EQL
//!   functions `endsWith~` / `stringContains~` are not used: Elasticsearch
//!   splices their argument into a wildcard query unescaped.
//! - The language's `like` glob (`*`, `?`, `\` escapes) is Lucene wildcard
//!   syntax already and passes through unchanged.
//! - `matches`: Lucene regex (`regex~`, `regex` when cased) matches the whole
//!   value, so the pattern is wrapped as `.*( ).*`; it is rebuilt from the
//!   parsed portable regex with every punctuation literal escaped (Lucene
//!   reserves `# @ & < > ~ "` besides the usual ones) and `.` as `[^\n]`
//!   (Rust's `.` does not match a newline, Lucene's does).
//! - Absent fields: the language's comparisons are false on an absent field,
//!   so `not x == "a"` is true without `x`. Elasticsearch runs these queries
//!   as Query DSL (`must_not` is true on a missing field), but EQL's own null
//!   semantics (script fallbacks, and eql_eval.py) make `not null` null, i.e.
//!   false. To be exact under both, `not X` is written `(f == null or ...
//!   or not X')`, where `f ...` are the fields X cannot hold without (X is
//!   false when one is absent), and X' makes its other comparisons two-valued
//!   with a presence guard: `(g != null and g : "a")`. So `not x == "a"` is
//!   `(x == null or not x : "a")`.
//! - `x != v` requires presence in the language, while Elasticsearch's `!=`
//!   is a `must_not` that also holds without `x`: rendered
//!   `(x != null and not x : "v")`. On array fields the language's `!=` holds
//!   when some element differs, Elasticsearch's when no element equals: such
//!   a `!=` is reported unsupported.
//! - A field the integration maps only at some paths (`requestObject.**.x`)
//!   is unsupported: the data stream has `dynamic: false`, so a Job's or
//!   CronJob's template is not searchable at all.
//! - Narrowing ([`Narrowed`]): outside `not`, an `or` branch the query cannot
//!   test is dropped, and so is a `$podSpec` branch of a kind the match
//!   excludes (the Pod branch under `objectRef.resource in ["cronjobs",
//!   "jobs"]`). The rule then matches less than the language: each drop is an
//!   `unsupported` loss (`match (narrowed)`, `indicator x (narrowed)`) that
//!   names the dropped comparisons and the rule's tests whose verdict changes.
//!   With nothing left, the rule or companion is not written.
//! - `exists` is `x != null` (an `exists` query); `not x exists` is `x == null`.
//! - `cidr` is `cidrMatch(f, "net", ...)` on an `ip` field (or the ip copy the
//!   ingest pipeline makes, e.g. `source.ip` for `sourceIPs`).
//! - Numbers only on numeric fields; booleans on boolean fields (or as the
//!   text `"true"`/`"false"` on keyword fields).

use super::attack::{self, Threat};
use super::printer::{self, Dialect, Unprintable};
use super::schedule::{self, Window};
use super::{Artifact, Backend, BackendError, Loss, Rendered, Target};
use crate::ir::{Cmp, Detection, Expr, Field, GlobTok, Op, Rule, Seg, Severity, Status, Value};
use crate::sources::forms;
use crate::sources::project::{self, Projection};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::OnceLock;

pub const TEMPLATES: &[(&str, &str)] = &[(
    "elastic/rule.toml",
    include_str!("../../templates/elastic/rule.toml.tera"),
)];

pub struct Elastic;

// ------------------------------------------------------------------ field table

/// One source's entry in `elastic_fields.yaml`.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceTable {
    pub dataset: String,
    pub index: String,
    pub integration: String,
    pub prefix: String,
    /// The ingest pipeline drops empty strings (the GCP integration's last script).
    #[serde(default)]
    pub drops_empty: bool,
    /// Canonical path (segments with dots are double-quoted) -> field, in file order.
    #[serde(deserialize_with = "ordered")]
    pub fields: Vec<(String, FieldEntry)>,
    /// ECS fields the ingest pipeline derives, in file order.
    #[serde(default, deserialize_with = "ordered")]
    pub ecs_fields: Vec<(String, EcsEntry)>,
    /// The segments of each key of `fields`, in the same order (split once).
    #[serde(skip)]
    pub segs: Vec<Vec<String>>,
    /// Segments -> the index of the first field with them.
    #[serde(skip)]
    by_segs: HashMap<Vec<String>, usize>,
}

impl SourceTable {
    /// Split every key once and index the fields by their segments.
    fn indexed(mut self) -> Self {
        self.segs = self.fields.iter().map(|(k, _)| key_segments(k)).collect();
        for (i, segs) in self.segs.iter().enumerate() {
            self.by_segs.entry(segs.clone()).or_insert(i);
        }
        self
    }
}

/// A YAML map as (key, value) pairs in file order.
fn ordered<'de, D, T>(d: D) -> Result<Vec<(String, T)>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let map = serde_yaml::Mapping::deserialize(d)?;
    map.into_iter()
        .map(|(k, v)| {
            let k = k
                .as_str()
                .ok_or_else(|| serde::de::Error::custom("field table keys are strings"))?
                .to_string();
            serde_yaml::from_value(v)
                .map(|v| (k, v))
                .map_err(serde::de::Error::custom)
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
pub struct FieldEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub indexed: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EcsEntry {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(rename = "type")]
    pub ty: String,
}

/// Every source's Elastic field table, keyed by detc source name.
pub fn field_tables() -> &'static BTreeMap<String, SourceTable> {
    static TABLES: OnceLock<BTreeMap<String, SourceTable>> = OnceLock::new();
    TABLES.get_or_init(|| {
        let tables: BTreeMap<String, SourceTable> =
            serde_yaml::from_str(include_str!("../sources/elastic_fields.yaml"))
                .expect("built-in Elastic field table is valid YAML");
        tables
            .into_iter()
            .map(|(source, t)| (source, t.indexed()))
            .collect()
    })
}

pub fn field_table(source: &str) -> Option<&'static SourceTable> {
    field_tables().get(source)
}

/// Values the ingest pipeline scales: (source, canonical path, factor).
/// Azure `durationMs` is stored as `event.duration` in nanoseconds.
pub const SCALES: &[(&str, &str, i64)] = &[("azure.activity", "durationMs", 1_000_000)];

/// An Elastic form's own facts (the shared model of [`crate::sources::forms`],
/// kept in `src/sources/elastic.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The field table in `elastic_fields.yaml` (index, dataset, integration, fields).
    pub table: String,
    /// The platform whose projection (`src/sources/projections.yaml`) turns
    /// the canonical condition into one over its own record first.
    #[serde(default)]
    pub projection: Option<String>,
    /// What the rule's name adds for a form after the first.
    #[serde(default)]
    pub title: Option<String>,
    /// Elastic tags (`Data Source: Kubernetes`).
    pub tags: Vec<String>,
    /// Platform -> the integration input it needs (the rule's `setup`).
    pub inputs: BTreeMap<String, String>,
}

pub type Form = forms::Form<Spec>;

/// Every source's Elastic forms, keyed by detc source name.
pub fn elastic_forms() -> &'static forms::TargetForms<Spec> {
    static FORMS: OnceLock<forms::TargetForms<Spec>> = OnceLock::new();
    FORMS.get_or_init(|| forms::load("elastic.yaml", include_str!("../sources/elastic.yaml")))
}

/// `a."b.c".d` -> `["a", "b.c", "d"]`.
fn key_segments(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in key.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn field_of(key: &str) -> Field {
    Field(key_segments(key).into_iter().map(Seg::Key).collect())
}

/// Elasticsearch mapping types EQL can search, by how values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Keyword,
    Integer,
    Float,
    Boolean,
    Ip,
    Date,
}

fn kind(ty: &str) -> Option<Kind> {
    Some(match ty {
        "keyword" | "constant_keyword" | "wildcard" => Kind::Keyword,
        "integer" | "long" | "short" | "byte" | "unsigned_long" => Kind::Integer,
        "float" | "double" | "half_float" | "scaled_float" => Kind::Float,
        "boolean" => Kind::Boolean,
        "ip" => Kind::Ip,
        "date" | "date_nanos" => Kind::Date,
        _ => return None,
    })
}

/// A field as the query names it.
#[derive(Debug, Clone)]
pub(crate) struct EsField {
    /// The Elasticsearch field name.
    pub name: String,
    pub kind: Kind,
    /// Whether the canonical field (or a parent) is an array.
    pub array: bool,
    pub scale: Option<i64>,
}

pub(crate) struct Ctx {
    pub source: String,
    pub table: &'static SourceTable,
    /// The query language, as prose in the reasons (`EQL`, `ES|QL`).
    pub lang: &'static str,
    /// The projection the form's queries read canonical fields through.
    pub projection: Option<&'static Projection>,
}

impl Ctx {
    fn entry(&self, segs: &[String]) -> Option<(&'static String, &'static FieldEntry)> {
        let (k, e) = &self.table.fields[*self.table.by_segs.get(segs)?];
        Some((k, e))
    }

    /// The flattened field `segs` lies strictly below, if any.
    fn flattened_parent(&self, segs: &[String]) -> Option<&'static FieldEntry> {
        (1..segs.len()).find_map(|n| {
            self.entry(&segs[..n])
                .map(|(_, e)| e)
                .filter(|e| e.ty == "flattened")
        })
    }

    fn array(&self, field: &Field) -> bool {
        crate::sources::catalog(&self.source)
            .and_then(|c| c.resolve(field).ok())
            .is_some_and(|r| r.arrays.iter().any(|a| *a))
    }

    fn scale(&self, field: &Field) -> Option<i64> {
        let dotted = field.dotted();
        SCALES
            .iter()
            .find(|(s, p, _)| *s == self.source && *p == dotted)
            .map(|(_, _, f)| *f)
    }

    /// Why `entry` cannot be searched with EQL, if it cannot.
    fn unsearchable(&self, field: &Field, e: &FieldEntry, segs: &[String]) -> Option<String> {
        let what = format!("`{field}` (Elasticsearch field `{}`, {})", e.name, e.ty);
        if let Some(p) = self.flattened_parent(segs) {
            return Some(format!(
                "`{field}` is a key of the flattened field `{}`: Elasticsearch {} rejects flattened fields and their keys (\"unsupported type [flattened]\", elastic/elasticsearch#101985)",
                p.name, self.lang
            ));
        }
        let lang = self.lang;
        let why = match e.ty.as_str() {
            _ if !e.indexed && e.ty != "object" => {
                "is not mapped by the integration (the data stream has `dynamic: false`), so no query can match it".to_string()
            }
            "text" if lang == "EQL" => "is a text field, and Elasticsearch EQL does not search text fields".to_string(),
            "text" => format!("is a text field: it compares by its analysed tokens, and detc compares keyword fields only in {lang}"),
            "flattened" => format!("is a flattened field, which Elasticsearch {lang} rejects (elastic/elasticsearch#101985)"),
            "nested" => format!("is a nested field, which Elasticsearch {lang} cannot search"),
            "object" => "is an object: only its mapped leaves can be searched".to_string(),
            ty if kind(ty).is_none() => format!("has a mapping type {lang} cannot search"),
            _ => return None,
        };
        Some(format!("{what} {why}"))
    }

    /// The searchable Elasticsearch field of a canonical field.
    pub fn resolve(&self, field: &Field) -> Result<EsField, String> {
        if field.has_any_depth() {
            return Err(self.any_depth(field));
        }
        let segs: Vec<String> = field
            .keys()
            .map(|k| k.unwrap_or_default().to_string())
            .collect();
        let Some((_, e)) = self.entry(&segs) else {
            if let Some(p) = self.flattened_parent(&segs) {
                return Err(format!(
                    "`{field}` is a key of the flattened field `{}`: Elasticsearch {} rejects flattened fields and their keys (elastic/elasticsearch#101985)",
                    p.name, self.lang
                ));
            }
            return Err(format!(
                "`{field}` is not in the Elastic field table of {} (src/sources/elastic_fields.yaml): the {} integration does not map it, so no query can match it",
                self.source, self.table.integration
            ));
        };
        if let Some(why) = self.unsearchable(field, e, &segs) {
            return Err(why);
        }
        Ok(EsField {
            name: e.name.clone(),
            kind: kind(&e.ty).unwrap_or(Kind::Keyword),
            array: self.array(field),
            scale: self.scale(field),
        })
    }

    /// A field a query can return (ES|QL `STATS`, `KEEP`): any leaf the
    /// integration maps, text included, which EQL could not search.
    pub fn output_field(&self, field: &Field) -> Result<String, String> {
        if let Some(p) = self.projection {
            let stored = p.output_path(field)?;
            let plain = Ctx {
                source: self.source.clone(),
                table: self.table,
                lang: self.lang,
                projection: None,
            };
            return plain.output_field(&stored);
        }
        match self.resolve(field) {
            Ok(f) => return Ok(f.name),
            Err(why) if field.has_any_depth() => return Err(why),
            Err(_) => {}
        }
        let segs: Vec<String> = field
            .keys()
            .map(|k| k.unwrap_or_default().to_string())
            .collect();
        match self.entry(&segs) {
            Some((_, e))
                if e.indexed
                    && self.flattened_parent(&segs).is_none()
                    && matches!(e.ty.as_str(), "text" | "match_only_text") =>
            {
                Ok(e.name.clone())
            }
            _ => self.resolve(field).map(|f| f.name),
        }
    }

    /// For `cidr`: the field itself when it is an `ip` field, else the ip
    /// copy the ingest pipeline derives from it (`sourceIPs` -> `source.ip`).
    pub fn resolve_ip(&self, field: &Field) -> Result<EsField, String> {
        let direct = self.resolve(field);
        if let Ok(f) = &direct {
            if f.kind == Kind::Ip {
                return direct;
            }
        }
        let segs: Vec<String> = field
            .keys()
            .map(|k| k.unwrap_or_default().to_string())
            .collect();
        let copy = self.table.ecs_fields.iter().find(|(_, e)| {
            e.ty == "ip"
                && e.from
                    .as_deref()
                    .is_some_and(|from| key_segments(from) == segs)
        });
        match (copy, direct) {
            (Some((name, _)), _) => Ok(EsField {
                name: name.clone(),
                kind: Kind::Ip,
                array: self.array(field),
                scale: None,
            }),
            (None, Err(why)) => Err(why),
            (None, Ok(f)) => Err(format!(
                "`cidr` needs an ip field, and `{field}` is `{}` with no ip copy in the mapping",
                f.name
            )),
        }
    }

    /// Why a `**` path has no EQL form, naming what the mapping does hold.
    fn any_depth(&self, field: &Field) -> String {
        let pattern: Vec<Option<&str>> = field.keys().collect();
        let mut known = Vec::new();
        for ((key, e), key_segs) in self.table.fields.iter().zip(&self.table.segs) {
            let segs: Vec<&str> = key_segs.iter().map(String::as_str).collect();
            if glob_path(&pattern, &segs) {
                let status = match self.unsearchable(field, e, key_segs) {
                    None => format!("{}, searchable", e.ty),
                    Some(_) if e.ty == "text" => format!("text: not searchable by {}", self.lang),
                    Some(_) if !e.indexed => "not mapped".to_string(),
                    Some(_) if self.flattened_parent(key_segs).is_some() => {
                        format!("flattened key: not searchable by {}", self.lang)
                    }
                    Some(_) => format!("{}: not searchable by {}", e.ty, self.lang),
                };
                known.push(format!("{key} ({status})"));
            }
        }
        let listed = if known.is_empty() {
            "no field of the mapping matches it".to_string()
        } else {
            format!("the mapping knows only {}", known.join(", "))
        };
        format!(
            "`{field}` reaches a key at any depth; an {} query names concrete fields, {listed}, and every other path below is not mapped (the data stream has `dynamic: false`), so Elastic cannot test what the language means",
            self.lang
        )
    }
}

/// Does a concrete path match a pattern with `**` (`None`, any depth, maybe none)?
fn glob_path(pattern: &[Option<&str>], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((None, rest)) => (0..=path.len()).any(|i| glob_path(rest, &path[i..])),
        Some((Some(k), rest)) => path
            .split_first()
            .is_some_and(|(p, tail)| p == k && glob_path(rest, tail)),
    }
}

// ------------------------------------------------------------------ EQL text

const EQL_KEYWORDS: &[&str] = &[
    "and",
    "any",
    "by",
    "child",
    "descendant",
    "false",
    "in",
    "join",
    "like",
    "maxspan",
    "not",
    "null",
    "of",
    "or",
    "regex",
    "runs",
    "sample",
    "sequence",
    "true",
    "until",
    "where",
    "with",
];

/// An Elasticsearch field name as an EQL field reference: segments that are
/// not plain identifiers (or are keywords) go in backquotes.
pub fn eql_field(name: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for seg in name.split('.') {
        let plain = seg
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !EQL_KEYWORDS.contains(&seg.to_ascii_lowercase().as_str());
        if plain {
            out.push(seg.to_string());
        } else if seg.is_empty() || seg.contains('`') || seg.chars().any(char::is_control) {
            return Err(format!(
                "the Elasticsearch field name `{name}` cannot be written in EQL"
            ));
        } else {
            out.push(format!("`{seg}`"));
        }
    }
    Ok(out.join("."))
}

/// A literal string for a Lucene wildcard pattern: `*`, `?` and `\` escaped.
pub fn wildcard_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A case-insensitive text test of `op` with `v`, when `v` has letters
/// beyond ASCII with case partners, as a whole-value Lucene regex for
/// `regex~`: the flag folds ASCII, the other letters are written out with
/// their partners (`crate::fold`), `.` is any character.
fn lucene_spelled(op: Op, v: &Value) -> Option<String> {
    fn lit(s: &str, out: &mut String) {
        s.chars().for_each(|c| lucene_folded_char(c, out));
    }
    let mut out = String::new();
    match (op, v) {
        (Op::Eq | Op::Ne | Op::StartsWith | Op::EndsWith | Op::Contains, Value::Str(s))
            if crate::fold::has_cased_non_ascii(s) =>
        {
            if matches!(op, Op::EndsWith | Op::Contains) {
                out.push_str(".*");
            }
            lit(s, &mut out);
            if matches!(op, Op::StartsWith | Op::Contains) {
                out.push_str(".*");
            }
        }
        (Op::Like, Value::Glob(g)) if crate::fold::has_cased_non_ascii(g.source()) => {
            for t in g.tokens() {
                match t {
                    GlobTok::Any => out.push_str(".*"),
                    GlobTok::One => out.push('.'),
                    GlobTok::Lit(c) => lucene_folded_char(*c, &mut out),
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

/// One literal character, as a class of its case partners beyond ASCII.
fn lucene_folded_char(c: char, out: &mut String) {
    if crate::fold::cased_non_ascii(c) {
        out.push('[');
        crate::fold::class(c)
            .into_iter()
            .for_each(|m| lucene_char(m, out));
        out.push(']');
    } else {
        lucene_char(c, out);
    }
}

/// A portable regex as a Lucene regex with the language's meaning: an
/// unanchored search, so wrapped in `.*( ).*`.
// Memoised: the same patterns (a projection's, a rule family's) recur in
// many rules, and parsing them was a seventh of a build.
#[cached::proc_macro::cached(size = 4096, key = "String", convert = "{ pattern.to_string() }")]
pub fn lucene_regex(pattern: &str) -> Result<String, String> {
    use regex_syntax::ast::parse::ParserBuilder;
    let ast = ParserBuilder::new()
        .nest_limit(64)
        .build()
        .parse(pattern)
        .map_err(|e| format!("regex does not parse: {e}"))?;
    if let Some(inner) = anchored(&ast) {
        // `^...$` (a projection's whole-value regex): Lucene matches the whole value already.
        let mut out = String::new();
        for x in inner {
            lucene_node(x, &mut out, false)?;
        }
        return Ok(out);
    }
    let mut out = String::from(".*(");
    lucene_ast(&ast, &mut out)?;
    out.push_str(").*");
    Ok(out)
}

/// The items of a regex anchored at both ends (`^...$`), if it is one.
fn anchored(ast: &regex_syntax::ast::Ast) -> Option<&[regex_syntax::ast::Ast]> {
    use regex_syntax::ast::{AssertionKind, Ast};
    let Ast::Concat(c) = ast else { return None };
    let is = |a: Option<&Ast>, kinds: &[AssertionKind]| matches!(a, Some(Ast::Assertion(x)) if kinds.contains(&x.kind));
    let n = c.asts.len();
    (n >= 2
        && is(
            c.asts.first(),
            &[AssertionKind::StartLine, AssertionKind::StartText],
        )
        && is(
            c.asts.last(),
            &[AssertionKind::EndLine, AssertionKind::EndText],
        ))
    .then(|| &c.asts[1..n - 1])
}

/// One literal character: every ASCII punctuation and space is escaped, which
/// in Lucene always means the character itself (and covers the reserved
/// `. ? + * | { } [ ] ( ) " \ # @ & < > ~`).
fn lucene_char(c: char, out: &mut String) {
    if c.is_ascii() && !c.is_ascii_alphanumeric() && !c.is_ascii_control() {
        out.push('\\');
    }
    out.push(c);
}

fn lucene_ast(a: &regex_syntax::ast::Ast, out: &mut String) -> Result<(), String> {
    lucene_node(a, out, false)
}

/// A portable regex as a Lucene regex over lower-cased text (ES|QL has no
/// case-insensitive RLIKE): letters are lower-cased, and a class range whose
/// ends differ in case is refused, since lower-casing would change it.
#[cached::proc_macro::cached(size = 4096, key = "String", convert = "{ pattern.to_string() }")]
pub fn lucene_regex_folded(pattern: &str) -> Result<String, String> {
    use regex_syntax::ast::parse::ParserBuilder;
    let ast = ParserBuilder::new()
        .nest_limit(64)
        .build()
        .parse(pattern)
        .map_err(|e| format!("regex does not parse: {e}"))?;
    if let Some(inner) = anchored(&ast) {
        let mut out = String::new();
        for x in inner {
            lucene_node(x, &mut out, true)?;
        }
        return Ok(out);
    }
    let mut out = String::from(".*(");
    lucene_node(&ast, &mut out, true)?;
    out.push_str(").*");
    Ok(out)
}

/// One character, lower-cased when `fold`; a character whose lower case is
/// not one character is refused.
fn fold_char(c: char, fold: bool) -> Result<char, String> {
    if !fold {
        return Ok(c);
    }
    let mut low = c.to_lowercase();
    match (low.next(), low.next()) {
        (Some(l), None) => Ok(l),
        _ => Err(format!("`{c}` has no one-character lower case")),
    }
}

fn lucene_node(a: &regex_syntax::ast::Ast, out: &mut String, fold: bool) -> Result<(), String> {
    use regex_syntax::ast::{Ast, GroupKind, RepetitionKind, RepetitionRange};
    match a {
        Ast::Empty(_) => out.push_str("()"),
        Ast::Literal(l) => lucene_char(fold_char(l.c, fold)?, out),
        // Rust's `.` stops at a newline; Lucene's `.` does not.
        Ast::Dot(_) => out.push_str("[^\n]"),
        Ast::Flags(_) | Ast::Assertion(_) | Ast::ClassUnicode(_) | Ast::ClassPerl(_) => {
            return Err("the regex uses syntax outside the portable subset".into())
        }
        Ast::ClassBracketed(c) => {
            out.push('[');
            if c.negated {
                out.push('^');
            }
            lucene_class(&c.kind, out, fold)?;
            out.push(']');
        }
        Ast::Repetition(r) => {
            if !r.greedy {
                return Err("lazy quantifiers are not portable".into());
            }
            lucene_node(&r.ast, out, fold)?;
            match &r.op.kind {
                RepetitionKind::ZeroOrOne => out.push('?'),
                RepetitionKind::ZeroOrMore => out.push('*'),
                RepetitionKind::OneOrMore => out.push('+'),
                RepetitionKind::Range(RepetitionRange::Exactly(n)) => {
                    out.push_str(&format!("{{{n}}}"))
                }
                RepetitionKind::Range(RepetitionRange::AtLeast(n)) => {
                    out.push_str(&format!("{{{n},}}"))
                }
                RepetitionKind::Range(RepetitionRange::Bounded(m, n)) => {
                    out.push_str(&format!("{{{m},{n}}}"))
                }
            }
        }
        Ast::Group(g) => match g.kind {
            GroupKind::CaptureIndex(_) => {
                out.push('(');
                lucene_node(&g.ast, out, fold)?;
                out.push(')');
            }
            _ => return Err("only plain groups are portable".into()),
        },
        Ast::Alternation(alt) => {
            for (i, x) in alt.asts.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                lucene_node(x, out, fold)?;
            }
        }
        Ast::Concat(c) => {
            for x in &c.asts {
                lucene_node(x, out, fold)?;
            }
        }
    }
    Ok(())
}

fn lucene_class(
    set: &regex_syntax::ast::ClassSet,
    out: &mut String,
    fold: bool,
) -> Result<(), String> {
    use regex_syntax::ast::{ClassSet, ClassSetItem};
    fn item(i: &ClassSetItem, out: &mut String, fold: bool) -> Result<(), String> {
        match i {
            ClassSetItem::Empty(_) => {}
            ClassSetItem::Literal(l) => lucene_char(fold_char(l.c, fold)?, out),
            ClassSetItem::Range(r) => {
                let (a, b) = (fold_char(r.start.c, fold)?, fold_char(r.end.c, fold)?);
                if fold && (a != r.start.c) != (b != r.end.c) {
                    return Err(format!(
                        "the range `{}-{}` mixes cases, and lower-cased text would change it",
                        r.start.c, r.end.c
                    ));
                }
                lucene_char(a, out);
                out.push('-');
                lucene_char(b, out);
            }
            // A nested class adds its members; Lucene has no nesting.
            ClassSetItem::Bracketed(b) if !b.negated => lucene_class(&b.kind, out, fold)?,
            ClassSetItem::Union(u) => u.items.iter().try_for_each(|x| item(x, out, fold))?,
            _ => return Err("this character class has no Lucene form".into()),
        }
        Ok(())
    }
    match set {
        ClassSet::Item(i) => item(i, out, fold),
        ClassSet::BinaryOp(_) => Err("class set operations have no Lucene form".into()),
    }
}

/// Why `c` on the Elasticsearch field `f` would not give the language's
/// verdict on every event, through what the mapping does to a stored value:
/// - an integer field (`long`, `integer`) indexes a fractional value
///   truncated toward zero (`coerce`, `403.5` as 403, `"403.9"` as 403), after
///   the pipeline's scaling (`durationMs` x 1,000,000). Only `>= c` and `< c`
///   with a scaled `c` that is a whole number >= 1, and `> c` and `<= c` with
///   one <= -1, hold on the truncated value exactly when they hold on the
///   value itself; `==`, `!=` and text comparisons never do;
/// - a boolean field indexes `true`, `false`, `"true"`, `"false"`, and the
///   empty string as false; any other value is malformed (not indexed). The
///   language's booleans are JSON booleans and the exact strings
///   `"true"`/`"false"` (not `""`), so a comparison that holds for false
///   (`== false`, `!= true`) and every text comparison but `cased == "true"`
///   would differ.
///
/// A projected form reads a record field whose domain the projection fixes
/// (the gRPC status code is an integer: `src/sources/projections.yaml`).
pub(crate) fn coercion_loss(ctx: &Ctx, f: &EsField, c: &Cmp) -> Option<String> {
    if c.op == Op::Exists {
        return None;
    }
    let what = format!(
        "`{}` (Elasticsearch field `{}`, {})",
        c.field,
        f.name,
        match f.kind {
            Kind::Boolean => "boolean",
            _ => "integer",
        }
    );
    // A field the source's schema makes an integer holds no fraction to
    // truncate (the checker refuses test events that say otherwise).
    let whole_data = crate::sources::catalog(&ctx.source).is_some_and(|cat| {
        cat.integers
            || cat
                .fields
                .iter()
                .any(|d| d.whole && d.path == c.field.dotted())
    });
    match f.kind {
        Kind::Integer if ctx.projection.is_none() => {
            let scaled = match f.scale {
                Some(k) => format!(" (after the ingest pipeline multiplies it by {k})"),
                None => String::new(),
            };
            let truncated =
                format!("{what} indexes a fractional value truncated toward zero{scaled}, so");
            for v in &c.values {
                let Value::Num(n) = v else {
                    return Some(format!(
                        "{truncated} it compares the number Elasticsearch kept, not the text the language compares"
                    ));
                };
                let x = n.as_f64().unwrap_or(f64::NAN) * f.scale.unwrap_or(1) as f64;
                if whole_data && x.is_finite() && x.fract() == 0.0 {
                    // No record holds a fraction to truncate.
                    continue;
                }
                let whole = x.is_finite() && x.fract() == 0.0;
                let exact = match c.op {
                    Op::Ge | Op::Lt => whole && x >= 1.0,
                    Op::Gt | Op::Le => whole && x <= -1.0,
                    _ => false,
                };
                if !exact {
                    let hint = match c.op {
                        Op::Eq | Op::Ne => " (for whole-number data, a range such as `>= 403 and < 404` is exact there)".to_string(),
                        Op::Gt | Op::Le if whole && x >= 0.0 => format!(
                            " (for whole-number data, `{} {}` is exact there)",
                            if c.op == Op::Gt { ">=" } else { "<" },
                            n.as_f64().unwrap_or(0.0) + 1.0 / f.scale.unwrap_or(1) as f64
                        ),
                        _ => String::new(),
                    };
                    return Some(format!(
                        "{truncated} `{} {n}` would hold on a value where the language's does not{hint}",
                        c.op.keyword()
                    ));
                }
            }
            None
        }
        Kind::Boolean => {
            for v in &c.values {
                match (c.op, v) {
                    (Op::Eq, Value::Bool(false)) | (Op::Ne, Value::Bool(true)) => {
                        return Some(format!(
                            "{what} indexes an empty string as false, which the language's `{} {}` does not count as a boolean",
                            c.op.keyword(),
                            v.text()
                        ))
                    }
                    (Op::Eq | Op::Ne, Value::Bool(_)) => {}
                    (Op::Eq, Value::Str(s)) if c.cased && s == "true" => {}
                    _ => {
                        return Some(format!(
                            "{what} indexes only true, false, \"true\", \"false\" and \"\" (as false): `{}` with {} compares text the index does not keep",
                            c.op.keyword(),
                            v.text()
                        ))
                    }
                }
            }
            None
        }
        _ => None,
    }
}

/// A number as EQL writes it, scaled when the pipeline scales the field.
pub(crate) fn eql_number(
    n: &serde_json::Number,
    scale: Option<i64>,
    integer: bool,
) -> Result<String, String> {
    let k = scale.unwrap_or(1);
    if let Some(i) = n.as_i64() {
        return i
            .checked_mul(k)
            .map(|x| x.to_string())
            .ok_or_else(|| format!("{n} is out of range"));
    }
    if let Some(u) = n.as_u64() {
        return u
            .checked_mul(k as u64)
            .map(|x| x.to_string())
            .ok_or_else(|| format!("{n} is out of range"));
    }
    let f = n
        .as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("{n} is not a finite number"))?
        * k as f64;
    if integer && f.fract() != 0.0 {
        return Err(format!(
            "{n} is not an integer, and the field holds integers"
        ));
    }
    Ok(format!("{f}"))
}

/// A value as the comparison sees it on this field.
#[derive(Debug, Clone)]
enum Lit {
    /// Compared as text; `fold` = case-insensitively.
    Str { s: String, fold: bool },
    /// A number or boolean literal as written in EQL.
    Raw(String),
}

fn eql_list(items: &[String]) -> String {
    format!("({})", items.join(", "))
}

fn join(parts: Vec<String>, op: &str) -> String {
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", parts.join(op))
    }
}

/// The EQL dialect. `guarded`: comparisons are made two-valued by
/// conjoining their field's presence (used under `not`, see the module doc).
/// `lifted`: pre-rendered `not` subtrees, referenced as [`LIFT`]`<n>`.
struct Eql<'a> {
    ctx: &'a Ctx,
    guarded: bool,
    /// Fields (as written in the query) known present where this dialect
    /// prints: their comparisons need no guard.
    present: Vec<String>,
    lifted: Vec<String>,
}

/// Reference prefix for lifted `not` subtrees (never a valid `let` name).
const LIFT: &str = "\u{0}not";

impl Eql<'_> {
    fn literal(&self, f: &EsField, field: &Field, v: &Value, cased: bool) -> Result<Lit, String> {
        let bad = |why: &str| Err(format!("`{field}` ({}) {why}", f.name));
        match (f.kind, v) {
            (Kind::Keyword, Value::Str(s)) => Ok(Lit::Str { s: s.clone(), fold: !cased }),
            // The language compares a boolean with a string leaf as exactly the
            // text "true"/"false"; a keyword field stores JSON booleans as that text.
            (Kind::Keyword, Value::Bool(b)) => Ok(Lit::Str { s: b.to_string(), fold: false }),
            (Kind::Keyword, Value::Num(_)) => bad(
                "is a keyword field: Elasticsearch compares the number as exact text, while the language compares numbers numerically (write the value as a string)",
            ),
            (Kind::Integer | Kind::Float, Value::Num(n)) => Ok(Lit::Raw(eql_number(n, f.scale, f.kind == Kind::Integer)?)),
            (Kind::Integer, Value::Str(s)) => match s.parse::<i64>() {
                Ok(i) if i.to_string() == *s => {
                    Ok(Lit::Raw(eql_number(&serde_json::Number::from(i), f.scale, true)?))
                }
                _ => bad("is numeric: only a string that is a plain integer compares the same way there"),
            },
            (Kind::Boolean, Value::Bool(b)) => Ok(Lit::Raw(b.to_string())),
            // (only `cased == "true"` reaches here: see `coercion_loss`)
            (Kind::Boolean, Value::Str(s)) if s == "true" || s == "false" => Ok(Lit::Raw(s.clone())),
            (Kind::Ip, Value::Str(s)) if s.parse::<IpAddr>().is_ok() => Ok(Lit::Str { s: s.clone(), fold: false }),
            (Kind::Ip, _) => bad("is an ip field: only IP address values compare the same way"),
            (Kind::Date, _) => bad("is a date field: Elasticsearch compares instants, the language compares text"),
            (Kind::Boolean, _) => bad("is a boolean field: only true/false compare the same way"),
            (Kind::Integer | Kind::Float, _) => bad("is numeric: this value does not compare the same way there"),
            (Kind::Keyword, Value::Regex(_) | Value::Glob(_) | Value::Net(_)) => {
                bad("cannot be compared with a pattern this way")
            }
        }
    }

    /// `name == v` in the right case mode.
    fn eq_one(name: &str, lit: &Lit) -> String {
        match lit {
            Lit::Str { s, fold: true } if crate::fold::has_cased_non_ascii(s) => {
                let re = lucene_spelled(Op::Eq, &Value::Str(s.clone())).unwrap_or_default();
                format!("{name} regex~ {}", super::text::eql_str(&re))
            }
            Lit::Str { s, fold: true } if s.contains(['*', '?', '\\']) => {
                format!("{name} in~ ({})", super::text::eql_str(s))
            }
            Lit::Str { s, fold: true } => format!("{name} : {}", super::text::eql_str(s)),
            Lit::Str { s, fold: false } => format!("{name} == {}", super::text::eql_str(s)),
            Lit::Raw(r) => format!("{name} == {r}"),
        }
    }

    /// Equality with any of `lits` as one list lookup, when EQL has one.
    fn eq_list(name: &str, lits: &[Lit]) -> Option<String> {
        let folds: Vec<bool> = lits
            .iter()
            .map(|l| match l {
                Lit::Str { fold, .. } => Some(*fold),
                Lit::Raw(_) => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let fold = *folds.first()?;
        if folds.iter().any(|f| *f != fold)
            || (fold
                && lits.iter().any(
                    |l| matches!(l, Lit::Str { s, .. } if crate::fold::has_cased_non_ascii(s)),
                ))
        {
            return None;
        }
        let items: Vec<String> = lits
            .iter()
            .map(|l| match l {
                Lit::Str { s, .. } => super::text::eql_str(s),
                Lit::Raw(r) => r.clone(),
            })
            .collect();
        Some(format!(
            "{name} {} {}",
            if fold { "in~" } else { "in" },
            eql_list(&items)
        ))
    }

    /// The comparison as an EQL atom, and whether it needs a presence guard
    /// under `not` (everything but `exists` and `!=`, which carry their own).
    fn render(&self, c: &Cmp) -> Result<(String, String, bool), String> {
        // A NUL would make the .eql file binary; its escape `\u{00}` is
        // Elasticsearch's, but the eql tool misreads two escapes in one string.
        if c.values
            .iter()
            .any(|v| v.as_str().is_some_and(|s| s.contains('\0')))
        {
            return Err(format!(
                "a value of `{}` holds U+0000, which detc does not write into an EQL string",
                c.field
            ));
        }
        let f = if c.op == Op::Cidr {
            self.ctx.resolve_ip(&c.field)?
        } else {
            self.ctx.resolve(&c.field)?
        };
        if let Some(why) = coercion_loss(self.ctx, &f, c) {
            return Err(why);
        }
        let name = eql_field(&f.name)?;
        let n = c.values.len();
        let many = |parts: Vec<String>| join(parts, if c.all { " and " } else { " or " });
        let text = match c.op {
            Op::Exists => return Ok((format!("{name} != null"), name, false)),
            Op::Eq => {
                let lits = c
                    .values
                    .iter()
                    .map(|v| self.literal(&f, &c.field, v, c.cased))
                    .collect::<Result<Vec<_>, _>>()?;
                match (n > 1 && !c.all)
                    .then(|| Self::eq_list(&name, &lits))
                    .flatten()
                {
                    Some(list) => list,
                    None => many(lits.iter().map(|l| Self::eq_one(&name, l)).collect()),
                }
            }
            Op::Ne => {
                if f.array {
                    return Err(format!(
                        "`!=` on `{}`, an array field: the language holds when some element differs, Elasticsearch's `!=` only when no element equals",
                        c.field
                    ));
                }
                let lits = c
                    .values
                    .iter()
                    .map(|v| self.literal(&f, &c.field, v, c.cased))
                    .collect::<Result<Vec<_>, _>>()?;
                let inner = match (n > 1 && c.all)
                    .then(|| Self::eq_list(&name, &lits))
                    .flatten()
                {
                    Some(list) => format!("not {list}"),
                    None => many(
                        lits.iter()
                            .map(|l| match l {
                                Lit::Str { s, fold: false } => {
                                    format!("{name} != {}", super::text::eql_str(s))
                                }
                                Lit::Raw(r) => format!("{name} != {r}"),
                                folded => format!("not {}", Self::eq_one(&name, folded)),
                            })
                            .collect(),
                    ),
                };
                return Ok((format!("({name} != null and {inner})"), name, false));
            }
            Op::StartsWith | Op::EndsWith | Op::Contains | Op::Like => {
                if f.kind != Kind::Keyword {
                    return Err(format!(
                        "`{}` on `{}` ({}): wildcard matching needs a keyword field",
                        c.op.keyword(),
                        c.field,
                        f.name
                    ));
                }
                // (operator, pattern) per value: a value with letters
                // beyond ASCII is a `regex~` with their partners written out.
                let pats: Vec<(&str, String)> = c
                    .values
                    .iter()
                    .map(|v| {
                        if let Some(re) = (!c.cased).then(|| lucene_spelled(c.op, v)).flatten() {
                            return ("regex~", super::text::eql_str(&re));
                        }
                        let s = v.as_str().unwrap_or_default();
                        let p = match c.op {
                            Op::StartsWith => format!("{}*", wildcard_literal(s)),
                            Op::EndsWith => format!("*{}", wildcard_literal(s)),
                            Op::Contains => format!("*{}*", wildcard_literal(s)),
                            _ => s.to_string(),
                        };
                        (
                            if c.cased { "like" } else { "like~" },
                            super::text::eql_str(&p),
                        )
                    })
                    .collect();
                let one_op = pats.iter().all(|p| p.0 == pats[0].0);
                if n > 1 && !c.all && one_op {
                    let list: Vec<String> = pats.iter().map(|p| p.1.clone()).collect();
                    format!("{name} {} {}", pats[0].0, eql_list(&list))
                } else {
                    many(
                        pats.iter()
                            .map(|(op, p)| format!("{name} {op} {p}"))
                            .collect(),
                    )
                }
            }
            Op::Matches => {
                if f.kind != Kind::Keyword {
                    return Err(format!(
                        "`matches` on `{}` ({}): regex matching needs a keyword field",
                        c.field, f.name
                    ));
                }
                let pats = c
                    .values
                    .iter()
                    .map(|v| {
                        let re = v.as_str().unwrap_or_default();
                        let re = if c.cased {
                            re.to_string()
                        } else {
                            crate::fold::expand_regex(re, crate::fold::Ascii::FlagLiterals)
                                .unwrap_or_else(|| re.to_string())
                        };
                        lucene_regex(&re).map(|r| super::text::eql_str(&r))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                // Lucene's case-insensitive flag folds ASCII letters only,
                // and not in class ranges: classes and letters beyond ASCII
                // have their partners written out (`crate::fold`).
                let op = if c.cased { "regex" } else { "regex~" };
                if n > 1 && !c.all {
                    format!("{name} {op} {}", eql_list(&pats))
                } else {
                    many(pats.iter().map(|p| format!("{name} {op} {p}")).collect())
                }
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                if !matches!(f.kind, Kind::Integer | Kind::Float) {
                    return Err(format!(
                        "`{}` on `{}` ({}): numeric comparisons need a numeric field (Elasticsearch would compare text)",
                        c.op.keyword(),
                        c.field,
                        f.name
                    ));
                }
                let parts = c
                    .values
                    .iter()
                    .map(|v| match v {
                        Value::Num(num) => eql_number(num, f.scale, false)
                            .map(|x| format!("{name} {} {x}", c.op.keyword())),
                        other => Err(format!(
                            "`{}` needs a number, found {}",
                            c.op.keyword(),
                            other.text()
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                many(parts)
            }
            Op::Cidr => {
                let nets: Vec<String> = c
                    .values
                    .iter()
                    .map(|v| super::text::eql_str(v.as_str().unwrap_or_default()))
                    .collect();
                if c.all {
                    many(
                        nets.iter()
                            .map(|x| format!("cidrMatch({name}, {x})"))
                            .collect(),
                    )
                } else {
                    format!("cidrMatch({name}, {})", nets.join(", "))
                }
            }
        };
        Ok((text, name, true))
    }
}

impl Dialect for Eql<'_> {
    fn reference(&self, name: &str) -> Option<String> {
        let i: usize = name.strip_prefix(LIFT)?.parse().ok()?;
        self.lifted.get(i).cloned()
    }

    fn cmp(&self, c: &Cmp) -> Result<String, String> {
        let (text, name, guard) = self.render(c)?;
        Ok(if self.guarded && guard && !self.present.contains(&name) {
            format!("({name} != null and {text})")
        } else {
            text
        })
    }
}

/// The query field a comparison tests, as written in the query.
fn query_field(ctx: &Ctx, c: &Cmp) -> Option<String> {
    let f = if c.op == Op::Cidr {
        ctx.resolve_ip(&c.field)
    } else {
        ctx.resolve(&c.field)
    };
    eql_field(&f.ok()?.name).ok()
}

/// Fields without which `e` is false (every comparison is false on an
/// absent field), in order of appearance.
fn required(ctx: &Ctx, e: &Expr) -> Vec<String> {
    match e {
        Expr::Cmp(c) => query_field(ctx, c).into_iter().collect(),
        Expr::And(xs) => {
            let mut out: Vec<String> = Vec::new();
            for x in xs {
                for f in required(ctx, x) {
                    if !out.contains(&f) {
                        out.push(f);
                    }
                }
            }
            out
        }
        Expr::Or(xs) => {
            let sets: Vec<Vec<String>> = xs.iter().map(|x| required(ctx, x)).collect();
            match sets.split_first() {
                Some((first, rest)) => first
                    .iter()
                    .filter(|f| rest.iter().all(|s| s.contains(f)))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            }
        }
        Expr::Not(_) | Expr::Ref(_) => Vec::new(),
    }
}

/// Replace every outermost `not` subtree by a reference to its rendering.
fn lift_nots(e: &Expr, out: &mut Vec<Expr>) -> Expr {
    match e {
        Expr::Not(_) => {
            out.push(e.clone());
            Expr::Ref(format!("{LIFT}{}", out.len() - 1))
        }
        Expr::And(xs) => Expr::And(xs.iter().map(|x| lift_nots(x, out)).collect()),
        Expr::Or(xs) => Expr::Or(xs.iter().map(|x| lift_nots(x, out)).collect()),
        other => other.clone(),
    }
}

fn is_disjunction(e: &Expr) -> bool {
    match e {
        Expr::Or(xs) if xs.len() == 1 => is_disjunction(&xs[0]),
        Expr::Or(_) => true,
        _ => false,
    }
}

/// The EQL query for `expr` of `det`: `any where <dataset> and <expr>`.
fn query(ctx: &Ctx, det: &Detection, expr: &Expr) -> Result<String, Unprintable> {
    let inlined = det.inlined(expr);
    let mut nots = Vec::new();
    let outer = lift_nots(&inlined, &mut nots);
    let mut lifted = Vec::with_capacity(nots.len());
    for n in &nots {
        // `not x exists` reads better as `x == null` (the same `must_not exists`).
        if let Expr::Not(inner) = n {
            if let Expr::Cmp(c) = inner.as_ref() {
                if c.op == Op::Exists {
                    let f = ctx.resolve(&c.field).map_err(|reason| Unprintable {
                        construct: c.to_string(),
                        reason,
                    })?;
                    let name = eql_field(&f.name).map_err(|reason| Unprintable {
                        construct: c.to_string(),
                        reason,
                    })?;
                    lifted.push(format!("{name} == null"));
                    continue;
                }
            }
        }
        // `not X`: when a field X requires is absent, X is false and `not X`
        // true: test those fields for null up front; inside, comparisons on
        // them are then two-valued, and the others get a presence guard.
        let present = match n {
            Expr::Not(inner) => required(ctx, inner),
            _ => Vec::new(),
        };
        let nulls: Vec<String> = present.iter().map(|f| format!("{f} == null")).collect();
        let guarded = Eql {
            ctx,
            guarded: true,
            present,
            lifted: Vec::new(),
        };
        let text = printer::print(&guarded, det, n)?;
        lifted.push(if nulls.is_empty() {
            text
        } else {
            format!("({} or {text})", nulls.join(" or "))
        });
    }
    let plain = Eql {
        ctx,
        guarded: false,
        present: Vec::new(),
        lifted,
    };
    let mut lines = vec![format!(
        "data_stream.dataset == {}",
        super::text::eql_str(&ctx.table.dataset)
    )];
    for c in printer::conjuncts(&outer) {
        let s = printer::print(&plain, det, c)?;
        lines.push(if is_disjunction(c) {
            format!("({s})")
        } else {
            s
        });
    }
    Ok(format!("any where {}", lines.join(" and\n  ")))
}

// ------------------------------------------------------------------ narrowing

/// What an Elastic query keeps of an expression: the branches of an `or`
/// (outside any `not`) that it cannot test are dropped, and so are `$podSpec`
/// branches of a kind the detection's match excludes (a CronJob write never
/// holds the Pod branch). The query then matches a subset of what the
/// language matches: every drop is listed, and the build reports it as an
/// `unsupported` loss.
#[derive(Debug, Clone)]
pub struct Narrowed {
    /// The expression the query renders, `let`s inlined.
    pub expr: Expr,
    /// (comparison, why it was dropped), in order.
    pub dropped: Vec<(String, String)>,
}

/// The `objectRef.resource` values a detection's match requires, if it
/// requires some (a top-level `objectRef.resource in [..]`).
fn required_resources(det: &Detection) -> Vec<String> {
    let cond = det.inlined(&det.condition);
    printer::conjuncts(&cond)
        .into_iter()
        .find_map(|e| match e {
            Expr::Cmp(c)
                if c.op == Op::Eq
                    && !c.all
                    && c.field.dotted() == "objectRef.resource"
                    && c.values.iter().all(|v| matches!(v, Value::Str(_))) =>
            {
                Some(c.values.iter().map(|v| v.text().to_lowercase()).collect())
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// Whether a query can hold an expression; the error names what it cannot.
type Testable<'a> = dyn Fn(&Expr) -> Result<(), Unprintable> + 'a;

fn narrow_expr(
    testable: &Testable,
    det: &Detection,
    resources: &[String],
    e: &Expr,
    dropped: &mut Vec<(String, String)>,
) -> Option<Expr> {
    match e {
        Expr::Or(xs) => {
            let kept: Vec<Expr> = xs
                .iter()
                .filter_map(|x| narrow_expr(testable, det, resources, x, dropped))
                .collect();
            (!kept.is_empty()).then_some(Expr::Or(kept))
        }
        Expr::And(xs) => xs
            .iter()
            .map(|x| narrow_expr(testable, det, resources, x, dropped))
            .collect::<Option<Vec<_>>>()
            .map(Expr::And),
        Expr::Cmp(c) => {
            if !resources.is_empty() {
                let branch =
                    crate::sources::catalog(&det.source).and_then(|cat| cat.alias_branch(&c.field));
                if let Some((alias, p)) = branch {
                    if !p.resources.iter().any(|r| resources.contains(r)) {
                        dropped.push((
                            c.to_string(),
                            format!(
                                "the {} branch of `${}` ({}), which this rule's match (`objectRef.resource` in {}) excludes",
                                p.kinds.join("/"),
                                alias.name,
                                p.path,
                                resources.join(", ")
                            ),
                        ));
                        return None;
                    }
                }
            }
            match testable(e) {
                Ok(()) => Some(e.clone()),
                Err(u) => {
                    dropped.push((c.to_string(), u.reason));
                    None
                }
            }
        }
        // Dropping inside `not` would widen the query: it is kept whole or not at all.
        Expr::Not(_) | Expr::Ref(_) => match testable(e) {
            Ok(()) => Some(e.clone()),
            Err(u) => {
                dropped.push((u.construct, u.reason));
                None
            }
        },
    }
}

/// What a form's query keeps of `expr` (see [`Narrowed`]), with `testable`
/// deciding each comparison.
fn narrowed_with(
    testable: &Testable,
    det: &Detection,
    expr: &Expr,
) -> Result<Narrowed, Vec<(String, String)>> {
    let mut dropped = Vec::new();
    let resources = required_resources(det);
    match narrow_expr(testable, det, &resources, &det.inlined(expr), &mut dropped) {
        Some(expr) => Ok(Narrowed { expr, dropped }),
        None => Err(dropped),
    }
}

/// `expr` of `det` as the EQL query can hold it (see [`Narrowed`]); `None`
/// when nothing is left, with the reasons.
pub fn narrowed(det: &Detection, expr: &Expr) -> Result<Narrowed, Vec<(String, String)>> {
    narrowed_in(&EQL, det, expr)
}

/// As [`narrowed`], for an Elastic query language.
pub(crate) fn narrowed_in(
    lang: &Lang,
    det: &Detection,
    expr: &Expr,
) -> Result<Narrowed, Vec<(String, String)>> {
    let Some(table) = field_table(&det.source) else {
        return Err(vec![(
            format!("source {}", det.source),
            "no Elastic integration field table for this source".into(),
        )]);
    };
    let ctx = Ctx {
        source: det.source.clone(),
        table,
        lang: lang.name,
        projection: None,
    };
    narrowed_with(
        &|e: &Expr| (lang.query)(&ctx, det, e, &mut Vec::new()).map(|_| ()),
        det,
        expr,
    )
}

/// The dropped branches as one sentence.
fn dropped_text(lang: &Lang, dropped: &[(String, String)]) -> String {
    let items: Vec<String> = dropped
        .iter()
        .map(|(c, why)| format!("`{c}` ({why})"))
        .collect();
    format!(
        "the {} rule tests only the rest, so it matches less: it cannot test {}",
        lang.name,
        items.join("; ")
    )
}

fn changes_text(what: &str, changes: &[String]) -> String {
    if changes.is_empty() {
        format!("; no test of this rule changes verdict for {what}")
    } else {
        format!(
            "; the tests that then change verdict for {what} (match to no match): {}",
            changes.join(", ")
        )
    }
}

// ------------------------------------------------------------------ documents

/// The Elasticsearch document the integration would index for a canonical
/// (normalised) event of `source`, as far as the field table knows it:
/// `data_stream.dataset`, every mapped field at its Elasticsearch name (with
/// the mapping type's coercion), and the ip copies of the ingest pipeline.
/// Useful to test queries against events (see tests/elastic.rs).
pub fn elastic_document(source: &str, event: &Json) -> Option<Json> {
    let table = field_table(source)?;
    let ctx = Ctx {
        source: source.to_string(),
        table,
        lang: "EQL",
        projection: None,
    };
    let mut doc = Map::new();
    set_path(
        &mut doc,
        "data_stream.dataset",
        Json::String(table.dataset.clone()),
    );
    for ((key, e), segs) in table.fields.iter().zip(&table.segs) {
        if !e.indexed || ctx.flattened_parent(segs).is_some() {
            continue;
        }
        let k = match (kind(&e.ty), e.ty.as_str()) {
            (Some(k), _) => k,
            (None, "text") => Kind::Keyword,
            _ => continue,
        };
        let field = field_of(key);
        let scale = ctx.scale(&field);
        let vals: Vec<Json> = crate::eval::lookup(event, &field)
            .into_iter()
            .filter(|v| !(table.drops_empty && v.as_str() == Some("")))
            .filter_map(|v| coerce(k, v, scale))
            .collect();
        match vals.len() {
            0 => {}
            1 => set_path(
                &mut doc,
                &e.name,
                vals.into_iter().next().unwrap_or(Json::Null),
            ),
            _ => set_path(&mut doc, &e.name, Json::Array(vals)),
        }
    }
    // The pipeline's `convert` to ip fails as a whole when one element is not an IP.
    for (name, e) in &table.ecs_fields {
        let Some(from) = e.from.as_deref().filter(|_| e.ty == "ip") else {
            continue;
        };
        let leaves = crate::eval::lookup(event, &field_of(from));
        let ips: Option<Vec<Json>> = leaves
            .into_iter()
            .map(|v| coerce(Kind::Ip, v, None))
            .collect();
        match ips {
            Some(v) if v.len() == 1 => {
                set_path(&mut doc, name, v.into_iter().next().unwrap_or(Json::Null))
            }
            Some(v) if !v.is_empty() => set_path(&mut doc, name, Json::Array(v)),
            _ => {}
        }
    }
    Some(Json::Object(doc))
}

fn coerce(k: Kind, v: &Json, scale: Option<i64>) -> Option<Json> {
    match (k, v) {
        (Kind::Keyword | Kind::Date, Json::String(_)) => Some(v.clone()),
        (Kind::Keyword, Json::Number(n)) => Some(Json::String(n.to_string())),
        (Kind::Keyword, Json::Bool(b)) => Some(Json::String(b.to_string())),
        (Kind::Integer | Kind::Float, _) => {
            let f = match v {
                Json::Number(n) => n.as_f64()?,
                Json::String(s) => s.trim().parse::<f64>().ok()?,
                _ => return None,
            } * scale.unwrap_or(1) as f64;
            if k == Kind::Integer {
                Some(Json::from(f.trunc() as i64))
            } else {
                serde_json::Number::from_f64(f).map(Json::Number)
            }
        }
        (Kind::Boolean, Json::Bool(_)) => Some(v.clone()),
        // Elasticsearch's boolean field: "" is false; any other text is malformed.
        (Kind::Boolean, Json::String(s)) if s == "true" || s == "false" || s.is_empty() => {
            Some(Json::Bool(s == "true"))
        }
        (Kind::Ip, Json::String(s)) if s.parse::<IpAddr>().is_ok() => Some(v.clone()),
        _ => None,
    }
}

fn set_path(doc: &mut Map<String, Json>, name: &str, value: Json) {
    let mut parts: Vec<&str> = name.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = doc;
    for p in parts {
        let slot = cur
            .entry(p.to_string())
            .or_insert_with(|| Json::Object(Map::new()));
        match slot {
            Json::Object(m) => cur = m,
            _ => return,
        }
    }
    cur.entry(last.to_string()).or_insert(value);
}

// ------------------------------------------------------------------ rendering

/// A detection-rules window: `from`, `interval` and `to` as Elastic writes them.
pub(crate) struct ElasticWindow {
    pub from: String,
    pub interval: String,
    pub to: Option<String>,
}

/// The rule's schedule as an Elastic window; without one, Elastic's default
/// of every 5 minutes over the last 6.
pub(crate) fn elastic_window(det: &Detection, losses: &mut Vec<Loss>) -> ElasticWindow {
    let default = Window {
        interval_min: 5,
        from_secs: 6 * 60,
        to_secs: 0,
    };
    let w = schedule::window(det, "an Elastic rule", default, losses);
    ElasticWindow {
        from: format!("now-{}", schedule::span(w.from_secs)),
        interval: schedule::minutes(w.interval_min),
        to: (w.to_secs > 0).then(|| format!("now-{}", schedule::span(w.to_secs))),
    }
}

/// An Elastic query language: the rule documents are the same
/// detection-rules TOML, the query differs.
pub(crate) struct Lang {
    /// As prose (`EQL`).
    pub name: &'static str,
    /// The TOML `language` and `type`, and the query file's extension.
    pub language: &'static str,
    /// The query aggregates (`STATS ... BY`): group_by, values and
    /// time_range have a place.
    pub aggregates: bool,
    /// The rule lists its indices in `index` (ES|QL names them in `FROM`).
    pub lists_index: bool,
    /// The query of an expression of a detection; what of the output block
    /// it cannot keep goes to the losses.
    pub query: fn(&Ctx, &Detection, &Expr, &mut Vec<Loss>) -> Result<String, Unprintable>,
}

pub(crate) const EQL: Lang = Lang {
    name: "EQL",
    language: "eql",
    aggregates: false,
    lists_index: true,
    query: |ctx, det, expr, _| query(ctx, det, expr),
};

#[derive(Serialize)]
struct TomlCtx {
    language: &'static str,
    rule_name: String,
    stem: String,
    notes: Vec<String>,
    creation_date: String,
    updated_date: String,
    deprecation_date: Option<String>,
    integration: Vec<String>,
    maturity: &'static str,
    authors: Vec<String>,
    description: String,
    fp_list: Vec<String>,
    lookback: String,
    index: Vec<String>,
    interval: String,
    name: String,
    runbook: Option<String>,
    references: Vec<String>,
    risk_score: u32,
    rule_id: String,
    setup: String,
    severity: &'static str,
    tags: Vec<String>,
    until: Option<String>,
    query: String,
    threats: Vec<Threat>,
}

fn severity_band(s: Severity) -> (&'static str, u32) {
    match s {
        Severity::Informational | Severity::Low => ("low", 21),
        Severity::Medium => ("medium", 47),
        Severity::High => ("high", 73),
        Severity::Critical => ("critical", 99),
    }
}

fn slash_date(d: &str) -> String {
    d.replace('-', "/")
}

/// What an output block setting becomes: a note for each one the rule has
/// no place for (an EQL rule alerts once per matching event with fixed
/// metadata; an ES|QL rule aggregates, but its other metadata is fixed too).
fn output_losses(lang: &Lang, det: &Detection, severity: Severity, losses: &mut Vec<Loss>) {
    let o = &det.output;
    let stem = &det.stem;
    let per_event = format!(
        "an {} rule raises one alert per matching event, with no aggregation",
        lang.name
    );
    if !o.group_by.is_empty() && !lang.aggregates {
        losses.push(Loss::not_applicable(stem, "output.group_by", &per_event));
    }
    if !o.values.is_empty() && !lang.aggregates {
        losses.push(Loss::not_applicable(stem, "output.values", &per_event));
    }
    if !o.rename.is_empty() {
        losses.push(Loss::not_applicable(
            stem,
            "output.rename",
            "alerts carry the source document's field names",
        ));
    }
    if o.time_range && !(o.group_by.is_empty() && o.values.is_empty()) && !lang.aggregates {
        losses.push(Loss::not_applicable(stem, "output.time_range", per_event));
    }
    if !o.summary.is_empty() {
        losses.push(Loss::not_applicable(
            stem,
            "output.summary",
            "detection-rules TOML has no summary field list",
        ));
    }
    if o.title.is_some() {
        losses.push(Loss::not_applicable(
            stem,
            "output.title",
            "detection-rules TOML has no alert title template (`rule_name_override` takes one field)",
        ));
    }
    if let Some(m) = o.dedup_minutes {
        losses.push(Loss::not_applicable(
            stem,
            "output.dedup",
            if lang.aggregates {
                format!(
                    "no dedup period in an {} rule ({m}m): every result of every run alerts",
                    lang.name
                )
            } else {
                format!(
                    "no dedup period in an {} rule ({m}m): every matching event alerts",
                    lang.name
                )
            },
        ));
    }
    if let Some(r) = &o.risk {
        let (sev, score) = severity_band(severity);
        losses.push(Loss::not_applicable(
            stem,
            "output.risk",
            format!(
                "risk_score follows the {sev} severity band ({score}); risk score {}, impact, confidence, message and risk objects have no place in the rule",
                r.score
            ),
        ));
    }
}

fn maturity(s: Status) -> &'static str {
    match s {
        Status::Stable => "production",
        Status::Deprecated => "deprecated",
        Status::Experimental | Status::Test => "development",
    }
}

const TAG_PREFIXES: &[&str] = &[
    "Data Source",
    "Domain",
    "OS",
    "Resources",
    "Rule Type",
    "Tactic",
    "Threat",
    "Use Case",
    "Mitre Atlas",
    "Language",
];

struct Doc<'a> {
    lang: &'a Lang,
    rule: &'a Rule,
    det: &'a Detection,
    ctx: &'a Ctx,
    window: &'a ElasticWindow,
    threats: &'a [Threat],
    tags: &'a [String],
    notes: &'a [String],
    setup: &'a str,
}

impl Doc<'_> {
    fn toml(
        &self,
        name: String,
        description: String,
        rule_id: String,
        severity: Severity,
        query: &str,
    ) -> Result<String, BackendError> {
        let m = &self.rule.meta;
        let (sev, risk) = severity_band(severity);
        let updated = slash_date(m.modified.as_deref().unwrap_or(&m.date));
        let ctx = TomlCtx {
            language: self.lang.language,
            rule_name: self.rule.name.clone(),
            stem: self.det.stem.clone(),
            notes: self.notes.to_vec(),
            creation_date: slash_date(&m.date),
            deprecation_date: (m.status == Status::Deprecated).then(|| updated.clone()),
            updated_date: updated,
            integration: vec![self.ctx.table.integration.clone()],
            maturity: maturity(m.status),
            authors: vec![m.author.clone()],
            description,
            fp_list: m.false_positives.clone(),
            lookback: self.window.from.clone(),
            index: if self.lang.lists_index {
                vec![self.ctx.table.index.clone()]
            } else {
                Vec::new()
            },
            interval: self.window.interval.clone(),
            name,
            runbook: m.runbook.clone(),
            references: m.references.clone(),
            risk_score: risk,
            rule_id,
            setup: self.setup.to_string(),
            severity: sev,
            tags: self.tags.to_vec(),
            until: self.window.to.clone(),
            query: format!("{query}\n"),
            threats: self.threats.to_vec(),
        };
        let ctx = tera::Context::from_serialize(&ctx)?;
        super::render_template("elastic/rule.toml", &ctx)
    }
}

/// The query file: the notes as `//` comments (EQL and ES|QL both have them), then the query.
fn query_file(notes: &[String], query: &str) -> String {
    let mut s = String::new();
    for n in notes {
        s.push_str(&format!("// detc note: {}\n", super::text::comment_text(n)));
    }
    s.push_str(query);
    s.push('\n');
    s
}

/// One form's rendering: its queries and losses, before the files are written.
struct FormOut<'a> {
    form: &'a Form,
    ctx: Ctx,
    /// The file name base (`<stem>` or `<stem>__<form>`).
    base: String,
    rule_id: String,
    name: String,
    main: String,
    companions: Vec<(&'a crate::ir::Indicator, String)>,
    /// The canonical condition the main query tests (narrowed, if it was).
    kept: Expr,
}

/// How a form's query reads an expression of the detection: the canonical
/// expression itself, or its projection onto the platform's record.
struct Reader<'a> {
    lang: &'a Lang,
    det: &'a Detection,
    ctx: &'a Ctx,
    projection: Option<&'static Projection>,
}

impl Reader<'_> {
    /// The expression the query prints (lets inlined); `None` when it is constant.
    fn expr(&self, e: &Expr, select: bool) -> Result<Option<Expr>, Unprintable> {
        let Some(p) = self.projection else {
            return Ok(Some(e.clone()));
        };
        let projected = if select {
            p.project(self.det, e)
        } else {
            p.project_expr(&self.det.inlined(e))
        };
        match projected {
            Ok(x) if project::constant(&x).is_some() && !select => Ok(None),
            Ok(x) => Ok(Some(x)),
            Err(errors) => {
                let (construct, reason) = errors.into_iter().next().unwrap_or_default();
                Err(Unprintable { construct, reason })
            }
        }
    }

    fn testable(&self, e: &Expr) -> Result<(), Unprintable> {
        match self.expr(e, false)? {
            None => Ok(()),
            Some(x) => (self.lang.query)(self.ctx, self.det, &x, &mut Vec::new()).map(|_| ()),
        }
    }

    /// The query of `e`; `Ok(None)` when the projection can never hold.
    fn query(&self, e: &Expr, losses: &mut Vec<Loss>) -> Result<Option<String>, Unprintable> {
        let Some(x) = self.expr(e, true)? else {
            return Ok(None);
        };
        if project::constant(&x) == Some(false) {
            return Ok(None);
        }
        (self.lang.query)(self.ctx, self.det, &x, losses).map(Some)
    }
}

/// A loss construct of a form after the first names the form.
fn in_form(construct: impl Into<String>, form: &Form, first: bool) -> String {
    let c = construct.into();
    if first {
        c
    } else {
        format!("{c} ({} form)", form.name)
    }
}

#[allow(clippy::too_many_arguments)]
fn render_form<'a>(
    lang: &Lang,
    rule: &'a Rule,
    det: &'a Detection,
    form: &'a Form,
    first: bool,
    det_id: &uuid::Uuid,
    title: &str,
    losses: &mut Vec<Loss>,
) -> Option<FormOut<'a>> {
    let stem = det.stem.as_str();
    let Some(table) = field_table(&form.spec.table) else {
        losses.push(Loss::unsupported(
            stem,
            in_form(format!("source {}", det.source), form, first),
            format!(
                "no Elastic field table `{}` (src/sources/elastic_fields.yaml)",
                form.spec.table
            ),
        ));
        return None;
    };
    let projection = match &form.spec.projection {
        None => None,
        Some(p) => match project::projection(&det.source, p) {
            Some(x) => Some(x),
            None => {
                losses.push(Loss::unsupported(
                    stem,
                    in_form("match", form, first),
                    format!(
                        "no projection of {} onto {p} (src/sources/projections.yaml)",
                        det.source
                    ),
                ));
                return None;
            }
        },
    };
    let ctx = Ctx {
        source: if projection.is_some() {
            form.spec.table.clone()
        } else {
            det.source.clone()
        },
        table,
        lang: lang.name,
        projection,
    };
    let reader = Reader {
        lang,
        det,
        ctx: &ctx,
        projection,
    };
    let platforms: Vec<String> = form
        .platforms
        .iter()
        .filter(|p| det.platforms.contains(p))
        .cloned()
        .collect();
    // The first form keeps the detection's own test list for its notes.
    let tested: &[String] = if first { &det.platforms } else { &platforms };
    let whole_loss = in_form(
        "match (the whole detection: no Elastic rule is written)",
        form,
        first,
    );
    let whole = |dropped: &[(String, String)]| {
        dropped
            .iter()
            .map(|(c, why)| format!("{c}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let testable = |e: &Expr| reader.testable(e);
    let cond = match narrowed_with(&testable, det, &det.condition) {
        Ok(n) => n,
        Err(dropped) => {
            losses.push(Loss::unsupported(stem, whole_loss, whole(&dropped)));
            // The platforms this form would serve are lost with it.
            for p in &platforms {
                losses.push(Loss::unsupported(
                    stem,
                    format!("platform {p}"),
                    format!(
                        "no Elastic rule reads {p} through the {} form: its condition cannot be written (see the `match` note)",
                        form.name
                    ),
                ));
            }
            return None;
        }
    };
    let main = match reader.query(&cond.expr, losses) {
        Ok(Some(q)) => q,
        Ok(None) => {
            losses.push(Loss::unsupported(
                stem,
                whole_loss,
                format!(
                    "on {} the condition can never hold: no {} record is an event it matches",
                    platforms.join(", "),
                    form.label
                ),
            ));
            return None;
        }
        Err(u) => {
            losses.push(Loss::unsupported(
                stem,
                whole_loss,
                format!("{}: {}", u.construct, u.reason),
            ));
            return None;
        }
    };
    let base = if first {
        stem.to_string()
    } else {
        format!("{stem}__{}", form.name)
    };
    if !cond.dropped.is_empty() {
        let changes = crate::eval::verdict_changes(
            rule,
            det,
            tested,
            &det.inlined(&det.condition),
            &cond.expr,
        );
        losses.push(Loss::unsupported(
            stem,
            in_form("match (narrowed)", form, first),
            format!(
                "{}{}",
                dropped_text(lang, &cond.dropped),
                changes_text("the rule", &changes)
            ),
        ));
    }
    let mut companions = Vec::new();
    for ind in &det.indicators {
        let construct = in_form(format!("indicator {}", ind.name), form, first);
        let narrowed_ind = narrowed_with(&testable, det, &ind.expr);
        let alone = match &narrowed_ind {
            Ok(n) => Ok(n.clone()),
            Err(dropped) => Err(Unprintable {
                construct: construct.clone(),
                reason: whole(dropped),
            }),
        };
        let rendered = alone.and_then(|n| {
            let both = Expr::And(vec![cond.expr.clone(), n.expr.clone()]);
            match reader.query(&both, &mut Vec::new())? {
                Some(q) => Ok((n, q)),
                None => Err(Unprintable {
                    construct: construct.clone(),
                    reason: format!(
                        "with the match, it can never hold on a {} record",
                        form.label
                    ),
                }),
            }
        });
        match rendered {
            Ok((n, q)) => {
                if !n.dropped.is_empty() {
                    let full = Expr::And(vec![det.inlined(&det.condition), det.inlined(&ind.expr)]);
                    let kept = Expr::And(vec![cond.expr.clone(), n.expr.clone()]);
                    let changes = crate::eval::verdict_changes(rule, det, tested, &full, &kept);
                    losses.push(Loss::unsupported(
                        stem,
                        in_form(format!("indicator {} (narrowed)", ind.name), form, first),
                        format!(
                            "{}{}",
                            dropped_text(lang, &n.dropped),
                            changes_text(
                                &format!("the companion rule {base}__{}", ind.name),
                                &changes
                            )
                        ),
                    ));
                }
                losses.push(Loss::not_applicable(
                    stem,
                    construct,
                    format!(
                        "an {} rule has one fixed severity: rendered as the companion rule {base}__{}.toml (match and indicator, severity {})",
                        lang.name,
                        ind.name,
                        rule.meta.severity.max(ind.severity).as_str()
                    ),
                ));
                companions.push((ind, q));
            }
            Err(u) if u.construct == construct => {
                losses.push(Loss::unsupported(stem, u.construct, u.reason))
            }
            Err(u) => losses.push(Loss::unsupported(
                stem,
                construct,
                format!("{}: {}", u.construct, u.reason),
            )),
        }
    }
    let (rule_id, name) = if first {
        (det_id.to_string(), title.to_string())
    } else {
        (
            super::naming::derived_id(&det_id.to_string(), &format!("elastic:{}", form.name)),
            format!(
                "{title} ({})",
                form.spec.title.as_deref().unwrap_or(&form.name)
            ),
        )
    };
    Some(FormOut {
        form,
        ctx,
        base,
        rule_id,
        name,
        main,
        companions,
        kept: cond.expr.clone(),
    })
}

/// The rule's `setup`: where the rule reads, and the integration input each
/// platform it serves needs.
fn setup_text(form: &Form, det: &Detection) -> String {
    let mut s = format!(
        "This rule reads the {}. Set up, per platform:\n",
        form.label
    );
    for p in form.platforms.iter().filter(|p| det.platforms.contains(p)) {
        let input = form
            .spec
            .inputs
            .get(p)
            .map(String::as_str)
            .unwrap_or("the integration's input for this platform");
        s.push_str(&format!("- {p}: {input}\n"));
    }
    s
}

fn render_detection(
    lang: &Lang,
    rule: &Rule,
    index: usize,
    det: &Detection,
    out: &mut Rendered,
) -> Result<(), BackendError> {
    let stem = det.stem.as_str();
    let Some(sf) = elastic_forms().get(&det.source) else {
        out.losses.push(Loss::unsupported(
            stem,
            format!("source {}", det.source),
            "no Elastic integration for this source (src/sources/elastic.yaml)",
        ));
        return Ok(());
    };
    let mut losses = Vec::new();
    for (p, why) in sf.unserved(&det.platforms, "Elastic") {
        losses.push(Loss::unsupported(stem, format!("platform {p}"), why));
    }
    let base =
        uuid::Uuid::parse_str(&rule.meta.id).map_err(|e| BackendError(format!("rule id: {e}")))?;
    let det_id = if index == 0 {
        base
    } else {
        uuid::Uuid::new_v5(&base, format!("source:{}", det.source).as_bytes())
    };
    let title = super::naming::detection_title(rule, index);
    let mut rendered = Vec::new();
    for form in sf.serving(&det.platforms) {
        let first = std::ptr::eq(form, &sf.forms[0]);
        if let Some(f) = render_form(lang, rule, det, form, first, &det_id, &title, &mut losses) {
            rendered.push(f);
        }
    }
    output_losses(lang, det, rule.meta.severity, &mut losses);
    let window = elastic_window(det, &mut losses);
    let threats = attack::threats(rule, stem, &mut losses);
    if rule.meta.severity == Severity::Informational {
        losses.push(Loss::not_applicable(
            stem,
            "severity",
            "Elastic has no informational severity: rendered as low",
        ));
    }
    if !rule.meta.related.is_empty() {
        losses.push(Loss::not_applicable(
            stem,
            "related",
            "detection-rules TOML has no related-rules field",
        ));
    }
    let mut rule_tags: Vec<String> = vec!["Use Case: Threat Detection".into()];
    for th in &threats {
        rule_tags.push(format!("Tactic: {}", th.tactic.name));
    }
    if rule.meta.runbook.is_some() {
        rule_tags.push("Resources: Investigation Guide".into());
    }
    for t in &rule.meta.tags {
        match t.split_once(": ") {
            Some((p, v)) if TAG_PREFIXES.contains(&p) && !v.trim().is_empty() => {
                rule_tags.push(t.clone())
            }
            _ => losses.push(Loss::not_applicable(
                stem,
                format!("tag {t}"),
                "Elastic tags are `<Prefix>: <value>` with a known prefix (Domain, Use Case, ...)",
            )),
        }
    }

    // Every file of the detection notes every loss of the detection.
    let notes: Vec<String> = losses.iter().map(Loss::note).collect();
    for f in &rendered {
        let mut tags: Vec<String> = f.form.spec.tags.clone();
        tags.extend(rule_tags.iter().cloned());
        let mut seen = Vec::new();
        tags.retain(|t| {
            let new = !seen.contains(t);
            seen.push(t.clone());
            new
        });
        let setup = setup_text(f.form, det);
        let doc = Doc {
            lang,
            rule,
            det,
            ctx: &f.ctx,
            window: &window,
            threats: &threats,
            tags: &tags,
            notes: &notes,
            setup: &setup,
        };
        out.files.push(Artifact {
            path: format!("{}.toml", f.base),
            contents: doc.toml(
                f.name.clone(),
                rule.meta.description.clone(),
                f.rule_id.clone(),
                rule.meta.severity,
                &f.main,
            )?,
        });
        out.files.push(Artifact {
            path: format!("{}.{}", f.base, lang.language),
            contents: query_file(&notes, &f.main),
        });
        out.served(
            det,
            &f.form.platforms,
            &f.form.label,
            &format!("{}.toml", f.base),
            &f.kept,
        );
        for (ind, q) in &f.companions {
            let sev = rule.meta.severity.max(ind.severity);
            let id = uuid::Uuid::new_v5(
                &uuid::Uuid::parse_str(&f.rule_id)
                    .map_err(|e| BackendError(format!("rule id: {e}")))?,
                format!("indicator:{}", ind.name).as_bytes(),
            );
            let description = format!(
                "{}\n\nCompanion of the rule \"{}\": it alerts with severity {} when the indicator `{}` also matches (an {} rule has one fixed severity).",
                rule.meta.description,
                f.name,
                sev.as_str(),
                ind.name,
                lang.name
            );
            let cname = format!("{} (indicator {})", f.name, ind.name);
            out.files.push(Artifact {
                path: format!("{}__{}.toml", f.base, ind.name),
                contents: doc.toml(cname, description, id.to_string(), sev, q)?,
            });
            out.files.push(Artifact {
                path: format!("{}__{}.{}", f.base, ind.name, lang.language),
                contents: query_file(&notes, q),
            });
        }
    }
    out.losses.extend(losses);
    Ok(())
}

impl Backend for Elastic {
    fn target(&self) -> Target {
        Target::Elastic
    }

    fn render(&self, rule: &Rule) -> Result<Rendered, BackendError> {
        render_rule(&EQL, rule)
    }
}

/// Every detection of `rule` as detection-rules TOML in `lang`.
pub(crate) fn render_rule(lang: &Lang, rule: &Rule) -> Result<Rendered, BackendError> {
    let mut out = Rendered::default();
    for (i, det) in rule.detections.iter().enumerate() {
        render_detection(lang, rule, i, det, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod form_tests {
    use super::*;

    #[test]
    fn every_form_loads() {
        assert_eq!(
            forms::check("elastic", elastic_forms()),
            Vec::<String>::new()
        );
        for sf in elastic_forms().values() {
            for f in &sf.forms {
                assert!(field_table(&f.spec.table).is_some(), "{}: no table", f.name);
                for p in &f.platforms {
                    assert!(
                        f.spec.inputs.contains_key(p),
                        "{}: no input for {p}",
                        f.name
                    );
                }
                if let Some(p) = &f.spec.projection {
                    assert!(f.platforms.contains(p), "{}: projection {p}", f.name);
                }
            }
        }
    }
}
