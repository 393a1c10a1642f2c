//! [`Env`]: one test's cluster, namespace, operators and cert-manager.
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dbtls_contract::DbKind;
use dbtls_contract::api::Condition;
use dbtls_contract::certmanager::{
    Certificate, ClusterIssuer, Issuer, TLS_CRT, TLS_KEY, TLS_SECRET_TYPE,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Resource;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};

use super::apply;
use super::cluster::{self, Cluster, Played};
use super::crds;
use super::identities;
use super::manifests;
use super::operators::{self, Operator};
use crate::apiserver::{ApiServerConfig, TestApiServer};
use crate::certmanager::{self, StandInConfig};
use crate::workload_sim;

/// The field manager the tests' own applies use.
pub const TEST_MANAGER: &str = "e2e";
/// Overrides the stand-in's cluster resource namespace (a real cert-manager's, usually
/// `cert-manager`).
pub const CLUSTER_RESOURCE_NAMESPACE_ENV: &str = "DBTLS_E2E_CLUSTER_RESOURCE_NAMESPACE";

/// What an [`Env`] starts.
#[derive(Debug, Clone)]
pub struct EnvOptions {
    /// Start the real provisioner binary.
    pub provisioner: bool,
    /// Start the real ops-manager binary.
    pub ops_manager: bool,
    /// Certificates get issued: by the cert-manager stand-in in the test process, unless
    /// `DBTLS_E2E_CERT_MANAGER=external` says a real cert-manager runs in the cluster.
    pub cert_manager: bool,
    /// Extra flags for the provisioner, e.g. `--workload=statefulset`. Without a
    /// `--namespace`, each operator watches only the test's namespace.
    pub provisioner_args: Vec<String>,
    pub ops_manager_args: Vec<String>,
    /// StatefulSets and PetSets report their replicas ready: through the workload-status
    /// stand-in ([`crate::workload_sim`]), unless `DBTLS_E2E_WORKLOADS=cluster` says the
    /// cluster's own controllers and kubelets run the pods.
    pub simulate_workloads: bool,
    /// Namespaces beyond the test's own (`<ns>-1`, `<ns>-2`, ...), created by the Env and
    /// watched by the operators and stand-ins like the test's own.
    pub extra_namespaces: usize,
    /// Testbed only. `enforce_rbac` is always turned on: the operators run under their
    /// `deploy/` RBAC.
    pub api_server: ApiServerConfig,
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            provisioner: true,
            ops_manager: true,
            cert_manager: true,
            provisioner_args: Vec::new(),
            ops_manager_args: Vec::new(),
            simulate_workloads: true,
            extra_namespaces: 0,
            api_server: ApiServerConfig::default(),
        }
    }
}

/// One test's world. Dropping it stops the operators and the stand-in, and on a real cluster
/// deletes the namespace and the ClusterIssuers it created.
pub struct Env {
    cluster: Cluster,
    client: kube::Client,
    namespace: String,
    namespaces: Vec<String>,
    cluster_resource_namespace: String,
    operators: Vec<Operator>,
    /// Stop signal of the in-process stand-ins (cert-manager, workload status).
    stop_stand_ins: tokio::sync::watch::Sender<bool>,
    stand_ins: Vec<tokio::task::JoinHandle<()>>,
    work_dir: PathBuf,
    kinds: apply::KindCache,
    cluster_issuers: Mutex<Vec<String>>,
}

fn random_suffix(len: usize) -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

async fn ensure_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(name).await?.is_none() {
        let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        api.patch(
            name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&ns),
        )
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    }
    Ok(())
}

