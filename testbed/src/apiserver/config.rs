//! Server settings.
use std::time::Duration;

/// How the test API server behaves; `Default` is what the end-to-end tests use.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// How many watch events are kept for replay; a watch from an older resourceVersion gets
    /// 410 Gone (kube-apiserver's watch cache keeps a comparable window).
    pub history_size: usize,
    /// How often an idle watch with `allowWatchBookmarks=true` receives a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Watch timeout range when the client sets no `timeoutSeconds` (kube picks 30-60 min).
    pub default_watch_timeout: (Duration, Duration),
    /// Per-resource broadcast buffer; a watcher that falls this far behind is disconnected and
    /// re-watches from its last resourceVersion.
    pub watch_buffer: usize,
    /// Authorize requests with the stored RBAC objects as kube-apiserver's RBAC authorizer does
    /// (403 otherwise). Off by default so tests that are not about permissions need no RBAC
    /// setup; `admin` and `system:masters` are allowed everything either way.
    pub enforce_rbac: bool,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        ApiServerConfig {
            history_size: 20_000,
            bookmark_interval: Duration::from_secs(30),
            default_watch_timeout: (Duration::from_secs(300), Duration::from_secs(600)),
            watch_buffer: 8192,
            enforce_rbac: false,
        }
    }
}
