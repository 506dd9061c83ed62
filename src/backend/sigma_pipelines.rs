//! pySigma processing pipelines shipped beside the Sigma output
//! (`dist/sigma/pipelines/*.yaml`), so that users who convert detc's Sigma
//! documents with their own pySigma get queries that read the records where
//! the vendors' integrations store them:
//!
//! - `elastic-kubernetes-audit.yaml`: the Elastic Kubernetes integration
//!   (`kubernetes.audit.` prefix and the `kubernetes.audit_logs` dataset);
//! - `elastic-azure-activity.yaml`: the Elastic Azure integration's activity
//!   logs (each canonical field mapped to its `azure.activitylogs.*` or ECS
//!   name, and the `azure.activitylogs` dataset);
//! - `splunk-kubernetes-eks.yaml`, `splunk-aks.yaml`,
//!   `splunk-azure-activity.yaml`: where Splunk holds each platform's records
//!   (AKS: the `spath` prelude that reads the Event out of `properties.log`).
//!
//! The Elastic pipelines are generated from the Elastic field tables
//! (`src/sources/elastic_fields.yaml`), the same data the EQL backend reads;
//! the Splunk ones are fixed text naming the add-ons' sourcetypes. A file is
//! written when a built detection needs it. The extension is `.yaml` so
//! that `sigma check` and `sigma convert` on the folder (default file
//! pattern `*.yml`) read the rules and not the pipelines.

use super::elastic::{field_tables, SCALES};
use super::text::yaml_str;
use super::Artifact;
use crate::ir::Rule;

/// The folder of the pipelines, relative to `dist/sigma/`.
pub const DIR: &str = "pipelines";

/// One shipped pipeline.
struct Pipeline {
    /// File name under [`DIR`].
    file: &'static str,
    /// The detc source and the platforms whose detections it serves.
    source: &'static str,
    platforms: &'static [&'static str],
    /// The Sigma logsource it applies to (product, service).
    logsource: (&'static str, &'static str),
    /// The pySigma targets it is meant for (the first is the one the header
    /// shows).
    backends: &'static [&'static str],
    title: &'static str,
    /// Lines of the header after the usage (what it assumes, what to edit).
    about: &'static [&'static str],
    body: fn(&Pipeline) -> String,
}

const K8S: (&str, &str) = ("kubernetes", "audit");
const AZURE: (&str, &str) = ("azure", "activitylogs");
const ELASTIC: &[&str] = &["eql", "lucene", "esql"];
const SPLUNK: &[&str] = &["splunk"];

