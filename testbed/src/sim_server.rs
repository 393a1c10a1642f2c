//! What a simulated pod runs: a stand-in for a MySQL-protocol database server, so that what a
//! pod presents and how it takes a renewed certificate can be tested where no engine runs. Like
//! the real servers it reads its certificate and key once, at start, from the Secret its pod
//! mounts, and again only when told to over the admin protocol (`FLUSH SSL`,
//! `ALTER INSTANCE RELOAD TLS`, `SSL_RELOAD`, `PROXYSQL RELOAD TLS`). It speaks just enough of
//! the protocol for that: the greeting, TLS after an SSLRequest, a `mysql_native_password`
//! login checked against the pod's auth Secret, `COM_QUERY` for the reload statements and
//! `SELECT 1`, `COM_PING`, `COM_QUIT`. Unlike a real server it reads the Secret through the API
//! (kubelet's refresh of the files takes no time here).
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;
const CLIENT_CONNECT_ATTRS: u32 = 0x10_0000;
const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x20_0000;
const SERVER_CAPABILITIES: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_PROTOCOL_41
    | CLIENT_SSL
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_ATTRS
    | CLIENT_PLUGIN_AUTH_LENENC;
const NATIVE_PASSWORD: &str = "mysql_native_password";

/// ProxySQL's admin port.
pub const PROXYSQL_ADMIN_PORT: u16 = 6032;

/// What a simulated server is, read from its pod at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    pub namespace: String,
    pub ip: IpAddr,
    pub port: u16,
    /// A second, plaintext admin port (ProxySQL's).
    pub admin_port: Option<u16>,
    /// The Secret holding `tls.crt`/`tls.key` (the pod's server certificate).
    pub tls_secret: String,
    /// The Secret the server's CA file comes from (its `ca.crt`): client certificates are
    /// verified against it, as a real server with `ssl-ca` does.
    pub ca_secret: Option<String>,
    /// The auth Secret (`username`, `password`).
    pub auth_secret: String,
    pub require_secure_transport: bool,
    pub version: String,
}

impl ServerSpec {
    /// The server `pod` at `ip` runs, or None when its pod mounts no server certificate (no TLS:
    /// nothing to present) or its kind speaks no MySQL protocol (SQL Server).
    pub fn of(pod: &Pod, ip: IpAddr) -> Option<ServerSpec> {
        let spec = pod.spec.as_ref()?;
        let container = spec.containers.first()?;
        let port = u16::try_from(container.ports.as_ref()?.first()?.container_port).ok()?;
        if port == 1433 {
            return None;
        }
        let volumes = spec.volumes.as_deref().unwrap_or_default();
        let (tls_secret, ca_secret) = server_secrets(volumes)?;
        let auth_secret = container.env.iter().flatten().find_map(|e| {
            let key_ref = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
            (key_ref.key == "password").then(|| key_ref.name.clone())
        })?;
        let args = container.args.clone().unwrap_or_default();
        let image = container.image.clone().unwrap_or_default();
        Some(ServerSpec {
            namespace: pod.metadata.namespace.clone()?,
            ip,
            port,
            admin_port: (port == 6033).then_some(PROXYSQL_ADMIN_PORT),
            tls_secret,
            ca_secret,
            auth_secret,
            require_secure_transport: args.iter().any(|a| a == "--require-secure-transport=ON"),
            version: format!("{}-dbtls-sim", image.rsplit(':').next().unwrap_or("8.4.3")),
        })
    }
}

/// The Secret a pod mounts its server certificate from (a projection to `server.crt`, or the
/// `tls.crt` of the volume of the `server` alias, `tls-server`) and, in the same volume, the
/// Secret projected as its `ca.crt`.
fn server_secrets(
    volumes: &[k8s_openapi::api::core::v1::Volume],
) -> Option<(String, Option<String>)> {
    volumes.iter().find_map(|v| {
        let sources = v.projected.as_ref()?.sources.as_ref()?;
        let holding = |wanted: &dyn Fn(&k8s_openapi::api::core::v1::KeyToPath) -> bool| {
            sources
                .iter()
                .filter_map(|s| s.secret.as_ref())
                .find_map(|secret| {
                    let items = secret.items.as_deref().unwrap_or_default();
                    items.iter().any(wanted).then(|| secret.name.clone())
                })
        };
        let per_alias = v.name.ends_with("-server");
        let certificate =
            holding(&|i| i.path == "server.crt" || (per_alias && i.key == "tls.crt"))?;
        Some((certificate, holding(&|i| i.path == "ca.crt")))
    })
}

