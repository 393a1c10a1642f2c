//! Create, update, patch and apply with kube-apiserver's object semantics: metadata bookkeeping,
//! optimistic concurrency, the status subresource split, generation, kind rules, CRD schemas,
//! managedFields, and no-op detection (a write that changes nothing is not persisted).
use std::sync::Arc;

use rand::Rng;
use serde_json::{Value, json};

use super::crd;
use super::event_validation;
use super::gc;
use super::kinds;
use super::patch::SchemaInfo;
use super::patching::{self, ApplyInput, PatchFailure};
use super::qualified_name::qualified_name_errors;
use super::resources::ResourceDef;
use super::status::{ApiError, Cause, Target, cause};
use super::store::{GroupResource, ObjectKey, Store, meta_str};

/// Who writes and how.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// Manager name derived from the user agent when no `fieldManager` is given (as kube does).
    pub default_manager: String,
    pub dry_run: bool,
    /// `fieldValidation=Strict`: refuse (400) instead of pruning fields the schema does not know.
    pub strict_fields: bool,
    /// RFC 3339 timestamp of this request.
    pub now: String,
    /// The request came through events.k8s.io/v1 (Events get its stricter validation).
    pub events_api: bool,
}

impl WriteCtx {
    fn manager(&self) -> &str {
        self.field_manager
            .as_deref()
            .unwrap_or(&self.default_manager)
    }
}

/// The result of a write.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub object: Arc<Value>,
    /// Whether stored state changed.
    pub wrote: bool,
    pub created: bool,
}

/// The patch formats, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Apply,
    StrategicMerge,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchKind::Apply)
            }
            "application/strategic-merge-patch+json" => Some(PatchKind::StrategicMerge),
            _ => None,
        }
    }
}

enum Managed {
    /// Record an update operation by the request's manager.
    Update,
    /// managedFields were computed by server-side apply.
    Applied,
}

pub fn target<'a>(def: &'a ResourceDef, name: &'a str) -> Target<'a> {
    Target {
        group: &def.group,
        resource: &def.plural,
        name,
    }
}

fn schema_info(def: &ResourceDef) -> SchemaHandle {
    match def.schema(&def.storage_version) {
        Some(s) => SchemaHandle::Custom(s),
        None => SchemaHandle::Builtin(patching::builtin_schema_info(&def.group, &def.kind)),
    }
}

enum SchemaHandle {
    Custom(Arc<super::validation::CrSchema>),
    Builtin(&'static dyn SchemaInfo),
}

impl SchemaHandle {
    fn get(&self) -> &dyn SchemaInfo {
        match self {
            SchemaHandle::Custom(s) => s.schema_info(),
            SchemaHandle::Builtin(b) => *b,
        }
    }
}

fn invalid(def: &ResourceDef, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(&def.group, &def.kind, name, causes)
}

fn gr_of(def: &ResourceDef) -> GroupResource {
    (def.group.clone(), def.plural.clone())
}

/// kube's name rules: RFC 1123 subdomain (label for namespaces/services); RBAC allows any
/// path segment.
fn validate_name(def: &ResourceDef, name: &str) -> Option<Cause> {
    if def.group == "rbac.authorization.k8s.io" {
        return (name.contains('/') || name.contains('%') || name == "." || name == "..").then(
            || {
                cause(
                    "FieldValueInvalid",
                    "metadata.name",
                    format!("Invalid value: \"{name}\": may not contain '/' or '%'"),
                )
            },
        );
    }
    let label = def.group.is_empty() && (def.plural == "namespaces" || def.plural == "services");
    let ok_chars = |s: &str, dots: bool| {
        !s.is_empty()
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.')
            })
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if label {
        if name.len() > 63 || !ok_chars(name, false) {
            return Some(cause(
                "FieldValueInvalid",
                "metadata.name",
                format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                ),
            ));
        }
    } else if name.len() > 253 || !name.split('.').all(|p| ok_chars(p, false)) {
        return Some(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        ));
    }
    None
}

fn random_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

fn new_uid() -> String {
    let mut rng = rand::rng();
    let b: [u8; 16] = rng.random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
    )
}

/// Checks `apiVersion`/`kind` of a body and sets them to the storage version.
fn check_type(def: &ResourceDef, version: &str, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let expected = def.api_version(version);
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && !av.is_empty()
        && av != expected
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({expected})"
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            def.kind
        )));
    }
    obj["apiVersion"] = json!(def.api_version(&def.storage_version));
    obj["kind"] = json!(def.kind);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    Ok(())
}

