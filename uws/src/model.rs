//! The job model: phases, jobs, their results and uploaded files, the job-list filter, and the
//! UWS date format.

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// `[uws]` in vostok.toml: asynchronous jobs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UwsConfig {
    /// The job database (SQLite file). Default: `<data>/uws.sqlite` when the data folder is
    /// local; it must be given when the data folder is an object-store URL (an object store
    /// holds no SQLite file, and nothing is written into the working directory).
    pub database: Option<PathBuf>,
    /// TAP queries executing at once; the others wait in QUEUED.
    pub max_running: usize,
    /// VOSpace transfers (moves, copies, negotiations) executing at once.
    pub max_running_transfers: usize,
    /// Execution duration a new job gets, in seconds.
    pub execution_duration: u64,
    /// Longest execution duration a client may ask for, in seconds (also what 0, "no
    /// limit" in UWS, becomes).
    pub max_execution_duration: u64,
    /// How long a job and its result are kept after creation, in seconds (its destruction time).
    pub destruction: u64,
    /// Latest destruction time a client may set, in seconds after creation.
    pub max_destruction: u64,
    /// Longest blocking `WAIT` on a job document, in seconds (`WAIT=-1` waits this long).
    pub max_wait: u64,
    /// Seconds between two sweeps that destroy expired jobs and their files.
    pub cleanup_interval: u64,
    /// Jobs one user may have PENDING, QUEUED or EXECUTING at once.
    pub max_active_per_user: usize,
    /// Jobs all anonymous callers together may have PENDING, QUEUED or EXECUTING at once.
    pub max_active_anonymous: usize,
    /// Bytes of results kept for one owner's jobs (anonymous jobs: together); a new job is
    /// refused past it until some are deleted or destroyed.
    pub max_stored_bytes_per_user: u64,
    /// Seconds a server's claim on a job holds without renewal. The server running a job
    /// renews it every third of this; when a server dies, its jobs are taken over by another
    /// (or by itself once restarted) this long after its last renewal.
    pub lease_seconds: u64,
    /// Milliseconds between two looks at the job database for work and for changes made by
    /// other servers, when no notification came first (PostgreSQL notifies at once).
    pub poll_ms: u64,
}

impl Default for UwsConfig {
    fn default() -> Self {
        UwsConfig {
            database: None,
            max_running: 2,
            max_running_transfers: 4,
            execution_duration: 3600,
            max_execution_duration: 4 * 3600,
            destruction: 7 * 24 * 3600,
            max_destruction: 30 * 24 * 3600,
            max_wait: 60,
            cleanup_interval: 300,
            max_active_per_user: 20,
            max_active_anonymous: 50,
            max_stored_bytes_per_user: 10 * 1024 * 1024 * 1024,
            lease_seconds: 30,
            poll_ms: 1000,
        }
    }
}

/// UWS execution phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Pending,
    Queued,
    Executing,
    Completed,
    Error,
    Aborted,
    Unknown,
    Held,
    Suspended,
    Archived,
}

impl Phase {
    /// Every phase, in the order of the UWS schema.
    pub const ALL: [Phase; 10] = [
        Phase::Pending,
        Phase::Queued,
        Phase::Executing,
        Phase::Completed,
        Phase::Error,
        Phase::Unknown,
        Phase::Held,
        Phase::Suspended,
        Phase::Aborted,
        Phase::Archived,
    ];

    /// The UWS name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "PENDING",
            Phase::Queued => "QUEUED",
            Phase::Executing => "EXECUTING",
            Phase::Completed => "COMPLETED",
            Phase::Error => "ERROR",
            Phase::Aborted => "ABORTED",
            Phase::Unknown => "UNKNOWN",
            Phase::Held => "HELD",
            Phase::Suspended => "SUSPENDED",
            Phase::Archived => "ARCHIVED",
        }
    }

    /// Parses a UWS phase name (case-insensitive).
    pub fn parse(s: &str) -> Option<Phase> {
        let s = s.trim();
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// Phases from which a job may still change by itself or be started (UWS 1.1 §2.2.1.1:
    /// the phases a blocking WAIT waits in).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Phase::Pending | Phase::Queued | Phase::Executing | Phase::Held | Phase::Suspended
        )
    }
}

/// A stored result of a completed job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// Its name in the job's result list (`result` for TAP, `transferDetails` for VOSpace).
    pub id: String,
    /// Object path relative to the data folder (`jobs/<id>/<name>.<ext>`).
    pub path: String,
    /// MIME type of the result.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Where this server serves it instead (a path below the base URL, e.g. a VOSpace
    /// transfer document at `/vospace/xfer/<id>`): the result resource redirects there, and
    /// `path` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// A table uploaded with a job (an inline `UPLOAD=name,param:PART`), kept in object storage
