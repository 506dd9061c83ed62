//! Surface syntax: the only module that imports pest. Text -> [`ast::File`].
//!
//! Builders are named after the grammar rules they consume; an unexpected
//! pair is a diagnostic, never a panic.

pub mod ast;

use crate::diag::{Diagnostic, Span};
use ast::*;
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser;
use std::sync::OnceLock;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/rule.pest"]
struct RuleParser;

/// Inputs larger than this are refused before parsing.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Deepest bracket nesting accepted (guards the recursive descent).
pub const MAX_NESTING: usize = 128;
/// Longest run of `not` accepted.
const MAX_NOT_RUN: usize = 64;

type PResult<T> = Result<T, Diagnostic>;

pub fn parse(text: &str) -> PResult<File> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::whole_file(format!(
            "file is {} bytes; detc reads rule files of at most {} bytes",
            text.len(),
            MAX_FILE_BYTES
        ))
        .hint(
            "keep large test events in separate JSON files and reference them with `file \"...\"`",
        ));
    }
    check_nesting(text)?;
    let pairs = RuleParser::parse(Rule::file, text).map_err(|e| pest_error(e, text))?;
    let file = pairs
        .into_iter()
        .next()
        .ok_or_else(|| internal(Span::default(), "empty parse"))?;
    let mut rules = Vec::new();
    for pair in file.into_inner() {
        match pair.as_rule() {
            Rule::rule => rules.push(build_rule(pair)?),
            Rule::EOI => {}
            _ => return Err(unexpected(&pair)),
        }
    }
    Ok(File { rules })
}

/// A `# ...` comment: its span (from `#` to the end of the line, without
/// the newline) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub span: Span,
    pub text: String,
}

/// Every comment of a rule file, in order. The grammar skips comments, so
/// they are found between the tokens pest reports: every string, regex, JSON
/// and other leaf token is a pair, and the literal keywords and punctuation
/// between them never contain `#`, so a `#` outside every leaf starts a
/// comment. Fails as [`parse`] does on text that does not parse.
pub fn comments(text: &str) -> PResult<Vec<Comment>> {
    parse(text)?;
    let pairs = RuleParser::parse(Rule::file, text).map_err(|e| pest_error(e, text))?;
    let mut leaves: Vec<(usize, usize)> = pairs
        .flatten()
        .filter(|p| p.clone().into_inner().next().is_none())
        .map(|p| (p.as_span().start(), p.as_span().end()))
        .collect();
    leaves.sort();
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut gaps = Vec::new();
    for (start, end) in leaves {
        if start > at {
            gaps.push((at, start));
        }
        at = at.max(end);
    }
    gaps.push((at, text.len()));
    for (start, end) in gaps {
        let gap = &text[start..end];
        let mut i = 0;
        while let Some(off) = gap[i..].find('#') {
            let c_start = start + i + off;
            let c_end = text[c_start..]
                .find('\n')
                .map_or(text.len(), |n| c_start + n);
            out.push(Comment {
                span: Span::new(c_start, c_end),
                text: text[c_start..c_end].trim_end().to_string(),
            });
            if c_end >= end {
                break;
            }
            i = c_end - start;
        }
    }
    Ok(out)
}

