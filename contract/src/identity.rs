//! Who writes: each operator's server-side apply field manager, Event reporter and finalizer.

/// Server-side apply field manager of the provisioner.
pub const PROVISIONER_MANAGER: &str = "kubedb-provisioner";
/// Server-side apply field manager of the ops-manager.
pub const OPS_MANAGER_MANAGER: &str = "kubedb-ops-manager";
/// Event reporter names (`reportingController`): events.k8s.io/v1 requires a qualified name
/// (an optional DNS-subdomain prefix, `/`, and at most 63 alphanumeric, `-`, `_` or `.`).
pub const PROVISIONER_REPORTER: &str = "kubedb.com/provisioner";
pub const OPS_MANAGER_REPORTER: &str = "kubedb.com/ops-manager";

/// Finalizer the provisioner puts on every database, so that `deletionPolicy` is carried out
/// (and DoNotTerminate can refuse) before Kubernetes garbage-collects the owned objects.
pub const PROVISIONER_FINALIZER: &str = "kubedb.com/provisioner";

/// Finalizer the ops-manager puts on every database with TLS, so that the TLS Secrets are released
/// (or, for WipeOut, deleted) according to `deletionPolicy` before garbage collection runs.
pub const OPS_MANAGER_FINALIZER: &str = "kubedb.com/ops-manager";
