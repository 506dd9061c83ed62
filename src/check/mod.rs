//! AST -> IR: name resolution, field checks against the source catalog,
//! regex portability, metadata validation, test loading. Every problem is a
//! [`Diagnostic`] with a span and a hint; checking goes on after the first
//! one so a user sees all of them at once.

pub mod regex_subset;

use crate::diag::{Diagnostic, Span};
use crate::ir::{self, Expr, Field, Op, Seg};
use crate::sources::{self, Catalog, FieldType};
use crate::syntax::ast::{self, CmpOp, ExprKind, FieldSeg, ListItem, Setting, Spanned, ValueKind};
use crate::target::Target;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

/// Longest chain of lets building on lets (bounds recursion downstream).
const MAX_LET_DEPTH: usize = 64;

/// Largest test event file read.
const MAX_EVENT_FILE_BYTES: u64 = 4 * 1024 * 1024;

pub struct Checker<'a> {
    text: &'a str,
    base_dir: &'a Path,
    diags: Vec<Diagnostic>,
}

/// Check a parsed file. `text` is the file's text (for name spans),
/// `base_dir` the directory test `file "..."` paths are relative to.
pub fn check_file(
    file: &ast::File,
    text: &str,
    base_dir: &Path,
) -> Result<Vec<ir::Rule>, Vec<Diagnostic>> {
    let mut c = Checker {
        text,
        base_dir,
        diags: Vec::new(),
    };
    let mut rules = Vec::new();
    let mut names: HashMap<String, Span> = HashMap::new();
    for r in &file.rules {
        if let Some(prev) = names.insert(r.name.node.clone(), r.name.span) {
            let line = line_of(text, prev.start);
            c.err(Diagnostic::new(format!("rule `{}` is defined twice", r.name.node), r.name.span)
                .label("second definition")
                .hint(format!("the first is on line {line}; rule names are output file names and must be unique")));
        }
        if let Some(rule) = c.rule(r) {
            rules.push(rule);
        }
    }
    if file.rules.is_empty() {
        c.err(
            Diagnostic::new("no rule in this file", Span::new(0, 0))
                .hint("a file holds `rule <name> { ... }`"),
        );
    }
    if c.diags.is_empty() {
        Ok(rules)
    } else {
        Err(c.diags)
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or(text);
    before.matches('\n').count() + 1
}

fn suggest<'s>(name: &str, candidates: impl IntoIterator<Item = &'s str>) -> Option<&'s str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(c, name), c))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn one_of(options: &[&str]) -> String {
    format!("one of: {}", options.join(", "))
}

/// Rule settings, in the canonical order `detc fmt` prints them.
pub const META_KEYS: &[&str] = &[
    "id",
    "title",
    "description",
    "author",
    "date",
    "modified",
    "status",
    "severity",
    "attack",
    "references",
    "false_positives",
    "runbook",
    "related",
    "tags",
    "lossy",
];

/// The condition `detc new` writes for the author to replace.
pub const PLACEHOLDER: &str = "TODO";

/// Output settings, in the canonical order `detc fmt` prints them.
pub const OUTPUT_KEYS: &[&str] = &[
    "group_by",
    "values",
    "rename",
    "title",
    "dedup",
    "schedule",
    "risk",
    "summary",
    "time_range",
];

