//! The operations of the mixed workload, the client loop, and the probe.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::http::{self, Api};
use super::ledger::{FileEntry, FileState, JobEntry, Ledger};
use super::stats::{Kind, KindStats, Net, Op, Outcome, Stats};
use crate::run::query_statuses;
use crate::sky::Rng;

/// What a client does next (one pick may be several operations: VOSpace is PUT, GET, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// TAP sync cone.
    TapCone,
    /// Simple Cone Search.
    Scs,
    /// TAP_SCHEMA.
    TapSchema,
    /// 100k-row BINARY2 download.
    Download,
    /// Async TAP job.
    Async,
    /// VOSpace PUT then GET (and DELETE of the oldest kept file).
    VoSpace,
    /// DataLink preview.
    Preview,
    /// A heavy synchronous query (a cross join, a crossmatch, a full scan sorted).
    Heavy,
}

impl Pick {
    /// Every pick with its `--weights` name.
    pub const NAMES: [(&'static str, Pick); 8] = [
        ("cone", Pick::TapCone),
        ("scs", Pick::Scs),
        ("schema", Pick::TapSchema),
        ("download", Pick::Download),
        ("async", Pick::Async),
        ("vospace", Pick::VoSpace),
        ("preview", Pick::Preview),
        ("heavy", Pick::Heavy),
    ];
}

/// The settings the clients use.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `schema.table` of the cones and the download.
    pub table: String,
    /// TAP cone radius range (degrees).
    pub cone_r: (f64, f64),
    /// SCS radius range (degrees).
    pub scs_r: (f64, f64),
    /// Rows of a download.
    pub download_rows: u64,
    /// Parse (and count the rows of) every n-th download; 0: never.
    pub parse_every: u64,
    /// VOSpace file sizes (bytes), log-uniform.
    pub file_bytes: (u64, u64),
    /// Files a client keeps before deleting its oldest.
    pub keep_files: usize,
    /// VOSpace authority (`vos://AUTHORITY!vospace/...`).
    pub authority: String,
    /// Folder of this run under each user's home.
    pub dir: String,
    /// Async job cone radius (degrees).
    pub async_r: f64,
    /// Longest an async job may take, submission to result.
    pub async_timeout: Duration,
    /// Keep completed jobs (for the ledger) instead of deleting them.
    pub keep_jobs: bool,
    /// The server is being killed and restarted: connection errors are expected, and polls
    /// and checks wait for it to come back.
    pub chaos: bool,
    /// How long to wait for a restarting server.
    pub restart_grace: Duration,
    /// Longest pause after a 503's Retry-After (seconds); 0: do not pause.
    pub retry_cap: f64,
}

/// Shared by every client.
pub struct Ctx {
    /// The server.
    pub api: Api,
    /// Counts.
    pub stats: Stats,
    /// Committed files and completed jobs.
    pub ledger: Mutex<Ledger>,
    /// Settings.
    pub s: Settings,
    /// When the clients stop starting operations.
    pub deadline: Instant,
    /// Cumulative weights.
    pub picks: Vec<(Pick, u32)>,
    /// DataLink IDs that have a preview.
    pub preview_ids: Vec<String>,
    /// Random bytes that files are cut from.
    pub pool: Bytes,
    /// Downloads started (every `parse_every`-th is parsed).
    pub downloads: AtomicU64,
    /// Committed files found with other bytes.
    pub md5_mismatches: AtomicU64,
    /// Committed files found missing.
    pub lost: AtomicU64,
}

impl Ctx {
    fn pick(&self, rng: &mut Rng) -> Option<Pick> {
        let total = self.picks.last()?.1;
        let x = (rng.next_u64() % total as u64) as u32;
        self.picks.iter().find(|(_, c)| x < *c).map(|(p, _)| *p)
    }

    fn token(&self, owner: Option<usize>) -> Option<String> {
        let l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        owner.and_then(|o| l.users.get(o)).map(|u| u.token.clone())
    }

    fn user(&self, owner: usize) -> Option<(String, String)> {
        let l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        l.users
            .get(owner)
            .map(|u| (u.name.clone(), u.token.clone()))
    }

    fn set_file(&self, path: &str, e: FileEntry) {
        let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        l.files.insert(path.to_string(), e);
    }

    fn file_state(&self, path: &str, state: Option<FileState>) {
        let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            None => {
                l.files.remove(path);
            }
            Some(s) => {
                if let Some(f) = l.files.get_mut(path) {
                    f.state = s;
                }
            }
        }
    }
}

fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.next_f64()
}

