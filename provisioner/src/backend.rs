//! A ProxySQL's backend (`spec.backend`): the MySQL, else the PerconaXtraDB, of that name in its
//! namespace (KubeDB names the backend's AppBinding after the database), whether it is Ready,
//! and the Secrets a TLS connection to it takes: its CA bundle and its client certificate.
use dbtls_contract::api::DatabasePhase;
use dbtls_contract::kinds::alias;
use dbtls_contract::{Database, DbKind, names, tls};
use kube::ResourceExt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub kind: DbKind,
    pub name: String,
    pub phase: Option<DatabasePhase>,
    /// None when the backend has no `spec.tls`: ProxySQL connects to it in plaintext.
    pub tls: Option<BackendTls>,
}

/// The backend's Secrets ProxySQL mounts to reach it over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendTls {
    /// Its CA bundle: the CAs its server certificate chains to.
    pub ca_bundle: String,
    /// Its client certificate (the admin user's), which ProxySQL presents.
    pub client_secret: String,
}

impl BackendTls {
    pub fn secrets(&self) -> [String; 2] {
        [self.ca_bundle.clone(), self.client_secret.clone()]
    }
}

impl Backend {
    pub fn of<K: Database>(db: &K) -> Backend {
        let name = db.name_any();
        let tls = db.tls().map(|view| BackendTls {
            ca_bundle: names::ca_bundle(&name),
            client_secret: tls::secret_name(&name, &view, alias::CLIENT),
        });
        Backend {
            kind: K::KIND,
            phase: db.db_status().and_then(|s| s.phase),
            name,
            tls,
        }
    }

    pub fn ready(&self) -> bool {
        self.phase == Some(DatabasePhase::Ready)
    }

    /// Why a ProxySQL's workload waits for this backend, if it does.
    pub fn wait(&self) -> Option<String> {
        (!self.ready()).then(|| {
            let phase = self.phase.map_or("no phase yet", DatabasePhase::as_str);
            format!(
                "its backend {} {} is not Ready ({phase})",
                self.kind, self.name
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::facts::fixtures::parse;
    use dbtls_contract::api::{MySQL, PerconaXtraDB};

    #[test]
    fn a_backend_is_known_by_its_phase_and_its_tls() {
        let plain: MySQL = parse(
            "metadata: {name: be, namespace: demo}\nspec: {version: '8.4.3', storageType: Ephemeral}\nstatus: {phase: Provisioning}",
        );
        let backend = Backend::of(&plain);
        assert_eq!(backend.tls, None);
        assert_eq!(
            backend.wait().as_deref(),
            Some("its backend MySQL be is not Ready (Provisioning)")
        );
        let with_tls: PerconaXtraDB = parse(
            "metadata: {name: px, namespace: demo}\nspec:\n  version: '8.0.40'\n  storageType: Ephemeral\n  tls:\n    issuerRef: {kind: Issuer, name: ca}\n    certificates:\n    - {alias: client, secretName: px-own-client}\nstatus: {phase: Ready}",
        );
        let backend = Backend::of(&with_tls);
        assert_eq!(backend.wait(), None);
        assert_eq!(
            backend.tls.unwrap().secrets(),
            ["px-ca-bundle".to_string(), "px-own-client".to_string()]
        );
    }
}
