//! The surface syntax tree, with byte spans into the source text.

use crate::diag::Span;

#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

#[derive(Debug, Clone)]
pub struct File {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Spanned<String>,
    pub settings: Vec<Setting>,
    pub sources: Vec<Source>,
    pub tests: Vec<Test>,
    pub span: Span,
}

/// `key = value`
#[derive(Debug, Clone)]
pub struct Setting {
    pub key: Spanned<String>,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ValueKind {
    Str(String),
    /// `"""..."""`, already de-indented.
    Text(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
    Date(String),
    Duration(String),
    /// A bare word: enum value, ATT&CK id, field path.
    Word(String),
    Regex(String),
    List(Vec<ListItem>),
    Map(Vec<(Spanned<String>, Value)>),
}

impl ValueKind {
    pub fn describe(&self) -> &'static str {
        match self {
            ValueKind::Str(_) => "a string",
            ValueKind::Text(_) => "a text block",
            ValueKind::Num(_) => "a number",
            ValueKind::Bool(_) => "a boolean",
            ValueKind::Null => "null",
            ValueKind::Date(_) => "a date",
            ValueKind::Duration(_) => "a duration",
            ValueKind::Word(_) => "a bare word",
            ValueKind::Regex(_) => "a regex",
            ValueKind::List(_) => "a list",
            ValueKind::Map(_) => "a map",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ListItem {
    pub value: Value,
    pub alias: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub name: Spanned<String>,
    pub platforms: Vec<Spanned<String>>,
    pub lets: Vec<Let>,
    pub matches: Vec<Expr>,
    pub indicators: Vec<Indicator>,
    pub outputs: Vec<Spanned<Vec<Setting>>>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Let {
    pub name: Spanned<String>,
    pub expr: Expr,
}

#[derive(Debug, Clone)]
pub struct Indicator {
    pub name: Spanned<String>,
    pub severity: Option<Spanned<String>>,
    pub expr: Expr,
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    /// Operands of a chain `a and b and c` (n-ary, so long chains stay flat).
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Ref(String),
    /// `any of [a, b]` (`all == false`) / `all of [a, b]`.
    Quantified {
        all: bool,
        names: Vec<Spanned<String>>,
    },
    Cmp(Cmp),
}

#[derive(Debug, Clone)]
pub struct Cmp {
    pub field: Spanned<Vec<FieldSeg>>,
    pub cased: bool,
    pub op: Spanned<CmpOp>,
    /// `Some(true)` for `all [..]`, `Some(false)` for `any [..]` / `in [..]`.
    pub quantifier: Option<bool>,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldSeg {
    Key(String),
    AnyDepth,
    /// `$name`: a path alias of the source catalog (without the `$`).
    Alias(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    StartsWith,
    EndsWith,
    Contains,
    Like,
    Matches,
    Cidr,
    Exists,
}

#[derive(Debug, Clone)]
pub struct Test {
    pub name: Spanned<String>,
    pub platform: Spanned<String>,
    pub expect_match: bool,
    pub indicators: Option<Vec<Spanned<String>>>,
    pub event: TestEvent,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum TestEvent {
    Inline(Spanned<serde_json::Value>),
    File(Spanned<String>),
}
