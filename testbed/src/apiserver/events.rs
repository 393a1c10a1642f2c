//! Events are stored once and served as both `v1 Event` (core) and `events.k8s.io/v1 Event`, as
//! kube-apiserver does (its internal type is core's, so a recorder writing events.k8s.io/v1 is
//! what `kubectl describe` reads back as core Events). Storage holds the core v1 form; the
//! events.k8s.io view is converted on every read and converted back on every write, field by
//! field as `k8s.io/kubernetes/pkg/apis/events/v1/conversion.go` does.
use std::borrow::Cow;

use serde_json::{Map, Value, json};

use super::patching::{self, PatchFailure};
use super::resources::ResourceDef;
use super::status::{ApiError, cause};
use super::store::{GroupResource, Store};
use super::writes::{self, Outcome, PatchKind, WriteCtx};

const EVENTS_GROUP: &str = "events.k8s.io";

/// `(events.k8s.io/v1 field, core v1 field)` pairs; every other field is not carried over.
/// `metadata` is copied as is.
const FIELD_MAP: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Whether `def` is the events.k8s.io view of the core Event storage.
pub fn is_events_view(def: &ResourceDef) -> bool {
    def.group == EVENTS_GROUP && def.plural == "events"
}

/// Where objects of `def` are stored: core `events` for events.k8s.io, else `def` itself.
pub fn storage_resource(def: &ResourceDef) -> GroupResource {
    if is_events_view(def) {
        (String::new(), "events".to_string())
    } else {
        (def.group.clone(), def.plural.clone())
    }
}

/// A stored object as `def` serves it (borrowed unless a conversion was needed).
pub fn view<'a>(def: &ResourceDef, stored: &'a Value) -> Cow<'a, Value> {
    if is_events_view(def) {
        Cow::Owned(core_to_events(stored))
    } else {
        Cow::Borrowed(stored)
    }
}

/// A stored object in core v1 form, whatever resource it was read through (tables print events
/// of both groups with the core columns, as kube's printers work on the internal type).
pub fn as_core<'a>(def: &ResourceDef, served: &'a Value) -> Cow<'a, Value> {
    if is_events_view(def) {
        Cow::Owned(events_to_core(served))
    } else {
        Cow::Borrowed(served)
    }
}

/// A request body for `def`/`version` in storage form. For the events.k8s.io view the body's
/// apiVersion/kind are checked here (the storage write checks them against core's).
pub fn to_storage(def: &ResourceDef, version: &str, body: Value) -> Result<Value, ApiError> {
    if !is_events_view(def) {
        return Ok(body);
    }
    check_api_version(def, version, &body)?;
    Ok(events_to_core(&body))
}

fn check_api_version(def: &ResourceDef, version: &str, body: &Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let expected = def.api_version(version);
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
        && !av.is_empty()
        && av != expected
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({expected})"
        )));
    }
    Ok(())
}

/// PATCH through the events.k8s.io view (the kube-rs `Recorder` merge-patches a series onto
/// its Event): merge and JSON patches apply to the converted live object and are stored back
/// as an update; an apply configuration is converted field by field and applied to storage.
#[allow(clippy::too_many_arguments)]
pub fn patch_view(
    store: &mut Store,
    def: &ResourceDef,
    storage_def: &ResourceDef,
    version: &str,
    ns: &str,
    name: &str,
    kind: PatchKind,
    patch: &Value,
    force: bool,
    ctx: &WriteCtx,
) -> Result<Outcome, ApiError> {
    let storage_version = storage_def.storage_version.clone();
    let result = if kind == PatchKind::Apply {
        check_api_version(def, version, patch)?;
        let applied = convert(patch, FIELD_MAP.iter().copied(), "v1", false);
        writes::patch(
            store,
            storage_def,
            &storage_version,
            ns,
            name,
            kind,
            &applied,
            None,
            force,
            ctx,
        )
    } else {
        let key = (ns.to_string(), name.to_string());
        let live = store
            .get(&storage_resource(def), &key)
            .ok_or_else(|| ApiError::not_found(&writes::target(def, name)))?;
        let mut viewed = core_to_events(&live);
        if kind == PatchKind::Json {
            patching::json_patch(&mut viewed, patch).map_err(|e| match e {
                PatchFailure::BadRequest(m) => ApiError::bad_request(m),
                PatchFailure::Invalid(m) | PatchFailure::Conflict(m, _) => ApiError::invalid(
                    &def.group,
                    &def.kind,
                    name,
                    vec![cause("FieldValueInvalid", "", m)],
                ),
            })?;
        } else {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            patching::merge_patch(&mut viewed, patch);
        }
        let updated = to_storage(def, version, viewed)?;
        writes::update(
            store,
            storage_def,
            &storage_version,
            ns,
            name,
            updated,
            None,
            ctx,
        )
    };
    result.map_err(|e| retarget_error(def, e))
}

