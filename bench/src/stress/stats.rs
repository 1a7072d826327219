//! What the load generator counts: per request kind, latencies, status codes, refusals,
//! connection errors and wrong answers; and the per-second timeline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value};

/// A kind of operation (one line of the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// TAP sync cone, 0.1–1°, TABLEDATA.
    TapCone,
    /// Simple Cone Search.
    Scs,
    /// A TAP_SCHEMA query.
    TapSchema,
    /// `SELECT TOP n *` as BINARY2, read to the end.
    Download,
    /// An async TAP job: submit (PHASE=RUN), wait, fetch the result, delete.
    Async,
    /// VOSpace: negotiate a push, PUT the bytes.
    VoPut,
    /// VOSpace: GET the bytes (pull negotiation or /vospace/files), MD5 checked.
    VoGet,
    /// VOSpace: DELETE a node.
    VoDelete,
    /// DataLink preview (PNG).
    Preview,
    /// A heavy synchronous query (cross join, crossmatch, sorted full scan).
    Heavy,
    /// The probe: one 0.1° cone every 100 ms on a connection of its own.
    Probe,
    /// The final check of every ledger entry.
    Verify,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 12] = [
        Kind::TapCone,
        Kind::Scs,
        Kind::TapSchema,
        Kind::Download,
        Kind::Async,
        Kind::VoPut,
        Kind::VoGet,
        Kind::VoDelete,
        Kind::Preview,
        Kind::Heavy,
        Kind::Probe,
        Kind::Verify,
    ];

    /// Short id (JSON keys, `--weights`).
    pub fn id(self) -> &'static str {
        match self {
            Kind::TapCone => "tap_cone",
            Kind::Scs => "scs",
            Kind::TapSchema => "tap_schema",
            Kind::Download => "download",
            Kind::Async => "async",
            Kind::VoPut => "vospace_put",
            Kind::VoGet => "vospace_get",
            Kind::VoDelete => "vospace_delete",
            Kind::Preview => "preview",
            Kind::Heavy => "heavy",
            Kind::Probe => "probe",
            Kind::Verify => "verify",
        }
    }
}

/// How a request failed below HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// The client's timeout passed.
    Timeout,
    /// No connection (refused, unreachable, connect timeout).
    Connect,
    /// The connection was reset or closed under a request or response.
    Reset,
    /// Anything else.
    Other,
}

/// How an operation ended.
#[derive(Debug)]
pub enum Outcome {
    /// As expected.
    Ok,
    /// HTTP 503 (with the Retry-After seconds, when given).
    Busy(Option<f64>),
    /// Another status than the expected one (status, start of the body).
    Status(u16, String),
    /// Below HTTP.
    Net(Net, String),
    /// A success response whose content is wrong: MD5 mismatch, lost object, broken VOTable.
    Wrong(String),
    /// A VOTable with QUERY_STATUS ERROR, or an async job that ended in ERROR or ABORTED.
    QueryError(String),
    /// HTTP 200 with QUERY_STATUS ERROR saying the service is busy: a refusal, but not the
    /// documented 503 + Retry-After.
    BusyIn200(String),
}

/// The HTTP exchanges of one operation.
pub struct Op {
    /// When it started.
    pub t0: Instant,
    /// Every response's status, and whether it had a Retry-After header.
    pub statuses: Vec<(u16, bool)>,
    /// Body bytes sent and received.
    pub bytes: u64,
}

impl Op {
    /// A new operation, starting now.
    pub fn start() -> Op {
        Op {
            t0: Instant::now(),
            statuses: Vec::with_capacity(2),
            bytes: 0,
        }
    }
}

