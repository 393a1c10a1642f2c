//! Field paths and field sets as structured-merge-diff models them, and their `FieldsV1` JSON
//! encoding (`f:<name>`, `k:{"type":"Ready"}`, `v:"value"`, `i:0`, `.` for the node itself).
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

use serde_json::{Map, Value};

/// One step into a value. The variant order is SMD's order (fields, keys, values, indexes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of a map or struct.
    Field(String),
    /// An element of an associative list, by its key fields: canonical JSON object, keys sorted.
    Key(String),
    /// An element of a set, by its value: canonical JSON.
    Value(String),
    /// An element of an atomic list by position (only read from foreign managedFields).
    Index(usize),
}

impl PathElement {
    /// The `FieldsV1` map key for this element.
    pub fn to_fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(json) => format!("k:{json}"),
            PathElement::Value(json) => format!("v:{json}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` map key (other than `.`).
    pub fn from_fields_v1_key(key: &str) -> Result<Self, String> {
        let parse_json = |s: &str| {
            serde_json::from_str::<Value>(s)
                .map_err(|e| format!("invalid FieldsV1 key {key:?}: {e}"))
        };
        if let Some(name) = key.strip_prefix("f:") {
            Ok(PathElement::Field(name.to_owned()))
        } else if let Some(json) = key.strip_prefix("k:") {
            match parse_json(json)? {
                Value::Object(fields) => {
                    Ok(PathElement::Key(canonical_json(&Value::Object(fields))))
                }
                _ => Err(format!("invalid FieldsV1 key {key:?}: not an object")),
            }
        } else if let Some(json) = key.strip_prefix("v:") {
            Ok(PathElement::Value(canonical_json(&parse_json(json)?)))
        } else if let Some(index) = key.strip_prefix("i:") {
            index
                .parse()
                .map(PathElement::Index)
                .map_err(|e| format!("invalid FieldsV1 key {key:?}: {e}"))
        } else {
            Err(format!("invalid FieldsV1 key {key:?}"))
        }
    }
}

/// The human-readable form kube prints in conflict messages: `.spec`, `[type="Ready"]`,
/// `[port=80,protocol="TCP"]`, `[="finalizer"]`, `[0]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(json) => {
                let fields = match serde_json::from_str::<Value>(json) {
                    Ok(Value::Object(fields)) => fields,
                    _ => return write!(f, "[{json}]"),
                };
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={}", canonical_json(value)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(json) => write!(f, "[={json}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the object root.
pub type Path = Vec<PathElement>;

/// Renders a path the way kube does in conflict messages, e.g. `.status.conditions[type="Ready"]`.
pub fn path_to_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// JSON with object keys sorted, so equal keys and set items compare equal as strings.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(fields) => {
            let mut sorted: Vec<(&String, &Value)> = fields.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = sorted
                .into_iter()
                .map(|(name, v)| format!("{}:{}", Value::String(name.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", parts.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// A set of owned paths. A path is in the set when the node it names is owned as a whole
/// (a leaf, an atomic list or map, a list element, or a map created by an update).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a path.
    pub fn insert(&mut self, path: Path) {
        self.0.insert(path);
    }

    /// Whether exactly this path is in the set.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.0.contains(path)
    }

    /// Whether some path strictly below `prefix` is in the set.
    pub fn has_descendant(&self, prefix: &[PathElement]) -> bool {
        self.0
            .range::<[PathElement], _>((Bound::Excluded(prefix), Bound::Unbounded))
            .next()
            .is_some_and(|p| p.starts_with(prefix))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The paths in order.
    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    /// Paths in `self` but not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// Keeps the paths for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&Path) -> bool) {
        self.0.retain(keep);
    }

    /// The `fieldsV1` JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<String, Node>,
        }
        fn to_json(node: &Node) -> Value {
            let mut out = Map::new();
            if node.member && !node.children.is_empty() {
                out.insert(".".to_owned(), Value::Object(Map::new()));
            }
            for (key, child) in &node.children {
                out.insert(key.clone(), to_json(child));
            }
            Value::Object(out)
        }
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for element in path {
                node = node.children.entry(element.to_fields_v1_key()).or_default();
            }
            node.member = true;
        }
        to_json(&root)
    }

