//! The portable regex subset: what means the same in Rust `regex`, Python
//! `re`, Lucene (Elastic) and PCRE (Splunk). Literals, classes `[..]`, `.`,
//! groups `( )`, alternation and the greedy quantifiers `* + ? {m,n}`.

use regex_syntax::ast::{self, Ast, ErrorKind};

/// `Ok(())` if `pattern` lies in the portable subset, else why not and a hint.
pub fn check(pattern: &str) -> Result<(), (String, &'static str)> {
    let parsed = ast::parse::ParserBuilder::new()
        .nest_limit(64)
        .build()
        .parse(pattern);
    let ast = match parsed {
        Ok(a) => a,
        Err(e) => {
            let why = match e.kind() {
                ErrorKind::UnsupportedLookAround => {
                    return Err((
                        "look-around is not portable (Lucene and Rust lack it)".into(),
                        HINT_LOOK,
                    ))
                }
                ErrorKind::UnsupportedBackreference => {
                    return Err(("back-references are not portable".into(), HINT_LOOK))
                }
                kind => kind.to_string(),
            };
            return Err((
                format!("invalid regex: {why}"),
                "check the pattern's brackets and escapes",
            ));
        }
    };
    walk(&ast)
}

const HINT_LOOK: &str = "rewrite with plain alternatives, or split into several conditions";

fn walk(a: &Ast) -> Result<(), (String, &'static str)> {
    match a {
        Ast::Empty(_) | Ast::Literal(_) | Ast::Dot(_) => match a {
            Ast::Literal(l) => literal(l),
            _ => Ok(()),
        },
        Ast::Flags(_) => Err((
            "inline flags such as `(?i)` are not portable (Lucene has none)".into(),
            "comparisons are case-insensitive by default; write `cased` for a case-sensitive one",
        )),
        Ast::Assertion(_) => Err((
            "anchors and boundaries (`^`, `$`, `\\b`) are not portable".into(),
            "a regex matches a substring; use `==`, `startswith` or `endswith` to anchor",
        )),
        Ast::ClassUnicode(_) | Ast::ClassPerl(_) => Err((
            "`\\d`, `\\w`, `\\s` and `\\p{..}` are not portable (Lucene lacks them)".into(),
            "write the class out, e.g. `[0-9]` or `[A-Za-z0-9_]`",
        )),
        Ast::ClassBracketed(c) => class_set(&c.kind),
        Ast::Repetition(r) => {
            if !r.greedy {
                return Err((
                    "lazy quantifiers (`*?`, `+?`) are not portable".into(),
                    "use a greedy quantifier",
                ));
            }
            walk(&r.ast)
        }
        Ast::Group(g) => match &g.kind {
            ast::GroupKind::CaptureIndex(_) => walk(&g.ast),
            _ => Err((
                "only plain groups `( )` are portable (no `(?:..)`, `(?P<name>..)` or flags)"
                    .into(),
                "use a plain group `( )`",
            )),
        },
        Ast::Alternation(alt) => alt.asts.iter().try_for_each(walk),
        Ast::Concat(c) => c.asts.iter().try_for_each(walk),
    }
}

fn literal(l: &ast::Literal) -> Result<(), (String, &'static str)> {
    match l.kind {
        ast::LiteralKind::Verbatim | ast::LiteralKind::Meta | ast::LiteralKind::Superfluous => {
            Ok(())
        }
        _ => Err((
            format!("the escape for {:?} is not portable", l.c),
            "write the character itself; only punctuation may be escaped",
        )),
    }
}

fn class_set(set: &ast::ClassSet) -> Result<(), (String, &'static str)> {
    match set {
        ast::ClassSet::BinaryOp(_) => Err((
            "class set operations are not portable".into(),
            "list the characters",
        )),
        ast::ClassSet::Item(item) => class_item(item),
    }
}

fn class_item(item: &ast::ClassSetItem) -> Result<(), (String, &'static str)> {
    use ast::ClassSetItem as I;
    match item {
        I::Empty(_) | I::Range(_) => Ok(()),
        I::Literal(l) => literal(l),
        I::Ascii(_) => Err((
            "POSIX classes `[[:alpha:]]` are not portable".into(),
            "write ranges such as `[a-z]`",
        )),
        I::Unicode(_) | I::Perl(_) => Err((
            "`\\d`, `\\w`, `\\s` and `\\p{..}` are not portable (Lucene lacks them)".into(),
            "write the class out, e.g. `[0-9]`",
        )),
        I::Bracketed(b) => class_set(&b.kind),
        I::Union(u) => u.items.iter().try_for_each(class_item),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn subset() {
        for ok in [
            "alpine|busybox",
            "(curl|wget)",
            "a[0-9]{2,3}b",
            "x\\.y",
            "[^a-z]+",
            "privileged.*true",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "(?i)x",
            "^x",
            "x$",
            "\\d+",
            "(?=x)",
            "(a)\\1",
            "(?:a)",
            "a*?",
            "\\bword",
            "[[:alpha:]]",
            "\\n",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
