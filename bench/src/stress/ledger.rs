//! The ledger: every VOSpace file the server acknowledged (with its MD5) and every async job
//! seen COMPLETED (with the MD5 of its result), and the check that all of them are still
//! served with the same bytes (after the load, or after a crash and restart).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};

use super::http::{self, Api};
use super::stats::{Kind, Op, Outcome, Stats};

/// A VOSpace user of the load.
#[derive(Clone, Debug)]
pub struct User {
    /// Name (the home container).
    pub name: String,
    /// Bearer token.
    pub token: String,
}

/// What is known of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileState {
    /// The PUT was acknowledged (2xx): the bytes must be there.
    Committed,
    /// A DELETE was sent but not acknowledged: absent, or the committed bytes.
    Deleting,
    /// A PUT was sent but not acknowledged: absent (or empty), or exactly the bytes sent.
    Uncertain,
}

impl FileState {
    fn id(self) -> &'static str {
        match self {
            FileState::Committed => "committed",
            FileState::Deleting => "deleting",
            FileState::Uncertain => "uncertain",
        }
    }

    fn parse(s: &str) -> Option<FileState> {
        Some(match s {
            "committed" => FileState::Committed,
            "deleting" => FileState::Deleting,
            "uncertain" => FileState::Uncertain,
            _ => return None,
        })
    }
}

/// One file.
#[derive(Clone, Debug)]
pub struct FileEntry {
    /// Index into the users.
    pub owner: usize,
    /// MD5 of the bytes sent (hex).
    pub md5: String,
    /// Length of the bytes sent.
    pub bytes: u64,
    /// What the server said.
    pub state: FileState,
}

/// One completed job.
#[derive(Clone, Debug)]
pub struct JobEntry {
    /// `/tap/async/ID`.
    pub path: String,
    /// Index into the users (None: anonymous).
    pub owner: Option<usize>,
    /// MD5 of the result as first fetched ("": seen COMPLETED, the result could not be read
    /// then; it must still be served).
    pub md5: String,
    /// Its length.
    pub bytes: u64,
}

/// Everything committed.
#[derive(Default, Debug, Clone)]
pub struct Ledger {
    /// The users (their tokens fetch their files and jobs).
    pub users: Vec<User>,
    /// By node path (`user/dir/name`).
    pub files: BTreeMap<String, FileEntry>,
    /// Completed jobs, kept (not deleted) for the check.
    pub jobs: Vec<JobEntry>,
}

impl Ledger {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "users": self.users.iter().map(|u| json!({"name": u.name, "token": u.token})).collect::<Vec<_>>(),
            "files": self.files.iter().map(|(p, f)| json!({
                "path": p, "owner": f.owner, "md5": f.md5, "bytes": f.bytes, "state": f.state.id(),
            })).collect::<Vec<_>>(),
            "jobs": self.jobs.iter().map(|j| json!({
                "path": j.path, "owner": j.owner, "md5": j.md5, "bytes": j.bytes,
            })).collect::<Vec<_>>(),
        })
    }

    /// Writes it (to a temporary file, then renamed).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.to_json())?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Reads one.
    pub fn load(path: &Path) -> Result<Ledger> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let v: Value = serde_json::from_slice(&text)?;
        let s = |v: &Value, k: &str| -> Result<String> {
            v[k].as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow!("ledger: no string '{k}' in {v}"))
        };
        let n = |v: &Value, k: &str| -> Result<u64> {
            v[k].as_u64()
                .ok_or_else(|| anyhow!("ledger: no number '{k}' in {v}"))
        };
        let mut l = Ledger::default();
        for u in v["users"].as_array().into_iter().flatten() {
            l.users.push(User {
                name: s(u, "name")?,
                token: s(u, "token")?,
            });
        }
        for f in v["files"].as_array().into_iter().flatten() {
            let owner = n(f, "owner")? as usize;
            if owner >= l.users.len() {
                return Err(anyhow!("ledger: file owner {owner} is not a user"));
            }
            let state = FileState::parse(&s(f, "state")?)
                .ok_or_else(|| anyhow!("ledger: bad state in {f}"))?;
            l.files.insert(
                s(f, "path")?,
                FileEntry {
                    owner,
                    md5: s(f, "md5")?,
                    bytes: n(f, "bytes")?,
                    state,
                },
            );
        }
        for j in v["jobs"].as_array().into_iter().flatten() {
            let owner = j["owner"].as_u64().map(|o| o as usize);
            if owner.is_some_and(|o| o >= l.users.len()) {
                return Err(anyhow!("ledger: job owner {owner:?} is not a user"));
            }
            l.jobs.push(JobEntry {
                path: s(j, "path")?,
                owner,
                md5: s(j, "md5")?,
                bytes: n(j, "bytes")?,
            });
        }
        Ok(l)
    }

    /// Counts by state: (committed, deleting, uncertain).
    pub fn counts(&self) -> (usize, usize, usize) {
        let c = |s| self.files.values().filter(|f| f.state == s).count();
        (
            c(FileState::Committed),
            c(FileState::Deleting),
            c(FileState::Uncertain),
        )
    }
}

