//! File download: `GET|HEAD /data/<collection>/<path>` streams a stored product from object
//! storage, byte for byte as ingested, with HTTP range requests (RFC 9110 §14) so that large
//! downloads resume: `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` give 206 with
//! `Content-Range`; a range past the end gives 416; `If-Range` with a stale validator, several
//! ranges, or a malformed header give the whole file (200), as the RFC allows. The file's
//! MD5, recorded at ingest, is sent as `Digest: md5=…` (RFC 3230). A path that names no
//! file (a folder, a path below a file) is a 404; only an unreachable store is a 503.
//! A stored `x.fits.gz` is sent as FITS (`crate::products::gunzip`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use object_store::{GetOptions, GetRange, ObjectStoreExt};
use storage::Storage;

use crate::dali::http::{digest, is_head, storage_failure};
use crate::dali::range::{parse_range, Ranged};
use crate::products::{media, product_path, Checksums};
use crate::publish::products::PRODUCTS;

/// Registers the download route (`HEAD` is answered by the same handler).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/data/{tail:.*}", web::get().to(download));
}

fn not_found(msg: String) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body(msg)
}

async fn download(
    storage: web::Data<Storage>,
    checksums: web::Data<Checksums>,
    req: HttpRequest,
) -> HttpResponse {
    let tail = req.match_info().query("tail").to_string();
    let Some(rel) = product_path(&tail) else {
        return not_found(format!("no such file: /data/{tail}"));
    };
    let path = storage.path(&format!("{PRODUCTS}/{rel}"));
    let meta = match storage.store.head(&path).await {
        Ok(m) => m,
        Err(e) => return storage_failure(&format!("/data/{tail}"), &e),
    };
    let size = meta.size;
    // A strong validator from the store's ETag (or size and time when it has none).
    let etag = format!(
        "\"{}\"",
        meta.e_tag
            .clone()
            .map(|t| t.trim_matches('"').to_string())
            .unwrap_or_else(|| format!("{:x}-{:x}", size, meta.last_modified.timestamp()))
    );
    let last_modified = meta
        .last_modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let headers = req.headers();
    let media = media(&rel);
    let filename = crate::products::saved_name(&rel);
    if media.gzip && !crate::products::gunzip::accepts_gzip(&req) {
        return crate::products::gunzip::decompressed(
            &storage,
            &path,
            &req,
            &etag,
            &last_modified,
            media,
            &filename,
        )
        .await;
    }
    let mut ranged = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, size))
        .unwrap_or(Ranged::Whole);
    if let Some(ir) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        let ir = ir.trim();
        if ir != etag && ir != last_modified {
            ranged = Ranged::Whole;
        }
    }
    let mut resp = match &ranged {
        Ranged::Unsatisfiable => {
            return HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .insert_header((header::ACCEPT_RANGES, "bytes"))
                .content_type("text/plain; charset=utf-8")
                .body(format!("the file has {size} bytes"));
        }
        Ranged::Part(r) => {
            let mut b = HttpResponse::PartialContent();
            b.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", r.start, r.end - 1),
            ));
            b
        }
        Ranged::Whole => HttpResponse::Ok(),
    };
    resp.insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, etag))
        .insert_header((header::LAST_MODIFIED, last_modified))
        .insert_header((header::CONTENT_TYPE, media.content_type))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{filename}\""),
        ));
    if media.gzip {
        resp.insert_header((header::CONTENT_ENCODING, "gzip"))
            .insert_header((header::VARY, "Accept-Encoding"));
    }
    // The digest of the whole stored file (gzip-encoded as sent, when it is), on a part too
    // (RFC 3230: the instance's digest).
    if let Some(d) = checksums.md5(&rel, &meta).await.as_deref().and_then(digest) {
        resp.insert_header(d);
    }
    let (start, len) = match &ranged {
        Ranged::Part(r) => (r.start, r.end - r.start),
        _ => (0, size),
    };
    if is_head(&req) {
        // A sized, empty body: actix then sends the Content-Length a GET would have, and no
        // body for HEAD.
        return resp.no_chunking(len).streaming(futures::stream::empty::<
            Result<bytes::Bytes, actix_web::Error>,
        >());
    }
    let opts = GetOptions {
        range: match &ranged {
            Ranged::Part(r) => Some(GetRange::Bounded(r.clone())),
            _ => None,
        },
        ..Default::default()
    };
    let got = match storage.store.get_opts(&path, opts).await {
        Ok(g) => g,
        Err(e) => return storage_failure(&format!("/data/{tail}"), &e),
    };
    let _ = start;
    let body = got
        .into_stream()
        .map(|r| r.map_err(actix_web::error::ErrorInternalServerError));
    resp.no_chunking(len).streaming(body)
}
