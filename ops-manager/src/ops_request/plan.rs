//! What a ReconfigureTLS OpsRequest does next, decided purely from the request's status (its
//! steps so far), the database, its Certificates and the queue of requests for the same
//! database. Every step is resumable: its progress is in the request's status or visible in
//! the cluster, so a restarted ops-manager picks up the step it was in.
//!
//! Steps, one condition each (KubeDB's names):
//! - rotate: `IssueCertificatesSucceeded` (re-issuance asked of every Certificate, their
//!   revisions recorded first) → `CertificateSynced` (each revision higher) → `DatabaseReady`;
//! - change (issuer, certificates, requireSSL, clientTLS, or adding TLS): `UpdateDatabase`
//!   (the database's spec now says it) → `CertificateSynced` when certificates are concerned →
//!   `DatabaseReady` (rolled out and serving the current certificate);
//! - remove: `UpdateDatabase` (`spec.tls` and `requireSSL` go together, so no pod ever
//!   requires TLS without certificates; the Secrets are kept) → `DatabaseReady` (rolled out).
//!
//! The database's own reconcile carries the change out (Certificates, rollout, reload or
//! restart): editing the database's spec directly takes the same path.
use std::collections::BTreeMap;
use std::time::Duration;

use dbtls_contract::DbKind;
use dbtls_contract::api::ops::{ApplyOption, OpsRequestPhase, OpsView, ReconfigureTlsSpec};
use dbtls_contract::api::{CertificateSpec, Condition, IssuerRef};
use dbtls_contract::conditions::{ConditionType, OpsConditionType, Reason};
use dbtls_contract::duration::parse_go_duration;
use serde_json::{Value, json};

/// While a step waits without a watch event to bring it back.
pub const STEP_RECHECK: Duration = Duration::from_secs(10);

/// One operation, from `spec.tls` (admission allows exactly one).
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    Rotate,
    Change(Change),
    Remove,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Change {
    pub issuer_ref: Option<IssuerRef>,
    pub certificates: Vec<CertificateSpec>,
    pub require_ssl: Option<bool>,
    pub client_tls: Option<bool>,
}

impl Change {
    /// Whether Certificates are re-issued for it.
    fn concerns_certificates(&self) -> bool {
        self.issuer_ref.is_some() || !self.certificates.is_empty()
    }
}

impl Operation {
    pub fn of(tls: Option<&ReconfigureTlsSpec>) -> Result<Operation, String> {
        let Some(tls) = tls else {
            return Err("spec.tls is required for ReconfigureTLS".into());
        };
        let change = Change {
            issuer_ref: tls.issuer_ref.clone(),
            certificates: tls.certificates.clone().unwrap_or_default(),
            require_ssl: tls.require_ssl,
            client_tls: tls.client_tls,
        };
        let changes = change != Change::default();
        let rotate = tls.rotate_certificates == Some(true);
        let remove = tls.remove == Some(true);
        match (changes, rotate, remove) {
            (true, false, false) => Ok(Operation::Change(change)),
            (false, true, false) => Ok(Operation::Rotate),
            (false, false, true) => Ok(Operation::Remove),
            (false, false, false) => Err("no reconfiguration is provided in spec.tls".into()),
            _ => Err("more than one operation in spec.tls: run one per OpsRequest".into()),
        }
    }

    /// For messages: what the request does.
    pub fn describe(&self) -> String {
        match self {
            Operation::Rotate => "rotate every certificate".into(),
            Operation::Remove => "remove TLS".into(),
            Operation::Change(c) => {
                let mut parts = Vec::new();
                if let Some(i) = &c.issuer_ref {
                    parts.push(format!("issuer {}/{}", i.kind, i.name));
                }
                if !c.certificates.is_empty() {
                    let aliases: Vec<&str> =
                        c.certificates.iter().map(|x| x.alias.as_str()).collect();
                    parts.push(format!("certificates {}", aliases.join(", ")));
                }
                if let Some(r) = c.require_ssl {
                    parts.push(format!("requireSSL {r}"));
                }
                if let Some(t) = c.client_tls {
                    parts.push(format!("clientTLS {t}"));
                }
                format!("set {}", parts.join(", "))
            }
        }
    }

