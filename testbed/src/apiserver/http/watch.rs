//! Watch streams: replay from history or synthetic ADDED events, then live events from the
//! resource's broadcast channel, filtered by namespace and selectors, with bookmarks, timeouts,
//! and kube's 410 handling.
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::super::events;
use super::super::resources::ResourceDef;
use super::super::selectors::Selectors;
use super::super::status::ApiError;
use super::super::store::{EventType, StoredEvent};
use super::Shared;
use super::table;

/// What one watch request asked for.
pub struct WatchRequest {
    pub def: ResourceDef,
    pub version: String,
    pub namespace: Option<String>,
    pub selectors: Selectors,
    pub resource_version: Option<u64>,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    pub as_table: bool,
}

/// How often an open stream checks whether `drop_watches_every` wants it closed.
const WATCH_DROP_CHECK: Duration = Duration::from_millis(100);

/// Serialises one event line.
fn line(type_: &str, object: &Value) -> Bytes {
    let mut out = format!("{{\"type\":\"{type_}\",\"object\":").into_bytes();
    // Serialising a Value cannot fail.
    let _ = serde_json::to_writer(&mut out, object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn present(req: &WatchRequest, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(req.def.api_version(&req.version));
    if req.as_table {
        let meta = json!({"resourceVersion": o.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
        return table::table(&req.def, &[o], meta, "PartialObjectMetadata");
    }
    o
}

fn bookmark(req: &WatchRequest, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": req.def.kind, "apiVersion": req.def.api_version(&req.version), "metadata": meta}),
    )
}

/// A stored object as the watched resource serves it (events.k8s.io Events are stored as core
/// Events); selectors apply to this form.
fn viewed(req: &WatchRequest, stored: &Arc<Value>) -> Arc<Value> {
    if events::is_events_view(&req.def) {
        Arc::new(events::view(&req.def, stored).into_owned())
    } else {
        stored.clone()
    }
}

/// The event (if any) a filtered watcher sees for a stored event.
fn translate(req: &WatchRequest, e: &StoredEvent) -> Option<(&'static str, Arc<Value>)> {
    if let Some(ns) = &req.namespace
        && &e.namespace != ns
    {
        return None;
    }
    let object = viewed(req, &e.object);
    let now = req.selectors.matches(&object);
    let before = e
        .old
        .as_ref()
        .is_some_and(|o| req.selectors.matches(&viewed(req, o)));
    match e.type_ {
        EventType::Added => now.then_some(("ADDED", object)),
        EventType::Deleted => (before || now).then_some(("DELETED", object)),
        EventType::Modified => match (before, now) {
            (true, true) => Some(("MODIFIED", object)),
            (false, true) => Some(("ADDED", object)),
            (true, false) => Some(("DELETED", object)),
            (false, false) => None,
        },
    }
}

/// Starts the stream. Registration (snapshot/replay + subscribe) happens under the store lock so
/// no event is missed or duplicated.
pub fn start(shared: Arc<Shared>, req: WatchRequest) -> Response {
    let gr = events::storage_resource(&req.def);
    let mut first: Vec<Bytes> = Vec::new();
    let since;
    let rx: Option<broadcast::Receiver<Arc<StoredEvent>>>;
    {
        let mut store = shared.lock_store();
        let current = store.current_rv();
        let from = if req.send_initial_events || req.resource_version.is_none_or(|rv| rv == 0) {
            None
        } else {
            req.resource_version
        };
        match store.subscribe(&gr, from) {
            Ok((replay, r)) => {
                rx = Some(r);
                match from {
                    Some(rv) => {
                        since = rv;
                        for e in replay {
                            if let Some((t, o)) = translate(&req, &e) {
                                first.push(line(t, &present(&req, &o)));
                            }
                        }
                    }
                    None => {
                        since = current;
                        for (_, o) in store.iter(&gr, req.namespace.as_deref()) {
                            let o = viewed(&req, o);
                            if req.selectors.matches(&o) {
                                first.push(line("ADDED", &present(&req, &o)));
                            }
                        }
                        if req.send_initial_events && req.bookmarks {
                            first.push(bookmark(&req, current, true));
                        }
                    }
                }
            }
            Err(oldest) => {
                rx = None;
                since = 0;
                let rv = req.resource_version.unwrap_or(0);
                let err = ApiError::gone(format!("too old resource version: {rv} ({oldest})"));
                shared.faults.note_watch_expired();
                first.push(line("ERROR", &err.to_status()));
            }
        }
    }
    let (tx, out) = mpsc::channel::<Bytes>(256);
    let timeout = req.timeout.unwrap_or_else(|| {
        let (lo, hi) = shared.config.default_watch_timeout;
        let secs = rand::rng().random_range(lo.as_secs()..=hi.as_secs().max(lo.as_secs()));
        Duration::from_secs(secs)
    });
    tokio::spawn(pump(shared, req, first, rx, since, timeout, tx));
    let stream = futures::stream::unfold(out, |mut out| async move {
        out.recv().await.map(|b| (Ok::<_, Infallible>(b), out))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

async fn pump(
    shared: Arc<Shared>,
    req: WatchRequest,
    first: Vec<Bytes>,
    rx: Option<broadcast::Receiver<Arc<StoredEvent>>>,
    since: u64,
    timeout: Duration,
    tx: mpsc::Sender<Bytes>,
) {
    for b in first {
        if tx.send(b).await.is_err() {
            return;
        }
    }
    let Some(mut rx) = rx else { return };
    let mut last_rv = since;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(shared.config.bookmark_interval);
    ticker.tick().await;
    // The drop interval is re-read while the stream runs, so switching the fault on also
    // closes streams that were opened before it.
    let opened = tokio::time::Instant::now();
    let mut drop_check = tokio::time::interval(WATCH_DROP_CHECK);
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(e) => {
                    if e.rv <= last_rv {
                        continue;
                    }
                    last_rv = e.rv;
                    if let Some((t, o)) = translate(&req, &e)
                        && tx.send(line(t, &present(&req, &o))).await.is_err()
                    {
                        return;
                    }
                }
                // Lagging or closed: end the stream; the client re-watches from its last RV.
                Err(_) => return,
            },
            _ = ticker.tick(), if req.bookmarks => {
                if !send_bookmark(&shared, &req, &mut rx, &mut last_rv, &tx).await {
                    return;
                }
            }
            _ = &mut deadline => {
                if req.bookmarks {
                    send_bookmark(&shared, &req, &mut rx, &mut last_rv, &tx).await;
                }
                return;
            }
            _ = drop_check.tick() => {
                if shared
                    .faults
                    .watch_drop_interval()
                    .is_some_and(|every| opened.elapsed() >= every)
                {
                    shared.faults.note_watch_dropped();
                    return;
                }
            }
            _ = shutdown.changed() => return,
            _ = tx.closed() => return,
        }
    }
}

/// Sends a BOOKMARK at the store's current resourceVersion after first delivering every event
/// up to it (they are already in the channel), so the bookmark never overtakes an event.
async fn send_bookmark(
    shared: &Shared,
    req: &WatchRequest,
    rx: &mut broadcast::Receiver<Arc<StoredEvent>>,
    last_rv: &mut u64,
    tx: &mpsc::Sender<Bytes>,
) -> bool {
    let current = shared.lock_store().current_rv();
    loop {
        match rx.try_recv() {
            Ok(e) => {
                if e.rv <= *last_rv {
                    continue;
                }
                *last_rv = e.rv;
                if let Some((t, o)) = translate(req, &e)
                    && tx.send(line(t, &present(req, &o))).await.is_err()
                {
                    return false;
                }
            }
            Err(broadcast::error::TryRecvError::Empty) => break,
            Err(_) => return false,
        }
    }
    *last_rv = (*last_rv).max(current);
    tx.send(bookmark(req, *last_rv, false)).await.is_ok()
}
