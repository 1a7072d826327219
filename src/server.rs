//! Startup and routing: opens the storage, ingests the demo catalogs on first start, registers
//! every catalog and TAP_SCHEMA with one DataFusion context, and serves the protocol fronts.

use std::sync::Arc;

use actix_cors::Cors;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use catalogs::{HatsTable, Storage};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::Config;
use crate::tap_schema::TapMetadata;

/// What every request handler shares.
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// The DataFusion context with every table registered.
    pub ctx: SessionContext,
    /// Runtime on which queries execute (apart from the HTTP workers).
    pub query_runtime: tokio::runtime::Handle,
    /// The served catalogs, by qualified lower-case name.
    pub tables: Vec<(String, Arc<HatsTable>)>,
    /// Table and column metadata for TAP_SCHEMA and VOSI.
    pub metadata: TapMetadata,
    /// Asynchronous TAP jobs: set by [`run`] (the server), None for the command-line tools.
    pub jobs: Option<Arc<crate::jobs::Jobs>>,
    /// The data folder (catalogs, stored products, job results).
    pub storage: Storage,
    /// Half the largest `s_fov` of the images in `ivoa.obscore` that have a footprint: how far
    /// an image centre can be from a region the image meets (SIA uses it to prune).
    pub obscore_max_half_fov: Option<f64>,
    /// VOSpace: set by [`run`] (the server), None for the command-line tools.
    pub vospace: Option<Arc<crate::vospace::store::VoStore>>,
    /// VOSpace OpenID Connect login (`[vospace.oidc]`): set by [`run`] when configured.
    pub oidc: Option<Arc<crate::vospace::oidc::Oidc>>,
}

impl AppState {
    /// A served catalog by qualified name (case-insensitive).
    pub fn table(&self, name: &str) -> Option<&Arc<HatsTable>> {
        self.tables
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, t)| t)
    }

    /// The base URL clients reach this server by.
    pub fn base_url(&self, req: &HttpRequest) -> String {
        match &self.config.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let info = req.connection_info();
                format!("{}://{}", info.scheme(), info.host())
            }
        }
    }
}

