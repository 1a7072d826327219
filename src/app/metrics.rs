//! What an operator watches: Prometheus metrics at `/metrics` (OpenMetrics text), liveness at
//! `/health` and readiness at `/health/ready`.
//!
//! Every request is counted by protocol (the first path segment: `tap`, `scs`, `vospace`, …)
//! and status, its time to the response head goes into a histogram, and the bytes of its body
//! are counted as they are sent (a streamed result too). Gauges are read when scraped: the
//! asynchronous jobs queued and executing, the memory DataFusion's pool has handed out, the
//! places of the query lanes in use, the Parquet footer cache (entries, bytes, hits), and the
//! bytes each VOSpace user stores.
//!
//! `/metrics` names users and is for the operator: it answers callers on the loopback
//! interface, or anyone presenting `[metrics] token` as a bearer token; others get 403.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use storage::Storage;
use uws::{JobFilter, Jobs, Phase};

use crate::engine::Engine;
use crate::protocols::vospace::VoSpace;

/// `[metrics]` in `vostok.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A bearer token that opens `/metrics` to callers beyond the loopback interface (a
    /// Prometheus server on another machine). Without it only loopback callers are answered.
    pub token: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    protocol: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UserLabels {
    user: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabels {
    lane: String,
}

/// The registry and the metrics in it.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    seconds: Family<ProtocolLabels, Histogram>,
    bytes: Family<ProtocolLabels, Counter>,
    jobs: Family<JobLabels, Gauge>,
    query_memory: Gauge,
    lanes: Family<LaneLabels, Gauge>,
    vospace_bytes: Family<UserLabels, Gauge>,
    footers: Family<FooterLabels, Gauge>,
    generation: Gauge,
    reloads: Counter,
    token: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FooterLabels {
    what: String,
}

/// The path segments counted as a protocol of their own; every other path is `other`.
const PROTOCOLS: [&str; 12] = [
    "tap",
    "scs",
    "sia",
    "ssa",
    "datalink",
    "vospace",
    "data",
    "portal",
    "capabilities",
    "services",
    "metrics",
    "health",
];

/// The protocol a request path belongs to (a bounded set of label values).
fn protocol_of(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if first.is_empty() {
        return "portal"; // `/` is the portal's page
    }
    PROTOCOLS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(first))
        .copied()
        .unwrap_or("other")
}

impl Metrics {
    pub fn new(config: &MetricsConfig) -> Metrics {
        let mut registry = Registry::with_prefix("vostok");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by protocol and status",
            requests.clone(),
        );
        let seconds = Family::<ProtocolLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "http_response_head_seconds",
            "Time from a request to its response head (a streamed body goes on after it)",
            seconds.clone(),
        );
        let bytes = Family::<ProtocolLabels, Counter>::default();
        registry.register(
            "http_response_body_bytes",
            "Bytes of response bodies sent, by protocol",
            bytes.clone(),
        );
        let jobs = Family::<JobLabels, Gauge>::default();
        registry.register(
            "jobs",
            "Asynchronous jobs queued and executing, by kind",
            jobs.clone(),
        );
        let query_memory = Gauge::default();
        registry.register(
            "query_memory_bytes",
            "Memory reserved in the query memory pool ([limits] query_memory_mb)",
            query_memory.clone(),
        );
        let lanes = Family::<LaneLabels, Gauge>::default();
        registry.register(
            "sync_query_places_in_use",
            "Places of the synchronous query lanes in use (fast_queries, sync_queries, heavy_queries)",
            lanes.clone(),
        );
        let vospace_bytes = Family::<UserLabels, Gauge>::default();
        registry.register(
            "vospace_stored_bytes",
            "Bytes each VOSpace user stores",
            vospace_bytes.clone(),
        );
        let footers = Family::<FooterLabels, Gauge>::default();
        registry.register(
            "footer_cache",
            "The Parquet footer cache: entries, bytes, limit_bytes, and hits (reads the entries \
             now cached have served)",
            footers.clone(),
        );
        let generation = Gauge::default();
        registry.register(
            "publication_generation",
            "The publication generation served (catalogs/_publication.json; each ingest or drop \
             adds one)",
            generation.clone(),
        );
        let reloads = Counter::default();
        registry.register(
            "publication_reloads",
            "Times the served tables were swapped for a newer publication since start",
            reloads.clone(),
        );
        Metrics {
            footers,
            generation,
            reloads,
            registry,
            requests,
            seconds,
            bytes,
            jobs,
            query_memory,
            lanes,
            vospace_bytes,
            token: config.token.clone().filter(|t| !t.is_empty()),
        }
    }

    /// Records one response head.
    fn answered(&self, protocol: &str, status: u16, secs: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                protocol: protocol.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.seconds
            .get_or_create(&ProtocolLabels {
                protocol: protocol.to_string(),
            })
            .observe(secs);
    }

    fn body_counter(&self, protocol: &str) -> Counter {
        self.bytes
            .get_or_create(&ProtocolLabels {
                protocol: protocol.to_string(),
            })
            .clone()
    }

    /// Whether the caller may read `/metrics`.
    fn allowed(&self, req: &HttpRequest) -> bool {
        let loopback =
            req.peer_addr().is_some_and(|a| a.ip().is_loopback()) && !relayed(req.headers());
        let bearer = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (&self.token, bearer) {
            (Some(t), Some(b)) => constant_time_eq(t.as_bytes(), b.trim().as_bytes()),
            _ => loopback,
        }
    }
}

