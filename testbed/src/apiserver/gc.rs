//! Deletion: preconditions, finalizers and deletionTimestamp, propagation policies, ownerReference
//! garbage collection and namespace/CRD cleanup. kube does the collection asynchronously in the
//! controller-manager; here it runs synchronously inside the deleting request, which observes
//! the same end states (owners' DELETED events just arrive before their dependents').
use std::sync::Arc;

use serde_json::{Value, json};

use super::status::ApiError;
use super::store::{GroupResource, ObjectKey, Store, meta_str, owner_uids};
use super::writes::{finalizers, target};

const FOREGROUND: &str = "foregroundDeletion";

/// `propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn parse(s: &str) -> Result<Propagation, ApiError> {
        match s {
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            "Orphan" => Ok(Propagation::Orphan),
            other => Err(ApiError::bad_request(format!(
                "unsupported propagationPolicy {other:?}"
            ))),
        }
    }
}

/// `DeleteOptions` that matter here.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// What a delete request did.
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    /// The object is gone (last state).
    Gone(Arc<Value>),
    /// The object waits for finalizers (current state); `wrote` = whether this request changed it.
    Pending(Arc<Value>, bool),
}

fn is_namespace(gr: &GroupResource) -> bool {
    gr.0.is_empty() && gr.1 == "namespaces"
}

/// Whether anything still holds the object (finalizers; a namespace's remaining content).
fn blocked(store: &Store, gr: &GroupResource, obj: &Value) -> bool {
    !finalizers(obj).is_empty()
        || (is_namespace(gr)
            && !store.namespace_is_empty(meta_str(obj, "name").unwrap_or_default()))
}

