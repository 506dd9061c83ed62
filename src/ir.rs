//! The intermediate representation: the only contract between the front end
//! (`syntax` + `check`) and the evaluator and backends.
//!
//! Everything here is checked: names resolve, fields exist in the source
//! catalog, regexes are portable, metadata is well-formed. Backends never see
//! the surface syntax.

use crate::diag::Span;
use crate::target::Target;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One checked `.rule` file entry.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// The rule's identifier (`rule <name> { ... }`), used as the output file stem.
    pub name: String,
    /// Where the rule is in its file: the name, and the id's value.
    #[serde(skip)]
    pub spans: RuleSpans,
    pub meta: Meta,
    /// One detection per `source` block, in file order.
    pub detections: Vec<Detection>,
    pub tests: Vec<TestCase>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub id: String,
    pub title: String,
    pub description: String,
    pub author: String,
    /// `YYYY-MM-DD`
    pub date: String,
    pub modified: Option<String>,
    pub status: Status,
    pub severity: Severity,
    /// ATT&CK techniques (`T1053.007`), in source order.
    pub techniques: Vec<String>,
    /// ATT&CK tactics (`TA0003`), in source order.
    pub tactics: Vec<String>,
    pub references: Vec<String>,
    pub false_positives: Vec<String>,
    pub runbook: Option<String>,
    pub related: Vec<Related>,
    pub tags: Vec<String>,
    /// Targets for which the author accepts a visible, reported loss of
    /// constructs the target cannot express (`lossy = [sigma]`).
    pub lossy: Vec<Target>,
    /// The version the generated files carry where the target has a field
    /// for it (contentctl `version`). Not part of the rule text: `detc build`
    /// fills it in per target from `detc.lock`; 1 without a lock.
    #[serde(skip)]
    pub version: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Related {
    pub id: String,
    pub kind: RelationKind,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RelationKind {
    Derived,
    Obsolete,
    Merged,
    Renamed,
    Similar,
}

impl RelationKind {
    pub const ALL: &'static [(&'static str, RelationKind)] = &[
        ("derived", RelationKind::Derived),
        ("obsolete", RelationKind::Obsolete),
        ("merged", RelationKind::Merged),
        ("renamed", RelationKind::Renamed),
        ("similar", RelationKind::Similar),
    ];
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(s, _)| *s)
            .unwrap_or("similar")
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Experimental,
    Test,
    Stable,
    Deprecated,
}

impl Status {
    pub const ALL: &'static [(&'static str, Status)] = &[
        ("experimental", Status::Experimental),
        ("test", Status::Test),
        ("stable", Status::Stable),
        ("deprecated", Status::Deprecated),
    ];
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(s, _)| *s)
            .unwrap_or("test")
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: &'static [(&'static str, Severity)] = &[
        ("informational", Severity::Informational),
        ("low", Severity::Low),
        ("medium", Severity::Medium),
        ("high", Severity::High),
        ("critical", Severity::Critical),
    ];
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(s, _)| *s)
            .unwrap_or("medium")
    }
}

/// Byte ranges in the rule's file, for messages that point at a rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleSpans {
    pub name: Span,
    pub id: Span,
}

/// The rule logic for one log source.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// Catalog name of the source, e.g. `kubernetes.audit`.
    pub source: String,
    /// The `source ... { }` block in the rule's file.
    #[serde(skip)]
    pub span: Span,
    /// Output file stem: the rule name for the first source, `<rule>_<source>` after it.
    pub stem: String,
    pub platforms: Vec<String>,
    /// Named conditions in dependency order (each refers only to earlier ones).
    pub lets: Vec<Let>,
    pub condition: Expr,
    pub indicators: Vec<Indicator>,
    pub output: Output,
}

impl Detection {
    pub fn let_expr(&self, name: &str) -> Option<&Expr> {
        self.lets.iter().find(|l| l.name == name).map(|l| &l.expr)
    }

