//! Leader election on a `coordination.k8s.io/v1` Lease, so that several replicas of an operator
//! can run while only one reconciles (two writers would fight over the same objects).
//!
//! Written here rather than with `kube-lease-manager` (which fits kube 5) because its background
//! loop keeps reporting "leader" while renewals fail: a replica cut off from the API server would
//! keep reconciling after its Lease expired and another replica took over. This module steps down
//! when no renewal succeeded within `renew_deadline` (< lease duration), as client-go does.
//!
//! Protocol (client-go's, with server-side apply): every write carries the live
//! `metadata.resourceVersion` as a precondition, so of two contenders racing for an expired Lease
//! exactly one wins (the other gets 409). A Lease counts as expired when its record (holder,
//! renewTime) has not changed for `leaseDurationSeconds` *as measured by this process's monotonic
//! clock*, so clock skew between nodes cannot make a follower take over early.
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::time::Instant;

/// Why leader election stopped the work.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "renew deadline {renew_deadline:?} must be shorter than the lease duration {lease_duration:?}"
    )]
    Timings {
        renew_deadline: Duration,
        lease_duration: Duration,
    },
    #[error("lost leadership of Lease {lease}: {reason}")]
    Lost { lease: String, reason: String },
}

/// Field manager of the Lease writes (all replicas share it: ownership of the Lease fields does
/// not matter, the resourceVersion precondition is what serialises contenders).
pub const LEASE_FIELD_MANAGER: &str = "dbtls-leader-election";

/// Flags of leader election, flattened into each operator's command line.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct LeaderArgs {
    /// Run leader election so that only one replica reconciles; needed when replicas > 1.
    #[arg(long, env = "DBTLS_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    /// Namespace of the Lease (the Deployment sets it to the pod's namespace).
    #[arg(long, env = "DBTLS_LEASE_NAMESPACE", default_value = "dbtls-system")]
    pub lease_namespace: String,
    /// Name of the Lease; defaults to the operator's name (dbtls-provisioner, dbtls-ops-manager).
    #[arg(long, env = "DBTLS_LEASE_NAME")]
    pub lease_name: Option<String>,
}

impl LeaderArgs {
    /// The Lease name: `--lease-name`, else `default_name` (the operator's name).
    pub fn lease_name_or(&self, default_name: &str) -> String {
        self.lease_name
            .clone()
            .unwrap_or_else(|| default_name.to_string())
    }
}

/// This replica's identity in the Lease: the pod name (`POD_NAME`, else `HOSTNAME`, which is the
/// pod name in Kubernetes), plus the process id so that two processes on one host differ.
pub fn default_identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "dbtls".to_string());
    format!("{host}_{}", std::process::id())
}

/// Runs `work` directly without `--leader-elect`, else as the leader of the Lease
/// `--lease-name` (default `operator`) in `--lease-namespace`.
pub async fn run<F: Future>(
    args: &LeaderArgs,
    client: kube::Client,
    operator: &str,
    work: F,
) -> Result<F::Output, LeaderError> {
    if !args.leader_elect {
        return Ok(work.await);
    }
    run_as_leader(
        client,
        &args.lease_namespace,
        &args.lease_name_or(operator),
        &default_identity(),
        work,
    )
    .await
}

/// Timings of the election (client-go's defaults, except the 5 s renew period).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTimings {
    /// Written to `leaseDurationSeconds`: how long followers wait after the last renewal.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_interval: Duration,
    /// The leader steps down when no renewal succeeded for this long; must be shorter than
    /// `lease_duration` so that it stops before anybody else may start.
    pub renew_deadline: Duration,
    /// How often followers check the Lease, and the leader retries a failed renewal.
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Waits to become the leader of Lease `namespace/lease_name`, then runs `work` while renewing
/// the Lease. Returns `work`'s output when it finishes (releasing the Lease so that a successor
/// takes over at once); if leadership is lost first, `work` is dropped (aborted) and an error
/// is returned: the caller should exit and let Kubernetes restart it as a follower.
pub async fn run_as_leader<F: Future>(
    client: kube::Client,
    namespace: &str,
    lease_name: &str,
    identity: &str,
    work: F,
) -> Result<F::Output, LeaderError> {
    run_as_leader_with(
        LeaseTimings::default(),
        client,
        namespace,
        lease_name,
        identity,
        work,
    )
    .await
}

