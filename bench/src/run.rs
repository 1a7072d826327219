//! `run`: the workloads against vostok (HTTP) and PostgreSQL (the SQL DaCHS sends), with every
//! response checked against brute-force counts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};

use crate::catalog::Catalog;
use crate::mem::{self, Peaks, Sampler};
use crate::pg::{self, Conn, ConnInfo};
use crate::report;
use crate::sky::{Rng, SkyIndex};

/// Everything `run` needs, from the command line.
pub struct RunConfig {
    /// vostok's base URL, without a trailing slash.
    pub vostok: String,
    /// PostgreSQL connection string (None: vostok only).
    pub pg: Option<String>,
    /// The main catalog folder (gaia.dr3_bright), if the standard workloads run.
    pub catalog: Option<PathBuf>,
    /// Its table name (default: the folder's name).
    pub table: Option<String>,
    /// Where the scale tables' folders are.
    pub catalogs_dir: Option<PathBuf>,
    /// Scale tables (vostok only).
    pub tables: Vec<String>,
    /// vostok's pid, for memory.
    pub vostok_pid: Option<u32>,
    /// `auto` or the postmaster's pid.
    pub pg_pids: Option<String>,
    /// Latency phase: at most this many requests...
    pub requests: usize,
    /// ...and at most this long, per workload and target.
    pub seconds: f64,
    /// Throughput phase: this long per concurrency level.
    pub throughput_seconds: f64,
    /// Concurrency levels.
    pub concurrency: Vec<usize>,
    /// Unmeasured (but checked) requests before the latency phase.
    pub warmup: usize,
    /// Cone centres per workload (reused cyclically).
    pub pool: usize,
    /// Seed of the cone centres.
    pub seed: u64,
    /// TAP cone radii (degrees).
    pub radii: Vec<f64>,
    /// SCS radius (degrees).
    pub scs_radius: f64,
    /// Rows of the download workload.
    pub download_rows: u64,
    /// Edge tolerance of the brute-force check (degrees).
    pub tolerance: f64,
    /// Scale cones: R = r0 * sqrt(n0 / N)...
    pub scale_r0: f64,
    /// ...with this reference row count.
    pub scale_n0: f64,
    /// Scale cones: also this fixed radius.
    pub scale_fixed_r: f64,
    /// Workload ids to run (prefixes); empty = all.
    pub only: Vec<String>,
    /// Outputs.
    pub json: Option<PathBuf>,
    /// Markdown output.
    pub markdown: Option<PathBuf>,
    /// Worker threads of the client runtime (reported).
    pub client_threads: usize,
}

/// What a workload does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// TAP sync `SELECT *` in a CONTAINS cone, TABLEDATA.
    TapCone,
    /// Simple Cone Search.
    Scs,
    /// COUNT/AVG/MIN/MAX over the whole table.
    Agg,
    /// `SELECT TOP n *` as BINARY2.
    Download,
    /// `SELECT COUNT(*) ... WHERE phot_g_mean_mag < 12` (scale tables).
    Scan,
    /// `COUNT(*)` of a positional crossmatch of every Hipparcos star with the table
    /// (the join the crossmatch rule plans on HEALPix cells).
    Xmatch,
}

/// The crossmatch workload's radius (degrees): 3 arcseconds.
const XMATCH_R: f64 = 3.0 / 3600.0;

/// A cone centre and the brute-force count range for it.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// Centre (degrees).
    pub ra: f64,
    /// Centre (degrees).
    pub dec: f64,
    /// Fewest correct rows.
    pub lo: u64,
    /// Most correct rows.
    pub hi: u64,
}

/// One workload.
pub struct Case {
    /// Short id (`tap_cone_r0.5`).
    pub id: String,
    /// Human label.
    pub label: String,
    /// What it does.
    pub kind: Kind,
    /// `schema.table` (validated).
    pub table: String,
    /// Cone radius (degrees; cones only).
    pub r: f64,
    /// Cone centres (cones only).
    pub probes: Vec<Probe>,
    /// Agg, Scan: the expected COUNT; Download: the expected rows; Xmatch: the fewest
    /// correct matches.
    pub expect: u64,
    /// Xmatch: the most correct matches (pairs within the tolerance of the radius may be
    /// counted either way); else `expect`.
    pub expect_hi: u64,
    /// Rows in the table.
    pub table_rows: u64,
    /// Whether PostgreSQL runs it too.
    pub with_pg: bool,
    /// Whether it belongs to the scale part.
    pub scale: bool,
}

impl Case {
    fn probe(&self, i: usize) -> &Probe {
        &self.probes[i % self.probes.len()]
    }

