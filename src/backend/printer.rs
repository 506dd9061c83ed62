//! The one precedence-aware expression printer. A target supplies a
//! [`Dialect`]: its operator tokens, how one comparison is written (with the
//! target's quoting and escaping), and what it cannot express.

use crate::ir::{Cmp, Detection, Expr};

/// How a target writes boolean structure and comparisons.
pub trait Dialect {
    fn and_op(&self) -> &str {
        " and "
    }
    fn or_op(&self) -> &str {
        " or "
    }
    fn not_prefix(&self) -> &str {
        "not "
    }
    /// Parenthesise every nested `and`/`or` group, whatever the precedence
    /// (Splunk's search command evaluates OR before AND).
    fn always_parenthesise(&self) -> bool {
        false
    }
    /// Print a `let` by name instead of inlining it (`None`: inline).
    fn reference(&self, _name: &str) -> Option<String> {
        None
    }
    /// `not` takes its operand in parentheses whatever its precedence
    /// (KQL's `not()` is a function; ES|QL reads `NOT a == b` less clearly).
    fn not_parenthesises(&self) -> bool {
        false
    }
    /// One comparison, or why the target cannot express it.
    fn cmp(&self, c: &Cmp) -> Result<String, String>;
    /// One comparison below a `not` (`negated`) or not. Targets with SQL's
    /// three-valued logic, where a comparison on an absent field is null and
    /// `not null` is null, override this to make the comparison two-valued
    /// there, as the language's "an absent field satisfies no comparison"
    /// requires.
    fn cmp_in(&self, c: &Cmp, negated: bool) -> Result<String, String> {
        let _ = negated;
        self.cmp(c)
    }
}

/// A construct the dialect refused: the comparison as written and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Unprintable {
    pub construct: String,
    pub reason: String,
}

const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;
const ATOM: u8 = 4;

/// Print `expr` of `det` in dialect `d`.
pub fn print(d: &dyn Dialect, det: &Detection, expr: &Expr) -> Result<String, Unprintable> {
    Ok(print_level(d, det, expr, false)?.0)
}

fn print_level(
    d: &dyn Dialect,
    det: &Detection,
    expr: &Expr,
    negated: bool,
) -> Result<(String, u8), Unprintable> {
    match expr {
        Expr::Cmp(c) => d
            .cmp_in(c, negated)
            .map(|s| (s, ATOM))
            .map_err(|reason| Unprintable {
                construct: c.to_string(),
                reason,
            }),
        Expr::Ref(name) => match d.reference(name) {
            Some(s) => Ok((s, ATOM)),
            None => match det.let_expr(name) {
                Some(e) => print_level(d, det, e, negated),
                None => Err(Unprintable {
                    construct: name.clone(),
                    reason: "unknown name".into(),
                }),
            },
        },
        Expr::Not(inner) => {
            let (s, level) = print_level(d, det, inner, true)?;
            let s = if level < NOT || d.not_parenthesises() {
                format!("({s})")
            } else {
                s
            };
            Ok((format!("{}{s}", d.not_prefix()), NOT))
        }
        Expr::And(xs) | Expr::Or(xs) => {
            let (level, op) = if matches!(expr, Expr::And(_)) {
                (AND, d.and_op())
            } else {
                (OR, d.or_op())
            };
            if xs.len() == 1 {
                return print_level(d, det, &xs[0], negated);
            }
            let mut parts = Vec::with_capacity(xs.len());
            for x in xs {
                let (s, l) = print_level(d, det, x, negated)?;
                let wrap = l < level || (d.always_parenthesise() && l < NOT && l != level);
                parts.push(if wrap { format!("({s})") } else { s });
            }
            Ok((parts.join(op), level))
        }
    }
}

/// The top-level conjuncts of `e`, for one per line.
pub fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::And(xs) => xs.iter().flat_map(conjuncts).collect(),
        Expr::Or(xs) if xs.len() == 1 => conjuncts(&xs[0]),
        other => vec![other],
    }
}

/// `expr` of `det`, its lets inlined, as its top-level conjuncts printed
/// one by one (a disjunction in parentheses) and joined by `sep`.
pub fn print_conjuncts(
    d: &dyn Dialect,
    det: &Detection,
    expr: &Expr,
    sep: &str,
) -> Result<String, Unprintable> {
    let inlined = det.inlined(expr);
    let parts = conjuncts(&inlined)
        .into_iter()
        .map(|c| {
            let s = print(d, det, c)?;
            Ok(match c {
                Expr::Or(xs) if xs.len() > 1 => format!("({s})"),
                _ => s,
            })
        })
        .collect::<Result<Vec<_>, Unprintable>>()?;
    Ok(parts.join(sep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Field, Op, Seg, Value};

    struct Plain;
    impl Dialect for Plain {
        fn cmp(&self, c: &Cmp) -> Result<String, String> {
            Ok(c.field.dotted())
        }
    }
    struct Spl;
    impl Dialect for Spl {
        fn always_parenthesise(&self) -> bool {
            true
        }
        fn cmp(&self, c: &Cmp) -> Result<String, String> {
            Ok(c.field.dotted())
        }
    }

    fn f(name: &str) -> Expr {
        Expr::Cmp(Cmp {
            field: Field(vec![Seg::Key(name.into())]),
            info: Default::default(),
            op: Op::Exists,
            cased: false,
            all: false,
            values: Vec::<Value>::new(),
        })
    }

    fn det() -> Detection {
        Detection {
            source: "s".into(),
            span: Default::default(),
            stem: "s".into(),
            platforms: vec![],
            lets: vec![],
            condition: f("x"),
            indicators: vec![],
            output: Default::default(),
        }
    }

    #[test]
    fn parenthesises_by_precedence() {
        let e = Expr::Or(vec![
            Expr::And(vec![f("a"), f("b")]),
            Expr::Not(Box::new(Expr::Or(vec![f("c"), f("d")]))),
        ]);
        assert_eq!(
            print(&Plain, &det(), &e).unwrap(),
            "a and b or not (c or d)"
        );
        assert_eq!(
            print(&Spl, &det(), &e).unwrap(),
            "(a and b) or not (c or d)"
        );
        let e = Expr::And(vec![Expr::Or(vec![f("a"), f("b")]), f("c")]);
        assert_eq!(print(&Plain, &det(), &e).unwrap(), "(a or b) and c");
    }
}
