//! The serving step's writes: a reload over the admin protocol (verified by probing again), and
//! an eviction through the Eviction API (which honours PodDisruptionBudgets).
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta, Preconditions};
use kube::api::{Api, PostParams};

use super::admin::{self, AdminError, AdminTls, Credentials};
use super::plan::ReloadFailure;
use super::probe;

/// Bounds one probe of a pod.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a pod presents on a MySQL-protocol port: its leaf serial, expiry and server version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub serial: String,
    pub expiry: Option<i64>,
    pub server_version: String,
}

pub async fn look(ip: &str, port: u16) -> Result<Seen, String> {
    let presented = probe::mysql_presented(&format!("{ip}:{port}"), None, PROBE_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = presented.chain.first().ok_or("no certificate")?;
    Ok(Seen {
        serial: probe::serial_of(leaf).ok_or("an unreadable certificate")?,
        expiry: super::observe::not_after(leaf),
        server_version: presented.server_version,
    })
}

/// Where the admin credentials come from.
pub struct CredentialSources<'a> {
    pub namespace: &'a str,
    pub auth_secret: &'a str,
    /// The client certificate's Secret and the CAs to verify the server with; None: plaintext.
    pub tls: Option<(&'a str, Vec<Vec<u8>>)>,
}

/// Reads the admin credentials; an error is said as a reload failure no restart can fix.
pub async fn credentials(
    client: &kube::Client,
    sources: &CredentialSources<'_>,
) -> Result<Credentials, ReloadFailure> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), sources.namespace);
    let read = |name: &str, key: &str, secret: &Secret| -> Result<Vec<u8>, ReloadFailure> {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.0.clone())
            .ok_or_else(|| ReloadFailure::Unreachable(format!("Secret {name} has no {key}")))
    };
    let get = |name: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get(&name)
                .await
                .map_err(|e| ReloadFailure::Unreachable(format!("reading Secret {name}: {e}")))
        }
    };
    let auth = get(sources.auth_secret.to_string()).await?;
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).trim().to_string();
    let user = text(read(sources.auth_secret, "username", &auth)?);
    let password = text(read(sources.auth_secret, "password", &auth)?);
    let tls = match &sources.tls {
        None => None,
        Some((client_secret, cas)) => {
            let secret = get(client_secret.to_string()).await?;
            Some(AdminTls {
                ca_pems: cas.clone(),
                cert_pem: read(client_secret, "tls.crt", &secret)?,
                key_pem: read(client_secret, "tls.key", &secret)?,
            })
        }
    };
    Ok(Credentials {
        user,
        password,
        tls,
    })
}

/// Runs the reload statements on one pod.
pub async fn reload(
    server: &admin::Server<'_>,
    credentials: &Credentials,
    statements: &[&str],
) -> Result<(), ReloadFailure> {
    let first = admin::run(server, credentials, statements).await;
    // A server still on the previous CA refuses a client certificate from the new one (an
    // issuer change): the admin login needs none, so log in again without it.
    let result = match first {
        Err(AdminError::Connect { ref why, .. }) if why.contains("UnknownCA") => {
            let mut without = credentials.clone();
            if let Some(tls) = without.tls.as_mut() {
                tls.cert_pem.clear();
                tls.key_pem.clear();
            }
            admin::run(server, &without, statements).await
        }
        other => other,
    };
    result.map_err(|e| match e {
        AdminError::Refused { .. } => ReloadFailure::Refused(e.to_string()),
        // Signed by a CA the ops-manager no longer knows (an issuer change it did not
        // see begin): never logged into, but a restart brings the current certificate.
        AdminError::Connect { ref why, .. } if why.contains("UnknownIssuer") => {
            ReloadFailure::Refused(format!(
                "{e} (its certificate is from a CA the server Secret no longer holds)"
            ))
        }
        other => ReloadFailure::Unreachable(other.to_string()),
    })
}

/// What became of an eviction.
#[derive(Debug)]
pub enum Evicted {
    Done,
    /// That pod was already gone.
    Gone,
    /// A PodDisruptionBudget (or the API server) said not now.
    Blocked(String),
}

/// Evicts the pod `uid` named `pod`, never a pod of the same name created since (a watch cache
/// may still show the one evicted a moment ago). The Eviction is built here because kube's
/// `Api::evict` names its delete options `delete_options`, which kube-apiserver ignores.
pub async fn evict(
    client: &kube::Client,
    ns: &str,
    pod: &str,
    uid: &str,
) -> Result<Evicted, kube::Error> {
    let eviction = Eviction {
        metadata: ObjectMeta {
            name: Some(pod.to_string()),
            namespace: Some(ns.to_string()),
            ..ObjectMeta::default()
        },
        delete_options: Some(DeleteOptions {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteOptions::default()
        }),
    };
    match Api::<Pod>::namespaced(client.clone(), ns)
        .create_subresource::<_, serde_json::Value>(
            "eviction",
            pod,
            &PostParams::default(),
            &eviction,
        )
        .await
    {
        Ok(_) => Ok(Evicted::Done),
        Err(kube::Error::Api(status)) if status.code == 429 => {
            Ok(Evicted::Blocked(status.message.clone()))
        }
        // Gone already, or replaced by a new pod: what a restart wanted.
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            Ok(Evicted::Gone)
        }
        Err(e) => Err(e),
    }
}
