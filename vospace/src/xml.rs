//! VOSpace 2.1 XML documents, read and written with quick-xml: node documents (`GET`, `PUT`,
//! `POST` on `/nodes/...`), transfers (`/synctrans`, `/transfers`, UWS `jobInfo`) and the
//! service's lists of protocols, views and properties.
//!
//! Writing follows the element order of the VOSpace 2.1 schema (`VOSpace-v2.1.xsd`):
//!
//! * Node: `properties`; DataNode adds `accepts`, `provides`, `capabilities` (and the `busy`
//!   attribute); ContainerNode (a DataNode) adds `nodes`, which is **required**; LinkNode (a
//!   Node, so no `busy`, no views) adds `target`, which is **required**.
//! * Transfer: `target`, `direction`, `view`, `protocol`*, `keepBytes`, `param`*; Protocol:
//!   `endpoint`, `param`*, `securityMethod`*.
//!
//! Reading is namespace-aware (any prefix, or the default namespace, bound to
//! `http://www.ivoa.net/xml/VOSpace/v2.0` — VOSpace 2.0 and 2.1 share it), lenient about
//! what does not matter (unknown elements and attributes are ignored; children of the root
//! may be unqualified; an undeclared `xsi:` or `vos:` prefix in an attribute or in the
//! `xsi:type` value is taken for the usual namespace) and never panics: malformed input is a
//! [`Fault::InvalidArgument`] (an unknown node type [`Fault::TypeNotSupported`], a bad node
//! URI [`Fault::InvalidUri`]). Only the predefined entities and character references are
//! expanded: a DTD's entities are not (an entity defined there is an error where used).

use std::borrow::Cow;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::NsReader;
use quick_xml::XmlVersion;

use super::model::{
    normalise_path, Direction, Fault, Node, NodeKind, Property, Protocol, Transfer,
};
use super::model::{prop, std_uri};

/// The VOSpace namespace (2.0 and 2.1).
pub const VOS_NS: &str = "http://www.ivoa.net/xml/VOSpace/v2.0";
/// The XML Schema instance namespace (`xsi:type`, `xsi:nil`).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The `version` written on node and transfer documents.
pub const VOSPACE_VERSION: &str = "2.1";
/// The resource key of the service: node URIs are `vos://{authority}!vospace/path`.
pub const SERVICE_KEY: &str = "vospace";

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
/// Deepest element nesting accepted in a client's document (VOSpace documents need 4).
const MAX_DEPTH: usize = 64;

// ---------------------------------------------------------------------------------------------
// Node URIs
// ---------------------------------------------------------------------------------------------

/// The URI of the node at `path` (a normalised path, see [`normalise_path`]):
/// `vos://{authority}!vospace{path}`, the root `vos://{authority}!vospace/` (the form the
/// `vos` client builds and looks nodes up by). Characters a URI path cannot hold (space,
/// `"`, `#`, `%`, `<`, `>`, `?`, `[`, `\`, `]`, `^`, `` ` ``, `{`, `|`, `}`, controls) are
/// percent-encoded; other non-ASCII characters are kept (an IRI, as `xs:anyURI` allows), so
/// [`path_of_uri`] gives `path` back.
pub fn node_uri(authority: &str, path: &str) -> String {
    let mut out = String::with_capacity(authority.len() + path.len() + 16);
    out.push_str("vos://");
    out.push_str(authority);
    out.push('!');
    out.push_str(SERVICE_KEY);
    if !path.starts_with('/') {
        out.push('/');
    }
    for c in path.chars() {
        let keep = !c.is_ascii()
            || c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | '~'
                    | '!'
                    | '$'
                    | '&'
                    | '\''
                    | '('
                    | ')'
                    | '*'
                    | '+'
                    | ','
                    | ';'
                    | '='
                    | ':'
                    | '@'
                    | '/'
            );
        if keep && !c.is_control() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push('%');
                out.push(hex_digit(b >> 4));
                out.push(hex_digit(b & 0xf));
            }
        }
    }
    out
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(n & 0xf)])
}

/// The normalised node path of a node URI of this service: `vos://{authority}!vospace/...`
/// or `vos://{authority}~vospace/...` (`~` is the URL-safe form of `!`; `%21` is taken too),
/// scheme and authority compared without regard to ASCII case. The path is percent-decoded
/// (it must then be UTF-8) and normalised; a query or fragment is not part of it. Any other
/// URI is [`Fault::InvalidUri`].
pub fn path_of_uri(uri: &str, authority: &str) -> Result<String, Fault> {
    let uri = uri.trim();
    let bad = |why: &str| Fault::InvalidUri(format!("{why}: '{}'", clip(uri)));
    let rest = match uri.get(..6) {
        Some(s) if s.eq_ignore_ascii_case("vos://") => &uri[6..],
        _ => return Err(bad("not a vos:// URI")),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, rest) = rest.split_at(end);
    let ours = auth
        .get(..authority.len())
        .filter(|host| !authority.is_empty() && host.eq_ignore_ascii_case(authority))
        .and_then(|_| auth.get(authority.len()..))
        .is_some_and(|sep_key| {
            ["!", "~", "%21", "%7E"].iter().any(|sep| {
                sep_key
                    .get(..sep.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(sep))
                    && sep_key[sep.len()..].eq_ignore_ascii_case(SERVICE_KEY)
            })
        });
    if !ours {
        return Err(bad(&format!(
            "not a node of this service (vos://{authority}!{SERVICE_KEY})"
        )));
    }
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let decoded = percent_decode(path).ok_or_else(|| bad("bad percent-encoding in the path"))?;
    normalise_path(&decoded)
}

/// `%XX` escapes decoded (`percent-encoding`); `None` for a malformed escape (`%` not
/// followed by two hexadecimal digits) or a result that is not UTF-8. The one decoder of node
/// paths, in URIs and in request paths alike.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let malformed = b.iter().enumerate().any(|(i, c)| {
        *c == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// At most 200 characters of a client's string, for messages.
fn clip(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(200) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Appends `s` escaped for XML text or a double-quoted attribute value (`votable::xml::escape`:
/// `\r`, `\t`, `\n` as character references so that a reader's normalisation gives them back,
/// characters XML 1.0 cannot carry at all replaced by U+FFFD).
fn push_escaped(out: &mut String, s: &str) {
    out.push_str(&votable::xml::escape(s));
}

/// ` name="value"` (escaped).
fn push_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    push_escaped(out, value);
    out.push('"');
}

/// `<name>text</name>` (escaped).
fn push_text_element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    push_escaped(out, text);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// `<name uri="…"/>` for each URI, inside `<list>…</list>` (`<list/>` when there are none).
fn push_uri_list(out: &mut String, list: &str, item: &str, uris: &[&str]) {
    if uris.is_empty() {
        out.push('<');
        out.push_str(list);
        out.push_str("/>");
        return;
    }
    out.push('<');
    out.push_str(list);
    out.push('>');
    for u in uris {
        out.push('<');
        out.push_str(item);
        push_attr(out, "uri", u);
        out.push_str("/>");
    }
    out.push_str("</");
    out.push_str(list);
    out.push('>');
}

/// The `detail` of a node document (VOSpace 2.1 §6.4.3 getNode). Whatever the detail, the
/// elements the schema requires for the node's `xsi:type` are written (a ContainerNode's
/// `nodes`, a LinkNode's `target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// The node in full; children with their URI and type only (the spec's own example for
    /// `detail=min`).
    Min,
    /// The node and each child in full: properties, views, capabilities (the default: the
    /// `vos` client reads the children's length and dates from it).
    #[default]
    Max,
    /// The node with its properties but no type-specific extensions: no views or
    /// capabilities, and an empty `nodes` (no children) for a container.
    Properties,
}

impl Detail {
    /// From the `detail` query parameter (`min`, `max`, `properties`; ASCII case ignored).
    pub fn parse(s: &str) -> Option<Detail> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("min") {
            Some(Detail::Min)
        } else if s.eq_ignore_ascii_case("max") {
            Some(Detail::Max)
        } else if s.eq_ignore_ascii_case("properties") {
            Some(Detail::Properties)
        } else {
            None
        }
    }
}

/// How much of one `<vos:node>` element to write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// URI, type, busy, and the elements the schema requires (empty `nodes`, `target`).
    Bare,
    /// Bare plus properties.
    Properties,
    /// Properties, views and capabilities too.
    Full,
}

/// The views a node accepts and provides: a DataNode its bytes as they are
/// (`core#defaultview`); a container neither (it takes no bytes and offers no archive).
fn node_views(kind: NodeKind) -> &'static [&'static str] {
    match kind {
        NodeKind::Data => &[std_uri::VIEW_DEFAULT],
        NodeKind::Container | NodeKind::Link => &[],
    }
}

/// `<vos:node uri xsi:type [busy]>` (with the namespace declarations and `version` when it
/// is the document's root), the properties and type-specific elements at `level`, and for a
/// container the opening `<vos:nodes>`; the caller closes the element.
fn push_node_open(
    out: &mut String,
    node: &Node,
    level: Level,
    root: bool,
    authority: &str,
    creator_uri: &str,
) {
    out.push_str("<vos:node");
    if root {
        push_attr(out, "xmlns:vos", VOS_NS);
        push_attr(out, "xmlns:xsi", XSI_NS);
    }
    push_attr(out, "uri", &node_uri(authority, &node.path));
    push_attr(out, "xsi:type", node.kind.xsi_type());
    if node.kind != NodeKind::Link {
        // DataNode and ContainerNode only: LinkNode derives from Node, which has no `busy`.
        push_attr(out, "busy", if node.busy { "true" } else { "false" });
    }
    if root {
        push_attr(out, "version", VOSPACE_VERSION);
    }
    out.push('>');
    if level != Level::Bare {
        push_properties(out, &node.all_properties(creator_uri));
    }
    match node.kind {
        NodeKind::Link => {
            push_text_element(out, "vos:target", node.target.as_deref().unwrap_or(""));
        }
        NodeKind::Data | NodeKind::Container => {
            if level == Level::Full {
                let views = node_views(node.kind);
                push_uri_list(out, "vos:accepts", "vos:view", views);
                push_uri_list(out, "vos:provides", "vos:view", views);
                out.push_str("<vos:capabilities/>");
            }
            if node.kind == NodeKind::Container {
                out.push_str("<vos:nodes>");
            }
        }
    }
}

