//! The real-pods tier (`DBTLS_E2E_WORKLOADS=cluster`, a cluster whose node runs the pods):
//! every TLS claim about MySQL checked on the running server. It presents exactly its Secret's
//! certificate over the MySQL protocol, which verifies against `ca.crt` for the Service and
//! pod names; under requireSSL it refuses plaintext and takes the client certificate; a deleted
//! pod comes back with its data and certificates; and what goes wrong with a pod is said in the
//! database's conditions in kubelet's and the server's own words.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pods_support;

use std::time::Duration;

use dbtls_contract::DbKind;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::DeleteParams;
use ops_manager::serving::probe;
use pods_support::{
    POD_READY, client_files, exporters_logging_in, mariadb, password, pem_to_der, pod_ip, ready,
    real_pods, secret_data, server_memory, tempdir, verifies_for,
};
use testbed::harness::{Env, EnvOptions};

const KIND: DbKind = DbKind::MySQL;

/// A requireSSL MySQL (MariaDB on the test node) named `name`, with `extra` spec lines.
fn mysql(name: &str, extra: &str) -> String {
    let yaml = Env::tls_database(KIND, name, "Issuer", "ca");
    let version = format!("version: \"{}\"", KIND.profile().versions[0].0);
    yaml.replace(&version, "version: \"8.4.3\"").replace(
        "  deletionPolicy: WipeOut\n",
        &format!("{extra}  deletionPolicy: WipeOut\n"),
    )
}

#[tokio::test]
async fn mysql_under_require_ssl_serves_its_secret_certificate_and_refuses_plaintext() {
    if !real_pods("mysql_under_require_ssl_serves_its_secret_certificate_and_refuses_plaintext") {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&mysql("tls", "")).await.unwrap();
    let took = ready(&env, KIND, "tls").await;
    let ns = env.namespace().to_string();
    let ip = pod_ip(&env, "tls-0").await;

    // What the server presents is exactly the Secret's certificate.
    let chain = probe::mysql_served_chain(&format!("{ip}:3306"), None, Duration::from_secs(10))
        .await
        .unwrap();
    let secret_leaf = pem_to_der(&secret_data(&env, "tls-server-cert", "tls.crt").await);
    assert_eq!(
        chain[0], secret_leaf,
        "the served certificate is the Secret's"
    );
    let ca = secret_data(&env, "tls-server-cert", "ca.crt").await;
    for name in [format!("tls.{ns}.svc"), format!("tls-0.tls-pods.{ns}.svc")] {
        assert!(verifies_for(&chain[0], &ca, &name), "verifies for {name}");
    }
    assert!(!verifies_for(&chain[0], &ca, "other.example.com"));

    // The client certificate is taken; plaintext is refused, because of require_secure_transport.
    let dir = tempdir(&ns);
    let client = client_files(&env, "tls-client-cert", &dir).await;
    let password = password(&env, "tls").await;
    let version = mariadb(
        &ip,
        &password,
        Some(&client),
        "SHOW SESSION STATUS LIKE 'Ssl_version'",
    )
    .unwrap();
    assert!(version.contains("TLSv1"), "a TLS session: {version}");
    let refused = mariadb(&ip, &password, None, "SELECT 1").unwrap_err();
    mariadb(
        &ip,
        &password,
        Some(&client),
        "SET GLOBAL require_secure_transport=OFF",
    )
    .unwrap();
    assert_eq!(
        mariadb(&ip, &password, None, "SELECT 1").unwrap(),
        "1",
        "plaintext once allowed"
    );
    mariadb(
        &ip,
        &password,
        Some(&client),
        "SET GLOBAL require_secure_transport=ON",
    )
    .unwrap();
    println!(
        "pods_mysql: Ready {:.1}s after creation; plaintext refused ({refused}); mariadbd RSS MiB: {:?}",
        took.as_secs_f64(),
        server_memory()
    );
}

#[tokio::test]
async fn a_deleted_pod_comes_back_with_its_data_and_certificates() {
    if !real_pods("a_deleted_pod_comes_back_with_its_data_and_certificates") {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&mysql("keep", "")).await.unwrap();
    ready(&env, KIND, "keep").await;
    let ns = env.namespace().to_string();
    let dir = tempdir(&ns);
    let client = client_files(&env, "keep-client-cert", &dir).await;
    let password = password(&env, "keep").await;
    let ip = pod_ip(&env, "keep-0").await;
    mariadb(
        &ip,
        &password,
        Some(&client),
        "CREATE DATABASE kept; CREATE TABLE kept.t (v VARCHAR(20)); INSERT INTO kept.t VALUES ('still here')",
    )
    .unwrap();
    let served = |ip: String| async move {
        probe::mysql_served_chain(&format!("{ip}:3306"), None, Duration::from_secs(10))
            .await
            .map(|chain| probe::serial_of(&chain[0]))
    };
    let before = served(ip.clone()).await.unwrap();

    let pods = env.api::<Pod>();
    let old_uid = pods.get("keep-0").await.unwrap().uid();
    pods.delete("keep-0", &DeleteParams::default())
        .await
        .unwrap();
    env.eventually("keep-0 replaced and ready", POD_READY, || async {
        let pod = pods.get_opt("keep-0").await?;
        let replaced = pod.filter(|p| p.uid() != old_uid).filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        Ok(replaced.map(|_| ()))
    })
    .await
    .unwrap();
    let ip = pod_ip(&env, "keep-0").await;
    let row = mariadb(&ip, &password, Some(&client), "SELECT v FROM kept.t").unwrap();
    assert_eq!(row, "still here");
    assert_eq!(served(ip).await.unwrap(), before, "the same certificate");
}

