//! The benchmark against any cluster (`bench --kubeconfig FILE`, e.g. the real control plane
//! `.ci/real-cluster` starts; docs/benchmarks.md, "On a real API server"): the same databases,
//! stand-ins and operator binaries as on the testbed, but no request log to count from. The figures come from what a user of a real cluster has:
//! each operator's own `dbtls_api_requests_total{verb, resource, code}` series, scraped before
//! and after each phase, and `/proc` for CPU and memory.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dbtls_contract::DbKind;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};

use super::process::ProcessSample;
use super::report::{per_db, restart_cells, single_line, target_lines};
use super::requests::{self, OPERATORS, RequestCounts};
use super::tracker::Tracker;
use super::{BenchOptions, StandIns, create_all, key_stock, sample_operator, seed, single_creates};
use crate::harness::cluster::{Cluster, Played};
use crate::harness::operators::{self, Operator};
use crate::harness::{apply, crds, http, identities};

/// The operators' request counter (docs/operations.md).
const REQUESTS: &str = "dbtls_api_requests_total";

/// One scrape of an operator's request counter: the count per (verb, resource, code).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requests(BTreeMap<(String, String, String), f64>);

impl Requests {
    /// Reads the samples of [`REQUESTS`] from a Prometheus text body.
    pub fn parse(body: &str) -> Requests {
        let mut counts = BTreeMap::new();
        for line in body.lines().filter(|l| l.starts_with(REQUESTS)) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let label = |name: &str| {
                series
                    .split_once(&format!("{name}=\""))
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(v, _)| v.to_string())
                    .unwrap_or_default()
            };
            counts.insert((label("verb"), label("resource"), label("code")), value);
        }
        Requests(counts)
    }

    fn total(&self) -> f64 {
        self.0.values().sum()
    }

    /// What happened between `earlier` and `self`, counted as the request log counts
    /// (no-op writes cannot be told apart here: 0).
    pub fn since(&self, earlier: &Requests) -> RequestCounts {
        let mut counts = RequestCounts::default();
        for ((verb, resource, code), now) in &self.0 {
            let before = earlier
                .0
                .get(&(verb.clone(), resource.clone(), code.clone()))
                .copied()
                .unwrap_or_default();
            let n = (now - before).max(0.0) as usize;
            if n == 0 {
                continue;
            }
            if code.parse::<u16>().map_or(true, |c| c >= 400 && c != 404) {
                counts.errors += n;
            }
            match verb.as_str() {
                "create" | "update" | "patch" | "apply" | "delete" | "deletecollection" => {
                    if resource == "events" {
                        counts.events += n;
                    } else {
                        counts.writes += n;
                        *counts.writes_by_target.entry(resource.clone()).or_default() += n;
                    }
                }
                "watch" => counts.watches += n,
                "get" | "list" => {
                    counts.reads += n;
                    *counts
                        .reads_by_target
                        .entry(format!("{verb} {resource}"))
                        .or_default() += n;
                }
                _ => counts.reads += n,
            }
        }
        counts
    }
}

async fn scrape(operator: &Operator) -> anyhow::Result<Requests> {
    let addr = operator
        .metrics_addr()
        .with_context(|| format!("{} has no metrics address", operator.name))?;
    let (code, body) = http::get(&format!("http://{addr}"), "/metrics").await?;
    anyhow::ensure!(code == 200, "{} /metrics answered {code}", operator.name);
    Ok(Requests::parse(&body))
}

/// Waits until no operator's request count moved for `quiet` (at most `deadline`); the
/// counts then.
async fn wait_quiet(
    running: &[Operator],
    quiet: Duration,
    deadline: Duration,
) -> anyhow::Result<Vec<Requests>> {
    let until = Instant::now() + deadline;
    let mut last: Option<(Vec<f64>, Instant)> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut now = Vec::new();
        for op in running {
            // An operator starting up does not answer yet: not quiet.
            now.push(scrape(op).await.ok());
        }
        let totals: Option<Vec<f64>> = now
            .iter()
            .map(|r| r.as_ref().filter(|r| r.total() > 0.0).map(Requests::total))
            .collect();
        match (&last, totals) {
            (Some((before, since)), Some(totals)) if *before == totals => {
                if since.elapsed() >= quiet {
                    return Ok(now.into_iter().flatten().collect());
                }
            }
            (_, Some(totals)) => last = Some((totals, Instant::now())),
            (_, None) => last = None,
        }
        anyhow::ensure!(
            Instant::now() < until,
            "the operators did not go quiet within {deadline:?}"
        );
    }
}

/// One operator's figures on a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOperatorFigures {
    pub name: String,
    pub converge: RequestCounts,
    pub minimum_writes: usize,
    pub idle: RequestCounts,
    pub converge_cpu: Duration,
    pub after_idle: ProcessSample,
    /// Requests from the restart until quiet, the new process's figures, and how long it took.
    pub restart: Option<(RequestCounts, ProcessSample, Duration)>,
}

