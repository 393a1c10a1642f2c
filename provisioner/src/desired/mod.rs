//! Pure builders: the desired child objects of a database, from [`DbFacts`] alone.
//! Nothing here talks to the API server; `reconcile` applies what these return.
pub mod auth;
pub mod builtin_exporter;
pub mod config;
pub mod exporter;
pub mod galera;
pub mod galera_switch;
pub mod pod;
pub mod server_tls;
pub mod services;
pub mod sql_exporter;
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
use dbtls_contract::kinds::alias;
use dbtls_contract::tls::IssuerType;
use k8s_openapi::api::core::v1::Secret;

use crate::observe::Observed;
use crate::workload::{Workload, WorkloadApi};
use server_tls::{ServerTls, TlsInput};

/// The aliases of a ProxySQL whose issuer is ACME, from the issuers' watch cache: they get no
/// client or exporter certificate and no `ca.crt` (KubeDB issues ProxySQL only its server
/// certificate from ACME). Empty for every other kind and issuer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcmeAliases(pub Vec<&'static str>);

impl AcmeAliases {
    pub fn issuer_type(&self, alias: &str) -> IssuerType {
        IssuerType::of(self.0.contains(&alias))
    }

    /// The server certificate comes without the CA that issued it: no CA file, no bundle.
    pub fn server(&self) -> bool {
        self.issuer_type(alias::SERVER) == IssuerType::Acme
    }
}

/// `(alias, Secret name)` of every TLS Secret the database needs; empty without `spec.tls`.
pub fn tls_secret_names(db: &DbFacts<'_>, acme: &AcmeAliases) -> Vec<(&'static str, String)> {
    db.tls
        .map(|tls| {
            dbtls_contract::tls::issued_secrets(db.kind, &db.name, &tls, |a| acme.issuer_type(a))
        })
        .unwrap_or_default()
}

/// Every Secret the workload mounts for TLS: each alias's and the CA bundle the ops-manager
/// writes from them (none for an ACME server certificate); empty without `spec.tls`.
pub fn mounted_tls_secrets(db: &DbFacts<'_>, acme: &AcmeAliases) -> Vec<String> {
    let mut names: Vec<String> = tls_secret_names(db, acme)
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    if db.tls.is_some() && !acme.server() {
        names.push(dbtls_contract::names::ca_bundle(&db.name));
    }
    names
}

/// The server's TLS configuration, or None without `spec.tls`.
pub fn server_tls_for(db: &DbFacts<'_>, acme: &AcmeAliases) -> Option<ServerTls> {
    let tls = db.tls?;
    let secrets = tls_secret_names(db, acme);
    let ca_bundle = dbtls_contract::names::ca_bundle(&db.name);
    Some(server_tls::server_tls(
        db.kind,
        &TlsInput {
            secrets: &secrets,
            require_ssl: db.require_ssl,
            client_tls: tls.client_tls.unwrap_or(false),
            ca_bundle: (!acme.server()).then_some(ca_bundle.as_str()),
        },
    ))
}

/// The exporter `spec.monitor` asks for (None without one): the server's own where it has one,
/// else a sidecar that, with TLS, connects with the `metrics-exporter` certificate where the
/// kind has one, and checks the server against the CA bundle unless the server's issuer is ACME.
pub fn exporter_for(db: &DbFacts<'_>, acme: &AcmeAliases) -> Option<exporter::Exporter> {
    // validate::spec refused a monitor that does not parse.
    let monitor = exporter::monitor(db.common.monitor, db.kind)
        .ok()
        .flatten()?;
    if let Some(builtin) = builtin_exporter::builtin(db, &monitor) {
        return Some(exporter::Exporter::Builtin(Box::new(builtin)));
    }
    let ca_bundle = dbtls_contract::names::ca_bundle(&db.name);
    let secrets = tls_secret_names(db, acme);
    let tls = db.tls.map(|_| exporter::ExporterTls {
        secret: secrets
            .iter()
            .find(|(alias, _)| *alias == alias::METRICS_EXPORTER)
            .map(|(_, secret)| secret.as_str()),
        ca_bundle: (!acme.server()).then_some(ca_bundle.as_str()),
    });
    exporter::sidecar(db, &monitor, &db.auth_secret_name(), tls)
        .map(|s| exporter::Exporter::Sidecar(Box::new(s)))
}

