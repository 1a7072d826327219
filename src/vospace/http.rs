//! The VOSpace 2.1 REST binding at `/vospace`.
//!
//! * `nodes/{path}`: GET (`detail`, `limit`, `uri` paging), PUT (create), POST (properties),
//!   DELETE.
//! * `synctrans`: a transfer document (or `TARGET`/`DIRECTION`/`PROTOCOL` parameters) → 303 to
//!   `xfer/{id}`, the negotiated transfer with its endpoints; `REQUEST=redirect` → 303 straight
//!   to the endpoint.
//! * `transfers`: asynchronous transfers as UWS jobs (move, copy, push, pull).
//! * `data/{id}`: the negotiated endpoints (PUT the bytes, GET them, with ranges): the
//!   unguessable transfer id is the authorisation, for as long as `transfer_lifetime`.
//! * `protocols`, `views`, `properties`, and VOSI `capabilities`, `availability`.
//!
//! Identity: `Authorization: Bearer TOKEN` or `X-CADC-DelegationToken: TOKEN` (what the `vos`
//! client sends with `--token`), tokens issued by `vostok user add`; no header is anonymous.
//! Faults are `text/plain` bodies starting with the fault name, with the status of
//! [`Fault::status`].

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;

use super::model::{
    self, prop, std_uri, Direction, Fault, Node, NodeKind, Property, Protocol, Transfer,
};
use super::store::{Access, TransferRecord, User, VoStore};
use super::xml::{self, Detail};
use crate::server::AppState;
use crate::vosi::{self, esc};

/// Registers the VOSpace routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/vospace/capabilities", web::get().to(capabilities))
        .route(
            "/vospace/availability",
            web::get().to(vosi::availability_response),
        )
        .route("/vospace/protocols", web::get().to(protocols))
        .route("/vospace/views", web::get().to(views))
        .route("/vospace/properties", web::get().to(properties))
        .route("/vospace/nodes", web::get().to(get_node))
        .route("/vospace/nodes{tail:/.*}", web::get().to(get_node))
        .route("/vospace/nodes{tail:/.*}", web::put().to(put_node))
        .route("/vospace/nodes{tail:/.*}", web::post().to(post_node))
        .route("/vospace/nodes{tail:/.*}", web::delete().to(delete_node))
        .route("/vospace/synctrans", web::post().to(synctrans))
        .route("/vospace/synctrans", web::get().to(synctrans))
        .route("/vospace/xfer/{id}", web::get().to(xfer))
        .route("/vospace/transfers", web::post().to(create_transfer))
        .route("/vospace/transfers", web::get().to(list_transfers))
        .route("/vospace/transfers/{id}", web::get().to(transfer_job))
        .route(
            "/vospace/transfers/{id}/phase",
            web::get().to(transfer_phase),
        )
        .route(
            "/vospace/transfers/{id}/phase",
            web::post().to(run_transfer),
        )
        .route(
            "/vospace/transfers/{id}/error",
            web::get().to(transfer_error),
        )
        .route(
            "/vospace/transfers/{id}/results",
            web::get().to(transfer_results),
        )
        .route(
            "/vospace/transfers/{id}/results/transferDetails",
            web::get().to(transfer_details),
        )
        .route("/vospace/files{tail:/.*}", web::get().to(get_file))
        .route("/vospace/files{tail:/.*}", web::head().to(get_file))
        .route("/vospace/data/{id}", web::get().to(get_data))
        .route("/vospace/data/{id}", web::head().to(get_data))
        .route("/vospace/data/{id}", web::put().to(put_data));
}

/// The fault as an HTTP response.
fn fault(f: Fault) -> HttpResponse {
    HttpResponse::build(
        StatusCode::from_u16(f.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type("text/plain; charset=utf-8")
    .body(format!("{}: {}\n", f.name(), f.detail()))
}

fn xml_ok(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// The space, or a fault when the server runs without one.
fn space(state: &AppState) -> Result<&Arc<VoStore>, Fault> {
    state
        .vospace
        .as_ref()
        .ok_or_else(|| Fault::InternalFault("VOSpace is not enabled on this server".into()))
}

/// The caller: None for anonymous; a fault for a token that names no one.
pub(crate) async fn caller(store: &VoStore, req: &HttpRequest) -> Result<Option<User>, Fault> {
    let h = req.headers();
    let token = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let v = v.trim();
            v.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| v[7..].trim())
        })
        .or_else(|| {
            h.get("X-CADC-DelegationToken")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        });
    match token {
        None => Ok(None),
        Some(t) => {
            // A JWT from the configured OpenID Connect issuer (first login provisions the user).
            if super::oidc::looks_like_jwt(t) {
                if let Some(state) = req.app_data::<web::Data<AppState>>() {
                    if let Some(oidc) = &state.oidc {
                        return super::oidc::login(
                            oidc,
                            store,
                            t,
                            state.config.vospace.default_quota,
                        )
                        .await
                        .map(Some);
                    }
                }
            }
            match store.user_for_token(t).await {
                Some(u) => Ok(Some(u)),
                None => Err(Fault::NotAuthenticated("the token is not valid".into())),
            }
        }
    }
}

/// A fault for a missing permission: 401 to anonymous callers, 403 to known ones.
fn denied(user: Option<&User>, what: String) -> Fault {
    match user {
        None => Fault::NotAuthenticated(format!("{what}: log in (a bearer token) first")),
        Some(u) => Fault::PermissionDenied(format!("{} may not {what}", u.name)),
    }
}

