//! The CA bundle the database's servers trust, and the issuer change that widens it first:
//! observe (caches, the server Secret's CA, the probe Secret) → [`plan`] (pure) → apply (the
//! bundle Secret, the probe Certificate, asking the pods).
pub mod plan;

use std::collections::BTreeMap;

use dbtls_contract::api::TlsView;
use dbtls_contract::certmanager::{self, CA_CRT, Certificate, TLS_CRT, TLS_KEY, annotations};
use dbtls_contract::conditions::Reason;
use dbtls_contract::kinds::alias;
use dbtls_contract::{OPS_MANAGER_MANAGER, labels, names, tls};
use dbtls_runtime::{events, ssa};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta};
use kube::core::PartialObjectMeta;

use crate::apply::{delete_certificate, is_stale};
use crate::caches::Stores;
use crate::certificate::issuer_reference;
use crate::context::Context;
use crate::db::DbRef;
use crate::serving::AdminLogin;
use crate::serving::probe::{self, ClientIdentity};
use crate::serving::trust::ProbeCertificate;
use plan::{Hold, Probe, ProbeAction, Serial, TrustFacts, TrustPlan};

use dbtls_contract::labels::{RETIRED_CA_SERIAL as RETIRED_CA, TRUSTED_CA_SERIALS as TRUSTED_CAS};

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("reading Secret {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing {what}: {source}")]
    Write {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Serving(#[from] crate::serving::ServingError),
    #[error(transparent)]
    Apply(#[from] crate::apply::ApplyError),
}

/// What was observed, with the PEMs the apply step may write.
pub struct Observed {
    pub facts: TrustFacts,
    /// CA PEMs by serial: the server Secret's and the probe's.
    pems: BTreeMap<Serial, Vec<u8>>,
    probe: Option<ProbeCertificate>,
    /// The server Secret's CA (PEM), to verify servers with during the change.
    server_ca: Vec<u8>,
    /// The live bundle Secret's uid, when it is ours; Err: it is someone else's.
    bundle_uid: Result<Option<String>, String>,
    /// The CA serial of the retired client certificate the bundle Secret keeps.
    retired_in_bundle: Option<Serial>,
    /// The cached bundle Secret's resourceVersion (None: not cached), which a write is made over.
    bundle_version: Option<String>,
}

/// A bundle Secret this process wrote, as the watch cache will show it once it catches up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenBundle {
    cas: Vec<Serial>,
    uid: String,
    retired: Option<Serial>,
}

/// On the bundle Secret, while an issuer change is not over: next to the serial of the CA being
/// replaced (`RETIRED_CA_SERIAL`), its client certificate (never mounted: pods project `ca.crt`
/// only), which proves at the end that no pod trusts that CA any more. Kept in the cluster so
/// that a restarted ops-manager still makes that check.
const RETIRED_CERT: &str = "retired-client.crt";
const RETIRED_KEY: &str = "retired-client.key";

impl Observed {
    /// Why the bundle cannot be written, if a Secret of its name is not ours.
    pub fn conflict(&self) -> Option<&str> {
        self.bundle_uid.as_ref().err().map(String::as_str)
    }
}

/// The first certificate of a PEM bundle, by serial.
fn first_serial(pem: &[u8]) -> Option<Serial> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    probe::serial_of(&block.contents)
}

/// The CAs of a PEM bundle, by the serial of each one's first certificate: a certificate whose
/// serial is in `anchors` (the bundle's annotation) starts a CA, the certificates after it up
/// to the next anchor are its chain and stay with it. Without anchors, every certificate is
/// one CA.
fn split_pems(pem: &[u8], anchors: Option<&[Serial]>) -> BTreeMap<Serial, Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let mut out: BTreeMap<Serial, Vec<u8>> = BTreeMap::new();
    let mut current: Option<Serial> = None;
    for block in text.split_inclusive("-----END CERTIFICATE-----") {
        let Some(start) = block.find("-----BEGIN CERTIFICATE-----") else {
            continue;
        };
        let one = format!("{}\n", &block[start..]);
        let Some(serial) = first_serial(one.as_bytes()) else {
            continue;
        };
        let starts = anchors.is_none_or(|a| a.contains(&serial));
        match (&current, starts) {
            (Some(ca), false) => {
                if let Some(chain) = out.get_mut(ca) {
                    chain.extend_from_slice(one.as_bytes());
                }
            }
            _ => {
                out.insert(serial.clone(), one.into_bytes());
                current = Some(serial);
            }
        }
    }
    out
}

