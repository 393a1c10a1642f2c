#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::fixtures::{tls_db, with_db};
use dbtls_contract::DbKind;
use dbtls_contract::certmanager::{CertManagerCondition, CertificateStatus};

fn issuer(ready: bool) -> IssuerState {
    IssuerState::Found {
        acme: false,
        ready,
        message: if ready {
            "KeyPairVerified: Signing CA verified".into()
        } else {
            "ErrGetKeyPair: secret \"ca\" not found".into()
        },
    }
}

fn ca_key() -> IssuerKey {
    IssuerKey {
        kind: "Issuer".into(),
        name: "ca".into(),
    }
}

fn observed_with(state: IssuerState) -> Observed {
    Observed {
        issuers: BTreeMap::from([(ca_key(), state)]),
        ..Default::default()
    }
}

fn plan_for(yaml: &str, observed: &Observed) -> Plan {
    with_db(yaml, |db, view| {
        plan(db, &view.unwrap(), "cluster.local", observed)
    })
}

/// The Certificates `yaml` wants, as cert-manager would show them once issued.
fn issued(yaml: &str, observed: &Observed) -> BTreeMap<String, Certificate> {
    plan_for(yaml, observed)
        .apply
        .into_iter()
        .map(|a| {
            let mut cert = a.certificate;
            cert.metadata.generation = Some(1);
            cert.status = Some(ready_status("True", "Ready", "Certificate is up to date"));
            (cert.spec.secret_name.clone(), cert)
        })
        .collect()
}

fn ready_status(status: &str, reason: &str, message: &str) -> CertificateStatus {
    CertificateStatus {
        conditions: Some(vec![CertManagerCondition {
            type_: "Ready".into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            observed_generation: Some(1),
            ..Default::default()
        }]),
        not_after: Some("2030-01-01T00:00:00Z".into()),
        ..Default::default()
    }
}

fn issued_secret(name: &str) -> SecretFacts {
    SecretFacts {
        name: name.into(),
        uid: Some("secret-uid".into()),
        resource_version: Some("7".into()),
        owners: vec![],
        certificate_name: Some(name.into()),
    }
}

#[test]
fn a_missing_issuer_gets_no_certificates_and_is_reported() {
    let yaml = tls_db(DbKind::MySQL, "my", "");
    let plan = plan_for(&yaml, &observed_with(IssuerState::Missing));
    assert!(plan.apply.is_empty());
    assert!(plan.waiting);
    assert_eq!(plan.issuer_ready.status.as_str(), "False");
    assert_eq!(plan.issuer_ready.reason.as_str(), "IssuerNotFound");
    assert!(
        plan.issuer_ready.message.contains("Issuer demo/ca"),
        "{}",
        plan.issuer_ready.message
    );
    assert_eq!(
        plan.certificates_ready.reason.as_str(),
        "CertificatesNotReady"
    );
    assert!(
        plan.certificates_ready
            .message
            .contains("no Certificate until Issuer demo/ca exists")
    );
}

#[test]
fn certificates_are_created_for_an_issuer_that_is_not_ready_yet() {
    let yaml = tls_db(DbKind::Singlestore, "sdb", "");
    let plan = plan_for(&yaml, &observed_with(issuer(false)));
    assert_eq!(plan.issuer_ready.reason.as_str(), "IssuerNotReady");
    assert!(
        plan.issuer_ready
            .message
            .contains("secret \"ca\" not found")
    );
    let names: Vec<_> = plan
        .apply
        .iter()
        .map(|a| (a.alias, a.change, a.certificate.spec.secret_name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("server", Change::Create, "sdb-server-cert"),
            ("client", Change::Create, "sdb-client-cert")
        ]
    );
    assert!(!plan.waiting);
}