/// Whether a request was relayed by a proxy for a client of its own: a reverse proxy on the
/// same machine connects from loopback whoever its client is, and says so in these headers
/// (nginx's `X-Forwarded-For`/`X-Real-IP`, RFC 7239's `Forwarded`). Such a request is that
/// client's, not a loopback caller's.
fn relayed(headers: &actix_web::http::header::HeaderMap) -> bool {
    [
        "forwarded",
        "x-forwarded-for",
        "x-real-ip",
        "x-forwarded-host",
    ]
    .iter()
    .any(|h| headers.contains_key(*h))
}

/// Compares without stopping at the first difference (a token is a secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Middleware: counts every request and the bytes of its body.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let protocol = protocol_of(req.path());
    let started = Instant::now();
    let res = next.call(req).await?;
    let Some(metrics) = metrics else {
        return Ok(res.map_body(|_, body| CountedBody {
            inner: body,
            counter: None,
        }));
    };
    metrics.answered(
        protocol,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    let counter = metrics.body_counter(protocol);
    Ok(res.map_body(|_, body| CountedBody {
        inner: body,
        counter: Some(counter),
    }))
}

/// The header carrying a request's id, in the request (a proxy's, kept when it is sane) and in
/// every response; the access log writes it too.
pub const REQUEST_ID: &str = "x-request-id";

/// A request's id, for the inner middleware that writes it into error documents.
#[derive(Clone)]
struct RequestId(String);

/// Middleware: every response carries the request's id — the one a proxy or client sent (1 to
/// 64 characters of letters, digits, `.`, `_`, `-`), else a new one — so that a user's report
/// of a failure can be found in the log. Error documents say it in their text too (see
/// [`request_id_in_errors`]), except errors that end a result already streaming.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let sane = |v: &str| {
        (1..=64).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_string)
        .unwrap_or_else(uws::new_job_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.call(req).await?;
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&id) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(REQUEST_ID),
            v,
        );
    }
    Ok(res.map_into_boxed_body())
}

/// Middleware, inside the one that answers `HEAD` with `GET`'s headers: writes the request's id
/// (set by [`request_id`]) into the text of an error document (see [`with_request_id`]), so
/// that a `HEAD` declares the length of the `GET`'s body as it is sent.
pub async fn request_id_in_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let res = next.call(req).await?;
    let Some(id) = id else {
        return Ok(res.map_into_boxed_body());
    };
    let content_type = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let status = res.status();
    let limit = if status.is_client_error() || status.is_server_error() {
        MAX_ERROR_DOCUMENT
    } else {
        MAX_OK_ERROR_DOCUMENT
    };
    let small = matches!(res.response().body().size(), BodySize::Sized(n) if n <= limit);
    if !small || !may_be_error(status, &content_type) {
        return Ok(res.map_into_boxed_body());
    }
    let (req, response) = res.into_parts();
    let (response, body) = response.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.map_err(|e| {
        let e: Box<dyn std::error::Error> = e.into();
        actix_web::error::ErrorInternalServerError(e.to_string())
    })?;
    let body = with_request_id(status, &content_type, &bytes, &id).unwrap_or(bytes);
    let mut response = response.set_body(body);
    response
        .headers_mut()
        .remove(actix_web::http::header::CONTENT_LENGTH);
    Ok(ServiceResponse::new(req, response).map_into_boxed_body())
}

