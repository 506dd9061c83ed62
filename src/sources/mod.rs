//! The source catalog (canonical fields and types of each log source, kept
//! as data in `*.yaml` beside this file) and platform normalisation.

pub mod forms;
pub mod normalize;
pub mod project;

use crate::ir::{Field, Seg};
pub use crate::ir::{FieldInfo, FieldType};
use serde::Deserialize;
use std::sync::OnceLock;

#[derive(Debug, Clone, Deserialize)]
pub struct FieldDef {
    pub path: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
    #[serde(default)]
    pub array: bool,
    /// The source's own schema types the field as an integer, so no record
    /// holds a fraction there (a test event that does is refused): targets
    /// that store it as an integer (Elasticsearch truncates) then compare
    /// exactly as the language does.
    #[serde(default)]
    pub whole: bool,
    #[serde(default)]
    pub description: String,
}

/// The first value of `event` (a normalised record) at a `whole` field of
/// `catalog` that is a number with a fraction, or a string that reads as
/// one: (field, value).
pub fn fraction_in_whole_field(
    catalog: &Catalog,
    event: &serde_json::Value,
) -> Option<(String, String)> {
    if catalog.integers {
        if let Some(found) = fraction_anywhere(event, &mut Vec::new()) {
            return Some(found);
        }
    }
    for f in catalog.fields.iter().filter(|f| f.whole) {
        let field = Field(f.path.split('.').map(|k| Seg::Key(k.to_string())).collect());
        for v in crate::eval::lookup(event, &field) {
            let x = match v {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            if x.is_some_and(|x| x.is_finite() && x.fract() != 0.0) {
                return Some((f.path.clone(), v.to_string()));
            }
        }
    }
    None
}

/// The first JSON number with a fraction in `v`: (its path, the number).
fn fraction_anywhere(v: &serde_json::Value, path: &mut Vec<String>) -> Option<(String, String)> {
    match v {
        serde_json::Value::Number(n) if n.as_f64().is_some_and(|x| x.fract() != 0.0) => {
            Some((path.join("."), n.to_string()))
        }
        serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
            path.push(k.clone());
            let found = fraction_anywhere(x, path);
            path.pop();
            found
        }),
        serde_json::Value::Array(xs) => xs.iter().find_map(|x| fraction_anywhere(x, path)),
        _ => None,
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Catalog {
    pub source: String,
    /// Every number of the source's records is an integer (the Kubernetes
    /// API conventions forbid floats): a test event with a fraction
    /// anywhere is refused, and integer-mapped fields compare exactly.
    #[serde(default)]
    pub integers: bool,
    /// How titles name the source (`Kubernetes audit logs`).
    pub label: String,
    #[serde(default)]
    pub description: String,
    pub platforms: Vec<String>,
    pub fields: Vec<FieldDef>,
    /// Path aliases (`requestObject.$podSpec`), each naming several concrete paths.
    #[serde(default)]
    pub aliases: Vec<Alias>,
}

/// `<below>.$<name>`: one name for the same sub-tree at several concrete
/// paths, such as the pod spec of a Pod, a Job or a CronJob. A comparison
/// through an alias is the OR of the comparison on each concrete path.
#[derive(Debug, Clone, Deserialize)]
pub struct Alias {
    pub name: String,
    /// The free-form (`any`) fields the alias may follow.
    pub below: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// The concrete paths, relative to a `below` field.
    pub paths: Vec<AliasPath>,
    /// The keys allowed right after the alias.
    pub keys: Vec<String>,
    /// Array sub-paths relative to the alias (`containers`, `containers.command`).
    #[serde(default)]
    pub arrays: Vec<String>,
    /// Scalar leaves relative to the alias, with their types
    /// (`volumes.hostPath.path: string`): known values, not objects.
    #[serde(default)]
    pub leaves: std::collections::BTreeMap<String, FieldType>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AliasPath {
    pub path: String,
    /// The object kinds with this shape (`Job`, ...).
    pub kinds: Vec<String>,
    /// Their `objectRef.resource` names (`jobs`, ...).
    pub resources: Vec<String>,
}

/// What the catalog knows about a field path: the IR's [`FieldInfo`],
/// carried by every comparison.
pub type Resolved = FieldInfo;

pub fn catalogs() -> &'static [Catalog] {
    static CATALOGS: OnceLock<Vec<Catalog>> = OnceLock::new();
    CATALOGS.get_or_init(|| {
        [
            include_str!("kubernetes_audit.yaml"),
            include_str!("azure_activity.yaml"),
        ]
        .iter()
        .map(|text| {
            let mut cat: Catalog =
                serde_yaml::from_str(text).expect("built-in catalog is valid YAML");
            cat.add_alias_arrays();
            cat
        })
        .collect()
    })
}

pub fn catalog(source: &str) -> Option<&'static Catalog> {
    catalogs().iter().find(|c| c.source == source)
}

