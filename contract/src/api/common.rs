//! Field types shared by the five database kinds, with KubeDB's field names
//! (`kmodules.xyz/client-go/api/v1` and `kubedb.dev/apimachinery`).

use k8s_openapi::api::core::v1::PersistentVolumeClaimSpec;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A JSON object the operators do not interpret (or interpret leniently) but must keep exactly as
/// the user wrote it, so that KubeDB manifests apply unchanged (`x-kubernetes-preserve-unknown-fields`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct Opaque(pub serde_json::Map<String, serde_json::Value>);

impl JsonSchema for Opaque {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Opaque".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
    }
}

impl Opaque {
    /// Reads the opaque object as a typed value, e.g. a `PodTemplateSpec`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(serde_json::Value::Object(self.0.clone()))
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `spec.tls.issuerRef` (a `TypedLocalObjectReference` in KubeDB).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.kind in ['Issuer', 'ClusterIssuer']").message("issuerRef.kind must be Issuer or ClusterIssuer"),
    validation = Rule::new("!has(self.apiGroup) || self.apiGroup == '' || self.apiGroup == 'cert-manager.io'").message("issuerRef.apiGroup must be cert-manager.io"),
    validation = Rule::new("self.name != ''").message("issuerRef.name must not be empty")
)]
pub struct IssuerRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub api_group: Option<String>,
    #[schemars(length(max = 63))]
    pub kind: String,
    #[schemars(length(max = 253))]
    pub name: String,
}

/// `privateKey.encoding` of a certificate entry (the CRD enum is upper case).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PrivateKeyEncoding {
    #[serde(rename = "PKCS1")]
    Pkcs1,
    #[serde(rename = "PKCS8")]
    Pkcs8,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatePrivateKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<PrivateKeyEncoding>,
}

/// X.509 subject fields (`kmapi.X509Subject`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct X509Subject {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizational_units: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub localities: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provinces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub street_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub postal_codes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
}

/// One entry of `spec.tls.certificates` (`kmapi.CertificateSpec`): the user's overrides for one alias.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// server, client, metrics-exporter (which aliases a kind has is in `kinds`).
    #[x_kube(validation = Rule::new("self != ''").message("alias must not be empty"))]
    #[schemars(length(max = 63))]
    pub alias: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<X509Subject>,
    /// Go duration (`2160h`), as in cert-manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<CertificatePrivateKey>,
}

/// Bounded so that the API server's CEL cost estimate for [`UNIQUE_ALIASES`] stays within budget.
pub const MAX_CERTIFICATES: usize = 16;
const UNIQUE_ALIASES: &str = "!has(self.certificates) || self.certificates.all(c, self.certificates.exists_one(d, d.alias == c.alias))";

/// `spec.tls` of MySQL, PerconaXtraDB, ProxySQL and Singlestore (`kmapi.TLSConfig`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(cel, validation = Rule::new(UNIQUE_ALIASES).message("certificate aliases must be unique"))]
pub struct TlsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_CERTIFICATES))]
    pub certificates: Vec<CertificateSpec>,
}

/// `spec.tls` of MSSQLServer: `kmapi.TLSConfig` plus `clientTLS`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(cel, validation = Rule::new(UNIQUE_ALIASES).message("certificate aliases must be unique"))]
pub struct MssqlTlsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_CERTIFICATES))]
    pub certificates: Vec<CertificateSpec>,
    /// Makes the SQL Server listener force TLS (`mssql.conf` `[network] forceencryption`).
    #[serde(default, rename = "clientTLS", skip_serializing_if = "Option::is_none")]
    pub client_tls: Option<bool>,
}

/// A read-only view of either TLS shape, so that both operators handle all kinds alike.
#[derive(Clone, Copy, Debug)]
pub struct TlsView<'a> {
    pub issuer_ref: Option<&'a IssuerRef>,
    pub certificates: &'a [CertificateSpec],
    pub client_tls: Option<bool>,
    /// Aliases this database has beyond its kind's (an MSSQLServer Availability Group's
    /// `endpoint`).
    pub extra_aliases: &'static [&'static str],
}

impl TlsConfig {
    pub fn view(&self) -> TlsView<'_> {
        TlsView {
            issuer_ref: self.issuer_ref.as_ref(),
            certificates: &self.certificates,
            client_tls: None,
            extra_aliases: &[],
        }
    }
}

