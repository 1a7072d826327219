//! The HTTP server: every protocol's routes, the handles each is given as application data,
//! and the middleware every response goes through (CORS, `Server`, the access log).

use actix_cors::Cors;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use super::state::State;
use super::Config;
use crate::protocols;

/// Runs the server until interrupted.
pub fn run(config: Config) -> anyhow::Result<()> {
    // Queries run on their own multi-threaded runtime; HTTP I/O on actix's workers.
    let query_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("vostok-query")
        // Planning deep expressions recurses (see engine::Engine::plan_adql).
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()?;
    let state = State::open(&config, &query_rt)?;
    let bind = config.bind.clone();
    let sys = actix_web::rt::System::new();
    sys.block_on(async move {
        let service = web::Data::new(state.service);
        let storage = web::Data::new(state.storage);
        let engine = web::Data::from(state.engine);
        let obscore = web::Data::new(state.obscore);
        let jobs = web::Data::from(state.jobs);
        let identity = web::Data::from(state.identity);
        let tap = web::Data::from(state.tap);
        let vospace = web::Data::from(state.vospace);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(service.clone())
                .app_data(storage.clone())
                .app_data(engine.clone())
                .app_data(obscore.clone())
                .app_data(jobs.clone())
                .app_data(identity.clone())
                .app_data(tap.clone())
                .app_data(vospace.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .wrap(Cors::permissive().max_age(3600))
                .wrap(
                    actix_web::middleware::DefaultHeaders::new()
                        .add(("Server", concat!("vostok/", env!("CARGO_PKG_VERSION")))),
                )
                .wrap(
                    actix_web::middleware::Logger::new("%a \"%r\" %s %b %Dms")
                        .log_target("vostok::http"),
                )
                .route("/", web::get().to(super::landing::landing))
                .configure(protocols::tap::routes)
                .configure(protocols::scs::routes)
                .configure(protocols::files::routes)
                .configure(protocols::sia::routes)
                .configure(protocols::ssa::routes)
                .configure(protocols::datalink::routes)
                .configure(protocols::vospace::routes)
        })
        // Without TCP_NODELAY the last small segment of a response waits for the client's
        // delayed ACK (~40 ms on Linux): actix keeps the OS default unless told.
        .tcp_nodelay(true)
        .bind(&bind)
        .with_context(|| format!("cannot listen on {bind}"))?;
        for addr in server.addrs() {
            tracing::info!(
                "listening on http://{addr}/ (TAP at /tap, cone search at /scs/<schema>.<table>)"
            );
        }
        server.run().await.context("server failed")
    })?;
    drop(query_rt);
    Ok(())
}
