//! `meta.k8s.io/v1` Table output for kubectl's human-readable `get`.
use serde_json::{Value, json};

use super::super::events;
use super::super::resources::{PrinterColumn, ResourceDef, simple_json_path};
use super::printers;

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn columns(def: &ResourceDef) -> Vec<PrinterColumn> {
    let mut cols = vec![PrinterColumn {
        name: "Name".into(),
        type_: "string".into(),
        json_path: ".metadata.name".into(),
        priority: 0,
        description: "Name must be unique within a namespace.".into(),
    }];
    if def.printer_columns.is_empty() {
        cols.push(PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            json_path: ".metadata.creationTimestamp".into(),
            priority: 0,
            description: "CreationTimestamp is a timestamp representing the server time when this object was created.".into(),
        });
    } else {
        cols.extend(def.printer_columns.iter().cloned());
    }
    cols
}

/// kube's `HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else {
        format!("{d}d")
    }
}

fn cell(col: &PrinterColumn, obj: &Value, now: chrono::DateTime<chrono::Utc>) -> Value {
    let v = simple_json_path(obj, &col.json_path);
    match (col.type_.as_str(), v) {
        (_, None) => Value::Null,
        ("date", Some(Value::String(ts))) => match chrono::DateTime::parse_from_rfc3339(ts) {
            Ok(t) => json!(human_duration(
                (now - t.with_timezone(&chrono::Utc)).num_seconds()
            )),
            Err(_) => json!(ts),
        },
        (_, Some(v)) => v.clone(),
    }
}

/// A Table of `objects`; `include` is the `includeObject` parameter. Built-in kinds with a kube
/// printer get its columns (see `printers`), others Name/Age or the CRD's printer columns.
pub fn table(def: &ResourceDef, objects: &[Value], list_meta: Value, include: &str) -> Value {
    if let Some(cols) = printers::columns(def) {
        let defs: Vec<Value> = cols
            .iter()
            .map(|c| {
                json!({"name": c.name, "type": "string", "format": c.format,
                       "description": c.description, "priority": c.priority})
            })
            .collect();
        let now = chrono::Utc::now();
        return assemble(objects, list_meta, include, defs, |o| {
            printers::cells(def, &events::as_core(def, o), now)
        });
    }
    let cols = columns(def);
    let now = chrono::Utc::now();
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": if c.type_ == "date" { "string" } else { c.type_.as_str() },
                   "format": if c.name == "Name" { "name" } else { "" }, "description": c.description, "priority": c.priority})
        })
        .collect();
    assemble(objects, list_meta, include, defs, |o| {
        cols.iter().map(|c| cell(c, o, now)).collect()
    })
}

/// The Table object around computed rows.
fn assemble(
    objects: &[Value],
    list_meta: Value,
    include: &str,
    defs: Vec<Value>,
    row_cells: impl Fn(&Value) -> Vec<Value>,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells = row_cells(o);
            let object = match include {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": defs, "rows": rows})
}