fn check_namespace(
    store: &Store,
    def: &ResourceDef,
    ns: &str,
    creating: bool,
) -> Result<(), ApiError> {
    if !def.namespaced {
        return Ok(());
    }
    let nsdef = ("".to_string(), "namespaces".to_string());
    match store.get(&nsdef, &(String::new(), ns.to_string())) {
        None => Err(ApiError::not_found(&Target {
            group: "",
            resource: "namespaces",
            name: ns,
        })),
        Some(n) if creating && n.pointer("/metadata/deletionTimestamp").is_some() => {
            Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                if def.group.is_empty() {
                    def.plural.clone()
                } else {
                    format!("{}.{}", def.plural, def.group)
                },
                "",
            )))
        }
        Some(_) => Ok(()),
    }
}

/// Runs CRD schema defaulting, pruning and validation on a custom resource.
fn apply_schema(
    def: &ResourceDef,
    obj: &mut Value,
    old: Option<&Value>,
    strict_fields: bool,
) -> Result<(), ApiError> {
    if let Some(schema) = def.schema(&def.storage_version) {
        let sent = strict_fields.then(|| obj.clone());
        schema.default_and_prune(obj);
        if let Some(sent) = sent {
            let mut unknown = Vec::new();
            pruned_fields(&sent, obj, "", &mut unknown);
            if let Some(first) = unknown.first() {
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: unknown field \"{first}\""
                )));
            }
        }
        let causes = schema.validate(obj, old);
        if !causes.is_empty() {
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            return Err(invalid(def, &name, causes));
        }
    }
    Ok(())
}

/// Paths (`spec.tls.clientTLS`) of the non-null fields `sent` had that pruning removed.
fn pruned_fields(sent: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    let (Value::Object(sent), Value::Object(kept)) = (sent, kept) else {
        return;
    };
    for (key, value) in sent {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match kept.get(key) {
            None if !value.is_null() => out.push(here),
            Some(child) => pruned_fields(value, child, &here, out),
            None => {}
        }
    }
}

/// POST: creates an object.
pub fn create(
    store: &mut Store,
    def: &ResourceDef,
    version: &str,
    ns: &str,
    mut obj: Value,
    ctx: &WriteCtx,
) -> Result<Outcome, ApiError> {
    check_type(def, version, &mut obj)?;
    let body_ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
    if def.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let mut name = meta_str(&obj, "name").unwrap_or_default().to_string();
    if name.is_empty() {
        let prefix = meta_str(&obj, "generateName")
            .unwrap_or_default()
            .to_string();
        if prefix.is_empty() {
            return Err(invalid(
                def,
                "",
                vec![cause(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )],
            ));
        }
        name = format!("{prefix}{}", random_suffix());
    }
    create_named(store, def, ns, &name, obj, None, ctx, Managed::Update)
}

#[allow(clippy::too_many_arguments)]
fn create_named(
    store: &mut Store,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    mut obj: Value,
    _old: Option<&Value>,
    ctx: &WriteCtx,
    managed: Managed,
) -> Result<Outcome, ApiError> {
    if let Some(c) = validate_name(def, name) {
        return Err(invalid(def, name, vec![c]));
    }
    check_namespace(store, def, ns, true)?;
    let gr = gr_of(def);
    let key: ObjectKey = (
        if def.namespaced {
            ns.to_string()
        } else {
            String::new()
        },
        name.to_string(),
    );
    if store.get(&gr, &key).is_some() {
        return Err(ApiError::already_exists(&target(def, name)));
    }
    {
        let meta = &mut obj["metadata"];
        meta["name"] = json!(name);
        if let Some(m) = meta.as_object_mut() {
            for f in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "generation",
            ] {
                m.remove(f);
            }
            if def.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            if matches!(managed, Managed::Update) {
                m.remove("managedFields");
            }
        }
        meta["uid"] = json!(new_uid());
        meta["creationTimestamp"] = json!(ctx.now);
        if def.tracks_generation {
            meta["generation"] = json!(1);
        }
    }
    if def.status_subresource
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    kinds::prepare_create(store, def, &mut obj).map_err(|c| invalid(def, name, c))?;
    check_event(def, &obj, None, ctx).map_err(|c| invalid(def, name, c))?;
    check_finalizers(&obj).map_err(|c| invalid(def, name, c))?;
    apply_schema(def, &mut obj, None, ctx.strict_fields)?;
    if def.group == "apiextensions.k8s.io" {
        crd::resource_def(&obj).map_err(|c| invalid(def, name, c))?;
        crd::set_established_status(&mut obj, &ctx.now);
    }
    if matches!(managed, Managed::Update) {
        let schema = schema_info(def);
        patching::record_update(
            None,
            &mut obj,
            ctx.manager(),
            None,
            schema.get(),
            &def.api_version(&def.storage_version),
            &ctx.now,
        );
    }
    if ctx.dry_run {
        return Ok(Outcome {
            object: Arc::new(obj),
            wrote: false,
            created: true,
        });
    }
    let stored = store.put(&gr, key, obj);
    after_store(store, def, &stored);
    Ok(Outcome {
        object: stored,
        wrote: true,
        created: true,
    })
}

