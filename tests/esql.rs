//! The ES|QL backend against the real tools: every query parses with
//! esql-parser 9.1.3, every rule passes the detection-rules TOML checks for
//! `type = "esql"`, and every test event, as the Elastic integration indexes
//! it, gets the reference evaluator's verdict from the generated query run
//! by tests/validators/esql_eval.py (Elasticsearch's null, multivalue and
//! case rules; anything it cannot evaluate fails the test as unsupported).
//!
//! Needs `.venv/esql` and `.venv/panther`: run `.ci/setup-validators`.

use detc::backend::elastic::{elastic_document, field_table};
use detc::backend::esql::esql_str;
use detc::backend::{LossKind, Rendered, Target};
use detc::eval::Evaluator;
use detc::ir::Rule;
use detc::sources::normalize::normalize;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{
    compared_fields, compile, narrowed_verdict, project_rules, run, unnamed_narrowing, validator,
    venv_bin, with_variants, write_files, Narrow,
};

fn render(rule: &Rule) -> Rendered {
    detc::build::render(rule, Target::Esql).unwrap_or_else(|e| panic!("{}: {e}", rule.name))
}

/// esql_parse.py on the `.esql` files and toml_check.py on the `.toml` files.
fn validate(paths: &[PathBuf]) {
    let esql: Vec<&PathBuf> = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "esql"))
        .collect();
    let toml: Vec<&PathBuf> = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(!esql.is_empty() && esql.len() == toml.len(), "{paths:?}");
    let (ok, out) = run(Command::new(venv_bin("esql", "python"))
        .arg(validator("esql_parse.py"))
        .args(&esql));
    assert!(ok, "esql-parser rejects a generated query:\n{out}");
    let (ok, out) = run(Command::new(venv_bin("panther", "python"))
        .arg(validator("toml_check.py"))
        .args(&toml));
    assert!(
        ok,
        "a generated rule fails the detection-rules checks:\n{out}"
    );
}

