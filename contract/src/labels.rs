//! Labels on everything the operators create (and, through `secretTemplate`, on the TLS Secrets),
//! so that both operators watch Secrets by label instead of caching every Secret in the cluster.
use std::collections::BTreeMap;

use crate::kinds::DbKind;

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const MANAGED_BY_VALUE: &str = "kubedb.com";
pub const COMPONENT_DATABASE: &str = "database";
/// Annotation of the CA bundle Secret (`names::ca_bundle`): the serials of the CAs it holds, in
/// order, so that its content is known from metadata alone.
pub const TRUSTED_CA_SERIALS: &str = "kubedb.com/trusted-ca-serials";
/// Annotation of the CA bundle Secret while an issuer change is not over: the serial of the CA
/// it replaces, whose client certificate the Secret keeps until no server trusts that CA.
pub const RETIRED_CA_SERIAL: &str = "kubedb.com/retired-ca-serial";

/// On the pods of a database that runs more than one workload (a SingleStore cluster): the
/// workload's name (KubeDB's `kubedb.com/petset`), so that each workload selects its own pods.
pub const WORKLOAD: &str = "kubedb.com/petset";

/// The four labels on everything the operators create for database `db` of `kind`.
pub fn for_database(kind: DbKind, db: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_string(), kind.label_name()),
        (INSTANCE.to_string(), db.to_string()),
        (MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string()),
        (COMPONENT.to_string(), COMPONENT_DATABASE.to_string()),
    ])
}

/// A label selector matching every pair of `labels` (`k=v,k=v`).
pub fn selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Selector for the objects of one database.
pub fn database_selector(kind: DbKind, db: &str) -> String {
    selector(&for_database(kind, db))
}

/// Selector for every object of every database the operators manage (for Secret watches).
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE}")
}

/// Selector for the objects of one kind's databases.
pub fn kind_selector(kind: DbKind) -> String {
    format!(
        "{MANAGED_BY}={MANAGED_BY_VALUE},{NAME}={}",
        kind.label_name()
    )
}

/// The database an object belongs to, read back from its labels: `(kind, db name)`.
pub fn database_of(labels: &BTreeMap<String, String>) -> Option<(DbKind, &str)> {
    if labels.get(MANAGED_BY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return None;
    }
    let kind = DbKind::from_label_name(labels.get(NAME)?)?;
    Some((kind, labels.get(INSTANCE)?.as_str()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn labels_round_trip_to_the_database() {
        for kind in DbKind::ALL {
            let labels = for_database(kind, "db1");
            assert_eq!(database_of(&labels), Some((kind, "db1")));
        }
    }

    #[test]
    fn a_database_selector_names_all_four_labels() {
        assert_eq!(
            database_selector(DbKind::MySQL, "db1"),
            "app.kubernetes.io/component=database,app.kubernetes.io/instance=db1,app.kubernetes.io/managed-by=kubedb.com,app.kubernetes.io/name=mysqls.kubedb.com"
        );
    }

    #[test]
    fn objects_managed_by_someone_else_are_not_ours() {
        let mut labels = for_database(DbKind::MySQL, "db1");
        labels.insert(MANAGED_BY.into(), "helm".into());
        assert_eq!(database_of(&labels), None);
    }
}
