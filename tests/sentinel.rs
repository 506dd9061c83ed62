//! The Sentinel backend against the real tools: every generated query has no
//! diagnostic from Microsoft's Kusto.Language (declared with the real table
//! schemas, `tests/validators/kql/schemas.json`), every analytic rule meets
//! the Azure-Sentinel schema limits (`sentinel_yaml.py`), and every test
//! event, converted to the row Log Analytics stores, gets the reference
//! evaluator's verdict from the generated query run by duckdb-kql
//! (`kql_eval.py`). A construct duckdb-kql refuses is listed as not checked.
//!
//! Needs `.venv/kql` and `.venv/node`: run `.ci/setup-validators`.

use detc::backend::sentinel::{self, kql_str};
use detc::backend::{LossKind, Rendered, Target};
use detc::eval::Evaluator;
use detc::ir::Rule;
use detc::sources::normalize::records;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{compile, project_rules, run, validator, venv_bin, write_files};

fn render(rule: &Rule) -> Rendered {
    detc::build::render(rule, Target::Sentinel).unwrap_or_else(|e| panic!("{}: {e}", rule.name))
}

/// Kusto.Language's verdict on `.kql` files, and sentinel_yaml.py's on `.yaml` files.
fn validate(paths: &[PathBuf]) {
    let kql: Vec<&PathBuf> = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "kql"))
        .collect();
    let yaml: Vec<&PathBuf> = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(!kql.is_empty() && kql.len() == yaml.len(), "{paths:?}");
    let (ok, out) = run(Command::new("bash")
        .arg(validator("kql_check.sh"))
        .args(&kql));
    assert!(ok, "Kusto.Language rejects a generated query:\n{out}");
    let (ok, out) = run(Command::new(venv_bin("kql", "python"))
        .arg(validator("sentinel_yaml.py"))
        .args(&yaml));
    assert!(
        ok,
        "an analytic rule breaks the Azure-Sentinel limits:\n{out}"
    );
}

