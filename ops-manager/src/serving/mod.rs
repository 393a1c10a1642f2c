//! What the running servers present: probes of a pod's TLS, by protocol.
pub mod probe;
