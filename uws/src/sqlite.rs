//! The job store in an embedded SQLite database (one file, WAL journal): what a single server
//! needs. Every statement takes its values as parameters; none is built from user text.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::model::{now_ms, Job, JobFilter, Phase};
use crate::store::{claimable_phase, lease_ms, Apply, Claimed, JobStore, Renewal, StoreError};

/// Version 1: the first schema (TAP jobs only).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY NOT NULL,
    run_id TEXT,
    owner TEXT,
    phase TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    start_time INTEGER,
    end_time INTEGER,
    execution_duration INTEGER NOT NULL,
    destruction INTEGER NOT NULL,
    parameters TEXT NOT NULL,
    uploads TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    result_path TEXT,
    result_type TEXT,
    result_size INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_creation ON jobs (creation_time);
CREATE INDEX IF NOT EXISTS jobs_destruction ON jobs (destruction);
";

/// Version 2: job kinds (TAP queries and VOSpace transfers share the store), `jobInfo`, the
/// creating request's base URL, and a result list (the single result of version 1 moves in).
const MIGRATE_V2: &str = "
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'tap';
ALTER TABLE jobs ADD COLUMN job_info TEXT;
ALTER TABLE jobs ADD COLUMN origin TEXT;
ALTER TABLE jobs ADD COLUMN results TEXT NOT NULL DEFAULT '[]';
UPDATE jobs SET results = json_array(json_object('id', 'result', 'path', result_path,
    'content_type', coalesce(result_type, 'application/octet-stream'),
    'size', coalesce(result_size, 0)))
  WHERE result_path IS NOT NULL;
UPDATE jobs SET result_path = NULL, result_type = NULL, result_size = NULL;
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (kind, owner, creation_time);
";

/// Version 3: claims. The server running a job (`claimed_by`) and until when its claim holds
/// without renewal (`lease_until`, ms since the epoch).
const MIGRATE_V3: &str = "
ALTER TABLE jobs ADD COLUMN claimed_by TEXT;
ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (kind, creation_time)
  WHERE phase IN ('QUEUED', 'EXECUTING');
";

/// The schema version this code reads and writes (SQLite's `user_version`).
const VERSION: i64 = 3;

const COLUMNS: &str = "id, kind, run_id, owner, phase, creation_time, start_time, end_time, \
execution_duration, destruction, parameters, uploads, job_info, origin, error, results";

/// Jobs in a SQLite file, used by one process at a time (the server holds the file's writer
/// lock): the claims of an earlier process are released when it opens, so that the jobs it
/// was running when it stopped run again at once.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
        // WAL: readers do not wait for the writer; NORMAL sync loses nothing when the process
        // is killed (only, at worst, the last transactions when the machine loses power).
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err)?;
        migrate(&mut conn)?;
        conn.execute(
            "UPDATE jobs SET claimed_by = NULL, lease_until = NULL WHERE claimed_by IS NOT NULL",
            [],
        )
        .map_err(|e| StoreError(format!("releasing the claims of an earlier run: {e}")))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// A store in memory (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory().map_err(db_err)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held poisons it; the connection itself is still fine
            // (SQLite rolled back whatever transaction was open).
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut c).map_err(db_err)
        })
        .await
        .map_err(db_err)?
    }
}

/// Brings the schema to [`VERSION`], one version per transaction; a database written by a
/// newer vostok is refused rather than changed.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if version > VERSION {
        return Err(StoreError(format!(
            "the job database has schema version {version}, newer than this vostok's {VERSION}"
        )));
    }
    let steps: [(i64, &str); 3] = [(1, SCHEMA_V1), (2, MIGRATE_V2), (3, MIGRATE_V3)];
    for (to, sql) in steps {
        if version >= to {
            continue;
        }
        let tx = conn.transaction().map_err(db_err)?;
        tx.execute_batch(sql).map_err(db_err)?;
        tx.pragma_update(None, "user_version", to).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
    }
    Ok(())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn json_col<T: serde::de::DeserializeOwned>(row: &Row, i: usize) -> rusqlite::Result<T> {
    let text: String = row.get(i)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}

