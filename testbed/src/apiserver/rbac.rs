//! Authorization from the stored `rbac.authorization.k8s.io/v1` objects, after kube-apiserver's
//! RBAC authorizer, so tests can check that the operators' ClusterRoles and Roles grant exactly
//! what the binaries use. ClusterRole aggregation and the escalation checks on RBAC writes are
//! not modelled.
use serde_json::Value;

use super::store::Store;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Who a request is: the user name and the groups kube's authenticators would add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The groups kube gives a user name: service-account tokens carry the service-account
    /// groups, `admin` stands for a cluster-admin certificate (`system:masters`), and the
    /// anonymous user is unauthenticated.
    pub fn from_name(name: &str) -> UserInfo {
        let mut groups = Vec::new();
        if name == "system:anonymous" {
            groups.push("system:unauthenticated".to_string());
        } else {
            if name == "admin" {
                groups.push("system:masters".to_string());
            }
            if let Some((ns, _)) = service_account_of(name) {
                groups.push("system:serviceaccounts".to_string());
                groups.push(format!("system:serviceaccounts:{ns}"));
            }
            groups.push("system:authenticated".to_string());
        }
        UserInfo {
            name: name.to_string(),
            groups,
        }
    }

    fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// `system:masters` bypasses authorization in kube-apiserver.
    pub fn is_superuser(&self) -> bool {
        self.in_group("system:masters")
    }

    pub fn is_authenticated(&self) -> bool {
        self.in_group("system:authenticated")
    }
}

/// `(namespace, name)` of a `system:serviceaccount:<ns>:<name>` user.
fn service_account_of(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// What a resource request asks to do, in RBAC's terms.
#[derive(Debug, Clone, Copy)]
pub struct ResourceAttributes<'a> {
    /// RBAC verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'a str,
    pub group: &'a str,
    /// Plural resource.
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// The object name; also set for list/watch pinned by `metadata.name`, as kube does.
    pub name: Option<&'a str>,
}

/// kube's message for a denied resource request, e.g. `secrets "x" is forbidden: User "u"
/// cannot get resource "secrets" in API group "" in the namespace "demo"`.
pub fn forbidden_message(user: &str, a: &ResourceAttributes<'_>) -> String {
    let resource = match a.subresource {
        Some(sub) => format!("{}/{sub}", a.resource),
        None => a.resource.to_string(),
    };
    let scope = match a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let reason = format!(
        "User \"{user}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        a.verb, a.group
    );
    let qualified = if a.group.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    match a.name.filter(|n| !n.is_empty()) {
        Some(name) => format!("{qualified} \"{name}\" is forbidden: {reason}"),
        None => format!("{qualified} is forbidden: {reason}"),
    }
}

/// kube's message for a denied non-resource request.
pub fn forbidden_path_message(user: &str, verb: &str, path: &str) -> String {
    format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\"")
}

/// Whether a non-resource request is allowed: kube's default `system:public-info-viewer` and
/// `system:discovery` bindings, which is all the testbed serves outside resources.
pub fn non_resource_allowed(user: &UserInfo, path: &str) -> bool {
    let public = ["/version", "/healthz", "/livez", "/readyz"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    user.is_superuser() || public || user.is_authenticated()
}

/// Whether the stored RBAC objects allow the request.
pub fn resource_allowed(store: &Store, user: &UserInfo, a: &ResourceAttributes<'_>) -> bool {
    if user.is_superuser() {
        return true;
    }
    let gr = |plural: &str| (RBAC_GROUP.to_string(), plural.to_string());
    let cluster_role_rules = |name: &str| -> Vec<Value> {
        store
            .get(&gr("clusterroles"), &(String::new(), name.to_string()))
            .map(|r| rules_of(&r))
            .unwrap_or_default()
    };
    for (_, binding) in store.iter(&gr("clusterrolebindings"), None) {
        if binding_applies(binding, user, None)
            && role_ref(binding, "ClusterRole")
                .is_some_and(|name| cluster_role_rules(name).iter().any(|r| rule_allows(r, a)))
        {
            return true;
        }
    }
    let Some(ns) = a.namespace else {
        return false;
    };
    for (_, binding) in store.iter(&gr("rolebindings"), Some(ns)) {
        if !binding_applies(binding, user, Some(ns)) {
            continue;
        }
        let rules = match (role_ref(binding, "Role"), role_ref(binding, "ClusterRole")) {
            (Some(name), _) => store
                .get(&gr("roles"), &(ns.to_string(), name.to_string()))
                .map(|r| rules_of(&r))
                .unwrap_or_default(),
            (None, Some(name)) => cluster_role_rules(name),
            (None, None) => Vec::new(),
        };
        if rules.iter().any(|r| rule_allows(r, a)) {
            return true;
        }
    }
    false
}

/// The role name a binding's `roleRef` points at, if it is of `kind`.
fn role_ref<'a>(binding: &'a Value, kind: &str) -> Option<&'a str> {
    let r = binding.get("roleRef")?;
    (r.get("kind").and_then(Value::as_str) == Some(kind))
        .then(|| r.get("name").and_then(Value::as_str))
        .flatten()
}

