//! The benchmark's logic at N = 10 in a debug build, so that it keeps compiling and working:
//! every database converges, nobody writes while idle or after an operator restart, and a
//! renewal of every certificate ends with every pod serving a new one. No
//! timings are asserted (CI machines vary); `docs/benchmarks.md` has the release figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use testbed::bench::{self, BenchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_databases_converge_with_no_idle_writes() {
    let key_cache =
        std::env::temp_dir().join(format!("dbtls-smoke-keys-{}.pem", std::process::id()));
    let options = BenchOptions {
        databases: 10,
        unrelated_secrets: 20,
        namespaces: 2,
        idle: Duration::from_secs(3),
        single_creates: 2,
        create_parallelism: 4,
        deadline: Duration::from_secs(180),
        restarts: true,
        key_cache: Some(key_cache.clone()),
        distinct_keys: None,
        issuance_rate: Some(200.0),
        renewal: true,
    };
    let report = bench::run(options, |line| eprintln!("{line}"))
        .await
        .unwrap();
    eprintln!("{}", bench::report::render(&report));
    let cached = std::fs::read_to_string(&key_cache).unwrap();
    let _ = std::fs::remove_file(&key_cache);

    let certificates: usize = report.kinds.iter().map(|k| k.profile().aliases.len()).sum();
    assert!(
        report.issued.0 >= certificates,
        "the stand-in's issuances are counted: {:?} for {certificates} Certificates",
        report.issued
    );
    assert_eq!(
        cached.matches("-----BEGIN PRIVATE KEY-----").count(),
        3 * (10 * 2 + 2),
        "the keys a run needs were made before it and kept"
    );

    assert_eq!(report.single_workload.len(), 2);
    assert_eq!(report.single_converged.len(), 2);
    for op in &report.operators {
        assert!(op.converge.writes > 0, "{} wrote nothing", op.name);
        assert!(
            op.converge.writes >= op.minimum_writes,
            "{}: fewer writes than objects",
            op.name
        );
        assert_eq!(op.idle_writes, 0, "{} wrote while idle", op.name);
        let (restart, _, _) = op.restart.as_ref().expect("restart measured");
        assert_eq!(
            restart.all_writes(),
            0,
            "{} wrote after a restart: {restart:?}",
            op.name
        );
        assert!(
            restart.reads > 0,
            "{} did not re-read after its restart",
            op.name
        );
        assert!(op.after_idle.peak_rss > 0);
    }
    // Day 2: every certificate renewed, every database's pods serve a new serial.
    let renewal = report.renewal.as_ref().expect("renewal measured");
    assert!(renewal.certificates >= certificates, "{renewal:?}");
    assert!(renewal.issued.0 >= certificates, "{renewal:?}");
    assert_eq!(renewal.served.len(), 10, "{renewal:?}");
    for (op, (during, converging)) in report.operators.iter().zip(&renewal.peak_per_second) {
        assert!(*converging > 0, "{}: {renewal:?}", op.name);
        assert!(*during > 0, "{} did nothing for the renewal", op.name);
    }
    assert!(report.idle_writes_zero());
    assert!(
        report.idle_writes_all.is_empty(),
        "writes while idle: {:?}",
        report.idle_writes_all
    );
}
