//! The Elastic backend against the real tools: eql 1.0.1's parser, the
//! detection-rules TOML checks, an EQL evaluator with Elasticsearch semantics
//! (tests/validators/eql_eval.py) cross-checked against detc's own evaluator,
//! and hostile values through EQL strings and TOML.
//!
//! Needs `.venv/panther` (with eql 1.0.1): run `.ci/setup-validators`.

use detc::backend::elastic::{self, elastic_document, eql_field, lucene_regex, wildcard_literal};
use detc::backend::{LossKind, Rendered, Target};
use detc::eval::Evaluator;
use detc::ir::Rule;
use detc::sources::normalize::normalize;
use serde_json::{json, Value as Json};
use std::path::PathBuf;
use std::process::Command;

mod common;
use common::{
    compared_fields, compile, narrowed_verdict, project_rules, run, unnamed_narrowing, validator,
    venv_bin, with_variants, write_files, Narrow,
};

fn python() -> PathBuf {
    venv_bin("panther", "python")
}

/// A Python snippet run with the venv's interpreter (eql importable), with
/// `input` on stdin; its stdout.
fn py(code: &str, input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg("-c")
        .arg(code)
        // eql imports every `eql_*` module on sys.path as a plugin: stay out of tests/validators.
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("python finishes");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        code
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn render(rule: &Rule) -> Rendered {
    detc::build::render(rule, Target::Elastic).unwrap_or_else(|e| panic!("{}: {e}", rule.name))
}

fn file<'a>(r: &'a Rendered, path: &str) -> &'a str {
    &r.files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| {
            panic!(
                "no {path} among {:?}",
                r.files.iter().map(|f| &f.path).collect::<Vec<_>>()
            )
        })
        .contents
}

/// The query of a `.eql` file: its lines without `//` notes.
fn eql_query(contents: &str) -> String {
    contents
        .lines()
        .filter(|l| !l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A rule around a kubernetes.audit source body.
fn k8s_rule(name: &str, title: &str, body: &str, tests: &str) -> String {
    format!(
        r#"rule {name} {{
  id = "3f0c8e8a-7d51-4c1b-9a57-0b8f2a9e6d10"
  title = "{title}"
  description = "Test rule."
  author = "detc tests"
  date = 2025-01-01
  status = experimental
  severity = medium
  attack = [T1053.007, TA0003]
  lossy = [elastic]
  source kubernetes.audit on [kubernetes, eks] {{
{body}
  }}
{tests}
}}
"#
    )
}

const EVENT_CREATE: &str = r#"{"kind":"Event","verb":"create","objectRef":{"resource":"cronjobs","namespace":"default","name":"x","apiGroup":"batch"},"user":{"username":"alice"},"sourceIPs":["10.1.2.3"],"responseStatus":{"code":201}}"#;
const EVENT_GET: &str = r#"{"kind":"Event","verb":"get","objectRef":{"resource":"pods","namespace":"default","name":"y"},"user":{"username":"bob"},"sourceIPs":["192.168.1.1"],"responseStatus":{"code":200}}"#;

fn std_tests() -> String {
    format!(
        "  test \"create\" on kubernetes expect match {EVENT_CREATE}\n  test \"get\" on kubernetes expect no match {EVENT_GET}\n"
    )
}

// ------------------------------------------------------------ real validators

#[test]
fn every_rule_passes_eql_parser_and_toml_checks() {
    let rules = project_rules();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut eqls = Vec::new();
    let mut tomls = Vec::new();
    for rule in &rules {
        let r = render(rule);
        write_files(dir.path(), &r.files);
        for f in &r.files {
            if f.path.ends_with(".eql") {
                eqls.push(dir.path().join(&f.path));
                // The TOML's query is the .eql file's query, and every loss is noted in both files.
                let toml_path = f.path.replace(".eql", ".toml");
                let doc: toml::Table = file(&r, &toml_path)
                    .parse()
                    .unwrap_or_else(|e| panic!("{toml_path}: {e}"));
                let q = doc["rule"]["query"].as_str().expect("query is a string");
                assert_eq!(
                    q.trim_end(),
                    eql_query(&f.contents),
                    "{toml_path}: query differs from the .eql file"
                );
                let stem = f
                    .path
                    .trim_end_matches(".eql")
                    .split("__")
                    .next()
                    .unwrap_or_default();
                for loss in r.losses.iter().filter(|l| l.stem == stem) {
                    assert!(
                        f.contents.contains(&loss.construct),
                        "{}: loss {} not noted",
                        f.path,
                        loss.construct
                    );
                    assert!(
                        file(&r, &toml_path).contains(&loss.construct),
                        "{toml_path}: loss {} not noted",
                        loss.construct
                    );
                }
            } else if f.path.ends_with(".toml") {
                tomls.push(dir.path().join(&f.path));
            }
        }
    }
    assert!(
        !eqls.is_empty() && eqls.len() == tomls.len(),
        "{} queries, {} TOML files",
        eqls.len(),
        tomls.len()
    );
    let (ok, out) = run(Command::new(python())
        .arg(validator("eql_parse.py"))
        .args(&eqls));
    assert!(
        ok,
        "eql_parse.py (eql 1.0.1) rejected generated queries:\n{out}"
    );
    let (ok, out) = run(Command::new(python())
        .arg(validator("toml_check.py"))
        .args(&tomls));
    assert!(ok, "toml_check.py rejected generated rules:\n{out}");

    // The build applies the loss policy: every unsupported construct is accepted by `lossy = [elastic]`.
    let refs: Vec<&Rule> = rules.iter().collect();
    let b = detc::build::build(
        &refs,
        &detc::build::Options {
            targets: vec![Target::Elastic],
            ..Default::default()
        },
    );
    assert!(
        b.errors.is_empty(),
        "elastic build errors:\n{}",
        b.errors.join("\n")
    );
}

