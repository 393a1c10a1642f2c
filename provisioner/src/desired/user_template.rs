//! `spec.podTemplate` (KubeDB's `ofst.PodTemplateSpec`), read leniently: it is kept `Opaque` so
//! that any KubeDB manifest applies, and each part the provisioner understands is taken only if
//! it parses — one malformed field does not discard the rest.
use std::collections::BTreeMap;

use dbtls_contract::api::Opaque;
use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, PodDNSConfig, PodSecurityContext, ResourceRequirements,
    Toleration,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The parts of a user pod template the provisioner merges into the workload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserTemplate {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Image of the database container (overrides the catalogue).
    pub image: Option<String>,
    pub env: Vec<EnvVar>,
    pub args: Vec<String>,
    pub resources: Option<ResourceRequirements>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub tolerations: Option<Vec<Toleration>>,
    pub affinity: Option<Affinity>,
    pub service_account_name: Option<String>,
    pub security_context: Option<PodSecurityContext>,
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    pub dns_policy: Option<String>,
    pub dns_config: Option<PodDNSConfig>,
}

fn take<T: DeserializeOwned>(value: Option<&Value>) -> Option<T> {
    value.and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Reads `template` for the container named `container` (KubeDB matches containers by name).
pub fn parse(template: Option<&Opaque>, container: &str) -> UserTemplate {
    let Some(template) = template else {
        return UserTemplate::default();
    };
    let root = &template.0;
    let metadata = root.get("metadata");
    let spec = root.get("spec");
    let field = |name: &str| spec.and_then(|s| s.get(name));
    let db_container = field("containers")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
        });
    let in_container = |name: &str| db_container.and_then(|c| c.get(name));
    UserTemplate {
        labels: take(metadata.and_then(|m| m.get("labels"))).unwrap_or_default(),
        annotations: take(metadata.and_then(|m| m.get("annotations"))).unwrap_or_default(),
        image: take(in_container("image")),
        env: take(in_container("env")).unwrap_or_default(),
        args: take(in_container("args")).unwrap_or_default(),
        resources: take(in_container("resources")),
        node_selector: take(field("nodeSelector")),
        tolerations: take(field("tolerations")),
        affinity: take(field("affinity")),
        service_account_name: take(field("serviceAccountName")),
        security_context: take(field("securityContext")),
        image_pull_secrets: take(field("imagePullSecrets")),
        dns_policy: take(field("dnsPolicy")),
        dns_config: take(field("dnsConfig")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn opaque(yaml: &str) -> Opaque {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn takes_the_named_container_and_pod_fields() {
        let t = opaque(
            r#"
metadata:
  labels: {team: a}
  annotations: {note: x}
spec:
  nodeSelector: {disk: ssd}
  dnsPolicy: None
  dnsConfig: {nameservers: [10.0.0.10]}
  containers:
  - name: sidecar
    image: other
  - name: mssql
    image: my/mssql:1
    env: [{name: ACCEPT_EULA, value: "Y"}]
    resources: {limits: {memory: 2Gi}}
"#,
        );
        let parsed = parse(Some(&t), "mssql");
        assert_eq!(parsed.labels["team"], "a");
        assert_eq!(parsed.annotations["note"], "x");
        assert_eq!(parsed.image.as_deref(), Some("my/mssql:1"));
        assert_eq!(parsed.env[0].name, "ACCEPT_EULA");
        assert!(parsed.resources.is_some());
        assert_eq!(parsed.node_selector.unwrap()["disk"], "ssd");
        assert_eq!(parsed.dns_policy.as_deref(), Some("None"));
        assert_eq!(
            parsed.dns_config.unwrap().nameservers.unwrap(),
            ["10.0.0.10"]
        );
    }

    #[test]
    fn a_malformed_part_is_skipped_not_fatal() {
        let t = opaque(
            r#"
metadata:
  labels: "not a map"
spec:
  containers:
  - name: mysql
    env: 42
    image: mysql:custom
"#,
        );
        let parsed = parse(Some(&t), "mysql");
        assert!(parsed.labels.is_empty());
        assert!(parsed.env.is_empty());
        assert_eq!(parsed.image.as_deref(), Some("mysql:custom"));
        assert_eq!(parse(None, "mysql"), UserTemplate::default());
    }
}
