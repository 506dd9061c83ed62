//! `detc build`: render every rule for every target, apply the loss policy,
//! write the build report, and replace the output directory atomically.
//!
//! Rules are rendered in parallel (rayon), each rule for every target, and
//! their files are handed to a sink as they are made: [`build_to_dir`]
//! writes them straight into the staging directory and drops them, so memory
//! holds the IR and a small summary per rule, not the output. [`build_with`]
//! collects the same files in memory (for `build --check`, `diff` and tests).
//! Everything order-dependent (errors, the report, shared files) is assembled
//! afterwards in rule order, so the output is byte-identical to a serial build.

use crate::backend::{Artifact, BackendError, Loss, LossKind, Settings, Target};
use crate::ir::Rule;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Options {
    pub targets: Vec<Target>,
    /// Accept unsupported constructs for every rule and target (as notes).
    pub lossy: bool,
    /// Every loss, even a format without a place for a setting, is an error.
    pub strict: bool,
    /// Leave out the Splunk data sources and stories splunk/security_content
    /// already defines (for output merged into that repository).
    pub splunk_security_content: bool,
    /// What some backends read (`--panther-log-type`).
    pub settings: Settings,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            targets: Target::ALL.to_vec(),
            lossy: false,
            strict: false,
            splunk_security_content: false,
            settings: Settings::default(),
        }
    }
}

/// What one target made of one rule, as the report reads it back from the
/// build's spool (the files' contents are gone by then: only their paths
/// are kept, and the notes and integrations are ids into [`Tables`]).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rule: String,
    pub target: Target,
    /// The files written (relative to `dist/<target>/`) and the losses, or the error.
    pub result: Result<(Vec<String>, Vec<Kept>), BackendError>,
    /// Which file serves which platform of each detection (empty on error).
    pub coverage: Vec<Covered>,
    /// Files whose rendered condition gives another verdict than the
    /// rule's on some of its tests: (file, the tests).
    pub verdicts: Vec<(String, Vec<String>)>,
}

/// A coverage row as the build keeps it: the integration label is an id
/// into [`Tables::vias`] (every rule served through it shares it).
#[derive(Debug, Clone)]
pub struct Covered {
    pub stem: String,
    pub source: String,
    pub platform: String,
    pub via: u32,
    /// Relative to `dist/<target>/`.
    pub file: String,
}

/// A loss as the build keeps it for the report: the detection's output stem
/// and its note, an id into [`Tables::notes`] (thousands of rules share a
/// handful of notes).
#[derive(Debug, Clone)]
pub struct Kept {
    pub stem: String,
    pub note: u32,
}

/// What was lost and why, without the detection.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Note {
    pub kind: LossKind,
    pub construct: String,
    pub reason: String,
}

/// The distinct notes and integration labels of a build, each once, by id
/// (ids are given in whatever order the rendering threads meet them; the
/// report orders by first appearance in build order).
#[derive(Debug, Default)]
pub struct Tables {
    pub notes: Vec<Arc<Note>>,
    pub vias: Vec<Arc<str>>,
}

impl Tables {
    pub fn note(&self, id: u32) -> &Note {
        &self.notes[id as usize]
    }
    pub fn via(&self, id: u32) -> &str {
        &self.vias[id as usize]
    }
    pub fn loss(&self, k: &Kept) -> Loss {
        let note = self.note(k.note);
        Loss {
            kind: note.kind,
            stem: k.stem.clone(),
            construct: note.construct.clone(),
            reason: note.reason.clone(),
        }
    }
}

/// The notes and integration labels seen so far, each once, shared by the
/// rendering threads.
#[derive(Default)]
struct Interner {
    notes: HashMap<Arc<Note>, u32>,
    vias: HashMap<Arc<str>, u32>,
    tables: Tables,
}

impl Interner {
    fn via(this: &Mutex<Interner>, s: &str) -> u32 {
        let mut i = this.lock().expect("no panic while holding the lock");
        if let Some(&id) = i.vias.get(s) {
            return id;
        }
        let v: Arc<str> = Arc::from(s);
        let id = i.tables.vias.len() as u32;
        i.tables.vias.push(v.clone());
        i.vias.insert(v, id);
        id
    }

    fn keep(this: &Mutex<Interner>, loss: Loss) -> Kept {
        let note = Note {
            kind: loss.kind,
            construct: loss.construct,
            reason: loss.reason,
        };
        let mut i = this.lock().expect("no panic while holding the lock");
        let id = match i.notes.get(&note) {
            Some(&id) => id,
            None => {
                let n = Arc::new(note);
                let id = i.tables.notes.len() as u32;
                i.tables.notes.push(n.clone());
                i.notes.insert(n, id);
                id
            }
        };
        Kept {
            stem: loss.stem,
            note: id,
        }
    }
}

/// Where the build keeps its per-rule summaries until the report is
/// written: one spool per target, the outcomes in rule order, encoded
/// compactly. A build to a directory spools to an unnamed temporary file
/// beside the output, so memory does not grow with the number of rules.
enum Spool {
    Memory(Vec<u8>),
    File(std::io::BufWriter<std::fs::File>),
}

