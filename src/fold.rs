//! detc's one case folding, used by the evaluator, the Panther runtime and
//! every query that compares case-insensitively.
//!
//! Two characters are equal ignoring case when they are the same character,
//! or both are ASCII and equal ignoring ASCII case, or both lie outside ASCII
//! and have the same Unicode simple case folding (`CaseFolding.txt`, statuses
//! C and S: one character to one character). The border between ASCII and
//! the rest is closed: the long s `ſ` (U+017F) is not `s` and the Kelvin
//! sign `K` (U+212A) is not `k`, the only two simple foldings that cross it
//! (`İ` and `ı` have no simple folding at all). So an ASCII value means the
//! same in every engine that folds ASCII (Elasticsearch's `:`, `in~`,
//! `like~` and `regex~` fold ASCII only), and a value with non-ASCII letters
//! is written out as explicit alternatives (`[Ää]`), which every engine
//! reads alike.
//!
//! The classes come from `regex-syntax`'s simple case folding tables, the
//! ones Rust's `regex` uses for `(?i)`.

use regex_syntax::ast::{self, Ast};
use regex_syntax::hir::{ClassUnicode, ClassUnicodeRange};
use std::borrow::Cow;

/// Every character equal to `c` ignoring case, ascending (`c` included).
pub fn class(c: char) -> Vec<char> {
    if c.is_ascii() {
        return if c.is_ascii_alphabetic() {
            vec![c.to_ascii_uppercase(), c.to_ascii_lowercase()]
        } else {
            vec![c]
        };
    }
    let mut set = ClassUnicode::new([ClassUnicodeRange::new(c, c)]);
    set.case_fold_simple();
    let mut out: Vec<char> = set
        .iter()
        .flat_map(|r| r.start()..=r.end())
        .filter(|x| !x.is_ascii())
        .collect();
    out.sort_unstable();
    out
}

/// The representative of `c`'s class: ASCII letters lower-cased, other
/// characters the smallest member of their class.
pub fn key(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    class(c).into_iter().next().unwrap_or(c)
}

/// `s` with every character replaced by its [`key`]: two strings are equal
/// ignoring case exactly when their folds are equal, and one contains,
/// starts or ends with the other exactly when their folds do.
pub fn fold(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Cow::Owned(s.to_ascii_lowercase());
        }
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(key).collect())
}

/// Whether `c` is a letter outside ASCII that has case: partners under
/// detc's folding, or a case mapping some engine applies (`İ` lower-cases to
/// two characters in Java and Python, `ı` upper-cases to `I` in .NET). A
/// value holding one is written as explicit alternatives, since engines fold
/// such letters differently.
pub fn cased_non_ascii(c: char) -> bool {
    !c.is_ascii()
        && (class(c).len() > 1
            || c.to_lowercase().ne(std::iter::once(c))
            || c.to_uppercase().ne(std::iter::once(c)))
}

/// Whether `s` holds a letter [`cased_non_ascii`].
pub fn has_cased_non_ascii(s: &str) -> bool {
    !s.is_ascii() && s.chars().any(cased_non_ascii)
}

/// How [`expand_regex`] writes ASCII letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ascii {
    /// Left as written: the engine's ASCII-only flag folds them, in
    /// literals and in classes (Python `re.IGNORECASE | re.ASCII`).
    Flag,
    /// Literals left to the engine's ASCII flag, classes written out:
    /// Lucene's case-insensitive flag does not fold class ranges.
    FlagLiterals,
    /// Written out everywhere (`[aA]`): the pattern is then matched
    /// case-sensitively, by an engine with no ASCII-only flag.
    Explicit,
}

