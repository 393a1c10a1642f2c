//! The dbtls provisioner: for each KubeDB-compatible database it creates the auth Secret, the
//! Services and — once every TLS Secret the ops-manager asked cert-manager for exists — the
//! workload with the certificates mounted and the server configured for TLS (DESIGN.md §1, §6).
//!
//! Pipeline per database (`reconcile`): dereference -> validate -> build -> apply -> update_status.
//! The builders (`build`) and validators (`validate`, `tls_secrets`) are pure and unit-tested.
pub mod context;
pub mod deletion;
pub mod desired;
pub mod diff;
pub mod facts;
pub mod reconcile;
pub mod startup;
pub mod status;
pub mod tls_secrets;
pub mod validate;
pub mod workload_choice;
