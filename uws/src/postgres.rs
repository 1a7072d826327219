//! The job store in PostgreSQL: what a data centre keeps its metadata in, reachable from
//! several machines. The same trait and the same behaviour as [`crate::sqlite`]; every
//! statement takes its values as parameters, none is built from user text.
//!
//! The schema is versioned in `vostok_schema` (one row per component, here `uws`); the
//! migrations run in one transaction under an advisory lock, so that two servers starting at
//! once on a new database do not both create it.
//!
//! Any number of servers share one database: a job is run by the server holding its claim
//! ([`JobStore::claim`], `FOR UPDATE SKIP LOCKED`: claims at once never collide), and every
//! phase change and deletion is announced on the channel [`CHANNEL`] (a trigger, so that
//! whatever changes a row announces it), which each server listens to on a connection of its
//! own ([`JobStore::changes`]): a blocking WAIT, an abort or a new job is seen by every
//! server at once. Lease times are the database server's clock, the one clock all share.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Row};

use crate::pgtls::{Connector, Target};

use crate::model::{Job, JobFilter, Phase};
use crate::store::{
    claimable_phase, lease_ms, Apply, Change, Claimed, JobStore, Renewal, StoreError,
};

/// The advisory lock key every vostok migration takes ("vostok" in ASCII).
const MIGRATION_LOCK: i64 = 0x766f_7374_6f6b;

/// Version 1: jobs of every kind, as the SQLite store's version 2 keeps them.
const SCHEMA_V1: &str = "
CREATE TABLE uws_jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    run_id TEXT,
    owner TEXT,
    phase TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    start_time BIGINT,
    end_time BIGINT,
    execution_duration BIGINT NOT NULL,
    destruction BIGINT NOT NULL,
    parameters TEXT NOT NULL,
    uploads TEXT NOT NULL,
    job_info TEXT,
    origin TEXT,
    error TEXT,
    results TEXT NOT NULL
);
CREATE INDEX uws_jobs_creation ON uws_jobs (creation_time);
CREATE INDEX uws_jobs_destruction ON uws_jobs (destruction);
CREATE INDEX uws_jobs_owner ON uws_jobs (kind, owner, creation_time);
";

/// Version 2: claims (the server running a job, and until when its claim holds without
/// renewal, in ms since the epoch by the database's clock), and the notification of every
/// phase change and deletion on [`CHANNEL`] (payload: the new phase, or `DELETED`, a space,
/// the job's identifier).
const MIGRATE_V2: &str = "
ALTER TABLE uws_jobs ADD COLUMN claimed_by TEXT;
ALTER TABLE uws_jobs ADD COLUMN lease_until BIGINT;
CREATE INDEX uws_jobs_claimable ON uws_jobs (kind, creation_time)
  WHERE phase IN ('QUEUED', 'EXECUTING');
CREATE FUNCTION uws_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('vostok_uws_jobs', 'DELETED ' || OLD.id);
  ELSIF TG_OP = 'INSERT' OR OLD.phase IS DISTINCT FROM NEW.phase THEN
    PERFORM pg_notify('vostok_uws_jobs', NEW.phase || ' ' || NEW.id);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER uws_jobs_notify AFTER INSERT OR UPDATE OR DELETE ON uws_jobs
  FOR EACH ROW EXECUTE FUNCTION uws_jobs_notify();
";

/// The channel phase changes are announced on.
pub const CHANNEL: &str = "vostok_uws_jobs";

/// Now, in ms since the epoch, by the database server's clock.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// The schema version this code reads and writes.
const VERSION: i32 = 2;

const COLUMNS: &str = "id, kind, run_id, owner, phase, creation_time, start_time, end_time, \
execution_duration, destruction, parameters, uploads, job_info, origin, error, results";

/// Jobs in a PostgreSQL database.
///
/// Every statement runs on a runtime of the store's own: a connection's I/O is driven by a
/// task on the runtime that opened it, and a server calls the store from several (HTTP
/// workers, query lanes, the job runtime), any of which may be busy or go away.
pub struct PgStore {
    db: Arc<Db>,
    rt: tokio::runtime::Handle,
    /// Where the database is (the listening connection is not one of the pool's).
    config: tokio_postgres::Config,
    tls: Connector,
    /// The URL without its password, for messages.
    shown: String,
}

