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
    };
    let report = bench::run(options, |line| eprintln!("{line}")).await?;
    println!("{}", bench::report::render(&report));
    Ok(())
}
