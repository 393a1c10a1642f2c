//! Schema-aware walks over JSON objects, after structured-merge-diff's `typed` package: the field
//! set of an applied configuration, the merge of a configuration into a live object, the
//! comparison of two objects, and the removal of fields an applier gave up.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::fieldpath::{FieldSet, Path, PathElement, canonical_json, path_to_string};
use super::{ListType, SchemaInfo};

/// The schema path segment that steps into list elements.
const ELEMENT: &str = "[]";

/// What changed between two objects, in SMD's terms.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Present only in the new object.
    pub added: FieldSet,
    /// Present in both with different values (leaves only).
    pub modified: FieldSet,
    /// Present only in the old object.
    pub removed: FieldSet,
}

impl Comparison {
    /// Keeps only the paths for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) {
        self.added.retain(&mut keep);
        self.modified.retain(&mut keep);
        self.removed.retain(&mut keep);
    }

    /// Added or modified paths: what a writer takes ownership of.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// The walks, bound to the structure of one kind.
pub struct Typed<'a> {
    schema: &'a dyn SchemaInfo,
}

impl<'a> Typed<'a> {
    /// Walks objects of the kind described by `schema`.
    pub fn new(schema: &'a dyn SchemaInfo) -> Self {
        Self { schema }
    }

    fn list_type(&self, spath: &[String]) -> ListType {
        let segments: Vec<&str> = spath.iter().map(String::as_str).collect();
        self.schema.list_type(&segments)
    }

    fn is_atomic_map(&self, spath: &[String]) -> bool {
        if spath.is_empty() {
            return false;
        }
        let segments: Vec<&str> = spath.iter().map(String::as_str).collect();
        self.schema.is_atomic_map(&segments)
    }