#[test]
fn flagship_and_seed_004_shapes() {
    let rules = project_rules();
    let flagship = rules
        .iter()
        .find(|r| r.name == "k8s_cronjob_job_write")
        .expect("flagship");
    let r = render(flagship);
    let q = eql_query(file(&r, "k8s_cronjob_job_write.eql"));
    assert!(
        q.starts_with("any where data_stream.dataset == \"kubernetes.audit_logs\" and"),
        "{q}"
    );
    assert!(
        q.contains("kubernetes.audit.objectRef.resource in~ (\"cronjobs\", \"jobs\")"),
        "{q}"
    );
    let az = eql_query(file(&r, "k8s_cronjob_job_write_azure_activity.eql"));
    assert!(
        az.starts_with("any where data_stream.dataset == \"azure.activitylogs\" and"),
        "{az}"
    );
    assert!(
        az.contains("azure.activitylogs.operation_name like~"),
        "{az}"
    );
    let doc: toml::Table = file(&r, "k8s_cronjob_job_write_azure_activity.toml")
        .parse()
        .expect("toml");
    assert_eq!(
        doc["rule"]["index"].as_array().expect("index")[0].as_str(),
        Some("logs-azure.activitylogs-*")
    );
    assert_eq!(
        doc["metadata"]["integration"]
            .as_array()
            .expect("integration")[0]
            .as_str(),
        Some("azure")
    );
    assert_ne!(
        doc["rule"]["rule_id"].as_str(),
        Some(flagship.meta.id.as_str()),
        "second source needs its own rule_id"
    );
    let main: toml::Table = file(&r, "k8s_cronjob_job_write.toml")
        .parse()
        .expect("toml");
    assert_eq!(
        main["rule"]["rule_id"].as_str(),
        Some(flagship.meta.id.as_str())
    );
    assert_eq!(main["rule"]["from"].as_str(), Some("now-70m"));
    assert_eq!(main["rule"]["to"].as_str(), Some("now-10m"));
    assert_eq!(main["rule"]["interval"].as_str(), Some("1h"));
    // The pod-template indicators test CronJob/Job templates, which the integration does not
    // map; their Pod branch cannot hold under a CronJob/Job match.
    for ind in [
        "suspicious_image",
        "shell_command",
        "host_path",
        "privileged",
        "host_network",
        "host_pid",
    ] {
        assert!(
            r.losses.iter().any(|l| l.kind == LossKind::Unsupported
                && l.construct == format!("indicator {ind}")
                && l.reason.contains("excludes")),
            "indicator {ind} should be reported unsupported"
        );
        assert!(!r
            .files
            .iter()
            .any(|f| f.path == format!("k8s_cronjob_job_write__{ind}.eql")));
    }
    // The request indicators are companion rules; the regexes are Lucene `regex~`.
    for (ind, needle) in [
        (
            "scripted_client",
            "kubernetes.audit.userAgent regex~ \".*(curl\\\\/|python\\\\-requests",
        ),
        (
            "system_name",
            "kubernetes.audit.objectRef.name regex~ \".*(kube\\\\-(proxy",
        ),
        (
            "kube_system_write",
            "kubernetes.audit.objectRef.namespace : \"kube-system\"",
        ),
    ] {
        let q = eql_query(file(&r, &format!("k8s_cronjob_job_write__{ind}.eql")));
        assert!(q.contains(needle), "{ind}: {needle} not in {q}");
    }

    // Seed 004, fixed: right dataset, no `message`, no `(?i)`, no whole-value regex; and
    // faithful: it alerts only on a suspicious pod template, which Elastic cannot see, so no
    // Elastic rule is written and the loss says why.
    if let Some(seed) = rules
        .iter()
        .find(|r| r.name == "container_orchestration_job")
    {
        let r = render(seed);
        assert!(r.files.is_empty(), "seed 004 has no Elastic form");
        let loss = r
            .losses
            .iter()
            .find(|l| l.construct.starts_with("match (the whole detection"))
            .expect("the loss of the whole detection");
        assert_eq!(loss.kind, LossKind::Unsupported);
        for why in ["excludes", "not mapped by the integration"] {
            assert!(loss.reason.contains(why), "{why}: {}", loss.reason);
        }
    }
}

// ------------------------------------------------------------ cross-check verdicts

