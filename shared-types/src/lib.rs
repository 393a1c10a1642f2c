//! The contract between the dbtls operators: the CRD types of the five kinds, the subset of
//! cert-manager and PetSet types used, the names, labels, condition types and field managers both
//! operators rely on, and the per-kind TLS defaults. One place for each.
pub mod api;
pub mod contract;
pub mod kinds;

pub use kinds::{Database, DbKind};
pub mod certmanager;
pub mod crd;
pub mod duration;
pub mod petset;
pub mod runtime;
pub mod tls;
