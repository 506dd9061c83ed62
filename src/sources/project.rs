//! Projection of a checked condition onto a platform's own record: an IR
//! transformation. A condition over the canonical event (what
//! [`super::normalize`] builds from the record) becomes a condition over the
//! record itself with the same verdict on every record:
//!
//! ```text
//! eval(project(c), record) == eval(c, normalize(platform, record))
//! ```
//!
//! The facts are data (`projections.yaml`): per canonical field, a constant,
//! a rename, a segment of a stored string (a whole-value regex with the
//! value's place marked), the first of several segments, or the gRPC status
//! code behind an HTTP one. A target then renames the record's paths to its
//! own stored fields (Elastic: `elastic_fields.yaml` `gcp.audit`; Sigma:
//! `sigma.yaml`), so the projection is written once for every target.
//!
//! Why regexes, and not the method-name globs Elastic's own GKE rules use:
//! `io.k8s.batch.*.jobs.create` also matches `io.k8s.batch.v1.x.jobs.create`
//! (resource `x`, subresource `jobs`); a regex with dot-free parts says
//! exactly what normalize reads. Values compared without `cased` have each
//! letter written as the class of its case partners (`[bB]`, `[Ää]`), so
//! the structure (`io.k8s.`, `v1`) stays case-sensitive as in normalize. Whatever has no exact form is an error
//! naming the comparison and why: the backends report it as an
//! `unsupported` loss.

