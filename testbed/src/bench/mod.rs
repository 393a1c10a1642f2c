//! The performance benchmark (`cargo run --release -p testbed --bin bench`): the in-memory API
//! server, the cert-manager stand-in (fast keys), the workload-status stand-in and both real
//! operator binaries; N TLS databases over the five kinds and several namespaces; figures from
//! the request log and `/proc`. Results and their reading are in `docs/benchmarks.md`.
//!
//! The API server, stand-ins and the bench's own watches run in this process, so the bench
//! process's CPU is the testbed's cost, not the operators'.
pub mod process;
pub mod real;
pub mod report;
pub mod requests;
pub mod tracker;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use dbtls_contract::DbKind;
use dbtls_contract::certmanager::Certificate;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::apiserver::{ApiServerConfig, RequestLog, TestApiServer};
use crate::certmanager::{self, StandInConfig};
use crate::harness::cluster::Played;
use crate::harness::operators::{self, Operator};
use crate::harness::renew;
use crate::harness::{apply, crds, manifests};
use crate::workload_sim;

use process::ProcessSample;
use requests::{OPERATORS, RequestCounts};
use tracker::{Key, Tracker};

/// The bench's own field manager and request-log user (a user's kubectl, in effect).
const BENCH_USER: &str = "bench";
const ISSUER: &str = "bench-ca";
const PROXYSQL_BACKEND: &str = "bench-backend";
const UNRELATED_NAMESPACE: &str = "unrelated";

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub databases: usize,
    /// Opaque Secrets (1 KiB each) created before the operators start, in a namespace of their
    /// own: memory must not grow with them.
    pub unrelated_secrets: usize,
    pub namespaces: usize,
    /// How long to count writes after convergence.
    pub idle: Duration,
    /// Databases created one at a time on the idle system, for the latency figures.
    pub single_creates: usize,
    /// Creates in flight at once during the bulk phase.
    pub create_parallelism: usize,
    /// How long the bulk phase may take to converge.
    pub deadline: Duration,
    /// Also restart each operator and count its writes once it has re-reconciled everything.
    pub restarts: bool,
    /// The stand-in's keys, made before the clock starts and kept in this PEM file across runs;
    /// None: one background thread makes them during the run (the stand-in can then be the
    /// bottleneck).
    pub key_cache: Option<std::path::PathBuf>,
    /// At most this many distinct keys from the cache, each then handed out to several
    /// Certificates (no operator reads a key): for runs larger than the keys this machine can
    /// make in reasonable time (RSA-2048 at ~11 keys/s on two cores). None: one key per Certificate.
    pub distinct_keys: Option<usize>,
    /// Certificates the stand-in issues per second at most (a slow cert-manager); None: as fast
    /// as it can.
    pub issuance_rate: Option<f64>,
    /// Once converged, renew every certificate at once (as `cmctl renew --all`) and measure the
    /// time until every pod serves the new one.
    pub renewal: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            databases: 100,
            unrelated_secrets: 0,
            namespaces: 5,
            idle: Duration::from_secs(60),
            single_creates: 20,
            create_parallelism: 16,
            deadline: Duration::from_secs(1800),
            restarts: true,
            key_cache: None,
            distinct_keys: None,
            issuance_rate: None,
            renewal: true,
        }
    }
}