/// The connection pool, used from the store's runtime only.
struct Db {
    pool: Pool,
}

/// The error with its causes: tokio-postgres says only "db error" at the top, PostgreSQL's
/// own message is the cause.
fn db_err(e: impl std::error::Error) -> StoreError {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    StoreError(msg)
}

/// The connection string without its password, for messages and logs.
pub use crate::pgtls::redact;

/// A pool of at most `connections` connections to the database `config` names, driven by a
/// runtime of its own whose thread is called `thread`: a connection's I/O is driven by a task
/// on the runtime that opened it, and a store's callers (HTTP workers, query lanes, the job
/// runtime) may be busy or go away. The job store and the VOSpace store open theirs here.
pub fn pool_on_own_runtime(
    config: &tokio_postgres::Config,
    tls: Connector,
    connections: usize,
    thread: &str,
) -> Result<(Pool, tokio::runtime::Handle), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(thread)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let handle = rt.handle().clone();
    // The runtime lives as long as the process (as the job runtime does): dropping it would
    // shut it down from whichever thread dropped the store last.
    std::mem::forget(rt);
    let manager = Manager::from_config(
        config.clone(),
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(connections.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .build()
        .map_err(|e| e.to_string())?;
    Ok((pool, handle))
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// or libpq's key-value form; TLS as its `sslmode` says: [`crate::pgtls`]), with at most
    /// `connections` connections, and brings its schema up to date.
    pub async fn open(url: &str, connections: usize) -> Result<Self, StoreError> {
        let target = Target::parse(url, None).map_err(StoreError)?;
        Self::open_target(&target, connections).await
    }

    /// [`PgStore::open`] on a parsed connection string.
    pub async fn open_target(target: &Target, connections: usize) -> Result<Self, StoreError> {
        let shown = target.shown().to_string();
        let tls = target
            .connector()
            .map_err(|e| StoreError(format!("{shown}: {e}")))?;
        let config = target.config().clone();
        let (pool, handle) = pool_on_own_runtime(&config, tls.clone(), connections, "vostok-pg")
            .map_err(StoreError)?;
        let store = PgStore {
            db: Arc::new(Db { pool }),
            rt: handle,
            config,
            tls,
            shown: shown.clone(),
        };
        let explain = target.clone();
        store
            .on_rt(move |db| async move {
                let mut c = db.pool.get().await.map_err(|e| {
                    StoreError(format!(
                        "cannot connect to {shown}: {}",
                        explain.explain_pool(&e)
                    ))
                })?;
                migrate(&mut c).await
            })
            .await?;
        Ok(store)
    }

    /// Runs `f` on the store's runtime.
    async fn on_rt<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<Db>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        self.rt.spawn(f(self.db.clone())).await.map_err(db_err)?
    }
}

impl Db {
    async fn conn(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(db_err)
    }

    /// `update` and `update_held` (`holder` given) in one transaction. A job leaving QUEUED
    /// and EXECUTING loses its claim.
    async fn update_in(
        &self,
        id: &str,
        holder: Option<&str>,
        from: &[Phase],
        apply: Apply,
    ) -> Result<Option<Job>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        let row = tx
            .query_opt(
                &format!("SELECT {COLUMNS}, claimed_by FROM uws_jobs WHERE id = $1 FOR UPDATE"),
                &[&id],
            )
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut job = job_from_row(&row)?;
        if !from.is_empty() && !from.contains(&job.phase) {
            return Ok(None);
        }
        if let Some(holder) = holder {
            let claimed_by: Option<String> = row.try_get(16).map_err(db_err)?;
            if claimed_by.as_deref() != Some(holder) {
                return Ok(None);
            }
        }
        apply(&mut job);
        let keep_claim = claimable_phase(job.phase);
        tx.execute(
            "UPDATE uws_jobs SET run_id = $2, phase = $3, start_time = $4, end_time = $5, \
             execution_duration = $6, destruction = $7, parameters = $8, uploads = $9, \
             job_info = $10, error = $11, results = $12, \
             claimed_by = CASE WHEN $13 THEN claimed_by END, \
             lease_until = CASE WHEN $13 THEN lease_until END WHERE id = $1",
            &[
                &id,
                &job.run_id,
                &job.phase.as_str(),
                &job.start_time,
                &job.end_time,
                &to_i64(job.execution_duration),
                &job.destruction,
                &to_json(&job.parameters)?,
                &to_json(&job.uploads)?,
                &job.job_info,
                &job.error,
                &to_json(&job.results)?,
                &keep_claim,
            ],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(job))
    }
}

