//! The whole flow with both real operators and the cert-manager stand-in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dbtls_contract::DbKind;
use dbtls_contract::certmanager::Certificate;
use dbtls_contract::monitoring::ServiceMonitor;
use dbtls_contract::tls;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use testbed::certmanager::inspect;
use testbed::harness::{Env, EnvOptions, projected_secrets};

const DEADLINE: Duration = Duration::from_secs(60);

async fn env() -> Env {
    Env::start(EnvOptions {
        provisioner_args: vec!["--workload=statefulset".into()],
        ..EnvOptions::default()
    })
    .await
    .unwrap()
}

fn db_name(kind: DbKind) -> String {
    format!("db-{}", kind.profile().plural)
}

async fn condition_true(env: &Env, kind: DbKind, db: &str, type_: &str) {
    env.eventually(&format!("{kind} {db} {type_}=True"), DEADLINE, || async {
        let c = env.condition(kind, db, type_).await?;
        Ok(c.filter(|c| c.status == "True").map(|_| ()))
    })
    .await
    .unwrap();
}

/// A database of `kind` on a CA Issuer `ca`, with `extra` (YAML lines of its spec) added.
async fn tls_database_with(env: &Env, kind: DbKind, db: &str, extra: &str) {
    env.create_ca_issuer("ca").await.unwrap();
    let yaml = Env::tls_database(kind, db, "Issuer", "ca")
        .replace("  deletionPolicy:", &format!("{extra}  deletionPolicy:"));
    env.apply_yaml(&yaml).await.unwrap();
}

/// The pod template of the StatefulSet `db`, once it exists.
async fn workload_pod(env: &Env, db: &str) -> k8s_openapi::api::core::v1::PodSpec {
    let workload = env
        .eventually(&format!("the workload {db}"), DEADLINE, || async {
            Ok(env.api::<StatefulSet>().get_opt(db).await?)
        })
        .await
        .unwrap();
    workload
        .spec
        .and_then(|s| s.template.spec)
        .expect("a pod template")
}

/// The leaf of a TLS Secret, checked against the CA that should have signed it.
async fn leaf_signed_by(env: &Env, secret: &str, ca_pem: &str) -> inspect::CertFacts {
    let secret = env.api::<Secret>().get(secret).await.unwrap();
    let data = secret.data.unwrap();
    let leaf = inspect::pem_certificates(&data["tls.crt"].0).remove(0);
    let ca = inspect::pem_certificates(ca_pem.as_bytes()).remove(0);
    assert!(
        inspect::signed_by(&leaf, &ca),
        "{:?} not signed by the CA",
        secret.metadata.name
    );
    assert_eq!(
        inspect::pem_certificates(&data["ca.crt"].0)[0],
        ca,
        "ca.crt is the issuing CA"
    );
    inspect::facts(&leaf).unwrap()
}

#[tokio::test]
async fn every_kind_gets_certificates_secrets_and_a_workload_with_them() {
    let env = env().await;
    let ca = env.create_ca_issuer("ca").await.unwrap();
    for kind in DbKind::ALL {
        env.apply_yaml(&Env::tls_database(kind, &db_name(kind), "Issuer", "ca"))
            .await
            .unwrap();
    }
    for kind in DbKind::ALL {
        let db = db_name(kind);
        condition_true(&env, kind, &db, "IssuerReady").await;
        condition_true(&env, kind, &db, "CertificatesReady").await;
        condition_true(&env, kind, &db, "TLSSecretsReady").await;
        let server = leaf_signed_by(&env, &format!("{db}-server-cert"), &ca).await;
        let fqdn = format!("{db}.{}.svc", env.namespace());
        assert!(
            server.dns_names.contains(&fqdn),
            "{kind}: {:?}",
            server.dns_names
        );
        assert!(server.ip_addresses.contains(&"127.0.0.1".to_string()));
        assert!(server.usages.contains("server auth") && server.usages.contains("client auth"));
        let client = leaf_signed_by(&env, &format!("{db}-client-cert"), &ca).await;
        assert_eq!(client.common_name, kind.profile().client_common_name);
        assert!(client.usages.contains("client auth") && !client.usages.contains("server auth"));

        let workload = env
            .eventually(&format!("{kind} workload"), DEADLINE, || async {
                Ok(env.api::<StatefulSet>().get_opt(&db).await?)
            })
            .await
            .unwrap();
        let spec = serde_json::to_string(&workload.spec).unwrap();
        // server and client are mounted in the database container (the exporter's only with
        // monitoring, which these manifests do not enable).
        for (alias, secret) in
            tls::secrets(kind, &db, &dbtls_contract::api::TlsConfig::default().view())
                .into_iter()
                .filter(|(alias, _)| *alias != "metrics-exporter")
        {
            assert!(
                spec.contains(&format!("\"{secret}\"")),
                "{kind}: {alias} Secret {secret} not mounted"
            );
        }
    }
}