/// One operator's figures.
#[derive(Debug, Clone, Default)]
pub struct OperatorFigures {
    pub name: String,
    /// Requests from the first create until every database is Ready.
    pub converge: RequestCounts,
    /// The design's minimum writes for the databases created in the bulk phase.
    pub minimum_writes: usize,
    /// State-changing writes in the idle window.
    pub idle_writes: usize,
    /// Process figures when the idle window ended (the original process).
    pub after_idle: ProcessSample,
    /// CPU used during convergence alone.
    pub converge_cpu: Duration,
    /// Requests from the restart until it went quiet, and the new process's figures then.
    pub restart: Option<(RequestCounts, ProcessSample, Duration)>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct BenchReport {
    pub options_databases: usize,
    pub namespaces: usize,
    pub unrelated_secrets: usize,
    pub idle: Duration,
    pub kinds: Vec<DbKind>,
    /// First create to last database converged (workload + both TLS conditions True).
    pub converge_all: Duration,
    /// First create to last database Ready.
    pub ready_all: Duration,
    /// Time the bench took to send all the creates.
    pub create_send: Duration,
    pub operators: Vec<OperatorFigures>,
    /// Writes of every client in the idle window (operators, stand-ins, bench).
    pub idle_writes_all: std::collections::BTreeMap<String, usize>,
    /// Creation to workload created, one database at a time on the idle system.
    pub single_workload: Vec<Duration>,
    /// Creation to converged, same databases.
    pub single_converged: Vec<Duration>,
    /// The bench process (API server + stand-ins + bench watches).
    pub testbed: ProcessSample,
    pub total_requests: usize,
    /// Certificates the stand-in issued during convergence (Secrets it created), and the time
    /// from the first create of a database to its last one.
    pub issued: (usize, Duration),
    /// The stand-in's rate limit, if any.
    pub issuance_rate: Option<f64>,
    pub renewal: Option<RenewalFigures>,
}

/// Day 2 at scale: every certificate of every database renewed at once.
#[derive(Debug, Clone, Default)]
pub struct RenewalFigures {
    /// Certificates asked to renew, and how long sending that took.
    pub certificates: usize,
    pub send: Duration,
    /// From the first renewal sent to each database's pods all serving a new serial.
    pub served: Vec<Duration>,
    /// Per operator ([`OPERATORS`] order): its requests from the first renewal until quiet.
    pub requests: Vec<RequestCounts>,
    /// Per operator: the most requests it made in any one second, during the renewal and
    /// during the convergence of the same databases.
    pub peak_per_second: Vec<(usize, usize)>,
    /// Certificates the stand-in issued during the renewal, and from its first to its last.
    pub issued: (usize, Duration),
}

impl BenchReport {
    /// True when everything converged and nobody wrote while idle or after a restart.
    pub fn idle_writes_zero(&self) -> bool {
        self.operators.iter().all(|o| {
            o.idle_writes == 0
                && o.restart
                    .as_ref()
                    .is_none_or(|(r, _, _)| r.all_writes() == 0)
        })
    }
}

fn short(kind: DbKind) -> &'static str {
    match kind {
        DbKind::MySQL => "my",
        DbKind::PerconaXtraDB => "px",
        DbKind::ProxySQL => "prx",
        DbKind::Singlestore => "sdb",
        DbKind::MSSQLServer => "ms",
    }
}

/// The i-th database: kinds round-robin, namespaces round-robin over the kinds' cycles.
fn database(i: usize, namespaces: usize, prefix: &str) -> (DbKind, Key) {
    let kind = DbKind::ALL[i % DbKind::ALL.len()];
    let ns = format!("bench-{}", (i / DbKind::ALL.len()) % namespaces.max(1));
    (kind, (ns, format!("{}-{prefix}{i:05}", short(kind))))
}

/// Passes a progress line on, on whole 5-second marks since `started` and only when it changed.
struct Ticker<'p, F: Fn(&str)> {
    progress: &'p F,
    started: Instant,
    last: String,
}

impl<'p, F: Fn(&str)> Ticker<'p, F> {
    fn new(progress: &'p F, started: Instant) -> Self {
        Ticker {
            progress,
            started,
            last: String::new(),
        }
    }

    fn tell(&mut self, line: String) {
        let elapsed = self.started.elapsed();
        if line != self.last && elapsed.as_secs().is_multiple_of(5) {
            (self.progress)(&format!("[{:>6.1}s] {line}", elapsed.as_secs_f64()));
            self.last = line;
        }
    }
}

