//! Request bodies in Kubernetes' protobuf encoding, which kubectl's typed commands send
//! (`kubectl create namespace|secret|configmap|serviceaccount`): the `k8s\0` envelope around a
//! `runtime.Unknown`, whose `raw` bytes are the object. Decoded with kube-rs's `k8s-pb` types
//! (prost) and turned into the JSON the rest of the server stores, for the built-in kinds users
//! create by hand; anything else is answered 415 as before.
use std::collections::BTreeMap;

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::apiserver::status::ApiError;

/// kube's protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The four bytes before every protobuf-encoded object.
const MAGIC: &[u8] = b"k8s\0";
/// What this server decodes, as `(apiVersion, kind)`.
pub const DECODED_KINDS: [(&str, &str); 4] = [
    ("v1", "Namespace"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
];

/// Whether `content_type` is kube's protobuf (parameters such as `;charset` aside).
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim() == MEDIA_TYPE)
}

/// The JSON object a protobuf request body carries.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| {
        ApiError::bad_request("the protobuf body does not start with the k8s\\0 magic")
    })?;
    let unknown = Unknown::decode(envelope).map_err(bad_body)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let raw = raw.as_slice();
    let mut object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => namespace(core::Namespace::decode(raw).map_err(bad_body)?),
        ("v1", "Secret") => secret(core::Secret::decode(raw).map_err(bad_body)?),
        ("v1", "ConfigMap") => config_map(core::ConfigMap::decode(raw).map_err(bad_body)?),
        ("v1", "ServiceAccount") => {
            service_account(core::ServiceAccount::decode(raw).map_err(bad_body)?)
        }
        _ => {
            let served: Vec<String> = DECODED_KINDS
                .iter()
                .map(|(v, k)| format!("{v} {k}"))
                .collect();
            return Err(ApiError::plain(
                415,
                "UnsupportedMediaType",
                format!(
                    "the testbed decodes {MEDIA_TYPE} bodies for {} only, not {api_version} {kind}: send JSON or YAML",
                    served.join(", ")
                ),
            ));
        }
    };
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Ok(Value::Object(object))
}

fn bad_body(error: prost::DecodeError) -> ApiError {
    ApiError::bad_request(format!(
        "couldn't decode the protobuf request body: {error}"
    ))
}

/// Inserts `value` under `key` unless it is empty, as kube's JSON encoding omits empty fields.
fn put(object: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    if !empty {
        object.insert(key.into(), value);
    }
}

fn strings(map: &BTreeMap<String, String>) -> Value {
    json!(map)
}

fn bytes(map: &BTreeMap<String, Vec<u8>>) -> Value {
    use base64::Engine as _;
    let encoded: BTreeMap<&String, String> = map
        .iter()
        .map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.encode(v)))
        .collect();
    json!(encoded)
}

fn metadata(meta: Option<meta::ObjectMeta>) -> Map<String, Value> {
    let meta = meta.unwrap_or_default();
    let mut out = Map::new();
    put(&mut out, "name", json!(meta.name));
    put(&mut out, "generateName", json!(meta.generate_name));
    put(&mut out, "namespace", json!(meta.namespace));
    put(&mut out, "uid", json!(meta.uid));
    put(&mut out, "resourceVersion", json!(meta.resource_version));
    put(&mut out, "labels", strings(&meta.labels));
    put(&mut out, "annotations", strings(&meta.annotations));
    put(&mut out, "finalizers", json!(meta.finalizers));
    let owners: Vec<Value> = meta
        .owner_references
        .into_iter()
        .map(|o| {
            let mut owner = Map::new();
            put(&mut owner, "apiVersion", json!(o.api_version));
            put(&mut owner, "kind", json!(o.kind));
            put(&mut owner, "name", json!(o.name));
            put(&mut owner, "uid", json!(o.uid));
            put(&mut owner, "controller", json!(o.controller));
            put(
                &mut owner,
                "blockOwnerDeletion",
                json!(o.block_owner_deletion),
            );
            Value::Object(owner)
        })
        .collect();
    put(&mut out, "ownerReferences", json!(owners));
    out
}