/// KubeDB issues a ProxySQL only its server certificate from an ACME issuer, and ACME gives no
/// `ca.crt`: the provisioner reads the issuer too, waits for that one Secret, and mounts it
/// without a CA bundle.
#[tokio::test]
async fn a_proxysql_from_an_acme_issuer_runs_on_its_server_certificate_alone() {
    let env = env().await;
    let server = testbed::certmanager::signing::STAND_IN_ACME_SERVER;
    env.apply_yaml(&format!(
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: acme\nspec:\n  acme:\n    server: {server}\n    privateKeySecretRef:\n      name: acme-account\n    solvers:\n    - http01:\n        ingress: {{}}\n"
    ))
    .await
    .unwrap();
    let kind = DbKind::ProxySQL;
    let db = "proxy-acme";
    env.apply_yaml(&Env::tls_database(kind, db, "Issuer", "acme"))
        .await
        .unwrap();
    for condition in ["IssuerReady", "CertificatesReady", "TLSSecretsReady"] {
        condition_true(&env, kind, db, condition).await;
    }
    let workload = env
        .eventually("the ProxySQL workload", DEADLINE, || async {
            Ok(env.api::<StatefulSet>().get_opt(db).await?)
        })
        .await
        .unwrap();
    let certificates = env.api::<Certificate>();
    assert!(
        certificates
            .get_opt(&format!("{db}-server-cert"))
            .await
            .unwrap()
            .is_some()
    );
    for alias in ["client", "metrics-exporter"] {
        let name = format!("{db}-{alias}-cert");
        assert!(
            certificates.get_opt(&name).await.unwrap().is_none(),
            "{name} issued"
        );
    }
    let secrets = env.api::<Secret>();
    let server_secret = secrets.get(&format!("{db}-server-cert")).await.unwrap();
    let data = server_secret.data.unwrap_or_default();
    assert!(
        data.contains_key("tls.crt") && !data.contains_key("ca.crt"),
        "{:?}",
        data.keys()
    );
    let bundle = format!("{db}-ca-bundle");
    assert!(
        secrets.get_opt(&bundle).await.unwrap().is_none(),
        "a bundle without a CA"
    );
    let spec = serde_json::to_string(&workload.spec).unwrap();
    assert!(spec.contains(&format!("\"{db}-server-cert\"")), "{spec}");
    for absent in [bundle, format!("{db}-client-cert")] {
        assert!(
            !spec.contains(&format!("\"{absent}\"")),
            "{absent} mounted: {spec}"
        );
    }
}

/// A ProxySQL's workload waits until its backend exists and is Ready, then reaches it over TLS
/// with the backend's CA bundle and client certificate.
#[tokio::test]
async fn a_proxysql_waits_for_its_backend_and_reaches_it_over_tls() {
    let env = env().await;
    env.create_ca_issuer("ca").await.unwrap();
    let proxy = "proxy";
    let own = Env::tls_database(DbKind::ProxySQL, proxy, "Issuer", "ca")
        .replace("name: proxy-backend", "name: tls-backend");
    let own = own.split("\n---\n").next().unwrap();
    env.apply_yaml(own).await.unwrap();
    let message = env
        .eventually(
            "WorkloadReady names the missing backend",
            DEADLINE,
            || async {
                Ok(env
                    .condition(DbKind::ProxySQL, proxy, "WorkloadReady")
                    .await?
                    .and_then(|c| c.message)
                    .filter(|m| m.contains("no MySQL or PerconaXtraDB tls-backend")))
            },
        )
        .await
        .unwrap();
    assert!(message.contains("spec.backend.name"), "{message}");
    assert!(
        env.api::<StatefulSet>()
            .get_opt(proxy)
            .await
            .unwrap()
            .is_none()
    );

    env.apply_yaml(&Env::tls_database(
        DbKind::MySQL,
        "tls-backend",
        "Issuer",
        "ca",
    ))
    .await
    .unwrap();
    condition_true(&env, DbKind::MySQL, "tls-backend", "Ready").await;
    let workload = env
        .eventually("the ProxySQL workload", DEADLINE, || async {
            Ok(env.api::<StatefulSet>().get_opt(proxy).await?)
        })
        .await
        .unwrap();
    let spec = serde_json::to_string(&workload.spec).unwrap();
    for needle in [
        "BACKEND_TLS_ENABLED",
        "/var/lib/certs",
        "\"tls-backend-client-cert\"",
        "\"tls-backend-ca-bundle\"",
    ] {
        assert!(spec.contains(needle), "{needle} not in {spec}");
    }
}