/// Run each generated query of `rule` through eql_eval.py over the Elastic
/// documents of its test events (and variants: each referenced field removed
/// in turn, every string upper-cased), and compare with detc's verdicts.
/// Returns the disagreements and the number of verdicts compared.
fn cross_check(rule: &Rule) -> (Vec<String>, usize) {
    let r = render(rule);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ev = Evaluator::new();
    let mut problems = Vec::new();
    let mut compared = 0;
    for det in &rule.detections {
        let fields = compared_fields(det);
        // (label, canonical event)
        let mut events: Vec<(String, Json)> = Vec::new();
        for t in rule
            .tests
            .iter()
            .filter(|t| det.platforms.contains(&t.platform))
        {
            let Some(event) = normalize(&t.platform, &t.event) else {
                // Not an event of the source (no Elastic document either): detc must not match it.
                let v = ev.eval_record(rule, &t.platform, &t.event);
                assert!(
                    !v.is_some_and(|v| v.matched),
                    "{}: {} matched but is not an event",
                    rule.name,
                    t.name
                );
                continue;
            };
            with_variants(&fields, &t.name, event, &mut events);
        }
        if events.is_empty() {
            continue;
        }
        let verdicts: Vec<_> = events
            .iter()
            .map(|(_, e)| ev.eval_detection(det, rule.meta.severity, e))
            .collect();
        let ndjson: String = events
            .iter()
            .map(|(_, e)| {
                elastic_document(&det.source, e)
                    .expect("source has a field table")
                    .to_string()
                    + "\n"
            })
            .collect();
        let docs = dir.path().join(format!("{}.ndjson", det.stem));
        std::fs::write(&docs, ndjson).expect("write docs");
        let mut queries = vec![(format!("{}.eql", det.stem), None)];
        for i in &det.indicators {
            queries.push((
                format!("{}__{}.eql", det.stem, i.name),
                Some(i.name.clone()),
            ));
        }
        for (path, indicator) in queries {
            let Some(f) = r.files.iter().find(|f| f.path == path) else {
                continue;
            };
            let qfile = dir.path().join(&path);
            std::fs::write(&qfile, &f.contents).expect("write query");
            let (ok, out) = run(Command::new(python())
                .arg(validator("eql_eval.py"))
                .arg(&qfile)
                .arg(&docs));
            assert!(ok, "eql_eval.py failed on {path}:\n{out}\n{}", f.contents);
            let got: Vec<bool> = out.lines().map(|l| l == "true").collect();
            assert_eq!(got.len(), events.len(), "{path}: eql_eval output:\n{out}");
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
                        "{}: {path}: `{label}`: detc says {want}, Elastic EQL says {g}",
                        rule.name
                    ));
                }
            }
        }
    }
    (problems, compared)
}

#[test]
fn eql_verdicts_agree_with_detc_on_every_rule_test() {
    let mut problems = Vec::new();
    let mut compared = 0;
    for rule in project_rules() {
        let (p, n) = cross_check(&rule);
        problems.extend(p);
        compared += n;
    }
    assert!(compared > 100, "only {compared} verdicts compared");
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn absent_fields_case_and_operators_agree_with_detc() {
    // Every operator family, `not` over absent fields, `!=`, lists with `all`,
    // wildcard characters in values, cidr through source.ip, companions.
    let body = r#"
    let mutate = verb in ["create", "update"] and not objectRef.subresource == "status"
    let who    = user.username startswith any ["ali", "sys*tem?"] or user.username endswith "ce"
                 or user.username contains "\\" or user.username like "a?i*"
    match mutate and who and not responseStatus.code >= 400 and objectRef.namespace != "kube-system"
          and not objectRef.name cased == "X" and objectRef.resource matches /cron(job)?s|jo.s/
          and sourceIPs cidr any ["10.0.0.0/8", "fd00::/8"] and not objectRef.apiGroup exists == false
          and not (objectRef.subresource == "scale" and userAgent contains "curl"
                   or userAgent == "evil" or (objectRef.apiGroup == "apps" and not objectRef.name == "z"))
    indicator named severity high = objectRef.name in ["x", "y*"] and not userAgent exists
    indicator privileged severity critical = requestObject.spec.containers.securityContext.privileged == true
    indicator weird severity low = objectRef.namespace contains all ["def", "ULT"] and objectRef.name != "a"
"#;
    let body = body.replace(
        "not objectRef.apiGroup exists == false",
        "(objectRef.apiGroup == \"batch\" or not objectRef.apiGroup exists)",
    );
    let privileged = r#"{"kind":"Event","verb":"create","objectRef":{"resource":"jobs","namespace":"default","name":"y*"},"user":{"username":"alice"},"sourceIPs":["10.9.9.9"],"requestObject":{"spec":{"containers":[{"securityContext":{"privileged":true}},{"securityContext":{"privileged":false}}]}}}"#;
    let tests = format!(
        "{}  test \"privileged pod\" on eks expect match with [named, privileged] {privileged}\n  test \"wild user\" on kubernetes expect match {}\n  test \"ipv6\" on kubernetes expect match {}\n",
        std_tests(),
        r#"{"verb":"update","objectRef":{"resource":"CronJobs","namespace":"Default","name":"x","subresource":"scale"},"user":{"username":"SYS*TEM?x"},"sourceIPs":["10.0.0.1","8.8.8.8"]}"#,
        r#"{"verb":"create","objectRef":{"resource":"jobs","namespace":"default","name":"z"},"user":{"username":"a\\b"},"sourceIPs":["fd00::5"],"userAgent":"kubectl"}"#,
    );
    let rule = compile(&k8s_rule("operators", "Operators", &body, &tests));
    let r = render(&rule);
    assert!(
        r.losses.iter().all(|l| l.kind == LossKind::NotApplicable),
        "unexpected losses: {:?}",
        r.losses
    );
    let q = eql_query(file(&r, "operators.eql"));
    assert!(
        q.contains("cidrMatch(source.ip, \"10.0.0.0/8\", \"fd00::/8\")"),
        "{q}"
    );
    assert!(
        q.contains(r#"like~ ("ali*", "sys\\*tem\\?*")"#),
        "wildcards in values are escaped: {q}"
    );
    // companions: severity from the indicator, deterministic ids distinct from the main rule
    let main: toml::Table = file(&r, "operators.toml").parse().expect("toml");
    let comp: toml::Table = file(&r, "operators__privileged.toml")
        .parse()
        .expect("toml");
    assert_eq!(comp["rule"]["severity"].as_str(), Some("critical"));
    assert_eq!(comp["rule"]["risk_score"].as_integer(), Some(99));
    let weird: toml::Table = file(&r, "operators__weird.toml").parse().expect("toml");
    assert_eq!(
        weird["rule"]["severity"].as_str(),
        Some("medium"),
        "an indicator never lowers the severity"
    );
    assert_ne!(
        main["rule"]["rule_id"].as_str(),
        comp["rule"]["rule_id"].as_str()
    );
    assert_eq!(render(&rule).files, r.files, "output is deterministic");
    let (problems, n) = cross_check(&rule);
    assert!(n > 50, "only {n} verdicts compared");
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );

    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &r.files);
    let tomls: Vec<PathBuf> = r
        .files
        .iter()
        .filter(|f| f.path.ends_with(".toml"))
        .map(|f| dir.path().join(&f.path))
        .collect();
    let (ok, out) = run(Command::new(python())
        .arg(validator("toml_check.py"))
        .args(&tomls));
    assert!(ok, "{out}");
}

