//! Server-side apply under an operator's own field manager.
use kube::api::{Api, Patch, PatchParams};
use serde::{Serialize, de::DeserializeOwned};

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
