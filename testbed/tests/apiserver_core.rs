//! Conformance tests of the in-memory API server through kube-rs, as the operators use it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent,
    WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use testbed::apiserver::{ApiServerConfig, TestApiServer, Verb};

async fn server() -> (TestApiServer, kube::Client) {
    let s = TestApiServer::start(ApiServerConfig::default())
        .await
        .unwrap();
    let c = s.client().await;
    (s, c)
}

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"k": "v"}})).unwrap()
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other:?}"),
    }
}

/// Polls `f` until it returns Some, failing after 10 s.
async fn eventually<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn core_crud_and_errors() {
    let (_s, c) = server().await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    let created = secrets
        .create(&PostParams::default(), &secret("a"))
        .await
        .unwrap();
    assert_eq!(created.data.clone().unwrap()["k"].0, b"v");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert!(created.metadata.uid.is_some());
    let err = secrets
        .create(&PostParams::default(), &secret("a"))
        .await
        .unwrap_err();
    let kube::Error::Api(st) = err else { panic!() };
    assert_eq!((st.code, st.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(st.message, "secrets \"a\" already exists");
    let err = secrets.get("nope").await.unwrap_err();
    let kube::Error::Api(st) = err else { panic!() };
    assert_eq!(
        (st.code, st.message.as_str()),
        (404, "secrets \"nope\" not found")
    );
    let missing_ns: Api<Secret> = Api::namespaced(c.clone(), "ghost");
    assert_eq!(
        code(
            missing_ns
                .create(&PostParams::default(), &secret("a"))
                .await
                .unwrap_err()
        ),
        404
    );
    let mut gen_named = secret("");
    gen_named.metadata.name = None;
    gen_named.metadata.generate_name = Some("gen-".into());
    let g = secrets
        .create(&PostParams::default(), &gen_named)
        .await
        .unwrap();
    assert!(g.metadata.name.unwrap().starts_with("gen-"));
    // Optimistic concurrency.
    let mut stale = created.clone();
    secrets
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
        )
        .await
        .unwrap();
    stale.metadata.labels = Some([("y".to_string(), "2".to_string())].into());
    let kube::Error::Api(st) = secrets
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(st.code, 409);
    assert!(st.message.contains("the object has been modified; please apply your changes to the latest version and try again"));
    secrets.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(secrets.get("a").await.unwrap_err()), 404);
    // Namespaces exist at start.
    let nss: Api<Namespace> = Api::all(c.clone());
    assert!(nss.get("kube-system").await.is_ok());
}

#[tokio::test]
async fn immutable_secret_and_statefulset_rules() {
    let (_s, c) = server().await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    let mut s = secret("imm");
    s.immutable = Some(true);
    secrets.create(&PostParams::default(), &s).await.unwrap();
    let kube::Error::Api(st) = secrets
        .patch(
            "imm",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"k": "other"}})),
        )
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(st.code, 422);
    assert_eq!(
        st.message,
        "Secret \"imm\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let kube::Error::Api(st) = secrets
        .patch(
            "imm",
            &PatchParams::default(),
            &Patch::Merge(json!({"type": "kubernetes.io/tls"})),
        )
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert!(
        st.message
            .contains("type: Invalid value: \"kubernetes.io/tls\": field is immutable"),
        "{}",
        st.message
    );

    let sts: Api<StatefulSet> = Api::namespaced(c.clone(), "default");
    let obj: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap();
    let created = sts.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let scaled = sts
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    let kube::Error::Api(st) = sts
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"serviceName": "other"}})),
        )
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(st.code, 422);
    assert!(
        st.message.contains(
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas'"
        ),
        "{}",
        st.message
    );
    let mut bad = obj.clone();
    bad.metadata.name = Some("bad".into());
    bad.spec
        .as_mut()
        .unwrap()
        .template
        .metadata
        .as_mut()
        .unwrap()
        .labels = Some([("app".to_string(), "x".to_string())].into());
    let kube::Error::Api(st) = sts.create(&PostParams::default(), &bad).await.unwrap_err() else {
        panic!()
    };
    assert!(
        st.message
            .contains("`selector` does not match template `labels`"),
        "{}",
        st.message
    );
    // Status subresource split: the main endpoint ignores status, /status ignores the rest.
    let p = sts
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(p.status.map(|s| s.replicas), None);
    let p = sts
        .patch_status(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}, "status": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().replicas, 2);
    assert_eq!(p.spec.unwrap().replicas, Some(3));
    assert_eq!(p.metadata.generation, Some(2));
}

