//! The decision step: from what is observed in the cluster, which Certificates to apply or
//! delete, which TLS Secrets to adopt, and which conditions to report. Pure, so that every
//! branch is unit-tested without an API server.

use std::collections::BTreeMap;

use dbtls_contract::api::{IssuerRef, TlsView};
use dbtls_contract::certmanager::{self, Certificate};
use dbtls_contract::conditions::{ConditionStatus, ConditionType, Reason};
use dbtls_contract::tls::{self, IssuerType};
use dbtls_runtime::conditions::Desired;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::certificate;
use crate::db::{DbRef, controller_of};
use dbtls_runtime::diff::is_subset;

/// An issuer as `spec.tls` names it: `(kind, name)`; the namespace is the database's for an Issuer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IssuerKey {
    pub kind: String,
    pub name: String,
}

impl IssuerKey {
    pub fn of(issuer: &IssuerRef) -> Self {
        Self {
            kind: issuer.kind.clone(),
            name: issuer.name.clone(),
        }
    }
    pub fn is_cluster_issuer(&self) -> bool {
        self.kind == certmanager::CLUSTER_ISSUER_KIND
    }
    /// `Issuer demo/ca` or `ClusterIssuer ca`.
    pub fn display(&self, namespace: &str) -> String {
        if self.is_cluster_issuer() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {namespace}/{}", self.kind, self.name)
        }
    }
}

/// What the cluster says about one issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssuerState {
    Missing,
    Found {
        /// ACME issuers give no client certificates to ProxySQL (KubeDB's defaulting).
        acme: bool,
        ready: bool,
        /// The issuer's own Ready reason and message, for IssuerNotReady.
        message: String,
    },
}

/// The metadata of an existing Secret that a certificate would be written to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecretFacts {
    pub name: String,
    /// With the uid, a precondition for applies: kube-apiserver does not check resourceVersion
    /// when an apply would create the object, but a uid makes it fail instead of creating.
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub owners: Vec<OwnerReference>,
    /// cert-manager's `cert-manager.io/certificate-name` annotation.
    pub certificate_name: Option<String>,
}

/// Everything read from the cluster for one database.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub issuers: BTreeMap<IssuerKey, IssuerState>,
    /// Objects the provisioner creates that do not exist yet (`Secret db-auth`, `Service db`).
    pub missing_objects: Vec<String>,
    /// Live Certificates: those labelled for the database, and any with a wanted name.
    pub certificates: BTreeMap<String, Certificate>,
    /// Existing Secrets with a wanted name.
    pub secrets: BTreeMap<String, SecretFacts>,
    /// An issuer change waits for the pods to trust the new CA (why, for the condition): every
    /// live Certificate keeps its issuer for now.
    pub hold: Option<String>,
}

impl Observed {
    /// Whether the plan waits for the provisioner's objects (it creates no Certificate then).
    pub fn waiting_for_objects(&self) -> bool {
        !self.missing_objects.is_empty()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Create,
    Update,
}

/// One Certificate to apply.
#[derive(Clone, Debug)]
pub struct Apply {
    pub alias: &'static str,
    pub change: Change,
    pub certificate: Certificate,
    /// The uid of the live Certificate an update goes over.
    pub live_uid: Option<String>,
}

/// A TLS Secret to take ownership of (SSA with `resource_version` as precondition).
#[derive(Clone, Debug, PartialEq)]
pub struct Adopt {
    pub secret: String,
    pub uid: String,
    pub resource_version: String,
    pub owner: OwnerReference,
}

/// The state of one alias, for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasReport {
    pub alias: &'static str,
    pub ready: bool,
    pub not_after: Option<String>,
    pub renewal_time: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub apply: Vec<Apply>,
    /// Names of Certificates of this database that are no longer wanted.
    pub delete: Vec<String>,
    pub adopt: Vec<Adopt>,
    pub issuer_ready: Desired,
    pub certificates_ready: Desired,
    /// Waiting on something no watch of ours reports reliably (issuer or provisioner objects
    /// missing): requeue with backoff as a fallback.
    pub waiting: bool,
    pub aliases: Vec<AliasReport>,
}

enum Outcome<'a> {
    /// Not issued for this kind and issuer (ProxySQL with an ACME issuer).
    Skipped,
    NoIssuer(IssuerKey),
    Conflict(String),
    Wanted {
        desired: Box<Certificate>,
        live: Option<&'a Certificate>,
    },
}