/// An MSSQLServer Availability Group gets KubeDB's third certificate, `endpoint`, for its
/// replicas' mirroring endpoint, mounted where KubeDB mounts it.
#[tokio::test]
async fn an_mssql_availability_group_gets_its_endpoint_certificate_mounted() {
    let env = env().await;
    let kind = DbKind::MSSQLServer;
    let db = "ms-ag";
    let topology = "  replicas: 3\n  topology:\n    mode: AvailabilityGroup\n    availabilityGroup:\n      databases: [agdb]\n";
    tls_database_with(&env, kind, db, topology).await;
    for condition in ["CertificatesReady", "TLSSecretsReady"] {
        condition_true(&env, kind, db, condition).await;
    }
    let endpoint = env
        .api::<Certificate>()
        .get(&format!("{db}-endpoint-cert"))
        .await
        .unwrap();
    let subject = endpoint.spec.subject.unwrap();
    assert_eq!(subject.organizational_units.unwrap(), ["endpoint"]);
    let secret = env
        .api::<Secret>()
        .get(&endpoint.spec.secret_name)
        .await
        .unwrap();
    assert!(secret.data.unwrap().contains_key("tls.key"));
    let pod = workload_pod(&env, db).await;
    let mounted = pod
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .any(|m| m.name == "endpoint-cert" && m.mount_path == "/var/opt/mssql/endpoint-cert");
    assert!(mounted, "endpoint-cert not mounted");
    let sources = projected_secrets(&pod, "endpoint-cert");
    assert!(
        sources.contains(&format!("{db}-endpoint-cert")),
        "{sources:?}"
    );
}

/// A monitored MSSQLServer runs `sql_exporter` on KubeDB's port 9399, reaching SQL Server over
/// TLS checked against the database's CA bundle, with its login from the auth Secret as
/// environment (not in the config Secret), and the stats Service on that port.
#[tokio::test]
async fn a_monitored_mssql_runs_sql_exporter_over_tls_checked_against_its_ca() {
    let env = env().await;
    let kind = DbKind::MSSQLServer;
    let db = "ms-mon";
    tls_database_with(
        &env,
        kind,
        db,
        "  monitor:\n    agent: prometheus.io/builtin\n",
    )
    .await;
    let pod = workload_pod(&env, db).await;
    let exporter = pod
        .containers
        .iter()
        .find(|c| c.name == "exporter")
        .expect("an exporter sidecar");
    assert!(
        exporter
            .image
            .as_deref()
            .unwrap_or_default()
            .contains("sql_exporter"),
        "{:?}",
        exporter.image
    );
    let env_vars = exporter.env.clone().unwrap_or_default();
    let dsn = env_vars
        .iter()
        .find(|e| e.name == "SQLEXPORTER_TARGET_DSN")
        .and_then(|e| e.value.clone())
        .unwrap();
    assert!(
        dsn.contains("encrypt=true&certificate=/etc/sql_exporter/ca.crt"),
        "{dsn}"
    );
    let password = env_vars
        .iter()
        .find(|e| e.name == "EXPORTER_PASSWORD")
        .and_then(|e| e.value_from.clone())
        .and_then(|v| v.secret_key_ref)
        .unwrap();
    assert_eq!(password.name, format!("{db}-auth"));
    let sources = projected_secrets(&pod, "exporter-tls-volume");
    assert_eq!(sources, [format!("{db}-config"), format!("{db}-ca-bundle")]);
    let config = env
        .api::<Secret>()
        .get(&format!("{db}-config"))
        .await
        .unwrap();
    let file = String::from_utf8(config.data.unwrap()["sql_exporter.yml"].0.clone()).unwrap();
    assert!(file.contains("sqlserver://localhost:1433"), "{file}");
    let stats = env
        .eventually("the stats Service", DEADLINE, || async {
            Ok(env.api::<Service>().get_opt(&format!("{db}-stats")).await?)
        })
        .await
        .unwrap();
    let annotations = stats.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations["prometheus.io/port"], "9399");
    assert_eq!(stats.spec.unwrap().ports.unwrap()[0].port, 9399);
    let ready = env
        .eventually("WorkloadReady reported", DEADLINE, || async {
            env.condition(kind, db, "WorkloadReady").await
        })
        .await
        .unwrap();
    let message = ready.message.unwrap_or_default();
    assert!(!message.contains("no exporter"), "{message}");
}

