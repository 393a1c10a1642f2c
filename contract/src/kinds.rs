//! What differs between the five kinds, as data: identity, certificate aliases, users, ports,
//! workload, where the certificates are mounted and how the server is told about them, images.

use crate::api::{
    CommonSpec, DatabaseStatus, MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore, TlsView,
};

/// The five database kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DbKind {
    MySQL,
    PerconaXtraDB,
    ProxySQL,
    Singlestore,
    MSSQLServer,
}

/// Certificate aliases (KubeDB's names).
pub mod alias {
    pub const SERVER: &str = "server";
    pub const CLIENT: &str = "client";
    pub const METRICS_EXPORTER: &str = "metrics-exporter";
    /// MSSQLServer Availability Group replicas' mirroring endpoint (port 5022).
    pub const ENDPOINT: &str = "endpoint";
}

/// A workload API: what KubeDB runs a kind on, and what the provisioner writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadApi {
    StatefulSet,
    PetSet,
}

impl WorkloadApi {
    pub fn kind(self) -> &'static str {
        match self {
            WorkloadApi::StatefulSet => "StatefulSet",
            WorkloadApi::PetSet => "PetSet",
        }
    }
}

/// How the TLS Secrets appear inside the database container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMountLayout {
    /// One directory with `ca.crt`, `server.crt`, `server.key`, `client.crt`, `client.key`
    /// (MySQL `/etc/mysql/certs`, Singlestore `/etc/memsql/certs`, MSSQL `/var/opt/mssql/tls`).
    Flat {
        volume: &'static str,
        dir: &'static str,
    },
    /// One directory per alias with the Secret's own key names `ca.crt`, `tls.crt`, `tls.key`
    /// (PerconaXtraDB `/etc/mysql/certs/<alias>`, ProxySQL `/var/lib/frontend/<alias>`).
    PerAlias {
        volume_prefix: &'static str,
        base_dir: &'static str,
    },
}

/// Everything kind-specific that both operators need.
#[derive(Debug)]
pub struct KindProfile {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub plural: &'static str,
    /// Aliases the ops-manager issues a Certificate for (in this order).
    pub aliases: &'static [&'static str],
    /// The admin user: the auth Secret's `username` and the client certificate's CN.
    pub admin_user: &'static str,
    /// The client certificate's CommonName (KubeDB's: the admin user, `mssql` for SQL Server).
    pub client_common_name: &'static str,
    /// CN of the metrics-exporter certificate, where the kind has one.
    pub exporter_user: &'static str,
    /// Name and port of the database's client port.
    pub port_name: &'static str,
    pub port: i32,
    pub container: &'static str,
    pub workload: WorkloadApi,
    pub tls_layout: TlsMountLayout,
    /// Whether `spec.tls` is required (MSSQLServer).
    pub tls_required: bool,
    /// Image repository; the tag comes from the version catalogue.
    pub image: &'static str,
    /// Versions the catalogue knows (`spec.version` must be one of them), with their image tag.
    pub versions: &'static [(&'static str, &'static str)],
}

const MYSQL_FAMILY_ALIASES: &[&str] = &[alias::SERVER, alias::CLIENT, alias::METRICS_EXPORTER];
const SERVER_CLIENT: &[&str] = &[alias::SERVER, alias::CLIENT];

static MYSQL: KindProfile = KindProfile {
    kind: "MySQL",
    api_version: "kubedb.com/v1",
    plural: "mysqls",
    aliases: MYSQL_FAMILY_ALIASES,
    admin_user: "root",
    client_common_name: "root",
    exporter_user: "exporter",
    port_name: "mysql",
    port: 3306,
    container: "mysql",
    workload: WorkloadApi::StatefulSet,
    tls_layout: TlsMountLayout::Flat {
        volume: "tls-volume",
        dir: "/etc/mysql/certs",
    },
    tls_required: false,
    image: "mysql",
    versions: &[
        ("5.7.44", "5.7.44"),
        ("8.0.36", "8.0.36"),
        ("8.0.40", "8.0.40"),
        ("8.4.3", "8.4.3"),
        ("8.4.6", "8.4.6"),
        ("9.1.0", "9.1.0"),
        ("9.4.0", "9.4.0"),
        ("9.7.1", "9.7.1"),
    ],
};

