//! Runs jobs: the QUEUED jobs of each kind, oldest first, at most that kind's `max_running` at
//! once in this process, each limited to its execution duration and abortable. Results are
//! streamed to object storage with a multipart upload (memory stays flat whatever the size)
//! and become visible only once complete: the object first, then the database row that points
//! at it.
//!
//! The queue is the job database itself: a process takes a job by claiming it there
//! ([`JobStore::claim`]), so that several processes sharing one database (PostgreSQL) run each
//! job once. The claim is a lease the process renews while the job runs; a job is looked for
//! when one is queued here, when the store tells of a change elsewhere ([`JobStore::changes`]),
//! and every `[uws] poll_ms` otherwise.
//!
//! Crashes and restarts: every job is in the database, so all are still known after a restart
//! or a crash. COMPLETED, ERROR and ABORTED jobs keep their results until their destruction
//! time. A job that was EXECUTING in a process that died keeps that process's claim until its
//! lease runs out, then any process claims it again and it runs again from the start: its
//! kind's [`Executor`] must make that safe (TAP queries only read; VOSpace moves check their
//! source again); what it had written is discarded first. An abort or a deletion made by any
//! process stops the job where it runs (the notification of the change, or at the latest the
//! next renewal, tells the process running it).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use object_store::{ObjectStoreExt, WriteMultipart};
use storage::Storage;
use tokio::sync::{oneshot, watch, Notify, Semaphore};

use crate::model::{new_job_id, now_ms, Job, JobFilter, JobResult, JobUpload, Phase, UwsConfig};
use crate::store::{Change, JobStore, Renewal, StoreError};

/// A job folder with no job is left alone until its newest file is this old: files a request
/// uploads are stored before the job is created (by any of the processes sharing the store).
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// Upload parts (of the object store's multipart size, 5 MiB) buffered at most per job.
const PARTS_IN_FLIGHT: usize = 4;

/// What can go wrong with a job request.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No such job (or not one the caller may see: job identifiers are not an oracle).
    #[error("no job '{0}' in this service")]
    NotFound(String),
    /// The request does not fit the job's phase.
    #[error("{0}")]
    Conflict(String),
    /// The owner has as many jobs, or as many stored bytes, as the service allows.
    #[error("{0}")]
    Limit(String),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// PHASE=ABORT or a deletion.
    Aborted,
    /// It ran past its execution duration.
    Timeout,
}

/// How one execution ended.
#[derive(Debug)]
pub enum Outcome {
    /// It finished; these are its results.
    Done(Vec<JobResult>),
    /// It failed: the job's error message.
    Failed(String),
    /// It was stopped.
    Stopped(Stop),
}

impl From<Stop> for Outcome {
    fn from(s: Stop) -> Self {
        Outcome::Stopped(s)
    }
}

/// What a job kind does when one of its jobs runs.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Runs `job` to its end. Long steps go through [`RunContext::unless_stopped`], results
    /// through [`RunContext::store_result`], so that an abort or the time limit stops it.
    async fn run(&self, job: &Job, ctx: &mut RunContext<'_>) -> Outcome;

    /// Work done while the job is still QUEUED, just before it turns EXECUTING: the results
    /// returned are the job's from the moment it is EXECUTING (a VOSpace push or pull shows
    /// its negotiated endpoints then, never an EXECUTING job without them); [`Executor::run`]
    /// finds them in the job it is given. An error ends the job in ERROR without running it.
    /// Meant for short steps: neither the execution duration nor an abort interrupts it.
    async fn prepare(&self, _job: &Job) -> Result<Vec<JobResult>, String> {
        Ok(Vec::new())
    }
}

/// A job kind: its name (the jobs' `kind`), how it runs, and how many run at once.
#[derive(Clone)]
pub struct Kind {
    /// The name jobs of this kind carry.
    pub name: &'static str,
    /// What runs them.
    pub executor: Arc<dyn Executor>,
    /// Jobs of this kind executing at once; the others wait in QUEUED.
    pub max_running: usize,
}

/// A new job: what [`Jobs::create`] needs besides the identifier.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    /// Its kind.
    pub kind: String,
    /// Its owner (`None`: anonymous).
    pub owner: Option<String>,
    /// Its parameters.
    pub parameters: Vec<(String, String)>,
    /// Files already stored for it ([`Jobs::store_uploads`]).
    pub uploads: Vec<JobUpload>,
    /// Its `jobInfo` element.
    pub job_info: Option<String>,
    /// The base URL of the request creating it.
    pub origin: Option<String>,
}

/// A file that came with a job's request, to be stored with the job.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The name it is referred to by (a multipart part's name).
    pub part: String,
    /// Its Content-Type, if any.
    pub content_type: Option<String>,
    /// Its bytes.
    pub bytes: Bytes,
}

/// Whether `id` can name a job: job ids are [`crate::model::new_job_id`]'s hex digits (ASCII
/// letters, digits, `-` and `_` are let through). Anything else is not found without asking the
/// store (PostgreSQL refuses a NUL byte in a text parameter with an error, not an empty
/// answer).
fn could_be_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The job service: store, queues, pools, running jobs.
pub struct Jobs {
    store: Arc<dyn JobStore>,
    storage: Storage,
    cfg: UwsConfig,
    /// Who this process is in the claims it makes (each claim's token starts with it).
    process: String,
    /// Claims made so far (the end of each claim's token).
    claims: AtomicU64,
    /// The server is stopping: no more claims ([`Jobs::hand_over`]).
    stopping: AtomicBool,
    /// Per kind, what wakes its dispatcher: a job of that kind may be waiting.
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Jobs claimed here and not yet ended, with the means to stop them.
    running: Mutex<HashMap<String, Running>>,
    /// The claims (tokens) of runs stopped because the job was claimed again (by another
    /// process, or by this one after its lease ran out): their files are the new run's.
    lost: Mutex<HashSet<String>>,
    /// Ticks on every phase change seen (what blocking WAITs wait on).
    changes: watch::Sender<u64>,
}

/// A job running here: the claim it runs under, and what stops it.
struct Running {
    token: String,
    stop: oneshot::Sender<()>,
}

