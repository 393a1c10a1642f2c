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
use dbtls_runtime::caches::{
    DatabaseKey, Keyed, KeyedWatch, SharedWatch, issuer_reference, issuer_references,
};
use dbtls_runtime::lean_store;
use dbtls_runtime::watch_backoff::trigger_backoff;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::caches::{Caches, OpsWatches, Watches};
use crate::context::Context;
use crate::ops_request;
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
    let databases: KeyedWatch<K> = KeyedWatch::with_storage(
        api::<K>(&ctx.client, scope),
        watcher::Config::default(),
        database_trim::<K>,
        Keyed::referencing(issuer_references::<K>),
    );
    let store = databases.store();
    let (for_issuers, for_cluster_issuers) = (store.clone(), store.clone());
    let ops = K::Ops::watch(&watches.ops);
    let controller = Controller::for_shared_stream(databases.subscribe_keys(), store.keys.clone())
        .owns_shared_stream(watches.certificates.subscribe_changes())
        // Issuers only from their own namespace, ClusterIssuers from any.
        .watches_shared_stream(watches.issuers.subscribe_changes(), move |issuer| {
            let reference = issuer_reference(certmanager::ISSUER_KIND, &issuer.name_any());
            for_issuers.referring(&reference, issuer.namespace().as_deref())
        })
        .watches_shared_stream(cluster_issuers.subscribe_changes(), move |issuer| {
            let reference = issuer_reference(certmanager::CLUSTER_ISSUER_KIND, &issuer.name_any());
            for_cluster_issuers.referring(&reference, None)
        })
        .watches_shared_stream(watches.secrets.subscribe_changes(), |s| {
            database_of::<K>(&s.metadata)
        })
        .watches_shared_stream(watches.services.subscribe_changes(), |s| {
            database_of::<K>(&s.metadata)
        })
        .watches_shared_stream(watches.pods.subscribe_changes(), |p| {
            database_of::<K>(&p.metadata)
        })
        .watches_shared_stream(ops.subscribe_changes(), |o| {
            let ns = o.namespace()?;
            Some(ObjectRef::<DatabaseKey<K>>::new(o.spec_view().database).within(&ns))
        })
        .with_config(controller::Config::default().concurrency(concurrency))
        .trigger_backoff(trigger_backoff());
    let ops_controller = ops_request::controller::<K::Ops, K>(
        ctx,
        ops,
        watches.certificates.subscribe_changes(),
        databases.subscribe_changes(),
        shutdown.clone(),
    );
    let ctx = ctx.clone();
    let databases_controller = async move {
        controller
            .graceful_shutdown_on(shutdown)
            .run(
                move |key, ctx| store.reconcile(&key, ctx, reconcile::<K>),
                error_policy::<K>,
                ctx,
            )
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
fn database_of<K: Database>(meta: &ObjectMeta) -> Option<ObjectRef<DatabaseKey<K>>> {
    let (kind, name) = labels::database_of(meta.labels.as_ref()?)?;
    let namespace = meta.namespace.as_deref()?;
    (kind == K::KIND).then(|| ObjectRef::new(name).within(namespace))
}