fn rules_of(role: &Value) -> Vec<Value> {
    role.get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn strings<'a>(v: &'a Value, field: &str) -> Vec<&'a str> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether one of the binding's subjects is the user (kube's `appliesToUser`); a
/// ServiceAccount subject without a namespace means the binding's namespace.
fn binding_applies(binding: &Value, user: &UserInfo, binding_ns: Option<&str>) -> bool {
    let Some(subjects) = binding.get("subjects").and_then(Value::as_array) else {
        return false;
    };
    subjects.iter().any(|s| {
        let field = |f: &str| s.get(f).and_then(Value::as_str).unwrap_or_default();
        match field("kind") {
            "User" => field("name") == user.name,
            "Group" => user.in_group(field("name")),
            "ServiceAccount" => {
                let ns = Some(field("namespace"))
                    .filter(|n| !n.is_empty())
                    .or(binding_ns);
                ns.is_some_and(|ns| service_account_of(&user.name) == Some((ns, field("name"))))
            }
            _ => false,
        }
    })
}

/// kube's `RuleAllows` for resource requests: verb, API group, resource (with `*`,
/// `resource/subresource` and `*/subresource`) and resourceNames all match.
fn rule_allows(rule: &Value, a: &ResourceAttributes<'_>) -> bool {
    let verbs = strings(rule, "verbs");
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    let groups = strings(rule, "apiGroups");
    if !groups.iter().any(|g| *g == "*" || *g == a.group) {
        return false;
    }
    let combined = match a.subresource {
        Some(sub) => format!("{}/{sub}", a.resource),
        None => a.resource.to_string(),
    };
    let resources = strings(rule, "resources");
    let resource_ok = resources.iter().any(|r| {
        *r == "*"
            || *r == combined
            || a.subresource
                .is_some_and(|sub| r.strip_prefix("*/") == Some(sub))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(rule, "resourceNames");
    names.is_empty() || a.name.is_some_and(|n| names.contains(&n))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs<'a>(verb: &'a str, resource: &'a str, sub: Option<&'a str>) -> ResourceAttributes<'a> {
        ResourceAttributes {
            verb,
            group: "kubedb.com",
            resource,
            subresource: sub,
            namespace: Some("demo"),
            name: Some("db"),
        }
    }

    #[test]
    fn service_account_users_get_their_groups() {
        let u = UserInfo::from_name("system:serviceaccount:ops:mgr");
        assert_eq!(
            u.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ops",
                "system:authenticated"
            ]
        );
        assert!(!u.is_superuser());
        assert!(UserInfo::from_name("admin").is_superuser());
        assert!(!UserInfo::from_name("system:anonymous").is_authenticated());
    }

    #[test]
    fn rule_matching_follows_kube() {
        let rule = json!({"verbs": ["get", "patch"], "apiGroups": ["kubedb.com"], "resources": ["mysqls/status", "*/finalizers"]});
        assert!(rule_allows(
            &rule,
            &attrs("patch", "mysqls", Some("status"))
        ));
        assert!(rule_allows(
            &rule,
            &attrs("get", "mariadbs", Some("finalizers"))
        ));
        assert!(!rule_allows(&rule, &attrs("patch", "mysqls", None)));
        assert!(!rule_allows(
            &rule,
            &attrs("update", "mysqls", Some("status"))
        ));
        let named = json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "resourceNames": ["db"]});
        assert!(rule_allows(&named, &attrs("delete", "mysqls", None)));
        let mut unnamed = attrs("list", "mysqls", None);
        unnamed.name = None;
        assert!(!rule_allows(&named, &unnamed));
    }

    #[test]
    fn messages_match_kube() {
        let a = ResourceAttributes {
            verb: "get",
            group: "",
            resource: "secrets",
            subresource: None,
            namespace: Some("demo"),
            name: Some("x"),
        };
        assert_eq!(
            forbidden_message("system:serviceaccount:ns:sa", &a),
            "secrets \"x\" is forbidden: User \"system:serviceaccount:ns:sa\" cannot get resource \"secrets\" in API group \"\" in the namespace \"demo\""
        );
        let b = ResourceAttributes {
            verb: "list",
            group: "apiextensions.k8s.io",
            resource: "customresourcedefinitions",
            subresource: None,
            namespace: None,
            name: None,
        };
        assert_eq!(
            forbidden_message("u", &b),
            "customresourcedefinitions.apiextensions.k8s.io is forbidden: User \"u\" cannot list resource \"customresourcedefinitions\" in API group \"apiextensions.k8s.io\" at the cluster scope"
        );
    }
}
