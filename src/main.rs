//! The `detc` command line: a thin layer over the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use detc::backend::Target;
use detc::build;
use detc::load::{self, Loads};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "Exit codes:\n  0  success\n  1  a rule failed to check, a test failed, or a build lost a construct under --strict\n  2  usage or I/O error";

#[derive(Parser)]
#[command(name = "detc", version, about = "The detection compiler: one unified rule, native rules for every SIEM", after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check rule files (directories are searched for *.rule, skipping `invalid/`)
    #[command(after_help = EXIT_CODES)]
    Check {
        #[arg(default_value = "rules")]
        paths: Vec<PathBuf>,
    },
    /// Run every rule's test events through the reference evaluator
    #[command(after_help = EXIT_CODES)]
    Test {
        #[arg(default_value = "rules")]
        paths: Vec<PathBuf>,
    },
    /// Evaluate one rule over a file of events (NDJSON, a JSON array, or an Event Hub `{"records": [...]}` file)
    #[command(after_help = EXIT_CODES)]
    Eval {
        #[arg(long)]
        rule: PathBuf,
        #[arg(long)]
        events: PathBuf,
        /// Platform of the events (default: the rule's first platform)
        #[arg(long)]
        platform: Option<String>,
    },
    /// Render every rule for every target into the output directory (replaced atomically)
    #[command(after_help = EXIT_CODES)]
    Build {
        #[arg(default_value = "rules")]
        paths: Vec<PathBuf>,
        /// Output directory
        #[arg(long, default_value = "dist")]
        out: PathBuf,
        /// Targets to render, comma-separated (default: all)
        #[arg(long, value_delimiter = ',', value_parser = parse_target)]
        target: Vec<Target>,
        /// Accept constructs a target cannot express, as visible notes in the output and the report
        #[arg(long)]
        lossy: bool,
        /// Treat every note, even a setting the format has no place for, as an error
        #[arg(long, conflicts_with = "lossy")]
        strict: bool,
    },
    /// List the canonical fields of a log source (all sources without an argument)
    #[command(after_help = EXIT_CODES)]
    Fields { source: Option<String> },
    /// Print a rule's intermediate representation as YAML
    #[command(after_help = EXIT_CODES)]
    Ir { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check { paths } => {
            let loads = load_or_usage(&paths)?;
            print_failures(&loads);
            let n = loads.rules.len();
            if loads.failures.is_empty() {
                println!("checked {n} rule(s): ok");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "{} file(s) failed to check; {n} rule(s) ok",
                    loads.failures.len()
                );
                Ok(ExitCode::from(1))
            }
        }
        Command::Test { paths } => {
            let loads = load_or_usage(&paths)?;
            print_failures(&loads);
            let (mut passed, mut failed) = (0usize, 0usize);
            let mut out = std::io::stdout().lock();
            for l in &loads.rules {
                for r in detc::eval::run_tests(&l.rule) {
                    let status = if r.ok { "ok  " } else { "FAIL" };
                    writeln!(
                        out,
                        "{status} {} :: {} [{}] {}",
                        l.rule.name, r.name, r.platform, r.detail
                    )?;
                    if r.ok {
                        passed += 1;
                    } else {
                        failed += 1;
                    }
                }
            }
            writeln!(out, "{passed} passed, {failed} failed")?;
            Ok(if failed == 0 && loads.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Eval {
            rule,
            events,
            platform,
        } => {
            let rules = match load::compile_path(&rule) {
                Ok(r) => r,
                Err(report) => {
                    eprint!("{report}");
                    return Ok(ExitCode::from(1));
                }
            };
            let rule = rules.into_iter().next().context("no rule in file")?;
            let platform = match platform {
                Some(p) => p,
                None => rule.detections[0].platforms[0].clone(),
            };
            if !rule
                .detections
                .iter()
                .any(|d| d.platforms.contains(&platform))
            {
                anyhow::bail!("rule `{}` does not cover platform `{platform}`", rule.name);
            }
            let text = std::fs::read_to_string(&events)
                .with_context(|| format!("reading {}", events.display()))?;
            let records = detc::eval::parse_records(&text)
                .with_context(|| format!("parsing {}", events.display()))?;
            let mut ev = detc::eval::Evaluator::new();
            let mut out = std::io::stdout().lock();
            for (i, record) in records.iter().enumerate() {
                let v = ev
                    .eval_record(&rule, &platform, record)
                    .context("platform not covered")?;
                let line = serde_json::json!({
                    "index": i,
                    "match": v.matched,
                    "indicators": v.indicators,
                    "severity": v.severity,
                });
                writeln!(out, "{line}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Build {
            paths,
            out,
            target,
            lossy,
            strict,
        } => {
            let loads = load_or_usage(&paths)?;
            print_failures(&loads);
            if !loads.failures.is_empty() {
                eprintln!(
                    "build failed: {} file(s) did not check; {} left unchanged",
                    loads.failures.len(),
                    out.display()
                );
                return Ok(ExitCode::from(1));
            }
            let targets = if target.is_empty() {
                Target::ALL.to_vec()
            } else {
                target
            };
            let opts = build::Options {
                targets,
                lossy,
                strict,
            };
            let rules: Vec<&detc::ir::Rule> = loads.rules.iter().map(|l| &l.rule).collect();
            let b = build::build(&rules, &opts);
            if !b.errors.is_empty() {
                for e in &b.errors {
                    eprintln!("error: {e}");
                }
                eprintln!(
                    "build failed: {} error(s); {} left unchanged",
                    b.errors.len(),
                    out.display()
                );
                return Ok(ExitCode::from(1));
            }
            build::write_atomically(&out, &b.files)
                .with_context(|| format!("writing {}", out.display()))?;
            let notes: Vec<String> = b.losses.iter().map(|(t, n)| format!("{t} {n}")).collect();
            println!(
                "built {} rule(s) for {} into {} ({} files); notes on what a target cannot express: {}; see {}/REPORT.md",
                rules.len(),
                opts.targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
                out.display(),
                b.files.len(),
                if notes.is_empty() { "none".to_string() } else { notes.join(", ") },
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Fields { source } => {
            let mut out = std::io::stdout().lock();
            let mut found = false;
            for cat in detc::sources::catalogs() {
                if source.as_ref().is_some_and(|s| s != &cat.source) {
                    continue;
                }
                found = true;
                writeln!(
                    out,
                    "{} (platforms: {})",
                    cat.source,
                    cat.platforms.join(", ")
                )?;
                for f in &cat.fields {
                    let ty =
                        format!("{:?}{}", f.ty, if f.array { "[]" } else { "" }).to_lowercase();
                    writeln!(out, "  {:<60} {ty}", f.path)?;
                }
            }
            if !found {
                anyhow::bail!("unknown source `{}`", source.unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ir { file } => match load::compile_path(&file) {
            Ok(rules) => {
                for r in rules {
                    print!("{}", detc::ir::to_yaml(&r)?);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(report) => {
                eprint!("{report}");
                Ok(ExitCode::from(1))
            }
        },
    }
}

fn load_or_usage(paths: &[PathBuf]) -> Result<Loads> {
    load::load(paths).map_err(anyhow::Error::msg)
}

fn print_failures(loads: &Loads) {
    for f in &loads.failures {
        eprint!("{f}");
    }
}

fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(s).ok_or_else(|| format!("unknown target `{s}` ({})", Target::names()))
}
