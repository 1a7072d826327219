//! The side-by-side table (terminal and Markdown) and the JSON record.

use serde_json::{json, Value};

use crate::mem::Peaks;
use crate::run::{CaseResult, Kind, RunConfig, TargetResult};

/// Everything a report shows.
pub struct Report<'a> {
    /// The run's settings.
    pub cfg: &'a RunConfig,
    /// Per workload.
    pub results: &'a [CaseResult],
    /// Memory peaks over the whole run.
    pub mem: Peaks,
    /// vostok's pid, when sampled.
    pub vostok_pid: Option<u32>,
    /// The postmaster's pid, when sampled.
    pub pg_pid: Option<u32>,
    /// PostgreSQL version, extensions, settings.
    pub pg_info: Value,
    /// Failed responses.
    pub failures: &'a [String],
    /// Wall time of the measurements.
    pub wall_seconds: f64,
}

/// Three significant figures or so (milliseconds, requests per second).
fn ms(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

fn big(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.1} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

fn pcts(t: Option<&TargetResult>) -> String {
    match t {
        Some(t) => format!(
            "{} / {} / {}",
            ms(t.latency.p50),
            ms(t.latency.p95),
            ms(t.latency.p99)
        ),
        None => "–".into(),
    }
}

fn rates(t: Option<&TargetResult>) -> String {
    match t {
        Some(t) => t
            .throughput
            .iter()
            .map(|x| ms(x.req_s))
            .collect::<Vec<_>>()
            .join(" / "),
        None => "–".into(),
    }
}

/// Bytes per second at the concurrency with the most requests per second.
fn best_mbs(t: Option<&TargetResult>) -> String {
    t.and_then(|t| {
        t.throughput
            .iter()
            .max_by(|a, b| a.req_s.total_cmp(&b.req_s))
    })
    .map(|x| format!("{:.2}", x.bytes_s / 1e6))
    .unwrap_or_else(|| "–".into())
}

/// A padded pipe table (valid Markdown, readable in a terminal).
fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let width: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            let pad = width[i] - c.chars().count();
            if i == 0 {
                s.push_str(&format!(" {c}{} |", " ".repeat(pad)));
            } else {
                s.push_str(&format!(" {}{c} |", " ".repeat(pad)));
            }
        }
        s
    };
    let mut out = line(header);
    out.push('\n');
    out.push('|');
    for (i, w) in width.iter().enumerate() {
        if i == 0 {
            out.push_str(&format!(" {} |", "-".repeat(*w)));
        } else {
            out.push_str(&format!(" {}: |", "-".repeat(w - 1)));
        }
    }
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

