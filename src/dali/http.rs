//! HTTP around every protocol: `HEAD` answered by the `GET` handler (the middleware in
//! `app::routes` marks such requests, handlers that can skip work ask [`is_head`]), the
//! RFC 3230 `Digest` header that OpenCADC's clients check transfers with, and the HTTP
//! status of a storage failure.

use actix_web::http::{header, Method, StatusCode};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use storage::Failure;

/// Marks a `HEAD` request that is being answered by its `GET` handler (the response's body is
/// dropped; its status and headers are the `GET`'s).
#[derive(Debug, Clone, Copy)]
pub struct HeadRequest;

/// Whether the client asked for the headers only: a handler may then skip producing the body.
pub fn is_head(req: &HttpRequest) -> bool {
    req.method() == Method::HEAD || req.extensions().get::<HeadRequest>().is_some()
}

/// The `Digest` header (RFC 3230) of content whose MD5 is `md5_hex`: `md5=<base64 of the 16
/// bytes>`. The `vos` client (cadcutils) compares it with what it sent or received, and
/// reads only the lower-case algorithm name.
pub fn digest(md5_hex: &str) -> Option<(header::HeaderName, String)> {
    use base64::Engine;
    let raw = hex_bytes(md5_hex).filter(|b| b.len() == 16)?;
    Some((
        header::HeaderName::from_static("digest"),
        format!(
            "md5={}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ),
    ))
}

/// The MD5 (hex) a request's `Digest: md5=…` header (RFC 3230) declares; `Err` when the
/// header names MD5 but its value is not a base64 MD5.
pub fn declared_md5(req: &HttpRequest) -> Result<Option<String>, String> {
    use base64::Engine;
    for value in req.headers().get_all("digest") {
        let Ok(value) = value.to_str() else {
            return Err("the Digest header is not ASCII".into());
        };
        // Several digests may be given, comma-separated: `md5=…, sha=…`.
        for item in value.split(',') {
            let Some((alg, b64)) = item.trim().split_once('=') else {
                continue;
            };
            if !alg.trim().eq_ignore_ascii_case("md5") {
                continue;
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .filter(|r| r.len() == 16)
                .ok_or_else(|| format!("Digest: md5={} is not a base64 MD5", b64.trim()))?;
            return Ok(Some(raw.iter().map(|b| format!("{b:02x}")).collect()));
        }
    }
    Ok(None)
}

fn hex_bytes(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The response to a failed read of a stored object at `what` (a URL path, for the message):
/// 404 when there is no such object, 403 when the store refuses the server access, 503 (with
/// `Retry-After`) when the store is unreachable for now, 500 otherwise. Failures that are not
/// the client's are logged.
pub fn storage_failure(what: &str, e: &object_store::Error) -> HttpResponse {
    let (status, message) = match Failure::of(e) {
        Failure::NotFound => (StatusCode::NOT_FOUND, format!("no such file: {what}")),
        Failure::Denied => {
            tracing::warn!("{what}: the storage refuses access: {e}");
            (
                StatusCode::FORBIDDEN,
                format!("{what}: the server is not allowed to read this file"),
            )
        }
        Failure::Transient => {
            tracing::error!("{what}: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the storage is not available; retry in a few seconds".to_string(),
            )
        }
        Failure::Broken => {
            tracing::error!("{what}: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{what}: the storage failed to read it"),
            )
        }
    };
    let mut r = HttpResponse::build(status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.insert_header((header::RETRY_AFTER, super::error::RETRY_AFTER_SECS));
    }
    r.content_type("text/plain; charset=utf-8").body(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_base64_of_the_raw_md5() {
        // MD5 of the empty string.
        let (name, value) = digest("d41d8cd98f00b204e9800998ecf8427e").unwrap();
        assert_eq!(name.as_str(), "digest");
        assert_eq!(value, "md5=1B2M2Y8AsgTpgAmY7PhCfg==");
        assert!(digest("xyz").is_none());
        assert!(digest("d41d8cd98f00b204").is_none());
    }

    #[test]
    fn declared_digests_are_read() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Digest", "SHA=abc, MD5=1B2M2Y8AsgTpgAmY7PhCfg=="))
            .to_http_request();
        assert_eq!(
            declared_md5(&req).unwrap().as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Digest", "md5=nonsense"))
            .to_http_request();
        assert!(declared_md5(&req).is_err());
        let req = actix_web::test::TestRequest::default().to_http_request();
        assert_eq!(declared_md5(&req).unwrap(), None);
    }
}
