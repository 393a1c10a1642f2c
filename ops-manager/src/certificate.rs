//! The Certificate the ops-manager wants for one alias of a database: a pure
//! function of the database, its `spec.tls` and the cluster domain.

use dbtls_contract::DbKind;
use dbtls_contract::api::{IssuerRef, TlsView, X509Subject as UserSubject};
use dbtls_contract::certmanager::{
    self, Certificate, CertificatePrivateKey, CertificateSpec, ObjectReference, SecretTemplate,
    X509Subject, usages,
};
use dbtls_contract::kinds::alias;
use dbtls_contract::labels;
use dbtls_contract::tls;
use kube::api::ObjectMeta;

use crate::db::DbRef;

/// The Certificate (named after its Secret) for `alias`, issued by `issuer`.
pub fn build(
    db: &DbRef,
    tls_view: &TlsView<'_>,
    alias_name: &str,
    issuer: &IssuerRef,
    cluster_domain: &str,
) -> Certificate {
    let name = tls::secret_name(&db.name, tls_view, alias_name);
    let user = tls_view.certificate(alias_name);
    let profile = db.kind.profile();
    let db_labels = labels::for_database(db.kind, &db.name);

    let (common_name, mut dns_names, mut ip_addresses, key_usages) = match alias_name {
        // The Availability Group mirroring endpoint (port 5022) of every replica, which both
        // listens and connects: the server's names, both usages (its subject says `endpoint`).
        alias::SERVER | alias::ENDPOINT => (
            tls::server_common_name(db.kind, &db.name, &db.namespace),
            tls::server_dns_names(&db.name, &db.namespace, cluster_domain),
            tls::SERVER_IP_ADDRESSES
                .iter()
                .map(|ip| ip.to_string())
                .collect(),
            vec![
                usages::DIGITAL_SIGNATURE,
                usages::KEY_ENCIPHERMENT,
                usages::SERVER_AUTH,
                usages::CLIENT_AUTH,
            ],
        ),
        alias::METRICS_EXPORTER => (
            Some(profile.exporter_user.to_string()),
            Vec::new(),
            Vec::new(),
            client_usages(),
        ),
        // client, and any alias a kind may add later: a client identity.
        _ => (
            Some(profile.client_common_name.to_string()),
            Vec::new(),
            Vec::new(),
            client_usages(),
        ),
    };
    if let Some(user) = user {
        extend_unique(&mut dns_names, &user.dns_names);
        extend_unique(&mut ip_addresses, &user.ip_addresses);
    }

    let subject = subject_for(db.kind, alias_name, user.and_then(|u| u.subject.as_ref()));
    Certificate {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(db.namespace.clone()),
            labels: Some(db_labels.clone()),
            owner_references: Some(vec![db.owner_reference()]),
            ..Default::default()
        },
        spec: CertificateSpec {
            secret_name: name,
            issuer_ref: issuer_reference(issuer),
            secret_template: Some(SecretTemplate {
                labels: Some(db_labels),
                annotations: None,
            }),
            common_name,
            subject,
            dns_names: non_empty(dns_names),
            ip_addresses: non_empty(ip_addresses),
            uris: user.and_then(|u| non_empty(u.uris.clone())),
            email_addresses: user.and_then(|u| non_empty(u.email_addresses.clone())),
            duration: user.and_then(|u| u.duration.clone()),
            renew_before: user.and_then(|u| u.renew_before.clone()),
            usages: Some(key_usages.into_iter().map(String::from).collect()),
            is_ca: None,
            private_key: user
                .and_then(|u| u.private_key.as_ref())
                .and_then(|k| k.encoding)
                .map(|encoding| CertificatePrivateKey {
                    encoding: Some(encoding_name(encoding).to_string()),
                    ..Default::default()
                }),
            revision_history_limit: None,
        },
        status: None,
    }
}

/// cert-manager's `issuerRef` for a KubeDB `issuerRef` (group defaulted to cert-manager.io).
pub fn issuer_reference(issuer: &IssuerRef) -> ObjectReference {
    ObjectReference {
        name: issuer.name.clone(),
        kind: Some(issuer.kind.clone()),
        group: Some(
            issuer
                .api_group
                .clone()
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| certmanager::GROUP.to_string()),
        ),
    }
}

fn client_usages() -> Vec<&'static str> {
    vec![
        usages::DIGITAL_SIGNATURE,
        usages::KEY_ENCIPHERMENT,
        usages::CLIENT_AUTH,
    ]
}

fn encoding_name(encoding: dbtls_contract::api::PrivateKeyEncoding) -> &'static str {
    match encoding {
        dbtls_contract::api::PrivateKeyEncoding::Pkcs1 => "PKCS1",
        dbtls_contract::api::PrivateKeyEncoding::Pkcs8 => "PKCS8",
    }
}

/// The MSSQL organisation KubeDB's webhook defaults into each subject (docs/certificates.md).
const MSSQL_DEFAULT_ORGANIZATION: &str = "kubedb";

/// The user's subject, with MSSQLServer's default O=kubedb, OU=<alias> where the user gave none.
fn subject_for(kind: DbKind, alias_name: &str, user: Option<&UserSubject>) -> Option<X509Subject> {
    let mut subject = user.map(convert_subject).unwrap_or_default();
    if kind == DbKind::MSSQLServer {
        if subject.organizations.is_none() {
            subject.organizations = Some(vec![MSSQL_DEFAULT_ORGANIZATION.to_string()]);
        }
        if subject.organizational_units.is_none() {
            subject.organizational_units = Some(vec![alias_name.to_string()]);
        }
    }
    (subject != X509Subject::default()).then_some(subject)
}

fn convert_subject(user: &UserSubject) -> X509Subject {
    X509Subject {
        organizations: non_empty(user.organizations.clone()),
        countries: non_empty(user.countries.clone()),
        organizational_units: non_empty(user.organizational_units.clone()),
        localities: non_empty(user.localities.clone()),
        provinces: non_empty(user.provinces.clone()),
        street_addresses: non_empty(user.street_addresses.clone()),
        postal_codes: non_empty(user.postal_codes.clone()),
        serial_number: user.serial_number.clone().filter(|s| !s.is_empty()),
    }
}

/// Appends the user's values that are not there yet, keeping the defaults' order first.
fn extend_unique(into: &mut Vec<String>, extra: &[String]) {
    for value in extra {
        if !into.contains(value) {
            into.push(value.clone());
        }
    }
}

fn non_empty(values: Vec<String>) -> Option<Vec<String>> {
    (!values.is_empty()).then_some(values)
}

#[cfg(test)]
mod tests;
