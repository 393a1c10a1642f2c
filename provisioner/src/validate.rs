//! Validation of a database before anything is built: spec errors (fixed by editing the spec)
//! and missing or malformed referenced Secrets (fixed outside the spec, so retried with backoff).
//! Invalid input is reported on the status and as an Event, never a crash.
use dbtls_contract::DbKind;
use dbtls_contract::api::StorageType;
use dbtls_contract::conditions::Reason;
use k8s_openapi::api::core::v1::Secret;

use crate::desired::auth::{PASSWORD_KEY, USERNAME_KEY};
use crate::desired::exporter;
use crate::desired::pod::LICENSE_KEY;
use crate::facts::DbFacts;

/// Why a database cannot be provisioned (the message says what to do).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("spec.version {version:?} is not in the {kind} catalogue; use one of: {known}")]
    UnknownVersion {
        kind: DbKind,
        version: String,
        known: String,
    },
    #[error(
        "{field} is required for {kind} with storageType Durable: set {field} (a PersistentVolumeClaim spec) or storageType: Ephemeral"
    )]
    StorageMissing { kind: DbKind, field: String },
    #[error("spec.backend.name is required: name the MySQL-family database ProxySQL fronts")]
    BackendMissing,
    #[error(
        "spec.licenseSecret.name is required: name a Secret with the SingleStore license under key `license`"
    )]
    LicenseSecretNotNamed,
    #[error("spec.tls.issuerRef is required for MSSQLServer: set an Issuer or ClusterIssuer")]
    MssqlIssuerMissing,
    #[error("spec.requireSSL needs spec.tls: add spec.tls.issuerRef or drop requireSSL")]
    RequireSslWithoutTls,
    #[error("{field} {replicas} is out of range: use a number from 0 to {max}", max = dbtls_contract::kinds::MAX_REPLICAS)]
    ReplicasOutOfRange { field: String, replicas: i64 },
    #[error("{field} {why}")]
    Monitor { field: &'static str, why: String },
    #[error(
        "auth Secret {name} named in spec.authSecret.name does not exist: create it with keys `username` and `password`"
    )]
    AuthSecretMissing { name: String },
    #[error("auth Secret {name} lacks key(s) {missing}: it needs `username` and `password`")]
    AuthSecretInvalid { name: String, missing: String },
    #[error(
        "license Secret {name} named in spec.licenseSecret does not exist: create it with key `license`"
    )]
    LicenseSecretMissing { name: String },
    #[error("license Secret {name} lacks key `license`")]
    LicenseSecretInvalid { name: String },
    #[error(
        "{what} already exists and is not owned by this database; it is never modified or deleted: rename or delete it, or give the database another name"
    )]
    NameConflict { what: String },
}

impl Invalid {
    /// The condition reason.
    pub fn reason(&self) -> Reason {
        match self {
            Invalid::AuthSecretMissing { .. } => Reason::AuthSecretMissing,
            Invalid::AuthSecretInvalid { .. } => Reason::AuthSecretInvalid,
            Invalid::NameConflict { .. } => Reason::NameConflict,
            _ => Reason::InvalidSpec,
        }
    }

    /// Whether the fix happens outside the spec (a Secret to create), so that only a timed
    /// retry notices it: these Secrets carry no labels and are not watched.
    pub fn fixed_outside_spec(&self) -> bool {
        matches!(
            self,
            Invalid::AuthSecretMissing { .. }
                | Invalid::AuthSecretInvalid { .. }
                | Invalid::LicenseSecretMissing { .. }
                | Invalid::LicenseSecretInvalid { .. }
                // Removing the other object is not a change of this database: only a retry sees it.
                | Invalid::NameConflict { .. }
        )
    }
}

