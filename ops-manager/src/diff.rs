//! "Does the live object already say what we would apply?" Comparing only the fields we set lets
//! the ops-manager skip writes on a converged system (zero writes while idle), whatever other
//! managers (cert-manager, the user) added to the same object.

use serde_json::Value;

/// Whether every field of `desired` is present in `live` with the same value. Objects are
/// compared key by key (extra live keys are fine); lists and scalars must be equal.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want
            .iter()
            .all(|(key, value)| have.get(key).is_some_and(|h| is_subset(value, h))),
        (want, have) => want == have,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_live_fields_do_not_count_as_a_difference() {
        let desired = json!({"spec": {"a": 1, "b": {"c": [1, 2]}}});
        let live = json!({"spec": {"a": 1, "b": {"c": [1, 2], "d": true}, "e": "x"}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn changed_values_and_lists_count() {
        let desired = json!({"spec": {"b": {"c": [1, 2]}}});
        assert!(!is_subset(&desired, &json!({"spec": {"b": {"c": [2, 1]}}})));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"b": {"c": [1, 2, 3]}}})
        ));
        assert!(!is_subset(&desired, &json!({"spec": {}})));
        assert!(!is_subset(&json!({"a": "x"}), &json!({"a": "y"})));
    }
}