fn cone_adql(table: &str, ra: f64, dec: f64, r: f64) -> String {
    format!(
        "SELECT * FROM {table} WHERE 1=CONTAINS(POINT('ICRS',ra,dec),CIRCLE('ICRS',{ra:.6},{dec:.6},{r:.4}))"
    )
}

/// Checks a small VOTable answer (status 200, QUERY_STATUS OK, complete document).
async fn small_votable(op: &mut Op, r: Result<reqwest::Response, Outcome>) -> Outcome {
    let r = match r {
        Ok(r) => r,
        Err(o) => return o,
    };
    if r.status().as_u16() != 200 {
        return http::refuse(op, r).await;
    }
    let b = match http::body(op, r).await {
        Ok(b) => b,
        Err(o) => return o,
    };
    votable_text(&b)
}

fn votable_text(b: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(b);
    let st = query_statuses(&text);
    if st.is_empty() {
        return Outcome::Wrong(format!("no QUERY_STATUS: {}", http::snippet(b)));
    }
    if let Some((_, m)) = st.iter().find(|(v, _)| v == "ERROR") {
        return query_error(m);
    }
    if !text.trim_end().ends_with("</VOTABLE>") {
        return Outcome::Wrong(format!(
            "a VOTable that does not end with </VOTABLE> ({} bytes)",
            b.len()
        ));
    }
    Outcome::Ok
}

/// A QUERY_STATUS ERROR: a refusal of a busy server (that should have been a 503) or an error.
fn query_error(m: &str) -> Outcome {
    let l = m.to_ascii_lowercase();
    if l.contains("busy") || l.contains("retry") {
        Outcome::BusyIn200(m.to_string())
    } else {
        Outcome::QueryError(m.to_string())
    }
}

/// POST /tap/sync.
async fn tap_sync(
    api: &Api,
    op: &mut Op,
    query: &str,
    extra: &[(&str, String)],
) -> Result<reqwest::Response, Outcome> {
    let mut form: Vec<(&str, String)> = vec![
        ("REQUEST", "doQuery".into()),
        ("LANG", "ADQL".into()),
        ("QUERY", query.to_string()),
    ];
    form.extend(extra.iter().cloned());
    http::send(op, api.client.post(api.url("/tap/sync")).form(&form)).await
}

/// A TAP sync cone (also the probe's).
pub async fn tap_cone(api: &Api, table: &str, rng: &mut Rng, r: f64) -> (Op, Outcome) {
    let (ra, dec) = rng.sky_point();
    let mut op = Op::start();
    let resp = tap_sync(api, &mut op, &cone_adql(table, ra, dec, r), &[]).await;
    let o = small_votable(&mut op, resp).await;
    (op, o)
}

/// A Simple Cone Search (also the probe's).
pub async fn scs(api: &Api, table: &str, rng: &mut Rng, r: f64) -> (Op, Outcome) {
    let (ra, dec) = rng.sky_point();
    let mut op = Op::start();
    let rb = api.client.get(api.url(&format!("/scs/{table}"))).query(&[
        ("RA", format!("{ra:.6}")),
        ("DEC", format!("{dec:.6}")),
        ("SR", format!("{r:.4}")),
    ]);
    let resp = http::send(&mut op, rb).await;
    let o = small_votable(&mut op, resp).await;
    (op, o)
}

const SCHEMA_QUERIES: [&str; 5] = [
    "SELECT * FROM TAP_SCHEMA.schemas",
    "SELECT * FROM TAP_SCHEMA.tables",
    "SELECT * FROM TAP_SCHEMA.columns WHERE table_name = '{table}'",
    "SELECT table_name, COUNT(*) AS n FROM TAP_SCHEMA.columns GROUP BY table_name",
    "SELECT * FROM TAP_SCHEMA.keys",
];

/// Heavy synchronous queries (`--weights heavy=N`): they run until the service's
/// synchronous time limit stops them, or are refused with 503 when the slow lane is full. The
/// probe measures what they cost the cheap queries.
const HEAVY_QUERIES: [&str; 3] = [
    // The cross join of issue 14, ordered by an expression of both sides.
    "SELECT TOP 10 a.source_id, b.hip FROM {table} AS a, hipparcos.hip2 AS b ORDER BY a.ra - b.ra",
    // A crossmatch of every Hipparcos star.
    "SELECT COUNT(*) AS n FROM hipparcos.hip2 AS h JOIN {table} AS g ON \
     1=CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', h.ra, h.dec, 3.0/3600))",
    // Every row read and sorted by a computed expression.
    "SELECT TOP 10 * FROM {table} ORDER BY ra * dec - ra",
];

