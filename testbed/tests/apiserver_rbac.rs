//! RBAC enforcement of the testbed API server through kube-rs, as kube-apiserver's RBAC
//! authorizer decides: roles and bindings per namespace and cluster-wide, subjects of kind
//! User, Group and ServiceAccount, verbs, subresources, resourceNames, wildcards, and kube's
//! 403 messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use testbed::apiserver::{ApiServerConfig, TestApiServer};

const SA: &str = "system:serviceaccount:ops:mgr";

async fn rbac_server() -> (TestApiServer, kube::Client) {
    let s = TestApiServer::start(ApiServerConfig {
        enforce_rbac: true,
        ..ApiServerConfig::default()
    })
    .await
    .unwrap();
    let admin = s.client().await;
    let nss: Api<Namespace> = Api::all(admin.clone());
    for ns in ["demo", "ops"] {
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    }
    (s, admin)
}

fn status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("not an API error: {other:?}"),
    }
}

/// Asserts a 403 with exactly kube's message.
fn assert_forbidden(e: kube::Error, message: &str) {
    let st = status(e);
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"), "{st:?}");
    assert_eq!(st.message, message);
}

async fn role(admin: &kube::Client, ns: &str, name: &str, rules: Value) {
    let api: Api<Role> = Api::namespaced(admin.clone(), ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules})).unwrap(),
    )
    .await
    .unwrap();
}

async fn role_binding(admin: &kube::Client, ns: &str, role_kind: &str, role: &str, subject: Value) {
    let api: Api<RoleBinding> = Api::namespaced(admin.clone(), ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": format!("{role}-binding")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [subject]
        }))
        .unwrap(),
    )
    .await
    .unwrap();
}

async fn cluster_role(admin: &kube::Client, name: &str, rules: Value) {
    let api: Api<ClusterRole> = Api::all(admin.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules})).unwrap(),
    )
    .await
    .unwrap();
}

async fn cluster_role_binding(admin: &kube::Client, role: &str, subject: Value) {
    let api: Api<ClusterRoleBinding> = Api::all(admin.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": format!("{role}-binding")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [subject]
        }))
        .unwrap(),
    )
    .await
    .unwrap();
}

fn sa_subject() -> Value {
    json!({"kind": "ServiceAccount", "name": "mgr", "namespace": "ops"})
}

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"k": "v"}})).unwrap()
}

#[tokio::test]
async fn role_grants_verbs_in_its_namespace_only() {
    let (s, admin) = rbac_server().await;
    role(
        &admin,
        "demo",
        "secret-reader",
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}]),
    )
    .await;
    role_binding(&admin, "demo", "Role", "secret-reader", sa_subject()).await;
    Api::<Secret>::namespaced(admin.clone(), "demo")
        .create(&PostParams::default(), &secret("tls"))
        .await
        .unwrap();

    let sa = s.client_as(SA).await.unwrap();
    let demo: Api<Secret> = Api::namespaced(sa.clone(), "demo");
    assert_eq!(demo.get("tls").await.unwrap().metadata.name.unwrap(), "tls");
    assert_eq!(
        demo.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    // A watcher (list + watch) works.
    let first = watcher(demo.clone(), watcher::Config::default())
        .applied_objects()
        .boxed()
        .try_next()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("tls"));

    assert_forbidden(
        demo.create(&PostParams::default(), &secret("new"))
            .await
            .unwrap_err(),
        "secrets is forbidden: User \"system:serviceaccount:ops:mgr\" cannot create resource \"secrets\" in API group \"\" in the namespace \"demo\"",
    );
    assert_forbidden(
        demo.delete("tls", &Default::default()).await.unwrap_err(),
        "secrets \"tls\" is forbidden: User \"system:serviceaccount:ops:mgr\" cannot delete resource \"secrets\" in API group \"\" in the namespace \"demo\"",
    );
    assert_forbidden(
        demo.patch(
            "tls",
            &PatchParams::apply("mgr"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"}}),
            ),
        )
        .await
        .unwrap_err(),
        "secrets \"tls\" is forbidden: User \"system:serviceaccount:ops:mgr\" cannot patch resource \"secrets\" in API group \"\" in the namespace \"demo\"",
    );
    assert_forbidden(
        Api::<Secret>::namespaced(sa.clone(), "default")
            .get("x")
            .await
            .unwrap_err(),
        "secrets \"x\" is forbidden: User \"system:serviceaccount:ops:mgr\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\"",
    );
    assert_forbidden(
        Api::<Secret>::all(sa.clone())
            .list(&ListParams::default())
            .await
            .unwrap_err(),
        "secrets is forbidden: User \"system:serviceaccount:ops:mgr\" cannot list resource \"secrets\" in API group \"\" at the cluster scope",
    );
    // The 403 names the resource in its details, as kube's NewForbidden does.
    let st = status(
        Api::<Secret>::namespaced(sa.clone(), "default")
            .get("x")
            .await
            .unwrap_err(),
    );
    let details = st.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("x", "secrets")
    );
    // Another service account with the same name in another namespace gets nothing.
    let other = s.client_as("system:serviceaccount:demo:mgr").await.unwrap();
    assert_eq!(
        status(
            Api::<Secret>::namespaced(other, "demo")
                .get("tls")
                .await
                .unwrap_err()
        )
        .code,
        403
    );
    // The admin is allowed everything and identified as such in the request log.
    Api::<Secret>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        s.request_log()
            .snapshot()
            .iter()
            .any(|r| r.user == SA && r.status == 403)
    );
}

