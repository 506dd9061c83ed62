//! `detc fmt`: print a rule file in one canonical layout, keeping every
//! comment.
//!
//! The layout is a function of the syntax tree alone: metadata and output
//! settings in the order of the language reference, `=` aligned within a
//! block, two spaces per level, lists and maps on one line when they fit in
//! [`WIDTH`] columns and one item per line otherwise, long conditions broken
//! before `and`/`or`. Single blank lines between items are kept.
//!
//! Comments are not in the syntax tree; [`crate::syntax::comments`] finds
//! them, and each is attached by position to an item that the printer
//! places: a comment on its own line leads the next item (or closes its
//! block), a comment after an item on that item's last line trails it, and a
//! comment inside an item that is printed as one unit (a condition, say)
//! moves above that item. Lists of settings are blocks of their own, so a
//! comment after a list item stays on that item. Because the attachment
//! only depends on where a comment stands relative to items, formatting the
//! output again attaches every comment to the same item: the layout is
//! idempotent.

use crate::diag::{Report, SourceFile, Span};
use crate::syntax::ast::*;
use crate::syntax::Comment;
use std::collections::HashMap;

/// Lines longer than this are broken where the layout allows.
pub const WIDTH: usize = 100;
const INDENT: &str = "  ";
/// Marks a line that [`tidy`] must keep as it is (text blocks, JSON).
const RAW: char = '\u{0}';

#[derive(Debug, Clone, PartialEq)]
enum Lead {
    Blank,
    Comment(String),
}

#[derive(Debug, Clone, Default)]
struct Notes {
    lead: Vec<Lead>,
    trail: Option<String>,
}

type Key = (usize, usize);

fn key(s: Span) -> Key {
    (s.start, s.end)
}

#[derive(Default)]
struct Attached {
    items: HashMap<Key, Notes>,
    /// Comments before a block's closing bracket, by the block's range.
    ends: HashMap<Key, Vec<Lead>>,
}

/// An item that can carry comments, and the block inside it (if any) whose
/// items carry their own.
struct Slot {
    span: Span,
    block: Option<(Span, Vec<Slot>)>,
}

fn leaf(span: Span) -> Slot {
    Slot { span, block: None }
}

fn setting_span(s: &Setting) -> Span {
    s.key.span.to(s.value.span)
}

fn setting_slot(s: &Setting) -> Slot {
    let block = match &s.value.kind {
        ValueKind::List(items) => Some((
            s.value.span,
            items.iter().map(|i| leaf(item_span(i))).collect(),
        )),
        _ => None,
    };
    Slot {
        span: setting_span(s),
        block,
    }
}

fn item_span(i: &ListItem) -> Span {
    match &i.alias {
        Some(a) => i.value.span.to(a.span),
        None => i.value.span,
    }
}

fn let_span(l: &Let) -> Span {
    l.name.span.to(l.expr.span)
}

fn indicator_span(i: &Indicator) -> Span {
    i.name.span.to(i.expr.span)
}

fn slots(file: &File) -> Vec<Slot> {
    file.rules
        .iter()
        .map(|r| {
            let mut items: Vec<Slot> = r.settings.iter().map(setting_slot).collect();
            for s in &r.sources {
                let mut inner: Vec<Slot> = s.lets.iter().map(|l| leaf(let_span(l))).collect();
                inner.extend(s.matches.iter().map(|m| leaf(m.span)));
                inner.extend(s.indicators.iter().map(|i| leaf(indicator_span(i))));
                inner.extend(s.outputs.iter().map(|o| Slot {
                    span: o.span,
                    block: Some((o.span, o.node.iter().map(setting_slot).collect())),
                }));
                inner.sort_by_key(|s| s.span.start);
                items.push(Slot {
                    span: s.span,
                    block: Some((s.span, inner)),
                });
            }
            items.extend(r.tests.iter().map(|t| leaf(t.span)));
            items.sort_by_key(|s| s.span.start);
            Slot {
                span: r.span,
                block: Some((r.span, items)),
            }
        })
        .collect()
}

struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }
    fn line(&self, pos: usize) -> usize {
        self.starts.partition_point(|&s| s <= pos) - 1
    }
    fn blank_above(&self, pos: usize) -> bool {
        let l = self.line(pos);
        if l == 0 {
            return false;
        }
        let (a, b) = (self.starts[l - 1], self.starts[l]);
        self.text[a..b].trim().is_empty()
    }
    fn code_before(&self, pos: usize) -> bool {
        let a = self.starts[self.line(pos)];
        !self.text[a..pos].trim().is_empty()
    }
}

fn attach(lines: &Lines, range: Span, slots: &[Slot], comments: &[&Comment], out: &mut Attached) {
    let mut below: Vec<Vec<&Comment>> = vec![Vec::new(); slots.len()];
    for c in comments {
        let at = c.span.start;
        if let Some(i) = slots
            .iter()
            .position(|s| s.span.start <= at && at < s.span.end)
        {
            match &slots[i].block {
                Some((inner, _)) if inner.start <= at && at < inner.end => below[i].push(c),
                _ => out
                    .items
                    .entry(key(slots[i].span))
                    .or_default()
                    .lead
                    .push(Lead::Comment(c.text.clone())),
            }
            continue;
        }
        let prev = slots.iter().rev().find(|s| s.span.end <= at);
        if let Some(p) = prev {
            if lines.code_before(at) && lines.line(p.span.end) == lines.line(at) {
                let notes = out.items.entry(key(p.span)).or_default();
                if notes.trail.is_none() {
                    notes.trail = Some(c.text.clone());
                    continue;
                }
            }
        }
        let mut lead = Vec::new();
        if lines.blank_above(at) {
            lead.push(Lead::Blank);
        }
        lead.push(Lead::Comment(c.text.clone()));
        match slots.iter().find(|s| s.span.start > at) {
            Some(next) => out
                .items
                .entry(key(next.span))
                .or_default()
                .lead
                .extend(lead),
            None => out.ends.entry(key(range)).or_default().extend(lead),
        }
    }
    for (i, s) in slots.iter().enumerate() {
        if lines.blank_above(s.span.start) {
            out.items
                .entry(key(s.span))
                .or_default()
                .lead
                .push(Lead::Blank);
        }
        if let Some((inner, kids)) = &s.block {
            attach(lines, *inner, kids, &below[i], out);
        }
    }
}

/// Format one rule file's text. Errors are the parse errors of the text.
pub fn format(name: &str, text: &str) -> Result<String, Report> {
    let fail = |d| Report {
        file: SourceFile::new(name, text),
        diagnostics: vec![d],
    };
    let file = crate::syntax::parse(text).map_err(fail)?;
    let comments = crate::syntax::comments(text).map_err(fail)?;
    let lines = Lines::new(text);
    let mut attached = Attached::default();
    let top = Span::new(0, text.len() + 1);
    let refs: Vec<&Comment> = comments.iter().collect();
    attach(&lines, top, &slots(&file), &refs, &mut attached);
    let mut p = Printer {
        text,
        notes: attached,
        out: Vec::new(),
    };
    for r in &file.rules {
        p.out.push(String::new());
        p.rule(r);
    }
    p.end(top, "");
    Ok(tidy(p.out))
}

/// Collapse blank runs, drop blanks at the start, the end, after an opening
/// and before a closing bracket.
fn tidy(lines: Vec<String>) -> String {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        if let Some(raw) = l.strip_prefix(RAW) {
            out.push(raw.to_string());
            continue;
        }
        let l = l.trim_end().to_string();
        if l.is_empty() {
            let after_open = out
                .last()
                .is_none_or(|p| p.is_empty() || p.ends_with('{') || p.ends_with('['));
            if !after_open {
                out.push(l);
            }
            continue;
        }
        let t = l.trim_start();
        if (t.starts_with('}') || t.starts_with(']')) && out.last().is_some_and(|p| p.is_empty()) {
            out.pop();
        }
        out.push(l);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

struct Printer<'a> {
    text: &'a str,
    notes: Attached,
    out: Vec<String>,
}