/// The counts of one kind.
#[derive(Default)]
pub struct KindStats {
    /// Operations ended.
    pub ops: u64,
    /// Operations that succeeded.
    pub ok: u64,
    /// Latency (ms) of the successful operations.
    pub lat_ok: Vec<f32>,
    /// Latency (ms) of every operation that got an HTTP answer.
    pub lat_all: Vec<f32>,
    /// Every HTTP response's status.
    pub statuses: BTreeMap<u16, u64>,
    /// 503 responses...
    pub r503: u64,
    /// ...of which with a Retry-After header.
    pub r503_retry_after: u64,
    /// Responses with a 5xx status other than 503.
    pub r5xx: u64,
    /// Operations ended by a 503.
    pub ended_busy: u64,
    /// Operations ended by another unexpected status.
    pub ended_status: u64,
    /// Client timeouts.
    pub timeouts: u64,
    /// Connections reset or closed under a request.
    pub resets: u64,
    /// Connections that could not be made.
    pub connect_errors: u64,
    /// Other errors below HTTP.
    pub other_errors: u64,
    /// Wrong answers.
    pub wrong: u64,
    /// QUERY_STATUS ERROR, or jobs that ended in ERROR/ABORTED.
    pub query_errors: u64,
    /// "Busy" refusals that came as HTTP 200 + QUERY_STATUS ERROR.
    pub busy_200: u64,
    /// Body bytes.
    pub bytes: u64,
    /// The first few messages (HTTP statuses, wrong answers, query errors).
    pub samples: Vec<String>,
    /// The first few errors below HTTP.
    pub net_samples: Vec<String>,
}

const SAMPLES: usize = 12;
const NET_SAMPLES: usize = 4;

impl KindStats {
    fn sample(&mut self, s: String) {
        if self.samples.len() < SAMPLES && !self.samples.contains(&s) {
            self.samples.push(s);
        }
    }

    fn net_sample(&mut self, s: String) {
        if self.net_samples.len() < NET_SAMPLES && !self.net_samples.contains(&s) {
            self.net_samples.push(s);
        }
    }

    /// Records one operation.
    pub fn record(&mut self, op: &Op, outcome: &Outcome) {
        let ms = (op.t0.elapsed().as_secs_f64() * 1e3) as f32;
        self.ops += 1;
        self.bytes += op.bytes;
        for &(s, ra) in &op.statuses {
            *self.statuses.entry(s).or_default() += 1;
            if s == 503 {
                self.r503 += 1;
                if ra {
                    self.r503_retry_after += 1;
                }
            } else if s >= 500 {
                self.r5xx += 1;
            }
        }
        match outcome {
            Outcome::Ok => {
                self.ok += 1;
                self.lat_ok.push(ms);
                self.lat_all.push(ms);
            }
            Outcome::Busy(_) => {
                self.ended_busy += 1;
                self.lat_all.push(ms);
            }
            Outcome::Status(s, m) => {
                self.ended_status += 1;
                self.lat_all.push(ms);
                self.sample(format!("HTTP {s}: {m}"));
            }
            Outcome::Net(n, m) => {
                match n {
                    Net::Timeout => self.timeouts += 1,
                    Net::Connect => self.connect_errors += 1,
                    Net::Reset => self.resets += 1,
                    Net::Other => self.other_errors += 1,
                }
                self.net_sample(format!("{n:?}: {m}"));
            }
            Outcome::Wrong(m) => {
                self.wrong += 1;
                self.lat_all.push(ms);
                self.sample(format!("WRONG: {m}"));
            }
            Outcome::QueryError(m) => {
                self.query_errors += 1;
                self.lat_all.push(ms);
                self.sample(format!("query error: {m}"));
            }
            Outcome::BusyIn200(m) => {
                self.busy_200 += 1;
                self.lat_all.push(ms);
                self.sample(format!("busy, but HTTP 200: {m}"));
            }
        }
    }

