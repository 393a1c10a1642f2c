//! Helpers the bad-input, deletion and security reliability suites share (`reliability_bad_input`, `reliability_deletion`,
//! `reliability_security`): waiting for a condition or an Event, admission errors, the
//! no-hot-loop check and the no-garbage check. Kube API only, so every suite also runs against
//! a real cluster; the request-log check runs on the testbed only.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::{Duration, Instant};

use dbtls_contract::DbKind;
use dbtls_contract::certmanager::Certificate;
use dbtls_contract::labels;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::core::Status;
use testbed::harness::identities::{OPS_MANAGER_USER, PROVISIONER_USER};
use testbed::harness::{Env, EnvOptions};

pub const DEADLINE: Duration = Duration::from_secs(30);

/// Both operators (StatefulSet workloads, so one API to check) and the cert-manager stand-in.
pub async fn full_env() -> Env {
    Env::start(EnvOptions {
        provisioner_args: vec!["--workload=statefulset".into()],
        ..EnvOptions::default()
    })
    .await
    .unwrap()
}

/// No operators: for what the API server itself rejects.
pub async fn admission_env() -> Env {
    Env::start(EnvOptions {
        provisioner: false,
        ops_manager: false,
        cert_manager: false,
        ..EnvOptions::default()
    })
    .await
    .unwrap()
}