static PERCONA_XTRADB: KindProfile = KindProfile {
    kind: "PerconaXtraDB",
    api_version: "kubedb.com/v1",
    plural: "perconaxtradbs",
    aliases: MYSQL_FAMILY_ALIASES,
    admin_user: "root",
    client_common_name: "root",
    exporter_user: "exporter",
    port_name: "mysql",
    port: 3306,
    container: "perconaxtradb",
    workload: WorkloadApi::StatefulSet,
    tls_layout: TlsMountLayout::PerAlias {
        volume_prefix: "tls",
        base_dir: "/etc/mysql/certs",
    },
    tls_required: false,
    image: "percona/percona-xtradb-cluster",
    versions: &[("8.0.40", "8.0.40"), ("8.4.3", "8.4.3"), ("9.7.1", "8.4.3")],
};

static PROXYSQL: KindProfile = KindProfile {
    kind: "ProxySQL",
    api_version: "kubedb.com/v1",
    plural: "proxysqls",
    aliases: MYSQL_FAMILY_ALIASES,
    admin_user: "cluster",
    client_common_name: "cluster",
    exporter_user: "exporter",
    port_name: "mysql",
    port: 6033,
    container: "proxysql",
    workload: WorkloadApi::StatefulSet,
    tls_layout: TlsMountLayout::PerAlias {
        volume_prefix: "tls",
        base_dir: "/var/lib/frontend",
    },
    tls_required: false,
    image: "proxysql/proxysql",
    versions: &[("2.6.3", "2.6.3"), ("2.7.1", "2.7.1"), ("3.0.1", "3.0.1")],
};

static SINGLESTORE: KindProfile = KindProfile {
    kind: "Singlestore",
    api_version: "kubedb.com/v1alpha2",
    plural: "singlestores",
    aliases: SERVER_CLIENT,
    admin_user: "root",
    client_common_name: "root",
    exporter_user: "root",
    port_name: "db",
    port: 3306,
    container: "singlestore",
    workload: WorkloadApi::PetSet,
    tls_layout: TlsMountLayout::Flat {
        volume: "tls-volume",
        dir: "/etc/memsql/certs",
    },
    tls_required: false,
    image: "ghcr.io/singlestore-labs/singlestoredb-dev",
    versions: &[
        ("8.7.10", "0.2.40"),
        ("8.9.3", "0.2.51"),
        ("9.0.6", "0.2.60"),
    ],
};

static MSSQLSERVER: KindProfile = KindProfile {
    kind: "MSSQLServer",
    api_version: "kubedb.com/v1alpha2",
    plural: "mssqlservers",
    aliases: SERVER_CLIENT,
    admin_user: "sa",
    client_common_name: "mssql",
    exporter_user: "sa",
    port_name: "db",
    port: 1433,
    container: "mssql",
    workload: WorkloadApi::PetSet,
    tls_layout: TlsMountLayout::Flat {
        volume: "tls",
        dir: "/var/opt/mssql/tls",
    },
    tls_required: true,
    image: "mcr.microsoft.com/mssql/server",
    versions: &[
        ("2022-cu12", "2022-CU12-ubuntu-22.04"),
        ("2022-cu16", "2022-CU16-ubuntu-22.04"),
        ("2025-cu0", "2025-latest"),
    ],
};

impl DbKind {
    pub const ALL: [DbKind; 5] = [
        DbKind::MySQL,
        DbKind::PerconaXtraDB,
        DbKind::ProxySQL,
        DbKind::Singlestore,
        DbKind::MSSQLServer,
    ];

