//! `/moc/{schema.table}`: the sky coverage of each served catalog as a MOC (IVOA MOC 2.0), in
//! FITS (the default), MOC JSON (what Aladin Lite's `A.MOCFromURL` reads) or MOC-ASCII
//! (`?format=fits|json|ascii`). A catalog folder's `moc.fits`, when there is one, is served as
//! it is; otherwise the coverage is computed from the partition files (the `_healpix_29`
//! column) once per published version and kept in memory. Every catalog's coverage is made
//! ready in the background at start and after each publication change. Coverage is public metadata, as `/tap/tables` is: no identity is read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    cfg.route("/moc/{table}", web::get().to(moc));
}

#[derive(Deserialize)]
struct Params {
    format: Option<String>,
}

fn plain(status: actix_web::http::StatusCode, text: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(text + "\n")
}

async fn moc(
    path: web::Path<String>,
    query: web::Query<Params>,
    engine: web::Data<Engine>,
    storage: web::Data<Storage>,
    coverages: web::Data<Coverages>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let name = path.into_inner();
    let format = query
        .format
        .as_deref()
        .unwrap_or("fits")
        .to_ascii_lowercase();
    if !matches!(format.as_str(), "fits" | "json" | "ascii") {
        return plain(
            StatusCode::BAD_REQUEST,
            format!("format must be fits, json or ascii, not {format:?}"),
        );
    }
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
    let file = name.to_ascii_lowercase();
    let made = match format.as_str() {
        "json" => {
            coverage::to_json(&coverage).map(|s| ("application/json", s.into_bytes(), "json"))
        }
        "ascii" => coverage::to_ascii(&coverage, Some(80))
            .map(|s| ("text/plain; charset=utf-8", s.into_bytes(), "txt")),
        _ => coverage::to_fits(&coverage).map(|b| ("application/fits", b, "fits")),
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
            tracing::error!("coverage of {name}: {e}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the coverage of {name} cannot be written"),
            )
        }
    }
}
