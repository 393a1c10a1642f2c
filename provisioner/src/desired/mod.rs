//! Pure builders: the desired child objects of a database, from [`DbFacts`] alone.
//! Nothing here talks to the API server; `reconcile` applies what these return.
pub mod auth;
pub mod config;
pub mod galera;
pub mod pod;
pub mod server_tls;
pub mod services;
pub mod user_template;
pub mod workload;

use dbtls_contract::labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::facts::DbFacts;

/// Metadata of a child named `name`: the database's 4 labels and its controller ownerReference.
pub fn child_meta(db: &DbFacts<'_>, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(db.namespace.clone()),
        labels: Some(labels::for_database(db.kind, &db.name)),
        owner_references: db.owner.clone().map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

use dbtls_contract::DbKind;
use k8s_openapi::api::core::v1::{EnvVar, Secret};

use crate::workload::{Workload, WorkloadApi};
use server_tls::{ServerTls, TlsInput};

/// `(alias, Secret name)` of every TLS Secret the database needs; empty without `spec.tls`.
pub fn tls_secret_names(db: &DbFacts<'_>) -> Vec<(&'static str, String)> {
    db.tls
        .map(|tls| dbtls_contract::tls::secrets(db.kind, &db.name, &tls))
        .unwrap_or_default()
}

/// Every Secret the workload mounts for TLS: each alias's and the CA bundle the ops-manager
/// writes from them; empty without `spec.tls`.
pub fn mounted_tls_secrets(db: &DbFacts<'_>) -> Vec<String> {
    let mut names: Vec<String> = tls_secret_names(db).into_iter().map(|(_, n)| n).collect();
    if db.tls.is_some() {
        names.push(dbtls_contract::names::ca_bundle(&db.name));
    }
    names
}

/// The server's TLS configuration, or None without `spec.tls`.
pub fn server_tls_for(db: &DbFacts<'_>) -> Option<ServerTls> {
    let tls = db.tls?;
    let secrets = tls_secret_names(db);
    let ca_bundle = dbtls_contract::names::ca_bundle(&db.name);
    Some(server_tls::server_tls(
        db.kind,
        &TlsInput {
            secrets: &secrets,
            require_ssl: db.require_ssl,
            client_tls: tls.client_tls.unwrap_or(false),
            ca_bundle: &ca_bundle,
        },
    ))
}

/// Arguments and environment that make the pods of a kind one cluster (PerconaXtraDB's Galera).
fn cluster_config(db: &DbFacts<'_>) -> (Vec<String>, Vec<EnvVar>) {
    match db.kind {
        DbKind::PerconaXtraDB => {
            let tls_dir = db.tls.map(|_| server_tls::percona_server_dir());
            (galera::args(db, tls_dir.as_deref()), galera::env())
        }
        _ => (Vec::new(), Vec::new()),
    }
}

/// The workload and the config Secret it reads (if the kind needs one).
pub fn workload_for(db: &DbFacts<'_>, image: &str, api: WorkloadApi) -> (Workload, Option<Secret>) {
    let tls = server_tls_for(db);
    let (cluster_args, cluster_env) = cluster_config(db);
    let template = pod::pod_template(
        db,
        &pod::PodInputs {
            image: image.to_string(),
            auth_secret: db.auth_secret_name(),
            tls: tls.as_ref(),
            cluster_args,
            cluster_env,
        },
    );
    let config = tls
        .as_ref()
        .and_then(|t| config::config_secret(db, &t.config_files));
    let spec = workload::workload_spec(db, template);
    (workload::workload(db, api, spec), config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::facts::fixtures::load;
    use dbtls_contract::api::{MSSQLServer, MySQL, PerconaXtraDB, ProxySQL, Singlestore};
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn statefulset(workload: Workload) -> StatefulSet {
        match workload {
            Workload::StatefulSet(s) => s,
            Workload::PetSet(_) => panic!("expected a StatefulSet"),
        }
    }

    fn pod_spec(workload: &Workload) -> PodSpec {
        workload.pod_template().unwrap().spec.clone().unwrap()
    }

    fn db_container<'a>(spec: &'a PodSpec, name: &str) -> &'a Container {
        spec.containers.iter().find(|c| c.name == name).unwrap()
    }

    fn no_sub_path(workload: &Workload) {
        let json = workload.to_value().unwrap().to_string();
        assert!(!json.contains("subPath"), "subPath in {json}");
    }

    #[test]
    fn require_ssl_mysql_statefulset() {
        let db: MySQL = load("mysql-require-ssl.yaml");
        let facts = DbFacts::of(&db);
        let (workload, config) = workload_for(&facts, "mysql:8.4.3", WorkloadApi::StatefulSet);
        assert!(config.is_none());
        no_sub_path(&workload);
        let sts = statefulset(workload.clone());
        let spec = sts.spec.clone().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("my-db-pods"));
        let vct = &spec.volume_claim_templates.unwrap()[0];
        assert_eq!(vct.metadata.name.as_deref(), Some("data"));
        assert_eq!(
            vct.metadata.labels.as_ref().unwrap()["app.kubernetes.io/instance"],
            "my-db"
        );

        let pod = pod_spec(&workload);
        let mysql = db_container(&pod, "mysql");
        assert_eq!(mysql.image.as_deref(), Some("mysql:8.4.3"));
        let args = mysql.args.clone().unwrap();
        assert!(args.contains(&"--require-secure-transport=ON".to_string()));
        assert!(args.contains(&"--ssl-ca=/etc/mysql/certs/ca.crt".to_string()));

        // Exactly the five files, from a projected volume; the client entry honours secretName.
        let volumes = pod.volumes.clone().unwrap();
        assert_eq!(volumes.len(), 1, "{volumes:?}");
        let tls = &volumes[0];
        assert_eq!(tls.name, "tls-volume");
        assert!(tls.secret.is_none());
        let sources = tls.projected.clone().unwrap().sources.unwrap();
        let mut files = Vec::new();
        for source in &sources {
            let secret = source.secret.clone().unwrap();
            for item in secret.items.unwrap() {
                files.push((secret.name.clone(), item.key, item.path));
            }
        }
        files.sort();
        let expected = [
            ("my-db-ca-bundle", "ca.crt", "ca.crt"),
            ("my-db-server-cert", "tls.crt", "server.crt"),
            ("my-db-server-cert", "tls.key", "server.key"),
            ("my-own-client-cert", "tls.crt", "client.crt"),
            ("my-own-client-cert", "tls.key", "client.key"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(s, k, p)| (s.to_string(), k.to_string(), p.to_string()))
            .collect();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        assert_eq!(files, expected_sorted);
        let mount = mysql
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "tls-volume")
            .unwrap();
        assert_eq!(mount.mount_path, "/etc/mysql/certs");
        assert_eq!(mount.read_only, Some(true));

        // The auth Secret as environment; the user's env and labels merged in.
        let env = mysql.env.clone().unwrap();
        let root = env
            .iter()
            .find(|e| e.name == "MYSQL_ROOT_PASSWORD")
            .unwrap();
        let key_ref = root.value_from.clone().unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (key_ref.name.as_str(), key_ref.key.as_str()),
            ("my-db-auth", "password")
        );
        assert!(env.iter().any(|e| e.name == "TZ"));
        assert!(mysql.resources.is_some());
        assert!(mysql.readiness_probe.as_ref().unwrap().tcp_socket.is_some());
        let labels = sts.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["team"], "payments");
        assert_eq!(labels["app.kubernetes.io/name"], "mysqls.kubedb.com");
    }

    #[test]
    fn without_tls_there_is_no_tls_volume_or_argument() {
        let db: MySQL = load("mysql-no-tls.yaml");
        let facts = DbFacts::of(&db);
        let (workload, config) = workload_for(&facts, "mysql:8.0.36", WorkloadApi::StatefulSet);
        assert!(config.is_none());
        let pod = pod_spec(&workload);
        let mysql = db_container(&pod, "mysql");
        assert!(mysql.args.is_none());
        let volumes = pod.volumes.clone().unwrap();
        assert_eq!(volumes.len(), 1);
        assert!(
            volumes[0].empty_dir.is_some(),
            "ephemeral data: {volumes:?}"
        );
        assert!(
            statefulset(workload.clone())
                .spec
                .unwrap()
                .volume_claim_templates
                .is_none()
        );
        // The user's auth Secret is the one referenced.
        let env = mysql.env.clone().unwrap();
        let key_ref = env[0].value_from.clone().unwrap().secret_key_ref.unwrap();
        assert_eq!(key_ref.name, "my-root-credentials");
        assert!(tls_secret_names(&facts).is_empty());
    }

    #[test]
    fn percona_mounts_each_alias_in_its_own_directory() {
        let db: PerconaXtraDB = load("percona-tls.yaml");
        let facts = DbFacts::of(&db);
        let (workload, _) = workload_for(&facts, "img", WorkloadApi::StatefulSet);
        no_sub_path(&workload);
        let pod = pod_spec(&workload);
        let c = db_container(&pod, "perconaxtradb");
        let mounts: Vec<_> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.mount_path.clone())
            .collect();
        assert!(mounts.contains(&"/etc/mysql/certs/server".to_string()));
        assert!(mounts.contains(&"/etc/mysql/certs/metrics-exporter".to_string()));
        let args = c.args.clone().unwrap();
        assert!(args.contains(&"--require-secure-transport=ON".to_string()));
        // One Galera cluster, its replication on the server certificate; the receive address
        // refers to a variable the container has.
        assert!(
            args.iter()
                .any(|a| a.starts_with("--wsrep-cluster-address=gcomm://"))
        );
        assert!(
            args.iter()
                .any(|a| a.contains("socket.ssl_cert=/etc/mysql/certs/server/tls.crt"))
        );
        let env = c.env.clone().unwrap();
        assert!(env.iter().any(|e| e.name == galera::POD_NAME_ENV));
    }

    #[test]
    fn proxysql_runs_without_storage_and_with_frontend_tls() {
        let db: ProxySQL = load("proxysql-tls.yaml");
        let facts = DbFacts::of(&db);
        let (workload, _) =
            workload_for(&facts, "proxysql/proxysql:2.7.1", WorkloadApi::StatefulSet);
        no_sub_path(&workload);
        let pod = pod_spec(&workload);
        assert!(pod.init_containers.is_some());
        let c = db_container(&pod, "proxysql");
        assert!(
            c.env
                .as_ref()
                .unwrap()
                .iter()
                .any(|e| e.name == "FRONTEND_TLS_ENABLED")
        );
        assert!(
            statefulset(workload)
                .spec
                .unwrap()
                .volume_claim_templates
                .is_none()
        );
    }

    #[test]
    fn mssql_petset_gets_mssql_conf_only_with_client_tls() {
        let db: MSSQLServer = load("mssql-client-tls.yaml");
        let facts = DbFacts::of(&db);
        let (workload, config) = workload_for(&facts, "mssql:x", WorkloadApi::PetSet);
        assert!(matches!(workload, Workload::PetSet(_)));
        no_sub_path(&workload);
        let config = config.unwrap();
        assert_eq!(config.metadata.name.as_deref(), Some("ms-db-config"));
        let conf = String::from_utf8(config.data.unwrap()["mssql.conf"].0.clone()).unwrap();
        assert!(conf.contains("forceencryption = 1"));
        let pod = pod_spec(&workload);
        let init = &pod.init_containers.clone().unwrap()[0];
        assert!(
            init.volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .any(|m| m.name == "config")
        );
        // The user's ACCEPT_EULA reaches the container.
        let c = db_container(&pod, "mssql");
        assert!(
            c.env
                .as_ref()
                .unwrap()
                .iter()
                .any(|e| e.name == "ACCEPT_EULA")
        );

        let mut without: MSSQLServer = db.clone();
        without.spec.tls.as_mut().unwrap().client_tls = Some(false);
        let facts = DbFacts::of(&without);
        let (workload, config) = workload_for(&facts, "mssql:x", WorkloadApi::PetSet);
        assert!(config.is_none());
        let volumes = pod_spec(&workload).volumes.unwrap();
        assert!(!volumes.iter().any(|v| v.name == "config"));
    }

    #[test]
    fn singlestore_references_the_license_secret() {
        let db: Singlestore = load("singlestore-tls.yaml");
        let facts = DbFacts::of(&db);
        let (workload, _) = workload_for(&facts, "img", WorkloadApi::PetSet);
        let pod = pod_spec(&workload);
        let c = db_container(&pod, "singlestore");
        let license = c
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == "SINGLESTORE_LICENSE")
            .unwrap();
        let key_ref = license.value_from.clone().unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (key_ref.name.as_str(), key_ref.key.as_str()),
            ("license-secret", "license")
        );
    }

    #[test]
    fn a_pod_template_image_overrides_the_catalogue() {
        let mut db: MySQL = load("mysql-no-tls.yaml");
        db.spec.pod_template = Some(
            serde_yaml::from_str(
                "spec: {containers: [{name: mysql, image: 'registry/mysql:patched'}]}",
            )
            .unwrap(),
        );
        let facts = DbFacts::of(&db);
        let (workload, _) = workload_for(&facts, "mysql:8.0.36", WorkloadApi::StatefulSet);
        let pod = pod_spec(&workload);
        assert_eq!(
            db_container(&pod, "mysql").image.as_deref(),
            Some("registry/mysql:patched")
        );
    }
}