/// A portable regex that, matched case-sensitively (or with only the
/// engine's ASCII flag, per `ascii`), matches what `pattern` matches ignoring
/// case under detc's folding: every letter with case partners becomes a
/// class of them, every class gains its members' partners. The result stays
/// in the portable subset. `None` when the pattern does not parse.
#[cached::proc_macro::cached(
    size = 4096,
    key = "(String, Ascii)",
    convert = "{ (pattern.to_string(), ascii) }"
)]
pub fn expand_regex(pattern: &str, ascii: Ascii) -> Option<String> {
    let mut ast = ast::parse::ParserBuilder::new()
        .nest_limit(64)
        .build()
        .parse(pattern)
        .ok()?;
    let changed = expand(&mut ast, ascii);
    if !changed {
        return Some(pattern.to_string());
    }
    let mut out = String::new();
    ast::print::Printer::new().print(&ast, &mut out).ok()?;
    Some(out)
}

/// Whether `pattern` has a letter [`cased_non_ascii`], or a class that
/// [`expand_regex`] changes beyond ASCII.
pub fn regex_has_cased_non_ascii(pattern: &str) -> bool {
    has_cased_non_ascii(pattern) || expand_regex(pattern, Ascii::Flag).is_some_and(|e| e != pattern)
}

/// `s` as a portable regex matching exactly `s` ignoring case (unanchored),
/// with ASCII letters per `ascii`.
pub fn literal_regex(s: &str, ascii: Ascii) -> String {
    let mut out = String::new();
    for c in s.chars() {
        push_literal(c, ascii, &mut out);
    }
    out
}

/// One character of a literal, as [`literal_regex`] writes it.
pub fn push_literal(c: char, ascii: Ascii, out: &mut String) {
    if c.is_ascii_alphabetic() && ascii == Ascii::Explicit {
        out.extend(['[', c.to_ascii_lowercase(), c.to_ascii_uppercase(), ']']);
        return;
    }
    if c.is_control() {
        // `\xHH` (every control character is below U+00A0): no raw control
        // character in a query, and Rust, RE2, Python and Lucene (through
        // its printer) all read it.
        out.push_str(&format!("\\x{:02x}", c as u32));
        return;
    }
    let members = class(c);
    if members.len() > 1 && !c.is_ascii() {
        out.push('[');
        members.iter().for_each(|m| out.push(*m));
        out.push(']');
    } else {
        out.push_str(&regex_syntax::escape(&c.to_string()));
    }
}

fn expand(a: &mut Ast, ascii: Ascii) -> bool {
    match a {
        Ast::Literal(l) => {
            let mut members = class(l.c);
            if members.len() < 2 || (l.c.is_ascii() && ascii != Ascii::Explicit) {
                return false;
            }
            if l.c.is_ascii() {
                // `[aA]`, as `push_literal` writes it.
                members.reverse();
            }
            let span = l.span;
            let items = members
                .into_iter()
                .map(|c| ast::ClassSetItem::Literal(lit(c, span)))
                .collect();
            *a = Ast::class_bracketed(ast::ClassBracketed {
                span,
                negated: false,
                kind: ast::ClassSet::Item(ast::ClassSetItem::Union(ast::ClassSetUnion {
                    span,
                    items,
                })),
            });
            true
        }
        Ast::ClassBracketed(c) => {
            let Some(set) = class_set(&c.kind) else {
                return false;
            };
            let folded = fold_set(&set, ascii);
            if folded == set {
                return false;
            }
            let span = c.span;
            let items = folded
                .iter()
                .map(|r| {
                    if r.start() == r.end() {
                        ast::ClassSetItem::Literal(lit(r.start(), span))
                    } else {
                        ast::ClassSetItem::Range(ast::ClassSetRange {
                            span,
                            start: lit(r.start(), span),
                            end: lit(r.end(), span),
                        })
                    }
                })
                .collect();
            c.kind =
                ast::ClassSet::Item(ast::ClassSetItem::Union(ast::ClassSetUnion { span, items }));
            true
        }
        Ast::Repetition(r) => expand(&mut r.ast, ascii),
        Ast::Group(g) => expand(&mut g.ast, ascii),
        Ast::Alternation(x) => x
            .asts
            .iter_mut()
            .fold(false, |acc, a| expand(a, ascii) | acc),
        Ast::Concat(x) => x
            .asts
            .iter_mut()
            .fold(false, |acc, a| expand(a, ascii) | acc),
        Ast::Empty(_) | Ast::Flags(_) | Ast::Dot(_) | Ast::Assertion(_) => false,
        Ast::ClassUnicode(_) | Ast::ClassPerl(_) => false,
    }
}