/// Polls `done` every 100 ms until it is true or `deadline` passes (then an error saying `what`).
async fn wait_until(
    what: &str,
    deadline: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    while !done() {
        anyhow::ensure!(
            Instant::now() < until,
            "timed out after {deadline:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Waits until the API server has answered no request for `quiet` (e.g. an operator that
/// finished re-reconciling after a restart), at most `deadline`.
async fn wait_quiet(log: &RequestLog, quiet: Duration, deadline: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    let mut last = (log.len(), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = log.len();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "the API server did not go quiet within {deadline:?}"
        );
    }
}

async fn apply_json(
    api: &Api<impl kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug>,
    name: &str,
    body: &serde_json::Value,
) -> anyhow::Result<()> {
    api.patch(
        name,
        &PatchParams::apply(BENCH_USER).force(),
        &Patch::Apply(body),
    )
    .await
    .with_context(|| format!("applying {name}"))?;
    Ok(())
}

/// Namespaces, a CA Secret and Issuer in each, and the unrelated Secrets.
async fn seed(client: &kube::Client, options: &BenchOptions) -> anyhow::Result<()> {
    let (cert, key) = manifests::self_signed_ca("dbtls bench CA")?;
    let mut namespaces: Vec<String> = (0..options.namespaces.max(1))
        .map(|i| format!("bench-{i}"))
        .collect();
    namespaces.push(UNRELATED_NAMESPACE.into());
    for ns in &namespaces {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        apply_json(&Api::<Namespace>::all(client.clone()), ns, &body).await?;
        if ns == UNRELATED_NAMESPACE {
            continue;
        }
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": format!("{ISSUER}-ca"), "namespace": ns},
            "stringData": {"tls.crt": cert, "tls.key": key},
        });
        apply_json(
            &Api::<Secret>::namespaced(client.clone(), ns),
            &format!("{ISSUER}-ca"),
            &secret,
        )
        .await?;
        let issuer = json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": {"name": ISSUER, "namespace": ns},
            "spec": {"ca": {"secretName": format!("{ISSUER}-ca")}},
        });
        let api: Api<dbtls_contract::certmanager::Issuer> = Api::namespaced(client.clone(), ns);
        apply_json(&api, ISSUER, &issuer).await?;
        // The MySQL every ProxySQL of the namespace fronts (one, not one per ProxySQL: the
        // figures are per benchmarked database).
        let backend: serde_json::Value =
            serde_yaml::from_str(&manifests::proxysql_backend(PROXYSQL_BACKEND))?;
        let api: Api<dbtls_contract::api::MySQL> = Api::namespaced(client.clone(), ns);
        apply_json(&api, PROXYSQL_BACKEND, &backend).await?;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), UNRELATED_NAMESPACE);
    let filler = "x".repeat(1024);
    futures::stream::iter(0..options.unrelated_secrets)
        .map(|i| {
            let secrets = secrets.clone();
            let body = json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": format!("unrelated-{i:05}"), "labels": {"app": "unrelated"}},
                "stringData": {"payload": filler},
            });
            async move { apply_json(&secrets, &format!("unrelated-{i:05}"), &body).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    Ok(())
}

/// Creates database `i` (with its license Secret for Singlestore) and notes the time.
async fn create(
    client: &kube::Client,
    kinds: &apply::KindCache,
    tracker: &Tracker,
    kind: DbKind,
    key: &Key,
) -> anyhow::Result<()> {
    let mut yaml = manifests::tls_database(kind, &key.1, "Issuer", ISSUER);
    if kind == DbKind::ProxySQL {
        // The namespace's shared backend instead of one of its own.
        let own = yaml.split("\n---\n").next().unwrap_or_default();
        yaml = own.replace(
            &format!("name: {}-backend", key.1),
            &format!("name: {PROXYSQL_BACKEND}"),
        );
    }
    tracker.created(key.clone(), Instant::now());
    apply::apply_yaml(client, kinds, &yaml, Some(&key.0), BENCH_USER)
        .await
        .with_context(|| format!("creating {kind} {}/{}", key.0, key.1))?;
    Ok(())
}

