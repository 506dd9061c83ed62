//! The Panther backend against the real tool and the reference evaluator:
//! - every rule under rules/ passes `pat test` (tests/validators/panther.sh);
//! - the generated Python gives detc's verdict (match, indicators, severity)
//!   on every test event, every sample event file and a set of edge-case
//!   events made to probe each comparison and the normalisation;
//! - the seed 001 port keeps the seed's seven tests;
//! - hostile values survive Python literals, YAML and pat unchanged.
//!
//! Python runs in the panther venv (`.ci/setup-validators`), through the
//! helper tests/panther_driver.py.

use detc::backend::panther::{self, PyDialect};
use detc::backend::{printer, Target};
use detc::eval::{Evaluator, Verdict};
use detc::ir::{Cmp, Expr, Field, Glob, Net, Op, Rule, Seg, Severity, TemplatePart, Value};
use serde_json::{json, Value as Json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::{project_rules, root, venv_bin};

fn venv_python() -> PathBuf {
    venv_bin("panther", "pat");
    venv_bin("panther", "python")
}

/// Run tests/panther_driver.py `mode` with `input` on stdin; its JSON output.
fn driver(mode: &str, input: &Json) -> Json {
    let mut child = Command::new(venv_python())
        .arg(root().join("tests/panther_driver.py"))
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the venv python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "panther_driver.py {mode} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("driver prints JSON")
}

/// Render `rules` for Panther into `<dir>/panther/`, with the shared
/// runtime in `global_helpers/` as `detc build` writes it; that folder.
fn render_into(rules: &[Rule], dir: &Path) -> PathBuf {
    let out = dir.join("panther");
    let refs: Vec<&Rule> = rules.iter().collect();
    let shared = detc::backend::backend(Target::Panther)
        .shared(&refs)
        .expect("the runtime");
    assert_eq!(shared, panther::runtime_files());
    for rule in rules {
        let rendered = detc::build::render(rule, Target::Panther)
            .unwrap_or_else(|e| panic!("{}: panther render failed: {e}", rule.name));
        for f in rendered.files.into_iter().chain(shared.clone()) {
            let path = out.join(&f.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, f.contents).unwrap();
        }
    }
    out
}

fn run_validator(dir: &Path) {
    venv_python();
    let out = Command::new("bash")
        .arg(root().join("tests/validators/panther.sh"))
        .arg(dir)
        .output()
        .expect("run tests/validators/panther.sh");
    assert!(
        out.status.success(),
        "pat test failed on {}:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------------------------------ pat

#[test]
fn pat_passes_every_rule_under_rules() {
    let rules = project_rules();
    assert!(
        rules.len() >= 2,
        "expected the flagship and the seed ports under rules/"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = render_into(&rules, tmp.path());
    run_validator(&dir);
}

/// `--panther-log-type kubernetes=Custom.K8sAudit`: the raw Kubernetes
/// records are read under the custom log type (LogTypes, `_LOG_TYPES` as
/// the plain event, the tests' p_log_type, the coverage rows), EKS keeps
/// Amazon.EKS.Audit, and `pat test` passes every rule's tests under it.
#[test]
fn a_custom_log_type_serves_raw_kubernetes() {
    let custom = "Custom.K8sAudit";
    let settings = detc::backend::Settings {
        panther: panther::Settings::parse(&[format!("kubernetes={custom}")]).unwrap(),
    };
    let rules = project_rules();
    let refs: Vec<&Rule> = rules.iter().collect();
    let b = detc::build::build(
        &refs,
        &detc::build::Options {
            targets: vec![Target::Panther],
            settings: settings.clone(),
            ..Default::default()
        },
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    let tmp = tempfile::tempdir().unwrap();
    for (path, contents) in &b.files {
        let p = tmp.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
    }
    let mut raw_tests = 0;
    for rule in &rules {
        let r = detc::build::render_with(rule, Target::Panther, &settings).unwrap();
        for det in &rule.detections {
            let yml = &b.files[&format!("panther/rules/{}.yml", det.stem)];
            let py = &b.files[&format!("panther/rules/{}.py", det.stem)];
            let spec: serde_yaml::Value = serde_yaml::from_str(yml).unwrap();
            let types: Vec<&str> = spec["LogTypes"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let rows: Vec<_> = r.coverage.iter().filter(|c| c.stem == det.stem).collect();
            assert_eq!(rows.len(), det.platforms.len(), "{}: {rows:?}", det.stem);
            let raw = det.platforms.iter().any(|p| p == "kubernetes");
            assert_eq!(types.contains(&custom), raw, "{}: {types:?}", det.stem);
            assert_eq!(
                py.contains(&format!("\"{custom}\": \"event\"")),
                raw,
                "{}: _LOG_TYPES",
                det.stem
            );
            // EKS keeps its managed log type.
            let eks = det.platforms.iter().any(|p| p == "eks");
            assert_eq!(types.contains(&"Amazon.EKS.Audit"), eks, "{types:?}");
            if raw {
                let row = rows.iter().find(|c| c.platform == "kubernetes").unwrap();
                assert!(row.via.starts_with(custom), "{row:?}");
                assert_eq!(row.file, format!("rules/{}.yml", det.stem));
                assert!(yml.contains(&format!("read under the custom log type {custom}")));
                assert!(!yml.contains("--panther-log-type kubernetes=Custom.<Name>"));
            }
            // Every test of the raw platform is a Log of the custom log type.
            let logs = spec["Tests"].as_sequence().unwrap();
            let custom_logs = logs
                .iter()
                .filter(|t| t["Log"]["p_log_type"].as_str() == Some(custom))
                .count();
            let want = rule
                .tests
                .iter()
                .filter(|t| t.platform == "kubernetes" && det.platforms.contains(&t.platform))
                .count();
            assert_eq!(custom_logs, want, "{}", det.stem);
            raw_tests += want;
        }
    }
    assert!(raw_tests >= 10, "only {raw_tests} raw Kubernetes tests");
    run_validator(&tmp.path().join("panther"));

    // The default build documents its log type instead.
    let flagship = rules
        .iter()
        .find(|r| r.name == "k8s_cronjob_job_write")
        .unwrap();
    let d = detc::build::render(flagship, Target::Panther).unwrap();
    let yml = &d
        .files
        .iter()
        .find(|f| f.path == "rules/k8s_cronjob_job_write.yml")
        .unwrap()
        .contents;
    assert!(
        yml.contains("--panther-log-type kubernetes=Custom.<Name>"),
        "{yml}"
    );
    let want = [
        ("kubernetes", "Amazon.EKS.Audit"),
        ("eks", "Amazon.EKS.Audit"),
        ("aks", "Azure.MonitorActivity"),
        ("gke", "GCP.AuditLog"),
        ("azure", "Azure.MonitorActivity"),
    ];
    assert_eq!(d.coverage.len(), want.len(), "{:?}", d.coverage);
    for (c, (platform, log_type)) in d.coverage.iter().zip(want) {
        assert_eq!(c.platform, platform);
        assert!(c.via.starts_with(log_type), "{c:?}");
    }
}

/// The command line refuses a malformed or built-in log type with a usage error.
#[test]
fn panther_log_type_option_is_checked() {
    let out = tempfile::tempdir().unwrap();
    for (arg, says) in [
        (
            "kubernetes=Custom.k8s",
            "is not a Panther custom log type name",
        ),
        (
            "kubernetes=Amazon.EKS.Audit",
            "is not a Panther custom log type name",
        ),
        ("k8s=Custom.K8s", "unknown platform"),
        ("kubernetes", "expected PLATFORM=LOGTYPE"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_detc"))
            .current_dir(root())
            .args(["build", "rules", "--target", "panther", "--out"])
            .arg(out.path().join("dist"))
            .args(["--panther-log-type", arg])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{arg}: {err}");
        assert!(err.contains(says), "{arg}: {err}");
    }
    assert!(!out.path().join("dist").exists());
}

// ------------------------------------------------------------------ verdicts

/// The Panther log type a test Log carries for a platform (as the backend writes it).
fn panther_log(platform: &str, record: &Json) -> Json {
    let mut log = record.clone();
    if let (Json::Object(m), Some((lt, _))) = (&mut log, panther::log_type(platform)) {
        m.insert("p_log_type".into(), json!(lt));
    }
    log
}

struct Case {
    what: String,
    stem: String,
    log: Json,
    want: Verdict,
}

fn case(rule: &Rule, platform: &str, record: &Json, what: String) -> Option<Case> {
    let det = rule
        .detections
        .iter()
        .find(|d| d.platforms.iter().any(|p| p == platform))?;
    let want = Evaluator::new().eval_record(rule, platform, record)?;
    Some(Case {
        what,
        stem: det.stem.clone(),
        log: panther_log(platform, record),
        want,
    })
}

/// Run every case through the generated Python and compare with detc's verdict.
fn compare(dir: &Path, cases: &[Case]) {
    let input = json!({
        "dir": dir.join("rules"),
        "cases": cases.iter().map(|c| json!({"stem": c.stem, "log": c.log})).collect::<Vec<_>>(),
    });
    let results = driver("verdicts", &input)["results"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results.len(), cases.len());
    let mut failures = Vec::new();
    for (c, got) in cases.iter().zip(&results) {
        if let Some(err) = got.get("error") {
            failures.push(format!(
                "{}: python raised\n{}",
                c.what,
                err.as_str().unwrap_or("")
            ));
            continue;
        }
        let matched = got["matched"].as_bool().unwrap();
        let mut problem = None;
        if matched != c.want.matched {
            problem = Some(format!(
                "detc matched={}, python matched={matched}",
                c.want.matched
            ));
        } else if matched {
            let mut want_ind = c.want.indicators.clone();
            want_ind.sort();
            let got_ind: Vec<String> = got["indicators"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            let want_sev = if want_ind.is_empty() {
                "DEFAULT"
            } else {
                panther::python_severity(c.want.severity)
            };
            if got_ind != want_ind {
                problem = Some(format!("indicators: detc {want_ind:?}, python {got_ind:?}"));
            } else if got["severity"] != want_sev {
                problem = Some(format!(
                    "severity: detc {want_sev}, python {}",
                    got["severity"]
                ));
            }
        }
        if let Some(p) = problem {
            failures.push(format!("{}: {p}\n  log: {}", c.what, c.log));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn python_gives_detc_verdict_on_every_test_and_sample_event() {
    let rules = project_rules();
    let tmp = tempfile::tempdir().unwrap();
    let dir = render_into(&rules, tmp.path());
    let mut cases = Vec::new();
    for rule in &rules {
        for t in &rule.tests {
            let c = case(
                rule,
                &t.platform,
                &t.event,
                format!("{} / test {:?}", rule.name, t.name),
            )
            .expect("each test's platform is covered");
            assert_eq!(
                c.want.matched, t.expect.matched,
                "detc itself fails {} / {}",
                rule.name, t.name
            );
            cases.push(c);
        }
    }
    // Every sample event file, on each platform its name says, for every rule.
    let prefixes = [
        ("seed001_eks_", "eks"),
        ("seed001_aks_", "aks"),
        ("seed001_gke_", "gke"),
        ("eks_", "eks"),
        ("aks_", "aks"),
        ("gke_", "gke"),
        ("k8s_", "kubernetes"),
        ("azure_activity_", "azure"),
    ];
    let mut files: Vec<_> = std::fs::read_dir(root().join("rules/events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut sampled = 0;
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
    {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some((_, platform)) = prefixes.iter().find(|(p, _)| name.starts_with(p)) else {
            continue;
        };
        let records = detc::eval::parse_records(&std::fs::read_to_string(path).unwrap()).unwrap();
        for (i, record) in records.iter().enumerate() {
            // Panther test Logs are objects; the evaluator's view of other records is checked by `detc test`.
            if !record.is_object() {
                continue;
            }
            for rule in &rules {
                if let Some(c) = case(
                    rule,
                    platform,
                    record,
                    format!("{} / {name}[{i}] on {platform}", rule.name),
                ) {
                    cases.push(c);
                    sampled += 1;
                }
            }
        }
    }
    assert!(
        sampled > 50,
        "expected the sample events under rules/events, found {sampled} cases"
    );
    compare(&dir, &cases);
}

/// A rule matching nearly every event, whose indicators are single
/// comparisons: detc's indicator list is the truth table of each comparison.
const PROBE: &str = r#"
rule probe {
  id = "00000000-0000-4000-8000-000000000001"
  title = "probe"
  description = "comparison probe"
  author = "tests"
  date = 2025-01-01
  status = test
  severity = low
  attack = [T1053.007, TA0003]
  source kubernetes.audit on [kubernetes, eks, aks, gke] {
    match not verb == "never-a-verb"
    indicator verb_eq severity low = verb == "create"
    indicator verb_eq_cased severity low = verb cased == "create"
    indicator verb_ne severity low = verb != "create"
    indicator verb_in severity low = verb in ["get", "Create"]
    indicator verb_all severity low = verb contains all ["cre", "ate"]
    indicator verb_like severity low = verb like "c?e*e"
    indicator verb_like_esc severity low = verb like "a\\*b"
    indicator verb_matches severity low = verb matches /c?re+at/
    indicator verb_starts severity low = verb startswith "CR"
    indicator verb_ends severity medium = verb endswith "te"
    indicator user_exists severity low = user.username exists
    indicator user_sys severity low = user.username startswith "system:"
    indicator groups_any severity low = user.groups == "system:masters"
    indicator groups_ne severity low = user.groups != "system:masters"
    indicator ns severity low = objectRef.namespace == "kube-system"
    indicator ns_ne severity low = objectRef.namespace != "kube-system"
    indicator res severity low = objectRef.resource == "cronjobs"
    indicator sub severity low = objectRef.subresource == "status"
    indicator grp severity low = objectRef.apiGroup == "batch"
    indicator apiv severity low = objectRef.apiVersion == "batch/v1"
    indicator objname severity low = objectRef.name == "x"
    indicator code_ge severity high = responseStatus.code >= 400
    indicator code_lt severity low = responseStatus.code < 300
    indicator code_eq severity low = responseStatus.code == 200
    indicator code_ne severity low = responseStatus.code != 200
    indicator ip10 severity low = sourceIPs cidr "10.0.0.0/8"
    indicator ip6 severity low = sourceIPs cidr "fd00::/8"
    indicator ua severity low = userAgent contains "kubectl"
    indicator n_gt severity low = requestObject.n > 5
    indicator n_le severity low = requestObject.n <= 5
    indicator n_eq severity low = requestObject.n == 5
    indicator n_ne severity low = requestObject.n != 5
    indicator n_text severity low = requestObject.n == "5"
    indicator n_big severity critical = requestObject.n >= 4.5
    indicator n_neg severity low = requestObject.n < -1
    indicator f_text severity low = requestObject.f contains "e"
    indicator f_dot severity low = requestObject.f contains "."
    indicator flag severity low = requestObject.flag == true
    indicator flag_ne severity low = requestObject.flag != true
    indicator flag_text severity low = requestObject.flag == "true"
    indicator flag_cased_text severity low = requestObject.flag cased startswith "t"
    indicator deep severity low = requestObject.**.image matches /alpine|busybox/
    indicator deep_cased severity low = requestObject.**.image cased matches /Alpine/
    indicator deep_all severity low = requestObject.**.tag contains all ["a", "b"]
    indicator deep_exists severity low = requestObject.**.hostPath exists
    indicator obj_text severity low = requestObject.obj == "{}"
    indicator nul severity low = requestObject.nul exists
    indicator resp severity low = responseObject.kind == "Status"
  }
  test "m" on eks expect match { "verb": "create" }
  test "n" on eks expect no match { "verb": "never-a-verb" }
}
"#;

fn probe_rule() -> Rule {
    detc::load::compile_text("probe.rule", PROBE, &root().join("rules"))
        .unwrap_or_else(|r| panic!("probe rule does not check:\n{r}"))
        .remove(0)
}

fn edge_events() -> Vec<(&'static str, Json)> {
    let k = |v: Json| ("kubernetes", v);
    let mut out = vec![
        k(json!({})),
        k(json!({"verb": "create"})),
        k(json!({"verb": "CREATE"})),
        k(
            json!({"verb": "Create", "user": {"username": "system:kube-scheduler", "groups": ["system:masters", "x"]}}),
        ),
        k(json!({"verb": "a*b"})),
        k(json!({"verb": "axb"})),
        k(json!({"verb": "create\n"})),
        k(json!({"verb": "c\nreate"})),
        k(json!({"verb": "c\ne\nte"})),
        k(json!({"verb": "İstanbul"})),
        k(json!({"verb": ["get", "create"]})),
        k(json!({"verb": [["create"]]})),
        k(json!({"verb": null})),
        k(json!({"verb": 5})),
        k(json!({"verb": true})),
        k(json!({"verb": {"a": 1}})),
        k(json!({"verb": "recreate"})),
        k(json!({"user": {"groups": []}})),
        k(json!({"user": {"groups": ["system:masters"]}})),
        k(json!({"user": {"groups": ["a", null, "system:MASTERS"]}})),
        k(json!({"user": {"groups": "system:masters"}})),
        k(json!({"objectRef": {"namespace": "kube-system"}})),
        k(json!({"objectRef": {"namespace": null}})),
        k(json!({"objectRef": [{"namespace": "kube-system"}, {"namespace": "x"}]})),
        k(json!({"responseStatus": {"code": 200}})),
        k(json!({"responseStatus": {"code": 403}})),
        k(json!({"responseStatus": {"code": "403"}})),
        k(json!({"responseStatus": {"code": " 200 "}})),
        k(json!({"responseStatus": {"code": "2e2"}})),
        k(json!({"responseStatus": {"code": "0x1F"}})),
        k(json!({"responseStatus": {"code": "1_000"}})),
        k(json!({"responseStatus": {"code": "inf"}})),
        k(json!({"responseStatus": {"code": "NaN"}})),
        k(json!({"responseStatus": {"code": "\u{1c}500"}})),
        k(json!({"responseStatus": {"code": "\u{a0}500"}})),
        k(json!({"responseStatus": {"code": "٥٠٠"}})),
        k(json!({"responseStatus": {"code": 200.0}})),
        k(json!({"responseStatus": {"code": true}})),
        k(json!({"responseStatus": {"code": [100, 500]}})),
        k(json!({"sourceIPs": ["10.1.2.3"]})),
        k(json!({"sourceIPs": ["192.168.0.1", "10.255.255.255"]})),
        k(json!({"sourceIPs": ["010.1.2.3"]})),
        k(json!({"sourceIPs": ["::a00:1"]})),
        k(json!({"sourceIPs": ["::ffff:10.0.0.1"]})),
        k(json!({"sourceIPs": ["fd00::1"]})),
        k(json!({"sourceIPs": ["fd00::1%eth0"]})),
        k(json!({"sourceIPs": ["10.0.0.1/32"]})),
        k(json!({"sourceIPs": [" 10.0.0.1"]})),
        k(json!({"userAgent": "KUBECTL/1.2"})),
        k(json!({"requestObject": {"n": 5}})),
        k(json!({"requestObject": {"n": 6}})),
        k(json!({"requestObject": {"n": "5.0"}})),
        k(json!({"requestObject": {"n": "5"}})),
        k(json!({"requestObject": {"n": 5.0}})),
        k(json!({"requestObject": {"n": "+.5e1"}})),
        k(json!({"requestObject": {"n": "5."}})),
        k(json!({"requestObject": {"n": 1e300}})),
        k(json!({"requestObject": {"n": "1e301"}})),
        k(json!({"requestObject": {"n": "1e999"}})),
        k(json!({"requestObject": {"n": -9223372036854775808i64}})),
        k(json!({"requestObject": {"n": 18446744073709551615u64}})),
        k(json!({"requestObject": {"n": ["a", 7, "3"]}})),
        k(json!({"requestObject": {"f": 1e16}})),
        k(json!({"requestObject": {"f": 1e15}})),
        k(json!({"requestObject": {"f": 1.5e-7}})),
        k(json!({"requestObject": {"f": 0.00001}})),
        k(json!({"requestObject": {"f": 123.0}})),
        k(json!({"requestObject": {"f": 7}})),
        k(json!({"requestObject": {"flag": true}})),
        k(json!({"requestObject": {"flag": false}})),
        k(json!({"requestObject": {"flag": "TRUE"}})),
        k(json!({"requestObject": {"flag": "False"}})),
        k(json!({"requestObject": {"flag": "yes"}})),
        k(json!({"requestObject": {"flag": 1}})),
        k(json!({"requestObject": {"flag": "\u{212a}"}})),
        k(
            json!({"requestObject": {"spec": {"containers": [{"image": "ALPINE:3"}, {"image": "nginx"}]}}}),
        ),
        k(json!({"requestObject": {"spec": {"containers": [{"image": "Alpine"}]}}})),
        k(json!({"requestObject": {"image": "busybox", "tag": "a", "x": {"tag": ["b"]}}})),
        k(json!({"requestObject": {"tag": "a"}})),
        k(json!({"requestObject": {"a": [{"b": [{"hostPath": {"path": "/"}}]}]}})),
        k(json!({"requestObject": {"hostPath": null}})),
        k(json!({"requestObject": {"obj": {}}})),
        k(json!({"requestObject": {"nul": null}})),
        k(json!({"requestObject": {"nul": [null, []]}})),
        k(json!({"requestObject": {"nul": [null, [0]]}})),
        k(json!({"requestObject": null})),
        k(json!({"responseObject": {"kind": "status"}})),
        (
            "eks",
            json!({"verb": "create", "p_log_type": "GCP.AuditLog"}),
        ),
    ];
    // AKS: properties.log as a JSON string or an object, other categories, broken JSON.
    let aks = |category: Json, log: Json| {
        (
            "aks",
            json!({"category": category, "properties": {"log": log}}),
        )
    };
    out.extend([
        aks(
            json!("kube-audit"),
            json!("{\"verb\":\"create\",\"responseStatus\":{\"code\":201}}"),
        ),
        aks(json!("KUBE-AUDIT-ADMIN"), json!({"verb": "create"})),
        aks(json!("kube-audit-admin"), json!(" {\"verb\":\"patch\"}\n")),
        aks(json!("kube-apiserver"), json!("{\"verb\":\"create\"}")),
        aks(json!("kube-audit"), json!("{not json")),
        aks(json!("kube-audit"), json!("[1, 2]")),
        aks(json!("kube-audit"), json!("\"create\"")),
        aks(
            json!("kube-audit"),
            json!("{\"verb\":\"create\",\"requestObject\":{\"n\":NaN}}"),
        ),
        aks(
            json!("kube-audit"),
            json!("{\"verb\":\"create\",\"requestObject\":{\"n\":1e400}}"),
        ),
        aks(
            json!("kube-audit"),
            json!("{\"verb\":\"create\",\"requestObject\":{\"n\":123456789012345678901234567890}}"),
        ),
        aks(json!("kube-audit"), json!("{\"verb\":\"cre\\ud800ate\"}")),
        aks(
            json!("kube-audit"),
            json!("{\"verb\":\"create\",\"verb\":\"get\"}"),
        ),
        aks(json!("kube-audit"), json!(null)),
        aks(json!("kube-audit"), json!(5)),
        aks(json!(null), json!({"verb": "create"})),
        aks(json!(["kube-audit"]), json!({"verb": "create"})),
        ("aks", json!({"category": "kube-audit", "properties": "x"})),
        (
            "aks",
            json!({"category": "kube-audit", "properties": {"log2": "{}"}}),
        ),
    ]);
    // GKE: methodName and resourceName variants, status codes, metadata shapes.
    let gke = |pp: Json| ("gke", json!({ "protoPayload": pp }));
    out.extend([
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.batch.v1.cronjobs.create",
            "resourceName": "batch/v1/namespaces/default/cronjobs/x",
            "authenticationInfo": {"principalEmail": "a@b.c"},
            "requestMetadata": {"callerIp": "10.1.1.1", "callerSuppliedUserAgent": "kubectl/1"}})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.batch.v1.jobs.status.update",
            "resourceName": "batch/v1/namespaces/ns/jobs/x/status", "status": {"code": 7}})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.batch.v1.jobs.update",
            "resourceName": "batch/v1/namespaces/ns/jobs/x/status"})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.core.v1.pods.create",
            "resourceName": "core/v1/namespaces/kube-system/pods/p", "status": {"code": 0}})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.authorization.rbac.v1beta1.rolebindings.create",
            "status": {"code": 16}})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.apps.v2alpha3.deployments.scale.patch",
            "status": {"code": 99}})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.batch.vbeta.cronjobs.create"})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.batch.v1beta.cronjobs.create"})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.batch.v1.create"})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.v1"})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s."})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.batch.v١.cronjobs.create"})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.batch.v1.cronjobs.create", "status": {"code": 7.0}})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.batch.v1.cronjobs.create", "status": {"code": "7"}})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.batch.v1.cronjobs.create", "status": {"code": -1}})),
        gke(json!({"serviceName": "k8s.io", "methodName": "io.k8s.batch.v1.cronjobs.create", "status": {"code": 9223372036854775808u64}})),
        gke(json!({"serviceName": "k8s.io", "methodName": 5, "resourceName": "namespaces/a"})),
        gke(json!({"serviceName": "k8s.io", "resourceName": "a/namespaces/b/c/d/e/f/namespaces/z"})),
        gke(json!({"serviceName": "k8s.io", "requestMetadata": {"callerIp": null, "callerIP": "10.0.0.2"}})),
        gke(json!({"serviceName": "k8s.io", "requestMetadata": {"callerIP": "10.0.0.3"}})),
        gke(json!({"serviceName": "k8s.io", "requestMetadata": null})),
        gke(json!({"serviceName": "k8s.io", "authenticationInfo": {"principalEmail": null}})),
        gke(json!({"serviceName": "k8s.io", "authenticationInfo": ["x"]})),
        gke(json!({"serviceName": "k8s.io", "request": {"spec": {"image": "alpine"}}, "response": {"kind": "Status"}})),
        gke(json!({"serviceName": "k8s.io", "request": null})),
        gke(json!({"serviceName": "K8S.io", "methodName": "io.k8s.batch.v1.cronjobs.create"})),
        gke(json!({"methodName": "io.k8s.batch.v1.cronjobs.create"})),
        ("gke", json!({"protoPayload": "k8s.io"})),
        ("gke", json!({"other": 1})),
    ]);
    out
}

