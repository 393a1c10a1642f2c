//! Two provisioner processes with `--leader-elect` under the provisioner's ServiceAccount: only
//! the Lease holder reconciles (the follower is ready but idle), and after `kill -9` of the
//! leader the follower takes the Lease over and a new database converges.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dbtls_contract::DbKind;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use testbed::harness::identities::OPERATOR_NAMESPACE;
use testbed::harness::operators::{self, Operator};
use testbed::harness::{Env, EnvOptions, http};

/// Takeover waits for the dead leader's Lease to expire (15 s) plus a retry period.
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(60);

/// The Lease each operator elects on: its default name, the only one `deploy/`'s RBAC lets it
/// write. This test is the only one in its binary, so no other test competes for it; a Lease
/// left by an earlier run on the same cluster expires like a dead leader's.
fn lease(operator: &str) -> String {
    format!("dbtls-{operator}")
}

async fn holder(env: &Env) -> anyhow::Result<Option<String>> {
    let lease = Api::<Lease>::namespaced(env.client(), OPERATOR_NAMESPACE)
        .get_opt(&lease("provisioner"))
        .await?;
    Ok(lease
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

/// How many reconciles a process has run, from its own /metrics.
async fn reconciles(op: &Operator) -> anyhow::Result<f64> {
    let addr = op.metrics_addr().expect("metrics address");
    let (_, body) = http::get(&format!("http://{addr}"), "/metrics").await?;
    Ok(body
        .lines()
        .filter(|l| l.starts_with("dbtls_reconciles_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum())
}

async fn ready(env: &Env, kind: DbKind, name: &str, logs: &dyn Fn() -> String) {
    env.eventually(&format!("{name} Ready"), DEADLINE, || async {
        let c = env.condition(kind, name, "Ready").await?;
        Ok(c.filter(|c| c.status == "True").map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
}

#[tokio::test]
async fn only_the_leader_reconciles_and_the_follower_takes_over_after_kill_9() {
    let env = Env::start(EnvOptions {
        provisioner: false,
        ops_manager: false,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let bin_dir = operators::build_once().await.unwrap();
    // A single ops-manager elected on its own Lease, under its deploy/ RBAC.
    let ops_manager = Operator::start(
        "ops-manager",
        &bin_dir,
        &env.operator_kubeconfig("ops-manager").await.unwrap(),
        &env.scoped_args(&["--leader-elect".into()]),
    )
    .await
    .unwrap();
    let kubeconfig = env.operator_kubeconfig("provisioner").await.unwrap();
    let args = env.scoped_args(&["--leader-elect".into()]);
    let a = Operator::start("provisioner", &bin_dir, &kubeconfig, &args)
        .await
        .unwrap();
    let b = Operator::start("provisioner", &bin_dir, &kubeconfig, &args)
        .await
        .unwrap();
    let logs = || {
        format!(
            "--- A ---\n{}\n--- B ---\n{}\n--- ops-manager ---\n{}",
            a.logs(),
            b.logs(),
            ops_manager.logs()
        )
    };

    let (pid_a, pid_b) = (a.pid().await.unwrap(), b.pid().await.unwrap());
    let leader_identity = env
        .eventually("A or B holding the Lease", TAKEOVER_DEADLINE, || async {
            Ok(holder(&env)
                .await?
                .filter(|h| h.ends_with(&format!("_{pid_a}")) || h.ends_with(&format!("_{pid_b}"))))
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
    let (leader, follower) = if leader_identity.ends_with(&format!("_{pid_a}")) {
        (&a, &b)
    } else {
        (&b, &a)
    };

    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&Env::tls_database(DbKind::MySQL, "first", "Issuer", "ca"))
        .await
        .unwrap();
    ready(&env, DbKind::MySQL, "first", &logs).await;
    // Both serve and are ready; only the leader reconciled.
    for op in [leader, follower] {
        let url = format!("http://{}", op.metrics_addr().unwrap());
        let (code, _) = http::get(&url, "/readyz").await.unwrap();
        assert_eq!(code, 200, "a follower is ready too\n{}", logs());
    }
    assert!(reconciles(leader).await.unwrap() >= 1.0, "{}", logs());
    assert_eq!(reconciles(follower).await.unwrap(), 0.0, "{}", logs());
    assert!(leader.logs().contains("became leader"), "{}", logs());
    assert!(!follower.logs().contains("became leader"), "{}", logs());

    leader.kill().await.unwrap();
    env.apply_yaml(&Env::tls_database(DbKind::MySQL, "second", "Issuer", "ca"))
        .await
        .unwrap();
    let follower_pid = follower.pid().await.unwrap();
    env.eventually(
        "the follower holds the Lease",
        TAKEOVER_DEADLINE,
        || async {
            Ok(holder(&env)
                .await?
                .filter(|h| h.ends_with(&format!("_{follower_pid}"))))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
    ready(&env, DbKind::MySQL, "second", &logs).await;
    let ops_lease = Api::<Lease>::namespaced(env.client(), OPERATOR_NAMESPACE)
        .get(&lease("ops-manager"))
        .await
        .unwrap();
    assert!(
        ops_lease
            .spec
            .and_then(|s| s.holder_identity)
            .is_some_and(|h| !h.is_empty()),
        "the ops-manager reconciled without holding its Lease"
    );
    assert!(follower.logs().contains("became leader"), "{}", logs());
    assert!(reconciles(follower).await.unwrap() >= 1.0, "{}", logs());
}
