//! Transfers: `synctrans` (negotiated at once; `xfer/{id}` is the negotiated document and
//! `data/{id}` its endpoint) and `transfers` (UWS jobs of kind [`KIND`], through the shared
//! binding, run by [`TransferExecutor`]). A synchronous transfer is recorded as a finished job
//! too, with the same id: the `vos` client checks `transfers/{id}` after a synchronous upload.
//! The checks and actions themselves are `vospace::transfer`'s.

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use async_trait::async_trait;
use uws::{Executor, Job, JobResult, Jobs, NewJob, Outcome, RunContext};
use vospace::model::{Direction, Fault, Protocol, Transfer};
use vospace::store::TransferRecord;
use vospace::transfer;
use vospace::{xml, User, VoStore};

use super::{body, fault, xml_ok, VoSpace};
use crate::dali::uws::{self as binding, Binding, Control};
use crate::dali::Params;
use crate::identity;

/// The job kind of VOSpace transfers.
pub const KIND: &str = "vospace";

/// The UWS resources of VOSpace transfers.
pub static BINDING: Binding = Binding {
    kind: KIND,
    path: "/vospace/transfers",
    error_document: plain_error,
};

/// A transfer job's error, as the `vos` client reads it: the fault's name and detail.
fn plain_error(message: &str) -> (&'static str, String) {
    ("text/plain; charset=utf-8", message.to_string())
}

/// A fault as a transfer job's error message.
fn job_error(f: &Fault) -> String {
    format!("{}: {}", f.name(), f.detail())
}

/// The `transferDetails` result of a transfer: the document `xfer/{id}` serves.
fn details(id: &str) -> JobResult {
    JobResult {
        id: "transferDetails".into(),
        path: String::new(),
        content_type: "text/xml".into(),
        size: 0,
        link: Some(format!("/vospace/xfer/{id}")),
    }
}

/// The transfer a request asks for: a transfer document in the body, or the parameter form;
/// with the request's parameters.
async fn read_transfer(
    vs: &VoSpace,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Transfer, Params), Fault> {
    let doc = body(payload, vs.config.max_document_bytes).await?;
    let is_xml = doc.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
    let params = Params::from_request(req, if is_xml { &[] } else { &doc });
    let t = if is_xml {
        xml::parse_transfer(&doc)?
    } else {
        transfer_from_params(&params)?
    };
    Ok((t, params))
}

/// A transfer from the parameter form (`TARGET`, `DIRECTION`, `PROTOCOL`, `VIEW`).
fn transfer_from_params(p: &Params) -> Result<Transfer, Fault> {
    let target = p
        .get_nonempty("TARGET")
        .ok_or_else(|| Fault::InvalidArgument("TARGET is missing".into()))?;
    let direction = p
        .get_nonempty("DIRECTION")
        .ok_or_else(|| Fault::InvalidArgument("DIRECTION is missing".into()))?;
    Ok(Transfer {
        target: target.to_string(),
        direction: Direction::parse(direction),
        view: p.get_nonempty("VIEW").map(str::to_string),
        protocols: p
            .get_all("PROTOCOL")
            .filter(|s| !s.trim().is_empty())
            .map(|u| Protocol {
                uri: u.trim().to_string(),
                endpoint: None,
                security_methods: Vec::new(),
            })
            .collect(),
        keep_bytes: p
            .get_nonempty("KEEPBYTES")
            .map(|k| k.eq_ignore_ascii_case("true")),
    })
}

/// A transfer record by id (the id is the capability: no further check).
pub async fn record(store: &VoStore, id: &str) -> Result<TransferRecord, Fault> {
    store
        .get_transfer(id)
        .await?
        .ok_or_else(|| Fault::NodeNotFound(format!("no transfer {id}")))
}

