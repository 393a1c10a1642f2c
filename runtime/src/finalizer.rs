//! An operator's finalizer on a database, added and removed with server-side apply under the
//! operator's own field manager: `metadata.finalizers` is a set, so each manager owns only its
//! own entry and never touches the other operator's.
use kube::ResourceExt;
use kube::api::Api;
use serde_json::{Value, json};

use dbtls_contract::Database;

use crate::ssa;

pub fn has<K: Database>(db: &K, finalizer: &str) -> bool {
    db.finalizers().iter().any(|f| f == finalizer)
}

/// The apply body. The uid is a precondition (kube-apiserver answers 409 instead of creating a
/// database that is already gone: it checks no resourceVersion when an apply would create).
/// A resourceVersion, when given, is one too. Absent values are left out, never sent as null:
/// kube-apiserver merges a null or empty `resourceVersion` into the object and then refuses
/// the update of a custom resource ("must be specified for an update").
pub fn body<K: Database>(db: &K, finalizers: &[&str], resource_version: Option<String>) -> Value {
    let mut metadata = json!({"name": db.name_any(), "finalizers": finalizers});
    for (field, value) in [
        ("namespace", db.namespace()),
        ("uid", db.uid()),
        ("resourceVersion", resource_version),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            metadata[field] = json!(value);
        }
    }
    json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "metadata": metadata})
}

/// Adds `finalizer` as `manager` unless the database already carries it.
pub async fn add<K: Database>(
    api: &Api<K>,
    db: &K,
    manager: &str,
    finalizer: &str,
) -> kube::Result<()> {
    if has(db, finalizer) {
        return Ok(());
    }
    ssa::apply(api, &db.name_any(), manager, &body(db, &[finalizer], None)).await?;
    Ok(())
}

/// Removes the finalizer by applying an empty set of `manager`'s, at the resourceVersion the
/// caller acted on. A 404 or 409 means the database is gone or changed meanwhile: nothing to do
/// now (a change brings another reconcile).
pub async fn remove<K: Database>(
    api: &Api<K>,
    db: &K,
    manager: &str,
    finalizer: &str,
) -> kube::Result<()> {
    if !has(db, finalizer) {
        return Ok(());
    }
    let body = body(db, &[], db.resource_version());
    match ssa::apply(api, &db.name_any(), manager, &body).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use dbtls_contract::api::MySQL;

    fn db(uid: Option<&str>, rv: Option<&str>) -> MySQL {
        let mut db: MySQL = serde_yaml::from_str(
            "apiVersion: kubedb.com/v1\nkind: MySQL\nmetadata: {name: db, namespace: ns}\nspec: {version: '8.4.3'}\n",
        )
        .unwrap();
        db.metadata.uid = uid.map(str::to_string);
        db.metadata.resource_version = rv.map(str::to_string);
        db
    }

    #[test]
    fn an_add_carries_the_uid_and_no_resource_version_at_all() {
        let body = body(&db(Some("u1"), Some("7")), &["a/b"], None);
        let metadata = body["metadata"].as_object().unwrap();
        assert_eq!(metadata["uid"], "u1");
        assert_eq!(metadata["finalizers"], json!(["a/b"]));
        assert!(!metadata.contains_key("resourceVersion"));
    }

    #[test]
    fn missing_values_are_left_out_instead_of_sent_as_null() {
        let body = body(&db(None, None), &[], Some(String::new()));
        let metadata = body["metadata"].as_object().unwrap();
        assert!(metadata.values().all(|v| !v.is_null()));
        assert!(!metadata.contains_key("uid"));
        assert!(!metadata.contains_key("resourceVersion"));
        assert_eq!(metadata["finalizers"], json!([]));
    }

    #[test]
    fn a_removal_is_conditional_on_the_resource_version_seen() {
        let seen = db(Some("u1"), Some("7"));
        let body = body(&seen, &[], seen.resource_version());
        assert_eq!(body["metadata"]["resourceVersion"], "7");
        assert_eq!(body["kind"], "MySQL");
    }
}
