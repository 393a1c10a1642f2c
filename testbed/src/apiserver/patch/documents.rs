//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902), with kube-apiserver's status codes.
//! The `json-patch` crate (the one kube-rs uses) does the document work.
use serde_json::Value;

/// Applies an RFC 7386 JSON merge patch (`application/merge-patch+json`): objects merge
/// recursively, `null` deletes a key, anything else (lists included) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Why a JSON patch failed, with the status kube-apiserver answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not a JSON patch (not a list, unknown `op`, missing `path`/`value`/`from`):
    /// kube decodes the patch first and answers 400 BadRequest.
    #[error("{0}")]
    Malformed(String),
    /// An operation cannot apply (missing path, out-of-range index, failed `test`, move into
    /// itself): kube answers 422 Unprocessable Entity (reason `Invalid`), with a message close to
    /// evanphx/json-patch's. The document is left unchanged.
    #[error("{0}")]
    NotApplicable(String),
}

impl PatchError {
    /// The HTTP status code kube-apiserver answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            PatchError::Malformed(_) => 400,
            PatchError::NotApplicable(_) => 422,
        }
    }
}

/// Applies an RFC 6902 JSON patch (`application/json-patch+json`) atomically: on error `target`
/// is unchanged.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let operations: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::Malformed(e.to_string()))?;
    json_patch::patch(target, &operations).map_err(|e| {
        let op = operations
            .0
            .get(e.operation)
            .map_or("unknown", |op| match op {
                json_patch::PatchOperation::Add(_) => "add",
                json_patch::PatchOperation::Remove(_) => "remove",
                json_patch::PatchOperation::Replace(_) => "replace",
                json_patch::PatchOperation::Move(_) => "move",
                json_patch::PatchOperation::Copy(_) => "copy",
                json_patch::PatchOperation::Test(_) => "test",
            });
        let path = e.path.as_str();
        PatchError::NotApplicable(match e.kind {
            json_patch::PatchErrorKind::TestFailed => {
                format!("testing value {path} failed: test failed")
            }
            json_patch::PatchErrorKind::CannotMoveInsideItself => {
                format!(
                    "move operation does not apply: cannot move {path} into one of its children"
                )
            }
            json_patch::PatchErrorKind::InvalidFromPointer => {
                format!("{op} operation does not apply: doc is missing from path: {path:?}")
            }
            // InvalidPointer, and kinds a later json-patch adds.
            _ => {
                format!(
                    "{op} operation does not apply: doc is missing path: {path:?}: missing value"
                )
            }
        })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386_examples() {
        // RFC 7386 appendix A, a selection.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
            (
                json!({"a": {"b": "c", "d": "e"}}),
                json!({"a": {"d": null}}),
                json!({"a": {"b": "c"}}),
            ),
        ];
        for (mut target, patch, expected) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected, "patch {patch}");
        }
    }

    #[test]
    fn json_patch_applies_every_operation_with_pointer_escapes() {
        let mut doc =
            json!({"metadata": {"annotations": {"a/b": "1", "c~d": "2"}}, "list": [1, 2]});
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/metadata/annotations/a~1b", "value": "1"},
                {"op": "replace", "path": "/metadata/annotations/c~0d", "value": "3"},
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "add", "path": "/list/0", "value": 0},
                {"op": "remove", "path": "/list/1"},
                {"op": "copy", "from": "/list", "path": "/copy"},
                {"op": "move", "from": "/metadata/annotations/a~1b", "path": "/moved"},
                {"op": "add", "path": "/nothing", "value": null}
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "metadata": {"annotations": {"c~d": "3"}},
                "list": [0, 2, 3], "copy": [0, 2, 3], "moved": "1", "nothing": null
            })
        );
    }

    #[test]
    fn failing_json_patch_is_422_and_leaves_the_document_unchanged() {
        let original = json!({"spec": {"replicas": 1}});
        let cases = [
            (
                json!([{"op": "replace", "path": "/spec/replicas", "value": 2},
                    {"op": "test", "path": "/spec/replicas", "value": 1}]),
                "testing value /spec/replicas failed",
            ),
            (
                json!([{"op": "remove", "path": "/spec/missing"}]),
                "doc is missing path",
            ),
            (
                json!([{"op": "replace", "path": "/spec/missing", "value": 1}]),
                "doc is missing path",
            ),
            (
                json!([{"op": "add", "path": "/nope/deeper", "value": 1}]),
                "doc is missing path",
            ),
            (
                json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}]),
                "cannot move",
            ),
        ];
        for (patch, message) in cases {
            let mut doc = original.clone();
            let err = json_patch(&mut doc, &patch).unwrap_err();
            assert_eq!(err.http_status(), 422, "{patch}");
            assert!(err.to_string().contains(message), "{err} for {patch}");
            assert_eq!(doc, original);
        }
    }

    #[test]
    fn malformed_json_patch_is_400() {
        for patch in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "/a"}]),
            json!([{"op": "move", "path": "/a"}]),
        ] {
            let err = json_patch(&mut json!({}), &patch).unwrap_err();
            assert_eq!(err.http_status(), 400, "{patch}");
        }
    }
}
