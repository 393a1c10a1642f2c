//! The structural schema tree: the parts of an OpenAPI v3 schema that pruning, defaulting and
//! validation read, parsed once when the CRD is created instead of on every write.
use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::SchemaError;

/// `x-kubernetes-list-type` of an array node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum ListKind {
    #[default]
    Atomic,
    Set,
    Map(Vec<String>),
}

/// `additionalProperties`: either a schema for every unlisted key or a plain allow/deny.
#[derive(Debug, Clone)]
pub(crate) enum Additional {
    Schema(Box<Node>),
    Allowed(bool),
}

/// One schema level. Only the keywords kube-apiserver acts on for custom resources.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub type_name: Option<String>,
    pub format: Option<String>,
    pub nullable: bool,
    pub default: Option<Value>,
    pub properties: BTreeMap<String, Node>,
    pub additional: Option<Additional>,
    pub items: Option<Box<Node>>,
    pub required: Vec<String>,
    pub enum_values: Vec<Value>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub pattern: Option<(String, Regex)>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub int_or_string: bool,
    pub preserve_unknown_fields: bool,
    pub embedded_resource: bool,
    pub list_kind: ListKind,
    pub atomic_map: bool,
    /// The CEL rule texts declared at this level, to find where a failed rule lives.
    pub rules: Vec<String>,
}

impl Node {
    /// Parses a JSON-serialised `JSONSchemaProps`. `path` names the level in errors.
    pub(crate) fn parse(schema: &Value, path: &str) -> Result<Self, SchemaError> {
        let Some(obj) = schema.as_object() else {
            return Err(SchemaError::new(path, "schema must be an object"));
        };
        let mut node = Node {
            type_name: str_field(obj, "type"),
            format: str_field(obj, "format"),
            nullable: bool_field(obj, "nullable"),
            default: obj.get("default").cloned(),
            required: obj
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            enum_values: obj
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            minimum: obj.get("minimum").and_then(Value::as_f64),
            maximum: obj.get("maximum").and_then(Value::as_f64),
            exclusive_minimum: bool_field(obj, "exclusiveMinimum"),
            exclusive_maximum: bool_field(obj, "exclusiveMaximum"),
            multiple_of: obj.get("multipleOf").and_then(Value::as_f64),
            min_length: obj.get("minLength").and_then(Value::as_u64),
            max_length: obj.get("maxLength").and_then(Value::as_u64),
            min_items: obj.get("minItems").and_then(Value::as_u64),
            max_items: obj.get("maxItems").and_then(Value::as_u64),
            min_properties: obj.get("minProperties").and_then(Value::as_u64),
            max_properties: obj.get("maxProperties").and_then(Value::as_u64),
            int_or_string: bool_field(obj, "x-kubernetes-int-or-string"),
            preserve_unknown_fields: bool_field(obj, "x-kubernetes-preserve-unknown-fields"),
            embedded_resource: bool_field(obj, "x-kubernetes-embedded-resource"),
            atomic_map: str_field(obj, "x-kubernetes-map-type").as_deref() == Some("atomic"),
            rules: obj
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .map(|rules| {
                    rules
                        .iter()
                        .filter_map(|r| r.get("rule").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            ..Node::default()
        };
        if let Some(pattern) = str_field(obj, "pattern") {
            let regex = Regex::new(&pattern).map_err(|e| {
                SchemaError::new(path, &format!("invalid pattern {pattern:?}: {e}"))
            })?;
            node.pattern = Some((pattern, regex));
        }
        node.list_kind = match str_field(obj, "x-kubernetes-list-type").as_deref() {
            None | Some("atomic") => ListKind::Atomic,
            Some("set") => ListKind::Set,
            Some("map") => {
                let keys: Vec<String> = obj
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|k| {
                        k.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if keys.is_empty() {
                    return Err(SchemaError::new(
                        path,
                        "x-kubernetes-list-type map requires x-kubernetes-list-map-keys",
                    ));
                }
                ListKind::Map(keys)
            }
            Some(other) => {
                return Err(SchemaError::new(
                    path,
                    &format!("unsupported x-kubernetes-list-type {other:?}"),
                ));
            }
        };
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                let child = Node::parse(prop, &join(path, name))?;
                node.properties.insert(name.clone(), child);
            }
        }
        node.additional = match obj.get("additionalProperties") {
            Some(Value::Bool(allowed)) => Some(Additional::Allowed(*allowed)),
            Some(schema @ Value::Object(_)) => Some(Additional::Schema(Box::new(Node::parse(
                schema,
                &format!("{path}.additionalProperties"),
            )?))),
            _ => None,
        };
        if let Some(items) = obj.get("items") {
            node.items = Some(Box::new(Node::parse(items, &format!("{path}.items"))?));
        }
        node.all_of = parse_branches(obj, "allOf", path)?;
        node.any_of = parse_branches(obj, "anyOf", path)?;
        node.one_of = parse_branches(obj, "oneOf", path)?;
        if let Some(not) = obj.get("not") {
            node.not = Some(Box::new(Node::parse(not, &format!("{path}.not"))?));
        }
        Ok(node)
    }

    /// The schema for an object field `key`: its property, else `additionalProperties`.
    pub(crate) fn child(&self, key: &str) -> Option<&Node> {
        self.properties.get(key).or(match &self.additional {
            Some(Additional::Schema(schema)) => Some(schema),
            _ => None,
        })
    }
}

fn parse_branches(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Vec<Node>, SchemaError> {
    obj.get(key)
        .and_then(Value::as_array)
        .map(|branches| {
            branches
                .iter()
                .enumerate()
                .map(|(i, b)| Node::parse(b, &format!("{path}.{key}[{i}]")))
                .collect()
        })
        .unwrap_or_else(|| Ok(Vec::new()))
}

fn str_field(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn bool_field(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Joins field paths the way kube's openapi validator names them (`spec.tls`).
pub(crate) fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}.{name}")
    }
}
