//! `metadata.managedFields`: decoding, encoding in kube's order, and which paths can be owned.
use serde_json::{Map, Value, json};

use super::fieldpath::{FieldSet, PathElement};

/// The operation of a managedFields entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update, or a JSON / merge / strategic patch.
    Update,
}

impl Operation {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry. kube identifies an entry by manager, operation and
/// subresource (and apiVersion for updates; one version per kind here, so it is left out).
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// The field manager name.
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// `Some("status")` for writes through `/status`.
    pub subresource: Option<String>,
    /// The apiVersion the fields were written in.
    pub api_version: String,
    /// RFC 3339 time of the last change by this entry.
    pub time: Option<String>,
    /// The owned fields.
    pub fields: FieldSet,
}

impl ManagedEntry {
    /// Whether this entry has the identity (manager, operation, subresource).
    pub fn is(&self, manager: &str, operation: Operation, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// The manager as kube prints it in conflict messages (`printManager`): `"name"`, plus
    /// ` with subresource "status"`, plus ` using <apiVersion>` for Update entries.
    pub fn describe(&self) -> String {
        describe_manager(
            &self.manager,
            self.operation,
            self.subresource.as_deref(),
            &self.api_version,
        )
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(self.operation.as_str()));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".into(), json!(time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(subresource) = &self.subresource {
            entry.insert("subresource".into(), json!(subresource));
        }
        Value::Object(entry)
    }

    fn from_json(value: &Value) -> Option<ManagedEntry> {
        let text = |name: &str| value.get(name).and_then(Value::as_str);
        let operation = match text("operation")? {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return None,
        };
        let fields = match value.get("fieldsV1") {
            Some(fields) => FieldSet::from_fields_v1(fields).ok()?,
            None => FieldSet::new(),
        };
        Some(ManagedEntry {
            manager: text("manager")?.to_owned(),
            operation,
            subresource: text("subresource")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            api_version: text("apiVersion").unwrap_or_default().to_owned(),
            time: text("time").map(str::to_owned),
            fields,
        })
    }
}

/// kube's `printManager` for a manager identity.
pub fn describe_manager(
    manager: &str,
    operation: Operation,
    subresource: Option<&str>,
    api_version: &str,
) -> String {
    let mut out = format!("{manager:?}");
    if let Some(subresource) = subresource {
        out.push_str(&format!(" with subresource {subresource:?}"));
    }
    if operation == Operation::Update {
        out.push_str(&format!(" using {api_version}"));
    }
    out
}

/// The raw `metadata.managedFields` of an object, if set.
pub fn raw_managed_fields(object: &Value) -> Option<&Value> {
    object.get("metadata")?.get("managedFields")
}

/// Decodes the entries of `metadata.managedFields`, merging entries with the same identity and
/// skipping malformed ones (kube resets managedFields it cannot decode rather than fail a write).
pub fn decode(managed_fields: Option<&Value>) -> Vec<ManagedEntry> {
    let mut out: Vec<ManagedEntry> = Vec::new();
    let Some(Value::Array(items)) = managed_fields else {
        return out;
    };
    for entry in items.iter().filter_map(ManagedEntry::from_json) {
        match out.iter_mut().find(|e| {
            e.is(
                &entry.manager,
                entry.operation,
                entry.subresource.as_deref(),
            )
        }) {
            Some(existing) => existing.fields = existing.fields.union(&entry.fields),
            None => out.push(entry),
        }
    }
    out
}

/// Writes `entries` to `object.metadata.managedFields` in kube's order (operation, time,
/// manager, apiVersion, subresource), dropping entries that own nothing; removes the field
/// when nothing is left.
pub fn store(object: &mut Value, entries: &[ManagedEntry]) {
    let mut kept: Vec<&ManagedEntry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    kept.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| unix_seconds(a.time.as_deref()).cmp(&unix_seconds(b.time.as_deref())))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let Some(root) = object.as_object_mut() else {
        return;
    };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    if kept.is_empty() {
        metadata.remove("managedFields");
    } else {
        let encoded = kept.into_iter().map(ManagedEntry::to_json).collect();
        metadata.insert("managedFields".into(), Value::Array(encoded));
    }
}

/// Removes `metadata.managedFields` so objects can be compared and merged without it.
pub fn strip(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
}

fn unix_seconds(time: Option<&str>) -> i64 {
    time.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp())
}

/// Metadata fields the server owns; never part of a manager's field set (kube's StripMeta).
pub const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Whether a manager writing through `subresource` can own `path`: never `apiVersion`, `kind`,
/// `metadata` itself or [`SERVER_METADATA`]; through `/status` only `.status`; through the main
/// resource everything but `.status` (kube's reset fields for kinds with a status subresource).
pub fn ownable(path: &[PathElement], subresource: Option<&str>) -> bool {
    let name = |i: usize| match path.get(i) {
        Some(PathElement::Field(name)) => Some(name.as_str()),
        _ => None,
    };
    match (name(0), name(1)) {
        (Some("apiVersion" | "kind"), _) => false,
        (Some("metadata"), None) => false,
        (Some("metadata"), Some(field)) if SERVER_METADATA.contains(&field) => false,
        (first, _) => (first == Some("status")) == (subresource == Some("status")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn decode_and_store_round_trip_in_kube_order() {
        let raw = json!([
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:02Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:b": {}}}},
            {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:01Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:a": {}}}, "subresource": "status"},
            {"manager": "z", "operation": "Apply", "apiVersion": "v1", "time": "2024-01-01T00:00:09Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:z": {}}}},
            {"manager": "broken", "operation": "Update", "fieldsV1": {"bad": {}}}
        ]);
        let entries = decode(Some(&raw));
        assert_eq!(entries.len(), 3);
        let mut object = json!({"metadata": {}});
        store(&mut object, &entries);
        let stored = raw_managed_fields(&object).unwrap().as_array().unwrap();
        let order: Vec<&str> = stored
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["z", "a", "b"]);
        assert_eq!(stored[1], raw[1]);
    }

    #[test]
    fn storing_nothing_removes_managed_fields() {
        let mut object = json!({"metadata": {"managedFields": [{}]}});
        store(&mut object, &[]);
        assert_eq!(object, json!({"metadata": {}}));
    }

    #[test]
    fn ownable_splits_status_from_the_main_resource_and_skips_server_metadata() {
        let p = |names: &[&str]| -> Vec<PathElement> {
            names
                .iter()
                .map(|n| PathElement::Field((*n).to_owned()))
                .collect()
        };
        assert!(ownable(&p(&["spec", "x"]), None));
        assert!(!ownable(&p(&["status", "x"]), None));
        assert!(ownable(&p(&["status", "x"]), Some("status")));
        assert!(!ownable(&p(&["spec", "x"]), Some("status")));
        assert!(ownable(&p(&["metadata", "labels", "a"]), None));
        assert!(!ownable(&p(&["metadata", "name"]), None));
        assert!(!ownable(&p(&["metadata"]), None));
        assert!(!ownable(&p(&["kind"]), None));
    }

    #[test]
    fn describe_matches_kube_print_manager() {
        assert_eq!(
            describe_manager("m", Operation::Apply, None, "v1"),
            r#""m""#
        );
        assert_eq!(
            describe_manager("kubectl", Operation::Update, Some("status"), "apps/v1"),
            r#""kubectl" with subresource "status" using apps/v1"#
        );
    }
}