/// A running simulated server: dropped, it stops listening.
pub struct SimServer {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SimServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Shared {
    spec: ServerSpec,
    client: kube::Client,
    tls: RwLock<Arc<rustls::ServerConfig>>,
    /// The admin's user and password, fixed at start as a server's are once initialised.
    admin: (String, String),
}

/// Starts the server `spec` describes, with the certificate its Secret holds now.
pub async fn start(client: kube::Client, spec: ServerSpec) -> anyhow::Result<SimServer> {
    let config = load(&client, &spec).await?;
    let admin = credentials(&client, &spec).await?;
    let shared = Arc::new(Shared {
        tls: RwLock::new(Arc::new(config)),
        spec: spec.clone(),
        client,
        admin,
    });
    // Every port bound before any is served: an address taken (by another testbed process on
    // this machine) fails the whole start, leaving nothing listening.
    let mut listeners = Vec::new();
    for (port, admin) in
        std::iter::once((spec.port, false)).chain(spec.admin_port.map(|p| (p, true)))
    {
        listeners.push((
            TcpListener::bind(SocketAddr::new(spec.ip, port)).await?,
            admin,
        ));
    }
    let mut tasks = Vec::new();
    for (listener, admin) in listeners {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = session(&shared, stream, peer.ip(), admin).await;
                });
            }
        }));
    }
    Ok(SimServer { tasks })
}

/// The TLS configuration from the Secret's current certificate and key.
async fn load(client: &kube::Client, spec: &ServerSpec) -> anyhow::Result<rustls::ServerConfig> {
    let secret = Api::<Secret>::namespaced(client.clone(), &spec.namespace)
        .get(&spec.tls_secret)
        .await?;
    let data = secret.data.unwrap_or_default();
    let field = |key: &str| {
        data.get(key)
            .map(|v| v.0.clone())
            .ok_or_else(|| anyhow::anyhow!("Secret {} has no {key}", spec.tls_secret))
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&field("tls.crt")?).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(&field("tls.key")?)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let roots = match &spec.ca_secret {
        Some(name) => trusted_cas(client, &spec.namespace, name).await?,
        None => rustls::RootCertStore::empty(),
    };
    let config = if roots.is_empty() {
        builder.with_no_client_auth().with_single_cert(certs, key)?
    } else {
        // A client certificate is optional, but one from a CA the file does not hold is
        // refused in the handshake (as MySQL and MariaDB do with `ssl-ca`).
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()?;
        builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)?
    };
    Ok(config)
}

/// The CAs in Secret `name`'s `ca.crt`.
async fn trusted_cas(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<rustls::RootCertStore> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await?;
    let pem = secret
        .data
        .unwrap_or_default()
        .get("ca.crt")
        .map(|v| v.0.clone())
        .unwrap_or_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert?)?;
    }
    Ok(roots)
}

async fn credentials(client: &kube::Client, spec: &ServerSpec) -> anyhow::Result<(String, String)> {
    let secret = Api::<Secret>::namespaced(client.clone(), &spec.namespace)
        .get(&spec.auth_secret)
        .await?;
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
            .unwrap_or_default()
    };
    Ok((text("username"), text("password")))
}

/// One client connection.
async fn session(
    shared: &Shared,
    mut stream: TcpStream,
    peer: IpAddr,
    admin: bool,
) -> anyhow::Result<()> {
    let scramble: [u8; 20] = rand::random::<[u8; 20]>().map(|b| (b % 94) + 33);
    write_packet(
        &mut stream,
        0,
        &greeting(&shared.spec.version, &scramble, !admin),
    )
    .await?;
    let (seq, first) = read_packet(&mut stream).await?;
    let caps = first
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or_default();
    if !admin && caps & CLIENT_SSL != 0 && first.len() == 32 {
        let config = shared
            .tls
            .read()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .clone();
        let mut tls = tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await?;
        let (seq, response) = read_packet(&mut tls).await?;
        return serve(shared, &mut tls, seq, &response, &scramble, peer, true).await;
    }
    serve(shared, &mut stream, seq, &first, &scramble, peer, admin).await
}