#[tokio::test]
async fn cluster_roles_via_cluster_and_namespace_bindings() {
    let (s, admin) = rbac_server().await;
    cluster_role(
        &admin,
        "ns-reader",
        json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]}]),
    )
    .await;
    // Bound to the group of every service account in `ops`.
    cluster_role_binding(
        &admin,
        "ns-reader",
        json!({"kind": "Group", "name": "system:serviceaccounts:ops", "apiGroup": "rbac.authorization.k8s.io"}),
    )
    .await;
    cluster_role(
        &admin,
        "cm-editor",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]),
    )
    .await;
    // A ClusterRole through a RoleBinding grants in that namespace only.
    role_binding(&admin, "demo", "ClusterRole", "cm-editor", sa_subject()).await;

    let sa = s.client_as(SA).await.unwrap();
    let nss: Api<Namespace> = Api::all(sa.clone());
    assert!(nss.list(&ListParams::default()).await.unwrap().items.len() >= 5);
    nss.get("demo").await.unwrap();
    assert_forbidden(
        nss.delete("demo", &Default::default()).await.unwrap_err(),
        "namespaces \"demo\" is forbidden: User \"system:serviceaccount:ops:mgr\" cannot delete resource \"namespaces\" in API group \"\" in the namespace \"demo\"",
    );
    let outsider = s.client_as("system:serviceaccount:demo:app").await.unwrap();
    assert_forbidden(
        Api::<Namespace>::all(outsider)
            .list(&ListParams::default())
            .await
            .unwrap_err(),
        "namespaces is forbidden: User \"system:serviceaccount:demo:app\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope",
    );

    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    Api::<ConfigMap>::namespaced(sa.clone(), "demo")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    assert_eq!(
        status(
            Api::<ConfigMap>::namespaced(sa.clone(), "ops")
                .create(&PostParams::default(), &cm)
                .await
                .unwrap_err()
        )
        .code,
        403
    );
    // Users by name, and the wildcard rule.
    cluster_role(
        &admin,
        "everything",
        json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
    )
    .await;
    cluster_role_binding(
        &admin,
        "everything",
        json!({"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}),
    )
    .await;
    let alice = s.client_as("alice").await.unwrap();
    Api::<Secret>::namespaced(alice.clone(), "ops")
        .create(&PostParams::default(), &secret("a"))
        .await
        .unwrap();
    Api::<ClusterRole>::all(alice)
        .list(&ListParams::default())
        .await
        .unwrap();
    let bob = s.client_as("bob").await.unwrap();
    assert_eq!(
        status(
            Api::<Secret>::namespaced(bob.clone(), "ops")
                .get("a")
                .await
                .unwrap_err()
        )
        .code,
        403
    );
    // Discovery and /version are open to every authenticated user.
    bob.apiserver_version().await.unwrap();
    bob.list_api_groups().await.unwrap();
}

#[tokio::test]
async fn subresources_and_resource_names() {
    let (s, admin) = rbac_server().await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(admin.clone(), "demo")
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    for name in ["allowed", "other"] {
        Api::<Secret>::namespaced(admin.clone(), "demo")
            .create(&PostParams::default(), &secret(name))
            .await
            .unwrap();
    }
    role(
        &admin,
        "demo",
        "status-writer",
        json!([
            {"apiGroups": ["apps"], "resources": ["statefulsets/status"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "update"], "resourceNames": ["allowed"]}
        ]),
    )
    .await;
    role_binding(&admin, "demo", "Role", "status-writer", sa_subject()).await;
    let sa = s.client_as(SA).await.unwrap();

    let api: Api<StatefulSet> = Api::namespaced(sa.clone(), "demo");
    let pp = PatchParams::apply("kube-controller-manager").force();
    api.patch_status(
        "db",
        &pp,
        &Patch::Apply(
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "status": {"replicas": 1}}),
        ),
    )
    .await
    .unwrap();
    assert_forbidden(
        api.patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap_err(),
        "statefulsets.apps \"db\" is forbidden: User \"system:serviceaccount:ops:mgr\" cannot patch resource \"statefulsets\" in API group \"apps\" in the namespace \"demo\"",
    );
    assert_forbidden(
        api.get_status("db").await.unwrap_err(),
        "statefulsets.apps \"db\" is forbidden: User \"system:serviceaccount:ops:mgr\" cannot get resource \"statefulsets/status\" in API group \"apps\" in the namespace \"demo\"",
    );

    let secrets: Api<Secret> = Api::namespaced(sa.clone(), "demo");
    let mut allowed = secrets.get("allowed").await.unwrap();
    allowed.metadata.labels = Some([("x".to_string(), "1".to_string())].into());
    secrets
        .replace("allowed", &PostParams::default(), &allowed)
        .await
        .unwrap();
    assert_forbidden(
        secrets.get("other").await.unwrap_err(),
        "secrets \"other\" is forbidden: User \"system:serviceaccount:ops:mgr\" cannot get resource \"secrets\" in API group \"\" in the namespace \"demo\"",
    );
    // resourceNames never match an unnamed list...
    assert_eq!(
        status(secrets.list(&ListParams::default()).await.unwrap_err()).code,
        403
    );
    // ...but a watch pinned by metadata.name carries the name, as in kube.
    let mut stream = secrets
        .watch(
            &kube::api::WatchParams::default().fields("metadata.name=allowed"),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    let first = stream.try_next().await.unwrap().unwrap();
    assert!(
        matches!(first, kube::api::WatchEvent::Added(ref o) if o.metadata.name.as_deref() == Some("allowed"))
    );

    // An apply that would create needs `create` as well as `patch`.
    role(
        &admin,
        "demo",
        "cm-patcher",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch", "get"]}]),
    )
    .await;
    role_binding(&admin, "demo", "Role", "cm-patcher", sa_subject()).await;
    let cms: Api<ConfigMap> = Api::namespaced(sa.clone(), "demo");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    assert_forbidden(
        cms.patch("c", &PatchParams::apply("mgr"), &Patch::Apply(body.clone()))
            .await
            .unwrap_err(),
        "configmaps \"c\" is forbidden: User \"system:serviceaccount:ops:mgr\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"demo\"",
    );
    Api::<ConfigMap>::namespaced(admin.clone(), "demo")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
        )
        .await
        .unwrap();
    cms.patch("c", &PatchParams::apply("mgr"), &Patch::Apply(body))
        .await
        .unwrap();
}

#[tokio::test]
async fn service_account_kubeconfig_and_enforcement_off_by_default() {
    let (s, admin) = rbac_server().await;
    role(
        &admin,
        "demo",
        "reader",
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]),
    )
    .await;
    role_binding(&admin, "demo", "Role", "reader", sa_subject()).await;
    let path = std::env::temp_dir().join(format!("rbac-kubeconfig-{}.yaml", std::process::id()));
    s.write_kubeconfig(&path, SA).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    Api::<Secret>::namespaced(client.clone(), "demo")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        status(
            Api::<Secret>::namespaced(client, "ops")
                .list(&ListParams::default())
                .await
                .unwrap_err()
        )
        .code,
        403
    );
    assert!(
        s.request_log()
            .snapshot()
            .iter()
            .any(|r| r.user == SA && r.namespace.as_deref() == Some("demo") && r.status == 200)
    );

    // Without enforce_rbac any user may do anything (the default for tests not about RBAC).
    let open = TestApiServer::start(ApiServerConfig::default())
        .await
        .unwrap();
    let nobody = open.client_as(SA).await.unwrap();
    Api::<Secret>::namespaced(nobody, "default")
        .create(&PostParams::default(), &secret("s"))
        .await
        .unwrap();
}
