//! The VOSpace data model as the server keeps it: nodes, properties, transfers, faults.

use std::fmt;

/// Standard property URIs (VOSpace 2.1 §3.1, "core" properties).
pub mod prop {
    pub const LENGTH: &str = "ivo://ivoa.net/vospace/core#length";
    pub const DATE: &str = "ivo://ivoa.net/vospace/core#date";
    pub const CTIME: &str = "ivo://ivoa.net/vospace/core#ctime";
    pub const MTIME: &str = "ivo://ivoa.net/vospace/core#mtime";
    pub const CONTENT_TYPE: &str = "ivo://ivoa.net/vospace/core#type";
    pub const CONTENT_TYPE_ALT: &str = "ivo://ivoa.net/vospace/core#contenttype";
    pub const MD5: &str = "ivo://ivoa.net/vospace/core#MD5";
    pub const CREATOR: &str = "ivo://ivoa.net/vospace/core#creator";
    pub const GROUP_READ: &str = "ivo://ivoa.net/vospace/core#groupread";
    pub const GROUP_WRITE: &str = "ivo://ivoa.net/vospace/core#groupwrite";
    pub const IS_PUBLIC: &str = "ivo://ivoa.net/vospace/core#ispublic";
    pub const QUOTA: &str = "ivo://ivoa.net/vospace/core#quota";
    pub const TITLE: &str = "ivo://ivoa.net/vospace/core#title";
    pub const DESCRIPTION: &str = "ivo://ivoa.net/vospace/core#description";
    /// CADC's lock property, which the `vos` client (vlock) sets.
    pub const IS_LOCKED: &str = "ivo://cadc.nrc.ca/vospace/core#islocked";

    /// Properties the server maintains: a client cannot set them.
    pub const READ_ONLY: [&str; 7] = [LENGTH, DATE, CTIME, MTIME, MD5, CREATOR, QUOTA];
}

/// Views and protocols this service offers.
pub mod std_uri {
    pub const VIEW_DEFAULT: &str = "ivo://ivoa.net/vospace/core#defaultview";
    pub const VIEW_BINARY: &str = "ivo://ivoa.net/vospace/core#binaryview";
    pub const PROTO_HTTPGET: &str = "ivo://ivoa.net/vospace/core#httpget";
    pub const PROTO_HTTPPUT: &str = "ivo://ivoa.net/vospace/core#httpput";
    pub const PROTO_HTTPSGET: &str = "ivo://ivoa.net/vospace/core#httpsget";
    pub const PROTO_HTTPSPUT: &str = "ivo://ivoa.net/vospace/core#httpsput";
}

/// The three node types served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Container,
    Data,
    Link,
}

impl NodeKind {
    /// The `xsi:type` value, e.g. `vos:DataNode`.
    pub fn xsi_type(self) -> &'static str {
        match self {
            NodeKind::Container => "vos:ContainerNode",
            NodeKind::Data => "vos:DataNode",
            NodeKind::Link => "vos:LinkNode",
        }
    }

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Container => "container",
            NodeKind::Data => "data",
            NodeKind::Link => "link",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<NodeKind> {
        Some(match s {
            "container" => NodeKind::Container,
            "data" => NodeKind::Data,
            "link" => NodeKind::Link,
            _ => return None,
        })
    }
}

/// One property of a node; `value` None in a request means "delete it" (`xsi:nil="true"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub uri: String,
    pub value: Option<String>,
    pub read_only: bool,
}

/// A node as stored and served. `path` is the node's path in the space: `/` for the root,
/// `/alice`, `/alice/results/t.vot` (no trailing slash, segments never empty, `.` or `..`).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub path: String,
    pub kind: NodeKind,
    /// User name of the owner (the root belongs to no one: "").
    pub owner: String,
    /// Properties a client set (title, description, groupread, groupwrite, ispublic, islocked,
    /// any custom URI), without the server-maintained ones.
    pub properties: Vec<Property>,
    /// LinkNode target URI.
    pub target: Option<String>,
    /// DataNode: bytes, MD5 (hex) and MIME type of the current content; None before any data.
    pub length: Option<u64>,
    pub md5: Option<String>,
    pub content_type: Option<String>,
    /// Creation and last modification, ISO 8601 UTC with milliseconds (`2026-11-22T15:04:05.123Z`).
    pub ctime: String,
    pub mtime: String,
    /// Whether a write is in progress (VOSpace `busy`).
    pub busy: bool,
}

