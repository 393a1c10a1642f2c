#![allow(clippy::unwrap_used, clippy::expect_used)]
use serde_json::{Value, json};

use super::*;

fn schema(json: Value) -> StructuralSchema {
    StructuralSchema::from_json(&json).unwrap()
}

fn root_with_spec(spec: Value) -> StructuralSchema {
    schema(json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
        }
    }))
}

/// Each error as `path: message`, the form kube prints in `Status.message`.
fn texts(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

fn errors_for(s: &StructuralSchema, spec: Value) -> Vec<String> {
    texts(&s.validate(&json!({"spec": spec}), None))
}

/// A cut-down MySQL spec with the TLS rules the project's CRDs carry.
fn mysql_schema() -> StructuralSchema {
    root_with_spec(json!({
        "type": "object",
        "properties": {
            "requireSSL": {"type": "boolean"},
            "tls": {
                "type": "object",
                "properties": {
                    "issuerRef": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "kind": {"type": "string", "enum": ["Issuer", "ClusterIssuer"]},
                            "apiGroup": {"type": "string"},
                        },
                        "x-kubernetes-validations": [
                            {"rule": "self.kind in ['Issuer', 'ClusterIssuer']", "message": "kind must be Issuer or ClusterIssuer"}
                        ]
                    },
                    "certificates": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"alias": {"type": "string"}, "secretName": {"type": "string"}}
                        }
                    }
                },
                "x-kubernetes-validations": [
                    {"rule": "!has(self.certificates) || self.certificates.all(c, self.certificates.exists_one(d, d.alias == c.alias))",
                     "message": "certificate aliases must be unique"}
                ]
            }
        },
        "x-kubernetes-validations": [
            {"rule": "!has(self.requireSSL) || !self.requireSSL || (has(self.tls) && has(self.tls.issuerRef))",
             "message": "requireSSL needs spec.tls.issuerRef"}
        ]
    }))
}

#[test]
fn schema_is_shareable_across_request_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<StructuralSchema>();
}

#[test]
fn new_accepts_k8s_openapi_props() {
    let props: JSONSchemaProps = serde_json::from_value(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"n": {"type": "integer", "default": 3}}, "default": {}}}
    }))
    .unwrap();
    let s = StructuralSchema::new(&props).unwrap();
    let mut obj = json!({"kind": "X"});
    s.default_and_prune(&mut obj);
    assert_eq!(obj, json!({"kind": "X", "spec": {"n": 3}}));
}

#[test]
fn invalid_pattern_and_uncompilable_rule_reject_the_schema() {
    let bad_pattern = StructuralSchema::from_json(&json!({"type": "string", "pattern": "("}));
    assert!(bad_pattern.unwrap_err().message.contains("invalid pattern"));
    let bad_rule = StructuralSchema::from_json(&json!({
        "type": "object", "x-kubernetes-validations": [{"rule": "self.a ==="}]
    }));
    assert!(bad_rule.is_err());
    let map_without_keys = StructuralSchema::from_json(&json!({
        "type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}
    }));
    assert!(map_without_keys.is_err());
}

// ---------- pruning ----------

#[test]
fn prune_drops_unknown_fields_but_keeps_resource_root_fields() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}
    }));
    let mut obj = json!({
        "apiVersion": "x/v1", "kind": "K",
        "metadata": {"name": "n", "labels": {"l": "v"}, "whatever": 1},
        "spec": {"a": {"b": "x", "c": "dropped"}, "d": 1},
        "status": {"ok": true},
    });
    s.default_and_prune(&mut obj);
    assert_eq!(
        obj,
        json!({
            "apiVersion": "x/v1", "kind": "K",
            "metadata": {"name": "n", "labels": {"l": "v"}, "whatever": 1},
            "spec": {"a": {"b": "x"}},
        })
    );
}

#[test]
fn preserve_unknown_fields_keeps_unknown_but_prunes_known_children() {
    let s = root_with_spec(json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {"known": {"type": "object", "properties": {"x": {"type": "string"}}}}
    }));
    let mut obj =
        json!({"spec": {"free": {"deep": [1, {"z": 2}]}, "known": {"x": "1", "y": "gone"}}});
    s.default_and_prune(&mut obj);
    assert_eq!(
        obj,
        json!({"spec": {"free": {"deep": [1, {"z": 2}]}, "known": {"x": "1"}}})
    );
}