/// A notification's payload (`PHASE id`, `DELETED id`) as a change.
fn parse_change(payload: &str) -> Option<Change> {
    let (phase, id) = payload.split_once(' ')?;
    let phase = match phase {
        "DELETED" => None,
        p => Some(Phase::parse(p).unwrap_or(Phase::Unknown)),
    };
    Some(Change {
        id: id.to_string(),
        phase,
    })
}

/// Seconds between two checks that the listening connection is alive (a dead one is
/// replaced), and the longest wait before connecting again after a failure.
const LISTEN_CHECK: Duration = Duration::from_secs(15);

/// Listens to [`CHANNEL`] on a connection of its own and forwards what it hears to `tx`,
/// until nobody receives: a lost connection is logged and opened again.
async fn listen(
    config: tokio_postgres::Config,
    tls: Connector,
    shown: String,
    tx: mpsc::UnboundedSender<Change>,
) {
    let mut backoff = Duration::from_millis(200);
    let mut failing = false;
    while !tx.is_closed() {
        let ended = listen_once(&config, &tls, &tx, &mut failing, &shown).await;
        if tx.is_closed() {
            return;
        }
        if !failing {
            tracing::warn!(
                "job database {shown}: listening to job changes stopped ({ended}); \
                 connecting again (meanwhile other servers' changes are seen by polling)"
            );
            failing = true;
            backoff = Duration::from_millis(200);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LISTEN_CHECK);
    }
}

/// One listening connection, until it fails: why it ended.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &Connector,
    tx: &mpsc::UnboundedSender<Change>,
    failing: &mut bool,
    shown: &str,
) -> String {
    let (client, mut connection) = match config.connect(tls.clone()).await {
        Ok(c) => c,
        Err(e) => return db_err(e).0,
    };
    let (heard_tx, mut heard) = mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if heard_tx.send(n.payload().to_string()).is_err() {
                        return "stopped".to_string();
                    }
                }
                Ok(_) => {}
                Err(e) => return db_err(e).0,
            }
        }
        "the connection closed".to_string()
    });
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        driver.abort();
        return db_err(e).0;
    }
    if *failing {
        tracing::info!("job database {shown}: listening to job changes again");
        *failing = false;
    }
    let mut check = tokio::time::interval(LISTEN_CHECK);
    check.tick().await;
    let why = loop {
        tokio::select! {
            heard_one = heard.recv() => match heard_one {
                Some(payload) => {
                    if let Some(change) = parse_change(&payload) {
                        if tx.send(change).is_err() {
                            break "stopped".to_string();
                        }
                    }
                }
                None => break "the connection ended".to_string(),
            },
            _ = check.tick() => {
                if let Err(e) = client.batch_execute("SELECT 1").await {
                    break db_err(e).0;
                }
            }
        }
    };
    driver.abort();
    match driver.await {
        Ok(driver_why) => driver_why,
        Err(_) => why,
    }
}

