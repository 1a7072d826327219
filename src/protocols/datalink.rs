//! DataLink 1.1 at `/datalink/links?ID=…`: for each product (by `obs_publisher_did`) the
//! archived file (`#this`), a PNG quick-look rendered from the data (`#preview`, served by
//! `/datalink/preview`) and the FITS header as text (`#auxiliary`, `/datalink/header`).
//! An ID that names nothing served here gets a row with a `NotFoundFault` error message, as
//! the standard asks, not a failed response.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use datafusion::arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use object_store::ObjectStoreExt;
use votable::{EndStatus, Writer, WriterOptions};

use storage::Storage;

use crate::dali::capabilities::{self, Capability, Interface, Param};
use crate::dali::{self, vosi, DalError, Params, Service};
use crate::engine::Engine;
use crate::products::{media, parse_did};
use crate::publish::products::PRODUCTS;

/// Registers the DataLink routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/datalink/links", web::get().to(links))
        .route("/datalink/links", web::post().to(links))
        .route("/datalink/preview", web::get().to(preview))
        .route("/datalink/header", web::get().to(header))
        .route("/datalink/capabilities", web::get().to(capabilities))
        .route(
            "/datalink/availability",
            web::get().to(vosi::availability_response),
        );
}

/// Longest side of a preview, in pixels.
const PREVIEW_SIDE: u32 = 512;

/// Largest stored file a preview or header is read from (the file is read whole, and
/// gunzipped): bigger ones answer 413 rather than hold that much memory.
const MAX_READ_BYTES: u64 = 512 * 1024 * 1024;

/// One row of a links table.
struct Link {
    id: String,
    access_url: Option<String>,
    error: Option<String>,
    semantics: &'static str,
    description: Option<String>,
    content_type: Option<String>,
    content_length: Option<i64>,
}

fn field(name: &str, dt: DataType, ucd: &str, unit: Option<&str>, desc: &str) -> Field {
    let mut md = std::collections::HashMap::from([
        ("ucd".to_string(), ucd.to_string()),
        ("description".to_string(), desc.to_string()),
    ]);
    if let Some(u) = unit {
        md.insert("unit".into(), u.into());
    }
    Field::new(name, dt, true).with_metadata(md)
}

/// The DataLink 1.1 links-table schema (names, types and UCDs from the standard).
fn links_schema() -> Arc<Schema> {
    use DataType::*;
    Arc::new(Schema::new(vec![
        field("ID", Utf8, "meta.id;meta.main", None, "Input identifier"),
        field(
            "access_url",
            Utf8,
            "meta.ref.url",
            None,
            "Link to data or service",
        ),
        field(
            "service_def",
            Utf8,
            "meta.ref",
            None,
            "Reference to a service descriptor resource",
        ),
        field(
            "error_message",
            Utf8,
            "meta.code.error",
            None,
            "Error if an access_url cannot be created",
        ),
        field(
            "semantics",
            Utf8,
            "meta.code",
            None,
            "Term from a controlled vocabulary describing the link",
        ),
        field(
            "description",
            Utf8,
            "meta.note",
            None,
            "Human-readable description of the link",
        ),
        field(
            "content_type",
            Utf8,
            "meta.code.mime",
            None,
            "Mime-type of the content the link returns",
        ),
        field(
            "content_length",
            Int64,
            "phys.size;meta.file",
            Some("byte"),
            "Size of the download the link returns",
        ),
        field(
            "content_qualifier",
            Utf8,
            "meta.code.class",
            None,
            "Type of the content the link returns",
        ),
        field(
            "local_semantics",
            Utf8,
            "meta.code",
            None,
            "Identifier for links of the same kind across rows",
        ),
        field(
            "link_auth",
            Utf8,
            "meta.code",
            None,
            "Authentication the link needs: false, optional or true",
        ),
        field(
            "link_authorized",
            Boolean,
            "meta.code",
            None,
            "Whether the caller may use the link",
        ),
    ]))
}