    /// The ADQL vostok runs, and its RESPONSEFORMAT.
    fn adql(&self, i: usize) -> (String, Option<&'static str>) {
        let t = &self.table;
        match self.kind {
            Kind::TapCone | Kind::Scs => {
                let p = self.probe(i);
                (
                    format!(
                        "SELECT * FROM {t} WHERE 1=CONTAINS(POINT('ICRS',ra,dec),CIRCLE('ICRS',{},{},{}))",
                        p.ra, p.dec, self.r
                    ),
                    None,
                )
            }
            Kind::Agg => (
                format!("SELECT COUNT(*), AVG(phot_g_mean_mag), MIN(phot_g_mean_mag), MAX(phot_g_mean_mag) FROM {t}"),
                None,
            ),
            Kind::Download => (
                format!("SELECT TOP {} * FROM {t}", self.expect),
                Some("votable/b2"),
            ),
            Kind::Scan => (
                format!("SELECT COUNT(*) FROM {t} WHERE phot_g_mean_mag < 12"),
                None,
            ),
            Kind::Xmatch => (
                format!(
                    "SELECT COUNT(*) FROM hipparcos.hip2 AS h JOIN {t} AS g ON \
                     1=CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', h.ra, h.dec, {XMATCH_R}))"
                ),
                None,
            ),
        }
    }

    /// The SQL (with parameters) PostgreSQL runs, and the parameter types.
    fn pg_sql(&self, qtable: &str) -> (String, Vec<u32>) {
        match self.kind {
            // What DaCHS emits for ADQL CONTAINS(POINT, CIRCLE) with pgSphere.
            Kind::TapCone => (
                format!("SELECT * FROM {qtable} WHERE spoint(radians(ra), radians(dec)) @ scircle(spoint(radians($1), radians($2)), radians($3))"),
                vec![pg::FLOAT8; 3],
            ),
            // DaCHS's SCS core on a q3c-indexed table.
            Kind::Scs => (
                format!("SELECT * FROM {qtable} WHERE q3c_radial_query(ra, dec, $1, $2, $3)"),
                vec![pg::FLOAT8; 3],
            ),
            Kind::Agg => (
                format!("SELECT COUNT(*), AVG(phot_g_mean_mag), MIN(phot_g_mean_mag), MAX(phot_g_mean_mag) FROM {qtable}"),
                vec![],
            ),
            Kind::Download => (format!("SELECT * FROM {qtable} LIMIT $1"), vec![pg::INT8]),
            Kind::Scan => (
                format!("SELECT COUNT(*) FROM {qtable} WHERE phot_g_mean_mag < 12"),
                vec![],
            ),
            // DaCHS's crossmatch on q3c-indexed tables (needs hipparcos.hip2 in PostgreSQL,
            // which pg-load does not load: the workload runs against vostok only).
            Kind::Xmatch => (
                format!("SELECT COUNT(*) FROM hipparcos.hip2 AS h JOIN {qtable} AS g ON q3c_join(h.ra, h.dec, g.ra, g.dec, $1)"),
                vec![pg::FLOAT8],
            ),
        }
    }

    /// Binary parameter values for request `i`.
    fn pg_params(&self, i: usize) -> Vec<Vec<u8>> {
        match self.kind {
            Kind::TapCone | Kind::Scs => {
                let p = self.probe(i);
                [p.ra, p.dec, self.r]
                    .iter()
                    .map(|v| v.to_be_bytes().to_vec())
                    .collect()
            }
            Kind::Download => vec![(self.expect as i64).to_be_bytes().to_vec()],
            Kind::Xmatch => vec![XMATCH_R.to_be_bytes().to_vec()],
            Kind::Agg | Kind::Scan => vec![],
        }
    }

    /// Checks a result: its row count, and for Agg/Scan the COUNT in the first cell.
    fn check(&self, i: usize, rows: u64, first: Option<i64>) -> Result<(), String> {
        match self.kind {
            Kind::TapCone | Kind::Scs => {
                let p = self.probe(i);
                if rows < p.lo || rows > p.hi {
                    let want = if p.lo == p.hi {
                        p.lo.to_string()
                    } else {
                        format!("{}..={}", p.lo, p.hi)
                    };
                    return Err(format!(
                        "{rows} rows, brute force says {want} (ra={}, dec={}, r={})",
                        p.ra, p.dec, self.r
                    ));
                }
            }
            Kind::Download => {
                if rows != self.expect {
                    return Err(format!("{rows} rows, expected {}", self.expect));
                }
            }
            Kind::Agg | Kind::Scan | Kind::Xmatch => {
                if rows != 1 {
                    return Err(format!("{rows} rows, expected 1"));
                }
                let ok =
                    first.is_some_and(|n| n >= self.expect as i64 && n <= self.expect_hi as i64);
                if !ok {
                    let want = if self.expect == self.expect_hi {
                        self.expect.to_string()
                    } else {
                        format!("{}..={}", self.expect, self.expect_hi)
                    };
                    return Err(format!("COUNT = {first:?}, expected {want}"));
                }
            }
        }
        Ok(())
    }
}