/// Builds the state: storage, demo ingest, catalogs, DataFusion context.
pub async fn build_state(
    config: Config,
    query_runtime: tokio::runtime::Handle,
) -> anyhow::Result<AppState> {
    let storage = Storage::open(&config.data, &config.storage_options)
        .with_context(|| format!("opening the data folder {}", config.data))?;
    if config.demo {
        ingest_demo(&storage, &config).await?;
    }

    let mut session = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(false)
        .with_default_catalog_and_schema("datafusion", "public");
    // A HATS row group is one page per column (see catalogs::hats): the page index adds a read
    // and a decode per file and can prune nothing that row-group statistics do not.
    session.options_mut().execution.parquet.enable_page_index = false;
    // DataFusion 55's aggregate dynamic filter lets MAX(plx) prune row groups that
    // MAX(plx + pmra) in the same SELECT still needs: a silently wrong maximum (differential
    // test, agg_min_max_mix). Off until fixed upstream.
    session
        .options_mut()
        .optimizer
        .enable_aggregate_dynamic_filter_pushdown = false;
    // Its join dynamic filter made `a EXCEPT b INTERSECT (SELECT TOP 3 … ORDER BY …)` wait
    // forever at 0% CPU (a CollectLeft semi join over a TopK; differential test,
    // set_top_operand_nested). Off until fixed upstream.
    session
        .options_mut()
        .optimizer
        .enable_join_dynamic_filter_pushdown = false;
    let runtime = Arc::new(
        RuntimeEnvBuilder::new()
            .with_metadata_cache_limit(config.metadata_cache_mb.saturating_mul(1024 * 1024))
            .build()?,
    );
    runtime.register_object_store(storage.url.as_ref(), storage.store.clone());
    let ctx = SessionContext::new_with_config_rt(session, runtime);
    adql::register(&ctx);

    // Every folder under catalogs/ with a hats.properties is a catalog.
    let mut roots: Vec<String> = Vec::new();
    let base = storage.path("catalogs");
    let listing = storage.store.list_with_delimiter(Some(&base)).await;
    if let Ok(listing) = listing {
        for p in listing.common_prefixes {
            if let Some(name) = p.filename() {
                roots.push(format!("catalogs/{name}"));
            }
        }
    }
    roots.sort();
    let mut tables = Vec::new();
    let df_catalog = ctx.catalog("datafusion").context("no default catalog")?;
    for root in roots {
        if !storage
            .exists(&storage.path(&format!("{root}/hats.properties")))
            .await?
        {
            continue;
        }
        let cat = match catalogs::open_catalog(&storage, &root).await {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::warn!("skipping {root}: {e}");
                continue;
            }
        };
        let schema = cat.meta.table.schema.to_ascii_lowercase();
        let name = cat.meta.table.name.to_ascii_lowercase();
        if df_catalog.schema(&schema).is_none() {
            df_catalog.register_schema(&schema, Arc::new(MemorySchemaProvider::new()))?;
        }
        let table = Arc::new(HatsTable::new(cat.clone(), storage.url.clone()));
        // ivoa.obscore is served with absolute access URLs (crate::products::table).
        let served: Arc<dyn datafusion::datasource::TableProvider> =
            if root == crate::products::ingest::OBSCORE_ROOT {
                Arc::new(crate::products::table::ObscoreTable::new(
                    table.clone(),
                    &crate::products::public_base(&config),
                ))
            } else {
                table.clone()
            };
        ctx.register_table(
            TableReference::partial(schema.clone(), name.clone()),
            served,
        )?;
        tracing::info!(
            "serving {schema}.{name}: {} rows in {} partitions",
            cat.rows
                .map(|r| r.to_string())
                .unwrap_or_else(|| "?".into()),
            cat.partitions.len()
        );
        tables.push((format!("{schema}.{name}"), table));
    }
    let metadata = TapMetadata::build(&tables);
    metadata.register(&ctx)?;
    let obscore_max_half_fov = if tables.iter().any(|(n, _)| n == "ivoa.obscore") {
        max_half_fov(&ctx).await
    } else {
        None
    };
    Ok(AppState {
        config,
        ctx,
        query_runtime,
        tables,
        metadata,
        jobs: None,
        storage,
        obscore_max_half_fov,
        vospace: None,
        oidc: None,
    })
}

/// Half the largest `s_fov` among the ObsCore records with a footprint (a fixed query, no
/// user text), with a margin for rounding; `None` when there is none or the query fails.
async fn max_half_fov(ctx: &SessionContext) -> Option<f64> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float64Type;
    let df = ctx
        .sql("SELECT MAX(s_fov) FROM ivoa.obscore WHERE s_region IS NOT NULL")
        .await
        .ok()?;
    let batches = df.collect().await.ok()?;
    let v = batches
        .first()
        .and_then(|b| b.column(0).as_primitive_opt::<Float64Type>())
        .filter(|a| a.len() == 1 && !a.is_null(0))
        .map(|a| a.value(0))?;
    let half = v / 2.0 * (1.0 + 1e-9) + 1e-9;
    tracing::info!("ivoa.obscore: largest footprint radius {half:.4}°");
    Some(half)
}

/// Ingests each demo catalog not yet in the data folder.
async fn ingest_demo(storage: &Storage, config: &Config) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(&config.demo_dir)
        .with_context(|| format!("demo catalogs folder {}", config.demo_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let meta = catalogs::CatalogMeta::from_toml(&text)
            .with_context(|| format!("in {}", f.display()))?;
        if crate::ingest::exists(storage, &crate::ingest::catalog_root(&meta)).await? {
            continue;
        }
        tracing::info!(
            "first start: ingesting demo catalog {}",
            meta.qualified_name()
        );
        crate::ingest::ingest(storage, &f, true, true).await?;
    }
    // The demo images and spectra (FITS files under the demo folder) as collection "demo".
    if !crate::products::ingest::collection_exists(storage, "demo").await? {
        let has_fits = ["images", "spectra"]
            .iter()
            .any(|d| config.demo_dir.join(d).is_dir());
        if has_fits {
            tracing::info!("first start: ingesting the demo images and spectra");
            let dir = config.demo_dir.to_string_lossy().to_string();
            let s = crate::products::ingest::ingest_products(
                storage,
                &dir,
                &[],
                "demo",
                &config.service.authority,
                true,
                true,
            )
            .await?;
            tracing::info!(
                "demo collection: {} files, {} records, {} skipped",
                s.files,
                s.records,
                s.failed.len()
            );
        }
    }
    Ok(())
}

