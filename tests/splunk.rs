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
                && !detc::fold::has_cased_non_ascii(v)
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
                // Another case of every letter, as detc folds it.
                let other: String = v.chars().map(|c| detc::fold::class(c)[0]).collect();
                assert!(re.is_match(&other), "{w} ignores case");
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
fn booleans_are_exactly_true_or_false() {
    // Search terms ignore case, and "TRUE" is no boolean: `where` tests the
    // exact text a JSON boolean becomes.
    let (s, _) =
        search_of(r#"    match verb == "create" and requestObject.spec.hostNetwork == true"#);
    assert!(!first_stage(&s).contains("hostNetwork"), "{s}");
    let w = where_stage(&s).unwrap_or_else(|| panic!("{s}"));
    assert!(w.contains(r#""^true\\z""#), "{w}");
    assert!(!w.contains("(?i)"), "{w}");
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
    // One detection per integration: kube_audit (raw, EKS), AKS, GKE, and
    // the Azure activity log's Event Hub and REST shapes.
    let names: Vec<&str> = docs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    let t = &flagship.meta.title;
    assert_eq!(
        names,
        [
            t.to_string(),
            format!("{t} - AKS"),
            format!("{t} - GKE"),
            format!("{t} - Azure Activity"),
            format!("{t} - Azure Audit"),
        ]
    );
    let ids: std::collections::BTreeSet<&str> =
        docs.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), docs.len(), "ids are distinct");
    let docs: Vec<serde_yaml::Value> = [0, 3].iter().map(|&i| docs[i].clone()).collect();
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
        [
            "macros/azure_audit.yml",
            "macros/azure_monitor_activity.yml",
            "macros/google_gcp_pubsub_message.yml",
            "macros/kube_audit.yml",
            "macros/kubernetes_azure.yml",
            "data_sources/amazon_eks_kubernetes_audit.yml",
            "data_sources/azure_aks_kubernetes_audit.yml",
            "data_sources/azure_audit.yml",
            "data_sources/azure_monitor_activity.yml",
            "data_sources/gke_kubernetes_audit.yml",
            "data_sources/kubernetes_audit.yml",
            "stories/kubernetes_security.yml",
        ]
    );
    for a in shared.iter().filter(|a| a.path.starts_with("macros/")) {
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

// ------------------------------------------------------------ platform forms

fn stored(name: &str) -> serde_json::Value {
    let path = root().join("tests/fixtures/stored/splunk").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stored_files(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("tests/fixtures/stored/splunk"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .collect();
    v.sort();
    v
}

fn flagship() -> Rule {
    project_rules()
        .into_iter()
        .find(|r| r.name == "k8s_cronjob_job_write")
        .expect("the flagship rule")
}

/// The query of a `.spl` file, its note comments left out (stages on
/// their own lines, each after `| `).
fn search_in(r: &Rendered, spl: &str) -> String {
    let f = r
        .files
        .iter()
        .find(|f| f.path == spl)
        .unwrap_or_else(|| panic!("no {spl}"));
    f.contents
        .lines()
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rule's terms: the base search after the macro (no decode step) or
/// the `search` stage after one.
fn terms_of(search: &str) -> String {
    let stages: Vec<&str> = search.split("\n| ").collect();
    match stages.iter().find(|s| s.starts_with("search ")) {
        Some(s) => s["search ".len()..].trim_end().to_string(),
        None => {
            let first = stages[0];
            first[first.find("` ").expect("macro then terms") + 2..]
                .trim_end()
                .to_string()
        }
    }
}

/// A double-quoted SPL string's contents.
fn spl_unquote(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn json_path<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// The GKE form decodes the Pub/Sub message at search time: its `rex`
/// patterns and its status table, taken from the generated search itself,
/// give every GKE test event the same verb, objectRef and status as detc's
/// normalisation, and its body is the raw form's body.
#[test]
fn gke_pubsub_form_derives_the_event_as_detc_normalises_it() {
    let r = render(&flagship());
    let raw = search_in(&r, "k8s_cronjob_job_write.spl");
    let gke = search_in(&r, "k8s_cronjob_job_write__gke.spl");
    assert!(
        gke.starts_with("`google_gcp_pubsub_message` data.protoPayload.serviceName=\"k8s.io\"\n"),
        "{gke}"
    );
    assert_eq!(
        terms_of(&gke),
        terms_of(&raw),
        "the GKE body is the raw body"
    );
    let rex = regex::Regex::new(r#"^rex field=(\S+) "((?:[^"\\]|\\.)*)"$"#).unwrap();
    let mut patterns = Vec::new();
    for stage in gke.split("\n| ") {
        if let Some(c) = rex.captures(stage) {
            let pattern = regex::Regex::new(&spl_unquote(&c[2])).expect("rex pattern compiles");
            patterns.push((c[1].to_string(), pattern));
        }
    }
    assert_eq!(patterns.len(), 3, "{gke}");
    let eval = gke
        .split("\n| ")
        .find(|s| s.contains("'responseStatus.code'=case("))
        .expect("the status eval");
    let table = &eval
        [eval.find("'responseStatus.code'=case(").unwrap() + "'responseStatus.code'=case(".len()..];
    let table = &table[..table.rfind(')').unwrap()];
    let parts: Vec<&str> = table.split(", ").collect();
    let http = |code: Option<i64>| -> i64 {
        for pair in parts.chunks(2) {
            let holds = pair[0].split(" OR ").any(|c| match c {
                "true()" => true,
                "isnull(detc_code)" => code.is_none(),
                c => c
                    .strip_prefix("detc_code=")
                    .map(|n| code == Some(n.parse().unwrap()))
                    .expect("a known condition"),
            });
            if holds {
                return pair[1].parse().unwrap();
            }
        }
        panic!("no case holds for {code:?}")
    };
    for code in 0..=20 {
        assert_eq!(
            http(Some(code)),
            detc::sources::normalize::grpc_to_http(code),
            "gRPC {code}"
        );
    }
    assert_eq!(http(None), 200);

    let files = stored_files("pubsub_");
    assert!(files.len() >= 8, "{files:?}");
    for name in files {
        let msg = stored(&name);
        let entry = &msg["data"];
        let ev = detc::sources::normalize::normalize("gke", entry).expect("a k8s.io LogEntry");
        let mut got: std::collections::BTreeMap<String, String> = Default::default();
        for (field, re) in &patterns {
            let text = json_path(&msg, field)
                .and_then(|v| v.as_str())
                .unwrap_or("");
            if let Some(c) = re.captures(text) {
                for n in re.capture_names().flatten() {
                    if let Some(m) = c.name(n) {
                        got.insert(n.to_string(), m.as_str().to_string());
                    }
                }
            }
        }
        let g = |k: &str| got.get(k).cloned();
        let group = g("detc_group").filter(|g| !g.is_empty() && g != "core");
        let derived = [
            ("verb", g("detc_verb")),
            ("objectRef.apiGroup", group.clone()),
            (
                "objectRef.apiVersion",
                g("detc_version").map(|v| match &group {
                    Some(gr) => format!("{gr}/{v}"),
                    None => v,
                }),
            ),
            ("objectRef.resource", g("detc_resource")),
            ("objectRef.subresource", g("detc_sub2").or(g("detc_sub"))),
            ("objectRef.namespace", g("detc_ns")),
            ("objectRef.name", g("detc_name")),
        ];
        for (field, value) in derived {
            let want = json_path(&ev, field)
                .and_then(|v| v.as_str())
                .map(str::to_string);
            assert_eq!(value, want, "{name}: {field}");
        }
        let code = json_path(entry, "protoPayload.status.code").and_then(|v| v.as_i64());
        assert_eq!(
            Some(http(code)),
            json_path(&ev, "responseStatus.code").and_then(|v| v.as_i64()),
            "{name}: status"
        );
    }
}

/// The AKS form decodes `properties.log` with spath and then runs the raw
/// form's body; the project's AKS events are storage-blob records of the
/// categories the form selects.
#[test]
fn aks_storage_blob_form_decodes_properties_log_then_runs_the_same_body() {
    let r = render(&flagship());
    let raw = search_in(&r, "k8s_cronjob_job_write.spl");
    let aks = search_in(&r, "k8s_cronjob_job_write__aks.spl");
    assert!(
        aks.starts_with("`kubernetes_azure` category IN (\"kube-audit\", \"kube-audit-admin\")\n| spath input=properties.log\n| search "),
        "{aks}"
    );
    assert_eq!(terms_of(&aks), terms_of(&raw));
    let mut seen = 0;
    for e in std::fs::read_dir(root().join("rules/events")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("aks_kube_audit") {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for rec in detc::sources::normalize::records(v) {
            let cat = rec["category"].as_str().unwrap_or("").to_ascii_lowercase();
            assert!(cat == "kube-audit" || cat == "kube-audit-admin", "{name}");
            assert!(
                rec["properties"]["log"].is_string() || rec["properties"]["log"].is_object(),
                "{name}"
            );
            seen += 1;
        }
    }
    assert!(seen > 0);
}

/// The Azure Audit (REST) form reads the fields the REST records hold: every
/// field its search names is present in the stored records wherever the
/// Event Hub record has the canonical field, with the same value.
#[test]
fn azure_audit_rest_form_reads_the_rest_fields() {
    let r = render(&flagship());
    let hub = search_in(&r, "k8s_cronjob_job_write_azure_activity.spl");
    let rest = search_in(&r, "k8s_cronjob_job_write_azure_activity__azure_audit.spl");
    assert!(rest.starts_with("`azure_audit` "), "{rest}");
    let renames = [
        ("operationName", "operationName.value"),
        ("resultType", "status.value"),
        ("callerIpAddress", "claims.ipaddr"),
    ];
    let mut expect = terms_of(&hub);
    for (from, to) in renames {
        expect = expect
            .replace(&format!("{from}="), &format!("{to}="))
            .replace(&format!("{from} IN"), &format!("{to} IN"));
    }
    assert_eq!(terms_of(&rest), expect);
    let files = stored_files("rest_");
    assert!(!files.is_empty());
    for name in files {
        let stored_rec = stored(&name);
        let orig_path = root()
            .join("rules/events")
            .join(name.trim_start_matches("rest_"));
        let orig: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(orig_path).unwrap()).unwrap();
        for (from, to) in renames {
            assert_eq!(
                orig.get(from),
                json_path(&stored_rec, to),
                "{name}: {from} -> {to}"
            );
        }
    }
}

/// `--splunk-security-content` leaves out what security_content defines.
#[test]
fn security_content_switch_leaves_out_their_data_sources_and_story() {
    let theirs = detc::backend::splunk::security_content_files();
    assert!(theirs.contains(&"data_sources/kubernetes_audit.yml".to_string()));
    assert!(theirs.contains(&"stories/kubernetes_security.yml".to_string()));
    let rules = project_rules();
    let refs: Vec<&Rule> = rules.iter().collect();
    let all = Splunk.shared(&refs).unwrap();
    for t in &theirs {
        assert!(
            all.iter().any(|f| &f.path == t),
            "{t} is emitted by default"
        );
    }
    let b = detc::build::build(
        &refs,
        &detc::build::Options {
            targets: vec![Target::Splunk],
            splunk_security_content: true,
            ..Default::default()
        },
    );
    for t in &theirs {
        assert!(!b.files.contains_key(&format!("splunk/{t}")), "{t}");
    }
    assert!(b
        .files
        .contains_key("splunk/data_sources/gke_kubernetes_audit.yml"));
}

/// The build runs each rule's tests on the condition the Splunk search
/// actually holds: a dropped conjunct that changes a verdict is reported in
/// the file's notes, in REPORT.md's verdict changes, and needs `lossy`.
#[test]
fn a_dropped_conjunct_that_changes_a_verdict_is_reported_and_needs_lossy() {
    let text = |lossy: &str| {
        format!(
            r#"rule splunk_verdicts {{
  id = "00000000-0000-4000-8000-0000000000f1"
  title = "Splunk verdicts"
  description = "d"
  author = "a"
  date = 2024-01-01
  status = test
  severity = medium
  {lossy}
  source kubernetes.audit on [kubernetes] {{
    match verb == "create" and requestObject.**.privileged == true
  }}
  test "privileged" on kubernetes expect match {{"verb": "create", "requestObject": {{"spec": {{"privileged": true}}}}}}
  test "plain" on kubernetes expect no match {{"verb": "create", "requestObject": {{"spec": {{}}}}}}
}}
"#
        )
    };
    let strict = compile(&text(""));
    let b = detc::build::build(
        &[&strict],
        &detc::build::Options {
            targets: vec![Target::Splunk],
            ..Default::default()
        },
    );
    assert!(
        b.errors
            .iter()
            .any(|e| e.contains("match (test verdicts)") && e.contains("\"plain\"")),
        "{:?}",
        b.errors
    );
    let lossy = compile(&text("lossy = [splunk]"));
    let b = detc::build::build(
        &[&lossy],
        &detc::build::Options {
            targets: vec![Target::Splunk],
            ..Default::default()
        },
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    let report = &b.files["REPORT.md"];
    assert!(
        report.contains(
            "| splunk_verdicts | splunk | `detections/splunk_verdicts.yml` | \"plain\" |"
        ),
        "{report}"
    );
    let det = b
        .files
        .iter()
        .find(|(p, _)| p.starts_with("splunk/detections/"))
        .unwrap()
        .1;
    assert!(
        det.contains("another verdict on the tests \"plain\""),
        "{det}"
    );
}
