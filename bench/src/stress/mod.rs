//! `load`, `verify` and `fill`: vostok under many concurrent clients on a mixed workload, the
//! ledger of what it acknowledged, and a data folder that runs out of space.
//!
//! * `load`: N clients for D seconds (TAP cones, cone search, TAP_SCHEMA, 100k-row downloads,
//!   async jobs, VOSpace PUT/GET with MD5s, DataLink previews), a probe cone every 100 ms,
//!   the server's memory; a JSON and a Markdown report; exit status 1 when the server
//!   answered 5xx other than 503 (or a 503 without Retry-After), dropped connections, served
//!   wrong bytes, lost a committed file, or went over the memory budget.
//! * `verify`: every entry of a ledger written by `load --ledger` is still served intact.
//! * `fill`: uploads until the data folder is full; the refusals must be clean.

mod fill;
mod http;
mod ledger;
mod report;
mod stats;
mod work;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;

pub use fill::{fill, FillArgs};
use http::Api;
use ledger::{Ledger, User};
use stats::{Kind, Stats};
use work::{Ctx, Pick, Settings};

use crate::sky::Rng;

/// `vostok-bench load`.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The server's base URL.
    #[arg(long)]
    pub url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// How long the clients start new operations (seconds).
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// VOSpace users, NAME:TOKEN (repeat, or separate with commas); client i is user
    /// i mod n. Async jobs are submitted with the same token. Without users, no VOSpace and
    /// anonymous jobs.
    #[arg(long = "user", value_delimiter = ',')]
    pub users: Vec<String>,
    /// A file of users, one `NAME TOKEN` (or NAME:TOKEN) a line.
    #[arg(long)]
    pub users_file: Option<PathBuf>,
    /// Weights of the operations: cone, scs, schema, download, async, vospace, preview, heavy
    /// (heavy sync queries: a cross join, a crossmatch, a sorted full scan).
    #[arg(
        long,
        default_value = "cone=30,scs=25,schema=10,download=3,async=5,vospace=7,preview=5"
    )]
    pub weights: String,
    /// Catalog of the cones, cone searches, downloads and jobs.
    #[arg(long, default_value = "gaia.dr3_bright")]
    pub table: String,
    /// TAP cone radius range, degrees (MIN,MAX).
    #[arg(long, value_delimiter = ',', default_value = "0.1,1")]
    pub cone_radius: Vec<f64>,
    /// Cone search radius range, degrees (MIN,MAX).
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.5")]
    pub scs_radius: Vec<f64>,
    /// Rows of a download (`SELECT TOP n *`, BINARY2).
    #[arg(long, default_value_t = 100_000)]
    pub download_rows: u64,
    /// Parse every n-th download completely and count its rows (0: never; the others are
    /// read to the end and their start and end checked).
    #[arg(long, default_value_t = 10)]
    pub parse_every: u64,
    /// VOSpace file size range in KiB (MIN,MAX), log-uniform.
    #[arg(long, value_delimiter = ',', default_value = "64,8192")]
    pub file_kib: Vec<u64>,
    /// Files each client keeps; beyond, it deletes its oldest.
    #[arg(long, default_value_t = 4)]
    pub keep_files: usize,
    /// VOSpace authority of node URIs.
    #[arg(long, default_value = "vostok.example")]
    pub authority: String,
    /// Async job cone radius (degrees).
    #[arg(long, default_value_t = 0.2)]
    pub async_radius: f64,
    /// Longest an async job may take, submission to result (seconds).
    #[arg(long, default_value_t = 120.0)]
    pub async_timeout: f64,
    /// Client timeout of one request (seconds).
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// An idle pooled connection is dropped after this (ms); keep it below the server's
    /// keep-alive (5 s), or requests sent as the server closes it fail as resets.
    #[arg(long, default_value_t = 2000)]
    pub pool_idle_ms: u64,
    /// Probe interval (ms; 0: no probe).
    #[arg(long, default_value_t = 100)]
    pub probe_ms: u64,
    /// Probe cone radius (degrees).
    #[arg(long, default_value_t = 0.1)]
    pub probe_radius: f64,
    /// The probe uses Simple Cone Search instead of a TAP sync cone.
    #[arg(long)]
    pub probe_scs: bool,
    /// The probe's p99 goal (ms): reported, not a failure.
    #[arg(long, default_value_t = 100.0)]
    pub probe_goal_ms: f64,
    /// The server's pid: its VmRSS is sampled every 100 ms.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// A file holding the server's pid, read at every sample (the server is restarted).
    #[arg(long, conflicts_with = "server_pid")]
    pub server_pid_file: Option<PathBuf>,
    /// Fail when the server's peak VmRSS goes above this (MiB).
    #[arg(long)]
    pub rss_budget_mib: Option<f64>,
    /// After a 503, a client waits its Retry-After, at most this long (seconds; 0: no wait).
    #[arg(long, default_value_t = 5.0)]
    pub retry_after_cap: f64,
    /// The clients start spread over this many seconds.
    #[arg(long, default_value_t = 5.0)]
    pub ramp_seconds: f64,
    /// The server is being killed and restarted: connection errors are not failures, polls
    /// and checks wait (up to --restart-grace) for it to come back.
    #[arg(long)]
    pub chaos: bool,
    /// How long to wait for a restarting server (seconds).
    #[arg(long, default_value_t = 60.0)]
    pub restart_grace: f64,
    /// Write the ledger (acknowledged files, completed jobs) here; completed jobs are then
    /// kept, not deleted, so that `verify` can check their results.
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// No check of the ledger at the end (chaos: `verify` runs after the last restart).
    #[arg(long)]
    pub skip_verify: bool,
    /// Checks at once in the final verification.
    #[arg(long, default_value_t = 16)]
    pub verify_concurrency: usize,
    /// Seed of positions, sizes and contents.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the report as Markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// `vostok-bench verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The server's base URL.
    #[arg(long)]
    pub url: String,
    /// The ledger written by `load --ledger` (or `fill --ledger`).
    #[arg(long)]
    pub ledger: PathBuf,
    /// Wait this long for the server to answer, and for each check through 503s and
    /// connection errors (seconds).
    #[arg(long, default_value_t = 120.0)]
    pub wait: f64,
    /// Checks at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// NAME:TOKEN or "NAME TOKEN".
