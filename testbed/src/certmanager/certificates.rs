//! The Certificate controller: cert-manager's trigger, key manager, issuing and readiness
//! controllers folded into one reconcile (reference §2, §6).
//!
//! "Has the spec changed since issuance?" is answered by comparing the spec with the issued
//! certificate itself (SANs, subject, usages, isCA, duration; `spec::changed_fields`), the check
//! cert-manager falls back to when the CertificateRequest is gone. No CertificateRequests are
//! created and nothing extra is stored.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dbtls_contract::certmanager::{
    CLUSTER_ISSUER_KIND, CertManagerCondition, Certificate, CertificateStatus, ClusterIssuer,
    GROUP, ISSUER_KIND, Issuer, TLS_CRT, TLS_KEY, annotations as ann,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource as _, ResourceExt as _};
use rcgen::KeyPair;

use super::inspect::{self, CertFacts};
use super::keys::{self, KeyEncoding, KeySpec};
use super::status::{condition, rfc3339};
use super::{Context, Error, issuers, secret, signing, spec, validation};

/// Why the Secret is not (or no longer) what the spec asks for: cert-manager's policy reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    reason: &'static str,
    message: String,
}

fn finding(reason: &'static str, message: impl Into<String>) -> Option<Finding> {
    Some(Finding {
        reason,
        message: message.into(),
    })
}

/// The live Secret, parsed.
struct Issued {
    secret: Secret,
    facts: CertFacts,
    key: KeyPair,
}

/// Parses the Secret, or says what is wrong with it (the first checks of both policy chains).
fn inspect_secret(secret: Option<Secret>) -> Result<Issued, Finding> {
    let fail = |reason, message: &str| Finding {
        reason,
        message: message.to_string(),
    };
    let Some(secret) = secret else {
        return Err(fail(
            "DoesNotExist",
            "Issuing certificate as Secret does not exist",
        ));
    };
    let data = secret.data.clone().unwrap_or_default();
    if data.is_empty() {
        return Err(fail(
            "MissingData",
            "Issuing certificate as Secret does not contain any data",
        ));
    }
    let Some(key_pem) = data.get(TLS_KEY).filter(|k| !k.0.is_empty()) else {
        return Err(fail(
            "MissingData",
            "Issuing certificate as Secret does not contain a private key",
        ));
    };
    let Some(crt_pem) = data.get(TLS_CRT).filter(|c| !c.0.is_empty()) else {
        return Err(fail(
            "MissingData",
            "Issuing certificate as Secret does not contain a certificate",
        ));
    };
    let key = std::str::from_utf8(&key_pem.0)
        .ok()
        .and_then(keys::parse_pem)
        .ok_or_else(|| {
            fail(
                "InvalidKeyPair",
                "Issuing certificate as Secret contains invalid private key data",
            )
        })?;
    let facts = inspect::pem_certificates(&crt_pem.0)
        .first()
        .and_then(|der| inspect::facts(der))
        .ok_or_else(|| {
            fail(
                "InvalidCertificate",
                "Issuing certificate as Secret contains an invalid certificate",
            )
        })?;
    use rcgen::PublicKeyData as _;
    if key.subject_public_key_info() != facts.spki_der {
        return Err(fail(
            "InvalidKeyPair",
            "Issuing certificate as Secret contains a private key that does not match the certificate",
        ));
    }
    Ok(Issued { secret, facts, key })
}