fn pad(s: &str, width: usize) -> String {
    format!("{s:<width$}")
}

fn ind(level: usize) -> String {
    INDENT.repeat(level)
}

impl Printer<'_> {
    fn lead(&mut self, span: Span, indent: &str) -> Option<String> {
        let notes = self.notes.items.remove(&key(span)).unwrap_or_default();
        for l in notes.lead {
            match l {
                Lead::Blank => self.out.push(String::new()),
                Lead::Comment(c) => self.out.push(format!("{indent}{c}")),
            }
        }
        notes.trail
    }

    fn trail(&mut self, trail: Option<String>) {
        if let (Some(c), Some(last)) = (trail, self.out.last_mut()) {
            last.push_str("  ");
            last.push_str(&c);
        }
    }

    fn end(&mut self, range: Span, indent: &str) {
        for l in self.notes.ends.remove(&key(range)).unwrap_or_default() {
            match l {
                Lead::Blank => self.out.push(String::new()),
                Lead::Comment(c) => self.out.push(format!("{indent}{c}")),
            }
        }
    }

    fn rule(&mut self, r: &Rule) {
        let trail = self.lead(r.span, "");
        self.out.push(format!("rule {} {{", r.name.node));
        let mut settings: Vec<&Setting> = r.settings.iter().collect();
        settings.sort_by_key(|s| order(crate::check::META_KEYS, &s.key.node));
        let width = settings.iter().map(|s| s.key.node.len()).max().unwrap_or(0);
        for s in settings {
            self.setting(s, 1, width);
        }
        for s in &r.sources {
            self.out.push(String::new());
            self.source(s);
        }
        for (i, t) in r.tests.iter().enumerate() {
            if i == 0 {
                self.out.push(String::new());
            }
            self.test(t);
        }
        self.end(r.span, &ind(1));
        self.out.push("}".into());
        self.trail(trail);
    }

    fn setting(&mut self, s: &Setting, level: usize, width: usize) {
        let indent = ind(level);
        let trail = self.lead(setting_span(s), &indent);
        let head = format!("{indent}{} = ", pad(&s.key.node, width));
        match &s.value.kind {
            ValueKind::Text(t) => {
                self.out.push(format!("{head}\"\"\""));
                for l in t.split('\n') {
                    if l.is_empty() {
                        self.out.push(RAW.to_string());
                    } else {
                        self.out.push(format!("{RAW}{}{l}", ind(level + 1)));
                    }
                }
                self.out.push(format!("{indent}\"\"\""));
            }
            ValueKind::List(items) => {
                let inline = value(&s.value);
                let commented = items.iter().any(|i| {
                    self.notes
                        .items
                        .get(&key(item_span(i)))
                        .is_some_and(|n| !n.lead.is_empty() || n.trail.is_some())
                }) || self.notes.ends.contains_key(&key(s.value.span));
                if !commented && head.len() + inline.len() <= WIDTH && !inline.contains('\n') {
                    self.out.push(format!("{head}{inline}"));
                } else {
                    self.out.push(format!("{head}["));
                    let inner = ind(level + 1);
                    for i in items {
                        let t = self.lead(item_span(i), &inner);
                        self.out.push(format!("{inner}{},", list_item(i)));
                        self.trail(t);
                    }
                    self.end(s.value.span, &inner);
                    self.out.push(format!("{indent}]"));
                }
            }
            ValueKind::Map(entries) => {
                let inline = value(&s.value);
                if head.len() + inline.len() <= WIDTH {
                    self.out.push(format!("{head}{inline}"));
                } else {
                    self.out.push(format!("{head}{{"));
                    let w = entries.iter().map(|(k, _)| k.node.len()).max().unwrap_or(0);
                    for (k, v) in entries {
                        self.out.push(format!(
                            "{}{} = {},",
                            ind(level + 1),
                            pad(&k.node, w),
                            value(v)
                        ));
                    }
                    self.out.push(format!("{indent}}}"));
                }
            }
            _ => self.out.push(format!("{head}{}", value(&s.value))),
        }
        self.trail(trail);
    }

    fn source(&mut self, s: &Source) {
        let trail = self.lead(s.span, &ind(1));
        let platforms: Vec<&str> = s.platforms.iter().map(|p| p.node.as_str()).collect();
        self.out.push(format!(
            "{}source {} on [{}] {{",
            ind(1),
            s.name.node,
            platforms.join(", ")
        ));
        let i2 = ind(2);
        let w = s.lets.iter().map(|l| l.name.node.len()).max().unwrap_or(0);
        for l in &s.lets {
            let t = self.lead(let_span(l), &i2);
            let head = format!("{i2}let {} = ", pad(&l.name.node, w));
            self.expr_stmt(head, &l.expr, 2);
            self.trail(t);
        }
        for m in &s.matches {
            self.out.push(String::new());
            let t = self.lead(m.span, &i2);
            self.expr_stmt(format!("{i2}match "), m, 2);
            self.trail(t);
        }
        let heads: Vec<String> = {
            let w = s
                .indicators
                .iter()
                .map(|i| i.name.node.len())
                .max()
                .unwrap_or(0);
            s.indicators
                .iter()
                .map(|i| match &i.severity {
                    Some(sev) => {
                        format!("indicator {} severity {}", pad(&i.name.node, w), sev.node)
                    }
                    None => format!("indicator {}", i.name.node),
                })
                .collect()
        };
        let hw = heads.iter().map(|h| h.len()).max().unwrap_or(0);
        for (k, (i, h)) in s.indicators.iter().zip(&heads).enumerate() {
            if k == 0 {
                self.out.push(String::new());
            }
            let t = self.lead(indicator_span(i), &i2);
            self.expr_stmt(format!("{i2}{} = ", pad(h, hw)), &i.expr, 2);
            self.trail(t);
        }
        for o in &s.outputs {
            self.out.push(String::new());
            let t = self.lead(o.span, &i2);
            self.out.push(format!("{i2}output {{"));
            let mut settings: Vec<&Setting> = o.node.iter().collect();
            settings.sort_by_key(|s| order(crate::check::OUTPUT_KEYS, &s.key.node));
            let w = settings.iter().map(|s| s.key.node.len()).max().unwrap_or(0);
            for st in settings {
                self.setting(st, 3, w);
            }
            self.end(o.span, &ind(3));
            self.out.push(format!("{i2}}}"));
            self.trail(t);
        }
        self.end(s.span, &i2);
        self.out.push(format!("{}}}", ind(1)));
        self.trail(trail);
    }

    fn expr_stmt(&mut self, head: String, e: &Expr, level: usize) {
        let cont = (level + 2) * INDENT.len();
        let mut lines = expr_lines(e, head.len(), cont);
        lines[0] = format!("{head}{}", lines[0]);
        self.out.extend(lines);
    }

    fn test(&mut self, t: &Test) {
        let indent = ind(1);
        let trail = self.lead(t.span, &indent);
        let mut head = format!(
            "{indent}test {} on {} expect ",
            string(&t.name.node),
            t.platform.node
        );
        if t.expect_match {
            head.push_str("match");
            if let Some(i) = &t.indicators {
                let names: Vec<&str> = i.iter().map(|n| n.node.as_str()).collect();
                head.push_str(&format!(" with [{}]", names.join(", ")));
            }
        } else {
            head.push_str("no match");
        }
        match &t.event {
            TestEvent::File(f) => {
                let ev = format!("file {}", string(&f.node));
                if head.len() + 1 + ev.len() <= WIDTH {
                    self.out.push(format!("{head} {ev}"));
                } else {
                    self.out.push(head);
                    self.out.push(format!("{}{ev}", ind(3)));
                }
            }
            TestEvent::Inline(j) => {
                // JSON is kept as written: its layout is the author's.
                let json = &self.text[j.span.start..j.span.end];
                let mut lines = json.split('\n');
                let first = lines.next().unwrap_or("");
                self.out.push(format!("{head} {first}"));
                self.out.extend(lines.map(|l| format!("{RAW}{l}")));
            }
        }
        self.trail(trail);
    }
}

