//! During an issuer change: which pods trust the new CA yet. A pod is asked with a TLS
//! handshake that presents the probe certificate (issued by the new issuer); a server that
//! does not trust its CA refuses the handshake and is told to reload its files (its CA file, the
//! bundle, holds the new CA once kubelet has refreshed it).
use std::time::{Duration, Instant};

use dbtls_contract::labels;

use super::act::PROBE_TIMEOUT;
use super::memory::{DbMemory, TrustMemo};
use super::probe::{self, ClientIdentity};
use super::{AdminLogin, Serving, engine, key, observe};
use crate::caches::Stores;
use crate::db::DbRef;

/// A CA certificate, known by its serial number (hex).
pub type Serial = String;

/// How many of the database's pods accept a client certificate from a CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodsTrust {
    pub trusting: usize,
    pub pods: usize,
}

/// How often a pod that does not trust the new CA yet is told to reload.
const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// The probe certificate's key pair and the CA that issued it.
#[derive(Clone, Debug)]
pub struct ProbeCertificate {
    pub ca_serial: Serial,
    pub ca_pem: Vec<u8>,
    pub identity: ClientIdentity,
}

impl Serving {
    /// How many of the database's pods that can be asked (ready, with an address) were last
    /// seen trusting `ca_serial`; None when none can be (no pods yet, an engine this operator
    /// cannot probe or that only reads its files at start): a pod that starts later reads the
    /// CA bundle as it is then.
    pub fn pods_trust(
        &self,
        stores: &Stores,
        db: &DbRef,
        ca_serial: Option<&str>,
    ) -> Option<PodsTrust> {
        engine::probe_port(db.kind)?;
        // An engine that takes certificates only at start is restarted onto the re-issued
        // ones, and reads the CA bundle (both CAs by then) as it starts.
        if self.way(db) == super::plan::Way::Restart {
            return None;
        }
        let askable = askable(stores, db);
        if askable.is_empty() {
            return None;
        }
        let memory = self.memory.lock();
        let trust = memory
            .get(&key(db))
            .and_then(|m| m.trust.as_ref())
            .filter(|t| Some(t.ca_serial.as_str()) == ca_serial);
        let trusting = askable
            .iter()
            .filter(|v| trust.is_some_and(|t| t.done.contains(&v.uid)))
            .count();
        Some(PodsTrust {
            trusting,
            pods: askable.len(),
        })
    }

    /// Asks every ready pod not yet known to trust the probe's CA; reloads those that refuse.
    pub async fn check_trust(
        &self,
        client: &kube::Client,
        stores: &Stores,
        db: &DbRef,
        admin: &AdminLogin<'_>,
        probe_certificate: &ProbeCertificate,
    ) {
        let check = Check {
            identity: &probe_certificate.identity,
            ca_serial: &probe_certificate.ca_serial,
            want: Want::Accept,
        };
        self.converge(client, stores, db, admin, &check).await;
    }

    /// Keeps the client certificate of the CA an issuer change replaces (read while the change
    /// waits, before anything is re-issued), to check afterwards that no pod trusts it any more.
    pub fn remember_retired(&self, db: &DbRef, ca_serial: &str, identity: ClientIdentity) {
        let mut memory = self.memory.lock();
        let entry = memory.entry(key(db)).or_default();
        if entry.retired.as_deref().map(|(m, _)| m.ca_serial.as_str()) != Some(ca_serial) {
            entry.retired = Some(Box::new((
                TrustMemo {
                    ca_serial: ca_serial.to_string(),
                    ..TrustMemo::default()
                },
                identity,
            )));
        }
    }

    /// The remembered retired client certificate and its CA serial.
    pub fn retired(&self, db: &DbRef) -> Option<(Serial, ClientIdentity)> {
        let memory = self.memory.lock();
        memory
            .get(&key(db))
            .and_then(|m| m.retired.as_deref())
            .map(|(m, i)| (m.ca_serial.clone(), i.clone()))
    }

    /// The CA serial of a remembered retired client certificate.
    pub fn retired_ca(&self, db: &DbRef) -> Option<Serial> {
        let memory = self.memory.lock();
        memory
            .get(&key(db))
            .and_then(|m| m.retired.as_deref())
            .map(|(m, _)| m.ca_serial.clone())
    }

    /// After an issuer change, once the CA file holds the new CA only: reloads every pod that
    /// still accepts a client certificate from the retired CA. True once no pod does (the
    /// memory of it is then dropped).
    pub async fn check_distrust(
        &self,
        client: &kube::Client,
        stores: &Stores,
        db: &DbRef,
        admin: &AdminLogin<'_>,
    ) -> bool {
        let Some((serial, identity)) = self
            .memory
            .lock()
            .get(&key(db))
            .and_then(|m| m.retired.as_deref())
            .map(|(m, i)| (m.ca_serial.clone(), i.clone()))
        else {
            return true;
        };
        let check = Check {
            identity: &identity,
            ca_serial: &serial,
            want: Want::Refuse,
        };
        let done = self.converge(client, stores, db, admin, &check).await;
        if done && let Some(entry) = self.memory.lock().get_mut(&key(db)) {
            entry.retired = None;
        }
        done
    }