#[allow(clippy::too_many_arguments)]
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    stream: &mut S,
    seq: u8,
    response: &[u8],
    scramble: &[u8; 20],
    peer: IpAddr,
    secure: bool,
) -> anyhow::Result<()> {
    let (user, token) = handshake_response(response).unwrap_or_default();
    if shared.spec.require_secure_transport && !secure {
        let message = "Connections using insecure transport are prohibited while --require_secure_transport=ON.";
        return write_packet(stream, seq + 1, &error(3159, "HY000", message)).await;
    }
    let (expected_user, password) = &shared.admin;
    if user != *expected_user || token != native_token(password, scramble) {
        let message = format!("Access denied for user '{user}'@'{peer}' (using password: YES)");
        return write_packet(stream, seq + 1, &error(1045, "28000", &message)).await;
    }
    write_packet(stream, seq + 1, &ok()).await?;
    loop {
        let Ok((_, command)) = read_packet(stream).await else {
            return Ok(());
        };
        match command.first() {
            Some(0x01) | None => return Ok(()),
            Some(0x0e) => write_packet(stream, 1, &ok()).await?,
            Some(0x03) => {
                let query = String::from_utf8_lossy(&command[1..]).trim().to_string();
                query_reply(shared, stream, &query).await?;
            }
            Some(other) => {
                let message = format!("command 0x{other:02x} is not supported by the stand-in");
                write_packet(stream, 1, &error(1047, "08S01", &message)).await?;
            }
        }
    }
}

const RELOADS: [&str; 4] = [
    "FLUSH SSL",
    "ALTER INSTANCE RELOAD TLS",
    "SSL_RELOAD",
    "PROXYSQL RELOAD TLS",
];

async fn query_reply<S: AsyncWrite + Unpin>(
    shared: &Shared,
    stream: &mut S,
    query: &str,
) -> anyhow::Result<()> {
    let upper = query.to_ascii_uppercase();
    if RELOADS.contains(&upper.as_str()) {
        return match load(&shared.client, &shared.spec).await {
            Ok(config) => {
                if let Ok(mut tls) = shared.tls.write() {
                    *tls = Arc::new(config);
                }
                write_packet(stream, 1, &ok()).await
            }
            Err(e) => {
                let message = format!("Failed to refresh SSL: {e}");
                write_packet(stream, 1, &error(1105, "HY000", &message)).await
            }
        };
    }
    if upper.starts_with("SET GLOBAL WSREP_PROVIDER_OPTIONS") {
        return write_packet(stream, 1, &ok()).await;
    }
    if upper == "SELECT 1" {
        return one_row(stream, "1", "1").await;
    }
    let message = format!("`{query}` is not supported by the stand-in");
    write_packet(stream, 1, &error(1064, "42000", &message)).await
}

/// A one-column, one-row text result set (with EOF packets: CLIENT_DEPRECATE_EOF is not offered).
async fn one_row<S: AsyncWrite + Unpin>(
    stream: &mut S,
    column: &str,
    value: &str,
) -> anyhow::Result<()> {
    write_packet(stream, 1, &[1]).await?;
    let mut definition = Vec::new();
    for text in ["def", "", "", "", column, ""] {
        lenenc_str(&mut definition, text);
    }
    definition.push(0x0c);
    definition.extend(33u16.to_le_bytes());
    definition.extend(1u32.to_le_bytes());
    definition.push(0x08);
    definition.extend(0u16.to_le_bytes());
    definition.push(0);
    definition.extend([0, 0]);
    write_packet(stream, 2, &definition).await?;
    write_packet(stream, 3, &eof()).await?;
    let mut row = Vec::new();
    lenenc_str(&mut row, value);
    write_packet(stream, 4, &row).await?;
    write_packet(stream, 5, &eof()).await
}

fn lenenc_str(out: &mut Vec<u8>, text: &str) {
    out.push(u8::try_from(text.len()).unwrap_or(250));
    out.extend(text.as_bytes());
}

