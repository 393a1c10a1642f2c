//! The HTTP front: authentication, request logging, fault injection, routing, and the
//! get/list/write handlers on top of the store.
pub mod discovery;
pub mod printers;
pub mod protobuf;
pub mod route;
pub mod table;
pub mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth;
use super::config::ApiServerConfig;
use super::events;
use super::faults::{FaultInjector, Injected};
use super::gc::{self, DeleteOpts, DeleteOutcome, Propagation};
use super::rbac;
use super::request_log::{RequestLog, RequestRecord, Verb};
use super::resources::ResourceDef;
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::status::{ApiError, Details};
use super::store::{ObjectKey, Store};
use super::writes::{self, PatchKind, WriteCtx};
use route::{ResourcePath, Route};

/// State shared by all requests.
pub struct Shared {
    store: Mutex<Store>,
    pub config: ApiServerConfig,
    pub log: RequestLog,
    pub faults: FaultInjector,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub address: String,
    compactions_seen: Mutex<u64>,
}

impl Shared {
    pub fn new(
        store: Store,
        config: ApiServerConfig,
        faults: FaultInjector,
        shutdown: tokio::sync::watch::Receiver<bool>,
        address: String,
    ) -> Shared {
        Shared {
            store: Mutex::new(store),
            config,
            log: RequestLog::default(),
            faults,
            shutdown,
            address,
            compactions_seen: Mutex::new(0),
        }
    }

    /// The store lock; never held across an await.
    pub fn lock_store(&self) -> MutexGuard<'_, Store> {
        // A panic inside a critical section leaves consistent-enough state for a test server.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a pending `compact_now()` from the fault injector.
    fn apply_compaction(&self) {
        let wanted = self.faults.compact_requests();
        let mut seen = self
            .compactions_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *seen != wanted {
            *seen = wanted;
            self.lock_store().compact();
        }
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .unwrap_or_default()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

/// The request context the handlers need.
struct Ctx {
    path: ResourcePath,
    query: HashMap<String, String>,
    headers: HeaderMap,
    user: String,
    user_agent: String,
}

impl Ctx {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The single entry point for every request.
pub async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let (path_user, uri_path) = auth::split_user_prefix(req.uri().path());
    let query = parse_query(req.uri().query());
    let headers = req.headers().clone();
    let user = path_user.unwrap_or_else(|| auth::user_from_headers(&headers));
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), 64 << 20).await {
        Ok(b) => b,
        Err(e) => return error_response(&ApiError::bad_request(format!("reading body: {e}"))),
    };
    let latency = shared.faults.latency();
    if latency > Duration::ZERO {
        tokio::time::sleep(latency).await;
    }
    shared.apply_compaction();
    let mut record = RequestRecord {
        at: started,
        method: method.to_string(),
        path: uri_path.clone(),
        verb: Verb::NonResource,
        resource: String::new(),
        group: String::new(),
        subresource: None,
        namespace: None,
        name: None,
        user_agent: user_agent.clone(),
        field_manager: query.get("fieldManager").cloned(),
        user: user.clone(),
        status: 200,
        wrote: false,
    };
    let (response, wrote) = match route::parse(&uri_path) {
        Route::Resource(path) => {
            let verb = verb_of(&method, &path, &query, &headers);
            record.verb = verb;
            record.resource = path.resource.clone();
            record.group = path.group.clone();
            record.subresource = path.subresource.clone();
            record.namespace = path.namespace.clone();
            record.name = path.name.clone();
            let ctx = Ctx {
                path,
                query,
                headers,
                user,
                user_agent,
            };
            serve_resource(&shared, ctx, verb, &body)
        }
        other => {
            let user_info = rbac::UserInfo::from_name(&user);
            if shared.config.enforce_rbac && !rbac::non_resource_allowed(&user_info, &uri_path) {
                let verb = method.as_str().to_lowercase();
                let msg = rbac::forbidden_path_message(&user, &verb, &uri_path);
                (error_response(&ApiError::forbidden(msg)), false)
            } else {
                (serve_non_resource(&shared, other, &method), false)
            }
        }
    };
    record.status = response.status().as_u16();
    record.wrote = wrote;
    shared.log.push(record);
    response
}