    fn steps(&self) -> Vec<OpsConditionType> {
        use OpsConditionType as S;
        match self {
            Operation::Rotate => vec![
                S::IssueCertificatesSucceeded,
                S::CertificateSynced,
                S::DatabaseReady,
            ],
            Operation::Change(c) if c.concerns_certificates() => {
                vec![S::UpdateDatabase, S::CertificateSynced, S::DatabaseReady]
            }
            Operation::Change(_) | Operation::Remove => vec![S::UpdateDatabase, S::DatabaseReady],
        }
    }
}

/// The database as the request sees it (read as JSON: the plan is the same for every kind).
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseFacts {
    pub kind: DbKind,
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub generation: i64,
    pub phase: Option<String>,
    /// `spec` as stored.
    pub spec: Value,
    pub conditions: Vec<Condition>,
}

impl DatabaseFacts {
    fn has_tls(&self) -> bool {
        self.spec
            .get("tls")
            .and_then(Value::as_object)
            .is_some_and(|t| t.contains_key("issuerRef") || t.contains_key("certificates"))
    }

    fn describe(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_.as_str())
    }

    /// `type_` is True and was evaluated for `generation` or later.
    fn true_since(&self, type_: ConditionType, generation: Option<i64>) -> bool {
        self.condition(type_).is_some_and(|c| {
            c.status == "True"
                && generation.is_none_or(|g| c.observed_generation.is_some_and(|o| o >= g))
        })
    }
}

/// One of the database's Certificates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CertificateFacts {
    pub name: String,
    pub resource_version: String,
    pub revision: i64,
    /// Ready, and cert-manager has seen its current spec.
    pub ready: bool,
    /// An issuance is under way (condition `Issuing` True).
    pub issuing: bool,
}

/// Everything [`plan`] decides from.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// `<Kind> <namespace>/<name>` of the request.
    pub request: String,
    pub spec: OpsView<'a>,
    pub phase: Option<OpsRequestPhase>,
    pub conditions: &'a [Condition],
    pub certificate_revisions: &'a BTreeMap<String, i64>,
    pub database_generation: Option<i64>,
    /// None: the database does not exist.
    pub database: Option<DatabaseFacts>,
    pub certificates: Vec<CertificateFacts>,
    /// The serial the server Secret holds now.
    pub server_serial: Option<String>,
    /// The request this one waits for (`<Kind> <ns>/<name>`), if another runs or is older.
    pub ahead: Option<String>,
    /// Unix seconds.
    pub now: i64,
}

/// A condition to set on the request (replacing the one of its type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub type_: OpsConditionType,
    pub status: bool,
    pub reason: Reason,
    pub message: String,
}

/// What to do to the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    None,
    /// A JSON merge patch of the database (carries its resourceVersion as a precondition).
    PatchDatabase(Value),
    /// Ask cert-manager to re-issue these Certificates (name, resourceVersion read).
    Reissue(Vec<(String, String)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub phase: OpsRequestPhase,
    pub conditions: Vec<Step>,
    pub action: Action,
    /// Set when it changes.
    pub certificate_revisions: Option<BTreeMap<String, i64>>,
    pub database_generation: Option<i64>,
    pub requeue: Option<Duration>,
}

impl Decision {
    fn new(phase: OpsRequestPhase) -> Self {
        Self {
            phase,
            conditions: Vec::new(),
            action: Action::None,
            certificate_revisions: None,
            database_generation: None,
            requeue: None,
        }
    }

    fn with(
        mut self,
        type_: OpsConditionType,
        status: bool,
        reason: Reason,
        message: String,
    ) -> Self {
        self.conditions.push(Step {
            type_,
            status,
            reason,
            message,
        });
        self
    }

    fn finished(
        phase: OpsRequestPhase,
        type_: OpsConditionType,
        reason: Reason,
        message: String,
    ) -> Self {
        Self::new(phase).with(type_, true, reason, message)
    }
}

impl Decision {
    /// The request failed because the API server refused what it asked for.
    pub fn failed_by_api(message: String) -> Self {
        Self::finished(
            OpsRequestPhase::Failed,
            OpsConditionType::Failed,
            Reason::InvalidOpsRequest,
            message,
        )
    }
}

