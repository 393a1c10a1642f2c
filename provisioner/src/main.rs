//! The dbtls provisioner binary: flags, then the shared bootstrap (logging, metrics/health
//! server, CRD wait, leader election, graceful shutdown) around one controller per kind.
use clap::Parser;
use dbtls_contract::DbKind;
use dbtls_runtime::bootstrap::Operator;
use dbtls_runtime::cli::CommonArgs;
use dbtls_runtime::leader::LeaderArgs;
use provisioner::controller::{self, RunOptions};
use provisioner::workload::WorkloadFlag;

#[derive(Parser, Debug)]
#[command(
    name = "provisioner",
    version,
    about = "Provisions KubeDB-compatible databases with TLS from cert-manager"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    leader: LeaderArgs,
    /// Workload API: `auto` uses a PetSet for the kinds KubeDB runs on PetSets when the PetSet
    /// API is served, else a StatefulSet.
    #[arg(long, env = "DBTLS_WORKLOAD", value_enum, default_value_t = WorkloadFlag::Auto)]
    workload: WorkloadFlag,
    /// How long kubelet may take to bring a changed Secret into running pods (its
    /// `syncFrequency`, 1m by default, plus its Secret cache): a Galera cluster leaving TLS
    /// waits this long after making state transfers plaintext before restarting any node.
    #[arg(long, env = "DBTLS_SECRET_PROPAGATION", default_value = "90s", value_parser = dbtls_runtime::cli::parse_duration)]
    secret_propagation: std::time::Duration,
}

/// jemalloc rather than glibc's malloc, which kept more freed memory resident as the caches
/// grew (docs/benchmarks.md, "Memory, seventh pass").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let operator = Operator::start(&args.common, "provisioner", "kubedb-provisioner").await?;
    let kind_names: Vec<String> = DbKind::ALL.iter().map(ToString::to_string).collect();
    let kind_names: Vec<&str> = kind_names.iter().map(String::as_str).collect();
    operator
        .reconcile_metrics
        .init_series(&kind_names, &provisioner::reconcile::Error::METRIC_REASONS);
    let kinds: Vec<_> = DbKind::ALL.iter().map(|k| k.api_resource()).collect();
    if !operator.wait_for_crds(&kinds).await {
        return Ok(());
    }
    let workloads = controller::workload_choices(&operator.client, args.workload).await?;
    let options = RunOptions {
        namespaces: args.common.namespaces.clone(),
        concurrency: args.common.concurrency,
        secret_propagation: args.secret_propagation,
        progress_interval: args.common.progress_interval,
    };
    let work = controller::run(
        operator.client.clone(),
        operator.reconcile_metrics.clone(),
        workloads,
        options,
        operator.shutdown(),
    );
    operator.run(&args.leader, work).await?;
    Ok(())
}
