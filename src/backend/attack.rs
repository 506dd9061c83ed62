//! MITRE ATT&CK Enterprise: the tactic and technique names every target
//! needs (Elastic `[[rule.threat]]`, Sigma tags, Sentinel `tactics`), kept
//! once. Techniques are the container and cloud ones detc's rules use; an
//! unknown id is reported by the target that needs its name.

use super::Loss;
use crate::ir::Rule;
use serde::Serialize;

const ATTACK: &str = "https://attack.mitre.org";

/// Enterprise tactics, in matrix order.
const TACTICS: &[(&str, &str)] = &[
    ("TA0043", "Reconnaissance"),
    ("TA0042", "Resource Development"),
    ("TA0001", "Initial Access"),
    ("TA0002", "Execution"),
    ("TA0003", "Persistence"),
    ("TA0004", "Privilege Escalation"),
    ("TA0005", "Defense Evasion"),
    ("TA0006", "Credential Access"),
    ("TA0007", "Discovery"),
    ("TA0008", "Lateral Movement"),
    ("TA0009", "Collection"),
    ("TA0011", "Command and Control"),
    ("TA0010", "Exfiltration"),
    ("TA0040", "Impact"),
];

/// Techniques used by container and cloud rules: id, name, tactics
/// (sub-techniques inherit their parent's tactics).
const TECHNIQUES: &[(&str, &str, &[&str])] = &[
    (
        "T1053",
        "Scheduled Task/Job",
        &["TA0002", "TA0003", "TA0004"],
    ),
    ("T1053.003", "Cron", &[]),
    ("T1053.007", "Container Orchestration Job", &[]),
    (
        "T1078",
        "Valid Accounts",
        &["TA0005", "TA0003", "TA0004", "TA0001"],
    ),
    ("T1078.001", "Default Accounts", &[]),
    ("T1078.004", "Cloud Accounts", &[]),
    ("T1098", "Account Manipulation", &["TA0003", "TA0004"]),
    ("T1098.006", "Additional Container Cluster Roles", &[]),
    ("T1525", "Implant Internal Image", &["TA0003"]),
    ("T1552", "Unsecured Credentials", &["TA0006"]),
    ("T1552.007", "Container API", &[]),
    ("T1609", "Container Administration Command", &["TA0002"]),
    ("T1610", "Deploy Container", &["TA0005", "TA0002"]),
    ("T1611", "Escape to Host", &["TA0004"]),
    ("T1613", "Container and Resource Discovery", &["TA0007"]),
];

#[derive(Debug, Clone, Serialize)]
pub struct AttackRef {
    pub id: String,
    pub name: String,
    pub reference: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Technique {
    pub id: String,
    pub name: String,
    pub reference: String,
    pub subtechniques: Vec<AttackRef>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Threat {
    pub tactic: AttackRef,
    pub techniques: Vec<Technique>,
}

fn tactic_ref(id: &str) -> Option<AttackRef> {
    TACTICS
        .iter()
        .find(|(t, _)| *t == id)
        .map(|(t, n)| AttackRef {
            id: t.to_string(),
            name: n.to_string(),
            reference: format!("{ATTACK}/tactics/{t}/"),
        })
}

fn technique_entry(id: &str) -> Option<(&'static str, &'static [&'static str])> {
    TECHNIQUES
        .iter()
        .find(|(t, _, _)| *t == id)
        .map(|(_, n, tac)| (*n, *tac))
}

/// `[[rule.threat]]` entries, one per tactic, with the techniques of that tactic.
pub fn threats(rule: &Rule, stem: &str, losses: &mut Vec<Loss>) -> Vec<Threat> {
    // technique id -> (parent id, sub-technique ids)
    let mut techs: Vec<(String, Vec<String>, &'static [&'static str])> = Vec::new();
    for t in &rule.meta.techniques {
        let parent = t.split('.').next().unwrap_or(t).to_string();
        let (Some((_, tactics)), true) = (technique_entry(&parent), technique_entry(t).is_some())
        else {
            losses.push(Loss::not_applicable(
                stem,
                format!("attack {t}"),
                "not in detc's ATT&CK name table (src/backend/attack.rs), so it is left out of [[rule.threat]]",
            ));
            continue;
        };
        let slot = match techs.iter_mut().position(|(p, _, _)| *p == parent) {
            Some(i) => &mut techs[i],
            None => {
                techs.push((parent.clone(), Vec::new(), tactics));
                techs.last_mut().expect("just pushed")
            }
        };
        if t.contains('.') && !slot.1.contains(t) {
            slot.1.push(t.clone());
        }
    }
    let mut tactic_ids: Vec<String> = Vec::new();
    for t in &rule.meta.tactics {
        if tactic_ref(t).is_some() {
            if !tactic_ids.contains(t) {
                tactic_ids.push(t.clone());
            }
        } else {
            losses.push(Loss::not_applicable(
                stem,
                format!("attack {t}"),
                "not an ATT&CK enterprise tactic detc knows",
            ));
        }
    }
    // A technique none of the rule's tactics covers is filed under its own tactics.
    for (_, _, tactics) in &techs {
        if !tactics.iter().any(|t| tactic_ids.iter().any(|x| x == t)) {
            for t in tactics.iter() {
                if !tactic_ids.iter().any(|x| x == t) {
                    tactic_ids.push(t.to_string());
                }
            }
        }
    }
    tactic_ids
        .iter()
        .filter_map(|tid| {
            let tactic = tactic_ref(tid)?;
            let techniques = techs
                .iter()
                .filter(|(_, _, tactics)| tactics.contains(&tid.as_str()))
                .map(|(parent, subs, _)| Technique {
                    id: parent.clone(),
                    name: technique_entry(parent)
                        .map(|(n, _)| n)
                        .unwrap_or_default()
                        .to_string(),
                    reference: format!("{ATTACK}/techniques/{parent}/"),
                    subtechniques: subs
                        .iter()
                        .map(|s| AttackRef {
                            id: s.clone(),
                            name: technique_entry(s)
                                .map(|(n, _)| n)
                                .unwrap_or_default()
                                .to_string(),
                            reference: format!("{ATTACK}/techniques/{}/", s.replace('.', "/")),
                        })
                        .collect(),
                })
                .collect();
            Some(Threat { tactic, techniques })
        })
        .collect()
}

/// The name of an enterprise tactic (`TA0003` -> `Persistence`).
pub fn tactic_name(id: &str) -> Option<&'static str> {
    TACTICS
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(id))
        .map(|(_, n)| *n)
}

/// A tactic name as a lower-case slug (`Command and Control` -> `command-and-control`).
pub fn tactic_slug(id: &str) -> Option<String> {
    tactic_name(id).map(|n| n.to_ascii_lowercase().replace(' ', "-"))
}