/// Closes what [`push_node_open`] opened.
fn node_close(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Container => "</vos:nodes></vos:node>",
        NodeKind::Data | NodeKind::Link => "</vos:node>",
    }
}

/// `<vos:properties>` with one `<vos:property uri [readOnly="true"]>value</vos:property>`
/// each (`xsi:nil="true"` for a property without a value).
fn push_properties(out: &mut String, props: &[Property]) {
    if props.is_empty() {
        out.push_str("<vos:properties/>");
        return;
    }
    out.push_str("<vos:properties>");
    for p in props {
        out.push_str("<vos:property");
        push_attr(out, "uri", &p.uri);
        if p.read_only {
            out.push_str(" readOnly=\"true\"");
        }
        match &p.value {
            Some(v) => {
                out.push('>');
                push_escaped(out, v);
                out.push_str("</vos:property>");
            }
            None => out.push_str(" xsi:nil=\"true\"/>"),
        }
    }
    out.push_str("</vos:properties>");
}

/// A node document: the XML declaration, then `<vos:node>` with the properties (from
/// [`Node::all_properties`]), views, capabilities, a LinkNode's target, and for a container
/// its children (`children`; none when None) as nested `<vos:node>` elements, as much of
/// each as `detail` asks for (see [`Detail`]). Equal to [`write_node_head`] + one
/// [`write_node_list_item`] per child + [`write_node_tail`], which can stream a large
/// container instead.
pub fn write_node(
    node: &Node,
    detail: Detail,
    children: Option<&[Node]>,
    authority: &str,
    creator_uri: &str,
) -> String {
    let mut out = write_node_head(node, detail, authority, creator_uri);
    if node.kind == NodeKind::Container && detail != Detail::Properties {
        for child in children.unwrap_or(&[]) {
            push_child(&mut out, child, detail, authority, creator_uri);
        }
    }
    out.push_str(write_node_tail(node));
    out
}

/// The start of a node document, up to and including a container's `<vos:nodes>`.
pub fn write_node_head(node: &Node, detail: Detail, authority: &str, creator_uri: &str) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str(XML_DECL);
    let level = match detail {
        Detail::Min | Detail::Max => Level::Full,
        Detail::Properties => Level::Properties,
    };
    push_node_open(&mut out, node, level, true, authority, creator_uri);
    out
}

/// One child of a container, as written inside `<vos:nodes>` at this `detail` (its own
/// `nodes` always empty). It uses the `vos:` and `xsi:` prefixes the document's root
/// declares. At `Detail::Properties` a document has no children; this then gives the child
/// with its properties.
pub fn write_node_list_item(
    child: &Node,
    detail: Detail,
    authority: &str,
    creator_uri: &str,
) -> String {
    let mut out = String::with_capacity(1024);
    push_child(&mut out, child, detail, authority, creator_uri);
    out
}

/// The end of a node document (closes `<vos:nodes>` for a container, then `<vos:node>`).
pub fn write_node_tail(node: &Node) -> &'static str {
    match node.kind {
        NodeKind::Container => "</vos:nodes></vos:node>\n",
        NodeKind::Data | NodeKind::Link => "</vos:node>\n",
    }
}

fn push_child(out: &mut String, child: &Node, detail: Detail, authority: &str, creator: &str) {
    let level = match detail {
        Detail::Min => Level::Bare,
        Detail::Max => Level::Full,
        Detail::Properties => Level::Properties,
    };
    push_node_open(out, child, level, false, authority, creator);
    out.push_str(node_close(child.kind));
}

/// The `<vos:transfer>` element alone (declaring its namespace, `version="2.1"`): for a UWS
/// job's `jobInfo`. See [`write_transfer`].
pub fn write_transfer_element(t: &Transfer) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("<vos:transfer");
    push_attr(&mut out, "xmlns:vos", VOS_NS);
    push_attr(&mut out, "version", VOSPACE_VERSION);
    out.push('>');
    push_text_element(&mut out, "vos:target", &t.target);
    push_text_element(&mut out, "vos:direction", t.direction.as_str());
    if let Some(v) = &t.view {
        out.push_str("<vos:view");
        push_attr(&mut out, "uri", v);
        out.push_str("/>");
    }
    for p in &t.protocols {
        out.push_str("<vos:protocol");
        push_attr(&mut out, "uri", &p.uri);
        if p.endpoint.is_none() && p.security_methods.is_empty() {
            out.push_str("/>");
            continue;
        }
        out.push('>');
        if let Some(e) = &p.endpoint {
            push_text_element(&mut out, "vos:endpoint", e);
        }
        for s in &p.security_methods {
            out.push_str("<vos:securityMethod");
            push_attr(&mut out, "uri", s);
            out.push_str("/>");
        }
        out.push_str("</vos:protocol>");
    }
    if let Some(k) = t.keep_bytes {
        push_text_element(&mut out, "vos:keepBytes", if k { "true" } else { "false" });
    }
    out.push_str("</vos:transfer>");
    out
}

/// A transfer document (the server's answer, with `<vos:endpoint>` in each protocol):
/// `target`, `direction`, `view`, `protocol`s (`endpoint`, then `securityMethod`s),
/// `keepBytes`, in the schema's order.
pub fn write_transfer(t: &Transfer) -> String {
    let mut out = String::from(XML_DECL);
    out.push_str(&write_transfer_element(t));
    out.push('\n');
    out
}

/// `<vos:{root} xmlns:vos>` then each list of `(element, uris)`, e.g. `accepts`, `provides`.
fn write_service_list(root: &str, item: &str, lists: &[(&str, &[&str])]) -> String {
    let mut out = String::from(XML_DECL);
    out.push_str("<vos:");
    out.push_str(root);
    push_attr(&mut out, "xmlns:vos", VOS_NS);
    out.push('>');
    for (name, uris) in lists {
        push_uri_list(&mut out, &format!("vos:{name}"), item, uris);
    }
    out.push_str("</vos:");
    out.push_str(root);
    out.push_str(">\n");
    out
}

/// `GET /protocols` (VOSpace 2.1 §6.2.1): `<vos:protocols><vos:accepts><vos:protocol
/// uri/>…</vos:accepts><vos:provides>…</vos:provides></vos:protocols>`, as the standard's
/// text and example have it. (The schema's global `protocols` element is a plain
/// `ProtocolList`; this content is its `GetProtocolsResponse` type, which no global element
/// carries.)
pub fn write_protocols(accepts: &[&str], provides: &[&str]) -> String {
    write_service_list(
        "protocols",
        "vos:protocol",
        &[("accepts", accepts), ("provides", provides)],
    )
}

/// `GET /views` (§6.2.2): `<vos:views><vos:accepts><vos:view uri/>…</vos:accepts>
/// <vos:provides>…</vos:provides></vos:views>` (content of type `GetViewsResponse`).
pub fn write_views(accepts: &[&str], provides: &[&str]) -> String {
    write_service_list(
        "views",
        "vos:view",
        &[("accepts", accepts), ("provides", provides)],
    )
}

