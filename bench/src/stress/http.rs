//! The HTTP side of the load generator: one shared client, errors sorted into kinds, bodies
//! read (and hashed) as they arrive, and request bodies hashed as they are sent.

use std::error::Error as _;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use md5::{Digest, Md5};
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{RequestBuilder, Response};
use tokio::sync::oneshot;

use super::stats::{Net, Op, Outcome};

/// The server, and the client every task shares.
pub struct Api {
    /// Keep-alive client, redirects not followed (the 303s of UWS and VOSpace are looked at).
    pub client: reqwest::Client,
    /// Base URL without a trailing slash.
    pub base: String,
}

impl Api {
    /// A client whose pool holds `pool` idle connections for at most `idle`, with a
    /// per-request `timeout`. `idle` must be below the server's keep-alive (actix closes an
    /// idle connection after 5 s): a request sent on a connection the server is closing at
    /// that moment fails as "connection closed before message completed", a race of HTTP/1.1
    /// keep-alive rather than a dropped request.
    pub fn new(base: &str, pool: usize, idle: Duration, timeout: Duration) -> Result<Api> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(idle)
            .tcp_nodelay(true)
            .build()?;
        Ok(Api {
            client,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Adds the bearer token, if any.
pub fn auth(rb: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(t) => rb.bearer_auth(t),
        None => rb,
    }
}

/// Sorts a client error: timeout, no connection, reset, other; with its chain of causes.
pub fn classify(e: &reqwest::Error) -> (Net, String) {
    let mut text = e.to_string();
    let mut src = e.source();
    // A connect timeout is a connection that could not be made (a full accept queue), not a
    // slow answer.
    let mut kind = if e.is_connect() {
        Net::Connect
    } else if e.is_timeout() {
        Net::Timeout
    } else {
        Net::Other
    };
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        if kind == Net::Other {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind as K;
                kind = match io.kind() {
                    K::ConnectionReset
                    | K::ConnectionAborted
                    | K::BrokenPipe
                    | K::UnexpectedEof => Net::Reset,
                    K::ConnectionRefused | K::NotConnected | K::AddrNotAvailable => Net::Connect,
                    K::TimedOut => Net::Timeout,
                    _ => Net::Other,
                };
            }
        }
        src = s.source();
    }
    if kind == Net::Other {
        // hyper's own words for a connection closed under a request or response.
        let l = text.to_ascii_lowercase();
        if l.contains("connection closed")
            || l.contains("connection reset")
            || l.contains("incomplete")
            || l.contains("broken pipe")
            || l.contains("end of file")
            || l.contains("canceled")
        {
            kind = Net::Reset;
        }
    }
    (kind, text)
}

fn net(e: &reqwest::Error) -> Outcome {
    let (k, t) = classify(e);
    Outcome::Net(k, t)
}

/// Sends; notes the status (and Retry-After) in `op`.
pub async fn send(op: &mut Op, rb: RequestBuilder) -> Result<Response, Outcome> {
    match rb.send().await {
        Ok(r) => {
            op.statuses
                .push((r.status().as_u16(), r.headers().contains_key(RETRY_AFTER)));
            Ok(r)
        }
        Err(e) => Err(net(&e)),
    }
}

/// Retry-After in seconds (an HTTP date counts as one second).
pub fn retry_after(h: &HeaderMap) -> Option<f64> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    Some(v.parse::<f64>().unwrap_or(1.0))
}

/// The Location header.
pub fn location(h: &HeaderMap) -> Option<String> {
    h.get(LOCATION)?.to_str().ok().map(str::to_string)
}

/// The start of a body, on one line.
pub fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(240)]);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// For a response whose status was not the expected one: Busy for 503, else Status with the
/// start of the body.
pub async fn refuse(op: &mut Op, r: Response) -> Outcome {
    let status = r.status().as_u16();
    let ra = retry_after(r.headers());
    let body = r.bytes().await.unwrap_or_default();
    op.bytes += body.len() as u64;
    if status == 503 {
        Outcome::Busy(ra)
    } else {
        Outcome::Status(status, snippet(&body))
    }
}

/// The whole body.
pub async fn body(op: &mut Op, r: Response) -> Result<Bytes, Outcome> {
    match r.bytes().await {
        Ok(b) => {
            op.bytes += b.len() as u64;
            Ok(b)
        }
        Err(e) => Err(net(&e)),
    }
}

/// Reads the body to the end: its MD5 (hex), its length, and its last `tail` bytes.
pub async fn body_md5(
    op: &mut Op,
    mut r: Response,
    tail: usize,
) -> Result<(String, u64, Vec<u8>), Outcome> {
    let mut h = Md5::new();
    let mut n = 0u64;
    let mut last: Vec<u8> = Vec::new();
    loop {
        match r.chunk().await {
            Ok(Some(c)) => {
                h.update(&c);
                n += c.len() as u64;
                if tail > 0 {
                    last.extend_from_slice(&c[c.len().saturating_sub(tail)..]);
                    if last.len() > 2 * tail {
                        last.drain(..last.len() - tail);
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                op.bytes += n;
                return Err(net(&e));
            }
        }
    }
    op.bytes += n;
    if last.len() > tail {
        last.drain(..last.len() - tail);
    }
    Ok((hex(&h.finalize()), n, last))
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `chunks` as a stream whose MD5 is computed as each chunk is taken; the digest arrives on
/// the receiver once the last chunk has been taken.
pub fn hashed_stream(
    chunks: Vec<Bytes>,
) -> (
    impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    oneshot::Receiver<String>,
) {
    let (tx, rx) = oneshot::channel();
    let state = (chunks.into_iter(), Md5::new(), Some(tx));
    let stream = futures::stream::unfold(state, |(mut it, mut h, mut tx)| async move {
        let c = it.next()?;
        h.update(&c);
        if it.as_slice().is_empty() {
            if let Some(tx) = tx.take() {
                let _ = tx.send(hex(&h.clone().finalize()));
            }
        }
        Some((Ok(c), (it, h, tx)))
    });
    (stream, rx)
}

/// A request body streamed from `chunks`, hashed as it is sent (see [`hashed_stream`]).
pub fn hashed_body(chunks: Vec<Bytes>) -> (reqwest::Body, oneshot::Receiver<String>) {
    let (s, rx) = hashed_stream(chunks);
    (reqwest::Body::wrap_stream(s), rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5s() {
        assert_eq!(hex(&Md5::digest(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex(&Md5::digest(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[tokio::test]
    async fn hashed_streams() {
        use futures::StreamExt;
        let chunks = vec![Bytes::from_static(b"a"), Bytes::from_static(b"bc")];
        let (s, rx) = hashed_stream(chunks);
        let got: Vec<Bytes> = s.map(|c| c.unwrap()).collect().await;
        assert_eq!(got.concat(), b"abc");
        assert_eq!(rx.await.unwrap(), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn retry_after_values() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(3.0));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(1.0));
    }
}