impl MssqlTlsConfig {
    pub fn view(&self) -> TlsView<'_> {
        TlsView {
            issuer_ref: self.issuer_ref.as_ref(),
            certificates: &self.certificates,
            client_tls: self.client_tls,
            extra_aliases: &[],
        }
    }
}

impl<'a> TlsView<'a> {
    /// Every alias a database of `kind` with this `spec.tls` gets a certificate for.
    pub fn aliases(&self, kind: crate::DbKind) -> Vec<&'static str> {
        let mut aliases = kind.profile().aliases.to_vec();
        aliases.extend(self.extra_aliases);
        aliases
    }

    /// Whether `alias` is one of [`TlsView::aliases`].
    pub fn knows_alias(&self, kind: crate::DbKind, alias: &str) -> bool {
        kind.profile().aliases.contains(&alias) || self.extra_aliases.contains(&alias)
    }

    /// The user's entry for `alias`, if any.
    pub fn certificate(&self, alias: &str) -> Option<&'a CertificateSpec> {
        self.certificates.iter().find(|c| c.alias == alias)
    }
    /// Every issuer named: `spec.tls.issuerRef` and each certificate entry's own.
    pub fn issuers(&self) -> impl Iterator<Item = &'a IssuerRef> + use<'a> {
        let certificates = self.certificates;
        self.issuer_ref
            .into_iter()
            .chain(certificates.iter().filter_map(|c| c.issuer_ref.as_ref()))
    }

    /// The issuer for `alias`: the entry's own `issuerRef`, else `spec.tls.issuerRef`.
    pub fn issuer_for(&self, alias: &str) -> Option<&'a IssuerRef> {
        self.certificate(alias)
            .and_then(|c| c.issuer_ref.as_ref())
            .or(self.issuer_ref)
    }
}

/// `spec.authSecret` (KubeDB `SecretReference`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user manages this Secret; the operator never creates or changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub externally_managed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<String>,
}

/// A `LocalObjectReference` (`{name}`), e.g. ProxySQL's `spec.backend`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct LocalObjectReference {
    pub name: String,
}

/// What survives the deletion of a database, as in KubeDB.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// The deletion is refused (a finalizer keeps the object).
    DoNotTerminate,
    /// Workload and Services go; PVCs and Secrets stay.
    Halt,
    /// Workload, Services and PVCs go; Secrets stay. KubeDB's default.
    #[default]
    Delete,
    /// Everything the operators created goes, including Secrets and PVCs.
    WipeOut,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StorageType {
    #[default]
    Durable,
    Ephemeral,
}

/// `status.phase` values (`kubedb.dev/apimachinery/apis/kubedb` `DatabasePhase`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DatabasePhase {
    Provisioning,
    DataRestoring,
    Ready,
    Critical,
    NotReady,
    Halted,
    Unknown,
}

impl DatabasePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "Provisioning",
            Self::DataRestoring => "DataRestoring",
            Self::Ready => "Ready",
            Self::Critical => "Critical",
            Self::NotReady => "NotReady",
            Self::Halted => "Halted",
            Self::Unknown => "Unknown",
        }
    }
}

/// A status condition (`kmapi.Condition`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// RFC 3339; changes only when `status` changes.
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub(crate) fn conditions_list_map(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = <Vec<Condition>>::json_schema(generator);
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

/// The status every kind shares. `phase` and `observedGeneration` belong to the provisioner;
/// each operator applies only its own condition types (the list is a map keyed by `type`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DatabasePhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_list_map")]
    pub conditions: Vec<Condition>,
}

impl DatabaseStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// The parts of the spec every kind has, borrowed, so that generic code needs no per-kind match.
#[derive(Clone, Copy, Debug)]
pub struct CommonSpec<'a> {
    pub version: &'a str,
    pub replicas: Option<i64>,
    pub storage_type: Option<StorageType>,
    pub storage: Option<&'a PersistentVolumeClaimSpec>,
    pub auth_secret: Option<&'a SecretReference>,
    pub pod_template: Option<&'a Opaque>,
    /// KubeDB's `spec.monitor` (`mona.AgentSpec`), as the user wrote it.
    pub monitor: Option<&'a Opaque>,
    pub service_templates: &'a [Opaque],
    pub deletion_policy: DeletionPolicy,
    pub halted: bool,
}
