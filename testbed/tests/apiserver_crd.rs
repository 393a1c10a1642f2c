//! CRDs, custom resources and server-side apply through kube-rs, plus kubectl against the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use serde_json::json;
use testbed::apiserver::{ApiServerConfig, TestApiServer};

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["size"], "properties": {
                        "size": {"type": "integer", "minimum": 1}, "mode": {"type": "string", "default": "fast"}}},
                    "status": {"type": "object", "properties": {"conditions": {"type": "array",
                        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                        "items": {"type": "object", "required": ["type", "status"], "properties": {
                            "type": {"type": "string"}, "status": {"type": "string"}}}}}}}}}}]}
    }))
    .unwrap()
}

async fn with_crd() -> (TestApiServer, kube::Client, Api<DynamicObject>) {
    let s = TestApiServer::start(ApiServerConfig::default())
        .await
        .unwrap();
    let c = s.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    let crd = crds
        .create(&PostParams::default(), &widget_crd())
        .await
        .unwrap();
    let conds = crd.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    let ar = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let api = Api::namespaced_with(c.clone(), "default", &ar);
    (s, c, api)
}

fn widget(name: &str, spec: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})).unwrap()
}

#[tokio::test]
async fn crd_registration_pruning_defaulting_validation_generation() {
    let (_s, c, api) = with_crd().await;
    let discovery = Discovery::new(c.clone()).run().await.unwrap();
    assert!(discovery.groups().any(|g| g.name() == "example.com"));
    let w = api
        .create(
            &PostParams::default(),
            &widget("w", json!({"size": 2, "junk": true})),
        )
        .await
        .unwrap();
    assert_eq!(w.data["spec"], json!({"size": 2, "mode": "fast"}));
    assert_eq!(w.metadata.generation, Some(1));
    let kube::Error::Api(st) = api
        .create(&PostParams::default(), &widget("bad", json!({"size": 0})))
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!((st.code, st.reason.as_str()), (422, "Invalid"));
    assert!(
        st.message
            .starts_with("Widget.example.com \"bad\" is invalid: spec.size"),
        "{}",
        st.message
    );
    let kube::Error::Api(st) = api
        .create(&PostParams::default(), &widget("w", json!({"size": 1})))
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(st.message, "widgets.example.com \"w\" already exists");
    // Status changes do not bump generation; spec changes do.
    let s1 = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": []}})),
        )
        .await
        .unwrap();
    assert_eq!(s1.metadata.generation, Some(1));
    let s2 = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(s2.metadata.generation, Some(2));
    // Strategic merge patch is not supported for custom resources (as in kube).
    let err = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 4}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(st) = err else { panic!() };
    assert_eq!(st.code, 415);
    // Deleting the CRD removes the resource.
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    crds.delete("widgets.example.com", &Default::default())
        .await
        .unwrap();
    let kube::Error::Api(st) = api.get("w").await.unwrap_err() else {
        panic!()
    };
    assert_eq!(st.code, 404);
}

#[tokio::test]
async fn two_field_managers_keep_their_own_conditions() {
    let (_s, _c, api) = with_crd().await;
    api.create(&PostParams::default(), &widget("w", json!({"size": 1})))
        .await
        .unwrap();
    let cond = |t: &str| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "status": {"conditions": [{"type": t, "status": "True"}]}})
    };
    api.patch_status("w", &PatchParams::apply("alpha"), &Patch::Apply(cond("A")))
        .await
        .unwrap();
    let after = api
        .patch_status("w", &PatchParams::apply("beta"), &Patch::Apply(cond("B")))
        .await
        .unwrap();
    let types: Vec<&str> = after.data["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["A", "B"]);
    let managers: Vec<String> = after
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"alpha".to_string()) && managers.contains(&"beta".to_string()),
        "{managers:?}"
    );
    // alpha re-applies without its condition: only A goes.
    let empty = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"conditions": []}});
    let after = api
        .patch_status("w", &PatchParams::apply("alpha"), &Patch::Apply(empty))
        .await
        .unwrap();
    let types: Vec<&str> = after.data["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["B"]);
}

#[tokio::test]
async fn kubectl_create_apply_get_delete() {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        println!("kubectl not on PATH: skipping");
        return;
    }
    let s = TestApiServer::start(ApiServerConfig::default())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("testbed-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    s.write_kubeconfig(&kubeconfig, "kubectl-user").unwrap();
    let manifest = dir.join("secret.yaml");
    std::fs::write(&manifest, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s1\n  namespace: kt\nstringData:\n  k: v\n").unwrap();
    let run = |args: &[&str]| {
        let kc = kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            let out = tokio::time::timeout(
                Duration::from_secs(60),
                tokio::process::Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&kc)
                    .args(&args)
                    .output(),
            )
            .await
            .unwrap()
            .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(
                out.status.success(),
                "kubectl {args:?}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
        }
    };
    // `kubectl create namespace` sends protobuf (unsupported); manifests go as JSON.
    let ns_manifest = dir.join("ns.yaml");
    std::fs::write(
        &ns_manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kt\n",
    )
    .unwrap();
    run(&["create", "-f", ns_manifest.to_str().unwrap()]).await;
    run(&["apply", "--server-side", "-f", manifest.to_str().unwrap()]).await;
    let json_out = run(&["get", "secrets", "-n", "kt", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["items"][0]["metadata"]["name"], "s1");
    assert_eq!(v["items"][0]["data"]["k"], "dg==");
    let table = run(&["get", "secrets", "-n", "kt"]).await;
    assert!(table.contains("NAME") && table.contains("s1"), "{table}");
    run(&["delete", "secret", "s1", "-n", "kt"]).await;
    let after = run(&["get", "secrets", "-n", "kt", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 0);
    let log = s.request_log().snapshot();
    assert!(
        log.iter()
            .any(|r| r.user == "kubectl-user" && r.user_agent.contains("kubectl")),
        "{:?}",
        log.iter()
            .map(|r| (&r.user, &r.user_agent))
            .take(3)
            .collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
