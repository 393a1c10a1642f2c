//! The pod template of the database workload: image, auth Secret as environment, port, probes,
//! the data volume, the TLS volumes and settings, merged with the user's `spec.podTemplate`.
use std::collections::BTreeMap;

use dbtls_contract::DbKind;
use dbtls_contract::api::StorageType;
use dbtls_contract::{labels, names};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, PodSpec,
    PodTemplateSpec, Probe, SecretKeySelector, SecretVolumeSource, TCPSocketAction, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::auth::{PASSWORD_KEY, USERNAME_KEY};
use super::exporter::Exporter;
use super::server_tls::{CONFIG_DIR, CONFIG_VOLUME, ServerTls};
use super::user_template::{self, UserTemplate};
use crate::facts::DbFacts;

/// Name of the data volume (and of the PVC template).
pub const DATA_VOLUME: &str = "data";
/// The key of Singlestore's license Secret.
pub const LICENSE_KEY: &str = "license";
const INIT_CONTAINER: &str = "init-tls";

/// Where each server keeps its data.
pub fn data_dir(kind: DbKind) -> &'static str {
    match kind {
        DbKind::MySQL | DbKind::PerconaXtraDB => "/var/lib/mysql",
        DbKind::ProxySQL => "/var/lib/proxysql",
        DbKind::Singlestore => "/data",
        DbKind::MSSQLServer => "/var/opt/mssql",
    }
}

/// The environment variables through which each image takes the admin credentials.
pub(crate) fn credential_env(kind: DbKind) -> (Option<&'static str>, &'static str) {
    match kind {
        DbKind::MySQL | DbKind::PerconaXtraDB => (None, "MYSQL_ROOT_PASSWORD"),
        DbKind::ProxySQL => (Some("PROXYSQL_USER"), "PROXYSQL_PASSWORD"),
        DbKind::Singlestore => (None, "ROOT_PASSWORD"),
        DbKind::MSSQLServer => (None, "MSSQL_SA_PASSWORD"),
    }
}

/// Whether the data directory is a PVC from `volumeClaimTemplates` (else an emptyDir).
pub fn durable(db: &DbFacts<'_>) -> bool {
    db.kind != DbKind::ProxySQL && db.common.storage_type != Some(StorageType::Ephemeral)
}

/// A named TCP port of a container.
pub(crate) fn tcp_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

pub(crate) fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// Ours first; a user variable of the same name replaces ours (the user knows their image).
fn merge_env(ours: Vec<EnvVar>, user: &[EnvVar]) -> Vec<EnvVar> {
    let mut merged: Vec<EnvVar> = ours
        .into_iter()
        .filter(|e| !user.iter().any(|u| u.name == e.name))
        .collect();
    merged.extend(user.iter().cloned());
    merged
}

/// Inputs of [`pod_template`] that come from outside the spec.
#[derive(Clone, Debug)]
pub struct PodInputs<'a> {
    /// The catalogue image for `spec.version`.
    pub image: String,
    pub auth_secret: String,
    pub tls: Option<&'a ServerTls>,
    /// Arguments and environment that make the pods one cluster (after TLS's, before the user's).
    pub cluster_args: Vec<String>,
    pub cluster_env: Vec<EnvVar>,
    /// The metrics exporter `spec.monitor` asks for.
    pub exporter: Option<&'a Exporter>,
}

