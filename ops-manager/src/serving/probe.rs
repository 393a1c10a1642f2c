//! What a running server presents: a TLS handshake to a pod's address the way its clients make
//! it, and the certificate chain it sends. For the MySQL protocol (MySQL, PerconaXtraDB,
//! ProxySQL's frontend, SingleStore): read the server's greeting, answer with an SSLRequest,
//! then TLS on the same connection. The chain is recorded, not judged here: the caller compares
//! it with the Secret and verifies it against the CA it trusts.
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `CLIENT_SSL` in the capability flags: the server can switch to TLS.
const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
/// utf8mb4_general_ci.
const CHARSET: u8 = 45;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} did not answer within {0:?}", .timeout)]
    Timeout { addr: String, timeout: Duration },
    #[error("reading the greeting of {addr}: {source}")]
    Greeting {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} is not a MySQL-protocol server: {why}")]
    NotMysql { addr: String, why: String },
    #[error("{addr} does not offer TLS (CLIENT_SSL not set): the server runs without TLS")]
    NoTls { addr: String },
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} sent no certificate")]
    NoCertificate { addr: String },
    #[error("client certificate: {0}")]
    ClientIdentity(String),
}

/// A client certificate and key (PEM) to present, for servers that require one.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// Records the server's chain and accepts it: verification against a CA is the caller's.
#[derive(Debug)]
struct Record(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Record {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config(identity: Option<&ClientIdentity>) -> Result<rustls::ClientConfig, ProbeError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::ClientIdentity(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Record(provider)));
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some(id) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&id.cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| ProbeError::ClientIdentity(e.to_string()))?;
            let key = PrivateKeyDer::from_pem_slice(&id.key_pem)
                .map_err(|e| ProbeError::ClientIdentity(e.to_string()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| ProbeError::ClientIdentity(e.to_string()))
        }
    }
}

/// The capability flags of a MySQL protocol-10 greeting (`payload` without the packet header).
pub fn greeting_capabilities(payload: &[u8]) -> Result<u32, String> {
    match payload.first() {
        Some(10) => {}
        Some(0xff) => {
            let message = String::from_utf8_lossy(payload.get(3..).unwrap_or_default());
            return Err(format!("the server refused the connection: {message}"));
        }
        other => return Err(format!("unexpected protocol version {other:?}")),
    }
    let version_end = payload[1..]
        .iter()
        .position(|b| *b == 0)
        .ok_or("no server version")?
        + 1;
    // version\0, connection id (4), auth data part 1 (8), filler (1), capabilities low (2).
    let low_at = version_end + 1 + 4 + 8 + 1;
    let low = payload
        .get(low_at..low_at + 2)
        .ok_or("greeting too short")?;
    // charset (1), status (2), capabilities high (2).
    let high_at = low_at + 2 + 1 + 2;
    let high = payload.get(high_at..high_at + 2).unwrap_or(&[0, 0]);
    Ok(u32::from(u16::from_le_bytes([low[0], low[1]]))
        | (u32::from(u16::from_le_bytes([high[0], high[1]])) << 16))
}

/// The SSLRequest packet (header with sequence 1, and the 32-byte payload).
pub fn ssl_request() -> Vec<u8> {
    let flags = CLIENT_SSL | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_LONG_PASSWORD;
    let mut packet = vec![32, 0, 0, 1];
    packet.extend(flags.to_le_bytes());
    packet.extend((16u32 * 1024 * 1024).to_le_bytes());
    packet.push(CHARSET);
    packet.extend([0u8; 23]);
    packet
}

/// What a MySQL-protocol server presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presented {
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// The version string of its greeting (`8.4.3`, `10.11.18-MariaDB-0+deb12u1`).
    pub server_version: String,
}

