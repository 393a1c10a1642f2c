//! Issuers and ClusterIssuers: their `Ready` condition (reference §3) and the signer a Ready
//! issuer provides. The CA Secret is read with a GET; a not-Ready issuer is re-checked every
//! few seconds so that a CA Secret created later is noticed without watching all Secrets.
use std::sync::Arc;
use std::time::Duration;

use dbtls_contract::certmanager::{
    CA_CRT, CertManagerCondition, ClusterIssuer, Issuer, IssuerSpec, IssuerStatus, TLS_CRT, TLS_KEY,
};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::{Api, Patch};
use kube::runtime::controller::Action;

use super::keys;
use super::signing::{Signer, ca_pool};
use super::status::condition;
use super::{Context, Error};

/// An issuer's `Ready` condition, before transition times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Readiness {
    fn not_ready(reason: &'static str, message: impl Into<String>) -> Self {
        Readiness {
            ready: false,
            reason,
            message: message.into(),
        }
    }
}

/// Evaluates an issuer; returns its readiness and, when Ready, the signer.
pub async fn evaluate(
    client: &kube::Client,
    spec: &IssuerSpec,
    secret_namespace: &str,
) -> Result<(Readiness, Option<Signer>), Error> {
    if let Some(selfsigned) = &spec.self_signed {
        let signer = Signer::SelfSigned {
            crl_distribution_points: selfsigned
                .crl_distribution_points
                .clone()
                .unwrap_or_default(),
        };
        return Ok((
            Readiness {
                ready: true,
                reason: "IsReady",
                message: String::new(),
            },
            Some(signer),
        ));
    }
    let stand_in_acme = spec
        .acme
        .as_ref()
        .and_then(|acme| acme.0.get("server"))
        .is_some_and(|server| server == super::signing::STAND_IN_ACME_SERVER);
    if stand_in_acme {
        return Ok((
            Readiness {
                ready: true,
                reason: "ACMEAccountRegistered",
                message: "The ACME account was registered with the ACME server".into(),
            },
            Some(Signer::Acme),
        ));
    }
    let Some(ca) = &spec.ca else {
        let kind = if spec.acme.is_some() {
            "ACME"
        } else if spec.vault.is_some() {
            "Vault"
        } else if spec.venafi.is_some() {
            "Venafi"
        } else {
            return Ok((
                Readiness::not_ready("InvalidConfig", "No issuer type is configured"),
                None,
            ));
        };
        return Ok((
            Readiness::not_ready(
                "NotSupportedByStandIn",
                format!(
                    "{kind} issuers are not supported by the cert-manager stand-in; use a CA or SelfSigned issuer (or ACME with the stand-in's own server)"
                ),
            ),
            None,
        ));
    };
    const PREFIX: &str = "Error getting keypair for CA issuer";
    let secrets: Api<Secret> = Api::namespaced(client.clone(), secret_namespace);
    let Some(secret) = secrets.get_opt(&ca.secret_name).await? else {
        return Ok((
            Readiness::not_ready(
                "ErrGetKeyPair",
                format!("{PREFIX}: secrets {:?} not found", ca.secret_name),
            ),
            None,
        ));
    };
    let data = secret.data.unwrap_or_default();
    let pool = ca_pool(
        data.get(TLS_CRT)
            .map(|b| b.0.as_slice())
            .unwrap_or_default(),
        data.get(CA_CRT).map(|b| b.0.as_slice()),
    );
    let first_in_tls_crt = data
        .get(TLS_CRT)
        .map(|b| super::inspect::pem_certificates(&b.0))
        .and_then(|c| c.into_iter().next());
    let Some(ca_der) = first_in_tls_crt else {
        return Ok((
            Readiness::not_ready(
                "ErrGetKeyPair",
                format!("{PREFIX}: error decoding certificate PEM block"),
            ),
            None,
        ));
    };
    let Some(facts) = super::inspect::facts(&ca_der) else {
        return Ok((
            Readiness::not_ready(
                "ErrGetKeyPair",
                format!("{PREFIX}: error parsing certificate"),
            ),
            None,
        ));
    };
    let key = data
        .get(TLS_KEY)
        .and_then(|k| std::str::from_utf8(&k.0).ok().map(str::to_string))
        .and_then(|pem| keys::parse_pem(&pem));
    let Some(key) = key else {
        return Ok((
            Readiness::not_ready(
                "ErrGetKeyPair",
                format!("{PREFIX}: error decoding private key PEM block"),
            ),
            None,
        ));
    };
    if !facts.is_ca {
        return Ok((
            Readiness::not_ready(
                "ErrInvalidKeyPair",
                format!("{PREFIX}: certificate is not a CA"),
            ),
            None,
        ));
    }
    let signer = Signer::Ca {
        chain: pool,
        key,
        crl_distribution_points: ca.crl_distribution_points.clone().unwrap_or_default(),
    };
    Ok((
        Readiness {
            ready: true,
            reason: "KeyPairVerified",
            message: "Signing CA verified".into(),
        },
        Some(signer),
    ))
}

/// How often a not-Ready / Ready issuer is re-evaluated.
const RECHECK_NOT_READY: Duration = Duration::from_secs(2);
const RECHECK_READY: Duration = Duration::from_secs(60);

async fn reconcile_status<K>(
    api: Api<K>,
    obj: &K,
    spec: &IssuerSpec,
    status: Option<&IssuerStatus>,
    secret_namespace: &str,
    ctx: &Context,
) -> Result<Action, Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let (readiness, _) = evaluate(&ctx.client, spec, secret_namespace).await?;
    let existing = status
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let desired: CertManagerCondition = condition(
        &existing,
        "Ready",
        readiness.ready,
        readiness.reason,
        &readiness.message,
        obj.meta().generation,
    );
    if existing.len() != 1 || existing.first() != Some(&desired) {
        let patch = serde_json::json!({"status": {"conditions": [desired]}});
        api.patch_status(
            &obj.name_any(),
            &super::status_params(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(Action::requeue(if readiness.ready {
        RECHECK_READY
    } else {
        RECHECK_NOT_READY
    }))
}

pub async fn reconcile_issuer(issuer: Arc<Issuer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = issuer.namespace().unwrap_or_default();
    let api: Api<Issuer> = Api::namespaced(ctx.client.clone(), &ns);
    reconcile_status(
        api,
        issuer.as_ref(),
        &issuer.spec,
        issuer.status.as_ref(),
        &ns,
        &ctx,
    )
    .await
}

pub async fn reconcile_cluster_issuer(
    issuer: Arc<ClusterIssuer>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let api: Api<ClusterIssuer> = Api::all(ctx.client.clone());
    let ns = ctx.config.cluster_resource_namespace.clone();
    reconcile_status(
        api,
        issuer.as_ref(),
        &issuer.spec.issuer,
        issuer.status.as_ref(),
        &ns,
        &ctx,
    )
    .await
}
