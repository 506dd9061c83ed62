//! Hostile input never panics detc: binary bytes, deep nesting, huge files,
//! unterminated strings, and every prefix and mangling of a real rule give
//! diagnostics or rules, never a crash.

use std::path::Path;

fn compile(text: &str) -> Result<usize, String> {
    let r = std::panic::catch_unwind(|| {
        detc::load::compile_text("hostile.rule", text, Path::new("rules"))
    });
    match r {
        Ok(Ok(rules)) => Ok(rules.len()),
        Ok(Err(report)) => {
            let shown = report.to_string();
            assert!(
                shown.contains("error:"),
                "a failure must render a diagnostic: {shown}"
            );
            Err(shown)
        }
        Err(_) => panic!("detc panicked on input: {:?}", &text[..text.len().min(200)]),
    }
}

#[test]
fn ten_megabyte_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.rule");
    std::fs::write(&path, "#".repeat(10 * 1024 * 1024)).unwrap();
    let err = detc::load::compile_path(&path).unwrap_err().to_string();
    assert!(err.contains("at most"), "{err}");
    let text = format!("rule r {{ {} }}", "x = 1 ".repeat(2_000_000));
    assert!(compile(&text).unwrap_err().contains("at most"));
}

#[test]
fn deep_nesting_and_long_chains() {
    for depth in [10, 127, 129, 10_000] {
        let e = format!("{}verb == \"x\"{}", "(".repeat(depth), ")".repeat(depth));
        let _ = compile(&format!(
            "rule r {{ source kubernetes.audit on [eks] {{ match {e} }} }}"
        ));
    }
    let nots = format!(
        "rule r {{ source kubernetes.audit on [eks] {{ match {} verb exists }} }}",
        "not ".repeat(100_000)
    );
    assert!(compile(&nots).unwrap_err().contains("`not` in a row"));
    let chain = vec!["verb == \"x\""; 20_000].join(" and ");
    let _ = compile(&format!(
        "rule r {{ source kubernetes.audit on [eks] {{ match {chain} }} }}"
    ));
    let json = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let _ = compile(&format!(
        "rule r {{ test \"t\" on eks expect match {{\"a\": {json}}} }}"
    ));
}

#[test]
fn binary_and_odd_bytes() {
    for text in [
        "\0\0\0",
        "rule \u{feff} r {",
        "rule r { id = \"\\u{d800}\" }",
        "rule r { id = \"\\u{110000}\" }",
        "rule r { title = \"unterminated",
        "rule r { description = \"\"\"never closed",
        "/",
        "`",
        "rule r { source x on [ }",
        "rule r { source kubernetes.audit on [eks] { match a.`b` == 1 } }",
        "rule r { x = 99999999999999999999999999999 }",
    ] {
        let _ = compile(text);
    }
}

#[test]
fn every_prefix_and_byte_flip_of_the_flagship() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("rules/k8s_cronjob_job_write.rule")).unwrap();
    let base = root.join("rules");
    let bytes = text.as_bytes();
    // Every 7th prefix (all would be slow in debug builds) and single-byte manglings.
    for cut in (0..bytes.len()).step_by(7) {
        if let Ok(prefix) = std::str::from_utf8(&bytes[..cut]) {
            let _ = std::panic::catch_unwind(|| detc::load::compile_text("p.rule", prefix, &base))
                .unwrap_or_else(|_| panic!("panic on prefix of {cut} bytes"));
        }
    }
    let mut rendered = 0;
    for (i, _) in text.char_indices().step_by(13) {
        for repl in ["\"", "{", "}", "(", "/", "\\", "`", "\n", "*"] {
            let mut t = text.clone();
            t.replace_range(i..i + t[i..].chars().next().unwrap().len_utf8(), repl);
            let compiled =
                std::panic::catch_unwind(|| detc::load::compile_text("m.rule", &t, &base))
                    .unwrap_or_else(|_| panic!("panic after replacing byte {i} with {repl:?}"));
            // A mangling that still checks (a changed value, say) must render
            // in every backend without a panic, whatever the result (every
            // third one: rendering in a debug build is the slow part).
            let Ok(rules) = compiled else { continue };
            if i % 3 != 0 {
                continue;
            }
            for rule in &rules {
                for target in detc::backend::Target::ALL {
                    let outcome = std::panic::catch_unwind(|| detc::build::render(rule, target));
                    assert!(
                        outcome.is_ok(),
                        "{target} panicked after replacing byte {i} with {repl:?}"
                    );
                }
            }
            rendered += 1;
        }
    }
    assert!(
        rendered > 20,
        "only {rendered} manglings checked and rendered"
    );
}

#[test]
fn long_let_chains_are_refused() {
    let mut body = String::from("let l0 = verb exists\n");
    for i in 1..5000 {
        body.push_str(&format!("let l{i} = l{}\n", i - 1));
    }
    let text = format!("rule r {{ source kubernetes.audit on [eks] {{ {body} match l4999 }} }}");
    assert!(compile(&text).unwrap_err().contains("levels of lets"));
}
