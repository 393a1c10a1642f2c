//! The decision step: from the database's facts and what exists, the writes to make (in order),
//! the deletes, the status to report if they go through, and when to look again. Pure, so that
//! every decision is a table test without an API server.
use dbtls_contract::monitoring::ServiceMonitor;
use dbtls_contract::tls::IssuerType;
use dbtls_contract::{DbKind, names};
use dbtls_runtime::children::controlled_by;
use dbtls_runtime::diff;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::desired::{self, exporter, services};
use crate::facts::DbFacts;
use crate::observe::Observed;
use crate::status::{Report, WorkloadReport};
use crate::tls_secrets::{self, TlsSecretsState};
use crate::validate::{self, Invalid};
use crate::workload::{Workload, WorkloadChoice, immutable_change};

/// One write, with what the cache holds under its name (the apply reads once more when the
/// cache has nothing, to tell "absent" from "someone else's").
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// The auth Secret `<db>-auth`, created once with a fresh password, never rewritten.
    AuthSecret,
    Service {
        desired: Box<Service>,
        cached: Option<Box<Service>>,
    },
    ConfigSecret {
        desired: Box<Secret>,
        cached: Option<Box<Secret>>,
    },
    Workload {
        desired: Box<Workload>,
        cached: Option<Box<Workload>>,
    },
    ServiceMonitor {
        desired: Box<ServiceMonitor>,
        cached: Option<Box<ServiceMonitor>>,
    },
}

/// An object of the database's to delete (only if it still controls it).
#[derive(Clone, Debug, PartialEq)]
pub enum Delete {
    Service(Box<Service>),
    Secret(Box<Secret>),
    Workload(Box<Workload>),
    ServiceMonitor(Box<ServiceMonitor>),
}

/// When to look at the database again, apart from watch events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// Everything that can change is watched: only the hourly fallback.
    Resync,
    /// Waiting on something fixed outside the spec, which no watch of ours sees: backoff from 30 s.
    Wait,
    /// Only a spec edit or a deleted workload fixes it: backoff from 5 min.
    Immutable,
    /// A step that may start after this long (nothing watched announces it).
    After(std::time::Duration),
}

/// What the writes found that the plan could not know.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `<Kind> <name>` of an object of the database's names that someone else made.
    pub conflict: Option<String>,
    /// The API server refused the workload update (422): its message.
    pub refused: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub writes: Vec<Write>,
    pub deletes: Vec<Delete>,
    /// The status if every write goes through.
    pub report: Report,
    pub requeue: Requeue,
}

fn controls(meta: &ObjectMeta, facts: &DbFacts<'_>) -> bool {
    let uid = facts
        .owner
        .as_ref()
        .map(|o| o.uid.as_str())
        .unwrap_or_default();
    controlled_by(meta.owner_references.as_deref().unwrap_or_default(), uid)
}

/// The workloads' report when nothing is (re)written: what exists, else why it does not.
pub fn live_report(
    facts: &DbFacts<'_>,
    choice: &WorkloadChoice,
    observed: &Observed,
    why: String,
) -> WorkloadReport {
    let lives: Vec<&Workload> = observed.lives().flatten().collect();
    if lives.is_empty() {
        return WorkloadReport::NotCreated(why);
    }
    WorkloadReport::Exists {
        what: format!("{} ({})", describe_all(lives.iter().copied()), choice.why),
        ready: lives.iter().map(|l| l.ready_replicas()).sum(),
        replicas: facts.replicas(),
        pods: pod_problems(observed),
        rolling: lives.iter().find_map(|l| l.rollout()),
    }
}

