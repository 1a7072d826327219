//! Live publishing: a running server follows the data folder's publication (catalogs
//! ingested, replaced or dropped by `vostok ingest` / `vostok drop`, by another server, or
//! through `/admin`) without a restart.
//!
//! Every change ends by rewriting the publication marker (`catalogs/_publication.json`,
//! catalogs::versions). The server reads it every `[publish] poll_ms` (one small GET, on a
//! local folder as on S3); when it differs from the one the served snapshot was built after,
//! it builds a new snapshot of the engine (only the catalogs whose published version changed
//! are opened), measures ObsCore for SIA, and swaps it in: a request sees the old tables or
//! the new ones, never a mix, and a query already planned finishes on the version it started
//! on, whose files stay until `[publish] retention_seconds` after it was replaced. The same
//! task deletes such retired versions (every minute).
//!
//! `/admin` does the same changes over HTTP, for the users named in `[publish] admins`
//! (authenticated as everywhere else: a vostok token or an OpenID Connect JWT), reading
//! sources only inside `[publish] sources`; one change at a time, each followed by an
//! immediate reload, so that the answer comes when the server serves the change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use storage::Storage;

use super::coverage::Coverages;
use crate::engine::Engine;
use crate::products::Obscore;
use crate::publish;

/// `[publish]` in vostok.toml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// How often the server reads the publication marker to see whether catalogs were
    /// ingested, replaced or dropped, milliseconds (0: never; changes made through `/admin`
    /// are still seen at once).
    pub poll_ms: u64,
    /// How long a replaced or dropped catalog version stays readable before it is deleted,
    /// seconds. Unset: a minute more than the longest a query may run (`[tap] sync_timeout`,
    /// `[uws] max_execution_duration`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_seconds: Option<u64>,
    /// Users who may publish through `/admin` (user names, as `vostok user add` or an
    /// OpenID Connect login made them). Empty: nobody (the API answers 403).
    pub admins: Vec<String>,
    /// Local folders whose files `/admin` may ingest: a metadata file, its source data and a
    /// product folder must all be inside one of them. Empty: none.
    pub sources: Vec<PathBuf>,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            poll_ms: 500,
            retention_seconds: None,
            admins: Vec::new(),
            sources: Vec::new(),
        }
    }
}

/// What follows the publication (application data).
pub struct Live {
    engine: Arc<Engine>,
    storage: Storage,
    obscore: web::Data<Obscore>,
    coverages: web::Data<Coverages>,
    config: PublishConfig,
    retention: Duration,
    authority: String,
    /// One change through `/admin` at a time (held until the change is complete, even when
    /// its client has gone).
    busy: Arc<tokio::sync::Mutex<()>>,
    /// Where new tables' footers are read into the cache.
    query_rt: tokio::runtime::Handle,
}

