//! Applying schema `default`s (apiextensions `structural/defaulting`).
use serde_json::Value;

use super::node::Node;

/// Fills absent fields (and non-nullable `null`s) from `default`, recursing into what it set,
/// into array items and into `additionalProperties` values. The root metadata is left alone.
pub(crate) fn apply_defaults(value: &mut Value, node: &Node, is_root: bool) {
    match value {
        Value::Object(map) => {
            for (key, prop) in &node.properties {
                if is_root && key == "metadata" {
                    continue;
                }
                let Some(default) = &prop.default else {
                    continue;
                };
                match map.get(key) {
                    Some(existing) if !is_non_nullable_null(existing, prop) => {}
                    _ => {
                        map.insert(key.clone(), default.clone());
                    }
                }
            }
            for (key, child) in map.iter_mut() {
                if is_root && key == "metadata" {
                    continue;
                }
                if let Some(schema) = node.child(key) {
                    if is_non_nullable_null(child, schema)
                        && let Some(default) = &schema.default
                    {
                        *child = default.clone();
                    }
                    apply_defaults(child, schema, false);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = node.items.as_deref() else {
                return;
            };
            for item in items {
                if is_non_nullable_null(item, item_schema)
                    && let Some(default) = &item_schema.default
                {
                    *item = default.clone();
                }
                apply_defaults(item, item_schema, false);
            }
        }
        _ => {}
    }
}

/// Removes object fields that are `null` where the schema forbids null and has no default
/// (`PruneNonNullableNullsWithoutDefaults`): kube treats them as absent.
pub(crate) fn drop_non_nullable_nulls(value: &mut Value, node: &Node) {
    match value {
        Value::Object(map) => {
            map.retain(|key, child| match node.child(key) {
                Some(schema) => !(child.is_null() && !schema.nullable && schema.default.is_none()),
                None => true,
            });
            for (key, child) in map.iter_mut() {
                if let Some(schema) = node.child(key) {
                    drop_non_nullable_nulls(child, schema);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                for item in items {
                    drop_non_nullable_nulls(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn is_non_nullable_null(value: &Value, schema: &Node) -> bool {
    value.is_null() && !schema.nullable
}
