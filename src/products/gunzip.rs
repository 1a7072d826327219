//! Gzip-compressed FITS files (`x.fits.gz`) sent as FITS: with `Content-Encoding: gzip` to a
//! client that accepts it (the stored bytes as they are), decompressed as they stream to any
//! other ([`decompressed`]). Either way what the client saves is the FITS file that every
//! service names with `application/fits`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use futures::StreamExt;
use object_store::GetOptions;
use storage::Storage;

use super::Media;

/// Whether the request accepts the gzip content coding (RFC 9110 §12.5.3): `gzip`, `x-gzip`
/// or `*` with a non-zero quality.
pub fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            matches!(coding.as_str(), "gzip" | "x-gzip" | "*") && q > 0.0
        })
}

/// Input bytes given to the decoder at a time: deflate expands at most ~1032 to 1, so one
/// step makes at most about 1 MiB.
const GUNZIP_STEP: usize = 1024;
/// Output gathered before it is sent as one body chunk.
const GUNZIP_CHUNK: usize = 64 * 1024;

/// A stored `.fits.gz` sent decompressed, for clients that do not accept gzip.
pub async fn decompressed(
    storage: &Storage,
    path: &object_store::path::Path,
    req: &HttpRequest,
    etag: &str,
    last_modified: &str,
    media: Media,
    filename: &str,
) -> HttpResponse {
    // Another representation than the stored bytes: another validator.
    let etag = format!("\"{}-identity\"", etag.trim_matches('"'));
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::ACCEPT_RANGES, "none"))
        .insert_header((header::ETAG, etag))
        .insert_header((header::LAST_MODIFIED, last_modified.to_string()))
        .insert_header((header::CONTENT_TYPE, media.content_type))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{filename}\""),
        ));
    if crate::dali::http::is_head(req) {
        return resp.finish();
    }
    let got = match storage.store.get_opts(path, GetOptions::default()).await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("get {path}: {e}");
            return HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("the storage is not available");
        }
    };
    let stream = Gunzip::new(
        got.into_stream(),
        catalogs::source::MAX_INGEST_BYTES,
        path.to_string(),
    );
    resp.streaming(stream.into_stream())
}

/// Decompresses a stream of gzip bytes (several members allowed, as `gzip` concatenates them)
/// into body chunks, at most [`GUNZIP_STEP`] input bytes per decoder call so that no step holds
/// much more than [`GUNZIP_CHUNK`] of output; an error (corrupt data, or more than `max`
/// bytes) ends the body early, which the client sees as an incomplete transfer.
struct Gunzip<S> {
    input: S,
    decoder: flate2::write::MultiGzDecoder<Vec<u8>>,
    produced: u64,
    max: u64,
    what: String,
}