/// Brings the schema to [`VERSION`]; a database written by a newer vostok is refused rather
/// than changed.
async fn migrate(c: &mut Object) -> Result<(), StoreError> {
    let tx = c.transaction().await.map_err(db_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS vostok_schema \
         (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    )
    .await
    .map_err(db_err)?;
    let version: i32 = tx
        .query_opt(
            "SELECT version FROM vostok_schema WHERE component = 'uws'",
            &[],
        )
        .await
        .map_err(db_err)?
        .map(|r| r.get(0))
        .unwrap_or(0);
    if version > VERSION {
        return Err(StoreError(format!(
            "the job database has schema version {version}, newer than this vostok's {VERSION}"
        )));
    }
    let steps: [(i32, &str); 2] = [(1, SCHEMA_V1), (2, MIGRATE_V2)];
    for (to, sql) in steps {
        if version >= to {
            continue;
        }
        tx.batch_execute(sql).await.map_err(db_err)?;
    }
    if version < VERSION {
        tx.execute(
            "INSERT INTO vostok_schema (component, version) VALUES ('uws', $1) \
             ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
            &[&VERSION],
        )
        .await
        .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn json_col<T: serde::de::DeserializeOwned>(row: &Row, i: usize) -> Result<T, StoreError> {
    let text: String = row.try_get(i).map_err(db_err)?;
    serde_json::from_str(&text).map_err(|e| StoreError(format!("column {i}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(db_err)
}

fn job_from_row(row: &Row) -> Result<Job, StoreError> {
    let get_err = |e: tokio_postgres::Error| db_err(e);
    let phase: String = row.try_get(4).map_err(get_err)?;
    let duration: i64 = row.try_get(8).map_err(get_err)?;
    Ok(Job {
        id: row.try_get(0).map_err(get_err)?,
        kind: row.try_get(1).map_err(get_err)?,
        run_id: row.try_get(2).map_err(get_err)?,
        owner: row.try_get(3).map_err(get_err)?,
        phase: Phase::parse(&phase).unwrap_or(Phase::Unknown),
        creation_time: row.try_get(5).map_err(get_err)?,
        start_time: row.try_get(6).map_err(get_err)?,
        end_time: row.try_get(7).map_err(get_err)?,
        execution_duration: u64::try_from(duration).unwrap_or(0),
        destruction: row.try_get(9).map_err(get_err)?,
        parameters: json_col(row, 10)?,
        uploads: json_col(row, 11)?,
        job_info: row.try_get(12).map_err(get_err)?,
        origin: row.try_get(13).map_err(get_err)?,
        error: row.try_get(14).map_err(get_err)?,
        results: json_col(row, 15)?,
    })
}

#[async_trait]
impl JobStore for PgStore {
    async fn create(&self, job: &Job) -> Result<bool, StoreError> {
        let job = job.clone();
        self.on_rt(move |db| async move { db.create(&job).await })
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let id = id.to_string();
        self.on_rt(move |db| async move { db.get(&id).await }).await
    }

    async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let filter = filter.clone();
        self.on_rt(move |db| async move { db.list(&filter).await })
            .await
    }

    async fn update(
        &self,
        id: &str,
        from: &[Phase],
        apply: Apply,
    ) -> Result<Option<Job>, StoreError> {
        let id = id.to_string();
        let from = from.to_vec();
        self.on_rt(move |db| async move { db.update(&id, &from, apply).await })
            .await
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.on_rt(move |db| async move { db.delete(&id).await })
            .await
    }

    async fn list_expired(&self, now: i64) -> Result<Vec<String>, StoreError> {
        self.on_rt(move |db| async move { db.list_expired(now).await })
            .await
    }

    async fn claim(
        &self,
        kind: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let kind = kind.to_string();
        let holder = holder.to_string();
        self.on_rt(move |db| async move { db.claim(&kind, &holder, lease).await })
            .await
    }

    async fn renew(&self, id: &str, holder: &str, lease: Duration) -> Result<Renewal, StoreError> {
        let id = id.to_string();
        let holder = holder.to_string();
        self.on_rt(move |db| async move { db.renew(&id, &holder, lease).await })
            .await
    }

    async fn release(&self, id: &str, holder: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        let holder = holder.to_string();
        self.on_rt(move |db| async move { db.release(&id, &holder).await })
            .await
    }

    async fn update_held(
        &self,
        id: &str,
        holder: &str,
        from: &[Phase],
        apply: Apply,
    ) -> Result<Option<Job>, StoreError> {
        let id = id.to_string();
        let holder = holder.to_string();
        let from = from.to_vec();
        self.on_rt(move |db| async move { db.update_in(&id, Some(&holder), &from, apply).await })
            .await
    }

    fn changes(&self) -> Option<mpsc::UnboundedReceiver<Change>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.rt.spawn(listen(
            self.config.clone(),
            self.tls.clone(),
            self.shown.clone(),
            tx,
        ));
        Some(rx)
    }
}

#[async_trait]
impl JobStore for Db {
    async fn create(&self, job: &Job) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                &format!(
                    "INSERT INTO uws_jobs ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                     ON CONFLICT (id) DO NOTHING"
                ),
                &[
                    &job.id,
                    &job.kind,
                    &job.run_id,
                    &job.owner,
                    &job.phase.as_str(),
                    &job.creation_time,
                    &job.start_time,
                    &job.end_time,
                    &to_i64(job.execution_duration),
                    &job.destruction,
                    &to_json(&job.parameters)?,
                    &to_json(&job.uploads)?,
                    &job.job_info,
                    &job.origin,
                    &job.error,
                    &to_json(&job.results)?,
                ],
            )
            .await
            .map_err(db_err)?;
        Ok(n == 1)
    }

    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {COLUMNS} FROM uws_jobs WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(db_err)?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let phases: Vec<&str> = filter.phases.iter().map(|p| p.as_str()).collect();
        let limit: Option<i64> = filter.last.map(to_i64);
        let by_owner = filter.owner.is_some();
        let owner: Option<&str> = filter.owner.as_ref().and_then(|o| o.as_deref());
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM uws_jobs \
                     WHERE ((cardinality($1::text[]) = 0 AND phase <> 'ARCHIVED') \
                            OR phase = ANY($1::text[])) \
                     AND ($2::bigint IS NULL OR creation_time > $2) \
                     AND ($4::text IS NULL OR kind = $4) \
                     AND (NOT $5 OR owner IS NOT DISTINCT FROM $6::text) \
                     ORDER BY creation_time DESC, id DESC LIMIT $3"
                ),
                &[
                    &phases,
                    &filter.after,
                    &limit,
                    &filter.kind,
                    &by_owner,
                    &owner,
                ],
            )
            .await
            .map_err(db_err)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn update(
        &self,
        id: &str,
        from: &[Phase],
        apply: Apply,
    ) -> Result<Option<Job>, StoreError> {
        self.update_in(id, None, from, apply).await
    }

    async fn update_held(
        &self,
        id: &str,
        holder: &str,
        from: &[Phase],
        apply: Apply,
    ) -> Result<Option<Job>, StoreError> {
        self.update_in(id, Some(holder), from, apply).await
    }

    async fn claim(
        &self,
        kind: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "WITH c AS (SELECT id AS cid, phase AS was FROM uws_jobs \
                       WHERE kind = $1 AND phase IN ('QUEUED', 'EXECUTING') \
                       AND (claimed_by IS NULL OR lease_until IS NULL OR lease_until < {NOW_MS}) \
                       ORDER BY creation_time, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     UPDATE uws_jobs SET claimed_by = $2, lease_until = {NOW_MS} + $3, \
                       phase = 'QUEUED', \
                       start_time = CASE WHEN c.was = 'EXECUTING' THEN NULL ELSE start_time END \
                     FROM c WHERE id = c.cid RETURNING {COLUMNS}, c.was"
                ),
                &[&kind, &holder, &lease_ms(lease)],
            )
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let was: String = row.try_get(16).map_err(db_err)?;
        Ok(Some(Claimed {
            job: job_from_row(&row)?,
            taken_over: was == Phase::Executing.as_str(),
        }))
    }

    async fn renew(&self, id: &str, holder: &str, lease: Duration) -> Result<Renewal, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        let row = tx
            .query_opt(
                "SELECT phase, claimed_by FROM uws_jobs WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(Renewal::Gone);
        };
        let phase: String = row.try_get(0).map_err(db_err)?;
        let claimed_by: Option<String> = row.try_get(1).map_err(db_err)?;
        let phase = Phase::parse(&phase).unwrap_or(Phase::Unknown);
        if !claimable_phase(phase) {
            return Ok(Renewal::Ended(phase));
        }
        if claimed_by.as_deref() != Some(holder) {
            return Ok(Renewal::Lost);
        }
        tx.execute(
            &format!("UPDATE uws_jobs SET lease_until = {NOW_MS} + $2 WHERE id = $1"),
            &[&id, &lease_ms(lease)],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Renewal::Held)
    }

    async fn release(&self, id: &str, holder: &str) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "UPDATE uws_jobs SET claimed_by = NULL, lease_until = NULL, phase = 'QUEUED', \
                 start_time = CASE WHEN phase = 'EXECUTING' THEN NULL ELSE start_time END \
                 WHERE id = $1 AND claimed_by = $2",
                &[&id, &holder],
            )
            .await
            .map_err(db_err)?;
        Ok(n == 1)
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute("DELETE FROM uws_jobs WHERE id = $1", &[&id])
            .await
            .map_err(db_err)?;
        Ok(n == 1)
    }

    async fn list_expired(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT id FROM uws_jobs WHERE destruction <= $1 ORDER BY destruction",
                &[&now],
            )
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(db_err))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgtest::Cluster;
    use crate::store::tests::behaves_as_a_job_store;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_persist_filter_and_update_atomically() {
        let cluster = Cluster::start().unwrap();
        let url = cluster.database("uws").unwrap();
        behaves_as_a_job_store(|| {
            let url = url.clone();
            async move { Box::new(PgStore::open(&url, 4).await.unwrap()) as Box<dyn JobStore> }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn servers_starting_at_once_migrate_once_and_newer_schemas_are_refused() {
        let cluster = Cluster::start().unwrap();
        let url = cluster.database("uws").unwrap();
        let opens = (0..4).map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::open(&url, 1).await.map(|_| ()) })
        });
        for r in futures::future::join_all(opens).await {
            r.unwrap().unwrap();
        }
        let s = PgStore::open(&url, 2).await.unwrap();
        let c = s.db.conn().await.unwrap();
        c.execute(
            "UPDATE vostok_schema SET version = 99 WHERE component = 'uws'",
            &[],
        )
        .await
        .unwrap();
        let e = PgStore::open(&url, 1).await.err().unwrap();
        assert!(e.0.contains("schema version 99"), "{e}");
        c.execute(
            "UPDATE vostok_schema SET version = $1 WHERE component = 'uws'",
            &[&VERSION],
        )
        .await
        .unwrap();
        // Any number of servers on one database.
        let _second = PgStore::open(&url, 1).await.unwrap();
        let _third = PgStore::open(&url, 1).await.unwrap();
        // A wrong password or an unknown database names the URL without its password.
        let bad = url
            .replace("postgres@", "postgres:secret@")
            .replace("/uws", "/nosuch");
        let e = PgStore::open(&bad, 1).await.err().unwrap();
        assert!(e.0.contains("nosuch") && !e.0.contains("secret"), "{e}");
    }

    /// A version 1 database (one server, no claims) is upgraded in place: its jobs are kept,
    /// and one left EXECUTING by the old server is claimed and runs again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_1_database_is_upgraded_in_place() {
        let cluster = Cluster::start().unwrap();
        let url = cluster.database("uws").unwrap();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "CREATE TABLE vostok_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
                 INSERT INTO vostok_schema VALUES ('uws', 1);
                 {SCHEMA_V1}
                 INSERT INTO uws_jobs ({COLUMNS}) VALUES ('old', 'tap', NULL, NULL, 'EXECUTING',
                   1000, 2000, NULL, 60, 9999999999999, '[]', '[]', NULL, NULL, NULL, '[]');"
            ))
            .await
            .unwrap();
        let s = PgStore::open(&url, 2).await.unwrap();
        let v: i32 = client
            .query_one(
                "SELECT version FROM vostok_schema WHERE component = 'uws'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(v, VERSION);
        let c = s
            .claim("tap", "new", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, "old");
        assert!(c.taken_over);
        assert_eq!(c.job.phase, Phase::Queued);
        assert_eq!(c.job.start_time, None);
        // Its changes are announced to the listening servers.
        let mut heard = s.changes().unwrap();
        // The listening connection opens in the background: change the job until it is heard.
        for tries in 0.. {
            assert!(tries < 100, "no notification heard");
            let toggle = |j: &mut Job| {
                j.phase = if j.phase == Phase::Held {
                    Phase::Pending
                } else {
                    Phase::Held
                }
            };
            s.update("old", &[], Box::new(toggle))
                .await
                .unwrap()
                .unwrap();
            let got = tokio::time::timeout(Duration::from_millis(200), heard.recv()).await;
            if got.is_ok() {
                break;
            }
        }
        s.update("old", &[], Box::new(|j| j.phase = Phase::Aborted))
            .await
            .unwrap()
            .unwrap();
        let want = Change {
            id: "old".into(),
            phase: Some(Phase::Aborted),
        };
        loop {
            let change = tokio::time::timeout(Duration::from_secs(10), heard.recv())
                .await
                .unwrap()
                .unwrap();
            if change == want {
                break;
            }
        }
        assert!(s.delete("old").await.unwrap());
        let change = tokio::time::timeout(Duration::from_secs(10), heard.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(change.phase, None);
    }
}
