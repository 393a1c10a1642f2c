//! Server-side apply and managed-fields bookkeeping for ordinary writes, after
//! structured-merge-diff's `merge.Updater` and k8s.io/apiserver's field manager.
//!
//! Status split: through the main resource `.status` of the applied configuration is dropped
//! and nothing under `.status` is owned; through `/status` only `.status` is taken from the
//! configuration and owned. The caller still resets the other half for updates and patches.
use serde_json::{Map, Value};

use super::SchemaInfo;
use super::fieldpath::{FieldSet, path_to_string};
use super::managed::{self, ManagedEntry, Operation, SERVER_METADATA};
use super::typed::Typed;

/// A server-side apply request (PATCH with `application/apply-patch+yaml`).
pub struct ApplyRequest<'a> {
    /// The stored object; `None` creates the object through apply.
    pub live: Option<&'a Value>,
    /// The applied configuration sent by the client.
    pub applied: &'a Value,
    /// The `fieldManager` query parameter (required for apply; the caller checks it).
    pub manager: &'a str,
    /// The `force` query parameter: take conflicting fields instead of failing.
    pub force: bool,
    /// `Some("status")` for `/status`.
    pub subresource: Option<&'a str>,
    /// List and map types of the kind.
    pub schema: &'a dyn SchemaInfo,
    /// The apiVersion recorded in the managedFields entry.
    pub api_version: &'a str,
    /// RFC 3339 time for managedFields entries.
    pub now: &'a str,
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The other manager's name.
    pub manager: String,
    /// The manager as kube prints it, e.g. `"kubectl" using apps/v1`.
    pub manager_description: String,
    /// The field, as kube prints it, e.g. `.spec.replicas`.
    pub path: String,
}

impl FieldConflict {
    /// The `StatusCause.message` kube sends for this conflict (cause type
    /// `FieldManagerConflict`, `field` = [`FieldConflict::path`]).
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager_description)
    }
}

/// Why an apply failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields the configuration changes: 409 Conflict, reason `Conflict`,
    /// one `FieldManagerConflict` cause per conflict.
    #[error("{}", conflict_message(.conflicts))]
    Conflict {
        /// The conflicting fields, grouped by manager.
        conflicts: Vec<FieldConflict>,
    },
    /// The configuration is not an apply configuration (not an object, managedFields set):
    /// 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// The configuration does not fit the schema (list element without its keys, duplicate
    /// keys): 422 Invalid.
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// The HTTP status code kube-apiserver answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            ApplyError::Conflict { .. } => 409,
            ApplyError::BadRequest(_) => 400,
            ApplyError::Invalid(_) => 422,
        }
    }

    /// The `Status.reason` kube-apiserver answers with.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Conflict { .. } => "Conflict",
            ApplyError::BadRequest(_) => "BadRequest",
            ApplyError::Invalid(_) => "Invalid",
        }
    }
}

