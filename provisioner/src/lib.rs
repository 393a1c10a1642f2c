//! The dbtls provisioner: for each KubeDB-compatible database it creates the auth Secret, the
//! Services and — once every TLS Secret the ops-manager asked cert-manager for exists — the
//! workload with the certificates mounted and the server configured for TLS.
//!
//! Each reconcile ([`reconcile`]) runs [`observe`] (watch caches) -> [`plan`] (pure: writes,
//! deletes, status, next look) -> [`apply`] -> status (the runtime's writer); a database being
//! deleted runs [`deletion`]. The desired objects are built by the pure [`desired`] builders.
pub mod apply;
pub mod backend;
pub mod caches;
pub mod context;
pub mod controller;
pub mod deletion;
pub mod desired;
pub mod facts;
pub mod observe;
pub mod plan;
pub mod pods;
pub mod reconcile;
pub mod status;
pub mod tls_secrets;
pub mod validate;
pub mod workload;