fn parse_user(s: &str) -> Result<User> {
    let s = s.trim();
    let (n, t) = s
        .split_once(':')
        .or_else(|| s.split_once(char::is_whitespace))
        .ok_or_else(|| anyhow!("a user is NAME:TOKEN, not '{s}'"))?;
    let (n, t) = (n.trim(), t.trim());
    if n.is_empty() || t.is_empty() || n.contains('/') {
        bail!("a user is NAME:TOKEN, not '{s}'");
    }
    Ok(User {
        name: n.to_string(),
        token: t.to_string(),
    })
}

fn users(a: &LoadArgs) -> Result<Vec<User>> {
    let mut out = Vec::new();
    for u in &a.users {
        out.push(parse_user(u)?);
    }
    if let Some(f) = &a.users_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        for l in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            out.push(parse_user(l)?);
        }
    }
    Ok(out)
}

fn parse_weights(s: &str) -> Result<Vec<(Pick, u32)>> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("--weights: NAME=WEIGHT, not '{part}'"))?;
        let pick = Pick::NAMES
            .iter()
            .find(|(n, _)| *n == k.trim())
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                anyhow!(
                    "--weights: unknown '{k}' (one of {})",
                    Pick::NAMES.map(|(n, _)| n).join(", ")
                )
            })?;
        let w: u32 = v
            .trim()
            .parse()
            .map_err(|_| anyhow!("--weights: '{v}' is not a whole number"))?;
        out.push((pick, w));
    }
    Ok(out)
}

fn range(v: &[f64], what: &str) -> Result<(f64, f64)> {
    match v {
        [a] => Ok((*a, *a)),
        [a, b] if a <= b => Ok((*a, *b)),
        _ => bail!("{what}: MIN,MAX with MIN <= MAX"),
    }
}

