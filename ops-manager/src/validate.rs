//! Checks of `spec.tls` the CRD cannot fully express (or that an older CRD let through): known
//! aliases, issuer references, cert-manager's webhook rules for durations and SANs. Pure.

use std::net::IpAddr;
use std::time::Duration;

use dbtls_contract::api::{CertificateSpec, IssuerRef, TlsView};
use dbtls_contract::certmanager;
use dbtls_contract::conditions::{ConditionType, Reason};
use dbtls_contract::duration::parse_go_duration;
use dbtls_contract::{DbKind, tls};

/// cert-manager's webhook minimum for `duration`.
const MIN_DURATION: Duration = Duration::from_secs(3600);
/// cert-manager's webhook minimum for `renewBefore`.
const MIN_RENEW_BEFORE: Duration = Duration::from_secs(300);
/// cert-manager's default `duration` (90 days), the bound for `renewBefore` when none is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(2160 * 3600);

/// One problem in `spec.tls`, worded for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error(
        "spec.tls.certificates[{index}].alias {alias:?} is not a certificate of {kind} (known: {known}); remove the entry or fix the alias"
    )]
    UnknownAlias {
        index: usize,
        alias: String,
        kind: DbKind,
        known: String,
    },
    #[error("{field}: {why}")]
    InvalidIssuerRef { field: String, why: String },
    #[error("certificate {alias:?}: {field}: {why}")]
    InvalidCertificateSpec {
        alias: String,
        field: String,
        why: String,
    },
}

impl ValidationError {
    /// The condition type and reason this error is reported under.
    pub fn condition(&self) -> (ConditionType, Reason) {
        match self {
            Self::UnknownAlias { .. } => (ConditionType::CertificatesReady, Reason::UnknownAlias),
            Self::InvalidIssuerRef { .. } => (ConditionType::IssuerReady, Reason::InvalidIssuerRef),
            Self::InvalidCertificateSpec { .. } => (
                ConditionType::CertificatesReady,
                Reason::InvalidCertificateSpec,
            ),
        }
    }
}

/// Every problem in `spec.tls` of a database of `kind` named `db`; empty when it is valid.
pub fn validate(kind: DbKind, db: &str, tls_view: &TlsView<'_>) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    for (index, entry) in tls_view.certificates.iter().enumerate() {
        if !tls_view.knows_alias(kind, &entry.alias) {
            errors.push(ValidationError::UnknownAlias {
                index,
                alias: entry.alias.clone(),
                kind,
                known: tls_view.aliases(kind).join(", "),
            });
            continue;
        }
        if let Some(issuer) = &entry.issuer_ref {
            let field = format!("spec.tls.certificates[{index}].issuerRef");
            errors.extend(check_issuer_ref(&field, issuer));
        }
        errors.extend(check_entry(entry));
    }
    if let Some(issuer) = tls_view.issuer_ref {
        errors.extend(check_issuer_ref("spec.tls.issuerRef", issuer));
    }
    for alias in tls_view.aliases(kind) {
        if tls_view.issuer_for(alias).is_none() {
            errors.push(ValidationError::InvalidIssuerRef {
                field: "spec.tls.issuerRef".into(),
                why: format!(
                    "no issuer for certificate {alias:?}: set spec.tls.issuerRef (or an issuerRef on its certificates entry)"
                ),
            });
        }
    }
    errors.extend(check_secret_names(kind, db, tls_view));
    errors
}

fn check_issuer_ref(field: &str, issuer: &IssuerRef) -> Option<ValidationError> {
    let why = if issuer.kind != certmanager::ISSUER_KIND
        && issuer.kind != certmanager::CLUSTER_ISSUER_KIND
    {
        format!("kind {:?} is not Issuer or ClusterIssuer", issuer.kind)
    } else if issuer
        .api_group
        .as_deref()
        .is_some_and(|g| !g.is_empty() && g != certmanager::GROUP)
    {
        format!(
            "apiGroup {:?} is not {}",
            issuer.api_group.as_deref().unwrap_or_default(),
            certmanager::GROUP
        )
    } else if !is_dns_subdomain(&issuer.name) {
        format!("name {:?} is not a valid object name", issuer.name)
    } else {
        return None;
    };
    Some(ValidationError::InvalidIssuerRef {
        field: field.to_string(),
        why,
    })
}

