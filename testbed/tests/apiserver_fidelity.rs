//! Apply preconditions (resourceVersion, uid) and the watch features and faults kube-rs's
//! watcher depends on: streaming lists (`sendInitialEvents`), bookmarks, dropped watches,
//! latency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use testbed::apiserver::{ApiServerConfig, TestApiServer, Verb};

async fn server(config: ApiServerConfig) -> (TestApiServer, kube::Client) {
    let s = TestApiServer::start(config).await.unwrap();
    let c = s.client().await;
    (s, c)
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("not an API error: {other:?}"),
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply("ops-manager")
}

fn cm_apply(name: &str, value: &str, meta: serde_json::Value) -> serde_json::Value {
    let mut metadata = json!({"name": name});
    for (k, v) in meta.as_object().cloned().unwrap_or_default() {
        metadata[k] = v;
    }
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": value}})
}

#[tokio::test]
async fn apply_resource_version_is_a_precondition() {
    let (_s, c) = server(ApiServerConfig::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let created = cms
        .patch(
            "a",
            &apply_params(),
            &Patch::Apply(cm_apply("a", "1", json!({}))),
        )
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    // The live resourceVersion: the apply goes through.
    let applied = cms
        .patch(
            "a",
            &apply_params(),
            &Patch::Apply(cm_apply("a", "2", json!({"resourceVersion": rv}))),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["k"], "2");
    // The object moved on since: 409 with kube's optimistic-lock message, nothing written.
    let st = api_error(
        cms.patch(
            "a",
            &apply_params(),
            &Patch::Apply(cm_apply("a", "3", json!({"resourceVersion": rv}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        st.message,
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(cms.get("a").await.unwrap().data.unwrap()["k"], "2");
}

#[tokio::test]
async fn apply_with_uid_never_recreates_a_deleted_object() {
    let (_s, c) = server(ApiServerConfig::default()).await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    let body = |uid: &str, rv: Option<&str>| {
        let mut meta = json!({"name": "tls", "uid": uid});
        if let Some(rv) = rv {
            meta["resourceVersion"] = json!(rv);
        }
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"k": "v"}})
    };
    let created = secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "tls"}})).unwrap(),
        )
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    // The read uid matches the live object: an ordinary apply.
    secrets
        .patch("tls", &apply_params(), &Patch::Apply(body(&uid, None)))
        .await
        .unwrap();
    // Another uid than the live one: metadata.uid is immutable (422).
    let st = api_error(
        secrets
            .patch(
                "tls",
                &apply_params(),
                &Patch::Apply(body("other-uid", None)),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422, "{}", st.message);
    assert!(
        st.message
            .contains("metadata.uid: Invalid value: \"other-uid\": field is immutable"),
        "{}",
        st.message
    );
    secrets
        .delete("tls", &DeleteParams::default())
        .await
        .unwrap();
    // Deleted meanwhile: an apply naming the uid it read is a conflict, not a create.
    let st = api_error(
        secrets
            .patch("tls", &apply_params(), &Patch::Apply(body(&uid, Some(&rv))))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        st.message,
        format!(
            "Operation cannot be fulfilled on secrets \"tls\": uid mismatch: the provided object specified uid {uid}, and no existing object was found"
        )
    );
    assert_eq!(api_error(secrets.get("tls").await.unwrap_err()).code, 404);
    // kube-apiserver does not check a resourceVersion when apply creates (store.go's
    // create-on-update branch): only the uid stops the re-creation.
    let recreated = secrets
        .patch(
            "tls",
            &apply_params(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "tls", "resourceVersion": rv}, "stringData": {"k": "v"}})),
        )
        .await
        .unwrap();
    assert_ne!(recreated.metadata.uid.unwrap(), uid);
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

/// Requests of `verb` on configmaps so far.
fn requests(s: &TestApiServer, verb: Verb) -> usize {
    s.request_log()
        .snapshot()
        .iter()
        .filter(|r| r.verb == verb && r.resource == "configmaps")
        .count()
}

async fn next_event<K, S>(stream: &mut S) -> watcher::Event<K>
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("a watcher event in time")
        .unwrap()
        .expect("the watcher stream continues")
}