/// [`run_as_leader`] with explicit timings (tests use short ones).
pub async fn run_as_leader_with<F: Future>(
    timings: LeaseTimings,
    client: kube::Client,
    namespace: &str,
    lease_name: &str,
    identity: &str,
    work: F,
) -> Result<F::Output, LeaderError> {
    if timings.renew_deadline >= timings.lease_duration {
        return Err(LeaderError::Timings {
            renew_deadline: timings.renew_deadline,
            lease_duration: timings.lease_duration,
        });
    }
    let mut elector = Elector {
        api: Api::namespaced(client, namespace),
        lease_name: lease_name.to_string(),
        identity: identity.to_string(),
        timings,
        observed: None,
    };
    elector.acquire().await;
    tracing::info!(lease = %lease_name, %namespace, %identity, "became leader");
    tokio::select! {
        output = work => {
            elector.release().await;
            Ok(output)
        }
        lost = elector.keep_renewing() => {
            tracing::error!(lease = %lease_name, %namespace, %identity, reason = %lost, "lost leadership, stopping");
            Err(LeaderError::Lost {
                lease: format!("{namespace}/{lease_name}"),
                reason: lost,
            })
        }
    }
}

/// The part of a Lease that tells who holds it; a change of it restarts the expiry clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    pub holder: Option<String>,
    pub renew_time: Option<MicroTime>,
    pub duration: Option<Duration>,
}

impl LeaseRecord {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_time: spec.renew_time,
            duration: spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
        }
    }
}

/// What a contender should do with the Lease as last observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder stopped renewing: take it.
    Acquire,
    /// Somebody else holds it and renews it.
    Follow,
}

/// The pure election rule. `unchanged_since` is when (on our monotonic clock) the record was
/// first seen as it is now; the record's own duration wins over ours (the holder wrote it).
pub fn decide(
    record: &LeaseRecord,
    unchanged_since: Instant,
    now: Instant,
    identity: &str,
    default_duration: Duration,
) -> Decision {
    match record.holder.as_deref() {
        None => Decision::Acquire,
        Some(holder) if holder == identity => Decision::Renew,
        Some(_) => {
            let duration = record.duration.unwrap_or(default_duration);
            if now.saturating_duration_since(unchanged_since) > duration {
                Decision::Acquire
            } else {
                Decision::Follow
            }
        }
    }
}

/// Whether a leader whose last successful renewal was at `last_renewed` must step down.
pub fn renewal_overdue(last_renewed: Instant, now: Instant, renew_deadline: Duration) -> bool {
    now.saturating_duration_since(last_renewed) >= renew_deadline
}

struct Elector {
    api: Api<Lease>,
    lease_name: String,
    identity: String,
    timings: LeaseTimings,
    /// The record last seen and when it was first seen so.
    observed: Option<(LeaseRecord, Instant)>,
}

/// Result of one attempt to acquire or renew.
enum Attempt {
    Holding,
    HeldByOther(String),
    Failed(String),
}

