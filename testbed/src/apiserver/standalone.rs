//! `sandbox apiserver --kubeconfig FILE`: run the server until Ctrl-C.
use std::path::PathBuf;

use super::config::ApiServerConfig;
use super::server::TestApiServer;

/// Starts the server, writes an admin kubeconfig to `kubeconfig`, and serves until Ctrl-C.
pub async fn run_standalone(kubeconfig: PathBuf) -> anyhow::Result<()> {
    let server = TestApiServer::start(ApiServerConfig::default()).await?;
    server.write_kubeconfig(&kubeconfig, "admin")?;
    println!(
        "API server listening on {}; kubeconfig written to {}",
        server.url(),
        kubeconfig.display()
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
