//! What can go wrong with a query, before its first row.

/// A query that cannot run: the request's fault, or the service's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The query or its parameters are wrong (or it ran out of its time before a row).
    #[error("{0}")]
    Invalid(String),
    /// The service failed.
    #[error("{0}")]
    Internal(String),
    /// The service is busy: every place is taken; the request may be retried.
    #[error("{0}")]
    Busy(String),
}