async fn heavy(ctx: &Ctx, rng: &mut Rng) -> (Op, Outcome) {
    let q = HEAVY_QUERIES[(rng.next_u64() % HEAVY_QUERIES.len() as u64) as usize]
        .replace("{table}", &ctx.s.table);
    let mut op = Op::start();
    let resp = tap_sync(&ctx.api, &mut op, &q, &[]).await;
    let o = small_votable(&mut op, resp).await;
    (op, o)
}

async fn tap_schema(ctx: &Ctx, rng: &mut Rng) -> (Op, Outcome) {
    let q = SCHEMA_QUERIES[(rng.next_u64() % SCHEMA_QUERIES.len() as u64) as usize]
        .replace("{table}", &ctx.s.table);
    let mut op = Op::start();
    let resp = tap_sync(&ctx.api, &mut op, &q, &[]).await;
    let o = small_votable(&mut op, resp).await;
    (op, o)
}

/// Reads a body to the end, keeping its first `head` and last `tail` bytes.
async fn head_tail(
    op: &mut Op,
    mut r: reqwest::Response,
    head: usize,
    tail: usize,
) -> Result<(Vec<u8>, Vec<u8>, u64), Outcome> {
    let (mut h, mut t, mut n) = (Vec::new(), Vec::new(), 0u64);
    loop {
        match r.chunk().await {
            Ok(Some(c)) => {
                n += c.len() as u64;
                if h.len() < head {
                    let k = (head - h.len()).min(c.len());
                    h.extend_from_slice(&c[..k]);
                }
                t.extend_from_slice(&c[c.len().saturating_sub(tail)..]);
                if t.len() > 2 * tail {
                    t.drain(..t.len() - tail);
                }
            }
            Ok(None) => break,
            Err(e) => {
                op.bytes += n;
                let (k, m) = http::classify(&e);
                return Err(Outcome::Net(k, m));
            }
        }
    }
    op.bytes += n;
    if t.len() > tail {
        t.drain(..t.len() - tail);
    }
    Ok((h, t, n))
}

async fn download(ctx: &Ctx) -> (Op, Outcome) {
    let n = ctx.downloads.fetch_add(1, Ordering::Relaxed);
    let parse = ctx.s.parse_every > 0 && n.is_multiple_of(ctx.s.parse_every);
    let rows = ctx.s.download_rows;
    let mut op = Op::start();
    let q = format!("SELECT TOP {rows} * FROM {}", ctx.s.table);
    let extra = [
        ("RESPONSEFORMAT", "votable/b2".to_string()),
        ("MAXREC", rows.to_string()),
    ];
    let r = match tap_sync(&ctx.api, &mut op, &q, &extra).await {
        Ok(r) => r,
        Err(o) => return (op, o),
    };
    if r.status().as_u16() != 200 {
        let o = http::refuse(&mut op, r).await;
        return (op, o);
    }
    if parse {
        let b = match http::body(&mut op, r).await {
            Ok(b) => b,
            Err(o) => return (op, o),
        };
        let first = votable_text(&b);
        if !matches!(first, Outcome::Ok) {
            return (op, first);
        }
        // Parsing 100k rows takes a while: not on the clients' threads.
        let parsed = tokio::task::spawn_blocking(move || {
            votable::read(&b).map(|(_, bs)| bs.iter().map(|x| x.num_rows() as u64).sum::<u64>())
        })
        .await;
        let o = match parsed {
            Ok(Ok(got)) if got == rows => Outcome::Ok,
            Ok(Ok(got)) => Outcome::Wrong(format!("{got} rows, expected {rows}")),
            Ok(Err(e)) => Outcome::Wrong(format!("the BINARY2 VOTable does not parse: {e}")),
            Err(e) => Outcome::Wrong(format!("parser task: {e}")),
        };
        return (op, o);
    }
    let (head, tail, len) = match head_tail(&mut op, r, 8192, 4096).await {
        Ok(x) => x,
        Err(o) => return (op, o),
    };
    let h = String::from_utf8_lossy(&head);
    let t = String::from_utf8_lossy(&tail);
    let o = if !h.contains("QUERY_STATUS") {
        Outcome::Wrong(format!(
            "no QUERY_STATUS at the start: {}",
            http::snippet(&head)
        ))
    } else if let Some((_, m)) = query_statuses(&h)
        .into_iter()
        .chain(query_statuses(&t))
        .find(|(v, _)| v == "ERROR")
    {
        query_error(&m)
    } else if !t.trim_end().ends_with("</VOTABLE>") {
        Outcome::Wrong(format!(
            "a download of {len} bytes that does not end with </VOTABLE>"
        ))
    } else {
        Outcome::Ok
    };
    (op, o)
}

