//! `/moc/{schema.table}`: the sky coverage of each served catalog as a MOC (IVOA MOC 2.0), in
//! FITS (the default), MOC JSON (what Aladin Lite's `A.MOCFromURL` reads) or MOC-ASCII
//! (`?format=fits|json|ascii`). A catalog folder's `moc.fits`, when there is one, is served as
//! it is; otherwise the coverage is computed from the partition files (the `_healpix_29`
//! column) once per published version and kept in memory. Every catalog's coverage is made
//! ready in the background at start and after each publication change.
//! `/moc/collection/{name}` is the coverage of a collection of images and spectra (the union
//! of its products' footprints, see `publish::coverage`), in the same formats, read from
//! storage at each request. Coverage is public metadata, as `/tap/tables` is: no identity is
//! read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use catalogs::coverage::{self, Coverage};
use serde::Deserialize;
use storage::Storage;
use tokio::sync::OnceCell;

use crate::engine::Engine;

type Slot = Arc<OnceCell<Result<Arc<Coverage>, String>>>;

/// The coverages of the served catalogs, each computed or read once.
#[derive(Default)]
pub struct Coverages {
    slots: Mutex<HashMap<String, Slot>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Coverages {
    /// The coverage of the served catalog `name` (case-insensitive); None when no such table.
    pub async fn get(
        &self,
        engine: &Engine,
        storage: &Storage,
        name: &str,
    ) -> Option<Result<Arc<Coverage>, String>> {
        let table = engine.table(name)?;
        // By the version's root: a replaced catalog's coverage is computed again.
        let key = table.catalog().root.to_string();
        let slot = lock(&self.slots).entry(key).or_default().clone();
        let catalog = table.catalog().clone();
        let got = slot
            .get_or_init(|| async move {
                let stored = coverage::read_coverage(storage, &catalog).await;
                let found = match stored {
                    Ok(Some(c)) => Ok(c),
                    Ok(None) => coverage::catalog_coverage(storage, &catalog).await,
                    Err(e) => Err(e),
                };
                found.map(Arc::new).map_err(|e| e.to_string())
            })
            .await;
        Some(got.clone())
    }

    /// Forgets the coverages of versions no longer served (`served`: the roots served now).
    pub fn retain(&self, served: &[String]) {
        lock(&self.slots).retain(|root, _| served.contains(root));
    }

    /// Makes every served catalog's coverage ready, one after the other.
    pub async fn warm(&self, engine: &Engine, storage: &Storage) {
        let tables = engine.snapshot().tables().to_vec();
        for (name, _) in &tables {
            match self.get(engine, storage, name).await {
                Some(Ok(c)) => tracing::info!(
                    "{name}: coverage at order {}, {:.4}% of the sky",
                    coverage::order(&c),
                    100.0 * coverage::sky_fraction(&c)
                ),
                Some(Err(e)) => tracing::warn!("{name}: no coverage: {e}"),
                None => {}
            }
        }
    }
}

/// The routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/moc/collection/{name}", web::get().to(collection))
        .route("/moc/{table}", web::get().to(moc));
}

#[derive(Deserialize)]
struct Params {
    format: Option<String>,
}

fn plain(status: StatusCode, text: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(text + "\n")
}

/// The `format` parameter, or the error to answer.
fn format_of(query: &Params) -> Result<String, Box<HttpResponse>> {
    let format = query
        .format
        .as_deref()
        .unwrap_or("fits")
        .to_ascii_lowercase();
    if !matches!(format.as_str(), "fits" | "json" | "ascii") {
        return Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            format!("format must be fits, json or ascii, not {format:?}"),
        )));
    }
    Ok(format)
}

async fn moc(
    path: web::Path<String>,
    query: web::Query<Params>,
    engine: web::Data<Engine>,
    storage: web::Data<Storage>,
    coverages: web::Data<Coverages>,
) -> HttpResponse {
    let name = path.into_inner();
    let format = match format_of(&query) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let coverage = match coverages.get(&engine, &storage, &name).await {
        None => {
            return plain(
                StatusCode::NOT_FOUND,
                format!("no catalog {name:?} is served here (see /tap/tables)"),
            )
        }
        Some(Err(e)) => {
            tracing::error!("coverage of {name}: {e}");
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the coverage of {name} cannot be computed"),
            );
        }
        Some(Ok(c)) => c,
    };
    written(&coverage, &format, &name.to_ascii_lowercase())
}

/// `/moc/collection/{name}`: the coverage of a collection of images and spectra
/// (`obs_collection` in `ivoa.obscore`), read from storage at each request, so that a
/// collection ingested while the server runs is there at once.
async fn collection(
    path: web::Path<String>,
    query: web::Query<Params>,
    storage: web::Data<Storage>,
) -> HttpResponse {
    let name = path.into_inner();
    let format = match format_of(&query) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match crate::publish::coverage::collection_coverage(&storage, &name).await {
        Ok(Some(c)) => written(&c, &format, &format!("collection-{name}")),
        Ok(None) => plain(
            StatusCode::NOT_FOUND,
            format!("no collection {name:?} is served here (see obs_collection in ivoa.obscore)"),
        ),
        Err(e) => {
            tracing::error!("coverage of collection {name}: {e:#}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the coverage of collection {name} cannot be read"),
            )
        }
    }
}

/// The coverage in `format` (fits, json or ascii), its file named after `file`.
fn written(coverage: &Coverage, format: &str, file: &str) -> HttpResponse {
    let made = match format {
        "json" => coverage::to_json(coverage).map(|s| ("application/json", s.into_bytes(), "json")),
        "ascii" => coverage::to_ascii(coverage, Some(80))
            .map(|s| ("text/plain; charset=utf-8", s.into_bytes(), "txt")),
        _ => coverage::to_fits(coverage).map(|b| ("application/fits", b, "fits")),
    };
    match made {
        Ok((content_type, body, ext)) => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((
                "Content-Disposition",
                format!("inline; filename=\"{file}.moc.{ext}\""),
            ))
            .body(body),
        Err(e) => {
            tracing::error!("coverage of {file}: {e}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the coverage of {file} cannot be written"),
            )
        }
    }
}