/// ProxySQL and SingleStore export their own metrics, as KubeDB scrapes them: no sidecar, the
/// server opens `metrics` (ProxySQL's REST API on 6070 from the `proxysql.cnf` it reads,
/// SingleStore's exporter on 9104 over HTTPS with the server certificate), the stats Service
/// targets it, and the ServiceMonitor scrapes SingleStore over HTTPS checked against its CA
/// bundle (a field the real API server would prune were it not in the CRD's schema).
#[tokio::test]
async fn proxysql_and_singlestore_export_their_own_metrics() {
    let env = env().await;
    let monitor = "  monitor:\n    agent: prometheus.io/operator\n";
    for (kind, db) in [
        (DbKind::ProxySQL, "px-mon"),
        (DbKind::Singlestore, "sdb-mon"),
    ] {
        tls_database_with(&env, kind, db, monitor).await;
    }
    let pod = workload_pod(&env, "px-mon").await;
    assert_eq!(pod.containers.len(), 1, "no sidecar");
    let proxysql = &pod.containers[0];
    assert!(
        proxysql
            .args
            .iter()
            .flatten()
            .any(|a| a == "/etc/custom-config/proxysql.cnf"),
        "{:?}",
        proxysql.args
    );
    let config = env.api::<Secret>().get("px-mon-config").await.unwrap();
    let cnf = String::from_utf8(config.data.unwrap()["proxysql.cnf"].0.clone()).unwrap();
    assert!(cnf.contains("restapi_port=6070"), "{cnf}");

    let pod = workload_pod(&env, "sdb-mon").await;
    assert_eq!(pod.containers.len(), 1, "no sidecar");
    let args = pod.containers[0].args.clone().unwrap_or_default();
    for arg in [
        "--exporter_port=9104",
        "--exporter_use_https=ON",
        "--exporter_ssl_cert=/etc/memsql/certs/server.crt",
    ] {
        assert!(args.iter().any(|a| a == arg), "{arg} not in {args:?}");
    }

    for (db, port) in [("px-mon", 6070), ("sdb-mon", 9104)] {
        let pod = workload_pod(&env, db).await;
        let opened = pod.containers[0]
            .ports
            .iter()
            .flatten()
            .any(|p| p.name.as_deref() == Some("metrics") && p.container_port == port);
        assert!(opened, "{db}: no metrics port {port}");
        let stats = env
            .eventually("the stats Service", DEADLINE, || async {
                Ok(env.api::<Service>().get_opt(&format!("{db}-stats")).await?)
            })
            .await
            .unwrap();
        assert_eq!(stats.spec.unwrap().ports.unwrap()[0].port, port);
    }
    let monitors = env.api::<ServiceMonitor>();
    let scraped = env
        .eventually("the SingleStore ServiceMonitor", DEADLINE, || async {
            Ok(monitors.get_opt("sdb-mon-stats").await?)
        })
        .await
        .unwrap();
    let endpoint = &scraped.spec.endpoints[0];
    assert_eq!(endpoint.scheme.as_deref(), Some("https"));
    let tls = endpoint.tls_config.clone().expect("tlsConfig kept");
    assert_eq!(tls.ca.unwrap().secret.unwrap().name, "sdb-mon-ca-bundle");
    assert_eq!(
        tls.server_name.unwrap(),
        format!("sdb-mon.{}.svc", env.namespace())
    );
    let plain = env
        .eventually("the ProxySQL ServiceMonitor", DEADLINE, || async {
            Ok(monitors.get_opt("px-mon-stats").await?)
        })
        .await
        .unwrap();
    assert!(
        plain.spec.endpoints[0].scheme.is_none(),
        "ProxySQL's REST API is HTTP"
    );
}

