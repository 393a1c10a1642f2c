//! Installing the CRDs a test needs: the project's `deploy/crds/`, cert-manager's and PetSet's.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dbtls_contract::certmanager::{Certificate, ClusterIssuer, Issuer};
use dbtls_contract::petset::PetSet;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams};

use super::cluster::{CERT_MANAGER_ENV, Played};

/// Every CRD the system and the stand-in use.
pub fn all_crds() -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    let mut crds = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        crds.push(crd);
    }
    crds.extend([
        Certificate::crd(),
        Issuer::crd(),
        ClusterIssuer::crd(),
        PetSet::crd(),
    ]);
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
