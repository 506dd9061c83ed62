//! Table dialects: a target whose comparisons are operator templates, as in
//! pySigma's `TextQueryBackend` or PRQL's operator table. A target module
//! fills an [`Ops`] table (a `None` entry means "this target has no such
//! form", reported as unsupported with the reason) and answers the few
//! questions of [`Columns`]: how a canonical field is read, and how a
//! string, number, glob or regex is written. [`Table`] turns both into a
//! [`Dialect`] for the shared printer; the match over operators below is
//! exhaustive, so a new operator fails to compile here until every table
//! target has a form for it.
//!
//! Placeholders in templates: `{f}` the field as text, `{n}` the field as a
//! number, `{x}` the field as stored, `{v}` one value, `{vs}` several values
//! joined by `, `, `{g}` a presence test and `{c}` the comparison it guards.

use super::printer::Dialect;
use crate::ir::{Cmp, Glob, Op, Value};

/// The case-insensitive (`folded`) and case-sensitive (`cased`) template of
/// one string operator.
#[derive(Debug, Clone, Copy)]
pub struct Cased {
    pub folded: Option<&'static str>,
    pub cased: Option<&'static str>,
}

/// A target's operator table.
#[derive(Debug, Clone, Copy)]
pub struct Ops {
    pub target: &'static str,
    pub and: &'static str,
    pub or: &'static str,
    pub not: &'static str,
    /// `f == v` on text.
    pub eq: Cased,
    /// `f in [v, ...]` on text, as one list test.
    pub eq_any: Cased,
    /// `f != v` on text (the presence the language requires is added).
    pub ne: Cased,
    pub starts_with: Cased,
    pub ends_with: Cased,
    pub contains: Cased,
    /// `{v}` is the target's rendering of the glob ([`Columns::glob`]).
    pub like: Cased,
    /// `{v}` is the target's rendering of the regex ([`Columns::regex`]).
    pub matches: Cased,
    pub num_eq: Option<&'static str>,
    pub num_ne: Option<&'static str>,
    /// `f == true` on a boolean field (`{v}` is `true` or `false`); on
    /// other fields a boolean compares as the text "true"/"false".
    pub bool_eq: Option<&'static str>,
    pub bool_ne: Option<&'static str>,
    pub lt: Option<&'static str>,
    pub le: Option<&'static str>,
    pub gt: Option<&'static str>,
    pub ge: Option<&'static str>,
    /// `{f}` against an IPv4 network `{v}`, and an IPv6 one.
    pub cidr4: Option<&'static str>,
    pub cidr6: Option<&'static str>,
    /// A comparison made two-valued by a presence test: `({g} and {c})`.
    pub guard: &'static str,
}

/// A canonical field as a target's query reads it.
#[derive(Debug, Clone)]
pub struct Column {
    /// The field as stored (`ObjectRef.resource`, `source.ip`).
    pub raw: String,
    /// The field as text (`tostring(ObjectRef.resource)`, `Verb`).
    pub text: String,
    /// The field holds booleans: compare them with `bool_eq`/`bool_ne`.
    pub boolean: bool,
    /// The field as a number, or why it cannot be read as one.
    pub number: Result<String, String>,
    /// A test for presence (`isnotempty(Verb)`).
    pub exists: String,
    /// Presence tests that make a text or a numeric comparison two-valued
    /// under `not` (`None`: it is two-valued already).
    pub text_guard: Option<String>,
    pub num_guard: Option<String>,
}