/// One request's outcome.
#[derive(Debug, Default)]
struct Outcome {
    /// Send to last body byte (vostok) / last row decoded (PostgreSQL).
    latency: Duration,
    /// vostok: VOTable parsing for the check, after `latency`.
    decode: Duration,
    /// Response body bytes (vostok) / DataRow bytes (PostgreSQL).
    bytes: u64,
    rows: u64,
    error: Option<String>,
}

/// The vostok side.
pub struct Vostok {
    client: reqwest::Client,
    base: String,
}

/// The PostgreSQL side.
pub struct Postgres {
    ci: ConnInfo,
}

#[derive(Clone)]
enum Target {
    Vostok(Arc<Vostok>),
    Pg(Arc<Postgres>),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Vostok(_) => "vostok",
            Target::Pg(_) => "postgres",
        }
    }
}

enum Session {
    Vostok(Arc<Vostok>),
    Pg { conn: Conn, types: Vec<u32> },
}

impl Session {
    async fn open(t: &Target, case: &Case) -> Result<Session> {
        Ok(match t {
            Target::Vostok(v) => Session::Vostok(v.clone()),
            Target::Pg(p) => {
                let mut conn = Conn::connect(&p.ci).await?;
                let qtable = pg::quoted_table(&case.table)?;
                let (sql, types) = case.pg_sql(&qtable);
                let cols = conn.prepare("q", &sql, &types).await?;
                Session::Pg {
                    conn,
                    types: cols.iter().map(|c| c.type_oid).collect(),
                }
            }
        })
    }

    async fn close(self) {
        if let Session::Pg { conn, .. } = self {
            conn.close().await;
        }
    }

    async fn request(&mut self, case: &Case, i: usize) -> Outcome {
        match self {
            Session::Vostok(v) => vostok_request(v, case, i).await,
            Session::Pg { conn, types } => pg_request(conn, types, case, i).await,
        }
    }
}

async fn vostok_request(v: &Vostok, case: &Case, i: usize) -> Outcome {
    let t0 = Instant::now();
    let req = if case.kind == Kind::Scs {
        let p = case.probe(i);
        v.client
            .get(format!("{}/scs/{}", v.base, case.table))
            .query(&[
                ("RA", p.ra.to_string()),
                ("DEC", p.dec.to_string()),
                ("SR", case.r.to_string()),
            ])
    } else {
        let (q, fmt) = case.adql(i);
        let mut form = vec![
            ("REQUEST", "doQuery"),
            ("LANG", "ADQL"),
            ("QUERY", q.as_str()),
        ];
        if let Some(f) = fmt {
            form.push(("RESPONSEFORMAT", f));
        }
        v.client.post(format!("{}/tap/sync", v.base)).form(&form)
    };
    let mut o = Outcome::default();
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            o.latency = t0.elapsed();
            o.error = Some(format!("HTTP request failed: {e}"));
            return o;
        }
    };
    let status = resp.status();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            o.latency = t0.elapsed();
            o.error = Some(format!("reading the body failed: {e}"));
            return o;
        }
    };
    o.latency = t0.elapsed();
    o.bytes = body.len() as u64;
    let t1 = Instant::now();
    match check_votable(case, i, status.as_u16(), &body) {
        Ok(rows) => o.rows = rows,
        Err(e) => o.error = Some(e),
    }
    o.decode = t1.elapsed();
    o
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every `INFO name="QUERY_STATUS"` of a VOTable: (value, content).
pub fn query_statuses(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (pos, _) in text.match_indices("\"QUERY_STATUS\"") {
        let Some(start) = text[..pos].rfind('<') else {
            continue;
        };
        let Some(end) = text[pos..].find('>').map(|e| pos + e) else {
            continue;
        };
        let tag = &text[start..end];
        if !tag.starts_with("<INFO") {
            continue;
        }
        let value = tag
            .find("value=\"")
            .map(|v| &tag[v + 7..])
            .and_then(|v| v.find('"').map(|e| v[..e].to_string()))
            .unwrap_or_default();
        let content = if tag.ends_with('/') {
            String::new()
        } else {
            text[end + 1..]
                .find("</INFO>")
                .map(|e| text[end + 1..end + 1 + e].trim().to_string())
                .unwrap_or_default()
        };
        out.push((value, content));
    }
    out
}

