//! KubeDB's day-2 API for TLS: the `ReconfigureTLS` OpsRequests of the five kinds
//! (`ops.kubedb.com/v1alpha1`, field names as in KubeDB's `apis/ops/v1alpha1`). The ops-manager
//! carries them out; admission refuses what can never work.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CertificateSpec, Condition, IssuerRef, LocalObjectReference, conditions_list_map};
use crate::DbKind;

/// `spec.type`. KubeDB has more operations; dbtls carries out the TLS one only, so the schema
/// refuses the others instead of accepting a request nobody will run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum OpsRequestType {
    #[default]
    #[serde(rename = "ReconfigureTLS")]
    ReconfigureTls,
}

/// `spec.apply`: run only while the database is Ready (KubeDB's default), or regardless.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ApplyOption {
    #[default]
    IfReady,
    Always,
}

/// `spec.tls` of a ReconfigureTLS request: one operation per request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconfigureTlsSpec {
    /// The issuer to (re-)issue every certificate from: adds TLS, or changes the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    /// Per-alias changes, merged into the database's `spec.tls.certificates` by alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::MAX_CERTIFICATES))]
    pub certificates: Option<Vec<CertificateSpec>>,
    /// Re-issue every certificate now and make every pod serve the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_certificates: Option<bool>,
    /// Remove TLS from the database (its certificates go; their Secrets are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<bool>,
    /// MySQL and PerconaXtraDB: set the database's `spec.requireSSL`.
    #[serde(
        default,
        rename = "requireSSL",
        skip_serializing_if = "Option::is_none"
    )]
    pub require_ssl: Option<bool>,
    /// MSSQLServer: set the database's `spec.tls.clientTLS`.
    #[serde(default, rename = "clientTLS", skip_serializing_if = "Option::is_none")]
    pub client_tls: Option<bool>,
}

/// `status.phase` (`OpsRequestPhase`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum OpsRequestPhase {
    Pending,
    Progressing,
    Successful,
    Failed,
    Skipped,
}

impl OpsRequestPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Progressing => "Progressing",
            Self::Successful => "Successful",
            Self::Failed => "Failed",
            Self::Skipped => "Skipped",
        }
    }

    /// Nothing more will happen to a request in this phase.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Successful | Self::Failed | Self::Skipped)
    }
}

/// `status` (`OpsRequestStatus`), plus what a resumed ops-manager needs to finish a step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpsRequestStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<OpsRequestPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_list_map")]
    pub conditions: Vec<Condition>,
    /// dbtls: each Certificate's `status.revision` when this request asked for re-issuance
    /// (a Certificate is re-issued once its revision is higher).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub certificate_revisions: BTreeMap<String, i64>,
    /// dbtls: the database's `metadata.generation` after this request changed its spec
    /// (the change is rolled out once the database reports that generation ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_generation: Option<i64>,
}

impl OpsRequestStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// A request needs `spec.tls`.
const TLS_REQUIRED: &str = "self.type != 'ReconfigureTLS' || has(self.tls)";
const TLS_REQUIRED_MESSAGE: &str = "spec.tls is required for ReconfigureTLS: TLS Spec is empty";
/// Operations asked for: a change (issuer, certificates, requireSSL, clientTLS), a rotation, a removal.
macro_rules! operations {
    () => {
        "(has(self.tls.issuerRef) || has(self.tls.certificates) || has(self.tls.requireSSL) || has(self.tls.clientTLS) ? 1 : 0) + (has(self.tls.rotateCertificates) && self.tls.rotateCertificates ? 1 : 0) + (has(self.tls.remove) && self.tls.remove ? 1 : 0)"
    };
}
const AT_LEAST_ONE: &str = concat!("!has(self.tls) || ", operations!(), " >= 1");
const AT_LEAST_ONE_MESSAGE: &str = "no reconfiguration is provided in spec.tls: set issuerRef or certificates, rotateCertificates, remove, requireSSL or clientTLS";
const AT_MOST_ONE: &str = concat!("!has(self.tls) || ", operations!(), " <= 1");
const AT_MOST_ONE_MESSAGE: &str = "more than 1 field have assigned to spec.tls but at a time one operation is allowed: rotateCertificates, remove, or a change of issuerRef/certificates/requireSSL/clientTLS";
const IMMUTABLE: &str = "self == oldSelf";
const IMMUTABLE_MESSAGE: &str = "spec is immutable: create a new OpsRequest instead";
const NO_REQUIRE_SSL: &str = "!has(self.tls) || !has(self.tls.requireSSL)";
const NO_CLIENT_TLS: &str = "!has(self.tls) || !has(self.tls.clientTLS)";