pub async fn xfer(vs: web::Data<VoSpace>, path: web::Path<String>) -> HttpResponse {
    let inner = async {
        let store = &*vs.store;
        let rec = record(store, &path).await?;
        match (&rec.details, &rec.error) {
            (Some(d), _) => Ok(xml_ok(
                StatusCode::OK,
                transfer::unpack_details(d).1.to_string(),
            )),
            (None, Some(e)) => Err(Fault::InvalidArgument(e.clone())),
            _ => Err(Fault::InternalFault("the transfer has no details".into())),
        }
    };
    inner.await.unwrap_or_else(fault)
}

/// Negotiates a push or pull for `user` and records it as a transfer (the capability behind
/// `data/{id}`, whose endpoint is under `base`); the record's id, and the fault if refused.
async fn negotiated(
    store: &VoStore,
    auth: &str,
    user: Option<&User>,
    t: &Transfer,
    base: &str,
) -> Result<(String, Result<(), Fault>), Fault> {
    let owner = user.map(|u| u.name.clone()).unwrap_or_default();
    let mut rec = store
        .create_transfer(&owner, t.direction.as_str(), &t.target, None)
        .await?;
    let endpoint = format!("{base}/vospace/data/{}", rec.id);
    let outcome = match transfer::negotiate(store, auth, user, t, &endpoint).await {
        Ok((negotiated, path)) => {
            rec.phase = "COMPLETED".into();
            rec.details = Some(transfer::pack_details(
                &path,
                &xml::write_transfer(&negotiated),
            ));
            Ok(())
        }
        Err(f) => {
            rec.phase = "ERROR".into();
            rec.error = Some(f.to_string());
            Err(f)
        }
    };
    store.update_transfer(&rec).await?;
    Ok((rec.id, outcome))
}

/// `POST|GET /vospace/synctrans`.
pub async fn synctrans(
    vs: web::Data<VoSpace>,
    jobs: web::Data<Jobs>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    synctrans_inner(&vs, &jobs, &req, payload)
        .await
        .unwrap_or_else(fault)
}

