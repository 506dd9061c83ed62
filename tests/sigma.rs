//! The Sigma backend against the real tools and an independent evaluator:
//!
//! 1. every rule under `rules/` renders, and `tests/validators/sigma.sh`
//!    (sigma-cli 3.1.0 / pySigma 1.5.1: `sigma check` with 0 errors and 0
//!    issues, `sigma convert -t splunk` and `-t eql`) accepts the folder;
//! 2. the `sigma-rust` crate, evaluating the generated Sigma on every rule
//!    test's normalised event, gives detc's verdict on the main condition;
//!    a matrix of single constructs is checked the same way;
//! 3. the seed ports (`rules/seeds/seed_000_*`, `seed_002_*`) render to Sigma
//!    semantically equal to the SigmaHQ originals in `tests/fixtures/seeds/`;
//! 4. hostile values survive YAML (serde_yaml and PyYAML, which pySigma
//!    uses) and keep their Sigma meaning (escaped wildcards), and nothing
//!    breaks out of the loss comments;
//! 5. focused tests of the dialect (escaping, globs, tags, ids, selections).
//!
//! sigma-rust 0.7 differs from the Sigma specification in two places the
//! generated rules use; the adapter [`detc::verify::sigma_rust_text`] rewrites them to the
//! equivalent form it understands, and nothing else:
//! - `|re|i` (the `i` flag is unknown to it): `|re` with a `(?i)` prefix;
//! - `x: null`, which the specification (and pySigma's backends: Splunk
//!   `NOT x=*`, EQL `?x == null`) reads as "null or absent" but sigma-rust as
//!   "present and null": `x|exists: false`, with null members removed from
//!   the event (the language treats null as absent, so this changes nothing
//!   for detc's verdict).
//!
//! It also cannot match inside JSON arrays (jopohl/sigma-rust#9); where a
//! test's verdict depends on that, it is listed in [`SIGMA_RUST_EXCEPTIONS`]
//! with the reason, and the test fails if a listed case stops disagreeing.
//!
//! Needs `.venv/sigma`: run `.ci/setup-validators`.

use detc::backend::sigma::{
    self, escape_value, glob_value, needs_regex, regex_literal, tactic_tag, technique_tag,
};
use detc::backend::{LossKind, Rendered, Target};
use detc::eval::Evaluator;
use detc::ir::Glob;
use detc::ir::{Detection, Rule};
use detc::sources::normalize::normalize;
use detc::verify::{gcp_audit_record, sigma_rust_event, sigma_rust_text};
use serde_json::{json, Value as Json};
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

mod common;
use common::{project_rules, root, run, venv_bin};

fn venv(bin: &str) -> PathBuf {
    venv_bin("sigma", bin)
}

fn render(rule: &Rule) -> Rendered {
    detc::build::render(rule, Target::Sigma)
        .unwrap_or_else(|e| panic!("{}: sigma render failed: {e}", rule.name))
}

/// The rendered document of each detection, in detection order.
fn documents(rule: &Rule, r: &Rendered) -> Vec<(String, Yaml)> {
    rule.detections
        .iter()
        .map(|d| {
            let path = format!("{}.yml", d.stem);
            let f = r
                .files
                .iter()
                .find(|f| f.path == path)
                .unwrap_or_else(|| panic!("{}: no {path} among {:?}", rule.name, r.files));
            let doc: Yaml = serde_yaml::from_str(&f.contents)
                .unwrap_or_else(|e| panic!("{path} is not YAML: {e}\n{}", f.contents));
            (f.contents.clone(), doc)
        })
        .collect()
}

fn compile(text: &str) -> Rule {
    let mut rules = detc::load::compile_text("test.rule", text, &root().join("rules"))
        .unwrap_or_else(|r| panic!("rule does not compile:\n{r}\n{text}"));
    assert_eq!(rules.len(), 1);
    rules.remove(0)
}

// ---------------------------------------------------------------------------
// 1. The real validator

#[test]
fn sigma_cli_accepts_every_rule() {
    venv("sigma");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sigma");
    std::fs::create_dir_all(&out).unwrap();
    let mut n = 0;
    for rule in project_rules() {
        for f in render(&rule).files {
            std::fs::write(out.join(&f.path), &f.contents).unwrap();
            n += 1;
        }
    }
    assert!(n > 0);
    let (ok, text) = run(Command::new("bash")
        .arg(root().join("tests/validators/sigma.sh"))
        .arg(&out));
    assert!(
        ok,
        "tests/validators/sigma.sh rejected the generated Sigma rules:\n{text}"
    );
    assert!(
        text.contains(&format!("sigma check: OK ({n} rules, 0 errors, 0 issues)")),
        "{text}"
    );
    assert!(text.contains("sigma convert: OK (splunk, eql)"), "{text}");
}

#[test]
fn build_writes_one_document_per_detection() {
    let rules = project_rules();
    let refs: Vec<&Rule> = rules.iter().collect();
    let opts = detc::build::Options {
        targets: vec![Target::Sigma],
        ..Default::default()
    };
    let b = detc::build::build(&refs, &opts);
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    for rule in &rules {
        for d in &rule.detections {
            assert!(
                b.files.contains_key(&format!("sigma/{}.yml", d.stem)),
                "missing sigma/{}.yml",
                d.stem
            );
        }
    }
    // Deterministic output.
    let again = detc::build::build(&refs, &opts);
    assert_eq!(b.files, again.files);
}

// ---------------------------------------------------------------------------
// 2. Same verdict through sigma-rust

/// Cases where sigma-rust 0.7 cannot give the Sigma rule's verdict: (rule,
/// test, reason). Each must really disagree, or the test fails.
const SIGMA_RUST_EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn sigma_rust_rule(doc: &Yaml) -> sigma_rust::Rule {
    let text = sigma_rust_text(doc);
    sigma_rust::rule_from_yaml(&text)
        .unwrap_or_else(|e| panic!("sigma-rust cannot parse the rule: {e}\n{text}"))
}

fn sigma_rust_match(rule: &sigma_rust::Rule, event: &Json) -> bool {
    let ev = sigma_rust_event(event).unwrap_or_else(|e| panic!("{e}\n{event}"));
    rule.is_match(&ev)
}

fn detc_match(rule: &Rule, det: &Detection, event: &Json) -> bool {
    Evaluator::new()
        .eval_detection(det, rule.meta.severity, event)
        .matched
}

#[test]
fn sigma_rust_gives_detc_verdict_on_every_rule_test() {
    let mut disagreements: Vec<(String, String, String)> = Vec::new();
    let mut compared = 0;
    for rule in project_rules() {
        let r = render(&rule);
        let docs = documents(&rule, &r);
        let compiled: Vec<sigma_rust::Rule> =
            docs.iter().map(|(_, d)| sigma_rust_rule(d)).collect();
        for t in &rule.tests {
            let Some(i) = rule
                .detections
                .iter()
                .position(|d| d.platforms.contains(&t.platform))
            else {
                panic!(
                    "{}: test {:?} has no detection for {}",
                    rule.name, t.name, t.platform
                )
            };
            let det = &rule.detections[i];
            let (want, got) = match normalize(&t.platform, &t.event) {
                Some(event) => (
                    detc_match(&rule, det, &event),
                    sigma_rust_match(&compiled[i], &event),
                ),
                // Not an event of the source: neither rule sees it.
                None => (false, false),
            };
            compared += 1;
            if want != got {
                disagreements.push((
                    rule.name.clone(),
                    t.name.clone(),
                    format!(
                        "detc says {}, sigma-rust on {}.yml says {}",
                        want, det.stem, got
                    ),
                ));
            }
        }
    }
    assert!(compared > 0);
    let listed: BTreeSet<(&str, &str)> = SIGMA_RUST_EXCEPTIONS
        .iter()
        .map(|(r, t, _)| (*r, *t))
        .collect();
    let unexpected: Vec<String> = disagreements
        .iter()
        .filter(|(r, t, _)| !listed.contains(&(r.as_str(), t.as_str())))
        .map(|(r, t, d)| format!("{r} / {t}: {d}"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the Sigma output disagrees with detc on:\n{}",
        unexpected.join("\n")
    );
    let stale: Vec<String> = SIGMA_RUST_EXCEPTIONS
        .iter()
        .filter(|(r, t, _)| !disagreements.iter().any(|(r2, t2, _)| r2 == r && t2 == t))
        .map(|(r, t, why)| format!("{r} / {t} ({why})"))
        .collect();
    assert!(
        stale.is_empty(),
        "listed sigma-rust exceptions that agree now; remove them:\n{}",
        stale.join("\n")
    );
    eprintln!("sigma-rust agreed with detc on {compared} rule tests");
}

fn matrix_rule(expr: &str) -> Rule {
    compile(&format!(
        r#"rule matrix {{
  id = "9b1e4a52-7a43-4c1e-8d0a-5f3b2c1d0e9f"
  title = "Matrix"
  description = "One construct"
  author = "tests"
  date = 2024-01-01
  status = test
  severity = low
  source kubernetes.audit on [kubernetes] {{
    match {expr}
  }}
  test "m" on kubernetes expect match {{"verb": "create"}}
  test "n" on kubernetes expect no match {{"verb": "get"}}
}}"#
    ))
}

