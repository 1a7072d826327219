//! VOSpace 2.1 without HTTP: the node model and faults ([`model`]), the store that keeps node
//! metadata, users, tokens and negotiated transfers in SQLite or PostgreSQL (`db`) and the
//! bytes in object storage ([`store`]), the XML documents ([`xml`]), the checks and actions of transfers
//! ([`transfer`]), and OpenID Connect logins ([`oidc`]). The binary's VOSpace binding maps the
//! REST resources onto these; asynchronous transfers run as UWS jobs.

mod db;
pub mod model;
pub mod oidc;
/// The job store's private PostgreSQL cluster for tests, shared rather than copied.
#[cfg(test)]
#[path = "../../uws/src/pgtest.rs"]
// What uws's own tests use of it (stopping a cluster) is not used here.
#[allow(dead_code)]
mod pgtest;
pub mod store;
pub mod transfer;
pub mod xml;

pub use model::Fault;
pub use store::{Access, User, VoStore};

/// What the shared test cluster names its folders with.
#[cfg(test)]
fn new_job_id() -> String {
    format!(
        "vospace-{}-{:?}",
        std::process::id(),
        std::time::Instant::now()
    )
    .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
}
