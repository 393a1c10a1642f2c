//! The cert-manager stand-in alone (operators off), through the end-to-end harness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dbtls_contract::certmanager::{
    Certificate, ClusterIssuer, FAO_LABEL, Issuer, annotations as ann,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use testbed::harness::{Env, EnvOptions};
use x509_parser::prelude::{FromDer as _, X509Certificate};

const DEADLINE: Duration = Duration::from_secs(30);

async fn env() -> Env {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    Env::start(EnvOptions {
        provisioner: false,
        ops_manager: false,
        ..EnvOptions::default()
    })
    .await
    .unwrap()
}

fn certificate(name: &str, issuer_kind: &str, issuer: &str, extra: &str) -> String {
    format!(
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: {name}\nspec:\n  secretName: {name}-tls\n  issuerRef:\n    name: {issuer}\n    kind: {issuer_kind}\n{extra}"
    )
}

fn data(secret: &Secret, key: &str) -> Vec<u8> {
    secret.data.as_ref().unwrap().get(key).unwrap().0.clone()
}

fn pem_ders(pem: &[u8]) -> Vec<Vec<u8>> {
    testbed::certmanager::inspect::pem_certificates(pem)
}

async fn ready_secret(env: &Env, cert: &str, min_revision: i64) -> (Certificate, Secret) {
    let certs: Api<Certificate> = env.api();
    let secrets: Api<Secret> = env.api();
    env.eventually(
        &format!("Certificate {cert} Ready at revision >= {min_revision}"),
        DEADLINE,
        || {
            let (certs, secrets) = (certs.clone(), secrets.clone());
            async move {
                let c = certs.get(cert).await?;
                let rev = c.status.as_ref().and_then(|s| s.revision).unwrap_or(0);
                if !c.is_ready() || rev < min_revision {
                    return Ok(None);
                }
                let s = secrets.get_opt(&c.spec.secret_name).await?;
                Ok(s.map(|s| (c, s)))
            }
        },
    )
    .await
    .unwrap()
}

fn serial_of(secret: &Secret) -> Vec<u8> {
    let der = pem_ders(&data(secret, "tls.crt")).remove(0);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    cert.raw_serial().to_vec()
}

fn verify_server_chain(secret: &Secret, name: &str) {
    let ca = pem_ders(&data(secret, "ca.crt")).remove(0);
    let chain = pem_ders(&data(secret, "tls.crt"));
    let ca_der = rustls_pki_types::CertificateDer::from(ca.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&ca_der).unwrap();
    let leaf_der = rustls_pki_types::CertificateDer::from(chain[0].as_slice());
    let leaf = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
    let intermediates: Vec<_> = chain[1..]
        .iter()
        .map(|d| rustls_pki_types::CertificateDer::from(d.as_slice()))
        .collect();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .unwrap();
    let server_name = rustls_pki_types::ServerName::try_from(name).unwrap();
    leaf.verify_is_valid_for_subject_name(&server_name).unwrap();
}

