//! Memory of the servers under test, sampled from /proc on a plain thread every 100 ms.
//!
//! vostok: VmRSS (peak of the samples) and VmHWM (the kernel's own high-water mark) of one pid.
//! PostgreSQL: the postmaster and all its children (backends, parallel workers, background
//! processes), summed: VmRSS, which counts the shared buffers once per process that touched
//! them, and Pss from smaps_rollup, which shares them out and so adds up to the real footprint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Peaks in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peaks {
    /// vostok: highest VmRSS sampled.
    pub vostok_rss_kib: u64,
    /// vostok: VmHWM at the last sample.
    pub vostok_hwm_kib: u64,
    /// PostgreSQL: highest sum of VmRSS.
    pub pg_rss_kib: u64,
    /// PostgreSQL: highest sum of Pss.
    pub pg_pss_kib: u64,
    /// PostgreSQL: most processes seen at once.
    pub pg_procs: u64,
}

impl Peaks {
    fn max(&mut self, o: &Peaks) {
        self.vostok_rss_kib = self.vostok_rss_kib.max(o.vostok_rss_kib);
        self.vostok_hwm_kib = self.vostok_hwm_kib.max(o.vostok_hwm_kib);
        self.pg_rss_kib = self.pg_rss_kib.max(o.pg_rss_kib);
        self.pg_pss_kib = self.pg_pss_kib.max(o.pg_pss_kib);
        self.pg_procs = self.pg_procs.max(o.pg_procs);
    }

    /// vostok's part, as JSON.
    pub fn vostok_json(self) -> serde_json::Value {
        serde_json::json!({
            "peak_rss_kib": self.vostok_rss_kib,
            "vmhwm_kib": self.vostok_hwm_kib,
        })
    }

    /// PostgreSQL's part, as JSON.
    pub fn pg_json(self) -> serde_json::Value {
        serde_json::json!({
            "peak_sum_rss_kib": self.pg_rss_kib,
            "peak_sum_pss_kib": self.pg_pss_kib,
            "max_processes": self.pg_procs,
        })
    }

    /// As JSON.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "vostok_peak_rss_kib": self.vostok_rss_kib,
            "vostok_vmhwm_kib": self.vostok_hwm_kib,
            "pg_peak_sum_rss_kib": self.pg_rss_kib,
            "pg_peak_sum_pss_kib": self.pg_pss_kib,
            "pg_max_processes": self.pg_procs,
        })
    }
}

struct State {
    total: Peaks,
    window: Peaks,
}

/// The sampling thread.
pub struct Sampler {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&s, key)
}

/// A `KEY:  value kB` field of a /proc status text, in KiB.
pub(crate) fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
        .and_then(|l| l[key.len() + 1..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The parent pid from `/proc/PID/stat`.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces or parentheses.
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `pid` and its direct children (PostgreSQL's processes are all children of the postmaster).
fn process_family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if parent_pid(p) == Some(pid) {
                out.push(p);
            }
        }
    }
    out
}

fn sample(vostok: Option<u32>, pg: Option<u32>) -> Peaks {
    let mut p = Peaks::default();
    if let Some(v) = vostok {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{v}/status")) {
            p.vostok_rss_kib = kib_field(&s, "VmRSS").unwrap_or(0);
            p.vostok_hwm_kib = kib_field(&s, "VmHWM").unwrap_or(0);
        }
    }
    if let Some(pm) = pg {
        let fam = process_family(pm);
        p.pg_procs = fam.len() as u64;
        for q in fam {
            p.pg_rss_kib += status_kib(q, "VmRSS").unwrap_or(0);
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{q}/smaps_rollup")) {
                p.pg_pss_kib += kib_field(&s, "Pss").unwrap_or(0);
            }
        }
    }
    p
}

impl Sampler {
    /// Starts sampling (does nothing when both pids are None).
    pub fn start(vostok: Option<u32>, pg: Option<u32>) -> Sampler {
        let state = Arc::new(Mutex::new(State {
            total: Peaks::default(),
            window: Peaks::default(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let active = vostok.is_some() || pg.is_some();
        let handle = active.then(|| {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let s = sample(vostok, pg);
                    if let Ok(mut st) = state.lock() {
                        st.total.max(&s);
                        st.window.max(&s);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        });
        Sampler {
            state,
            stop,
            handle,
        }
    }

    /// The peaks since the last call (or the start), and starts a new window.
    pub fn take_window(&self) -> Peaks {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut st.window)
    }

    /// Stops the thread; returns the peaks of the whole run.
    pub fn finish(mut self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process() {
        let me = std::process::id();
        let p = sample(Some(me), Some(me));
        assert!(p.vostok_rss_kib > 0 && p.vostok_hwm_kib >= p.vostok_rss_kib);
        assert!(p.pg_rss_kib >= p.vostok_rss_kib && p.pg_procs >= 1);
        assert_eq!(parent_pid(me), Some(std::os::unix::process::parent_id()));
    }
}