impl Live {
    /// The publication follower of a server.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Arc<Engine>,
        storage: Storage,
        obscore: web::Data<Obscore>,
        coverages: web::Data<Coverages>,
        config: &super::Config,
        query_rt: tokio::runtime::Handle,
    ) -> Live {
        Live {
            engine,
            storage,
            obscore,
            coverages,
            config: config.publish.clone(),
            retention: config.retention(),
            authority: config.service.authority.clone(),
            busy: Arc::new(tokio::sync::Mutex::new(())),
            query_rt,
        }
    }

    /// Builds and installs a snapshot of what the data folder publishes now, when it differs
    /// from the one served; true when one was installed.
    pub async fn reload(&self) -> anyhow::Result<bool> {
        let _turn = self.engine.reload_turn().await;
        let before = self.engine.snapshot();
        let Some(next) = self.engine.prepare().await? else {
            return Ok(false);
        };
        let half_fov = Obscore::measure(&next).await;
        let fresh: Vec<_> = next
            .tables()
            .iter()
            .zip(next.roots())
            .filter(|(_, root)| !before.roots().contains(*root))
            .map(|(t, _)| t.clone())
            .collect();
        self.engine.install(next.clone());
        self.obscore.set(half_fov);
        let roots: Vec<String> = next
            .tables()
            .iter()
            .map(|(_, t)| t.catalog().root.to_string())
            .collect();
        self.coverages.retain(&roots);
        let names = |s: &crate::engine::Snapshot| -> Vec<String> {
            s.tables().iter().map(|(n, _)| n.clone()).collect()
        };
        let (old, new) = (names(before.as_ref()), names(next.as_ref()));
        let added: Vec<&String> = new.iter().filter(|n| !old.contains(*n)).collect();
        let gone: Vec<&String> = old.iter().filter(|n| !new.contains(*n)).collect();
        let replaced: Vec<&String> = fresh
            .iter()
            .map(|(n, _)| n)
            .filter(|n| old.contains(*n))
            .collect();
        tracing::info!(
            "publication generation {}: serving {} tables (new: {added:?}, replaced: \
             {replaced:?}, dropped: {gone:?})",
            next.generation(),
            new.len()
        );
        // The new tables' footers and coverages, in the background.
        let env = next.ctx().runtime_env();
        let (engine, storage, coverages) = (
            self.engine.clone(),
            self.storage.clone(),
            self.coverages.clone(),
        );
        self.query_rt.spawn(async move {
            for (name, table) in &fresh {
                if let Err(e) = table.warm_footers(&env).await {
                    tracing::warn!("{name}: footers not cached: {e}");
                }
            }
            for (name, _) in &fresh {
                if let Some(Err(e)) = coverages.get(&engine, &storage, name).await {
                    tracing::warn!("{name}: no coverage: {e}");
                }
            }
        });
        Ok(true)
    }

    /// Follows the marker every `[publish] poll_ms` and deletes retired versions every
    /// minute, as long as the server runs.
    pub async fn watch(self: Arc<Self>) {
        let every = Duration::from_millis(self.config.poll_ms.max(1));
        let polling = self.config.poll_ms > 0;
        let mut tick = tokio::time::interval(if polling {
            every
        } else {
            Duration::from_secs(60)
        });
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut collected = tokio::time::Instant::now();
        let mut failing = false;
        loop {
            tick.tick().await;
            if polling {
                let looked = match self.engine.changed().await {
                    Ok(true) => self.reload().await.map(|_| ()),
                    Ok(false) => Ok(()),
                    Err(e) => Err(e),
                };
                match looked {
                    Ok(()) if failing => {
                        tracing::info!("the publication can be read again");
                        failing = false;
                    }
                    Ok(()) => {}
                    // Once per failure spell, not every poll.
                    Err(e) if !failing => {
                        tracing::warn!(
                            "the publication cannot be read ({e:#}): serving what was \
                             published before, retrying"
                        );
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
            if collected.elapsed() >= Duration::from_secs(60) {
                collected = tokio::time::Instant::now();
                catalogs::versions::collect_all(&self.storage, self.retention).await;
            }
        }
    }
}

/// The routes of `/admin`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/publication", web::get().to(publication))
        .route("/admin/reload", web::post().to(reload))
        .route("/admin/catalogs", web::post().to(add_catalog))
        .route("/admin/catalogs/{name}", web::delete().to(drop_catalog))
        .route("/admin/collections", web::post().to(add_collection))
        .route(
            "/admin/collections/{name}",
            web::delete().to(drop_collection),
        );
}

/// An `/admin` answer: `{"status": "ok"|"error", "message": …, …}`.
fn answer(status: StatusCode, message: &str, extra: serde_json::Value) -> HttpResponse {
    let mut body = json!({
        "status": if status.is_success() { "ok" } else { "error" },
        "message": message,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let mut res = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        res.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
    }
    res.content_type("application/json")
        .body(body.to_string() + "\n")
}

fn error(status: StatusCode, message: impl AsRef<str>) -> HttpResponse {
    answer(status, message.as_ref(), json!({}))
}

/// The caller, when an admin; else the answer to give (401 anonymous, 403 not an admin).
async fn admin(req: &HttpRequest, live: &Live) -> Result<String, HttpResponse> {
    match crate::identity::caller(req).await {
        Ok(Some(user)) if live.config.admins.contains(&user.name) => Ok(user.name),
        Ok(Some(user)) => Err(error(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not publish: only the users in [publish] admins may",
                user.name
            ),
        )),
        Ok(None) => Err(error(
            StatusCode::UNAUTHORIZED,
            "publishing needs an administrator's credentials (Authorization: Bearer TOKEN)",
        )),
        Err(vospace::Fault::NotAuthenticated(m) | vospace::Fault::PermissionDenied(m)) => {
            Err(error(StatusCode::UNAUTHORIZED, m))
        }
        Err(e) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the caller cannot be identified now: {e}"),
        )),
    }
}