/// A SingleStore cluster (`spec.topology`) runs KubeDB's two workloads, aggregators and leaves,
/// each selecting its own pods and mounting the server certificate; every pod of both serves it,
/// clients reach the aggregators, and dropping the topology takes nothing down.
#[tokio::test]
async fn a_singlestore_cluster_runs_aggregators_and_leaves_on_tls() {
    let env = env().await;
    env.create_ca_issuer("ca").await.unwrap();
    let kind = DbKind::Singlestore;
    let db = "sdb-cluster";
    let standalone = Env::tls_database(kind, db, "Issuer", "ca");
    let cluster = standalone.replace(
        "  deletionPolicy:",
        "  topology:\n    aggregator:\n      replicas: 1\n    leaf:\n      replicas: 2\n  deletionPolicy:",
    );
    env.apply_yaml(&cluster).await.unwrap();
    for (name, replicas) in [(format!("{db}-aggregator"), 1), (format!("{db}-leaf"), 2)] {
        let workload = env
            .eventually(&name, DEADLINE, || async {
                Ok(env.api::<StatefulSet>().get_opt(&name).await?)
            })
            .await
            .unwrap();
        let spec = workload.spec.unwrap();
        assert_eq!(spec.replicas, Some(replicas));
        let selected = spec.selector.match_labels.unwrap();
        assert_eq!(selected["kubedb.com/petset"], name);
        let template = serde_json::to_string(&spec.template).unwrap();
        assert!(
            template.contains(&format!("\"{db}-server-cert\""))
                && template.contains("/etc/memsql/certs"),
            "{name}: {template}"
        );
    }
    assert!(
        env.api::<StatefulSet>()
            .get_opt(db)
            .await
            .unwrap()
            .is_none(),
        "no standalone workload"
    );
    let serving = env
        .eventually(
            "every pod of both serves the certificate",
            DEADLINE,
            || async {
                let c = env.condition(kind, db, "TLSServing").await?;
                Ok(c.filter(|c| c.status == "True").and_then(|c| c.message))
            },
        )
        .await
        .unwrap();
    assert!(serving.starts_with("3 pods serve"), "{serving}");
    condition_true(&env, kind, db, "WorkloadReady").await;
    let primary = env
        .api::<k8s_openapi::api::core::v1::Service>()
        .get(db)
        .await
        .unwrap();
    let selector = primary.spec.unwrap().selector.unwrap();
    assert_eq!(selector["kubedb.com/petset"], format!("{db}-aggregator"));

    // Back to a standalone: refused in place, nothing deleted.
    env.apply_yaml(&standalone).await.unwrap();
    let refused = env
        .eventually("the topology change to be reported", DEADLINE, || async {
            let c = env.condition(kind, db, "WorkloadReady").await?;
            Ok(
                c.filter(|c| c.reason.as_deref() == Some("ImmutableFieldChanged"))
                    .and_then(|c| c.message),
            )
        })
        .await
        .unwrap();
    assert!(
        refused.starts_with(&format!(
            "StatefulSet {db}-aggregator, StatefulSet {db}-leaf runs the database as spec.topology was before"
        )),
        "{refused}"
    );
    for name in [format!("{db}-aggregator"), format!("{db}-leaf")] {
        assert!(
            env.api::<StatefulSet>()
                .get_opt(&name)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(
        env.api::<StatefulSet>()
            .get_opt(db)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_running_database_moves_to_a_new_cluster_issuer() {
    let env = env().await;
    let kind = DbKind::MySQL;
    let db = db_name(kind);
    let old_ca = env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&Env::tls_database(kind, &db, "Issuer", "ca"))
        .await
        .unwrap();
    condition_true(&env, kind, &db, "CertificatesReady").await;
    leaf_signed_by(&env, &format!("{db}-server-cert"), &old_ca).await;

    let new_ca = env.create_ca_cluster_issuer("global").await.unwrap();
    env.apply_yaml(&Env::tls_database(kind, &db, "ClusterIssuer", "global"))
        .await
        .unwrap();
    env.eventually(
        "Certificates point to the ClusterIssuer and are re-issued",
        DEADLINE,
        || async {
            for alias in kind.profile().aliases {
                let cert = env
                    .api::<Certificate>()
                    .get(&format!("{db}-{alias}-cert"))
                    .await?;
                if cert.spec.issuer_ref.name != "global" || !cert.is_ready() {
                    return Ok(None);
                }
            }
            let secret = env
                .api::<Secret>()
                .get(&format!("{db}-server-cert"))
                .await?;
            let leaf = inspect::pem_certificates(&secret.data.unwrap()["tls.crt"].0).remove(0);
            let ca = inspect::pem_certificates(new_ca.as_bytes()).remove(0);
            Ok(inspect::signed_by(&leaf, &ca).then_some(()))
        },
    )
    .await
    .unwrap();
    // The Certificates can be re-issued before the ops-manager's status write of the same
    // reconcile lands: the conditions are waited for, not read once.
    env.eventually(
        "the conditions name the ClusterIssuer",
        DEADLINE,
        || async {
            let certificates = env.condition(kind, &db, "CertificatesReady").await?;
            let issuer = env.condition(kind, &db, "IssuerReady").await?;
            Ok((certificates.is_some_and(|c| c.status == "True")
                && issuer.is_some_and(|c| {
                    c.status == "True"
                        && c.message
                            .is_some_and(|m| m.contains("ClusterIssuer global"))
                }))
            .then_some(()))
        },
    )
    .await
    .unwrap();
}

/// More objects of one watched resource than a bounded trigger stream held (1,024): restarted
/// operators must fill their caches, reconcile what exists and what comes. (Found by the
/// benchmark at N = 1,000: both operators started, listed and never reconciled, because the
/// first list filled trigger streams nobody reads until the caches are filled.)
#[tokio::test]
async fn operators_restarted_among_more_objects_than_a_trigger_buffer_reconcile() {
    use futures::StreamExt as _;
    let env = env().await;
    env.create_ca_issuer("ca").await.unwrap();
    let kind = DbKind::MySQL;
    let existing = "before-restart";
    env.apply_yaml(&Env::tls_database(kind, existing, "Issuer", "ca"))
        .await
        .unwrap();
    condition_true(&env, kind, existing, "TLSSecretsReady").await;
    let secrets = env.api::<Secret>();
    let managed = dbtls_contract::labels::managed_selector();
    let (key, value) = managed.split_once('=').unwrap();
    let created: Vec<Result<Secret, kube::Error>> = futures::stream::iter(0..1_100)
        .map(|i| {
            let secrets = secrets.clone();
            let secret: Secret = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("bulk-{i:04}"), "labels": {key: value}},
                "stringData": {"note": "a labelled Secret no database owns"},
            }))
            .unwrap();
            async move { secrets.create(&Default::default(), &secret).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(created.iter().all(Result::is_ok), "1,100 Secrets created");
    for operator in ["provisioner", "ops-manager"] {
        env.restart_operator(operator).await.unwrap();
    }
    // Each restarted operator reconciles what exists (its first lists reach its controllers).
    for operator in ["provisioner", "ops-manager"] {
        env.eventually(&format!("{operator} reconciling"), DEADLINE, || async {
            Ok((env.reconciles(operator).await? > 0).then_some(()))
        })
        .await
        .unwrap();
    }

    let name = db_name(kind);
    env.apply_yaml(&Env::tls_database(kind, &name, "Issuer", "ca"))
        .await
        .unwrap();
    condition_true(&env, kind, &name, "CertificatesReady").await;
    condition_true(&env, kind, &name, "TLSSecretsReady").await;
    env.eventually("the workload", DEADLINE, || async {
        Ok(env.api::<StatefulSet>().get_opt(&name).await?)
    })
    .await
    .unwrap();
}
