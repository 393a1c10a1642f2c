#![allow(clippy::unwrap_used)]
use super::*;
use dbtls_contract::api::ops::OpsView;

const NOW: i64 = 1_800_000_000;

fn time(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn cond(type_: &str, status: &str, at: i64) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        observed_generation: Some(3),
        severity: None,
        last_transition_time: time(at),
        reason: None,
        message: None,
    }
}

fn db_cond(type_: ConditionType, status: &str, generation: i64, message: &str) -> Condition {
    Condition {
        observed_generation: Some(generation),
        message: Some(message.into()),
        ..cond(type_.as_str(), status, NOW - 100)
    }
}

fn database(spec: Value) -> DatabaseFacts {
    DatabaseFacts {
        kind: DbKind::MySQL,
        namespace: "demo".into(),
        name: "db".into(),
        resource_version: "41".into(),
        generation: 3,
        phase: Some("Ready".into()),
        spec,
        conditions: Vec::new(),
    }
}

fn with_tls() -> Value {
    json!({"version": "8.4.3", "tls": {"issuerRef": {"kind": "Issuer", "name": "old"}}})
}

fn cert(name: &str, revision: i64) -> CertificateFacts {
    CertificateFacts {
        name: name.into(),
        resource_version: format!("rv-{name}"),
        revision,
        ready: true,
        issuing: false,
    }
}

fn rotate() -> ReconfigureTlsSpec {
    ReconfigureTlsSpec {
        rotate_certificates: Some(true),
        ..Default::default()
    }
}

fn issuer(name: &str) -> ReconfigureTlsSpec {
    ReconfigureTlsSpec {
        issuer_ref: Some(IssuerRef {
            api_group: None,
            kind: "Issuer".into(),
            name: name.into(),
        }),
        ..Default::default()
    }
}

fn remove() -> ReconfigureTlsSpec {
    ReconfigureTlsSpec {
        remove: Some(true),
        ..Default::default()
    }
}

struct Case<'a> {
    tls: &'a ReconfigureTlsSpec,
    phase: Option<OpsRequestPhase>,
    conditions: Vec<Condition>,
    revisions: BTreeMap<String, i64>,
    database_generation: Option<i64>,
    database: Option<DatabaseFacts>,
    certificates: Vec<CertificateFacts>,
    serial: Option<&'a str>,
    ahead: Option<&'a str>,
    timeout: Option<&'a str>,
    apply: ApplyOption,
}

impl<'a> Case<'a> {
    fn new(tls: &'a ReconfigureTlsSpec) -> Self {
        Case {
            tls,
            phase: None,
            conditions: Vec::new(),
            revisions: BTreeMap::new(),
            database_generation: None,
            database: Some(database(with_tls())),
            certificates: vec![cert("db-client-cert", 1), cert("db-server-cert", 1)],
            serial: Some("AB12"),
            ahead: None,
            timeout: None,
            apply: ApplyOption::IfReady,
        }
    }

    fn running(mut self, done: &[&str], at: i64) -> Self {
        self.phase = Some(OpsRequestPhase::Progressing);
        self.conditions = std::iter::once("ReconfigureTLS")
            .chain(done.iter().copied())
            .map(|t| cond(t, "True", at))
            .collect();
        self
    }

    fn plan(&self) -> Decision {
        plan(&Observed {
            request: "MySQLOpsRequest demo/r".into(),
            spec: OpsView {
                database: "db",
                tls: Some(self.tls),
                timeout: self.timeout,
                apply: self.apply,
            },
            phase: self.phase,
            conditions: &self.conditions,
            certificate_revisions: &self.revisions,
            database_generation: self.database_generation,
            database: self.database.clone(),
            certificates: self.certificates.clone(),
            server_serial: self.serial.map(str::to_string),
            ahead: self.ahead.map(str::to_string),
            now: NOW,
        })
    }
}

/// The last condition the decision sets: (type, status).
fn last(d: &Decision) -> (OpsConditionType, bool) {
    let s = d.conditions.last().unwrap();
    (s.type_, s.status)
}

fn message(d: &Decision) -> String {
    d.conditions.last().unwrap().message.clone()
}