/// The stand-ins a run keeps in its own process: cert-manager (with the keys made before the
/// clock starts) and the workload status, for `namespaces` (none: all).
struct StandIns {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl StandIns {
    fn start(
        cert_manager: kube::Client,
        workload_status: kube::Client,
        keys: Vec<rcgen::KeyPair>,
        options: &BenchOptions,
        namespaces: Vec<String>,
    ) -> StandIns {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let config = StandInConfig {
            key_pool: Some(certmanager::keys::KeyPool::start_with(keys)),
            issuance_rate: options.issuance_rate,
            concurrency: 16,
            namespaces: namespaces.clone(),
            ..StandInConfig::default()
        };
        let tasks = vec![
            tokio::spawn(certmanager::run(cert_manager, config, stopped())),
            tokio::spawn(workload_sim::run(workload_status, namespaces, stopped())),
        ];
        StandIns { stop, tasks }
    }

    /// Ends the run: the operators (their logs kept in `dir`), the bench's watches, then the
    /// stand-ins.
    async fn stop(
        self,
        running: &[Operator],
        watches: Vec<tokio::task::JoinHandle<()>>,
        dir: &std::path::Path,
    ) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for op in running {
            let _ = std::fs::write(dir.join(format!("{}.log", op.name)), op.logs());
            op.kill().await?;
        }
        for task in watches {
            task.abort();
        }
        futures::future::join_all(self.tasks).await;
        Ok(())
    }
}

/// What the bulk phase measured.
struct Bulk {
    kinds: Vec<DbKind>,
    /// Time the bench took to send all the creates.
    create_send: Duration,
    /// First create to last database Ready, and to last converged.
    ready_all: Duration,
    converge_all: Duration,
}