/// Waits until GET /tap/availability answers 200.
async fn wait_available(api: &Api, wait: Duration) -> Result<()> {
    let t = Instant::now();
    loop {
        let r = api.client.get(api.url("/tap/availability")).send().await;
        match r {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if t.elapsed() > wait => {
                bail!("{}/tap/availability: HTTP {}", api.base, r.status())
            }
            Err(e) if t.elapsed() > wait => {
                bail!("{} is not answering: {}", api.base, http::classify(&e).1)
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Creates `user/dir` (a container) for every user.
async fn make_dirs(api: &Api, authority: &str, users: &[User], dir: &str) -> Result<()> {
    for u in users {
        let path = format!("{}/{dir}", u.name);
        let doc = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="vos:ContainerNode" uri="vos://{authority}!vospace/{path}"><vos:properties/></vos:node>"#
        );
        let r = api
            .client
            .put(api.url(&format!("/vospace/nodes/{path}")))
            .bearer_auth(&u.token)
            .header(reqwest::header::CONTENT_TYPE, "text/xml")
            .body(doc)
            .send()
            .await
            .with_context(|| format!("creating {path}"))?;
        let st = r.status().as_u16();
        if st != 201 && st != 200 && st != 409 {
            let b = r.bytes().await.unwrap_or_default();
            bail!("creating {path}: HTTP {st}: {}", http::snippet(&b));
        }
    }
    Ok(())
}

/// DataLink IDs of `ivoa.obscore` whose preview answers a PNG.
async fn preview_ids(api: &Api) -> Result<Vec<String>> {
    let r = api
        .client
        .post(api.url("/tap/sync"))
        .form(&[
            ("REQUEST", "doQuery"),
            ("LANG", "ADQL"),
            ("RESPONSEFORMAT", "csv"),
            ("QUERY", "SELECT obs_publisher_did FROM ivoa.obscore"),
        ])
        .send()
        .await?;
    let st = r.status();
    let text = r.text().await?;
    if !st.is_success() {
        bail!(
            "ivoa.obscore: HTTP {st}: {}",
            http::snippet(text.as_bytes())
        );
    }
    let mut out = Vec::new();
    for id in text
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let id = id.trim_matches('"').to_string();
        let r = api
            .client
            .get(api.url("/datalink/preview"))
            .query(&[("ID", id.as_str())])
            .send()
            .await?;
        if r.status().as_u16() == 200 {
            let b = r.bytes().await?;
            if b.starts_with(b"\x89PNG") {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// Random bytes that files are cut from.
fn payload_pool(len: usize, seed: u64) -> Bytes {
    let mut rng = Rng::new(seed ^ 0xF11E_5EED);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// utime + stime of a process, in seconds (USER_HZ is 100 on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3; utime 14 and stime 15 (1-based over the whole line).
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / 100.0)
}

/// Memory of the server, sampled on a thread every 100 ms.
#[derive(Default)]
struct Mem {
    now_kib: AtomicU64,
    peak_kib: AtomicU64,
    hwm_kib: AtomicU64,
    samples: AtomicU64,
    pids: Mutex<Vec<u32>>,
}

fn read_pid(pid: Option<u32>, file: Option<&PathBuf>) -> Option<u32> {
    pid.or_else(|| {
        file.and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| s.trim().parse().ok())
    })
}

fn start_mem(
    pid: Option<u32>,
    file: Option<PathBuf>,
    stop: Arc<AtomicBool>,
) -> (Arc<Mem>, Option<std::thread::JoinHandle<()>>) {
    let mem = Arc::new(Mem::default());
    if pid.is_none() && file.is_none() {
        return (mem, None);
    }
    let m = mem.clone();
    let h = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(p) = read_pid(pid, file.as_ref()) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/status")) {
                    let rss = crate::mem::kib_field(&s, "VmRSS").unwrap_or(0);
                    let hwm = crate::mem::kib_field(&s, "VmHWM").unwrap_or(0);
                    m.now_kib.store(rss, Ordering::Relaxed);
                    m.peak_kib.fetch_max(rss, Ordering::Relaxed);
                    m.hwm_kib.fetch_max(hwm, Ordering::Relaxed);
                    m.samples.fetch_add(1, Ordering::Relaxed);
                    let mut pids = m.pids.lock().unwrap_or_else(|e| e.into_inner());
                    if !pids.contains(&p) {
                        pids.push(p);
                    }
                } else {
                    m.now_kib.store(0, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    (mem, Some(h))
}

/// Runs `load`; returns whether the server passed.
pub async fn load(a: LoadArgs, client_threads: usize) -> Result<bool> {
    if a.clients == 0 || a.seconds <= 0.0 {
        bail!("--clients and --seconds must be positive");
    }
    let users = users(&a)?;
    let cone_r = range(&a.cone_radius, "--cone-radius")?;
    let scs_r = range(&a.scs_radius, "--scs-radius")?;
    let fk = match a.file_kib.as_slice() {
        [x] => (*x, *x),
        [x, y] if x <= y => (*x, *y),
        _ => bail!("--file-kib: MIN,MAX"),
    };
    let file_bytes = (fk.0.max(1) * 1024, fk.1.max(1) * 1024);
    let mut weights = parse_weights(&a.weights)?;
    let api = Api::new(
        &a.url,
        a.clients + 64,
        Duration::from_millis(a.pool_idle_ms),
        Duration::from_secs_f64(a.timeout),
    )?;
    wait_available(&api, Duration::from_secs(60)).await?;
    let mut notes: Vec<String> = Vec::new();

    let wants = |w: &[(Pick, u32)], p: Pick| w.iter().any(|(q, n)| *q == p && *n > 0);
    if users.is_empty() && wants(&weights, Pick::VoSpace) {
        notes.push("no --user given: no VOSpace operations".into());
        weights.retain(|(p, _)| *p != Pick::VoSpace);
    }
    let dir = format!(
        "load-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    if wants(&weights, Pick::VoSpace) {
        make_dirs(&api, &a.authority, &users, &dir).await?;
    }
    let mut ids = Vec::new();
    if wants(&weights, Pick::Preview) {
        match preview_ids(&api).await {
            Ok(v) if !v.is_empty() => ids = v,
            Ok(_) => {
                notes.push("no product in ivoa.obscore has a preview: no previews".into());
                weights.retain(|(p, _)| *p != Pick::Preview);
            }
            Err(e) => {
                notes.push(format!("no previews: {e:#}"));
                weights.retain(|(p, _)| *p != Pick::Preview);
            }
        }
    }
    let mut picks = Vec::new();
    let mut acc = 0u32;
    for (p, w) in &weights {
        if *w > 0 {
            acc += w;
            picks.push((*p, acc));
        }
    }
    if picks.is_empty() {
        bail!("no operation has a weight");
    }
    for n in &notes {
        eprintln!("load: {n}");
    }

    let t_start = Instant::now();
    let ramp = Duration::from_secs_f64(a.ramp_seconds.max(0.0));
    let deadline = t_start + Duration::from_secs_f64(a.seconds);
    let pool = payload_pool(file_bytes.1 as usize + (1 << 20), a.seed);
    let keep_jobs = a.ledger.is_some();
    let ctx = Arc::new(Ctx {
        api,
        stats: Stats::default(),
        ledger: Mutex::new(Ledger {
            users: users.clone(),
            ..Ledger::default()
        }),
        s: Settings {
            table: a.table.clone(),
            cone_r,
            scs_r,
            download_rows: a.download_rows,
            parse_every: a.parse_every,
            file_bytes,
            keep_files: a.keep_files,
            authority: a.authority.clone(),
            dir: dir.clone(),
            async_r: a.async_radius,
            async_timeout: Duration::from_secs_f64(a.async_timeout),
            keep_jobs,
            chaos: a.chaos,
            restart_grace: Duration::from_secs_f64(a.restart_grace),
            retry_cap: a.retry_after_cap,
        },
        deadline,
        picks,
        preview_ids: ids,
        pool,
        downloads: AtomicU64::new(0),
        md5_mismatches: AtomicU64::new(0),
        lost: AtomicU64::new(0),
    });

    // Samplers: the server's memory, the timeline, the client runtime's lag.
    let stop = Arc::new(AtomicBool::new(false));
    let (mem, mem_thread) = start_mem(a.server_pid, a.server_pid_file.clone(), stop.clone());
    let cpu_pid = a.server_pid;
    let server_cpu0 = cpu_pid.and_then(cpu_seconds);
    let self_cpu0 = cpu_seconds(std::process::id());
    let timeline = {
        let (ctx, mem, stop) = (ctx.clone(), mem.clone(), stop.clone());
        tokio::spawn(async move {
            let mut out = Vec::new();
            let l = &ctx.stats.live;
            let mut prev = [0u64; 6];
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut sec = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                sec += 1;
                let now = [
                    l.ops.load(Ordering::Relaxed),
                    l.ok.load(Ordering::Relaxed),
                    l.r503.load(Ordering::Relaxed),
                    l.r5xx.load(Ordering::Relaxed),
                    l.net.load(Ordering::Relaxed),
                    l.wrong.load(Ordering::Relaxed),
                ];
                let d: Vec<u64> = now.iter().zip(prev).map(|(a, b)| a - b).collect();
                prev = now;
                let rss = mem.now_kib.load(Ordering::Relaxed);
                if sec.is_multiple_of(5) {
                    eprintln!(
                        "load: {sec:>4} s: {} ops/s ({} ok), 503: {}, other 5xx: {}, connection errors: {}, wrong: {}; server RSS {:.0} MiB",
                        d[0], d[1], d[2], d[3], d[4], d[5], rss as f64 / 1024.0
                    );
                }
                out.push(serde_json::json!({
                    "t": sec, "ops": d[0], "ok": d[1], "r503": d[2], "r5xx": d[3],
                    "net_errors": d[4], "wrong": d[5], "rss_kib": rss,
                }));
            }
            out
        })
    };
    let lag = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut v = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                tokio::time::sleep(Duration::from_millis(20)).await;
                v.push(((t.elapsed().as_secs_f64() - 0.020).max(0.0) * 1e3) as f32);
            }
            v
        })
    };
    let probe = (a.probe_ms > 0).then(|| {
        work::spawn_probe(
            ctx.api.base.clone(),
            a.table.clone(),
            deadline,
            Duration::from_millis(a.probe_ms),
            a.probe_radius,
            a.probe_scs,
            a.seed,
        )
    });

    eprintln!(
        "load: {} clients for {} s against {} (users: {}, weights: {})",
        a.clients,
        a.seconds,
        ctx.api.base,
        users.len(),
        a.weights
    );
    let mut handles = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        let delay = ramp.mul_f64(i as f64 / a.clients as f64);
        handles.push(tokio::spawn(work::client(ctx.clone(), i, a.seed, delay)));
    }
    // Operations in flight at the deadline finish (each bounded by its timeout).
    let grace = Duration::from_secs_f64(a.timeout.max(a.async_timeout) + 30.0);
    let mut stuck = 0usize;
    let end_by = deadline + grace;
    for h in handles {
        let left = end_by.saturating_duration_since(Instant::now());
        let abort = h.abort_handle();
        match tokio::time::timeout(left, h).await {
            Ok(_) => {}
            Err(_) => {
                abort.abort();
                stuck += 1;
            }
        }
    }
    let load_seconds = t_start.elapsed().as_secs_f64();
    if let Some(p) = probe {
        let ks = tokio::task::spawn_blocking(move || p.join())
            .await
            .map_err(|e| anyhow!("probe: {e}"))?
            .map_err(|_| anyhow!("the probe thread panicked"))?;
        ctx.stats.insert(Kind::Probe, ks);
    }
    let server_cpu = match (server_cpu0, cpu_pid.and_then(cpu_seconds)) {
        (Some(a0), Some(a1)) => Some(a1 - a0),
        _ => None,
    };
    let self_cpu = match (self_cpu0, cpu_seconds(std::process::id())) {
        (Some(a0), Some(a1)) => Some(a1 - a0),
        _ => None,
    };

    // The ledger, then its check.
    let ledger = Arc::new(std::mem::take(
        &mut *ctx.ledger.lock().unwrap_or_else(|e| e.into_inner()),
    ));
    if let Some(p) = &a.ledger {
        ledger.save(p)?;
        eprintln!("load: ledger written to {}", p.display());
    }
    let verified = if a.skip_verify {
        None
    } else {
        let (c, d, u) = ledger.counts();
        eprintln!(
            "load: checking {c} committed files ({d} deletes and {u} uploads unacknowledged) and {} jobs",
            ledger.jobs.len()
        );
        let wait = Duration::from_secs_f64(if a.chaos { a.restart_grace } else { 30.0 });
        Some(
            ledger::verify(
                &ctx.api,
                ledger.clone(),
                &ctx.stats,
                a.verify_concurrency,
                wait,
                a.retry_after_cap.max(1.0),
            )
            .await,
        )
    };
    stop.store(true, Ordering::Relaxed);
    let timeline = timeline.await.unwrap_or_default();
    let lag = lag.await.unwrap_or_default();
    if let Some(h) = mem_thread {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    let pids = mem.pids.lock().map(|p| p.clone()).unwrap_or_default();
    let rep = report::LoadReport {
        args: &a,
        client_threads,
        kinds: ctx.stats.take(),
        load_seconds,
        notes,
        users: users.len(),
        dir,
        preview_ids: ctx.preview_ids.len(),
        rss_peak_kib: mem.peak_kib.load(Ordering::Relaxed),
        rss_hwm_kib: mem.hwm_kib.load(Ordering::Relaxed),
        rss_samples: mem.samples.load(Ordering::Relaxed),
        server_pids: pids,
        server_cpu,
        self_cpu,
        lag_ms: lag,
        timeline,
        stuck_clients: stuck,
        md5_mismatches: ctx.md5_mismatches.load(Ordering::Relaxed),
        lost: ctx.lost.load(Ordering::Relaxed),
        ledger_counts: ledger.counts(),
        ledger_jobs: ledger.jobs.len(),
        verified,
    };
    let (md, json, pass) = rep.render();
    println!("{md}");
    if let Some(p) = &a.markdown {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("load: wrote {}", p.display());
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("load: wrote {}", p.display());
    }
    Ok(pass)
}

