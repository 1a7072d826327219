//! The portal for people: a page of plain ES modules and CSS (`portal/` at the top of the
//! repository) compiled into the binary, and the small JSON endpoints it uses.
//!
//! * `GET /` — the page; `GET /portal/<file>` — its modules, styles and the third-party
//!   libraries it bundles (Aladin Lite, sampjs; `portal/vendor/`, unmodified, fetched from the
//!   npm registry by `scripts/portal-vendor.sh`). Nothing is fetched from elsewhere at run
//!   time: the page's Content-Security-Policy allows only this server, the local SAMP hub and
//!   the configured OpenID Connect issuer (the page's login at it).
//! * `GET /portal/api/tables` — every table with its columns and the services that serve it,
//!   from the same metadata as TAP_SCHEMA.
//! * `GET /portal/api/resolve?name=…` — a position for an object name, from a bundled list
//!   of common names and the served catalogs' identifiers ([`super::resolver`]).
//! * `POST /portal/api/check` — the ADQL text of the body checked as `vostok adql check`
//!   checks it, against the server's tables (planned, never executed), answered as JSON with
//!   the error's line and column.
//! * `GET /portal/api/me` — who the request's token (`Authorization: Bearer`) is: the user's
//!   name, groups, quota and VOSpace home, so that the page can log in and open the home;
//!   `{"user": null}` without a token, 401 for a token that names no one.
//!
//! With `VOSTOK_PORTAL_DIR` set (development), the same files are read from that folder at
//! each request instead, so that editing the page needs no rebuild; only the names listed in
//! [`ASSETS`] are ever served.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::engine::Engine;

/// A file of the page: its name below `/portal/`, its bytes, its content type, and whether
/// its name carries its version (then it is cached for a year).
struct Asset {
    name: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
    versioned: bool,
}

macro_rules! asset {
    ($name:literal, $ct:expr, $versioned:expr) => {
        Asset {
            name: $name,
            bytes: include_bytes!(concat!("../../portal/", $name)),
            content_type: $ct,
            versioned: $versioned,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const MD: &str = "text/markdown; charset=utf-8";

/// Every file the portal serves.
static ASSETS: &[Asset] = &[
    asset!("index.html", HTML, false),
    asset!("portal.css", CSS, false),
    asset!("portal.js", JS, false),
    asset!("adql.js", JS, false),
    asset!("grid.js", JS, false),
    asset!("sky.js", JS, false),
    asset!("send.js", JS, false),
    asset!("forms.js", JS, false),
    asset!("jobs.js", JS, false),
    asset!("auth.js", JS, false),
    asset!("space.js", JS, false),
    asset!("plot.js", JS, false),
    asset!("favicon.svg", "image/svg+xml", false),
    asset!("vendor/VERSIONS", TEXT, false),
    asset!("vendor/aladin-lite-3.8.2/aladin.js", JS, true),
    asset!("vendor/aladin-lite-3.8.2/COPYING", TEXT, true),
    asset!("vendor/aladin-lite-3.8.2/COPYING.LESSER", TEXT, true),
    asset!("vendor/aladin-lite-3.8.2/README.md", MD, true),
    asset!("vendor/sampjs-1.0.3/samp.js", JS, true),
    asset!("vendor/sampjs-1.0.3/README.md", MD, true),
];

/// The checks running now (`[limits] checks` at most; more are answered 503 at once).
static CHECKS_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// What a page sends and is sent: the policy that keeps it to this server and the local SAMP
/// hub (Aladin Lite compiles its WebAssembly, which it carries as a `data:` URL: `wasm-unsafe-eval`).
/// `{issuer}` is the OpenID Connect issuer's origin when one is configured (the page reads
/// its discovery document and exchanges the login's code at its token endpoint), else nothing.
const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; worker-src 'self' blob:; \
    connect-src 'self' data: blob: http://localhost:21012 http://127.0.0.1:21012{issuer}; \
    frame-ancestors 'self'; base-uri 'self'; form-action 'self'";

/// The origin (`scheme://host[:port]`) of an issuer URL, when it is plain enough to stand in
/// a Content-Security-Policy.
fn issuer_origin(issuer: &str) -> Option<String> {
    let (scheme, rest) = issuer.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    (!host.is_empty() && host.chars().all(plain)).then(|| format!("{scheme}://{host}"))
}

/// The page's policy: [`CSP`] with the configured issuer's origin, if any.
fn csp(req: &HttpRequest) -> String {
    let issuer = req
        .app_data::<web::Data<crate::protocols::vospace::VoSpace>>()
        .and_then(|v| v.config.oidc.as_ref())
        .and_then(|o| issuer_origin(&o.issuer))
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    CSP.replace("{issuer}", &issuer)
}

/// The portal's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(page))
        .route("/portal/api/tables", web::get().to(tables))
        .route(
            "/portal/api/resolve",
            web::get().to(super::resolver::resolve),
        )
        .route("/portal/api/check", web::post().to(check))
        .route("/portal/api/me", web::get().to(me))
        .route("/portal/{file:.+}", web::get().to(file));
}

/// The ETag of an asset: the MD5 of its bytes (computed once).
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        use md5::Digest;
        ASSETS
            .iter()
            .map(|a| {
                let hex: String = md5::Md5::digest(a.bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("\"{hex}\"")
            })
            .collect()
    });
    &tags[index]
}

