//! Where the test runs: a fresh in-memory API server, or the real cluster named by
//! `DBTLS_E2E_KUBECONFIG`; and who plays the parts no operator plays (cert-manager, the
//! workload controllers), as the environment says, never guessed from the cluster's state.
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig, NamedAuthInfo};

use super::identities;
use crate::apiserver::{ApiServerConfig, TestApiServer};

/// The environment variable naming a real cluster's kubeconfig.
pub const REAL_CLUSTER_ENV: &str = "DBTLS_E2E_KUBECONFIG";
/// Who issues Certificates: `stand-in` (default; the harness runs the cert-manager stand-in in
/// the test process) or `external` (a real cert-manager runs in the cluster).
pub const CERT_MANAGER_ENV: &str = "DBTLS_E2E_CERT_MANAGER";
/// Who reports StatefulSet/PetSet status: `stand-in` (default; the workload-status stand-in)
/// or `cluster` (the cluster's own controllers and kubelets: pods really run).
pub const WORKLOADS_ENV: &str = "DBTLS_E2E_WORKLOADS";

/// Who plays a part of the cluster that no operator plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Played {
    /// The harness runs a stand-in in the test process.
    ByStandIn,
    /// The cluster has the real thing.
    ByCluster,
}

/// Reads `var`: `stand-in` (or unset) or `real_name`; anything else is an error naming both.
fn played(var: &str, real_name: &str) -> anyhow::Result<Played> {
    parse_played(var, std::env::var(var).ok().as_deref(), real_name)
}

fn parse_played(var: &str, value: Option<&str>, real_name: &str) -> anyhow::Result<Played> {
    match value.map(str::trim) {
        None | Some("") | Some("stand-in") => Ok(Played::ByStandIn),
        Some(v) if v == real_name => Ok(Played::ByCluster),
        Some(other) => anyhow::bail!("{var}={other:?}: expected \"stand-in\" or \"{real_name}\""),
    }
}

/// Who issues Certificates (`DBTLS_E2E_CERT_MANAGER`).
pub fn cert_manager() -> anyhow::Result<Played> {
    played(CERT_MANAGER_ENV, "external")
}

/// Who reports workload status (`DBTLS_E2E_WORKLOADS`).
pub fn workloads() -> anyhow::Result<Played> {
    played(WORKLOADS_ENV, "cluster")
}

/// Whether the tests run against a real cluster (`DBTLS_E2E_KUBECONFIG` is set).
pub fn is_real() -> bool {
    std::env::var_os(REAL_CLUSTER_ENV).is_some_and(|v| !v.is_empty())
}

/// Prints why a test does nothing on a real cluster and returns true there; tests that need
/// what only the testbed has (fault injection, its request log) start with it.
pub fn testbed_only(test: &str, why: &str) -> bool {
    if is_real() {
        println!("{test}: testbed only ({why}); skipped on the real cluster");
    }
    is_real()
}

/// The API server the test talks to.
pub enum Cluster {
    Testbed(Box<TestApiServer>),
    Real { kubeconfig: PathBuf },
}

/// How long an operator's ServiceAccount token lasts on a real cluster: longer than any test.
const TOKEN_LIFETIME: Duration = Duration::from_secs(2 * 3600);

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

    /// A client for `user`. On a real cluster the operators' users are their ServiceAccounts
    /// (a token from the TokenRequest API, so `deploy/`'s RBAC applies); every other user is
    /// the kubeconfig's identity.
    pub async fn client_as(&self, user: &str) -> anyhow::Result<kube::Client> {
        match self {
            Cluster::Testbed(server) => server.client_as(user).await,
            Cluster::Real { kubeconfig } => {
                let config = match identities::service_account_of(user) {
                    Some(sa) => self.service_account_kubeconfig(kubeconfig, sa).await?,
                    None => Kubeconfig::read_from(kubeconfig)
                        .with_context(|| format!("reading {}", kubeconfig.display()))?,
                };
                let config =
                    kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
                        .await?;
                Ok(kube::Client::try_from(config)?)
            }
        }
    }

    /// Writes a kubeconfig for `user` under `dir` (on a real cluster: a ServiceAccount token
    /// for the operators' users, the given kubeconfig for anyone else).
    pub async fn kubeconfig_for(&self, dir: &Path, user: &str) -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("{}.kubeconfig", user.replace(':', "_")));
        match self {
            Cluster::Testbed(server) => server.write_kubeconfig(&path, user)?,
            Cluster::Real { kubeconfig } => {
                let Some(sa) = identities::service_account_of(user) else {
                    return Ok(kubeconfig.clone());
                };
                let config = self.service_account_kubeconfig(kubeconfig, sa).await?;
                std::fs::write(&path, serde_yaml::to_string(&config)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Ok(path)
    }

    /// The admin kubeconfig with its user replaced by a fresh token of ServiceAccount
    /// `(namespace, name)`.
    async fn service_account_kubeconfig(
        &self,
        admin: &Path,
        (namespace, name): (&str, &str),
    ) -> anyhow::Result<Kubeconfig> {
        let mut config =
            Kubeconfig::read_from(admin).with_context(|| format!("reading {}", admin.display()))?;
        let admin_config =
            kube::Config::from_custom_kubeconfig(config.clone(), &KubeConfigOptions::default())
                .await?;
        let client = kube::Client::try_from(admin_config)?;
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(TOKEN_LIFETIME.as_secs() as i64),
                ..Default::default()
            },
            ..Default::default()
        };
        let token = Api::<ServiceAccount>::namespaced(client, namespace)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?
            .status
            .map(|s| s.token)
            .with_context(|| format!("no token in the TokenRequest of {namespace}/{name}"))?;
        let user = format!("system:serviceaccount:{namespace}:{name}");
        config.auth_infos = vec![NamedAuthInfo {
            name: user.clone(),
            auth_info: Some(AuthInfo {
                token: Some(token.into()),
                ..Default::default()
            }),
            ..Default::default()
        }];
        for context in &mut config.contexts {
            if let Some(c) = context.context.as_mut() {
                c.user = Some(user.clone());
            }
        }
        Ok(config)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_told_not_guessed() {
        let var = CERT_MANAGER_ENV;
        assert_eq!(
            parse_played(var, None, "external").unwrap(),
            Played::ByStandIn
        );
        assert_eq!(
            parse_played(var, Some("stand-in"), "external").unwrap(),
            Played::ByStandIn
        );
        assert_eq!(
            parse_played(var, Some("external"), "external").unwrap(),
            Played::ByCluster
        );
        let error = parse_played(var, Some("real"), "external")
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"stand-in\" or \"external\""), "{error}");
    }
}
