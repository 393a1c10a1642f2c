//! Requests whose answer the testbed once got wrong, sent to whichever API server the run uses
//! (the testbed, or the real kube-apiserver named by `DBTLS_E2E_KUBECONFIG`) and held to
//! kube-apiserver's answer. Each test pins one divergence found between the two
//! (`docs/testbed.md`): the same assertions pass on both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dbtls_contract::api::MySQL;
use dbtls_contract::{
    OPS_MANAGER_FINALIZER, OPS_MANAGER_MANAGER, OPS_MANAGER_REPORTER, PROVISIONER_FINALIZER,
    PROVISIONER_MANAGER, PROVISIONER_REPORTER,
};
use dbtls_runtime::{events, finalizer};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use testbed::apiserver::ApiServerConfig;
use testbed::apiserver::qualified_name::qualified_name_errors;
use testbed::harness::cluster::{self, Cluster};
use testbed::harness::crds;

/// One test's namespace on the run's API server; deleted at the end.
struct Conformance {
    _cluster: Cluster,
    client: kube::Client,
    namespace: String,
}

impl Conformance {
    async fn start() -> Conformance {
        let cluster = Cluster::connect(ApiServerConfig::default()).await.unwrap();
        let client = cluster.client_as("admin").await.unwrap();
        crds::install(&client, cluster::cert_manager().unwrap())
            .await
            .unwrap();
        let namespace = format!("conformance-{:08x}", rand::random::<u32>());
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
            )
            .await
            .unwrap();
        Conformance {
            _cluster: cluster,
            client,
            namespace,
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn mysql(&self, name: &str) -> MySQL {
        let db = json!({
            "apiVersion": "kubedb.com/v1", "kind": "MySQL",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"version": "8.4.3", "storage": {"resources": {"requests": {"storage": "1Gi"}}}},
        });
        self.api::<MySQL>()
            .patch(name, &PatchParams::apply("user"), &Patch::Apply(&db))
            .await
            .unwrap()
    }

    async fn finish(self) {
        // Nothing here carries a finalizer any more; the namespace goes with its objects.
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.namespace, &DeleteParams::default())
            .await
            .unwrap();
    }
}

fn status_of(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("not an API error: {other:?}"),
    }
}

fn apply_metadata(db: &MySQL, metadata: Value) -> Value {
    let mut meta = json!({"name": db.name_any(), "namespace": db.namespace()});
    for (k, v) in metadata.as_object().cloned().unwrap_or_default() {
        meta[k] = v;
    }
    json!({"apiVersion": "kubedb.com/v1", "kind": "MySQL", "metadata": meta})
}

/// kube-apiserver merges an applied `resourceVersion: null` (or "") into a custom resource and
/// then refuses the update (custom resources allow no unconditional update): the provisioner's
/// finalizer apply once carried such a null and never got through.
#[tokio::test]
async fn apply_that_erases_a_custom_resources_resource_version_is_refused() {
    let c = Conformance::start().await;
    let db = c.mysql("db").await;
    let api = c.api::<MySQL>();
    let manager = PatchParams::apply("probe").force();
    for (what, rv) in [("null", Value::Null), ("empty", json!(""))] {
        let body = apply_metadata(
            &db,
            json!({"resourceVersion": rv, "finalizers": ["a.example/f"]}),
        );
        let status = status_of(
            api.patch("db", &manager, &Patch::Apply(&body))
                .await
                .unwrap_err(),
        );
        assert_eq!(status.code, 422, "{what}: {status:?}");
        assert_eq!(
            status.message,
            "mysqls.kubedb.com \"db\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update",
            "{what}"
        );
        let body = apply_metadata(&db, json!({"resourceVersion": rv}));
        let mut body = body;
        body["status"] = json!({"phase": "Provisioning"});
        let status = status_of(
            api.patch_status("db", &manager, &Patch::Apply(&body))
                .await
                .unwrap_err(),
        );
        assert_eq!(status.code, 422, "status {what}: {status:?}");
    }
    // A null uid is merged the same way but is no precondition: accepted.
    let body = apply_metadata(&db, json!({"uid": null, "finalizers": ["a.example/f"]}));
    let applied = api
        .patch("db", &manager, &Patch::Apply(&body))
        .await
        .unwrap();
    assert!(applied.finalizers().contains(&"a.example/f".to_string()));
    let body = apply_metadata(&db, json!({"finalizers": []}));
    api.patch("db", &manager, &Patch::Apply(&body))
        .await
        .unwrap();
    c.finish().await;
}

