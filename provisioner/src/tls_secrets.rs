//! Whether every TLS Secret a database needs exists and has the shape a server can use.
use dbtls_contract::DbKind;
use dbtls_contract::{labels, names};
use k8s_openapi::api::core::v1::Secret;

use crate::backend::BackendTls;
use crate::desired::server_tls::{CA_KEY, CERT_KEY, KEY_KEY};

pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// The state of a database's TLS Secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSecretsState {
    /// No `spec.tls`.
    NotConfigured,
    /// Some Secrets do not exist yet (names), and none is invalid.
    Missing(Vec<String>),
    /// Some Secrets exist but cannot be used (one problem per Secret), plus the missing ones.
    Invalid {
        problems: Vec<String>,
        missing: Vec<String>,
    },
    Ready,
}

/// What is wrong with `secret`, if anything.
pub fn problem(secret: &Secret) -> Option<String> {
    problem_with(secret, &[CA_KEY, CERT_KEY, KEY_KEY])
}

/// What is wrong with `secret` when it must hold `keys`.
fn problem_with(secret: &Secret, keys: &[&str]) -> Option<String> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let mut wrong = Vec::new();
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    if type_ != TLS_SECRET_TYPE {
        wrong.push(format!("type is {type_}, not {TLS_SECRET_TYPE}"));
    }
    let missing: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|key| {
            let in_data = secret
                .data
                .as_ref()
                .and_then(|d| d.get(*key))
                .is_some_and(|v| !v.0.is_empty());
            let in_string_data = secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(*key))
                .is_some_and(|v| !v.is_empty());
            !(in_data || in_string_data)
        })
        .collect();
    if !missing.is_empty() {
        wrong.push(format!("missing key(s) {}", missing.join(", ")));
    }
    (!wrong.is_empty()).then(|| format!("Secret {name}: {}", wrong.join("; ")))
}

/// A Secret whose labels say it is another database's (another database issued it under the
/// same `secretName`): mounting it would give this database that one's identity.
pub fn foreign(kind: DbKind, db: &str, secret: &Secret) -> Option<String> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let labels = secret.metadata.labels.as_ref()?;
    match labels::database_of(labels) {
        Some((owner_kind, owner)) if (owner_kind, owner) != (kind, db) => Some(format!(
            "Secret {name}: belongs to {owner_kind} {owner}; give this database its own secretName"
        )),
        _ => None,
    }
}

/// What is wrong with the CA bundle Secret, if anything: it needs a non-empty `ca.crt`.
pub fn bundle_problem(secret: &Secret) -> Option<String> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let has_ca = secret
        .data
        .as_ref()
        .and_then(|d| d.get(CA_KEY))
        .is_some_and(|v| !v.0.is_empty());
    (!has_ca).then(|| format!("Secret {name}: no {CA_KEY} (the CA bundle the ops-manager writes)"))
}

/// [`check`] for database `db` of `kind`: the CA bundle by its own shape, the Secrets named in
/// `from_acme` without `ca.crt` (an ACME issuer gives none), a ProxySQL backend's bundle and
/// client Secret as the backend's, and other Secrets of another database refused.
pub fn check_for(
    kind: DbKind,
    db: &str,
    found: &[(String, Option<Secret>)],
    from_acme: &[String],
    backend: Option<&BackendTls>,
) -> TlsSecretsState {
    let bundle = names::ca_bundle(db);
    classify(found, |s| {
        let name = s.metadata.name.as_deref();
        let is = |wanted: &str| name == Some(wanted);
        if let Some(backend) = backend {
            if is(&backend.ca_bundle) {
                return bundle_problem(s);
            }
            if is(&backend.client_secret) {
                return problem(s);
            }
        }
        let own_problem = if is(&bundle) {
            bundle_problem(s)
        } else if from_acme.iter().any(|n| is(n)) {
            problem_with(s, &[CERT_KEY, KEY_KEY])
        } else {
            problem(s)
        };
        own_problem.or_else(|| foreign(kind, db, s))
    })
}

/// Classifies the Secrets found for each required name (`None`: not found).
pub fn check(found: &[(String, Option<Secret>)]) -> TlsSecretsState {
    classify(found, problem)
}

