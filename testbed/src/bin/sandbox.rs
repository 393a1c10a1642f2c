//! `sandbox`: the whole dbtls system on this machine (default), or one of its parts standalone.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use testbed::certmanager::{self, StandInConfig};

#[derive(Parser)]
#[command(
    about = "Run dbtls without a cluster: in-memory API server, cert-manager stand-in, both operators"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Stay up after converging and print how to use kubectl against the sandbox.
    #[arg(long)]
    keep: bool,
    /// Directory for kubeconfigs and operator logs (default: a new temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds the example databases may take to converge.
    #[arg(long, default_value_t = 120)]
    deadline_seconds: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Only the in-memory API server; writes an admin kubeconfig to FILE.
    Apiserver {
        #[arg(long)]
        kubeconfig: PathBuf,
    },
    /// Only the cert-manager stand-in, against any cluster (CA and SelfSigned issuers).
    CertManager {
        #[arg(long)]
        kubeconfig: PathBuf,
        /// Where ClusterIssuers' CA Secrets live.
        #[arg(long, default_value = "cert-manager")]
        cluster_resource_namespace: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Apiserver { kubeconfig }) => {
            testbed::apiserver::standalone::run_standalone(kubeconfig).await
        }
        Some(Command::CertManager {
            kubeconfig,
            cluster_resource_namespace,
        }) => {
            let config = StandInConfig {
                cluster_resource_namespace,
                ..StandInConfig::default()
            };
            certmanager::run_standalone(kubeconfig, config).await
        }
        None => {
            let options = testbed::sandbox::SandboxOptions {
                keep: cli.run.keep,
                dir: cli.run.dir,
                deadline: Duration::from_secs(cli.run.deadline_seconds),
            };
            if testbed::sandbox::run(options).await? {
                Ok(())
            } else {
                anyhow::bail!(
                    "not every database converged; see the table above and the operator logs"
                )
            }
        }
    }
}
