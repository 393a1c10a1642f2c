//! Who runs as whom in an [`Env`](super::Env), and the RBAC that makes it so on the testbed.
//!
//! The operators run as their own ServiceAccounts under exactly the RBAC of `deploy/`, with the
//! testbed enforcing it, so a permission missing from (or a write the operator should not make
//! beyond) `deploy/<operator>/rbac.yaml` fails an end-to-end test with a 403. The cluster's own
//! controllers the testbed plays (cert-manager, the workload status of kube-controller-manager)
//! are not under test: they get a ClusterRole of their own that allows everything, under
//! distinct user names so the request log tells them apart.
use std::path::PathBuf;

use super::apply::{self, KindCache};
use super::operators::workspace_root;

/// The operators' namespace in `deploy/namespace.yaml` (their ServiceAccounts and Leases).
pub const OPERATOR_NAMESPACE: &str = "dbtls-system";
/// The provisioner's user: its ServiceAccount's token identity.
pub const PROVISIONER_USER: &str = "system:serviceaccount:dbtls-system:dbtls-provisioner";
/// The ops-manager's user: its ServiceAccount's token identity.
pub const OPS_MANAGER_USER: &str = "system:serviceaccount:dbtls-system:dbtls-ops-manager";
/// The cert-manager stand-in's user.
pub const CERT_MANAGER_USER: &str = "cert-manager";
/// The workload-status stand-in's user (kube-controller-manager's role).
pub const WORKLOAD_SIM_USER: &str = "kube-controller-manager";
/// The ClusterRole (and binding) of the stand-ins.
pub const STAND_INS_ROLE: &str = "dbtls-e2e-stand-ins";
/// Field manager of the RBAC the harness applies.
const MANAGER: &str = "e2e-rbac";

/// The user an operator binary ("provisioner" | "ops-manager") runs as.
pub fn operator_user(operator: &str) -> anyhow::Result<&'static str> {
    match operator {
        "provisioner" => Ok(PROVISIONER_USER),
        "ops-manager" => Ok(OPS_MANAGER_USER),
        other => anyhow::bail!("unknown operator {other:?}"),
    }
}

/// The `deploy/` files that set up the operators' identities, in apply order.
pub fn deploy_rbac_files() -> Vec<PathBuf> {
    let deploy = workspace_root().join("deploy");
    let mut files = vec![deploy.join("namespace.yaml")];
    for operator in ["provisioner", "ops-manager"] {
        files.push(deploy.join(operator).join("serviceaccount.yaml"));
        files.push(deploy.join(operator).join("rbac.yaml"));
    }
    files
}

/// The stand-ins' ClusterRole and its binding to their users.
fn stand_ins_rbac() -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {STAND_INS_ROLE}
rules:
  - apiGroups: ['*']
    resources: ['*']
    verbs: ['*']
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {STAND_INS_ROLE}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {STAND_INS_ROLE}
subjects:
  - {{kind: User, apiGroup: rbac.authorization.k8s.io, name: {CERT_MANAGER_USER}}}
  - {{kind: User, apiGroup: rbac.authorization.k8s.io, name: {WORKLOAD_SIM_USER}}}
"
    )
}

/// Applies (as the admin `client`) the operators' namespace, ServiceAccounts and RBAC from
/// `deploy/` and, with `stand_ins`, the stand-ins' ClusterRole (on a real cluster they run as
/// the kubeconfig's user instead).
pub async fn install(
    client: &kube::Client,
    cache: &KindCache,
    stand_ins: bool,
) -> anyhow::Result<()> {
    for file in deploy_rbac_files() {
        let yaml = std::fs::read_to_string(&file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
        apply::apply_yaml(client, cache, &yaml, None, MANAGER).await?;
    }
    if stand_ins {
        apply::apply_yaml(client, cache, &stand_ins_rbac(), None, MANAGER).await?;
    }
    Ok(())
}

/// `(namespace, name)` of the ServiceAccount behind an operator's user, None for other users.
pub fn service_account_of(user: &str) -> Option<(&'static str, &'static str)> {
    match user {
        PROVISIONER_USER => Some((OPERATOR_NAMESPACE, "dbtls-provisioner")),
        OPS_MANAGER_USER => Some((OPERATOR_NAMESPACE, "dbtls-ops-manager")),
        _ => None,
    }
}