#[test]
fn azure_rule_agrees_with_detc() {
    let text = r#"rule az {
  id = "0d7c1e52-93a4-4f6b-8c1d-7e2f3a4b5c6d"
  title = "Azure test"
  description = "Test rule."
  author = "detc tests"
  date = 2025-01-01
  status = experimental
  severity = low
  attack = [T1609]
  source azure.activity on [azure] {
    match operationName endswith "/WRITE" and resultType in ["Success", "Succeeded"]
          and callerIpAddress cidr "10.0.0.0/8" and not durationMs >= 1000
  }
  test "write" on azure expect match {"operationName":"microsoft.x/jobs/write","resultType":"succeeded","callerIpAddress":"10.2.3.4","durationMs":5}
  test "slow" on azure expect no match {"operationName":"MICROSOFT.X/JOBS/WRITE","resultType":"Success","callerIpAddress":"10.2.3.4","durationMs":5000}
  test "no duration" on azure expect match {"operationName":"MICROSOFT.X/JOBS/WRITE","resultType":"Success","callerIpAddress":"10.2.3.4"}
}
"#;
    let rule = compile(text);
    let r = render(&rule);
    let q = eql_query(file(&r, "az.eql"));
    assert!(
        q.contains("event.duration >= 1000000000"),
        "durationMs is scaled to ns: {q}"
    );
    let (problems, n) = cross_check(&rule);
    assert!(n >= 9, "{n}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // T1609 alone: its own tactic (Execution) is filed.
    let doc: toml::Table = file(&r, "az.toml").parse().expect("toml");
    let threat = doc["rule"]["threat"].as_array().expect("threat");
    assert_eq!(threat[0]["tactic"]["id"].as_str(), Some("TA0002"));
}

// ------------------------------------------------------------ unsupported constructs

#[test]
fn a_nul_is_never_written_into_an_eql_string() {
    let rule = compile(&k8s_rule(
        "nul",
        "NUL",
        "    match verb == \"create\" and userAgent == \"a\\u{0}b\"",
        &std_tests(),
    ));
    let r = render(&rule);
    assert!(
        r.losses
            .iter()
            .any(|l| l.kind == LossKind::Unsupported && l.reason.contains("U+0000")),
        "{:?}",
        r.losses
    );
    assert!(r.files.iter().all(|f| !f.contents.contains('\0')));
}

#[test]
fn unsupported_fields_and_operators_are_reported() {
    let cases = [
        ("user.groups == \"system:masters\"", "text field"),
        ("requestObject.**.image == \"alpine\"", "any depth"),
        (
            "requestObject.spec.volumes.hostPath.path == \"/\"",
            "flattened",
        ),
        (
            "requestObject.spec.template.spec.containers.image == \"x\"",
            "not mapped",
        ),
        ("objectRef.name == 5", "keyword field"),
        (
            "objectRef.name > 5",
            "numeric comparisons need a numeric field",
        ),
        // Integer fields index a fractional value truncated; boolean fields
        // index "" as false and refuse other text (docs/language.md).
        (
            "requestObject.spec.securityContext.runAsUser startswith \"4\"",
            "truncated toward zero",
        ),
        // `kubernetes.audit` holds integers only (its catalog's `integers`),
        // so only a fractional value in the rule can meet the truncation.
        ("responseStatus.code >= 399.5", "truncated toward zero"),
        ("responseStatus.code == 403.5", "truncated toward zero"),
        (
            "requestObject.spec.hostNetwork == false",
            "empty string as false",
        ),
        (
            "requestObject.spec.hostNetwork != true",
            "empty string as false",
        ),
        (
            "requestObject.spec.hostNetwork == \"true\"",
            "indexes only true",
        ),
        ("requestReceivedTimestamp == \"2024-01-01\"", "date field"),
        ("requestObject.rules exists", "nested"),
    ];
    for (cond, why) in cases {
        // in the main condition: no files for the detection
        let rule = compile(&k8s_rule(
            "unsup",
            "Unsupported",
            &format!("    match verb == \"create\" and {cond}"),
            &std_tests(),
        ));
        let r = render(&rule);
        assert!(
            r.files.is_empty(),
            "{cond}: files written: {:?}",
            r.files.iter().map(|f| &f.path).collect::<Vec<_>>()
        );
        let loss = r
            .losses
            .iter()
            .find(|l| l.kind == LossKind::Unsupported)
            .unwrap_or_else(|| panic!("{cond}: no loss"));
        assert!(
            loss.reason.contains(why),
            "{cond}: reason `{}` should mention `{why}`",
            loss.reason
        );
        // as an indicator: the rule is written, the indicator reported
        let body =
            format!("    match verb == \"create\"\n    indicator bad severity high = {cond}");
        let rule = compile(&k8s_rule("unsup", "Unsupported", &body, &std_tests()));
        let r = render(&rule);
        assert!(r.files.iter().any(|f| f.path == "unsup.toml"));
        assert!(
            !r.files.iter().any(|f| f.path.starts_with("unsup__")),
            "{cond}: companion written"
        );
        assert!(
            r.losses
                .iter()
                .any(|l| l.kind == LossKind::Unsupported && l.construct == "indicator bad"),
            "{cond}"
        );
        assert!(
            file(&r, "unsup.toml").contains("indicator bad"),
            "{cond}: loss not noted in the file"
        );
    }
    // `!=` on an array field has another meaning in Elasticsearch
    let rule = compile(&k8s_rule(
        "ne",
        "Ne",
        "    match verb == \"create\" and user.groups != \"x\"",
        &std_tests(),
    ));
    assert!(render(&rule)
        .losses
        .iter()
        .any(|l| l.kind == LossKind::Unsupported));
}