use super::normalize::{grpc_to_http, is_api_version};
use crate::ir::{Cmp, Detection, Expr, Field, FieldInfo, GlobTok, Op, Seg, Value};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One source's projections, by platform.
pub type SourceProjections = BTreeMap<String, Projection>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Projection {
    /// The record, for people (`the GKE Cloud Audit LogEntry`).
    pub record: String,
    /// Conditions a record must meet to be an event of the source at all.
    #[serde(default)]
    pub select: Vec<Select>,
    #[serde(default)]
    pub fragments: BTreeMap<String, String>,
    /// Canonical path -> how the record holds it, in file order.
    pub fields: BTreeMap<String, Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Select {
    pub field: String,
    /// Exact (case-sensitive) equality.
    pub equals: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RuleDef")]
pub enum Rule {
    Constant(String),
    Rename(String),
    Segment(Segment),
    FirstOf(Vec<Segment>),
    GrpcStatus(String),
    Unsupported(String),
}

/// A field's rule as written: exactly one key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    constant: Option<String>,
    rename: Option<String>,
    segment: Option<Segment>,
    first_of: Option<Vec<Segment>>,
    grpc_status: Option<String>,
    unsupported: Option<String>,
}

impl TryFrom<RuleDef> for Rule {
    type Error = String;
    fn try_from(d: RuleDef) -> Result<Rule, String> {
        let mut all = Vec::new();
        all.extend(d.constant.map(Rule::Constant));
        all.extend(d.rename.map(Rule::Rename));
        all.extend(d.segment.map(Rule::Segment));
        all.extend(d.first_of.map(Rule::FirstOf));
        all.extend(d.grpc_status.map(Rule::GrpcStatus));
        all.extend(d.unsupported.map(Rule::Unsupported));
        match all.len() {
            1 => Ok(all.remove(0)),
            n => Err(format!("a field needs exactly one rule, found {n}")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub from: String,
    pub pattern: String,
    pub slot: Slot,
    #[serde(default)]
    pub absent: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// One dot-free part.
    Part,
    /// One slash-free path segment.
    Segment,
    /// Dot-joined parts, none of them an API version.
    Group,
}

impl Slot {
    fn sep(self) -> char {
        match self {
            Slot::Part | Slot::Group => '.',
            Slot::Segment => '/',
        }
    }
    /// One character of the slot.
    fn char_class(self) -> &'static str {
        match self {
            Slot::Part | Slot::Group => "[^.]",
            Slot::Segment => "[^/]",
        }
    }
}

/// Every source's projections.
pub fn projections() -> &'static BTreeMap<String, SourceProjections> {
    static P: OnceLock<BTreeMap<String, SourceProjections>> = OnceLock::new();
    P.get_or_init(
        || match serde_yaml::from_str(include_str!("projections.yaml")) {
            Ok(p) => p,
            Err(e) => panic!("built-in src/sources/projections.yaml is invalid: {e}"),
        },
    )
}

/// The projection of `source` onto `platform`'s record, if there is one.
pub fn projection(source: &str, platform: &str) -> Option<&'static Projection> {
    projections().get(source)?.get(platform)
}

/// The condition that always holds (an empty `and`).
pub fn always() -> Expr {
    Expr::And(Vec::new())
}

/// The condition that never holds (an empty `or`).
pub fn never() -> Expr {
    Expr::Or(Vec::new())
}

fn field(path: &str) -> Field {
    Field(path.split('.').map(|k| Seg::Key(k.to_string())).collect())
}

fn cmp(path: &str, op: Op, cased: bool, values: Vec<Value>) -> Expr {
    Expr::Cmp(Cmp {
        field: field(path),
        info: FieldInfo::default(),
        op,
        cased,
        all: false,
        values,
    })
}

/// `path` matches the whole-value regex `re` (case-sensitive).
fn full_match(path: &str, re: String) -> Expr {
    cmp(path, Op::Matches, true, vec![Value::Regex(re)])
}

fn not(e: Expr) -> Expr {
    Expr::Not(Box::new(e))
}

/// A literal as a regex: unless `cased`, every letter as the class of its
/// case partners (`[bB]`, `[Ää]`: detc's folding, `crate::fold`), so the
/// regex is matched case-sensitively and means the same in every engine.
pub fn literal(s: &str, cased: bool) -> Result<String, String> {
    let mut out = String::new();
    for c in s.chars() {
        if c == '\n' {
            out.push_str("\\n");
        } else if !cased {
            crate::fold::push_literal(c, crate::fold::Ascii::Explicit, &mut out);
        } else {
            out.push_str(&regex_syntax::escape(&c.to_string()));
        }
    }
    Ok(out)
}

/// `a|b|c` as one group; with the empty string among them, the group is optional.
fn alternation(items: &[String]) -> String {
    let nonempty: Vec<&String> = items.iter().filter(|s| !s.is_empty()).collect();
    let optional = nonempty.len() < items.len();
    match (nonempty.is_empty(), optional) {
        (true, _) => String::new(),
        (false, false) => format!("({})", join(&nonempty)),
        (false, true) => format!("({})?", join(&nonempty)),
    }
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("|")
}

impl Projection {
    fn expand(&self, pattern: &str, slot: &str) -> String {
        let mut out = pattern.replace("{}", "\u{0}");
        for (k, v) in &self.fragments {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        out.replace('\u{0}', slot)
    }

    /// The regex any value of the slot matches.
    fn any_value(&self, slot: Slot) -> String {
        match slot {
            Slot::Part | Slot::Segment => format!("{}*", slot.char_class()),
            Slot::Group => self.expand("({not_version}?\\.)*{not_version}?", ""),
        }
    }

    /// The selection: the record is an event of the source.
    pub fn selector(&self) -> Expr {
        let xs: Vec<Expr> = self
            .select
            .iter()
            .map(|s| cmp(&s.field, Op::Eq, true, vec![Value::Str(s.equals.clone())]))
            .collect();
        simplify(Expr::And(xs))
    }

    /// The rule of a canonical field, or the listed field it lies below
    /// (`requestObject.spec` below the rename of `requestObject`).
    fn rule_of(&self, f: &Field) -> Option<(String, &Rule, Vec<String>)> {
        let keys: Vec<String> = f.keys().map(|k| k.unwrap_or("**").to_string()).collect();
        for n in (1..=keys.len()).rev() {
            let head = keys[..n].join(".");
            if let Some(r) = self.fields.get(&head) {
                return Some((head, r, keys[n..].to_vec()));
            }
        }
        None
    }

    /// The record path that holds a canonical field, for output (grouping,
    /// collected values): a rename's target, or the text a segment is part
    /// of (grouping by it is finer: it never merges two canonical values).
    pub fn output_path(&self, f: &Field) -> Result<Field, String> {
        match self.rule_of(f) {
            Some((_, Rule::Rename(to), rest)) => {
                let mut segs = field(to).0;
                segs.extend(f.0[f.0.len() - rest.len()..].iter().cloned());
                Ok(Field(segs))
            }
            Some((_, Rule::Segment(s), rest)) if rest.is_empty() => Ok(field(&s.from)),
            Some((_, Rule::FirstOf(segs), rest)) if rest.is_empty() && !segs.is_empty() => {
                Ok(field(&segs[0].from))
            }
            Some((_, Rule::GrpcStatus(from), rest)) if rest.is_empty() => Ok(field(from)),
            Some((_, Rule::Unsupported(why), rest)) if rest.is_empty() => {
                Err(format!("`{f}` on {}: {why}", self.record))
            }
            _ => Err(format!(
                "`{f}` has no place in {}: normalize derives it from no field there, or it is constant",
                self.record
            )),
        }
    }

    /// `expr` (lets inlined) over the record, `and` the selection.
    pub fn project(&self, det: &Detection, expr: &Expr) -> Result<Expr, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let e = self.walk(&det.inlined(expr), &mut errors);
        if errors.is_empty() {
            Ok(simplify(Expr::And(vec![self.selector(), e])))
        } else {
            Err(errors)
        }
    }

    /// `expr` (no lets) over the record, without the selection.
    pub fn project_expr(&self, expr: &Expr) -> Result<Expr, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let e = self.walk(expr, &mut errors);
        if errors.is_empty() {
            Ok(simplify(e))
        } else {
            Err(errors)
        }
    }

    fn walk(&self, e: &Expr, errors: &mut Vec<(String, String)>) -> Expr {
        match e {
            Expr::And(xs) => Expr::And(xs.iter().map(|x| self.walk(x, errors)).collect()),
            Expr::Or(xs) => Expr::Or(xs.iter().map(|x| self.walk(x, errors)).collect()),
            Expr::Not(x) => not(self.walk(x, errors)),
            Expr::Ref(name) => {
                errors.push((name.clone(), "a `let` reference: inline it first".into()));
                never()
            }
            Expr::Cmp(c) => match self.project_cmp(c) {
                Ok(x) => x,
                Err(why) => {
                    errors.push((c.to_string(), why));
                    never()
                }
            },
        }
    }

    /// One comparison over the record.
    pub fn project_cmp(&self, c: &Cmp) -> Result<Expr, String> {
        let found = self.rule_of(&c.field);
        if c.field.has_any_depth() && !matches!(found, Some((_, Rule::Rename(_), _))) {
            return Err(format!(
                "`{}` reaches a key at any depth, and {} holds the event's fields in other places",
                c.field, self.record
            ));
        }
        let Some((_, rule, rest)) = found else {
            // normalize never writes it on this platform.
            return Ok(never());
        };
        if !rest.is_empty() && !matches!(rule, Rule::Rename(_)) {
            // Below a listed field and not listed itself: normalize never writes it
            // (`objectRef.uid`, `responseStatus.reason`).
            return Ok(never());
        }
        match rule {
            Rule::Unsupported(why) => Err(format!("`{}` on {}: {why}", c.field, self.record)),
            Rule::Constant(v) => Ok(decide(c, &json!(v))),
            Rule::Rename(to) => {
                let mut segs: Vec<Seg> = field(to).0;
                segs.extend(c.field.0[c.field.0.len() - rest.len()..].iter().cloned());
                let mut out = c.clone();
                out.field = Field(segs);
                Ok(Expr::Cmp(out))
            }
            Rule::GrpcStatus(from) => Ok(grpc(c, from)),
            Rule::Segment(s) => self.segment(c, s),
            Rule::FirstOf(segs) => {
                // The first segment whose place exists gives the value.
                let mut out = Vec::new();
                let mut earlier: Vec<Expr> = Vec::new();
                for s in segs {
                    let this = self.segment(c, s)?;
                    let exists = self.segment_exists(s);
                    let mut conj: Vec<Expr> = earlier.iter().cloned().map(not).collect();
                    conj.push(exists.clone());
                    conj.push(this);
                    out.push(Expr::And(conj));
                    earlier.push(exists);
                }
                Ok(simplify(Expr::Or(out)))
            }
        }
    }

    fn segment_exists(&self, s: &Segment) -> Expr {
        let any = full_match(&s.from, self.expand(&s.pattern, &self.any_value(s.slot)));
        if s.absent.is_empty() {
            return any;
        }
        let lits: Vec<String> = s
            .absent
            .iter()
            .map(|a| literal(a, true).unwrap_or_default())
            .collect();
        Expr::And(vec![
            any,
            not(full_match(
                &s.from,
                self.expand(&s.pattern, &alternation(&lits)),
            )),
        ])
    }

    /// The regex of one value in the slot, or `None` when the slot can never hold it.
    fn slot_value(&self, c: &Cmp, s: &Segment, v: &Value) -> Result<Option<String>, String> {
        let sep = s.slot.sep();
        let class = s.slot.char_class();
        let text = match v {
            Value::Str(t) => t,
            Value::Glob(_) if c.op == Op::Like => "",
            _ => {
                return Err(format!(
                    "`{}` compares {} with a part of the text {}: only string values compare the same way there",
                    c.field,
                    v.text(),
                    s.from
                ))
            }
        };
        if s.slot == Slot::Group {
            if c.op != Op::Eq {
                return Err(format!(
                    "`{}` {}: the group is a run of parts of {} and only `==` has an exact form on it",
                    c.field,
                    c.op.keyword(),
                    s.from
                ));
            }
            if text
                .split('.')
                .any(|p| is_api_version(&p.to_lowercase()) || is_api_version(p))
            {
                return Err(format!(
                    "`{}`: the value {text:?} has a part that reads as an API version, which ends the group in {}",
                    c.field, s.from
                ));
            }
            return literal(text, c.cased).map(Some);
        }
        let lit = |t: &str| -> Result<Option<String>, String> {
            if t.contains(sep) {
                Ok(None)
            } else {
                literal(t, c.cased).map(Some)
            }
        };
        Ok(match c.op {
            Op::Eq | Op::Ne => lit(text)?,
            Op::StartsWith => lit(text)?.map(|l| format!("{l}{class}*")),
            Op::EndsWith => lit(text)?.map(|l| format!("{class}*{l}")),
            Op::Contains => lit(text)?.map(|l| format!("{class}*{l}{class}*")),
            Op::Like => {
                let Value::Glob(g) = v else {
                    return Err("`like` needs a glob".into());
                };
                let mut out = String::new();
                for t in g.tokens() {
                    match t {
                        GlobTok::Any => out.push_str(&format!("{class}*")),
                        GlobTok::One => out.push_str(class),
                        GlobTok::Lit(ch) if *ch == sep => return Ok(None),
                        GlobTok::Lit(ch) => out.push_str(&literal(&ch.to_string(), c.cased)?),
                    }
                }
                Some(out)
            }
            _ => unreachable!("other operators are refused before"),
        })
    }

    fn segment(&self, c: &Cmp, s: &Segment) -> Result<Expr, String> {
        match c.op {
            Op::Exists => return Ok(self.segment_exists(s)),
            Op::Eq | Op::Ne | Op::StartsWith | Op::EndsWith | Op::Contains | Op::Like => {}
            op => {
                return Err(format!(
                    "`{}` {}: `{}` is a part of the text {}, and `{}` has no exact form on a part of a text",
                    c.field,
                    op.keyword(),
                    c.field,
                    s.from,
                    op.keyword()
                ))
            }
        }
        let mut regs = Vec::new();
        for v in &c.values {
            regs.push(self.slot_value(c, s, v)?);
        }
        // A value that lower-cases to an absent one (`CORE`) is a real group:
        // such comparisons also exclude the absent spellings themselves.
        let absent_clash = !s.absent.is_empty()
            && c.values.iter().any(|v| {
                s.absent
                    .iter()
                    .any(|a| v.text().to_lowercase() == a.to_lowercase())
            });
        let holds = |r: &Option<String>| -> Expr {
            match r {
                None => never(),
                Some(r) => {
                    let m = full_match(&s.from, self.expand(&s.pattern, r));
                    if absent_clash {
                        Expr::And(vec![m, self.segment_exists(s)])
                    } else {
                        m
                    }
                }
            }
        };
        let out = if c.op == Op::Ne {
            // Present and not equal, per value.
            let per: Vec<Expr> = regs
                .iter()
                .map(|r| Expr::And(vec![self.segment_exists(s), not(holds(r))]))
                .collect();
            if c.all {
                Expr::And(per)
            } else {
                Expr::Or(per)
            }
        } else if c.all {
            Expr::And(regs.iter().map(holds).collect())
        } else {
            let some: Vec<String> = regs.into_iter().flatten().collect();
            if some.is_empty() {
                never()
            } else {
                holds(&Some(if some.len() == 1 {
                    some[0].clone()
                } else {
                    format!("({})", some.join("|"))
                }))
            }
        };
        Ok(simplify(out))
    }
}