#[test]
fn embedded_resource_keeps_type_and_metadata() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {"template": {
            "type": "object",
            "x-kubernetes-embedded-resource": true,
            "properties": {"spec": {"type": "object", "properties": {"n": {"type": "integer"}}}}
        }}
    }));
    let mut obj = json!({"spec": {"template": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"n": 1, "m": 2}, "extra": 1
    }}});
    s.default_and_prune(&mut obj);
    assert_eq!(
        obj,
        json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"n": 1}}}})
    );
}

#[test]
fn additional_properties_schema_prunes_values_and_false_drops_keys() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {
            "byName": {"type": "object", "additionalProperties": {
                "type": "object", "properties": {"port": {"type": "integer"}}
            }},
            "closed": {"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}}},
            "open": {"type": "object", "additionalProperties": true},
        }
    }));
    let mut obj = json!({"spec": {
        "byName": {"x": {"port": 1, "junk": 2}},
        "closed": {"a": "1", "b": "2"},
        "open": {"any": {"thing": 1}},
    }});
    s.default_and_prune(&mut obj);
    assert_eq!(
        obj,
        json!({"spec": {"byName": {"x": {"port": 1}}, "closed": {"a": "1"}, "open": {"any": {"thing": 1}}}})
    );
}

#[test]
fn prune_walks_array_items() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {"list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}}}
    }));
    let mut obj = json!({"spec": {"list": [{"a": "1", "b": 2}, {"c": 3}]}});
    s.default_and_prune(&mut obj);
    assert_eq!(obj, json!({"spec": {"list": [{"a": "1"}, {}]}}));
}

// ---------- defaulting ----------

#[test]
fn defaults_fill_absent_fields_recursively_but_not_present_ones() {
    let s = root_with_spec(json!({
        "type": "object",
        "default": {},
        "properties": {
            "tls": {
                "type": "object",
                "default": {},
                "properties": {
                    "issuerRef": {"type": "object", "properties": {
                        "kind": {"type": "string", "default": "Issuer"},
                        "apiGroup": {"type": "string", "default": "cert-manager.io"},
                    }},
                    "port": {"type": "integer", "default": 3306},
                }
            },
            "replicas": {"type": "integer", "default": 1},
        }
    }));
    let mut empty = json!({"kind": "MySQL"});
    s.default_and_prune(&mut empty);
    assert_eq!(
        empty,
        json!({"kind": "MySQL", "spec": {"replicas": 1, "tls": {"port": 3306}}})
    );

    let mut partial =
        json!({"spec": {"replicas": 3, "tls": {"issuerRef": {"kind": "ClusterIssuer"}}}});
    s.default_and_prune(&mut partial);
    assert_eq!(
        partial,
        json!({"spec": {"replicas": 3, "tls": {"port": 3306, "issuerRef": {"kind": "ClusterIssuer", "apiGroup": "cert-manager.io"}}}})
    );
}

#[test]
fn defaults_apply_inside_items_and_additional_properties() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {
            "list": {"type": "array", "items": {"type": "object", "properties": {"mode": {"type": "string", "default": "rw"}}}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"on": {"type": "boolean", "default": true}}}},
        }
    }));
    let mut obj =
        json!({"spec": {"list": [{}, {"mode": "ro"}], "map": {"a": {}, "b": {"on": false}}}});
    s.default_and_prune(&mut obj);
    assert_eq!(
        obj,
        json!({"spec": {"list": [{"mode": "rw"}, {"mode": "ro"}], "map": {"a": {"on": true}, "b": {"on": false}}}})
    );
}

