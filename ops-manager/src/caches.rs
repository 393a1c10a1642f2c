//! The ops-manager's watch caches, shared by the controllers of all five kinds: its
//! Certificates, the issuers, (as metadata only) the operators' Secrets and Services, and the
//! databases' pods (status only), selected by the contract's `managed-by` label, and the
//! OpsRequests of the five kinds. Reconciles read these instead of GETting.
use std::collections::BTreeMap;

use dbtls_contract::api::ops::{
    MSSQLServerOpsRequest, MySQLOpsRequest, OpsRequest, OpsRequestPhase, PerconaXtraDBOpsRequest,
    ProxySQLOpsRequest, SinglestoreOpsRequest,
};
use dbtls_contract::certmanager::{Certificate, ClusterIssuer, Issuer, annotations};
use dbtls_contract::{DbKind, labels};
use dbtls_runtime::caches::{ByNameWatch, CompactStore, CompactWatch, SharedWatch, get};
use dbtls_runtime::lean_store;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

/// Metadata as the ops-manager needs it: no managedFields, and of the annotations only those
/// naming the Certificate and the issuer a Secret was issued for (cert-manager writes a dozen)
/// and the CA bundle's list of CAs (and the CA an issuer change retires).
pub fn lean_metadata<K>(object: &mut PartialObjectMeta<K>)
where
    PartialObjectMeta<K>: Resource,
{
    lean_store::trim(object);
    if let Some(all) = object.metadata.annotations.take() {
        let kept: BTreeMap<String, String> = all
            .into_iter()
            .filter(|(k, _)| {
                [
                    annotations::CERTIFICATE_NAME,
                    annotations::ISSUER_NAME,
                    annotations::ISSUER_KIND,
                    annotations::ISSUER_GROUP,
                    dbtls_contract::labels::TRUSTED_CA_SERIALS,
                    dbtls_contract::labels::RETIRED_CA_SERIAL,
                ]
                .contains(&k.as_str())
            })
            .collect();
        object.metadata.annotations = (!kept.is_empty()).then_some(kept);
    }
    // None of those: the auth or config Secret, or someone else's Secret where one of ours
    // would go, which only has to be known to exist.
    if object.metadata.annotations.is_none() {
        existence_only(object);
    }
}

/// A Certificate as the ops-manager keeps it: [`lean_store::trim`], and none of what no plan
/// reads of its times and names (its creation, its conditions' transitions, `notBefore`,
/// cert-manager's last failure and next key's Secret): such values are most of what the
/// cache's compression leaves of a status.
pub fn lean_certificate(certificate: &mut Certificate) {
    lean_store::trim(certificate);
    certificate.metadata.creation_timestamp = None;
    if let Some(status) = certificate.status.as_mut() {
        status.not_before = None;
        status.last_failure_time = None;
        status.next_private_key_secret_name = None;
        for condition in status.conditions.iter_mut().flatten() {
            condition.last_transition_time = None;
        }
    }
}

/// Of an object the ops-manager only needs to know exists (the provisioner's Services, its
/// auth and config Secrets), its name, namespace and labels (which name the database): its
/// uid, resourceVersion, timestamps and owner are random bytes the cache's compression cannot
/// shorten, most of what such an entry costs.
pub fn existence_only<K>(object: &mut PartialObjectMeta<K>)
where
    PartialObjectMeta<K>: Resource,
{
    let meta = std::mem::take(&mut object.metadata);
    object.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        labels: meta.labels,
        ..ObjectMeta::default()
    };
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
    pub certificates: CompactWatch<Certificate>,
    pub issuers: SharedWatch<Issuer>,
    pub secrets: ByNameWatch<PartialObjectMeta<Secret>>,
    pub services: ByNameWatch<PartialObjectMeta<Service>>,
    pub pods: CompactWatch<Pod>,
    pub ops: OpsWatches,
}

/// The OpsRequests of each kind (few, and read whole).
pub struct OpsWatches {
    pub mysql: SharedWatch<MySQLOpsRequest>,
    pub percona_xtradb: SharedWatch<PerconaXtraDBOpsRequest>,
    pub proxysql: SharedWatch<ProxySQLOpsRequest>,
    pub singlestore: SharedWatch<SinglestoreOpsRequest>,
    pub mssqlserver: SharedWatch<MSSQLServerOpsRequest>,
}

impl OpsWatches {
    fn new(client: &kube::Client, namespace: Option<&str>) -> Self {
        let all = watcher::Config::default;
        Self {
            mysql: SharedWatch::new(scoped(client, namespace), all(), lean_store::trim),
            percona_xtradb: SharedWatch::new(scoped(client, namespace), all(), lean_store::trim),
            proxysql: SharedWatch::new(scoped(client, namespace), all(), lean_store::trim),
            singlestore: SharedWatch::new(scoped(client, namespace), all(), lean_store::trim),
            mssqlserver: SharedWatch::new(scoped(client, namespace), all(), lean_store::trim),
        }
    }