fn creator_uri(authority: &str, owner: &str) -> String {
    format!("ivo://{authority}/user?{owner}")
}

/// The node path of a `/vospace/nodes/...` (or `files/...`) request. actix decodes the path
/// but leaves `%25`, `%2B` and `%2F` encoded: those are decoded here, per segment, and a
/// segment that would hold a `/` is refused.
fn node_path(req: &HttpRequest) -> Result<String, Fault> {
    let tail = req.match_info().query("tail");
    let mut out = String::with_capacity(tail.len());
    for seg in tail.split('/') {
        let decoded = percent_decode(seg)
            .ok_or_else(|| Fault::InvalidUri(format!("'{tail}' is not a valid node path")))?;
        if decoded.contains('/') {
            return Err(Fault::InvalidUri(format!(
                "'{tail}': a node name cannot contain '/'"
            )));
        }
        out.push('/');
        out.push_str(&decoded);
    }
    model::normalise_path(&out)
}

/// Decodes `%XX` escapes; None for a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The request body, bounded.
async fn body(payload: web::Payload, max: usize) -> Result<bytes::Bytes, Fault> {
    payload
        .to_bytes_limited(max)
        .await
        .map_err(|_| Fault::InvalidArgument(format!("the document is larger than {max} bytes")))?
        .map_err(|e| Fault::InvalidArgument(format!("reading the request: {e}")))
}

fn authority(state: &AppState) -> &str {
    &state.config.service.authority
}

// ---------------------------------------------------------------------------------------------
// Nodes

async fn get_node(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match get_node_inner(&state, &req).await {
        Ok(r) => r,
        Err(f) => fault(f),
    }
}

async fn get_node_inner(state: &AppState, req: &HttpRequest) -> Result<HttpResponse, Fault> {
    let store = space(state)?;
    let user = caller(store, req).await?;
    let path = node_path(req)?;
    let node = store
        .get(&path)
        .await?
        .ok_or_else(|| Fault::NodeNotFound(path.clone()))?;
    if store.access(user.as_ref(), &path).await? < Access::Read {
        return Err(denied(user.as_ref(), format!("read {path}")));
    }
    let q = crate::params::Params::from_request(req, &[]);
    let detail = match q.get_nonempty("detail") {
        None => Detail::Max,
        Some(d) => Detail::parse(d).ok_or_else(|| {
            Fault::InvalidArgument(format!("detail={d}: use min, max or properties"))
        })?,
    };
    let limit = match q.get_nonempty("limit") {
        None => None,
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| Fault::InvalidArgument(format!("limit={l} is not a count")))?,
        ),
    };
    let after = match q.get_nonempty("uri") {
        None => None,
        Some(u) => {
            let p = xml::path_of_uri(u, authority(state))?;
            if model::parent(&p) != Some(path.as_str()) {
                return Err(Fault::InvalidUri(format!("{u} is not a child of {path}")));
            }
            Some(model::name(&p).to_string())
        }
    };
    let auth = authority(state);
    let mut doc = xml::write_node_head(&node, detail, auth, &creator_uri(auth, &node.owner));
    if node.kind == NodeKind::Container && detail != Detail::Properties && limit != Some(0) {
        // Children the caller may not read are not listed: names are data too.
        let children = store.children(&path, after.as_deref(), limit).await?;
        let rights = store
            .access_children(user.as_ref(), &node, &children)
            .await?;
        for (c, right) in children.iter().zip(rights) {
            if right >= Access::Read {
                doc.push_str(&xml::write_node_list_item(
                    c,
                    detail,
                    auth,
                    &creator_uri(auth, &c.owner),
                ));
            }
        }
    }
    doc.push_str(xml::write_node_tail(&node));
    Ok(xml_ok(StatusCode::OK, doc))
}

async fn put_node(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match put_node_inner(&state, &req, payload).await {
        Ok(r) => r,
        Err(f) => fault(f),
    }
}

/// Client properties: everything but what the server maintains.
fn settable(props: Vec<Property>) -> Vec<Property> {
    props
        .into_iter()
        .filter(|p| !prop::READ_ONLY.contains(&p.uri.as_str()))
        .map(|p| Property {
            read_only: false,
            ..p
        })
        .collect()
}

/// Permission properties may be changed only by the node's owner or the owner of the home it
/// is in (a group writer may write data, not share it further).
fn may_share(user: &User, node_owner: &str, path: &str) -> bool {
    node_owner == user.name || path.split('/').nth(1) == Some(user.name.as_str())
}

