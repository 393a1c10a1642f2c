//! Invariants of the deployment manifests under `deploy/` (kustomize) and of the Helm chart
//! `deploy/helm/dbtls/`: hardened pods, probes, resources, least-privilege RBAC, monitoring wired
//! to the right ports, and the chart's copies kept identical to `deploy/`.
//!
//! The chart's templates are rendered and checked only when `helm` is on PATH; otherwise the
//! chart is checked at the level of Chart.yaml, values.yaml and its copied files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

const OPERATORS: [&str; 2] = ["provisioner", "ops-manager"];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn chart_dir() -> PathBuf {
    deploy_dir().join("helm/dbtls")
}

/// Every YAML document of `text` as JSON (empty documents dropped).
fn parse_documents(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            let yaml = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}"));
            serde_json::to_value(yaml).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Helm templates are Go templates, not YAML.
            if path.file_name().is_some_and(|n| n == "templates") {
                continue;
            }
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// All Kubernetes objects of the kustomize manifests (not the chart).
fn deploy_objects() -> Vec<Value> {
    let mut files = Vec::new();
    yaml_files(&deploy_dir(), &mut files);
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs = parse_documents(&text, &file.display().to_string());
        assert!(!docs.is_empty(), "{}: no YAML document", file.display());
        if file.starts_with(chart_dir()) {
            continue;
        }
        for doc in docs {
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "{}: a document without apiVersion/kind",
                file.display()
            );
            objects.push(doc);
        }
    }
    objects
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind} {name}");
    found[0]
}

fn env_of<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

/// The pod-level and container-level hardening, probes, resources and ports of one operator.
fn check_deployment(objects: &[Value], operator: &str, namespace: &str) {
    let name = format!("dbtls-{operator}");
    let deployment = find(objects, "Deployment", &name);
    assert_eq!(deployment["metadata"]["namespace"], namespace, "{name}");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], name.as_str());
    assert_eq!(pod["terminationGracePeriodSeconds"], 30, "{name}");
    let pod_sc = &pod["securityContext"];
    assert_eq!(pod_sc["runAsNonRoot"], true, "{name}");
    assert_eq!(pod_sc["runAsUser"], 65532, "{name}");
    assert_eq!(pod_sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "{name}: selector does not match the pod");
    }

    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{name}");
    let c = &containers[0];
    assert_eq!(
        c["image"].as_str().unwrap(),
        format!("ghcr.io/dbtls/{operator}:0.1.0")
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
    assert_eq!(sc["runAsNonRoot"], true, "{name}");
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{name}");
    assert!(
        sc["capabilities"]["add"].is_null(),
        "{name} adds capabilities"
    );
    assert!(sc["privileged"].is_null() || sc["privileged"] == false);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][bound][resource].is_string(),
                "{name}: resources.{bound}.{resource} missing"
            );
        }
    }
    let ports = c["ports"].as_array().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"] == 8080),
        "{name}: no port 8080 named metrics"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{name} {probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{name} {probe}");
    }
    // Leader election: the Lease lives in the pod's namespace, named after the operator.
    assert_eq!(
        env_of(c, "DBTLS_LEASE_NAMESPACE").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        env_of(c, "DBTLS_LEASE_NAME").unwrap()["value"],
        name.as_str()
    );
    let leader_elect = env_of(c, "DBTLS_LEADER_ELECT").unwrap()["value"].clone();
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap();
    if replicas > 1 {
        assert_eq!(
            leader_elect, "true",
            "{name}: replicas > 1 need leader election"
        );
    }
    if leader_elect != "true" {
        assert_eq!(
            deployment["spec"]["strategy"]["type"], "Recreate",
            "{name}: without leader election two pods must never overlap"
        );
    }
    let operator_flag = if operator == "provisioner" {
        "DBTLS_WORKLOAD"
    } else {
        "DBTLS_CLUSTER_DOMAIN"
    };
    assert!(
        env_of(c, operator_flag).is_some(),
        "{name}: {operator_flag}"
    );
}

/// The verbs a set of RBAC rules grants on `group/resource` (wildcards are refused anyway).
fn granted(rules: &Value, group: &str, resource: &str) -> Vec<String> {
    let mut verbs = Vec::new();
    for rule in rules.as_array().unwrap() {
        let has = |field: &str, want: &str| {
            rule[field]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == want))
        };
        if has("apiGroups", group) && has("resources", resource) {
            for v in rule["verbs"].as_array().unwrap() {
                verbs.push(v.as_str().unwrap().to_string());
            }
        }
    }
    verbs
}