/// kube-apiserver's Event validation, for writes to the (core) Event storage.
fn check_event(
    def: &ResourceDef,
    obj: &Value,
    old: Option<&Value>,
    ctx: &WriteCtx,
) -> Result<(), Vec<Cause>> {
    if !(def.group.is_empty() && def.plural == "events") {
        return Ok(());
    }
    let causes = event_validation::validate(obj, old, ctx.events_api);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

/// `ValidateObjectMeta`: every finalizer is a qualified name.
fn check_finalizers(obj: &Value) -> Result<(), Vec<Cause>> {
    let causes: Vec<Cause> = finalizers(obj)
        .iter()
        .flat_map(|f| {
            qualified_name_errors(f).into_iter().map(move |message| {
                cause(
                    "FieldValueInvalid",
                    "metadata.finalizers",
                    format!(
                        "Invalid value: {}: {message}",
                        serde_json::to_string(f).unwrap_or_default()
                    ),
                )
            })
        })
        .collect();
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

/// Keeps derived state in sync after an object is stored (CRDs register their resources).
fn after_store(store: &mut Store, def: &ResourceDef, obj: &Value) {
    if def.group == "apiextensions.k8s.io"
        && def.plural == "customresourcedefinitions"
        && let Ok(new_def) = crd::resource_def(obj)
    {
        store
            .defs
            .insert((new_def.group.clone(), new_def.plural.clone()), new_def);
    }
}

fn lookup(
    store: &Store,
    def: &ResourceDef,
    ns: &str,
    name: &str,
) -> Result<(GroupResource, ObjectKey, Arc<Value>), ApiError> {
    let gr = gr_of(def);
    let key: ObjectKey = (
        if def.namespaced {
            ns.to_string()
        } else {
            String::new()
        },
        name.to_string(),
    );
    let old = store
        .get(&gr, &key)
        .ok_or_else(|| ApiError::not_found(&target(def, name)))?;
    Ok((gr, key, old))
}

/// PUT on the main resource or `/status`.
#[allow(clippy::too_many_arguments)]
pub fn update(
    store: &mut Store,
    def: &ResourceDef,
    version: &str,
    ns: &str,
    name: &str,
    mut obj: Value,
    subresource: Option<&str>,
    ctx: &WriteCtx,
) -> Result<Outcome, ApiError> {
    check_type(def, version, &mut obj)?;
    if let Some(n) = meta_str(&obj, "name")
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    let (_, _, old) = lookup(store, def, ns, name)?;
    let rv = meta_str(&obj, "resourceVersion").unwrap_or_default();
    if rv.is_empty() && def.is_custom() {
        return Err(resource_version_required(def, name));
    }
    commit_update(store, def, old, obj, subresource, ctx, Managed::Update)
}

/// kube-apiserver's answer to an update of a custom resource without a resourceVersion: their
/// strategy allows no unconditional update (built-in kinds take the live resourceVersion).
/// This error names the resource (`mysqls.kubedb.com`), not the kind: it comes from the
/// generic store.
fn resource_version_required(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::invalid(
        &def.group,
        &def.plural,
        name,
        vec![cause(
            "FieldValueInvalid",
            "metadata.resourceVersion",
            "Invalid value: 0: must be specified for an update",
        )],
    )
}

/// Whether an apply configuration sets `metadata.resourceVersion` to null or "": the merge
/// then erases the live object's, which kube-apiserver treats as an update without one.
fn erases_resource_version(applied: &Value) -> bool {
    applied
        .pointer("/metadata")
        .and_then(Value::as_object)
        .and_then(|m| m.get("resourceVersion"))
        .is_some_and(|rv| rv.is_null() || rv.as_str() == Some(""))
}

/// PATCH (merge, JSON, apply) on the main resource or `/status`; apply creates missing objects.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    store: &mut Store,
    def: &ResourceDef,
    version: &str,
    ns: &str,
    name: &str,
    kind: PatchKind,
    body: &Value,
    subresource: Option<&str>,
    force: bool,
    ctx: &WriteCtx,
) -> Result<Outcome, ApiError> {
    let existing = lookup(store, def, ns, name);
    match kind {
        PatchKind::StrategicMerge if def.is_custom() => {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
            ));
        }
        PatchKind::Apply => {
            let manager = ctx.field_manager.clone().unwrap_or_default();
            if manager.is_empty() {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    vec![cause(
                        "FieldValueRequired",
                        "fieldManager",
                        "Required value: is required for apply patch",
                    )],
                ));
            }
            let mut applied = body.clone();
            check_type(def, version, &mut applied)?;
            if let Some(n) = meta_str(&applied, "name")
                && n != name
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            let schema = schema_info(def);
            let live = existing.as_ref().ok().map(|(_, _, o)| o.clone());
            // As kube-apiserver: a resourceVersion in the applied configuration is a precondition.
            if let (Some(rv), Some(old)) = (meta_str(&applied, "resourceVersion"), live.as_deref())
                && !rv.is_empty()
                && meta_str(old, "resourceVersion") != Some(rv)
            {
                return Err(ApiError::conflict(&target(def, name)));
            }
            if live.is_some() && def.is_custom() && erases_resource_version(&applied) {
                return Err(resource_version_required(def, name));
            }
            let api_version = def.api_version(&def.storage_version);
            let input = ApplyInput {
                live: live.as_deref(),
                applied: &applied,
                manager: &manager,
                force,
                subresource,
                schema: schema.get(),
                api_version: &api_version,
                now: &ctx.now,
            };
            let result = patching::apply(&input).map_err(|e| patch_error(def, name, e))?;
            return match live {
                Some(old) => {
                    check_preconditions(def, &old, &applied)?;
                    commit_update(store, def, old, result, subresource, ctx, Managed::Applied)
                }
                None => {
                    if subresource.is_some() {
                        return Err(ApiError::not_found(&target(def, name)));
                    }
                    // kube's patcher: a uid in the configuration is a precondition that the
                    // object still exists (a resourceVersion is not checked on this path).
                    if let Some(uid) = meta_str(&applied, "uid").filter(|u| !u.is_empty()) {
                        return Err(ApiError::conflict_msg(
                            &target(def, name),
                            &format!(
                                "uid mismatch: the provided object specified uid {uid}, and no existing object was found"
                            ),
                        ));
                    }
                    create_named(store, def, ns, name, result, None, ctx, Managed::Applied)
                }
            };
        }
        _ => {}
    }
    let (_, _, old) = existing?;
    let mut new = (*old).clone();
    match kind {
        PatchKind::Json => {
            patching::json_patch(&mut new, body).map_err(|e| patch_error(def, name, e))?
        }
        _ => {
            if !body.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            patching::merge_patch(&mut new, body);
        }
    }
    check_type(def, version, &mut new)?;
    commit_update(store, def, old, new, subresource, ctx, Managed::Update)
}