async fn put_node_inner(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Fault> {
    let store = space(state)?;
    let user = caller(store, req).await?;
    let path = node_path(req)?;
    let doc = body(payload, state.config.vospace.max_document_bytes).await?;
    let parsed = xml::parse_node(&doc)?;
    let auth = authority(state);
    let uri_path = xml::path_of_uri(&parsed.uri, auth)?;
    if uri_path != path {
        return Err(Fault::InvalidUri(format!(
            "the node's uri {} does not name {path}",
            parsed.uri
        )));
    }
    let Some(user) = user else {
        return Err(denied(None, format!("create {path}")));
    };
    let parent =
        model::parent(&path).ok_or_else(|| Fault::DuplicateNode("the root exists".into()))?;
    if path.matches('/').count() == 1 {
        return Err(Fault::PermissionDenied(
            "home containers are made by `vostok user add`".into(),
        ));
    }
    match store.get(parent).await? {
        None => return Err(Fault::ContainerNotFound(parent.to_string())),
        Some(p) if p.kind == NodeKind::Link => return Err(Fault::LinkFound(parent.to_string())),
        Some(p) if p.kind != NodeKind::Container => {
            return Err(Fault::ContainerNotFound(format!(
                "{parent} is not a container"
            )))
        }
        Some(_) => {}
    }
    if store.access(Some(&user), parent).await? < Access::Write {
        return Err(denied(Some(&user), format!("create nodes in {parent}")));
    }
    if parsed.kind == NodeKind::Link && parsed.target.is_none() {
        return Err(Fault::InvalidArgument("a LinkNode needs a target".into()));
    }
    let props = settable(parsed.properties);
    let now = now();
    let node = Node {
        path: path.clone(),
        kind: parsed.kind,
        owner: user.name.clone(),
        content_type: props
            .iter()
            .find(|p| p.uri == prop::CONTENT_TYPE || p.uri == prop::CONTENT_TYPE_ALT)
            .and_then(|p| p.value.clone()),
        properties: props,
        target: if parsed.kind == NodeKind::Link {
            parsed.target
        } else {
            None
        },
        length: None,
        md5: None,
        ctime: now.clone(),
        mtime: now,
        busy: false,
    };
    let created = store.create(node).await?;
    Ok(xml_ok(
        StatusCode::CREATED,
        xml::write_node(
            &created,
            Detail::Max,
            Some(&[]),
            auth,
            &creator_uri(auth, &created.owner),
        ),
    ))
}

async fn post_node(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match post_node_inner(&state, &req, payload).await {
        Ok(r) => r,
        Err(f) => fault(f),
    }
}

async fn post_node_inner(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Fault> {
    let store = space(state)?;
    let user = caller(store, req).await?;
    let path = node_path(req)?;
    let doc = body(payload, state.config.vospace.max_document_bytes).await?;
    let parsed = xml::parse_node(&doc)?;
    let auth = authority(state);
    if xml::path_of_uri(&parsed.uri, auth)? != path {
        return Err(Fault::InvalidUri(format!(
            "the node's uri {} does not name {path}",
            parsed.uri
        )));
    }
    let node = store
        .get(&path)
        .await?
        .ok_or_else(|| Fault::NodeNotFound(path.clone()))?;
    if store.access(user.as_ref(), &path).await? < Access::Write {
        return Err(denied(
            user.as_ref(),
            format!("change the properties of {path}"),
        ));
    }
    let props = settable(parsed.properties);
    let sharing = [prop::IS_PUBLIC, prop::GROUP_READ, prop::GROUP_WRITE];
    if props.iter().any(|p| sharing.contains(&p.uri.as_str())) {
        match &user {
            Some(u) if may_share(u, &node.owner, &path) => {}
            _ => {
                return Err(denied(
                    user.as_ref(),
                    format!("change who may read or write {path}"),
                ))
            }
        }
    }
    let updated = store.set_properties(&path, &props).await?;
    Ok(xml_ok(
        StatusCode::OK,
        xml::write_node(
            &updated,
            Detail::Properties,
            None,
            auth,
            &creator_uri(auth, &updated.owner),
        ),
    ))
}

async fn delete_node(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match delete_node_inner(&state, &req).await {
        Ok(r) => r,
        Err(f) => fault(f),
    }
}

async fn delete_node_inner(state: &AppState, req: &HttpRequest) -> Result<HttpResponse, Fault> {
    let store = space(state)?;
    let user = caller(store, req).await?;
    let path = node_path(req)?;
    store
        .get(&path)
        .await?
        .ok_or_else(|| Fault::NodeNotFound(path.clone()))?;
    if path == "/" || path.matches('/').count() == 1 {
        return Err(Fault::PermissionDenied(format!(
            "{path} is the root or a home container"
        )));
    }
    let parent = model::parent(&path).unwrap_or("/");
    if store.access(user.as_ref(), parent).await? < Access::Write {
        return Err(denied(user.as_ref(), format!("delete {path}")));
    }
    store.delete(&path).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------------
// Transfers

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The transfer a request asks for: a transfer document in the body, or the parameter form;
/// with the request's parameters.
async fn read_transfer(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Transfer, crate::params::Params), Fault> {
    let doc = body(payload, state.config.vospace.max_document_bytes).await?;
    let is_xml = doc.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
    let params = crate::params::Params::from_request(req, if is_xml { &[] } else { &doc });
    let t = if is_xml {
        xml::parse_transfer(&doc)?
    } else {
        transfer_from_params(&params)?
    };
    Ok((t, params))
}

/// A transfer from the parameter form (`TARGET`, `DIRECTION`, `PROTOCOL`, `VIEW`).
fn transfer_from_params(p: &crate::params::Params) -> Result<Transfer, Fault> {
    let target = p
        .get_nonempty("TARGET")
        .ok_or_else(|| Fault::InvalidArgument("TARGET is missing".into()))?;
    let direction = p
        .get_nonempty("DIRECTION")
        .ok_or_else(|| Fault::InvalidArgument("DIRECTION is missing".into()))?;
    Ok(Transfer {
        target: target.to_string(),
        direction: Direction::parse(direction),
        view: p.get_nonempty("VIEW").map(str::to_string),
        protocols: p
            .get_all("PROTOCOL")
            .filter(|s| !s.trim().is_empty())
            .map(|u| Protocol {
                uri: u.trim().to_string(),
                endpoint: None,
                security_methods: Vec::new(),
            })
            .collect(),
        keep_bytes: p
            .get_nonempty("KEEPBYTES")
            .map(|k| k.eq_ignore_ascii_case("true")),
    })
}

/// Resolves LinkNodes (up to 8 hops inside this space) to the node a pull reads.
pub(crate) async fn resolve_links(
    store: &VoStore,
    authority: &str,
    mut node: Node,
) -> Result<Node, Fault> {
    for _ in 0..8 {
        if node.kind != NodeKind::Link {
            return Ok(node);
        }
        let target = node.target.clone().unwrap_or_default();
        let Ok(p) = xml::path_of_uri(&target, authority) else {
            return Err(Fault::InvalidArgument(format!(
                "Unsupported link target: {target}"
            )));
        };
        node = store
            .get(&p)
            .await?
            .ok_or_else(|| Fault::NodeNotFound(format!("{p} (the target of {})", node.path)))?;
    }
    Err(Fault::InvalidArgument("too many links".into()))
}

/// The path of `uri` when `user` may write data there: an existing DataNode they may write,
/// or a new node in a container they may write (not a home itself).
pub(crate) async fn writable_target(
    store: &VoStore,
    authority: &str,
    user: Option<&User>,
    uri: &str,
) -> Result<String, Fault> {
    let path = xml::path_of_uri(uri, authority)?;
    match store.get(&path).await? {
        Some(n) if n.kind != NodeKind::Data => {
            Err(Fault::InvalidArgument(format!("{path} is not a data node")))
        }
        Some(_) => {
            if user.is_none() || store.access(user, &path).await? < Access::Write {
                return Err(denied(user, format!("write {path}")));
            }
            Ok(path)
        }
        None => {
            let parent = model::parent(&path).unwrap_or("/");
            match store.get(parent).await? {
                Some(p) if p.kind == NodeKind::Container => {}
                _ => return Err(Fault::ContainerNotFound(parent.to_string())),
            }
            if path.matches('/').count() == 1
                || user.is_none()
                || store.access(user, parent).await? < Access::Write
            {
                return Err(denied(user, format!("create {path}")));
            }
            Ok(path)
        }
    }
}

/// Checks a push or pull and returns the negotiated transfer (with endpoints) and the path
/// the data endpoint reads or writes.
async fn negotiate(
    state: &AppState,
    user: Option<&User>,
    t: &Transfer,
    base: &str,
    id: &str,
) -> Result<(Transfer, String), Fault> {
    let store = space(state)?;
    let auth = authority(state);
    let path = xml::path_of_uri(&t.target, auth)?;
    if let Some(v) = &t.view {
        if v != std_uri::VIEW_DEFAULT
            && v != std_uri::VIEW_BINARY
            && v != "ivo://ivoa.net/vospace/core#defaultview"
        {
            return Err(Fault::ViewNotSupported(v.clone()));
        }
    }
    let (path, get) = match t.direction {
        Direction::PushToVoSpace => (writable_target(store, auth, user, &t.target).await?, false),
        Direction::PullFromVoSpace => {
            let node = store
                .get(&path)
                .await?
                .ok_or_else(|| Fault::NodeNotFound(path.clone()))?;
            if store.access(user, &path).await? < Access::Read {
                return Err(denied(user, format!("read {path}")));
            }
            let node = resolve_links(store, auth, node).await?;
            if node.path != path && store.access(user, &node.path).await? < Access::Read {
                return Err(denied(user, format!("read {} (through a link)", node.path)));
            }
            if node.kind != NodeKind::Data {
                return Err(Fault::InvalidArgument(format!("{} holds no data", node.path)));
            }
            (node.path, true)
        }
        _ => {
            return Err(Fault::InvalidArgument(format!(
                "direction {} is not a synchronous transfer (use pushToVoSpace or pullFromVoSpace; moves and copies go to /vospace/transfers)",
                t.direction.as_str()
            )))
        }
    };
    let wanted: Vec<&str> = if get {
        vec![std_uri::PROTO_HTTPGET, std_uri::PROTO_HTTPSGET]
    } else {
        vec![std_uri::PROTO_HTTPPUT, std_uri::PROTO_HTTPSPUT]
    };
    let mut protocols = Vec::new();
    let endpoint = format!("{base}/vospace/data/{id}");
    if t.protocols.is_empty() {
        protocols.push(Protocol {
            uri: wanted[0].to_string(),
            endpoint: Some(endpoint.clone()),
            security_methods: Vec::new(),
        });
    }
    for p in &t.protocols {
        if wanted.contains(&p.uri.as_str()) && !protocols.iter().any(|q: &Protocol| q.uri == p.uri)
        {
            {
                protocols.push(Protocol {
                    uri: p.uri.clone(),
                    endpoint: Some(endpoint.clone()),
                    security_methods: Vec::new(),
                });
            }
        }
    }
    if protocols.is_empty() {
        return Err(Fault::ProtocolNotSupported(format!(
            "{} (this service offers {})",
            t.protocols
                .iter()
                .map(|p| p.uri.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            wanted.join(", ")
        )));
    }
    Ok((
        Transfer {
            target: t.target.clone(),
            direction: t.direction.clone(),
            view: t.view.clone(),
            protocols,
            keep_bytes: None,
        },
        path,
    ))
}

/// What a transfer record's `details` hold: the negotiated transfer document, and the path the
/// data endpoint serves, on a first line `path:/…`.
fn pack_details(path: &str, doc: &str) -> String {
    format!("path:{path}\n{doc}")
}

fn unpack_details(details: &str) -> (Option<&str>, &str) {
    match details.split_once('\n') {
        Some((first, rest)) if first.starts_with("path:") => (Some(&first[5..]), rest),
        _ => (None, details),
    }
}

async fn synctrans(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match synctrans_inner(&state, &req, payload).await {
        Ok(r) => r,
        Err(f) => fault(f),
    }
}

async fn synctrans_inner(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Fault> {
    let store = space(state)?;
    let user = caller(store, req).await?;
    let (t, params) = read_transfer(state, req, payload).await?;
    let base = state.base_url(req);
    let owner = user.as_ref().map(|u| u.name.clone()).unwrap_or_default();
    let rec = store
        .create_transfer(&owner, t.direction.as_str(), &t.target, None)
        .await?;
    let (negotiated, path) = match negotiate(state, user.as_ref(), &t, &base, &rec.id).await {
        Ok(x) => x,
        Err(f) => {
            let mut r = rec.clone();
            r.phase = "ERROR".into();
            r.error = Some(f.to_string());
            store.update_transfer(&r).await?;
            return Err(f);
        }
    };
    let mut r = rec.clone();
    r.phase = "COMPLETED".into();
    r.details = Some(pack_details(&path, &xml::write_transfer(&negotiated)));
    store.update_transfer(&r).await?;
    let location = if params
        .get_nonempty("REQUEST")
        .is_some_and(|v| v.eq_ignore_ascii_case("redirect"))
    {
        format!("{base}/vospace/data/{}", rec.id)
    } else {
        format!("{base}/vospace/xfer/{}", rec.id)
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish())
}

/// A transfer record by id (the id is the capability: no further check).
async fn record(store: &VoStore, id: &str) -> Result<TransferRecord, Fault> {
    store
        .get_transfer(id)
        .await?
        .ok_or_else(|| Fault::NodeNotFound(format!("no transfer {id}")))
}

async fn xfer(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let inner = async {
        let store = space(&state)?;
        let rec = record(store, &path).await?;
        match (&rec.details, &rec.error) {
            (Some(d), _) => Ok(xml_ok(StatusCode::OK, unpack_details(d).1.to_string())),
            (None, Some(e)) => Err(Fault::InvalidArgument(e.clone())),
            _ => Err(Fault::InternalFault("the transfer has no details".into())),
        }
    };
    inner.await.unwrap_or_else(fault)
}

/// Whether a negotiated endpoint is still valid.
fn alive(rec: &TransferRecord, lifetime: u64) -> bool {
    chrono::DateTime::parse_from_rfc3339(&rec.created)
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds() <= lifetime as i64
        })
        .unwrap_or(false)
}

/// The negotiated data transfer behind `/vospace/data/{id}`: its record and node path.
async fn data_transfer(
    state: &AppState,
    id: &str,
    want: Direction,
) -> Result<(TransferRecord, String), Fault> {
    let store = space(state)?;
    let rec = record(store, id).await?;
    if rec.phase != "COMPLETED" || Direction::parse(&rec.direction) != want {
        return Err(Fault::PermissionDenied(format!(
            "transfer {id} does not allow this ({})",
            rec.direction
        )));
    }
    if !alive(&rec, state.config.vospace.transfer_lifetime) {
        return Err(Fault::PermissionDenied(format!(
            "transfer {id} has expired"
        )));
    }
    let path = rec
        .details
        .as_deref()
        .and_then(|d| unpack_details(d).0)
        .ok_or_else(|| Fault::InternalFault(format!("transfer {id} has no target")))?
        .to_string();
    Ok((rec, path))
}

async fn put_data(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let inner = async {
        let store = space(&state)?;
        let (rec, node_path) = data_transfer(&state, &path, Direction::PushToVoSpace).await?;
        let owner = store.user(&rec.owner).await?;
        let quota = owner.as_ref().and_then(|u| u.quota_bytes);
        let md5 = match req
            .headers()
            .get("Content-MD5")
            .and_then(|v| v.to_str().ok())
        {
            None => None,
            Some(b64) => {
                use base64::Engine;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| Fault::InvalidArgument("Content-MD5 is not base64".into()))?;
                Some(raw.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        let length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.starts_with("application/x-www-form-urlencoded"))
            .map(str::to_string);
        let stream = payload.map(|r| r.map_err(|e| e.to_string()));
        let node = store
            .write_data(
                &node_path,
                &rec.owner,
                stream,
                length,
                md5.as_deref(),
                content_type.as_deref(),
                quota,
            )
            .await?;
        Ok::<_, Fault>(
            HttpResponse::Created()
                .insert_header((
                    header::ETAG,
                    format!("\"{}\"", node.md5.unwrap_or_default()),
                ))
                .finish(),
        )
    };
    inner.await.unwrap_or_else(fault)
}

async fn get_data(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let inner = async {
        let store = space(&state)?;
        let (_, node_path) = data_transfer(&state, &path, Direction::PullFromVoSpace).await?;
        serve_data(store, &req, &node_path).await
    };
    inner.await.unwrap_or_else(fault)
}

/// `GET /vospace/files/{path}` (the `files-proto` the `vos` client reads bytes from): the
/// node's bytes for a caller who may read it, links inside this space followed.
async fn get_file(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let inner = async {
        let store = space(&state)?;
        let user = caller(store, &req).await?;
        let path = node_path(&req)?;
        let node = store
            .get(&path)
            .await?
            .ok_or_else(|| Fault::NodeNotFound(path.clone()))?;
        if store.access(user.as_ref(), &path).await? < Access::Read {
            return Err(denied(user.as_ref(), format!("read {path}")));
        }
        let node = resolve_links(store, authority(&state), node).await?;
        if node.path != path && store.access(user.as_ref(), &node.path).await? < Access::Read {
            return Err(denied(
                user.as_ref(),
                format!("read {} (through a link)", node.path),
            ));
        }
        if node.kind != NodeKind::Data {
            return Err(Fault::InvalidArgument(format!(
                "{} holds no data",
                node.path
            )));
        }
        serve_data(store, &req, &node.path).await
    };
    inner.await.unwrap_or_else(fault)
}

/// Streams a data node's bytes, honouring `Range` and `HEAD`.
async fn serve_data(
    store: &VoStore,
    req: &HttpRequest,
    node_path: &str,
) -> Result<HttpResponse, Fault> {
    let node = store
        .get(node_path)
        .await?
        .ok_or_else(|| Fault::NodeNotFound(node_path.to_string()))?;
    let size = node.length.unwrap_or(0);
    let ranged = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| crate::products::files::parse_range(v, size))
        .unwrap_or(crate::products::files::Ranged::Whole);
    use crate::products::files::Ranged;
    let range = match &ranged {
        Ranged::Unsatisfiable => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .finish())
        }
        Ranged::Part(r) => Some(r.clone()),
        Ranged::Whole => None,
    };
    let read = store.read_range(node_path, range.clone()).await?;
    let len = read.range.end - read.range.start;
    let mut resp = match &range {
        Some(r) => {
            let mut b = HttpResponse::PartialContent();
            b.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", r.start, r.end - 1, read.total),
            ));
            b
        }
        None => HttpResponse::Ok(),
    };
    resp.insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((
            header::CONTENT_TYPE,
            read.node
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
        ))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "inline; filename=\"{}\"",
                model::name(&read.node.path).replace('"', "")
            ),
        ));
    if let Some(m) = &read.node.md5 {
        resp.insert_header((header::ETAG, format!("\"{m}\"")));
    }
    if req.method() == actix_web::http::Method::HEAD {
        return Ok(resp.no_chunking(len).streaming(futures::stream::empty::<
            Result<bytes::Bytes, actix_web::Error>,
        >()));
    }
    let body = read
        .stream
        .map(|r| r.map_err(|f| actix_web::error::ErrorInternalServerError(f.to_string())));
    Ok(resp.no_chunking(len).streaming(body))
}