/// The certificate chain (DER, leaf first) the MySQL-protocol server at `addr` presents.
pub async fn mysql_served_chain(
    addr: &str,
    identity: Option<&ClientIdentity>,
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, ProbeError> {
    Ok(mysql_presented(addr, identity, timeout).await?.chain)
}

/// What the MySQL-protocol server at `addr` presents: its chain and its version.
pub async fn mysql_presented(
    addr: &str,
    identity: Option<&ClientIdentity>,
    timeout: Duration,
) -> Result<Presented, ProbeError> {
    tokio::time::timeout(timeout, probe(addr, identity))
        .await
        .map_err(|_| ProbeError::Timeout {
            addr: addr.to_string(),
            timeout,
        })?
}

/// The certificate chain (DER, leaf first) a server that speaks TLS from the first byte presents
/// at `addr` (Galera's replication port, ProxySQL's admin interface).
pub async fn tls_served_chain(
    addr: &str,
    identity: Option<&ClientIdentity>,
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, ProbeError> {
    let handshake = async {
        let stream = connect(addr).await?;
        handshake(addr, stream, identity).await
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| ProbeError::Timeout {
            addr: addr.to_string(),
            timeout,
        })?
}

async fn connect(addr: &str) -> Result<TcpStream, ProbeError> {
    TcpStream::connect(addr)
        .await
        .map_err(|source| ProbeError::Connect {
            addr: addr.to_string(),
            source,
        })
}

async fn probe(addr: &str, identity: Option<&ClientIdentity>) -> Result<Presented, ProbeError> {
    let (stream, payload) = mysql_greeted(addr).await?;
    Ok(Presented {
        chain: handshake(addr, stream, identity).await?,
        server_version: greeting_version(&payload).unwrap_or_default(),
    })
}

/// A connection to the MySQL-protocol server at `addr` that has read its greeting (returned)
/// and asked for TLS.
async fn mysql_greeted(addr: &str) -> Result<(TcpStream, Vec<u8>), ProbeError> {
    let owned = addr.to_string();
    let mut stream = connect(addr).await?;
    let greeting_error = |source| ProbeError::Greeting {
        addr: owned.clone(),
        source,
    };
    let mut header = [0u8; 4];
    stream
        .read_exact(&mut header)
        .await
        .map_err(greeting_error)?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let mut payload = vec![0u8; len];
    stream
        .read_exact(&mut payload)
        .await
        .map_err(greeting_error)?;
    let capabilities = greeting_capabilities(&payload).map_err(|why| ProbeError::NotMysql {
        addr: owned.clone(),
        why,
    })?;
    if capabilities & CLIENT_SSL == 0 {
        return Err(ProbeError::NoTls { addr: owned });
    }
    stream
        .write_all(&ssl_request())
        .await
        .map_err(greeting_error)?;
    Ok((stream, payload))
}

/// The server version string of a protocol-10 greeting.
pub fn greeting_version(payload: &[u8]) -> Option<String> {
    let rest = payload.get(1..)?;
    let end = rest.iter().position(|b| *b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Whether the MySQL-protocol server at `addr` accepts `identity` as a client certificate (it
/// trusts the CA that issued it). With TLS 1.3 a client's handshake completes before the server
/// has judged the client's certificate, so the handshake alone says nothing: a login packet
/// (for a user that does not exist) follows, and the server answers it in the MySQL protocol
/// (an error packet: the certificate was accepted) or with a TLS alert (it was not). Err: the
/// server could not be asked (unreachable, not a MySQL-protocol server, no TLS).
pub async fn mysql_accepts_client(
    addr: &str,
    identity: &ClientIdentity,
    timeout: Duration,
) -> Result<bool, ProbeError> {
    let ask = async {
        let (stream, _) = mysql_greeted(addr).await?;
        // With TLS 1.2 the server judges the client's certificate within the handshake.
        let mut tls = match handshake_stream(addr, stream, Some(identity)).await {
            Ok((tls, _)) => tls,
            Err(ProbeError::Handshake { .. }) => return Ok(false),
            Err(other) => return Err(other),
        };
        if tls.write_all(&probe_login()).await.is_err() || tls.flush().await.is_err() {
            return Ok(false);
        }
        let mut header = [0u8; 4];
        Ok(tls.read_exact(&mut header).await.is_ok())
    };
    tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| ProbeError::Timeout {
            addr: addr.to_string(),
            timeout,
        })?
}

/// A HandshakeResponse41 (sequence 2, after the SSLRequest) for the user `dbtls-ca-probe` with
/// no password: no server has that user, and it is answered with an error packet.
fn probe_login() -> Vec<u8> {
    let flags = CLIENT_SSL | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_LONG_PASSWORD;
    let mut payload = Vec::new();
    payload.extend(flags.to_le_bytes());
    payload.extend((16u32 * 1024 * 1024).to_le_bytes());
    payload.push(CHARSET);
    payload.extend([0u8; 23]);
    payload.extend(b"dbtls-ca-probe\0");
    payload.push(0);
    let len = u32::try_from(payload.len())
        .unwrap_or_default()
        .to_le_bytes();
    let mut packet = vec![len[0], len[1], len[2], 2];
    packet.extend(payload);
    packet
}

/// TLS on `stream`; the chain the server sent.
async fn handshake(
    addr: &str,
    stream: TcpStream,
    identity: Option<&ClientIdentity>,
) -> Result<Vec<Vec<u8>>, ProbeError> {
    Ok(handshake_stream(addr, stream, identity).await?.1)
}

/// TLS on `stream`: the connection and the chain the server sent.
async fn handshake_stream(
    addr: &str,
    stream: TcpStream,
    identity: Option<&ClientIdentity>,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Vec<Vec<u8>>), ProbeError> {
    let owned = addr.to_string();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(identity)?));
    // The name is not checked (the verifier records the chain); any valid name will do.
    let name = ServerName::try_from("database-server").map_err(|e| ProbeError::NotMysql {
        addr: owned.clone(),
        why: e.to_string(),
    })?;
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|source| ProbeError::Handshake {
            addr: owned.clone(),
            source,
        })?;
    let chain: Vec<Vec<u8>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.to_vec())
        .collect();
    if chain.is_empty() {
        return Err(ProbeError::NoCertificate { addr: owned });
    }
    Ok((tls, chain))
}

