//! An in-memory API server that behaves like kube-apiserver where the operators, kube-rs and
//! kubectl depend on it. See `docs/testbed.md`.
pub mod patch;
pub mod schema;

mod auth;
mod config;
mod crd;
pub mod event_validation;
mod events;
mod faults;
mod gc;
mod http;
mod kinds;
mod patching;
pub mod qualified_name;
mod rbac;
mod request_log;
mod resources;
mod selectors;
mod server;
pub mod standalone;
mod status;
mod store;
mod validation;
mod writes;

pub use config::ApiServerConfig;
pub use faults::{FaultCounts, FaultInjector};
pub use rbac::UserInfo;
pub use request_log::{RequestLog, RequestRecord, Verb};
pub use server::TestApiServer;