impl Spool {
    fn new(dir: Option<&Path>) -> std::io::Result<Spool> {
        Ok(match dir {
            None => Spool::Memory(Vec::new()),
            Some(d) => Spool::File(std::io::BufWriter::new(tempfile::tempfile_in(d)?)),
        })
    }

    fn push(&mut self, o: &Outcome) -> std::io::Result<()> {
        match self {
            Spool::Memory(v) => encode(v, o),
            Spool::File(f) => encode(f, o),
        }
    }

    /// The outcomes in the order they were pushed, each decoded in turn.
    fn each(
        &mut self,
        rules: &[&Rule],
        target: Target,
        f: &mut dyn FnMut(&Outcome),
    ) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        match self {
            Spool::Memory(v) => {
                let mut r: &[u8] = v;
                for rule in rules {
                    f(&decode(&mut r, rule, target)?);
                }
            }
            Spool::File(w) => {
                w.flush()?;
                let file = w.get_mut();
                file.seek(SeekFrom::Start(0))?;
                let mut r = std::io::BufReader::with_capacity(1 << 16, &*file);
                for rule in rules {
                    f(&decode(&mut r, rule, target)?);
                }
                drop(r);
                file.seek(SeekFrom::End(0))?;
            }
        }
        Ok(())
    }
}

fn put_u32(w: &mut impl Write, n: usize) -> std::io::Result<()> {
    let n = u32::try_from(n).map_err(|_| std::io::Error::other("spool: over 4 GB"))?;
    w.write_all(&n.to_le_bytes())
}

fn put_str(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    put_u32(w, s.len())?;
    w.write_all(s.as_bytes())
}

fn get_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn get_str(r: &mut impl Read) -> std::io::Result<String> {
    let mut b = vec![0; get_u32(r)? as usize];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(std::io::Error::other)
}

fn put_strs(w: &mut impl Write, v: &[String]) -> std::io::Result<()> {
    put_u32(w, v.len())?;
    v.iter().try_for_each(|s| put_str(w, s))
}

fn get_strs(r: &mut impl Read) -> std::io::Result<Vec<String>> {
    (0..get_u32(r)?).map(|_| get_str(r)).collect()
}

/// An outcome without its rule and target (the spool it is in says those).
fn encode(w: &mut impl Write, o: &Outcome) -> std::io::Result<()> {
    match &o.result {
        Ok((files, losses)) => {
            w.write_all(&[0])?;
            put_strs(w, files)?;
            put_u32(w, losses.len())?;
            for k in losses {
                put_str(w, &k.stem)?;
                put_u32(w, k.note as usize)?;
            }
        }
        Err(e) => {
            w.write_all(&[1])?;
            put_str(w, &e.0)?;
        }
    }
    put_u32(w, o.coverage.len())?;
    for c in &o.coverage {
        put_str(w, &c.stem)?;
        put_str(w, &c.source)?;
        put_str(w, &c.platform)?;
        put_u32(w, c.via as usize)?;
        put_str(w, &c.file)?;
    }
    put_u32(w, o.verdicts.len())?;
    for (file, tests) in &o.verdicts {
        put_str(w, file)?;
        put_strs(w, tests)?;
    }
    Ok(())
}