impl Node {
    /// A client property's value.
    pub fn property(&self, uri: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|p| p.uri == uri)
            .and_then(|p| p.value.as_deref())
    }

    /// `core#ispublic` is `true`.
    pub fn is_public(&self) -> bool {
        self.property(prop::IS_PUBLIC)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Group URIs in `core#groupread` (or `groupwrite`): space-separated.
    pub fn groups(&self, which: &str) -> Vec<String> {
        self.property(which)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Every property to serve: the client ones plus those the server maintains (length,
    /// date, ctime, mtime, MD5, type, creator), the latter marked read-only.
    pub fn all_properties(&self, creator_uri: &str) -> Vec<Property> {
        let ro = |uri: &str, v: String| Property {
            uri: uri.to_string(),
            value: Some(v),
            read_only: true,
        };
        let mut out = Vec::new();
        if self.kind == NodeKind::Data || self.kind == NodeKind::Container {
            out.push(ro(prop::LENGTH, self.length.unwrap_or(0).to_string()));
        }
        out.push(ro(prop::DATE, self.mtime.clone()));
        out.push(ro(prop::CTIME, self.ctime.clone()));
        out.push(ro(prop::MTIME, self.mtime.clone()));
        if let Some(m) = &self.md5 {
            out.push(ro(prop::MD5, m.clone()));
        }
        if let Some(t) = &self.content_type {
            // Both names are in use (CADC writes core#type; others core#contenttype).
            for uri in [prop::CONTENT_TYPE, prop::CONTENT_TYPE_ALT] {
                out.push(Property {
                    uri: uri.to_string(),
                    value: Some(t.clone()),
                    read_only: false,
                });
            }
        }
        if !self.owner.is_empty() {
            out.push(ro(prop::CREATOR, creator_uri.to_string()));
        }
        for p in &self.properties {
            if p.value.is_some() && !out.iter().any(|q| q.uri == p.uri) {
                out.push(p.clone());
            }
        }
        out
    }
}

/// Transfer directions: the four standard ones, or move/copy to a node URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    PushToVoSpace,
    PullFromVoSpace,
    PushFromVoSpace,
    PullToVoSpace,
    /// Server-side move (keepBytes false) or copy (keepBytes true) to this node URI.
    Node(String),
}

impl Direction {
    pub fn as_str(&self) -> &str {
        match self {
            Direction::PushToVoSpace => "pushToVoSpace",
            Direction::PullFromVoSpace => "pullFromVoSpace",
            Direction::PushFromVoSpace => "pushFromVoSpace",
            Direction::PullToVoSpace => "pullToVoSpace",
            Direction::Node(u) => u,
        }
    }

    pub fn parse(s: &str) -> Direction {
        match s.trim() {
            "pushToVoSpace" => Direction::PushToVoSpace,
            "pullFromVoSpace" => Direction::PullFromVoSpace,
            "pushFromVoSpace" => Direction::PushFromVoSpace,
            "pullToVoSpace" => Direction::PullToVoSpace,
            other => Direction::Node(other.to_string()),
        }
    }
}

/// A protocol of a transfer: its URI, the endpoint (in a server's answer) and the security
/// methods a client offers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Protocol {
    pub uri: String,
    pub endpoint: Option<String>,
    pub security_methods: Vec<String>,
}

/// A transfer request or its negotiated details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Target node URI (`vos://authority!vospace/path`).
    pub target: String,
    pub direction: Direction,
    pub view: Option<String>,
    pub protocols: Vec<Protocol>,
    /// For moves and copies: false = move, true = copy (default true).
    pub keep_bytes: Option<bool>,
}

