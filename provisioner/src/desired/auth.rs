//! The auth Secret `<db>-auth`: created once with a random password, never rewritten.
use std::collections::BTreeMap;

use dbtls_contract::names;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::Rng;
use rand::distr::Alphanumeric;

use super::child_meta;
use crate::facts::DbFacts;

pub const USERNAME_KEY: &str = "username";
pub const PASSWORD_KEY: &str = "password";
pub const BASIC_AUTH_TYPE: &str = "kubernetes.io/basic-auth";
/// 32 alphanumeric characters: ~190 bits, and safe in any shell, URL or config file.
pub const PASSWORD_LENGTH: usize = 32;

/// A password from the thread-local CSPRNG (ChaCha, seeded and reseeded from the OS).
pub fn generate_password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LENGTH)
        .map(char::from)
        .collect()
}

/// The auth Secret to create when none exists: `username` = the kind's admin user.
pub fn auth_secret(db: &DbFacts<'_>, password: &str) -> Secret {
    Secret {
        metadata: child_meta(db, names::auth_secret(&db.name)),
        type_: Some(BASIC_AUTH_TYPE.to_string()),
        data: Some(BTreeMap::from([
            (
                USERNAME_KEY.to_string(),
                ByteString(db.kind.profile().admin_user.as_bytes().to_vec()),
            ),
            (
                PASSWORD_KEY.to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

/// The same Secret without the database as owner, for `deletionPolicy` Halt/Delete (the Secret
/// must outlive the database). Carries the live data so that the apply keeps every field.
pub fn released_auth_secret(live: &Secret) -> Secret {
    let mut released = Secret {
        metadata: live.metadata.clone(),
        type_: live.type_.clone(),
        data: live.data.clone(),
        ..Secret::default()
    };
    released.metadata.owner_references = None;
    released.metadata.managed_fields = None;
    released.metadata.uid = None;
    released.metadata.creation_timestamp = None;
    released.metadata.generation = None;
    released.metadata.annotations = None;
    released
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::facts::fixtures;
    use dbtls_contract::api::MySQL;

    #[test]
    fn passwords_are_long_alphanumeric_and_distinct() {
        let a = generate_password();
        let b = generate_password();
        assert!(a.len() >= 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        // 62^32 values: a biased or constant generator shows up as a tiny character set.
        let distinct: std::collections::BTreeSet<char> = (0..20)
            .flat_map(|_| generate_password().chars().collect::<Vec<_>>())
            .collect();
        assert!(
            distinct.len() > 40,
            "only {} distinct characters",
            distinct.len()
        );
    }

    /// At least 128 bits of entropy: length × log2(alphabet) with the alphabet the generator
    /// draws from (62 alphanumerics), and no repeats across many draws.
    #[test]
    fn passwords_carry_at_least_128_bits_and_never_repeat() {
        const ALPHABET: f64 = 62.0;
        assert!(PASSWORD_LENGTH as f64 * ALPHABET.log2() >= 128.0);
        let draws: std::collections::HashSet<String> =
            (0..10_000).map(|_| generate_password()).collect();
        assert_eq!(draws.len(), 10_000, "a password repeated");
        assert!(
            draws
                .iter()
                .all(|p| p.len() == PASSWORD_LENGTH && p.chars().all(|c| c.is_ascii_alphanumeric()))
        );
        // Every character of the alphabet shows up: the generator really draws from all 62.
        let used: std::collections::BTreeSet<char> = draws.iter().flat_map(|p| p.chars()).collect();
        assert_eq!(used.len(), 62);
    }

    #[test]
    fn auth_secret_is_basic_auth_for_the_admin_user() {
        let db: MySQL = fixtures::load("mysql-require-ssl.yaml");
        let facts = DbFacts::of(&db);
        let secret = auth_secret(&facts, "pw");
        assert_eq!(secret.metadata.name.as_deref(), Some("my-db-auth"));
        assert_eq!(secret.type_.as_deref(), Some(BASIC_AUTH_TYPE));
        let data = secret.data.unwrap();
        assert_eq!(data[USERNAME_KEY].0, b"root");
        assert_eq!(data[PASSWORD_KEY].0, b"pw");
        let owner = &secret.metadata.owner_references.unwrap()[0];
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.kind, "MySQL");
    }
}