impl Env {
    /// Starts (or connects to) the API server, installs the CRDs, starts what `options` asks
    /// for and creates a fresh namespace `e2e-<random>`, the only one the operators and the
    /// stand-ins watch (so tests sharing one real cluster leave each other alone).
    pub async fn start(options: EnvOptions) -> anyhow::Result<Env> {
        let cert_manager = cluster::cert_manager()?;
        let workloads = cluster::workloads()?;
        let api_config = ApiServerConfig {
            enforce_rbac: true,
            ..options.api_server.clone()
        };
        let cluster = Cluster::connect(api_config).await?;
        anyhow::ensure!(
            cluster.is_real()
                || (cert_manager, workloads) == (Played::ByStandIn, Played::ByStandIn),
            "the testbed has no cert-manager and no kubelet: {} and {} must be stand-in there",
            cluster::CERT_MANAGER_ENV,
            cluster::WORKLOADS_ENV,
        );
        let client = cluster.client_as("admin").await?;
        crds::install(&client, cert_manager).await?;
        let kinds = apply::KindCache::default();
        identities::install(&client, &kinds, !cluster.is_real()).await?;

        let namespace = format!("e2e-{}", random_suffix(8));
        let namespaces: Vec<String> = std::iter::once(namespace.clone())
            .chain((1..=options.extra_namespaces).map(|i| format!("{namespace}-{i}")))
            .collect();
        for ns in &namespaces {
            ensure_namespace(&client, ns).await?;
        }
        let cluster_resource_namespace = std::env::var(CLUSTER_RESOURCE_NAMESPACE_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| StandInConfig::default().cluster_resource_namespace);
        ensure_namespace(&client, &cluster_resource_namespace).await?;

        let work_dir = std::env::temp_dir().join(format!("dbtls-{namespace}"));
        std::fs::create_dir_all(&work_dir)
            .with_context(|| format!("creating {}", work_dir.display()))?;

        let mut env = Env {
            client,
            namespace,
            namespaces,
            cluster_resource_namespace: cluster_resource_namespace.clone(),
            operators: Vec::new(),
            stop_stand_ins: tokio::sync::watch::channel(false).0,
            stand_ins: Vec::new(),
            work_dir,
            kinds,
            cluster_issuers: Mutex::default(),
            cluster,
        };

        if options.cert_manager && cert_manager == Played::ByStandIn {
            let client = env.cluster.client_as(identities::CERT_MANAGER_USER).await?;
            let config = StandInConfig {
                cluster_resource_namespace,
                namespaces: env.namespaces.clone(),
                ..StandInConfig::default()
            };
            let stop = env.stand_in_stopped();
            env.stand_ins
                .push(tokio::spawn(certmanager::run(client, config, stop)));
        }
        if options.simulate_workloads && workloads == Played::ByStandIn {
            let client = env.cluster.client_as(identities::WORKLOAD_SIM_USER).await?;
            let stop = env.stand_in_stopped();
            let namespaces = env.namespaces.clone();
            env.stand_ins
                .push(tokio::spawn(workload_sim::run(client, namespaces, stop)));
        }

        // A Galera cluster leaving TLS waits for kubelet to refresh a Secret in running pods:
        // the test node's kubelet syncs every 10 s; stand-in pods read nothing.
        let mut provisioner_args = options.provisioner_args.clone();
        if !provisioner_args
            .iter()
            .any(|a| a.starts_with("--secret-propagation"))
        {
            let propagation = match workloads {
                Played::ByStandIn => "0s",
                _ => "20s",
            };
            provisioner_args.push(format!("--secret-propagation={propagation}"));
        }
        // The tests follow each progress message of a wait (which Secrets are still missing):
        // written a second after the previous status write, not 30 s (the timer itself is the
        // unit tests' and the benchmark's subject).
        let quick_progress = |args: &mut Vec<String>| {
            if !args.iter().any(|a| a.starts_with("--progress-interval")) {
                args.push("--progress-interval=1s".to_string());
            }
        };
        quick_progress(&mut provisioner_args);
        let mut ops_manager_args = options.ops_manager_args.clone();
        quick_progress(&mut ops_manager_args);
        let wanted = [
            ("provisioner", options.provisioner, &provisioner_args),
            ("ops-manager", options.ops_manager, &ops_manager_args),
        ];
        if wanted.iter().any(|(_, on, _)| *on) {
            let bin_dir = operators::build_once().await?;
            for (name, on, args) in wanted {
                if on {
                    let kubeconfig = env.operator_kubeconfig(name).await?;
                    let args = env.scoped_args(args);
                    env.operators
                        .push(Operator::start(name, &bin_dir, &kubeconfig, &args).await?);
                }
            }
        }
        Ok(env)
    }

    /// `args` with `--namespace=<the test's namespaces>` unless they name namespaces already.
    pub fn scoped_args(&self, args: &[String]) -> Vec<String> {
        let mut scoped = args.to_vec();
        if !args
            .iter()
            .any(|a| a == "--namespace" || a.starts_with("--namespace="))
        {
            scoped.push(format!("--namespace={}", self.namespaces.join(",")));
        }
        scoped
    }

