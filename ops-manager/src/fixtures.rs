//! Test fixtures: databases of any kind from small YAML documents.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dbtls_contract::api::{MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore, TlsView};
use dbtls_contract::{Database, DbKind};

use crate::db::DbRef;

/// Parses `yaml` as the kind it names, fills uid/namespace defaults and calls `f` with the
/// database's identity and TLS view (None without `spec.tls`).
pub fn with_db<R>(yaml: &str, f: impl FnOnce(&DbRef, Option<TlsView<'_>>) -> R) -> R {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let kind = DbKind::from_kind(value["kind"].as_str().unwrap()).unwrap();
    fn go<K: Database, R>(
        value: serde_yaml::Value,
        f: impl FnOnce(&DbRef, Option<TlsView<'_>>) -> R,
    ) -> R {
        let mut db: K = serde_yaml::from_value(value).unwrap();
        let meta = db.meta_mut();
        meta.namespace.get_or_insert_with(|| "demo".into());
        meta.uid.get_or_insert_with(|| "uid-1".into());
        let db_ref = DbRef::of(&db).unwrap();
        f(&db_ref, db.tls())
    }
    match kind {
        DbKind::MySQL => go::<MySQL, R>(value, f),
        DbKind::PerconaXtraDB => go::<PerconaXtraDB, R>(value, f),
        DbKind::ProxySQL => go::<ProxySQL, R>(value, f),
        DbKind::Singlestore => go::<Singlestore, R>(value, f),
        DbKind::MSSQLServer => go::<MSSQLServer, R>(value, f),
    }
}

/// A minimal TLS database of `kind` named `name` with issuer `ca` (kind Issuer), plus `extra_tls`
/// appended under `spec.tls` (indented by four spaces, e.g. a `certificates:` list).
pub fn tls_db(kind: DbKind, name: &str, extra_tls: &str) -> String {
    let profile = kind.profile();
    let version = profile.versions[0].0;
    format!(
        "apiVersion: {}\nkind: {}\nmetadata:\n  name: {name}\n  namespace: demo\nspec:\n  version: \"{version}\"\n  tls:\n    issuerRef:\n      apiGroup: cert-manager.io\n      kind: Issuer\n      name: ca\n{extra_tls}",
        profile.api_version, profile.kind
    )
}
