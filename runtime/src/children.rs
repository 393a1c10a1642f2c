//! The objects an operator creates for a database (its children): applied only when the live
//! object differs from the desired one, never over or onto an object the database does not
//! control, deleted only when the database controls them.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube::api::Api;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{diff, ssa};

/// What [`apply_owned`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Unchanged,
    Created,
    Updated,
    /// An object of that name exists and the database does not control it: left alone.
    Foreign,
}

/// Whether `owners` names the object of uid `owner_uid` as controller.
pub fn controlled_by(owners: &[OwnerReference], owner_uid: &str) -> bool {
    owners
        .iter()
        .any(|o| o.uid == owner_uid && o.controller == Some(true))
}

fn controlled(meta: &ObjectMeta, owner_uid: &str) -> bool {
    controlled_by(
        meta.owner_references.as_deref().unwrap_or_default(),
        owner_uid,
    )
}

/// Applies `desired` (named `name`) for the database of uid `owner_uid`. `cached` is what the
/// operator's watch cache holds under that name; absent from a cache that only holds the
/// operator's own (labelled) objects, the object is read once, since someone else's object of
/// that name would not be in it. A create is an apply without force and an update carries the
/// uid read, so an object someone else makes in between is never overwritten (409).
pub async fn apply_owned<T>(
    api: &Api<T>,
    name: &str,
    desired: &T,
    cached: Option<&T>,
    owner_uid: &str,
    manager: &str,
) -> kube::Result<Applied>
where
    T: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let fetched;
    let live = match cached {
        Some(live) => Some(live),
        None => {
            fetched = api.get_opt(name).await?;
            fetched.as_ref()
        }
    };
    match live {
        Some(live) if !controlled(live.meta(), owner_uid) => Ok(Applied::Foreign),
        Some(live) if diff::up_to_date(desired, live) => Ok(Applied::Unchanged),
        Some(live) => {
            let uid = live.meta().uid.clone().unwrap_or_default();
            ssa::update(api, name, manager, desired, &uid).await?;
            Ok(Applied::Updated)
        }
        None => {
            ssa::create(api, name, manager, desired).await?;
            Ok(Applied::Created)
        }
    }
}

/// Deletes `live` if the database of uid `owner_uid` controls it; an object of the same name
/// that someone else made is never deleted. Returns whether a delete was sent.
pub async fn delete_owned<T>(api: &Api<T>, live: &T, owner_uid: &str) -> kube::Result<bool>
where
    T: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let meta = live.meta();
    let (Some(name), Some(uid)) = (meta.name.as_deref(), meta.uid.as_deref()) else {
        return Ok(false);
    };
    if !controlled(meta, owner_uid) {
        return Ok(false);
    }
    ssa::delete_uid(api, name, uid).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str, controller: Option<bool>) -> OwnerReference {
        OwnerReference {
            uid: uid.into(),
            controller,
            ..Default::default()
        }
    }

    #[test]
    fn only_a_controller_reference_counts() {
        assert!(controlled_by(&[owner("db", Some(true))], "db"));
        assert!(!controlled_by(&[owner("db", None)], "db"));
        assert!(!controlled_by(&[owner("other", Some(true))], "db"));
        assert!(!controlled_by(&[], "db"));
    }
}
