//! `bench`: the dbtls performance benchmark on the testbed (see `docs/benchmarks.md`).
//! Run it as a release build; the operator binaries are then built with `--release` too.
use std::time::Duration;

use clap::Parser;
use testbed::bench::{self, BenchOptions};

#[derive(Parser)]
#[command(about = "Create N TLS databases on the testbed and measure the operators")]
struct Cli {
    /// Databases created in the bulk phase (spread over the five kinds).
    #[arg(long, default_value_t = 100)]
    databases: usize,
    /// Opaque Secrets in an unrelated namespace, created before the operators start.
    #[arg(long, default_value_t = 0)]
    unrelated_secrets: usize,
    /// Namespaces the databases are spread over.
    #[arg(long, default_value_t = 5)]
    namespaces: usize,
    /// Seconds of idle after convergence during which writes are counted.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// Databases created one at a time afterwards, for the single-database latency.
    #[arg(long, default_value_t = 20)]
    single: usize,
    /// Creates in flight at once in the bulk phase.
    #[arg(long, default_value_t = 16)]
    parallelism: usize,
    /// Seconds the bulk phase may take.
    #[arg(long, default_value_t = 1800)]
    deadline_seconds: u64,
    /// Skip restarting each operator.
    #[arg(long)]
    no_restarts: bool,
    /// The PEM file that keeps the stand-in's RSA keys across runs: the keys a run needs are
    /// generated into it (once per machine) before the clock starts. Default: next to the
    /// bench executable.
    #[arg(long)]
    key_cache: Option<std::path::PathBuf>,
    /// At most this many distinct keys from the key cache, each handed out to several
    /// Certificates: for N larger than the keys this machine can make in time.
    #[arg(long)]
    distinct_keys: Option<usize>,
    /// Generate keys while the clock runs, on one background thread (the stand-in is then the
    /// bottleneck, as before the key cache).
    #[arg(long)]
    no_key_cache: bool,
    /// Certificates the stand-in issues per second at most: a slow cert-manager.
    #[arg(long)]
    issuance_rate: Option<f64>,
    /// Skip renewing every certificate once converged (the day-2 figures).
    #[arg(long)]
    no_renewal: bool,
    /// Run against the cluster of this kubeconfig (cluster-admin; e.g. a real control plane)
    /// instead of the in-memory testbed: request counts then come from the operators' own
    /// `dbtls_api_requests_total` series. The day-2 renewal is measured on the testbed only.
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .init();
    let cli = Cli::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; the figures in docs/benchmarks.md come from --release");
    }
    let options = BenchOptions {
        databases: cli.databases,
        unrelated_secrets: cli.unrelated_secrets,
        namespaces: cli.namespaces,
        idle: Duration::from_secs(cli.idle_seconds),
        single_creates: cli.single,
        create_parallelism: cli.parallelism,
        deadline: Duration::from_secs(cli.deadline_seconds),
        restarts: !cli.no_restarts,
        key_cache: (!cli.no_key_cache).then(|| cli.key_cache.unwrap_or_else(default_key_cache)),
        distinct_keys: cli.distinct_keys,
        issuance_rate: cli.issuance_rate,
        renewal: !cli.no_renewal,
    };
    if let Some(kubeconfig) = cli.kubeconfig {
        if options.renewal {
            eprintln!("note: the renewal phase needs the testbed's request log; not run here");
        }
        let report = bench::real::run(kubeconfig, options, |line| eprintln!("{line}")).await?;
        println!("{}", bench::real::render(&report));
        return Ok(());
    }
    let report = bench::run(options, |line| eprintln!("{line}")).await?;
    println!("{}", bench::report::render(&report));
    Ok(())
}

/// `<target>/bench-keys/rsa-2048.pem` for a bench run from `<target>/release/bench`.
fn default_key_cache() -> std::path::PathBuf {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|p| p.to_path_buf()))
        .unwrap_or_default();
    exe_dir.join("..").join("bench-keys").join("rsa-2048.pem")
}