/// Waits for condition `type_` = `status` with `reason`; returns its message.
pub async fn condition(
    env: &Env,
    kind: DbKind,
    db: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> String {
    env.eventually(
        &format!("{kind} {db} {type_}={status} {reason}"),
        DEADLINE,
        || async {
            Ok(env
                .condition(kind, db, type_)
                .await?
                .filter(|c| c.status == status && c.reason.as_deref() == Some(reason))
                .map(|c| c.message.unwrap_or_default()))
        },
    )
    .await
    .unwrap()
}

/// Waits for an Event about `object` with `reason`; returns its note.
pub async fn event(env: &Env, object: &str, reason: &str) -> String {
    env.eventually(
        &format!("an Event {reason} about {object}"),
        DEADLINE,
        || async {
            Ok(env
                .events_for(object)
                .await?
                .into_iter()
                .find(|(r, _)| r == reason)
                .map(|(_, note)| note))
        },
    )
    .await
    .unwrap()
}

/// The object of `yaml` (one document) as the dynamic type of its kind, namespaced in the
/// test namespace.
pub fn dynamic(env: &Env, yaml: &str) -> (kube::Api<DynamicObject>, DynamicObject) {
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    let api_version = value["apiVersion"].as_str().unwrap();
    let kind = value["kind"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let plural = DbKind::ALL
        .into_iter()
        .find(|k| k.profile().kind == kind)
        .map(|k| k.profile().plural.to_string())
        .unwrap_or_else(|| format!("{}s", kind.to_lowercase()));
    let resource = ApiResource::from_gvk_with_plural(&gvk, &plural);
    let api = kube::Api::namespaced_with(env.client(), env.namespace(), &resource);
    let mut obj: DynamicObject = serde_json::from_value(value).unwrap();
    obj.metadata.namespace = Some(env.namespace().to_string());
    (api, obj)
}

/// Creates the first document of `yaml` and returns the API server's refusal; panics if it
/// was accepted.
pub async fn rejected(env: &Env, yaml: &str, params: &PostParams) -> Status {
    let first = yaml.split("\n---\n").next().unwrap();
    let (api, obj) = dynamic(env, first);
    match api.create(params, &obj).await {
        Ok(created) => panic!("accepted: {:?}", created.data),
        Err(kube::Error::Api(status)) => *status,
        Err(other) => panic!("not an API refusal: {other}"),
    }
}

/// The API server's answer to the invalid object, as a 422 whose message contains `needle`.
pub async fn rejected_with_422(env: &Env, yaml: &str, needle: &str) -> String {
    let status = rejected(env, yaml, &PostParams::default()).await;
    assert_eq!(status.code, 422, "{status:?}");
    assert_eq!(status.reason, "Invalid", "{status:?}");
    assert!(status.message.contains(needle), "{}", status.message);
    status.message
}

/// Requests the operators made about `db` (its own object and the objects named after it),
/// except watches, since `since` (the whole log for `None`).
fn requests_about(env: &Env, db: &str, since: Option<Instant>) -> Vec<String> {
    let Some(server) = env.api_server() else {
        return Vec::new();
    };
    server
        .request_log()
        .snapshot()
        .into_iter()
        .filter(|r| since.is_none_or(|since| r.at >= since))
        .filter(|r| r.user == PROVISIONER_USER || r.user == OPS_MANAGER_USER)
        .filter(|r| r.method != "GET" || !r.path.contains("watch=true"))
        .filter(|r| {
            r.name
                .as_deref()
                .is_some_and(|n| n == db || n.starts_with(&format!("{db}-")))
        })
        .map(|r| format!("{} {} {} {}", r.user, r.method, r.path, r.status))
        .collect()
}

/// At most about one reconcile of each operator (each reads ~10 objects of the database).
const QUIET_REQUESTS: usize = 20;
/// How long the database may keep the operators busy after the reported condition: the other
/// aliases, the adoption of issued Secrets and the two operators' status writes settle first.
const SETTLE: Duration = Duration::from_secs(20);

/// No hot loop (testbed only): within [`SETTLE`] the operators go quiet about `db` — a 2 s window
/// with at most [`QUIET_REQUESTS`] requests about it. A requeue without backoff never does (it
/// makes hundreds a second). The windows are a measurement, not a synchronisation.
pub async fn assert_no_hot_loop(env: &Env, db: &str) {
    if env.api_server().is_none() {
        return;
    }
    let seen_ever = requests_about(env, db, None);
    assert!(
        !seen_ever.is_empty(),
        "no operator request about {db} was ever logged: the filter cannot see a hot loop"
    );
    let started = Instant::now();
    loop {
        let since = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let requests = requests_about(env, db, Some(since));
        if requests.len() <= QUIET_REQUESTS {
            return;
        }
        assert!(
            started.elapsed() < SETTLE,
            "still {} requests about {db} in 2 s after {SETTLE:?}:\n{}",
            requests.len(),
            requests.join("\n")
        );
    }
}

/// Nothing half-built: no workload and no Certificate for `db`.
pub async fn assert_no_workload_or_certificates(env: &Env, kind: DbKind, db: &str) {
    assert!(
        env.api::<StatefulSet>()
            .get_opt(db)
            .await
            .unwrap()
            .is_none(),
        "workload {db} created for invalid input"
    );
    assert!(
        certificates_of(env, kind, db).await.is_empty(),
        "Certificates created for invalid input"
    );
}

pub async fn certificates_of(env: &Env, kind: DbKind, db: &str) -> Vec<Certificate> {
    let selector = labels::for_database(kind, db)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    env.api::<Certificate>()
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
}

/// Inserts `extra` (indented YAML lines) right after the `tls:` issuerRef block of a
/// [`Env::tls_database`] manifest whose issuer is `issuer`.
pub fn with_certificates(yaml: &str, issuer: &str, extra: &str) -> String {
    let anchor = format!("      name: {issuer}\n");
    assert!(yaml.contains(&anchor), "{yaml}");
    yaml.replacen(&anchor, &format!("{anchor}    certificates:\n{extra}"), 1)
}

/// Waits until `db` of `kind` is fully converged: both operators' conditions True and the
/// workload exists.
pub async fn converged(env: &Env, kind: DbKind, db: &str) {
    for type_ in ["IssuerReady", "CertificatesReady", "TLSSecretsReady"] {
        env.eventually(&format!("{kind} {db} {type_}=True"), DEADLINE, || async {
            Ok(env
                .condition(kind, db, type_)
                .await?
                .filter(|c| c.status == "True")
                .map(|_| ()))
        })
        .await
        .unwrap();
    }
    env.eventually(&format!("{db} workload"), DEADLINE, || async {
        Ok(env.api::<StatefulSet>().get_opt(db).await?)
    })
    .await
    .unwrap();
}