/// The largest error document (4xx, 5xx) the request id is written into.
const MAX_ERROR_DOCUMENT: u64 = 256 * 1024;
/// The largest `200` XML answer looked into for an error (SIA 1.0, SSA, SCS and OAI-PMH give
/// theirs with `200`).
const MAX_OK_ERROR_DOCUMENT: u64 = 64 * 1024;

/// Whether an answer may be an error document [`with_request_id`] writes into.
fn may_be_error(status: actix_web::http::StatusCode, content_type: &str) -> bool {
    let error = status.is_client_error() || status.is_server_error();
    let xml = content_type.contains("xml");
    (status == actix_web::http::StatusCode::OK && xml)
        || (error
            && (xml
                || content_type.starts_with("text/plain")
                || content_type.starts_with("application/json")))
}

/// An error document with the request id `id` in its text, where its format has room for it;
/// None when `body` is no error document (or its format has no room):
///
/// * a VOTable error (`INFO name="QUERY_STATUS" value="ERROR"`, TAP, SCS, SIA, SSA, DataLink,
///   UWS): an `INFO name="request_id"` right after it (an INFO may follow an INFO wherever
///   one stands);
/// * an OAI-PMH `<error>`: its text (free text in OAI-PMH 2.0), `(request id …)` at its end;
/// * plain text (UWS, VOSpace faults, `/moc`, …): a last line `request id: …`;
/// * a JSON object (the portal's API): a member `request_id`.
///
/// `id` is letters, digits, `.`, `_` and `-` (see [`request_id`]): nothing to escape.
pub fn with_request_id(
    status: actix_web::http::StatusCode,
    content_type: &str,
    body: &[u8],
    id: &str,
) -> Option<Bytes> {
    let error = status.is_client_error() || status.is_server_error();
    let text = std::str::from_utf8(body).ok()?;
    if content_type.contains("xml") {
        const STATUS: &str = "<INFO name=\"QUERY_STATUS\" value=\"ERROR\"";
        if let Some(at) = text.find(STATUS) {
            let rest = &text[at..];
            let open_end = rest.find('>')?;
            let end = if rest[..open_end].ends_with('/') {
                at + open_end + 1
            } else {
                at + rest.find("</INFO>")? + "</INFO>".len()
            };
            return Some(Bytes::from(format!(
                "{}\n<INFO name=\"request_id\" value=\"{id}\"/>{}",
                &text[..end],
                &text[end..]
            )));
        }
        if text.contains("<OAI-PMH") && text.contains("<error code=\"") {
            return Some(Bytes::from(
                text.replace("</error>", &format!(" (request id {id})</error>")),
            ));
        }
        return None;
    }
    if !error {
        return None;
    }
    if content_type.starts_with("text/plain") {
        let sep = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        return Some(Bytes::from(format!("{text}{sep}request id: {id}\n")));
    }
    if content_type.starts_with("application/json") {
        let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
        value
            .as_object_mut()?
            .insert("request_id".into(), serde_json::Value::String(id.into()));
        return serde_json::to_vec(&value).ok().map(Bytes::from);
    }
    None
}

pin_project_lite::pin_project! {
    /// A response body whose bytes are counted as they go out.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        counter: Option<Counter>,
    }
}

impl<B: MessageBody> MessageBody for CountedBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_next(cx);
        if let (Poll::Ready(Some(Ok(chunk))), Some(c)) = (&polled, this.counter.as_ref()) {
            c.inc_by(chunk.len() as u64);
        }
        polled
    }
}

