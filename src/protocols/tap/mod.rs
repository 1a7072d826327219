//! TAP 1.1 at `/tap`: a thin translation of DALI parameters into the shared query path.
//!
//! * [`sync`](self): `/tap/sync`, planned with [`prepare`] and streamed by the engine;
//! * [`jobs`]: `/tap/async`, the same query as a UWS job (the shared binding of
//!   `dali::uws`, with TAP's creation and parameter changes, and its [`jobs::TapExecutor`]);
//! * [`upload`]: `TAP_UPLOAD` tables (multipart parts, URLs, the caller's VOSpace files);
//! * [`capabilities`]: TAPRegExt, declared as data;
//! * [`examples`]: DALI examples; VOSI tables from `dali::vosi`.

pub mod capabilities;
pub mod examples;
pub mod jobs;
pub mod upload;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use vospace::{User, VoStore};
use votable::{Info, TableInfo};

use crate::dali::{self, DalError, Params, Service};
use crate::engine::{Engine, QueryRequest};
use crate::identity;

/// `[tap]` in vostok.toml: query limits (for every protocol) and uploads.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TapConfig {
    /// Rows returned when the client gives no MAXREC.
    pub default_maxrec: u64,
    /// Largest MAXREC honoured.
    pub hard_maxrec: u64,
    /// Seconds a synchronous query may run before it is stopped (0: no limit); longer
    /// queries belong in asynchronous jobs (`[uws]`).
    pub sync_timeout: u64,
    /// Largest total size in bytes of the tables uploaded with one query (TAP_UPLOAD; the
    /// `uploadLimit` of /tap/capabilities). Uploads are held in memory while the query runs.
    pub upload_max_bytes: u64,
    /// Largest number of rows of one uploaded table.
    pub upload_max_rows: u64,
    /// Hosts from which `UPLOAD=name,http(s)://host/...` tables may be fetched (exact host
    /// names, case-insensitive). Empty (the default): URL uploads are refused.
    pub upload_url_hosts: Vec<String>,
    /// Ports URL uploads may be fetched from.
    pub upload_url_ports: Vec<u16>,
    /// Whether URL uploads may reach loopback, private, link-local and other non-public
    /// addresses (what a listed host name resolves to is checked, on every redirect hop).
    pub upload_url_private: bool,
}

impl Default for TapConfig {
    fn default() -> Self {
        TapConfig {
            default_maxrec: 100_000,
            hard_maxrec: 10_000_000,
            sync_timeout: 600,
            upload_max_bytes: 64 * 1024 * 1024,
            upload_max_rows: 1_000_000,
            upload_url_hosts: Vec::new(),
            upload_url_ports: vec![80, 443],
            upload_url_private: false,
        }
    }
}

/// What TAP needs besides the engine (registered as application data).
pub struct Tap {
    /// `[tap]`.
    pub config: TapConfig,
    /// The service (authority, public base URL).
    pub service: Service,
    /// The users' space, for `vos://` uploads and DEST; `None` without VOSpace.
    pub vospace: Option<Arc<VoStore>>,
}

/// Registers the TAP routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tap", web::get().to(tap_root))
        .route("/tap/", web::get().to(tap_root))
        .route("/tap/sync", web::get().to(sync))
        // TAP_UPLOAD: multipart/form-data POSTs carry tables (upload.rs).
        .route("/tap/sync", upload::multipart_post().to(sync_multipart))
        .route("/tap/sync", web::post().to(sync))
        .route(
            "/tap/capabilities",
            web::get().to(capabilities::capabilities),
        )
        .route(
            "/tap/availability",
            web::get().to(dali::vosi::availability_response),
        )
        .route("/tap/examples", web::get().to(examples::examples))
        .route("/tap/tables", web::get().to(dali::vosi::tables))
        .route("/tap/tables/{name}", web::get().to(dali::vosi::table));
    jobs::routes(cfg);
}

/// `/tap` itself: a pointer for people, TAP clients use the resources below it.
async fn tap_root(svc: web::Data<Service>, req: HttpRequest) -> HttpResponse {
    let base = format!("{}/tap", svc.base_url(&req));
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(format!(
        "TAP 1.1 service. Point TOPCAT, pyvo or STILTS at {base}\n\n{base}/sync\n{base}/async\n{base}/capabilities\n{base}/tables\n{base}/availability\n"
    ))
}

/// `/tap/sync`: REQUEST=doQuery, LANG=ADQL, QUERY, RESPONSEFORMAT|FORMAT, MAXREC.
async fn sync(
    engine: web::Data<Engine>,
    tap: web::Data<Tap>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    let body = match body {
        Ok(b) => b,
        // actix's own answer to an oversized body is a text/plain 413 that names no limit.
        Err(e) => {
            let status = e.as_response_error().status_code();
            let message = if status == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "the request body exceeds the limit of {} bytes (16 MiB) of a form-encoded \
                     request; send tables as UPLOAD files in multipart/form-data",
                    upload::PARAM_MAX_BYTES
                )
            } else {
                format!("the request body could not be read: {e}")
            };
            return DalError { status, message }.response();
        }
    };
    let params = Params::from_request(&req, &body);
    run_sync(&engine, &tap, &req, &params, &[])
        .await
        .unwrap_or_else(|e| e.response())
}

