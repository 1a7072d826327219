//! `/vospace/nodes/{path}`: reading, creating, changing and deleting nodes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use vospace::model::{self, prop, Fault, Node, NodeKind, Property};
use vospace::transfer;
use vospace::xml::{self, Detail};
use vospace::{Access, User};

use super::{body, creator_uri, fault, node_path, now, xml_ok, VoSpace};
use crate::dali::Params;
use crate::identity;

pub async fn get_node(vs: web::Data<VoSpace>, req: HttpRequest) -> HttpResponse {
    match get_node_inner(&vs, &req).await {
        Ok(r) => r,
        Err(f) => fault(f),
    }
}

async fn get_node_inner(vs: &VoSpace, req: &HttpRequest) -> Result<HttpResponse, Fault> {
    let store = &*vs.store;
    let user = identity::caller(req).await?;
    let path = node_path(req)?;
    let node = store
        .get(&path)
        .await?
        .ok_or_else(|| Fault::NodeNotFound(path.clone()))?;
    if store.access(user.as_ref(), &path).await? < Access::Read {
        return Err(transfer::denied(user.as_ref(), format!("read {path}")));
    }
    let q = Params::from_request(req, &[]);
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
            let p = xml::path_of_uri(u, vs.authority.as_str())?;
            if model::parent(&p) != Some(path.as_str()) {
                return Err(Fault::InvalidUri(format!("{u} is not a child of {path}")));
            }
            Some(model::name(&p).to_string())
        }
    };
    let auth = vs.authority.as_str();
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

pub async fn put_node(
    vs: web::Data<VoSpace>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match put_node_inner(&vs, &req, payload).await {
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
    vs: &VoSpace,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Fault> {
    let store = &*vs.store;
    let user = identity::caller(req).await?;
    let path = node_path(req)?;
    let doc = body(payload, vs.config.max_document_bytes).await?;
    let parsed = xml::parse_node(&doc)?;
    let auth = vs.authority.as_str();
    let uri_path = xml::path_of_uri(&parsed.uri, auth)?;
    if uri_path != path {
        return Err(Fault::InvalidUri(format!(
            "the node's uri {} does not name {path}",
            parsed.uri
        )));
    }
    let Some(user) = user else {
        return Err(transfer::denied(None, format!("create {path}")));
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
        return Err(transfer::denied(
            Some(&user),
            format!("create nodes in {parent}"),
        ));
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

pub async fn post_node(
    vs: web::Data<VoSpace>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match post_node_inner(&vs, &req, payload).await {
        Ok(r) => r,
        Err(f) => fault(f),
    }
}

async fn post_node_inner(
    vs: &VoSpace,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Fault> {
    let store = &*vs.store;
    let user = identity::caller(req).await?;
    let path = node_path(req)?;
    let doc = body(payload, vs.config.max_document_bytes).await?;
    let parsed = xml::parse_node(&doc)?;
    let auth = vs.authority.as_str();
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
        return Err(transfer::denied(
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
                return Err(transfer::denied(
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

pub async fn delete_node(vs: web::Data<VoSpace>, req: HttpRequest) -> HttpResponse {
    match delete_node_inner(&vs, &req).await {
        Ok(r) => r,
        Err(f) => fault(f),
    }
}

async fn delete_node_inner(vs: &VoSpace, req: &HttpRequest) -> Result<HttpResponse, Fault> {
    let store = &*vs.store;
    let user = identity::caller(req).await?;
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
        return Err(transfer::denied(user.as_ref(), format!("delete {path}")));
    }
    store.delete(&path).await?;
    Ok(HttpResponse::NoContent().finish())
}
