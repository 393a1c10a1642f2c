//! Where the test runs: a fresh in-memory API server, or the real cluster named by
//! `DBTLS_E2E_KUBECONFIG`.
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::apiserver::{ApiServerConfig, TestApiServer};

/// The environment variable naming a real cluster's kubeconfig.
pub const REAL_CLUSTER_ENV: &str = "DBTLS_E2E_KUBECONFIG";

/// The API server the test talks to.
pub enum Cluster {
    Testbed(Box<TestApiServer>),
    Real { kubeconfig: PathBuf },
}

impl Cluster {
    /// The testbed unless `DBTLS_E2E_KUBECONFIG` is set.
    pub async fn connect(config: ApiServerConfig) -> anyhow::Result<Cluster> {
        match std::env::var_os(REAL_CLUSTER_ENV) {
            Some(path) if !path.is_empty() => Ok(Cluster::Real {
                kubeconfig: PathBuf::from(path),
            }),
            _ => Ok(Cluster::Testbed(Box::new(
                TestApiServer::start(config).await?,
            ))),
        }
    }

    /// A client for `user`; on a real cluster every user is the kubeconfig's identity.
    pub async fn client_as(&self, user: &str) -> anyhow::Result<kube::Client> {
        match self {
            Cluster::Testbed(server) => server.client_as(user).await,
            Cluster::Real { kubeconfig } => {
                let config = kube::config::Kubeconfig::read_from(kubeconfig)
                    .with_context(|| format!("reading {}", kubeconfig.display()))?;
                let config = kube::Config::from_custom_kubeconfig(
                    config,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await?;
                Ok(kube::Client::try_from(config)?)
            }
        }
    }

    /// Writes (testbed) or names (real cluster) a kubeconfig for `user` under `dir`.
    pub fn kubeconfig_for(&self, dir: &Path, user: &str) -> anyhow::Result<PathBuf> {
        match self {
            Cluster::Testbed(server) => {
                let path = dir.join(format!("{user}.kubeconfig"));
                server.write_kubeconfig(&path, user)?;
                Ok(path)
            }
            Cluster::Real { kubeconfig } => Ok(kubeconfig.clone()),
        }
    }

    pub fn api_server(&self) -> Option<&TestApiServer> {
        match self {
            Cluster::Testbed(server) => Some(server),
            Cluster::Real { .. } => None,
        }
    }

    pub fn is_real(&self) -> bool {
        matches!(self, Cluster::Real { .. })
    }
}
