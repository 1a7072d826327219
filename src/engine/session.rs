//! Building the engine: the DataFusion session's settings, the object store, every catalog of
//! the data folder as a table, and TAP_SCHEMA.

use std::sync::Arc;

use catalogs::HatsTable;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::TableProvider;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use storage::Storage;

use tokio::sync::Semaphore;

use super::distributed::Distribution;
use super::{Engine, Limits, LimitsConfig, Runtimes, Snapshot, TapMetadata};

/// How a catalog is served: the table itself, or a wrapper over it (ObsCore gets absolute
/// access URLs). Given the catalog's folder in the data folder (`catalogs/<schema>.<table>`,
/// whatever version of it is published).
pub type Served = Arc<dyn Fn(&str, Arc<HatsTable>) -> Arc<dyn TableProvider> + Send + Sync>;

/// The DataFusion session settings vostok runs with.
pub(super) fn session_config() -> SessionConfig {
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
    // Source spans in the plan let adql point at the column a planning error is about.
    session.options_mut().sql_parser.collect_spans = true;
    session
}

/// Opens the engine over the catalogs of `storage`: every folder under `catalogs/` with a
/// published version (catalogs::versions) is a table (one that cannot be opened is skipped
/// with a warning). `metadata_cache_mb` bounds the cache of Parquet footers; queries run on
/// `runtimes`, held to `limits` and `admission`.
pub async fn open(
    storage: &Storage,
    limits: Limits,
    admission: LimitsConfig,
    metadata_cache_mb: usize,
    runtimes: Runtimes,
    served: Served,
    distribution: Option<Distribution>,
) -> anyhow::Result<Engine> {
    let env = runtime_env(storage, &admission, metadata_cache_mb)?;
    let store_url = catalogs::store_url(storage)?;
    let publisher = Publisher {
        storage: storage.clone(),
        env,
        store_url,
        served,
        distribution,
    };
    let first = publisher.snapshot(None).await?;
    Ok(Engine {
        current: std::sync::RwLock::new(Arc::new(first)),
        publisher,
        reloading: tokio::sync::Mutex::new(()),
        reloads: std::sync::atomic::AtomicU64::new(0),
        runtimes,
        limits,
        fast_places: Arc::new(Semaphore::new(admission.fast_queries.max(1))),
        sync_places: Arc::new(Semaphore::new(admission.sync_queries.max(1))),
        heavy_places: Arc::new(Semaphore::new(admission.heavy_queries.max(1))),
        admission,
        drain: tokio::sync::watch::Sender::new(None),
    })
}

/// The runtime every query of this process shares: one memory pool, fair among the
/// operators that can spill (sorts, aggregates, joins), which then spill to the OS's
/// temporary folder (the five largest consumers are named in the error of a query that does
/// not fit); the cache of Parquet footers; the object store of the data folder.
pub fn runtime_env(
    storage: &Storage,
    admission: &LimitsConfig,
    metadata_cache_mb: usize,
) -> anyhow::Result<Arc<RuntimeEnv>> {
    let pool = TrackConsumersPool::new(
        FairSpillPool::new(admission.query_memory_mb.max(1).saturating_mul(1024 * 1024)),
        std::num::NonZeroUsize::MIN.saturating_add(4),
    );
    let env = Arc::new(
        RuntimeEnvBuilder::new()
            .with_metadata_cache_limit(metadata_cache_mb.saturating_mul(1024 * 1024))
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(
                DiskManagerBuilder::default()
                    .with_max_temp_directory_size(admission.spill_mb.saturating_mul(1024 * 1024)),
            )
            .build()?,
    );
    env.register_object_store(&storage.url, storage.store.clone());
    Ok(env)
}

/// What building a snapshot needs: the data folder, the runtime every snapshot's session
/// shares (memory pool, footer cache, object store), and how catalogs are served.
pub(super) struct Publisher {
    pub(super) storage: Storage,
    pub(super) env: Arc<RuntimeEnv>,
    store_url: ObjectStoreUrl,
    served: Served,
    /// The query workers, when there are.
    pub(super) distribution: Option<Distribution>,
}