/// Built-in kinds allow unconditional updates: the same null resourceVersion is accepted.
#[tokio::test]
async fn apply_with_a_null_resource_version_to_a_secret_is_unconditional() {
    let c = Conformance::start().await;
    let secrets = c.api::<Secret>();
    let manager = PatchParams::apply("probe").force();
    let body = |labels: Value| {
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "s", "namespace": c.namespace, "resourceVersion": null, "labels": labels}})
    };
    // Creating with a null resourceVersion, then updating with one.
    secrets
        .patch("s", &manager, &Patch::Apply(body(json!({"a": "1"}))))
        .await
        .unwrap();
    let updated = secrets
        .patch("s", &manager, &Patch::Apply(body(json!({"a": "2"}))))
        .await
        .unwrap();
    assert_eq!(updated.labels()["a"], "2");
    c.finish().await;
}

/// The operators' own finalizer writes, exactly as they send them, go through and stay each
/// manager's own entry.
#[tokio::test]
async fn both_operators_finalizer_applies_are_accepted_and_kept_apart() {
    let c = Conformance::start().await;
    let db = c.mysql("db").await;
    let api = c.api::<MySQL>();
    finalizer::add(&api, &db, PROVISIONER_MANAGER, PROVISIONER_FINALIZER)
        .await
        .unwrap();
    finalizer::add(&api, &db, OPS_MANAGER_MANAGER, OPS_MANAGER_FINALIZER)
        .await
        .unwrap();
    let both = api.get("db").await.unwrap();
    assert_eq!(both.finalizers().len(), 2, "{:?}", both.finalizers());
    finalizer::remove(&api, &both, PROVISIONER_MANAGER, PROVISIONER_FINALIZER)
        .await
        .unwrap();
    let left = api.get("db").await.unwrap();
    assert_eq!(left.finalizers(), [OPS_MANAGER_FINALIZER.to_string()]);
    // Removing at a stale resourceVersion is a no-op (409 swallowed), not an error.
    finalizer::remove(&api, &both, OPS_MANAGER_MANAGER, OPS_MANAGER_FINALIZER)
        .await
        .unwrap();
    assert_eq!(api.get("db").await.unwrap().finalizers().len(), 1);
    finalizer::remove(&api, &left, OPS_MANAGER_MANAGER, OPS_MANAGER_FINALIZER)
        .await
        .unwrap();
    assert!(api.get("db").await.unwrap().finalizers().is_empty());
    c.finish().await;
}

fn event(namespace: &str, changes: Value) -> Value {
    let mut event = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": format!("db.{:x}", rand::random::<u64>()), "namespace": namespace},
        "eventTime": "2026-12-03T06:40:00.000000Z",
        "reportingController": "kubedb.com/provisioner", "reportingInstance": "pod-1",
        "action": "Provision", "reason": "Created", "type": "Normal", "note": "hi",
        "regarding": {"apiVersion": "kubedb.com/v1", "kind": "MySQL", "name": "db", "namespace": namespace},
    });
    for (k, v) in changes.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            event.as_object_mut().unwrap().remove(&k);
        } else {
            event[k] = v;
        }
    }
    event
}

/// events.k8s.io/v1 validation as kube-apiserver does it: the operators' Events were all
/// refused once (a reporter name with a space) and the testbed stored them.
#[tokio::test]
async fn events_are_validated_like_kube_apiserver() {
    let c = Conformance::start().await;
    let api = c.api::<Event>();
    let create = |changes: Value| {
        let api = api.clone();
        let body: Event = serde_json::from_value(event(&c.namespace, changes)).unwrap();
        async move { api.create(&PostParams::default(), &body).await }
    };
    create(json!({})).await.unwrap();
    let refused = [
        (
            json!({"reportingController": "KubeDB Provisioner"}),
            "reportingController: Invalid value: \"KubeDB Provisioner\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            json!({"reportingController": "a".repeat(64)}),
            "name part must be no more than 63 bytes",
        ),
        (
            json!({"reportingInstance": null}),
            "reportingInstance: Required value",
        ),
        (
            json!({"reportingInstance": "i".repeat(129)}),
            "reportingInstance: Invalid value: \"\": can have at most 128 characters",
        ),
        (json!({"action": null}), "action: Required value"),
        (
            json!({"reason": "r".repeat(129)}),
            "reason: Invalid value: \"\": can have at most 128 characters",
        ),
        (
            json!({"note": "x".repeat(1025)}),
            "message: Invalid value: \"\": can have at most 1024 characters",
        ),
        // The limit is in bytes: 600 two-byte characters are over it.
        (
            json!({"note": "é".repeat(600)}),
            "can have at most 1024 characters",
        ),
        (
            json!({"type": "Info"}),
            "type: Invalid value: \"\": has invalid value: Info",
        ),
        (json!({"eventTime": null}), "eventTime: Required value"),
    ];
    for (changes, expected) in refused {
        let status = status_of(create(changes.clone()).await.unwrap_err());
        assert_eq!(status.code, 422, "{changes}: {status:?}");
        assert!(
            status.message.contains(expected),
            "{changes}: {}",
            status.message
        );
    }
    for accepted in [
        json!({"note": "x".repeat(1024)}),
        json!({"reportingController": format!("kubedb.com/{}", "a".repeat(63))}),
        json!({"reportingInstance": "a b/c"}),
    ] {
        create(accepted.clone())
            .await
            .unwrap_or_else(|e| panic!("{accepted}: {e}"));
    }
    c.finish().await;
}