/// Checks a vostok response: HTTP 200, QUERY_STATUS OK only, a VOTable that parses, the right
/// row count. Returns the rows.
fn check_votable(case: &Case, i: usize, status: u16, body: &[u8]) -> Result<u64, String> {
    if status != 200 {
        return Err(format!("HTTP {status}: {}", snippet(body)));
    }
    let text = std::str::from_utf8(body).map_err(|e| format!("the response is not UTF-8: {e}"))?;
    let statuses = query_statuses(text);
    if statuses.is_empty() {
        return Err(format!("no QUERY_STATUS INFO: {}", snippet(body)));
    }
    if let Some((v, m)) = statuses.iter().find(|(v, _)| v != "OK") {
        return Err(format!("QUERY_STATUS {v}: {m}"));
    }
    let (_, batches) =
        votable::read(body).map_err(|e| format!("the VOTable does not parse: {e}"))?;
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let first = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| cast(b.column(0), &DataType::Int64).ok())
        .and_then(|c| {
            let c = c.as_primitive::<Int64Type>();
            (!c.is_null(0)).then(|| c.value(0))
        });
    case.check(i, rows, first)?;
    Ok(rows)
}

/// Decodes every field of a binary DataRow into its Rust value (as a client library does);
/// folds the values into `sink` so that the work is not optimised away.
fn decode_row(row: &[u8], types: &[u32], sink: &mut f64, first: &mut Option<i64>) -> Result<()> {
    let fixed = |v: &[u8], n: usize| -> Result<()> {
        if v.len() != n {
            bail!("a value of {} bytes where {n} were expected", v.len());
        }
        Ok(())
    };
    for (k, f) in pg::fields(row).enumerate() {
        let Some(v) = f else { continue };
        let t = types.get(k).copied().unwrap_or(0);
        let x = match t {
            pg::INT8 => {
                fixed(v, 8)?;
                let n = i64::from_be_bytes(v.try_into()?);
                if k == 0 && first.is_none() {
                    *first = Some(n);
                }
                n as f64
            }
            pg::INT4 => {
                fixed(v, 4)?;
                i32::from_be_bytes(v.try_into()?) as f64
            }
            pg::INT2 => {
                fixed(v, 2)?;
                i16::from_be_bytes(v.try_into()?) as f64
            }
            pg::FLOAT8 => {
                fixed(v, 8)?;
                f64::from_be_bytes(v.try_into()?)
            }
            pg::FLOAT4 => {
                fixed(v, 4)?;
                f32::from_be_bytes(v.try_into()?) as f64
            }
            pg::BOOL => {
                fixed(v, 1)?;
                v[0] as f64
            }
            pg::TEXT | pg::VARCHAR => std::str::from_utf8(v)?.len() as f64,
            _ => v.len() as f64,
        };
        if x.is_finite() {
            *sink += x;
        }
    }
    Ok(())
}

async fn pg_request(conn: &mut Conn, types: &[u32], case: &Case, i: usize) -> Outcome {
    let params = case.pg_params(i);
    let refs: Vec<Option<&[u8]>> = params.iter().map(|p| Some(p.as_slice())).collect();
    let mut sink = 0.0f64;
    let mut first = None;
    let t0 = Instant::now();
    let res = conn
        .query("q", &refs, |row| {
            decode_row(row, types, &mut sink, &mut first)
        })
        .await;
    let mut o = Outcome {
        latency: t0.elapsed(),
        ..Default::default()
    };
    std::hint::black_box(sink);
    match res {
        Ok(st) => {
            o.rows = st.rows;
            o.bytes = st.bytes;
            if let Err(e) = case.check(i, st.rows, first) {
                o.error = Some(e);
            }
        }
        Err(e) => o.error = Some(format!("{e:#}")),
    }
    o
}

/// Latency-phase statistics.
#[derive(Clone, Debug, Default)]
pub struct Latency {
    /// Requests measured.
    pub n: usize,
    /// Percentiles (ms, nearest rank).
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean (ms).
    pub mean: f64,
    /// Fastest (ms).
    pub min: f64,
    /// Slowest (ms).
    pub max: f64,
    /// Mean rows per request.
    pub rows_mean: f64,
    /// Mean bytes per request.
    pub bytes_mean: f64,
    /// vostok: mean VOTable parse time for the check (ms), not part of the latency.
    pub decode_mean: f64,
}

/// Throughput at one concurrency.
#[derive(Clone, Debug, Default)]
pub struct Throughput {
    /// Concurrent requests.
    pub concurrency: usize,
    /// Completed requests.
    pub n: u64,
    /// Wall time (s), until the last request in flight ended.
    pub elapsed: f64,
    /// Requests per second.
    pub req_s: f64,
    /// Bytes per second.
    pub bytes_s: f64,
    /// Rows per second.
    pub rows_s: f64,
}

