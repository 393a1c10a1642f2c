//! Server-side apply and managed-fields behaviour, scenario by scenario.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use serde_json::{Value, json};

use super::*;

const T1: &str = "2024-05-01T10:00:00Z";
const T2: &str = "2024-05-01T11:00:00Z";

fn sts() -> &'static dyn SchemaInfo {
    builtin_schema_info("apps", "StatefulSet")
}

struct Apply<'a> {
    live: Option<&'a Value>,
    manager: &'a str,
    force: bool,
    subresource: Option<&'a str>,
    now: &'a str,
}

impl<'a> Apply<'a> {
    fn by(manager: &'a str, live: Option<&'a Value>) -> Self {
        Apply {
            live,
            manager,
            force: false,
            subresource: None,
            now: T1,
        }
    }
    fn force(mut self) -> Self {
        self.force = true;
        self
    }
    fn status(mut self) -> Self {
        self.subresource = Some("status");
        self
    }
    fn at(mut self, now: &'a str) -> Self {
        self.now = now;
        self
    }
    fn run(self, applied: Value) -> Result<Value, ApplyError> {
        apply(&ApplyRequest {
            live: self.live,
            applied: &applied,
            manager: self.manager,
            force: self.force,
            subresource: self.subresource,
            schema: sts(),
            api_version: "apps/v1",
            now: self.now,
        })
    }
}

fn statefulset(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "ns"}, "spec": spec})
}

/// The fieldsV1 of the entry (manager, operation), or None.
fn fields_of(object: &Value, manager: &str, operation: &str) -> Option<Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .map(|e| e["fieldsV1"].clone())
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    managed::strip(&mut object);
    object
}

fn conditions(object: &Value) -> Vec<String> {
    object["status"]["conditions"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    format!(
                        "{}={}",
                        c["type"].as_str().unwrap(),
                        c["status"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn apply_creates_the_object_and_records_an_apply_entry() {
    let created = Apply::by("op", None)
        .run(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "labels": {"app": "db"}, "resourceVersion": "9"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"replicas": 7}
        }))
        .unwrap();
    assert_eq!(
        without_managed_fields(&created),
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "labels": {"app": "db"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }),
        "status and server metadata of the configuration are not applied through the main resource"
    );
    let entries = created["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0],
        json!({
            "manager": "op", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}
                    }}}
                }
            }
        })
    );
}

#[test]
fn fields_no_longer_applied_are_removed_including_list_map_entries_and_map_keys() {
    let first = Apply::by("op", None)
        .run(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "labels": {"app": "db", "tier": "x"}},
            "spec": {"replicas": 1, "serviceName": "db", "template": {"spec": {"containers": [
                {"name": "a", "image": "i", "args": ["--x"]},
                {"name": "b", "image": "j"}
            ]}}}
        }))
        .unwrap();
    let second = Apply::by("op", Some(&first))
        .run(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "labels": {"app": "db"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "i"}]}}}
        }))
        .unwrap();
    assert_eq!(
        without_managed_fields(&second),
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "labels": {"app": "db"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "i"}]}}}
        })
    );
    // Dropping the last label removes the emptied map too.
    let third = Apply::by("op", Some(&second))
        .run(statefulset(json!({"replicas": 1})))
        .unwrap();
    assert_eq!(
        without_managed_fields(&third),
        statefulset(json!({"replicas": 1}))
    );
}

#[test]
fn fields_owned_by_other_managers_are_kept_when_one_applier_drops_them() {
    let a = Apply::by("a", None)
        .run(statefulset(json!({"replicas": 1, "serviceName": "db"})))
        .unwrap();
    // b shares serviceName (same value: no conflict) and adds minReadySeconds.
    let b = Apply::by("b", Some(&a))
        .run(statefulset(
            json!({"serviceName": "db", "minReadySeconds": 5}),
        ))
        .unwrap();
    let a_again = Apply::by("a", Some(&b))
        .run(statefulset(json!({})))
        .unwrap();
    assert_eq!(
        without_managed_fields(&a_again)["spec"],
        json!({"serviceName": "db", "minReadySeconds": 5}),
        "replicas (a only) is removed; serviceName (shared with b) and b's field stay"
    );
    assert_eq!(
        fields_of(&a_again, "a", "Apply"),
        None,
        "a owns nothing any more"
    );
}