/// What is served: the generation, each table and its published root.
fn status(live: &Live) -> serde_json::Value {
    let snapshot = live.engine.snapshot();
    let tables: Vec<_> = snapshot
        .tables()
        .iter()
        .zip(snapshot.roots())
        .map(|((name, table), (_, root))| {
            json!({"name": name, "root": root, "rows": table.catalog().rows})
        })
        .collect();
    json!({
        "generation": snapshot.generation(),
        "reloads": live.engine.reloads(),
        "tables": tables,
    })
}

/// `GET /admin/publication`: what is served.
async fn publication(req: HttpRequest, live: web::Data<Live>) -> HttpResponse {
    if let Err(res) = admin(&req, &live).await {
        return res;
    }
    answer(StatusCode::OK, "served now", status(&live))
}

/// `POST /admin/reload`: reads the publication now (instead of at the next poll).
async fn reload(req: HttpRequest, live: web::Data<Live>) -> HttpResponse {
    if let Err(res) = admin(&req, &live).await {
        return res;
    }
    match live.reload().await {
        Ok(changed) => answer(
            StatusCode::OK,
            if changed {
                "reloaded"
            } else {
                "nothing changed"
            },
            status(&live),
        ),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the publication cannot be read: {e:#}"),
        ),
    }
}

/// A path given over HTTP, resolved (symbolic links too), when it is inside one of
/// `[publish] sources`.
fn confined(path: &Path, sources: &[PathBuf]) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err(format!("{}: give an absolute path", path.display()));
    }
    let real = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let inside = sources
        .iter()
        .filter_map(|s| s.canonicalize().ok())
        .any(|s| real.starts_with(&s));
    if inside {
        Ok(real)
    } else {
        Err(format!(
            "{} is outside the folders publishing may read ([publish] sources)",
            path.display()
        ))
    }
}

/// The body of `POST /admin/catalogs` and `POST /admin/collections`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    /// A catalog's metadata file, or a folder of FITS files: absolute, inside `[publish]
    /// sources`.
    source: String,
    /// A collection's name (default: the folder's name).
    collection: Option<String>,
    /// Replace what is published under that name.
    #[serde(default)]
    force: bool,
}

fn parse_request(body: &[u8]) -> Result<Request, Box<HttpResponse>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!(
                "the body must be JSON {{\"source\": \"/path\", \"force\": false}} \
                 (collections: also \"collection\"): {e}"
            ),
        ))
    })
}

/// Runs a publication change on a thread of its own (ingest reads and encodes whole
/// catalogs: not on the HTTP workers or the query runtimes), holding `turn` until it ends
/// even when the client goes.
async fn apart<F, Fut>(turn: tokio::sync::OwnedMutexGuard<()>, make: F) -> anyhow::Result<String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("vostok-publish".into())
        .spawn(move || {
            let done = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(make()));
            drop(turn);
            let _ = tx.send(done);
        })?;
    rx.await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the publication task stopped")))
}

