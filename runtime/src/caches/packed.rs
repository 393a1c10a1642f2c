//! A compact cache's JSON with its most frequent fragments replaced by one byte each. Every
//! cached object repeats the same field names and label keys (`"ownerReferences":[{`,
//! `app.kubernetes.io/`, `kubedb.com` …): about a third of its bytes. serde_json never writes
//! the bytes 0x01–0x1F raw (it escapes them inside strings, and compact output has no
//! whitespace), so those 31 bytes are free to stand for the fragments, and unpacking is one
//! pass.

/// The fragments, by the byte (index + 1) that stands for each. Longest first where one is the
/// start of another, so packing takes the longer.
const FRAGMENTS: [&str; 31] = [
    "\"blockOwnerDeletion\":true,\"controller\":true,",
    "\"app.kubernetes.io/component\":\"database\"",
    "\"app.kubernetes.io/managed-by\":\"kubedb.com\"",
    "\"app.kubernetes.io/instance\":\"",
    "\"app.kubernetes.io/name\":\"",
    "\"ownerReferences\":[{\"apiVersion\":\"",
    "\"creationTimestamp\":\"",
    "\"lastTransitionTime\":\"",
    "\"observedGeneration\":",
    "\"resourceVersion\":\"",
    "{\"apiVersion\":\"",
    "\"apiVersion\":\"",
    "\"metadata\":{",
    "\"namespace\":\"",
    "\"annotations\":{",
    "\"labels\":{",
    "\"conditions\":[{",
    "\"status\":\"True\"",
    "\"status\":",
    "\"message\":\"",
    "\"reason\":\"",
    "\"kind\":\"",
    "\"name\":\"",
    "\"type\":\"",
    "\"uid\":\"",
    "\"spec\":{",
    "\"data\":{",
    "cert-manager.io/",
    ".kubedb.com",
    "kubedb.com/",
    "\"},",
];

/// `json` with each fragment replaced by its byte.
pub(super) fn pack(json: &[u8]) -> Vec<u8> {
    let mut packed = Vec::with_capacity(json.len());
    let mut rest = json;
    while let Some(&first) = rest.first() {
        let found = FRAGMENTS
            .iter()
            .enumerate()
            .find(|(_, f)| f.as_bytes()[0] == first && rest.starts_with(f.as_bytes()));
        match found {
            Some((i, fragment)) => {
                // At most 31 fragments: the index fits a byte below 0x20.
                packed.push(i as u8 + 1);
                rest = &rest[fragment.len()..];
            }
            None => {
                packed.push(first);
                rest = &rest[1..];
            }
        }
    }
    packed
}

/// The JSON `packed` was made from.
pub(super) fn unpack(packed: &[u8]) -> Vec<u8> {
    let mut json = Vec::with_capacity(packed.len() * 2);
    for &byte in packed {
        match FRAGMENTS.get(usize::from(byte).wrapping_sub(1)) {
            Some(fragment) if byte < 0x20 => json.extend_from_slice(fragment.as_bytes()),
            _ => json.push(byte),
        }
    }
    json
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

    fn secret(name: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("bench-1".into()),
                uid: Some("6a0c6f3e-58a1-4a51-9d55-0a1b2c3d4e5f".into()),
                resource_version: Some("123456".into()),
                creation_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                labels: Some(dbtls_contract::labels::for_database(
                    dbtls_contract::DbKind::MySQL,
                    "db-0123",
                )),
                annotations: Some(
                    [("cert-manager.io/certificate-name".into(), name.into())].into(),
                ),
                owner_references: Some(vec![OwnerReference {
                    api_version: "kubedb.com/v1".into(),
                    kind: "MySQL".into(),
                    name: "db-0123".into(),
                    uid: "0f0e0d0c-58a1-4a51-9d55-0a1b2c3d4e5f".into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            data: Some([("tls.crt".into(), k8s_openapi::ByteString(vec![0]))].into()),
            type_: Some("kubernetes.io/tls".into()),
            ..Secret::default()
        }
    }

    #[test]
    fn fragments_are_free_bytes_and_none_is_lost() {
        assert!(
            FRAGMENTS.len() < 0x20,
            "each fragment needs a byte below 0x20"
        );
        for (i, a) in FRAGMENTS.iter().enumerate() {
            // A fragment that starts with another must come first, or it is never used.
            for b in &FRAGMENTS[..i] {
                assert!(!a.starts_with(b), "{a:?} is shadowed by {b:?}");
            }
        }
    }

    #[test]
    fn a_cached_object_packs_to_two_thirds_or_less_and_unpacks_to_the_same_json() {
        let json = serde_json::to_vec(&secret("db-0123-server-cert")).unwrap();
        let packed = pack(&json);
        assert!(packed.iter().any(|b| *b < 0x20), "fragments were replaced");
        assert!(
            packed.len() * 3 <= json.len() * 2,
            "{} bytes packed from {}",
            packed.len(),
            json.len()
        );
        assert_eq!(unpack(&packed), json);
        let back: Secret = serde_json::from_slice(&unpack(&packed)).unwrap();
        assert_eq!(back, secret("db-0123-server-cert"));
    }

    #[test]
    fn strings_holding_control_characters_survive() {
        let mut odd = secret("x");
        odd.metadata.annotations = Some(
            [(
                "note".into(),
                "\u{1}\u{1f}\"name\":\"\n kubedb.com/ \u{7f}".into(),
            )]
            .into(),
        );
        let json = serde_json::to_vec(&odd).unwrap();
        let back: Secret = serde_json::from_slice(&unpack(&pack(&json))).unwrap();
        assert_eq!(back, odd);
    }
}