/// DELETE of one object.
pub fn delete(
    store: &mut Store,
    gr: &GroupResource,
    key: &ObjectKey,
    opts: &DeleteOpts,
    now: &str,
) -> Result<DeleteOutcome, ApiError> {
    let def = store
        .defs
        .get(gr)
        .cloned()
        .ok_or_else(ApiError::not_found_path)?;
    let obj = store
        .get(gr, key)
        .ok_or_else(|| ApiError::not_found(&target(&def, &key.1)))?;
    let t = target(&def, &key.1);
    if let Some(uid) = &opts.precondition_uid {
        let actual = meta_str(&obj, "uid").unwrap_or_default();
        if uid != actual {
            return Err(ApiError::conflict_msg(
                &t,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.precondition_rv {
        let actual = meta_str(&obj, "resourceVersion").unwrap_or_default();
        if rv != actual {
            return Err(ApiError::conflict_msg(
                &t,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
    }
    if is_namespace(gr) && matches!(key.1.as_str(), "default" | "kube-system" | "kube-public") {
        return Err(ApiError::forbidden(format!(
            "namespaces \"{}\" is forbidden: this namespace may not be deleted",
            key.1
        )));
    }
    if opts.dry_run {
        return Ok(DeleteOutcome::Pending(obj, false));
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(DeleteOutcome::Pending(obj, false));
    }
    let uid = meta_str(&obj, "uid").unwrap_or_default().to_string();
    let propagation = opts.propagation.unwrap_or(Propagation::Background);
    if propagation == Propagation::Orphan {
        orphan_dependents(store, &uid);
    }
    let mut marked = (*obj).clone();
    let has_dependents = !store.dependents_of(&uid).is_empty();
    if propagation == Propagation::Foreground && has_dependents {
        let mut f = finalizers(&marked);
        f.push(FOREGROUND.to_string());
        marked["metadata"]["finalizers"] = json!(f);
    }
    if is_namespace(gr) {
        marked["status"] = json!({"phase": "Terminating"});
    }
    if !blocked(store, gr, &marked) && !is_namespace(gr) {
        return Ok(DeleteOutcome::Gone(
            remove_and_collect(store, gr, key, now).unwrap_or(obj),
        ));
    }
    marked["metadata"]["deletionTimestamp"] = json!(now);
    marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    if let Some(g) = marked
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        && g > 0
    {
        marked["metadata"]["generation"] = json!(g + 1);
    }
    store.put(gr, key.clone(), marked);
    if is_namespace(gr) {
        let namespaced: Vec<GroupResource> = store
            .defs
            .iter()
            .filter(|(_, d)| d.namespaced)
            .map(|(g, _)| g.clone())
            .collect();
        for dgr in namespaced {
            let keys: Vec<ObjectKey> = store
                .iter(&dgr, Some(&key.1))
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                // Already-deleting or vanished children are fine here.
                let _ = delete(store, &dgr, &k, &DeleteOpts::default(), now);
            }
        }
    }
    if propagation == Propagation::Foreground {
        for (dgr, dkey) in store.dependents_of(&uid) {
            let _ = delete(store, &dgr, &dkey, &DeleteOpts::default(), now);
        }
        release_foreground(store, &uid, now);
    }
    match finish_if_unblocked(store, gr, key, now) {
        Some(last) => Ok(DeleteOutcome::Gone(last)),
        None => Ok(DeleteOutcome::Pending(
            store.get(gr, key).unwrap_or(obj),
            true,
        )),
    }
}

/// Removes a deleting object once nothing holds it; returns its last state if removed.
pub fn finish_if_unblocked(
    store: &mut Store,
    gr: &GroupResource,
    key: &ObjectKey,
    now: &str,
) -> Option<Arc<Value>> {
    let obj = store.get(gr, key)?;
    if obj.pointer("/metadata/deletionTimestamp").is_none() || blocked(store, gr, &obj) {
        return None;
    }
    remove_and_collect(store, gr, key, now)
}

/// Removes the object, then collects what its removal unblocks: dependents without live
/// owners, foreground owners, a terminating namespace, a CRD's resources.
fn remove_and_collect(
    store: &mut Store,
    gr: &GroupResource,
    key: &ObjectKey,
    now: &str,
) -> Option<Arc<Value>> {
    let last = store.remove(gr, key)?;
    if gr.0 == "apiextensions.k8s.io"
        && gr.1 == "customresourcedefinitions"
        && let Ok(def) = super::crd::resource_def(&last)
    {
        let cr_gr = (def.group.clone(), def.plural.clone());
        store.remove_all(&cr_gr);
        store.defs.remove(&cr_gr);
    }
    let uid = meta_str(&last, "uid").unwrap_or_default().to_string();
    for (dgr, dkey) in store.dependents_of(&uid) {
        let Some(dep) = store.get(&dgr, &dkey) else {
            continue;
        };
        if owner_uids(&dep)
            .iter()
            .all(|o| store.locate_uid(o).is_none())
        {
            let _ = delete(store, &dgr, &dkey, &DeleteOpts::default(), now);
        }
    }
    for owner in owner_uids(&last) {
        release_foreground(store, &owner, now);
    }
    if !key.0.is_empty() {
        let ns_gr = ("".to_string(), "namespaces".to_string());
        let ns_key = (String::new(), key.0.clone());
        finish_if_unblocked(store, &ns_gr, &ns_key, now);
    }
    Some(last)
}

/// Drops an owner's `foregroundDeletion` finalizer once no blocking dependent remains.
fn release_foreground(store: &mut Store, owner_uid: &str, now: &str) {
    let Some((ogr, okey)) = store.locate_uid(owner_uid) else {
        return;
    };
    let Some(owner) = store.get(&ogr, &okey) else {
        return;
    };
    let fins = finalizers(&owner);
    if owner.pointer("/metadata/deletionTimestamp").is_none()
        || !fins.iter().any(|f| f == FOREGROUND)
    {
        return;
    }
    let blocking = store
        .dependents_of(owner_uid)
        .into_iter()
        .any(|(dgr, dkey)| {
            store.get(&dgr, &dkey).is_some_and(|d| {
                d.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter().any(|r| {
                            r.get("uid").and_then(Value::as_str) == Some(owner_uid)
                                && r.get("blockOwnerDeletion").and_then(Value::as_bool)
                                    == Some(true)
                        })
                    })
            })
        });
    if blocking {
        return;
    }
    let mut updated = (*owner).clone();
    let rest: Vec<String> = fins.into_iter().filter(|f| f != FOREGROUND).collect();
    updated["metadata"]["finalizers"] = json!(rest);
    store.put(&ogr, okey.clone(), updated);
    finish_if_unblocked(store, &ogr, &okey, now);
}

/// Orphan propagation: dependents lose their ownerReferences to the owner.
fn orphan_dependents(store: &mut Store, owner_uid: &str) {
    for (dgr, dkey) in store.dependents_of(owner_uid) {
        let Some(dep) = store.get(&dgr, &dkey) else {
            continue;
        };
        let mut updated = (*dep).clone();
        if let Some(refs) = updated
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
        }
        store.put(&dgr, dkey, updated);
    }
}
