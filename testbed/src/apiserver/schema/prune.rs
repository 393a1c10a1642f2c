//! Dropping fields the schema does not know (apiextensions `structural/pruning`).
use serde_json::Value;

use super::node::{Additional, Node};

/// Fields an embedded resource (and the resource root) keeps whatever the schema says.
const RESOURCE_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Prunes a whole custom resource: the root keeps `apiVersion`, `kind` and `metadata`
/// (the server owns metadata and validates it as ObjectMeta).
pub(crate) fn prune_root(obj: &mut Value, root: &Node) {
    prune_object(obj, Some(root), true);
}

fn prune(value: &mut Value, schema: Option<&Node>) {
    if let Some(node) = schema
        && node.preserve_unknown_fields
    {
        keep_unknown(value, node);
        return;
    }
    match value {
        Value::Object(_) => prune_object(value, schema, false),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            for item in items {
                prune(item, item_schema);
            }
        }
        _ => {}
    }
}

fn prune_object(value: &mut Value, schema: Option<&Node>, is_root: bool) {
    let Value::Object(map) = value else { return };
    let Some(node) = schema else {
        map.clear();
        return;
    };
    if node.preserve_unknown_fields {
        keep_unknown(value, node);
        return;
    }
    let keeps_resource_fields = is_root || node.embedded_resource;
    map.retain(|key, _| {
        (keeps_resource_fields && RESOURCE_FIELDS.contains(&key.as_str()))
            || node.properties.contains_key(key)
            || matches!(
                node.additional,
                Some(Additional::Schema(_) | Additional::Allowed(true))
            )
    });
    for (key, child) in map.iter_mut() {
        if keeps_resource_fields && RESOURCE_FIELDS.contains(&key.as_str()) {
            continue;
        }
        match (node.properties.get(key), &node.additional) {
            (Some(prop), _) => prune(child, Some(prop)),
            (None, Some(Additional::Schema(schema))) => prune(child, Some(schema)),
            // `additionalProperties: true` allows anything below.
            (None, _) => {}
        }
    }
}

/// `x-kubernetes-preserve-unknown-fields`: unknown fields stay, known ones are still pruned
/// by their own schema.
fn keep_unknown(value: &mut Value, node: &Node) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if node.embedded_resource && RESOURCE_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                if let Some(prop) = node.properties.get(key) {
                    prune(child, Some(prop));
                } else if let Some(Additional::Schema(schema)) = &node.additional {
                    prune(child, Some(schema));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                for item in items {
                    keep_unknown(item, item_schema);
                }
            }
        }
        _ => {}
    }
}