/// Creates `options.databases` databases, `options.create_parallelism` at a time, and waits
/// until every one is Ready.
async fn create_all(
    bench: &kube::Client,
    kinds_cache: &apply::KindCache,
    tracker: &Tracker,
    options: &BenchOptions,
    progress: &impl Fn(&str),
    running: &[Operator],
) -> anyhow::Result<Bulk> {
    let started = Instant::now();
    let planned: Vec<(DbKind, Key)> = (0..options.databases)
        .map(|i| database(i, options.namespaces, ""))
        .collect();
    futures::stream::iter(planned.iter())
        .map(|(kind, key)| create(bench, kinds_cache, tracker, *kind, key))
        .buffer_unordered(options.create_parallelism.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let create_send = started.elapsed();
    progress(&format!(
        "sent {} creates in {create_send:.1?}",
        options.databases
    ));
    let mut ticker = Ticker::new(progress, started);
    wait_until("every database to be Ready", options.deadline, || {
        let (converged, ready, total) = tracker.progress();
        ticker.tell(format!("{converged}/{total} converged, {ready} Ready"));
        ready == total
    })
    .await
    .map_err(|e| {
        let logs: String = running
            .iter()
            .map(|o| o.logs())
            .collect::<Vec<_>>()
            .join("\n");
        let tail: String = logs.lines().rev().take(40).collect::<Vec<_>>().join("\n");
        e.context(format!("operator log tail (newest first):\n{tail}"))
    })?;
    let ready_all = started.elapsed();
    let converge_all = tracker
        .last_converged()
        .map(|t| t.saturating_duration_since(started))
        .unwrap_or(ready_all);
    Ok(Bulk {
        kinds: planned.iter().map(|(k, _)| *k).collect(),
        create_send,
        ready_all,
        converge_all,
    })
}

/// The stand-in's keys, made before the clock starts (none without a key cache).
fn key_stock(
    options: &BenchOptions,
    progress: &impl Fn(&str),
) -> anyhow::Result<Vec<rcgen::KeyPair>> {
    let Some(file) = &options.key_cache else {
        return Ok(Vec::new());
    };
    // Every database has at most three Certificates; re-issues draw on the refill.
    let issuances = options.databases * (1 + usize::from(options.renewal));
    let wanted = 3 * (issuances + options.single_creates);
    progress(&format!(
        "{wanted} keys from {} (those it lacks are generated now, once)",
        file.display()
    ));
    let distinct = options.distinct_keys.map_or(wanted, |d| d.clamp(1, wanted));
    let keys = certmanager::keys::cached_rsa_keys(file, distinct)
        .with_context(|| format!("key cache {}", file.display()))?;
    let keys = if distinct < wanted {
        progress(&format!(
            "--distinct-keys {distinct}: each key is handed out up to {} times",
            wanted.div_ceil(distinct)
        ));
        certmanager::keys::reused(&keys, wanted)
    } else {
        keys
    };
    progress(&format!(
        "{} keys ready before the clock starts",
        keys.len()
    ));
    Ok(keys)
}

/// Creates `options.single_creates` databases one at a time, each once the previous is Ready:
/// creation to workload created, and to converged.
async fn single_creates(
    bench: &kube::Client,
    kinds_cache: &apply::KindCache,
    tracker: &Tracker,
    options: &BenchOptions,
    running: &[Operator],
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut single_workload = Vec::new();
    let mut single_converged = Vec::new();
    for i in 0..options.single_creates {
        let (kind, key) = database(i, options.namespaces, "single-");
        let sent = Instant::now();
        create(bench, kinds_cache, tracker, kind, &key).await?;
        if let Err(e) = wait_until(
            &format!("single database {}/{} to converge", key.0, key.1),
            Duration::from_secs(60),
            || tracker.get(&key).is_some_and(|t| t.converged.is_some()),
        )
        .await
        {
            let diagnosis = where_it_stands(bench, kind, &key, tracker, running).await;
            return Err(e.context(diagnosis));
        }
        if let Some(track) = tracker.get(&key) {
            if let Some(w) = track.workload {
                single_workload.push(w.saturating_duration_since(sent));
            }
            if let Some(c) = track.converged {
                single_converged.push(c.saturating_duration_since(sent));
            }
        }
        // Let the database reach Ready so the next one starts on an idle system.
        wait_until("single database Ready", Duration::from_secs(60), || {
            tracker.get(&key).is_some_and(|t| t.ready.is_some())
        })
        .await?;
    }
    Ok((single_workload, single_converged))
}

async fn sample_operator(operator: &Operator) -> ProcessSample {
    match operator.pid().await {
        Some(pid) => process::sample(&pid.to_string()).unwrap_or_default(),
        None => ProcessSample::default(),
    }
}

/// Runs the whole benchmark; `progress` receives a line now and then.
pub async fn run(options: BenchOptions, progress: impl Fn(&str)) -> anyhow::Result<BenchReport> {
    let dir = std::env::temp_dir().join(format!("dbtls-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let server = TestApiServer::start(ApiServerConfig {
        // Thousands of databases produce hundreds of thousands of watch events; a window as
        // large as kube-apiserver's watch cache keeps reconnecting watches off 410 Gone.
        history_size: 200_000,
        watch_buffer: 65_536,
        ..ApiServerConfig::default()
    })
    .await?;
    let log = server.request_log();
    let admin = server.client_as("admin").await?;
    crds::install(&admin, Played::ByStandIn).await?;
    let bench = server.client_as(BENCH_USER).await?;
    seed(&bench, &options).await?;
    progress(&format!(
        "seeded {} namespaces, {} unrelated Secrets",
        options.namespaces, options.unrelated_secrets
    ));

    let stand_ins = StandIns::start(
        server.client_as("cert-manager").await?,
        server.client_as("kube-controller-manager").await?,
        key_stock(&options, &progress)?,
        &options,
        Vec::new(),
    );
    let tracker = Tracker::default();
    let watches = tracker.watch(&bench);

    let bin_dir = operators::build_once().await?;
    let mut running = Vec::new();
    for name in OPERATORS {
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        server.write_kubeconfig(&kubeconfig, name)?;
        running.push(Operator::start(name, &bin_dir, &kubeconfig, &[]).await?);
    }
    // Started: both operators have opened their watches and the server went quiet.
    wait_until(
        "the operators to open their watches",
        Duration::from_secs(60),
        || {
            let records = log.snapshot();
            OPERATORS.iter().all(|op| {
                records
                    .iter()
                    .any(|r| r.user == *op && r.verb.as_str() == "watch")
            })
        },
    )
    .await?;
    wait_quiet(&log, Duration::from_secs(1), Duration::from_secs(60)).await?;
    let mut before = Vec::new();
    for op in &running {
        before.push(sample_operator(op).await);
    }
    progress("operators started");

    // Bulk phase.
    let start_index = log.len();
    let kinds_cache = apply::KindCache::default();
    let Bulk {
        kinds,
        create_send,
        ready_all,
        converge_all,
    } = create_all(
        &bench,
        &kinds_cache,
        &tracker,
        &options,
        &progress,
        &running,
    )
    .await?;
    // The last status writes of convergence (a rollout's final StatefulSet status, the
    // operators' answers to it) can trail the Ready phase: idle starts once the API server has
    // been quiet for a second, so the idle window measures writes that never stop, not those.
    wait_quiet(&log, Duration::from_secs(1), options.deadline).await?;
    let converge_index = log.len();
    let mut at_converge = Vec::new();
    for op in &running {
        at_converge.push(sample_operator(op).await);
    }
    progress(&format!(
        "all converged in {converge_all:.1?}, Ready in {ready_all:.1?}; idle for {:?}",
        options.idle
    ));

    // Idle window.
    tokio::time::sleep(options.idle).await;
    let idle_index = log.len();
    let records = log.snapshot();
    let converge_records = &records[start_index..converge_index];
    let idle_records = &records[converge_index..idle_index];
    let minimum = requests::minimum_for(&kinds);
    let mut figures = Vec::new();
    for (i, op) in running.iter().enumerate() {
        let idle = RequestCounts::of(idle_records, OPERATORS[i]);
        let after_idle = sample_operator(op).await;
        figures.push(OperatorFigures {
            name: OPERATORS[i].to_string(),
            converge: RequestCounts::of(converge_records, OPERATORS[i]),
            minimum_writes: minimum[i],
            idle_writes: idle.all_writes(),
            after_idle,
            converge_cpu: at_converge[i].cpu.saturating_sub(before[i].cpu),
            restart: None,
        });
    }
    let idle_writes_all = requests::writes_by_user(idle_records);
    let issued = requests::issued(converge_records);

    // Restart each operator: it re-lists and re-reconciles everything, and must write nothing.
    if options.restarts {
        for (i, op) in running.iter().enumerate() {
            let from = log.len();
            let restarted = Instant::now();
            op.restart().await?;
            wait_until(
                "the restarted operator to open its watches",
                Duration::from_secs(60),
                || {
                    log.since(from)
                        .iter()
                        .any(|r| r.user == OPERATORS[i] && r.verb.as_str() == "watch")
                },
            )
            .await?;
            wait_quiet(&log, Duration::from_secs(3), options.deadline).await?;
            let took = restarted.elapsed();
            let counts = RequestCounts::of(&log.since(from), OPERATORS[i]);
            let sample = sample_operator(op).await;
            progress(&format!(
                "{} restarted: {} writes, {} reads, quiet after {took:.1?}",
                OPERATORS[i],
                counts.all_writes(),
                counts.reads
            ));
            figures[i].restart = Some((counts, sample, took));
        }
    }

    let renewal = if options.renewal {
        Some(
            renew_all(
                &bench,
                &log,
                &tracker,
                &options,
                converge_records,
                &progress,
            )
            .await?,
        )
    } else {
        None
    };

    // One database at a time on the idle system.
    let (single_workload, single_converged) =
        single_creates(&bench, &kinds_cache, &tracker, &options, &running).await?;

    let report = BenchReport {
        options_databases: options.databases,
        namespaces: options.namespaces,
        unrelated_secrets: options.unrelated_secrets,
        idle: options.idle,
        kinds,
        converge_all,
        ready_all,
        create_send,
        operators: figures,
        idle_writes_all,
        single_workload,
        single_converged,
        testbed: process::sample("self").unwrap_or_default(),
        total_requests: converge_index - start_index,
        issued,
        issuance_rate: options.issuance_rate,
        renewal,
    };

    stand_ins.stop(&running, watches, &dir).await?;
    server.shutdown().await;
    Ok(report)
}

/// Renews every Certificate of the bench's namespaces at once and waits until every database's
/// pods serve a new serial (`TLSServing`), then until the API server is quiet.
async fn renew_all(
    bench: &kube::Client,
    log: &RequestLog,
    tracker: &Tracker,
    options: &BenchOptions,
    converge_records: &[crate::apiserver::RequestRecord],
    progress: &impl Fn(&str),
) -> anyhow::Result<RenewalFigures> {
    wait_until(
        "every database's pods to serve its certificate",
        options.deadline,
        || {
            let (serving, of) = tracker.serving_progress();
            serving == of
        },
    )
    .await?;
    let all: Api<Certificate> = Api::all(bench.clone());
    let certificates: Vec<Certificate> = all
        .list(&kube::api::ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|c| c.namespace().is_some_and(|ns| ns.starts_with("bench-")))
        .collect();
    let from = log.len();
    tracker.start_renewal();
    let started = Instant::now();
    futures::stream::iter(certificates.iter())
        .map(|c| {
            let api: Api<Certificate> =
                Api::namespaced(bench.clone(), &c.namespace().unwrap_or_default());
            async move { renew(&api, c).await }
        })
        .buffer_unordered(options.create_parallelism.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let send = started.elapsed();
    progress(&format!(
        "renewal of {} Certificates sent in {send:.1?}",
        certificates.len()
    ));
    let mut ticker = Ticker::new(progress, started);
    wait_until(
        "every database's pods to serve a renewed certificate",
        options.deadline,
        || {
            let (served, of) = tracker.renewal_progress();
            ticker.tell(format!("{served}/{of} serve the renewed certificate"));
            served == of
        },
    )
    .await?;
    let served = tracker
        .renewal_served()
        .into_iter()
        .map(|at| at.saturating_duration_since(started))
        .collect();
    wait_quiet(log, Duration::from_secs(1), options.deadline).await?;
    let records = log.since(from);
    Ok(RenewalFigures {
        certificates: certificates.len(),
        send,
        served,
        requests: OPERATORS
            .iter()
            .map(|op| RequestCounts::of(&records, op))
            .collect(),
        peak_per_second: OPERATORS
            .iter()
            .map(|op| {
                (
                    requests::peak_per_second(&records, op),
                    requests::peak_per_second(converge_records, op),
                )
            })
            .collect(),
        issued: requests::issued(&records),
    })
}

/// Why a single database did not converge: what the bench saw, what is stored, and whether each
/// operator is working (CPU over 2 s, its log tail, its reconcile and request series).
async fn where_it_stands(
    client: &kube::Client,
    kind: DbKind,
    key: &Key,
    tracker: &Tracker,
    running: &[Operator],
) -> String {
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client.clone(), &key.0, &kind.api_resource());
    let stored = match api.get(&key.1).await {
        Ok(o) => format!(
            "finalizers {:?}, status {}",
            o.metadata.finalizers, o.data["status"]
        ),
        Err(e) => e.to_string(),
    };
    let mut out = format!(
        "seen by the bench: {:?}; stored: {stored}",
        tracker.get(key)
    );
    for (op, name) in running.iter().zip(OPERATORS) {
        let before = sample_operator(op).await.cpu;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu = sample_operator(op).await.cpu.saturating_sub(before);
        let logs = op.logs();
        let tail: Vec<&str> = logs.lines().rev().take(8).collect();
        let series = match op.metrics_addr() {
            Some(addr) => operator_series(addr).await,
            None => String::new(),
        };
        out.push_str(&format!(
            "\n{name}: CPU over 2 s {cpu:?}; log tail (newest first):\n{}\n{series}",
            tail.join("\n")
        ));
    }
    out
}

/// The operator's reconcile and request series, for a diagnosis.
async fn operator_series(addr: std::net::SocketAddr) -> String {
    match crate::harness::http::get(&format!("http://{addr}"), "/metrics").await {
        Ok((_, body)) => body
            .lines()
            .filter(|l| {
                l.starts_with("dbtls_reconcil")
                    || l.starts_with("dbtls_watch")
                    || l.starts_with("dbtls_api_requests_total{code=\"2")
            })
            .take(60)
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("metrics unreachable: {e:#}"),
    }
}
