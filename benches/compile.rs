//! Speed of the stages, per rule and over a generated corpus (see
//! benches/corpus): parse + check, the reference evaluator over every test
//! event, rendering one rule for each target, and a whole in-memory build of
//! 1,000 generated rules. `cargo bench`; whole-process figures (wall time and
//! peak memory of `detc build` at 300, 3,000 and 30,000 rules, beside
//! pySigma) come from benches/process.sh.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use detc::backend::Target;

#[path = "corpus/mod.rs"]
mod corpus;

fn flagship_text() -> String {
    std::fs::read_to_string(corpus::repo_rules().join("k8s_cronjob_job_write.rule")).unwrap()
}

fn compile(name: &str, text: &str) -> detc::ir::Rule {
    detc::load::compile_text(name, text, &corpus::repo_rules())
        .unwrap_or_else(|r| panic!("{r}"))
        .remove(0)
}

fn per_rule(c: &mut Criterion) {
    let gen = corpus::Corpus::new(1);
    // A generated rule and a generated flagship copy (4 tests each), and the flagship itself (51 tests).
    let rules = [
        ("generated", gen.rule(1).1),
        ("flagship_copy", gen.rule(0).1),
        ("flagship", flagship_text()),
    ];
    let mut g = c.benchmark_group("parse+check per rule");
    for (name, text) in &rules {
        g.bench_with_input(BenchmarkId::from_parameter(name), text, |b, text| {
            b.iter(|| compile("bench.rule", text))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("evaluate the tests of one rule");
    for (name, text) in &rules {
        let rule = compile("bench.rule", text);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| detc::eval::run_tests(&rule))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("render per target per rule");
    for (name, text) in &rules {
        let rule = compile("bench.rule", text);
        for target in Target::ALL {
            g.bench_function(BenchmarkId::new(target.name(), name), |b| {
                b.iter(|| detc::build::render(&rule, target))
            });
        }
    }
    g.finish();
}

fn whole_build(c: &mut Criterion) {
    const N: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = corpus::write(dir.path(), N, 1).unwrap();
    let loads = detc::load::load(std::slice::from_ref(&rules_dir)).unwrap();
    assert!(loads.failures.is_empty());
    let rules: Vec<&detc::ir::Rule> = loads.rules.iter().map(|l| &l.rule).collect();
    let opts = detc::build::Options::default();
    assert!(detc::build::build(&rules, &opts).errors.is_empty());
    let mut g = c.benchmark_group("whole build");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("load 1,000 generated rules", |b| {
        b.iter(|| detc::load::load(std::slice::from_ref(&rules_dir)).unwrap())
    });
    g.bench_function("build 1,000 generated rules in memory, every target", |b| {
        b.iter(|| detc::build::build(&rules, &opts))
    });
    g.finish();
}

criterion_group!(benches, per_rule, whole_build);
criterion_main!(benches);