/// Runs the server until interrupted.
pub fn run(config: Config) -> anyhow::Result<()> {
    // Queries run on their own multi-threaded runtime; HTTP I/O on actix's workers.
    let query_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("vostok-query")
        // Planning deep expressions recurses (see tap::prepare_query_with_uploads).
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()?;
    let mut state = query_rt.block_on(build_state(config, query_rt.handle().clone()))?;
    let jobs = crate::jobs::Jobs::open(&state.config).context("opening the UWS job database")?;
    state.jobs = Some(jobs.clone());
    let vospace = query_rt
        .block_on(crate::vospace::store::VoStore::open(
            &state.config.vospace_database(),
            state.storage.clone(),
        ))
        .map_err(|e| anyhow::anyhow!("opening the VOSpace database: {e}"))?;
    vospace.set_authority(&state.config.service.authority);
    state.vospace = Some(vospace);
    state.oidc = state
        .config
        .vospace
        .oidc
        .clone()
        .map(|c| Arc::new(crate::vospace::oidc::Oidc::new(c)));
    let bind = state.config.bind.clone();
    // Negotiated transfers older than twice their lifetime are forgotten, hourly.
    if let Some(store) = state.vospace.clone() {
        let keep = state.config.vospace.transfer_lifetime.saturating_mul(2);
        query_rt.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let cutoff = (chrono::Utc::now()
                    - chrono::Duration::seconds(keep.min(i64::MAX as u64) as i64))
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
                match store.delete_transfers_before(&cutoff).await {
                    Ok(n) if n > 0 => tracing::info!("vospace: {n} expired transfers forgotten"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("vospace: transfer cleanup failed: {e}"),
                }
            }
        });
    }
    let state = Arc::new(state);
    // Recovers the jobs of the previous run, then runs the queue and the cleanup.
    jobs.start(state.clone())?;
    let sys = actix_web::rt::System::new();
    sys.block_on(async move {
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
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
                .route("/", web::get().to(landing))
                .configure(crate::tap::routes)
                .configure(crate::scs::routes)
                .configure(crate::products::files::routes)
                .configure(crate::sia::routes)
                .configure(crate::ssa::routes)
                .configure(crate::datalink::routes)
                .configure(crate::vospace::http::routes)
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

/// A page for people who open the server in a browser.
async fn landing(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let base = state.base_url(&req);
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut rows = String::new();
    for (name, t) in &state.tables {
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
<h2>Services</h2><ul>\n<li>TAP 1.1 (ADQL 2.1): <code>{base}/tap</code> — \
<a href=\"{base}/tap/capabilities\">capabilities</a>, <a href=\"{base}/tap/tables\">tables</a>, \
<a href=\"{base}/tap/availability\">availability</a></li>\n\
<li>Simple Cone Search 1.03: <code>{base}/scs/&lt;schema&gt;.&lt;table&gt;</code></li>\n\
<li>Simple Image Access 2.0: <code>{base}/sia/v2/query</code> (<a href=\"{base}/sia/v2/query?POS=CIRCLE+83.633+22.0145+0.05\">the Crab</a>), 1.0: <code>{base}/sia/v1</code></li>\n\
<li>Simple Spectral Access 1.1: <code>{base}/ssa</code> (<a href=\"{base}/ssa?REQUEST=queryData&amp;POS=230.876,-38.358&amp;SIZE=0.01\">MN Lup</a>)</li>\n\
<li>DataLink 1.1: <code>{base}/datalink/links?ID=…</code></li></ul>\n\
<h2>Catalogs</h2>\n<table border=\"1\" cellpadding=\"4\"><tr><th>table</th><th>title</th><th>rows</th><th></th></tr>\n{rows}</table>\n\
<h2>Try</h2><pre>curl '{base}/tap/sync?LANG=ADQL&amp;QUERY=SELECT+TOP+5+*+FROM+hipparcos.hip2'</pre>\n</body></html>\n",
        title = esc(&state.config.service.title),
        version = env!("CARGO_PKG_VERSION"),
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html)
}