    /// The test's namespace and its extra ones ([`EnvOptions::extra_namespaces`]).
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Resolves once the Env is dropped: stops the stand-ins.
    fn stand_in_stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop_stand_ins.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// Writes a kubeconfig with which an operator ("provisioner" | "ops-manager") runs as its
    /// own ServiceAccount (on a real cluster: a token from the TokenRequest API), so tests can
    /// start more operator processes, or act as an operator, under its `deploy/` RBAC.
    pub async fn operator_kubeconfig(&self, which: &str) -> anyhow::Result<PathBuf> {
        let user = identities::operator_user(which)?;
        self.cluster.kubeconfig_for(&self.work_dir, user).await
    }

    /// A client acting as `user` (on a real cluster: the operators' ServiceAccounts, everyone
    /// else the kubeconfig's identity), e.g. [`identities::PROVISIONER_USER`] to check what an
    /// operator may do.
    pub async fn client_as(&self, user: &str) -> anyhow::Result<kube::Client> {
        self.cluster.client_as(user).await
    }

    /// `http://<addr>` of an operator's `/metrics`, `/healthz` and `/readyz` server.
    pub fn metrics_url(&self, which: &str) -> anyhow::Result<String> {
        let addr = self
            .operator(which)?
            .metrics_addr()
            .with_context(|| format!("{which} runs with an unknown --metrics-addr"))?;
        Ok(format!("http://{addr}"))
    }

    /// Successful reconciles `which` operator has counted so far, from its own `/metrics`
    /// (`dbtls_reconciles_total{result="ok"}`, all kinds).
    pub async fn reconciles(&self, which: &str) -> anyhow::Result<u64> {
        let (_, body) = super::http::get(&self.metrics_url(which)?, "/metrics").await?;
        Ok(super::http::sum_series(&body, "dbtls_reconciles_total", &[("result", "ok")]) as u64)
    }

    /// The admin client.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The test's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Where the stand-in (and this env's ClusterIssuers) keep ClusterIssuer CA Secrets.
    pub fn cluster_resource_namespace(&self) -> &str {
        &self.cluster_resource_namespace
    }

    /// A namespaced Api in the test namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The in-memory API server (fault injection, request log); None on a real cluster.
    pub fn api_server(&self) -> Option<&TestApiServer> {
        self.cluster.api_server()
    }

