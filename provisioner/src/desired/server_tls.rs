//! How each kind's server gets its certificates: the projected volumes (never `subPath`, which
//! would never see a renewed certificate), the mounts, and the server's TLS settings. One small
//! builder per kind, following KubeDB. These outputs are also what
//! the real-MariaDB test starts the server with, so the MySQL-family arguments must be valid
//! `mysqld` options.
use std::collections::BTreeMap;

use dbtls_contract::DbKind;
use dbtls_contract::kinds::{TlsMountLayout, alias};

use crate::backend::BackendTls;
use k8s_openapi::api::core::v1::{
    EnvVar, KeyToPath, ProjectedVolumeSource, SecretProjection, Volume, VolumeMount,
    VolumeProjection,
};

/// Keys of a cert-manager TLS Secret.
pub const CA_KEY: &str = "ca.crt";
pub const CERT_KEY: &str = "tls.crt";
pub const KEY_KEY: &str = "tls.key";
/// The names a flat layout (and ProxySQL's backend directory) gives the certificates' files.
const SERVER_CERT_FILE: &str = "server.crt";
const SERVER_KEY_FILE: &str = "server.key";
const CLIENT_CERT_FILE: &str = "client.crt";
const CLIENT_KEY_FILE: &str = "client.key";

/// Where the generated config Secret `<db>-config` is mounted (read by an init container).
pub const CONFIG_VOLUME: &str = "config";
pub const CONFIG_DIR: &str = "/var/run/kubedb/config";
/// The file in `<db>-config` that configures SQL Server.
pub const MSSQL_CONF: &str = "mssql.conf";
/// The file in `<db>-config` that gives PerconaXtraDB's state transfers their TLS settings.
pub const SST_TLS_CNF: &str = "sst-tls.cnf";
/// The directory the MySQL family's servers include config files from.
pub const MYSQL_CONF_DIR: &str = "/etc/mysql/conf.d";
const MSSQL_DATA_DIR: &str = "/var/opt/mssql";
/// KubeDB's volume and directory of an Availability Group's mirroring endpoint certificate.
pub const MSSQL_ENDPOINT_VOLUME: &str = "endpoint-cert";
pub const MSSQL_ENDPOINT_DIR: &str = "/var/opt/mssql/endpoint-cert";
const PROXYSQL_DATA_DIR: &str = "/var/lib/proxysql";

/// Everything the database container (and its init container) needs for TLS.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerTls {
    pub volumes: Vec<Volume>,
    pub mounts: Vec<VolumeMount>,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    /// Files of the config Secret `<db>-config` (empty: the kind needs none).
    pub config_files: BTreeMap<String, String>,
    /// A shell script run before the server starts (same image, same mounts plus data).
    pub init_script: Option<String>,
    /// Where the database container itself reads the config Secret (a directory the server
    /// includes); None: only the init container reads it.
    pub config_dir: Option<&'static str>,
}

/// What the TLS builders read from the database.
#[derive(Clone, Debug)]
pub struct TlsInput<'a> {
    /// `(alias, Secret name)` for every alias of the kind (`dbtls_contract::tls::secrets`).
    pub secrets: &'a [(&'static str, String)],
    pub require_ssl: bool,
    /// MSSQLServer `spec.tls.clientTLS`.
    pub client_tls: bool,
    /// The Secret whose `ca.crt` every CA file is (`dbtls_contract::names::ca_bundle`): the CAs
    /// the servers trust, the old and the new one during an issuer change. None for a server
    /// certificate from ACME, which comes without its CA: no CA file is mounted.
    pub ca_bundle: Option<&'a str>,
}

impl TlsInput<'_> {
    fn secret(&self, wanted: &str) -> &str {
        self.secrets
            .iter()
            .find(|(a, _)| *a == wanted)
            .map(|(_, name)| name.as_str())
            .unwrap_or_default()
    }
}

/// The TLS configuration of a `kind` server.
pub fn server_tls(kind: DbKind, input: &TlsInput<'_>) -> ServerTls {
    match kind {
        DbKind::MySQL => mysql(input),
        DbKind::PerconaXtraDB => percona_xtradb(input),
        DbKind::ProxySQL => proxysql(input),
        DbKind::Singlestore => singlestore(input),
        DbKind::MSSQLServer => mssql(input),
    }
}