/// `GET /properties` (§6.2.3): `<vos:properties>` with `accepts`, `provides` and `contains`
/// lists of `<vos:property uri/>` (content of type `GetPropertiesResponse`).
pub fn write_properties(accepts: &[&str], provides: &[&str], contains: &[&str]) -> String {
    write_service_list(
        "properties",
        "vos:property",
        &[
            ("accepts", accepts),
            ("provides", provides),
            ("contains", contains),
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// A client's node document (`PUT` to create, `POST` to set properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedNode {
    /// The `uri` attribute as given (trimmed); see [`path_of_uri`].
    pub uri: String,
    /// From `xsi:type`: `ContainerNode`, `DataNode` (and its subtypes `StructuredDataNode`,
    /// `UnstructuredDataNode`), `LinkNode`.
    pub kind: NodeKind,
    /// The properties in document order: value trimmed (`Some("")` for an empty element: the
    /// standard's "an empty value sets the value to blank"), None for `xsi:nil="true"`
    /// (delete); `read_only` as the client marked it.
    pub properties: Vec<Property>,
    /// A LinkNode's `target` (trimmed; None if absent or empty — the `vos` client's property
    /// updates of a link carry none). Always None for other types.
    pub target: Option<String>,
}

/// Reads a node document. The root must be `node` in the VOSpace namespace with a `uri`
/// and an `xsi:type`; `properties` and `target` are read from its direct children (views,
/// capabilities and a container's `nodes` are ignored: a client cannot set them).
pub fn parse_node(xml: &[u8]) -> Result<ParsedNode, Fault> {
    let root = read_document(xml)?;
    if !root.is_vos_root("node") {
        return Err(invalid(format!(
            "the document is a {}, not a VOSpace node ({{{VOS_NS}}}node)",
            root.describe()
        )));
    }
    let uri = root
        .attr("uri")
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid("the node has no uri attribute"))?
        .to_string();
    let kind = node_kind(root.xsi_type.as_ref())?;
    let mut properties = Vec::new();
    for list in root.children_named("properties") {
        for p in list.children_named("property") {
            let puri = p
                .attr("uri")
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .ok_or_else(|| invalid("a property has no uri attribute"))?;
            let nil = p.xsi_nil;
            let read_only = match p.attr("readOnly") {
                Some(v) => parse_bool(v)
                    .ok_or_else(|| invalid(format!("readOnly=\"{}\" is not a boolean", clip(v))))?,
                None => false,
            };
            properties.push(Property {
                uri: puri.to_string(),
                value: (!nil).then(|| p.text.trim().to_string()),
                read_only,
            });
        }
    }
    let target = if kind == NodeKind::Link {
        root.children_named("target")
            .next()
            .map(|t| t.text.trim().to_string())
            .filter(|t| !t.is_empty())
    } else {
        None
    };
    Ok(ParsedNode {
        uri,
        kind,
        properties,
        target,
    })
}

/// Reads a transfer document (VOSpace 2.0 or 2.1): `target` (required, one),
/// `direction` (required, one: a standard direction or a node URI for a move or copy),
/// `view` (its `uri`), `protocol`s (`uri`, `endpoint`, `securityMethod` URIs), `keepBytes`.
/// `param`s and unknown elements are ignored.
pub fn parse_transfer(xml: &[u8]) -> Result<Transfer, Fault> {
    let root = read_document(xml)?;
    if !root.is_vos_root("transfer") {
        return Err(invalid(format!(
            "the document is a {}, not a VOSpace transfer ({{{VOS_NS}}}transfer)",
            root.describe()
        )));
    }
    let target =
        single_text(&root, "target")?.ok_or_else(|| invalid("the transfer has no target"))?;
    let direction =
        single_text(&root, "direction")?.ok_or_else(|| invalid("the transfer has no direction"))?;
    let mut views = root.children_named("view");
    let view = match (views.next(), views.next()) {
        (None, _) => None,
        (Some(v), None) => Some(
            v.attr("uri")
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .ok_or_else(|| invalid("the transfer's view has no uri attribute"))?
                .to_string(),
        ),
        (Some(_), Some(_)) => return Err(invalid("the transfer has more than one view")),
    };
    let mut protocols = Vec::new();
    for p in root.children_named("protocol") {
        let uri = p
            .attr("uri")
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid("a protocol has no uri attribute"))?
            .to_string();
        let endpoint = p
            .children_named("endpoint")
            .next()
            .map(|e| e.text.trim().to_string())
            .filter(|e| !e.is_empty());
        let security_methods = p
            .children_named("securityMethod")
            .filter_map(|s| s.attr("uri"))
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        protocols.push(Protocol {
            uri,
            endpoint,
            security_methods,
        });
    }
    let keep_bytes = match single_text(&root, "keepBytes")? {
        None => None,
        Some(k) => Some(
            parse_bool(&k)
                .ok_or_else(|| invalid(format!("keepBytes '{}' is not a boolean", clip(&k))))?,
        ),
    };
    Ok(Transfer {
        target,
        direction: Direction::parse(&direction),
        view,
        protocols,
        keep_bytes,
    })
}

fn invalid(msg: impl Into<String>) -> Fault {
    Fault::InvalidArgument(msg.into())
}

/// `xs:boolean`.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The trimmed text of the only child `name` of `el` (None if absent or empty; an error if
/// repeated).
fn single_text(el: &El, name: &str) -> Result<Option<String>, Fault> {
    let mut it = el.children_named(name);
    match (it.next(), it.next()) {
        (None, _) => Ok(None),
        (Some(e), None) => Ok(Some(e.text.trim().to_string()).filter(|t| !t.is_empty())),
        (Some(_), Some(_)) => Err(invalid(format!(
            "the {} has more than one {name}",
            el.local
        ))),
    }
}

/// The node kind of an `xsi:type`.
fn node_kind(t: Option<&XsiType>) -> Result<NodeKind, Fault> {
    let t = t.ok_or_else(|| invalid("the node has no xsi:type attribute"))?;
    let in_vos = match &t.ns {
        TypeNs::Bound(ns) => ns == VOS_NS,
        // An unprefixed type with no default namespace, or the conventional prefix left
        // undeclared: taken for a VOSpace type.
        TypeNs::Unbound => true,
        TypeNs::Unknown(p) => p == "vos",
    };
    if !in_vos {
        return Err(Fault::TypeNotSupported(format!(
            "node type '{}' is not a VOSpace type",
            clip(&t.raw)
        )));
    }
    match t.local.as_str() {
        "DataNode" | "UnstructuredDataNode" | "StructuredDataNode" => Ok(NodeKind::Data),
        "ContainerNode" => Ok(NodeKind::Container),
        "LinkNode" => Ok(NodeKind::Link),
        _ => Err(Fault::TypeNotSupported(format!(
            "node type '{}' is not supported (ContainerNode, DataNode, LinkNode)",
            clip(&t.raw)
        ))),
    }
}

/// The namespace of an `xsi:type` value's prefix.
enum TypeNs {
    Bound(String),
    Unbound,
    Unknown(String),
}

struct XsiType {
    ns: TypeNs,
    local: String,
    raw: String,
}

/// One element of a client's document: what the readers above need of it.
struct El {
    /// Resolved namespace (None: no namespace).
    ns: Option<String>,
    local: String,
    /// Unqualified attributes (`uri`, `readOnly`, `version`, ...): name, value.
    attrs: Vec<(String, String)>,
    xsi_type: Option<XsiType>,
    xsi_nil: bool,
    /// Direct text content (CDATA and references resolved), nested markup skipped.
    text: String,
    children: Vec<El>,
}

impl El {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn is_vos_root(&self, local: &str) -> bool {
        self.ns.as_deref() == Some(VOS_NS) && self.local == local
    }

    /// Children called `local` in the VOSpace namespace (or unqualified: lenient).
    fn children_named<'a>(&'a self, local: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children
            .iter()
            .filter(move |c| c.local == local && c.ns.as_deref().is_none_or(|ns| ns == VOS_NS))
    }

    fn describe(&self) -> String {
        match &self.ns {
            Some(ns) => format!("{{{}}}{}", clip(ns), clip(&self.local)),
            None => format!("{} (no namespace)", clip(&self.local)),
        }
    }
}

