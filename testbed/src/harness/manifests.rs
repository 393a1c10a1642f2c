//! Manifests tests start from: minimal databases of each kind and a self-signed CA.
use anyhow::Context as _;
use dbtls_contract::DbKind;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// The minimal TLS database of `kind` named `name`, using issuer `issuer` of kind
/// `issuer_kind` (`Issuer` or `ClusterIssuer`), as YAML for tests to tweak. Singlestore comes
/// with its license Secret (`<name>-license`) as a second document, ProxySQL with the MySQL it
/// fronts ([`proxysql_backend`]).
pub fn tls_database(kind: DbKind, name: &str, issuer_kind: &str, issuer: &str) -> String {
    let tls = format!(
        "  tls:\n    issuerRef:\n      apiGroup: cert-manager.io\n      kind: {issuer_kind}\n      name: {issuer}\n{}",
        if kind == DbKind::MSSQLServer {
            "    clientTLS: true\n"
        } else {
            ""
        }
    );
    let require_ssl = match kind {
        DbKind::MySQL | DbKind::PerconaXtraDB => "  requireSSL: true\n",
        _ => "",
    };
    database(kind, name, &format!("{require_ssl}{tls}"))
}

/// The minimal database of `kind` without TLS (invalid for MSSQLServer, which requires it).
pub fn no_tls_database(kind: DbKind, name: &str) -> String {
    database(kind, name, "")
}

const STORAGE: &str = "  storageType: Durable\n  storage:\n    storageClassName: standard\n    accessModes: [ReadWriteOnce]\n    resources:\n      requests:\n        storage: 1Gi\n";

fn database(kind: DbKind, name: &str, tls: &str) -> String {
    let profile = kind.profile();
    let version = profile.versions.first().map(|(v, _)| *v).unwrap_or("");
    let (kind_specific, extra_doc) = match kind {
        DbKind::MySQL | DbKind::PerconaXtraDB => (STORAGE.to_string(), String::new()),
        DbKind::ProxySQL => (
            format!("  backend:\n    name: {name}-backend\n  syncUsers: true\n"),
            format!("---\n{}", proxysql_backend(&format!("{name}-backend"))),
        ),
        DbKind::Singlestore => (
            format!("{STORAGE}  licenseSecret:\n    kind: Secret\n    name: {name}-license\n"),
            format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-license\ntype: Opaque\nstringData:\n  license: test-license\n"
            ),
        ),
        DbKind::MSSQLServer => (
            format!(
                "{STORAGE}  podTemplate:\n    spec:\n      containers:\n      - name: mssql\n        env:\n        - name: ACCEPT_EULA\n          value: \"Y\"\n        - name: MSSQL_PID\n          value: Evaluation\n"
            ),
            String::new(),
        ),
    };
    format!(
        "apiVersion: {}\nkind: {}\nmetadata:\n  name: {name}\nspec:\n  version: \"{version}\"\n{kind_specific}{tls}  deletionPolicy: WipeOut\n{extra_doc}",
        profile.api_version, profile.kind
    )
}

/// The MySQL a ProxySQL of the manifests above fronts (`<proxysql>-backend`): without TLS,
/// ephemeral, so that it is Ready soon, at the version the test node has an image of. Its
/// `deletionPolicy` is spelt differently from the ProxySQL's on purpose: tests that edit the
/// database's document by text leave the backend's alone.
pub fn proxysql_backend(name: &str) -> String {
    format!(
        "apiVersion: kubedb.com/v1\nkind: MySQL\nmetadata:\n  name: {name}\nspec:\n  version: \"8.4.3\"\n  storageType: Ephemeral\n  deletionPolicy: Delete\n"
    )
}

/// A self-signed CA certificate (ECDSA P-256, CA:TRUE) as `(cert_pem, key_pem)`.
pub fn self_signed_ca(common_name: &str) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "dbtls-e2e");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).context("self-signing the CA")?;
    Ok((cert.pem(), key.serialize_pem()))
}
