//! One snapshot per rule holding the IR and every target's output in a fixed
//! order (splunk, elastic, panther, sigma), so a pull request shows each
//! backend's change for a rule side by side; and one snapshot of the files
//! the Panther rules share (the `detc_runtime` global helper).

use detc::backend::Target;
use detc::ir::Rule;
use std::fmt::Write as _;
use std::path::Path;

fn ir_summary(rule: &Rule) -> String {
    let mut s = String::new();
    for d in &rule.detections {
        let _ = writeln!(
            s,
            "detection {} ({} on [{}])",
            d.stem,
            d.source,
            d.platforms.join(", ")
        );
        for l in &d.lets {
            let _ = writeln!(s, "  let {} = {}", l.name, l.expr);
        }
        let _ = writeln!(s, "  match {}", d.condition);
        for i in &d.indicators {
            let _ = writeln!(
                s,
                "  indicator {} [{}] = {}",
                i.name,
                i.severity.as_str(),
                i.expr
            );
        }
    }
    s
}

fn all_targets(rule: &Rule) -> String {
    let mut s = format!("# {}\n\n## ir\n\n{}", rule.name, ir_summary(rule));
    for target in Target::ALL {
        let _ = write!(s, "\n## {target}\n");
        match detc::build::render(rule, target) {
            Ok(r) => {
                for l in &r.losses {
                    let _ = writeln!(
                        s,
                        "loss: {:?} [{}] {}: {}",
                        l.kind, l.stem, l.construct, l.reason
                    );
                }
                for f in &r.files {
                    let _ = write!(s, "\n### {}\n\n{}", f.path, f.contents);
                    if !f.contents.ends_with('\n') {
                        s.push('\n');
                    }
                }
            }
            Err(e) => {
                let _ = writeln!(s, "error: {e}");
            }
        }
    }
    s
}

#[test]
fn every_rule_every_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loads = detc::load::load(&[root.join("rules")]).unwrap();
    assert!(
        loads.failures.is_empty(),
        "{:?}",
        loads
            .failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
    );
    assert!(loads.rules.len() >= 6);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for l in &loads.rules {
            let text = all_targets(&l.rule);
            // Rendering is deterministic: a second rendering is byte-identical.
            assert_eq!(
                text,
                all_targets(&l.rule),
                "non-deterministic output for {}",
                l.rule.name
            );
            insta::assert_snapshot!(format!("rule@{}", l.rule.name), text);
        }
    });
}

#[test]
fn panther_runtime() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    let mut s = String::new();
    for f in detc::backend::panther::runtime_files() {
        let _ = write!(s, "### {}\n\n{}\n", f.path, f.contents);
    }
    settings.bind(|| insta::assert_snapshot!("panther_runtime", s));
}

#[test]
fn sigma_pipelines() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    let mut s = String::new();
    for f in detc::backend::sigma_pipelines::all() {
        let _ = write!(s, "### {}\n\n{}\n", f.path, f.contents);
    }
    settings.bind(|| insta::assert_snapshot!("sigma_pipelines", s));
}