fn check_rbac(objects: &[Value], operator: &str, namespace: &str) {
    let name = format!("dbtls-{operator}");
    let role = find(objects, "ClusterRole", &name);
    let rules = &role["rules"];
    for rule in rules.as_array().unwrap() {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(
                !rule[field].as_array().unwrap().iter().any(|x| x == "*"),
                "{name}: wildcard in {field}"
            );
        }
        assert!(
            !rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == "escalate" || v == "bind" || v == "impersonate"),
            "{name}: privilege-escalating verb"
        );
    }
    let can = |group: &str, resource: &str, verb: &str| {
        granted(rules, group, resource).iter().any(|v| v == verb)
    };
    // Both read and watch their databases and write their own status.
    for plural in [
        "mysqls",
        "perconaxtradbs",
        "proxysqls",
        "singlestores",
        "mssqlservers",
    ] {
        for verb in ["get", "list", "watch", "patch"] {
            assert!(can("kubedb.com", plural, verb), "{name}: {verb} {plural}");
        }
        assert!(can("kubedb.com", &format!("{plural}/status"), "patch"));
        assert!(
            !can("kubedb.com", plural, "create"),
            "{name} creates {plural}"
        );
        assert!(
            !can("kubedb.com", plural, "delete"),
            "{name} deletes {plural}"
        );
    }
    assert!(can("events.k8s.io", "events", "create"));
    if operator == "provisioner" {
        assert!(!can("cert-manager.io", "certificates", "create"));
        assert!(!can("cert-manager.io", "certificates", "patch"));
        assert!(can("", "secrets", "create"), "auth and config Secrets");
        assert!(can("apps", "statefulsets", "create"));
        assert!(can("apps.k8s.appscode.com", "petsets", "create"));
        assert!(can("", "services", "create"));
        assert!(can("", "pods", "watch"), "pod states in WorkloadReady");
        assert!(
            can("monitoring.coreos.com", "servicemonitors", "patch"),
            "the stats ServiceMonitor"
        );
        for issuers in ["issuers", "clusterissuers"] {
            assert!(
                can("cert-manager.io", issuers, "watch"),
                "{issuers}: whether ProxySQL's issuer is ACME"
            );
            assert!(!can("cert-manager.io", issuers, "patch"));
        }
        assert!(
            !can("", "pods", "delete"),
            "the provisioner never deletes pods"
        );
    } else {
        assert!(can("cert-manager.io", "certificates", "create"));
        assert!(!can("apps", "statefulsets", "create"));
        assert!(!can("apps", "statefulsets", "patch"));
        assert!(!can("apps.k8s.appscode.com", "petsets", "create"));
        assert!(!can("apps.k8s.appscode.com", "petsets", "patch"));
        assert!(
            can("", "secrets", "create"),
            "the CA bundle (cert-manager creates the TLS Secrets)"
        );
        assert!(!can("", "services", "create"));
        assert!(!can("", "services", "patch"));
        assert!(!can("cert-manager.io", "issuers", "patch"));
        assert!(can("", "pods", "watch"), "what the pods present");
        assert!(can("", "pods/eviction", "create"), "restarts for a renewal");
        for verb in ["patch", "delete", "update", "create"] {
            assert!(
                !can("", "pods", verb),
                "pods are only evicted, never {verb}d"
            );
        }
    }

    let subject = json!([{"kind": "ServiceAccount", "name": name, "namespace": namespace}]);
    let binding = find(objects, "ClusterRoleBinding", &name);
    assert_eq!(binding["roleRef"]["name"], name.as_str());
    assert_eq!(binding["subjects"], subject);

    let lease_role_name = format!("{name}-leader-election");
    let lease_role = find(objects, "Role", &lease_role_name);
    assert_eq!(lease_role["metadata"]["namespace"], namespace);
    for rule in lease_role["rules"].as_array().unwrap() {
        assert_eq!(rule["apiGroups"], json!(["coordination.k8s.io"]));
        assert_eq!(rule["resources"], json!(["leases"]));
        let verbs = rule["verbs"].as_array().unwrap();
        if verbs != &vec![json!("create")] {
            assert_eq!(
                rule["resourceNames"],
                json!([name]),
                "{name}: Lease access beyond its own Lease"
            );
        }
    }
    let lease_binding = find(objects, "RoleBinding", &lease_role_name);
    assert_eq!(lease_binding["metadata"]["namespace"], namespace);
    assert_eq!(lease_binding["subjects"], subject);
    let sa = find(objects, "ServiceAccount", &name);
    assert_eq!(sa["metadata"]["namespace"], namespace);
}

