//! The read step: everything the plan needs about one database, from the watch caches. The API
//! server is read only where no cache can answer: the auth Secret a user names (it carries none
//! of the operators' labels), and, before a Certificate is first created, whether an object of
//! its name already exists that is not ours. That last read waits until the plan could create
//! the Certificate (the provisioner's objects exist): on a real API server a database is
//! reconciled several times while it waits for them, and each time read every name again.
use std::collections::BTreeMap;

use dbtls_contract::api::TlsView;
use dbtls_contract::certmanager::{self, Certificate, IssuerStatus};
use dbtls_contract::{Database, labels, names, tls};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;

use crate::caches::Stores;
use crate::db::DbRef;
use crate::plan::{IssuerKey, IssuerState, Observed, SecretFacts};

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("no watch cache covers namespace {0} (not in --namespace)")]
    NotWatched(String),
}

fn read(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ObserveError {
    let what = what.into();
    move |source| ObserveError::Read { what, source }
}

pub async fn observe<K: Database>(
    client: &kube::Client,
    stores: Option<&Stores>,
    db: &K,
    db_ref: &DbRef,
    tls_view: &TlsView<'_>,
) -> Result<Observed, ObserveError> {
    let ns = db_ref.namespace.as_str();
    let stores = stores.ok_or_else(|| ObserveError::NotWatched(ns.to_string()))?;
    let mut observed = Observed::default();
    for alias in tls_view.aliases(db_ref.kind) {
        if let Some(issuer) = tls_view.issuer_for(alias) {
            let key = IssuerKey::of(issuer);
            let state = issuer_state(stores, ns, &key);
            observed.issuers.insert(key, state);
        }
    }
    observed.missing_objects = missing_objects(client, stores, db, db_ref).await?;
    // No Certificate is created while the plan waits for the provisioner's objects, so whether
    // its name is taken by someone else is asked only once it could be.
    let may_create = !observed.waiting_for_objects();

    let selector = labels::for_database(db_ref.kind, &db_ref.name);
    observed.certificates = stores
        .certificates_of(ns, &selector)
        .into_iter()
        .filter_map(|c| Some((c.metadata.name.clone()?, c)))
        .collect::<BTreeMap<_, _>>();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let certificates: Api<Certificate> = Api::namespaced(client.clone(), ns);
    for (_, name) in tls::secrets(db_ref.kind, &db_ref.name, tls_view) {
        let ours = observed.certificates.contains_key(&name);
        let cached = stores.certificate(ns, &name);
        // Not labelled for this database: maybe another database's or the user's (a conflict).
        let foreign = match (ours, cached) {
            (true, _) => None,
            (false, Some(cached)) => Some(cached),
            (false, None) if !may_create => None,
            (false, None) => certificates
                .get_opt(&name)
                .await
                .map_err(read(format!("Certificate {ns}/{name}")))?,
        };
        if let Some(foreign) = foreign {
            observed.certificates.insert(name.clone(), foreign);
        }
        // Before our Certificate exists, a Secret of its name that is not in the cache may be
        // someone else's (cert-manager would take it over): read it once.
        let secret = match (
            stores.secret(ns, &name),
            observed.certificates.contains_key(&name),
        ) {
            (Some(cached), _) => Some(cached),
            (None, true) => None,
            (None, false) if !may_create => None,
            (None, false) => secrets
                .get_metadata_opt(&name)
                .await
                .map_err(read(format!("Secret {ns}/{name}")))?,
        };
        if let Some(secret) = secret {
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

fn issuer_state(stores: &Stores, ns: &str, key: &IssuerKey) -> IssuerState {
    let found = if key.is_cluster_issuer() {
        stores
            .cluster_issuer(&key.name)
            .map(|i| (i.spec.acme.is_some(), i.status))
    } else {
        stores
            .issuer(ns, &key.name)
            .map(|i| (i.spec.acme.is_some(), i.status))
    };
    match found {
        None => IssuerState::Missing,
        Some((acme, status)) => issuer_found(acme, status.as_ref()),
    }
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

/// The database's auth Secret: the user's `spec.authSecret.name`, or the provisioner's.
pub fn auth_secret_name<K: Database>(db: &K) -> String {
    db.common()
        .auth_secret
        .and_then(|a| a.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| names::auth_secret(&db.name_any()))
}

/// The provisioner's objects the Certificates depend on that do not exist yet.
async fn missing_objects<K: Database>(
    client: &kube::Client,
    stores: &Stores,
    db: &K,
    db_ref: &DbRef,
) -> Result<Vec<String>, ObserveError> {
    let ns = db_ref.namespace.as_str();
    let default_auth = names::auth_secret(&db_ref.name);
    let auth = auth_secret_name(db);
    let mut missing = Vec::new();
    let auth_exists = if auth == default_auth {
        stores.secret(ns, &auth).is_some()
    } else {
        Api::<Secret>::namespaced(client.clone(), ns)
            .get_metadata_opt(&auth)
            .await
            .map_err(read(format!("Secret {ns}/{auth}")))?
            .is_some()
    };
    if !auth_exists {
        missing.push(format!("Secret {auth}"));
    }
    for name in [
        names::primary_service(&db_ref.name),
        names::governing_service(&db_ref.name),
    ] {
        if !stores.service_exists(ns, &name) {
            missing.push(format!("Service {name}"));
        }
    }
    Ok(missing)
}
