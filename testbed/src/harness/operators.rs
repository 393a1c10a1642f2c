//! Building and running the operator binaries as child processes, with their output captured so
//! that a failing test can show it.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The workspace root (the testbed crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The profile directory of the running test executable (`target/debug`), where
/// `cargo build` puts the operator binaries.
fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test>-<hash>
    let deps = exe.parent().context("test executable has no directory")?;
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().context("deps has no parent")?
    } else {
        deps
    };
    Ok(dir.to_path_buf())
}

static BUILT: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);

/// Runs `cargo build -p provisioner -p ops-manager` once per test process and returns the
/// directory holding the binaries.
pub async fn build_once() -> anyhow::Result<PathBuf> {
    let result = tokio::task::spawn_blocking(|| {
        let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
        if built.is_none() {
            *built = Some(build().map_err(|e| format!("{e:#}")));
        }
        built.clone().unwrap_or_else(|| Err("build not run".into()))
    })
    .await?;
    result.map_err(|e| anyhow::anyhow!("building the operators: {e}"))
}

fn build() -> anyhow::Result<PathBuf> {
    let dir = profile_dir()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-p", "provisioner", "-p", "ops-manager"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let output = cmd.output().context("running cargo build")?;
    anyhow::ensure!(
        output.status.success(),
        "cargo build failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(dir)
}

/// One operator child process; restartable.
pub struct Operator {
    pub name: String,
    binary: PathBuf,
    args: Vec<String>,
    child: tokio::sync::Mutex<Option<Child>>,
    log: Arc<Mutex<String>>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (kept across restarts).
    metrics_addr: Option<SocketAddr>,
}

/// A port on 127.0.0.1 that was free a moment ago: the operator binds it itself, so the test
/// knows the address without parsing logs (a race with another process grabbing it in between
/// is possible but harmless: the operator then fails to start and the test says so).
fn free_local_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// The value of `--flag value` or `--flag=value` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let prefix = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(&prefix)
        }
    })
}

impl Operator {
    /// Starts `<bin_dir>/<name> --kubeconfig <kubeconfig> --metrics-addr 127.0.0.1:<free port>
    /// --log-format text <extra>`.
    pub async fn start(
        name: &str,
        bin_dir: &Path,
        kubeconfig: &Path,
        extra: &[String],
    ) -> anyhow::Result<Operator> {
        let mut args = vec!["--kubeconfig".to_string(), kubeconfig.display().to_string()];
        let metrics_addr = match flag_value(extra, "--metrics-addr") {
            Some(given) => given.parse().ok(),
            None => Some(free_local_addr()?),
        };
        let default_metrics = metrics_addr.map(|a| a.to_string()).unwrap_or_default();
        // Defaults the caller may override (clap refuses a flag given twice).
        for (flag, value) in [
            ("--metrics-addr", default_metrics.as_str()),
            ("--log-format", "text"),
        ] {
            if !extra
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
            {
                args.extend([flag.to_string(), value.to_string()]);
            }
        }
        args.extend(extra.iter().cloned());
        let operator = Operator {
            name: name.to_string(),
            binary: bin_dir.join(name),
            args,
            child: tokio::sync::Mutex::new(None),
            log: Arc::default(),
            metrics_addr,
        };
        operator.spawn().await?;
        Ok(operator)
    }

    async fn spawn(&self) -> anyhow::Result<()> {
        let mut child = Command::new(&self.binary)
            .args(&self.args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        if let Some(out) = child.stdout.take() {
            capture(out, self.log.clone());
        }
        if let Some(err) = child.stderr.take() {
            capture(err, self.log.clone());
        }
        *self.child.lock().await = Some(child);
        Ok(())
    }

    /// SIGKILL and reap.
    pub async fn kill(&self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.lock().await.take() {
            child.kill().await?;
        }
        self.note(&format!("--- {} killed by the test ---", self.name));
        Ok(())
    }

    /// SIGKILL without waiting, for `Drop` (the child is reaped by kill_on_drop's machinery).
    pub fn kill_now(&self) {
        if let Ok(mut child) = self.child.try_lock()
            && let Some(child) = child.as_mut()
        {
            let _ = child.start_kill();
        }
    }

    /// Kill (if running) and start again with the same arguments.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.kill().await?;
        self.note(&format!("--- {} restarted by the test ---", self.name));
        self.spawn().await
    }

    /// The address of the operator's HTTP server (None when the caller passed an address that
    /// is not a plain socket address).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The process id of the running child (None when killed), for `/proc` accounting.
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.as_ref().and_then(Child::id)
    }

    pub fn logs(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn note(&self, line: &str) {
        if let Ok(mut log) = self.log.lock() {
            log.push_str(line);
            log.push('\n');
        }
    }
}

fn capture(stream: impl AsyncRead + Unpin + Send + 'static, log: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut log) = log.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
}
