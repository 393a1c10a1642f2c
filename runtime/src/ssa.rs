//! Server-side apply under an operator's own field manager, with the preconditions that keep an
//! operator's writes on its own objects: what it read is what it writes over.
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// Applies `object` (which must carry apiVersion and kind) as `manager`, with force: the
/// operator owns these fields, and another manager's stale claim must not block convergence.
pub async fn apply<K>(
    api: &Api<K>,
    name: &str,
    manager: &str,
    object: &(impl Serialize + std::fmt::Debug),
) -> kube::Result<K>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(object),
    )
    .await
}

/// Creates `object` by an apply without force, after the caller saw no object of that name. If
/// someone else created one meanwhile, the apply conflicts (409) on the first field they own
/// with another value instead of overwriting it; the caller reads again and finds it foreign.
pub async fn create<K>(
    api: &Api<K>,
    name: &str,
    manager: &str,
    object: &(impl Serialize + std::fmt::Debug),
) -> kube::Result<K>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::apply(manager), &Patch::Apply(object))
        .await
}

/// Applies `object` with force over the live object of uid `uid`, which the caller checked is
/// its own. The uid is a precondition: an object deleted and re-created by someone else since
/// the read is not taken over. kube-apiserver refuses that write as an immutable-field change
/// (422 on `metadata.uid`); it is returned as the 409 Conflict it means ("changed since read").
pub async fn update<K>(
    api: &Api<K>,
    name: &str,
    manager: &str,
    object: &(impl Serialize + std::fmt::Debug),
    uid: &str,
) -> kube::Result<K>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let body = with_uid(object, uid).map_err(kube::Error::SerdeError)?;
    apply(api, name, manager, &body)
        .await
        .map_err(|error| match error {
            kube::Error::Api(status) if replaced(&status) => {
                let mut conflict = *status;
                conflict.code = 409;
                conflict.reason = "Conflict".into();
                conflict.message = format!(
                    "{name} was replaced since it was read: {}",
                    conflict.message
                );
                kube::Error::Api(Box::new(conflict))
            }
            other => other,
        })
}

/// Whether a write failed because the object's uid is not the one the writer read.
fn replaced(status: &kube::core::Status) -> bool {
    status.code == 422
        && status
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.field == "metadata.uid"))
}

/// `object` as JSON with `metadata.uid` set.
pub fn with_uid(object: &impl Serialize, uid: &str) -> serde_json::Result<Value> {
    let mut body = serde_json::to_value(object)?;
    if let Some(object) = body.as_object_mut() {
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("uid".into(), Value::String(uid.to_string()));
        }
    }
    Ok(body)
}

/// Deletes the object of uid `uid` (in the background); already gone or replaced (404/409) is
/// no error: what the caller meant to delete no longer exists.
pub async fn delete_uid<K>(api: &Api<K>, name: &str, uid: &str) -> kube::Result<()>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Applies `status` to the status subresource (`{apiVersion, kind, status}`).
pub async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    manager: &str,
    object: &(impl Serialize + std::fmt::Debug),
) -> kube::Result<K>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(object),
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_uid_precondition_is_added_to_metadata() {
        let body = with_uid(
            &json!({"kind": "Service", "metadata": {"name": "db"}}),
            "u1",
        )
        .unwrap();
        assert_eq!(body["metadata"], json!({"name": "db", "uid": "u1"}));
        let bare = with_uid(&json!({"kind": "Service"}), "u2").unwrap();
        assert_eq!(bare["metadata"]["uid"], "u2");
    }
}