fn job_from_row(row: &Row) -> rusqlite::Result<Job> {
    let phase: String = row.get(4)?;
    Ok(Job {
        id: row.get(0)?,
        kind: row.get(1)?,
        run_id: row.get(2)?,
        owner: row.get(3)?,
        phase: Phase::parse(&phase).unwrap_or(Phase::Unknown),
        creation_time: row.get(5)?,
        start_time: row.get(6)?,
        end_time: row.get(7)?,
        execution_duration: u64::try_from(row.get::<_, i64>(8)?).unwrap_or(0),
        destruction: row.get(9)?,
        parameters: json_col(row, 10)?,
        uploads: json_col(row, 11)?,
        job_info: row.get(12)?,
        origin: row.get(13)?,
        error: row.get(14)?,
        results: json_col(row, 15)?,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn select_one(c: &Connection, id: &str) -> rusqlite::Result<Option<Job>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
        params![id],
        job_from_row,
    )
    .optional()
}

/// `update` and `update_held` (`holder` given) in one transaction. A job leaving QUEUED and
/// EXECUTING loses its claim.
fn update_in(
    c: &mut Connection,
    id: &str,
    holder: Option<&str>,
    from: &[Phase],
    apply: Apply,
) -> rusqlite::Result<Option<Job>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(mut job) = select_one(&tx, id)? else {
        return Ok(None);
    };
    if !from.is_empty() && !from.contains(&job.phase) {
        return Ok(None);
    }
    if let Some(holder) = holder {
        let claimed_by: Option<String> = tx.query_row(
            "SELECT claimed_by FROM jobs WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )?;
        if claimed_by.as_deref() != Some(holder) {
            return Ok(None);
        }
    }
    apply(&mut job);
    let keep_claim = claimable_phase(job.phase);
    tx.execute(
        "UPDATE jobs SET run_id = ?2, phase = ?3, start_time = ?4, \
         end_time = ?5, execution_duration = ?6, destruction = ?7, parameters = ?8, \
         uploads = ?9, job_info = ?10, error = ?11, results = ?12, \
         claimed_by = CASE WHEN ?13 THEN claimed_by END, \
         lease_until = CASE WHEN ?13 THEN lease_until END WHERE id = ?1",
        params![
            id,
            job.run_id,
            job.phase.as_str(),
            job.start_time,
            job.end_time,
            to_i64(job.execution_duration),
            job.destruction,
            to_json(&job.parameters)?,
            to_json(&job.uploads)?,
            job.job_info,
            job.error,
            to_json(&job.results)?,
            keep_claim,
        ],
    )?;
    tx.commit()?;
    Ok(Some(job))
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create(&self, job: &Job) -> Result<bool, StoreError> {
        let job = job.clone();
        self.with(move |c| {
            let n = c.execute(
                &format!(
                    "INSERT OR IGNORE INTO jobs ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
                ),
                params![
                    job.id,
                    job.kind,
                    job.run_id,
                    job.owner,
                    job.phase.as_str(),
                    job.creation_time,
                    job.start_time,
                    job.end_time,
                    to_i64(job.execution_duration),
                    job.destruction,
                    to_json(&job.parameters)?,
                    to_json(&job.uploads)?,
                    job.job_info,
                    job.origin,
                    job.error,
                    to_json(&job.results)?,
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let id = id.to_string();
        self.with(move |c| select_one(c, &id)).await
    }

    async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        // Phases as ",QUEUED,EXECUTING,": one parameter, matched with instr().
        let phases = if filter.phases.is_empty() {
            String::new()
        } else {
            let mut s = String::from(",");
            for p in &filter.phases {
                s.push_str(p.as_str());
                s.push(',');
            }
            s
        };
        let after = filter.after;
        let limit = filter.last.map(to_i64).unwrap_or(-1);
        let kind = filter.kind.clone();
        let by_owner = filter.owner.is_some();
        let owner = filter.owner.clone().flatten();
        self.with(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs \
                 WHERE ((?1 = '' AND phase <> 'ARCHIVED') OR instr(?1, ',' || phase || ',') > 0) \
                 AND (?2 IS NULL OR creation_time > ?2) \
                 AND (?4 IS NULL OR kind = ?4) \
                 AND (NOT ?5 OR owner IS ?6) \
                 ORDER BY creation_time DESC, id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![phases, after, limit, kind, by_owner, owner],
                job_from_row,
            )?;
            rows.collect()
        })
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
        self.with(move |c| update_in(c, &id, None, &from, apply))
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
        self.with(move |c| update_in(c, &id, Some(&holder), &from, apply))
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
        let lease = lease_ms(lease);
        self.with(move |c| {
            let now = now_ms();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<(String, String)> = tx
                .query_row(
                    "SELECT id, phase FROM jobs WHERE kind = ?1 \
                     AND phase IN ('QUEUED', 'EXECUTING') \
                     AND (claimed_by IS NULL OR lease_until IS NULL OR lease_until < ?2) \
                     ORDER BY creation_time, id LIMIT 1",
                    params![kind, now],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((id, phase)) = found else {
                return Ok(None);
            };
            let taken_over = phase == Phase::Executing.as_str();
            tx.execute(
                "UPDATE jobs SET claimed_by = ?2, lease_until = ?3, phase = 'QUEUED', \
                 start_time = CASE WHEN phase = 'EXECUTING' THEN NULL ELSE start_time END \
                 WHERE id = ?1",
                params![id, holder, now.saturating_add(lease)],
            )?;
            let job = select_one(&tx, &id)?;
            tx.commit()?;
            Ok(job.map(|job| Claimed { job, taken_over }))
        })
        .await
    }

    async fn renew(&self, id: &str, holder: &str, lease: Duration) -> Result<Renewal, StoreError> {
        let id = id.to_string();
        let holder = holder.to_string();
        let lease = lease_ms(lease);
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT phase, claimed_by FROM jobs WHERE id = ?1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((phase, claimed_by)) = found else {
                return Ok(Renewal::Gone);
            };
            let phase = Phase::parse(&phase).unwrap_or(Phase::Unknown);
            if !claimable_phase(phase) {
                return Ok(Renewal::Ended(phase));
            }
            if claimed_by.as_deref() != Some(holder.as_str()) {
                return Ok(Renewal::Lost);
            }
            tx.execute(
                "UPDATE jobs SET lease_until = ?2 WHERE id = ?1",
                params![id, now_ms().saturating_add(lease)],
            )?;
            tx.commit()?;
            Ok(Renewal::Held)
        })
        .await
    }

    async fn release(&self, id: &str, holder: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        let holder = holder.to_string();
        self.with(move |c| {
            let n = c.execute(
                "UPDATE jobs SET claimed_by = NULL, lease_until = NULL, phase = 'QUEUED', \
                 start_time = CASE WHEN phase = 'EXECUTING' THEN NULL ELSE start_time END \
                 WHERE id = ?1 AND claimed_by = ?2",
                params![id, holder],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.with(move |c| Ok(c.execute("DELETE FROM jobs WHERE id = ?1", params![id])? == 1))
            .await
    }

    async fn list_expired(&self, now: i64) -> Result<Vec<String>, StoreError> {
        self.with(move |c| {
            let mut stmt =
                c.prepare("SELECT id FROM jobs WHERE destruction <= ?1 ORDER BY destruction")?;
            let rows = stmt.query_map(params![now], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::behaves_as_a_job_store;

    #[tokio::test]
    async fn jobs_persist_filter_and_update_atomically() {
        let dir =
            std::env::temp_dir().join(format!("vostok-jobs-test-{}", crate::model::new_job_id()));
        let path = dir.join("uws.sqlite");
        behaves_as_a_job_store(|| {
            let path = path.clone();
            async move { Box::new(SqliteStore::open(&path).unwrap()) as Box<dyn JobStore> }
        })
        .await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A version 2 database is upgraded in place; the claims of an earlier process are
    /// released when the store opens, so that a job it left EXECUTING runs again at once.
    #[tokio::test]
    async fn a_version_2_database_is_upgraded_and_claims_are_released_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uws.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA_V1).unwrap();
            c.execute_batch(MIGRATE_V2).unwrap();
            c.execute_batch(&format!(
                "PRAGMA user_version = 2;
                 INSERT INTO jobs ({COLUMNS}) VALUES ('old', 'tap', NULL, NULL, 'EXECUTING',
                   1000, 2000, NULL, 60, 9999999999999, '[]', '[]', NULL, NULL, NULL, '[]');"
            ))
            .unwrap();
        }
        let lease = Duration::from_secs(30);
        let s = SqliteStore::open(&path).unwrap();
        let c = s.claim("tap", "first", lease).await.unwrap().unwrap();
        assert!(c.taken_over);
        assert_eq!((c.job.id.as_str(), c.job.phase), ("old", Phase::Queued));
        s.update_held(
            "old",
            "first",
            &[],
            Box::new(|j| j.phase = Phase::Executing),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(s.claim("tap", "second", lease).await.unwrap().is_none());
        drop(s);
        // The process holding it is gone (it held the file's writer lock).
        let s = SqliteStore::open(&path).unwrap();
        let c = s.claim("tap", "second", lease).await.unwrap().unwrap();
        assert!(c.taken_over);
        assert_eq!(s.renew("old", "first", lease).await.unwrap(), Renewal::Lost);
    }
}
