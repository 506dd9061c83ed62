//! The Splunk backend: every rule through Splunk's own contentctl 5.6.2,
//! seed 003's search reproduced, SPL quoting read back by a small SPL
//! tokenizer, and the search-term / `| where` dialects one feature at a time.

use detc::backend::splunk::Splunk;
use detc::backend::{Backend, LossKind, Rendered, Target};
use detc::ir::Rule;
use std::path::Path;
use std::process::Command;

mod common;
use common::{project_rules, root, venv_bin};

fn render(rule: &Rule) -> Rendered {
    detc::build::render(rule, Target::Splunk)
        .unwrap_or_else(|e| panic!("splunk render of {} failed: {e}", rule.name))
}

fn file(r: &Rendered, pred: impl Fn(&str) -> bool) -> Vec<&str> {
    r.files
        .iter()
        .filter(|f| pred(&f.path))
        .map(|f| f.contents.as_str())
        .collect()
}

/// The `search` of every detection YAML, read back with serde_yaml.
fn searches(r: &Rendered) -> Vec<String> {
    file(r, |p| p.starts_with("detections/"))
        .into_iter()
        .map(|y| {
            let doc: serde_yaml::Value = serde_yaml::from_str(y).expect("detection YAML parses");
            doc["search"]
                .as_str()
                .expect("search is a string")
                .to_string()
        })
        .collect()
}

/// Write rendered rules plus the shared macros into `dir` (a `dist/splunk`).
fn write_dist(dir: &Path, rules: &[Rule]) {
    let mut files = Vec::new();
    for r in rules {
        files.extend(render(r).files);
    }
    let refs: Vec<&Rule> = rules.iter().collect();
    files.extend(Splunk.shared(&refs).expect("shared macros"));
    for f in files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        assert!(!path.exists(), "two outputs write {}", f.path);
        std::fs::write(path, f.contents).unwrap();
    }
}

/// Run the real validator (contentctl validate + build + schedule check).
fn contentctl(dir: &Path) {
    venv_bin("splunk", "contentctl");
    let out = Command::new(root().join("tests/validators/contentctl.sh"))
        .arg(dir)
        .output()
        .expect("run tests/validators/contentctl.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "contentctl rejected {}:\n{text}",
        dir.display()
    );
    assert!(text.contains("contentctl: OK"), "{text}");
}

// ------------------------------------------------------------ SPL reading

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A double-quoted string, decoded (`\\` and `\"`).
    Str(String),
    /// A single-quoted field name (eval syntax).
    FieldRef(String),
    /// A `` `macro` `` call.
    Macro(String),
    /// A ```` ```comment``` ````.
    Comment(String),
    Word(String),
    Op(String),
}

