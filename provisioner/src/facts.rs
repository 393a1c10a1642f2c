//! What the builders need to know about one database, independent of its Rust type, so that
//! every builder is a pure function of plain data (and testable from YAML).
use dbtls_contract::api::{
    CommonSpec, MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore, SinglestoreTopology,
    TlsView,
};
use dbtls_contract::kinds::WorkloadPart;
use dbtls_contract::{Database, DbKind};
use k8s_openapi::api::core::v1::PersistentVolumeClaimSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

/// Fields only some kinds have, which the generic pipeline still has to validate or use.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras<'a> {
    /// ProxySQL `spec.backend.name`.
    pub backend: Option<&'a str>,
    /// Singlestore `spec.licenseSecret.name`.
    pub license_secret: Option<&'a str>,
    /// Singlestore `spec.topology` (storage and replicas may live there instead of the top level).
    pub singlestore_topology: Option<&'a SinglestoreTopology>,
}

/// A database kind the provisioner can run: [`Database`] plus its kind-specific fields.
pub trait Provisionable: Database {
    fn extras(&self) -> Extras<'_> {
        Extras::default()
    }
}

impl Provisionable for MySQL {}
impl Provisionable for PerconaXtraDB {}
impl Provisionable for MSSQLServer {}

impl Provisionable for ProxySQL {
    fn extras(&self) -> Extras<'_> {
        Extras {
            backend: self.spec.backend.as_ref().map(|b| b.name.as_str()),
            ..Extras::default()
        }
    }
}

impl Provisionable for Singlestore {
    fn extras(&self) -> Extras<'_> {
        Extras {
            license_secret: self
                .spec
                .license_secret
                .as_ref()
                .and_then(|s| s.name.as_deref()),
            singlestore_topology: self.spec.topology.as_ref(),
            ..Extras::default()
        }
    }
}

/// One database, as the builders see it.
#[derive(Clone, Debug)]
pub struct DbFacts<'a> {
    pub kind: DbKind,
    pub name: String,
    pub namespace: String,
    /// Controller ownerReference to the database (`controller`, `blockOwnerDeletion`).
    pub owner: Option<OwnerReference>,
    pub common: CommonSpec<'a>,
    pub tls: Option<TlsView<'a>>,
    pub require_ssl: bool,
    pub extras: Extras<'a>,
    /// The workloads it runs: `<db>`, or a SingleStore cluster's aggregators and leaves.
    pub parts: Vec<WorkloadPart>,
}

impl<'a> DbFacts<'a> {
    pub fn of<K: Provisionable>(db: &'a K) -> Self {
        Self {
            kind: K::KIND,
            name: db.name_any(),
            namespace: db.namespace().unwrap_or_default(),
            owner: db.controller_owner_ref(&()),
            common: db.common(),
            tls: db.tls(),
            require_ssl: db.require_ssl(),
            extras: db.extras(),
            parts: db.workload_parts(),
        }
    }

    /// The pods to run in all its workloads (validated: a part `validate::spec` would have
    /// refused counts 0).
    pub fn replicas(&self) -> i32 {
        self.parts
            .iter()
            .map(replicas_of)
            .fold(0, i32::saturating_add)
    }

    /// Whether it runs more than one workload, whose pods then carry `labels::WORKLOAD`.
    pub fn clustered(&self) -> bool {
        self.parts.iter().any(|p| p.role.is_some())
    }

    /// The storage of `part`'s pods: its SingleStore node's, else `spec.storage`.
    pub fn storage_of(&self, part: &WorkloadPart) -> Option<&'a PersistentVolumeClaimSpec> {
        let topology = self.extras.singlestore_topology;
        let node = match part.role {
            Some(dbtls_contract::kinds::ROLE_AGGREGATOR) => {
                topology.and_then(|t| t.aggregator.as_ref())
            }
            Some(dbtls_contract::kinds::ROLE_LEAF) => topology.and_then(|t| t.leaf.as_ref()),
            _ => None,
        };
        node.and_then(|n| n.storage.as_ref())
            .or(self.common.storage)
    }

    /// The Secret holding `username`/`password`: the user's, or `<db>-auth`.
    pub fn auth_secret_name(&self) -> String {
        self.user_auth_secret()
            .map(str::to_string)
            .unwrap_or_else(|| dbtls_contract::names::auth_secret(&self.name))
    }

    /// The auth Secret named by the user, which the provisioner only reads. Naming `<db>-auth`
    /// (what KubeDB writes back into the spec) still lets the provisioner create it.
    pub fn user_auth_secret(&self) -> Option<&'a str> {
        self.common
            .auth_secret
            .and_then(|s| s.name.as_deref())
            .filter(|n| !n.is_empty())
            .filter(|n| *n != dbtls_contract::names::auth_secret(&self.name))
    }
}

/// A part's pods to run (0 for a value `validate::spec` would have refused).
pub fn replicas_of(part: &WorkloadPart) -> i32 {
    part.valid_replicas().unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod fixtures {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    //! Databases parsed from the YAML files in `provisioner/tests/fixtures/`.
    use std::path::Path;

    pub fn load<K: serde::de::DeserializeOwned>(file: &str) -> K {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A database from inline YAML.
    pub fn parse<K: serde::de::DeserializeOwned>(yaml: &str) -> K {
        serde_yaml::from_str(yaml).expect("fixture parses")
    }
}
