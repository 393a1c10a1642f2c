//! Events served as both core v1 and events.k8s.io/v1 from one storage, and kube's Table
//! columns for built-in kinds, through kube-rs, raw HTTP and (when present) kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::events::{Event as RecorderEvent, EventType, Recorder, Reporter};
use serde_json::{Value, json};
use testbed::apiserver::{ApiServerConfig, TestApiServer};

async fn server() -> (TestApiServer, kube::Client) {
    let s = TestApiServer::start(ApiServerConfig::default())
        .await
        .unwrap();
    let c = s.client().await;
    (s, c)
}

fn reference(kind: &str, name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("kubedb.com/v1".into()),
        kind: Some(kind.into()),
        name: Some(name.into()),
        namespace: Some("default".into()),
        uid: Some(uid.into()),
        ..Default::default()
    }
}

fn fields(selector: &str) -> ListParams {
    ListParams::default().fields(selector)
}

async fn names<K>(api: &Api<K>, selector: &str) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&fields(selector))
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.meta().name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn events_k8s_io_event_is_served_as_core_event_with_converted_fields() {
    let (_s, c) = server().await;
    let new_api: Api<Event> = Api::namespaced(c.clone(), "default");
    let core_api: Api<CoreEvent> = Api::namespaced(c.clone(), "default");
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"name": "db.1"},
        "regarding": reference("MySQL", "db", "uid-db"),
        "related": {"kind": "Secret", "name": "db-server-cert"},
        "note": "certificate issued", "reason": "Issued", "type": "Normal", "action": "Reconcile",
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "dbtls-provisioner", "reportingInstance": "prov-0",
        "series": {"count": 2, "lastObservedTime": "2024-01-01T00:05:00.000000Z"}
    }))
    .unwrap();
    let created = new_api.create(&PostParams::default(), &ev).await.unwrap();

    let core = core_api.get("db.1").await.unwrap();
    assert_eq!(core.metadata.uid, created.metadata.uid);
    assert_eq!(
        core.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(core.involved_object.name.as_deref(), Some("db"));
    assert_eq!(core.involved_object.kind.as_deref(), Some("MySQL"));
    assert_eq!(core.involved_object.uid.as_deref(), Some("uid-db"));
    assert_eq!(
        core.related.as_ref().and_then(|r| r.name.as_deref()),
        Some("db-server-cert")
    );
    assert_eq!(core.message.as_deref(), Some("certificate issued"));
    assert_eq!(core.reason.as_deref(), Some("Issued"));
    assert_eq!(core.type_.as_deref(), Some("Normal"));
    assert_eq!(core.action.as_deref(), Some("Reconcile"));
    assert_eq!(
        core.reporting_component.as_deref(),
        Some("dbtls-provisioner")
    );
    assert_eq!(core.reporting_instance.as_deref(), Some("prov-0"));
    assert_eq!(core.series.as_ref().and_then(|s| s.count), Some(2));
    // events.k8s.io/v1 refuses the deprecated fields on create (kube-apiserver's strict
    // validation): the core fields they map to stay unset.
    assert_eq!(core.count, None);
    assert!(core.first_timestamp.is_none() && core.last_timestamp.is_none());

    // What `kubectl describe` sends, and what it must not match.
    let describe = "involvedObject.name=db,involvedObject.namespace=default,involvedObject.kind=MySQL,involvedObject.uid=uid-db";
    assert_eq!(names(&core_api, describe).await, ["db.1"]);
    assert!(
        names(&core_api, "involvedObject.name=other")
            .await
            .is_empty()
    );
    assert!(
        names(&core_api, "involvedObject.kind=Secret")
            .await
            .is_empty()
    );
    // The events.k8s.io spelling of the same selector.
    assert_eq!(
        names(&new_api, "regarding.name=db,regarding.kind=MySQL").await,
        ["db.1"]
    );
    assert_eq!(
        names(&new_api, "reportingController=dbtls-provisioner").await,
        ["db.1"]
    );
    // Reading back through events.k8s.io gives what was written.
    let back = new_api.get("db.1").await.unwrap();
    assert_eq!(back.note, ev.note);
    assert_eq!(back.regarding, ev.regarding);
    assert_eq!(back.deprecated_source, ev.deprecated_source);
    assert_eq!(back.series, ev.series);
    assert!(new_api.get("missing").await.is_err());
}