/// The post-parse checks shared by readiness and trigger chains (issuer, owner, key, request).
fn mismatch(cert: &Certificate, issued: &Issued) -> Option<Finding> {
    let annotations = issued
        .secret
        .metadata
        .annotations
        .clone()
        .unwrap_or_default();
    let name = cert.name_any();
    if let Some(owner) = annotations.get(ann::CERTIFICATE_NAME)
        && *owner != name
    {
        return finding(
            "IncorrectCertificate",
            format!("Issuing certificate as Secret was previously issued for \"{owner}\""),
        );
    }
    if let Some(issuer_name) = annotations.get(ann::ISSUER_NAME) {
        let previous = dbtls_contract::certmanager::ObjectReference {
            name: issuer_name.clone(),
            kind: annotations.get(ann::ISSUER_KIND).cloned(),
            group: annotations.get(ann::ISSUER_GROUP).cloned(),
        };
        if previous.canonical() != cert.spec.issuer_ref.canonical() {
            let (kind, group, name) = previous.canonical();
            return finding(
                "IncorrectIssuer",
                format!(
                    "Issuing certificate as Secret was previously issued by \"{kind}.{group}/{name}\""
                ),
            );
        }
    }
    let wanted = KeySpec::from_spec(cert.spec.private_key.as_ref()).ok();
    let have = KeySpec::of_key(&issued.key);
    if wanted != have {
        let field = match (wanted, have) {
            (Some(KeySpec::Rsa(_)), Some(KeySpec::Rsa(_)))
            | (Some(KeySpec::Ecdsa(_)), Some(KeySpec::Ecdsa(_))) => "spec.privateKey.size",
            _ => "spec.privateKey.algorithm",
        };
        return finding(
            "SecretMismatch",
            format!("Existing private key is not up to date for spec: [{field}]"),
        );
    }
    let key_pem = issued
        .secret
        .data
        .as_ref()
        .and_then(|d| d.get(TLS_KEY))
        .map(|k| String::from_utf8_lossy(&k.0).to_string())
        .unwrap_or_default();
    let encoding =
        KeyEncoding::from_spec(cert.spec.private_key.as_ref()).unwrap_or(KeyEncoding::Pkcs1);
    if keys::encode_pem(&issued.key, encoding).is_ok_and(|want| want.trim() != key_pem.trim()) {
        return finding(
            "SecretMismatch",
            "Existing private key is not up to date for spec: [spec.privateKey.encoding]",
        );
    }
    let changed = spec::changed_fields(&cert.spec, &issued.facts);
    if !changed.is_empty() {
        return finding(
            "RequestChanged",
            format!(
                "Fields on existing CertificateRequest resource not up to date: [{}]",
                changed.join(" ")
            ),
        );
    }
    None
}

fn renewal_time(cert: &Certificate, facts: &CertFacts) -> DateTime<Utc> {
    let lifetime = (facts.not_after - facts.not_before)
        .to_std()
        .unwrap_or_default();
    let rb = spec::renew_before(&cert.spec, lifetime);
    facts.not_after - chrono::Duration::from_std(rb).unwrap_or_default()
}

