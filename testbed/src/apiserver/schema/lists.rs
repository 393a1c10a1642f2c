//! `x-kubernetes-list-type` semantics: uniqueness of `set` and `map` lists on write
//! (apiextensions `structural/listtype`) and the list/map types server-side apply reads.
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::errors::FieldError;
use super::node::{ListKind, Node};

/// Reports every element after the first that repeats a set value or a map key.
pub(crate) fn check_unique(value: &Value, node: &Node, path: &str, errors: &mut Vec<FieldError>) {
    let Value::Array(items) = value else { return };
    match &node.list_kind {
        ListKind::Atomic => {}
        ListKind::Set => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errors.push(FieldError::duplicate(&format!("{path}[{i}]"), item));
                }
            }
        }
        ListKind::Map(keys) => {
            let item_schema = node.items.as_deref();
            let mut seen: Vec<Value> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Value::Object(fields) = item else {
                    continue;
                };
                let key = map_key(fields, keys, item_schema);
                if seen.contains(&key) {
                    errors.push(FieldError::duplicate(&format!("{path}[{i}]"), &key));
                } else {
                    seen.push(key);
                }
            }
        }
    }
}

/// The identifying key fields of a list-map element, falling back to the key's schema
/// default; ordered by name as Go's JSON encoding of the map prints them.
fn map_key(fields: &Map<String, Value>, keys: &[String], item_schema: Option<&Node>) -> Value {
    let sorted: BTreeMap<&str, Value> = keys
        .iter()
        .filter_map(|k| {
            let value = fields.get(k).cloned().or_else(|| {
                item_schema
                    .and_then(|s| s.properties.get(k))
                    .and_then(|p| p.default.clone())
            })?;
            Some((k.as_str(), value))
        })
        .collect();
    Value::Object(sorted.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Follows a server-side-apply field path (`[]` steps into list elements).
pub(crate) fn node_at<'a>(root: &'a Node, path: &[&str]) -> Option<&'a Node> {
    path.iter().try_fold(root, |node, step| {
        if *step == "[]" {
            node.items.as_deref()
        } else {
            node.child(step)
        }
    })
}