/// The workloads to write (one per [`DbFacts::parts`], in order), the config Secret they read
/// (if the kind needs one), and, for a Galera cluster switching TLS, where the switch is (see
/// [`galera_switch`]).
#[derive(Clone, Debug)]
pub struct DesiredWorkload {
    pub workloads: Vec<Workload>,
    pub config: Option<Secret>,
    /// Galera replication bridged: the rollout is a step, not the end.
    pub bridging: bool,
    /// Leave the live workload as it is until then (unix seconds).
    pub hold_until: Option<i64>,
}

/// PerconaXtraDB's server TLS and Galera arguments, with the switch a running cluster is in:
/// its replication may still need the certificate the live pods mount after `spec.tls` is
/// gone, and the state-transfer setting follows the switch.
fn galera_config(
    db: &DbFacts<'_>,
    tls: Option<ServerTls>,
    observed: &Observed,
) -> (Option<ServerTls>, Vec<String>, galera_switch::Switch) {
    let live = observed.workload.as_ref();
    let mut switch =
        galera_switch::decide(db, live, observed.config_secret.as_ref(), &observed.clock);
    let mut tls = match tls {
        Some(tls) => Some(tls),
        None if switch.replication == galera_switch::Replication::Bridge => {
            let template = live.and_then(Workload::pod_template);
            let carried = galera_switch::carried_certificate(template, db.kind.profile().container);
            if carried.is_none() {
                // Nothing to bridge with: straight to the target.
                switch.replication = galera_switch::Replication::Plain;
                switch.transfers = None;
                switch.hold_until = None;
            }
            carried
        }
        None => None,
    };
    if let (Some(tls), Some(transfers)) = (tls.as_mut(), switch.transfers) {
        let dir = server_tls::percona_server_dir();
        let cnf = match transfers {
            galera_switch::Transfers::Encrypted => server_tls::sst_tls_cnf(&dir),
            galera_switch::Transfers::Plaintext => server_tls::sst_plaintext_cnf(),
        };
        tls.config_files
            .insert(server_tls::SST_TLS_CNF.to_string(), cnf);
        tls.config_dir = Some(server_tls::MYSQL_CONF_DIR);
    }
    (tls, galera::args(db, switch.replication), switch)
}

/// The desired workload of `db`, from its facts and what runs (`observed`: a Galera cluster
/// switching TLS passes through a bridge, see [`galera_switch`]).
pub fn workload_for(
    db: &DbFacts<'_>,
    image: &str,
    api: WorkloadApi,
    observed: &Observed,
) -> DesiredWorkload {
    let mut tls = server_tls_for(db, &observed.acme);
    let backend_tls = observed.backend.as_ref().and_then(|b| b.tls.as_ref());
    if let Some(backend) = backend_tls.filter(|_| db.kind == DbKind::ProxySQL) {
        // Backend TLS needs no frontend TLS: the parts are added to whatever the server has.
        let parts = tls.get_or_insert_with(ServerTls::default);
        let (volume, mount, env) = server_tls::proxysql_backend(backend);
        parts.volumes.push(volume);
        parts.mounts.push(mount);
        parts.env.push(env);
    }
    let (mut cluster_args, mut cluster_env) = (Vec::new(), Vec::new());
    let mut switch = None;
    if db.kind == DbKind::PerconaXtraDB {
        let (galera_tls, args, decided) = galera_config(db, tls, observed);
        tls = galera_tls;
        cluster_args = args;
        cluster_env = galera::env();
        switch = Some(decided);
    }
    let exporter = exporter_for(db, &observed.acme);
    let template = pod::pod_template(
        db,
        &pod::PodInputs {
            image: image.to_string(),
            auth_secret: db.auth_secret_name(),
            tls: tls.as_ref(),
            cluster_args,
            cluster_env,
            exporter: exporter.as_ref(),
        },
    );
    let mut files = tls
        .as_ref()
        .map(|t| t.config_files.clone())
        .unwrap_or_default();
    files.extend(exporter.iter().flat_map(|e| e.config_files().clone()));
    let mut config = config::config_secret(db, &files);
    if let (Some(config), Some(Some(transfers))) =
        (config.as_mut(), switch.as_ref().map(|s| s.transfers))
    {
        let since = switch.as_ref().map_or(0, |s| s.transfers_since);
        config.metadata.annotations = Some(galera_switch::transfers_annotations(transfers, since));
    }
    let workloads = db
        .parts
        .iter()
        .map(|part| {
            let spec = workload::workload_spec(db, part, template.clone());
            workload::workload(db, part, api, spec)
        })
        .collect();
    DesiredWorkload {
        workloads,
        config,
        bridging: switch
            .as_ref()
            .is_some_and(|s| s.replication == galera_switch::Replication::Bridge),
        hold_until: switch.and_then(|s| s.hold_until),
    }
}

