//! Node metadata in a database (SQLite, or PostgreSQL shared by several servers: see
//! `db.rs`), bytes in object storage.
//!
//! # Layout
//!
//! * The database (SQLite: one file, WAL journal, `synchronous = FULL`): the node tree, users
//!   (with the SHA-256 of their token and their quota), group memberships, transfer jobs, and
//!   the processes using the records with their uploads in progress. Every statement is
//!   written once, for both databases; the storage, quota and atomicity logic is this file's.
//! * Object storage, below the [`storage::Storage`] prefix:
//!   * `vospace/objects/<random>`: the content of data nodes. An object is never overwritten:
//!     a new version of a node's content is a new object;
//!   * `vospace/tmp/`: where earlier versions staged uploads; whatever is left there is
//!     removed at start.
//!
//! # Crash safety
//!
//! A data write records its new object's key as an upload in progress of its process (in the
//! transaction that marks the node busy), streams straight into that object under
//! `vospace/objects/` (one put, or a
//! multipart upload above [`PART_SIZE`], in larger parts when a declared length needs more than
//! [`MAX_PARTS`]: the bytes are never copied afterwards, so no single copy limits a file's size,
//! such as S3's 5 GB for CopyObject), then points the node at it in
//! one transaction (which also ends the upload in progress) and only then deletes the previous
//! object. A crash at any point
//! leaves the node on its old content (and an unreferenced object) or on the new one (and the
//! unreferenced old object). [`VoStore::recover`] deletes every object under
//! `vospace/objects/` no node references and no live process is writing (and anything under
//! `vospace/tmp/`), and clears the `busy` flags of nodes no live process is writing. Deletes,
//! copies and moves follow the same rule: metadata first, objects after
//! the commit. A move changes metadata only; a copy makes new objects (recorded as uploads in
//! progress first), server-side up to
//! [`SINGLE_COPY_MAX`] and by a streamed multipart upload above it.
//!
//! # Across processes
//!
//! Write transactions follow one another in every process (see `db.rs`): the quota checks
//! and the busy flag hold across servers sharing a PostgreSQL database. What stays within one
//! process: the order of a write's own steps and its undo (a lock of the write's own), and the
//! memory budget of uploads (`set_upload_budget`, per server).
//!
//! # Decisions
//!
//! * The root `/` belongs to no one, is readable by everyone (anonymous included) and writable by
//!   no one: its children are the users' homes, created by [`VoStore::add_user`] only. Listing
//!   the root shows every home (as the CADC service does); a home's content is then subject to
//!   its own permissions.
//! * Homes (`/NAME`) cannot be deleted or moved by [`VoStore::delete`] / [`VoStore::move_node`]
//!   (`PermissionDenied`); [`VoStore::remove_user`] removes a user with their home.
//!   [`VoStore::create`], [`VoStore::move_node`] and [`VoStore::copy_node`] refuse to make
//!   top-level nodes.
//! * Permissions (see [`access`]): reading or writing a node depends on that node only (and on
//!   who owns its ancestors), not on read permission on its ancestors: a public file inside a
//!   private folder can be read by whoever knows its path. The owner of a node, and the owner
//!   of any container above it (the home owner), may do anything with it; `core#groupwrite`
//!   members may write (and so read) the node; `core#groupread` members and, when
//!   `core#ispublic` is `true`, everyone may read it. Creating or deleting a child needs write
//!   on the container. Properties are not inherited. Links are never followed for permissions.
//! * A path through a LinkNode (`/alice/link/x` where `/alice/link` is a LinkNode) is answered
//!   with `LinkFound` (detail: the link's path) by every call taking a path: the caller
//!   resolves links.
//! * `busy`: a data write marks an existing node busy for its duration; a second write, a
//!   delete or a move of a busy node (or of a tree holding one) fails with `NodeLocked`. CADC's
//!   `islocked` property (`true`) also makes writes, deletes and moves fail with `NodeLocked`;
//!   properties can still be changed (so that the lock can be lifted).
//! * Quotas: the owner's quota (users table) applies to data writes and copies; `write_data`
//!   also takes an extra limit (the smaller applies).

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::db::{vals, Conn, Db, Row};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::model::{name, normalise_path, parent, prop, Fault, Node, NodeKind, Property};

const COLUMNS: &str =
    "path, kind, owner, properties, target, length, md5, content_type, ctime, mtime, busy, object_key";

/// Where earlier versions staged uploads (emptied at start).
const TMP_DIR: &str = "vospace/tmp";
/// Node contents.
const OBJECTS_DIR: &str = "vospace/objects";
/// Multipart upload part size (S3's minimum is 5 MiB); at most [`UPLOAD_CONCURRENCY`] parts are
/// in flight, so an upload holds a few parts in memory, whatever its size.
const PART_SIZE: usize = 5 * 1024 * 1024;
const UPLOAD_CONCURRENCY: usize = 2;
/// What one upload of 5 MiB parts may buffer at most: the bytes before its multipart upload
/// starts, the part being filled and the parts in flight.
const UPLOAD_BUFFER_MAX: u64 = ((UPLOAD_CONCURRENCY + 1) * PART_SIZE) as u64;
/// The most parts one multipart upload may have (S3's limit).
const MAX_PARTS: u64 = 10_000;

/// The part size of a multipart upload of `len` bytes (None: not known in advance):
/// [`PART_SIZE`], or more (whole MiB) when the object would not fit in [`MAX_PARTS`] parts
/// of it. An upload of unknown length is limited to `MAX_PARTS * PART_SIZE` (about 48 GiB).
fn part_size(len: Option<u64>) -> usize {
    let min = PART_SIZE as u64;
    let need = len.map_or(min, |l| l.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20);
    usize::try_from(need.max(min)).unwrap_or(usize::MAX)
}

/// The largest object copied by one server-side copy (S3's CopyObject stops at 5 GB); a
/// larger one is streamed into a multipart upload.
const SINGLE_COPY_MAX: u64 = 5_000_000_000;

/// How often a process checks that it still holds its liveness lock (PostgreSQL).
const LIVENESS_CHECK: Duration = Duration::from_secs(10);

/// Limits on client properties.
const MAX_PROPERTY_URI: usize = 1024;
const MAX_PROPERTY_VALUE: usize = 32 * 1024;
const MAX_PROPERTIES: usize = 100;
const MAX_TARGET: usize = 4096;

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub quota_bytes: Option<u64>,
    /// Short names of the groups the user belongs to.
    pub groups: Vec<String>,
}

/// What a user may do with a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    None,
    Read,
    Write,
}

/// A transfer job (UWS-like) as the HTTP layer keeps it. `details` and `error` are free text
/// (e.g. the transfer document) that the store does not interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRecord {
    pub id: String,
    pub owner: String,
    /// UWS phase (`PENDING`, `EXECUTING`, `COMPLETED`, `ERROR`, `ABORTED`, …).
    pub phase: String,
    pub direction: String,
    pub target: String,
    pub details: Option<String>,
    pub error: Option<String>,
    /// ISO 8601 UTC with milliseconds.
    pub created: String,
}

/// The bytes of a data node, from [`VoStore::read_range`].
pub struct DataRead {
    pub node: Node,
    /// The byte range served (`0..0` for a node without content).
    pub range: Range<u64>,
    /// The node's full length.
    pub total: u64,
    pub stream: BoxStream<'static, Result<Bytes, Fault>>,
}

impl std::fmt::Debug for DataRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataRead")
            .field("node", &self.node)
            .field("range", &self.range)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// The group URI used in `core#groupread` / `core#groupwrite`.
#[allow(dead_code)] // for administration tools; not used by the HTTP layer yet
pub fn group_uri(authority: &str, group: &str) -> String {
    format!("ivo://{authority}/gms?{group}")
}

/// Whether `entry` (a short group name or a group URI `ivo://AUTHORITY/gms?NAME`) names a
/// group `user` belongs to. With `authority` None, a URI of any authority is accepted.
pub fn is_member(user: &User, entry: &str, authority: Option<&str>) -> bool {
    let short = match entry.strip_prefix("ivo://") {
        Some(rest) => {
            let Some((auth, group)) = rest.split_once("/gms?") else {
                return false;
            };
            if authority.is_some_and(|a| !a.eq_ignore_ascii_case(auth)) {
                return false;
            }
            group
        }
        None => entry,
    };
    !short.is_empty() && user.groups.iter().any(|g| g == short)
}

/// What `user` (None: anonymous) may do with `node`, whose ancestors (root first, without the
/// node) are `ancestors`. See the module documentation for the rules.
pub fn access(
    node: &Node,
    ancestors: &[Node],
    user: Option<&User>,
    authority: Option<&str>,
) -> Access {
    if node.path == "/" {
        return Access::Read;
    }
    if let Some(u) = user {
        let owns = |n: &Node| !n.owner.is_empty() && n.owner == u.name;
        if owns(node) || ancestors.iter().any(owns) {
            return Access::Write;
        }
        if node
            .groups(prop::GROUP_WRITE)
            .iter()
            .any(|g| is_member(u, g, authority))
        {
            return Access::Write;
        }
        if node
            .groups(prop::GROUP_READ)
            .iter()
            .any(|g| is_member(u, g, authority))
        {
            return Access::Read;
        }
    }
    if node.is_public() {
        return Access::Read;
    }
    Access::None
}

/// The metadata store and the object storage of the space.
pub struct VoStore {
    db: Db,
    /// This process's id in `vospace_processes` (the owner of its uploads in progress): the
    /// decimal of [`VoStore::process_key`].
    process: String,
    /// The key of this process's liveness lock (PostgreSQL).
    process_key: i64,
    storage: storage::Storage,
    authority: OnceLock<String>,
    upload_budget: OnceLock<UploadBudget>,
    /// Objects above this many bytes are copied by streaming, not by one server-side copy.
    single_copy_max: std::sync::atomic::AtomicU64,
}

/// The memory all uploads in progress may buffer together (`[limits] upload_buffer_mb`): each
/// upload reserves what it may buffer (its declared length, at most [`UPLOAD_BUFFER_MAX`])
/// before it reads a byte, waits at most `wait` for it, and holds it until it ends.
struct UploadBudget {
    /// Permits of 1 KiB.
    kib: Arc<tokio::sync::Semaphore>,
    total_kib: u32,
    wait: Duration,
}

/// A reservation of the upload budget, released when dropped.
struct UploadReservation(#[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

impl std::fmt::Debug for VoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoStore")
            .field("prefix", &self.storage.prefix)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn internal(e: impl std::fmt::Display) -> Fault {
    Fault::InternalFault(e.to_string())
}

/// The fault of a failed write of an object: StorageFull (507) when the disk is full, else
/// InternalFault.
fn write_fault(e: object_store::Error) -> Fault {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
        {
            return Fault::StorageFull(format!("the service's storage is full: {e}"));
        }
        source = s.source();
    }
    internal(e)
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

/// Keeps the store's liveness lock (PostgreSQL: see [`Db::hold_liveness_lock`]) held: checks it
/// every [`LIVENESS_CHECK`] on a thread of its own, whatever runtimes are busy, and takes it
/// again when its connection was lost, until the store is dropped. A process that lost it may
/// have been taken to be gone by another's recovery: its uploads in progress then fail at
/// their commit (see `claim_upload`).
fn keep_liveness_lock(store: std::sync::Weak<VoStore>) {
    let spawned = std::thread::Builder::new()
        .name("vostok-vospace-live".into())
        .spawn(move || loop {
            std::thread::sleep(LIVENESS_CHECK);
            let Some(s) = store.upgrade() else { return };
            if let Err(e) = s.db.hold_liveness_lock(s.process_key) {
                tracing::warn!("VOSpace: taking this process's liveness lock again: {e}");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("VOSpace: no thread to keep this process's liveness lock: {e}");
    }
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn random_hex(n: usize) -> Result<String, Fault> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Fault::InternalFault("no random numbers".into()))?;
    Ok(to_hex(&buf))
}

fn sha256_hex(s: &str) -> String {
    to_hex(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// Number of segments: 0 for the root, 1 for a home.
fn depth(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.matches('/').count()
    }
}

/// Bounds of the strict descendants of `path` (not the root): `[path/, path0)`.
fn subtree_bounds(path: &str) -> (String, String) {
    (format!("{path}/"), format!("{path}0"))
}

/// Ancestors of a path, root first, without the path itself.
fn ancestor_paths(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = parent(path);
    while let Some(x) = p {
        out.push(x.to_string());
        p = parent(x);
    }
    out.reverse();
    out
}

/// The nodes above `path` that exist, root first.
fn select_ancestors(c: &Conn<'_>, path: &str) -> Result<Vec<Node>, Fault> {
    let mut anc = Vec::new();
    for a in ancestor_paths(path) {
        if let Some((n, _)) = select_node(c, &a)? {
            anc.push(n);
        }
    }
    Ok(anc)
}

/// User and group names: a letter, then letters, digits, `_`, `-`, `.`; at most 64 bytes.
fn check_name(what: &str, n: &str) -> Result<(), Fault> {
    let ok = n.len() <= 64
        && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Fault::InvalidArgument(format!(
            "'{n}' is not a valid {what} name (a letter, then letters, digits, '_', '-', '.'; \
             at most 64 characters)"
        )))
    }
}

fn is_locked(node: &Node) -> bool {
    node.property(prop::IS_LOCKED)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn is_content_type(uri: &str) -> bool {
    uri == prop::CONTENT_TYPE || uri == prop::CONTENT_TYPE_ALT
}

fn check_content_type(t: &str) -> Result<(), Fault> {
    if t.len() > 255 || t.chars().any(|c| c.is_control()) {
        return Err(Fault::InvalidArgument(format!("bad content type '{t}'")));
    }
    Ok(())
}

/// Applies property changes to `props` (client properties) and `content_type`: read-only ones
/// are ignored, a None value deletes, `core#type` sets the content type.
fn apply_properties(
    props: &mut Vec<Property>,
    content_type: &mut Option<String>,
    changes: &[Property],
) -> Result<(), Fault> {
    for p in changes {
        if prop::READ_ONLY.contains(&p.uri.as_str()) {
            continue;
        }
        if p.uri.is_empty()
            || p.uri.len() > MAX_PROPERTY_URI
            || p.uri.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(Fault::InvalidArgument(format!(
                "'{}' is not a valid property URI",
                p.uri
            )));
        }
        if p.value
            .as_ref()
            .is_some_and(|v| v.len() > MAX_PROPERTY_VALUE)
        {
            return Err(Fault::InvalidArgument(format!(
                "the value of {} is longer than {MAX_PROPERTY_VALUE} bytes",
                p.uri
            )));
        }
        if is_content_type(&p.uri) {
            match &p.value {
                Some(v) if !v.trim().is_empty() => {
                    check_content_type(v.trim())?;
                    *content_type = Some(v.trim().to_string());
                }
                _ => *content_type = None,
            }
            continue;
        }
        props.retain(|q| q.uri != p.uri);
        if let Some(v) = &p.value {
            props.push(Property {
                uri: p.uri.clone(),
                value: Some(v.clone()),
                read_only: false,
            });
        }
    }
    if props.len() > MAX_PROPERTIES {
        return Err(Fault::InvalidArgument(format!(
            "a node has at most {MAX_PROPERTIES} properties"
        )));
    }
    Ok(())
}

fn props_to_json(props: &[Property]) -> String {
    let v: Vec<serde_json::Value> = props
        .iter()
        .filter_map(|p| {
            p.value
                .as_ref()
                .map(|v| serde_json::json!({ "uri": p.uri, "value": v }))
        })
        .collect();
    serde_json::Value::Array(v).to_string()
}

fn props_from_json(s: &str) -> Vec<Property> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(s) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|it| {
            Some(Property {
                uri: it.get("uri")?.as_str()?.to_string(),
                value: Some(it.get("value")?.as_str()?.to_string()),
                read_only: false,
            })
        })
        .collect()
}

