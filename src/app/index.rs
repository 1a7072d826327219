//! `GET /capabilities`: the server's own index, a VOSI capabilities document listing the
//! capabilities of every service it runs (TAP, one cone search per table, SIA 2.0 and 1.0,
//! SSA, DataLink, VOSpace), each followed by that service's VOSI capabilities and
//! availability, so that a client given only the base URL finds every service.

use actix_web::{web, HttpRequest, HttpResponse};
use uws::Jobs;

use crate::dali::capabilities::{self, Capability};
use crate::dali::Service;
use crate::engine::Engine;
use crate::protocols::{datalink, scs, sia, ssa, tap, vospace};

/// The capabilities of every service of the server at `root` (its base URL).
pub fn all_capabilities(
    engine: &Engine,
    tap_service: &tap::Tap,
    jobs: &Jobs,
    root: &str,
) -> Vec<Capability> {
    let mut out = Vec::new();
    let mut service = |base: String, main: Vec<Capability>, after: Vec<Capability>| {
        out.extend(main);
        out.extend(capabilities::vosi(&base));
        out.extend(after);
    };
    let base = format!("{root}/tap");
    let (main, after) = tap::capabilities::capability_list(engine, tap_service, jobs, &base);
    service(base, main, after);
    let hard_maxrec = engine.limits().hard_maxrec;
    for (name, table) in engine.snapshot().tables() {
        let base = format!("{root}/scs/{name}");
        let cap = scs::capability(hard_maxrec, table, &base);
        service(base, vec![cap], Vec::new());
    }
    let base = format!("{root}/sia/v2");
    let cap = sia::capability2(&base);
    service(base, vec![cap], Vec::new());
    let base = format!("{root}/sia/v1");
    let cap = sia::v1::capability1(hard_maxrec, &base);
    service(base, vec![cap], Vec::new());
    let base = format!("{root}/ssa");
    let cap = ssa::capability(engine.limits(), &base);
    service(base, vec![cap], Vec::new());
    let base = format!("{root}/datalink");
    let cap = datalink::capability(&base);
    service(base, vec![cap], Vec::new());
    let base = format!("{root}/vospace");
    let caps = vospace::capability_list(&base);
    service(base, caps, Vec::new());
    out
}

/// `GET /capabilities`.
pub async fn capabilities(
    engine: web::Data<Engine>,
    svc: web::Data<Service>,
    tap_service: web::Data<tap::Tap>,
    jobs: web::Data<Jobs>,
    req: HttpRequest,
) -> HttpResponse {
    let root = svc.base_url(&req);
    let caps = all_capabilities(&engine, &tap_service, &jobs, &root);
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(capabilities::document(
            &[
                tap::capabilities::NAMESPACE,
                scs::NAMESPACE,
                sia::v1::NAMESPACE,
                ssa::NAMESPACE,
            ],
            &caps,
        ))
}