#[test]
fn nothing_is_created_while_the_provisioner_objects_are_missing() {
    let yaml = tls_db(DbKind::MySQL, "my", "");
    let mut observed = observed_with(issuer(true));
    observed.missing_objects = vec!["Secret my-auth".into(), "Service my-pods".into()];
    let plan = plan_for(&yaml, &observed);
    assert!(plan.apply.is_empty());
    assert!(plan.waiting);
    assert_eq!(
        plan.certificates_ready.reason.as_str(),
        "WaitingForDatabaseObjects"
    );
    assert!(
        plan.certificates_ready
            .message
            .contains("Secret my-auth, Service my-pods")
    );
    assert_eq!(plan.issuer_ready.status.as_str(), "True");
}

#[test]
fn a_converged_database_needs_no_write_except_adopting_new_secrets() {
    let yaml = tls_db(DbKind::MySQL, "my", "");
    let mut observed = observed_with(issuer(true));
    observed.certificates = issued(&yaml, &observed);
    observed
        .secrets
        .insert("my-server-cert".into(), issued_secret("my-server-cert"));
    let plan = plan_for(&yaml, &observed);
    assert!(plan.apply.is_empty(), "{:?}", plan.apply);
    assert!(plan.delete.is_empty());
    assert_eq!(plan.certificates_ready.status.as_str(), "True");
    assert_eq!(
        plan.certificates_ready.reason.as_str(),
        "AllCertificatesReady"
    );
    assert_eq!(plan.adopt.len(), 1);
    let adopt = &plan.adopt[0];
    assert_eq!(adopt.secret, "my-server-cert");
    assert_eq!(adopt.resource_version, "7");
    assert_eq!(adopt.owner.uid, "uid-1");
    assert_eq!(adopt.owner.controller, Some(true));
    assert!(plan.aliases.iter().all(|a| a.ready));

    // Once adopted, nothing at all is left to do.
    observed.secrets.get_mut("my-server-cert").unwrap().owners = vec![adopt.owner.clone()];
    assert!(plan_for(&yaml, &observed).adopt.is_empty());
}

#[test]
fn a_changed_issuer_updates_the_certificates_in_place() {
    let yaml = tls_db(DbKind::MySQL, "my", "");
    let mut observed = observed_with(issuer(true));
    observed.certificates = issued(&yaml, &observed);
    let changed = yaml.replace("name: ca\n", "name: ca2\n");
    observed.issuers.insert(
        IssuerKey {
            kind: "Issuer".into(),
            name: "ca2".into(),
        },
        issuer(true),
    );
    let plan = plan_for(&changed, &observed);
    assert_eq!(plan.apply.len(), 3);
    assert!(
        plan.apply
            .iter()
            .all(|a| a.change == Change::Update && a.certificate.spec.issuer_ref.name == "ca2")
    );
    assert!(plan.delete.is_empty());
    assert_eq!(plan.certificates_ready.status.as_str(), "False");
}

#[test]
fn a_foreign_secret_with_the_wanted_name_is_a_conflict_and_left_alone() {
    let yaml = tls_db(
        DbKind::MySQL,
        "my",
        "    certificates:\n    - alias: client\n      secretName: shared\n",
    );
    let mut observed = observed_with(issuer(true));
    observed.secrets.insert(
        "shared".into(),
        SecretFacts {
            name: "shared".into(),
            uid: Some("shared-uid".into()),
            resource_version: Some("3".into()),
            owners: vec![],
            certificate_name: None,
        },
    );
    let plan = plan_for(&yaml, &observed);
    assert_eq!(
        plan.certificates_ready.reason.as_str(),
        "SecretNameConflict"
    );
    assert!(
        plan.certificates_ready
            .message
            .contains("client: Secret shared exists")
    );
    let applied: Vec<_> = plan.apply.iter().map(|a| a.alias).collect();
    assert_eq!(applied, vec!["server", "metrics-exporter"]);
    assert!(plan.adopt.is_empty());
}