/// A node row and its object key.
fn node_from_row(row: &Row) -> Result<(Node, Option<String>), Fault> {
    let kind = row.text(1)?;
    let props = row.text(3)?;
    Ok((
        Node {
            path: row.text(0)?,
            kind: NodeKind::parse(&kind).unwrap_or(NodeKind::Data),
            owner: row.text(2)?,
            properties: props_from_json(&props),
            target: row.opt_text(4)?,
            length: to_u64(row.opt_int(5)?),
            md5: row.opt_text(6)?,
            content_type: row.opt_text(7)?,
            ctime: row.text(8)?,
            mtime: row.text(9)?,
            busy: row.int(10)? != 0,
        },
        row.opt_text(11)?,
    ))
}

fn select_node(c: &Conn<'_>, path: &str) -> Result<Option<(Node, Option<String>)>, Fault> {
    c.row(
        &format!("SELECT {COLUMNS} FROM nodes WHERE path = ?1"),
        vals![path],
    )?
    .as_ref()
    .map(node_from_row)
    .transpose()
}

/// The node and its strict descendants, parents before children.
fn select_subtree(c: &Conn<'_>, path: &str) -> Result<Vec<(Node, Option<String>)>, Fault> {
    let (lo, hi) = subtree_bounds(path);
    c.rows(
        &format!(
            "SELECT {COLUMNS} FROM nodes WHERE path = ?1 OR (path >= ?2 AND path < ?3) \
             ORDER BY path"
        ),
        vals![path, lo, hi],
    )?
    .iter()
    .map(node_from_row)
    .collect()
}

fn insert_node(c: &Conn<'_>, n: &Node, object_key: Option<&str>) -> Result<(), Fault> {
    c.exec(
        "INSERT INTO nodes (path, parent, name, kind, owner, properties, target, length, md5, \
         content_type, object_key, ctime, mtime, busy) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        vals![
            n.path,
            parent(&n.path),
            name(&n.path),
            n.kind.as_str(),
            n.owner,
            props_to_json(&n.properties),
            n.target,
            n.length.map(to_i64),
            n.md5,
            n.content_type,
            object_key,
            n.ctime,
            n.mtime,
            i64::from(n.busy),
        ],
    )?;
    Ok(())
}

/// Why there is no node at `path`: `LinkFound` when the deepest existing ancestor is a
/// LinkNode, else `missing` (ContainerNotFound or NodeNotFound).
fn why_missing(c: &Conn<'_>, path: &str, missing: Fault) -> Result<Fault, Fault> {
    for a in ancestor_paths(path).iter().rev() {
        if let Some((n, _)) = select_node(c, a)? {
            if n.kind == NodeKind::Link {
                return Ok(Fault::LinkFound(n.path));
            }
            return Ok(missing);
        }
    }
    Ok(missing)
}

/// Checks that a node can be created at `path`: its parent exists and is a container.
fn check_parent(c: &Conn<'_>, path: &str) -> Result<(), Fault> {
    let Some(p) = parent(path) else {
        return Err(Fault::DuplicateNode("the root exists".into()));
    };
    match select_node(c, p)? {
        Some((n, _)) => match n.kind {
            NodeKind::Container => Ok(()),
            NodeKind::Link => Err(Fault::LinkFound(n.path)),
            NodeKind::Data => Err(Fault::ContainerNotFound(format!(
                "{p} is a DataNode, not a ContainerNode"
            ))),
        },
        None => Err(why_missing(
            c,
            p,
            Fault::ContainerNotFound(format!("no container {p}")),
        )?),
    }
}

/// The node at `path`, or NodeNotFound / LinkFound.
fn require_node(c: &Conn<'_>, path: &str) -> Result<(Node, Option<String>), Fault> {
    match select_node(c, path)? {
        Some(n) => Ok(n),
        None => Err(why_missing(
            c,
            path,
            Fault::NodeNotFound(format!("no node {path}")),
        )?),
    }
}

fn usage_of(c: &Conn<'_>, owner: &str) -> Result<u64, Fault> {
    let s = c
        .row(
            "SELECT CAST(COALESCE(SUM(length), 0) AS BIGINT) FROM nodes WHERE owner = ?1",
            vals![owner],
        )?
        .map(|r| r.opt_int(0))
        .transpose()?
        .flatten();
    Ok(to_u64(s).unwrap_or(0))
}

fn user_quota(c: &Conn<'_>, owner: &str) -> Result<Option<u64>, Fault> {
    let q = c
        .row(
            "SELECT quota_bytes FROM users WHERE name = ?1",
            vals![owner],
        )?
        .map(|r| r.opt_int(0))
        .transpose()?
        .flatten();
    Ok(to_u64(q))
}

fn min_quota(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn load_user(c: &Conn<'_>, name: &str) -> Result<Option<User>, Fault> {
    let Some(row) = c.row("SELECT quota_bytes FROM users WHERE name = ?1", vals![name])? else {
        return Ok(None);
    };
    let groups = c
        .rows(
            "SELECT grp FROM group_members WHERE \"user\" = ?1 ORDER BY grp",
            vals![name],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(User {
        name: name.to_string(),
        quota_bytes: to_u64(row.opt_int(0)?),
        groups,
    }))
}

/// Whether a user of that name exists.
fn user_exists(tx: &Conn<'_>, name: &str) -> Result<bool, Fault> {
    Ok(tx
        .row("SELECT 1 FROM users WHERE name = ?1", vals![name])?
        .is_some())
}

/// Inserts a user (with the SHA-256 of their token) and their home container.
fn insert_user(
    tx: &Conn<'_>,
    name: &str,
    token_sha256: &str,
    quota_bytes: Option<u64>,
) -> Result<(), Fault> {
    let home = format!("/{name}");
    if select_node(tx, &home)?.is_some() {
        return Err(Fault::DuplicateNode(format!("{home} exists")));
    }
    let t = now();
    tx.exec(
        "INSERT INTO users (name, token_sha256, quota_bytes, created) VALUES (?1, ?2, ?3, ?4)",
        vals![name, token_sha256, quota_bytes.map(to_i64), t],
    )?;
    insert_node(
        tx,
        &Node {
            path: home,
            kind: NodeKind::Container,
            owner: name.to_string(),
            properties: Vec::new(),
            target: None,
            length: None,
            md5: None,
            content_type: None,
            ctime: t.clone(),
            mtime: t,
            busy: false,
        },
        None,
    )?;
    Ok(())
}

/// Ends the upload in progress `key` of `process` within the transaction that makes a node
/// reference its object. Refused when the upload is no longer recorded: the process was
/// taken to be gone (its liveness lock was lost) and the object may have been deleted.
fn claim_upload(tx: &Conn<'_>, key: &str, process: &str) -> Result<(), Fault> {
    let n = tx.exec(
        "DELETE FROM vospace_uploads WHERE object_key = ?1 AND process = ?2",
        vals![key, process],
    )?;
    if n == 0 {
        return Err(Fault::InternalFault(format!(
            "the upload to {key} was taken for an interrupted one (this server lost its \
             connection to the database for a while); retry"
        )));
    }
    Ok(())
}

fn transfer_from_row(r: &Row) -> Result<TransferRecord, Fault> {
    Ok(TransferRecord {
        id: r.text(0)?,
        owner: r.text(1)?,
        phase: r.text(2)?,
        direction: r.text(3)?,
        target: r.text(4)?,
        details: r.opt_text(5)?,
        error: r.opt_text(6)?,
        created: r.text(7)?,
    })
}

const TRANSFER_COLUMNS: &str = "id, owner, phase, direction, target, details, error, created";

/// What a data write found before streaming.
#[derive(Debug)]
struct WritePlan {
    path: String,
    /// The node existed (and is now marked busy).
    existed: bool,
    owner: String,
    /// How many bytes the new content may have (quota), if limited.
    max_len: Option<u64>,
    /// The caller's extra limit on the owner's usage.
    quota: Option<u64>,
}

/// Progress of a data write, shared by its steps and its undo. A step holds this lock for the
/// length of its transaction, and so does the undo, which orders them: an undo that comes
/// first cancels the commit; one that comes after the commit leaves everything in place. (A
/// lock of this process: a write's steps and its undo all run in the process that writes.)
type WriteState = Arc<Mutex<u8>>;
/// The write marked the node busy.
const BUSY_SET: u8 = 1;
/// The write committed: the new object is referenced.
const COMMITTED: u8 = 2;
/// The write was undone: no step may change anything any more.
const CANCELLED: u8 = 4;

fn lock_state(state: &WriteState) -> std::sync::MutexGuard<'_, u8> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_not_cancelled(s: u8) -> Result<(), Fault> {
    if s & CANCELLED != 0 {
        return Err(Fault::InternalFault("the write was cancelled".into()));
    }
    Ok(())
}

/// The undo of a data write that did not commit: clears `busy` (when the write set it),
/// forgets the upload in progress, deletes the objects written. Run explicitly on errors, or
/// from `Drop` (a spawned task) when the write's future is dropped (e.g. the client went
/// away), whatever step it was at.
struct WriteGuard {
    db: Db,
    store: Arc<dyn ObjectStore>,
    path: String,
    /// The key of the new object (registered in `vospace_uploads` by the first step).
    key: String,
    state: WriteState,
    objects: Vec<ObjPath>,
    armed: bool,
}

impl WriteGuard {
    fn take(&mut self) -> Vec<ObjPath> {
        self.armed = false;
        std::mem::take(&mut self.objects)
    }

    async fn undo(mut self) {
        let objects = self.take();
        undo_write(
            self.db.clone(),
            self.store.clone(),
            self.path.clone(),
            self.key.clone(),
            self.state.clone(),
            objects,
        )
        .await;
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let objects = self.take();
        let (db, store) = (self.db.clone(), self.store.clone());
        let (path, key, state) = (self.path.clone(), self.key.clone(), self.state.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(undo_write(db, store, path, key, state, objects));
            }
            Err(_) => tracing::warn!(
                "VOSpace: an interrupted write could not be undone (no runtime); the next \
                 start cleans up"
            ),
        }
    }
}