/// Parses a whole document into [`El`]s.
fn read_document(xml: &[u8]) -> Result<El, Fault> {
    let text =
        std::str::from_utf8(xml).map_err(|e| invalid(format!("the document is not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut r = NsReader::from_str(text);
    r.config_mut().expand_empty_elements = true;
    let mut stack: Vec<El> = Vec::new();
    let mut root: Option<El> = None;
    loop {
        let event = r.read_event().map_err(|e| {
            invalid(format!(
                "malformed XML at byte {}: {}",
                r.error_position(),
                clip(&e.to_string())
            ))
        })?;
        match event {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(invalid("more than one root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(invalid("elements nested too deeply"));
                }
                stack.push(element(&r, &e)?);
            }
            Event::Empty(e) => {
                // Not produced with `expand_empty_elements`; handled all the same.
                let el = element(&r, &e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err(invalid("more than one root element")),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| invalid("an end tag without a start tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::CData(c) => push_text(&mut stack, &c.xml10_content())?,
            Event::GeneralRef(g) => {
                let s: Cow<'_, str> = match g.resolve_char_ref() {
                    Ok(Some(c)) => Cow::Owned(c.to_string()),
                    Ok(None) => match resolve_predefined_entity(&g) {
                        Some(s) => Cow::Borrowed(s),
                        None => {
                            return Err(invalid(format!("unknown entity &{};", clip(&g))));
                        }
                    },
                    Err(e) => return Err(invalid(format!("bad character reference: {e}"))),
                };
                push_text(&mut stack, &s)?;
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(invalid("the document ends inside an element (truncated?)"));
    }
    root.ok_or_else(|| invalid("the document has no element"))
}

/// Text goes to the open element; outside the root only whitespace is allowed.
fn push_text(stack: &mut [El], s: &str) -> Result<(), Fault> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(invalid("text outside the root element")),
    }
}

/// The namespace of a resolved name; an undeclared prefix is an error for an element, and
/// for an attribute taken for its usual namespace when it is `xsi` or `vos`.
fn namespace_of(res: ResolveResult<'_>, attribute: bool) -> Result<Option<String>, Fault> {
    match res {
        ResolveResult::Bound(ns) => Ok(Some(ns.0.to_string())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(p) if attribute && p == "xsi" => Ok(Some(XSI_NS.to_string())),
        ResolveResult::Unknown(p) if attribute && p == "vos" => Ok(Some(VOS_NS.to_string())),
        ResolveResult::Unknown(p) => Err(invalid(format!(
            "namespace prefix '{}' is not declared",
            clip(&p)
        ))),
    }
}

/// An [`El`] (without children yet) from a start tag.
fn element(r: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<El, Fault> {
    let resolver = r.resolver();
    let (ns, local) = resolver.resolve_element(e.name());
    let mut el = El {
        ns: namespace_of(ns, false)?,
        local: local.into_inner().to_string(),
        attrs: Vec::new(),
        xsi_type: None,
        xsi_nil: false,
        text: String::new(),
        children: Vec::new(),
    };
    for a in e.attributes() {
        let a = a.map_err(|e| invalid(format!("bad attribute: {}", clip(&e.to_string()))))?;
        if a.key.as_namespace_binding().is_some() {
            continue;
        }
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| invalid(format!("bad attribute value: {}", clip(&e.to_string()))))?;
        let (ans, alocal) = resolver.resolve_attribute(a.key);
        let alocal = alocal.into_inner();
        match namespace_of(ans, true)? {
            None => el.attrs.push((alocal.to_string(), value.into_owned())),
            Some(ns) if ns == XSI_NS && alocal == "type" => {
                let raw = value.trim();
                let (tns, tlocal) = resolver.resolve_element(QName(raw));
                el.xsi_type = Some(XsiType {
                    ns: match tns {
                        ResolveResult::Bound(n) => TypeNs::Bound(n.0.to_string()),
                        ResolveResult::Unbound => TypeNs::Unbound,
                        ResolveResult::Unknown(p) => TypeNs::Unknown(p),
                    },
                    local: tlocal.into_inner().to_string(),
                    raw: raw.to_string(),
                });
            }
            Some(ns) if ns == XSI_NS && alocal == "nil" => {
                el.xsi_nil = parse_bool(&value).ok_or_else(|| {
                    invalid(format!("xsi:nil=\"{}\" is not a boolean", clip(&value)))
                })?;
            }
            Some(_) => {}
        }
    }
    Ok(el)
}

/// Property URIs this service understands and serves, for `GET /properties`: what a client
/// may set (`accepts`) and what the server fills in (`provides`).
pub fn standard_properties() -> (Vec<&'static str>, Vec<&'static str>) {
    let accepts = vec![
        prop::TITLE,
        prop::DESCRIPTION,
        prop::CONTENT_TYPE,
        prop::CONTENT_TYPE_ALT,
        prop::GROUP_READ,
        prop::GROUP_WRITE,
        prop::IS_PUBLIC,
        prop::IS_LOCKED,
    ];
    let provides = vec![
        prop::LENGTH,
        prop::DATE,
        prop::CTIME,
        prop::MTIME,
        prop::MD5,
        prop::CONTENT_TYPE,
        prop::CONTENT_TYPE_ALT,
        prop::CREATOR,
    ];
    (accepts, provides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_decode_and_malformed_ones_are_refused() {
        assert_eq!(percent_decode("a%2Bb%25c").as_deref(), Some("a+b%c"));
        assert_eq!(percent_decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        for bad in ["%", "%2", "%zz", "a%g1", "%FF"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
    use std::path::PathBuf;
    use std::process::Command;

    const AUTH: &str = "example.org";
    const CREATOR: &str = "ivo://example.org/users?alice";

    fn node(path: &str, kind: NodeKind) -> Node {
        Node {
            path: path.to_string(),
            kind,
            owner: "alice".into(),
            properties: vec![],
            target: None,
            length: None,
            md5: None,
            content_type: None,
            ctime: "2026-11-22T15:04:05.123Z".into(),
            mtime: "2026-11-23T10:00:00.000Z".into(),
            busy: false,
        }
    }

    fn client_prop(uri: &str, value: &str) -> Property {
        Property {
            uri: uri.into(),
            value: Some(value.into()),
            read_only: false,
        }
    }

    /// A data node with content, awkward property values and a custom property.
    fn data_node() -> Node {
        let mut n = node("/alice/results/t <1> & \"q\".vot", NodeKind::Data);
        n.length = Some(1234);
        n.md5 = Some("d41d8cd98f00b204e9800998ecf8427e".into());
        n.content_type = Some("application/x-votable+xml".into());
        n.properties = vec![
            client_prop(prop::TITLE, "Résumé <x> & 'y' \"z\""),
            client_prop(prop::DESCRIPTION, "line 1\nline 2\ttab\r\nwindows"),
            client_prop(prop::IS_PUBLIC, "true"),
            client_prop(
                prop::GROUP_READ,
                "ivo://example.org/gms?g1 ivo://example.org/gms?g2",
            ),
            client_prop("urn:x-custom:prop", ""),
        ];
        n
    }

    fn container() -> (Node, Vec<Node>) {
        let mut c = node("/alice", NodeKind::Container);
        c.properties = vec![client_prop(prop::DESCRIPTION, "Alice's files")];
        let mut link = node("/alice/ln", NodeKind::Link);
        link.target = Some("https://example.com/a?b=1&c=2".into());
        let mut busy = node("/alice/upload.fits", NodeKind::Data);
        busy.busy = true;
        let children = vec![
            data_node(),
            node("/alice/sub dir", NodeKind::Container),
            link,
            busy,
        ];
        (c, children)
    }

    fn link_node() -> Node {
        let mut l = node("/alice/ln", NodeKind::Link);
        l.target = Some("vos://example.org!vospace/alice/t.vot".into());
        l.properties = vec![client_prop(prop::TITLE, "a link")];
        l
    }

    fn root_node() -> Node {
        let mut r = node("/", NodeKind::Container);
        r.owner = String::new();
        r
    }

    fn transfer_answer() -> Transfer {
        Transfer {
            target: "vos://example.org!vospace/alice/t.vot".into(),
            direction: Direction::PullFromVoSpace,
            view: Some(std_uri::VIEW_DEFAULT.into()),
            protocols: vec![
                Protocol {
                    uri: std_uri::PROTO_HTTPSGET.into(),
                    endpoint: Some("https://vo.example.org/vospace/data/abc?x=1&y=2".into()),
                    security_methods: vec!["ivo://ivoa.net/sso#cookie".into()],
                },
                Protocol {
                    uri: std_uri::PROTO_HTTPGET.into(),
                    endpoint: Some("http://vo.example.org/vospace/data/def".into()),
                    security_methods: vec![],
                },
                Protocol {
                    uri: std_uri::PROTO_HTTPSPUT.into(),
                    endpoint: None,
                    security_methods: vec![],
                },
            ],
            keep_bytes: None,
        }
    }

    fn move_transfer() -> Transfer {
        Transfer {
            target: "vos://example.org!vospace/alice/a".into(),
            direction: Direction::Node("vos://example.org!vospace/alice/b".into()),
            view: None,
            protocols: vec![],
            keep_bytes: Some(false),
        }
    }

    /// Every document this module writes, by file name, for the schema check.
    fn written_documents() -> Vec<(String, String)> {
        let (c, children) = container();
        let mut docs = vec![];
        for (d, name) in [
            (Detail::Min, "min"),
            (Detail::Max, "max"),
            (Detail::Properties, "properties"),
        ] {
            docs.push((
                format!("container-{name}.xml"),
                write_node(&c, d, Some(&children), AUTH, CREATOR),
            ));
            docs.push((
                format!("data-{name}.xml"),
                write_node(&data_node(), d, None, AUTH, CREATOR),
            ));
            docs.push((
                format!("link-{name}.xml"),
                write_node(&link_node(), d, None, AUTH, CREATOR),
            ));
        }
        docs.push((
            "root-empty.xml".into(),
            write_node(&root_node(), Detail::Max, None, AUTH, CREATOR),
        ));
        let mut odd = data_node();
        odd.properties.push(Property {
            uri: "urn:x-nil".into(),
            value: None,
            read_only: false,
        });
        odd.properties.push(client_prop(
            "urn:x-controls",
            "bell\u{7} nul-ish\u{1} \u{FFFF}",
        ));
        docs.push((
            "data-odd.xml".into(),
            write_node(&odd, Detail::Max, None, AUTH, CREATOR),
        ));
        let mut nil = String::from(XML_DECL);
        nil.push_str(&format!(
            r#"<vos:node xmlns:vos="{VOS_NS}" xmlns:xsi="{XSI_NS}" uri="vos://example.org!vospace/a" xsi:type="vos:DataNode">"#
        ));
        push_properties(
            &mut nil,
            &[rw("urn:gone", None, false), rw("urn:here", Some("1"), true)],
        );
        nil.push_str("</vos:node>");
        docs.push(("data-nil-property.xml".into(), nil));
        docs.push(("transfer.xml".into(), write_transfer(&transfer_answer())));
        docs.push(("transfer-move.xml".into(), write_transfer(&move_transfer())));
        docs
    }

    // ---- URIs --------------------------------------------------------------------------------

    #[test]
    fn uris() {
        assert_eq!(node_uri(AUTH, "/"), "vos://example.org!vospace/");
        assert_eq!(
            node_uri(AUTH, "/alice/t.vot"),
            "vos://example.org!vospace/alice/t.vot"
        );
        assert_eq!(
            node_uri(AUTH, "/a b/c#d?e%f\"<>[]^`{|}\\"),
            "vos://example.org!vospace/a%20b/c%23d%3Fe%25f%22%3C%3E%5B%5D%5E%60%7B%7C%7D%5C"
        );
        assert_eq!(
            node_uri(AUTH, "/é~!$&'()*+,;=:@"),
            "vos://example.org!vospace/é~!$&'()*+,;=:@"
        );
        for p in [
            "/",
            "/alice",
            "/alice/t <1> & \"q\".vot",
            "/é/日本/a%20b",
            "/a b/c#d?e%f\"<>[]^`{|}",
        ] {
            assert_eq!(path_of_uri(&node_uri(AUTH, p), AUTH).unwrap(), p, "{p}");
        }
        let ok = [
            ("vos://example.org!vospace", "/"),
            ("vos://example.org!vospace/", "/"),
            ("vos://example.org~vospace", "/"),
            ("vos://example.org~vospace/alice/", "/alice"),
            ("  VOS://Example.ORG!vospace/alice//x  ", "/alice/x"),
            ("vos://example.org%21vospace/alice", "/alice"),
            ("vos://example.org!vospace/alice/a%20b%C3%A9", "/alice/a bé"),
            ("vos://example.org!vospace/alice/x?link=1#frag", "/alice/x"),
            ("vos://example.org!vospace/alice/new dir", "/alice/new dir"),
        ];
        for (u, p) in ok {
            assert_eq!(path_of_uri(u, AUTH).as_deref(), Ok(p), "{u}");
        }
        let bad = [
            "",
            "vos:",
            "vos://",
            "vos:///alice",
            "ivo://example.org/vospace/alice",
            "https://example.org/vospace/nodes/alice",
            "vos://example.com!vospace/alice",
            "vos://example.org!vault/alice",
            "vos://example.org!vospacex/alice",
            "vos://example.org/vospace/alice",
            "vos://example.orgvospace/alice",
            "vos://example.org!vospace/a%2",
            "vos://example.org!vospace/a%zz",
            "vos://example.org!vospace/a%FF",
            "vos://example.org!vospace/a/../b",
            "vos://example.org!vospace/a/%2E%2E/b",
            "vos://example.org!vospace/a%00b",
            "vos://é!vospace/a",
        ];
        for u in bad {
            assert!(
                matches!(path_of_uri(u, AUTH), Err(Fault::InvalidUri(_))),
                "{u}: {:?}",
                path_of_uri(u, AUTH)
            );
        }
        let long = format!("vos://example.org!vospace/{}", "a".repeat(2000));
        assert!(matches!(
            path_of_uri(&long, AUTH),
            Err(Fault::InvalidUri(_))
        ));
        assert!(path_of_uri("vos://x!vospace/a", "").is_err());
    }

    #[test]
    fn detail_parameter() {
        assert_eq!(Detail::parse("min"), Some(Detail::Min));
        assert_eq!(Detail::parse("MAX"), Some(Detail::Max));
        assert_eq!(Detail::parse(" properties "), Some(Detail::Properties));
        assert_eq!(Detail::parse("all"), None);
        assert_eq!(Detail::default(), Detail::Max);
    }

    // ---- writing, read back ------------------------------------------------------------------

    /// Where each of `needles` first occurs, asserting they occur in this order.
    fn assert_order(doc: &str, needles: &[&str]) {
        let mut at = 0;
        for n in needles {
            match doc[at..].find(n) {
                Some(i) => at += i + n.len(),
                None => panic!("{n:?} missing or out of order in\n{doc}"),
            }
        }
    }

    #[test]
    fn data_node_round_trip() {
        let n = data_node();
        let doc = write_node(&n, Detail::Max, None, AUTH, CREATOR);
        assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<vos:node "));
        assert_order(
            &doc,
            &[
                "xmlns:vos=\"http://www.ivoa.net/xml/VOSpace/v2.0\"",
                "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
                "uri=\"vos://example.org!vospace/alice/results/t%20%3C1%3E%20&amp;%20%22q%22.vot\"",
                "xsi:type=\"vos:DataNode\" busy=\"false\"",
                "<vos:properties>",
                "<vos:property uri=\"ivo://ivoa.net/vospace/core#length\" readOnly=\"true\">1234</vos:property>",
                "core#MD5\" readOnly=\"true\">d41d8cd98f00b204e9800998ecf8427e<",
                "core#type\">application/x-votable+xml<",
                "core#creator\" readOnly=\"true\">ivo://example.org/users?alice<",
                "core#title\">Résumé &lt;x&gt; &amp; 'y' &quot;z&quot;</vos:property>",
                "</vos:properties>",
                "<vos:accepts><vos:view uri=\"ivo://ivoa.net/vospace/core#defaultview\"/></vos:accepts>",
                "<vos:provides><vos:view uri=\"ivo://ivoa.net/vospace/core#defaultview\"/></vos:provides>",
                "<vos:capabilities/>",
                "</vos:node>",
            ],
        );
        let p = parse_node(doc.as_bytes()).unwrap();
        assert_eq!(p.uri, node_uri(AUTH, &n.path));
        assert_eq!(path_of_uri(&p.uri, AUTH).unwrap(), n.path);
        assert_eq!(p.kind, NodeKind::Data);
        assert_eq!(p.target, None);
        let want: Vec<Property> = n
            .all_properties(CREATOR)
            .into_iter()
            .map(|mut q| {
                // Values come back trimmed; `\r\n` survives as written (`&#13;`).
                q.value = q.value.map(|v| v.trim().to_string());
                q
            })
            .collect();
        assert_eq!(p.properties, want);
        assert_eq!(
            p.properties
                .iter()
                .find(|q| q.uri == prop::DESCRIPTION)
                .unwrap()
                .value
                .as_deref(),
            Some("line 1\nline 2\ttab\r\nwindows")
        );
    }

    #[test]
    fn container_details() {
        let (c, children) = container();
        let max = write_node(&c, Detail::Max, Some(&children), AUTH, CREATOR);
        assert_order(
            &max,
            &[
                "uri=\"vos://example.org!vospace/alice\" xsi:type=\"vos:ContainerNode\" busy=\"false\" version=\"2.1\">",
                "<vos:properties>",
                "core#description\">Alice's files<",
                "</vos:properties><vos:accepts/><vos:provides/><vos:capabilities/><vos:nodes>",
                // children in full
                "<vos:node uri=\"vos://example.org!vospace/alice/results/t%20%3C1%3E",
                "xsi:type=\"vos:DataNode\" busy=\"false\"><vos:properties>",
                "core#length\" readOnly=\"true\">1234<",
                "<vos:capabilities/></vos:node>",
                "<vos:node uri=\"vos://example.org!vospace/alice/sub%20dir\" xsi:type=\"vos:ContainerNode\" busy=\"false\"><vos:properties>",
                "<vos:capabilities/><vos:nodes></vos:nodes></vos:node>",
                "<vos:node uri=\"vos://example.org!vospace/alice/ln\" xsi:type=\"vos:LinkNode\"><vos:properties>",
                "</vos:properties><vos:target>https://example.com/a?b=1&amp;c=2</vos:target></vos:node>",
                "<vos:node uri=\"vos://example.org!vospace/alice/upload.fits\" xsi:type=\"vos:DataNode\" busy=\"true\">",
                "</vos:nodes></vos:node>\n",
            ],
        );
        // Children are not nodes' own properties.
        let p = parse_node(max.as_bytes()).unwrap();
        assert_eq!(p.kind, NodeKind::Container);
        assert_eq!(p.properties, c.all_properties(CREATOR));

        let min = write_node(&c, Detail::Min, Some(&children), AUTH, CREATOR);
        assert_order(
            &min,
            &[
                "<vos:properties>",
                "<vos:capabilities/><vos:nodes>",
                "t%20%3C1%3E%20&amp;%20%22q%22.vot\" xsi:type=\"vos:DataNode\" busy=\"false\"></vos:node>",
                "sub%20dir\" xsi:type=\"vos:ContainerNode\" busy=\"false\"><vos:nodes></vos:nodes></vos:node>",
                "/alice/ln\" xsi:type=\"vos:LinkNode\"><vos:target>https://example.com/a?b=1&amp;c=2</vos:target></vos:node>",
                "</vos:nodes></vos:node>",
            ],
        );
        assert_eq!(min.matches("<vos:properties>").count(), 1);

        let props = write_node(&c, Detail::Properties, Some(&children), AUTH, CREATOR);
        assert_order(
            &props,
            &[
                "<vos:properties>",
                "</vos:properties><vos:nodes></vos:nodes></vos:node>",
            ],
        );
        assert!(!props.contains("accepts") && !props.contains("capabilities"));
        assert_eq!(props.matches("<vos:node ").count(), 1);

        // The streaming pieces make the same document.
        let mut streamed = write_node_head(&c, Detail::Max, AUTH, CREATOR);
        for ch in &children {
            streamed.push_str(&write_node_list_item(ch, Detail::Max, AUTH, CREATOR));
        }
        streamed.push_str(write_node_tail(&c));
        assert_eq!(streamed, max);

        // The root, with no children and no owner (so no creator).
        let root = write_node(&root_node(), Detail::Max, None, AUTH, CREATOR);
        assert!(
            root.contains("uri=\"vos://example.org!vospace/\""),
            "{root}"
        );
        assert!(root.contains("<vos:nodes></vos:nodes>"));
        assert!(!root.contains("core#creator"));
    }

    #[test]
    fn link_round_trip() {
        let l = link_node();
        for d in [Detail::Min, Detail::Max, Detail::Properties] {
            let doc = write_node(&l, d, None, AUTH, CREATOR);
            assert!(!doc.contains("busy="), "{doc}");
            assert!(!doc.contains("accepts"), "{doc}");
            assert_order(
                &doc,
                &[
                    "xsi:type=\"vos:LinkNode\"",
                    "<vos:properties>",
                    "core#title\">a link<",
                    "</vos:properties><vos:target>vos://example.org!vospace/alice/t.vot</vos:target></vos:node>",
                ],
            );
            let p = parse_node(doc.as_bytes()).unwrap();
            assert_eq!(p.kind, NodeKind::Link);
            assert_eq!(
                p.target.as_deref(),
                Some("vos://example.org!vospace/alice/t.vot")
            );
            assert_eq!(p.properties, l.all_properties(CREATOR));
        }
    }

    #[test]
    fn escaping_of_odd_characters() {
        let mut n = node("/a", NodeKind::Data);
        n.properties = vec![
            client_prop("urn:x\"<&>'\t\n", "a\u{1}b\u{FFFE}c\rd"),
            Property {
                uri: "urn:gone".into(),
                value: None,
                read_only: false,
            },
        ];
        let doc = write_node(&n, Detail::Max, None, AUTH, CREATOR);
        assert!(
            doc.contains("uri=\"urn:x&quot;&lt;&amp;&gt;'&#9;&#10;\">a\u{FFFD}b\u{FFFD}c&#13;d<"),
            "{doc}"
        );
        // A client property without a value is not served (all_properties drops it)...
        assert!(!doc.contains("urn:gone"), "{doc}");
        let p = parse_node(doc.as_bytes()).unwrap();
        let odd = p.properties.last().unwrap();
        assert_eq!(odd.uri, "urn:x\"<&>'");
        assert_eq!(odd.value.as_deref(), Some("a\u{FFFD}b\u{FFFD}c\rd"));
        // ... but one without a value is written as nil.
        let mut out = String::new();
        push_properties(&mut out, &n.properties[1..]);
        assert_eq!(
            out,
            "<vos:properties><vos:property uri=\"urn:gone\" xsi:nil=\"true\"/></vos:properties>"
        );
        let mut out = String::new();
        push_properties(&mut out, &[]);
        assert_eq!(out, "<vos:properties/>");
    }

    #[test]
    fn transfer_round_trip() {
        for t in [transfer_answer(), move_transfer()] {
            let doc = write_transfer(&t);
            assert_eq!(parse_transfer(doc.as_bytes()).unwrap(), t, "{doc}");
            assert_eq!(doc, format!("{XML_DECL}{}\n", write_transfer_element(&t)));
        }
        let doc = write_transfer(&transfer_answer());
        assert_order(
            &doc,
            &[
                "<vos:transfer xmlns:vos=\"http://www.ivoa.net/xml/VOSpace/v2.0\" version=\"2.1\">",
                "<vos:target>vos://example.org!vospace/alice/t.vot</vos:target>",
                "<vos:direction>pullFromVoSpace</vos:direction>",
                "<vos:view uri=\"ivo://ivoa.net/vospace/core#defaultview\"/>",
                "<vos:protocol uri=\"ivo://ivoa.net/vospace/core#httpsget\"><vos:endpoint>https://vo.example.org/vospace/data/abc?x=1&amp;y=2</vos:endpoint><vos:securityMethod uri=\"ivo://ivoa.net/sso#cookie\"/></vos:protocol>",
                "<vos:protocol uri=\"ivo://ivoa.net/vospace/core#httpget\"><vos:endpoint>",
                "<vos:protocol uri=\"ivo://ivoa.net/vospace/core#httpsput\"/>",
                "</vos:transfer>\n",
            ],
        );
        let mv = write_transfer(&move_transfer());
        assert_order(
            &mv,
            &[
                "<vos:direction>vos://example.org!vospace/alice/b</vos:direction>",
                "<vos:keepBytes>false</vos:keepBytes></vos:transfer>",
            ],
        );
    }

    #[test]
    fn service_lists() {
        let p = write_protocols(&[], &[std_uri::PROTO_HTTPSGET, std_uri::PROTO_HTTPSPUT]);
        assert_eq!(
            p,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<vos:protocols xmlns:vos=\"http://www.ivoa.net/xml/VOSpace/v2.0\"><vos:accepts/><vos:provides><vos:protocol uri=\"ivo://ivoa.net/vospace/core#httpsget\"/><vos:protocol uri=\"ivo://ivoa.net/vospace/core#httpsput\"/></vos:provides></vos:protocols>\n"
        );
        let v = write_views(&[std_uri::VIEW_DEFAULT], &[std_uri::VIEW_DEFAULT]);
        assert_order(
            &v,
            &[
                "<vos:views xmlns:vos=",
                "<vos:accepts><vos:view uri=\"ivo://ivoa.net/vospace/core#defaultview\"/></vos:accepts>",
                "<vos:provides><vos:view uri=\"ivo://ivoa.net/vospace/core#defaultview\"/></vos:provides></vos:views>",
            ],
        );
        let (acc, prov) = standard_properties();
        let pr = write_properties(&acc, &prov, &["urn:x&y"]);
        assert_order(
            &pr,
            &[
                "<vos:properties xmlns:vos=",
                "<vos:accepts><vos:property uri=\"ivo://ivoa.net/vospace/core#title\"/>",
                "</vos:accepts><vos:provides><vos:property uri=\"ivo://ivoa.net/vospace/core#length\"/>",
                "</vos:provides><vos:contains><vos:property uri=\"urn:x&amp;y\"/></vos:contains></vos:properties>",
            ],
        );
    }

    // ---- what clients send -------------------------------------------------------------------

    /// `vos` 3.x `Node.create` + `str(node)` for `vcp`/`vmkdir`/`vln` (ElementTree output,
    /// byte for byte; the `ns1` prefix is ElementTree's choice).
    const VOS_CREATE_DATA: &str = r#"<node xmlns:ns1="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" xsi:type="vos:DataNode" uri="vos://example.org!vospace/alice/t.vot"><ns1:properties><ns1:property readOnly="false" uri="ivo://ivoa.net/vospace/core#title">Résumé &lt;x&gt; &amp; y</ns1:property><ns1:property readOnly="false" uri="ivo://ivoa.net/vospace/core#description" xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" /></ns1:properties><ns1:accepts><view uri="ivo://ivoa.net/vospace/core#defaultview" /></ns1:accepts><ns1:provides><view uri="ivo://ivoa.net/vospace/core#defaultview" /><view uri="ivo://cadc.nrc.ca/vospace/view#rss" /><view uri="ivo://cadc.nrc.ca/vospace/view#data" /></ns1:provides></node>"#;
    const VOS_CREATE_CONTAINER: &str = r#"<node xmlns:ns1="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" xsi:type="vos:ContainerNode" uri="vos://example.org!vospace/alice/new dir/sub"><ns1:properties /><ns1:accepts><view uri="ivo://ivoa.net/vospace/core#defaultview" /></ns1:accepts><ns1:provides><view uri="ivo://ivoa.net/vospace/core#defaultview" /><view uri="ivo://cadc.nrc.ca/vospace/view#rss" /></ns1:provides><ns1:nodes /></node>"#;
    /// `Client.link`: an unqualified `target` under the default namespace.
    const VOS_CREATE_LINK: &str = r#"<node xmlns:ns1="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" xsi:type="vos:LinkNode" uri="vos://example.org!vospace/alice/ln"><ns1:properties /><target>vos://example.org!vospace/alice/t.vot</target></node>"#;
    /// `Client.update` (vchmod, vtag, vlock): `node.create(...)` with the changed
    /// properties, a deleted one as `xsi:nil`, a cleared one empty.
    const VOS_UPDATE: &str = r#"<node xmlns:ns1="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" xsi:type="vos:DataNode" uri="vos://example.org!vospace/alice/t.vot"><ns1:properties><ns1:property readOnly="false" uri="ivo://ivoa.net/vospace/core#ispublic">true</ns1:property><ns1:property readOnly="false" uri="ivo://ivoa.net/vospace/core#groupread" xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" /><ns1:property readOnly="false" uri="ivo://ivoa.net/vospace/core#groupwrite" /><ns1:property readOnly="false" uri="ivo://cadc.nrc.ca/vospace/core#islocked">true</ns1:property></ns1:properties><ns1:accepts><view uri="ivo://ivoa.net/vospace/core#defaultview" /></ns1:accepts><ns1:provides><view uri="ivo://ivoa.net/vospace/core#defaultview" /><view uri="ivo://cadc.nrc.ca/vospace/view#rss" /><view uri="ivo://cadc.nrc.ca/vospace/view#data" /></ns1:provides></node>"#;
    /// A server document the client parsed, changed (`change_prop`) and wrote back.
    const VOS_REWRITTEN: &str = r#"<ns0:node xmlns:ns0="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" uri="vos://example.org!vospace/alice/t.vot" xsi:type="vos:DataNode" busy="false" xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0"><ns0:properties><ns0:property uri="ivo://ivoa.net/vospace/core#length" readOnly="true">12</ns0:property><ns0:property uri="ivo://ivoa.net/vospace/core#ispublic">true</ns0:property><ns0:property readOnly="false" uri="ivo://ivoa.net/vospace/core#groupread" xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" /><ns0:property readOnly="false" uri="ivo://cadc.nrc.ca/vospace/core#islocked">true</ns0:property></ns0:properties><ns0:accepts><ns0:view uri="ivo://ivoa.net/vospace/core#defaultview" /></ns0:accepts><ns0:provides><ns0:view uri="ivo://ivoa.net/vospace/core#defaultview" /></ns0:provides><ns0:capabilities /></ns0:node>"#;

    fn rw(uri: &str, value: Option<&str>, read_only: bool) -> Property {
        Property {
            uri: uri.into(),
            value: value.map(str::to_string),
            read_only,
        }
    }

    #[test]
    fn vos_client_node_documents() {
        let p = parse_node(VOS_CREATE_DATA.as_bytes()).unwrap();
        assert_eq!(p.uri, "vos://example.org!vospace/alice/t.vot");
        assert_eq!(p.kind, NodeKind::Data);
        assert_eq!(
            p.properties,
            vec![
                rw(prop::TITLE, Some("Résumé <x> & y"), false),
                rw(prop::DESCRIPTION, None, false),
            ]
        );
        assert_eq!(p.target, None);

        let p = parse_node(VOS_CREATE_CONTAINER.as_bytes()).unwrap();
        assert_eq!(p.kind, NodeKind::Container);
        assert!(p.properties.is_empty());
        assert_eq!(path_of_uri(&p.uri, AUTH).unwrap(), "/alice/new dir/sub");

        let p = parse_node(VOS_CREATE_LINK.as_bytes()).unwrap();
        assert_eq!(p.kind, NodeKind::Link);
        assert_eq!(
            p.target.as_deref(),
            Some("vos://example.org!vospace/alice/t.vot")
        );

        let p = parse_node(VOS_UPDATE.as_bytes()).unwrap();
        assert_eq!(
            p.properties,
            vec![
                rw(prop::IS_PUBLIC, Some("true"), false),
                rw(prop::GROUP_READ, None, false),
                rw(prop::GROUP_WRITE, Some(""), false),
                rw(prop::IS_LOCKED, Some("true"), false),
            ]
        );

        let p = parse_node(VOS_REWRITTEN.as_bytes()).unwrap();
        assert_eq!(
            p.properties,
            vec![
                rw(prop::LENGTH, Some("12"), true),
                rw(prop::IS_PUBLIC, Some("true"), false),
                rw(prop::GROUP_READ, None, false),
                rw(prop::IS_LOCKED, Some("true"), false),
            ]
        );
    }

    #[test]
    fn node_documents_in_other_styles() {
        // Default namespace only, unprefixed type; a BOM and an XML declaration; CDATA,
        // references, comments, whitespace around values.
        let doc = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- hi -->\n<node xmlns=\"http://www.ivoa.net/xml/VOSpace/v2.0\" xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\" i:type=\"UnstructuredDataNode\" uri=\" vos://example.org~vospace/a \">\n  <properties>\n    <property uri=\"ivo://ivoa.net/vospace/core#title\">\n  <![CDATA[<b>]]>&#x263A;&amp;&#65;<!-- c -->  </property>\n    <property uri=\"urn:y\" readOnly=\"1\" i:nil=\"1\"/>\n  </properties>\n</node>\n";
        let p = parse_node(doc.as_bytes()).unwrap();
        assert_eq!(p.uri, "vos://example.org~vospace/a");
        assert_eq!(p.kind, NodeKind::Data);
        assert_eq!(
            p.properties,
            vec![
                rw(prop::TITLE, Some("<b>☺&A"), false),
                rw("urn:y", None, true)
            ]
        );
        // Any prefix; StructuredDataNode is a DataNode.
        let doc = r#"<v:node xmlns:v="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="v:StructuredDataNode" uri="vos://example.org!vospace/a"/>"#;
        let p = parse_node(doc.as_bytes()).unwrap();
        assert_eq!((p.kind, p.properties.len()), (NodeKind::Data, 0));
        // Unqualified children of a qualified root, and an undeclared `vos:` in xsi:type.
        let doc = r#"<ns0:node xmlns:ns0="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="vos:LinkNode" uri="vos://example.org!vospace/l"><properties><property uri="urn:a">1</property></properties><target> https://x/y </target></ns0:node>"#;
        let p = parse_node(doc.as_bytes()).unwrap();
        assert_eq!(p.kind, NodeKind::Link);
        assert_eq!(p.properties, vec![rw("urn:a", Some("1"), false)]);
        assert_eq!(p.target.as_deref(), Some("https://x/y"));
        // A data node's target is not one; a container's children are not its properties.
        let doc = r#"<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="vos:ContainerNode" uri="vos://example.org!vospace/c"><vos:target>x</vos:target><vos:nodes><vos:node uri="vos://example.org!vospace/c/d" xsi:type="vos:DataNode"><vos:properties><vos:property uri="urn:child">1</vos:property></vos:properties></vos:node></vos:nodes></vos:node>"#;
        let p = parse_node(doc.as_bytes()).unwrap();
        assert_eq!(
            (p.kind, p.target, p.properties.len()),
            (NodeKind::Container, None, 0)
        );
        // Other types.
        for (t, ns) in [
            ("vos:FooNode", VOS_NS),
            ("vos:Node", VOS_NS),
            ("x:DataNode", "urn:other"),
        ] {
            let doc = format!(
                r#"<vos:node xmlns:vos="{VOS_NS}" xmlns:x="{ns}" xmlns:xsi="{XSI_NS}" xsi:type="{t}" uri="vos://example.org!vospace/a"/>"#
            );
            assert!(
                matches!(parse_node(doc.as_bytes()), Err(Fault::TypeNotSupported(_))),
                "{t}"
            );
        }
    }

    /// `cadcutils.net.Transfer.transfer` (as `vcp`, `vmv` call it), byte for byte.
    const VOS_PUSH: &str = r#"<vos:transfer xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" version="2.1"><vos:target>vos://example.org!vospace/alice/t.vot</vos:target><vos:direction>pushToVoSpace</vos:direction><vos:protocol uri="ivo://ivoa.net/vospace/core#httpsput"><vos:securityMethod uri="ivo://ivoa.net/sso#tls-with-certificate" /><vos:securityMethod uri="ivo://ivoa.net/sso#cookie" /></vos:protocol><vos:protocol uri="ivo://ivoa.net/vospace/core#httpsput" /></vos:transfer>"#;
    const VOS_PULL: &str = r#"<vos:transfer xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" version="2.1"><vos:target>vos://example.org!vospace/alice/t.vot</vos:target><vos:direction>pullFromVoSpace</vos:direction><vos:protocol uri="ivo://ivoa.net/vospace/core#httpsget" /></vos:transfer>"#;
    const VOS_PULL_VIEW: &str = r#"<vos:transfer xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" version="2.1"><vos:target>vos://example.org!vospace/alice/t.vot</vos:target><vos:direction>pullFromVoSpace</vos:direction><vos:view uri="ivo://ivoa.net/vospace/core#defaultview" /><vos:protocol uri="ivo://ivoa.net/vospace/core#httpsget" /></vos:transfer>"#;
    const VOS_MOVE: &str = r#"<vos:transfer xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" version="2.1"><vos:target>vos://example.org!vospace/alice/t.vot</vos:target><vos:direction>vos://example.org!vospace/alice/dest</vos:direction><vos:keepBytes>false</vos:keepBytes></vos:transfer>"#;

    fn proto(uri: &str, sm: &[&str]) -> Protocol {
        Protocol {
            uri: uri.into(),
            endpoint: None,
            security_methods: sm.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn vos_client_transfers() {
        let target = "vos://example.org!vospace/alice/t.vot".to_string();
        assert_eq!(
            parse_transfer(VOS_PUSH.as_bytes()).unwrap(),
            Transfer {
                target: target.clone(),
                direction: Direction::PushToVoSpace,
                view: None,
                protocols: vec![
                    proto(
                        std_uri::PROTO_HTTPSPUT,
                        &[
                            "ivo://ivoa.net/sso#tls-with-certificate",
                            "ivo://ivoa.net/sso#cookie"
                        ]
                    ),
                    proto(std_uri::PROTO_HTTPSPUT, &[]),
                ],
                keep_bytes: None,
            }
        );
        let pull = parse_transfer(VOS_PULL.as_bytes()).unwrap();
        assert_eq!(pull.direction, Direction::PullFromVoSpace);
        assert_eq!(pull.protocols, vec![proto(std_uri::PROTO_HTTPSGET, &[])]);
        assert_eq!(pull.view, None);
        let view = parse_transfer(VOS_PULL_VIEW.as_bytes()).unwrap();
        assert_eq!(view.view.as_deref(), Some(std_uri::VIEW_DEFAULT));
        assert_eq!(
            parse_transfer(VOS_MOVE.as_bytes()).unwrap(),
            Transfer {
                target,
                direction: Direction::Node("vos://example.org!vospace/alice/dest".into()),
                view: None,
                protocols: vec![],
                keep_bytes: Some(false),
            }
        );
        // VOSpace 2.0 style (no version), default namespace, params, a copy.
        let doc = r#"<?xml version="1.0"?>
<transfer xmlns="http://www.ivoa.net/xml/VOSpace/v2.0">
  <target> vos://example.org~vospace/a </target>
  <direction> vos://example.org~vospace/b </direction>
  <view uri="ivo://ivoa.net/vospace/core#defaultview"><param uri="urn:p">1</param></view>
  <protocol uri="ivo://ivoa.net/vospace/core#httpget"><endpoint> http://x/y </endpoint><param uri="urn:q">2</param></protocol>
  <keepBytes> true </keepBytes>
  <param uri="urn:r">3</param>
</transfer>"#;
        let t = parse_transfer(doc.as_bytes()).unwrap();
        assert_eq!(t.target, "vos://example.org~vospace/a");
        assert_eq!(
            t.direction,
            Direction::Node("vos://example.org~vospace/b".into())
        );
        assert_eq!(t.protocols[0].endpoint.as_deref(), Some("http://x/y"));
        assert_eq!(t.keep_bytes, Some(true));
    }

    // ---- malformed input ---------------------------------------------------------------------

    fn is_invalid<T: std::fmt::Debug>(r: Result<T, Fault>) -> bool {
        matches!(r, Err(Fault::InvalidArgument(_)))
    }

    #[test]
    fn malformed_node_documents() {
        let huge = format!(
            r#"<vos:node xmlns:vos="{VOS_NS}" xmlns:xsi="{XSI_NS}" xsi:type="vos:DataNode" uri="vos://example.org!vospace/a" junk="{}"><vos:properties><vos:property uri="urn:{}">v</vos:property></vos:properties"#,
            "x".repeat(4 << 20),
            "y".repeat(1 << 20)
        );
        let deep = format!(
            r#"<vos:node xmlns:vos="{VOS_NS}" xmlns:xsi="{XSI_NS}" xsi:type="vos:DataNode" uri="vos://example.org!vospace/a">{}{}</vos:node>"#,
            "<a>".repeat(100_000),
            "</a>".repeat(100_000)
        );
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("whitespace", "  \n".into()),
            ("not xml", "hello".into()),
            ("truncated", VOS_CREATE_DATA[..VOS_CREATE_DATA.len() / 2].into()),
            ("unclosed root", VOS_CREATE_DATA.replace("</node>", "")),
            ("wrong root", VOS_PULL.into()),
            ("wrong namespace", VOS_CREATE_DATA.replace(VOS_NS, "http://www.ivoa.net/xml/VOSpace/v1.0")),
            ("no namespace", r#"<node xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="DataNode" uri="vos://example.org!vospace/a"/>"#.into()),
            ("undeclared prefix", r#"<vos:node uri="vos://example.org!vospace/a"/>"#.into()),
            ("no uri", VOS_CREATE_DATA.replace("uri=\"vos://example.org!vospace/alice/t.vot\"", "")),
            ("no type", VOS_CREATE_DATA.replace("xsi:type=\"vos:DataNode\"", "")),
            ("property without uri", VOS_UPDATE.replace("uri=\"ivo://ivoa.net/vospace/core#ispublic\"", "")),
            ("bad readOnly", VOS_UPDATE.replacen("readOnly=\"false\"", "readOnly=\"maybe\"", 1)),
            ("bad nil", VOS_UPDATE.replace("xsi:nil=\"true\"", "xsi:nil=\"yes\"")),
            ("mismatched end", VOS_CREATE_DATA.replace("</ns1:properties>", "</ns1:property>")),
            ("duplicate attribute", VOS_CREATE_DATA.replace(" uri=\"vos:", " uri=\"a\" uri=\"vos:")),
            ("two roots", format!("{VOS_CREATE_LINK}{VOS_CREATE_LINK}")),
            ("text after root", format!("{VOS_CREATE_LINK}junk")),
            ("unknown entity", VOS_CREATE_DATA.replace("&amp;", "&nbsp;")),
            ("entity from a DTD", format!("<!DOCTYPE node [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;\">]>{}", VOS_CREATE_DATA.replace("&amp;", "&b;"))),
            ("bad char ref", VOS_CREATE_DATA.replace("&amp;", "&#xD800;")),
            ("nul char ref", VOS_CREATE_DATA.replace("&amp;", "&#0;")),
            ("huge attribute, truncated", huge),
            ("deep nesting", deep),
            ("not utf-8", String::from_utf8_lossy(b"<a>\xff</a>").into_owned()),
        ];
        for (what, doc) in &cases {
            let r = parse_node(doc.as_bytes());
            assert!(is_invalid(r.clone()), "{what}: {r:?}");
        }
        // Latin-1 bytes.
        assert!(is_invalid(parse_node(b"<a>\xe9</a>")));
        assert!(is_invalid(parse_transfer(b"\xff\xfe<\x00")));
    }

    #[test]
    fn malformed_transfers() {
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("truncated", VOS_PUSH[..VOS_PUSH.len() - 20].into()),
            ("wrong root", VOS_CREATE_DATA.into()),
            ("wrong namespace", VOS_PUSH.replace(VOS_NS, "urn:x")),
            (
                "missing target",
                VOS_PULL.replace(
                    "<vos:target>vos://example.org!vospace/alice/t.vot</vos:target>",
                    "",
                ),
            ),
            (
                "empty target",
                VOS_PULL.replace("vos://example.org!vospace/alice/t.vot", "  "),
            ),
            (
                "two targets",
                VOS_PULL.replace(
                    "<vos:direction>",
                    "<vos:target>x</vos:target><vos:direction>",
                ),
            ),
            (
                "missing direction",
                VOS_PULL.replace("<vos:direction>pullFromVoSpace</vos:direction>", ""),
            ),
            (
                "protocol without uri",
                VOS_PULL.replace(" uri=\"ivo://ivoa.net/vospace/core#httpsget\"", ""),
            ),
            (
                "view without uri",
                VOS_PULL_VIEW.replace(" uri=\"ivo://ivoa.net/vospace/core#defaultview\"", ""),
            ),
            (
                "two views",
                VOS_PULL_VIEW.replace("<vos:protocol", "<vos:view uri=\"a\"/><vos:protocol"),
            ),
            ("bad keepBytes", VOS_MOVE.replace(">false<", ">nope<")),
            (
                "huge attribute",
                VOS_PULL.replace(
                    "version=\"2.1\"",
                    &format!("version=\"{}", "9".repeat(8 << 20)),
                ),
            ),
        ];
        for (what, doc) in &cases {
            let r = parse_transfer(doc.as_bytes());
            assert!(is_invalid(r.clone()), "{what}: {r:?}");
        }
    }

    /// Every prefix and many single-byte corruptions of real documents: errors, never panics.
    #[test]
    fn no_panics_on_damaged_input() {
        let docs = [
            VOS_CREATE_DATA.to_string(),
            VOS_UPDATE.to_string(),
            VOS_PUSH.to_string(),
            VOS_MOVE.to_string(),
            write_node(
                &container().0,
                Detail::Max,
                Some(&container().1),
                AUTH,
                CREATOR,
            ),
            write_transfer(&transfer_answer()),
        ];
        let mut seed = 0x2545_f491_u32;
        for doc in &docs {
            let b = doc.as_bytes();
            for i in 0..b.len() {
                let _ = parse_node(&b[..i]);
                let _ = parse_transfer(&b[..i]);
            }
            for _ in 0..3000 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let mut m = b.to_vec();
                let at = seed as usize % m.len();
                const BYTES: &[u8] = b"<>&\"'/=:!?[]x \0\xff#;";
                m[at] = BYTES[(seed >> 16) as usize % BYTES.len()];
                let _ = parse_node(&m);
                let _ = parse_transfer(&m);
            }
        }
    }

    // ---- schema validation ------------------------------------------------------------------

    /// The shared folder beside the repository (VOSTOK_SHARED, else ../shared from the crate),
    /// found at run time.
    fn shared_dir() -> PathBuf {
        if let Some(s) = std::env::var_os("VOSTOK_SHARED") {
            return PathBuf::from(s);
        }
        let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        crate_dir.join("../../shared")
    }

    fn xmllint(
        schemas: &std::path::Path,
        xsd: &std::path::Path,
        doc: &std::path::Path,
    ) -> (bool, String) {
        let out = Command::new("xmllint")
            .env("XML_CATALOG_FILES", schemas.join("catalog.xml"))
            .args(["--nonet", "--noout", "--schema"])
            .arg(xsd)
            .arg(doc)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run xmllint ({e}): install it with scripts/install-test-deps.sh (Debian package libxml2-utils)")
            });
        let text = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.contains("Skipping import of schema"))
            .collect::<Vec<_>>()
            .join("\n");
        (out.status.success(), text)
    }

    /// Every document written here validates against the VOSpace 2.1 schema (xmllint with
    /// the shared schemas; no network). `/protocols`, `/views` and `/properties` documents
    /// are checked against the schema's `Get*Response` types, which they follow (the schema's
    /// global `protocols`, `views` and `properties` elements are plain lists), through a
    /// small wrapper schema: a root element of that type, the same children.
    #[test]
    fn written_documents_validate_against_the_schema() {
        let schemas = shared_dir().join("schemas");
        let all = schemas.join("local-all-vo.xsd");
        assert!(
            all.exists(),
            "VOSpace schemas not found at {all:?}: set VOSTOK_SHARED to the shared folder (with schemas/) or put it beside the repository"
        );
        let dir = std::env::temp_dir().join(format!("vostok-vospace-xml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut failures = vec![];
        let mut check = |name: &str, xsd: &std::path::Path, doc: &str| {
            let path = dir.join(name);
            std::fs::write(&path, doc).unwrap();
            let (ok, text) = xmllint(&schemas, xsd, &path);
            if !ok {
                failures.push(format!("{name}:\n{text}\n{doc}"));
            }
        };
        for (name, doc) in written_documents() {
            check(&name, &all, &doc);
        }
        // The jobInfo form inside a UWS job document.
        let job = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<uws:job xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" xmlns:xlink="http://www.w3.org/1999/xlink" version="1.1"><uws:jobId>j1</uws:jobId><uws:ownerId xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/><uws:phase>COMPLETED</uws:phase><uws:quote xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/><uws:creationTime>2026-11-22T15:04:05.123Z</uws:creationTime><uws:startTime xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/><uws:endTime xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/><uws:executionDuration>0</uws:executionDuration><uws:destruction xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/><uws:parameters/><uws:results/><uws:jobInfo>{}</uws:jobInfo></uws:job>"#,
            write_transfer_element(&move_transfer())
        );
        check("uws-job.xml", &all, &job);

        // Service lists, through the wrapper schema.
        let wrapper = dir.join("vospace-responses.xsd");
        std::fs::write(
            &wrapper,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:vos="{VOS_NS}" targetNamespace="urn:vostok:test" elementFormDefault="qualified">
  <xs:import namespace="{VOS_NS}" schemaLocation="{}"/>
  <xs:element name="protocols" type="vos:GetProtocolsResponse"/>
  <xs:element name="views" type="vos:GetViewsResponse"/>
  <xs:element name="properties" type="vos:GetPropertiesResponse"/>
</xs:schema>
"#,
                schemas.join("VOSpace-v2.1.xsd").display()
            ),
        )
        .unwrap();
        let (acc, prov) = standard_properties();
        let lists = [
            (
                "protocols",
                write_protocols(&[], &[std_uri::PROTO_HTTPSGET, std_uri::PROTO_HTTPSPUT]),
            ),
            (
                "protocols",
                write_protocols(
                    &[std_uri::PROTO_HTTPGET],
                    &[std_uri::PROTO_HTTPGET, std_uri::PROTO_HTTPPUT],
                ),
            ),
            (
                "views",
                write_views(
                    &[std_uri::VIEW_DEFAULT],
                    &[std_uri::VIEW_DEFAULT, std_uri::VIEW_BINARY],
                ),
            ),
            ("views", write_views(&[], &[])),
            (
                "properties",
                write_properties(&acc, &prov, &[prop::TITLE, "urn:x&y"]),
            ),
        ];
        for (i, (root, doc)) in lists.iter().enumerate() {
            let open = format!("<vos:{root} xmlns:vos=\"{VOS_NS}\">");
            assert!(doc.contains(&open), "{doc}");
            let wrapped = doc
                .replace(
                    &open,
                    &format!("<t:{root} xmlns:t=\"urn:vostok:test\" xmlns:vos=\"{VOS_NS}\">"),
                )
                .replace(&format!("</vos:{root}>"), &format!("</t:{root}>"));
            check(&format!("list-{i}-{root}.xml"), &wrapper, &wrapped);
        }
        // The checker itself rejects a document out of schema order.
        let bad = write_node(&data_node(), Detail::Max, None, AUTH, CREATOR)
            .replace("<vos:capabilities/>", "")
            .replace("<vos:properties>", "<vos:capabilities/><vos:properties>");
        let path = dir.join("bad-order.xml");
        std::fs::write(&path, &bad).unwrap();
        assert!(
            !xmllint(&schemas, &all, &path).0,
            "xmllint accepted a misordered node"
        );

        let _ = std::fs::remove_dir_all(&dir);
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}