    fn stores(&self) -> OpsStores {
        OpsStores {
            mysql: self.mysql.store(),
            percona_xtradb: self.percona_xtradb.store(),
            proxysql: self.proxysql.store(),
            singlestore: self.singlestore.store(),
            mssqlserver: self.mssqlserver.store(),
        }
    }

    async fn run(self) {
        tokio::join!(
            self.mysql.run(),
            self.percona_xtradb.run(),
            self.proxysql.run(),
            self.singlestore.run(),
            self.mssqlserver.run()
        );
    }
}

/// The OpsRequests of each kind, as cached.
#[derive(Clone)]
pub struct OpsStores {
    pub mysql: Store<MySQLOpsRequest>,
    pub percona_xtradb: Store<PerconaXtraDBOpsRequest>,
    pub proxysql: Store<ProxySQLOpsRequest>,
    pub singlestore: Store<SinglestoreOpsRequest>,
    pub mssqlserver: Store<MSSQLServerOpsRequest>,
}

/// One OpsRequest, whatever its kind, as the database's reconcile and the queue see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpsSummary {
    /// `<Kind> <namespace>/<name>`.
    pub describe: String,
    pub name: String,
    pub phase: Option<OpsRequestPhase>,
    /// RFC 3339 (sorts in time order).
    pub created: String,
    /// The message of its latest condition.
    pub message: Option<String>,
}

fn summaries<O: OpsRequest>(store: &Store<O>, namespace: &str, database: &str) -> Vec<OpsSummary> {
    let mut list: Vec<OpsSummary> = store
        .state()
        .iter()
        .filter(|o| {
            o.meta().namespace.as_deref() == Some(namespace) && o.spec_view().database == database
        })
        .map(|o| OpsSummary::of(o.as_ref()))
        .collect();
    list.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
    list
}

impl OpsSummary {
    pub fn of<O: OpsRequest>(o: &O) -> Self {
        let meta = o.meta();
        let name = meta.name.clone().unwrap_or_default();
        let status = o.ops_status();
        Self {
            describe: format!(
                "{} {}/{name}",
                O::kind(&()),
                meta.namespace.as_deref().unwrap_or_default()
            ),
            name,
            phase: status.and_then(|s| s.phase),
            created: meta
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
            message: status
                .and_then(|s| {
                    s.conditions
                        .iter()
                        .max_by(|a, b| a.last_transition_time.cmp(&b.last_transition_time))
                })
                .and_then(|c| c.message.clone()),
        }
    }
}

impl OpsStores {
    /// Every OpsRequest for the database, oldest first.
    pub fn for_database(&self, kind: DbKind, namespace: &str, database: &str) -> Vec<OpsSummary> {
        match kind {
            DbKind::MySQL => summaries(&self.mysql, namespace, database),
            DbKind::PerconaXtraDB => summaries(&self.percona_xtradb, namespace, database),
            DbKind::ProxySQL => summaries(&self.proxysql, namespace, database),
            DbKind::Singlestore => summaries(&self.singlestore, namespace, database),
            DbKind::MSSQLServer => summaries(&self.mssqlserver, namespace, database),
        }
    }

    async fn wait_until_ready(&self) {
        let _ = tokio::join!(
            self.mysql.wait_until_ready(),
            self.percona_xtradb.wait_until_ready(),
            self.proxysql.wait_until_ready(),
            self.singlestore.wait_until_ready(),
            self.mssqlserver.wait_until_ready()
        );
    }
}

impl Watches {
    pub fn new(client: &kube::Client, namespace: Option<&str>) -> Self {
        let managed = || watcher::Config::default().labels(&labels::managed_selector());
        Self {
            certificates: CompactWatch::new(scoped(client, namespace), managed(), lean_certificate),
            issuers: SharedWatch::new(
                scoped(client, namespace),
                watcher::Config::default(),
                lean_store::trim,
            ),
            secrets: ByNameWatch::new(scoped(client, namespace), managed(), lean_metadata),
            services: ByNameWatch::new(scoped(client, namespace), managed(), existence_only),
            pods: CompactWatch::new(
                scoped(client, namespace),
                managed(),
                dbtls_runtime::pods::trim,
            ),
            ops: OpsWatches::new(client, namespace),
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
            ops: self.ops.stores(),
        }
    }

    pub async fn run(self) {
        tokio::join!(
            self.certificates.run(),
            self.issuers.run(),
            self.secrets.run(),
            self.services.run(),
            self.pods.run(),
            self.ops.run()
        );
    }
}

