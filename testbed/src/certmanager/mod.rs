//! A cert-manager stand-in for tests: CA and SelfSigned issuers, and ACME against the stand-in's
//! own server (`signing::STAND_IN_ACME_SERVER`); Certificates issued into TLS Secrets the way
//! cert-manager v1.21 writes them.
pub mod inspect;
pub mod keys;
pub mod pacing;
pub mod signing;
pub mod spec;

mod certificates;
mod issuers;
mod secret;
mod status;
pub mod validation;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dbtls_contract::certmanager::{
    CLUSTER_ISSUER_KIND, Certificate, ClusterIssuer, FAO_LABEL, GROUP, ISSUER_KIND, Issuer,
};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

/// Settings of the stand-in.
#[derive(Debug, Clone)]
pub struct StandInConfig {
    /// Where ClusterIssuers' CA Secrets live (cert-manager's `--cluster-resource-namespace`).
    pub cluster_resource_namespace: String,
    /// Take RSA-2048 keys from this pool, generated ahead (benchmarks); keys are still unique.
    /// None: each key is generated when a Certificate is issued, as cert-manager does.
    pub key_pool: Option<keys::KeyPool>,
    /// Issue at most this many Certificates per second (a slow or busy cert-manager, for
    /// benchmarks); None: as fast as keys and signing allow.
    pub issuance_rate: Option<f64>,
    /// The field manager of the issued Secrets.
    pub field_manager: String,
    /// Certificates reconciled at once.
    pub concurrency: u16,
    /// Watch Certificates, Issuers and Secrets in these namespaces only (empty: the whole
    /// cluster), so that stand-ins of tests sharing one real cluster leave each other alone.
    /// ClusterIssuers are always watched cluster-wide.
    pub namespaces: Vec<String>,
}

impl Default for StandInConfig {
    fn default() -> Self {
        StandInConfig {
            cluster_resource_namespace: "cert-manager".into(),
            key_pool: None,
            issuance_rate: None,
            field_manager: "cert-manager-certificates-issuing".into(),
            concurrency: 8,
            namespaces: Vec::new(),
        }
    }
}

/// The field manager of status writes (cert-manager's controllers write status with updates;
/// one name keeps the request log readable).
pub const STATUS_MANAGER: &str = "cert-manager-certificates";

fn status_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(STATUS_MANAGER.into()),
        ..Default::default()
    }
}

/// Errors of one reconcile; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("serialising: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Shared by the three controllers.
pub struct Context {
    pub client: kube::Client,
    pub config: StandInConfig,
    pub pool: Option<keys::KeyPool>,
    pub pacer: Option<pacing::Pacer>,
    pub recorder: Recorder,
}

/// `K` in the stand-in's namespace, or in the whole cluster.
fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn error_policy<K>(_obj: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "cert-manager stand-in reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the stand-in until `shutdown` completes.
pub async fn run(
    client: kube::Client,
    config: StandInConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let ctx = Arc::new(Context {
        client: client.clone(),
        pool: config.key_pool.clone(),
        pacer: config.issuance_rate.and_then(pacing::Pacer::per_second),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "cert-manager".into(),
                instance: None,
            },
        ),
        config: config.clone(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let per_namespace = scopes
        .into_iter()
        .map(|scope| namespace_controllers(client.clone(), scope, ctx.clone(), stop.clone()));
    let namespaced = futures::future::join_all(per_namespace);
    let cluster_issuers = Controller::new(
        Api::<ClusterIssuer>::all(client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(stop())
    .run(issuers::reconcile_cluster_issuer, error_policy, ctx.clone())
    .for_each(|_| async {});
    let trigger = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    tokio::join!(namespaced, cluster_issuers, trigger);
}

/// The Certificate and Issuer controllers of one namespace (None: every namespace).
async fn namespace_controllers<S, F>(
    client: kube::Client,
    scope: Option<String>,
    ctx: Arc<Context>,
    stop: S,
) where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + Sync + 'static,
{
    let ns = scope.as_deref();
    let certificates = Controller::new(
        scoped::<Certificate>(&client, ns),
        watcher::Config::default(),
    )
    .with_config(controller::Config::default().concurrency(ctx.config.concurrency));
    let store = certificates.store();
    let by_issuer = {
        let store = store.clone();
        move |kind: &'static str, ns: Option<String>, name: String| {
            store
                .state()
                .into_iter()
                .filter(|c| {
                    let (k, g, n) = c.spec.issuer_ref.canonical();
                    k == kind && g == GROUP && n == name && (ns.is_none() || c.namespace() == ns)
                })
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let by_issuer2 = by_issuer.clone();
    let secret_store = store.clone();
    let certificates = certificates
        .watches(
            scoped::<Issuer>(&client, ns),
            watcher::Config::default(),
            move |i: Issuer| by_issuer(ISSUER_KIND, i.namespace(), i.name_any()),
        )
        .watches(
            Api::<ClusterIssuer>::all(client.clone()),
            watcher::Config::default(),
            move |i: ClusterIssuer| by_issuer2(CLUSTER_ISSUER_KIND, None, i.name_any()),
        )
        .watches(
            scoped::<Secret>(&client, ns),
            watcher::Config::default().labels(&format!("{FAO_LABEL}=true")),
            move |s: Secret| {
                let ns = s.namespace();
                let name = s.name_any();
                secret_store
                    .state()
                    .into_iter()
                    .filter(|c| c.namespace() == ns && c.spec.secret_name == name)
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stop())
        .run(certificates::reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let issuers = Controller::new(scoped::<Issuer>(&client, ns), watcher::Config::default())
        .graceful_shutdown_on(stop())
        .run(issuers::reconcile_issuer, error_policy, ctx.clone())
        .for_each(|_| async {});
    tokio::join!(certificates, issuers);
}

/// `cert-manager --kubeconfig FILE`: runs the stand-in until Ctrl-C.
pub async fn run_standalone(kubeconfig: PathBuf, config: StandInConfig) -> anyhow::Result<()> {
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let client_config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    let client = kube::Client::try_from(client_config)?;
    run(client, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