    /// Every path an applied configuration sets, as SMD's `ToFieldSet`: leaves, atomic lists and
    /// maps, and list elements. Fails on list elements without their keys or with duplicate keys
    /// (kube answers those with 422 Invalid).
    pub fn to_field_set(&self, value: &Value) -> Result<FieldSet, String> {
        let mut out = FieldSet::new();
        self.field_set_walk(value, &mut Vec::new(), &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    fn field_set_walk(
        &self,
        value: &Value,
        path: &mut Path,
        spath: &mut Vec<String>,
        out: &mut FieldSet,
    ) -> Result<(), String> {
        match value {
            Value::Object(_) if self.is_atomic_map(spath) => {
                out.insert(path.clone());
            }
            Value::Object(fields) => {
                for (name, child) in fields {
                    path.push(PathElement::Field(name.clone()));
                    spath.push(name.clone());
                    self.field_set_walk(child, path, spath, out)?;
                    spath.pop();
                    path.pop();
                }
            }
            Value::Array(items) => {
                let list_type = self.list_type(spath);
                if list_type == ListType::Atomic {
                    out.insert(path.clone());
                    return Ok(());
                }
                let elements = index_list(items, &list_type)
                    .map_err(|e| format!("{}: {e}", path_to_string(path)))?;
                for (element, item) in elements {
                    path.push(element);
                    out.insert(path.clone());
                    if matches!(list_type, ListType::Map(_)) {
                        spath.push(ELEMENT.to_owned());
                        self.field_set_walk(item, path, spath, out)?;
                        spath.pop();
                    }
                    path.pop();
                }
            }
            _ => out.insert(path.clone()),
        }
        Ok(())
    }

    /// Merges an applied configuration into a live object (SMD `Merge`): maps merge key by key,
    /// associative lists element by element, sets by union; atomic values are replaced. Nothing
    /// is removed. Live order is kept; new list elements are appended in applied order.
    pub fn merge(&self, live: &Value, applied: &Value) -> Value {
        self.merge_walk(live, applied, &mut Vec::new())
    }

    fn merge_walk(&self, live: &Value, applied: &Value, spath: &mut Vec<String>) -> Value {
        match (live, applied) {
            (Value::Object(live_fields), Value::Object(applied_fields))
                if !self.is_atomic_map(spath) =>
            {
                let mut out = live_fields.clone();
                for (name, applied_child) in applied_fields {
                    spath.push(name.clone());
                    let merged = match live_fields.get(name) {
                        Some(live_child) => self.merge_walk(live_child, applied_child, spath),
                        None => applied_child.clone(),
                    };
                    spath.pop();
                    out.insert(name.clone(), merged);
                }
                Value::Object(out)
            }
            (Value::Array(live_items), Value::Array(applied_items)) => {
                match self.list_type(spath) {
                    ListType::Atomic => applied.clone(),
                    ListType::Set => {
                        let mut out = live_items.clone();
                        for item in applied_items {
                            if !out.contains(item) {
                                out.push(item.clone());
                            }
                        }
                        Value::Array(out)
                    }
                    list_type @ ListType::Map(_) => self
                        .merge_list_map(live_items, applied_items, &list_type, spath)
                        .unwrap_or_else(|| applied.clone()),
                }
            }
            _ => applied.clone(),
        }
    }

    fn merge_list_map(
        &self,
        live_items: &[Value],
        applied_items: &[Value],
        list_type: &ListType,
        spath: &mut Vec<String>,
    ) -> Option<Value> {
        let live_keys: Vec<PathElement> = live_items
            .iter()
            .map(|item| element_of(item, list_type))
            .collect::<Result<_, _>>()
            .ok()?;
        let mut out = live_items.to_vec();
        spath.push(ELEMENT.to_owned());
        for applied_item in applied_items {
            let key = element_of(applied_item, list_type).ok()?;
            match live_keys.iter().position(|k| *k == key) {
                Some(at) => {
                    let merged = self.merge_walk(&live_items[at], applied_item, spath);
                    out[at] = merged;
                }
                None => out.push(applied_item.clone()),
            }
        }
        spath.pop();
        Some(Value::Array(out))
    }

    /// Compares two objects (SMD `Compare`): leaves land in added/removed/modified; maps and list
    /// elements that appear or disappear as a whole are also added/removed themselves. Lists
    /// whose elements cannot be keyed compare as atomic values.
    pub fn compare(&self, old: &Value, new: &Value) -> Comparison {
        let mut out = Comparison::default();
        self.compare_walk(
            Some(old),
            Some(new),
            &mut Vec::new(),
            &mut Vec::new(),
            &mut out,
        );
        out
    }

    fn compare_walk(
        &self,
        old: Option<&Value>,
        new: Option<&Value>,
        path: &mut Path,
        spath: &mut Vec<String>,
        out: &mut Comparison,
    ) {
        let old_map = old.and_then(Value::as_object);
        let new_map = new.and_then(Value::as_object);
        let maps = (old.is_none() || old_map.is_some()) && (new.is_none() || new_map.is_some());
        if maps && !self.is_atomic_map(spath) && !(is_empty_map(old_map) && is_empty_map(new_map)) {
            let names: BTreeSet<&String> = old_map
                .into_iter()
                .chain(new_map)
                .flat_map(Map::keys)
                .collect();
            for name in names {
                path.push(PathElement::Field(name.clone()));
                spath.push(name.clone());
                let old_child = old_map.and_then(|m| m.get(name));
                let new_child = new_map.and_then(|m| m.get(name));
                self.compare_walk(old_child, new_child, path, spath, out);
                spath.pop();
                path.pop();
            }
            self.record_whole_node(old, new, path, out);
            return;
        }

        let old_list = old.and_then(Value::as_array);
        let new_list = new.and_then(Value::as_array);
        let lists = (old.is_none() || old_list.is_some()) && (new.is_none() || new_list.is_some());
        let list_type = self.list_type(spath);
        if lists
            && list_type != ListType::Atomic
            && !(is_empty_list(old_list) && is_empty_list(new_list))
        {
            let empty = Vec::new();
            let old_elements = index_list(old_list.unwrap_or(&empty), &list_type);
            let new_elements = index_list(new_list.unwrap_or(&empty), &list_type);
            if let (Ok(old_elements), Ok(new_elements)) = (old_elements, new_elements) {
                let mut pairs: BTreeMap<PathElement, (Option<&Value>, Option<&Value>)> =
                    BTreeMap::new();
                for (element, item) in old_elements {
                    pairs.entry(element).or_default().0 = Some(item);
                }
                for (element, item) in new_elements {
                    pairs.entry(element).or_default().1 = Some(item);
                }
                for (element, (old_item, new_item)) in pairs {
                    path.push(element);
                    if matches!(list_type, ListType::Map(_)) {
                        spath.push(ELEMENT.to_owned());
                        self.compare_walk(old_item, new_item, path, spath, out);
                        spath.pop();
                    } else {
                        compare_leaf(old_item, new_item, path, out);
                    }
                    path.pop();
                }
                self.record_whole_node(old, new, path, out);
                return;
            }
        }
        compare_leaf(old, new, path, out);
    }

    /// SMD's post-item hook: a map or list element that appears or disappears as a whole is
    /// itself added or removed (the `.` entries of Update managedFields). Typed built-ins always
    /// have their top-level sections, so kube never records those as a whole for them.
    fn record_whole_node(
        &self,
        old: Option<&Value>,
        new: Option<&Value>,
        path: &[PathElement],
        out: &mut Comparison,
    ) {
        if path.is_empty() {
            return;
        }
        if let [PathElement::Field(name)] = path
            && matches!(name.as_str(), "metadata" | "spec" | "status")
            && self.schema.has_typed_top_level()
        {
            return;
        }
        match (old, new) {
            (None, Some(_)) => out.added.insert(path.to_vec()),
            (Some(_), None) => out.removed.insert(path.to_vec()),
            _ => {}
        }
    }

    /// Removes the paths in `remove` from `value` (SMD `RemoveItems` plus `addBackOwnedItems`):
    /// a node is kept when `keep` owns something below it, key fields of kept list elements are
    /// never removed, and maps and lists emptied by the removal disappear.
    pub fn prune(&self, value: &mut Value, remove: &FieldSet, keep: &FieldSet) {
        self.prune_walk(value, &mut Vec::new(), &mut Vec::new(), &[], remove, keep);
    }

    fn prune_walk(
        &self,
        value: &mut Value,
        path: &mut Path,
        spath: &mut Vec<String>,
        protected: &[String],
        remove: &FieldSet,
        keep: &FieldSet,
    ) {
        match value {
            Value::Object(fields) if !self.is_atomic_map(spath) => {
                let names: Vec<String> = fields.keys().cloned().collect();
                for name in names {
                    if protected.contains(&name) {
                        continue;
                    }
                    path.push(PathElement::Field(name.clone()));
                    if remove.contains(path) && !keep.has_descendant(path) {
                        fields.remove(&name);
                    } else if remove.has_descendant(path)
                        && let Some(child) = fields.get_mut(&name)
                    {
                        let was_filled = is_filled_container(child);
                        spath.push(name.clone());
                        self.prune_walk(child, path, spath, &[], remove, keep);
                        spath.pop();
                        // Top-level sections (metadata, spec, status) stay, even empty.
                        if was_filled && !is_filled_container(child) && path.len() > 1 {
                            fields.remove(&name);
                        }
                    }
                    path.pop();
                }
            }
            Value::Array(items) => {
                let list_type = self.list_type(spath);
                let key_fields: Vec<String> = match &list_type {
                    ListType::Atomic => return,
                    ListType::Set => Vec::new(),
                    ListType::Map(keys) => keys.clone(),
                };
                let mut kept = Vec::with_capacity(items.len());
                for mut item in items.drain(..) {
                    let Ok(element) = element_of(&item, &list_type) else {
                        kept.push(item);
                        continue;
                    };
                    path.push(element);
                    if remove.contains(path) && !keep.has_descendant(path) {
                        path.pop();
                        continue;
                    }
                    if remove.has_descendant(path) {
                        spath.push(ELEMENT.to_owned());
                        self.prune_walk(&mut item, path, spath, &key_fields, remove, keep);
                        spath.pop();
                    }
                    path.pop();
                    kept.push(item);
                }
                *items = kept;
            }
            _ => {}
        }
    }
}

fn compare_leaf(
    old: Option<&Value>,
    new: Option<&Value>,
    path: &[PathElement],
    out: &mut Comparison,
) {
    match (old, new) {
        (None, Some(_)) => out.added.insert(path.to_vec()),
        (Some(_), None) => out.removed.insert(path.to_vec()),
        (Some(a), Some(b)) if a != b => out.modified.insert(path.to_vec()),
        _ => {}
    }
}

fn is_empty_map(map: Option<&Map<String, Value>>) -> bool {
    map.is_none_or(Map::is_empty)
}

fn is_empty_list(list: Option<&Vec<Value>>) -> bool {
    list.is_none_or(Vec::is_empty)
}

fn is_filled_container(value: &Value) -> bool {
    match value {
        Value::Object(fields) => !fields.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => true,
    }
}

/// The path element naming `item` in a list of `list_type`. Missing key fields take the API
/// default where the schema has one (`protocol: TCP`), as SMD does with defaulted keys.
pub fn element_of(item: &Value, list_type: &ListType) -> Result<PathElement, String> {
    match list_type {
        ListType::Map(keys) => {
            let Value::Object(fields) = item else {
                return Err(
                    "associative list with keys has an element that is not a map".to_owned(),
                );
            };
            let mut key = Map::new();
            for name in keys {
                let value = match (fields.get(name), name.as_str()) {
                    (Some(value), _) if !value.is_null() => value.clone(),
                    (_, "protocol") => Value::String("TCP".to_owned()),
                    _ => {
                        return Err(format!(
                            "associative list with keys has an element that omits key field {name:?}"
                        ));
                    }
                };
                key.insert(name.clone(), value);
            }
            Ok(PathElement::Key(canonical_json(&Value::Object(key))))
        }
        ListType::Set | ListType::Atomic => Ok(PathElement::Value(canonical_json(item))),
    }
}

/// Names every element of a keyed list; duplicate keys are an error.
fn index_list<'v>(
    items: &'v [Value],
    list_type: &ListType,
) -> Result<Vec<(PathElement, &'v Value)>, String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let element = element_of(item, list_type).map_err(|e| format!("element {i}: {e}"))?;
        if !seen.insert(element.clone()) {
            return Err(format!("duplicate entries for key {element}"));
        }
        out.push((element, item));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Conditions;
    impl SchemaInfo for Conditions {
        fn list_type(&self, path: &[&str]) -> ListType {
            match path {
                ["status", "conditions"] => ListType::Map(vec!["type".into()]),
                ["metadata", "finalizers"] => ListType::Set,
                ["spec", "ports"] => ListType::Map(vec!["port".into(), "protocol".into()]),
                _ => ListType::Atomic,
            }
        }
        fn is_atomic_map(&self, path: &[&str]) -> bool {
            path == ["spec", "selector"]
        }
    }

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.into())
    }

    #[test]
    fn field_set_has_leaves_elements_and_atomic_values_but_not_plain_maps() {
        let set = Typed::new(&Conditions)
            .to_field_set(&json!({
                "spec": {"selector": {"a": "b"}, "args": ["x"], "ports": [{"port": 80}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                "metadata": {"finalizers": ["x"]}
            }))
            .unwrap();
        let expected: FieldSet = [
            vec![f("spec"), f("selector")],
            vec![f("spec"), f("args")],
            vec![
                f("spec"),
                f("ports"),
                PathElement::Key(r#"{"port":80,"protocol":"TCP"}"#.into()),
            ],
            vec![
                f("spec"),
                f("ports"),
                PathElement::Key(r#"{"port":80,"protocol":"TCP"}"#.into()),
                f("port"),
            ],
            vec![
                f("status"),
                f("conditions"),
                PathElement::Key(r#"{"type":"Ready"}"#.into()),
            ],
            vec![
                f("status"),
                f("conditions"),
                PathElement::Key(r#"{"type":"Ready"}"#.into()),
                f("status"),
            ],
            vec![
                f("status"),
                f("conditions"),
                PathElement::Key(r#"{"type":"Ready"}"#.into()),
                f("type"),
            ],
            vec![
                f("metadata"),
                f("finalizers"),
                PathElement::Value("\"x\"".into()),
            ],
        ]
        .into_iter()
        .collect();
        assert_eq!(set, expected);
    }

    #[test]
    fn field_set_rejects_missing_and_duplicate_keys() {
        let typed = Typed::new(&Conditions);
        let missing = typed.to_field_set(&json!({"status": {"conditions": [{"status": "True"}]}}));
        assert!(missing.unwrap_err().contains("omits key field \"type\""));
        let duplicate =
            typed.to_field_set(&json!({"status": {"conditions": [{"type": "A"}, {"type": "A"}]}}));
        assert!(
            duplicate
                .unwrap_err()
                .contains("duplicate entries for key [type=\"A\"]")
        );
    }

    #[test]
    fn merge_is_element_wise_for_list_maps_union_for_sets_and_replacing_for_atomics() {
        let typed = Typed::new(&Conditions);
        let live = json!({
            "spec": {"args": ["a", "b"], "selector": {"x": "1", "y": "2"}},
            "status": {"conditions": [{"type": "A", "status": "True", "reason": "r"}]},
            "metadata": {"finalizers": ["one"]}
        });
        let applied = json!({
            "spec": {"args": ["c"], "selector": {"z": "3"}},
            "status": {"conditions": [{"type": "B", "status": "False"}, {"type": "A", "status": "False"}]},
            "metadata": {"finalizers": ["two", "one"]}
        });
        assert_eq!(
            typed.merge(&live, &applied),
            json!({
                "spec": {"args": ["c"], "selector": {"z": "3"}},
                "status": {"conditions": [
                    {"type": "A", "status": "False", "reason": "r"},
                    {"type": "B", "status": "False"}
                ]},
                "metadata": {"finalizers": ["one", "two"]}
            })
        );
    }

    #[test]
    fn compare_records_whole_new_nodes_like_smd() {
        let typed = Typed::new(&Conditions);
        let cmp = typed.compare(
            &json!({"metadata": {"name": "x"}, "spec": {"a": 1, "b": 2}}),
            &json!({"metadata": {"name": "x", "labels": {"app": "db"}}, "spec": {"a": 3},
                    "status": {"conditions": [{"type": "Ready"}]}}),
        );
        let ready = PathElement::Key(r#"{"type":"Ready"}"#.into());
        assert_eq!(
            cmp.modified,
            [vec![f("spec"), f("a")]].into_iter().collect()
        );
        assert_eq!(cmp.removed, [vec![f("spec"), f("b")]].into_iter().collect());
        assert_eq!(
            cmp.added,
            [
                vec![f("status")],
                vec![f("metadata"), f("labels")],
                vec![f("metadata"), f("labels"), f("app")],
                vec![f("status"), f("conditions")],
                vec![f("status"), f("conditions"), ready.clone()],
                vec![f("status"), f("conditions"), ready, f("type")],
            ]
            .into_iter()
            .collect()
        );
    }

    #[test]
    fn typed_built_ins_never_record_top_level_sections_as_added() {
        let cmp = Typed::new(super::super::builtin_schema_info("", "ConfigMap"))
            .compare(&json!({}), &json!({"spec": {"a": 1}, "data": {"k": "v"}}));
        let expected: FieldSet = [
            vec![f("spec"), f("a")],
            vec![f("data")],
            vec![f("data"), f("k")],
        ]
        .into_iter()
        .collect();
        assert_eq!(cmp.added, expected);
    }

    #[test]
    fn compare_treats_unkeyable_lists_as_atomic() {
        let typed = Typed::new(&Conditions);
        let cmp = typed.compare(
            &json!({"status": {"conditions": [{"type": "A"}, {"type": "A"}]}}),
            &json!({"status": {"conditions": [{"type": "A"}]}}),
        );
        assert_eq!(
            cmp.modified,
            [vec![f("status"), f("conditions")]].into_iter().collect()
        );
    }

    #[test]
    fn prune_keeps_key_fields_and_fields_owned_by_others_and_drops_emptied_maps() {
        let typed = Typed::new(&Conditions);
        let a = PathElement::Key(r#"{"type":"A"}"#.into());
        let mut value = json!({
            "metadata": {"labels": {"gone": "1"}},
            "status": {"conditions": [{"type": "A", "status": "True", "reason": "r"}]}
        });
        let remove: FieldSet = [
            vec![f("metadata"), f("labels"), f("gone")],
            vec![f("status"), f("conditions"), a.clone()],
            vec![f("status"), f("conditions"), a.clone(), f("type")],
            vec![f("status"), f("conditions"), a.clone(), f("status")],
        ]
        .into_iter()
        .collect();
        let keep: FieldSet = [vec![f("status"), f("conditions"), a, f("reason")]]
            .into_iter()
            .collect();
        typed.prune(&mut value, &remove, &keep);
        assert_eq!(
            value,
            json!({"metadata": {}, "status": {"conditions": [{"type": "A", "reason": "r"}]}})
        );
    }
}
