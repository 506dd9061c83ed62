//! Speed of the stages over the project's own rules: parse + check, the
//! reference evaluator over every test event, and rendering every target.

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::{Path, PathBuf};

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn bench(c: &mut Criterion) {
    let flagship = rules_dir().join("k8s_cronjob_job_write.rule");
    let text = std::fs::read_to_string(&flagship).unwrap();
    c.bench_function("parse+check flagship", |b| {
        b.iter(|| detc::load::compile_text("flagship.rule", &text, &rules_dir()).unwrap())
    });
    let loads = detc::load::load(&[rules_dir()]).unwrap();
    assert!(loads.failures.is_empty());
    c.bench_function("evaluate every test of every rule", |b| {
        b.iter(|| {
            for l in &loads.rules {
                detc::eval::run_tests(&l.rule);
            }
        })
    });
    let rules: Vec<&detc::ir::Rule> = loads.rules.iter().map(|l| &l.rule).collect();
    let opts = detc::build::Options {
        lossy: true,
        ..Default::default()
    };
    c.bench_function("render every rule for every target", |b| {
        b.iter(|| detc::build::build(&rules, &opts))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
