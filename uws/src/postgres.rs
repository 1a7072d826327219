//! The job store in PostgreSQL: what a data centre keeps its metadata in, reachable from
//! several machines. The same trait and the same behaviour as [`crate::sqlite`]; every
//! statement takes its values as parameters, none is built from user text.
//!
//! The schema is versioned in `vostok_schema` (one row per component, here `uws`); the
//! migrations run in one transaction under an advisory lock, so that two servers starting at
//! once on a new database do not both create it.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row};

use crate::model::{Job, JobFilter, Phase};
use crate::store::{Apply, JobStore, StoreError};

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

/// The schema version this code reads and writes.
const VERSION: i32 = 1;

const COLUMNS: &str = "id, kind, run_id, owner, phase, creation_time, start_time, end_time, \
execution_duration, destruction, parameters, uploads, job_info, origin, error, results";

/// The advisory lock a server holds for as long as it uses a job database.
const SERVER_LOCK: i64 = 0x0076_6f73_746f_6b01;

/// Jobs in a PostgreSQL database.
///
/// Every statement runs on a runtime of the store's own: a connection's I/O is driven by a
/// task on the runtime that opened it, and a server calls the store from several (HTTP
/// workers, query lanes, the job runtime), any of which may be busy or go away.
pub struct PgStore {
    db: Arc<Db>,
    rt: tokio::runtime::Handle,
    /// The connection holding [`SERVER_LOCK`], once taken.
    holder: Arc<tokio::sync::Mutex<Option<deadpool_postgres::ClientWrapper>>>,
}

/// The connection pool, used from the store's runtime only.
struct Db {
    pool: Pool,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(an unparsable URL)".to_string(),
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`),
    /// with at most `connections` connections, and brings its schema up to date.
    pub async fn open(url: &str, connections: usize) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError(format!("{}: {e}", redact(url))))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vostok-pg")
            .enable_all()
            .build()
            .map_err(db_err)?;
        let handle = rt.handle().clone();
        // The runtime lives as long as the process (as the job runtime does): dropping it
        // would shut it down from whichever thread dropped the store last.
        std::mem::forget(rt);
        let manager = Manager::from_config(
            config,
            NoTls,
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
            .map_err(db_err)?;
        let store = PgStore {
            db: Arc::new(Db { pool }),
            rt: handle,
            holder: Arc::new(tokio::sync::Mutex::new(None)),
        };
        let shown = redact(url);
        store
            .on_rt(move |db| async move {
                let mut c = db
                    .conn()
                    .await
                    .map_err(|e| StoreError(format!("cannot connect to {shown}: {}", e.0)))?;
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

    /// Makes this server the only one using the database until it exits: a second one is
    /// refused (the jobs a server finds EXECUTING when it starts are taken to be its own
    /// interrupted ones).
    pub async fn lock_exclusive(&self) -> Result<(), StoreError> {
        let holder = self.holder.clone();
        self.on_rt(move |db| async move {
            let mut holder = holder.lock().await;
            if holder.is_some() {
                return Ok(());
            }
            let c = Object::take(db.conn().await?);
            let got: bool = c
                .query_one("SELECT pg_try_advisory_lock($1)", &[&SERVER_LOCK])
                .await
                .map_err(db_err)?
                .get(0);
            if !got {
                return Err(StoreError(
                    "another vostok server is using this job database (one server per database)"
                        .into(),
                ));
            }
            *holder = Some(c);
            Ok(())
        })
        .await
    }
}

impl Db {
    async fn conn(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(db_err)
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
    let steps: [(i32, &str); 1] = [(1, SCHEMA_V1)];
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
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        let row = tx
            .query_opt(
                &format!("SELECT {COLUMNS} FROM uws_jobs WHERE id = $1 FOR UPDATE"),
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
        apply(&mut job);
        tx.execute(
            "UPDATE uws_jobs SET run_id = $2, phase = $3, start_time = $4, end_time = $5, \
             execution_duration = $6, destruction = $7, parameters = $8, uploads = $9, \
             job_info = $10, error = $11, results = $12 WHERE id = $1",
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
            ],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(job))
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
        // One server per database.
        s.lock_exclusive().await.unwrap();
        c.execute(
            "UPDATE vostok_schema SET version = 1 WHERE component = 'uws'",
            &[],
        )
        .await
        .unwrap();
        let second = PgStore::open(&url, 1).await.unwrap();
        let e = second.lock_exclusive().await.unwrap_err();
        assert!(e.0.contains("another vostok server"), "{e}");
        // The lock goes with the first server's connection (its backend ends soon after).
        drop(c);
        drop(s);
        let mut tries = 0;
        while let Err(e) = second.lock_exclusive().await {
            tries += 1;
            assert!(tries < 100, "{e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A wrong password or an unknown database names the URL without its password.
        let bad = url
            .replace("postgres@", "postgres:secret@")
            .replace("/uws", "/nosuch");
        let e = PgStore::open(&bad, 1).await.err().unwrap();
        assert!(e.0.contains("nosuch") && !e.0.contains("secret"), "{e}");
    }
}