/// so that the job can run, or run again after a restart, without its request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobUpload {
    /// The multipart part it came in (what `param:PART` names).
    pub part: String,
    /// Object path relative to the data folder (`jobs/<id>/uploads/<part>`).
    pub path: String,
    /// The part's Content-Type, if it had one (tells CSV from TSV).
    pub content_type: Option<String>,
}

/// One job, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Server-chosen identifier.
    pub id: String,
    /// What runs it: the name of an [`Executor`](crate::Executor) (`tap`, `vospace`).
    pub kind: String,
    /// Client-chosen label (RUNID).
    pub run_id: Option<String>,
    /// The user it belongs to; `None` for an anonymous job.
    pub owner: Option<String>,
    /// Current phase.
    pub phase: Phase,
    /// Milliseconds since the Unix epoch.
    pub creation_time: i64,
    /// When it last started EXECUTING (ms).
    pub start_time: Option<i64>,
    /// When it reached COMPLETED, ERROR or ABORTED (ms).
    pub end_time: Option<i64>,
    /// Seconds it may execute.
    pub execution_duration: u64,
    /// When it is destroyed with its files (ms).
    pub destruction: i64,
    /// The parameters, names upper-cased, in the order given.
    pub parameters: Vec<(String, String)>,
    /// Files uploaded with the job.
    pub uploads: Vec<JobUpload>,
    /// What the job document shows as `jobInfo` (an XML element, e.g. a VOSpace transfer).
    pub job_info: Option<String>,
    /// The base URL of the request that created it, for executors that write URLs.
    pub origin: Option<String>,
    /// Why it failed (phase ERROR).
    pub error: Option<String>,
    /// Its results (phase COMPLETED).
    pub results: Vec<JobResult>,
}

impl Job {
    /// Whether `caller` (a user name; `None`: anonymous) may see and act on the job: its owner
    /// may; an anonymous job is anyone's who knows its identifier. This is the one ownership
    /// rule of every job kind.
    pub fn visible_to(&self, caller: Option<&str>) -> bool {
        match &self.owner {
            None => true,
            Some(o) => caller == Some(o.as_str()),
        }
    }

    /// A result by name.
    pub fn result(&self, id: &str) -> Option<&JobResult> {
        self.results.iter().find(|r| r.id == id)
    }

    /// A parameter's value (name case-insensitive).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets a parameter, replacing an earlier value of the same name.
    pub fn set_parameter(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_uppercase();
        self.parameters.retain(|(k, _)| *k != name);
        self.parameters.push((name, value.to_string()));
    }
}

/// Which jobs a job list shows (UWS 1.1 §2.2.1.1).
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs of this kind (`None`: every kind).
    pub kind: Option<String>,
    /// Only the jobs of this owner (`Some(None)`: anonymous jobs; `None`: every owner).
    pub owner: Option<Option<String>>,
    /// Only jobs in one of these phases (empty: every phase but ARCHIVED).
    pub phases: Vec<Phase>,
    /// Only jobs created strictly after this time (ms).
    pub after: Option<i64>,
    /// Only the n most recently created.
    pub last: Option<u64>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2024-05-01T12:00:00.000Z`: what every UWS date here looks like (the job document and the
/// `/destruction` resource must agree character for character, taplint compares them).
pub fn format_time(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => "1970-01-01T00:00:00.000Z".into(),
    }
}

/// Parses an ISO 8601 date or date-time as clients send them: with a `Z` or an offset, or
/// without a zone (taken as UTC, as pyvo sends it), with or without fractional seconds, or a
/// date alone.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    let bare = s.strip_suffix('Z').unwrap_or(s);
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(bare, f) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(bare, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// A new job identifier: 16 hex digits that cannot be guessed from earlier ones (SipHash
/// keyed by the process's random keys, over the time and a counter).
pub fn new_job_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_i64(now_ms());
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u32(d.subsec_nanos());
    }
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_parse_client_forms() {
        let t = parse_time("2024-05-01T12:34:56.789Z").unwrap();
        assert_eq!(format_time(t), "2024-05-01T12:34:56.789Z");
        assert_eq!(parse_time("2024-05-01T12:34:56.789000"), Some(t));
        assert_eq!(parse_time("2024-05-01T14:34:56.789+02:00"), Some(t));
        assert_eq!(
            parse_time("2024-05-01T12:34:56Z"),
            Some(t - 789),
            "no fraction"
        );
        assert_eq!(parse_time("2024-05-01"), parse_time("2024-05-01T00:00:00Z"));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn phases_parse_case_insensitively() {
        for p in Phase::ALL {
            assert_eq!(Phase::parse(&p.as_str().to_ascii_lowercase()), Some(p));
        }
        assert_eq!(Phase::parse("RUN"), None);
    }

    #[test]
    fn job_ids_differ() {
        let a = new_job_id();
        let b = new_job_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