/// An asset as a response: from the binary (with its ETag, answering `If-None-Match`), or from
/// `VOSTOK_PORTAL_DIR` when set.
fn serve(index: usize, req: &HttpRequest) -> HttpResponse {
    let a = &ASSETS[index];
    let mut res = HttpResponse::Ok();
    res.content_type(a.content_type)
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if a.content_type == HTML {
        res.insert_header(("Content-Security-Policy", csp(req)));
    }
    if let Some(dir) = std::env::var_os("VOSTOK_PORTAL_DIR") {
        let path = std::path::Path::new(&dir).join(a.name);
        return match std::fs::read(&path) {
            Ok(bytes) => res.insert_header(("Cache-Control", "no-store")).body(bytes),
            Err(e) => HttpResponse::NotFound().content_type(TEXT).body(format!(
                "VOSTOK_PORTAL_DIR: cannot read {}: {e}",
                path.display()
            )),
        };
    }
    let tag = etag(index);
    let cache = if a.versioned {
        "public, max-age=31536000, immutable"
    } else {
        // Revalidated at each use: the page follows the binary it comes from.
        "no-cache"
    };
    res.insert_header(("Cache-Control", cache))
        .insert_header((header::ETAG, tag));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if matches {
        let mut not_modified = HttpResponse::NotModified();
        not_modified
            .insert_header(("Cache-Control", cache))
            .insert_header((header::ETAG, tag));
        return not_modified.finish();
    }
    res.body(a.bytes)
}

/// `GET /`: the portal's page.
async fn page(req: HttpRequest) -> HttpResponse {
    serve(0, &req)
}

/// `GET /portal/{file}`: one of the page's files.
async fn file(path: web::Path<String>, req: HttpRequest) -> HttpResponse {
    match ASSETS.iter().position(|a| a.name == path.as_str()) {
        Some(i) => serve(i, &req),
        None => HttpResponse::NotFound()
            .content_type(TEXT)
            .body("no such file in the portal\n"),
    }
}