const PIPELINES: &[Pipeline] = &[
    Pipeline {
        file: "elastic-kubernetes-audit.yaml",
        source: "kubernetes.audit",
        platforms: &["kubernetes", "eks", "aks"],
        logsource: K8S,
        backends: ELASTIC,
        title: "detc kubernetes.audit -> Elastic Kubernetes integration (kubernetes.audit_logs)",
        about: &[
            "Raw Kubernetes (filestream input), EKS (aws-cloudwatch input) and AKS (azure-eventhub input) audit",
            "logs, as the Elastic Kubernetes integration stores them in logs-kubernetes.audit_logs-*: every field",
            "gets the kubernetes.audit. prefix and the query is limited to the data stream. GKE records keep",
            "protoPayload.* there and are not covered. Paths the integration does not index (every CronJob/Job",
            "template path under requestObject) cannot match in Elasticsearch; dist/REPORT.md lists them for the",
            "elastic target. pySigma's EQL and ES|QL write `not x ...` without a null guard: on a record without",
            "x the negation is null and the record does not match, where detc's own EQL (`x == null or not ...`)",
            "matches. Most writes carry no objectRef.subresource, so a rule with `not objectRef.subresource: status`",
            "misses them in -t eql; Lucene's NOT (a query DSL must_not) holds on a record without x, as detc means",
            "(not checked by detc's tests: no Lucene engine runs there).",
        ],
        body: elastic_prefix,
    },
    Pipeline {
        file: "elastic-azure-activity.yaml",
        source: "azure.activity",
        platforms: &["azure"],
        logsource: AZURE,
        backends: ELASTIC,
        title: "detc azure.activity -> Elastic Azure integration (azure.activitylogs)",
        about: &[
            "Azure activity logs as the Elastic Azure integration stores them in logs-azure.activitylogs-*: each",
            "canonical field is renamed to the field the integration's ingest pipeline writes, and the query is",
            "limited to the data stream. Fields left out of the mapping keep their canonical name and match",
            "nothing: those the integration does not index, text fields, and durationMs, which it stores as",
            "event.duration in nanoseconds (a renaming cannot scale the value).",
        ],
        body: elastic_mapping,
    },
    Pipeline {
        file: "splunk-kubernetes-eks.yaml",
        source: "kubernetes.audit",
        platforms: &["kubernetes", "eks"],
        logsource: K8S,
        backends: SPLUNK,
        title: "detc kubernetes.audit on raw Kubernetes and EKS -> Splunk",
        about: &[
            "Scopes the search to raw Kubernetes audit logs (source=\"kubernetes\", JSON events) and EKS audit logs",
            "from CloudWatch (Splunk Add-on for AWS, sourcetype aws:cloudwatchlogs:eks); both hold the audit Event",
            "as it is. Edit the scope to your index and sourcetypes.",
        ],
        body: splunk_template,
    },
    Pipeline {
        file: "splunk-aks.yaml",
        source: "kubernetes.audit",
        platforms: &["aks"],
        logsource: K8S,
        backends: SPLUNK,
        title: "detc kubernetes.audit on AKS -> Splunk",
        about: &[
            "AKS audit logs exported by diagnostic settings to a storage account and read by the Splunk Add-on",
            "for Microsoft Cloud Services (sourcetype mscs:storage:blob:json; edit it to your input, index and",
            "sourcetype). The audit Event is the JSON string properties.log of records with category kube-audit",
            "or kube-audit-admin: `spath input=properties.log` extracts it, then the query searches it. spath",
            "names array elements with {} (sourceIPs{}), which a condition on an array field would have to use.",
        ],
        body: splunk_template,
    },
    Pipeline {
        file: "splunk-azure-activity.yaml",
        source: "azure.activity",
        platforms: &["azure"],
        logsource: AZURE,
        backends: SPLUNK,
        title: "detc azure.activity -> Splunk",
        about: &[
            "Azure activity logs exported through Event Hub and read by the Splunk Add-on for Microsoft Cloud",
            "Services (sourcetype azure:monitor:activity), whose events keep the export's top-level names",
            "(operationName, resultType). The REST input (mscs:azure:audit) nests them (operationName.value) and",
            "is not covered. Edit the scope to your index and sourcetype.",
        ],
        body: splunk_template,
    },
];

/// The Splunk base search of each Splunk pipeline, before `{{ query }}`.
fn splunk_scope(file: &str) -> &'static str {
    match file {
        "splunk-kubernetes-eks.yaml" => {
            "(source=\"kubernetes\" OR sourcetype=\"aws:cloudwatchlogs:eks\") {{ query }}"
        }
        "splunk-aks.yaml" => {
            "sourcetype=\"mscs:storage:blob:json\" category IN (\"kube-audit\", \"kube-audit-admin\") | spath input=properties.log | search {{ query }}"
        }
        _ => "sourcetype=\"azure:monitor:activity\" {{ query }}",
    }
}

fn rule_conditions(p: &Pipeline, indent: &str) -> String {
    format!(
        "{indent}rule_conditions:\n{indent}  - type: logsource\n{indent}    product: {}\n{indent}    service: {}\n",
        yaml_str(p.logsource.0),
        yaml_str(p.logsource.1)
    )
}

fn header(p: &Pipeline) -> String {
    let mut s = format!(
        "# pySigma processing pipeline generated by detc: do not edit (rebuild with detc build).\n# {}\n#\n# Use, in dist/sigma/: sigma convert -t {} -p pipelines/{} <rule.yml>\n",
        p.title, p.backends[0], p.file
    );
    if p.backends.len() > 1 {
        s.push_str(&format!(
            "#      (also with -t {})\n",
            p.backends[1..].join(", -t ")
        ));
    }
    s.push_str(&format!(
        "# It applies to the rules with logsource product: {}, service: {}; other rules pass unchanged.\n#\n",
        p.logsource.0, p.logsource.1
    ));
    for l in p.about {
        s.push_str(&format!("# {l}\n"));
    }
    s.push_str(&format!(
        "name: {}\npriority: 30\nallowed_backends: [{}]\n",
        yaml_str(p.title),
        p.backends.join(", ")
    ));
    s
}

