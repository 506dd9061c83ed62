//! `detc.lock`: per rule and per target, the version the generated files
//! carry and a SHA-256 of those files.
//!
//! The same idea as elastic/detection-rules' `version.lock.json`, contentctl's
//! version enforcement and panther-analysis' `.versions.yml`: a pull request
//! that changes what a rule generates for a target must also bump that
//! target's version, so the platform (and its reviewers) see a new version.
//! `detc lock` does the bump; `detc build --check` fails while the lock is
//! behind the rules.
//!
//! The hash covers the files rendered *with the locked version*, so a bump
//! changes both, and every target in [`Target::ALL`] is locked: a target
//! added to detc appears as "not in the lock" until `detc lock` runs.

use crate::backend::{Settings, Target};
use crate::ir::Rule;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The default lock file, at the root of the rule repository.
pub const DEFAULT_PATH: &str = "detc.lock";

const HEADER: &str = "\
# detc.lock: per rule and target, the version its generated files carry and
# the SHA-256 of those files. Written by `detc lock`, checked by
# `detc build --check`; commit it with the rules and do not edit it by hand.
";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    #[serde(default)]
    pub rules: BTreeMap<String, RuleLock>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleLock {
    pub id: String,
    /// The rule's `modified` date (or `date`) when it was last locked.
    pub modified: String,
    /// Target name -> entry.
    pub targets: BTreeMap<String, TargetLock>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetLock {
    pub version: u32,
    pub sha256: String,
}

/// The date a rule was last changed, as its author says.
pub fn modified(rule: &Rule) -> String {
    rule.meta.modified.clone().unwrap_or(rule.meta.date.clone())
}

impl Lock {
    /// Read a lock; a missing file is `Ok(None)`.
    pub fn read(path: &Path) -> Result<Option<Lock>, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).expect("a lock serializes");
        format!("{HEADER}\n{body}")
    }

    /// The locked version of a rule for a target (1 for a rule or target not yet locked).
    pub fn version(&self, rule: &str, target: Target) -> u32 {
        self.rules
            .get(rule)
            .and_then(|r| r.targets.get(target.name()))
            .map_or(1, |t| t.version)
    }
}

