//! What each operator binary does around its controllers, once: logging, the metrics/health
//! server, the client, the wait for its CRDs, leader election, and a graceful shutdown on SIGTERM
//! or Ctrl-C (running reconciles finish, the Lease is released).
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kube::core::ApiResource;
use prometheus::Registry;

use crate::cli::CommonArgs;
use crate::http::{self, Readiness};
use crate::leader::{self, LeaderArgs, LeaderError};
use crate::metrics::ReconcileMetrics;
use crate::{crds, telemetry};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("finding the cluster (in-cluster, $KUBECONFIG or ~/.kube/config): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("creating the client: {0}")]
    Client(#[from] kube::Error),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("metrics/health server: {0}")]
    Server(#[source] std::io::Error),
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// Resolves (for every clone) on SIGTERM or Ctrl-C.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// A started operator: serving /metrics, /healthz and /readyz, with a client, until shutdown.
pub struct Operator {
    pub client: kube::Client,
    pub registry: Registry,
    pub reconcile_metrics: ReconcileMetrics,
    name: &'static str,
    readiness: Readiness,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Operator {
    /// Logging, the metrics registry (every series labelled `operator=<name>`), the HTTP server,
    /// the signal handler and the client (user agent `<user_agent>`).
    pub async fn start(
        common: &CommonArgs,
        name: &'static str,
        user_agent: &str,
    ) -> Result<Operator, BootstrapError> {
        telemetry::init(common.log_format, &common.log);
        let registry = crate::metrics::registry(name)?;
        let reconcile_metrics = ReconcileMetrics::register(&registry)?;
        crate::api_metrics::register(&registry)?;
        let readiness = Readiness::default();
        let shutdown: Shutdown = signal().boxed().shared();
        let server = tokio::spawn(http::serve(
            common.metrics_addr,
            registry.clone(),
            readiness.clone(),
            shutdown.clone(),
        ));
        let client = client(common, user_agent).await?;
        Ok(Operator {
            client,
            registry,
            reconcile_metrics,
            name,
            readiness,
            shutdown,
            server,
        })
    }

    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Waits until `resources` are served (logging what it waits for); false on shutdown first.
    pub async fn wait_for_crds(&self, resources: &[ApiResource]) -> bool {
        tokio::select! {
            () = crds::wait_until_served(&self.client, resources) => true,
            () = self.shutdown.clone() => {
                tracing::info!("shutting down before start");
                false
            }
        }
    }

    /// Runs `work` (the controllers, which stop on [`Operator::shutdown`]) as the leader of the
    /// operator's Lease when `--leader-elect` is set; ready (serving, and taking over at once if
    /// it follows) from here on. Returns when the work finished after shutdown, or with an error
    /// when leadership was lost (the process should exit and restart as a follower).
    pub async fn run(
        self,
        leader_args: &LeaderArgs,
        work: impl Future<Output = ()>,
    ) -> Result<(), BootstrapError> {
        self.readiness.set(true);
        tracing::info!("{} ready", self.name);
        let leading = Arc::new(AtomicBool::new(false));
        let work = {
            let leading = leading.clone();
            async move {
                leading.store(true, Ordering::SeqCst);
                work.await
            }
        };
        // Shutdown while still waiting for the Lease stops at once; once leading, the controllers
        // see the shutdown themselves and finish their reconciles before the Lease is released.
        let not_leading_at_shutdown = {
            let shutdown = self.shutdown.clone();
            let readiness = self.readiness.clone();
            async move {
                shutdown.await;
                readiness.set(false);
                tracing::info!("shutdown requested: finishing running reconciles");
                if leading.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
            }
        };
        let lease = format!("dbtls-{}", self.name);
        let elected = tokio::select! {
            result = leader::run(leader_args, self.client.clone(), &lease, work) => Some(result),
            () = not_leading_at_shutdown => None,
        };
        self.readiness.set(false);
        if let Some(Err(error)) = elected {
            tracing::error!(%error, "stopping");
            return Err(error.into());
        }
        tracing::info!("shut down");
        match self.server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(BootstrapError::Server(error)),
            Err(error) => {
                tracing::error!(%error, "metrics server task failed");
                Ok(())
            }
        }
    }
}

/// A kube Client from `--kubeconfig`, or inferred (in-cluster, $KUBECONFIG, ~/.kube/config).
pub async fn client(args: &CommonArgs, user_agent: &str) -> Result<kube::Client, BootstrapError> {
    let mut config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                BootstrapError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|source| BootstrapError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?
        }
        None => kube::Config::infer().await?,
    };
    if let Ok(value) = axum::http::HeaderValue::from_str(user_agent) {
        config.headers.push((axum::http::header::USER_AGENT, value));
    }
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&crate::in_flight::LimitInFlight::new(usize::from(
            args.max_requests_in_flight,
        )))
        .with_layer(&crate::api_metrics::CountRequests)
        .build())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn signal() {
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
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
}
