//! A generated rule corpus for the benchmarks and `benches/process.sh`:
//! N distinct, valid rules varied from the repository's rules. Shared by
//! `benches/compile.rs` and `examples/gen_corpus.rs` (`#[path]` module).
//!
//! Every tenth rule is a copy of the flagship (`rules/k8s_cronjob_job_write.rule`)
//! with its own name, id and title, keeping 2 match and 2 no-match tests (the
//! issue's measurement corpus). The others are drawn from pools taken from the
//! repository's rules: the source and platforms, the resources and verbs of
//! the write condition, exclusions, indicators, the output block (group-by,
//! values, title, dedup, schedule) and the metadata. Each rule's tests are 2
//! matching and 2 non-matching events from `rules/events`, chosen by running
//! the reference evaluator, so every generated rule passes `detc test`.
//! The same `(n, seed)` always gives the same files.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The repository's `rules/` folder.
pub fn repo_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// A sample event file under `rules/events` and the platform its name says.
struct Sample {
    file: String,
    platform: &'static str,
    event: serde_json::Value,
}

fn samples(events: &Path) -> Vec<Sample> {
    const PREFIXES: &[(&str, &str)] = &[
        ("seed001_eks_", "eks"),
        ("seed001_aks_", "aks"),
        ("seed001_gke_", "gke"),
        ("eks_", "eks"),
        ("aks_", "aks"),
        ("gke_", "gke"),
        ("k8s_", "kubernetes"),
        ("azure_activity_", "azure"),
    ];
    let mut names: Vec<String> = std::fs::read_dir(events)
        .expect("rules/events")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for file in names {
        let Some(&(_, platform)) = PREFIXES.iter().find(|(p, _)| file.starts_with(p)) else {
            continue;
        };
        let text = std::fs::read_to_string(events.join(&file)).unwrap();
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        // One object per file: Event Hub `records` files are left out.
        if event.is_object() && event.get("records").is_none() {
            out.push(Sample {
                file,
                platform,
                event,
            });
        }
    }
    out
}

const K8S_PLATFORMS: &[&str] = &["kubernetes", "eks", "aks", "gke"];
const RESOURCES: &[&str] = &[
    "cronjobs",
    "jobs",
    "pods",
    "daemonsets",
    "deployments",
    "secrets",
    "configmaps",
    "rolebindings",
    "clusterroles",
    "serviceaccounts",
];
const VERBS: &[&str] = &["create", "update", "patch", "delete", "get"];
const NAMESPACES: &[&str] = &[
    "kube-system",
    "gke-system",
    "kube-node-lease",
    "kube-public",
];
const SYSTEM_USERS: &[&str] = &[
    "system:serviceaccount:kube-system:",
    "eks:",
    "gke-",
    "azure-",
    "system:node:",
];
const ATTACK: &[&str] = &[
    "[T1053.007, TA0002, TA0003, TA0004]",
    "[T1610, TA0002]",
    "[T1609, TA0002]",
    "[T1611, TA0004]",
    "[T1525, TA0003]",
    "[T1613, TA0007]",
    "[T1098.006, TA0003]",
];
const INDICATORS: &[&str] = &[
    "indicator suspicious_image severity high = requestObject.**.image matches any [/alpine|busybox|ubuntu|kali|ncat|nmap|curl|wget/]",
    "indicator shell_command severity high = requestObject.**.command contains any [\"bash -i\", \"/dev/tcp\", \"mkfifo\", \"curl\"]",
    "indicator host_path severity high = requestObject.**.hostPath exists",
    "indicator privileged severity critical = requestObject.**.privileged == true",
    "indicator host_network severity medium = requestObject.**.hostNetwork == true",
    "indicator from_kubectl severity low = userAgent contains \"kubectl\"",
    "indicator in_kube_system severity medium = objectRef.namespace == \"kube-system\"",
];
const GROUP_BY: &[&str] = &[
    "user.username",
    "objectRef.namespace",
    "objectRef.name",
    "objectRef.resource",
    "verb",
];
const VALUES: &[&str] = &[
    "user.groups as user_groups",
    "sourceIPs as src_ip",
    "userAgent as user_agent",
];
const SEVERITIES: &[&str] = &["low", "medium", "high"];
const STATUSES: &[&str] = &["test", "experimental", "stable"];