fn dataset_condition(p: &Pipeline, dataset: &str) -> String {
    format!(
        "  - id: detc_dataset\n    type: add_condition\n    conditions:\n      data_stream.dataset: {}\n{}",
        yaml_str(dataset),
        rule_conditions(p, "    ")
    )
}

fn elastic_prefix(p: &Pipeline) -> String {
    let t = &field_tables()[p.source];
    format!(
        "{}transformations:\n  - id: detc_field_prefix\n    type: field_name_prefix\n    prefix: {}\n{}{}",
        header(p),
        yaml_str(&t.prefix),
        rule_conditions(p, "    "),
        dataset_condition(p, &t.dataset)
    )
}

/// Whether an Elastic field of this mapping type can be searched by every
/// target the pipeline names (EQL cannot search text, flattened or nested).
fn searchable(ty: &str) -> bool {
    matches!(
        ty,
        "keyword" | "constant_keyword" | "long" | "integer" | "boolean" | "ip" | "date"
    )
}

fn elastic_mapping(p: &Pipeline) -> String {
    let t = &field_tables()[p.source];
    let mut map = String::new();
    for (key, e) in &t.fields {
        let scaled = SCALES.iter().any(|(s, k, _)| *s == p.source && k == key);
        if !e.indexed || !searchable(&e.ty) || scaled || key.contains('"') {
            continue;
        }
        map.push_str(&format!("      {}: {}\n", yaml_str(key), yaml_str(&e.name)));
    }
    format!(
        "{}transformations:\n  - id: detc_field_names\n    type: field_name_mapping\n    mapping:\n{map}{}{}",
        header(p),
        rule_conditions(p, "    "),
        dataset_condition(p, &t.dataset)
    )
}

fn splunk_template(p: &Pipeline) -> String {
    format!(
        "{}postprocessing:\n  - id: detc_scope\n    type: template\n    template: {}\n{}",
        header(p),
        yaml_str(splunk_scope(p.file)),
        rule_conditions(p, "    ")
    )
}

/// The pipelines the detections of `rules` need, as files under
/// `dist/sigma/`.
pub fn pipelines(rules: &[&Rule]) -> Vec<Artifact> {
    PIPELINES
        .iter()
        .filter(|p| {
            rules.iter().flat_map(|r| &r.detections).any(|d| {
                d.source == p.source && d.platforms.iter().any(|x| p.platforms.contains(&&**x))
            })
        })
        .map(|p| Artifact {
            path: format!("{DIR}/{}", p.file),
            contents: (p.body)(p),
        })
        .collect()
}

/// Every pipeline detc can ship, whatever the rules (for tests).
pub fn all() -> Vec<Artifact> {
    PIPELINES
        .iter()
        .map(|p| Artifact {
            path: format!("{DIR}/{}", p.file),
            contents: (p.body)(p),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_are_yaml_and_name_their_sources() {
        for a in all() {
            let doc: serde_yaml::Value = serde_yaml::from_str(&a.contents)
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", a.path, a.contents));
            assert!(doc["name"].is_string(), "{}", a.path);
            assert!(
                a.contents
                    .contains(&format!("-p pipelines/{}", &a.path[DIR.len() + 1..])),
                "{}",
                a.path
            );
        }
        let azure = all()
            .into_iter()
            .find(|a| a.path.ends_with("elastic-azure-activity.yaml"))
            .unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&azure.contents).unwrap();
        let map = &doc["transformations"][0]["mapping"];
        assert_eq!(map["operationName"], "azure.activitylogs.operation_name");
        assert_eq!(map["resultType"], "azure.activitylogs.result_type");
        assert_eq!(map["callerIpAddress"], "source.ip");
        assert!(map.get("durationMs").is_none(), "scaled: not a renaming");
    }
}
