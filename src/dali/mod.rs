//! What every IVOA protocol front shares (DALI 1.1 and around it): request parameters
//! ([`params`]), errors as VOTable error documents ([`error`]), MAXREC and RESPONSEFORMAT,
//! the streamed result response ([`respond`]), VOSI availability and tables ([`vosi`]),
//! capabilities declared as data and rendered once ([`capabilities`]), the UWS binding of
//! asynchronous jobs ([`uws`]), HTTP around them (`HEAD`, `Digest`, storage failures:
//! [`http`]), and what the service says about itself ([`Service`]).
//!
//! Uses the engine and the caller's identity; knows no protocol.

pub mod capabilities;
pub mod error;
pub mod examples;
pub mod http;
pub mod params;
pub mod range;
pub mod uws;
pub mod vosi;

use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::StreamExt;
use votable::{Format, Info};

use crate::engine::{Engine, Lane, Limits, QueryRequest, ResultStream, TimeLimit};
pub use error::DalError;
pub use params::Params;

/// Who runs the service and where it is reached (`[service]`, `public_url`, `bind`).
#[derive(Debug, Clone)]
pub struct Service {
    /// Title shown to people.
    pub title: String,
    /// IVOA authority for identifiers (`ivo://AUTHORITY/...`).
    pub authority: String,
    /// Public base URL; by default taken from each request.
    pub public_url: Option<String>,
    /// The address the server listens on (the base URL of last resort).
    pub bind: String,
}

impl Service {
    /// The base URL clients reach this server by.
    pub fn base_url(&self, req: &HttpRequest) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let info = req.connection_info();
                format!("{}://{}", info.scheme(), info.host())
            }
        }
    }

    /// The base URL written into `access_url` and links: `public_url`, else `http://<bind>`
    /// (with `0.0.0.0`/`[::]` read as `localhost`).
    pub fn public_base(&self) -> String {
        if let Some(u) = &self.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let bind = self
            .bind
            .replace("0.0.0.0", "localhost")
            .replace("[::]", "localhost");
        format!("http://{bind}")
    }
}

/// Parses MAXREC: a non-negative integer (also written with an exponent, `1e11`), capped at
/// the hard limit.
pub fn parse_maxrec(v: Option<&str>, limits: &Limits) -> Result<u64, DalError> {
    match v {
        None => Ok(limits.default_maxrec.min(limits.hard_maxrec)),
        Some(s) => Ok(requested_maxrec(s)?.min(limits.hard_maxrec)),
    }
}

/// The MAXREC a client asked for; a value beyond u64 counts as u64::MAX (it is capped anyway).
fn requested_maxrec(s: &str) -> Result<u64, DalError> {
    let t = s.trim();
    let bad = || DalError::bad_request(format!("MAXREC must be a non-negative integer, not '{s}'"));
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    let x: f64 = t.parse().map_err(|_| bad())?;
    if x.is_finite() && x >= 0.0 && x.fract() == 0.0 {
        // Saturating: a float beyond u64's range becomes u64::MAX.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        return Ok(x as u64);
    }
    Err(bad())
}

/// An INFO saying that the MAXREC asked for is above the hard limit, so that the result is cut
/// there (with QUERY_STATUS OVERFLOW when more rows match); None when it is not.
pub fn maxrec_note(v: Option<&str>, limits: &Limits) -> Option<Info> {
    let asked = requested_maxrec(v?).ok()?;
    (asked > limits.hard_maxrec).then(|| Info {
        name: "MAXREC".into(),
        value: limits.hard_maxrec.to_string(),
        content: Some(format!(
            "MAXREC={} is above this service's hard limit; at most {} rows are returned",
            v.unwrap_or_default().trim(),
            limits.hard_maxrec
        )),
    })
}

/// Parses RESPONSEFORMAT (a MIME type or a short name); absent: VOTable TABLEDATA.
pub fn parse_format(value: Option<&str>) -> Result<Format, DalError> {
    let Some(v) = value else {
        return Ok(Format::VoTable(votable::Encoding::TableData));
    };
    Format::parse(v).ok_or_else(|| {
        DalError::bad_request(format!(
            "RESPONSEFORMAT '{}' is not supported; use votable, votable/b, votable/b2, csv, \
             tsv, fits or parquet",
            v.trim().to_ascii_lowercase()
        ))
    })
}

/// A result stream as a streamed HTTP 200 response.
pub fn respond(result: ResultStream) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(result.content_type)
        .streaming(result.chunks.map(Ok::<Bytes, actix_web::Error>))
}

/// Runs a query synchronously — in one of the engine's places for synchronous queries, within
/// the synchronous time limit — and streams its result; errors before the first row are error
/// documents, a busy service a 503.
pub async fn execute(engine: &Engine, req: QueryRequest) -> Result<HttpResponse, DalError> {
    execute_within(engine, req, engine.sync_limit()).await
}

/// [`execute`] within a time limit that started earlier (with the request, so that the time
/// its query took to plan counts).
pub async fn execute_within(
    engine: &Engine,
    req: QueryRequest,
    limit: Option<TimeLimit>,
) -> Result<HttpResponse, DalError> {
    let result = engine.stream(req, limit, Lane::Auto, true).await?;
    Ok(respond(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        default_maxrec: 100,
        hard_maxrec: 1000,
        sync_timeout: 0,
    };

    #[test]
    fn maxrec_is_capped_at_the_hard_limit_and_said() {
        assert_eq!(parse_maxrec(None, &LIMITS).unwrap(), 100);
        assert_eq!(parse_maxrec(Some("50"), &LIMITS).unwrap(), 50);
        assert_eq!(parse_maxrec(Some("1e11"), &LIMITS).unwrap(), 1000);
        assert_eq!(
            parse_maxrec(Some("99999999999999999999999"), &LIMITS).unwrap(),
            1000
        );
        for bad in ["-1", "1.5", "x", "NaN", "inf", ""] {
            assert!(parse_maxrec(Some(bad), &LIMITS).is_err(), "{bad}");
        }
        assert!(maxrec_note(Some("1000"), &LIMITS).is_none());
        assert!(maxrec_note(None, &LIMITS).is_none());
        let note = maxrec_note(Some("1e11"), &LIMITS).unwrap();
        assert_eq!(
            (note.name.as_str(), note.value.as_str()),
            ("MAXREC", "1000")
        );
    }
}
