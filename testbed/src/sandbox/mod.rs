//! The sandbox: the whole system on one machine, no cluster needed. It starts the in-memory API
//! server, the cert-manager stand-in, a workload-status stand-in and both real operator binaries,
//! applies `examples/` (a CA Issuer and one TLS database of each kind), shows progress while they
//! converge and prints what each database got.
pub mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};

use crate::apiserver::{ApiServerConfig, TestApiServer};
use crate::certmanager::{self, StandInConfig};
use crate::harness::cluster::Played;
use crate::harness::{apply, crds, manifests, operators};
use crate::workload_sim;

/// How often `--keep` rewrites the operators' log files.
const LOG_REFRESH: Duration = Duration::from_secs(2);

/// Field manager of what the sandbox applies (as a user's kubectl would).
const SANDBOX_MANAGER: &str = "sandbox";
/// The namespace and CA Secret the examples use (`examples/issuer.yaml`).
const EXAMPLES_NAMESPACE: &str = "demo";
const CA_SECRET: &str = "ca";

pub struct SandboxOptions {
    /// Stay up after converging, for kubectl.
    pub keep: bool,
    /// Where kubeconfigs and logs go (a fresh temp dir when None).
    pub dir: Option<PathBuf>,
    /// How long the databases may take to converge.
    pub deadline: Duration,
}