/// The cert-manager `Certificate` reconcile.
pub async fn reconcile(cert: Arc<Certificate>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cert.namespace().unwrap_or_default();
    let name = cert.name_any();
    let generation = cert.metadata.generation;
    let status = cert.status.clone().unwrap_or_default();
    let existing = status.conditions.clone().unwrap_or_default();
    let now = Utc::now();
    let certs: Api<Certificate> = Api::namespaced(ctx.client.clone(), &ns);

    // 1. Webhook validation.
    let errors = validation::validate(&cert.spec);
    if !errors.is_empty() {
        let detail = if errors.len() == 1 {
            errors.join("")
        } else {
            format!("[{}]", errors.join(", "))
        };
        let message = format!("Certificate.cert-manager.io {name:?} is invalid: {detail}");
        let ready = condition(
            &existing,
            "Ready",
            false,
            "ValidationFailed",
            &message,
            generation,
        );
        let mut desired = status.clone();
        desired.conditions = Some(vec![ready]);
        if write_status(&certs, &cert, &desired).await? {
            publish(
                &ctx,
                &cert,
                EventType::Warning,
                "ValidationFailed",
                &message,
            )
            .await;
        }
        return Ok(Action::await_change());
    }

    // 2. The Secret and the policy chains.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let live = secrets.get_opt(&cert.spec.secret_name).await?;
    let issued = inspect_secret(live.clone());
    let (ready_finding, trigger) = match &issued {
        Err(f) => (Some(f.clone()), Some(f.clone())),
        Ok(i) => match mismatch(&cert, i) {
            Some(f) => (Some(f.clone()), Some(f)),
            None => {
                let renew_at = renewal_time(&cert, &i.facts);
                let expired = now >= i.facts.not_after;
                let ready = expired.then(|| Finding {
                    reason: "Expired",
                    message: format!("Certificate expired on {}", i.facts.not_after.to_rfc2822()),
                });
                let trigger = (now >= renew_at).then(|| Finding {
                    reason: "Renewing",
                    message: format!(
                        "Renewing certificate as renewal was scheduled at {}",
                        rfc3339(renew_at)
                    ),
                });
                (ready, trigger)
            }
        },
    };
    let issuing = status.condition("Issuing").cloned();
    let manually = issuing.as_ref().is_some_and(|c| c.status == "True");

    // Back off after a failed issuance, unless the spec changed or someone asked again.
    if trigger.is_some()
        && !manually
        && let Some(wait) = failure_backoff(&status, issuing.as_ref(), generation, now)
    {
        return Ok(Action::requeue(wait));
    }

    if trigger.is_none() && !manually {
        let Ok(i) = &issued else {
            return Ok(Action::await_change());
        };
        // 3a. Up to date: keep the Secret's metadata and the status current.
        if secret::metadata_outdated(&i.secret, &cert, &i.facts, &ctx.config.field_manager) {
            let data = i.secret.data.clone().unwrap_or_default();
            let text = |k: &str| {
                data.get(k)
                    .map(|b| String::from_utf8_lossy(&b.0).to_string())
                    .unwrap_or_default()
            };
            let body = secret::apply_body(
                &cert,
                &i.facts,
                i.secret.type_.clone(),
                &text(TLS_CRT),
                &text(TLS_KEY),
                &text(dbtls_contract::certmanager::CA_CRT),
            );
            apply_secret(&secrets, &cert.spec.secret_name, &body, &ctx).await?;
        }
        let desired = ready_status(
            &status,
            &existing,
            &cert,
            &i.facts,
            ready_finding.as_ref(),
            generation,
            None,
        );
        write_status(&certs, &cert, &desired).await?;
        let renew_at = renewal_time(&cert, &i.facts);
        return Ok(requeue_at(renew_at, now));
    }

    // 3b. Issue.
    let trigger = trigger.unwrap_or_else(|| Finding {
        reason: "ManuallyTriggered",
        message: issuing
            .as_ref()
            .and_then(|c| c.message.clone())
            .unwrap_or_default(),
    });
    let issuing_cond = match issuing.as_ref().filter(|c| c.status == "True") {
        Some(c) => c.clone(),
        None => condition(
            &existing,
            "Issuing",
            true,
            trigger.reason,
            &trigger.message,
            generation,
        ),
    };
    let (readiness, signer) = resolve_issuer(&cert, &ctx).await?;
    let Some(signer) = signer else {
        // Issuer missing or not Ready: Issuing stays True, no Secret; the issuer watch brings us back.
        let mut desired = match &issued {
            Ok(i) => ready_status(
                &status,
                &existing,
                &cert,
                &i.facts,
                ready_finding.as_ref(),
                generation,
                Some(issuing_cond.clone()),
            ),
            Err(f) => {
                let mut d = status.clone();
                d.conditions = Some(vec![
                    condition(&existing, "Ready", false, f.reason, &f.message, generation),
                    issuing_cond.clone(),
                ]);
                d.not_before = None;
                d.not_after = None;
                d.renewal_time = None;
                d
            }
        };
        desired.next_private_key_secret_name = None;
        if write_status(&certs, &cert, &desired).await? && !manually {
            publish(
                &ctx,
                &cert,
                EventType::Normal,
                "Issuing",
                &issuing_cond.message.clone().unwrap_or_default(),
            )
            .await;
            // cert-manager reports the issuer problem as an event on the CertificateRequest;
            // without CertificateRequests it goes on the Certificate.
            publish(
                &ctx,
                &cert,
                EventType::Warning,
                readiness.reason,
                &readiness.message,
            )
            .await;
        }
        return Ok(Action::requeue(Duration::from_secs(60)));
    };

    if let Some(pacer) = &ctx.pacer {
        pacer.wait().await;
    }
    let key_spec = KeySpec::from_spec(cert.spec.private_key.as_ref()).map_err(Error::Invalid)?;
    let encoding =
        KeyEncoding::from_spec(cert.spec.private_key.as_ref()).map_err(Error::Invalid)?;
    let reuse = cert
        .spec
        .private_key
        .as_ref()
        .and_then(|p| p.rotation_policy.as_deref())
        == Some("Never");
    let key = match (&issued, reuse) {
        (Ok(i), true) if KeySpec::of_key(&i.key) == Some(key_spec) => {
            keys::parse_pem(&i.key.serialize_pem())
                .ok_or_else(|| Error::Invalid("cannot reuse the private key".into()))?
        }
        _ => match ctx.pool.as_ref().and_then(|p| p.take(key_spec)) {
            Some(k) => k,
            None => tokio::task::spawn_blocking(move || key_spec.generate())
                .await
                .map_err(|e| Error::Invalid(e.to_string()))?
                .map_err(|e| Error::Invalid(format!("generating the private key: {e}")))?,
        },
    };
    let signed = signing::sign(&cert.spec, &key, &signer, now).and_then(|out| {
        let leaf = inspect::pem_certificates(out.tls_crt.as_bytes());
        let facts = leaf
            .first()
            .and_then(|d| inspect::facts(d))
            .ok_or("the signed certificate does not parse")?;
        Ok((out, facts))
    });
    let (out, facts) = match signed {
        Ok(ok) => ok,
        Err(e) => {
            let message =
                format!("The certificate request has failed to complete and will be retried: {e}");
            let mut desired = status.clone();
            let ready = existing.iter().find(|c| c.type_ == "Ready").cloned();
            desired.conditions = Some(
                ready
                    .into_iter()
                    .chain([condition(
                        &existing, "Issuing", false, "Failed", &message, generation,
                    )])
                    .collect(),
            );
            desired.last_failure_time = Some(rfc3339(now));
            desired.failed_issuance_attempts =
                Some(status.failed_issuance_attempts.unwrap_or(0) + 1);
            write_status(&certs, &cert, &desired).await?;
            publish(&ctx, &cert, EventType::Warning, "Failed", &message).await;
            return Ok(Action::requeue(backoff(
                desired.failed_issuance_attempts.unwrap_or(1),
            )));
        }
    };
    let key_pem = keys::encode_pem(&key, encoding).map_err(Error::Invalid)?;
    let live_type = live.as_ref().and_then(|s| s.type_.clone());
    let body = secret::apply_body(
        &cert,
        &facts,
        live_type,
        &out.tls_crt,
        &key_pem,
        &out.ca_crt,
    );
    apply_secret(&secrets, &cert.spec.secret_name, &body, &ctx).await?;

    let mut desired = ready_status(&status, &existing, &cert, &facts, None, generation, None);
    desired.revision = Some(status.revision.unwrap_or(0) + 1);
    desired.last_failure_time = None;
    desired.failed_issuance_attempts = None;
    desired.next_private_key_secret_name = None;
    write_status(&certs, &cert, &desired).await?;
    publish(
        &ctx,
        &cert,
        EventType::Normal,
        "Issuing",
        "The certificate has been successfully issued",
    )
    .await;
    Ok(requeue_at(renewal_time(&cert, &facts), now))
}