fn check_entry(entry: &CertificateSpec) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let mut invalid = |field: &str, why: String| {
        errors.push(ValidationError::InvalidCertificateSpec {
            alias: entry.alias.clone(),
            field: field.to_string(),
            why,
        });
    };
    if let Some(name) = entry.secret_name.as_deref().filter(|n| !n.is_empty())
        && !is_dns_subdomain(name)
    {
        invalid("secretName", format!("{name:?} is not a valid Secret name"));
    }
    let duration = match entry.duration.as_deref().map(parse_go_duration) {
        Some(Err(e)) => {
            invalid("duration", e.to_string());
            None
        }
        Some(Ok(d)) if d < MIN_DURATION => {
            invalid(
                "duration",
                format!(
                    "{:?} is shorter than 1h (cert-manager's minimum)",
                    entry.duration.as_deref().unwrap_or_default()
                ),
            );
            None
        }
        Some(Ok(d)) => Some(d),
        None => Some(DEFAULT_DURATION),
    };
    match entry
        .renew_before
        .as_deref()
        .map(|r| (r, parse_go_duration(r)))
    {
        Some((_, Err(e))) => invalid("renewBefore", e.to_string()),
        Some((raw, Ok(r))) if r < MIN_RENEW_BEFORE => invalid(
            "renewBefore",
            format!("{raw:?} is shorter than 5m (cert-manager's minimum)"),
        ),
        Some((raw, Ok(r))) if duration.is_some_and(|d| r >= d) => invalid(
            "renewBefore",
            format!("{raw:?} must be shorter than the certificate duration"),
        ),
        _ => {}
    }
    for name in &entry.dns_names {
        if !is_dns_name(name) {
            invalid("dnsNames", format!("{name:?} is not a valid DNS name"));
        }
    }
    for ip in &entry.ip_addresses {
        if ip.parse::<IpAddr>().is_err() {
            invalid("ipAddresses", format!("{ip:?} is not an IP address"));
        }
    }
    for uri in &entry.uris {
        if !is_uri(uri) {
            invalid("uris", format!("{uri:?} is not an absolute URI"));
        }
    }
    for email in &entry.email_addresses {
        if !is_email(email) {
            invalid(
                "emailAddresses",
                format!("{email:?} is not an e-mail address"),
            );
        }
    }
    errors
}

/// Two aliases of one database must not share a Secret (one Certificate per Secret).
fn check_secret_names(kind: DbKind, db: &str, tls_view: &TlsView<'_>) -> Vec<ValidationError> {
    let secrets = tls::secrets(kind, db, tls_view);
    let mut errors = Vec::new();
    for (i, (alias, name)) in secrets.iter().enumerate() {
        if let Some((first, _)) = secrets[..i].iter().find(|(_, other)| other == name) {
            errors.push(ValidationError::InvalidCertificateSpec {
                alias: alias.to_string(),
                field: "secretName".into(),
                why: format!("{name:?} is already the Secret of certificate {first:?}; give each certificate its own Secret"),
            });
        }
    }
    errors
}

/// RFC 1123 subdomain (object names, Secret names).
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A DNS SAN: labels of letters, digits and hyphens, optionally a leading `*.` wildcard.
fn is_dns_name(name: &str) -> bool {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    !rest.is_empty()
        && rest.len() <= 253
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `scheme:rest` with an RFC 3986 scheme and no whitespace.
fn is_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !uri.chars().any(char::is_whitespace)
}

/// A bare addr-spec (`local@domain`), as cert-manager's webhook requires.
fn is_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local
            .chars()
            .any(|c| c.is_whitespace() || "<>()[],;:\"@".contains(c))
        && is_dns_name(domain)
        && !domain.starts_with("*.")
}

#[cfg(test)]
mod tests;
