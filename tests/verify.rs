//! `detc verify`: the project's rules agree in every engine that runs here;
//! a verdict changed by an accepted loss is shown as such (and fails under
//! `--strict`); an engine that disagrees fails the run; a missing engine is
//! "not checked", and an error under `CI`.
//!
//! Needs the validator venvs (`.ci/setup-validators`) for the first two tests.

mod common;

use serde_json::Value as Json;
use std::path::Path;
use std::process::{Command, Output};

fn venv_dir() -> std::path::PathBuf {
    std::env::var_os("DETC_VENV_DIR")
        .map(Into::into)
        .unwrap_or_else(|| common::root().join(".venv"))
}

/// `detc verify ARGS` in `cwd` with the venvs under `venvs`, CI unset.
fn verify(cwd: &Path, venvs: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detc"))
        .arg("verify")
        .args(args)
        .current_dir(cwd)
        .env("DETC_VENV_DIR", venvs)
        .env_remove("CI")
        .output()
        .expect("run detc verify")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &Output) -> Json {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", text(o)))
}

/// The cells of `engine` in a JSON report.
fn cells<'a>(report: &'a Json, engine: &str) -> Vec<&'a Json> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| &r["engines"][engine])
        .collect()
}

fn status(c: &Json) -> &str {
    c["status"].as_str().unwrap_or_default()
}