pub fn plan(o: &Observed<'_>) -> Decision {
    if o.phase.is_some_and(OpsRequestPhase::is_final) {
        return Decision::new(o.phase.unwrap_or(OpsRequestPhase::Successful));
    }
    let failed = |reason: Reason, message: String| {
        Decision::finished(
            OpsRequestPhase::Failed,
            OpsConditionType::Failed,
            reason,
            message,
        )
    };
    let operation = match Operation::of(o.spec.tls) {
        Ok(op) => op,
        Err(why) => return failed(Reason::InvalidOpsRequest, why),
    };
    let timeout = match o.spec.timeout.map(parse_go_duration).transpose() {
        Ok(t) => t,
        Err(e) => return failed(Reason::InvalidOpsRequest, format!("spec.timeout: {e}")),
    };
    let Some(db) = &o.database else {
        return failed(
            Reason::DatabaseNotFound,
            format!(
                "spec.databaseRef {}: no such database in the request's namespace",
                o.spec.database
            ),
        );
    };
    if o.phase != Some(OpsRequestPhase::Progressing) {
        if let Some(decision) = before_start(o, db, &operation) {
            return decision;
        }
        let started = Step {
            type_: OpsConditionType::ReconfigureTls,
            status: true,
            reason: Reason::ReconfigureTls,
            message: format!("{} started: {}", o.request, operation.describe()),
        };
        let mut conditions = o.conditions.to_vec();
        conditions.retain(|c| c.type_ != OpsConditionType::Pending.as_str());
        let mut decision = progress(o, db, &operation, timeout, &conditions, true);
        decision.conditions.insert(0, started);
        return decision;
    }
    progress(o, db, &operation, timeout, o.conditions, false)
}

/// Whether the request can start now; if not, what it says.
fn before_start(o: &Observed<'_>, db: &DatabaseFacts, op: &Operation) -> Option<Decision> {
    let pending = |reason: Reason, message: String| {
        let mut d = Decision::new(OpsRequestPhase::Pending).with(
            OpsConditionType::Pending,
            true,
            reason,
            message,
        );
        d.requeue = Some(STEP_RECHECK);
        d
    };
    if let Some(ahead) = &o.ahead {
        let mut d = pending(
            Reason::WaitingForOpsRequest,
            format!("waiting for {ahead} to finish"),
        );
        d.requeue = None;
        return Some(d);
    }
    if let Some(refused) = cannot_run(db, op) {
        return Some(refused);
    }
    if o.spec.apply == ApplyOption::IfReady && db.phase.as_deref() != Some("Ready") {
        return Some(pending(
            Reason::WaitingForDatabase,
            format!(
                "waiting for {} to be Ready (phase {}): spec.apply is IfReady",
                db.describe(),
                db.phase.as_deref().unwrap_or("unknown")
            ),
        ));
    }
    None
}

/// Failed or Skipped when the operation cannot apply to the database as it is.
fn cannot_run(db: &DatabaseFacts, op: &Operation) -> Option<Decision> {
    let nothing = |phase, message: String| {
        let type_ = if phase == OpsRequestPhase::Skipped {
            OpsConditionType::Skipped
        } else {
            OpsConditionType::Failed
        };
        Some(Decision::finished(
            phase,
            type_,
            Reason::NothingToDo,
            message,
        ))
    };
    match op {
        Operation::Rotate if !db.has_tls() => {
            nothing(
                OpsRequestPhase::Failed,
                format!(
                    "{} has no spec.tls: there is no certificate to rotate; add TLS first (spec.tls.issuerRef)",
                    db.describe()
                ),
            )
        }
        Operation::Remove if !db.has_tls() => {
            nothing(
                OpsRequestPhase::Skipped,
                format!("{} has no TLS: nothing to remove", db.describe()),
            )
        }
        Operation::Remove if db.kind == DbKind::MSSQLServer => {
            Some(Decision::finished(
                OpsRequestPhase::Failed,
                OpsConditionType::Failed,
                Reason::InvalidOpsRequest,
                "MSSQLServer always runs with TLS (KubeDB requires spec.tls.issuerRef): TLS cannot be removed; set clientTLS: false to stop requiring it from clients".into(),
            ))
        }
        Operation::Change(c)
            if c.require_ssl == Some(true) && !db.has_tls() && c.issuer_ref.is_none() =>
        {
            Some(Decision::finished(
                OpsRequestPhase::Failed,
                OpsConditionType::Failed,
                Reason::InvalidOpsRequest,
                format!(
                    "requireSSL: true needs TLS, and {} has none: add spec.tls.issuerRef to this request",
                    db.describe()
                ),
            ))
        }
        _ => None,
    }
}