/// Declares one OpsRequest kind; only names, the reference field and the kind's own rules differ.
macro_rules! ops_request_kind {
    (
        $(#[doc = $doc:literal])*
        spec $spec:ident, root $root:ident, kind $kind:literal, plural $plural:literal, singular $singular:literal,
        short $short:literal, database $db:expr, reference $reference:literal,
        rules [$($rule:expr),* $(,)?]
    ) => {
        $(#[doc = $doc])*
        #[derive(kube::CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
        #[kube(
            group = "ops.kubedb.com",
            version = "v1alpha1",
            kind = $kind,
            plural = $plural,
            singular = $singular,
            shortname = $short,
            category = "ops",
            category = "kubedb",
            category = "appscode",
            namespaced,
            status = "OpsRequestStatus",
            cel,
            printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
            printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
            printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
        )]
        #[serde(rename_all = "camelCase")]
        #[x_kube(validation = Rule::new(TLS_REQUIRED).message(TLS_REQUIRED_MESSAGE))]
        #[x_kube(validation = Rule::new(AT_LEAST_ONE).message(AT_LEAST_ONE_MESSAGE))]
        #[x_kube(validation = Rule::new(AT_MOST_ONE).message(AT_MOST_ONE_MESSAGE))]
        #[x_kube(validation = Rule::new(IMMUTABLE).message(IMMUTABLE_MESSAGE))]
        $(#[x_kube(validation = $rule)])*
        pub struct $spec {
            /// The database this request changes.
            #[serde(rename = $reference)]
            pub database_ref: LocalObjectReference,
            #[serde(rename = "type")]
            pub type_: OpsRequestType,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tls: Option<ReconfigureTlsSpec>,
            /// Go duration per step (`5m`): a step not finished in time fails the request.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
            pub timeout: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub apply: Option<ApplyOption>,
            /// Kept for KubeDB compatibility; a failed step is not retried by dbtls.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub max_retries: Option<i32>,
        }

        impl OpsRequest for $root {
            const DATABASE: DbKind = $db;
            fn spec_view(&self) -> OpsView<'_> {
                OpsView {
                    database: &self.spec.database_ref.name,
                    tls: self.spec.tls.as_ref(),
                    timeout: self.spec.timeout.as_deref(),
                    apply: self.spec.apply.unwrap_or_default(),
                }
            }
            fn ops_status(&self) -> Option<&OpsRequestStatus> {
                self.status.as_ref()
            }
        }
    };
}

/// What the ops-manager reads from any OpsRequest, whatever its kind.
#[derive(Clone, Copy, Debug)]
pub struct OpsView<'a> {
    pub database: &'a str,
    pub tls: Option<&'a ReconfigureTlsSpec>,
    pub timeout: Option<&'a str>,
    pub apply: ApplyOption,
}

/// An OpsRequest of one of the five kinds.
pub trait OpsRequest:
    kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The kind of database it changes.
    const DATABASE: DbKind;
    fn spec_view(&self) -> OpsView<'_>;
    fn ops_status(&self) -> Option<&OpsRequestStatus>;
}

ops_request_kind! {
    /// MySQLOpsRequest (`myops`).
    spec MySQLOpsRequestSpec, root MySQLOpsRequest, kind "MySQLOpsRequest",
    plural "mysqlopsrequests", singular "mysqlopsrequest", short "myops",
    database DbKind::MySQL, reference "databaseRef",
    rules [Rule::new(NO_CLIENT_TLS).message("spec.tls.clientTLS is an MSSQLServer field; MySQL has spec.tls.requireSSL")]
}

ops_request_kind! {
    /// PerconaXtraDBOpsRequest (`pxcops`).
    spec PerconaXtraDBOpsRequestSpec, root PerconaXtraDBOpsRequest, kind "PerconaXtraDBOpsRequest",
    plural "perconaxtradbopsrequests", singular "perconaxtradbopsrequest", short "pxcops",
    database DbKind::PerconaXtraDB, reference "databaseRef",
    rules [Rule::new(NO_CLIENT_TLS).message("spec.tls.clientTLS is an MSSQLServer field; PerconaXtraDB has spec.tls.requireSSL")]
}

ops_request_kind! {
    /// ProxySQLOpsRequest (`prxops`); the proxy is named by `spec.proxyRef`.
    spec ProxySQLOpsRequestSpec, root ProxySQLOpsRequest, kind "ProxySQLOpsRequest",
    plural "proxysqlopsrequests", singular "proxysqlopsrequest", short "prxops",
    database DbKind::ProxySQL, reference "proxyRef",
    rules [
        Rule::new(NO_REQUIRE_SSL).message("spec.tls.requireSSL is a MySQL/PerconaXtraDB field, not ProxySQL's"),
        Rule::new(NO_CLIENT_TLS).message("spec.tls.clientTLS is an MSSQLServer field, not ProxySQL's"),
    ]
}

ops_request_kind! {
    /// SinglestoreOpsRequest (`sdbops`).
    spec SinglestoreOpsRequestSpec, root SinglestoreOpsRequest, kind "SinglestoreOpsRequest",
    plural "singlestoreopsrequests", singular "singlestoreopsrequest", short "sdbops",
    database DbKind::Singlestore, reference "databaseRef",
    rules [
        Rule::new(NO_REQUIRE_SSL).message("spec.tls.requireSSL is a MySQL/PerconaXtraDB field, not Singlestore's"),
        Rule::new(NO_CLIENT_TLS).message("spec.tls.clientTLS is an MSSQLServer field, not Singlestore's"),
    ]
}

ops_request_kind! {
    /// MSSQLServerOpsRequest (`msops`).
    spec MSSQLServerOpsRequestSpec, root MSSQLServerOpsRequest, kind "MSSQLServerOpsRequest",
    plural "mssqlserveropsrequests", singular "mssqlserveropsrequest", short "msops",
    database DbKind::MSSQLServer, reference "databaseRef",
    rules [Rule::new(NO_REQUIRE_SSL).message("spec.tls.requireSSL is a MySQL/PerconaXtraDB field; MSSQLServer has spec.tls.clientTLS")]
}