fn check_nesting(text: &str) -> PResult<()> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_comment {
            in_comment = c != '\n';
            continue;
        }
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' | '\n' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '#' => in_comment = true,
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::new(
                        format!("brackets are nested more than {MAX_NESTING} deep"),
                        Span::new(i, i + 1),
                    )
                    .label("too deep")
                    .hint("split the condition into named `let` conditions"));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn friendly(r: &Rule) -> String {
    match r {
        Rule::EOI => "end of file",
        Rule::rule => "`rule <name> { ... }`",
        Rule::setting => "a setting `key = value`",
        Rule::source_block => "`source <name> on [platforms] { ... }`",
        Rule::source_name => "a source name such as `kubernetes.audit`",
        Rule::platform_list => "a platform list such as `[eks, gke]`",
        Rule::let_def => "`let <name> = <condition>`",
        Rule::match_def => "`match <condition>`",
        Rule::indicator => "`indicator <name> [severity <level>] = <condition>`",
        Rule::output => "`output { ... }`",
        Rule::expr => "a condition",
        Rule::not_op => "`not`",
        Rule::and_op => "`and`",
        Rule::or_op => "`or`",
        Rule::group => "a parenthesised condition",
        Rule::quantified_refs => "`any of [..]` or `all of [..]`",
        Rule::quantifier => "`any` or `all`",
        Rule::name_ref => "a condition name",
        Rule::comparison => "a comparison",
        Rule::cased => "`cased`",
        Rule::exists_op => "`exists`",
        Rule::list_cmp => "`in [..]`",
        Rule::in_kw => "`in`",
        Rule::str_cmp => "a string operator",
        Rule::str_op => {
            "an operator (`startswith`, `endswith`, `contains`, `like`, `matches`, `cidr`)"
        }
        Rule::cmp_op => "an operator (`==`, `!=`, `<`, `<=`, `>`, `>=`)",
        Rule::cmp_list => "a list of values `[..]`",
        Rule::field => "a field path",
        Rule::any_depth => "`**`",
        Rule::key => "a field name",
        Rule::quoted_key => "a back-quoted field name",
        Rule::list => "a list `[..]`",
        Rule::list_item => "a list item",
        Rule::as_kw => "`as`",
        Rule::map => "a map `{ key = value }`",
        Rule::map_entry => "a map entry `key = value`",
        Rule::string => "a string",
        Rule::string_inner | Rule::triple_inner => "string content",
        Rule::escape => "an escape (\\\" \\\\ \\n \\t \\r \\/ \\u{..})",
        Rule::triple_string => "a text block `\"\"\"...\"\"\"`",
        Rule::regex => "a regex `/.../`",
        Rule::regex_inner => "regex content",
        Rule::date => "a date YYYY-MM-DD",
        Rule::duration => "a duration such as `60m`",
        Rule::number => "a number",
        Rule::boolean => "`true` or `false`",
        Rule::null => "`null`",
        Rule::word => "a word",
        Rule::test => "`test \"name\" on <platform> expect ...`",
        Rule::expect => "`expect match` or `expect no match`",
        Rule::no_match => "`no match`",
        Rule::match_kw => "`match`",
        Rule::indicator_set => "`with [indicators]`",
        Rule::event_file => "`file \"path\"`",
        Rule::json => "a JSON object",
        Rule::json_object => "a JSON object",
        Rule::json_member => "a JSON member",
        Rule::json_array => "a JSON array",
        Rule::json_string => "a JSON string",
        Rule::json_number => "a JSON number",
        Rule::ident => "a name",
        Rule::file => "a rule file",
        _ => "a token",
    }
    .to_string()
}

fn pest_error(e: pest::error::Error<Rule>, text: &str) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let span = match e.location {
        InputLocation::Pos(p) => Span::new(p, p),
        InputLocation::Span((a, b)) => Span::new(a, b),
    };
    let e = e.renamed_rules(friendly);
    let message = match &e.variant {
        ErrorVariant::ParsingError { .. } => format!("syntax error: {}", e.variant.message()),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    Diagnostic::new(message, span)
        .label("here")
        .hint(syntax_hint(text, span.start))
}

/// A hint from what stands at the error, for the usual slips.
fn syntax_hint(text: &str, at: usize) -> String {
    let rest = text.get(at..).unwrap_or("");
    let line_rest = rest.split('\n').next().unwrap_or("");
    if rest.starts_with('\'') {
        "strings use double quotes: \"value\"".into()
    } else if rest.starts_with('=') && !rest.starts_with("==") {
        "compare with `==`; a single `=` only assigns settings".into()
    } else if rest.starts_with('"') && line_rest[1..].find('"').is_none() {
        "this string is not closed on its line; end it with `\"` (write a newline as \\n)".into()
    } else if rest.starts_with(',')
        || (rest.starts_with('}') && text[..at].trim_end().ends_with(','))
    {
        "remove the trailing comma".into()
    } else if rest.is_empty() {
        "the file ends early: a `}` may be missing".into()
    } else {
        "see docs/language.md for the rule syntax; strings use double quotes and lists square brackets".into()
    }
}

fn unexpected(pair: &Pair<Rule>) -> Diagnostic {
    internal(
        pair.as_span().into(),
        &format!("unexpected {:?}", pair.as_rule()),
    )
}