/// What a table target supplies besides its [`Ops`].
pub trait Columns {
    fn ops(&self) -> &'static Ops;
    /// The field of a comparison, or why this target cannot read it.
    fn column(&self, c: &Cmp) -> Result<Column, String>;
    /// A string literal, or why the value cannot be written.
    fn string(&self, s: &str) -> Result<String, String>;
    /// The literal a text operator's template takes for `s`: by default the
    /// string itself; a target that folds case by lower-casing the field
    /// lower-cases the value, one that tests substrings with wildcards
    /// wraps it.
    fn value(&self, op: Op, s: &str, cased: bool) -> Result<String, String> {
        let _ = (op, cased);
        self.string(s)
    }
    fn number(&self, n: &serde_json::Number) -> Result<String, String>;
    /// The literal the `like` template takes for a glob.
    fn glob(&self, glob: &Glob, cased: bool) -> Result<String, String>;
    /// The literal the `matches` template takes for a portable regex.
    fn regex(&self, re: &str, cased: bool) -> Result<String, String>;
    /// Whether a case-insensitive value must be written as a case-sensitive
    /// regex with its letters' partners spelled out ([`spelled_out`]): by
    /// default when it has a letter beyond ASCII that has case.
    fn spells(&self, s: &str) -> bool {
        crate::fold::has_cased_non_ascii(s)
    }
}

/// A [`Columns`] target as a [`Dialect`] of the shared printer.
pub struct Table<'a, C: Columns>(pub &'a C);

