//! Asynchronous TAP at `/tap/async`: the UWS 1.1 resources (job list, job, phase, quote,
//! executionduration, destruction, error, parameters, results, owner) over the job service
//! in `src/jobs`. Every XML document here validates against the UWS 1.1 schema
//! (conformance/test_async.py checks each with xmllint).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;

use crate::jobs::runner::JobError;
use crate::jobs::{format_time, parse_time, Job, JobFilter, Jobs, Phase, UwsConfig};
use crate::params::Params;
use crate::server::AppState;
use crate::upload::UploadFile;
use crate::vosi::esc;

/// Parameters that steer the job rather than the query: applied, not stored.
const CONTROL: [&str; 4] = ["PHASE", "EXECUTIONDURATION", "DESTRUCTION", "ACTION"];

/// Registers the `/tap/async` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tap/async", web::get().to(list))
        // TAP_UPLOAD: multipart/form-data POSTs carry tables (src/upload.rs); they are kept
        // with the job (jobs/<id>/uploads/) so that it can run, or run again, later.
        .route("/tap/async", multipart().to(create_multipart))
        .route("/tap/async/", multipart().to(create_multipart))
        .route(
            "/tap/async/{id}/parameters",
            multipart().to(post_parameters_multipart),
        )
        .route("/tap/async", web::post().to(create))
        .route("/tap/async/", web::get().to(list))
        .route("/tap/async/", web::post().to(create))
        .route("/tap/async/{id}", web::get().to(job))
        .route("/tap/async/{id}", web::post().to(post_job))
        .route("/tap/async/{id}", web::delete().to(delete_job))
        .route("/tap/async/{id}/phase", web::get().to(phase))
        .route("/tap/async/{id}/phase", web::post().to(post_phase))
        .route("/tap/async/{id}/quote", web::get().to(quote))
        .route(
            "/tap/async/{id}/executionduration",
            web::get().to(execution_duration),
        )
        .route(
            "/tap/async/{id}/executionduration",
            web::post().to(post_execution_duration),
        )
        .route("/tap/async/{id}/destruction", web::get().to(destruction))
        .route(
            "/tap/async/{id}/destruction",
            web::post().to(post_destruction),
        )
        .route("/tap/async/{id}/error", web::get().to(error))
        .route("/tap/async/{id}/parameters", web::get().to(parameters))
        .route(
            "/tap/async/{id}/parameters",
            web::post().to(post_parameters),
        )
        .route("/tap/async/{id}/results", web::get().to(results))
        .route("/tap/async/{id}/results/result", web::get().to(result))
        .route("/tap/async/{id}/owner", web::get().to(owner));
}

/// TAPRegExt `retentionPeriod` and `executionDuration` for the TAP capability (in schema
/// order: after `uploadMethod`, before `outputLimit`).
pub fn capability_limits(cfg: &UwsConfig) -> String {
    format!(
        "    <retentionPeriod>\n      <default>{}</default>\n      <hard>{}</hard>\n    </retentionPeriod>\n\
    <executionDuration>\n      <default>{}</default>\n      <hard>{}</hard>\n    </executionDuration>\n",
        cfg.destruction.min(cfg.max_destruction),
        cfg.max_destruction,
        cfg.execution_duration.min(cfg.max_execution_duration),
        cfg.max_execution_duration,
    )
}

/// A POST route taken by multipart/form-data requests only.
fn multipart() -> actix_web::Route {
    web::post().guard(actix_web::guard::fn_guard(|ctx| {
        crate::upload::is_multipart(ctx.head().headers())
    }))
}

/// The parameters (query string, then parts) and file parts of a multipart request.
async fn read_form(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Vec<(String, String)>, Vec<UploadFile>), Fail> {
    let limits = crate::upload::UploadLimits::from_config(&state.config.tap);
    let form = crate::upload::read_multipart(req, payload, &limits)
        .await
        .map_err(|e| fail(e.status, e.message))?;
    let mut pairs = Params::from_request(req, &[]).pairs().to_vec();
    pairs.extend(form.params);
    Ok((Params::from_pairs(pairs).pairs().to_vec(), form.files))
}

