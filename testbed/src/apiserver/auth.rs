//! Authentication: the bearer token (or a `/u/{user}` path prefix) is the user name;
//! authorization is in `rbac`.
use axum::http::HeaderMap;

/// The user a request authenticates as: the bearer token is the user name.
pub fn user_from_headers(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "system:anonymous".to_string())
}

/// kubectl (client-go) does not send bearer tokens over plain HTTP, so kubeconfigs also carry
/// the user in a `/u/{user}` server path prefix: returns the user and the path without it.
pub fn split_user_prefix(path: &str) -> (Option<String>, String) {
    if let Some(rest) = path.strip_prefix("/u/") {
        let (user, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if !user.is_empty() {
            return (Some(user.to_string()), format!("/{tail}"));
        }
    }
    (None, path.to_string())
}
