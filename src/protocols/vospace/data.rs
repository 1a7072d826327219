//! The bytes: `/vospace/data/{id}` (a negotiated transfer's endpoint, authorised by its
//! unguessable id for `transfer_lifetime` seconds) and `/vospace/files/{path}` (the
//! `files-proto` endpoint the `vos` client reads from, for a caller who may read the node).
//!
//! The bytes' MD5, computed while they stream in, comes back as `Digest: md5=…` (RFC 3230)
//! on the upload's answer and on every download: the `vos` client checks an upload above
//! 5 MiB by it, and a download against it. An upload may declare its MD5 by `Content-MD5` or
//! `Digest: md5=…`; bytes that do not match are refused and the previous content stays.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use vospace::model::{self, Direction, Fault, NodeKind};
use vospace::store::TransferRecord;
use vospace::transfer;
use vospace::{Access, VoStore};

use super::transfers::record;
use super::{fault, node_path, VoSpace};
use crate::dali::http::{declared_md5, digest, is_head};
use crate::dali::range::{parse_range, Ranged};
use crate::identity;

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
    vs: &VoSpace,
    id: &str,
    want: Direction,
) -> Result<(TransferRecord, String), Fault> {
    let store = &*vs.store;
    let rec = record(store, id).await?;
    if rec.phase != "COMPLETED" || Direction::parse(&rec.direction) != want {
        return Err(Fault::PermissionDenied(format!(
            "transfer {id} does not allow this ({})",
            rec.direction
        )));
    }
    if !alive(&rec, vs.config.transfer_lifetime) {
        return Err(Fault::PermissionDenied(format!(
            "transfer {id} has expired"
        )));
    }
    let path = rec
        .details
        .as_deref()
        .and_then(|d| transfer::unpack_details(d).0)
        .ok_or_else(|| Fault::InternalFault(format!("transfer {id} has no target")))?
        .to_string();
    Ok((rec, path))
}

pub async fn put_data(
    vs: web::Data<VoSpace>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let inner = async {
        let store = &*vs.store;
        let (rec, node_path) = data_transfer(&vs, &path, Direction::PushToVoSpace).await?;
        let owner = store.user(&rec.owner).await?;
        let quota = owner.as_ref().and_then(|u| u.quota_bytes);
        let content_md5 = match req
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
        let digest_md5 = declared_md5(&req).map_err(Fault::InvalidArgument)?;
        let md5 = match (content_md5, digest_md5) {
            (Some(a), Some(b)) if a != b => {
                return Err(Fault::InvalidArgument(format!(
                    "Content-MD5 ({a}) and Digest ({b}) declare different contents"
                )))
            }
            (a, b) => a.or(b),
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
        let mut resp = HttpResponse::Created();
        if let Some(m) = &node.md5 {
            resp.insert_header((header::ETAG, format!("\"{m}\"")));
            if let Some(d) = digest(m) {
                resp.insert_header(d);
            }
        }
        Ok::<_, Fault>(resp.finish())
    };
    inner.await.unwrap_or_else(fault)
}

pub async fn get_data(
    vs: web::Data<VoSpace>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let inner = async {
        let store = &*vs.store;
        let (_, node_path) = data_transfer(&vs, &path, Direction::PullFromVoSpace).await?;
        serve_data(store, &req, &node_path).await
    };
    inner.await.unwrap_or_else(fault)
}

/// `GET /vospace/files/{path}` (the `files-proto` the `vos` client reads bytes from): the
/// node's bytes for a caller who may read it, links inside this space followed.
pub async fn get_file(vs: web::Data<VoSpace>, req: HttpRequest) -> HttpResponse {
    let inner = async {
        let store = &*vs.store;
        let user = identity::caller(&req).await?;
        let path = node_path(&req)?;
        let node = store
            .get(&path)
            .await?
            .ok_or_else(|| Fault::NodeNotFound(path.clone()))?;
        if store.access(user.as_ref(), &path).await? < Access::Read {
            return Err(transfer::denied(user.as_ref(), format!("read {path}")));
        }
        let node = transfer::resolve_links(store, vs.authority.as_str(), node).await?;
        if node.path != path && store.access(user.as_ref(), &node.path).await? < Access::Read {
            return Err(transfer::denied(
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
        .map(|v| parse_range(v, size))
        .unwrap_or(Ranged::Whole);
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
        // The digest of the whole node, on a part too (RFC 3230: the instance's digest; the
        // vos client checks a resumed download against it).
        if let Some(d) = digest(m) {
            resp.insert_header(d);
        }
    }
    if is_head(req) {
        return Ok(resp.no_chunking(len).streaming(futures::stream::empty::<
            Result<bytes::Bytes, actix_web::Error>,
        >()));
    }
    let body = read
        .stream
        .map(|r| r.map_err(|f| actix_web::error::ErrorInternalServerError(f.to_string())));
    Ok(resp.no_chunking(len).streaming(body))
}
