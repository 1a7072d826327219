//! Asynchronous TAP at `/tap/async`: the shared UWS binding (`dali::uws`) for jobs of kind
//! [`KIND`], TAP's own creation and parameter changes (with `TAP_UPLOAD` tables stored with
//! the job, so that it can run, or run again after a restart, without its request), and
//! [`TapExecutor`], which plans the query as `/tap/sync` does and streams its result into
//! object storage (and, with `DEST=vos://…`, into the owner's VOSpace).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use async_trait::async_trait;
use uws::{Executor, Job, Jobs, NewJob, NewUpload, Outcome, Phase, RunContext};
use vospace::transfer;

use super::upload::{self, UploadFile};
use super::{prepare, Tap};
use crate::dali::uws::{self as binding, bad_request, fail, job_error, Binding, Control, Fail};
use crate::dali::{Params, Service};
use crate::engine::{Engine, Lane, StreamEnd};

/// The job kind of TAP queries.
pub const KIND: &str = "tap";

/// The UWS resources of TAP.
pub static BINDING: Binding = Binding {
    kind: KIND,
    path: "/tap/async",
    error_document: votable_error,
};

/// A TAP job's error: the DALI error document.
fn votable_error(message: &str) -> (&'static str, String) {
    (
        "application/x-votable+xml",
        votable::error_document(message),
    )
}

/// Registers `/tap/async`: creation and parameter changes (multipart first: they carry
/// tables), then the shared UWS resources.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tap/async", upload::multipart_post().to(create_multipart))
        .route("/tap/async/", upload::multipart_post().to(create_multipart))
        .route(
            "/tap/async/{id}/parameters",
            upload::multipart_post().to(post_parameters_multipart),
        )
        .route("/tap/async", web::post().to(create))
        .route("/tap/async/", web::post().to(create))
        .route(
            "/tap/async/{id}/parameters",
            web::post().to(post_parameters),
        );
    binding::routes(cfg, &BINDING);
}

/// TAPRegExt `retentionPeriod` and `executionDuration` for the TAP capability (in schema
/// order: after `uploadMethod`, before `outputLimit`).
pub fn capability_limits(cfg: &uws::UwsConfig) -> Vec<crate::dali::capabilities::El> {
    use crate::dali::capabilities::El;
    vec![
        El::new("retentionPeriod")
            .child(El::text(
                "default",
                cfg.destruction.min(cfg.max_destruction),
            ))
            .child(El::text("hard", cfg.max_destruction)),
        El::new("executionDuration")
            .child(El::text(
                "default",
                cfg.execution_duration.min(cfg.max_execution_duration),
            ))
            .child(El::text("hard", cfg.max_execution_duration)),
    ]
}

/// The parameters (query string, then parts) and file parts of a multipart request.
async fn read_form(
    tap: &Tap,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Vec<(String, String)>, Vec<UploadFile>), Fail> {
    let limits = upload::UploadLimits::from_config(&tap.config);
    let form = upload::read_multipart(req, payload, &limits)
        .await
        .map_err(|e| fail(e.status, e.message))?;
    let mut pairs = Params::from_request(req, &[]).pairs().to_vec();
    pairs.extend(form.params);
    Ok((Params::from_pairs(pairs).pairs().to_vec(), form.files))
}

/// Request files as uploads to store with a job.
fn new_uploads(files: Vec<UploadFile>) -> Vec<NewUpload> {
    files
        .into_iter()
        .map(|f| NewUpload {
            part: f.name,
            content_type: f.content_type,
            bytes: f.bytes,
        })
        .collect()
}

/// `POST /tap/async`: creates a job from the TAP parameters (PHASE=RUN starts it) and
/// redirects to it.
async fn create(
    jobs: web::Data<Jobs>,
    tap: web::Data<Tap>,
    svc: web::Data<Service>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let p = Params::from_request(&req, &body);
    binding::reply(create_job(&jobs, &tap, &svc, &req, p, Vec::new()).await)
}

