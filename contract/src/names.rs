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

/// The workload (StatefulSet or PetSet).
pub fn workload(db: &str) -> String {
    db.to_string()
}

/// The default TLS Secret (and Certificate) name for `alias`: `<db>-<alias>-cert`.
pub fn default_cert_secret(db: &str, alias: &str) -> String {
    format!("{db}-{alias}-cert")
}

/// The ConfigMap or Secret holding a generated server configuration file (e.g. `mssql.conf`).
pub fn config_secret(db: &str) -> String {
    format!("{db}-config")
}
