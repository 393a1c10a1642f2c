//! The contract between the dbtls operators, and nothing else: the CRD types of the five kinds
//! (KubeDB-compatible), the subset of cert-manager and PetSet types they use, the names, labels,
//! condition types and reasons, field managers and finalizers both rely on, and the per-kind TLS
//! defaults. One place for each; no client, server or runtime code.
pub mod api;
pub mod certmanager;
pub mod conditions;
pub mod crd;
pub mod duration;
pub mod identity;
pub mod kinds;
pub mod labels;
pub mod monitoring;
pub mod names;
pub mod petset;
pub mod tls;

pub use identity::*;
pub use kinds::{Database, DbKind};
