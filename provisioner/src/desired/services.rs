//! The primary Service `<db>` and the governing headless Service `<db>-pods`.
use dbtls_contract::{labels, names};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::child_meta;
use crate::facts::DbFacts;

fn port(db: &DbFacts<'_>) -> ServicePort {
    let profile = db.kind.profile();
    ServicePort {
        name: Some(profile.port_name.to_string()),
        port: profile.port,
        target_port: Some(IntOrString::String(profile.port_name.to_string())),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// ClusterIP Service clients connect to: every pod, or a SingleStore cluster's aggregators
/// (its leaves take no client connections).
pub fn primary(db: &DbFacts<'_>) -> Service {
    let selector = match db.parts.first() {
        Some(first) if db.clustered() => super::workload::pod_selector(db, first),
        _ => labels::for_database(db.kind, &db.name),
    };
    Service {
        metadata: child_meta(db, names::primary_service(&db.name)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(selector),
            ports: Some(vec![port(db)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Headless Service giving each pod a stable DNS name (`*.<db>-pods.<ns>.svc`, in the server
/// certificate's SANs); not-ready pods are published so that peers find each other at start.
pub fn governing(db: &DbFacts<'_>) -> Service {
    Service {
        metadata: child_meta(db, names::governing_service(&db.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(labels::for_database(db.kind, &db.name)),
            ports: Some(vec![port(db)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::facts::fixtures;
    use dbtls_contract::api::MSSQLServer;

    #[test]
    fn services_select_the_database_pods_on_the_kind_port() {
        let db: MSSQLServer = fixtures::load("mssql-client-tls.yaml");
        let facts = DbFacts::of(&db);
        let primary = primary(&facts);
        let governing = governing(&facts);
        assert_eq!(primary.metadata.name.as_deref(), Some("ms-db"));
        assert_eq!(governing.metadata.name.as_deref(), Some("ms-db-pods"));
        let spec = governing.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.ports.unwrap()[0].port, 1433);
        assert_eq!(
            spec.selector.unwrap(),
            labels::for_database(dbtls_contract::DbKind::MSSQLServer, "ms-db")
        );
        assert_eq!(primary.spec.unwrap().type_.as_deref(), Some("ClusterIP"));
    }
}
