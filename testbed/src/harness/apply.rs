//! Applying YAML manifests the way `kubectl apply --server-side` does, for tests and the sandbox.
use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context as _;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, Scope};
use serde::Deserialize as _;

/// Discovery results, kept so that applying many documents asks the API server once per kind.
#[derive(Default)]
pub struct KindCache(Mutex<HashMap<(String, String), (ApiResource, ApiCapabilities)>>);

impl KindCache {
    async fn resolve(
        &self,
        client: &kube::Client,
        gvk: &GroupVersionKind,
    ) -> anyhow::Result<(ApiResource, ApiCapabilities)> {
        let key = (gvk.api_version(), gvk.kind.clone());
        if let Some(found) = self.0.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(found);
        }
        let found = kube::discovery::pinned_kind(client, gvk)
            .await
            .with_context(|| format!("discovering {}/{}", key.0, key.1))?;
        if let Ok(mut map) = self.0.lock() {
            map.insert(key, found.clone());
        }
        Ok(found)
    }
}

/// Applies every document of `yaml` server-side as `manager` (with force). Namespaced objects go
/// to `namespace` when given, else to their own `metadata.namespace` (or `default`).
/// Returns `Kind/name` of each applied object.
pub async fn apply_yaml(
    client: &kube::Client,
    cache: &KindCache,
    yaml: &str,
    namespace: Option<&str>,
    manager: &str,
) -> anyhow::Result<Vec<String>> {
    let mut applied = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(document)?;
        if value.is_null() {
            continue;
        }
        let mut obj: DynamicObject =
            serde_yaml::from_value(value).context("parsing a YAML document")?;
        let types = obj
            .types
            .clone()
            .context("document without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let (resource, caps) = cache.resolve(client, &gvk).await?;
        let name = obj
            .metadata
            .name
            .clone()
            .context("document without metadata.name")?;
        let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
            let ns = namespace
                .map(str::to_string)
                .or_else(|| obj.metadata.namespace.clone())
                .unwrap_or_else(|| "default".to_string());
            obj.metadata.namespace = Some(ns.clone());
            Api::namespaced_with(client.clone(), &ns, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        api.patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&obj),
        )
        .await
        .with_context(|| format!("applying {} {name}", gvk.kind))?;
        applied.push(format!("{}/{name}", gvk.kind));
    }
    Ok(applied)
}