#[tokio::test]
async fn core_event_is_served_as_events_k8s_io_event() {
    let (_s, c) = server().await;
    let new_api: Api<Event> = Api::namespaced(c.clone(), "default");
    let core_api: Api<CoreEvent> = Api::namespaced(c.clone(), "default");
    let ev: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "legacy.1"},
        "involvedObject": reference("Secret", "s", "uid-s"),
        "message": "old style", "reason": "Created", "type": "Warning",
        "source": {"component": "kubelet", "host": "node-2"},
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:03:00Z",
        "count": 4, "reportingComponent": "kubelet", "reportingInstance": "node-2"
    }))
    .unwrap();
    core_api.create(&PostParams::default(), &ev).await.unwrap();
    let got = new_api.get("legacy.1").await.unwrap();
    assert_eq!(
        got.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("s")
    );
    assert_eq!(got.note.as_deref(), Some("old style"));
    assert_eq!(got.deprecated_count, Some(4));
    assert!(got.deprecated_first_timestamp.is_some() && got.deprecated_last_timestamp.is_some());
    assert_eq!(
        got.deprecated_source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("kubelet")
    );
    assert_eq!(got.reporting_controller.as_deref(), Some("kubelet"));
    assert_eq!(got.reporting_instance.as_deref(), Some("node-2"));
    assert_eq!(names(&new_api, "regarding.name=s").await, ["legacy.1"]);
    assert!(names(&new_api, "regarding.name=db").await.is_empty());
    // One storage: a delete through one API removes it from the other.
    new_api
        .delete("legacy.1", &Default::default())
        .await
        .unwrap();
    assert!(
        core_api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn recorder_series_patch_and_watch_are_visible_through_core() {
    let (_s, c) = server().await;
    let core_api: Api<CoreEvent> = Api::namespaced(c.clone(), "default");
    let new_api: Api<Event> = Api::namespaced(c.clone(), "default");
    // A core watch filtered as `kubectl get events --field-selector` would be.
    let mut core_watch = core_api
        .watch(
            &WatchParams::default().fields("involvedObject.name=db"),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    let mut new_watch = new_api
        .watch(&WatchParams::default().fields("regarding.name=db"), "0")
        .await
        .unwrap()
        .boxed();

    let recorder = Recorder::new(
        c.clone(),
        Reporter {
            controller: "dbtls-provisioner".into(),
            instance: Some("prov-0".into()),
        },
    );
    let event = RecorderEvent {
        type_: EventType::Normal,
        reason: "Issued".into(),
        note: Some("certificate issued".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let db = reference("MySQL", "db", "uid-db");
    recorder.publish(&event, &db).await.unwrap();
    recorder.publish(&event, &db).await.unwrap();
    // Noise the filtered watches must not see.
    recorder
        .publish(&event, &reference("MySQL", "other", "uid-other"))
        .await
        .unwrap();

    let listed = core_api
        .list(&fields("involvedObject.name=db"))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let only = &listed[0];
    assert_eq!(only.series.as_ref().and_then(|s| s.count), Some(2));
    assert_eq!(only.message.as_deref(), Some("certificate issued"));
    assert_eq!(
        only.reporting_component.as_deref(),
        Some("dbtls-provisioner")
    );

    match next(&mut core_watch).await {
        WatchEvent::Added(e) => {
            assert_eq!(e.involved_object.name.as_deref(), Some("db"));
            assert!(e.series.is_none());
        }
        other => panic!("{other:?}"),
    }
    match next(&mut core_watch).await {
        WatchEvent::Modified(e) => assert_eq!(e.series.and_then(|s| s.count), Some(2)),
        other => panic!("{other:?}"),
    }
    match next(&mut new_watch).await {
        WatchEvent::Added(e) => {
            assert_eq!(e.note.as_deref(), Some("certificate issued"));
            assert_eq!(e.regarding.and_then(|r| r.name).as_deref(), Some("db"));
        }
        other => panic!("{other:?}"),
    }
}

/// The next watch event, failing after 10 s.
async fn next<K>(
    w: &mut futures::stream::BoxStream<'static, kube::Result<WatchEvent<K>>>,
) -> WatchEvent<K> {
    tokio::time::timeout(Duration::from_secs(10), w.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// GETs `path` asking for a Table, as kubectl does.
async fn table(c: &kube::Client, path: &str) -> Value {
    let req = axum::http::Request::get(path)
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .unwrap();
    let t: Value = c.request(req).await.unwrap();
    assert_eq!(t["kind"], "Table", "{t}");
    t
}

fn column_names(t: &Value) -> Vec<String> {
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["priority"] == 0)
        .map(|c| c["name"].as_str().unwrap().to_uppercase())
        .collect()
}

/// The row of object `name`, as `column -> cell`.
fn row(t: &Value, name: &str) -> std::collections::BTreeMap<String, Value> {
    let cols: Vec<String> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let r = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["object"]["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {t}"));
    cols.into_iter()
        .zip(r["cells"].as_array().unwrap().iter().cloned())
        .collect()
}

#[tokio::test]
async fn built_in_tables_have_kube_columns() {
    let (_s, c) = server().await;
    let create = |path: &'static str, body: Value| {
        let c = c.clone();
        async move {
            let req = axum::http::Request::post(path)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .unwrap();
            let _: Value = c.request(req).await.unwrap();
        }
    };
    create(
        "/api/v1/namespaces/default/secrets",
        json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
    )
    .await;
    create(
        "/api/v1/namespaces/default/services",
        json!({"metadata": {"name": "db"}, "spec": {"selector": {"app": "db"}, "ports": [{"port": 3306}]}}),
    )
    .await;
    create(
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "cm"}, "data": {"a": "1", "b": "2", "c": "3"}}),
    )
    .await;
    create(
        "/apis/apps/v1/namespaces/default/statefulsets",
        json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "mysql", "image": "mysql:8"}]}}}}),
    )
    .await;
    create(
        "/api/v1/namespaces/default/pods",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}),
    )
    .await;
    create(
        "/api/v1/namespaces/default/persistentvolumeclaims",
        json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
            "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;
    create(
        "/apis/events.k8s.io/v1/namespaces/default/events",
        json!({"metadata": {"name": "e1"}, "regarding": {"kind": "MySQL", "name": "db"}, "note": "hello",
            "reason": "Issued", "type": "Normal", "action": "A", "eventTime": "2024-01-01T00:00:00.000000Z",
            "reportingController": "prov", "reportingInstance": "prov-0"}),
    )
    .await;

    let cases: [(&str, &[&str]); 8] = [
        (
            "/api/v1/namespaces/default/secrets",
            &["NAME", "TYPE", "DATA", "AGE"],
        ),
        (
            "/api/v1/namespaces/default/services",
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
        ),
        (
            "/apis/apps/v1/namespaces/default/statefulsets",
            &["NAME", "READY", "AGE"],
        ),
        (
            "/api/v1/namespaces/default/events",
            &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        ),
        ("/api/v1/namespaces", &["NAME", "STATUS", "AGE"]),
        (
            "/api/v1/namespaces/default/configmaps",
            &["NAME", "DATA", "AGE"],
        ),
        (
            "/api/v1/namespaces/default/pods",
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ),
        (
            "/api/v1/namespaces/default/persistentvolumeclaims",
            &[
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ],
        ),
    ];
    for (path, want) in cases {
        let t = table(&c, path).await;
        assert_eq!(column_names(&t), want, "{path}");
        for r in t["rows"].as_array().unwrap() {
            assert_eq!(
                r["cells"].as_array().unwrap().len(),
                t["columnDefinitions"].as_array().unwrap().len(),
                "{path}"
            );
        }
    }

    let t = table(&c, "/api/v1/namespaces/default/secrets").await;
    let r = row(&t, "tls");
    assert_eq!(
        (&r["Type"], &r["Data"]),
        (&json!("kubernetes.io/tls"), &json!(2))
    );
    let t = table(&c, "/api/v1/namespaces/default/services").await;
    let r = row(&t, "db");
    assert_eq!(r["Type"], "ClusterIP");
    assert!(
        r["Cluster-IP"].as_str().unwrap().starts_with("10."),
        "{r:?}"
    );
    assert_eq!(
        (&r["External-IP"], &r["Port(s)"]),
        (&json!("<none>"), &json!("3306/TCP"))
    );
    assert_eq!(r["Selector"], "app=db");
    let t = table(&c, "/apis/apps/v1/namespaces/default/statefulsets/db").await;
    assert_eq!(row(&t, "db")["Ready"], "0/3");
    let t = table(&c, "/api/v1/namespaces/default/configmaps/cm").await;
    assert_eq!(row(&t, "cm")["Data"], 3);
    let t = table(&c, "/api/v1/namespaces/default/pods/p").await;
    assert_eq!(row(&t, "p")["Ready"], "0/2");
    let t = table(&c, "/api/v1/namespaces").await;
    assert_eq!(row(&t, "default")["Status"], "Active");
    let t = table(&c, "/api/v1/namespaces/default/persistentvolumeclaims").await;
    assert_eq!(row(&t, "data")["StorageClass"], "standard");
    // Events print the same through both APIs.
    for path in [
        "/api/v1/namespaces/default/events",
        "/apis/events.k8s.io/v1/namespaces/default/events",
    ] {
        let t = table(&c, path).await;
        let r = row(&t, "e1");
        assert_eq!(
            (&r["Type"], &r["Reason"], &r["Object"], &r["Message"]),
            (
                &json!("Normal"),
                &json!("Issued"),
                &json!("mysql/db"),
                &json!("hello")
            ),
            "{path}"
        );
        assert_eq!(r["Source"], "prov, prov-0", "{path}");
        assert_eq!(r["Count"], 1, "{path}");
    }
}

