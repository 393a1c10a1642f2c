//! The five kinds. Only what differs between them is written here; see [`super::database_kind`].

use super::{LocalObjectReference, SecretReference};
use super::{
    MSSQL_NEEDS_ISSUER, MSSQL_NEEDS_ISSUER_MESSAGE, REQUIRE_SSL_NEEDS_ISSUER,
    REQUIRE_SSL_NEEDS_ISSUER_MESSAGE,
};
use super::{MssqlTlsConfig, Opaque, TlsConfig, database_kind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

database_kind! {
    /// MySQL (kubedb.com/v1).
    spec MySQLSpec, kind "MySQL", version "v1", plural "mysqls", singular "mysql", short "my",
    tls TlsConfig,
    rules [Rule::new(REQUIRE_SSL_NEEDS_ISSUER).message(REQUIRE_SSL_NEEDS_ISSUER_MESSAGE)],
    {
        /// Refuse connections without TLS (`--require-secure-transport=ON`).
        #[serde(default, rename = "requireSSL", skip_serializing_if = "Option::is_none")]
        pub require_ssl: Option<bool>,
        /// GroupReplication, InnoDBCluster, RemoteReplica or SemiSync, kept as written.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub topology: Option<Opaque>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub use_address_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub allowed_schemas: Option<Opaque>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub allowed_read_replicas: Option<Opaque>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub archiver: Option<Opaque>,
    }
}

database_kind! {
    /// PerconaXtraDB (kubedb.com/v1).
    spec PerconaXtraDBSpec, kind "PerconaXtraDB", version "v1", plural "perconaxtradbs",
    singular "perconaxtradb", short "px", tls TlsConfig,
    rules [Rule::new(REQUIRE_SSL_NEEDS_ISSUER).message(REQUIRE_SSL_NEEDS_ISSUER_MESSAGE)],
    {
        #[serde(default, rename = "requireSSL", skip_serializing_if = "Option::is_none")]
        pub require_ssl: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub system_user_secrets: Option<Opaque>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub allowed_schemas: Option<Opaque>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub archiver: Option<Opaque>,
    }
}

database_kind! {
    /// ProxySQL (kubedb.com/v1); `spec.tls` covers the frontend (client to proxy) only.
    spec ProxySQLSpec, kind "ProxySQL", version "v1", plural "proxysqls", singular "proxysql",
    short "prx", tls TlsConfig,
    rules [],
    {
        /// The MySQL-family database behind the proxy (KubeDB requires it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub backend: Option<LocalObjectReference>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sync_users: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub init_config: Option<Opaque>,
    }
}

database_kind! {
    /// Singlestore (kubedb.com/v1alpha2; the kind is spelled with a lower-case s).
    spec SinglestoreSpec, kind "Singlestore", version "v1alpha2", plural "singlestores",
    singular "singlestore", short "sdb", tls TlsConfig,
    rules [],
    {
        /// The Secret holding the SingleStore license (key `license`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub license_secret: Option<SecretReference>,
        /// Aggregator and leaf node groups; absent for a standalone server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub topology: Option<SinglestoreTopology>,
    }
}

database_kind! {
    /// MSSQLServer (kubedb.com/v1alpha2); `spec.tls.issuerRef` is required.
    spec MSSQLServerSpec, kind "MSSQLServer", version "v1alpha2", plural "mssqlservers",
    singular "mssqlserver", short "ms", tls MssqlTlsConfig,
    rules [Rule::new(MSSQL_NEEDS_ISSUER).message(MSSQL_NEEDS_ISSUER_MESSAGE).reason(Reason::FieldValueRequired)],
    {
        /// Standalone when absent; `mode: AvailabilityGroup | DistributedAG` otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub topology: Option<MssqlTopology>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub internal_auth: Option<Opaque>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub leader_election: Option<Opaque>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub archiver: Option<Opaque>,
    }
}

/// One Singlestore node group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SinglestoreNode {
    // i64 for the same reason as `spec.replicas` (the schema says int32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i32>")]
    pub replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<k8s_openapi::api::core::v1::PersistentVolumeClaimSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SinglestoreTopology {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<SinglestoreNode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf: Option<SinglestoreNode>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MssqlTopology {
    /// AvailabilityGroup or DistributedAG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_group: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed_ag: Option<Opaque>,
}
