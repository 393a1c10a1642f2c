//! Reliability §1, the bad-input catalogue: for every invalid input, where it is caught and what
//! the user sees (a condition with a reason and a message naming what to fix, and an Event), with
//! nothing crashing, hot-looping or half-built. One test per row of docs/reliability.md §1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input_support;

use bad_input_support::*;
use dbtls_contract::DbKind;
use dbtls_contract::certmanager::{Certificate, Issuer};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams};
use testbed::harness::Env;

const MY: DbKind = DbKind::MySQL;

fn mysql(name: &str, issuer: &str) -> String {
    Env::tls_database(MY, name, "Issuer", issuer)
}

// ---------------------------------------------------------------- caught at admission (CRD)

#[tokio::test]
async fn admission_issuer_kind_not_issuer() {
    let env = admission_env().await;
    let yaml = Env::tls_database(MY, "db", "Secret", "ca");
    rejected_with_422(
        &env,
        &yaml,
        "issuerRef.kind must be Issuer or ClusterIssuer",
    )
    .await;
}

#[tokio::test]
async fn admission_issuer_api_group_not_cert_manager() {
    let env = admission_env().await;
    let yaml = mysql("db", "ca").replace("apiGroup: cert-manager.io", "apiGroup: example.com");
    rejected_with_422(&env, &yaml, "issuerRef.apiGroup must be cert-manager.io").await;
}

#[tokio::test]
async fn admission_issuer_name_empty() {
    let env = admission_env().await;
    let yaml = mysql("db", "ca").replace("      name: ca\n", "      name: \"\"\n");
    rejected_with_422(&env, &yaml, "issuerRef.name must not be empty").await;
}

#[tokio::test]
async fn admission_issuer_name_missing() {
    let env = admission_env().await;
    let yaml = mysql("db", "ca").replace("      name: ca\n", "");
    let message = rejected_with_422(&env, &yaml, "Required value").await;
    assert!(message.contains("spec.tls.issuerRef.name"), "{message}");
}

#[tokio::test]
async fn admission_issuer_kind_missing() {
    let env = admission_env().await;
    let yaml = mysql("db", "ca").replace("      kind: Issuer\n", "");
    let message = rejected_with_422(&env, &yaml, "Required value").await;
    assert!(message.contains("spec.tls.issuerRef.kind"), "{message}");
}

#[tokio::test]
async fn admission_duplicate_aliases() {
    let env = admission_env().await;
    let yaml = with_certificates(
        &mysql("db", "ca"),
        "ca",
        "    - alias: server\n      secretName: a\n    - alias: server\n      secretName: b\n",
    );
    rejected_with_422(&env, &yaml, "certificate aliases must be unique").await;
}

#[tokio::test]
async fn admission_empty_alias() {
    let env = admission_env().await;
    let yaml = with_certificates(&mysql("db", "ca"), "ca", "    - alias: \"\"\n");
    rejected_with_422(&env, &yaml, "alias must not be empty").await;
}

#[tokio::test]
async fn admission_require_ssl_without_tls() {
    let env = admission_env().await;
    let yaml = Env::no_tls_database(MY, "db").replace(
        "  deletionPolicy: WipeOut\n",
        "  requireSSL: true\n  deletionPolicy: WipeOut\n",
    );
    rejected_with_422(&env, &yaml, "spec.requireSSL needs spec.tls.issuerRef").await;
}

#[tokio::test]
async fn admission_mssqlserver_without_tls() {
    let env = admission_env().await;
    let yaml = Env::no_tls_database(DbKind::MSSQLServer, "db");
    let message = rejected_with_422(&env, &yaml, "MSSQLServer needs spec.tls.issuerRef").await;
    assert!(message.contains("Required value"), "{message}");
}