/// What a GET found.
enum Found {
    Missing,
    Body { md5: String, len: u64 },
    Status(u16, String),
}

/// GET with retries: 503 (after Retry-After, at most `cap` seconds) and connection errors (the
/// server may be restarting) are retried until `wait` has passed; redirects are followed.
async fn fetch(
    api: &Api,
    url: &str,
    token: Option<&str>,
    stats: &Stats,
    wait: Duration,
    cap: f64,
) -> Result<Found, String> {
    let deadline = Instant::now() + wait;
    let mut url = url.to_string();
    let mut redirects = 0;
    loop {
        let mut op = Op::start();
        let (rec, answer, pause) =
            match http::send(&mut op, http::auth(api.client.get(&url), token)).await {
                Err(o) => (o, None, 1.0),
                Ok(r) => {
                    let status = r.status().as_u16();
                    if status == 200 {
                        match http::body_md5(&mut op, r, 0).await {
                            Ok((md5, len, _)) => (Outcome::Ok, Some(Found::Body { md5, len }), 0.0),
                            Err(o) => (o, None, 1.0),
                        }
                    } else if matches!(status, 301 | 302 | 303 | 307) && redirects < 3 {
                        if let Some(l) = http::location(r.headers()) {
                            stats.record(Kind::Verify, &op, &Outcome::Ok);
                            url = if l.starts_with('/') { api.url(&l) } else { l };
                            redirects += 1;
                            continue;
                        }
                        let m = "a redirect without Location".to_string();
                        (
                            Outcome::Status(status, m.clone()),
                            Some(Found::Status(status, m)),
                            0.0,
                        )
                    } else {
                        match http::refuse(&mut op, r).await {
                            Outcome::Busy(ra) => {
                                (Outcome::Busy(ra), None, ra.unwrap_or(1.0).clamp(0.1, cap))
                            }
                            Outcome::Status(s, m) => {
                                let f = if s == 404 {
                                    Found::Missing
                                } else {
                                    Found::Status(s, m.clone())
                                };
                                (Outcome::Status(s, m), Some(f), 0.0)
                            }
                            o => (o, None, 1.0),
                        }
                    }
                }
            };
        let last = match &rec {
            Outcome::Busy(_) => "HTTP 503".to_string(),
            Outcome::Net(n, m) => format!("{n:?}: {m}"),
            o => format!("{o:?}"),
        };
        stats.record(Kind::Verify, &op, &rec);
        if let Some(f) = answer {
            return Ok(f);
        }
        if Instant::now() >= deadline {
            return Err(format!("could not be checked within {wait:?}: {last}"));
        }
        tokio::time::sleep(Duration::from_secs_f64(pause)).await;
    }
}

