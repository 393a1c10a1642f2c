//! The ops-manager binary: flags, logging, the metrics/health server, the CRD gate, one
//! controller per kind, graceful shutdown on SIGTERM/SIGINT.

use std::sync::Arc;

use clap::Parser;
use dbtls_contract::api::{MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore};
use dbtls_contract::tls::DEFAULT_CLUSTER_DOMAIN;
use dbtls_runtime::cli::{self, CommonArgs};
use dbtls_runtime::http::{self, Readiness};
use dbtls_runtime::leader::{self, LeaderArgs};
use dbtls_runtime::metrics::{ReconcileMetrics, registry};
use dbtls_runtime::telemetry;
use futures::future::join_all;
use ops_manager::context::Context;
use ops_manager::controller;
use ops_manager::crds;
use ops_manager::metrics::CertificateMetrics;
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(
    name = "ops-manager",
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.common.log_format, &args.common.log);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let registry = registry("ops-manager")?;
    let reconcile_metrics = ReconcileMetrics::register(&registry)?;
    let certificate_metrics = CertificateMetrics::register(&registry)?;
    let readiness = Readiness::default();
    let server = tokio::spawn(http::serve(
        args.common.metrics_addr,
        registry,
        readiness.clone(),
        stopped(),
    ));

    let signals = tokio::spawn({
        let readiness = readiness.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            readiness.set(false);
            let _ = stop_tx.send(true);
        }
    });

    let client = cli::client(&args.common, "kubedb-ops-manager").await?;
    tokio::select! {
        () = crds::wait_until_served(&client) => {}
        () = stopped() => return Ok(()),
    }
    let ctx = Arc::new(Context::new(
        client.clone(),
        args.cluster_domain,
        reconcile_metrics,
        certificate_metrics,
    ));
    let namespaces: Vec<Option<String>> = if args.common.namespaces.is_empty() {
        vec![None]
    } else {
        args.common.namespaces.iter().cloned().map(Some).collect()
    };
    let concurrency = args.common.concurrency;

    // A follower is ready (it serves and would take over at once) but idle until it leads.
    readiness.set(true);
    tracing::info!("ops-manager started");
    let leading = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let work = {
        let leading = leading.clone();
        let stopped = stopped.clone();
        async move {
            leading.store(true, std::sync::atomic::Ordering::SeqCst);
            join_all(spawn_controllers(&ctx, &namespaces, concurrency, &stopped)).await;
        }
    };
    // Shutdown while still waiting for the Lease stops at once; once leading, the controllers
    // see the stop themselves and finish their reconciles before the Lease is released.
    let not_leading_at_shutdown = {
        let stop = stopped();
        async move {
            stop.await;
            if leading.load(std::sync::atomic::Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
        }
    };
    let elected = tokio::select! {
        result = leader::run(&args.leader, client, "dbtls-ops-manager", work) => Some(result),
        () = not_leading_at_shutdown => None,
    };
    if let Some(Err(error)) = elected {
        tracing::error!(error = %format!("{error:#}"), "stopping");
        return Err(error);
    }
    signals.abort();
    let _ = server.await;
    Ok(())
}

/// One controller per kind and watched namespace, each stopping when `stopped` resolves.
fn spawn_controllers<S, F>(
    ctx: &Arc<Context>,
    namespaces: &[Option<String>],
    concurrency: u16,
    stopped: &S,
) -> Vec<tokio::task::JoinHandle<()>>
where
    S: Fn() -> F,
    F: std::future::Future<Output = ()> + Send + Sync + 'static,
{
    let mut controllers = Vec::new();
    for ns in namespaces {
        controllers.push(tokio::spawn(controller::run::<MySQL>(
            ctx.clone(),
            ns.clone(),
            concurrency,
            stopped(),
        )));
        controllers.push(tokio::spawn(controller::run::<PerconaXtraDB>(
            ctx.clone(),
            ns.clone(),
            concurrency,
            stopped(),
        )));
        controllers.push(tokio::spawn(controller::run::<ProxySQL>(
            ctx.clone(),
            ns.clone(),
            concurrency,
            stopped(),
        )));
        controllers.push(tokio::spawn(controller::run::<Singlestore>(
            ctx.clone(),
            ns.clone(),
            concurrency,
            stopped(),
        )));
        controllers.push(tokio::spawn(controller::run::<MSSQLServer>(
            ctx.clone(),
            ns.clone(),
            concurrency,
            stopped(),
        )));
    }
    controllers
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