#[test]
fn one_operation_per_request() {
    let both = ReconfigureTlsSpec {
        remove: Some(true),
        ..issuer("new")
    };
    let cases: Vec<(&str, Option<ReconfigureTlsSpec>, Result<&str, &str>)> = vec![
        ("rotate", Some(rotate()), Ok("rotate every certificate")),
        ("remove", Some(remove()), Ok("remove TLS")),
        ("issuer", Some(issuer("new")), Ok("set issuer Issuer/new")),
        (
            "requireSSL alone",
            Some(ReconfigureTlsSpec {
                require_ssl: Some(true),
                ..Default::default()
            }),
            Ok("set requireSSL true"),
        ),
        ("remove with issuerRef", Some(both), Err("more than one")),
        (
            "empty",
            Some(ReconfigureTlsSpec::default()),
            Err("no reconfiguration"),
        ),
        ("absent", None, Err("required")),
    ];
    for (case, tls, expected) in cases {
        match (Operation::of(tls.as_ref()), expected) {
            (Ok(op), Ok(text)) => assert_eq!(op.describe(), text, "{case}"),
            (Err(e), Err(text)) => assert!(e.contains(text), "{case}: {e}"),
            (got, want) => panic!("{case}: {got:?} vs {want:?}"),
        }
    }
}

#[test]
fn whether_and_how_a_request_starts() {
    let (rot, rem) = (rotate(), remove());
    let no_tls = || Some(database(json!({"version": "8.4.3"})));
    /// (case, inputs) → (phase, last condition, words of its message).
    type Row<'a> = (
        &'a str,
        Case<'a>,
        OpsRequestPhase,
        (OpsConditionType, bool),
        &'a str,
    );
    let mut cases: Vec<Row> = Vec::new();
    let mut queued = Case::new(&rot);
    queued.ahead = Some("MySQLOpsRequest demo/first");
    cases.push((
        "another request runs",
        queued,
        OpsRequestPhase::Pending,
        (OpsConditionType::Pending, true),
        "waiting for MySQLOpsRequest demo/first to finish",
    ));
    let mut missing = Case::new(&rot);
    missing.database = None;
    cases.push((
        "database missing",
        missing,
        OpsRequestPhase::Failed,
        (OpsConditionType::Failed, true),
        "spec.databaseRef db: no such database",
    ));
    let mut rotate_plain = Case::new(&rot);
    rotate_plain.database = no_tls();
    cases.push((
        "rotate without TLS",
        rotate_plain,
        OpsRequestPhase::Failed,
        (OpsConditionType::Failed, true),
        "has no spec.tls: there is no certificate to rotate",
    ));
    let mut remove_plain = Case::new(&rem);
    remove_plain.database = no_tls();
    cases.push((
        "remove without TLS",
        remove_plain,
        OpsRequestPhase::Skipped,
        (OpsConditionType::Skipped, true),
        "has no TLS: nothing to remove",
    ));
    let mut not_ready = Case::new(&rot);
    not_ready.database.as_mut().unwrap().phase = Some("Provisioning".into());
    cases.push((
        "IfReady and not Ready",
        not_ready,
        OpsRequestPhase::Pending,
        (OpsConditionType::Pending, true),
        "to be Ready (phase Provisioning): spec.apply is IfReady",
    ));
    let mut always = Case::new(&rot);
    always.database.as_mut().unwrap().phase = Some("Provisioning".into());
    always.apply = ApplyOption::Always;
    cases.push((
        "Always and not Ready: starts by recording revisions",
        always,
        OpsRequestPhase::Progressing,
        (OpsConditionType::IssueCertificatesSucceeded, false),
        "recording each Certificate's revision",
    ));
    let mut secret_before_status = Case::new(&rot);
    secret_before_status.certificates[0].ready = false;
    cases.push((
        "a Certificate not Ready yet (its Secret written, its status not): no revision recorded",
        secret_before_status,
        OpsRequestPhase::Progressing,
        (OpsConditionType::IssueCertificatesSucceeded, false),
        "waiting for cert-manager to finish issuing db-client-cert before",
    ));
    let mut still_issuing = Case::new(&rot);
    still_issuing.certificates[1].issuing = true;
    cases.push((
        "a Certificate being issued: no revision recorded",
        still_issuing,
        OpsRequestPhase::Progressing,
        (OpsConditionType::IssueCertificatesSucceeded, false),
        "waiting for cert-manager to finish issuing db-server-cert before",
    ));
    let mut adopted = Case::new(&rot);
    adopted.certificates[0].revision = 0;
    cases.push((
        "Ready without a revision (its Secret was already valid): recorded as 0",
        adopted,
        OpsRequestPhase::Progressing,
        (OpsConditionType::IssueCertificatesSucceeded, false),
        "recording each Certificate's revision",
    ));
    let galera = || {
        let mut db = database(
            json!({"replicas": 3, "tls": {"issuerRef": {"kind": "Issuer", "name": "old"}}}),
        );
        db.kind = DbKind::PerconaXtraDB;
        Some(db)
    };
    let mut galera_remove = Case::new(&rem);
    galera_remove.database = galera();
    cases.push((
        "TLS off on a 3-node Galera cluster: the database's rollout bridges it",
        galera_remove,
        OpsRequestPhase::Progressing,
        (OpsConditionType::UpdateDatabase, false),
        "",
    ));
    let mut galera_rotate = Case::new(&rot);
    galera_rotate.database = galera();
    cases.push((
        "rotating a 3-node Galera cluster is fine",
        galera_rotate,
        OpsRequestPhase::Progressing,
        (OpsConditionType::IssueCertificatesSucceeded, false),
        "recording",
    ));
    let mut bad_timeout = Case::new(&rot);
    bad_timeout.timeout = Some("soon");
    cases.push((
        "unparsable timeout",
        bad_timeout,
        OpsRequestPhase::Failed,
        (OpsConditionType::Failed, true),
        "spec.timeout",
    ));
    for (case, c, phase, condition, text) in cases {
        let d = c.plan();
        assert_eq!(d.phase, phase, "{case}");
        assert_eq!(last(&d), condition, "{case}");
        assert!(message(&d).contains(text), "{case}: {}", message(&d));
    }
}

