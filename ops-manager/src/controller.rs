//! The controllers: one per kind and watched namespace over the generic [`reconcile`], all
//! reading and triggered by the same shared watch caches (one watch per resource, however many
//! kinds use it). Triggers: the database; its Certificates (owned); Issuers and ClusterIssuers,
//! mapped to every database that names them; the operators' Secrets and Services, by label
//! and as metadata only; the databases' pods (what they serve is checked on every change). Started once every cache is filled.

use std::sync::Arc;

use dbtls_contract::api::ops::{
    MSSQLServerOpsRequest, MySQLOpsRequest, OpsRequest, PerconaXtraDBOpsRequest,
    ProxySQLOpsRequest, SinglestoreOpsRequest,
};
use dbtls_contract::api::{MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore};
use dbtls_contract::certmanager::{self, ClusterIssuer};
use dbtls_contract::{Database, labels};
use dbtls_runtime::caches::SharedWatch;
use dbtls_runtime::lean_store;
use dbtls_runtime::watch_backoff::trigger_backoff;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::caches::{Caches, OpsWatches, Watches};
use crate::context::Context;
use crate::ops_request;
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

/// A database as the ops-manager keeps it: of its conditions, only those it reads.
fn database_trim<K: Database>(db: &mut K) {
    lean_store::trim_database(db, dbtls_contract::conditions::Writer::OpsManager);
}

/// The controllers of kind `K` in one scope: its databases' and its OpsRequests', sharing one
/// watch of the databases (a database's change may unblock its OpsRequest, and an
/// OpsRequest's phase shows on the database).
fn controller<K: Database>(
    ctx: &Arc<Context>,
    scope: Option<&str>,
    watches: &Watches,
    cluster_issuers: &SharedWatch<ClusterIssuer>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) -> BoxFuture<'static, ()>
where
    K::Ops: WatchedOps,
{
    let databases: SharedWatch<K> = SharedWatch::new(
        api::<K>(&ctx.client, scope),
        watcher::Config::default(),
        database_trim::<K>,
    );
    let store = databases.store();
    let (for_issuers, for_cluster_issuers) = (store.clone(), store.clone());
    let ops = K::Ops::watch(&watches.ops);
    let controller = Controller::for_shared_stream(databases.subscribe(), store)
        .owns_shared_stream(watches.certificates.subscribe())
        .watches_shared_stream(watches.issuers.subscribe(), move |issuer| {
            let key = IssuerKey {
                kind: certmanager::ISSUER_KIND.into(),
                name: issuer.name_any(),
            };
            databases_using(&for_issuers, &key, issuer.namespace().as_deref())
        })
        .watches_shared_stream(cluster_issuers.subscribe(), move |issuer| {
            let key = IssuerKey {
                kind: certmanager::CLUSTER_ISSUER_KIND.into(),
                name: issuer.name_any(),
            };
            databases_using(&for_cluster_issuers, &key, None)
        })
        .watches_shared_stream(watches.secrets.subscribe(), |s| {
            database_of::<K>(&s.metadata)
        })
        .watches_shared_stream(watches.services.subscribe(), |s| {
            database_of::<K>(&s.metadata)
        })
        .watches_shared_stream(watches.pods.subscribe(), |p| database_of::<K>(&p.metadata))
        .watches_shared_stream(ops.subscribe(), |o| {
            let ns = o.namespace()?;
            Some(ObjectRef::<K>::new(o.spec_view().database).within(&ns))
        })
        .with_config(controller::Config::default().concurrency(concurrency))
        .trigger_backoff(trigger_backoff());
    let ops_controller = ops_request::controller::<K::Ops, K>(
        ctx,
        ops,
        watches.certificates.subscribe(),
        databases.subscribe(),
        shutdown.clone(),
    );
    let ctx = ctx.clone();
    let databases_controller = async move {
        controller
            .graceful_shutdown_on(shutdown)
            .run(reconcile::<K>, error_policy::<K>, ctx)
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(kind = %K::KIND, %error, "controller event");
                }
            })
            .await;
    };
    async move {
        // The watch ends with the controllers (it has no shutdown of its own).
        tokio::select! {
            () = databases.run() => {}
            _ = futures::future::join(databases_controller, ops_controller) => {}
        }
    }
    .boxed()
}

/// Picks the shared watch of an OpsRequest kind.
pub trait WatchedOps: OpsRequest {
    fn watch(watches: &OpsWatches) -> &SharedWatch<Self>;
}

macro_rules! watched_ops {
    ($($ty:ty => $field:ident),* $(,)?) => {
        $(impl WatchedOps for $ty {
            fn watch(watches: &OpsWatches) -> &SharedWatch<Self> {
                &watches.$field
            }
        })*
    };
}

watched_ops!(
    MySQLOpsRequest => mysql,
    PerconaXtraDBOpsRequest => percona_xtradb,
    ProxySQLOpsRequest => proxysql,
    SinglestoreOpsRequest => singlestore,
    MSSQLServerOpsRequest => mssqlserver,
);

/// Runs the shared watches and, once their caches are filled, one controller per kind and
/// watched namespace (empty: the whole cluster), until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    make_context: impl FnOnce(Caches) -> Context,
    namespaces: &[String],
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    };
    let cluster_issuers: SharedWatch<ClusterIssuer> = SharedWatch::new(
        Api::all(client.clone()),
        watcher::Config::default(),
        lean_store::trim,
    );
    let mut caches = Caches::default();
    let watches: Vec<(Option<String>, Watches)> = scopes
        .into_iter()
        .map(|scope| {
            let watches = Watches::new(&client, scope.as_deref());
            caches.insert(scope.clone(), watches.stores(cluster_issuers.store()));
            (scope, watches)
        })
        .collect();
    let ctx = Arc::new(make_context(caches));
    let mut controllers = Vec::new();
    for (scope, w) in &watches {
        let s = scope.as_deref();
        let ci = &cluster_issuers;
        let c = concurrency;
        controllers.push(controller::<MySQL>(&ctx, s, w, ci, c, shutdown.clone()));
        controllers.push(controller::<PerconaXtraDB>(
            &ctx,
            s,
            w,
            ci,
            c,
            shutdown.clone(),
        ));
        controllers.push(controller::<ProxySQL>(&ctx, s, w, ci, c, shutdown.clone()));
        controllers.push(controller::<Singlestore>(
            &ctx,
            s,
            w,
            ci,
            c,
            shutdown.clone(),
        ));
        controllers.push(controller::<MSSQLServer>(
            &ctx,
            s,
            w,
            ci,
            c,
            shutdown.clone(),
        ));
    }
    let watching = futures::future::join(
        futures::future::join_all(watches.into_iter().map(|(_, w)| w.run())),
        cluster_issuers.run(),
    );
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

/// The database an object of ours belongs to, read from its labels.
fn database_of<K: Database>(meta: &ObjectMeta) -> Option<ObjectRef<K>> {
    let (kind, name) = labels::database_of(meta.labels.as_ref()?)?;
    let namespace = meta.namespace.as_deref()?;
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