/// The VOSpace faults (VOSpace 2.1 §5.5), each with its HTTP status. The response body is
/// `text/plain`: the fault name, then details (what the `vos` client and CADC send).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // the standard's names: InternalFault, …
pub enum Fault {
    /// 500
    InternalFault(String),
    /// 403
    PermissionDenied(String),
    /// 400
    InvalidUri(String),
    /// 404
    NodeNotFound(String),
    /// 409
    DuplicateNode(String),
    /// 400
    InvalidArgument(String),
    /// 400
    TypeNotSupported(String),
    /// 404 (the parent of a node to create does not exist)
    ContainerNotFound(String),
    /// 400 (a path goes through a LinkNode)
    LinkFound(String),
    /// 400
    ViewNotSupported(String),
    /// 400
    ProtocolNotSupported(String),
    /// 401: no or a bad credential where one is needed
    NotAuthenticated(String),
    /// 413: the owner's quota would be exceeded
    QuotaExceeded(String),
    /// 409: the node is locked (CADC's islocked) or busy
    NodeLocked(String),
    /// 412: a written file's MD5 or length differs from what the client declared
    TransferFailed(String),
    /// 507: the service's storage is full (written as an InternalFault: VOSpace has no fault
    /// of its own for it)
    StorageFull(String),
    /// 503: a shared bound of the service is reached for now (e.g. the memory all uploads in
    /// progress may buffer); answered with Retry-After. Written as an InternalFault: VOSpace
    /// has no fault of its own for it.
    Busy(String),
}

impl Fault {
    /// The fault's name as VOSpace writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::InternalFault(_) => "InternalFault",
            Fault::PermissionDenied(_) => "PermissionDenied",
            Fault::InvalidUri(_) => "InvalidURI",
            Fault::NodeNotFound(_) => "NodeNotFound",
            Fault::DuplicateNode(_) => "DuplicateNode",
            Fault::InvalidArgument(_) => "InvalidArgument",
            Fault::TypeNotSupported(_) => "TypeNotSupported",
            Fault::ContainerNotFound(_) => "ContainerNotFound",
            Fault::LinkFound(_) => "LinkFound",
            Fault::ViewNotSupported(_) => "ViewNotSupported",
            Fault::ProtocolNotSupported(_) => "ProtocolNotSupported",
            Fault::NotAuthenticated(_) => "NotAuthenticated",
            Fault::QuotaExceeded(_) => "QuotaExceeded",
            Fault::NodeLocked(_) => "NodeLocked",
            Fault::TransferFailed(_) => "TransferFailed",
            Fault::StorageFull(_) | Fault::Busy(_) => "InternalFault",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Fault::InternalFault(_) => 500,
            Fault::PermissionDenied(_) => 403,
            Fault::NodeNotFound(_) | Fault::ContainerNotFound(_) => 404,
            Fault::DuplicateNode(_) | Fault::NodeLocked(_) => 409,
            Fault::NotAuthenticated(_) => 401,
            Fault::QuotaExceeded(_) => 413,
            Fault::TransferFailed(_) => 412,
            Fault::StorageFull(_) => 507,
            Fault::Busy(_) => 503,
            _ => 400,
        }
    }

    /// The detail text.
    pub fn detail(&self) -> &str {
        match self {
            Fault::InternalFault(s)
            | Fault::PermissionDenied(s)
            | Fault::InvalidUri(s)
            | Fault::NodeNotFound(s)
            | Fault::DuplicateNode(s)
            | Fault::InvalidArgument(s)
            | Fault::TypeNotSupported(s)
            | Fault::ContainerNotFound(s)
            | Fault::LinkFound(s)
            | Fault::ViewNotSupported(s)
            | Fault::ProtocolNotSupported(s)
            | Fault::NotAuthenticated(s)
            | Fault::QuotaExceeded(s)
            | Fault::NodeLocked(s)
            | Fault::TransferFailed(s)
            | Fault::StorageFull(s)
            | Fault::Busy(s) => s,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.detail())
    }
}

impl std::error::Error for Fault {}

/// Checks and normalises a node path: `/`-separated segments, none empty, `.` or `..`, no
/// control characters or backslashes, at most 1024 bytes; returns it with one leading `/` and
/// no trailing one (`/` for the root).
pub fn normalise_path(p: &str) -> Result<String, Fault> {
    if p.len() > 1024 {
        return Err(Fault::InvalidUri(
            "the path is longer than 1024 bytes".into(),
        ));
    }
    let mut out = String::with_capacity(p.len() + 1);
    for seg in p.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." || seg.chars().any(|c| c.is_control() || c == '\\') {
            return Err(Fault::InvalidUri(format!("'{p}' is not a valid node path")));
        }
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The parent path (`None` for the root).
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last segment (`""` for the root).
pub fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(normalise_path("/a//b/").unwrap(), "/a/b");
        assert_eq!(normalise_path("").unwrap(), "/");
        assert!(normalise_path("/a/../b").is_err());
        assert!(normalise_path("/a/./b").is_err());
        assert!(normalise_path("/a\\b").is_err());
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(name("/a/b.txt"), "b.txt");
    }
}