#[tokio::test]
async fn admission_unknown_deletion_policy() {
    let env = admission_env().await;
    let yaml = mysql("db", "ca").replace("deletionPolicy: WipeOut", "deletionPolicy: Never");
    let message = rejected_with_422(&env, &yaml, "Unsupported value").await;
    assert!(message.contains("spec.deletionPolicy"), "{message}");
}

/// `clientTLS` exists only on MSSQLServer. By default the API server prunes it from a MySQL
/// (the object is stored without it); with `fieldValidation=Strict` it refuses the object.
#[tokio::test]
async fn admission_client_tls_on_a_kind_without_it() {
    let env = admission_env().await;
    let yaml =
        mysql("db", "ca").replace("      name: ca\n", "      name: ca\n    clientTLS: true\n");
    let (api, obj) = dynamic(&env, &yaml);
    // kube's PostParams has no fieldValidation: send the strict create by hand.
    let url = format!(
        "/apis/kubedb.com/v1/namespaces/{}/mysqls?fieldValidation=Strict",
        env.namespace()
    );
    let request = axum::http::Request::post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&obj).unwrap())
        .unwrap();
    match env.client().request::<serde_json::Value>(request).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 400, "{status:?}");
            assert!(
                status.message.contains("unknown field")
                    && status.message.contains("spec.tls.clientTLS"),
                "{}",
                status.message
            );
        }
        other => panic!("strict field validation let clientTLS through: {other:?}"),
    }
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    let tls = &created.data["spec"]["tls"];
    assert_eq!(tls["issuerRef"]["name"], "ca");
    assert!(tls.get("clientTLS").is_none(), "not pruned: {tls}");
}

// ---------------------------------------------------------------- caught by the ops-manager

#[tokio::test]
async fn ops_manager_issuer_missing() {
    let env = full_env().await;
    env.apply_yaml(&mysql("db", "nowhere")).await.unwrap();
    let message = condition(&env, MY, "db", "IssuerReady", "False", "IssuerNotFound").await;
    assert!(
        message.contains(&format!("Issuer {}/nowhere", env.namespace()))
            && message.contains("create it"),
        "{message}"
    );
    let note = event(&env, "db", "IssuerNotFound").await;
    assert!(note.contains("nowhere"), "{note}");
    assert_no_hot_loop(&env, "db").await;
    assert_no_workload_or_certificates(&env, MY, "db").await;
}

#[tokio::test]
async fn ops_manager_cluster_issuer_missing() {
    let env = full_env().await;
    env.apply_yaml(&Env::tls_database(MY, "db", "ClusterIssuer", "nowhere-e2e"))
        .await
        .unwrap();
    let message = condition(&env, MY, "db", "IssuerReady", "False", "IssuerNotFound").await;
    assert!(message.contains("ClusterIssuer nowhere-e2e"), "{message}");
    event(&env, "db", "IssuerNotFound").await;
    assert_no_hot_loop(&env, "db").await;
    assert_no_workload_or_certificates(&env, MY, "db").await;
}

/// An Issuer is namespaced: one of that name in another namespace does not count.
#[tokio::test]
async fn ops_manager_issuer_in_another_namespace() {
    let env = full_env().await;
    let other = env.cluster_resource_namespace().to_string();
    // Named after the test's namespace: tests sharing a cluster share the other namespace.
    let elsewhere = format!("{}-elsewhere", env.namespace());
    let issuer = format!(
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: {elsewhere}\n  namespace: {other}\nspec:\n  selfSigned: {{}}\n"
    );
    let (api, obj) = {
        let value: serde_json::Value = serde_yaml::from_str(&issuer).unwrap();
        let obj: Issuer = serde_json::from_value(value).unwrap();
        (kube::Api::<Issuer>::namespaced(env.client(), &other), obj)
    };
    api.create(&PostParams::default(), &obj).await.unwrap();
    env.apply_yaml(&mysql("db", &elsewhere)).await.unwrap();
    let message = condition(&env, MY, "db", "IssuerReady", "False", "IssuerNotFound").await;
    assert!(
        message.contains(&format!("Issuer {}/{elsewhere}", env.namespace())),
        "{message}"
    );
    event(&env, "db", "IssuerNotFound").await;
    assert_no_hot_loop(&env, "db").await;
    assert_no_workload_or_certificates(&env, MY, "db").await;
    api.delete(&elsewhere, &DeleteParams::default())
        .await
        .unwrap();
}