/// `GET /portal/api/tables`: every table, its columns and the services that serve it.
async fn tables(engine: web::Data<Engine>) -> HttpResponse {
    let mut schemas = Vec::new();
    let snapshot = engine.snapshot();
    for s in &snapshot.metadata().schemas {
        let mut tables = Vec::new();
        for t in &s.tables {
            let hats = snapshot.table(&t.name);
            let mut services = vec![json!({"kind": "TAP", "url": "tap"})];
            if hats.is_some() {
                services.push(json!({"kind": "SCS", "url": format!("scs/{}", t.name)}));
            }
            if t.name.eq_ignore_ascii_case("ivoa.obscore") {
                services.push(json!({"kind": "SIA", "url": "sia/v2/query"}));
                services.push(json!({"kind": "SSA", "url": "ssa"}));
            }
            let position = hats.map(|h| {
                let m = &h.catalog().meta.table;
                json!({"ra": m.ra, "dec": m.dec, "id": m.id})
            });
            let title = hats.and_then(|h| h.catalog().meta.table.title.clone());
            let columns: Vec<Value> = t
                .columns
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "description": c.description,
                        "unit": c.unit,
                        "ucd": c.ucd,
                        "datatype": c.datatype,
                        "arraysize": c.arraysize,
                        "principal": c.principal,
                        "indexed": c.indexed,
                    })
                })
                .collect();
            tables.push(json!({
                "name": t.name,
                "title": title,
                "description": t.description,
                "type": t.table_type,
                "rows": t.rows,
                "position": position,
                "services": services,
                "columns": columns,
            }));
        }
        schemas.push(json!({"name": s.name, "description": s.description, "tables": tables}));
    }
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-cache"))
        .json(json!({ "schemas": schemas }))
}

/// `GET /portal/api/me`: the caller, as the page needs it to log in: `{"user": null, …}` for
/// an anonymous caller, `{"user", "groups", "quota_bytes", "home", "authority", …}` for a
/// token's user, 401 `{"error"}` for a token that names no one. `vospace` says whether the
/// server keeps users' files; `oidc` names the configured issuer and the client id the page
/// logs in as (`audience`, the client id the issuer gives vostok), or is null.
async fn me(req: HttpRequest) -> HttpResponse {
    let vs = req.app_data::<web::Data<crate::protocols::vospace::VoSpace>>();
    let oidc = vs
        .and_then(|v| v.config.oidc.as_ref())
        .map(|o| json!({"issuer": o.issuer, "client_id": o.audience}));
    let authority = vs.map(|v| v.authority.clone());
    let answer = |status: actix_web::http::StatusCode, body: Value| {
        HttpResponse::build(status)
            .insert_header(("Cache-Control", "no-store"))
            .json(body)
    };
    match crate::identity::caller(&req).await {
        Ok(None) => answer(
            actix_web::http::StatusCode::OK,
            json!({"user": null, "vospace": vs.is_some(), "authority": authority, "oidc": oidc}),
        ),
        Ok(Some(u)) => {
            let home = authority
                .as_ref()
                .map(|a| format!("vos://{a}!vospace/{}", u.name));
            answer(
                actix_web::http::StatusCode::OK,
                json!({
                    "user": u.name,
                    "groups": u.groups,
                    "quota_bytes": u.quota_bytes,
                    "home": home,
                    "vospace": vs.is_some(),
                    "authority": authority,
                    "oidc": oidc,
                }),
            )
        }
        Err(f) => answer(
            actix_web::http::StatusCode::UNAUTHORIZED,
            json!({"error": f.to_string()}),
        ),
    }
}

/// Frees a place among the running checks when dropped.
struct CheckPlace;

