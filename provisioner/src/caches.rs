//! The provisioner's watch caches, shared by the controllers of all five kinds: its own Secrets,
//! Services and workloads (selected by the contract's `managed-by` label, so memory follows the
//! databases managed, not every object in the cluster), and cert-manager's issuers, whose type
//! decides which TLS Secrets a ProxySQL gets. Reconciles read these instead of GETting.
use std::collections::BTreeMap;

use dbtls_contract::api::{IssuerRef, MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore};
use dbtls_contract::certmanager::{self, ClusterIssuer, Issuer};
use dbtls_contract::monitoring::ServiceMonitor;
use dbtls_contract::petset::PetSet;
use dbtls_contract::tls::IssuerType;
use dbtls_contract::{DbKind, labels};
use dbtls_runtime::caches::{
    ByNameWatch, CompactStore, CompactWatch, Keyed, KeyedWatch, SharedWatch, Storage, get,
    issuer_references,
};
use dbtls_runtime::lean_store;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Container, Pod, PodSpec, PodTemplateSpec, Secret, Service, Volume, VolumeMount,
};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::desired::auth::{PASSWORD_KEY, USERNAME_KEY};
use crate::desired::server_tls::{CA_KEY, CERT_KEY, KEY_KEY};
use crate::facts::Provisionable;
use crate::workload::{Workload, WorkloadApi};

/// Keys whose contents no reconcile reads from the cache (only whether they are set): the
/// certificates and keys of the TLS Secrets and the credentials of the auth Secret.
const SHAPE_ONLY_KEYS: [&str; 5] = [CA_KEY, CERT_KEY, KEY_KEY, USERNAME_KEY, PASSWORD_KEY];

/// Annotations a plan reads: a Galera cluster's state-transfer setting on its config Secret.
const KEPT_ANNOTATIONS: [&str; 2] = [
    crate::desired::galera_switch::TRANSFERS_ANNOTATION,
    crate::desired::galera_switch::TRANSFERS_SINCE_ANNOTATION,
];

/// A Secret as the provisioner needs it: metadata without annotations (but those above), its type, and its data,
/// with the certificates, keys and credentials cut to one byte (their presence is what the
/// reconcile checks; keeping them would cost memory per database and hold secrets in memory).
/// Other keys (the generated config files the provisioner compares) are kept whole.
pub fn secret_shape(secret: &mut Secret) {
    lean_store::trim(secret);
    // Only the annotations a plan reads (a Galera cluster's state-transfer setting).
    secret.metadata.annotations = secret
        .metadata
        .annotations
        .take()
        .map(|mut kept| {
            kept.retain(|k, _| KEPT_ANNOTATIONS.contains(&k.as_str()));
            kept
        })
        .filter(|kept| !kept.is_empty());
    if let Some(data) = secret.data.as_mut() {
        for (key, value) in data.iter_mut() {
            if SHAPE_ONLY_KEYS.contains(&key.as_str()) {
                value.0.truncate(1);
            }
        }
    }
    secret.string_data = None;
}

/// An issuer as the provisioner needs it: whether it is ACME, nothing of its configuration.
fn issuer_shape(spec: &mut certmanager::IssuerSpec) {
    let acme = spec.acme.is_some();
    *spec = certmanager::IssuerSpec::default();
    spec.acme = acme.then(Default::default);
}

fn issuer_trim(issuer: &mut Issuer) {
    lean_store::trim(issuer);
    issuer_shape(&mut issuer.spec);
    issuer.status = None;
}

fn cluster_issuer_trim(issuer: &mut ClusterIssuer) {
    lean_store::trim(issuer);
    issuer_shape(&mut issuer.spec.issuer);
    issuer.status = None;
}

/// The reads of one watched namespace (or of the whole cluster).
#[derive(Clone)]
pub struct Stores {
    pub secrets: CompactStore<Secret>,
    pub pods: CompactStore<Pod>,
    pub services: CompactStore<Service>,
    pub statefulsets: CompactStore<StatefulSet>,
    pub petsets: Option<CompactStore<PetSet>>,
    /// None where cert-manager's CRDs were not served at start.
    pub issuers: Option<IssuerStores>,
    /// None where the Prometheus Operator's ServiceMonitors were not served at start.
    pub service_monitors: Option<Store<ServiceMonitor>>,
    /// The databases a ProxySQL can front (`spec.backend`).
    pub mysqls: CompactStore<MySQL>,
    pub perconaxtradbs: CompactStore<PerconaXtraDB>,
}