    pub fn profile(self) -> &'static KindProfile {
        match self {
            DbKind::MySQL => &MYSQL,
            DbKind::PerconaXtraDB => &PERCONA_XTRADB,
            DbKind::ProxySQL => &PROXYSQL,
            DbKind::Singlestore => &SINGLESTORE,
            DbKind::MSSQLServer => &MSSQLSERVER,
        }
    }

    /// `app.kubernetes.io/name` value: `<plural>.kubedb.com`.
    pub fn label_name(self) -> String {
        format!("{}.kubedb.com", self.profile().plural)
    }

    pub fn from_label_name(value: &str) -> Option<DbKind> {
        let plural = value.strip_suffix(".kubedb.com")?;
        Self::ALL.into_iter().find(|k| k.profile().plural == plural)
    }

    pub fn from_kind(kind: &str) -> Option<DbKind> {
        Self::ALL.into_iter().find(|k| k.profile().kind == kind)
    }

    /// The image for `version`, or None when the catalogue does not know the version.
    pub fn image_for(self, version: &str) -> Option<String> {
        let profile = self.profile();
        let (_, tag) = profile.versions.iter().find(|(v, _)| *v == version)?;
        Some(format!("{}:{tag}", profile.image))
    }

    /// The kind's API resource, for dynamic clients (`Api::<DynamicObject>::namespaced_with`).
    pub fn api_resource(self) -> kube::core::ApiResource {
        let profile = self.profile();
        let (group, version) = profile
            .api_version
            .split_once('/')
            .unwrap_or(("", profile.api_version));
        let gvk = kube::core::GroupVersionKind::gvk(group, version, profile.kind);
        kube::core::ApiResource::from_gvk_with_plural(&gvk, profile.plural)
    }

    /// The versions the catalogue knows, for error messages.
    pub fn known_versions(self) -> Vec<&'static str> {
        self.profile().versions.iter().map(|(v, _)| *v).collect()
    }
}

impl std::fmt::Display for DbKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.profile().kind)
    }
}

/// One StatefulSet or PetSet of a database. KubeDB runs one per database (`<db>`), except a
/// SingleStore cluster (`spec.topology`): one for its aggregators, one for its leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadPart {
    /// The workload's name; its pods are `<name>-0`, `<name>-1`, ..
    pub name: String,
    /// The pods asked for, unchecked.
    pub replicas: i64,
    /// `aggregator` or `leaf` in a SingleStore cluster; None for a database's only workload.
    pub role: Option<&'static str>,
}

impl WorkloadPart {
    /// The pod count asked for, if the provisioner accepts it (0..=[`MAX_REPLICAS`]): the one
    /// range check both operators and the provisioner's validation use.
    pub fn valid_replicas(&self) -> Option<i32> {
        (0..=MAX_REPLICAS)
            .contains(&self.replicas)
            .then(|| i32::try_from(self.replicas).ok())
            .flatten()
    }

    /// The pods the workload should have, by name: none for a count the provisioner refuses,
    /// so that a bad spec costs nothing to look at.
    pub fn pod_names(&self) -> impl Iterator<Item = String> + '_ {
        let count = self.valid_replicas().unwrap_or(0);
        (0..count).map(|i| format!("{}-{i}", self.name))
    }
}

/// The most pods one workload of a database may ask for. The API server takes any int32, but
/// both operators list a database's pods by name, and a count in the billions would make them
/// build billions of names; 10,000 is far above what these engines cluster and below the
/// 150,000 pods Kubernetes documents for a whole cluster.
pub const MAX_REPLICAS: i64 = 10_000;

/// KubeDB's defaults for a SingleStore cluster's nodes (its `SetDefaults`).
pub const SINGLESTORE_AGGREGATOR_REPLICAS: i64 = 3;
pub const SINGLESTORE_LEAF_REPLICAS: i64 = 2;
pub const ROLE_AGGREGATOR: &str = "aggregator";
pub const ROLE_LEAF: &str = "leaf";