/// `template` with its placeholders replaced in one pass, so a field or a
/// value that itself holds `{v}` is never expanded again.
fn expand(template: &str, slot: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match tail
            .find('}')
            .and_then(|j| slot(&tail[1..j]).map(|s| (j, s)))
        {
            Some((j, s)) => {
                out.push_str(&s);
                rest = &tail[j + 1..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn fill(template: &str, col: &Column, num: &str, v: &str) -> String {
    expand(template, |name| match name {
        "f" => Some(col.text.clone()),
        "x" => Some(col.raw.clone()),
        "n" => Some(num.to_string()),
        "v" | "vs" => Some(v.to_string()),
        _ => None,
    })
}

fn guarded(template: &str, g: &str, c: &str) -> String {
    expand(template, |name| match name {
        "g" => Some(g.to_string()),
        "c" => Some(c.to_string()),
        _ => None,
    })
}

/// How a comparison reads its field: as text or as a number.
#[derive(Clone, Copy, PartialEq)]
enum Reading {
    Text,
    Number,
    Presence,
}

impl<C: Columns> Table<'_, C> {
    fn pick(&self, forms: Cased, cased: bool, c: &Cmp) -> Result<&'static str, String> {
        let t = if cased { forms.cased } else { forms.folded };
        t.ok_or_else(|| {
            format!(
                "{} has no {}`{}` comparison",
                self.0.ops().target,
                if cased {
                    "case-sensitive "
                } else {
                    "case-insensitive "
                },
                c.op.keyword()
            )
        })
    }

    fn need(&self, t: Option<&'static str>, what: &str) -> Result<&'static str, String> {
        t.ok_or_else(|| format!("{} has no {what}", self.0.ops().target))
    }

    /// `parts` joined by the comparison's quantifier, as one atom.
    fn join(&self, parts: Vec<String>, all: bool) -> String {
        let ops = self.0.ops();
        if parts.len() == 1 {
            return parts.into_iter().next().unwrap_or_default();
        }
        format!("({})", parts.join(if all { ops.and } else { ops.or }))
    }

    /// One value's comparison and how it read the field.
    fn one(&self, c: &Cmp, col: &Column, v: &Value) -> Result<(String, Reading), String> {
        let ops = self.0.ops();
        let text = |t: &'static str, lit: String| Ok((fill(t, col, "", &lit), Reading::Text));
        let num = |t: &'static str, n: &serde_json::Number| -> Result<(String, Reading), String> {
            let field = col.number.clone()?;
            Ok((fill(t, col, &field, &self.0.number(n)?), Reading::Number))
        };
        if let (Value::Bool(b), true, Op::Eq | Op::Ne) = (v, col.boolean, c.op) {
            let t = if c.op == Op::Eq {
                self.need(ops.bool_eq, "boolean `==`")?
            } else {
                self.need(ops.bool_ne, "boolean `!=`")?
            };
            return text(t, b.to_string());
        }
        // Elsewhere a boolean compares as exactly the text "true"/"false"
        // (JSON's spelling, as the language defines booleans on text leaves).
        let boolean = matches!(v, Value::Bool(_));
        let v = match v {
            Value::Bool(b) => &Value::Str(b.to_string()),
            v => v,
        };
        let cased = boolean || (c.cased && !matches!(v, Value::Num(_)));
        if let Some(re) = (!cased)
            .then(|| spelled_out(c.op, v, &|s| self.0.spells(s)))
            .flatten()
        {
            // Engines fold letters beyond ASCII each their own way: the
            // value's letters and their partners are written out, and the
            // pattern is matched case-sensitively.
            let m = text(self.pick(ops.matches, true, c)?, self.0.regex(&re, true)?)?;
            return if c.op == Op::Ne {
                Ok((format!("{}({})", ops.not.trim_end(), m.0), m.1))
            } else {
                Ok(m)
            };
        }
        match (c.op, v) {
            (Op::Eq, Value::Num(n)) => num(self.need(ops.num_eq, "numeric `==`")?, n),
            (Op::Ne, Value::Num(n)) => num(self.need(ops.num_ne, "numeric `!=`")?, n),
            (Op::Eq, Value::Str(s)) => {
                text(self.pick(ops.eq, cased, c)?, self.0.value(c.op, s, cased)?)
            }
            (Op::Ne, Value::Str(s)) => {
                text(self.pick(ops.ne, cased, c)?, self.0.value(c.op, s, cased)?)
            }
            (Op::StartsWith, Value::Str(s)) => text(
                self.pick(ops.starts_with, cased, c)?,
                self.0.value(c.op, s, cased)?,
            ),
            (Op::EndsWith, Value::Str(s)) => text(
                self.pick(ops.ends_with, cased, c)?,
                self.0.value(c.op, s, cased)?,
            ),
            (Op::Contains, Value::Str(s)) => text(
                self.pick(ops.contains, cased, c)?,
                self.0.value(c.op, s, cased)?,
            ),
            (Op::Like, Value::Glob(g)) => {
                text(self.pick(ops.like, cased, c)?, self.0.glob(g, cased)?)
            }
            (Op::Matches, Value::Regex(r)) => {
                text(self.pick(ops.matches, cased, c)?, self.0.regex(r, cased)?)
            }
            (Op::Lt, Value::Num(n)) => num(self.need(ops.lt, "`<`")?, n),
            (Op::Le, Value::Num(n)) => num(self.need(ops.le, "`<=`")?, n),
            (Op::Gt, Value::Num(n)) => num(self.need(ops.gt, "`>`")?, n),
            (Op::Ge, Value::Num(n)) => num(self.need(ops.ge, "`>=`")?, n),
            (Op::Cidr, Value::Net(net)) => {
                let t = match net.net() {
                    ipnet::IpNet::V4(_) => self.need(ops.cidr4, "IPv4 `cidr` test")?,
                    ipnet::IpNet::V6(_) => self.need(ops.cidr6, "IPv6 `cidr` test")?,
                };
                text(t, self.0.string(net.source())?)
            }
            (Op::Exists, _) => Ok((col.exists.clone(), Reading::Presence)),
            (op, v) => Err(format!(
                "`{}` with the value {} has no form in {}",
                op.keyword(),
                v.text(),
                ops.target
            )),
        }
    }

    /// `f in [..]` as one list test when every value is text.
    fn list(&self, c: &Cmp, col: &Column) -> Result<Option<String>, String> {
        if c.op != Op::Eq || c.all || c.values.len() < 2 {
            return Ok(None);
        }
        let ops = self.0.ops();
        let forms = if c.cased {
            ops.eq_any.cased
        } else {
            ops.eq_any.folded
        };
        let plain = |v: &Value| {
            matches!(v, Value::Str(_))
                && (c.cased || spelled_out(c.op, v, &|s| self.0.spells(s)).is_none())
        };
        let (Some(t), true) = (forms, c.values.iter().all(plain)) else {
            return Ok(None);
        };
        let items = c
            .values
            .iter()
            .map(|v| {
                self.0
                    .value(Op::Eq, v.as_str().unwrap_or_default(), c.cased)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(fill(t, col, "", &items.join(", "))))
    }
}

/// A case-insensitive comparison of `op` with `v` as a whole-value regex
/// (a search for `matches`) with every letter's case partners written out
/// (`crate::fold`), when `v` has letters outside ASCII that have partners.
/// `(.|\n)` is any character, in Rust, RE2 and Lucene alike.
/// `spells` says which values need it (by default [`Columns::spells`]).
pub fn spelled_out(op: Op, v: &Value, spells: &dyn Fn(&str) -> bool) -> Option<String> {
    use crate::fold::{self, Ascii};
    const ANY: &str = "(.|\\n)";
    match (op, v) {
        (Op::Eq | Op::Ne | Op::StartsWith | Op::EndsWith | Op::Contains, Value::Str(s))
            if spells(s) =>
        {
            let lit = fold::literal_regex(s, Ascii::Explicit);
            Some(match op {
                Op::StartsWith => format!("^{lit}{ANY}*$"),
                Op::EndsWith => format!("^{ANY}*{lit}$"),
                Op::Contains => format!("^{ANY}*{lit}{ANY}*$"),
                _ => format!("^{lit}$"),
            })
        }
        (Op::Like, Value::Glob(g)) if spells(g.source()) => {
            let mut re = String::from("^");
            for t in g.tokens() {
                match t {
                    crate::ir::GlobTok::Any => re.push_str(&format!("{ANY}*")),
                    crate::ir::GlobTok::One => re.push_str(ANY),
                    crate::ir::GlobTok::Lit(c) => fold::push_literal(*c, Ascii::Explicit, &mut re),
                }
            }
            re.push('$');
            Some(re)
        }
        (Op::Matches, Value::Regex(r)) if spells(r) || fold::regex_has_cased_non_ascii(r) => {
            fold::expand_regex(r, Ascii::Explicit)
        }
        _ => None,
    }
}

impl<C: Columns> Dialect for Table<'_, C> {
    fn and_op(&self) -> &str {
        self.0.ops().and
    }
    fn or_op(&self) -> &str {
        self.0.ops().or
    }
    fn not_prefix(&self) -> &str {
        self.0.ops().not
    }
    fn not_parenthesises(&self) -> bool {
        true
    }

    fn cmp(&self, c: &Cmp) -> Result<String, String> {
        self.cmp_in(c, false)
    }

    fn cmp_in(&self, c: &Cmp, negated: bool) -> Result<String, String> {
        let ops = self.0.ops();
        let col = self.0.column(c)?;
        if c.op == Op::Exists {
            return Ok(col.exists);
        }
        let guard = |text: String, reading: Reading| -> String {
            let g = match reading {
                Reading::Text => col.text_guard.as_ref(),
                Reading::Number => col.num_guard.as_ref(),
                Reading::Presence => None,
            };
            match g {
                Some(g) if negated => guarded(ops.guard, g, &text),
                _ => text,
            }
        };
        if let Some(list) = self.list(c, &col)? {
            return Ok(guard(list, Reading::Text));
        }
        let mut parts = Vec::with_capacity(c.values.len());
        let mut readings = Vec::with_capacity(c.values.len());
        for v in &c.values {
            let (s, r) = self.one(c, &col, v)?;
            parts.push(s);
            readings.push(r);
        }
        if c.op == Op::Ne {
            // The language's `!=` needs the field present; so does a
            // negated comparison, whatever the target's nulls do.
            let joined = self.join(parts, c.all);
            return Ok(guarded(ops.guard, &col.exists, &joined));
        }
        if negated {
            parts = parts
                .into_iter()
                .zip(readings)
                .map(|(p, r)| guard(p, r))
                .collect();
        }
        Ok(self.join(parts, c.all))
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn placeholders_expand_once() {
        let slot = |n: &str| match n {
            "f" => Some("x{v}".to_string()),
            "v" => Some("\"{f}\"".to_string()),
            _ => None,
        };
        assert_eq!(
            expand("{f} == {v} {other}", slot),
            "x{v} == \"{f}\" {other}"
        );
    }
}