fn tcp_probe(port: &str, initial_delay: i32, failure_threshold: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(port.to_string()),
            host: None,
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// The env of the database container: credentials from the auth Secret, the license.
fn base_env(db: &DbFacts<'_>, auth_secret: &str) -> Vec<EnvVar> {
    let mut env = Vec::new();
    let (user_var, password_var) = credential_env(db.kind);
    if let Some(user_var) = user_var {
        env.push(secret_env(user_var, auth_secret, USERNAME_KEY));
    }
    env.push(secret_env(password_var, auth_secret, PASSWORD_KEY));
    if let Some(license) = db.extras.license_secret {
        env.push(secret_env("SINGLESTORE_LICENSE", license, LICENSE_KEY));
    }
    env
}

/// What TLS adds to the pod: volumes, mounts, env and args of the database container, and the
/// init container that writes generated config files (MSSQL's `mssql.conf`).
#[derive(Default)]
struct TlsParts {
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
    env: Vec<EnvVar>,
    args: Vec<String>,
    init_containers: Vec<Container>,
}

fn tls_parts(
    db: &DbFacts<'_>,
    tls: &ServerTls,
    image: &str,
    base_mounts: &[VolumeMount],
) -> TlsParts {
    let mut parts = TlsParts {
        volumes: tls.volumes.clone(),
        mounts: tls.mounts.clone(),
        env: tls.env.clone(),
        args: tls.args.clone(),
        init_containers: Vec::new(),
    };
    let mut init_mounts: Vec<VolumeMount> =
        base_mounts.iter().chain(&tls.mounts).cloned().collect();
    if !tls.config_files.is_empty() {
        // Only the server's files: the config Secret also holds the exporter's `exporter.cnf`,
        // whose `[client]` group every client in a server container mounting the whole Secret
        // as an option directory (PerconaXtraDB's `/etc/mysql/conf.d`) would read, its own
        // entrypoint's and state transfers' included.
        let items = tls
            .config_files
            .keys()
            .map(|file| KeyToPath {
                key: file.clone(),
                path: file.clone(),
                mode: None,
            })
            .collect();
        parts.volumes.push(Volume {
            name: CONFIG_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names::config_secret(&db.name)),
                items: Some(items),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        let config_mount = |path: &str| VolumeMount {
            name: CONFIG_VOLUME.to_string(),
            mount_path: path.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        };
        init_mounts.push(config_mount(CONFIG_DIR));
        if let Some(dir) = tls.config_dir {
            parts.mounts.push(config_mount(dir));
        }
    }
    if let Some(script) = &tls.init_script {
        parts.init_containers.push(Container {
            name: INIT_CONTAINER.to_string(),
            image: Some(image.to_string()),
            command: Some(vec!["sh".to_string(), "-c".to_string(), script.clone()]),
            volume_mounts: Some(init_mounts),
            ..Container::default()
        });
    }
    parts
}

/// The pod template of database `db`.
pub fn pod_template(db: &DbFacts<'_>, inputs: &PodInputs<'_>) -> PodTemplateSpec {
    let profile = db.kind.profile();
    let user: UserTemplate = user_template::parse(db.common.pod_template, profile.container);
    let image = user.image.clone().unwrap_or_else(|| inputs.image.clone());

    let mut volumes: Vec<Volume> = Vec::new();
    if !durable(db) {
        volumes.push(Volume {
            name: DATA_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
    let mut mounts = vec![VolumeMount {
        name: DATA_VOLUME.to_string(),
        mount_path: data_dir(db.kind).to_string(),
        ..VolumeMount::default()
    }];
    let tls = inputs
        .tls
        .map(|tls| tls_parts(db, tls, &image, &mounts))
        .unwrap_or_default();
    volumes.extend(tls.volumes);
    mounts.extend(tls.mounts);
    let (sidecar, builtin) = match inputs.exporter {
        Some(Exporter::Sidecar(s)) => (Some(s), None),
        Some(Exporter::Builtin(b)) => (None, Some(b)),
        None => (None, None),
    };
    volumes.extend(sidecar.map(|s| s.volume.clone()));
    if let Some((volume, mount)) = builtin.and_then(|b| b.config.clone()) {
        volumes.push(volume);
        mounts.push(mount);
    }
    let mut env = base_env(db, &inputs.auth_secret);
    env.extend(inputs.cluster_env.iter().cloned());
    env.extend(tls.env);
    let args: Vec<String> = tls
        .args
        .into_iter()
        .chain(inputs.cluster_args.iter().cloned())
        .chain(builtin.iter().flat_map(|b| b.args.iter().cloned()))
        .chain(user.args.iter().cloned())
        .collect();
    let mut ports = vec![tcp_port(profile.port_name, profile.port)];
    ports.extend(builtin.map(|b| b.port.clone()));

    let container = Container {
        name: profile.container.to_string(),
        image: Some(image),
        args: (!args.is_empty()).then_some(args),
        env: Some(merge_env(env, &user.env)),
        ports: Some(ports),
        readiness_probe: Some(tcp_probe(profile.port_name, 10, 3)),
        liveness_probe: Some(tcp_probe(profile.port_name, 60, 6)),
        resources: user.resources.clone(),
        volume_mounts: Some(mounts),
        // A crashing server's last log lines end up in its status, where WorkloadReady shows them.
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    };

    // The selector labels are ours; the user's cannot change them.
    let mut pod_labels: BTreeMap<String, String> = user.labels.clone();
    pod_labels.extend(labels::for_database(db.kind, &db.name));
    let init_containers = tls.init_containers;
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: (!user.annotations.is_empty()).then(|| user.annotations.clone()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: std::iter::once(container)
                .chain(sidecar.map(|s| s.container.clone()))
                .collect(),
            init_containers: (!init_containers.is_empty()).then_some(init_containers),
            volumes: (!volumes.is_empty()).then_some(volumes),
            node_selector: user.node_selector,
            tolerations: user.tolerations,
            affinity: user.affinity,
            service_account_name: user.service_account_name,
            security_context: user.security_context,
            image_pull_secrets: user.image_pull_secrets,
            dns_policy: user.dns_policy,
            dns_config: user.dns_config,
            ..PodSpec::default()
        }),
    }
}
