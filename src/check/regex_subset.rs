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
    walk(&ast)?;
    sizes(pattern, &ast)
}

/// The evaluator's compiled-size limit (`RegexBuilder::size_limit`).
pub const EVAL_SIZE_LIMIT: usize = 1 << 22;

/// Whether the evaluator can build a `like` glob's regex (within
/// [`EVAL_SIZE_LIMIT`], case-insensitive, the larger form): a glob it could
/// not build would match nothing in detc and something in the targets.
pub fn glob_builds(glob: &crate::ir::Glob) -> bool {
    regex::RegexBuilder::new(&crate::eval::glob_to_regex(glob))
        .case_insensitive(true)
        .size_limit(EVAL_SIZE_LIMIT)
        .build()
        .is_ok()
}

/// Lucene's default limit on determinized states (`RegexpQuery`,
/// `Operations.DEFAULT_DETERMINIZE_WORK_LIMIT` in older releases:
/// `maxDeterminizedStates = 10000`).
const LUCENE_STATES: usize = 10_000;

/// A pattern that checks must also build everywhere: within the evaluator's
/// size limit, and within the states Lucene determinizes for the
/// `.*( ).*` form Elastic runs (bounded by [`words_bound`], else estimated
/// from a DFA over bytes, which has at least as many states as Lucene's over
/// code points for ASCII text). `ast` is `pattern` parsed.
///
/// Building the automata is the slow part of checking a rule, and rules
/// share their regexes: each pattern is measured once per process.
#[cached::proc_macro::cached(key = "String", convert = "{ pattern.to_string() }")]
fn sizes(pattern: &str, ast: &Ast) -> Result<(), (String, &'static str)> {
    const HINT: &str = "simplify the pattern: fewer bounded repeats of classes, or split it into several conditions";
    regex::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(EVAL_SIZE_LIMIT)
        .build()
        .map_err(|_| {
            (
                format!(
                    "the compiled regex is over the {EVAL_SIZE_LIMIT}-byte limit detc evaluates"
                ),
                HINT,
            )
        })?;
    let too_big = || {
        (
            format!("the regex needs more than {LUCENE_STATES} automaton states, Lucene's limit: Elastic would reject the query"),
            HINT,
        )
    };
    if words_bound(pattern, ast).is_some_and(|n| n <= LUCENE_STATES) {
        return Ok(());
    }
    match dfa_states(pattern) {
        Some(n) if n <= LUCENE_STATES => Ok(()),
        _ => Err(too_big()),
    }
}

/// An upper bound on the states of `.*(R).*` when `R` is an ASCII pattern
/// of words only (literals, groups, alternations): a state per prefix of
/// R's words, before and after a match (the Aho-Corasick bound), and 16
/// for the states every automaton has (start, dead, quit, end of input; the
/// DFA of `x` has 9). Cheap where building the automaton is not.
fn words_bound(pattern: &str, ast: &Ast) -> Option<usize> {
    if !pattern.is_ascii() {
        return None;
    }
    let (_, len) = finite(ast)?;
    Some(len.saturating_add(1).saturating_mul(2).saturating_add(16))
}

/// The states of the unminimised DFA of `.*(pattern).*`, case-insensitive;
/// `None` past [`LUCENE_STATES`]' budget.
fn dfa_states(pattern: &str) -> Option<usize> {
    use regex_automata::dfa::dense;
    // An ASCII pattern is measured over bytes without Unicode, as Lucene
    // reads it: `.` one transition, the flag folding ASCII letters only. With
    // Unicode, `.` and `(?i)` bring in UTF-8 sequences Lucene's automaton
    // (over code points) does not have.
    let ascii = pattern.is_ascii();
    let wrapped = if ascii {
        format!("(?is-u)^.*({pattern}).*$")
    } else {
        format!("(?is)^.*({pattern}).*$")
    };
    // A dense DFA state is `stride` transitions of 4 bytes.
    let budget = LUCENE_STATES * 256 * 4;
    let dfa = dense::Builder::new()
        .syntax(regex_automata::util::syntax::Config::new().utf8(!ascii))
        .thompson(regex_automata::nfa::thompson::Config::new().utf8(!ascii))
        .configure(
            dense::Config::new()
                .minimize(false)
                .determinize_size_limit(Some(budget))
                .dfa_size_limit(Some(budget)),
        )
        .build(&wrapped)
        .ok()?;
    Some(dfa.memory_usage() / (dfa.stride() * 4))
}

/// For a pattern of literals, groups and alternations only (a finite set
/// of words): how many words, and their total length (both saturating).
fn finite(a: &Ast) -> Option<(usize, usize)> {
    match a {
        Ast::Empty(_) => Some((1, 0)),
        Ast::Literal(_) => Some((1, 1)),
        Ast::Group(g) => finite(&g.ast),
        Ast::Alternation(x) => x.asts.iter().try_fold((0usize, 0usize), |(n, l), a| {
            let (m, k) = finite(a)?;
            Some((n.saturating_add(m), l.saturating_add(k)))
        }),
        // Every word of the first part with every word of the second.
        Ast::Concat(x) => x.asts.iter().try_fold((1usize, 0usize), |(n, l), a| {
            let (m, k) = finite(a)?;
            Some((
                n.saturating_mul(m),
                l.saturating_mul(m).saturating_add(k.saturating_mul(n)),
            ))
        }),
        _ => None,
    }
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
            if matches!(*r.ast, Ast::Repetition(_)) {
                return Err((
                    "a quantifier on a quantifier (`a*+`, `x{2}{2}`) is not portable: possessive or an error in Python and PCRE, a plain repeat in Rust and Lucene".into(),
                    "group the inner repeat: `(a*)+`, `(x{2}){2}`",
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
        I::Bracketed(_) => Err((
            "a class inside a class (`[[a-z]]`) is not portable: a union in Rust, the literal `[` and a stray `]` in Python, PCRE and RE2".into(),
            "write one class: `[a-z]`",
        )),
        I::Union(u) => u.items.iter().try_for_each(class_item),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    /// The words bound holds: it is never below the states the automaton
    /// really has, so skipping the automaton never accepts a pattern that
    /// would be refused.
    fn words_bound(p: &str) -> Option<usize> {
        let ast = regex_syntax::ast::parse::Parser::new().parse(p).unwrap();
        super::words_bound(p, &ast)
    }

    #[test]
    fn words_bound_is_above_the_automaton() {
        let many = (0..400)
            .map(|i| format!("w{i}x"))
            .collect::<Vec<_>>()
            .join("|");
        for p in [
            "alpine|busybox|ubuntu|debian|kali|python|perl|ruby|php|ncat|netcat|nmap|masscan|curl|wget",
            "kube-(proxy|dns|apiserver|scheduler|controller)|coredns|etcd|calico|cilium",
            "curl\\/|python-requests|Wget\\/|PowerShell",
            "(a|ab)(c|bc)",
            "aaaa|aaab|abab|baba",
            "(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)",
            "x",
            many.as_str(),
        ] {
            let bound = words_bound(p).expect(p);
            let states = super::dfa_states(p).expect(p);
            assert!(states <= bound, "{p}: {states} states, bound {bound}");
        }
        for p in ["a[ab]{20}c", "a.*b", "x+", "é"] {
            assert_eq!(words_bound(p), None, "{p}");
        }
    }

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
            "a*+",
            "ab?+",
            "ab**c",
            "x{2}{2}",
            "[[a-z]]",
            "[a[bc]]",
            "a[ab]{20}c",
            "(x{1000}){1000}",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