fn terminal(phase: &str) -> bool {
    matches!(
        phase,
        "COMPLETED" | "ERROR" | "ABORTED" | "ARCHIVED" | "SUSPENDED"
    )
}

fn phase_of(doc: &str) -> Option<String> {
    let start = doc.find("<uws:phase>")? + "<uws:phase>".len();
    let end = doc[start..].find("</uws:phase>")? + start;
    Some(doc[start..end].trim().to_string())
}

/// Retries `send` while the server is away (chaos) or busy; None when the op must end.
async fn send_patiently<F>(
    ctx: &Ctx,
    op: &mut Op,
    until: Instant,
    mut make: F,
) -> Result<reqwest::Response, Outcome>
where
    F: FnMut() -> reqwest::RequestBuilder,
{
    let mut away_since: Option<Instant> = None;
    loop {
        match http::send(op, make()).await {
            Ok(r) if r.status().as_u16() == 503 && Instant::now() < until => {
                let o = http::refuse(op, r).await;
                let ra = match o {
                    Outcome::Busy(ra) => ra.unwrap_or(1.0),
                    _ => 1.0,
                };
                tokio::time::sleep(Duration::from_secs_f64(ra.clamp(0.1, 5.0))).await;
            }
            Ok(r) => return Ok(r),
            Err(Outcome::Net(k, m)) if ctx.s.chaos && k != Net::Timeout => {
                let since = *away_since.get_or_insert_with(Instant::now);
                if since.elapsed() > ctx.s.restart_grace || Instant::now() >= until {
                    return Err(Outcome::Net(k, m));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(o) => return Err(o),
        }
    }
}

fn rel_path(ctx: &Ctx, url: &str) -> String {
    url.strip_prefix(&ctx.api.base)
        .map(str::to_string)
        .unwrap_or_else(|| url.to_string())
}

async fn async_job(ctx: &Ctx, rng: &mut Rng, owner: Option<usize>) -> (Op, Outcome) {
    let token = ctx.token(owner);
    let tok = token.as_deref();
    let (ra, dec) = rng.sky_point();
    let mut op = Op::start();
    let until = Instant::now() + ctx.s.async_timeout;
    let form = [
        ("REQUEST", "doQuery".to_string()),
        ("LANG", "ADQL".to_string()),
        ("QUERY", cone_adql(&ctx.s.table, ra, dec, ctx.s.async_r)),
        ("PHASE", "RUN".to_string()),
    ];
    let api = &ctx.api;
    let r = match http::send(
        &mut op,
        http::auth(api.client.post(api.url("/tap/async")).form(&form), tok),
    )
    .await
    {
        Ok(r) => r,
        Err(o) => return (op, o),
    };
    let job = match (r.status().as_u16(), http::location(r.headers())) {
        (303, Some(l)) => l,
        _ => {
            let o = http::refuse(&mut op, r).await;
            return (op, o);
        }
    };
    // Wait for the end (WAIT blocks on the server while the phase does not change).
    let mut phase = String::from("QUEUED");
    loop {
        if Instant::now() >= until {
            return (
                op,
                Outcome::Net(
                    Net::Timeout,
                    format!("job {job} still {phase} after {:?}", ctx.s.async_timeout),
                ),
            );
        }
        let wait = until
            .saturating_duration_since(Instant::now())
            .as_secs()
            .clamp(1, 10);
        let url = format!("{job}?WAIT={wait}&PHASE={phase}");
        let r = match send_patiently(ctx, &mut op, until, || {
            http::auth(api.client.get(&url), tok)
        })
        .await
        {
            Ok(r) => r,
            Err(o) => return (op, o),
        };
        if r.status().as_u16() != 200 {
            let o = http::refuse(&mut op, r).await;
            return (op, o);
        }
        let doc = match http::body(&mut op, r).await {
            Ok(b) => b,
            Err(o) => return (op, o),
        };
        let text = String::from_utf8_lossy(&doc);
        match phase_of(&text) {
            Some(p) => phase = p,
            None => {
                return (
                    op,
                    Outcome::Wrong(format!(
                        "a job document without a phase: {}",
                        http::snippet(&doc)
                    )),
                )
            }
        }
        if terminal(&phase) {
            break;
        }
    }
    let mut outcome = Outcome::Ok;
    let mut result: Option<(String, u64)> = None;
    if phase == "COMPLETED" {
        // Seen COMPLETED: its result must be served from now on, whatever its bytes are if
        // they cannot be read now (the MD5 is then unknown: "").
        let completed = |op: Op, o: Outcome| {
            if ctx.s.keep_jobs && matches!(o, Outcome::Net(..)) {
                let mut l = ctx.ledger.lock().unwrap_or_else(|e| e.into_inner());
                l.jobs.push(JobEntry {
                    path: rel_path(ctx, &job),
                    owner,
                    md5: String::new(),
                    bytes: 0,
                });
            }
            (op, o)
        };
        let mut url = format!("{job}/results/result");
        let mut hops = 0;
        loop {
            let r = match send_patiently(ctx, &mut op, until, || {
                http::auth(api.client.get(&url), tok)
            })
            .await
            {
                Ok(r) => r,
                Err(o) => return completed(op, o),
            };
            match r.status().as_u16() {
                200 => {
                    match http::body_md5(&mut op, r, 0).await {
                        Ok((md5, len, _)) => result = Some((md5, len)),
                        Err(o) => return completed(op, o),
                    }
                    break;
                }
                301 | 302 | 303 | 307 if hops < 3 => match http::location(r.headers()) {
                    Some(l) => {
                        url = if l.starts_with('/') { api.url(&l) } else { l };
                        hops += 1;
                    }
                    None => {
                        return (
                            op,
                            Outcome::Wrong("a result redirect without Location".into()),
                        )
                    }
                },
                _ => {
                    let o = http::refuse(&mut op, r).await;
                    return (op, o);
                }
            }
        }
    } else {
        // Why: the error document's start.
        let why = match http::send(
            &mut op,
            http::auth(api.client.get(format!("{job}/error")), tok),
        )
        .await
        {
            Ok(r) => {
                let b = http::body(&mut op, r).await.unwrap_or_default();
                let t = String::from_utf8_lossy(&b);
                query_statuses(&t)
                    .into_iter()
                    .find(|(v, _)| v == "ERROR")
                    .map(|(_, m)| m)
                    .unwrap_or_else(|| http::snippet(&b))
            }
            Err(_) => String::new(),
        };
        outcome = match query_error(&why) {
            Outcome::BusyIn200(m) => Outcome::QueryError(format!(
                "job {} ended {phase} (busy): {m}",
                rel_path(ctx, &job)
            )),
            _ => Outcome::QueryError(format!("job {} ended {phase}: {why}", rel_path(ctx, &job))),
        };
    }
    match result {
        Some((md5, bytes)) if ctx.s.keep_jobs => {
            let mut l = ctx.ledger.lock().unwrap_or_else(|e| e.into_inner());
            l.jobs.push(JobEntry {
                path: rel_path(ctx, &job),
                owner,
                md5,
                bytes,
            });
        }
        _ => {
            let r = http::send(&mut op, http::auth(api.client.delete(&job), tok)).await;
            match r {
                Ok(r) if matches!(r.status().as_u16(), 200 | 204 | 303) => {}
                Ok(r) => {
                    let o = http::refuse(&mut op, r).await;
                    if matches!(outcome, Outcome::Ok) {
                        outcome = o;
                    }
                }
                Err(o) => {
                    if matches!(outcome, Outcome::Ok) {
                        outcome = o;
                    }
                }
            }
        }
    }
    (op, outcome)
}

async fn preview(ctx: &Ctx, rng: &mut Rng) -> (Op, Outcome) {
    let mut op = Op::start();
    if ctx.preview_ids.is_empty() {
        return (op, Outcome::Wrong("no preview ids".into()));
    }
    let id = &ctx.preview_ids[(rng.next_u64() % ctx.preview_ids.len() as u64) as usize];
    let rb = ctx
        .api
        .client
        .get(ctx.api.url("/datalink/preview"))
        .query(&[("ID", id.as_str())]);
    let r = match http::send(&mut op, rb).await {
        Ok(r) => r,
        Err(o) => return (op, o),
    };
    if r.status().as_u16() != 200 {
        let o = http::refuse(&mut op, r).await;
        return (op, o);
    }
    let b = match http::body(&mut op, r).await {
        Ok(b) => b,
        Err(o) => return (op, o),
    };
    let o = if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Outcome::Ok
    } else {
        Outcome::Wrong(format!("not a PNG ({} bytes) for {id}", b.len()))
    };
    (op, o)
}

/// One client's VOSpace state.
struct Files {
    owner: usize,
    kept: VecDeque<(String, String, u64)>,
    seq: u64,
}

fn vos_uri(ctx: &Ctx, path: &str) -> String {
    format!("vos://{}!vospace/{path}", ctx.s.authority)
}

/// Negotiates a transfer with REQUEST=redirect: the data URL.
async fn negotiate(
    ctx: &Ctx,
    op: &mut Op,
    token: &str,
    path: &str,
    push: bool,
) -> Result<String, Outcome> {
    let (dir, proto) = if push {
        ("pushToVoSpace", "ivo://ivoa.net/vospace/core#httpput")
    } else {
        ("pullFromVoSpace", "ivo://ivoa.net/vospace/core#httpget")
    };
    let form = [
        ("TARGET", vos_uri(ctx, path)),
        ("DIRECTION", dir.to_string()),
        ("PROTOCOL", proto.to_string()),
        ("REQUEST", "redirect".to_string()),
    ];
    let api = &ctx.api;
    let r = http::send(
        op,
        api.client
            .post(api.url("/vospace/synctrans"))
            .bearer_auth(token)
            .form(&form),
    )
    .await?;
    match (r.status().as_u16(), http::location(r.headers())) {
        (303, Some(l)) => Ok(l),
        _ => Err(http::refuse(op, r).await),
    }
}

/// GET a committed file (pull negotiation or /vospace/files) and check its MD5.
async fn vo_get(
    ctx: &Ctx,
    rng: &mut Rng,
    token: &str,
    path: &str,
    md5: &str,
    len: u64,
) -> (Op, Outcome) {
    let mut op = Op::start();
    let api = &ctx.api;
    let rb = if rng.next_u64().is_multiple_of(2) {
        api.client
            .get(api.url(&format!("/vospace/files/{path}")))
            .bearer_auth(token)
    } else {
        match negotiate(ctx, &mut op, token, path, false).await {
            Ok(url) => api.client.get(url),
            Err(Outcome::Status(404, m)) => {
                ctx.lost.fetch_add(1, Ordering::Relaxed);
                return (
                    op,
                    Outcome::Wrong(format!(
                        "LOST: {path} (committed, {len} bytes): pull negotiation 404: {m}"
                    )),
                );
            }
            Err(o) => return (op, o),
        }
    };
    let r = match http::send(&mut op, rb).await {
        Ok(r) => r,
        Err(o) => return (op, o),
    };
    match r.status().as_u16() {
        200 => match http::body_md5(&mut op, r, 0).await {
            Ok((got, n, _)) if got == md5 && n == len => (op, Outcome::Ok),
            Ok((got, n, _)) => {
                ctx.md5_mismatches.fetch_add(1, Ordering::Relaxed);
                (
                    op,
                    Outcome::Wrong(format!(
                        "MD5 MISMATCH: {path}: committed {len} bytes MD5 {md5}, got {n} bytes MD5 {got}"
                    )),
                )
            }
            Err(o) => (op, o),
        },
        404 => {
            let o = http::refuse(&mut op, r).await;
            ctx.lost.fetch_add(1, Ordering::Relaxed);
            (
                op,
                Outcome::Wrong(format!("LOST: {path} (committed, {len} bytes): {o:?}")),
            )
        }
        _ => {
            let o = http::refuse(&mut op, r).await;
            (op, o)
        }
    }
}

/// Log-uniform in [lo, hi].
fn file_size(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    let (a, b) = ((lo.max(1) as f64).ln(), (hi.max(lo).max(1) as f64).ln());
    ((a + (b - a) * rng.next_f64()).exp() as u64).clamp(lo, hi)
}

/// The bytes of one file: a unique 32-byte header, then a slice of the pool, in chunks.
fn file_chunks(ctx: &Ctx, rng: &mut Rng, client: usize, seq: u64, size: u64) -> Vec<Bytes> {
    let head = format!("{client:08x}{seq:08x}{:016x}", rng.next_u64());
    let head = Bytes::from(head.into_bytes());
    let mut out = Vec::new();
    let h = (head.len() as u64).min(size) as usize;
    out.push(head.slice(..h));
    let rest = (size as usize).saturating_sub(h);
    if rest > 0 {
        let room = ctx.pool.len().saturating_sub(rest).max(1);
        let off = (rng.next_u64() % room as u64) as usize;
        let body = ctx.pool.slice(off..off + rest.min(ctx.pool.len() - off));
        const CHUNK: usize = 256 * 1024;
        let mut i = 0;
        while i < body.len() {
            let j = (i + CHUNK).min(body.len());
            out.push(body.slice(i..j));
            i = j;
        }
    }
    out
}

async fn vospace(ctx: &Ctx, rng: &mut Rng, client: usize, f: &mut Files) -> Option<f64> {
    let (user, token) = ctx.user(f.owner)?;
    f.seq += 1;
    let path = format!("{user}/{}/c{client}-f{}", ctx.s.dir, f.seq);
    let size = file_size(rng, ctx.s.file_bytes.0, ctx.s.file_bytes.1);
    let chunks = file_chunks(ctx, rng, client, f.seq, size);
    let size: u64 = chunks.iter().map(|c| c.len() as u64).sum();

    // PUT: negotiate, then stream the bytes (hashed as they go).
    let mut op = Op::start();
    let put = async {
        let url = negotiate(ctx, &mut op, &token, &path, true).await?;
        let (body, mut rx) = http::hashed_body(chunks);
        let unack = |md5: String| FileEntry {
            owner: f.owner,
            md5,
            bytes: size,
            state: FileState::Uncertain,
        };
        // Before the PUT: whatever happens next, the node must never hold other bytes.
        ctx.set_file(&path, unack(String::new()));
        let r = http::send(
            &mut op,
            ctx.api
                .client
                .put(&url)
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(body),
        )
        .await;
        let sent = rx.try_recv().ok();
        if let Some(m) = &sent {
            ctx.set_file(&path, unack(m.clone()));
        }
        let r = r?;
        op.bytes += size;
        let status = r.status().as_u16();
        if !matches!(status, 200 | 201 | 204) {
            return Err(http::refuse(&mut op, r).await);
        }
        let Some(md5) = sent else {
            return Err(Outcome::Wrong(format!(
                "{path}: HTTP {status} before the whole body was sent"
            )));
        };
        let etag = r
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_string());
        ctx.set_file(
            &path,
            FileEntry {
                owner: f.owner,
                md5: md5.clone(),
                bytes: size,
                state: FileState::Committed,
            },
        );
        if let Some(e) = etag.filter(|e| !e.is_empty() && *e != md5) {
            ctx.md5_mismatches.fetch_add(1, Ordering::Relaxed);
            return Err(Outcome::Wrong(format!(
                "MD5 MISMATCH: {path}: sent MD5 {md5}, the server's ETag says {e}"
            )));
        }
        Ok(md5)
    }
    .await;
    let (md5, outcome) = match put {
        Ok(m) => (Some(m), Outcome::Ok),
        Err(o) => (None, o),
    };
    let busy = match &outcome {
        Outcome::Busy(ra) => Some(ra.unwrap_or(1.0)),
        _ => None,
    };
    ctx.stats.record(Kind::VoPut, &op, &outcome);
    let md5 = md5?;

    // GET it back, and sometimes an older one.
    let (op, o) = vo_get(ctx, rng, &token, &path, &md5, size).await;
    ctx.stats.record(Kind::VoGet, &op, &o);
    f.kept.push_back((path, md5, size));
    if f.kept.len() > 1 && rng.next_f64() < 0.3 {
        let i = (rng.next_u64() % (f.kept.len() - 1) as u64) as usize;
        let (p, m, n) = f.kept[i].clone();
        let (op, o) = vo_get(ctx, rng, &token, &p, &m, n).await;
        ctx.stats.record(Kind::VoGet, &op, &o);
    }
    // Delete the oldest beyond what a client keeps.
    while f.kept.len() > ctx.s.keep_files {
        let Some((p, _, _)) = f.kept.pop_front() else {
            break;
        };
        let mut op = Op::start();
        let api = &ctx.api;
        let r = http::send(
            &mut op,
            api.client
                .delete(api.url(&format!("/vospace/nodes/{p}")))
                .bearer_auth(&token),
        )
        .await;
        let o = match r {
            Ok(r) if matches!(r.status().as_u16(), 200 | 204) => {
                ctx.file_state(&p, None);
                Outcome::Ok
            }
            Ok(r) => http::refuse(&mut op, r).await,
            // Not connected: the DELETE was never sent, the file stays committed.
            Err(o @ Outcome::Net(Net::Connect, _)) => o,
            Err(o) => {
                ctx.file_state(&p, Some(FileState::Deleting));
                o
            }
        };
        ctx.stats.record(Kind::VoDelete, &op, &o);
    }
    busy
}