/// One change at a time: the turn, or the answer to give (409).
fn turn(live: &Live) -> Result<tokio::sync::OwnedMutexGuard<()>, Box<HttpResponse>> {
    live.busy.clone().try_lock_owned().map_err(|_| {
        Box::new(error(
            StatusCode::CONFLICT,
            "another publication change is running: retry when it has ended",
        ))
    })
}

/// After a change: reload at once and answer with what is served.
async fn done(live: &Live, who: &str, what: Result<String, anyhow::Error>) -> HttpResponse {
    match what {
        Ok(message) => {
            tracing::info!("admin {who}: {message}");
            if let Err(e) = live.reload().await {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{message}, but the publication cannot be read back: {e:#}"),
                );
            }
            answer(StatusCode::OK, &message, status(live))
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")),
    }
}

/// `POST /admin/catalogs` `{"source": "/…/x.toml", "force": false}`: ingests and publishes a
/// catalog (its metadata file and the source data it names, both inside `[publish]
/// sources`).
async fn add_catalog(req: HttpRequest, body: web::Bytes, live: web::Data<Live>) -> HttpResponse {
    let who = match admin(&req, &live).await {
        Ok(w) => w,
        Err(res) => return res,
    };
    let r = match parse_request(&body) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    if r.collection.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "a catalog has no collection: POST /admin/collections ingests FITS products",
        );
    }
    let metadata = match confined(Path::new(&r.source), &live.config.sources) {
        Ok(p) if p.is_file() => p,
        Ok(p) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{}: not a catalog metadata file (TOML)", p.display()),
            )
        }
        Err(e) => return error(StatusCode::FORBIDDEN, e),
    };
    // The source data the metadata file names must be inside the sources too.
    let meta = match std::fs::read_to_string(&metadata)
        .map_err(|e| e.to_string())
        .and_then(|t| catalogs::CatalogMeta::from_toml(&t).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{}: {e}", metadata.display()),
            )
        }
    };
    let Some(source) = &meta.source else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{}: no [source] section", metadata.display()),
        );
    };
    let data = metadata
        .parent()
        .unwrap_or(Path::new("/"))
        .join(&source.path);
    if let Err(e) = confined(&data, &live.config.sources) {
        return error(StatusCode::FORBIDDEN, e);
    }
    let name = meta.qualified_name();
    let folder = publish::catalog::catalog_root(&meta);
    match publish::catalog::exists(&live.storage, &folder).await {
        Ok(true) if !r.force => {
            return error(
                StatusCode::CONFLICT,
                format!("{name} is published: send \"force\": true to replace it"),
            )
        }
        Ok(_) => {}
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
    let turn = match turn(&live) {
        Ok(t) => t,
        Err(res) => return *res,
    };
    let (storage, retention, force) = (live.storage.clone(), live.retention, r.force);
    let what = apart(turn, move || async move {
        let s = publish::catalog::ingest(&storage, &metadata, force, false, retention).await?;
        Ok(format!(
            "{name}: {} rows in {} partitions published",
            s.rows,
            s.partitions.len()
        ))
    })
    .await;
    done(&live, &who, what).await
}

/// `DELETE /admin/catalogs/{schema.table}`: stops publishing a catalog.
async fn drop_catalog(
    req: HttpRequest,
    path: web::Path<String>,
    live: web::Data<Live>,
) -> HttpResponse {
    let who = match admin(&req, &live).await {
        Ok(w) => w,
        Err(res) => return res,
    };
    let name = path.into_inner().to_ascii_lowercase();
    if live.engine.table(&name).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            format!("no table {name} is published here"),
        );
    }
    let turn = match turn(&live) {
        Ok(t) => t,
        Err(res) => return *res,
    };
    let (storage, retention) = (live.storage.clone(), live.retention);
    let what = apart(turn, move || async move {
        publish::catalog::drop_catalog(&storage, &name, retention).await?;
        Ok(format!("{name} dropped"))
    })
    .await;
    done(&live, &who, what).await
}

