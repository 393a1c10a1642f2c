//! The identity of the database being reconciled, independent of its kind, so that the pure
//! builders need no generic parameter.

use dbtls_contract::{Database, DbKind};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

/// Kind, name, namespace and uid of one database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbRef {
    pub kind: DbKind,
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl DbRef {
    /// None for an object the API server has not stored yet (no namespace or uid).
    pub fn of<K: Database>(db: &K) -> Option<Self> {
        Some(Self {
            kind: K::KIND,
            name: db.name_any(),
            namespace: db.namespace()?,
            uid: db.uid()?,
        })
    }

    /// The controller ownerReference every object created for the database carries, so that
    /// Kubernetes garbage-collects it with the database.
    pub fn owner_reference(&self) -> OwnerReference {
        let profile = self.kind.profile();
        OwnerReference {
            api_version: profile.api_version.to_string(),
            kind: profile.kind.to_string(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// Whether `owners` has this database as controller.
    pub fn controls(&self, owners: &[OwnerReference]) -> bool {
        dbtls_runtime::children::controlled_by(owners, &self.uid)
    }

    /// `<Kind> <namespace>/<name>` for messages and logs.
    pub fn display(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The controller owner in `owners`, if any, as `<Kind> <name>`, to name it in messages.
pub fn controller_of(owners: &[OwnerReference]) -> Option<&OwnerReference> {
    owners.iter().find(|o| o.controller == Some(true))
}