fn internal(span: Span, what: &str) -> Diagnostic {
    Diagnostic::new(format!("internal parser error: {what}"), span)
        .hint("this is a bug in detc; please report it with the input")
}

fn next<'a>(pairs: &mut Pairs<'a, Rule>, parent: Span) -> PResult<Pair<'a, Rule>> {
    pairs
        .next()
        .ok_or_else(|| internal(parent, "missing element"))
}

fn spanned_str(pair: &Pair<Rule>) -> Spanned<String> {
    Spanned::new(pair.as_str().to_string(), pair.as_span().into())
}

fn build_rule(pair: Pair<Rule>) -> PResult<ast::Rule> {
    let span: Span = pair.as_span().into();
    let mut inner = pair.into_inner();
    let name = spanned_str(&next(&mut inner, span)?);
    let mut rule = ast::Rule {
        name,
        settings: vec![],
        sources: vec![],
        tests: vec![],
        span,
    };
    for item in inner {
        match item.as_rule() {
            Rule::setting => rule.settings.push(build_setting(item)?),
            Rule::source_block => rule.sources.push(build_source_block(item)?),
            Rule::test => rule.tests.push(build_test(item)?),
            _ => return Err(unexpected(&item)),
        }
    }
    Ok(rule)
}

fn build_setting(pair: Pair<Rule>) -> PResult<Setting> {
    let span: Span = pair.as_span().into();
    let mut inner = pair.into_inner();
    let key = spanned_str(&next(&mut inner, span)?);
    let value = build_value(next(&mut inner, span)?)?;
    Ok(Setting { key, value })
}

fn build_source_block(pair: Pair<Rule>) -> PResult<Source> {
    let span: Span = pair.as_span().into();
    let mut inner = pair.into_inner();
    let name = spanned_str(&next(&mut inner, span)?);
    let platforms = next(&mut inner, span)?
        .into_inner()
        .map(|p| spanned_str(&p))
        .collect();
    let mut source = Source {
        name,
        platforms,
        lets: vec![],
        matches: vec![],
        indicators: vec![],
        outputs: vec![],
        span,
    };
    for item in inner {
        let item_span: Span = item.as_span().into();
        match item.as_rule() {
            Rule::let_def => {
                let mut p = item.into_inner();
                let name = spanned_str(&next(&mut p, item_span)?);
                let expr = build_expr(next(&mut p, item_span)?)?;
                source.lets.push(Let { name, expr });
            }
            Rule::match_def => {
                let mut p = item.into_inner();
                source.matches.push(build_expr(next(&mut p, item_span)?)?);
            }
            Rule::indicator => {
                let mut p: Vec<Pair<Rule>> = item.into_inner().collect();
                let expr_pair = p.pop().ok_or_else(|| internal(item_span, "indicator"))?;
                let name = spanned_str(p.first().ok_or_else(|| internal(item_span, "indicator"))?);
                let severity = p.get(1).map(spanned_str);
                source.indicators.push(Indicator {
                    name,
                    severity,
                    expr: build_expr(expr_pair)?,
                });
            }
            Rule::output => {
                let settings = item
                    .into_inner()
                    .map(build_setting)
                    .collect::<PResult<Vec<_>>>()?;
                source.outputs.push(Spanned::new(settings, item_span));
            }
            _ => return Err(unexpected(&item)),
        }
    }
    Ok(source)
}

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::or_op, Assoc::Left))
            .op(Op::infix(Rule::and_op, Assoc::Left))
            .op(Op::prefix(Rule::not_op))
    })
}

