//! The load report: a Markdown table per kind, the probe, memory, the ledger check, and the
//! verdict with its reasons.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::ledger::Verified;
use super::stats::{pct, sorted, Kind, KindStats};
use super::LoadArgs;

/// Everything measured.
pub struct LoadReport<'a> {
    /// The command line.
    pub args: &'a LoadArgs,
    /// Worker threads of the client runtime.
    pub client_threads: usize,
    /// Per kind.
    pub kinds: BTreeMap<Kind, KindStats>,
    /// Wall time of the load (until the last client stopped).
    pub load_seconds: f64,
    /// Things left out, and why.
    pub notes: Vec<String>,
    /// VOSpace users.
    pub users: usize,
    /// This run's folder in each user's home.
    pub dir: String,
    /// DataLink ids with a preview.
    pub preview_ids: usize,
    /// Peak VmRSS sampled (KiB).
    pub rss_peak_kib: u64,
    /// Highest VmHWM seen (KiB).
    pub rss_hwm_kib: u64,
    /// Memory samples taken.
    pub rss_samples: u64,
    /// Server pids seen.
    pub server_pids: Vec<u32>,
    /// Server CPU seconds during the load (one pid only).
    pub server_cpu: Option<f64>,
    /// Load generator CPU seconds.
    pub self_cpu: Option<f64>,
    /// Lateness of a 20 ms timer on the client runtime (ms).
    pub lag_ms: Vec<f32>,
    /// Per second.
    pub timeline: Vec<Value>,
    /// Clients still in an operation long after the end (aborted).
    pub stuck_clients: usize,
    /// MD5 mismatches seen during the load.
    pub md5_mismatches: u64,
    /// Committed files found missing during the load.
    pub lost: u64,
    /// (committed, deleting, uncertain) files in the ledger.
    pub ledger_counts: (usize, usize, usize),
    /// Completed jobs kept in the ledger.
    pub ledger_jobs: usize,
    /// The final check.
    pub verified: Option<Verified>,
}