/// Whether `secret_or_cert`'s issuer annotations (cert-manager's, on an issued Secret) name
/// `wanted`.
fn issued_by(
    annotations_of: Option<&BTreeMap<String, String>>,
    wanted: &certmanager::ObjectReference,
) -> bool {
    let Some(a) = annotations_of else {
        return false;
    };
    let Some(name) = a.get(annotations::ISSUER_NAME) else {
        return false;
    };
    let issuer = certmanager::ObjectReference {
        name: name.clone(),
        kind: a.get(annotations::ISSUER_KIND).cloned(),
        group: a.get(annotations::ISSUER_GROUP).cloned(),
    };
    issuer.canonical() == wanted.canonical()
}

/// Whether an issuer change has not finished: a live Certificate of an alias, or the server
/// Secret, still comes from another issuer than `spec.tls` names.
fn switching(
    db: &DbRef,
    tls_view: &TlsView<'_>,
    certificates: &BTreeMap<String, Certificate>,
    stores: &Stores,
) -> bool {
    let moved_certificate = tls_view.aliases(db.kind).into_iter().any(|a| {
        let Some(issuer) = tls_view.issuer_for(a) else {
            return false;
        };
        certificates
            .get(&tls::secret_name(&db.name, tls_view, a))
            .is_some_and(|live| {
                live.spec.issuer_ref.canonical() != issuer_reference(issuer).canonical()
            })
    });
    let server = tls::secret_name(&db.name, tls_view, alias::SERVER);
    let moved_secret = match (
        tls_view.issuer_for(alias::SERVER),
        stores.secret(&db.namespace, &server),
    ) {
        (Some(issuer), Some(secret)) => {
            secret.metadata.annotations.is_some()
                && !issued_by(
                    secret.metadata.annotations.as_ref(),
                    &issuer_reference(issuer),
                )
        }
        _ => false,
    };
    moved_certificate || moved_secret
}

