//! The dbtls ops-manager: issues one cert-manager Certificate per certificate alias of every
//! KubeDB-compatible database with `spec.tls`, adopts the issued Secrets, and reports
//! `IssuerReady` / `CertificatesReady` on the database (DESIGN.md steps 5-6).
//!
//! Each reconcile runs `dereference -> validate -> plan -> apply -> update_status`; the pure steps
//! ([`validate`], [`certificate`], [`plan`]) are unit-tested from YAML fixtures.
pub mod certificate;
pub mod db;
pub mod diff;
pub mod plan;
pub mod validate;

pub mod apply;
pub mod cleanup;
pub mod context;
pub mod controller;
pub mod crds;
pub mod dereference;
pub mod events;
pub mod finalizer;
#[cfg(test)]
mod fixtures;
pub mod metrics;
pub mod reconcile;
pub mod status;