fn links_batch(rows: &[Link]) -> Result<RecordBatch, DalError> {
    let mut cols: Vec<StringBuilder> = (0..10).map(|_| StringBuilder::new()).collect();
    let mut len = Int64Builder::new();
    let mut authorized = BooleanBuilder::new();
    for r in rows {
        cols[0].append_value(&r.id);
        cols[1].append_option(r.access_url.as_deref());
        cols[2].append_null();
        cols[3].append_option(r.error.as_deref());
        cols[4].append_value(r.semantics);
        cols[5].append_option(r.description.as_deref());
        cols[6].append_option(r.content_type.as_deref());
        len.append_option(r.content_length);
        cols[7].append_null(); // content_qualifier
        cols[8].append_value(r.semantics.trim_start_matches('#')); // local_semantics
        cols[9].append_value("false"); // link_auth: everything here is public
        authorized.append_value(true);
    }
    let mut it = cols
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut next = || {
        it.next()
            .unwrap_or_else(|| Arc::new(StringBuilder::new().finish()))
    };
    let (a, b, c, d, e, f, g) = (next(), next(), next(), next(), next(), next(), next());
    let (q, ls, la) = (next(), next(), next());
    let columns: Vec<ArrayRef> = vec![
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        Arc::new(len.finish()),
        q,
        ls,
        la,
        Arc::new(authorized.finish()),
    ];
    RecordBatch::try_new(links_schema(), columns).map_err(|e| DalError::internal(e.to_string()))
}