/// The workloads a database runs beyond the one `<db>`, from its spec.
trait Topology {
    fn topology_parts(&self) -> Option<Vec<WorkloadPart>> {
        None
    }
}

impl Topology for MySQL {}
impl Topology for PerconaXtraDB {}
impl Topology for ProxySQL {}
impl Topology for MSSQLServer {}

impl Topology for Singlestore {
    fn topology_parts(&self) -> Option<Vec<WorkloadPart>> {
        let topology = self.spec.topology.as_ref()?;
        let db = self.metadata.name.as_deref().unwrap_or_default();
        let part = |node: Option<&crate::api::SinglestoreNode>, role, default| WorkloadPart {
            name: crate::names::singlestore_node(db, node.and_then(|n| n.suffix.as_deref()), role),
            replicas: node.and_then(|n| n.replicas).unwrap_or(default),
            role: Some(role),
        };
        Some(vec![
            part(
                topology.aggregator.as_ref(),
                ROLE_AGGREGATOR,
                SINGLESTORE_AGGREGATOR_REPLICAS,
            ),
            part(topology.leaf.as_ref(), ROLE_LEAF, SINGLESTORE_LEAF_REPLICAS),
        ])
    }
}

/// What both operators read from any database, whatever its kind.
pub trait Database:
    kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    const KIND: DbKind;
    /// Its ReconfigureTLS OpsRequest kind.
    type Ops: crate::api::ops::OpsRequest;
    fn common(&self) -> CommonSpec<'_>;
    fn tls(&self) -> Option<TlsView<'_>>;
    /// `spec.requireSSL` (MySQL, PerconaXtraDB); false for the kinds without it.
    fn require_ssl(&self) -> bool {
        false
    }
    fn db_status(&self) -> Option<&DatabaseStatus>;
    fn db_status_mut(&mut self) -> Option<&mut DatabaseStatus>;
    /// The pods the workload is asked to run, unchecked: `spec.replicas`, else KubeDB's
    /// default of 1 (a SingleStore cluster's are in [`Database::workload_parts`]).
    fn requested_replicas(&self) -> i64 {
        self.common().replicas.unwrap_or(1)
    }
    /// The workloads the database runs, and so its pods.
    fn workload_parts(&self) -> Vec<WorkloadPart>;
}

macro_rules! impl_database {
    ($ty:ty, $ops:ty, $kind:expr, require_ssl: $rs:expr) => {
        impl Database for $ty {
            const KIND: DbKind = $kind;
            type Ops = $ops;
            fn common(&self) -> CommonSpec<'_> {
                self.spec.common()
            }
            fn tls(&self) -> Option<TlsView<'_>> {
                let extra_aliases = ExtraAliases::extra_aliases(self);
                self.spec.tls.as_ref().map(|t| TlsView {
                    extra_aliases,
                    ..t.view()
                })
            }
            fn require_ssl(&self) -> bool {
                let f: fn(&Self) -> bool = $rs;
                f(self)
            }
            fn db_status(&self) -> Option<&DatabaseStatus> {
                self.status.as_ref()
            }
            fn db_status_mut(&mut self) -> Option<&mut DatabaseStatus> {
                self.status.as_mut()
            }
            fn workload_parts(&self) -> Vec<WorkloadPart> {
                Topology::topology_parts(self).unwrap_or_else(|| {
                    vec![WorkloadPart {
                        name: crate::names::workload(
                            self.metadata.name.as_deref().unwrap_or_default(),
                        ),
                        replicas: self.requested_replicas(),
                        role: None,
                    }]
                })
            }
        }
    };
}

/// Aliases a database has beyond its kind's, from its spec.
trait ExtraAliases {
    fn extra_aliases(&self) -> &'static [&'static str] {
        &[]
    }
}