/// An ACME issuer cannot be used here (no HTTP01/DNS01 solver reaches a database): it never
/// becomes Ready for these Certificates and the database says so in the issuer's own words.
#[tokio::test]
async fn ops_manager_acme_issuer() {
    let env = full_env().await;
    env.apply_yaml(
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: acme\nspec:\n  acme:\n    server: https://acme.invalid/directory\n    privateKeySecretRef:\n      name: acme-account\n    solvers:\n    - http01:\n        ingress: {}\n",
    )
    .await
    .unwrap();
    env.apply_yaml(&mysql("db", "acme")).await.unwrap();
    let message = condition(&env, MY, "db", "IssuerReady", "False", "IssuerNotReady").await;
    assert!(
        message.contains(&format!("Issuer {}/acme", env.namespace())),
        "{message}"
    );
    event(&env, "db", "IssuerNotReady").await;
    assert_no_hot_loop(&env, "db").await;
    assert!(
        env.api::<StatefulSet>()
            .get_opt("db")
            .await
            .unwrap()
            .is_none(),
        "no workload without TLS Secrets"
    );
}

#[tokio::test]
async fn ops_manager_unknown_alias() {
    let env = full_env().await;
    env.create_ca_issuer("ca").await.unwrap();
    let yaml = with_certificates(&mysql("db", "ca"), "ca", "    - alias: replication\n");
    env.apply_yaml(&yaml).await.unwrap();
    let message = condition(
        &env,
        MY,
        "db",
        "CertificatesReady",
        "False",
        "UnknownCertificateAlias",
    )
    .await;
    assert!(
        message.contains("\"replication\"") && message.contains("server, client, metrics-exporter"),
        "{message}"
    );
    event(&env, "db", "UnknownCertificateAlias").await;
    assert_no_hot_loop(&env, "db").await;
    assert_no_workload_or_certificates(&env, MY, "db").await;
}

/// One invalid certificate entry (ops-manager, `InvalidCertificateSpec`): the message names the
/// alias, the field and why.
async fn invalid_certificate_entry(entry: &str, field: &str, why: &str) {
    let env = full_env().await;
    env.create_ca_issuer("ca").await.unwrap();
    let yaml = with_certificates(&mysql("db", "ca"), "ca", entry);
    env.apply_yaml(&yaml).await.unwrap();
    let message = condition(
        &env,
        MY,
        "db",
        "CertificatesReady",
        "False",
        "InvalidCertificateSpec",
    )
    .await;
    assert!(
        message.contains(field) && message.contains(why),
        "{message}"
    );
    let note = event(&env, "db", "InvalidCertificateSpec").await;
    assert!(note.contains(field), "{note}");
    assert_no_hot_loop(&env, "db").await;
    assert_no_workload_or_certificates(&env, MY, "db").await;
}

#[tokio::test]
async fn ops_manager_dns_name_not_a_dns_name() {
    invalid_certificate_entry(
        "    - alias: server\n      dnsNames: [\"db example\"]\n",
        "dnsNames",
        "\"db example\" is not a valid DNS name",
    )
    .await;
}

#[tokio::test]
async fn ops_manager_ip_address_not_an_ip() {
    invalid_certificate_entry(
        "    - alias: server\n      ipAddresses: [\"10.0.0.300\"]\n",
        "ipAddresses",
        "\"10.0.0.300\" is not an IP address",
    )
    .await;
}

#[tokio::test]
async fn ops_manager_duration_below_minimum() {
    invalid_certificate_entry(
        "    - alias: server\n      duration: 30m\n",
        "duration",
        "shorter than 1h",
    )
    .await;
}

