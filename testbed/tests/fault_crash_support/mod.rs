//! What the fault and crash suites (`reliability_faults`, `reliability_crashes`) share: a fleet
//! of TLS databases spread over the five kinds and several namespaces, a convergence check over
//! the whole fleet, and the audit that finds duplicated, stray or orphaned objects.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dbtls_contract::DbKind;
use dbtls_contract::api::TlsConfig;
use dbtls_contract::certmanager::Certificate;
use dbtls_contract::tls;
use dbtls_contract::{labels, names};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, DynamicObject, ListParams, ObjectMeta};
use testbed::apiserver::{RequestRecord, Verb};
use testbed::harness::apply::{self, KindCache};
use testbed::harness::{Env, EnvOptions};

/// `DBTLS_RELIABILITY_FULL=1` runs the full counts (documented in docs/reliability.md).
pub const FULL_ENV: &str = "DBTLS_RELIABILITY_FULL";

pub fn full_run() -> bool {
    std::env::var(FULL_ENV).is_ok_and(|v| v == "1")
}

/// The test's Issuer (in the test namespace); the other namespaces use a ClusterIssuer.
const ISSUER: &str = "ca";
const CLUSTER_ISSUER_PREFIX: &str = "reliability";
/// How many namespaces the fleet spreads over (the test namespace plus the rest).
const NAMESPACES: usize = 3;

/// One database of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbId {
    pub kind: DbKind,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for DbId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

pub async fn start_env() -> Env {
    Env::start(EnvOptions {
        provisioner_args: vec!["--workload=statefulset".into()],
        extra_namespaces: NAMESPACES - 1,
        ..EnvOptions::default()
    })
    .await
    .unwrap()
}

/// The fleet's namespaces, issuers and databases (planned; [`Fleet::create`] applies one).
pub struct Fleet {
    pub namespaces: Vec<String>,
    pub dbs: Vec<DbId>,
    cluster_issuer: String,
    kinds: KindCache,
}

impl Fleet {
    /// Plans `n` databases round-robin over the kinds and the Env's namespaces, and creates the
    /// issuers (before any fault is switched on: setup is not under test).
    pub async fn prepare(env: &Env, n: usize) -> Fleet {
        let namespaces = env.namespaces().to_vec();
        assert_eq!(namespaces.len(), NAMESPACES);
        env.create_ca_issuer(ISSUER).await.unwrap();
        let cluster_issuer = format!("{CLUSTER_ISSUER_PREFIX}-{}", env.namespace());
        env.create_ca_cluster_issuer(&cluster_issuer).await.unwrap();
        let dbs = (0..n)
            .map(|i| DbId {
                kind: DbKind::ALL[i % DbKind::ALL.len()],
                namespace: namespaces[(i / DbKind::ALL.len()) % namespaces.len()].clone(),
                name: format!("db-{i:04}"),
            })
            .collect();
        Fleet {
            namespaces,
            dbs,
            cluster_issuer,
            kinds: KindCache::default(),
        }
    }

    fn manifest(&self, env: &Env, db: &DbId) -> String {
        if db.namespace == env.namespace() {
            Env::tls_database(db.kind, &db.name, "Issuer", ISSUER)
        } else {
            Env::tls_database(db.kind, &db.name, "ClusterIssuer", &self.cluster_issuer)
        }
    }

    /// Applies one database, retrying injected errors until `deadline`.
    pub async fn create(&self, env: &Env, db: &DbId, deadline: Duration) {
        let yaml = self.manifest(env, db);
        let until = Instant::now() + deadline;
        loop {
            match apply::apply_yaml(
                &env.client(),
                &self.kinds,
                &yaml,
                Some(&db.namespace),
                "e2e",
            )
            .await
            {
                Ok(_) => return,
                Err(_) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("creating {db}: {e:#}"),
            }
        }
    }

    /// Waits until every database has its workload and TLSSecretsReady and CertificatesReady
    /// True; the error names databases still missing something.
    pub async fn await_converged(&self, env: &Env, deadline: Duration) -> anyhow::Result<()> {
        env.eventually("every database converged", deadline, || async {
            let missing = self.not_converged(env).await?;
            if missing.is_empty() {
                Ok(Some(()))
            } else {
                let shown: Vec<&String> = missing.iter().take(5).collect();
                anyhow::bail!("{} not converged, e.g. {shown:?}", missing.len())
            }
        })
        .await
    }

