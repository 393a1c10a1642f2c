//! OpenAPI value validation with the messages kube-apiserver produces (kube-openapi's
//! validator, converted by apiextensions' `kubeOpenAPIResultToFieldErrors`).
use serde_json::{Map, Value};

use super::errors::{FieldError, quote};
use super::formats;
use super::lists;
use super::node::{Additional, Node, join};

/// Validates a whole custom resource; the root `metadata` is the server's business.
pub(crate) fn validate_root(obj: &Value, root: &Node, errors: &mut Vec<FieldError>) {
    let Value::Object(map) = obj else {
        validate(obj, root, "", errors);
        return;
    };
    check_required(map, root, "", errors);
    for (key, child) in map {
        if key == "metadata" {
            continue;
        }
        if let Some(schema) = root.child(key) {
            validate(child, schema, key, errors);
        }
    }
}

pub(crate) fn validate(value: &Value, node: &Node, path: &str, errors: &mut Vec<FieldError>) {
    if value.is_null() && node.nullable {
        return;
    }
    if !check_type(value, node, path, errors) {
        return;
    }
    if !node.enum_values.is_empty() && !node.enum_values.iter().any(|e| json_eq(e, value)) {
        errors.push(FieldError::not_supported(path, value, &node.enum_values));
    }
    match value {
        Value::String(s) => check_string(s, value, node, path, errors),
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                check_number(f, value, node, path, errors);
            }
        }
        Value::Array(items) => check_array(items, value, node, path, errors),
        Value::Object(map) => check_object(map, value, node, path, errors),
        _ => {}
    }
    check_composition(value, node, path, errors);
}

/// The JSON type name go-openapi reports for a value.
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Returns false (after recording the error) when the value has the wrong type, which stops
/// further checks at this level.
fn check_type(value: &Value, node: &Node, path: &str, errors: &mut Vec<FieldError>) -> bool {
    let actual = type_of(value);
    if node.int_or_string {
        if matches!(actual, "integer" | "string") {
            return true;
        }
        let detail = format!(
            "{path} in body must be of type integer,string: {}",
            quote(actual)
        );
        errors.push(FieldError::type_invalid(
            path,
            &Value::from(actual),
            &detail,
        ));
        return false;
    }
    let Some(expected) = node.type_name.as_deref() else {
        return true;
    };
    let whole_float = value.as_f64().is_some_and(|f| f.fract() == 0.0);
    let matches = expected == actual
        || (expected == "number" && actual == "integer")
        || (expected == "integer" && actual == "number" && whole_float);
    if !matches {
        let detail = format!(
            "{path} in body must be of type {expected}: {}",
            quote(actual)
        );
        errors.push(FieldError::type_invalid(
            path,
            &Value::from(actual),
            &detail,
        ));
    }
    matches
}

/// Enum membership compares numbers by value (an `enum: [1]` accepts `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn check_string(s: &str, value: &Value, node: &Node, path: &str, errors: &mut Vec<FieldError>) {
    let chars = s.chars().count() as u64;
    if let Some(max) = node.max_length
        && chars > max
    {
        errors.push(FieldError::too_long(path, max));
    }
    if let Some(min) = node.min_length
        && chars < min
    {
        let detail = format!("{path} in body should be at least {min} chars long");
        errors.push(FieldError::invalid(path, value, &detail));
    }
    if let Some((pattern, regex)) = &node.pattern
        && !regex.is_match(s)
    {
        let detail = format!("{path} in body should match '{pattern}'");
        errors.push(FieldError::invalid(path, value, &detail));
    }
    if let Some(format) = &node.format
        && !formats::is_valid(format, s)
    {
        let detail = format!("{path} in body must be of type {format}: {}", quote(s));
        errors.push(FieldError::type_invalid(path, value, &detail));
    }
}

