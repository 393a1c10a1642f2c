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

/// The sum of the samples of `metric` (Prometheus text format) whose labels include every
/// `(name, value)` of `labels`.
pub fn sum_series(body: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_only_the_matching_series() {
        let body = "# HELP x\ndbtls_reconciles_total{kind=\"MySQL\",result=\"ok\"} 3\ndbtls_reconciles_total{kind=\"MySQL\",result=\"error\"} 2\ndbtls_reconciles_total_other{result=\"ok\"} 9\ndbtls_reconciles_total{kind=\"ProxySQL\",result=\"ok\"} 4\n";
        assert_eq!(
            sum_series(body, "dbtls_reconciles_total", &[("result", "ok")]),
            7.0
        );
        assert_eq!(sum_series(body, "dbtls_reconciles_total", &[]), 9.0);
    }
}