fn encode(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// The stored file a product ID names, with its size; `None` when there is none.
async fn locate(
    storage: &Storage,
    authority: &str,
    id: &str,
) -> Option<(String, u64, Option<usize>)> {
    let (collection, path, hdu) = parse_did(id, authority)?;
    let rel = format!("{collection}/{path}");
    let meta = storage
        .store
        .head(&storage.path(&format!("{PRODUCTS}/{rel}")))
        .await
        .ok()?;
    Some((rel, meta.size, hdu))
}

/// Whether `ivoa.obscore` has a record whose `obs_publisher_did` is `id` (compared as a value,
/// never as query text); false without ObsCore or when the lookup fails.
async fn listed_in_obscore(engine: &Engine, id: &str) -> bool {
    use datafusion::prelude::{col, lit};
    let Ok(table) = engine.ctx().table("ivoa.obscore").await else {
        return false;
    };
    let id = id.to_string();
    let lookup = async move {
        table
            .filter(col("obs_publisher_did").eq(lit(id)))?
            .count()
            .await
    };
    matches!(engine.run_lookup(lookup).await, Ok(Ok(n)) if n > 0)
}

async fn links(
    engine: web::Data<Engine>,
    storage: web::Data<Storage>,
    svc: web::Data<Service>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let p = Params::from_request(&req, &body);
    match run_links(&engine, &storage, &svc, &p, &svc.base_url(&req)).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

async fn run_links(
    engine: &Engine,
    storage: &Storage,
    svc: &Service,
    p: &Params,
    base: &str,
) -> Result<HttpResponse, DalError> {
    if let Some(f) = p.get_nonempty("RESPONSEFORMAT") {
        let f = f.trim().to_ascii_lowercase();
        if !(f == "votable"
            || f.starts_with("application/x-votable+xml")
            || f == "text/xml"
            || f == "application/x-votable")
        {
            return Err(DalError::bad_request(format!(
                "RESPONSEFORMAT={f}: links are served as VOTable only"
            )));
        }
    }
    let ids: Vec<String> = p
        .get_all("ID")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(DalError::bad_request(
            "the ID parameter is missing (an obs_publisher_did from ivoa.obscore)",
        ));
    }
    let maxrec = dali::parse_maxrec(p.get_nonempty("MAXREC"), engine.limits())?;
    let mut rows = Vec::new();
    for id in &ids {
        let found = match locate(storage, &svc.authority, id).await {
            // An HDU of a file is a product only when ObsCore lists it (ingest gives each
            // HDU with data its own identifier): `#7` of a one-HDU file names nothing.
            Some((_, _, Some(_))) if !listed_in_obscore(engine, id).await => None,
            found => found,
        };
        match found {
            None => rows.push(Link {
                id: id.clone(),
                access_url: None,
                error: Some(format!(
                    "NotFoundFault: {id} is not a product of this service"
                )),
                semantics: "#this",
                description: None,
                content_type: None,
                content_length: None,
            }),
            Some((rel, size, _hdu)) => {
                let q = encode(id);
                rows.push(Link {
                    id: id.clone(),
                    access_url: Some(format!("{base}/data/{rel}")),
                    error: None,
                    semantics: "#this",
                    description: Some(
                        if media(&rel).gzip {
                            "The archived file (gzip-compressed as stored: sent with \
                             Content-Encoding: gzip, or decompressed to clients that do not \
                             accept gzip)"
                        } else {
                            "The archived file, as ingested"
                        }
                        .into(),
                    ),
                    content_type: Some(media(&rel).content_type.into()),
                    content_length: Some(size as i64),
                });
                rows.push(Link {
                    id: id.clone(),
                    access_url: Some(format!("{base}/datalink/preview?ID={q}")),
                    error: None,
                    semantics: "#preview",
                    description: Some("A PNG quick-look rendered from the data".into()),
                    content_type: Some("image/png".into()),
                    content_length: None,
                });
                rows.push(Link {
                    id: id.clone(),
                    access_url: Some(format!("{base}/datalink/header?ID={q}")),
                    error: None,
                    semantics: "#auxiliary",
                    description: Some("The FITS header of every HDU, as text".into()),
                    content_type: Some("text/plain".into()),
                    content_length: None,
                });
            }
        }
    }
    let overflow = rows.len() as u64 > maxrec;
    rows.truncate(maxrec.min(usize::MAX as u64) as usize);
    let batch = links_batch(&rows)?;
    let mut w = Writer::new(
        links_schema(),
        WriterOptions {
            table_name: Some("links".into()),
            ..Default::default()
        },
    )
    .map_err(|e| DalError::internal(e.to_string()))?;
    let mut out = Vec::new();
    out.extend_from_slice(&w.begin());
    out.extend_from_slice(
        &w.write_batch(&batch)
            .map_err(|e| DalError::internal(e.to_string()))?,
    );
    out.extend_from_slice(&w.finish(if overflow {
        EndStatus::Overflow
    } else {
        EndStatus::Ok
    }));
    Ok(HttpResponse::Ok()
        .content_type("application/x-votable+xml;content=datalink")
        .body(out))
}

fn plain(status: actix_web::http::StatusCode, msg: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(msg)
}

/// What previews and headers may take (registered as application data): a few at once (the
/// others wait `wait` at most, then 503), each from a decompressed file of at most
/// `max_bytes`.
pub struct Previews {
    /// Places for renderings at once.
    pub places: Arc<tokio::sync::Semaphore>,
    /// How long a request waits for a place.
    pub wait: std::time::Duration,
    /// Largest decompressed size of a file read.
    pub max_bytes: u64,
}

impl Previews {
    /// From `[limits] previews`, `sync_queue_ms` and `decompressed_mb`.
    pub fn new(limits: &crate::engine::LimitsConfig) -> Self {
        Previews {
            places: Arc::new(tokio::sync::Semaphore::new(limits.previews.max(1))),
            wait: std::time::Duration::from_millis(limits.sync_queue_ms),
            max_bytes: limits.decompressed_mb.saturating_mul(1024 * 1024),
        }
    }
}

/// A rendered product (made on a blocking thread: an `HttpResponse` cannot cross threads).
struct Rendered {
    status: actix_web::http::StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    /// The body may be cached (it depends on the stored file only).
    cache: bool,
}

impl Rendered {
    fn ok(content_type: &'static str, body: Vec<u8>) -> Self {
        Rendered {
            status: actix_web::http::StatusCode::OK,
            content_type,
            body,
            cache: true,
        }
    }

    fn fail(status: actix_web::http::StatusCode, message: String) -> Self {
        Rendered {
            status,
            content_type: "text/plain; charset=utf-8",
            body: message.into_bytes(),
            cache: false,
        }
    }

    fn response(self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if self.cache {
            r.insert_header(("Cache-Control", "public, max-age=86400"));
        }
        r.content_type(self.content_type).body(self.body)
    }
}

/// What a preview or header request makes of a product: the stored file, read, decompressed
/// (bounded) and turned into a response body by `render`, all on a blocking thread while the
/// request holds one of the places of `previews`.
async fn render_product(
    storage: &Storage,
    svc: &Service,
    previews: &Previews,
    req: &HttpRequest,
    render: impl FnOnce(Vec<u8>, Option<usize>) -> Rendered + Send + 'static,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let p = Params::from_request(req, &[]);
    let Some(id) = p.get_nonempty("ID") else {
        return plain(
            StatusCode::BAD_REQUEST,
            "the ID parameter is missing".into(),
        );
    };
    let Some((rel, size, hdu)) = locate(storage, &svc.authority, id).await else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("NotFoundFault: {id} is not a product of this service"),
        );
    };
    if size > MAX_READ_BYTES {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{id} is {size} bytes: previews and headers are made from files up to {MAX_READ_BYTES} bytes"
            ),
        );
    }
    let place =
        match tokio::time::timeout(previews.wait, previews.places.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                return HttpResponse::ServiceUnavailable()
                    .insert_header((
                        actix_web::http::header::RETRY_AFTER,
                        dali::error::RETRY_AFTER_SECS,
                    ))
                    .content_type("text/plain; charset=utf-8")
                    .body(
                        "the service is busy: as many previews are being made as it makes at once \
                     ([limits] previews); retry in a few seconds",
                    )
            }
        };
    let bytes = match storage
        .get(&storage.path(&format!("{PRODUCTS}/{rel}")))
        .await
    {
        Ok(b) => b,
        Err(e) => return plain(StatusCode::SERVICE_UNAVAILABLE, format!("storage: {e}")),
    };
    let max = previews.max_bytes;
    let done = tokio::task::spawn_blocking(move || {
        let _place = place;
        match catalogs::source::maybe_gunzip(bytes.to_vec(), max) {
            Ok(file) => render(file, hdu),
            Err(catalogs::Error::TooLarge(m)) => Rendered::fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{m}: previews and headers are made from files that decompress to at most \
                     {max} bytes ([limits] decompressed_mb)"
                ),
            ),
            Err(e) => Rendered::fail(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        }
    })
    .await;
    match done {
        Ok(r) => r.response(),
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering failed: {e}"),
        ),
    }
}