// ---------------------------------------------------------------------------------------------
// Asynchronous transfers (UWS jobs)

async fn create_transfer(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let inner = async {
        let store = space(&state)?;
        let user = caller(store, &req).await?;
        let (t, params) = read_transfer(&state, &req, payload).await?;
        let owner = user.as_ref().map(|u| u.name.clone()).unwrap_or_default();
        let request = xml::write_transfer_element(&t);
        let rec = store
            .create_transfer(
                &owner,
                t.direction.as_str(),
                &t.target,
                Some(&format!("request\n{request}")),
            )
            .await?;
        let base = state.base_url(&req);
        if params
            .get_nonempty("PHASE")
            .is_some_and(|p| p.eq_ignore_ascii_case("RUN"))
        {
            execute(&state, user.as_ref(), rec.clone(), &base).await?;
        }
        Ok::<_, Fault>(
            HttpResponse::SeeOther()
                .insert_header((
                    header::LOCATION,
                    format!("{base}/vospace/transfers/{}", rec.id),
                ))
                .finish(),
        )
    };
    inner.await.unwrap_or_else(fault)
}

/// The transfer document a job was created with.
fn requested(rec: &TransferRecord) -> Result<Transfer, Fault> {
    let d = rec.details.as_deref().unwrap_or("");
    let xml = d.strip_prefix("request\n").unwrap_or(d);
    xml::parse_transfer(xml.as_bytes())
}