/// `POST /tap/async` as multipart/form-data: tables for UPLOAD in file parts.
async fn create_multipart(
    jobs: web::Data<Jobs>,
    tap: web::Data<Tap>,
    svc: web::Data<Service>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    binding::reply(
        async {
            let (pairs, files) = read_form(&tap, &req, payload).await?;
            create_job(&jobs, &tap, &svc, &req, Params::from_pairs(pairs), files).await
        }
        .await,
    )
}

async fn create_job(
    jobs: &Jobs,
    tap: &Tap,
    svc: &Service,
    req: &HttpRequest,
    p: Params,
    files: Vec<UploadFile>,
) -> binding::Reply {
    let control = Control::parse(&p)?;
    let parameters: Vec<(String, String)> = p
        .pairs()
        .iter()
        .filter(|(k, _)| !binding::CONTROL.contains(&k.as_str()))
        .cloned()
        .collect();
    // The owner: the user of the request's token (anonymous without one). `DEST` (a vos://
    // node, as CADC's TAP services have it) needs one who may write there.
    let owner = crate::identity::caller(req)
        .await
        .map_err(|f| fail(StatusCode::UNAUTHORIZED, f.to_string()))?;
    if let Some(dest) = p.get_nonempty("DEST") {
        let store = tap
            .vospace
            .as_ref()
            .ok_or_else(|| bad_request("DEST needs the server's VOSpace"))?;
        transfer::writable_target(store, &tap.service.authority, owner.as_ref(), dest)
            .await
            .map_err(|f| {
                fail(
                    StatusCode::from_u16(f.status()).unwrap_or(StatusCode::BAD_REQUEST),
                    format!("DEST={dest}: {f}"),
                )
            })?;
    }
    jobs.admit(owner.as_ref().map(|u| u.name.as_str()))
        .await
        .map_err(job_error)?;
    let id = jobs.new_id();
    let uploads = jobs
        .store_uploads(&id, new_uploads(files))
        .await
        .map_err(job_error)?;
    let new = NewJob {
        kind: KIND.into(),
        owner: owner.map(|u| u.name),
        parameters,
        uploads,
        job_info: None,
        origin: Some(svc.base_url(req)),
    };
    let job = jobs.create(id, new, false).await.map_err(job_error)?;
    control.apply(jobs, &job.id).await?;
    Ok(binding::see_other(&binding::job_url(
        &BINDING, svc, req, &job.id,
    )))
}

/// `POST /tap/async/{id}/parameters`: changes parameters while PENDING.
async fn post_parameters(
    jobs: web::Data<Jobs>,
    svc: web::Data<Service>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let p = Params::from_request(&req, &body);
    binding::reply(set_parameters(&jobs, &svc, &req, &id, p.pairs().to_vec(), Vec::new()).await)
}

/// `POST /tap/async/{id}/parameters` as multipart/form-data (pyvo's `job.upload`).
async fn post_parameters_multipart(
    jobs: web::Data<Jobs>,
    tap: web::Data<Tap>,
    svc: web::Data<Service>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    binding::reply(
        async {
            let (pairs, files) = read_form(&tap, &req, payload).await?;
            set_parameters(&jobs, &svc, &req, &id, pairs, files).await
        }
        .await,
    )
}

async fn set_parameters(
    jobs: &Jobs,
    svc: &Service,
    req: &HttpRequest,
    id: &str,
    pairs: Vec<(String, String)>,
    files: Vec<UploadFile>,
) -> binding::Reply {
    let job = binding::job_for(&BINDING, jobs, req, id).await?;
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| !binding::CONTROL.contains(&k.as_str()))
        .collect();
    if pairs.is_empty() && files.is_empty() {
        return Err(bad_request("no parameters given"));
    }
    if job.phase != Phase::Pending {
        return Err(fail(
            StatusCode::CONFLICT,
            format!(
                "job {id} is {}: its parameters can only be changed while it is PENDING",
                job.phase.as_str()
            ),
        ));
    }
    let uploads = jobs
        .store_uploads(id, new_uploads(files))
        .await
        .map_err(job_error)?;
    jobs.set_parameters(id, pairs, uploads)
        .await
        .map_err(job_error)?;
    Ok(binding::see_other(&binding::job_url(
        &BINDING, svc, req, id,
    )))
}

