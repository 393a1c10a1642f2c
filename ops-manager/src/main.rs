//! The ops-manager binary: flags, then the shared bootstrap (logging, metrics/health server,
//! CRD wait, leader election, graceful shutdown) around one controller per kind.

use clap::Parser;
use dbtls_contract::DbKind;
use dbtls_contract::api::ops::{
    MSSQLServerOpsRequest, MySQLOpsRequest, PerconaXtraDBOpsRequest, ProxySQLOpsRequest,
    SinglestoreOpsRequest,
};
use dbtls_contract::certmanager::{Certificate, ClusterIssuer, Issuer};
use dbtls_contract::tls::DEFAULT_CLUSTER_DOMAIN;
use dbtls_runtime::bootstrap::Operator;
use dbtls_runtime::cli::CommonArgs;
use dbtls_runtime::leader::LeaderArgs;
use kube::core::ApiResource;
use ops_manager::context::Context;
use ops_manager::controller;
use ops_manager::metrics::CertificateMetrics;
use ops_manager::serving::metrics::ServingMetrics;
use ops_manager::serving::{ReloadPolicy, Serving};

#[derive(Parser, Debug)]
#[command(
    name = "ops-manager",
    version,
    about = "Issues cert-manager Certificates for KubeDB databases"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    leader: LeaderArgs,
    /// Cluster DNS domain used in the server certificates' fully qualified names.
    #[arg(long, env = "DBTLS_CLUSTER_DOMAIN", default_value = DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// How pods are brought to a renewed certificate: `auto` reloads online where the engine
    /// can and restarts (one pod at a time, through the Eviction API) where it cannot; `restart`
    /// always restarts.
    #[arg(long, env = "DBTLS_TLS_RELOAD", value_enum, default_value_t = ReloadPolicy::Auto)]
    tls_reload: ReloadPolicy,
}

/// The resources the ops-manager waits for: the five kinds, their OpsRequests and cert-manager's.
fn watched_resources() -> Vec<ApiResource> {
    DbKind::ALL
        .iter()
        .map(|k| k.api_resource())
        .chain([
            ApiResource::erase::<MySQLOpsRequest>(&()),
            ApiResource::erase::<PerconaXtraDBOpsRequest>(&()),
            ApiResource::erase::<ProxySQLOpsRequest>(&()),
            ApiResource::erase::<SinglestoreOpsRequest>(&()),
            ApiResource::erase::<MSSQLServerOpsRequest>(&()),
        ])
        .chain([
            ApiResource::erase::<Certificate>(&()),
            ApiResource::erase::<Issuer>(&()),
            ApiResource::erase::<ClusterIssuer>(&()),
        ])
        .collect()
}

/// jemalloc rather than glibc's malloc, which kept more freed memory resident as the caches
/// grew (docs/benchmarks.md, "Memory, seventh pass").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let operator = Operator::start(&args.common, "ops-manager", "kubedb-ops-manager").await?;
    let certificate_metrics = CertificateMetrics::register(&operator.registry)?;
    let serving = Serving::new(
        ServingMetrics::register(&operator.registry)?,
        args.tls_reload,
    );
    let kind_names: Vec<&str> = DbKind::ALL.iter().map(|k| k.profile().kind).collect();
    operator
        .reconcile_metrics
        .init_series(&kind_names, &ops_manager::reconcile::Error::METRIC_REASONS);
    if !operator.wait_for_crds(&watched_resources()).await {
        return Ok(());
    }
    let client = operator.client.clone();
    let reconcile_metrics = operator.reconcile_metrics.clone();
    let cluster_domain = args.cluster_domain.clone();
    let progress_interval = args.common.progress_interval;
    let make_context = move |caches| {
        Context::new(
            client,
            caches,
            cluster_domain,
            reconcile_metrics,
            certificate_metrics,
            serving,
            progress_interval,
        )
    };
    let work = controller::run(
        operator.client.clone(),
        make_context,
        &args.common.namespaces,
        args.common.concurrency,
        operator.shutdown(),
    );
    operator.run(&args.leader, work).await?;
    Ok(())
}