/// A comparison on a field normalize sets to one known value, decided now.
fn decide(c: &Cmp, value: &Json) -> Expr {
    let mut event = json!({});
    set(&mut event, &c.field, value.clone());
    if holds(c, &event) {
        always()
    } else {
        never()
    }
}

fn set(event: &mut Json, f: &Field, value: Json) {
    let mut cur = event;
    let keys: Vec<&str> = f.keys().map(|k| k.unwrap_or("**")).collect();
    for (i, k) in keys.iter().enumerate() {
        let Json::Object(m) = cur else { return };
        if i + 1 == keys.len() {
            m.insert(k.to_string(), value);
            return;
        }
        cur = m.entry(k.to_string()).or_insert_with(|| json!({}));
    }
}

/// The reference evaluator's verdict on one comparison.
fn holds(c: &Cmp, event: &Json) -> bool {
    let det = Detection {
        source: String::new(),
        span: Default::default(),
        stem: String::new(),
        platforms: Vec::new(),
        lets: Vec::new(),
        condition: never(),
        indicators: Vec::new(),
        output: Default::default(),
    };
    crate::eval::Evaluator::new().eval(&det, &Expr::Cmp(c.clone()), event)
}

/// The gRPC codes google.rpc.Code defines; any other maps as 2 (UNKNOWN) does.
const GRPC_CODES: std::ops::RangeInclusive<i64> = 0..=16;

