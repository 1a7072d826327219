//! The engine: the served [`Snapshot`] (one DataFusion session over every published catalog,
//! and TAP_SCHEMA; swapped whole when the publication changes), the runtimes queries execute
//! on, the limits they are held to, and the result streams. Protocol fronts get
//! an [`Engine`] handle, never the whole application: they plan (ADQL text through
//! [`Engine::plan_adql`], or DataFusion expressions over [`Engine::ctx`]) and hand the plan to
//! [`Engine::stream`], which admits it, executes it and encodes the batches as they come.
//!
//! Admission ([`LimitsConfig`], `[limits]` in vostok.toml): every query shares one DataFusion
//! memory pool (sorts and joins spill to disk when it is full). A query whose pruned scans
//! read little and which joins nothing (`fast_lane_mb`) runs in the fast lane: a synchronous
//! one takes one of `fast_queries` places. The others run in the slow lane, on a runtime of
//! one thread so that a heavy scan or join leaves a core to the cone searches: a synchronous
//! one takes one of `sync_queries` places, then one of `heavy_queries` (jobs only the
//! latter). A synchronous query waits `sync_queue_ms` at most for each, then
//! [`QueryError::Busy`] (HTTP 503). The two lanes' places are apart: heavy queries cannot
//! fill the fast lane's queue. Every join and aggregation yields to its runtime every few
//! batches, so that a query is stopped at once when its consumer goes (time limit, client
//! gone, job aborted).
//!
//! Knows no HTTP: what comes out is a stream of encoded chunks ([`ResultStream`]) and typed
//! errors ([`QueryError`]); `dali` turns them into responses.

pub mod distributed;
mod error;
mod session;
mod stream;
pub mod tap_schema;

use std::sync::Arc;
use std::time::Duration;

use catalogs::HatsTable;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{LogicalPlan, ScalarUDF};
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use error::QueryError;
pub use session::{open, runtime_env, Served};
pub(crate) use stream::timed;
pub use stream::{Lane, QueryRequest, ResultStream, StreamEnd, TimeLimit};
pub use tap_schema::TapMetadata;

/// Limits every query is held to (`[tap]` in vostok.toml: they apply to every protocol).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Rows returned when the client gives no MAXREC.
    pub default_maxrec: u64,
    /// Largest MAXREC honoured.
    pub hard_maxrec: u64,
    /// Seconds a synchronous query may run (0: no limit).
    pub sync_timeout: u64,
}

/// `[limits]` in vostok.toml: what the queries of all users together may take.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Memory of the DataFusion pool all queries share, MiB; sorts, aggregates and joins
    /// spill to disk when it is full, and a query that still does not fit fails.
    pub query_memory_mb: usize,
    /// Disk the spills of all queries may take, MiB.
    pub spill_mb: u64,
    /// Synchronous queries (TAP sync, SCS, SIA, SSA) of the fast lane executing at once.
    pub fast_queries: usize,
    /// Synchronous queries of the slow lane admitted at once (they then wait for one of
    /// `heavy_queries`).
    pub sync_queries: usize,
    /// How long a synchronous query waits for a place (in each queue), milliseconds; then
    /// HTTP 503.
    pub sync_queue_ms: u64,
    /// Queries of the slow lane executing at once (asynchronous jobs included).
    pub heavy_queries: usize,
    /// A query whose catalog scans, pruned by their spatial conditions, read at most this
    /// many MiB of Parquet runs in the fast lane; the others in the slow lane.
    pub fast_lane_mb: u64,
    /// Seconds to parse and plan one query.
    pub planning_seconds: u64,
    /// DataLink previews and headers rendered at once.
    pub previews: usize,
    /// Largest decompressed size of a product read for a preview or header, MiB.
    pub decompressed_mb: u64,
    /// Memory all VOSpace uploads in progress may buffer together, MiB (each reserves its
    /// declared length, at most 15 MiB); an upload that finds no room within
    /// `sync_queue_ms` gets HTTP 503 with Retry-After.
    pub upload_buffer_mb: u64,
    /// Threads each runtime (every HTTP worker, each query lane) may start for blocking work:
    /// file reads and writes of VOSpace and the catalogs, SQLite. Beyond it such work waits
    /// for a thread. Each thread keeps its stack and allocator heap while it lives (tokio's
    /// default of 512 let 1,000 VOSpace clients start ~500 threads and ~1 GiB).
    pub blocking_threads: usize,
    /// Most tokens of one ADQL query text (every word, number, symbol, space and line break;
    /// adql::Options::max_tokens); a longer text is refused before it is read.
    pub query_tokens: usize,
    /// Largest stored product whose MD5 (the `Digest` of its downloads) the server computes
    /// itself when ingest recorded none, MiB; larger ones go without `Digest`.
    pub digest_mb: u64,
    /// On SIGTERM, how long running synchronous queries may go on finishing, seconds; past
    /// it each result ends with an error that says the service is stopping.
    pub drain_seconds: u64,
    /// Largest ADQL text the portal's live check (`/portal/api/check`) accepts, KiB (413
    /// beyond).
    pub check_kb: usize,
    /// Live checks running at once (503 beyond).
    pub checks: usize,
    /// Seconds one live check may take before it is answered as timed out.
    pub check_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            query_memory_mb: 1024,
            spill_mb: 10 * 1024,
            fast_queries: 32,
            sync_queries: 8,
            sync_queue_ms: 2000,
            heavy_queries: 1,
            fast_lane_mb: 64,
            planning_seconds: 10,
            previews: 2,
            decompressed_mb: 1024,
            upload_buffer_mb: 256,
            blocking_threads: 16,
            query_tokens: adql::MAX_TOKENS,
            digest_mb: 4096,
            drain_seconds: 5,
            check_kb: 64,
            checks: 4,
            check_seconds: 10,
        }
    }
}

