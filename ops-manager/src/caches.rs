//! The ops-manager's watch caches, shared by the controllers of all five kinds: its
//! Certificates, the issuers, (as metadata only) the operators' Secrets and Services, and the
//! databases' pods (status only), selected by the contract's `managed-by` label. Reconciles read
//! these instead of GETting.
use std::collections::BTreeMap;

use dbtls_contract::certmanager::{Certificate, ClusterIssuer, Issuer, annotations};
use dbtls_contract::labels;
use dbtls_runtime::caches::SharedWatch;
use dbtls_runtime::lean_store;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::Resource;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

/// Metadata as the ops-manager needs it: no managedFields, and of the annotations only the
/// one naming the Certificate a Secret was issued for (cert-manager writes a dozen).
pub fn lean_metadata<K>(object: &mut PartialObjectMeta<K>)
where
    PartialObjectMeta<K>: Resource,
{
    lean_store::trim(object);
    if let Some(all) = object.metadata.annotations.take() {
        let kept: BTreeMap<String, String> = all
            .into_iter()
            .filter(|(k, _)| k == annotations::CERTIFICATE_NAME)
            .collect();
        object.metadata.annotations = (!kept.is_empty()).then_some(kept);
    }
}

fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The watches of one scope, before they run: controllers subscribe, then [`Watches::run`].
pub struct Watches {
    pub certificates: SharedWatch<Certificate>,
    pub issuers: SharedWatch<Issuer>,
    pub secrets: SharedWatch<PartialObjectMeta<Secret>>,
    pub services: SharedWatch<PartialObjectMeta<Service>>,
    pub pods: SharedWatch<Pod>,
}

impl Watches {
    pub fn new(client: &kube::Client, namespace: Option<&str>) -> Self {
        let managed = || watcher::Config::default().labels(&labels::managed_selector());
        Self {
            certificates: SharedWatch::new(scoped(client, namespace), managed(), lean_store::trim),
            issuers: SharedWatch::new(
                scoped(client, namespace),
                watcher::Config::default(),
                lean_store::trim,
            ),
            secrets: SharedWatch::new(scoped(client, namespace), managed(), lean_metadata),
            services: SharedWatch::new(scoped(client, namespace), managed(), lean_metadata),
            pods: SharedWatch::new(
                scoped(client, namespace),
                managed(),
                dbtls_runtime::pods::trim,
            ),
        }
    }

    pub fn stores(&self, cluster_issuers: Store<ClusterIssuer>) -> Stores {
        Stores {
            certificates: self.certificates.store(),
            issuers: self.issuers.store(),
            cluster_issuers,
            secrets: self.secrets.store(),
            services: self.services.store(),
            pods: self.pods.store(),
        }
    }

    pub async fn run(self) {
        tokio::join!(
            self.certificates.run(),
            self.issuers.run(),
            self.secrets.run(),
            self.services.run(),
            self.pods.run()
        );
    }
}

/// The reads of one watched namespace (or the whole cluster).
#[derive(Clone)]
pub struct Stores {
    pub certificates: Store<Certificate>,
    pub issuers: Store<Issuer>,
    pub cluster_issuers: Store<ClusterIssuer>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub pods: Store<Pod>,
}

impl Stores {
    pub async fn wait_until_ready(&self) {
        let _ = tokio::join!(
            self.certificates.wait_until_ready(),
            self.issuers.wait_until_ready(),
            self.cluster_issuers.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.services.wait_until_ready(),
            self.pods.wait_until_ready()
        );
    }

    pub fn certificate(&self, namespace: &str, name: &str) -> Option<Certificate> {
        get(&self.certificates, namespace, name)
    }

    /// Every cached Certificate labelled for the database `labels` names.
    pub fn certificates_of(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Certificate> {
        labelled(&self.certificates, namespace, labels)
    }

    /// The pods labelled for the database `labels` names.
    pub fn pods_of(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<Pod> {
        labelled(&self.pods, namespace, labels)
    }

    pub fn issuer(&self, namespace: &str, name: &str) -> Option<Issuer> {
        get(&self.issuers, namespace, name)
    }

    pub fn cluster_issuer(&self, name: &str) -> Option<ClusterIssuer> {
        self.cluster_issuers
            .get(&ObjectRef::new(name))
            .map(|i| (*i).clone())
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<PartialObjectMeta<Secret>> {
        self.secrets
            .get(&ObjectRef::new(name).within(namespace))
            .map(|s| (*s).clone())
    }

    pub fn service_exists(&self, namespace: &str, name: &str) -> bool {
        self.services
            .get(&ObjectRef::new(name).within(namespace))
            .is_some()
    }
}

/// The cached objects of `namespace` that carry every label of `labels`.
fn labelled<K>(store: &Store<K>, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .state_filter(|o| {
            let meta = o.meta();
            meta.namespace.as_deref() == Some(namespace)
                && labels
                    .iter()
                    .all(|(k, v)| meta.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
        })
        .into_iter()
        .map(|o| (*o).clone())
        .collect()
}

fn get<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .get(&ObjectRef::new(name).within(namespace))
        .map(|k| (*k).clone())
}

/// The stores of every watched scope.
#[derive(Clone, Default)]
pub struct Caches {
    scopes: BTreeMap<Option<String>, Stores>,
}

impl Caches {
    pub fn insert(&mut self, namespace: Option<String>, stores: Stores) {
        self.scopes.insert(namespace, stores);
    }

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

    #[test]
    fn only_the_certificate_name_annotation_is_kept() {
        let mut secret: PartialObjectMeta<Secret> = PartialObjectMeta::default();
        secret.metadata.annotations = Some(
            [
                (
                    annotations::CERTIFICATE_NAME.to_string(),
                    "db-server-cert".to_string(),
                ),
                ("cert-manager.io/alt-names".to_string(), "a,b,c".to_string()),
            ]
            .into(),
        );
        lean_metadata(&mut secret);
        let kept = secret.metadata.annotations.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[annotations::CERTIFICATE_NAME], "db-server-cert");
    }
}
