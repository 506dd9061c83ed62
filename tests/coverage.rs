//! The coverage matrix: every platform of every detection is served by a
//! generated file or reported lost by name, in every target, and the
//! flagship is served on each of its platforms by every target that has an
//! integration for it.

use detc::backend::{LossKind, Target};

mod common;
use common::project_rules;

#[test]
fn every_platform_is_served_or_lost_by_name_in_every_target() {
    for rule in project_rules() {
        for t in Target::ALL {
            let r = match detc::build::render(&rule, t) {
                Ok(r) => r,
                Err(e) => panic!("{} -> {t}: {e}", rule.name),
            };
            for det in &rule.detections {
                for p in &det.platforms {
                    let served = r
                        .coverage
                        .iter()
                        .any(|c| c.stem == det.stem && &c.platform == p && c.source == det.source);
                    let lost = r.losses.iter().any(|l| {
                        l.stem == det.stem
                            && l.kind == LossKind::Unsupported
                            && l.construct == format!("platform {p}")
                    });
                    assert!(
                        served || lost,
                        "{} -> {t}: platform {p} of {} is neither served nor lost",
                        rule.name,
                        det.stem
                    );
                    for c in r
                        .coverage
                        .iter()
                        .filter(|c| c.stem == det.stem && &c.platform == p)
                    {
                        assert!(
                            r.files.iter().any(|f| f.path == c.file),
                            "{} -> {t}: coverage names {} which is not written",
                            rule.name,
                            c.file
                        );
                        assert!(!c.via.is_empty());
                    }
                }
            }
        }
    }
}

#[test]
fn the_flagship_is_served_on_every_platform() {
    let flagship = project_rules()
        .into_iter()
        .find(|r| r.name == "k8s_cronjob_job_write")
        .expect("the flagship");
    let expect: &[(Target, &[&str])] = &[
        (
            Target::Splunk,
            &["kubernetes", "eks", "aks", "gke", "azure"],
        ),
        (
            Target::Elastic,
            &["kubernetes", "eks", "aks", "gke", "azure"],
        ),
        (Target::Esql, &["kubernetes", "eks", "aks", "gke", "azure"]),
        (
            Target::Panther,
            &["kubernetes", "eks", "aks", "gke", "azure"],
        ),
        (Target::Sigma, &["kubernetes", "eks", "aks", "gke", "azure"]),
        // Raw Kubernetes and EKS have no Log Analytics table.
        (Target::Sentinel, &["aks", "gke", "azure"]),
    ];
    for (t, platforms) in expect {
        let r = detc::build::render(&flagship, *t).unwrap();
        let mut got: Vec<&str> = r.coverage.iter().map(|c| c.platform.as_str()).collect();
        got.sort();
        got.dedup();
        let mut want = platforms.to_vec();
        want.sort();
        assert_eq!(got, want, "{t}");
    }
}