fn order(keys: &[&str], k: &str) -> usize {
    keys.iter().position(|x| *x == k).unwrap_or(keys.len())
}

/// A string literal that parses back to `s`.
pub fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn value(v: &Value) -> String {
    match &v.kind {
        ValueKind::Str(s) => string(s),
        ValueKind::Text(t)
            if !t.contains('\n') && !t.starts_with(' ') && !t.ends_with('"') && !t.is_empty() =>
        {
            format!("\"\"\"{t}\"\"\"")
        }
        ValueKind::Text(t) => string(t),
        ValueKind::Num(n) => n.to_string(),
        ValueKind::Bool(b) => b.to_string(),
        ValueKind::Null => "null".into(),
        ValueKind::Date(s) | ValueKind::Duration(s) | ValueKind::Word(s) => s.clone(),
        ValueKind::Regex(r) => format!("/{}/", r.replace('/', "\\/")),
        ValueKind::List(items) => {
            let items: Vec<String> = items.iter().map(list_item).collect();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map(entries) if entries.is_empty() => "{}".into(),
        ValueKind::Map(entries) => {
            let e: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{} = {}", k.node, value(v)))
                .collect();
            format!("{{ {} }}", e.join(", "))
        }
    }
}

fn list_item(i: &ListItem) -> String {
    match &i.alias {
        Some(a) => format!("{} as {}", value(&i.value), a.node),
        None => value(&i.value),
    }
}

fn field(segs: &[FieldSeg]) -> String {
    let bare = regex_lite_key;
    segs.iter()
        .enumerate()
        .map(|(n, s)| match s {
            FieldSeg::AnyDepth => "**".to_string(),
            FieldSeg::Alias(a) => format!("${a}"),
            FieldSeg::Key(k) if bare(k) && !(n == 0 && KEYWORDS.contains(&k.as_str())) => k.clone(),
            FieldSeg::Key(k) => format!("`{k}`"),
        })
        .collect::<Vec<_>>()
        .join(".")
}

const KEYWORDS: &[&str] = &["not", "and", "or", "any", "all", "true", "false", "null"];

/// `key` of the grammar: `[A-Za-z_@][A-Za-z0-9_@-]*`.
fn regex_lite_key(k: &str) -> bool {
    let mut cs = k.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '@')
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@'))
}