/// A request that failed: its status and a plain-text message.
#[derive(Debug)]
struct Fail {
    status: StatusCode,
    message: String,
}

fn fail(status: StatusCode, message: impl Into<String>) -> Fail {
    Fail {
        status,
        message: message.into(),
    }
}

type Reply = Result<HttpResponse, Fail>;

fn text(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(body.into())
}

fn xml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}

fn bad_request(message: impl Into<String>) -> Fail {
    fail(StatusCode::BAD_REQUEST, message)
}

fn job_error(e: JobError) -> Fail {
    let status = match &e {
        JobError::NotFound(_) => StatusCode::NOT_FOUND,
        JobError::Conflict(_) => StatusCode::CONFLICT,
        JobError::Internal(m) => {
            tracing::error!("asynchronous jobs: {m}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    fail(status, e.to_string())
}

fn jobs(state: &AppState) -> Result<&Arc<Jobs>, Fail> {
    state.jobs.as_ref().ok_or_else(|| {
        fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "asynchronous jobs are not available in this process",
        )
    })
}

fn reply(r: Reply) -> HttpResponse {
    r.unwrap_or_else(|f| text(f.status, f.message))
}

fn list_url(state: &AppState, req: &HttpRequest) -> String {
    format!("{}/tap/async", state.base_url(req))
}

fn job_url(state: &AppState, req: &HttpRequest, id: &str) -> String {
    format!("{}/{id}", list_url(state, req))
}

/// Non-negative whole seconds.
fn parse_seconds(name: &str, v: &str) -> Result<u64, Fail> {
    v.trim().parse::<u64>().map_err(|_| {
        bad_request(format!(
            "{name} must be a whole number of seconds, not '{v}'"
        ))
    })
}

fn parse_destruction(v: &str) -> Result<i64, Fail> {
    parse_time(v).ok_or_else(|| {
        bad_request(format!(
            "DESTRUCTION must be an ISO 8601 date-time (e.g. 2030-01-01T00:00:00Z), not '{v}'"
        ))
    })
}

// ---------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------

const NAMESPACES: &str = "xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\" \
xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

fn time_element(out: &mut String, name: &str, t: Option<i64>) {
    match t {
        Some(t) => out.push_str(&format!("  <uws:{name}>{}</uws:{name}>\n", format_time(t))),
        None => out.push_str(&format!("  <uws:{name} xsi:nil=\"true\"/>\n")),
    }
}

fn parameters_body(job: &Job, indent: &str) -> String {
    let mut out = format!("{indent}<uws:parameters>\n");
    for (k, v) in &job.parameters {
        out.push_str(&format!(
            "{indent}  <uws:parameter id=\"{}\">{}</uws:parameter>\n",
            esc(&k.to_ascii_lowercase()),
            esc(v)
        ));
    }
    out.push_str(&format!("{indent}</uws:parameters>\n"));
    out
}

fn results_body(job: &Job, job_url: &str, indent: &str) -> String {
    match (&job.result, job.phase) {
        (Some(r), Phase::Completed) => format!(
            "{indent}<uws:results>\n{indent}  <uws:result id=\"result\" xlink:type=\"simple\" \
             xlink:href=\"{}/results/result\" size=\"{}\" mime-type=\"{}\"/>\n{indent}</uws:results>\n",
            esc(job_url),
            r.size,
            esc(&r.content_type)
        ),
        _ => format!("{indent}<uws:results/>\n"),
    }
}

/// The job document (UWS `uws:job`).
pub fn job_document(job: &Job, job_url: &str) -> String {
    let mut out = format!("{XML_DECL}<uws:job {NAMESPACES} version=\"1.1\">\n");
    out.push_str(&format!("  <uws:jobId>{}</uws:jobId>\n", esc(&job.id)));
    if let Some(r) = &job.run_id {
        out.push_str(&format!("  <uws:runId>{}</uws:runId>\n", esc(r)));
    }
    match &job.owner {
        Some(o) => out.push_str(&format!("  <uws:ownerId>{}</uws:ownerId>\n", esc(o))),
        None => out.push_str("  <uws:ownerId xsi:nil=\"true\"/>\n"),
    }
    out.push_str(&format!(
        "  <uws:phase>{}</uws:phase>\n",
        job.phase.as_str()
    ));
    out.push_str("  <uws:quote xsi:nil=\"true\"/>\n");
    time_element(&mut out, "creationTime", Some(job.creation_time));
    time_element(&mut out, "startTime", job.start_time);
    time_element(&mut out, "endTime", job.end_time);
    out.push_str(&format!(
        "  <uws:executionDuration>{}</uws:executionDuration>\n",
        job.execution_duration.min(i32::MAX as u64)
    ));
    time_element(&mut out, "destruction", Some(job.destruction));
    out.push_str(&parameters_body(job, "  "));
    out.push_str(&results_body(job, job_url, "  "));
    if let (Phase::Error, Some(msg)) = (job.phase, &job.error) {
        out.push_str(&format!(
            "  <uws:errorSummary type=\"fatal\" hasDetail=\"true\">\n    <uws:message>{}</uws:message>\n  </uws:errorSummary>\n",
            esc(msg)
        ));
    }
    out.push_str("</uws:job>\n");
    out
}

/// The job list (UWS `uws:jobs`).
pub fn job_list(jobs: &[Job], list_url: &str) -> String {
    let mut out = format!("{XML_DECL}<uws:jobs {NAMESPACES} version=\"1.1\">\n");
    for j in jobs {
        out.push_str(&format!(
            "  <uws:jobref id=\"{id}\" xlink:type=\"simple\" xlink:href=\"{}/{id}\">\n    <uws:phase>{}</uws:phase>\n",
            esc(list_url),
            j.phase.as_str(),
            id = esc(&j.id),
        ));
        if let Some(r) = &j.run_id {
            out.push_str(&format!("    <uws:runId>{}</uws:runId>\n", esc(r)));
        }
        out.push_str("    <uws:ownerId xsi:nil=\"true\"/>\n");
        out.push_str(&format!(
            "    <uws:creationTime>{}</uws:creationTime>\n  </uws:jobref>\n",
            format_time(j.creation_time)
        ));
    }
    out.push_str("</uws:jobs>\n");
    out
}

fn standalone(body: String) -> String {
    // The element alone, with the namespaces on it.
    let body = body.trim_start();
    let (open, rest) = match body.find(['>', '/']) {
        Some(i) => body.split_at(i),
        None => (body, ""),
    };
    format!("{XML_DECL}{open} {NAMESPACES}{rest}")
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

/// `GET /tap/async`: the job list, filtered by PHASE (repeatable), AFTER and LAST.
async fn list(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    reply(list_inner(&state, &req).await)
}

async fn list_inner(state: &AppState, req: &HttpRequest) -> Reply {
    let jobs = jobs(state)?;
    let p = Params::from_request(req, &[]);
    let mut filter = JobFilter::default();
    for v in p.get_all("PHASE") {
        for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let phase =
                Phase::parse(name).ok_or_else(|| bad_request(format!("unknown PHASE '{name}'")))?;
            filter.phases.push(phase);
        }
    }
    if let Some(a) = p.get_nonempty("AFTER") {
        filter.after = Some(parse_time(a).ok_or_else(|| {
            bad_request(format!("AFTER must be an ISO 8601 date-time, not '{a}'"))
        })?);
    }
    if let Some(l) = p.get_nonempty("LAST") {
        filter.last =
            Some(l.parse::<u64>().map_err(|_| {
                bad_request(format!("LAST must be a non-negative integer, not '{l}'"))
            })?);
    }
    let found = jobs.list(&filter).await.map_err(job_error)?;
    Ok(xml(job_list(&found, &list_url(state, req))))
}

/// `POST /tap/async`: creates a job from the TAP parameters (PHASE=RUN starts it) and
/// redirects to it.
async fn create(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    reply(create_inner(&state, &req, &body).await)
}

/// `POST /tap/async` as multipart/form-data: tables for UPLOAD in file parts.
async fn create_multipart(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    reply(
        async {
            let (pairs, files) = read_form(&state, &req, payload).await?;
            create_job(&state, &req, Params::from_pairs(pairs), files).await
        }
        .await,
    )
}

async fn create_inner(state: &AppState, req: &HttpRequest, body: &[u8]) -> Reply {
    create_job(state, req, Params::from_request(req, body), Vec::new()).await
}

async fn create_job(
    state: &AppState,
    req: &HttpRequest,
    p: Params,
    files: Vec<UploadFile>,
) -> Reply {
    let jobs = jobs(state)?;
    let run = match p.get_nonempty("PHASE") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("RUN") => true,
        Some(v) => {
            return Err(bad_request(format!(
                "PHASE={v} cannot be given when creating a job; use PHASE=RUN"
            )))
        }
    };
    let duration = p
        .get_nonempty("EXECUTIONDURATION")
        .map(|v| parse_seconds("EXECUTIONDURATION", v))
        .transpose()?;
    let destruction = p
        .get_nonempty("DESTRUCTION")
        .map(parse_destruction)
        .transpose()?;
    let parameters: Vec<(String, String)> = p
        .pairs()
        .iter()
        .filter(|(k, _)| !CONTROL.contains(&k.as_str()))
        .cloned()
        .collect();
    // The owner: the VOSpace user of the request's token (anonymous without one). `DEST`
    // (a vos:// node, as CADC's TAP services have it) needs one who may write there.
    let owner = match &state.vospace {
        Some(store) => crate::vospace::http::caller(store, req)
            .await
            .map_err(|f| fail(StatusCode::UNAUTHORIZED, f.to_string()))?,
        None => None,
    };
    if let Some(dest) = p.get_nonempty("DEST") {
        let store = state
            .vospace
            .as_ref()
            .ok_or_else(|| bad_request("DEST needs the server's VOSpace"))?;
        crate::vospace::http::writable_target(
            store,
            &state.config.service.authority,
            owner.as_ref(),
            dest,
        )
        .await
        .map_err(|f| {
            fail(
                StatusCode::from_u16(f.status()).unwrap_or(StatusCode::BAD_REQUEST),
                format!("DEST={dest}: {f}"),
            )
        })?;
    }
    let id = jobs.new_id();
    let uploads = jobs.store_uploads(&id, files).await.map_err(job_error)?;
    let job = jobs
        .create(id, owner.map(|u| u.name), parameters, uploads, false)
        .await
        .map_err(job_error)?;
    if let Some(d) = duration {
        jobs.set_execution_duration(&job.id, d)
            .await
            .map_err(job_error)?;
    }
    if let Some(d) = destruction {
        jobs.set_destruction(&job.id, d).await.map_err(job_error)?;
    }
    if run {
        jobs.run(&job.id).await.map_err(job_error)?;
    }
    Ok(see_other(&job_url(state, req, &job.id)))
}

/// `GET /tap/async/{id}`: the job document; `WAIT=n` (and `PHASE`) block until the phase
/// changes or n seconds pass (at most `[uws] max_wait`; -1: that maximum).
async fn job(state: web::Data<AppState>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    reply(job_inner(&state, &req, &id).await)
}

async fn job_inner(state: &AppState, req: &HttpRequest, id: &str) -> Reply {
    let jobs = jobs(state)?;
    let p = Params::from_request(req, &[]);
    let job = match p.get_nonempty("WAIT") {
        None => jobs.get(id).await,
        Some(w) => {
            let n: i64 = w.parse().map_err(|_| {
                bad_request(format!(
                    "WAIT must be an integer number of seconds, not '{w}'"
                ))
            })?;
            let secs = if n < 0 {
                jobs.config().max_wait
            } else {
                n.unsigned_abs()
            };
            let seen = match p.get_nonempty("PHASE") {
                None => None,
                Some(v) => Some(
                    Phase::parse(v).ok_or_else(|| bad_request(format!("unknown PHASE '{v}'")))?,
                ),
            };
            jobs.wait(id, seen, secs).await
        }
    }
    .map_err(job_error)?;
    Ok(xml(job_document(&job, &job_url(state, req, id))))
}

/// `POST /tap/async/{id}`: ACTION=DELETE, or PHASE, EXECUTIONDURATION, DESTRUCTION.
async fn post_job(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    reply(post_job_inner(&state, &req, &id, &body).await)
}

async fn post_job_inner(state: &AppState, req: &HttpRequest, id: &str, body: &[u8]) -> Reply {
    let jobs = jobs(state)?;
    let p = Params::from_request(req, body);
    if let Some(a) = p.get_nonempty("ACTION") {
        if !a.eq_ignore_ascii_case("DELETE") {
            return Err(bad_request(format!(
                "ACTION={a}: the only action is DELETE"
            )));
        }
        jobs.delete(id).await.map_err(job_error)?;
        return Ok(deleted(state, req));
    }
    let mut did = false;
    if let Some(v) = p.get_nonempty("EXECUTIONDURATION") {
        let secs = parse_seconds("EXECUTIONDURATION", v)?;
        jobs.set_execution_duration(id, secs)
            .await
            .map_err(job_error)?;
        did = true;
    }
    if let Some(v) = p.get_nonempty("DESTRUCTION") {
        let at = parse_destruction(v)?;
        jobs.set_destruction(id, at).await.map_err(job_error)?;
        did = true;
    }
    if let Some(v) = p.get_nonempty("PHASE") {
        change_phase(jobs, id, v).await?;
        did = true;
    }
    if !did {
        return Err(bad_request(
            "nothing to do: POST ACTION=DELETE, PHASE, EXECUTIONDURATION or DESTRUCTION",
        ));
    }
    Ok(see_other(&job_url(state, req, id)))
}

/// The answer to a deletion. UWS 1.1 §2.2.3.2 asks for a 303 to the job list, and STILTS
/// (UwsJob.postDelete, used by taplint) rejects anything but a 303. But a client that follows
/// the redirect then downloads the whole job list, which on a busy service is large and slow:
/// pyvo did exactly that until it stopped following it (astropy/pyvo#535, "Async TAP appears
/// to hang", fixed by deleting with allow_redirects=False). So the 303 points at the job list
/// filtered to nothing, `?LAST=0`: still the job list resource, an empty and cheap document
/// for the clients that follow, and a plain 303 for those that do not.
fn deleted(state: &AppState, req: &HttpRequest) -> HttpResponse {
    see_other(&format!("{}?LAST=0", list_url(state, req)))
}

/// `DELETE /tap/async/{id}`.
async fn delete_job(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    reply(
        async {
            let jobs = jobs(&state)?;
            jobs.delete(&id).await.map_err(job_error)?;
            Ok(deleted(&state, &req))
        }
        .await,
    )
}

async fn change_phase(jobs: &Jobs, id: &str, v: &str) -> Result<(), Fail> {
    if v.eq_ignore_ascii_case("RUN") {
        jobs.run(id).await.map_err(job_error)?;
    } else if v.eq_ignore_ascii_case("ABORT") {
        jobs.abort(id).await.map_err(job_error)?;
    } else {
        return Err(bad_request(format!(
            "PHASE={v}: a job's phase can be set to RUN or ABORT"
        )));
    }
    Ok(())
}

async fn get_job(state: &AppState, id: &str) -> Result<Job, Fail> {
    jobs(state)?.get(id).await.map_err(job_error)
}

/// `GET /tap/async/{id}/phase`.
async fn phase(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    reply(
        get_job(&state, &id)
            .await
            .map(|j| text(StatusCode::OK, j.phase.as_str())),
    )
}

/// `POST /tap/async/{id}/phase`: PHASE=RUN or PHASE=ABORT.
async fn post_phase(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    reply(
        async {
            let jobs = jobs(&state)?;
            let p = Params::from_request(&req, &body);
            let v = p
                .get_nonempty("PHASE")
                .ok_or_else(|| bad_request("POST PHASE=RUN or PHASE=ABORT"))?;
            change_phase(jobs, &id, v).await?;
            Ok(see_other(&job_url(&state, &req, &id)))
        }
        .await,
    )
}

/// `GET /tap/async/{id}/quote`: when the job will be done is not predicted (empty, as the
/// job document's nil quote).
async fn quote(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    reply(get_job(&state, &id).await.map(|_| text(StatusCode::OK, "")))
}

/// `GET /tap/async/{id}/executionduration`.
async fn execution_duration(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    reply(get_job(&state, &id).await.map(|j| {
        text(
            StatusCode::OK,
            j.execution_duration.min(i32::MAX as u64).to_string(),
        )
    }))
}

/// `POST /tap/async/{id}/executionduration`: while PENDING; 0 and values above the maximum
/// become the maximum.
async fn post_execution_duration(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    reply(
        async {
            let jobs = jobs(&state)?;
            let p = Params::from_request(&req, &body);
            let v = p
                .get_nonempty("EXECUTIONDURATION")
                .ok_or_else(|| bad_request("POST EXECUTIONDURATION=<seconds>"))?;
            let secs = parse_seconds("EXECUTIONDURATION", v)?;
            jobs.set_execution_duration(&id, secs)
                .await
                .map_err(job_error)?;
            Ok(see_other(&job_url(&state, &req, &id)))
        }
        .await,
    )
}

/// `GET /tap/async/{id}/destruction`.
async fn destruction(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    reply(
        get_job(&state, &id)
            .await
            .map(|j| text(StatusCode::OK, format_time(j.destruction))),
    )
}

/// `POST /tap/async/{id}/destruction`: any time; no later than `max_destruction` after
/// the job's creation.
async fn post_destruction(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    reply(
        async {
            let jobs = jobs(&state)?;
            let p = Params::from_request(&req, &body);
            let v = p
                .get_nonempty("DESTRUCTION")
                .ok_or_else(|| bad_request("POST DESTRUCTION=<ISO 8601 date-time>"))?;
            let at = parse_destruction(v)?;
            jobs.set_destruction(&id, at).await.map_err(job_error)?;
            Ok(see_other(&job_url(&state, &req, &id)))
        }
        .await,
    )
}

/// `GET /tap/async/{id}/error`: the DALI error document of a job in ERROR.
async fn error(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    reply(get_job(&state, &id).await.and_then(|j| {
        match (j.phase, &j.error) {
            (Phase::Error, Some(msg)) => Ok(HttpResponse::Ok()
                .content_type("application/x-votable+xml")
                .body(votable::error_document(msg))),
            _ => Err(fail(
                StatusCode::NOT_FOUND,
                format!("job {} is {}: it has no error", j.id, j.phase.as_str()),
            )),
        }
    }))
}

/// `GET /tap/async/{id}/parameters`.
async fn parameters(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    reply(
        get_job(&state, &id)
            .await
            .map(|j| xml(standalone(parameters_body(&j, "")))),
    )
}

/// `POST /tap/async/{id}/parameters`: changes parameters while PENDING.
async fn post_parameters(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    reply(
        async {
            let p = Params::from_request(&req, &body);
            set_parameters(&state, &req, &id, p.pairs().to_vec(), Vec::new()).await
        }
        .await,
    )
}

/// `POST /tap/async/{id}/parameters` as multipart/form-data (pyvo's `job.upload`).
async fn post_parameters_multipart(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    reply(
        async {
            let (pairs, files) = read_form(&state, &req, payload).await?;
            set_parameters(&state, &req, &id, pairs, files).await
        }
        .await,
    )
}

async fn set_parameters(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
    pairs: Vec<(String, String)>,
    files: Vec<UploadFile>,
) -> Reply {
    let jobs = jobs(state)?;
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| !CONTROL.contains(&k.as_str()))
        .collect();
    if pairs.is_empty() && files.is_empty() {
        return Err(bad_request("no parameters given"));
    }
    let job = jobs.get(id).await.map_err(job_error)?;
    if job.phase != Phase::Pending {
        return Err(fail(
            StatusCode::CONFLICT,
            format!(
                "job {id} is {}: its parameters can only be changed while it is PENDING",
                job.phase.as_str()
            ),
        ));
    }
    let uploads = jobs.store_uploads(id, files).await.map_err(job_error)?;
    jobs.set_parameters(id, pairs, uploads)
        .await
        .map_err(job_error)?;
    Ok(see_other(&job_url(state, req, id)))
}