#[test]
fn the_project_rules_agree_in_every_engine() {
    common::venv_bin("panther", "python");
    common::venv_bin("esql", "python");
    common::venv_bin("kql", "python");
    let o = verify(common::root(), &venv_dir(), &["rules"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let header = out.lines().next().unwrap_or_default();
    for e in [
        "reference",
        "panther",
        "sigma",
        "elastic",
        "esql",
        "sentinel",
        "splunk",
    ] {
        assert!(
            header.contains(&format!(" {e} |")),
            "no {e} column: {header}"
        );
    }
    assert!(out.contains(" 0 disagree"), "{out}");
    assert!(out.contains("splunk: no SPL engine runs here"), "{out}");

    let o = verify(common::root(), &venv_dir(), &["rules", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report = json(&o);
    assert!(report["tally"]["tests"].as_u64().unwrap_or(0) >= 80);
    // Every engine that runs here gives verdicts, and every verdict it gives agrees.
    for e in ["panther", "sigma", "elastic", "esql", "sentinel"] {
        let cs = cells(&report, e);
        let agree = cs.iter().filter(|c| status(c) == "agrees").count();
        assert!(agree >= 30, "{e}: only {agree} verdicts agree");
        for c in &cs {
            assert!(matches!(status(c), "agrees" | "not_checked"), "{e}: {c}");
            assert_ne!(c["missing"], Json::Bool(true), "{e}: {c}");
        }
    }
    // Panther serves every platform of every project rule.
    assert!(cells(&report, "panther")
        .iter()
        .all(|c| status(c) == "agrees"));
    assert!(cells(&report, "splunk")
        .iter()
        .all(|c| c["reason"] == "no SPL engine runs here"));
}

const NARROWED: &str = r#"
rule narrowed_cronjob {
  id          = "3f0e4c2a-9b7d-4e51-8a36-0c2d5e7f1a90"
  title       = "CronJob created, or written with host networking"
  description = "A CronJob create, or any CronJob write whose template asks for the host network."
  author      = "tests"
  date        = 2025-01-01
  status      = test
  severity    = low
  attack      = [T1053.007, TA0003]
  # Elastic does not index the CronJob template: its rules keep only the create branch.
  lossy       = [elastic, esql, sentinel]
  source kubernetes.audit on [kubernetes] {
    match objectRef.resource == "cronjobs"
      and (verb == "create" or requestObject.spec.jobTemplate.spec.template.spec.hostNetwork == true)
  }
  test "create" on kubernetes expect match { "kind": "Event", "verb": "create", "objectRef": {"resource": "cronjobs"} }
  test "patch with hostNetwork" on kubernetes expect match { "kind": "Event", "verb": "patch", "objectRef": {"resource": "cronjobs"}, "requestObject": {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostNetwork": true}}}}}} }
  test "get" on kubernetes expect no match { "kind": "Event", "verb": "get", "objectRef": {"resource": "cronjobs"} }
}
"#;

/// A rule repository (a `.git` marker) holding `rules/NAME.rule`.
fn repo(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules").join(name), text).unwrap();
    dir
}

#[test]
fn a_verdict_changed_by_an_accepted_loss_is_shown_and_fails_under_strict() {
    common::venv_bin("panther", "python");
    common::venv_bin("esql", "python");
    let dir = repo("narrowed.rule", NARROWED);
    let o = verify(dir.path(), &venv_dir(), &["rules", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report = json(&o);
    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["test"] == "patch with hostNetwork")
        .expect("the row");
    for e in ["elastic", "esql"] {
        let c = &row["engines"][e];
        assert_eq!(status(c), "lossy", "{e}: {c}");
        assert_eq!(c["verdict"], "no match", "{e}: {c}");
        assert!(
            c["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("match (narrowed)"),
            "{e}: {c}"
        );
    }
    assert_eq!(status(&row["engines"]["panther"]), "agrees");
    assert_eq!(status(&row["engines"]["sigma"]), "agrees");
    let o = verify(dir.path(), &venv_dir(), &["rules", "--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("(lossy ["), "{}", text(&o));
}

const AKS: &str = r#"
rule aks_cronjob {
  id          = "5d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
  title       = "AKS CronJob create"
  description = "A CronJob create in AKS."
  author      = "tests"
  date        = 2025-01-01
  status      = test
  severity    = low
  attack      = [T1053.007, TA0003]
  source kubernetes.audit on [aks] {
    match objectRef.resource == "cronjobs" and verb == "create"
  }
  test "create" on aks expect match { "category": "kube-audit", "properties": { "log": "{\"kind\":\"Event\",\"verb\":\"create\",\"objectRef\":{\"resource\":\"cronjobs\"}}" } }
  test "get" on aks expect no match { "category": "kube-audit", "properties": { "log": "{\"kind\":\"Event\",\"verb\":\"get\",\"objectRef\":{\"resource\":\"cronjobs\"}}" } }
}
"#;

/// A venv directory whose only engine is a `kql` python that says `true`
/// of every record.
#[cfg(unix)]
fn lying_kql(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("kql/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let py = bin.join("python");
    std::fs::write(
        &py,
        "#!/usr/bin/env python3\nimport json, sys\njobs = json.load(sys.stdin)[\"jobs\"]\nprint(json.dumps({\"results\": [{\"verdicts\": [\"true\"] * len(j[\"records\"])} for j in jobs]}))\n",
    )
    .unwrap();
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(unix)]
#[test]
fn a_disagreeing_engine_fails_and_a_missing_one_is_not_checked() {
    let dir = repo("aks.rule", AKS);
    let venvs = tempfile::tempdir().unwrap();
    // No engine installed: every Python engine is "not checked", and the run passes...
    let o = verify(dir.path(), venvs.path(), &["rules"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("not checked"), "{out}");
    assert!(out.contains("run .ci/setup-validators"), "{out}");
    assert!(out.contains("because an engine is not installed"), "{out}");
    // ... except in CI, where a missing engine is a failure.
    let o = Command::new(env!("CARGO_BIN_EXE_detc"))
        .args(["verify", "rules"])
        .current_dir(dir.path())
        .env("DETC_VENV_DIR", venvs.path())
        .env("CI", "true")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("CI is set"), "{}", text(&o));

    // A KQL engine that matches everything disagrees on the "get" test.
    lying_kql(venvs.path());
    let o = verify(dir.path(), venvs.path(), &["rules", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report = json(&o);
    let rows = report["rows"].as_array().unwrap();
    let get = rows.iter().find(|r| r["test"] == "get").unwrap();
    let c = &get["engines"]["sentinel"];
    assert_eq!(status(c), "disagrees", "{c}");
    assert_eq!(c["verdict"], "match", "{c}");
    let create = rows.iter().find(|r| r["test"] == "create").unwrap();
    assert_eq!(status(&create["engines"]["sentinel"]), "agrees");
    assert_eq!(status(&create["engines"]["sigma"]), "agrees");
    assert_eq!(report["tally"]["disagree"], 1);
    let o = verify(dir.path(), venvs.path(), &["rules"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("**DISAGREES: match**"), "{}", text(&o));
}

#[test]
fn a_test_the_evaluator_fails_fails_the_run() {
    // A third test whose expectation is wrong.
    let wrong = AKS.replace(
        "\n}\n",
        "\n  test \"get, expected to match\" on aks expect match { \"category\": \"kube-audit\", \"properties\": { \"log\": \"{\\\"kind\\\":\\\"Event\\\",\\\"verb\\\":\\\"get\\\"}\" } }\n}\n",
    );
    let dir = repo("aks.rule", &wrong);
    let venvs = tempfile::tempdir().unwrap();
    let o = verify(dir.path(), venvs.path(), &["rules"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FAILS the test"), "{}", text(&o));
    let o = verify(dir.path(), venvs.path(), &["no/such/dir"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