fn cmp(c: &Cmp) -> String {
    let mut s = field(&c.field.node);
    if c.cased {
        s.push_str(" cased");
    }
    let list = |vs: &[Value]| {
        let v: Vec<String> = vs.iter().map(value).collect();
        format!("[{}]", v.join(", "))
    };
    let op = match c.op.node {
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::In => "in",
        CmpOp::StartsWith => "startswith",
        CmpOp::EndsWith => "endswith",
        CmpOp::Contains => "contains",
        CmpOp::Like => "like",
        CmpOp::Matches => "matches",
        CmpOp::Cidr => "cidr",
        CmpOp::Exists => "exists",
    };
    s.push(' ');
    s.push_str(op);
    match (c.op.node, c.quantifier) {
        (CmpOp::Exists, _) => {}
        (CmpOp::In, _) => s.push_str(&format!(" {}", list(&c.values))),
        (_, Some(all)) => s.push_str(&format!(
            " {} {}",
            if all { "all" } else { "any" },
            list(&c.values)
        )),
        (_, None) => {
            if let Some(v) = c.values.first() {
                s.push(' ');
                s.push_str(&value(v));
            }
        }
    }
    s
}

fn is_chain(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::And(_) | ExprKind::Or(_))
}

/// Whether `child` needs parentheses as an operand of `parent`
/// (`and` = true, `or` = false, `not` = None).
fn parens(child: &Expr, parent: Option<bool>) -> bool {
    match (&child.kind, parent) {
        (ExprKind::Or(_), _) => true,
        // Inside `or`, an `and` needs no parentheses; they are printed for the reader.
        (ExprKind::And(_), _) => true,
        _ => false,
    }
}

fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::And(xs) | ExprKind::Or(xs) => {
            let and = matches!(e.kind, ExprKind::And(_));
            let parts: Vec<String> = xs.iter().map(|x| operand(x, Some(and))).collect();
            parts.join(if and { " and " } else { " or " })
        }
        ExprKind::Not(x) => format!("not {}", operand(x, None)),
        ExprKind::Ref(n) => n.clone(),
        ExprKind::Quantified { all, names } => {
            let n: Vec<&str> = names.iter().map(|n| n.node.as_str()).collect();
            format!("{} of [{}]", if *all { "all" } else { "any" }, n.join(", "))
        }
        ExprKind::Cmp(c) => cmp(c),
    }
}

fn operand(x: &Expr, parent: Option<bool>) -> String {
    if parens(x, parent) {
        format!("({})", expr(x))
    } else {
        expr(x)
    }
}

/// `e` starting at column `col`; continuation lines start at column `cont`.
fn expr_lines(e: &Expr, col: usize, cont: usize) -> Vec<String> {
    let flat = expr(e);
    let (xs, and) = match &e.kind {
        ExprKind::And(xs) => (xs, true),
        ExprKind::Or(xs) => (xs, false),
        ExprKind::Cmp(c) => return cmp_lines(c, col, cont),
        _ => return vec![flat],
    };
    if col + flat.len() <= WIDTH {
        return vec![flat];
    }
    let kw = if and { "and " } else { "or " };
    let mut lines = operand_lines(&xs[0], Some(and), col, cont);
    for x in &xs[1..] {
        let mut l = operand_lines(x, Some(and), cont + kw.len(), cont);
        l[0] = format!("{}{kw}{}", " ".repeat(cont), l[0]);
        lines.extend(l);
    }
    lines
}

fn operand_lines(x: &Expr, parent: Option<bool>, col: usize, cont: usize) -> Vec<String> {
    if !parens(x, parent) || !is_chain(x) {
        return match &x.kind {
            ExprKind::Cmp(c) => cmp_lines(c, col, cont),
            _ => vec![operand(x, parent)],
        };
    }
    let mut l = expr_lines(x, col + 1, cont + 2 * INDENT.len());
    l[0] = format!("({}", l[0]);
    if let Some(last) = l.last_mut() {
        last.push(')');
    }
    l
}

/// A comparison with a list of values that does not fit: the values fill
/// lines at `cont` + 4, the bracket closes at `cont`.
fn cmp_lines(c: &Cmp, col: usize, cont: usize) -> Vec<String> {
    let flat = cmp(c);
    let listed = c.op.node == CmpOp::In || c.quantifier.is_some();
    if col + flat.len() <= WIDTH || !listed || c.values.len() < 2 {
        return vec![flat];
    }
    let open = flat.len() - flat[flat.find('[').unwrap_or(0)..].len() + 1;
    let mut lines = vec![flat[..open].to_string()];
    let inner = " ".repeat(cont + 2 * INDENT.len());
    let mut line = inner.clone();
    for v in &c.values {
        let v = format!("{},", value(v));
        if line.len() > inner.len() && line.len() + 1 + v.len() > WIDTH {
            lines.push(std::mem::replace(&mut line, inner.clone()));
        }
        if line.len() > inner.len() {
            line.push(' ');
        }
        line.push_str(&v);
    }
    lines.push(line);
    lines.push(format!("{}]", " ".repeat(cont)));
    lines
}