/// Runs `verify`; returns whether every entry is intact.
pub async fn verify(a: VerifyArgs) -> Result<bool> {
    let ledger = Arc::new(Ledger::load(&a.ledger)?);
    let api = Api::new(
        &a.url,
        a.concurrency + 4,
        Duration::from_secs(2),
        Duration::from_secs(120),
    )?;
    let wait = Duration::from_secs_f64(a.wait);
    wait_available(&api, wait).await?;
    let stats = Stats::default();
    let (c, d, u) = ledger.counts();
    eprintln!(
        "verify: {c} committed files, {d} unacknowledged deletes, {u} unacknowledged uploads, {} completed jobs",
        ledger.jobs.len()
    );
    let v = ledger::verify(&api, ledger.clone(), &stats, a.concurrency, wait, 5.0).await;
    let kinds = stats.take();
    let vs = kinds.get(&Kind::Verify);
    let r5xx = vs.map(|k| k.r5xx).unwrap_or(0);
    println!("verify: {}", v.summary());
    for p in v.problems.iter().chain(v.unverified.iter()).take(100) {
        println!("  {p}");
    }
    if r5xx > 0 {
        println!("verify: {r5xx} responses with a 5xx status other than 503");
    }
    if let Some(p) = &a.json {
        let mut j = v.json();
        j["requests"] = vs.map(|k| k.json()).unwrap_or_default();
        std::fs::write(p, serde_json::to_string_pretty(&j)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(v.clean() && r5xx == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_weights() {
        let u = parse_user("alice:abc").unwrap();
        assert_eq!((u.name.as_str(), u.token.as_str()), ("alice", "abc"));
        let u = parse_user("bob  xyz").unwrap();
        assert_eq!((u.name.as_str(), u.token.as_str()), ("bob", "xyz"));
        assert!(parse_user("nobody").is_err());
        let w = parse_weights("cone=3,vospace=0,preview=1").unwrap();
        assert_eq!(
            w,
            vec![(Pick::TapCone, 3), (Pick::VoSpace, 0), (Pick::Preview, 1)]
        );
        assert!(parse_weights("cones=1").is_err());
        assert_eq!(range(&[0.1, 1.0], "x").unwrap(), (0.1, 1.0));
        assert!(range(&[2.0, 1.0], "x").is_err());
    }

    #[test]
    fn own_cpu() {
        assert!(cpu_seconds(std::process::id()).is_some());
    }

    #[test]
    fn pools() {
        let p = payload_pool(1001, 1);
        assert_eq!(p.len(), 1001);
        assert_eq!(p, payload_pool(1001, 1));
    }
}
