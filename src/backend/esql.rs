//! The Elastic ES|QL backend: detection-rules TOML with `type = "esql"`,
//! one rule per detection (plus a companion per expressible indicator), on
//! the same integrations, field table and document policy as the EQL rules
//! ([`super::elastic`]); only the query differs, and it is a table dialect.
//!
//! `FROM <index> METADATA _id, _index, _version | WHERE ...`, then, when
//! the output block groups or collects values, `STATS ... BY` (an
//! aggregating ES|QL rule alerts once per result row; its columns follow
//! detection-rules' `Esql.` naming), and the `KEEP` detection-rules
//! requires.
//!
//! Semantics, operator by operator (Elasticsearch ES|QL reference for 9.1;
//! checked with esql-parser 9.1.3 and tests/validators/esql_eval.py):
//! - String comparisons are case-sensitive and ES|QL 9.1 has no `=~`: the
//!   language's default is `TO_LOWER(f) == "v"` with a lower-cased literal
//!   (Elasticsearch rewrites a `TO_LOWER` comparison with a literal that is
//!   not lower case into FALSE, elastic/elasticsearch#118870).
//! - `startswith` / `endswith`: `STARTS_WITH` / `ENDS_WITH`; `contains` and
//!   `like`: `LIKE` with `*`/`?` (a literal `*`, `?`, `\` escaped); `like`
//!   and `LIKE` both match the whole value.
//! - `matches`: `RLIKE`, a Lucene regex over the whole value, wrapped
//!   `.*( ).*`; without `cased` over `TO_LOWER(f)` with the pattern's
//!   letters lower-cased (a class range mixing cases is refused).
//! - Absent fields are null, and a comparison with null is null: under
//!   `not` each comparison gets `f IS NOT NULL AND` in front, so the
//!   language's "an absent field satisfies no comparison" holds.
//! - A multi-valued field makes every comparison null: array fields are
//!   unsupported (MV_CONTAINS is not in 9.1).
//! - Numbers only on numeric fields, booleans on boolean fields (or as the
//!   text "true"/"false" on keyword fields), `cidr` as `CIDR_MATCH` on ip
//!   fields (or the ip copy the ingest pipeline makes).

use super::elastic::{self, Ctx, Kind, Lang};
use super::printer::{self, Unprintable};
use super::table::{Cased, Column, Columns, Ops, Table};
use super::{Backend, BackendError, Loss, Rendered, Target};
use crate::ir::{Cmp, Detection, Expr, Op, Rule};

pub const TEMPLATES: &[(&str, &str)] = &[];

pub struct Esql;

const ESQL: Lang = Lang {
    name: "ES|QL",
    language: "esql",
    aggregates: true,
    lists_index: false,
    query,
};

/// What the ES|QL query keeps of `expr` (see [`super::elastic::Narrowed`]).
pub fn narrowed(
    det: &crate::ir::Detection,
    expr: &crate::ir::Expr,
) -> Result<super::elastic::Narrowed, Vec<(String, String)>> {
    super::elastic::narrowed_in(&ESQL, det, expr)
}

/// A double-quoted ES|QL string (see [`super::text::c_quoted`]).
pub fn esql_str(s: &str) -> Result<String, String> {
    super::text::c_quoted(s, "ES|QL")
}

/// Words an ES|QL expression reads as keywords.
const KEYWORDS: &[&str] = &[
    "and", "as", "asc", "by", "desc", "false", "first", "in", "is", "last", "like", "metadata",
    "not", "null", "nulls", "on", "or", "rlike", "true", "with",
];

