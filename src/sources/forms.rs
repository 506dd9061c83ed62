//! Target facts per (source, platform), kept as data: how each platform's
//! records arrive in each target (index, sourcetype, data stream, table or
//! log type) and how a query reads the canonical fields there.
//!
//! Every target has one file beside this module (`splunk.yaml`,
//! `elastic.yaml`, `panther.yaml`, `sigma.yaml`, `sentinel.yaml`) with the
//! same shape:
//!
//! ```yaml
//! <source>:
//!   forms:
//!     - name: <file-name part>
//!       platforms: [<platform>, ...]
//!       label: <the integration and where its records land, for people>
//!       <target-specific keys>
//!   lost:
//!     <platform>: <why no standard integration of the target serves it>
//! ```
//!
//! A form is one way the records of some platforms reach the target; a
//! backend renders the detection once per form it needs. A platform of the
//! source with no form is an `unsupported` loss with the reason under
//! `lost`: it fails the build unless the rule accepts it. The tests check
//! that every platform of every catalog source has a form or a reason, in
//! every target. Adding an integration or a platform is a change here plus
//! tests.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One source's forms in one target.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
pub struct SourceForms<T> {
    pub forms: Vec<Form<T>>,
    /// Platform -> why the target's standard integrations do not serve it.
    #[serde(default)]
    pub lost: BTreeMap<String, String>,
}

/// How the records of `platforms` reach the target, and how to read them.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
pub struct Form<T> {
    pub name: String,
    pub platforms: Vec<String>,
    /// The integration and where its records land (`Splunk Add-on for
    /// Microsoft Cloud Services, sourcetype mscs:storage:blob:json`).
    pub label: String,
    /// The target-specific facts.
    #[serde(flatten)]
    pub spec: T,
}

/// A target's forms, by detc source name.
pub type TargetForms<T> = BTreeMap<String, SourceForms<T>>;

/// Parse a target's built-in forms file; a malformed built-in file is a bug
/// the tests catch, so this panics with the file's name.
pub fn load<T: DeserializeOwned>(name: &str, yaml: &str) -> TargetForms<T> {
    match serde_yaml::from_str(yaml) {
        Ok(t) => t,
        Err(e) => panic!("built-in forms file src/sources/{name} is invalid: {e}"),
    }
}

impl<T> SourceForms<T> {
    /// The forms that serve at least one of `platforms`, in file order.
    pub fn serving<'a>(&'a self, platforms: &'a [String]) -> impl Iterator<Item = &'a Form<T>> {
        self.forms
            .iter()
            .filter(move |f| f.platforms.iter().any(|p| platforms.contains(p)))
    }

    /// The platforms among `platforms` that no form serves, each with the
    /// reason the file gives (or a generic one naming the target).
    pub fn unserved(&self, platforms: &[String], target: &str) -> Vec<(String, String)> {
        platforms
            .iter()
            .filter(|p| !self.forms.iter().any(|f| f.platforms.contains(p)))
            .map(|p| {
                let why = self.lost.get(p).cloned().unwrap_or_else(|| {
                    format!("no {target} integration detc knows holds this platform's records")
                });
                (p.clone(), why)
            })
            .collect()
    }
}

/// One row of the coverage matrix: which generated file serves a platform
/// of a detection, through which integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// The detection's output stem.
    pub stem: String,
    pub source: String,
    pub platform: String,
    /// The form's label: the integration and where its records land.
    pub via: String,
    /// The file that serves it, relative to `dist/<target>/`.
    pub file: String,
}

/// Check a target's forms against the catalogs: every form's platforms
/// belong to its source, and every platform of every source it lists has a
/// form or a reason. Returns the problems found.
pub fn check<T>(target: &str, forms: &TargetForms<T>) -> Vec<String> {
    let mut problems = Vec::new();
    for (source, sf) in forms {
        let Some(cat) = super::catalog(source) else {
            problems.push(format!("{target}: unknown source {source}"));
            continue;
        };
        let mut names = Vec::new();
        for f in &sf.forms {
            if names.contains(&&f.name) {
                problems.push(format!("{target}: {source}: form {} twice", f.name));
            }
            names.push(&f.name);
            for p in &f.platforms {
                if !cat.platforms.contains(p) {
                    problems.push(format!(
                        "{target}: {source}: form {}: unknown platform {p}",
                        f.name
                    ));
                }
            }
        }
        for p in sf.lost.keys() {
            if !cat.platforms.contains(p) {
                problems.push(format!("{target}: {source}: lost: unknown platform {p}"));
            }
            if sf.forms.iter().any(|f| f.platforms.contains(p)) {
                problems.push(format!(
                    "{target}: {source}: platform {p} both served and lost"
                ));
            }
        }
        for p in &cat.platforms {
            if !sf.forms.iter().any(|f| f.platforms.contains(p)) && !sf.lost.contains_key(p) {
                problems.push(format!(
                    "{target}: {source}: platform {p} has neither a form nor a reason"
                ));
            }
        }
    }
    for cat in super::catalogs() {
        if !forms.contains_key(&cat.source) {
            problems.push(format!("{target}: source {} has no entry", cat.source));
        }
    }
    problems
}
