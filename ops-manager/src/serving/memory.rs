//! What the serving step remembers between reconciles of a database: the current certificate
//! of its server Secret (read again only when the Secret's resourceVersion moves), the version
//! its server announced, and per pod what it was last seen presenting and the reloads tried.
//! Lost on restart by design: a restarted operator probes again and at worst reloads again (a
//! reload drops no connection); no restart decision depends on what was remembered.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use dbtls_runtime::key::DbKey;
use dbtls_runtime::sweep::Sweep;

use super::plan::ReloadFailure;

/// The certificate the server Secret holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentCertificate {
    pub resource_version: String,
    pub serial: String,
    /// Unix time.
    pub not_before: i64,
    pub not_after: i64,
    /// Shared by every database whose Secret holds the same CA ([`Memory::shared_ca`]).
    pub ca_pem: Arc<[u8]>,
}

/// A pod as last seen. Which pod, serial and server run it is about are kept as hashes (they
/// are only compared): three strings per pod were ~0.2 KB of every database's memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodMemo {
    /// The pod's uid and the serial the entries below are about.
    pub about: u64,
    /// Restart count and start time of its containers: a change means the server restarted.
    pub run: u64,
    /// It presented the serial when last probed.
    pub current: bool,
    /// When what it presents expires (Unix time).
    pub expiry: Option<i64>,
    /// The version its server announced.
    pub version: Option<String>,
    pub reloads: u32,
    pub failure: Option<ReloadFailure>,
    /// A failure was announced with an Event (once per serial).
    pub announced: bool,
    /// Evicted: on its way out, whatever a stale watch cache still shows.
    pub evicted: bool,
}

fn hashed(parts: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl PodMemo {
    /// The memo for the pod `uid`/`fingerprint` wanting `serial`: kept when it is about the
    /// same pod, server run and serial, started over otherwise (a reload history is per serial).
    pub fn refreshed(self, uid: &str, fingerprint: &str, serial: &str) -> PodMemo {
        let (about, run) = (hashed(&[uid, serial]), hashed(&[fingerprint]));
        if self.about == about {
            if self.run == run {
                return self;
            }
            // Restarted: what it presents must be probed again; its reloads are history.
            return PodMemo {
                run,
                current: false,
                ..self
            };
        }
        PodMemo {
            about,
            run,
            ..PodMemo::default()
        }
    }
}

#[derive(Debug, Default)]
pub struct DbMemory {
    pub certificate: Option<CurrentCertificate>,
    /// The CA the server Secret held before the current one, while pods may still present a
    /// certificate from it (an issuer change).
    pub previous_ca: Option<Arc<[u8]>>,
    pub server_version: Option<String>,
    pub pods: PodMemos,
    /// During an issuer change: which pods accept the probe certificate of the new CA. Boxed,
    /// as `retired`: only an issuer change has one, and inline they made every database's
    /// entry ~0.2 KB larger.
    pub trust: Option<Box<TrustMemo>>,
    /// After it: the retired CA's client certificate, and which pods refuse it already.
    pub retired: Option<Box<(TrustMemo, super::probe::ClientIdentity)>>,
}

/// Each pod's memo, by pod name. A vector: most databases have one to three pods, and a
/// `BTreeMap` allocated a node for eleven (~0.4 KB per database, besides the memos).
#[derive(Debug, Default)]
pub struct PodMemos(Vec<(String, PodMemo)>);

impl PodMemos {
    pub fn get(&self, pod: &str) -> Option<&PodMemo> {
        self.0.iter().find(|(name, _)| name == pod).map(|(_, m)| m)
    }

    pub fn get_mut(&mut self, pod: &str) -> Option<&mut PodMemo> {
        self.0
            .iter_mut()
            .find(|(name, _)| name == pod)
            .map(|(_, m)| m)
    }

    /// Replaces the pod's memo, if it had one.
    pub fn insert(&mut self, pod: String, memo: PodMemo) {
        match self.get_mut(&pod) {
            Some(kept) => *kept = memo,
            None => self.0.push((pod, memo)),
        }
    }

    pub fn remove(&mut self, pod: &str) -> Option<PodMemo> {
        let at = self.0.iter().position(|(name, _)| name == pod)?;
        Some(self.0.swap_remove(at).1)
    }

    /// Keeps the memos of the pods `keep` names.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|(name, _)| keep(name));
        self.0.shrink_to_fit();
    }

    pub fn clear(&mut self) {
        self.0 = Vec::new();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &PodMemo)> {
        self.0.iter().map(|(name, memo)| (name.as_str(), memo))
    }
}

