//! Field errors and the 422 `Status` body, formatted exactly as k8s.io/apimachinery's
//! `field.Error` and `errors.NewInvalid` do, so clients parsing messages see the real thing.
use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Value, json};

/// `field.ErrorType` of apimachinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldErrorKind {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    /// A value of the wrong JSON type or string format (`FieldValueTypeInvalid`).
    TypeInvalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
}

impl FieldErrorKind {
    /// The `StatusCause.reason` (`CauseType`).
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
        }
    }

    /// The human label that starts the error body (`ErrorType.String()`).
    pub fn label(self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }

    /// Kinds whose body never shows the offending value (apimachinery `ErrorBody`).
    fn omits_value(self) -> bool {
        matches!(
            self,
            Self::Required | Self::Forbidden | Self::TooLong | Self::Internal
        )
    }
}

/// One validation failure. `message` is the body without the field, as in
/// `StatusCause.message` (e.g. `Unsupported value: "Foo": supported values: "Issuer"`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldError {
    /// Dotted field path, e.g. `spec.tls.issuerRef.kind`; `<nil>` for object-level notes.
    pub path: String,
    pub kind: FieldErrorKind,
    pub message: String,
}

impl FieldError {
    /// Builds an error the way `field.<Kind>(path, value, detail)` does.
    pub fn new(path: &str, kind: FieldErrorKind, value: Option<&Value>, detail: &str) -> Self {
        let mut message = kind.label().to_owned();
        if !kind.omits_value()
            && let Some(value) = value
        {
            message.push_str(": ");
            message.push_str(&go_value(value));
        }
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(detail);
        }
        Self {
            path: path.to_owned(),
            kind,
            message,
        }
    }

    pub fn required(path: &str, detail: &str) -> Self {
        Self::new(path, FieldErrorKind::Required, None, detail)
    }

    pub fn invalid(path: &str, value: &Value, detail: &str) -> Self {
        Self::new(path, FieldErrorKind::Invalid, Some(value), detail)
    }

    pub fn type_invalid(path: &str, value: &Value, detail: &str) -> Self {
        Self::new(path, FieldErrorKind::TypeInvalid, Some(value), detail)
    }

    pub fn duplicate(path: &str, value: &Value) -> Self {
        Self::new(path, FieldErrorKind::Duplicate, Some(value), "")
    }

    pub fn forbidden(path: &str, detail: &str) -> Self {
        Self::new(path, FieldErrorKind::Forbidden, None, detail)
    }

    /// `field.NotSupported`: the allowed values are quoted whatever their type.
    pub fn not_supported(path: &str, value: &Value, allowed: &[Value]) -> Self {
        let quoted: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Value::String(s) => quote(s),
                other => quote(&other.to_string()),
            })
            .collect();
        let detail = if quoted.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(path, FieldErrorKind::NotSupported, Some(value), &detail)
    }

    /// `field.TooLong` as of Kubernetes 1.30+.
    pub fn too_long(path: &str, max: u64) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self::new(
            path,
            FieldErrorKind::TooLong,
            None,
            &format!("may not be more than {max} {unit}"),
        )
    }

    /// `field.TooMany(path, actual, max)`.
    pub fn too_many(path: &str, actual: usize, max: u64) -> Self {
        Self::new(
            path,
            FieldErrorKind::TooMany,
            Some(&Value::from(actual)),
            &format!("must have at most {max} items"),
        )
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Renders a bad value like apimachinery's `ErrorBody`: strings quoted, numbers and booleans
/// bare, `null` as `"null"`, anything else as JSON.
pub(crate) fn go_value(value: &Value) -> String {
    match value {
        Value::Null => quote("null"),
        Value::String(s) => quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => n.as_f64().map_or_else(|| n.to_string(), go_float),
        },
        other => other.to_string(),
    }
}

/// Go's `%q` for the strings that occur in practice (JSON escaping agrees for printable text).
pub(crate) fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Go's `%v` of a float64 (`%g`, shortest digits): exponent form below 1e-4 or from 1e6.
pub(crate) fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e6 {
        return format!("{f:.0}");
    }
    let sci = format!("{f:e}");
    let exponent = sci
        .split_once('e')
        .and_then(|(_, e)| e.parse::<i32>().ok())
        .unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let (mantissa, _) = sci.split_once('e').unwrap_or((&sci, ""));
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        f.to_string()
    }
}

/// The 422 `Status` kube-apiserver returns for an invalid object (`errors.NewInvalid`).
///
/// `group_kind` is the qualified kind as kube prints it, e.g. `MySQL.kubedb.com` (`MySQL` for
/// the core group). Causes are sorted so responses are deterministic; the message lists each
/// distinct error once, in that order, bracketed when there is more than one.
pub fn status_details(group_kind: &str, name: &str, errors: &[FieldError]) -> Value {
    let (kind, group) = group_kind.split_once('.').unwrap_or((group_kind, ""));
    let mut sorted = errors.to_vec();
    sorted.sort();
    sorted.dedup();
    let causes: Vec<Value> = sorted
        .iter()
        .map(|e| json!({"reason": e.kind.reason(), "message": e.message, "field": e.path}))
        .collect();
    let mut seen = BTreeSet::new();
    let texts: Vec<String> = sorted
        .iter()
        .map(ToString::to_string)
        .filter(|t| seen.insert(t.clone()))
        .collect();
    let message = match texts.as_slice() {
        [] => format!("{group_kind} {} is invalid", quote(name)),
        [one] => format!("{group_kind} {} is invalid: {one}", quote(name)),
        many => format!(
            "{group_kind} {} is invalid: [{}]",
            quote(name),
            many.join(", ")
        ),
    };
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": {"name": name, "group": group, "kind": kind, "causes": causes},
        "code": 422,
    })
}
