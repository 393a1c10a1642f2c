//! Parsing request paths into what they address.

/// A resource request path, e.g. `/apis/apps/v1/namespaces/ns/statefulsets/db/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// Legacy `/watch/` path prefix.
    pub legacy_watch: bool,
}

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1`, `/apis/{g}/{v}`
    Resources {
        group: String,
        version: String,
    },
    OpenApiV2,
    OpenApiV3,
    Health,
    Resource(ResourcePath),
    Unknown,
}

pub fn parse(path: &str) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Route::Version,
        ["openapi", "v2"] => return Route::OpenApiV2,
        ["openapi", "v3", ..] => return Route::OpenApiV3,
        ["healthz" | "readyz" | "livez", ..] => return Route::Health,
        ["api"] => return Route::CoreVersions,
        ["apis"] => return Route::Groups,
        ["apis", g] => return Route::Group(g.to_string()),
        ["api", v] => {
            return Route::Resources {
                group: String::new(),
                version: v.to_string(),
            };
        }
        ["apis", g, v] => {
            return Route::Resources {
                group: g.to_string(),
                version: v.to_string(),
            };
        }
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return Route::Unknown,
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let s = |x: &&str| x.to_string();
    let (namespace, resource, name, subresource) = match rest {
        ["namespaces", ns, resource, tail @ ..]
            if !matches!(*resource, "status" | "finalize") || !tail.is_empty() =>
        {
            (
                Some(s(ns)),
                s(resource),
                tail.first().map(s),
                tail.get(1).map(s),
            )
        }
        [resource, tail @ ..] => (None, s(resource), tail.first().map(s), tail.get(1).map(s)),
        [] => return Route::Unknown,
    };
    if rest.len() > 5 {
        return Route::Unknown;
    }
    Route::Resource(ResourcePath {
        group,
        version,
        namespace,
        resource,
        name,
        subresource,
        legacy_watch,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let r = res("/apis/apps/v1/namespaces/ns/statefulsets/db/status");
        assert_eq!(
            (
                r.group.as_str(),
                r.namespace.as_deref(),
                r.resource.as_str()
            ),
            ("apps", Some("ns"), "statefulsets")
        );
        assert_eq!(
            (r.name.as_deref(), r.subresource.as_deref()),
            (Some("db"), Some("status"))
        );
        let r = res("/api/v1/namespaces/ns");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("ns"), None)
        );
        let r = res("/api/v1/namespaces/ns/status");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("ns"), Some("status"))
        );
        let r = res("/api/v1/watch/namespaces/ns/secrets");
        assert!(r.legacy_watch);
        assert_eq!(r.resource, "secrets");
        let r = res("/api/v1/secrets");
        assert_eq!((r.namespace, r.name), (None, None));
        assert_eq!(
            parse("/apis/kubedb.com/v1"),
            Route::Resources {
                group: "kubedb.com".into(),
                version: "v1".into()
            }
        );
    }
}