/// The source that covers a platform, if any.
pub fn source_of_platform(platform: &str) -> Option<&'static Catalog> {
    catalogs()
        .iter()
        .find(|c| c.platforms.iter().any(|p| p == platform))
}

impl Catalog {
    fn def(&self, path: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.path == path)
    }

    /// Every alias's array sub-paths become known array fields at each
    /// concrete path (`requestObject.spec.template.spec.containers`), listed
    /// after the free-form field they lie below.
    fn add_alias_arrays(&mut self) {
        for alias in self.aliases.clone() {
            for below in &alias.below {
                let mut defs = Vec::new();
                for p in &alias.paths {
                    for a in &alias.arrays {
                        let path = format!("{below}.{}.{a}", p.path);
                        if self.def(&path).is_none() {
                            defs.push(FieldDef {
                                path,
                                ty: FieldType::Any,
                                array: true,
                                whole: false,
                                description: format!(
                                    "{} `{a}` list ({}); a known array below the free-form {below}, from `${}`.",
                                    p.kinds.join("/"),
                                    p.path,
                                    alias.name
                                ),
                            });
                        }
                    }
                    for (leaf, ty) in &alias.leaves {
                        let path = format!("{below}.{}.{leaf}", p.path);
                        if self.def(&path).is_none() {
                            defs.push(FieldDef {
                                path,
                                ty: *ty,
                                array: false,
                                whole: false,
                                description: format!(
                                    "{} `{leaf}` ({}); a known leaf below the free-form {below}, from `${}`.",
                                    p.kinds.join("/"),
                                    p.path,
                                    alias.name
                                ),
                            });
                        }
                    }
                }
                let at = self
                    .fields
                    .iter()
                    .position(|f| &f.path == below)
                    .map_or(self.fields.len(), |i| i + 1);
                self.fields.splice(at..at, defs);
            }
        }
    }

    pub fn alias(&self, name: &str) -> Option<&Alias> {
        self.aliases.iter().find(|a| a.name == name)
    }

    /// The alias branch a concrete path lies on (`requestObject.spec.containers.image`
    /// is on the Pod branch of `$podSpec`): the longest branch whose path is
    /// followed by one of the alias's keys.
    pub fn alias_branch(&self, field: &Field) -> Option<(&Alias, &AliasPath)> {
        let keys: Vec<&str> = field.keys().map(|k| k.unwrap_or("**")).collect();
        let mut best: Option<(usize, &Alias, &AliasPath)> = None;
        for alias in &self.aliases {
            for below in &alias.below {
                for p in &alias.paths {
                    let prefix: Vec<&str> = below.split('.').chain(p.path.split('.')).collect();
                    let n = prefix.len();
                    let on = keys.len() > n
                        && keys[..n] == prefix[..]
                        && alias.keys.iter().any(|k| k == keys[n]);
                    if on && best.is_none_or(|(m, _, _)| n > m) {
                        best = Some((n, alias, p));
                    }
                }
            }
        }
        best.map(|(_, a, p)| (a, p))
    }

    /// Resolve a field path, or explain why it is not a field of this source.
    pub fn resolve(&self, field: &Field) -> Result<Resolved, String> {
        let mut arrays = Vec::new();
        let mut prefix = String::new();
        for (i, seg) in field.0.iter().enumerate() {
            let key = match seg {
                Seg::Key(k) => k,
                Seg::AnyDepth => {
                    return Err(format!(
                        "`**` is only allowed below a free-form field such as `{}`",
                        self.free_form_example()
                    ));
                }
            };
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(key);
            let Some(def) = self.def(&prefix) else {
                return Err(self.unknown(&prefix));
            };
            arrays.push(def.array);
            let last = i + 1 == field.0.len();
            match def.ty {
                FieldType::Any if !last => {
                    // Below here anything goes; known sub-paths (listed with
                    // their array flags, e.g. pod template containers) still
                    // tell where the arrays are.
                    let mut sub = prefix.clone();
                    for seg in &field.0[i + 1..] {
                        match seg {
                            Seg::Key(k) => {
                                sub.push('.');
                                sub.push_str(k);
                                arrays.push(self.def(&sub).is_some_and(|d| d.array));
                            }
                            Seg::AnyDepth => {
                                sub.push_str(".**");
                                arrays.push(false);
                            }
                        }
                    }
                    // A leaf the schema knows (`$podSpec` leaves) holds a value of its type.
                    if let Some(d) = self.def(&sub).filter(|d| d.ty != FieldType::Any) {
                        return Ok(Resolved {
                            ty: d.ty,
                            arrays,
                            free_form: false,
                        });
                    }
                    return Ok(Resolved {
                        ty: FieldType::Any,
                        arrays,
                        free_form: true,
                    });
                }
                FieldType::Map if !last => {
                    if i + 2 == field.0.len() && matches!(field.0[i + 1], Seg::Key(_)) {
                        arrays.push(false);
                        return Ok(Resolved {
                            ty: FieldType::String,
                            arrays,
                            free_form: false,
                        });
                    }
                    return Err(format!(
                        "`{prefix}` is a map of strings: one key may follow it"
                    ));
                }
                _ if last => {
                    return Ok(Resolved {
                        ty: def.ty,
                        arrays,
                        free_form: false,
                    })
                }
                FieldType::Object => {}
                _ => {
                    return Err(
                        format!("`{prefix}` is a {:?} field and has no sub-fields", def.ty)
                            .to_lowercase(),
                    )
                }
            }
        }
        Err("empty field path".into())
    }

    fn free_form_example(&self) -> String {
        self.fields
            .iter()
            .find(|f| f.ty == FieldType::Any)
            .map_or_else(|| "(none in this source)".to_string(), |f| f.path.clone())
    }

    fn unknown(&self, path: &str) -> String {
        format!("`{path}` is not a field of {}", self.source)
    }

    /// The closest known field name, for "did you mean".
    pub fn suggest(&self, path: &str) -> Option<&str> {
        self.fields
            .iter()
            .map(|f| {
                (
                    strsim::jaro_winkler(&f.path.to_lowercase(), &path.to_lowercase()),
                    f.path.as_str(),
                )
            })
            .filter(|(score, _)| *score > 0.85)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(s: &str) -> Field {
        Field(
            s.split('.')
                .map(|k| {
                    if k == "**" {
                        Seg::AnyDepth
                    } else {
                        Seg::Key(k.into())
                    }
                })
                .collect(),
        )
    }

    #[test]
    fn catalogs_load_and_resolve() {
        let k8s = catalog("kubernetes.audit").unwrap();
        assert_eq!(k8s.resolve(&field("verb")).unwrap().ty, FieldType::String);
        assert_eq!(
            k8s.resolve(&field("user.groups")).unwrap().arrays,
            vec![false, true]
        );
        assert!(
            k8s.resolve(&field("requestObject.**.image"))
                .unwrap()
                .free_form
        );
        assert!(k8s.resolve(&field("objectRef.resorce")).is_err());
        assert_eq!(k8s.suggest("objectRef.resorce"), Some("objectRef.resource"));
        // `$podSpec` arrays are known at every concrete path.
        assert_eq!(
            k8s.resolve(&field(
                "requestObject.spec.jobTemplate.spec.template.spec.containers.command"
            ))
            .unwrap()
            .arrays,
            vec![false, false, false, false, false, false, true, true]
        );
        assert_eq!(
            k8s.resolve(&field(
                "requestObject.spec.template.spec.ephemeralContainers.image"
            ))
            .unwrap()
            .arrays,
            vec![false, false, false, false, true, false]
        );
        let (_, branch) = k8s
            .alias_branch(&field("requestObject.spec.template.spec.containers.image"))
            .unwrap();
        assert_eq!(branch.resources[0], "jobs");
        let (_, branch) = k8s
            .alias_branch(&field("requestObject.spec.hostNetwork"))
            .unwrap();
        assert_eq!(branch.resources, ["pods"]);
        // `spec.template.metadata` is not a pod spec field.
        assert!(k8s
            .alias_branch(&field("requestObject.spec.template.metadata.name"))
            .is_none());
        assert!(catalog("azure.activity")
            .unwrap()
            .resolve(&field("operationName"))
            .is_ok());
    }
}