fn with_metadata(meta: Option<meta::ObjectMeta>) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("metadata".into(), Value::Object(metadata(meta)));
    object
}

fn namespace(ns: core::Namespace) -> Map<String, Value> {
    let mut object = with_metadata(ns.metadata);
    let finalizers = ns.spec.map(|s| s.finalizers).unwrap_or_default();
    if !finalizers.is_empty() {
        object.insert("spec".into(), json!({"finalizers": finalizers}));
    }
    object
}

fn secret(secret: core::Secret) -> Map<String, Value> {
    let mut object = with_metadata(secret.metadata);
    put(&mut object, "type", json!(secret.r#type));
    put(&mut object, "data", bytes(&secret.data));
    put(&mut object, "stringData", strings(&secret.string_data));
    put(&mut object, "immutable", json!(secret.immutable));
    object
}

fn config_map(cm: core::ConfigMap) -> Map<String, Value> {
    let mut object = with_metadata(cm.metadata);
    put(&mut object, "data", strings(&cm.data));
    put(&mut object, "binaryData", bytes(&cm.binary_data));
    put(&mut object, "immutable", json!(cm.immutable));
    object
}

fn service_account(sa: core::ServiceAccount) -> Map<String, Value> {
    let mut object = with_metadata(sa.metadata);
    let pull: Vec<Value> = sa
        .image_pull_secrets
        .into_iter()
        .map(|s| json!({"name": s.name}))
        .collect();
    put(&mut object, "imagePullSecrets", json!(pull));
    let secrets: Vec<Value> = sa
        .secrets
        .into_iter()
        .map(|s| json!({"name": s.name, "namespace": s.namespace}))
        .collect();
    put(&mut object, "secrets", json!(secrets));
    put(
        &mut object,
        "automountServiceAccountToken",
        json!(sa.automount_service_account_token),
    );
    object
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
    }

    fn meta(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("demo".into()),
            labels: [("app".to_string(), "db".to_string())].into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_tls_secret_as_kubectl_create_secret_tls_sends_it() {
        let secret = core::Secret {
            metadata: meta("ca"),
            r#type: Some("kubernetes.io/tls".into()),
            data: [
                ("tls.crt".to_string(), b"CERT".to_vec()),
                ("tls.key".to_string(), b"KEY".to_vec()),
            ]
            .into(),
            ..Default::default()
        };
        let decoded = decode(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
        assert_eq!(
            decoded,
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "ca", "namespace": "demo", "labels": {"app": "db"}},
                   "type": "kubernetes.io/tls",
                   "data": {"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"}})
        );
    }

    #[test]
    fn namespaces_config_maps_and_service_accounts() {
        let ns = core::Namespace {
            metadata: meta("demo"),
            ..Default::default()
        };
        let decoded = decode(&envelope("v1", "Namespace", ns.encode_to_vec())).unwrap();
        assert_eq!(decoded["kind"], "Namespace");
        assert_eq!(decoded["metadata"]["name"], "demo");
        assert!(decoded.get("spec").is_none());
        let cm = core::ConfigMap {
            metadata: meta("cm"),
            data: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        let decoded = decode(&envelope("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
        assert_eq!(decoded["data"], json!({"k": "v"}));
        let sa = core::ServiceAccount {
            metadata: meta("sa"),
            automount_service_account_token: Some(false),
            ..Default::default()
        };
        let decoded = decode(&envelope("v1", "ServiceAccount", sa.encode_to_vec())).unwrap();
        assert_eq!(decoded["automountServiceAccountToken"], false);
    }

    #[test]
    fn other_kinds_and_broken_bodies_are_refused_with_a_reason() {
        let error = decode(&envelope("apps/v1", "Deployment", Vec::new())).unwrap_err();
        assert_eq!(error.code, 415);
        assert!(
            error.message.contains("apps/v1 Deployment"),
            "{}",
            error.message
        );
        assert_eq!(decode(b"{}").unwrap_err().code, 400);
        assert_eq!(decode(b"k8s\0\xff\xff").unwrap_err().code, 400);
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(!is_protobuf("application/json"));
    }
}