fn patch_error(def: &ResourceDef, name: &str, e: PatchFailure) -> ApiError {
    match e {
        PatchFailure::BadRequest(m) => ApiError::bad_request(m),
        PatchFailure::Invalid(m) => ApiError::invalid(
            &def.group,
            &def.kind,
            name,
            vec![cause("FieldValueInvalid", "", m)],
        ),
        PatchFailure::Conflict(m, causes) => {
            let mut err = ApiError::conflict_msg(&target(def, name), &m);
            err.message = m;
            if let Some(d) = err.details.as_mut() {
                d.causes = causes;
            }
            err
        }
    }
}

/// The preconditions a written body carries: its resourceVersion must be the live one (409
/// Conflict), and its uid, being immutable, the live uid (422).
fn check_preconditions(def: &ResourceDef, old: &Value, new: &Value) -> Result<(), ApiError> {
    let name = meta_str(old, "name").unwrap_or_default();
    if let Some(rv) = meta_str(new, "resourceVersion").filter(|rv| !rv.is_empty())
        && Some(rv) != meta_str(old, "resourceVersion")
    {
        return Err(ApiError::conflict(&target(def, name)));
    }
    if let Some(uid) = meta_str(new, "uid").filter(|u| !u.is_empty())
        && Some(uid) != meta_str(old, "uid")
    {
        return Err(invalid(
            def,
            name,
            vec![cause(
                "FieldValueInvalid",
                "metadata.uid",
                format!("Invalid value: \"{uid}\": field is immutable"),
            )],
        ));
    }
    Ok(())
}