fn transition_time(conditions: &[Condition], type_: OpsConditionType) -> Option<i64> {
    conditions
        .iter()
        .find(|c| c.type_ == type_.as_str() && c.status == "True")
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(&c.last_transition_time).ok())
        .map(|t| t.timestamp())
}

fn progress(
    o: &Observed<'_>,
    db: &DatabaseFacts,
    op: &Operation,
    timeout: Option<Duration>,
    conditions: &[Condition],
    starting: bool,
) -> Decision {
    let steps = op.steps();
    let done = |s: OpsConditionType| transition_time(conditions, s).is_some();
    let Some(index) = steps.iter().position(|s| !done(*s)) else {
        return Decision::finished(
            OpsRequestPhase::Successful,
            OpsConditionType::Successful,
            Reason::OpsRequestSucceeded,
            format!(
                "Successfully completed reconfigureTLS ({}) for {}",
                op.describe(),
                db.describe()
            ),
        );
    };
    let step = steps[index];
    let previous = if index == 0 {
        OpsConditionType::ReconfigureTls
    } else {
        steps[index - 1]
    };
    let since = if starting {
        Some(o.now)
    } else {
        transition_time(conditions, previous)
    };
    let outcome = match step {
        OpsConditionType::UpdateDatabase => update_database(db, op),
        OpsConditionType::IssueCertificatesSucceeded => issue(o),
        OpsConditionType::CertificateSynced => synced(o, db, op),
        _ => database_ready(o, db, op),
    };
    let mut decision = Decision::new(OpsRequestPhase::Progressing);
    match outcome {
        StepOutcome::Done(message) => {
            decision = decision.with(step, true, reason_of(step), message);
            decision.database_generation =
                (step == OpsConditionType::UpdateDatabase).then_some(db.generation);
            decision.requeue = Some(Duration::ZERO);
        }
        StepOutcome::Act(action, waiting) => {
            if let Some(failed) = overrun(o, timeout, since, step, &waiting) {
                return failed;
            }
            decision = decision.with(step, false, reason_of(step), waiting);
            decision.action = action;
            decision.requeue = Some(Duration::ZERO);
        }
        StepOutcome::Record(revisions) => {
            decision = decision.with(
                step,
                false,
                reason_of(step),
                "recording each Certificate's revision before asking for re-issuance".into(),
            );
            decision.certificate_revisions = Some(revisions);
            decision.requeue = Some(Duration::ZERO);
        }
        StepOutcome::Wait(waiting) => {
            if let Some(failed) = overrun(o, timeout, since, step, &waiting) {
                return failed;
            }
            decision = decision.with(step, false, reason_of(step), waiting);
            decision.requeue = Some(STEP_RECHECK);
        }
    }
    decision
}

/// Failed, when the step started longer ago than `spec.timeout`.
fn overrun(
    o: &Observed<'_>,
    timeout: Option<Duration>,
    since: Option<i64>,
    step: OpsConditionType,
    waiting: &str,
) -> Option<Decision> {
    let (limit, since) = (timeout?, since?);
    (o.now.saturating_sub(since) > i64::try_from(limit.as_secs()).unwrap_or(i64::MAX)).then(|| {
        Decision::finished(
            OpsRequestPhase::Failed,
            OpsConditionType::Failed,
            Reason::StepTimedOut,
            format!(
                "step {step} did not finish within spec.timeout {}: {waiting}",
                o.spec.timeout.unwrap_or_default()
            ),
        )
    })
}

fn reason_of(step: OpsConditionType) -> Reason {
    match step {
        OpsConditionType::UpdateDatabase => Reason::UpdateDatabase,
        OpsConditionType::IssueCertificatesSucceeded => Reason::IssueCertificatesSucceeded,
        OpsConditionType::CertificateSynced => Reason::CertificateSynced,
        _ => Reason::DatabaseReady,
    }
}

enum StepOutcome {
    Done(String),
    Act(Action, String),
    Record(BTreeMap<String, i64>),
    Wait(String),
}