/// The runtimes queries execute on: the fast lane (as many threads as cores) and the slow
/// lane (one thread), both apart from the HTTP workers.
#[derive(Debug, Clone)]
pub struct Runtimes {
    /// Cheap queries.
    pub fast: tokio::runtime::Handle,
    /// Heavy queries and asynchronous jobs.
    pub slow: tokio::runtime::Handle,
}

impl Runtimes {
    /// The same runtime for both lanes (command-line tools).
    pub fn single(handle: tokio::runtime::Handle) -> Self {
        Runtimes {
            fast: handle.clone(),
            slow: handle,
        }
    }
}

/// What [`Engine::footer_cache`] reports.
#[derive(Debug, Clone, Copy)]
pub struct FooterCache {
    /// Files whose footer is cached.
    pub entries: usize,
    /// Bytes they take.
    pub bytes: usize,
    /// Reads served from the cache by the entries now in it.
    pub hits: usize,
    /// The cache's limit, bytes.
    pub limit: usize,
}

/// What the engine serves at one moment: the DataFusion session with every published table
/// registered, the tables, and TAP_SCHEMA. Immutable: a publication change builds a new one
/// and swaps it in ([`Engine::install`]); a request takes one ([`Engine::snapshot`]) and
/// plans against it, and a query planned on it keeps its tables (and so their files' version)
/// until it ends.
pub struct Snapshot {
    ctx: SessionContext,
    /// The session that sends large queries to the query workers, when there are
    /// (`[distributed] workers`).
    distributed: Option<SessionContext>,
    tables: Vec<(String, Arc<HatsTable>)>,
    /// Each table's folder and published root (`catalogs/<name>`, `catalogs/<name>/v3`), in
    /// the order of `tables`.
    folders: Vec<(String, String)>,
    metadata: TapMetadata,
    /// The publication marker this snapshot was built after (catalogs::versions::MARKER).
    marker: Option<bytes::Bytes>,
    generation: u64,
}

impl Snapshot {
    /// The DataFusion context with every table registered.
    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
    }

    /// A copy of the session state (to plan with, or to extend for one query).
    pub fn session(&self) -> SessionState {
        self.ctx.state()
    }

    /// The session that spreads queries over the query workers, when there are.
    pub fn distributed(&self) -> Option<&SessionContext> {
        self.distributed.as_ref()
    }

    /// The served catalogs, by qualified lower-case name.
    pub fn tables(&self) -> &[(String, Arc<HatsTable>)] {
        &self.tables
    }

    /// A served catalog by qualified name (case-insensitive).
    pub fn table(&self, name: &str) -> Option<&Arc<HatsTable>> {
        self.tables
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, t)| t)
    }

    /// Table and column metadata (TAP_SCHEMA, VOSI tables).
    pub fn metadata(&self) -> &TapMetadata {
        &self.metadata
    }

    /// The publication generation (the marker's count; 0 before any change was announced).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The published root of each served table's folder, by folder.
    pub fn roots(&self) -> &[(String, String)] {
        &self.folders
    }
}