#[test]
fn nulls_are_defaulted_dropped_or_kept_by_nullable() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {
            "withDefault": {"type": "string", "default": "d"},
            "plain": {"type": "string"},
            "nullable": {"type": "string", "nullable": true},
        }
    }));
    let mut obj = json!({"spec": {"withDefault": null, "plain": null, "nullable": null}});
    s.default_and_prune(&mut obj);
    assert_eq!(obj, json!({"spec": {"withDefault": "d", "nullable": null}}));
    assert!(s.validate(&obj, None).is_empty());
}

#[test]
fn defaults_are_pruned_before_defaulting_so_unknown_input_cannot_block_them() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {"a": {"type": "string", "default": "x"}}
    }));
    let mut obj = json!({"spec": {"b": "unknown"}});
    s.default_and_prune(&mut obj);
    assert_eq!(obj, json!({"spec": {"a": "x"}}));
}

// ---------- validation keywords ----------

fn scalar_schema() -> StructuralSchema {
    root_with_spec(json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 9},
            "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1, "exclusiveMaximum": true},
            "step": {"type": "integer", "multipleOf": 5},
            "on": {"type": "boolean"},
            "when": {"type": "string", "format": "date-time"},
            "blob": {"type": "string", "format": "byte"},
            "port": {"x-kubernetes-int-or-string": true},
            "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "opt": {"type": "string", "nullable": true},
        }
    }))
}

#[test]
fn valid_object_has_no_errors() {
    let s = scalar_schema();
    let spec = json!({
        "name": "abc", "replicas": 3, "ratio": 0.5, "step": 10, "on": true,
        "when": "2024-01-02T03:04:05Z", "blob": "aGVsbG8=", "port": "http",
        "tags": ["a"], "labels": {"x": "y"}, "opt": null,
    });
    assert_eq!(errors_for(&s, spec), Vec::<String>::new());
}

#[test]
fn wrong_types_are_type_invalid_with_kube_wording() {
    let s = scalar_schema();
    let errors = s.validate(
        &json!({"spec": {"name": "abc", "replicas": "3", "on": 1, "labels": {"x": 1}}}),
        None,
    );
    assert_eq!(
        texts(&errors),
        vec![
            "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            "spec.labels.x: Invalid value: \"integer\": spec.labels.x in body must be of type string: \"integer\"",
            "spec.on: Invalid value: \"integer\": spec.on in body must be of type boolean: \"integer\"",
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
        ]
    );
    assert!(
        errors
            .iter()
            .filter(|e| e.path != "<nil>")
            .all(|e| e.kind == FieldErrorKind::TypeInvalid)
    );
}

#[test]
fn integer_accepts_whole_floats_only_and_number_accepts_integers() {
    let s = scalar_schema();
    assert_eq!(
        errors_for(&s, json!({"name": "abc", "replicas": 2.0, "ratio": 0.25})),
        Vec::<String>::new()
    );
    let errors = errors_for(&s, json!({"name": "abc", "replicas": 2.5}));
    assert!(errors.contains(&"spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\"".to_owned()));
}

#[test]
fn required_fields_report_the_full_path() {
    let s = scalar_schema();
    assert_eq!(
        errors_for(&s, json!({})),
        vec![
            "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            "spec.name: Required value",
        ]
    );
}

#[test]
fn string_length_and_pattern() {
    let s = scalar_schema();
    assert_eq!(
        errors_for(&s, json!({"name": "AB"})),
        vec![
            "spec.name: Invalid value: \"AB\": spec.name in body should be at least 3 chars long",
            "spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'",
        ]
    );
    let too_long = errors_for(&s, json!({"name": "abcdef"}));
    assert!(
        too_long.contains(&"spec.name: Too long: may not be more than 5 bytes".to_owned()),
        "{too_long:?}"
    );
    // maxLength counts characters, not bytes.
    assert_eq!(
        errors_for(&s, json!({"name": "ééééé"})),
        vec!["spec.name: Invalid value: \"ééééé\": spec.name in body should match '^[a-z]+$'"]
    );
}