/// The query of a `.esql` file: its lines without `//` notes.
fn esql_query(contents: &str) -> String {
    contents
        .lines()
        .filter(|l| !l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The mapping types of a source's Elasticsearch fields, for esql_eval.py.
fn types(source: &str) -> Json {
    let table = field_table(source).expect("a field table");
    let mut m = serde_json::Map::new();
    for (_, e) in &table.fields {
        m.insert(e.name.clone(), Json::String(e.ty.clone()));
    }
    for (name, e) in &table.ecs_fields {
        m.insert(name.clone(), Json::String(e.ty.clone()));
    }
    Json::Object(m)
}

/// Every query of `rule` over the Elasticsearch documents of its test events
/// and their variants (each compared field removed in turn, every string
/// upper-cased), against the evaluator. (disagreements, verdicts compared)
fn cross_check(rule: &Rule, dir: &Path) -> (Vec<String>, usize) {
    let r = render(rule);
    let mut ev = Evaluator::new();
    let mut problems = Vec::new();
    let mut compared = 0;
    for det in &rule.detections {
        // A platform the integration cannot serve is a reported loss, not a verdict.
        let lost: Vec<String> = r
            .losses
            .iter()
            .filter(|l| l.stem == det.stem && l.kind == LossKind::Unsupported)
            .filter_map(|l| l.construct.strip_prefix("platform ").map(str::to_string))
            .collect();
        let fields = compared_fields(det);
        let mut events: Vec<(String, Json)> = Vec::new();
        for t in rule
            .tests
            .iter()
            .filter(|t| det.platforms.contains(&t.platform) && !lost.contains(&t.platform))
        {
            for (n, record) in detc::sources::normalize::records((*t.event).clone())
                .into_iter()
                .enumerate()
            {
                let Some(event) = normalize(&t.platform, &record) else {
                    continue; // not an event of the source: no document in the data stream
                };
                with_variants(
                    &fields,
                    &format!("{} record {n}", t.name),
                    event,
                    &mut events,
                );
            }
        }
        if events.is_empty() {
            continue;
        }
        let verdicts: Vec<_> = events
            .iter()
            .map(|(_, e)| ev.eval_detection(det, rule.meta.severity, e))
            .collect();
        let docs = dir.join(format!("{}.ndjson", det.stem));
        let ndjson: String = events
            .iter()
            .map(|(_, e)| {
                elastic_document(&det.source, e)
                    .expect("a field table")
                    .to_string()
                    + "\n"
            })
            .collect();
        std::fs::write(&docs, ndjson).unwrap();
        let types_file = dir.join(format!("{}.types.json", det.stem));
        std::fs::write(&types_file, types(&det.source).to_string()).unwrap();
        let mut queries = vec![(format!("{}.esql", det.stem), None)];
        for i in &det.indicators {
            queries.push((
                format!("{}__{}.esql", det.stem, i.name),
                Some(i.name.clone()),
            ));
        }
        for (path, indicator) in queries {
            let Some(f) = r.files.iter().find(|f| f.path == path) else {
                continue;
            };
            let qfile = dir.join(&path);
            std::fs::write(&qfile, esql_query(&f.contents)).unwrap();
            let (ok, out) = run(Command::new(venv_bin("esql", "python"))
                .arg(validator("esql_eval.py"))
                .arg("--types")
                .arg(&types_file)
                .arg(&qfile)
                .arg(&docs));
            assert!(
                ok,
                "esql_eval.py cannot evaluate {path}:\n{out}\n{}",
                f.contents
            );
            let got: Vec<bool> = out.lines().map(|l| l == "true").collect();
            assert_eq!(got.len(), events.len(), "{path}: {out}");
            for ((label, e), (v, g)) in events.iter().zip(verdicts.iter().zip(got)) {
                // Elastic tests what it can map (the branches it keeps, reported as
                // losses with the tests whose verdict then changes): compare with detc's
                // verdict on that narrowed condition.
                let want = narrowed_verdict(&mut ev, det, e, indicator.as_deref(), NARROW);
                // A test whose verdict the narrowing changes is named in the loss.
                let full = v.matched && indicator.as_ref().is_none_or(|i| v.indicators.contains(i));
                problems.extend(unnamed_narrowing(
                    rule,
                    &r.losses,
                    det,
                    &path,
                    label,
                    indicator.as_deref(),
                    full,
                    want,
                ));
                compared += 1;
                if want != g {
                    problems.push(format!(
                        "{}: {path}: `{label}`: detc says {want}, ES|QL says {g}",
                        rule.name
                    ));
                }
            }
        }
    }
    (problems, compared)
}

#[test]
fn every_project_rule_parses_and_passes_the_toml_checks() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for rule in project_rules() {
        let r = render(&rule);
        for f in r.files.iter().filter(|f| f.path.ends_with(".toml")) {
            let doc: toml::Table = toml::from_str(&f.contents).unwrap();
            let q = r
                .files
                .iter()
                .find(|e| e.path == f.path.replace(".toml", ".esql"))
                .unwrap();
            assert_eq!(
                doc["rule"]["query"].as_str().map(str::trim_end),
                Some(esql_query(&q.contents).as_str()),
                "{}",
                f.path
            );
            assert_eq!(doc["rule"]["type"].as_str(), Some("esql"));
            assert!(
                doc["rule"].get("index").is_none(),
                "{}: ES|QL rules name no index",
                f.path
            );
        }
        let sub = dir.path().join(&rule.name);
        std::fs::create_dir(&sub).unwrap();
        paths.extend(write_files(&sub, &r.files));
    }
    validate(&paths);
}

#[test]
fn verdicts_agree_with_the_evaluator_on_every_project_test_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    let mut compared = 0;
    for rule in project_rules() {
        let (p, n) = cross_check(&rule, dir.path());
        problems.extend(p);
        compared += n;
    }
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(compared > 300, "only {compared} verdicts compared");
}

/// Every construct of the language, with each compared field absent in turn.
const CONSTRUCTS: &[&str] = &[
    r#"verb == "CREATE""#,
    r#"verb cased == "create""#,
    r#"verb != "get""#,
    r#"not verb == "get""#,
    r#"objectRef.resource in ["CronJobs", "jobs"]"#,
    r#"objectRef.resource cased in ["cronjobs", "Jobs"]"#,
    r#"user.username startswith "SYSTEM:""#,
    r#"user.username cased startswith "system:""#,
    r#"user.username endswith "@EXAMPLE.com""#,
    r#"requestURI contains "CronJobs""#,
    r#"requestURI contains "a*b?c\\d""#,
    r#"requestURI like "/apis/batch/*/cronjobs?x=*""#,
    r#"requestURI cased like "/APIS/*""#,
    r#"userAgent matches /kube(ctl|let)\/v1/"#,
    r#"userAgent matches /[A-Z]ubectl/"#,
    r#"userAgent cased matches /KUBECTL/"#,
    r#"responseStatus.code >= 400"#,
    r#"not responseStatus.code >= 400"#,
    r#"responseStatus.code == 201"#,
    r#"responseStatus.code != 201"#,
    r#"objectRef.subresource exists"#,
    r#"not objectRef.subresource exists"#,
    r#"objectRef.subresource == null"#,
    r#"user.username startswith all ["system:", "system:node"]"#,
    r#"not (verb == "get" or objectRef.namespace == "kube-system")"#,
];

