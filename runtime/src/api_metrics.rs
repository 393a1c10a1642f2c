//! The operator's own API traffic as Prometheus series, so that its cost on a real cluster can
//! be read off `/metrics`: every request by verb, resource and status code (a tower layer on
//! the kube client), and every watch restart by resource.
use std::sync::LazyLock;
use std::task::{Context, Poll};

use axum::http::{Method, Request, Response, Uri};
use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus::{IntCounterVec, Opts, Registry};

/// `dbtls_api_requests_total{verb, resource, code}`.
static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "dbtls_api_requests_total",
            "Requests this operator sent to the Kubernetes API, by verb, resource and HTTP status code (code=\"error\" when no answer came).",
        ),
        &["verb", "resource", "code"],
    )
    .unwrap_or_else(|e| unreachable!("valid metric definition: {e}"))
});

/// `dbtls_watch_restarts_total{resource}`.
static WATCH_RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "dbtls_watch_restarts_total",
            "Watches that failed and were started again (after backoff), by resource.",
        ),
        &["resource"],
    )
    .unwrap_or_else(|e| unreachable!("valid metric definition: {e}"))
});

/// Adds both series to the operator's registry.
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    registry.register(Box::new(REQUESTS.clone()))?;
    registry.register(Box::new(WATCH_RESTARTS.clone()))
}

/// The resource label of an `Api`'s URL (`/api/v1/namespaces/ns/pods` → `pods`).
pub fn resource_of(api_url: &str) -> String {
    api_url.rsplit('/').next().unwrap_or_default().to_string()
}

/// Counts a watch of `resource` that failed and will be started again.
pub fn watch_restarted(resource: &str) {
    WATCH_RESTARTS.with_label_values(&[resource]).inc();
}

/// The Kubernetes verb and resource (`pods`, `pods/eviction`, `mysqls/status`) of a request.
pub fn classify(method: &Method, uri: &Uri, apply: bool) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/<group>/<version>/...; then [namespaces/<ns>/]<resource>[/<name>[/<sub>]]
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return ("nonresource", String::new()),
    };
    let rest = match rest {
        ["namespaces", _ns, more @ ..] if !more.is_empty() => more,
        other => other,
    };
    let (resource, named) = match rest {
        [] => return ("nonresource", String::new()),
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    let verb = match *method {
        Method::GET if is_watch(uri) => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if apply => "apply",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

/// Whether a request is a watch (`?watch=true`).
pub fn is_watch(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

/// A tower layer that counts every request of the client it wraps.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountRequests;

impl<S> tower::Layer<S> for CountRequests {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Counted<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<Request<B>> for Counted<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let apply = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
        let (verb, resource) = classify(request.method(), request.uri(), apply);
        let answered = self.inner.call(request);
        async move {
            let result = answered.await;
            let code = match &result {
                Ok(response) => response.status().as_str().to_string(),
                Err(_) => "error".to_string(),
            };
            REQUESTS
                .with_label_values(&[verb, resource.as_str(), code.as_str()])
                .inc();
            result
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn requests_are_named_by_verb_and_resource() {
        let cases = [
            (
                "GET",
                "/api/v1/namespaces/ns/pods?labelSelector=a%3Db",
                false,
                ("list", "pods"),
            ),
            (
                "GET",
                "/api/v1/namespaces/ns/pods?watch=true&resourceVersion=5",
                false,
                ("watch", "pods"),
            ),
            (
                "GET",
                "/api/v1/namespaces/ns/secrets/db-auth",
                false,
                ("get", "secrets"),
            ),
            (
                "POST",
                "/api/v1/namespaces/ns/pods/db-0/eviction",
                false,
                ("create", "pods/eviction"),
            ),
            (
                "PATCH",
                "/apis/kubedb.com/v1/namespaces/ns/mysqls/db/status",
                true,
                ("apply", "mysqls/status"),
            ),
            (
                "PATCH",
                "/apis/kubedb.com/v1/namespaces/ns/mysqls/db",
                false,
                ("patch", "mysqls"),
            ),
            (
                "GET",
                "/apis/cert-manager.io/v1/clusterissuers",
                false,
                ("list", "clusterissuers"),
            ),
            ("GET", "/api/v1/namespaces/ns", false, ("get", "namespaces")),
            (
                "DELETE",
                "/api/v1/namespaces/ns/secrets/s",
                false,
                ("delete", "secrets"),
            ),
            ("GET", "/version", false, ("nonresource", "")),
        ];
        for (method, uri, apply, expected) in cases {
            let method: Method = method.parse().unwrap();
            let uri: Uri = uri.parse().unwrap();
            let (verb, resource) = classify(&method, &uri, apply);
            assert_eq!((verb, resource.as_str()), expected, "{method} {uri}");
        }
    }
}