#[test]
fn numeric_bounds_and_multiple_of() {
    let s = scalar_schema();
    assert_eq!(
        errors_for(
            &s,
            json!({"name": "abc", "replicas": 0, "ratio": 1, "step": 7})
        ),
        vec![
            "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1",
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
            "spec.step: Invalid value: 7: spec.step in body should be a multiple of 5",
        ]
    );
    assert_eq!(
        errors_for(&s, json!({"name": "abc", "replicas": 10, "ratio": 0})),
        vec![
            "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0",
            "spec.replicas: Invalid value: 10: spec.replicas in body should be less than or equal to 9",
        ]
    );
}

#[test]
fn array_sizes_and_item_schema() {
    let s = scalar_schema();
    assert_eq!(
        errors_for(&s, json!({"name": "abc", "tags": []})),
        vec!["spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"]
    );
    let errors = errors_for(&s, json!({"name": "abc", "tags": ["a", "b", 3]}));
    assert!(
        errors.contains(&"spec.tags: Too many: 3: must have at most 2 items".to_owned()),
        "{errors:?}"
    );
    assert!(errors.contains(&"spec.tags[2]: Invalid value: \"integer\": spec.tags[2] in body must be of type string: \"integer\"".to_owned()), "{errors:?}");
}

#[test]
fn formats_date_time_and_byte() {
    let s = scalar_schema();
    assert_eq!(
        errors_for(
            &s,
            json!({"name": "abc", "when": "yesterday", "blob": "not base64!"})
        ),
        vec![
            "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            "spec.blob: Invalid value: \"not base64!\": spec.blob in body must be of type byte: \"not base64!\"",
            "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
        ]
    );
    assert_eq!(
        errors_for(
            &s,
            json!({"name": "abc", "when": "2024-01-02T03:04:05.123+02:00", "port": 8080})
        ),
        Vec::<String>::new()
    );
}

#[test]
fn int_or_string_rejects_other_types() {
    let s = scalar_schema();
    let errors = errors_for(&s, json!({"name": "abc", "port": true}));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("spec.port: Invalid value: \"boolean\"")),
        "{errors:?}"
    );
}

#[test]
fn null_in_non_nullable_field_is_a_type_error() {
    let s = scalar_schema();
    let errors = s.validate(&json!({"spec": {"name": null}}), None);
    assert!(texts(&errors).contains(&"spec.name: Invalid value: \"null\": spec.name in body must be of type string: \"null\"".to_owned()));
}

#[test]
fn enum_violation_matches_kube_message_exactly() {
    let s = mysql_schema();
    let errors = s.validate(
        &json!({"spec": {"tls": {"issuerRef": {"name": "ca", "kind": "Foo"}}}}),
        None,
    );
    let enum_error = errors
        .iter()
        .find(|e| e.kind == FieldErrorKind::NotSupported)
        .unwrap();
    assert_eq!(enum_error.path, "spec.tls.issuerRef.kind");
    assert_eq!(
        enum_error.message,
        "Unsupported value: \"Foo\": supported values: \"Issuer\", \"ClusterIssuer\""
    );
    // The enum error blocks CEL, so the rule's own message does not appear.
    assert!(
        !texts(&errors)
            .iter()
            .any(|t| t.contains("kind must be Issuer"))
    );
}

#[test]
fn list_set_and_map_duplicates_are_rejected() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {
            "names": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "certificates": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["alias"],
                "items": {"type": "object", "properties": {"alias": {"type": "string"}, "secretName": {"type": "string"}}}
            },
        }
    }));
    let errors = s.validate(
        &json!({"spec": {
            "names": ["a", "b", "a"],
            "certificates": [{"alias": "server", "secretName": "x"}, {"alias": "client"}, {"alias": "server", "secretName": "y"}],
        }}),
        None,
    );
    assert_eq!(
        texts(&errors),
        vec![
            "spec.certificates[2]: Duplicate value: {\"alias\":\"server\"}",
            "spec.names[2]: Duplicate value: \"a\"",
        ]
    );
    assert!(errors.iter().all(|e| e.kind == FieldErrorKind::Duplicate));
    assert!(s.validate(&json!({"spec": {"names": ["a", "b"], "certificates": [{"alias": "a"}, {"alias": "b"}]}}), None).is_empty());
}

// ---------- CEL ----------