/// SHA-256 of a rule's files for one target, rendered with `version` under
/// `settings` (the build's). `Err` when the target cannot render the rule.
pub fn hash(
    rule: &Rule,
    target: Target,
    version: u32,
    settings: &Settings,
) -> Result<String, String> {
    let rendered = if rule.meta.version == version {
        crate::build::render_with(rule, target, settings)
    } else {
        let mut r = rule.clone();
        r.meta.version = version;
        crate::build::render_with(&r, target, settings)
    }
    .map_err(|e| format!("{}: {target}: {e}", rule.name))?;
    let mut h = Sha256::new();
    for f in &rendered.files {
        h.update(f.path.as_bytes());
        h.update([0]);
        h.update(f.contents.as_bytes());
        h.update([0]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// One way the lock is behind the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A rule or target that has no entry yet.
    Missing { rule: String, target: Target },
    /// The output changed and the version did not.
    NotBumped {
        rule: String,
        target: Target,
        version: u32,
        modified_moved: bool,
    },
    /// An entry for a rule that is no longer built.
    Stale { rule: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { rule, target } => write!(
                f,
                "{rule} -> {target}: not in the lock (a new rule or target); run `detc lock`"
            ),
            Problem::NotBumped {
                rule,
                target,
                version,
                modified_moved,
            } => {
                if *modified_moved {
                    write!(f, "{rule} -> {target}: the generated output changed and `modified` moved, but the version is still {version}; run `detc lock` to bump it")
                } else {
                    write!(f, "{rule} -> {target}: the generated output changed but neither its version ({version}) nor the rule's `modified` date did; set `modified` and run `detc lock` to bump the version")
                }
            }
            Problem::Stale { rule } => write!(
                f,
                "{rule}: in the lock but no longer built; run `detc lock` to drop it"
            ),
        }
    }
}

/// Compare the lock with the rules. `all` says that `rules` is the whole
/// rule set (so entries of other rules are stale).
pub fn verify(
    lock: &Lock,
    rules: &[&Rule],
    targets: &[Target],
    all: bool,
    settings: &Settings,
) -> Result<Vec<Problem>, String> {
    let mut problems = Vec::new();
    for rule in rules {
        let entry = lock.rules.get(&rule.name);
        for &target in targets {
            let Some(t) = entry.and_then(|e| e.targets.get(target.name())) else {
                problems.push(Problem::Missing {
                    rule: rule.name.clone(),
                    target,
                });
                continue;
            };
            if hash(rule, target, t.version, settings)? != t.sha256 {
                problems.push(Problem::NotBumped {
                    rule: rule.name.clone(),
                    target,
                    version: t.version,
                    modified_moved: entry.is_some_and(|e| e.modified != modified(rule)),
                });
            }
        }
    }
    if all {
        for name in lock.rules.keys() {
            if !rules.iter().any(|r| &r.name == name) {
                problems.push(Problem::Stale { rule: name.clone() });
            }
        }
    }
    Ok(problems)
}

/// What `detc lock` did to one rule and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added {
        rule: String,
        target: Target,
    },
    Bumped {
        rule: String,
        target: Target,
        from: u32,
        to: u32,
        modified_moved: bool,
    },
    Removed {
        rule: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added { rule, target } => write!(f, "added   {rule} -> {target} at version 1"),
            Change::Bumped {
                rule,
                target,
                from,
                to,
                modified_moved,
            } => {
                write!(f, "bumped  {rule} -> {target}: version {from} -> {to}")?;
                if !modified_moved {
                    write!(f, " (note: the rule's `modified` date did not move; reviewers and detection-rules expect it to)")?;
                }
                Ok(())
            }
            Change::Removed { rule } => write!(f, "removed {rule}"),
        }
    }
}

/// The lock after `detc lock`: new rules and targets at version 1, changed
/// outputs one version up, removed rules dropped. Rules outside `rules` are
/// kept unless `all`.
pub fn relock(
    old: &Lock,
    rules: &[&Rule],
    targets: &[Target],
    all: bool,
    settings: &Settings,
) -> Result<(Lock, Vec<Change>), String> {
    let mut new = old.clone();
    let mut changes = Vec::new();
    if all {
        new.rules.retain(|name, _| {
            let keep = rules.iter().any(|r| &r.name == name);
            if !keep {
                changes.push(Change::Removed { rule: name.clone() });
            }
            keep
        });
    }
    for rule in rules {
        let previous = old.rules.get(&rule.name);
        let modified_moved = previous.is_some_and(|p| p.modified != modified(rule));
        let entry = new.rules.entry(rule.name.clone()).or_insert(RuleLock {
            id: rule.meta.id.clone(),
            modified: modified(rule),
            targets: BTreeMap::new(),
        });
        entry.id = rule.meta.id.clone();
        entry.modified = modified(rule);
        for &target in targets {
            let locked = previous.and_then(|p| p.targets.get(target.name()));
            let t = match locked {
                None => {
                    changes.push(Change::Added {
                        rule: rule.name.clone(),
                        target,
                    });
                    TargetLock {
                        version: 1,
                        sha256: hash(rule, target, 1, settings)?,
                    }
                }
                Some(t) if hash(rule, target, t.version, settings)? == t.sha256 => t.clone(),
                Some(t) => {
                    let to = t.version + 1;
                    changes.push(Change::Bumped {
                        rule: rule.name.clone(),
                        target,
                        from: t.version,
                        to,
                        modified_moved,
                    });
                    TargetLock {
                        version: to,
                        sha256: hash(rule, target, to, settings)?,
                    }
                }
            };
            entry.targets.insert(target.name().to_string(), t);
        }
    }
    Ok((new, changes))
}