#[test]
fn python_gives_detc_verdict_on_edge_cases() {
    let rule = probe_rule();
    let tmp = tempfile::tempdir().unwrap();
    let dir = render_into(std::slice::from_ref(&rule), tmp.path());
    let cases: Vec<Case> = edge_events()
        .iter()
        .enumerate()
        .filter_map(|(i, (platform, ev))| {
            case(&rule, platform, ev, format!("edge event {i} on {platform}"))
        })
        .collect();
    assert!(cases.len() > 100);
    // The probe must actually discriminate: many different indicator sets.
    let mut sets: Vec<Vec<String>> = cases.iter().map(|c| c.want.indicators.clone()).collect();
    sets.sort();
    sets.dedup();
    assert!(
        sets.len() > 40,
        "the probe events exercise too few comparisons ({})",
        sets.len()
    );
    compare(&dir, &cases);
}

#[test]
fn float_text_is_serde_json_text() {
    let rule = probe_rule();
    let tmp = tempfile::tempdir().unwrap();
    let dir = render_into(std::slice::from_ref(&rule), tmp.path());
    let floats = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1,
        0.5,
        1.5,
        100.0,
        123.456,
        1e15,
        1e16,
        1.5e16,
        123456789012345.6,
        1e21,
        1e22,
        1e100,
        1e300,
        1.7976931348623157e308,
        0.001,
        0.0001,
        0.00001,
        0.000001,
        1.5e-7,
        1.234e-5,
        5e-324,
        2.2250738585072014e-308,
        9007199254740993.0,
        12345678901234567890.0,
        -3.25e-10,
        4.35,
        1.0 / 3.0,
    ];
    let got = driver(
        "floats",
        &json!({"file": dir.join("global_helpers/detc_runtime.py"), "floats": floats}),
    );
    for (f, g) in floats.iter().zip(got.as_array().unwrap()) {
        let want = serde_json::Number::from_f64(*f).unwrap().to_string();
        assert_eq!(g.as_str().unwrap(), want, "text of {f:e}");
    }
}

