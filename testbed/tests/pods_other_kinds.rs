//! The real-pods tier for the kinds whose engines cannot run on the test node (ProxySQL's,
//! SingleStore's and SQL Server's images are not there, and no registry is reachable): their
//! TLS is covered by the testbed's checks. What the node does prove is that the kubelet accepts
//! their workloads — it mounts every projected TLS volume and the config Secret, then waits for
//! the image — and that the database says so in the kubelet's words. KubeDB runs SingleStore and
//! SQL Server on PetSets, whose controller is not on the test node: the provisioner runs with
//! `--workload=statefulset` here, which gives the same pod template to a controller that is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pods_support;

use dbtls_contract::DbKind;
use pods_support::{POD_READY, real_pods};
use testbed::harness::{Env, EnvOptions};

async fn waits_for_its_image(kind: DbKind) {
    let env = Env::start(EnvOptions {
        provisioner_args: vec!["--workload=statefulset".to_string()],
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    let name = format!("{}-img", kind.profile().plural.trim_end_matches('s'));
    env.apply_yaml(&Env::tls_database(kind, &name, "Issuer", "ca"))
        .await
        .unwrap();
    let pod = format!("{name}-0");
    let message = env
        .eventually("WorkloadReady naming the image wait", POD_READY, || async {
            let c = env.condition(kind, &name, "WorkloadReady").await?;
            Ok(c.and_then(|c| c.message).filter(|m| {
                m.contains(&format!("pod {pod}"))
                    && (m.contains("ErrImagePull") || m.contains("ImagePullBackOff"))
            }))
        })
        .await
        .unwrap();
    // Waiting for the image means every volume was mounted: the kubelet took the pod spec.
    assert!(
        !message.contains("FailedMount") && !message.contains("CreateContainerConfigError"),
        "{message}"
    );
    let ready = env.condition(kind, &name, "Ready").await.unwrap().unwrap();
    assert_eq!(ready.status, "False");
    println!(
        "pods_other_kinds: {}: engine image not on this node, TLS covered by the testbed tier; the kubelet accepted the workload and the database says: {message}",
        kind.profile().kind
    );
}

#[tokio::test]
async fn proxysql_workload_is_accepted_and_waits_for_its_image() {
    if real_pods("proxysql_workload_is_accepted_and_waits_for_its_image") {
        waits_for_its_image(DbKind::ProxySQL).await;
    }
}

#[tokio::test]
async fn singlestore_workload_is_accepted_and_waits_for_its_image() {
    if real_pods("singlestore_workload_is_accepted_and_waits_for_its_image") {
        waits_for_its_image(DbKind::Singlestore).await;
    }
}

#[tokio::test]
async fn mssqlserver_workload_is_accepted_and_waits_for_its_image() {
    if real_pods("mssqlserver_workload_is_accepted_and_waits_for_its_image") {
        waits_for_its_image(DbKind::MSSQLServer).await;
    }
}
