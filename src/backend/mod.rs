//! Backends: IR -> target files. Templates (under `templates/<target>/`) wrap
//! documents; code walks expressions through the one shared [`printer`].
//!
//! Loss policy ("nothing lost silently"):
//! - [`LossKind::Unsupported`]: the target cannot express a construct's
//!   meaning (a condition, an indicator). An error unless the user opts in
//!   with the rule's `lossy = [targets]` or `detc build --lossy`; then a note.
//! - [`LossKind::NotApplicable`]: the target format has no place for a
//!   setting (Sigma has no schedule). Always a note.
//!
//! Every note appears as a comment in the generated file and in the build
//! report; `--strict` turns every note into an error.

pub mod attack;
pub mod elastic;
pub mod esql;
pub mod naming;
pub mod panther;
pub mod printer;
pub mod schedule;
pub mod sentinel;
pub mod sigma;
pub mod sigma_pipelines;
pub mod splunk;
pub mod table;
pub mod text;
pub mod yaml;

use crate::ir::Rule;
pub use crate::sources::forms::Coverage;
pub use crate::target::Target;
use serde::Serialize;
use std::fmt;

/// The renderer of a target.
pub fn backend(target: Target) -> &'static dyn Backend {
    match target {
        Target::Splunk => &splunk::Splunk,
        Target::Elastic => &elastic::Elastic,
        Target::Panther => &panther::Panther,
        Target::Sigma => &sigma::Sigma,
        Target::Sentinel => &sentinel::Sentinel,
        Target::Esql => &esql::Esql,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// The meaning of a construct cannot be expressed.
    Unsupported,
    /// The format has no place for a setting.
    NotApplicable,
}

/// One construct a target could not express exactly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Loss {
    pub kind: LossKind,
    /// The detection's output stem.
    pub stem: String,
    /// What was lost, e.g. `indicator host_path` or `output.schedule`.
    pub construct: String,
    pub reason: String,
}

impl Loss {
    pub fn unsupported(
        stem: &str,
        construct: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Loss {
            kind: LossKind::Unsupported,
            stem: stem.into(),
            construct: construct.into(),
            reason: reason.into(),
        }
    }
    pub fn not_applicable(
        stem: &str,
        construct: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Loss {
            kind: LossKind::NotApplicable,
            stem: stem.into(),
            construct: construct.into(),
            reason: reason.into(),
        }
    }
}

impl LossKind {
    /// How notes in generated files name the kind.
    pub fn label(self) -> &'static str {
        match self {
            LossKind::Unsupported => "unsupported",
            LossKind::NotApplicable => "not applicable",
        }
    }
}

impl Loss {
    /// The note a generated file carries for this loss (one line, before
    /// the target's comment escaping): `<kind>: <construct>: <reason>`.
    pub fn note(&self) -> String {
        format!("{}: {}: {}", self.kind.label(), self.construct, self.reason)
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.construct,
            self.reason,
            match self.kind {
                LossKind::Unsupported => "not expressible",
                LossKind::NotApplicable => "no such setting in this format",
            }
        )
    }
}

/// A generated file, relative to `dist/<target>/`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Artifact {
    pub path: String,
    pub contents: String,
}

/// What a backend made of one rule.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rendered {
    pub files: Vec<Artifact>,
    pub losses: Vec<Loss>,
    /// Which file serves which platform of each detection, through which
    /// integration (the coverage matrix). A platform of a detection with no
    /// row here must have an `unsupported` loss naming it.
    pub coverage: Vec<Coverage>,
    /// The condition each generated file actually tests, in the source's
    /// canonical fields: the detection's own, or what is left of it where
    /// the target dropped a part. The build runs the rule's tests on each
    /// and refuses a verdict change that no `match` loss reports.
    #[serde(skip)]
    pub conditions: Vec<RenderedCondition>,
}