/// Shared tail of PUT/PATCH/apply on an existing object.
fn commit_update(
    store: &mut Store,
    def: &ResourceDef,
    old: Arc<Value>,
    mut new: Value,
    subresource: Option<&str>,
    ctx: &WriteCtx,
    managed: Managed,
) -> Result<Outcome, ApiError> {
    let name = meta_str(&old, "name").unwrap_or_default().to_string();
    let old_rv = meta_str(&old, "resourceVersion")
        .unwrap_or_default()
        .to_string();
    check_preconditions(def, &old, &new)?;
    // Server-owned metadata always comes from the stored object.
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old["metadata"].get(f) {
            Some(v) => new["metadata"][f] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(f);
                }
            }
        }
    }
    if def.status_subresource {
        if subresource == Some("status") {
            let mut only_status = (*old).clone();
            only_status["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if only_status["status"].is_null()
                && let Some(m) = only_status.as_object_mut()
            {
                m.remove("status");
            }
            only_status["metadata"]["managedFields"] = new["metadata"]
                .get("managedFields")
                .cloned()
                .unwrap_or(Value::Null);
            new = only_status;
        } else {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
    }
    if new["metadata"]
        .get("managedFields")
        .is_some_and(Value::is_null)
        && let Some(m) = new["metadata"].as_object_mut()
    {
        m.remove("managedFields");
    }
    kinds::prepare_update(def, &old, &mut new).map_err(|c| invalid(def, &name, c))?;
    check_event(def, &new, Some(&old), ctx).map_err(|c| invalid(def, &name, c))?;
    check_finalizers(&new).map_err(|c| invalid(def, &name, c))?;
    apply_schema(def, &mut new, Some(&old), ctx.strict_fields)?;
    if def.group == "apiextensions.k8s.io" {
        crd::resource_def(&new).map_err(|c| invalid(def, &name, c))?;
        crd::set_established_status(&mut new, &ctx.now);
    }
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        let old_f = finalizers(&old);
        let added: Vec<String> = finalizers(&new)
            .into_iter()
            .filter(|f| !old_f.contains(f))
            .collect();
        if !added.is_empty() {
            let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            return Err(invalid(
                def,
                &name,
                vec![cause(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        list.join(", ")
                    ),
                )],
            ));
        }
    }
    if def.tracks_generation {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                if def.status_subresource {
                    m.remove("status");
                }
            }
            v
        };
        if strip(&old) != strip(&new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
    }
    if matches!(managed, Managed::Update) {
        let schema = schema_info(def);
        patching::record_update(
            Some(&old),
            &mut new,
            ctx.manager(),
            subresource,
            schema.get(),
            &def.api_version(&def.storage_version),
            &ctx.now,
        );
    }
    new["metadata"]["resourceVersion"] = json!(old_rv);
    if patching::same_ignoring_managed_time(&old, &new) {
        return Ok(Outcome {
            object: old,
            wrote: false,
            created: false,
        });
    }
    if ctx.dry_run {
        return Ok(Outcome {
            object: Arc::new(new),
            wrote: false,
            created: false,
        });
    }
    let gr = gr_of(def);
    let key: ObjectKey = (
        meta_str(&old, "namespace").unwrap_or_default().to_string(),
        name,
    );
    let stored = store.put(&gr, key.clone(), new);
    after_store(store, def, &stored);
    if stored.pointer("/metadata/deletionTimestamp").is_some()
        && let Some(last) = gc::finish_if_unblocked(store, &gr, &key, &ctx.now)
    {
        return Ok(Outcome {
            object: last,
            wrote: true,
            created: false,
        });
    }
    Ok(Outcome {
        object: stored,
        wrote: true,
        created: false,
    })
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
