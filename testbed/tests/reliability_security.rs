//! Reliability §5, secrets stay secret: a full flow of all five kinds with both operators at
//! `--log debug`, then every generated password, every private key (PEM body lines and the
//! stored base64) and the license value are searched for in the operators' logs, in every
//! Event and in every database status. None may appear.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input_support;

use bad_input_support::*;
use dbtls_contract::DbKind;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::DynamicObject;
use testbed::harness::{Env, EnvOptions};

fn db_name(kind: DbKind) -> String {
    format!("sec-{}", kind.profile().plural)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What must never be shown: `(label, needle)`.
fn needles_of_secret_value(label: &str, value: &[u8], out: &mut Vec<(String, String)>) {
    let text = String::from_utf8_lossy(value).to_string();
    if text.contains("PRIVATE KEY-----") {
        for line in text
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        {
            out.push((format!("{label} (PEM line)"), line.to_string()));
        }
    } else {
        out.push((label.to_string(), text));
    }
    // The stored form, as a Secret's `data` would show it in a dumped object.
    let encoded = base64(value);
    let middle = encoded.len() / 2;
    let slice = &encoded[middle.saturating_sub(20)..(middle + 20).min(encoded.len())];
    out.push((format!("{label} (base64)"), slice.to_string()));
}

#[tokio::test]
async fn no_password_key_or_license_appears_in_logs_events_or_status() {
    let env = Env::start(EnvOptions {
        provisioner_args: vec!["--workload=statefulset".into(), "--log=debug".into()],
        ops_manager_args: vec!["--log=debug".into()],
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    env.create_ca_issuer("ca").await.unwrap();
    let license: String = {
        use rand::Rng as _;
        rand::rng()
            .sample_iter(&rand::distr::Alphanumeric)
            .take(40)
            .map(char::from)
            .collect()
    };
    for kind in DbKind::ALL {
        let yaml = Env::tls_database(kind, &db_name(kind), "Issuer", "ca")
            .replace("license: test-license", &format!("license: {license}"));
        env.apply_yaml(&yaml).await.unwrap();
    }
    for kind in DbKind::ALL {
        converged(&env, kind, &db_name(kind)).await;
    }

    // Everything secret that the flow produced or was given.
    let secrets = env.api::<Secret>();
    let mut needles = vec![("license".to_string(), license.clone())];
    for kind in DbKind::ALL {
        let db = db_name(kind);
        let auth = secrets.get(&format!("{db}-auth")).await.unwrap();
        let password = &auth.data.unwrap()["password"].0;
        assert!(password.len() >= 22, "{db}: short password");
        needles_of_secret_value(&format!("{db} password"), password, &mut needles);
        for alias in kind.profile().aliases {
            let name = format!("{db}-{alias}-cert");
            let Some(tls) = secrets.get_opt(&name).await.unwrap() else {
                continue;
            };
            let key = &tls.data.unwrap()["tls.key"].0;
            needles_of_secret_value(&format!("{name} tls.key"), key, &mut needles);
        }
    }
    let ca = secrets.get("ca-ca").await.unwrap();
    needles_of_secret_value("CA tls.key", &ca.data.unwrap()["tls.key"].0, &mut needles);
    assert!(needles.len() > 5 * 4, "too few needles: {}", needles.len());

    // Everything a user or a log pipeline sees.
    let mut haystack = env.logs();
    assert!(
        haystack.contains("DEBUG"),
        "the operators did not log at debug level"
    );
    for ev in env.api::<Event>().list(&Default::default()).await.unwrap() {
        haystack.push_str(&format!("{:?}\n", (ev.reason, ev.note)));
    }
    for ev in env
        .api::<CoreEvent>()
        .list(&Default::default())
        .await
        .unwrap()
    {
        haystack.push_str(&format!("{:?}\n", (ev.reason, ev.message)));
    }
    for kind in DbKind::ALL {
        let resource = kind.api_resource();
        let api =
            kube::Api::<DynamicObject>::namespaced_with(env.client(), env.namespace(), &resource);
        let db = api.get(&db_name(kind)).await.unwrap();
        haystack.push_str(&db.data["status"].to_string());
    }
    let leaks: Vec<&str> = needles
        .iter()
        .filter(|(_, needle)| haystack.contains(needle.as_str()))
        .map(|(label, _)| label.as_str())
        .collect();
    assert!(leaks.is_empty(), "secret material shown: {leaks:?}");
}

#[test]
fn the_base64_needles_match_the_stored_form() {
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"Ma"), "TWE=");
    assert_eq!(base64(b"M"), "TQ==");
}
