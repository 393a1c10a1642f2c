//! The read step: everything the plan needs from the cluster for one database. Reads only
//! (GETs, one label-selected LIST), so that an idle reconcile writes nothing.

use std::collections::BTreeMap;

use dbtls_contract::api::TlsView;
use dbtls_contract::certmanager::{self, Certificate, ClusterIssuer, Issuer, IssuerStatus};
use dbtls_contract::{Database, tls};
use dbtls_contract::{labels, names};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;

use crate::context::Context;
use crate::db::DbRef;
use crate::plan::{IssuerKey, IssuerState, Observed, SecretFacts};

#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
}

fn read(what: impl Into<String>) -> impl FnOnce(kube::Error) -> DereferenceError {
    let what = what.into();
    move |source| DereferenceError::Read { what, source }
}

/// The label selector of one database's objects.
pub fn database_selector(db: &DbRef) -> String {
    labels::for_database(db.kind, &db.name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn observe<K: Database>(
    db: &K,
    db_ref: &DbRef,
    tls_view: &TlsView<'_>,
    ctx: &Context,
) -> Result<Observed, DereferenceError> {
    let ns = db_ref.namespace.as_str();
    let mut observed = Observed::default();

    for alias in db_ref.kind.profile().aliases {
        let Some(issuer) = tls_view.issuer_for(alias) else {
            continue;
        };
        let key = IssuerKey::of(issuer);
        if let std::collections::btree_map::Entry::Vacant(entry) = observed.issuers.entry(key) {
            let state = issuer_state(ctx, ns, entry.key()).await?;
            entry.insert(state);
        }
    }

    observed.missing_objects = missing_objects(db, db_ref, ctx).await?;

    let certificates: Api<Certificate> = Api::namespaced(ctx.client.clone(), ns);
    let listed = certificates
        .list(&ListParams::default().labels(&database_selector(db_ref)))
        .await
        .map_err(read(format!("Certificates of {}", db_ref.display())))?;
    observed.certificates = listed
        .items
        .into_iter()
        .filter_map(|c| Some((c.metadata.name.clone()?, c)))
        .collect::<BTreeMap<_, _>>();

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for (_, name) in tls::secrets(db_ref.kind, &db_ref.name, tls_view) {
        if !observed.certificates.contains_key(&name) {
            // Not ours by label: maybe another database's or the user's (a conflict).
            if let Some(foreign) = certificates
                .get_opt(&name)
                .await
                .map_err(read(format!("Certificate {ns}/{name}")))?
            {
                observed.certificates.insert(name.clone(), foreign);
            }
        }
        if let Some(secret) = secrets
            .get_metadata_opt(&name)
            .await
            .map_err(read(format!("Secret {ns}/{name}")))?
        {
            observed
                .secrets
                .insert(name.clone(), secret_facts(&name, &secret));
        }
    }
    Ok(observed)
}

pub fn secret_facts(name: &str, secret: &PartialObjectMeta<Secret>) -> SecretFacts {
    SecretFacts {
        name: name.to_string(),
        uid: secret.metadata.uid.clone(),
        resource_version: secret.metadata.resource_version.clone(),
        owners: secret.metadata.owner_references.clone().unwrap_or_default(),
        certificate_name: secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(certmanager::annotations::CERTIFICATE_NAME))
            .cloned(),
    }
}

async fn issuer_state(
    ctx: &Context,
    ns: &str,
    key: &IssuerKey,
) -> Result<IssuerState, DereferenceError> {
    let what = key.display(ns);
    let found = if key.is_cluster_issuer() {
        Api::<ClusterIssuer>::all(ctx.client.clone())
            .get_opt(&key.name)
            .await
            .map_err(read(what))?
            .map(|i| (i.spec.acme.is_some(), i.status))
    } else {
        Api::<Issuer>::namespaced(ctx.client.clone(), ns)
            .get_opt(&key.name)
            .await
            .map_err(read(what))?
            .map(|i| (i.spec.acme.is_some(), i.status))
    };
    Ok(match found {
        None => IssuerState::Missing,
        Some((acme, status)) => issuer_found(acme, status.as_ref()),
    })
}

/// The issuer's readiness and, when not ready, its own words for why.
pub fn issuer_found(acme: bool, status: Option<&IssuerStatus>) -> IssuerState {
    let ready_condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    let message = match ready_condition {
        Some(c) => format!(
            "{}: {}",
            c.reason.as_deref().unwrap_or(&c.status),
            c.message.as_deref().unwrap_or("")
        ),
        None => "no Ready condition yet (is cert-manager running?)".into(),
    };
    IssuerState::Found {
        acme,
        ready: status.is_some_and(IssuerStatus::is_ready),
        message,
    }
}

/// The provisioner's objects the Certificates depend on that do not exist yet.
async fn missing_objects<K: Database>(
    db: &K,
    db_ref: &DbRef,
    ctx: &Context,
) -> Result<Vec<String>, DereferenceError> {
    let ns = db_ref.namespace.as_str();
    let auth = db
        .common()
        .auth_secret
        .and_then(|a| a.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| names::auth_secret(&db_ref.name));
    let mut missing = Vec::new();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    if secrets
        .get_metadata_opt(&auth)
        .await
        .map_err(read(format!("Secret {ns}/{auth}")))?
        .is_none()
    {
        missing.push(format!("Secret {auth}"));
    }
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    for name in [
        names::primary_service(&db_ref.name),
        names::governing_service(&db_ref.name),
    ] {
        if services
            .get_metadata_opt(&name)
            .await
            .map_err(read(format!("Service {ns}/{name}")))?
            .is_none()
        {
            missing.push(format!("Service {name}"));
        }
    }
    Ok(missing)
}