    /// Polls `check` every 50 ms until it returns `Ok(Some(t))` or `deadline` passes.
    pub async fn eventually<T, F, Fut>(
        &self,
        what: &str,
        deadline: Duration,
        mut check: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Option<T>>>,
    {
        let until = Instant::now() + deadline;
        loop {
            let last = match check().await {
                Ok(Some(t)) => return Ok(t),
                Ok(None) => "not yet (None)".to_string(),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= until {
                anyhow::bail!(
                    "timed out after {deadline:?} waiting for {what}; last: {last}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Applies YAML (one or more documents) server-side as field manager `e2e`, in the test
    /// namespace (for namespaced kinds).
    pub async fn apply_yaml(&self, yaml: &str) -> anyhow::Result<()> {
        apply::apply_yaml(
            &self.client,
            &self.kinds,
            yaml,
            Some(&self.namespace),
            TEST_MANAGER,
        )
        .await?;
        Ok(())
    }

    async fn apply_ca_secret(&self, namespace: &str, name: &str) -> anyhow::Result<String> {
        let (cert, key) = manifests::self_signed_ca(name)?;
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            },
            type_: Some(TLS_SECRET_TYPE.into()),
            data: Some(
                [
                    (TLS_CRT.to_string(), ByteString(cert.clone().into_bytes())),
                    (TLS_KEY.to_string(), ByteString(key.into_bytes())),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let mut body = serde_json::to_value(&secret)?;
        body["apiVersion"] = "v1".into();
        body["kind"] = "Secret".into();
        api.patch(
            name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .with_context(|| format!("creating CA Secret {namespace}/{name}"))?;
        Ok(cert)
    }

    /// A self-signed CA in Secret `<name>-ca` and a CA Issuer `<name>` in the test namespace;
    /// returns the CA certificate PEM.
    pub async fn create_ca_issuer(&self, name: &str) -> anyhow::Result<String> {
        let secret = format!("{name}-ca");
        let cert = self.apply_ca_secret(&self.namespace, &secret).await?;
        let issuer = serde_json::json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"ca": {"secretName": secret}},
        });
        self.api::<Issuer>()
            .patch(
                name,
                &PatchParams::apply(TEST_MANAGER).force(),
                &Patch::Apply(&issuer),
            )
            .await
            .with_context(|| format!("creating Issuer {name}"))?;
        Ok(cert)
    }

    /// A self-signed CA in Secret `<name>-ca` in the cluster resource namespace and a CA
    /// ClusterIssuer `<name>`; returns the CA certificate PEM.
    pub async fn create_ca_cluster_issuer(&self, name: &str) -> anyhow::Result<String> {
        let secret = format!("{name}-ca");
        let cert = self
            .apply_ca_secret(&self.cluster_resource_namespace, &secret)
            .await?;
        let issuer = serde_json::json!({
            "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
            "metadata": {"name": name},
            "spec": {"ca": {"secretName": secret}},
        });
        if let Ok(mut names) = self.cluster_issuers.lock() {
            names.push(name.to_string());
        }
        Api::<ClusterIssuer>::all(self.client.clone())
            .patch(
                name,
                &PatchParams::apply(TEST_MANAGER).force(),
                &Patch::Apply(&issuer),
            )
            .await
            .with_context(|| format!("creating ClusterIssuer {name}"))?;
        Ok(cert)
    }

    /// See [`manifests::tls_database`].
    pub fn tls_database(kind: DbKind, name: &str, issuer_kind: &str, issuer: &str) -> String {
        manifests::tls_database(kind, name, issuer_kind, issuer)
    }

    /// See [`manifests::no_tls_database`].
    pub fn no_tls_database(kind: DbKind, name: &str) -> String {
        manifests::no_tls_database(kind, name)
    }

    /// The database's status conditions (empty when it has none yet).
    pub async fn conditions(&self, kind: DbKind, name: &str) -> anyhow::Result<Vec<Condition>> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &kind.api_resource());
        let obj = api
            .get(name)
            .await
            .with_context(|| format!("getting {kind} {name}"))?;
        let conditions = obj
            .data
            .pointer("/status/conditions")
            .cloned()
            .unwrap_or(serde_json::Value::Array(Vec::new()));
        serde_json::from_value(conditions).context("parsing status.conditions")
    }

    /// One condition of the database, if present.
    pub async fn condition(
        &self,
        kind: DbKind,
        name: &str,
        type_: &str,
    ) -> anyhow::Result<Option<Condition>> {
        Ok(self
            .conditions(kind, name)
            .await?
            .into_iter()
            .find(|c| c.type_ == type_))
    }

    /// `(reason, note)` of the Events about the object `name` in the test namespace, oldest
    /// first. Reads events.k8s.io/v1 and core/v1 (the same Events on a real cluster, so they are
    /// de-duplicated by name).
    pub async fn events_for(&self, name: &str) -> anyhow::Result<Vec<(String, String)>> {
        use k8s_openapi::api::core::v1::Event as CoreEvent;
        use k8s_openapi::api::events::v1::Event;
        let mut found = std::collections::BTreeMap::new();
        for ev in self.api::<Event>().list(&Default::default()).await? {
            if ev.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name) {
                let time = ev.event_time.as_ref().map(|t| t.0.to_string());
                found.insert(
                    ev.metadata.name.clone().unwrap_or_default(),
                    (
                        time.unwrap_or_default(),
                        ev.reason.unwrap_or_default(),
                        ev.note.unwrap_or_default(),
                    ),
                );
            }
        }
        for ev in self.api::<CoreEvent>().list(&Default::default()).await? {
            if ev.involved_object.name.as_deref() == Some(name) {
                let key = ev.metadata.name.clone().unwrap_or_default();
                let time = ev
                    .event_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .or_else(|| ev.last_timestamp.as_ref().map(|t| t.0.to_string()));
                found.entry(key).or_insert((
                    time.unwrap_or_default(),
                    ev.reason.unwrap_or_default(),
                    ev.message.unwrap_or_default(),
                ));
            }
        }
        let mut events: Vec<_> = found.into_values().collect();
        events.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(events.into_iter().map(|(_, r, n)| (r, n)).collect())
    }

    /// The pods of database `name` (by its instance label).
    pub async fn pods_of(
        &self,
        name: &str,
    ) -> anyhow::Result<Vec<k8s_openapi::api::core::v1::Pod>> {
        let selector = format!("app.kubernetes.io/instance={name}");
        Ok(self
            .api::<k8s_openapi::api::core::v1::Pod>()
            .list(&kube::api::ListParams::default().labels(&selector))
            .await?
            .items)
    }

    /// Asks cert-manager to issue Certificate `name` again now, as `cmctl renew` does: the
    /// `Issuing` condition set True on its status. The other conditions are kept.
    pub async fn renew_certificate(&self, name: &str) -> anyhow::Result<()> {
        let certificates = self.api::<Certificate>();
        let current = certificates.get(name).await?;
        renew(&certificates, &current).await
    }

    /// Captured stdout+stderr of the operators so far.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for op in &self.operators {
            out.push_str(&format!("--- {} log ---\n{}", op.name, op.logs()));
        }
        out
    }