/// `GET /metrics`: the metrics in the OpenMetrics text format.
pub async fn metrics(
    req: HttpRequest,
    metrics: web::Data<Metrics>,
    engine: web::Data<Engine>,
    jobs: web::Data<Jobs>,
    vospace: web::Data<VoSpace>,
) -> HttpResponse {
    if !metrics.allowed(&req) {
        return HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body(
                "the metrics are for the operator: ask from the server's own machine, or send \
                 the [metrics] token of vostok.toml as a bearer token\n",
            );
    }
    refresh(&metrics, &engine, &jobs, &vospace).await;
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &metrics.registry) {
        return HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(format!("the metrics could not be written: {e}\n"));
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text)
}

/// Reads the gauges' values now.
async fn refresh(metrics: &Metrics, engine: &Engine, jobs: &Jobs, vospace: &VoSpace) {
    metrics
        .query_memory
        .set(i64::try_from(engine.memory_reserved()).unwrap_or(i64::MAX));
    metrics
        .generation
        .set(i64::try_from(engine.snapshot().generation()).unwrap_or(i64::MAX));
    metrics
        .reloads
        .inner()
        .store(engine.reloads(), std::sync::atomic::Ordering::Relaxed);
    let cache = engine.footer_cache();
    for (what, n) in [
        ("entries", cache.entries),
        ("bytes", cache.bytes),
        ("limit_bytes", cache.limit),
        ("hits", cache.hits),
    ] {
        metrics
            .footers
            .get_or_create(&FooterLabels {
                what: what.to_string(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    for (lane, used) in engine.places_in_use() {
        metrics
            .lanes
            .get_or_create(&LaneLabels {
                lane: lane.to_string(),
            })
            .set(used as i64);
    }
    for phase in [Phase::Queued, Phase::Executing] {
        let filter = JobFilter {
            phases: vec![phase],
            ..Default::default()
        };
        let Ok(found) = jobs.list(&filter).await else {
            continue;
        };
        for kind in [
            crate::protocols::tap::jobs::KIND,
            crate::protocols::vospace::transfers::KIND,
        ] {
            let n = found.iter().filter(|j| j.kind == kind).count();
            metrics
                .jobs
                .get_or_create(&JobLabels {
                    kind: kind.to_string(),
                    phase: phase.as_str().to_string(),
                })
                .set(n as i64);
        }
    }
    if let Ok(users) = vospace.store.users().await {
        metrics.vospace_bytes.clear();
        for user in users {
            if let Ok(bytes) = vospace.store.usage(&user).await {
                metrics
                    .vospace_bytes
                    .get_or_create(&UserLabels { user })
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
    }
}

/// `GET /health`: the process answers (liveness).
pub async fn live() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body("{\"status\":\"alive\"}\n")
}

/// `GET /health/ready`: the storage, the job database and the VOSpace database answer
/// (readiness); 503 naming what does not.
pub async fn ready(
    storage: web::Data<Storage>,
    jobs: web::Data<Jobs>,
    vospace: web::Data<VoSpace>,
) -> HttpResponse {
    let storage_ok = storage.reachable().await;
    let jobs_ok = jobs
        .list(&JobFilter {
            last: Some(1),
            ..Default::default()
        })
        .await
        .is_ok();
    let vospace_ok = vospace.store.users().await.is_ok();
    let word = |ok: bool| if ok { "\"ok\"" } else { "\"unavailable\"" };
    let all = storage_ok && jobs_ok && vospace_ok;
    let body = format!(
        "{{\"status\":\"{}\",\"checks\":{{\"storage\":{},\"jobs\":{},\"vospace\":{}}}}}\n",
        if all { "ready" } else { "unavailable" },
        word(storage_ok),
        word(jobs_ok),
        word(vospace_ok)
    );
    let mut res = if all {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    if !all {
        res.insert_header((
            actix_web::http::header::RETRY_AFTER,
            crate::dali::error::RETRY_AFTER_SECS,
        ));
    }
    res.content_type("application/json").body(body)
}

/// The routes of this module.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/health", web::get().to(live))
        .route("/health/ready", web::get().to(ready));
}

/// A shared handle for the app data.
pub fn data(config: &MetricsConfig) -> web::Data<Metrics> {
    web::Data::from(Arc::new(Metrics::new(config)))
}

#[cfg(test)]
mod tests {
    use super::with_request_id;
    use actix_web::http::StatusCode;

    #[test]
    fn error_documents_carry_the_request_id() {
        let id = "abc-1.2_3";
        let votable = "<VOTABLE>\n<RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" \
value=\"ERROR\">bad &lt;query&gt;</INFO>\n</RESOURCE>\n</VOTABLE>\n";
        let got = with_request_id(
            StatusCode::BAD_REQUEST,
            "application/x-votable+xml",
            votable.as_bytes(),
            id,
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&got).unwrap(),
            "<VOTABLE>\n<RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" \
value=\"ERROR\">bad &lt;query&gt;</INFO>\n<INFO name=\"request_id\" value=\"abc-1.2_3\"/>\n\
</RESOURCE>\n</VOTABLE>\n"
        );
        // SIA 1.0, SSA and SCS answer errors with 200.
        let empty = "<VOTABLE><INFO name=\"QUERY_STATUS\" value=\"ERROR\"/></VOTABLE>";
        let got = with_request_id(StatusCode::OK, "text/xml", empty.as_bytes(), id).unwrap();
        assert_eq!(
            std::str::from_utf8(&got).unwrap(),
            "<VOTABLE><INFO name=\"QUERY_STATUS\" value=\"ERROR\"/>\n\
<INFO name=\"request_id\" value=\"abc-1.2_3\"/></VOTABLE>"
        );
        // A result is left alone, and so are a success's text and JSON.
        let ok = "<VOTABLE><INFO name=\"QUERY_STATUS\" value=\"OK\"/></VOTABLE>";
        assert_eq!(
            with_request_id(StatusCode::OK, "text/xml", ok.as_bytes(), id),
            None
        );
        assert_eq!(
            with_request_id(StatusCode::OK, "text/plain", b"fine", id),
            None
        );
        assert_eq!(
            with_request_id(StatusCode::OK, "application/json", b"{}", id),
            None
        );
        let oai = "<OAI-PMH><error code=\"badVerb\">no verb</error></OAI-PMH>";
        let got = with_request_id(
            StatusCode::OK,
            "text/xml; charset=utf-8",
            oai.as_bytes(),
            id,
        );
        assert_eq!(
            got.as_deref(),
            Some(&b"<OAI-PMH><error code=\"badVerb\">no verb (request id abc-1.2_3)</error></OAI-PMH>"[..])
        );
        let plain = with_request_id(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            b"NodeNotFound\n",
            id,
        );
        assert_eq!(
            plain.as_deref(),
            Some(&b"NodeNotFound\nrequest id: abc-1.2_3\n"[..])
        );
        let json = with_request_id(
            StatusCode::NOT_FOUND,
            "application/json",
            br#"{"error":"no"}"#,
            id,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v, serde_json::json!({"error": "no", "request_id": id}));
        assert_eq!(
            with_request_id(StatusCode::NOT_FOUND, "application/json", b"[1]", id),
            None
        );
        assert_eq!(
            with_request_id(StatusCode::NOT_FOUND, "text/html", b"<p>", id),
            None
        );
    }

    use super::*;

    #[test]
    fn protocols_are_a_bounded_set() {
        assert_eq!(protocol_of("/tap/sync"), "tap");
        assert_eq!(protocol_of("/"), "portal");
        assert_eq!(protocol_of("/SCS/x"), "scs");
        assert_eq!(protocol_of("/no/such"), "other");
        assert_eq!(protocol_of("/data/demo/x.fits"), "data");
    }

    #[test]
    fn a_relayed_request_is_not_a_loopback_callers() {
        use actix_web::test::TestRequest;
        let m = MetricsConfig { token: None };
        let metrics = Metrics::new(&m);
        let local = "127.0.0.1:40000".parse().unwrap();
        let direct = TestRequest::default().peer_addr(local);
        assert!(metrics.allowed(&direct.to_http_request()));
        for h in ["X-Forwarded-For", "Forwarded", "X-Real-IP"] {
            let proxied = TestRequest::default()
                .peer_addr(local)
                .insert_header((h, "203.0.113.7"));
            assert!(!metrics.allowed(&proxied.to_http_request()), "{h}");
        }
        let far = TestRequest::default().peer_addr("192.0.2.1:5000".parse().unwrap());
        assert!(!metrics.allowed(&far.to_http_request()));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
