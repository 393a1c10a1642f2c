//! Start-up: wait (without crash-looping) until the database CRDs are served, find out whether
//! the PetSet API is, and run one controller per kind.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dbtls_contract::DbKind;
use dbtls_contract::api::{MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore};
use dbtls_contract::labels;
use dbtls_contract::petset::PetSet;
use dbtls_runtime::lean_store;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::Resource;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::context::Context;
use crate::facts::Provisionable;
use crate::reconcile::{error_policy, reconcile};
use crate::workload_choice::{WorkloadApi, WorkloadChoice, WorkloadFlag, choose};

const POLL: Duration = Duration::from_secs(2);

/// Whether `plural` is served in `api_version` (a 404 means the group/version is not).
async fn served(client: &Client, api_version: &str, plural: &str) -> kube::Result<bool> {
    match client.list_api_group_resources(api_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == plural)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Returns once every database CRD is served, logging what it waits for.
pub async fn wait_for_crds(client: &Client) {
    for kind in DbKind::ALL {
        let profile = kind.profile();
        let mut logged = false;
        loop {
            match served(client, profile.api_version, profile.plural).await {
                Ok(true) => break,
                Ok(false) => {
                    if !logged {
                        tracing::info!(
                            "waiting for CRD {}.kubedb.com ({}) to be served",
                            profile.plural,
                            profile.api_version
                        );
                        logged = true;
                    }
                }
                Err(error) => tracing::warn!(%error, "API discovery failed; retrying"),
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The workload API for each kind, from `--workload` and discovery.
pub async fn workload_choices(
    client: &Client,
    flag: WorkloadFlag,
) -> anyhow::Result<BTreeMap<DbKind, WorkloadChoice>> {
    let petsets = served(
        client,
        &format!(
            "{}/{}",
            dbtls_contract::petset::GROUP,
            dbtls_contract::petset::VERSION
        ),
        "petsets",
    )
    .await?;
    if flag == WorkloadFlag::Petset && !petsets {
        anyhow::bail!("--workload=petset, but apps.k8s.appscode.com/v1 petsets is not served");
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

/// Options of every controller.
#[derive(Clone)]
pub struct RunOptions {
    pub namespaces: Vec<String>,
    pub concurrency: u16,
}

fn api<T>(client: &Client, namespace: Option<&str>) -> Api<T>
where
    T: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The database a labelled child (Secret) belongs to, for kind `K`.
fn owner_of<K: Provisionable>(meta: &ObjectMeta) -> Option<ObjectRef<K>> {
    let (kind, db) = labels::database_of(meta.labels.as_ref()?)?;
    (kind == K::KIND)
        .then(|| ObjectRef::new(db).within(meta.namespace.as_deref().unwrap_or_default()))
}

/// Runs the controller(s) of kind `K` (one per watched namespace) until `shutdown` resolves.
/// Children are watched by the kind's labels only, never every Secret in the cluster.
async fn run_kind<K>(
    ctx: Arc<Context>,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) where
    K: Provisionable,
{
    let selector = labels::kind_selector(K::KIND);
    let children = || watcher::Config::default().labels(&selector);
    let workload_api = ctx.workload(K::KIND).api;
    let namespaces: Vec<Option<String>> = if options.namespaces.is_empty() {
        vec![None]
    } else {
        options.namespaces.iter().cloned().map(Some).collect()
    };
    let runs = namespaces.into_iter().map(|namespace| {
        let ns = namespace.as_deref();
        let client = &ctx.client;
        let (store, databases) =
            lean_store::watch(api::<K>(client, ns), watcher::Config::default());
        let controller = Controller::for_stream(databases, store)
            .with_config(controller::Config::default().concurrency(options.concurrency))
            .trigger_backoff(dbtls_runtime::watch_backoff::trigger_backoff())
            .owns(api::<Service>(client, ns), children())
            // Metadata only: the labels name the database; the Secret's data is read by the
            // reconcile, never from the watch (nor is it worth keeping in flight).
            .watches(
                api::<PartialObjectMeta<Secret>>(client, ns),
                children(),
                |secret: PartialObjectMeta<Secret>| owner_of::<K>(&secret.metadata),
            );
        let controller = match workload_api {
            WorkloadApi::StatefulSet => controller.owns(api::<StatefulSet>(client, ns), children()),
            WorkloadApi::PetSet => controller.owns(api::<PetSet>(client, ns), children()),
        };
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        async move {
            tracing::info!(kind = %K::KIND, namespace = ?namespace, "controller started");
            controller
                .graceful_shutdown_on(shutdown)
                .run(reconcile::<K>, error_policy::<K>, ctx)
                .for_each(|result| async move {
                    if let Err(error) = result {
                        tracing::debug!(%error, "controller event");
                    }
                })
                .await;
        }
    });
    futures::future::join_all(runs).await;
}

/// Runs one controller per kind until `shutdown` resolves.
pub async fn run_controllers(
    ctx: Arc<Context>,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    tokio::join!(
        run_kind::<MySQL>(ctx.clone(), options.clone(), shutdown.clone()),
        run_kind::<PerconaXtraDB>(ctx.clone(), options.clone(), shutdown.clone()),
        run_kind::<ProxySQL>(ctx.clone(), options.clone(), shutdown.clone()),
        run_kind::<Singlestore>(ctx.clone(), options.clone(), shutdown.clone()),
        run_kind::<MSSQLServer>(ctx.clone(), options.clone(), shutdown.clone()),
    );
}
