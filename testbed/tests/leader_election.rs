//! Leader election (`dbtls_runtime::leader`) against the testbed API server: only one
//! contender works at a time, a successor takes over when the leader stops or dies, and a leader
//! whose Lease is taken away stops its work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dbtls_runtime::leader::{LeaseTimings, run_as_leader_with};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use testbed::apiserver::{ApiServerConfig, TestApiServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const NS: &str = "default";
const LEASE: &str = "dbtls-test";

fn timings() -> LeaseTimings {
    LeaseTimings {
        lease_duration: Duration::from_secs(2),
        renew_interval: Duration::from_millis(200),
        renew_deadline: Duration::from_secs(1),
        retry_period: Duration::from_millis(100),
    }
}

/// Counts the contenders working right now and the most that ever worked at once.
#[derive(Clone, Default)]
struct Activity {
    active: Arc<AtomicUsize>,
    max_active: Arc<AtomicUsize>,
    started: Arc<std::sync::Mutex<Vec<&'static str>>>,
}

struct Working(Arc<AtomicUsize>);
impl Drop for Working {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Activity {
    fn running(&self) -> Vec<&'static str> {
        self.started.lock().unwrap().clone()
    }
}

type Contender = (
    JoinHandle<Result<&'static str, dbtls_runtime::leader::LeaderError>>,
    oneshot::Sender<()>,
);

fn contender(client: kube::Client, name: &'static str, activity: Activity) -> Contender {
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let work = {
            let activity = activity.clone();
            async move {
                let now = activity.active.fetch_add(1, Ordering::SeqCst) + 1;
                let _working = Working(activity.active.clone());
                activity.max_active.fetch_max(now, Ordering::SeqCst);
                activity.started.lock().unwrap().push(name);
                let _ = stopped.await;
                name
            }
        };
        run_as_leader_with(timings(), client, NS, LEASE, name, work).await
    });
    (handle, stop)
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    leases
        .get_opt(LEASE)
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn one_leader_at_a_time_and_successor_takes_over_on_stop() {
    let server = TestApiServer::start(ApiServerConfig::default())
        .await
        .unwrap();
    let client = server.client().await;
    let activity = Activity::default();
    let (a, stop_a) = contender(client.clone(), "a", activity.clone());
    let (b, stop_b) = contender(client.clone(), "b", activity.clone());

    eventually("a leader works", async || !activity.running().is_empty()).await;
    let first = activity.running()[0];
    assert_eq!(holder(&client).await.as_deref(), Some(first));
    // The follower keeps polling while the leader renews, and does not start.
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let renewed_at = leases.get(LEASE).await.unwrap().spec.unwrap().renew_time;
    eventually("the leader renews", async || {
        leases.get(LEASE).await.unwrap().spec.unwrap().renew_time != renewed_at
    })
    .await;
    assert_eq!(activity.running(), vec![first]);

    let (first_handle, first_stop, second_handle, second_stop, second) = if first == "a" {
        (a, stop_a, b, stop_b, "b")
    } else {
        (b, stop_b, a, stop_a, "a")
    };
    first_stop.send(()).unwrap();
    assert_eq!(first_handle.await.unwrap().unwrap(), first);
    eventually("the follower takes over", async || {
        activity.running().len() == 2
    })
    .await;
    assert_eq!(activity.running(), vec![first, second]);
    assert_eq!(holder(&client).await.as_deref(), Some(second));

    second_stop.send(()).unwrap();
    assert_eq!(second_handle.await.unwrap().unwrap(), second);
    assert_eq!(activity.max_active.load(Ordering::SeqCst), 1);
    // The last leader released the Lease.
    assert_eq!(holder(&client).await.as_deref(), Some(""));
}

#[tokio::test]
async fn successor_takes_over_after_the_leader_dies_without_releasing() {
    let server = TestApiServer::start(ApiServerConfig::default())
        .await
        .unwrap();
    let client = server.client().await;
    let activity = Activity::default();
    let (a, _stop_a) = contender(client.clone(), "a", activity.clone());
    eventually("a leads", async || activity.running() == vec!["a"]).await;
    let (b, _stop_b) = contender(client.clone(), "b", activity.clone());
    // Kill a (no release): b must wait for the Lease to expire, then lead.
    a.abort();
    assert!(a.await.unwrap_err().is_cancelled());
    eventually("b takes over", async || {
        activity.running() == vec!["a", "b"]
    })
    .await;
    assert_eq!(holder(&client).await.as_deref(), Some("b"));
    assert_eq!(activity.max_active.load(Ordering::SeqCst), 1);
    b.abort();
}

#[tokio::test]
async fn leader_stops_working_when_its_lease_is_taken() {
    let server = TestApiServer::start(ApiServerConfig::default())
        .await
        .unwrap();
    let client = server.client().await;
    let activity = Activity::default();
    let (a, _stop_a) = contender(client.clone(), "a", activity.clone());
    eventually("a leads", async || activity.running() == vec!["a"]).await;

    // Another party (a replica with a different view, or an operator by hand) takes the Lease.
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    leases
        .patch(
            LEASE,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 60}}),
            ),
        )
        .await
        .unwrap();
    let err = a.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("held by intruder"), "{err}");
    // The work was dropped (aborted), not left running.
    assert_eq!(activity.active.load(Ordering::SeqCst), 0);
}

/// The election's safety rests on this: an apply carrying a stale resourceVersion is refused, so
/// of two contenders that saw the same expired Lease only the first write wins.
#[tokio::test]
async fn lease_apply_with_a_stale_resource_version_conflicts() {
    let server = TestApiServer::start(ApiServerConfig::default())
        .await
        .unwrap();
    let client = server.client().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let apply = |holder: &str, rv: Option<String>| {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE, "resourceVersion": rv},
            "spec": {"holderIdentity": holder},
        })
    };
    let params = PatchParams::apply("dbtls-leader-election").force();
    let created = leases
        .patch(LEASE, &params, &Patch::Apply(apply("a", None)))
        .await
        .unwrap();
    let stale = created.metadata.resource_version.clone();
    leases
        .patch(LEASE, &params, &Patch::Apply(apply("b", stale.clone())))
        .await
        .unwrap();
    let err = leases
        .patch(LEASE, &params, &Patch::Apply(apply("c", stale)))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err:?}")
    };
    assert_eq!(status.code, 409);
    assert_eq!(holder(&client).await.as_deref(), Some("b"));
}
