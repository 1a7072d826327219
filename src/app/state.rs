//! Startup: opens the storage, ingests the demo data on first start, opens the engine over
//! every catalog, the job service and the users' space, and hands each protocol its handles.

use std::sync::Arc;

use anyhow::Context;
use storage::{Missing, Storage};
use uws::{JobStore, Jobs, Kind, PgStore, SqliteStore};
use vospace::oidc::Oidc;
use vospace::VoStore;

use super::Config;
use crate::dali::Service;
use crate::engine::{self, Engine, Runtimes};
use crate::identity::Identity;
use crate::products::{self, Checksums, Obscore};
use crate::protocols::datalink::Previews;
use crate::protocols::tap::jobs::TapExecutor;
use crate::protocols::tap::Tap;
use crate::protocols::vospace::transfers::TransferExecutor;
use crate::protocols::vospace::VoSpace;

/// Opens the data folder (creating it and ingesting the demo data when `demo`) and the
/// engine over its catalogs; queries run on `runtimes`.
pub async fn open_engine(
    config: &Config,
    runtimes: Runtimes,
    missing: Missing,
    demo: bool,
) -> anyhow::Result<(Storage, Engine)> {
    let storage = Storage::open(&config.data, &config.storage_options, missing)
        .with_context(|| format!("opening the data folder {}", config.data))?;
    if demo {
        crate::publish::demo::ingest(
            &storage,
            &config.demo_dir,
            &config.service.authority,
            config.retention(),
        )
        .await?;
    }
    let public_base = config.service().public_base();
    let served: engine::Served =
        Arc::new(move |folder: &str, table| products::served(&public_base, folder, table));
    let distribution = engine::distributed::Distribution::from_settings(&config.distributed)?;
    if let Some(d) = &distribution {
        let urls: Vec<&str> = d.workers().iter().map(|u| u.as_str()).collect();
        tracing::info!(
            "large queries are spread over the workers {}",
            urls.join(", ")
        );
    }
    let engine = engine::open(
        &storage,
        config.limits(),
        config.limits.clone(),
        config.metadata_cache_mb,
        runtimes,
        served,
        distribution,
    )
    .await?;
    Ok((storage, engine))
}

/// Everything the server runs with, each part a handle a protocol may be given.
pub struct State {
    /// What the service says about itself.
    pub service: Service,
    /// The data folder.
    pub storage: Storage,
    /// The query engine.
    pub engine: Arc<Engine>,
    /// What the product services know of ObsCore.
    pub obscore: Obscore,
    /// The stored products' MD5s (downloads' `Digest`).
    pub checksums: Checksums,
    /// The job service (TAP queries, VOSpace transfers).
    pub jobs: Arc<Jobs>,
    /// Who is calling.
    pub identity: Arc<Identity>,
    /// TAP's settings.
    pub tap: Arc<Tap>,
    /// The VOSpace front's settings and store.
    pub vospace: Arc<VoSpace>,
    /// Places and bounds of DataLink previews.
    pub previews: Arc<Previews>,
    /// The writer locks of the databases, held as long as the server runs.
    pub locks: Vec<std::fs::File>,
}