/// `k` distinct items of `pool`, in pool order.
fn pick<'a>(
    rng: &mut fastrand::Rng,
    pool: &[&'a str],
    k: std::ops::RangeInclusive<usize>,
) -> Vec<&'a str> {
    let k = rng.usize(k);
    let mut idx: Vec<usize> = (0..pool.len()).collect();
    rng.shuffle(&mut idx);
    let mut chosen: Vec<usize> = idx.into_iter().take(k.min(pool.len())).collect();
    chosen.sort();
    chosen.into_iter().map(|i| pool[i]).collect()
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn uuid_for(seed: u64, i: usize) -> String {
    let ns = uuid::Uuid::from_u128(0x6a6f_1c1e_5d0b_4a8e_9c55_2f7b_1d7b_0c31);
    uuid::Uuid::new_v5(&ns, format!("detc-corpus-{seed}-{i}").as_bytes()).to_string()
}

/// A synthetic rule's text up to (not including) its tests, and its platforms.
fn synthetic(
    rng: &mut fastrand::Rng,
    name: &str,
    id: &str,
    i: usize,
) -> (String, Vec<&'static str>) {
    let mut s = String::new();
    let azure = rng.usize(0..5) == 0;
    let severity = SEVERITIES[rng.usize(0..SEVERITIES.len())];
    let status = STATUSES[rng.usize(0..STATUSES.len())];
    let attack = ATTACK[rng.usize(0..ATTACK.len())];
    let _ = writeln!(s, "# Generated by the detc corpus generator (rule {i}).");
    let _ = writeln!(s, "rule {name} {{");
    let _ = writeln!(s, "  id              = \"{id}\"");
    let (platforms, what): (Vec<&'static str>, String) = if azure {
        (vec!["azure"], "Azure Kubernetes batch write".into())
    } else {
        let k = rng.usize(1..=K8S_PLATFORMS.len());
        let p = pick(rng, K8S_PLATFORMS, k..=k);
        (p, "Kubernetes object write".into())
    };
    let _ = writeln!(s, "  title           = \"{what} {i:05}\"");
    let _ = writeln!(
        s,
        "  description     = \"Generated rule {i}: detects a {} on {}.\"",
        what.to_lowercase(),
        platforms.join(", ")
    );
    let _ = writeln!(s, "  author          = \"detc corpus generator\"");
    let _ = writeln!(s, "  date            = 2025-0{}-1{}", 1 + i % 9, i % 10);
    let _ = writeln!(s, "  status          = {status}");
    let _ = writeln!(s, "  severity        = {severity}");
    let _ = writeln!(s, "  attack          = {attack}");
    if rng.bool() {
        let _ = writeln!(
            s,
            "  references      = [\"https://attack.mitre.org/techniques/T1053/007/\"]"
        );
    }
    if rng.bool() {
        let _ = writeln!(
            s,
            "  false_positives = [\"Automation that manages workloads (generated variant {i}).\"]"
        );
    }
    let _ = writeln!(
        s,
        "  tags            = [\"generated\", \"variant-{}\"]",
        i % 7
    );
    let _ = writeln!(
        s,
        "  lossy           = [splunk, elastic, esql, sigma, sentinel]"
    );
    s.push('\n');
    if azure {
        let _ = writeln!(s, "  source azure.activity on [azure] {{");
        let prefixes = pick(
            rng,
            &[
                "MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/BATCH",
                "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/BATCH",
                "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/RBAC",
            ],
            1..=3,
        );
        let suffixes = pick(
            rng,
            &[
                "/CRONJOBS/WRITE",
                "/JOBS/WRITE",
                "/JOBS/DELETE",
                "/ROLEBINDINGS/WRITE",
            ],
            1..=4,
        );
        let _ = writeln!(
            s,
            "    let write     = operationName startswith any [{}]\n        and operationName endswith any [{}]",
            quoted(&prefixes),
            quoted(&suffixes)
        );
        let ok = pick(rng, &["Success", "Succeeded", "Start"], 1..=3);
        let _ = writeln!(s, "    let succeeded = resultType in [{}]\n", quoted(&ok));
        let _ = writeln!(s, "    match write and succeeded\n");
        let _ = writeln!(s, "    output {{");
        let group = pick(
            rng,
            &["operationName", "resourceId", "callerIpAddress"],
            1..=3,
        );
        let _ = writeln!(s, "      group_by = [{}]", group.join(", "));
        let _ = writeln!(
            s,
            "      title    = \"Azure Kubernetes {{operationName}} on {{resourceId}} ({i})\""
        );
        let _ = writeln!(s, "      dedup    = {}m", 15 * rng.usize(1..=8));
        let _ = writeln!(s, "    }}\n  }}\n");
    } else {
        let _ = writeln!(
            s,
            "  source kubernetes.audit on [{}] {{",
            platforms.join(", ")
        );
        let mut res = pick(rng, RESOURCES, 1..=4);
        if !res.iter().any(|r| *r == "cronjobs" || *r == "jobs") {
            res.insert(0, if rng.bool() { "cronjobs" } else { "jobs" });
        }
        let mut verbs = pick(rng, VERBS, 1..=4);
        if !verbs.contains(&"create") {
            verbs.insert(0, "create");
        }
        let _ = writeln!(
            s,
            "    let write  = objectRef.resource in [{}]\n        and verb in [{}]",
            quoted(&res),
            quoted(&verbs)
        );
        let mut match_ = vec!["write"];
        if rng.bool() {
            let _ = writeln!(s, "    let failed = responseStatus.code >= 400");
            match_.push("not failed");
        }
        if rng.bool() {
            let _ = writeln!(s, "    let status = objectRef.subresource == \"status\"");
            match_.push("not status");
        }
        if rng.bool() {
            let ns = pick(rng, NAMESPACES, 1..=4);
            let users = pick(rng, SYSTEM_USERS, 1..=5);
            let _ = writeln!(
                s,
                "    let system = objectRef.namespace in [{}]\n        and user.username startswith any [{}]",
                quoted(&ns),
                quoted(&users)
            );
            match_.push("not system");
        }
        let _ = writeln!(s, "\n    match {}\n", match_.join(" and "));
        for ind in pick(rng, INDICATORS, 0..=3) {
            let _ = writeln!(s, "    {ind}");
        }
        let _ = writeln!(s, "\n    output {{");
        let group = pick(rng, GROUP_BY, 1..=5);
        let _ = writeln!(s, "      group_by = [{}]", group.join(", "));
        let values = pick(rng, VALUES, 0..=3);
        if !values.is_empty() {
            let _ = writeln!(s, "      values   = [{}]", values.join(", "));
        }
        let _ = writeln!(
            s,
            "      title    = \"{{user.username}} {{verb}} {{objectRef.resource}} {{objectRef.namespace}}/{{objectRef.name}} ({i})\""
        );
        let _ = writeln!(s, "      dedup    = {}m", 15 * rng.usize(1..=8));
        if rng.bool() {
            let m = rng.usize(1..=6) * 10;
            let _ = writeln!(
                s,
                "      schedule = {{ cron = \"*/{m} * * * *\", earliest = \"-{}m@m\", latest = \"-5m@m\" }}",
                m + 5
            );
        }
        if rng.bool() {
            let _ = writeln!(s, "      summary  = [user.username, objectRef.name]");
        }
        let _ = writeln!(s, "    }}\n  }}\n");
    }
    (s, platforms)
}

