//! `fill`: VOSpace uploads into a data folder that runs out of space. Every refusal must be
//! clean (an HTTP error with a VOSpace fault, or 503/507), the server must keep answering, and
//! every file it acknowledged must keep its bytes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use serde_json::json;

use super::http::{self, Api};
use super::ledger::{self, FileEntry, FileState, Ledger};
use super::stats::{Op, Outcome, Stats};
use super::{make_dirs, parse_user, payload_pool, wait_available};
use crate::sky::Rng;

/// `vostok-bench fill`.
#[derive(clap::Args, Debug)]
pub struct FillArgs {
    /// The server's base URL.
    #[arg(long)]
    pub url: String,
    /// The VOSpace user, NAME:TOKEN.
    #[arg(long)]
    pub user: String,
    /// VOSpace authority of node URIs.
    #[arg(long, default_value = "vostok.example")]
    pub authority: String,
    /// Size of each file (KiB).
    #[arg(long, default_value_t = 4096)]
    pub file_kib: u64,
    /// Most uploads before giving up on filling the disk.
    #[arg(long, default_value_t = 200)]
    pub max_files: usize,
    /// Uploads tried after the first refusal (alternately full-size and 64 KiB).
    #[arg(long, default_value_t = 6)]
    pub after_full: usize,
    /// Write the acknowledged files as a ledger here (for `verify` after a restart).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Seed of the contents.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// VOSpace fault names (the first word of a fault's text/plain body).
const FAULTS: [&str; 15] = [
    "InternalFault",
    "PermissionDenied",
    "InvalidURI",
    "NodeNotFound",
    "DuplicateNode",
    "InvalidArgument",
    "TypeNotSupported",
    "ContainerNotFound",
    "LinkFound",
    "ViewNotSupported",
    "ProtocolNotSupported",
    "NotAuthenticated",
    "QuotaExceeded",
    "NodeLocked",
    "TransferFailed",
];

/// Whether a refusal is clean: an error status with a VOSpace fault body, or 503/507 (or 413).
fn clean_refusal(status: u16, body: &str) -> bool {
    let fault = FAULTS.iter().any(|f| body.trim_start().starts_with(f));
    status >= 400 && (fault || matches!(status, 503 | 507 | 413))
}

enum Put {
    Stored(String),
    /// Status, body, and the MD5 of the bytes sent when all were.
    Refused(u16, String, Option<String>),
    /// What went wrong, and the MD5 of the bytes sent when all were.
    Broken(String, Option<String>),
}

async fn put(api: &Api, authority: &str, token: &str, path: &str, chunks: Vec<Bytes>) -> Put {
    let size: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    let mut op = Op::start();
    let form = [
        ("TARGET", format!("vos://{authority}!vospace/{path}")),
        ("DIRECTION", "pushToVoSpace".to_string()),
        (
            "PROTOCOL",
            "ivo://ivoa.net/vospace/core#httpput".to_string(),
        ),
        ("REQUEST", "redirect".to_string()),
    ];
    let r = http::send(
        &mut op,
        api.client
            .post(api.url("/vospace/synctrans"))
            .bearer_auth(token)
            .form(&form),
    )
    .await;
    let r = match r {
        Ok(r) => r,
        Err(o) => return Put::Broken(format!("negotiation: {o:?}"), None),
    };
    let url = match (r.status().as_u16(), http::location(r.headers())) {
        (303, Some(l)) => l,
        (s, _) => {
            let b = r.bytes().await.unwrap_or_default();
            return Put::Refused(s, format!("negotiation: {}", http::snippet(&b)), None);
        }
    };
    let (body, mut rx) = http::hashed_body(chunks);
    let r = http::send(
        &mut op,
        api.client
            .put(&url)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(body),
    )
    .await;
    let r = match r {
        Ok(r) => r,
        Err(Outcome::Net(k, m)) => {
            return Put::Broken(format!("PUT: {k:?}: {m}"), rx.try_recv().ok())
        }
        Err(o) => return Put::Broken(format!("PUT: {o:?}"), rx.try_recv().ok()),
    };
    let status = r.status().as_u16();
    let etag = r
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_string());
    let b = r.bytes().await.unwrap_or_default();
    let sent = rx.try_recv().ok();
    if !(200..300).contains(&status) {
        return Put::Refused(status, http::snippet(&b), sent);
    }
    match sent {
        Some(md5) => match etag {
            Some(e) if !e.is_empty() && e != md5 => Put::Broken(
                format!("HTTP {status}, but ETag {e} is not the MD5 sent ({md5})"),
                Some(md5),
            ),
            _ => Put::Stored(md5),
        },
        None => Put::Broken(
            format!("HTTP {status} before the whole body was sent"),
            None,
        ),
    }
}

