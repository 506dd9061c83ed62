//! The `detc` command line: a thin layer over the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use detc::backend::Target;
use detc::build;
use detc::load::{self, Loads};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: a build allocates and frees millions of small strings from two
/// threads, and glibc's malloc spent a quarter of a build's time on them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The largest events file `detc eval` reads.
const EVENTS_FILE_LIMIT: u64 = 256 * 1024 * 1024;

const EXIT_CODES: &str = "Exit codes:\n  0  success\n  1  a rule failed to check, a test failed, or a build lost a construct under --strict\n  2  usage or I/O error";

#[derive(Parser)]
#[command(name = "detc", version, about = "The detection compiler: one unified rule, native rules for every SIEM", after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options that change what some backends render; `build`, `build --check`,
/// `lock` and `diff` take the same ones, so they render the same files.
#[derive(clap::Args, Debug, Default)]
struct RenderArgs {
    /// Panther: the log type PLATFORM's records are onboarded under, instead of the built-in one
    /// (repeatable). For a self-managed cluster onboarded under a custom schema:
    /// kubernetes=Custom.KubernetesAudit. Default: kubernetes and eks read Amazon.EKS.Audit, aks
    /// Azure.MonitorActivity, gke GCP.AuditLog, azure Azure.MonitorActivity
    #[arg(long = "panther-log-type", value_name = "PLATFORM=LOGTYPE")]
    panther_log_type: Vec<String>,
}

impl RenderArgs {
    fn settings(&self) -> Result<detc::backend::Settings> {
        Ok(detc::backend::Settings {
            panther: detc::backend::panther::Settings::parse(&self.panther_log_type)
                .map_err(anyhow::Error::msg)?,
        })
    }
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
        /// Only the rules that differ from this git revision (new or changed, events included)
        #[arg(long, value_name = "REV")]
        changed: Option<String>,
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
        /// The rule to evaluate, when the file holds several
        #[arg(long)]
        name: Option<String>,
    },
    /// Render every rule for every target into the output directory (replaced atomically)
    #[command(after_help = EXIT_CODES)]
    Build {
        #[arg(default_value = "rules")]
        paths: Vec<PathBuf>,
        /// Output directory [default: dist]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Targets to render, comma-separated (default: all)
        #[arg(long, value_delimiter = ',', value_parser = parse_target)]
        target: Vec<Target>,
        /// Accept constructs a target cannot express, as visible notes in the output and the report
        #[arg(long)]
        lossy: bool,
        /// Treat every note, even a setting the format has no place for, as an error
        #[arg(long, conflicts_with = "lossy")]
        strict: bool,
        /// Write nothing: compare a fresh build with the output directory (when it exists or
        /// --out is given) and check the version lock; exit 1 on any difference
        #[arg(long)]
        check: bool,
        /// Only the rules that differ from this git revision
        #[arg(long, value_name = "REV")]
        changed: Option<String>,
        /// The version lock [default: detc.lock]; its versions go into the generated files
        #[arg(long, default_value = detc::workflow::lock::DEFAULT_PATH)]
        lock: PathBuf,
        /// Leave out the Splunk data sources and stories that splunk/security_content already
        /// defines, for output merged into that repository
        #[arg(long)]
        splunk_security_content: bool,
        #[command(flatten)]
        render: RenderArgs,
    },
    /// Bump the version of every rule and target whose generated output changed, and rewrite the lock
    #[command(after_help = EXIT_CODES)]
    Lock {
        #[arg(default_value = "rules")]
        paths: Vec<PathBuf>,
        #[arg(long, default_value = detc::workflow::lock::DEFAULT_PATH)]
        lock: PathBuf,
        #[command(flatten)]
        render: RenderArgs,
    },
    /// What changes between two rule trees or git revisions, per rule and target, with test verdicts
    #[command(after_help = EXIT_CODES)]
    Diff {
        /// A rule directory or file, or a git revision (`origin/main`)
        base: String,
        /// A rule directory or file, or a git revision (`HEAD`)
        head: String,
        /// Where the rules are inside a git revision (relative to the current directory)
        #[arg(long, default_value = "rules")]
        rules: Vec<PathBuf>,
        /// `markdown` (for a pull-request comment) or `json`
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "json"])]
        format: String,
        #[command(flatten)]
        render: RenderArgs,
    },
    /// Print rule files in the canonical layout (in place; --check only reports)
    #[command(after_help = EXIT_CODES)]
    Fmt {
        #[arg(default_value = "rules")]
        paths: Vec<PathBuf>,
        /// Change nothing; list the files that are not formatted and exit 1 if there are any
        #[arg(long)]
        check: bool,
    },
    /// Write a new rule file from a template, with a fresh id and today's date
    #[command(after_help = EXIT_CODES)]
    New {
        /// The rule name (letters, digits, `_`); also the file name
        name: String,
        /// The log source, such as `kubernetes.audit` (`detc fields` lists them)
        #[arg(long)]
        source: String,
        /// Platforms to cover (default: all of the source's), repeated or comma-separated
        #[arg(long, value_delimiter = ',')]
        platform: Vec<String>,
        /// Directory to write NAME.rule into
        #[arg(long, default_value = "rules")]
        dir: PathBuf,
        /// The author (default: `git config user.name`)
        #[arg(long)]
        author: Option<String>,
    },
    /// List the canonical fields of a log source (all sources without an argument)
    #[command(after_help = EXIT_CODES)]
    Fields { source: Option<String> },
    /// Print a rule's intermediate representation as YAML
    #[command(after_help = EXIT_CODES)]
    Ir { file: PathBuf },
    /// Run every rule test through every engine that runs here (the generated Panther Python,
    /// sigma-rust, EQL, ES|QL and KQL evaluators) and compare each verdict with detc's evaluator;
    /// exit 1 on any disagreement
    #[command(after_help = VERIFY_HELP)]
    Verify {
        #[arg(default_value = "rules")]
        paths: Vec<PathBuf>,
        /// `markdown` (a table of rule x test x engine) or `json`
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "json"])]
        format: String,
        /// Count a verdict changed by a loss the rule accepts (`lossy`, named in the build
        /// report) as a disagreement too
        #[arg(long)]
        strict: bool,
    },
}