async fn undo_write(
    db: Db,
    store: Arc<dyn ObjectStore>,
    path: String,
    key: String,
    state: WriteState,
    objects: Vec<ObjPath>,
) {
    let st = state.clone();
    let r = db
        .run(move |c| {
            let mut s = lock_state(&st);
            let before = *s;
            *s |= CANCELLED;
            if before & COMMITTED == 0 {
                c.write(|tx| {
                    if before & BUSY_SET != 0 {
                        tx.exec("UPDATE nodes SET busy = 0 WHERE path = ?1", vals![path])?;
                    }
                    tx.exec(
                        "DELETE FROM vospace_uploads WHERE object_key = ?1",
                        vals![key],
                    )?;
                    Ok(())
                })?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = r {
        tracing::warn!("VOSpace: undoing a write: {e}");
    }
    // Objects are deleted only when the commit cannot happen any more, and did not.
    let s = *lock_state(&state);
    if s & CANCELLED == 0 || s & COMMITTED != 0 {
        return;
    }
    for o in objects {
        match store.delete(&o).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("VOSpace: deleting {o}: {e} (the next start removes it)"),
        }
    }
}

fn check_md5_syntax(m: &str) -> Result<String, Fault> {
    let m = m.trim().to_ascii_lowercase();
    if m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(m)
    } else {
        Err(Fault::InvalidArgument(format!(
            "'{m}' is not an MD5 checksum (32 hexadecimal digits)"
        )))
    }
}

// ---------------------------------------------------------------------------------------------

impl VoStore {
    /// Opens (creating when missing) the database at `db_path` and the object area of
    /// `storage`; creates the root; removes what a crash left behind (uploads in progress,
    /// unreferenced objects, busy flags).
    pub async fn open(db_path: &FsPath, storage: storage::Storage) -> Result<Arc<VoStore>, Fault> {
        let db_path = db_path.to_path_buf();
        let db = tokio::task::spawn_blocking(move || Db::open_sqlite(&db_path))
            .await
            .map_err(internal)??;
        Self::with_db(db, storage).await
    }

    /// As [`VoStore::open`], with the records in the PostgreSQL database at `url` (at most
    /// `connections` connections), which several servers may share: their uploads in progress
    /// are told apart by the processes' liveness locks (see [`VoStore::recover`]).
    pub async fn open_postgres(
        url: &str,
        connections: usize,
        storage: storage::Storage,
    ) -> Result<Arc<VoStore>, Fault> {
        let target = uws::pgtls::Target::parse(url, None).map_err(Fault::InternalFault)?;
        Self::open_postgres_target(&target, connections, storage).await
    }

    /// [`VoStore::open_postgres`] on a parsed connection string (TLS as its `sslmode` says:
    /// [`uws::pgtls`]).
    pub async fn open_postgres_target(
        target: &uws::pgtls::Target,
        connections: usize,
        storage: storage::Storage,
    ) -> Result<Arc<VoStore>, Fault> {
        let db = Db::open_postgres(target, connections).await?;
        Self::with_db(db, storage).await
    }

    async fn with_db(db: Db, storage: storage::Storage) -> Result<Arc<VoStore>, Fault> {
        let process_key = i64::from_str_radix(&random_hex(7)?, 16).map_err(internal)?;
        let process = process_key.to_string();
        let p = process.clone();
        let holder = db.clone();
        tokio::task::spawn_blocking(move || holder.hold_liveness_lock(process_key))
            .await
            .map_err(internal)??;
        db.run(move |c| {
            let t = now();
            c.exec(
                "INSERT INTO nodes (path, parent, name, kind, owner, properties, ctime, mtime) \
                 VALUES ('/', NULL, '', 'container', '', '[]', ?1, ?1) \
                 ON CONFLICT DO NOTHING",
                vals![t],
            )?;
            c.exec(
                "INSERT INTO vospace_processes (id, seen) VALUES (?1, ?2)",
                vals![p, now_ms()],
            )?;
            Ok(())
        })
        .await?;
        let store = Arc::new(VoStore {
            db,
            process,
            process_key,
            storage,
            authority: OnceLock::new(),
            upload_budget: OnceLock::new(),
            single_copy_max: std::sync::atomic::AtomicU64::new(SINGLE_COPY_MAX),
        });
        if store.db.shared() {
            keep_liveness_lock(Arc::downgrade(&store));
        }
        Ok(store)
    }

    /// Whether other processes may use the same records at the same time (PostgreSQL).
    pub fn shares_its_database(&self) -> bool {
        self.db.shared()
    }

    /// Bounds the memory all uploads in progress may buffer together to `mb` MiB; an upload
    /// that finds no room within `wait` fails with [`Fault::Busy`] (HTTP 503). Set once; not
    /// set (the command-line tools), uploads are not bounded together.
    pub fn set_upload_budget(&self, mb: u64, wait: Duration) {
        let total_kib = u32::try_from(mb.saturating_mul(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS as u32);
        let _ = self.upload_budget.set(UploadBudget {
            kib: Arc::new(tokio::sync::Semaphore::new(total_kib as usize)),
            total_kib,
            wait,
        });
    }

    /// Reserves what an upload of `declared_length` bytes (None: unknown) may buffer.
    async fn reserve_upload(
        &self,
        declared_length: Option<u64>,
    ) -> Result<UploadReservation, Fault> {
        let Some(budget) = self.upload_budget.get() else {
            return Ok(UploadReservation(None));
        };
        let bytes = declared_length.map_or(UPLOAD_BUFFER_MAX, |d| {
            let part = part_size(Some(d)) as u64;
            d.min((UPLOAD_CONCURRENCY as u64 + 1).saturating_mul(part))
        });
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, budget.total_kib);
        match tokio::time::timeout(budget.wait, budget.kib.clone().acquire_many_owned(kib)).await {
            Ok(Ok(permit)) => Ok(UploadReservation(Some(permit))),
            _ => Err(Fault::Busy(format!(
                "the uploads in progress fill the memory uploads may buffer together \
                 ([limits] upload_buffer_mb = {} MiB); retry later",
                budget.total_kib / 1024
            ))),
        }
    }

    /// Sets the authority of group URIs (`ivo://AUTHORITY/gms?NAME`): once set, group URIs of
    /// other authorities grant nothing. Before, any authority is accepted. Set once.
    pub fn set_authority(&self, authority: &str) {
        let _ = self.authority.set(authority.to_string());
    }

    /// Runs `f` with a connection on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Conn<'_>) -> Result<T, Fault> + Send + 'static,
    ) -> Result<T, Fault> {
        self.db.run(f).await
    }

    /// Runs `f` in a write transaction on a blocking thread (see [`Conn::write`]).
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Conn<'_>) -> Result<T, Fault> + Send + 'static,
    ) -> Result<T, Fault> {
        self.db.run(move |c| c.write(f)).await
    }

    fn obj(&self, key: &str) -> ObjPath {
        self.storage.path(key)
    }

    fn new_object_key() -> Result<String, Fault> {
        Ok(format!("{OBJECTS_DIR}/{}", random_hex(16)?))
    }

    /// Crash recovery: clears the busy flags and deletes the objects of the uploads (and
    /// copies) in progress of processes that are gone, and deletes every object no node
    /// references and no live process is writing (and anything under `vospace/tmp/`).
    ///
    /// On SQLite only the process holding the database's writer lock (`vostok serve`) may run
    /// it: every other process is then taken to be gone. On PostgreSQL any server may, at any
    /// time: a process is gone when its liveness lock is not held (a session advisory lock,
    /// released by the server as soon as the process's connection ends, SIGKILL included).
    pub async fn recover(&self) -> Result<(), Fault> {
        self.sweep(true).await
    }

    /// The part of [`VoStore::recover`] that needs no listing of the objects: the busy flags
    /// and the uploads in progress of processes that are gone. Cheap; servers sharing a
    /// PostgreSQL database run it every few minutes.
    pub async fn sweep_gone_processes(&self) -> Result<(), Fault> {
        self.sweep(false).await
    }

    async fn sweep(&self, full: bool) -> Result<(), Fault> {
        let store = &self.storage.store;
        let objects = self.obj(OBJECTS_DIR);
        // Listed before the database is read: an object listed here was recorded as an
        // upload in progress before its first byte was written, so the database read next
        // knows it (as in progress, or referenced by its node, or as garbage).
        let listed: Vec<ObjPath> = if full {
            store
                .list(Some(&objects))
                .map_ok(|m| m.location)
                .try_collect()
                .await
                .map_err(internal)?
        } else {
            Vec::new()
        };
        let staging = if full {
            self.local_staging()
        } else {
            Vec::new()
        };
        let process = self.process.clone();
        let (cleared, gone, live, referenced) = self
            .write(move |tx| {
                tx.exec(
                    "INSERT INTO vospace_processes (id, seen) VALUES (?1, ?2) \
                     ON CONFLICT (id) DO UPDATE SET seen = EXCLUDED.seen",
                    vals![process, now_ms()],
                )?;
                // The processes gone: on SQLite every other (the writer lock keeps them out),
                // on PostgreSQL those whose liveness lock is not held.
                let alive = tx.live_processes()?;
                for r in tx.rows("SELECT id FROM vospace_processes", &[])? {
                    let id = r.text(0)?;
                    let lives = id == process
                        || alive
                            .as_ref()
                            .is_some_and(|a| id.parse::<i64>().is_ok_and(|k| a.contains(&k)));
                    if !lives {
                        tx.exec("DELETE FROM vospace_processes WHERE id = ?1", vals![id])?;
                    }
                }
                const LIVE: &str = "SELECT id FROM vospace_processes";
                let keys = |rows: Vec<Row>| -> Result<HashSet<String>, Fault> {
                    rows.iter().map(|r| r.text(0)).collect()
                };
                let gone = keys(tx.rows(
                    &format!(
                        "SELECT object_key FROM vospace_uploads WHERE process NOT IN ({LIVE}) \
                         AND object_key NOT IN \
                         (SELECT object_key FROM nodes WHERE object_key IS NOT NULL)"
                    ),
                    &[],
                )?)?;
                let cleared = tx.exec(
                    &format!(
                        "UPDATE nodes SET busy = 0 WHERE busy != 0 AND path NOT IN \
                         (SELECT path FROM vospace_uploads WHERE path IS NOT NULL \
                          AND process IN ({LIVE}))"
                    ),
                    &[],
                )?;
                tx.exec(
                    &format!("DELETE FROM vospace_uploads WHERE process NOT IN ({LIVE})"),
                    &[],
                )?;
                let live = keys(tx.rows("SELECT object_key FROM vospace_uploads", &[])?)?;
                let referenced = if full {
                    keys(tx.rows(
                        "SELECT object_key FROM nodes WHERE object_key IS NOT NULL",
                        &[],
                    )?)?
                } else {
                    HashSet::new()
                };
                Ok((cleared, gone, live, referenced))
            })
            .await?;
        if cleared > 0 {
            tracing::info!("VOSpace recovery: cleared the busy flag of {cleared} node(s)");
        }
        let keep = |p: &ObjPath| {
            p.as_ref()
                .strip_prefix(self.storage.prefix.as_ref())
                .map(|k| k.trim_start_matches('/'))
                .is_some_and(|k| live.contains(k) || referenced.contains(k))
        };
        let mut doomed: Vec<ObjPath> = gone.iter().map(|k| self.obj(k)).collect();
        let n_gone = doomed.len();
        let mut n_tmp = 0;
        if full {
            let tmp: Vec<ObjPath> = store
                .list(Some(&self.obj(TMP_DIR)))
                .map_ok(|m| m.location)
                .try_collect()
                .await
                .map_err(internal)?;
            n_tmp = tmp.len();
            doomed.extend(tmp);
        }
        let mut orphans: Vec<ObjPath> = listed
            .into_iter()
            .filter(|o| !keep(o) && !gone.iter().any(|k| self.obj(k) == *o))
            .collect();
        if referenced.is_empty() && !orphans.is_empty() {
            // A database that knows no stored file beside a folder that holds some is not
            // this folder's (a new PostgreSQL database after SQLite, a wrong URL): its files
            // are kept, never taken for garbage.
            tracing::warn!(
                "VOSpace recovery: the database refers to no stored file, but {} object(s) are                  under {objects}: kept (is this the database of this data folder? see                  docs/operations.md on moving to PostgreSQL)",
                orphans.len()
            );
            orphans.clear();
        }
        for o in &orphans {
            tracing::info!("VOSpace recovery: removing unreferenced object {o}");
        }
        let n_orphans = orphans.len();
        doomed.extend(orphans);
        for o in doomed {
            match store.delete(&o).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!("VOSpace recovery: deleting {o}: {e}"),
            }
        }
        // A local store's multipart uploads in progress are staging files (`NAME#N`) that
        // listing does not show: remove those of no live upload from the disk.
        let mut staged = 0;
        for (file, key) in staging {
            if key.as_ref().is_some_and(|k| live.contains(k)) {
                continue;
            }
            match std::fs::remove_file(&file) {
                Ok(()) => staged += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!("VOSpace recovery: deleting {}: {e}", file.display())
                }
            }
        }
        if n_gone + n_tmp + n_orphans + staged > 0 {
            tracing::info!(
                "VOSpace recovery: removed {n_gone} upload(s) of processes that are gone, \
                 {n_tmp} staged upload(s), {n_orphans} unreferenced object(s) and {staged} \
                 staging file(s)"
            );
        }
        Ok(())
    }

    /// Local storage only: the staging files of multipart uploads and copies (`KEY#N`), each
    /// with the key of its object under `vospace/objects/` (None under `vospace/tmp/`).
    fn local_staging(&self) -> Vec<(std::path::PathBuf, Option<String>)> {
        if !self.storage.url.as_str().starts_with("file:") {
            return Vec::new();
        }
        let mut out = Vec::new();
        for dir in [TMP_DIR, OBJECTS_DIR] {
            let fs_dir = std::path::PathBuf::from(format!("/{}", self.obj(dir)));
            let Ok(entries) = std::fs::read_dir(&fs_dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some((stem, _)) = name.split_once('#') else {
                    continue;
                };
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    let key = (dir == OBJECTS_DIR).then(|| format!("{OBJECTS_DIR}/{stem}"));
                    out.push((e.path(), key));
                }
            }
        }
        out
    }

    /// Records `keys` as uploads in progress of this process (of the node `path`, when one is
    /// being written), before their first byte is written: recovery leaves them alone while
    /// the process lives.
    async fn record_uploads(&self, keys: Vec<String>, path: Option<String>) -> Result<(), Fault> {
        if keys.is_empty() {
            return Ok(());
        }
        let process = self.process.clone();
        self.write(move |tx| {
            for k in &keys {
                tx.exec(
                    "INSERT INTO vospace_uploads (object_key, process, path) VALUES (?1, ?2, ?3)",
                    vals![k, process, path],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Deletes the objects of uploads that will not be committed, then forgets them.
    async fn forget_uploads(&self, keys: Vec<String>) {
        self.delete_objects(keys.clone()).await;
        let r = self
            .write(move |tx| {
                for k in &keys {
                    tx.exec(
                        "DELETE FROM vospace_uploads WHERE object_key = ?1",
                        vals![k],
                    )?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!("VOSpace: forgetting uploads: {e} (the next recovery does)");
        }
    }

    async fn delete_objects(&self, keys: Vec<String>) {
        for k in keys {
            let p = self.obj(&k);
            match self.storage.store.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!("VOSpace: deleting {p}: {e} (the next start removes it)"),
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Users and groups

    /// Creates a user, with quota, and their home container `/NAME`; returns their token (64
    /// hexadecimal digits), of which only the SHA-256 is stored.
    pub async fn add_user(&self, name: &str, quota_bytes: Option<u64>) -> Result<String, Fault> {
        check_name("user", name)?;
        let token = random_hex(32)?;
        let hash = sha256_hex(&token);
        let name = name.to_string();
        self.write(move |tx| {
            if user_exists(tx, &name)? {
                return Err(Fault::InvalidArgument(format!("user exists: {name}")));
            }
            insert_user(tx, &name, &hash, quota_bytes)?;
            tracing::info!("VOSpace: user {name} added");
            Ok(())
        })
        .await?;
        Ok(token)
    }

    /// The local user an OpenID Connect login (`issuer`, `subject`) was linked to at its first
    /// login, if any.
    pub async fn oidc_user(&self, issuer: &str, subject: &str) -> Result<Option<String>, Fault> {
        let (issuer, subject) = (issuer.to_string(), subject.to_string());
        self.with(move |c| {
            c.row(
                "SELECT username FROM oidc_logins WHERE issuer = ?1 AND subject = ?2",
                vals![issuer, subject],
            )?
            .map(|r| r.text(0))
            .transpose()
        })
        .await
    }

    /// The first login of (`issuer`, `subject`): creates the user `name` with its home and
    /// links the login to it, in one transaction. A name that is already a user's (made by
    /// `vostok user add` or by another login) is refused: a login never takes an account
    /// over. A concurrent first login of the same subject is not an error (the link it made
    /// stands).
    pub async fn add_oidc_user(
        &self,
        issuer: &str,
        subject: &str,
        name: &str,
        quota_bytes: Option<u64>,
    ) -> Result<String, Fault> {
        check_name("user", name)?;
        // The user's own vostok token is told to no one (`vostok user token` issues one).
        let hash = sha256_hex(&random_hex(32)?);
        let (issuer, subject, name) = (issuer.to_string(), subject.to_string(), name.to_string());
        self.write(move |tx| {
            let linked = tx
                .row(
                    "SELECT username FROM oidc_logins WHERE issuer = ?1 AND subject = ?2",
                    vals![issuer, subject],
                )?
                .map(|r| r.text(0))
                .transpose()?;
            if let Some(existing) = linked {
                return Ok(existing);
            }
            if user_exists(tx, &name)? {
                return Err(Fault::NotAuthenticated(format!(
                    "the token names the user {name}, who is already another account of this \
                     service; ask its operator to link your login"
                )));
            }
            insert_user(tx, &name, &hash, quota_bytes)?;
            tx.exec(
                "INSERT INTO oidc_logins (issuer, subject, username, created) \
                 VALUES (?1, ?2, ?3, ?4)",
                vals![issuer, subject, name, now()],
            )?;
            tracing::info!(
                "VOSpace: user {name} added at the first login of {subject} from {issuer}"
            );
            Ok(name)
        })
        .await
    }

    /// Gives a user a new token (the old one stops working); returns it.
    pub async fn new_token(&self, name: &str) -> Result<String, Fault> {
        let token = random_hex(32)?;
        let hash = sha256_hex(&token);
        let name = name.to_string();
        let n = self
            .with(move |c| {
                c.exec(
                    "UPDATE users SET token_sha256 = ?1 WHERE name = ?2",
                    vals![hash, name],
                )
            })
            .await?;
        if n == 0 {
            return Err(Fault::InvalidArgument("no such user".into()));
        }
        Ok(token)
    }

    /// Sets (None: removes) a user's quota.
    #[allow(dead_code)] // for administration tools; not used by the HTTP layer yet
    pub async fn set_quota(&self, name: &str, quota_bytes: Option<u64>) -> Result<(), Fault> {
        let name = name.to_string();
        let n = self
            .with(move |c| {
                c.exec(
                    "UPDATE users SET quota_bytes = ?1 WHERE name = ?2",
                    vals![quota_bytes.map(to_i64), name],
                )
            })
            .await?;
        if n == 0 {
            return Err(Fault::InvalidArgument("no such user".into()));
        }
        Ok(())
    }

    /// The user a token belongs to (None for an unknown token, or on a database error, which
    /// is logged).
    pub async fn user_for_token(&self, token: &str) -> Option<User> {
        let token = token.trim();
        if token.is_empty() || token.len() > 256 {
            return None;
        }
        let hash = sha256_hex(token);
        self.with(move |c| {
            let name = c
                .row(
                    "SELECT name FROM users WHERE token_sha256 = ?1",
                    vals![hash],
                )?
                .map(|r| r.text(0))
                .transpose()?;
            match name {
                Some(n) => load_user(c, &n),
                None => Ok(None),
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// A user by name.
    pub async fn user(&self, name: &str) -> Result<Option<User>, Fault> {
        let name = name.to_string();
        self.with(move |c| load_user(c, &name)).await
    }

    /// Names of all users.
    #[allow(dead_code)] // for administration tools; not used by the HTTP layer yet
    pub async fn users(&self) -> Result<Vec<String>, Fault> {
        self.with(|c| {
            c.rows("SELECT name FROM users ORDER BY name", &[])?
                .iter()
                .map(|r| r.text(0))
                .collect()
        })
        .await
    }

    /// Removes a user, their group memberships and their home with everything in it
    /// (whatever locks). Nodes they own elsewhere stay (with their owner name).
    #[allow(dead_code)] // administration and tests
    pub async fn remove_user(&self, name: &str) -> Result<(), Fault> {
        check_name("user", name)?;
        let name = name.to_string();
        let keys = self
            .write(move |tx| {
                let n = tx.exec("DELETE FROM users WHERE name = ?1", vals![name])?;
                if n == 0 {
                    return Err(Fault::InvalidArgument("no such user".into()));
                }
                tx.exec("DELETE FROM group_members WHERE \"user\" = ?1", vals![name])?;
                let home = format!("/{name}");
                let rows = select_subtree(tx, &home)?;
                let (lo, hi) = subtree_bounds(&home);
                tx.exec(
                    "DELETE FROM nodes WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
                    vals![home, lo, hi],
                )?;
                tracing::info!("VOSpace: user {name} removed ({} node(s))", rows.len());
                Ok(rows.into_iter().filter_map(|(_, k)| k).collect::<Vec<_>>())
            })
            .await?;
        self.delete_objects(keys).await;
        Ok(())
    }

    /// Adds a user to a group (short name; created by its first member).
    pub async fn add_to_group(&self, user: &str, group: &str) -> Result<(), Fault> {
        check_name("group", group)?;
        let (user, group) = (user.to_string(), group.to_string());
        self.write(move |tx| {
            if load_user(tx, &user)?.is_none() {
                return Err(Fault::InvalidArgument("no such user".into()));
            }
            tx.exec(
                "INSERT INTO group_members (grp, \"user\") VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                vals![group, user],
            )?;
            Ok(())
        })
        .await
    }

    /// Removes a user from a group; whether they were in it.
    #[allow(dead_code)] // for administration tools; not used by the HTTP layer yet
    pub async fn remove_from_group(&self, user: &str, group: &str) -> Result<bool, Fault> {
        let (user, group) = (user.to_string(), group.to_string());
        self.with(move |c| {
            let n = c.exec(
                "DELETE FROM group_members WHERE grp = ?1 AND \"user\" = ?2",
                vals![group, user],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// Members of a group.
    #[allow(dead_code)] // for administration tools; not used by the HTTP layer yet
    pub async fn group_members(&self, group: &str) -> Result<Vec<String>, Fault> {
        let group = group.to_string();
        self.with(move |c| {
            c.rows(
                "SELECT \"user\" FROM group_members WHERE grp = ?1 ORDER BY \"user\"",
                vals![group],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
        })
        .await
    }

    // -----------------------------------------------------------------------------------------
    // Access control

    /// What `user` may do with the node at `path` (see the module documentation);
    /// NodeNotFound / LinkFound when there is no such node.
    /// What `user` may do with each of `children` of the container `parent` (one lookup of
    /// the ancestors for all of them, not one per child: a listing's hot path).
    pub async fn access_children(
        &self,
        user: Option<&User>,
        parent: &Node,
        children: &[Node],
    ) -> Result<Vec<Access>, Fault> {
        let path = parent.path.clone();
        let mut ancestors = self.with(move |c| select_ancestors(c, &path)).await?;
        ancestors.push(parent.clone());
        let authority = self.authority.get().map(String::as_str);
        Ok(children
            .iter()
            .map(|child| access(child, &ancestors, user, authority))
            .collect())
    }

    pub async fn access(&self, user: Option<&User>, path: &str) -> Result<Access, Fault> {
        let path = normalise_path(path)?;
        let (node, ancestors) = self
            .with(move |c| {
                let (node, _) = require_node(c, &path)?;
                Ok((node, select_ancestors(c, &path)?))
            })
            .await?;
        Ok(access(
            &node,
            &ancestors,
            user,
            self.authority.get().map(String::as_str),
        ))
    }

    /// Whether `user` may read the node (or list the container) at `path`.
    #[allow(dead_code)] // administration and tests
    pub async fn can_read(&self, user: Option<&User>, path: &str) -> Result<bool, Fault> {
        Ok(self.access(user, path).await? >= Access::Read)
    }

    /// Whether `user` may write the node at `path` (its data and properties; for a container,
    /// creating and deleting children). The root is writable by no one.
    #[allow(dead_code)] // administration and tests
    pub async fn can_write(&self, user: Option<&User>, path: &str) -> Result<bool, Fault> {
        Ok(self.access(user, path).await? == Access::Write)
    }

    // -----------------------------------------------------------------------------------------
    // Nodes

    /// The node at `path`: None when there is none, LinkFound when the path goes through a
    /// LinkNode.
    pub async fn get(&self, path: &str) -> Result<Option<Node>, Fault> {
        let path = normalise_path(path)?;
        self.with(move |c| match select_node(c, &path)? {
            Some((n, _)) => Ok(Some(n)),
            None => match why_missing(c, &path, Fault::NodeNotFound(String::new()))? {
                f @ Fault::LinkFound(_) => Err(f),
                _ => Ok(None),
            },
        })
        .await
    }

    /// The children of the container at `path`, ordered by name, starting after the name
    /// `after` (exclusive), at most `limit` of them. Empty for a data or link node;
    /// NodeNotFound when there is no node at `path`.
    pub async fn children(
        &self,
        path: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<Node>, Fault> {
        let path = normalise_path(path)?;
        let after = after.map(str::to_string);
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        self.with(move |c| {
            let (node, _) = require_node(c, &path)?;
            if node.kind != NodeKind::Container {
                return Ok(Vec::new());
            }
            c.rows(
                &format!(
                    "SELECT {COLUMNS} FROM nodes WHERE parent = ?1 AND (CAST(?2 AS TEXT) IS NULL OR name > ?2) \
                     ORDER BY name LIMIT ?3"
                ),
                vals![path, after, limit],
            )?
            .iter()
            .map(|r| node_from_row(r).map(|(n, _)| n))
            .collect()
        })
        .await
    }

    /// Creates a node: a container, a link (with its target) or an empty data node. The
    /// server sets ctime, mtime, length, MD5 and busy; client properties are kept (read-only
    /// ones dropped, `core#type` → content type). The parent must be an existing container
    /// (ContainerNotFound; LinkFound when it is a link); DuplicateNode when the node exists;
    /// top-level nodes (homes) are made by `add_user` only (PermissionDenied).
    pub async fn create(&self, node: Node) -> Result<Node, Fault> {
        let path = normalise_path(&node.path)?;
        if path == "/" {
            return Err(Fault::DuplicateNode("the root exists".into()));
        }
        if depth(&path) == 1 {
            return Err(Fault::PermissionDenied(
                "top-level nodes are user homes, created with the user".into(),
            ));
        }
        if node.owner.is_empty() {
            return Err(Fault::InvalidArgument("a node needs an owner".into()));
        }
        let target = match node.kind {
            NodeKind::Link => match node.target.as_deref().map(str::trim) {
                Some(t) if !t.is_empty() && t.len() <= MAX_TARGET => Some(t.to_string()),
                _ => {
                    return Err(Fault::InvalidArgument(
                        "a LinkNode needs a target URI".into(),
                    ))
                }
            },
            _ => None,
        };
        let mut props = Vec::new();
        let mut content_type = match node.content_type.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => {
                check_content_type(t)?;
                Some(t.to_string())
            }
            _ => None,
        };
        let given: Vec<Property> = node
            .properties
            .iter()
            .filter(|p| p.value.is_some())
            .cloned()
            .collect();
        apply_properties(&mut props, &mut content_type, &given)?;
        let t = now();
        let new = Node {
            path,
            kind: node.kind,
            owner: node.owner,
            properties: props,
            target,
            length: None,
            md5: None,
            content_type,
            ctime: t.clone(),
            mtime: t,
            busy: false,
        };
        self.write(move |tx| {
            if select_node(tx, &new.path)?.is_some() {
                return Err(Fault::DuplicateNode(format!("{} exists", new.path)));
            }
            check_parent(tx, &new.path)?;
            insert_node(tx, &new, None)?;
            Ok(new)
        })
        .await
    }

    /// Changes client properties (a None value deletes one; server-maintained ones are
    /// ignored; `core#type`/`core#contenttype` set the content type); returns the node.
    pub async fn set_properties(&self, path: &str, props: &[Property]) -> Result<Node, Fault> {
        let path = normalise_path(path)?;
        let changes = props.to_vec();
        self.write(move |tx| {
            let (mut node, _) = require_node(tx, &path)?;
            apply_properties(&mut node.properties, &mut node.content_type, &changes)?;
            tx.exec(
                "UPDATE nodes SET properties = ?1, content_type = ?2 WHERE path = ?3",
                vals![props_to_json(&node.properties), node.content_type, path],
            )?;
            Ok(node)
        })
        .await
    }

    /// Deletes a node and, for a container, everything below it; the objects are deleted
    /// after the commit. The root and homes cannot be deleted (PermissionDenied: see
    /// `remove_user`); NodeLocked when a node of the tree is busy or locked.
    pub async fn delete(&self, path: &str) -> Result<(), Fault> {
        let path = normalise_path(path)?;
        if depth(&path) <= 1 {
            return Err(Fault::PermissionDenied(format!(
                "{path} is the root or a home: it cannot be deleted"
            )));
        }
        let keys = self
            .write(move |tx| {
                require_node(tx, &path)?;
                let rows = select_subtree(tx, &path)?;
                if let Some((n, _)) = rows.iter().find(|(n, _)| n.busy || is_locked(n)) {
                    return Err(Fault::NodeLocked(format!("{} is busy or locked", n.path)));
                }
                let (lo, hi) = subtree_bounds(&path);
                tx.exec(
                    "DELETE FROM nodes WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
                    vals![path, lo, hi],
                )?;
                Ok(rows.into_iter().filter_map(|(_, k)| k).collect::<Vec<_>>())
            })
            .await?;
        self.delete_objects(keys).await;
        Ok(())
    }

    /// Where `src` goes for a move or copy to `dst`: inside `dst` when that is an existing
    /// container, else `dst` itself (whose parent must be a container).
    fn destination(c: &Conn<'_>, src: &str, dst: &str) -> Result<String, Fault> {
        let target = match select_node(c, dst)? {
            Some((d, _)) => match d.kind {
                NodeKind::Container => {
                    if dst == "/" {
                        format!("/{}", name(src))
                    } else {
                        format!("{dst}/{}", name(src))
                    }
                }
                NodeKind::Link => return Err(Fault::LinkFound(d.path)),
                NodeKind::Data => return Err(Fault::DuplicateNode(format!("{dst} exists"))),
            },
            None => {
                check_parent(c, dst)?;
                dst.to_string()
            }
        };
        if target == src || target.starts_with(&format!("{src}/")) {
            return Err(Fault::InvalidArgument(format!(
                "cannot move or copy {src} into itself"
            )));
        }
        if depth(&target) <= 1 {
            return Err(Fault::PermissionDenied(
                "top-level nodes are user homes, created with the user".into(),
            ));
        }
        if select_node(c, &target)?.is_some() {
            return Err(Fault::DuplicateNode(format!("{target} exists")));
        }
        check_parent(c, &target)?;
        Ok(target)
    }

    /// Moves a node (and what is below it) to `dst`, or inside `dst` when that is an existing
    /// container; returns the moved node. Owners, properties and objects stay.
    pub async fn move_node(&self, src: &str, dst: &str) -> Result<Node, Fault> {
        let src = normalise_path(src)?;
        let dst = normalise_path(dst)?;
        if depth(&src) <= 1 {
            return Err(Fault::PermissionDenied(format!(
                "{src} is the root or a home: it cannot be moved"
            )));
        }
        self.write(move |tx| {
            require_node(tx, &src)?;
            let target = Self::destination(tx, &src, &dst)?;
            let rows = select_subtree(tx, &src)?;
            if let Some((n, _)) = rows.iter().find(|(n, _)| n.busy || is_locked(n)) {
                return Err(Fault::NodeLocked(format!("{} is busy or locked", n.path)));
            }
            for (n, _) in &rows {
                let new_path = format!("{target}{}", &n.path[src.len()..]);
                tx.exec(
                    "UPDATE nodes SET path = ?1, parent = ?2, name = ?3 WHERE path = ?4",
                    vals![new_path, parent(&new_path), name(&new_path), n.path],
                )?;
            }
            let (moved, _) = require_node(tx, &target)?;
            Ok(moved)
        })
        .await
    }

    /// Copies a node (and what is below it) to `dst`, or inside `dst` when that is an existing
    /// container; the copies belong to `owner` and get new objects (copied in the store before
    /// the metadata commit). QuotaExceeded when the owner's quota would be exceeded.
    pub async fn copy_node(&self, src: &str, dst: &str, owner: &str) -> Result<Node, Fault> {
        let src = normalise_path(src)?;
        let dst = normalise_path(dst)?;
        if src == "/" {
            return Err(Fault::PermissionDenied("the root cannot be copied".into()));
        }
        if owner.is_empty() {
            return Err(Fault::InvalidArgument("a node needs an owner".into()));
        }
        let (s, d) = (src.clone(), dst.clone());
        let (rows, owner_usage, quota) = self
            .with({
                let owner = owner.to_string();
                move |c| {
                    require_node(c, &s)?;
                    Self::destination(c, &s, &d)?;
                    let rows = select_subtree(c, &s)?;
                    Ok((rows, usage_of(c, &owner)?, user_quota(c, &owner)?))
                }
            })
            .await?;
        let added: u64 = rows.iter().filter_map(|(n, _)| n.length).sum();
        if let Some(q) = quota {
            if owner_usage.saturating_add(added) > q {
                return Err(Fault::QuotaExceeded(format!(
                    "the copy needs {added} bytes; {owner} uses {owner_usage} of {q}"
                )));
            }
        }
        // Copy the objects first (new keys, recorded as uploads in progress of this process
        // before the first byte): a crash leaves orphans, removed by the next recovery.
        let mut planned: Vec<(Node, Option<(String, String)>)> = Vec::with_capacity(rows.len());
        for (n, key) in rows {
            let keys = key
                .map(|k| Self::new_object_key().map(|nk| (k, nk)))
                .transpose()?;
            planned.push((n, keys));
        }
        let new_keys: Vec<String> = planned
            .iter()
            .filter_map(|(_, k)| k.as_ref().map(|(_, nk)| nk.clone()))
            .collect();
        self.record_uploads(new_keys.clone(), None).await?;
        let mut copies: Vec<(Node, Option<String>)> = Vec::with_capacity(planned.len());
        let t = now();
        for (n, keys) in planned {
            let new_key = match keys {
                Some((k, nk)) => {
                    let size = n.length.unwrap_or(0);
                    if let Err(e) = self.copy_object(&k, &nk, size).await {
                        self.forget_uploads(new_keys).await;
                        return Err(internal(format!("copying {}: {e}", n.path)));
                    }
                    Some(nk)
                }
                None => None,
            };
            let mut copy = n;
            copy.owner = owner.to_string();
            copy.ctime = t.clone();
            copy.mtime = t.clone();
            copy.busy = false;
            copies.push((copy, new_key));
        }
        let owner = owner.to_string();
        let process = self.process.clone();
        let recorded = new_keys.clone();
        let r = self
            .write(move |tx| {
                require_node(tx, &src)?;
                let target = Self::destination(tx, &src, &dst)?;
                if let Some(q) = user_quota(tx, &owner)? {
                    let u = usage_of(tx, &owner)?;
                    if u.saturating_add(added) > q {
                        return Err(Fault::QuotaExceeded(format!(
                            "the copy needs {added} bytes; {owner} uses {u} of {q}"
                        )));
                    }
                }
                for key in &recorded {
                    claim_upload(tx, key, &process)?;
                }
                for (n, key) in &mut copies {
                    n.path = format!("{target}{}", &n.path[src.len()..]);
                    insert_node(tx, n, key.as_deref())?;
                }
                let (copied, _) = require_node(tx, &target)?;
                Ok(copied)
            })
            .await;
        if r.is_err() {
            self.forget_uploads(new_keys).await;
        }
        r
    }

    /// Copies the object `from` to the new key `to`: one server-side copy up to
    /// [`SINGLE_COPY_MAX`] bytes, above it the bytes streamed through this process into a
    /// multipart upload (S3 refuses a single copy of more than 5 GB).
    async fn copy_object(
        &self,
        from: &str,
        to: &str,
        size: u64,
    ) -> Result<(), object_store::Error> {
        let (from, to) = (self.obj(from), self.obj(to));
        let store = &self.storage.store;
        if size <= self.single_copy_max.load(Ordering::Relaxed) {
            return store.copy(&from, &to).await;
        }
        let mut source = store.get(&from).await?.into_stream();
        let upload = store.put_multipart(&to).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, part_size(Some(size)));
        let r: Result<(), object_store::Error> = async {
            while let Some(chunk) = source.next().await {
                w.wait_for_capacity(UPLOAD_CONCURRENCY).await?;
                w.put(chunk?);
            }
            Ok(())
        }
        .await;
        match r {
            Ok(()) => w.finish().await.map(|_| ()),
            Err(e) => {
                if let Err(a) = w.abort().await {
                    tracing::warn!("VOSpace: aborting the copy to {to}: {a}");
                }
                Err(e)
            }
        }
    }

    /// Bytes used by the nodes `owner` owns.
    #[allow(dead_code)] // administration and tests
    pub async fn usage(&self, owner: &str) -> Result<u64, Fault> {
        let owner = owner.to_string();
        self.with(move |c| usage_of(c, &owner)).await
    }

    // -----------------------------------------------------------------------------------------
    // Data

    /// Writes the content of the data node at `path` (created, owned by `owner_for_new`, when
    /// missing; the parent rules of [`VoStore::create`] apply) from `stream`, crash-safely (see
    /// the module documentation). `declared_length` / `declared_md5` (hex): TransferFailed
    /// when the bytes differ, and nothing changes. `content_type` None keeps the node's.
    /// QuotaExceeded as soon as the owner's usage would exceed their quota (users table) or
    /// `quota`. NodeLocked when the node is busy (another write) or locked.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_data<S, E>(
        &self,
        path: &str,
        owner_for_new: &str,
        stream: S,
        declared_length: Option<u64>,
        declared_md5: Option<&str>,
        content_type: Option<&str>,
        quota: Option<u64>,
    ) -> Result<Node, Fault>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let declared_md5 = declared_md5.map(check_md5_syntax).transpose()?;
        let content_type = match content_type.map(str::trim) {
            Some(t) if !t.is_empty() => {
                check_content_type(t)?;
                Some(t.to_string())
            }
            _ => None,
        };
        let path = normalise_path(path)?;
        let state = WriteState::default();
        // The bytes go straight to their final key: nothing is copied after the upload.
        let key = Self::new_object_key()?;
        let mut guard = WriteGuard {
            db: self.db.clone(),
            store: self.storage.store.clone(),
            path: path.clone(),
            key: key.clone(),
            state: state.clone(),
            objects: Vec::new(),
            armed: true,
        };
        let plan = match self
            .begin_write(&path, owner_for_new, quota, &key, &state)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                guard.undo().await;
                return Err(e);
            }
        };
        if let (Some(max), Some(d)) = (plan.max_len, declared_length) {
            if d > max {
                guard.undo().await;
                return Err(Fault::QuotaExceeded(format!(
                    "{d} bytes exceed the quota of {} ({max} bytes left)",
                    plan.owner
                )));
            }
        }
        guard.objects.push(self.obj(&key));
        let result = async {
            let (len, md5) = self
                .upload(&key, stream, plan.max_len, declared_length, &plan.owner)
                .await?;
            if declared_length.is_some_and(|d| d != len) {
                return Err(Fault::TransferFailed(format!(
                    "received {len} bytes, {} declared",
                    declared_length.unwrap_or(0)
                )));
            }
            if let Some(d) = &declared_md5 {
                if *d != md5 {
                    return Err(Fault::TransferFailed(format!(
                        "the MD5 of the bytes received is {md5}, {d} declared"
                    )));
                }
            }
            self.commit_write(&plan, &key, len, &md5, content_type, &state)
                .await
        }
        .await;
        match result {
            Ok((node, old_key)) => {
                // Committed: the new object is referenced.
                guard.take();
                if let Some(k) = old_key {
                    self.delete_objects(vec![k]).await;
                }
                Ok(node)
            }
            Err(e) => {
                guard.undo().await;
                Err(e)
            }
        }
    }

    /// First step of a write: checks, marks an existing node busy, records the upload in
    /// progress to `key`, computes the quota left.
    async fn begin_write(
        &self,
        path: &str,
        owner_for_new: &str,
        quota: Option<u64>,
        key: &str,
        state: &WriteState,
    ) -> Result<WritePlan, Fault> {
        let path = normalise_path(path)?;
        if depth(&path) <= 1 {
            return Err(Fault::InvalidArgument(format!(
                "{path} is the root or a home, not a DataNode"
            )));
        }
        let owner_for_new = owner_for_new.to_string();
        let state = state.clone();
        let (key, process) = (key.to_string(), self.process.clone());
        self.with(move |c| {
            let mut s = lock_state(&state);
            check_not_cancelled(*s)?;
            let plan =
                c.write(|tx| Self::plan_write(tx, path, owner_for_new, quota, &key, &process))?;
            if plan.existed {
                *s |= BUSY_SET;
            }
            Ok(plan)
        })
        .await
    }

    fn plan_write(
        tx: &Conn<'_>,
        path: String,
        owner_for_new: String,
        quota: Option<u64>,
        key: &str,
        process: &str,
    ) -> Result<WritePlan, Fault> {
        {
            let (existed, owner, old_len) = match select_node(tx, &path)? {
                Some((n, _)) => {
                    if n.kind != NodeKind::Data {
                        return Err(Fault::InvalidArgument(format!(
                            "{path} is a {}, not a DataNode",
                            &n.kind.xsi_type()[4..]
                        )));
                    }
                    if n.busy {
                        return Err(Fault::NodeLocked(format!("{path} is being written")));
                    }
                    if is_locked(&n) {
                        return Err(Fault::NodeLocked(format!("{path} is locked")));
                    }
                    tx.exec("UPDATE nodes SET busy = 1 WHERE path = ?1", vals![path])?;
                    (true, n.owner, n.length.unwrap_or(0))
                }
                None => {
                    check_parent(tx, &path)?;
                    if owner_for_new.is_empty() {
                        return Err(Fault::InvalidArgument("a node needs an owner".into()));
                    }
                    (false, owner_for_new, 0)
                }
            };
            let q = min_quota(user_quota(tx, &owner)?, quota);
            let max_len = match q {
                Some(q) => {
                    let others = usage_of(tx, &owner)?.saturating_sub(old_len);
                    Some(q.saturating_sub(others))
                }
                None => None,
            };
            tx.exec(
                "INSERT INTO vospace_uploads (object_key, process, path) VALUES (?1, ?2, ?3)",
                vals![key, process, path],
            )?;
            Ok(WritePlan {
                path,
                existed,
                owner,
                max_len,
                quota,
            })
        }
    }

    /// Streams into the object `key` (multipart for more than a part); returns the length and
    /// MD5 (hex).
    async fn upload<S, E>(
        &self,
        key: &str,
        stream: S,
        max_len: Option<u64>,
        declared_length: Option<u64>,
        owner: &str,
    ) -> Result<(u64, String), Fault>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        use md5::Digest;
        let _reservation = self.reserve_upload(declared_length).await?;
        let part = part_size(declared_length);
        let location = self.obj(key);
        let mut stream = std::pin::pin!(stream);
        let mut hasher = md5::Md5::new();
        let mut len: u64 = 0;
        // Bytes received before the multipart upload starts (small files: one put).
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0usize;
        let mut writer: Option<WriteMultipart> = None;
        let r: Result<(), Fault> = async {
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| Fault::TransferFailed(format!("the upload failed: {e}")))?;
                if chunk.is_empty() {
                    continue;
                }
                len = len.saturating_add(chunk.len() as u64);
                if max_len.is_some_and(|m| len > m) {
                    return Err(Fault::QuotaExceeded(format!(
                        "the upload exceeds the quota of {owner}"
                    )));
                }
                if declared_length.is_some_and(|d| len > d) {
                    return Err(Fault::TransferFailed(format!(
                        "more than the {} bytes declared",
                        declared_length.unwrap_or(0)
                    )));
                }
                hasher.update(&chunk);
                match &mut writer {
                    Some(w) => {
                        w.wait_for_capacity(UPLOAD_CONCURRENCY)
                            .await
                            .map_err(write_fault)?;
                        w.put(chunk);
                    }
                    None => {
                        pending_len += chunk.len();
                        pending.push(chunk);
                        if pending_len >= part {
                            let upload = self
                                .storage
                                .store
                                .put_multipart(&location)
                                .await
                                .map_err(write_fault)?;
                            let mut w = WriteMultipart::new_with_chunk_size(upload, part);
                            for b in pending.drain(..) {
                                w.put(b);
                            }
                            pending_len = 0;
                            writer = Some(w);
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        match (r, writer) {
            (Ok(()), Some(w)) => {
                w.finish().await.map_err(write_fault)?;
            }
            (Ok(()), None) => {
                self.storage
                    .store
                    .put(&location, PutPayload::from_iter(pending))
                    .await
                    .map_err(write_fault)?;
            }
            (Err(e), Some(w)) => {
                if let Err(a) = w.abort().await {
                    tracing::warn!("VOSpace: aborting the upload to {location}: {a}");
                }
                return Err(e);
            }
            (Err(e), None) => return Err(e),
        }
        Ok((len, to_hex(&hasher.finalize())))
    }

    /// Points the node at its new object in one transaction (creating the node when it did
    /// not exist); returns the node and the object it pointed to before.
    async fn commit_write(
        &self,
        plan: &WritePlan,
        key: &str,
        len: u64,
        md5: &str,
        content_type: Option<String>,
        state: &WriteState,
    ) -> Result<(Node, Option<String>), Fault> {
        let (path, existed, owner) = (plan.path.clone(), plan.existed, plan.owner.clone());
        let quota = plan.quota;
        let (key, md5) = (key.to_string(), md5.to_string());
        let state = state.clone();
        let process = self.process.clone();
        self.with(move |c| {
            let mut s = lock_state(&state);
            check_not_cancelled(*s)?;
            let r = c.write(|tx| {
                let t = now();
                claim_upload(tx, &key, &process)?;
                let current = select_node(tx, &path)?;
                let (node, old_key) = match current {
                    Some((mut n, old_key)) => {
                        if n.kind != NodeKind::Data {
                            return Err(Fault::InvalidArgument(format!(
                                "{path} is no longer a DataNode"
                            )));
                        }
                        if !existed && n.busy {
                            return Err(Fault::NodeLocked(format!("{path} is being written")));
                        }
                        if let Some(q) = min_quota(user_quota(tx, &n.owner)?, quota) {
                            let others =
                                usage_of(tx, &n.owner)?.saturating_sub(n.length.unwrap_or(0));
                            if others.saturating_add(len) > q {
                                return Err(Fault::QuotaExceeded(format!(
                                    "{len} bytes exceed the quota of {}",
                                    n.owner
                                )));
                            }
                        }
                        n.length = Some(len);
                        n.md5 = Some(md5.clone());
                        if content_type.is_some() {
                            n.content_type = content_type;
                        }
                        n.mtime = t;
                        n.busy = false;
                        tx.exec(
                            "UPDATE nodes SET object_key = ?1, length = ?2, md5 = ?3, \
                         content_type = ?4, mtime = ?5, busy = 0 WHERE path = ?6",
                            vals![key, to_i64(len), md5, n.content_type, n.mtime, path],
                        )?;
                        (n, old_key)
                    }
                    None => {
                        check_parent(tx, &path)?;
                        if let Some(q) = min_quota(user_quota(tx, &owner)?, quota) {
                            if usage_of(tx, &owner)?.saturating_add(len) > q {
                                return Err(Fault::QuotaExceeded(format!(
                                    "{len} bytes exceed the quota of {owner}"
                                )));
                            }
                        }
                        let n = Node {
                            path: path.clone(),
                            kind: NodeKind::Data,
                            owner,
                            properties: Vec::new(),
                            target: None,
                            length: Some(len),
                            md5: Some(md5),
                            content_type,
                            ctime: t.clone(),
                            mtime: t,
                            busy: false,
                        };
                        insert_node(tx, &n, Some(&key))?;
                        (n, None)
                    }
                };
                Ok((node, old_key))
            })?;
            *s |= COMMITTED;
            Ok(r)
        })
        .await
    }

    /// The whole content of a data node.
    pub async fn read_data(&self, path: &str) -> Result<DataRead, Fault> {
        self.read_range(path, None).await
    }

    /// The content of a data node, or the bytes `range` (half-open; its end is clamped to the
    /// length) of it. InvalidArgument for a range starting at or after the end (HTTP 416) or
    /// empty, or when the node is not a DataNode; NodeNotFound / LinkFound.
    pub async fn read_range(
        &self,
        path: &str,
        range: Option<Range<u64>>,
    ) -> Result<DataRead, Fault> {
        let path = normalise_path(path)?;
        // A write may replace the object between reading the metadata and opening it: retry.
        for _ in 0..3 {
            let p = path.clone();
            let (node, key) = self.with(move |c| require_node(c, &p)).await?;
            if node.kind != NodeKind::Data {
                return Err(Fault::InvalidArgument(format!(
                    "{path} is a {}, not a DataNode",
                    &node.kind.xsi_type()[4..]
                )));
            }
            let total = node.length.unwrap_or(0);
            let served = match &range {
                None => 0..total,
                Some(r) => {
                    if r.start >= r.end || r.start >= total {
                        return Err(Fault::InvalidArgument(format!(
                            "range {}-{} not satisfiable (length {total})",
                            r.start,
                            r.end.saturating_sub(1)
                        )));
                    }
                    r.start..r.end.min(total)
                }
            };
            let Some(key) = key.filter(|_| total > 0) else {
                return Ok(DataRead {
                    node,
                    range: 0..0,
                    total: 0,
                    stream: futures::stream::empty().boxed(),
                });
            };
            let opts = GetOptions {
                range: Some(GetRange::Bounded(served.clone())),
                ..Default::default()
            };
            match self.storage.store.get_opts(&self.obj(&key), opts).await {
                Ok(r) => {
                    return Ok(DataRead {
                        node,
                        range: served,
                        total,
                        stream: r.into_stream().map_err(internal).boxed(),
                    })
                }
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(internal(e)),
            }
        }
        Err(Fault::InternalFault(format!(
            "the content of {path} could not be read"
        )))
    }

    // -----------------------------------------------------------------------------------------
    // Transfers

    /// Records a new transfer job (phase `PENDING`, a random id).
    pub async fn create_transfer(
        &self,
        owner: &str,
        direction: &str,
        target: &str,
        details: Option<&str>,
    ) -> Result<TransferRecord, Fault> {
        let rec = TransferRecord {
            id: random_hex(12)?,
            owner: owner.to_string(),
            phase: "PENDING".into(),
            direction: direction.to_string(),
            target: target.to_string(),
            details: details.map(str::to_string),
            error: None,
            created: now(),
        };
        let r = rec.clone();
        self.with(move |c| {
            c.exec(
                &format!(
                    "INSERT INTO transfers ({TRANSFER_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                vals![
                    r.id,
                    r.owner,
                    r.phase,
                    r.direction,
                    r.target,
                    r.details,
                    r.error,
                    r.created
                ],
            )?;
            Ok(())
        })
        .await?;
        Ok(rec)
    }

    /// A transfer job.
    pub async fn get_transfer(&self, id: &str) -> Result<Option<TransferRecord>, Fault> {
        let id = id.to_string();
        self.with(move |c| {
            c.row(
                &format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?1"),
                vals![id],
            )?
            .as_ref()
            .map(transfer_from_row)
            .transpose()
        })
        .await
    }

    /// Saves the phase, direction, target, details and error of a transfer job (by id); whether
    /// it exists.
    pub async fn update_transfer(&self, rec: &TransferRecord) -> Result<bool, Fault> {
        let r = rec.clone();
        self.with(move |c| {
            let n = c.exec(
                "UPDATE transfers SET phase = ?1, direction = ?2, target = ?3, details = ?4, \
                 error = ?5 WHERE id = ?6",
                vals![r.phase, r.direction, r.target, r.details, r.error, r.id],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// Transfer jobs, of one owner or all, oldest first.
    pub async fn list_transfers(&self, owner: Option<&str>) -> Result<Vec<TransferRecord>, Fault> {
        let owner = owner.map(str::to_string);
        self.with(move |c| {
            c.rows(
                &format!(
                    "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE CAST(?1 AS TEXT) IS NULL OR owner = ?1 \
                     ORDER BY created, id"
                ),
                vals![owner],
            )?
            .iter()
            .map(transfer_from_row)
            .collect()
        })
        .await
    }

    /// Deletes a transfer job; whether it existed.
    #[allow(dead_code)] // for a transfer job list; not served yet
    pub async fn delete_transfer(&self, id: &str) -> Result<bool, Fault> {
        let id = id.to_string();
        self.with(move |c| Ok(c.exec("DELETE FROM transfers WHERE id = ?1", vals![id])? > 0))
            .await
    }

    /// Deletes the transfer jobs created before `created` (same format as
    /// [`TransferRecord::created`]); how many.
    pub async fn delete_transfers_before(&self, created: &str) -> Result<usize, Fault> {
        let created = created.to_string();
        self.with(move |c| {
            let n = c.exec("DELETE FROM transfers WHERE created < ?1", vals![created])?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn full_disk_is_storage_full() {
        let generic = |kind| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(kind)),
        };
        let f = write_fault(generic(std::io::ErrorKind::StorageFull));
        assert_eq!((f.name(), f.status()), ("InternalFault", 507));
        assert!(f.detail().contains("storage is full"), "{f}");
        let f = write_fault(generic(std::io::ErrorKind::PermissionDenied));
        assert_eq!(f.status(), 500);
    }

    /// A temporary folder, removed at the end of the test.
    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "vostok-vospace-{name}-{}",
            random_hex(6).expect("random")
        ));
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }

    /// Where the records of a test are kept.
    #[derive(Clone, Copy)]
    enum Backend {
        Sqlite,
        Postgres,
    }

    /// A test's data folder and database (a private PostgreSQL cluster of its own).
    struct Space {
        dir: TempDir,
        pg: Option<(crate::pgtest::Cluster, String)>,
    }

    impl std::ops::Deref for Space {
        type Target = TempDir;
        fn deref(&self) -> &TempDir {
            &self.dir
        }
    }

    fn space(name: &str, b: Backend) -> Space {
        let pg = match b {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let cluster = crate::pgtest::Cluster::start().expect("a PostgreSQL cluster");
                let url = cluster.database("vospace").expect("a database");
                Some((cluster, url))
            }
        };
        Space {
            dir: temp_dir(name),
            pg,
        }
    }

    async fn open_only(dir: &Space) -> Arc<VoStore> {
        let storage = storage::Storage::local(&dir.0.join("data"), storage::Missing::Create)
            .expect("storage");
        match &dir.pg {
            None => VoStore::open(&dir.0.join("vospace.db"), storage).await,
            Some((_, url)) => VoStore::open_postgres(url, 4, storage).await,
        }
        .expect("open")
    }

    async fn open(dir: &Space) -> Arc<VoStore> {
        let store = open_only(dir).await;
        // On PostgreSQL, the stores the test opened before (and dropped) are gone once their
        // liveness locks are released (their connections' ends reach the server).
        if dir.pg.is_some() {
            for _ in 0..200 {
                let others = store
                    .with(|c| Ok(c.live_processes()?.map_or(0, |l| l.len())))
                    .await
                    .expect("locks");
                if others <= 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        // As `vostok serve` does after taking the writer lock.
        store.recover().await.expect("recover");
        store
    }

    /// Each behaviour test, on SQLite and on PostgreSQL.
    macro_rules! on_both {
        ($($name:ident),* $(,)?) => {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::$name(super::Backend::Sqlite).await
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::$name(super::Backend::Postgres).await
                    }
                )*
            }
        };
    }

    on_both!(
        uploads_share_one_buffer_budget,
        users_tokens_groups,
        node_semantics,
        data_writes,
        busy_nodes,
        crash_recovery,
        access_matrix,
    );

    fn node(path: &str, kind: NodeKind, owner: &str) -> Node {
        Node {
            path: path.into(),
            kind,
            owner: owner.into(),
            properties: Vec::new(),
            target: None,
            length: None,
            md5: None,
            content_type: None,
            ctime: String::new(),
            mtime: String::new(),
            busy: false,
        }
    }

    fn chunks(data: &[u8], size: usize) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        let v: Vec<Result<Bytes, std::io::Error>> = data
            .chunks(size.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(v)
    }

    async fn write(s: &VoStore, path: &str, data: &[u8], md5: Option<&str>) -> Result<Node, Fault> {
        s.write_data(path, "alice", chunks(data, 7), None, md5, None, None)
            .await
    }

    async fn read_all(s: &VoStore, path: &str, range: Option<Range<u64>>) -> Vec<u8> {
        let r = s.read_range(path, range).await.expect("read");
        let parts: Vec<Bytes> = r.stream.try_collect().await.expect("stream");
        parts.concat()
    }

    async fn objects(s: &VoStore, dir: &str) -> Vec<ObjPath> {
        s.storage
            .store
            .list(Some(&s.obj(dir)))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .expect("list")
    }

    fn md5_hex(data: &[u8]) -> String {
        use md5::Digest;
        to_hex(&md5::Md5::digest(data))
    }

    fn prop(uri: &str, v: Option<&str>) -> Property {
        Property {
            uri: uri.into(),
            value: v.map(str::to_string),
            read_only: false,
        }
    }

    async fn uploads_share_one_buffer_budget(b: Backend) {
        let dir = space("budget", b);
        let s = open(&dir).await;
        s.add_user("alice", None).await.unwrap();
        // Room for one upload of unknown length (15 MiB), not two.
        s.set_upload_budget(20, Duration::from_millis(50));
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let first = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from("ab")) })
            .chain(futures::stream::once(async move {
                let _ = wait.await;
                Ok(Bytes::from("cd"))
            }));
        let s1 = s.clone();
        let held = tokio::spawn(async move {
            s1.write_data("/alice/a", "alice", first, None, None, None, None)
                .await
        });
        // Until the first upload has reserved its share, the second may still get in.
        let mut refused = None;
        for _ in 0..100 {
            match write(&s, "/alice/b", b"xy", None).await {
                Err(f) => {
                    refused = Some(f);
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        let f = refused
            .expect("a second upload of unknown length is refused while one holds the budget");
        assert_eq!(f.status(), 503, "{f}");
        assert!(f.detail().contains("upload_buffer_mb"), "{f}");
        // A small upload that declares its length reserves only that much and gets in.
        let small = s
            .write_data(
                "/alice/c",
                "alice",
                chunks(b"xy", 1),
                Some(2),
                None,
                None,
                None,
            )
            .await;
        assert!(small.is_ok(), "{small:?}");
        go.send(()).unwrap();
        held.await.unwrap().unwrap();
        assert_eq!(read_all(&s, "/alice/a", None).await, b"abcd");
        // The budget is back once the upload has ended.
        write(&s, "/alice/b", b"xy", None).await.unwrap();
        assert_eq!(read_all(&s, "/alice/b", None).await, b"xy");
    }

    async fn users_tokens_groups(b: Backend) {
        let dir = space("users", b);
        let s = open(&dir).await;
        let t = s.add_user("alice", Some(1000)).await.unwrap();
        assert_eq!(t.len(), 64);
        assert!(matches!(
            s.add_user("alice", None).await,
            Err(Fault::InvalidArgument(_))
        ));
        for bad in ["", "1abc", "a/b", "a b", &"x".repeat(65)] {
            assert!(s.add_user(bad, None).await.is_err(), "{bad}");
        }
        let u = s.user_for_token(&t).await.unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.quota_bytes, Some(1000));
        assert!(s.user_for_token("nope").await.is_none());
        let home = s.get("/alice").await.unwrap().unwrap();
        assert_eq!(home.kind, NodeKind::Container);
        assert_eq!(home.owner, "alice");
        let t2 = s.new_token("alice").await.unwrap();
        assert!(s.user_for_token(&t).await.is_none());
        assert!(s.user_for_token(&t2).await.is_some());
        s.add_to_group("alice", "team").await.unwrap();
        assert!(s.add_to_group("nobody", "team").await.is_err());
        let u = s.user_for_token(&t2).await.unwrap();
        assert_eq!(u.groups, vec!["team".to_string()]);
        assert!(is_member(&u, "team", None));
        assert!(is_member(
            &u,
            &group_uri("example.org", "team"),
            Some("example.org")
        ));
        assert!(!is_member(
            &u,
            &group_uri("evil.org", "team"),
            Some("example.org")
        ));
        assert!(!is_member(&u, "other", None));
        // the root lists the homes
        s.add_user("bob", None).await.unwrap();
        let names: Vec<String> = s
            .children("/", None, None)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.path)
            .collect();
        assert_eq!(names, ["/alice", "/bob"]);
        write(&s, "/bob/f", b"xyz", None).await.unwrap();
        s.remove_user("bob").await.unwrap();
        assert!(s.get("/bob").await.unwrap().is_none());
        assert!(objects(&s, OBJECTS_DIR).await.is_empty());
    }

    async fn node_semantics(b: Backend) {
        let dir = space("nodes", b);
        let s = open(&dir).await;
        s.add_user("alice", None).await.unwrap();
        let c = s
            .create(node("/alice/c", NodeKind::Container, "alice"))
            .await
            .unwrap();
        assert!(!c.ctime.is_empty());
        for i in 1..=5 {
            s.create(node(&format!("/alice/c/f{i}"), NodeKind::Data, "alice"))
                .await
                .unwrap();
        }
        let page = |after: Option<&'static str>, limit| {
            let s = s.clone();
            async move {
                s.children("/alice/c", after, limit)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|n| name(&n.path).to_string())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(page(None, Some(2)).await, ["f1", "f2"]);
        assert_eq!(page(Some("f2"), Some(2)).await, ["f3", "f4"]);
        assert_eq!(page(Some("f4"), None).await, ["f5"]);
        assert!(page(Some("f5"), None).await.is_empty());
        assert!(s
            .children("/alice/c/f1", None, None)
            .await
            .unwrap()
            .is_empty());
        assert!(matches!(
            s.children("/alice/zz", None, None).await,
            Err(Fault::NodeNotFound(_))
        ));

        // faults of create
        let dup = s
            .create(node("/alice/c", NodeKind::Container, "alice"))
            .await;
        assert!(matches!(dup, Err(Fault::DuplicateNode(_))));
        let nop = s.create(node("/alice/x/y", NodeKind::Data, "alice")).await;
        assert!(matches!(nop, Err(Fault::ContainerNotFound(_))));
        let data_parent = s
            .create(node("/alice/c/f1/y", NodeKind::Data, "alice"))
            .await;
        assert!(matches!(data_parent, Err(Fault::ContainerNotFound(_))));
        let top = s.create(node("/eve", NodeKind::Container, "eve")).await;
        assert!(matches!(top, Err(Fault::PermissionDenied(_))));
        let no_target = s.create(node("/alice/l", NodeKind::Link, "alice")).await;
        assert!(matches!(no_target, Err(Fault::InvalidArgument(_))));
        let mut link = node("/alice/l", NodeKind::Link, "alice");
        link.target = Some("vos://example.org!vospace/alice/c".into());
        s.create(link).await.unwrap();
        let via_link = s.create(node("/alice/l/y", NodeKind::Data, "alice")).await;
        assert_eq!(via_link, Err(Fault::LinkFound("/alice/l".into())));
        assert_eq!(
            s.get("/alice/l/y/z").await,
            Err(Fault::LinkFound("/alice/l".into()))
        );
        assert_eq!(s.get("/alice/nothing").await, Ok(None));
        assert!(s.get("/alice/../x").await.is_err());

        // properties
        let mut n = node("/alice/c/p", NodeKind::Data, "alice");
        n.properties = vec![
            prop(prop::TITLE, Some("T")),
            prop(prop::LENGTH, Some("99")),
            prop(prop::CONTENT_TYPE, Some("text/plain")),
        ];
        let n = s.create(n).await.unwrap();
        assert_eq!(n.property(prop::TITLE), Some("T"));
        assert_eq!(n.property(prop::LENGTH), None);
        assert_eq!(n.length, None);
        assert_eq!(n.content_type.as_deref(), Some("text/plain"));
        let n = s
            .set_properties(
                "/alice/c/p",
                &[
                    prop(prop::TITLE, None),
                    prop(prop::DESCRIPTION, Some("D")),
                    prop(prop::MD5, Some("00")),
                    prop(prop::CONTENT_TYPE_ALT, Some("image/png")),
                ],
            )
            .await
            .unwrap();
        assert_eq!(n.property(prop::TITLE), None);
        assert_eq!(n.property(prop::DESCRIPTION), Some("D"));
        assert_eq!(n.md5, None);
        assert_eq!(n.content_type.as_deref(), Some("image/png"));
        assert_eq!(s.get("/alice/c/p").await.unwrap(), Some(n));
        assert!(matches!(
            s.set_properties("/alice/none", &[]).await,
            Err(Fault::NodeNotFound(_))
        ));

        // move: into a container, then renamed
        write(&s, "/alice/c/f1", b"one", None).await.unwrap();
        s.create(node("/alice/d", NodeKind::Container, "alice"))
            .await
            .unwrap();
        let m = s.move_node("/alice/c", "/alice/d").await.unwrap();
        assert_eq!(m.path, "/alice/d/c");
        assert!(s.get("/alice/c").await.unwrap().is_none());
        assert_eq!(read_all(&s, "/alice/d/c/f1", None).await, b"one");
        assert_eq!(s.children("/alice/d/c", None, None).await.unwrap().len(), 6);
        let m = s.move_node("/alice/d/c", "/alice/e").await.unwrap();
        assert_eq!(m.path, "/alice/e");
        assert_eq!(read_all(&s, "/alice/e/f1", None).await, b"one");
        assert!(matches!(
            s.move_node("/alice/e", "/alice/e/f2").await,
            Err(Fault::DuplicateNode(_))
        ));
        s.create(node("/alice/e/sub", NodeKind::Container, "alice"))
            .await
            .unwrap();
        assert!(matches!(
            s.move_node("/alice/e", "/alice/e/sub").await,
            Err(Fault::InvalidArgument(_))
        ));
        assert!(matches!(
            s.move_node("/alice", "/alice/d").await,
            Err(Fault::PermissionDenied(_))
        ));
        assert!(matches!(
            s.move_node("/alice/e", "/").await,
            Err(Fault::PermissionDenied(_))
        ));
        assert!(matches!(
            s.move_node("/alice/e/f1", "/alice/e/f2").await,
            Err(Fault::DuplicateNode(_))
        ));

        // copy: new objects, owned by the copier
        s.add_user("bob", None).await.unwrap();
        let cp = s.copy_node("/alice/e", "/bob/e2", "bob").await.unwrap();
        assert_eq!(cp.owner, "bob");
        assert_eq!(read_all(&s, "/bob/e2/f1", None).await, b"one");
        assert_eq!(objects(&s, OBJECTS_DIR).await.len(), 2);
        assert_eq!(s.usage("bob").await.unwrap(), 3);
        assert!(matches!(
            s.copy_node("/alice/e", "/alice/e/sub", "alice").await,
            Err(Fault::InvalidArgument(_))
        ));

        // delete: recursive, objects gone
        assert!(matches!(
            s.delete("/alice").await,
            Err(Fault::PermissionDenied(_))
        ));
        assert!(matches!(
            s.delete("/").await,
            Err(Fault::PermissionDenied(_))
        ));
        s.delete("/alice/e").await.unwrap();
        assert!(s.get("/alice/e/f1").await.unwrap().is_none());
        assert!(s.get("/alice/e").await.unwrap().is_none());
        assert_eq!(objects(&s, OBJECTS_DIR).await.len(), 1);
        assert_eq!(read_all(&s, "/bob/e2/f1", None).await, b"one");
        assert!(matches!(
            s.delete("/alice/e").await,
            Err(Fault::NodeNotFound(_))
        ));
        // locked nodes
        s.set_properties("/bob/e2/f2", &[prop(prop::IS_LOCKED, Some("true"))])
            .await
            .unwrap();
        assert!(matches!(
            s.delete("/bob/e2").await,
            Err(Fault::NodeLocked(_))
        ));
        assert!(matches!(
            s.write_data("/bob/e2/f2", "bob", chunks(b"x", 1), None, None, None, None)
                .await,
            Err(Fault::NodeLocked(_))
        ));
        s.set_properties("/bob/e2/f2", &[prop(prop::IS_LOCKED, None)])
            .await
            .unwrap();
        s.delete("/bob/e2").await.unwrap();
        assert!(objects(&s, OBJECTS_DIR).await.is_empty());
    }

    async fn data_writes(b: Backend) {
        let dir = space("data", b);
        let s = open(&dir).await;
        s.add_user("alice", Some(100)).await.unwrap();
        // a new node, created by the write
        let n = s
            .write_data(
                "/alice/h.txt",
                "alice",
                chunks(b"hello", 2),
                Some(5),
                Some("5D41402ABC4B2A76B9719D911017C592"),
                Some("text/plain"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(n.length, Some(5));
        assert_eq!(n.md5.as_deref(), Some("5d41402abc4b2a76b9719d911017c592"));
        assert_eq!(n.content_type.as_deref(), Some("text/plain"));
        assert_eq!(s.get("/alice/h.txt").await.unwrap(), Some(n.clone()));
        assert_eq!(read_all(&s, "/alice/h.txt", None).await, b"hello");
        assert_eq!(read_all(&s, "/alice/h.txt", Some(1..3)).await, b"el");
        assert_eq!(read_all(&s, "/alice/h.txt", Some(3..100)).await, b"lo");
        assert!(s.read_range("/alice/h.txt", Some(5..6)).await.is_err());
        assert!(s.read_range("/alice", None).await.is_err());

        // wrong MD5 or length: nothing changes
        let bad = write(&s, "/alice/h.txt", b"HELLO", Some(&md5_hex(b"other"))).await;
        assert!(matches!(bad, Err(Fault::TransferFailed(_))));
        let bad = s
            .write_data(
                "/alice/h.txt",
                "alice",
                chunks(b"HELLO", 2),
                Some(4),
                None,
                None,
                None,
            )
            .await;
        assert!(matches!(bad, Err(Fault::TransferFailed(_))));
        let bad = s
            .write_data(
                "/alice/h.txt",
                "alice",
                chunks(b"HELLO", 2),
                Some(6),
                None,
                None,
                None,
            )
            .await;
        assert!(matches!(bad, Err(Fault::TransferFailed(_))));
        let bad = write(&s, "/alice/new", b"x", Some(&md5_hex(b"y"))).await;
        assert!(matches!(bad, Err(Fault::TransferFailed(_))));
        assert!(s.get("/alice/new").await.unwrap().is_none());
        assert_eq!(s.get("/alice/h.txt").await.unwrap(), Some(n.clone()));
        assert_eq!(read_all(&s, "/alice/h.txt", None).await, b"hello");
        assert!(objects(&s, TMP_DIR).await.is_empty());
        assert_eq!(objects(&s, OBJECTS_DIR).await.len(), 1);

        // an interrupted upload
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("connection reset")),
        ]);
        let bad = s
            .write_data("/alice/h.txt", "alice", broken, None, None, None, None)
            .await;
        assert!(matches!(bad, Err(Fault::TransferFailed(_))));
        assert!(!s.get("/alice/h.txt").await.unwrap().unwrap().busy);

        // quota: 100 bytes; 5 used by h.txt, which a rewrite replaces
        let ok = write(&s, "/alice/h.txt", &[1u8; 100], None).await.unwrap();
        assert_eq!(ok.length, Some(100));
        let over = write(&s, "/alice/other", b"x", None).await;
        assert!(matches!(over, Err(Fault::QuotaExceeded(_))));
        let over = write(&s, "/alice/h.txt", &[1u8; 101], None).await;
        assert!(matches!(over, Err(Fault::QuotaExceeded(_))));
        let over = s
            .write_data(
                "/alice/h.txt",
                "alice",
                chunks(b"", 1),
                Some(101),
                None,
                None,
                None,
            )
            .await;
        assert!(matches!(over, Err(Fault::QuotaExceeded(_))));
        let over = s
            .write_data(
                "/alice/h.txt",
                "alice",
                chunks(&[2u8; 50], 8),
                None,
                None,
                None,
                Some(40),
            )
            .await;
        assert!(matches!(over, Err(Fault::QuotaExceeded(_))));
        assert!(s.get("/alice/other").await.unwrap().is_none());
        assert_eq!(read_all(&s, "/alice/h.txt", None).await, vec![1u8; 100]);
        assert_eq!(s.usage("alice").await.unwrap(), 100);
        assert!(matches!(
            s.copy_node("/alice/h.txt", "/alice/h2", "alice").await,
            Err(Fault::QuotaExceeded(_))
        ));
        // an empty file
        s.set_quota("alice", None).await.unwrap();
        let e = write(&s, "/alice/empty", b"", None).await.unwrap();
        assert_eq!(e.length, Some(0));
        assert_eq!(e.md5.as_deref(), Some(md5_hex(b"").as_str()));
        assert!(read_all(&s, "/alice/empty", None).await.is_empty());

        // a big upload: 20 MiB in 64 KiB chunks, multipart
        let big: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let n = s
            .write_data(
                "/alice/big",
                "alice",
                chunks(&big, 64 * 1024),
                Some(big.len() as u64),
                Some(&md5_hex(&big)),
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(n.length, Some(big.len() as u64));
        let back = read_all(&s, "/alice/big", None).await;
        assert!(back == big);
        let mid = read_all(&s, "/alice/big", Some(7_000_000..7_000_010)).await;
        assert_eq!(mid, &big[7_000_000..7_000_010]);
        assert!(objects(&s, TMP_DIR).await.is_empty());
        // a copy above the single-copy limit is streamed into a multipart upload
        let before = objects(&s, OBJECTS_DIR).await.len();
        s.single_copy_max.store(1024 * 1024, Ordering::Relaxed);
        let cp = s
            .copy_node("/alice/big", "/alice/big2", "alice")
            .await
            .unwrap();
        assert_eq!(cp.md5, n.md5);
        assert!(read_all(&s, "/alice/big2", None).await == big);
        s.single_copy_max.store(SINGLE_COPY_MAX, Ordering::Relaxed);
        assert_eq!(objects(&s, OBJECTS_DIR).await.len(), before + 1);
        s.delete("/alice/big2").await.unwrap();
        // writing a container is refused
        assert!(matches!(
            write(&s, "/alice", b"x", None).await,
            Err(Fault::InvalidArgument(_))
        ));
        assert!(matches!(
            write(&s, "/alice/nodir/x", b"x", None).await,
            Err(Fault::ContainerNotFound(_))
        ));
    }

    #[test]
    fn parts_grow_with_the_file_within_the_part_limit() {
        let mib = 1u64 << 20;
        assert_eq!(part_size(None), PART_SIZE);
        assert_eq!(part_size(Some(0)), PART_SIZE);
        assert_eq!(part_size(Some(MAX_PARTS * PART_SIZE as u64)), PART_SIZE);
        assert_eq!(
            part_size(Some(MAX_PARTS * PART_SIZE as u64 + 1)),
            6 * mib as usize
        );
        for len in [100 * (1u64 << 30), 5 * (1u64 << 40)] {
            let p = part_size(Some(len)) as u64;
            assert!(
                p.is_multiple_of(mib) && p * MAX_PARTS >= len && (p - mib) * MAX_PARTS < len,
                "{len}: {p}"
            );
        }
    }

    async fn busy_nodes(b: Backend) {
        let dir = space("busy", b);
        let s = open(&dir).await;
        s.add_user("alice", None).await.unwrap();
        write(&s, "/alice/f", b"v1", None).await.unwrap();
        let state = WriteState::default();
        let key = VoStore::new_object_key().unwrap();
        let plan = s
            .begin_write("/alice/f", "alice", None, &key, &state)
            .await
            .unwrap();
        assert!(s.get("/alice/f").await.unwrap().unwrap().busy);
        assert!(matches!(
            write(&s, "/alice/f", b"v2", None).await,
            Err(Fault::NodeLocked(_))
        ));
        assert!(matches!(
            s.delete("/alice/f").await,
            Err(Fault::NodeLocked(_))
        ));
        assert!(matches!(
            s.move_node("/alice/f", "/alice/g").await,
            Err(Fault::NodeLocked(_))
        ));
        // the write's future is dropped (client gone) after its upload: the undo clears the
        // flag, deletes the new object and a late commit cannot happen any more
        s.upload(&key, chunks(b"v2", 1), None, None, "alice")
            .await
            .unwrap();
        let guard = WriteGuard {
            db: s.db.clone(),
            store: s.storage.store.clone(),
            path: plan.path.clone(),
            key: key.clone(),
            state: state.clone(),
            objects: vec![s.obj(&key)],
            armed: true,
        };
        drop(guard);
        for _ in 0..200 {
            if *lock_state(&state) & CANCELLED != 0 && objects(&s, OBJECTS_DIR).await.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!s.get("/alice/f").await.unwrap().unwrap().busy);
        assert_eq!(objects(&s, OBJECTS_DIR).await.len(), 1);
        let late = s
            .commit_write(&plan, &key, 2, &md5_hex(b"v2"), None, &state)
            .await;
        assert!(late.is_err());
        assert_eq!(read_all(&s, "/alice/f", None).await, b"v1");

        // an undo after the commit changes nothing
        let state = WriteState::default();
        let key = VoStore::new_object_key().unwrap();
        let plan = s
            .begin_write("/alice/f", "alice", None, &key, &state)
            .await
            .unwrap();
        s.upload(&key, chunks(b"v3", 1), None, None, "alice")
            .await
            .unwrap();
        let (_, old) = s
            .commit_write(&plan, &key, 2, &md5_hex(b"v3"), None, &state)
            .await
            .unwrap();
        s.delete_objects(old.into_iter().collect()).await;
        WriteGuard {
            db: s.db.clone(),
            store: s.storage.store.clone(),
            path: plan.path.clone(),
            key: key.clone(),
            state: state.clone(),
            objects: vec![s.obj(&key)],
            armed: true,
        }
        .undo()
        .await;
        assert_eq!(read_all(&s, "/alice/f", None).await, b"v3");
        // a write just after a cancelled begin
        write(&s, "/alice/f", b"v4", None).await.unwrap();
        assert_eq!(read_all(&s, "/alice/f", None).await, b"v4");
        assert_eq!(objects(&s, OBJECTS_DIR).await.len(), 1);
    }

    /// A database that refers to no stored file, over a folder holding files (a new
    /// PostgreSQL database after SQLite, a wrong path): recovery deletes none of them.
    #[tokio::test]
    async fn recovery_keeps_files_a_new_database_does_not_know() {
        let dir = space("foreign", Backend::Sqlite);
        {
            let s = open(&dir).await;
            s.add_user("alice", None).await.unwrap();
            write(&s, "/alice/f", b"kept", None).await.unwrap();
            write(&s, "/alice/g", b"kept too", None).await.unwrap();
        }
        let storage = storage::Storage::local(&dir.0.join("data"), storage::Missing::Create)
            .expect("storage");
        let other = VoStore::open(&dir.0.join("another.db"), storage)
            .await
            .unwrap();
        other.recover().await.unwrap();
        assert_eq!(objects(&other, OBJECTS_DIR).await.len(), 2);
        // the folder's own database still reads both
        let s = open(&dir).await;
        assert_eq!(read_all(&s, "/alice/g", None).await, b"kept too");
    }

    async fn crash_recovery(b: Backend) {
        let dir = space("crash", b);
        {
            let s = open(&dir).await;
            s.add_user("alice", None).await.unwrap();
            write(&s, "/alice/f", b"old content", None).await.unwrap();
            write(&s, "/alice/g", b"other file", None).await.unwrap();
            // a crash after the upload, before the commit
            let key = VoStore::new_object_key().unwrap();
            let plan = s
                .begin_write("/alice/f", "alice", None, &key, &WriteState::default())
                .await
                .unwrap();
            s.upload(&key, chunks(b"new content", 3), None, None, "alice")
                .await
                .unwrap();
            // and an upload an earlier version staged under tmp
            let tmp2 = format!("{TMP_DIR}/{}", random_hex(16).unwrap());
            s.upload(&tmp2, chunks(b"half", 3), None, None, "alice")
                .await
                .unwrap();
            // a stray object nobody references
            s.storage
                .store
                .put(
                    &s.obj("vospace/objects/stray"),
                    Bytes::from_static(b"?").into(),
                )
                .await
                .unwrap();
            // a multipart staging file of a local store
            let staging = format!("/{}#1", s.obj(&format!("{TMP_DIR}/x")));
            std::fs::write(&staging, b"partial").unwrap();
            assert!(s.get(&plan.path).await.unwrap().unwrap().busy);
            assert_eq!(objects(&s, OBJECTS_DIR).await.len(), 4);
            assert_eq!(objects(&s, TMP_DIR).await.len(), 1);
        }
        let s = open(&dir).await;
        let f = s.get("/alice/f").await.unwrap().unwrap();
        assert!(!f.busy);
        assert_eq!(f.length, Some(11));
        assert_eq!(read_all(&s, "/alice/f", None).await, b"old content");
        assert_eq!(read_all(&s, "/alice/g", None).await, b"other file");
        assert_eq!(objects(&s, OBJECTS_DIR).await.len(), 2);
        assert!(objects(&s, TMP_DIR).await.is_empty());
        let tmp_dir = PathBuf::from(format!("/{}", s.obj(TMP_DIR)));
        let left = std::fs::read_dir(&tmp_dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0);
        // writes still work
        write(&s, "/alice/f", b"newer", None).await.unwrap();
        assert_eq!(read_all(&s, "/alice/f", None).await, b"newer");
        assert_eq!(objects(&s, OBJECTS_DIR).await.len(), 2);
    }

    async fn access_matrix(b: Backend) {
        let dir = space("access", b);
        let s = open(&dir).await;
        s.set_authority("example.org");
        for u in ["owner", "other", "member"] {
            s.add_user(u, None).await.unwrap();
        }
        s.add_to_group("member", "team").await.unwrap();
        let team = group_uri("example.org", "team");
        let cases: [(&str, Vec<Property>); 4] = [
            ("private", vec![]),
            ("gread", vec![prop(prop::GROUP_READ, Some(&team))]),
            ("gwrite", vec![prop(prop::GROUP_WRITE, Some("team"))]),
            ("public", vec![prop(prop::IS_PUBLIC, Some("true"))]),
        ];
        let user = |n: &str| {
            let s = s.clone();
            let n = n.to_string();
            async move { s.user(&n).await.unwrap() }
        };
        let owner = user("owner").await;
        let other = user("other").await;
        let member = user("member").await;
        use Access::{None as N, Read as R, Write as W};
        // expected: owner, other, member, anonymous
        let expected = [
            ("private", [W, N, N, N]),
            ("gread", [W, N, R, N]),
            ("gwrite", [W, N, W, N]),
            ("public", [W, R, R, R]),
        ];
        for (name, props) in cases {
            let path = format!("/owner/{name}");
            let mut n = node(&path, NodeKind::Data, "owner");
            n.properties = props;
            s.create(n).await.unwrap();
            let got = [
                s.access(owner.as_ref(), &path).await.unwrap(),
                s.access(other.as_ref(), &path).await.unwrap(),
                s.access(member.as_ref(), &path).await.unwrap(),
                s.access(None, &path).await.unwrap(),
            ];
            let want = expected.iter().find(|e| e.0 == name).unwrap().1;
            assert_eq!(got, want, "{name}");
            assert_eq!(
                s.can_read(member.as_ref(), &path).await.unwrap(),
                want[2] >= R
            );
            assert_eq!(
                s.can_write(member.as_ref(), &path).await.unwrap(),
                want[2] == W
            );
        }
        // a group URI of another authority grants nothing
        let mut n = node("/owner/foreign", NodeKind::Data, "owner");
        n.properties = vec![prop(prop::GROUP_READ, Some("ivo://evil.org/gms?team"))];
        s.create(n).await.unwrap();
        assert_eq!(s.access(member.as_ref(), "/owner/foreign").await, Ok(N));
        // the root: readable by all, writable by none; homes private
        for u in [owner.as_ref(), other.as_ref(), None] {
            assert_eq!(s.access(u, "/").await, Ok(R));
        }
        assert_eq!(s.access(owner.as_ref(), "/owner").await, Ok(W));
        assert_eq!(s.access(other.as_ref(), "/owner").await, Ok(N));
        // the home owner controls a node another user made in their home
        s.create(node("/owner/gwrite2", NodeKind::Container, "owner"))
            .await
            .unwrap();
        s.create(node("/owner/gwrite2/by-other", NodeKind::Data, "other"))
            .await
            .unwrap();
        assert_eq!(
            s.access(owner.as_ref(), "/owner/gwrite2/by-other").await,
            Ok(W)
        );
        assert_eq!(
            s.access(other.as_ref(), "/owner/gwrite2/by-other").await,
            Ok(W)
        );
        assert_eq!(
            s.access(member.as_ref(), "/owner/gwrite2/by-other").await,
            Ok(N)
        );
        // permissions are the node's own: a public node in a private container
        s.create(node("/owner/gwrite2/pub", NodeKind::Data, "owner"))
            .await
            .unwrap();
        s.set_properties("/owner/gwrite2/pub", &[prop(prop::IS_PUBLIC, Some("TRUE"))])
            .await
            .unwrap();
        assert_eq!(s.access(None, "/owner/gwrite2/pub").await, Ok(R));
        assert!(matches!(
            s.access(None, "/owner/none").await,
            Err(Fault::NodeNotFound(_))
        ));
    }

    // -----------------------------------------------------------------------------------------
    // Two processes on one PostgreSQL database and one data folder

    /// Set for the second process: the database URL, the data folder, alice's token.
    const CHILD_URL: &str = "VOSTOK_VOSPACE_TEST_CHILD_URL";
    const CHILD_DIR: &str = "VOSTOK_VOSPACE_TEST_CHILD_DIR";
    const CHILD_TOKEN: &str = "VOSTOK_VOSPACE_TEST_CHILD_TOKEN";
    /// Versions each process writes of the shared node.
    const ROUNDS: usize = 12;

    /// The content a process (`tag`) writes in round `i`: every byte says who and which round,
    /// and the lengths differ, so a mix of two versions or lost bytes cannot pass for one.
    fn version(tag: u8, i: usize) -> Vec<u8> {
        let unit = [tag, b'0' + (i % 10) as u8];
        unit.iter()
            .copied()
            .cycle()
            .take(150_000 + i * 1000 + usize::from(tag))
            .collect()
    }

    /// Writes every version of `/alice/shared`, retrying while the other process writes it.
    async fn write_versions(s: &VoStore, tag: u8) {
        for i in 0..ROUNDS {
            let data = version(tag, i);
            loop {
                match s
                    .write_data(
                        "/alice/shared",
                        "alice",
                        chunks(&data, 8192),
                        None,
                        None,
                        None,
                        None,
                    )
                    .await
                {
                    Ok(_) => break,
                    Err(Fault::NodeLocked(_)) => tokio::time::sleep(Duration::from_millis(3)).await,
                    Err(e) => panic!("process {}: write {i}: {e}", char::from(tag)),
                }
            }
        }
    }

    /// The second process of [`two_processes_share_the_records`]: runs only when that test
    /// starts this binary again with [`CHILD_URL`] set (otherwise it returns at once).
    #[test]
    fn second_process() {
        let (Some(url), Some(dir), Some(token)) = (
            std::env::var_os(CHILD_URL),
            std::env::var_os(CHILD_DIR),
            std::env::var_os(CHILD_TOKEN),
        ) else {
            return;
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let storage =
                storage::Storage::local(&PathBuf::from(dir).join("data"), storage::Missing::Refuse)
                    .unwrap();
            let s = VoStore::open_postgres(url.to_str().unwrap(), 4, storage)
                .await
                .unwrap();
            // The first process's user, token and node, at once.
            let alice = s.user_for_token(token.to_str().unwrap()).await.unwrap();
            assert_eq!(alice.name, "alice");
            assert_eq!(read_all(&s, "/alice/first", None).await, b"from the first");
            let bob = s.add_user("bob", None).await.unwrap();
            s.create(node("/alice/second", NodeKind::Container, "alice"))
                .await
                .unwrap();
            println!("BOB-TOKEN {bob}");
            // A slow upload of several parts (staging files on the disk) while the first
            // process runs its recovery over and over: it must survive.
            let slow = futures::stream::iter(0..12u8).then(|k| async move {
                tokio::time::sleep(Duration::from_millis(40)).await;
                Ok::<_, std::io::Error>(Bytes::from(vec![k; 1 << 20]))
            });
            println!("SLOW-STARTED");
            s.write_data(
                "/alice/slow",
                "alice",
                slow,
                Some(12 << 20),
                None,
                None,
                None,
            )
            .await
            .unwrap();
            write_versions(&s, b'B').await;
        });
    }

    /// Two processes (this test binary started again, running [`second_process`]) share one
    /// PostgreSQL database and one data folder: each sees the other's users, tokens and nodes
    /// at once; the first one's recovery leaves the second's upload in progress alone; their
    /// concurrent writes of one node leave one complete version, and no object behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_share_the_records() {
        let dir = space("two", Backend::Postgres);
        let url = dir.pg.as_ref().map(|(_, u)| u.clone()).unwrap();
        let s = open(&dir).await;
        let alice = s.add_user("alice", None).await.unwrap();
        write(&s, "/alice/first", b"from the first", None)
            .await
            .unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::tests::second_process", "--nocapture"])
            .env(CHILD_URL, &url)
            .env(CHILD_DIR, &dir.0)
            .env(CHILD_TOKEN, &alice)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut bob = None;
        while let Some(line) = rx.recv().await {
            if let Some(t) = line.strip_prefix("BOB-TOKEN ") {
                bob = Some(t.to_string());
            }
            if line == "SLOW-STARTED" {
                break;
            }
        }
        // The second process's user, token and node, at once.
        let bob = bob.expect("the second process's token");
        assert_eq!(s.user_for_token(&bob).await.unwrap().name, "bob");
        assert!(s.get("/alice/second").await.unwrap().is_some());
        // Recovery over and over while its upload streams: the upload is of a live process.
        for _ in 0..15 {
            s.recover().await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        write_versions(&s, b'A').await;
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "the second process failed: {status}");
        let slow = read_all(&s, "/alice/slow", None).await;
        assert_eq!(slow.len(), 12 << 20);
        assert!(slow
            .chunks(1 << 20)
            .enumerate()
            .all(|(k, c)| c.iter().all(|&b| usize::from(b) == k)));
        // One complete version of the shared node, its metadata its own.
        let got = read_all(&s, "/alice/shared", None).await;
        let n = s.get("/alice/shared").await.unwrap().unwrap();
        assert!(!n.busy);
        assert_eq!(n.length, Some(got.len() as u64));
        assert_eq!(n.md5.as_deref(), Some(md5_hex(&got).as_str()));
        let whole = (0..ROUNDS).any(|i| got == version(b'A', i) || got == version(b'B', i));
        assert!(whole, "a mix of versions ({} bytes)", got.len());
        // No object behind: one per data node.
        assert_eq!(objects(&s, OBJECTS_DIR).await.len(), 3);
        assert_eq!(s.users().await.unwrap(), ["alice", "bob"]);
    }
}
