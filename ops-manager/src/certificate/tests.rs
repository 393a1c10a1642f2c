#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::fixtures::{tls_db, with_db};
use dbtls_contract::api::IssuerRef;

fn build_for(yaml: &str, alias_name: &str) -> Certificate {
    with_db(yaml, |db, view| {
        let view = view.unwrap();
        let issuer = view.issuer_for(alias_name).unwrap().clone();
        build(db, &view, alias_name, &issuer, "cluster.local")
    })
}

#[test]
fn server_certificate_names_the_services_and_pods_of_the_database() {
    let cert = build_for(&tls_db(DbKind::MySQL, "my", ""), "server");
    assert_eq!(cert.metadata.name.as_deref(), Some("my-server-cert"));
    assert_eq!(cert.spec.secret_name, "my-server-cert");
    assert_eq!(cert.spec.common_name.as_deref(), Some("my.demo.svc"));
    assert_eq!(
        cert.spec.dns_names.unwrap(),
        vec![
            "my",
            "my.demo",
            "my.demo.svc",
            "my.demo.svc.cluster.local",
            "*.my.demo.svc",
            "*.my-pods.demo.svc",
            "*.my-pods.demo.svc.cluster.local",
            "localhost"
        ]
    );
    assert_eq!(cert.spec.ip_addresses.unwrap(), vec!["127.0.0.1"]);
    assert_eq!(
        cert.spec.usages.unwrap(),
        vec![
            "digital signature",
            "key encipherment",
            "server auth",
            "client auth"
        ]
    );
    assert_eq!(
        cert.spec.issuer_ref,
        ObjectReference {
            name: "ca".into(),
            kind: Some("Issuer".into()),
            group: Some("cert-manager.io".into())
        }
    );
    assert_eq!(cert.spec.duration, None);
    assert_eq!(cert.spec.subject, None);
}

#[test]
fn every_certificate_carries_the_database_labels_and_owner() {
    for kind in DbKind::ALL {
        let yaml = tls_db(kind, "db1", "");
        for alias_name in kind.profile().aliases {
            let cert = build_for(&yaml, alias_name);
            let expected = labels::for_database(kind, "db1");
            assert_eq!(cert.metadata.labels.as_ref(), Some(&expected));
            assert_eq!(
                cert.spec.secret_template.as_ref().unwrap().labels.as_ref(),
                Some(&expected),
                "{kind} {alias_name}: the TLS Secret must be watchable by label"
            );
            let owners = cert.metadata.owner_references.unwrap();
            assert_eq!(owners.len(), 1);
            let owner = &owners[0];
            assert_eq!(owner.kind, kind.profile().kind);
            assert_eq!(owner.api_version, kind.profile().api_version);
            assert_eq!(owner.name, "db1");
            assert_eq!(owner.uid, "uid-1");
            assert_eq!(owner.controller, Some(true));
            assert_eq!(owner.block_owner_deletion, Some(true));
        }
    }
}

#[test]
fn user_overrides_are_merged_into_the_defaults() {
    let yaml = tls_db(
        DbKind::PerconaXtraDB,
        "px",
        r#"    certificates:
    - alias: server
      secretName: px-tls
      subject:
        organizations: ["kubedb:server"]
        countries: ["NL"]
      duration: 720h
      renewBefore: 24h
      dnsNames: [localhost, db.example.com]
      ipAddresses: ["127.0.0.1", "10.0.0.7"]
      uris: ["spiffe://cluster.local/ns/demo/sa/px"]
      emailAddresses: [dba@example.com]
      privateKey:
        encoding: PKCS8
"#,
    );
    let cert = build_for(&yaml, "server");
    assert_eq!(cert.metadata.name.as_deref(), Some("px-tls"));
    assert_eq!(cert.spec.secret_name, "px-tls");
    let dns = cert.spec.dns_names.unwrap();
    assert_eq!(dns.iter().filter(|d| *d == "localhost").count(), 1);
    assert_eq!(dns.last().map(String::as_str), Some("db.example.com"));
    assert_eq!(dns[0], "px");
    assert_eq!(
        cert.spec.ip_addresses.unwrap(),
        vec!["127.0.0.1", "10.0.0.7"]
    );
    let subject = cert.spec.subject.unwrap();
    assert_eq!(subject.organizations.unwrap(), vec!["kubedb:server"]);
    assert_eq!(subject.countries.unwrap(), vec!["NL"]);
    assert_eq!(subject.organizational_units, None);
    assert_eq!(cert.spec.duration.as_deref(), Some("720h"));
    assert_eq!(cert.spec.renew_before.as_deref(), Some("24h"));
    assert_eq!(
        cert.spec.uris.unwrap(),
        vec!["spiffe://cluster.local/ns/demo/sa/px"]
    );
    assert_eq!(cert.spec.email_addresses.unwrap(), vec!["dba@example.com"]);
    assert_eq!(
        cert.spec.private_key.unwrap().encoding.as_deref(),
        Some("PKCS8")
    );
    // The other aliases keep their defaults.
    let client = build_for(&yaml, "client");
    assert_eq!(client.spec.secret_name, "px-client-cert");
    assert_eq!(client.spec.duration, None);
}