#[tokio::test]
async fn no_op_apply_keeps_resource_version_and_emits_nothing() {
    let (s, c) = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let pp = PatchParams::apply("tester");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}});
    let first = cms.patch("cm", &pp, &Patch::Apply(&body)).await.unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    s.request_log().clear();
    let again = cms.patch("cm", &pp, &Patch::Apply(&body)).await.unwrap();
    assert_eq!(
        again.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    let log = s.request_log().snapshot();
    let apply = log.iter().find(|r| r.verb == Verb::Apply).unwrap();
    assert!(!apply.wrote);
    assert_eq!(apply.field_manager.as_deref(), Some("tester"));
    // A real change is the next event: nothing came from the no-op.
    cms.patch("cm", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "2"}})))
        .await
        .unwrap();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Modified(cm) => assert_eq!(cm.data.unwrap()["a"], "2"),
        other => panic!("unexpected {other:?}"),
    }
    // Apply without fieldManager is refused.
    let err = cms
        .patch("cm", &PatchParams::default(), &Patch::Apply(&body))
        .await
        .unwrap_err();
    assert_eq!(code(err), 422);
}

#[tokio::test]
async fn watch_replay_and_gone_after_history_overflow() {
    let s = TestApiServer::start(ApiServerConfig {
        history_size: 5,
        ..ApiServerConfig::default()
    })
    .await
    .unwrap();
    let c = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let mk = |n: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": n}})).unwrap()
    };
    let a = cms.create(&PostParams::default(), &mk("a")).await.unwrap();
    let rv_a = a.metadata.resource_version.unwrap();
    cms.create(&PostParams::default(), &mk("b")).await.unwrap();
    let mut w = cms
        .watch(&WatchParams::default(), &rv_a)
        .await
        .unwrap()
        .boxed();
    match w.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("b")),
        other => panic!("unexpected {other:?}"),
    }
    for i in 0..10 {
        cms.create(&PostParams::default(), &mk(&format!("x{i}")))
            .await
            .unwrap();
    }
    let mut w = cms
        .watch(&WatchParams::default(), &rv_a)
        .await
        .unwrap()
        .boxed();
    match w.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_with_label_selector_sees_add_modify_delete() {
    let (_s, c) = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let cfg = watcher::Config::default().labels("app=db");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let w = watcher(cms.clone(), cfg).touched_objects();
    let task = tokio::spawn(async move {
        let mut w = w.boxed();
        while let Some(Ok(cm)) = w.next().await {
            let cm: ConfigMap = cm;
            let _ = tx.send((cm.metadata.name.clone().unwrap(), cm.data.clone()));
        }
    });
    let labeled: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "m", "labels": {"app": "db"}}, "data": {"v": "1"}}),
    )
    .unwrap();
    let other: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "o"}})).unwrap();
    cms.create(&PostParams::default(), &other).await.unwrap();
    cms.create(&PostParams::default(), &labeled).await.unwrap();
    assert_eq!(rx.recv().await.unwrap().0, "m");
    cms.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    let (name, data) = rx.recv().await.unwrap();
    assert_eq!((name.as_str(), data.unwrap()["v"].as_str()), ("m", "2"));
    task.abort();

    // Raw watch: an object that stops matching arrives as DELETED.
    let mut w = cms
        .watch(&WatchParams::default().labels("app=db"), "0")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        w.try_next().await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));
    cms.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": null}}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        w.try_next().await.unwrap().unwrap(),
        WatchEvent::Deleted(_)
    ));
}