/// A handle on the query engine: what every protocol front may use.
pub struct Engine {
    /// What is served now.
    current: std::sync::RwLock<Arc<Snapshot>>,
    /// How a new snapshot is built.
    publisher: session::Publisher,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Snapshots swapped in since start.
    reloads: std::sync::atomic::AtomicU64,
    runtimes: Runtimes,
    limits: Limits,
    admission: LimitsConfig,
    fast_places: Arc<Semaphore>,
    sync_places: Arc<Semaphore>,
    heavy_places: Arc<Semaphore>,
    /// When the service stops (SIGTERM): the moment running queries must have ended by.
    drain: tokio::sync::watch::Sender<Option<tokio::time::Instant>>,
}

impl Engine {
    /// What is served now: take it once per request and plan against it.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The DataFusion context of the current snapshot.
    pub fn ctx(&self) -> SessionContext {
        self.snapshot().ctx.clone()
    }

    /// A copy of the current session state (to plan with, or to extend for one query).
    pub fn session(&self) -> SessionState {
        self.snapshot().session()
    }

    /// A served catalog of the current snapshot by qualified name (case-insensitive).
    pub fn table(&self, name: &str) -> Option<Arc<HatsTable>> {
        self.snapshot().table(name).cloned()
    }

    /// Whether the publication marker differs from the one the current snapshot was built
    /// after (one small read of the data folder).
    pub async fn changed(&self) -> anyhow::Result<bool> {
        let marker = catalogs::versions::read_marker(&self.publisher.storage).await?;
        Ok(marker != self.snapshot().marker)
    }

    /// Builds a snapshot of what the data folder publishes now (a catalog whose published
    /// version did not change is taken over, not read again); `None` when it is the same as
    /// the current one. Install it with [`Engine::install`].
    pub async fn prepare(&self) -> anyhow::Result<Option<Arc<Snapshot>>> {
        let current = self.snapshot();
        let next = self.publisher.snapshot(Some(current.as_ref())).await?;
        let same = next.marker == current.marker
            && next.folders == current.folders
            && next.tables.len() == current.tables.len();
        Ok((!same).then(|| Arc::new(next)))
    }

    /// Serves `next` from now on: requests that took the previous snapshot finish on it.
    pub fn install(&self, next: Arc<Snapshot>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        self.reloads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// One reload at a time: hold the guard across [`Engine::prepare`] and
    /// [`Engine::install`].
    pub async fn reload_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reloading.lock().await
    }

    /// Snapshots swapped in since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The query limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What the queries of all users together may take (`[limits]`).
    pub fn admission(&self) -> &LimitsConfig {
        &self.admission
    }

    /// A registered function (the ADQL geometry functions, …).
    pub fn udf(&self, name: &str) -> Result<Arc<ScalarUDF>, QueryError> {
        use datafusion::execution::FunctionRegistry;
        self.snapshot()
            .ctx
            .udf(name)
            .map_err(|e| QueryError::Internal(e.to_string()))
    }

    /// Parses, validates and plans ADQL with `session`, within `[limits] planning_seconds`.
    /// Parsing and planning recurse over the query tree: they run on the query runtime, whose
    /// threads have large stacks, not on an HTTP worker's 2 MiB (a 290-operator expression
    /// overflowed one; adql caps nesting at 300 operators).
    pub async fn plan_adql(
        &self,
        session: SessionState,
        text: String,
    ) -> Result<LogicalPlan, QueryError> {
        let secs = self.admission.planning_seconds.max(1);
        let opts = adql::Options {
            max_tokens: self.admission.query_tokens,
            ..adql::Options::default()
        };
        let task = self
            .runtimes
            .fast
            .spawn(async move { adql::plan_with(&session, &text, &opts).await });
        let abort = task.abort_handle();
        match tokio::time::timeout(Duration::from_secs(secs), task).await {
            Ok(done) => done
                .map_err(|e| QueryError::Internal(format!("planning failed: {e}")))?
                .map_err(|e| QueryError::Invalid(e.to_string())),
            Err(_) => {
                abort.abort();
                Err(QueryError::Invalid(format!(
                    "planning took longer than the {secs} s allowed ([limits] \
                     planning_seconds): simplify the query"
                )))
            }
        }
    }