/// Everything one run on a cluster measured.
#[derive(Debug, Clone, Default)]
pub struct ClusterReport {
    pub server: String,
    pub databases: usize,
    pub namespaces: usize,
    pub kinds: Vec<DbKind>,
    pub create_send: Duration,
    pub converge_all: Duration,
    pub ready_all: Duration,
    pub single_workload: Vec<Duration>,
    pub single_converged: Vec<Duration>,
    pub operators: Vec<ClusterOperatorFigures>,
}

/// Refuses a cluster where a bench ran before: its databases would be counted as this run's.
async fn ensure_fresh(client: &kube::Client, options: &BenchOptions) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for i in 0..options.namespaces.max(1) {
        let ns = format!("bench-{i}");
        anyhow::ensure!(
            api.get_opt(&ns).await?.is_none(),
            "namespace {ns} exists: a bench ran on this cluster before; delete the bench-* \
             namespaces (and wait until they are gone) first"
        );
    }
    Ok(())
}

/// Runs the benchmark against the cluster of `kubeconfig`.
pub async fn run(
    kubeconfig: PathBuf,
    options: BenchOptions,
    progress: impl Fn(&str),
) -> anyhow::Result<ClusterReport> {
    // No renewal phase here: no keys for it.
    let options = BenchOptions {
        renewal: false,
        ..options
    };
    let dir = std::env::temp_dir().join(format!("dbtls-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cluster = Cluster::Real {
        kubeconfig: kubeconfig.clone(),
    };
    let admin = cluster.client_as("admin").await?;
    let server = admin.apiserver_version().await.map_or_else(
        |e| format!("unknown version ({e})"),
        |v| format!("kube-apiserver {}", v.git_version),
    );
    ensure_fresh(&admin, &options).await?;
    crds::install(&admin, Played::ByStandIn).await?;
    let kinds_cache = apply::KindCache::default();
    identities::install(&admin, &kinds_cache, false).await?;
    seed(&admin, &options).await?;
    let namespaces: Vec<String> = (0..options.namespaces.max(1))
        .map(|i| format!("bench-{i}"))
        .collect();
    progress(&format!("{server}: seeded {} namespaces", namespaces.len()));

    let stand_ins = StandIns::start(
        cluster.client_as(identities::CERT_MANAGER_USER).await?,
        cluster.client_as(identities::WORKLOAD_SIM_USER).await?,
        key_stock(&options, &progress)?,
        &options,
        namespaces.clone(),
    );
    // The bench plays a user with kubectl: the kubeconfig's identity.
    let bench = admin.clone();
    let tracker = Tracker::default();
    let watches = tracker.watch(&bench);

    let bin_dir = operators::build_once().await?;
    let scope = format!("--namespace={}", namespaces.join(","));
    let mut running = Vec::new();
    for name in OPERATORS {
        let kubeconfig = cluster.kubeconfig_for(&dir, name).await?;
        running.push(
            Operator::start(name, &bin_dir, &kubeconfig, std::slice::from_ref(&scope)).await?,
        );
    }
    let before = wait_quiet(&running, Duration::from_secs(2), Duration::from_secs(120)).await?;
    let mut cpu_before = Vec::new();
    for op in &running {
        cpu_before.push(sample_operator(op).await.cpu);
    }
    progress("operators started");

    let bulk = create_all(
        &bench,
        &kinds_cache,
        &tracker,
        &options,
        &progress,
        &running,
    )
    .await?;
    let at_converge = wait_quiet(&running, Duration::from_secs(2), options.deadline).await?;
    let mut cpu_converge = Vec::new();
    for op in &running {
        cpu_converge.push(sample_operator(op).await.cpu);
    }
    progress(&format!(
        "all converged in {:.1?}, Ready in {:.1?}; idle for {:?}",
        bulk.converge_all, bulk.ready_all, options.idle
    ));
    tokio::time::sleep(options.idle).await;
    let minimum = requests::minimum_for(&bulk.kinds);
    let mut figures = Vec::new();
    for (i, op) in running.iter().enumerate() {
        let after_idle = scrape(op).await?;
        figures.push(ClusterOperatorFigures {
            name: OPERATORS[i].to_string(),
            converge: at_converge[i].since(&before[i]),
            minimum_writes: minimum[i],
            idle: after_idle.since(&at_converge[i]),
            converge_cpu: cpu_converge[i].saturating_sub(cpu_before[i]),
            after_idle: sample_operator(op).await,
            restart: None,
        });
    }

    if options.restarts {
        for (i, op) in running.iter().enumerate() {
            let restarted = Instant::now();
            op.restart().await?;
            // A new process counts from zero.
            let quiet = wait_quiet(&running, Duration::from_secs(3), options.deadline).await?;
            let took = restarted.elapsed();
            let counts = quiet[i].since(&Requests::default());
            progress(&format!(
                "{} restarted: {} writes, {} reads, quiet after {took:.1?}",
                OPERATORS[i],
                counts.all_writes(),
                counts.reads
            ));
            figures[i].restart = Some((counts, sample_operator(op).await, took));
        }
    }

    let (single_workload, single_converged) =
        single_creates(&bench, &kinds_cache, &tracker, &options, &running).await?;

    stand_ins.stop(&running, watches, &dir).await?;
    // Leave the cluster as found: the namespace controller removes the rest.
    let api: Api<Namespace> = Api::all(admin.clone());
    for ns in namespaces
        .iter()
        .chain(std::iter::once(&super::UNRELATED_NAMESPACE.to_string()))
    {
        let _ = api.delete(ns, &DeleteParams::default()).await;
    }
    Ok(ClusterReport {
        server,
        databases: options.databases,
        namespaces: options.namespaces,
        kinds: bulk.kinds,
        create_send: bulk.create_send,
        converge_all: bulk.converge_all,
        ready_all: bulk.ready_all,
        single_workload,
        single_converged,
        operators: figures,
    })
}

/// The report in the shape of docs/benchmarks.md's tables.
pub fn render(report: &ClusterReport) -> String {
    let n = report.databases;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### N = {n} databases on {} ({} namespaces; counts from the operators' `{REQUESTS}`)\n",
        report.server, report.namespaces
    );
    let _ = writeln!(
        out,
        "- creates sent in {:.1} s; all converged after **{:.1} s**; all Ready after {:.1} s",
        report.create_send.as_secs_f64(),
        report.converge_all.as_secs_f64(),
        report.ready_all.as_secs_f64(),
    );
    single_line(&mut out, &report.single_workload, &report.single_converged);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| operator | reads/db | writes/db | minimum/db (ratio) | events/db | watches | errors | idle writes | restart: writes / reads/db | restart quiet after | CPU s (converge) | peak RSS MiB |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for op in &report.operators {
        let c = &op.converge;
        let (restart_writes, restart_reads, restart_took) = restart_cells(&op.restart, n);
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} | {:.2} ({:.2}x) | {:.2} | {} | {} | {} | {restart_writes} / {restart_reads} | {restart_took} | {:.1} | {:.1} |",
            op.name,
            per_db(c.reads, n),
            per_db(c.writes, n),
            per_db(op.minimum_writes, n),
            c.writes as f64 / op.minimum_writes.max(1) as f64,
            per_db(c.events, n),
            c.watches,
            c.errors,
            op.idle.all_writes(),
            op.converge_cpu.as_secs_f64(),
            op.after_idle.peak_rss_mib(),
        );
    }
    let _ = writeln!(out);
    for op in &report.operators {
        target_lines(&mut out, &op.name, &op.converge, n);
        if let Some((_, sample, _)) = &op.restart {
            let _ = writeln!(
                out,
                "- {} after restart: peak RSS {:.1} MiB",
                op.name,
                sample.peak_rss_mib()
            );
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BODY: &str = "# HELP dbtls_api_requests_total x\n\
        dbtls_api_requests_total{code=\"200\",resource=\"secrets\",verb=\"get\"} 10\n\
        dbtls_api_requests_total{code=\"404\",resource=\"secrets\",verb=\"get\"} 4\n\
        dbtls_api_requests_total{code=\"200\",resource=\"mysqls/status\",verb=\"apply\"} 3\n\
        dbtls_api_requests_total{code=\"201\",resource=\"events\",verb=\"create\"} 2\n\
        dbtls_api_requests_total{code=\"409\",resource=\"secrets\",verb=\"apply\"} 1\n\
        dbtls_api_requests_total{code=\"error\",resource=\"services\",verb=\"list\"} 1\n\
        dbtls_api_requests_total{code=\"200\",resource=\"pods\",verb=\"watch\"} 5\n\
        dbtls_reconciles_total{kind=\"MySQL\",result=\"ok\"} 99\n";

    #[test]
    fn request_series_are_counted_as_the_request_log_counts() {
        let now = Requests::parse(BODY);
        let earlier = Requests::parse(
            "dbtls_api_requests_total{code=\"200\",resource=\"secrets\",verb=\"get\"} 4\n",
        );
        let counts = now.since(&earlier);
        assert_eq!(
            counts.reads,
            6 + 4 + 1,
            "gets since, 404s included, and the list"
        );
        assert_eq!(counts.reads_by_target["get secrets"], 10);
        assert_eq!(counts.writes, 3 + 1);
        assert_eq!(counts.writes_by_target["mysqls/status"], 3);
        assert_eq!(counts.events, 2);
        assert_eq!(counts.watches, 5);
        assert_eq!(
            counts.errors, 2,
            "the 409 and the request that got no answer"
        );
        assert_eq!(
            now.since(&now),
            RequestCounts::default(),
            "nothing since itself"
        );
    }
}