/// Every construct, rendered alone, gives detc's verdict in sigma-rust on
/// events chosen to separate near misses (case, absence, null, wildcards).
#[test]
fn sigma_rust_gives_detc_verdict_on_each_construct() {
    let cases: Vec<(&str, Vec<Json>)> = vec![
        (
            r#"verb == "create""#,
            vec![
                json!({"verb": "CREATE"}),
                json!({"verb": "created"}),
                json!({}),
            ],
        ),
        (
            r#"verb cased == "create""#,
            vec![json!({"verb": "CREATE"}), json!({"verb": "create"})],
        ),
        (
            r#"verb != "get""#,
            vec![
                json!({"verb": "create"}),
                json!({"verb": "GET"}),
                json!({}),
                json!({"verb": null}),
            ],
        ),
        (
            r#"verb cased != "get""#,
            vec![json!({"verb": "GET"}), json!({"verb": "get"}), json!({})],
        ),
        (
            r#"verb in ["create", "update"]"#,
            vec![json!({"verb": "update"}), json!({"verb": "patch"})],
        ),
        (
            "responseStatus.code != 403",
            vec![
                json!({"responseStatus": {"code": 200}}),
                json!({"responseStatus": {"code": 403}}),
                json!({}),
            ],
        ),
        (
            "responseStatus.code >= 400",
            vec![
                json!({"responseStatus": {"code": 400}}),
                json!({"responseStatus": {"code": 399}}),
                json!({}),
            ],
        ),
        (
            "responseStatus.code < 300",
            vec![
                json!({"responseStatus": {"code": 200}}),
                json!({"responseStatus": {"code": 300}}),
            ],
        ),
        (
            "responseStatus.code > 399",
            vec![
                json!({"responseStatus": {"code": 400}}),
                json!({"responseStatus": {"code": 399}}),
            ],
        ),
        (
            "responseStatus.code <= 200",
            vec![
                json!({"responseStatus": {"code": 200}}),
                json!({"responseStatus": {"code": 201}}),
            ],
        ),
        (
            "responseStatus.code in [401, 403]",
            vec![
                json!({"responseStatus": {"code": 403}}),
                json!({"responseStatus": {"code": 404}}),
            ],
        ),
        (
            r#"user.username startswith any ["system:", "eks:"]"#,
            vec![
                json!({"user": {"username": "EKS:x"}}),
                json!({"user": {"username": "x-eks:"}}),
            ],
        ),
        (
            r#"user.username endswith ".iam.gserviceaccount.com""#,
            vec![
                json!({"user": {"username": "a@p.IAM.gserviceaccount.com"}}),
                json!({"user": {"username": "a.iam"}}),
            ],
        ),
        (
            r#"user.username contains all ["adm", "root"]"#,
            vec![
                json!({"user": {"username": "admroot"}}),
                json!({"user": {"username": "admin"}}),
            ],
        ),
        (
            r#"user.username startswith all ["sys", "system:"]"#,
            vec![
                json!({"user": {"username": "system:x"}}),
                json!({"user": {"username": "sysadmin"}}),
            ],
        ),
        (
            r#"user.username cased contains "Admin""#,
            vec![
                json!({"user": {"username": "xAdminx"}}),
                json!({"user": {"username": "xadminx"}}),
            ],
        ),
        (
            r#"userAgent like "kubectl/*""#,
            vec![
                json!({"userAgent": "KUBECTL/1.29"}),
                json!({"userAgent": "xkubectl/1"}),
            ],
        ),
        (
            r#"userAgent like "*curl*""#,
            vec![
                json!({"userAgent": "my CURL 8"}),
                json!({"userAgent": "wget"}),
            ],
        ),
        (
            r#"userAgent like any ["a*", "*b", "c?d", "e*f?g"]"#,
            vec![
                json!({"userAgent": "axx"}),
                json!({"userAgent": "xxb"}),
                json!({"userAgent": "cXd"}),
                json!({"userAgent": "cXXd"}),
                json!({"userAgent": "eZZfYg"}),
                json!({"userAgent": "zzz"}),
            ],
        ),
        (
            r#"userAgent like "a\\*b*""#,
            vec![json!({"userAgent": "a*bcd"}), json!({"userAgent": "aXbcd"})],
        ),
        (
            r#"userAgent matches /curl\/[0-9]+/"#,
            vec![
                json!({"userAgent": "x CURL/7 y"}),
                json!({"userAgent": "curl/x"}),
            ],
        ),
        (
            r#"userAgent cased matches /Curl/"#,
            vec![json!({"userAgent": "Curl"}), json!({"userAgent": "curl"})],
        ),
        (
            r#"userAgent matches any [/kube(ctl)?/, /w[a-z]et/]"#,
            vec![
                json!({"userAgent": "xKUBEx"}),
                json!({"userAgent": "x wget"}),
                json!({"userAgent": "w3et"}),
            ],
        ),
        (
            r#"sourceIPs cidr "10.0.0.0/8""#,
            vec![
                json!({"sourceIPs": "10.1.2.3"}),
                json!({"sourceIPs": "11.1.2.3"}),
                json!({"sourceIPs": "nope"}),
            ],
        ),
        (
            "objectRef.apiGroup exists",
            vec![
                json!({"objectRef": {"apiGroup": "batch"}}),
                json!({"objectRef": {"apiGroup": null}}),
                json!({}),
            ],
        ),
        (
            "not objectRef.apiGroup exists",
            vec![
                json!({"objectRef": {"apiGroup": "batch"}}),
                json!({"objectRef": {"apiGroup": null}}),
                json!({}),
            ],
        ),
        (
            "objectRef.apiGroup == null",
            vec![
                json!({"objectRef": {"apiGroup": "batch"}}),
                json!({"objectRef": {}}),
            ],
        ),
        (
            "requestObject.spec.privileged == true",
            vec![
                json!({"requestObject": {"spec": {"privileged": true}}}),
                json!({"requestObject": {"spec": {"privileged": false}}}),
                json!({}),
            ],
        ),
        (
            "requestObject.spec.hostNetwork != true",
            vec![
                json!({"requestObject": {"spec": {"hostNetwork": false}}}),
                json!({"requestObject": {"spec": {"hostNetwork": true}}}),
                json!({}),
            ],
        ),
        (
            r#"(verb == "create" or verb == "update") and not (user.username startswith "system:" and not user.username contains "sa")"#,
            vec![
                json!({"verb": "create", "user": {"username": "alice"}}),
                json!({"verb": "create", "user": {"username": "system:node"}}),
                json!({"verb": "update", "user": {"username": "system:sa:x"}}),
                json!({"verb": "get", "user": {"username": "alice"}}),
                json!({"verb": "create"}),
            ],
        ),
        (
            r#"verb in ["create", "update"] or objectRef.resource == "jobs""#,
            vec![
                json!({"verb": "get", "objectRef": {"resource": "jobs"}}),
                json!({"verb": "get"}),
            ],
        ),
        (
            r#"verb == "create" and objectRef.apiGroup == "batch" or not objectRef.apiGroup exists and verb == "get""#,
            vec![
                json!({"verb": "create", "objectRef": {"apiGroup": "batch"}}),
                json!({"verb": "get"}),
                json!({"verb": "get", "objectRef": {"apiGroup": "apps"}}),
                json!({"verb": "create"}),
            ],
        ),
        (
            r#"userAgent == "a*b""#,
            vec![json!({"userAgent": "a*b"}), json!({"userAgent": "aXb"})],
        ),
        (
            r#"userAgent contains "?""#,
            vec![json!({"userAgent": "what?"}), json!({"userAgent": "what"})],
        ),
        (
            r#"userAgent == "c:\\temp\\*x""#,
            vec![
                json!({"userAgent": "C:\\TEMP\\*x"}),
                json!({"userAgent": "c:\\temp\\yx"}),
            ],
        ),
        (
            r#"userAgent in ["yes", "12:30:00", "1_000", "=", "~", "null", "2024-07-11"]"#,
            vec![
                json!({"userAgent": "yes"}),
                json!({"userAgent": "12:30:00"}),
                json!({"userAgent": "1_000"}),
                json!({"userAgent": "="}),
                json!({"userAgent": "~"}),
                json!({"userAgent": "null"}),
                json!({"userAgent": "2024-07-11"}),
                json!({"userAgent": "1000"}),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (expr, events) in &cases {
        let rule = matrix_rule(expr);
        let r = render(&rule);
        let docs = documents(&rule, &r);
        let sr = sigma_rust_rule(&docs[0].1);
        let mut saw = BTreeSet::new();
        for ev in events {
            let want = detc_match(&rule, &rule.detections[0], ev);
            saw.insert(want);
            let got = sigma_rust_match(&sr, ev);
            if want != got {
                failures.push(format!(
                    "{expr}\n  event {ev}: detc {want}, sigma-rust {got}\n{}",
                    docs[0].0
                ));
            }
        }
        assert_eq!(
            saw.len(),
            2,
            "{expr}: the events must include a match and a miss"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// 3. Seed fidelity

/// A selection or condition in a comparable form: maps as sorted items with
/// sorted modifiers and value sets; `and`/`or` children sorted.
/// One detection item: field, sorted modifiers, sorted values.
type CanonItem = (String, Vec<String>, Vec<String>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Canon {
    Sel(Vec<Vec<CanonItem>>),
    Not(Box<Canon>),
    And(Vec<Canon>),
    Or(Vec<Canon>),
}

fn canon_value(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => format!("s:{s}"),
        Yaml::Number(n) => format!("n:{n}"),
        Yaml::Bool(b) => format!("b:{b}"),
        Yaml::Null => "null".into(),
        other => panic!("unexpected value {other:?}"),
    }
}

fn canon_selection(sel: &Yaml) -> Canon {
    let map = |m: &serde_yaml::Mapping| {
        let mut items: Vec<CanonItem> = m
            .iter()
            .map(|(k, v)| {
                let k = k.as_str().unwrap();
                let mut parts = k.split('|');
                let field = parts.next().unwrap().to_string();
                let mut mods: Vec<String> = parts.map(String::from).collect();
                mods.sort();
                let mut vals: Vec<String> = match v {
                    Yaml::Sequence(xs) => xs.iter().map(canon_value).collect(),
                    one => vec![canon_value(one)],
                };
                vals.sort();
                vals.dedup();
                (field, mods, vals)
            })
            .collect();
        items.sort();
        items
    };
    let mut maps = match sel {
        Yaml::Mapping(m) => vec![map(m)],
        Yaml::Sequence(xs) => xs.iter().map(|x| map(x.as_mapping().unwrap())).collect(),
        other => panic!("unexpected selection {other:?}"),
    };
    maps.sort();
    Canon::Sel(maps)
}

/// Parse a Sigma condition (`and`, `or`, `not`, parentheses, names) and
/// replace names with their canonical selections.
fn canon_condition(cond: &str, det: &serde_yaml::Mapping) -> Canon {
    let spaced = cond.replace('(', " ( ").replace(')', " ) ");
    let toks: Vec<&str> = spaced.split_whitespace().collect();
    fn or(t: &[&str], i: &mut usize, det: &serde_yaml::Mapping) -> Canon {
        let mut xs = vec![and(t, i, det)];
        while t.get(*i) == Some(&"or") {
            *i += 1;
            xs.push(and(t, i, det));
        }
        flat(xs, false)
    }
    fn and(t: &[&str], i: &mut usize, det: &serde_yaml::Mapping) -> Canon {
        let mut xs = vec![not(t, i, det)];
        while t.get(*i) == Some(&"and") {
            *i += 1;
            xs.push(not(t, i, det));
        }
        flat(xs, true)
    }
    fn not(t: &[&str], i: &mut usize, det: &serde_yaml::Mapping) -> Canon {
        match t.get(*i) {
            Some(&"not") => {
                *i += 1;
                Canon::Not(Box::new(not(t, i, det)))
            }
            Some(&"(") => {
                *i += 1;
                let x = or(t, i, det);
                assert_eq!(t.get(*i), Some(&")"), "unbalanced condition");
                *i += 1;
                x
            }
            Some(name) => {
                *i += 1;
                canon_selection(
                    det.get(*name)
                        .unwrap_or_else(|| panic!("condition names unknown selection {name}")),
                )
            }
            None => panic!("condition ends early"),
        }
    }
    fn flat(mut xs: Vec<Canon>, is_and: bool) -> Canon {
        if xs.len() == 1 {
            return xs.remove(0);
        }
        let mut out = Vec::new();
        for x in xs {
            match x {
                Canon::And(ys) if is_and => out.extend(ys),
                Canon::Or(ys) if !is_and => out.extend(ys),
                other => out.push(other),
            }
        }
        out.sort();
        if is_and {
            Canon::And(out)
        } else {
            Canon::Or(out)
        }
    }
    let mut i = 0;
    let c = or(&toks, &mut i, det);
    assert_eq!(i, toks.len(), "trailing tokens in condition {cond:?}");
    c
}

fn canon_detection(doc: &Yaml) -> Canon {
    let det = doc["detection"].as_mapping().expect("detection map");
    canon_condition(
        det["condition"].as_str().expect("one condition string"),
        det,
    )
}

/// A YAML sequence of strings.
fn str_list(v: &Yaml) -> Vec<&str> {
    let items = v
        .as_sequence()
        .unwrap_or_else(|| panic!("not a sequence: {v:?}"));
    items.iter().map(|x| x.as_str().unwrap()).collect()
}

fn tag_set(doc: &Yaml) -> BTreeSet<String> {
    doc["tags"]
        .as_sequence()
        .map(|t| t.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn seed_ports_render_to_the_seed_sigma() {
    let seeds_dir = root().join("rules/seeds");
    for (prefix, fixture) in [
        (
            "seed_000_",
            "seed_000_kubernetes_cronjob_job_modification.yml",
        ),
        ("seed_002_", "seed_002_azure_kubernetes_cronjob.yml"),
    ] {
        let path = std::fs::read_dir(&seeds_dir)
            .expect("rules/seeds exists")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with(prefix) && n.ends_with(".rule")
            })
            .unwrap_or_else(|| panic!("no rules/seeds/{prefix}*.rule"));
        let mut rules = detc::load::compile_path(&path).unwrap_or_else(|r| panic!("{r}"));
        let rule = rules.remove(0);
        let r = render(&rule);
        let docs = documents(&rule, &r);
        assert_eq!(docs.len(), 1, "{}: one source, one Sigma rule", rule.name);
        let ours = &docs[0].1;
        let text =
            std::fs::read_to_string(root().join("tests/fixtures/seeds").join(fixture)).unwrap();
        let seed: Yaml = serde_yaml::from_str(&text).unwrap();
        let ctx = format!("{} vs {fixture}:\n{}", rule.name, docs[0].0);
        assert_eq!(ours["logsource"], seed["logsource"], "logsource: {ctx}");
        assert_eq!(
            canon_detection(ours),
            canon_detection(&seed),
            "detection: {ctx}"
        );
        for key in [
            "title",
            "id",
            "status",
            "level",
            "author",
            "falsepositives",
            "references",
            "related",
        ] {
            assert_eq!(ours[key], seed[key], "{key}: {ctx}");
        }
        assert_eq!(
            ours["description"].as_str().map(str::trim),
            seed["description"].as_str().map(str::trim),
            "{ctx}"
        );
        assert_eq!(tag_set(ours), tag_set(&seed), "tags: {ctx}");
        // Dates: the seed's YAML date and ours, both YYYY-MM-DD.
        for key in ["date", "modified"] {
            assert_eq!(ours[key], seed[key], "{key}: {ctx}");
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Hostile values

const NASTY: &str = r#"a*b?c\d"e'f: g #h - i `j` |k $l {m} [n] %o @p !q &r *s >t"#;

fn hostile_rule() -> Rule {
    // The rule text escapes `\` and `"`; NASTY is written with them escaped.
    let nasty = NASTY.replace('\\', "\\\\").replace('"', "\\\"");
    let text = r##"rule hostile_values {
  id = "3f0e6d2a-1c4b-4e8f-9a7d-2b5c6e8f0a1d"
  title = "Hostile: \"quotes\" 'single' \\ * ? # not: a key"
  description = """
    line one: value
    # not a comment
    - not a list item
    title: injected
  """
  author = "O'Brien \"the\" #1\nsecond: line"
  date = 2024-01-01
  status = test
  severity = high
  references = ["https://example.com/a?b=c#d", "yes", "12:30:00", "1_000", "~", "null", "=", "<<"]
  false_positives = ["line\nbreak", "tab\there", "nel\u{85}ls\u{2028}ps\u{2029}end", "astral \u{1F600}", "control \u{1}\u{7f}\u{9f}", "fffe \u{fffe} bom \u{feff}", " lead", "trail ", "\n# injected: true"]
  tags = ["evil\n# injected: true\ntitle: x", "detection.threat-hunting"]
  runbook = "step 1\r\n# injected: true\u{2028}injected2: true"
  source kubernetes.audit on [kubernetes] {
    let eq = user.username == "@NASTY@"
    let weird = verb in ["yes", "on", "12:30:00", "=", "<<", "1_000", "-", "*", "?", "\\", "", " lead", "trail ", "new\nline", "tab\t", "2024-07-11", "\u{85}", "\u{2028}", "\u{1F600}", "'", "\"", "#", ": "]
    let pre = userAgent startswith "*lit?\\"
    match eq or weird or pre
    output {
      group_by = [user.username]
      rename = { user.username = user }
      title = "x\n# injected: true"
    }
  }
  test "m" on kubernetes expect match {"verb": "yes"}
  test "n" on kubernetes expect no match {"verb": "get"}
}"##;
    compile(&text.replace("@NASTY@", &nasty))
}

const TOP_KEYS: &[&str] = &[
    "title",
    "id",
    "related",
    "status",
    "description",
    "references",
    "author",
    "date",
    "modified",
    "tags",
    "logsource",
    "detection",
    "fields",
    "falsepositives",
    "level",
];

/// PyYAML (what pySigma reads with) and pySigma's own view of a file.
const PY_INSPECT: &str = r#"
import json, sys, yaml
from sigma.collection import SigmaCollection
from sigma.types import SigmaString, SpecialChars
text = open(sys.argv[1], encoding="utf-8").read()
data = yaml.safe_load(text)
rule = SigmaCollection.from_yaml(text).rules[0]
dets = {}
for name, det in rule.detection.detections.items():
    items = []
    def walk(d):
        for it in d.detection_items:
            if hasattr(it, "detection_items"):
                walk(it)
                continue
            vals = []
            for v in it.value:
                if isinstance(v, SigmaString):
                    # Literal text as is, wildcards as <WILDCARD_MULTI> / <WILDCARD_SINGLE>.
                    text = "".join(x if isinstance(x, str) else "<%s>" % x.name for x in v.s)
                    vals.append({"plain": text, "special": v.contains_special()})
                elif hasattr(v, "regexp"):
                    # A regex: its text as written.
                    vals.append({"regex": v.regexp.original})
                else:
                    vals.append({"other": str(v)})
            items.append({"field": it.field, "values": vals})
    walk(det)
    dets[name] = items
print(json.dumps({"yaml": data, "sigma": dets}, default=str))
"#;

#[test]
fn hostile_values_round_trip_and_keep_their_sigma_meaning() {
    let rule = hostile_rule();
    let r = render(&rule);
    let docs = documents(&rule, &r);
    let (text, doc) = &docs[0];
    let hostile_verbs: Vec<String> = match rule.detections[0].let_expr("weird") {
        Some(detc::ir::Expr::Cmp(c)) => c
            .values
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        other => panic!("{other:?}"),
    };

    // Comments: everything before the document is `# ` lines, one per loss
    // line at least, and the injected keys did not become YAML.
    let head: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("title:"))
        .collect();
    assert!(
        head.iter().all(|l| l.starts_with("# ")),
        "non-comment line in the header:\n{text}"
    );
    assert_eq!(
        head.iter().filter(|l| l.starts_with("# - ")).count(),
        r.losses.len(),
        "{text}"
    );
    let keys: Vec<&str> = doc
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        keys.iter().all(|k| TOP_KEYS.contains(k)),
        "unexpected top-level keys {keys:?}\n{text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("injected")), "{text}");
    for l in &r.losses {
        assert!(!l.construct.is_empty());
    }
    assert!(r
        .losses
        .iter()
        .any(|l| l.construct.starts_with("tag evil") && l.kind == LossKind::NotApplicable));

    // serde_yaml reads the metadata back unchanged.
    assert_eq!(doc["title"].as_str().unwrap(), rule.meta.title);
    assert_eq!(doc["author"].as_str().unwrap(), rule.meta.author);
    assert_eq!(
        doc["description"].as_str().unwrap(),
        rule.meta.description.trim()
    );
    let fps: Vec<&str> = str_list(&doc["falsepositives"]);
    assert_eq!(
        fps,
        rule.meta
            .false_positives
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    let refs: Vec<&str> = str_list(&doc["references"]);
    assert_eq!(
        refs,
        rule.meta
            .references
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    // ... and the detection values: escaped for Sigma, or, where `sigma
    // check` would flag the plain string (literal `*`/`?`, control
    // characters, numbers as text), a literal regex.
    let det = doc["detection"].as_mapping().unwrap();
    let re_of = |v: &str| format!("^{}$", regex_literal(v));
    assert_eq!(
        det["eq"]["user.username|re|i"].as_str().unwrap(),
        re_of(NASTY)
    );
    let weird = det["weird"]
        .as_sequence()
        .expect("plain values and regexes");
    let plain_verbs: Vec<&str> = str_list(&weird[0]["verb"]);
    let re_verbs: Vec<&str> = str_list(&weird[1]["verb|re|i"]);
    assert_eq!(
        plain_verbs,
        hostile_verbs
            .iter()
            .filter(|v| !needs_regex(v))
            .map(|v| escape_value(v))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        re_verbs,
        hostile_verbs
            .iter()
            .filter(|v| needs_regex(v))
            .map(|v| re_of(v))
            .collect::<Vec<_>>()
    );
    assert!(re_verbs
        .iter()
        .all(|r| !r.chars().any(|c| (c as u32) < 0x20)));
    assert_eq!(
        det["pre"]["userAgent|re|i"].as_str().unwrap(),
        "^\\*lit\\?\\\\"
    );

    // PyYAML reads the same data, and pySigma reads the values as literals.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile_values.yml");
    std::fs::write(&path, text).unwrap();
    let (ok, out) = run(Command::new(venv("python"))
        .arg("-c")
        .arg(PY_INSPECT)
        .arg(&path));
    assert!(ok, "PyYAML/pySigma cannot read the file:\n{out}\n{text}");
    let py: Json = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let mut ours = serde_json::to_value(doc).unwrap();
    ours["date"] = json!("2024-01-01");
    assert_eq!(
        py["yaml"], ours,
        "PyYAML reads the file differently from serde_yaml\n{text}"
    );
    // pySigma reads the regexes as regexes, the other values as literals.
    let eq = &py["sigma"]["eq"][0]["values"][0];
    assert_eq!(eq["regex"].as_str().unwrap(), re_of(NASTY), "{eq}");
    let weird: Vec<&Json> = py["sigma"]["weird"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|it| it["values"].as_array().unwrap())
        .collect();
    let plain: Vec<&str> = weird.iter().filter_map(|v| v["plain"].as_str()).collect();
    assert_eq!(
        plain,
        hostile_verbs
            .iter()
            .filter(|v| !needs_regex(v))
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert!(
        weird
            .iter()
            .filter(|v| v.get("plain").is_some())
            .all(|v| v["special"] == json!(false)),
        "{weird:?}"
    );
    let pre = &py["sigma"]["pre"][0]["values"][0];
    assert_eq!(pre["regex"].as_str().unwrap(), "^\\*lit\\?\\\\", "{pre}");

    // The meaning: sigma-rust and detc agree that the literal value matches
    // and that the same text with a real character where `*` or `?` stood
    // does not.
    let sr = sigma_rust_rule(doc);
    let det0 = &rule.detections[0];
    let mut events = vec![
        (json!({"user": {"username": NASTY}}), true),
        (json!({"user": {"username": NASTY.to_uppercase()}}), true),
        (
            json!({"user": {"username": NASTY.replacen('*', "X", 1)}}),
            false,
        ),
        (
            json!({"user": {"username": NASTY.replacen('?', "X", 1)}}),
            false,
        ),
        (json!({"userAgent": "*LIT?\\ and more"}), true),
        (json!({"userAgent": "xLIT?\\ and more"}), false),
        (json!({"verb": "x"}), false),
    ];
    for v in &hostile_verbs {
        // sigma-rust cannot match the empty value (its wildcard matcher
        // needs a token); every other hostile value must match in both.
        if !v.is_empty() {
            events.push((json!({"verb": v}), true));
        }
    }
    for (ev, want) in events {
        assert_eq!(detc_match(&rule, det0, &ev), want, "detc on {ev}");
        assert_eq!(
            sigma_rust_match(&sr, &ev),
            want,
            "sigma-rust on {ev}\n{text}"
        );
    }
}

#[test]
fn yaml_emitter_survives_hostile_scalars() {
    let mut values: Vec<String> = [
        "yes",
        "Yes",
        "ON",
        "off",
        "y",
        "n",
        "~",
        "null",
        "1e3",
        "0x10",
        "0o17",
        "012",
        "2024-07-11",
        "2024-07-11T00:00:00Z",
        "1_000",
        "12:30:00",
        "190:20:30",
        ".inf",
        ".nan",
        "=",
        "<<",
        "a: b",
        "- x",
        "#x",
        "x #y",
        "x:",
        "'q'",
        "\"dq\"",
        "a\nb",
        "a\nb\n",
        "a\n\nb\n",
        "a\n  indented\n",
        "a\n\n",
        "\n",
        "\nlead",
        " lead",
        "trail ",
        "\u{85}x",
        "a\u{2028}b",
        "a\u{2029}b",
        "\u{7f}",
        "\u{9f}",
        "tab\there",
        "\u{1F600}",
        "a\\*b",
        "*x",
        "?",
        "%x",
        "@x",
        "`x",
        "!x",
        "&x",
        "|x",
        ">x",
        "1.0",
        "-0",
        "+1",
        "0b1",
        "true",
        "TRUE",
        "\u{feff}x",
        "\u{0}x",
        "a\r\nb",
        "a\rb",
        "\tx",
        "x\t",
        "",
        "\u{fffe}\u{ffff}",
        "a\n\u{85}b",
        "{a}",
        "[a]",
        "a, b",
        "a  b",
        "a\n#b\n- c\nd: e",
        "---",
        "...",
        "--- x",
        "key: |\n  block",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    values.push("x".repeat(300));
    let mut m = serde_yaml::Mapping::new();
    let seq: Vec<Yaml> = values.iter().map(|v| Yaml::String(v.clone())).collect();
    m.insert(Yaml::String("list".into()), Yaml::Sequence(seq.clone()));
    let mut nested = serde_yaml::Mapping::new();
    for (i, v) in values.iter().enumerate() {
        nested.insert(Yaml::String(format!("{v}|k{i}")), Yaml::String(v.clone()));
    }
    m.insert(Yaml::String("map".into()), Yaml::Mapping(nested.clone()));
    m.insert(
        Yaml::String("maps".into()),
        Yaml::Sequence(vec![Yaml::Mapping(nested)]),
    );
    let mut nums = serde_yaml::Mapping::new();
    for (i, f) in [1e21f64, 0.5, 1e-7, -2.5, 400.0, 1.2345678901234567e300]
        .iter()
        .enumerate()
    {
        nums.insert(Yaml::String(format!("f{i}")), Yaml::Number((*f).into()));
    }
    nums.insert(Yaml::String("i".into()), Yaml::Number((-42i64).into()));
    nums.insert(Yaml::String("u".into()), Yaml::Number(u64::MAX.into()));
    nums.insert(Yaml::String("b".into()), Yaml::Bool(false));
    nums.insert(Yaml::String("z".into()), Yaml::Null);
    m.insert(Yaml::String("scalars".into()), Yaml::Mapping(nums));
    let doc = Yaml::Mapping(m);
    let text = detc::backend::yaml::emit_yaml(&doc);
    let back: Yaml = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        back, doc,
        "serde_yaml reads the emitted YAML differently:\n{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.yml");
    std::fs::write(&path, &text).unwrap();
    let script = "import json,sys,yaml\nd=yaml.safe_load(open(sys.argv[1],encoding='utf-8'))\nprint(json.dumps(d, ensure_ascii=True))";
    let (ok, out) = run(Command::new(venv("python"))
        .arg("-c")
        .arg(script)
        .arg(&path));
    assert!(ok, "PyYAML cannot read the emitted YAML:\n{out}\n{text}");
    let py: Json = serde_json::from_str(out.trim()).unwrap();
    let ours = serde_json::to_value(&doc).unwrap();
    assert_eq!(
        py["list"], ours["list"],
        "PyYAML reads strings differently:\n{text}"
    );
    assert_eq!(py["map"], ours["map"]);
    assert_eq!(py["maps"], ours["maps"]);
    for (k, v) in ours["scalars"].as_object().unwrap() {
        let p = &py["scalars"][k];
        match (v.as_f64(), p.as_f64()) {
            // serde_json's default float parsing is not always correctly
            // rounded, hence the relative tolerance.
            (Some(a), Some(b)) => assert!(a == b || ((a - b) / a).abs() < 1e-15, "{k}: {a} vs {b}"),
            _ => assert_eq!(p, v, "{k}"),
        }
    }
}

// ---------------------------------------------------------------------------
// 5. The dialect

#[test]
fn values_are_escaped_for_sigma() {
    assert_eq!(escape_value("plain"), "plain");
    assert_eq!(escape_value(r"a*b?c\d"), r"a\*b\?c\\d");
    assert_eq!(escape_value(r"\*"), r"\\\*");
}

#[test]
fn globs_become_the_closest_sigma_form() {
    assert_eq!(
        glob_value(&Glob::parse("*foo*").unwrap()),
        (Some("contains"), "foo".into())
    );
    assert_eq!(
        glob_value(&Glob::parse("foo*").unwrap()),
        (Some("startswith"), "foo".into())
    );
    assert_eq!(
        glob_value(&Glob::parse("*foo").unwrap()),
        (Some("endswith"), "foo".into())
    );
    assert_eq!(
        glob_value(&Glob::parse("foo").unwrap()),
        (None, "foo".into())
    );
    assert_eq!(
        glob_value(&Glob::parse("f?o").unwrap()),
        (None, "f?o".into())
    );
    assert_eq!(
        glob_value(&Glob::parse("a**b***").unwrap()),
        (None, "a*b*".into())
    );
    assert_eq!(glob_value(&Glob::parse("**").unwrap()), (None, "*".into()));
    assert_eq!(
        glob_value(&Glob::parse(r"a\*b*").unwrap()),
        (Some("startswith"), r"a\*b".into())
    );
    assert_eq!(
        glob_value(&Glob::parse(r"*a\?b*").unwrap()),
        (Some("contains"), r"a\?b".into())
    );
    assert_eq!(
        glob_value(&Glob::parse(r"\n\\x").unwrap()),
        (None, r"n\\x".into())
    );
    // A lone trailing backslash is no glob: the checker refuses it.
    assert!(Glob::parse(r"trailing\").is_err());
    assert_eq!(
        glob_value(&Glob::parse("*a*b*").unwrap()),
        (None, "*a*b*".into())
    );
}

#[test]
fn attack_ids_become_sigma_tags() {
    let ids = [
        "TA0043", "TA0042", "TA0001", "TA0002", "TA0003", "TA0004", "TA0005", "TA0006", "TA0007",
        "TA0008", "TA0009", "TA0011", "TA0010", "TA0040",
    ];
    let tags: BTreeSet<String> = ids
        .iter()
        .map(|i| tactic_tag(i).unwrap_or_else(|| panic!("{i}")))
        .collect();
    assert_eq!(tags.len(), 14);
    assert_eq!(tactic_tag("TA0002"), Some("attack.execution".to_string()));
    assert_eq!(tactic_tag("TA0003"), Some("attack.persistence".to_string()));
    assert_eq!(
        tactic_tag("TA0004"),
        Some("attack.privilege-escalation".to_string())
    );
    assert_eq!(
        tactic_tag("TA0011"),
        Some("attack.command-and-control".to_string())
    );
    assert_eq!(tactic_tag("TA0027"), None);
    assert!(tags
        .iter()
        .all(|t| t.starts_with("attack.") && *t == t.to_lowercase()));
    assert_eq!(technique_tag("T1053.007"), "attack.t1053.007");
}

#[test]
fn two_sources_give_two_linked_documents() {
    let rule = project_rules()
        .into_iter()
        .find(|r| r.name == "k8s_cronjob_job_write")
        .expect("flagship");
    assert_eq!(rule.detections.len(), 2);
    let r = render(&rule);
    let docs = documents(&rule, &r);
    let (a, b) = (&docs[0].1, &docs[1].1);
    assert_eq!(a["id"].as_str().unwrap(), rule.meta.id);
    let second = uuid::Uuid::parse_str(b["id"].as_str().unwrap()).unwrap();
    assert_eq!(second.get_version_num(), 5);
    assert_eq!(second.to_string(), sigma::document_id(&rule, 1));
    assert_ne!(a["title"], b["title"]);
    let related = |d: &Yaml| -> Vec<(String, String)> {
        d["related"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["id"].as_str().unwrap().to_string(),
                    x["type"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert!(related(a).contains(&(second.to_string(), "similar".into())));
    assert!(related(b).contains(&(rule.meta.id.clone(), "similar".into())));
    for rel in &rule.meta.related {
        assert!(related(a).contains(&(rel.id.clone(), rel.kind.as_str().to_string())));
    }
    assert_eq!(a["logsource"]["product"], "kubernetes");
    assert_eq!(a["logsource"]["service"], "audit");
    assert_eq!(b["logsource"]["product"], "azure");
    assert_eq!(b["logsource"]["service"], "activitylogs");
    // Losses: every indicator is unsupported, the output settings are not
    // applicable, and each is a visible comment in its file.
    let stem = &rule.detections[0].stem;
    for ind in &rule.detections[0].indicators {
        let construct = format!("indicator {}", ind.name);
        assert!(
            r.losses.iter().any(|l| l.stem == *stem
                && l.construct == construct
                && l.kind == LossKind::Unsupported),
            "{construct}"
        );
        assert!(
            docs[0]
                .0
                .contains(&format!("# - unsupported: {construct}: ")),
            "{construct}"
        );
    }
    for setting in [
        "output.title",
        "output.dedup",
        "output.schedule",
        "output.risk",
        "output.rename",
    ] {
        assert!(
            r.losses.iter().any(|l| l.stem == *stem
                && l.construct == setting
                && l.kind == LossKind::NotApplicable),
            "{setting}"
        );
        assert!(
            docs[0]
                .0
                .contains(&format!("# - not applicable: {setting}: ")),
            "{setting}"
        );
    }
    // The second source has no rename: none is reported for it.
    assert!(!r
        .losses
        .iter()
        .any(|l| l.stem == rule.detections[1].stem && l.construct == "output.rename"));
    let fields: Vec<&str> = str_list(&a["fields"]);
    assert!(
        fields.starts_with(&["user.username", "objectRef.namespace", "objectRef.name"]),
        "{fields:?}"
    );
}

fn detection_of(expr: &str) -> serde_yaml::Mapping {
    let rule = matrix_rule(expr);
    sigma::detection_section(&rule.detections[0]).unwrap_or_else(|u| panic!("{expr}: {u:?}"))
}

fn condition(det: &serde_yaml::Mapping) -> &str {
    det["condition"].as_str().unwrap()
}

#[test]
fn lets_become_named_selections() {
    let rule = compile(
        r#"rule lets {
  id = "9b1e4a52-7a43-4c1e-8d0a-5f3b2c1d0e90"
  title = "Lets"
  description = "d"
  author = "a"
  date = 2024-01-01
  status = test
  severity = low
  source kubernetes.audit on [kubernetes] {
    let write  = objectRef.resource in ["cronjobs", "jobs"] and verb in ["create", "update"]
    let either = verb == "create" or verb == "update"
    let batch  = objectRef.apiGroup == "batch" or not objectRef.apiGroup exists
    let mixed  = userAgent == "x" and (verb == "a" or not userAgent contains "y")
    let all    = verb == "get"
    match write and either and batch and not mixed and all
  }
  test "m" on kubernetes expect match {"verb": "create"}
  test "n" on kubernetes expect no match {"verb": "get"}
}"#,
    );
    let det = sigma::detection_section(&rule.detections[0]).unwrap();
    let names: Vec<&str> = det.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "write",
            "either",
            "batch",
            "mixed_1",
            "mixed_2",
            "mixed_3",
            "all_sel",
            "mixed_1_absent",
            "mixed_2_absent",
            "condition"
        ]
    );
    assert_eq!(
        det["write"]["verb"],
        serde_yaml::from_str::<Yaml>("[create, update]").unwrap()
    );
    assert_eq!(
        det["either"]["verb"],
        serde_yaml::from_str::<Yaml>("[create, update]").unwrap()
    );
    assert_eq!(
        det["batch"],
        serde_yaml::from_str::<Yaml>("[{objectRef.apiGroup: batch}, {objectRef.apiGroup: null}]")
            .unwrap()
    );
    assert_eq!(
        condition(&det),
        // Negated selections carry their fields' `null` guards.
        "write and either and batch and not (mixed_1 and not mixed_1_absent and ((mixed_2 and not mixed_2_absent) or not (mixed_3 and not mixed_1_absent))) and all_sel"
    );
}

#[test]
fn comparisons_map_to_modifiers() {
    let one = |expr: &str| -> (String, Yaml) {
        let det = detection_of(expr);
        assert_eq!(condition(&det), "selection", "{expr}");
        let sel = det["selection"].as_mapping().unwrap();
        assert_eq!(sel.len(), 1, "{expr}: {sel:?}");
        let (k, v) = sel.iter().next().unwrap();
        (k.as_str().unwrap().to_string(), v.clone())
    };
    // A literal `*` is a regex: `sigma check` flags an escaped wildcard.
    assert_eq!(
        one(r#"verb == "a*""#),
        ("verb|re|i".into(), Yaml::String(r"^a\*$".into()))
    );
    assert_eq!(
        one(r#"verb == "403""#),
        ("verb|re|i".into(), Yaml::String("^403$".into()))
    );
    assert_eq!(
        one(r#"verb contains "a\tb""#),
        ("verb|re|i".into(), Yaml::String(r"a\tb".into()))
    );
    assert_eq!(one(r#"verb cased == "A""#).0, "verb|cased");
    assert_eq!(one(r#"verb startswith "a""#).0, "verb|startswith");
    assert_eq!(one(r#"verb cased endswith "a""#).0, "verb|endswith|cased");
    assert_eq!(
        one(r#"verb contains all ["a", "b"]"#).0,
        "verb|contains|all"
    );
    assert_eq!(
        one(r#"verb matches /a.b/"#),
        ("verb|re|i".into(), Yaml::String("a.b".into()))
    );
    assert_eq!(one(r#"verb cased matches /a.b/"#).0, "verb|re");
    assert_eq!(one(r#"sourceIPs cidr "10.0.0.0/8""#).0, "sourceIPs|cidr");
    assert_eq!(
        one("responseStatus.code >= 400").0,
        "responseStatus.code|gte"
    );
    assert_eq!(one("responseStatus.code < 400").0, "responseStatus.code|lt");
    assert_eq!(
        one("responseStatus.code == 404").1,
        Yaml::Number(404.into())
    );
    // A boolean is a YAML boolean or exactly its text (a Sigma boolean
    // matches only a boolean): two alternatives.
    for (expr, b) in [
        ("requestObject.spec.privileged == true", true),
        ("requestObject.spec.privileged != true", false),
    ] {
        let det = detection_of(expr);
        assert_eq!(condition(&det), "selection", "{expr}");
        let alternatives: Vec<(String, Yaml)> = det["selection"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{expr}: {det:?}"))
            .iter()
            .map(|m| {
                let (k, v) = m.as_mapping().unwrap().iter().next().unwrap();
                (k.as_str().unwrap().to_string(), v.clone())
            })
            .collect();
        assert_eq!(
            alternatives,
            [
                ("requestObject.spec.privileged".to_string(), Yaml::Bool(b)),
                (
                    "requestObject.spec.privileged|re".to_string(),
                    Yaml::String(format!("^{b}$"))
                ),
            ],
            "{expr}"
        );
    }
    assert_eq!(one("not verb exists"), ("verb".into(), Yaml::Null));
    assert_eq!(one(r#"userAgent like "*curl*""#).0, "userAgent|contains");

    // `exists` is `not x: null`, `!=` on strings is `not` of "absent or equal".
    let det = detection_of("verb exists");
    assert_eq!(condition(&det), "not selection_1");
    assert_eq!(det["selection_1"]["verb"], Yaml::Null);
    let det = detection_of(r#"verb != "get""#);
    assert_eq!(condition(&det), "not selection_1");
    assert_eq!(
        det["selection_1"],
        serde_yaml::from_str::<Yaml>("[{verb: null}, {verb: get}]").unwrap()
    );
    // Numeric `!=` is greater or less.
    let det = detection_of("responseStatus.code != 403");
    assert_eq!(
        det["selection"],
        serde_yaml::from_str::<Yaml>(
            "[{responseStatus.code|gt: 403}, {responseStatus.code|lt: 403}]"
        )
        .unwrap()
    );
    // `all` without `contains` would be an issue in pySigma: one selection a value.
    let det = detection_of(r#"verb startswith all ["a", "ab"]"#);
    assert_eq!(condition(&det), "selection_1 and selection_2");
    // A list of globs needing different modifiers is a list of maps.
    let det = detection_of(r#"userAgent like any ["a*", "*b", "c?d"]"#);
    assert_eq!(
        det["selection"],
        serde_yaml::from_str::<Yaml>(
            r#"[{userAgent|startswith: a}, {userAgent|endswith: b}, {userAgent: "c?d"}]"#
        )
        .unwrap()
    );
}

#[test]
fn inexpressible_conditions_are_refused_precisely() {
    let rule = matrix_rule(r#"requestObject.**.image == "alpine""#);
    let err = sigma::detection_section(&rule.detections[0]).unwrap_err();
    assert!(err.reason.contains("`**`"), "{err:?}");
    // The document is lost, as an unsupported loss naming the construct.
    let r = detc::build::render(&rule, Target::Sigma).unwrap();
    assert!(r.files.is_empty());
    assert!(
        r.losses
            .iter()
            .any(|l| l.kind == detc::backend::LossKind::Unsupported
                && l.stem == "matrix"
                && l.reason.contains("`**`")),
        "{:?}",
        r.losses
    );
    let rule = matrix_rule(r#"requestObject.metadata.annotations.`a.b/c` == "x""#);
    let err = sigma::detection_section(&rule.detections[0]).unwrap_err();
    assert!(
        err.reason.contains("cannot be part of a Sigma field name"),
        "{err:?}"
    );
    // `!=` on an array field means "some element differs": not expressible.
    let rule = matrix_rule(r#"user.groups != "system:masters""#);
    let err = sigma::detection_section(&rule.detections[0]).unwrap_err();
    assert!(err.reason.contains("array"), "{err:?}");
}

// GKE: the gcp/gcp.audit document

/// The GKE LogEntries of tests/fixtures/stored/elastic/gcp_audit, and variants.
fn gke_entries() -> Vec<Json> {
    let dir = root().join("tests/fixtures/stored/elastic/gcp_audit");
    let mut bases = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let v: Json =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
        bases.push(v["log_entry"].clone());
    }
    let set = common::with_value;
    let mut out = bases.clone();
    for b in &bases {
        for m in [
            "io.k8s.batch.v1.jobs.create",
            "io.k8s.BATCH.v1.CRONJOBS.PATCH",
            "IO.K8S.batch.v1.jobs.create",
            "io.k8s.core.v1.jobs.create",
            "io.k8s.batch.v1.v2.jobs.create",
            "io.k8s.batch.v1.jobs.status.update",
            "io.k8s.batch.v1.jobs.get",
            "io.k8s.readyz",
        ] {
            out.push(set(b, &["protoPayload", "methodName"], json!(m)));
        }
        for n in [
            "batch/v1/namespaces/kube-system/jobs/x",
            "batch/v1/namespaces/ns/jobs/x/status",
            "",
        ] {
            out.push(set(b, &["protoPayload", "resourceName"], json!(n)));
        }
        for c in [json!({"code": 0}), json!({"code": 7}), json!({})] {
            out.push(set(b, &["protoPayload", "status"], c));
        }
        let e = set(
            b,
            &["protoPayload", "resourceName"],
            json!("batch/v1/namespaces/kube-system/jobs/x"),
        );
        for u in [
            "system:serviceaccount:kube-system:job-controller",
            "alice@example.com",
        ] {
            out.push(set(
                &e,
                &["protoPayload", "authenticationInfo", "principalEmail"],
                json!(u),
            ));
        }
        out.push(set(b, &["protoPayload", "serviceName"], json!("K8S.IO")));
    }
    out
}

#[test]
fn gke_documents_give_detc_verdict_on_gcp_audit_records() {
    let entries = gke_entries();
    let mut compared = 0;
    let mut matched = 0;
    let mut problems = Vec::new();
    let mut files = 0;
    for rule in project_rules() {
        let r = render(&rule);
        for det in rule
            .detections
            .iter()
            .filter(|d| d.platforms.iter().any(|p| p == "gke"))
        {
            let path = format!("{}__gcp_audit.yml", det.stem);
            let Some(f) = r.files.iter().find(|f| f.path == path) else {
                assert!(
                    r.losses
                        .iter()
                        .any(|l| l.construct.contains("gcp_audit form")),
                    "{}: no {path} and no loss saying why",
                    rule.name
                );
                continue;
            };
            files += 1;
            assert!(
                r.coverage
                    .iter()
                    .any(|c| c.platform == "gke" && c.file == path && c.stem == det.stem),
                "{path}: no coverage row for gke"
            );
            let doc: Yaml = serde_yaml::from_str(&f.contents).expect("yaml");
            assert_eq!(doc["logsource"]["product"].as_str(), Some("gcp"));
            assert_eq!(doc["logsource"]["service"].as_str(), Some("gcp.audit"));
            assert_ne!(
                doc["id"].as_str(),
                Some(sigma::document_id(&rule, 0).as_str()),
                "{path}: its own id"
            );
            let sr = sigma_rust_rule(&doc);
            for e in &entries {
                let want = normalize("gke", e).is_some_and(|ev| detc_match(&rule, det, &ev));
                let got = sigma_rust_match(&sr, &gcp_audit_record(e));
                compared += 1;
                matched += usize::from(got);
                if want != got {
                    problems.push(format!("{path}: detc {want}, sigma-rust {got} on {e}"));
                }
            }
        }
    }
    assert!(files >= 2, "only {files} GKE documents");
    assert!(matched > 10, "only {matched} matches");
    eprintln!("sigma-rust agreed with detc on {compared} GKE records");
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems[..problems.len().min(10)].join("\n")
    );
}

// ---------------------------------------------------------------------------
// 6. The pySigma pipelines shipped in dist/sigma/pipelines/, with the real
//    `sigma convert -p <file>`

mod pipelines {
    use super::*;
    use common::{compared_fields, validator, with_variants};
    use detc::backend::elastic::elastic_document;
    use detc::backend::sigma_pipelines;
    use detc::ir::{Cmp, Expr, Field, Op, Seg, Value};
    use detc::sources::normalize::records_ref;
    use std::path::Path;

    /// The pipelines a build of the project's rules writes, in a temp dir;
    /// also checks that the build writes exactly these under sigma/pipelines/.
    fn shipped(dir: &Path) -> std::collections::BTreeMap<String, PathBuf> {
        let rules = project_rules();
        let refs: Vec<&Rule> = rules.iter().collect();
        let b = detc::build::build(
            &refs,
            &detc::build::Options {
                targets: vec![Target::Sigma],
                ..Default::default()
            },
        );
        assert!(b.errors.is_empty(), "{:?}", b.errors);
        let mut out = std::collections::BTreeMap::new();
        for (path, contents) in &b.files {
            let Some(name) = path.strip_prefix("sigma/pipelines/") else {
                continue;
            };
            let p = dir.join(name);
            std::fs::write(&p, contents).unwrap();
            out.insert(name.to_string(), p);
        }
        let all: Vec<String> = sigma_pipelines::all()
            .into_iter()
            .map(|a| a.path["pipelines/".len()..].to_string())
            .collect();
        assert_eq!(out.keys().cloned().collect::<Vec<_>>(), {
            let mut a = all;
            a.sort();
            a
        });
        out
    }

    /// `sigma convert -t target` (with the pipeline file, or none) of one
    /// rule file: the query.
    fn convert(target: &str, pipeline: Option<&Path>, rule: &Path) -> String {
        let mut cmd = Command::new(venv("sigma"));
        cmd.args(["convert", "-t", target, "--fail-unsupported"]);
        match pipeline {
            Some(p) => cmd.arg("-p").arg(p),
            None => cmd.arg("--without-pipeline"),
        };
        let out = cmd.arg(rule).output().expect("sigma runs");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && !text.is_empty(),
            "sigma convert -t {target} -p {pipeline:?} {}:\n{text}\n{}",
            rule.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// The flagship's Sigma document of `source`, written into `dir`.
    fn flagship_doc(dir: &Path, source: &str) -> (Rule, usize, PathBuf) {
        let rule = project_rules()
            .into_iter()
            .find(|r| r.name == "k8s_cronjob_job_write")
            .expect("the flagship");
        let i = rule
            .detections
            .iter()
            .position(|d| d.source == source)
            .expect("a detection of the source");
        let stem = rule.detections[i].stem.clone();
        let r = render(&rule);
        let f = r
            .files
            .iter()
            .find(|f| f.path == format!("{stem}.yml"))
            .expect("the Sigma document");
        let path = dir.join(&f.path);
        std::fs::write(&path, &f.contents).unwrap();
        (rule, i, path)
    }

    /// The comparisons of `e` that a `not` covers (lets resolved), except
    /// `exists`: pySigma writes those as `?x == null`, which is never null.
    fn negated(det: &Detection, e: &Expr, under: bool, out: &mut Vec<Cmp>) {
        match e {
            Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| negated(det, x, under, out)),
            Expr::Not(x) => negated(det, x, !under, out),
            Expr::Ref(name) => {
                let l = det.lets.iter().find(|l| &l.name == name).expect("let");
                negated(det, &l.expr, under, out)
            }
            Expr::Cmp(c) if under && c.op != Op::Exists => out.push(c.clone()),
            Expr::Cmp(_) => {}
        }
    }

    fn keys(f: &Field) -> Option<Vec<String>> {
        f.0.iter()
            .map(|s| match s {
                Seg::Key(k) => Some(k.clone()),
                Seg::AnyDepth => None,
            })
            .collect()
    }

    /// `event` with each field that a `not` covers and the event lacks set
    /// to a value none of the comparisons on it accepts (so detc's verdict
    /// cannot change; the caller checks that it does not). On such an event
    /// no comparison under a `not` is null in EQL, and EQL's three-valued
    /// logic gives the two-valued verdict. `None` when nothing was missing.
    fn completed(event: &Json, cmps: &[Cmp]) -> Option<Json> {
        let mut e = event.clone();
        let mut changed = false;
        for c in cmps {
            let Some(segs) = keys(&c.field) else { continue };
            if !detc::eval::lookup(&e, &c.field).is_empty() {
                continue;
            }
            let numeric = c.values.iter().any(|v| matches!(v, Value::Num(_)));
            let value = match (numeric, c.op) {
                (true, Op::Lt | Op::Le) => json!(1_000_000_000),
                (true, _) => json!(-1),
                (false, _) => json!("detc-absent"),
            };
            let mut at = &mut e;
            for (i, k) in segs.iter().enumerate() {
                let Json::Object(m) = at else { break };
                if i + 1 == segs.len() {
                    m.insert(k.clone(), value.clone());
                    changed = true;
                    break;
                }
                at = m.entry(k.clone()).or_insert_with(|| json!({}));
            }
        }
        changed.then_some(e)
    }

    /// Run the pySigma query over the Elastic documents of `events` with
    /// eql_eval.py; the verdicts.
    fn eql_verdicts(
        dir: &Path,
        name: &str,
        query: &str,
        source: &str,
        events: &[Json],
    ) -> Vec<bool> {
        let q = dir.join(format!("{name}.eql"));
        std::fs::write(&q, query).unwrap();
        let docs = dir.join(format!("{name}.ndjson"));
        let ndjson: String = events
            .iter()
            .map(|e| {
                elastic_document(source, e)
                    .expect("a field table")
                    .to_string()
                    + "\n"
            })
            .collect();
        std::fs::write(&docs, ndjson).unwrap();
        let (ok, out) = run(Command::new(venv_bin("panther", "python"))
            .arg(validator("eql_eval.py"))
            .arg(&q)
            .arg(&docs)
            .current_dir(std::env::temp_dir()));
        assert!(ok, "eql_eval.py failed:\n{out}\n{query}");
        let got: Vec<bool> = out.lines().map(|l| l == "true").collect();
        assert_eq!(got.len(), events.len(), "{out}");
        got
    }

    /// The Elastic verdict check of one flagship detection through one
    /// pipeline: the canonical events of its tests on `platforms` (with the
    /// variants of tests/common: each compared field removed, upper-cased),
    /// as the integration's documents.
    ///
    /// 1. On every event completed as in [`completed`], the pySigma EQL must
    ///    give detc's verdict: this is exact, and fails on a wrong prefix,
    ///    field name or dataset.
    /// 2. On the events as they are, it must give detc's verdict except
    ///    where a field under a `not` is missing. There pySigma's EQL (no
    ///    null guard) may say "no match" where detc says "match", and only
    ///    that; those tests are listed in the returned report.
    fn elastic_check(source: &str, platforms: &[&str], pipeline: &str) -> (usize, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let files = shipped(dir.path());
        let (rule, i, doc) = flagship_doc(dir.path(), source);
        let det = &rule.detections[i];
        let query = convert("eql", Some(&files[pipeline]), &doc);
        let dataset = detc::backend::elastic::field_table(source)
            .unwrap()
            .dataset
            .clone();
        assert!(
            query.contains(&format!("data_stream.dataset:\"{dataset}\"")),
            "{query}"
        );
        let mut cmps = Vec::new();
        negated(det, &det.condition, false, &mut cmps);
        let mut events: Vec<(String, Json)> = Vec::new();
        for t in rule.tests.iter().filter(|t| {
            platforms.contains(&t.platform.as_str()) && det.platforms.contains(&t.platform)
        }) {
            for (n, rec) in records_ref(&t.event).iter().enumerate() {
                let Some(e) = normalize(&t.platform, rec) else {
                    continue;
                };
                with_variants(
                    &compared_fields(det),
                    &format!("{} #{n}", t.name),
                    e,
                    &mut events,
                );
            }
        }
        let mut ev = Evaluator::new();
        let detc_verdict =
            |ev: &mut Evaluator, e: &Json| ev.eval_detection(det, rule.meta.severity, e).matched;
        let want: Vec<bool> = events
            .iter()
            .map(|(_, e)| detc_verdict(&mut ev, e))
            .collect();
        let full: Vec<Json> = events
            .iter()
            .map(|(_, e)| completed(e, &cmps).unwrap_or_else(|| e.clone()))
            .collect();
        for ((label, _), (f, w)) in events.iter().zip(full.iter().zip(&want)) {
            assert_eq!(
                detc_verdict(&mut ev, f),
                *w,
                "{label}: completing changed detc's verdict"
            );
        }
        let got_full = eql_verdicts(dir.path(), "full", &query, source, &full);
        let got = eql_verdicts(
            dir.path(),
            "asis",
            &query,
            source,
            &events.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
        );
        let mut problems = Vec::new();
        let mut differ = Vec::new();
        for (k, (label, e)) in events.iter().enumerate() {
            if got_full[k] != want[k] {
                problems.push(format!(
                    "{label} (completed): detc {}, pySigma EQL {}",
                    want[k], got_full[k]
                ));
            }
            if got[k] != want[k] {
                let null_guard = want[k] && !got[k] && completed(e, &cmps).is_some();
                if null_guard {
                    differ.push(label.clone());
                } else {
                    problems.push(format!("{label}: detc {}, pySigma EQL {}", want[k], got[k]));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "{pipeline}: {}\n{query}",
            problems.join("\n")
        );
        let matched = want.iter().filter(|w| **w).count();
        assert!(
            matched >= 3 && want.len() - matched >= 3,
            "{pipeline}: too few cases ({matched} of {})",
            want.len()
        );
        (events.len(), differ)
    }

    /// The tests (not their variants) among `labels`.
    fn plain(labels: &[String]) -> Vec<&String> {
        labels
            .iter()
            .filter(|l| !l.contains(" without ") && !l.ends_with(" upper-cased"))
            .collect()
    }

    /// The flagship's kubernetes.audit document through
    /// elastic-kubernetes-audit.yaml. Exact on the completed events, and on
    /// the events as they are: the document guards each negated selection
    /// with its fields' `null` test, so pySigma's unguarded `not` (null when
    /// the field is absent, in eql_eval.py's Elasticsearch semantics) keeps
    /// the writes without `objectRef.subresource`. Any disagreement fails.
    #[test]
    fn elastic_kubernetes_pipeline_gives_detc_verdicts() {
        let (n, differ) = elastic_check(
            "kubernetes.audit",
            &["kubernetes", "eks", "aks"],
            "elastic-kubernetes-audit.yaml",
        );
        assert!(n >= 100, "only {n} events");
        // The documents guard their negated selections (`s and not
        // s_absent`), so pySigma's three-valued EQL agrees everywhere.
        let tests = plain(&differ);
        assert!(
            differ.is_empty(),
            "pySigma EQL differs from detc on {} of {n} events; tests:\n  {}",
            differ.len(),
            tests
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }

    /// The flagship's azure.activity document through
    /// elastic-azure-activity.yaml: its condition negates nothing, so the
    /// comparison is exact on every event.
    #[test]
    fn elastic_azure_activity_pipeline_gives_detc_verdicts() {
        let (n, differ) =
            elastic_check("azure.activity", &["azure"], "elastic-azure-activity.yaml");
        assert!(n >= 10, "only {n} events");
        assert!(differ.is_empty(), "{differ:?}");
    }

    /// The Splunk pipelines wrap the query pySigma writes without them in
    /// the platform's base search; a document of another logsource passes
    /// unchanged. No SPL engine runs here: the structure is what is checked.
    #[test]
    fn splunk_pipelines_wrap_the_same_search() {
        let dir = tempfile::tempdir().unwrap();
        let files = shipped(dir.path());
        let (_, _, k8s) = flagship_doc(dir.path(), "kubernetes.audit");
        let (_, _, azure) = flagship_doc(dir.path(), "azure.activity");
        let plain_k8s = convert("splunk", None, &k8s);
        let plain_azure = convert("splunk", None, &azure);
        assert!(
            plain_k8s.contains("objectRef.resource IN (\"cronjobs\", \"jobs\")"),
            "{plain_k8s}"
        );
        let cases = [
            (
                "splunk-aks.yaml",
                "sourcetype=\"mscs:storage:blob:json\" category IN (\"kube-audit\", \"kube-audit-admin\") | spath input=properties.log | search ",
                true,
            ),
            (
                "splunk-kubernetes-eks.yaml",
                "(source=\"kubernetes\" OR sourcetype=\"aws:cloudwatchlogs:eks\") ",
                true,
            ),
            ("splunk-azure-activity.yaml", "sourcetype=\"azure:monitor:activity\" ", false),
        ];
        for (file, prelude, k8s_pipeline) in cases {
            let (doc, body, other, other_body) = if k8s_pipeline {
                (&k8s, &plain_k8s, &azure, &plain_azure)
            } else {
                (&azure, &plain_azure, &k8s, &plain_k8s)
            };
            let wrapped = convert("splunk", Some(&files[file]), doc);
            assert_eq!(wrapped, format!("{prelude}{body}"), "{file}");
            assert_eq!(
                &convert("splunk", Some(&files[file]), other),
                other_body,
                "{file}"
            );
        }
        // The AKS prelude: one base search, then spath, then the body as a search.
        let aks = convert("splunk", Some(&files["splunk-aks.yaml"]), &k8s);
        let stages: Vec<&str> = aks.splitn(3, " | ").collect();
        assert!(
            stages[1] == "spath input=properties.log" && stages[2].starts_with("search objectRef."),
            "{aks}"
        );
    }

    /// Every shipped pipeline loads in pySigma and converts every rule's
    /// documents for each backend it names.
    #[test]
    fn every_pipeline_converts_every_document() {
        let dir = tempfile::tempdir().unwrap();
        let files = shipped(dir.path());
        let docs = dir.path().join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        for rule in project_rules() {
            for f in render(&rule).files {
                std::fs::write(docs.join(&f.path), &f.contents).unwrap();
            }
        }
        for (name, path) in &files {
            let text = std::fs::read_to_string(path).unwrap();
            let doc: Yaml = serde_yaml::from_str(&text).unwrap();
            let backends = doc["allowed_backends"].as_sequence().unwrap();
            assert!(text.contains(&format!("-p pipelines/{name}")), "{name}");
            for b in backends {
                let b = b.as_str().unwrap();
                let out = Command::new(venv("sigma"))
                    .args(["convert", "-t", b, "--fail-unsupported", "-p"])
                    .arg(path)
                    .arg(&docs)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success() && !out.stdout.is_empty(),
                    "{name} -t {b}:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// `sigma check -i` reports no issue on hostile values either: literal
/// `*`/`?`, control characters and numbers as text are regexes, and a TLP
/// tag only one TLP version knows is a reported loss.
#[test]
fn sigma_check_reports_no_issue_on_hostile_values() {
    venv("sigma");
    let tagged = compile(
        r#"rule tlp_and_numbers {
  id = "7c2d9e4b-3a1f-4b8c-9d6e-5f4a3b2c1d0e"
  title = "TLP and numbers"
  description = "d"
  author = "a"
  date = 2024-01-01
  status = test
  severity = low
  tags = ["tlp.amber", "tlp.white", "tlp.clear", "tlp.bogus"]
  source kubernetes.audit on [kubernetes] {
    match objectRef.namespace in ["403", "+7", "1_000", "x*y", "tab\tx"] and userAgent contains all ["a?", "b\u{1}", "c"]
  }
  test "m" on kubernetes expect match {"objectRef": {"namespace": "403"}, "userAgent": "a? b\u0001 c"}
  test "n" on kubernetes expect no match {"objectRef": {"namespace": "404"}, "userAgent": "a? b\u0001 c"}
}"#,
    );
    let r = render(&tagged);
    for t in ["tlp.white", "tlp.clear", "tlp.bogus"] {
        assert!(
            r.losses.iter().any(|l| l.construct == format!("tag {t}")),
            "{t}: {:?}",
            r.losses
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sigma");
    std::fs::create_dir_all(&out).unwrap();
    let mut n = 0;
    for rule in [hostile_rule(), tagged.clone()] {
        for f in render(&rule).files {
            std::fs::write(out.join(&f.path), &f.contents).unwrap();
            n += 1;
        }
    }
    let (ok, text) = run(Command::new("bash")
        .arg(root().join("tests/validators/sigma.sh"))
        .arg(&out));
    assert!(ok, "sigma.sh rejected hostile values:\n{text}");
    assert!(
        text.contains(&format!("sigma check: OK ({n} rules, 0 errors, 0 issues)")),
        "{text}"
    );
    // And the meaning holds: sigma-rust gives detc's verdicts.
    let doc: Yaml = serde_yaml::from_str(&render(&tagged).files[0].contents).unwrap();
    let sr = sigma_rust_rule(&doc);
    let det = &tagged.detections[0];
    for (ev, want) in [
        (
            json!({"objectRef": {"namespace": "403"}, "userAgent": "A? B\u{1} C"}),
            true,
        ),
        (
            json!({"objectRef": {"namespace": "1_000"}, "userAgent": "a? b\u{1} c"}),
            true,
        ),
        (
            json!({"objectRef": {"namespace": "X*Y"}, "userAgent": "a? b\u{1} c"}),
            true,
        ),
        (
            json!({"objectRef": {"namespace": "xzy"}, "userAgent": "a? b\u{1} c"}),
            false,
        ),
        (
            json!({"objectRef": {"namespace": "tab\tx"}, "userAgent": "a? b\u{1} c"}),
            true,
        ),
        (
            json!({"objectRef": {"namespace": "4030"}, "userAgent": "a? b\u{1} c"}),
            false,
        ),
        (
            json!({"objectRef": {"namespace": "403"}, "userAgent": "a? b c"}),
            false,
        ),
        (
            json!({"objectRef": {"namespace": "403"}, "userAgent": "aX b\u{1} c"}),
            false,
        ),
    ] {
        assert_eq!(detc_match(&tagged, det, &ev), want, "detc on {ev}");
        assert_eq!(sigma_rust_match(&sr, &ev), want, "sigma-rust on {ev}");
    }
}