/// A comparison on the HTTP code normalize derives from the gRPC code at
/// `from` (absent = 0): evaluated over the finite domain, it becomes a test
/// on the gRPC code.
fn grpc(c: &Cmp, from: &str) -> Expr {
    let at = |http: i64| {
        let mut event = json!({});
        set(&mut event, &c.field, json!(http));
        holds(c, &event)
    };
    let absent = at(grpc_to_http(0));
    let other = at(500);
    let known: Vec<i64> = GRPC_CODES.collect();
    let codes = |keep: bool| -> Vec<Value> {
        known
            .iter()
            .filter(|n| at(grpc_to_http(**n)) == keep)
            .map(|n| Value::Num((*n).into()))
            .collect()
    };
    let present = if other {
        let no = codes(false);
        let exists = cmp(from, Op::Exists, false, Vec::new());
        if no.is_empty() {
            exists
        } else {
            Expr::And(vec![exists, not(cmp(from, Op::Eq, false, no))])
        }
    } else {
        let yes = codes(true);
        if yes.is_empty() {
            never()
        } else {
            cmp(from, Op::Eq, false, yes)
        }
    };
    let missing = if absent {
        not(cmp(from, Op::Exists, false, Vec::new()))
    } else {
        never()
    };
    simplify(Expr::Or(vec![present, missing]))
}