const EVENTS: &[(&str, &str)] = &[
    (
        "create",
        r#"{"kind":"Event","verb":"create","requestURI":"/apis/batch/v1/namespaces/default/cronjobs?x=1","userAgent":"kubectl/v1.29.1","objectRef":{"resource":"cronjobs","namespace":"default","name":"c","apiGroup":"batch"},"user":{"username":"alice@example.com"},"responseStatus":{"code":201}}"#,
    ),
    (
        "get",
        r#"{"kind":"Event","verb":"get","requestURI":"/api/v1/namespaces/kube-system/pods/p/status","userAgent":"Go-http-client/2.0","objectRef":{"resource":"pods","namespace":"kube-system","name":"p","subresource":"status"},"user":{"username":"system:node:n1"},"responseStatus":{"code":403}}"#,
    ),
    (
        "odd",
        r#"{"kind":"Event","verb":"Create","requestURI":"/x/a*b?c\\d","userAgent":"Kubectl/v1","objectRef":{"resource":"Jobs","namespace":"Kube-System"},"user":{"username":"SYSTEM:NODE:X"}}"#,
    ),
];

#[test]
fn every_construct_agrees_with_the_evaluator_on_elastic_documents() {
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    let mut compared = 0;
    let mut paths = Vec::new();
    for (i, cond) in CONSTRUCTS.iter().enumerate() {
        let mut tests = String::new();
        for (name, json) in EVENTS {
            tests.push_str(&format!(
                "  test \"{name}\" on kubernetes expect match {json}\n"
            ));
        }
        // The cross-check compares with the evaluator, not with the tests'
        // expectations; the checker only needs one of each kind.
        tests.push_str("  test \"empty\" on kubernetes expect no match {}\n");
        let rule = compile(&format!(
            "rule construct_{i} {{\n  id = \"3f0c8e8a-7d51-4c1b-9a57-0b8f2a9e6d4{}\"\n  title = \"Construct {i}\"\n  description = \"d\"\n  author = \"a\"\n  date = 2025-01-01\n  status = stable\n  severity = medium\n  attack = [T1053.007, TA0003]\n  source kubernetes.audit on [kubernetes] {{\n    match {cond}\n  }}\n{tests}}}\n",
            i % 10
        ));
        let r = render(&rule);
        assert!(
            r.losses.iter().all(|l| l.kind != LossKind::Unsupported),
            "{cond}: {:?}",
            r.losses
        );
        let sub = dir.path().join(format!("c{i}"));
        std::fs::create_dir(&sub).unwrap();
        paths.extend(write_files(&sub, &r.files));
        let (p, n) = cross_check(&rule, &sub);
        problems.extend(p.into_iter().map(|x| format!("{cond}: {x}")));
        compared += n;
    }
    validate(&paths);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 3 * CONSTRUCTS.len(), "only {compared}");
}