    fn operator(&self, which: &str) -> anyhow::Result<&Operator> {
        self.operators
            .iter()
            .find(|o| o.name == which)
            .with_context(|| format!("operator {which:?} is not running in this Env"))
    }

    /// `kill -9` one operator ("provisioner" | "ops-manager").
    pub async fn kill_operator(&self, which: &str) -> anyhow::Result<()> {
        self.operator(which)?.kill().await
    }

    /// Kill (if running) and start one operator again with the same arguments.
    pub async fn restart_operator(&self, which: &str) -> anyhow::Result<()> {
        self.operator(which)?.restart().await
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.stop_stand_ins.send(true);
        for task in self.stand_ins.drain(..) {
            task.abort();
        }
        let _ = std::fs::remove_dir_all(&self.work_dir);
        if !self.cluster.is_real() {
            return;
        }
        // The operators go first: nothing may recreate what the cleanup removes.
        for operator in &self.operators {
            operator.kill_now();
        }
        // Real cluster: clean up from a separate thread with its own runtime and client, since
        // Drop cannot await on the test's (possibly single-threaded) runtime.
        let Cluster::Real { kubeconfig } = &self.cluster else {
            return;
        };
        let cluster = Cluster::Real {
            kubeconfig: kubeconfig.clone(),
        };
        let namespaces = self.namespaces.clone();
        let issuers = self
            .cluster_issuers
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let crn = self.cluster_resource_namespace.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(client) = cluster.client_as("admin").await else {
                    return;
                };
                let dp = DeleteParams::background();
                // With the operators gone, their finalizers would keep the namespace in
                // Terminating for ever: drop them from whatever database is left.
                let no_finalizers =
                    Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
                for namespace in &namespaces {
                    for kind in DbKind::ALL {
                        let api: Api<DynamicObject> =
                            Api::namespaced_with(client.clone(), namespace, &kind.api_resource());
                        let Ok(list) = api.list_metadata(&Default::default()).await else {
                            continue;
                        };
                        for db in list.items.iter().filter_map(|d| d.metadata.name.as_deref()) {
                            let _ = api.patch(db, &PatchParams::default(), &no_finalizers).await;
                        }
                    }
                    let _ = Api::<Namespace>::all(client.clone())
                        .delete(namespace, &dp)
                        .await;
                }
                for name in issuers {
                    let _ = Api::<ClusterIssuer>::all(client.clone())
                        .delete(&name, &dp)
                        .await;
                    let _ = Api::<Secret>::namespaced(client.clone(), &crn)
                        .delete(&format!("{name}-ca"), &dp)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Sets `Issuing` True on `current`'s status (its other conditions kept), as `cmctl renew` does.
pub async fn renew(certificates: &Api<Certificate>, current: &Certificate) -> anyhow::Result<()> {
    let name = current.metadata.name.as_deref().unwrap_or_default();
    let mut conditions: Vec<serde_json::Value> = current
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| c.type_ != "Issuing")
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .collect();
    conditions.push(serde_json::json!({
        "type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
        "message": "Certificate re-issuance manually triggered",
        "lastTransitionTime": dbtls_runtime::conditions::now(),
    }));
    certificates
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"conditions": conditions}})),
        )
        .await
        .with_context(|| format!("renewing Certificate {name}"))?;
    Ok(())
}
