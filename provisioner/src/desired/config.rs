//! The config Secret `<db>-config`, for kinds whose server reads a generated file.
use std::collections::BTreeMap;

use dbtls_contract::names;
use k8s_openapi::api::core::v1::Secret;

use super::child_meta;
use crate::facts::DbFacts;

/// The config Secret holding `files`, or None when the kind needs no file.
pub fn config_secret(db: &DbFacts<'_>, files: &BTreeMap<String, String>) -> Option<Secret> {
    if files.is_empty() {
        return None;
    }
    Some(Secret {
        metadata: child_meta(db, names::config_secret(&db.name)),
        type_: Some("Opaque".to_string()),
        string_data: None,
        data: Some(
            files
                .iter()
                .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    })
}
