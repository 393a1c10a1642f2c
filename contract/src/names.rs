//! Names of the objects the operators create for a database.

/// The auth Secret the provisioner creates when `spec.authSecret.name` is not given.
pub fn auth_secret(db: &str) -> String {
    format!("{db}-auth")
}

/// The primary Service.
pub fn primary_service(db: &str) -> String {
    db.to_string()
}

/// The governing headless Service of the workload.
pub fn governing_service(db: &str) -> String {
    format!("{db}-pods")
}

/// The Service of the metrics exporter (KubeDB's stats Service), while `spec.monitor` asks for one.
pub fn stats_service(db: &str) -> String {
    format!("{db}-stats")
}

/// The workload (StatefulSet or PetSet).
pub fn workload(db: &str) -> String {
    db.to_string()
}

/// A SingleStore cluster's aggregator or leaf workload (`role`): `<db>[-<suffix>]-<role>`, as
/// KubeDB's `AggregatorPetSet`/`LeafPetSet`.
pub fn singlestore_node(db: &str, suffix: Option<&str>, role: &str) -> String {
    match suffix.filter(|s| !s.is_empty()) {
        Some(suffix) => format!("{db}-{suffix}-{role}"),
        None => format!("{db}-{role}"),
    }
}

/// The default TLS Secret (and Certificate) name for `alias`: `<db>-<alias>-cert`.
pub fn default_cert_secret(db: &str, alias: &str) -> String {
    format!("{db}-{alias}-cert")
}

/// The ConfigMap or Secret holding a generated server configuration file (e.g. `mssql.conf`).
pub fn config_secret(db: &str) -> String {
    format!("{db}-config")
}

/// The Secret holding the CAs the database's servers trust (`ca.crt`, one or more PEM
/// certificates), written by the ops-manager and mounted by the provisioner wherever a server
/// reads its CA file. During an issuer change it holds the old and the new CA.
pub fn ca_bundle(db: &str) -> String {
    format!("{db}-ca-bundle")
}

/// The Certificate (and Secret) the ops-manager issues from a new issuer before switching to
/// it: its `ca.crt` is the new CA, and its key pair shows whether a server trusts that CA yet.
pub fn ca_probe(db: &str) -> String {
    format!("{db}-ca-probe")
}
