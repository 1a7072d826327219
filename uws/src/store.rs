//! Where jobs are kept: a trait, so that one server keeps them in SQLite ([`crate::sqlite`])
//! and several servers sharing a job list can keep them in PostgreSQL.
//!
//! Who runs a job is recorded in the store too: a server *claims* a QUEUED job of a kind it
//! runs ([`JobStore::claim`]) for a lease it renews while the job executes
//! ([`JobStore::renew`]). Exactly one claim on a job holds at a time; a job whose lease ran
//! out (its server died) is claimed again by whichever server asks next, and runs again from
//! the start. Every change a holder makes to its job goes through [`JobStore::update_held`],
//! which fails once the claim is no longer its own. A job leaving QUEUED and EXECUTING (ended,
//! aborted, held) loses its claim.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::model::{Job, JobFilter, Phase};

/// A failure of the job database.
#[derive(Debug, thiserror::Error)]
#[error("job database: {0}")]
pub struct StoreError(pub String);

/// A change applied to a job inside the store's transaction.
pub type Apply = Box<dyn FnOnce(&mut Job) + Send>;

/// A job just claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The job, QUEUED, as stored after the claim.
    pub job: Job,
    /// Whether it was taken over: EXECUTING under a lease that ran out (or under none), now
    /// QUEUED again to run from the start.
    pub taken_over: bool,
}

/// What became of a claim when its holder renewed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Still the holder's, for another lease.
    Held,
    /// The job is gone (deleted).
    Gone,
    /// The job left QUEUED and EXECUTING (aborted, say): this phase.
    Ended(Phase),
    /// Another holder has it (the lease ran out and it was taken over), or it was released.
    Lost,
}

/// A change to a job, as a store tells of changes other processes make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The job.
    pub id: String,
    /// Its phase now; None: deleted.
    pub phase: Option<Phase>,
}

/// Where jobs are kept. Every method is one transaction; `update` is a compare-and-set on the
/// phase, which is what keeps a job that is aborted while it finishes in one consistent phase.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new job; false when the identifier is taken.
    async fn create(&self, job: &Job) -> Result<bool, StoreError>;
    /// A job by identifier.
    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError>;
    /// Jobs passing the filter, most recently created first.
    async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;
    /// Applies `apply` to the job if its phase is one of `from` (any phase when empty) and
    /// returns the job as stored afterwards; None when there is no such job or the phase did
    /// not match (nothing changed then).
    async fn update(
        &self,
        id: &str,
        from: &[Phase],
        apply: Apply,
    ) -> Result<Option<Job>, StoreError>;
    /// Removes a job; false when there was none.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;
    /// Identifiers of the jobs whose destruction time is at or before `now` (ms).
    async fn list_expired(&self, now: i64) -> Result<Vec<String>, StoreError>;

    /// Claims for `holder`, until `lease` from now (the store's clock), the oldest job of
    /// `kind` that is QUEUED and unclaimed, or QUEUED or EXECUTING under a lease that ran out
    /// (or under none): such an EXECUTING job becomes QUEUED again, without its start time.
    /// None when there is none; two claims at once never get the same job.
    async fn claim(
        &self,
        kind: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, StoreError>;
    /// Extends `holder`'s claim on job `id` to `lease` from now, when it still holds it.
    async fn renew(&self, id: &str, holder: &str, lease: Duration) -> Result<Renewal, StoreError>;
    /// Gives up `holder`'s claim on job `id`: it is QUEUED again (without its start time, if
    /// it was EXECUTING), unclaimed, and any server may claim it at once and run it from the
    /// start; false when `holder` did not hold it.
    async fn release(&self, id: &str, holder: &str) -> Result<bool, StoreError>;
    /// [`JobStore::update`], only while `holder` holds the job's claim.
    async fn update_held(
        &self,
        id: &str,
        holder: &str,
        from: &[Phase],
        apply: Apply,
    ) -> Result<Option<Job>, StoreError>;
    /// Changes other processes make, as they are made (phase changes and deletions), for a
    /// store several processes share; None when the store has no such feed (one process: its
    /// changes are its own), and then looking again from time to time is how they are seen.
    fn changes(&self) -> Option<mpsc::UnboundedReceiver<Change>> {
        None
    }
}

/// Whether a job in `phase` keeps its claim.
pub(crate) fn claimable_phase(phase: Phase) -> bool {
    matches!(phase, Phase::Queued | Phase::Executing)
}

/// Milliseconds of a lease, for the stores.
pub(crate) fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