impl<S> Gunzip<S>
where
    S: futures::Stream<Item = object_store::Result<bytes::Bytes>> + Unpin + 'static,
{
    fn new(input: S, max: u64, what: String) -> Self {
        Gunzip {
            input,
            decoder: flate2::write::MultiGzDecoder::new(Vec::with_capacity(GUNZIP_CHUNK)),
            produced: 0,
            max,
            what,
        }
    }

    /// Feeds `data` to the decoder, giving back each full output chunk to `emit`.
    fn feed(&mut self, data: &[u8], emit: &mut Vec<bytes::Bytes>) -> std::io::Result<()> {
        use std::io::Write;
        for piece in data.chunks(GUNZIP_STEP) {
            self.decoder.write_all(piece)?;
            self.take(emit, GUNZIP_CHUNK)?;
        }
        Ok(())
    }

    /// Moves the decoder's output to `emit` once it holds at least `at_least` bytes.
    fn take(&mut self, emit: &mut Vec<bytes::Bytes>, at_least: usize) -> std::io::Result<()> {
        let out = self.decoder.get_mut();
        if out.len() >= at_least.max(1) {
            self.produced = self.produced.saturating_add(out.len() as u64);
            if self.produced > self.max {
                return Err(std::io::Error::other(format!(
                    "decompresses to more than {} bytes",
                    self.max
                )));
            }
            emit.push(bytes::Bytes::from(std::mem::replace(
                out,
                Vec::with_capacity(GUNZIP_CHUNK),
            )));
        }
        Ok(())
    }

    fn into_stream(self) -> impl futures::Stream<Item = Result<bytes::Bytes, actix_web::Error>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut g = state?;
            loop {
                let mut emit = Vec::new();
                let step = match g.input.next().await {
                    Some(Ok(data)) => g.feed(&data, &mut emit),
                    Some(Err(e)) => Err(std::io::Error::other(e.to_string())),
                    None => {
                        let done = g.decoder.try_finish().and_then(|()| g.take(&mut emit, 1));
                        return match done {
                            Ok(()) if !emit.is_empty() => Some((
                                Ok(emit
                                    .into_iter()
                                    .fold(bytes::BytesMut::new(), |mut a, b| {
                                        a.extend_from_slice(&b);
                                        a
                                    })
                                    .freeze()),
                                None,
                            )),
                            Ok(()) => None,
                            Err(e) => {
                                tracing::error!("gunzip {}: {e}", g.what);
                                Some((Err(actix_web::error::ErrorInternalServerError(e)), None))
                            }
                        };
                    }
                };
                match step {
                    Err(e) => {
                        tracing::error!("gunzip {}: {e}", g.what);
                        return Some((Err(actix_web::error::ErrorInternalServerError(e)), None));
                    }
                    Ok(()) if emit.is_empty() => continue,
                    Ok(()) => {
                        let mut all = bytes::BytesMut::new();
                        for b in emit {
                            all.extend_from_slice(&b);
                        }
                        return Some((Ok(all.freeze()), Some(g)));
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Runs a Gunzip over `input` split into `piece`-byte chunks: (output, ended with an error).
    fn run(input: Vec<u8>, piece: usize, max: u64) -> (Vec<u8>, bool) {
        let chunks: Vec<object_store::Result<bytes::Bytes>> = input
            .chunks(piece)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let g = Gunzip::new(futures::stream::iter(chunks), max, "test".into());
        let parts: Vec<_> = futures::executor::block_on(g.into_stream().collect::<Vec<_>>());
        let mut out = Vec::new();
        let mut failed = false;
        for p in parts {
            match p {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => failed = true,
            }
        }
        (out, failed)
    }

    #[test]
    fn decompresses_members_in_any_chunking() {
        let a: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let b = b"second member".to_vec();
        let mut input = gz(&a);
        input.extend(gz(&b));
        for piece in [1, 7, 4096, input.len()] {
            let (out, failed) = run(input.clone(), piece, 1 << 30);
            assert!(!failed, "piece {piece}");
            assert_eq!(out.len(), a.len() + b.len(), "piece {piece}");
            assert!(out.starts_with(&a) && out.ends_with(&b), "piece {piece}");
        }
    }

    #[test]
    fn stops_at_the_bound_and_on_corrupt_data() {
        let zeros = vec![0u8; 4 << 20];
        let (out, failed) = run(gz(&zeros), 65536, 1 << 20);
        assert!(failed);
        assert!(
            out.len() as u64 <= (1 << 20) + GUNZIP_CHUNK as u64 * 2,
            "{}",
            out.len()
        );
        let mut bad = gz(&zeros);
        let n = bad.len();
        bad[n / 2] ^= 0xff;
        bad[n / 2 + 1] ^= 0xff;
        let (_, failed) = run(bad, 4096, 1 << 30);
        assert!(failed);
        let (out, failed) = run(b"not gzip at all".to_vec(), 4, 1 << 30);
        assert!(failed && out.is_empty());
    }

    #[test]
    fn accept_encoding() {
        let req = |v: &str| {
            actix_web::test::TestRequest::default()
                .insert_header((header::ACCEPT_ENCODING, v))
                .to_http_request()
        };
        assert!(accepts_gzip(&req("gzip, deflate")));
        assert!(accepts_gzip(&req("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&req("*")));
        assert!(!accepts_gzip(&req("gzip;q=0")));
        assert!(!accepts_gzip(&req("identity")));
        assert!(!accepts_gzip(
            &actix_web::test::TestRequest::default().to_http_request()
        ));
    }
}