#[tokio::test]
async fn ops_manager_renew_before_not_below_duration() {
    invalid_certificate_entry(
        "    - alias: client\n      duration: 2h\n      renewBefore: 2h\n",
        "renewBefore",
        "must be shorter than the certificate duration",
    )
    .await;
}

#[tokio::test]
async fn ops_manager_secret_name_not_a_name() {
    invalid_certificate_entry(
        "    - alias: client\n      secretName: Bad_Name\n",
        "secretName",
        "\"Bad_Name\" is not a valid Secret name",
    )
    .await;
}

#[tokio::test]
async fn ops_manager_two_aliases_one_secret() {
    invalid_certificate_entry(
        "    - alias: server\n      secretName: shared\n    - alias: client\n      secretName: shared\n",
        "secretName",
        "give each certificate its own Secret",
    )
    .await;
}

/// A user's Secret under the name a certificate should use is never overwritten: the
/// ops-manager reports the conflict and creates no Certificate for it, the provisioner reports
/// the Secret's wrong type and missing keys, and the workload waits.
#[tokio::test]
async fn ops_manager_secret_name_taken_by_a_users_secret() {
    let env = full_env().await;
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: mine\ntype: Opaque\nstringData:\n  note: user data\n",
    )
    .await
    .unwrap();
    let before = env.api::<Secret>().get("mine").await.unwrap();
    let yaml = with_certificates(
        &mysql("db", "ca"),
        "ca",
        "    - alias: client\n      secretName: mine\n",
    );
    env.apply_yaml(&yaml).await.unwrap();
    let message = condition(
        &env,
        MY,
        "db",
        "CertificatesReady",
        "False",
        "SecretNameConflict",
    )
    .await;
    assert!(
        message.contains("client: Secret mine exists") && message.contains("another secretName"),
        "{message}"
    );
    event(&env, "db", "SecretNameConflict").await;
    let message = condition(
        &env,
        MY,
        "db",
        "TLSSecretsReady",
        "False",
        "TLSSecretInvalid",
    )
    .await;
    assert!(
        message.contains("mine") && message.contains("type is Opaque"),
        "{message}"
    );
    event(&env, "db", "TLSSecretInvalid").await;
    assert_no_hot_loop(&env, "db").await;
    assert!(
        env.api::<Certificate>()
            .get_opt("mine")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        env.api::<StatefulSet>()
            .get_opt("db")
            .await
            .unwrap()
            .is_none()
    );
    let after = env.api::<Secret>().get("mine").await.unwrap();
    assert_eq!(before.resource_version(), after.resource_version());
    assert_eq!(before.data, after.data);
    assert!(after.owner_references().is_empty());
}

/// Two databases name the same secretName: the first one owns it, the second reports whose it is.
#[tokio::test]
async fn ops_manager_secret_name_shared_by_two_databases() {
    let env = full_env().await;
    env.create_ca_issuer("ca").await.unwrap();
    let entry = "    - alias: client\n      secretName: shared-client\n";
    env.apply_yaml(&with_certificates(&mysql("first", "ca"), "ca", entry))
        .await
        .unwrap();
    converged(&env, MY, "first").await;
    let issued = env.api::<Secret>().get("shared-client").await.unwrap();
    env.apply_yaml(&with_certificates(&mysql("second", "ca"), "ca", entry))
        .await
        .unwrap();
    let message = condition(
        &env,
        MY,
        "second",
        "CertificatesReady",
        "False",
        "SecretNameConflict",
    )
    .await;
    assert!(
        message.contains("Certificate shared-client belongs to MySQL first"),
        "{message}"
    );
    event(&env, "second", "SecretNameConflict").await;
    assert_no_hot_loop(&env, "second").await;
    assert!(
        env.api::<StatefulSet>()
            .get_opt("second")
            .await
            .unwrap()
            .is_none()
    );
    let cert = env.api::<Certificate>().get("shared-client").await.unwrap();
    let first_uid = env
        .api::<dbtls_contract::api::MySQL>()
        .get("first")
        .await
        .unwrap()
        .uid();
    assert_eq!(
        cert.owner_references()[0].uid,
        first_uid.unwrap(),
        "the first database keeps its Certificate"
    );
    let after = env.api::<Secret>().get("shared-client").await.unwrap();
    assert_eq!(
        issued.data, after.data,
        "the first database's Secret is untouched"
    );
}