/// One client: picks operations until the deadline.
pub async fn client(ctx: Arc<Ctx>, i: usize, seed: u64, start_delay: Duration) {
    let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    tokio::time::sleep(start_delay).await;
    let users = ctx
        .ledger
        .lock()
        .map(|l| l.users.len())
        .unwrap_or_else(|e| e.into_inner().users.len());
    let owner = (users > 0).then_some(i % users.max(1));
    let mut files = Files {
        owner: owner.unwrap_or(0),
        kept: VecDeque::new(),
        seq: 0,
    };
    let s = &ctx.s;
    while Instant::now() < ctx.deadline {
        let Some(pick) = ctx.pick(&mut rng) else {
            return;
        };
        let (kind, (op, o)) = match pick {
            Pick::TapCone => {
                let r = uniform(&mut rng, s.cone_r.0, s.cone_r.1);
                (
                    Kind::TapCone,
                    tap_cone(&ctx.api, &s.table, &mut rng, r).await,
                )
            }
            Pick::Scs => {
                let r = uniform(&mut rng, s.scs_r.0, s.scs_r.1);
                (Kind::Scs, scs(&ctx.api, &s.table, &mut rng, r).await)
            }
            Pick::TapSchema => (Kind::TapSchema, tap_schema(&ctx, &mut rng).await),
            Pick::Download => (Kind::Download, download(&ctx).await),
            Pick::Async => (Kind::Async, async_job(&ctx, &mut rng, owner).await),
            Pick::Preview => (Kind::Preview, preview(&ctx, &mut rng).await),
            Pick::Heavy => (Kind::Heavy, heavy(&ctx, &mut rng).await),
            Pick::VoSpace => {
                if owner.is_none() {
                    continue;
                }
                let busy = vospace(&ctx, &mut rng, i, &mut files).await;
                let o = busy.map(|ra| Outcome::Busy(Some(ra)));
                pause(&ctx, o.as_ref()).await;
                continue;
            }
        };
        ctx.stats.record(kind, &op, &o);
        pause(&ctx, Some(&o)).await;
    }
}

