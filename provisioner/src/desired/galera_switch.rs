//! Turning TLS on or off on a running Galera cluster (PerconaXtraDB) without splitting it.
//!
//! A node whose replication requires TLS and a node without TLS cannot replicate with each
//! other, so a rolling restart straight from one to the other would split the cluster. The
//! switch takes two rolling restarts: first into [`Replication::Bridge`] (`socket.dynamic`: TLS
//! with peers that speak it, plaintext with the others), then, once every node runs that and is
//! ready, into the target.
//!
//! State transfers (the rsync handshake a joiner needs even for an incremental transfer) have no
//! such bridge: donor and joiner must agree on TLS. Their setting lives in the config Secret,
//! which kubelet refreshes in running pods and the transfer scripts read at each transfer, so
//! it is switched for every node at once: plaintext while any node may be without TLS, encrypted
//! only once every node replicates with TLS only. Leaving TLS, no node restarts before the
//! running nodes can have seen plaintext (`--secret-propagation` after the change).
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodTemplateSpec, Secret, Volume, VolumeMount};

use super::server_tls::{ServerTls, percona_server_dir};
use crate::facts::DbFacts;
use crate::observe::Clock;
use crate::workload::Workload;

/// How a node's replication channel treats TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    Plain,
    /// TLS with peers that speak it, plaintext with the others.
    Bridge,
    /// TLS only.
    Tls,
}

/// How state transfers run (the config Secret's `[sst]` group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfers {
    Encrypted,
    Plaintext,
}

pub(super) const PROVIDER_OPTIONS: &str = "--wsrep-provider-options=";
pub(super) const SSL_ON: &str = "socket.ssl=YES";
pub(super) const DYNAMIC: &str = "socket.dynamic=YES";
/// On the config Secret: how its `[sst]` group runs transfers, and since when (unix seconds).
pub const TRANSFERS_ANNOTATION: &str = "kubedb.com/state-transfer-tls";
pub const TRANSFERS_SINCE_ANNOTATION: &str = "kubedb.com/state-transfer-tls-since";

/// What a PerconaXtraDB's workload and config Secret say about TLS in this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Switch {
    pub replication: Replication,
    /// None: no TLS anywhere, no setting needed.
    pub transfers: Option<Transfers>,
    /// Since when `transfers` has been in the config Secret (unix seconds).
    pub transfers_since: i64,
    /// Leave the workload as it runs until then (unix seconds).
    pub hold_until: Option<i64>,
}

/// What the pods of a (live) template replicate with, read from their Galera options.
pub fn replication_of(template: Option<&PodTemplateSpec>, container: &str) -> Replication {
    let options = template
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .and_then(|c| c.args.as_ref())
        .and_then(|args| args.iter().find_map(|a| a.strip_prefix(PROVIDER_OPTIONS)));
    let has = |option: &str| options.is_some_and(|o| o.split(';').any(|x| x.trim() == option));
    match (has(SSL_ON), has(DYNAMIC)) {
        (true, true) => Replication::Bridge,
        (true, false) => Replication::Tls,
        _ => Replication::Plain,
    }
}

/// Every pod of `live` runs its template and is ready.
fn settled(db: &DbFacts<'_>, live: &Workload) -> bool {
    live.rollout().is_none() && live.ready_replicas() >= db.replicas()
}

/// The replication to write: what `spec.tls` asks for, through [`Replication::Bridge`] when the
/// live pods run the opposite. A cluster being created or of one node has no peer to lose.
pub fn next_replication(db: &DbFacts<'_>, live: Option<&Workload>) -> Replication {
    let target = if db.tls.is_some() {
        Replication::Tls
    } else {
        Replication::Plain
    };
    let Some(live) = live else {
        return target;
    };
    if db.replicas() <= 1 {
        return target;
    }
    let running = replication_of(live.pod_template(), db.kind.profile().container);
    if running == target || (running == Replication::Bridge && settled(db, live)) {
        target
    } else {
        Replication::Bridge
    }
}

/// The transfer setting a config Secret holds, and since when.
pub fn transfers_of(config: Option<&Secret>) -> Option<(Transfers, i64)> {
    let annotations = config?.metadata.annotations.as_ref()?;
    let transfers = match annotations.get(TRANSFERS_ANNOTATION)?.as_str() {
        "encrypted" => Transfers::Encrypted,
        "plaintext" => Transfers::Plaintext,
        _ => return None,
    };
    let since = annotations.get(TRANSFERS_SINCE_ANNOTATION)?.parse().ok()?;
    Some((transfers, since))
}