/// Runs TAP jobs: plans the query with the owner's identity (their `vos://` uploads), streams
/// the result into the job's storage, then copies it to `DEST` if asked.
pub struct TapExecutor {
    /// The engine.
    pub engine: Arc<Engine>,
    /// TAP's settings and the users' space.
    pub tap: Arc<Tap>,
}

impl TapExecutor {
    /// The stored upload files of a job, as the request had them.
    async fn uploads(
        &self,
        job: &Job,
        ctx: &mut RunContext<'_>,
    ) -> Result<Vec<UploadFile>, Outcome> {
        let mut files = Vec::with_capacity(job.uploads.len());
        for u in &job.uploads {
            let bytes = ctx.read_upload(u).await?;
            files.push(UploadFile {
                name: u.part.clone(),
                filename: None,
                content_type: u.content_type.clone(),
                bytes,
            });
        }
        Ok(files)
    }

    /// Writes a finished result into the owner's VOSpace at `dest` (`DEST=vos://…`, checked
    /// again here with the owner's rights), streaming.
    async fn copy_to_vospace(
        &self,
        job: &Job,
        dest: &str,
        result: &uws::JobResult,
        ctx: &mut RunContext<'_>,
    ) -> Result<(), String> {
        let store = self
            .tap
            .vospace
            .as_ref()
            .ok_or("this server has no VOSpace")?;
        let owner = job.owner.as_deref().ok_or("the job has no owner")?;
        let user = store
            .user(owner)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no user {owner}"))?;
        let path = transfer::writable_target(store, &self.tap.service.authority, Some(&user), dest)
            .await
            .map_err(|e| e.to_string())?;
        let bytes = ctx.open_result(result).await.map_err(|e| e.to_string())?;
        store
            .write_data(
                &path,
                owner,
                bytes,
                Some(result.size),
                None,
                Some(&result.content_type),
                user.quota_bytes,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[async_trait]
impl Executor for TapExecutor {
    async fn run(&self, job: &Job, ctx: &mut RunContext<'_>) -> Outcome {
        let params = Params::from_pairs(job.parameters.clone());
        let files = match self.uploads(job, ctx).await {
            Ok(f) => f,
            Err(o) => return o,
        };
        // On the query workers when the query is large enough; when they fail after the
        // first rows (one stopped while the job ran), the job runs again on this server: its
        // result is stored only once it is whole.
        let mut lane = Lane::Slow;
        let stored = loop {
            let prepared = async {
                // The owner's identity reads their vos:// uploads.
                let user = match (&job.owner, &self.tap.vospace) {
                    (Some(o), Some(store)) => store
                        .user(o)
                        .await
                        .map_err(|e| crate::dali::DalError::internal(e.to_string()))?,
                    _ => None,
                };
                let req = prepare(&self.engine, &self.tap, &params, &files, user.as_ref()).await?;
                let stream = self.engine.stream(req, None, lane, false).await?;
                Ok::<_, crate::dali::DalError>(stream)
            };
            let result = match ctx.unless_stopped(prepared).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Outcome::Failed(e.message),
                Err(s) => return s.into(),
            };
            let end = result.end.clone();
            let stored = ctx
                .store_result(
                    "result",
                    result.content_type,
                    result.chunks,
                    move || match end.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                        Some(StreamEnd::Error(message)) => Err(message),
                        _ => Ok(()),
                    },
                )
                .await;
            match stored {
                Ok(r) => break r,
                Err(Outcome::Failed(message))
                    if lane == Lane::Slow
                        && self.engine.snapshot().distributed().is_some()
                        && crate::engine::distributed::is_worker_failure(&message) =>
                {
                    tracing::warn!(
                        "job {} (tap): the query workers failed while it ran, it runs again \
                         here: {message}",
                        job.id
                    );
                    lane = Lane::Here;
                }
                Err(o) => return o,
            }
        };
        if let Some(dest) = job.parameter("DEST") {
            if let Err(e) = self.copy_to_vospace(job, dest, &stored, ctx).await {
                return Outcome::Failed(format!("the result could not be written to {dest}: {e}"));
            }
        }
        Outcome::Done(vec![stored])
    }
}
