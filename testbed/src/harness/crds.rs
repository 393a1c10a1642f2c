//! Installing the CRDs a test needs: the project's `deploy/crds/`, cert-manager's and PetSet's.
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dbtls_contract::monitoring::ServiceMonitor;
use dbtls_contract::petset::PetSet;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams};

use super::cluster::{CERT_MANAGER_ENV, Played};

/// The CRDs in the YAML files of `dir` (one document each), in file-name order.
fn crds_in(dir: &Path) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", file.display()))
        })
        .collect()
}

/// Every CRD the system and the stand-in use: the project's, PetSet's, and cert-manager's own
/// (kept in `testbed/cert-manager-crds/`), so that the operators meet cert-manager's real
/// schema wherever the harness plays cert-manager.
pub fn all_crds() -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut crds = crds_in(&here.join("../deploy/crds"))?;
    crds.push(PetSet::crd());
    // The subset of the Prometheus Operator's the provisioner writes (a cluster's own is kept).
    crds.push(ServiceMonitor::crd());
    crds.extend(crds_in(&here.join("cert-manager-crds"))?);
    Ok(crds)
}

/// Field manager of the CRDs the harness installs.
const MANAGER: &str = "e2e-crds";

/// Makes every CRD the system uses served and Established:
/// - the project's own (`deploy/crds/`, PetSet) are created, or updated when an earlier run on
///   the same cluster left an older version;
/// - cert-manager's are created when the harness plays cert-manager (`Played::ByStandIn`) and
///   absent; when a real cert-manager runs (`Played::ByCluster`) its CRDs must already exist.
pub async fn install(client: &kube::Client, cert_manager: Played) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for crd in all_crds()? {
        let name = crd.metadata.name.clone().unwrap_or_default();
        names.push(name.clone());
        let cert_managers = name.ends_with(".cert-manager.io");
        let live = api.get_opt(&name).await?;
        if live.is_some() && name.ends_with(".monitoring.coreos.com") {
            continue;
        }
        match (live, cert_managers) {
            (Some(_), true) => {}
            (None, true) if cert_manager == Played::ByCluster => anyhow::bail!(
                "{CERT_MANAGER_ENV}=external, but CRD {name} is not installed: install cert-manager \
                 first, or let the harness play it ({CERT_MANAGER_ENV}=stand-in)"
            ),
            (Some(live), false) if live.spec == crd.spec => {}
            (_, _) => apply(&api, &name, &crd).await?,
        }
    }
    wait_established(&api, &names).await
}

async fn apply(
    api: &Api<CustomResourceDefinition>,
    name: &str,
    crd: &CustomResourceDefinition,
) -> anyhow::Result<()> {
    let mut body = serde_json::to_value(crd)?;
    body["apiVersion"] = "apiextensions.k8s.io/v1".into();
    body["kind"] = "CustomResourceDefinition".into();
    if let Some(meta) = body["metadata"].as_object_mut() {
        meta.retain(|k, _| k == "name" || k == "labels" || k == "annotations");
    }
    if let Some(object) = body.as_object_mut() {
        object.remove("status");
    }
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .with_context(|| format!("installing CRD {name}"))?;
    Ok(())
}

async fn wait_established(
    api: &Api<CustomResourceDefinition>,
    names: &[String],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in names {
        loop {
            let crd = api.get(name).await?;
            let established = crd
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "CRD {name} not Established after 60s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