    /// Connection-level errors (not timeouts).
    pub fn conn_errors(&self) -> u64 {
        self.resets + self.connect_errors + self.other_errors
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        let lat = |v: &[f32]| {
            let s = sorted(v);
            json!({
                "n": s.len(),
                "p50": pct(&s, 50.0), "p90": pct(&s, 90.0), "p99": pct(&s, 99.0),
                "max": s.last().copied(),
            })
        };
        json!({
            "ops": self.ops,
            "ok": self.ok,
            "latency_ms_ok": lat(&self.lat_ok),
            "latency_ms_answered": lat(&self.lat_all),
            "statuses": self.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "responses_503": self.r503,
            "responses_503_with_retry_after": self.r503_retry_after,
            "responses_5xx_other": self.r5xx,
            "ended_by_503": self.ended_busy,
            "ended_by_other_status": self.ended_status,
            "timeouts": self.timeouts,
            "connection_resets": self.resets,
            "connect_errors": self.connect_errors,
            "other_errors": self.other_errors,
            "wrong_answers": self.wrong,
            "query_errors": self.query_errors,
            "busy_refusals_as_http_200": self.busy_200,
            "bytes": self.bytes,
            "samples": self.samples,
            "connection_error_samples": self.net_samples,
        })
    }
}

/// A sorted copy.
pub fn sorted(v: &[f32]) -> Vec<f32> {
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    s
}

/// Nearest-rank percentile of sorted values (None when empty).
pub fn pct(sorted: &[f32], p: f64) -> Option<f32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Counters for the per-second timeline (cheap, lock-free).
#[derive(Default)]
pub struct Live {
    /// Operations ended.
    pub ops: AtomicU64,
    /// Operations that succeeded.
    pub ok: AtomicU64,
    /// 503 responses.
    pub r503: AtomicU64,
    /// Other 5xx responses.
    pub r5xx: AtomicU64,
    /// Errors below HTTP (timeouts included).
    pub net: AtomicU64,
    /// Wrong answers.
    pub wrong: AtomicU64,
}

/// Everything counted, shared by the clients.
#[derive(Default)]
pub struct Stats {
    kinds: Mutex<BTreeMap<Kind, KindStats>>,
    /// For the timeline.
    pub live: Live,
}

impl Stats {
    /// Records one operation.
    pub fn record(&self, kind: Kind, op: &Op, outcome: &Outcome) {
        let l = &self.live;
        l.ops.fetch_add(1, Ordering::Relaxed);
        for &(s, _) in &op.statuses {
            if s == 503 {
                l.r503.fetch_add(1, Ordering::Relaxed);
            } else if s >= 500 {
                l.r5xx.fetch_add(1, Ordering::Relaxed);
            }
        }
        match outcome {
            Outcome::Ok => {
                l.ok.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Net(..) => {
                l.net.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Wrong(_) => {
                l.wrong.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let mut k = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        k.entry(kind).or_default().record(op, outcome);
    }

    /// Puts a separately counted kind (the probe's) in.
    pub fn insert(&self, kind: Kind, s: KindStats) {
        let mut k = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        k.insert(kind, s);
    }

    /// Takes everything out.
    pub fn take(&self) -> BTreeMap<Kind, KindStats> {
        std::mem::take(&mut *self.kinds.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f32> = (1..=100).map(|x| x as f32).collect();
        let s = sorted(&v);
        assert_eq!(pct(&s, 50.0), Some(50.0));
        assert_eq!(pct(&s, 90.0), Some(90.0));
        assert_eq!(pct(&s, 99.0), Some(99.0));
        assert_eq!(pct(&s, 100.0), Some(100.0));
        assert_eq!(pct(&[7.0], 99.0), Some(7.0));
        assert_eq!(pct(&[], 50.0), None);
    }

    #[test]
    fn records() {
        let mut k = KindStats::default();
        let mut op = Op::start();
        op.statuses = vec![(303, false), (503, true)];
        k.record(&op, &Outcome::Busy(Some(1.0)));
        let mut op = Op::start();
        op.statuses = vec![(500, false)];
        k.record(&op, &Outcome::Status(500, "boom".into()));
        k.record(&Op::start(), &Outcome::Net(Net::Reset, "reset".into()));
        assert_eq!(
            (k.ops, k.ok, k.r503, k.r503_retry_after, k.r5xx),
            (3, 0, 1, 1, 1)
        );
        assert_eq!((k.ended_busy, k.ended_status, k.resets), (1, 1, 1));
        assert_eq!(k.statuses.get(&503), Some(&1));
        assert_eq!(k.lat_all.len(), 2);
        assert_eq!(k.conn_errors(), 1);
    }
}