const VERIFY_HELP: &str = "The Python engines run with the validator venvs under $DETC_VENV_DIR (default: <repository>/.venv, built by .ci/setup-validators); an engine that is not installed is \"not checked\", and an error when $CI is set. Splunk is never checked: no SPL engine runs here. A verdict changed by a loss the rule accepts (`lossy`, named in the build report) is shown as `lossy` and passes, unless --strict.\n\nExit codes:\n  0  no disagreement\n  1  an engine disagrees with detc's evaluator (under --strict, also through a loss the rule accepts), a test fails in the evaluator, a rule failed to check, or (under $CI) an engine is missing\n  2  usage or I/O error";

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
        Command::Test { paths, changed } => {
            let loads = load_selected(&paths, changed.as_deref())?;
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
            name,
        } => {
            let rules = match load::compile_path(&rule) {
                Ok(r) => r,
                Err(report) => {
                    eprint!("{report}");
                    return Ok(ExitCode::from(1));
                }
            };
            let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
            let rule = match (name, rules.len()) {
                (Some(n), _) => rules.into_iter().find(|r| r.name == n).with_context(|| {
                    format!("no rule `{n}` in the file (it holds {})", names.join(", "))
                })?,
                (None, 1) => rules.into_iter().next().context("no rule in file")?,
                (None, _) => anyhow::bail!(
                    "the file holds several rules ({}): choose one with --name",
                    names.join(", ")
                ),
            };
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
            // Events files may be large, but not endless (a pipe, /dev/zero).
            let bytes = detc::files::read_bounded(&events, EVENTS_FILE_LIMIT)
                .with_context(|| format!("reading {}", events.display()))?;
            let text = String::from_utf8(bytes)
                .with_context(|| format!("reading {}: not UTF-8", events.display()))?;
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
            check,
            changed,
            lock,
            splunk_security_content,
            render,
        } => {
            let settings = render.settings()?;
            let loads = load_selected(&paths, changed.as_deref())?;
            let locked = detc::workflow::lock::Lock::read(&lock).map_err(anyhow::Error::msg)?;
            if check {
                return build_check(
                    &loads,
                    out,
                    target,
                    lossy,
                    strict,
                    splunk_security_content,
                    changed.is_none(),
                    &lock,
                    locked.as_ref(),
                    settings,
                );
            }
            let out = out.unwrap_or_else(|| PathBuf::from("dist"));
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
                splunk_security_content,
                settings,
            };
            let rules: Vec<&detc::ir::Rule> = loads.rules.iter().map(|l| &l.rule).collect();
            let b = build::build_to_dir(
                &rules,
                &opts,
                |r, t| {
                    locked
                        .as_ref()
                        .map_or(r.meta.version, |l| l.version(&r.name, t))
                },
                &out,
            )
            .with_context(|| format!("writing {}", out.display()))?;
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
            let notes: Vec<String> = b.losses.iter().map(|(t, n)| format!("{t} {n}")).collect();
            println!(
                "built {} rule(s) for {} into {} ({} files); notes on what a target cannot express: {}; see {}/REPORT.md",
                rules.len(),
                opts.targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
                out.display(),
                b.file_count,
                if notes.is_empty() { "none".to_string() } else { notes.join(", ") },
                out.display()
            );
            if !b.platforms.is_empty() {
                println!(
                    "platforms served (targets that serve the platform in every detection): {}",
                    b.coverage_summary(&opts.targets)
                );
            }
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
        Command::Verify {
            paths,
            format,
            strict,
        } => verify_cmd(&paths, &format, strict),
        Command::Ir { file } => match load::compile_path(&file) {
            Ok(rules) => {
                for r in rules {
                    // Quoted so that YAML 1.1 readers (PyYAML) read `yes` or
                    // `=` back as strings.
                    print!(
                        "{}",
                        detc::backend::yaml::emit_yaml(&detc::ir::to_value(&r)?)
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(report) => {
                eprint!("{report}");
                Ok(ExitCode::from(1))
            }
        },
        Command::Lock {
            paths,
            lock,
            render,
        } => lock_cmd(&paths, &lock, &render.settings()?),
        Command::Diff {
            base,
            head,
            rules,
            format,
            render,
        } => diff_cmd(&base, &head, &rules, &format, &render.settings()?),
        Command::Fmt { paths, check } => fmt_cmd(&paths, check),
        Command::New {
            name,
            source,
            platform,
            dir,
            author,
        } => new_cmd(&name, &source, &platform, &dir, author),
    }
}

fn verify_cmd(paths: &[PathBuf], format: &str, strict: bool) -> Result<ExitCode> {
    let loads = load_or_usage(paths)?;
    print_failures(&loads);
    let rules: Vec<&detc::ir::Rule> = loads.rules.iter().map(|l| &l.rule).collect();
    let base = paths
        .first()
        .map(|p| {
            if p.is_dir() {
                p.clone()
            } else {
                p.parent().map(PathBuf::from).unwrap_or_default()
            }
        })
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let opts = detc::verify::Options {
        venv_dir: detc::verify::default_venv_dir(&base),
    };
    let report = detc::verify::verify(&rules, &opts).context("verify")?;
    let mut out = std::io::stdout().lock();
    if format == "json" {
        writeln!(out, "{}", report.json())?;
    } else {
        write!(out, "{}", report.markdown())?;
    }
    let t = report.tally();
    // In CI a missing engine is a failure, never a skip.
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    if ci && t.missing > 0 {
        eprintln!(
            "error: {} verdicts not checked because an engine is not installed (CI is set): run .ci/setup-validators",
            t.missing
        );
    }
    Ok(
        if t.disagree == 0
            && !(strict && t.lossy > 0)
            && t.reference_failures == 0
            && loads.failures.is_empty()
            && !(ci && t.missing > 0)
        {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
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

/// The rules under `paths`, or with `--changed REV` only those whose checked
/// form (events included) differs from the same paths at `REV`.
fn load_selected(paths: &[PathBuf], changed: Option<&str>) -> Result<Loads> {
    let mut loads = load_or_usage(paths)?;
    let Some(rev) = changed else {
        return Ok(loads);
    };
    let checkout = detc::workflow::git::checkout(rev).map_err(anyhow::Error::msg)?;
    let mut base = Vec::new();
    for p in paths {
        let p = detc::workflow::git::inside(&checkout, p).map_err(anyhow::Error::msg)?;
        if p.exists() {
            base.push(p);
        }
    }
    let before: std::collections::BTreeMap<String, String> = match load::load(&base) {
        Ok(l) => l
            .rules
            .iter()
            .map(|l| (l.rule.name.clone(), ir_text(&l.rule)))
            .collect(),
        Err(_) => Default::default(),
    };
    let all = loads.rules.len();
    loads
        .rules
        .retain(|l| before.get(&l.rule.name) != Some(&ir_text(&l.rule)));
    eprintln!(
        "--changed {rev}: {} of {all} rule(s) differ",
        loads.rules.len()
    );
    Ok(loads)
}

fn ir_text(rule: &detc::ir::Rule) -> String {
    detc::ir::to_yaml(rule).unwrap_or_default()
}

/// `detc build --check`: build in memory, compare with the output directory
/// and check the lock. Writes nothing.
#[allow(clippy::too_many_arguments)]
fn build_check(
    loads: &Loads,
    out: Option<PathBuf>,
    target: Vec<Target>,
    lossy: bool,
    strict: bool,
    splunk_security_content: bool,
    whole: bool,
    lock_path: &std::path::Path,
    locked: Option<&detc::workflow::lock::Lock>,
    settings: detc::backend::Settings,
) -> Result<ExitCode> {
    print_failures(loads);
    if !loads.failures.is_empty() {
        eprintln!(
            "check failed: {} file(s) did not check",
            loads.failures.len()
        );
        return Ok(ExitCode::from(1));
    }
    let all_targets = target.is_empty();
    let targets = if all_targets {
        Target::ALL.to_vec()
    } else {
        target
    };
    let opts = build::Options {
        targets: targets.clone(),
        lossy,
        strict,
        splunk_security_content,
        settings,
    };
    let rules: Vec<&detc::ir::Rule> = loads.rules.iter().map(|l| &l.rule).collect();
    let b = build::build_with(&rules, &opts, |r, t| {
        locked.map_or(r.meta.version, |l| l.version(&r.name, t))
    });
    if !b.errors.is_empty() {
        for e in &b.errors {
            eprintln!("error: {e}");
        }
        eprintln!("check failed: the build has {} error(s)", b.errors.len());
        return Ok(ExitCode::from(1));
    }
    let mut problems = 0usize;
    let dir = out.clone().unwrap_or_else(|| PathBuf::from("dist"));
    if out.is_some() || dir.exists() {
        // A partial build (some targets, or --changed) is compared on what it covers.
        let prefixes: Vec<String> = targets.iter().map(|t| format!("{}/", t.name())).collect();
        let in_scope = |p: &str| {
            if whole && all_targets {
                true
            } else if !whole {
                rules.iter().any(|r| p.contains(&r.name)) && p != "REPORT.md"
            } else {
                prefixes.iter().any(|x| p.starts_with(x))
            }
        };
        let drift = detc::workflow::drift::compare(&dir, &b.files, in_scope)
            .with_context(|| format!("reading {}", dir.display()))?;
        for d in &drift {
            println!("{d}");
        }
        if drift.is_empty() {
            println!("{}: up to date ({} files)", dir.display(), b.files.len());
        } else {
            println!(
                "{}: {} file(s) differ from a fresh build; run `detc build` and commit the result, and edit the .rule files, not the generated ones",
                dir.display(),
                drift.len()
            );
        }
        problems += drift.len();
    } else {
        println!(
            "{}: no such directory; only the version lock is checked",
            dir.display()
        );
    }
    match locked {
        Some(lock) => {
            let found = detc::workflow::lock::verify(
                lock,
                &rules,
                &targets,
                whole && all_targets,
                &opts.settings,
            )
            .map_err(anyhow::Error::msg)?;
            for p in &found {
                println!("lock: {p}");
            }
            if found.is_empty() {
                println!(
                    "{}: up to date ({} rule(s))",
                    lock_path.display(),
                    rules.len()
                );
            }
            problems += found.len();
        }
        None => println!(
            "{}: no lock; run `detc lock` to start versioning the generated rules",
            lock_path.display()
        ),
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `detc lock`: bump the version of changed outputs and rewrite the lock.
fn lock_cmd(
    paths: &[PathBuf],
    lock_path: &std::path::Path,
    settings: &detc::backend::Settings,
) -> Result<ExitCode> {
    use detc::workflow::lock::{relock, Lock};
    let loads = load_or_usage(paths)?;
    print_failures(&loads);
    if !loads.failures.is_empty() {
        eprintln!(
            "lock failed: {} file(s) did not check; {} left unchanged",
            loads.failures.len(),
            lock_path.display()
        );
        return Ok(ExitCode::from(1));
    }
    let old = Lock::read(lock_path)
        .map_err(anyhow::Error::msg)?
        .unwrap_or_default();
    let rules: Vec<&detc::ir::Rule> = loads.rules.iter().map(|l| &l.rule).collect();
    let (new, changes) =
        relock(&old, &rules, &Target::ALL, true, settings).map_err(anyhow::Error::msg)?;
    for c in &changes {
        println!("{c}");
    }
    if new == old && lock_path.exists() {
        println!("{}: up to date", lock_path.display());
    } else {
        std::fs::write(lock_path, new.to_text())
            .with_context(|| format!("writing {}", lock_path.display()))?;
        println!(
            "wrote {} ({} change(s))",
            lock_path.display(),
            changes.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One side of `detc diff`: a path, or a git revision checked out.
fn diff_side(
    spec: &str,
    rules: &[PathBuf],
) -> Result<(Option<detc::workflow::git::Checkout>, Vec<PathBuf>)> {
    if std::path::Path::new(spec).exists() {
        return Ok((None, vec![PathBuf::from(spec)]));
    }
    let c = detc::workflow::git::checkout(spec).map_err(anyhow::Error::msg)?;
    let paths = rules
        .iter()
        .map(|p| detc::workflow::git::inside(&c, p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    Ok((Some(c), paths))
}

/// `detc diff BASE HEAD`.
fn diff_cmd(
    base: &str,
    head: &str,
    rules: &[PathBuf],
    format: &str,
    settings: &detc::backend::Settings,
) -> Result<ExitCode> {
    let mut sides = Vec::new();
    for spec in [base, head] {
        let (checkout, paths) = diff_side(spec, rules)?;
        // A revision without rules (before the first rule) is an empty side.
        let loads = if paths.is_empty() {
            Loads::default()
        } else {
            load::load(&paths).map_err(anyhow::Error::msg)?
        };
        if !loads.failures.is_empty() {
            print_failures(&loads);
            eprintln!(
                "diff failed: {} file(s) at `{spec}` did not check",
                loads.failures.len()
            );
            return Ok(ExitCode::from(1));
        }
        sides.push((checkout, loads));
    }
    let ruleset = |l: &Loads| l.rules.iter().map(|l| l.rule.clone()).collect::<Vec<_>>();
    let (b, h) = (ruleset(&sides[0].1), ruleset(&sides[1].1));
    let report = detc::workflow::diff::compare(
        base,
        head,
        &b.iter().collect::<Vec<_>>(),
        &h.iter().collect::<Vec<_>>(),
        &Target::ALL,
        settings,
    );
    let mut out = std::io::stdout().lock();
    if format == "json" {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", detc::workflow::diff::markdown(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `detc fmt [--check]`.
fn fmt_cmd(paths: &[PathBuf], check: bool) -> Result<ExitCode> {
    let files = load::rule_files(paths).map_err(anyhow::Error::msg)?;
    let (mut unformatted, mut failed) = (0usize, 0usize);
    for path in files {
        let bytes = detc::files::read_bounded(&path, detc::syntax::MAX_FILE_BYTES as u64)
            .with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8(bytes)
            .with_context(|| format!("reading {}: not UTF-8", path.display()))?;
        match detc::workflow::fmt::format(&path.display().to_string(), &text) {
            Err(report) => {
                eprint!("{report}");
                failed += 1;
            }
            Ok(formatted) if formatted != text => {
                unformatted += 1;
                if check {
                    println!("not formatted: {}", path.display());
                } else {
                    std::fs::write(&path, formatted)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("formatted {}", path.display());
                }
            }
            Ok(_) => {}
        }
    }
    if check && unformatted > 0 {
        eprintln!("{unformatted} file(s) not formatted; run `detc fmt`");
    }
    Ok(if failed > 0 || (check && unformatted > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `detc new NAME --source S`.
fn new_cmd(
    name: &str,
    source: &str,
    platforms: &[String],
    dir: &std::path::Path,
    author: Option<String>,
) -> Result<ExitCode> {
    let author = author
        .or_else(|| {
            std::process::Command::new("git")
                .args(["config", "user.name"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "TODO: author".to_string());
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let text = detc::workflow::new::render(&detc::workflow::new::NewRule {
        name,
        source,
        platforms,
        author: &author,
        today: &today,
        id: uuid::Uuid::new_v4(),
    })
    .map_err(anyhow::Error::msg)?;
    let path = dir.join(format!("{name}.rule"));
    if path.exists() {
        anyhow::bail!("{} exists; choose another name", path.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {}: fill in the TODOs, then `detc check {}` and `detc test {}`",
        path.display(),
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
