//! One test per decision of [`plan`] and [`settle`], from the YAML fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dbtls_contract::DbKind;
use dbtls_contract::api::{MSSQLServer, MySQL, PerconaXtraDB, Singlestore};
use dbtls_contract::conditions::Reason;
use dbtls_contract::monitoring::ServiceMonitor;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::*;
use crate::facts::fixtures::{load, parse};
use crate::workload::{WorkloadApi, WorkloadFlag, choose};

fn sts_choice(kind: dbtls_contract::DbKind) -> WorkloadChoice {
    choose(WorkloadFlag::Statefulset, kind, false)
}

fn owned_by(facts: &DbFacts<'_>) -> Option<Vec<OwnerReference>> {
    facts.owner.clone().map(|o| vec![o])
}

/// `object` as the database's own (controller ownerReference), as the cache would hold it.
fn ours<T: kube::Resource>(facts: &DbFacts<'_>, mut object: T) -> T {
    object.meta_mut().owner_references = owned_by(facts);
    object.meta_mut().uid = Some("child-uid".into());
    object
}

/// A built workload as the cache would hold it (the builder already names the owner).
fn stored(mut workload: Workload) -> Workload {
    workload.meta_mut().uid = Some("workload-uid".into());
    workload
}

fn secret(name: &str, keys: &[&str]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            keys.iter()
                .map(|k| (k.to_string(), ByteString(b"x".to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn tls_ready(facts: &DbFacts<'_>) -> Vec<(String, Option<Secret>)> {
    crate::desired::mounted_tls_secrets(facts, &Default::default())
        .into_iter()
        .map(|name| {
            let s = secret(&name, &["ca.crt", "tls.crt", "tls.key"]);
            (name, Some(s))
        })
        .collect()
}

/// What exists once the auth Secret and both Services are the database's and up to date.
fn provisioned_objects(facts: &DbFacts<'_>) -> Observed {
    Observed {
        user_auth_secret: facts
            .user_auth_secret()
            .map(|name| secret(name, &["username", "password"])),
        auth_secret: Some(ours(facts, Secret::default())),
        services: vec![
            ours(facts, services::primary(facts)),
            ours(facts, services::governing(facts)),
        ],
        ..Observed::default()
    }
}

fn writes(plan: &Plan) -> Vec<&'static str> {
    plan.writes
        .iter()
        .map(|w| match w {
            Write::AuthSecret => "auth",
            Write::Service { .. } => "service",
            Write::ConfigSecret { .. } => "config",
            Write::Workload { .. } => "workload",
            Write::ServiceMonitor { .. } => "service-monitor",
        })
        .collect()
}

fn reason(plan: &Plan) -> Option<Reason> {
    plan.report.invalid.as_ref().map(Invalid::reason)
}

#[test]
fn an_unknown_version_blocks_everything_until_the_spec_changes() {
    let db: MySQL = parse(
        "apiVersion: kubedb.com/v1\nkind: MySQL\nmetadata: {name: db, namespace: ns, uid: u}\nspec: {version: '1.0', storageType: Ephemeral}\n",
    );
    let facts = DbFacts::of(&db);
    let plan = plan(&facts, &Observed::default(), &sts_choice(facts.kind));
    assert_eq!(reason(&plan), Some(Reason::InvalidSpec));
    assert!(plan.writes.is_empty() && plan.deletes.is_empty());
    assert_eq!(
        plan.requeue,
        Requeue::Resync,
        "a spec edit triggers the next look"
    );
}

#[test]
fn a_missing_or_incomplete_user_auth_secret_waits_with_backoff() {
    let db: MySQL = parse(
        "apiVersion: kubedb.com/v1\nkind: MySQL\nmetadata: {name: db, namespace: ns, uid: u}\nspec: {version: '8.4.3', storageType: Ephemeral, authSecret: {name: creds}}\n",
    );
    let facts = DbFacts::of(&db);
    let missing = plan(&facts, &Observed::default(), &sts_choice(facts.kind));
    assert_eq!(reason(&missing), Some(Reason::AuthSecretMissing));
    assert_eq!(missing.requeue, Requeue::Wait);
    let partial = Observed {
        user_auth_secret: Some(secret("creds", &["username"])),
        ..Observed::default()
    };
    let incomplete = plan(&facts, &partial, &sts_choice(facts.kind));
    assert_eq!(reason(&incomplete), Some(Reason::AuthSecretInvalid));
    assert!(incomplete.writes.is_empty());
    // The user's Secret is used, never created or rewritten.
    let complete = Observed {
        user_auth_secret: Some(secret("creds", &["username", "password"])),
        ..Observed::default()
    };
    let planned = plan(&facts, &complete, &sts_choice(facts.kind));
    assert!(!writes(&planned).contains(&"auth"));
}

#[test]
fn a_missing_license_secret_is_reported() {
    let db: Singlestore = load("singlestore-tls.yaml");
    let facts = DbFacts::of(&db);
    let planned = plan(&facts, &Observed::default(), &sts_choice(facts.kind));
    assert!(matches!(
        planned.report.invalid,
        Some(Invalid::LicenseSecretMissing { .. })
    ));
    assert_eq!(planned.requeue, Requeue::Wait);
}

#[test]
fn halted_deletes_only_what_the_database_controls() {
    let mut db: MySQL = load("mysql-no-tls.yaml");
    db.spec.halted = Some(true);
    let facts = DbFacts::of(&db);
    let mut observed = provisioned_objects(&facts);
    // Someone else's Service of the database's name is never deleted.
    observed.services[1].metadata.owner_references = None;
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    assert!(planned.report.halted);
    assert!(planned.writes.is_empty());
    assert_eq!(planned.deletes.len(), 1);
    assert!(
        matches!(&planned.deletes[0], Delete::Service(s) if s.metadata.name == observed.services[0].metadata.name)
    );
}

#[test]
fn a_new_database_gets_its_auth_secret_and_services_and_waits_for_tls_secrets() {
    let db: MySQL = load("mysql-require-ssl.yaml");
    let facts = DbFacts::of(&db);
    let observed = Observed {
        tls_secrets: crate::desired::mounted_tls_secrets(&facts, &Default::default())
            .into_iter()
            .map(|n| (n, None))
            .collect(),
        ..Observed::default()
    };
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    assert_eq!(writes(&planned), ["auth", "service", "service"]);
    match &planned.report.tls {
        Some(TlsSecretsState::Missing(names)) => assert_eq!(
            names,
            &[
                "my-db-server-cert",
                "my-own-client-cert",
                "my-db-metrics-exporter-cert",
                "my-db-ca-bundle"
            ]
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &planned.report.workload,
        WorkloadReport::NotCreated(why) if why.contains("once every TLS Secret is ready")
    ));
}

#[test]
fn converged_objects_are_not_written_again() {
    let db: MySQL = load("mysql-require-ssl.yaml");
    let facts = DbFacts::of(&db);
    let choice = sts_choice(facts.kind);
    let mut observed = provisioned_objects(&facts);
    observed.tls_secrets = tls_ready(&facts);
    let first = plan(&facts, &observed, &choice);
    assert_eq!(writes(&first), ["workload"]);
    let Write::Workload { desired, .. } = &first.writes[0] else {
        unreachable!()
    };
    observed.workload = Some(stored((**desired).clone()));
    let converged = plan(&facts, &observed, &choice);
    assert!(converged.writes.is_empty() && converged.deletes.is_empty());
    assert_eq!(converged.requeue, Requeue::Resync);
    assert!(matches!(
        converged.report.workload,
        WorkloadReport::Exists { replicas: 3, .. }
    ));
}

/// A live workload is compared by the digest of what the provisioner wrote, its replica count
/// and its immutable fields as served, not by its pod template (the cache keeps none): one
/// decision per row.
#[test]
fn a_workload_is_compared_by_its_digest_replicas_and_immutable_fields() {
    use crate::caches::workload_shape;
    use crate::workload::APPLIED_DIGEST;
    let db: MySQL = load("mysql-require-ssl.yaml");
    let facts = DbFacts::of(&db);
    let choice = sts_choice(facts.kind);
    let mut observed = provisioned_objects(&facts);
    observed.tls_secrets = tls_ready(&facts);
    let desired =
        crate::desired::workload_for(&facts, "mysql:8.4.3", WorkloadApi::StatefulSet, &observed)
            .workloads
            .remove(0);
    let sts = |w: &Workload| match w {
        Workload::StatefulSet(s) => s.clone(),
        Workload::PetSet(_) => unreachable!(),
    };
    let cached = |edit: &dyn Fn(&mut StatefulSet)| {
        let mut live = sts(&desired);
        edit(&mut live);
        workload_shape(&mut live);
        stored(Workload::StatefulSet(live))
    };
    let spec = |s: &mut StatefulSet| s.spec.as_mut().unwrap().clone();
    // (case, what the live workload differs in, the decision)
    type Edit<'a> = &'a dyn Fn(&mut StatefulSet);
    let rows: [(&str, Edit, Option<&str>); 6] = [
        ("as written", &|_| {}, None),
        (
            "someone else changed the pod template",
            &|s| {
                let mut edited = spec(s);
                edited.template.spec.as_mut().unwrap().containers[0].image = Some("other".into());
                s.spec = Some(edited);
            },
            None,
        ),
        (
            "written by a provisioner without digests",
            &|s| {
                s.metadata
                    .annotations
                    .as_mut()
                    .unwrap()
                    .remove(APPLIED_DIGEST);
            },
            Some("workload"),
        ),
        (
            "the database's spec changed what is written",
            &|s| {
                s.metadata
                    .annotations
                    .as_mut()
                    .unwrap()
                    .insert(APPLIED_DIGEST.into(), "0".into());
            },
            Some("workload"),
        ),
        (
            "someone else scaled it",
            &|s| s.spec.as_mut().unwrap().replicas = Some(7),
            Some("workload"),
        ),
        (
            "an immutable field differs",
            &|s| s.spec.as_mut().unwrap().service_name = Some("elsewhere".into()),
            Some("immutable"),
        ),
    ];
    for (case, edit, decision) in rows {
        observed.workload = Some(cached(edit));
        let planned = plan(&facts, &observed, &choice);
        let immutable = matches!(
            planned.report.workload,
            WorkloadReport::ImmutableField { .. }
        );
        let got = if immutable {
            Some("immutable")
        } else {
            writes(&planned).first().copied()
        };
        assert_eq!(got, decision, "{case}");
    }
}

/// The cache keeps what the plan reads of a workload (the digest, replicas, immutable fields,
/// the containers' args, and a Galera cluster's carried server certificate) and drops the pod
/// template's bulk.
#[test]
fn a_cached_workload_keeps_what_the_plan_reads() {
    use crate::caches::{petset_shape, workload_shape};
    use crate::desired::galera_switch::{carried_certificate, replication_of};
    let mysql: MySQL = load("mysql-require-ssl.yaml");
    let percona: PerconaXtraDB = load("percona-tls.yaml");
    for (facts, container) in [
        (DbFacts::of(&mysql), "mysql"),
        (DbFacts::of(&percona), "perconaxtradb"),
    ] {
        for api in [WorkloadApi::StatefulSet, WorkloadApi::PetSet] {
            let case = format!("{} {api:?}", facts.kind);
            let mut cached = crate::desired::workload_for(&facts, "img", api, &Observed::default())
                .workloads
                .remove(0);
            let before = cached.clone();
            match &mut cached {
                Workload::StatefulSet(s) => workload_shape(s),
                Workload::PetSet(p) => petset_shape(p),
            }
            let kept = cached.to_value().unwrap();
            let template = &kept["spec"]["template"];
            assert!(template["metadata"].is_null(), "{case}: {template}");
            for c in template["spec"]["containers"].as_array().unwrap() {
                for key in c.as_object().unwrap().keys() {
                    assert!(
                        ["name", "args", "volumeMounts"].contains(&key.as_str()),
                        "{case}: {key} kept"
                    );
                }
            }
            assert_eq!(cached.applied_digest(), before.applied_digest(), "{case}");
            assert_eq!(cached.replicas(), before.replicas(), "{case}");
            for field in ["serviceName", "selector", "volumeClaimTemplates"] {
                let full = before.to_value().unwrap();
                assert_eq!(kept["spec"][field], full["spec"][field], "{case} {field}");
            }
            assert_eq!(
                replication_of(cached.pod_template(), container),
                replication_of(before.pod_template(), container),
                "{case}"
            );
            let carried = carried_certificate(cached.pod_template(), container);
            assert_eq!(
                carried,
                carried_certificate(before.pod_template(), container),
                "{case}"
            );
            // Only PerconaXtraDB mounts a server directory a Galera switch carries.
            assert_eq!(
                carried.is_some(),
                facts.kind == DbKind::PerconaXtraDB,
                "{case}"
            );
            let volumes = template["spec"]["volumes"].as_array().map_or(0, Vec::len);
            assert_eq!(volumes, usize::from(carried.is_some()), "{case}");
        }
    }
}

/// A SingleStore cluster with its license, Services and TLS Secrets in place.
fn singlestore_cluster() -> Singlestore {
    load("singlestore-cluster.yaml")
}

fn cluster_observed(facts: &DbFacts<'_>) -> Observed {
    let mut observed = provisioned_objects(facts);
    observed.license_secret = Some(secret("license-secret", &["license"]));
    observed.tls_secrets = tls_ready(facts);
    observed
}

fn planned_workloads_of(plan: &Plan) -> Vec<Workload> {
    plan.writes
        .iter()
        .filter_map(|w| match w {
            Write::Workload { desired, .. } => Some((**desired).clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_singlestore_cluster_runs_aggregators_and_leaves_each_selecting_its_own_pods() {
    let db = singlestore_cluster();
    let facts = DbFacts::of(&db);
    let choice = choose(WorkloadFlag::Auto, facts.kind, true);
    let mut observed = cluster_observed(&facts);
    let first = plan(&facts, &observed, &choice);
    let built = planned_workloads_of(&first);
    let shape: Vec<(String, i32, String, String)> = built
        .iter()
        .map(|w| {
            let value = w.to_value().unwrap();
            let spec = &value["spec"];
            (
                w.meta().name.clone().unwrap(),
                spec["replicas"].as_i64().unwrap() as i32,
                spec["selector"]["matchLabels"]["kubedb.com/petset"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (
                "sdb-aggregator".into(),
                2,
                "sdb-aggregator".into(),
                "1Gi".into()
            ),
            ("sdb-leaf".into(), 3, "sdb-leaf".into(), "10Gi".into()),
        ]
    );
    // Both serve TLS from the same Secrets, mounted alike.
    let volumes: Vec<serde_json::Value> = built
        .iter()
        .map(|w| w.to_value().unwrap()["spec"]["template"]["spec"]["volumes"].clone())
        .collect();
    assert_eq!(volumes[0], volumes[1]);
    // Clients reach the aggregators only.
    let primary = services::primary(&facts);
    let selector = primary.spec.unwrap().selector.unwrap();
    assert_eq!(selector["kubedb.com/petset"], "sdb-aggregator");

    // Both exist and are as built: nothing to write; the report counts every pod.
    observed.workload = Some(stored(built[0].clone()));
    observed.more_workloads = vec![Some(stored(built[1].clone()))];
    let converged = plan(&facts, &observed, &choice);
    assert!(converged.writes.is_empty(), "{:?}", writes(&converged));
    match &converged.report.workload {
        WorkloadReport::Exists { what, replicas, .. } => {
            assert_eq!(*replicas, 5);
            assert!(
                what.starts_with("PetSet sdb-aggregator, PetSet sdb-leaf"),
                "{what}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A leaf whose immutable field changed holds back the aggregators' writes too.
    let mut changed = built[1].clone();
    if let Workload::PetSet(p) = &mut changed {
        p.spec.service_name = "elsewhere".into();
    }
    observed.more_workloads = vec![Some(stored(changed))];
    let mut edited = db.clone();
    if let Some(t) = edited.spec.topology.as_mut() {
        t.aggregator.as_mut().unwrap().replicas = Some(4);
    }
    let edited_facts = DbFacts::of(&edited);
    let held = plan(&edited_facts, &observed, &choice);
    assert!(planned_workloads_of(&held).is_empty());
    assert!(matches!(
        &held.report.workload,
        WorkloadReport::ImmutableField { field, .. } if field == "spec.serviceName"
    ));
}

#[test]
fn a_topology_change_leaves_what_runs_and_says_how_to_go_on() {
    let db = singlestore_cluster();
    let facts = DbFacts::of(&db);
    let choice = choose(WorkloadFlag::Auto, facts.kind, true);
    let mut observed = cluster_observed(&facts);
    // The standalone `sdb` from before spec.topology, the database's own.
    let standalone: Singlestore = load("singlestore-tls.yaml");
    let mut before = crate::desired::workload_for(
        &DbFacts::of(&standalone),
        "img",
        choice.api,
        &Observed::default(),
    )
    .workloads
    .remove(0);
    before.meta_mut().owner_references = owned_by(&facts);
    observed.strays = vec![stored(before)];
    let planned = plan(&facts, &observed, &choice);
    assert!(planned_workloads_of(&planned).is_empty());
    assert!(planned.deletes.is_empty(), "nothing running is deleted");
    assert_eq!(planned.requeue, Requeue::Immutable);
    match &planned.report.workload {
        WorkloadReport::TopologyChanged { running, planned } => {
            assert_eq!(running, "PetSet sdb");
            assert_eq!(planned, "PetSet sdb-aggregator, sdb-leaf");
        }
        other => panic!("{other:?}"),
    }
    // Someone else's workload carrying the labels is not the database's: not in the way.
    observed.strays[0].meta_mut().owner_references = None;
    let planned = plan(&facts, &observed, &choice);
    assert_eq!(planned_workloads_of(&planned).len(), 2);
}

#[test]
fn a_changed_service_is_updated_over_the_cached_one() {
    let db: MySQL = load("mysql-no-tls.yaml");
    let facts = DbFacts::of(&db);
    let mut observed = provisioned_objects(&facts);
    let mut stale: Service = observed.services[0].clone();
    stale.spec.as_mut().unwrap().ports = None;
    observed.services[0] = stale;
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    match &planned.writes[0] {
        Write::Service { cached, .. } => assert!(cached.is_some(), "updated with the uid read"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn someone_elses_workload_is_a_name_conflict_and_never_written() {
    let db: MySQL = load("mysql-no-tls.yaml");
    let facts = DbFacts::of(&db);
    let choice = sts_choice(facts.kind);
    let mut observed = provisioned_objects(&facts);
    let mut workload = crate::desired::workload_for(
        &facts,
        "img",
        WorkloadApi::StatefulSet,
        &Observed::default(),
    )
    .workloads
    .remove(0);
    workload.meta_mut().owner_references = None;
    observed.workload = Some(stored(workload));
    let planned = plan(&facts, &observed, &choice);
    assert_eq!(reason(&planned), Some(Reason::NameConflict));
    assert!(!writes(&planned).contains(&"workload"));
    assert_eq!(planned.requeue, Requeue::Wait);
}

#[test]
fn a_wrong_shape_tls_secret_holds_the_workload_back() {
    let db: MySQL = load("mysql-require-ssl.yaml");
    let facts = DbFacts::of(&db);
    let mut observed = provisioned_objects(&facts);
    observed.tls_secrets = tls_ready(&facts);
    observed.tls_secrets[0].1 = Some(secret("bad", &["tls.crt"]));
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    assert!(matches!(
        planned.report.tls,
        Some(TlsSecretsState::Invalid { .. })
    ));
    assert!(!writes(&planned).contains(&"workload"));
}

#[test]
fn an_immutable_change_is_reported_not_retried() {
    let db: MySQL = load("mysql-require-ssl.yaml");
    let facts = DbFacts::of(&db);
    let choice = sts_choice(facts.kind);
    let mut observed = provisioned_objects(&facts);
    observed.tls_secrets = tls_ready(&facts);
    let mut live = crate::desired::workload_for(
        &facts,
        "img",
        WorkloadApi::StatefulSet,
        &Observed::default(),
    )
    .workloads
    .remove(0);
    if let Workload::StatefulSet(s) = &mut live {
        s.spec.as_mut().unwrap().service_name = Some("elsewhere".into());
    }
    observed.workload = Some(stored(live));
    let planned = plan(&facts, &observed, &choice);
    assert!(matches!(
        &planned.report.workload,
        WorkloadReport::ImmutableField { field, .. } if field == "spec.serviceName"
    ));
    assert!(planned.writes.is_empty());
    assert_eq!(planned.requeue, Requeue::Immutable);
}

#[test]
fn the_mssql_config_secret_comes_and_goes_with_client_tls() {
    let db: MSSQLServer = load("mssql-client-tls.yaml");
    let facts = DbFacts::of(&db);
    let choice = sts_choice(facts.kind);
    let mut observed = provisioned_objects(&facts);
    observed.tls_secrets = tls_ready(&facts);
    assert_eq!(
        writes(&plan(&facts, &observed, &choice)),
        ["config", "workload"]
    );

    let mut without: MSSQLServer = load("mssql-client-tls.yaml");
    without.spec.tls.as_mut().unwrap().client_tls = Some(false);
    let facts = DbFacts::of(&without);
    observed.config_secret = Some(ours(&facts, secret("ms-db-config", &["mssql.conf"])));
    let planned = plan(&facts, &observed, &choice);
    assert!(matches!(planned.deletes.as_slice(), [Delete::Secret(_)]));
    // Someone else's Secret of that name is left alone.
    observed
        .config_secret
        .as_mut()
        .unwrap()
        .metadata
        .owner_references = None;
    assert!(plan(&facts, &observed, &choice).deletes.is_empty());
}

#[test]
fn a_proxysql_from_acme_needs_only_its_server_secret_and_no_ca() {
    let db: dbtls_contract::api::ProxySQL = load("proxysql-tls.yaml");
    let facts = DbFacts::of(&db);
    let server = crate::desired::AcmeAliases(vec!["server"]);
    let all = crate::desired::AcmeAliases(vec!["server", "client", "metrics-exporter"]);
    for (what, acme, secrets, want_workload) in [
        (
            "a CA issuer: every alias and the bundle",
            Default::default(),
            4,
            false,
        ),
        ("ACME: the server Secret only", all.clone(), 1, true),
        (
            "ACME for the server only: client and exporter still need ca.crt",
            server,
            3,
            false,
        ),
    ] {
        let mut observed = provisioned_objects(&facts);
        observed.backend = Some(crate::backend::Backend {
            kind: dbtls_contract::DbKind::MySQL,
            name: "my-db".into(),
            phase: Some(dbtls_contract::api::DatabasePhase::Ready),
            tls: None,
        });
        observed.acme = acme;
        let names = crate::desired::mounted_tls_secrets(&facts, &observed.acme);
        assert_eq!(names.len(), secrets, "{what}: {names:?}");
        // What an ACME issuer writes: no ca.crt in any Secret, and no bundle.
        observed.tls_secrets = names
            .iter()
            .map(|n| (n.clone(), Some(secret(n, &["tls.crt", "tls.key"]))))
            .collect();
        let planned = plan(&facts, &observed, &sts_choice(facts.kind));
        assert_eq!(
            writes(&planned).contains(&"workload"),
            want_workload,
            "{what}: {:?}",
            planned.report.tls
        );
    }
}

#[test]
fn the_stats_service_follows_spec_monitor() {
    let db: MySQL = load("mysql-monitor.yaml");
    let facts = DbFacts::of(&db);
    let mut observed = provisioned_objects(&facts);
    observed.tls_secrets = tls_ready(&facts);
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    let stats: Vec<&Service> = planned
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::Service { desired, .. } => Some(&**desired),
            _ => None,
        })
        .collect();
    assert_eq!(stats.len(), 1, "only the stats Service is new");
    assert_eq!(stats[0].metadata.name.as_deref(), Some("mon-db-stats"));
    let annotations = stats[0].metadata.annotations.clone().unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "56790");
    assert!(writes(&planned).contains(&"config"), "exporter.cnf");

    // The monitor removed: the stats Service goes, and only if it is the database's.
    let mut unmonitored = db.clone();
    unmonitored.spec.monitor = None;
    let facts = DbFacts::of(&unmonitored);
    observed.services.push(ours(&facts, stats[0].clone()));
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    assert!(
        planned.deletes.iter().any(
            |d| matches!(d, Delete::Service(s) if s.metadata.name.as_deref() == Some("mon-db-stats"))
        ),
        "{:?}",
        planned.deletes
    );
    observed
        .services
        .last_mut()
        .unwrap()
        .metadata
        .owner_references = None;
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    assert!(
        !planned
            .deletes
            .iter()
            .any(|d| matches!(d, Delete::Service(_)))
    );
}

#[test]
fn a_service_monitor_follows_the_operator_agent_where_it_is_served() {
    let operator: MySQL = parse(
        "metadata: {name: sm, namespace: demo, uid: u1}\nspec:\n  version: '8.4.3'\n  storageType: Ephemeral\n  monitor:\n    agent: prometheus.io/operator\n    prometheus: {serviceMonitor: {labels: {release: prom}, interval: 10s}}\n",
    );
    let mut builtin = operator.clone();
    builtin.spec.monitor = Some(parse("agent: prometheus.io/builtin"));
    let facts = DbFacts::of(&operator);
    let monitors = |planned: &Plan| -> (Vec<ServiceMonitor>, usize) {
        let written = planned
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::ServiceMonitor { desired, .. } => Some((**desired).clone()),
                _ => None,
            })
            .collect();
        let deleted = planned
            .deletes
            .iter()
            .filter(|d| matches!(d, Delete::ServiceMonitor(_)))
            .count();
        (written, deleted)
    };
    // Served: written, selecting the stats Service by the database's labels and its role.
    let mut observed = provisioned_objects(&facts);
    observed.service_monitors_served = true;
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    let (written, deleted) = monitors(&planned);
    assert_eq!((written.len(), deleted), (1, 0));
    let sm = &written[0];
    assert_eq!(sm.metadata.name.as_deref(), Some("sm-stats"));
    assert_eq!(sm.metadata.labels.as_ref().unwrap()["release"], "prom");
    let selector = sm.spec.selector.match_labels.clone().unwrap();
    assert_eq!(selector["kubedb.com/role"], "stats");
    assert_eq!(selector["app.kubernetes.io/instance"], "sm");
    assert_eq!(sm.spec.endpoints[0].port, "metrics");
    assert_eq!(sm.spec.endpoints[0].interval.as_deref(), Some("10s"));
    // Up to date in the cache: not written again.
    observed.service_monitor = Some(ours(&facts, sm.clone()));
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    assert_eq!(monitors(&planned).0.len(), 0);
    // Another agent: the database's ServiceMonitor goes.
    let other = DbFacts::of(&builtin);
    let planned = plan(&other, &observed, &sts_choice(other.kind));
    assert_eq!(monitors(&planned).1, 1);
    // Not served: nothing written, and WorkloadReady says why.
    let mut unserved = provisioned_objects(&facts);
    unserved.service_monitors_served = false;
    let planned = plan(&facts, &unserved, &sts_choice(facts.kind));
    assert_eq!(monitors(&planned), (Vec::new(), 0));
    match &planned.report.workload {
        WorkloadReport::Exists { what, .. } => {
            assert!(
                what.contains("ServiceMonitors (monitoring.coreos.com/v1) are not served"),
                "{what}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_proxysql_waits_for_its_backend_and_reaches_it_with_the_backends_certificates() {
    use crate::backend::{Backend, BackendTls};
    use dbtls_contract::api::{DatabasePhase, ProxySQL};
    let db: ProxySQL = load("proxysql-tls.yaml");
    let facts = DbFacts::of(&db);
    let backend = |phase, tls: bool| Backend {
        kind: dbtls_contract::DbKind::MySQL,
        name: "my-db".into(),
        phase: Some(phase),
        tls: tls.then(|| BackendTls {
            ca_bundle: "my-db-ca-bundle".into(),
            client_secret: "my-db-client-cert".into(),
        }),
    };
    let workload_of = |planned: &Plan| {
        planned.writes.iter().find_map(|w| match w {
            Write::Workload { desired, .. } => Some(desired.to_value().unwrap().to_string()),
            _ => None,
        })
    };
    let not_created = |planned: &Plan| match &planned.report.workload {
        WorkloadReport::NotCreated(why) => why.clone(),
        other => panic!("{other:?}"),
    };
    let mut observed = provisioned_objects(&facts);
    observed.tls_secrets = tls_ready(&facts);
    // No backend: no workload, and the condition names what is missing.
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    assert!(workload_of(&planned).is_none());
    assert!(
        not_created(&planned).contains("no MySQL or PerconaXtraDB my-db in namespace demo"),
        "{}",
        not_created(&planned)
    );
    // Not Ready yet.
    observed.backend = Some(backend(DatabasePhase::Provisioning, false));
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    assert!(not_created(&planned).contains("its backend MySQL my-db is not Ready (Provisioning)"));
    // Ready without TLS: the workload, with no backend certificates.
    observed.backend = Some(backend(DatabasePhase::Ready, false));
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    let workload = workload_of(&planned).expect("a workload");
    assert!(!workload.contains("BACKEND_TLS_ENABLED"));
    // Ready with TLS: its bundle and client Secret are waited for, then mounted.
    observed.backend = Some(backend(DatabasePhase::Ready, true));
    let mut waiting = observed.clone();
    for name in ["my-db-ca-bundle", "my-db-client-cert"] {
        // As observe lists them: the backend's Secrets after the database's own.
        waiting.tls_secrets.push((name.into(), None));
    }
    let planned = plan(&facts, &waiting, &sts_choice(facts.kind));
    assert!(workload_of(&planned).is_none());
    assert!(
        matches!(&planned.report.tls, Some(TlsSecretsState::Missing(m)) if m.len() == 2),
        "{:?}",
        planned.report.tls
    );
    let mut with_backend = observed.clone();
    let mut client = secret("my-db-client-cert", &["ca.crt", "tls.crt", "tls.key"]);
    client.metadata.labels = Some(dbtls_contract::labels::for_database(
        dbtls_contract::DbKind::MySQL,
        "my-db",
    ));
    let mut bundle = secret("my-db-ca-bundle", &["ca.crt"]);
    bundle.type_ = Some("Opaque".into());
    with_backend
        .tls_secrets
        .push(("my-db-ca-bundle".into(), Some(bundle)));
    with_backend
        .tls_secrets
        .push(("my-db-client-cert".into(), Some(client)));
    let planned = plan(&facts, &with_backend, &sts_choice(facts.kind));
    let workload = workload_of(&planned).expect("a workload");
    for needle in [
        "BACKEND_TLS_ENABLED",
        "/var/lib/certs",
        "\"my-db-client-cert\"",
        "\"my-db-ca-bundle\"",
    ] {
        assert!(workload.contains(needle), "{needle}");
    }
    // A running ProxySQL is not taken down when its backend goes.
    let mut running = observed.clone();
    running.backend = None;
    running.workload = planned.writes.iter().find_map(|w| match w {
        Write::Workload { desired, .. } => Some(stored((**desired).clone())),
        _ => None,
    });
    assert!(running.workload.is_some());
    let planned = plan(&facts, &running, &sts_choice(facts.kind));
    assert!(
        matches!(planned.report.workload, WorkloadReport::Exists { .. }),
        "{:?}",
        planned.report.workload
    );
}

#[test]
fn without_tls_the_workload_follows_at_once() {
    let db: MySQL = load("mysql-no-tls.yaml");
    let facts = DbFacts::of(&db);
    let planned = plan(
        &facts,
        &provisioned_objects(&facts),
        &sts_choice(facts.kind),
    );
    assert_eq!(planned.report.tls, Some(TlsSecretsState::NotConfigured));
    assert_eq!(writes(&planned), ["workload"]);
}

#[test]
fn settling_reports_what_the_writes_found() {
    let db: MySQL = load("mysql-no-tls.yaml");
    let facts = DbFacts::of(&db);
    let choice = sts_choice(facts.kind);
    let observed = provisioned_objects(&facts);
    let planned = plan(&facts, &observed, &choice);

    let clean = settle(
        &facts,
        &observed,
        &choice,
        planned.clone(),
        &Outcome::default(),
    );
    assert_eq!(clean, (planned.report.clone(), planned.requeue));

    let conflict = Outcome {
        conflict: Some("Service my-db".into()),
        ..Outcome::default()
    };
    let (report, requeue) = settle(&facts, &observed, &choice, planned.clone(), &conflict);
    assert_eq!(
        report.invalid.as_ref().map(Invalid::reason),
        Some(Reason::NameConflict)
    );
    assert!(
        report
            .invalid
            .unwrap()
            .to_string()
            .contains("Service my-db")
    );
    assert_eq!(requeue, Requeue::Wait);

    let refused = Outcome {
        refused: Some("spec: Forbidden".into()),
        ..Outcome::default()
    };
    let (report, requeue) = settle(&facts, &observed, &choice, planned, &refused);
    assert!(matches!(
        report.workload,
        WorkloadReport::ImmutableField { field, .. } if field.contains("spec: Forbidden")
    ));
    assert_eq!(requeue, Requeue::Immutable);
}

/// A three-node PerconaXtraDB whose `spec.tls` was just removed, and what it ran with TLS.
fn galera_leaving_tls() -> (
    dbtls_contract::api::PerconaXtraDB,
    crate::desired::DesiredWorkload,
) {
    let with_tls: dbtls_contract::api::PerconaXtraDB = load("percona-tls.yaml");
    let mut without = with_tls.clone();
    without.spec.tls = None;
    without.spec.require_ssl = None;
    let built = crate::desired::workload_for(
        &DbFacts::of(&with_tls),
        "img",
        WorkloadApi::StatefulSet,
        &Observed::default(),
    );
    (without, built)
}

#[test]
fn a_galera_cluster_leaving_tls_reports_its_bridge_as_a_rollout_step() {
    let (without, built) = galera_leaving_tls();
    let facts = DbFacts::of(&without);
    let live = built.workloads[0].clone();
    let mut observed = provisioned_objects(&facts);
    observed.workload = Some(stored(live));
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    assert!(
        writes(&planned).contains(&"workload"),
        "{:?}",
        planned.report
    );
    match &planned.report.workload {
        WorkloadReport::Exists { rolling, .. } => {
            let rolling = rolling.clone().unwrap();
            assert!(rolling.contains("socket.dynamic"), "{rolling}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_galera_cluster_leaving_tls_restarts_no_node_before_its_pods_read_plaintext_transfers() {
    let (without, built) = galera_leaving_tls();
    let facts = DbFacts::of(&without);
    let mut observed = provisioned_objects(&facts);
    observed.workload = Some(stored(built.workloads[0].clone()));
    observed.config_secret = built.config.map(|c| ours(&facts, c));
    observed.clock = crate::observe::Clock {
        now: 1_000,
        secret_propagation: std::time::Duration::from_secs(90),
    };
    let planned = plan(&facts, &observed, &sts_choice(facts.kind));
    assert_eq!(
        writes(&planned),
        ["config"],
        "only the transfer setting changes"
    );
    assert_eq!(
        planned.requeue,
        Requeue::After(std::time::Duration::from_secs(90))
    );
    match &planned.report.workload {
        WorkloadReport::Exists { rolling, .. } => {
            assert!(rolling.clone().unwrap().contains("--secret-propagation"));
        }
        other => panic!("{other:?}"),
    }
}