/// The database's spec with the operation applied: only `tls` and `requireSSL` change.
pub fn desired_spec(spec: &Value, kind: DbKind, op: &Operation) -> Value {
    let mut tls = spec.get("tls").cloned().unwrap_or_else(|| json!({}));
    let mut require_ssl = spec.get("requireSSL").cloned();
    match op {
        Operation::Rotate => {}
        Operation::Remove => {
            return json!({"tls": Value::Null, "requireSSL": Value::Null});
        }
        Operation::Change(c) => {
            if let Some(issuer) = &c.issuer_ref {
                tls["issuerRef"] = serde_json::to_value(issuer).unwrap_or(Value::Null);
            }
            if !c.certificates.is_empty() {
                tls["certificates"] = Value::Array(merged_certificates(
                    tls.get("certificates").and_then(Value::as_array),
                    &c.certificates,
                ));
            }
            if let Some(t) = c.client_tls {
                tls["clientTLS"] = json!(t);
            }
            if let Some(r) = c.require_ssl {
                require_ssl = Some(json!(r));
            }
        }
    }
    let mut out = json!({"tls": tls});
    if matches!(kind, DbKind::MySQL | DbKind::PerconaXtraDB) {
        out["requireSSL"] = require_ssl.unwrap_or(Value::Null);
    }
    out
}

/// The database's certificate entries with the request's merged in by alias: the request's
/// fields override, the others are kept (as KubeDB does).
fn merged_certificates(existing: Option<&Vec<Value>>, changes: &[CertificateSpec]) -> Vec<Value> {
    let mut out: Vec<Value> = existing.cloned().unwrap_or_default();
    for change in changes {
        let Ok(Value::Object(fields)) = serde_json::to_value(change) else {
            continue;
        };
        match out
            .iter_mut()
            .find(|e| e.get("alias").and_then(Value::as_str) == Some(change.alias.as_str()))
        {
            Some(Value::Object(entry)) => entry.extend(fields),
            _ => out.push(Value::Object(fields)),
        }
    }
    out
}

/// `target` with the JSON merge patch (RFC 7386) `patch` applied.
fn merged(target: &Value, patch: &Value) -> Value {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            let mut out = t.clone();
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let next = merged(out.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), next);
                }
            }
            Value::Object(out)
        }
        (_, Value::Object(_)) => merged(&json!({}), patch),
        _ => patch.clone(),
    }
}

/// Whether the stored spec already says what merging `desired` into it would.
fn spec_matches(spec: &Value, desired: &Value) -> bool {
    let mut have = spec.clone();
    // `requireSSL: false` and no requireSSL mean the same.
    if let Some(o) = have.as_object_mut()
        && o.get("requireSSL") == Some(&json!(false))
    {
        o.remove("requireSSL");
    }
    let mut want = merged(spec, desired);
    if let Some(o) = want.as_object_mut()
        && o.get("requireSSL") == Some(&json!(false))
    {
        o.remove("requireSSL");
    }
    have == want
}

fn update_database(db: &DatabaseFacts, op: &Operation) -> StepOutcome {
    let desired = desired_spec(&db.spec, db.kind, op);
    if spec_matches(&db.spec, &desired) {
        return StepOutcome::Done(format!(
            "{} updated: {} (generation {})",
            db.describe(),
            op.describe(),
            db.generation
        ));
    }
    let patch = json!({
        "metadata": {"resourceVersion": db.resource_version},
        "spec": desired,
    });
    StepOutcome::Act(
        Action::PatchDatabase(patch),
        format!("updating the spec of {}", db.describe()),
    )
}