#[derive(Clone)]
pub struct IssuerStores {
    pub issuers: Store<Issuer>,
    pub cluster_issuers: Store<ClusterIssuer>,
}

/// The watches of one scope, before they run: controllers subscribe, then [`Watches::run`].
pub struct Watches {
    pub secrets: ByNameWatch<Secret>,
    pub pods: ByNameWatch<Pod>,
    pub services: ByNameWatch<Service>,
    pub statefulsets: CompactWatch<StatefulSet>,
    pub petsets: Option<CompactWatch<PetSet>>,
    pub issuers: Option<(SharedWatch<Issuer>, SharedWatch<ClusterIssuer>)>,
    pub service_monitors: Option<SharedWatch<ServiceMonitor>>,
    /// The databases themselves: each kind's controller is driven by its own, and ProxySQL's
    /// also by MySQL's and PerconaXtraDB's (its backend).
    pub databases: DatabaseWatches,
}

pub struct DatabaseWatches {
    pub mysqls: KeyedWatch<MySQL>,
    pub perconaxtradbs: KeyedWatch<PerconaXtraDB>,
    pub proxysqls: KeyedWatch<ProxySQL>,
    pub singlestores: KeyedWatch<Singlestore>,
    pub mssqlservers: KeyedWatch<MSSQLServer>,
}

/// The database kind's own watch among [`DatabaseWatches`].
pub trait WatchedKind: Sized + Resource<DynamicType = ()> + Clone + 'static {
    fn watch(watches: &DatabaseWatches) -> &KeyedWatch<Self>;
}

macro_rules! watched_kind {
    ($($ty:ty => $field:ident),*) => {$(
        impl WatchedKind for $ty {
            fn watch(watches: &DatabaseWatches) -> &KeyedWatch<Self> {
                &watches.$field
            }
        }
    )*};
}

watched_kind!(MySQL => mysqls, PerconaXtraDB => perconaxtradbs, ProxySQL => proxysqls,
    Singlestore => singlestores, MSSQLServer => mssqlservers);

/// Which optional APIs are served (watched only then).
#[derive(Clone, Copy, Debug, Default)]
pub struct Served {
    pub petsets: bool,
    pub issuers: bool,
    pub service_monitors: bool,
}

/// What the plan reads of a live pod template: each container's name and arguments (a Galera
/// cluster's replication setting), and the mount and volume of the server certificate a
/// Galera cluster carries while leaving TLS. The rest is covered by the workload's
/// [`crate::workload::APPLIED_DIGEST`]. k8s-openapi's `Volume` and `Container` are kilobytes
/// each even when nearly empty, so only those are kept.
fn template_shape(template: &mut PodTemplateSpec) {
    template.metadata = None;
    let Some(spec) = template.spec.as_mut() else {
        return;
    };
    let carried = crate::desired::server_tls::percona_server_dir();
    let containers: Vec<Container> = spec
        .containers
        .drain(..)
        .map(|c| Container {
            name: c.name,
            args: c.args,
            volume_mounts: c
                .volume_mounts
                .map(|m| m.into_iter().filter(|m| m.mount_path == carried).collect())
                .filter(|m: &Vec<VolumeMount>| !m.is_empty()),
            ..Container::default()
        })
        .collect();
    let mounted = |name: &str| {
        containers
            .iter()
            .flat_map(|c| c.volume_mounts.iter().flatten())
            .any(|m| m.name == name)
    };
    let volumes: Vec<Volume> = spec
        .volumes
        .take()
        .into_iter()
        .flatten()
        .filter(|v| mounted(&v.name))
        .collect();
    *spec = PodSpec {
        volumes: (!volumes.is_empty()).then_some(volumes),
        containers,
        ..PodSpec::default()
    };
}

/// A cached workload: metadata without managed fields, the replica count, the immutable fields
/// (compared as the API server would), [`template_shape`], and the status.
pub fn workload_shape(sts: &mut StatefulSet) {
    lean_store::trim(sts);
    if let Some(spec) = sts.spec.as_mut() {
        template_shape(&mut spec.template);
    }
}

/// A cached PetSet, as [`workload_shape`].
pub fn petset_shape(petset: &mut PetSet) {
    lean_store::trim(petset);
    template_shape(&mut petset.spec.template);
}

/// A watch of every database of a kind (no selector: users make them), trimmed to what the
/// provisioner reads.
fn database_watch<K>(client: &kube::Client, namespace: Option<&str>) -> KeyedWatch<K>
where
    K: Provisionable
        + Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + std::fmt::Debug,
{
    let storage = match K::KIND {
        DbKind::ProxySQL => Keyed::referencing(proxysql_references::<K>),
        _ => Keyed::create(),
    };
    KeyedWatch::with_storage(
        scoped(client, namespace),
        watcher::Config::default(),
        database_trim::<K>,
        storage,
    )
}

