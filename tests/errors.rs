//! Every must-fail input under rules/invalid/ fails to check, and its
//! rendered diagnostic is pinned by a snapshot in snapshots/.

use std::path::Path;

#[test]
fn invalid_rules_fail_with_pinned_messages() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    let _guard = settings.bind_to_scope();
    // Paths relative to the crate root, so snapshots are machine-independent.
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    let mut files: Vec<_> = std::fs::read_dir("rules/invalid")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rule"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "only {} must-fail inputs", files.len());
    for path in files {
        let report = match detc::load::compile_path(Path::new(&path)) {
            Ok(_) => panic!("{} should fail to check but passed", path.display()),
            Err(report) => report.to_string(),
        };
        assert!(report.contains("error:"), "{report}");
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(format!("invalid@{name}"), report);
    }
}