fn verb_of(
    method: &Method,
    path: &ResourcePath,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Verb {
    let watch = path.legacy_watch || query.get("watch").is_some_and(|w| w == "true" || w == "1");
    match *method {
        Method::GET if watch => Verb::Watch,
        Method::GET if path.name.is_some() => Verb::Get,
        Method::GET => Verb::List,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if PatchKind::from_content_type(ct) == Some(PatchKind::Apply) {
                Verb::Apply
            } else {
                Verb::Patch
            }
        }
        Method::DELETE if path.name.is_some() => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => Verb::NonResource,
    }
}

fn serve_non_resource(shared: &Shared, route: Route, method: &Method) -> Response {
    if *method != Method::GET {
        return error_response(&ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let store = shared.lock_store();
    let defs = store.defs.values();
    let doc = match route {
        Route::Version => Some(discovery::version()),
        Route::CoreVersions => Some(discovery::core_versions(&shared.address)),
        Route::Groups => Some(discovery::groups(defs)),
        Route::Group(g) => discovery::group(defs, &g),
        Route::Resources { group, version } => discovery::resources(defs, &group, &version),
        Route::OpenApiV3 => Some(discovery::openapi_v3_root()),
        // An empty protobuf document: kubectl finds no schemas and skips client-side validation.
        Route::OpenApiV2 => {
            return Response::builder()
                .status(200)
                .header(
                    "content-type",
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                )
                .body(Body::empty())
                .unwrap_or_default();
        }
        Route::Health => {
            return Response::builder()
                .status(200)
                .body(Body::from("ok"))
                .unwrap_or_default();
        }
        Route::Resource(_) | Route::Unknown => None,
    };
    match doc {
        Some(d) => json_response(200, &d),
        None => error_response(&ApiError::not_found_path()),
    }
}

/// Serves a resource request; the bool says whether stored state changed.
fn serve_resource(shared: &Arc<Shared>, ctx: Ctx, verb: Verb, body: &[u8]) -> (Response, bool) {
    match serve_resource_inner(shared, &ctx, verb, body) {
        Ok(r) => r,
        Err(e) => (error_response(&e), false),
    }
}

fn serve_resource_inner(
    shared: &Arc<Shared>,
    ctx: &Ctx,
    verb: Verb,
    body: &[u8],
) -> Result<(Response, bool), ApiError> {
    let p = &ctx.path;
    let (def, storage_def) = {
        let store = shared.lock_store();
        let def = store
            .def(&p.group, &p.resource)
            .filter(|d| d.serves(&p.version))
            .cloned()
            .ok_or_else(ApiError::not_found_path)?;
        // events.k8s.io Events live in the core Event storage (see `events`).
        let (sg, sr) = events::storage_resource(&def);
        let storage_def = store.def(&sg, &sr).cloned().unwrap_or_else(|| def.clone());
        (def, storage_def)
    };
    // Writes go to the storage resource, in its version.
    let write_version = if events::is_events_view(&def) {
        storage_def.storage_version.clone()
    } else {
        p.version.clone()
    };
    if p.namespace.is_some() && !def.namespaced {
        return Err(ApiError::not_found_path());
    }
    let eviction = p.subresource.as_deref() == Some("eviction")
        && def.group.is_empty()
        && def.plural == "pods"
        && verb == Verb::Create;
    if let Some(sub) = &p.subresource
        && !(sub == "status" && def.status_subresource)
        && !eviction
    {
        return Err(ApiError::not_found_path());
    }
    let ns = p.namespace.clone().unwrap_or_default();
    if shared.config.enforce_rbac {
        authorize_resource(shared, ctx, verb, &def)?;
    }
    match shared.faults.decide(verb) {
        Injected::Error(500) => return Err(ApiError::internal("injected fault: internal error")),
        Injected::Error(_) => {
            return Err(ApiError::unavailable("injected fault: service unavailable"));
        }
        Injected::Conflict => {
            return Err(ApiError::conflict(&writes::target(
                &def,
                p.name.as_deref().unwrap_or_default(),
            )));
        }
        Injected::None => {}
    }
    let present = |obj: &Value| -> Value {
        let mut o = events::view(&def, obj).into_owned();
        o["apiVersion"] = json!(def.api_version(&p.version));
        o
    };
    let accept = ctx
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let as_table = table::wants_table(accept);
    let include = ctx
        .q("includeObject")
        .unwrap_or("PartialObjectMetadata")
        .to_string();
    let write_ctx = || WriteCtx {
        field_manager: ctx.q("fieldManager").map(str::to_string),
        default_manager: ctx
            .user_agent
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string(),
        dry_run: ctx.q("dryRun") == Some("All"),
        strict_fields: ctx.q("fieldValidation") == Some("Strict"),
        events_api: events::is_events_view(&def),
        now: now_rfc3339(),
    };
    let parse_body = || -> Result<Value, ApiError> {
        let ct = ctx
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if protobuf::is_protobuf(ct) {
            // kubectl's typed commands (`create namespace|secret|configmap`) send protobuf.
            return protobuf::decode(body);
        }
        if ct.contains("protobuf") || ct.contains("cbor") {
            return Err(ApiError::unsupported_media_type(ct));
        }
        serde_json::from_slice(body)
            .or_else(|_| serde_yaml::from_slice::<Value>(body))
            .map_err(|e| ApiError::bad_request(format!("couldn't decode the request body: {e}")))
    };
    let key = |name: &str| -> ObjectKey {
        (
            if def.namespaced {
                ns.clone()
            } else {
                String::new()
            },
            name.to_string(),
        )
    };
    let gr = events::storage_resource(&def);
    match verb {
        Verb::Get => {
            let name = p.name.clone().unwrap_or_default();
            let obj = shared
                .lock_store()
                .get(&gr, &key(&name))
                .ok_or_else(|| ApiError::not_found(&writes::target(&def, &name)))?;
            if as_table {
                let meta =
                    json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned()});
                return Ok((
                    json_response(200, &table::table(&def, &[present(&obj)], meta, &include)),
                    false,
                ));
            }
            Ok((json_response(200, &present(&obj)), false))
        }
        Verb::List => list(shared, ctx, &def, as_table, &include).map(|r| (r, false)),
        Verb::Watch => {
            let selectors = selectors(ctx)?;
            let namespace = p.namespace.clone();
            let mut selectors = selectors;
            if let Some(name) = &p.name {
                selectors.fields = FieldSelector::parse(&format!("metadata.name={name}"))
                    .map_err(ApiError::bad_request)?;
            }
            let resource_version = match ctx.q("resourceVersion") {
                Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {rv:?}"))
                })?),
                None => None,
            };
            let req = watch::WatchRequest {
                def: def.clone(),
                version: p.version.clone(),
                namespace,
                selectors,
                resource_version,
                send_initial_events: ctx.q("sendInitialEvents") == Some("true"),
                bookmarks: ctx.q("allowWatchBookmarks") == Some("true"),
                timeout: ctx
                    .q("timeoutSeconds")
                    .and_then(|t| t.parse::<u64>().ok())
                    .map(Duration::from_secs),
                as_table,
            };
            Ok((watch::start(shared.clone(), req), false))
        }
        Verb::Create if eviction => {
            // The Eviction API: kube checks PodDisruptionBudgets (none are served here), then
            // deletes the pod with the Eviction's deleteOptions (its UID precondition keeps a
            // stale eviction off a pod of the same name created since).
            let name = p.name.clone().unwrap_or_default();
            let delete_options = parse_body()
                .ok()
                .and_then(|b| b.get("deleteOptions").cloned())
                .map(|o| serde_json::to_vec(&o).unwrap_or_default())
                .unwrap_or_default();
            let opts = delete_opts(ctx, &delete_options)?;
            let now = now_rfc3339();
            gc::delete(&mut shared.lock_store(), &gr, &key(&name), &opts, &now)?;
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
            Ok((json_response(201, &status), true))
        }
        Verb::Create => {
            let obj = events::to_storage(&def, &p.version, parse_body()?)?;
            let out = writes::create(
                &mut shared.lock_store(),
                &storage_def,
                &write_version,
                &ns,
                obj,
                &write_ctx(),
            )
            .map_err(|e| events::retarget_error(&def, e))?;
            Ok((json_response(201, &present(&out.object)), out.wrote))
        }
        Verb::Update => {
            let obj = events::to_storage(&def, &p.version, parse_body()?)?;
            let name = p.name.clone().unwrap_or_default();
            let out = writes::update(
                &mut shared.lock_store(),
                &storage_def,
                &write_version,
                &ns,
                &name,
                obj,
                p.subresource.as_deref(),
                &write_ctx(),
            )
            .map_err(|e| events::retarget_error(&def, e))?;
            Ok((json_response(200, &present(&out.object)), out.wrote))
        }
        Verb::Patch | Verb::Apply => {
            let ct = ctx
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let kind = PatchKind::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let patch = parse_body()?;
            let name = p.name.clone().unwrap_or_default();
            let force = ctx.q("force") == Some("true");
            let mut store = shared.lock_store();
            let names_uid = patch
                .pointer("/metadata/uid")
                .and_then(|u| u.as_str())
                .is_some_and(|u| !u.is_empty());
            if verb == Verb::Apply
                && shared.config.enforce_rbac
                && !names_uid
                && store.get(&gr, &key(&name)).is_none()
            {
                // kube authorizes an apply that creates the object as a create as well; a uid in
                // the configuration fails the create earlier (409, uid mismatch) in kube's store.
                check_rbac(&store, ctx, "create", &def, Some(&name))?;
            }
            let out = if events::is_events_view(&def) {
                events::patch_view(
                    &mut store,
                    &def,
                    &storage_def,
                    &p.version,
                    &ns,
                    &name,
                    kind,
                    &patch,
                    force,
                    &write_ctx(),
                )
            } else {
                writes::patch(
                    &mut store,
                    &def,
                    &p.version,
                    &ns,
                    &name,
                    kind,
                    &patch,
                    p.subresource.as_deref(),
                    force,
                    &write_ctx(),
                )
            }?;
            Ok((
                json_response(if out.created { 201 } else { 200 }, &present(&out.object)),
                out.wrote,
            ))
        }
        Verb::Delete => {
            let name = p.name.clone().unwrap_or_default();
            let opts = delete_opts(ctx, body)?;
            let now = now_rfc3339();
            match gc::delete(&mut shared.lock_store(), &gr, &key(&name), &opts, &now)? {
                DeleteOutcome::Gone(last) => {
                    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "group": def.group, "kind": def.plural, "uid": last.pointer("/metadata/uid")}});
                    Ok((json_response(200, &status), true))
                }
                DeleteOutcome::Pending(obj, wrote) => Ok((
                    json_response(if opts.dry_run { 200 } else { 202 }, &present(&obj)),
                    wrote,
                )),
            }
        }
        Verb::DeleteCollection => {
            let sel = selectors(ctx)?;
            let opts = delete_opts(ctx, body)?;
            let now = now_rfc3339();
            let mut store = shared.lock_store();
            let keys: Vec<ObjectKey> = store
                .iter(&gr, p.namespace.as_deref())
                .filter(|(_, o)| sel.matches(&events::view(&def, o)))
                .map(|(k, _)| k.clone())
                .collect();
            let mut items = Vec::new();
            for k in keys {
                match gc::delete(&mut store, &gr, &k, &opts, &now) {
                    Ok(DeleteOutcome::Gone(o)) | Ok(DeleteOutcome::Pending(o, _)) => {
                        items.push(present(&o))
                    }
                    Err(_) => {}
                }
            }
            let rv = store.current_rv().to_string();
            let wrote = !items.is_empty() && !opts.dry_run;
            let list = json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(&p.version), "metadata": {"resourceVersion": rv}, "items": items});
            Ok((json_response(200, &list), wrote))
        }
        Verb::NonResource => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// Authorizes a resource request against the stored RBAC objects, with kube's request
