//! Platform normalisation: turn a platform's record into the source's
//! canonical event before matching. The Panther backend emits the same
//! logic in Python, so both agree on every test.

use serde_json::{json, Map, Value};

/// The canonical event for `platform`, or `None` when the record is not an
/// event of the source at all (an AKS record of another category, a GCP
/// audit record of another service, a string where an object belongs).
pub fn normalize(platform: &str, record: &Value) -> Option<Value> {
    match platform {
        "kubernetes" | "eks" | "azure" => record.is_object().then(|| record.clone()),
        "aks" => aks(record),
        "gke" => gke(record),
        _ => None,
    }
}

/// Split a record file into records: an Event Hub export `{"records": [...]}`
/// yields its records, a JSON array its elements, anything else itself.
pub fn records(value: Value) -> Vec<Value> {
    match value {
        // An array of records, or of Event Hub exports (one per message).
        Value::Array(items) => items.into_iter().flat_map(records).collect(),
        Value::Object(mut map)
            if map.len() == 1 && map.get("records").is_some_and(Value::is_array) =>
        {
            match map.remove("records") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            }
        }
        other => vec![other],
    }
}

/// [`records`] without taking the value: the records of a record file, borrowed.
pub fn records_ref(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        Value::Object(map) if map.len() == 1 => match map.get("records") {
            Some(Value::Array(items)) => items,
            _ => std::slice::from_ref(value),
        },
        other => std::slice::from_ref(other),
    }
}

/// AKS diagnostic record: the audit Event sits in `properties.log`, usually
/// as a JSON string, for the `kube-audit` and `kube-audit-admin` categories.
fn aks(record: &Value) -> Option<Value> {
    let category = record.get("category")?.as_str()?.to_ascii_lowercase();
    if category != "kube-audit" && category != "kube-audit-admin" {
        return None;
    }
    match record.get("properties")?.get("log")? {
        Value::String(s) => serde_json::from_str::<Value>(s)
            .ok()
            .filter(Value::is_object),
        obj @ Value::Object(_) => Some(obj.clone()),
        _ => None,
    }
}

