//! The dbtls ops-manager: issues one cert-manager Certificate per certificate alias of every
//! KubeDB-compatible database with `spec.tls`, adopts the issued Secrets, and reports
//! `IssuerReady` / `CertificatesReady` on the database.
//!
//! Each reconcile ([`reconcile`]) runs [`validate`] -> [`observe`] (watch caches) -> [`plan`]
//! (pure) -> [`apply`] -> status (the runtime's writer); [`cleanup`] handles deletion and TLS
//! removal. The pure steps ([`validate`], [`certificate`], [`plan`]) are unit-tested from YAML.
pub mod ahead_of_cache;
pub mod apply;
pub mod caches;
pub mod certificate;
pub mod cleanup;
pub mod context;
pub mod controller;
pub mod db;
pub mod finalizer;
#[cfg(test)]
mod fixtures;
pub mod metrics;
pub mod observe;
pub mod ops_request;
pub mod plan;
pub mod reconcile;
pub mod serving;
pub mod trust;
pub mod validate;