/// A class item's characters, or `None` for what the portable subset has
/// no use for (named classes, set operations, nesting).
fn class_set(set: &ast::ClassSet) -> Option<ClassUnicode> {
    fn item(i: &ast::ClassSetItem, out: &mut Vec<ClassUnicodeRange>) -> Option<()> {
        match i {
            ast::ClassSetItem::Empty(_) => {}
            ast::ClassSetItem::Literal(l) => out.push(ClassUnicodeRange::new(l.c, l.c)),
            ast::ClassSetItem::Range(r) => out.push(ClassUnicodeRange::new(r.start.c, r.end.c)),
            ast::ClassSetItem::Union(u) => {
                for x in &u.items {
                    item(x, out)?;
                }
            }
            _ => return None,
        }
        Some(())
    }
    let ast::ClassSet::Item(i) = set else {
        return None;
    };
    let mut ranges = Vec::new();
    item(i, &mut ranges)?;
    Some(ClassUnicode::new(ranges))
}

/// `set` with each member's partners added, ASCII per `ascii`.
fn fold_set(set: &ClassUnicode, ascii: Ascii) -> ClassUnicode {
    let border = ClassUnicode::new([ClassUnicodeRange::new('\0', '\x7f')]);
    let mut low = set.clone();
    low.intersect(&border);
    let mut high = set.clone();
    high.difference(&border);
    if ascii != Ascii::Flag {
        low.case_fold_simple();
        low.intersect(&border);
    }
    high.case_fold_simple();
    high.difference(&border);
    low.union(&high);
    low
}

