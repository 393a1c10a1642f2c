//! Every manifest of `deploy/` is accepted by the testbed API server on a server-side dry run:
//! through kube-rs (`dryRun=All` server-side applies of each document, always) and through
//! `kubectl apply --server-side --dry-run=server` of the kustomize output (when kubectl is
//! installed). The Namespace is created for real first, as kube's NamespaceLifecycle admission
//! refuses objects in a namespace that does not exist, dry run or not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::Scope;
use serde::Deserialize as _;
use testbed::apiserver::{ApiServerConfig, TestApiServer};
use testbed::harness::cluster::Played;
use testbed::harness::crds;

const MANAGER: &str = "dbtls-deploy";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The files a kustomization lists, depth first, in its order (what `kubectl kustomize`
/// emits, as this kustomization has no transformers).
fn kustomize_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let k: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for r in k["resources"].as_sequence().unwrap() {
        let path = dir.join(r.as_str().unwrap());
        if path.is_dir() {
            kustomize_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn documents(text: &str) -> Vec<DynamicObject> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| serde_yaml::from_value(v).unwrap())
        .collect()
}

/// A CRD that accepts anything, standing in for the Prometheus Operator's.
fn permissive_crd(group: &str, kind: &str, plural: &str) -> CustomResourceDefinition {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(),
                      "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap()
}

/// A testbed with the CRDs the manifests need and the Namespace created.
async fn server_for_manifests() -> (TestApiServer, kube::Client) {
    let server = TestApiServer::start(ApiServerConfig::default())
        .await
        .unwrap();
    let client = server.client_as("admin").await.unwrap();
    crds::install(&client, Played::ByStandIn).await.unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Permissive, so that the manifests meet no schema narrower than the Prometheus
    // Operator's: replaces the subset ServiceMonitor CRD the harness installs.
    for crd in [
        permissive_crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
        permissive_crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules"),
    ] {
        let name = crd.metadata.name.clone().unwrap();
        if api.get_opt(&name).await.unwrap().is_some() {
            api.delete(&name, &Default::default()).await.unwrap();
            let gone = async {
                while api.get_opt(&name).await.unwrap().is_some() {
                    tokio::task::yield_now().await;
                }
            };
            tokio::time::timeout(std::time::Duration::from_secs(30), gone)
                .await
                .unwrap();
        }
        api.create(&PostParams::default(), &crd).await.unwrap();
    }
    let namespace = std::fs::read_to_string(deploy_dir().join("namespace.yaml")).unwrap();
    for ns in documents(&namespace) {
        let name = ns.metadata.name.clone().unwrap();
        let api: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
        );
        api.patch(&name, &PatchParams::apply(MANAGER), &Patch::Apply(&ns))
            .await
            .unwrap();
    }
    (server, client)
}

/// Dry-run applies one object; the error text when refused.
async fn dry_run_apply(client: &kube::Client, obj: &DynamicObject) -> Result<(), String> {
    let types = obj.types.clone().ok_or("no apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(&types).map_err(|e| e.to_string())?;
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| format!("not served: {e}"))?;
    let name = obj.metadata.name.clone().ok_or("no metadata.name")?;
    let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
        let ns = obj
            .metadata
            .namespace
            .clone()
            .ok_or("namespaced object without metadata.namespace")?;
        Api::namespaced_with(client.clone(), &ns, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let params = PatchParams {
        dry_run: true,
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..PatchParams::apply(MANAGER)
    };
    api.patch(&name, &params, &Patch::Apply(obj))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn every_deploy_document_passes_a_server_side_dry_run() {
    let (_server, client) = server_for_manifests().await;
    let mut files = Vec::new();
    kustomize_files(&deploy_dir(), &mut files);
    let mut refused = Vec::new();
    let mut checked = 0;
    for file in &files {
        for obj in documents(&std::fs::read_to_string(file).unwrap()) {
            checked += 1;
            if let Err(e) = dry_run_apply(&client, &obj).await {
                refused.push(format!(
                    "{} {:?} ({}): {e}",
                    obj.types.as_ref().map(|t| t.kind.as_str()).unwrap_or("?"),
                    obj.metadata.name,
                    file.display()
                ));
            }
        }
    }
    assert!(checked >= 23, "only {checked} documents found");
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
    // A dry run writes nothing: the operators' Deployments do not exist afterwards.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client, "dbtls-system");
    assert!(
        deployments
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn kubectl_server_side_dry_run_of_the_kustomize_output() {
    let Ok(version) = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
    else {
        eprintln!("kubectl is not installed: kubectl dry run skipped");
        return;
    };
    assert!(version.status.success());
    let (server, _client) = server_for_manifests().await;
    let dir = std::env::temp_dir().join(format!("dbtls-dry-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("admin.kubeconfig");
    server.write_kubeconfig(&kubeconfig, "admin").unwrap();

    let rendered = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy_dir())
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let manifest = dir.join("dbtls.yaml");
    std::fs::write(&manifest, &rendered.stdout).unwrap();
    let kubectl = |args: &[&str]| {
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .arg("-f")
            .arg(&manifest)
            .output()
    };
    let applied = kubectl(&["apply", "--server-side", "--dry-run=server"])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&applied.stdout).to_string();
    let stderr = String::from_utf8_lossy(&applied.stderr).to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        applied.status.success(),
        "kubectl apply --dry-run=server refused:\n{stderr}\n{stdout}"
    );
    let lines = stdout
        .lines()
        .filter(|l| l.contains("(server dry run)"))
        .count();
    assert_eq!(
        lines,
        documents(&String::from_utf8_lossy(&rendered.stdout)).len(),
        "{stdout}"
    );
}