fn kubectl_present() -> bool {
    std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn kubectl_describe_and_get_show_events_of_a_custom_resource() {
    if !kubectl_present() {
        println!("kubectl not on PATH: skipping");
        return;
    }
    let (s, c) = server().await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let post = |path: &'static str, body: Value| {
        let c = c.clone();
        async move {
            let req = axum::http::Request::post(path)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .unwrap();
            let v: Value = c.request(req).await.unwrap();
            v
        }
    };
    post(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crd,
    )
    .await;
    let w = post(
        "/apis/example.com/v1/namespaces/default/widgets",
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {}}),
    )
    .await;
    let uid = w["metadata"]["uid"].as_str().unwrap().to_string();
    let recorder = Recorder::new(
        c.clone(),
        Reporter {
            controller: "widget-controller".into(),
            instance: None,
        },
    );
    let widget_ref = ObjectReference {
        api_version: Some("example.com/v1".into()),
        kind: Some("Widget".into()),
        name: Some("w1".into()),
        namespace: Some("default".into()),
        uid: Some(uid),
        ..Default::default()
    };
    recorder
        .publish(
            &RecorderEvent {
                type_: EventType::Warning,
                reason: "IssuerMissing".into(),
                note: Some("issuer ca not found".into()),
                action: "Reconcile".into(),
                secondary: None,
            },
            &widget_ref,
        )
        .await
        .unwrap();

    let dir = std::env::temp_dir().join(format!("testbed-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    s.write_kubeconfig(&kubeconfig, "admin").unwrap();
    let run = |args: &'static [&'static str]| {
        let kc = kubeconfig.clone();
        async move {
            let out = tokio::time::timeout(
                Duration::from_secs(60),
                tokio::process::Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&kc)
                    .args(args)
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
    let described = run(&["describe", "widget", "w1", "-n", "default"]).await;
    let events_section = described
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("{described}"));
    assert!(
        events_section.contains("IssuerMissing")
            && events_section.contains("issuer ca not found")
            && events_section.contains("widget-controller"),
        "{described}"
    );
    let listed = run(&["get", "events", "-n", "default"]).await;
    assert!(
        listed.contains("LAST SEEN")
            && listed.contains("widget/w1")
            && listed.contains("IssuerMissing"),
        "{listed}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