    /// The databases (with what they miss) that have not converged yet.
    pub async fn not_converged(&self, env: &Env) -> anyhow::Result<Vec<String>> {
        let mut ready = BTreeSet::new();
        let mut pending = BTreeMap::new();
        let mut workloads = BTreeSet::new();
        for ns in &self.namespaces {
            for kind in DbKind::ALL {
                for obj in databases(env, kind, ns).await? {
                    let key = (
                        kind,
                        ns.clone(),
                        obj.metadata.name.clone().unwrap_or_default(),
                    );
                    if condition_true(&obj, "TLSSecretsReady")
                        && condition_true(&obj, "CertificatesReady")
                    {
                        ready.insert(key);
                    } else {
                        pending.insert(key, not_true(&obj));
                    }
                }
            }
            let sts: Api<StatefulSet> = Api::namespaced(env.client(), ns);
            for s in sts.list(&ListParams::default()).await? {
                workloads.insert((ns.clone(), s.metadata.name.unwrap_or_default()));
            }
        }
        Ok(self
            .dbs
            .iter()
            .filter_map(|db| {
                let key = (db.kind, db.namespace.clone(), db.name.clone());
                let conditions = ready.contains(&key);
                let why = pending.get(&key).cloned().unwrap_or_default();
                let workload =
                    workloads.contains(&(db.namespace.clone(), names::workload(&db.name)));
                match (conditions, workload) {
                    (true, true) => None,
                    (false, true) => Some(format!("{db}: {why}")),
                    (true, false) => Some(format!("{db}: no workload")),
                    (false, false) => Some(format!("{db}: no workload, {why}")),
                }
            })
            .collect())
    }

    /// Everything labelled for a database must be one of the objects the design names for it
    /// (so a duplicate under any other name is found), must not come from `generateName`, must
    /// be owned by the live database, and each expected object must exist.
    pub async fn audit(&self, env: &Env) -> anyhow::Result<Audit> {
        let mut uids = BTreeMap::new();
        for ns in &self.namespaces {
            for kind in DbKind::ALL {
                for obj in databases(env, kind, ns).await? {
                    uids.insert(
                        (
                            kind,
                            ns.clone(),
                            obj.metadata.name.clone().unwrap_or_default(),
                        ),
                        obj.metadata.uid.clone().unwrap_or_default(),
                    );
                }
            }
        }
        let mut audit = Audit::default();
        let mut seen: BTreeMap<(DbKind, String, String), BTreeSet<String>> = BTreeMap::new();
        let all = ListParams::default();
        for ns in &self.namespaces {
            // Every object of these kinds, labelled or not: an unlabelled copy is a stray too
            // when it has generateName or a database owner.
            let mut objects: Vec<(&str, ObjectMeta)> = Vec::new();
            for s in Api::<Secret>::namespaced(env.client(), ns)
                .list(&all)
                .await?
            {
                objects.push(("Secret", s.metadata));
            }
            for s in Api::<Service>::namespaced(env.client(), ns)
                .list(&all)
                .await?
            {
                objects.push(("Service", s.metadata));
            }
            for s in Api::<StatefulSet>::namespaced(env.client(), ns)
                .list(&all)
                .await?
            {
                objects.push(("StatefulSet", s.metadata));
            }
            for c in Api::<Certificate>::namespaced(env.client(), ns)
                .list(&all)
                .await?
            {
                objects.push(("Certificate", c.metadata));
            }
            for (kind_of_object, meta) in objects {
                let name = meta.name.clone().unwrap_or_default();
                let what = format!("{kind_of_object} {ns}/{name}");
                if meta.generate_name.is_some() {
                    audit
                        .problems
                        .push(format!("{what} was created with generateName"));
                }
                let labels_of = meta.labels.clone().unwrap_or_default();
                let owners = meta.owner_references.clone().unwrap_or_default();
                let Some((kind, db)) = labels::database_of(&labels_of) else {
                    if owners
                        .iter()
                        .any(|o| o.api_version.starts_with("kubedb.com/"))
                    {
                        audit
                            .problems
                            .push(format!("{what} is owned by a database but not labelled"));
                    }
                    continue;
                };
                audit.objects += 1;
                let key = (kind, ns.clone(), db.to_string());
                let Some(uid) = uids.get(&key) else {
                    audit
                        .problems
                        .push(format!("{what} is labelled for missing {kind} {db}"));
                    continue;
                };
                if !expected_names(kind, db)
                    .iter()
                    .any(|(k, n)| *k == kind_of_object && *n == name)
                {
                    audit.problems.push(format!(
                        "{what} is not an object the design names for {kind} {db}"
                    ));
                }
                let owned = owners.iter().any(|o| {
                    &o.uid == uid
                        // A TLS Secret may have its Certificate as controller (cert-manager's
                        // --enable-certificate-owner-ref); the database is then a plain owner.
                        && (o.controller == Some(true) || kind_of_object == "Secret")
                });
                if !owned {
                    audit.problems.push(format!(
                        "{what} has no ownerReference to the live {kind} {db} ({owners:?})"
                    ));
                }
                seen.entry(key)
                    .or_default()
                    .insert(format!("{kind_of_object}/{name}"));
            }
        }
        for db in &self.dbs {
            let found = seen
                .get(&(db.kind, db.namespace.clone(), db.name.clone()))
                .cloned()
                .unwrap_or_default();
            for (k, n) in required_names(db.kind, &db.name) {
                if !found.contains(&format!("{k}/{n}")) {
                    audit.problems.push(format!("{db}: {k} {n} is missing"));
                }
            }
        }
        Ok(audit)
    }
}

