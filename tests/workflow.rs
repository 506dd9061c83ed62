//! The pull-request workflow: `fmt`, `diff`, `build --check`, the version
//! lock, `new`, `--changed`, and the CI recipe in docs/ci.

mod common;

use common::root;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn detc_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run detc")
}

fn detc(args: &[&str]) -> Output {
    detc_in(root(), args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// rules/ without its must-fail inputs, copied into `dir/rules`.
fn copy_rules(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    copy_dir(&root().join("rules"), &rules);
    std::fs::remove_dir_all(rules.join("invalid")).unwrap();
    rules
}

fn rule_files() -> Vec<PathBuf> {
    detc::load::rule_files(&[root().join("rules")]).unwrap()
}

fn ir_of(path: &Path, text: &str) -> Vec<String> {
    detc::load::compile_text(&path.display().to_string(), text, path.parent().unwrap())
        .unwrap_or_else(|r| panic!("{r}"))
        .iter()
        .map(|r| detc::ir::to_yaml(r).unwrap())
        .collect()
}

fn comment_texts(text: &str) -> Vec<String> {
    detc::syntax::comments(text)
        .unwrap()
        .into_iter()
        .map(|c| c.text)
        .collect()
}

#[test]
fn fmt_is_idempotent_keeps_every_comment_and_the_ir_on_every_rule() {
    let files = rule_files();
    assert!(files.len() >= 6, "{files:?}");
    for path in files {
        let original = std::fs::read_to_string(&path).unwrap();
        let once = detc::workflow::fmt::format("x", &original).unwrap();
        let twice = detc::workflow::fmt::format("x", &once).unwrap();
        assert_eq!(once, twice, "fmt is not idempotent on {}", path.display());
        let (mut before, mut after) = (comment_texts(&original), comment_texts(&once));
        assert!(!before.is_empty(), "{} has no comments", path.display());
        before.sort();
        after.sort();
        assert_eq!(before, after, "comments of {}", path.display());
        assert_eq!(
            ir_of(&path, &original),
            ir_of(&path, &once),
            "the IR of {} changed",
            path.display()
        );
        assert!(
            once.lines().all(|l| !l.ends_with(' ')),
            "trailing spaces in {}",
            path.display()
        );
    }
}

#[test]
fn fmt_layout_sorts_metadata_aligns_and_keeps_comments_in_place() {
    let src = "# head\nrule r {\n  severity = low # why low\n  id = \"6a6f1c1e-5d0b-4a8e-9c55-2f7b1d7b0c31\"\n  tags = [\"a\", # first\n \"b\"]\n  source kubernetes.audit on [eks] {\n    # the condition\n    match verb == \"create\"\n    # end of source\n  }\n}\n# tail\n";
    let out = detc::workflow::fmt::format("x", src).unwrap();
    let want = "# head\nrule r {\n  id       = \"6a6f1c1e-5d0b-4a8e-9c55-2f7b1d7b0c31\"\n  severity = low  # why low\n  tags     = [\n    \"a\",  # first\n    \"b\",\n  ]\n\n  source kubernetes.audit on [eks] {\n    # the condition\n    match verb == \"create\"\n    # end of source\n  }\n}\n# tail\n";
    assert_eq!(out, want);
    assert_eq!(detc::workflow::fmt::format("x", &out).unwrap(), out);
}

#[test]
fn fmt_check_reports_and_fmt_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.rule");
    std::fs::write(&f, "rule r {   severity = low }\n").unwrap();
    let p = f.to_str().unwrap();
    let o = detc(&["fmt", "--check", p]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not formatted"), "{}", text(&o));
    assert_eq!(detc(&["fmt", p]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "rule r {\n  severity = low\n}\n"
    );
    assert_eq!(detc(&["fmt", "--check", p]).status.code(), Some(0));
    std::fs::write(&f, "rule r { severity = }\n").unwrap();
    let o = detc(&["fmt", p]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("r.rule:1:"), "{}", text(&o));
}

/// The flagship in two trees, `base/` and `head/`, with `edit` applied to head.
fn flagship_trees(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for side in ["base", "head"] {
        let d = dir.path().join(side);
        copy_dir(&root().join("rules/events"), &d.join("events"));
        let src = std::fs::read_to_string(root().join("rules/k8s_cronjob_job_write.rule")).unwrap();
        let src = if side == "head" { edit(&src) } else { src };
        std::fs::write(d.join("k8s_cronjob_job_write.rule"), src).unwrap();
    }
    dir
}

fn replace_once(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "{from}");
    s.replacen(from, to, 1)
}

#[test]
fn diff_of_a_scripted_change_to_the_flagship() {
    let dir = flagship_trees(|s| {
        // A value added to a list, a test flipped, an output field renamed.
        let s = replace_once(
            s,
            "verb in [\"create\", \"update\", \"patch\", \"delete\"]",
            "verb in [\"create\", \"update\", \"patch\", \"delete\", \"deletecollection\"]",
        );
        let s = replace_once(
            &s,
            "test \"GKE pod create\" on gke expect no match",
            "test \"GKE pod create\" on gke expect match",
        );
        replace_once(
            &s,
            "userAgent as user_agent",
            "userAgent as http_user_agent",
        )
    });
    let o = detc_in(dir.path(), &["diff", "base", "head"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let md = String::from_utf8(o.stdout).unwrap();
    assert!(
        md.contains("| `k8s_cronjob_job_write` | changed | splunk, elastic, panther, sigma, sentinel, esql |"),
        "{md}"
    );
    assert!(md.contains("| GKE pod create | gke | expect no match; got no match: pass | expect match; got no match: **FAIL** |"), "{md}");
    // The query diff comes before the whole file of the same output.
    let q = md.find("#### splunk").unwrap();
    let after = &md[q..];
    assert!(after.find("Query:").unwrap() < after.find("Whole file").unwrap());
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("diff@flagship_scripted_change", md));

    let o = detc_in(dir.path(), &["diff", "base", "head", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["changed"], 1);
    assert_eq!(v["rules"][0]["tests"][0]["name"], "GKE pod create");
    assert_eq!(v["rules"][0]["tests"][0]["after"]["pass"], false);

    let o = detc_in(dir.path(), &["diff", "base", "base"]);
    assert!(
        text(&o).contains("No rule and no generated output changed."),
        "{}",
        text(&o)
    );
}

#[test]
fn build_check_finds_edited_deleted_and_stale_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let out_s = out.to_str().unwrap();
    let lock = dir.path().join("none.lock");
    let lock_s = lock.to_str().unwrap();
    // Built and checked against the same (absent) lock: every version 1,
    // whatever versions the repository's detc.lock holds.
    assert_eq!(
        detc(&["build", "rules", "--out", out_s, "--lock", lock_s])
            .status
            .code(),
        Some(0)
    );
    let o = detc(&[
        "build", "--check", "rules", "--out", out_s, "--lock", lock_s,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("up to date"), "{}", text(&o));

    let yml = out.join("splunk/k8s_cronjob_job_write.spl");
    let edited =
        std::fs::read_to_string(&yml)
            .unwrap()
            .replacen("| stats", "| where 1=1 | stats", 1);
    std::fs::write(&yml, edited).unwrap();
    std::fs::remove_file(out.join("sigma/k8s_cronjob_job_write.yml")).unwrap();
    std::fs::write(out.join("panther/old_rule.py"), "x = 1\n").unwrap();
    let before = std::fs::read_to_string(&yml).unwrap();
    let o = detc(&[
        "build", "--check", "rules", "--out", out_s, "--lock", lock_s,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("differs  splunk/k8s_cronjob_job_write.spl"),
        "{t}"
    );
    assert!(
        t.contains("missing  sigma/k8s_cronjob_job_write.yml"),
        "{t}"
    );
    assert!(t.contains("stale    panther/old_rule.py"), "{t}");
    assert!(t.contains("3 file(s) differ"), "{t}");
    // --check changes nothing.
    assert_eq!(std::fs::read_to_string(&yml).unwrap(), before);
    assert!(out.join("panther/old_rule.py").exists());
}

/// The contentctl detection generated from `rule` (named after its title).
fn splunk_detection(dist: &Path, rule: &str) -> String {
    let marker = format!("generated by detc from rule `{rule}`, source");
    std::fs::read_dir(dist.join("splunk/detections"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|t| t.contains(&marker))
        .unwrap_or_else(|| panic!("no contentctl detection for {rule}"))
}

#[test]
fn the_lock_fails_a_change_without_a_bump_and_passes_after_detc_lock() {
    let dir = tempfile::tempdir().unwrap();
    let rules = copy_rules(dir.path());
    let d = dir.path();
    let o = detc_in(d, &["lock"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(d.join("detc.lock").exists());
    let o = detc_in(d, &["build", "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let seed = rules.join("seeds/seed_003_kubernetes_cron_job_creation.rule");
    let src = std::fs::read_to_string(&seed).unwrap();
    assert!(src.contains("verb == \"create\""), "{src}");
    std::fs::write(
        &seed,
        src.replacen("verb == \"create\"", "verb in [\"create\", \"update\"]", 1),
    )
    .unwrap();
    let o = detc_in(d, &["build", "--check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("kubernetes_cron_job_creation -> splunk: the generated output changed but neither its version (1) nor the rule's `modified` date did"),
        "{t}"
    );
    assert!(!t.contains("k8s_cronjob_job_write ->"), "{t}");

    let o = detc_in(d, &["lock"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("bumped  kubernetes_cron_job_creation -> splunk: version 1 -> 2"),
        "{}",
        text(&o)
    );
    let o = detc_in(d, &["build", "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The version reaches the contentctl detection.
    assert_eq!(detc_in(d, &["build"]).status.code(), Some(0));
    let yml = splunk_detection(&d.join("dist"), "kubernetes_cron_job_creation");
    assert!(yml.contains("\nversion: 2\n"), "{yml}");
    let yml = splunk_detection(&d.join("dist"), "k8s_cronjob_job_write");
    assert!(yml.contains("\nversion: 1\n"), "{yml}");
    // A removed rule is stale in the lock.
    std::fs::remove_file(&seed).unwrap();
    std::fs::remove_dir_all(d.join("dist")).unwrap();
    let o = detc_in(d, &["build", "--check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("kubernetes_cron_job_creation: in the lock but no longer built"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_committed_lock_is_current() {
    let o = detc(&["build", "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lock = detc::workflow::lock::Lock::read(&root().join("detc.lock"))
        .unwrap()
        .unwrap();
    for r in lock.rules.values() {
        let mut t: Vec<&String> = r.targets.keys().collect();
        t.sort();
        let mut all: Vec<&str> = detc::backend::Target::ALL
            .iter()
            .map(|t| t.name())
            .collect();
        all.sort();
        assert_eq!(t, all);
    }
}

#[test]
fn new_writes_a_rule_that_fails_check_until_filled_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = detc(&[
        "new",
        "my_rule",
        "--source",
        "kubernetes.audit",
        "--platform",
        "eks",
        "--dir",
        d,
        "--author",
        "Me",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let path = dir.path().join("my_rule.rule");
    let src = std::fs::read_to_string(&path).unwrap();
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    assert!(src.contains(&format!("date        = {today}")), "{src}");
    let id = src
        .split("id          = \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    let p = path.to_str().unwrap();
    let o = detc(&["check", p]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(
            "the condition is still the placeholder `TODO`: fill in what this rule detects"
        ),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("my_rule.rule:"), "{}", text(&o));
    // Writing over a file is refused.
    assert_eq!(
        detc(&["new", "my_rule", "--source", "kubernetes.audit", "--dir", d])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        detc(&["new", "x", "--source", "nope", "--dir", d])
            .status
            .code(),
        Some(2)
    );

    let filled = src
        .replace(
            "match TODO",
            "match verb == \"create\" and objectRef.resource == \"cronjobs\"",
        )
        .replace(
            "{\"TODO\": \"paste an event the rule must match\"}",
            "{\"verb\": \"create\", \"objectRef\": {\"resource\": \"cronjobs\"}}",
        )
        .replace(
            "{\"TODO\": \"paste a near miss\"}",
            "{\"verb\": \"get\", \"objectRef\": {\"resource\": \"cronjobs\"}}",
        );
    std::fs::write(&path, filled).unwrap();
    let o = detc(&["check", p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = detc(&["test", p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("2 passed, 0 failed"), "{}", text(&o));
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {}", text(&o));
}

/// A rule repository: a first commit without rules, a second with this
/// repository's rules and lock.
fn rule_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q"]);
    std::fs::write(d.join("README.md"), "rules\n").unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "start"]);
    git(d, &["tag", "base"]);
    copy_rules(d);
    std::fs::copy(root().join("detc.lock"), d.join("detc.lock")).unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "rules"]);
    dir
}

#[test]
fn changed_only_runs_on_rules_that_differ_from_a_revision() {
    let repo = rule_repo();
    let d = repo.path();
    let o = detc_in(d, &["test", "rules", "--changed", "HEAD"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("0 of 6 rule(s) differ"), "{}", text(&o));
    assert!(text(&o).contains("0 passed, 0 failed"), "{}", text(&o));
    // An edited event file changes its rule.
    let ev = d.join("rules/events/k8s_job_delete.json");
    let e = std::fs::read_to_string(&ev).unwrap();
    std::fs::write(&ev, e.replacen('{', "{\"detc_changed\": 1, ", 1)).unwrap();
    let o = detc_in(d, &["test", "rules", "--changed", "HEAD"]);
    let t = text(&o);
    // The flagship and seeds 000, 003 and 004 read that event; seeds 001 and 002 do not.
    assert!(t.contains("4 of 6 rule(s) differ"), "{t}");
    assert!(t.contains("k8s_cronjob_job_write :: raw Job delete"), "{t}");
    assert!(
        t.contains("kubernetes_cron_job_creation :: Job delete"),
        "{t}"
    );
    assert!(!t.contains("azure_kubernetes_cronjob ::"), "{t}");
    let o = detc_in(d, &["build", "rules", "--changed", "HEAD", "--out", "part"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(d.join("part/sigma/k8s_cronjob_job_write.yml").exists());
    assert!(!d.join("part/sigma/azure_kubernetes_cronjob.yml").exists());
    let o = detc_in(d, &["test", "--changed", "no-such-rev"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// The shell lines of the CI recipe: GitHub `run:` steps, GitLab `script:`
/// lines and pre-commit `entry:` commands, without the install lines.
fn recipe_lines() -> Vec<String> {
    let read = |p: &str| -> serde_yaml::Value {
        serde_yaml::from_str(&std::fs::read_to_string(root().join(p)).unwrap()).unwrap()
    };
    let mut lines = Vec::new();
    let gh = read("docs/ci/github-workflow.yml");
    for (_, job) in gh["jobs"].as_mapping().unwrap() {
        for step in job["steps"].as_sequence().unwrap() {
            if let Some(run) = step["run"].as_str() {
                lines.extend(run.lines().map(str::to_string));
            }
        }
    }
    let gl = read("docs/ci/gitlab-ci.yml");
    for s in gl["detc"]["script"].as_sequence().unwrap() {
        lines.push(s.as_str().unwrap().to_string());
    }
    for hook in read(".pre-commit-hooks.yaml").as_sequence().unwrap() {
        let entry = hook["entry"].as_str().unwrap();
        // pre-commit appends the staged files unless pass_filenames is false.
        if hook["pass_filenames"].as_bool() == Some(false) {
            lines.push(entry.to_string());
        } else {
            lines.push(format!("{entry} rules/k8s_cronjob_job_write.rule"));
        }
    }
    lines
        .into_iter()
        .filter(|l| {
            !l.trim().is_empty() && !l.contains("cargo install") && !l.contains("pip install")
        })
        .collect()
}

#[test]
fn every_command_of_the_ci_recipe_succeeds_on_this_repositorys_rules() {
    let lines = recipe_lines();
    for cmd in [
        "detc check",
        "detc test",
        "detc build --check",
        "detc diff",
        "sigma check",
        "pat ",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(cmd)),
            "the recipe never runs `{cmd}`"
        );
    }
    let repo = rule_repo();
    let bin = repo.path().join(".bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_detc"), bin.join("detc")).unwrap();
    let path = format!(
        "{}:{}:{}:{}",
        bin.display(),
        common::venv_bin("sigma", "sigma")
            .parent()
            .unwrap()
            .display(),
        common::venv_bin("panther", "pat")
            .parent()
            .unwrap()
            .display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in &lines {
        let o = Command::new("bash")
            .args(["-euo", "pipefail", "-c", line])
            .current_dir(repo.path())
            .env("PATH", &path)
            .env("BASE", "base")
            .output()
            .unwrap();
        assert!(o.status.success(), "`{line}` failed:\n{}", text(&o));
    }
    // The validators ran on every rule (the base revision has none), and the diff lists them.
    assert!(repo
        .path()
        .join("dist-changed/sigma/k8s_cronjob_job_write.yml")
        .exists());
    let md = std::fs::read_to_string(repo.path().join("detc-diff.md")).unwrap();
    assert!(
        md.contains("6 rule(s) added, 0 changed, 0 removed, 0 unchanged."),
        "{md}"
    );
}