/// One target's results on one workload.
#[derive(Clone, Debug, Default)]
pub struct TargetResult {
    /// Latency phase.
    pub latency: Latency,
    /// Throughput phase, per concurrency.
    pub throughput: Vec<Throughput>,
    /// Failed responses (all phases, warm-up included).
    pub failures: u64,
    /// Memory peaks during this target's phases.
    pub mem: Peaks,
}

/// One workload's results.
pub struct CaseResult {
    /// The workload.
    pub case: Arc<Case>,
    /// vostok.
    pub vostok: Option<TargetResult>,
    /// PostgreSQL.
    pub pg: Option<TargetResult>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Failures {
    list: std::sync::Mutex<Vec<String>>,
}

impl Failures {
    fn record(&self, case: &Case, target: &str, phase: &str, i: usize, msg: &str) {
        let line = format!("{} / {target} / {phase} / request {i}: {msg}", case.id);
        if let Ok(mut l) = self.list.lock() {
            if l.len() < 20 {
                eprintln!("FAILED: {line}");
            }
            l.push(line);
        }
    }
}

async fn measure(
    target: &Target,
    case: &Arc<Case>,
    cfg: &RunConfig,
    failures: &Arc<Failures>,
    sampler: &Sampler,
) -> Result<TargetResult> {
    let tname = target.name();
    let mut res = TargetResult::default();
    sampler.take_window();

    // Latency: sequential, after a checked warm-up.
    let mut s = Session::open(target, case)
        .await
        .with_context(|| format!("{}: opening a {tname} session", case.id))?;
    let pool = case.probes.len().max(1);
    for w in 0..cfg.warmup {
        let i = pool - 1 - (w % pool);
        let o = s.request(case, i).await;
        if let Some(e) = &o.error {
            res.failures += 1;
            failures.record(case, tname, "warm-up", i, e);
        }
    }
    let start = Instant::now();
    let budget = Duration::from_secs_f64(cfg.seconds);
    let mut lat = Vec::new();
    let (mut rows, mut bytes, mut decode) = (0u64, 0u64, 0f64);
    let mut i = 0;
    while i < cfg.requests && (i == 0 || start.elapsed() < budget) {
        let o = s.request(case, i).await;
        if let Some(e) = &o.error {
            res.failures += 1;
            failures.record(case, tname, "latency", i, e);
        }
        lat.push(o.latency.as_secs_f64() * 1e3);
        rows += o.rows;
        bytes += o.bytes;
        decode += o.decode.as_secs_f64() * 1e3;
        i += 1;
    }
    s.close().await;
    let n = lat.len();
    let mean = lat.iter().sum::<f64>() / n as f64;
    lat.sort_by(|a, b| a.total_cmp(b));
    res.latency = Latency {
        n,
        p50: percentile(&lat, 50.0),
        p95: percentile(&lat, 95.0),
        p99: percentile(&lat, 99.0),
        mean,
        min: lat[0],
        max: lat[n - 1],
        rows_mean: rows as f64 / n as f64,
        bytes_mean: bytes as f64 / n as f64,
        decode_mean: decode / n as f64,
    };
    eprintln!(
        "  {tname:8} latency: {n} requests, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, {:.1} rows/request",
        res.latency.p50, res.latency.p95, res.latency.p99, res.latency.rows_mean
    );

    // Throughput: c sessions sharing the work for a fixed time.
    for &c in &cfg.concurrency {
        let mut sessions = Vec::with_capacity(c);
        for _ in 0..c {
            sessions.push(Session::open(target, case).await?);
        }
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(cfg.throughput_seconds);
        let mut handles = Vec::with_capacity(c);
        for mut s in sessions {
            let (case, next, failures) = (case.clone(), next.clone(), failures.clone());
            handles.push(tokio::spawn(async move {
                let (mut n, mut rows, mut bytes, mut failed) = (0u64, 0u64, 0u64, 0u64);
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let o = s.request(&case, i).await;
                    if let Some(e) = &o.error {
                        failed += 1;
                        failures.record(&case, tname, &format!("throughput c={c}"), i, e);
                    }
                    n += 1;
                    rows += o.rows;
                    bytes += o.bytes;
                }
                s.close().await;
                (n, rows, bytes, failed)
            }));
        }
        let (mut n, mut rows, mut bytes) = (0u64, 0u64, 0u64);
        for h in handles {
            let (a, b, cb, f) = h.await.map_err(|e| anyhow!("a load task failed: {e}"))?;
            n += a;
            rows += b;
            bytes += cb;
            res.failures += f;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let t = Throughput {
            concurrency: c,
            n,
            elapsed,
            req_s: n as f64 / elapsed,
            bytes_s: bytes as f64 / elapsed,
            rows_s: rows as f64 / elapsed,
        };
        eprintln!(
            "  {tname:8} c={c:<3} {} requests in {:.1} s: {:.1} req/s, {:.2} MB/s",
            t.n,
            t.elapsed,
            t.req_s,
            t.bytes_s / 1e6
        );
        res.throughput.push(t);
    }
    res.mem = sampler.take_window();
    Ok(res)
}

fn probes(idx: &SkyIndex, seed: u64, pool: usize, r: f64, tol: f64) -> Vec<Probe> {
    let mut rng = Rng::new(seed);
    (0..pool)
        .map(|_| {
            let (ra, dec) = rng.sky_point();
            let e = idx.count(ra, dec, r, tol);
            Probe {
                ra,
                dec,
                lo: e.definite,
                hi: e.definite + e.ambiguous,
            }
        })
        .collect()
}

fn fmt_r(r: f64) -> String {
    let s = format!("{r:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn wanted(cfg: &RunConfig, id: &str) -> bool {
    cfg.only.is_empty() || cfg.only.iter().any(|o| id.starts_with(o.as_str()))
}

/// Builds the workloads (loading each catalog's positions once, then dropping them).
fn build_cases(cfg: &RunConfig) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    if let Some(dir) = &cfg.catalog {
        let table = match &cfg.table {
            Some(t) => t.clone(),
            None => dir
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("cannot take a table name from {}", dir.display()))?
                .to_string(),
        };
        pg::split_table_name(&table)?;
        let cat = Catalog::open(dir)?;
        let n = cat.num_rows()?;
        let t = Instant::now();
        let idx = SkyIndex::load(&cat)?;
        eprintln!(
            "brute force: {} positions of {table} loaded in {:.1} s",
            idx.len(),
            t.elapsed().as_secs_f64()
        );
        let with_pg = cfg.pg.is_some();
        for &r in &cfg.radii {
            let id = format!("tap_cone_r{}", fmt_r(r));
            if wanted(cfg, &id) {
                cases.push(Case {
                    label: format!("TAP cone R={}° (TABLEDATA)", fmt_r(r)),
                    id,
                    kind: Kind::TapCone,
                    table: table.clone(),
                    r,
                    probes: probes(&idx, cfg.seed, cfg.pool, r, cfg.tolerance),
                    expect: 0,
                    expect_hi: 0,
                    table_rows: n,
                    with_pg,
                    scale: false,
                });
            }
        }
        let id = format!("scs_r{}", fmt_r(cfg.scs_radius));
        if wanted(cfg, &id) {
            cases.push(Case {
                label: format!("SCS R={}°", fmt_r(cfg.scs_radius)),
                id,
                kind: Kind::Scs,
                table: table.clone(),
                r: cfg.scs_radius,
                probes: probes(
                    &idx,
                    cfg.seed ^ 0x5C5,
                    cfg.pool,
                    cfg.scs_radius,
                    cfg.tolerance,
                ),
                expect: 0,
                expect_hi: 0,
                table_rows: n,
                with_pg,
                scale: false,
            });
        }
        if wanted(cfg, "agg") {
            cases.push(Case {
                id: "agg".into(),
                label: "full-scan COUNT/AVG/MIN/MAX".into(),
                kind: Kind::Agg,
                table: table.clone(),
                r: 0.0,
                probes: vec![],
                expect: n,
                expect_hi: n,
                table_rows: n,
                with_pg,
                scale: false,
            });
        }
        let id = format!("download_{}", cfg.download_rows);
        if wanted(cfg, &id) {
            if cfg.download_rows > n {
                bail!(
                    "--download-rows {} is more than the table's {n} rows",
                    cfg.download_rows
                );
            }
            cases.push(Case {
                id,
                label: format!("{} rows, BINARY2", cfg.download_rows),
                kind: Kind::Download,
                table: table.clone(),
                r: 0.0,
                probes: vec![],
                expect: cfg.download_rows,
                expect_hi: cfg.download_rows,
                table_rows: n,
                with_pg,
                scale: false,
            });
        }
        if wanted(cfg, "xmatch") {
            // Every Hipparcos star against the table: the brute-force count of pairs within
            // XMATCH_R, each star's a cone of the table's index.
            let hip_dir = cfg
                .catalogs_dir
                .clone()
                .ok_or_else(|| anyhow!("the xmatch workload needs --catalogs-dir"))?
                .join("hipparcos.hip2");
            let hip = SkyIndex::load(&Catalog::open(&hip_dir)?)?;
            let t = Instant::now();
            let (mut lo, mut hi) = (0u64, 0u64);
            for (ra, dec) in hip.positions() {
                let e = idx.count(ra, dec, XMATCH_R, cfg.tolerance);
                lo += e.definite;
                hi += e.definite + e.ambiguous;
            }
            eprintln!(
                "brute force: {} Hipparcos stars matched against {table} in {:.1} s",
                hip.len(),
                t.elapsed().as_secs_f64()
            );
            cases.push(Case {
                id: "xmatch".into(),
                label: format!("crossmatch hipparcos.hip2 × {table} (3\", COUNT)"),
                kind: Kind::Xmatch,
                table: table.clone(),
                r: XMATCH_R,
                probes: vec![],
                expect: lo,
                expect_hi: hi,
                table_rows: n,
                with_pg: false,
                scale: false,
            });
        }
    }
    if !cfg.tables.is_empty() {
        let root = cfg.catalogs_dir.clone().ok_or_else(|| {
            anyhow!("--tables needs --catalogs-dir (or --catalog, whose parent is used)")
        })?;
        for table in &cfg.tables {
            pg::split_table_name(table)?;
            let cat = Catalog::open(&root.join(table))?;
            let n = cat.num_rows()?;
            let t = Instant::now();
            let idx = SkyIndex::load(&cat)?;
            eprintln!(
                "brute force: {} positions of {table} loaded in {:.1} s",
                idx.len(),
                t.elapsed().as_secs_f64()
            );
            let scaled = cfg.scale_r0 * (cfg.scale_n0 / n.max(1) as f64).sqrt();
            let mut radii = vec![scaled];
            if (scaled - cfg.scale_fixed_r).abs() > 1e-12 {
                radii.push(cfg.scale_fixed_r);
            }
            for r in radii {
                let id = format!("{table}:cone_r{}", fmt_r(r));
                if !wanted(cfg, "scale") && !wanted(cfg, &id) {
                    continue;
                }
                let how = if r == scaled { "scaled" } else { "fixed" };
                cases.push(Case {
                    label: format!("{table}: TAP cone R={}° ({how})", fmt_r(r)),
                    id,
                    kind: Kind::TapCone,
                    table: table.clone(),
                    r,
                    probes: probes(&idx, cfg.seed, cfg.pool, r, cfg.tolerance),
                    expect: 0,
                    expect_hi: 0,
                    table_rows: n,
                    with_pg: false,
                    scale: true,
                });
            }
            let id = format!("{table}:scan");
            match idx.bright_rows {
                Some(bright) if wanted(cfg, "scale") || wanted(cfg, &id) => cases.push(Case {
                    id,
                    label: format!("{table}: COUNT(*) WHERE phot_g_mean_mag < 12"),
                    kind: Kind::Scan,
                    table: table.clone(),
                    r: 0.0,
                    probes: vec![],
                    expect: bright,
                    expect_hi: bright,
                    table_rows: n,
                    with_pg: false,
                    scale: true,
                }),
                Some(_) => {}
                None => eprintln!("{table}: no phot_g_mean_mag column, no scan workload"),
            }
        }
    }
    if cases.is_empty() {
        bail!("no workload selected (give --catalog and/or --tables; check --only)");
    }
    Ok(cases)
}

