//! Server-side Table columns for built-in kinds, as kube-apiserver's printers
//! (`pkg/printers/internalversion/printers.go`) produce them, so `kubectl get` shows the columns
//! it shows against a real cluster. The server always prints the wide form; kubectl hides
//! priority-1 columns unless `-o wide`.
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::super::resources::ResourceDef;
use super::table::human_duration;

/// One `columnDefinitions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub priority: i64,
    /// `name` for the object-name column, else empty.
    pub format: &'static str,
    pub description: &'static str,
}

const fn col(name: &'static str, priority: i64, description: &'static str) -> Column {
    Column {
        name,
        priority,
        format: if matches!(name.as_bytes(), b"Name") {
            "name"
        } else {
            ""
        },
        description,
    }
}

const NAME: Column = col(
    "Name",
    0,
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically.",
);
const AGE: Column = col(
    "Age",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

/// The kinds with their own printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printer {
    Secret,
    Service,
    StatefulSet,
    Event,
    Namespace,
    ConfigMap,
    Pod,
    PersistentVolumeClaim,
}

fn printer(def: &ResourceDef) -> Option<Printer> {
    Some(match (def.group.as_str(), def.plural.as_str()) {
        ("", "secrets") => Printer::Secret,
        ("", "services") => Printer::Service,
        ("apps", "statefulsets") => Printer::StatefulSet,
        ("" | "events.k8s.io", "events") => Printer::Event,
        ("", "namespaces") => Printer::Namespace,
        ("", "configmaps") => Printer::ConfigMap,
        ("", "pods") => Printer::Pod,
        ("", "persistentvolumeclaims") => Printer::PersistentVolumeClaim,
        _ => return None,
    })
}

