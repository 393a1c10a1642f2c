//! TLS facts both operators derive from a database: which TLS Secrets it needs and the identity
//! its server certificate carries.

use crate::api::TlsView;
use crate::kinds::DbKind;
use crate::names;

/// cert-manager's webhook limit on `commonName`.
pub const MAX_COMMON_NAME: usize = 64;
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// The TLS Secret for `alias`: the user's `secretName` when given, else `<db>-<alias>-cert`.
pub fn secret_name(db: &str, tls: &TlsView<'_>, alias: &str) -> String {
    tls.certificate(alias)
        .and_then(|c| c.secret_name.clone())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| names::default_cert_secret(db, alias))
}

/// Every `(alias, secret name)` a database of `kind` can have, in the kind's alias order.
pub fn secrets(kind: DbKind, db: &str, tls: &TlsView<'_>) -> Vec<(&'static str, String)> {
    tls.aliases(kind)
        .into_iter()
        .map(|alias| (alias, secret_name(db, tls, alias)))
        .collect()
}

/// What an issuer gives with each certificate, as far as the two operators care.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IssuerType {
    /// CA, SelfSigned, Vault, Venafi: the issuing CA comes along (`ca.crt`). Also what an
    /// issuer not seen yet is taken for.
    #[default]
    WithCa,
    /// ACME (a public CA such as Let's Encrypt): no `ca.crt`, and server certificates only.
    Acme,
}

impl IssuerType {
    /// The type of an issuer whose spec has (`true`) or lacks an `acme` section.
    pub fn of(acme: bool) -> Self {
        if acme { Self::Acme } else { Self::WithCa }
    }
}

/// Whether `alias` of a `kind` database is issued by an issuer of `issuer` type: KubeDB issues
/// ProxySQL only its server certificate from an ACME issuer (its `UsesAcmeIssuer` defaulting).
pub fn issued(kind: DbKind, alias: &str, issuer: IssuerType) -> bool {
    !(kind == DbKind::ProxySQL
        && alias != crate::kinds::alias::SERVER
        && issuer == IssuerType::Acme)
}

/// The `(alias, secret name)` pairs issued for the database, given each alias's issuer type.
pub fn issued_secrets(
    kind: DbKind,
    db: &str,
    tls: &TlsView<'_>,
    issuer_of: impl Fn(&str) -> IssuerType,
) -> Vec<(&'static str, String)> {
    secrets(kind, db, tls)
        .into_iter()
        .filter(|(alias, _)| issued(kind, alias, issuer_of(alias)))
        .collect()
}

/// `<db>.<ns>.svc`: the name of the primary Service that every server certificate carries,
/// for clients that reach a server by another address (Prometheus scrapes pod addresses).
pub fn service_dns_name(db: &str, namespace: &str) -> String {
    format!("{db}.{namespace}.svc")
}

/// The server certificate's DNS names for database `db` in `namespace`.
pub fn server_dns_names(db: &str, namespace: &str, cluster_domain: &str) -> Vec<String> {
    let pods = names::governing_service(db);
    vec![
        db.to_string(),
        format!("{db}.{namespace}"),
        service_dns_name(db, namespace),
        format!("{db}.{namespace}.svc.{cluster_domain}"),
        format!("*.{db}.{namespace}.svc"),
        format!("*.{pods}.{namespace}.svc"),
        format!("*.{pods}.{namespace}.svc.{cluster_domain}"),
        "localhost".to_string(),
    ]
}

/// The server certificate's IP addresses.
pub const SERVER_IP_ADDRESSES: &[&str] = &["127.0.0.1"];

/// The server certificate's CN as KubeDB sets it: the bare name for ProxySQL and Singlestore,
/// `<db>.<ns>.svc` for the others; none when it exceeds cert-manager's 64-character limit (the
/// SANs carry the identity).
pub fn server_common_name(kind: DbKind, db: &str, namespace: &str) -> Option<String> {
    let cn = match kind {
        DbKind::ProxySQL | DbKind::Singlestore => db.to_string(),
        _ => format!("{db}.{namespace}.svc"),
    };
    Some(cn).filter(|cn| cn.len() <= MAX_COMMON_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateSpec, TlsConfig};

    #[test]
    fn user_secret_names_override_the_default() {
        let config = TlsConfig {
            issuer_ref: None,
            certificates: vec![CertificateSpec {
                alias: "client".into(),
                secret_name: Some("my-client".into()),
                ..Default::default()
            }],
        };
        let view = config.view();
        assert_eq!(
            secrets(DbKind::MySQL, "db", &view),
            vec![
                ("server", "db-server-cert".to_string()),
                ("client", "my-client".to_string()),
                ("metrics-exporter", "db-metrics-exporter-cert".to_string())
            ]
        );
        assert_eq!(secrets(DbKind::Singlestore, "db", &view).len(), 2);
    }

    #[test]
    fn acme_issuers_give_proxysql_its_server_certificate_only() {
        let config = TlsConfig::default();
        let view = config.view();
        let acme = |_: &str| IssuerType::Acme;
        let aliases = |kind, issuer_of: &dyn Fn(&str) -> IssuerType| -> Vec<&str> {
            issued_secrets(kind, "db", &view, issuer_of)
                .into_iter()
                .map(|(alias, _)| alias)
                .collect()
        };
        for (kind, issuer_of, want) in [
            (
                DbKind::ProxySQL,
                &acme as &dyn Fn(&str) -> IssuerType,
                vec!["server"],
            ),
            (
                DbKind::ProxySQL,
                &|_: &str| IssuerType::WithCa,
                vec!["server", "client", "metrics-exporter"],
            ),
            // Only the client's issuer is ACME: the server's still gives the rest.
            (
                DbKind::ProxySQL,
                &|a: &str| IssuerType::of(a == "client"),
                vec!["server", "metrics-exporter"],
            ),
            (
                DbKind::MySQL,
                &acme,
                vec!["server", "client", "metrics-exporter"],
            ),
        ] {
            assert_eq!(aliases(kind, issuer_of), want, "{kind}");
        }
    }

    #[test]
    fn long_names_get_no_common_name() {
        assert_eq!(
            server_common_name(DbKind::MySQL, "db", "demo").as_deref(),
            Some("db.demo.svc")
        );
        assert_eq!(
            server_common_name(DbKind::Singlestore, "db", "demo").as_deref(),
            Some("db")
        );
        assert_eq!(
            server_common_name(DbKind::ProxySQL, "db", "demo").as_deref(),
            Some("db")
        );
        let long = "a".repeat(60);
        assert_eq!(server_common_name(DbKind::MySQL, &long, "demo"), None);
    }

    #[test]
    fn server_names_cover_services_and_pods() {
        let names = server_dns_names("db", "demo", "cluster.local");
        assert!(names.contains(&"db.demo.svc.cluster.local".to_string()));
        assert!(names.contains(&"*.db-pods.demo.svc".to_string()));
        assert!(names.contains(&"*.db.demo.svc".to_string()));
        assert!(names.contains(&"localhost".to_string()));
    }
}