/// What each alias of the kind comes to, in the kind's alias order.
fn outcomes<'a>(
    db: &DbRef,
    tls_view: &TlsView<'_>,
    cluster_domain: &str,
    observed: &'a Observed,
) -> Vec<(&'static str, Outcome<'a>)> {
    let kind = db.kind;
    tls_view
        .aliases(kind)
        .into_iter()
        .map(|alias_name| {
            let Some(issuer) = tls_view.issuer_for(alias_name) else {
                // validate() reports this; nothing to issue.
                return (alias_name, Outcome::Skipped);
            };
            let key = IssuerKey::of(issuer);
            let outcome = match observed.issuers.get(&key).unwrap_or(&IssuerState::Missing) {
                IssuerState::Found { acme, .. }
                    if !tls::issued(kind, alias_name, IssuerType::of(*acme)) =>
                {
                    Outcome::Skipped
                }
                IssuerState::Missing => Outcome::NoIssuer(key),
                IssuerState::Found { .. } => {
                    let mut desired =
                        certificate::build(db, tls_view, alias_name, issuer, cluster_domain);
                    let name = desired.spec.secret_name.clone();
                    if let (Some(_), Some(live)) =
                        (&observed.hold, observed.certificates.get(&name))
                    {
                        desired.spec.issuer_ref = live.spec.issuer_ref.clone();
                    }
                    match conflict(db, &name, observed) {
                        Some(why) => Outcome::Conflict(why),
                        None => Outcome::Wanted {
                            desired: Box::new(desired),
                            live: observed.certificates.get(&name),
                        },
                    }
                }
            };
            (alias_name, outcome)
        })
        .collect()
}

/// The per-alias results gathered into writes and condition parts.
#[derive(Default)]
struct Tally {
    apply: Vec<Apply>,
    adopt: Vec<Adopt>,
    not_ready: Vec<String>,
    conflicts: Vec<String>,
    aliases: Vec<AliasReport>,
}

impl Tally {
    /// One wanted Certificate: created or updated (unless the provisioner's objects are still
    /// missing), or live and ready or not, and its Secret adopted once issued.
    fn wanted(
        &mut self,
        db: &DbRef,
        alias_name: &'static str,
        desired: &Certificate,
        live: Option<&Certificate>,
        observed: &Observed,
        waiting_for_objects: bool,
    ) -> AliasReport {
        let mut report = AliasReport {
            alias: alias_name,
            ready: false,
            not_after: live.and_then(|l| l.status.as_ref()?.not_after.clone()),
            renewal_time: live.and_then(|l| l.status.as_ref()?.renewal_time.clone()),
        };
        let name = desired.spec.secret_name.clone();
        let change = match live {
            None => Some(Change::Create),
            Some(live) if !up_to_date(db, desired, live) => Some(Change::Update),
            Some(_) => None,
        };
        match (change, live) {
            (Some(change), _) => {
                // Same words as a live Certificate without a current Ready condition, so that
                // the status is not rewritten between the two.
                self.not_ready
                    .push(format!("{alias_name} ({name}): {WAITING_FOR_ISSUANCE}"));
                if !waiting_for_objects {
                    self.apply.push(Apply {
                        alias: alias_name,
                        change,
                        certificate: desired.clone(),
                        live_uid: live.and_then(|l| l.metadata.uid.clone()),
                    });
                }
            }
            (None, Some(live)) => {
                match readiness(live) {
                    Ok(()) => report.ready = true,
                    Err(why) => self.not_ready.push(format!("{alias_name} ({name}): {why}")),
                }
                self.adopt.extend(adoption(db, &name, observed));
            }
            (None, None) => {}
        }
        report
    }
}

fn certificates_condition(
    observed: &Observed,
    tally: &Tally,
    waiting_for_objects: bool,
) -> Desired {
    let t = ConditionType::CertificatesReady;
    if waiting_for_objects {
        Desired::not(
            t,
            Reason::WaitingForDatabaseObjects,
            format!(
                "Waiting for {} (created by the provisioner) before creating Certificates",
                observed.missing_objects.join(", ")
            ),
        )
    } else if !tally.conflicts.is_empty() {
        Desired::not(
            t,
            Reason::SecretNameConflict,
            format!(
                "{}. Choose another secretName in spec.tls.certificates, or remove the other object",
                tally.conflicts.join("; ")
            ),
        )
    } else if let Some(why) = &observed.hold {
        Desired::not(t, Reason::WaitingForCaTrust, why.clone())
    } else if !tally.not_ready.is_empty() {
        Desired::not(
            t,
            Reason::CertificatesNotReady,
            format!("Certificates not ready: {}", tally.not_ready.join("; ")),
        )
    } else {
        let issued: Vec<&str> = tally.aliases.iter().map(|a| a.alias).collect();
        Desired::ok(
            t,
            Reason::CertificatesReady,
            format!("All certificates are issued: {}", issued.join(", ")),
        )
    }
}