/// The operators' reporters are qualified names, and their Events, notes of any length
/// included, are stored (a 1,000-character cut once still sent up to 4 KiB of UTF-8).
#[tokio::test]
async fn the_operators_events_are_stored() {
    for reporter in [PROVISIONER_REPORTER, OPS_MANAGER_REPORTER] {
        assert_eq!(
            qualified_name_errors(reporter),
            Vec::<String>::new(),
            "{reporter}"
        );
    }
    let c = Conformance::start().await;
    let db = c.mysql("db").await;
    let regarding: ObjectReference = db.object_ref(&());
    let long_note = "é".repeat(3000);
    for reporter in [PROVISIONER_REPORTER, OPS_MANAGER_REPORTER] {
        let recorder = events::Recorder::new(c.client.clone(), reporter);
        events::publish(
            &recorder,
            &regarding,
            true,
            "WaitingForTLSSecrets",
            "Provision",
            &long_note,
        )
        .await;
    }
    let stored = c.api::<Event>().list(&ListParams::default()).await.unwrap();
    let ours: Vec<&Event> = stored
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("WaitingForTLSSecrets"))
        .collect();
    assert_eq!(ours.len(), 2, "both Events stored");
    for event in ours {
        let note = event.note.as_deref().unwrap_or_default();
        assert!(
            note.len() <= events::NOTE_LIMIT && note.starts_with("éé"),
            "{}",
            note.len()
        );
    }
    c.finish().await;
}

/// Repeats of an Event are one Event whose `series` counts them (the recorder sends only the
/// series), each related pod keeps its own, and a repeat after its Event was deleted (expired
/// on the server) starts a new Event rather than failing.
#[tokio::test]
async fn repeated_events_are_one_series_and_a_deleted_one_starts_again() {
    let c = Conformance::start().await;
    let db = c.mysql("db").await;
    let regarding: ObjectReference = db.object_ref(&());
    let recorder = events::Recorder::new(c.client.clone(), PROVISIONER_REPORTER);
    let pod = |name: &str| ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(name.into()),
        namespace: Some(c.namespace.clone()),
        ..ObjectReference::default()
    };
    let say = |related: Option<ObjectReference>, note: &'static str| {
        events::publish_related(
            &recorder,
            &regarding,
            related,
            true,
            "Waiting",
            "Provision",
            note,
        )
    };
    say(None, "first").await;
    say(None, "second").await;
    say(None, "third").await;
    say(Some(pod("db-0")), "pod").await;
    let events = c.api::<Event>();
    let ours = async || -> Vec<Event> {
        let all = events.list(&ListParams::default()).await.unwrap().items;
        all.into_iter()
            .filter(|e| e.reason.as_deref() == Some("Waiting"))
            .collect()
    };
    let stored = ours().await;
    assert_eq!(
        stored.len(),
        2,
        "one series for the database, one for its pod: {stored:?}"
    );
    let series = stored.iter().find(|e| e.related.is_none()).unwrap();
    assert_eq!(series.series.as_ref().map(|s| s.count), Some(3));
    assert_eq!(
        series.note.as_deref(),
        Some("first"),
        "a series keeps its first note"
    );
    let on_pod = stored.iter().find(|e| e.related.is_some()).unwrap();
    assert!(on_pod.series.is_none(), "seen once");

    events
        .delete(&series.name_any(), &DeleteParams::default())
        .await
        .unwrap();
    say(None, "after the delete").await;
    let again = ours().await;
    let fresh = again
        .iter()
        .find(|e| e.related.is_none())
        .expect("a new Event for the repeat");
    assert_ne!(fresh.name_any(), series.name_any());
    assert_eq!(fresh.note.as_deref(), Some("after the delete"));
    assert!(fresh.series.is_none(), "a new series starts at one");
    c.finish().await;
}