fn check_number(f: f64, value: &Value, node: &Node, path: &str, errors: &mut Vec<FieldError>) {
    use super::errors::go_float;
    if let Some(multiple) = node.multiple_of
        && multiple != 0.0
        && (f / multiple).fract() != 0.0
    {
        let detail = format!(
            "{path} in body should be a multiple of {}",
            go_float(multiple)
        );
        errors.push(FieldError::invalid(path, value, &detail));
    }
    if let Some(max) = node.maximum {
        let (failed, relation) = if node.exclusive_maximum {
            (f >= max, "less than")
        } else {
            (f > max, "less than or equal to")
        };
        if failed {
            let detail = format!("{path} in body should be {relation} {}", go_float(max));
            errors.push(FieldError::invalid(path, value, &detail));
        }
    }
    if let Some(min) = node.minimum {
        let (failed, relation) = if node.exclusive_minimum {
            (f <= min, "greater than")
        } else {
            (f < min, "greater than or equal to")
        };
        if failed {
            let detail = format!("{path} in body should be {relation} {}", go_float(min));
            errors.push(FieldError::invalid(path, value, &detail));
        }
    }
}

fn check_array(
    items: &[Value],
    value: &Value,
    node: &Node,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(max) = node.max_items
        && items.len() as u64 > max
    {
        errors.push(FieldError::too_many(path, items.len(), max));
    }
    if let Some(min) = node.min_items
        && (items.len() as u64) < min
    {
        let detail = format!("{path} in body should have at least {min} items");
        errors.push(FieldError::invalid(
            path,
            &Value::from(items.len()),
            &detail,
        ));
    }
    if let Some(item_schema) = node.items.as_deref() {
        for (i, item) in items.iter().enumerate() {
            validate(item, item_schema, &format!("{path}[{i}]"), errors);
        }
    }
    lists::check_unique(value, node, path, errors);
}

fn check_object(
    map: &Map<String, Value>,
    value: &Value,
    node: &Node,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    check_required(map, node, path, errors);
    if let Some(max) = node.max_properties
        && map.len() as u64 > max
    {
        errors.push(FieldError::too_many(path, map.len(), max));
    }
    if let Some(min) = node.min_properties
        && (map.len() as u64) < min
    {
        let detail = format!("{path} in body should have at least {min} properties");
        errors.push(FieldError::invalid(path, value, &detail));
    }
    for (key, child) in map {
        let child_path = join(path, key);
        if node.embedded_resource && key == "metadata" {
            continue;
        }
        if let Some(prop) = node.properties.get(key) {
            validate(child, prop, &child_path, errors);
        } else if let Some(Additional::Schema(schema)) = &node.additional {
            validate(child, schema, &child_path, errors);
        }
    }
}

fn check_required(map: &Map<String, Value>, node: &Node, path: &str, errors: &mut Vec<FieldError>) {
    for name in &node.required {
        if !map.contains_key(name) {
            errors.push(FieldError::required(&join(path, name), ""));
        }
    }
}

/// `allOf` adds every branch's errors; `anyOf`/`oneOf`/`not` report one composite error.
fn check_composition(value: &Value, node: &Node, path: &str, errors: &mut Vec<FieldError>) {
    for branch in &node.all_of {
        validate(value, branch, path, errors);
    }
    let passes = |branch: &Node| {
        let mut branch_errors = Vec::new();
        validate(value, branch, path, &mut branch_errors);
        branch_errors.is_empty()
    };
    let empty = Value::from("");
    if !node.any_of.is_empty() && !node.any_of.iter().any(passes) {
        let detail = format!("{path} in body must validate at least one schema (anyOf)");
        errors.push(FieldError::invalid(path, &empty, &detail));
    }
    if !node.one_of.is_empty() && node.one_of.iter().filter(|b| passes(b)).count() != 1 {
        let detail = format!("{path} in body must validate one and only one schema (oneOf)");
        errors.push(FieldError::invalid(path, &empty, &detail));
    }
    if let Some(not) = node.not.as_deref()
        && passes(not)
    {
        let detail = format!("{path} in body must not validate the schema (not)");
        errors.push(FieldError::invalid(path, &empty, &detail));
    }
}
