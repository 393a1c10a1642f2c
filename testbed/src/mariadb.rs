//! A throwaway local MariaDB server started with exactly the TLS configuration the provisioner
//! put in a pod: its projected volumes are written out as kubelet would, and its container
//! arguments are passed on with one explicit translation (container mount path → local
//! directory). Used by `testbed/tests/real_mariadb.rs` to prove that configuration works on a real
//! server, which no amount of comparing YAML can.
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret};
use tokio::process::{Child, Command};

/// How long a fresh server may take to accept connections (InnoDB start-up on a busy machine).
const START_DEADLINE: Duration = Duration::from_secs(90);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// kubelet's `defaultMode` for projected volumes when the pod sets none.
const KUBELET_DEFAULT_MODE: u32 = 0o644;

/// `name` on `PATH`, or in the `sbin` directories Debian puts `mariadbd` in (which are not on
/// an unprivileged user's `PATH`).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A directory removed on drop. Kept short: it holds the server's Unix socket, whose path is
/// limited to about 100 bytes.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("{prefix}-{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A container mount of a projected volume and the local directory holding its files.
#[derive(Clone, Debug)]
pub struct LocalMount {
    pub mount_path: String,
    pub dir: PathBuf,
}

/// The container's projected volumes written out under a local root.
#[derive(Clone, Debug, Default)]
pub struct Materialised {
    pub mounts: Vec<LocalMount>,
    /// `(Secret name, key)` → the local file that key was projected to.
    pub files: BTreeMap<(String, String), PathBuf>,
}

impl Materialised {
    /// The local file holding `key` of Secret `secret`, if the container mounts it.
    pub fn file(&self, secret: &str, key: &str) -> Option<&Path> {
        self.files
            .get(&(secret.to_string(), key.to_string()))
            .map(PathBuf::as_path)
    }
}

/// Writes every projected volume `container` mounts into `root/<volume>` as kubelet would:
/// each Secret source's `items` key → path (every key under its own name when `items` is
/// absent), with the item's mode or the volume's `defaultMode`. A missing Secret or key is an
/// error unless the source is `optional` (kubelet would not start the pod either).
pub fn materialise(
    pod: &PodSpec,
    container: &Container,
    secrets: &BTreeMap<String, Secret>,
    root: &Path,
) -> anyhow::Result<Materialised> {
    let mut out = Materialised::default();
    for mount in container.volume_mounts.iter().flatten() {
        // A mount without a pod volume is a `volumeClaimTemplates` claim (the data PVC).
        let Some(volume) = pod.volumes.iter().flatten().find(|v| v.name == mount.name) else {
            continue;
        };
        let Some(projected) = &volume.projected else {
            continue;
        };
        let dir = root.join(&volume.name);
        let default_mode = projected
            .default_mode
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(KUBELET_DEFAULT_MODE);
        for source in projected.sources.iter().flatten() {
            let Some(projection) = &source.secret else {
                continue;
            };
            let optional = projection.optional.unwrap_or(false);
            let Some(secret) = secrets.get(&projection.name) else {
                if optional {
                    continue;
                }
                bail!(
                    "volume {}: Secret {} not found",
                    volume.name,
                    projection.name
                );
            };
            let data = secret.data.clone().unwrap_or_default();
            let items: Vec<(String, String, Option<i32>)> = match &projection.items {
                Some(items) => items
                    .iter()
                    .map(|i| (i.key.clone(), i.path.clone(), i.mode))
                    .collect(),
                None => data.keys().map(|k| (k.clone(), k.clone(), None)).collect(),
            };
            for (key, path, mode) in items {
                let Some(bytes) = data.get(&key) else {
                    if optional {
                        continue;
                    }
                    bail!(
                        "volume {}: Secret {} has no key {key}",
                        volume.name,
                        projection.name
                    );
                };
                let file = dir.join(&path);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&file, &bytes.0)
                    .with_context(|| format!("writing {}", file.display()))?;
                let mode = mode
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(default_mode);
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))?;
                out.files
                    .insert((projection.name.clone(), key.clone()), file);
            }
        }
        out.mounts.push(LocalMount {
            mount_path: mount.mount_path.clone(),
            dir,
        });
    }
    Ok(out)
}