#[tokio::test]
async fn ca_issuer_issues_a_secret_like_cert_manager() {
    let env = env().await;
    let ca_pem = env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&certificate(
        "web",
        "Issuer",
        "ca",
        "  commonName: web.example.com\n  dnsNames: [web.example.com, web]\n  ipAddresses: [\"10.0.0.1\"]\n  subject:\n    organizations: [\"kubedb:server\"]\n  usages: [digital signature, key encipherment, server auth, client auth]\n  secretTemplate:\n    labels: {app: web}\n    annotations: {team: db}\n",
    ))
    .await
    .unwrap();
    let (cert, secret) = ready_secret(&env, "web", 1).await;

    // Secret shape.
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let labels = secret.metadata.labels.clone().unwrap();
    assert_eq!(labels.get(FAO_LABEL).map(String::as_str), Some("true"));
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    let a = secret.metadata.annotations.clone().unwrap();
    assert_eq!(a[ann::CERTIFICATE_NAME], "web");
    assert_eq!(a[ann::ISSUER_NAME], "ca");
    assert_eq!(a[ann::ISSUER_KIND], "Issuer");
    assert_eq!(a[ann::ISSUER_GROUP], "");
    assert_eq!(a[ann::COMMON_NAME], "web.example.com");
    assert_eq!(a[ann::ALT_NAMES], "web.example.com,web");
    assert_eq!(a[ann::IP_SANS], "10.0.0.1");
    assert_eq!(a[ann::URI_SANS], "");
    assert_eq!(a[ann::SUBJECT_ORGANIZATIONS], "kubedb:server");
    assert_eq!(a["team"], "db");
    assert!(secret.metadata.owner_references.is_none());
    let key = String::from_utf8(data(&secret, "tls.key")).unwrap();
    assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{key}");
    assert_eq!(
        String::from_utf8(data(&secret, "ca.crt")).unwrap().trim(),
        ca_pem.trim()
    );
    let managers: Vec<_> = secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.contains(&"cert-manager-certificates-issuing".to_string()),
        "{managers:?}"
    );

    // The leaf.
    verify_server_chain(&secret, "web.example.com");
    let chain = pem_ders(&data(&secret, "tls.crt"));
    assert_eq!(chain.len(), 1, "root CA: tls.crt is the leaf only");
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    let serial = leaf.raw_serial();
    assert_eq!(serial.len(), 20);
    assert_eq!(serial[0] & 0x80, 0);
    assert!(!leaf.is_ca());
    assert!(
        leaf.basic_constraints().unwrap().is_some(),
        "BasicConstraints always present"
    );
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let facts = testbed::certmanager::inspect::facts(&chain[0]).unwrap();
    assert_eq!(facts.ip_addresses, vec!["10.0.0.1"]);
    assert_eq!(facts.organizations, vec!["kubedb:server"]);
    assert_eq!((facts.not_after - facts.not_before).num_days(), 90);

    // Status.
    let status = cert.status.unwrap();
    assert_eq!(status.revision, Some(1));
    let ready = status.condition("Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("Ready"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Certificate is up to date and has not expired")
    );
    assert!(status.condition("Issuing").is_none());
    let not_after =
        chrono::DateTime::parse_from_rfc3339(status.not_after.as_deref().unwrap()).unwrap();
    let renewal =
        chrono::DateTime::parse_from_rfc3339(status.renewal_time.as_deref().unwrap()).unwrap();
    assert_eq!(
        (not_after - renewal).num_days(),
        30,
        "renewal at 2/3 of the lifetime"
    );
}