/// HTTP status equivalent of a gRPC status code (google.rpc.Code).
pub fn grpc_to_http(code: i64) -> i64 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// `v1`, `v2beta1`, `v1alpha3`: a methodName part that is an API version.
pub fn is_api_version(s: &str) -> bool {
    // v1, v2, v1beta1, v2alpha3
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    tail.is_empty()
        || ["alpha", "beta"].iter().any(|p| {
            tail.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
}

/// GKE Cloud Audit Log record: rebuild the audit Event from `protoPayload`.
fn gke(record: &Value) -> Option<Value> {
    let pp = record.get("protoPayload")?.as_object()?;
    if pp.get("serviceName").and_then(Value::as_str) != Some("k8s.io") {
        return None;
    }
    let mut ev = Map::new();
    ev.insert("kind".into(), json!("Event"));
    ev.insert("apiVersion".into(), json!("audit.k8s.io/v1"));
    ev.insert("stage".into(), json!("ResponseComplete"));

    // methodName: io.k8s.<group>.<version>.<resource>[.<subresource>].<verb>
    let method = pp.get("methodName").and_then(Value::as_str).unwrap_or("");
    let mut object_ref = Map::new();
    if let Some(rest) = method.strip_prefix("io.k8s.") {
        let parts: Vec<&str> = rest.split('.').collect();
        if let Some(verb) = parts.last() {
            ev.insert("verb".into(), json!(verb));
        }
        if let Some(vi) = parts.iter().position(|p| is_api_version(p)) {
            let group = parts[..vi].join(".");
            let after = &parts[vi + 1..parts.len().saturating_sub(1).max(vi + 1)];
            let version = parts[vi];
            if group == "core" || group.is_empty() {
                object_ref.insert("apiVersion".into(), json!(version));
            } else {
                object_ref.insert("apiGroup".into(), json!(group));
                object_ref.insert("apiVersion".into(), json!(format!("{group}/{version}")));
            }
            if let Some(resource) = after.first() {
                object_ref.insert("resource".into(), json!(resource));
            }
            if let Some(sub) = after.get(1) {
                object_ref.insert("subresource".into(), json!(sub));
            }
        }
    }
    // resourceName: <group>/<version>/namespaces/<ns>/<resource>/<name>[/<subresource>]
    if let Some(name) = pp.get("resourceName").and_then(Value::as_str) {
        let segs: Vec<&str> = name.split('/').collect();
        if let Some(i) = segs.iter().position(|s| *s == "namespaces") {
            if let Some(ns) = segs.get(i + 1) {
                object_ref.insert("namespace".into(), json!(ns));
            }
            if let Some(n) = segs.get(i + 3) {
                object_ref.insert("name".into(), json!(n));
            }
            if let Some(sub) = segs.get(i + 4) {
                object_ref.insert("subresource".into(), json!(sub));
            }
        }
    }
    if !object_ref.is_empty() {
        ev.insert("objectRef".into(), Value::Object(object_ref));
    }
    if let Some(user) = pp
        .get("authenticationInfo")
        .and_then(|a| a.get("principalEmail"))
    {
        ev.insert("user".into(), json!({ "username": user }));
    }
    if let Some(meta) = pp.get("requestMetadata") {
        if let Some(ip) = meta.get("callerIp").or_else(|| meta.get("callerIP")) {
            ev.insert("sourceIPs".into(), json!([ip]));
        }
        if let Some(ua) = meta.get("callerSuppliedUserAgent") {
            ev.insert("userAgent".into(), ua.clone());
        }
    }
    let code = pp
        .get("status")
        .and_then(|s| s.get("code"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    ev.insert(
        "responseStatus".into(),
        json!({ "code": grpc_to_http(code) }),
    );
    if let Some(req) = pp.get("request") {
        ev.insert("requestObject".into(), req.clone());
    }
    if let Some(resp) = pp.get("response") {
        ev.insert("responseObject".into(), resp.clone());
    }
    Some(Value::Object(ev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gke_method_and_resource_names() {
        let rec = json!({"protoPayload": {
            "serviceName": "k8s.io",
            "methodName": "io.k8s.batch.v1.jobs.status.update",
            "resourceName": "batch/v1/namespaces/ns/jobs/x/status",
            "status": {"code": 7}
        }});
        let ev = normalize("gke", &rec).unwrap();
        assert_eq!(ev["verb"], "update");
        assert_eq!(ev["objectRef"]["resource"], "jobs");
        assert_eq!(ev["objectRef"]["subresource"], "status");
        assert_eq!(ev["objectRef"]["namespace"], "ns");
        assert_eq!(ev["objectRef"]["name"], "x");
        assert_eq!(ev["responseStatus"]["code"], 403);
        let rbac = json!({"protoPayload": {"serviceName": "k8s.io",
            "methodName": "io.k8s.authorization.rbac.v1.rolebindings.create"}});
        assert_eq!(
            normalize("gke", &rbac).unwrap()["objectRef"]["apiGroup"],
            "authorization.rbac"
        );
    }

    #[test]
    fn aks_string_object_and_other_categories() {
        let s = json!({"category": "kube-audit", "properties": {"log": "{\"verb\":\"create\"}"}});
        assert_eq!(normalize("aks", &s).unwrap()["verb"], "create");
        let o = json!({"category": "kube-audit-admin", "properties": {"log": {"verb": "patch"}}});
        assert_eq!(normalize("aks", &o).unwrap()["verb"], "patch");
        let other = json!({"category": "kube-apiserver", "properties": {"log": "{}"}});
        assert!(normalize("aks", &other).is_none());
        let broken = json!({"category": "kube-audit", "properties": {"log": "{not json"}});
        assert!(normalize("aks", &broken).is_none());
    }

    #[test]
    fn event_hub_records_split() {
        assert_eq!(records(json!({"records": [1, 2]})).len(), 2);
        assert_eq!(records(json!({"a": 1})).len(), 1);
    }
}

#[cfg(test)]
mod records_tests {
    use super::records;
    use serde_json::json;

    #[test]
    fn exports_and_arrays_of_exports_split_into_records() {
        assert_eq!(records(json!({"records": [{"a": 1}, {"a": 2}]})).len(), 2);
        assert_eq!(
            records(json!([{"records": [{"a": 1}]}, {"records": [{"a": 2}, {"a": 3}]}])).len(),
            3
        );
        assert_eq!(records(json!([{"a": 1}, {"b": 2}])).len(), 2);
        assert_eq!(records(json!({"a": 1})).len(), 1);
    }
}