/// Runs a PENDING transfer job now: moves and copies are done, pushes and pulls negotiated.
async fn execute(
    state: &AppState,
    user: Option<&User>,
    mut rec: TransferRecord,
    base: &str,
) -> Result<(), Fault> {
    let store = space(state)?;
    if rec.phase != "PENDING" {
        return Ok(());
    }
    if rec.owner != user.map(|u| u.name.as_str()).unwrap_or("") {
        return Err(denied(user, format!("run transfer {}", rec.id)));
    }
    let t = requested(&rec)?;
    let outcome: Result<(Transfer, Option<String>), Fault> = async {
        match &t.direction {
            Direction::Node(dest) => {
                let auth = authority(state);
                let src = xml::path_of_uri(&t.target, auth)?;
                let dst = xml::path_of_uri(dest, auth)?;
                let copy = t.keep_bytes.unwrap_or(true);
                let node = store
                    .get(&src)
                    .await?
                    .ok_or_else(|| Fault::NodeNotFound(src.clone()))?;
                let _ = node;
                if src == "/" || src.matches('/').count() == 1 {
                    return Err(Fault::PermissionDenied(format!(
                        "{src} is the root or a home container"
                    )));
                }
                let need_src = if copy { Access::Read } else { Access::Write };
                let src_check = if copy {
                    src.clone()
                } else {
                    model::parent(&src).unwrap_or("/").to_string()
                };
                if store.access(user, &src_check).await? < need_src {
                    return Err(denied(user, format!("move or copy {src}")));
                }
                // The destination: an existing container receives the node; else its parent
                // must be writable.
                let dst_container = match store.get(&dst).await? {
                    Some(d) if d.kind == NodeKind::Container => dst.clone(),
                    Some(_) => return Err(Fault::DuplicateNode(dst.clone())),
                    None => model::parent(&dst).unwrap_or("/").to_string(),
                };
                if store.access(user, &dst_container).await? < Access::Write || user.is_none() {
                    return Err(denied(user, format!("write into {dst_container}")));
                }
                let moved = if copy {
                    store
                        .copy_node(&src, &dst, user.map(|u| u.name.as_str()).unwrap_or(""))
                        .await?
                } else {
                    store.move_node(&src, &dst).await?
                };
                let done = Transfer {
                    target: t.target.clone(),
                    direction: Direction::Node(xml::node_uri(auth, &moved.path)),
                    view: None,
                    protocols: Vec::new(),
                    keep_bytes: Some(copy),
                };
                Ok((done, None))
            }
            _ => {
                let (neg, path) = negotiate(state, user, &t, base, &rec.id).await?;
                Ok((neg, Some(path)))
            }
        }
    }
    .await;
    match outcome {
        Ok((done, path)) => {
            rec.phase = "COMPLETED".into();
            let doc = xml::write_transfer(&done);
            rec.details = Some(match path {
                Some(p) => pack_details(&p, &doc),
                None => doc,
            });
        }
        Err(f) => {
            rec.phase = "ERROR".into();
            rec.error = Some(f.name().to_string() + ": " + f.detail());
        }
    }
    store.update_transfer(&rec).await?;
    Ok(())
}