// ------------------------------------------------------------ hostile values

const HOSTILE: &str = "q\"uo'te\\back\nnl\ttab\r`tick`|pipe$dollar*star?q{brace}#hash\"\"\"triple'''\u{1}\u{7f}\u{85} \u{1F600}\u{2028}\n[rule]\nname = \"pwned\"\n// x */";

/// `s` as a string literal of the rule language.
fn rule_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || (c as u32) > 0x7e => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Every string literal in an EQL query, as eql 1.0.1 parses it.
fn eql_strings(query: &str) -> Vec<String> {
    let code = r#"
import json, sys
import eql
from eql import ast
q = sys.stdin.read()
with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions, eql.parser.skip_optimizations:
    tree = eql.parse_query(q)
out = []
for node in tree:  # iterating a node walks its whole subtree
    if isinstance(node, ast.String):
        out.append(node.value)
print(json.dumps(out))
"#;
    serde_json::from_str(&py(code, query)).expect("json")
}

#[test]
fn hostile_values_round_trip_through_eql_and_toml() {
    let h = rule_str(HOSTILE);
    let body = format!(
        "    match verb == {h} and objectRef.name cased == {h} and objectRef.namespace contains {h}\n          and userAgent != {h} and objectRef.resource matches /a\"b#c@d&e<f>g~h\\.i\\/j k/\n    indicator odd severity high = requestObject.**.image == {h}"
    );
    let text = format!(
        r#"rule hostile {{
  id = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
  title = "Hostile {t}"
  description = {h}
  author = {h}
  date = 2025-01-01
  status = experimental
  severity = high
  attack = [T1053.007]
  references = [{h}]
  false_positives = [{h}]
  runbook = {h}
  tags = [{h}]
  lossy = [elastic]
  source kubernetes.audit on [kubernetes] {{
{body}
  }}
  test "hostile" on kubernetes expect match {ev}
  test "plain" on kubernetes expect no match {EVENT_GET}
}}
"#,
        t = &h[1..h.len() - 1],
        ev = json!({
            "verb": HOSTILE.to_uppercase(),
            "objectRef": {"name": HOSTILE, "namespace": format!("pre{HOSTILE}post"), "resource": "xa\"b#c@d&e<f>g~h.i/j ky"},
            "userAgent": "kubectl"
        }),
    );
    let rule = compile(&text);
    let r = render(&rule);
    let eql = file(&r, "hostile.eql");
    let toml_text = file(&r, "hostile.toml");

    // EQL: parses, and each value comes back as the literal it must be.
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &r.files);
    let (ok, out) = run(Command::new(python())
        .arg(validator("eql_parse.py"))
        .arg(dir.path().join("hostile.eql")));
    assert!(ok, "{out}\n{eql}");
    let strings = eql_strings(&eql_query(eql));
    assert!(
        strings.iter().any(|s| s == HOSTILE),
        "the value is not a literal of the query: {strings:?}"
    );
    let contains = format!("*{}*", wildcard_literal(HOSTILE));
    assert!(
        strings.contains(&contains),
        "the contains pattern is not a literal: {strings:?}"
    );
    let re = lucene_regex("a\"b#c@d&e<f>g~h\\.i\\/j k").expect("regex");
    assert!(strings.contains(&re), "{re:?} not in {strings:?}");

    // TOML: the `toml` crate and Python's tomllib read back every value unchanged.
    let doc: toml::Table = toml_text
        .parse()
        .unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    let rule_t = doc["rule"].as_table().expect("[rule]");
    assert_eq!(
        rule_t["name"].as_str(),
        Some(format!("Hostile {HOSTILE}").as_str())
    );
    assert_eq!(rule_t["description"].as_str(), Some(HOSTILE));
    assert_eq!(rule_t["note"].as_str(), Some(HOSTILE));
    assert_eq!(
        rule_t["author"].as_array().expect("author")[0].as_str(),
        Some(HOSTILE)
    );
    assert_eq!(
        rule_t["references"].as_array().expect("references")[0].as_str(),
        Some(HOSTILE)
    );
    assert_eq!(
        rule_t["false_positives"].as_array().expect("fp")[0].as_str(),
        Some(HOSTILE)
    );
    assert_eq!(
        rule_t["query"].as_str().map(str::trim_end),
        Some(eql_query(eql).as_str())
    );
    assert_eq!(
        doc.keys().collect::<Vec<_>>(),
        ["metadata", "rule"],
        "no injected tables"
    );
    let py_doc: Json = serde_json::from_str(&py(
        "import sys, json, tomllib; d = tomllib.loads(sys.stdin.read()); print(json.dumps(d['rule']))",
        toml_text,
    ))
    .expect("json");
    assert_eq!(py_doc["description"].as_str(), Some(HOSTILE));
    assert_eq!(
        py_doc["query"].as_str().map(str::trim_end),
        Some(eql_query(eql).as_str())
    );
    // The notes (the unsupported indicator names the value) stay comments.
    let comments: Vec<&str> = toml_text
        .lines()
        .chain(eql.lines())
        .filter(|l| l.starts_with('#') || l.starts_with("//"))
        .collect();
    assert!(
        comments.iter().any(|l| l.contains("indicator odd")),
        "the loss is not noted"
    );
    for line in comments {
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "raw control character in comment {line:?}"
        );
    }
    assert!(r.losses.iter().any(|l| l.construct == "indicator odd"));

    // And the query means what the rule means on the rule's own events.
    let (problems, _) = cross_check(&rule);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------ dialect pieces