fn build_expr(pair: Pair<Rule>) -> PResult<Expr> {
    let span: Span = pair.as_span().into();
    let mut run = 0usize;
    for p in pair.clone().into_inner() {
        run = if p.as_rule() == Rule::not_op {
            run + 1
        } else {
            0
        };
        if run > MAX_NOT_RUN {
            return Err(Diagnostic::new(
                format!("more than {MAX_NOT_RUN} `not` in a row"),
                p.as_span().into(),
            )
            .label("here")
            .hint("`not not x` is `x`: simplify the condition"));
        }
    }
    pratt()
        .map_primary(build_primary)
        .map_prefix(|op, rhs| {
            let rhs = rhs?;
            let span = Span::from(op.as_span()).to(rhs.span);
            Ok(Expr {
                kind: ExprKind::Not(Box::new(rhs)),
                span,
            })
        })
        .map_infix(|lhs, op, rhs| {
            let (lhs, rhs) = (lhs?, rhs?);
            let span = lhs.span.to(rhs.span);
            // Left-associative chains extend the left operand's list.
            let kind = match (op.as_rule(), lhs.kind) {
                (Rule::and_op, ExprKind::And(mut xs)) if !lhs_grouped(&xs, lhs.span) => {
                    xs.push(rhs);
                    ExprKind::And(xs)
                }
                (Rule::or_op, ExprKind::Or(mut xs)) if !lhs_grouped(&xs, lhs.span) => {
                    xs.push(rhs);
                    ExprKind::Or(xs)
                }
                (Rule::and_op, kind) => ExprKind::And(vec![
                    Expr {
                        kind,
                        span: lhs.span,
                    },
                    rhs,
                ]),
                (Rule::or_op, kind) => ExprKind::Or(vec![
                    Expr {
                        kind,
                        span: lhs.span,
                    },
                    rhs,
                ]),
                _ => return Err(unexpected(&op)),
            };
            Ok(Expr { kind, span })
        })
        .parse(pair.into_inner())
        .map_err(|e: Diagnostic| {
            if e.span.is_none() {
                internal(span, "expression")
            } else {
                e
            }
        })
}

/// A parenthesised chain is one operand: `(a and b) and c` keeps its group
/// (its span then starts before its first operand).
fn lhs_grouped(xs: &[Expr], span: Span) -> bool {
    xs.first()
        .is_some_and(|first| first.span.start != span.start)
}

fn build_primary(pair: Pair<Rule>) -> PResult<Expr> {
    let span: Span = pair.as_span().into();
    match pair.as_rule() {
        Rule::group => {
            let mut inner = pair.into_inner();
            let mut e = build_expr(next(&mut inner, span)?)?;
            e.span = span;
            Ok(e)
        }
        Rule::name_ref => Ok(Expr {
            kind: ExprKind::Ref(pair.as_str().to_string()),
            span,
        }),
        Rule::quantified_refs => {
            let mut inner = pair.into_inner();
            let all = next(&mut inner, span)?.as_str() == "all";
            let names = inner.map(|p| spanned_str(&p)).collect();
            Ok(Expr {
                kind: ExprKind::Quantified { all, names },
                span,
            })
        }
        Rule::comparison => build_comparison(pair),
        _ => Err(unexpected(&pair)),
    }
}

fn build_comparison(pair: Pair<Rule>) -> PResult<Expr> {
    let span: Span = pair.as_span().into();
    let mut inner = pair.into_inner();
    let field_pair = next(&mut inner, span)?;
    let field = Spanned::new(
        build_field(field_pair.clone())?,
        field_pair.as_span().into(),
    );
    let mut cased = false;
    let mut op_pair = next(&mut inner, span)?;
    if op_pair.as_rule() == Rule::cased {
        cased = true;
        op_pair = next(&mut inner, span)?;
    }
    let op_span: Span = op_pair.as_span().into();
    let values_of = |list: Pair<Rule>| {
        list.into_inner()
            .map(build_value)
            .collect::<PResult<Vec<_>>>()
    };
    // Each form gives the operator (with the span of its keyword), the
    // list quantifier and the values.
    let (op, quantifier, values) = match op_pair.as_rule() {
        Rule::exists_op => (Spanned::new(CmpOp::Exists, op_span), None, vec![]),
        Rule::list_cmp => {
            let mut p = op_pair.into_inner();
            let in_kw = next(&mut p, op_span)?;
            let list = next(&mut p, op_span)?;
            (
                Spanned::new(CmpOp::In, in_kw.as_span().into()),
                Some(false),
                values_of(list)?,
            )
        }
        Rule::str_cmp => {
            let mut p = op_pair.into_inner();
            let op_tok = next(&mut p, op_span)?;
            let op = match op_tok.as_str().trim() {
                "startswith" => CmpOp::StartsWith,
                "endswith" => CmpOp::EndsWith,
                "contains" => CmpOp::Contains,
                "like" => CmpOp::Like,
                "matches" => CmpOp::Matches,
                "cidr" => CmpOp::Cidr,
                _ => return Err(unexpected(&op_tok)),
            };
            let first = next(&mut p, op_span)?;
            let (quantifier, values) = if first.as_rule() == Rule::quantifier {
                (
                    Some(first.as_str() == "all"),
                    values_of(next(&mut p, op_span)?)?,
                )
            } else {
                (None, vec![build_value(first)?])
            };
            (
                Spanned::new(op, op_tok.as_span().into()),
                quantifier,
                values,
            )
        }
        Rule::cmp_op => {
            let op = match op_pair.as_str() {
                "==" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                ">=" => CmpOp::Ge,
                _ => return Err(unexpected(&op_pair)),
            };
            let value = build_value(next(&mut inner, span)?)?;
            (Spanned::new(op, op_span), None, vec![value])
        }
        _ => return Err(unexpected(&op_pair)),
    };
    let cmp = Cmp {
        field,
        cased,
        op,
        quantifier,
        values,
    };
    Ok(Expr {
        kind: ExprKind::Cmp(cmp),
        span,
    })
}

