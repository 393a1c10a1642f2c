//! cert-manager's admission webhook rules for Certificates (reference §1, §1.1). A CRD-only API
//! server accepts what the webhook would reject, so the stand-in applies them itself.
use std::time::Duration;

use dbtls_contract::certmanager::{CLUSTER_ISSUER_KIND, CertificateSpec, GROUP, ISSUER_KIND};
use dbtls_contract::duration::parse_go_duration;

use super::keys::{KeyEncoding, KeySpec};

const KNOWN_USAGES: [&str; 23] = [
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp",
    "microsoft sgc",
    "netscape sgc",
];

fn dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The webhook's field errors (`field: message`), empty when the spec is admissible.
pub fn validate(spec: &CertificateSpec) -> Vec<String> {
    let mut errors = Vec::new();
    if !dns1123_subdomain(&spec.secret_name) {
        errors.push(format!(
            "spec.secretName: Invalid value: {:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            spec.secret_name
        ));
    }
    let cn = spec.common_name.as_deref().unwrap_or("");
    if cn.len() > 64 {
        errors.push(format!(
            "spec.commonName: Too long: may not be more than 64 bytes (got {})",
            cn.len()
        ));
    }
    let non_empty = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| !l.is_empty());
    if cn.is_empty()
        && !non_empty(&spec.dns_names)
        && !non_empty(&spec.ip_addresses)
        && !non_empty(&spec.uris)
        && !non_empty(&spec.email_addresses)
    {
        errors.push(
            "spec: Invalid value: \"\": at least one of commonName (from the commonName field or from a literalSubject), dnsNames, uriSANs, ipAddresses, emailSANs or otherNames must be set".into(),
        );
    }
    for ip in spec.ip_addresses.iter().flatten() {
        if ip.parse::<std::net::IpAddr>().is_err() {
            errors.push(format!(
                "spec.ipAddresses: Invalid value: {ip:?}: invalid IP address"
            ));
        }
    }
    for email in spec.email_addresses.iter().flatten() {
        let ok = email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
            && !email.contains(['<', '>', ' ']);
        if !ok {
            errors.push(format!(
                "spec.emailAddresses: Invalid value: {email:?}: invalid email address"
            ));
        }
    }
    let duration = match spec.duration.as_deref().map(parse_go_duration) {
        None => None,
        Some(Ok(d)) => {
            if d < Duration::from_secs(3600) {
                errors.push(format!(
                    "spec.duration: Invalid value: {:?}: certificate duration must be greater than 1h0m0s",
                    spec.duration.clone().unwrap_or_default()
                ));
            }
            Some(d)
        }
        Some(Err(e)) => {
            errors.push(format!("spec.duration: Invalid value: {e}"));
            None
        }
    };
    match spec.renew_before.as_deref().map(parse_go_duration) {
        None => {}
        Some(Ok(rb)) => {
            if rb < Duration::from_secs(300) {
                errors.push(format!(
                    "spec.renewBefore: Invalid value: {:?}: certificate renewBefore must be greater than 5m0s",
                    spec.renew_before.clone().unwrap_or_default()
                ));
            }
            let lifetime = duration.unwrap_or(super::spec::DEFAULT_DURATION);
            if rb >= lifetime {
                errors.push(format!(
                    "spec.renewBefore: Invalid value: {:?}: certificate duration {:?} must be greater than renewBefore {:?}",
                    spec.renew_before.clone().unwrap_or_default(),
                    spec.duration.clone().unwrap_or_else(|| "2160h0m0s".into()),
                    spec.renew_before.clone().unwrap_or_default()
                ));
            }
        }
        Some(Err(e)) => errors.push(format!("spec.renewBefore: Invalid value: {e}")),
    }
    let group = spec.issuer_ref.group.as_deref().unwrap_or("");
    let kind = spec.issuer_ref.kind.as_deref().unwrap_or("");
    if (group.is_empty() || group == GROUP)
        && !(kind.is_empty() || kind == ISSUER_KIND || kind == CLUSTER_ISSUER_KIND)
    {
        errors.push(format!(
            "spec.issuerRef.kind: Invalid value: {kind:?}: must be one of Issuer or ClusterIssuer"
        ));
    }
    if spec.issuer_ref.name.is_empty() {
        errors.push("spec.issuerRef.name: Required value: must be specified".into());
    }
    for usage in spec.usages.iter().flatten() {
        if !KNOWN_USAGES.contains(&usage.as_str()) {
            errors.push(format!("spec.usages: Unsupported value: {usage:?}"));
        }
    }
    if let Some(annotations) = spec
        .secret_template
        .as_ref()
        .and_then(|t| t.annotations.as_ref())
    {
        for key in annotations.keys() {
            if key.starts_with("cert-manager.io/")
                && key != "cert-manager.io/allow-direct-injection"
            {
                errors.push(format!(
                    "spec.secretTemplate.annotations: Invalid value: {key:?}: cert-manager.io/* annotations are not allowed"
                ));
            }
        }
    }
    if let Err(e) = KeySpec::from_spec(spec.private_key.as_ref()) {
        errors.push(e);
    }
    if let Err(e) = KeyEncoding::from_spec(spec.private_key.as_ref()) {
        errors.push(e);
    }
    if let Some(policy) = spec
        .private_key
        .as_ref()
        .and_then(|p| p.rotation_policy.as_deref())
        && !matches!(policy, "" | "Always" | "Never")
    {
        errors.push(format!(
            "spec.privateKey.rotationPolicy: Unsupported value: {policy:?}: supported values: \"Never\", \"Always\""
        ));
    }
    errors
}