#[test]
fn hostile_values_stay_inside_esql_strings() {
    let values = [
        r#"a"b"#,
        r#"back\slash"#,
        "tab\tand \"quote\" \\\" \\\\",
        "line\nbreak",
        "{v} {f}",
        "' OR true //",
        "*?\\*",
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, v) in values.iter().enumerate() {
        let lit = serde_json::to_string(v).unwrap();
        let same = serde_json::json!({"kind": "Event", "verb": "create", "userAgent": v, "objectRef": {"name": v}});
        let other = serde_json::json!({"kind": "Event", "verb": "create", "userAgent": "x", "objectRef": {"name": "x"}});
        let rule = compile(&format!(
            "rule hostile_{i} {{\n  id = \"3f0c8e8a-7d51-4c1b-9a57-0b8f2a9e6d5{i}\"\n  title = \"Hostile {i}\"\n  description = \"d\"\n  author = \"a\"\n  date = 2025-01-01\n  status = stable\n  severity = medium\n  attack = [T1053.007, TA0003]\n  source kubernetes.audit on [kubernetes] {{\n    match userAgent cased == {lit} and objectRef.name contains {lit}\n  }}\n  test \"same\" on kubernetes expect match {same}\n  test \"other\" on kubernetes expect no match {other}\n}}\n"
        ));
        let sub = dir.path().join(format!("h{i}"));
        std::fs::create_dir(&sub).unwrap();
        validate(&write_files(&sub, &render(&rule).files));
        let (p, n) = cross_check(&rule, &sub);
        assert!(p.is_empty(), "{v:?}: {p:?}");
        assert!(n >= 2, "{v:?}");
    }
    assert!(esql_str("a\u{1}b").is_err());
}

#[test]
fn arrays_and_any_depth_paths_are_unsupported_with_a_reason() {
    let rule = compile(
        r#"rule arr {
  id = "3f0c8e8a-7d51-4c1b-9a57-0b8f2a9e6d60"
  title = "Arrays"
  description = "d"
  author = "a"
  date = 2025-01-01
  status = stable
  severity = medium
  lossy = [esql]
  source kubernetes.audit on [kubernetes] {
    match verb == "create"
    indicator masters = user.groups == "system:masters"
    indicator deep = requestObject.**.privileged == true
  }
  test "t" on kubernetes expect match { "verb": "create" }
  test "f" on kubernetes expect no match { "verb": "get" }
}
"#,
    );
    let r = render(&rule);
    let lost: Vec<&str> = r
        .losses
        .iter()
        .filter(|l| l.kind == LossKind::Unsupported)
        .map(|l| l.construct.as_str())
        .collect();
    assert_eq!(
        lost,
        ["indicator masters", "indicator deep"],
        "{:?}",
        r.losses
    );
}

/// What this target narrows an expression to.
const NARROW: Narrow = detc::backend::esql::narrowed;

/// The flagship's GKE rule (`logs-gcp.audit-*`, the projection onto the
/// LogEntry) on the stored gcp.audit documents of
/// tests/fixtures/stored/elastic/gcp_audit: esql_eval.py gives detc's verdict.
#[test]
fn the_gke_rule_gives_detc_verdict_on_stored_gcp_audit_documents() {
    let rules = project_rules();
    let flagship = rules
        .iter()
        .find(|r| r.name == "k8s_cronjob_job_write")
        .expect("flagship");
    let det = &flagship.detections[0];
    let r = render(flagship);
    let f = r
        .files
        .iter()
        .find(|f| f.path == "k8s_cronjob_job_write__gcp_audit.esql")
        .expect("the GKE ES|QL rule");
    assert!(
        f.contents.contains("FROM logs-gcp.audit-*"),
        "{}",
        f.contents
    );
    let fixtures = common::root().join("tests/fixtures/stored/elastic/gcp_audit");
    let mut docs = String::new();
    let mut want = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut ev = Evaluator::new();
    for p in &paths {
        let v: Json =
            serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json");
        docs.push_str(&format!("{}\n", v["document"]));
        let canonical = normalize("gke", &v["log_entry"])
            .is_some_and(|e| ev.eval_detection(det, flagship.meta.severity, &e).matched);
        assert_eq!(
            Some(canonical),
            v["expect_match"].as_bool(),
            "{}",
            p.display()
        );
        want.push(canonical);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let types_file = dir.path().join("types.json");
    std::fs::write(&types_file, types("gcp.audit").to_string()).expect("types");
    let docs_file = dir.path().join("docs.ndjson");
    std::fs::write(&docs_file, docs).expect("docs");
    let qfile = dir.path().join("q.esql");
    std::fs::write(&qfile, esql_query(&f.contents)).expect("query");
    let (ok, out) = run(Command::new(venv_bin("esql", "python"))
        .arg(validator("esql_eval.py"))
        .arg("--types")
        .arg(&types_file)
        .arg(&qfile)
        .arg(&docs_file));
    assert!(ok, "esql_eval.py:\n{out}");
    let got: Vec<bool> = out.lines().map(|l| l == "true").collect();
    assert_eq!(got, want, "{out}");
}