/// The database's Certificates no alias wants any more.
fn unwanted(
    db: &DbRef,
    tls_view: &TlsView<'_>,
    outcomes: &[(&'static str, Outcome<'_>)],
    observed: &Observed,
) -> Vec<String> {
    let keep: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| !matches!(o, Outcome::Skipped))
        .map(|(a, _)| dbtls_contract::tls::secret_name(&db.name, tls_view, a))
        .collect();
    observed
        .certificates
        .iter()
        .filter(|(name, cert)| {
            // The CA probe of an issuer change is the trust step's.
            **name != dbtls_contract::names::ca_probe(&db.name)
                && !keep.contains(name)
                && db.controls(
                    cert.metadata
                        .owner_references
                        .as_deref()
                        .unwrap_or_default(),
                )
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Decides what to do for database `db` with the (already validated) `tls_view`.
pub fn plan(db: &DbRef, tls_view: &TlsView<'_>, cluster_domain: &str, observed: &Observed) -> Plan {
    let outcomes = outcomes(db, tls_view, cluster_domain, observed);
    let issuer_ready = issuer_condition(db, &outcomes, tls_view, observed);
    let waiting_for_objects = observed.waiting_for_objects();
    let mut tally = Tally::default();
    for (alias_name, outcome) in &outcomes {
        let report = match outcome {
            Outcome::Skipped => continue,
            Outcome::NoIssuer(key) => {
                tally.not_ready.push(format!(
                    "{alias_name}: no Certificate until {} exists",
                    key.display(&db.namespace)
                ));
                AliasReport {
                    alias: alias_name,
                    ready: false,
                    not_after: None,
                    renewal_time: None,
                }
            }
            Outcome::Conflict(why) => {
                tally.conflicts.push(format!("{alias_name}: {why}"));
                AliasReport {
                    alias: alias_name,
                    ready: false,
                    not_after: None,
                    renewal_time: None,
                }
            }
            Outcome::Wanted { desired, live } => tally.wanted(
                db,
                alias_name,
                desired,
                *live,
                observed,
                waiting_for_objects,
            ),
        };
        tally.aliases.push(report);
    }
    let certificates_ready = certificates_condition(observed, &tally, waiting_for_objects);
    let waiting = waiting_for_objects
        || outcomes
            .iter()
            .any(|(_, o)| matches!(o, Outcome::NoIssuer(_)));
    Plan {
        delete: unwanted(db, tls_view, &outcomes, observed),
        apply: tally.apply,
        adopt: tally.adopt,
        issuer_ready,
        certificates_ready,
        waiting,
        aliases: tally.aliases,
    }
}

/// Why the Certificate/Secret `name` cannot be ours, if it cannot.
fn conflict(db: &DbRef, name: &str, observed: &Observed) -> Option<String> {
    if let Some(cert) = observed.certificates.get(name) {
        let owners = cert
            .metadata
            .owner_references
            .as_deref()
            .unwrap_or_default();
        if !db.controls(owners) {
            return Some(match controller_of(owners) {
                Some(o) => format!("Certificate {name} belongs to {} {}", o.kind, o.name),
                None => format!("Certificate {name} exists and does not belong to this database"),
            });
        }
    }
    let secret = observed.secrets.get(name)?;
    if secret.certificate_name.as_deref() != Some(name) {
        return Some(format!(
            "Secret {name} exists and was not issued by cert-manager for Certificate {name}; it is left untouched"
        ));
    }
    match controller_of(&secret.owners) {
        Some(o) if o.uid != db.uid && o.kind != "Certificate" => {
            Some(format!("Secret {name} belongs to {} {}", o.kind, o.name))
        }
        _ => None,
    }
}

/// The ownerReference to add to Secret `name`, when it was issued for our Certificate and does
/// not name the database yet.
fn adoption(db: &DbRef, name: &str, observed: &Observed) -> Option<Adopt> {
    let secret = observed.secrets.get(name)?;
    if secret.certificate_name.as_deref() != Some(name)
        || secret.owners.iter().any(|o| o.uid == db.uid)
    {
        return None;
    }
    let mut owner = db.owner_reference();
    // cert-manager's --enable-certificate-owner-ref makes the Certificate the controller; a
    // Secret can have only one.
    if controller_of(&secret.owners).is_some() {
        owner.controller = Some(false);
    }
    Some(Adopt {
        secret: name.to_string(),
        uid: secret.uid.clone()?,
        resource_version: secret.resource_version.clone()?,
        owner,
    })
}

/// Whether the live Certificate already has every field, label and the owner we set.
fn up_to_date(db: &DbRef, desired: &Certificate, live: &Certificate) -> bool {
    let (Ok(want), Ok(have)) = (
        serde_json::to_value(&desired.spec),
        serde_json::to_value(&live.spec),
    ) else {
        return false;
    };
    let labels_match = desired
        .metadata
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| live.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v));
    is_subset(&want, &have)
        && labels_match
        && db.controls(
            live.metadata
                .owner_references
                .as_deref()
                .unwrap_or_default(),
        )
}

