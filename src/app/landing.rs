//! The page for people who open the server in a browser: its services and catalogs.

use actix_web::{web, HttpRequest, HttpResponse};
use votable::xml::escape as esc;

use crate::dali::Service;
use crate::engine::Engine;

/// A page for people who open the server in a browser.
pub async fn landing(
    engine: web::Data<Engine>,
    svc: web::Data<Service>,
    req: HttpRequest,
) -> HttpResponse {
    let base = svc.base_url(&req);
    let mut rows = String::new();
    for (name, t) in engine.snapshot().tables() {
        let m = &t.catalog().meta.table;
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td><a href=\"{base}/scs/{}?RA=10&amp;DEC=10&amp;SR=1\">cone search</a></td></tr>\n",
            esc(name),
            esc(m.title.as_deref().unwrap_or("")),
            t.catalog().rows.map(|r| r.to_string()).unwrap_or_default(),
            esc(name)
        ));
    }
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\n\
<h1>{title}</h1>\n<p>A Virtual Observatory data server (vostok {version}).</p>\n\
<h2>Services</h2>\n<p>Every service's capabilities, for clients: \
<a href=\"{base}/capabilities\">{base}/capabilities</a> (VOSI).</p>\n<ul>\n<li>TAP 1.1 (ADQL 2.1): <code>{base}/tap</code> — \
<a href=\"{base}/tap/capabilities\">capabilities</a>, <a href=\"{base}/tap/tables\">tables</a>, \
<a href=\"{base}/tap/availability\">availability</a></li>\n\
<li>Simple Cone Search 1.03: <code>{base}/scs/&lt;schema&gt;.&lt;table&gt;</code></li>\n\
<li>Simple Image Access 2.0: <code>{base}/sia/v2/query</code> (<a href=\"{base}/sia/v2/query?POS=CIRCLE+83.633+22.0145+0.05\">the Crab</a>), 1.0: <code>{base}/sia/v1</code></li>\n\
<li>Simple Spectral Access 1.1: <code>{base}/ssa</code> (<a href=\"{base}/ssa?REQUEST=queryData&amp;POS=230.876,-38.358&amp;SIZE=0.01\">MN Lup</a>)</li>\n\
<li>DataLink 1.1: <code>{base}/datalink/links?ID=…</code></li></ul>\n\
<h2>Catalogs</h2>\n<table border=\"1\" cellpadding=\"4\"><tr><th>table</th><th>title</th><th>rows</th><th></th></tr>\n{rows}</table>\n\
<h2>Try</h2><pre>curl '{base}/tap/sync?LANG=ADQL&amp;QUERY=SELECT+TOP+5+*+FROM+hipparcos.hip2'</pre>\n</body></html>\n",
        title = esc(&svc.title),
        version = env!("CARGO_PKG_VERSION"),
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html)
}
