//! PerconaXtraDB's Galera cluster: the server arguments that make the pods of one workload one
//! cluster, and (with `spec.tls`) encrypt its replication and state transfers with the server
//! certificate.
//!
//! Peers are addressed by their stable DNS names under the governing Service, which publishes
//! not-ready pods (a joiner is not ready while it receives its state transfer). The joiner's
//! receive address is its own DNS name rather than its IP, so a donor verifying the joiner's
//! certificate checks a name the server certificate carries (`*.<db>-pods.<ns>.svc`).
//! Which node bootstraps the cluster and the path of the Galera library are the image's
//! business (its entrypoint and `my.cnf`), as in Percona's images. Switching TLS on a running
//! cluster is [`super::galera_switch`]'s.
use dbtls_contract::names;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};

use super::galera_switch::{DYNAMIC, PROVIDER_OPTIONS, Replication, SSL_ON};
use super::server_tls::{CA_KEY, CERT_KEY, KEY_KEY, percona_server_dir};
use crate::facts::DbFacts;

/// The pod's own name, for the receive address (Kubernetes expands `$(POD_NAME)` in args).
pub const POD_NAME_ENV: &str = "POD_NAME";

/// `<db>-<i>.<db>-pods.<ns>.svc` for every replica.
fn peers(db: &DbFacts<'_>) -> Vec<String> {
    let service = names::governing_service(&db.name);
    (0..db.replicas().max(1))
        .map(|i| format!("{}-{i}.{service}.{}.svc", db.name, db.namespace))
        .collect()
}

/// The Galera arguments of a PerconaXtraDB server; replication with TLS uses the server
/// certificate's directory.
pub fn args(db: &DbFacts<'_>, replication: Replication) -> Vec<String> {
    let service = names::governing_service(&db.name);
    let mut args = vec![
        "--wsrep-on=ON".to_string(),
        format!("--wsrep-cluster-name={}", db.name),
        format!("--wsrep-cluster-address=gcomm://{}", peers(db).join(",")),
        format!(
            "--wsrep-sst-receive-address=$({POD_NAME_ENV}).{service}.{}.svc",
            db.namespace
        ),
        "--binlog-format=ROW".to_string(),
        "--innodb-autoinc-lock-mode=2".to_string(),
    ];
    if replication != Replication::Plain {
        // Group communication over TLS, verified against the CA. State transfers are set apart,
        // in the config Secret's `[sst]` group (see galera_switch).
        let dir = percona_server_dir();
        let mut options = vec![
            SSL_ON.to_string(),
            format!("socket.ssl_ca={dir}/{CA_KEY}"),
            format!("socket.ssl_cert={dir}/{CERT_KEY}"),
            format!("socket.ssl_key={dir}/{KEY_KEY}"),
        ];
        if replication == Replication::Bridge {
            options.insert(1, DYNAMIC.to_string());
        }
        args.push(format!("{PROVIDER_OPTIONS}{}", options.join(";")));
    }
    args
}

/// The environment the Galera arguments refer to.
pub fn env() -> Vec<EnvVar> {
    vec![EnvVar {
        name: POD_NAME_ENV.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".to_string()),
                field_path: "metadata.name".to_string(),
            }),
            ..EnvVarSource::default()
        }),
    }]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::facts::fixtures::parse;
    use dbtls_contract::api::PerconaXtraDB;

    fn percona(replicas: i32) -> PerconaXtraDB {
        parse(&format!(
            "apiVersion: kubedb.com/v1\nkind: PerconaXtraDB\nmetadata: {{name: px, namespace: shop}}\nspec:\n  version: \"8.0.40\"\n  replicas: {replicas}\n"
        ))
    }

    #[test]
    fn every_replica_is_a_peer_by_its_stable_dns_name() {
        let db = percona(3);
        let args = args(&DbFacts::of(&db), Replication::Plain);
        assert!(args.contains(
            &"--wsrep-cluster-address=gcomm://px-0.px-pods.shop.svc,px-1.px-pods.shop.svc,px-2.px-pods.shop.svc"
                .to_string()
        ));
        assert!(args.contains(&"--wsrep-cluster-name=px".to_string()));
        assert!(
            args.contains(&"--wsrep-sst-receive-address=$(POD_NAME).px-pods.shop.svc".to_string())
        );
        assert!(
            !args.iter().any(|a| a.contains("socket.ssl")),
            "no TLS without spec.tls: {args:?}"
        );
    }

    #[test]
    fn tls_encrypts_group_communication_with_the_server_certificate() {
        let db = percona(1);
        let args = args(&DbFacts::of(&db), Replication::Tls);
        let options = args
            .iter()
            .find_map(|a| a.strip_prefix("--wsrep-provider-options="))
            .unwrap();
        assert_eq!(
            options,
            "socket.ssl=YES;socket.ssl_ca=/etc/mysql/certs/server/ca.crt;socket.ssl_cert=/etc/mysql/certs/server/tls.crt;socket.ssl_key=/etc/mysql/certs/server/tls.key"
        );
        assert!(
            args.contains(&"--wsrep-cluster-address=gcomm://px-0.px-pods.shop.svc".to_string())
        );
    }

    #[test]
    fn the_receive_address_refers_to_the_pod_name_variable() {
        let env = env();
        assert_eq!(env[0].name, POD_NAME_ENV);
        let field = env[0].value_from.clone().unwrap().field_ref.unwrap();
        assert_eq!(field.field_path, "metadata.name");
    }
}
