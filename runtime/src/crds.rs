//! Start-up gate: an operator is not ready until the resources it watches are served. It waits,
//! saying what it waits for, instead of crash-looping.
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;

const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);

/// `<plural>.<group>`, the CRD name users know.
pub fn crd_name(resource: &ApiResource) -> String {
    if resource.group.is_empty() {
        resource.plural.clone()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}

/// The resources of `resources` not served yet (a list of one item answers 404).
pub async fn missing(client: &kube::Client, resources: &[ApiResource]) -> Vec<String> {
    let mut missing = Vec::new();
    for resource in resources {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => missing.push(crd_name(resource)),
            Err(error) => {
                // RBAC or connectivity: say so, and keep waiting rather than exit.
                tracing::warn!(crd = %crd_name(resource), %error, "cannot check whether it is served");
                missing.push(crd_name(resource));
            }
        }
    }
    missing
}

/// Returns once every resource is served; checks again after 1 s, doubling to 30 s.
pub async fn wait_until_served(client: &kube::Client, resources: &[ApiResource]) {
    let mut delay = FIRST_DELAY;
    loop {
        let missing = missing(client, resources).await;
        if missing.is_empty() {
            return;
        }
        tracing::info!(waiting_for = %missing.join(", "), "waiting for CRDs to be served");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::GroupVersionKind;

    #[test]
    fn crd_names_are_plural_dot_group() {
        let gvk = GroupVersionKind::gvk("kubedb.com", "v1", "MySQL");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "mysqls");
        assert_eq!(crd_name(&resource), "mysqls.kubedb.com");
    }
}