#[test]
fn two_managers_share_a_list_map_of_conditions() {
    let live = statefulset(json!({"replicas": 1}));
    let ready = Apply::by("ready-controller", Some(&live))
        .status()
        .run(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}))
        .unwrap();
    let both = Apply::by("sync-controller", Some(&ready))
        .status()
        .run(json!({"status": {"conditions": [{"type": "Synced", "status": "True"}]}}))
        .unwrap();
    assert_eq!(conditions(&both), ["Ready=False", "Synced=True"]);

    let ready_flipped = Apply::by("ready-controller", Some(&both))
        .status()
        .run(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap();
    assert_eq!(conditions(&ready_flipped), ["Ready=True", "Synced=True"]);

    let ready_gone = Apply::by("ready-controller", Some(&ready_flipped))
        .status()
        .run(json!({"status": {"conditions": []}}))
        .unwrap();
    assert_eq!(conditions(&ready_gone), ["Synced=True"]);
    assert_eq!(
        fields_of(&ready_gone, "sync-controller", "Apply").unwrap(),
        json!({"f:status": {"f:conditions": {"k:{\"type\":\"Synced\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
    );
    let entry = ready_gone["metadata"]["managedFields"].as_array().unwrap()[0].clone();
    assert_eq!(entry["subresource"], "status");
}

#[test]
fn conflicting_apply_fails_without_force_and_moves_ownership_with_force() {
    let a = Apply::by("a", None)
        .run(statefulset(json!({"replicas": 1, "serviceName": "db"})))
        .unwrap();
    let err = Apply::by("b", Some(&a))
        .run(statefulset(json!({"replicas": 2})))
        .unwrap_err();
    assert_eq!(err.http_status(), 409);
    assert_eq!(err.reason(), "Conflict");
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.replicas"#
    );
    let ApplyError::Conflict { conflicts } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(conflicts[0].cause_message(), r#"conflict with "a""#);

    let two = Apply::by("b", Some(&a))
        .run(statefulset(json!({"replicas": 2, "serviceName": "other"})))
        .unwrap_err();
    assert_eq!(
        two.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.replicas\n- .spec.serviceName"
    );

    let forced = Apply::by("b", Some(&a))
        .force()
        .run(statefulset(json!({"replicas": 2})))
        .unwrap();
    assert_eq!(forced["spec"]["replicas"], 2);
    assert_eq!(
        fields_of(&forced, "a", "Apply").unwrap(),
        json!({"f:spec": {"f:serviceName": {}}})
    );
    assert_eq!(
        fields_of(&forced, "b", "Apply").unwrap(),
        json!({"f:spec": {"f:replicas": {}}})
    );
    // a no longer owns replicas, so a re-apply by a without it leaves b's value alone.
    let a_again = Apply::by("a", Some(&forced))
        .run(statefulset(json!({"serviceName": "db"})))
        .unwrap();
    assert_eq!(a_again["spec"]["replicas"], 2);
}

#[test]
fn equal_values_are_shared_ownership_not_conflicts() {
    let a = Apply::by("a", None)
        .run(statefulset(json!({"replicas": 1})))
        .unwrap();
    let b = Apply::by("b", Some(&a))
        .run(statefulset(json!({"replicas": 1})))
        .unwrap();
    let replicas = json!({"f:spec": {"f:replicas": {}}});
    assert_eq!(fields_of(&b, "a", "Apply").unwrap(), replicas);
    assert_eq!(fields_of(&b, "b", "Apply").unwrap(), replicas);
    // Now neither can change it alone.
    let err = Apply::by("a", Some(&b))
        .run(statefulset(json!({"replicas": 3})))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "b": .spec.replicas"#
    );
}

#[test]
fn update_then_apply_transfers_ownership_and_back() {
    let mut created = statefulset(json!({"replicas": 1, "serviceName": "db"}));
    record_update(None, &mut created, "kubectl", None, sts(), "apps/v1", T1);
    assert_eq!(
        fields_of(&created, "kubectl", "Update").unwrap(),
        json!({"f:spec": {"f:replicas": {}, "f:serviceName": {}}})
    );

    let err = Apply::by("op", Some(&created))
        .run(statefulset(json!({"replicas": 2})))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas"#
    );
    let taken = Apply::by("op", Some(&created))
        .force()
        .run(statefulset(json!({"replicas": 2})))
        .unwrap();
    assert_eq!(
        fields_of(&taken, "kubectl", "Update").unwrap(),
        json!({"f:spec": {"f:serviceName": {}}})
    );

    // An update (e.g. `kubectl scale` as a merge patch) takes replicas back without any check.
    let mut scaled = taken.clone();
    merge_patch(&mut scaled, &json!({"spec": {"replicas": 5}}));
    record_update(
        Some(&taken),
        &mut scaled,
        "kubectl",
        None,
        sts(),
        "apps/v1",
        T2,
    );
    assert_eq!(
        fields_of(&scaled, "kubectl", "Update").unwrap(),
        json!({"f:spec": {"f:replicas": {}, "f:serviceName": {}}})
    );
    assert_eq!(
        fields_of(&scaled, "op", "Apply"),
        None,
        "op lost its only field"
    );
    let kubectl_entry = scaled["metadata"]["managedFields"].as_array().unwrap()[0].clone();
    assert_eq!(kubectl_entry["time"], T2);
}

#[test]
fn an_apply_that_changes_nothing_returns_live_unchanged() {
    let config = statefulset(
        json!({"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}),
    );
    let first = Apply::by("op", None).at(T1).run(config.clone()).unwrap();
    let again = Apply::by("op", Some(&first)).at(T2).run(config).unwrap();
    assert_eq!(
        again, first,
        "the entry keeps its time, so the server can skip the write"
    );
    assert!(same_ignoring_managed_time(&again, &first));

    let changed = Apply::by("op", Some(&first))
        .at(T2)
        .run(statefulset(json!({"replicas": 2})))
        .unwrap();
    assert!(!same_ignoring_managed_time(&changed, &first));
    let mut retimed = first.clone();
    retimed["metadata"]["managedFields"][0]["time"] = json!(T2);
    assert_ne!(retimed, first);
    assert!(same_ignoring_managed_time(&retimed, &first));
}

#[test]
fn status_apply_touches_only_status_and_main_apply_ignores_status() {
    let live = Apply::by("op", None)
        .run(statefulset(json!({"replicas": 1})))
        .unwrap();
    let status = Apply::by("ctl", Some(&live))
        .status()
        .run(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "labels": {"sneaky": "x"}},
            "spec": {"replicas": 9},
            "status": {"readyReplicas": 1}
        }))
        .unwrap();
    assert_eq!(status["spec"], json!({"replicas": 1}));
    assert_eq!(status["metadata"].get("labels"), None);
    assert_eq!(status["status"], json!({"readyReplicas": 1}));
    assert_eq!(
        fields_of(&status, "ctl", "Apply").unwrap(),
        json!({"f:status": {"f:readyReplicas": {}}})
    );

    // The operator's main-resource apply neither sets nor removes status.
    let main = Apply::by("op", Some(&status))
        .run(
            statefulset(json!({"replicas": 1}))
                .as_object()
                .cloned()
                .map(|mut o| {
                    o.insert("status".into(), json!({"readyReplicas": 0}));
                    Value::Object(o)
                })
                .unwrap(),
        )
        .unwrap();
    assert_eq!(main["status"], json!({"readyReplicas": 1}));
    assert_eq!(main, status, "nothing changed");
}

#[test]
fn metadata_lists_merge_by_uid_and_as_sets() {
    let owner = |uid: &str| json!({"apiVersion": "v1", "kind": "X", "name": uid, "uid": uid, "controller": true});
    let meta = |finalizers: Value, owners: Value| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "db", "namespace": "ns", "finalizers": finalizers, "ownerReferences": owners}})
    };
    let a = Apply::by("a", None)
        .run(meta(json!(["a.io/f"]), json!([owner("1")])))
        .unwrap();
    let b = Apply::by("b", Some(&a))
        .run(meta(json!(["b.io/f"]), json!([owner("2")])))
        .unwrap();
    assert_eq!(b["metadata"]["finalizers"], json!(["a.io/f", "b.io/f"]));
    assert_eq!(
        b["metadata"]["ownerReferences"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        fields_of(&b, "b", "Apply").unwrap(),
        json!({"f:metadata": {
            "f:finalizers": {"v:\"b.io/f\"": {}},
            "f:ownerReferences": {"k:{\"uid\":\"2\"}": {}}
        }})
    );
    let a_drops = Apply::by("a", Some(&b))
        .run(meta(json!([]), json!([])))
        .unwrap();
    assert_eq!(a_drops["metadata"]["finalizers"], json!(["b.io/f"]));
    assert_eq!(a_drops["metadata"]["ownerReferences"], json!([owner("2")]));
}