    /// Parses `fieldsV1` JSON.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        fn walk(value: &Value, prefix: &mut Path, out: &mut FieldSet) -> Result<(), String> {
            let Value::Object(children) = value else {
                return Err("FieldsV1 nodes must be objects".to_owned());
            };
            if children.is_empty() && !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            for (key, child) in children {
                if key == "." {
                    if !prefix.is_empty() {
                        out.insert(prefix.clone());
                    }
                    continue;
                }
                prefix.push(PathElement::from_fields_v1_key(key)?);
                walk(child, prefix, out)?;
                prefix.pop();
            }
            Ok(())
        }
        let mut out = FieldSet::new();
        walk(value, &mut Vec::new(), &mut out)?;
        Ok(out)
    }
}

impl FromIterator<Path> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Path>>(iter: I) -> Self {
        FieldSet(iter.into_iter().collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A `fieldsV1` as kube-apiserver writes it for a controller updating a Deployment's status and a
    /// labelled, owned object (`.` on nodes that are owned and have children).
    fn real_fields_v1() -> Value {
        json!({
            "f:metadata": {
                "f:finalizers": {".": {}, "v:\"kubedb.com\"": {}},
                "f:labels": {".": {}, "f:app": {}},
                "f:ownerReferences": {".": {}, "k:{\"uid\":\"d3f1\"}": {}}
            },
            "f:spec": {
                "f:ports": {
                    ".": {},
                    "k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:protocol": {}}
                }
            },
            "f:status": {
                "f:conditions": {
                    ".": {},
                    "k:{\"type\":\"Ready\"}": {
                        ".": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}
                    }
                }
            }
        })
    }

    #[test]
    fn fields_v1_round_trips_a_real_managed_fields_entry() {
        let set = FieldSet::from_fields_v1(&real_fields_v1()).unwrap();
        assert!(set.contains(&[
            PathElement::Field("status".into()),
            PathElement::Field("conditions".into()),
            PathElement::Key(r#"{"type":"Ready"}"#.into()),
        ]));
        assert!(set.contains(&[
            PathElement::Field("metadata".into()),
            PathElement::Field("finalizers".into()),
            PathElement::Value(r#""kubedb.com""#.into()),
        ]));
        // `f:spec` has no `.`, so `.spec` itself is not owned.
        assert!(!set.contains(&[PathElement::Field("spec".into())]));
        assert_eq!(set.to_fields_v1(), real_fields_v1());
    }

    #[test]
    fn key_elements_are_canonical_whatever_the_input_order() {
        let a = PathElement::from_fields_v1_key(r#"k:{"protocol":"TCP","port":443}"#).unwrap();
        let b = PathElement::from_fields_v1_key(r#"k:{"port":443,"protocol":"TCP"}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_fields_v1_key(), r#"k:{"port":443,"protocol":"TCP"}"#);
    }

    #[test]
    fn paths_print_like_kube_conflict_messages() {
        let path = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("ports".into()),
            PathElement::Key(r#"{"port":443,"protocol":"TCP"}"#.into()),
            PathElement::Field("name".into()),
        ];
        assert_eq!(
            path_to_string(&path),
            r#".spec.ports[port=443,protocol="TCP"].name"#
        );
        let set_item = vec![
            PathElement::Field("finalizers".into()),
            PathElement::Value("\"x\"".into()),
        ];
        assert_eq!(path_to_string(&set_item), r#".finalizers[="x"]"#);
    }

    #[test]
    fn has_descendant_only_sees_strictly_deeper_paths() {
        let spec = vec![PathElement::Field("spec".into())];
        let mut set = FieldSet::new();
        set.insert(spec.clone());
        assert!(!set.has_descendant(&spec));
        set.insert(vec![
            PathElement::Field("spec".into()),
            PathElement::Field("x".into()),
        ]);
        assert!(set.has_descendant(&spec));
        assert!(!set.has_descendant(&[PathElement::Field("spe".into())]));
    }

    #[test]
    fn invalid_fields_v1_is_rejected() {
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"k:[1]": {}})).is_err());
    }
}
