//! List and map types of the built-in kinds the system writes, from the Kubernetes 1.33 OpenAPI
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, patch merge keys, atomic structs).
//! Lists not listed are atomic; maps not listed are granular.
use super::{ListType, SchemaInfo};

/// A list or map type in a static table.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Atomic,
    Set,
    Map(&'static [&'static str]),
    /// `x-kubernetes-map-type: atomic` / `+structType=atomic`.
    AtomicMap,
}

/// One table row: a schema path joined with `.` (`[]` steps into list elements).
type Row = (&'static str, Shape);

/// The static description of one built-in kind.
struct BuiltinSchema {
    /// Where a PodSpec lives in this kind, joined with `.`.
    pod_spec_at: Option<&'static str>,
    rows: &'static [Row],
}

const NAME: &[&str] = &["name"];
const TYPE: &[&str] = &["type"];

/// `metadata` of every kind.
const METADATA: &[Row] = &[
    ("metadata.ownerReferences", Shape::Map(&["uid"])),
    ("metadata.ownerReferences.[]", Shape::AtomicMap),
    ("metadata.finalizers", Shape::Set),
    ("metadata.managedFields", Shape::Atomic),
];

/// A PodSpec, relative to where it lives. `initContainers` and `ephemeralContainers` are looked
/// up as `containers`.
const POD_SPEC: &[Row] = &[
    ("containers", Shape::Map(NAME)),
    (
        "containers.[].ports",
        Shape::Map(&["containerPort", "protocol"]),
    ),
    ("containers.[].env", Shape::Map(NAME)),
    (
        "containers.[].env.[].valueFrom.secretKeyRef",
        Shape::AtomicMap,
    ),
    (
        "containers.[].env.[].valueFrom.configMapKeyRef",
        Shape::AtomicMap,
    ),
    ("containers.[].env.[].valueFrom.fieldRef", Shape::AtomicMap),
    (
        "containers.[].env.[].valueFrom.resourceFieldRef",
        Shape::AtomicMap,
    ),
    ("containers.[].volumeMounts", Shape::Map(&["mountPath"])),
    ("containers.[].volumeDevices", Shape::Map(&["devicePath"])),
    ("volumes", Shape::Map(NAME)),
    ("imagePullSecrets", Shape::Map(NAME)),
    ("imagePullSecrets.[]", Shape::AtomicMap),
    ("hostAliases", Shape::Map(&["ip"])),
    (
        "topologySpreadConstraints",
        Shape::Map(&["topologyKey", "whenUnsatisfiable"]),
    ),
    ("resourceClaims", Shape::Map(NAME)),
    ("schedulingGates", Shape::Map(NAME)),
];

const WORKLOAD: &[Row] = &[
    ("spec.selector", Shape::AtomicMap),
    ("spec.volumeClaimTemplates", Shape::Atomic),
    ("status.conditions", Shape::Map(TYPE)),
];

static METADATA_ONLY: BuiltinSchema = BuiltinSchema {
    pod_spec_at: None,
    rows: &[],
};
static POD: BuiltinSchema = BuiltinSchema {
    pod_spec_at: Some("spec"),
    rows: &[
        ("status.conditions", Shape::Map(TYPE)),
        ("status.podIPs", Shape::Map(&["ip"])),
    ],
};
static POD_TEMPLATE_WORKLOAD: BuiltinSchema = BuiltinSchema {
    pod_spec_at: Some("spec.template.spec"),
    rows: WORKLOAD,
};
static JOB: BuiltinSchema = BuiltinSchema {
    pod_spec_at: Some("spec.template.spec"),
    rows: &[("spec.selector", Shape::AtomicMap)],
};
static CRON_JOB: BuiltinSchema = BuiltinSchema {
    pod_spec_at: Some("spec.jobTemplate.spec.template.spec"),
    rows: &[],
};
static SERVICE: BuiltinSchema = BuiltinSchema {
    pod_spec_at: None,
    rows: &[
        ("spec.ports", Shape::Map(&["port", "protocol"])),
        ("spec.selector", Shape::AtomicMap),
        ("status.conditions", Shape::Map(TYPE)),
    ],
};
static NAMESPACE: BuiltinSchema = BuiltinSchema {
    pod_spec_at: None,
    rows: &[("status.conditions", Shape::Map(TYPE))],
};
static SERVICE_ACCOUNT: BuiltinSchema = BuiltinSchema {
    pod_spec_at: None,
    rows: &[("secrets", Shape::Map(NAME))],
};
static PVC: BuiltinSchema = BuiltinSchema {
    pod_spec_at: None,
    rows: &[
        ("spec.selector", Shape::AtomicMap),
        ("status.conditions", Shape::Map(TYPE)),
    ],
};
static ROLE_BINDING: BuiltinSchema = BuiltinSchema {
    pod_spec_at: None,
    rows: &[("roleRef", Shape::AtomicMap)],
};
static CRD: BuiltinSchema = BuiltinSchema {
    pod_spec_at: None,
    rows: &[("status.conditions", Shape::Map(TYPE))],
};

impl BuiltinSchema {
    fn shape(&self, path: &[&str]) -> Option<Shape> {
        let joined = path.join(".");
        let find = |rows: &[Row], key: &str| rows.iter().find(|(p, _)| *p == key).map(|(_, s)| *s);
        if let Some(shape) = find(self.rows, &joined).or_else(|| find(METADATA, &joined)) {
            return Some(shape);
        }
        let relative = joined.strip_prefix(self.pod_spec_at?)?.strip_prefix('.')?;
        let relative = ["initContainers", "ephemeralContainers"]
            .iter()
            .find_map(|other| relative.strip_prefix(other))
            .map_or_else(|| relative.to_owned(), |rest| format!("containers{rest}"));
        find(POD_SPEC, &relative)
    }
}

impl SchemaInfo for BuiltinSchema {
    fn list_type(&self, path: &[&str]) -> ListType {
        match self.shape(path) {
            Some(Shape::Set) => ListType::Set,
            Some(Shape::Map(keys)) => ListType::Map(keys.iter().map(|k| (*k).to_owned()).collect()),
            Some(Shape::Atomic | Shape::AtomicMap) | None => ListType::Atomic,
        }
    }

    fn is_atomic_map(&self, path: &[&str]) -> bool {
        matches!(self.shape(path), Some(Shape::AtomicMap))
    }

    fn has_typed_top_level(&self) -> bool {
        true
    }
}

/// The list and map types of a built-in kind (`group` empty for the core group). Kinds not in
/// the table get only the `metadata` rules, which every kind shares.
pub fn builtin_schema_info(group: &str, kind: &str) -> &'static dyn SchemaInfo {
    match (group, kind) {
        ("", "Pod") => &POD,
        ("apps", "StatefulSet" | "Deployment" | "DaemonSet" | "ReplicaSet") => {
            &POD_TEMPLATE_WORKLOAD
        }
        ("batch", "Job") => &JOB,
        ("batch", "CronJob") => &CRON_JOB,
        ("", "Service") => &SERVICE,
        ("", "Namespace") => &NAMESPACE,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("", "PersistentVolumeClaim") => &PVC,
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => &ROLE_BINDING,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => &CRD,
        // Secret, ConfigMap, Event, Lease, Role, ClusterRole and the rest: granular data maps,
        // atomic lists (rules, subjects).
        _ => &METADATA_ONLY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> ListType {
        ListType::Map(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn table_answers_the_paths_the_operators_write() {
        let sts = builtin_schema_info("apps", "StatefulSet");
        let cases: &[(&[&str], ListType)] = &[
            (&["spec", "template", "spec", "containers"], keys(&["name"])),
            (
                &["spec", "template", "spec", "initContainers"],
                keys(&["name"]),
            ),
            (
                &["spec", "template", "spec", "containers", "[]", "ports"],
                keys(&["containerPort", "protocol"]),
            ),
            (
                &["spec", "template", "spec", "initContainers", "[]", "env"],
                keys(&["name"]),
            ),
            (
                &[
                    "spec",
                    "template",
                    "spec",
                    "containers",
                    "[]",
                    "volumeMounts",
                ],
                keys(&["mountPath"]),
            ),
            (&["spec", "template", "spec", "volumes"], keys(&["name"])),
            (&["spec", "volumeClaimTemplates"], ListType::Atomic),
            (
                &["spec", "template", "spec", "containers", "[]", "args"],
                ListType::Atomic,
            ),
            (&["status", "conditions"], keys(&["type"])),
            (&["metadata", "ownerReferences"], keys(&["uid"])),
            (&["metadata", "finalizers"], ListType::Set),
            (&["spec", "templatex", "containers"], ListType::Atomic),
        ];
        for (path, expected) in cases {
            assert_eq!(sts.list_type(path), *expected, "{path:?}");
        }
        assert!(sts.is_atomic_map(&["spec", "selector"]));
        assert!(!sts.is_atomic_map(&["metadata", "labels"]));
        assert!(sts.is_atomic_map(&["metadata", "ownerReferences", "[]"]));
    }

    #[test]
    fn kinds_have_their_own_lists_and_share_metadata() {
        let service = builtin_schema_info("", "Service");
        assert_eq!(
            service.list_type(&["spec", "ports"]),
            keys(&["port", "protocol"])
        );
        let pod = builtin_schema_info("", "Pod");
        assert_eq!(
            pod.list_type(&["spec", "containers", "[]", "env"]),
            keys(&["name"])
        );
        assert_eq!(
            pod.list_type(&["spec", "template", "spec", "containers"]),
            ListType::Atomic
        );
        let secret = builtin_schema_info("", "Secret");
        assert_eq!(secret.list_type(&["metadata", "finalizers"]), ListType::Set);
        assert!(!secret.is_atomic_map(&["data"]));
        let cron = builtin_schema_info("batch", "CronJob");
        assert_eq!(
            cron.list_type(&[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "containers"
            ]),
            keys(&["name"])
        );
    }
}