/// File name extension of a stored result, from its MIME type.
fn extension(content_type: &str) -> &'static str {
    let t = content_type.to_ascii_lowercase();
    if t.contains("votable") {
        "vot"
    } else if t.starts_with("text/xml") || t.starts_with("application/xml") {
        "xml"
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
    /// A job service over `store`, keeping files (uploads, results) in `storage`.
    pub fn new(store: Arc<dyn JobStore>, storage: Storage, cfg: UwsConfig) -> Arc<Jobs> {
        let (changes, _) = watch::channel(0);
        let process = format!("{}/{}", std::process::id(), new_job_id());
        Arc::new(Jobs {
            store,
            storage,
            cfg,
            process,
            claims: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            wakers: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            lost: Mutex::new(HashSet::new()),
            changes,
        })
    }

    /// How long a claim holds without renewal.
    fn lease(&self) -> Duration {
        Duration::from_secs(self.cfg.lease_seconds.max(1))
    }

    /// How often the store is looked at when nothing said it changed.
    fn poll(&self) -> Duration {
        Duration::from_millis(self.cfg.poll_ms.clamp(10, 60_000))
    }

    /// The `[uws]` configuration.
    pub fn config(&self) -> &UwsConfig {
        &self.cfg
    }

    /// Recovers the jobs of an earlier run, then runs the queues of `kinds` and the periodic
    /// cleanup.
    ///
    /// Jobs are driven from a runtime of their own: a query itself may execute elsewhere (on
    /// threads a CPU-bound query can keep busy for seconds between two yields); the timers,
    /// aborts and database updates of the jobs must not wait for them.
    pub fn start(self: &Arc<Self>, kinds: Vec<Kind>) -> std::io::Result<()> {
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
        if let Some(heard) = self.store.changes() {
            let me = self.clone();
            handle.spawn(async move { me.follow(heard).await });
        }
        handle.spawn(async move {
            if let Err(e) = me.recover().await {
                tracing::error!("recovering asynchronous jobs: {e}");
            }
            let cleaner = me.clone();
            tokio::spawn(async move { cleaner.cleanup_loop().await });
            for kind in kinds {
                let me = me.clone();
                tokio::spawn(async move { me.dispatch(kind).await });
            }
        });
        Ok(())
    }

    /// When the server stops: claims no more jobs, and gives up the claims of the jobs
    /// running here and stops them; another server, or this one restarted, runs them again
    /// from the start at once rather than once their leases run out. Their files are left to
    /// that run.
    pub async fn hand_over(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let running: Vec<(String, String)> = lock(&self.running)
            .iter()
            .map(|(id, r)| (id.clone(), r.token.clone()))
            .collect();
        for (id, token) in running {
            lock(&self.lost).insert(token.clone());
            self.stop_claim(&id, &token);
            match self.store.release(&id, &token).await {
                Ok(true) => {
                    tracing::info!("job {id}: handed over as the server stops: it runs again")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    "job {id}: giving up its claim as the server stops: {e}; it runs again once \
                     its lease runs out"
                ),
            }
        }
    }

    /// A fresh identifier for a job about to be created (its uploads are stored under it
    /// before the job itself).
    pub fn new_id(&self) -> String {
        new_job_id()
    }

    /// Whether `owner` (`None`: the anonymous callers together) may create another job: at
    /// most `max_active_per_user` (`max_active_anonymous`) jobs PENDING, QUEUED or EXECUTING,
    /// and at most `max_stored_bytes_per_user` bytes of results kept.
    pub async fn admit(&self, owner: Option<&str>) -> Result<(), JobError> {
        let mine = self
            .store
            .list(&JobFilter {
                owner: Some(owner.map(str::to_string)),
                ..Default::default()
            })
            .await?;
        let active = mine
            .iter()
            .filter(|j| matches!(j.phase, Phase::Pending | Phase::Queued | Phase::Executing))
            .count();
        let (limit, key) = match owner {
            Some(_) => (self.cfg.max_active_per_user, "max_active_per_user"),
            None => (self.cfg.max_active_anonymous, "max_active_anonymous"),
        };
        let who = owner.map_or("the anonymous callers".to_string(), str::to_string);
        if active >= limit {
            return Err(JobError::Limit(format!(
                "{who}: {active} jobs pending, queued or executing, as many as this service \
                 allows ([uws] {key} = {limit}); wait for some to finish, or \
                 delete some"
            )));
        }
        let stored: u64 = mine
            .iter()
            .flat_map(|j| j.results.iter())
            .filter(|r| r.link.is_none())
            .map(|r| r.size)
            .sum();
        let max = self.cfg.max_stored_bytes_per_user;
        if stored >= max {
            return Err(JobError::Limit(format!(
                "the results kept for {who} take {stored} bytes, as many as this service \
                 allows ([uws] max_stored_bytes_per_user = {max}); delete jobs you no longer \
                 need"
            )));
        }
        Ok(())
    }

    /// Creates a job in PENDING (then QUEUED when `run`).
    pub async fn create(&self, id: String, new: NewJob, run: bool) -> Result<Job, JobError> {
        let now = now_ms();
        let mut job = Job {
            id,
            kind: new.kind,
            run_id: None,
            owner: new.owner,
            phase: Phase::Pending,
            creation_time: now,
            start_time: None,
            end_time: None,
            execution_duration: self
                .cfg
                .execution_duration
                .min(self.cfg.max_execution_duration),
            destruction: now.saturating_add(secs_to_ms(self.cfg.destruction)),
            parameters: new.parameters,
            uploads: new.uploads,
            job_info: new.job_info,
            origin: new.origin,
            error: None,
            results: Vec::new(),
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

    /// Records a job that was done at once, in the request that created it (a VOSpace
    /// synchronous transfer, which clients look at as a job): COMPLETED with `results`, or
    /// ERROR with the message.
    pub async fn create_done(
        &self,
        id: String,
        new: NewJob,
        outcome: Result<Vec<JobResult>, String>,
    ) -> Result<Job, JobError> {
        let job = self.create(id, new, false).await?;
        let now = now_ms();
        let done = self
            .store
            .update(
                &job.id,
                &[Phase::Pending],
                Box::new(move |j| {
                    j.start_time = Some(now);
                    j.end_time = Some(now);
                    match outcome {
                        Ok(results) => {
                            j.phase = Phase::Completed;
                            j.results = results;
                        }
                        Err(message) => {
                            j.phase = Phase::Error;
                            j.error = Some(message);
                        }
                    }
                }),
            )
            .await?;
        self.changed();
        done.ok_or(JobError::NotFound(job.id))
    }

    /// A job, whoever owns it (for the service itself, not for requests: see
    /// [`Jobs::get_for`]).
    pub async fn get(&self, id: &str) -> Result<Job, JobError> {
        if !could_be_job_id(id) {
            return Err(JobError::NotFound(id.to_string()));
        }
        self.store
            .get(id)
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))
    }

    /// The job `id` of kind `kind` as `caller` (a user name, `None`: anonymous) may see it:
    /// not found when it does not exist, is of another kind, or belongs to someone else
    /// ([`Job::visible_to`]). Every request about a job goes through here first.
    pub async fn get_for(
        &self,
        id: &str,
        kind: &str,
        caller: Option<&str>,
    ) -> Result<Job, JobError> {
        if !could_be_job_id(id) {
            return Err(JobError::NotFound(id.to_string()));
        }
        match self.store.get(id).await? {
            Some(j) if j.kind == kind && j.visible_to(caller) => Ok(j),
            _ => Err(JobError::NotFound(id.to_string())),
        }
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
                self.wake(&job.kind);
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

    /// Stores files of a request under `jobs/<id>/uploads/`, for a job that is new or
    /// PENDING; the job's parameters refer to them by part name.
    pub async fn store_uploads(
        &self,
        id: &str,
        files: Vec<NewUpload>,
    ) -> Result<Vec<JobUpload>, JobError> {
        let mut stored: Vec<JobUpload> = Vec::with_capacity(files.len());
        for f in files {
            // Object names from the part name, kept to safe characters (and made unique).
            let mut name: String = f
                .part
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
                .map_err(|e| JobError::Internal(format!("storing upload {}: {e}", f.part)))?;
            stored.push(JobUpload {
                part: f.part,
                path,
                content_type: f.content_type,
            });
        }
        Ok(stored)
    }

    /// The bytes of a file stored with a job.
    pub async fn read_upload(&self, upload: &JobUpload) -> Result<Bytes, String> {
        self.storage
            .get(&self.storage.path(&upload.path))
            .await
            .map_err(|e| format!("reading the uploaded file '{}': {e}", upload.part))
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
            // A change seen here, or a look at the store every poll interval (a change made
            // elsewhere whose notification was lost).
            let next = deadline.min(tokio::time::Instant::now() + self.poll());
            let woke = tokio::time::timeout_at(next, changes.changed()).await;
            if matches!(woke, Ok(Err(_))) || tokio::time::Instant::now() >= deadline {
                // Timed out (or the service is going away): the job as it is now.
                return self.get(id).await;
            }
            let job = self.get(id).await?;
            if job.phase != seen {
                return Ok(job);
            }
        }
    }

    /// A stored result, as a stream of bytes.
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

    fn waker(&self, kind: &str) -> Arc<Notify> {
        lock(&self.wakers)
            .entry(kind.to_string())
            .or_default()
            .clone()
    }

    /// A job of `kind` may be waiting: its dispatcher looks now.
    fn wake(&self, kind: &str) {
        self.waker(kind).notify_one();
    }

    /// Follows the changes other processes make: waiters look again, dispatchers look for
    /// queued jobs, and a job running here that was aborted or deleted elsewhere stops.
    async fn follow(self: Arc<Self>, mut heard: tokio::sync::mpsc::UnboundedReceiver<Change>) {
        while let Some(change) = heard.recv().await {
            self.changed();
            match change.phase {
                Some(Phase::Queued) => {
                    let wakers: Vec<Arc<Notify>> = lock(&self.wakers).values().cloned().collect();
                    for w in wakers {
                        w.notify_one();
                    }
                }
                Some(Phase::Executing) => {}
                Some(_) | None => {
                    if lock(&self.running).contains_key(&change.id) {
                        tracing::info!(
                            "job {}: {} by another server: stopping it here",
                            change.id,
                            if change.phase.is_some() {
                                "ended"
                            } else {
                                "deleted"
                            }
                        );
                        self.stop_running(&change.id);
                    }
                }
            }
        }
    }

    fn stop_running(&self, id: &str) {
        if let Some(r) = lock(&self.running).remove(id) {
            let _ = r.stop.send(());
        }
    }

    /// Stops the run of job `id` under the claim `token`, if that is the one running here.
    fn stop_claim(&self, id: &str, token: &str) {
        let stopped = {
            let mut running = lock(&self.running);
            match running.get(id) {
                Some(r) if r.token == token => running.remove(id),
                _ => None,
            }
        };
        if let Some(r) = stopped {
            let _ = r.stop.send(());
        }
    }

    /// Records that job `id` runs here under the claim `token`; what stops it. An earlier run
    /// of the same job here (its lease ran out unrenewed, a database that did not answer, and
    /// this process claimed it again) stops, and leaves its files to the new one.
    fn register(&self, id: &str, token: &str) -> oneshot::Receiver<()> {
        let (stop, stopped) = oneshot::channel();
        let running = Running {
            token: token.to_string(),
            stop,
        };
        let earlier = lock(&self.running).insert(id.to_string(), running);
        if let Some(earlier) = earlier {
            tracing::warn!(
                "job {id}: claimed again here while an earlier run of it had not stopped: \
                 stopping that run"
            );
            lock(&self.lost).insert(earlier.token);
            let _ = earlier.stop.send(());
        }
        stopped
    }

    /// Job `id` no longer runs here under the claim `token`.
    fn unregister(&self, id: &str, token: &str) {
        let mut running = lock(&self.running);
        if running.get(id).is_some_and(|r| r.token == token) {
            running.remove(id);
        }
    }

    /// Starts queued jobs of `kind` as places in its pool free up: claims the oldest one in
    /// the store whenever a place is free and something says one may be waiting (or every
    /// poll interval).
    async fn dispatch(self: Arc<Self>, kind: Kind) {
        let wake = self.waker(kind.name);
        let pool = Arc::new(Semaphore::new(kind.max_running.max(1)));
        let mut failing = false;
        loop {
            let Ok(permit) = pool.clone().acquire_owned().await else {
                return;
            };
            let (claimed, token) = loop {
                if self.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let token = format!(
                    "{}/{}",
                    self.process,
                    self.claims.fetch_add(1, Ordering::Relaxed)
                );
                match self.store.claim(kind.name, &token, self.lease()).await {
                    Ok(found) => {
                        if failing {
                            tracing::info!("{} jobs: the job database answers again", kind.name);
                            failing = false;
                        }
                        if let Some(c) = found {
                            break (c, token);
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::error!(
                                "{} jobs: cannot look for queued jobs: {e}; trying again every \
                                 {} ms",
                                kind.name,
                                self.poll().as_millis()
                            );
                            failing = true;
                        }
                    }
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(self.poll()) => {}
                }
            };
            let job = claimed.job;
            if self.stopping.load(Ordering::SeqCst) {
                // Claimed as the server began to stop: another server runs it.
                if let Err(e) = self.store.release(&job.id, &token).await {
                    tracing::warn!("job {}: giving up its claim: {e}", job.id);
                }
                return;
            }
            if claimed.taken_over {
                tracing::info!(
                    "job {} ({}): the server running it stopped renewing its claim: it runs \
                     again here from the start",
                    job.id,
                    job.kind
                );
            }
            // Registered before anything else, so that an abort from now on is not lost.
            let abort_rx = self.register(&job.id, &token);
            let me = self.clone();
            let executor = kind.executor.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let id = job.id.clone();
                let heartbeat = {
                    let me = me.clone();
                    let id = id.clone();
                    let token = token.clone();
                    tokio::spawn(async move { me.heartbeat(&id, &token).await })
                };
                // Its own task: a panic in a job ends that job (ERROR), never the service.
                let inner = {
                    let me = me.clone();
                    let token = token.clone();
                    tokio::spawn(async move {
                        me.execute(executor.as_ref(), job, &token, abort_rx).await
                    })
                };
                let ended = inner.await;
                heartbeat.abort();
                if let Err(e) = ended {
                    tracing::error!("job {id}: its task failed: {e}");
                    me.unregister(&id, &token);
                    me.fail(
                        &id,
                        &token,
                        "the job failed inside the server (see its log)".into(),
                    )
                    .await;
                }
                lock(&me.lost).remove(&token);
            });
        }
    }

    /// Renews this process's claim on a job it runs, every third of the lease, until it ends;
    /// stops it when the job was aborted or deleted, or when another process took it over.
    /// A failing store is retried (the job goes on meanwhile).
    async fn heartbeat(&self, id: &str, token: &str) {
        let every = (self.lease() / 3).max(Duration::from_millis(100));
        let mut failing = false;
        loop {
            tokio::time::sleep(every).await;
            match self.store.renew(id, token, self.lease()).await {
                Ok(Renewal::Held) => {
                    if failing {
                        tracing::info!("job {id}: its claim is renewed again");
                        failing = false;
                    }
                }
                Ok(Renewal::Gone | Renewal::Ended(_)) => {
                    self.stop_claim(id, token);
                    return;
                }
                Ok(Renewal::Lost) => {
                    tracing::warn!(
                        "job {id}: its claim ran out before it could be renewed and another \
                         server took the job over: stopping it here, leaving its files to that \
                         server"
                    );
                    lock(&self.lost).insert(token.to_string());
                    self.stop_claim(id, token);
                    return;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            "job {id}: renewing its claim: {e}; trying again every {} ms",
                            every.as_millis()
                        );
                        failing = true;
                    }
                }
            }
        }
    }

    /// Executes one job this process claimed (QUEUED) under the claim `token`; `abort_rx`
    /// fires when it is to stop.
    async fn execute(
        &self,
        executor: &dyn Executor,
        queued: Job,
        token: &str,
        abort_rx: oneshot::Receiver<()>,
    ) {
        let id = queued.id.clone();
        let id = id.as_str();
        // What an earlier run (a process that died, or before a restart) may have left.
        self.clear_results(id).await;
        // Results known before it executes are there as soon as it is EXECUTING.
        let early = match executor.prepare(&queued).await {
            Ok(results) => results,
            Err(message) => {
                self.unregister(id, token);
                self.fail(id, token, message).await;
                return;
            }
        };
        let started = self
            .store
            .update_held(
                id,
                token,
                &[Phase::Queued],
                Box::new(move |j| {
                    j.phase = Phase::Executing;
                    j.start_time = Some(now_ms());
                    j.end_time = None;
                    j.error = None;
                    j.results = early;
                }),
            )
            .await;
        let job = match started {
            Ok(Some(job)) => job,
            // Aborted or deleted while it waited (or taken over: it is that process's now).
            Ok(None) => {
                self.unregister(id, token);
                return;
            }
            Err(e) => {
                tracing::error!("job {id}: cannot start it: {e}");
                self.unregister(id, token);
                // Another process (or this one, later) may take it at once.
                if let Err(e) = self.store.release(id, token).await {
                    tracing::warn!("job {id}: giving up its claim: {e}");
                }
                return;
            }
        };
        self.changed();
        tracing::info!("job {id} ({}): executing", job.kind);

        let secs = job.execution_duration;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let stop = async move {
            tokio::select! {
                _ = abort_rx => Stop::Aborted,
                _ = tokio::time::sleep_until(deadline) => Stop::Timeout,
            }
        };
        let mut ctx = RunContext {
            jobs: self,
            job_id: job.id.clone(),
            stop: Box::pin(stop),
            stopped: None,
        };
        let outcome = executor.run(&job, &mut ctx).await;
        drop(ctx);
        self.unregister(id, token);
        match outcome {
            Outcome::Done(results) => self.complete(id, token, results).await,
            Outcome::Failed(message) => self.fail(id, token, message).await,
            Outcome::Stopped(Stop::Timeout) => {
                self.fail(
                    id,
                    token,
                    format!(
                        "the job ran longer than its execution duration of {secs} s and was \
                         stopped"
                    ),
                )
                .await
            }
            Outcome::Stopped(Stop::Aborted) => {
                if lock(&self.lost).contains(token) {
                    tracing::info!("job {id}: stopped here; it runs elsewhere");
                } else {
                    // Whoever aborted or deleted it has set its phase already.
                    self.clear_results(id).await;
                    tracing::info!("job {id}: stopped");
                }
            }
        }
        self.changed();
    }

    /// Whether another run of the job holds its files now: it is QUEUED or EXECUTING under
    /// another claim (or has completed there), so that what this process wrote under the same
    /// names is that run's too.
    async fn files_are_others(&self, id: &str) -> bool {
        match self.store.get(id).await {
            Ok(Some(j)) => matches!(j.phase, Phase::Queued | Phase::Executing | Phase::Completed),
            Ok(None) => false,
            // Unknown: leave them (the job's destruction deletes its folder).
            Err(_) => true,
        }
    }

    /// An EXECUTING job this process holds under the claim `token` goes to COMPLETED with
    /// `results`.
    async fn complete(&self, id: &str, token: &str, results: Vec<JobResult>) {
        let paths: Vec<String> = results
            .iter()
            .filter(|r| r.link.is_none())
            .map(|r| r.path.clone())
            .collect();
        let size: u64 = results.iter().map(|r| r.size).sum();
        let done = self
            .store
            .update_held(
                id,
                token,
                &[Phase::Executing],
                Box::new(move |j| {
                    j.phase = Phase::Completed;
                    j.end_time = Some(now_ms());
                    j.results = results;
                }),
            )
            .await;
        match done {
            Ok(Some(_)) => tracing::info!("job {id}: completed, {size} bytes"),
            Ok(None) => {
                // Aborted or deleted as it finished: the results are nobody's (unless another
                // process took the job over, and wrote them too).
                if !self.files_are_others(id).await {
                    for p in &paths {
                        self.delete_object(p).await;
                    }
                }
            }
            Err(e) => {
                // Still EXECUTING under this process's claim, which is no longer renewed: once
                // the lease runs out, the job runs again (here or elsewhere).
                tracing::error!(
                    "job {id}: recording its results: {e}; it runs again once its claim runs out"
                );
            }
        }
    }

    /// A job this process holds under the claim `token` goes to ERROR with `message`.
    async fn fail(&self, id: &str, token: &str, message: String) {
        tracing::info!("job {id}: error: {message}");
        let failed = self
            .store
            .update_held(
                id,
                token,
                &[Phase::Executing, Phase::Queued],
                Box::new(move |j| {
                    j.phase = Phase::Error;
                    j.end_time = Some(now_ms());
                    j.error = Some(message);
                    j.results = Vec::new();
                }),
            )
            .await;
        match failed {
            Ok(Some(_)) => {}
            Ok(None) => {
                if self.files_are_others(id).await {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(
                    "job {id}: recording its error: {e}; it runs again once its claim runs out"
                );
                return;
            }
        }
        // Waiters learn the new phase now, not after the deletes (a list and a request per
        // object on S3): the job no longer names these results.
        self.changed();
        self.clear_results(id).await;
    }

    /// Deletes what a job wrote, keeping its uploaded files.
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

    /// After a (re)start: says what is waiting, deletes the job folders no job owns any more
    /// and destroys expired jobs. Nothing is queued here: the dispatchers claim QUEUED jobs,
    /// and EXECUTING ones whose claim ran out (a process that died), from the store.
    pub async fn recover(&self) -> Result<(), JobError> {
        let count = |phase: Phase| async move {
            self.store
                .list(&JobFilter {
                    phases: vec![phase],
                    ..Default::default()
                })
                .await
                .map(|v| v.len())
        };
        let executing = count(Phase::Executing).await?;
        let queued = count(Phase::Queued).await?;
        if executing > 0 {
            tracing::info!(
                "{executing} job(s) were executing when the server stopped (or execute on \
                 another server sharing the job database): each runs again from the start once \
                 no server holds its claim ([uws] lease_seconds = {})",
                self.lease().as_secs()
            );
        }
        tracing::info!("asynchronous jobs: {queued} queued");
        self.remove_orphans().await;
        self.destroy_expired().await;
        Ok(())
    }

    /// Deletes folders under jobs/ whose job is not in the database (a crash between
    /// deleting the row and the files), once their newest file is [`ORPHAN_AGE`] old.
    async fn remove_orphans(&self) {
        let base = self.storage.path("jobs");
        let Ok(listing) = self.storage.store.list_with_delimiter(Some(&base)).await else {
            return;
        };
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(ORPHAN_AGE).unwrap_or(chrono::Duration::zero());
        for p in listing.common_prefixes {
            let Some(id) = p.filename().map(str::to_string) else {
                continue;
            };
            if !matches!(self.store.get(&id).await, Ok(None)) {
                continue;
            }
            let newest = self
                .storage
                .store
                .list(Some(&p))
                .filter_map(|m| async move { m.ok().map(|m| m.last_modified) })
                .fold(None, |acc, t| async move { acc.max(Some(t)) })
                .await;
            if newest.is_some_and(|t| t > cutoff) {
                continue;
            }
            tracing::info!("deleting files of unknown job {id}");
            if let Err(e) = self.storage.delete_prefix(&format!("jobs/{id}")).await {
                tracing::warn!("job {id}: deleting its files: {e}");
            }
        }
    }

    /// Destroys the jobs past their destruction time.
    async fn destroy_expired(&self) {
        match self.store.list_expired(now_ms()).await {
            Ok(ids) => {
                for id in ids {
                    tracing::info!("job {id}: destruction time reached");
                    match self.delete(&id).await {
                        // Another server sharing the store destroyed it first.
                        Ok(()) | Err(JobError::NotFound(_)) => {}
                        Err(e) => tracing::warn!("job {id}: destroying it: {e}"),
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

/// What an [`Executor`] gets while one job runs: the stop signal (abort, time limit) and the
/// job's result storage.
pub struct RunContext<'a> {
    jobs: &'a Jobs,
    job_id: String,
    stop: Pin<Box<dyn Future<Output = Stop> + Send + 'a>>,
    stopped: Option<Stop>,
}

impl RunContext<'_> {
    /// Runs `fut` unless the job is stopped first (then `fut` is dropped).
    pub async fn unless_stopped<T>(&mut self, fut: impl Future<Output = T>) -> Result<T, Stop> {
        if let Some(s) = self.stopped {
            return Err(s);
        }
        tokio::select! {
            v = fut => Ok(v),
            s = &mut self.stop => {
                self.stopped = Some(s);
                Err(s)
            }
        }
    }

    /// The storage the job's files live in.
    pub fn storage(&self) -> &Storage {
        &self.jobs.storage
    }

    /// The bytes of a file stored with the job.
    pub async fn read_upload(&mut self, upload: &JobUpload) -> Result<Bytes, Outcome> {
        let jobs = self.jobs;
        match self.unless_stopped(jobs.read_upload(upload)).await {
            Ok(r) => r.map_err(Outcome::Failed),
            Err(s) => Err(s.into()),
        }
    }

    /// A stored result of this job, as a stream of bytes (to copy it elsewhere).
    pub async fn open_result(
        &mut self,
        result: &JobResult,
    ) -> Result<BoxStream<'static, Result<Bytes, object_store::Error>>, JobError> {
        self.jobs.open_result(result).await
    }

    /// Streams `chunks` into the job's result `name` (object `jobs/<id>/<name>.<ext>`) with a
    /// multipart upload, a few parts in flight at most. `check` runs after the last chunk and
    /// before the upload is completed: an error there (a query that failed after its first
    /// row, say) discards the upload. Nothing is visible unless everything succeeds.
    pub async fn store_result(
        &mut self,
        name: &str,
        content_type: &str,
        mut chunks: impl Stream<Item = Bytes> + Unpin,
        check: impl FnOnce() -> Result<(), String>,
    ) -> Result<JobResult, Outcome> {
        let rel = format!("jobs/{}/{name}.{}", self.job_id, extension(content_type));
        let location = self.jobs.storage.path(&rel);
        let store = self.jobs.storage.store.clone();
        let upload = self
            .unless_stopped(store.put_multipart(&location))
            .await?
            .map_err(|e| Outcome::Failed(format!("cannot store the result: {e}")))?;
        let mut writer = WriteMultipart::new(upload);
        let mut size = 0u64;
        loop {
            let chunk = match self.unless_stopped(chunks.next()).await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(s) => {
                    let _ = writer.abort().await;
                    return Err(s.into());
                }
            };
            size += chunk.len() as u64;
            match self
                .unless_stopped(writer.wait_for_capacity(PARTS_IN_FLIGHT))
                .await
            {
                Ok(Ok(())) => writer.put(chunk),
                Ok(Err(e)) => {
                    let _ = writer.abort().await;
                    return Err(Outcome::Failed(format!("cannot store the result: {e}")));
                }
                Err(s) => {
                    let _ = writer.abort().await;
                    return Err(s.into());
                }
            }
        }
        if let Err(message) = check() {
            let _ = writer.abort().await;
            return Err(Outcome::Failed(message));
        }
        match self.unless_stopped(writer.finish()).await {
            Ok(Ok(_)) => Ok(JobResult {
                id: name.to_string(),
                path: rel,
                content_type: content_type.to_string(),
                size,
                link: None,
            }),
            Ok(Err(e)) => Err(Outcome::Failed(format!("cannot store the result: {e}"))),
            Err(s) => {
                self.jobs.delete_object(&rel).await;
                Err(s.into())
            }
        }
    }

    /// Stores a small result held in memory.
    pub async fn store_bytes(
        &mut self,
        name: &str,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<JobResult, Outcome> {
        let stream = futures::stream::iter([bytes]);
        self.store_result(name, content_type, stream, || Ok(()))
            .await
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;

    /// Writes its QUERY parameter as the result; `SLEEP` waits forever first, with an
    /// `early` result from the moment it is EXECUTING; `FAIL` fails; `REFUSE` fails before
    /// it executes.
    struct Echo;

    #[async_trait]
    impl Executor for Echo {
        async fn prepare(&self, job: &Job) -> Result<Vec<JobResult>, String> {
            match job.parameter("QUERY").unwrap_or("") {
                "SLEEP" => Ok(vec![JobResult {
                    id: "early".into(),
                    path: String::new(),
                    content_type: "text/plain".into(),
                    size: 0,
                    link: Some("/early".into()),
                }]),
                "REFUSE" => Err("refused before executing".into()),
                _ => Ok(Vec::new()),
            }
        }

        async fn run(&self, job: &Job, ctx: &mut RunContext<'_>) -> Outcome {
            match job.parameter("QUERY").unwrap_or("") {
                "SLEEP" => match ctx.unless_stopped(std::future::pending::<()>()).await {
                    Ok(()) => Outcome::Failed("woke".into()),
                    Err(s) => s.into(),
                },
                "FAIL" => Outcome::Failed("asked to fail".into()),
                q => {
                    let bytes = Bytes::from(q.to_string());
                    match ctx.store_bytes("result", "text/plain", bytes).await {
                        Ok(r) => Outcome::Done(vec![r]),
                        Err(o) => o,
                    }
                }
            }
        }
    }

    fn service(dir: &std::path::Path, cfg: UwsConfig) -> Arc<Jobs> {
        let storage = Storage::local(dir, storage::Missing::Refuse).unwrap();
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let jobs = Jobs::new(store, storage, cfg);
        jobs.start(vec![Kind {
            name: "echo",
            executor: Arc::new(Echo),
            max_running: 1,
        }])
        .unwrap();
        jobs
    }

    async fn submit(jobs: &Jobs, owner: Option<&str>, query: &str) -> Job {
        let id = jobs.new_id();
        let new = NewJob {
            kind: "echo".into(),
            owner: owner.map(str::to_string),
            parameters: vec![("QUERY".into(), query.into())],
            ..Default::default()
        };
        jobs.create(id, new, true).await.unwrap()
    }

    async fn settle(jobs: &Jobs, id: &str) -> Job {
        for _ in 0..200 {
            let j = jobs.wait(id, None, 5).await.unwrap();
            if !j.phase.is_active() {
                return j;
            }
        }
        panic!("job {id} did not finish");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_complete_fail_abort_and_keep_their_results() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = service(dir.path(), UwsConfig::default());
        let done = settle(&jobs, &submit(&jobs, None, "hello").await.id).await;
        assert_eq!(done.phase, Phase::Completed);
        let r = done.result("result").unwrap();
        assert_eq!(r.size, 5);
        let body: Vec<Bytes> = jobs
            .open_result(r)
            .await
            .unwrap()
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert_eq!(body.concat(), b"hello");

        let failed = settle(&jobs, &submit(&jobs, None, "FAIL").await.id).await;
        assert_eq!(failed.phase, Phase::Error);
        assert_eq!(failed.error.as_deref(), Some("asked to fail"));

        let sleeping = submit(&jobs, None, "SLEEP").await;
        let seen = jobs
            .wait(&sleeping.id, Some(Phase::Queued), 5)
            .await
            .unwrap();
        assert_eq!(seen.phase, Phase::Executing);
        jobs.abort(&sleeping.id).await.unwrap();
        assert_eq!(settle(&jobs, &sleeping.id).await.phase, Phase::Aborted);

        // The pool was freed: another job runs.
        let after = settle(&jobs, &submit(&jobs, None, "again").await.id).await;
        assert_eq!(after.phase, Phase::Completed);
        let stored = dir.path().join(&after.result("result").unwrap().path);
        assert!(stored.is_file(), "{}", stored.display());
        jobs.delete(&after.id).await.unwrap();
        assert!(matches!(
            jobs.get(&after.id).await,
            Err(JobError::NotFound(_))
        ));
        assert!(!stored.exists(), "the result is deleted with its job");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_prepared_before_executing_are_there_when_it_executes() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = service(dir.path(), UwsConfig::default());
        let id = submit(&jobs, None, "SLEEP").await.id;
        let mut seen = None;
        for _ in 0..200 {
            let j = jobs.get(&id).await.unwrap();
            if j.phase == Phase::Executing {
                seen = Some(j);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let j = seen.expect("the job never executed");
        assert!(
            j.result("early").is_some(),
            "EXECUTING without its results: {j:?}"
        );
        jobs.abort(&id).await.unwrap();
        let refused = settle(&jobs, &submit(&jobs, None, "REFUSE").await.id).await;
        assert_eq!(refused.phase, Phase::Error);
        assert_eq!(refused.error.as_deref(), Some("refused before executing"));
        assert!(refused.start_time.is_none(), "it never executed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_past_its_execution_duration_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = UwsConfig {
            execution_duration: 1,
            ..UwsConfig::default()
        };
        let jobs = service(dir.path(), cfg);
        let j = settle(&jobs, &submit(&jobs, None, "SLEEP").await.id).await;
        assert_eq!(j.phase, Phase::Error);
        assert!(j.error.unwrap().contains("execution duration of 1 s"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_is_seen_by_its_owner_only_and_anonymous_ones_by_all() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = service(dir.path(), UwsConfig::default());
        let alices = submit(&jobs, Some("alice"), "a").await;
        let anons = submit(&jobs, None, "n").await;
        assert!(jobs
            .get_for(&alices.id, "echo", Some("alice"))
            .await
            .is_ok());
        for caller in [None, Some("bob")] {
            assert!(matches!(
                jobs.get_for(&alices.id, "echo", caller).await,
                Err(JobError::NotFound(_))
            ));
        }
        assert!(jobs
            .get_for(&alices.id, "other-kind", Some("alice"))
            .await
            .is_err());
        for caller in [None, Some("bob"), Some("alice")] {
            assert!(jobs.get_for(&anons.id, "echo", caller).await.is_ok());
        }
        let listed = |owner: Option<&str>| JobFilter {
            kind: Some("echo".into()),
            owner: Some(owner.map(str::to_string)),
            ..Default::default()
        };
        let ids = |v: Vec<Job>| v.into_iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(
            ids(jobs.list(&listed(Some("alice"))).await.unwrap()),
            std::slice::from_ref(&alices.id)
        );
        assert_eq!(
            ids(jobs.list(&listed(None)).await.unwrap()),
            std::slice::from_ref(&anons.id)
        );
        assert!(jobs.list(&listed(Some("bob"))).await.unwrap().is_empty());
    }

    /// Two services on one store (as two processes on one database, without notifications):
    /// each job runs once, a job a dead service held is taken over once its lease runs out,
    /// and an abort made through one service stops the job running in the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn services_sharing_a_store_share_the_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path(), storage::Missing::Refuse).unwrap();
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let cfg = UwsConfig {
            lease_seconds: 1,
            poll_ms: 50,
            ..UwsConfig::default()
        };
        // A job a service that died had claimed and started.
        let now = now_ms();
        let ghost = Job {
            id: "ghost-job".into(),
            kind: "echo".into(),
            run_id: None,
            owner: None,
            phase: Phase::Queued,
            creation_time: now - 1000,
            start_time: None,
            end_time: None,
            execution_duration: 60,
            destruction: now + 3_600_000,
            parameters: vec![("QUERY".into(), "late".into())],
            uploads: vec![],
            job_info: None,
            origin: None,
            error: None,
            results: vec![],
        };
        assert!(store.create(&ghost).await.unwrap());
        let lease = Duration::from_millis(300);
        store.claim("echo", "dead", lease).await.unwrap().unwrap();
        store
            .update_held(
                "ghost-job",
                "dead",
                &[],
                Box::new(|j| j.phase = Phase::Executing),
            )
            .await
            .unwrap()
            .unwrap();
        let services: Vec<Arc<Jobs>> = (0..2)
            .map(|_| {
                let jobs = Jobs::new(store.clone(), storage.clone(), cfg.clone());
                jobs.start(vec![Kind {
                    name: "echo",
                    executor: Arc::new(Echo),
                    max_running: 2,
                }])
                .unwrap();
                jobs
            })
            .collect();
        let mut ids = Vec::new();
        for i in 0..20 {
            let j = submit(&services[i % 2], None, &format!("q{i}")).await;
            ids.push((j.id, format!("q{i}")));
        }
        ids.push(("ghost-job".into(), "late".into()));
        for (id, query) in &ids {
            let done = settle(&services[0], id).await;
            assert_eq!(done.phase, Phase::Completed, "{done:?}");
            let r = done.result("result").unwrap();
            let body: Vec<Bytes> = services[1]
                .open_result(r)
                .await
                .unwrap()
                .map(|c| c.unwrap())
                .collect()
                .await;
            assert_eq!(body.concat(), query.as_bytes());
        }
        // An abort through the service that does not run the job.
        let sleeping = submit(&services[0], None, "SLEEP").await;
        services[0]
            .wait(&sleeping.id, Some(Phase::Queued), 5)
            .await
            .unwrap();
        let runs = |s: &Jobs| lock(&s.running).contains_key(&sleeping.id);
        let runner = services.iter().position(|s| runs(s)).unwrap();
        let other = &services[1 - runner];
        assert!(!runs(other));
        other.abort(&sleeping.id).await.unwrap();
        let mut waited = 0;
        while runs(&services[runner]) {
            waited += 1;
            assert!(waited < 100, "the job still runs 2 s after its abort");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(other.get(&sleeping.id).await.unwrap().phase, Phase::Aborted);
    }

    /// A job this service runs whose claim it loses (released here, as when its lease ran
    /// out while the database did not answer) and claims again: the earlier run stops and
    /// the new one is the job's, abortable as any.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_claimed_again_here_stops_its_earlier_run() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path(), storage::Missing::Refuse).unwrap();
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let cfg = UwsConfig {
            lease_seconds: 1,
            poll_ms: 50,
            ..UwsConfig::default()
        };
        let jobs = Jobs::new(store.clone(), storage, cfg);
        jobs.start(vec![Kind {
            name: "echo",
            executor: Arc::new(Echo),
            max_running: 2,
        }])
        .unwrap();
        let id = submit(&jobs, None, "SLEEP").await.id;
        jobs.wait(&id, Some(Phase::Queued), 5).await.unwrap();
        let token = |jobs: &Jobs| lock(&jobs.running).get(&id).map(|r| r.token.clone());
        let first = token(&jobs).unwrap();
        assert!(store.release(&id, &first).await.unwrap());
        let mut tries = 0;
        while token(&jobs).is_none_or(|t| t == first) || !lock(&jobs.lost).is_empty() {
            tries += 1;
            assert!(
                tries < 200,
                "not claimed again, or the earlier run did not stop"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let second = token(&jobs).unwrap();
        let again = jobs.wait(&id, Some(Phase::Queued), 5).await.unwrap();
        assert_eq!(again.phase, Phase::Executing);
        assert_eq!(
            store
                .renew(&id, &first, Duration::from_secs(1))
                .await
                .unwrap(),
            Renewal::Lost
        );
        assert_eq!(
            store
                .renew(&id, &second, Duration::from_secs(1))
                .await
                .unwrap(),
            Renewal::Held
        );
        jobs.abort(&id).await.unwrap();
        assert_eq!(settle(&jobs, &id).await.phase, Phase::Aborted);
        let mut tries = 0;
        while token(&jobs).is_some() {
            tries += 1;
            assert!(tries < 200, "the new run did not stop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// An id no job can have (a NUL byte, a byte of no UTF-8 character, too long, empty) is
    /// not found, also in PostgreSQL, whose text parameters refuse a NUL byte with an error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_impossible_job_id_is_not_found_in_postgresql() {
        let cluster = crate::pgtest::Cluster::start().unwrap();
        let url = cluster.database("uws").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path(), storage::Missing::Refuse).unwrap();
        let store = Arc::new(crate::PgStore::open(&url, 2).await.unwrap());
        let jobs = Jobs::new(store, storage, UwsConfig::default());
        let long = "a".repeat(65);
        for id in ["\u{ff}\0", "a\0b", long.as_str(), "a b", ""] {
            let got = jobs.get_for(id, "echo", None).await;
            assert!(matches!(got, Err(JobError::NotFound(_))), "{id:?}: {got:?}");
            let got = jobs.get(id).await;
            assert!(matches!(got, Err(JobError::NotFound(_))), "{id:?}: {got:?}");
        }
        let new = NewJob {
            kind: "echo".into(),
            ..Default::default()
        };
        let made = jobs.create(jobs.new_id(), new, false).await.unwrap();
        assert_eq!(
            jobs.get_for(&made.id, "echo", None).await.unwrap().id,
            made.id
        );
    }

    /// PostgreSQL stops and starts again under a running service: requests fail meanwhile,
    /// then jobs run again, and changes made elsewhere are heard again (the listening
    /// connection is opened again).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_runner_outlives_a_postgresql_restart() {
        let cluster = crate::pgtest::Cluster::start().unwrap();
        let url = cluster.database("uws").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path(), storage::Missing::Refuse).unwrap();
        let store = Arc::new(crate::PgStore::open(&url, 4).await.unwrap());
        // A long poll interval: a WAIT that returns at once was woken by a notification.
        let cfg = UwsConfig {
            lease_seconds: 2,
            poll_ms: 10_000,
            ..UwsConfig::default()
        };
        let jobs = Jobs::new(store, storage, cfg);
        jobs.start(vec![Kind {
            name: "echo",
            executor: Arc::new(Echo),
            max_running: 2,
        }])
        .unwrap();
        let before = settle(&jobs, &submit(&jobs, None, "before").await.id).await;
        assert_eq!(before.phase, Phase::Completed);

        cluster.pg_stop().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let refused = jobs
            .create(
                jobs.new_id(),
                NewJob {
                    kind: "echo".into(),
                    ..Default::default()
                },
                true,
            )
            .await;
        assert!(matches!(refused, Err(JobError::Internal(_))), "{refused:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.pg_start().unwrap();

        // A connection of the pool may still be the old server's for a moment.
        let mut tries = 0;
        let created = loop {
            let new = NewJob {
                kind: "echo".into(),
                parameters: vec![("QUERY".into(), "after".into())],
                ..Default::default()
            };
            match jobs.create(jobs.new_id(), new, true).await {
                Ok(j) => break j,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 50, "{e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let after = settle(&jobs, &created.id).await;
        assert_eq!(after.phase, Phase::Completed);
        // Another process's change wakes a WAIT here once the listener is back.
        let other = crate::PgStore::open(&url, 1).await.unwrap();
        let mut tries = 0;
        loop {
            tries += 1;
            assert!(tries < 30, "no change made elsewhere is heard");
            let mut pending = submit(&jobs, None, "x").await;
            pending.id = jobs.new_id();
            pending.kind = "elsewhere".into();
            pending.phase = Phase::Pending;
            assert!(other.create(&pending).await.unwrap());
            let id = pending.id.clone();
            let waiting = {
                let jobs = jobs.clone();
                tokio::spawn(async move {
                    let t0 = tokio::time::Instant::now();
                    let j = jobs.wait(&id, Some(Phase::Pending), 3).await.unwrap();
                    (j.phase, t0.elapsed())
                })
            };
            tokio::time::sleep(Duration::from_millis(200)).await;
            other
                .update(&pending.id, &[], Box::new(|j| j.phase = Phase::Held))
                .await
                .unwrap()
                .unwrap();
            let (phase, took) = waiting.await.unwrap();
            if phase == Phase::Held && took < Duration::from_secs(2) {
                break;
            }
        }
    }

    /// A stopping service hands its running jobs over: QUEUED again at once (not after their
    /// lease) for another service, and it claims none itself any more.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopping_service_hands_its_jobs_over() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path(), storage::Missing::Refuse).unwrap();
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let cfg = UwsConfig {
            lease_seconds: 600,
            poll_ms: 50,
            ..UwsConfig::default()
        };
        let jobs = Jobs::new(store.clone(), storage, cfg);
        jobs.start(vec![Kind {
            name: "echo",
            executor: Arc::new(Echo),
            max_running: 1,
        }])
        .unwrap();
        let id = submit(&jobs, None, "SLEEP").await.id;
        jobs.wait(&id, Some(Phase::Queued), 5).await.unwrap();
        let token = |jobs: &Jobs| lock(&jobs.running).get(&id).map(|r| r.token.clone());
        assert!(token(&jobs).is_some());
        jobs.hand_over().await;
        let handed = jobs.get(&id).await.unwrap();
        assert_eq!((handed.phase, handed.start_time), (Phase::Queued, None));
        let mut tries = 0;
        while token(&jobs).is_some() {
            tries += 1;
            assert!(tries < 200, "the run here did not stop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Nothing is claimed here any more; another service takes it at once.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(jobs.get(&id).await.unwrap().phase, Phase::Queued);
        let lease = Duration::from_secs(30);
        let taken = store.claim("echo", "next", lease).await.unwrap().unwrap();
        assert_eq!(taken.job.id, id);
    }

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
        assert_eq!(extension("text/xml; charset=utf-8"), "xml");
    }
}
