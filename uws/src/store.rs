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