/// attributes: apply is `patch`; list/watch pinned to one name carry the name; a namespace
/// object is in its own namespace.
fn authorize_resource(
    shared: &Shared,
    ctx: &Ctx,
    verb: Verb,
    def: &ResourceDef,
) -> Result<(), ApiError> {
    let rbac_verb = match verb {
        Verb::Apply => "patch",
        other => other.as_str(),
    };
    let pinned;
    let name = match (&ctx.path.name, verb) {
        (Some(n), _) => Some(n.as_str()),
        (None, Verb::List | Verb::Watch) => {
            pinned = selectors(ctx)?.fields.pinned_name().map(str::to_string);
            pinned.as_deref()
        }
        (None, _) => None,
    };
    check_rbac(&shared.lock_store(), ctx, rbac_verb, def, name)
}

fn check_rbac(
    store: &Store,
    ctx: &Ctx,
    verb: &str,
    def: &ResourceDef,
    name: Option<&str>,
) -> Result<(), ApiError> {
    let p = &ctx.path;
    let namespace = if def.group.is_empty() && def.plural == "namespaces" {
        name
    } else {
        p.namespace.as_deref()
    };
    let attrs = rbac::ResourceAttributes {
        verb,
        group: &def.group,
        resource: &def.plural,
        subresource: p.subresource.as_deref(),
        namespace,
        name,
    };
    let user = rbac::UserInfo::from_name(&ctx.user);
    if rbac::resource_allowed(store, &user, &attrs) {
        return Ok(());
    }
    let mut err = ApiError::forbidden(rbac::forbidden_message(&ctx.user, &attrs));
    err.details = Some(Box::new(Details {
        name: name.unwrap_or_default().to_string(),
        group: def.group.clone(),
        kind: def.plural.clone(),
        causes: Vec::new(),
    }));
    Err(err)
}