/// Finds the postmaster: `SHOW data_directory` and its postmaster.pid, or the parent of our
/// backend.
async fn postmaster_pid(ci: &ConnInfo, spec: &str) -> Result<u32> {
    if spec != "auto" {
        return spec
            .parse()
            .map_err(|_| anyhow!("--pg-pids: 'auto' or a pid, not '{spec}'"));
    }
    let mut c = Conn::connect(ci).await?;
    let dir = c.simple_query("SHOW data_directory").await.ok();
    let backend = c.backend_pid as u32;
    c.close().await;
    if let Some(d) = dir
        .and_then(|r| r.first().cloned())
        .and_then(|r| r.first().cloned().flatten())
    {
        if let Ok(text) = std::fs::read_to_string(PathBuf::from(d).join("postmaster.pid")) {
            if let Some(pid) = text.lines().next().and_then(|l| l.trim().parse().ok()) {
                return Ok(pid);
            }
        }
    }
    mem::parent_pid(backend)
        .ok_or_else(|| anyhow!("cannot find the postmaster of backend {backend}"))
}

/// Runs everything; returns whether every response was right.
pub async fn run(cfg: RunConfig) -> Result<bool> {
    let cases: Vec<Arc<Case>> = build_cases(&cfg)?.into_iter().map(Arc::new).collect();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(900))
        .pool_idle_timeout(Duration::from_secs(300))
        .tcp_nodelay(true)
        .build()?;
    let base = cfg.vostok.trim_end_matches('/').to_string();
    let avail = client
        .get(format!("{base}/tap/availability"))
        .send()
        .await
        .with_context(|| format!("vostok is not answering at {base}"))?;
    if !avail.status().is_success() {
        bail!("{base}/tap/availability: HTTP {}", avail.status());
    }
    let vostok = Target::Vostok(Arc::new(Vostok { client, base }));

    let mut pg_target = None;
    let mut pg_info = serde_json::Value::Null;
    let mut pg_pid = None;
    if let Some(conninfo) = &cfg.pg {
        let ci = ConnInfo::parse(conninfo)?;
        let mut c = Conn::connect(&ci).await?;
        let version = c.simple_query("SELECT version()").await?;
        let ext = c
            .simple_query("SELECT string_agg(extname || ' ' || extversion, ', ' ORDER BY extname) FROM pg_extension WHERE extname IN ('pg_sphere', 'q3c')")
            .await?;
        let settings = c
            .simple_query("SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'effective_cache_size', 'max_parallel_workers_per_gather', 'random_page_cost', 'jit', 'fsync', 'synchronous_commit')")
            .await?;
        let cell = |r: &Vec<Vec<Option<String>>>| {
            r.first()
                .and_then(|r| r.first().cloned().flatten())
                .unwrap_or_default()
        };
        // Every PostgreSQL workload's table must exist with the catalog's row count.
        for case in cases.iter().filter(|c| c.with_pg) {
            let q = pg::quoted_table(&case.table)?;
            let n = c
                .simple_query(&format!("SELECT count(*) FROM {q}"))
                .await
                .with_context(|| format!("{q} is not in PostgreSQL: run pg-load first"))?;
            let n: u64 = cell(&n).parse().unwrap_or(0);
            if n != case.table_rows {
                bail!(
                    "{q} in PostgreSQL holds {n} rows, the catalog {}: run pg-load again",
                    case.table_rows
                );
            }
        }
        pg_info = serde_json::json!({
            "version": cell(&version),
            "extensions": cell(&ext),
            "settings": cell(&settings),
        });
        c.close().await;
        if let Some(spec) = &cfg.pg_pids {
            pg_pid = Some(postmaster_pid(&ci, spec).await?);
        }
        pg_target = Some(Target::Pg(Arc::new(Postgres { ci })));
    }

    let sampler = Sampler::start(cfg.vostok_pid, pg_pid);
    let failures = Arc::new(Failures {
        list: std::sync::Mutex::new(Vec::new()),
    });
    let mut results = Vec::new();
    let t_all = Instant::now();
    for case in &cases {
        eprintln!("== {} ({})", case.label, case.id);
        let v = measure(&vostok, case, &cfg, &failures, &sampler).await?;
        let p = match (&pg_target, case.with_pg) {
            (Some(t), true) => Some(measure(t, case, &cfg, &failures, &sampler).await?),
            _ => None,
        };
        results.push(CaseResult {
            case: case.clone(),
            vostok: Some(v),
            pg: p,
        });
    }
    let total_mem = sampler.finish();
    let failures: Vec<String> =
        std::mem::take(&mut *failures.list.lock().unwrap_or_else(|e| e.into_inner()));

    let rep = report::Report {
        cfg: &cfg,
        results: &results,
        mem: total_mem,
        vostok_pid: cfg.vostok_pid,
        pg_pid,
        pg_info,
        failures: &failures,
        wall_seconds: t_all.elapsed().as_secs_f64(),
    };
    let md = rep.markdown();
    println!("{}", rep.terminal());
    if let Some(p) = &cfg.markdown {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = &cfg.json {
        let j = serde_json::to_string_pretty(&rep.json())?;
        std::fs::write(p, j).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if !failures.is_empty() {
        eprintln!("{} FAILED RESPONSES:", failures.len());
        for f in failures.iter().take(50) {
            eprintln!("  {f}");
        }
        if failures.len() > 50 {
            eprintln!(
                "  ... and {} more (all in the JSON output)",
                failures.len() - 50
            );
        }
    }
    Ok(failures.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let doc = r#"<VOTABLE><RESOURCE type="results"><INFO name="QUERY_STATUS" value="OK"/>
<TABLE><DATA/></TABLE><INFO name="QUERY_STATUS" value="ERROR">boom &amp; more</INFO></RESOURCE></VOTABLE>"#;
        let s = query_statuses(doc);
        assert_eq!(
            s,
            vec![
                ("OK".to_string(), String::new()),
                ("ERROR".to_string(), "boom &amp; more".to_string())
            ]
        );
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(|x| x as f64).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
    }

    #[test]
    fn radius_names() {
        assert_eq!(fmt_r(0.1), "0.1");
        assert_eq!(fmt_r(2.0), "2");
        assert_eq!(fmt_r(0.31622776), "0.3162");
    }
}