impl Elector {
    /// Retries until this replica holds the Lease.
    async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Attempt::Holding => return,
                Attempt::HeldByOther(holder) => {
                    tracing::debug!(lease = %self.lease_name, %holder, "waiting for leadership");
                }
                Attempt::Failed(e) => {
                    tracing::warn!(lease = %self.lease_name, error = %e, "leader election attempt failed");
                }
            }
            tokio::time::sleep(self.timings.retry_period).await;
        }
    }

    /// Renews until leadership is lost; returns why.
    async fn keep_renewing(&mut self) -> String {
        let mut last_renewed = Instant::now();
        let mut wait = self.timings.renew_interval;
        loop {
            tokio::time::sleep(wait).await;
            let remaining = self
                .timings
                .renew_deadline
                .saturating_sub(last_renewed.elapsed());
            let attempt = tokio::time::timeout(remaining, self.try_acquire_or_renew()).await;
            match attempt {
                Ok(Attempt::Holding) => {
                    last_renewed = Instant::now();
                    wait = self.timings.renew_interval;
                    continue;
                }
                Ok(Attempt::HeldByOther(holder)) => {
                    return format!("the Lease is now held by {holder}");
                }
                Ok(Attempt::Failed(e)) => {
                    tracing::warn!(lease = %self.lease_name, error = %e, "renewing the Lease failed");
                }
                Err(_) => {}
            }
            if renewal_overdue(last_renewed, Instant::now(), self.timings.renew_deadline) {
                return format!(
                    "no successful renewal for {:?} (renew deadline)",
                    self.timings.renew_deadline
                );
            }
            wait = self.timings.retry_period;
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Attempt {
        let live = match self.api.get_opt(&self.lease_name).await {
            Ok(live) => live,
            Err(e) => return Attempt::Failed(e.to_string()),
        };
        let Some(live) = live else {
            return self.create().await;
        };
        let record = LeaseRecord::of(&live);
        let now = Instant::now();
        let unchanged_since = match &self.observed {
            Some((seen, since)) if *seen == record => *since,
            _ => now,
        };
        self.observed = Some((record.clone(), unchanged_since));
        match decide(
            &record,
            unchanged_since,
            now,
            &self.identity,
            self.timings.lease_duration,
        ) {
            Decision::Follow => Attempt::HeldByOther(record.holder.unwrap_or_default()),
            Decision::Renew => self.write(&live, false).await,
            Decision::Acquire => self.write(&live, true).await,
        }
    }

    fn spec(&self, acquire_time: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: i32::try_from(self.timings.lease_duration.as_secs()).ok(),
            acquire_time: Some(acquire_time.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    async fn create(&mut self) -> Attempt {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.lease_name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(self.spec(None, 0)),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Attempt::Holding,
            // Another replica created it first: look again next round.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Attempt::Failed("the Lease was just created by another replica".into())
            }
            Err(e) => Attempt::Failed(e.to_string()),
        }
    }

    /// Applies our record with the live resourceVersion as precondition (a 409 means someone
    /// else wrote in between: no harm, we look again).
    async fn write(&mut self, live: &Lease, take_over: bool) -> Attempt {
        let spec = live.spec.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let (acquire_time, transitions) = if take_over {
            (None, transitions.saturating_add(1))
        } else {
            (spec.acquire_time, transitions)
        };
        let lease = serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.lease_name,
                "resourceVersion": live.metadata.resource_version,
            },
            "spec": self.spec(acquire_time, transitions),
        });
        let params = PatchParams::apply(LEASE_FIELD_MANAGER).force();
        match self
            .api
            .patch(&self.lease_name, &params, &Patch::Apply(&lease))
            .await
        {
            Ok(_) => Attempt::Holding,
            Err(e) => Attempt::Failed(e.to_string()),
        }
    }

    /// Gives the Lease up (holder cleared) so a follower need not wait for it to expire.
    async fn release(&mut self) {
        let Ok(Some(live)) = self.api.get_opt(&self.lease_name).await else {
            return;
        };
        if LeaseRecord::of(&live).holder.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        let lease = serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.lease_name,
                "resourceVersion": live.metadata.resource_version,
            },
            "spec": {
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "renewTime": MicroTime(Timestamp::now()),
            },
        });
        let params = PatchParams::apply(LEASE_FIELD_MANAGER).force();
        match self
            .api
            .patch(&self.lease_name, &params, &Patch::Apply(&lease))
            .await
        {
            Ok(_) => tracing::info!(lease = %self.lease_name, "released leadership"),
            Err(e) => {
                tracing::warn!(lease = %self.lease_name, error = %e, "releasing the Lease failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::Parser;

    fn record(holder: Option<&str>, secs: Option<u64>) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_string),
            renew_time: None,
            duration: secs.map(Duration::from_secs),
        }
    }

    #[test]
    fn free_lease_is_acquired_and_own_lease_renewed() {
        let t = Instant::now();
        let d = Duration::from_secs(15);
        assert_eq!(
            decide(&record(None, None), t, t, "me", d),
            Decision::Acquire
        );
        assert_eq!(
            decide(&record(Some("me"), Some(15)), t, t + d * 10, "me", d),
            Decision::Renew
        );
    }

    #[test]
    fn others_lease_is_taken_only_after_it_stopped_changing_for_its_duration() {
        let since = Instant::now();
        let ours = Duration::from_secs(15);
        let theirs = record(Some("other"), Some(4));
        assert_eq!(
            decide(&theirs, since, since + Duration::from_secs(4), "me", ours),
            Decision::Follow
        );
        assert_eq!(
            decide(
                &theirs,
                since,
                since + Duration::from_millis(4001),
                "me",
                ours
            ),
            Decision::Acquire
        );
        // Without a duration in the record, ours applies.
        let no_duration = record(Some("other"), None);
        assert_eq!(
            decide(
                &no_duration,
                since,
                since + Duration::from_secs(14),
                "me",
                ours
            ),
            Decision::Follow
        );
        assert_eq!(
            decide(
                &no_duration,
                since,
                since + Duration::from_secs(16),
                "me",
                ours
            ),
            Decision::Acquire
        );
    }

    #[test]
    fn renewal_is_overdue_at_the_deadline() {
        let t = Instant::now();
        let deadline = Duration::from_secs(10);
        assert!(!renewal_overdue(t, t + Duration::from_secs(9), deadline));
        assert!(renewal_overdue(t, t + deadline, deadline));
    }

    #[test]
    fn empty_holder_counts_as_free() {
        let lease = Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(String::new()),
                ..LeaseSpec::default()
            }),
        };
        assert_eq!(LeaseRecord::of(&lease).holder, None);
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        leader: LeaderArgs,
    }

    #[test]
    fn flags_default_to_no_election_in_dbtls_system() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert!(!cli.leader.leader_elect);
        assert_eq!(cli.leader.lease_namespace, "dbtls-system");
        assert_eq!(
            cli.leader.lease_name_or("dbtls-provisioner"),
            "dbtls-provisioner"
        );
        let cli = Cli::try_parse_from(["x", "--leader-elect", "--lease-name", "l"]).unwrap();
        assert!(cli.leader.leader_elect);
        assert_eq!(cli.leader.lease_name_or("dbtls-provisioner"), "l");
    }
}
