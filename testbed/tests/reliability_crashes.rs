//! Reliability §3: `kill -9` of either operator at random moments while databases are being
//! created and converged; everything converges, nothing is duplicated or orphaned, and restarted
//! operators make no write for databases that are already converged.
//!
//! 30 databases and 8 kills; `DBTLS_RELIABILITY_FULL=1` runs 100 and 20 (docs/reliability.md §3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_crash_support;

use std::time::{Duration, Instant};

use fault_crash_support::{
    Fleet, await_listed, await_quiet, describe, full_run, start_env, successful_reconciles,
    writes_since,
};
use rand::Rng as _;

use testbed::harness::cluster::testbed_only;
use testbed::harness::identities::{OPS_MANAGER_USER, PROVISIONER_USER};

/// The operators' names in the harness, and the users they run as.
const OPERATORS: [&str; 2] = ["provisioner", "ops-manager"];
const OPERATOR_USERS: [&str; 2] = [PROVISIONER_USER, OPS_MANAGER_USER];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_converge_through_operator_crashes() {
    if testbed_only(
        "databases_converge_through_operator_crashes",
        "it counts every operator request in the testbed's request log",
    ) {
        return;
    }
    let (n, kills) = if full_run() { (100, 20) } else { (30, 8) };
    let env = start_env().await;
    let fleet = Fleet::prepare(&env, n).await;
    let log = env
        .api_server()
        .expect("request log needs the testbed")
        .request_log();
    let mark = log.len();

    // Databases arrive in as many batches as there are kills, and each kill lands at a random
    // moment after a batch, so every kill interrupts work in progress.
    let started = Instant::now();
    let batch = n.div_ceil(kills);
    let mut killed = std::collections::BTreeMap::<&str, usize>::new();
    // Alternate, with a random first victim.
    let first = rand::rng().random_range(0..2);
    for i in 0..kills {
        let end = ((i + 1) * batch).min(n);
        for db in &fleet.dbs[(i * batch).min(n)..end] {
            fleet.create(&env, db, Duration::from_secs(30)).await;
        }
        let (pause, down, which) = {
            let mut rng = rand::rng();
            (
                Duration::from_millis(rng.random_range(50..1200)),
                Duration::from_millis(rng.random_range(0..400)),
                OPERATORS[(first + i) % 2],
            )
        };
        tokio::time::sleep(pause).await;
        env.kill_operator(which).await.unwrap();
        tokio::time::sleep(down).await;
        env.restart_operator(which).await.unwrap();
        *killed.entry(which).or_default() += 1;
    }
    let deadline = Duration::from_secs(if full_run() { 600 } else { 180 });
    fleet.await_converged(&env, deadline).await.unwrap();
    let converged_in = started.elapsed();
    await_quiet(&env, Duration::from_secs(3), Duration::from_secs(60))
        .await
        .unwrap();
    let audit = fleet.audit(&env).await.unwrap();
    assert!(
        audit.problems.is_empty(),
        "{} problems:\n{}",
        audit.problems.len(),
        audit.problems.join("\n")
    );
    let records = log.snapshot();
    let converge_writes = writes_since(&records, mark, &OPERATOR_USERS).len();
    // The same filter finds the operators' writes, so finding none after the restart means
    // they wrote none (each database needs more than one write from each).
    assert!(
        converge_writes >= 2 * n,
        "only {converge_writes} operator writes for {n} databases"
    );

    // Restart both on a converged system: they re-list and re-reconcile every database and must
    // find nothing to write.
    let restart_mark = log.len();
    for which in OPERATORS {
        env.restart_operator(which).await.unwrap();
    }
    await_listed(&env, restart_mark, &OPERATOR_USERS)
        .await
        .unwrap();
    for which in OPERATORS {
        env.eventually(
            &format!("{which} reconciled all {n} databases after the restart"),
            Duration::from_secs(120),
            || async {
                let done = successful_reconciles(&env, which).await?;
                Ok(done.filter(|d| *d >= n as u64))
            },
        )
        .await
        .unwrap();
    }
    // Until nothing has been written for 3 s: anything a reconcile queued behind its first
    // pass has run (a write it made counts below, since the restart).
    await_quiet(&env, Duration::from_secs(3), Duration::from_secs(60))
        .await
        .unwrap();
    let records = log.snapshot();
    let idle_writes = writes_since(&records, restart_mark, &OPERATOR_USERS);
    assert!(
        idle_writes.is_empty(),
        "{} writes after restarting on a converged system:\n{}",
        idle_writes.len(),
        describe(&idle_writes)
    );

    println!(
        "reliability_crashes: N={n} kills={kills} ({killed:?}) converged_in={converged_in:?} \
         operator_writes={converge_writes} operator_writes_per_db={:.1} audited_objects={} \
         problems=0 idle_writes_after_restart=0",
        converge_writes as f64 / n as f64,
        audit.objects,
    );
}
