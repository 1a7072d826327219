//! Building the engine: the DataFusion session's settings, the object store, every catalog of
//! the data folder as a table, and TAP_SCHEMA.

use std::sync::Arc;

use catalogs::HatsTable;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::TableProvider;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use storage::Storage;

use tokio::sync::Semaphore;

use super::{Engine, Limits, LimitsConfig, Runtimes, TapMetadata};

/// How a catalog is served: the table itself, or a wrapper over it (ObsCore gets absolute
/// access URLs). Given the catalog's root in the data folder (`catalogs/<schema>.<table>`).
pub type Served<'a> = &'a dyn Fn(&str, Arc<HatsTable>) -> Arc<dyn TableProvider>;

/// The DataFusion session settings vostok runs with.
fn session_config() -> SessionConfig {
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
/// `hats.properties` is a table (one that cannot be opened is skipped with a warning).
/// `metadata_cache_mb` bounds the cache of Parquet footers; queries run on `runtimes`, held to
/// `limits` and `admission`.
pub async fn open(
    storage: &Storage,
    limits: Limits,
    admission: LimitsConfig,
    metadata_cache_mb: usize,
    runtimes: Runtimes,
    served: Served<'_>,
) -> anyhow::Result<Engine> {
    // One memory pool for every query: fair among the operators that can spill (sorts,
    // aggregates, joins), which then spill to the OS's temporary folder; the five largest
    // consumers are named in the error of a query that does not fit.
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
    let ctx = SessionContext::new_with_config_rt(session_config(), env);
    adql::register(&ctx);
    let store_url = catalogs::store_url(storage)?;

    let mut roots: Vec<String> = Vec::new();
    let base = storage.path("catalogs");
    if let Ok(listing) = storage.store.list_with_delimiter(Some(&base)).await {
        for p in listing.common_prefixes {
            if let Some(name) = p.filename() {
                roots.push(format!("catalogs/{name}"));
            }
        }
    }
    roots.sort();
    let mut tables = Vec::new();
    let df_catalog = ctx
        .catalog("datafusion")
        .ok_or_else(|| anyhow::anyhow!("no default catalog"))?;
    for root in roots {
        if !storage
            .exists(&storage.path(&format!("{root}/hats.properties")))
            .await?
        {
            continue;
        }
        let cat = match catalogs::open_catalog(storage, &root).await {
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
        let table = Arc::new(HatsTable::new(cat.clone(), store_url.clone()));
        ctx.register_table(
            TableReference::partial(schema.clone(), name.clone()),
            served(&root, table.clone()),
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
    Ok(Engine {
        ctx,
        runtimes,
        tables,
        metadata,
        limits,
        fast_places: Arc::new(Semaphore::new(admission.fast_queries.max(1))),
        sync_places: Arc::new(Semaphore::new(admission.sync_queries.max(1))),
        heavy_places: Arc::new(Semaphore::new(admission.heavy_queries.max(1))),
        admission,
        drain: tokio::sync::watch::Sender::new(None),
    })
}