impl<'a> Checker<'a> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn rule(&mut self, r: &ast::Rule) -> Option<ir::Rule> {
        let before = self.diags.len();
        let meta = self.meta(r);
        let mut detections = Vec::new();
        let mut seen_sources: HashMap<&str, Span> = HashMap::new();
        for (i, s) in r.sources.iter().enumerate() {
            if seen_sources
                .insert(s.name.node.as_str(), s.name.span)
                .is_some()
            {
                self.err(
                    Diagnostic::new(
                        format!("source `{}` appears twice", s.name.node),
                        s.name.span,
                    )
                    .label("again")
                    .hint("put all logic for one source in one `source` block"),
                );
                continue;
            }
            let stem = if i == 0 {
                r.name.node.clone()
            } else {
                format!("{}_{}", r.name.node, s.name.node.replace('.', "_"))
            };
            if let Some(d) = self.source(s, stem) {
                detections.push(d);
            }
        }
        if r.sources.is_empty() {
            self.err(
                Diagnostic::new(
                    format!("rule `{}` has no `source` block", r.name.node),
                    r.name.span,
                )
                .label("no source")
                .hint("add `source kubernetes.audit on [kubernetes, eks, aks, gke] { match ... }`"),
            );
        }
        let tests = self.tests(r, &detections);
        let meta = meta?;
        let id_span = r
            .settings
            .iter()
            .find(|s| s.key.node == "id")
            .map_or(r.name.span, |s| s.value.span);
        (self.diags.len() == before).then(|| ir::Rule {
            name: r.name.node.clone(),
            spans: ir::RuleSpans {
                name: r.name.span,
                id: id_span,
            },
            meta,
            detections,
            tests,
        })
    }

    // ------------------------------------------------------------ metadata

    fn meta(&mut self, r: &ast::Rule) -> Option<ir::Meta> {
        let mut seen: HashMap<&str, &Setting> = HashMap::new();
        for s in &r.settings {
            let key = s.key.node.as_str();
            if !META_KEYS.contains(&key) {
                let mut d = Diagnostic::new(format!("unknown setting `{key}`"), s.key.span)
                    .label("not a rule setting");
                d = match suggest(key, META_KEYS.iter().copied()) {
                    Some(k) => d.hint(format!("did you mean `{k}`?")),
                    None => d.hint(one_of(META_KEYS)),
                };
                self.err(d);
                continue;
            }
            if let Some(prev) = seen.insert(key, s) {
                let line = line_of(self.text, prev.key.span.start);
                self.err(
                    Diagnostic::new(format!("`{key}` is set twice"), s.key.span)
                        .label("again")
                        .hint(format!("it is first set on line {line}")),
                );
            }
        }
        let before = self.diags.len();
        let required = |c: &mut Self, key: &str| -> Option<&ast::Value> {
            match seen.get(key) {
                Some(s) => Some(&s.value),
                None => {
                    c.err(
                        Diagnostic::new(
                            format!("rule `{}` has no `{key}`", r.name.node),
                            r.name.span,
                        )
                        .label(format!("`{key}` missing"))
                        .hint(format!("add `{key} = ...` to the rule")),
                    );
                    None
                }
            }
        };
        let id = required(self, "id").and_then(|v| self.uuid(v));
        let title = required(self, "title").and_then(|v| self.text_value(v));
        let description = required(self, "description").and_then(|v| self.text_value(v));
        let author = required(self, "author").and_then(|v| self.text_value(v));
        let date = required(self, "date").and_then(|v| self.date(v));
        let status =
            required(self, "status").and_then(|v| self.enum_value(v, ir::Status::ALL, "status"));
        let severity = required(self, "severity")
            .and_then(|v| self.enum_value(v, ir::Severity::ALL, "severity"));
        let modified = seen.get("modified").and_then(|s| self.date(&s.value));
        if let (Some(d), Some(m), Some(ms)) = (&date, &modified, seen.get("modified")) {
            if m < d {
                self.err(
                    Diagnostic::new("`modified` is before `date`", ms.value.span)
                        .label("earlier than the creation date")
                        .hint("`date` is when the rule was written, `modified` its last change"),
                );
            }
        }
        let mut techniques = Vec::new();
        let mut tactics = Vec::new();
        if let Some(s) = seen.get("attack") {
            for item in self.list(&s.value).unwrap_or_default() {
                let v = &item.value;
                match &v.kind {
                    ValueKind::Word(w) | ValueKind::Str(w) if is_technique(w) => {
                        techniques.push(w.clone())
                    }
                    ValueKind::Word(w) | ValueKind::Str(w) if is_tactic(w) => {
                        tactics.push(w.clone())
                    }
                    _ => self.err(
                        Diagnostic::new("not an ATT&CK technique or tactic id", v.span)
                            .label("expected T1234, T1234.567 or TA0001")
                            .hint(
                                "ATT&CK ids look like `T1053.007` (technique) or `TA0003` (tactic)",
                            ),
                    ),
                }
            }
        }
        let strings = |c: &mut Self, key: &str| -> Vec<String> {
            seen.get(key)
                .map(|s| c.string_list(&s.value))
                .unwrap_or_default()
        };
        let references = strings(self, "references");
        let false_positives = strings(self, "false_positives");
        let tags = strings(self, "tags");
        let runbook = seen.get("runbook").and_then(|s| self.text_value(&s.value));
        let related = seen
            .get("related")
            .map(|s| self.related(&s.value))
            .unwrap_or_default();
        let mut lossy = Vec::new();
        if let Some(s) = seen.get("lossy") {
            for item in self.list(&s.value).unwrap_or_default() {
                let opts: Vec<(&str, Target)> = Target::ALL.map(|t| (t.name(), t)).to_vec();
                if let Some(t) = self.enum_value(&item.value, &opts, "target") {
                    lossy.push(t);
                }
            }
        }
        if self.diags.len() != before {
            return None;
        }
        Some(ir::Meta {
            id: id?,
            title: title?,
            description: description?,
            author: author?,
            date: date?,
            modified,
            status: status?,
            severity: severity?,
            techniques,
            tactics,
            references,
            false_positives,
            runbook,
            related,
            tags,
            lossy,
            version: 1,
        })
    }

    fn expected(&mut self, v: &ast::Value, what: &str, hint: &str) {
        self.err(
            Diagnostic::new(
                format!("expected {what}, found {}", v.kind.describe()),
                v.span,
            )
            .label(format!("expected {what}"))
            .hint(hint.to_string()),
        );
    }

    fn text_value(&mut self, v: &ast::Value) -> Option<String> {
        match &v.kind {
            ValueKind::Str(s) | ValueKind::Text(s) => Some(s.clone()),
            _ => {
                self.expected(
                    v,
                    "a string",
                    "write text in double quotes, or in \"\"\" for several lines",
                );
                None
            }
        }
    }

    fn uuid(&mut self, v: &ast::Value) -> Option<String> {
        let s = self.text_value(v)?;
        match uuid::Uuid::try_parse(&s) {
            Ok(u) if s.len() == 36 => Some(u.hyphenated().to_string()),
            _ => {
                self.err(Diagnostic::new(format!("`{s}` is not a UUID"), v.span)
                    .label("not a UUID")
                    .hint("ids are hyphenated UUIDs such as 6a6f1c1e-5d0b-4a8e-9c55-2f7b1d7b0c31 (uuidgen makes one)"));
                None
            }
        }
    }

    fn date(&mut self, v: &ast::Value) -> Option<String> {
        let text = match &v.kind {
            ValueKind::Date(d) => d.clone(),
            _ => {
                self.expected(v, "a date", "write dates as YYYY-MM-DD without quotes");
                return None;
            }
        };
        match chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            Ok(d) if d > chrono::Local::now().date_naive() + chrono::Days::new(1) => {
                self.err(
                    Diagnostic::new(format!("date {text} is in the future"), v.span)
                        .label("in the future")
                        .hint(
                            "Splunk's contentctl rejects future dates; use today's date or earlier",
                        ),
                );
                None
            }
            Ok(_) => Some(text),
            Err(_) => {
                self.err(
                    Diagnostic::new(format!("{text} is not a calendar date"), v.span)
                        .label("no such day")
                        .hint("dates are YYYY-MM-DD with a real month and day"),
                );
                None
            }
        }
    }

    fn enum_value<T: Copy>(
        &mut self,
        v: &ast::Value,
        options: &[(&str, T)],
        what: &str,
    ) -> Option<T> {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let word = match &v.kind {
            ValueKind::Word(w) | ValueKind::Str(w) => w.as_str(),
            _ => {
                self.expected(v, &format!("a {what}"), &one_of(&names));
                return None;
            }
        };
        if let Some((_, t)) = options.iter().find(|(n, _)| *n == word) {
            return Some(*t);
        }
        let mut d = Diagnostic::new(format!("`{word}` is not a {what}"), v.span)
            .label(format!("unknown {what}"));
        d = match suggest(word, names.iter().copied()) {
            Some(s) => d.hint(format!("did you mean `{s}`? ({})", one_of(&names))),
            None => d.hint(one_of(&names)),
        };
        self.err(d);
        None
    }

    fn list<'v>(&mut self, v: &'v ast::Value) -> Option<Vec<&'v ListItem>> {
        match &v.kind {
            ValueKind::List(items) => {
                for item in items {
                    if let Some(alias) = &item.alias {
                        self.err(
                            Diagnostic::new("`as` is not allowed here", alias.span)
                                .label("unexpected alias")
                                .hint(
                                    "aliases name output values: `values = [sourceIPs as src_ip]`",
                                ),
                        );
                    }
                }
                Some(items.iter().collect())
            }
            _ => {
                self.expected(v, "a list", "lists are written `[a, b, c]`");
                None
            }
        }
    }

    fn string_list(&mut self, v: &ast::Value) -> Vec<String> {
        self.list(v)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| self.text_value(&i.value))
            .collect()
    }

    fn related(&mut self, v: &ast::Value) -> Vec<ir::Related> {
        let mut out = Vec::new();
        for item in self.list(v).unwrap_or_default() {
            let Some(entries) = self.map(&item.value, &["id", "type"]) else {
                continue;
            };
            let id = entries.get("id").and_then(|v| self.uuid(v));
            let kind = entries
                .get("type")
                .and_then(|v| self.enum_value(v, ir::RelationKind::ALL, "relation type"));
            match (id, kind) {
                (Some(id), Some(kind)) => out.push(ir::Related { id, kind }),
                (None, _) if !entries.contains_key("id") => self.err(
                    Diagnostic::new("related rule without `id`", item.value.span)
                        .label("needs an id")
                        .hint("write `{ id = \"<uuid>\", type = similar }`"),
                ),
                (_, None) if !entries.contains_key("type") => self.err(
                    Diagnostic::new("related rule without `type`", item.value.span)
                        .label("needs a type")
                        .hint("types: derived, obsolete, merged, renamed, similar"),
                ),
                _ => {}
            }
        }
        out
    }

    /// A map with only `allowed` keys, each at most once.
    fn map<'v>(
        &mut self,
        v: &'v ast::Value,
        allowed: &[&str],
    ) -> Option<HashMap<String, &'v ast::Value>> {
        let ValueKind::Map(entries) = &v.kind else {
            self.expected(v, "a map", "maps are written `{ key = value, ... }`");
            return None;
        };
        let mut out = HashMap::new();
        for (k, val) in entries {
            if !allowed.is_empty() && !allowed.contains(&k.node.as_str()) {
                let mut d = Diagnostic::new(format!("unknown key `{}`", k.node), k.span)
                    .label("not expected here");
                d = match suggest(&k.node, allowed.iter().copied()) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None => d.hint(one_of(allowed)),
                };
                self.err(d);
                continue;
            }
            if out.insert(k.node.clone(), val).is_some() {
                self.err(
                    Diagnostic::new(format!("key `{}` appears twice", k.node), k.span)
                        .label("again")
                        .hint("keep one"),
                );
            }
        }
        Some(out)
    }

    // ------------------------------------------------------------ sources

    fn source(&mut self, s: &ast::Source, stem: String) -> Option<ir::Detection> {
        let Some(cat) = sources::catalog(&s.name.node) else {
            let names: Vec<&str> = sources::catalogs()
                .iter()
                .map(|c| c.source.as_str())
                .collect();
            let mut d = Diagnostic::new(format!("unknown source `{}`", s.name.node), s.name.span)
                .label("no such source");
            d = match suggest(&s.name.node, names.iter().copied()) {
                Some(n) => d.hint(format!("did you mean `{n}`? ({})", one_of(&names))),
                None => d.hint(one_of(&names)),
            };
            self.err(d);
            return None;
        };
        let before = self.diags.len();
        let mut platforms = Vec::new();
        for p in &s.platforms {
            if !cat.platforms.contains(&p.node) {
                let opts: Vec<&str> = cat.platforms.iter().map(String::as_str).collect();
                self.err(
                    Diagnostic::new(
                        format!("{} has no platform `{}`", cat.source, p.node),
                        p.span,
                    )
                    .label("unknown platform")
                    .hint(one_of(&opts)),
                );
            } else if platforms.contains(&p.node) {
                self.err(
                    Diagnostic::new(format!("platform `{}` is listed twice", p.node), p.span)
                        .label("again")
                        .hint("list it once"),
                );
            } else {
                platforms.push(p.node.clone());
            }
        }
        if s.platforms.is_empty() {
            self.err(
                Diagnostic::new("a source needs at least one platform", s.name.span)
                    .label("no platforms")
                    .hint(format!("e.g. `on [{}]`", cat.platforms.join(", "))),
            );
        }

        // Names: lets and indicators share one namespace.
        let mut lets: Vec<ir::Let> = Vec::new();
        let mut defined: HashMap<String, Span> = HashMap::new();
        let mut used: HashSet<String> = HashSet::new();
        let mut depth: HashMap<String, usize> = HashMap::new();
        for l in &s.lets {
            if defined.contains_key(&l.name.node) {
                self.err(
                    Diagnostic::new(format!("`{}` is defined twice", l.name.node), l.name.span)
                        .label("again")
                        .hint("give each `let` its own name"),
                );
                continue;
            }
            let known: Vec<String> = lets.iter().map(|l| l.name.clone()).collect();
            let later: Vec<&str> = s.lets.iter().map(|x| x.name.node.as_str()).collect();
            if let Some(expr) = self.expr(&l.expr, cat, &known, &later, &mut used) {
                let d = 1 + ref_depth(&expr, &depth);
                if d > MAX_LET_DEPTH {
                    self.err(
                        Diagnostic::new(
                            format!("`{}` builds on {MAX_LET_DEPTH} levels of lets", l.name.node),
                            l.name.span,
                        )
                        .label("too deep")
                        .hint("flatten the chain of `let` definitions"),
                    );
                }
                depth.insert(l.name.node.clone(), d);
                lets.push(ir::Let {
                    name: l.name.node.clone(),
                    expr,
                });
            }
            defined.insert(l.name.node.clone(), l.name.span);
        }
        let known: Vec<String> = s.lets.iter().map(|l| l.name.node.clone()).collect();
        let mut indicators = Vec::new();
        for ind in &s.indicators {
            if defined
                .insert(ind.name.node.clone(), ind.name.span)
                .is_some()
            {
                self.err(
                    Diagnostic::new(
                        format!("`{}` is defined twice", ind.name.node),
                        ind.name.span,
                    )
                    .label("again")
                    .hint("indicators and lets share one set of names"),
                );
                continue;
            }
            let severity = match &ind.severity {
                Some(sev) => {
                    let v = ast::Value {
                        kind: ValueKind::Word(sev.node.clone()),
                        span: sev.span,
                    };
                    self.enum_value(&v, ir::Severity::ALL, "severity")
                }
                None => Some(ir::Severity::High),
            };
            let expr = self.expr(&ind.expr, cat, &known, &[], &mut used);
            if let (Some(severity), Some(expr)) = (severity, expr) {
                indicators.push(ir::Indicator {
                    name: ind.name.node.clone(),
                    severity,
                    expr,
                });
            }
        }
        // `match` may name indicators (`match write and any of [privileged, host_path]`):
        // lets may use lets, indicators lets, and match both. A named indicator becomes a
        // let of the same name that the indicator refers to, so every target writes its
        // condition once.
        let mut with_indicators = known.clone();
        with_indicators.extend(indicators.iter().map(|i: &ir::Indicator| i.name.clone()));
        let condition = match s.matches.as_slice() {
            [m] => self.expr(m, cat, &with_indicators, &[], &mut used),
            [] => {
                self.err(
                    Diagnostic::new(
                        format!("source `{}` has no `match`", s.name.node),
                        s.name.span,
                    )
                    .label("nothing to match")
                    .hint("add `match <condition>` to the source block"),
                );
                None
            }
            [_, second, ..] => {
                self.err(
                    Diagnostic::new("a source has one `match`", second.span)
                        .label("second match")
                        .hint("combine them with `and` / `or`, or name parts with `let`"),
                );
                None
            }
        };
        for ind in indicators.iter_mut() {
            if used.contains(&ind.name) && !lets.iter().any(|l| l.name == ind.name) {
                let expr = std::mem::replace(&mut ind.expr, Expr::Ref(ind.name.clone()));
                lets.push(ir::Let {
                    name: ind.name.clone(),
                    expr,
                });
            }
        }
        for l in &s.lets {
            if !used.contains(&l.name.node) {
                self.err(
                    Diagnostic::new(format!("`{}` is never used", l.name.node), l.name.span)
                        .label("unused")
                        .hint("use it in `match` or an indicator, or delete it"),
                );
            }
        }
        let output = match s.outputs.as_slice() {
            [] => Some(ir::Output {
                time_range: true,
                ..Default::default()
            }),
            [o] => self.output(o, cat),
            [_, second, ..] => {
                self.err(
                    Diagnostic::new("a source has one `output` block", second.span)
                        .label("second output")
                        .hint("merge the settings into one block"),
                );
                None
            }
        };
        if self.diags.len() != before {
            return None;
        }
        Some(ir::Detection {
            source: cat.source.clone(),
            span: s.span,
            stem,
            platforms,
            lets,
            condition: condition?,
            indicators,
            output: output?,
        })
    }

    // ------------------------------------------------------------ expressions

    fn expr(
        &mut self,
        e: &ast::Expr,
        cat: &Catalog,
        known: &[String],
        later: &[&str],
        used: &mut HashSet<String>,
    ) -> Option<Expr> {
        match &e.kind {
            ExprKind::And(xs) | ExprKind::Or(xs) => {
                let is_and = matches!(e.kind, ExprKind::And(..));
                let mut items = Vec::with_capacity(xs.len());
                let mut ok = true;
                for x in xs {
                    match self.expr(x, cat, known, later, used) {
                        // Flatten nested groups of the same operator.
                        Some(Expr::And(inner)) if is_and => items.extend(inner),
                        Some(Expr::Or(inner)) if !is_and => items.extend(inner),
                        Some(other) => items.push(other),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                Some(if is_and {
                    Expr::And(items)
                } else {
                    Expr::Or(items)
                })
            }
            ExprKind::Not(x) => Some(Expr::Not(Box::new(self.expr(x, cat, known, later, used)?))),
            ExprKind::Ref(name) => {
                self.name_ref(&Spanned::new(name.clone(), e.span), known, later, used)
            }
            ExprKind::Quantified { all, names } => {
                let refs: Vec<Option<Expr>> = names
                    .iter()
                    .map(|n| self.name_ref(n, known, later, used))
                    .collect();
                let refs: Option<Vec<Expr>> = refs.into_iter().collect();
                let refs = refs?;
                Some(if *all {
                    Expr::And(refs)
                } else {
                    Expr::Or(refs)
                })
            }
            ExprKind::Cmp(c) => self.comparison(c, cat),
        }
    }

    fn name_ref(
        &mut self,
        name: &Spanned<String>,
        known: &[String],
        later: &[&str],
        used: &mut HashSet<String>,
    ) -> Option<Expr> {
        if known.contains(&name.node) {
            used.insert(name.node.clone());
            return Some(Expr::Ref(name.node.clone()));
        }
        if name.node == PLACEHOLDER {
            // `detc new` writes `match TODO`.
            self.err(
                Diagnostic::new(
                    "the condition is still the placeholder `TODO`: fill in what this rule detects",
                    name.span,
                )
                .label("replace TODO")
                .hint("write a condition on the source's fields, such as `verb == \"create\" and objectRef.resource == \"cronjobs\"`; `detc fields <source>` lists the fields"),
            );
            return None;
        }
        let mut d = Diagnostic::new(format!("unknown condition `{}`", name.node), name.span)
            .label("not defined");
        if later.contains(&name.node.as_str()) {
            used.insert(name.node.clone());
            d = d.hint(format!(
                "`{}` is defined later; a `let` can only use lets above it",
                name.node
            ));
        } else if let Some(s) = suggest(&name.node, known.iter().map(String::as_str)) {
            d = d.hint(format!("did you mean `{s}`?"));
        } else {
            d = d.hint("define it with `let name = <condition>`, or compare a field with an operator such as `==` or `exists`");
        }
        self.err(d);
        None
    }

    /// One concrete field (outputs, titles): a path alias names several.
    fn field(
        &mut self,
        f: &Spanned<Vec<FieldSeg>>,
        cat: &Catalog,
    ) -> Option<(Field, sources::Resolved)> {
        let mut all = self.fields(f, cat)?;
        if all.len() > 1 {
            self.err(
                Diagnostic::new(
                    format!("`{}` names {} paths here", written(&f.node), all.len()),
                    f.span,
                )
                .label("a path alias")
                .hint("a path alias only goes in conditions; name one concrete path"),
            );
            return None;
        }
        all.pop()
    }

    /// The concrete fields a written field stands for: itself, or one per
    /// branch of its path alias (`requestObject.$podSpec.containers`).
    fn fields(
        &mut self,
        f: &Spanned<Vec<FieldSeg>>,
        cat: &Catalog,
    ) -> Option<Vec<(Field, sources::Resolved)>> {
        let paths = match self.expand_alias(f, cat)? {
            Some(paths) => paths,
            None => vec![Field(
                f.node
                    .iter()
                    .map(|s| match s {
                        FieldSeg::Key(k) => Seg::Key(k.clone()),
                        FieldSeg::AnyDepth | FieldSeg::Alias(_) => Seg::AnyDepth,
                    })
                    .collect(),
            )],
        };
        let mut out = Vec::with_capacity(paths.len());
        for field in paths {
            match cat.resolve(&field) {
                Ok(r) => out.push((field, r)),
                Err(why) => {
                    let mut d =
                        Diagnostic::new(format!("unknown field `{field}`"), f.span).label(why);
                    d = match cat.suggest(&field.dotted()) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None => d.hint(format!(
                            "fields of {} are listed in `detc fields {}`",
                            cat.source, cat.source
                        )),
                    };
                    self.err(d);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// The concrete paths of a field with a `$alias` segment, or `None`
    /// when it has none.
    fn expand_alias(
        &mut self,
        f: &Spanned<Vec<FieldSeg>>,
        cat: &Catalog,
    ) -> Option<Option<Vec<Field>>> {
        let Some(at) = f.node.iter().position(|s| matches!(s, FieldSeg::Alias(_))) else {
            return Some(None);
        };
        let FieldSeg::Alias(name) = &f.node[at] else {
            return Some(None);
        };
        let shown = written(&f.node);
        let names: Vec<&str> = cat.aliases.iter().map(|a| a.name.as_str()).collect();
        let Some(alias) = cat.alias(name) else {
            let mut d = Diagnostic::new(format!("unknown path alias `${name}`"), f.span)
                .label(format!("not a path alias of {}", cat.source));
            d = match (suggest(name, names.iter().copied()), names.is_empty()) {
                (Some(s), _) => d.hint(format!("did you mean `${s}`?")),
                (None, true) => d.hint(format!("{} has no path aliases", cat.source)),
                (None, false) => d.hint(format!(
                    "path aliases of {}: {}",
                    cat.source,
                    names
                        .iter()
                        .map(|n| format!("${n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            self.err(d);
            return None;
        };
        let prefix: Option<Vec<&str>> = f.node[..at]
            .iter()
            .map(|s| match s {
                FieldSeg::Key(k) => Some(k.as_str()),
                _ => None,
            })
            .collect();
        let prefix = prefix.map(|p| p.join("."));
        if !prefix.as_ref().is_some_and(|p| alias.below.contains(p)) {
            self.err(
                Diagnostic::new(
                    format!("`${name}` cannot follow `{}`", written(&f.node[..at])),
                    f.span,
                )
                .label(format!(
                    "`${name}` names paths below {}",
                    alias.below.join(" and ")
                ))
                .hint(format!(
                    "`${name}` goes right after {}, e.g. `{}.${name}.{}`",
                    alias
                        .below
                        .iter()
                        .map(|b| format!("`{b}`"))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    alias.below[0],
                    alias
                        .arrays
                        .first()
                        .or(alias.keys.first())
                        .map_or("", String::as_str)
                )),
            );
            return None;
        }
        let rest = &f.node[at + 1..];
        let first = match rest.first() {
            Some(FieldSeg::Key(k)) => Some(k.as_str()),
            _ => None,
        };
        if !first.is_some_and(|k| alias.keys.iter().any(|x| x == k)) {
            let mut d = Diagnostic::new(
                format!("`{shown}` does not name a field of `${name}`"),
                f.span,
            )
            .label(match first {
                Some(k) => format!("`{k}` is not a key of `${name}`"),
                None => format!("`${name}` must be followed by one of its keys"),
            });
            d = match first.and_then(|k| suggest(k, alias.keys.iter().map(String::as_str))) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None => d.hint(format!(
                    "{}; its keys: {}",
                    alias.description,
                    alias.keys.join(", ")
                )),
            };
            self.err(d);
            return None;
        }
        if rest.iter().any(|s| matches!(s, FieldSeg::Alias(_))) {
            self.err(
                Diagnostic::new(format!("`{shown}` uses two path aliases"), f.span)
                    .label("one alias per field")
                    .hint("a field holds at most one `$alias`"),
            );
            return None;
        }
        let below: Vec<Seg> = f.node[..at]
            .iter()
            .filter_map(|s| match s {
                FieldSeg::Key(k) => Some(Seg::Key(k.clone())),
                _ => None,
            })
            .collect();
        let tail: Vec<Seg> = rest
            .iter()
            .map(|s| match s {
                FieldSeg::Key(k) => Seg::Key(k.clone()),
                _ => Seg::AnyDepth,
            })
            .collect();
        Some(Some(
            alias
                .paths
                .iter()
                .map(|p| {
                    let mut segs = below.clone();
                    segs.extend(p.path.split('.').map(|k| Seg::Key(k.to_string())));
                    segs.extend(tail.iter().cloned());
                    Field(segs)
                })
                .collect(),
        ))
    }

    /// A comparison; through a path alias, the OR of it on every concrete
    /// path (`x == null` through an alias: no path holds `x`).
    fn comparison(&mut self, c: &ast::Cmp, cat: &Catalog) -> Option<Expr> {
        let mut fields = self.fields(&c.field, cat)?;
        if fields.len() <= 1 {
            let (field, resolved) = fields.pop()?;
            return self.comparison_on(c, field, resolved);
        }
        let (field, resolved) = fields[0].clone();
        let one = self.comparison_on(c, field, resolved)?;
        let on = |e: &Expr, field: &Field, info: &sources::Resolved| match e {
            Expr::Cmp(x) => Expr::Cmp(ir::Cmp {
                field: field.clone(),
                info: info.clone(),
                ..x.clone()
            }),
            other => other.clone(),
        };
        Some(match &one {
            Expr::Not(inner) => Expr::Not(Box::new(Expr::Or(
                fields.iter().map(|(f, r)| on(inner, f, r)).collect(),
            ))),
            _ => Expr::Or(fields.iter().map(|(f, r)| on(&one, f, r)).collect()),
        })
    }

    fn comparison_on(
        &mut self,
        c: &ast::Cmp,
        field: Field,
        resolved: sources::Resolved,
    ) -> Option<Expr> {
        let op_span = c.op.span;
        let op = match c.op.node {
            CmpOp::Eq | CmpOp::In => Op::Eq,
            CmpOp::Ne => Op::Ne,
            CmpOp::Lt => Op::Lt,
            CmpOp::Le => Op::Le,
            CmpOp::Gt => Op::Gt,
            CmpOp::Ge => Op::Ge,
            CmpOp::StartsWith => Op::StartsWith,
            CmpOp::EndsWith => Op::EndsWith,
            CmpOp::Contains => Op::Contains,
            CmpOp::Like => Op::Like,
            CmpOp::Matches => Op::Matches,
            CmpOp::Cidr => Op::Cidr,
            CmpOp::Exists => Op::Exists,
        };
        if op == Op::Exists {
            if c.cased {
                self.err(
                    Diagnostic::new(
                        "`cased` has no meaning for `exists`",
                        c.field.span.to(op_span),
                    )
                    .label("drop `cased`")
                    .hint("`cased` makes a string comparison case-sensitive"),
                );
                return None;
            }
            return Some(Expr::Cmp(ir::Cmp {
                field,
                info: resolved,
                op,
                cased: false,
                all: false,
                values: vec![],
            }));
        }
        // `x == null` / `x != null` are spelled-out presence tests.
        if matches!(op, Op::Eq | Op::Ne)
            && c.values.len() == 1
            && matches!(c.values[0].kind, ValueKind::Null)
        {
            let exists = Expr::Cmp(ir::Cmp {
                field,
                info: resolved,
                op: Op::Exists,
                cased: false,
                all: false,
                values: vec![],
            });
            return Some(if op == Op::Eq {
                Expr::Not(Box::new(exists))
            } else {
                exists
            });
        }
        if c.values.is_empty() {
            self.err(
                Diagnostic::new("empty list", op_span.to(c.field.span))
                    .label("no values")
                    .hint("give at least one value"),
            );
            return None;
        }
        if matches!(resolved.ty, FieldType::Object | FieldType::Map) {
            self.err(
                Diagnostic::new(
                    format!("`{field}` is an object; compare one of its fields"),
                    c.field.span,
                )
                .label("object field")
                .hint("use a sub-field such as `user.username`, or `exists`"),
            );
            return None;
        }
        let before = self.diags.len();
        let mut values = Vec::new();
        for v in &c.values {
            if let Some(val) = self.cmp_value(op, v, &resolved) {
                values.push(val);
            }
        }
        if self.diags.len() != before {
            return None;
        }
        if c.cased
            && values.iter().all(|v| {
                !matches!(
                    v,
                    ir::Value::Str(_) | ir::Value::Regex(_) | ir::Value::Glob(_)
                )
            })
        {
            self.err(
                Diagnostic::new("`cased` only applies to string comparisons", op_span)
                    .label("not a string comparison")
                    .hint("drop `cased`"),
            );
            return None;
        }
        Some(Expr::Cmp(ir::Cmp {
            field,
            info: resolved,
            op,
            cased: c.cased,
            all: c.quantifier == Some(true),
            values,
        }))
    }

    fn cmp_value(
        &mut self,
        op: Op,
        v: &ast::Value,
        field: &sources::Resolved,
    ) -> Option<ir::Value> {
        let bad = |c: &mut Self, want: &str, hint: &str| {
            c.err(
                Diagnostic::new(
                    format!(
                        "`{}` needs {want}, found {}",
                        op.keyword(),
                        v.kind.describe()
                    ),
                    v.span,
                )
                .label(format!("expected {want}"))
                .hint(hint.to_string()),
            );
            None
        };
        // A number field compares as a number only: its text differs between
        // events and targets (`5`, `5.0`, `"5"`, Elastic's coerced long), so
        // a string comparison on it would give each target its own verdict.
        let as_text = matches!(
            (op, &v.kind),
            (Op::Eq | Op::Ne, ValueKind::Str(_))
                | (
                    Op::StartsWith | Op::EndsWith | Op::Contains | Op::Like | Op::Matches,
                    _
                )
        );
        if as_text && field.ty == FieldType::Number && !field.free_form {
            self.err(
                Diagnostic::new(
                    format!(
                        "`{}` with {} on a number field compares text",
                        op.keyword(),
                        v.kind.describe()
                    ),
                    v.span,
                )
                .label("the field holds numbers")
                .hint("compare it with a number (`== 5`, `>= 400 and < 500`): numbers are written differently by events and targets (`5`, `5.0`, `\"5\"`)"),
            );
            return None;
        }
        match (op, &v.kind) {
            (Op::Lt | Op::Le | Op::Gt | Op::Ge, ValueKind::Num(n)) => {
                if !matches!(
                    field.ty,
                    FieldType::Number | FieldType::String | FieldType::Any
                ) {
                    return bad(
                        self,
                        "a numeric field",
                        "numeric comparisons apply to number fields",
                    );
                }
                Some(ir::Value::Num(canonical_number(n)))
            }
            (Op::Lt | Op::Le | Op::Gt | Op::Ge, _) => {
                bad(self, "a number", "write a number such as `400`")
            }
            (Op::Matches, ValueKind::Regex(r)) => {
                if let Err((why, hint)) = regex_subset::check(r) {
                    self.err(
                        Diagnostic::new(
                            format!("regex outside the portable subset: {why}"),
                            v.span,
                        )
                        .label("not portable")
                        .hint(hint),
                    );
                    return None;
                }
                Some(ir::Value::Regex(r.clone()))
            }
            (Op::Matches, _) => bad(self, "a regex", "regexes are written `/pattern/`"),
            (_, ValueKind::Regex(_)) => bad(
                self,
                "a string",
                "regexes go with `matches`: `field matches /re/`",
            ),
            (Op::Cidr, ValueKind::Str(s)) => {
                if s.parse::<ipnet::IpNet>().is_err() {
                    self.err(
                        Diagnostic::new(format!("`{s}` is not a CIDR network"), v.span)
                            .label("not a network")
                            .hint("write networks as `10.0.0.0/8` or `fd00::/8`"),
                    );
                    return None;
                }
                if !matches!(field.ty, FieldType::Ip | FieldType::String | FieldType::Any) {
                    return bad(self, "an IP field", "`cidr` applies to IP address fields");
                }
                ir::Net::parse(s).ok().map(ir::Value::Net)
            }
            (Op::Cidr, _) => bad(
                self,
                "a network string",
                "write networks as `\"10.0.0.0/8\"`",
            ),
            (Op::Eq | Op::Ne, ValueKind::Num(n)) => Some(ir::Value::Num(canonical_number(n))),
            (Op::Eq | Op::Ne, ValueKind::Bool(b)) => Some(ir::Value::Bool(*b)),
            (Op::Eq | Op::Ne, ValueKind::Null) => bad(
                self,
                "a value",
                "`null` can only be compared alone: `x == null`",
            ),
            (Op::Like, ValueKind::Str(s)) => match ir::Glob::parse(s) {
                Ok(g) if !regex_subset::glob_builds(&g) => {
                    self.err(
                        Diagnostic::new(
                            format!(
                                "the glob's regex is over the {}-byte limit detc evaluates",
                                regex_subset::EVAL_SIZE_LIMIT
                            ),
                            v.span,
                        )
                        .label("too large to evaluate")
                        .hint("use fewer `?` and letters, or split it into several conditions"),
                    );
                    None
                }
                Ok(g) => Some(ir::Value::Glob(g)),
                Err(_) => bad(
                    self,
                    "a complete glob",
                    "a glob cannot end in a lone backslash; write `\\\\`",
                ),
            },
            (_, ValueKind::Str(s)) => {
                if s.is_empty() && matches!(op, Op::StartsWith | Op::EndsWith | Op::Contains) {
                    return bad(
                        self,
                        "a non-empty string",
                        "an empty string matches everything; use `exists`",
                    );
                }
                Some(ir::Value::Str(s.clone()))
            }
            (_, _) => bad(self, "a string", "write strings in double quotes"),
        }
    }

    // ------------------------------------------------------------ output

    fn output_field(&mut self, v: &ast::Value, cat: &Catalog) -> Option<Field> {
        let ValueKind::Word(w) = &v.kind else {
            self.expected(v, "a field path", "write fields bare: `user.username`");
            return None;
        };
        let (field, resolved) = self.field(&Spanned::new(path_segments(w), v.span), cat)?;
        if field.has_any_depth() || matches!(resolved.ty, FieldType::Object) {
            self.err(
                Diagnostic::new(format!("`{field}` cannot be an output field"), v.span)
                    .label("not a single value")
                    .hint("output fields are concrete paths to values"),
            );
            return None;
        }
        Some(field)
    }

    fn output(&mut self, o: &Spanned<Vec<Setting>>, cat: &Catalog) -> Option<ir::Output> {
        let before = self.diags.len();
        let mut out = ir::Output {
            time_range: true,
            ..Default::default()
        };
        let mut seen = HashSet::new();
        for s in &o.node {
            let key = s.key.node.as_str();
            if !seen.insert(key) {
                self.err(
                    Diagnostic::new(format!("`{key}` is set twice"), s.key.span)
                        .label("again")
                        .hint("keep one"),
                );
                continue;
            }
            let v = &s.value;
            match key {
                "group_by" | "summary" => {
                    let fields: Vec<Field> = match &v.kind {
                        ValueKind::List(items) => items
                            .iter()
                            .filter_map(|i| self.output_field(&i.value, cat))
                            .collect(),
                        _ => {
                            self.expected(
                                v,
                                "a list of fields",
                                "write `[user.username, objectRef.namespace]`",
                            );
                            vec![]
                        }
                    };
                    if key == "group_by" {
                        out.group_by = fields;
                    } else {
                        out.summary = fields;
                    }
                }
                "values" => {
                    if let ValueKind::List(items) = &v.kind {
                        for i in items {
                            if let Some(field) = self.output_field(&i.value, cat) {
                                out.values.push(ir::Aliased {
                                    field,
                                    alias: i.alias.as_ref().map(|a| a.node.clone()),
                                });
                            }
                        }
                    } else {
                        self.expected(
                            v,
                            "a list of fields",
                            "write `[user.groups as user_groups, userAgent]`",
                        );
                    }
                }
                "rename" => {
                    if let ValueKind::Map(entries) = &v.kind {
                        for (k, to) in entries {
                            let kv = ast::Value {
                                kind: ValueKind::Word(k.node.clone()),
                                span: k.span,
                            };
                            let field = self.output_field(&kv, cat);
                            let name = match &to.kind {
                                ValueKind::Word(w) if ir::is_plain_key(w) => Some(w.clone()),
                                _ => {
                                    self.expected(
                                        to,
                                        "a plain name",
                                        "new names are bare words: `user`",
                                    );
                                    None
                                }
                            };
                            if let (Some(f), Some(n)) = (field, name) {
                                out.rename.push((f, n));
                            }
                        }
                    } else {
                        self.expected(v, "a map", "write `{ user.username = user }`");
                    }
                }
                "title" => {
                    if let Some(t) = self.text_value(v) {
                        out.title = self.template(&t, v.span, |c, name, span| {
                            c.field(&Spanned::new(path_segments(name), span), cat)
                                .map(|(f, _)| f)
                        });
                    }
                }
                "dedup" => out.dedup_minutes = self.duration_minutes(v),
                "schedule" => out.schedule = self.schedule(v),
                "time_range" => match v.kind {
                    ValueKind::Bool(b) => out.time_range = b,
                    _ => self.expected(
                        v,
                        "true or false",
                        "`time_range = false` drops first/last seen times",
                    ),
                },
                "risk" => {} // after renames and values are known
                _ => {
                    let mut d =
                        Diagnostic::new(format!("unknown output setting `{key}`"), s.key.span)
                            .label("not an output setting");
                    d = match suggest(key, OUTPUT_KEYS.iter().copied()) {
                        Some(k) => d.hint(format!("did you mean `{k}`?")),
                        None => d.hint(one_of(OUTPUT_KEYS)),
                    };
                    self.err(d);
                }
            }
        }
        if let Some(s) = o.node.iter().find(|s| s.key.node == "risk") {
            out.risk = self.risk(&s.value, &out);
        }
        (self.diags.len() == before).then_some(out)
    }

    fn template(
        &mut self,
        text: &str,
        span: Span,
        mut resolve: impl FnMut(&mut Self, &str, Span) -> Option<Field>,
    ) -> Option<ir::Template> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut ok = true;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(ir::TemplatePart::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                self.err(
                    Diagnostic::new("unclosed `{` in template", span)
                        .label("template")
                        .hint("placeholders are `{field.path}`"),
                );
                return None;
            };
            let name = rest[open + 1..open + close].trim();
            match resolve(self, name, span) {
                Some(f) => parts.push(ir::TemplatePart::Field(f)),
                None => ok = false,
            }
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(ir::TemplatePart::Text(rest.to_string()));
        }
        ok.then_some(ir::Template(parts))
    }

    fn duration_minutes(&mut self, v: &ast::Value) -> Option<u32> {
        let ValueKind::Duration(d) = &v.kind else {
            self.expected(v, "a duration", "write durations as `60m`, `3h` or `1d`");
            return None;
        };
        let digits: String = d.chars().take_while(char::is_ascii_digit).collect();
        let unit = &d[digits.len()..];
        let n: u64 = digits.parse().unwrap_or(u64::MAX);
        let minutes = match unit {
            "m" => Some(n),
            "h" => n.checked_mul(60),
            "d" => n.checked_mul(1440),
            _ => None,
        };
        match minutes
            .and_then(|m| u32::try_from(m).ok())
            .filter(|m| (1..=1440 * 7).contains(m))
        {
            Some(m) => Some(m),
            None => {
                self.err(
                    Diagnostic::new(format!("`{d}` is not a usable dedup period"), v.span)
                        .label("out of range")
                        .hint("a dedup period is whole minutes, hours or days between 1m and 7d"),
                );
                None
            }
        }
    }

    fn schedule(&mut self, v: &ast::Value) -> Option<ir::Schedule> {
        let m = self.map(v, &["cron", "earliest", "latest"])?;
        let get = |c: &mut Self, k: &str, default: &str| -> Option<String> {
            match m.get(k) {
                Some(v) => c.text_value(v),
                None => Some(default.to_string()),
            }
        };
        let cron = get(self, "cron", "0 * * * *")?;
        let cron_ok = cron.split_whitespace().count() == 5
            && cron
                .split_whitespace()
                .all(|f| f.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c)));
        if !cron_ok {
            let span = m.get("cron").map_or(v.span, |x| x.span);
            self.err(Diagnostic::new(format!("`{cron}` is not a cron schedule"), span)
                .label("expected five fields")
                .hint("cron schedules have five fields of digits, `*`, `/`, `,` and `-`, e.g. \"0 * * * *\""));
            return None;
        }
        let earliest = get(self, "earliest", "-70m@m")?;
        let latest = get(self, "latest", "-10m@m")?;
        for (k, t) in [("earliest", &earliest), ("latest", &latest)] {
            let ok = t == "now"
                || (t.starts_with('-')
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-+@".contains(c)));
            if !ok {
                let span = m.get(k).map_or(v.span, |x| x.span);
                self.err(
                    Diagnostic::new(format!("`{t}` is not a relative time"), span)
                        .label("expected e.g. -70m@m")
                        .hint("times are relative: `-70m@m`, `-1h`, `now`"),
                );
                return None;
            }
        }
        Some(ir::Schedule {
            cron,
            earliest,
            latest,
        })
    }

    fn risk(&mut self, v: &ast::Value, out: &ir::Output) -> Option<ir::Risk> {
        let m = self.map(
            v,
            &[
                "score",
                "impact",
                "confidence",
                "message",
                "objects",
                "threats",
            ],
        )?;
        let pct = |c: &mut Self, k: &str| -> Option<u32> {
            let Some(v) = m.get(k) else {
                c.err(
                    Diagnostic::new(format!("risk needs `{k}`"), v.span)
                        .label("missing")
                        .hint(format!("add `{k} = 0..100`")),
                );
                return None;
            };
            match &v.kind {
                ValueKind::Num(n) if n.as_u64().is_some_and(|x| x <= 100) => {
                    n.as_u64().map(|x| x as u32)
                }
                _ => {
                    c.expected(v, "a whole number 0..100", "risk scores are percentages");
                    None
                }
            }
        };
        let score = pct(self, "score");
        let impact = pct(self, "impact");
        let confidence = pct(self, "confidence");
        let names = output_names(out);
        let message = match m.get("message") {
            Some(mv) => {
                let text = self.text_value(mv)?;
                self.template(&text, mv.span, |c, name, span| {
                    if names.contains(name) {
                        return Some(Field(vec![Seg::Key(name.to_string())]));
                    }
                    c.err(
                        Diagnostic::new(format!("`{name}` is not an output name"), span)
                            .label("unknown placeholder")
                            .hint(format!(
                                "risk messages refer to output names: {}",
                                names.iter().cloned().collect::<Vec<_>>().join(", ")
                            )),
                    );
                    None
                })
            }
            None => {
                self.err(
                    Diagnostic::new("risk needs a `message`", v.span)
                        .label("missing")
                        .hint("add `message = \"... {user}\"`"),
                );
                None
            }
        };
        let objects = |c: &mut Self, key: &str, types: &[&str]| -> Vec<(String, String)> {
            let Some(val) = m.get(key) else { return vec![] };
            let Some(entries) = c.map(val, &[]) else {
                return vec![];
            };
            let mut pairs: Vec<(String, String)> = Vec::new();
            for (name, ty) in entries {
                if !names.contains(name.as_str()) {
                    c.err(
                        Diagnostic::new(format!("`{name}` is not an output name"), val.span)
                            .label("unknown")
                            .hint(format!(
                                "risk and threat objects name output fields: {}",
                                names.iter().cloned().collect::<Vec<_>>().join(", ")
                            )),
                    );
                    continue;
                }
                if let Some(t) = c.enum_value(
                    ty,
                    &types.iter().map(|t| (*t, *t)).collect::<Vec<_>>(),
                    "object type",
                ) {
                    pairs.push((name, t.to_string()));
                }
            }
            pairs.sort();
            pairs
        };
        let objs = objects(self, "objects", &["user", "system", "other"]);
        let threats = objects(
            self,
            "threats",
            &[
                "ip_address",
                "domain",
                "url",
                "process",
                "file_name",
                "file_hash",
                "command",
                "email_address",
                "other",
            ],
        );
        Some(ir::Risk {
            score: score?,
            impact: impact?,
            confidence: confidence?,
            message: message?,
            objects: objs,
            threats,
        })
    }

    // ------------------------------------------------------------ tests

    fn tests(&mut self, r: &ast::Rule, detections: &[ir::Detection]) -> Vec<ir::TestCase> {
        let mut out = Vec::new();
        let mut names: HashMap<&str, Span> = HashMap::new();
        let all_platforms: BTreeSet<&str> = r
            .sources
            .iter()
            .flat_map(|s| s.platforms.iter().map(|p| p.node.as_str()))
            .collect();
        for t in &r.tests {
            if names.insert(t.name.node.as_str(), t.name.span).is_some() {
                self.err(
                    Diagnostic::new(
                        format!("test `{}` is defined twice", t.name.node),
                        t.name.span,
                    )
                    .label("same name")
                    .hint("test names identify results; make each unique"),
                );
            }
            if !all_platforms.contains(t.platform.node.as_str()) {
                let opts: Vec<&str> = all_platforms.iter().copied().collect();
                self.err(
                    Diagnostic::new(
                        format!(
                            "no source of this rule covers platform `{}`",
                            t.platform.node
                        ),
                        t.platform.span,
                    )
                    .label("uncovered platform")
                    .hint(if opts.is_empty() {
                        "add a source block first".to_string()
                    } else {
                        one_of(&opts)
                    }),
                );
                continue;
            }
            let indicators = match &t.indicators {
                None => None,
                Some(list) => {
                    let det = detections
                        .iter()
                        .find(|d| d.platforms.contains(&t.platform.node));
                    let known: Vec<&str> = det
                        .map(|d| d.indicators.iter().map(|i| i.name.as_str()).collect())
                        .unwrap_or_default();
                    let mut names = Vec::new();
                    for i in list {
                        if det.is_some() && !known.contains(&i.node.as_str()) {
                            self.err(
                                Diagnostic::new(format!("unknown indicator `{}`", i.node), i.span)
                                    .label("not an indicator of this source")
                                    .hint(if known.is_empty() {
                                        "this source has no indicators".to_string()
                                    } else {
                                        one_of(&known)
                                    }),
                            );
                        }
                        names.push(i.node.clone());
                    }
                    if !t.expect_match {
                        self.err(
                            Diagnostic::new("`with [..]` only goes with `expect match`", t.span)
                                .label("no match expected")
                                .hint("remove the indicator list"),
                        );
                    }
                    names.sort();
                    Some(names)
                }
            };
            let (event, origin) = match &t.event {
                ast::TestEvent::Inline(v) => {
                    (std::sync::Arc::new(v.node.clone()), "inline".to_string())
                }
                ast::TestEvent::File(p) => match self.event_file(p) {
                    Some(v) => (v, p.node.clone()),
                    None => continue,
                },
            };
            if !event.is_object() {
                let span = match &t.event {
                    ast::TestEvent::Inline(v) => v.span,
                    ast::TestEvent::File(p) => p.span,
                };
                self.err(
                    Diagnostic::new("a test event must be a JSON object", span)
                        .label("not an object")
                        .hint("one test holds one event; use `detc eval` for files of many events"),
                );
                continue;
            }
            if let Some((field, value)) = crate::sources::source_of_platform(&t.platform.node)
                .and_then(|cat| {
                    crate::sources::normalize::records(event.as_ref().clone())
                        .iter()
                        .filter_map(|rec| {
                            crate::sources::normalize::normalize(&t.platform.node, rec)
                        })
                        .find_map(|e| crate::sources::fraction_in_whole_field(cat, &e))
                })
            {
                let span = match &t.event {
                    ast::TestEvent::Inline(v) => v.span,
                    ast::TestEvent::File(p) => p.span,
                };
                self.err(
                    Diagnostic::new(
                        format!("`{field}` holds {value}, but the source's schema makes it an integer"),
                        span,
                    )
                    .label("a fraction in an integer field")
                    .hint("no real record holds a fraction there (Elasticsearch would store it truncated): use a whole number"),
                );
                continue;
            }
            out.push(ir::TestCase {
                name: t.name.node.clone(),
                platform: t.platform.node.clone(),
                expect: ir::Expectation {
                    matched: t.expect_match,
                    indicators,
                },
                event,
                origin,
            });
        }
        let has = |m: bool| r.tests.iter().any(|t| t.expect_match == m);
        if !has(true) || !has(false) {
            let missing = if !has(true) {
                "`expect match`"
            } else {
                "`expect no match`"
            };
            self.err(
                Diagnostic::new(
                    format!("rule `{}` needs at least one {missing} test", r.name.node),
                    r.name.span,
                )
                .label("untested")
                .hint("every rule carries a test event it must match and one it must not"),
            );
        }
        out
    }

    fn event_file(&mut self, p: &Spanned<String>) -> Option<std::sync::Arc<serde_json::Value>> {
        let path = Path::new(&p.node);
        if path.is_absolute() {
            self.err(Diagnostic::new("test event paths are relative to the rule file", p.span)
                .label("absolute path")
                .hint("write the path relative to the rule's folder, e.g. \"events/eks_job_create.json\""));
            return None;
        }
        let full = self.base_dir.join(path);
        // A rule from an untrusted pull request must not copy files from
        // outside the repository into the output (Panther test logs).
        let root = crate::files::repository_root(self.base_dir);
        if let Err(why) = crate::files::confined(&root, self.base_dir, path) {
            if full.exists() {
                self.err(
                    Diagnostic::new(format!("test event {} is not allowed: {why}", p.node), p.span)
                        .label("outside the repository")
                        .hint("keep test events inside the rule repository (the folder with .git or detc.lock)"),
                );
                return None;
            }
        }
        let read = crate::files::read_bounded(&full, MAX_EVENT_FILE_BYTES).and_then(|b| {
            String::from_utf8(b).map_err(|_| std::io::Error::other("not UTF-8 text"))
        });
        let text = match read {
            Ok(t) => t,
            Err(e) => {
                self.err(
                    Diagnostic::new(
                        format!("cannot read test event {}: {e}", full.display()),
                        p.span,
                    )
                    .label("unreadable")
                    .hint("paths are relative to the folder of the rule file"),
                );
                return None;
            }
        };
        if let Some(v) = parsed_events().lock().ok()?.get(&text) {
            return Some(v.clone());
        }
        match serde_json::from_str(&text) {
            Ok(v) => {
                let v: std::sync::Arc<serde_json::Value> = std::sync::Arc::new(v);
                if let Ok(mut cache) = parsed_events().lock() {
                    cache.insert(text, v.clone());
                }
                Some(v)
            }
            Err(e) => {
                self.err(
                    Diagnostic::new(format!("{} is not valid JSON: {e}", full.display()), p.span)
                        .label("invalid JSON")
                        .hint("a test event file holds one JSON object"),
                );
                None
            }
        }
    }
}

/// A field as written, alias included (`requestObject.$podSpec.containers`).
fn written(segs: &[FieldSeg]) -> String {
    segs.iter()
        .map(|s| match s {
            FieldSeg::Key(k) if ir::is_plain_key(k) => k.clone(),
            FieldSeg::Key(k) => format!("`{k}`"),
            FieldSeg::AnyDepth => "**".to_string(),
            FieldSeg::Alias(a) => format!("${a}"),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A dotted path written in a setting (`annotations.`a.b``, `a.**.b`):
/// split on dots outside back-quotes, back-quotes dropped.
fn path_segments(path: &str) -> Vec<FieldSeg> {
    let mut segs = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut push = |cur: &mut String, was_quoted: bool| {
        let s = std::mem::take(cur);
        segs.push(if s == "**" && !was_quoted {
            FieldSeg::AnyDepth
        } else {
            FieldSeg::Key(s)
        });
    };
    for c in path.chars() {
        match c {
            '`' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '.' if !quoted => {
                push(&mut cur, was_quoted);
                was_quoted = false;
            }
            c => cur.push(c),
        }
    }
    push(&mut cur, was_quoted);
    segs
}

/// A number in its canonical form: a whole number written `403.0` or
/// `4.03e2` is the integer `403`, so every target writes it as events carry
/// it (a search term `x=403.0` matches no event holding 403).
fn canonical_number(n: &serde_json::Number) -> serde_json::Number {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            serde_json::Number::from(f as i64)
        }
        _ => n.clone(),
    }
}

/// Test event files parsed so far, by their text: an event file that many
/// rules test against is parsed once and shared by their IRs.
fn parsed_events() -> &'static std::sync::Mutex<HashMap<String, std::sync::Arc<serde_json::Value>>>
{
    static EVENTS: std::sync::OnceLock<
        std::sync::Mutex<HashMap<String, std::sync::Arc<serde_json::Value>>>,
    > = std::sync::OnceLock::new();
    EVENTS.get_or_init(Default::default)
}

/// Deepest chain of `let` references below `e`.
fn ref_depth(e: &Expr, depth: &HashMap<String, usize>) -> usize {
    match e {
        Expr::Ref(n) => depth.get(n).copied().unwrap_or(0),
        Expr::And(xs) | Expr::Or(xs) => xs.iter().map(|x| ref_depth(x, depth)).max().unwrap_or(0),
        Expr::Not(x) => ref_depth(x, depth),
        Expr::Cmp(_) => 0,
    }
}

fn output_names(out: &ir::Output) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for f in out
        .group_by
        .iter()
        .chain(out.values.iter().map(|a| &a.field))
    {
        names.insert(out.output_name(f));
    }
    names
}

fn is_technique(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5
        && b[0] == b'T'
        && b[1..5].iter().all(u8::is_ascii_digit)
        && (b.len() == 5 || (b.len() == 9 && b[5] == b'.' && b[6..].iter().all(u8::is_ascii_digit)))
}

fn is_tactic(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 6 && s.starts_with("TA") && b[2..].iter().all(u8::is_ascii_digit)
}
