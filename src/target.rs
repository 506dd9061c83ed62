//! The targets detc compiles to. A leaf module: the IR names targets (a
//! rule's `lossy = [..]`), and the backends register one renderer each.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Splunk,
    Elastic,
    Panther,
    Sigma,
    /// Microsoft Sentinel analytic rules in KQL.
    Sentinel,
    /// Elastic detection-rules TOML with an ES|QL query.
    Esql,
}

impl Target {
    /// Every target, in the order builds, reports and snapshots list them.
    pub const ALL: [Target; 6] = [
        Target::Splunk,
        Target::Elastic,
        Target::Panther,
        Target::Sigma,
        Target::Sentinel,
        Target::Esql,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Splunk => "splunk",
            Target::Elastic => "elastic",
            Target::Panther => "panther",
            Target::Sigma => "sigma",
            Target::Sentinel => "sentinel",
            Target::Esql => "esql",
        }
    }

    pub fn parse(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The names of every target, for messages (`splunk, elastic, ...`).
    pub fn names() -> String {
        Target::ALL.map(Target::name).join(", ")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