/// `POST /admin/collections` `{"source": "/…/folder", "collection": "name", "force":
/// false}`: ingests and publishes the FITS files of a folder inside `[publish] sources`.
async fn add_collection(req: HttpRequest, body: web::Bytes, live: web::Data<Live>) -> HttpResponse {
    let who = match admin(&req, &live).await {
        Ok(w) => w,
        Err(res) => return res,
    };
    let r = match parse_request(&body) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let folder = match confined(Path::new(&r.source), &live.config.sources) {
        Ok(p) if p.is_dir() => p,
        Ok(p) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{}: not a folder", p.display()),
            )
        }
        Err(e) => return error(StatusCode::FORBIDDEN, e),
    };
    let collection = r.collection.unwrap_or_else(|| {
        folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    if let Err(e) = publish::products::check_collection(&collection) {
        return error(StatusCode::BAD_REQUEST, format!("{e:#}"));
    }
    match publish::products::collection_exists(&live.storage, &collection).await {
        Ok(true) if !r.force => {
            return error(
                StatusCode::CONFLICT,
                format!("collection {collection} is published: send \"force\": true to replace it"),
            )
        }
        Ok(_) => {}
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
    let turn = match turn(&live) {
        Ok(t) => t,
        Err(res) => return *res,
    };
    let (storage, retention, force, authority) = (
        live.storage.clone(),
        live.retention,
        r.force,
        live.authority.clone(),
    );
    let source = folder.to_string_lossy().into_owned();
    let what = apart(turn, move || async move {
        let s = publish::products::ingest_products(
            &storage,
            &source,
            &[],
            &collection,
            &authority,
            force,
            false,
            retention,
        )
        .await?;
        Ok(format!(
            "collection {collection}: {} files, {} ObsCore records published, {} files skipped",
            s.files,
            s.records,
            s.failed.len()
        ))
    })
    .await;
    done(&live, &who, what).await
}

/// `DELETE /admin/collections/{name}`: stops publishing a collection (its records and files).
async fn drop_collection(
    req: HttpRequest,
    path: web::Path<String>,
    live: web::Data<Live>,
) -> HttpResponse {
    let who = match admin(&req, &live).await {
        Ok(w) => w,
        Err(res) => return res,
    };
    let collection = path.into_inner();
    if let Err(e) = publish::products::check_collection(&collection) {
        return error(StatusCode::BAD_REQUEST, format!("{e:#}"));
    }
    match publish::products::collection_exists(&live.storage, &collection).await {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no collection {collection} is published here"),
            )
        }
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
    let turn = match turn(&live) {
        Ok(t) => t,
        Err(res) => return *res,
    };
    let (storage, retention) = (live.storage.clone(), live.retention);
    let what = apart(turn, move || async move {
        publish::products::drop_collection(&storage, &collection, retention).await?;
        Ok(format!("collection {collection} dropped"))
    })
    .await;
    done(&live, &who, what).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_http_stay_inside_the_sources() {
        let base = std::env::temp_dir().join(format!(
            "vostok-confined-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let dir = Folder(base);
        let inside = dir.path().join("in");
        std::fs::create_dir_all(&inside).expect("mkdir");
        std::fs::write(inside.join("a.toml"), "x").expect("write");
        std::fs::write(dir.path().join("b.toml"), "x").expect("write");
        let sources = vec![inside.clone()];
        assert!(confined(&inside.join("a.toml"), &sources).is_ok());
        // Outside, through `..`, relative, or with no sources configured: refused.
        assert!(confined(&dir.path().join("b.toml"), &sources).is_err());
        assert!(confined(&inside.join("../b.toml"), &sources).is_err());
        assert!(confined(Path::new("in/a.toml"), &sources).is_err());
        assert!(confined(&inside.join("a.toml"), &[]).is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("b.toml"), inside.join("link.toml"))
                .expect("symlink");
            assert!(confined(&inside.join("link.toml"), &sources).is_err());
        }
    }

    /// A folder removed when the test ends.
    struct Folder(PathBuf);

    impl Folder {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
