//! Installing the CRDs a test needs: the project's `deploy/crds/`, cert-manager's and PetSet's.
//! CRDs that already exist (a real cluster with cert-manager) are left alone.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, PostParams};
use shared_types::certmanager::{Certificate, ClusterIssuer, Issuer};
use shared_types::petset::PetSet;

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

/// Creates the CRDs that are absent and waits until all are Established. Returns the names of
/// the CRDs it created.
pub async fn install(client: &kube::Client) -> anyhow::Result<Vec<String>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut created = Vec::new();
    let mut names = Vec::new();
    for crd in all_crds()? {
        let name = crd.metadata.name.clone().unwrap_or_default();
        names.push(name.clone());
        if api.get_opt(&name).await?.is_some() {
            continue;
        }
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => created.push(name),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e).with_context(|| format!("creating CRD {name}")),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in names {
        loop {
            let crd = api.get(&name).await?;
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
    Ok(created)
}
