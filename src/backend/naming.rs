//! Names and ids of the documents a rule becomes, written once: a rule with
//! several sources gives one document per source, and the targets that
//! derive a document's title and id from the rule's share these.

use crate::ir::Rule;
use uuid::Uuid;

/// How titles name a source: its catalog label (`Kubernetes audit logs`).
pub fn source_label(source: &str) -> &str {
    crate::sources::catalog(source).map_or(source, |c| c.label.as_str())
}

/// The title of detection `index`: the rule's title for the first, with
/// the source's label after it for the others.
pub fn detection_title(rule: &Rule, index: usize) -> String {
    if index == 0 {
        rule.meta.title.clone()
    } else {
        format!(
            "{} ({})",
            rule.meta.title,
            source_label(&rule.detections[index].source)
        )
    }
}

/// The rule id as a UUID namespace (a rule id that is not a UUID is hashed).
fn namespace(rule: &Rule) -> Uuid {
    Uuid::try_parse(&rule.meta.id)
        .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_URL, rule.meta.id.as_bytes()))
}

/// The id of detection `index`: the rule id for the first, a UUID v5
/// derived from the rule id and the source (`source#n` for the n-th repeat
/// of a source) for the others, so it is stable when the rule is renamed or
/// its sources reordered.
pub fn detection_id(rule: &Rule, index: usize) -> String {
    if index == 0 {
        return rule.meta.id.clone();
    }
    let det = &rule.detections[index];
    let nth = rule.detections[..index]
        .iter()
        .filter(|d| d.source == det.source)
        .count();
    let name = if nth == 0 {
        det.source.clone()
    } else {
        format!("{}#{nth}", det.source)
    };
    Uuid::new_v5(&namespace(rule), name.as_bytes()).to_string()
}

/// A further document of a detection (a companion rule, a table form): a
/// UUID v5 of the detection's id and `key`.
pub fn derived_id(detection_id: &str, key: &str) -> String {
    let base = Uuid::try_parse(detection_id)
        .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_URL, detection_id.as_bytes()));
    Uuid::new_v5(&base, key.as_bytes()).to_string()
}