#[test]
fn lucene_regexes_search_like_the_language() {
    let patterns = [
        "alpine|busybox",
        "(curl|wget)",
        "a[0-9]{2,3}b",
        "x\\.y",
        "[^a-z]+",
        "privileged.*true",
        "a\"b#c@d&e<f>g~h",
        "[a\\-z\\]]x",
        "\\/var\\/run\\/docker\\.sock|\\/proc|\\/sys",
        "(a|)b",
        "x{2}y+z?",
        "[.]",
    ];
    let subjects = [
        "alpine:3",
        "my-busybox",
        "CURL",
        "a12b",
        "a1b",
        "x.y",
        "xzy",
        "ABC",
        "abc",
        "privileged: true",
        "privileged\ntrue",
        "a\"b#c@d&e<f>g~h",
        "-",
        "]x",
        "/var/run/docker.sock",
        "/proc/1",
        "b",
        "xxyyz",
        "a",
        "",
        ".",
        "\n",
    ];
    let mut cases = Vec::new();
    for p in patterns {
        let lucene = lucene_regex(p).expect(p);
        let rust = regex::RegexBuilder::new(p)
            .case_insensitive(true)
            .build()
            .expect(p);
        for s in subjects {
            cases.push(json!({"p": p, "lucene": lucene, "s": s, "want": rust.is_match(s)}));
        }
    }
    // Python's re reads the Lucene form the way Lucene does for this subset (eql_eval.py uses it too).
    let code = r#"
import json, re, sys
bad = []
for c in json.loads(sys.stdin.read()):
    got = re.fullmatch(c["lucene"], c["s"], re.DOTALL | re.IGNORECASE) is not None
    if got != c["want"]:
        bad.append(c)
print(json.dumps(bad))
"#;
    let bad: Json = serde_json::from_str(&py(code, &Json::Array(cases).to_string())).expect("json");
    assert_eq!(
        bad,
        json!([]),
        "Lucene forms that disagree with the language"
    );
}

#[test]
fn field_names_are_quoted_for_eql() {
    let names = [
        "kubernetes.audit.verb",
        "kubernetes.audit.annotations.authorization_k8s_io/decision",
        "@timestamp",
        "a.in.b",
        "a.my-field.6x",
    ];
    let code = r#"
import json, sys
import eql
out = []
for f in json.loads(sys.stdin.read()):
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
        q = eql.parse_query("any where " + f + " == \"x\"")
    fld = q.first.query.left
    out.append(".".join([fld.base] + [str(p) for p in fld.path]))
print(json.dumps(out))
"#;
    let quoted: Vec<String> = names.iter().map(|n| eql_field(n).expect(n)).collect();
    let back: Vec<String> =
        serde_json::from_str(&py(code, &json!(quoted).to_string())).expect("json");
    assert_eq!(back, names, "quoted: {quoted:?}");
    assert!(eql_field("a.b`c").is_err());
}

#[test]
fn elastic_documents_follow_the_mapping() {
    let event = json!({
        "verb": "create",
        "sourceIPs": ["10.0.0.1", "fd00::1"],
        "responseStatus": {"code": "201"},
        "annotations": {"authorization.k8s.io/decision": "allow"},
        "requestObject": {"spec": {"containers": [{"image": "a", "securityContext": {"privileged": "true"}}]}}
    });
    let doc = elastic_document("kubernetes.audit", &event).expect("doc");
    assert_eq!(doc["data_stream"]["dataset"], "kubernetes.audit_logs");
    assert_eq!(doc["kubernetes"]["audit"]["verb"], "create");
    assert_eq!(doc["kubernetes"]["audit"]["responseStatus"]["code"], 201);
    assert_eq!(
        doc["kubernetes"]["audit"]["annotations"]["authorization_k8s_io/decision"],
        "allow"
    );
    assert_eq!(doc["source"]["ip"], json!(["10.0.0.1", "fd00::1"]));
    assert_eq!(
        doc["kubernetes"]["audit"]["requestObject"]["spec"]["containers"]["securityContext"]
            ["privileged"],
        true
    );
    let bad_ip = elastic_document(
        "kubernetes.audit",
        &json!({"sourceIPs": ["10.0.0.1", "localhost"]}),
    )
    .expect("doc");
    assert!(
        bad_ip.get("source").is_none(),
        "the pipeline's ip convert fails as a whole"
    );
    let az = elastic_document(
        "azure.activity",
        &json!({"durationMs": 3, "callerIpAddress": "1.2.3.4"}),
    )
    .expect("doc");
    assert_eq!(az["event"]["duration"], 3_000_000);
    assert_eq!(az["source"]["ip"], "1.2.3.4");
    assert!(elastic_document("no.such.source", &event).is_none());
    assert!(elastic::field_table("kubernetes.audit").is_some());
}