#[test]
fn atomic_lists_are_replaced_and_owned_whole() {
    let container = |args: Value| {
        statefulset(json!({"template": {"spec": {"containers": [{"name": "c", "args": args}]}}}))
    };
    let a = Apply::by("a", None)
        .run(container(json!(["--one", "--two"])))
        .unwrap();
    let b = Apply::by("a", Some(&a))
        .run(container(json!(["--three"])))
        .unwrap();
    assert_eq!(
        b["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["--three"])
    );
    let err = Apply::by("other", Some(&b))
        .run(container(json!(["--four"])))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.template.spec.containers[name="c"].args"#
    );
}

#[test]
fn container_ports_key_on_port_and_defaulted_protocol() {
    let ports = |ports: Value| {
        statefulset(json!({"template": {"spec": {"containers": [{"name": "c", "ports": ports}]}}}))
    };
    let a = Apply::by("a", None)
        .run(ports(json!([{"containerPort": 3306, "name": "db"}])))
        .unwrap();
    let b = Apply::by("b", Some(&a))
        .run(ports(json!([{"containerPort": 3306, "protocol": "TCP", "hostPort": 1}, {"containerPort": 53, "protocol": "UDP"}])))
        .unwrap();
    assert_eq!(
        b["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 3306, "name": "db", "protocol": "TCP", "hostPort": 1}, {"containerPort": 53, "protocol": "UDP"}])
    );
}

#[test]
fn malformed_configurations_are_rejected_with_kube_status_codes() {
    let with_managed = json!({"metadata": {"name": "db", "managedFields": [{"manager": "x"}]}});
    let err = Apply::by("a", None).run(with_managed).unwrap_err();
    assert_eq!(
        (err.http_status(), err.to_string().as_str()),
        (400, "metadata.managedFields must be nil")
    );

    let no_key = statefulset(json!({"template": {"spec": {"containers": [{"image": "i"}]}}}));
    let err = Apply::by("a", None).run(no_key).unwrap_err();
    assert_eq!(err.http_status(), 422);
    assert!(
        err.to_string().contains("omits key field \"name\""),
        "{err}"
    );

    assert_eq!(
        Apply::by("a", None)
            .run(json!([1]))
            .unwrap_err()
            .http_status(),
        400
    );
}

#[test]
fn record_update_follows_kube_for_create_change_and_removal() {
    let schema = builtin_schema_info("", "ConfigMap");
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "labels": {"app": "x"}}, "data": {"a": "1", "b": "2"}});
    record_update(None, &mut cm, "creator", None, schema, "v1", T1);
    assert_eq!(
        fields_of(&cm, "creator", "Update").unwrap(),
        json!({"f:data": {".": {}, "f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );

    let mut edited = cm.clone();
    json_patch(
        &mut edited,
        &json!([
            {"op": "replace", "path": "/data/a", "value": "changed"},
            {"op": "remove", "path": "/data/b"}
        ]),
    )
    .unwrap();
    record_update(Some(&cm), &mut edited, "editor", None, schema, "v1", T2);
    assert_eq!(
        fields_of(&edited, "creator", "Update").unwrap(),
        json!({"f:data": {}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}),
        "creator lost the changed and the removed key"
    );
    assert_eq!(
        fields_of(&edited, "editor", "Update").unwrap(),
        json!({"f:data": {"f:a": {}}})
    );

    // A write that changes nothing leaves managedFields exactly as they were.
    let mut same = edited.clone();
    record_update(Some(&edited), &mut same, "third", None, schema, "v1", T2);
    assert_eq!(same, edited);

    // managedFields: [] from the client resets them; this write then owns only what it changed.
    let mut reset = edited.clone();
    reset["metadata"]["managedFields"] = json!([]);
    reset["data"]["z"] = json!("new");
    record_update(
        Some(&edited),
        &mut reset,
        "resetter",
        None,
        schema,
        "v1",
        T2,
    );
    let entries = reset["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["fieldsV1"], json!({"f:data": {"f:z": {}}}));
}

#[test]
fn record_update_through_status_owns_only_status_with_the_subresource() {
    let live = statefulset(json!({"replicas": 1}));
    let mut new = live.clone();
    new["status"] = json!({"replicas": 1});
    record_update(
        Some(&live),
        &mut new,
        "sts-controller",
        Some("status"),
        sts(),
        "apps/v1",
        T1,
    );
    let entry = &new["metadata"]["managedFields"][0];
    assert_eq!(entry["subresource"], "status");
    assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
}