/// `secret:key->path` of each file a projected volume takes from a Secret, for tests.
#[cfg(test)]
pub(crate) fn projected_files(volume: &k8s_openapi::api::core::v1::Volume) -> Vec<String> {
    volume
        .projected
        .iter()
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|source| source.secret.as_ref())
        .flat_map(|s| {
            s.items
                .iter()
                .flatten()
                .map(move |i| format!("{}:{}->{}", s.name, i.key, i.path))
        })
        .collect()
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
        let DesiredWorkload {
            mut workloads,
            config,
            ..
        } = workload_for(
            &facts,
            "mysql:8.4.3",
            WorkloadApi::StatefulSet,
            &Observed::default(),
        );
        let workload = workloads.remove(0);
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
        let DesiredWorkload {
            mut workloads,
            config,
            ..
        } = workload_for(
            &facts,
            "mysql:8.0.36",
            WorkloadApi::StatefulSet,
            &Observed::default(),
        );
        let workload = workloads.remove(0);
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
        assert!(tls_secret_names(&facts, &AcmeAliases::default()).is_empty());
    }

    #[test]
    fn a_monitored_mysql_runs_an_exporter_on_its_metrics_exporter_certificate() {
        let db: MySQL = load("mysql-monitor.yaml");
        let facts = DbFacts::of(&db);
        let desired = workload_for(
            &facts,
            "mysql:8.4.3",
            WorkloadApi::StatefulSet,
            &Observed::default(),
        );
        let spec = pod_spec(&desired.workloads[0]);
        let exporter = db_container(&spec, "exporter");
        let args = exporter.args.clone().unwrap();
        assert_eq!(
            args,
            [
                "--config.my-cnf=/etc/mysql/certs/exporter.cnf",
                "--mysqld.username=$(EXPORTER_USER)",
                "--web.listen-address=:56790",
                "--collect.info_schema.processlist",
            ]
        );
        let env: Vec<(String, String)> = exporter
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| {
                let key = e.value_from.unwrap().secret_key_ref.unwrap();
                (e.name, format!("{}/{}", key.name, key.key))
            })
            .collect();
        assert_eq!(
            env,
            [
                (
                    "EXPORTER_USER".to_string(),
                    "mon-db-auth/username".to_string()
                ),
                (
                    "MYSQLD_EXPORTER_PASSWORD".to_string(),
                    "mon-db-auth/password".to_string()
                ),
            ]
        );
        // KubeDB's layout: exporter-tls-volume at /etc/mysql/certs in the exporter only.
        let mount = &exporter.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (mount.name.as_str(), mount.mount_path.as_str()),
            ("exporter-tls-volume", "/etc/mysql/certs")
        );
        // The whole volume, never a subPath: kubelet then swaps in a renewed certificate, which
        // mysqld_exporter reads again on its next scrape.
        assert_eq!(mount.sub_path, None);
        let volume = spec
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "exporter-tls-volume")
            .unwrap();
        assert_eq!(
            projected_files(volume),
            [
                "mon-db-ca-bundle:ca.crt->ca.crt",
                "mon-db-metrics-exporter-cert:tls.crt->exporter.crt",
                "mon-db-metrics-exporter-cert:tls.key->exporter.key",
                "mon-db-config:exporter.cnf->exporter.cnf",
            ]
        );
        let config = desired
            .config
            .expect("exporter.cnf needs the config Secret");
        let cnf = &config.data.unwrap()["exporter.cnf"];
        assert!(String::from_utf8_lossy(&cnf.0).contains("ssl-cert=/etc/mysql/certs/exporter.crt"));
        // Without spec.monitor: no exporter and, for MySQL, no config Secret.
        let plain: MySQL = load("mysql-require-ssl.yaml");
        let desired = workload_for(
            &DbFacts::of(&plain),
            "mysql:8.4.3",
            WorkloadApi::StatefulSet,
            &Observed::default(),
        );
        assert_eq!(pod_spec(&desired.workloads[0]).containers.len(), 1);
        assert!(desired.config.is_none());
    }

    fn sidecar_of(exporter: Option<exporter::Exporter>) -> exporter::Sidecar {
        match exporter {
            Some(exporter::Exporter::Sidecar(s)) => *s,
            other => panic!("expected a sidecar, got {other:?}"),
        }
    }

    fn monitored<T: dbtls_contract::Database>(fixture: &str, monitor: &str) -> T {
        let mut value: serde_json::Value = serde_json::to_value(load::<T>(fixture)).unwrap();
        value["spec"]["monitor"] = serde_yaml::from_str(monitor).unwrap();
        serde_json::from_value(value).unwrap()
    }

    /// SingleStore exports its own metrics: every node of a cluster (aggregators and leaves)
    /// opens `metrics` on its server container, served over HTTPS with the server certificate
    /// it already mounts; no sidecar, no config file.
    #[test]
    fn a_monitored_singlestore_cluster_exports_from_every_node_over_https() {
        let db: Singlestore =
            monitored("singlestore-cluster.yaml", "agent: prometheus.io/operator");
        let facts = DbFacts::of(&db);
        let desired = workload_for(&facts, "img", WorkloadApi::PetSet, &Observed::default());
        assert_eq!(desired.workloads.len(), 2);
        for workload in &desired.workloads {
            let pod = pod_spec(workload);
            assert_eq!(pod.containers.len(), 1, "no sidecar");
            let server = db_container(&pod, "singlestore");
            let ports: Vec<_> = server
                .ports
                .iter()
                .flatten()
                .map(|p| (p.name.clone().unwrap(), p.container_port))
                .collect();
            assert!(ports.contains(&("metrics".to_string(), 9104)), "{ports:?}");
            let args = server.args.clone().unwrap();
            assert!(
                args.contains(&"--exporter_use_https=ON".to_string()),
                "{args:?}"
            );
            assert!(args.contains(&"--ssl_cert=/etc/memsql/certs/server.crt".to_string()));
        }
        assert!(desired.config.is_none());
    }

    /// ProxySQL's metrics come from its REST API, opened by the `proxysql.cnf` it reads from the
    /// config Secret; the user's args still come last.
    #[test]
    fn a_monitored_proxysql_reads_its_config_and_opens_the_rest_api_port() {
        let mut db: ProxySQL = monitored("proxysql-tls.yaml", "agent: prometheus.io/builtin");
        db.spec.pod_template = Some(
            serde_yaml::from_str(
                "spec:\n  containers:\n  - name: proxysql\n    args: [--idle-threads]\n",
            )
            .unwrap(),
        );
        let facts = DbFacts::of(&db);
        let desired = workload_for(
            &facts,
            "img",
            WorkloadApi::StatefulSet,
            &Observed::default(),
        );
        let pod = pod_spec(&desired.workloads[0]);
        assert_eq!(pod.containers.len(), 1, "no sidecar");
        let server = db_container(&pod, "proxysql");
        assert_eq!(
            server.args.clone().unwrap(),
            ["-c", "/etc/custom-config/proxysql.cnf", "--idle-threads"]
        );
        assert!(
            server
                .ports
                .iter()
                .flatten()
                .any(|p| p.name.as_deref() == Some("metrics") && p.container_port == 6070)
        );
        assert!(
            server
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == builtin_exporter::PROXYSQL_CONFIG_DIR)
        );
        let data = desired.config.unwrap().data.unwrap();
        let cnf = String::from_utf8_lossy(&data[builtin_exporter::PROXYSQL_CNF].0).to_string();
        assert!(cnf.contains("restapi_port=6070"), "{cnf}");
    }

    /// MSSQLServer's exporter checks the server against the CA bundle, with no certificate of
    /// its own (the kind has no metrics-exporter alias), on KubeDB's port 9399; its config
    /// file joins `mssql.conf` in the one config Secret.
    #[test]
    fn a_monitored_mssql_runs_sql_exporter_trusting_the_ca_bundle() {
        let mut db: MSSQLServer = load("mssql-client-tls.yaml");
        db.spec.monitor = Some(serde_yaml::from_str("agent: prometheus.io/operator").unwrap());
        let facts = DbFacts::of(&db);
        let sidecar = sidecar_of(exporter_for(&facts, &AcmeAliases::default()));
        let sources = serde_json::to_string(&sidecar.volume).unwrap();
        let bundle = dbtls_contract::names::ca_bundle(&facts.name);
        assert!(sources.contains(&format!("\"{bundle}\"")), "{sources}");
        assert!(!sources.contains("metrics-exporter"), "{sources}");
        let port = sidecar.container.ports.unwrap()[0].container_port;
        assert_eq!(port, exporter::MSSQL_PORT);
        let DesiredWorkload { config, .. } = workload_for(
            &facts,
            "img",
            WorkloadApi::StatefulSet,
            &Observed::default(),
        );
        let data = config.unwrap().data.unwrap();
        assert!(data.contains_key("mssql.conf"), "{:?}", data.keys());
        assert!(
            data.contains_key(sql_exporter::CONFIG_FILE),
            "{:?}",
            data.keys()
        );
        let mut plain = db.clone();
        plain.spec.tls = None;
        let sidecar = sidecar_of(exporter_for(&DbFacts::of(&plain), &AcmeAliases::default()));
        let sources = serde_json::to_string(&sidecar.volume).unwrap();
        assert!(!sources.contains("ca-bundle"), "no TLS, no CA: {sources}");
    }

    #[test]
    fn percona_mounts_each_alias_in_its_own_directory() {
        let db: PerconaXtraDB = load("percona-tls.yaml");
        let facts = DbFacts::of(&db);
        let DesiredWorkload { mut workloads, .. } = workload_for(
            &facts,
            "img",
            WorkloadApi::StatefulSet,
            &Observed::default(),
        );
        let workload = workloads.remove(0);
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

    /// Found on the real node: with the whole config Secret as its option directory, a
    /// monitored PerconaXtraDB's server container read the exporter's `[client]` group, and its
    /// entrypoint's client went to 127.0.0.1 instead of the bootstrap socket.
    #[test]
    fn a_monitored_percona_server_reads_only_its_own_config_files() {
        let mut db: PerconaXtraDB = load("percona-tls.yaml");
        db.spec.monitor = Some(serde_yaml::from_str("agent: prometheus.io/operator").unwrap());
        let facts = DbFacts::of(&db);
        let DesiredWorkload {
            workloads, config, ..
        } = workload_for(
            &facts,
            "img",
            WorkloadApi::StatefulSet,
            &Observed::default(),
        );
        let files: Vec<String> = config.unwrap().data.unwrap().into_keys().collect();
        assert!(files.contains(&exporter::CNF.to_string()), "{files:?}");
        let pod = pod_spec(&workloads[0]);
        let config_volume = pod
            .volumes
            .clone()
            .unwrap()
            .into_iter()
            .find(|v| v.name == server_tls::CONFIG_VOLUME)
            .unwrap();
        let items: Vec<String> = config_volume
            .secret
            .unwrap()
            .items
            .unwrap()
            .into_iter()
            .map(|i| i.path)
            .collect();
        assert_eq!(items, [server_tls::SST_TLS_CNF]);
        let server_mounts = db_container(&pod, "perconaxtradb").volume_mounts.clone();
        assert!(
            server_mounts
                .unwrap()
                .iter()
                .any(|m| m.name == server_tls::CONFIG_VOLUME
                    && m.mount_path == server_tls::MYSQL_CONF_DIR)
        );
    }

    #[test]
    fn proxysql_runs_without_storage_and_with_frontend_tls() {
        let db: ProxySQL = load("proxysql-tls.yaml");
        let facts = DbFacts::of(&db);
        let DesiredWorkload { mut workloads, .. } = workload_for(
            &facts,
            "proxysql/proxysql:2.7.1",
            WorkloadApi::StatefulSet,
            &Observed::default(),
        );
        let workload = workloads.remove(0);
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
        let DesiredWorkload {
            mut workloads,
            config,
            ..
        } = workload_for(&facts, "mssql:x", WorkloadApi::PetSet, &Observed::default());
        let workload = workloads.remove(0);
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
        let DesiredWorkload {
            mut workloads,
            config,
            ..
        } = workload_for(&facts, "mssql:x", WorkloadApi::PetSet, &Observed::default());
        let workload = workloads.remove(0);
        assert!(config.is_none());
        let volumes = pod_spec(&workload).volumes.unwrap();
        assert!(!volumes.iter().any(|v| v.name == "config"));
    }

    #[test]
    fn singlestore_references_the_license_secret() {
        let db: Singlestore = load("singlestore-tls.yaml");
        let facts = DbFacts::of(&db);
        let DesiredWorkload { mut workloads, .. } =
            workload_for(&facts, "img", WorkloadApi::PetSet, &Observed::default());
        let workload = workloads.remove(0);
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
        let DesiredWorkload { mut workloads, .. } = workload_for(
            &facts,
            "mysql:8.0.36",
            WorkloadApi::StatefulSet,
            &Observed::default(),
        );
        let workload = workloads.remove(0);
        let pod = pod_spec(&workload);
        assert_eq!(
            db_container(&pod, "mysql").image.as_deref(),
            Some("registry/mysql:patched")
        );
    }
}