/// The bundle Secret's CAs (from its annotation; None: no bundle) and its uid when it is the
/// database's (Err: a Secret of that name that is not).
fn bundle_state(
    db: &DbRef,
    bundle_meta: Option<&PartialObjectMeta<Secret>>,
) -> (Option<Vec<Serial>>, Result<Option<String>, String>) {
    let bundle_name = names::ca_bundle(&db.name);
    let bundle_uid = match bundle_meta {
        None => Ok(None),
        Some(m) if db.controls(m.metadata.owner_references.as_deref().unwrap_or_default()) => {
            Ok(m.metadata.uid.clone())
        }
        Some(_) => Err(format!(
            "Secret {bundle_name} exists and does not belong to this database; it is left untouched. Remove it so that the CA bundle can be written"
        )),
    };
    let bundle = bundle_meta.map(|m| {
        m.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(TRUSTED_CAS))
            .map(|list| {
                list.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    });

    (bundle, bundle_uid)
}

pub async fn observe(
    ctx: &Context,
    stores: &Stores,
    db: &DbRef,
    tls_view: &TlsView<'_>,
    certificates: &BTreeMap<String, Certificate>,
    issuer_ready: bool,
) -> Result<Observed, TrustError> {
    let ns = db.namespace.as_str();
    let server_secret = tls::secret_name(&db.name, tls_view, alias::SERVER);
    let current = ctx
        .serving
        .current_certificate(&ctx.client, stores, db, &server_secret)
        .await?;
    let server_ca = current.map(|c| c.ca_pem.to_vec()).unwrap_or_default();
    let current_serial = first_serial(&server_ca);
    let mut pems = BTreeMap::new();
    if let Some(serial) = &current_serial {
        pems.insert(serial.clone(), server_ca.clone());
    }

    let cached_bundle = stores.secret(ns, &names::ca_bundle(&db.name));
    let (mut bundle, mut bundle_uid) = bundle_state(db, cached_bundle.as_ref());
    let bundle_version = cached_bundle
        .as_ref()
        .and_then(|m| m.metadata.resource_version.clone());
    let mut retired_in_bundle = cached_bundle
        .and_then(|m| m.metadata.annotations)
        .and_then(|a| a.get(RETIRED_CA).cloned());
    if bundle_uid.is_ok()
        && let Some(written) = ctx.bundles.behind(&db.uid, bundle_version.as_deref())
    {
        bundle = Some(written.cas);
        bundle_uid = Ok(Some(written.uid));
        retired_in_bundle = written.retired;
    }

    let switching = switching(db, tls_view, certificates, stores);
    let probe_name = names::ca_probe(&db.name);
    let wanted = tls_view.issuer_for(alias::SERVER).map(issuer_reference);
    let probe_meta = stores.secret(ns, &probe_name);
    let probe_issued = match (&probe_meta, &wanted) {
        (Some(m), Some(w)) => issued_by(m.metadata.annotations.as_ref(), w),
        _ => false,
    };
    let probe = if switching && probe_issued {
        read_key_pair(ctx, ns, &probe_name).await?
    } else {
        None
    };
    let probe_state = match (&probe, switching && probe_issued) {
        (Some(p), _) => {
            pems.insert(p.ca_serial.clone(), p.ca_pem.clone());
            Probe::Issued(p.ca_serial.clone())
        }
        (None, true) => Probe::NoCa,
        (None, false) => Probe::NotIssued,
    };
    let pods_trust =
        ctx.serving
            .pods_trust(stores, db, probe.as_ref().map(|p| p.ca_serial.as_str()));
    Ok(Observed {
        facts: TrustFacts {
            current: current_serial,
            bundle,
            switching,
            issuer_ready,
            probe: probe_state,
            probe_exists: stores.certificate(ns, &probe_name).is_some(),
            pods_trust,
            serving_current: false,
        },
        pems,
        probe,
        server_ca,
        bundle_uid,
        retired_in_bundle,
        bundle_version,
    })
}

/// A TLS Secret's key pair and CA (the probe's, or the client certificate's); None when it has
/// no `ca.crt` (or no certificate yet).
async fn read_key_pair(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Option<ProbeCertificate>, TrustError> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|source| TrustError::Read {
            name: format!("{ns}/{name}"),
            source,
        })?;
    let data = secret.and_then(|s| s.data).unwrap_or_default();
    let field = |key: &str| data.get(key).map(|v| v.0.clone()).filter(|v| !v.is_empty());
    let (Some(ca_pem), Some(cert_pem), Some(key_pem)) =
        (field(CA_CRT), field(TLS_CRT), field(TLS_KEY))
    else {
        return Ok(None);
    };
    Ok(first_serial(&ca_pem).map(|ca_serial| ProbeCertificate {
        ca_serial,
        ca_pem,
        identity: ClientIdentity { cert_pem, key_pem },
    }))
}

/// The message of `CertificatesReady` while the Certificates are held on their issuer.
pub fn hold_message(hold: &Hold, db: &DbRef, tls_view: &TlsView<'_>) -> String {
    let issuer = tls_view
        .issuer_for(alias::SERVER)
        .map(|i| crate::plan::IssuerKey::of(i).display(&db.namespace))
        .unwrap_or_default();
    let bundle = names::ca_bundle(&db.name);
    match hold {
        Hold::LearningCa => format!(
            "Re-issuing from {issuer} once every pod trusts its CA: waiting for Certificate {} to learn it",
            names::ca_probe(&db.name)
        ),
        Hold::PodsTrust(p) => format!(
            "Re-issuing from {issuer} once every pod trusts its CA (Secret {bundle} holds the old and the new CA): {} of {} pods do",
            p.trusting, p.pods
        ),
    }
}