/// How a ProxySQL refers to its backend (`spec.backend`), MySQL or PerconaXtraDB.
pub fn backend_reference(name: &str) -> String {
    format!("backend/{name}")
}

/// What a ProxySQL's reconcile depends on besides its own objects: its issuers (ACME or not
/// decides its Secrets) and its backend. The other kinds depend on neither.
fn proxysql_references<K: Provisionable>(db: &K) -> Vec<String> {
    let mut references = issuer_references(db);
    references.extend(db.extras().backend.map(backend_reference));
    references
}

/// A database as the provisioner keeps it: of its conditions, only those it reads.
fn database_trim<K: dbtls_contract::Database>(db: &mut K) {
    lean_store::trim_database(db, dbtls_contract::conditions::Writer::Provisioner);
}

fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

impl Watches {
    pub fn new(client: &kube::Client, namespace: Option<&str>, served: Served) -> Self {
        let Served {
            petsets,
            issuers,
            service_monitors,
        } = served;
        let managed = || watcher::Config::default().labels(&labels::managed_selector());
        Self {
            secrets: ByNameWatch::new(scoped(client, namespace), managed(), secret_shape),
            pods: ByNameWatch::new(
                scoped(client, namespace),
                managed(),
                dbtls_runtime::pods::trim,
            ),
            services: ByNameWatch::new(scoped(client, namespace), managed(), lean_store::trim),
            statefulsets: CompactWatch::new(scoped(client, namespace), managed(), workload_shape),
            petsets: petsets
                .then(|| CompactWatch::new(scoped(client, namespace), managed(), petset_shape)),
            // Issuers are few and carry no label of ours: all of them, trimmed to their type.
            issuers: issuers.then(|| {
                (
                    SharedWatch::new(
                        scoped(client, namespace),
                        watcher::Config::default(),
                        issuer_trim,
                    ),
                    SharedWatch::new(
                        Api::all(client.clone()),
                        watcher::Config::default(),
                        cluster_issuer_trim,
                    ),
                )
            }),
            service_monitors: service_monitors
                .then(|| SharedWatch::new(scoped(client, namespace), managed(), lean_store::trim)),
            databases: DatabaseWatches {
                mysqls: database_watch(client, namespace),
                perconaxtradbs: database_watch(client, namespace),
                proxysqls: database_watch(client, namespace),
                singlestores: database_watch(client, namespace),
                mssqlservers: database_watch(client, namespace),
            },
        }
    }

    pub fn stores(&self) -> Stores {
        Stores {
            secrets: self.secrets.store(),
            pods: self.pods.store(),
            services: self.services.store(),
            statefulsets: self.statefulsets.store(),
            petsets: self.petsets.as_ref().map(CompactWatch::store),
            issuers: self
                .issuers
                .as_ref()
                .map(|(issuers, cluster_issuers)| IssuerStores {
                    issuers: issuers.store(),
                    cluster_issuers: cluster_issuers.store(),
                }),
            service_monitors: self.service_monitors.as_ref().map(SharedWatch::store),
            mysqls: self.databases.mysqls.store().objects,
            perconaxtradbs: self.databases.perconaxtradbs.store().objects,
        }
    }

    /// Runs every watch of the scope until dropped.
    pub async fn run(self) {
        let petsets = async move {
            if let Some(petsets) = self.petsets {
                petsets.run().await;
            }
        };
        // Each runs until dropped: joined, never one after another.
        let issuers = async move {
            if let Some((issuers, cluster_issuers)) = self.issuers {
                tokio::join!(issuers.run(), cluster_issuers.run());
            }
        };
        let service_monitors = async move {
            if let Some(service_monitors) = self.service_monitors {
                service_monitors.run().await;
            }
        };
        let d = self.databases;
        let databases = async move {
            tokio::join!(
                d.mysqls.run(),
                d.perconaxtradbs.run(),
                d.proxysqls.run(),
                d.singlestores.run(),
                d.mssqlservers.run()
            );
        };
        tokio::join!(
            self.secrets.run(),
            self.pods.run(),
            self.services.run(),
            self.statefulsets.run(),
            petsets,
            issuers,
            service_monitors,
            databases
        );
    }
}