impl Publisher {
    /// A snapshot of what the data folder publishes now. The catalogs whose published root
    /// `previous` already serves are taken over as they are (not read again); when a new
    /// version cannot be opened, the one `previous` serves stays (with a warning).
    pub(super) async fn snapshot(&self, previous: Option<&Snapshot>) -> anyhow::Result<Snapshot> {
        let storage = &self.storage;
        // The marker first: a change made while the catalogs are read shows as a newer
        // marker at the next look, and is read then.
        let marker = catalogs::versions::read_marker(storage).await?;
        let roots = catalogs::versions::published(storage).await?;
        let ctx = SessionContext::new_with_config_rt(session_config(), self.env.clone());
        adql::register(&ctx);
        let df_catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| anyhow::anyhow!("no default catalog"))?;
        let mut tables = Vec::new();
        let mut folders = Vec::new();
        for (folder_name, root) in roots {
            let folder = catalogs::versions::folder(&folder_name);
            let known = previous.and_then(|p| {
                p.folders
                    .iter()
                    .position(|(f, r)| f == &folder && r == &root)
                    .and_then(|i| p.tables.get(i).cloned())
            });
            let (name, table) = match known {
                Some(t) => t,
                None => match catalogs::open_catalog(storage, &root).await {
                    Ok(cat) => {
                        let cat = Arc::new(cat);
                        let name = format!(
                            "{}.{}",
                            cat.meta.table.schema.to_ascii_lowercase(),
                            cat.meta.table.name.to_ascii_lowercase()
                        );
                        tracing::info!(
                            "serving {name} ({root}): {} rows in {} partitions",
                            cat.rows
                                .map(|r| r.to_string())
                                .unwrap_or_else(|| "?".into()),
                            cat.partitions.len()
                        );
                        (name, Arc::new(HatsTable::new(cat, self.store_url.clone())))
                    }
                    Err(e) => {
                        let kept = previous.and_then(|p| {
                            p.folders
                                .iter()
                                .position(|(f, _)| f == &folder)
                                .and_then(|i| Some((p.folders.get(i)?, p.tables.get(i)?)))
                        });
                        match kept {
                            Some(((_, old_root), t)) => {
                                tracing::warn!(
                                    "{root} cannot be opened ({e}): {old_root} stays served"
                                );
                                folders.push((folder.clone(), old_root.clone()));
                                tables.push(t.clone());
                            }
                            None => tracing::warn!("skipping {root}: {e}"),
                        }
                        continue;
                    }
                },
            };
            folders.push((folder, root));
            tables.push((name, table));
        }
        for ((name, table), (folder, _)) in tables.iter().zip(&folders) {
            let (schema, table_name) = name.split_once('.').unwrap_or(("public", name.as_str()));
            if df_catalog.schema(schema).is_none() {
                df_catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()))?;
            }
            ctx.register_table(
                TableReference::partial(schema.to_string(), table_name.to_string()),
                (self.served)(folder, table.clone()),
            )?;
        }
        let metadata = TapMetadata::build(&tables);
        metadata.register(&ctx)?;
        // The coordinator's session plans from the same logical plans (they hold their
        // tables), so it needs no table of its own.
        let distributed = match &self.distribution {
            Some(d) => Some(d.coordinator(session_config(), self.env.clone())?),
            None => None,
        };
        Ok(Snapshot {
            ctx,
            distributed,
            generation: catalogs::versions::generation(marker.as_deref()),
            marker,
            tables,
            folders,
            metadata,
        })
    }
}

