//! A bound on the requests an operator has in flight at once, watches apart
//! (`--max-requests-in-flight`). kube-rs speaks HTTP/1.1, one request per connection at a time:
//! every request in flight is a TLS connection of its own, with its read buffers, kept in the
//! client's pool after it is answered. Without a bound, the reconciles of all kinds at once
//! (`--concurrency` per kind) decide how many there are, and so the load the operator puts on
//! a slow API server. Watches are long-lived and few (one per watched resource and namespace):
//! they take no place, which they would keep for as long as they run.
//!
//! A request holds its place until its answer's body is read to the end or dropped, so the
//! bound is on connections busy, not only on requests waiting for headers.
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api_metrics::is_watch;

/// The tower layer; see the module documentation.
#[derive(Clone, Debug)]
pub struct LimitInFlight {
    places: Arc<Semaphore>,
}

impl LimitInFlight {
    /// At most `max` requests (not watches) in flight; at least one.
    pub fn new(max: usize) -> Self {
        Self {
            places: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

impl<S> tower::Layer<S> for LimitInFlight {
    type Service = Limited<S>;
    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            places: self.places.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Limited<S> {
    inner: S,
    places: Arc<Semaphore>,
}

impl<S, B, RB> tower::Service<Request<B>> for Limited<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = Response<Held<RB>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let places = (!is_watch(request.uri())).then(|| self.places.clone());
        // The client's futures send nothing until polled: the request waits here for a place.
        let answered = self.inner.call(request);
        async move {
            let place = match places {
                // Never closed: the semaphore lives as long as the layer.
                Some(places) => places.acquire_owned().await.ok(),
                None => None,
            };
            let response = answered.await?;
            Ok(response.map(|body| Held { body, place }))
        }
        .boxed()
    }
}

/// A response body that keeps its request's place until it is read to the end or dropped.
#[derive(Debug)]
pub struct Held<B> {
    body: B,
    place: Option<OwnedSemaphorePermit>,
}

impl<B> http_body::Body for Held<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.place = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tower::{Layer, Service, ServiceExt};

    /// A server that answers after `gate` opens, counting the requests it has at once.
    #[derive(Clone, Default)]
    struct Server {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
        gate: Arc<tokio::sync::Notify>,
    }

    impl Service<Request<()>> for Server {
        type Response = Response<String>;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<'static, Result<Response<String>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            let server = self.clone();
            async move {
                let now = server.now.fetch_add(1, Ordering::SeqCst) + 1;
                server.most.fetch_max(now, Ordering::SeqCst);
                server.gate.notified().await;
                server.now.fetch_sub(1, Ordering::SeqCst);
                Ok(Response::new("answer".to_string()))
            }
            .boxed()
        }
    }

    fn request(uri: &str) -> Request<()> {
        Request::builder().uri(uri).body(()).unwrap()
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn requests_wait_for_a_place_and_watches_do_not() {
        let server = Server::default();
        let limited = LimitInFlight::new(2).layer(server.clone());
        let mut answers = Vec::new();
        for _ in 0..5 {
            let mut client = limited.clone();
            let call = client
                .ready()
                .await
                .unwrap()
                .call(request("/api/v1/namespaces/ns/secrets/a"));
            // Read (here: taken out of the response), each answer gives its place back.
            answers.push(tokio::spawn(async move {
                call.await.map(|response| response.into_body().body)
            }));
        }
        until("two requests reach the server", || {
            server.now.load(Ordering::SeqCst) == 2
        })
        .await;
        // A watch is not held back by the requests waiting for a place.
        let mut client = limited.clone();
        let watch = client
            .ready()
            .await
            .unwrap()
            .call(request("/api/v1/secrets?watch=true&resourceVersion=1"));
        let watch = tokio::spawn(watch);
        until("the watch reaches the server", || {
            server.now.load(Ordering::SeqCst) == 3
        })
        .await;
        // Answered and read, each request gives its place to the next.
        let mut read = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while read < 6 {
            assert!(tokio::time::Instant::now() < deadline, "every answer read");
            server.gate.notify_waiters();
            tokio::time::sleep(Duration::from_millis(1)).await;
            read = answers.iter().filter(|a| a.is_finished()).count()
                + usize::from(watch.is_finished());
        }
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap(), "answer");
        }
        assert_eq!(
            server.most.load(Ordering::SeqCst),
            3,
            "two requests and the watch at most, never the five requests at once"
        );
    }

    #[tokio::test]
    async fn a_place_is_kept_until_the_body_is_read_or_dropped() {
        use http_body::Body;
        let places = Arc::new(Semaphore::new(2));
        let held = |places: &Arc<Semaphore>| Held {
            body: "answer".to_string(),
            place: Some(places.clone().try_acquire_owned().unwrap()),
        };
        let mut read = held(&places);
        let dropped = held(&places);
        assert_eq!(places.available_permits(), 0, "kept while unread");
        let first = futures::future::poll_fn(|cx| Pin::new(&mut read).poll_frame(cx)).await;
        assert!(first.is_some_and(|f| f.is_ok()));
        assert_eq!(places.available_permits(), 0, "kept while partly read");
        let end = futures::future::poll_fn(|cx| Pin::new(&mut read).poll_frame(cx)).await;
        assert!(end.is_none());
        assert_eq!(places.available_permits(), 1, "given back at the end");
        drop(dropped);
        assert_eq!(places.available_permits(), 2, "given back when dropped");
    }
}