/// The Issuer is deleted after convergence: the database says so, and nothing it has is torn
/// down (the Secrets stay valid until they expire; the workload is not touched).
#[tokio::test]
async fn ops_manager_issuer_deleted_after_convergence() {
    let env = full_env().await;
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&mysql("db", "ca")).await.unwrap();
    converged(&env, MY, "db").await;
    let workload = env.api::<StatefulSet>().get("db").await.unwrap();
    let secret = env.api::<Secret>().get("db-server-cert").await.unwrap();

    env.api::<Issuer>()
        .delete("ca", &DeleteParams::default())
        .await
        .unwrap();
    let message = condition(&env, MY, "db", "IssuerReady", "False", "IssuerNotFound").await;
    assert!(message.contains("Issuer"), "{message}");
    event(&env, "db", "IssuerNotFound").await;
    assert_no_hot_loop(&env, "db").await;
    let after = env.api::<StatefulSet>().get("db").await.unwrap();
    assert_eq!(workload.uid(), after.uid());
    assert_eq!(
        workload.metadata.generation, after.metadata.generation,
        "workload spec rewritten"
    );
    let kept = env.api::<Secret>().get("db-server-cert").await.unwrap();
    assert_eq!(secret.data, kept.data);
    assert_eq!(certificates_of(&env, MY, "db").await.len(), 3);
}

