//! The controllers: one per kind and watched namespace over the generic [`reconcile`], all
//! reading and triggered by the same shared watch caches. Started once every cache is filled,
//! so that no reconcile mistakes an unlisted object for an absent one.
use std::collections::BTreeMap;
use std::sync::Arc;

use dbtls_contract::api::{MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore};
use dbtls_contract::monitoring::ServiceMonitor;
use dbtls_contract::{DbKind, certmanager, labels, petset};
use dbtls_runtime::caches::{DatabaseKey, issuer_reference};
use dbtls_runtime::metrics::ReconcileMetrics;
use dbtls_runtime::watch_backoff::trigger_backoff;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::ResourceExt as _;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::ObjectRef;

use crate::caches::{Caches, Served, WatchedKind, Watches, backend_reference};
use crate::context::Context;
use crate::facts::Provisionable;
use crate::reconcile::{error_policy, reconcile};
use crate::workload::{WorkloadApi, WorkloadChoice, WorkloadFlag, choose};

/// Options of every controller.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Watched namespaces; all when empty.
    pub namespaces: Vec<String>,
    pub concurrency: u16,
    /// How long kubelet may take to bring a changed Secret into running pods.
    pub secret_propagation: std::time::Duration,
    /// The first interval of progress status writes (`--progress-interval`).
    pub progress_interval: std::time::Duration,
}

/// Whether `plural` is served in `api_version` (a 404 means the group/version is not).
async fn served(client: &kube::Client, api_version: &str, plural: &str) -> kube::Result<bool> {
    match client.list_api_group_resources(api_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == plural)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("API discovery of {group_version}: {source}")]
    Discovery {
        group_version: String,
        #[source]
        source: kube::Error,
    },
    #[error("--workload=petset, but apps.k8s.appscode.com/v1 petsets is not served")]
    PetSetsNotServed,
}

/// Whether an optional API is served; `without` says what not watching it means.
async fn optional_api(
    client: &kube::Client,
    group_version: &str,
    plural: &str,
    without: &str,
) -> bool {
    match served(client, group_version, plural).await {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!(%group_version, plural, "not served: {without}");
            false
        }
        Err(error) => {
            tracing::warn!(%group_version, plural, %error, "API discovery failed: {without}");
            false
        }
    }
}

/// The workload API of each kind, from `--workload` and discovery.
pub async fn workload_choices(
    client: &kube::Client,
    flag: WorkloadFlag,
) -> Result<BTreeMap<DbKind, WorkloadChoice>, StartError> {
    let group_version = format!("{}/{}", petset::GROUP, petset::VERSION);
    let petsets = served(client, &group_version, "petsets")
        .await
        .map_err(|source| StartError::Discovery {
            group_version,
            source,
        })?;
    if flag == WorkloadFlag::Petset && !petsets {
        return Err(StartError::PetSetsNotServed);
    }
    let choices: BTreeMap<_, _> = DbKind::ALL
        .into_iter()
        .map(|kind| (kind, choose(flag, kind, petsets)))
        .collect();
    for (kind, choice) in &choices {
        tracing::info!(%kind, workload = choice.api.kind(), why = choice.why, "workload API");
    }
    Ok(choices)
}

/// The database a labelled object (Secret, pod) belongs to, for kind `K`.
fn owner_of<K: Provisionable>(meta: &ObjectMeta) -> Option<ObjectRef<DatabaseKey<K>>> {
    let (kind, db) = labels::database_of(meta.labels.as_ref()?)?;
    (kind == K::KIND)
        .then(|| ObjectRef::new(db).within(meta.namespace.as_deref().unwrap_or_default()))
}

