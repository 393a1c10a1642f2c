//! Flags every operator takes, with the same names and environment variables.
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(clap::Args, Clone, Debug)]
pub struct CommonArgs {
    /// Kubeconfig file; without it the in-cluster config (or $KUBECONFIG, ~/.kube/config) is used.
    #[arg(long, env = "DBTLS_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespaces to watch (repeat or comma-separate); all namespaces when empty.
    #[arg(long = "namespace", env = "DBTLS_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "DBTLS_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "DBTLS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax); RUST_LOG works too.
    #[arg(long, env = "DBTLS_LOG", default_value = "info")]
    pub log: String,
    /// How many databases of one kind are reconciled at once.
    #[arg(long, env = "DBTLS_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Requests to the API server in flight at once, watches apart: each is an HTTP/1.1
    /// connection of its own, so this bounds the connections the operator opens and the load
    /// it puts on the API server when the reconciles of every kind run at once.
    #[arg(long, env = "DBTLS_MAX_REQUESTS_IN_FLIGHT", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_requests_in_flight: u16,
    /// How long the progress of a wait for issuance (its message moving as Certificates are
    /// issued) waits after the previous status write before it is written; each further one
    /// in a row waits twice as long, up to ten times this. Transitions are written at once.
    #[arg(long, env = "DBTLS_PROGRESS_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub progress_interval: std::time::Duration,
}

/// A Go-style duration flag (`90s`, `1m30s`), as Kubernetes and cert-manager write them.
pub fn parse_duration(value: &str) -> Result<std::time::Duration, String> {
    dbtls_contract::duration::parse_go_duration(value).map_err(|e| e.to_string())
}
