//! What the sandbox shows about each database: read from the API, rendered as a table.
use std::fmt::Write as _;

use dbtls_contract::api::Condition;
use dbtls_contract::api::{MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore};
use dbtls_contract::certmanager::Certificate;
use dbtls_contract::conditions::{ConditionStatus, ConditionType};
use dbtls_contract::kinds::{Database, WorkloadPart};
use dbtls_contract::petset::PetSet;
use dbtls_contract::{DbKind, names};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject};

/// One certificate of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRow {
    pub alias: String,
    pub secret: String,
    pub ready: bool,
    pub not_after: Option<String>,
    pub secret_exists: bool,
}

/// One database, as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseRow {
    pub kind: DbKind,
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub conditions: Vec<Condition>,
    pub certificates: Vec<CertRow>,
    /// `StatefulSet/<name> 1/1 ready`, one per workload of the database (a SingleStore
    /// cluster has two), or None until every one exists.
    pub workload: Option<String>,
}

impl DatabaseRow {
    fn condition_true(&self, type_: &str) -> bool {
        self.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == ConditionStatus::True.as_str())
    }

    /// Converged: the workload exists and both operators report their TLS work done.
    pub fn converged(&self) -> bool {
        self.workload.is_some()
            && self.condition_true(ConditionType::TlsSecretsReady.as_str())
            && self.condition_true(ConditionType::CertificatesReady.as_str())
    }

    /// The first condition that is not True, as `Type=Status (Reason: message)`.
    pub fn waiting_on(&self) -> Option<String> {
        let order = [
            ConditionType::IssuerReady.as_str(),
            ConditionType::CertificatesReady.as_str(),
            ConditionType::TlsSecretsReady.as_str(),
        ];
        order
            .iter()
            .find_map(|t| match self.conditions.iter().find(|c| c.type_ == *t) {
                None => Some(format!("{t} not reported yet")),
                Some(c) if c.status != ConditionStatus::True.as_str() => Some(format!(
                    "{t}={} ({}: {})",
                    c.status,
                    c.reason.as_deref().unwrap_or(""),
                    c.message.as_deref().unwrap_or("")
                )),
                Some(_) => None,
            })
    }
}

/// Reads every database of every kind in `namespace`, with its Certificates, TLS Secrets and workload.
pub async fn collect(client: &kube::Client, namespace: &str) -> anyhow::Result<Vec<DatabaseRow>> {
    let certificates: Api<Certificate> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let petsets: Api<PetSet> = Api::namespaced(client.clone(), namespace);
    let mut rows = Vec::new();
    for kind in DbKind::ALL {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &kind.api_resource());
        for db in api.list(&Default::default()).await? {
            let name = db.metadata.name.clone().unwrap_or_default();
            let status = db.data.get("status");
            let phase = status
                .and_then(|s| s.get("phase"))
                .and_then(|p| p.as_str())
                .unwrap_or("-")
                .to_string();
            let conditions: Vec<Condition> = status
                .and_then(|s| s.get("conditions"))
                .and_then(|c| serde_json::from_value(c.clone()).ok())
                .unwrap_or_default();
            let tls = db.data.pointer("/spec/tls");
            let mut certs = Vec::new();
            if tls.is_some() {
                let tls_config: dbtls_contract::api::MssqlTlsConfig = tls
                    .and_then(|t| serde_json::from_value(t.clone()).ok())
                    .unwrap_or_default();
                for (alias, secret) in dbtls_contract::tls::secrets(kind, &name, &tls_config.view())
                {
                    let cert = certificates.get_opt(&secret).await?;
                    certs.push(CertRow {
                        alias: alias.to_string(),
                        ready: cert.as_ref().is_some_and(Certificate::is_ready),
                        not_after: cert.and_then(|c| c.status).and_then(|s| s.not_after),
                        secret_exists: secrets.get_metadata_opt(&secret).await?.is_some(),
                        secret,
                    });
                }
            }
            let mut shown = Vec::new();
            for part in workload_parts(kind, &db) {
                let name = part.name;
                if let Some(sts) = statefulsets.get_opt(&name).await? {
                    let ready = sts.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                    let want = sts.spec.and_then(|s| s.replicas).unwrap_or(1);
                    shown.push(format!("StatefulSet/{name} {ready}/{want} ready"));
                } else if let Ok(Some(pet)) = petsets.get_opt(&name).await {
                    let ready = pet.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                    let want = pet.spec.replicas.unwrap_or(1);
                    shown.push(format!("PetSet/{name} {ready}/{want} ready"));
                } else {
                    shown.clear();
                    break;
                }
            }
            let workload = (!shown.is_empty()).then(|| shown.join(", "));
            rows.push(DatabaseRow {
                kind,
                namespace: namespace.to_string(),
                name,
                phase,
                conditions,
                certificates: certs,
                workload,
            });
        }
    }
    Ok(rows)
}