#[test]
fn schedules_become_from_interval_to() {
    let body = "    match verb == \"create\"\n    output { schedule = { cron = \"*/15 * * * *\", earliest = \"-20m\", latest = \"now\" } }";
    let r = render(&compile(&k8s_rule("sched", "Sched", body, &std_tests())));
    let doc: toml::Table = file(&r, "sched.toml").parse().expect("toml");
    assert_eq!(doc["rule"]["interval"].as_str(), Some("15m"));
    assert_eq!(doc["rule"]["from"].as_str(), Some("now-20m"));
    assert!(doc["rule"].get("to").is_none());
    assert!(
        !r.losses
            .iter()
            .any(|l| l.construct.starts_with("output.schedule")),
        "{:?}",
        r.losses
    );
    let body = "    match verb == \"create\"\n    output { schedule = { cron = \"5 4 * * 1\", earliest = \"-1d@d\", latest = \"-1h\" } }";
    let r = render(&compile(&k8s_rule("sched", "Sched", body, &std_tests())));
    assert!(
        r.losses
            .iter()
            .any(|l| l.construct == "output.schedule.cron"),
        "{:?}",
        r.losses
    );
    let doc: toml::Table = file(&r, "sched.toml").parse().expect("toml");
    assert!(doc["rule"]["from"]
        .as_str()
        .is_some_and(|f| f.starts_with("now-")));
}

/// What this target narrows an expression to.
const NARROW: Narrow = elastic::narrowed;

// ------------------------------------------------------------ GKE: the GCP integration form

/// The stored `gcp.audit` documents of tests/fixtures/stored/elastic/gcp_audit
/// (see its PROVENANCE.md): (name, LogEntry, document, the flagship's verdict).
fn gcp_audit_fixtures() -> Vec<(String, Json, Json, bool)> {
    let dir = common::root().join("tests/fixtures/stored/elastic/gcp_audit");
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let v: Json = serde_json::from_str(&std::fs::read_to_string(&p).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out.push((
            p.file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            v["log_entry"].clone(),
            v["document"].clone(),
            v["expect_match"].as_bool().expect("expect_match"),
        ));
    }
    assert!(out.len() >= 10, "only {} fixtures", out.len());
    out
}

/// Variants of a LogEntry over the shapes detc's GKE normalisation tells apart.
fn gke_variants(entry: &Json) -> Vec<Json> {
    let mut out = Vec::new();
    let set = common::with_value;
    for m in [
        "io.k8s.batch.v1.jobs.create",
        "io.k8s.batch.v1.cronjobs.patch",
        "io.k8s.batch.v1beta1.cronjobs.update",
        "io.k8s.BATCH.v1.JOBS.DELETE",
        "IO.K8S.batch.v1.jobs.create",
        "io.k8s.batch.V1.jobs.create",
        "io.k8s.core.v1.jobs.create",
        "io.k8s.v1.jobs.create",
        "io.k8s.batch.v1.v2.jobs.create",
        "io.k8s.batch.v1.x.jobs.create",
        "io.k8s.batch.v1.jobs.status.patch",
        "io.k8s.batch.v1.jobs.get",
        "io.k8s.batch.v1.jobs",
        "io.k8s.apps.v1.jobs.create",
        "",
    ] {
        out.push(set(entry, &["protoPayload", "methodName"], json!(m)));
    }
    for n in [
        "batch/v1/namespaces/kube-system/jobs/x",
        "batch/v1/namespaces/KUBE-SYSTEM/jobs/x",
        "batch/v1/namespaces/ns/jobs/x/status",
        "batch/v1/namespaces/ns/namespaces/kube-system/jobs/x",
        "",
    ] {
        out.push(set(entry, &["protoPayload", "resourceName"], json!(n)));
    }
    for u in [
        "system:serviceaccount:kube-system:job-controller",
        "system:kube-controller-manager",
        "eks:x",
        "masterclient",
        "",
    ] {
        let e = set(
            entry,
            &["protoPayload", "resourceName"],
            json!("batch/v1/namespaces/kube-system/jobs/x"),
        );
        out.push(set(
            &e,
            &["protoPayload", "authenticationInfo", "principalEmail"],
            json!(u),
        ));
    }
    for c in [0, 1, 5, 7, 10, 16, 99] {
        out.push(set(
            entry,
            &["protoPayload", "status"],
            json!({ "code": c }),
        ));
    }
    out.push(set(entry, &["protoPayload", "status"], json!({})));
    out.push(set(
        entry,
        &["protoPayload", "serviceName"],
        json!("compute.googleapis.com"),
    ));
    for ua in ["curl/8.4.0", "python-requests/2.31", "kubectl/v1.30.2"] {
        out.push(set(
            entry,
            &["protoPayload", "requestMetadata", "callerSuppliedUserAgent"],
            json!(ua),
        ));
    }
    out
}

