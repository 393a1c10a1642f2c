//! One kube-rs `Controller` per kind (and watched namespace), all over the generic
//! [`reconcile`]. Triggers: the database; its Certificates (owned); Issuers and ClusterIssuers,
//! mapped to every database that names them; the provisioner's Secrets and Services and the TLS
//! Secrets, watched by label and as metadata only (`Api<PartialObjectMeta<_>>` makes kube-rs
//! send metadata-only list/watch requests, so no Secret data is transferred or cached).

use std::sync::Arc;

use dbtls_contract::Database;
use dbtls_contract::certmanager::{self, Certificate, ClusterIssuer, Issuer};
use dbtls_contract::labels;
use dbtls_runtime::lean_store;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::plan::IssuerKey;
use crate::reconcile::{error_policy, reconcile};

/// Where a controller looks: one namespace, or the whole cluster.
fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller of kind `K` until `shutdown` resolves.
pub async fn run<K: Database>(
    ctx: Arc<Context>,
    namespace: Option<String>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let kind_selector = labels::kind_selector(K::KIND);
    let by_kind = watcher::Config::default().labels(&kind_selector);

    let (store, databases) = lean_store::watch(api::<K>(&client, ns), watcher::Config::default());
    let cluster_store = store.clone();

    Controller::for_stream(databases, store.clone())
        .owns(api::<Certificate>(&client, ns), by_kind.clone())
        .watches(
            api::<PartialObjectMeta<Issuer>>(&client, ns),
            watcher::Config::default(),
            move |issuer| {
                let key = IssuerKey {
                    kind: certmanager::ISSUER_KIND.into(),
                    name: issuer.name_any(),
                };
                databases_using(&store, &key, issuer.namespace().as_deref())
            },
        )
        .watches(
            Api::<PartialObjectMeta<ClusterIssuer>>::all(client.clone()),
            watcher::Config::default(),
            move |issuer| {
                let key = IssuerKey {
                    kind: certmanager::CLUSTER_ISSUER_KIND.into(),
                    name: issuer.name_any(),
                };
                databases_using(&cluster_store, &key, None)
            },
        )
        .watches(
            api::<PartialObjectMeta<Secret>>(&client, ns),
            by_kind.clone(),
            database_of::<K, Secret>,
        )
        .watches(
            api::<PartialObjectMeta<Service>>(&client, ns),
            by_kind,
            database_of::<K, Service>,
        )
        .with_config(controller::Config::default().concurrency(concurrency))
        .trigger_backoff(dbtls_runtime::watch_backoff::trigger_backoff())
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(kind = %K::KIND, %error, "controller event");
            }
        })
        .await;
}

/// The database an object of ours belongs to, read from its labels.
fn database_of<K: Database, O>(object: PartialObjectMeta<O>) -> Option<ObjectRef<K>> {
    let labels = object.metadata.labels.as_ref()?;
    let (kind, name) = labels::database_of(labels)?;
    let namespace = object.metadata.namespace.as_deref()?;
    (kind == K::KIND).then(|| ObjectRef::new(name).within(namespace))
}

/// Every database in the store whose `spec.tls` names the issuer (an Issuer only from its own
/// namespace).
fn databases_using<K: Database>(
    store: &Store<K>,
    key: &IssuerKey,
    namespace: Option<&str>,
) -> Vec<ObjectRef<K>> {
    store
        .state()
        .into_iter()
        .filter(|db| namespace.is_none() || db.namespace().as_deref() == namespace)
        .filter(|db| uses_issuer(db.as_ref(), key))
        .map(|db| ObjectRef::from_obj(db.as_ref()))
        .collect()
}

pub fn uses_issuer<K: Database>(db: &K, key: &IssuerKey) -> bool {
    let Some(tls) = db.tls() else {
        return false;
    };
    tls.issuer_ref
        .into_iter()
        .chain(
            tls.certificates
                .iter()
                .filter_map(|c| c.issuer_ref.as_ref()),
        )
        .any(|issuer| IssuerKey::of(issuer) == *key)
}
