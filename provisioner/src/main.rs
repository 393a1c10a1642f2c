//! The dbtls provisioner binary: flags, telemetry, the metrics/health server, start-up checks,
//! and one controller per database kind until SIGTERM or Ctrl-C.
use std::sync::Arc;

use clap::Parser;
use dbtls_runtime::{cli, http, leader, metrics, telemetry};
use futures::FutureExt;
use provisioner::context::Context;
use provisioner::startup::{self, RunOptions};
use provisioner::workload_choice::WorkloadFlag;

#[derive(Parser, Debug)]
#[command(
    name = "provisioner",
    version,
    about = "Provisions KubeDB-compatible databases with TLS from cert-manager"
)]
struct Args {
    #[command(flatten)]
    common: cli::CommonArgs,
    #[command(flatten)]
    leader: leader::LeaderArgs,
    /// Workload API: `auto` uses a PetSet for the kinds KubeDB runs on PetSets when the PetSet
    /// API is served, else a StatefulSet.
    #[arg(long, env = "DBTLS_WORKLOAD", value_enum, default_value_t = WorkloadFlag::Auto)]
    workload: WorkloadFlag,
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.common.log_format, &args.common.log);
    let registry = metrics::registry("provisioner")?;
    let reconcile_metrics = metrics::ReconcileMetrics::register(&registry)?;
    let readiness = http::Readiness::default();

    let shutdown = shutdown_signal().shared();
    let server = tokio::spawn(http::serve(
        args.common.metrics_addr,
        registry,
        readiness.clone(),
        shutdown.clone(),
    ));

    let client = cli::client(&args.common, "kubedb-provisioner").await?;
    tokio::select! {
        _ = startup::wait_for_crds(&client) => {}
        _ = shutdown.clone() => {
            tracing::info!("shutting down before start");
            return Ok(());
        }
    }
    let choices = startup::workload_choices(&client, args.workload).await?;
    let ctx = Arc::new(Context::new(client.clone(), reconcile_metrics, choices));
    let options = RunOptions {
        namespaces: args.common.namespaces.clone(),
        concurrency: args.common.concurrency,
    };
    // A follower is ready (it serves and would take over at once) but idle until it leads.
    readiness.set(true);
    tracing::info!("provisioner ready");
    let leading = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let work = {
        let leading = leading.clone();
        let shutdown = shutdown.clone();
        async move {
            leading.store(true, std::sync::atomic::Ordering::SeqCst);
            startup::run_controllers(ctx, options, shutdown).await
        }
    };
    // Shutdown while still waiting for the Lease stops at once; once leading, the controllers
    // see the shutdown themselves and finish their reconciles before the Lease is released.
    let not_leading_at_shutdown = {
        let shutdown = shutdown.clone();
        let readiness = readiness.clone();
        async move {
            shutdown.await;
            readiness.set(false);
            tracing::info!("shutdown requested: finishing running reconciles");
            if leading.load(std::sync::atomic::Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
        }
    };
    let elected = tokio::select! {
        result = leader::run(&args.leader, client, "dbtls-provisioner", work) => Some(result),
        () = not_leading_at_shutdown => None,
    };
    readiness.set(false);
    if let Some(Err(error)) = elected {
        tracing::error!(error = %format!("{error:#}"), "stopping");
        return Err(error);
    }
    tracing::info!("shut down");
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "metrics server failed"),
        Err(error) => tracing::error!(%error, "metrics server task failed"),
    }
    Ok(())
}