impl Stores {
    /// Waits until every cache holds its first list.
    pub async fn wait_until_ready(&self) {
        let petsets = async {
            if let Some(p) = &self.petsets {
                p.wait_until_ready().await;
            }
        };
        let issuers = async {
            if let Some(i) = &self.issuers {
                let _ = tokio::join!(
                    i.issuers.wait_until_ready(),
                    i.cluster_issuers.wait_until_ready()
                );
            }
            if let Some(m) = &self.service_monitors {
                let _ = m.wait_until_ready().await;
            }
        };
        let _ = tokio::join!(
            self.mysqls.wait_until_ready(),
            self.perconaxtradbs.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.services.wait_until_ready(),
            self.statefulsets.wait_until_ready(),
            petsets,
            issuers
        );
    }

    /// The type of the issuer `issuer_ref` names for a database in `namespace`: ACME only when
    /// the cache holds it with an `acme` section (an issuer not seen is taken to give its CA,
    /// so nothing is skipped that the ops-manager may yet issue).
    pub fn issuer_type(&self, namespace: &str, issuer_ref: &IssuerRef) -> IssuerType {
        let Some(stores) = &self.issuers else {
            return IssuerType::WithCa;
        };
        let acme = if issuer_ref.kind == certmanager::CLUSTER_ISSUER_KIND {
            stores
                .cluster_issuers
                .get(&ObjectRef::new(&issuer_ref.name))
                .is_some_and(|i| i.spec.acme.is_some())
        } else {
            stores
                .issuers
                .get(&ObjectRef::new(&issuer_ref.name).within(namespace))
                .is_some_and(|i| i.spec.acme.is_some())
        };
        IssuerType::of(acme)
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.secrets.get(namespace, name)
    }

    pub fn service_monitor(&self, namespace: &str, name: &str) -> Option<ServiceMonitor> {
        self.service_monitors
            .as_ref()
            .and_then(|store| get(store, namespace, name))
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.pods.get(namespace, name)
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<Service> {
        self.services.get(namespace, name)
    }

    /// Every workload of `api` in `namespace` carrying all of `labels`.
    pub fn workloads_labelled(
        &self,
        api: WorkloadApi,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Workload> {
        match api {
            WorkloadApi::StatefulSet => self
                .statefulsets
                .labelled(namespace, labels)
                .into_iter()
                .map(Workload::StatefulSet)
                .collect(),
            WorkloadApi::PetSet => self
                .petsets
                .iter()
                .flat_map(|store| store.labelled(namespace, labels))
                .map(Workload::PetSet)
                .collect(),
        }
    }

    pub fn workload(&self, api: WorkloadApi, namespace: &str, name: &str) -> Option<Workload> {
        match api {
            WorkloadApi::StatefulSet => self
                .statefulsets
                .get(namespace, name)
                .map(Workload::StatefulSet),
            WorkloadApi::PetSet => self
                .petsets
                .as_ref()
                .and_then(|store| store.get(namespace, name))
                .map(Workload::PetSet),
        }
    }
}

/// The stores of every watched scope: one per `--namespace`, or one for the whole cluster.
#[derive(Clone, Default)]
pub struct Caches {
    scopes: BTreeMap<Option<String>, Stores>,
}

impl Caches {
    pub fn insert(&mut self, namespace: Option<String>, stores: Stores) {
        self.scopes.insert(namespace, stores);
    }

    /// The stores that hold `namespace`'s objects.
    pub fn of(&self, namespace: &str) -> Option<&Stores> {
        self.scopes
            .get(&Some(namespace.to_string()))
            .or_else(|| self.scopes.get(&None))
    }

    pub async fn wait_until_ready(&self) {
        futures::future::join_all(self.scopes.values().map(Stores::wait_until_ready)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn a_secret_shape_keeps_keys_and_emptiness_but_no_contents() {
        let mut secret = Secret {
            data: Some(
                [
                    (
                        "tls.key".to_string(),
                        ByteString(b"-----BEGIN PRIVATE KEY".to_vec()),
                    ),
                    ("ca.crt".to_string(), ByteString(Vec::new())),
                    ("mssql.conf".to_string(), ByteString(b"[network]".to_vec())),
                ]
                .into(),
            ),
            ..Default::default()
        };
        secret.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
        secret_shape(&mut secret);
        let data = secret.data.unwrap();
        assert_eq!(data["tls.key"].0.len(), 1);
        assert!(data["ca.crt"].0.is_empty());
        assert_eq!(
            data["mssql.conf"].0,
            b"[network]".to_vec(),
            "config files are compared whole"
        );
        assert_eq!(secret.metadata.annotations, None);
    }
}
