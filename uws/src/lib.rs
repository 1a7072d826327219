//! Asynchronous jobs (UWS 1.1), for every job kind of the service: TAP queries and VOSpace
//! transfers alike.
//!
//! * [`model`]: phases, jobs, results, uploaded files, the job-list filter, the one ownership
//!   rule ([`Job::visible_to`]).
//! * [`store`], [`sqlite`] and [`postgres`]: where jobs are kept across restarts (a trait:
//!   an embedded SQLite file by default, or a PostgreSQL database, reached over TLS as
//!   libpq's `sslmode` says: [`pgtls`], which the VOSpace store uses too).
//! * [`Jobs`] ([`runner`]): creates, queues (one queue and pool per kind), executes through
//!   each kind's [`Executor`], aborts, times out, recovers after a restart and destroys jobs;
//!   results stream into object storage.
//! * [`xml`]: the UWS documents.
//!
//! No HTTP here: the binary maps the UWS resources onto these calls, checking every request
//! against [`Jobs::get_for`] first.

pub mod model;
#[cfg(test)]
mod pgtest;
pub mod pgtls;
pub mod postgres;
pub mod runner;
pub mod sqlite;
pub mod store;
pub mod xml;

pub use model::{
    format_time, new_job_id, now_ms, parse_time, Job, JobFilter, JobResult, JobUpload, Phase,
    UwsConfig,
};
pub use postgres::PgStore;
pub use runner::{Executor, JobError, Jobs, Kind, NewJob, NewUpload, Outcome, RunContext, Stop};
pub use sqlite::SqliteStore;
pub use store::{Change, Claimed, JobStore, Renewal, StoreError};