/// Checks the spec alone; returns the catalogue image on success.
pub fn spec(db: &DbFacts<'_>) -> Result<String, Invalid> {
    let kind = db.kind;
    let version = db.common.version;
    let image = kind
        .image_for(version)
        .ok_or_else(|| Invalid::UnknownVersion {
            kind,
            version: version.to_string(),
            known: kind.known_versions().join(", "),
        })?;
    let needs_storage =
        kind != DbKind::ProxySQL && db.common.storage_type != Some(StorageType::Ephemeral);
    if let Some(part) = db
        .parts
        .iter()
        .find(|p| needs_storage && db.storage_of(p).is_none())
    {
        let field = match part.role {
            Some(role) => format!("spec.topology.{role}.storage"),
            None => "spec.storage".to_string(),
        };
        return Err(Invalid::StorageMissing { kind, field });
    }
    if kind == DbKind::ProxySQL && db.extras.backend.is_none_or(str::is_empty) {
        return Err(Invalid::BackendMissing);
    }
    if kind == DbKind::Singlestore && db.extras.license_secret.is_none_or(str::is_empty) {
        return Err(Invalid::LicenseSecretNotNamed);
    }
    if kind.profile().tls_required && db.tls.and_then(|t| t.issuer_ref).is_none() {
        return Err(Invalid::MssqlIssuerMissing);
    }
    if db.require_ssl && db.tls.is_none() {
        return Err(Invalid::RequireSslWithoutTls);
    }
    for part in &db.parts {
        let replicas = part.replicas;
        if part.valid_replicas().is_none() {
            let field = match part.role {
                Some(role) => format!("spec.topology.{role}.replicas"),
                None => "spec.replicas".to_string(),
            };
            return Err(Invalid::ReplicasOutOfRange { field, replicas });
        }
    }
    exporter::monitor(db.common.monitor, db.kind).map_err(|p| Invalid::Monitor {
        field: p.field,
        why: p.why,
    })?;
    Ok(image)
}

fn missing_keys(secret: &Secret, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter(|k| {
            !secret.data.as_ref().is_some_and(|d| d.contains_key(**k))
                && !secret
                    .string_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(**k))
        })
        .map(|k| k.to_string())
        .collect()
}

/// A user-named auth Secret must exist with `username` and `password`.
pub fn user_auth_secret(name: &str, found: Option<&Secret>) -> Result<(), Invalid> {
    let secret = found.ok_or_else(|| Invalid::AuthSecretMissing {
        name: name.to_string(),
    })?;
    let missing = missing_keys(secret, &[USERNAME_KEY, PASSWORD_KEY]);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Invalid::AuthSecretInvalid {
            name: name.to_string(),
            missing: missing.join(", "),
        })
    }
}