/// `GET /tap/async/{id}/results`.
async fn results(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    reply(get_job(&state, &id).await.map(|j| {
        xml(standalone(results_body(
            &j,
            &job_url(&state, &req, &id),
            "",
        )))
    }))
}

/// `GET /tap/async/{id}/results/result`: the result file, streamed from object storage.
async fn result(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    reply(
        async {
            let jobs = jobs(&state)?;
            let job = jobs.get(&id).await.map_err(job_error)?;
            let stored = match (&job.result, job.phase) {
                (Some(r), Phase::Completed) => r.clone(),
                _ => {
                    return Err(fail(
                        StatusCode::NOT_FOUND,
                        format!("job {} is {}: it has no result", job.id, job.phase.as_str()),
                    ))
                }
            };
            let body = jobs.open_result(&stored).await.map_err(job_error)?;
            Ok(HttpResponse::Ok()
                .content_type(stored.content_type.as_str())
                .no_chunking(stored.size)
                .streaming(body.map(|r| r.map_err(actix_web::error::ErrorInternalServerError))))
        }
        .await,
    )
}

/// `GET /tap/async/{id}/owner`: jobs are anonymous here.
async fn owner(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    reply(
        get_job(&state, &id)
            .await
            .map(|j| text(StatusCode::OK, j.owner.unwrap_or_default())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobResult;

    fn job() -> Job {
        Job {
            id: "abc".into(),
            run_id: Some("r<1>".into()),
            owner: None,
            phase: Phase::Completed,
            creation_time: 1_700_000_000_000,
            start_time: Some(1_700_000_001_000),
            end_time: None,
            execution_duration: 60,
            destruction: 1_700_600_000_000,
            parameters: vec![("QUERY".into(), "SELECT a < 1 & b".into())],
            uploads: vec![],
            error: None,
            result: Some(JobResult {
                path: "jobs/abc/result.vot".into(),
                content_type: "application/x-votable+xml".into(),
                size: 10,
            }),
        }
    }

    #[test]
    fn documents_escape_and_name_the_result_result() {
        let d = job_document(&job(), "http://h/tap/async/abc");
        assert!(d.contains("<uws:runId>r&lt;1&gt;</uws:runId>"), "{d}");
        assert!(d.contains("<uws:parameter id=\"query\">SELECT a &lt; 1 &amp; b</uws:parameter>"));
        assert!(d.contains(
            "<uws:result id=\"result\" xlink:type=\"simple\" xlink:href=\"http://h/tap/async/abc/results/result\""
        ));
        assert!(d.contains("<uws:endTime xsi:nil=\"true\"/>"));
        assert!(d.contains("<uws:startTime>2023-11-14T22:13:21.000Z</uws:startTime>"));
        let p = standalone(parameters_body(&job(), ""));
        assert!(
            p.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<uws:parameters xmlns:uws=")
        );
        let r = standalone("<uws:results/>\n".into());
        assert!(r.contains("<uws:results xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\""));
        assert!(r.trim_end().ends_with("/>"), "{r}");
    }
}
