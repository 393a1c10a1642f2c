//! The Secret as cert-manager writes it (reference §4): server-side apply with its own field
//! manager, `kubernetes.io/tls` on create, three data keys, annotations from the issued
//! certificate, the fao label and the secretTemplate metadata, no ownerReference.
use std::collections::{BTreeMap, BTreeSet};

use dbtls_contract::certmanager::{
    CA_CRT, Certificate, FAO_LABEL, TLS_CRT, TLS_KEY, TLS_SECRET_TYPE, annotations as ann,
};
use k8s_openapi::api::core::v1::Secret;

use super::inspect::CertFacts;

/// Go's `encoding/csv` single record (cert-manager's `JoinWithEscapeCSV`).
pub fn csv_join(values: &[String]) -> String {
    values
        .iter()
        .map(|v| {
            if v.contains([',', '"', '\r', '\n']) || v.starts_with(' ') {
                format!("\"{}\"", v.replace('"', "\"\""))
            } else {
                v.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The labels and annotations cert-manager puts on the Secret of `cert` issued as `facts`.
pub fn metadata(
    cert: &Certificate,
    facts: &CertFacts,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let template = cert.spec.secret_template.clone().unwrap_or_default();
    let mut labels = template.labels.unwrap_or_default();
    labels.insert(FAO_LABEL.into(), "true".into());
    let mut annotations = template.annotations.unwrap_or_default();
    let issuer = &cert.spec.issuer_ref;
    let name = cert.metadata.name.clone().unwrap_or_default();
    for (key, value) in [
        (ann::CERTIFICATE_NAME, name),
        (ann::ISSUER_NAME, issuer.name.clone()),
        (ann::ISSUER_KIND, issuer.kind.clone().unwrap_or_default()),
        (ann::ISSUER_GROUP, issuer.group.clone().unwrap_or_default()),
        (ann::COMMON_NAME, facts.common_name.clone()),
        (ann::ALT_NAMES, csv_join(&facts.dns_names)),
        (ann::IP_SANS, csv_join(&facts.ip_addresses)),
        (ann::URI_SANS, csv_join(&facts.uris)),
    ] {
        annotations.insert(key.into(), value);
    }
    for (key, values) in [
        (ann::EMAIL_SANS, &facts.email_addresses),
        (ann::SUBJECT_ORGANIZATIONS, &facts.organizations),
        (
            ann::SUBJECT_ORGANIZATIONAL_UNITS,
            &facts.organizational_units,
        ),
        (ann::SUBJECT_COUNTRIES, &facts.countries),
        (ann::SUBJECT_PROVINCES, &facts.provinces),
        (ann::SUBJECT_LOCALITIES, &facts.localities),
        (ann::SUBJECT_STREET_ADDRESSES, &facts.street_addresses),
        (ann::SUBJECT_POSTAL_CODES, &facts.postal_codes),
    ] {
        if !values.is_empty() {
            annotations.insert(key.into(), csv_join(values));
        }
    }
    if !facts.serial_number.is_empty() {
        annotations.insert(
            ann::SUBJECT_SERIAL_NUMBER.into(),
            facts.serial_number.clone(),
        );
    }
    (labels, annotations)
}

/// The apply body. `live_type` is the type of the existing Secret (kept), None on create.
pub fn apply_body(
    cert: &Certificate,
    facts: &CertFacts,
    live_type: Option<String>,
    tls_crt: &str,
    tls_key: &str,
    ca_crt: &str,
) -> serde_json::Value {
    let (labels, annotations) = metadata(cert, facts);
    // ByteString serialises as base64, as Secret data is sent.
    let b64 = |s: &str| {
        serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec()))
            .unwrap_or(serde_json::Value::Null)
    };
    let mut data = serde_json::json!({ TLS_CRT: b64(tls_crt), TLS_KEY: b64(tls_key) });
    // cert-manager writes `ca.crt` only when the issuer returned a CA (never for ACME).
    if !ca_crt.is_empty() {
        data[CA_CRT] = b64(ca_crt);
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": cert.spec.secret_name,
            "namespace": cert.metadata.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "type": live_type.unwrap_or_else(|| TLS_SECRET_TYPE.into()),
        "data": data,
    })
}

/// Label and annotation keys `manager` owns on `secret` (from managedFields).
fn owned_keys(secret: &Secret, manager: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut labels = BTreeSet::new();
    let mut annotations = BTreeSet::new();
    for entry in secret.metadata.managed_fields.iter().flatten() {
        if entry.manager.as_deref() != Some(manager) || entry.operation.as_deref() != Some("Apply")
        {
            continue;
        }
        let Some(fields) = entry.fields_v1.as_ref() else {
            continue;
        };
        let meta = fields.0.get("f:metadata");
        for (section, out) in [
            ("f:labels", &mut labels),
            ("f:annotations", &mut annotations),
        ] {
            if let Some(map) = meta
                .and_then(|m| m.get(section))
                .and_then(|v| v.as_object())
            {
                out.extend(
                    map.keys()
                        .filter_map(|k| k.strip_prefix("f:"))
                        .map(str::to_string),
                );
            }
        }
    }
    (labels, annotations)
}

/// Whether the Secret's metadata differs from what cert-manager would write now (a
/// secretTemplate change, a removed label): re-applied without re-issuing.
pub fn metadata_outdated(
    secret: &Secret,
    cert: &Certificate,
    facts: &CertFacts,
    manager: &str,
) -> bool {
    let (labels, annotations) = metadata(cert, facts);
    let (owned_labels, owned_annotations) = owned_keys(secret, manager);
    let live_labels = secret.metadata.labels.clone().unwrap_or_default();
    let live_annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let differs = |desired: &BTreeMap<String, String>,
                   live: &BTreeMap<String, String>,
                   owned: &BTreeSet<String>| {
        desired.iter().any(|(k, v)| live.get(k) != Some(v))
            || owned.iter().any(|k| !desired.contains_key(k))
    };
    differs(&labels, &live_labels, &owned_labels)
        || differs(&annotations, &live_annotations, &owned_annotations)
}