fn decode(r: &mut impl Read, rule: &Rule, target: Target) -> std::io::Result<Outcome> {
    let mut tag = [0];
    r.read_exact(&mut tag)?;
    let result = if tag[0] == 0 {
        let files = get_strs(r)?;
        let losses = (0..get_u32(r)?)
            .map(|_| {
                Ok(Kept {
                    stem: get_str(r)?,
                    note: get_u32(r)?,
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok((files, losses))
    } else {
        Err(BackendError(get_str(r)?))
    };
    let coverage = (0..get_u32(r)?)
        .map(|_| {
            Ok(Covered {
                stem: get_str(r)?,
                source: get_str(r)?,
                platform: get_str(r)?,
                via: get_u32(r)?,
                file: get_str(r)?,
            })
        })
        .collect::<std::io::Result<_>>()?;
    let verdicts = (0..get_u32(r)?)
        .map(|_| Ok((get_str(r)?, get_strs(r)?)))
        .collect::<std::io::Result<_>>()?;
    Ok(Outcome {
        rule: rule.name.clone(),
        target,
        result,
        coverage,
        verdicts,
    })
}

/// Render one rule for one target, with the default settings.
pub fn render(rule: &Rule, target: Target) -> Result<crate::backend::Rendered, BackendError> {
    crate::backend::backend(target).render(rule)
}

/// Render one rule for one target under build settings.
pub fn render_with(
    rule: &Rule,
    target: Target,
    settings: &Settings,
) -> Result<crate::backend::Rendered, BackendError> {
    crate::backend::backend(target).render_with(rule, settings)
}

/// The build: files relative to the output directory (empty when they were
/// streamed to disk) and errors; `REPORT.md` and `REPORT.json` are among the files.
#[derive(Debug, Default)]
pub struct Build {
    pub files: BTreeMap<String, String>,
    /// How many files the build made (REPORT.md and REPORT.json included).
    pub file_count: usize,
    pub errors: Vec<String>,
    /// Losses per target, for the command's summary line.
    pub losses: BTreeMap<Target, usize>,
    /// Per platform and target: how many detections a file serves there,
    /// and how many lose the platform, for the summary line.
    pub platforms: BTreeMap<String, BTreeMap<Target, (usize, usize)>>,
}

impl Build {
    /// `aks 6/6 targets, eks 5/6 (lost: sentinel), ...`: per platform, the
    /// targets that serve it in every detection, and those that lose it.
    pub fn coverage_summary(&self, targets: &[Target]) -> String {
        self.platforms
            .iter()
            .map(|(p, per)| {
                let lost: Vec<&str> = targets
                    .iter()
                    .filter(|t| per.get(t).is_none_or(|&(_, l)| l > 0))
                    .map(|t| t.name())
                    .collect();
                let served = targets.len() - lost.len();
                if lost.is_empty() {
                    format!("{p} {served}/{}", targets.len())
                } else {
                    format!("{p} {served}/{} (lost: {})", targets.len(), lost.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn build(rules: &[&Rule], opts: &Options) -> Build {
    build_with(rules, opts, |rule, _| rule.meta.version)
}

/// [`build`], with the version each rule's files carry for each target
/// (from `detc.lock`, see [`crate::workflow::lock`]). The files are kept in memory.
pub fn build_with(
    rules: &[&Rule],
    opts: &Options,
    version: impl Fn(&Rule, Target) -> u32 + Sync,
) -> Build {
    let sink = MemorySink::default();
    let mut b =
        build_streaming(rules, opts, version, &sink, None).expect("writing to memory cannot fail");
    b.files = sink
        .0
        .into_inner()
        .expect("no panic while holding the lock");
    b
}

/// [`build_with`], writing each file into a staging directory as soon as it
/// is rendered, then swapping it in for `out` when the build has no error
/// (otherwise `out` is left untouched). `Build::files` stays empty.
pub fn build_to_dir(
    rules: &[&Rule],
    opts: &Options,
    version: impl Fn(&Rule, Target) -> u32 + Sync,
    out: &Path,
) -> std::io::Result<Build> {
    let parent = parent_of(out);
    std::fs::create_dir_all(&parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".detc-staging-")
        .tempdir_in(&parent)?;
    let sink = DirSink(staging.path());
    let b = build_streaming(rules, opts, version, &sink, Some(&parent))?;
    if b.errors.is_empty() {
        swap_in(staging.keep(), out)?;
    }
    Ok(b)
}

/// Where the build's files go. Called from several threads.
trait Sink: Sync {
    /// A file and its contents.
    fn file(&self, rel: &str, contents: String) -> std::io::Result<()>;
    /// A file written piece by piece (the reports, which are too large to
    /// hold whole at tens of thousands of rules).
    fn stream(
        &self,
        rel: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<()>;
}

#[derive(Default)]
struct MemorySink(Mutex<BTreeMap<String, String>>);

impl Sink for MemorySink {
    fn file(&self, rel: &str, contents: String) -> std::io::Result<()> {
        self.0
            .lock()
            .expect("no panic while holding the lock")
            .insert(rel.to_string(), contents);
        Ok(())
    }
    fn stream(
        &self,
        rel: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut v = Vec::new();
        write(&mut v)?;
        self.file(rel, String::from_utf8(v).map_err(std::io::Error::other)?)
    }
}

struct DirSink<'a>(&'a Path);

impl DirSink<'_> {
    fn path(&self, rel: &str) -> std::io::Result<PathBuf> {
        let path = self.0.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        Ok(path)
    }
}

impl Sink for DirSink<'_> {
    fn file(&self, rel: &str, contents: String) -> std::io::Result<()> {
        std::fs::write(self.path(rel)?, contents)
    }
    fn stream(
        &self,
        rel: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut w =
            std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(self.path(rel)?)?);
        write(&mut w)?;
        w.flush()
    }
}

/// One rule's part of the build, made on any thread.
struct RuleResult {
    test_errors: Vec<String>,
    /// Per target of `opts.targets`, in order.
    targets: Vec<Outcome>,
}

fn build_rule(
    rule: &Rule,
    opts: &Options,
    version: &(dyn Fn(&Rule, Target) -> u32 + Sync),
    sink: &dyn Sink,
    interner: &Mutex<Interner>,
) -> std::io::Result<RuleResult> {
    // A rule whose own tests fail is not built for any target.
    let test_errors = crate::eval::run_tests(rule)
        .into_iter()
        .filter(|t| !t.ok)
        .map(|t| {
            format!(
                "{}: test {:?} [{}] fails: {}",
                rule.name, t.name, t.platform, t.detail
            )
        })
        .collect();
    let mut targets = Vec::with_capacity(opts.targets.len());
    for &target in &opts.targets {
        let v = version(rule, target);
        let rendered = if v == rule.meta.version {
            render_with(rule, target, &opts.settings)
        } else {
            let mut versioned = rule.clone();
            versioned.meta.version = v;
            render_with(&versioned, target, &opts.settings)
        };
        let mut coverage = Vec::new();
        let mut verdicts = Vec::new();
        let result = match rendered {
            Ok(r) => {
                // The tests on what each file actually tests: a change must be
                // reported by the backend as a `match` loss.
                let mut silent = Vec::new();
                for c in &r.conditions {
                    let Some(det) = rule.detections.iter().find(|d| d.stem == c.stem) else {
                        continue;
                    };
                    if c.expr == det.condition {
                        continue;
                    }
                    let changes = crate::eval::verdict_changes(
                        rule,
                        det,
                        &c.platforms,
                        &det.inlined(&det.condition),
                        &det.inlined(&c.expr),
                    );
                    if changes.is_empty() {
                        continue;
                    }
                    let reported = r.losses.iter().any(|l| {
                        l.stem == c.stem
                            && l.kind == LossKind::Unsupported
                            && l.construct.starts_with("match")
                    });
                    if !reported {
                        silent.push(format!(
                            "{}: {target}: internal error: {} changes the verdict of the tests {} without reporting it",
                            rule.name,
                            c.file,
                            changes.join(", ")
                        ));
                    }
                    verdicts.push((c.file.clone(), changes));
                }
                if let Some(e) = silent.into_iter().next() {
                    targets.push(Outcome {
                        rule: rule.name.clone(),
                        target,
                        result: Err(BackendError(e)),
                        coverage: Vec::new(),
                        verdicts: Vec::new(),
                    });
                    continue;
                }
                coverage = r
                    .coverage
                    .into_iter()
                    .map(|c| Covered {
                        via: Interner::via(interner, &c.via),
                        stem: c.stem,
                        source: c.source,
                        platform: c.platform,
                        file: c.file,
                    })
                    .collect();
                let mut paths = Vec::with_capacity(r.files.len());
                for f in r.files {
                    sink.file(&format!("{}/{}", target.name(), f.path), f.contents)?;
                    paths.push(f.path);
                }
                Ok((
                    paths,
                    r.losses
                        .into_iter()
                        .map(|l| Interner::keep(interner, l))
                        .collect(),
                ))
            }
            Err(e) => Err(e),
        };
        targets.push(Outcome {
            rule: rule.name.clone(),
            target,
            result,
            coverage,
            verdicts,
        });
    }
    Ok(RuleResult {
        test_errors,
        targets,
    })
}

/// Rules rendered in parallel at a time: their summaries are taken in
/// rule order and spooled before the next ones are rendered.
const CHUNK: usize = 256;

/// The paths written so far, as 128-bit hashes (two SipHashes with
/// different keys): a collision between two different paths is about as
/// likely as 2^-128 per pair, and the set is 16 bytes a file, not the path.
#[derive(Default)]
struct Seen(HashSet<u128>);

impl Seen {
    fn insert(&mut self, path: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let h = |key: u8| {
            let mut s = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut s);
            path.hash(&mut s);
            s.finish()
        };
        self.0.insert((u128::from(h(1)) << 64) | u128::from(h(2)))
    }
}

/// What the report needs beyond the spooled outcomes, gathered in build
/// order; it grows with the distinct notes and detections, not the files.
struct Summary {
    /// Per target: rules, exact, with notes, failed, files, notes.
    counts: Vec<[usize; 6]>,
    /// Per target: each distinct note (id) in order of first appearance,
    /// with the rules (indices, each once) it applies to.
    notes: Vec<Vec<(u32, Vec<u32>)>>,
    note_index: Vec<HashMap<u32, usize>>,
    /// stem -> (target index, source) of the last coverage row in build
    /// order (target by target) that names it, and every stem the coverage
    /// section counts (lost ones have no source).
    stems: HashMap<String, Option<(usize, String)>>,
    /// Coverage rows per (target index, source, platform, integration).
    served: HashMap<(Target, String, String, u32), usize>,
    verdicts: bool,
    failed: bool,
}

fn build_streaming(
    rules: &[&Rule],
    opts: &Options,
    version: impl Fn(&Rule, Target) -> u32 + Sync,
    sink: &dyn Sink,
    spool_dir: Option<&Path>,
) -> std::io::Result<Build> {
    let nt = opts.targets.len();
    let interner = Mutex::new(Interner::default());
    let mut spools = (0..nt)
        .map(|_| Spool::new(spool_dir))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut b = Build::default();
    let mut target_errors: Vec<Vec<String>> = vec![Vec::new(); nt];
    let mut seen = Seen::default();
    let mut sum = Summary {
        counts: vec![[0; 6]; nt],
        notes: vec![Vec::new(); nt],
        note_index: vec![HashMap::new(); nt],
        stems: HashMap::new(),
        served: HashMap::new(),
        verdicts: false,
        failed: false,
    };
    let mut add = |errors: &mut Vec<String>, path: String| {
        if !seen.insert(&path) {
            errors.push(format!("two outputs write {path}"));
        }
    };
    for (c, chunk) in rules.chunks(CHUNK).enumerate() {
        let results: Vec<RuleResult> = chunk
            .par_iter()
            .map(|rule| build_rule(rule, opts, &version, sink, &interner))
            .collect::<std::io::Result<_>>()?;
        let guard = interner.lock().expect("no panic while holding the lock");
        let tables = &guard.tables;
        for (i, (rule, r)) in chunk.iter().zip(results).enumerate() {
            let ri = (c * CHUNK + i) as u32;
            b.errors.extend(r.test_errors);
            for (ti, outcome) in r.targets.into_iter().enumerate() {
                let target = &opts.targets[ti];
                let errors = &mut target_errors[ti];
                for c in &outcome.coverage {
                    b.platforms
                        .entry(c.platform.clone())
                        .or_default()
                        .entry(*target)
                        .or_default()
                        .0 += 1;
                    match sum.stems.get_mut(c.stem.as_str()) {
                        Some(Some((t, s))) if *t <= ti => {
                            *t = ti;
                            s.clone_from(&c.source);
                        }
                        Some(Some(_)) => {}
                        Some(e @ None) => *e = Some((ti, c.source.clone())),
                        None => {
                            sum.stems
                                .insert(c.stem.clone(), Some((ti, c.source.clone())));
                        }
                    }
                    *sum.served
                        .entry((*target, c.source.clone(), c.platform.clone(), c.via))
                        .or_default() += 1;
                }
                let counts = &mut sum.counts[ti];
                counts[0] += 1;
                counts[match &outcome.result {
                    Ok((_, losses)) if losses.is_empty() => 1,
                    Ok(_) => 2,
                    Err(_) => 3,
                }] += 1;
                sum.verdicts |= !outcome.verdicts.is_empty();
                match &outcome.result {
                    Ok((paths, losses)) => {
                        counts[4] += paths.len();
                        counts[5] += losses.len();
                        for k in losses {
                            if let Some(p) = lost_platform(tables.note(k.note)) {
                                b.platforms
                                    .entry(p.to_string())
                                    .or_default()
                                    .entry(*target)
                                    .or_default()
                                    .1 += 1;
                                if !sum.stems.contains_key(k.stem.as_str()) {
                                    sum.stems.insert(k.stem.clone(), None);
                                }
                            }
                            let notes = &mut sum.notes[ti];
                            let j = *sum.note_index[ti].entry(k.note).or_insert_with(|| {
                                notes.push((k.note, Vec::new()));
                                notes.len() - 1
                            });
                            let applies = &mut notes[j].1;
                            if applies.last().map(|&l| rules[l as usize].name.as_str())
                                != Some(rule.name.as_str())
                            {
                                applies.push(ri);
                            }
                        }
                        *b.losses.entry(*target).or_default() += losses.len();
                        for kept in losses {
                            let loss = tables.loss(kept);
                            let accepted = opts.lossy || rule.meta.lossy.contains(target);
                            let fatal =
                                opts.strict || (loss.kind == LossKind::Unsupported && !accepted);
                            if fatal {
                                let how = if opts.strict {
                                    "--strict makes every loss an error".to_string()
                                } else {
                                    format!("to accept it as a visible note, add `lossy = [{target}]` to the rule or build with --lossy")
                                };
                                errors.push(format!(
                                    "{}: {target}: cannot express {loss}; {how}",
                                    rule.name
                                ));
                            }
                        }
                        for p in paths {
                            add(errors, format!("{}/{p}", target.name()));
                        }
                    }
                    Err(e) => {
                        sum.failed = true;
                        errors.push(format!("{}: {target}: {e}", rule.name));
                    }
                }
                spools[ti].push(&outcome)?;
            }
        }
    }
    for (ti, target) in opts.targets.iter().enumerate() {
        let mut errors = std::mem::take(&mut target_errors[ti]);
        match crate::backend::backend(*target).shared(rules) {
            Ok(mut shared) => {
                if *target == Target::Splunk && opts.splunk_security_content {
                    let theirs = crate::backend::splunk::security_content_files();
                    shared.retain(|f| !theirs.contains(&f.path));
                }
                for Artifact { path, contents } in shared {
                    let path = format!("{}/{path}", target.name());
                    add(&mut errors, path.clone());
                    sink.file(&path, contents)?;
                }
            }
            Err(e) => errors.push(format!("{target}: {e}")),
        }
        b.errors.extend(errors);
    }
    let tables = interner
        .into_inner()
        .expect("no panic while holding the lock")
        .tables;
    let mut report = Report {
        rules,
        opts,
        tables: &tables,
        spools: &mut spools,
        sum: &sum,
    };
    sink.stream("REPORT.md", &mut |w| report.markdown(w))?;
    sink.stream("REPORT.json", &mut |w| report.json(w))?;
    b.file_count = seen.0.len() + 2;
    Ok(b)
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn kind_name(k: LossKind) -> &'static str {
    match k {
        LossKind::Unsupported => "unsupported",
        LossKind::NotApplicable => "not_applicable",
    }
}

fn status(r: &Outcome) -> &'static str {
    match &r.result {
        Ok((_, losses)) if losses.is_empty() => "exact",
        Ok(_) => "with notes",
        Err(_) => "failed",
    }
}

/// The platform an `unsupported` loss says a target cannot serve.
fn lost_platform(note: &Note) -> Option<&str> {
    (note.kind == LossKind::Unsupported)
        .then(|| note.construct.strip_prefix("platform "))
        .flatten()
}

/// Detections listed one by one in the report's coverage matrix; a larger
/// build lists the integrations only (REPORT.json has every row).
const MATRIX_DETECTIONS: usize = 50;

/// The reports, written from the spooled outcomes (read back target by
/// target, in build order) and the build's [`Summary`].
struct Report<'a> {
    rules: &'a [&'a Rule],
    opts: &'a Options,
    tables: &'a Tables,
    spools: &'a mut [Spool],
    sum: &'a Summary,
}

type Legend = HashMap<(Target, String, String, bool, String), usize>;

impl Report<'_> {
    /// Every outcome, target by target, each in rule order.
    fn each(&mut self, f: &mut dyn FnMut(&Outcome)) -> std::io::Result<()> {
        for (ti, t) in self.opts.targets.iter().enumerate() {
            self.spools[ti].each(self.rules, *t, f)?;
        }
        Ok(())
    }

    /// `dist/REPORT.md`: a summary per target, a table per target (one row
    /// per rule), the coverage, the verdict changes, then each distinct note
    /// once with the rules it applies to, then the failures.
    fn markdown(&mut self, w: &mut dyn Write) -> std::io::Result<()> {
        let opts = self.opts;
        let tables = self.tables;
        let sum = self.sum;
        write!(w, "# detc build report\n\n")?;
        writeln!(
            w,
            "Targets: {}. Losses: `unsupported` = the target cannot express the construct's meaning (an error unless the rule has `lossy = [target]` or the build ran with --lossy); `not_applicable` = the format has no place for the setting.{}\n",
            opts.targets.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
            if opts.strict { " Built with --strict." } else { "" }
        )?;
        w.write_all(b"| target | rules | exact | with notes | failed | files | notes |\n|---|---|---|---|---|---|---|\n")?;
        for (t, [rules, exact, with_notes, failed, files, notes]) in
            opts.targets.iter().zip(&sum.counts)
        {
            writeln!(
                w,
                "| {t} | {rules} | {exact} | {with_notes} | {failed} | {files} | {notes} |"
            )?;
        }
        // The coverage legend's lost rows, counted on the way.
        let mut legend: Legend = HashMap::new();
        for (ti, t) in opts.targets.iter().enumerate() {
            write!(
                w,
                "\n## {t}\n\n| rule | status | files | notes |\n|---|---|---|---|\n"
            )?;
            let mut res = Ok(());
            self.spools[ti].each(self.rules, *t, &mut |r| {
                let (files, losses) = match &r.result {
                    Ok((f, l)) => (
                        f.iter()
                            .map(|p| format!("`{p}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        l.len().to_string(),
                    ),
                    Err(_) => (String::new(), "-".into()),
                };
                if res.is_ok() {
                    res = writeln!(
                        w,
                        "| {} | {} | {} | {losses} |",
                        r.rule,
                        status(r),
                        cell(&files)
                    );
                }
                if let Ok((_, losses)) = &r.result {
                    for k in losses {
                        let note = tables.note(k.note);
                        if let Some(p) = lost_platform(note) {
                            let src = match sum.stems.get(k.stem.as_str()) {
                                Some(Some((_, s))) => s.as_str(),
                                _ => "-",
                            };
                            *legend
                                .entry((*t, src.into(), p.into(), true, note.reason.clone()))
                                .or_default() += 1;
                        }
                    }
                }
            })?;
            res?;
        }
        self.coverage(w, legend)?;
        w.write_all(b"\n## Verdict changes\n\nThe rule's tests run on the condition each generated file actually tests (what is left where a target drops a part). ")?;
        if !sum.verdicts {
            w.write_all(b"No file gives another verdict than the rule.\n")?;
        } else {
            w.write_all(b"These files give another verdict on the tests named (accepted: the rule is `lossy` for the target, and the file's notes say what was dropped):\n\n| rule | target | file | tests |\n|---|---|---|---|\n")?;
            let mut res = Ok(());
            self.each(&mut |r| {
                for (file, tests) in &r.verdicts {
                    if res.is_ok() {
                        res = writeln!(
                            w,
                            "| {} | {} | `{}` | {} |",
                            r.rule,
                            r.target,
                            cell(file),
                            cell(&tests.join(", "))
                        );
                    }
                }
            })?;
            res?;
        }
        w.write_all(
            b"\n## Notes\n\nEach distinct note once per target, with the rules it applies to.\n",
        )?;
        if sum.notes.iter().all(|n| n.is_empty()) {
            w.write_all(b"\nNone: every construct was rendered exactly.\n")?;
        }
        for (t, mine) in opts.targets.iter().zip(&sum.notes) {
            if mine.is_empty() {
                continue;
            }
            writeln!(w, "\n### {t}\n")?;
            for (id, rules) in mine {
                let note = tables.note(*id);
                writeln!(
                    w,
                    "- **{}** `{}`: {} ({} rule{}: {})",
                    kind_name(note.kind),
                    cell(&note.construct),
                    cell(&note.reason),
                    rules.len(),
                    if rules.len() == 1 { "" } else { "s" },
                    rules
                        .iter()
                        .map(|&r| format!("`{}`", self.rules[r as usize].name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
        }
        if sum.failed {
            w.write_all(b"\n## Failures\n\n")?;
            let mut res = Ok(());
            self.each(&mut |r| {
                if let (Err(e), Ok(())) = (&r.result, &res) {
                    res = writeln!(
                        w,
                        "- `{}` → {}: **failed**: {}",
                        r.rule,
                        r.target,
                        cell(&e.0)
                    );
                }
            })?;
            res?;
        }
        Ok(())
    }

    /// The report's coverage section: per target, source and platform the
    /// integration that serves it (or why none does), then the matrix of
    /// detection x platform x target naming each file.
    fn coverage(&mut self, w: &mut dyn Write, mut legend: Legend) -> std::io::Result<()> {
        let opts = self.opts;
        let tables = self.tables;
        w.write_all(
            b"\n## Coverage\n\nWhich integration serves each platform in each target, and which generated file reads it. \
             A platform a target cannot serve through its standard integration is an `unsupported` loss (**lost**).\n\n\
             | target | source | platform | integration | detections |\n|---|---|---|---|---|\n",
        )?;
        for ((t, src, p, via), n) in &self.sum.served {
            *legend
                .entry((
                    *t,
                    src.clone(),
                    p.clone(),
                    false,
                    tables.via(*via).to_string(),
                ))
                .or_default() += n;
        }
        let mut legend: Vec<_> = legend.into_iter().collect();
        let ord = |t: Target| opts.targets.iter().position(|x| *x == t);
        legend.sort_by(|a, b| {
            (ord(a.0 .0), &a.0 .1, &a.0 .2, a.0 .3, &a.0 .4).cmp(&(
                ord(b.0 .0),
                &b.0 .1,
                &b.0 .2,
                b.0 .3,
                &b.0 .4,
            ))
        });
        for ((t, src, p, lost, via), n) in &legend {
            let via = if *lost {
                format!("**lost**: {via}")
            } else {
                via.to_string()
            };
            writeln!(w, "| {t} | {src} | {p} | {} | {n} |", cell(&via))?;
        }
        let stems = self.sum.stems.len();
        if stems > MATRIX_DETECTIONS {
            writeln!(
                w,
                "\n{stems} detections: the matrix of files per detection is in REPORT.json (`coverage`)."
            )?;
            return Ok(());
        }
        // (rule, stem, platform) in first-seen order, then target -> cell.
        type Matrix = Vec<((String, String, String), BTreeMap<Target, String>)>;
        let mut matrix: Matrix = Vec::new();
        let mut index: HashMap<(String, String, String), usize> = Default::default();
        {
            let mut put = |key: (String, String, String), t: Target, text: String| {
                let i = *index.entry(key.clone()).or_insert_with(|| {
                    matrix.push((key, BTreeMap::new()));
                    matrix.len() - 1
                });
                let cells = &mut matrix[i].1;
                match cells.get_mut(&t) {
                    Some(c) => {
                        c.push_str("<br>");
                        c.push_str(&text);
                    }
                    None => {
                        cells.insert(t, text);
                    }
                }
            };
            self.each(&mut |r| {
                for c in &r.coverage {
                    put(
                        (r.rule.clone(), c.stem.clone(), c.platform.clone()),
                        r.target,
                        format!("`{}`", c.file),
                    );
                }
                if let Ok((_, losses)) = &r.result {
                    for k in losses {
                        if let Some(p) = lost_platform(tables.note(k.note)) {
                            put(
                                (r.rule.clone(), k.stem.clone(), p.to_string()),
                                r.target,
                                "**lost**".into(),
                            );
                        }
                    }
                }
            })?;
        }
        write!(
            w,
            "\n| rule | detection | platform | {} |\n|---|---|---|{}\n",
            opts.targets
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(opts.targets.len())
        )?;
        for ((rule, stem, p), cells) in &matrix {
            writeln!(
                w,
                "| {rule} | {stem} | {p} | {} |",
                opts.targets
                    .iter()
                    .map(|t| cells.get(t).map_or("-".to_string(), |c| cell(c)))
                    .collect::<Vec<_>>()
                    .join(" | ")
            )?;
        }
        Ok(())
    }

    /// `dist/REPORT.json`: the report for tools, one result at a time.
    fn json(&mut self, w: &mut dyn Write) -> std::io::Result<()> {
        let opts = self.opts;
        let tables = self.tables;
        let sum = self.sum;
        w.write_all(b"{\"targets\":")?;
        let targets: Vec<&str> = opts.targets.iter().map(|t| t.name()).collect();
        serde_json::to_writer(&mut *w, &targets)?;
        write!(
            w,
            ",\"strict\":{},\"lossy\":{},\"notes\":[",
            opts.strict, opts.lossy
        )?;
        // Where each target's notes start in `notes`.
        let mut offsets = Vec::with_capacity(sum.notes.len());
        let mut i = 0;
        for (t, mine) in opts.targets.iter().zip(&sum.notes) {
            offsets.push(i);
            for (id, rules) in mine {
                if i > 0 {
                    w.write_all(b",")?;
                }
                i += 1;
                let note = tables.note(*id);
                serde_json::to_writer(
                    &mut *w,
                    &JsonNote {
                        target: t.name(),
                        kind: kind_name(note.kind),
                        construct: &note.construct,
                        reason: &note.reason,
                        rules: rules
                            .iter()
                            .map(|&r| self.rules[r as usize].name.as_str())
                            .collect(),
                    },
                )?;
            }
        }
        w.write_all(b"],\"results\":[")?;
        let mut first = true;
        let mut res: std::io::Result<()> = Ok(());
        for (ti, t) in opts.targets.iter().enumerate() {
            let (index, offset) = (&sum.note_index[ti], offsets[ti]);
            self.spools[ti].each(self.rules, *t, &mut |r| {
                if res.is_err() {
                    return;
                }
                let (files, losses, error): (&[String], _, _) = match &r.result {
                    Ok((f, l)) => (
                        f,
                        l.iter()
                            .map(|l| JsonLoss {
                                stem: &l.stem,
                                note: offset + index[&l.note],
                            })
                            .collect(),
                        None,
                    ),
                    Err(e) => (&[], Vec::new(), Some(e.0.as_str())),
                };
                let result = JsonResult {
                    rule: &r.rule,
                    target: r.target.name(),
                    status: status(r),
                    files,
                    losses,
                    coverage: r
                        .coverage
                        .iter()
                        .map(|c| JsonCoverage {
                            stem: &c.stem,
                            source: &c.source,
                            platform: &c.platform,
                            via: tables.via(c.via),
                            file: &c.file,
                        })
                        .collect(),
                    verdict_changes: r
                        .verdicts
                        .iter()
                        .map(|(f, t)| (f.as_str(), t.as_slice()))
                        .collect(),
                    error,
                };
                res = (|| {
                    if !first {
                        w.write_all(b",")?;
                    }
                    first = false;
                    serde_json::to_writer(&mut *w, &result)?;
                    Ok(())
                })();
            })?;
        }
        res?;
        w.write_all(b"]}\n")
    }
}

#[derive(Serialize)]
struct JsonNote<'a> {
    target: &'static str,
    kind: &'static str,
    construct: &'a str,
    reason: &'a str,
    rules: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    rule: &'a str,
    target: &'static str,
    status: &'static str,
    /// Relative to `dist/<target>/`.
    files: &'a [String],
    /// The detection (output stem) and the index of its note in `notes`.
    losses: Vec<JsonLoss<'a>>,
    /// Which file serves which platform of each detection, through which integration.
    coverage: Vec<JsonCoverage<'a>>,
    /// Files whose rendered condition changes test verdicts: file -> tests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    verdict_changes: Vec<(&'a str, &'a [String])>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonCoverage<'a> {
    stem: &'a str,
    source: &'a str,
    platform: &'a str,
    via: &'a str,
    file: &'a str,
}

#[derive(Serialize)]
struct JsonLoss<'a> {
    stem: &'a str,
    note: usize,
}

fn parent_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Replace `out` with the directory `staged` (a sibling), keeping the old
/// `out` until the new one is in place.
fn swap_in(staged: PathBuf, out: &Path) -> std::io::Result<()> {
    let parent = parent_of(out);
    if out.exists() {
        let old = tempfile::Builder::new()
            .prefix(".detc-old-")
            .tempdir_in(&parent)?
            .keep();
        std::fs::remove_dir(&old)?;
        std::fs::rename(out, &old)?;
        if let Err(e) = std::fs::rename(&staged, out) {
            let _ = std::fs::rename(&old, out);
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e);
        }
        remove_tree(&old)?;
    } else if let Err(e) = std::fs::rename(&staged, out) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e);
    }
    Ok(())
}

/// `remove_dir_all`, one top-level entry per thread.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.par_iter().try_for_each(|e| {
        if e.file_type()?.is_dir() {
            std::fs::remove_dir_all(e.path())
        } else {
            std::fs::remove_file(e.path())
        }
    })?;
    std::fs::remove_dir(dir)
}

/// Write `files` to `out` atomically: into a temporary sibling directory,
/// then swap it in. On any error the previous `out` is untouched.
pub fn write_atomically(out: &Path, files: &BTreeMap<String, String>) -> std::io::Result<()> {
    let parent = parent_of(out);
    std::fs::create_dir_all(&parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".detc-staging-")
        .tempdir_in(&parent)?;
    for (rel, contents) in files {
        let path = staging.path().join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, contents)?;
    }
    swap_in(staging.keep(), out)
}