/// A small SPL tokenizer: strings, eval field names, macros, comments,
/// words, and operators. Unbalanced quotes, backticks or parentheses are errors.
fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let mut depth = 0i32;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let mut v = String::new();
            i += 1;
            loop {
                match cs.get(i) {
                    None => return Err(format!("unterminated string in {s}")),
                    Some('"') => break,
                    Some('\\') => {
                        match cs.get(i + 1) {
                            Some('\\') => v.push('\\'),
                            Some('"') => v.push('"'),
                            Some(n) => {
                                v.push('\\');
                                v.push(*n);
                            }
                            None => return Err("string ends in a backslash".into()),
                        }
                        i += 2;
                        continue;
                    }
                    Some(ch) => v.push(*ch),
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(v));
        } else if c == '\'' {
            let end = cs[i + 1..]
                .iter()
                .position(|x| *x == '\'')
                .ok_or("unterminated field name")?;
            out.push(Tok::FieldRef(cs[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if s[s.char_indices().nth(i).unwrap().0..].starts_with("```") {
            let rest: String = cs[i + 3..].iter().collect();
            let end = rest.find("```").ok_or("unterminated comment")?;
            out.push(Tok::Comment(rest[..end].to_string()));
            i += 3 + rest[..end].chars().count() + 3;
        } else if c == '`' {
            let end = cs[i + 1..]
                .iter()
                .position(|x| *x == '`')
                .ok_or("unterminated macro")?;
            let name: String = cs[i + 1..i + 1 + end].iter().collect();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("bad macro call `{name}`"));
            }
            out.push(Tok::Macro(name));
            i += end + 2;
        } else if "()|,".contains(c) {
            depth += match c {
                '(' => 1,
                ')' => -1,
                _ => 0,
            };
            if depth < 0 {
                return Err(format!("unbalanced `)` in {s}"));
            }
            out.push(Tok::Op(c.to_string()));
            i += 1;
        } else if "=!<>".contains(c) {
            let mut op = c.to_string();
            if cs.get(i + 1) == Some(&'=') {
                op.push('=');
                i += 1;
            }
            out.push(Tok::Op(op));
            i += 1;
        } else {
            let start = i;
            while i < cs.len() && !cs[i].is_whitespace() && !"\"'`()|,=!<>".contains(cs[i]) {
                i += 1;
            }
            out.push(Tok::Word(cs[start..i].iter().collect()));
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in {s}"));
    }
    Ok(out)
}

/// Compare seed and generated SPL modulo whitespace, comments, and quotes
/// around plain names and values (`"objectRef.resource"` = `objectRef.resource`).
fn normalise(s: &str) -> Vec<Tok> {
    let plain = |v: &str| {
        !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.{}:-/".contains(c))
    };
    tokenize(s)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|t| !matches!(t, Tok::Comment(_)))
        .map(|t| match t {
            Tok::Str(v) if plain(&v) => Tok::Word(v),
            t => t,
        })
        .collect()
}

/// The columns the search produces: `stats` outputs (`count`, `as` names,
/// `by` fields) after `rename`, or none when there is no `stats`.
fn produced_columns(search: &str) -> Option<Vec<String>> {
    let toks = tokenize(search).unwrap();
    let stages: Vec<&[Tok]> = toks.split(|t| *t == Tok::Op("|".into())).collect();
    let word = |t: &Tok| match t {
        Tok::Word(w) | Tok::Str(w) => w.clone(),
        other => panic!("expected a name, found {other:?}"),
    };
    let stats = stages
        .iter()
        .find(|s| s.first() == Some(&Tok::Word("stats".into())))?;
    let mut cols = vec!["count".to_string()];
    let mut i = 1;
    while i < stats.len() {
        match &stats[i] {
            Tok::Word(w) if w == "as" => {
                cols.push(word(&stats[i + 1]));
                i += 2;
            }
            Tok::Word(w) if w == "by" => {
                cols.extend(stats[i + 1..].iter().map(word));
                break;
            }
            _ => i += 1,
        }
    }
    if let Some(r) = stages
        .iter()
        .find(|s| s.first() == Some(&Tok::Word("rename".into())))
    {
        for pair in r[1..].split(|t| *t == Tok::Op(",".into())) {
            let (from, to) = (word(&pair[0]), word(&pair[2]));
            assert_eq!(pair[1], Tok::Word("as".into()));
            let at = cols
                .iter()
                .position(|c| *c == from)
                .unwrap_or_else(|| panic!("rename of {from}, not a column: {search}"));
            cols[at] = to;
        }
    }
    Some(cols)
}

// ---------------------------------------------------------- rule helpers

/// A string literal of the rule language.
fn rule_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if c.is_control() => o.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A one-source rule around `body` (lets, match, indicators, output).
fn rule_text(n: u32, title: &str, body: &str, matching: &serde_json::Value) -> String {
    format!(
        r#"rule splunk_case_{n} {{
  id = "00000000-0000-4000-8000-{n:012x}"
  title = {title}
  description = "A test rule."
  author = "tests"
  date = 2024-01-01
  status = test
  severity = medium
  attack = [T1053.007]
  source kubernetes.audit on [kubernetes] {{
{body}
  }}
  test "hit" on kubernetes expect match {matching}
  test "miss" on kubernetes expect no match {{ "verb": "watch", "kind": "Event" }}
}}
"#,
        title = rule_str(title)
    )
}

fn compile(text: &str) -> Rule {
    let mut rules = detc::load::compile_text("case.rule", text, root())
        .unwrap_or_else(|r| panic!("{r}\n{text}"));
    rules.remove(0)
}

