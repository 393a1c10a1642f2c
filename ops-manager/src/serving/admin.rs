//! The admin connection to one pod: the database's admin credentials (from its auth Secret),
//! over TLS with the client certificate when the server has TLS, and the engine's reload
//! statements. The server is verified against the CA of the database's server Secret, for the
//! pod's DNS name (`<pod>.<db>-pods.<ns>.svc`, which its certificate carries) while the
//! connection goes to the pod's IP.
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, OptsBuilder, SslOpts};

/// Bounds one admin connection, from connect to the last statement.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Who connects, and how.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    /// TLS: the CA to verify the server with and the client certificate (PEM); None: plaintext
    /// (ProxySQL's admin interface).
    pub tls: Option<AdminTls>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct AdminTls {
    /// The CAs a server's certificate may chain to: the server Secret's, and during an issuer
    /// change the previous one (a pod not reloaded yet presents a certificate from it).
    pub ca_pems: Vec<Vec<u8>>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// Why a reload did not happen. Only [`AdminError::Refused`] says anything about the server's
/// certificate; the others are about reaching the server.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AdminError {
    #[error("cannot connect to {addr}: {why}")]
    Connect { addr: String, why: String },
    #[error("{addr} refused the admin login of {user}: {why}")]
    Login {
        addr: String,
        user: String,
        why: String,
    },
    #[error("{addr} did not answer within {0:?}", ADMIN_TIMEOUT)]
    Timeout { addr: String },
    #[error("{addr} refused `{statement}`: {why}")]
    Refused {
        addr: String,
        statement: String,
        why: String,
    },
}

/// Access denied, or a login the server refuses because of how it was made (no TLS).
const LOGIN_ERRORS: [u16; 3] = [1045, 1251, 3159];

/// Where an admin connection goes: the pod's address and the name its certificate is checked for.
#[derive(Clone, Debug)]
pub struct Server<'a> {
    pub ip: &'a str,
    pub port: u16,
    pub name: &'a str,
}

/// Runs `statements` on `server` as the admin.
pub async fn run(
    server: &Server<'_>,
    credentials: &Credentials,
    statements: &[&str],
) -> Result<(), AdminError> {
    let addr = format!("{}:{}", server.ip, server.port);
    tokio::time::timeout(ADMIN_TIMEOUT, session(server, credentials, statements))
        .await
        .map_err(|_| AdminError::Timeout { addr: addr.clone() })?
}

async fn session(
    server: &Server<'_>,
    credentials: &Credentials,
    statements: &[&str],
) -> Result<(), AdminError> {
    let (ip, port) = (server.ip, server.port);
    let addr = format!("{ip}:{port}");
    let ssl = credentials.tls.as_ref().map(|tls| {
        SslOpts::default()
            .with_root_certs(tls.ca_pems.iter().map(|ca| ca.clone().into()).collect())
            .with_disable_built_in_roots(true)
            .with_client_identity((!tls.cert_pem.is_empty()).then(|| {
                ClientIdentity::new(tls.cert_pem.clone().into(), tls.key_pem.clone().into())
            }))
            .with_danger_tls_hostname_override(Some(server.name.to_string()))
    });
    // Known settings, so that the connection sends no query of its own.
    let opts = OptsBuilder::default()
        .ip_or_hostname(ip)
        .tcp_port(port)
        .user(Some(credentials.user.clone()))
        .pass(Some(credentials.password.clone()))
        .prefer_socket(false)
        .max_allowed_packet(Some(16 * 1024 * 1024))
        .wait_timeout(Some(60))
        .stmt_cache_size(0)
        .ssl_opts(ssl);
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .map_err(|e| connect_error(&addr, &credentials.user, e))?;
    let mut result = Ok(());
    for statement in statements {
        if let Err(e) = conn.query_drop(*statement).await {
            result = Err(AdminError::Refused {
                addr: addr.clone(),
                statement: (*statement).to_string(),
                why: error_text(&e),
            });
            break;
        }
    }
    // The server closes its side anyway; a failed goodbye changes nothing.
    let _ = conn.disconnect().await;
    result
}

fn connect_error(addr: &str, user: &str, error: mysql_async::Error) -> AdminError {
    match &error {
        mysql_async::Error::Server(e) if LOGIN_ERRORS.contains(&e.code) => AdminError::Login {
            addr: addr.to_string(),
            user: user.to_string(),
            why: error_text(&error),
        },
        _ => AdminError::Connect {
            addr: addr.to_string(),
            why: error_text(&error),
        },
    }
}

fn error_text(error: &mysql_async::Error) -> String {
    match error {
        mysql_async::Error::Server(e) => format!("ERROR {} ({}): {}", e.code, e.state, e.message),
        other => other.to_string(),
    }
}