const WAITING_FOR_ISSUANCE: &str = "waiting for cert-manager to issue it";

/// Ok when cert-manager reports the current generation Ready, else why not.
fn readiness(live: &Certificate) -> Result<(), String> {
    let Some(ready) = live.status.as_ref().and_then(|s| s.condition("Ready")) else {
        return Err(WAITING_FOR_ISSUANCE.into());
    };
    let stale = matches!(
        (ready.observed_generation, live.metadata.generation),
        (Some(seen), Some(current)) if seen < current
    );
    if stale {
        return Err(WAITING_FOR_ISSUANCE.into());
    }
    if ready.status == ConditionStatus::True.as_str() {
        return Ok(());
    }
    Err(format!(
        "{}: {}",
        ready.reason.as_deref().unwrap_or("NotReady"),
        ready.message.as_deref().unwrap_or("")
    ))
}

fn issuer_condition(
    db: &DbRef,
    outcomes: &[(&'static str, Outcome<'_>)],
    tls_view: &TlsView<'_>,
    observed: &Observed,
) -> Desired {
    // Issuers in alias order, each with the aliases that use it.
    let mut used: Vec<(IssuerKey, Vec<&str>)> = Vec::new();
    for (alias_name, outcome) in outcomes {
        if matches!(outcome, Outcome::Skipped) {
            continue;
        }
        let Some(issuer) = tls_view.issuer_for(alias_name) else {
            continue;
        };
        let key = IssuerKey::of(issuer);
        match used.iter_mut().find(|(k, _)| *k == key) {
            Some((_, aliases)) => aliases.push(alias_name),
            None => used.push((key, vec![alias_name])),
        }
    }
    let describe = |key: &IssuerKey, aliases: &[&str]| {
        format!(
            "{} (for {})",
            key.display(&db.namespace),
            aliases.join(", ")
        )
    };
    let missing: Vec<String> = used
        .iter()
        .filter(|(k, _)| !matches!(observed.issuers.get(k), Some(IssuerState::Found { .. })))
        .map(|(k, a)| describe(k, a))
        .collect();
    if !missing.is_empty() {
        return Desired::not(
            ConditionType::IssuerReady,
            Reason::IssuerNotFound,
            format!(
                "{} not found: create it, or point spec.tls.issuerRef at an existing Issuer or ClusterIssuer",
                missing.join(", ")
            ),
        );
    }
    let not_ready: Vec<String> = used
        .iter()
        .filter_map(|(k, a)| match observed.issuers.get(k) {
            Some(IssuerState::Found {
                ready: false,
                message,
                ..
            }) => Some(format!("{} is not ready: {message}", describe(k, a))),
            _ => None,
        })
        .collect();
    if !not_ready.is_empty() {
        return Desired::not(
            ConditionType::IssuerReady,
            Reason::IssuerNotReady,
            not_ready.join("; "),
        );
    }
    let ready: Vec<String> = used.iter().map(|(k, a)| describe(k, a)).collect();
    Desired::ok(
        ConditionType::IssuerReady,
        Reason::IssuerReady,
        format!("{} ready", ready.join(", ")),
    )
}

#[cfg(test)]
mod tests;