fn names<K: ResourceExt>(objs: &[K]) -> Vec<String> {
    let mut n: Vec<String> = objs.iter().map(|o| o.name_any()).collect();
    n.sort();
    n
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_without_a_list() {
    let (s, c) = server(ApiServerConfig::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    for n in ["a", "b"] {
        cms.create(&PostParams::default(), &configmap(n))
            .await
            .unwrap();
    }
    let mut stream = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    assert!(matches!(
        next_event(&mut stream).await,
        watcher::Event::Init
    ));
    let mut initial = Vec::new();
    loop {
        match next_event(&mut stream).await {
            watcher::Event::InitApply(o) => initial.push(o),
            // Only reached once the server sent the `k8s.io/initial-events-end` bookmark.
            watcher::Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(names(&initial), ["a", "b"]);
    cms.create(&PostParams::default(), &configmap("c"))
        .await
        .unwrap();
    match next_event(&mut stream).await {
        watcher::Event::Apply(o) => assert_eq!(o.metadata.name.as_deref(), Some("c")),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        requests(&s, Verb::List),
        0,
        "a streaming list sends no LIST"
    );
    assert_eq!(requests(&s, Verb::Watch), 1);
}

type RawWatch = futures::stream::BoxStream<'static, kube::Result<WatchEvent<ConfigMap>>>;

async fn next_raw(s: &mut RawWatch) -> WatchEvent<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(10), s.try_next())
        .await
        .expect("a watch event in time")
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn bookmarks_only_for_watches_that_ask_and_never_ahead_of_events() {
    let (_s, c) = server(ApiServerConfig {
        bookmark_interval: Duration::from_millis(50),
        ..ApiServerConfig::default()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &configmap("a"))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    let mut with = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut without = cms
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    // The periodic bookmark carries the latest resourceVersion.
    match next_raw(&mut with).await {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    let second = cms
        .create(&PostParams::default(), &configmap("b"))
        .await
        .unwrap();
    let second_rv: u64 = second.metadata.resource_version.unwrap().parse().unwrap();
    // The event comes before any bookmark at or past its resourceVersion.
    loop {
        match next_raw(&mut with).await {
            WatchEvent::Added(o) => {
                assert_eq!(o.metadata.name.as_deref(), Some("b"));
                break;
            }
            WatchEvent::Bookmark(b) => {
                let brv: u64 = b.metadata.resource_version.parse().unwrap();
                assert!(brv < second_rv, "bookmark {brv} overtook event {second_rv}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The watch without bookmarks saw none while the other got at least one.
    match next_raw(&mut without).await {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
        other => panic!("expected ADDED, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_rides_out_dropped_watches() {
    let (s, c) = server(ApiServerConfig::default()).await;
    s.faults()
        .drop_watches_every(Some(Duration::from_millis(100)));
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    cms.create(&PostParams::default(), &configmap("before"))
        .await
        .unwrap();
    // The watcher is driven in its own task: it only re-watches while polled.
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut stream = watcher(cms.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    let driver = tokio::spawn(async move {
        while let Ok(Some(o)) = stream.try_next().await {
            if tx.send(o.name_any()).is_err() {
                return;
            }
        }
    });
    let mut next_seen = async || {
        tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("a watcher event in time")
            .expect("the watcher keeps running")
    };
    assert_eq!(next_seen().await, "before");
    // Wait until the server has cut the watch at least twice.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while requests(&s, Verb::Watch) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watches were not dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cms.create(&PostParams::default(), &configmap("after"))
        .await
        .unwrap();
    // Seen once, after the drops (a relist would replay "before" first).
    assert_eq!(next_seen().await, "after");
    driver.abort();
    // It resumed from its resourceVersion each time instead of listing again.
    assert_eq!(requests(&s, Verb::List), 1);
}

#[tokio::test]
async fn latency_delays_every_request_until_reset() {
    let (s, c) = server(ApiServerConfig::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let latency = Duration::from_millis(300);
    s.faults().set_latency(latency);
    // Only lower bounds: a sleep never ends early, so these cannot flake.
    let started = tokio::time::Instant::now();
    cms.create(&PostParams::default(), &configmap("slow"))
        .await
        .unwrap();
    cms.get("slow").await.unwrap();
    assert!(started.elapsed() >= 2 * latency, "{:?}", started.elapsed());
    // The delayed requests were served normally.
    let log = s.request_log().snapshot();
    let served: Vec<(Verb, u16)> = log
        .iter()
        .filter(|r| r.resource == "configmaps")
        .map(|r| (r.verb, r.status))
        .collect();
    assert_eq!(served, [(Verb::Create, 201), (Verb::Get, 200)]);
    s.faults().reset();
    // After a reset a request is not held back: it finishes well within one latency period
    // of a much longer latency, which a still-active delay could not.
    s.faults().set_latency(Duration::from_secs(3600));
    s.faults().reset();
    tokio::time::timeout(Duration::from_secs(60), cms.get("slow"))
        .await
        .expect("no latency after reset")
        .unwrap();
}
