//! The KubeDB-compatible custom resources of the five database kinds.
//!
//! The fields every kind shares are written once in [`database_kind!`]; each kind adds its own.
//! Fields the operators do not read are kept as [`common::Opaque`] so that a KubeDB user's
//! manifest applies unchanged (and is not silently pruned).

pub mod common;
mod kinds;
pub mod ops;

pub use common::*;
pub use kinds::*;

/// `requireSSL: true` is only meaningful with an issuer to get certificates from.
pub(crate) const REQUIRE_SSL_NEEDS_ISSUER: &str =
    "!has(self.requireSSL) || !self.requireSSL || (has(self.tls) && has(self.tls.issuerRef))";
pub(crate) const REQUIRE_SSL_NEEDS_ISSUER_MESSAGE: &str =
    "spec.requireSSL needs spec.tls.issuerRef: set an Issuer or ClusterIssuer, or drop requireSSL";
/// KubeDB requires `spec.tls.issuerRef` on MSSQLServer (apimachinery #1624).
pub(crate) const MSSQL_NEEDS_ISSUER: &str = "has(self.tls) && has(self.tls.issuerRef)";
pub(crate) const MSSQL_NEEDS_ISSUER_MESSAGE: &str =
    "MSSQLServer needs spec.tls.issuerRef: set an Issuer or ClusterIssuer";

/// Declares one database kind: the CRD attributes, the shared KubeDB spec fields and the kind's own.
macro_rules! database_kind {
    (
        $(#[doc = $doc:literal])*
        spec $spec:ident, kind $kind:literal, version $version:literal, plural $plural:literal,
        singular $singular:literal, short $short:literal, tls $tls:ty,
        rules [$($rule:expr),* $(,)?],
        { $($(#[$fattr:meta])* pub $field:ident : $fty:ty),* $(,)? }
    ) => {
        $(#[doc = $doc])*
        #[derive(kube::CustomResource, kube::KubeSchema, serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq)]
        #[kube(
            group = "kubedb.com",
            version = $version,
            kind = $kind,
            plural = $plural,
            singular = $singular,
            shortname = $short,
            category = "datastore",
            category = "kubedb",
            category = "appscode",
            category = "all",
            namespaced,
            status = "crate::api::DatabaseStatus",
            cel,
            printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
            printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
            printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
        )]
        #[serde(rename_all = "camelCase")]
        $(#[x_kube(validation = $rule)])*
        pub struct $spec {
            /// The database version; picks the image from the catalogue in `crate::kinds`.
            pub version: String,
            // `format: int32` in the schema, which the API server does not enforce: held as
            // i64 so that an out-of-range value is reported (provisioner `InvalidSpec`) instead
            // of making the object undecodable and stalling the watch of every database.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(with = "Option<i32>")]
            pub replicas: Option<i64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub storage_type: Option<crate::api::StorageType>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub storage: Option<k8s_openapi::api::core::v1::PersistentVolumeClaimSpec>,
            /// Names an existing Secret to use (never modified), or the one the provisioner creates.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub auth_secret: Option<crate::api::SecretReference>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub init: Option<crate::api::Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub monitor: Option<crate::api::Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub config_secret: Option<crate::api::LocalObjectReference>,
            /// KubeDB's `ofst.PodTemplateSpec` (labels, annotations, containers' env/resources...).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub pod_template: Option<crate::api::Opaque>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub service_templates: Vec<crate::api::Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tls: Option<$tls>,
            /// Halt the database: workload and Services go, data and Secrets stay.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub halted: Option<bool>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub deletion_policy: Option<crate::api::DeletionPolicy>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub health_checker: Option<crate::api::Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub auto_ops: Option<crate::api::Opaque>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub coordinator: Option<crate::api::Opaque>,
            $($(#[$fattr])* pub $field: $fty,)*
        }

        impl $spec {
            /// The fields every kind shares, for generic code.
            pub fn common(&self) -> crate::api::CommonSpec<'_> {
                crate::api::CommonSpec {
                    version: &self.version,
                    replicas: self.replicas,
                    storage_type: self.storage_type,
                    storage: self.storage.as_ref(),
                    auth_secret: self.auth_secret.as_ref(),
                    pod_template: self.pod_template.as_ref(),
                    monitor: self.monitor.as_ref(),
                    service_templates: &self.service_templates,
                    deletion_policy: self.deletion_policy.unwrap_or_default(),
                    halted: self.halted.unwrap_or(false),
                }
            }
        }
    };
}
pub(crate) use database_kind;