    /// The condition with every `let` reference replaced by its definition.
    pub fn inlined(&self, expr: &Expr) -> Expr {
        match expr {
            Expr::Ref(name) => match self.let_expr(name) {
                Some(e) => self.inlined(e),
                None => expr.clone(),
            },
            Expr::And(xs) => Expr::And(xs.iter().map(|x| self.inlined(x)).collect()),
            Expr::Or(xs) => Expr::Or(xs.iter().map(|x| self.inlined(x)).collect()),
            Expr::Not(x) => Expr::Not(Box::new(self.inlined(x))),
            Expr::Cmp(_) => expr.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Let {
    pub name: String,
    pub expr: Expr,
}

#[derive(Debug, Clone, Serialize)]
pub struct Indicator {
    pub name: String,
    pub severity: Severity,
    pub expr: Expr,
}

/// A boolean condition over one event.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A `let` name of the same detection.
    Ref(String),
    Cmp(Cmp),
}

/// The type of a catalog field.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    #[default]
    String,
    Number,
    Bool,
    Ip,
    Timestamp,
    /// A fixed object whose children are listed separately.
    Object,
    /// An object with arbitrary keys and string values.
    Map,
    /// Arbitrary JSON below: sub-paths and `**` are allowed.
    Any,
}

/// What the checker learned of a compared field from the source catalog.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FieldInfo {
    pub ty: FieldType,
    /// Per segment: whether the value at that prefix is an array (Splunk `{}`).
    pub arrays: Vec<bool>,
    /// True when the path lies below an `any` field, whose shape is not known.
    pub free_form: bool,
}

impl FieldInfo {
    /// The field, or a parent of it, holds an array.
    pub fn is_array(&self) -> bool {
        self.arrays.iter().any(|a| *a)
    }
}

/// `field [cased] op value(s)`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cmp {
    pub field: Field,
    /// The field's type and array-ness, as the checker resolved it.
    #[serde(skip)]
    pub info: FieldInfo,
    pub op: Op,
    pub cased: bool,
    /// With several values: `true` means every value must match (`all [..]`),
    /// `false` that one is enough (`in [..]`, `any [..]`).
    pub all: bool,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Eq,
    Ne,
    StartsWith,
    EndsWith,
    Contains,
    Like,
    Matches,
    Exists,
    Lt,
    Le,
    Gt,
    Ge,
    Cidr,
}

impl Op {
    pub fn keyword(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::StartsWith => "startswith",
            Op::EndsWith => "endswith",
            Op::Contains => "contains",
            Op::Like => "like",
            Op::Matches => "matches",
            Op::Exists => "exists",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Cidr => "cidr",
        }
    }
    pub fn is_numeric(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    /// A regex in the portable subset (checked by the checker), matched as a
    /// substring search.
    Regex(String),
    /// A `like` pattern, tokenised once by the checker.
    Glob(Glob),
    /// A `cidr` network, parsed once by the checker.
    Net(Net),
}

impl Value {
    /// The value as written in the rule, for the values that are text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Regex(s) => Some(s),
            Value::Glob(g) => Some(g.source()),
            Value::Net(n) => Some(n.source()),
            Value::Num(_) | Value::Bool(_) => None,
        }
    }
    /// The value as the text an engine compares it as.
    pub fn text(&self) -> String {
        match self {
            Value::Num(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => other.as_str().unwrap_or_default().to_string(),
        }
    }
}

/// One token of a `like` glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobTok {
    /// `*`: any run of characters, the empty one included.
    Any,
    /// `?`: exactly one character.
    One,
    /// A character matched as itself (`\*`, `\?` and `\\` are literals).
    Lit(char),
}

/// A `like` pattern: whole-value glob with `*`, `?` and `\` escapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    source: String,
    tokens: Vec<GlobTok>,
}

impl Glob {
    /// Tokenise a glob, or say why it is not one.
    pub fn parse(source: &str) -> Result<Glob, String> {
        let mut tokens = Vec::new();
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => GlobTok::Any,
                '?' => GlobTok::One,
                '\\' => match chars.next() {
                    Some(n) => GlobTok::Lit(n),
                    None => return Err("the glob ends in a lone backslash".into()),
                },
                c => GlobTok::Lit(c),
            });
        }
        Ok(Glob {
            source: source.to_string(),
            tokens,
        })
    }
    /// The glob as written in the rule.
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn tokens(&self) -> &[GlobTok] {
        &self.tokens
    }
}

impl Serialize for Glob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// A `cidr` network as written and as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Net {
    source: String,
    net: ipnet::IpNet,
}

impl Net {
    pub fn parse(source: &str) -> Result<Net, String> {
        source
            .parse::<ipnet::IpNet>()
            .map(|net| Net {
                source: source.to_string(),
                net,
            })
            .map_err(|e| e.to_string())
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn net(&self) -> &ipnet::IpNet {
        &self.net
    }
}

impl Serialize for Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// A dotted path into the canonical event; `**` reaches a key at any depth.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Field(pub Vec<Seg>);

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Seg {
    Key(String),
    AnyDepth,
}

impl Field {
    pub fn keys(&self) -> impl Iterator<Item = Option<&str>> {
        self.0.iter().map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::AnyDepth => None,
        })
    }
    pub fn has_any_depth(&self) -> bool {
        self.0.iter().any(|s| matches!(s, Seg::AnyDepth))
    }
    /// The plain dotted name (`a.b.c`, `**` for any depth), as written in catalogs.
    pub fn dotted(&self) -> String {
        self.keys()
            .map(|k| k.unwrap_or("**"))
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match seg {
                Seg::AnyDepth => f.write_str("**")?,
                Seg::Key(k) if is_plain_key(k) => f.write_str(k)?,
                Seg::Key(k) => write!(f, "`{k}`")?,
            }
        }
        Ok(())
    }
}

