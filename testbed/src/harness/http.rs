//! A plain HTTP/1.0 GET for the operators' `/metrics`, `/healthz` and `/readyz`: enough for a
//! local server that closes the connection after answering, without another HTTP client crate.
use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `(status code, body)` of `GET <path>` on `base` (`http://host:port`).
pub async fn get(base: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let addr = base.strip_prefix("http://").unwrap_or(base);
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8(raw).context("a response that is not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no end of headers in {text:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("no status in {head:?}"))?
        .parse()
        .with_context(|| format!("a status that is not a number in {head:?}"))?;
    Ok((code, body.to_string()))
}