async fn run_transfer(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body_bytes: web::Bytes,
) -> HttpResponse {
    let inner = async {
        let store = space(&state)?;
        let user = caller(store, &req).await?;
        let p = crate::params::Params::from_request(&req, &body_bytes);
        let rec = record(store, &id).await?;
        let base = state.base_url(&req);
        match p.get_nonempty("PHASE").map(|s| s.to_ascii_uppercase()) {
            Some(ph) if ph == "RUN" => execute(&state, user.as_ref(), rec, &base).await?,
            Some(ph) if ph == "ABORT" => {
                if rec.phase == "PENDING" {
                    let mut r = rec;
                    r.phase = "ABORTED".into();
                    store.update_transfer(&r).await?;
                }
            }
            other => {
                return Err(Fault::InvalidArgument(format!(
                    "PHASE={}: use RUN or ABORT",
                    other.unwrap_or_default()
                )))
            }
        }
        Ok::<_, Fault>(
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("{base}/vospace/transfers/{id}")))
                .finish(),
        )
    };
    inner.await.unwrap_or_else(fault)
}

async fn transfer_phase(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let inner = async {
        let rec = record(space(&state)?, &id).await?;
        Ok::<_, Fault>(
            HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body(rec.phase),
        )
    };
    inner.await.unwrap_or_else(fault)
}