#[test]
fn cel_enum_like_rule_passes_and_fails() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {"kind": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.kind in ['Issuer', 'ClusterIssuer']", "message": "bad kind"}]
    }));
    assert!(
        s.validate(&json!({"spec": {"kind": "Issuer"}}), None)
            .is_empty()
    );
    assert_eq!(
        texts(&s.validate(&json!({"spec": {"kind": "Foo"}}), None)),
        vec!["spec: Invalid value: \"object\": bad kind"]
    );
}

#[test]
fn cel_require_ssl_rule_with_has() {
    let s = mysql_schema();
    assert!(s.validate(&json!({"spec": {}}), None).is_empty());
    assert!(
        s.validate(&json!({"spec": {"requireSSL": false}}), None)
            .is_empty()
    );
    assert!(s.validate(&json!({"spec": {"requireSSL": true, "tls": {"issuerRef": {"name": "ca", "kind": "Issuer"}}}}), None).is_empty());
    let errors = s.validate(&json!({"spec": {"requireSSL": true, "tls": {}}}), None);
    assert_eq!(
        texts(&errors),
        vec!["spec: Invalid value: \"object\": requireSSL needs spec.tls.issuerRef"]
    );
    assert_eq!(errors[0].kind, FieldErrorKind::Invalid);
}

#[test]
fn cel_all_exists_one_on_lists() {
    let s = mysql_schema();
    let unique =
        json!({"spec": {"tls": {"certificates": [{"alias": "server"}, {"alias": "client"}]}}});
    assert!(s.validate(&unique, None).is_empty());
    let duplicated =
        json!({"spec": {"tls": {"certificates": [{"alias": "server"}, {"alias": "server"}]}}});
    assert_eq!(
        texts(&s.validate(&duplicated, None)),
        vec!["spec.tls: Invalid value: \"object\": certificate aliases must be unique"]
    );
}

#[test]
fn cel_rule_without_message_uses_kube_default_and_root_rules_use_nil_path() {
    let s = schema(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "integer"}}}},
        "x-kubernetes-validations": [{"rule": "has(self.spec) && has(self.spec.a)"}]
    }));
    assert!(s.validate(&json!({"spec": {"a": 1}}), None).is_empty());
    assert_eq!(
        texts(&s.validate(&json!({"spec": {}}), None)),
        vec!["<nil>: Invalid value: \"object\": failed rule: has(self.spec) && has(self.spec.a)"]
    );
}

#[test]
fn cel_field_path_reason_and_message_expression() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {"tls": {"type": "object", "properties": {"mode": {"type": "string"}}}, "n": {"type": "integer"}},
        "x-kubernetes-validations": [
            {"rule": "!has(self.tls) || has(self.tls.mode)", "message": "mode is required", "fieldPath": ".tls.mode", "reason": "FieldValueRequired"},
            {"rule": "!has(self.n) || self.n < 3", "messageExpression": "'n is ' + string(self.n)", "reason": "FieldValueForbidden"},
            {"rule": "!has(self.tls) || !has(self.tls.mode) || self.tls.mode != 'off'", "fieldPath": ".tls.mode"},
        ]
    }));
    let off = s.validate(&json!({"spec": {"tls": {"mode": "off"}}}), None);
    // The value shown is the type of the rule's level (`spec`, an object), not the target's.
    assert_eq!(
        texts(&off),
        vec![
            "spec.tls.mode: Invalid value: \"object\": failed rule: !has(self.tls) || !has(self.tls.mode) || self.tls.mode != 'off'"
        ]
    );
    let errors = s.validate(&json!({"spec": {"tls": {}, "n": 5}}), None);
    assert_eq!(
        texts(&errors),
        vec![
            "spec: Forbidden: n is 5",
            "spec.tls.mode: Required value: mode is required"
        ]
    );
    assert_eq!(errors[0].kind, FieldErrorKind::Forbidden);
    assert_eq!(errors[1].kind, FieldErrorKind::Required);
}

