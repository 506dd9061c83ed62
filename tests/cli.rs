//! The `detc` command line: exit codes, test output, eval formats, and a
//! failed build leaving the previous output untouched.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn detc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run detc")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_and_test_pass_on_the_project_rules() {
    let o = detc(&["check", "rules"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = detc(&["test", "rules"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let last = out.lines().last().unwrap();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
    let passed: usize = last.split_whitespace().next().unwrap().parse().unwrap();
    assert!(passed >= 80, "{last}");
}

#[test]
fn exit_codes() {
    assert_eq!(
        detc(&["check", "rules/invalid/unknown_field.rule"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(detc(&["check", "no/such/dir"]).status.code(), Some(2));
    let o = detc(&["check", "docs"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("no .rule files under docs"),
        "{}",
        text(&o)
    );
    assert_eq!(detc(&["frobnicate"]).status.code(), Some(2));
    let help = text(&detc(&["--help"]));
    assert!(help.contains("Exit codes"), "{help}");
}

#[test]
fn a_failing_test_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let rule = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("rules/seeds/seed_003_kubernetes_cron_job_creation.rule"),
    )
    .unwrap();
    // Flip one expectation: the run must report it and exit 1.
    let flipped = rule.replacen(
        "\"Pod create\" on eks expect no match",
        "\"Pod create\" on eks expect match",
        1,
    );
    assert_ne!(flipped, rule);
    // The copy lives in a temp dir with the events beside it.
    let flipped = flipped.replace("\"../events/", "\"events/");
    let events = dir.path().join("events");
    std::fs::create_dir(&events).unwrap();
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/events")).unwrap()
    {
        let e = e.unwrap();
        std::fs::copy(e.path(), events.join(e.file_name())).unwrap();
    }
    let path = dir.path().join("r.rule");
    std::fs::write(&path, flipped).unwrap();
    let o = detc(&["test", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("FAIL kubernetes_cron_job_creation :: Pod create"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("passed, 1 failed"), "{out}");
    // And a rule whose tests fail is not built.
    let dist = dir.path().join("dist");
    let o = detc(&[
        "build",
        path.to_str().unwrap(),
        "--out",
        dist.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("test \"Pod create\" [eks] fails"),
        "{}",
        text(&o)
    );
    assert!(!dist.exists());
}

#[test]
fn eval_reads_ndjson_arrays_and_event_hub_files() {
    let o = detc(&[
        "eval",
        "--rule",
        "rules/k8s_cronjob_job_write.rule",
        "--events",
        "rules/events/aks_sysdig_event_hub_records.json",
        "--platform",
        "aks",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 22);
    assert!(lines.iter().all(|l| l["match"] == false));

    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/events");
    let pos: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("eks_job_create_privileged_hostpath_alpine.json"))
            .unwrap(),
    )
    .unwrap();
    let neg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("seed001_eks_pod_created.json")).unwrap(),
    )
    .unwrap();
    let ndjson = dir.path().join("e.ndjson");
    std::fs::write(&ndjson, format!("{pos}\n{neg}\n")).unwrap();
    let array = dir.path().join("e.json");
    std::fs::write(
        &array,
        serde_json::to_string_pretty(&vec![&pos, &neg]).unwrap(),
    )
    .unwrap();
    for file in [&ndjson, &array] {
        let o = detc(&[
            "eval",
            "--rule",
            "rules/k8s_cronjob_job_write.rule",
            "--events",
            file.to_str().unwrap(),
            "--platform",
            "eks",
        ]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(lines[0]["match"], true);
        assert_eq!(lines[0]["severity"], "high");
        assert_eq!(
            lines[0]["indicators"],
            serde_json::json!(["suspicious_image", "host_path", "privileged", "host_pid"])
        );
        assert_eq!(lines[1]["match"], false);
    }
    let o = detc(&[
        "eval",
        "--rule",
        "rules/k8s_cronjob_job_write.rule",
        "--events",
        array.to_str().unwrap(),
        "--platform",
        "splunk",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn ir_prints_yaml() {
    let o = detc(&[
        "ir",
        "rules/seeds/seed_000_kubernetes_audit_cronjob_modification.rule",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_yaml::Value = serde_yaml::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["name"].as_str(),
        Some("kubernetes_audit_cronjob_modification")
    );
}

#[test]
fn failed_build_leaves_previous_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("previous.txt"), "keep me").unwrap();
    let o = detc(&[
        "build",
        "rules/invalid/unknown_field.rule",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("previous.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    // And nothing was left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn builds_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let o = detc(&["build", "rules", "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let files = |root: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = walk(root)
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let (fa, fb) = (files(&a), files(&b));
    assert!(fa.len() > 40, "{} files", fa.len());
    assert_eq!(fa, fb);
}

/// `detc build` streams files to disk from several threads; `build --check`
/// and `diff` use the in-memory build. Both make the same files, and the
/// reports summarise: a table per target, each distinct note once.
#[test]
fn streamed_build_is_the_in_memory_build_and_reports_summarise() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let o = detc(&["build", "rules", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loads = detc::load::load(&[root.join("rules")]).unwrap();
    let rules: Vec<&detc::ir::Rule> = loads.rules.iter().map(|l| &l.rule).collect();
    let lock = detc::workflow::lock::Lock::read(&root.join("detc.lock"))
        .unwrap()
        .expect("the project's lock");
    let b = detc::build::build_with(&rules, &Default::default(), |r, t| lock.version(&r.name, t));
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    let mut on_disk: Vec<(String, String)> = walk(&out)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(&out).unwrap().display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    on_disk.sort();
    let in_memory: Vec<(String, String)> = b.files.into_iter().collect();
    assert_eq!(on_disk.len(), in_memory.len());
    assert!(
        on_disk == in_memory,
        "the streamed build differs from the in-memory one"
    );

    let md = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    for t in detc::backend::Target::ALL {
        assert!(
            md.contains(&format!("\n## {t}\n\n| rule | status | files | notes |\n")),
            "{t}"
        );
    }
    let notes = md.lines().filter(|l| l.starts_with("- **")).count();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("REPORT.json")).unwrap()).unwrap();
    assert_eq!(
        json["results"].as_array().unwrap().len(),
        rules.len() * detc::backend::Target::ALL.len()
    );
    // Each distinct note once per target.
    let mut keys: Vec<String> = json["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{} {} {} {}",
                n["target"], n["kind"], n["construct"], n["reason"]
            )
        })
        .collect();
    let all = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), all, "a note is listed twice");
    assert_eq!(all, notes);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn rule_ids_and_names_are_unique_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rule =
        std::fs::read_to_string(root.join("rules/seeds/seed_002_azure_kubernetes_cronjob.rule"))
            .unwrap()
            .replace("\"../events/", "\"events/");
    let events = dir.path().join("events");
    std::fs::create_dir(&events).unwrap();
    for e in std::fs::read_dir(root.join("rules/events")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), events.join(e.file_name())).unwrap();
    }
    std::fs::write(dir.path().join("a.rule"), &rule).unwrap();
    // Same id under another name, and the same name with another id.
    std::fs::write(
        dir.path().join("b.rule"),
        rule.replace("rule azure_kubernetes_cronjob", "rule other_name"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.rule"),
        rule.replace(
            "1c71e254-6655-42c1-b2d6-5e4718d7fc0a",
            "1c71e254-6655-42c1-b2d6-5e4718d7fc0b",
        ),
    )
    .unwrap();
    let o = detc(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("rule id 1c71e254-6655-42c1-b2d6-5e4718d7fc0a is also the id of `azure_kubernetes_cronjob`"), "{t}");
    assert!(
        t.contains("rule name `azure_kubernetes_cronjob` is also used in"),
        "{t}"
    );
    assert!(t.contains("b.rule:") && t.contains("c.rule:"), "{t}");

    // Names that differ only in case collide on case-insensitive file systems.
    std::fs::remove_file(dir.path().join("b.rule")).unwrap();
    std::fs::write(
        dir.path().join("c.rule"),
        rule.replace(
            "rule azure_kubernetes_cronjob",
            "rule Azure_Kubernetes_CronJob",
        )
        .replace(
            "1c71e254-6655-42c1-b2d6-5e4718d7fc0a",
            "1c71e254-6655-42c1-b2d6-5e4718d7fc0b",
        ),
    )
    .unwrap();
    let t = text(&detc(&["check", dir.path().to_str().unwrap()]));
    assert!(
        t.contains("differs only in case from `azure_kubernetes_cronjob`"),
        "{t}"
    );
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = rule_reading(dir.path(), "e.json");
    std::fs::write(dir.path().join("rules/e.json"), r#"{"verb": "get"}"#).unwrap();
    let rule = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("\u{feff}{rule}")).unwrap();
    let o = detc(&["test", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// A rule in `repo/rules/` whose no-match test reads `event`.
fn rule_reading(repo: &Path, event: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(repo.join("rules")).unwrap();
    std::fs::write(repo.join("detc.lock"), "").unwrap();
    let path = repo.join("rules/r.rule");
    std::fs::write(
        &path,
        format!(
            r#"rule r {{
  id = "3f0c8e8a-7d51-4c1b-9a57-0b8f2a9e6d70"
  title = "t"
  description = "d"
  author = "a"
  date = 2025-01-01
  status = stable
  severity = low
  source kubernetes.audit on [kubernetes] {{ match verb == "create" }}
  test "m" on kubernetes expect match {{ "verb": "create" }}
  test "n" on kubernetes expect no match file {event:?}
}}
"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn test_events_cannot_leave_the_rule_repository() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.json");
    std::fs::write(&secret, r#"{"verb": "get", "token": "s3cr3t"}"#).unwrap();
    let repo = dir.path().join("repo");
    let rule = rule_reading(&repo, "../../secret.json");
    let o = detc(&[
        "build",
        rule.to_str().unwrap(),
        "--out",
        dir.path().join("dist").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("outside the rule repository"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("r.rule:11:"), "{}", text(&o));
    assert!(!dir.path().join("dist").exists());
    // Inside the repository, `..` is fine.
    std::fs::write(repo.join("e.json"), r#"{"verb": "get"}"#).unwrap();
    let rule = rule_reading(&repo, "../e.json");
    let o = detc(&["check", rule.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[cfg(unix)]
#[test]
fn event_files_that_are_not_regular_files_are_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("rules")).unwrap();
    let fifo = repo.join("rules/pipe.json");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let rule = rule_reading(&repo, "pipe.json");
    let o = detc(&["check", rule.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not a regular file"), "{}", text(&o));
    std::os::unix::fs::symlink("/dev/zero", repo.join("rules/zero.json")).unwrap();
    let rule = rule_reading(&repo, "zero.json");
    let o = detc(&["check", rule.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // A symlink out of the repository is refused before it is read.
    assert!(
        text(&o).contains("outside the rule repository"),
        "{}",
        text(&o)
    );
    let o = detc(&[
        "eval",
        "--rule",
        "rules/k8s_cronjob_job_write.rule",
        "--events",
        "/dev/zero",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not a regular file"), "{}", text(&o));
}

#[test]
fn eval_asks_which_rule_when_a_file_holds_several() {
    let dir = tempfile::tempdir().unwrap();
    let one = |name: &str, id: &str, verb: &str| {
        format!(
            r#"rule {name} {{
  id = "{id}"
  title = "t"
  description = "d"
  author = "a"
  date = 2025-01-01
  status = stable
  severity = low
  source kubernetes.audit on [kubernetes] {{ match verb == "{verb}" }}
  test "m" on kubernetes expect match {{ "verb": "{verb}" }}
  test "n" on kubernetes expect no match {{ "verb": "x" }}
}}
"#
        )
    };
    let file = dir.path().join("two.rule");
    std::fs::write(
        &file,
        one("a", "3f0c8e8a-7d51-4c1b-9a57-0b8f2a9e6d71", "create")
            + &one("b", "3f0c8e8a-7d51-4c1b-9a57-0b8f2a9e6d72", "delete"),
    )
    .unwrap();
    let events = dir.path().join("e.json");
    std::fs::write(&events, r#"{"verb": "delete"}"#).unwrap();
    let (f, e) = (file.to_str().unwrap(), events.to_str().unwrap());
    let o = detc(&["eval", "--rule", f, "--events", e]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("choose one with --name"), "{}", text(&o));
    let o = detc(&["eval", "--rule", f, "--events", e, "--name", "b"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("\"match\":true"), "{}", text(&o));
    let o = detc(&["eval", "--rule", f, "--events", e, "--name", "c"]);
    assert!(text(&o).contains("no rule `c`"), "{}", text(&o));
}

#[test]
fn detc_ir_is_read_back_unchanged_by_pyyaml() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ir.rule");
    std::fs::write(
        &file,
        r#"rule ir_values {
  id = "3f0c8e8a-7d51-4c1b-9a57-0b8f2a9e6d73"
  title = "yes"
  description = "="
  author = "on"
  date = 2025-01-01
  status = stable
  severity = low
  source kubernetes.audit on [kubernetes] { match verb in ["yes", "=", "1_000", "0x1F", "~", "null"] }
  test "m" on kubernetes expect match { "verb": "yes" }
  test "n" on kubernetes expect no match { "verb": "x" }
}
"#,
    )
    .unwrap();
    let o = detc(&["ir", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let py = common::venv_bin("sigma", "python");
    let out = Command::new(py)
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&o.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["meta"]["title"], "yes");
    assert_eq!(v["meta"]["description"], "=");
    assert_eq!(v["meta"]["author"], "on");
    let values = &v["detections"][0]["condition"]["cmp"]["values"];
    assert_eq!(
        values,
        &serde_json::json!([{"str": "yes"}, {"str": "="}, {"str": "1_000"}, {"str": "0x1F"}, {"str": "~"}, {"str": "null"}]),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn one_targets_failure_is_a_loss_of_that_target_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = rule_reading(dir.path(), "e.json");
    std::fs::write(dir.path().join("rules/e.json"), r#"{"verb": "get"}"#).unwrap();
    // `**` has no Sigma form: the Sigma document is lost, nothing else.
    let text0 = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text0.replace(
            r#"match verb == "create""#,
            r#"match verb == "create" and not requestObject.**.privileged == true"#,
        ),
    )
    .unwrap();
    let out = dir.path().join("dist");
    let (p, o) = (path.to_str().unwrap(), out.to_str().unwrap());
    let r = detc(&["build", p, "--out", o]);
    assert_eq!(r.status.code(), Some(1), "{}", text(&r));
    assert!(
        text(&r).contains("sigma: cannot express match (the whole detection"),
        "{}",
        text(&r)
    );
    let r = detc(&["build", p, "--out", o, "--lossy"]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    assert!(out.join("panther/rules/r.py").exists(), "{}", text(&r));
    assert!(!out.join("sigma/r.yml").exists());
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(report.contains("no Sigma rule is written"), "{report}");
}