/// The query of a `.kql` file: its lines without `//` notes.
fn kql_query(contents: &str) -> String {
    contents
        .lines()
        .filter(|l| !l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The row filter of a query: the aggregation and the run-time window are
/// cut, since a verdict is about one event. (duckdb-kql also refuses an
/// output column whose name differs from a table column only by case, such
/// as `verb = Verb`, which Kusto allows.)
fn row_filter(query: &str) -> String {
    let mut out = Vec::new();
    for line in query.lines() {
        if line.starts_with("| summarize") {
            break;
        }
        if line.starts_with("| where TimeGenerated <= ago(") {
            continue;
        }
        out.push(line);
    }
    out.join("\n")
}

/// The Log Analytics table a form's record lands in.
fn table_of(form: &str, record: &Json) -> &'static str {
    sentinel::table_of(form, record).unwrap_or_else(|| panic!("no table for form {form}"))
}

/// kql_eval.py over `records` in `table`: one verdict per record, `None` when
/// duckdb-kql refused the query.
fn kql_eval(dir: &Path, query: &str, table: &str, records: &[Json]) -> Vec<Option<bool>> {
    let q = dir.join("verdict.kql");
    let r = dir.join("records.ndjson");
    std::fs::write(&q, query).unwrap();
    let lines: Vec<String> = records.iter().map(|x| x.to_string()).collect();
    std::fs::write(&r, lines.join("\n") + "\n").unwrap();
    let (ok, out) = run(Command::new(venv_bin("kql", "python"))
        .arg(validator("kql_eval.py"))
        .arg(&q)
        .arg(&r)
        .arg("--table")
        .arg(table));
    assert!(ok, "kql_eval.py failed on\n{query}\n{out}");
    let verdicts: Vec<Option<bool>> = out
        .lines()
        .map(|l| match l {
            "true" => Some(true),
            "false" => Some(false),
            l if l.starts_with("skip:") => None,
            l => panic!("unexpected kql_eval output {l:?}"),
        })
        .collect();
    assert_eq!(verdicts.len(), records.len(), "{out}");
    verdicts
}

#[derive(Default)]
struct Tally {
    checked: usize,
    /// Tables with at least one verdict compared.
    tables: std::collections::BTreeSet<String>,
    not_checked: Vec<String>,
    disagree: Vec<String>,
}

/// Every test event of `rule` that a Sentinel form serves, through the
/// generated query and the reference evaluator.
fn cross_check(rule: &Rule, dir: &Path, tally: &mut Tally) {
    let r = render(rule);
    let mut ev = Evaluator::new();
    for det in &rule.detections {
        let forms = &sentinel::tables()[&det.source].forms;
        for form in forms
            .iter()
            .filter(|f| f.platforms.iter().any(|p| det.platforms.contains(p)))
        {
            let path = format!("{}__{}.kql", det.stem, form.name);
            let Some(file) = r.files.iter().find(|f| f.path == path) else {
                continue; // the form's query could not be written: a reported loss
            };
            let query = row_filter(&kql_query(&file.contents));
            // (test, record) per table.
            let mut by_table: BTreeMap<&str, Vec<(String, Json, bool)>> = BTreeMap::new();
            for t in rule
                .tests
                .iter()
                .filter(|t| form.platforms.contains(&t.platform))
            {
                for (i, record) in records((*t.event).clone()).into_iter().enumerate() {
                    let want = ev
                        .eval_record(rule, &t.platform, &record)
                        .is_some_and(|v| v.matched);
                    by_table
                        .entry(table_of(&form.name, &record))
                        .or_default()
                        .push((
                            format!("{} / {path} / {:?} record {i}", rule.name, t.name),
                            record,
                            want,
                        ));
                }
            }
            for (table, cases) in by_table {
                let recs: Vec<Json> = cases.iter().map(|c| c.1.clone()).collect();
                for (got, (what, _, want)) in
                    kql_eval(dir, &query, table, &recs).into_iter().zip(&cases)
                {
                    match got {
                        None => tally.not_checked.push(what.clone()),
                        Some(g) if g == *want => {
                            tally.checked += 1;
                            tally.tables.insert(table.to_string());
                        }
                        Some(g) => tally
                            .disagree
                            .push(format!("{what}: evaluator {want}, KQL {g}")),
                    }
                }
            }
        }
    }
}

#[test]
fn every_project_rule_passes_kusto_language_and_the_schema_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for rule in project_rules() {
        let r = render(&rule);
        for f in &r.files {
            if let Some(stem) = f.path.strip_suffix(".yaml") {
                // The analytic rule carries the same query as the .kql file.
                let doc: serde_yaml::Value = serde_yaml::from_str(&f.contents).unwrap();
                let kql = r
                    .files
                    .iter()
                    .find(|k| k.path == format!("{stem}.kql"))
                    .unwrap_or_else(|| panic!("{stem}.kql"));
                assert_eq!(
                    doc["query"].as_str().map(str::trim_end),
                    Some(kql_query(&kql.contents).as_str()),
                    "{}",
                    f.path
                );
            }
        }
        paths.extend(write_files(dir.path(), &r.files));
    }
    validate(&paths);
}

#[test]
fn verdicts_agree_with_the_evaluator_on_every_project_test_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut tally = Tally::default();
    for rule in project_rules() {
        cross_check(&rule, dir.path(), &mut tally);
    }
    assert!(
        tally.disagree.is_empty(),
        "KQL disagrees with the evaluator:\n{}",
        tally.disagree.join("\n")
    );
    assert!(
        tally.not_checked.is_empty(),
        "duckdb-kql refused these (not checked):\n{}",
        tally.not_checked.join("\n")
    );
    // The flagship's AKS, GKE and Azure activity tests, and the seeds'.
    assert!(
        tally.checked >= 40,
        "only {} verdicts checked",
        tally.checked
    );
    // Every table form served, GKE's projection of GCPAuditLogs included.
    for t in [
        "AKSAudit",
        "AKSAuditAdmin",
        "AzureDiagnostics",
        "AzureActivity",
        "GCPAuditLogs",
    ] {
        assert!(
            tally.tables.contains(t),
            "no verdict compared on {t}: {:?}",
            tally.tables
        );
    }
}