fn chunks(pool: &Bytes, rng: &mut Rng, i: usize, size: u64) -> Vec<Bytes> {
    let head = Bytes::from(format!("fill{i:012x}{:016x}", rng.next_u64()).into_bytes());
    let rest = (size as usize).saturating_sub(head.len()).min(pool.len());
    let off = (rng.next_u64() % (pool.len() - rest + 1) as u64) as usize;
    let body = pool.slice(off..off + rest);
    let mut out = vec![head];
    let mut k = 0;
    while k < body.len() {
        let j = (k + (256 << 10)).min(body.len());
        out.push(body.slice(k..j));
        k = j;
    }
    out
}

async fn available(api: &Api) -> Result<(), String> {
    match api.client.get(api.url("/tap/availability")).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("/tap/availability: HTTP {}", r.status())),
        Err(e) => Err(format!("/tap/availability: {}", http::classify(&e).1)),
    }
}

/// Runs `fill`; returns whether the server behaved.
pub async fn fill(a: FillArgs) -> Result<bool> {
    let user = parse_user(&a.user)?;
    let api = Api::new(&a.url, 8, Duration::from_secs(2), Duration::from_secs(120))?;
    wait_available(&api, Duration::from_secs(60)).await?;
    let dir = "fill";
    make_dirs(&api, &a.authority, std::slice::from_ref(&user), dir).await?;
    let size = a.file_kib.max(1) * 1024;
    let pool = payload_pool(size as usize + (1 << 20), a.seed);
    let mut rng = Rng::new(a.seed);
    let mut ledger = Ledger {
        users: vec![user.clone()],
        ..Ledger::default()
    };
    let mut order: Vec<String> = Vec::new();
    let mut refusals: Vec<(String, u16, String)> = Vec::new();
    let mut broken: Vec<String> = Vec::new();
    let mut unavailable: Vec<String> = Vec::new();
    let mut stored_bytes = 0u64;
    let mut after = 0usize;
    let mut i = 0usize;
    while i < a.max_files && after <= a.after_full {
        // After the first refusal, alternate small and full-size files.
        let sz = if !refusals.is_empty() && after % 2 == 1 {
            64 * 1024
        } else {
            size
        };
        let path = format!("{}/{dir}/f{i}", user.name);
        let c = chunks(&pool, &mut rng, i, sz);
        let r = put(&api, &a.authority, &user.token, &path, c).await;
        match r {
            Put::Stored(md5) => {
                stored_bytes += sz;
                ledger.files.insert(
                    path.clone(),
                    FileEntry {
                        owner: 0,
                        md5,
                        bytes: sz,
                        state: FileState::Committed,
                    },
                );
                order.push(path.clone());
                eprintln!(
                    "fill: {path}: stored ({} KiB, {} MiB in all)",
                    sz / 1024,
                    stored_bytes >> 20
                );
            }
            Put::Refused(s, m, sent) => {
                eprintln!("fill: {path}: refused: HTTP {s}: {m}");
                // Not acknowledged: absent (or empty), or exactly the bytes sent.
                ledger.files.insert(
                    path.clone(),
                    FileEntry {
                        owner: 0,
                        md5: sent.unwrap_or_default(),
                        bytes: sz,
                        state: FileState::Uncertain,
                    },
                );
                if !clean_refusal(s, m.trim_start_matches("negotiation: ")) {
                    broken.push(format!(
                        "{path}: HTTP {s} without a VOSpace fault body: {m}"
                    ));
                }
                refusals.push((path.clone(), s, m));
            }
            Put::Broken(m, sent) => {
                eprintln!("fill: {path}: BROKEN: {m}");
                broken.push(format!("{path}: {m}"));
                ledger.files.insert(
                    path.clone(),
                    FileEntry {
                        owner: 0,
                        md5: sent.unwrap_or_default(),
                        bytes: sz,
                        state: FileState::Uncertain,
                    },
                );
                refusals.push((path.clone(), 0, m));
            }
        }
        if !refusals.is_empty() {
            after += 1;
            if let Err(e) = available(&api).await {
                unavailable.push(format!("after {path}: {e}"));
                break;
            }
        }
        i += 1;
    }
    let filled = !refusals.is_empty();

    // Every acknowledged file is intact.
    let stats = Stats::default();
    let led = Arc::new(std::mem::take(&mut ledger));
    let v1 = ledger::verify(&api, led.clone(), &stats, 4, Duration::from_secs(30), 5.0).await;
    eprintln!("fill: on the full disk: {}", v1.summary());
    let mut ledger = Arc::try_unwrap(led).unwrap_or_else(|l| (*l).clone());

    // Free some space: delete the older half, then a new upload should be accepted.
    let mut deleted = 0usize;
    let mut delete_errors = Vec::new();
    for p in order.iter().take(order.len() / 2) {
        let r = api
            .client
            .delete(api.url(&format!("/vospace/nodes/{p}")))
            .bearer_auth(&user.token)
            .send()
            .await;
        match r {
            Ok(r) if matches!(r.status().as_u16(), 200 | 204) => {
                ledger.files.remove(p);
                deleted += 1;
            }
            Ok(r) => {
                let s = r.status().as_u16();
                let b = r.bytes().await.unwrap_or_default();
                delete_errors.push(format!("DELETE {p}: HTTP {s}: {}", http::snippet(&b)));
            }
            Err(e) => delete_errors.push(format!("DELETE {p}: {}", http::classify(&e).1)),
        }
    }
    let path = format!("{}/{dir}/after-delete", user.name);
    let small = 1 << 20;
    let again = match put(
        &api,
        &a.authority,
        &user.token,
        &path,
        chunks(&pool, &mut rng, usize::MAX >> 8, small),
    )
    .await
    {
        Put::Stored(md5) => {
            ledger.files.insert(
                path.clone(),
                FileEntry {
                    owner: 0,
                    md5,
                    bytes: small,
                    state: FileState::Committed,
                },
            );
            "stored".to_string()
        }
        Put::Refused(s, m, _) => format!("refused: HTTP {s}: {m}"),
        Put::Broken(m, _) => {
            broken.push(format!("{path} (after deleting {deleted} files): {m}"));
            format!("BROKEN: {m}")
        }
    };
    eprintln!("fill: after deleting {deleted} files, a 1 MiB upload: {again}");
    if let Err(e) = available(&api).await {
        unavailable.push(format!("at the end: {e}"));
    }
    let led = Arc::new(ledger);
    let v2 = ledger::verify(&api, led.clone(), &stats, 4, Duration::from_secs(30), 5.0).await;
    eprintln!("fill: after the deletes: {}", v2.summary());
    if let Some(p) = &a.ledger {
        led.save(p)?;
    }

    let mut fail = Vec::new();
    if !filled {
        fail.push(format!(
            "the disk never filled: {} uploads of {} KiB were all stored (raise --max-files)",
            i, a.file_kib
        ));
    }
    fail.extend(broken.iter().map(|b| format!("unclean failure: {b}")));
    fail.extend(
        unavailable
            .iter()
            .map(|u| format!("server not answering: {u}")),
    );
    fail.extend(v1.problems.iter().map(|p| format!("on the full disk: {p}")));
    fail.extend(
        v1.unverified
            .iter()
            .map(|p| format!("on the full disk: {p}")),
    );
    fail.extend(v2.problems.iter().map(|p| format!("after deleting: {p}")));
    fail.extend(v2.unverified.iter().map(|p| format!("after deleting: {p}")));
    let mut by_status: std::collections::BTreeMap<u16, (usize, String)> = Default::default();
    for (_, s, m) in &refusals {
        let e = by_status.entry(*s).or_insert((0, m.clone()));
        e.0 += 1;
    }
    println!(
        "fill: {} files ({} MiB) stored before the disk was full; {} refusals: {}",
        order.len(),
        stored_bytes >> 20,
        refusals.len(),
        by_status
            .iter()
            .map(|(s, (n, m))| format!(
                "HTTP {s} ×{n} (\"{}\")",
                m.chars().take(160).collect::<String>()
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!("fill: on the full disk: {}", v1.summary());
    println!(
        "fill: after deleting {deleted} files: a 1 MiB upload {again}; {}",
        v2.summary()
    );
    for d in &delete_errors {
        println!("fill: warning: {d}");
    }
    if fail.is_empty() {
        println!("fill: PASS");
    } else {
        println!("fill: FAIL");
        for f in &fail {
            println!("  - {f}");
        }
    }
    if let Some(p) = &a.json {
        let j = json!({
            "file_kib": a.file_kib,
            "stored_files": order.len(),
            "stored_bytes": stored_bytes,
            "refusals": refusals.iter().map(|(p, s, m)| json!({"path": p, "status": s, "body": m})).collect::<Vec<_>>(),
            "check_on_full_disk": v1.json(),
            "deleted": deleted,
            "delete_errors": delete_errors,
            "upload_after_delete": again,
            "check_after_delete": v2.json(),
            "failures": fail,
            "pass": fail.is_empty(),
        });
        std::fs::write(p, serde_json::to_string_pretty(&j)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if order.is_empty() && !filled {
        bail!("nothing was stored and nothing refused");
    }
    Ok(fail.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals() {
        assert!(clean_refusal(500, "InternalFault: No space left on device"));
        assert!(clean_refusal(413, "QuotaExceeded: ..."));
        assert!(clean_refusal(507, ""));
        assert!(clean_refusal(503, "<VOTABLE>busy"));
        assert!(!clean_refusal(500, "Internal Server Error"));
        assert!(!clean_refusal(201, "TransferFailed"));
    }
}