/// The workloads `db` runs, as the provisioner names them (a SingleStore cluster's aggregators
/// and leaves apart); `<db>` alone for an object that cannot be read as its kind, which the
/// provisioner does not run either.
fn workload_parts(kind: DbKind, db: &DynamicObject) -> Vec<WorkloadPart> {
    fn parts<T: Database>(db: &DynamicObject) -> Option<Vec<WorkloadPart>> {
        Some(db.clone().try_parse::<T>().ok()?.workload_parts())
    }
    let parts = match kind {
        DbKind::MySQL => parts::<MySQL>(db),
        DbKind::PerconaXtraDB => parts::<PerconaXtraDB>(db),
        DbKind::ProxySQL => parts::<ProxySQL>(db),
        DbKind::Singlestore => parts::<Singlestore>(db),
        DbKind::MSSQLServer => parts::<MSSQLServer>(db),
    };
    parts.unwrap_or_else(|| {
        vec![WorkloadPart {
            name: names::workload(db.metadata.name.as_deref().unwrap_or_default()),
            replicas: 1,
            role: None,
        }]
    })
}

/// The table printed at the end: one block per database.
pub fn render(rows: &[DatabaseRow]) -> String {
    let mut out = String::new();
    for row in rows {
        let _ = writeln!(
            out,
            "{:<14} {}/{}  phase={}  {}",
            row.kind.to_string(),
            row.namespace,
            row.name,
            row.phase,
            if row.converged() {
                "CONVERGED"
            } else {
                "NOT CONVERGED"
            }
        );
        let _ = writeln!(
            out,
            "    workload:     {}",
            row.workload.as_deref().unwrap_or("(not created)")
        );
        for cert in &row.certificates {
            let _ = writeln!(
                out,
                "    cert {:<17} ready={:<5} expires={:<21} secret={}{}",
                cert.alias,
                cert.ready,
                cert.not_after.as_deref().unwrap_or("-"),
                cert.secret,
                if cert.secret_exists { "" } else { " (missing)" }
            );
        }
        if row.certificates.is_empty() {
            let _ = writeln!(out, "    (no TLS)");
        }
        if let Some(waiting) = row.waiting_on() {
            let _ = writeln!(out, "    waiting on:   {waiting}");
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn object(yaml: &str) -> DynamicObject {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_singlestore_cluster_is_looked_for_as_its_two_workloads() {
        let names = |kind, yaml| -> Vec<String> {
            workload_parts(kind, &object(yaml))
                .into_iter()
                .map(|p| p.name)
                .collect()
        };
        let cluster = "apiVersion: kubedb.com/v1alpha2\nkind: Singlestore\nmetadata: {name: sdb, namespace: n}\nspec: {version: '8.7.10', topology: {aggregator: {replicas: 1}, leaf: {replicas: 2}}}\n";
        assert_eq!(
            names(DbKind::Singlestore, cluster),
            ["sdb-aggregator", "sdb-leaf"]
        );
        let standalone = "apiVersion: kubedb.com/v1\nkind: MySQL\nmetadata: {name: my, namespace: n}\nspec: {version: '8.4.3'}\n";
        assert_eq!(names(DbKind::MySQL, standalone), ["my"]);
        // Not readable as a SingleStore: the name alone, no error.
        let odd = "apiVersion: kubedb.com/v1alpha2\nkind: Singlestore\nmetadata: {name: odd, namespace: n}\nspec: {topology: 3}\n";
        assert_eq!(names(DbKind::Singlestore, odd), ["odd"]);
    }

    fn condition(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: "t".into(),
            ..Default::default()
        }
    }

    fn row(conditions: Vec<Condition>, workload: Option<&str>) -> DatabaseRow {
        DatabaseRow {
            kind: DbKind::MySQL,
            namespace: "demo".into(),
            name: "db".into(),
            phase: "Provisioning".into(),
            conditions,
            certificates: vec![],
            workload: workload.map(str::to_string),
        }
    }

    #[test]
    fn converged_needs_workload_and_both_operators() {
        let done = vec![
            condition(ConditionType::TlsSecretsReady.as_str(), "True"),
            condition(ConditionType::CertificatesReady.as_str(), "True"),
        ];
        assert!(row(done.clone(), Some("StatefulSet/db 0/1 ready")).converged());
        assert!(!row(done, None).converged());
        let waiting = vec![
            condition(ConditionType::TlsSecretsReady.as_str(), "False"),
            condition(ConditionType::CertificatesReady.as_str(), "True"),
        ];
        let r = row(waiting, Some("x"));
        assert!(!r.converged());
        assert!(
            r.waiting_on()
                .is_some_and(|w| w.starts_with("IssuerReady not reported"))
        );
    }

    #[test]
    fn render_names_missing_secrets() {
        let mut r = row(vec![], None);
        r.certificates.push(CertRow {
            alias: "server".into(),
            secret: "db-server-cert".into(),
            ready: false,
            not_after: None,
            secret_exists: false,
        });
        let text = render(&[r]);
        assert!(text.contains("NOT CONVERGED"));
        assert!(text.contains("db-server-cert (missing)"));
        assert!(text.contains("(not created)"));
    }
}