#[test]
fn a_request_that_starts_says_so_first() {
    let rot = rotate();
    let d = Case::new(&rot).plan();
    assert_eq!(d.conditions[0].type_, OpsConditionType::ReconfigureTls);
    assert_eq!(
        d.certificate_revisions,
        Some([("db-client-cert".into(), 1), ("db-server-cert".into(), 1)].into())
    );
    assert_eq!(d.action, Action::None);
}

#[test]
fn rotation_steps() {
    let rot = rotate();
    let recorded: BTreeMap<String, i64> =
        [("db-client-cert".into(), 1), ("db-server-cert".into(), 1)].into();
    // (case, done steps, certificates, database conditions) → (action, condition, phase)
    type Row<'a> = (
        &'a str,
        &'a [&'a str],
        Vec<CertificateFacts>,
        Vec<Condition>,
        Action,
        (OpsConditionType, bool),
        OpsRequestPhase,
    );
    let reissued = vec![cert("db-client-cert", 2), cert("db-server-cert", 2)];
    let serving = |serial: &str| {
        vec![db_cond(
            ConditionType::TlsServing,
            "True",
            3,
            &format!("1 pod serves the current certificate (serial {serial})"),
        )]
    };
    let rows: Vec<Row> = vec![
        (
            "ask for re-issuance of each not yet issuing",
            &[],
            vec![
                cert("db-client-cert", 1),
                CertificateFacts {
                    issuing: true,
                    ..cert("db-server-cert", 1)
                },
            ],
            vec![],
            Action::Reissue(vec![("db-client-cert".into(), "rv-db-client-cert".into())]),
            (OpsConditionType::IssueCertificatesSucceeded, false),
            OpsRequestPhase::Progressing,
        ),
        (
            "every Certificate issuing: asked",
            &[],
            vec![
                CertificateFacts {
                    issuing: true,
                    ..cert("db-client-cert", 1)
                },
                cert("db-server-cert", 2),
            ],
            vec![],
            Action::None,
            (OpsConditionType::IssueCertificatesSucceeded, true),
            OpsRequestPhase::Progressing,
        ),
        (
            "one not re-issued yet",
            &["IssueCertificatesSucceeded"],
            vec![cert("db-client-cert", 2), cert("db-server-cert", 1)],
            vec![],
            Action::None,
            (OpsConditionType::CertificateSynced, false),
            OpsRequestPhase::Progressing,
        ),
        (
            "all re-issued",
            &["IssueCertificatesSucceeded"],
            reissued.clone(),
            vec![],
            Action::None,
            (OpsConditionType::CertificateSynced, true),
            OpsRequestPhase::Progressing,
        ),
        (
            "pods still serve the old serial",
            &["IssueCertificatesSucceeded", "CertificateSynced"],
            reissued.clone(),
            serving("OLD1"),
            Action::None,
            (OpsConditionType::DatabaseReady, false),
            OpsRequestPhase::Progressing,
        ),
        (
            "every pod serves the new serial",
            &["IssueCertificatesSucceeded", "CertificateSynced"],
            reissued.clone(),
            serving("AB12"),
            Action::None,
            (OpsConditionType::DatabaseReady, true),
            OpsRequestPhase::Progressing,
        ),
        (
            "every step done",
            &[
                "IssueCertificatesSucceeded",
                "CertificateSynced",
                "DatabaseReady",
            ],
            reissued,
            vec![],
            Action::None,
            (OpsConditionType::Successful, true),
            OpsRequestPhase::Successful,
        ),
    ];
    for (case, done, certificates, conditions, action, condition, phase) in rows {
        let mut c = Case::new(&rot).running(done, NOW - 5);
        c.revisions = recorded.clone();
        c.certificates = certificates;
        c.database.as_mut().unwrap().conditions = conditions;
        let d = c.plan();
        assert_eq!(d.action, action, "{case}");
        assert_eq!(last(&d), condition, "{case}: {}", message(&d));
        assert_eq!(d.phase, phase, "{case}");
    }
}