fn one(n: u32, body: &str) -> (Rule, Rendered) {
    let rule = compile(&rule_text(
        n,
        &format!("Splunk Case {n}"),
        body,
        &serde_json::json!({ "verb": "create" }),
    ));
    let r = render(&rule);
    (rule, r)
}

fn search_of(body: &str) -> (String, Rendered) {
    let (_, r) = one(1, body);
    let s = searches(&r).remove(0);
    (s, r)
}

fn first_stage(search: &str) -> &str {
    search.split(" | ").next().unwrap()
}

fn where_stage(search: &str) -> Option<&str> {
    search.split(" | ").find(|s| s.starts_with("where "))
}

// ------------------------------------------------------------ the tests

#[test]
fn every_rule_passes_contentctl() {
    let rules = project_rules();
    assert!(rules.len() >= 6, "expected the flagship and the seed ports");
    let dir = tempfile::tempdir().unwrap();
    write_dist(dir.path(), &rules);
    contentctl(dir.path());
}

#[test]
fn every_generated_search_is_well_formed_and_feeds_its_alert() {
    for rule in project_rules() {
        let r = render(&rule);
        for y in file(&r, |p| p.starts_with("detections/")) {
            let doc: serde_yaml::Value = serde_yaml::from_str(y).unwrap();
            let search = doc["search"].as_str().unwrap();
            let toks = tokenize(search).unwrap_or_else(|e| panic!("{}: {e}", rule.name));
            let macros: Vec<&str> = toks
                .iter()
                .filter_map(|t| match t {
                    Tok::Macro(m) => Some(m.as_str()),
                    _ => None,
                })
                .collect();
            let name = doc["name"].as_str().unwrap();
            let filter = format!("{}_filter", detc::backend::splunk::name_stem(name));
            assert_eq!(macros.len(), 2, "{search}");
            assert_eq!(macros[1], filter, "the last stage is the filter macro");
            assert!(r
                .files
                .iter()
                .any(|f| f.path == format!("macros/{filter}.yml")));
            // Every field the alert names is a column of the final results.
            let Some(cols) = produced_columns(search) else {
                continue;
            };
            let mut needed: Vec<String> = Vec::new();
            if let Some(rba) = doc.get("rba") {
                for o in rba["risk_objects"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .chain(rba["threat_objects"].as_sequence().unwrap())
                {
                    needed.push(o["field"].as_str().unwrap().to_string());
                }
                needed.extend(dollar_fields(rba["message"].as_str().unwrap()));
            }
            let notable = &doc["deployment"]["alert_action"]["notable"];
            needed.extend(dollar_fields(notable["rule_title"].as_str().unwrap()));
            for f in notable["nes_fields"].as_sequence().unwrap() {
                needed.push(f.as_str().unwrap().to_string());
            }
            if let Some(t) = doc["tags"].get("throttling") {
                for f in t["fields"].as_sequence().unwrap() {
                    needed.push(f.as_str().unwrap().to_string());
                }
            }
            for n in needed {
                assert!(
                    cols.contains(&n),
                    "{}: `{n}` is not produced by the search (columns {cols:?}): {search}",
                    rule.name
                );
            }
        }
        for spl in file(&r, |p| p.ends_with(".spl")) {
            tokenize(spl).unwrap_or_else(|e| panic!("{}: {e}", rule.name));
        }
    }
}

fn dollar_fields(s: &str) -> Vec<String> {
    s.split('$')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn seed_003_search_is_reproduced() {
    let path = root().join("rules/seeds/seed_003_kubernetes_cron_job_creation.rule");
    assert!(
        path.exists(),
        "{} is missing: the seed 003 port is part of the project",
        path.display()
    );
    let rule = detc::load::compile_path(&path)
        .unwrap_or_else(|r| panic!("{r}"))
        .remove(0);
    let r = render(&rule);
    let spl = file(&r, |p| p.ends_with(".spl"));
    assert_eq!(spl.len(), 1);
    // Seed 003 as published (splunk/security_content, version 2).
    let seed = "`kube_audit` verb=create \"objectRef.resource\"=cronjobs
| fillnull
| stats count values(user.groups{}) as user_groups by kind objectRef.name objectRef.namespace objectRef.resource requestObject.kind requestObject.spec.schedule requestObject.spec.jobTemplate.spec.template.spec.containers{}.image responseStatus.code sourceIPs{} stage user.username userAgent verb
| rename sourceIPs{} as src_ip, user.username as user
| `kubernetes_cron_job_creation_filter`";
    assert_eq!(
        normalise(spl[0]),
        normalise(seed),
        "\n{}\n---\n{seed}",
        spl[0]
    );
    assert_eq!(normalise(&searches(&r)[0]), normalise(seed));
    // The tokenizer does tell the difference.
    assert_ne!(
        normalise(seed),
        normalise(&seed.replace("verb=create", "verb!=create"))
    );
    assert_ne!(
        normalise(seed),
        normalise(&seed.replace("sourceIPs{} as", "sourceIPs as"))
    );
}

/// Values that stress every quoting rule of SPL, YAML and contentctl.
const HOSTILE: &[&str] = &[
    "plain value",
    "a\"b",
    "back\\slash",
    "trailing\\",
    "\\\"",
    "pipe | search * ",
    "star*star",
    "`macro`",
    "tick`s",
    "$user$ and $",
    "(paren) = [x] {y}",
    "new\nline",
    "tab\tand\r",
    "\u{1}\u{7f}ctl",
    "'single' \"\"\"triple\"\"\" #hash",
    "%name% 100%",
    "ünïcødé 😀 astral",
    "```comment```",
    "line\u{2028}sep\u{85}nel\u{feff}bom: x",
];

/// Decode the SPL string in `match('f', "<re>")` calls of a where clause.
fn match_regexes(where_clause: &str) -> Vec<String> {
    let toks = tokenize(where_clause).unwrap();
    toks.windows(5)
        .filter_map(|w| match w {
            [Tok::Word(f), Tok::Op(p), Tok::FieldRef(_), Tok::Op(c), Tok::Str(re)]
                if f == "match" && p == "(" && c == "," =>
            {
                Some(re.clone())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn hostile_values_round_trip() {
    for (i, v) in HOSTILE.iter().enumerate() {
        for (op, full) in [("==", true), ("startswith", false)] {
            let body = format!("    match user.username {op} {}", rule_str(v));
            let (search, r) = search_of(&body);
            assert!(
                r.losses.iter().all(|l| l.kind != LossKind::Unsupported),
                "{v:?}: {:?}",
                r.losses
            );
            tokenize(&search).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            for spl in file(&r, |p| p.ends_with(".spl")) {
                tokenize(spl).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            }
            // Wildcard patterns also avoid backslashes (next to a `*`).
            let literal = !v.contains('*')
                && !v.contains('`')
                && !v.chars().any(char::is_control)
                && (full || !v.contains('\\'));
            if literal {
                // A search term: the quoted value reads back unchanged.
                let toks = tokenize(first_stage(&search)).unwrap();
                let want = if full { v.to_string() } else { format!("{v}*") };
                assert!(
                    toks.contains(&Tok::Str(want.clone())),
                    "{want:?} not in {search}"
                );
                assert!(where_stage(&search).is_none(), "{search}");
            } else {
                // A post-filter regex: PCRE syntax that Rust's regex also reads.
                let w =
                    where_stage(&search).unwrap_or_else(|| panic!("{v:?}: no where in {search}"));
                assert!(
                    !w.contains('`') && !w.chars().any(|c| c.is_ascii_control()),
                    "{w}"
                );
                let res = match_regexes(w);
                assert_eq!(res.len(), 1, "{w}");
                let re = regex::Regex::new(&res[0]).unwrap_or_else(|e| panic!("{w}: {e}"));
                assert!(re.is_match(v), "{w} must match {v:?}");
                assert!(re.is_match(&v.to_uppercase()), "{w} ignores case");
                assert_eq!(re.is_match(&format!("{v}x")), !full, "{w} vs {v:?}x");
                assert!(!re.is_match(&format!("x{v}")), "{w} is anchored");
            }
            let _ = i;
        }
    }
}

#[test]
fn hostile_rules_pass_contentctl() {
    let mut rules = Vec::new();
    for (i, v) in HOSTILE.iter().enumerate() {
        let n = 100 + i as u32;
        let body = format!(
            "    match (user.username == {v} or userAgent contains {v}) and not objectRef.name endswith {v}\n    output {{ group_by = [user.username] title = {t} }}",
            v = rule_str(v),
            t = rule_str(&format!("{} {{user.username}}", v.replace(['{', '}'], ""))),
        );
        let text = rule_text(
            n,
            &format!("Hostile Case {n}"),
            &body,
            &serde_json::json!({ "user": { "username": v } }),
        )
        // Free tags become notes: comment lines that must stay comments.
        .replace(
            "attack = [T1053.007]",
            &format!("attack = [T1053.007]\n  tags = [{}]", rule_str(v)),
        );
        let rule = compile(&text);
        // The reference evaluator agrees the value matches the rule.
        let results = detc::eval::run_tests(&rule);
        assert!(results.iter().all(|t| t.ok), "{v:?}: {results:?}");
        rules.push(rule);
    }
    let dir = tempfile::tempdir().unwrap();
    write_dist(dir.path(), &rules);
    contentctl(dir.path());
    // Every generated file reads back: YAML parses, searches tokenize.
    for rule in &rules {
        let r = render(rule);
        for s in searches(&r) {
            tokenize(&s).unwrap();
        }
        for m in file(&r, |p| p.starts_with("macros/")) {
            serde_yaml::from_str::<serde_yaml::Value>(m).unwrap();
        }
    }
}

#[test]
fn language_not_keeps_events_without_the_field_and_ne_does_not() {
    let (s, _) = search_of(
        r#"    match verb == "create" and not objectRef.subresource == "status" and objectRef.namespace != "kube-system""#,
    );
    assert_eq!(
        first_stage(&s),
        r#"`kube_audit` verb="create" NOT objectRef.subresource="status" objectRef.namespace!="kube-system""#
    );
}

#[test]
fn numbers_are_canonical_and_numeric_ne_needs_a_number() {
    // `403.0` is the number 403: a search term `=403.0` would match no event.
    let (s, _) = search_of(r#"    match verb == "create" and responseStatus.code == 201.0"#);
    assert!(first_stage(&s).contains("responseStatus.code=201"), "{s}");
    assert!(!s.contains("201.0"), "{s}");
    // `x!=403` also holds for a value that is no number: the where stage
    // tests the number.
    let (s, _) = search_of(r#"    match verb == "create" and responseStatus.code != 403"#);
    assert!(!first_stage(&s).contains("!=403"), "{s}");
    let w = where_stage(&s).unwrap_or_else(|| panic!("{s}"));
    assert!(
        w.contains("isnotnull(tonumber('responseStatus.code'))"),
        "{w}"
    );
}

#[test]
fn output_settings_take_back_quoted_keys() {
    let (s, _) = search_of(
        "    match verb == \"create\"\n    output {\n      group_by = [annotations.`authorization.k8s.io/decision`, verb]\n      rename = { annotations.`authorization.k8s.io/decision` = decision }\n    }",
    );
    assert!(
        s.contains(r#"by "annotations.authorization.k8s.io/decision" verb | rename "annotations.authorization.k8s.io/decision" as decision"#),
        "{s}"
    );
}

#[test]
fn a_dropped_condition_is_named_whole_and_an_empty_search_is_refused() {
    // Only the whole conjunct can be left out: the loss names it.
    let (s, r) = search_of(
        "    match verb == \"create\" and (requestObject.**.privileged == true or verb == \"patch\")",
    );
    assert_eq!(first_stage(&s), r#"`kube_audit` verb="create""#);
    let loss = r
        .losses
        .iter()
        .find(|l| l.construct.starts_with("match condition"))
        .unwrap_or_else(|| panic!("{:?}", r.losses));
    assert_eq!(
        loss.construct,
        r#"match condition `(requestObject.**.privileged == true or verb == "patch")`"#
    );
    assert!(
        loss.reason.contains("matches whether it holds or not"),
        "{}",
        loss.reason
    );
    // Nothing left: the search would match every event, even under lossy.
    let rule = compile(&rule_text(
        2,
        "Splunk Case 2",
        "    match verb == \"create\" or requestObject.**.privileged == true",
        &serde_json::json!({ "verb": "create" }),
    ));
    let e = detc::build::render(&rule, Target::Splunk).unwrap_err();
    assert!(e.0.contains("would match every event"), "{e}");
}

#[test]
fn nested_groups_are_always_parenthesised() {
    let (s, _) = search_of(
        r#"    match verb == "create" or verb == "update" and (objectRef.name == "a" or not objectRef.name == "b")"#,
    );
    assert_eq!(
        first_stage(&s),
        r#"`kube_audit` (verb="create" OR (verb="update" AND (objectRef.name="a" OR NOT objectRef.name="b")))"#
    );
    let (s, _) = search_of(
        r#"    match verb in ["create", "update"] and user.username startswith any ["a", "b"]"#,
    );
    assert_eq!(
        first_stage(&s),
        r#"`kube_audit` verb IN ("create", "update") (user.username="a*" OR user.username="b*")"#
    );
}

#[test]
fn arrays_carry_braces_and_compare_per_element() {
    let (s, _) = search_of(
        r#"    match sourceIPs == "10.0.0.1" and user.groups contains all ["sys", "mast"]"#,
    );
    assert_eq!(
        first_stage(&s),
        r#"`kube_audit` sourceIPs{}="10.0.0.1" (user.groups{}="*sys*" AND user.groups{}="*mast*")"#
    );
    // `!=` on an array holds when some element differs: a per-element post-filter.
    let (s, _) = search_of(r#"    match verb == "create" and sourceIPs != "10.0.0.1""#);
    let w = where_stage(&s).unwrap();
    assert!(w.contains("mvfilter(NOT match('sourceIPs{}', "), "{w}");
    assert!(w.starts_with("where coalesce(mvcount(mvfilter("), "{w}");
}

#[test]
fn post_filter_handles_what_search_terms_cannot() {
    let cases: &[(&str, &str)] = &[
        // Literal `*`: a search term would read it as a wildcard.
        (
            r#"user.username == "a*b""#,
            r#"match('user.username', "(?i)^a\\x2ab\\z")"#,
        ),
        // `cased` keeps its case: no (?i).
        (
            r#"user.username cased == "Admin""#,
            r#"match('user.username', "^Admin\\z")"#,
        ),
        // A regex stays a substring search, case-insensitive.
        (
            r#"userAgent matches /kubectl\/v1\.[0-9]+/"#,
            r#"match('userAgent', "(?i)kubectl/v1\\.[0-9]+")"#,
        ),
        // `?` in a glob is one character.
        (
            r#"userAgent like "kube?ctl*""#,
            r#"match('userAgent', "(?is)^kube.ctl.*\\z")"#,
        ),
        (
            r#"sourceIPs cidr "10.0.0.0/8""#,
            r#"mvfilter(cidrmatch("10.0.0.0/8", 'sourceIPs{}'))"#,
        ),
        // Numeric comparison on a string field: only values that are numbers.
        (
            r#"objectRef.name > 5"#,
            r#"(isnotnull(tonumber('objectRef.name')) AND tonumber('objectRef.name')>5)"#,
        ),
        // A free-form field may be an array: test each value.
        (
            r#"requestObject.spec.schedule matches /\*/"#,
            r#"coalesce(mvcount(mvfilter(match('requestObject.spec.schedule', "(?i)\\*"))), 0)>0"#,
        ),
    ];
    for (expr, want) in cases {
        let (s, r) = search_of(&format!("    match verb == \"create\" and {expr}"));
        assert!(
            r.losses.iter().all(|l| l.kind != LossKind::Unsupported),
            "{expr}: {:?}",
            r.losses
        );
        assert_eq!(first_stage(&s), r#"`kube_audit` verb="create""#, "{expr}");
        let w = where_stage(&s).unwrap_or_else(|| panic!("{expr}: {s}"));
        assert!(w.contains(want), "{expr}:\n  {w}\n  lacks {want}");
    }
    // Search terms are preferred where they are exact.
    for expr in [
        r#"userAgent like "kubectl*""#,
        r#"responseStatus.code >= 400"#,
        r#"userAgent endswith "x""#,
    ] {
        let (s, _) = search_of(&format!("    match {expr}"));
        assert!(where_stage(&s).is_none(), "{expr}: {s}");
    }
    // A `not` around a post-filter still keeps events without the field:
    // every comparison is guarded, never null.
    let (s, _) = search_of(r#"    match verb == "create" and not userAgent matches /curl/"#);
    assert_eq!(
        where_stage(&s).unwrap(),
        r#"where NOT (isnotnull('userAgent') AND match('userAgent', "(?i)curl"))"#
    );
}

#[test]
fn regexes_in_where_clauses_mean_what_the_rule_means() {
    // Decode each generated PCRE, run it with Rust's regex, and compare with
    // the reference evaluator on the same values.
    let cases: &[(&str, &[&str])] = &[
        (
            r#"userAgent like "a?c*\\*""#,
            &["abcxx*", "ABC*", "ac*", "abcx", "a\ncxx*"],
        ),
        (
            r#"userAgent like "a.b?""#,
            &["a.bc", "axbc", "A.B\n", "a.b"],
        ),
        (
            r#"userAgent cased startswith "Ku*""#,
            &["Ku*be", "ku*be", "Kube"],
        ),
        (
            r#"userAgent cased endswith "*$x""#,
            &["a*$x", "a*$X", "a*$xy", "$x"],
        ),
        (
            r#"userAgent matches /kube(ctl|let)[0-9]{2}/"#,
            &["kubectl12", "KUBELET99x", "xkubectl12", "kubectl1"],
        ),
        (
            r#"userAgent cased matches /a.c/"#,
            &["abc", "ABC", "xxa-cxx"],
        ),
    ];
    let mut ev = detc::eval::Evaluator::new();
    for (expr, samples) in cases {
        let (rule, r) = one(1, &format!("    match {expr}"));
        let s = searches(&r).remove(0);
        let res = match_regexes(where_stage(&s).unwrap_or_else(|| panic!("{expr}: {s}")));
        assert_eq!(res.len(), 1, "{s}");
        let re = regex::Regex::new(&res[0]).unwrap();
        let det = &rule.detections[0];
        for v in *samples {
            let want = ev
                .eval_detection(
                    det,
                    rule.meta.severity,
                    &serde_json::json!({ "userAgent": v }),
                )
                .matched;
            assert_eq!(re.is_match(v), want, "{expr} on {v:?} ({})", res[0]);
        }
    }
}

#[test]
fn inexpressible_constructs_are_reported() {
    let (s, r) = search_of(
        "    match verb == \"create\" and requestObject.**.image contains \"alpine\"\n    indicator priv severity high = requestObject.**.privileged == true",
    );
    assert_eq!(first_stage(&s), r#"`kube_audit` verb="create""#);
    let unsupported: Vec<&str> = r
        .losses
        .iter()
        .filter(|l| l.kind == LossKind::Unsupported)
        .map(|l| l.construct.as_str())
        .collect();
    assert!(
        unsupported
            .iter()
            .any(|c| c.contains("requestObject.**.image")),
        "{unsupported:?}"
    );
    assert!(
        unsupported.iter().any(|c| c.contains("indicator priv")),
        "{unsupported:?}"
    );
    // Each loss is a visible note in the detection YAML and in the .spl file.
    let yml = file(&r, |p| p.starts_with("detections/"))[0];
    let spl = file(&r, |p| p.ends_with(".spl"))[0];
    for l in &r.losses {
        assert!(
            yml.lines()
                .any(|x| x.starts_with("# detc note") && x.contains(&l.construct)),
            "{}\n{yml}",
            l.construct
        );
        // SPL comments cannot hold backticks: they become apostrophes.
        assert!(
            spl.contains(&l.construct.replace('`', "'")),
            "{}\n{spl}",
            l.construct
        );
    }
    assert!(tokenize(spl)
        .unwrap()
        .iter()
        .any(|t| matches!(t, Tok::Comment(_))));
}

#[test]
fn names_follow_contentctl_limits() {
    let long = "A Title That Is Far Too Long For The Sixty Seven Character Limit Of Splunk";
    let rule = compile(&rule_text(
        7,
        long,
        "    match verb == \"create\"",
        &serde_json::json!({ "verb": "create" }),
    ));
    let err = detc::build::render(&rule, Target::Splunk).unwrap_err();
    assert!(err.to_string().contains("67"), "{err}");
    let rule = compile(&rule_text(
        8,
        "Cron (Job)",
        "    match verb == \"create\"",
        &serde_json::json!({ "verb": "create" }),
    ));
    assert!(
        detc::build::render(&rule, Target::Splunk).is_err(),
        "`(` breaks the filter macro"
    );
}

#[test]
fn second_source_gets_its_own_name_id_macro_and_notes() {
    let flagship = project_rules()
        .into_iter()
        .find(|r| r.name == "k8s_cronjob_job_write")
        .unwrap();
    let r = render(&flagship);
    let docs: Vec<serde_yaml::Value> = file(&r, |p| p.starts_with("detections/"))
        .into_iter()
        .map(|y| serde_yaml::from_str(y).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["name"].as_str(), Some(flagship.meta.title.as_str()));
    assert_eq!(
        docs[1]["name"].as_str().unwrap(),
        format!("{} - Azure Activity", flagship.meta.title)
    );
    assert_ne!(docs[0]["id"], docs[1]["id"]);
    assert!(docs[1]["search"]
        .as_str()
        .unwrap()
        .starts_with("`azure_monitor_activity` "));
    assert_eq!(
        docs[0]["deployment"]["scheduling"]["cron_schedule"].as_str(),
        Some("0 * * * *")
    );
    // The Azure form names the cluster resource as its risk object.
    assert_eq!(
        docs[1]["rba"]["risk_objects"][0]["field"].as_str(),
        Some("resourceId")
    );
    // Without a risk object, RBA is off and the loss is reported.
    let (_, r2) = one(
        90,
        r#"    match verb == "create"
    output {
      group_by = [verb, sourceIPs]
      risk = { score = 49, impact = 70, confidence = 70, message = "from {sourceIPs}",
               threats = { sourceIPs = ip_address } }
    }"#,
    );
    let doc: serde_yaml::Value =
        serde_yaml::from_str(file(&r2, |p| p.starts_with("detections/"))[0]).unwrap();
    assert!(doc.get("rba").is_none());
    assert!(r2
        .losses
        .iter()
        .any(|l| l.construct == "output.risk" && l.kind == LossKind::Unsupported));
    let shared = Splunk.shared(&[&flagship]).unwrap();
    let names: Vec<&str> = shared.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(
        names,
        ["macros/azure_monitor_activity.yml", "macros/kube_audit.yml"]
    );
    for a in &shared {
        let m: serde_yaml::Value = serde_yaml::from_str(&a.contents).unwrap();
        assert!(!m["definition"].as_str().unwrap().is_empty());
    }
}

#[test]
fn techniques_listed_with_their_sub_techniques_keep_the_sub_technique() {
    let text = rule_text(
        9,
        "Splunk Case 9",
        "    match verb == \"create\"",
        &serde_json::json!({ "verb": "create" }),
    )
    .replace(
        "attack = [T1053.007]",
        "attack = [T1053, T1053.007, T1610, TA0002]",
    );
    let r = render(&compile(&text));
    let doc: serde_yaml::Value =
        serde_yaml::from_str(file(&r, |p| p.starts_with("detections/"))[0]).unwrap();
    let ids: Vec<&str> = doc["tags"]["mitre_attack_id"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids, ["T1053.007", "T1610"]);
    assert!(r
        .losses
        .iter()
        .any(|l| l.construct == "ATT&CK technique T1053"));
    assert!(r.losses.iter().any(|l| l.construct.contains("TA0002")));
}
