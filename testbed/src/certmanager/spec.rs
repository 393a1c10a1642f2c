//! A Certificate's spec with cert-manager's defaults applied, and the comparison of that spec with
//! an issued certificate (the stand-in's "request changed" check; see `certificates.rs`).
use std::collections::BTreeSet;
use std::time::Duration;

use dbtls_contract::certmanager::{CertificateSpec, usages};
use dbtls_contract::duration::parse_go_duration;

use super::inspect::CertFacts;

/// cert-manager's default `duration` (90 days).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(90 * 24 * 3600);

/// The certificate's lifetime.
pub fn duration(spec: &CertificateSpec) -> Duration {
    spec.duration
        .as_deref()
        .and_then(|d| parse_go_duration(d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_DURATION)
}

/// `renewBefore`, when set and shorter than the lifetime.
pub fn renew_before(spec: &CertificateSpec, lifetime: Duration) -> Duration {
    spec.renew_before
        .as_deref()
        .and_then(|d| parse_go_duration(d).ok())
        .filter(|d| !d.is_zero() && *d < lifetime)
        .unwrap_or(lifetime / 3)
}

/// Usage names after cert-manager's aliases (`signing`, `s/mime`) and defaults, plus
/// `cert sign` for CAs.
pub fn effective_usages(spec: &CertificateSpec) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = match spec.usages.as_ref().filter(|u| !u.is_empty()) {
        Some(list) => list
            .iter()
            .map(|u| match u.as_str() {
                "signing" => usages::DIGITAL_SIGNATURE.to_string(),
                "s/mime" => "email protection".to_string(),
                other => other.to_string(),
            })
            .collect(),
        None => [usages::DIGITAL_SIGNATURE, usages::KEY_ENCIPHERMENT]
            .into_iter()
            .map(str::to_string)
            .collect(),
    };
    if spec.is_ca == Some(true) {
        out.insert(usages::CERT_SIGN.into());
    }
    out
}

/// The first value of a subject list: the stand-in encodes one value per attribute type
/// (an rcgen limitation), and compares with what it can encode.
pub fn first(list: &Option<Vec<String>>) -> Option<&str> {
    list.as_ref().and_then(|l| l.first()).map(String::as_str)
}

fn same_set(a: &[String], b: Option<&Vec<String>>) -> bool {
    let a: BTreeSet<&str> = a.iter().map(String::as_str).collect();
    let b: BTreeSet<&str> = b.into_iter().flatten().map(String::as_str).collect();
    a == b
}

fn same_first(cert: &[String], spec: &Option<Vec<String>>) -> bool {
    cert.first().map(String::as_str) == first(spec)
}

/// The spec fields an issued certificate no longer matches, as cert-manager names them in the
/// `RequestChanged` message; empty when up to date.
pub fn changed_fields(spec: &CertificateSpec, cert: &CertFacts) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if cert.common_name != spec.common_name.clone().unwrap_or_default() {
        changed.push("spec.commonName");
    }
    if !same_set(&cert.dns_names, spec.dns_names.as_ref()) {
        changed.push("spec.dnsNames");
    }
    let spec_ips: Vec<String> = spec
        .ip_addresses
        .iter()
        .flatten()
        .map(|ip| {
            ip.parse::<std::net::IpAddr>()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| ip.clone())
        })
        .collect();
    if !same_set(&cert.ip_addresses, Some(&spec_ips)) {
        changed.push("spec.ipAddresses");
    }
    if !same_set(&cert.uris, spec.uris.as_ref()) {
        changed.push("spec.uris");
    }
    if !same_set(&cert.email_addresses, spec.email_addresses.as_ref()) {
        changed.push("spec.emailAddresses");
    }
    let subject = spec.subject.clone().unwrap_or_default();
    let subject_same = same_first(&cert.organizations, &subject.organizations)
        && same_first(&cert.organizational_units, &subject.organizational_units)
        && same_first(&cert.countries, &subject.countries)
        && same_first(&cert.provinces, &subject.provinces)
        && same_first(&cert.localities, &subject.localities)
        && same_first(&cert.street_addresses, &subject.street_addresses)
        && same_first(&cert.postal_codes, &subject.postal_codes)
        && cert.serial_number == subject.serial_number.unwrap_or_default();
    if !subject_same {
        changed.push("spec.subject");
    }
    if cert.is_ca != (spec.is_ca == Some(true)) {
        changed.push("spec.isCA");
    }
    if cert.usages != effective_usages(spec) {
        changed.push("spec.usages");
    }
    let lifetime = (cert.not_after - cert.not_before).num_seconds();
    if u64::try_from(lifetime).ok() != Some(duration(spec).as_secs()) {
        changed.push("spec.duration");
    }
    changed
}