/// Takes the exclusive writer lock of a database (`<db>.lock` beside it, an OS file lock that
/// ends with the process, SIGKILL included): one `serve` owns the data, runs its crash
/// recovery and its job queue. A second one is refused instead of taking a live upload or a
/// running job for a leftover.
fn writer_lock(db: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let path = db.with_file_name(name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another vostok serve uses this data: {} is locked by it (one server per data \
             folder)",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The VOSpace store of `config`: in `[metadata] url`'s PostgreSQL database when set, else in
/// the SQLite file `[vospace] database`.
pub async fn open_vospace(config: &Config, storage: Storage) -> anyhow::Result<Arc<VoStore>> {
    match config.metadata.postgres()? {
        Some(target) => {
            let store =
                VoStore::open_postgres_target(&target, config.metadata.connections, storage)
                    .await
                    .map_err(|e| anyhow::anyhow!("opening the VOSpace database: {e}"))?;
            tracing::info!(
                "VOSpace database: {} ({})",
                target.shown(),
                target.describe()
            );
            Ok(store)
        }
        None => {
            let db = config.vospace_database()?;
            let store = VoStore::open(&db, storage)
                .await
                .map_err(|e| anyhow::anyhow!("opening the VOSpace database: {e}"))?;
            tracing::info!("VOSpace database: {}", db.display());
            Ok(store)
        }
    }
}

impl State {
    /// Builds the state: storage (with the demo data on first start), engine, job service,
    /// users' space; starts the job queues and the periodic cleanups.
    pub fn open(
        config: &Config,
        query_rt: &tokio::runtime::Runtime,
        heavy_rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<State> {
        if let Some(o) = &config.vospace.oidc {
            if o.audience.as_deref().is_none_or(str::is_empty) {
                anyhow::bail!(
                    "[vospace.oidc] needs `audience` (the client id registered for vostok at \
                     the issuer): without it, tokens the issuer made for any other service \
                     would be accepted here"
                );
            }
        }
        let runtimes = Runtimes {
            fast: query_rt.handle().clone(),
            slow: heavy_rt.handle().clone(),
        };
        let (storage, engine) =
            query_rt.block_on(open_engine(config, runtimes, Missing::Create, config.demo))?;
        let engine = Arc::new(engine);
        warm_footers(query_rt, &engine);
        let obscore = query_rt.block_on(Obscore::load(&engine.snapshot()));
        let checksums = query_rt.block_on(Checksums::load(
            &storage,
            config.limits.digest_mb.saturating_mul(1024 * 1024),
        ));
        let service = config.service();

        let postgres = config.metadata.postgres()?;
        if let Some(warning) = postgres.as_ref().and_then(|t| t.warning()) {
            tracing::warn!("{warning}");
        }
        // The SQLite files, when the records are not in PostgreSQL (`[uws] database` and
        // `[vospace] database` are then not needed, even with the data in object storage).
        let sqlite = match postgres {
            Some(_) => Vec::new(),
            None => vec![config.vospace_database()?, config.uws_database()?],
        };
        let mut locks = Vec::new();
        for db in &sqlite {
            locks.push(writer_lock(db)?);
        }
        if storage.is_local() {
            // One server per local data folder, whatever databases it is given: two servers
            // given different databases would each take the other's objects for leftovers.
            // (Servers sharing one PostgreSQL database sweep safely beside each other —
            // VOSpace by its processes' liveness locks, the job folders by
            // uws::runner::ORPHAN_AGE — and share a data folder in object storage.)
            let folder = std::path::PathBuf::from(format!("/{}", storage.prefix));
            locks.push(writer_lock(&folder.join("vostok"))?);
        }
        let store: Arc<dyn JobStore> = match &postgres {
            Some(target) => {
                // Any number of servers share it: each job is run by the one holding its
                // claim (uws::store).
                let store = query_rt
                    .block_on(PgStore::open_target(target, config.metadata.connections))
                    .context("opening the UWS job database")?;
                tracing::info!(
                    "UWS job database: {} ({})",
                    target.shown(),
                    target.describe()
                );
                Arc::new(store)
            }
            None => {
                let uws_db = config.uws_database()?;
                let store = SqliteStore::open(&uws_db).context("opening the UWS job database")?;
                tracing::info!("UWS job database: {}", uws_db.display());
                Arc::new(store)
            }
        };
        let jobs = Jobs::new(store, storage.clone(), config.uws.clone());

        let store = query_rt.block_on(open_vospace(config, storage.clone()))?;
        query_rt
            .block_on(store.recover())
            .map_err(|e| anyhow::anyhow!("VOSpace crash recovery: {e}"))?;
        store.set_authority(&config.service.authority);
        store.set_upload_budget(
            config.limits.upload_buffer_mb,
            std::time::Duration::from_millis(config.limits.sync_queue_ms),
        );
        let identity = Arc::new(Identity {
            store: store.clone(),
            oidc: config.vospace.oidc.clone().map(|c| Arc::new(Oidc::new(c))),
            default_quota: config.vospace.default_quota,
        });
        let tap = Arc::new(Tap {
            config: config.tap.clone(),
            service: service.clone(),
            vospace: Some(store.clone()),
        });
        let vospace = Arc::new(VoSpace {
            store: store.clone(),
            config: config.vospace.clone(),
            authority: config.service.authority.clone(),
            service: service.clone(),
        });
        forget_expired_transfers(query_rt, store.clone(), config.vospace.transfer_lifetime);
        if store.shares_its_database() {
            sweep_gone_processes(query_rt, store.clone());
        }
        // Recovers the jobs of the previous run, then runs the queues and the cleanup.
        jobs.start(vec![
            Kind {
                name: crate::protocols::tap::jobs::KIND,
                executor: Arc::new(TapExecutor {
                    engine: engine.clone(),
                    tap: tap.clone(),
                }),
                max_running: config.uws.max_running,
            },
            Kind {
                name: crate::protocols::vospace::transfers::KIND,
                executor: Arc::new(TransferExecutor {
                    store,
                    authority: config.service.authority.clone(),
                }),
                max_running: config.uws.max_running_transfers,
            },
        ])?;
        Ok(State {
            service,
            storage,
            engine,
            obscore,
            checksums,
            jobs,
            identity,
            tap,
            vospace,
            previews: Arc::new(Previews::new(&config.limits)),
            locks,
        })
    }
}

/// Negotiated transfers older than twice their lifetime are forgotten, hourly.
/// Reads every catalog's Parquet footers into the metadata cache in the background (bounded
/// by `metadata_cache_mb`), so that the first query into a partition reads no footer.
fn warm_footers(rt: &tokio::runtime::Runtime, engine: &Arc<crate::engine::Engine>) {
    let tables = engine.snapshot().tables().to_vec();
    let env = engine.ctx().runtime_env();
    rt.spawn(async move {
        for (name, table) in tables {
            match table.warm_footers(&env).await {
                Ok(n) => tracing::info!("{name}: {n} partition footers read into the cache"),
                Err(e) => tracing::warn!("{name}: footers not cached at start: {e}"),
            }
        }
    });
}

/// On a database several servers share: every few minutes, the busy flags and uploads in
/// progress of servers that ended (their liveness lock released) are cleared (their restart, which
/// would do it, may not come).
fn sweep_gone_processes(rt: &tokio::runtime::Runtime, store: Arc<VoStore>) {
    rt.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = store.sweep_gone_processes().await {
                tracing::warn!("vospace: sweeping the uploads of stopped servers: {e}");
            }
        }
    });
}

fn forget_expired_transfers(rt: &tokio::runtime::Runtime, store: Arc<VoStore>, lifetime: u64) {
    let keep = lifetime.saturating_mul(2);
    rt.spawn(async move {
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