#[tokio::test]
async fn garbage_collection_policies_and_finalizers() {
    let (_s, c) = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let mk = |n: &str, owner: Option<(&str, &str)>, block: bool| -> ConfigMap {
        let mut v = json!({"metadata": {"name": n}});
        if let Some((on, uid)) = owner {
            v["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": on, "uid": uid, "blockOwnerDeletion": block}]);
        }
        serde_json::from_value(v).unwrap()
    };
    // Background: dependents go with the owner.
    let owner = cms
        .create(&PostParams::default(), &mk("owner", None, false))
        .await
        .unwrap();
    let uid = owner.metadata.uid.clone().unwrap();
    cms.create(
        &PostParams::default(),
        &mk("dep", Some(("owner", &uid)), false),
    )
    .await
    .unwrap();
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually(|| async { cms.get_opt("dep").await.unwrap().is_none().then_some(()) }).await;

    // Orphan: dependents stay and lose the ownerReference.
    let owner = cms
        .create(&PostParams::default(), &mk("owner2", None, false))
        .await
        .unwrap();
    let uid = owner.metadata.uid.clone().unwrap();
    cms.create(
        &PostParams::default(),
        &mk("dep2", Some(("owner2", &uid)), false),
    )
    .await
    .unwrap();
    cms.delete("owner2", &DeleteParams::orphan()).await.unwrap();
    let dep = cms.get("dep2").await.unwrap();
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());

    // Foreground: the owner waits for a blocking dependent held by a finalizer.
    let owner = cms
        .create(&PostParams::default(), &mk("owner3", None, false))
        .await
        .unwrap();
    let uid = owner.metadata.uid.clone().unwrap();
    let mut held = mk("dep3", Some(("owner3", &uid)), true);
    held.metadata.finalizers = Some(vec!["test/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.delete(
        "owner3",
        &DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let o = cms.get("owner3").await.unwrap();
    assert!(o.metadata.deletion_timestamp.is_some());
    assert!(
        o.metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    let d = cms.get("dep3").await.unwrap();
    assert!(d.metadata.deletion_timestamp.is_some());
    // New finalizers cannot be added once deletion started; spec changes still can.
    let err = cms
        .patch(
            "dep3",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["test/hold", "x/y"]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(err), 422);
    cms.patch(
        "dep3",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"still": "writable"}})),
    )
    .await
    .unwrap();
    cms.patch(
        "dep3",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("dep3").await.unwrap().is_none());
    assert!(cms.get_opt("owner3").await.unwrap().is_none());

    // Preconditions.
    let p = cms
        .create(&PostParams::default(), &mk("pre", None, false))
        .await
        .unwrap();
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("wrong".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(code(cms.delete("pre", &dp).await.unwrap_err()), 409);
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: p.metadata.uid,
            resource_version: None,
        }),
        ..Default::default()
    };
    cms.delete("pre", &dp).await.unwrap();
}

#[tokio::test]
async fn namespace_deletion_removes_contents() {
    let (_s, c) = server().await;
    let nss: Api<Namespace> = Api::all(c.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "tmp"}})).unwrap(),
    )
    .await
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "tmp");
    secrets
        .create(&PostParams::default(), &secret("s"))
        .await
        .unwrap();
    nss.delete("tmp", &DeleteParams::default()).await.unwrap();
    assert!(nss.get_opt("tmp").await.unwrap().is_none());
    assert!(secrets.get_opt("s").await.unwrap().is_none());
}

#[tokio::test]
async fn list_pagination_and_selectors() {
    let (_s, c) = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    for i in 0..7 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("c{i}"), "labels": {"even": (i % 2 == 0).to_string()}}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => lp = lp.continue_token(&t),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
    let even = cms
        .list(&ListParams::default().labels("even=true"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 4);
    let one = cms
        .list(&ListParams::default().fields("metadata.name=c3"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    let notin = cms
        .list(&ListParams::default().labels("even notin (true)"))
        .await
        .unwrap();
    assert_eq!(notin.items.len(), 3);
}

#[tokio::test]
async fn fault_injection_errors_and_request_log() {
    let (s, c) = server().await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    secrets
        .create(&PostParams::default(), &secret("f"))
        .await
        .unwrap();
    s.faults().set_error_rate(Some(Verb::Get), 1.0);
    let status = code(secrets.get("f").await.unwrap_err());
    assert!(status == 500 || status == 503, "{status}");
    assert!(secrets.list(&ListParams::default()).await.is_ok());
    s.faults().reset();
    assert!(secrets.get("f").await.is_ok());
    s.faults().set_conflict_rate(1.0);
    let err = secrets
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(err), 409);
    let counts = s.request_log().counts_by_user();
    assert!(
        counts
            .get(&("admin".to_string(), Verb::Get))
            .copied()
            .unwrap_or(0)
            >= 2,
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&("admin".to_string(), Verb::Create)).copied(),
        Some(1)
    );
}
