//! The HTTP server: every protocol's routes, the handles each is given as application data,
//! and the middleware every response goes through (`HEAD` as `GET` without the body, CORS
//! with its preflight `OPTIONS`, `Server`, the access log).

use actix_cors::Cors;
use actix_web::body::{BodySize, BodyStream, BoxBody, MessageBody, SizedStream};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, App, HttpMessage, HttpServer};
use anyhow::Context;

use super::state::State;
use super::Config;
use crate::dali::http::HeadRequest;
use crate::protocols;

/// Runs the server until interrupted.
pub fn run(config: Config) -> anyhow::Result<()> {
    // Queries run on their own multi-threaded runtime; HTTP I/O on actix's workers. Every
    // runtime's blocking pool is bounded (`[limits] blocking_threads`, LimitsConfig).
    let blocking = config.limits.blocking_threads.max(1);
    let drain = config.limits.drain_seconds;
    let query_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("vostok-query")
        .max_blocking_threads(blocking)
        // Planning deep expressions recurses (see engine::Engine::plan_adql).
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()?;
    // The slow lane: heavy queries and asynchronous jobs, on one thread, so that they leave a
    // core to the cheap queries (engine::LimitsConfig).
    let heavy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("vostok-heavy")
        .max_blocking_threads(blocking)
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()?;
    let state = State::open(&config, &query_rt, &heavy_rt)?;
    let bind = config.bind.clone();
    let locks = state.locks;
    let query_handle = query_rt.handle().clone();
    let sys = actix_web::rt::System::new();
    sys.block_on(async move {
        let service = web::Data::new(state.service);
        let storage = web::Data::new(state.storage);
        let engine = web::Data::from(state.engine);
        let obscore = web::Data::new(state.obscore);
        let checksums = web::Data::new(state.checksums);
        let jobs = web::Data::from(state.jobs);
        let identity = web::Data::from(state.identity);
        let tap = web::Data::from(state.tap);
        let vospace = web::Data::from(state.vospace);
        let previews = web::Data::from(state.previews);
        let metrics = super::metrics::data(&config.metrics);
        let coverages = web::Data::new(super::coverage::Coverages::default());
        {
            // Every catalog's coverage, made ready in the background.
            let coverages = coverages.clone();
            let engine = engine.clone();
            let storage = storage.clone();
            actix_web::rt::spawn(async move { coverages.warm(&engine, &storage).await });
        }
        // Follows the publication (catalogs ingested, replaced or dropped while it runs).
        let live = web::Data::new(super::live::Live::new(
            engine.clone().into_inner(),
            storage.get_ref().clone(),
            obscore.clone(),
            coverages.clone(),
            &config,
            query_handle.clone(),
        ));
        query_handle.spawn(live.clone().into_inner().watch());
        let oai = web::Data::new(super::oai::Oai::new(
            config.registry.clone(),
            config.service(),
        ));
        let draining = engine.clone();
        let stopping_jobs = jobs.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(service.clone())
                .app_data(storage.clone())
                .app_data(engine.clone())
                .app_data(obscore.clone())
                .app_data(checksums.clone())
                .app_data(jobs.clone())
                .app_data(identity.clone())
                .app_data(tap.clone())
                .app_data(vospace.clone())
                .app_data(previews.clone())
                .app_data(metrics.clone())
                .app_data(oai.clone())
                .app_data(coverages.clone())
                .app_data(live.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                // Innermost: error documents get the request id in their text; then the
                // routes see a HEAD request as the GET it mirrors (same headers, no body).
                .wrap(actix_web::middleware::from_fn(
                    super::metrics::request_id_in_errors,
                ))
                .wrap(actix_web::middleware::from_fn(head_as_get))
                .wrap(Cors::permissive().max_age(3600))
                .wrap(actix_web::middleware::from_fn(super::metrics::record))
                .wrap(
                    actix_web::middleware::DefaultHeaders::new()
                        .add(("Server", concat!("vostok/", env!("CARGO_PKG_VERSION")))),
                )
                .wrap(actix_web::middleware::from_fn(super::metrics::request_id))
                .wrap(
                    actix_web::middleware::Logger::new(
                        "%a \"%{request}xi\" %s %b %Dms %{x-request-id}o",
                    )
                    .custom_request_replace("request", logged_request)
                    .log_target("vostok::http"),
                )
                .route("/services", web::get().to(super::landing::landing))
                .configure(super::portal::routes)
                .route("/capabilities", web::get().to(super::index::capabilities))
                .configure(super::metrics::routes)
                .configure(super::oai::routes)
                .configure(super::coverage::routes)
                .configure(super::live::routes)
                .configure(protocols::tap::routes)
                .configure(protocols::scs::routes)
                .configure(protocols::files::routes)
                .configure(protocols::sia::routes)
                .configure(protocols::ssa::routes)
                .configure(protocols::datalink::routes)
                .configure(protocols::vospace::routes)
                .default_service(web::to(no_such_resource))
        })
        // Without TCP_NODELAY the last small segment of a response waits for the client's
        // delayed ACK (~40 ms on Linux): actix keeps the OS default unless told.
        .tcp_nodelay(true)
        // A client that closes its side of the connection has gone: the request's handler
        // and its response stream are dropped at once, which stops the query behind them
        // (engine::stream). Allowing half-closed connections would keep a synchronous query
        // running for nobody until its time limit.
        .h1_allow_half_closed(false)
        // Each worker's pool of threads for blocking work (VOSpace file I/O, SQLite): actix's
        // default, 512 shared by the workers, let VOSpace traffic start hundreds of threads,
        // each keeping its own stack and allocator heap.
        .worker_max_blocking_threads(blocking)
        // On SIGTERM or Ctrl-C (handled below, not by actix): no new connection is taken,
        // running queries have `[limits] drain_seconds` to finish and then end their results
        // with an error that says so; 5 s later (time for clients to read those ends) the
        // connections still busy (a long file download, a client that stopped reading) are
        // closed.
        .disable_signals()
        .shutdown_timeout(drain.saturating_add(5))
        .bind(&bind)
        .with_context(|| format!("cannot listen on {bind}"))?;
        for addr in server.addrs() {
            tracing::info!(
                "listening on http://{addr}/ (TAP at /tap, cone search at /scs/<schema>.<table>)"
            );
        }
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            stop_signal().await;
            tracing::info!(
                "stopping: no new connections; running queries have {drain} s to finish"
            );
            draining.start_draining();
            // Asynchronous jobs are not drained: the ones running here are handed over at once
            // (another server sharing the job database, or this one restarted, runs them
            // again), and no more are started here.
            let handed =
                tokio::time::timeout(std::time::Duration::from_secs(5), stopping_jobs.hand_over())
                    .await;
            if handed.is_err() {
                tracing::warn!(
                    "handing the running jobs over took too long: they run again once their \
                     leases run out"
                );
            }
            handle.stop(true).await;
        });
        server.await.context("server failed")
    })?;
    // Queries still running are not waited for (a long one would hold the shutdown up).
    query_rt.shutdown_timeout(std::time::Duration::from_secs(2));
    heavy_rt.shutdown_timeout(std::time::Duration::from_secs(2));
    drop(locks);
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C); never when neither can be listened for.
pub(crate) async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT: stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// What a path no route takes answers: 404 with a pointer to the landing page, which lists
/// every service (a bare 404 without a body reads as a broken server).
async fn no_such_resource(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    actix_web::HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "no such resource: {} (the services are listed at / and /capabilities)\n",
            req.path()
        ))
}