/// The behaviour every store must have: the same test runs against each of them.
#[cfg(test)]
pub(crate) mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::model::JobResult;

    fn job(id: &str, created: i64, phase: Phase) -> Job {
        Job {
            id: id.into(),
            kind: "tap".into(),
            run_id: Some("run".into()),
            owner: None,
            phase,
            creation_time: created,
            start_time: None,
            end_time: None,
            execution_duration: 60,
            destruction: created + 1000,
            parameters: vec![("QUERY".into(), "SELECT 'it''s' -- \"x\"; é".into())],
            uploads: vec![],
            job_info: None,
            origin: None,
            error: None,
            results: vec![],
        }
    }

    /// Creates, filters, updates (a compare-and-set on the phase, also under contention),
    /// reopens (`open` gives a new handle on the same database each time) and deletes.
    pub(crate) async fn behaves_as_a_job_store<F, Fut>(open: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Box<dyn JobStore>>,
    {
        {
            let s = open().await;
            assert!(s.create(&job("a", 1000, Phase::Pending)).await.unwrap());
            assert!(
                !s.create(&job("a", 1000, Phase::Pending)).await.unwrap(),
                "id taken"
            );
            assert!(s.create(&job("b", 2000, Phase::Queued)).await.unwrap());
            assert!(s.create(&job("c", 3000, Phase::Completed)).await.unwrap());
            let mut owned = job("d", 500, Phase::Archived);
            owned.owner = Some("alice".into());
            owned.kind = "transfer".into();
            assert!(s.create(&owned).await.unwrap());
            // Compare-and-set on the phase.
            let none = s
                .update(
                    "a",
                    &[Phase::Queued],
                    Box::new(|j| j.phase = Phase::Executing),
                )
                .await
                .unwrap();
            assert!(none.is_none());
            assert!(s
                .update("nosuch", &[], Box::new(|j| j.phase = Phase::Executing))
                .await
                .unwrap()
                .is_none());
            let done = s
                .update(
                    "b",
                    &[Phase::Queued],
                    Box::new(|j| {
                        j.phase = Phase::Completed;
                        j.results = vec![JobResult {
                            id: "result".into(),
                            path: "jobs/b/result.vot".into(),
                            content_type: "application/x-votable+xml".into(),
                            size: 42,
                            link: None,
                        }];
                    }),
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(done.phase, Phase::Completed);
        }
        // Many claims of one QUEUED job at once: exactly one wins.
        {
            let s: Arc<dyn JobStore> = Arc::from(open().await);
            assert!(s.create(&job("q", 4000, Phase::Queued)).await.unwrap());
            let claims = (0..16).map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.update(
                        "q",
                        &[Phase::Queued],
                        Box::new(move |j| {
                            j.phase = Phase::Executing;
                            j.run_id = Some(format!("claimed by {i}"));
                        }),
                    )
                    .await
                    .unwrap()
                })
            });
            let won: Vec<Job> = futures::future::join_all(claims)
                .await
                .into_iter()
                .filter_map(|r| r.unwrap())
                .collect();
            assert_eq!(won.len(), 1, "one claim wins");
            let q = s.get("q").await.unwrap().unwrap();
            assert_eq!(q.phase, Phase::Executing);
            assert_eq!(q.run_id, won[0].run_id);
            assert!(s.delete("q").await.unwrap());
        }
        // Claims: one claimer of many wins; the holder alone renews and changes the job; a
        // lease that runs out is taken over; release, abort and deletion end a claim.
        {
            let s: Arc<dyn JobStore> = Arc::from(open().await);
            let lease = Duration::from_secs(30);
            let leased = |id: &str, created: i64, phase: Phase| {
                let mut j = job(id, created, phase);
                j.kind = "lease".into();
                j
            };
            assert!(s.create(&leased("l1", 100, Phase::Queued)).await.unwrap());
            assert!(s.create(&leased("l0", 50, Phase::Pending)).await.unwrap());
            assert!(s.claim("other", "h", lease).await.unwrap().is_none());
            let claims = (0..16).map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    let c = s.claim("lease", &format!("h{i}"), lease).await.unwrap();
                    c.map(|c| (format!("h{i}"), c))
                })
            });
            let won: Vec<(String, Claimed)> = futures::future::join_all(claims)
                .await
                .into_iter()
                .filter_map(|r| r.unwrap())
                .collect();
            assert_eq!(won.len(), 1, "one claim of 16 wins");
            let (holder, claimed) = &won[0];
            assert_eq!(claimed.job.id, "l1");
            assert_eq!(claimed.job.phase, Phase::Queued);
            assert!(!claimed.taken_over);
            assert!(s.claim("lease", "late", lease).await.unwrap().is_none());
            let start = |j: &mut Job| {
                j.phase = Phase::Executing;
                j.start_time = Some(5);
            };
            assert!(s
                .update_held("l1", "late", &[Phase::Queued], Box::new(start))
                .await
                .unwrap()
                .is_none());
            let started = s
                .update_held("l1", holder, &[Phase::Queued], Box::new(start))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(started.phase, Phase::Executing);
            assert_eq!(s.renew("l1", holder, lease).await.unwrap(), Renewal::Held);
            assert_eq!(s.renew("l1", "late", lease).await.unwrap(), Renewal::Lost);
            assert_eq!(
                s.renew("nosuch", holder, lease).await.unwrap(),
                Renewal::Gone
            );
            assert!(s.claim("lease", "late", lease).await.unwrap().is_none());
            // The lease runs out: the job is taken over, QUEUED again without its start time.
            let short = Duration::from_millis(1);
            assert_eq!(s.renew("l1", holder, short).await.unwrap(), Renewal::Held);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let taken = s.claim("lease", "taker", lease).await.unwrap().unwrap();
            assert_eq!(taken.job.id, "l1");
            assert!(taken.taken_over);
            assert_eq!(taken.job.phase, Phase::Queued);
            assert_eq!(taken.job.start_time, None);
            assert_eq!(s.renew("l1", holder, lease).await.unwrap(), Renewal::Lost);
            assert!(s
                .update_held("l1", holder, &[], Box::new(|j| j.phase = Phase::Completed))
                .await
                .unwrap()
                .is_none());
            // Released (EXECUTING): QUEUED again, claimable at once.
            s.update_held("l1", "taker", &[], Box::new(start))
                .await
                .unwrap()
                .unwrap();
            assert!(!s.release("l1", holder).await.unwrap());
            assert!(s.release("l1", "taker").await.unwrap());
            let released = s.get("l1").await.unwrap().unwrap();
            assert_eq!((released.phase, released.start_time), (Phase::Queued, None));
            let again = s.claim("lease", "third", lease).await.unwrap().unwrap();
            assert_eq!(again.job.id, "l1");
            assert!(!again.taken_over);
            // Oldest first.
            assert!(s.create(&leased("l2", 300, Phase::Queued)).await.unwrap());
            assert!(s.create(&leased("l3", 200, Phase::Queued)).await.unwrap());
            let first = s.claim("lease", "h", lease).await.unwrap().unwrap();
            let second = s.claim("lease", "h", lease).await.unwrap().unwrap();
            assert_eq!(
                (first.job.id.as_str(), second.job.id.as_str()),
                ("l3", "l2")
            );
            assert!(s.claim("lease", "h", lease).await.unwrap().is_none());
            // An abort ends the claim (and nobody claims an aborted job); so does a deletion.
            s.update("l1", &[], Box::new(|j| j.phase = Phase::Aborted))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                s.renew("l1", "third", lease).await.unwrap(),
                Renewal::Ended(Phase::Aborted)
            );
            assert!(s.delete("l2").await.unwrap());
            assert_eq!(s.renew("l2", "h", lease).await.unwrap(), Renewal::Gone);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(s.claim("lease", "h", lease).await.unwrap().is_none());
            for id in ["l0", "l1", "l3"] {
                assert!(s.delete(id).await.unwrap());
            }
        }
        // Reopened: everything is still there.
        let s = open().await;
        let b = s.get("b").await.unwrap().unwrap();
        assert_eq!(b.result("result").map(|r| r.size), Some(42));
        assert_eq!(b.parameter("query"), Some("SELECT 'it''s' -- \"x\"; é"));
        let ids = |v: Vec<Job>| v.into_iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.list(&JobFilter::default()).await.unwrap()),
            ["c", "b", "a"],
            "ARCHIVED jobs are listed only when asked for"
        );
        let f = JobFilter {
            phases: vec![Phase::Completed],
            ..Default::default()
        };
        assert_eq!(ids(s.list(&f).await.unwrap()), ["c", "b"]);
        let f = JobFilter {
            phases: vec![Phase::Archived, Phase::Pending],
            ..Default::default()
        };
        assert_eq!(ids(s.list(&f).await.unwrap()), ["a", "d"]);
        let f = JobFilter {
            phases: vec![Phase::Archived],
            owner: Some(Some("alice".into())),
            kind: Some("transfer".into()),
            ..Default::default()
        };
        assert_eq!(ids(s.list(&f).await.unwrap()), ["d"]);
        let f = JobFilter {
            owner: Some(None),
            ..Default::default()
        };
        assert_eq!(ids(s.list(&f).await.unwrap()), ["c", "b", "a"]);
        let f = JobFilter {
            phases: vec![Phase::Archived],
            owner: Some(Some("bob".into())),
            ..Default::default()
        };
        assert!(s.list(&f).await.unwrap().is_empty());
        let f = JobFilter {
            kind: Some("transfer".into()),
            ..Default::default()
        };
        assert!(s.list(&f).await.unwrap().is_empty());
        let f = JobFilter {
            last: Some(1),
            ..Default::default()
        };
        assert_eq!(ids(s.list(&f).await.unwrap()), ["c"]);
        let f = JobFilter {
            after: Some(1000),
            ..Default::default()
        };
        assert_eq!(ids(s.list(&f).await.unwrap()), ["c", "b"]);
        let f = JobFilter {
            last: Some(0),
            ..Default::default()
        };
        assert!(s.list(&f).await.unwrap().is_empty());
        assert_eq!(s.list_expired(3000).await.unwrap(), ["d", "a", "b"]);
        assert!(s.delete("a").await.unwrap());
        assert!(!s.delete("a").await.unwrap());
        assert!(s.get("a").await.unwrap().is_none());
    }
}
