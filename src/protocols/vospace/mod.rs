//! The VOSpace 2.1 REST binding at `/vospace`, over the `vospace` crate.
//!
//! * [`nodes`]: `nodes/{path}`: GET (`detail`, `limit`, `uri` paging), PUT (create), POST
//!   (properties), DELETE.
//! * [`transfers`]: `synctrans` (a transfer document, or `TARGET`/`DIRECTION`/`PROTOCOL`
//!   parameters) → 303 to `xfer/{id}`, the negotiated transfer with its endpoints;
//!   `REQUEST=redirect` → 303 straight to the endpoint; `transfers`: asynchronous transfers as
//!   UWS jobs (move, copy, push, pull) through the shared binding, run by
//!   [`transfers::TransferExecutor`]. Every transfer, synchronous ones included, is a job of
//!   kind `vospace` its owner can look at (the `vos` client checks `transfers/{id}`).
//! * [`data`]: `data/{id}`, the negotiated endpoints (PUT the bytes, GET them, with ranges):
//!   the unguessable transfer id is the authorisation, for as long as `transfer_lifetime`;
//!   `files/{path}`, the `files-proto` endpoint.
//! * `protocols`, `views`, `properties`, and VOSI `capabilities`, `availability`.
//!
//! Identity: `crate::identity`. Faults are `text/plain` bodies starting with the fault name,
//! with the status of [`Fault::status`].

pub mod data;
pub mod nodes;
pub mod transfers;

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use vospace::model::{self, std_uri, Fault};
use vospace::xml;
use vospace::VoStore;

use crate::dali::capabilities::{self, Capability, Interface};
use crate::dali::{self, Service};

/// VOSpace settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoSpaceConfig {
    /// The node and user database (SQLite file). Default: `<data>/vospace.sqlite` when the data
    /// folder is local; it must be given when the data folder is an object-store URL (the bytes
    /// always go to the data folder's object store, under `vospace/`).
    pub database: Option<PathBuf>,
    /// Quota of a new user, in bytes (`vostok user add --quota` overrides; 0: none).
    pub default_quota: u64,
    /// Largest body of a node or transfer document, in bytes.
    pub max_document_bytes: usize,
    /// How long a negotiated transfer endpoint (a pre-authorised data URL) stays valid, seconds.
    pub transfer_lifetime: u64,
    /// OpenID Connect login (`[vospace.oidc]`): JWTs of this issuer are accepted as bearer
    /// tokens beside vostok's own; absent: off.
    #[serde(default)]
    pub oidc: Option<vospace::oidc::OidcConfig>,
}

impl Default for VoSpaceConfig {
    fn default() -> Self {
        VoSpaceConfig {
            database: None,
            default_quota: 10 * 1024 * 1024 * 1024,
            max_document_bytes: 1024 * 1024,
            transfer_lifetime: 24 * 3600,
            oidc: None,
        }
    }
}

/// What the VOSpace front needs (registered as application data).
pub struct VoSpace {
    /// The space.
    pub store: Arc<VoStore>,
    /// `[vospace]`.
    pub config: VoSpaceConfig,
    /// The IVOA authority of node URIs (`vos://AUTHORITY!vospace/…`).
    pub authority: String,
    /// The service (base URL).
    pub service: Service,
}

/// Registers the VOSpace routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/vospace/capabilities", web::get().to(capabilities))
        .route(
            "/vospace/availability",
            web::get().to(dali::vosi::availability_response),
        )
        .route("/vospace/protocols", web::get().to(protocols))
        .route("/vospace/views", web::get().to(views))
        .route("/vospace/properties", web::get().to(properties))
        .route("/vospace/nodes", web::get().to(nodes::get_node))
        .route("/vospace/nodes{tail:/.*}", web::get().to(nodes::get_node))
        .route("/vospace/nodes{tail:/.*}", web::put().to(nodes::put_node))
        .route("/vospace/nodes{tail:/.*}", web::post().to(nodes::post_node))
        .route(
            "/vospace/nodes{tail:/.*}",
            web::delete().to(nodes::delete_node),
        )
        .route("/vospace/synctrans", web::post().to(transfers::synctrans))
        .route("/vospace/synctrans", web::get().to(transfers::synctrans))
        .route("/vospace/xfer/{id}", web::get().to(transfers::xfer))
        .route(
            "/vospace/transfers",
            web::post().to(transfers::create_transfer),
        )
        .route("/vospace/files{tail:/.*}", web::get().to(data::get_file))
        .route("/vospace/data/{id}", web::get().to(data::get_data))
        .route("/vospace/data/{id}", web::put().to(data::put_data));
    dali::uws::routes(cfg, &transfers::BINDING);
}