/// The answer to an ID whose `#hdu` names an HDU the file does not have: DataLink's
/// NotFoundFault, as for an ID that names no file.
fn not_an_hdu(hdu: Option<usize>, len: usize) -> Rendered {
    Rendered::fail(
        actix_web::http::StatusCode::NOT_FOUND,
        format!(
            "NotFoundFault: HDU {} does not exist: the file has {len} HDU{}",
            hdu.unwrap_or_default(),
            if len == 1 { "" } else { "s" }
        ),
    )
}

/// [`not_an_hdu`] when `hdu` is past the HDUs of `file` (a file that is not readable as FITS
/// is left to the renderer to report).
fn missing_hdu(file: &[u8], hdu: Option<usize>) -> Option<Rendered> {
    let i = hdu?;
    let n = votable::fits::hdus(file).ok()?.len();
    (i >= n).then(|| not_an_hdu(hdu, n))
}

async fn preview(
    storage: web::Data<Storage>,
    svc: web::Data<Service>,
    previews: web::Data<Previews>,
    req: HttpRequest,
) -> HttpResponse {
    render_product(&storage, &svc, &previews, &req, |file, hdu| {
        if let Some(r) = missing_hdu(&file, hdu) {
            return r;
        }
        // Already decompressed: the bound is not met again.
        match catalogs::preview::preview_png(&file, hdu, PREVIEW_SIDE, u64::MAX) {
            Ok(png) => Rendered::ok("image/png", png),
            Err(e) => Rendered::fail(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                format!("no preview: {e}"),
            ),
        }
    })
    .await
}

async fn header(
    storage: web::Data<Storage>,
    svc: web::Data<Service>,
    previews: web::Data<Previews>,
    req: HttpRequest,
) -> HttpResponse {
    render_product(&storage, &svc, &previews, &req, |file, hdu| {
        match votable::fits::hdus(&file) {
            Ok(hdus) if hdu.is_some_and(|i| i >= hdus.len()) => not_an_hdu(hdu, hdus.len()),
            Ok(hdus) => {
                // The cards of every HDU, one per line, each header ending with END (the next
                // starts with its XTENSION card), as `fitsheader` or `imhead` show them.
                let text: String = hdus.iter().map(|h| h.header_text()).collect();
                let mut r = Rendered::ok("text/plain; charset=utf-8", text.into_bytes());
                r.cache = false;
                r
            }
            Err(e) => Rendered::fail(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                format!("not readable as FITS: {e}"),
            ),
        }
    })
    .await
}

async fn capabilities(svc: web::Data<Service>, req: HttpRequest) -> HttpResponse {
    let base = format!("{}/datalink", svc.base_url(&req));
    capabilities::respond(&[], &[capability(&base)], &base, &[])
}

/// The DataLink links capability of the service at `base` (`…/datalink`).
pub fn capability(base: &str) -> Capability {
    let mut interface = Interface::param_http(format!("{base}/links")).standard("1.1");
    interface.query_types = vec!["GET"];
    interface.result_type = Some("application/x-votable+xml;content=datalink");
    interface.params = vec![Param {
        name: "ID",
        description: "obs_publisher_did of a product",
        unit: None,
        ucd: Some("meta.id;meta.main"),
        datatype: "string",
    }];
    Capability::new("ivo://ivoa.net/std/DataLink#links-1.1", interface)
}