fn selectors(ctx: &Ctx) -> Result<Selectors, ApiError> {
    Ok(Selectors {
        labels: LabelSelector::parse(ctx.q("labelSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?,
        fields: FieldSelector::parse(ctx.q("fieldSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?,
    })
}

fn delete_opts(ctx: &Ctx, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let b: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).unwrap_or(json!({}))
    };
    let policy = b
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(ctx.q("propagationPolicy"));
    let mut propagation = policy.map(Propagation::parse).transpose()?;
    if propagation.is_none()
        && (b.get("orphanDependents").and_then(Value::as_bool) == Some(true)
            || ctx.q("orphanDependents") == Some("true"))
    {
        propagation = Some(Propagation::Orphan);
    }
    let dry_run = ctx.q("dryRun") == Some("All")
        || b.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOpts {
        propagation,
        precondition_uid: b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run,
    })
}

fn encode_continue(rv: u64, key: &ObjectKey) -> String {
    let raw = format!("{rv}\u{0}{}\u{0}{}", key.0, key.1);
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Option<(u64, ObjectKey)> {
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let raw = String::from_utf8(bytes?).ok()?;
    let mut parts = raw.split('\u{0}');
    let rv = parts.next()?.parse().ok()?;
    Some((rv, (parts.next()?.to_string(), parts.next()?.to_string())))
}

fn list(
    shared: &Shared,
    ctx: &Ctx,
    def: &ResourceDef,
    as_table: bool,
    include: &str,
) -> Result<Response, ApiError> {
    let p = &ctx.path;
    let sel = selectors(ctx)?;
    let limit = ctx
        .q("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let cont = match ctx.q("continue") {
        Some(t) => Some(
            decode_continue(t).ok_or_else(|| ApiError::bad_request("invalid continue token"))?,
        ),
        None => None,
    };
    let gr = events::storage_resource(def);
    let store = shared.lock_store();
    if let Some((rv, _)) = &cont
        && *rv < store.compacted_rv_for_continue()
    {
        return Err(ApiError::gone(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        ));
    }
    let list_rv = cont
        .as_ref()
        .map(|(rv, _)| *rv)
        .unwrap_or(store.current_rv());
    let mut items: Vec<Value> = Vec::new();
    let mut next = None;
    let api_version = json!(def.api_version(&p.version));
    let candidates: Box<dyn Iterator<Item = (&ObjectKey, &Arc<Value>)>> =
        match sel.fields.pinned_name() {
            Some(name) => {
                let k = (p.namespace.clone().unwrap_or_default(), name.to_string());
                Box::new(
                    store
                        .iter(&gr, p.namespace.as_deref())
                        .filter(move |(key, _)| key.1 == k.1 && (k.0.is_empty() || key.0 == k.0)),
                )
            }
            None => store.iter(&gr, p.namespace.as_deref()),
        };
    for (k, o) in candidates {
        if let Some((_, after)) = &cont
            && k <= after
        {
            continue;
        }
        let viewed = events::view(def, o);
        if !sel.matches(&viewed) {
            continue;
        }
        if let Some(l) = limit
            && items.len() == l
        {
            next = Some(encode_continue(list_rv, &k_prev(&items, k)));
            break;
        }
        let mut item = viewed.into_owned();
        item["apiVersion"] = api_version.clone();
        items.push(item);
    }
    drop(store);
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(n) = next {
        meta["continue"] = json!(n);
    }
    if as_table {
        return Ok(json_response(
            200,
            &table::table(def, &items, meta, include),
        ));
    }
    Ok(json_response(
        200,
        &json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(&p.version), "metadata": meta, "items": items}),
    ))
}

/// The key of the last item returned (the continue position).
fn k_prev(items: &[Value], _next: &ObjectKey) -> ObjectKey {
    let last = items.last();
    let get = |f: &str| {
        last.and_then(|o| o.pointer(f))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (get("/metadata/namespace"), get("/metadata/name"))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