/// The serial number of a DER certificate, as cert-manager and openssl print it (upper-case hex).
pub fn serial_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.raw_serial_as_string().replace(':', "").to_uppercase())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn greeting(low: u16, high: u16) -> Vec<u8> {
        let mut p = vec![10];
        p.extend(b"10.11.19-MariaDB\0");
        p.extend([1, 0, 0, 0]);
        p.extend([b'a'; 8]);
        p.push(0);
        p.extend(low.to_le_bytes());
        p.push(45);
        p.extend([2, 0]);
        p.extend(high.to_le_bytes());
        p
    }

    #[test]
    fn the_greeting_names_the_server_version() {
        assert_eq!(
            greeting_version(&greeting(0, 0)).as_deref(),
            Some("10.11.19-MariaDB")
        );
        assert_eq!(greeting_version(&[10, b'8']), None);
    }

    #[test]
    fn capabilities_are_read_from_both_halves_of_the_greeting() {
        let caps = greeting_capabilities(&greeting(0xfffe, 0x81bf)).unwrap();
        assert_eq!(caps & CLIENT_SSL, CLIENT_SSL);
        assert_eq!(caps >> 16, 0x81bf);
        let no_ssl = greeting_capabilities(&greeting(0xfffe & !0x0800, 0)).unwrap();
        assert_eq!(no_ssl & CLIENT_SSL, 0);
    }

    #[test]
    fn an_error_packet_or_another_protocol_is_named() {
        let mut refused = vec![0xff, 0x6a, 0x04];
        refused.extend(b"Host is blocked");
        assert!(
            greeting_capabilities(&refused)
                .unwrap_err()
                .contains("Host is blocked")
        );
        assert!(greeting_capabilities(b"HTTP/1.1").is_err());
    }

    #[test]
    fn the_probe_login_is_a_whole_packet_with_sequence_two_for_a_user_nobody_has() {
        let packet = probe_login();
        let len = usize::from(packet[0]) | usize::from(packet[1]) << 8;
        assert_eq!(len, packet.len() - 4);
        assert_eq!(packet[3], 2, "after the SSLRequest (1)");
        let user_at = 4 + 4 + 4 + 1 + 23;
        assert_eq!(&packet[user_at..user_at + 15], b"dbtls-ca-probe\0");
        assert_eq!(packet.last(), Some(&0), "no password");
    }

    #[test]
    fn the_ssl_request_is_32_bytes_with_sequence_one() {
        let packet = ssl_request();
        assert_eq!(packet.len(), 36);
        assert_eq!(&packet[..4], &[32, 0, 0, 1]);
        let flags = u32::from_le_bytes([packet[4], packet[5], packet[6], packet[7]]);
        assert_eq!(flags & CLIENT_SSL, CLIENT_SSL);
    }
}