/// The result of a check.
#[derive(Default, Debug)]
pub struct Verified {
    /// Committed files found with their bytes.
    pub files_ok: u64,
    /// Committed files checked.
    pub files_committed: u64,
    /// Files being deleted: absent / still there intact.
    pub deleting_absent: u64,
    /// .
    pub deleting_present: u64,
    /// Unacknowledged uploads: absent (or empty) / there with exactly the bytes sent.
    pub uncertain_absent: u64,
    /// .
    pub uncertain_present: u64,
    /// Jobs whose result is still served with the same bytes.
    pub jobs_ok: u64,
    /// Jobs checked.
    pub jobs: u64,
    /// Lost or corrupted.
    pub problems: Vec<String>,
    /// Not checkable (server busy or away for longer than the wait).
    pub unverified: Vec<String>,
    /// Seconds the check took.
    pub seconds: f64,
}

impl Verified {
    /// Whether everything is there.
    pub fn clean(&self) -> bool {
        self.problems.is_empty() && self.unverified.is_empty()
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "files_committed": self.files_committed,
            "files_ok": self.files_ok,
            "deleting_absent": self.deleting_absent,
            "deleting_present_intact": self.deleting_present,
            "unacknowledged_absent_or_empty": self.uncertain_absent,
            "unacknowledged_present_intact": self.uncertain_present,
            "jobs": self.jobs,
            "jobs_ok": self.jobs_ok,
            "problems": self.problems,
            "unverified": self.unverified,
            "seconds": self.seconds,
        })
    }

    /// One line.
    pub fn summary(&self) -> String {
        format!(
            "{}/{} committed files intact, {}/{} completed jobs' results intact; unacknowledged uploads: {} absent, {} complete; unacknowledged deletes: {} done, {} not; {} lost or corrupted, {} not checkable ({:.1} s)",
            self.files_ok,
            self.files_committed,
            self.jobs_ok,
            self.jobs,
            self.uncertain_absent,
            self.uncertain_present,
            self.deleting_absent,
            self.deleting_present,
            self.problems.len(),
            self.unverified.len(),
            self.seconds
        )
    }
}

enum Check {
    File(String, FileEntry),
    Job(JobEntry),
}

enum Verdict {
    FileOk,
    DeletingAbsent,
    DeletingPresent,
    UncertainAbsent,
    UncertainPresent,
    JobOk,
    Problem(String),
    Unverified(String),
}

async fn check_one(
    api: &Api,
    ledger: &Ledger,
    c: Check,
    stats: &Stats,
    wait: Duration,
    cap: f64,
) -> Verdict {
    match c {
        Check::File(path, f) => {
            let token = ledger.users.get(f.owner).map(|u| u.token.as_str());
            let url = api.url(&format!("/vospace/files/{path}"));
            match fetch(api, &url, token, stats, wait, cap).await {
                Err(e) => Verdict::Unverified(format!("{path}: {e}")),
                Ok(found) => match (f.state, found) {
                    (FileState::Committed, Found::Body { md5, .. }) if md5 == f.md5 => {
                        Verdict::FileOk
                    }
                    (FileState::Committed, Found::Body { md5, len }) => Verdict::Problem(format!(
                        "{path}: CORRUPTED: committed {} bytes MD5 {}, now {len} bytes MD5 {md5}",
                        f.bytes, f.md5
                    )),
                    (FileState::Committed, Found::Missing) => Verdict::Problem(format!(
                        "{path}: LOST: committed ({} bytes, MD5 {}), now 404",
                        f.bytes, f.md5
                    )),
                    (FileState::Deleting, Found::Missing) => Verdict::DeletingAbsent,
                    (FileState::Deleting, Found::Body { md5, .. }) if md5 == f.md5 => {
                        Verdict::DeletingPresent
                    }
                    (FileState::Uncertain, Found::Missing) => Verdict::UncertainAbsent,
                    (FileState::Uncertain, Found::Body { len: 0, .. }) => Verdict::UncertainAbsent,
                    (FileState::Uncertain, Found::Body { md5, .. }) if md5 == f.md5 => {
                        Verdict::UncertainPresent
                    }
                    (s, Found::Body { md5, len }) => Verdict::Problem(format!(
                        "{path}: CORRUPTED ({}): sent {} bytes MD5 {}, now {len} bytes MD5 {md5}",
                        s.id(),
                        f.bytes,
                        f.md5
                    )),
                    (s, Found::Status(st, m)) => {
                        Verdict::Problem(format!("{path} ({}): HTTP {st}: {m}", s.id()))
                    }
                },
            }
        }
        Check::Job(j) => {
            let token = j
                .owner
                .and_then(|o| ledger.users.get(o))
                .map(|u| u.token.as_str());
            let url = api.url(&format!("{}/results/result", j.path));
            match fetch(api, &url, token, stats, wait, cap).await {
                Err(e) => Verdict::Unverified(format!("job {}: {e}", j.path)),
                // An empty MD5: seen COMPLETED, its result could not be read then.
                Ok(Found::Body { md5, .. }) if md5 == j.md5 || j.md5.is_empty() => Verdict::JobOk,
                Ok(Found::Body { md5, len }) => Verdict::Problem(format!(
                    "job {}: result CHANGED: {} bytes MD5 {} when COMPLETED, now {len} bytes MD5 {md5}",
                    j.path, j.bytes, j.md5
                )),
                Ok(Found::Missing) => Verdict::Problem(format!(
                    "job {}: result LOST (404; it was COMPLETED with {} bytes)",
                    j.path, j.bytes
                )),
                Ok(Found::Status(s, m)) => {
                    Verdict::Problem(format!("job {}: result: HTTP {s}: {m}", j.path))
                }
            }
        }
    }
}