/// The one translation between the pod and this machine: a path at or under a container mount
/// path becomes the same relative path under that mount's local directory (the longest mount
/// path wins, as nested mounts do in a container). `None`: no projected volume provides it.
pub fn to_local_path(path: &str, mounts: &[LocalMount]) -> Option<PathBuf> {
    mounts
        .iter()
        .filter_map(|m| {
            let rest = path.strip_prefix(m.mount_path.trim_end_matches('/'))?;
            match rest {
                "" => Some((m, "")),
                _ => rest.strip_prefix('/').map(|r| (m, r)),
            }
        })
        .max_by_key(|(m, _)| m.mount_path.len())
        .map(|(m, rest)| {
            if rest.is_empty() {
                m.dir.clone()
            } else {
                m.dir.join(rest)
            }
        })
}

/// Server options the pod's environment decides (data directory, network, OS user, socket,
/// pid file): the local run owns these, so a container value is dropped, not translated.
const ENVIRONMENT_OPTIONS: &[&str] = &[
    "--datadir",
    "--socket",
    "--port",
    "--bind-address",
    "--user",
    "--pid-file",
    "--basedir",
];

/// The container's arguments for a local server: environment options dropped (see
/// [`ENVIRONMENT_OPTIONS`]), every absolute path value translated by [`to_local_path`]. A path
/// no projected volume provides is an error: in the pod it would name a missing file too.
pub fn local_args(args: &[String], mounts: &[LocalMount]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for arg in args {
        let (name, value) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
        // mysqld accepts `_` and `-` alike in option names.
        if ENVIRONMENT_OPTIONS.contains(&name.replace('_', "-").as_str()) {
            continue;
        }
        if value.starts_with('/') {
            let local = to_local_path(value, mounts).ok_or_else(|| {
                anyhow!(
                    "argument {arg}: {value} is not in any projected volume the container mounts"
                )
            })?;
            out.push(format!("{name}={}", local.display()));
        } else {
            out.push(arg.clone());
        }
    }
    Ok(out)
}

/// The database container of a pod spec (by name).
pub fn container<'a>(pod: &'a PodSpec, name: &str) -> anyhow::Result<&'a Container> {
    pod.containers
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| anyhow!("the pod has no container {name}"))
}