    /// A place among the synchronous queries of the slow lane: at once when one is free,
    /// else after waiting at most `[limits] sync_queue_ms`; [`QueryError::Busy`] when none
    /// freed up.
    async fn sync_place(&self) -> Result<OwnedSemaphorePermit, QueryError> {
        let wait = Duration::from_millis(self.admission.sync_queue_ms);
        match tokio::time::timeout(wait, self.sync_places.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(QueryError::Busy(format!(
                "the service is busy: {} large synchronous queries are running or waiting, as \
                 many as it admits at once ([limits] sync_queries); retry in a few seconds, or \
                 submit the query as an asynchronous job",
                self.admission.sync_queries
            ))),
        }
    }

    /// A place among the synchronous queries of the fast lane (`[limits] fast_queries`),
    /// waiting `[limits] sync_queue_ms` at most.
    async fn fast_place(&self) -> Result<OwnedSemaphorePermit, QueryError> {
        let wait = Duration::from_millis(self.admission.sync_queue_ms);
        match tokio::time::timeout(wait, self.fast_places.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(QueryError::Busy(format!(
                "the service is busy: {} small synchronous queries are running, as many as it \
                 runs at once ([limits] fast_queries); retry in a few seconds",
                self.admission.fast_queries
            ))),
        }
    }

    /// The service is stopping: no query starts from now on, and the running ones end within
    /// `[limits] drain_seconds` (their results with an error past it).
    pub fn start_draining(&self) {
        let until = tokio::time::Instant::now()
            + std::time::Duration::from_secs(self.admission.drain_seconds);
        self.drain.send_replace(Some(until));
    }

    /// Whether the service is stopping.
    pub fn draining(&self) -> bool {
        self.drain.borrow().is_some()
    }

    /// The Parquet footer cache now: entries, their bytes, the reads they served since they
    /// were cached, and the cache's limit in bytes (`metadata_cache_mb`).
    pub fn footer_cache(&self) -> FooterCache {
        let cache = self.publisher.env.cache_manager.get_file_metadata_cache();
        let entries = cache.list_entries();
        FooterCache {
            entries: entries.len(),
            bytes: entries.values().map(|e| e.size_bytes).sum(),
            hits: entries.values().map(|e| e.hits).sum(),
            limit: cache.cache_limit(),
        }
    }

    /// Bytes the query memory pool has handed out now (`[limits] query_memory_mb`).
    pub fn memory_reserved(&self) -> usize {
        self.publisher.env.memory_pool.reserved()
    }

    /// The synchronous-query places in use now, per admission queue.
    pub fn places_in_use(&self) -> [(&'static str, usize); 3] {
        let used = |s: &Semaphore, n: usize| n.saturating_sub(s.available_permits());
        [
            (
                "fast",
                used(&self.fast_places, self.admission.fast_queries.max(1)),
            ),
            (
                "sync",
                used(&self.sync_places, self.admission.sync_queries.max(1)),
            ),
            (
                "heavy",
                used(&self.heavy_places, self.admission.heavy_queries.max(1)),
            ),
        ]
    }

    /// Runs `work` (a small lookup of the server's own, no user text as query) on the query
    /// runtime rather than on the caller's HTTP worker.
    pub async fn run_lookup<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, QueryError> {
        self.runtimes
            .fast
            .spawn(work)
            .await
            .map_err(|e| QueryError::Internal(format!("lookup failed: {e}")))
    }

    /// The time limit of synchronous queries (`[tap] sync_timeout`; 0: none).
    pub fn sync_limit(&self) -> Option<TimeLimit> {
        let secs = self.limits.sync_timeout;
        (secs > 0).then(|| TimeLimit {
            deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(secs),
            message: format!(
                "the query ran longer than the {secs} s allowed to synchronous queries and was \
                 stopped; submit it as an asynchronous job at /tap/async (TAP async, e.g. pyvo's \
                 TAPService.run_async), which may run longer"
            ),
        })
    }
}