async fn transfer_error(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let inner = async {
        let rec = record(space(&state)?, &id).await?;
        Ok::<_, Fault>(
            HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body(rec.error.unwrap_or_default()),
        )
    };
    inner.await.unwrap_or_else(fault)
}

async fn transfer_details(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let inner = async {
        let rec = record(space(&state)?, &id).await?;
        if rec.phase != "COMPLETED" {
            return Err(Fault::InvalidArgument(format!(
                "transfer {} is {}",
                rec.id, rec.phase
            )));
        }
        let d = rec.details.unwrap_or_default();
        Ok(xml_ok(StatusCode::OK, unpack_details(&d).1.to_string()))
    };
    inner.await.unwrap_or_else(fault)
}

const UWS_NS: &str = "http://www.ivoa.net/xml/UWS/v1.0";

fn results_xml(base: &str, rec: &TransferRecord) -> String {
    let mut s = String::from("<uws:results>");
    if rec.phase == "COMPLETED" {
        s.push_str(&format!(
            "<uws:result id=\"transferDetails\" xlink:href=\"{}/vospace/transfers/{}/results/transferDetails\"/>",
            esc(base),
            esc(&rec.id)
        ));
    }
    s.push_str("</uws:results>");
    s
}

async fn transfer_results(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let inner = async {
        let rec = record(space(&state)?, &id).await?;
        let base = state.base_url(&req);
        let r = results_xml(&base, &rec).replacen(
            "<uws:results>",
            &format!(
                "<uws:results xmlns:uws=\"{UWS_NS}\" xmlns:xlink=\"http://www.w3.org/1999/xlink\">"
            ),
            1,
        );
        Ok::<_, Fault>(xml_ok(
            StatusCode::OK,
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{r}\n"),
        ))
    };
    inner.await.unwrap_or_else(fault)
}