/// Runs the sandbox; Ok(true) when every database converged.
pub async fn run(options: SandboxOptions) -> anyhow::Result<bool> {
    let started = Instant::now();
    let dir = match options.dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("dbtls-sandbox-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let server = TestApiServer::start(ApiServerConfig::default()).await?;
    let admin_kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&admin_kubeconfig, "admin")?;
    let admin = server.client_as("admin").await?;
    println!(
        "api server   {} (kubeconfig {})",
        server.url(),
        admin_kubeconfig.display()
    );
    crds::install(&admin, Played::ByStandIn).await?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let stand_in = tokio::spawn(certmanager::run(
        server.client_as("cert-manager").await?,
        StandInConfig::default(),
        stopped(),
    ));
    let workloads = tokio::spawn(workload_sim::run(
        server.client_as("kube-controller-manager").await?,
        Vec::new(),
        stopped(),
    ));
    println!("cert-manager stand-in and workload-status stand-in running");

    println!("building the operators (cargo build -p provisioner -p ops-manager)...");
    let bin_dir = operators::build_once().await?;
    let mut running = Vec::new();
    for name in ["provisioner", "ops-manager"] {
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        server.write_kubeconfig(&kubeconfig, name)?;
        let port = free_port()?;
        let mut args = vec!["--metrics-addr".to_string(), format!("127.0.0.1:{port}")];
        if name == "provisioner" {
            // The stand-in's pods read no Secret: nothing to wait for.
            args.push("--secret-propagation=0s".to_string());
        }
        running.push((
            std::sync::Arc::new(Operator::start(name, &bin_dir, &kubeconfig, &args).await?),
            port,
        ));
        println!("{name:<12} running, metrics on http://127.0.0.1:{port}/metrics");
    }

    apply_examples(&admin).await?;
    let rows = wait_for_convergence(&admin, options.deadline, started).await?;
    println!("\n{}", report::render(&rows));
    let all_converged = !rows.is_empty() && rows.iter().all(report::DatabaseRow::converged);
    println!(
        "{} of {} databases converged in {:.1}s",
        rows.iter().filter(|r| r.converged()).count(),
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    for (operator, _) in &running {
        std::fs::write(dir.join(format!("{}.log", operator.name)), operator.logs())?;
    }
    println!("operator logs in {}", dir.display());
    if options.keep {
        // What the operators do after convergence (the user's own manifests) reaches the log
        // files too, also when the sandbox is killed rather than stopped.
        let operators: Vec<_> = running.iter().map(|(o, _)| o.clone()).collect();
        let dir = dir.clone();
        let stop = stopped();
        tokio::spawn(async move {
            let write = async {
                loop {
                    tokio::time::sleep(LOG_REFRESH).await;
                    for operator in &operators {
                        let path = dir.join(format!("{}.log", operator.name));
                        if let Err(e) = std::fs::write(&path, operator.logs()) {
                            eprintln!("writing {}: {e}", path.display());
                        }
                    }
                }
            };
            tokio::select! {
                () = write => {}
                () = stop => {}
            }
        });
    }

    if options.keep {
        println!("\nThe sandbox stays up. Try:");
        println!("  export KUBECONFIG={}", admin_kubeconfig.display());
        println!(
            "  kubectl get mysql,perconaxtradbs,proxysqls,singlestores,mssqlservers,certificates,secrets,statefulsets -A"
        );
        for (operator, port) in &running {
            println!(
                "  curl -s http://127.0.0.1:{port}/metrics   # {}",
                operator.name
            );
        }
        println!("Press Ctrl-C to stop.");
        stop_signal().await?;
    }

    let _ = stop_tx.send(true);
    for (operator, _) in &running {
        operator.kill().await?;
    }
    let _ = tokio::join!(stand_in, workloads);
    server.shutdown().await;
    Ok(all_converged)
}

use operators::Operator;

/// Ctrl-C or SIGTERM: either stops the sandbox and the operators it started.
async fn stop_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Applies the namespace, a freshly generated CA Secret, the Issuer and every example database.
async fn apply_examples(client: &kube::Client) -> anyhow::Result<()> {
    let examples = operators::workspace_root().join("examples");
    let kinds = apply::KindCache::default();
    let read = |file: &str| {
        std::fs::read_to_string(examples.join(file))
            .with_context(|| format!("reading examples/{file}"))
    };
    apply::apply_yaml(
        client,
        &kinds,
        &read("namespace.yaml")?,
        None,
        SANDBOX_MANAGER,
    )
    .await?;

    // The CA the Issuer signs with: what `openssl req -x509` + `kubectl create secret tls` make.
    let (cert, key) = manifests::self_signed_ca("dbtls sandbox CA")?;
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": CA_SECRET, "namespace": EXAMPLES_NAMESPACE},
        "stringData": {"tls.crt": cert, "tls.key": key},
    });
    Api::<Secret>::namespaced(client.clone(), EXAMPLES_NAMESPACE)
        .patch(
            CA_SECRET,
            &PatchParams::apply(SANDBOX_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .context("creating the CA Secret")?;

    for file in [
        "issuer.yaml",
        "singlestore-license.yaml",
        "mysql.yaml",
        "perconaxtradb.yaml",
        "proxysql.yaml",
        "singlestore.yaml",
        "mssqlserver.yaml",
    ] {
        for applied in
            apply::apply_yaml(client, &kinds, &read(file)?, None, SANDBOX_MANAGER).await?
        {
            println!("applied      {applied} (examples/{file})");
        }
    }
    Ok(())
}

/// Prints a progress line whenever the picture changes; returns the final rows.
async fn wait_for_convergence(
    client: &kube::Client,
    deadline: Duration,
    started: Instant,
) -> anyhow::Result<Vec<report::DatabaseRow>> {
    let until = Instant::now() + deadline;
    let mut last_line = String::new();
    loop {
        let rows = report::collect(client, EXAMPLES_NAMESPACE).await?;
        let converged = rows.iter().filter(|r| r.converged()).count();
        let waiting: Vec<String> = rows
            .iter()
            .filter(|r| !r.converged())
            .map(|r| {
                format!(
                    "{}: {}",
                    r.name,
                    r.waiting_on()
                        .unwrap_or_else(|| "workload not created".into())
                )
            })
            .collect();
        let line = format!(
            "{converged}/{} converged{}",
            rows.len(),
            if waiting.is_empty() {
                String::new()
            } else {
                format!(" — {}", waiting.join("; "))
            }
        );
        if line != last_line {
            println!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            last_line = line;
        }
        if (!rows.is_empty() && converged == rows.len()) || Instant::now() >= until {
            return Ok(rows);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
