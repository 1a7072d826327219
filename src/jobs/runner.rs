//! Runs asynchronous jobs: a FIFO queue drained by at most `max_running` jobs at once, each
//! limited to its execution duration and abortable; results are streamed to object storage
//! with a multipart upload (memory stays flat whatever the size) and become visible only once
//! complete: the object first, then the database row that points at it.
//!
//! Restart recovery ([`Jobs::recover`]): every job is in the database, so all are still known
//! after a restart or a crash. COMPLETED, ERROR and ABORTED jobs keep their results until
//! their destruction time. QUEUED jobs are queued again in creation order. A job that was
//! EXECUTING when the server stopped is re-queued and runs again from the start: TAP queries
//! only read, so running one twice gives the same answer; what it had written is discarded
//! first (a multipart upload that was never completed is not visible anyway).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use catalogs::Storage;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::{ObjectStoreExt, WriteMultipart};
use tokio::sync::{oneshot, watch, Notify, Semaphore};

use super::sqlite::SqliteStore;
use super::{
    new_job_id, now_ms, Job, JobFilter, JobResult, JobStore, JobUpload, Phase, StoreError,
    UwsConfig,
};
use crate::config::Config;
use crate::params::Params;
use crate::query::StreamEnd;
use crate::server::AppState;
use crate::upload::UploadFile;

/// Upload parts (of the object store's multipart size, 5 MiB) buffered at most per job.
const PARTS_IN_FLIGHT: usize = 4;

/// What can go wrong with a job request.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No such job.
    #[error("no job '{0}' in this service")]
    NotFound(String),
    /// The request does not fit the job's phase.
    #[error("{0}")]
    Conflict(String),
    /// The database or the object store failed.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::Internal(e.to_string())
    }
}

/// Why a running job stopped before its end.
enum Stop {
    Aborted,
    Timeout,
}

/// How one execution ended.
enum Outcome {
    Done(JobResult),
    Failed(String),
    Stopped(Stop),
}

/// The job service: store, queue, pool, running jobs.
pub struct Jobs {
    store: Arc<dyn JobStore>,
    storage: Storage,
    cfg: UwsConfig,
    queue: Mutex<VecDeque<String>>,
    queued: Notify,
    pool: Arc<Semaphore>,
    /// Jobs executing now, with the means to stop them.
    running: Mutex<HashMap<String, oneshot::Sender<()>>>,
    /// Ticks on every phase change (what blocking WAITs wait on).
    changes: watch::Sender<u64>,
}

/// Where the job database goes when `[uws] database` is not set.
fn default_database(config: &Config) -> PathBuf {
    config.local_database("uws.sqlite", "vostok-uws.sqlite")
}