fn ms(x: Option<f32>) -> String {
    match x {
        None => "–".into(),
        Some(x) if x < 10.0 => format!("{x:.2}"),
        Some(x) if x < 100.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.0}"),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

/// A padded pipe table.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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
    let line = |cells: Vec<&str>| {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            let pad = " ".repeat(width[i] - c.chars().count());
            if i == 0 || i == n - 1 {
                s.push_str(&format!(" {c}{pad} |"));
            } else {
                s.push_str(&format!(" {pad}{c} |"));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    out.push('|');
    for (i, w) in width.iter().enumerate() {
        if i == 0 || i == n - 1 {
            out.push_str(&format!(" {} |", "-".repeat(*w)));
        } else {
            out.push_str(&format!(" {}: |", "-".repeat(w - 1)));
        }
    }
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn statuses(k: &KindStats) -> String {
    k.statuses
        .iter()
        .map(|(s, n)| format!("{s}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl LoadReport<'_> {
    fn totals(&self) -> KindStats {
        let mut t = KindStats::default();
        for k in self.kinds.values() {
            t.ops += k.ops;
            t.ok += k.ok;
            t.r503 += k.r503;
            t.r503_retry_after += k.r503_retry_after;
            t.r5xx += k.r5xx;
            t.timeouts += k.timeouts;
            t.resets += k.resets;
            t.connect_errors += k.connect_errors;
            t.other_errors += k.other_errors;
            t.wrong += k.wrong;
            t.query_errors += k.query_errors;
            t.busy_200 += k.busy_200;
            t.bytes += k.bytes;
            for (s, n) in &k.statuses {
                *t.statuses.entry(*s).or_default() += n;
            }
        }
        t
    }

    /// Failures (exit status 1) and warnings.
    fn verdict(&self) -> (Vec<String>, Vec<String>) {
        let t = self.totals();
        let mut fail = Vec::new();
        let mut warn = Vec::new();
        if t.r5xx > 0 {
            let codes: Vec<String> = t
                .statuses
                .iter()
                .filter(|(s, _)| **s >= 500 && **s != 503)
                .map(|(s, n)| format!("{s}×{n}"))
                .collect();
            fail.push(format!(
                "{} responses with a 5xx status other than 503 ({})",
                t.r5xx,
                codes.join(", ")
            ));
        }
        let no_ra = t.r503 - t.r503_retry_after;
        if no_ra > 0 {
            fail.push(format!(
                "{no_ra} of {} 503 responses had no Retry-After (the documented answer of a busy server is 503 + Retry-After)",
                t.r503
            ));
        }
        let conn = t.conn_errors();
        if conn > 0 {
            let what = format!(
                "{conn} connection errors ({} resets/closed, {} could not connect, {} other)",
                t.resets, t.connect_errors, t.other_errors
            );
            if self.args.chaos {
                warn.push(format!("{what}: expected, the server was killed"));
            } else {
                fail.push(what);
            }
        }
        if t.wrong > 0 {
            fail.push(format!(
                "{} wrong answers ({} MD5 mismatches, {} committed files missing, {} other)",
                t.wrong,
                self.md5_mismatches,
                self.lost,
                t.wrong.saturating_sub(self.md5_mismatches + self.lost)
            ));
        }
        if let Some(v) = &self.verified {
            if !v.problems.is_empty() {
                fail.push(format!(
                    "final check: {} committed files or job results lost or corrupted",
                    v.problems.len()
                ));
            }
            if !v.unverified.is_empty() {
                fail.push(format!(
                    "final check: {} entries could not be checked",
                    v.unverified.len()
                ));
            }
        }
        if let Some(b) = self.args.rss_budget_mib {
            let peak = self.rss_peak_kib as f64 / 1024.0;
            if self.rss_samples == 0 {
                fail.push("no memory sample of the server (--server-pid)".into());
            } else if peak > b {
                fail.push(format!(
                    "server peak VmRSS {peak:.0} MiB is above the budget of {b:.0} MiB"
                ));
            }
        }
        if t.timeouts > 0 {
            warn.push(format!(
                "{} client timeouts (--timeout {} s, async jobs {} s)",
                t.timeouts, self.args.timeout, self.args.async_timeout
            ));
        }
        if t.busy_200 > 0 {
            let kinds: Vec<String> = self
                .kinds
                .iter()
                .filter(|(_, s)| s.busy_200 > 0)
                .map(|(k, s)| format!("{} ×{}", k.id(), s.busy_200))
                .collect();
            warn.push(format!(
                "{} refusals of a busy server came as HTTP 200 with QUERY_STATUS ERROR, not as 503 + Retry-After ({})",
                t.busy_200,
                kinds.join(", ")
            ));
        }
        if t.query_errors > 0 {
            warn.push(format!(
                "{} queries or jobs ended in ERROR (see the samples)",
                t.query_errors
            ));
        }
        if let Some(p) = self.kinds.get(&Kind::Probe) {
            let all = sorted(&p.lat_all);
            if let Some(p99) = pct(&all, 99.0) {
                if f64::from(p99) > self.args.probe_goal_ms {
                    warn.push(format!(
                        "probe p99 {} ms is above the goal of {} ms",
                        ms(Some(p99)),
                        self.args.probe_goal_ms
                    ));
                }
            }
            if p.ok < p.ops {
                warn.push(format!(
                    "probe: {} of {} cones did not succeed",
                    p.ops - p.ok,
                    p.ops
                ));
            }
        }
        if self.stuck_clients > 0 {
            warn.push(format!(
                "{} clients were still in an operation long after the end (aborted)",
                self.stuck_clients
            ));
        }
        if let (Some(c), true) = (self.self_cpu, self.load_seconds > 0.0) {
            let share = c / self.load_seconds / self.client_threads as f64;
            if share > 0.9 {
                warn.push(format!(
                    "the load generator used {:.0}% of its {} thread(s): it may be the bottleneck",
                    share * 100.0,
                    self.client_threads
                ));
            }
        }
        (fail, warn)
    }

    /// Markdown, JSON, and whether the server passed.
    pub fn render(&self) -> (String, Value, bool) {
        let a = self.args;
        let (fail, warn) = self.verdict();
        let mut md = String::from("# vostok under load\n\n");
        md.push_str(&format!(
            "- {} clients for {} s against {} ({}), {:.1} s until the last one stopped; client runtime: {} thread(s)\n",
            a.clients,
            a.seconds,
            a.url,
            if a.chaos { "chaos: the server is killed and restarted" } else { "no restarts" },
            self.load_seconds,
            self.client_threads
        ));
        md.push_str(&format!(
            "- weights: {}; table {}; TAP cones {}–{}°, cone search {}–{}°; downloads {} rows BINARY2; files {}–{} KiB, {} kept per client; {} VOSpace users (folder `{}`); {} products with previews\n",
            a.weights,
            a.table,
            a.cone_radius.first().unwrap_or(&0.0),
            a.cone_radius.last().unwrap_or(&0.0),
            a.scs_radius.first().unwrap_or(&0.0),
            a.scs_radius.last().unwrap_or(&0.0),
            a.download_rows,
            a.file_kib.first().unwrap_or(&0),
            a.file_kib.last().unwrap_or(&0),
            a.keep_files,
            self.users,
            self.dir,
            self.preview_ids
        ));
        md.push_str(&format!(
            "- a 503 makes a client wait its Retry-After (at most {} s); request timeout {} s\n",
            a.retry_after_cap, a.timeout
        ));
        for n in &self.notes {
            md.push_str(&format!("- note: {n}\n"));
        }
        md.push('\n');
        let header = [
            "kind",
            "ops",
            "ok",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "503 (Retry-After)",
            "other 5xx",
            "conn errors",
            "timeouts",
            "wrong",
            "query errors",
            "busy as 200",
            "statuses",
        ];
        let mut rows = Vec::new();
        for k in Kind::ALL {
            let Some(s) = self.kinds.get(&k) else {
                continue;
            };
            let ok = sorted(&s.lat_ok);
            rows.push(vec![
                k.id().to_string(),
                s.ops.to_string(),
                s.ok.to_string(),
                ms(pct(&ok, 50.0)),
                ms(pct(&ok, 90.0)),
                ms(pct(&ok, 99.0)),
                ms(ok.last().copied()),
                format!("{} ({})", s.r503, s.r503_retry_after),
                s.r5xx.to_string(),
                s.conn_errors().to_string(),
                s.timeouts.to_string(),
                s.wrong.to_string(),
                s.query_errors.to_string(),
                s.busy_200.to_string(),
                statuses(s),
            ]);
        }
        let t = self.totals();
        rows.push(vec![
            "**all**".into(),
            t.ops.to_string(),
            t.ok.to_string(),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
            format!("{} ({})", t.r503, t.r503_retry_after),
            t.r5xx.to_string(),
            t.conn_errors().to_string(),
            t.timeouts.to_string(),
            t.wrong.to_string(),
            t.query_errors.to_string(),
            t.busy_200.to_string(),
            statuses(&t),
        ]);
        md.push_str(&table(&header, &rows));
        md.push_str("\nLatencies are of successful operations (an async job: submission to result; vospace_put: negotiation and upload). `statuses` counts every HTTP response of the kind.\n\n");

        // The probe.
        let probe = self.kinds.get(&Kind::Probe).map(|p| {
            let all = sorted(&p.lat_all);
            let ok = sorted(&p.lat_ok);
            (
                p.ops,
                p.ok,
                pct(&ok, 50.0),
                pct(&ok, 99.0),
                pct(&all, 50.0),
                pct(&all, 99.0),
                all.last().copied(),
            )
        });
        if let Some((n, ok, p50, p99, a50, a99, max)) = probe {
            md.push_str(&format!(
                "**Probe** ({} {}° every {} ms on its own connection and thread): {n} requests, {ok} ok; successful p50 {} ms, p99 {} ms; every answer p50 {} ms, p99 {} ms, max {} ms (goal: p99 < {} ms).\n\n",
                if a.probe_scs { "cone search" } else { "TAP sync cone" },
                a.probe_radius,
                a.probe_ms,
                ms(p50),
                ms(p99),
                ms(a50),
                ms(a99),
                ms(max),
                a.probe_goal_ms
            ));
        }
        // Memory and CPU.
        let budget = a
            .rss_budget_mib
            .map(|b| format!(" (budget {b:.0} MiB)"))
            .unwrap_or_default();
        if self.rss_samples > 0 {
            md.push_str(&format!(
                "**Server memory**: peak VmRSS {} MiB{budget}, VmHWM {} MiB ({} samples, pid {}).\n",
                mib(self.rss_peak_kib),
                mib(self.rss_hwm_kib),
                self.rss_samples,
                self.server_pids
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else {
            md.push_str("**Server memory**: not sampled (no --server-pid).\n");
        }
        let lag = sorted(&self.lag_ms);
        md.push_str(&format!(
            "**CPU**: server {}, load generator {}; client runtime timer lateness p50 {} ms, p99 {} ms.\n\n",
            self.server_cpu
                .map(|c| format!("{c:.1} s ({:.0}% of one core)", 100.0 * c / self.load_seconds))
                .unwrap_or_else(|| "–".into()),
            self.self_cpu
                .map(|c| format!("{c:.1} s ({:.0}% of one core)", 100.0 * c / self.load_seconds))
                .unwrap_or_else(|| "–".into()),
            ms(pct(&lag, 50.0)),
            ms(pct(&lag, 99.0)),
        ));
        // The ledger.
        let (c, d, u) = self.ledger_counts;
        md.push_str(&format!(
            "**Ledger**: {c} committed files, {d} unacknowledged deletes, {u} unacknowledged uploads, {} completed jobs kept.\n",
            self.ledger_jobs
        ));
        match &self.verified {
            Some(v) => {
                md.push_str(&format!("**Final check**: {}.\n", v.summary()));
                for p in v.problems.iter().chain(v.unverified.iter()).take(40) {
                    md.push_str(&format!("- {p}\n"));
                }
            }
            None => md.push_str("**Final check**: skipped (--skip-verify).\n"),
        }
        md.push('\n');
        // Samples of what went wrong.
        let mut samples = String::new();
        for k in Kind::ALL {
            if let Some(s) = self.kinds.get(&k) {
                // Connection errors are many and alike when the server is killed: two per kind.
                let net = s.net_samples.iter().take(if a.chaos { 2 } else { 4 });
                for m in s.samples.iter().chain(net) {
                    let m: String = m.chars().take(300).collect();
                    samples.push_str(&format!("- {}: {m}\n", k.id()));
                }
            }
        }
        if !samples.is_empty() {
            md.push_str("## Samples of errors\n\n");
            md.push_str(&samples);
            md.push('\n');
        }
        md.push_str("## Verdict\n\n");
        if fail.is_empty() {
            md.push_str("PASS\n");
        } else {
            md.push_str("FAIL\n");
            for f in &fail {
                md.push_str(&format!("- {f}\n"));
            }
        }
        for w in &warn {
            md.push_str(&format!("- warning: {w}\n"));
        }

        let kinds: serde_json::Map<String, Value> = self
            .kinds
            .iter()
            .map(|(k, s)| (k.id().to_string(), s.json()))
            .collect();
        let json = json!({
            "settings": {
                "url": a.url, "clients": a.clients, "seconds": a.seconds, "weights": a.weights,
                "table": a.table, "cone_radius": a.cone_radius, "scs_radius": a.scs_radius,
                "download_rows": a.download_rows, "file_kib": a.file_kib, "keep_files": a.keep_files,
                "timeout": a.timeout, "async_timeout": a.async_timeout, "retry_after_cap": a.retry_after_cap,
                "probe_ms": a.probe_ms, "probe_radius": a.probe_radius, "probe_scs": a.probe_scs,
                "rss_budget_mib": a.rss_budget_mib, "chaos": a.chaos, "seed": a.seed,
                "client_threads": self.client_threads, "users": self.users, "folder": self.dir,
                "preview_ids": self.preview_ids,
            },
            "notes": self.notes,
            "load_seconds": self.load_seconds,
            "kinds": kinds,
            "totals": self.totals().json(),
            "memory": {
                "peak_vmrss_kib": self.rss_peak_kib, "vmhwm_kib": self.rss_hwm_kib,
                "samples": self.rss_samples, "pids": self.server_pids,
                "budget_mib": a.rss_budget_mib,
            },
            "cpu_seconds": { "server": self.server_cpu, "load_generator": self.self_cpu },
            "client_timer_lateness_ms": {
                "p50": pct(&lag, 50.0), "p99": pct(&lag, 99.0), "max": lag.last().copied(),
            },
            "md5_mismatches": self.md5_mismatches,
            "lost_during_load": self.lost,
            "ledger": {
                "committed_files": c, "unacknowledged_deletes": d, "unacknowledged_uploads": u,
                "completed_jobs": self.ledger_jobs,
            },
            "final_check": self.verified.as_ref().map(Verified::json),
            "stuck_clients": self.stuck_clients,
            "timeline": self.timeline,
            "verdict": { "pass": fail.is_empty(), "failures": fail, "warnings": warn },
        });
        (md, json, fail.is_empty())
    }
}