/// The columns kube prints for `def`, or None when it has no dedicated printer.
pub fn columns(def: &ResourceDef) -> Option<Vec<Column>> {
    let cols = match printer(def)? {
        Printer::Secret => vec![
            NAME,
            col(
                "Type",
                0,
                "Used to facilitate programmatic handling of secret data.",
            ),
            col("Data", 0, "Data contains the secret data."),
            AGE,
        ],
        Printer::Service => vec![
            NAME,
            col("Type", 0, "type determines how the Service is exposed."),
            col(
                "Cluster-IP",
                0,
                "clusterIP is the IP address of the service.",
            ),
            col(
                "External-IP",
                0,
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            col(
                "Port(s)",
                0,
                "The list of ports that are exposed by this service.",
            ),
            AGE,
            col(
                "Selector",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        Printer::StatefulSet => vec![
            NAME,
            col("Ready", 0, "Number of the pod with ready state"),
            AGE,
            col("Containers", 1, "Names of each container in the template."),
            col(
                "Images",
                1,
                "Images referenced by each container in the template.",
            ),
        ],
        Printer::Event => vec![
            col(
                "Last Seen",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            col("Type", 0, "Type of this event (Normal, Warning)."),
            col(
                "Reason",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            col("Object", 0, "The object that this event is about."),
            col(
                "Subobject",
                1,
                "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
            ),
            col("Source", 1, "The component reporting this event."),
            col(
                "Message",
                0,
                "A human-readable description of the status of this operation.",
            ),
            col(
                "First Seen",
                1,
                "The time at which the event was first recorded.",
            ),
            col("Count", 1, "The number of times this event has occurred."),
            Column {
                priority: 1,
                ..NAME
            },
        ],
        Printer::Namespace => vec![NAME, col("Status", 0, "The status of the namespace"), AGE],
        Printer::ConfigMap => vec![
            NAME,
            col("Data", 0, "Data contains the configuration data."),
            AGE,
        ],
        Printer::Pod => vec![
            NAME,
            col(
                "Ready",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            col("IP", 1, "podIP address allocated to the pod."),
            col("Node", 1, "Name of the Node this pod is assigned to."),
            col(
                "Nominated Node",
                1,
                "Name of the node this pod is nominated to run on.",
            ),
            col(
                "Readiness Gates",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        Printer::PersistentVolumeClaim => vec![
            NAME,
            col(
                "Status",
                0,
                "phase represents the current phase of PersistentVolumeClaim.",
            ),
            col(
                "Volume",
                0,
                "volumeName is the binding reference to the PersistentVolume backing this claim.",
            ),
            col(
                "Capacity",
                0,
                "capacity represents the actual resources of the underlying volume.",
            ),
            col(
                "Access Modes",
                0,
                "accessModes contains the actual access modes the volume backing the PVC has.",
            ),
            col("StorageClass", 0, "StorageClass of the pvc"),
            col(
                "VolumeAttributesClass",
                0,
                "VolumeAttributesClass of the pvc",
            ),
            AGE,
            col(
                "VolumeMode",
                1,
                "volumeMode defines what type of volume is required by the claim.",
            ),
        ],
    };
    Some(cols)
}

fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.to_string()
    }
}

fn len_of(obj: &Value, pointer: &str) -> usize {
    match obj.pointer(pointer) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

/// kube's `translateTimestampSince`: `<unknown>` for an unset time.
fn since(ts: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(ts) {
        Ok(t) => human_duration((now - t.with_timezone(&Utc)).num_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
fn format_labels(obj: &Value, pointer: &str) -> String {
    let Some(Value::Object(m)) = obj.pointer(pointer) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    or_none(&pairs.join(","))
}

fn joined(obj: &Value, pointer: &str, field: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| s(c, field).to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The cells of one row (in the order of `columns`). `obj` is in core form.
pub fn cells(def: &ResourceDef, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let Some(p) = printer(def) else {
        return Vec::new();
    };
    let name = json!(s(obj, "/metadata/name"));
    let age = json!(since(s(obj, "/metadata/creationTimestamp"), now));
    match p {
        Printer::Secret => vec![
            name,
            json!(s(obj, "/type")),
            json!(len_of(obj, "/data")),
            age,
        ],
        Printer::ConfigMap => vec![
            name,
            json!(len_of(obj, "/data") + len_of(obj, "/binaryData")),
            age,
        ],
        Printer::Namespace => vec![name, json!(s(obj, "/status/phase")), age],
        Printer::StatefulSet => {
            let ready = obj
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let desired = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            vec![
                name,
                json!(format!("{ready}/{desired}")),
                age,
                json!(joined(obj, "/spec/template/spec/containers", "/name")),
                json!(joined(obj, "/spec/template/spec/containers", "/image")),
            ]
        }
        Printer::Service => vec![
            name,
            json!(s(obj, "/spec/type")),
            json!(or_none(s(obj, "/spec/clusterIP"))),
            json!(service_external_ip(obj)),
            json!(service_ports(obj)),
            age,
            json!(format_labels(obj, "/spec/selector")),
        ],
        Printer::Pod => pod_cells(obj, name, age),
        Printer::PersistentVolumeClaim => pvc_cells(obj, name, age),
        Printer::Event => event_cells(obj, now),
    }
}

/// `getServiceExternalIP` (wide).
fn service_external_ip(obj: &Value) -> String {
    let external: Vec<&str> = obj
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match s(obj, "/spec/type") {
        "ExternalName" => s(obj, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = obj
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|i| {
                            let ip = s(i, "/ip");
                            if ip.is_empty() { s(i, "/hostname") } else { ip }.to_string()
                        })
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            ips.extend(external.iter().map(|x| x.to_string()));
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        _ => or_none(&external.join(",")),
    }
}

/// `makePortString`: `80/TCP`, `80:30080/TCP` with a node port.
fn service_ports(obj: &Value) -> String {
    let ports: Vec<String> = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let proto = match s(p, "/protocol") {
                        "" => "TCP",
                        other => other,
                    };
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(np) if np > 0 => format!("{port}:{np}/{proto}"),
                        _ => format!("{port}/{proto}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    or_none(&ports.join(","))
}

/// `printPod`, without init-container and sidecar details (no pods run in the testbed).
fn pod_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let total = len_of(obj, "/spec/containers");
    let statuses = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut reason = match s(obj, "/status/reason") {
        "" => s(obj, "/status/phase").to_string(),
        r => r.to_string(),
    };
    let mut ready = 0;
    let mut restarts = 0;
    for c in &statuses {
        restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        let waiting = s(c, "/state/waiting/reason");
        let terminated = s(c, "/state/terminated/reason");
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if !terminated.is_empty() {
            reason = terminated.to_string();
        } else if c.get("ready").and_then(Value::as_bool) == Some(true)
            && c.pointer("/state/running").is_some()
        {
            ready += 1;
        }
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    let gates = len_of(obj, "/spec/readinessGates");
    vec![
        name,
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts.to_string()),
        age,
        json!(or_none(s(obj, "/status/podIP"))),
        json!(or_none(s(obj, "/spec/nodeName"))),
        json!(or_none(s(obj, "/status/nominatedNodeName"))),
        json!(if gates == 0 {
            "<none>".to_string()
        } else {
            format!("0/{gates}")
        }),
    ]
}

/// `printPersistentVolumeClaim`.
fn pvc_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let phase = if obj.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        s(obj, "/status/phase")
    };
    let volume = s(obj, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        let modes: Vec<&str> = obj
            .pointer("/status/accessModes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| match m.as_str()? {
                        "ReadWriteOnce" => Some("RWO"),
                        "ReadOnlyMany" => Some("ROX"),
                        "ReadWriteMany" => Some("RWX"),
                        "ReadWriteOncePod" => Some("RWOP"),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        (
            s(obj, "/status/capacity/storage").to_string(),
            modes.join(","),
        )
    };
    let class = match s(
        obj,
        "/metadata/annotations/volume.beta.kubernetes.io~1storage-class",
    ) {
        "" => s(obj, "/spec/storageClassName"),
        c => c,
    };
    let unset = |v: &str| {
        if v.is_empty() {
            "<unset>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        name,
        json!(phase),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(class),
        json!(unset(s(obj, "/spec/volumeAttributesClassName"))),
        age,
        json!(unset(s(obj, "/spec/volumeMode"))),
    ]
}

/// `printEvent` (core form: `reportingComponent` is the reporting controller).
fn event_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let first = match s(obj, "/firstTimestamp") {
        "" => since(s(obj, "/eventTime"), now),
        t => since(t, now),
    };
    let mut last = match s(obj, "/lastTimestamp") {
        "" => first.clone(),
        t => since(t, now),
    };
    let mut count = obj.get("count").and_then(Value::as_i64).unwrap_or(0);
    if obj.get("series").is_some_and(Value::is_object) {
        last = since(s(obj, "/series/lastObservedTime"), now);
        count = obj
            .pointer("/series/count")
            .and_then(Value::as_i64)
            .unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = s(obj, "/involvedObject/kind").to_lowercase();
    let target = match s(obj, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = match s(obj, "/source/component") {
        "" => s(obj, "/reportingComponent"),
        c => c,
    };
    let instance = match s(obj, "/source/host") {
        "" => s(obj, "/reportingInstance"),
        h => h,
    };
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(s(obj, "/type")),
        json!(s(obj, "/reason")),
        json!(target),
        json!(s(obj, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(obj, "/message").trim()),
        json!(first),
        json!(count),
        json!(s(obj, "/metadata/name")),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::super::resources::builtins;
    use super::*;

    fn def(group: &str, plural: &str) -> ResourceDef {
        builtins()
            .into_iter()
            .find(|d| d.group == group && d.plural == plural)
            .unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-01-01T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_printer_has_one_cell_per_column() {
        for (g, p) in [
            ("", "secrets"),
            ("", "services"),
            ("apps", "statefulsets"),
            ("", "events"),
            ("events.k8s.io", "events"),
            ("", "namespaces"),
            ("", "configmaps"),
            ("", "pods"),
            ("", "persistentvolumeclaims"),
        ] {
            let d = def(g, p);
            let cols = columns(&d).unwrap();
            assert_eq!(cells(&d, &json!({}), now()).len(), cols.len(), "{g}/{p}");
        }
        assert!(columns(&def("coordination.k8s.io", "leases")).is_none());
    }

    #[test]
    fn service_cells() {
        let svc = json!({"metadata": {"name": "db", "creationTimestamp": "2024-01-01T00:59:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"b": "2", "a": "1"},
                     "ports": [{"port": 3306, "protocol": "TCP", "nodePort": 30306}, {"port": 9104}]}});
        assert_eq!(
            cells(&def("", "services"), &svc, now()),
            vec![
                json!("db"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("3306:30306/TCP,9104/TCP"),
                json!("60s"),
                json!("a=1,b=2")
            ]
        );
    }

    #[test]
    fn event_cells_prefer_series_and_fall_back_to_reporting_controller() {
        let ev = json!({"metadata": {"name": "db.1"}, "involvedObject": {"kind": "MySQL", "name": "db"},
            "type": "Normal", "reason": "Issued", "message": " done ", "reportingComponent": "prov",
            "reportingInstance": "pod-1", "eventTime": "2024-01-01T00:50:00.000000Z",
            "series": {"count": 4, "lastObservedTime": "2024-01-01T00:59:30.000000Z"}, "source": {}});
        assert_eq!(
            cells(&def("", "events"), &ev, now()),
            vec![
                json!("30s"),
                json!("Normal"),
                json!("Issued"),
                json!("mysql/db"),
                json!(""),
                json!("prov, pod-1"),
                json!("done"),
                json!("10m"),
                json!(4),
                json!("db.1")
            ]
        );
    }

    #[test]
    fn statefulset_pvc_secret_cells() {
        let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "mysql", "image": "mysql:8"}]}}},
                         "status": {"readyReplicas": 2}});
        let c = cells(&def("apps", "statefulsets"), &sts, now());
        assert_eq!((c[1].clone(), c[3].clone()), (json!("2/3"), json!("mysql")));
        let pvc = json!({"metadata": {"name": "d"}, "spec": {"volumeName": "pv1", "storageClassName": "std"},
                         "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
        let c = cells(&def("", "persistentvolumeclaims"), &pvc, now());
        assert_eq!(
            c[1..6].to_vec(),
            vec![
                json!("Bound"),
                json!("pv1"),
                json!("1Gi"),
                json!("RWO"),
                json!("std")
            ]
        );
        let secret = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        let c = cells(&def("", "secrets"), &secret, now());
        assert_eq!(c[1..3].to_vec(), vec![json!("kubernetes.io/tls"), json!(2)]);
    }
}