/// Rewrites an error the core storage reported so it names the events.k8s.io resource (kube
/// says `events.events.k8s.io "x" not found` on that API).
pub fn retarget_error(def: &ResourceDef, mut err: ApiError) -> ApiError {
    if !is_events_view(def) {
        return err;
    }
    if let Some(d) = err.details.as_mut()
        && d.group.is_empty()
    {
        d.group = EVENTS_GROUP.to_string();
        if d.kind == "events" {
            err.message = err
                .message
                .replacen("events \"", "events.events.k8s.io \"", 1);
        }
    }
    err
}

/// Renames the top-level fields of `from` by `pairs` (`(source, target)`), dropping the rest,
/// and sets `apiVersion`/`kind`. `complete` adds the structs core's Go type always carries
/// (not for apply configurations, where an added field would become owned).
fn convert(
    from: &Value,
    pairs: impl Iterator<Item = (&'static str, &'static str)>,
    api_version: &str,
    complete: bool,
) -> Value {
    let mut out = Map::new();
    if let Some(m) = from.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    for (src, dst) in pairs {
        if let Some(v) = from.get(src) {
            out.insert(dst.into(), v.clone());
        }
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    if complete && api_version == "v1" {
        // Non-pointer structs in the Go type: always present on the wire.
        out.entry("involvedObject").or_insert_with(|| json!({}));
        out.entry("source").or_insert_with(|| json!({}));
    }
    Value::Object(out)
}

/// `events.k8s.io/v1` → core `v1` (`Convert_v1_Event_To_core_Event`).
pub fn events_to_core(ev: &Value) -> Value {
    convert(ev, FIELD_MAP.iter().copied(), "v1", true)
}

/// core `v1` → `events.k8s.io/v1` (`Convert_core_Event_To_v1_Event`).
pub fn core_to_events(core: &Value) -> Value {
    let mut value = convert(
        core,
        FIELD_MAP.iter().map(|(e, c)| (*c, *e)),
        "events.k8s.io/v1",
        false,
    );
    let Some(out) = value.as_object_mut() else {
        return value;
    };
    // An empty source is omitted by events.k8s.io's `omitempty` pointer-free struct handling.
    if out
        .get("deprecatedSource")
        .is_some_and(|s| s.as_object().is_some_and(Map::is_empty))
    {
        out.remove("deprecatedSource");
    }
    value
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn full_events_v1() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "db.1", "namespace": "demo"},
            "regarding": {"kind": "MySQL", "name": "db", "namespace": "demo", "uid": "u1"},
            "related": {"kind": "Secret", "name": "s"},
            "note": "issued", "reason": "Issued", "type": "Normal", "action": "Reconcile",
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "series": {"count": 3, "lastObservedTime": "2024-01-01T00:01:00.000000Z"},
            "reportingController": "dbtls-provisioner", "reportingInstance": "pod-1",
            "deprecatedSource": {"component": "legacy", "host": "node"},
            "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2024-01-01T00:01:00Z",
            "deprecatedCount": 3
        })
    }

    #[test]
    fn events_v1_converts_to_core_field_by_field() {
        let core = events_to_core(&full_events_v1());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "db");
        assert_eq!(core["related"]["name"], "s");
        assert_eq!(core["message"], "issued");
        assert_eq!(core["reportingComponent"], "dbtls-provisioner");
        assert_eq!(core["reportingInstance"], "pod-1");
        assert_eq!(core["source"]["component"], "legacy");
        assert_eq!(core["firstTimestamp"], "2024-01-01T00:00:00Z");
        assert_eq!(core["lastTimestamp"], "2024-01-01T00:01:00Z");
        assert_eq!(core["count"], 3);
        assert_eq!(core["series"]["count"], 3);
        assert_eq!(core["action"], "Reconcile");
        assert!(core.get("regarding").is_none() && core.get("note").is_none());
    }

    #[test]
    fn round_trip_is_lossless_for_every_mapped_field() {
        let ev = full_events_v1();
        assert_eq!(core_to_events(&events_to_core(&ev)), ev);
    }

    #[test]
    fn core_defaults_empty_required_structs() {
        let core = events_to_core(&json!({"metadata": {"name": "x"}, "note": "n"}));
        assert_eq!(core["involvedObject"], json!({}));
        assert_eq!(core["source"], json!({}));
        let back = core_to_events(&core);
        assert!(back.get("deprecatedSource").is_none());
        assert_eq!(back["regarding"], json!({}));
    }
}