/// `PetSet a, PetSet b`.
fn describe_all<'w>(workloads: impl IntoIterator<Item = &'w Workload>) -> String {
    workloads
        .into_iter()
        .map(Workload::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `<kind> <name>[, <name>]` of the workloads the database should run.
fn planned_workloads(facts: &DbFacts<'_>, choice: &WorkloadChoice) -> String {
    let names: Vec<&str> = facts.parts.iter().map(|p| p.name.as_str()).collect();
    format!("{} {}", choice.api.kind(), names.join(", "))
}

/// Why the workloads' pods are not ready (kubelet's words).
fn pod_problems(observed: &Observed) -> Vec<String> {
    crate::pods::problems(&observed.pods)
}

/// The plan of a database that cannot be provisioned as it is.
fn blocked(
    facts: &DbFacts<'_>,
    choice: &WorkloadChoice,
    observed: &Observed,
    invalid: Invalid,
) -> Plan {
    let requeue = if invalid.fixed_outside_spec() {
        Requeue::Wait
    } else {
        // A spec edit triggers the next reconcile.
        Requeue::Resync
    };
    let why = format!("not created: {invalid}");
    Plan {
        writes: Vec::new(),
        deletes: Vec::new(),
        report: Report {
            invalid: Some(invalid),
            ..Report::new(live_report(facts, choice, observed, why))
        },
        requeue,
    }
}

/// The database's runtime objects it controls (what Halt and deletion remove).
pub fn runtime_objects(facts: &DbFacts<'_>, observed: &Observed) -> Vec<Delete> {
    let workload = observed
        .lives()
        .flatten()
        .chain(&observed.strays)
        .filter(|w| controls(w.meta(), facts))
        .map(|w| Delete::Workload(Box::new(w.clone())));
    let services = observed
        .services
        .iter()
        .filter(|s| controls(&s.metadata, facts))
        .map(|s| Delete::Service(Box::new(s.clone())));
    let config = observed
        .config_secret
        .iter()
        .filter(|s| controls(&s.metadata, facts))
        .map(|s| Delete::Secret(Box::new(s.clone())));
    let monitor = observed
        .service_monitor
        .iter()
        .filter(|m| controls(&m.metadata, facts))
        .map(|m| Delete::ServiceMonitor(Box::new(m.clone())));
    workload
        .chain(services)
        .chain(config)
        .chain(monitor)
        .collect()
}

/// The spec and the Secrets it names, checked; the image to run on success.
fn validate_inputs(facts: &DbFacts<'_>, observed: &Observed) -> Result<String, Invalid> {
    let image = validate::spec(facts)?;
    if let Some(name) = facts.user_auth_secret() {
        validate::user_auth_secret(name, observed.user_auth_secret.as_ref())?;
    }
    if let Some(name) = facts.extras.license_secret {
        validate::license_secret(name, observed.license_secret.as_ref())?;
    }
    Ok(image)
}

/// The Services the database has: primary, governing, and the exporter's stats Service while
/// `spec.monitor` runs an exporter.
fn desired_services(facts: &DbFacts<'_>) -> Vec<Service> {
    let stats = exporter::monitor(facts.common.monitor, facts.kind)
        .ok()
        .flatten()
        .map(|monitor| exporter::stats_service(facts, &monitor));
    [services::primary(facts), services::governing(facts)]
        .into_iter()
        .chain(stats)
        .collect()
}

/// The stats Service once `spec.monitor` no longer asks for it (and it is the database's).
fn stale_services(facts: &DbFacts<'_>, observed: &Observed, desired: &[Service]) -> Vec<Delete> {
    observed
        .services
        .iter()
        .filter(|s| !desired.iter().any(|d| d.metadata.name == s.metadata.name))
        .filter(|s| controls(&s.metadata, facts))
        .map(|s| Delete::Service(Box::new(s.clone())))
        .collect()
}

/// The ServiceMonitor `agent: prometheus.io/operator` asks for: written while it differs,
/// deleted (if the database's) once not asked for; nothing where ServiceMonitors are not served.
fn service_monitor_step(
    facts: &DbFacts<'_>,
    observed: &Observed,
) -> (Option<Write>, Option<Delete>) {
    let desired = exporter::monitor(facts.common.monitor, facts.kind)
        .ok()
        .flatten()
        .filter(|m| m.agent == exporter::Agent::PrometheusOperator)
        .filter(|_| observed.service_monitors_served)
        .map(|monitor| exporter::service_monitor(facts, &monitor));
    let cached = observed.service_monitor.as_ref();
    match desired {
        Some(desired) => {
            let up_to_date = cached
                .is_some_and(|c| controls(&c.metadata, facts) && diff::up_to_date(&desired, c));
            let write = (!up_to_date).then(|| Write::ServiceMonitor {
                desired: Box::new(desired),
                cached: cached.cloned().map(Box::new),
            });
            (write, None)
        }
        None => {
            let stale = cached
                .filter(|c| controls(&c.metadata, facts))
                .map(|c| Delete::ServiceMonitor(Box::new(c.clone())));
            (None, stale)
        }
    }
}

/// The auth Secret (when the database has none yet) and the Services that differ.
fn object_writes(facts: &DbFacts<'_>, observed: &Observed, desired: Vec<Service>) -> Vec<Write> {
    let mut writes = Vec::new();
    if facts.user_auth_secret().is_none() && observed.auth_secret.is_none() {
        writes.push(Write::AuthSecret);
    }
    for desired in desired {
        let name = desired.metadata.name.clone().unwrap_or_default();
        let cached = observed.service(&name);
        if cached.is_some_and(|c| controls(&c.metadata, facts) && diff::up_to_date(&desired, c)) {
            continue;
        }
        writes.push(Write::Service {
            desired: Box::new(desired),
            cached: cached.cloned().map(Box::new),
        });
    }
    writes
}

/// The config Secret's write (it differs) or delete (no longer needed, and the database's).
fn config_step(
    facts: &DbFacts<'_>,
    desired: Option<Secret>,
    cached: Option<&Secret>,
    observed: &Observed,
) -> (Option<Write>, Option<Delete>) {
    match (desired, cached) {
        (Some(desired), cached) => {
            let up_to_date = cached
                .is_some_and(|c| controls(&c.metadata, facts) && diff::up_to_date(&desired, c));
            let write = (!up_to_date).then(|| Write::ConfigSecret {
                desired: Box::new(desired),
                cached: cached.cloned().map(Box::new),
            });
            (write, None)
        }
        // Kept while the live template mounts it: a pod restarting mid-rollout needs it.
        (None, Some(stale))
            if controls(&stale.metadata, facts)
                && !observed.lives().any(|live| mounts_config(facts, live)) =>
        {
            (None, Some(Delete::Secret(Box::new(stale.clone()))))
        }
        (None, _) => (None, None),
    }
}

/// Whether the live workload's pods mount the config Secret.
fn mounts_config(facts: &DbFacts<'_>, live: Option<&Workload>) -> bool {
    let name = names::config_secret(&facts.name);
    live.and_then(Workload::pod_template)
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|volumes| {
            volumes.iter().any(|v| {
                let whole = v.secret.as_ref().and_then(|s| s.secret_name.as_deref());
                // The exporter's projected volume takes one file of it.
                let projected = v
                    .projected
                    .iter()
                    .flat_map(|p| p.sources.iter().flatten())
                    .filter_map(|source| source.secret.as_ref())
                    .map(|s| s.name.as_str());
                whole.into_iter().chain(projected).any(|n| n == name)
            })
        })
}

/// Why a ProxySQL's first workload waits for its backend, if it does (the backend's watch
/// triggers the next look). A running ProxySQL is left running whatever its backend does.
fn backend_wait(facts: &DbFacts<'_>, observed: &Observed) -> Option<String> {
    let name = facts
        .extras
        .backend
        .filter(|_| facts.kind == DbKind::ProxySQL)?;
    if observed.workload.is_some() {
        return None;
    }
    match &observed.backend {
        None => Some(format!(
            "no MySQL or PerconaXtraDB {name} in namespace {} (spec.backend.name)",
            facts.namespace
        )),
        Some(backend) => backend.wait(),
    }
}

/// Whether the TLS Secrets the database mounts are all there and usable.
fn tls_state(facts: &DbFacts<'_>, observed: &Observed) -> TlsSecretsState {
    let backend = observed.backend.as_ref().and_then(|b| b.tls.as_ref());
    if facts.tls.is_none() && backend.is_none() {
        return TlsSecretsState::NotConfigured;
    }
    let from_acme: Vec<String> = desired::tls_secret_names(facts, &observed.acme)
        .into_iter()
        .filter(|(alias, _)| observed.acme.issuer_type(alias) == IssuerType::Acme)
        .map(|(_, name)| name)
        .collect();
    tls_secrets::check_for(
        facts.kind,
        &facts.name,
        &observed.tls_secrets,
        &from_acme,
        backend,
    )
}

/// What keeps the workloads from being written whatever the TLS Secrets, with the report and
/// when to look again: a workload of the database's names that is someone else's, workloads of
/// its other layout (`spec.topology` changed), or a ProxySQL's backend that is not Ready.
fn in_the_way(
    facts: &DbFacts<'_>,
    observed: &Observed,
    choice: &WorkloadChoice,
) -> Option<(Report, Requeue)> {
    if let Some(live) = observed
        .lives()
        .flatten()
        .find(|l| !controls(l.meta(), facts))
    {
        let invalid = Invalid::NameConflict {
            what: live.describe(),
        };
        let why = format!("not created: {invalid}");
        let report = Report {
            invalid: Some(invalid),
            ..Report::new(WorkloadReport::NotCreated(why))
        };
        return Some((report, Requeue::Wait));
    }
    let strays: Vec<&Workload> = observed
        .strays
        .iter()
        .filter(|w| controls(w.meta(), facts))
        .collect();
    if !strays.is_empty() {
        let report = Report::new(WorkloadReport::TopologyChanged {
            running: describe_all(strays),
            planned: planned_workloads(facts, choice),
        });
        return Some((report, Requeue::Immutable));
    }
    let why = backend_wait(facts, observed)?;
    let why = format!(
        "{} is created once its backend is Ready: {why}",
        planned_workloads(facts, choice)
    );
    Some((
        Report::new(WorkloadReport::NotCreated(why)),
        Requeue::Resync,
    ))
}

/// Decides what one reconcile of a live (not deleted) database does.
pub fn plan(facts: &DbFacts<'_>, observed: &Observed, choice: &WorkloadChoice) -> Plan {
    let image = match validate_inputs(facts, observed) {
        Ok(image) => image,
        Err(invalid) => return blocked(facts, choice, observed, invalid),
    };
    // Halted: no workload, no Services; data and Secrets stay.
    if facts.common.halted {
        return Plan {
            writes: Vec::new(),
            deletes: runtime_objects(facts, observed),
            report: Report {
                halted: true,
                ..Report::new(WorkloadReport::Halted)
            },
            requeue: Requeue::Resync,
        };
    }
    let services = desired_services(facts);
    let mut stale = stale_services(facts, observed, &services);
    let mut writes = object_writes(facts, observed, services);
    let (monitor_write, monitor_delete) = service_monitor_step(facts, observed);
    writes.extend(monitor_write);
    stale.extend(monitor_delete);
    if let Some((report, requeue)) = in_the_way(facts, observed, choice) {
        return Plan {
            report,
            requeue,
            ..Plan::new(writes, stale)
        };
    }
    // TLS Secrets: all must exist and be usable before the workload is written.
    let tls = tls_state(facts, observed);
    if !matches!(tls, TlsSecretsState::Ready | TlsSecretsState::NotConfigured) {
        return waiting_for_tls(facts, choice, observed, tls, Plan::new(writes, stale));
    }

    let desired = desired::workload_for(facts, &image, choice.api, observed);
    let (config_write, config_delete) = config_step(
        facts,
        desired.config.clone(),
        observed.config_secret.as_ref(),
        observed,
    );
    writes.extend(config_write);
    let (report, requeue) = match desired.hold_until {
        Some(until) => held(facts, choice, observed, until),
        None => workload_step(facts, choice, &desired.workloads, observed, &mut writes),
    };
    let report = if desired.bridging {
        bridging(report)
    } else {
        report
    };
    Plan {
        writes,
        deletes: stale.into_iter().chain(config_delete).collect(),
        report: Report {
            tls: Some(tls),
            ..Report::new(report)
        },
        requeue,
    }
}

/// The plan while a TLS Secret is missing or unusable: the objects' writes, no workload write.
fn waiting_for_tls(
    facts: &DbFacts<'_>,
    choice: &WorkloadChoice,
    observed: &Observed,
    tls: TlsSecretsState,
    objects: Plan,
) -> Plan {
    let why = format!(
        "{} is created once every TLS Secret is ready",
        planned_workloads(facts, choice)
    );
    // Fixing an unusable Secret may not reach any watch of ours (it need not carry the
    // database's labels): look again with backoff.
    let requeue = match tls {
        TlsSecretsState::Invalid { .. } => Requeue::Wait,
        _ => Requeue::Resync,
    };
    Plan {
        requeue,
        report: Report {
            tls: Some(tls),
            ..Report::new(live_report(facts, choice, observed, why))
        },
        ..objects
    }
}

/// A bridge is a step of the rollout, never its end: WorkloadReady stays False through it.
fn bridging(mut report: WorkloadReport) -> WorkloadReport {
    if let WorkloadReport::Exists { rolling, .. } = &mut report {
        *rolling = Some(match rolling.take() {
            Some(step) => format!("{BRIDGING}; {step}"),
            None => BRIDGING.to_string(),
        });
    }
    report
}

/// The live workload left as it is until `until` (a Galera cluster leaving TLS, while running
/// pods pick up plaintext state transfers).
fn held(
    facts: &DbFacts<'_>,
    choice: &WorkloadChoice,
    observed: &Observed,
    until: i64,
) -> (WorkloadReport, Requeue) {
    let wait = until.saturating_sub(observed.clock.now).max(1);
    let why = format!(
        "state transfers switched to plaintext; the first node restarts in {wait}s, once every running pod has read that (--secret-propagation)"
    );
    let mut report = live_report(facts, choice, observed, why.clone());
    if let WorkloadReport::Exists { rolling, .. } = &mut report {
        *rolling = Some(why);
    }
    let wait = std::time::Duration::from_secs(u64::try_from(wait).unwrap_or(1));
    (report, Requeue::After(wait))
}

/// What of `spec.monitor` cannot be done here, said where the user looks for the pods rather
/// than by refusing the database.
fn monitor_note(facts: &DbFacts<'_>, observed: &Observed) -> Option<String> {
    let monitor = exporter::monitor(facts.common.monitor, facts.kind)
        .ok()
        .flatten()?;
    (monitor.agent == exporter::Agent::PrometheusOperator && !observed.service_monitors_served)
        .then(|| {
            "; spec.monitor: ServiceMonitors (monitoring.coreos.com/v1) are not served here, so none is made; the stats Service is"
                .to_string()
        })
}

/// What one workload needs: nothing, a write, or a change the API server refuses.
enum PartStep {
    UpToDate,
    Write,
    Immutable(String),
}

/// The cached workload keeps no pod template ([`crate::caches::workload_shape`]): what the
/// provisioner wrote is compared by its digest, the replica count and the immutable fields as
/// served.
fn part_step(desired: &Workload, live: Option<&Workload>) -> PartStep {
    let Some(live) = live else {
        return PartStep::Write;
    };
    let (Ok(want), Ok(have)) = (desired.to_value(), live.to_value()) else {
        return PartStep::Write;
    };
    if let Some(field) = immutable_change(&want, &have) {
        PartStep::Immutable(field)
    } else if desired.applied_digest().is_some()
        && desired.applied_digest() == live.applied_digest()
        && desired.replicas() == live.replicas()
    {
        PartStep::UpToDate
    } else {
        PartStep::Write
    }
}

/// The workloads once every TLS Secret is ready: unchanged, refused (an immutable field), or
/// written. A refused one holds back every write, so the parts never run different specs.
fn workload_step(
    facts: &DbFacts<'_>,
    choice: &WorkloadChoice,
    desired: &[Workload],
    observed: &Observed,
    writes: &mut Vec<Write>,
) -> (WorkloadReport, Requeue) {
    let lives: Vec<Option<&Workload>> = observed.lives().collect();
    let mut what = format!("{} ({})", describe_all(desired), choice.why);
    what.extend(monitor_note(facts, observed));
    let steps: Vec<(PartStep, &Workload, Option<&Workload>)> = desired
        .iter()
        .zip(lives.iter().copied().chain(std::iter::repeat(None)))
        .map(|(desired, live)| (part_step(desired, live), desired, live))
        .collect();
    if let Some(field) = steps.iter().find_map(|(step, _, _)| match step {
        PartStep::Immutable(field) => Some(field.clone()),
        _ => None,
    }) {
        return (
            WorkloadReport::ImmutableField { what, field },
            Requeue::Immutable,
        );
    }
    let mut rolling = None;
    for (step, desired, live) in &steps {
        match step {
            PartStep::Write => {
                writes.push(Write::Workload {
                    desired: Box::new((*desired).clone()),
                    cached: live.cloned().map(Box::new),
                });
                rolling = rolling.or(live.map(|_| UPDATING.to_string()));
            }
            _ => rolling = rolling.or(live.and_then(Workload::rollout)),
        }
    }
    let any_live = lives.iter().any(Option::is_some);
    let report = WorkloadReport::Exists {
        what,
        ready: lives.iter().flatten().map(|l| l.ready_replicas()).sum(),
        rolling,
        replicas: facts.replicas(),
        pods: if any_live {
            pod_problems(observed)
        } else {
            Vec::new()
        },
    };
    (report, Requeue::Resync)
}

/// What a Galera cluster switching TLS on or off reports while its nodes bridge.
const BRIDGING: &str = "switching Galera replication's TLS in two rolling restarts, first to nodes that accept peers with and without TLS (socket.dynamic)";

/// The rollout a workload write starts, until its controller reports on it.
const UPDATING: &str = "updating the workload";

/// The status and requeue once the writes are done: the plan's, unless a write met an object
/// someone else made (reported like a name conflict the plan saw) or the API server refused
/// the workload (an immutable field).
pub fn settle(
    facts: &DbFacts<'_>,
    observed: &Observed,
    choice: &WorkloadChoice,
    plan: Plan,
    outcome: &Outcome,
) -> (Report, Requeue) {
    if let Some(what) = &outcome.conflict {
        let blocked = blocked(
            facts,
            choice,
            observed,
            Invalid::NameConflict { what: what.clone() },
        );
        return (blocked.report, blocked.requeue);
    }
    if let Some(message) = &outcome.refused {
        let what = format!("{} ({})", planned_workloads(facts, choice), choice.why);
        let report = Report {
            workload: WorkloadReport::ImmutableField {
                what,
                field: format!("a field the API server refused ({message})"),
            },
            ..plan.report
        };
        return (report, Requeue::Immutable);
    }
    (plan.report, plan.requeue)
}

impl Plan {
    fn new(writes: Vec<Write>, deletes: Vec<Delete>) -> Plan {
        Plan {
            writes,
            deletes,
            report: Report::new(WorkloadReport::NotCreated(String::new())),
            requeue: Requeue::Resync,
        }
    }
}

#[cfg(test)]
mod tests;