fn build_field(pair: Pair<Rule>) -> PResult<Vec<FieldSeg>> {
    pair.into_inner()
        .map(|seg| match seg.as_rule() {
            Rule::any_depth => Ok(FieldSeg::AnyDepth),
            Rule::path_alias => Ok(FieldSeg::Alias(seg.as_str()[1..].to_string())),
            Rule::key => Ok(FieldSeg::Key(seg.as_str().to_string())),
            Rule::quoted_key => {
                let s = seg.as_str();
                Ok(FieldSeg::Key(s[1..s.len() - 1].to_string()))
            }
            _ => Err(unexpected(&seg)),
        })
        .collect()
}

fn build_value(pair: Pair<Rule>) -> PResult<Value> {
    let span: Span = pair.as_span().into();
    let kind = match pair.as_rule() {
        Rule::string => ValueKind::Str(build_string(pair)?),
        Rule::triple_string => {
            let inner = pair.into_inner().next().map(|p| p.as_str()).unwrap_or("");
            ValueKind::Text(dedent(inner))
        }
        Rule::regex => {
            let inner = pair.into_inner().next().map(|p| p.as_str()).unwrap_or("");
            // `\/` is how a slash is written inside /.../; the regex itself sees `/`.
            ValueKind::Regex(inner.replace("\\/", "/"))
        }
        Rule::date => ValueKind::Date(pair.as_str().to_string()),
        Rule::duration => ValueKind::Duration(pair.as_str().to_string()),
        Rule::number => {
            let n: serde_json::Number = serde_json::from_str(pair.as_str()).map_err(|_| {
                Diagnostic::new("number out of range", span)
                    .label("here")
                    .hint("use a smaller number")
            })?;
            ValueKind::Num(n)
        }
        Rule::boolean => ValueKind::Bool(pair.as_str() == "true"),
        Rule::null => ValueKind::Null,
        Rule::word => ValueKind::Word(pair.as_str().to_string()),
        Rule::list => ValueKind::List(
            pair.into_inner()
                .map(build_list_item)
                .collect::<PResult<Vec<_>>>()?,
        ),
        Rule::map => {
            let mut entries = Vec::new();
            for entry in pair.into_inner() {
                let entry_span: Span = entry.as_span().into();
                let mut p = entry.into_inner();
                let key = spanned_str(&next(&mut p, entry_span)?);
                let value = build_value(next(&mut p, entry_span)?)?;
                entries.push((key, value));
            }
            ValueKind::Map(entries)
        }
        _ => return Err(unexpected(&pair)),
    };
    Ok(Value { kind, span })
}

fn build_list_item(pair: Pair<Rule>) -> PResult<ListItem> {
    let span: Span = pair.as_span().into();
    let mut inner = pair.into_inner();
    let value = build_value(next(&mut inner, span)?)?;
    let alias = match inner.next() {
        Some(_as_kw) => Some(spanned_str(&next(&mut inner, span)?)),
        None => None,
    };
    Ok(ListItem { value, alias })
}