#[test]
fn long_names_get_no_common_name_but_keep_their_sans() {
    let name = "a".repeat(60);
    let cert = build_for(&tls_db(DbKind::MySQL, &name, ""), "server");
    assert_eq!(cert.spec.common_name, None);
    assert!(
        cert.spec
            .dns_names
            .unwrap()
            .contains(&format!("{name}.demo.svc"))
    );
}

#[test]
fn client_and_exporter_certificates_identify_the_kind_users() {
    let mysql = tls_db(DbKind::MySQL, "my", "");
    let client = build_for(&mysql, "client");
    assert_eq!(client.spec.common_name.as_deref(), Some("root"));
    assert_eq!(
        client.spec.usages.unwrap(),
        vec!["digital signature", "key encipherment", "client auth"]
    );
    assert_eq!(client.spec.dns_names, None);
    let exporter = build_for(&mysql, "metrics-exporter");
    assert_eq!(exporter.spec.common_name.as_deref(), Some("exporter"));
    assert!(
        exporter
            .spec
            .usages
            .unwrap()
            .contains(&"client auth".to_string())
    );
    let mssql_client = build_for(&tls_db(DbKind::MSSQLServer, "ms", ""), "client");
    assert_eq!(mssql_client.spec.common_name.as_deref(), Some("mssql"));
}

#[test]
fn proxysql_and_singlestore_servers_are_named_by_the_bare_name_as_in_kubedb() {
    for kind in [DbKind::ProxySQL, DbKind::Singlestore] {
        let cert = build_for(&tls_db(kind, "db", ""), "server");
        assert_eq!(cert.spec.common_name.as_deref(), Some("db"), "{kind}");
    }
    let percona = build_for(&tls_db(DbKind::PerconaXtraDB, "db", ""), "server");
    assert_eq!(percona.spec.common_name.as_deref(), Some("db.demo.svc"));
}

#[test]
fn an_availability_group_endpoint_names_the_replicas_for_both_directions() {
    let yaml = tls_db(
        DbKind::MSSQLServer,
        "ms",
        "  topology:\n    mode: AvailabilityGroup\n",
    );
    let endpoint = build_for(&yaml, "endpoint");
    let server = build_for(&yaml, "server");
    assert_eq!(endpoint.spec.secret_name, "ms-endpoint-cert");
    assert_eq!(endpoint.spec.dns_names, server.spec.dns_names);
    assert_eq!(endpoint.spec.usages, server.spec.usages);
    let subject = endpoint.spec.subject.unwrap();
    assert_eq!(subject.organizations.unwrap(), vec!["kubedb"]);
    assert_eq!(subject.organizational_units.unwrap(), vec!["endpoint"]);
}

#[test]
fn mssql_subject_defaults_to_kubedb_and_the_alias_unless_given() {
    let cert = build_for(&tls_db(DbKind::MSSQLServer, "ms", ""), "server");
    let subject = cert.spec.subject.unwrap();
    assert_eq!(subject.organizations.unwrap(), vec!["kubedb"]);
    assert_eq!(subject.organizational_units.unwrap(), vec!["server"]);

    let yaml = tls_db(
        DbKind::MSSQLServer,
        "ms",
        "    certificates:\n    - alias: client\n      subject:\n        organizations: [acme]\n",
    );
    let subject = build_for(&yaml, "client").spec.subject.unwrap();
    assert_eq!(subject.organizations.unwrap(), vec!["acme"]);
    assert_eq!(subject.organizational_units.unwrap(), vec!["client"]);
    // Other kinds get no default subject.
    let mysql = build_for(&tls_db(DbKind::MySQL, "my", ""), "client");
    assert_eq!(mysql.spec.subject, None);
}

#[test]
fn a_per_alias_issuer_overrides_the_database_issuer() {
    let yaml = tls_db(
        DbKind::ProxySQL,
        "prx",
        "    certificates:\n    - alias: client\n      issuerRef: {kind: ClusterIssuer, name: global}\n",
    );
    let client = build_for(&yaml, "client");
    assert_eq!(
        client.spec.issuer_ref.kind.as_deref(),
        Some("ClusterIssuer")
    );
    assert_eq!(client.spec.issuer_ref.name, "global");
    assert_eq!(
        client.spec.issuer_ref.group.as_deref(),
        Some("cert-manager.io")
    );
    let server = build_for(&yaml, "server");
    assert_eq!(server.spec.issuer_ref.name, "ca");
}

#[test]
fn the_cluster_domain_flag_reaches_the_fully_qualified_names() {
    let cert = with_db(&tls_db(DbKind::MySQL, "my", ""), |db, view| {
        let view = view.unwrap();
        let issuer = IssuerRef {
            api_group: None,
            kind: "Issuer".into(),
            name: "ca".into(),
        };
        build(db, &view, "server", &issuer, "corp.internal")
    });
    let dns = cert.spec.dns_names.unwrap();
    assert!(dns.contains(&"my.demo.svc.corp.internal".to_string()));
    assert!(!dns.iter().any(|d| d.ends_with("cluster.local")));
}