#[test]
fn cel_transition_rules_are_skipped_on_create_and_enforced_on_update() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {"storageType": {"type": "string", "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "storageType is immutable"}
        ]}}
    }));
    let new = json!({"spec": {"storageType": "Ephemeral"}});
    assert!(s.validate(&new, None).is_empty());
    assert!(s.validate(&new, Some(&new)).is_empty());
    assert_eq!(
        texts(&s.validate(&new, Some(&json!({"spec": {"storageType": "Durable"}})))),
        vec!["spec.storageType: Invalid value: \"string\": storageType is immutable"]
    );
}

#[test]
fn cel_string_functions_are_available() {
    assert_eq!(
        cel_eval_rule(
            "self.name.startsWith('my') && self.name.size() == 4",
            &json!({"name": "mydb"}),
            None
        ),
        Ok(true)
    );
    assert_eq!(
        cel_eval_rule(
            "self.name.matches('^[a-z]+$')",
            &json!({"name": "My"}),
            None
        ),
        Ok(false)
    );
    assert_eq!(
        cel_eval_rule(
            "self.name.lowerAscii() == 'my'",
            &json!({"name": "MY"}),
            None
        ),
        Ok(true)
    );
}

#[test]
fn cel_eval_rule_reports_false_true_and_errors() {
    let issuer = json!({"kind": "Issuer", "name": "ca"});
    assert_eq!(
        cel_eval_rule("self.kind in ['Issuer', 'ClusterIssuer']", &issuer, None),
        Ok(true)
    );
    assert_eq!(
        cel_eval_rule("self.kind == 'ClusterIssuer'", &issuer, None),
        Ok(false)
    );
    assert_eq!(
        cel_eval_rule(
            "has(self.tls) && has(self.tls.issuerRef)",
            &json!({"tls": {}}),
            None
        ),
        Ok(false)
    );
    assert_eq!(
        cel_eval_rule(
            "has(self.tls) && has(self.tls.issuerRef)",
            &json!({"tls": {"issuerRef": {}}}),
            None
        ),
        Ok(true)
    );
    // Reading an absent field is an evaluation error, not `false`, as in kube.
    assert!(cel_eval_rule("self.requireSSL", &json!({}), None).is_err());
    assert!(cel_eval_rule("self.a ===", &json!({}), None).is_err());
    assert_eq!(
        cel_eval_rule("self == oldSelf", &json!(1), Some(&json!(2))),
        Ok(false)
    );
    assert_eq!(cel_eval_rule("self == oldSelf", &json!(1), None), Ok(true));
    let certs = json!({"certificates": [{"alias": "a"}, {"alias": "b"}, {"alias": "a"}]});
    assert_eq!(
        cel_eval_rule(
            "self.certificates.all(c, self.certificates.exists_one(d, d.alias == c.alias))",
            &certs,
            None
        ),
        Ok(false)
    );
    assert_eq!(
        cel_eval_rule("self.certificates.exists(c, c.alias == 'b')", &certs, None),
        Ok(true)
    );
}

#[test]
fn schema_errors_that_do_not_block_still_run_cel() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}},
        "x-kubernetes-validations": [{"rule": "self.name.size() < 3", "message": "short names only"}]
    }));
    assert_eq!(
        texts(&s.validate(&json!({"spec": {"name": "ABCD"}}), None)),
        vec![
            "spec: Invalid value: \"object\": short names only",
            "spec.name: Invalid value: \"ABCD\": spec.name in body should match '^[a-z]+$'",
        ]
    );
}

// ---------- status body ----------

#[test]
fn status_details_single_error_matches_kube() {
    let s = mysql_schema();
    let errors = vec![FieldError::not_supported(
        "spec.tls.issuerRef.kind",
        &json!("Foo"),
        &[json!("Issuer"), json!("ClusterIssuer")],
    )];
    assert!(
        !s.validate(
            &json!({"spec": {"tls": {"issuerRef": {"name": "ca", "kind": "Foo"}}}}),
            None
        )
        .is_empty()
    );
    assert_eq!(
        status_details("MySQL.kubedb.com", "x", &errors),
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "MySQL.kubedb.com \"x\" is invalid: spec.tls.issuerRef.kind: Unsupported value: \"Foo\": supported values: \"Issuer\", \"ClusterIssuer\"",
            "reason": "Invalid",
            "details": {
                "name": "x",
                "group": "kubedb.com",
                "kind": "MySQL",
                "causes": [{
                    "reason": "FieldValueNotSupported",
                    "message": "Unsupported value: \"Foo\": supported values: \"Issuer\", \"ClusterIssuer\"",
                    "field": "spec.tls.issuerRef.kind",
                }]
            },
            "code": 422,
        })
    );
}

