//! Startup gate: the ops-manager is not ready until the kubedb.com kinds and cert-manager's
//! Certificate, Issuer and ClusterIssuer are served. It waits (and says what it waits for)
//! instead of crash-looping.

use std::time::Duration;

use dbtls_contract::api::{MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore};
use dbtls_contract::certmanager::{Certificate, ClusterIssuer, Issuer};
use kube::Resource;
use kube::api::{Api, ListParams};

/// `<plural>.<group>`, the CRD name users know.
fn crd_name<K: Resource<DynamicType = ()>>() -> String {
    format!("{}.{}", K::plural(&()), K::group(&()))
}

/// Ok when `K` can be listed; Err(crd name) while the API server does not serve it (404).
async fn served<K>(client: &kube::Client) -> Result<(), String>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all_with(client.clone(), &());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(crd_name::<K>()),
        Err(error) => {
            // Anything else (RBAC, connectivity) is logged; keep waiting rather than exit.
            tracing::warn!(crd = %crd_name::<K>(), %error, "cannot check whether the CRD is served");
            Err(crd_name::<K>())
        }
    }
}

/// The CRDs not served yet.
pub async fn missing(client: &kube::Client) -> Vec<String> {
    let checks = [
        served::<MySQL>(client).await,
        served::<PerconaXtraDB>(client).await,
        served::<ProxySQL>(client).await,
        served::<Singlestore>(client).await,
        served::<MSSQLServer>(client).await,
        served::<Certificate>(client).await,
        served::<Issuer>(client).await,
        served::<ClusterIssuer>(client).await,
    ];
    checks.into_iter().filter_map(Result::err).collect()
}

/// Polls until every CRD is served (1 s growing to 30 s between checks).
pub async fn wait_until_served(client: &kube::Client) {
    let mut delay = Duration::from_secs(1);
    loop {
        let missing = missing(client).await;
        if missing.is_empty() {
            return;
        }
        for crd in &missing {
            tracing::info!(crd = %crd, "waiting for CRD {crd}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}
