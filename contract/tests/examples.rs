//! The manifests in `examples/` against the typed API and the CRDs' CEL rules (evaluated with
//! kube's CEL interpreter, as the API server would).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use dbtls_contract::api::{MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore};
use dbtls_contract::certmanager::Issuer;
use dbtls_contract::crd;
use kube::core::cel::Validator;
use serde_json::Value;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The CEL errors the CRD of `object`'s kind reports for it.
fn cel_errors(object: &Value) -> Vec<String> {
    let kind = object["kind"].as_str().unwrap();
    let definition = crd::database_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    let schema = serde_json::to_value(
        definition.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    match Validator::new().validate(&schema, object, None) {
        Ok(()) => vec![],
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| e.to_string())
            .collect(),
    }
}

/// Parses `object` into its typed kind; Err carries serde's message.
fn parse_typed(object: &Value) -> Result<(), String> {
    let value = object.clone();
    let result = match object["kind"].as_str().unwrap() {
        "MySQL" => serde_json::from_value::<MySQL>(value).map(drop),
        "PerconaXtraDB" => serde_json::from_value::<PerconaXtraDB>(value).map(drop),
        "ProxySQL" => serde_json::from_value::<ProxySQL>(value).map(drop),
        "Singlestore" => serde_json::from_value::<Singlestore>(value).map(drop),
        "MSSQLServer" => serde_json::from_value::<MSSQLServer>(value).map(drop),
        "Issuer" => serde_json::from_value::<Issuer>(value).map(drop),
        "Namespace" | "Secret" => Ok(()),
        other => panic!("no typed API for {other}"),
    };
    result.map_err(|e| e.to_string())
}

#[test]
fn every_example_parses_and_passes_the_crd_rules() {
    let files = yaml_files(&examples_dir());
    assert!(
        files.len() >= 7,
        "expected the Issuer and one manifest per kind, found {files:?}"
    );
    let mut kinds = std::collections::BTreeSet::new();
    for path in files {
        let object = load(&path);
        parse_typed(&object).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        kinds.insert(object["kind"].as_str().unwrap().to_string());
        if object["apiVersion"]
            .as_str()
            .unwrap()
            .starts_with("kubedb.com/")
        {
            assert_eq!(
                cel_errors(&object),
                Vec::<String>::new(),
                "{}",
                path.display()
            );
        }
    }
    for kind in [
        "Issuer",
        "MySQL",
        "PerconaXtraDB",
        "ProxySQL",
        "Singlestore",
        "MSSQLServer",
    ] {
        assert!(kinds.contains(kind), "no example of {kind}");
    }
}

/// Each file in `examples/invalid/` starts with `# expect: <message>`: the API server's CEL rule
/// message, or for enums `Unsupported value: "<v>"` (checked here as a typed parse failure).
#[test]
fn every_invalid_example_is_rejected_with_its_message() {
    let files = yaml_files(&examples_dir().join("invalid"));
    assert!(files.len() >= 10);
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap()
            .trim();
        let object = load(&path);
        if let Some(value) = expected.strip_prefix("Unsupported value: ") {
            let error = parse_typed(&object).expect_err(&format!("{} parsed", path.display()));
            assert!(
                error.contains(value.trim_matches('"')),
                "{}: {error}",
                path.display()
            );
        } else {
            let errors = cel_errors(&object);
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{}: expected {expected:?}, got {errors:?}",
                path.display()
            );
        }
    }
}

#[test]
fn valid_objects_near_each_rule_pass() {
    let ok = [
        serde_json::json!({"apiVersion": "kubedb.com/v1", "kind": "MySQL", "metadata": {"name": "a"},
            "spec": {"version": "8.4.3", "requireSSL": false}}),
        serde_json::json!({"apiVersion": "kubedb.com/v1", "kind": "MySQL", "metadata": {"name": "a"},
            "spec": {"version": "8.4.3", "tls": {"issuerRef": {"kind": "ClusterIssuer", "name": "x"},
            "certificates": [{"alias": "server"}, {"alias": "client"}]}}}),
        serde_json::json!({"apiVersion": "kubedb.com/v1alpha2", "kind": "MSSQLServer", "metadata": {"name": "a"},
            "spec": {"version": "2022-cu12", "tls": {"issuerRef": {"apiGroup": "", "kind": "Issuer", "name": "x"}}}}),
    ];
    for object in ok {
        assert_eq!(cel_errors(&object), Vec::<String>::new(), "{object}");
    }
}

/// kube-apiserver refuses a CRD whose CEL rules' estimated cost exceeds its budget; bounded
/// lists and strings (maxItems/maxLength) keep ours within it.
#[test]
fn every_rule_is_within_the_api_servers_cost_budget() {
    use kube::core::cel::{WarningKind, compile_schema, estimate_rule_cost};
    fn walk(node: &Value, found: &mut Vec<String>, rules: &mut usize) {
        if let Some(validations) = node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            let compiled = compile_schema(node);
            for v in validations {
                *rules += 1;
                let rule = v["rule"].as_str().unwrap();
                for w in estimate_rule_cost(rule, &compiled) {
                    if w.kind == WarningKind::CostExceeded {
                        found.push(format!("{rule}: {}", w.message));
                    }
                }
            }
        }
        match node {
            Value::Object(map) => map.values().for_each(|v| walk(v, found, rules)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, found, rules)),
            _ => {}
        }
    }
    let (mut found, mut rules) = (vec![], 0);
    for definition in crd::database_crds() {
        walk(
            &serde_json::to_value(&definition).unwrap(),
            &mut found,
            &mut rules,
        );
    }
    assert!(
        rules >= 20,
        "expected the rules of all five kinds, saw {rules}"
    );
    assert!(found.is_empty(), "{found:#?}");
}