/// File name extension of a stored result, from its MIME type.
fn extension(content_type: &str) -> &'static str {
    let t = content_type.to_ascii_lowercase();
    if t.contains("votable") || t.starts_with("text/xml") {
        "vot"
    } else if t.starts_with("text/csv") {
        "csv"
    } else if t.starts_with("text/tab-separated-values") {
        "tsv"
    } else if t.contains("fits") {
        "fits"
    } else if t.contains("parquet") {
        "parquet"
    } else if t.contains("json") {
        "json"
    } else {
        "dat"
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Jobs {
    /// Opens the job database and the storage results go to.
    pub fn open(config: &Config) -> anyhow::Result<Arc<Jobs>> {
        let storage = Storage::open(&config.data, &config.storage_options)?;
        let path = config
            .uws
            .database
            .clone()
            .unwrap_or_else(|| default_database(config));
        let store = SqliteStore::open(&path)?;
        tracing::info!("UWS job database: {}", path.display());
        Ok(Self::with_store(
            Arc::new(store),
            storage,
            config.uws.clone(),
        ))
    }

    /// A job service over any store.
    pub fn with_store(store: Arc<dyn JobStore>, storage: Storage, cfg: UwsConfig) -> Arc<Jobs> {
        let (changes, _) = watch::channel(0);
        Arc::new(Jobs {
            store,
            storage,
            pool: Arc::new(Semaphore::new(cfg.max_running.max(1))),
            cfg,
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            running: Mutex::new(HashMap::new()),
            changes,
        })
    }

    /// The `[uws]` configuration.
    pub fn config(&self) -> &UwsConfig {
        &self.cfg
    }

    /// Recovers the jobs of an earlier run, then runs the queue and the periodic cleanup.
    ///
    /// Jobs are driven from a runtime of their own: the queries themselves execute on the
    /// query runtime, whose threads a CPU-bound query can keep busy for seconds between two
    /// yields; the timers, aborts and database updates of the jobs must not wait for them.
    pub fn start(self: &Arc<Self>, state: Arc<AppState>) -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vostok-jobs")
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        // The runtime lives as long as the process (the jobs run until it exits); dropping it
        // would mean shutting it down from whatever thread dropped the last reference.
        std::mem::forget(rt);
        let me = self.clone();
        handle.spawn(async move {
            if let Err(e) = me.recover().await {
                tracing::error!("recovering asynchronous jobs: {e}");
            }
            let cleaner = me.clone();
            tokio::spawn(async move { cleaner.cleanup_loop().await });
            me.dispatch(state).await;
        });
        Ok(())
    }

    /// A fresh identifier for a job about to be created (its uploads are stored under it
    /// before the job itself).
    pub fn new_id(&self) -> String {
        new_job_id()
    }

    /// Creates a job in PENDING (then QUEUED when `run`). `parameters` are the TAP
    /// parameters; `uploads` the files already stored for it.
    pub async fn create(
        &self,
        id: String,
        owner: Option<String>,
        parameters: Vec<(String, String)>,
        uploads: Vec<JobUpload>,
        run: bool,
    ) -> Result<Job, JobError> {
        let now = now_ms();
        let mut job = Job {
            id,
            run_id: None,
            owner,
            phase: Phase::Pending,
            creation_time: now,
            start_time: None,
            end_time: None,
            execution_duration: self
                .cfg
                .execution_duration
                .min(self.cfg.max_execution_duration),
            destruction: now.saturating_add(secs_to_ms(self.cfg.destruction)),
            parameters,
            uploads,
            error: None,
            result: None,
        };
        job.run_id = job.parameter("RUNID").map(str::to_string);
        if !self.store.create(&job).await? {
            return Err(JobError::Internal(format!(
                "job identifier {} already taken",
                job.id
            )));
        }
        if run {
            return self.run(&job.id).await;
        }
        Ok(job)
    }

    /// A job.
    pub async fn get(&self, id: &str) -> Result<Job, JobError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))
    }

    /// The jobs a filter selects, most recently created first.
    pub async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>, JobError> {
        Ok(self.store.list(filter).await?)
    }

    /// PHASE=RUN: a PENDING (or HELD) job is queued; in any other phase nothing changes.
    pub async fn run(&self, id: &str) -> Result<Job, JobError> {
        let queued = self
            .store
            .update(
                id,
                &[Phase::Pending, Phase::Held],
                Box::new(|j| j.phase = Phase::Queued),
            )
            .await?;
        match queued {
            Some(job) => {
                self.enqueue(&job.id);
                self.changed();
                Ok(job)
            }
            None => self.get(id).await,
        }
    }

    /// PHASE=ABORT: a job not yet finished becomes ABORTED (and stops if executing); a
    /// finished one does not change.
    pub async fn abort(&self, id: &str) -> Result<Job, JobError> {
        let aborted = self
            .store
            .update(
                id,
                &[
                    Phase::Pending,
                    Phase::Queued,
                    Phase::Executing,
                    Phase::Held,
                    Phase::Suspended,
                    Phase::Unknown,
                ],
                Box::new(|j| {
                    j.phase = Phase::Aborted;
                    j.end_time = Some(now_ms());
                }),
            )
            .await?;
        match aborted {
            Some(job) => {
                self.stop_running(id);
                self.changed();
                Ok(job)
            }
            None => self.get(id).await,
        }
    }

    /// Destroys a job: stops it, forgets it, deletes its files.
    pub async fn delete(&self, id: &str) -> Result<(), JobError> {
        self.stop_running(id);
        if !self.store.delete(id).await? {
            return Err(JobError::NotFound(id.to_string()));
        }
        self.changed();
        if let Err(e) = self.storage.delete_prefix(&format!("jobs/{id}")).await {
            tracing::warn!("job {id}: deleting its files: {e}");
        }
        Ok(())
    }

    /// Changes parameters of a PENDING job (POST to /parameters).
    pub async fn set_parameters(
        &self,
        id: &str,
        parameters: Vec<(String, String)>,
        uploads: Vec<JobUpload>,
    ) -> Result<Job, JobError> {
        let updated = self
            .store
            .update(
                id,
                &[Phase::Pending],
                Box::new(move |j| {
                    for (k, v) in &parameters {
                        j.set_parameter(k, v);
                        if k.eq_ignore_ascii_case("RUNID") {
                            j.run_id = Some(v.clone());
                        }
                    }
                    for u in uploads {
                        j.uploads.retain(|old| old.part != u.part);
                        j.uploads.push(u);
                    }
                }),
            )
            .await?;
        match updated {
            Some(job) => Ok(job),
            None => Err(self.not_pending(id, "its parameters").await),
        }
    }

    /// Sets the execution duration of a PENDING job; 0 (no limit) and values above the
    /// maximum become the maximum.
    pub async fn set_execution_duration(&self, id: &str, secs: u64) -> Result<Job, JobError> {
        let max = self.cfg.max_execution_duration;
        let secs = if secs == 0 { max } else { secs.min(max) };
        let updated = self
            .store
            .update(
                id,
                &[Phase::Pending],
                Box::new(move |j| j.execution_duration = secs),
            )
            .await?;
        match updated {
            Some(job) => Ok(job),
            None => Err(self.not_pending(id, "its execution duration").await),
        }
    }

    /// Sets when a job is destroyed, no later than `max_destruction` after its creation.
    pub async fn set_destruction(&self, id: &str, at: i64) -> Result<Job, JobError> {
        let max = secs_to_ms(self.cfg.max_destruction);
        self.store
            .update(
                id,
                &[],
                Box::new(move |j| j.destruction = at.min(j.creation_time.saturating_add(max))),
            )
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))
    }

    /// Stores the file parts of a request under `jobs/<id>/uploads/`, for a job that is new
    /// or PENDING; the job's UPLOAD parameters refer to them by part name.
    pub async fn store_uploads(
        &self,
        id: &str,
        files: Vec<UploadFile>,
    ) -> Result<Vec<JobUpload>, JobError> {
        let mut stored: Vec<JobUpload> = Vec::with_capacity(files.len());
        for f in files {
            // Object names from the part name, kept to safe characters (and made unique).
            let mut name: String = f
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(64)
                .collect();
            if name.is_empty() || stored.iter().any(|u| u.path.ends_with(&format!("/{name}"))) {
                name = format!("{name}-{}", stored.len());
            }
            let path = format!("jobs/{id}/uploads/{name}");
            self.storage
                .store
                .put(&self.storage.path(&path), f.bytes.into())
                .await
                .map_err(|e| JobError::Internal(format!("storing upload {}: {e}", f.name)))?;
            stored.push(JobUpload {
                part: f.name,
                path,
                content_type: f.content_type,
            });
        }
        Ok(stored)
    }

    /// The uploaded files of a job, read back from storage.
    async fn load_uploads(&self, job: &Job) -> Result<Vec<UploadFile>, String> {
        let mut files = Vec::with_capacity(job.uploads.len());
        for u in &job.uploads {
            let bytes = self
                .storage
                .get(&self.storage.path(&u.path))
                .await
                .map_err(|e| format!("reading the uploaded table '{}': {e}", u.part))?;
            files.push(UploadFile {
                name: u.part.clone(),
                filename: None,
                content_type: u.content_type.clone(),
                bytes,
            });
        }
        Ok(files)
    }

    async fn not_pending(&self, id: &str, what: &str) -> JobError {
        match self.store.get(id).await {
            Ok(Some(j)) => JobError::Conflict(format!(
                "job {id} is {}: {what} can only be changed while it is PENDING",
                j.phase.as_str()
            )),
            Ok(None) => JobError::NotFound(id.to_string()),
            Err(e) => e.into(),
        }
    }

    /// A blocking read of a job (UWS 1.1 §2.2.1.1, `WAIT`): returns when its phase changes,
    /// after `secs` seconds (capped at `max_wait`), or at once when the job is not in an
    /// active phase or not in `phase`, the phase the client last saw.
    pub async fn wait(&self, id: &str, phase: Option<Phase>, secs: u64) -> Result<Job, JobError> {
        let mut changes = self.changes.subscribe();
        let job = self.get(id).await?;
        let seen = phase.unwrap_or(job.phase);
        if !job.phase.is_active() || job.phase != seen || secs == 0 {
            return Ok(job);
        }
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(secs.min(self.cfg.max_wait));
        loop {
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {
                    let job = self.get(id).await?;
                    if job.phase != seen {
                        return Ok(job);
                    }
                }
                // Timed out (or the service is going away): the job as it is now.
                _ => return self.get(id).await,
            }
        }
    }

    /// The stored result of a COMPLETED job, as a stream of bytes.
    pub async fn open_result(
        &self,
        result: &JobResult,
    ) -> Result<BoxStream<'static, Result<Bytes, object_store::Error>>, JobError> {
        let got = self
            .storage
            .store
            .get(&self.storage.path(&result.path))
            .await
            .map_err(|e| JobError::Internal(format!("reading the result: {e}")))?;
        Ok(got.into_stream())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn enqueue(&self, id: &str) {
        lock(&self.queue).push_back(id.to_string());
        self.queued.notify_one();
    }

    fn stop_running(&self, id: &str) {
        if let Some(tx) = lock(&self.running).remove(id) {
            let _ = tx.send(());
        }
    }

    async fn next_queued(&self) -> String {
        loop {
            if let Some(id) = lock(&self.queue).pop_front() {
                return id;
            }
            self.queued.notified().await;
        }
    }

    /// Starts queued jobs as places in the pool free up.
    async fn dispatch(self: Arc<Self>, state: Arc<AppState>) {
        loop {
            let Ok(permit) = self.pool.clone().acquire_owned().await else {
                return;
            };
            let id = self.next_queued().await;
            let me = self.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let _permit = permit;
                // Its own task: a panic in a job ends that job (ERROR), never the service.
                let inner = {
                    let me = me.clone();
                    let id = id.clone();
                    tokio::spawn(async move { me.execute(&state, &id).await })
                };
                if let Err(e) = inner.await {
                    tracing::error!("job {id}: its task failed: {e}");
                    lock(&me.running).remove(&id);
                    me.fail(&id, "the job failed inside the server (see its log)".into())
                        .await;
                }
            });
        }
    }

    /// Executes one job taken from the queue.
    async fn execute(&self, state: &Arc<AppState>, id: &str) {
        // Registered before the job turns EXECUTING, so that an abort in between is not lost.
        let (abort_tx, abort_rx) = oneshot::channel::<()>();
        lock(&self.running).insert(id.to_string(), abort_tx);
        let started = self
            .store
            .update(
                id,
                &[Phase::Queued],
                Box::new(|j| {
                    j.phase = Phase::Executing;
                    j.start_time = Some(now_ms());
                    j.end_time = None;
                    j.error = None;
                    j.result = None;
                }),
            )
            .await;
        let job = match started {
            Ok(Some(job)) => job,
            Ok(None) => {
                // Aborted or deleted while it waited.
                lock(&self.running).remove(id);
                return;
            }
            Err(e) => {
                tracing::error!("job {id}: cannot start it: {e}");
                lock(&self.running).remove(id);
                return;
            }
        };
        self.changed();
        tracing::info!("job {id}: executing");
        // What an earlier run (before a restart) may have left.
        self.clear_results(id).await;

        let secs = job.execution_duration;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let stop = async move {
            tokio::select! {
                _ = abort_rx => Stop::Aborted,
                _ = tokio::time::sleep_until(deadline) => Stop::Timeout,
            }
        };
        let outcome = self.produce(state, &job, stop).await;
        lock(&self.running).remove(id);
        match outcome {
            Outcome::Done(result) => {
                let path = result.path.clone();
                let size = result.size;
                let done = self
                    .store
                    .update(
                        id,
                        &[Phase::Executing],
                        Box::new(move |j| {
                            j.phase = Phase::Completed;
                            j.end_time = Some(now_ms());
                            j.result = Some(result);
                        }),
                    )
                    .await;
                match done {
                    Ok(Some(_)) => tracing::info!("job {id}: completed, {size} bytes"),
                    Ok(None) => {
                        // Aborted or deleted as it finished: the result is nobody's.
                        self.delete_object(&path).await;
                    }
                    Err(e) => {
                        tracing::error!("job {id}: recording its result: {e}");
                        self.delete_object(&path).await;
                        self.fail(id, format!("recording the result failed: {e}"))
                            .await;
                    }
                }
            }
            Outcome::Failed(message) => self.fail(id, message).await,
            Outcome::Stopped(Stop::Timeout) => {
                self.fail(
                    id,
                    format!(
                        "the job ran longer than its execution duration of {secs} s and was \
                         stopped"
                    ),
                )
                .await
            }
            Outcome::Stopped(Stop::Aborted) => {
                // Whoever aborted or deleted it has set its phase already.
                self.clear_results(id).await;
                tracing::info!("job {id}: stopped");
            }
        }
        self.changed();
    }

    /// An EXECUTING job goes to ERROR with `message`.
    async fn fail(&self, id: &str, message: String) {
        tracing::info!("job {id}: error: {message}");
        let failed = self
            .store
            .update(
                id,
                &[Phase::Executing, Phase::Queued],
                Box::new(move |j| {
                    j.phase = Phase::Error;
                    j.end_time = Some(now_ms());
                    j.error = Some(message);
                    j.result = None;
                }),
            )
            .await;
        if let Err(e) = failed {
            tracing::error!("job {id}: recording its error: {e}");
        }
        self.clear_results(id).await;
        self.changed();
    }

    /// Writes a finished result (stored at `rel`) into the owner's VOSpace at `dest`
    /// (`DEST=vos://…`, checked again here with the owner's rights), streaming.
    async fn copy_to_vospace(
        &self,
        state: &Arc<AppState>,
        job: &Job,
        dest: &str,
        rel: &str,
        content_type: &str,
        size: u64,
    ) -> Result<(), String> {
        let store = state.vospace.as_ref().ok_or("this server has no VOSpace")?;
        let owner = job.owner.as_deref().ok_or("the job has no owner")?;
        let user = store
            .user(owner)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no user {owner}"))?;
        let path = crate::vospace::http::writable_target(
            store,
            &state.config.service.authority,
            Some(&user),
            dest,
        )
        .await
        .map_err(|e| e.to_string())?;
        let got = self
            .storage
            .store
            .get(&self.storage.path(rel))
            .await
            .map_err(|e| e.to_string())?;
        store
            .write_data(
                &path,
                owner,
                got.into_stream(),
                Some(size),
                None,
                Some(content_type),
                user.quota_bytes,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Plans the query, streams its result into object storage; `stop` ends it early.
    async fn produce(
        &self,
        state: &Arc<AppState>,
        job: &Job,
        stop: impl Future<Output = Stop>,
    ) -> Outcome {
        tokio::pin!(stop);
        let params = Params::from_pairs(job.parameters.clone());
        let prepared = async {
            let files = self
                .load_uploads(job)
                .await
                .map_err(crate::query::DalError::internal)?;
            // The owner's identity reads their vos:// uploads.
            let user = match (&job.owner, &state.vospace) {
                (Some(o), Some(store)) => store
                    .user(o)
                    .await
                    .map_err(|e| crate::query::DalError::internal(e.to_string()))?,
                _ => None,
            };
            let req = crate::tap::prepare_query_with_uploads(state, &params, &files, user.as_ref())
                .await?;
            crate::query::result_stream(state, req, None).await
        };
        let started = tokio::select! {
            r = prepared => r,
            s = &mut stop => return Outcome::Stopped(s),
        };
        let mut result = match started {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e.message),
        };
        let rel = format!("jobs/{}/result.{}", job.id, extension(result.content_type));
        let location = self.storage.path(&rel);
        let upload = tokio::select! {
            u = self.storage.store.put_multipart(&location) => u,
            s = &mut stop => return Outcome::Stopped(s),
        };
        let mut writer = match upload {
            Ok(u) => WriteMultipart::new(u),
            Err(e) => return Outcome::Failed(format!("cannot store the result: {e}")),
        };
        let mut size = 0u64;
        loop {
            let next = tokio::select! {
                c = result.chunks.next() => Ok(c),
                s = &mut stop => Err(s),
            };
            let chunk = match next {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(s) => {
                    let _ = writer.abort().await;
                    return Outcome::Stopped(s);
                }
            };
            size += chunk.len() as u64;
            let room = tokio::select! {
                r = writer.wait_for_capacity(PARTS_IN_FLIGHT) => Ok(r),
                s = &mut stop => Err(s),
            };
            match room {
                Ok(Ok(())) => writer.put(chunk),
                Ok(Err(e)) => {
                    let _ = writer.abort().await;
                    return Outcome::Failed(format!("cannot store the result: {e}"));
                }
                Err(s) => {
                    let _ = writer.abort().await;
                    return Outcome::Stopped(s);
                }
            }
        }
        let end = lock(&result.end).clone();
        let content_type = result.content_type;
        drop(result);
        if let Some(StreamEnd::Error(message)) = end {
            let _ = writer.abort().await;
            return Outcome::Failed(adql::humanise(&message));
        }
        let finished = tokio::select! {
            r = writer.finish() => Ok(r),
            s = &mut stop => Err(s),
        };
        match finished {
            Ok(Ok(_)) => {
                if let Some(dest) = job.parameter("DEST") {
                    if let Err(e) = self
                        .copy_to_vospace(state, job, dest, &rel, content_type, size)
                        .await
                    {
                        return Outcome::Failed(format!(
                            "the result could not be written to {dest}: {e}"
                        ));
                    }
                }
                Outcome::Done(JobResult {
                    path: rel,
                    content_type: content_type.to_string(),
                    size,
                })
            }
            Ok(Err(e)) => Outcome::Failed(format!("cannot store the result: {e}")),
            Err(s) => {
                self.delete_object(&rel).await;
                Outcome::Stopped(s)
            }
        }
    }

    /// Deletes what a job wrote, keeping its uploaded tables.
    async fn clear_results(&self, id: &str) {
        let base = self.storage.path(&format!("jobs/{id}"));
        let uploads = self.storage.path(&format!("jobs/{id}/uploads"));
        let listed: Vec<_> = self
            .storage
            .store
            .list(Some(&base))
            .filter_map(|m| async move { m.ok().map(|m| m.location) })
            .collect()
            .await;
        for p in listed {
            if !p.prefix_matches(&uploads) {
                if let Err(e) = self.storage.store.delete(&p).await {
                    tracing::warn!("job {id}: deleting {p}: {e}");
                }
            }
        }
    }

    async fn delete_object(&self, rel: &str) {
        match self.storage.store.delete(&self.storage.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("deleting {rel}: {e}"),
        }
    }

    /// After a (re)start: EXECUTING jobs are queued again, QUEUED jobs queued in creation
    /// order, and job folders no job owns any more are deleted.
    pub async fn recover(&self) -> Result<(), JobError> {
        let executing = self
            .store
            .list(&JobFilter {
                phases: vec![Phase::Executing],
                ..Default::default()
            })
            .await?;
        for job in &executing {
            self.store
                .update(
                    &job.id,
                    &[Phase::Executing],
                    Box::new(|j| {
                        j.phase = Phase::Queued;
                        j.start_time = None;
                    }),
                )
                .await?;
        }
        if !executing.is_empty() {
            tracing::info!(
                "{} job(s) were executing when the server stopped: they run again",
                executing.len()
            );
        }
        let mut queued = self
            .store
            .list(&JobFilter {
                phases: vec![Phase::Queued],
                ..Default::default()
            })
            .await?;
        queued.reverse(); // oldest first
        for job in &queued {
            self.enqueue(&job.id);
        }
        tracing::info!("asynchronous jobs: {} queued", queued.len());
        self.remove_orphans().await;
        self.destroy_expired().await;
        Ok(())
    }

    /// Deletes folders under jobs/ whose job is not in the database (a crash between
    /// deleting the row and the files).
    async fn remove_orphans(&self) {
        let base = self.storage.path("jobs");
        let Ok(listing) = self.storage.store.list_with_delimiter(Some(&base)).await else {
            return;
        };
        for p in listing.common_prefixes {
            let Some(id) = p.filename().map(str::to_string) else {
                continue;
            };
            if let Ok(None) = self.store.get(&id).await {
                tracing::info!("deleting files of unknown job {id}");
                if let Err(e) = self.storage.delete_prefix(&format!("jobs/{id}")).await {
                    tracing::warn!("job {id}: deleting its files: {e}");
                }
            }
        }
    }

    /// Destroys the jobs past their destruction time.
    async fn destroy_expired(&self) {
        match self.store.list_expired(now_ms()).await {
            Ok(ids) => {
                for id in ids {
                    tracing::info!("job {id}: destruction time reached");
                    if let Err(e) = self.delete(&id).await {
                        tracing::warn!("job {id}: destroying it: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!("listing expired jobs: {e}"),
        }
    }

    async fn cleanup_loop(self: Arc<Self>) {
        let every = Duration::from_secs(self.cfg.cleanup_interval.max(1));
        loop {
            tokio::time::sleep(every).await;
            self.destroy_expired().await;
        }
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_extensions() {
        assert_eq!(extension("application/x-votable+xml"), "vot");
        assert_eq!(
            extension("application/x-votable+xml;serialization=BINARY2"),
            "vot"
        );
        assert_eq!(extension("text/csv;header=present"), "csv");
        assert_eq!(extension("text/tab-separated-values"), "tsv");
        assert_eq!(extension("application/fits"), "fits");
        assert_eq!(extension("application/vnd.apache.parquet"), "parquet");
    }

    #[test]
    fn database_beside_local_data_only() {
        let at = |data: &str| {
            default_database(&Config {
                data: data.into(),
                ..Config::default()
            })
        };
        assert_eq!(at("/srv/vo"), PathBuf::from("/srv/vo/uws.sqlite"));
        assert_eq!(at("s3://bucket/prefix"), PathBuf::from("vostok-uws.sqlite"));
        assert_eq!(at("file:///srv/vo"), PathBuf::from("/srv/vo/uws.sqlite"));
    }
}