async fn synctrans_inner(
    vs: &VoSpace,
    jobs: &Jobs,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Fault> {
    let user = identity::caller(req).await?;
    let (t, params) = read_transfer(vs, req, payload).await?;
    let base = vs.service.base_url(req);
    let (id, outcome) = negotiated(&vs.store, &vs.authority, user.as_ref(), &t, &base).await?;
    let new = NewJob {
        kind: KIND.into(),
        owner: user.as_ref().map(|u| u.name.clone()),
        job_info: Some(xml::write_transfer_element(&t)),
        origin: Some(base.clone()),
        ..Default::default()
    };
    let done = match &outcome {
        Ok(()) => Ok(vec![details(&id)]),
        Err(f) => Err(job_error(f)),
    };
    if let Err(e) = jobs.create_done(id.clone(), new, done).await {
        tracing::warn!("vospace: recording transfer {id} as a job: {e}");
    }
    outcome?;
    let location = if params
        .get_nonempty("REQUEST")
        .is_some_and(|v| v.eq_ignore_ascii_case("redirect"))
    {
        format!("{base}/vospace/data/{id}")
    } else {
        format!("{base}/vospace/xfer/{id}")
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish())
}

/// `POST /vospace/transfers`: an asynchronous transfer (a transfer document, or the parameter
/// form) becomes a PENDING job (`PHASE=RUN` queues it at once); 303 to the job.
pub async fn create_transfer(
    vs: web::Data<VoSpace>,
    jobs: web::Data<Jobs>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let inner = async {
        let user = identity::caller(&req).await.map_err(|f| {
            binding::fail(
                StatusCode::from_u16(f.status()).unwrap_or(StatusCode::UNAUTHORIZED),
                f.to_string(),
            )
        })?;
        let (t, params) = read_transfer(&vs, &req, payload).await.map_err(|f| {
            binding::fail(
                StatusCode::from_u16(f.status()).unwrap_or(StatusCode::BAD_REQUEST),
                f.to_string(),
            )
        })?;
        let control = Control::parse(&params)?;
        let base = vs.service.base_url(&req);
        jobs.admit(user.as_ref().map(|u| u.name.as_str()))
            .await
            .map_err(binding::job_error)?;
        let id = jobs.new_id();
        let new = NewJob {
            kind: KIND.into(),
            owner: user.map(|u| u.name),
            job_info: Some(xml::write_transfer_element(&t)),
            origin: Some(base.clone()),
            ..Default::default()
        };
        let job = jobs
            .create(id, new, false)
            .await
            .map_err(binding::job_error)?;
        control.apply(&jobs, &job.id).await?;
        Ok(binding::see_other(&format!(
            "{base}{}/{}",
            BINDING.path, job.id
        )))
    };
    binding::reply(inner.await)
}

/// Runs asynchronous transfers: moves and copies are done, pushes and pulls negotiated (their
/// endpoints then wait for the bytes); the result is the transfer document as done.
pub struct TransferExecutor {
    /// The space.
    pub store: Arc<VoStore>,
    /// The authority of node URIs.
    pub authority: String,
}

impl TransferExecutor {
    /// The transfer of a job and the user it runs as.
    async fn parsed(&self, job: &Job) -> Result<(Transfer, Option<User>), Fault> {
        let info = job.job_info.as_deref().unwrap_or("");
        let t = xml::parse_transfer(info.as_bytes())?;
        let user = match &job.owner {
            Some(o) => Some(
                self.store
                    .user(o)
                    .await?
                    .ok_or_else(|| Fault::PermissionDenied(format!("no user {o}")))?,
            ),
            None => None,
        };
        Ok((t, user))
    }

    /// A move or copy, done; the id of its transfer record.
    async fn move_or_copy(&self, job: &Job) -> Result<String, Fault> {
        let (t, user) = self.parsed(job).await?;
        let owner = job.owner.clone().unwrap_or_default();
        let done = transfer::move_or_copy(&self.store, &self.authority, user.as_ref(), &t).await?;
        let mut rec = self
            .store
            .create_transfer(
                &owner,
                t.direction.as_str(),
                &t.target,
                Some(&xml::write_transfer(&done)),
            )
            .await?;
        rec.phase = "COMPLETED".into();
        self.store.update_transfer(&rec).await?;
        Ok(rec.id)
    }
}

/// Whether a job is a move or copy (its direction a node URI), not a push or pull.
fn is_move_or_copy(job: &Job) -> bool {
    let info = job.job_info.as_deref().unwrap_or("");
    matches!(
        xml::parse_transfer(info.as_bytes()).map(|t| t.direction),
        Ok(Direction::Node(_))
    )
}

#[async_trait]
impl Executor for TransferExecutor {
    /// A push or pull is negotiated before the job turns EXECUTING: a client that sees it
    /// EXECUTING finds its transferDetails (the endpoints) at once.
    async fn prepare(&self, job: &Job) -> Result<Vec<JobResult>, String> {
        if is_move_or_copy(job) {
            return Ok(Vec::new());
        }
        let negotiation = async {
            let (t, user) = self.parsed(job).await?;
            let base = job.origin.as_deref().unwrap_or("");
            let (id, outcome) =
                negotiated(&self.store, &self.authority, user.as_ref(), &t, base).await?;
            outcome.map(|()| id)
        };
        match negotiation.await {
            Ok(id) => Ok(vec![details(&id)]),
            Err(f) => Err(job_error(&f)),
        }
    }

    async fn run(&self, job: &Job, ctx: &mut RunContext<'_>) -> Outcome {
        if !is_move_or_copy(job) {
            // Negotiated in `prepare`: its transferDetails are the job's results already.
            return Outcome::Done(job.results.clone());
        }
        match ctx.unless_stopped(self.move_or_copy(job)).await {
            Ok(Ok(id)) => Outcome::Done(vec![details(&id)]),
            Ok(Err(f)) => Outcome::Failed(job_error(&f)),
            Err(s) => s.into(),
        }
    }
}