/// Status with Ready from the readiness chain and the validity fields of `facts`.
fn ready_status(
    status: &CertificateStatus,
    existing: &[CertManagerCondition],
    cert: &Certificate,
    facts: &CertFacts,
    problem: Option<&Finding>,
    generation: Option<i64>,
    issuing: Option<CertManagerCondition>,
) -> CertificateStatus {
    let ready = match problem {
        Some(f) => condition(existing, "Ready", false, f.reason, &f.message, generation),
        None => condition(
            existing,
            "Ready",
            true,
            "Ready",
            "Certificate is up to date and has not expired",
            generation,
        ),
    };
    let mut desired = status.clone();
    desired.conditions = Some(std::iter::once(ready).chain(issuing).collect());
    desired.not_before = Some(rfc3339(facts.not_before));
    desired.not_after = Some(rfc3339(facts.not_after));
    desired.renewal_time = Some(rfc3339(renewal_time(cert, facts)));
    desired
}

/// cert-manager's retry delay after `attempts` failures: 1h x 2^(n-1), at most 32h.
fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from((attempts - 1).clamp(0, 5)).unwrap_or(5);
    Duration::from_secs(3600 * 2u64.pow(exp))
}

fn failure_backoff(
    status: &CertificateStatus,
    issuing: Option<&CertManagerCondition>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    issuing.filter(|c| c.status == "False" && c.observed_generation == generation)?;
    let last = status
        .last_failure_time
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?;
    let retry_at = last.with_timezone(&Utc)
        + chrono::Duration::from_std(backoff(status.failed_issuance_attempts.unwrap_or(1)))
            .unwrap_or_default();
    (retry_at > now).then(|| (retry_at - now).to_std().unwrap_or_default())
}

fn requeue_at(at: DateTime<Utc>, now: DateTime<Utc>) -> Action {
    let wait = (at - now).to_std().unwrap_or_default();
    Action::requeue(wait.clamp(Duration::from_secs(1), Duration::from_secs(7 * 24 * 3600)))
}