#[cfg(test)]
impl Engine {
    /// An engine serving `ctx` as it is (no catalog folder behind it).
    pub(crate) fn over(
        ctx: SessionContext,
        runtimes: Runtimes,
        limits: Limits,
        admission: LimitsConfig,
    ) -> Engine {
        let storage = Storage::local(&std::env::temp_dir(), storage::Missing::Refuse)
            .unwrap_or_else(|e| panic!("the temporary folder: {e}"));
        let env = ctx.runtime_env();
        let store_url = ObjectStoreUrl::local_filesystem();
        let snapshot = Snapshot {
            ctx,
            distributed: None,
            tables: Vec::new(),
            folders: Vec::new(),
            metadata: TapMetadata::build(&[]),
            marker: None,
            generation: 0,
        };
        Engine {
            current: std::sync::RwLock::new(Arc::new(snapshot)),
            publisher: Publisher {
                storage,
                env,
                store_url,
                served: Arc::new(|_: &str, t: Arc<HatsTable>| t as Arc<dyn TableProvider>),
                distribution: None,
            },
            reloading: tokio::sync::Mutex::new(()),
            reloads: std::sync::atomic::AtomicU64::new(0),
            runtimes,
            limits,
            fast_places: Arc::new(Semaphore::new(1)),
            sync_places: Arc::new(Semaphore::new(1)),
            heavy_places: Arc::new(Semaphore::new(1)),
            admission,
            drain: tokio::sync::watch::Sender::new(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalogs::versions;

    async fn write(storage: &Storage, name: &str, version: u64, rows: u64) {
        let (schema, table) = name.split_once('.').unwrap_or(("t", name));
        let opts = catalogs::synth::SynthOptions::new(rows, version + 1);
        let meta = catalogs::synth::metadata(schema, table, &opts);
        let folder = versions::folder(name);
        let root = versions::version_root(&folder, version);
        catalogs::synth::generate(storage, &root, &meta, &opts, None)
            .await
            .unwrap_or_else(|e| panic!("generating {root}: {e}"));
        versions::switch(storage, &folder, version)
            .await
            .unwrap_or_else(|e| panic!("switching {folder}: {e}"));
        versions::announce(storage, name)
            .await
            .unwrap_or_else(|e| panic!("announcing {name}: {e}"));
    }

    #[tokio::test]
    async fn a_publication_change_is_a_new_snapshot_taking_over_what_did_not_change() {
        let dir = std::env::temp_dir().join(format!(
            "vostok-snapshot-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let storage = Storage::local(&dir, storage::Missing::Refuse)
            .unwrap_or_else(|e| panic!("storage: {e}"));
        write(&storage, "t.a", 0, 500).await;
        write(&storage, "t.b", 0, 300).await;
        let served: Served = Arc::new(|_: &str, t: Arc<HatsTable>| t as Arc<dyn TableProvider>);
        let engine = open(
            &storage,
            Limits {
                default_maxrec: 10,
                hard_maxrec: 10,
                sync_timeout: 0,
            },
            LimitsConfig::default(),
            16,
            Runtimes::single(tokio::runtime::Handle::current()),
            served,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
        let before = engine.snapshot();
        assert_eq!(before.tables().len(), 2);
        assert!(!engine.changed().await.unwrap_or(true));
        assert!(engine.prepare().await.unwrap_or(None).is_none());

        // t.a replaced by version 1: a new snapshot, t.b taken over as it was.
        write(&storage, "t.a", 1, 800).await;
        assert!(engine.changed().await.unwrap_or(false));
        let next = engine
            .prepare()
            .await
            .unwrap_or_else(|e| panic!("prepare: {e}"))
            .unwrap_or_else(|| panic!("no new snapshot"));
        let old_a = before
            .table("t.a")
            .cloned()
            .unwrap_or_else(|| panic!("t.a"));
        let new_a = next.table("t.a").cloned().unwrap_or_else(|| panic!("t.a"));
        assert_eq!(new_a.catalog().rows, Some(800));
        assert_eq!(old_a.catalog().rows, Some(500));
        let (b0, b1) = (before.table("t.b"), next.table("t.b"));
        assert!(matches!((b0, b1), (Some(x), Some(y)) if Arc::ptr_eq(x, y)));
        // Not served until installed; then the old snapshot is still whole for whoever holds it.
        assert_eq!(
            engine.table("t.a").map(|t| t.catalog().rows),
            Some(Some(500))
        );
        engine.install(next);
        assert_eq!(
            engine.table("t.a").map(|t| t.catalog().rows),
            Some(Some(800))
        );
        assert_eq!(
            before.table("t.a").map(|t| t.catalog().rows),
            Some(Some(500))
        );
        assert_eq!(engine.reloads(), 1);
        assert!(engine.snapshot().generation() > before.generation());

        // Dropped: gone from the tables and from TAP_SCHEMA.
        versions::retire(&storage, "catalogs/t.b")
            .await
            .unwrap_or_else(|e| panic!("retire: {e}"));
        versions::announce(&storage, "t.b")
            .await
            .unwrap_or_else(|e| panic!("announce: {e}"));
        let next = engine
            .prepare()
            .await
            .unwrap_or_else(|e| panic!("prepare: {e}"))
            .unwrap_or_else(|| panic!("no new snapshot"));
        engine.install(next);
        let now = engine.snapshot();
        assert!(now.table("t.b").is_none());
        assert!(now.metadata().tables().all(|(_, t)| t.name != "t.b"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
