//! Write a generated rule corpus: `cargo run --release --example gen_corpus -- N DIR [SEED]`
//! writes N distinct, valid rules to DIR/rules/ (with the sample events they
//! test against in DIR/rules/events/). See benches/corpus/mod.rs.

#[path = "../benches/corpus/mod.rs"]
mod corpus;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(n), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: gen_corpus N DIR [SEED]");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let seed: u64 = args
        .get(2)
        .map_or(1, |s| s.parse().expect("SEED is a number"));
    let rules = corpus::write(std::path::Path::new(dir), n, seed).expect("write the corpus");
    println!("wrote {n} rules to {}", rules.display());
}