/// A running `mariadbd` on a loopback port with a fresh data directory; killed on drop.
#[derive(Debug)]
pub struct MariaDb {
    child: Child,
    port: u16,
    socket: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl MariaDb {
    /// Initialises a data directory (root without password, reachable over the socket) and
    /// starts `mariadbd` with the fixed local options plus `extra_args`, waiting until it
    /// accepts TCP connections.
    pub async fn start(mariadbd: &Path, extra_args: &[String]) -> anyhow::Result<Self> {
        let dir = TempDir::new("dbtls-mariadb")?;
        let datadir = dir.path().join("data");
        let install = find_program("mariadb-install-db")
            .ok_or_else(|| anyhow!("mariadb-install-db not found"))?;
        // Two bootstraps at once in one process failed now and then (the bootstrap server's
        // defaults collide): one at a time.
        static INSTALLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one_at_a_time = INSTALLING.lock().await;
        let output = Command::new(install)
            .arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", datadir.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .kill_on_drop(true)
            .output()
            .await
            .context("running mariadb-install-db")?;
        if !output.status.success() {
            bail!(
                "mariadb-install-db failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        drop(_one_at_a_time);
        let port = free_port()?;
        let socket = dir.path().join("mysqld.sock");
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(mariadbd)
            .arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", socket.display()))
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .context("starting mariadbd")?;
        let mut server = Self {
            child,
            port,
            socket,
            log,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("mariadbd exited with {status}:\n{}", self.log());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
                && self.socket.exists()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "mariadbd not ready after {START_DEADLINE:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's own output so far (its error log), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Client options to reach the server over its Unix socket (a secure transport to
    /// MariaDB, so allowed under `require_secure_transport`).
    pub fn socket_args(&self) -> Vec<String> {
        vec![
            "--protocol=SOCKET".to_string(),
            format!("--socket={}", self.socket.display()),
        ]
    }

    /// Client options to reach the server over TCP on loopback.
    pub fn tcp_args(&self) -> Vec<String> {
        vec![
            "--protocol=TCP".to_string(),
            "--host=127.0.0.1".to_string(),
            format!("--port={}", self.port),
        ]
    }

    /// Runs `sql` with the `mariadb` client and `args` (batch mode, no column names).
    pub async fn client(&self, args: &[String], sql: &str) -> anyhow::Result<Output> {
        let client = find_program("mariadb").ok_or_else(|| anyhow!("mariadb client not found"))?;
        Command::new(client)
            .arg("--no-defaults")
            .arg("--batch")
            .arg("--skip-column-names")
            .arg("--connect-timeout=10")
            .args(args)
            .arg("--execute")
            .arg(sql)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("running the mariadb client")
    }

    /// Like [`Self::client`], but a failure is an error carrying the client's stderr.
    pub async fn query(&self, args: &[String], sql: &str) -> anyhow::Result<String> {
        let output = self.client(args, sql).await?;
        if !output.status.success() {
            bail!(
                "{sql}: {}\nserver log:\n{}",
                String::from_utf8_lossy(&output.stderr),
                self.log()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// `openssl s_client -starttls mysql` against the server, verifying the chain against
    /// `ca` and the certificate against `hostname`, failing on any verification error.
    pub async fn s_client(&self, ca: &Path, hostname: &str) -> anyhow::Result<Output> {
        Command::new("openssl")
            .args(["s_client", "-starttls", "mysql", "-connect"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("-CAfile")
            .arg(ca)
            .args([
                "-verify_hostname",
                hostname,
                "-verify_return_error",
                "-showcerts",
            ])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("running openssl s_client")
    }
}

/// The DER of the first certificate in PEM text (text around the blocks is ignored).
pub fn first_certificate_der(text: &[u8]) -> anyhow::Result<Vec<u8>> {
    let text = String::from_utf8_lossy(text);
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or_else(|| anyhow!("no certificate in:\n{text}"))?;
    let end_marker = "-----END CERTIFICATE-----";
    let end = text[start..]
        .find(end_marker)
        .ok_or_else(|| anyhow!("unterminated certificate in:\n{text}"))?
        + start
        + end_marker.len();
    Ok(pem::parse(&text[start..end])?.into_contents())
}

/// A certificate's subject as MariaDB compares `REQUIRE SUBJECT` (OpenSSL's one-line form,
/// e.g. `/CN=exporter`).
pub async fn oneline_subject(cert: &Path) -> anyhow::Result<String> {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "compat", "-in"])
        .arg(cert)
        .output()
        .await
        .context("running openssl x509")?;
    if !output.status.success() {
        bail!("openssl x509: {}", String::from_utf8_lossy(&output.stderr));
    }
    let line = String::from_utf8_lossy(&output.stdout);
    line.trim()
        .strip_prefix("subject=")
        .map(str::to_string)
        .ok_or_else(|| anyhow!("unexpected openssl output {line}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn mounts() -> Vec<LocalMount> {
        vec![
            LocalMount {
                mount_path: "/etc/mysql/certs".into(),
                dir: PathBuf::from("/l/flat"),
            },
            LocalMount {
                mount_path: "/etc/mysql/certs/server".into(),
                dir: PathBuf::from("/l/server"),
            },
        ]
    }

    #[test]
    fn paths_map_by_longest_mount_at_a_path_boundary() {
        let m = mounts();
        assert_eq!(
            to_local_path("/etc/mysql/certs/server/tls.key", &m),
            Some(PathBuf::from("/l/server/tls.key"))
        );
        assert_eq!(
            to_local_path("/etc/mysql/certs/ca.crt", &m),
            Some(PathBuf::from("/l/flat/ca.crt"))
        );
        assert_eq!(
            to_local_path("/etc/mysql/certs", &m),
            Some(PathBuf::from("/l/flat"))
        );
        assert_eq!(to_local_path("/etc/mysql/certsX/a", &m), None);
        assert_eq!(to_local_path("/var/lib/mysql/x", &m), None);
    }

    #[test]
    fn args_translate_paths_drop_environment_options_and_reject_unmounted_paths() {
        let m = mounts();
        let args = [
            "--ssl-ca=/etc/mysql/certs/ca.crt".to_string(),
            "--require-secure-transport=ON".to_string(),
            "--datadir=/var/lib/mysql".to_string(),
            "--bind_address=0.0.0.0".to_string(),
        ];
        assert_eq!(
            local_args(&args, &m).unwrap(),
            ["--ssl-ca=/l/flat/ca.crt", "--require-secure-transport=ON"]
        );
        let err = local_args(&["--ssl-key=/etc/other/k".to_string()], &m).unwrap_err();
        assert!(err.to_string().contains("/etc/other/k"), "{err}");
    }
}
