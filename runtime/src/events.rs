//! Events on a database from an operator's own reporter, shaped so that kube-apiserver's
//! events.k8s.io/v1 validation accepts them: a reason and action of at most 128 bytes and a
//! note of at most 1 KiB (longer ones are cut at a character boundary, with a marker). A failed
//! Event is logged, never a reason to fail the reconcile: the status says the same.
//!
//! Repeats of an Event (same type, reason, action, object and related object within
//! [`SERIES_TTL`]) are one Event with a growing `series`, as kube-rs's `Recorder` does. Unlike
//! it, the recorder here remembers each series by a hash, with the stamp its Event's name ends
//! in and its count (16 bytes), not the whole Event it sent (kube's kept ~14 MB at 1,000
//! databases, a fifth of an operator's heap), sweeps expired series at most once a minute
//! ([`crate::sweep`]) instead of on every publish, sends only the series on a repeat, and
//! starts a new Event when the one it counts on was deleted (Events expire on the API server
//! after an hour by default).
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::sweep::Sweep;

/// events.k8s.io/v1 limits, in bytes (kube-apiserver `ValidateEventCreate`).
pub const NOTE_LIMIT: usize = 1024;
pub const REASON_LIMIT: usize = 128;
pub const ACTION_LIMIT: usize = 128;

/// How long a repeat still counts into the series of the first Event (kube-rs's value).
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

const CUT_MARKER: &str = " …";

/// Publishes Events as one reporter, counting repeats into series. Cheap to clone (one shared
/// series table).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    controller: String,
    instance: String,
    series: Arc<Mutex<SeriesTable>>,
}

/// One series: the Event that counts it (by the stamp its name ends in), how many times it
/// was seen and when last. 16 bytes, no allocation: an operator has a few series per database.
struct Series {
    stamp: u64,
    count: u32,
    /// Seconds since the table's epoch.
    last: u32,
}

struct SeriesTable {
    by_key: HashMap<u64, Series>,
    epoch: Instant,
    sweep: Sweep,
}

impl SeriesTable {
    fn new(now: Instant) -> Self {
        SeriesTable {
            by_key: HashMap::new(),
            epoch: now,
            sweep: Sweep::since(now),
        }
    }

    fn seconds(&self, at: Instant) -> u32 {
        u32::try_from(at.saturating_duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX)
    }

    /// The stamp of the series under `key` and its next count, if it is still open; forgets
    /// expired series first when a sweep is due.
    fn repeat(&mut self, key: u64, now: Instant) -> Option<(u64, u32)> {
        let now_s = self.seconds(now);
        let open = |s: &Series| u64::from(now_s.saturating_sub(s.last)) < SERIES_TTL.as_secs();
        if self.sweep.due(now) {
            self.by_key.retain(|_, s| open(s));
        }
        self.by_key
            .get(&key)
            .filter(|s| open(s))
            .map(|s| (s.stamp, s.count.saturating_add(1)))
    }

    fn record(&mut self, key: u64, stamp: u64, count: u32, now: Instant) {
        let last = self.seconds(now);
        self.by_key.insert(key, Series { stamp, count, last });
    }
}

/// The name of the Event about `object` first sent at `stamp` (nanoseconds since the epoch).
fn event_name(object: &str, stamp: u64) -> String {
    format!("{object}.{stamp:x}")
}

/// What one Event says.
struct Said<'a> {
    warning: bool,
    reason: String,
    action: String,
    note: String,
    regarding: &'a ObjectReference,
    related: Option<ObjectReference>,
}

/// The identity of a series: what kube-rs's `EventKey` holds (the reporter is the recorder's).
fn series_key(said: &Said) -> u64 {
    fn reference(r: &ObjectReference, h: &mut DefaultHasher) {
        (&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid).hash(h);
    }
    let mut h = DefaultHasher::new();
    (said.warning, &said.reason, &said.action).hash(&mut h);
    reference(said.regarding, &mut h);
    said.related.is_some().hash(&mut h);
    if let Some(related) = &said.related {
        reference(related, &mut h);
    }
    h.finish()
}