/// An Elasticsearch field name in ES|QL: each dotted part plain when it is
/// an identifier, else in backquotes (a backquote doubled).
pub fn esql_field(name: &str) -> String {
    name.split('.')
        .map(|seg| {
            let mut chars = seg.chars();
            let plain = match chars.next() {
                Some(c) if c.is_ascii_alphabetic() => {
                    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                }
                Some('_' | '@') => {
                    !chars.as_str().is_empty()
                        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                }
                _ => false,
            } && !KEYWORDS.contains(&seg.to_ascii_lowercase().as_str());
            if plain {
                seg.to_string()
            } else {
                format!("`{}`", seg.replace('`', "``"))
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

const OPS: Ops = Ops {
    target: "ES|QL",
    and: " AND ",
    or: " OR ",
    not: "NOT ",
    eq: Cased {
        folded: Some("TO_LOWER({f}) == {v}"),
        cased: Some("{f} == {v}"),
    },
    eq_any: Cased {
        folded: Some("TO_LOWER({f}) IN ({vs})"),
        cased: Some("{f} IN ({vs})"),
    },
    ne: Cased {
        folded: Some("TO_LOWER({f}) != {v}"),
        cased: Some("{f} != {v}"),
    },
    starts_with: Cased {
        folded: Some("STARTS_WITH(TO_LOWER({f}), {v})"),
        cased: Some("STARTS_WITH({f}, {v})"),
    },
    ends_with: Cased {
        folded: Some("ENDS_WITH(TO_LOWER({f}), {v})"),
        cased: Some("ENDS_WITH({f}, {v})"),
    },
    contains: Cased {
        folded: Some("TO_LOWER({f}) LIKE {v}"),
        cased: Some("{f} LIKE {v}"),
    },
    like: Cased {
        folded: Some("TO_LOWER({f}) LIKE {v}"),
        cased: Some("{f} LIKE {v}"),
    },
    matches: Cased {
        folded: Some("TO_LOWER({f}) RLIKE {v}"),
        cased: Some("{f} RLIKE {v}"),
    },
    num_eq: Some("{n} == {v}"),
    num_ne: Some("{n} != {v}"),
    bool_eq: Some("{x} == {v}"),
    bool_ne: Some("{x} != {v}"),
    lt: Some("{n} < {v}"),
    le: Some("{n} <= {v}"),
    gt: Some("{n} > {v}"),
    ge: Some("{n} >= {v}"),
    cidr4: Some("CIDR_MATCH({x}, {v})"),
    cidr6: Some("CIDR_MATCH({x}, {v})"),
    guard: "({g} AND {c})",
};

impl Columns for Ctx {
    fn ops(&self) -> &'static Ops {
        &OPS
    }

    fn column(&self, c: &Cmp) -> Result<Column, String> {
        let f = if c.op == Op::Cidr {
            self.resolve_ip(&c.field)?
        } else {
            self.resolve(&c.field)?
        };
        if (f.array || c.info.is_array()) && c.op != Op::Exists {
            return Err(format!(
                "`{}` is an array: ES|QL makes every comparison on a multi-valued field null (MV_CONTAINS is not in 9.1)",
                c.field
            ));
        }
        if f.scale.is_some() {
            return Err(format!(
                "`{}` is stored scaled (`{}`): detc does not scale ES|QL comparisons",
                c.field, f.name
            ));
        }
        if let Some(why) = elastic::coercion_loss(self, &f, c) {
            return Err(why);
        }
        let name = esql_field(&f.name);
        let present = format!("{name} IS NOT NULL");
        let text = match f.kind {
            Kind::Keyword => name.clone(),
            Kind::Ip | Kind::Integer | Kind::Float | Kind::Boolean => format!("TO_STRING({name})"),
            Kind::Date if c.op == Op::Exists => name.clone(),
            Kind::Date => {
                return Err(format!(
                    "`{}` ({}) is a date field: Elasticsearch compares instants, the language compares text",
                    c.field, f.name
                ))
            }
        };
        let number = match f.kind {
            Kind::Integer | Kind::Float => Ok(name.clone()),
            _ => Err(format!(
                "`{}` ({}) is not numeric in the mapping: ES|QL would compare a number with its text",
                c.field, f.name
            )),
        };
        Ok(Column {
            raw: name,
            text,
            boolean: f.kind == Kind::Boolean,
            number,
            exists: present.clone(),
            text_guard: Some(present.clone()),
            num_guard: Some(present),
        })
    }

    fn string(&self, s: &str) -> Result<String, String> {
        esql_str(s)
    }

    fn value(&self, op: Op, s: &str, cased: bool) -> Result<String, String> {
        let s = if cased {
            s.to_string()
        } else {
            s.to_lowercase()
        };
        match op {
            Op::Contains => esql_str(&format!("*{}*", elastic::wildcard_literal(&s))),
            _ => esql_str(&s),
        }
    }

    fn number(&self, n: &serde_json::Number) -> Result<String, String> {
        elastic::eql_number(n, None, false)
    }

    fn glob(&self, glob: &crate::ir::Glob, cased: bool) -> Result<String, String> {
        // The language's glob is LIKE's syntax: `*`, `?`, and `\` escaping them.
        let g = glob.source();
        esql_str(&if cased {
            g.to_string()
        } else {
            g.to_lowercase()
        })
    }

    /// Every value beyond ASCII: `TO_LOWER` is Java's full lower-casing, and
    /// Elasticsearch's rewrite of it into an insensitive match folds ASCII
    /// only; a case-sensitive `RLIKE` with the partners written out means
    /// the same in both.
    fn spells(&self, s: &str) -> bool {
        !s.is_ascii()
    }

    fn regex(&self, re: &str, cased: bool) -> Result<String, String> {
        let lucene = if cased {
            elastic::lucene_regex(re)?
        } else {
            elastic::lucene_regex_folded(re)?
        };
        esql_str(&lucene)
    }
}

/// An output column name in detection-rules' `Esql.` convention.
fn esql_column(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("Esql.{safe}")
}

/// The ES|QL query of `expr` in detection `det`.
fn query(
    ctx: &Ctx,
    det: &Detection,
    expr: &Expr,
    losses: &mut Vec<Loss>,
) -> Result<String, Unprintable> {
    let condition = printer::print_conjuncts(&Table(ctx), det, expr, "\n    AND ")?;
    let mut lines = vec![
        format!("FROM {} METADATA _id, _index, _version", ctx.table.index),
        format!("| WHERE {condition}"),
    ];
    let o = &det.output;
    // An output field the integration does not map cannot be returned:
    // the rule groups or collects without it, which changes its alerts.
    let mut field = |f: &crate::ir::Field, what: &str| -> Option<String> {
        match ctx.output_field(f) {
            Ok(name) => Some(esql_field(&name)),
            Err(reason) => {
                losses.push(Loss::unsupported(
                    &det.stem,
                    format!("output.{what} {f}"),
                    format!(
                        "{reason}; the ES|QL rule {} without it",
                        if what == "group_by" {
                            "groups"
                        } else {
                            "collects values"
                        }
                    ),
                ));
                None
            }
        }
    };
    if o.group_by.is_empty() && o.values.is_empty() {
        lines.push("| KEEP _id, _version, _index, *".to_string());
        return Ok(lines.join("\n"));
    }
    let mut aggs = vec!["Esql.count = COUNT(*)".to_string()];
    if o.time_range {
        aggs.push("Esql.first_seen = MIN(@timestamp)".to_string());
        aggs.push("Esql.last_seen = MAX(@timestamp)".to_string());
    }
    for a in &o.values {
        if let Some(name) = field(&a.field, "values") {
            aggs.push(format!(
                "{}_values = VALUES({name})",
                esql_column(&o.output_name(&a.field))
            ));
        }
    }
    let mut by: Vec<String> = Vec::new();
    for f in &o.group_by {
        // Two canonical fields can live in one stored text (a projection's segments).
        if let Some(name) = field(f, "group_by").filter(|n| !by.contains(n)) {
            by.push(name);
        }
    }
    lines.push(if by.is_empty() {
        format!("| STATS {}", aggs.join(", "))
    } else {
        format!("| STATS {}\n    BY {}", aggs.join(", "), by.join(", "))
    });
    let mut keep = vec!["Esql.*".to_string()];
    keep.extend(by);
    lines.push(format!("| KEEP {}", keep.join(", ")));
    Ok(lines.join("\n"))
}

impl Backend for Esql {
    fn target(&self) -> Target {
        Target::Esql
    }

    fn render(&self, rule: &Rule) -> Result<Rendered, BackendError> {
        elastic::render_rule(&ESQL, rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_strings() {
        assert_eq!(esql_field("kubernetes.audit.verb"), "kubernetes.audit.verb");
        assert_eq!(esql_field("@timestamp"), "@timestamp");
        assert_eq!(esql_field("a.by.c-d.1x"), "a.`by`.`c-d`.`1x`");
        assert_eq!(esql_field("a`b"), "`a``b`");
        assert_eq!(esql_str("a\"b\\c\n").unwrap(), r#""a\"b\\c\n""#);
        assert!(esql_str("\u{1}").is_err());
        assert_eq!(esql_column("user.groups"), "Esql.user_groups");
    }
}