/// The probe Certificate: a client certificate from the new issuer.
fn probe_certificate(db: &DbRef, tls_view: &TlsView<'_>) -> Option<Certificate> {
    let issuer = tls_view.issuer_for(alias::SERVER)?;
    let name = names::ca_probe(&db.name);
    let db_labels = labels::for_database(db.kind, &db.name);
    Some(Certificate {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(db.namespace.clone()),
            labels: Some(db_labels.clone()),
            owner_references: Some(vec![db.owner_reference()]),
            ..ObjectMeta::default()
        },
        spec: certmanager::CertificateSpec {
            secret_name: name.clone(),
            issuer_ref: issuer_reference(issuer),
            secret_template: Some(certmanager::SecretTemplate {
                labels: Some(db_labels),
                annotations: None,
            }),
            common_name: Some(name),
            usages: Some(
                [
                    certmanager::usages::DIGITAL_SIGNATURE,
                    certmanager::usages::KEY_ENCIPHERMENT,
                    certmanager::usages::CLIENT_AUTH,
                ]
                .into_iter()
                .map(String::from)
                .collect(),
            ),
            ..certmanager::CertificateSpec::default()
        },
        status: None,
    })
}

/// Writes what the plan decided and asks the pods when it says so.
/// The database the trust step writes for.
pub struct Target<'a> {
    pub db: &'a DbRef,
    pub tls_view: &'a TlsView<'a>,
    pub auth_secret: &'a str,
    /// The database, for Events.
    pub regarding: &'a ObjectReference,
}

pub async fn apply(
    ctx: &Context,
    stores: &Stores,
    target: &Target<'_>,
    observed: &Observed,
    plan: &TrustPlan,
) -> Result<bool, TrustError> {
    let Target {
        db,
        tls_view,
        auth_secret,
        regarding,
    } = *target;
    let retired = retired_identity(ctx, db, observed).await?;
    apply_bundle(ctx, db, regarding, observed, plan, retired.as_ref()).await?;
    apply_probe(ctx, db, tls_view, plan.probe).await?;
    let client_secret = tls::secret_name(&db.name, tls_view, alias::CLIENT);
    // The servers are verified against the server Secret's CA and, during a change, the new one.
    let admin = AdminLogin {
        auth_secret,
        client_secret: &client_secret,
        cas: std::iter::once(observed.server_ca.clone())
            .chain(observed.probe.as_ref().map(|p| p.ca_pem.clone()))
            .collect(),
    };
    if plan.check_pods
        && let Some(probe) = &observed.probe
    {
        keep_retired(ctx, db, observed, plan, &client_secret).await?;
        ctx.serving
            .check_trust(&ctx.client, stores, db, &admin, probe)
            .await;
    }
    let facts = &observed.facts;
    // The change is over and the CA file holds the current CA only: no pod may still trust
    // the retired one from memory.
    let narrowed = !facts.switching
        && plan.bundle.is_none()
        && facts.current.is_some()
        && facts
            .bundle
            .as_ref()
            .is_some_and(|b| b.len() == 1 && b.first() == facts.current.as_ref());
    let retired = retired.map(|(serial, _)| serial);
    if narrowed && retired.is_some() && retired != facts.current {
        let done = ctx
            .serving
            .check_distrust(&ctx.client, stores, db, &admin)
            .await;
        if done {
            forget_retired(ctx, db, observed).await?;
        }
        return Ok(!done);
    }
    Ok(plan.hold.is_some())
}