pub(crate) fn item(key: &str, path: &str) -> KeyToPath {
    KeyToPath {
        key: key.to_string(),
        path: path.to_string(),
        mode: None,
    }
}

pub(crate) fn projection(secret: &str, items: Vec<KeyToPath>) -> VolumeProjection {
    VolumeProjection {
        secret: Some(SecretProjection {
            name: secret.to_string(),
            items: Some(items),
            optional: Some(false),
        }),
        ..VolumeProjection::default()
    }
}

fn projected(name: &str, sources: Vec<VolumeProjection>) -> Volume {
    Volume {
        name: name.to_string(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            default_mode: None,
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    }
}

/// The CA file of a directory, from the CA bundle (none without one).
fn ca_from_bundle(input: &TlsInput<'_>, path: &str) -> Option<VolumeProjection> {
    input
        .ca_bundle
        .map(|bundle| projection(bundle, vec![item(CA_KEY, path)]))
}

/// A kind's TLS volume and directory: the flat layout's, or the per-alias layout's prefix and base.
fn layout_dirs(kind: DbKind) -> (&'static str, &'static str) {
    match kind.profile().tls_layout {
        TlsMountLayout::Flat { volume, dir } => (volume, dir),
        TlsMountLayout::PerAlias {
            volume_prefix,
            base_dir,
        } => (volume_prefix, base_dir),
    }
}

/// Where a flat layout puts the server certificate and key: `(server.crt, server.key)`.
pub fn flat_server_files(kind: DbKind) -> (String, String) {
    server_files_in(layout_dirs(kind).1)
}

/// The server certificate and key in a flat directory.
fn server_files_in(dir: &str) -> (String, String) {
    (
        format!("{dir}/{SERVER_CERT_FILE}"),
        format!("{dir}/{SERVER_KEY_FILE}"),
    )
}

/// The items that put a client Secret's certificate and key where a flat directory has them.
fn client_files() -> Vec<KeyToPath> {
    vec![
        item(CERT_KEY, CLIENT_CERT_FILE),
        item(KEY_KEY, CLIENT_KEY_FILE),
    ]
}

/// One directory with `ca.crt`, `server.crt`, `server.key`, `client.crt`, `client.key`.
fn flat(kind: DbKind, input: &TlsInput<'_>) -> (Volume, VolumeMount, &'static str) {
    let (volume, dir) = layout_dirs(kind);
    let sources = ca_from_bundle(input, CA_KEY)
        .into_iter()
        .chain([
            projection(
                input.secret(alias::SERVER),
                vec![
                    item(CERT_KEY, SERVER_CERT_FILE),
                    item(KEY_KEY, SERVER_KEY_FILE),
                ],
            ),
            projection(input.secret(alias::CLIENT), client_files()),
        ])
        .collect();
    (projected(volume, sources), mount(volume, dir), dir)
}

/// One directory per alias, each holding its Secret's `tls.crt`, `tls.key` and the bundle's
/// `ca.crt`.
fn per_alias(kind: DbKind, input: &TlsInput<'_>) -> (Vec<Volume>, Vec<VolumeMount>, &'static str) {
    let (prefix, base) = layout_dirs(kind);
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (alias, secret) in input.secrets {
        let name = format!("{prefix}-{alias}");
        let own = projection(
            secret,
            vec![item(CERT_KEY, CERT_KEY), item(KEY_KEY, KEY_KEY)],
        );
        let sources = ca_from_bundle(input, CA_KEY).into_iter().chain([own]);
        volumes.push(projected(&name, sources.collect()));
        mounts.push(mount(&name, &format!("{base}/{alias}")));
    }
    (volumes, mounts, base)
}

/// MySQL: `tls-volume` at `/etc/mysql/certs` and `MySQLTLSArgs()`.
pub fn mysql(input: &TlsInput<'_>) -> ServerTls {
    let (volume, mount, dir) = flat(DbKind::MySQL, input);
    let (cert, key) = server_files_in(dir);
    let mut args = vec![
        format!("--ssl-capath={dir}"),
        format!("--ssl-ca={dir}/{CA_KEY}"),
        format!("--ssl-cert={cert}"),
        format!("--ssl-key={key}"),
    ];
    if input.require_ssl {
        args.push("--require-secure-transport=ON".to_string());
    }
    ServerTls {
        volumes: vec![volume],
        mounts: vec![mount],
        args,
        ..ServerTls::default()
    }
}

/// The directory of a PerconaXtraDB server's certificate (`ca.crt`, `tls.crt`, `tls.key`).
pub fn percona_server_dir() -> String {
    let base = match DbKind::PerconaXtraDB.profile().tls_layout {
        TlsMountLayout::PerAlias { base_dir, .. } => base_dir,
        TlsMountLayout::Flat { dir, .. } => dir,
    };
    format!("{base}/{}", alias::SERVER)
}

/// PerconaXtraDB: `/etc/mysql/certs/<alias>/` and `ssl_ca/ssl_cert/ssl_key` from the server dir.
pub fn percona_xtradb(input: &TlsInput<'_>) -> ServerTls {
    let (volumes, mounts, _) = per_alias(DbKind::PerconaXtraDB, input);
    let server = percona_server_dir();
    let mut args = vec![
        format!("--ssl-capath={server}"),
        format!("--ssl-ca={server}/{CA_KEY}"),
        format!("--ssl-cert={server}/{CERT_KEY}"),
        format!("--ssl-key={server}/{KEY_KEY}"),
    ];
    if input.require_ssl {
        args.push("--require-secure-transport=ON".to_string());
    }
    ServerTls {
        volumes,
        mounts,
        args,
        config_files: BTreeMap::from([(SST_TLS_CNF.to_string(), sst_tls_cnf(&server))]),
        config_dir: Some(MYSQL_CONF_DIR),
        ..ServerTls::default()
    }
}

/// The `[sst]` group that makes state transfers (a joiner receiving a node's data) run over TLS
/// with the server certificate, verifying the other side's chain and name. The transfer scripts
/// read these settings only from config files, never from the server's arguments.
pub fn sst_tls_cnf(dir: &str) -> String {
    format!(
        "[sst]\nssl-mode=VERIFY_CA\ntca={dir}/{CA_KEY}\ntcert={dir}/{CERT_KEY}\ntkey={dir}/{KEY_KEY}\n"
    )
}

/// The `[sst]` group of a Galera cluster switching TLS: transfers in plaintext, whatever TLS
/// the server has (donor and joiner must agree, and some nodes have none).
pub fn sst_plaintext_cnf() -> String {
    "[sst]\nssl-mode=DISABLED\n".to_string()
}

/// ProxySQL (frontend TLS): `/var/lib/frontend/<alias>/` and `FRONTEND_TLS_ENABLED=true`, on
/// which KubeDB's image sets `mysql-have_ssl`. ProxySQL serves `proxysql-{ca,cert,key}.pem` from
/// its datadir; making those symlinks into the projected volume (instead of copies) lets
/// `PROXYSQL RELOAD TLS` pick up renewed certificates. A certificate from ACME comes without its
/// CA: ProxySQL's CA file is then the served chain itself (ProxySQL needs the file to start, and
/// no client certificate is issued that would have to chain to it).
pub fn proxysql(input: &TlsInput<'_>) -> ServerTls {
    let (volumes, mounts, base) = per_alias(DbKind::ProxySQL, input);
    let server = format!("{base}/{}", alias::SERVER);
    let link = |file: &str, pem: &str| {
        format!("ln -sf {server}/{file} {PROXYSQL_DATA_DIR}/proxysql-{pem}.pem")
    };
    let ca_file = if input.ca_bundle.is_some() {
        CA_KEY
    } else {
        CERT_KEY
    };
    let script = [
        link(ca_file, "ca"),
        link(CERT_KEY, "cert"),
        link(KEY_KEY, "key"),
    ]
    .join(" && ");
    ServerTls {
        volumes,
        mounts,
        env: vec![env("FRONTEND_TLS_ENABLED", "true")],
        init_script: Some(format!("set -e; {script}")),
        ..ServerTls::default()
    }
}

/// Where ProxySQL's image reads its backend's CA (KubeDB's `/var/lib/certs/ca.crt`), next to
/// the client certificate it presents to the backend.
pub const PROXYSQL_BACKEND_DIR: &str = "/var/lib/certs";
const PROXYSQL_BACKEND_VOLUME: &str = "backend-tls";

/// ProxySQL to its backend over TLS (`BACKEND_TLS_ENABLED=true`: KubeDB's image then sets
/// `use_ssl` on the backend servers): the backend's CA bundle and its client certificate, in
/// `/var/lib/certs/{ca.crt,client.crt,client.key}`.
pub fn proxysql_backend(backend: &BackendTls) -> (Volume, VolumeMount, EnvVar) {
    let volume = projected(
        PROXYSQL_BACKEND_VOLUME,
        vec![
            projection(&backend.ca_bundle, vec![item(CA_KEY, CA_KEY)]),
            projection(&backend.client_secret, client_files()),
        ],
    );
    (
        volume,
        mount(PROXYSQL_BACKEND_VOLUME, PROXYSQL_BACKEND_DIR),
        env("BACKEND_TLS_ENABLED", "true"),
    )
}

/// Singlestore: `tls-volume` at `/etc/memsql/certs` and `ssl_ca/ssl_cert/ssl_key`.
pub fn singlestore(input: &TlsInput<'_>) -> ServerTls {
    let (volume, mount, dir) = flat(DbKind::Singlestore, input);
    let (cert, key) = server_files_in(dir);
    ServerTls {
        volumes: vec![volume],
        mounts: vec![mount],
        args: vec![
            format!("--ssl_ca={dir}/{CA_KEY}"),
            format!("--ssl_cert={cert}"),
            format!("--ssl_key={key}"),
        ],
        ..ServerTls::default()
    }
}

/// The `mssql.conf` that makes SQL Server force TLS with the mounted server certificate.
pub fn mssql_conf(dir: &str) -> String {
    let (cert, key) = server_files_in(dir);
    format!(
        "[network]\nforceencryption = 1\ntlscert = {cert}\ntlskey = {key}\ntlsprotocols = 1.2\n"
    )
}

/// MSSQLServer: volume `tls` at `/var/opt/mssql/tls`; with `clientTLS`, `mssql.conf` through
/// the config Secret, copied into place by an init container (SQL Server reads it from its data
/// directory, and a `subPath` mount would never see updates). Without `clientTLS` the init
/// container removes a `mssql.conf` left from an earlier `clientTLS: true`.
pub fn mssql(input: &TlsInput<'_>) -> ServerTls {
    let (volume, mount, dir) = flat(DbKind::MSSQLServer, input);
    let target = format!("{MSSQL_DATA_DIR}/{MSSQL_CONF}");
    let (mut volumes, mut mounts) = (vec![volume], vec![mount]);
    if let Some((volume, mount)) = mssql_endpoint(input) {
        volumes.push(volume);
        mounts.push(mount);
    }
    if input.client_tls {
        ServerTls {
            volumes,
            mounts,
            config_files: BTreeMap::from([(MSSQL_CONF.to_string(), mssql_conf(dir))]),
            init_script: Some(format!("set -e; cp {CONFIG_DIR}/{MSSQL_CONF} {target}")),
            ..ServerTls::default()
        }
    } else {
        ServerTls {
            volumes,
            mounts,
            init_script: Some(format!("rm -f {target}")),
            ..ServerTls::default()
        }
    }
}

/// An Availability Group's `endpoint` certificate (`ca.crt`, `tls.crt`, `tls.key`) in KubeDB's
/// `endpoint-cert` directory; None for a standalone server.
fn mssql_endpoint(input: &TlsInput<'_>) -> Option<(Volume, VolumeMount)> {
    let (_, secret) = input.secrets.iter().find(|(a, _)| *a == alias::ENDPOINT)?;
    let own = projection(
        secret,
        vec![item(CERT_KEY, CERT_KEY), item(KEY_KEY, KEY_KEY)],
    );
    let sources = ca_from_bundle(input, CA_KEY).into_iter().chain([own]);
    Some((
        projected(MSSQL_ENDPOINT_VOLUME, sources.collect()),
        mount(MSSQL_ENDPOINT_VOLUME, MSSQL_ENDPOINT_DIR),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn secrets(kind: DbKind) -> Vec<(&'static str, String)> {
        kind.profile()
            .aliases
            .iter()
            .map(|a| (*a, format!("db-{a}-cert")))
            .collect()
    }

    fn input<'a>(secrets: &'a [(&'static str, String)], require_ssl: bool) -> TlsInput<'a> {
        TlsInput {
            secrets,
            require_ssl,
            client_tls: false,
            ca_bundle: Some("db-ca-bundle"),
        }
    }

    #[test]
    fn mysql_args_match_kubedb_and_require_ssl_adds_secure_transport() {
        let s = secrets(DbKind::MySQL);
        let tls = mysql(&input(&s, false));
        assert_eq!(
            tls.args,
            [
                "--ssl-capath=/etc/mysql/certs",
                "--ssl-ca=/etc/mysql/certs/ca.crt",
                "--ssl-cert=/etc/mysql/certs/server.crt",
                "--ssl-key=/etc/mysql/certs/server.key",
            ]
        );
        let strict = mysql(&input(&s, true));
        assert_eq!(
            strict.args.last().map(String::as_str),
            Some("--require-secure-transport=ON")
        );
        assert_eq!(tls.mounts[0].mount_path, "/etc/mysql/certs");
        assert_eq!(tls.mounts[0].name, "tls-volume");
    }

    #[test]
    fn percona_has_one_directory_per_alias() {
        let s = secrets(DbKind::PerconaXtraDB);
        let tls = percona_xtradb(&input(&s, true));
        let paths: Vec<_> = tls.mounts.iter().map(|m| m.mount_path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/mysql/certs/server",
                "/etc/mysql/certs/client",
                "/etc/mysql/certs/metrics-exporter"
            ]
        );
        assert!(
            tls.args
                .contains(&"--ssl-ca=/etc/mysql/certs/server/ca.crt".to_string())
        );
        assert!(
            tls.args
                .contains(&"--ssl-key=/etc/mysql/certs/server/tls.key".to_string())
        );
        assert!(
            tls.args
                .contains(&"--require-secure-transport=ON".to_string())
        );
        // State transfers read their TLS settings from a file the server includes.
        assert_eq!(tls.config_dir, Some("/etc/mysql/conf.d"));
        assert_eq!(
            tls.config_files[SST_TLS_CNF],
            "[sst]\nssl-mode=VERIFY_CA\ntca=/etc/mysql/certs/server/ca.crt\ntcert=/etc/mysql/certs/server/tls.crt\ntkey=/etc/mysql/certs/server/tls.key\n"
        );
        // Each alias directory: its own Secret's key pair, and the CA file from the bundle
        // (which holds the old and the new CA during an issuer change).
        let client = tls.volumes.iter().find(|v| v.name == "tls-client").unwrap();
        let sources = client.projected.as_ref().unwrap().sources.as_ref().unwrap();
        let files: Vec<(&str, &str)> = sources
            .iter()
            .flat_map(|source| {
                let secret = source.secret.as_ref().unwrap();
                secret
                    .items
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(|i| (secret.name.as_str(), i.path.as_str()))
            })
            .collect();
        assert_eq!(
            files,
            [
                ("db-ca-bundle", "ca.crt"),
                ("db-client-cert", "tls.crt"),
                ("db-client-cert", "tls.key")
            ]
        );
    }

    #[test]
    fn proxysql_enables_frontend_tls_and_links_the_datadir_files() {
        let s = secrets(DbKind::ProxySQL);
        let tls = proxysql(&input(&s, false));
        assert_eq!(tls.env, vec![env("FRONTEND_TLS_ENABLED", "true")]);
        assert!(
            tls.mounts
                .iter()
                .any(|m| m.mount_path == "/var/lib/frontend/server")
        );
        let script = tls.init_script.unwrap();
        assert!(script.contains(
            "ln -sf /var/lib/frontend/server/tls.key /var/lib/proxysql/proxysql-key.pem"
        ));
    }

    #[test]
    fn proxysql_from_acme_mounts_its_server_certificate_without_a_ca() {
        let s = vec![(alias::SERVER, "db-server-cert".to_string())];
        let tls = proxysql(&TlsInput {
            ca_bundle: None,
            ..input(&s, false)
        });
        assert_eq!(tls.volumes.len(), 1, "the server directory only");
        let sources = tls.volumes[0].projected.as_ref().unwrap().sources.as_ref();
        let secrets: Vec<&str> = sources
            .unwrap()
            .iter()
            .map(|p| p.secret.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(secrets, ["db-server-cert"], "no CA bundle");
        let script = tls.init_script.unwrap();
        assert!(
            script.contains(
                "ln -sf /var/lib/frontend/server/tls.crt /var/lib/proxysql/proxysql-ca.pem"
            ),
            "{script}"
        );
        assert!(!script.contains("ca.crt"), "{script}");
    }

    #[test]
    fn proxysql_reaches_its_backend_with_the_backends_ca_and_client_certificate() {
        let (volume, mount, env_var) = proxysql_backend(&BackendTls {
            ca_bundle: "be-ca-bundle".into(),
            client_secret: "be-client-cert".into(),
        });
        assert_eq!(mount.mount_path, "/var/lib/certs");
        assert_eq!(env_var, env("BACKEND_TLS_ENABLED", "true"));
        assert_eq!(
            crate::desired::projected_files(&volume),
            [
                "be-ca-bundle:ca.crt->ca.crt",
                "be-client-cert:tls.crt->client.crt",
                "be-client-cert:tls.key->client.key"
            ]
        );
    }

    #[test]
    fn singlestore_uses_the_flat_memsql_directory() {
        let s = secrets(DbKind::Singlestore);
        let tls = singlestore(&input(&s, false));
        assert_eq!(tls.mounts[0].mount_path, "/etc/memsql/certs");
        assert!(
            tls.args
                .contains(&"--ssl_cert=/etc/memsql/certs/server.crt".to_string())
        );
    }

    #[test]
    fn an_availability_group_mounts_its_endpoint_certificate_where_kubedb_does() {
        let mut s = secrets(DbKind::MSSQLServer);
        assert!(
            mssql(&input(&s, false)).mounts.len() == 1,
            "standalone: tls only"
        );
        s.push((alias::ENDPOINT, "db-endpoint-cert".to_string()));
        let tls = mssql(&input(&s, false));
        let mount = tls
            .mounts
            .iter()
            .find(|m| m.name == "endpoint-cert")
            .unwrap();
        assert_eq!(mount.mount_path, "/var/opt/mssql/endpoint-cert");
        let volume = tls
            .volumes
            .iter()
            .find(|v| v.name == "endpoint-cert")
            .unwrap();
        let files: Vec<(String, String)> = volume
            .projected
            .as_ref()
            .unwrap()
            .sources
            .iter()
            .flatten()
            .flat_map(|p| {
                let secret = p.secret.clone().unwrap();
                secret
                    .items
                    .unwrap()
                    .into_iter()
                    .map(move |i| (secret.name.clone(), i.path))
            })
            .collect();
        let want = [
            ("db-ca-bundle", "ca.crt"),
            ("db-endpoint-cert", "tls.crt"),
            ("db-endpoint-cert", "tls.key"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(files, want);
    }

    #[test]
    fn mssql_conf_only_with_client_tls() {
        let s = secrets(DbKind::MSSQLServer);
        let without = mssql(&input(&s, false));
        assert!(without.config_files.is_empty());
        assert_eq!(without.mounts[0].mount_path, "/var/opt/mssql/tls");
        let with = mssql(&TlsInput {
            secrets: &s,
            require_ssl: false,
            client_tls: true,
            ca_bundle: Some("db-ca-bundle"),
        });
        let conf = &with.config_files[MSSQL_CONF];
        assert!(conf.starts_with("[network]\nforceencryption = 1\n"));
        assert!(conf.contains("tlscert = /var/opt/mssql/tls/server.crt"));
        assert!(conf.contains("tlskey = /var/opt/mssql/tls/server.key"));
        assert!(conf.contains("tlsprotocols = 1.2"));
        assert!(with.init_script.unwrap().contains("cp "));
    }
}