async fn resolve_issuer(
    cert: &Certificate,
    ctx: &Context,
) -> Result<(issuers::Readiness, Option<signing::Signer>), Error> {
    let (kind, group, name) = cert.spec.issuer_ref.canonical();
    if group != GROUP {
        return Ok((
            issuers::Readiness {
                ready: false,
                reason: "IssuerNotSupported",
                message: format!("issuer group {group:?} is not supported by the stand-in"),
            },
            None,
        ));
    }
    let not_found = |what: &str| issuers::Readiness {
        ready: false,
        reason: "IssuerNotFound",
        message: format!("Referenced {what} not found"),
    };
    let (spec, status, secret_ns) = if kind == CLUSTER_ISSUER_KIND {
        match Api::<ClusterIssuer>::all(ctx.client.clone())
            .get_opt(&name)
            .await?
        {
            Some(i) => (
                i.spec.issuer,
                i.status,
                ctx.config.cluster_resource_namespace.clone(),
            ),
            None => return Ok((not_found("\"ClusterIssuer\""), None)),
        }
    } else if kind == ISSUER_KIND {
        let ns = cert.namespace().unwrap_or_default();
        match Api::<Issuer>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&name)
            .await?
        {
            Some(i) => (i.spec, i.status, ns),
            None => return Ok((not_found("\"Issuer\""), None)),
        }
    } else {
        return Ok((not_found(&kind), None));
    };
    // Like cert-manager, sign only for issuers whose Ready condition says so.
    if !status.as_ref().is_some_and(|s| s.is_ready()) {
        return Ok((
            issuers::Readiness {
                ready: false,
                reason: "IssuerNotReady",
                message: "Referenced issuer does not have a Ready status condition".into(),
            },
            None,
        ));
    }
    issuers::evaluate(&ctx.client, &spec, &secret_ns).await
}

async fn apply_secret(
    secrets: &Api<Secret>,
    name: &str,
    body: &serde_json::Value,
    ctx: &Context,
) -> Result<(), Error> {
    secrets
        .patch(
            name,
            &PatchParams::apply(&ctx.config.field_manager).force(),
            &Patch::Apply(body),
        )
        .await?;
    Ok(())
}

/// Writes the status when it differs from `cert`'s; returns whether it wrote. Only over the
/// version it was decided from, as cert-manager's status updates: a decision made from a stale
/// cache (e.g. before its own last write arrived) is refused with 409 and made again from the
/// newer version, instead of writing back what that version replaced (a revision, or the
/// `Issuing` condition someone set to ask for a renewal).
async fn write_status(
    certs: &Api<Certificate>,
    cert: &Certificate,
    desired: &CertificateStatus,
) -> Result<bool, Error> {
    if cert.status.clone().unwrap_or_default() == *desired {
        return Ok(false);
    }
    // A merge patch replaces the conditions list and needs explicit nulls to drop fields.
    let mut status = serde_json::to_value(desired)?;
    if let Some(obj) = status.as_object_mut() {
        for key in [
            "conditions",
            "notBefore",
            "notAfter",
            "renewalTime",
            "revision",
            "nextPrivateKeySecretName",
            "lastFailureTime",
            "failedIssuanceAttempts",
        ] {
            obj.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    certs
        .patch_status(
            &cert.name_any(),
            &super::status_params(),
            &Patch::Merge(&serde_json::json!({
                "metadata": {"resourceVersion": cert.resource_version()},
                "status": status,
            })),
        )
        .await?;
    Ok(true)
}

async fn publish(ctx: &Context, cert: &Certificate, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cert.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::apiserver::{ApiServerConfig, TestApiServer};
    use crate::harness::cluster::Played;
    use crate::harness::crds;

    #[tokio::test]
    async fn a_status_decided_from_a_stale_version_is_refused_not_written_back() {
        let server = TestApiServer::start(ApiServerConfig::default())
            .await
            .unwrap();
        let admin = server.client_as("admin").await.unwrap();
        crds::install(&admin, Played::ByStandIn).await.unwrap();
        let certs: Api<Certificate> = Api::namespaced(admin, "default");
        let body: Certificate = serde_json::from_value(serde_json::json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "c", "namespace": "default"},
            "spec": {"secretName": "c-tls", "issuerRef": {"name": "ca"}, "commonName": "c"},
        }))
        .unwrap();
        let stale = certs.create(&Default::default(), &body).await.unwrap();
        let issued = CertificateStatus {
            revision: Some(1),
            ..CertificateStatus::default()
        };
        assert!(write_status(&certs, &stale, &issued).await.unwrap());
        // Decided again from the version before that write: refused, the revision stays.
        let without_revision = CertificateStatus {
            failed_issuance_attempts: Some(1),
            ..CertificateStatus::default()
        };
        let refused = write_status(&certs, &stale, &without_revision).await;
        assert!(
            matches!(&refused, Err(Error::Kube(kube::Error::Api(s))) if s.code == 409),
            "{refused:?}"
        );
        let now = certs.get("c").await.unwrap();
        assert_eq!(now.status.unwrap().revision, Some(1));
    }
}
