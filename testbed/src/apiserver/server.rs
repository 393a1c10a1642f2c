//! Starting and stopping the server, and handles for tests.
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::json;
use tokio::task::JoinHandle;

use super::config::ApiServerConfig;
use super::faults::FaultInjector;
use super::http::{self, Shared};
use super::request_log::RequestLog;
use super::resources;
use super::store::Store;

/// A running in-memory API server on 127.0.0.1. Dropping it (or `shutdown()`) stops it.
pub struct TestApiServer {
    url: String,
    shared: Arc<Shared>,
    client: kube::Client,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

fn seeded_store(config: &ApiServerConfig) -> Store {
    let mut store = Store::new(config.history_size, config.watch_buffer);
    for def in resources::builtins() {
        store
            .defs
            .insert((def.group.clone(), def.plural.clone()), def);
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (i, ns) in ["default", "kube-system", "kube-public"]
        .into_iter()
        .enumerate()
    {
        let obj = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "uid": format!("00000000-0000-4000-8000-00000000000{i}"), "creationTimestamp": now,
                         "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
        });
        store.put(
            &("".into(), "namespaces".into()),
            (String::new(), ns.into()),
            obj,
        );
    }
    store
}

/// A kubeconfig for `user` (token = user name, and a `/u/{user}` path prefix because kubectl
/// sends no token over plain HTTP) against `url`. Names are quoted: service-account users
/// (`system:serviceaccount:ns:sa`) contain colons.
fn kubeconfig_yaml(url: &str, user: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let server = q(&format!("{url}/u/{user}"));
    let user = q(user);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n    server: {server}\nusers:\n- name: {user}\n  user:\n    token: {user}\ncontexts:\n- name: testbed\n  context:\n    cluster: testbed\n    user: {user}\n    namespace: default\ncurrent-context: testbed\n"
    )
}

/// A kube client for `user` against `url`.
pub async fn client_for(url: &str, user: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig_yaml(url, user))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

impl TestApiServer {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start(config: ApiServerConfig) -> anyhow::Result<TestApiServer> {
        Self::start_on("127.0.0.1:0", config).await
    }

    /// Starts on the given address (the sandbox may want a fixed port).
    pub async fn start_on(addr: &str, config: ApiServerConfig) -> anyhow::Result<TestApiServer> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        let url = format!("http://{local}");
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let store = seeded_store(&config);
        let shared = Arc::new(Shared::new(
            store,
            config,
            FaultInjector::default(),
            shutdown_rx.clone(),
            local.to_string(),
        ));
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let mut stop = shutdown_rx;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "test API server stopped");
            }
        });
        let client = client_for(&url, "admin").await?;
        Ok(TestApiServer {
            url,
            shared,
            client,
            shutdown_tx,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Writes a kubeconfig whose token identifies `user` in the request log.
    pub fn write_kubeconfig(&self, path: &Path, user: &str) -> anyhow::Result<()> {
        std::fs::write(path, kubeconfig_yaml(&self.url, user))
            .with_context(|| format!("writing {}", path.display()))
    }

    /// A client authenticated as `admin`.
    pub async fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A client authenticated as `user`.
    pub async fn client_as(&self, user: &str) -> anyhow::Result<kube::Client> {
        client_for(&self.url, user).await
    }

    pub fn request_log(&self) -> RequestLog {
        self.shared.log.clone()
    }

    pub fn faults(&self) -> FaultInjector {
        self.shared.faults.clone()
    }

    /// Stops serving and closes open watches.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
