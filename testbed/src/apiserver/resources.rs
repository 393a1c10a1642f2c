//! The kinds the server serves: built-in resources and those registered by CRDs, with what
//! discovery, routing and write semantics need to know about each.
use std::sync::Arc;

use serde_json::Value;

use super::validation::CrSchema;

/// An `additionalPrinterColumns` entry (also used for built-in tables).
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    pub json_path: String,
    pub priority: i64,
    pub description: String,
}

/// One served resource (group + plural), with its versions.
#[derive(Clone)]
pub struct ResourceDef {
    pub group: String,
    /// Served versions; the first is preferred in discovery.
    pub versions: Vec<String>,
    /// The version objects are stored as.
    pub storage_version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub status_subresource: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub printer_columns: Vec<PrinterColumn>,
    /// Whether writes bump `metadata.generation` on non-metadata changes.
    pub tracks_generation: bool,
    /// Structural schemas per version (custom resources only).
    pub schemas: Vec<(String, Option<Arc<CrSchema>>)>,
    /// Set for kinds registered by a CRD.
    pub crd_name: Option<String>,
}

impl std::fmt::Debug for ResourceDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResourceDef({}/{})", self.group, self.plural)
    }
}

impl ResourceDef {
    /// `v1` or `apps/v1` for the given version.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    pub fn schema(&self, version: &str) -> Option<Arc<CrSchema>> {
        self.schemas
            .iter()
            .find(|(v, _)| v == version)
            .and_then(|(_, s)| s.clone())
    }

    pub fn is_custom(&self) -> bool {
        self.crd_name.is_some()
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    status: bool,
    short: &[&str],
    generation: bool,
) -> ResourceDef {
    ResourceDef {
        group: group.to_string(),
        versions: vec![version.to_string()],
        storage_version: version.to_string(),
        plural: plural.to_string(),
        singular: kind.to_lowercase(),
        kind: kind.to_string(),
        namespaced,
        status_subresource: status,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        printer_columns: Vec::new(),
        tracks_generation: generation,
        schemas: Vec::new(),
        crd_name: None,
    }
}

/// The built-in resources the operators, kube-rs and kubectl use.
pub fn builtins() -> Vec<ResourceDef> {
    let mut all = vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            true,
            &["ns"],
            false,
        ),
        builtin("", "v1", "secrets", "Secret", true, false, &[], false),
        builtin("", "v1", "services", "Service", true, true, &["svc"], false),
        builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            false,
            &["cm"],
            false,
        ),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            false,
            &["sa"],
            false,
        ),
        builtin("", "v1", "events", "Event", true, false, &["ev"], false),
        builtin("", "v1", "pods", "Pod", true, true, &["po"], false),
        builtin(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            true,
            &["pvc"],
            false,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            false,
            &["ev"],
            false,
        ),
        builtin(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            true,
            true,
            &["sts"],
            true,
        ),
        // Served so the operators' own manifests (deploy/) can be dry-run; no controller.
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            true,
            &["deploy"],
            true,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            false,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            false,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            false,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            false,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            false,
            &[],
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            true,
            &["crd", "crds"],
            true,
        ),
    ];
    for def in &mut all {
        if matches!(
            def.plural.as_str(),
            "pods"
                | "services"
                | "statefulsets"
                | "secrets"
                | "configmaps"
                | "persistentvolumeclaims"
                | "serviceaccounts"
        ) {
            def.categories = vec!["all".to_string()];
        }
        if def.plural == "secrets"
            || def.plural == "configmaps"
            || def.plural == "serviceaccounts"
            || def.group == "rbac.authorization.k8s.io"
        {
            def.categories.retain(|c| c != "all");
        }
    }
    all
}

/// Reads a field by JSONPath-like dotted path (`.spec.replicas`, `.status.conditions[0].type`,
/// `.status.conditions[?(@.type=="Ready")].status`): enough for printer columns.
pub fn simple_json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    let path = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let (field, after) = rest.split_at(end);
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        rest = after;
        if let Some(stripped) = rest.strip_prefix('[') {
            let close = stripped.find(']')?;
            let index = &stripped[..close];
            rest = &stripped[close + 1..];
            if let Some(filter) = index.strip_prefix("?(@.") {
                let filter = filter.trim_end_matches(')');
                let (key, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches('"').trim_matches('\'');
                cur = cur.as_array()?.iter().find(|e| {
                    e.get(key.trim()).map(|v| match v {
                        Value::String(s) => s == want,
                        other => serde_json::from_str::<Value>(want).ok().as_ref() == Some(other),
                    }) == Some(true)
                })?;
            } else {
                cur = cur.get(index.parse::<usize>().ok()?)?;
            }
        }
        rest = rest.trim_start_matches('.');
    }
    Some(cur)
}