/// The fault as an HTTP response.
fn fault(f: Fault) -> HttpResponse {
    let mut r = HttpResponse::build(
        StatusCode::from_u16(f.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    if matches!(f, Fault::Busy(_)) {
        r.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
    }
    r.content_type("text/plain; charset=utf-8")
        .body(format!("{}: {}\n", f.name(), f.detail()))
}

fn xml_ok(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

fn creator_uri(authority: &str, owner: &str) -> String {
    format!("ivo://{authority}/user?{owner}")
}

/// The node path of a `/vospace/nodes/...` (or `files/...`) request. actix decodes the path
/// but leaves `%25`, `%2B` and `%2F` encoded: those are decoded here, per segment, and a
/// segment that would hold a `/` is refused.
fn node_path(req: &HttpRequest) -> Result<String, Fault> {
    let tail = req.match_info().query("tail");
    let mut out = String::with_capacity(tail.len());
    for seg in tail.split('/') {
        let decoded = xml::percent_decode(seg)
            .ok_or_else(|| Fault::InvalidUri(format!("'{tail}' is not a valid node path")))?;
        if decoded.contains('/') {
            return Err(Fault::InvalidUri(format!(
                "'{tail}': a node name cannot contain '/'"
            )));
        }
        out.push('/');
        out.push_str(&decoded);
    }
    model::normalise_path(&out)
}

/// The request body, bounded.
async fn body(payload: web::Payload, max: usize) -> Result<bytes::Bytes, Fault> {
    payload
        .to_bytes_limited(max)
        .await
        .map_err(|_| Fault::InvalidArgument(format!("the document is larger than {max} bytes")))?
        .map_err(|e| Fault::InvalidArgument(format!("reading the request: {e}")))
}

/// Now, as VOSpace writes dates.
fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Service documents

async fn protocols() -> HttpResponse {
    xml_ok(
        StatusCode::OK,
        xml::write_protocols(
            &[std_uri::PROTO_HTTPPUT, std_uri::PROTO_HTTPSPUT],
            &[std_uri::PROTO_HTTPGET, std_uri::PROTO_HTTPSGET],
        ),
    )
}

async fn views() -> HttpResponse {
    xml_ok(
        StatusCode::OK,
        xml::write_views(&[std_uri::VIEW_DEFAULT], &[std_uri::VIEW_DEFAULT]),
    )
}

async fn properties() -> HttpResponse {
    let (accepts, contains) = xml::standard_properties();
    xml_ok(
        StatusCode::OK,
        xml::write_properties(&accepts, &contains, &contains),
    )
}

async fn capabilities(vs: web::Data<VoSpace>, req: HttpRequest) -> HttpResponse {
    let base = format!("{}/vospace", vs.service.base_url(&req));
    capabilities::respond(&[], &capability_list(&base), &base, &[])
}

/// The VOSpace capabilities of the service at `base` (`…/vospace`).
pub fn capability_list(base: &str) -> Vec<Capability> {
    [
        ("ivo://ivoa.net/std/VOSpace/v2.0#nodes", "nodes"),
        ("ivo://ivoa.net/std/VOSpace#sync-2.1", "synctrans"),
        ("ivo://ivoa.net/std/VOSpace/v2.0#transfers", "transfers"),
        ("ivo://ivoa.net/std/VOSpace/v2.0#protocols", "protocols"),
        ("ivo://ivoa.net/std/VOSpace/v2.0#views", "views"),
        ("ivo://ivoa.net/std/VOSpace/v2.0#properties", "properties"),
        ("ivo://ivoa.net/std/VOSpace#files-proto", "files"),
    ]
    .into_iter()
    .map(|(id, path)| {
        Capability::new(
            id,
            Interface::param_http(format!("{base}/{path}")).standard("2.1"),
        )
    })
    .collect()
}