impl Report<'_> {
    fn conc(&self) -> String {
        self.cfg
            .concurrency
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("/")
    }

    fn main_table(&self) -> Option<String> {
        let rows: Vec<Vec<String>> = self
            .results
            .iter()
            .filter(|r| !r.case.scale)
            .map(|r| {
                let v = r.vostok.as_ref();
                let p = r.pg.as_ref();
                let ratio = match (v, p) {
                    (Some(v), Some(p)) => format!("{:.2}×", p.latency.p50 / v.latency.p50),
                    _ => "–".into(),
                };
                vec![
                    r.case.label.clone(),
                    v.map(|v| format!("{:.1}", v.latency.rows_mean))
                        .unwrap_or_default(),
                    pcts(v),
                    pcts(p),
                    ratio,
                    rates(v),
                    rates(p),
                    best_mbs(v),
                    best_mbs(p),
                ]
            })
            .collect();
        if rows.is_empty() {
            return None;
        }
        let c = self.conc();
        let header = [
            "workload".to_string(),
            "rows/req".into(),
            "vostok p50/p95/p99 ms".into(),
            "PG p50/p95/p99 ms".into(),
            "p50 PG÷vostok".into(),
            format!("vostok req/s c={c}"),
            format!("PG req/s c={c}"),
            "vostok MB/s".into(),
            "PG MB/s".into(),
        ];
        Some(table(&header, &rows))
    }

    fn scale_table(&self) -> Option<String> {
        let rows: Vec<Vec<String>> = self
            .results
            .iter()
            .filter(|r| r.case.scale)
            .map(|r| {
                let v = r.vostok.as_ref();
                let scan = match (r.case.kind, v) {
                    (Kind::Scan, Some(v)) => {
                        let best = v.throughput.iter().map(|t| t.req_s).fold(0.0, f64::max);
                        format!(
                            "{} / {}",
                            big(r.case.table_rows as f64 / (v.latency.p50 / 1e3)),
                            big(r.case.table_rows as f64 * best)
                        )
                    }
                    _ => "–".into(),
                };
                vec![
                    r.case.label.clone(),
                    big(r.case.table_rows as f64),
                    v.map(|v| format!("{:.1}", v.latency.rows_mean))
                        .unwrap_or_default(),
                    pcts(v),
                    rates(v),
                    best_mbs(v),
                    scan,
                ]
            })
            .collect();
        if rows.is_empty() {
            return None;
        }
        let header = [
            "scale workload (vostok only)".to_string(),
            "table rows".into(),
            "rows/req".into(),
            "p50/p95/p99 ms".into(),
            format!("req/s c={}", self.conc()),
            "MB/s".into(),
            "rows scanned/s (p50 / best c)".into(),
        ];
        Some(table(&header, &rows))
    }

    fn memory_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(pid) = self.vostok_pid {
            out.push(format!(
                "vostok (pid {pid}): peak VmRSS {} MiB, VmHWM {} MiB",
                mib(self.mem.vostok_rss_kib),
                mib(self.mem.vostok_hwm_kib)
            ));
        }
        if let Some(pid) = self.pg_pid {
            out.push(format!(
                "PostgreSQL (postmaster {pid} and children, up to {} processes): peak ΣPSS {} MiB, peak ΣVmRSS {} MiB (RSS counts shared buffers once per process)",
                self.mem.pg_procs,
                mib(self.mem.pg_pss_kib),
                mib(self.mem.pg_rss_kib)
            ));
        }
        out
    }

    fn settings_lines(&self) -> Vec<String> {
        let c = self.cfg;
        let mut out = vec![
            format!("vostok: {}", c.vostok),
            format!(
                "latency phase: sequential, at most {} requests or {} s per workload and server, after {} checked warm-up requests; latency = request sent to last body byte (vostok) / last row decoded (PostgreSQL, binary protocol, prepared statement)",
                c.requests, c.seconds, c.warmup
            ),
            format!(
                "throughput phase: {} s per concurrency level ({}), one keep-alive HTTP client shared by the tasks / one PostgreSQL connection per task",
                c.throughput_seconds,
                self.conc()
            ),
            format!(
                "load generator: tokio runtime with {} worker thread(s); every response checked (HTTP 200, VOTable parses, QUERY_STATUS OK, row count = brute force)",
                c.client_threads
            ),
            format!(
                "cones: {} centres uniform on the sphere (seed {}), brute force by haversine in f64, edge tolerance {:e}°",
                c.pool, c.seed, c.tolerance
            ),
        ];
        if !self.pg_info.is_null() {
            out.push(format!(
                "PostgreSQL: {} ({}); {}",
                self.pg_info["version"].as_str().unwrap_or(""),
                self.pg_info["extensions"].as_str().unwrap_or(""),
                self.pg_info["settings"].as_str().unwrap_or("")
            ));
        }
        out.push(format!("measured for {:.0} s", self.wall_seconds));
        out
    }

    /// For stdout.
    pub fn terminal(&self) -> String {
        let mut s = String::new();
        for l in self.settings_lines() {
            s.push_str(&format!("# {l}\n"));
        }
        s.push('\n');
        if let Some(t) = self.main_table() {
            s.push_str(&t);
            s.push('\n');
        }
        if let Some(t) = self.scale_table() {
            s.push_str(&t);
            s.push('\n');
        }
        for l in self.memory_lines() {
            s.push_str(&format!("memory: {l}\n"));
        }
        s.push_str(&format!(
            "correctness: {} failed responses\n",
            self.failures.len()
        ));
        s
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut s = String::from("# vostok vs PostgreSQL + pgSphere + q3c\n\n");
        for l in self.settings_lines() {
            s.push_str(&format!("- {l}\n"));
        }
        s.push('\n');
        if let Some(t) = self.main_table() {
            s.push_str(&t);
            s.push_str("\np50 PG÷vostok above 1 means vostok is faster. Bytes: HTTP body (vostok, VOTable) vs DataRow messages (PostgreSQL binary protocol).\n\n");
        }
        if let Some(t) = self.scale_table() {
            s.push_str(&t);
            s.push('\n');
        }
        let mem = self.memory_lines();
        if !mem.is_empty() {
            s.push_str("## Memory\n\n");
            for l in mem {
                s.push_str(&format!("- {l}\n"));
            }
            let rows: Vec<Vec<String>> = self
                .results
                .iter()
                .map(|r| {
                    vec![
                        r.case.label.clone(),
                        r.vostok
                            .as_ref()
                            .filter(|_| self.vostok_pid.is_some())
                            .map(|v| mib(v.mem.vostok_rss_kib))
                            .unwrap_or_else(|| "–".into()),
                        r.pg.as_ref()
                            .filter(|_| self.pg_pid.is_some())
                            .map(|p| {
                                format!("{} / {}", mib(p.mem.pg_pss_kib), mib(p.mem.pg_rss_kib))
                            })
                            .unwrap_or_else(|| "–".into()),
                    ]
                })
                .collect();
            s.push('\n');
            s.push_str(&table(
                &[
                    "workload".into(),
                    "vostok peak RSS MiB".into(),
                    "PG peak ΣPSS / ΣRSS MiB".into(),
                ],
                &rows,
            ));
            s.push('\n');
        }
        s.push_str(&format!(
            "## Correctness\n\n{} failed responses.\n",
            self.failures.len()
        ));
        for f in self.failures.iter().take(100) {
            s.push_str(&format!("- {f}\n"));
        }
        s
    }

    /// The JSON record.
    pub fn json(&self) -> Value {
        let target = |t: &TargetResult, is_pg: bool| {
            let memory = match (is_pg, self.vostok_pid, self.pg_pid) {
                (false, Some(_), _) => t.mem.vostok_json(),
                (true, _, Some(_)) => t.mem.pg_json(),
                _ => Value::Null,
            };
            json!({
                "latency_ms": {
                    "n": t.latency.n,
                    "p50": t.latency.p50, "p95": t.latency.p95, "p99": t.latency.p99,
                    "mean": t.latency.mean, "min": t.latency.min, "max": t.latency.max,
                },
                "rows_per_request": t.latency.rows_mean,
                "bytes_per_request": t.latency.bytes_mean,
                "client_votable_parse_ms_mean": t.latency.decode_mean,
                "throughput": t.throughput.iter().map(|x| json!({
                    "concurrency": x.concurrency, "requests": x.n, "seconds": x.elapsed,
                    "req_per_s": x.req_s, "bytes_per_s": x.bytes_s, "rows_per_s": x.rows_s,
                })).collect::<Vec<_>>(),
                "failures": t.failures,
                "memory": memory,
            })
        };
        let c = self.cfg;
        json!({
            "settings": {
                "vostok": c.vostok,
                "requests": c.requests,
                "seconds": c.seconds,
                "throughput_seconds": c.throughput_seconds,
                "concurrency": c.concurrency,
                "warmup": c.warmup,
                "pool": c.pool,
                "seed": c.seed,
                "tolerance_deg": c.tolerance,
                "client_threads": c.client_threads,
                "scale_r0": c.scale_r0,
                "scale_n0": c.scale_n0,
            },
            "postgres": self.pg_info,
            "results": self.results.iter().map(|r| json!({
                "id": r.case.id,
                "label": r.case.label,
                "kind": format!("{:?}", r.case.kind),
                "table": r.case.table,
                "table_rows": r.case.table_rows,
                "radius_deg": if matches!(r.case.kind, Kind::TapCone | Kind::Scs) { json!(r.case.r) } else { Value::Null },
                "scale": r.case.scale,
                "vostok": r.vostok.as_ref().map(|t| target(t, false)),
                "postgres": r.pg.as_ref().map(|t| target(t, true)),
            })).collect::<Vec<_>>(),
            "memory": {
                "vostok_pid": self.vostok_pid,
                "postmaster_pid": self.pg_pid,
                "peaks": self.mem.to_json(),
            },
            "wall_seconds": self.wall_seconds,
            "failures": self.failures,
        })
    }
}
