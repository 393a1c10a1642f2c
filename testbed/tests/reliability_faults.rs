//! Reliability §2: databases converge while the API server fails requests, answers conflicts,
//! drops watch streams and expires watch history — with nothing duplicated or orphaned, and the
//! system goes quiet once the faults stop. Testbed only (fault injection).
//!
//! N = 30 databases; `DBTLS_RELIABILITY_FULL=1` runs 200 (docs/reliability.md §2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_crash_support;

use std::time::{Duration, Instant};

use fault_crash_support::{Fleet, await_quiet, full_run, start_env, writes_since};
use testbed::harness::cluster::testbed_only;
use testbed::harness::identities::{OPS_MANAGER_USER, PROVISIONER_USER};

/// Injected on every verb (500 or 503).
const ERROR_RATE: f64 = 0.05;
/// Injected on writes (409).
const CONFLICT_RATE: f64 = 0.05;
const DROP_WATCHES_EVERY: Duration = Duration::from_secs(2);
/// How often watch history is forgotten, so re-watches from an old resourceVersion get 410.
const COMPACT_EVERY: Duration = Duration::from_millis(2500);
/// Databases arrive one by one at this pace, so that the work spans several watch drops and
/// compactions instead of finishing before the first.
const CREATE_PACE: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_converge_through_api_faults_without_duplicates_or_orphans() {
    if testbed_only(
        "databases_converge_through_api_faults_without_duplicates_or_orphans",
        "fault injection",
    ) {
        return;
    }
    let n = if full_run() { 200 } else { 30 };
    let env = start_env().await;
    let fleet = Fleet::prepare(&env, n).await;
    let server = env.api_server().expect("fault injection needs the testbed");
    let faults = server.faults();
    let log = server.request_log();
    let mark = log.len();

    faults.set_error_rate(None, ERROR_RATE);
    faults.set_conflict_rate(CONFLICT_RATE);
    faults.drop_watches_every(Some(DROP_WATCHES_EVERY));
    let compactor = tokio::spawn({
        let faults = faults.clone();
        async move {
            let mut tick = tokio::time::interval(COMPACT_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                faults.compact_now();
            }
        }
    });

    let started = Instant::now();
    for db in &fleet.dbs {
        fleet.create(&env, db, Duration::from_secs(60)).await;
        tokio::time::sleep(CREATE_PACE).await;
    }
    let deadline = Duration::from_secs(if full_run() { 900 } else { 180 });
    fleet.await_converged(&env, deadline).await.unwrap();
    let converged_in = started.elapsed();

    compactor.abort();
    faults.reset();
    let counts = faults.counts();
    let settle_mark = log.len();
    let settle_started = Instant::now();
    await_quiet(&env, Duration::from_secs(5), Duration::from_secs(120))
        .await
        .unwrap();
    let settled_in = settle_started.elapsed();
    let after_faults = log.snapshot();
    let writes_after_faults = writes_since(&after_faults, settle_mark, &[]).len();
    assert!(
        fleet.not_converged(&env).await.unwrap().is_empty(),
        "a database regressed after the faults stopped"
    );
    let audit = fleet.audit(&env).await.unwrap();
    assert!(
        audit.problems.is_empty(),
        "{} problems:\n{}",
        audit.problems.len(),
        audit.problems.join("\n")
    );

    // The faults really happened (otherwise this test proves nothing).
    assert!(counts.errors > 0 && counts.conflicts > 0, "{counts:?}");
    assert!(counts.watches_dropped > 0, "{counts:?}");
    assert!(counts.watches_expired > 0, "{counts:?}");

    let records = log.snapshot();
    let records = &records[mark..];
    let status = |code: u16| records.iter().filter(|r| r.status == code).count();
    let mut writes = std::collections::BTreeMap::<&str, usize>::new();
    for r in records.iter().filter(|r| r.wrote) {
        *writes.entry(r.user.as_str()).or_default() += 1;
    }
    let operator_writes = writes.get(PROVISIONER_USER).copied().unwrap_or(0)
        + writes.get(OPS_MANAGER_USER).copied().unwrap_or(0);
    println!(
        "reliability_faults: N={n} converged_in={converged_in:?} settled_in={settled_in:?} \
         requests={} injected_5xx={} injected_409={} returned_500={} returned_503={} returned_409={} \
         returned_410={} watches_dropped={} watch_410={} writes={writes:?} \
         operator_writes_per_db={:.1} writes_while_settling={writes_after_faults} audited_objects={} \
         problems=0",
        records.len(),
        counts.errors,
        counts.conflicts,
        status(500),
        status(503),
        status(409),
        status(410),
        counts.watches_dropped,
        counts.watches_expired,
        operator_writes as f64 / n as f64,
        audit.objects,
    );
}
