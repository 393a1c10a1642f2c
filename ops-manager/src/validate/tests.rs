#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::fixtures::{tls_db, with_db};

fn errors_of(kind: DbKind, extra: &str) -> Vec<ValidationError> {
    with_db(&tls_db(kind, "db", extra), |db, view| {
        validate(db.kind, &db.name, &view.unwrap())
    })
}

#[test]
fn a_minimal_database_of_every_kind_is_valid() {
    for kind in DbKind::ALL {
        assert_eq!(errors_of(kind, ""), vec![], "{kind}");
    }
}

#[test]
fn an_alias_the_kind_does_not_issue_is_reported_with_the_known_ones() {
    let errors = errors_of(
        DbKind::Singlestore,
        "    certificates:\n    - alias: metrics-exporter\n",
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].condition(),
        (ConditionType::CertificatesReady, Reason::UnknownAlias)
    );
    let message = errors[0].to_string();
    assert!(message.contains("\"metrics-exporter\""), "{message}");
    assert!(message.contains("server, client"), "{message}");
}

#[test]
fn the_endpoint_alias_is_known_only_to_an_availability_group() {
    let entry = "    certificates:\n    - alias: endpoint\n";
    let standalone = errors_of(DbKind::MSSQLServer, entry);
    assert_eq!(standalone.len(), 1, "{standalone:?}");
    assert!(standalone[0].to_string().contains("server, client"));
    let ag = format!("{entry}  topology:\n    mode: AvailabilityGroup\n");
    assert_eq!(errors_of(DbKind::MSSQLServer, &ag), vec![]);
}

#[test]
fn durations_follow_cert_manager_minimums() {
    let cases = [
        ("duration: 30m", "duration", "shorter than 1h"),
        ("duration: 10d", "duration", "unknown unit"),
        ("renewBefore: 1m", "renewBefore", "shorter than 5m"),
        (
            "duration: 2h\n      renewBefore: 3h",
            "renewBefore",
            "shorter than the certificate duration",
        ),
        // Against the default duration (90 days, 2160h).
        (
            "renewBefore: 2200h",
            "renewBefore",
            "shorter than the certificate duration",
        ),
    ];
    for (fields, field, why) in cases {
        let errors = errors_of(
            DbKind::MySQL,
            &format!("    certificates:\n    - alias: client\n      {fields}\n"),
        );
        assert_eq!(errors.len(), 1, "{fields}: {errors:?}");
        let ValidationError::InvalidCertificateSpec {
            alias,
            field: named,
            why: said,
        } = &errors[0]
        else {
            panic!("{fields}: {errors:?}");
        };
        assert_eq!(
            (alias.as_str(), named.as_str()),
            ("client", field),
            "{fields}"
        );
        assert!(said.contains(why), "{fields}: {said}");
        assert_eq!(errors[0].condition().1, Reason::InvalidCertificateSpec);
    }
    let ok = errors_of(
        DbKind::MySQL,
        "    certificates:\n    - alias: client\n      duration: 1h\n      renewBefore: 5m\n",
    );
    assert_eq!(ok, vec![]);
}

#[test]
fn sans_must_be_names_addresses_uris_and_emails() {
    let errors = errors_of(
        DbKind::MySQL,
        "    certificates:\n    - alias: server\n      dnsNames: [\"*.ok.example\", \"bad name\"]\n      ipAddresses: [\"10.0.0.1\", \"::1\", \"300.1.1.1\"]\n      uris: [\"spiffe://x/y\", \"no-scheme\"]\n      emailAddresses: [\"a@b.example\", \"Name <a@b.example>\"]\n",
    );
    let fields: Vec<String> = errors
        .iter()
        .map(|e| match e {
            ValidationError::InvalidCertificateSpec { alias, field, .. } => {
                assert_eq!(alias, "server");
                field.clone()
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        vec!["dnsNames", "ipAddresses", "uris", "emailAddresses"]
    );
    assert!(errors[0].to_string().contains("\"bad name\""));
}

#[test]
fn issuer_refs_must_name_a_cert_manager_issuer() {
    let errors = errors_of(
        DbKind::ProxySQL,
        "    certificates:\n    - alias: client\n      issuerRef: {apiGroup: example.com, kind: Issuer, name: x}\n",
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].condition(),
        (ConditionType::IssuerReady, Reason::InvalidIssuerRef)
    );
    assert!(errors[0].to_string().contains("certificates[0].issuerRef"));

    let yaml = "apiVersion: kubedb.com/v1\nkind: MySQL\nmetadata: {name: db}\nspec:\n  version: \"8.4.3\"\n  tls:\n    certificates:\n    - alias: server\n      issuerRef: {kind: Issuer, name: ca}\n";
    let errors = with_db(yaml, |db, view| validate(db.kind, &db.name, &view.unwrap()));
    // client and metrics-exporter have no issuer at all.
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].to_string().contains("\"client\""));
}

#[test]
fn two_aliases_cannot_share_a_secret() {
    let errors = errors_of(
        DbKind::MySQL,
        "    certificates:\n    - alias: client\n      secretName: db-server-cert\n",
    );
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().contains("\"server\""),
        "{}",
        errors[0]
    );
}