/// Every construct of the language on AKS records, through both AKS forms.
const CONSTRUCTS: &[(&str, &[(&str, bool)])] = &[
    (r#"verb == "CREATE""#, &[("create", true), ("get", false)]),
    (r#"verb cased == "CREATE""#, &[("create", false)]),
    (
        r#"verb != "get""#,
        &[("create", true), ("get", false), ("noverb", false)],
    ),
    (
        r#"not verb == "get""#,
        &[("create", true), ("get", false), ("noverb", true)],
    ),
    (
        r#"objectRef.resource in ["CronJobs", "jobs"]"#,
        &[("create", true), ("get", false)],
    ),
    (
        r#"user.username startswith "SYSTEM:""#,
        &[("get", true), ("create", false)],
    ),
    (
        r#"user.username cased startswith "SYSTEM:""#,
        &[("get", false)],
    ),
    (
        r#"user.username endswith "@EXAMPLE.com""#,
        &[("create", true), ("get", false)],
    ),
    (
        r#"requestURI contains "CronJobs""#,
        &[("create", true), ("get", false)],
    ),
    (
        r#"requestURI like "/apis/batch/*/cronjobs?x=*""#,
        &[("create", true), ("get", false)],
    ),
    (
        r#"userAgent matches /kube(ctl|let)\/v1/"#,
        &[("create", true), ("get", false)],
    ),
    (r#"userAgent cased matches /KUBECTL/"#, &[("create", false)]),
    (
        r#"responseStatus.code >= 400"#,
        &[("create", false), ("get", true), ("noverb", false)],
    ),
    (
        r#"not responseStatus.code >= 400"#,
        &[("create", true), ("get", false), ("noverb", true)],
    ),
    (
        r#"responseStatus.code == 201"#,
        &[("create", true), ("get", false)],
    ),
    (
        r#"responseStatus.code != 201"#,
        &[("create", false), ("get", true), ("noverb", false)],
    ),
    (
        r#"objectRef.subresource exists"#,
        &[("create", false), ("get", true)],
    ),
    (
        r#"not objectRef.subresource exists"#,
        &[("create", true), ("get", false)],
    ),
    (
        r#"objectRef.subresource == null"#,
        &[("create", true), ("get", false)],
    ),
    (
        r#"annotations.`authorization.k8s.io/decision` == "allow""#,
        &[("create", true), ("get", false)],
    ),
    (
        r#"not (verb == "get" or objectRef.namespace == "kube-system")"#,
        &[("create", true), ("get", false), ("noverb", true)],
    ),
];

const EVENTS: &[(&str, &str)] = &[
    (
        "create",
        r#"{"kind":"Event","level":"Metadata","verb":"create","requestURI":"/apis/batch/v1/namespaces/default/cronjobs?x=1","userAgent":"kubectl/v1.29.1","objectRef":{"resource":"cronjobs","namespace":"default","name":"c","apiGroup":"batch"},"user":{"username":"alice@example.com"},"responseStatus":{"code":201},"annotations":{"authorization.k8s.io/decision":"allow"}}"#,
    ),
    (
        "get",
        r#"{"kind":"Event","level":"Metadata","verb":"get","requestURI":"/api/v1/namespaces/kube-system/pods/p/status","userAgent":"Go-http-client/2.0","objectRef":{"resource":"pods","namespace":"kube-system","name":"p","subresource":"status"},"user":{"username":"system:node:n1"},"responseStatus":{"code":403}}"#,
    ),
    (
        "noverb",
        r#"{"kind":"Event","level":"Metadata","requestURI":"/readyz","user":{"username":"system:anonymous"}}"#,
    ),
];

fn aks_record(event: &str, category: &str) -> Json {
    serde_json::json!({
        "category": category,
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "resourceId": "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS1",
        "time": "2025-01-01T00:00:00.0000000Z",
        "properties": {"log": event, "stream": "stdout", "pod": "kube-apiserver-1"}
    })
}

#[test]
fn every_construct_gets_the_evaluators_verdict_in_both_aks_forms() {
    let dir = tempfile::tempdir().unwrap();
    let mut tally = Tally::default();
    let mut paths = Vec::new();
    for (i, (cond, cases)) in CONSTRUCTS.iter().enumerate() {
        let mut tests = String::new();
        for (event, want) in *cases {
            let json = EVENTS.iter().find(|(n, _)| n == event).unwrap().1;
            let rec = aks_record(json, "kube-audit");
            tests.push_str(&format!(
                "  test \"{event}\" on aks expect {} {}\n",
                if *want { "match" } else { "no match" },
                rec
            ));
        }
        // Every rule needs a match and a no-match test.
        if !cases.iter().any(|c| c.1) {
            tests.push_str(&format!(
                "  test \"any\" on aks expect match {}\n",
                aks_record(EVENTS[0].1, "kube-audit")
            ));
        }
        if cases.iter().all(|c| c.1) {
            tests.push_str(&format!(
                "  test \"other category\" on aks expect no match {}\n",
                aks_record(EVENTS[0].1, "kube-apiserver")
            ));
        }
        let text = format!(
            "rule construct_{i} {{\n  id = \"3f0c8e8a-7d51-4c1b-9a57-0b8f2a9e6d1{}\"\n  title = \"Construct {i}\"\n  description = \"{}\"\n  author = \"detc tests\"\n  date = 2025-01-01\n  status = stable\n  severity = medium\n  source kubernetes.audit on [aks] {{\n    match {cond} or verb == \"create\" and not verb exists\n  }}\n{tests}}}\n",
            i % 10,
            cond.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let rule = compile(&text);
        let r = render(&rule);
        assert!(
            r.losses.iter().all(|l| l.kind != LossKind::Unsupported),
            "{cond}: {:?}",
            r.losses
        );
        let sub = dir.path().join(format!("c{i}"));
        std::fs::create_dir(&sub).unwrap();
        paths.extend(write_files(&sub, &r.files));
        cross_check(&rule, &sub, &mut tally);
    }
    validate(&paths);
    assert!(tally.disagree.is_empty(), "{}", tally.disagree.join("\n"));
    assert!(
        tally.not_checked.is_empty(),
        "{}",
        tally.not_checked.join("\n")
    );
    assert!(
        tally.checked >= 2 * CONSTRUCTS.len(),
        "only {} checked",
        tally.checked
    );
}

#[test]
fn hostile_values_stay_inside_kql_strings() {
    let dir = tempfile::tempdir().unwrap();
    let values = [
        r#"a"b"#,
        r#"back\slash"#,
        r#"tab	and "quote" \" \\"#,
        "line\nbreak",
        "{v} {f} {n}",
        "' or 1==1 //",
        "ünïcödé ✓",
    ];
    let mut paths = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let lit = serde_json::to_string(v).unwrap();
        let event = serde_json::json!({"kind": "Event", "verb": "create", "userAgent": v, "objectRef": {"name": v}}).to_string();
        let other = serde_json::json!({"kind": "Event", "verb": "create", "userAgent": "x", "objectRef": {"name": "x"}}).to_string();
        let text = format!(
            "rule hostile_{i} {{\n  id = \"3f0c8e8a-7d51-4c1b-9a57-0b8f2a9e6d2{i}\"\n  title = \"Hostile {i}\"\n  description = \"d\"\n  author = \"a\"\n  date = 2025-01-01\n  status = stable\n  severity = medium\n  source kubernetes.audit on [aks] {{\n    match userAgent cased == {lit} and objectRef.name contains {lit}\n  }}\n  test \"same\" on aks expect match {}\n  test \"other\" on aks expect no match {}\n}}\n",
            aks_record(&event, "kube-audit"),
            aks_record(&other, "kube-audit"),
        );
        let rule = compile(&text);
        let r = render(&rule);
        let sub = dir.path().join(format!("h{i}"));
        std::fs::create_dir(&sub).unwrap();
        paths.extend(write_files(&sub, &r.files));
        let mut tally = Tally::default();
        cross_check(&rule, &sub, &mut tally);
        assert!(
            tally.disagree.is_empty() && tally.not_checked.is_empty(),
            "{v:?}: {:?} {:?}",
            tally.disagree,
            tally.not_checked
        );
        assert_eq!(tally.checked, 4, "{v:?}");
    }
    validate(&paths);
    // No escape for other control characters: refused, never written raw.
    assert!(kql_str("a\u{1}b").is_err());
    assert!(kql_str("a\u{7f}b").is_err());
}

#[test]
fn platforms_without_a_sentinel_table_are_unsupported_losses() {
    let rule = project_rules()
        .into_iter()
        .find(|r| r.name == "k8s_cronjob_job_write")
        .unwrap();
    let r = render(&rule);
    for p in ["kubernetes", "eks"] {
        let loss = r
            .losses
            .iter()
            .find(|l| l.construct == format!("platform {p}"))
            .unwrap_or_else(|| panic!("no loss for {p}"));
        assert_eq!(loss.kind, LossKind::Unsupported);
        assert!(!loss.reason.is_empty());
    }
    assert!(!r.losses.iter().any(
        |l| ["platform aks", "platform azure", "platform gke"].contains(&l.construct.as_str())
    ));
    let paths: Vec<&str> = r.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "k8s_cronjob_job_write__aksaudit.yaml",
            "k8s_cronjob_job_write__aksaudit.kql",
            "k8s_cronjob_job_write__azurediagnostics.yaml",
            "k8s_cronjob_job_write__azurediagnostics.kql",
            "k8s_cronjob_job_write__gcpauditlogs.yaml",
            "k8s_cronjob_job_write__gcpauditlogs.kql",
            "k8s_cronjob_job_write_azure_activity__azureactivity.yaml",
            "k8s_cronjob_job_write_azure_activity__azureactivity.kql",
        ]
    );
    // Every loss is noted in each file of its detection.
    for f in &r.files {
        assert!(
            f.contents.contains("detc note: unsupported: platform")
                || f.path.contains("azure_activity"),
            "{}",
            f.path
        );
    }
}

#[test]
fn indicators_on_fixed_paths_raise_the_severity_through_a_column() {
    let text = r#"rule sev {
  id = "3f0c8e8a-7d51-4c1b-9a57-0b8f2a9e6d30"
  title = "Severity"
  description = "d"
  author = "a"
  date = 2025-01-01
  status = stable
  severity = low
  source kubernetes.audit on [aks] {
    match verb == "create"
    indicator kube_system severity high = objectRef.namespace == "kube-system"
    indicator curl severity critical = userAgent startswith "curl/"
    output { group_by = [user.username] }
  }
  test "t" on aks expect match { "category": "kube-audit", "properties": { "log": { "verb": "create" } } }
  test "f" on aks expect no match { "category": "kube-audit", "properties": { "log": { "verb": "get" } } }
}
"#;
    let rule = compile(text);
    let r = render(&rule);
    let yaml = &r
        .files
        .iter()
        .find(|f| f.path == "sev__aksaudit.yaml")
        .unwrap()
        .contents;
    assert!(
        yaml.contains("alertSeverityColumnName: DetcSeverity"),
        "{yaml}"
    );
    assert!(
        yaml.contains(r#"iff(tostring(ObjectRef.namespace) =~ "kube-system", 3, 1)"#),
        "{yaml}"
    );
    assert!(
        yaml.contains("DetcSeverityRank = max(DetcSeverityRank)"),
        "{yaml}"
    );
    let dir = tempfile::tempdir().unwrap();
    validate(&write_files(dir.path(), &r.files));
}