/// The flagship's text up to its tests, renamed, with its platforms.
fn flagship(name: &str, id: &str, i: usize) -> (String, Vec<&'static str>) {
    let text = std::fs::read_to_string(repo_rules().join("k8s_cronjob_job_write.rule")).unwrap();
    let mut head: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with("  test ") {
            break;
        }
        head.push(line);
    }
    while head
        .last()
        .is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        head.pop();
    }
    let mut s = head.join("\n");
    s = s.replacen(
        "rule k8s_cronjob_job_write {",
        &format!("rule {name} {{"),
        1,
    );
    s = s.replacen("6a6f1c1e-5d0b-4a8e-9c55-2f7b1d7b0c31", id, 1);
    s = s.replacen(
        "\"Kubernetes CronJob or Job Created or Modified\"",
        &format!("\"Kubernetes CronJob or Job Written {i:05}\""),
        1,
    );
    s.push_str("\n\n");
    (s, vec!["kubernetes", "eks", "aks", "gke", "azure"])
}

/// Rule `i` of the corpus: its file name and text. `events` is the folder
/// the tests reference as `events/<file>` (the generated rules sit next to it).
pub struct Corpus {
    samples: Vec<Sample>,
    seed: u64,
}

impl Corpus {
    pub fn new(seed: u64) -> Self {
        Corpus {
            samples: samples(&repo_rules().join("events")),
            seed,
        }
    }