/// Singlestore's license Secret must exist with key `license`.
pub fn license_secret(name: &str, found: Option<&Secret>) -> Result<(), Invalid> {
    let secret = found.ok_or_else(|| Invalid::LicenseSecretMissing {
        name: name.to_string(),
    })?;
    if missing_keys(secret, &[LICENSE_KEY]).is_empty() {
        Ok(())
    } else {
        Err(Invalid::LicenseSecretInvalid {
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::facts::fixtures::{load, parse};
    use dbtls_contract::api::{MSSQLServer, MySQL, ProxySQL, Singlestore};
    use k8s_openapi::ByteString;

    #[test]
    fn valid_fixtures_pass_and_yield_the_catalogue_image() {
        let db: MySQL = load("mysql-require-ssl.yaml");
        assert_eq!(spec(&DbFacts::of(&db)).unwrap(), "mysql:8.4.3");
        let db: MSSQLServer = load("mssql-client-tls.yaml");
        assert!(spec(&DbFacts::of(&db)).is_ok());
        let db: ProxySQL = load("proxysql-tls.yaml");
        assert!(spec(&DbFacts::of(&db)).is_ok());
        let db: Singlestore = load("singlestore-tls.yaml");
        assert!(spec(&DbFacts::of(&db)).is_ok());
    }

    #[test]
    fn unknown_version_lists_the_catalogue() {
        let db: MySQL = parse(
            "metadata: {name: a, namespace: n}\nspec: {version: '1.0', storageType: Ephemeral}",
        );
        let err = spec(&DbFacts::of(&db)).unwrap_err();
        assert!(matches!(err, Invalid::UnknownVersion { .. }));
        assert!(err.to_string().contains("8.4.3"), "{err}");
        assert_eq!(err.reason(), Reason::InvalidSpec);
    }

    #[test]
    fn storage_is_required_unless_ephemeral_or_proxysql() {
        let db: MySQL = parse("metadata: {name: a, namespace: n}\nspec: {version: '8.4.3'}");
        assert_eq!(
            spec(&DbFacts::of(&db)),
            Err(Invalid::StorageMissing {
                kind: DbKind::MySQL,
                field: "spec.storage".into()
            })
        );
        // A SingleStore cluster's leaves need storage too: theirs, or spec.storage.
        let sdb: Singlestore = parse(
            "metadata: {name: a, namespace: n}\nspec: {version: '8.7.10', licenseSecret: {name: l}, topology: {aggregator: {storage: {}}, leaf: {}}}",
        );
        let err = spec(&DbFacts::of(&sdb)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.topology.leaf.storage is required for Singlestore with storageType Durable: set spec.topology.leaf.storage (a PersistentVolumeClaim spec) or storageType: Ephemeral"
        );
        let sdb: Singlestore = parse(
            "metadata: {name: a, namespace: n}\nspec: {version: '8.7.10', licenseSecret: {name: l}, storage: {}, topology: {aggregator: {}, leaf: {}}}",
        );
        assert!(spec(&DbFacts::of(&sdb)).is_ok());
        let db: MySQL = parse(
            "metadata: {name: a, namespace: n}\nspec: {version: '8.4.3', storageType: Ephemeral}",
        );
        assert!(spec(&DbFacts::of(&db)).is_ok());
    }

    #[test]
    fn kind_specific_requirements() {
        let proxy: ProxySQL = parse("metadata: {name: a, namespace: n}\nspec: {version: '2.7.1'}");
        assert_eq!(spec(&DbFacts::of(&proxy)), Err(Invalid::BackendMissing));
        let sdb: Singlestore = parse(
            "metadata: {name: a, namespace: n}\nspec: {version: '8.7.10', storageType: Ephemeral}",
        );
        assert_eq!(
            spec(&DbFacts::of(&sdb)),
            Err(Invalid::LicenseSecretNotNamed)
        );
        let ms: MSSQLServer = parse(
            "metadata: {name: a, namespace: n}\nspec: {version: '2022-cu12', storageType: Ephemeral, tls: {certificates: []}}",
        );
        assert_eq!(spec(&DbFacts::of(&ms)), Err(Invalid::MssqlIssuerMissing));
        let my: MySQL = parse(
            "metadata: {name: a, namespace: n}\nspec: {version: '8.4.3', storageType: Ephemeral, requireSSL: true}",
        );
        assert_eq!(spec(&DbFacts::of(&my)), Err(Invalid::RequireSslWithoutTls));
    }

    #[test]
    fn replicas_outside_int32_are_reported_not_undecodable() {
        for replicas in ["4294967296", "2000000000", "10001", "-1"] {
            let db: MySQL = parse(&format!(
                "metadata: {{name: a, namespace: n}}\nspec: {{version: '8.4.3', storageType: Ephemeral, replicas: {replicas}}}"
            ));
            let err = spec(&DbFacts::of(&db)).unwrap_err();
            assert!(matches!(err, Invalid::ReplicasOutOfRange { .. }), "{err}");
            assert!(err.to_string().contains(replicas), "{err}");
            assert_eq!(err.reason(), Reason::InvalidSpec);
        }
        // A SingleStore cluster's node is named by its own field.
        let sdb: Singlestore = parse(
            "metadata: {name: a, namespace: n}\nspec: {version: '8.7.10', storageType: Ephemeral, licenseSecret: {name: l}, topology: {aggregator: {}, leaf: {replicas: -2}}}",
        );
        assert_eq!(
            spec(&DbFacts::of(&sdb)).unwrap_err().to_string(),
            "spec.topology.leaf.replicas -2 is out of range: use a number from 0 to 10000"
        );
    }

    #[test]
    fn an_unknown_monitoring_agent_names_the_field() {
        let db: MySQL = parse(
            "metadata: {name: a, namespace: n}\nspec: {version: '8.4.3', storageType: Ephemeral, monitor: {agent: prometheus.io/unknown}}",
        );
        let err = spec(&DbFacts::of(&db)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.monitor.agent \"prometheus.io/unknown\""),
            "{err}"
        );
        assert_eq!(err.reason(), Reason::InvalidSpec);
        assert!(!err.fixed_outside_spec());
    }

    #[test]
    fn referenced_secrets_must_exist_with_their_keys() {
        let mut secret = Secret::default();
        assert_eq!(
            user_auth_secret("u", None).unwrap_err().reason(),
            Reason::AuthSecretMissing
        );
        secret.data = Some([("username".to_string(), ByteString(b"x".to_vec()))].into());
        let err = user_auth_secret("u", Some(&secret)).unwrap_err();
        assert_eq!(err.reason(), Reason::AuthSecretInvalid);
        assert!(err.to_string().contains("password"));
        assert!(err.fixed_outside_spec());
        secret
            .data
            .as_mut()
            .unwrap()
            .insert("password".into(), ByteString(b"y".to_vec()));
        assert!(user_auth_secret("u", Some(&secret)).is_ok());
        assert!(license_secret("l", Some(&secret)).is_err());
        assert!(license_secret("l", None).unwrap_err().fixed_outside_spec());
    }
}
