//! "Is the live object already what we would apply?" — so that a converged system makes zero
//! writes. The desired object must be a subset of the live one: every field we set is present
//! with the same value (the API server adds defaults and other managers add fields; those are
//! ignored). Lists must have the same length and match element-wise, because we own them whole.
use serde_json::Value;

pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => is_subset(dv, lv),
            // `null`, `{}` and `[]` that we send are not stored.
            None => is_empty(dv),
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| is_subset(dv, lv))
        }
        (Value::Array(d), Value::Null) => d.is_empty(),
        (Value::Number(d), Value::Number(l)) => d.as_f64() == l.as_f64(),
        _ => desired == live,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(o) => o.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// [`is_subset`] for typed objects; a serialisation failure counts as "different" (apply).
pub fn up_to_date<D: serde::Serialize, L: serde::Serialize>(desired: &D, live: &L) -> bool {
    match (serde_json::to_value(desired), serde_json::to_value(live)) {
        (Ok(d), Ok(l)) => is_subset(&d, &l),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_foreign_fields_are_ignored() {
        let desired = json!({"spec": {"ports": [{"port": 3306}], "type": "ClusterIP"}});
        let live = json!({"spec": {"ports": [{"port": 3306, "protocol": "TCP"}], "type": "ClusterIP", "clusterIP": "10.0.0.1"}, "status": {}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn changed_values_and_list_lengths_are_differences() {
        let live = json!({"spec": {"replicas": 1, "args": ["a", "b"]}});
        assert!(!is_subset(&json!({"spec": {"replicas": 3}}), &live));
        assert!(!is_subset(&json!({"spec": {"args": ["a"]}}), &live));
        assert!(!is_subset(&json!({"spec": {"new": "x"}}), &live));
        assert!(is_subset(&json!({"spec": {"empty": {}}}), &live));
    }
}