pub fn is_plain_key(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '@')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '@')
}

/// Fully parenthesised form, so precedence is visible in tests and `detc ir`.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(xs) | Expr::Or(xs) => {
                let op = if matches!(self, Expr::And(_)) {
                    " and "
                } else {
                    " or "
                };
                f.write_str("(")?;
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str(")")
            }
            Expr::Not(x) => write!(f, "(not {x})"),
            Expr::Ref(n) => f.write_str(n),
            Expr::Cmp(c) => write!(f, "{c}"),
        }
    }
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.field)?;
        if self.cased {
            f.write_str(" cased")?;
        }
        if self.op == Op::Exists {
            return f.write_str(" exists");
        }
        let show = |v: &Value| match v {
            Value::Str(_) | Value::Glob(_) | Value::Net(_) => format!("{:?}", v.text()),
            Value::Regex(r) => format!("/{r}/"),
            other => other.text(),
        };
        if self.values.len() == 1 {
            write!(f, " {} {}", self.op.keyword(), show(&self.values[0]))
        } else if self.op == Op::Eq && !self.all {
            let list: Vec<String> = self.values.iter().map(show).collect();
            write!(f, " in [{}]", list.join(", "))
        } else {
            let list: Vec<String> = self.values.iter().map(show).collect();
            let q = if self.all { "all" } else { "any" };
            write!(f, " {} {q} [{}]", self.op.keyword(), list.join(", "))
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Output {
    pub group_by: Vec<Field>,
    pub values: Vec<Aliased>,
    /// Output renames, applied after aggregation.
    pub rename: Vec<(Field, String)>,
    pub title: Option<Template>,
    pub dedup_minutes: Option<u32>,
    pub schedule: Option<Schedule>,
    pub risk: Option<Risk>,
    pub summary: Vec<Field>,
    /// Add first/last seen times to aggregates (Splunk `min(_time)`/`max(_time)`).
    pub time_range: bool,
}

impl Output {
    /// The name a field carries in the alert: its alias or rename, else its path.
    pub fn output_name(&self, field: &Field) -> String {
        if let Some((_, to)) = self.rename.iter().find(|(f, _)| f == field) {
            return to.clone();
        }
        if let Some(a) = self.values.iter().find(|a| &a.field == field) {
            if let Some(alias) = &a.alias {
                return alias.clone();
            }
        }
        field.dotted()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Aliased {
    pub field: Field,
    pub alias: Option<String>,
}

/// `"text {field.path} text"`: literal text and field references.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Template(pub Vec<TemplatePart>);

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum TemplatePart {
    Text(String),
    Field(Field),
}

#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub cron: String,
    pub earliest: String,
    pub latest: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Risk {
    pub score: u32,
    pub impact: u32,
    pub confidence: u32,
    /// Refers to output names (after alias/rename) as `{name}`.
    pub message: Template,
    /// Output name -> risk object type (`user`, `system`, `other`).
    pub objects: Vec<(String, String)>,
    /// Output name -> threat object type (`ip_address`, ...).
    pub threats: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestCase {
    pub name: String,
    pub platform: String,
    pub expect: Expectation,
    /// Shared by the rules that test against the same event file.
    pub event: std::sync::Arc<serde_json::Value>,
    /// Where the event came from: `inline` or the file path as written.
    pub origin: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Expectation {
    pub matched: bool,
    /// With `expect match with [..]`: exactly these indicators must match.
    pub indicators: Option<Vec<String>>,
}

/// The IR as a YAML value, enums as single-key maps (`detc ir` writes it
/// with the PyYAML-safe writer, `backend::yaml`).
pub fn to_value(rule: &Rule) -> Result<serde_yaml::Value, serde_yaml::Error> {
    serde_yaml::with::singleton_map_recursive::serialize(rule, serde_yaml::value::Serializer)
}

/// The IR as serde_yaml writes it: a canonical text for comparisons.
pub fn to_yaml(rule: &Rule) -> Result<String, serde_yaml::Error> {
    let mut buf = Vec::new();
    let mut ser = serde_yaml::Serializer::new(&mut buf);
    serde_yaml::with::singleton_map_recursive::serialize(rule, &mut ser)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}
