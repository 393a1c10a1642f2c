//! Follows every database and workload through watches (as `kubectl get -w` would), so the
//! benchmark learns when each database converged without polling the API server: polling
//! thousands of objects would itself be load the operators are measured against.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use dbtls_contract::DbKind;
use dbtls_contract::conditions::{ConditionStatus, ConditionType};
use dbtls_contract::petset::PetSet;
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt as _};
use serde_json::Value;

/// What the bench knows about one database.
#[derive(Debug, Clone, Default)]
pub struct Track {
    /// When the bench sent the create.
    pub created: Option<Instant>,
    /// When its workload (StatefulSet or PetSet of the same name) was first seen.
    pub workload: Option<Instant>,
    pub certificates_ready: bool,
    pub tls_secrets_ready: bool,
    /// When the last of the three (workload, CertificatesReady, TLSSecretsReady) held.
    pub converged: Option<Instant>,
    /// When `status.phase` first read `Ready` (the workload reported ready replicas too): the
    /// provisioner's last status write for this database.
    pub ready: Option<Instant>,
    /// The serial every pod serves, from `TLSServing` True ("… (serial X)").
    pub serving: Option<String>,
    /// Set when the bench renews every certificate: what was served then, and when a different
    /// serial was first served by every pod.
    pub renewal: Option<Renewal>,
}

#[derive(Debug, Clone, Default)]
pub struct Renewal {
    pub from: Option<String>,
    pub served: Option<Instant>,
}

impl Track {
    fn update_converged(&mut self, now: Instant) {
        if self.converged.is_none()
            && self.workload.is_some()
            && self.certificates_ready
            && self.tls_secrets_ready
        {
            self.converged = Some(now);
        }
    }
}

/// `(namespace, name)`; database names are unique across kinds in the bench.
pub type Key = (String, String);

/// Shared convergence state, fed by the watch tasks.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    tracks: Arc<Mutex<HashMap<Key, Track>>>,
}

/// With `DBTLS_BENCH_TRACE=<part of a name>`, prints every version of a matching database's
/// status to stderr (phase, then each condition's type, status and reason, then the messages):
/// where the status writes of a database go.
fn trace_status(key: &Key, obj: &DynamicObject) {
    let Ok(part) = std::env::var("DBTLS_BENCH_TRACE") else {
        return;
    };
    if part.is_empty() || !key.1.contains(&part) {
        return;
    }
    let status = obj.data.get("status");
    let phase = status
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .unwrap_or("-");
    let conditions = status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let field = |c: &Value, f: &str| c.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let states: Vec<String> = conditions
        .iter()
        .map(|c| {
            format!(
                "{}={}/{}",
                field(c, "type"),
                field(c, "status"),
                field(c, "reason")
            )
        })
        .collect();
    let messages: Vec<String> = conditions.iter().map(|c| field(c, "message")).collect();
    eprintln!(
        "trace {}/{} rv {} phase {phase}: {} | {}",
        key.0,
        key.1,
        obj.resource_version().unwrap_or_default(),
        states.join(" "),
        messages.join(" | ")
    );
}

fn condition_true(obj: &Value, type_: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(type_)
                    && c.get("status").and_then(Value::as_str)
                        == Some(ConditionStatus::True.as_str())
            })
        })
}

/// The serial of `TLSServing` True's message, "N pods serve the current certificate (serial X)".
fn served_serial(obj: &Value) -> Option<String> {
    let conditions = obj.pointer("/status/conditions")?.as_array()?;
    let serving = conditions.iter().find(|c| {
        c.get("type").and_then(Value::as_str) == Some(ConditionType::TlsServing.as_str())
            && c.get("status").and_then(Value::as_str) == Some(ConditionStatus::True.as_str())
    })?;
    let message = serving.get("message")?.as_str()?;
    let (_, rest) = message.split_once("(serial ")?;
    rest.split_once(')').map(|(serial, _)| serial.to_string())
}

impl Tracker {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Track>> {
        self.tracks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the bench is about to create `key`.
    pub fn created(&self, key: Key, at: Instant) {
        self.lock().entry(key).or_default().created = Some(at);
    }

    fn saw_database(&self, obj: &DynamicObject) {
        let key = (obj.namespace().unwrap_or_default(), obj.name_any());
        let now = Instant::now();
        trace_status(&key, obj);
        let mut tracks = self.lock();
        let track = tracks.entry(key).or_default();
        track.certificates_ready |=
            condition_true(&obj.data, ConditionType::CertificatesReady.as_str());
        track.tls_secrets_ready |=
            condition_true(&obj.data, ConditionType::TlsSecretsReady.as_str());
        if obj.data.pointer("/status/phase").and_then(Value::as_str) == Some("Ready") {
            track.ready.get_or_insert(now);
        }
        track.update_converged(now);
        track.serving = served_serial(&obj.data);
        if let Some(renewal) = track.renewal.as_mut()
            && renewal.served.is_none()
            && track.serving.is_some()
            && track.serving != renewal.from
        {
            renewal.served = Some(now);
        }
    }