/// kube's `getConflictMessage`, word for word.
fn conflict_message(conflicts: &[FieldConflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager_description, only.path
        );
    }
    let mut lines = Vec::new();
    let mut last_manager: Option<&str> = None;
    for conflict in conflicts {
        if last_manager != Some(conflict.manager_description.as_str()) {
            lines.push(format!("conflicts with {}:", conflict.manager_description));
            last_manager = Some(&conflict.manager_description);
        }
        lines.push(format!("- {}", conflict.path));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Server-side apply: merges the configuration into the live object, removes fields this
/// manager applied before and no longer applies (unless another manager owns them), checks
/// conflicts, and records ownership. Returns the new object with its managedFields.
///
/// When nothing changes the result equals `live` exactly (the entry keeps its time), so the
/// caller can skip the write; [`same_ignoring_managed_time`] is the tolerant check.
pub fn apply(req: &ApplyRequest) -> Result<Value, ApplyError> {
    let config = scoped_configuration(req.applied, req.subresource)?;
    let typed = Typed::new(req.schema);
    let mut applied_set = typed.to_field_set(&config).map_err(ApplyError::Invalid)?;
    applied_set.retain(|p| managed::ownable(p, req.subresource));

    let live = req
        .live
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let mut entries = managed::decode(managed::raw_managed_fields(&live));
    let mut live_plain = live;
    managed::strip(&mut live_plain);

    let is_self = |e: &ManagedEntry| e.is(req.manager, Operation::Apply, req.subresource);
    let previous = entries.iter().find(|e| is_self(e)).cloned();
    let others_own = entries
        .iter()
        .filter(|e| !is_self(e))
        .fold(FieldSet::new(), |acc, e| acc.union(&e.fields));

    let mut merged = typed.merge(&live_plain, &config);
    if let Some(previous) = &previous {
        let given_up = previous
            .fields
            .difference(&applied_set)
            .difference(&others_own);
        if !given_up.is_empty() {
            typed.prune(&mut merged, &given_up, &others_own.union(&applied_set));
        }
    }

    let mut comparison = typed.compare(&live_plain, &merged);
    comparison.retain(|p| managed::ownable(p, req.subresource));
    let changed = comparison.changed();

    let conflicts: Vec<FieldConflict> = {
        let mut others: Vec<&ManagedEntry> = entries.iter().filter(|e| !is_self(e)).collect();
        others.sort_by(|a, b| {
            (&a.manager, a.operation, &a.api_version, &a.subresource).cmp(&(
                &b.manager,
                b.operation,
                &b.api_version,
                &b.subresource,
            ))
        });
        others
            .into_iter()
            .flat_map(|e| {
                e.fields
                    .intersection(&changed)
                    .iter()
                    .map(|path| FieldConflict {
                        manager: e.manager.clone(),
                        manager_description: e.describe(),
                        path: path_to_string(path),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    if !conflicts.is_empty() && !req.force {
        return Err(ApplyError::Conflict { conflicts });
    }

    for entry in entries.iter_mut().filter(|e| !is_self(e)) {
        entry.fields = entry
            .fields
            .difference(&changed)
            .difference(&comparison.removed);
    }
    let object_changed = merged != live_plain;
    let time = match &previous {
        Some(previous) if !object_changed => previous.time.clone(),
        _ => Some(req.now.to_owned()),
    };
    entries.retain(|e| !is_self(e));
    entries.push(ManagedEntry {
        manager: req.manager.to_owned(),
        operation: Operation::Apply,
        subresource: req.subresource.map(str::to_owned),
        api_version: req.api_version.to_owned(),
        time,
        fields: applied_set,
    });
    managed::store(&mut merged, &entries);
    Ok(merged)
}

/// The part of an applied configuration that takes part in this apply: no nulls (a null means
/// "not specified"), no server-owned metadata, and only `.status` through `/status` / no
/// `.status` through the main resource.
fn scoped_configuration(applied: &Value, subresource: Option<&str>) -> Result<Value, ApplyError> {
    let Value::Object(fields) = applied else {
        return Err(ApplyError::BadRequest(
            "the applied configuration must be an object".into(),
        ));
    };
    if managed::raw_managed_fields(applied).is_some_and(|m| !m.is_null()) {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let mut config = Map::new();
    for (name, value) in fields {
        let wanted = match name.as_str() {
            "apiVersion" | "kind" => true,
            "status" => subresource == Some("status"),
            "metadata" => true,
            _ => subresource != Some("status"),
        };
        if wanted && !value.is_null() {
            config.insert(name.clone(), without_nulls(value));
        }
    }
    if let Some(Value::Object(metadata)) = config.get_mut("metadata") {
        let keep_identity = |name: &str| name == "name" || name == "namespace";
        metadata.retain(|name, _| {
            if subresource == Some("status") {
                keep_identity(name)
            } else {
                keep_identity(name) || !SERVER_METADATA.contains(&name.as_str())
            }
        });
    }
    Ok(Value::Object(config))
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        scalar => scalar.clone(),
    }
}

/// Records an ordinary write (create, update, merge/JSON patch) in `new`'s managedFields, as
/// kube's field manager does for operation `Update`: `manager` takes the fields the write added
/// or changed, every manager loses those and the removed ones. `manager` is the `fieldManager`
/// parameter or, when absent, the caller's default from the user agent (kube: the user agent
/// up to the first `/`).
///
/// managedFields in `new` (main resource only): `[]` (or `[{}]`) resets them; a non-empty valid
/// list replaces the stored ones (the client edited them); missing or invalid keeps the stored
/// ones. Through a subresource the stored ones are always kept.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    schema: &dyn SchemaInfo,
    api_version: &str,
    now: &str,
) {
    let mut entries = base_entries(old, new, subresource);
    let mut old_plain = old.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    managed::strip(&mut old_plain);
    let mut new_plain = new.clone();
    managed::strip(&mut new_plain);

    let mut comparison = Typed::new(schema).compare(&old_plain, &new_plain);
    comparison.retain(|p| managed::ownable(p, subresource));
    let changed = comparison.changed();

    for entry in &mut entries {
        entry.fields = entry
            .fields
            .difference(&changed)
            .difference(&comparison.removed);
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.is(manager, Operation::Update, subresource))
        {
            Some(entry) => {
                entry.fields = entry.fields.union(&changed);
                entry.time = Some(now.to_owned());
                api_version.clone_into(&mut entry.api_version);
            }
            None => entries.push(ManagedEntry {
                manager: manager.to_owned(),
                operation: Operation::Update,
                subresource: subresource.map(str::to_owned),
                api_version: api_version.to_owned(),
                time: Some(now.to_owned()),
                fields: changed,
            }),
        }
    }
    managed::store(new, &entries);
}

/// kube's `decodeLiveOrNew`; writes through a subresource cannot edit managedFields.
fn base_entries(old: Option<&Value>, new: &Value, subresource: Option<&str>) -> Vec<ManagedEntry> {
    let stored = || managed::decode(old.and_then(managed::raw_managed_fields));
    if subresource.is_some() {
        return stored();
    }
    match managed::raw_managed_fields(new) {
        Some(Value::Array(items)) if items.is_empty() => Vec::new(),
        Some(Value::Array(items)) if items.len() == 1 && items[0] == Value::Object(Map::new()) => {
            Vec::new()
        }
        Some(raw) => {
            let given = managed::decode(Some(raw));
            if given.is_empty() { stored() } else { given }
        }
        None => stored(),
    }
}

/// Whether two objects are equal except for the times of their managedFields entries: an apply
/// whose result passes this against the live object changed nothing, and kube-apiserver skips
/// the write and keeps the resourceVersion.
pub fn same_ignoring_managed_time(a: &Value, b: &Value) -> bool {
    fn without_times(value: &Value) -> Value {
        let mut value = value.clone();
        if let Some(Value::Array(entries)) = value
            .get_mut("metadata")
            .and_then(|m| m.get_mut("managedFields"))
        {
            for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("time");
            }
        }
        value
    }
    without_times(a) == without_times(b)
}