/// `GET /vospace/transfers`: the UWS job list of the caller's transfers (anonymous callers:
/// the anonymous ones), newest first.
async fn list_transfers(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let inner = async {
        let store = space(&state)?;
        let user = caller(store, &req).await?;
        let owner = user.as_ref().map(|u| u.name.clone()).unwrap_or_default();
        let mut recs = store.list_transfers(Some(&owner)).await?;
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        let base = state.base_url(&req);
        let mut doc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<uws:jobs xmlns:uws=\"{UWS_NS}\" \
xmlns:xlink=\"http://www.w3.org/1999/xlink\" version=\"1.1\">"
        );
        for r in &recs {
            doc.push_str(&format!(
                "<uws:jobref id=\"{id}\" xlink:href=\"{b}/vospace/transfers/{id}\"><uws:phase>{ph}</uws:phase>{own}<uws:creationTime>{c}</uws:creationTime></uws:jobref>",
                id = esc(&r.id),
                b = esc(&base),
                ph = esc(&r.phase),
                own = if r.owner.is_empty() {
                    String::new()
                } else {
                    format!("<uws:ownerId>{}</uws:ownerId>", esc(&r.owner))
                },
                c = esc(&r.created),
            ));
        }
        doc.push_str("</uws:jobs>\n");
        Ok::<_, Fault>(xml_ok(StatusCode::OK, doc))
    };
    inner.await.unwrap_or_else(fault)
}

async fn transfer_job(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let inner = async {
        let rec = record(space(&state)?, &id).await?;
        let base = state.base_url(&req);
        let job_info = match requested(&rec) {
            Ok(t) => xml::write_transfer_element(&t),
            Err(_) => match rec.details.as_deref().map(|d| unpack_details(d).1) {
                Some(d) => d
                    .trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
                    .trim()
                    .to_string(),
                None => String::new(),
            },
        };
        let error = match &rec.error {
            Some(e) => format!(
                "<uws:errorSummary type=\"fatal\" hasDetail=\"true\"><uws:message>{}</uws:message></uws:errorSummary>",
                esc(e)
            ),
            None => String::new(),
        };
        let doc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<uws:job xmlns:uws=\"{UWS_NS}\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" version=\"1.1\">\
<uws:jobId>{id}</uws:jobId>\
<uws:ownerId{owner}</uws:ownerId>\
<uws:phase>{phase}</uws:phase>\
<uws:quote xsi:nil=\"true\"/>\
<uws:creationTime>{created}</uws:creationTime>\
<uws:startTime xsi:nil=\"true\"/>\
<uws:endTime xsi:nil=\"true\"/>\
<uws:executionDuration>0</uws:executionDuration>\
<uws:destruction xsi:nil=\"true\"/>\
<uws:parameters/>\
{results}{error}\
<uws:jobInfo>{job_info}</uws:jobInfo>\
</uws:job>\n",
            id = esc(&rec.id),
            owner = if rec.owner.is_empty() {
                " xsi:nil=\"true\">".to_string()
            } else {
                format!(">{}", esc(&rec.owner))
            },
            phase = esc(&rec.phase),
            created = esc(&rec.created),
            results = results_xml(&base, &rec),
        );
        Ok::<_, Fault>(xml_ok(StatusCode::OK, doc))
    };
    inner.await.unwrap_or_else(fault)
}

// ---------------------------------------------------------------------------------------------
// Service documents

async fn protocols() -> HttpResponse {
    xml_ok(
        StatusCode::OK,
        xml::write_protocols(
            &[std_uri::PROTO_HTTPPUT, std_uri::PROTO_HTTPSPUT],
            &[std_uri::PROTO_HTTPGET, std_uri::PROTO_HTTPSGET],
        ),
    )
}

async fn views() -> HttpResponse {
    xml_ok(
        StatusCode::OK,
        xml::write_views(&[std_uri::VIEW_DEFAULT], &[std_uri::VIEW_DEFAULT]),
    )
}

async fn properties() -> HttpResponse {
    let (accepts, contains) = xml::standard_properties();
    xml_ok(
        StatusCode::OK,
        xml::write_properties(&accepts, &contains, &contains),
    )
}

async fn capabilities(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let base = format!("{}/vospace", state.base_url(&req));
    let b = esc(&base);
    let mut cap = String::new();
    for (id, path) in [
        ("ivo://ivoa.net/std/VOSpace/v2.0#nodes", "nodes"),
        ("ivo://ivoa.net/std/VOSpace#sync-2.1", "synctrans"),
        ("ivo://ivoa.net/std/VOSpace/v2.0#transfers", "transfers"),
        ("ivo://ivoa.net/std/VOSpace/v2.0#protocols", "protocols"),
        ("ivo://ivoa.net/std/VOSpace/v2.0#views", "views"),
        ("ivo://ivoa.net/std/VOSpace/v2.0#properties", "properties"),
        ("ivo://ivoa.net/std/VOSpace#files-proto", "files"),
    ] {
        cap.push_str(&format!(
            "  <capability standardID=\"{id}\">\n    <interface xsi:type=\"vs:ParamHTTP\" role=\"std\" version=\"2.1\">\n      <accessURL use=\"base\">{b}/{path}</accessURL>\n    </interface>\n  </capability>\n"
        ));
    }
    vosi::capabilities_response("", &cap, &base)
}