#[test]
fn the_second_database_naming_a_secret_reports_the_conflict() {
    let first = tls_db(
        DbKind::MySQL,
        "a",
        "    certificates:\n    - alias: server\n      secretName: shared\n",
    );
    let observed_a = observed_with(issuer(true));
    let certificate_of_a = issued(&first, &observed_a).remove("shared").unwrap();
    let second = first.replace("name: a\n", "name: b\n");
    let mut observed_b = observed_with(issuer(true));
    observed_b
        .certificates
        .insert("shared".into(), certificate_of_a);
    observed_b
        .secrets
        .insert("shared".into(), issued_secret("shared"));
    // Same uid in the fixtures: give database b its own.
    let plan = with_db(&second, |db, view| {
        let mut db = db.clone();
        db.uid = "uid-b".into();
        plan(&db, &view.unwrap(), "cluster.local", &observed_b)
    });
    assert_eq!(
        plan.certificates_ready.reason.as_str(),
        "SecretNameConflict"
    );
    assert!(
        plan.certificates_ready
            .message
            .contains("Certificate shared belongs to MySQL a")
    );
    assert!(
        !plan
            .apply
            .iter()
            .any(|a| a.certificate.spec.secret_name == "shared")
    );
    assert!(
        plan.delete.is_empty(),
        "never delete another database's Certificate"
    );
}

#[test]
fn proxysql_with_an_acme_issuer_gets_only_the_server_certificate() {
    let yaml = tls_db(DbKind::ProxySQL, "prx", "");
    let observed = observed_with(IssuerState::Found {
        acme: true,
        ready: true,
        message: String::new(),
    });
    let plan = plan_for(&yaml, &observed);
    let aliases: Vec<_> = plan.apply.iter().map(|a| a.alias).collect();
    assert_eq!(aliases, vec!["server"]);
    // The same issuer for MySQL issues every alias.
    let mysql = plan_for(&tls_db(DbKind::MySQL, "my", ""), &observed);
    assert_eq!(mysql.apply.len(), 3);
}

#[test]
fn certificates_no_longer_wanted_are_deleted() {
    let yaml = tls_db(DbKind::MySQL, "my", "");
    let mut observed = observed_with(issuer(true));
    observed.certificates = issued(&yaml, &observed);
    let renamed = tls_db(
        DbKind::MySQL,
        "my",
        "    certificates:\n    - alias: client\n      secretName: my-new-client\n",
    );
    let plan = plan_for(&renamed, &observed);
    assert_eq!(plan.delete, vec!["my-client-cert".to_string()]);
    assert_eq!(plan.apply.len(), 1);
    assert_eq!(plan.apply[0].certificate.spec.secret_name, "my-new-client");
    assert_eq!(plan.apply[0].change, Change::Create);
}

#[test]
fn cert_manager_reasons_are_named_per_alias() {
    let yaml = tls_db(DbKind::MSSQLServer, "ms", "");
    let mut observed = observed_with(issuer(true));
    observed.certificates = issued(&yaml, &observed);
    observed
        .certificates
        .get_mut("ms-client-cert")
        .unwrap()
        .status = Some(ready_status(
        "False",
        "DoesNotExist",
        "Issuing certificate as Secret does not exist",
    ));
    observed
        .certificates
        .get_mut("ms-server-cert")
        .unwrap()
        .metadata
        .generation = Some(2);
    let plan = plan_for(&yaml, &observed);
    assert!(plan.apply.is_empty());
    let message = &plan.certificates_ready.message;
    assert_eq!(
        plan.certificates_ready.reason.as_str(),
        "CertificatesNotReady"
    );
    assert!(
        message.contains(
            "client (ms-client-cert): DoesNotExist: Issuing certificate as Secret does not exist"
        ),
        "{message}"
    );
    assert!(
        message.contains("server (ms-server-cert): waiting for cert-manager to issue it"),
        "{message}"
    );
    assert_eq!(plan.aliases.iter().filter(|a| a.ready).count(), 0);
}

#[test]
fn a_cluster_issuer_is_named_without_a_namespace() {
    let yaml =
        tls_db(DbKind::PerconaXtraDB, "px", "").replace("kind: Issuer", "kind: ClusterIssuer");
    let plan = plan_for(&yaml, &Observed::default());
    assert!(
        plan.issuer_ready
            .message
            .contains("ClusterIssuer ca (for server, client, metrics-exporter)"),
        "{}",
        plan.issuer_ready.message
    );
}