#[tokio::test]
async fn a_crashing_server_is_named_with_its_last_log_lines() {
    if !real_pods("a_crashing_server_is_named_with_its_last_log_lines") {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    let wrong = "  podTemplate:\n    spec:\n      containers:\n      - name: mysql\n        args: [\"--ssl-cipher=NO-SUCH-CIPHER\"]\n";
    env.apply_yaml(&mysql("crash", wrong)).await.unwrap();
    let message = env
        .eventually("WorkloadReady naming the crash", POD_READY, || async {
            let c = env.condition(KIND, "crash", "WorkloadReady").await?;
            Ok(c.and_then(|c| c.message)
                .filter(|m| m.contains("pod crash-0") && m.contains("last exit")))
        })
        .await
        .unwrap();
    assert!(
        message.contains("Failed to set ciphers") || message.contains("SSL error"),
        "{message}"
    );
    let ready = env
        .condition(KIND, "crash", "Ready")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready.status, "False");
    println!("pods_mysql: crash reported as: {message}");
}

#[tokio::test]
async fn a_missing_secret_keeps_the_pod_waiting_and_the_conditions_name_it() {
    if !real_pods("a_missing_secret_keeps_the_pod_waiting_and_the_conditions_name_it") {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml("apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ntype: kubernetes.io/basic-auth\nstringData:\n  username: root\n  password: from-the-user\n")
        .await
        .unwrap();
    env.apply_yaml(&mysql("waits", "  authSecret:\n    name: creds\n"))
        .await
        .unwrap();
    ready(&env, KIND, "waits").await;
    // The user's Secret goes; the pod is recreated and cannot start without it.
    env.api::<Secret>()
        .delete("creds", &DeleteParams::default())
        .await
        .unwrap();
    env.api::<Pod>()
        .delete("waits-0", &DeleteParams::default())
        .await
        .unwrap();
    let waiting = env
        .eventually("WorkloadReady quoting kubelet", POD_READY, || async {
            let c = env.condition(KIND, "waits", "WorkloadReady").await?;
            Ok(c.and_then(|c| c.message)
                .filter(|m| m.contains("pod waits-0") && m.contains("creds")))
        })
        .await
        .unwrap();
    assert!(waiting.contains("CreateContainerConfigError"), "{waiting}");
    let started = env
        .condition(KIND, "waits", "ProvisioningStarted")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.reason.as_deref(), Some("AuthSecretMissing"));
    assert!(started.message.unwrap().contains("creds"));
    println!("pods_mysql: a missing Secret reported as: {waiting}");
}

/// `spec.monitor`'s sidecar is the real `mysqld_exporter` (Debian's build, under the image name
/// the provisioner gives it): with only the pod spec the provisioner writes (`exporter.cnf`,
/// the exporter certificate, the CA bundle, the credentials as environment) it logs in to a
/// requireSSL server over TLS and presents a certificate the server verifies.
#[tokio::test]
async fn a_monitored_mysql_is_scraped_over_tls_with_the_exporter_certificate() {
    if !real_pods("a_monitored_mysql_is_scraped_over_tls_with_the_exporter_certificate") {
        return;
    }
    let env = Env::start(EnvOptions::default()).await.unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    let monitor = "  monitor:\n    agent: prometheus.io/builtin\n";
    env.apply_yaml(&mysql("mon", monitor)).await.unwrap();
    let took = ready(&env, KIND, "mon").await;
    let ns = env.namespace().to_string();
    let dir = tempdir(&ns);
    let client = client_files(&env, "mon-client-cert", &dir).await;
    let password = password(&env, "mon").await;
    let logging_in = || exporters_logging_in(&env, "mon", &password, &client);
    env.eventually("the exporter reaches the server", POD_READY, || async {
        Ok((logging_in().await == 1).then_some(()))
    })
    .await
    .unwrap();

    // From now on every root login needs a certificate the server's CA signed: only a scrape
    // that logs in with the exporter's certificate can report the server up (a plaintext one
    // is refused by require_secure_transport, one without a certificate by REQUIRE X509).
    let ip = pod_ip(&env, "mon-0").await;
    let sql = |q: &str| mariadb(&ip, &password, Some(&client), q).unwrap();
    let accounts =
        sql("SELECT CONCAT(QUOTE(user), '@', QUOTE(host)) FROM mysql.user WHERE user = 'root'");
    for account in accounts.lines() {
        sql(&format!("ALTER USER {account} REQUIRE X509"));
    }
    let started = std::time::Instant::now();
    env.eventually(
        "the exporter logs in with its certificate",
        POD_READY,
        || async { Ok((logging_in().await == 1).then_some(())) },
    )
    .await
    .unwrap();
    println!(
        "pods_mysql: monitored MySQL Ready {:.1}s after creation; under REQUIRE X509 the exporter logged in again after {:.1}s",
        took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