// ------------------------------------------------------------------ seed 001

/// Seed 001's seven tests (Panther "Kubernetes CronJob Created or Modified").
const SEED_001_TESTS: [(&str, bool); 7] = [
    ("EKS CronJob Created", true),
    ("AKS CronJob Updated", true),
    ("GCP GKE CronJob Created", true),
    ("CronJob Creation Failed", false),
    ("Pod Creation (Not CronJob)", false),
    ("CronJob Get (Not Create/Update)", false),
    (
        "System controller creating CronJob in kube-system (excluded)",
        false,
    ),
];

#[test]
fn seed_001_port_keeps_the_seven_tests() {
    let seeds = root().join("rules/seeds");
    let path = std::fs::read_dir(&seeds)
        .unwrap_or_else(|e| panic!("{}: {e}", seeds.display()))
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed_001_")
        })
        .expect("rules/seeds/seed_001_*.rule");
    let rules = detc::load::compile_path(&path).unwrap_or_else(|r| panic!("{r}"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = render_into(&rules, tmp.path());
    let ymls: Vec<PathBuf> = std::fs::read_dir(dir.join("rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    assert_eq!(ymls.len(), 1, "seed 001 has one source: {ymls:?}");
    let spec = driver("yaml", &json!({"file": ymls[0]}));
    let tests: Vec<(String, bool)> = spec["Tests"]
        .as_array()
        .expect("Tests")
        .iter()
        .map(|t| {
            (
                t["Name"].as_str().unwrap().to_string(),
                t["ExpectedResult"].as_bool().expect("a real bool"),
            )
        })
        .collect();
    let want: Vec<(String, bool)> = SEED_001_TESTS
        .iter()
        .map(|(n, b)| (n.to_string(), *b))
        .collect();
    assert_eq!(tests, want);
    assert_eq!(
        spec["LogTypes"],
        json!(["Amazon.EKS.Audit", "Azure.MonitorActivity", "GCP.AuditLog"])
    );
    assert_eq!(spec["Severity"], "Info");
    assert_eq!(spec["Reports"]["MITRE ATT&CK"], json!(["TA0003:T1053.003"]));
    assert_ne!(
        spec["Status"], "Experimental",
        "pat zip leaves Experimental rules out"
    );
    for t in spec["Tests"].as_array().unwrap() {
        assert!(t["Log"]["p_log_type"].is_string(), "{t}");
    }
    run_validator(&dir);
}

// ------------------------------------------------------------------ hostile values

const HOSTILE: &str = "q\"d 'single' '''triple''' \"\"\"triple\"\"\" \\back\\slash \\n \\x41 \\u0041 \\U0001F600 \n\r\t {brace} {{ x }} {% raw %} }} #hash `tick` |pipe *star ?q $dollar ${x} %s {0} & < > % \u{0}\u{1}\u{8}\u{b}\u{c}\u{1b}\u{1f}\u{7f}\u{80}\u{85}\u{9f}\u{a0} é 😀 𝔘 \u{2028}\u{2029}\u{feff}\u{fffe}\u{ffff} end\\";

const HOSTILE_BASE: &str = r#"
rule hostile_values {
  id = "00000000-0000-4000-8000-000000000002"
  title = "t"
  description = "d"
  author = "a"
  date = 2025-01-01
  status = stable
  severity = high
  attack = [T1053.007, TA0003]
  references = ["https://example.com/a", "https://example.com/b"]
  false_positives = ["fp"]
  runbook = "r"
  tags = ["tag"]
  source kubernetes.audit on [eks, aks, gke] {
    let hit = verb cased == "v" and userAgent contains "u" and requestObject.k matches /m/
    match hit
    indicator i severity critical = requestObject.k like "g*"
    output {
      group_by = [verb]
      values = [userAgent as ua]
      title = "T {verb} T"
    }
  }
  test "match" on eks expect match { "verb": "v", "userAgent": "u", "requestObject": {"k": "m"} }
  test "no match" on eks expect no match { "verb": "w" }
}
"#;

/// A rule carrying HOSTILE in every string a user controls.
fn hostile_rule() -> Rule {
    let mut rule = detc::load::compile_text("hostile.rule", HOSTILE_BASE, &root().join("rules"))
        .unwrap_or_else(|r| panic!("{r}"))
        .remove(0);
    let h = HOSTILE.to_string();
    let m = &mut rule.meta;
    m.title = h.clone();
    m.description = h.clone();
    m.author = h.clone();
    m.runbook = Some(h.clone());
    // Panther's Reference takes the first URL: a hostile one, then a
    // hostile non-URL that goes to the description.
    m.references = vec![format!("https://example.com/{h}"), h.clone()];
    m.false_positives = vec![h.clone()];
    m.tags = vec![h.clone()];
    let det = &mut rule.detections[0];
    fn set_values(e: &mut Expr, h: &str) {
        match e {
            Expr::And(xs) | Expr::Or(xs) => xs.iter_mut().for_each(|x| set_values(x, h)),
            Expr::Not(x) => set_values(x, h),
            Expr::Ref(_) => {}
            Expr::Cmp(c) => {
                for v in &mut c.values {
                    match v {
                        Value::Glob(g) => {
                            *g = Glob::parse(&format!(
                                "{}*",
                                h.replace('\\', "\\\\")
                                    .replace('*', "\\*")
                                    .replace('?', "\\?")
                            ))
                            .unwrap()
                        }
                        Value::Str(s) => *s = h.to_string(),
                        // a regex matching HOSTILE literally
                        Value::Regex(r) => *r = regex::escape(h),
                        _ => {}
                    }
                }
            }
        }
    }
    det.lets
        .iter_mut()
        .for_each(|l| set_values(&mut l.expr, &h));
    det.indicators.iter_mut().for_each(|i| {
        set_values(&mut i.expr, &h);
        i.name = h.clone();
    });
    det.output.title = Some(detc::ir::Template(vec![
        TemplatePart::Text(h.clone()),
        TemplatePart::Field(Field(vec![Seg::Key("verb".into())])),
    ]));
    det.output.values[0].alias = Some(h.clone());
    let matching = json!({"verb": h, "userAgent": h, "requestObject": {"k": h, h.clone(): [h, 1.5e-7, -0.0, 12345678901234567890u64]}});
    rule.tests[0].name = h.clone();
    rule.tests[0].event = matching.clone().into();
    rule.tests[1].name = format!("{h} (no match)");
    rule.tests[1].event =
        json!({"verb": format!("{h}x"), "userAgent": h, "requestObject": {"k": h}}).into();
    // The same event on every platform: AKS as a JSON string, GKE as protoPayload.
    let mut aks = rule.tests[0].clone();
    aks.name = format!("{h} (aks)");
    aks.platform = "aks".into();
    aks.event = json!({"category": "kube-audit", "properties": {"log": matching.to_string()}, h.clone(): h}).into();
    let mut gke = rule.tests[0].clone();
    gke.name = format!("{h} (gke)");
    gke.platform = "gke".into();
    gke.event = json!({"protoPayload": {"serviceName": "k8s.io", "methodName": format!("io.k8s.batch.v1.jobs.{h}"),
        "requestMetadata": {"callerSuppliedUserAgent": h}, "request": {"k": h}}}).into();
    rule.tests.push(aks);
    rule.tests.push(gke);
    rule
}

#[test]
fn hostile_values_survive_python_yaml_and_pat() {
    let rule = hostile_rule();
    // detc itself agrees with the expectations.
    for r in detc::eval::run_tests(&rule) {
        assert!(r.ok, "detc fails hostile test {:?}: {}", r.name, r.detail);
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = render_into(std::slice::from_ref(&rule), tmp.path());
    let py = dir.join("rules/hostile_values.py");
    let yml = dir.join("rules/hostile_values.yml");

    // Python: the metadata literal reads back unchanged (ast.literal_eval).
    let meta = driver("literal", &json!({"file": py, "name": "DETC_META"}));
    for key in ["title", "description", "author", "runbook"] {
        assert_eq!(meta[key], HOSTILE, "DETC_META[{key}]");
    }
    assert_eq!(
        meta["references"],
        json!([format!("https://example.com/{HOSTILE}"), HOSTILE])
    );
    assert_eq!(meta["tags"], json!([HOSTILE]));

    // YAML: every field reads back unchanged (PyYAML, as pat).
    let spec = driver("yaml", &json!({"file": yml}));
    assert_eq!(spec["DisplayName"], panther::panther_name(HOSTILE));
    assert!(
        spec["Description"].as_str().unwrap().starts_with(HOSTILE),
        "{}",
        spec["Description"]
    );
    assert_eq!(spec["Runbook"], HOSTILE);
    assert_eq!(spec["Reference"], format!("https://example.com/{HOSTILE}"));
    assert_eq!(spec["Tags"], json!([HOSTILE]));
    assert_eq!(spec["Severity"], "High");
    let tests = spec["Tests"].as_array().unwrap();
    assert_eq!(tests.len(), rule.tests.len());
    for (t, want) in tests.iter().zip(&rule.tests) {
        assert_eq!(t["Name"], want.name.as_str());
        assert_eq!(t["ExpectedResult"], want.expect.matched);
        assert_eq!(
            t["Log"],
            panther_log(&want.platform, &want.event),
            "Log of {:?}",
            want.name
        );
    }

    // The values reach the comparisons intact: Python gives detc's verdict
    // (the indicator's name is HOSTILE too), and pat runs every test.
    let cases: Vec<Case> = rule
        .tests
        .iter()
        .filter_map(|t| {
            case(
                &rule,
                &t.platform,
                &t.event,
                format!("hostile test {:?}", t.name),
            )
        })
        .collect();
    assert_eq!(cases.iter().filter(|c| c.want.matched).count(), 3);
    assert!(cases
        .iter()
        .all(|c| !c.want.matched || c.want.indicators == vec![HOSTILE.to_string()]));
    compare(&dir, &cases);
    let results = driver(
        "verdicts",
        &json!({"dir": dir.join("rules"), "cases": [{"stem": "hostile_values", "log": panther_log("eks", &rule.tests[0].event)}]}),
    );
    let r = &results["results"][0];
    assert_eq!(r["title"], format!("{HOSTILE}{HOSTILE}"));
    assert_eq!(r["dedup"], HOSTILE);
    assert_eq!(r["context"][HOSTILE], HOSTILE);
    run_validator(&dir);

    // No hostile text leaks into a comment line: every line that starts a
    // comment ends where the generator meant it to.
    // (Python source may hold U+FFFE/U+FFFF raw; YAML may not.)
    for (path, bad) in [
        (&py, &['\u{0}', '\u{85}', '\u{2028}', '\u{2029}', '\r'][..]),
        (
            &yml,
            &[
                '\u{0}', '\u{85}', '\u{2028}', '\u{2029}', '\u{fffe}', '\u{ffff}', '\r',
            ][..],
        ),
    ] {
        let text = std::fs::read_to_string(path).unwrap();
        for &bad in bad {
            assert!(
                !text.contains(bad),
                "{} holds raw {:?}",
                path.display(),
                bad
            );
        }
    }
}

// ------------------------------------------------------------------ dialect

fn cmp(field: &[&str], op: Op, values: Vec<Value>) -> Expr {
    Expr::Cmp(Cmp {
        field: Field(
            field
                .iter()
                .map(|k| {
                    if *k == "**" {
                        Seg::AnyDepth
                    } else {
                        Seg::Key(k.to_string())
                    }
                })
                .collect(),
        ),
        info: Default::default(),
        op,
        cased: false,
        all: false,
        values,
    })
}

#[test]
fn dialect_writes_runtime_calls_with_python_precedence() {
    let rule = probe_rule();
    let det = &rule.detections[0];
    let d = PyDialect::new(det);
    let a = cmp(&["verb"], Op::Eq, vec![Value::Str("a".into())]);
    let b = cmp(&["requestObject", "**", "image"], Op::Exists, vec![]);
    let c = cmp(
        &["responseStatus", "code"],
        Op::Ge,
        vec![Value::Num(400.into())],
    );
    let e = Expr::And(vec![
        Expr::Not(Box::new(Expr::Or(vec![a.clone(), b.clone()]))),
        c.clone(),
    ]);
    let s = printer::print(&d, det, &e).unwrap();
    assert_eq!(
        s,
        "not (_eq(ev, (\"verb\",), (\"a\",), False, False) or _exists(ev, (\"requestObject\", _ANY, \"image\"))) \
         and _ge(ev, (\"responseStatus\", \"code\"), (400.0,), False, False)"
    );
    let e = Expr::Or(vec![Expr::And(vec![a.clone(), b.clone()]), c]);
    assert!(!printer::print(&d, det, &e)
        .unwrap()
        .contains('('.to_string().repeat(2).as_str()));
    // Values a comparison can never match with its operator become None.
    assert_eq!(
        panther::py_value(Op::StartsWith, &Value::Num(5.into())),
        "None"
    );
    assert_eq!(
        panther::py_value(Op::Matches, &Value::Str("x".into())),
        "None"
    );
    assert_eq!(panther::py_value(Op::Eq, &Value::Regex("x".into())), "None");
    assert_eq!(
        panther::py_value(Op::Cidr, &Value::Str("10.1.2.3/8".into())),
        "None"
    );
    assert_eq!(
        panther::py_value(Op::Cidr, &Value::Net(Net::parse("10.1.2.3/8").unwrap())),
        "\"10.1.2.3/8\""
    );
    assert_eq!(panther::py_value(Op::Eq, &Value::Bool(true)), "True");
    assert_eq!(
        panther::py_value(
            Op::Eq,
            &Value::Num(serde_json::Number::from_f64(1e300).unwrap())
        ),
        "1e300"
    );
    // Keys are Python literals, never code.
    let weird = cmp(&["requestObject", "a\"b\\c\n"], Op::Exists, vec![]);
    assert_eq!(
        printer::print(&d, det, &weird).unwrap(),
        "_exists(ev, (\"requestObject\", \"a\\\"b\\\\c\\n\"))"
    );
    // A let is called, not inlined.
    let first = &det.lets.first().map(|l| l.name.clone());
    if let Some(name) = first {
        assert!(printer::print(&d, det, &Expr::Ref(name.clone()))
            .unwrap()
            .starts_with("_let_0_"));
    }
}

#[test]
fn yaml_numbers_keep_their_type_in_yaml_1_1() {
    let n = |f: f64| panther::yaml_number(&serde_json::Number::from_f64(f).unwrap());
    assert_eq!(n(1e300), "1.0e+300");
    assert_eq!(n(1.5e-7), "1.5e-7");
    assert_eq!(n(-0.0), "-0.0e+0");
    assert_eq!(n(123.25), "1.2325e+2");
    assert_eq!(
        panther::yaml_number(&18446744073709551615u64.into()),
        "18446744073709551615"
    );
    assert!(panther::has_nested_class("[a[bc]]"));
    assert!(!panther::has_nested_class("[abc]|(x)[^d]"));
    assert_eq!(
        panther::panther_name("A & B <c> \"d\" 5%"),
        "A and B (c) 'd' 5pct"
    );
    assert_eq!(panther::spec_severity(Severity::Informational), "Info");
}

/// The runtime is one global helper; each rule file holds only its own logic
/// and imports the helpers it calls (Panther's `global_helpers` convention).
#[test]
fn rules_import_the_one_runtime() {
    let files = panther::runtime_files();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "global_helpers/detc_runtime.py",
            "global_helpers/detc_runtime.yml"
        ]
    );
    assert!(files[1].contents.contains("AnalysisType: global"));
    assert!(files[1].contents.contains("GlobalID: detc_runtime"));
    for rule in project_rules() {
        let r = detc::build::render(&rule, Target::Panther).unwrap();
        for f in r.files.iter().filter(|f| f.path.ends_with(".py")) {
            assert!(
                f.contents.contains("\nfrom detc_runtime import (\n"),
                "{} does not import the runtime",
                f.path
            );
            assert!(
                !f.contents.contains("def _values("),
                "{} embeds the runtime",
                f.path
            );
        }
    }
}

#[test]
fn flagship_reports_schedule_and_risk_as_not_applicable() {
    let rules = project_rules();
    let flagship = rules
        .iter()
        .find(|r| r.name == "k8s_cronjob_job_write")
        .expect("flagship");
    let r = detc::build::render(flagship, Target::Panther).unwrap();
    let mut seen: Vec<(String, String)> = r
        .losses
        .iter()
        .map(|l| (l.stem.clone(), l.construct.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("k8s_cronjob_job_write".into(), "output.risk".into()),
            ("k8s_cronjob_job_write".into(), "output.schedule".into()),
            (
                "k8s_cronjob_job_write_azure_activity".into(),
                "output.risk".into()
            ),
            (
                "k8s_cronjob_job_write_azure_activity".into(),
                "output.schedule".into()
            ),
        ]
    );
    assert!(r
        .losses
        .iter()
        .all(|l| l.kind == detc::backend::LossKind::NotApplicable));
    for f in &r.files {
        assert!(
            f.contents.contains("not applicable: output.schedule"),
            "{} lacks the loss note",
            f.path
        );
    }
    let paths: Vec<&str> = r.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "rules/k8s_cronjob_job_write.py",
            "rules/k8s_cronjob_job_write.yml",
            "rules/k8s_cronjob_job_write_azure_activity.py",
            "rules/k8s_cronjob_job_write_azure_activity.yml"
        ]
    );
}