fn lit(c: char, span: ast::Span) -> ast::Literal {
    let kind = if c.is_ascii_punctuation() {
        ast::LiteralKind::Meta
    } else {
        ast::LiteralKind::Verbatim
    };
    ast::Literal { span, kind, c }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Panther runtime's copy of the folding, as the Python it holds:
    /// `(first, last, step, delta)` runs, each `chr(c) -> chr(c + delta)`
    /// for `c` in `range(first, last + 1, step)`. Cased letters end below
    /// U+1F000.
    fn python_table() -> String {
        let pairs: Vec<(u32, i64)> = (0x80u32..0x1F000)
            .filter_map(char::from_u32)
            .filter_map(|c| {
                let k = key(c);
                (k != c).then(|| (c as u32, k as i64 - c as i64))
            })
            .collect();
        let mut runs: Vec<(u32, u32, u32, i64)> = Vec::new();
        for (c, d) in pairs {
            if let Some(r) = runs.last_mut() {
                let step = c - r.1;
                if r.3 == d && (r.0 == r.1 || r.2 == step) && step <= 2 {
                    r.2 = step;
                    r.1 = c;
                    continue;
                }
            }
            runs.push((c, c, 1, d));
        }
        let mut out = String::from("_FOLD_RUNS = (\n");
        for (first, last, step, delta) in runs {
            out.push_str(&format!(
                "    (0x{first:X}, 0x{last:X}, {step}, {delta}),\n"
            ));
        }
        out.push_str(")\n");
        out
    }

    #[test]
    fn the_panther_runtime_folds_as_detc_does() {
        let runtime = include_str!("../templates/panther/detc_runtime.py");
        let table = python_table();
        assert!(
            runtime.contains(&table),
            "templates/panther/detc_runtime.py must hold this table:\n{table}"
        );
    }

    #[test]
    fn classes_keep_ascii_apart() {
        assert_eq!(class('a'), ['A', 'a']);
        assert_eq!(class('s'), ['S', 's']);
        assert_eq!(class('ſ'), ['ſ']);
        assert_eq!(class('\u{212a}'), ['\u{212a}']);
        assert_eq!(class('k'), ['K', 'k']);
        assert_eq!(class('ä'), ['Ä', 'ä']);
        assert_eq!(class('σ'), ['Σ', 'ς', 'σ']);
        assert_eq!(class('İ'), ['İ']);
        assert_eq!(class('ı'), ['ı']);
        assert_eq!(class('ß'), ['ß', 'ẞ']);
        assert_eq!(class('1'), ['1']);
    }

    #[test]
    fn fold_is_one_to_one() {
        assert_eq!(fold("İstanbul"), "İstanbul");
        assert_eq!(fold("ISTANBUL"), "istanbul");
        assert_eq!(fold("STRASSE"), "strasse");
        assert_eq!(fold("STRAẞE"), fold("straße"));
        assert_ne!(fold("ſ"), fold("s"));
        assert_eq!(fold("ΣΑΣ"), fold("σας"));
        for s in ["İstanbul", "ſ", "Straße", "ΣΑΣ", "K"] {
            assert_eq!(fold(s).chars().count(), s.chars().count());
        }
    }

    #[test]
    fn regexes_gain_partners() {
        let e = |p, a| expand_regex(p, a).unwrap();
        assert_eq!(e("abc", Ascii::Flag), "abc");
        assert_eq!(e("äb", Ascii::Flag), "[Ää]b");
        assert_eq!(e("äb", Ascii::Explicit), "[Ää][bB]");
        assert_eq!(e("[a-c]x", Ascii::Flag), "[a-c]x");
        assert_eq!(e("[a-c]x", Ascii::FlagLiterals), "[A-Ca-c]x");
        // The Angstrom sign folds to `å`, inside `ä-ö`.
        assert_eq!(e("[^ä-ö]", Ascii::Flag), "[^Ä-Öä-ö\u{212b}]");
        assert_eq!(e("(a|ſ)+\\.", Ascii::Explicit), "([aA]|ſ)+\\.");
        assert_eq!(e("[s]", Ascii::Explicit), "[Ss]");
        assert_eq!(e("s", Ascii::Explicit), "[sS]");
        assert!(regex_has_cased_non_ascii("x[à-é]"));
        assert!(!regex_has_cased_non_ascii("x[a-z]"));
        assert!(regex_has_cased_non_ascii("İ"));
        assert!(has_cased_non_ascii("ı"));
        assert!(!has_cased_non_ascii("😀 1 ×"));
        assert_eq!(literal_regex("Ä.k", Ascii::Flag), "[Ää]\\.k");
        assert_eq!(literal_regex("Ä.k", Ascii::Explicit), "[Ää]\\.[kK]");
        assert_eq!(literal_regex("a\tb\u{85}", Ascii::Flag), "a\\x09b\\x85");
    }

    #[test]
    fn an_expanded_regex_matches_as_the_folding_says() {
        let texts = [
            "straße", "STRAẞE", "Straße", "strasse", "ſtraße", "Ä", "ä", "σς", "ΣΣ",
        ];
        for p in ["straße", "[ä]", "σσ", "s.raße", "[a-zß]+"] {
            let re = regex::Regex::new(&expand_regex(p, Ascii::Explicit).unwrap()).unwrap();
            let lit = regex::Regex::new(&format!("^{}$", literal_regex(p, Ascii::Explicit)));
            for t in texts {
                // The expansion is Unicode (?i) minus the two ASCII-crossing pairs.
                let unicode = regex::RegexBuilder::new(p)
                    .case_insensitive(true)
                    .build()
                    .unwrap()
                    .is_match(t);
                let crosses = t.contains(['ſ', '\u{212a}']);
                if !crosses {
                    assert_eq!(re.is_match(t), unicode, "{p} on {t}");
                }
                if p.chars().all(char::is_alphanumeric) {
                    assert_eq!(
                        lit.as_ref().unwrap().is_match(t),
                        fold(t) == fold(p),
                        "{p} = {t}"
                    );
                }
            }
        }
    }
}