/// `/tap/sync` POSTed as multipart/form-data: the parameters are parts (and the query string),
/// tables for UPLOAD are file parts.
async fn sync_multipart(
    engine: web::Data<Engine>,
    tap: web::Data<Tap>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let limits = upload::UploadLimits::from_config(&tap.config);
    let form = match upload::read_multipart(&req, payload, &limits).await {
        Ok(f) => f,
        Err(e) => return e.response(),
    };
    let mut pairs = Params::from_request(&req, &[]).pairs().to_vec();
    pairs.extend(form.params);
    let params = Params::from_pairs(pairs);
    run_sync(&engine, &tap, &req, &params, &form.files)
        .await
        .unwrap_or_else(|e| e.response())
}

async fn run_sync(
    engine: &Engine,
    tap: &Tap,
    req: &HttpRequest,
    p: &Params,
    files: &[upload::UploadFile],
) -> Result<HttpResponse, DalError> {
    // `[tap] sync_timeout` bounds the whole request: planning counts.
    let limit = engine.sync_limit();
    let user = caller(req).await?;
    let q = crate::engine::timed(prepare(engine, tap, p, files, user.as_ref()), &limit)
        .await
        .map_err(DalError::bad_request)??;
    dali::execute_within(engine, q, limit).await
}

/// The user a TAP request authenticates as (for `UPLOAD` of `vos://` files); None when
/// anonymous; an error for a token that names no one.
async fn caller(req: &HttpRequest) -> Result<Option<User>, DalError> {
    identity::caller(req).await.map_err(|f| DalError {
        status: actix_web::http::StatusCode::UNAUTHORIZED,
        message: f.to_string(),
    })
}

/// Checks the TAP query parameters and plans the query: what `/sync` and asynchronous jobs
/// share. `files` are the request's file parts (`upload::read_multipart`): the tables its
/// UPLOAD parameters name are `TAP_UPLOAD.<name>` for this query only; `user` reads `vos://`
/// uploads.
pub async fn prepare(
    engine: &Engine,
    tap: &Tap,
    p: &Params,
    files: &[upload::UploadFile],
    user: Option<&User>,
) -> Result<QueryRequest, DalError> {
    if let Some(r) = p.get_nonempty("REQUEST") {
        if !r.eq_ignore_ascii_case("doQuery") {
            return Err(DalError::bad_request(format!(
                "REQUEST={r} is not supported; use REQUEST=doQuery"
            )));
        }
    }
    if let Some(lang) = p.get_nonempty("LANG") {
        let l = lang.to_ascii_uppercase();
        if !(l == "ADQL" || l.starts_with("ADQL-2.")) {
            return Err(DalError::bad_request(format!(
                "LANG={lang} is not supported; use LANG=ADQL"
            )));
        }
    }
    let query = p
        .get_nonempty("QUERY")
        .ok_or_else(|| DalError::bad_request("the QUERY parameter is missing"))?;
    let format = dali::parse_format(
        p.get_nonempty("RESPONSEFORMAT")
            .or_else(|| p.get_nonempty("FORMAT")),
    )?;
    let maxrec = dali::parse_maxrec(p.get_nonempty("MAXREC"), engine.limits())?;
    let session = upload::query_session(engine, tap, p, files, user).await?;
    let plan = engine.plan_adql(session, query.to_string()).await?;
    let mut infos = vec![Info::new("QUERY", query), Info::new("LANG", "ADQL")];
    infos.extend(dali::maxrec_note(p.get_nonempty("MAXREC"), engine.limits()));
    // A result with ObsCore's obs_publisher_did links each row to DataLink, as SIA's does.
    let (schema, extra_resources) = datalink_links(&plan, &tap.service);
    Ok(QueryRequest {
        plan,
        maxrec,
        format,
        info: TableInfo {
            infos,
            table_name: Some("result".into()),
            extra_resources,
        },
        schema,
    })
}

/// When the result has a column that is ObsCore's `obs_publisher_did` (by its utype), the
/// output schema with that column's VOTable ID set and a DataLink service descriptor for it.
fn datalink_links(
    plan: &datafusion::logical_expr::LogicalPlan,
    svc: &Service,
) -> (
    Option<datafusion::arrow::datatypes::SchemaRef>,
    Option<String>,
) {
    let base = plan.schema().as_arrow();
    let is_did = |f: &datafusion::arrow::datatypes::Field| {
        f.metadata().get("utype").map(String::as_str) == Some("obscore:Curation.PublisherDID")
    };
    let Some(did) = base.fields().iter().find(|f| is_did(f)) else {
        return (None, None);
    };
    let id = "obs_publisher_did";
    if did.name() != id && base.fields().iter().any(|f| f.name() == id) {
        return (None, None); // another column holds the name the descriptor refers to
    }
    let fields: Vec<datafusion::arrow::datatypes::Field> = base
        .fields()
        .iter()
        .map(|f| {
            let mut f = f.as_ref().clone();
            if is_did(&f) {
                let mut md = f.metadata().clone();
                md.insert("ID".into(), id.into());
                f = f.with_metadata(md);
            }
            f
        })
        .collect();
    let descriptor = crate::products::datalink_descriptor(&svc.public_base());
    (
        Some(Arc::new(datafusion::arrow::datatypes::Schema::new(fields))),
        Some(descriptor),
    )
}