/// The CA Issuer's Secret holds a leaf certificate, not a CA: cert-manager keeps the Issuer
/// not Ready and the database repeats its reason.
#[tokio::test]
async fn ops_manager_ca_secret_not_a_ca() {
    let env = full_env().await;
    let (ca_pem, ca_key) = testbed::harness::manifests::self_signed_ca("not-a-ca").unwrap();
    // A CA:FALSE leaf: the same key signed as an end-entity certificate.
    let key = rcgen::KeyPair::from_pem(&ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["leaf.example".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let leaf = params.self_signed(&key).unwrap().pem();
    assert_ne!(leaf, ca_pem);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("leaf-ca".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        string_data: Some(
            [
                ("tls.crt".to_string(), leaf),
                ("tls.key".to_string(), ca_key),
            ]
            .into(),
        ),
        ..Default::default()
    };
    env.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    env.apply_yaml(
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: leaf\nspec:\n  ca:\n    secretName: leaf-ca\n",
    )
    .await
    .unwrap();
    env.apply_yaml(&mysql("db", "leaf")).await.unwrap();
    // First "no Ready condition yet", then cert-manager's verdict on the key pair.
    let message = env
        .eventually(
            "IssuerNotReady with cert-manager's reason",
            DEADLINE,
            || async {
                Ok(env
                    .condition(MY, "db", "IssuerReady")
                    .await?
                    .filter(|c| c.reason.as_deref() == Some("IssuerNotReady"))
                    .and_then(|c| c.message)
                    .filter(|m| m.contains("not a CA")))
            },
        )
        .await
        .unwrap();
    assert!(
        message.contains(&format!("Issuer {}/leaf", env.namespace())),
        "{message}"
    );
    event(&env, "db", "IssuerNotReady").await;
    assert_no_hot_loop(&env, "db").await;
    assert!(
        env.api::<StatefulSet>()
            .get_opt("db")
            .await
            .unwrap()
            .is_none()
    );
}

// ---------------------------------------------------------------- caught by the provisioner

/// A spec error the provisioner reports as `InvalidSpec` before building anything.
async fn invalid_spec(kind: DbKind, yaml: &str, needle: &str) {
    let env = full_env().await;
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(yaml).await.unwrap();
    let message = condition(
        &env,
        kind,
        "db",
        "ProvisioningStarted",
        "False",
        "InvalidSpec",
    )
    .await;
    assert!(message.contains(needle), "{message}");
    let note = event(&env, "db", "InvalidSpec").await;
    assert!(note.contains(needle), "{note}");
    assert_no_hot_loop(&env, "db").await;
    assert_no_workload_or_certificates(&env, kind, "db").await;
    assert!(
        env.api::<Secret>()
            .get_opt("db-auth")
            .await
            .unwrap()
            .is_none(),
        "auth Secret created for an invalid spec"
    );
}

#[tokio::test]
async fn provisioner_unknown_version() {
    let version = MY.profile().versions[0].0;
    let yaml = mysql("db", "ca").replace(&format!("version: \"{version}\""), "version: \"5.0.0\"");
    assert!(yaml.contains("5.0.0"));
    invalid_spec(
        MY,
        &yaml,
        "spec.version \"5.0.0\" is not in the MySQL catalogue",
    )
    .await;
}

#[tokio::test]
async fn provisioner_storage_missing() {
    let storage_start = mysql("db", "ca").find("  storage:\n").unwrap();
    let full = mysql("db", "ca");
    let rest = &full[storage_start..];
    let end = rest.find("  requireSSL").unwrap();
    let yaml = format!("{}{}", &full[..storage_start], &rest[end..]);
    invalid_spec(MY, &yaml, "spec.storage is required").await;
}

#[tokio::test]
async fn provisioner_proxysql_backend_missing() {
    let yaml = Env::tls_database(DbKind::ProxySQL, "db", "Issuer", "ca")
        .replace("  backend:\n    name: db-backend\n", "");
    invalid_spec(DbKind::ProxySQL, &yaml, "spec.backend.name is required").await;
}

#[tokio::test]
async fn provisioner_monitor_unknown_agent() {
    let yaml = Env::tls_database(MY, "db", "Issuer", "ca").replace(
        "  deletionPolicy:",
        "  monitor:\n    agent: prometheus.io/pushgateway\n  deletionPolicy:",
    );
    invalid_spec(
        MY,
        &yaml,
        "spec.monitor.agent \"prometheus.io/pushgateway\" is not a known agent",
    )
    .await;
}

/// The exporter shares the server's network namespace: a port the server listens on is
/// refused by name, not left to a pod that cannot bind it.
#[tokio::test]
async fn provisioner_monitor_port_the_server_listens_on() {
    let yaml = Env::tls_database(DbKind::Singlestore, "db", "Issuer", "ca").replacen(
        "  deletionPolicy:",
        "  monitor:\n    agent: prometheus.io/operator\n    prometheus:\n      exporter:\n        port: 3306\n  deletionPolicy:",
        1,
    );
    invalid_spec(
        DbKind::Singlestore,
        &yaml,
        "spec.monitor.prometheus.exporter.port 3306 is a port the Singlestore server listens on",
    )
    .await;
}

#[tokio::test]
async fn provisioner_singlestore_license_secret_missing() {
    let full = Env::tls_database(DbKind::Singlestore, "db", "Issuer", "ca");
    let yaml = full.split("\n---\n").next().unwrap();
    invalid_spec(DbKind::Singlestore, yaml, "license Secret db-license").await;
}

async fn auth_secret_problem(secret: Option<&str>, reason: &str, needle: &str) {
    let env = full_env().await;
    env.create_ca_issuer("ca").await.unwrap();
    if let Some(secret) = secret {
        env.apply_yaml(secret).await.unwrap();
    }
    let yaml = mysql("db", "ca").replace(
        "  deletionPolicy: WipeOut\n",
        "  authSecret:\n    name: creds\n  deletionPolicy: WipeOut\n",
    );
    env.apply_yaml(&yaml).await.unwrap();
    let message = condition(&env, MY, "db", "ProvisioningStarted", "False", reason).await;
    assert!(message.contains(needle), "{message}");
    event(&env, "db", reason).await;
    assert_no_hot_loop(&env, "db").await;
    assert_no_workload_or_certificates(&env, MY, "db").await;
    assert!(
        env.api::<Secret>()
            .get_opt("db-auth")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn provisioner_auth_secret_missing() {
    auth_secret_problem(None, "AuthSecretMissing", "auth Secret creds").await;
}

#[tokio::test]
async fn provisioner_auth_secret_missing_keys() {
    auth_secret_problem(
        Some("apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  username: root\n"),
        "AuthSecretInvalid",
        "lacks key(s) password",
    )
    .await;
}

/// Names long enough that `<db>.<ns>.svc` exceeds cert-manager's 64-character CN limit: the
/// server certificate has no CN (the SANs carry the names) and the database converges.
#[tokio::test]
async fn provisioner_long_names_get_no_common_name() {
    let env = full_env().await;
    env.create_ca_issuer("ca").await.unwrap();
    let db = "a-database-name-long-enough-to-overflow-the-cn-x";
    assert!(db.len() + env.namespace().len() + ".svc".len() + 1 > 64);
    env.apply_yaml(&mysql(db, "ca")).await.unwrap();
    converged(&env, MY, db).await;
    let cert = env
        .api::<Certificate>()
        .get(&format!("{db}-server-cert"))
        .await
        .unwrap();
    assert!(
        cert.spec.common_name.is_none(),
        "{:?}",
        cert.spec.common_name
    );
    let fqdn = format!("{db}.{}.svc", env.namespace());
    assert!(
        cert.spec.dns_names.iter().flatten().any(|n| n == &fqdn),
        "{:?}",
        cert.spec.dns_names
    );
}

// ---------------------------------------------------------------- a malformed object

/// `replicas` is `format: int32`, which the API server does not enforce: 2^32 is stored, and no
/// typed client can decode that MySQL. It must not stall the operators for the valid ones.
#[tokio::test]
async fn malformed_object_does_not_stall_the_controllers() {
    let env = full_env().await;
    env.create_ca_issuer("ca").await.unwrap();
    let bad = mysql("broken", "ca").replace(
        "  deletionPolicy: WipeOut\n",
        "  replicas: 4294967296\n  deletionPolicy: WipeOut\n",
    );
    let (api, obj) = dynamic(&env, &bad);
    match api.create(&PostParams::default(), &obj).await {
        // A newer API server enforces int32: caught at admission, nothing more to prove.
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            return;
        }
        Err(other) => panic!("{other}"),
        Ok(_) => {}
    }
    // Restarting makes each operator LIST every MySQL, the broken one included.
    env.restart_operator("provisioner").await.unwrap();
    env.restart_operator("ops-manager").await.unwrap();
    env.apply_yaml(&mysql("good", "ca")).await.unwrap();
    converged(&env, MY, "good").await;
    assert!(
        env.api::<StatefulSet>()
            .get_opt("broken")
            .await
            .unwrap()
            .is_none()
    );
    // The broken one is reported like any other invalid spec, and never built.
    let message = condition(
        &env,
        MY,
        "broken",
        "ProvisioningStarted",
        "False",
        "InvalidSpec",
    )
    .await;
    assert!(
        message.contains("spec.replicas 4294967296 is out of range"),
        "{message}"
    );
    event(&env, "broken", "InvalidSpec").await;
    assert_no_hot_loop(&env, "broken").await;
    assert_no_workload_or_certificates(&env, MY, "broken").await;
    api.delete("broken", &DeleteParams::default())
        .await
        .unwrap();
    env.eventually("broken deleted", DEADLINE, || async {
        Ok(api.get_opt("broken").await?.is_none().then_some(()))
    })
    .await
    .unwrap();
}
