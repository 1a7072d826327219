//! Errors a DAL service reports to its user: a VOTable error document (DALI 1.1 §4.3) with a
//! fitting HTTP status.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::engine::QueryError;

/// Seconds a client is asked to wait before retrying a request the busy service refused.
pub const RETRY_AFTER_SECS: &str = "5";

/// An error a DAL service reports to its user with a VOTable error document.
#[derive(Debug)]
pub struct DalError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl DalError {
    /// A 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        DalError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// A 500: the service failed.
    pub fn internal(message: impl Into<String>) -> Self {
        DalError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// A 503: the service is busy; the request may be retried.
    pub fn busy(message: impl Into<String>) -> Self {
        DalError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }

    /// The DALI error document response (a 503 says when to retry: `Retry-After`).
    pub fn response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.insert_header((actix_web::http::header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        r.content_type("application/x-votable+xml")
            .body(votable::error_document(&self.message))
    }
}

impl From<QueryError> for DalError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid(m) => DalError::bad_request(m),
            QueryError::Internal(m) => DalError::internal(m),
            QueryError::Busy(m) => DalError::busy(m),
        }
    }
}