/// Writes the CAs the plan wants in the servers' CA file, with an Event when they change.
async fn apply_bundle(
    ctx: &Context,
    db: &DbRef,
    regarding: &ObjectReference,
    observed: &Observed,
    plan: &TrustPlan,
    retired: Option<&(Serial, ClientIdentity)>,
) -> Result<(), TrustError> {
    let (Some(serials), Ok(uid)) = (&plan.bundle, &observed.bundle_uid) else {
        return Ok(());
    };
    let kept = write_bundle(ctx, db, observed, serials, uid.as_deref(), retired).await?;
    if uid.is_some() && !kept.is_empty() {
        let note = format!(
            "The servers' CA file (Secret {}) now holds {} CA(s): serial {}",
            names::ca_bundle(&db.name),
            kept.len(),
            kept.join(", ")
        );
        events::publish(
            ctx.status.recorder(),
            regarding,
            false,
            Reason::CaBundleUpdated.as_str(),
            crate::context::ACTION,
            &note,
        )
        .await;
    }
    Ok(())
}

/// Creates or deletes the CA probe Certificate of an issuer change.
async fn apply_probe(
    ctx: &Context,
    db: &DbRef,
    tls_view: &TlsView<'_>,
    action: ProbeAction,
) -> Result<(), TrustError> {
    let ns = db.namespace.as_str();
    match action {
        ProbeAction::Create => {
            let Some(cert) = probe_certificate(db, tls_view) else {
                return Ok(());
            };
            let certificates: Api<Certificate> = Api::namespaced(ctx.client.clone(), ns);
            let probe_name = names::ca_probe(&db.name);
            match ssa::create(&certificates, &probe_name, OPS_MANAGER_MANAGER, &cert).await {
                Ok(_) => Ok(()),
                Err(e) if is_stale(&e) => Ok(()),
                Err(source) => Err(TrustError::Write {
                    what: format!("Certificate {ns}/{probe_name}"),
                    source,
                }),
            }
        }
        ProbeAction::Delete => delete_probe(ctx, ns, &db.name).await,
        ProbeAction::None => Ok(()),
    }
}

/// Remembers the old CA's client identity and keeps it in the bundle Secret until it holds it
/// (a failed write is retried), so that a restarted ops-manager can still check every pod
/// forgot the old CA.
async fn keep_retired(
    ctx: &Context,
    db: &DbRef,
    observed: &Observed,
    plan: &TrustPlan,
    client_secret: &str,
) -> Result<(), TrustError> {
    let facts = &observed.facts;
    remember_retired(ctx, db, client_secret, facts.current.as_deref()).await?;
    if let (Some(remembered), Ok(Some(uid))) = (ctx.serving.retired(db), &observed.bundle_uid)
        && observed.retired_in_bundle.as_ref() != Some(&remembered.0)
    {
        let serials = plan.bundle.clone().or_else(|| facts.bundle.clone());
        write_bundle(
            ctx,
            db,
            observed,
            &serials.unwrap_or_default(),
            Some(uid),
            Some(&remembered),
        )
        .await?;
    }
    Ok(())
}

/// The change is over: the retired client certificate leaves the bundle Secret.
async fn forget_retired(ctx: &Context, db: &DbRef, observed: &Observed) -> Result<(), TrustError> {
    let facts = &observed.facts;
    if observed.retired_in_bundle.is_none() {
        return Ok(());
    }
    let (Some(current), Ok(Some(uid))) = (&facts.current, &observed.bundle_uid) else {
        return Ok(());
    };
    write_bundle(
        ctx,
        db,
        observed,
        std::slice::from_ref(current),
        Some(uid),
        None,
    )
    .await?;
    Ok(())
}

/// The bundle Secret as stored (the cache keeps its metadata only).
async fn live_bundle(ctx: &Context, db: &DbRef) -> Result<Option<Secret>, TrustError> {
    let ns = db.namespace.as_str();
    let name = names::ca_bundle(&db.name);
    Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(&name)
        .await
        .map_err(|source| TrustError::Read {
            name: format!("{ns}/{name}"),
            source,
        })
}