fn is_always(e: &Expr) -> bool {
    matches!(e, Expr::And(xs) if xs.is_empty())
}

fn is_never(e: &Expr) -> bool {
    matches!(e, Expr::Or(xs) if xs.is_empty())
}

/// Constants folded, nested `and`/`or` flattened, single-item lists unwrapped.
pub fn simplify(e: Expr) -> Expr {
    match e {
        Expr::And(xs) => {
            let mut out = Vec::new();
            for x in xs.into_iter().map(simplify) {
                if is_never(&x) {
                    return never();
                }
                match x {
                    Expr::And(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            if out.len() == 1 {
                out.remove(0)
            } else {
                Expr::And(out)
            }
        }
        Expr::Or(xs) => {
            let mut out = Vec::new();
            for x in xs.into_iter().map(simplify) {
                if is_always(&x) {
                    return always();
                }
                match x {
                    Expr::Or(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            if out.len() == 1 {
                out.remove(0)
            } else {
                Expr::Or(out)
            }
        }
        Expr::Not(x) => match simplify(*x) {
            x if is_always(&x) => never(),
            x if is_never(&x) => always(),
            Expr::Not(inner) => *inner,
            x => not(x),
        },
        other => other,
    }
}

/// Whether `e` is the constant `true` (`Some(true)`), `false`, or neither.
pub fn constant(e: &Expr) -> Option<bool> {
    if is_always(e) {
        Some(true)
    } else if is_never(e) {
        Some(false)
    } else {
        None
    }
}

/// Rename the record's paths in `e` (`protoPayload.methodName` ->
/// `gcp.audit.method_name`); a path with no name is an error naming it.
pub fn rename(e: &Expr, names: &dyn Fn(&Field) -> Option<Field>) -> Result<Expr, String> {
    Ok(match e {
        Expr::And(xs) => Expr::And(
            xs.iter()
                .map(|x| rename(x, names))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Or(xs) => Expr::Or(
            xs.iter()
                .map(|x| rename(x, names))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Not(x) => not(rename(x, names)?),
        Expr::Ref(r) => Expr::Ref(r.clone()),
        Expr::Cmp(c) => {
            let f = names(&c.field)
                .ok_or_else(|| format!("`{}` has no stored field in this form", c.field))?;
            let mut out = c.clone();
            out.field = f;
            Expr::Cmp(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn whole(p: &Projection, frag: &str) -> Regex {
        Regex::new(&format!("^{}$", p.expand(frag, ""))).unwrap()
    }

    /// Every string over `alphabet` up to length `n`.
    fn strings(alphabet: &[&str], n: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..n {
            let mut next = Vec::new();
            for s in &last {
                for a in alphabet {
                    next.push(format!("{s}{a}"));
                }
            }
            out.extend(next.iter().cloned());
            last = next;
        }
        out
    }

    #[test]
    fn fragments_say_what_normalize_says() {
        let p = projection("kubernetes.audit", "gke").expect("gke projection");
        let nv = whole(p, "{not_version}");
        let v = whole(p, "{version}");
        let pieces = ["v", "1", "2", "a", "alpha", "beta", "b", "x", "l", "V", "."];
        for s in strings(&pieces, 4) {
            if s.contains('.') {
                assert!(!nv.is_match(&s) && !v.is_match(&s), "{s:?}");
                continue;
            }
            assert_eq!(v.is_match(&s), is_api_version(&s), "version {s:?}");
            assert_eq!(
                nv.is_match(&s),
                !s.is_empty() && !is_api_version(&s),
                "not_version {s:?}"
            );
        }
        let nn = whole(p, "{not_namespaces}");
        let pieces = ["namespace", "s", "n", "name", "x", "/", "spaces", "a"];
        for s in strings(&pieces, 3) {
            let want = !s.is_empty() && !s.contains('/') && s != "namespaces";
            assert_eq!(nn.is_match(&s), want, "not_namespaces {s:?}");
        }
    }

    #[test]
    fn literals_fold_ascii_letters_only() {
        assert_eq!(literal("a.b", false).unwrap(), r"[aA]\.[bB]");
        assert_eq!(literal("k", false).unwrap(), "[kK]");
        assert_eq!(literal("A-1", true).unwrap(), r"A\-1");
        assert_eq!(literal("é", false).unwrap(), "[Éé]");
        assert_eq!(literal("é", true).unwrap(), "é");
    }

    #[test]
    fn simplify_folds_constants() {
        let x = cmp("a", Op::Exists, false, vec![]);
        assert_eq!(simplify(Expr::And(vec![always(), x.clone()])), x);
        assert_eq!(simplify(Expr::Or(vec![always(), x.clone()])), always());
        assert_eq!(simplify(not(never())), always());
        assert_eq!(simplify(Expr::And(vec![never(), x])), never());
    }

    /// GKE LogEntries: each GKE test event of the project's rules, and
    /// variants of them that vary one field at a time (then a seeded sample
    /// of combinations) over the shapes normalize distinguishes.
    pub(crate) fn gke_records() -> Vec<Json> {
        let loads = crate::load::load(&[std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/rules"
        ))])
        .expect("rules load");
        let mut bases: Vec<Json> = Vec::new();
        for l in &loads.rules {
            for t in l.rule.tests.iter().filter(|t| t.platform == "gke") {
                for r in super::super::normalize::records((*t.event).clone()) {
                    if !bases.contains(&r) {
                        bases.push(r);
                    }
                }
            }
        }
        assert!(bases.len() >= 8, "only {} GKE records", bases.len());
        let methods: Vec<Json> = [
            "io.k8s.batch.v1.cronjobs.create",
            "io.k8s.batch.v1.jobs.delete",
            "io.k8s.batch.v1.jobs.status.update",
            "IO.K8S.batch.v1.jobs.create",
            "io.k8s.BATCH.v1.JOBS.CREATE",
            "io.k8s.batch.V1.jobs.create",
            "io.k8s.core.v1.pods.create",
            "io.k8s.CORE.v1.jobs.create",
            "io.k8s.v1.jobs.create",
            "io.k8s..v1.jobs.create",
            "io.k8s.batch.v1.v2.jobs.create",
            "io.k8s.v1.batch.v1.jobs.patch",
            "io.k8s.batch.v1beta1.cronjobs.patch",
            "io.k8s.batch.v1alpha.jobs.create",
            "io.k8s.batch.v1.jobs",
            "io.k8s.batch.v1",
            "io.k8s.readyz",
            "io.k8s.",
            "io.k8s.create",
            "io.k8s.batch.v1.x.jobs.create",
            "io.k8s.batch.v1.jobs.status.sub.delete",
            "io.k8s.apps.v1.deployments.scale.update",
            "io.k8s.authorization.rbac.v1.rolebindings.create",
            "io.k8s.batch.v1.jobs.cre\nate",
            "io.k8s.batch.v1.jobs.\u{212A}ill",
            "io.k8s.batch.v1.jobs.get",
            "",
        ]
        .iter()
        .map(|m| json!(m))
        .chain([Json::Null])
        .collect();
        let names: Vec<Json> = [
            "batch/v1/namespaces/default/cronjobs/backup",
            "batch/v1/namespaces/ns/jobs/x/status",
            "batch/v1/namespaces/kube-system/jobs/x",
            "batch/v1/namespaces/KUBE-SYSTEM/jobs/x",
            "core/v1/namespaces/ns/namespaces/kube-system/jobs/x",
            "namespaces",
            "namespaces/",
            "namespaces/kube-public",
            "HNAP1",
            "batch/v1/namespaces/ns/jobs/x/",
            "batch/v1/namespaces/ns/jobs/x/scale/more",
            "",
        ]
        .iter()
        .map(|m| json!(m))
        .chain([Json::Null])
        .collect();
        let users: Vec<Json> = [
            "alice@example.com",
            "system:serviceaccount:kube-system:job-controller",
            "system:kube-scheduler",
            "SYSTEM:serviceaccount:x",
            "gke-node",
            "masterclient",
            "",
        ]
        .iter()
        .map(|m| json!(m))
        .chain([Json::Null])
        .collect();
        let statuses: Vec<Json> = (0..=17)
            .map(|c| json!({ "code": c }))
            .chain([
                json!({}),
                json!({"code": 99}),
                json!({"code": -1}),
                Json::Null,
            ])
            .collect();
        let services: Vec<Json> = vec![json!("k8s.io"), json!("K8S.io"), Json::Null];
        let agents: Vec<Json> = vec![json!("curl/8.1"), json!("kubectl/v1.30"), Json::Null];
        let set = |r: &mut Json, path: &[&str], v: &Json| {
            let mut cur = r;
            for (i, k) in path.iter().enumerate() {
                let Json::Object(m) = cur else { return };
                if i + 1 == path.len() {
                    if v.is_null() {
                        m.remove(*k);
                    } else {
                        m.insert(k.to_string(), v.clone());
                    }
                    return;
                }
                cur = m.entry(k.to_string()).or_insert_with(|| json!({}));
            }
        };
        let dims: Vec<(Vec<&str>, &Vec<Json>)> = vec![
            (vec!["protoPayload", "methodName"], &methods),
            (vec!["protoPayload", "resourceName"], &names),
            (
                vec!["protoPayload", "authenticationInfo", "principalEmail"],
                &users,
            ),
            (vec!["protoPayload", "status"], &statuses),
            (vec!["protoPayload", "serviceName"], &services),
            (
                vec!["protoPayload", "requestMetadata", "callerSuppliedUserAgent"],
                &agents,
            ),
        ];
        let mut out = bases.clone();
        for b in &bases {
            for (path, values) in &dims {
                for v in values.iter() {
                    let mut r = b.clone();
                    set(&mut r, path, v);
                    out.push(r);
                }
            }
        }
        // A seeded sample of combinations.
        let mut seed: u64 = 0x5eed_d37c;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..3000 {
            let mut r = bases[next(bases.len())].clone();
            for (path, values) in &dims {
                let v = &values[next(values.len())];
                set(&mut r, path, v);
            }
            out.push(r);
        }
        out
    }

    fn probe(field_path: &str, op: Op, cased: bool, all: bool, values: Vec<Value>) -> Cmp {
        Cmp {
            field: Field(field_path.split('.').map(|k| Seg::Key(k.into())).collect()),
            info: FieldInfo::default(),
            op,
            cased,
            all,
            values,
        }
    }

    fn strs(xs: &[&str]) -> Vec<Value> {
        xs.iter().map(|x| Value::Str(x.to_string())).collect()
    }

    /// Comparisons of every kind on every GKE field, each alone.
    fn probes() -> Vec<Expr> {
        use crate::ir::Glob;
        let glob = |g: &str| vec![Value::Glob(Glob::parse(g).unwrap())];
        let num = |n: i64| vec![Value::Num(n.into())];
        let mut out = Vec::new();
        for (f, vals) in [
            ("verb", strs(&["create", "CREATE", "a.b", "readyz", ""])),
            ("objectRef.resource", strs(&["jobs", "cronjobs", "v2", "x"])),
            (
                "objectRef.subresource",
                strs(&["status", "scale", "jobs", ""]),
            ),
            (
                "objectRef.namespace",
                strs(&["kube-system", "ns", "", "namespaces"]),
            ),
            ("objectRef.name", strs(&["x", "backup", "kube-system"])),
            (
                "objectRef.apiGroup",
                strs(&["batch", "core", "CORE", "authorization.rbac", ""]),
            ),
            (
                "user.username",
                strs(&["alice@example.com", "", "masterclient"]),
            ),
            ("userAgent", strs(&["curl/8.1"])),
            ("kind", strs(&["event", "Pod"])),
            ("objectRef.uid", strs(&["x"])),
        ] {
            for cased in [false, true] {
                out.push(Expr::Cmp(probe(f, Op::Eq, cased, false, vals.clone())));
                out.push(Expr::Cmp(probe(
                    f,
                    Op::Ne,
                    cased,
                    false,
                    vals[..1].to_vec(),
                )));
                out.push(Expr::Cmp(probe(f, Op::Ne, cased, true, vals.clone())));
                if f != "objectRef.apiGroup" {
                    for op in [Op::StartsWith, Op::EndsWith, Op::Contains] {
                        out.push(Expr::Cmp(probe(f, op, cased, false, vals.clone())));
                    }
                    out.push(Expr::Cmp(probe(f, Op::Like, cased, false, glob("*e?"))));
                    out.push(Expr::Cmp(probe(f, Op::Like, cased, false, glob("k*"))));
                }
            }
            out.push(Expr::Cmp(probe(f, Op::Exists, false, false, vec![])));
            out.push(not(Expr::Cmp(probe(f, Op::Exists, false, false, vec![]))));
        }
        for op in [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge] {
            for n in [200, 400, 403, 409, 499, 500, 501] {
                out.push(Expr::Cmp(probe(
                    "responseStatus.code",
                    op,
                    false,
                    false,
                    num(n),
                )));
                out.push(not(Expr::Cmp(probe(
                    "responseStatus.code",
                    op,
                    false,
                    false,
                    num(n),
                ))));
            }
        }
        out.push(Expr::Cmp(probe(
            "responseStatus.code",
            Op::Exists,
            false,
            false,
            vec![],
        )));
        out
    }

    #[test]
    fn the_projection_gives_the_verdict_of_normalize_on_every_gke_record() {
        let p = projection("kubernetes.audit", "gke").expect("gke projection");
        let loads = crate::load::load(&[std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/rules"
        ))])
        .expect("rules load");
        let records = gke_records();
        let mut ev = crate::eval::Evaluator::new();
        let mut compared = 0usize;
        let mut refused = Vec::new();
        let mut problems = Vec::new();
        let mut check = |det: &Detection, label: &str, canonical: &Expr| {
            let projected = match p.project(det, canonical) {
                Ok(x) => x,
                Err(e) => {
                    refused.push(format!("{label}: {e:?}"));
                    return;
                }
            };
            for r in &records {
                let want = super::super::normalize::normalize("gke", r)
                    .is_some_and(|e| ev.eval(det, canonical, &e));
                let got = ev.eval(det, &projected, r);
                compared += 1;
                if want != got && problems.len() < 20 {
                    problems.push(format!("{label}: canonical {want}, projected {got} on {r}"));
                }
            }
        };
        for l in &loads.rules {
            for det in l
                .rule
                .detections
                .iter()
                .filter(|d| d.platforms.iter().any(|x| x == "gke"))
            {
                check(det, &format!("{} match", l.rule.name), &det.condition);
                for ind in &det.indicators {
                    let both = Expr::And(vec![det.condition.clone(), ind.expr.clone()]);
                    check(
                        det,
                        &format!("{} indicator {}", l.rule.name, ind.name),
                        &both,
                    );
                }
            }
        }
        let flagship = &loads
            .rules
            .iter()
            .find(|l| l.rule.name == "k8s_cronjob_job_write")
            .expect("flagship")
            .rule
            .detections[0];
        for (i, e) in probes().iter().enumerate() {
            check(flagship, &format!("probe {i} {e}"), e);
        }
        eprintln!(
            "{compared} verdicts compared over {} records; refused: {}",
            records.len(),
            refused.len()
        );
        for r in &refused {
            eprintln!("  refused {r}");
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert!(compared > 100_000, "only {compared} verdicts compared");
        // The flagship's match projects.
        assert!(
            !refused
                .iter()
                .any(|r| r.starts_with("k8s_cronjob_job_write match")),
            "{refused:?}"
        );
    }
}
