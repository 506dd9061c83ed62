//! The language's semantics, one line per case: a condition, an event and
//! the verdict the reference evaluator must give (docs/language.md).

use detc::eval::Evaluator;
use serde_json::{json, Value};
use std::path::Path;

fn verdict(condition: &str, event: &Value) -> bool {
    let text = format!(
        r#"rule r {{
  id = "00000000-0000-4000-8000-000000000001"
  title = "t"
  description = "d"
  author = "a"
  date = 2024-01-01
  status = test
  severity = low
  source kubernetes.audit on [kubernetes] {{ match {condition} }}
  test "m" on kubernetes expect match {{}}
  test "n" on kubernetes expect no match {{}}
}}"#
    );
    let rules = detc::load::compile_text("case.rule", &text, Path::new("."))
        .unwrap_or_else(|r| panic!("{condition}: {r}"));
    let det = &rules[0].detections[0];
    Evaluator::new()
        .eval_detection(det, rules[0].meta.severity, event)
        .matched
}

#[test]
fn semantics_table() {
    let ev = json!({
        "verb": "Create",
        "user": {"username": "system:serviceaccount:kube-system:cronjob-controller", "groups": ["system:masters", "dev"]},
        "objectRef": {"resource": "cronjobs", "namespace": null, "name": "a*b?c\\d"},
        "responseStatus": {"code": 201},
        "sourceIPs": ["10.1.2.3", "fd00::1"],
        "stage": "403",
        "requestObject": {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"image": "Alpine:3.19", "securityContext": {"privileged": true}}],
            "hostNetwork": "TRUE", "hostPID": "true", "hostIPC": ""
        }}}}}}
    });
    let cases: &[(&str, bool)] = &[
        // Case-insensitive by default; `cased` is exact.
        (r#"verb == "create""#, true),
        (r#"verb cased == "create""#, false),
        (r#"verb cased == "Create""#, true),
        (r#"verb in ["get", "CREATE"]"#, true),
        // An absent or null field satisfies no comparison; `not` of one is true.
        (r#"userAgent == "x""#, false),
        (r#"not userAgent == "x""#, true),
        (r#"userAgent != "x""#, false),
        (r#"objectRef.namespace == "x""#, false),
        (r#"not objectRef.namespace exists"#, true),
        (r#"objectRef.namespace == null"#, true),
        (r#"objectRef.name != null"#, true),
        (r#"verb != "get""#, true),
        (r#"verb != "CREATE""#, false),
        // Arrays match when any element does; `all` needs every value.
        (r#"user.groups == "dev""#, true),
        (r#"user.groups contains all ["masters", "dev"]"#, true),
        (r#"user.groups contains all ["masters", "ops"]"#, false),
        (r#"user.groups startswith any ["ops", "system:"]"#, true),
        // `**` reaches a key at any depth, through arrays.
        (r#"requestObject.**.image startswith "alpine""#, true),
        (r#"requestObject.**.privileged == true"#, true),
        // Booleans: JSON booleans and exactly the strings "true"/"false";
        // "TRUE" and "" are no boolean (neither equal nor unequal).
        (r#"requestObject.**.privileged != false"#, true),
        (r#"requestObject.**.hostPID == true"#, true),
        (r#"requestObject.**.hostNetwork == true"#, false),
        (r#"requestObject.**.hostNetwork != true"#, false),
        (r#"requestObject.**.hostNetwork == false"#, false),
        (r#"requestObject.**.hostIPC == false"#, false),
        (r#"requestObject.**.hostIPC != true"#, false),
        (r#"requestObject.**.hostNetwork == "true""#, true),
        (r#"requestObject.**.missing exists"#, false),
        (
            r#"requestObject.spec.**.spec.containers.image endswith ":3.19""#,
            true,
        ),
        // like: whole-value glob, escapes make wildcards literal.
        (r#"objectRef.name like "a\\*b\\?c\\\\d""#, true),
        (r#"objectRef.name like "A*D""#, true),
        (r#"objectRef.name cased like "A*D""#, false),
        (r#"objectRef.name like "a\\*b""#, false),
        (r#"objectRef.resource like "cron?obs""#, true),
        // matches: substring search in the portable subset, case-insensitive.
        (r#"requestObject.**.image matches /pine:[0-9]/"#, true),
        (r#"requestObject.**.image cased matches /alpine/"#, false),
        (r#"verb matches /(get|list)/"#, false),
        // Numbers compare numerically, numeric strings as numbers.
        (
            r#"responseStatus.code >= 200 and responseStatus.code < 300"#,
            true,
        ),
        (r#"responseStatus.code == 201.0"#, true),
        (r#"stage > 400"#, true),
        (r#"verb > 1"#, false),
        // cidr over IPv4 and IPv6 elements.
        (r#"sourceIPs cidr "10.0.0.0/8""#, true),
        (r#"sourceIPs cidr "fd00::/8""#, true),
        (r#"sourceIPs cidr "192.168.0.0/16""#, false),
        // Precedence: not > and > or.
        (
            r#"verb == "get" and verb == "create" or objectRef.resource == "cronjobs""#,
            true,
        ),
        (
            r#"verb == "get" and (verb == "create" or objectRef.resource == "cronjobs")"#,
            false,
        ),
        (r#"not verb == "get" and verb == "create""#, true),
    ];
    let mut wrong = Vec::new();
    for (condition, want) in cases {
        if verdict(condition, &ev) != *want {
            wrong.push(format!("{condition}: expected {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A `like` glob the evaluator could not build would match nothing in detc
/// and something in every target (Python's `re` has no size limit): the
/// checker refuses it where it is written.
#[test]
fn a_glob_too_large_to_evaluate_is_refused() {
    let compile = |glob: &str| {
        let text = format!(
            r#"rule r {{
  id = "00000000-0000-4000-8000-000000000001"
  title = "t"
  description = "d"
  author = "a"
  date = 2024-01-01
  status = test
  severity = low
  source kubernetes.audit on [kubernetes] {{ match userAgent like "{glob}" }}
  test "m" on kubernetes expect match {{ "userAgent": "{glob}" }}
  test "n" on kubernetes expect no match {{}}
}}"#
        );
        detc::load::compile_text("case.rule", &text, Path::new("."))
    };
    assert!(compile(&"?".repeat(100)).is_ok());
    let err = compile(&"?".repeat(40_000))
        .expect_err("too large")
        .to_string();
    assert!(
        err.contains("the glob's regex is over the 4194304-byte limit detc evaluates"),
        "{err}"
    );
    assert!(err.contains("case.rule:9:"), "{err}");
}