    pub fn rule(&self, i: usize) -> (String, String) {
        let name = format!("gen_{i:05}");
        let id = uuid_for(self.seed, i);
        let mut attempt = 0u64;
        loop {
            let mut rng = fastrand::Rng::with_seed(
                self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9) ^ attempt << 48,
            );
            let (head, platforms) = if i.is_multiple_of(10) {
                flagship(&name, &id, i)
            } else {
                synthetic(&mut rng, &name, &id, i)
            };
            if let Some(tests) = self.tests(&head, &platforms, &mut rng) {
                return (format!("{name}.rule"), format!("{head}{tests}}}\n"));
            }
            attempt += 1;
            assert!(attempt < 64, "no testable variant for rule {i}");
        }
    }

    /// Two matching and two non-matching sample events on the rule's
    /// platforms, by the reference evaluator; `None` if there are not enough.
    fn tests(&self, head: &str, platforms: &[&str], rng: &mut fastrand::Rng) -> Option<String> {
        let cands: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| platforms.contains(&s.platform))
            .collect();
        // Placeholder tests make the rule check; the verdicts come from the evaluator.
        let first = cands.first()?;
        let probe = format!(
            "{head}  test \"m\" on {p} expect match file \"events/{f}\"\n  test \"n\" on {p} expect no match file \"events/{f}\"\n}}\n",
            p = first.platform,
            f = first.file
        );
        let rule = match detc::load::compile_text("gen.rule", &probe, &repo_rules()) {
            Ok(mut r) => r.remove(0),
            Err(report) => panic!("generated rule does not check:\n{report}\n{probe}"),
        };
        let mut ev = detc::eval::Evaluator::new();
        let (mut hits, mut misses) = (Vec::new(), Vec::new());
        for s in cands {
            let v = ev.eval_record(&rule, s.platform, &s.event)?;
            if v.matched {
                hits.push((s, v.indicators));
            } else {
                misses.push(s);
            }
        }
        rng.shuffle(&mut hits);
        rng.shuffle(&mut misses);
        // Every detection gets a matching and a non-matching test (pat test
        // --minimum-tests 2 wants both): with two detections (the flagship's
        // audit-log and Azure activity forms) one of each per detection.
        let azure = |p: &str| p == "azure";
        let mut hits: Vec<_> = if platforms.iter().any(|p| azure(p)) && platforms.len() > 1 {
            let a = hits.iter().find(|(s, _)| azure(s.platform)).cloned();
            let k = hits.iter().find(|(s, _)| !azure(s.platform)).cloned();
            let m_a = misses.iter().find(|s| azure(s.platform)).copied();
            let m_k = misses.iter().find(|s| !azure(s.platform)).copied();
            misses = vec![m_k?, m_a?];
            vec![k?, a?]
        } else {
            hits
        };
        if hits.len() < 2 || misses.len() < 2 {
            return None;
        }
        hits.truncate(2);
        let mut t = String::new();
        for (k, (s, indicators)) in hits.iter().take(2).enumerate() {
            let with = if k == 0 && !indicators.is_empty() {
                let mut ind = indicators.clone();
                ind.sort();
                format!(" with [{}]", ind.join(", "))
            } else {
                String::new()
            };
            let _ = writeln!(
                t,
                "  test \"matches {}\" on {} expect match{with}\n      file \"events/{}\"",
                s.file.trim_end_matches(".json"),
                s.platform,
                s.file
            );
        }
        for s in misses.iter().take(2) {
            let _ = writeln!(
                t,
                "  test \"ignores {}\" on {} expect no match\n      file \"events/{}\"",
                s.file.trim_end_matches(".json"),
                s.platform,
                s.file
            );
        }
        Some(t)
    }
}

/// Write `n` rules into `dir/rules/` with a copy of the repository's
/// `rules/events/` beside them; the rules folder.
pub fn write(dir: &Path, n: usize, seed: u64) -> std::io::Result<PathBuf> {
    let rules = dir.join("rules");
    let events = rules.join("events");
    std::fs::create_dir_all(&events)?;
    for e in std::fs::read_dir(repo_rules().join("events"))? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), events.join(e.file_name()))?;
        }
    }
    let corpus = Corpus::new(seed);
    for i in 0..n {
        let (file, text) = corpus.rule(i);
        std::fs::write(rules.join(file), text)?;
    }
    Ok(rules)
}