/// How a client pauses after an operation: after a 503, for its Retry-After (at most
/// `retry_cap`); after a connection error, a little (a dead server refuses at once).
async fn pause(ctx: &Ctx, o: Option<&Outcome>) {
    let d = match o {
        Some(Outcome::Busy(ra)) if ctx.s.retry_cap > 0.0 => {
            ra.unwrap_or(1.0).clamp(0.0, ctx.s.retry_cap)
        }
        Some(Outcome::Net(Net::Connect, _)) => 0.5,
        Some(Outcome::Net(_, _)) => 0.1,
        _ => return,
    };
    let left = ctx.deadline.saturating_duration_since(Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(d).min(left)).await;
}

/// The probe: one small cone every `interval`, on a thread, runtime and connection of its
/// own, so that the load generator's own queueing does not show in its latencies.
pub fn spawn_probe(
    base: String,
    table: String,
    deadline: Instant,
    interval: Duration,
    radius: f64,
    use_scs: bool,
    seed: u64,
) -> std::thread::JoinHandle<KindStats> {
    std::thread::spawn(move || {
        let mut ks = KindStats::default();
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                ks.samples.push(format!("probe runtime: {e}"));
                return ks;
            }
        };
        rt.block_on(async {
            let api = match Api::new(&base, 2, Duration::from_secs(2), Duration::from_secs(30)) {
                Ok(a) => a,
                Err(e) => {
                    ks.samples.push(format!("probe client: {e}"));
                    return;
                }
            };
            let mut rng = Rng::new(seed ^ 0x0b5e_55ed);
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < deadline {
                tick.tick().await;
                let (op, o) = if use_scs {
                    scs(&api, &table, &mut rng, radius).await
                } else {
                    tap_cone(&api, &table, &mut rng, radius).await
                };
                ks.record(&op, &o);
            }
        });
        ks
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases() {
        let doc = "<uws:job><uws:jobId>x</uws:jobId><uws:phase>EXECUTING</uws:phase></uws:job>";
        assert_eq!(phase_of(doc).as_deref(), Some("EXECUTING"));
        assert!(terminal("COMPLETED") && !terminal("QUEUED"));
    }

    #[test]
    fn sizes() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let s = file_size(&mut rng, 65536, 8 << 20);
            assert!((65536..=8 << 20).contains(&s));
        }
    }

    #[test]
    fn small_votables() {
        let ok =
            b"<VOTABLE><RESOURCE><INFO name=\"QUERY_STATUS\" value=\"OK\"/></RESOURCE></VOTABLE>\n";
        assert!(matches!(votable_text(ok), Outcome::Ok));
        let cut = b"<VOTABLE><RESOURCE><INFO name=\"QUERY_STATUS\" value=\"OK\"/><TABLE>";
        assert!(matches!(votable_text(cut), Outcome::Wrong(_)));
        let err =
            b"<VOTABLE><INFO name=\"QUERY_STATUS\" value=\"ERROR\">no such table</INFO></VOTABLE>";
        assert!(matches!(votable_text(err), Outcome::QueryError(m) if m == "no such table"));
        let busy = b"<VOTABLE><INFO name=\"QUERY_STATUS\" value=\"ERROR\">the service is busy</INFO></VOTABLE>";
        assert!(matches!(votable_text(busy), Outcome::BusyIn200(_)));
    }
}