impl Drop for CheckPlace {
    fn drop(&mut self) {
        CHECKS_RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

fn check_answer(status: actix_web::http::StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

/// The request's body, read up to `max` bytes; `None` when it is longer (or breaks off).
async fn body_within(mut payload: web::Payload, max: usize) -> Option<Vec<u8>> {
    use futures::StreamExt;
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.ok()?;
        if body.len() + chunk.len() > max {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// `POST /portal/api/check`: the body's ADQL checked against the server's tables, as `vostok
/// adql check --data-dir` checks it (parsed, validated and planned; never executed).
/// Answers `{"ok": true}` or `{"ok": false, "kind", "message", "line", "column"}`. Bounded
/// by `[limits]`: `check_kb` of text (413 beyond), `checks` at once (503 beyond),
/// `check_seconds` each.
async fn check(engine: web::Data<Engine>, payload: web::Payload) -> HttpResponse {
    use actix_web::http::StatusCode;
    let limits = engine.admission();
    let (max_kb, max_running, seconds) = (
        limits.check_kb,
        limits.checks.max(1),
        limits.check_seconds.max(1),
    );
    let Some(body) = body_within(payload, max_kb.saturating_mul(1024)).await else {
        return check_answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"ok": false, "kind": "request",
                   "message": format!("the query is longer than the {max_kb} KiB checked \
                                       ([limits] check_kb)")}),
        );
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return check_answer(
            StatusCode::BAD_REQUEST,
            json!({"ok": false, "kind": "request", "message": "the query is not UTF-8 text"}),
        );
    };
    if text.trim().is_empty() {
        return check_answer(
            StatusCode::BAD_REQUEST,
            json!({"ok": false, "kind": "request", "message": "the query is empty"}),
        );
    }
    if CHECKS_RUNNING.fetch_add(1, Ordering::SeqCst) >= max_running {
        CHECKS_RUNNING.fetch_sub(1, Ordering::SeqCst);
        return check_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ok": false, "kind": "busy",
                   "message": format!("{max_running} checks are running ([limits] checks); retry")}),
        );
    }
    let place = CheckPlace;
    let session = engine.session();
    let text = text.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Parsing and planning recurse over the query tree: on a thread with a large stack (as
    // the query runtime's), not on an HTTP worker's.
    let spawned = std::thread::Builder::new()
        .name("vostok-adql-check".into())
        .stack_size(16 * 1024 * 1024)
        .spawn(move || {
            let _place = place;
            let result = match tokio::runtime::Builder::new_current_thread().build() {
                Ok(rt) => rt.block_on(adql::plan(&session, &text)).map(|_| ()),
                Err(e) => Err(adql::AdqlError {
                    kind: adql::ErrorKind::Semantic,
                    message: format!("cannot check now: {e}"),
                    line: None,
                    column: None,
                }),
            };
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return check_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ok": false, "kind": "busy", "message": format!("cannot check now: {e}")}),
        );
    }
    match tokio::time::timeout(Duration::from_secs(seconds), rx).await {
        Ok(Ok(Ok(()))) => check_answer(StatusCode::OK, json!({"ok": true})),
        Ok(Ok(Err(e))) => check_answer(
            StatusCode::OK,
            json!({
                "ok": false,
                "kind": match e.kind {
                    adql::ErrorKind::Syntax => "syntax",
                    adql::ErrorKind::Semantic => "semantic",
                },
                "message": e.message,
                "line": e.line,
                "column": e.column,
            }),
        ),
        Ok(Err(_)) => check_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"ok": false, "kind": "internal", "message": "the check failed"}),
        ),
        Err(_) => check_answer(
            StatusCode::OK,
            json!({"ok": false, "kind": "timeout",
                   "message": format!("checking took longer than {seconds} s ([limits] check_seconds)")}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_origins() {
        assert_eq!(
            issuer_origin("https://login.example.org/realms/vo").as_deref(),
            Some("https://login.example.org")
        );
        assert_eq!(
            issuer_origin("http://127.0.0.1:8081").as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(issuer_origin("https://a.org; script-src *"), None);
        assert_eq!(issuer_origin("ftp://a.org"), None);
        assert_eq!(issuer_origin("a.org"), None);
    }

    #[test]
    fn every_asset_has_a_distinct_name_and_a_body() {
        let mut names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        assert!(ASSETS.iter().all(|a| !a.bytes.is_empty()));
        assert_eq!(ASSETS[0].name, "index.html");
        // Versioned names are the only ones cached for good.
        for a in ASSETS {
            assert_eq!(
                a.versioned,
                a.name.contains("-3.8.2/") || a.name.contains("-1.0.3/")
            );
        }
    }
}