#[test]
fn a_change_patches_the_spec_with_a_precondition_then_waits_for_the_rollout() {
    let new_issuer = issuer("new");
    let d = Case::new(&new_issuer).running(&[], NOW - 5).plan();
    let Action::PatchDatabase(patch) = &d.action else {
        panic!("{:?}", d.action);
    };
    assert_eq!(patch["metadata"]["resourceVersion"], "41");
    assert_eq!(patch["spec"]["tls"]["issuerRef"]["name"], "new");
    assert_eq!(
        patch["spec"]["requireSSL"],
        Value::Null,
        "left as it was (absent)"
    );

    // The spec says it now (at generation 4): the step is done and remembers the generation.
    let mut c = Case::new(&new_issuer).running(&[], NOW - 5);
    let db = c.database.as_mut().unwrap();
    db.spec = json!({"tls": {"issuerRef": {"kind": "Issuer", "name": "new"}}});
    db.generation = 4;
    let d = c.plan();
    assert_eq!(last(&d), (OpsConditionType::UpdateDatabase, true));
    assert_eq!(d.database_generation, Some(4));

    // CertificatesReady must be reported for that generation, not an older one.
    let mut c = Case::new(&new_issuer).running(&["UpdateDatabase"], NOW - 5);
    c.database_generation = Some(4);
    c.database.as_mut().unwrap().conditions =
        vec![db_cond(ConditionType::CertificatesReady, "True", 3, "")];
    assert_eq!(
        last(&c.plan()),
        (OpsConditionType::CertificateSynced, false)
    );
    // While the database waits (here for its pods to trust the new CA), the request says why.
    c.database.as_mut().unwrap().conditions = vec![db_cond(
        ConditionType::CertificatesReady,
        "False",
        4,
        "Re-issuing from Issuer ns/new once every pod trusts its CA: 2 of 3 pods do",
    )];
    let waiting = message(&c.plan());
    assert!(
        waiting.ends_with("generation 4 yet: Re-issuing from Issuer ns/new once every pod trusts its CA: 2 of 3 pods do"),
        "{waiting}"
    );
    c.database.as_mut().unwrap().conditions =
        vec![db_cond(ConditionType::CertificatesReady, "True", 4, "")];
    assert_eq!(last(&c.plan()), (OpsConditionType::CertificateSynced, true));

    // Rolled out and serving: WorkloadReady for generation 4 and the current serial.
    let mut c = Case::new(&new_issuer).running(&["UpdateDatabase", "CertificateSynced"], NOW - 5);
    c.database_generation = Some(4);
    let serving = db_cond(ConditionType::TlsServing, "True", 4, "(serial AB12)");
    c.database.as_mut().unwrap().conditions = vec![
        db_cond(ConditionType::WorkloadReady, "False", 4, "rolling out"),
        serving.clone(),
    ];
    let d = c.plan();
    assert_eq!(last(&d), (OpsConditionType::DatabaseReady, false));
    assert!(
        message(&d).contains("rolling out generation 4"),
        "{}",
        message(&d)
    );
    c.database.as_mut().unwrap().conditions = vec![
        db_cond(ConditionType::WorkloadReady, "True", 4, "3/3"),
        serving,
    ];
    assert_eq!(last(&c.plan()), (OpsConditionType::DatabaseReady, true));
}

