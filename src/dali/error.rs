//! Errors a DAL service reports to its user: a VOTable error document (DALI 1.1 §4.3) with a
//! fitting HTTP status.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::engine::QueryError;

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

    /// The DALI error document response.
    pub fn response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .content_type("application/x-votable+xml")
            .body(votable::error_document(&self.message))
    }
}

impl From<QueryError> for DalError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid(m) => DalError::bad_request(m),
            QueryError::Internal(m) => DalError::internal(m),
        }
    }
}