fn issue(o: &Observed<'_>) -> StepOutcome {
    if o.certificates.is_empty() {
        return StepOutcome::Wait("the database has no Certificates yet".into());
    }
    if o.certificate_revisions.is_empty() {
        // Recorded only once each is Ready: cert-manager writes the Secret before the status,
        // so a revision read in between is the one its issuance is about to replace, and that
        // issuance would pass for the re-issuance asked for here.
        let unsettled: Vec<&str> = o
            .certificates
            .iter()
            .filter(|c| c.issuing || !c.ready)
            .map(|c| c.name.as_str())
            .collect();
        if !unsettled.is_empty() {
            return StepOutcome::Wait(format!(
                "waiting for cert-manager to finish issuing {} before asking for a new issuance",
                unsettled.join(", ")
            ));
        }
        return StepOutcome::Record(
            o.certificates
                .iter()
                .map(|c| (c.name.clone(), c.revision))
                .collect(),
        );
    }
    let pending: Vec<(String, String)> = o
        .certificates
        .iter()
        .filter(|c| {
            o.certificate_revisions
                .get(&c.name)
                .is_some_and(|r| c.revision <= *r)
                && !c.issuing
        })
        .map(|c| (c.name.clone(), c.resource_version.clone()))
        .collect();
    if pending.is_empty() {
        let names: Vec<&str> = o.certificate_revisions.keys().map(String::as_str).collect();
        return StepOutcome::Done(format!(
            "re-issuance asked of {} Certificate{}: {}",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ));
    }
    let names: Vec<&str> = pending.iter().map(|(n, _)| n.as_str()).collect();
    let waiting = format!("asking cert-manager to re-issue {}", names.join(", "));
    StepOutcome::Act(Action::Reissue(pending), waiting)
}

fn synced(o: &Observed<'_>, db: &DatabaseFacts, op: &Operation) -> StepOutcome {
    let mut waiting = Vec::new();
    match op {
        Operation::Rotate => {
            for (name, before) in o.certificate_revisions {
                match o.certificates.iter().find(|c| &c.name == name) {
                    None => waiting.push(format!("Certificate {name} is gone")),
                    Some(c) if c.revision <= *before || c.issuing || !c.ready => {
                        waiting.push(format!(
                            "Certificate {name} not re-issued yet (revision {})",
                            c.revision
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        _ => {
            if !db.true_since(ConditionType::CertificatesReady, o.database_generation) {
                // Its own words say what it waits for (e.g. every pod to trust a new CA).
                let why = db
                    .condition(ConditionType::CertificatesReady)
                    .filter(|c| c.status != "True")
                    .and_then(|c| c.message.as_deref())
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                waiting.push(format!(
                    "{} does not report CertificatesReady for generation {} yet{why}",
                    db.describe(),
                    o.database_generation.unwrap_or(db.generation)
                ));
            }
            waiting.extend(
                o.certificates
                    .iter()
                    .filter(|c| !c.ready || c.issuing)
                    .map(|c| format!("Certificate {} not issued yet", c.name)),
            );
        }
    }
    if waiting.is_empty() {
        let list: Vec<String> = o
            .certificates
            .iter()
            .map(|c| format!("{} (revision {})", c.name, c.revision))
            .collect();
        StepOutcome::Done(format!(
            "Successfully synced all certificates: {}",
            list.join(", ")
        ))
    } else {
        StepOutcome::Wait(waiting.join("; "))
    }
}

fn database_ready(o: &Observed<'_>, db: &DatabaseFacts, op: &Operation) -> StepOutcome {
    let generation = o.database_generation;
    let mut waiting = Vec::new();
    if generation.is_some() && !db.true_since(ConditionType::WorkloadReady, generation) {
        let why = db
            .condition(ConditionType::WorkloadReady)
            .and_then(|c| c.message.clone())
            .unwrap_or_default();
        waiting.push(format!(
            "rolling out generation {}: {why}",
            generation.unwrap_or_default()
        ));
    }
    let serving = !matches!(op, Operation::Remove);
    if serving {
        let serving_now = db.condition(ConditionType::TlsServing);
        let serial = o.server_serial.as_deref().unwrap_or_default();
        let served = db.true_since(ConditionType::TlsServing, generation)
            && !serial.is_empty()
            && serving_now
                .and_then(|c| c.message.as_deref())
                .is_some_and(|m| m.contains(serial));
        if !served {
            waiting.push(match serving_now.and_then(|c| c.message.clone()) {
                Some(m) => format!("not every pod serves serial {serial} yet: {m}"),
                None => format!("not every pod serves serial {serial} yet"),
            });
        }
    }
    if waiting.is_empty() {
        StepOutcome::Done(match (serving, &o.server_serial) {
            (true, Some(serial)) => {
                format!("every pod of {} serves serial {serial}", db.describe())
            }
            _ => format!("every pod of {} runs without TLS", db.describe()),
        })
    } else {
        StepOutcome::Wait(waiting.join("; "))
    }
}

#[cfg(test)]
mod tests;