#[test]
fn status_details_many_errors_are_sorted_bracketed_and_deduplicated() {
    let s = mysql_schema();
    let errors = s.validate(
        &json!({"spec": {"tls": {"issuerRef": {"kind": "Foo"}}}}),
        None,
    );
    let mut doubled = errors.clone();
    doubled.extend(errors.iter().rev().cloned());
    let status = status_details("MySQL.kubedb.com", "db", &doubled);
    assert_eq!(
        status["message"],
        "MySQL.kubedb.com \"db\" is invalid: [<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation, spec.tls.issuerRef.kind: Unsupported value: \"Foo\": supported values: \"Issuer\", \"ClusterIssuer\", spec.tls.issuerRef.name: Required value]"
    );
    let reasons: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "FieldValueInvalid",
            "FieldValueNotSupported",
            "FieldValueRequired"
        ]
    );
    assert_eq!(
        status_details("Pod", "p", &[])["message"],
        "Pod \"p\" is invalid"
    );
    assert_eq!(status_details("Pod", "p", &[])["details"]["group"], "");
}

// ---------- server-side apply information ----------

#[test]
fn schema_info_reports_list_and_map_types() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {
            "certs": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["alias"],
                "items": {"type": "object", "properties": {
                    "dnsNames": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "subject": {"type": "object", "x-kubernetes-map-type": "atomic"},
                }}},
            "plain": {"type": "array", "items": {"type": "string"}},
            "byName": {"type": "object", "additionalProperties": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}},
        }
    }));
    assert_eq!(
        s.list_type(&["spec", "certs"]),
        ListType::Map(vec!["alias".to_owned()])
    );
    assert_eq!(
        s.list_type(&["spec", "certs", "[]", "dnsNames"]),
        ListType::Set
    );
    assert_eq!(s.list_type(&["spec", "plain"]), ListType::Atomic);
    assert_eq!(s.list_type(&["spec", "byName", "anyKey"]), ListType::Set);
    assert_eq!(s.list_type(&["spec", "unknown"]), ListType::Atomic);
    assert!(s.is_atomic_map(&["spec", "certs", "[]", "subject"]));
    assert!(!s.is_atomic_map(&["spec"]));
}

#[test]
fn go_float_formatting_matches_go_percent_v() {
    use super::errors::go_float;
    assert_eq!(go_float(1.0), "1");
    assert_eq!(go_float(0.5), "0.5");
    assert_eq!(go_float(1e6), "1e+06");
    assert_eq!(go_float(123456.5), "123456.5");
    assert_eq!(go_float(0.00001), "1e-05");
}

#[test]
fn cel_rules_on_array_items_report_the_index() {
    let s = root_with_spec(json!({
        "type": "object",
        "properties": {"certs": {"type": "array", "items": {
            "type": "object",
            "properties": {"alias": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self.alias.size() > 0", "message": "alias must not be empty"}]
        }}}
    }));
    assert_eq!(
        texts(&s.validate(
            &json!({"spec": {"certs": [{"alias": "a"}, {"alias": ""}]}}),
            None
        )),
        vec!["spec.certs[1]: Invalid value: \"object\": alias must not be empty"]
    );
}

#[test]
fn object_meta_lists_are_typed_as_kube_types_them_whatever_the_crd_schema() {
    let s = schema(json!({"type": "object", "properties": {"spec": {"type": "object"}}}));
    assert_eq!(s.list_type(&["metadata", "finalizers"]), ListType::Set);
    assert_eq!(
        s.list_type(&["metadata", "ownerReferences"]),
        ListType::Map(vec!["uid".to_string()])
    );
    assert_eq!(s.list_type(&["spec", "anything"]), ListType::Atomic);
}