fn build_string(pair: Pair<Rule>) -> PResult<String> {
    let span: Span = pair.as_span().into();
    let inner = pair.into_inner().next();
    // Offsets count from the first character inside the quotes.
    let start = inner
        .as_ref()
        .map_or(span.start + 1, |p| p.as_span().start());
    let raw = inner.as_ref().map(|p| p.as_str()).unwrap_or("");
    unescape(raw).map_err(|(offset, msg)| {
        let at = start + offset;
        let len = escape_len(&raw[offset..]);
        Diagnostic::new(msg, Span::new(at, at + len))
            .label("bad escape")
            .hint("escapes are \\\" \\\\ \\n \\t \\r \\/ and \\u{XXXX} with a Unicode scalar value")
    })
}

/// The length of the escape at the start of `s` (`\\n`, `\\u{D800}`).
fn escape_len(s: &str) -> usize {
    match s.get(1..2) {
        Some("u") => s.find('}').map_or(s.len(), |i| i + 1),
        Some(c) => 1 + c.len(),
        None => s.len().max(1),
    }
}

fn unescape(raw: &str) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some((_, '"')) => out.push('"'),
            Some((_, '\\')) => out.push('\\'),
            Some((_, '/')) => out.push('/'),
            Some((_, 'n')) => out.push('\n'),
            Some((_, 't')) => out.push('\t'),
            Some((_, 'r')) => out.push('\r'),
            Some((_, 'u')) => {
                let mut hex = String::new();
                chars.next(); // `{`, guaranteed by the grammar
                for (_, h) in chars.by_ref() {
                    if h == '}' {
                        break;
                    }
                    hex.push(h);
                }
                let ch = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                match ch {
                    Some(ch) => out.push(ch),
                    None => return Err((i, format!("\\u{{{hex}}} is not a Unicode scalar value"))),
                }
            }
            _ => return Err((i, "unknown escape".to_string())),
        }
    }
    Ok(out)
}

/// Strip the common indentation of a `"""` block and its first and last blank lines.
fn dedent(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<&str> = lines
        .iter()
        .map(|l| {
            if l.trim().is_empty() {
                ""
            } else {
                l.get(indent..).unwrap_or(l.trim_start())
            }
        })
        .collect();
    while out.first().is_some_and(|l| l.is_empty()) {
        out.remove(0);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

fn build_test(pair: Pair<Rule>) -> PResult<Test> {
    let span: Span = pair.as_span().into();
    let mut inner = pair.into_inner();
    let name_pair = next(&mut inner, span)?;
    let name = Spanned::new(build_string(name_pair.clone())?, name_pair.as_span().into());
    let platform = spanned_str(&next(&mut inner, span)?);
    let expect = next(&mut inner, span)?;
    let mut expect_inner = expect.into_inner();
    let verdict = next(&mut expect_inner, span)?;
    let expect_match = verdict.as_rule() == Rule::match_kw;
    let indicators = expect_inner
        .next()
        .map(|set| set.into_inner().map(|p| spanned_str(&p)).collect());
    let event_pair = next(&mut inner, span)?;
    let event_span: Span = event_pair.as_span().into();
    let event = match event_pair.as_rule() {
        Rule::json => {
            let value: serde_json::Value =
                serde_json::from_str(event_pair.as_str()).map_err(|e| {
                    Diagnostic::new(format!("invalid JSON in test event: {e}"), event_span)
                        .label("this event")
                        .hint("test events are JSON objects; check escapes and numbers")
                })?;
            TestEvent::Inline(Spanned::new(value, event_span))
        }
        Rule::event_file => {
            let p = next(&mut event_pair.into_inner(), event_span)?;
            let path_span: Span = p.as_span().into();
            TestEvent::File(Spanned::new(build_string(p)?, path_span))
        }
        _ => return Err(unexpected(&event_pair)),
    };
    Ok(Test {
        name,
        platform,
        expect_match,
        indicators,
        event,
        span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_not_and_or() {
        let f = parse("rule r { source s on [p] { match not a and b or c and d } }").unwrap();
        let e = &f.rules[0].sources[0].matches[0];
        let shown = format!("{:?}", e.kind);
        assert!(shown.starts_with("Or("), "{shown}");
    }

    #[test]
    fn dedent_strips_common_indent() {
        assert_eq!(dedent("\n    a\n      b\n  "), "a\n  b");
    }

    #[test]
    fn unescape_rejects_surrogates() {
        assert!(unescape("\\u{d800}").is_err());
        assert_eq!(unescape("a\\u{1F600}\\n").unwrap(), "a\u{1F600}\n");
    }
}