#[tokio::test]
async fn default_usages_have_no_eku_and_pkcs8_ecdsa_keys_are_honoured() {
    let env = env().await;
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&certificate(
        "ec",
        "Issuer",
        "ca",
        "  dnsNames: [ec.example.com]\n  privateKey:\n    algorithm: ECDSA\n    encoding: PKCS8\n",
    ))
    .await
    .unwrap();
    env.apply_yaml(&certificate(
        "rsa8",
        "Issuer",
        "ca",
        "  dnsNames: [rsa.example.com]\n  privateKey:\n    encoding: PKCS8\n",
    ))
    .await
    .unwrap();
    let (_, ec) = ready_secret(&env, "ec", 1).await;
    let key = String::from_utf8(data(&ec, "tls.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    let (_, rsa) = ready_secret(&env, "rsa8", 1).await;
    let key = String::from_utf8(data(&rsa, "tls.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    let der = pem_ders(&data(&ec, "tls.crt")).remove(0);
    let (_, leaf) = X509Certificate::from_der(&der).unwrap();
    assert!(
        leaf.extended_key_usage().unwrap().is_none(),
        "no EKU unless asked"
    );
    let facts = testbed::certmanager::inspect::facts(&der).unwrap();
    assert_eq!(facts.common_name, "", "CN is not filled from dnsNames");
}

#[tokio::test]
async fn ecdsa_pkcs1_is_sec1_with_the_named_curve() {
    let env = env().await;
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&certificate(
        "ec1",
        "Issuer",
        "ca",
        "  dnsNames: [ec.example.com]\n  privateKey:\n    algorithm: ECDSA\n",
    ))
    .await
    .unwrap();
    let (_, secret) = ready_secret(&env, "ec1", 1).await;
    let key = String::from_utf8(data(&secret, "tls.key")).unwrap();
    assert!(key.starts_with("-----BEGIN EC PRIVATE KEY-----"), "{key}");
    // Parses back (rcgen/aws-lc accept SEC1 only when well formed) and matches the certificate.
    let pair = rcgen::KeyPair::from_pem(&key).unwrap();
    let facts =
        testbed::certmanager::inspect::facts(&pem_ders(&data(&secret, "tls.crt"))[0]).unwrap();
    use rcgen::PublicKeyData as _;
    assert_eq!(pair.subject_public_key_info(), facts.spki_der);
}

#[tokio::test]
async fn self_signed_issuer() {
    let env = env().await;
    env.apply_yaml("apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: self\nspec:\n  selfSigned: {}\n")
        .await
        .unwrap();
    env.apply_yaml(&certificate(
        "root",
        "Issuer",
        "self",
        "  commonName: my-root\n  isCA: true\n",
    ))
    .await
    .unwrap();
    let (_, secret) = ready_secret(&env, "root", 1).await;
    assert_eq!(
        data(&secret, "tls.crt"),
        data(&secret, "ca.crt"),
        "ca.crt is the certificate itself"
    );
    let der = pem_ders(&data(&secret, "tls.crt")).remove(0);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert!(cert.is_ca());
    assert_eq!(cert.subject().as_raw(), cert.issuer().as_raw());
    assert!(cert.verify_signature(None).is_ok());
    let issuer: Issuer = env.api::<Issuer>().get("self").await.unwrap();
    let ready = issuer.status.unwrap().conditions.unwrap().remove(0);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("True", Some("IsReady"))
    );

    // Bootstrap: a CA issuer from the self-signed root signs a leaf that chains to it.
    env.apply_yaml("apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: from-root\nspec:\n  ca:\n    secretName: root-tls\n")
        .await
        .unwrap();
    env.apply_yaml(&certificate(
        "leaf",
        "Issuer",
        "from-root",
        "  dnsNames: [leaf.example.com]\n",
    ))
    .await
    .unwrap();
    let (_, leaf) = ready_secret(&env, "leaf", 1).await;
    verify_server_chain(&leaf, "leaf.example.com");
}

#[tokio::test]
async fn issuer_created_after_the_certificate_is_picked_up() {
    let env = env().await;
    env.apply_yaml(&certificate(
        "late",
        "Issuer",
        "later",
        "  dnsNames: [late.example.com]\n",
    ))
    .await
    .unwrap();
    let certs: Api<Certificate> = env.api();
    let status = env
        .eventually(
            "Ready False / Issuing True without an issuer",
            DEADLINE,
            || {
                let certs = certs.clone();
                async move {
                    let c = certs.get("late").await?;
                    let s = c.status.unwrap_or_default();
                    let issuing = s.condition("Issuing").is_some_and(|c| c.status == "True");
                    let not_ready = s.condition("Ready").is_some_and(|c| c.status == "False");
                    Ok((issuing && not_ready).then_some(s))
                }
            },
        )
        .await
        .unwrap();
    assert_eq!(
        status.condition("Ready").unwrap().reason.as_deref(),
        Some("DoesNotExist")
    );
    assert!(
        env.api::<Secret>()
            .get_opt("late-tls")
            .await
            .unwrap()
            .is_none()
    );
    env.create_ca_issuer("later").await.unwrap();
    let (cert, _) = ready_secret(&env, "late", 1).await;
    assert!(cert.status.unwrap().condition("Issuing").is_none());
}

async fn issuer_ready(env: &Env, name: &str) -> (String, String, String) {
    let issuers: Api<Issuer> = env.api();
    let c = issuers
        .get(name)
        .await
        .unwrap()
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    c.into_iter()
        .next()
        .map(|c| {
            (
                c.status,
                c.reason.unwrap_or_default(),
                c.message.unwrap_or_default(),
            )
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn ca_secret_missing_then_fixed() {
    let env = env().await;
    env.apply_yaml("apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: ca\nspec:\n  ca:\n    secretName: ca-ca\n")
        .await
        .unwrap();
    env.apply_yaml(&certificate(
        "web",
        "Issuer",
        "ca",
        "  dnsNames: [web.example.com]\n",
    ))
    .await
    .unwrap();
    let envr = &env;
    env.eventually(
        "issuer not Ready with ErrGetKeyPair",
        DEADLINE,
        || async move {
            let (status, reason, message) = issuer_ready(envr, "ca").await;
            Ok((status == "False" && reason == "ErrGetKeyPair").then_some(message))
        },
    )
    .await
    .unwrap();
    // A non-CA certificate is rejected with ErrInvalidKeyPair.
    let leaf = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
    let bad = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ca-ca"}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": leaf.cert.pem(), "tls.key": leaf.signing_key.serialize_pem()}});
    env.apply_yaml(&serde_yaml::to_string(&bad).unwrap())
        .await
        .unwrap();
    env.eventually("issuer ErrInvalidKeyPair", DEADLINE, || async move {
        let (status, reason, message) = issuer_ready(envr, "ca").await;
        Ok((status == "False" && reason == "ErrInvalidKeyPair").then_some(message))
    })
    .await
    .unwrap();
    assert!(
        env.api::<Secret>()
            .get_opt("web-tls")
            .await
            .unwrap()
            .is_none()
    );
    env.create_ca_issuer("ca").await.unwrap();
    let (status, reason, message) = env
        .eventually("issuer Ready", DEADLINE, || async move {
            let r = issuer_ready(envr, "ca").await;
            Ok((r.0 == "True").then_some(r))
        })
        .await
        .unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str(), message.as_str()),
        ("True", "KeyPairVerified", "Signing CA verified")
    );
    ready_secret(&env, "web", 1).await;
}