    /// Asks every ready pod not yet known to answer as `check` wants with a handshake that
    /// presents its certificate, and reloads (every 10 s) those that do not. True once every
    /// pod has answered as wanted.
    async fn converge(
        &self,
        client: &kube::Client,
        stores: &Stores,
        db: &DbRef,
        admin: &AdminLogin<'_>,
        check: &Check<'_>,
    ) -> bool {
        let Some(port) = engine::probe_port(db.kind) else {
            return true;
        };
        let views = askable(stores, db);
        let known: Vec<String> = {
            let mut memory = self.memory.lock();
            let entry = memory.entry(key(db)).or_default();
            let memo = check.memo(entry);
            if memo.ca_serial != check.ca_serial {
                *memo = TrustMemo {
                    ca_serial: check.ca_serial.to_string(),
                    ..TrustMemo::default()
                };
            }
            memo.done.iter().cloned().collect()
        };
        let asked = views
            .iter()
            .filter(|v| !known.contains(&v.uid))
            .filter_map(|v| Some((v, v.ip.clone()?)));
        let answers = futures::future::join_all(asked.map(|(view, ip)| async move {
            let addr = format!("{ip}:{port}");
            // A pod that cannot be reached cannot be asked: it is not waited for (if it
            // restarts, it reads the CA file as it is then).
            let accepted = probe::mysql_accepts_client(&addr, check.identity, PROBE_TIMEOUT)
                .await
                .unwrap_or(check.want == Want::Accept);
            (view, ip, accepted)
        }))
        .await;
        let mut reload = Vec::new();
        let all_done = {
            let mut memory = self.memory.lock();
            let entry = memory.entry(key(db)).or_default();
            let memo = check.memo(entry);
            for (view, ip, accepted) in answers {
                tracing::debug!(db = %db.display(), pod = %view.name, accepted, want = ?check.want, "asked with a client certificate");
                if accepted == (check.want == Want::Accept) {
                    memo.done.insert(view.uid.clone());
                } else if memo
                    .reloaded
                    .get(&view.uid)
                    .is_none_or(|at| at.elapsed() >= RELOAD_EVERY)
                {
                    memo.reloaded.insert(view.uid.clone(), Instant::now());
                    reload.push((view.name.clone(), ip));
                }
            }
            views.iter().all(|v| memo.done.contains(&v.uid))
        };
        if !reload.is_empty() {
            self.reload_for_trust(client, db, admin, &reload).await;
        }
        all_done
    }

    /// Tells `pods` (name, IP) to read their files again, for their CA file.
    async fn reload_for_trust(
        &self,
        client: &kube::Client,
        db: &DbRef,
        admin: &AdminLogin<'_>,
        pods: &[(String, String)],
    ) {
        let addressed: Vec<(String, Option<String>)> = pods
            .iter()
            .map(|(name, ip)| (name.clone(), Some(ip.clone())))
            .collect();
        let Some((_, results)) = self.admin_reloads(client, db, admin, &addressed).await else {
            return;
        };
        for ((pod, _), result) in pods.iter().zip(results) {
            if let Err(e) = result {
                tracing::info!(db = %db.display(), %pod, error = ?e, "reload for the CA file failed");
            }
        }
    }
}

/// The pods that can be asked: ready, with an address.
fn askable(stores: &Stores, db: &DbRef) -> Vec<observe::PodView> {
    observe::pod_views(
        &stores.pods_of(&db.namespace, &labels::for_database(db.kind, &db.name)),
        db.kind.profile().container,
    )
    .into_iter()
    .filter(|v| v.not_ready.is_none() && v.ip.is_some())
    .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Accept,
    Refuse,
}

/// One question to the pods: a handshake presenting `identity`, answered as `want`.
struct Check<'a> {
    identity: &'a ClientIdentity,
    ca_serial: &'a str,
    want: Want,
}

impl Check<'_> {
    fn memo<'m>(&self, entry: &'m mut DbMemory) -> &'m mut TrustMemo {
        match self.want {
            Want::Accept => entry.trust.get_or_insert_with(Box::default).as_mut(),
            Want::Refuse => {
                &mut entry
                    .retired
                    .get_or_insert_with(|| Box::new((TrustMemo::default(), self.identity.clone())))
                    .0
            }
        }
    }
}