#[test]
fn the_flagship_fires_on_gke_through_the_gcp_integration() {
    let rules = project_rules();
    let flagship = rules
        .iter()
        .find(|r| r.name == "k8s_cronjob_job_write")
        .expect("flagship");
    let r = render(flagship);
    let det = &flagship.detections[0];
    assert!(
        !r.losses
            .iter()
            .any(|l| l.construct.starts_with("platform ")),
        "every platform is served: {:?}",
        r.losses
    );
    for (p, file) in [
        ("kubernetes", "k8s_cronjob_job_write.toml"),
        ("eks", "k8s_cronjob_job_write.toml"),
        ("aks", "k8s_cronjob_job_write.toml"),
        ("gke", "k8s_cronjob_job_write__gcp_audit.toml"),
        ("azure", "k8s_cronjob_job_write_azure_activity.toml"),
    ] {
        assert!(
            r.coverage.iter().any(|c| c.platform == p && c.file == file),
            "{p} -> {file}: {:?}",
            r.coverage
        );
    }
    let main: toml::Table = file(&r, "k8s_cronjob_job_write.toml")
        .parse()
        .expect("toml");
    let gke: toml::Table = file(&r, "k8s_cronjob_job_write__gcp_audit.toml")
        .parse()
        .expect("toml");
    assert_eq!(
        gke["rule"]["index"].as_array().expect("index")[0].as_str(),
        Some("logs-gcp.audit-*")
    );
    assert_eq!(
        gke["metadata"]["integration"]
            .as_array()
            .expect("integration")[0]
            .as_str(),
        Some("gcp")
    );
    assert_ne!(gke["rule"]["rule_id"], main["rule"]["rule_id"]);
    let setup = |t: &toml::Table| t["rule"]["setup"].as_str().expect("setup").to_string();
    for input in ["filestream", "aws-cloudwatch", "azure-eventhub"] {
        assert!(setup(&main).contains(input), "{input}: {}", setup(&main));
    }
    assert!(setup(&gke).contains("gcp-pubsub"), "{}", setup(&gke));
    assert!(
        !r.losses
            .iter()
            .any(|l| l.construct.contains("(gcp_audit form)") && l.construct.contains("narrowed")),
        "the GKE form narrows nothing here: {:?}",
        r.losses
    );

    // Every GKE query of the flagship on the stored documents and on the
    // pipeline-shaped documents of variants, against detc's verdict on the
    // normalised event.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ev = Evaluator::new();
    let fixtures = gcp_audit_fixtures();
    // (label, LogEntry, document)
    let mut cases: Vec<(String, Json, Json)> = Vec::new();
    for (name, entry, doc, expect) in &fixtures {
        let canonical = normalize("gke", entry)
            .map(|e| ev.eval_detection(det, flagship.meta.severity, &e).matched)
            .unwrap_or(false);
        assert_eq!(canonical, *expect, "{name}: detc's verdict on the LogEntry");
        cases.push((name.clone(), entry.clone(), doc.clone()));
        for (i, v) in gke_variants(entry).into_iter().enumerate() {
            let d = elastic_document("gcp.audit", &v).expect("gcp.audit table");
            cases.push((format!("{name} variant {i}"), v, d));
        }
    }
    let ndjson: String = cases.iter().map(|(_, _, d)| format!("{d}\n")).collect();
    let docs = dir.path().join("gcp_audit.ndjson");
    std::fs::write(&docs, ndjson).expect("write docs");
    let mut queries = vec![("k8s_cronjob_job_write__gcp_audit.eql".to_string(), None)];
    for ind in &det.indicators {
        let path = format!("k8s_cronjob_job_write__gcp_audit__{}.eql", ind.name);
        if r.files.iter().any(|f| f.path == path) {
            queries.push((path, Some(ind.name.clone())));
        }
    }
    assert!(queries.len() >= 3, "the GKE companions: {queries:?}");
    let mut problems = Vec::new();
    let mut matched = 0;
    for (path, indicator) in &queries {
        let qfile = dir.path().join(path);
        std::fs::write(&qfile, file(&r, path)).expect("write query");
        let (ok, out) = run(Command::new(python())
            .arg(validator("eql_eval.py"))
            .arg(&qfile)
            .arg(&docs));
        assert!(ok, "eql_eval.py failed on {path}:\n{out}");
        let got: Vec<bool> = out.lines().map(|l| l == "true").collect();
        assert_eq!(got.len(), cases.len(), "{path}: {out}");
        for ((label, entry, _), g) in cases.iter().zip(got) {
            let want = normalize("gke", entry).is_some_and(|e| {
                let v = ev.eval_detection(det, flagship.meta.severity, &e);
                v.matched && indicator.as_ref().is_none_or(|i| v.indicators.contains(i))
            });
            matched += usize::from(g);
            if want != g {
                problems.push(format!("{path}: {label}: detc {want}, EQL {g}"));
            }
        }
    }
    assert!(matched > 20, "only {matched} matches");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `kubernetes.audit` holds integers only, so every comparison of an
/// integer-mapped field with a whole number is exact in Elastic (nothing to
/// truncate), and a test event with a fraction is refused by the checker.
#[test]
fn whole_numbers_on_integer_fields_are_written() {
    for cond in [
        "responseStatus.code == 403",
        "responseStatus.code != 403",
        "responseStatus.code > 399",
        "requestObject.spec.securityContext.runAsUser == 0",
    ] {
        let rule = compile(&k8s_rule(
            "whole",
            "Whole",
            &format!("    match verb == \"create\" and {cond}"),
            &std_tests(),
        ));
        let r = render(&rule);
        assert!(
            r.files.iter().any(|f| f.path.ends_with(".eql"))
                && r.losses.iter().all(|l| !l.reason.contains("truncated")),
            "{cond}: {:?}",
            r.losses
        );
    }
}