/// The pods (by uid) seen answering a handshake with a client certificate from the CA
/// `ca_serial` as wanted (accepting it, or refusing it), and when a reload was last asked of
/// those that did not.
#[derive(Debug, Default)]
pub struct TrustMemo {
    pub ca_serial: String,
    pub done: BTreeSet<String>,
    pub reloaded: BTreeMap<String, std::time::Instant>,
}

/// Per database.
#[derive(Debug, Default)]
pub struct Memory {
    databases: Mutex<HashMap<DbKey, DbMemory>>,
    cas: Mutex<SharedCas>,
}

/// Each CA certificate the remembered certificates hold, once: the databases of one issuer
/// share its CA, which each of them kept a copy of (1.2 KB per database for an RSA CA).
#[derive(Debug, Default)]
struct SharedCas {
    pems: HashSet<Arc<[u8]>>,
    sweep: Sweep,
}

impl Memory {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<DbKey, DbMemory>> {
        self.databases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `pem` as the one copy every remembered certificate with that CA shares.
    pub fn shared_ca(&self, pem: &[u8]) -> Arc<[u8]> {
        let mut cas = self.cas.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = cas.pems.get(pem) {
            return shared.clone();
        }
        if cas.sweep.due(Instant::now()) {
            // A CA no database holds any more (its issuer was replaced or removed).
            cas.pems.retain(|pem| Arc::strong_count(pem) > 1);
        }
        let shared: Arc<[u8]> = pem.into();
        cas.pems.insert(shared.clone());
        shared
    }

    pub fn forget(&self, db: &DbKey) {
        self.lock().remove(db);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_lasts_for_one_pod_server_run_and_serial() {
        let memo = PodMemo {
            current: true,
            reloads: 2,
            ..PodMemo::default().refreshed("u1", "0@t1", "S1")
        };
        assert_eq!(memo.clone().refreshed("u1", "0@t1", "S1"), memo);
        let restarted = memo.clone().refreshed("u1", "1@t2", "S1");
        assert!(!restarted.current);
        assert_eq!(restarted.reloads, 2);
        let renewed = memo.clone().refreshed("u1", "0@t1", "S2");
        assert_eq!((renewed.current, renewed.reloads), (false, 0));
        let replaced = memo.refreshed("u2", "0@t3", "S1");
        assert_eq!(replaced, PodMemo::default().refreshed("u2", "0@t3", "S1"));
        assert!(!replaced.current);
        assert_ne!(
            PodMemo::default().refreshed("u1", "0@t1", "S1").about,
            PodMemo::default().refreshed("u1S", "0@t1", "1").about,
            "the parts are hashed apart"
        );
    }

    #[test]
    fn pod_memos_by_name() {
        let memo = |uid: &str| PodMemo::default().refreshed(uid, "0@t1", "S1");
        let mut memos = PodMemos::default();
        memos.insert("db-0".into(), memo("u0"));
        memos.insert("db-1".into(), memo("u1"));
        memos.insert("db-0".into(), memo("u0-again"));
        assert_eq!(memos.iter().count(), 2, "one memo per pod");
        assert_eq!(memos.get("db-0"), Some(&memo("u0-again")));
        if let Some(m) = memos.get_mut("db-1") {
            m.reloads = 3;
        }
        assert_eq!(memos.get("db-1").map(|m| m.reloads), Some(3));
        memos.retain(|pod| pod == "db-1");
        assert_eq!(memos.get("db-0"), None);
        assert_eq!(
            memos.remove("db-1").map(|m| m.about),
            Some(memo("u1").about)
        );
        assert_eq!(memos.iter().count(), 0);
    }

    #[test]
    fn databases_of_one_ca_share_one_copy() {
        let memory = Memory::default();
        let first = memory.shared_ca(b"CA one");
        let separate_copy = String::from("CA one");
        let again = memory.shared_ca(separate_copy.as_bytes());
        assert!(Arc::ptr_eq(&first, &again));
        let other = memory.shared_ca(b"CA two");
        assert_eq!(&*other, b"CA two");
        assert!(!Arc::ptr_eq(&first, &other));
    }
}