/// Finalizers are qualified names (`ValidateObjectMeta`), on every kind and every write.
#[tokio::test]
async fn finalizers_must_be_qualified_names() {
    let c = Conformance::start().await;
    c.mysql("db").await;
    let patch = Patch::Merge(json!({"metadata": {"finalizers": ["Bad Fin"]}}));
    let status = status_of(
        c.api::<MySQL>()
            .patch("db", &PatchParams::default(), &patch)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "MySQL.kubedb.com \"db\" is invalid: metadata.finalizers: Invalid value: \"Bad Fin\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    );
    c.finish().await;
}

/// What the operators' writes of their own objects rest on: a create-by-apply without force
/// never overwrites an object someone else made after the operator looked (it conflicts), and
/// an update carrying the uid the operator read never lands on a replacement.
#[tokio::test]
async fn operator_writes_never_land_on_an_object_someone_else_made() {
    use dbtls_runtime::ssa;
    use k8s_openapi::api::core::v1::Service;
    let c = Conformance::start().await;
    let services = c.api::<Service>();
    let theirs: Service = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "theirs"}},
    }))
    .unwrap();
    // Created with a plain POST, as `kubectl create` does.
    let theirs = services
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let ours = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "labels": {"app.kubernetes.io/managed-by": "kubedb.com"}},
        "spec": {"ports": [{"name": "mysql", "port": 3306}], "selector": {"app": "ours"}},
    });
    let status = status_of(
        ssa::create(&services, "db", PROVISIONER_MANAGER, &ours)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 409, "{status:?}");
    let after = services.get("db").await.unwrap();
    assert_eq!(
        after.resource_version(),
        theirs.resource_version(),
        "left untouched"
    );

    // The operator's own object, replaced by someone else's between its read and its write.
    services
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    let mine = ssa::create(&services, "db", PROVISIONER_MANAGER, &ours)
        .await
        .unwrap();
    services
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    let replacement = services
        .create(&PostParams::default(), &theirs_again())
        .await
        .unwrap();
    let status = status_of(
        ssa::update(
            &services,
            "db",
            PROVISIONER_MANAGER,
            &ours,
            &mine.uid().unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 409, "{status:?}");
    assert_eq!(
        services.get("db").await.unwrap().resource_version(),
        replacement.resource_version()
    );
    c.finish().await;
}

fn theirs_again() -> k8s_openapi::api::core::v1::Service {
    serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "theirs"}},
    }))
    .unwrap()
}

/// An eviction carries the UID of the pod it was meant for: a pod of the same name created
/// since is left running (the renewal path once restarted a replacement pod because its watch
/// cache still showed the evicted one; the testbed then ignored the Eviction's deleteOptions).
#[tokio::test]
async fn an_eviction_for_a_replaced_pod_leaves_the_new_one_alone() {
    use k8s_openapi::api::core::v1::Pod;
    let c = Conformance::start().await;
    let pods = c.api::<Pod>();
    let pod = || -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "db-0"},
            "spec": {"containers": [{"name": "mysql", "image": "mysql:8.4.3"}]},
        }))
        .unwrap()
    };
    let gone = pods.create(&PostParams::default(), &pod()).await.unwrap();
    pods.delete("db-0", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let gone_for_good = || async { pods.get_opt("db-0").await.unwrap().is_none() };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !gone_for_good().await {
        assert!(std::time::Instant::now() < deadline, "db-0 never went");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let replacement = pods.create(&PostParams::default(), &pod()).await.unwrap();
    // As the ops-manager sends it (kube's `Api::evict` misspells deleteOptions).
    let evict_uid = |uid: String| {
        let pods = pods.clone();
        async move {
            let eviction = json!({
                "apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": "db-0"},
                "deleteOptions": {"preconditions": {"uid": uid}},
            });
            pods.create_subresource::<_, Value>(
                "eviction",
                "db-0",
                &PostParams::default(),
                &eviction,
            )
            .await
        }
    };
    let status = status_of(evict_uid(gone.uid().unwrap()).await.unwrap_err());
    assert_eq!(status.code, 409, "{status:?}");
    let still = pods.get("db-0").await.unwrap();
    assert_eq!(still.uid(), replacement.uid());
    assert!(still.metadata.deletion_timestamp.is_none(), "left running");

    evict_uid(replacement.uid().unwrap()).await.unwrap();
    let after = pods.get_opt("db-0").await.unwrap();
    assert!(
        after.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
        "the pod it was meant for goes"
    );
    c.finish().await;
}
