//! Transfers without HTTP: the checks and actions behind VOSpace's negotiated transfers (push
//! and pull: who may read or write what, links followed, protocols and endpoints chosen) and
//! behind asynchronous moves and copies. The HTTP binding turns requests into these calls and
//! their results into documents; the job runner calls [`move_or_copy`] and [`negotiate`].

use crate::model::{self, std_uri, Direction, Fault, Node, NodeKind, Protocol, Transfer};
use crate::store::{Access, User, VoStore};
use crate::xml;

/// A fault for a missing permission: 401 to anonymous callers, 403 to known ones.
pub fn denied(user: Option<&User>, what: String) -> Fault {
    match user {
        None => Fault::NotAuthenticated(format!("{what}: log in (a bearer token) first")),
        Some(u) => Fault::PermissionDenied(format!("{} may not {what}", u.name)),
    }
}

/// Resolves LinkNodes (up to 8 hops inside this space) to the node a pull reads.
pub async fn resolve_links(
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
pub async fn writable_target(
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
///
/// `endpoint` is the URL of the data endpoint this transfer gets (`…/vospace/data/{id}`).
pub async fn negotiate(
    store: &VoStore,
    auth: &str,
    user: Option<&User>,
    t: &Transfer,
    endpoint: &str,
) -> Result<(Transfer, String), Fault> {
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
    let endpoint = endpoint.to_string();
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
pub fn pack_details(path: &str, doc: &str) -> String {
    format!("path:{path}\n{doc}")
}

/// The `details` of a transfer record split back into (path, negotiated document).
pub fn unpack_details(details: &str) -> (Option<&str>, &str) {
    match details.split_once('\n') {
        Some((first, rest)) if first.starts_with("path:") => (Some(&first[5..]), rest),
        _ => (None, details),
    }
}

/// An asynchronous move (`keepBytes` false) or copy (true) of `t.target` to the node its
/// direction names, done with `user`'s rights; the transfer document as done (the direction
/// names where the node ended up).
pub async fn move_or_copy(
    store: &VoStore,
    auth: &str,
    user: Option<&User>,
    t: &Transfer,
) -> Result<Transfer, Fault> {
    let Direction::Node(dest) = &t.direction else {
        return Err(Fault::InvalidArgument(format!(
            "direction {} is not a move or copy",
            t.direction.as_str()
        )));
    };
    let src = xml::path_of_uri(&t.target, auth)?;
    let dst = xml::path_of_uri(dest, auth)?;
    let copy = t.keep_bytes.unwrap_or(true);
    if store.get(&src).await?.is_none() {
        return Err(Fault::NodeNotFound(src.clone()));
    }
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
    // The destination: an existing container receives the node; else its parent must be
    // writable.
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
    Ok(Transfer {
        target: t.target.clone(),
        direction: Direction::Node(xml::node_uri(auth, &moved.path)),
        view: None,
        protocols: Vec::new(),
        keep_bytes: Some(copy),
    })
}