/// The controller of kind `K` in one scope, triggered by its databases and by the shared
/// watches of its children.
fn controller<K: Provisionable + WatchedKind>(
    ctx: &Arc<Context>,
    scope: Option<&str>,
    watches: &Watches,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> BoxFuture<'static, ()> {
    let own = K::watch(&watches.databases);
    let databases = own.store();
    let mut controller =
        Controller::for_shared_stream(own.subscribe_keys(), databases.keys.clone())
            .with_config(controller::Config::default().concurrency(concurrency))
            .trigger_backoff(trigger_backoff())
            .owns_shared_stream(watches.services.subscribe_changes())
            .watches_shared_stream(watches.secrets.subscribe_changes(), |s| {
                owner_of::<K>(&s.metadata)
            })
            .watches_shared_stream(watches.pods.subscribe_changes(), |p| {
                owner_of::<K>(&p.metadata)
            });
    // Only a ProxySQL's Secrets depend on its issuer's type (ACME or not), and only a ProxySQL
    // waits for its backend and mounts the backend's CA and client certificate: its watch
    // keeps what each refers to (`caches::proxysql_references`). An Issuer counts in its own
    // namespace only, a ClusterIssuer in any, a backend in its own.
    if K::KIND == DbKind::ProxySQL {
        if let Some((issuers, cluster_issuers)) = &watches.issuers {
            let (referring, cluster_referring) = (databases.clone(), databases.clone());
            controller = controller
                .watches_shared_stream(issuers.subscribe_changes(), move |issuer| {
                    let reference = issuer_reference(certmanager::ISSUER_KIND, &issuer.name_any());
                    referring.referring(&reference, issuer.namespace().as_deref())
                })
                .watches_shared_stream(cluster_issuers.subscribe_changes(), move |issuer| {
                    let reference =
                        issuer_reference(certmanager::CLUSTER_ISSUER_KIND, &issuer.name_any());
                    cluster_referring.referring(&reference, None)
                });
        }
        let (mysql_fronted, pxc_fronted) = (databases.clone(), databases.clone());
        controller = controller
            .watches_shared_stream(
                watches.databases.mysqls.subscribe_changes(),
                move |backend| {
                    let reference = backend_reference(&backend.name_any());
                    mysql_fronted.referring(&reference, backend.namespace().as_deref())
                },
            )
            .watches_shared_stream(
                watches.databases.perconaxtradbs.subscribe_changes(),
                move |backend| {
                    let reference = backend_reference(&backend.name_any());
                    pxc_fronted.referring(&reference, backend.namespace().as_deref())
                },
            );
    }
    if let Some(service_monitors) = &watches.service_monitors {
        controller = controller.owns_shared_stream(service_monitors.subscribe_changes());
    }
    controller = match (ctx.workload(K::KIND).api, &watches.petsets) {
        (WorkloadApi::PetSet, Some(petsets)) => {
            controller.owns_shared_stream(petsets.subscribe_changes())
        }
        _ => controller.owns_shared_stream(watches.statefulsets.subscribe_changes()),
    };
    let ctx = ctx.clone();
    let namespace = scope.map(str::to_string);
    async move {
        tracing::info!(kind = %K::KIND, ?namespace, "controller started");
        controller
            .graceful_shutdown_on(shutdown)
            .run(
                move |key, ctx| databases.reconcile(&key, ctx, reconcile::<K>),
                error_policy::<K>,
                ctx,
            )
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "controller event");
                }
            })
            .await;
    }
    .boxed()
}

/// Which optional APIs to watch: PetSets as `--workload` chose, and what discovery finds.
async fn discover(client: &kube::Client, petsets: bool) -> Served {
    Served {
        petsets,
        // Without them no issuer is ACME (and the ops-manager issues nothing either).
        issuers: optional_api(
            client,
            &certmanager::Issuer::api_version(&()),
            "issuers",
            "every issuer is taken to give its CA",
        )
        .await,
        service_monitors: optional_api(
            client,
            &ServiceMonitor::api_version(&()),
            "servicemonitors",
            "spec.monitor.agent prometheus.io/operator gets no ServiceMonitor",
        )
        .await,
    }
}

/// Runs the shared watches and, once their caches are filled, one controller per kind and
/// scope, until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    metrics: ReconcileMetrics,
    workloads: BTreeMap<DbKind, WorkloadChoice>,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let petsets = workloads.values().any(|c| c.api == WorkloadApi::PetSet);
    let scopes: Vec<Option<String>> = if options.namespaces.is_empty() {
        vec![None]
    } else {
        options.namespaces.iter().cloned().map(Some).collect()
    };
    let served = discover(&client, petsets).await;
    let mut caches = Caches::default();
    let watches: Vec<(Option<String>, Watches)> = scopes
        .into_iter()
        .map(|scope| {
            let watches = Watches::new(&client, scope.as_deref(), served);
            caches.insert(scope.clone(), watches.stores());
            (scope, watches)
        })
        .collect();
    let ctx = Arc::new(Context::new(
        client,
        caches,
        metrics,
        workloads,
        options.secret_propagation,
        options.progress_interval,
    ));
    let mut controllers = Vec::new();
    for (scope, watches) in &watches {
        let scope = scope.as_deref();
        let c = options.concurrency;
        controllers.push(controller::<MySQL>(
            &ctx,
            scope,
            watches,
            c,
            shutdown.clone(),
        ));
        controllers.push(controller::<PerconaXtraDB>(
            &ctx,
            scope,
            watches,
            c,
            shutdown.clone(),
        ));
        controllers.push(controller::<ProxySQL>(
            &ctx,
            scope,
            watches,
            c,
            shutdown.clone(),
        ));
        controllers.push(controller::<Singlestore>(
            &ctx,
            scope,
            watches,
            c,
            shutdown.clone(),
        ));
        controllers.push(controller::<MSSQLServer>(
            &ctx,
            scope,
            watches,
            c,
            shutdown.clone(),
        ));
    }
    let watching = futures::future::join_all(watches.into_iter().map(|(_, w)| w.run()));
    let reconciling = async {
        ctx.caches.wait_until_ready().await;
        tracing::info!("watch caches filled: reconciling");
        futures::future::join_all(controllers).await;
    };
    tokio::select! {
        _ = watching => {}
        () = reconciling => {}
    }
}