/// The annotations recording `transfers` since `since`.
pub fn transfers_annotations(transfers: Transfers, since: i64) -> BTreeMap<String, String> {
    let value = match transfers {
        Transfers::Encrypted => "encrypted",
        Transfers::Plaintext => "plaintext",
    };
    BTreeMap::from([
        (TRANSFERS_ANNOTATION.to_string(), value.to_string()),
        (TRANSFERS_SINCE_ANNOTATION.to_string(), since.to_string()),
    ])
}

/// Decides the replication, the transfer setting and whether the workload waits, from the
/// spec, the live workload and config Secret, and the clock.
pub fn decide(
    db: &DbFacts<'_>,
    live: Option<&Workload>,
    config: Option<&Secret>,
    clock: &Clock,
) -> Switch {
    let replication = next_replication(db, live);
    let running = live.map(|l| replication_of(l.pod_template(), db.kind.profile().container));
    let cached = transfers_of(config);
    let cluster = live.is_some() && db.replicas() > 1;
    let transfers = match replication {
        Replication::Plain => None,
        Replication::Bridge => Some(Transfers::Plaintext),
        Replication::Tls if !cluster => Some(Transfers::Encrypted),
        // Encrypted once every node replicates with TLS only; kept while it does, so that a
        // node restarting later does not turn it back.
        Replication::Tls => {
            let every_node = running == Some(Replication::Tls)
                && (cached.is_some_and(|(t, _)| t == Transfers::Encrypted)
                    || live.is_some_and(|l| settled(db, l)));
            Some(if every_node {
                Transfers::Encrypted
            } else {
                Transfers::Plaintext
            })
        }
    };
    let transfers_since = match (transfers, cached) {
        (Some(t), Some((c, since))) if t == c => since,
        _ => clock.now,
    };
    let leaving = db.tls.is_none() && running == Some(Replication::Tls);
    let propagated =
        transfers_since + i64::try_from(clock.secret_propagation.as_secs()).unwrap_or(0);
    let hold_until = (leaving && replication == Replication::Bridge && propagated > clock.now)
        .then_some(propagated);
    Switch {
        replication,
        transfers,
        transfers_since,
        hold_until,
    }
}