#[tokio::test]
async fn deleted_secret_is_reissued_with_a_new_serial() {
    let env = env().await;
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&certificate(
        "web",
        "Issuer",
        "ca",
        "  dnsNames: [web.example.com]\n",
    ))
    .await
    .unwrap();
    let (_, first) = ready_secret(&env, "web", 1).await;
    env.api::<Secret>()
        .delete("web-tls", &DeleteParams::default())
        .await
        .unwrap();
    let (cert, second) = ready_secret(&env, "web", 2).await;
    assert_ne!(serial_of(&first), serial_of(&second));
    assert_eq!(cert.status.unwrap().revision, Some(2));
}

#[tokio::test]
async fn issuing_true_forces_a_reissue_and_rotation_policy_is_honoured() {
    let env = env().await;
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&certificate(
        "always",
        "Issuer",
        "ca",
        "  dnsNames: [a.example.com]\n",
    ))
    .await
    .unwrap();
    env.apply_yaml(&certificate(
        "never",
        "Issuer",
        "ca",
        "  dnsNames: [n.example.com]\n  privateKey:\n    rotationPolicy: Never\n",
    ))
    .await
    .unwrap();
    let (_, always1) = ready_secret(&env, "always", 1).await;
    let (_, never1) = ready_secret(&env, "never", 1).await;
    let certs: Api<Certificate> = env.api();
    let renew = serde_json::json!({"status": {"conditions": [{"type": "Issuing", "status": "True",
        "reason": "ManuallyTriggered", "message": "Certificate re-issuance manually triggered",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    for name in ["always", "never"] {
        certs
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&renew))
            .await
            .unwrap();
    }
    let (_, always2) = ready_secret(&env, "always", 2).await;
    let (_, never2) = ready_secret(&env, "never", 2).await;
    assert_ne!(serial_of(&always1), serial_of(&always2));
    assert_ne!(serial_of(&never1), serial_of(&never2));
    assert_ne!(
        data(&always1, "tls.key"),
        data(&always2, "tls.key"),
        "Always rotates the key"
    );
    assert_eq!(
        data(&never1, "tls.key"),
        data(&never2, "tls.key"),
        "Never keeps the key"
    );
}

#[tokio::test]
async fn changed_dns_names_reissue() {
    let env = env().await;
    env.create_ca_issuer("ca").await.unwrap();
    env.apply_yaml(&certificate(
        "web",
        "Issuer",
        "ca",
        "  dnsNames: [old.example.com]\n",
    ))
    .await
    .unwrap();
    ready_secret(&env, "web", 1).await;
    env.apply_yaml(&certificate(
        "web",
        "Issuer",
        "ca",
        "  dnsNames: [new.example.com]\n",
    ))
    .await
    .unwrap();
    let (_, secret) = ready_secret(&env, "web", 2).await;
    verify_server_chain(&secret, "new.example.com");
    assert_eq!(
        secret.metadata.annotations.unwrap()[ann::ALT_NAMES],
        "new.example.com"
    );
}

#[tokio::test]
async fn invalid_certificates_get_ready_false_and_an_event_and_no_secret() {
    let env = env().await;
    env.create_ca_issuer("ca").await.unwrap();
    let long_cn = "a".repeat(65);
    env.apply_yaml(&certificate(
        "long-cn",
        "Issuer",
        "ca",
        &format!("  commonName: {long_cn}\n"),
    ))
    .await
    .unwrap();
    env.apply_yaml(&certificate(
        "short",
        "Issuer",
        "ca",
        "  dnsNames: [s.example.com]\n  duration: 30m\n",
    ))
    .await
    .unwrap();
    let certs: Api<Certificate> = env.api();
    for (name, needle) in [("long-cn", "spec.commonName"), ("short", "spec.duration")] {
        let certs = certs.clone();
        let message = env
            .eventually(&format!("{name} Ready=False"), DEADLINE, || {
                let certs = certs.clone();
                async move {
                    let c = certs.get(name).await?;
                    let ready = c.status.and_then(|s| s.condition("Ready").cloned());
                    Ok(ready
                        .filter(|r| r.status == "False")
                        .and_then(|r| r.message))
                }
            })
            .await
            .unwrap();
        assert!(message.contains(needle), "{message}");
        let envr = &env;
        env.eventually(
            &format!("Warning event for {name}"),
            DEADLINE,
            || async move {
                let events = envr.events_for(name).await?;
                Ok(events.into_iter().find(|(_, note)| note.contains(needle)))
            },
        )
        .await
        .unwrap();
        assert!(
            env.api::<Secret>()
                .get_opt(&format!("{name}-tls"))
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn cluster_issuer_reads_its_secret_from_the_cluster_resource_namespace() {
    let env = env().await;
    let ca = env.create_ca_cluster_issuer("cluster-ca").await.unwrap();
    env.apply_yaml(&certificate(
        "web",
        "ClusterIssuer",
        "cluster-ca",
        "  dnsNames: [web.example.com]\n",
    ))
    .await
    .unwrap();
    let (_, secret) = ready_secret(&env, "web", 1).await;
    assert_eq!(
        String::from_utf8(data(&secret, "ca.crt")).unwrap().trim(),
        ca.trim()
    );
    assert_eq!(
        secret.metadata.annotations.unwrap()[ann::ISSUER_KIND],
        "ClusterIssuer"
    );
    let issuer = Api::<ClusterIssuer>::all(env.client())
        .get("cluster-ca")
        .await
        .unwrap();
    assert!(issuer.status.unwrap().is_ready());
}

#[tokio::test]
async fn idle_stand_in_writes_nothing() {
    let env = env().await;
    env.create_ca_issuer("ca").await.unwrap();
    for i in 0..3 {
        env.apply_yaml(&certificate(
            &format!("c{i}"),
            "Issuer",
            "ca",
            &format!("  dnsNames: [c{i}.example.com]\n"),
        ))
        .await
        .unwrap();
    }
    for i in 0..3 {
        ready_secret(&env, &format!("c{i}"), 1).await;
    }
    let Some(server) = env.api_server() else {
        return;
    };
    let log = server.request_log();
    // Let the last status write's watch event come back and be reconciled.
    let writes_by_cm = || {
        log.snapshot()
            .into_iter()
            .filter(|r| r.user == "cert-manager" && r.verb.is_write())
            .count()
    };
    let mut last = writes_by_cm();
    env.eventually("cert-manager writes to settle", DEADLINE, || {
        let now = writes_by_cm();
        let settled = now == last;
        last = now;
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(settled.then_some(()))
        }
    })
    .await
    .unwrap();
    log.clear();
    // Trigger every watch: touch an unrelated label on each Certificate and the Issuer.
    let certs: Api<Certificate> = env.api();
    let touch = serde_json::json!({"metadata": {"labels": {"touched": "yes"}}});
    for i in 0..3 {
        certs
            .patch(
                &format!("c{i}"),
                &PatchParams::default(),
                &Patch::Merge(&touch),
            )
            .await
            .unwrap();
    }
    let reads = || {
        log.snapshot()
            .into_iter()
            .filter(|r| r.user == "cert-manager" && r.verb == testbed::apiserver::Verb::Get)
            .count()
    };
    env.eventually(
        "the stand-in to reconcile the touched Certificates",
        DEADLINE,
        || {
            let n = reads();
            async move { Ok((n >= 3).then_some(())) }
        },
    )
    .await
    .unwrap();
    let writes: Vec<_> = log
        .snapshot()
        .into_iter()
        .filter(|r| r.user == "cert-manager" && r.verb.is_write())
        .map(|r| format!("{} {} {:?}", r.verb.as_str(), r.path, r.name))
        .collect();
    assert!(writes.is_empty(), "idle stand-in wrote: {writes:?}");
}