impl Rendered {
    /// Record that `file` serves the platforms of `det` among `platforms`
    /// through `via` (coverage rows) and tests `expr` (the rendered condition).
    pub fn served(
        &mut self,
        det: &crate::ir::Detection,
        platforms: &[String],
        via: &str,
        file: &str,
        expr: &crate::ir::Expr,
    ) {
        let mine: Vec<String> = platforms
            .iter()
            .filter(|p| det.platforms.contains(p))
            .cloned()
            .collect();
        for p in &mine {
            self.coverage.push(Coverage {
                stem: det.stem.clone(),
                source: det.source.clone(),
                platform: p.clone(),
                via: via.to_string(),
                file: file.to_string(),
            });
        }
        self.conditions.push(RenderedCondition {
            stem: det.stem.clone(),
            file: file.to_string(),
            platforms: mine,
            expr: expr.clone(),
        });
    }

    /// Keep each loss once (the forms of one detection share most of theirs).
    pub fn dedup_losses(&mut self) {
        let mut seen = Vec::new();
        self.losses.retain(|l| {
            let new = !seen.contains(l);
            if new {
                seen.push(l.clone());
            }
            new
        });
    }
}

/// See [`Rendered::conditions`].
#[derive(Debug, Clone)]
pub struct RenderedCondition {
    /// The detection's output stem.
    pub stem: String,
    /// The file, relative to `dist/<target>/`.
    pub file: String,
    /// The platforms whose tests the file answers for.
    pub platforms: Vec<String>,
    pub expr: crate::ir::Expr,
}

/// Build-wide settings some backends read (`detc build --panther-log-type`).
/// The default is what every command renders without options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub panther: panther::Settings,
}

/// A backend failure that is not a loss (a rule the target rejects outright,
/// such as a Splunk name over 67 characters).
#[derive(Debug, Clone, PartialEq)]
pub struct BackendError(pub String);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

impl From<tera::Error> for BackendError {
    fn from(e: tera::Error) -> Self {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        BackendError(format!("template error: {msg}"))
    }
}

impl From<serde_yaml::Error> for BackendError {
    fn from(e: serde_yaml::Error) -> Self {
        BackendError(format!("YAML error: {e}"))
    }
}

pub trait Backend: Sync {
    fn target(&self) -> Target;

    /// Render one rule. Losses are returned, not judged: the build applies
    /// the loss policy. The files must carry a visible note for each loss.
    fn render(&self, rule: &Rule) -> Result<Rendered, BackendError>;

    /// [`Backend::render`] under build settings; a backend that reads none
    /// keeps this default.
    fn render_with(&self, rule: &Rule, _settings: &Settings) -> Result<Rendered, BackendError> {
        self.render(rule)
    }

    /// Files shared by all rules (e.g. Splunk source macros), given every rule.
    fn shared(&self, _rules: &[&Rule]) -> Result<Vec<Artifact>, BackendError> {
        Ok(Vec::new())
    }
}

/// The templates of every target, compiled once. Auto-escaping is off:
/// each template escapes through the target-aware filters in [`text`].
pub fn templates() -> &'static tera::Tera {
    static TERA: std::sync::OnceLock<tera::Tera> = std::sync::OnceLock::new();
    TERA.get_or_init(|| {
        let mut t = tera::Tera::default();
        t.autoescape_on(vec![]);
        t.add_raw_templates(all_templates().map(|(n, s)| (*n, *s)))
            .expect("built-in templates parse");
        text::register_filters(&mut t);
        t
    })
}

/// Built-in templates, embedded so the binary needs no files at run time.
/// Each backend lists its own in a `TEMPLATES` table.
fn all_templates() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    splunk::TEMPLATES
        .iter()
        .chain(elastic::TEMPLATES)
        .chain(panther::TEMPLATES)
        .chain(sigma::TEMPLATES)
        .chain(sentinel::TEMPLATES)
        .chain(esql::TEMPLATES)
}

/// Render with a template, mapping tera errors.
pub fn render_template(name: &str, ctx: &tera::Context) -> Result<String, BackendError> {
    Ok(templates().render(name, ctx)?)
}