/// The server certificate's volume and mount of a live template, for replication while a
/// cluster is bridged out of TLS (`spec.tls` is gone, the Secrets are kept until the rollout
/// is over).
pub fn carried_certificate(
    template: Option<&PodTemplateSpec>,
    container: &str,
) -> Option<ServerTls> {
    let spec = template?.spec.as_ref()?;
    let dir = percona_server_dir();
    let mount: &VolumeMount = spec
        .containers
        .iter()
        .find(|c| c.name == container)?
        .volume_mounts
        .as_ref()?
        .iter()
        .find(|m| m.mount_path == dir)?;
    let volume: &Volume = spec
        .volumes
        .as_ref()?
        .iter()
        .find(|v| v.name == mount.name)?;
    Some(ServerTls {
        volumes: vec![volume.clone()],
        mounts: vec![mount.clone()],
        ..ServerTls::default()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use super::*;
    use crate::desired::{DesiredWorkload, workload_for};
    use crate::facts::fixtures::parse;
    use crate::observe::Observed;
    use crate::workload::WorkloadApi;
    use dbtls_contract::api::PerconaXtraDB;
    use k8s_openapi::api::apps::v1::StatefulSetStatus;

    const NOW: i64 = 1_000_000;

    fn percona(replicas: i32, tls: bool) -> PerconaXtraDB {
        let tls = if tls {
            "  tls:\n    issuerRef: {apiGroup: cert-manager.io, kind: Issuer, name: ca}\n"
        } else {
            ""
        };
        parse(&format!(
            "apiVersion: kubedb.com/v1\nkind: PerconaXtraDB\nmetadata: {{name: px, namespace: shop}}\nspec:\n  version: \"8.0.40\"\n  replicas: {replicas}\n{tls}"
        ))
    }

    fn desired(db: &PerconaXtraDB, observed: &Observed) -> DesiredWorkload {
        workload_for(&DbFacts::of(db), "img", WorkloadApi::StatefulSet, observed)
    }

    /// `workload` as its controller reports it: `updated` pods on the current template,
    /// `ready` pods ready.
    fn reported(workload: Workload, replicas: i32, updated: i32, ready: i32) -> Workload {
        let Workload::StatefulSet(mut sts) = workload else {
            panic!("PerconaXtraDB runs on a StatefulSet");
        };
        sts.metadata.generation = Some(2);
        let revision = if updated == replicas { "b" } else { "a" };
        sts.status = Some(StatefulSetStatus {
            observed_generation: Some(2),
            replicas,
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            current_revision: Some(revision.into()),
            update_revision: Some("b".into()),
            ..StatefulSetStatus::default()
        });
        Workload::StatefulSet(sts)
    }

    /// The workload `db` gets when created, fully rolled out and ready.
    fn settled_as(db: &PerconaXtraDB) -> Workload {
        let replicas = DbFacts::of(db).replicas();
        reported(
            desired(db, &Observed::default()).workloads.remove(0),
            replicas,
            replicas,
            replicas,
        )
    }

    /// The bridge towards `db`'s TLS from a settled cluster of the opposite, at a rollout.
    fn bridge_towards(db: &PerconaXtraDB, updated: i32, ready: i32) -> Workload {
        let replicas = DbFacts::of(db).replicas();
        let opposite = percona(replicas, db.spec.tls.is_none());
        let observed = Observed {
            workload: Some(settled_as(&opposite)),
            ..Observed::default()
        };
        reported(
            desired(db, &observed).workloads.remove(0),
            replicas,
            updated,
            ready,
        )
    }

    fn running(workload: &Workload) -> Replication {
        replication_of(workload.pod_template(), "perconaxtradb")
    }

    fn config(transfers: Transfers, since: i64) -> Secret {
        let mut secret = Secret::default();
        secret.metadata.annotations = Some(transfers_annotations(transfers, since));
        secret
    }

    fn decided(db: &PerconaXtraDB, live: Option<Workload>, cached: Option<Secret>) -> Switch {
        let clock = Clock {
            now: NOW,
            secret_propagation: Duration::from_secs(90),
        };
        decide(&DbFacts::of(db), live.as_ref(), cached.as_ref(), &clock)
    }

    #[test]
    fn switching_tls_on_a_running_cluster_passes_through_a_fully_rolled_out_bridge() {
        use Replication::*;
        let (tls3, plain3) = (percona(3, true), percona(3, false));
        let (tls1, plain1) = (percona(1, true), percona(1, false));
        let next = |db: &PerconaXtraDB, live: Option<Workload>| {
            next_replication(&DbFacts::of(db), live.as_ref())
        };
        let cases: Vec<(&str, Replication, Replication)> = vec![
            ("created with TLS", next(&tls3, None), Tls),
            ("created without TLS", next(&plain3, None), Plain),
            (
                "unchanged with TLS",
                next(&tls3, Some(settled_as(&tls3))),
                Tls,
            ),
            (
                "unchanged without",
                next(&plain3, Some(settled_as(&plain3))),
                Plain,
            ),
            (
                "TLS added: bridge first",
                next(&tls3, Some(settled_as(&plain3))),
                Bridge,
            ),
            (
                "TLS removed: bridge first",
                next(&plain3, Some(settled_as(&tls3))),
                Bridge,
            ),
            (
                "one node: straight on",
                next(&tls1, Some(settled_as(&plain1))),
                Tls,
            ),
            (
                "one node: straight off",
                next(&plain1, Some(settled_as(&tls1))),
                Plain,
            ),
            (
                "bridge rolling out",
                next(&tls3, Some(bridge_towards(&tls3, 1, 3))),
                Bridge,
            ),
            (
                "bridge rolled out, a node not ready",
                next(&tls3, Some(bridge_towards(&tls3, 3, 2))),
                Bridge,
            ),
            (
                "bridged and ready: on",
                next(&tls3, Some(bridge_towards(&tls3, 3, 3))),
                Tls,
            ),
            (
                "bridged and ready: off",
                next(&plain3, Some(bridge_towards(&plain3, 3, 3))),
                Plain,
            ),
        ];
        for (case, got, want) in cases {
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn state_transfers_are_encrypted_only_once_every_node_replicates_with_tls_only() {
        use Transfers::*;
        let (tls3, plain3) = (percona(3, true), percona(3, false));
        let strict_rolling = reported(settled_as(&tls3), 3, 1, 3);
        let one_down = reported(settled_as(&tls3), 3, 3, 2);
        // (case, decided, transfers, since, hold_until)
        type Case = (&'static str, Switch, Option<Transfers>, i64, Option<i64>);
        let cases: Vec<Case> = vec![
            (
                "created with TLS",
                decided(&tls3, None, None),
                Some(Encrypted),
                NOW,
                None,
            ),
            (
                "created without TLS",
                decided(&plain3, None, None),
                None,
                NOW,
                None,
            ),
            (
                "adding: the bridge transfers in plaintext",
                decided(&tls3, Some(settled_as(&plain3)), None),
                Some(Plaintext),
                NOW,
                None,
            ),
            (
                "adding: TLS-only nodes still join bridged ones",
                decided(
                    &tls3,
                    Some(bridge_towards(&tls3, 3, 3)),
                    Some(config(Plaintext, 5)),
                ),
                Some(Plaintext),
                5,
                None,
            ),
            (
                "adding: TLS-only template still rolling out",
                decided(&tls3, Some(strict_rolling), Some(config(Plaintext, 5))),
                Some(Plaintext),
                5,
                None,
            ),
            (
                "added: every node TLS only and ready",
                decided(&tls3, Some(settled_as(&tls3)), Some(config(Plaintext, 5))),
                Some(Encrypted),
                NOW,
                None,
            ),
            (
                "a node restarting later keeps transfers encrypted",
                decided(&tls3, Some(one_down), Some(config(Encrypted, 7))),
                Some(Encrypted),
                7,
                None,
            ),
            (
                "removing: transfers go plaintext first, no node restarts yet",
                decided(&plain3, Some(settled_as(&tls3)), Some(config(Encrypted, 7))),
                Some(Plaintext),
                NOW,
                Some(NOW + 90),
            ),
            (
                "removing: still within the propagation time",
                decided(
                    &plain3,
                    Some(settled_as(&tls3)),
                    Some(config(Plaintext, NOW - 30)),
                ),
                Some(Plaintext),
                NOW - 30,
                Some(NOW + 60),
            ),
            (
                "removing: propagated, the bridge starts",
                decided(
                    &plain3,
                    Some(settled_as(&tls3)),
                    Some(config(Plaintext, NOW - 90)),
                ),
                Some(Plaintext),
                NOW - 90,
                None,
            ),
            (
                "removed: bridged and ready, no TLS left",
                decided(
                    &plain3,
                    Some(bridge_towards(&plain3, 3, 3)),
                    Some(config(Plaintext, 5)),
                ),
                None,
                NOW,
                None,
            ),
        ];
        for (case, got, transfers, since, hold) in cases {
            assert_eq!(got.transfers, transfers, "{case}");
            assert_eq!(got.transfers_since, since, "{case}");
            assert_eq!(got.hold_until, hold, "{case}");
        }
    }

    #[test]
    fn a_bridge_out_of_tls_keeps_the_live_server_certificate_for_replication_only() {
        let live_tls = settled_as(&percona(3, true));
        let plain = percona(3, false);
        let observed = Observed {
            workload: Some(live_tls.clone()),
            ..Observed::default()
        };
        let bridge = desired(&plain, &observed);
        assert!(bridge.bridging);
        assert_eq!(running(&bridge.workloads[0]), Replication::Bridge);
        let config = bridge.config.unwrap();
        let cnf = String::from_utf8(config.data.clone().unwrap()["sst-tls.cnf"].0.clone()).unwrap();
        assert_eq!(cnf, "[sst]\nssl-mode=DISABLED\n");
        assert_eq!(transfers_of(Some(&config)).unwrap().0, Transfers::Plaintext);
        let spec = bridge.workloads[0]
            .pod_template()
            .unwrap()
            .spec
            .clone()
            .unwrap();
        let args = spec.containers[0].args.clone().unwrap();
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--ssl") || a.contains("require-secure")),
            "clients are served without TLS: {args:?}"
        );
        let options = args
            .iter()
            .find_map(|a| a.strip_prefix(PROVIDER_OPTIONS))
            .unwrap();
        assert!(options.contains("socket.ssl_cert=/etc/mysql/certs/server/tls.crt"));
        let carried = carried_certificate(live_tls.pod_template(), "perconaxtradb").unwrap();
        let volumes = spec.volumes.unwrap();
        assert!(volumes.contains(&carried.volumes[0]));
        assert!(
            serde_json::to_string(&carried.volumes)
                .unwrap()
                .contains("px-server-cert"),
            "the server certificate's Secret: {:?}",
            carried.volumes
        );
        // Once bridged and ready, the certificate and the config go.
        let observed = Observed {
            workload: Some(bridge_towards(&plain, 3, 3)),
            ..Observed::default()
        };
        let off = desired(&plain, &observed);
        assert!(!off.bridging);
        assert_eq!(running(&off.workloads[0]), Replication::Plain);
        assert!(off.config.is_none());
        let off_spec = off.workloads[0]
            .pod_template()
            .unwrap()
            .spec
            .clone()
            .unwrap();
        assert!(off_spec.volumes.is_none());
    }

    #[test]
    fn a_bridge_into_tls_serves_clients_with_tls_at_once() {
        let tls = percona(3, true);
        let observed = Observed {
            workload: Some(settled_as(&percona(3, false))),
            ..Observed::default()
        };
        let bridge = desired(&tls, &observed);
        assert_eq!(running(&bridge.workloads[0]), Replication::Bridge);
        let config = bridge.config.unwrap();
        assert_eq!(transfers_of(Some(&config)).unwrap().0, Transfers::Plaintext);
        let args = bridge.workloads[0]
            .pod_template()
            .unwrap()
            .spec
            .clone()
            .unwrap()
            .containers[0]
            .args
            .clone()
            .unwrap();
        assert!(args.contains(&"--ssl-cert=/etc/mysql/certs/server/tls.crt".to_string()));
    }
}