fn greeting(version: &str, scramble: &[u8; 20], tls: bool) -> Vec<u8> {
    let caps = if tls {
        SERVER_CAPABILITIES
    } else {
        SERVER_CAPABILITIES & !CLIENT_SSL
    };
    let mut p = vec![10];
    p.extend(version.as_bytes());
    p.push(0);
    p.extend(1u32.to_le_bytes());
    p.extend(&scramble[..8]);
    p.push(0);
    p.extend(((caps & 0xffff) as u16).to_le_bytes());
    p.push(33);
    p.extend(2u16.to_le_bytes());
    p.extend(((caps >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend([0u8; 10]);
    p.extend(&scramble[8..]);
    p.push(0);
    p.extend(NATIVE_PASSWORD.as_bytes());
    p.push(0);
    p
}

/// `(user, auth response)` of a HandshakeResponse41.
fn handshake_response(payload: &[u8]) -> Option<(String, Vec<u8>)> {
    let caps = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?);
    let rest = payload.get(32..)?;
    let end = rest.iter().position(|b| *b == 0)?;
    let user = String::from_utf8_lossy(&rest[..end]).into_owned();
    let rest = &rest[end + 1..];
    let (len, at) = if caps & CLIENT_PLUGIN_AUTH_LENENC != 0 || caps & CLIENT_SECURE_CONNECTION != 0
    {
        (usize::from(*rest.first()?), 1)
    } else {
        (rest.iter().position(|b| *b == 0)?, 0)
    };
    Some((user, rest.get(at..at + len)?.to_vec()))
}

/// `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`; empty for an empty password.
fn native_token(password: &str, scramble: &[u8; 20]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password.as_bytes());
    let stage2 = Sha1::digest(stage1);
    let mut hasher = Sha1::new();
    hasher.update(scramble);
    hasher.update(stage2);
    let mix = hasher.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

fn ok() -> Vec<u8> {
    vec![0, 0, 0, 2, 0, 0, 0]
}

fn eof() -> Vec<u8> {
    vec![0xfe, 0, 0, 2, 0]
}

fn error(code: u16, state: &str, message: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend(code.to_le_bytes());
    p.push(b'#');
    p.extend(state.as_bytes());
    p.extend(message.as_bytes());
    p
}

async fn write_packet<S: AsyncWrite + Unpin>(
    stream: &mut S,
    seq: u8,
    payload: &[u8],
) -> anyhow::Result<()> {
    let len = u32::try_from(payload.len())?.to_le_bytes();
    let mut packet = vec![len[0], len[1], len[2], seq];
    packet.extend(payload);
    stream.write_all(&packet).await?;
    stream.flush().await?;
    Ok(())
}

async fn read_packet<S: AsyncRead + Unpin>(stream: &mut S) -> anyhow::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok((header[3], payload))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_native_password_token_is_the_one_mysql_documents() {
        // Both sides compute it the same way; a wrong password gives another token.
        let scramble = [7u8; 20];
        let token = native_token("secret", &scramble);
        assert_eq!(token.len(), 20);
        assert_ne!(token, native_token("other", &scramble));
        assert!(native_token("", &scramble).is_empty());
    }

    #[test]
    fn a_handshake_response_gives_user_and_token() {
        let mut p = Vec::new();
        p.extend(
            (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH).to_le_bytes(),
        );
        p.extend([0u8; 28]);
        p.extend(b"root\0");
        p.push(3);
        p.extend([1, 2, 3]);
        p.extend(b"mysql_native_password\0");
        assert_eq!(
            handshake_response(&p),
            Some(("root".to_string(), vec![1, 2, 3]))
        );
    }

    #[test]
    fn the_server_secret_is_found_in_either_layout() {
        let flat: Vec<k8s_openapi::api::core::v1::Volume> = serde_json::from_value(serde_json::json!([
            {"name": "tls-volume", "projected": {"sources": [
                {"secret": {"name": "db-server-cert", "items": [{"key": "tls.crt", "path": "server.crt"}]}},
                {"secret": {"name": "db-client-cert", "items": [{"key": "tls.crt", "path": "client.crt"}]}}]}}
        ]))
        .unwrap();
        assert_eq!(
            server_secrets(&flat),
            Some(("db-server-cert".to_string(), None))
        );
        let per_alias: Vec<k8s_openapi::api::core::v1::Volume> =
            serde_json::from_value(serde_json::json!([
                {"name": "tls-client", "projected": {"sources": [
                    {"secret": {"name": "c", "items": [{"key": "tls.crt", "path": "tls.crt"}]}}]}},
                {"name": "tls-server", "projected": {"sources": [
                    {"secret": {"name": "b", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"secret": {"name": "s", "items": [{"key": "tls.crt", "path": "tls.crt"}]}}]}}
            ]))
            .unwrap();
        assert_eq!(
            server_secrets(&per_alias),
            Some(("s".to_string(), Some("b".to_string())))
        );
        assert_eq!(server_secrets(&[]), None);
    }
}