/// `HEAD` on any resource (RFC 9110 §9.3.2): the request goes to the resource's `GET`
/// handler, marked [`HeadRequest`] so that a handler able to skip the body's work does, and
/// the answer keeps the `GET`'s status and headers (`Content-Length` too) without the body,
/// whose production stops (a query behind it is cancelled). One rule for every route: no
/// route declares `HEAD` itself.
async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let head = req.method() == Method::HEAD;
    if head {
        req.head_mut().method = Method::GET;
        req.extensions_mut().insert(HeadRequest);
    }
    let res = next.call(req).await?;
    Ok(res.map_body(|_, body| {
        if head {
            without_body(body.size())
        } else {
            body.boxed()
        }
    }))
}

/// An empty body that declares `size`: the length header of the body it stands for.
fn without_body(size: BodySize) -> BoxBody {
    let empty = || futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
    match size {
        BodySize::Sized(n) => BoxBody::new(SizedStream::new(n, empty())),
        BodySize::Stream => BoxBody::new(BodyStream::new(empty())),
        BodySize::None => BoxBody::new(actix_web::body::None::new()),
    }
}

/// A request as the access log shows it (`METHOD path?query HTTP/version`), with the
/// capability in a negotiated VOSpace transfer's URL (`/vospace/data/<id>`,
/// `/vospace/xfer/<id>`: whoever has it may use it) cut to its first characters.
fn logged_request(req: &actix_web::dev::ServiceRequest) -> String {
    let path = redact_capability(req.path());
    let query = match req.query_string() {
        "" => String::new(),
        q => format!("?{q}"),
    };
    format!("{} {path}{query} {:?}", req.method(), req.version())
}

/// `path` with the id after `/vospace/data/` or `/vospace/xfer/` cut to 4 characters.
fn redact_capability(path: &str) -> String {
    for prefix in ["/vospace/data/", "/vospace/xfer/"] {
        if let Some(id) = path.strip_prefix(prefix) {
            let kept: String = id.chars().take(4).collect();
            return format!("{prefix}{kept}…");
        }
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    use super::redact_capability;

    #[test]
    fn capabilities_are_not_logged_in_full() {
        assert_eq!(
            redact_capability("/vospace/data/0123456789abcdef"),
            "/vospace/data/0123…"
        );
        assert_eq!(redact_capability("/vospace/xfer/ab"), "/vospace/xfer/ab…");
        assert_eq!(
            redact_capability("/vospace/nodes/alice/x"),
            "/vospace/nodes/alice/x"
        );
    }
}