/// The retired client certificate of an issuer change: remembered, or (after a restart) read
/// back from the bundle Secret.
async fn retired_identity(
    ctx: &Context,
    db: &DbRef,
    observed: &Observed,
) -> Result<Option<(Serial, ClientIdentity)>, TrustError> {
    if let Some(retired) = ctx.serving.retired(db) {
        return Ok(Some(retired));
    }
    let Some(serial) = &observed.retired_in_bundle else {
        return Ok(None);
    };
    let data = live_bundle(ctx, db)
        .await?
        .and_then(|s| s.data)
        .unwrap_or_default();
    let (Some(cert), Some(key)) = (data.get(RETIRED_CERT), data.get(RETIRED_KEY)) else {
        return Ok(None);
    };
    let identity = ClientIdentity {
        cert_pem: cert.0.clone(),
        key_pem: key.0.clone(),
    };
    ctx.serving.remember_retired(db, serial, identity.clone());
    Ok(Some((serial.clone(), identity)))
}

/// Keeps the client Secret's key pair while it still comes from the CA being replaced.
async fn remember_retired(
    ctx: &Context,
    db: &DbRef,
    client_secret: &str,
    current: Option<&str>,
) -> Result<(), TrustError> {
    let Some(current) = current else {
        return Ok(());
    };
    if ctx.serving.retired_ca(db).as_deref() == Some(current) {
        return Ok(());
    }
    if let Some(pair) = read_key_pair(ctx, &db.namespace, client_secret).await?
        && pair.ca_serial == current
    {
        ctx.serving.remember_retired(db, current, pair.identity);
    }
    Ok(())
}

/// Deletes the probe Certificate and its Secret (nobody else uses either).
pub async fn delete_probe(ctx: &Context, ns: &str, db: &str) -> Result<(), TrustError> {
    let name = names::ca_probe(db);
    let certificates: Api<Certificate> = Api::namespaced(ctx.client.clone(), ns);
    delete_certificate(&certificates, &name).await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    match secrets.delete(&name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_stale(&e) => Ok(()),
        Err(source) => Err(TrustError::Write {
            what: format!("Secret {ns}/{name}"),
            source,
        }),
    }
}

async fn write_bundle(
    ctx: &Context,
    db: &DbRef,
    observed: &Observed,
    serials: &[Serial],
    uid: Option<&str>,
    retired: Option<&(Serial, ClientIdentity)>,
) -> Result<Vec<Serial>, TrustError> {
    let ns = db.namespace.as_str();
    let name = names::ca_bundle(&db.name);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut pems = observed.pems.clone();
    if serials.iter().any(|s| !pems.contains_key(s)) {
        // A CA only the live bundle still holds (the old one, during a change).
        if let Some(ca) = live_bundle(ctx, db)
            .await?
            .and_then(|s| s.data)
            .and_then(|d| d.get(CA_CRT).cloned())
        {
            for (serial, pem) in split_pems(&ca.0, observed.facts.bundle.as_deref()) {
                pems.entry(serial).or_insert(pem);
            }
        }
    }
    let kept: Vec<&Serial> = serials.iter().filter(|s| pems.contains_key(*s)).collect();
    let ca: Vec<u8> = kept.iter().flat_map(|s| pems[*s].clone()).collect();
    let mut annotations = BTreeMap::from([(
        TRUSTED_CAS.to_string(),
        kept.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
    )]);
    let mut data = BTreeMap::from([(CA_CRT.to_string(), ByteString(ca))]);
    if let Some((serial, identity)) = retired {
        annotations.insert(RETIRED_CA.to_string(), serial.clone());
        data.insert(RETIRED_CERT.into(), ByteString(identity.cert_pem.clone()));
        data.insert(RETIRED_KEY.into(), ByteString(identity.key_pem.clone()));
    }
    let body = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_string()),
            labels: Some(labels::for_database(db.kind, &db.name)),
            annotations: Some(annotations),
            owner_references: Some(vec![db.owner_reference()]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    };
    let mut value = serde_json::to_value(&body).map_err(|e| TrustError::Write {
        what: format!("Secret {ns}/{name}"),
        source: kube::Error::SerdeError(e),
    })?;
    if let Some(o) = value.as_object_mut() {
        o.insert("apiVersion".into(), "v1".into());
        o.insert("kind".into(), "Secret".into());
    }
    let written = match uid {
        Some(uid) => ssa::update(&secrets, &name, OPS_MANAGER_MANAGER, &value, uid).await,
        None => ssa::create(&secrets, &name, OPS_MANAGER_MANAGER, &value).await,
    };
    match written {
        Ok(written) => {
            tracing::info!(db = %db.display(), cas = ?kept, "wrote the CA bundle");
            let cas: Vec<Serial> = kept.into_iter().cloned().collect();
            if let Some(uid) = written.metadata.uid {
                let memo = WrittenBundle {
                    cas: cas.clone(),
                    uid,
                    retired: retired.map(|(serial, _)| serial.clone()),
                };
                ctx.bundles
                    .record(&db.uid, observed.bundle_version.as_deref(), memo);
            }
            Ok(cas)
        }
        Err(e) if is_stale(&e) => Ok(Vec::new()),
        Err(source) => Err(TrustError::Write {
            what: format!("Secret {ns}/{name}"),
            source,
        }),
    }
}