    fn saw_workload(&self, namespace: String, name: String) {
        let now = Instant::now();
        let mut tracks = self.lock();
        let track = tracks.entry((namespace, name)).or_default();
        track.workload.get_or_insert(now);
        track.update_converged(now);
    }

    pub fn get(&self, key: &Key) -> Option<Track> {
        self.lock().get(key).cloned()
    }

    /// `(converged, ready, of)` among the databases the bench created.
    pub fn progress(&self) -> (usize, usize, usize) {
        let tracks = self.lock();
        let created = tracks.values().filter(|t| t.created.is_some());
        let (mut converged, mut ready, mut total) = (0, 0, 0);
        for t in created {
            total += 1;
            converged += usize::from(t.converged.is_some());
            ready += usize::from(t.converged.is_some() && t.ready.is_some());
        }
        (converged, ready, total)
    }

    /// `(serving, of)`: the created databases whose every pod serves a current certificate.
    pub fn serving_progress(&self) -> (usize, usize) {
        let tracks = self.lock();
        let created: Vec<&Track> = tracks.values().filter(|t| t.created.is_some()).collect();
        let serving = created.iter().filter(|t| t.serving.is_some()).count();
        (serving, created.len())
    }

    /// Notes, for every created database, the serial served now: the renewal is done for it
    /// once every pod serves another.
    pub fn start_renewal(&self) {
        for track in self.lock().values_mut().filter(|t| t.created.is_some()) {
            track.renewal = Some(Renewal {
                from: track.serving.clone(),
                served: None,
            });
        }
    }

    /// `(renewed, of)` since [`Tracker::start_renewal`].
    pub fn renewal_progress(&self) -> (usize, usize) {
        let tracks = self.lock();
        let renewals: Vec<&Renewal> = tracks.values().filter_map(|t| t.renewal.as_ref()).collect();
        let served = renewals.iter().filter(|r| r.served.is_some()).count();
        (served, renewals.len())
    }

    /// When each renewed database's pods first all served the new serial.
    pub fn renewal_served(&self) -> Vec<Instant> {
        self.lock()
            .values()
            .filter_map(|t| t.renewal.as_ref().and_then(|r| r.served))
            .collect()
    }

    /// The latest convergence time among the created databases.
    pub fn last_converged(&self) -> Option<Instant> {
        self.lock()
            .values()
            .filter(|t| t.created.is_some())
            .filter_map(|t| t.converged)
            .max()
    }

    /// Starts the watches (one per database kind, one per workload API); they run until the
    /// returned handles are aborted.
    pub fn watch(&self, client: &kube::Client) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for kind in DbKind::ALL {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
            let tracker = self.clone();
            tasks.push(tokio::spawn(async move {
                let stream = watcher::watcher(api, watcher::Config::default());
                for_each_applied(stream, |obj| tracker.saw_database(&obj)).await;
            }));
        }
        tasks.push(self.watch_workloads::<StatefulSet>(client));
        tasks.push(self.watch_workloads::<PetSet>(client));
        tasks
    }

    fn watch_workloads<K>(&self, client: &kube::Client) -> tokio::task::JoinHandle<()>
    where
        K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
        K: serde::de::DeserializeOwned,
    {
        let api: Api<PartialObjectMeta<K>> = Api::all(client.clone());
        let tracker = self.clone();
        tokio::spawn(async move {
            let stream = watcher::watcher(api, watcher::Config::default());
            for_each_applied(stream, |meta: PartialObjectMeta<K>| {
                tracker.saw_workload(meta.namespace().unwrap_or_default(), meta.name_any());
            })
            .await;
        })
    }
}

/// Calls `seen` for every object a watch stream reports present; watch errors are retried by
/// the watcher itself (after a short pause, so a missing API does not spin).
async fn for_each_applied<K>(
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    mut seen: impl FnMut(K),
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(obj) | Event::InitApply(obj)) => seen(obj),
            Ok(_) => {}
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_served_serial_is_read_from_tls_serving_true_only() {
        let status = |status: &str, message: &str| {
            json!({"status": {"conditions": [
                {"type": "CertificatesReady", "status": "True", "message": "(serial NOPE)"},
                {"type": "TLSServing", "status": status, "message": message},
            ]}})
        };
        let ok = status("True", "3 pods serve the current certificate (serial 0A1B)");
        assert_eq!(served_serial(&ok).as_deref(), Some("0A1B"));
        let partly = status(
            "False",
            "1 of 3 pods serve the current certificate (serial 0A1B); pod db-1 presents serial OLD",
        );
        assert_eq!(served_serial(&partly), None);
        assert_eq!(served_serial(&status("True", "no serial here")), None);
        assert_eq!(served_serial(&json!({})), None);
    }
}