/// Checks every entry, `concurrency` at a time.
pub async fn verify(
    api: &Api,
    ledger: Arc<Ledger>,
    stats: &Stats,
    concurrency: usize,
    wait: Duration,
    cap: f64,
) -> Verified {
    let t0 = Instant::now();
    let mut checks: Vec<Check> = ledger
        .files
        .iter()
        .map(|(p, f)| Check::File(p.clone(), f.clone()))
        .collect();
    checks.extend(ledger.jobs.iter().cloned().map(Check::Job));
    let mut v = Verified {
        files_committed: ledger
            .files
            .values()
            .filter(|f| f.state == FileState::Committed)
            .count() as u64,
        jobs: ledger.jobs.len() as u64,
        ..Verified::default()
    };
    let led = &ledger;
    let mut results = futures::stream::iter(checks)
        .map(|c| check_one(api, led, c, stats, wait, cap))
        .buffer_unordered(concurrency.max(1));
    while let Some(r) = results.next().await {
        match r {
            Verdict::FileOk => v.files_ok += 1,
            Verdict::DeletingAbsent => v.deleting_absent += 1,
            Verdict::DeletingPresent => v.deleting_present += 1,
            Verdict::UncertainAbsent => v.uncertain_absent += 1,
            Verdict::UncertainPresent => v.uncertain_present += 1,
            Verdict::JobOk => v.jobs_ok += 1,
            Verdict::Problem(p) => v.problems.push(p),
            Verdict::Unverified(p) => v.unverified.push(p),
        }
    }
    v.problems.sort();
    v.unverified.sort();
    v.seconds = t0.elapsed().as_secs_f64();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut l = Ledger::default();
        l.users.push(User {
            name: "a".into(),
            token: "t".into(),
        });
        l.files.insert(
            "a/d/f1".into(),
            FileEntry {
                owner: 0,
                md5: "m".into(),
                bytes: 3,
                state: FileState::Uncertain,
            },
        );
        l.jobs.push(JobEntry {
            path: "/tap/async/x".into(),
            owner: None,
            md5: "n".into(),
            bytes: 4,
        });
        let dir = std::env::temp_dir().join(format!("ledger-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("l.json");
        l.save(&p).unwrap();
        let m = Ledger::load(&p).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(m.users[0].token, "t");
        assert_eq!(m.files["a/d/f1"].state, FileState::Uncertain);
        assert_eq!(m.jobs[0].owner, None);
        assert_eq!(m.counts(), (0, 0, 1));
    }
}
