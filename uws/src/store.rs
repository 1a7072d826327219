//! Where jobs are kept: a trait, so that one server keeps them in SQLite ([`crate::sqlite`])
//! and several servers sharing a job list can keep them in PostgreSQL.

use async_trait::async_trait;

use crate::model::{Job, JobFilter, Phase};

/// A failure of the job database.
#[derive(Debug, thiserror::Error)]
#[error("job database: {0}")]
pub struct StoreError(pub String);

/// A change applied to a job inside the store's transaction.
pub type Apply = Box<dyn FnOnce(&mut Job) + Send>;

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
}

/// The behaviour every store must have: the same test runs against each of them.
#[cfg(test)]
pub(crate) mod tests {
    use std::future::Future;
    use std::sync::Arc;

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
