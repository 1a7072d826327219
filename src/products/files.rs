//! File download: `GET|HEAD /data/<collection>/<path>` streams a stored product from object
//! storage, byte for byte as ingested, with HTTP range requests (RFC 9110 §14) so that large
//! downloads resume: `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` give 206 with
//! `Content-Range`; a range past the end gives 416; `If-Range` with a stale validator, several
//! ranges, or a malformed header give the whole file (200), as the RFC allows.

use std::ops::Range;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use object_store::{GetOptions, GetRange, ObjectStoreExt};

use crate::server::AppState;

/// Registers the download route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/data/{tail:.*}", web::get().to(download))
        .route("/data/{tail:.*}", web::head().to(download));
}

/// A path below `products/` from the URL tail; `None` when a segment is empty, `.` or `..`,
/// or starts with `_` (the index), or holds a backslash or control character.
pub fn product_path(tail: &str) -> Option<String> {
    let parts: Vec<&str> = tail.split('/').collect();
    if parts.len() < 2 {
        return None;
    }
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty()
            || *p == "."
            || *p == ".."
            || (i == 0 && p.starts_with('_'))
            || p.chars().any(|c| c == '\\' || c.is_control())
        {
            return None;
        }
    }
    Some(parts.join("/"))
}

/// The MIME type a stored file is served with.
pub fn content_type(path: &str) -> &'static str {
    let p = path.to_ascii_lowercase();
    if p.ends_with(".gz") {
        "application/gzip"
    } else if p.ends_with(".fits") || p.ends_with(".fit") || p.ends_with(".fts") {
        "application/fits"
    } else if p.ends_with(".xml") || p.ends_with(".vot") {
        "application/x-votable+xml"
    } else {
        "application/octet-stream"
    }
}

/// What a `Range` header asks for, given the size.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// No (usable) range: send everything.
    Whole,
    /// One satisfiable range (end exclusive).
    Part(Range<u64>),
    /// A syntactically valid range that lies past the end.
    Unsatisfiable,
}

/// Parses a `Range` header value against a representation of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> Ranged {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole; // several ranges: allowed to answer with the whole file
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ranged::Whole,
        (true, false) => match num(b) {
            // Suffix: the last n bytes.
            Some(0) => Ranged::Unsatisfiable,
            Some(n) if size == 0 => {
                let _ = n;
                Ranged::Unsatisfiable
            }
            Some(n) => Ranged::Part(size.saturating_sub(n)..size),
            None => Ranged::Whole,
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return Ranged::Whole;
            };
            let end = if b.is_empty() {
                None
            } else {
                match num(b) {
                    Some(e) if e >= start => Some(e),
                    _ => return Ranged::Whole, // invalid: ignored
                }
            };
            if start >= size {
                return Ranged::Unsatisfiable;
            }
            let end = end.map(|e| e.min(size - 1)).unwrap_or(size - 1);
            Ranged::Part(start..end + 1)
        }
    }
}

fn not_found(msg: String) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body(msg)
}

async fn download(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let tail = req.match_info().query("tail").to_string();
    let Some(rel) = product_path(&tail) else {
        return not_found(format!("no such file: /data/{tail}"));
    };
    let storage = &state.storage;
    let path = storage.path(&format!("{}/{rel}", super::ingest::PRODUCTS));
    let meta = match storage.store.head(&path).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => {
            return not_found(format!("no such file: /data/{tail}"))
        }
        Err(e) => {
            tracing::error!("head {path}: {e}");
            return HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("the storage is not available");
        }
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
        .insert_header((header::CONTENT_TYPE, content_type(&rel)))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "inline; filename=\"{}\"",
                rel.rsplit('/').next().unwrap_or("file").replace('"', "")
            ),
        ));
    let (start, len) = match &ranged {
        Ranged::Part(r) => (r.start, r.end - r.start),
        _ => (0, size),
    };
    if req.method() == actix_web::http::Method::HEAD {
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
        Err(e) => {
            tracing::error!("get {path}: {e}");
            return HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("the storage is not available");
        }
    };
    let _ = start;
    let body = got
        .into_stream()
        .map(|r| r.map_err(actix_web::error::ErrorInternalServerError));
    resp.no_chunking(len).streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ranged::Part(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Ranged::Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Ranged::Part(90..100));
        assert_eq!(parse_range("bytes=-1000", 100), Ranged::Part(0..100));
        assert_eq!(parse_range("bytes=50-5000", 100), Ranged::Part(50..100));
        assert_eq!(parse_range("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ranged::Whole);
        assert_eq!(parse_range("bytes=9-2", 100), Ranged::Whole);
        assert_eq!(parse_range("items=0-1", 100), Ranged::Whole);
        assert_eq!(parse_range("bytes=x-1", 100), Ranged::Whole);
        assert_eq!(parse_range("bytes=0-0", 0), Ranged::Unsatisfiable);
    }

    #[test]
    fn paths() {
        assert_eq!(
            product_path("demo/images/a.fits").as_deref(),
            Some("demo/images/a.fits")
        );
        for bad in [
            "demo/../secret",
            "demo//a",
            "_index/demo/obscore.parquet",
            "demo/./a",
            "a",
            "demo/a\\b",
        ] {
            assert_eq!(product_path(bad), None, "{bad}");
        }
    }
}
