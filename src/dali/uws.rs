//! The UWS 1.1 binding of asynchronous jobs, shared by every job kind: the job list, the job
//! and its resources (phase, quote, executionduration, destruction, error, parameters,
//! results, owner), each over the `uws` crate's job service. A protocol declares a
//! [`Binding`] (its kind and where its list lives), registers these routes with [`routes`],
//! and adds its own job creation (and, for TAP, parameter changes).
//!
//! Ownership, one rule for every kind: a request first finds the job with
//! [`uws::Jobs::get_for`] as its caller; a job owned by someone else answers 404, the same as
//! a job that does not exist (identifiers are not an oracle). The job list shows the caller's
//! own jobs; an anonymous caller's list is empty (anonymous jobs are used through the URL their
//! creation answered, and never listed to others).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use uws::{format_time, parse_time, Job, JobError, JobFilter, Jobs, Phase};

use super::{Params, Service};

/// A job kind's UWS resources.
pub struct Binding {
    /// The kind of the jobs (`uws::Job::kind`).
    pub kind: &'static str,
    /// Path of the job list (`/tap/async`); jobs are at `<path>/<id>`.
    pub path: &'static str,
    /// The `/error` resource of a job in ERROR: its content type and body.
    pub error_document: fn(&str) -> (&'static str, String),
}

/// Parameters that steer the job rather than its work: applied, not stored.
pub const CONTROL: [&str; 4] = ["PHASE", "EXECUTIONDURATION", "DESTRUCTION", "ACTION"];

/// Registers the shared UWS routes of `b` (creation is the protocol's).
pub fn routes(cfg: &mut web::ServiceConfig, b: &'static Binding) {
    let p = b.path;
    cfg.route(
        p,
        web::get().to(move |req, jobs, svc| list(b, req, jobs, svc)),
    )
    .route(
        &format!("{p}/"),
        web::get().to(move |req, jobs, svc| list(b, req, jobs, svc)),
    )
    .route(
        &format!("{p}/{{id}}"),
        web::get().to(move |req, jobs, svc, id| job(b, req, jobs, svc, id)),
    )
    .route(
        &format!("{p}/{{id}}"),
        web::post().to(move |req, jobs, svc, id, body| post_job(b, req, jobs, svc, id, body)),
    )
    .route(
        &format!("{p}/{{id}}"),
        web::delete().to(move |req, jobs, svc, id| delete_job(b, req, jobs, svc, id)),
    )
    .route(
        &format!("{p}/{{id}}/phase"),
        web::get().to(move |req, jobs, id| phase(b, req, jobs, id)),
    )
    .route(
        &format!("{p}/{{id}}/phase"),
        web::post().to(move |req, jobs, svc, id, body| {
            let usage = "POST PHASE=RUN or PHASE=ABORT";
            post_setting(b, "PHASE", usage, req, jobs, svc, id, body)
        }),
    )
    .route(
        &format!("{p}/{{id}}/quote"),
        web::get().to(move |req, jobs, id| quote(b, req, jobs, id)),
    )
    .route(
        &format!("{p}/{{id}}/executionduration"),
        web::get().to(move |req, jobs, id| execution_duration(b, req, jobs, id)),
    )
    .route(
        &format!("{p}/{{id}}/executionduration"),
        web::post().to(move |req, jobs, svc, id, body| {
            let usage = "POST EXECUTIONDURATION=<seconds>";
            post_setting(b, "EXECUTIONDURATION", usage, req, jobs, svc, id, body)
        }),
    )
    .route(
        &format!("{p}/{{id}}/destruction"),
        web::get().to(move |req, jobs, id| destruction(b, req, jobs, id)),
    )
    .route(
        &format!("{p}/{{id}}/destruction"),
        web::post().to(move |req, jobs, svc, id, body| {
            let usage = "POST DESTRUCTION=<ISO 8601 date-time>";
            post_setting(b, "DESTRUCTION", usage, req, jobs, svc, id, body)
        }),
    )
    .route(
        &format!("{p}/{{id}}/error"),
        web::get().to(move |req, jobs, id| error(b, req, jobs, id)),
    )
    .route(
        &format!("{p}/{{id}}/parameters"),
        web::get().to(move |req, jobs, id| parameters(b, req, jobs, id)),
    )
    .route(
        &format!("{p}/{{id}}/results"),
        web::get().to(move |req, jobs, svc, id| results(b, req, jobs, svc, id)),
    )
    .route(
        &format!("{p}/{{id}}/results/{{result}}"),
        web::get().to(move |req, jobs, svc, path| result(b, req, jobs, svc, path)),
    )
    .route(
        &format!("{p}/{{id}}/owner"),
        web::get().to(move |req, jobs, id| owner(b, req, jobs, id)),
    );
}

/// A request that failed: its status and a plain-text message.
#[derive(Debug)]
pub struct Fail {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

/// A failed request.
pub fn fail(status: StatusCode, message: impl Into<String>) -> Fail {
    Fail {
        status,
        message: message.into(),
    }
}

/// A 400.
pub fn bad_request(message: impl Into<String>) -> Fail {
    fail(StatusCode::BAD_REQUEST, message)
}

/// A job request's answer.
pub type Reply = Result<HttpResponse, Fail>;

/// The answer of a failed request: its status with the message as plain text.
pub fn reply(r: Reply) -> HttpResponse {
    r.unwrap_or_else(|f| text(f.status, f.message))
}

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

/// A 303 to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}

/// The status and message of a job-service error.
pub fn job_error(e: JobError) -> Fail {
    let status = match &e {
        JobError::NotFound(_) => StatusCode::NOT_FOUND,
        JobError::Conflict(_) => StatusCode::CONFLICT,
        JobError::Limit(_) => StatusCode::TOO_MANY_REQUESTS,
        JobError::Internal(m) => {
            tracing::error!("asynchronous jobs: {m}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    fail(status, e.to_string())
}

/// The caller's user name (`None`: anonymous); a token that names no one is a 401.
pub async fn caller_name(req: &HttpRequest) -> Result<Option<String>, Fail> {
    crate::identity::caller(req)
        .await
        .map(|u| u.map(|u| u.name))
        .map_err(|f| fail(StatusCode::UNAUTHORIZED, f.to_string()))
}

/// The job `id` of `b`'s kind, as the caller of `req` may see it.
pub async fn job_for(b: &Binding, jobs: &Jobs, req: &HttpRequest, id: &str) -> Result<Job, Fail> {
    let caller = caller_name(req).await?;
    jobs.get_for(id, b.kind, caller.as_deref())
        .await
        .map_err(job_error)
}

/// The URL of `b`'s job list.
pub fn list_url(b: &Binding, svc: &Service, req: &HttpRequest) -> String {
    format!("{}{}", svc.base_url(req), b.path)
}

/// The URL of a job.
pub fn job_url(b: &Binding, svc: &Service, req: &HttpRequest, id: &str) -> String {
    format!("{}/{id}", list_url(b, svc, req))
}

/// Non-negative whole seconds.
pub fn parse_seconds(name: &str, v: &str) -> Result<u64, Fail> {
    v.trim().parse::<u64>().map_err(|_| {
        bad_request(format!(
            "{name} must be a whole number of seconds, not '{v}'"
        ))
    })
}

/// An ISO 8601 destruction time (ms).
pub fn parse_destruction(v: &str) -> Result<i64, Fail> {
    parse_time(v).ok_or_else(|| {
        bad_request(format!(
            "DESTRUCTION must be an ISO 8601 date-time (e.g. 2030-01-01T00:00:00Z), not '{v}'"
        ))
    })
}

/// What the parameters of a creating request ask besides the job's own parameters: start it
/// at once (PHASE=RUN), its execution duration, its destruction time.
pub struct Control {
    /// PHASE=RUN was given.
    pub run: bool,
    /// EXECUTIONDURATION.
    pub duration: Option<u64>,
    /// DESTRUCTION.
    pub destruction: Option<i64>,
}

impl Control {
    /// The control parameters of a creating request.
    pub fn parse(p: &Params) -> Result<Control, Fail> {
        let run = match p.get_nonempty("PHASE") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("RUN") => true,
            Some(v) => {
                return Err(bad_request(format!(
                    "PHASE={v} cannot be given when creating a job; use PHASE=RUN"
                )))
            }
        };
        Ok(Control {
            run,
            duration: p
                .get_nonempty("EXECUTIONDURATION")
                .map(|v| parse_seconds("EXECUTIONDURATION", v))
                .transpose()?,
            destruction: p
                .get_nonempty("DESTRUCTION")
                .map(parse_destruction)
                .transpose()?,
        })
    }

    /// Applies them to a job just created (PENDING).
    pub async fn apply(&self, jobs: &Jobs, id: &str) -> Result<(), Fail> {
        if let Some(d) = self.duration {
            jobs.set_execution_duration(id, d)
                .await
                .map_err(job_error)?;
        }
        if let Some(d) = self.destruction {
            jobs.set_destruction(id, d).await.map_err(job_error)?;
        }
        if self.run {
            jobs.run(id).await.map_err(job_error)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

/// `GET <list>`: the caller's jobs, filtered by PHASE (repeatable), AFTER and LAST.
async fn list(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    svc: web::Data<Service>,
) -> HttpResponse {
    reply(
        async {
            let caller = caller_name(&req).await?;
            let p = Params::from_request(&req, &[]);
            let anonymous = caller.is_none();
            let mut filter = JobFilter {
                kind: Some(b.kind.to_string()),
                owner: Some(caller),
                ..Default::default()
            };
            for v in p.get_all("PHASE") {
                for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let phase = Phase::parse(name)
                        .ok_or_else(|| bad_request(format!("unknown PHASE '{name}'")))?;
                    filter.phases.push(phase);
                }
            }
            if let Some(a) = p.get_nonempty("AFTER") {
                filter.after = Some(parse_time(a).ok_or_else(|| {
                    bad_request(format!("AFTER must be an ISO 8601 date-time, not '{a}'"))
                })?);
            }
            if let Some(l) = p.get_nonempty("LAST") {
                filter.last = Some(l.parse::<u64>().map_err(|_| {
                    bad_request(format!("LAST must be a non-negative integer, not '{l}'"))
                })?);
            }
            if anonymous {
                // Anonymous jobs are no one's: the list never shows them to anyone (its
                // parameters are checked all the same).
                return Ok(xml(uws::xml::job_list(&[], &list_url(b, &svc, &req))));
            }
            let found = jobs.list(&filter).await.map_err(job_error)?;
            Ok(xml(uws::xml::job_list(&found, &list_url(b, &svc, &req))))
        }
        .await,
    )
}

/// `GET <job>`: the job document; `WAIT=n` (and `PHASE`) block until the phase changes or n
/// seconds pass (at most `[uws] max_wait`; -1: that maximum).
async fn job(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    svc: web::Data<Service>,
    id: web::Path<String>,
) -> HttpResponse {
    reply(
        async {
            job_for(b, &jobs, &req, &id).await?;
            let p = Params::from_request(&req, &[]);
            let job = match p.get_nonempty("WAIT") {
                None => jobs.get(&id).await,
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
                            Phase::parse(v)
                                .ok_or_else(|| bad_request(format!("unknown PHASE '{v}'")))?,
                        ),
                    };
                    jobs.wait(&id, seen, secs).await
                }
            }
            .map_err(job_error)?;
            Ok(xml(uws::xml::job_document(
                &job,
                &job_url(b, &svc, &req, &id),
            )))
        }
        .await,
    )
}

/// `POST <job>`: ACTION=DELETE, or PHASE, EXECUTIONDURATION, DESTRUCTION.
async fn post_job(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    svc: web::Data<Service>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    reply(
        async {
            job_for(b, &jobs, &req, &id).await?;
            let p = Params::from_request(&req, &body);
            if let Some(a) = p.get_nonempty("ACTION") {
                if !a.eq_ignore_ascii_case("DELETE") {
                    return Err(bad_request(format!(
                        "ACTION={a}: the only action is DELETE"
                    )));
                }
                jobs.delete(&id).await.map_err(job_error)?;
                return Ok(deleted(b, &svc, &req));
            }
            let did = apply_settings(&jobs, &id, &p).await?;
            if !did {
                return Err(bad_request(
                    "nothing to do: POST ACTION=DELETE, PHASE, EXECUTIONDURATION or DESTRUCTION",
                ));
            }
            Ok(see_other(&job_url(b, &svc, &req, &id)))
        }
        .await,
    )
}

/// The answer to a deletion. UWS 1.1 §2.2.3.2 asks for a 303 to the job list, and STILTS
/// (UwsJob.postDelete, used by taplint) rejects anything but a 303. But a client that follows
/// the redirect then downloads the whole job list, which on a busy service is large and slow:
/// pyvo did exactly that until it stopped following it (astropy/pyvo#535, "Async TAP appears
/// to hang", fixed by deleting with allow_redirects=False). So the 303 points at the job list
/// filtered to nothing, `?LAST=0`: still the job list resource, an empty and cheap document
/// for the clients that follow, and a plain 303 for those that do not.
fn deleted(b: &Binding, svc: &Service, req: &HttpRequest) -> HttpResponse {
    see_other(&format!("{}?LAST=0", list_url(b, svc, req)))
}

/// `DELETE <job>`.
async fn delete_job(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    svc: web::Data<Service>,
    id: web::Path<String>,
) -> HttpResponse {
    reply(
        async {
            job_for(b, &jobs, &req, &id).await?;
            jobs.delete(&id).await.map_err(job_error)?;
            Ok(deleted(b, &svc, &req))
        }
        .await,
    )
}

/// Applies the settings among `p` (EXECUTIONDURATION, DESTRUCTION, PHASE, in that order) to a
/// job; whether there was any.
async fn apply_settings(jobs: &Jobs, id: &str, p: &Params) -> Result<bool, Fail> {
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
    Ok(did)
}

/// `POST <job>/phase`, `…/executionduration`, `…/destruction`: the one setting the resource
/// names (`usage` says how when it is missing).
#[allow(clippy::too_many_arguments)] // actix extractors, one per argument
async fn post_setting(
    b: &'static Binding,
    name: &'static str,
    usage: &'static str,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    svc: web::Data<Service>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    reply(
        async {
            job_for(b, &jobs, &req, &id).await?;
            let p = Params::from_request(&req, &body);
            let v = p.get_nonempty(name).ok_or_else(|| bad_request(usage))?;
            let only = Params::from_pairs(vec![(name.to_string(), v.to_string())]);
            apply_settings(&jobs, &id, &only).await?;
            Ok(see_other(&job_url(b, &svc, &req, &id)))
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

/// `GET <job>/phase`.
async fn phase(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    id: web::Path<String>,
) -> HttpResponse {
    reply(
        job_for(b, &jobs, &req, &id)
            .await
            .map(|j| text(StatusCode::OK, j.phase.as_str())),
    )
}

/// `GET <job>/quote`: when the job will be done is not predicted (empty, as the job
/// document's nil quote).
async fn quote(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    id: web::Path<String>,
) -> HttpResponse {
    reply(
        job_for(b, &jobs, &req, &id)
            .await
            .map(|_| text(StatusCode::OK, "")),
    )
}

/// `GET <job>/executionduration`.
async fn execution_duration(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    id: web::Path<String>,
) -> HttpResponse {
    reply(job_for(b, &jobs, &req, &id).await.map(|j| {
        text(
            StatusCode::OK,
            j.execution_duration.min(i32::MAX as u64).to_string(),
        )
    }))
}

/// `GET <job>/destruction`.
async fn destruction(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    id: web::Path<String>,
) -> HttpResponse {
    reply(
        job_for(b, &jobs, &req, &id)
            .await
            .map(|j| text(StatusCode::OK, format_time(j.destruction))),
    )
}

/// `GET <job>/error`: the error of a job in ERROR, as the kind shows it.
async fn error(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    id: web::Path<String>,
) -> HttpResponse {
    reply(
        job_for(b, &jobs, &req, &id)
            .await
            .and_then(|j| match (j.phase, &j.error) {
                (Phase::Error, Some(msg)) => {
                    let (content_type, body) = (b.error_document)(msg);
                    Ok(HttpResponse::Ok().content_type(content_type).body(body))
                }
                _ => Err(fail(
                    StatusCode::NOT_FOUND,
                    format!("job {} is {}: it has no error", j.id, j.phase.as_str()),
                )),
            }),
    )
}

/// `GET <job>/parameters`.
async fn parameters(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    id: web::Path<String>,
) -> HttpResponse {
    reply(
        job_for(b, &jobs, &req, &id)
            .await
            .map(|j| xml(uws::xml::standalone(uws::xml::parameters_body(&j, "")))),
    )
}

/// `GET <job>/results`.
async fn results(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    svc: web::Data<Service>,
    id: web::Path<String>,
) -> HttpResponse {
    reply(job_for(b, &jobs, &req, &id).await.map(|j| {
        xml(uws::xml::standalone(uws::xml::results_body(
            &j,
            &job_url(b, &svc, &req, &id),
            "",
        )))
    }))
}

/// `GET <job>/results/<name>`: a result, streamed from object storage, or a redirect to
/// where this server serves it.
async fn result(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    svc: web::Data<Service>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, name) = path.into_inner();
    reply(
        async {
            let job = job_for(b, &jobs, &req, &id).await?;
            let stored = match (job.result(&name), job.phase) {
                (Some(r), Phase::Completed) => r.clone(),
                _ => {
                    return Err(fail(
                        StatusCode::NOT_FOUND,
                        format!(
                            "job {} is {}: it has no result '{name}'",
                            job.id,
                            job.phase.as_str()
                        ),
                    ))
                }
            };
            if let Some(link) = &stored.link {
                return Ok(see_other(&format!("{}{link}", svc.base_url(&req))));
            }
            let body = jobs.open_result(&stored).await.map_err(job_error)?;
            Ok(HttpResponse::Ok()
                .content_type(stored.content_type.as_str())
                .no_chunking(stored.size)
                .streaming(body.map(|r| r.map_err(actix_web::error::ErrorInternalServerError))))
        }
        .await,
    )
}

/// `GET <job>/owner`.
async fn owner(
    b: &'static Binding,
    req: HttpRequest,
    jobs: web::Data<Jobs>,
    id: web::Path<String>,
) -> HttpResponse {
    reply(
        job_for(b, &jobs, &req, &id)
            .await
            .map(|j| text(StatusCode::OK, j.owner.unwrap_or_default())),
    )
}