impl Recorder {
    /// A recorder reporting as `controller` (a qualified name, e.g. `kubedb.com/provisioner`),
    /// with the pod's name as instance when `POD_NAME` is set, else `controller`.
    pub fn new(client: kube::Client, controller: &str) -> Self {
        let instance = std::env::var("POD_NAME")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| controller.to_string());
        Recorder {
            client,
            controller: controller.to_string(),
            instance,
            series: Arc::new(Mutex::new(SeriesTable::new(Instant::now()))),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, SeriesTable> {
        // The table holds counts only: a panic elsewhere leaves it usable.
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn publish(&self, said: Said<'_>) -> Result<(), kube::Error> {
        let namespace = said.regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let key = series_key(&said);
        let now = Instant::now();
        let object = said.regarding.name.as_deref().unwrap_or(&self.controller);
        let repeat = self.table().repeat(key, now);
        if let Some((stamp, count)) = repeat {
            let name = event_name(object, stamp);
            let series = EventSeries {
                count: i32::try_from(count).unwrap_or(i32::MAX),
                last_observed_time: MicroTime(Timestamp::now()),
            };
            let patch = Patch::Merge(serde_json::json!({ "series": series }));
            match events.patch(&name, &PatchParams::default(), &patch).await {
                Ok(_) => {
                    self.table().record(key, stamp, count, now);
                    return Ok(());
                }
                // Expired or deleted on the server: this repeat starts a new Event.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        let at = Timestamp::now();
        let stamp = u64::try_from(at.as_nanosecond()).unwrap_or_default();
        let event = self.first_event(said, at, stamp);
        events.create(&PostParams::default(), &event).await?;
        self.table().record(key, stamp, 1, now);
        Ok(())
    }

    fn first_event(&self, said: Said, now: Timestamp, stamp: u64) -> Event {
        let object = said.regarding.name.as_deref().unwrap_or(&self.controller);
        Event {
            metadata: ObjectMeta {
                namespace: said.regarding.namespace.clone(),
                name: Some(event_name(object, stamp)),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if said.warning { "Warning" } else { "Normal" }.to_string()),
            reason: Some(said.reason),
            action: Some(said.action),
            note: Some(said.note),
            regarding: Some(said.regarding.clone()),
            related: said.related,
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }
}

/// `text` cut to at most `limit` bytes at a character boundary; a cut text ends in " …".
pub fn fit(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit.saturating_sub(CUT_MARKER.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &text[..end])
}

/// Publishes one Event about `regarding`.
pub async fn publish(
    recorder: &Recorder,
    regarding: &ObjectReference,
    warning: bool,
    reason: &str,
    action: &str,
    note: &str,
) {
    publish_related(recorder, regarding, None, warning, reason, action, note).await;
}

/// Publishes one Event about `regarding` that concerns `related` too (a pod of the database):
/// repeats of the same reason are one Event series per related object, so each pod keeps its own.
pub async fn publish_related(
    recorder: &Recorder,
    regarding: &ObjectReference,
    related: Option<ObjectReference>,
    warning: bool,
    reason: &str,
    action: &str,
    note: &str,
) {
    let said = Said {
        warning,
        reason: fit(reason, REASON_LIMIT),
        action: fit(action, ACTION_LIMIT),
        note: fit(note, NOTE_LIMIT),
        regarding,
        related,
    };
    if let Err(error) = recorder.publish(said).await {
        tracing::warn!(%error, reason, object = ?regarding.name, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(kind: &str, name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("kubedb.com/v1".into()),
            kind: Some(kind.into()),
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn said<'a>(regarding: &'a ObjectReference, reason: &str, related: Option<&str>) -> Said<'a> {
        Said {
            warning: false,
            reason: reason.into(),
            action: "Provision".into(),
            note: "a note".into(),
            regarding,
            related: related.map(|p| reference("Pod", p)),
        }
    }

    fn table(now: Instant) -> SeriesTable {
        SeriesTable::new(now)
    }

    #[test]
    fn a_series_is_told_apart_by_reason_object_and_related_object_not_by_note() {
        let db = reference("MySQL", "db");
        let other = reference("MySQL", "other");
        let key = series_key(&said(&db, "Ready", None));
        let mut same = said(&db, "Ready", None);
        same.note = "another note".into();
        assert_eq!(series_key(&same), key, "a new note repeats the series");
        for different in [
            said(&db, "NotReady", None),
            said(&other, "Ready", None),
            said(&db, "Ready", Some("db-0")),
        ] {
            assert_ne!(series_key(&different), key);
        }
        assert_ne!(
            series_key(&said(&db, "Ready", Some("db-0"))),
            series_key(&said(&db, "Ready", Some("db-1"))),
            "each pod keeps its own series"
        );
        let mut warning = said(&db, "Ready", None);
        warning.warning = true;
        assert_ne!(series_key(&warning), key);
    }

    #[tokio::test]
    async fn an_event_is_named_after_its_object_and_the_nanosecond_first_seen() {
        let client = kube::Client::try_from(kube::Config::new(
            "http://127.0.0.1:1".parse().unwrap_or_default(),
        ));
        let Ok(client) = client else {
            panic!("a client for no server");
        };
        let recorder = Recorder::new(client, "kubedb.com/test");
        let db = reference("MySQL", "db");
        let at =
            Timestamp::from_nanosecond(1_700_000_000_123_456_789).unwrap_or(Timestamp::UNIX_EPOCH);
        let stamp = u64::try_from(at.as_nanosecond()).unwrap_or_default();
        let first = recorder.first_event(said(&db, "Ready", None), at, stamp);
        // kube's own naming (`<object>.<nanoseconds in hex>`): a repeat rebuilds the name from
        // the stamp alone to patch this Event (testbed: `apiserver_events`).
        assert_eq!(first.metadata.name.as_deref(), Some("db.17979cfe3d85cd15"));
        assert_eq!(event_name("db", stamp), "db.17979cfe3d85cd15");
    }

    #[test]
    fn a_repeat_within_the_ttl_counts_on_the_first_event() {
        let start = Instant::now();
        let mut t = table(start);
        assert_eq!(t.repeat(7, start), None, "nothing seen yet");
        t.record(7, 11, 1, start);
        let later = start + SERIES_TTL - Duration::from_secs(1);
        assert_eq!(t.repeat(7, later), Some((11, 2)));
        t.record(7, 11, 2, later);
        // The window runs from the last repeat, not from the first Event.
        let much_later = later + SERIES_TTL - Duration::from_secs(1);
        assert_eq!(t.repeat(7, much_later), Some((11, 3)));
        assert_eq!(t.repeat(8, much_later), None, "another series");
    }

    #[test]
    fn an_expired_series_starts_again_and_is_forgotten_by_the_next_sweep() {
        let start = Instant::now();
        let mut t = table(start);
        t.record(1, 21, 4, start);
        t.record(2, 22, 1, start + SERIES_TTL);
        let after = start + SERIES_TTL + Duration::from_secs(1);
        // A sweep is due (the last was at `start`): the expired series is dropped.
        assert_eq!(t.repeat(1, after), None);
        assert_eq!(t.by_key.len(), 1, "swept: only the fresh series remains");
        assert_eq!(t.repeat(2, after), Some((22, 2)));
    }

    #[test]
    fn sweeps_run_at_most_once_a_minute() {
        let start = Instant::now();
        let mut t = table(start);
        t.record(1, 31, 1, start);
        let expired = start + SERIES_TTL;
        t.sweep = Sweep::since(expired - Duration::from_secs(1));
        assert_eq!(t.repeat(2, expired), None);
        assert_eq!(t.by_key.len(), 1, "no sweep within a minute of the last");
        assert_eq!(
            t.repeat(1, expired),
            None,
            "but an expired series is not repeated"
        );
        assert_eq!(t.repeat(2, expired + crate::sweep::EVERY), None);
        assert!(t.by_key.is_empty(), "the sweep a minute later forgets it");
    }

    #[test]
    fn short_texts_are_kept_whole() {
        assert_eq!(fit("ready", NOTE_LIMIT), "ready");
        let exact = "x".repeat(NOTE_LIMIT);
        assert_eq!(fit(&exact, NOTE_LIMIT), exact);
    }

    #[test]
    fn long_texts_are_cut_in_bytes_at_a_character_boundary() {
        // 'é' is two bytes: 600 of them are 1,200 bytes, which kube-apiserver refuses.
        let long = "é".repeat(600);
        let cut = fit(&long, NOTE_LIMIT);
        assert!(cut.len() <= NOTE_LIMIT, "{} bytes", cut.len());
        assert!(cut.ends_with(CUT_MARKER));
        assert!(cut.len() > NOTE_LIMIT - 8, "cut no more than needed");
        let ascii = fit(&"y".repeat(5000), REASON_LIMIT);
        assert_eq!(ascii.len(), REASON_LIMIT);
    }
}