/// The reads of one watched namespace (or the whole cluster).
#[derive(Clone)]
pub struct Stores {
    pub certificates: CompactStore<Certificate>,
    pub issuers: Store<Issuer>,
    pub cluster_issuers: Store<ClusterIssuer>,
    pub secrets: CompactStore<PartialObjectMeta<Secret>>,
    pub services: CompactStore<PartialObjectMeta<Service>>,
    pub pods: CompactStore<Pod>,
    pub ops: OpsStores,
}

impl Stores {
    pub async fn wait_until_ready(&self) {
        let _ = tokio::join!(
            self.certificates.wait_until_ready(),
            self.issuers.wait_until_ready(),
            self.cluster_issuers.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.services.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.ops.wait_until_ready()
        );
    }

    pub fn certificate(&self, namespace: &str, name: &str) -> Option<Certificate> {
        self.certificates.get(namespace, name)
    }

    /// Every cached Certificate labelled for the database `labels` names.
    pub fn certificates_of(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Certificate> {
        self.certificates.labelled(namespace, labels)
    }

    /// The pods labelled for the database `labels` names.
    pub fn pods_of(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<Pod> {
        self.pods.labelled(namespace, labels)
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
        self.secrets.get(namespace, name)
    }

    pub fn service_exists(&self, namespace: &str, name: &str) -> bool {
        self.services.get(namespace, name).is_some()
    }
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
        secret.metadata.uid = Some("u".into());
        secret.metadata.resource_version = Some("7".into());
        lean_metadata(&mut secret);
        let kept = secret.metadata.annotations.unwrap();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[annotations::CERTIFICATE_NAME], "db-server-cert");
        assert_eq!(
            (
                secret.metadata.uid.as_deref(),
                secret.metadata.resource_version.as_deref()
            ),
            (Some("u"), Some("7")),
            "an issued Secret is adopted by uid and version"
        );
    }

    #[test]
    fn a_certificate_keeps_what_readiness_renewal_and_comparison_read() {
        let mut cert: Certificate = serde_yaml::from_str(
            r#"
metadata: {name: db-server-cert, namespace: demo, uid: u, generation: 2, creationTimestamp: "2026-12-05T11:25:49Z"}
spec: {secretName: db-server-cert, issuerRef: {name: ca, kind: Issuer}, dnsNames: [db, db.demo.svc]}
status:
  conditions:
  - {type: Ready, status: "True", reason: Ready, message: up to date, observedGeneration: 2, lastTransitionTime: "2026-12-05T11:25:49Z"}
  notBefore: "2026-12-05T11:25:49Z"
  notAfter: "2027-03-05T11:25:49Z"
  renewalTime: "2027-02-03T11:25:49Z"
  revision: 3
  lastFailureTime: "2026-12-05T11:20:00Z"
  failedIssuanceAttempts: 1
  nextPrivateKeySecretName: db-server-cert-x7k2p
"#,
        )
        .unwrap();
        let spec = cert.spec.clone();
        lean_certificate(&mut cert);
        assert_eq!(cert.spec, spec, "compared with what would be applied");
        assert_eq!(cert.metadata.generation, Some(2));
        assert_eq!(cert.metadata.creation_timestamp, None);
        let status = cert.status.unwrap();
        let ready = status.condition("Ready").unwrap();
        assert_eq!(
            (
                ready.status.as_str(),
                ready.observed_generation,
                ready.message.as_deref()
            ),
            ("True", Some(2), Some("up to date"))
        );
        assert_eq!(ready.last_transition_time, None);
        assert_eq!(status.not_after.as_deref(), Some("2027-03-05T11:25:49Z"));
        assert_eq!(status.renewal_time.as_deref(), Some("2027-02-03T11:25:49Z"));
        assert_eq!(status.revision, Some(3));
        assert_eq!(status.failed_issuance_attempts, Some(1));
        assert_eq!(
            (
                status.not_before,
                status.last_failure_time,
                status.next_private_key_secret_name
            ),
            (None, None, None)
        );
    }

    #[test]
    fn a_secret_without_those_annotations_is_kept_as_its_name_and_labels() {
        let mut auth: PartialObjectMeta<Secret> = PartialObjectMeta {
            metadata: ObjectMeta {
                name: Some("db-auth".into()),
                namespace: Some("demo".into()),
                labels: Some([("app.kubernetes.io/instance".to_string(), "db".to_string())].into()),
                annotations: Some([("note".to_string(), "x".to_string())].into()),
                uid: Some("u".into()),
                resource_version: Some("7".into()),
                owner_references: Some(vec![Default::default()]),
                ..ObjectMeta::default()
            },
            ..PartialObjectMeta::default()
        };
        let mut want = auth.metadata.clone();
        lean_metadata(&mut auth);
        want.annotations = None;
        want.uid = None;
        want.resource_version = None;
        want.owner_references = None;
        assert_eq!(auth.metadata, want);
    }
}