/// What [`Fleet::audit`] found.
#[derive(Debug, Default)]
pub struct Audit {
    /// Labelled objects inspected.
    pub objects: usize,
    /// Duplicates, strays, orphans and missing objects, each named.
    pub problems: Vec<String>,
}

/// Every object the operators may create for a database: `(kind, name)`.
fn expected_names(kind: DbKind, db: &str) -> Vec<(&'static str, String)> {
    let mut out = required_names(kind, db);
    out.push(("Secret", names::config_secret(db)));
    out
}

/// The objects every converged TLS database of `kind` has.
fn required_names(kind: DbKind, db: &str) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("Secret", names::auth_secret(db)),
        ("Service", names::primary_service(db)),
        ("Service", names::governing_service(db)),
        ("StatefulSet", names::workload(db)),
    ];
    for (_, secret) in tls::secrets(kind, db, &TlsConfig::default().view()) {
        out.push(("Secret", secret.clone()));
        out.push(("Certificate", secret));
    }
    out.push(("Secret", names::ca_bundle(db)));
    out
}

async fn databases(env: &Env, kind: DbKind, ns: &str) -> anyhow::Result<Vec<DynamicObject>> {
    let api: Api<DynamicObject> = Api::namespaced_with(env.client(), ns, &kind.api_resource());
    Ok(api.list(&ListParams::default()).await?.items)
}

/// The conditions of `obj` that are not True, as `type=reason: message`.
fn not_true(obj: &DynamicObject) -> String {
    let conditions = obj
        .data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    let text: Vec<String> = conditions
        .iter()
        .filter(|c| c.get("status").and_then(|s| s.as_str()) != Some("True"))
        .map(|c| {
            let field = |f: &str| c.get(f).and_then(|v| v.as_str()).unwrap_or_default();
            format!(
                "{}={}: {}",
                field("type"),
                field("reason"),
                field("message")
            )
        })
        .collect();
    if text.is_empty() {
        "no status yet".to_string()
    } else {
        text.join("; ")
    }
}

fn condition_true(obj: &DynamicObject, type_: &str) -> bool {
    obj.data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(|t| t.as_str()) == Some(type_)
                    && c.get("status").and_then(|s| s.as_str()) == Some("True")
            })
        })
}

/// Records after `from` that changed stored state, made by one of `users` (anyone when empty).
pub fn writes_since<'a>(
    records: &'a [RequestRecord],
    from: usize,
    users: &[&str],
) -> Vec<&'a RequestRecord> {
    records
        .iter()
        .skip(from)
        .filter(|r| r.wrote && (users.is_empty() || users.contains(&r.user.as_str())))
        .collect()
}

/// One line per write (the first 20), for failure messages.
pub fn describe(records: &[&RequestRecord]) -> String {
    records
        .iter()
        .take(20)
        .map(|r| {
            format!(
                "{} {:?} {} {}/{} {:?}",
                r.user,
                r.verb,
                r.resource,
                r.namespace.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
                r.subresource
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits (up to `deadline`) for a `window` in which nobody writes. Seeing a quiet window takes
/// wall time: this is the observation itself, not synchronisation.
pub async fn await_quiet(env: &Env, window: Duration, deadline: Duration) -> anyhow::Result<()> {
    let log = env.api_server().context("testbed only")?.request_log();
    let until = Instant::now() + deadline;
    loop {
        let mark = log.len();
        tokio::time::sleep(window).await;
        let records = log.snapshot();
        let writes = writes_since(&records, mark, &[]);
        if writes.is_empty() {
            return Ok(());
        }
        if Instant::now() >= until {
            anyhow::bail!(
                "still writing after {deadline:?}; last window:\n{}",
                describe(&writes)
            );
        }
    }
}

/// Waits until each of `users` has listed every database kind since record `from` (a
/// restarted operator has started all its controllers).
pub async fn await_listed(env: &Env, from: usize, users: &[&str]) -> anyhow::Result<()> {
    let log = env.api_server().context("testbed only")?.request_log();
    env.eventually(
        "the operators listed every database kind",
        Duration::from_secs(60),
        || {
            let records = log.snapshot();
            async move {
                let listed = users.iter().all(|user| {
                    DbKind::ALL.iter().all(|kind| {
                        records.iter().skip(from).any(|r| {
                            r.user == *user
                                && r.resource == kind.profile().plural
                                && r.verb == Verb::List
                                && r.status == 200
                        })
                    })
                });
                Ok(listed.then_some(()))
            }
        },
    )
    .await
}

/// `dbtls_reconciles_total{result="ok"}` summed over kinds, from the operator's /metrics
/// (None while it is not serving yet).
pub async fn successful_reconciles(env: &Env, which: &str) -> anyhow::Result<Option<u64>> {
    // A killed operator serves no metrics: "not known yet", not an error.
    Ok(env.reconciles(which).await.ok())
}