#[test]
fn a_reference_that_is_no_url_goes_to_the_description() {
    let mut rule = hostile_rule();
    rule.meta.references = vec!["internal wiki page 12".into()];
    let r = detc::build::render(&rule, Target::Panther).unwrap();
    let yml = r.files.iter().find(|f| f.path.ends_with(".yml")).unwrap();
    assert!(!yml.contents.contains("Reference:"), "{}", yml.contents);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.yml");
    std::fs::write(&path, &yml.contents).unwrap();
    let spec = driver("yaml", &json!({ "file": path }));
    assert!(
        spec["Description"]
            .as_str()
            .unwrap()
            .contains("internal wiki page 12"),
        "{spec}"
    );
}

// ------------------------------------------------------------------ tests pat could not reproduce

/// An AKS record whose `properties.log` is the JSON text of an audit Event
/// nested `depth` levels deep (the Event itself is level 1).
fn aks_log_nested(depth: usize) -> Json {
    let inner = format!(
        "{{\"verb\":\"create\",\"requestObject\":{{\"a\":{}{}}}}}",
        "[".repeat(depth - 2),
        "]".repeat(depth - 2)
    );
    json!({"category": "kube-audit", "properties": {"log": inner}})
}

/// Every class of test Log whose verdict the generated Python could miss,
/// through real `pat test`: the classes the runtime now reproduces (an AKS
/// `properties.log` at serde_json's nesting limit and one level over it,
/// which Python's json alone would decode and match; numbers serde_json
/// reads correctly rounded, as Python does) are emitted and pass; the
/// classes it cannot are left out, each as an `unsupported` loss naming the
/// test and why, which the build refuses unless the rule is `lossy` for
/// Panther.
#[test]
fn tests_python_cannot_reproduce_are_left_out_as_losses() {
    let ok127 = aks_log_nested(127);
    let over128 = aks_log_nested(128);
    // A 27-digit decimal that serde_json's default (best-effort) parser reads
    // one ulp off, as 1682087544780.2666: Python's float() rounds correctly.
    // (kubernetes.audit holds integers only, so no test event carries it
    // any more: the checker refuses a fraction there; serde_json's
    // `float_roundtrip` stays for the other sources.)
    let want_n = "168208754478026677534402015e-14".parse::<f64>().unwrap();
    assert_eq!(want_n, 1682087544780.2668);
    assert_eq!(
        serde_json::from_str::<f64>("168208754478026677534402015e-14").unwrap(),
        want_n
    );
    let text = format!(
        r#"
rule reproduce {{
  id = "00000000-0000-4000-8000-000000000003"
  title = "reproduce"
  description = "d"
  author = "tests"
  date = 2025-01-01
  status = test
  severity = low
  attack = [T1053.007, TA0003]
  lossy = [panther]
  source kubernetes.audit on [eks, aks] {{
    match verb == "create" and not requestObject.n == 1682087544780.2666
  }}
  test "eks create" on eks expect match {{ "verb": "create" }}
  test "eks get" on eks expect no match {{ "verb": "get" }}
  test "aks log 127 deep" on aks expect match {ok127}
  test "aks log 128 deep" on aks expect no match {over128}
  test "aks export" on aks expect match {{ "records": [{{ "category": "kube-audit", "properties": {{ "log": {{ "verb": "create" }} }} }}] }}
}}
"#,
    );
    let mut rule = detc::load::compile_text("reproduce.rule", &text, &root().join("rules"))
        .unwrap_or_else(|r| panic!("{r}"))
        .remove(0);
    // An event deeper than any event file can be (serde_json refuses 128
    // levels), built here: over what pat is known to read.
    // One level less is emitted, and pat reads it.
    let mut deep = json!("x");
    for _ in 0..panther::PY_NESTING_LIMIT - 1 {
        deep = json!({ "a": deep });
    }
    let mut at_limit = rule.tests[0].clone();
    at_limit.name = "eks at the limit".into();
    at_limit.event = json!({"verb": "create", "requestObject": deep}).into();
    let mut too_deep = rule.tests[0].clone();
    too_deep.name = "eks too deep".into();
    too_deep.event = json!({"verb": "create", "requestObject": {"a": deep}}).into();
    rule.tests.push(at_limit);
    rule.tests.push(too_deep);
    for r in detc::eval::run_tests(&rule) {
        assert!(r.ok, "detc fails {:?}: {}", r.name, r.detail);
    }

    let rendered = detc::build::render(&rule, Target::Panther).unwrap();
    let mut left: Vec<(String, String)> = rendered
        .losses
        .iter()
        .filter(|l| l.construct.starts_with("test "))
        .map(|l| {
            assert_eq!(l.kind, detc::backend::LossKind::Unsupported, "{l:?}");
            (l.construct.clone(), l.reason.clone())
        })
        .collect();
    left.sort();
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[0].0, "test \"aks export\"");
    assert!(left[0].1.contains("Event Hub"), "{}", left[0].1);
    assert_eq!(left[1].0, "test \"eks too deep\"");
    assert!(
        left[1]
            .1
            .contains(&format!("nests {} levels", panther::PY_NESTING_LIMIT + 1)),
        "{}",
        left[1].1
    );
    let yml = &rendered
        .files
        .iter()
        .find(|f| f.path == "rules/reproduce.yml")
        .unwrap()
        .contents;
    for (construct, _) in &left {
        assert!(
            yml.contains(&format!(
                "unsupported: {construct}: left out of the Panther tests"
            )),
            "{yml}"
        );
    }
    // (the names as the template writes them: serde_yaml and serde_json stop
    // at 128 levels, and pat below runs the file itself)
    let names: Vec<String> = yml
        .lines()
        .filter_map(|l| l.strip_prefix("  - Name: "))
        .map(|n| serde_json::from_str::<String>(n).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "eks create",
            "eks get",
            "aks log 127 deep",
            "aks log 128 deep",
            "eks at the limit"
        ]
    );

    // The build says so, and refuses it unless the rule accepts Panther losses.
    let opts = detc::build::Options {
        targets: vec![Target::Panther],
        ..Default::default()
    };
    let b = detc::build::build(&[&rule], &opts);
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    let report = &b.files["REPORT.md"];
    assert!(report.contains("left out of the Panther tests"), "{report}");
    let mut strict = rule.clone();
    strict.meta.lossy.clear();
    let b = detc::build::build(&[&strict], &opts);
    assert!(
        b.errors
            .iter()
            .any(|e| e.contains("\"aks export\"") && e.contains("lossy = [panther]")),
        "{:?}",
        b.errors
    );

    // The tests emitted pass `pat test`, and the Python gives detc's verdict on each.
    let tmp = tempfile::tempdir().unwrap();
    let dir = render_into(std::slice::from_ref(&rule), tmp.path());
    run_validator(&dir);
    let cases: Vec<Case> = rule
        .tests
        .iter()
        .filter(|t| names.contains(&t.name))
        .filter_map(|t| case(&rule, &t.platform, &t.event, format!("test {:?}", t.name)))
        .collect();
    assert_eq!(cases.len(), names.len());
    compare(&dir, &cases);
}