fn classify(
    found: &[(String, Option<Secret>)],
    problem: impl Fn(&Secret) -> Option<String>,
) -> TlsSecretsState {
    let missing: Vec<String> = found
        .iter()
        .filter(|(_, s)| s.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    let problems: Vec<String> = found
        .iter()
        .filter_map(|(_, s)| s.as_ref().and_then(&problem))
        .collect();
    if !problems.is_empty() {
        TlsSecretsState::Invalid { problems, missing }
    } else if !missing.is_empty() {
        TlsSecretsState::Missing(missing)
    } else {
        TlsSecretsState::Ready
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(name: &str, type_: &str, keys: &[&str]) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.type_ = Some(type_.into());
        s.data = Some(
            keys.iter()
                .map(|k| (k.to_string(), ByteString(b"x".to_vec())))
                .collect::<BTreeMap<_, _>>(),
        );
        s
    }

    #[test]
    fn all_present_and_well_formed_is_ready() {
        let ok = secret("a", TLS_SECRET_TYPE, &["ca.crt", "tls.crt", "tls.key"]);
        assert_eq!(check(&[("a".into(), Some(ok))]), TlsSecretsState::Ready);
    }

    #[test]
    fn missing_secrets_are_named() {
        let ok = secret("a", TLS_SECRET_TYPE, &["ca.crt", "tls.crt", "tls.key"]);
        assert_eq!(
            check(&[("a".into(), Some(ok)), ("b".into(), None)]),
            TlsSecretsState::Missing(vec!["b".into()])
        );
    }

    #[test]
    fn wrong_type_and_missing_keys_are_invalid() {
        let opaque = secret("a", "Opaque", &["ca.crt", "tls.crt", "tls.key"]);
        let no_ca = secret("b", TLS_SECRET_TYPE, &["tls.crt", "tls.key"]);
        let state = check(&[
            ("a".into(), Some(opaque)),
            ("b".into(), Some(no_ca)),
            ("c".into(), None),
        ]);
        let TlsSecretsState::Invalid { problems, missing } = state else {
            panic!("expected Invalid, got {state:?}");
        };
        assert_eq!(missing, ["c"]);
        assert!(problems[0].contains("Secret a: type is Opaque"));
        assert!(problems[1].contains("Secret b: missing key(s) ca.crt"));
    }

    #[test]
    fn another_databases_secret_is_refused() {
        let mut other = secret("shared", TLS_SECRET_TYPE, &[CA_KEY, CERT_KEY, KEY_KEY]);
        other.metadata.labels = Some(labels::for_database(DbKind::MySQL, "first"));
        let found = [("shared".to_string(), Some(other))];
        assert_eq!(check(&found), TlsSecretsState::Ready);
        assert_eq!(
            check_for(DbKind::MySQL, "first", &found, &[], None),
            TlsSecretsState::Ready
        );
        match check_for(DbKind::MySQL, "second", &found, &[], None) {
            TlsSecretsState::Invalid { problems, .. } => {
                assert!(
                    problems[0].contains("belongs to MySQL first"),
                    "{problems:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_proxysql_mounts_its_backends_secrets_as_the_backends() {
        let mut client = secret(
            "be-client-cert",
            TLS_SECRET_TYPE,
            &[CA_KEY, CERT_KEY, KEY_KEY],
        );
        client.metadata.labels = Some(labels::for_database(DbKind::MySQL, "be"));
        let mut bundle = secret("be-ca-bundle", "Opaque", &[CA_KEY]);
        bundle.metadata.labels = client.metadata.labels.clone();
        let found = [
            ("be-ca-bundle".to_string(), Some(bundle)),
            ("be-client-cert".to_string(), Some(client)),
        ];
        let backend = BackendTls {
            ca_bundle: "be-ca-bundle".into(),
            client_secret: "be-client-cert".into(),
        };
        assert_eq!(
            check_for(DbKind::ProxySQL, "proxy", &found, &[], Some(&backend)),
            TlsSecretsState::Ready
        );
        // Not named as its backend's: another database's Secrets are refused.
        assert!(matches!(
            check_for(DbKind::ProxySQL, "proxy", &found, &[], None),
            TlsSecretsState::Invalid { .. }
        ));
    }

    #[test]
    fn the_ca_bundle_needs_only_its_ca_and_tls_secrets_still_need_all_three() {
        let mut bundle = secret("db-ca-bundle", "Opaque", &["ca.crt"]);
        let server = secret("db-server-cert", TLS_SECRET_TYPE, &["tls.crt", "tls.key"]);
        let found = vec![
            ("db-ca-bundle".to_string(), Some(bundle.clone())),
            ("db-server-cert".to_string(), Some(server)),
        ];
        let TlsSecretsState::Invalid { problems, .. } =
            check_for(DbKind::MySQL, "db", &found, &[], None)
        else {
            panic!("the server Secret lacks ca.crt");
        };
        assert_eq!(problems, ["Secret db-server-cert: missing key(s) ca.crt"]);
        // From an ACME issuer no Secret has ca.crt; the key pair is still required.
        let from_acme = ["db-server-cert".to_string()];
        assert_eq!(
            check_for(DbKind::ProxySQL, "db", &found, &from_acme, None),
            TlsSecretsState::Ready
        );
        let no_key = secret("db-server-cert", TLS_SECRET_TYPE, &["tls.crt"]);
        let found = [("db-server-cert".to_string(), Some(no_key))];
        let TlsSecretsState::Invalid { problems, .. } =
            check_for(DbKind::ProxySQL, "db", &found, &from_acme, None)
        else {
            panic!("the key is missing");
        };
        assert_eq!(problems, ["Secret db-server-cert: missing key(s) tls.key"]);
        bundle.data = Some(BTreeMap::new());
        assert!(bundle_problem(&bundle).unwrap().contains("no ca.crt"));
    }
}