fn check_metrics_wiring(objects: &[Value], operator: &str, with_monitor: bool) {
    let name = format!("dbtls-{operator}");
    let deployment = find(objects, "Deployment", &name);
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let service = find(objects, "Service", &format!("{name}-metrics"));
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "{name}: Service selects other pods");
    }
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["name"], "metrics");
    assert_eq!(port["targetPort"], "metrics");
    if with_monitor {
        let monitor = find(objects, "ServiceMonitor", &name);
        assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
        let service_labels = &service["metadata"]["labels"];
        for (k, v) in monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(
                &service_labels[k], v,
                "{name}: ServiceMonitor misses the Service"
            );
        }
        assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
        assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    }
}

fn alerts(objects: &[Value]) -> BTreeMap<String, String> {
    let rule = objects
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    let mut out = BTreeMap::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            let expr = r["expr"].as_str().unwrap().to_string();
            let alert = r["alert"].as_str().unwrap().to_string();
            assert!(r["labels"]["severity"].is_string(), "{alert}: no severity");
            assert!(
                r["annotations"]["summary"].is_string(),
                "{alert}: no summary"
            );
            out.insert(alert, expr);
        }
    }
    out
}

#[test]
fn kustomize_manifests_hold_the_invariants() {
    let objects = deploy_objects();
    let ns = find(&objects, "Namespace", "dbtls-system");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    for operator in OPERATORS {
        check_deployment(&objects, operator, "dbtls-system");
        check_rbac(&objects, operator, "dbtls-system");
        check_metrics_wiring(&objects, operator, true);
    }
    let alerts = alerts(&objects);
    let renewal = &alerts["DbtlsCertificateRenewalOverdue"];
    assert!(renewal.contains("dbtls_certificate_expiry_timestamp_seconds - time()"));
    assert!(renewal.contains("dbtls_certificate_renewal_timestamp_seconds"));
    assert!(
        alerts["DbtlsDatabaseWaitingForTLSSecrets"]
            .contains(r#"dbtls_databases{state="WaitingForTLSSecrets"}"#)
    );
    assert!(alerts["DbtlsReconcileErrorRateHigh"].contains("dbtls_reconcile_errors_total"));
}

#[test]
fn kustomization_lists_existing_files_and_every_crd() {
    let dir = deploy_dir();
    let mut listed = Vec::new();
    let mut pending = vec![dir.join("kustomization.yaml")];
    while let Some(file) = pending.pop() {
        let k = &parse_documents(&std::fs::read_to_string(&file).unwrap(), "kustomization")[0];
        let base = file.parent().unwrap().to_path_buf();
        for r in k["resources"].as_array().unwrap() {
            let path = base.join(r.as_str().unwrap());
            assert!(
                path.exists(),
                "{} lists missing {}",
                file.display(),
                path.display()
            );
            if path.is_dir() {
                pending.push(path.join("kustomization.yaml"));
            } else {
                listed.push(path.canonicalize().unwrap());
            }
        }
    }
    for crd in std::fs::read_dir(dir.join("crds")).unwrap() {
        let crd = crd.unwrap().path().canonicalize().unwrap();
        assert!(
            listed.contains(&crd),
            "{} not in kustomization",
            crd.display()
        );
    }
    for operator in OPERATORS {
        for file in [
            "rbac.yaml",
            "deployment.yaml",
            "service.yaml",
            "serviceaccount.yaml",
        ] {
            let path = dir.join(operator).join(file).canonicalize().unwrap();
            assert!(listed.contains(&path), "{} not deployed", path.display());
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn helm_chart_values_and_copies_match_deploy() {
    let chart_dir = chart_dir();
    let chart = &parse_documents(&read(&chart_dir.join("Chart.yaml")), "Chart.yaml")[0];
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "dbtls");
    assert_eq!(chart["appVersion"], "0.1.0");
    let values = &parse_documents(&read(&chart_dir.join("values.yaml")), "values.yaml")[0];
    assert_eq!(values["crds"]["install"], true);
    assert!(["text", "json"].contains(&values["global"]["logFormat"].as_str().unwrap()));
    assert!(values["global"]["watchNamespaces"].is_array());
    assert!(values["metrics"]["serviceMonitor"]["enabled"].is_boolean());
    assert!(values["metrics"]["prometheusRule"]["enabled"].is_boolean());
    assert!(
        ["auto", "statefulset", "petset"]
            .contains(&values["provisioner"]["workload"].as_str().unwrap())
    );
    assert_eq!(values["opsManager"]["clusterDomain"], "cluster.local");
    let objects = deploy_objects();
    for (key, operator) in [
        ("provisioner", "provisioner"),
        ("opsManager", "ops-manager"),
    ] {
        let v = &values[key];
        assert_eq!(
            v["image"]["repository"],
            format!("ghcr.io/dbtls/{operator}").as_str()
        );
        assert!(v["replicas"].is_u64());
        assert!(v["leaderElection"]["enabled"].is_boolean());
        let deployment = find(&objects, "Deployment", &format!("dbtls-{operator}"));
        assert_eq!(
            v["resources"], deployment["spec"]["template"]["spec"]["containers"][0]["resources"],
            "{key}: chart resources differ from deploy/"
        );
        // The chart's RBAC is deploy/'s with the release namespace.
        let template = read(&chart_dir.join(format!("templates/{operator}-rbac.yaml")));
        let (_, body) = template.split_once('\n').unwrap();
        assert_eq!(
            body.replace("{{ .Release.Namespace }}", "dbtls-system"),
            read(&deploy_dir().join(format!("{operator}/rbac.yaml"))),
            "templates/{operator}-rbac.yaml is out of sync with deploy/{operator}/rbac.yaml"
        );
    }
    // Copies the templates read with .Files.Get must be identical to deploy/.
    for entry in std::fs::read_dir(deploy_dir().join("crds")).unwrap() {
        let path = entry.unwrap().path();
        let copy = chart_dir.join("files/crds").join(path.file_name().unwrap());
        assert_eq!(read(&copy), read(&path), "{} out of sync", copy.display());
    }
    assert_eq!(
        std::fs::read_dir(chart_dir.join("files/crds"))
            .unwrap()
            .count(),
        std::fs::read_dir(deploy_dir().join("crds"))
            .unwrap()
            .count()
    );
    assert_eq!(
        read(&chart_dir.join("files/prometheus-rules.yaml")),
        read(&deploy_dir().join("prometheus-rules.yaml"))
    );
}

/// Renders the chart with `helm template` (when helm is installed) and checks the same
/// invariants as for deploy/, plus leader election turning on with replicas > 1.
#[test]
fn helm_chart_renders_the_same_invariants() {
    let Ok(version) = std::process::Command::new("helm").arg("version").output() else {
        eprintln!(
            "helm is not installed: chart templates not rendered (values/files checked only)"
        );
        return;
    };
    assert!(version.status.success());
    let render = |extra: &[&str]| {
        let output = std::process::Command::new("helm")
            .args(["template", "dbtls"])
            .arg(chart_dir())
            .args(["--namespace", "dbtls-ops"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "helm template failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        parse_documents(&String::from_utf8(output.stdout).unwrap(), "helm template")
    };
    let defaults = render(&[]);
    for operator in OPERATORS {
        check_deployment(&defaults, operator, "dbtls-ops");
        check_rbac(&defaults, operator, "dbtls-ops");
        check_metrics_wiring(&defaults, operator, false);
    }
    assert_eq!(
        defaults
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .count(),
        5
    );
    assert!(defaults.iter().all(|o| o["kind"] != "ServiceMonitor"));

    let scaled = render(&[
        "--set",
        "provisioner.replicas=2",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "crds.install=false",
    ]);
    for operator in OPERATORS {
        check_deployment(&scaled, operator, "dbtls-ops");
        check_metrics_wiring(&scaled, operator, true);
    }
    let provisioner = find(&scaled, "Deployment", "dbtls-provisioner");
    let c = &provisioner["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(env_of(c, "DBTLS_LEADER_ELECT").unwrap()["value"], "true");
    let ops = find(&scaled, "Deployment", "dbtls-ops-manager");
    let c = &ops["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(env_of(c, "DBTLS_LEADER_ELECT").unwrap()["value"], "false");
    assert!(
        scaled
            .iter()
            .all(|o| o["kind"] != "CustomResourceDefinition")
    );
    assert_eq!(alerts(&scaled).len(), alerts(&deploy_objects()).len());
}