#[test]
fn remove_takes_tls_and_require_ssl_together_and_never_waits_for_certificates() {
    let rem = remove();
    let mut c = Case::new(&rem).running(&[], NOW - 5);
    c.database.as_mut().unwrap().spec["requireSSL"] = json!(true);
    let d = c.plan();
    let Action::PatchDatabase(patch) = &d.action else {
        panic!("{:?}", d.action);
    };
    assert_eq!(patch["spec"], json!({"tls": null, "requireSSL": null}));

    let mut c = Case::new(&rem).running(&["UpdateDatabase"], NOW - 5);
    c.database_generation = Some(4);
    c.database.as_mut().unwrap().conditions =
        vec![db_cond(ConditionType::WorkloadReady, "True", 4, "3/3")];
    assert_eq!(last(&c.plan()), (OpsConditionType::DatabaseReady, true));

    let mut mssql = Case::new(&rem);
    mssql.database.as_mut().unwrap().kind = DbKind::MSSQLServer;
    let d = mssql.plan();
    assert_eq!(d.phase, OpsRequestPhase::Failed);
    assert!(message(&d).contains("clientTLS: false"), "{}", message(&d));
}

#[test]
fn a_step_that_overruns_the_timeout_fails_naming_it() {
    let rot = rotate();
    let mut c = Case::new(&rot).running(&["IssueCertificatesSucceeded"], NOW - 301);
    c.revisions = [("db-server-cert".into(), 1)].into();
    c.timeout = Some("5m");
    let d = c.plan();
    assert_eq!(d.phase, OpsRequestPhase::Failed);
    assert!(
        message(&d).starts_with("step CertificateSynced did not finish within spec.timeout 5m"),
        "{}",
        message(&d)
    );
    c.conditions = vec![
        cond("ReconfigureTLS", "True", NOW - 400),
        cond("IssueCertificatesSucceeded", "True", NOW - 299),
    ];
    assert_eq!(c.plan().phase, OpsRequestPhase::Progressing, "within 5m");
}

#[test]
fn certificates_merge_by_alias() {
    let existing =
        vec![json!({"alias": "client", "subject": {"organizations": ["a"]}, "duration": "24h"})];
    let change = CertificateSpec {
        alias: "client".into(),
        duration: Some("48h".into()),
        ..Default::default()
    };
    let server = CertificateSpec {
        alias: "server".into(),
        ..Default::default()
    };
    let merged = merged_certificates(Some(&existing), &[change, server]);
    assert_eq!(
        merged,
        vec![
            json!({"alias": "client", "subject": {"organizations": ["a"]}, "duration": "48h"}),
            json!({"alias": "server"}),
        ]
    );
}

#[test]
fn a_finished_request_is_left_alone() {
    let rot = rotate();
    for phase in [
        OpsRequestPhase::Successful,
        OpsRequestPhase::Failed,
        OpsRequestPhase::Skipped,
    ] {
        let mut c = Case::new(&rot);
        c.phase = Some(phase);
        let d = c.plan();
        assert_eq!((d.phase, d.conditions.len(), d.requeue), (phase, 0, None));
    }
}

#[test]
fn a_spec_matches_when_merging_the_change_changes_nothing() {
    let spec = json!({"tls": {"issuerRef": {"apiGroup": "cert-manager.io", "kind": "Issuer", "name": "a"}}, "requireSSL": false});
    let cases = [
        ("same issuer without apiGroup", issuer("a"), true),
        ("another issuer", issuer("b"), false),
        (
            "requireSSL false is absent",
            ReconfigureTlsSpec {
                require_ssl: Some(false),
                ..Default::default()
            },
            true,
        ),
        (
            "requireSSL true",
            ReconfigureTlsSpec {
                require_ssl: Some(true),
                ..Default::default()
            },
            false,
        ),
    ];
    for (case, tls, expected) in cases {
        let op = Operation::of(Some(&tls)).unwrap();
        let desired = desired_spec(&spec, DbKind::MySQL, &op);
        assert_eq!(spec_matches(&spec, &desired), expected, "{case}");
    }
}