impl ExtraAliases for MySQL {}
impl ExtraAliases for PerconaXtraDB {}
impl ExtraAliases for ProxySQL {}
impl ExtraAliases for Singlestore {}

/// `spec.topology.mode` of an MSSQLServer whose replicas mirror through the `endpoint`
/// certificate (KubeDB's `IsAvailabilityGroup`, and a Distributed AG's own groups).
pub const MSSQL_AVAILABILITY_GROUP_MODES: [&str; 2] = ["AvailabilityGroup", "DistributedAG"];

impl ExtraAliases for MSSQLServer {
    fn extra_aliases(&self) -> &'static [&'static str] {
        let mode = self.spec.topology.as_ref().and_then(|t| t.mode.as_deref());
        if mode.is_some_and(|m| MSSQL_AVAILABILITY_GROUP_MODES.contains(&m)) {
            &[alias::ENDPOINT]
        } else {
            &[]
        }
    }
}

impl_database!(MySQL, crate::api::ops::MySQLOpsRequest, DbKind::MySQL, require_ssl: |db| db.spec.require_ssl.unwrap_or(false));
impl_database!(PerconaXtraDB, crate::api::ops::PerconaXtraDBOpsRequest, DbKind::PerconaXtraDB, require_ssl: |db| db.spec.require_ssl.unwrap_or(false));
impl_database!(ProxySQL, crate::api::ops::ProxySQLOpsRequest, DbKind::ProxySQL, require_ssl: |_| false);
impl_database!(Singlestore, crate::api::ops::SinglestoreOpsRequest, DbKind::Singlestore, require_ssl: |_| false);
impl_database!(MSSQLServer, crate::api::ops::MSSQLServerOpsRequest, DbKind::MSSQLServer, require_ssl: |_| false);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kube::Resource;

    #[test]
    fn a_singlestore_cluster_runs_aggregators_and_leaves_with_kubedb_names_and_defaults() {
        let parse = |yaml: &str| -> Singlestore { serde_yaml::from_str(yaml).unwrap() };
        let standalone = parse(
            "apiVersion: kubedb.com/v1alpha2\nkind: Singlestore\nmetadata: {name: sdb}\nspec: {version: '8.7.10'}\n",
        );
        assert_eq!(
            standalone.workload_parts(),
            [WorkloadPart {
                name: "sdb".into(),
                replicas: 1,
                role: None
            }]
        );
        let cluster = parse(
            "apiVersion: kubedb.com/v1alpha2\nkind: Singlestore\nmetadata: {name: sdb}\nspec:\n  version: '8.7.10'\n  topology:\n    aggregator: {replicas: 2, suffix: east}\n    leaf: {}\n",
        );
        let parts = cluster.workload_parts();
        assert_eq!(
            parts,
            [
                WorkloadPart {
                    name: "sdb-east-aggregator".into(),
                    replicas: 2,
                    role: Some("aggregator")
                },
                WorkloadPart {
                    name: "sdb-leaf".into(),
                    replicas: 2,
                    role: Some("leaf")
                },
            ]
        );
        let pods: Vec<String> = parts.iter().flat_map(WorkloadPart::pod_names).collect();
        // Counts the provisioner refuses name no pod (the API server does not even enforce
        // `format: int32`).
        for replicas in [4_294_967_296, 2_000_000_000, MAX_REPLICAS + 1, -1] {
            let refused = WorkloadPart {
                name: "db".into(),
                replicas,
                role: None,
            };
            assert_eq!(refused.pod_names().count(), 0, "{replicas}");
            assert_eq!(refused.valid_replicas(), None, "{replicas}");
        }
        for replicas in [0, 1, MAX_REPLICAS] {
            let accepted = WorkloadPart {
                name: "db".into(),
                replicas,
                role: None,
            };
            assert_eq!(accepted.valid_replicas().map(i64::from), Some(replicas));
        }
        assert_eq!(
            pods,
            [
                "sdb-east-aggregator-0",
                "sdb-east-aggregator-1",
                "sdb-leaf-0",
                "sdb-leaf-1"
            ]
        );
    }

    #[test]
    fn profiles_agree_with_the_crd_types() {
        assert_eq!(MySQL::kind(&()), DbKind::MySQL.profile().kind);
        assert_eq!(MySQL::plural(&()), DbKind::MySQL.profile().plural);
        assert_eq!(
            PerconaXtraDB::plural(&()),
            DbKind::PerconaXtraDB.profile().plural
        );
        assert_eq!(ProxySQL::plural(&()), DbKind::ProxySQL.profile().plural);
        assert_eq!(Singlestore::kind(&()), "Singlestore");
        assert_eq!(
            Singlestore::api_version(&()),
            DbKind::Singlestore.profile().api_version
        );
        assert_eq!(
            MSSQLServer::api_version(&()),
            DbKind::MSSQLServer.profile().api_version
        );
        assert_eq!(
            MSSQLServer::plural(&()),
            DbKind::MSSQLServer.profile().plural
        );
    }

    #[test]
    fn label_names_map_back_to_kinds() {
        for kind in DbKind::ALL {
            assert_eq!(DbKind::from_label_name(&kind.label_name()), Some(kind));
            assert_eq!(DbKind::from_kind(kind.profile().kind), Some(kind));
        }
        assert_eq!(DbKind::from_label_name("mysqls.example.com"), None);
    }

    #[test]
    fn aliases_follow_kubedb() {
        let plain = crate::api::TlsConfig::default();
        let view = plain.view();
        assert!(view.knows_alias(DbKind::MySQL, "metrics-exporter"));
        assert!(!view.knows_alias(DbKind::Singlestore, "metrics-exporter"));
        assert!(!view.knows_alias(DbKind::MSSQLServer, "router"));
        assert_eq!(DbKind::MSSQLServer.profile().admin_user, "sa");
    }

    #[test]
    fn an_availability_group_adds_the_endpoint_alias() {
        let mssql = |topology: &str| -> MSSQLServer {
            serde_yaml::from_str(&format!(
                "apiVersion: kubedb.com/v1alpha2\nkind: MSSQLServer\nmetadata: {{name: ms}}\nspec:\n  version: \"2022\"\n{topology}  tls:\n    issuerRef: {{kind: Issuer, name: ca}}\n"
            ))
            .unwrap()
        };
        for (topology, want) in [
            ("", vec!["server", "client"]),
            (
                "  topology:\n    mode: AvailabilityGroup\n",
                vec!["server", "client", "endpoint"],
            ),
            (
                "  topology:\n    mode: DistributedAG\n",
                vec!["server", "client", "endpoint"],
            ),
        ] {
            let db = mssql(topology);
            let view = db.tls().unwrap();
            assert_eq!(view.aliases(DbKind::MSSQLServer), want, "{topology:?}");
            assert_eq!(
                view.knows_alias(DbKind::MSSQLServer, "endpoint"),
                want.len() == 3
            );
        }
    }

    #[test]
    fn api_resources_match_the_crd_types() {
        let resource = DbKind::Singlestore.api_resource();
        assert_eq!(resource.group, "kubedb.com");
        assert_eq!(resource.version, "v1alpha2");
        assert_eq!(resource.kind, "Singlestore");
        assert_eq!(resource.plural, Singlestore::plural(&()));
        assert_eq!(
            DbKind::MySQL.api_resource().api_version,
            MySQL::api_version(&())
        );
    }

    #[test]
    fn unknown_versions_have_no_image() {
        assert_eq!(
            DbKind::MySQL.image_for("8.4.3").as_deref(),
            Some("mysql:8.4.3")
        );
        assert_eq!(DbKind::MySQL.image_for("1.0"), None);
    }
}