/// Decides from what was observed, with whether every pod serves the current certificate.
pub fn decide(observed: &Observed, serving_current: bool) -> TrustPlan {
    let facts = TrustFacts {
        serving_current,
        ..observed.facts.clone()
    };
    plan::plan(&facts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        rcgen::CertificateParams::new(vec!["ca".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    }

    #[test]
    fn a_bundle_splits_into_its_cas_by_serial() {
        let (one, two) = (ca_pem(), ca_pem());
        let bundle = format!("{one}{two}");
        let split = split_pems(bundle.as_bytes(), None);
        let (s1, s2) = (
            first_serial(one.as_bytes()).unwrap(),
            first_serial(two.as_bytes()).unwrap(),
        );
        assert_ne!(s1, s2);
        assert_eq!(split.len(), 2);
        assert_eq!(first_serial(&split[&s1]), Some(s1.clone()));
        assert_eq!(first_serial(&split[&s2]), Some(s2));
        // What is written back is whole PEM blocks, in the order asked.
        assert!(String::from_utf8_lossy(&split[&s1]).starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(split_pems(b"not a certificate", None).is_empty());
    }

    #[test]
    fn a_ca_keeps_its_chain_when_the_bundle_is_read_back() {
        // The old CA's ca.crt is a chain (intermediate, then root); the new one is one root.
        let (intermediate, root, new) = (ca_pem(), ca_pem(), ca_pem());
        let bundle = format!("{intermediate}{root}{new}");
        let (old_serial, new_serial) = (
            first_serial(intermediate.as_bytes()).unwrap(),
            first_serial(new.as_bytes()).unwrap(),
        );
        let anchors = [old_serial.clone(), new_serial.clone()];
        let split = split_pems(bundle.as_bytes(), Some(&anchors));
        assert_eq!(split.len(), 2);
        assert_eq!(
            String::from_utf8_lossy(&split[&old_serial]),
            format!("{intermediate}{root}"),
            "the chain stays whole"
        );
        assert_eq!(String::from_utf8_lossy(&split[&new_serial]), new);
    }

    #[test]
    fn an_issued_secret_names_its_issuer_in_cert_managers_annotations() {
        let wanted = certmanager::ObjectReference {
            name: "two".into(),
            kind: Some("Issuer".into()),
            group: Some("cert-manager.io".into()),
        };
        let annotated = |name: &str, kind: &str| {
            BTreeMap::from([
                (annotations::ISSUER_NAME.to_string(), name.to_string()),
                (annotations::ISSUER_KIND.to_string(), kind.to_string()),
                (
                    annotations::ISSUER_GROUP.to_string(),
                    "cert-manager.io".to_string(),
                ),
            ])
        };
        assert!(issued_by(Some(&annotated("two", "Issuer")), &wanted));
        assert!(!issued_by(Some(&annotated("one", "Issuer")), &wanted));
        assert!(!issued_by(
            Some(&annotated("two", "ClusterIssuer")),
            &wanted
        ));
        assert!(!issued_by(None, &wanted));
    }
}
