//! Data products (FITS images and spectra) as served: the `ivoa.obscore` table with absolute
//! access URLs ([`table`]), the ObsCore query expressions SIA and SSA build their filters
//! from ([`query`]), product identifiers and paths, and the DataLink service descriptor. Their
//! ingest is `crate::publish::products`; the protocol fronts that find them (SIA, SSA), link
//! them (DataLink) and send them (`/data`) are in `crate::protocols`.

pub mod gunzip;
pub mod query;
pub mod table;

use std::collections::HashMap;
use std::sync::Arc;

use catalogs::HatsTable;
use datafusion::datasource::TableProvider;
use votable::xml::escape as esc;

use crate::engine::Snapshot;
use crate::publish::products::OBSCORE_ROOT;

/// What the product services know of the ObsCore table (application data), brought up to
/// date when the publication changes ([`Obscore::set`]).
#[derive(Debug, Default)]
pub struct Obscore {
    /// See [`Obscore::max_half_fov`].
    max_half_fov: std::sync::RwLock<Option<f64>>,
}

impl Obscore {
    /// Reads what the served ObsCore table holds (a fixed query, no user text).
    pub async fn load(snapshot: &Snapshot) -> Obscore {
        Obscore {
            max_half_fov: std::sync::RwLock::new(Self::measure(snapshot).await),
        }
    }

    /// What [`Obscore::max_half_fov`] is in `snapshot`.
    pub async fn measure(snapshot: &Snapshot) -> Option<f64> {
        if snapshot.table("ivoa.obscore").is_some() {
            max_half_fov(snapshot).await
        } else {
            None
        }
    }

    /// Half the largest `s_fov` of the images that have a footprint: how far an image centre
    /// can be from a region the image meets (SIA uses it to prune). `None` without images.
    pub fn max_half_fov(&self) -> Option<f64> {
        *self.max_half_fov.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the value [`Obscore::measure`] found in a new snapshot.
    pub fn set(&self, max_half_fov: Option<f64>) {
        *self.max_half_fov.write().unwrap_or_else(|e| e.into_inner()) = max_half_fov;
    }
}

/// The MD5 of every stored product, for the `Digest` header of downloads (application data).
///
/// Ingest records each collection's MD5s in `products/_index/<collection>/md5.tsv`, written
/// after the files: a recorded MD5 is trusted for a file of the recorded size that has not
/// been written since that index. A file without one (its collection ingested before the
/// checksums were recorded, or while this server runs, or replaced since) is read once to
/// compute it, when it is at most `[limits] digest_mb`; the result is kept, with the file's
/// validator (ETag), in `products/_index/<collection>/md5-served.tsv` and used only while that
/// validator holds. A file that cannot be checked goes without `Digest`: never a wrong one.
pub struct Checksums {
    storage: storage::Storage,
    /// Largest file whose MD5 is computed on a download.
    max_compute: u64,
    known: tokio::sync::Mutex<Known>,
    /// One computation at a time (each reads a whole file); a request finding it taken
    /// does not wait.
    computing: tokio::sync::Semaphore,
}

#[derive(Default)]
struct Known {
    /// Collection → what its `md5.tsv` says, and when it was written.
    indexed: HashMap<String, Indexed>,
    /// Path below `products/` → (MD5 hex, size, validator) computed by a server.
    computed: HashMap<String, (String, u64, String)>,
}

#[derive(Default)]
struct Indexed {
    written: Option<chrono::DateTime<chrono::Utc>>,
    /// Path below `products/` → (MD5 hex, size).
    by_path: HashMap<String, (String, u64)>,
}

/// A stored file's validator: its ETag, or its size and time when the store gives none (the
/// `/data/` download's `ETag`).
pub fn validator(meta: &object_store::ObjectMeta) -> String {
    meta.e_tag
        .clone()
        .map(|t| t.trim_matches('"').to_string())
        .unwrap_or_else(|| format!("{:x}-{:x}", meta.size, meta.last_modified.timestamp()))
}

impl Known {
    fn lookup(&self, rel: &str, meta: &object_store::ObjectMeta) -> Option<String> {
        let collection = rel.split('/').next().unwrap_or_default();
        if let Some(ix) = self.indexed.get(collection) {
            if let (Some(written), Some((md5, size))) = (ix.written, ix.by_path.get(rel)) {
                if *size == meta.size && meta.last_modified <= written {
                    return Some(md5.clone());
                }
            }
        }
        self.computed
            .get(rel)
            .filter(|(_, size, v)| *size == meta.size && *v == validator(meta))
            .map(|(m, _, _)| m.clone())
    }
}

impl Checksums {
    /// Reads the recorded checksums of every collection (those that cannot be read are read
    /// again when a file of theirs is downloaded).
    pub async fn load(storage: &storage::Storage, max_compute: u64) -> Checksums {
        use crate::publish::products as p;
        let mut known = Known::default();
        match p::index_collections(storage).await {
            Ok(collections) => {
                for c in collections {
                    match p::read_checksums(storage, &c).await {
                        Ok((written, rows)) => {
                            known.indexed.insert(
                                c.clone(),
                                Indexed {
                                    written,
                                    by_path: rows
                                        .into_iter()
                                        .map(|(r, m, s)| (r, (m, s)))
                                        .collect(),
                                },
                            );
                        }
                        Err(e) => tracing::warn!("{c}: product checksums not read: {e}"),
                    }
                    match p::read_served_checksums(storage, &c).await {
                        Ok(rows) => known
                            .computed
                            .extend(rows.into_iter().map(|(r, m, s, v)| (r, (m, s, v)))),
                        Err(e) => tracing::warn!("{c}: computed product checksums not read: {e}"),
                    }
                }
            }
            Err(e) => tracing::warn!("product checksums not read: {e}"),
        }
        Checksums {
            storage: storage.clone(),
            max_compute,
            known: tokio::sync::Mutex::new(known),
            computing: tokio::sync::Semaphore::new(1),
        }
    }

    /// The MD5 (hex) of the product at `rel` (below `products/`) as it is stored now (`meta`,
    /// from the store); `None` when it is not known and cannot be computed.
    pub async fn md5(&self, rel: &str, meta: &object_store::ObjectMeta) -> Option<String> {
        if let Some(m) = self.known.lock().await.lookup(rel, meta) {
            return Some(m);
        }
        let collection = rel.split('/').next()?.to_string();
        // An ingest since the server started (or since the last look) wrote a new index.
        self.reread_index(&collection).await;
        if let Some(m) = self.known.lock().await.lookup(rel, meta) {
            return Some(m);
        }
        if meta.size > self.max_compute {
            return None;
        }
        // One computation at a time, and no request waits for another's: while one runs,
        // other files go without Digest (a client then checks the length only).
        let _turn = self.computing.try_acquire().ok()?;
        // Another request may have computed it meanwhile.
        if let Some(m) = self.known.lock().await.lookup(rel, meta) {
            return Some(m);
        }
        let path = self
            .storage
            .path(&format!("{}/{rel}", crate::publish::products::PRODUCTS));
        let md5 = match self.compute(&path, meta).await {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("{rel}: MD5 not computed: {e}");
                return None;
            }
        };
        let rows = {
            let mut known = self.known.lock().await;
            known
                .computed
                .insert(rel.to_string(), (md5.clone(), meta.size, validator(meta)));
            let prefix = format!("{collection}/");
            let mut rows: Vec<_> = known
                .computed
                .iter()
                .filter(|(r, _)| r.starts_with(&prefix))
                .map(|(r, (m, s, v))| (r.clone(), m.clone(), *s, v.clone()))
                .collect();
            rows.sort();
            rows
        };
        if let Err(e) =
            crate::publish::products::write_served_checksums(&self.storage, &collection, &rows)
                .await
        {
            tracing::warn!("{collection}: computed product checksums not kept: {e}");
        }
        tracing::info!("{rel}: MD5 computed for its Digest (none recorded at ingest)");
        Some(md5)
    }

    /// Reads `md5.tsv` of `collection` again when it was written since it was read.
    async fn reread_index(&self, collection: &str) {
        use crate::publish::products as p;
        let written = p::checksums_written(&self.storage, collection).await;
        let seen = self
            .known
            .lock()
            .await
            .indexed
            .get(collection)
            .and_then(|ix| ix.written);
        if written.is_none() || written == seen {
            return;
        }
        match p::read_checksums(&self.storage, collection).await {
            Ok((written, rows)) => {
                self.known.lock().await.indexed.insert(
                    collection.to_string(),
                    Indexed {
                        written,
                        by_path: rows.into_iter().map(|(r, m, s)| (r, (m, s))).collect(),
                    },
                );
            }
            Err(e) => tracing::warn!("{collection}: product checksums not read: {e}"),
        }
    }

    /// The MD5 of the stored file at `path`, read whole as a stream; `None` when the file
    /// changed while it was read (its validator is not `meta`'s any more).
    async fn compute(
        &self,
        path: &object_store::path::Path,
        meta: &object_store::ObjectMeta,
    ) -> anyhow::Result<Option<String>> {
        use futures::StreamExt;
        use md5::Digest;
        use object_store::ObjectStoreExt;
        let got = self.storage.store.get(path).await?;
        if validator(&got.meta) != validator(meta) {
            return Ok(None);
        }
        let mut hasher = md5::Md5::new();
        let mut n = 0u64;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let after = self.storage.store.head(path).await?;
        if n != meta.size || validator(&after) != validator(meta) {
            return Ok(None);
        }
        Ok(Some(
            hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        ))
    }
}

/// Half the largest `s_fov` among the ObsCore records with a footprint, with a margin for
/// rounding; `None` when there is none or the query fails.
async fn max_half_fov(snapshot: &Snapshot) -> Option<f64> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float64Type;
    let df = snapshot
        .ctx()
        .sql("SELECT MAX(s_fov) FROM ivoa.obscore WHERE s_region IS NOT NULL")
        .await
        .ok()?;
    let batches = df.collect().await.ok()?;
    let v = batches
        .first()
        .and_then(|b| b.column(0).as_primitive_opt::<Float64Type>())
        .filter(|a| a.len() == 1 && !a.is_null(0))
        .map(|a| a.value(0))?;
    let half = v / 2.0 * (1.0 + 1e-9) + 1e-9;
    tracing::info!("ivoa.obscore: largest footprint radius {half:.4}°");
    Some(half)
}

/// How a catalog is served (the engine's `Served` hook, given the catalog's folder):
/// `ivoa.obscore` with absolute access URLs under `public_base`, the others as they are.
pub fn served(public_base: &str, folder: &str, table: Arc<HatsTable>) -> Arc<dyn TableProvider> {
    if folder == OBSCORE_ROOT {
        Arc::new(table::ObscoreTable::new(table, public_base))
    } else {
        table
    }
}

/// The DataLink service descriptor pointing result rows (by `obs_publisher_did`) to
/// `/datalink/links`.
pub fn datalink_descriptor(base: &str) -> String {
    format!(
        "<RESOURCE type=\"meta\" utype=\"adhoc:service\" name=\"links\">\n\
<DESCRIPTION>DataLink: the file, a preview and the FITS header of each product</DESCRIPTION>\n\
<PARAM name=\"standardID\" datatype=\"char\" arraysize=\"*\" value=\"ivo://ivoa.net/std/DataLink#links-1.1\"/>\n\
<PARAM name=\"accessURL\" datatype=\"char\" arraysize=\"*\" value=\"{}/datalink/links\"/>\n\
<GROUP name=\"inputParams\">\n\
<PARAM name=\"ID\" datatype=\"char\" arraysize=\"*\" value=\"\" ref=\"obs_publisher_did\" ucd=\"meta.id;meta.main\"/>\n\
</GROUP>\n</RESOURCE>\n",
        esc(base)
    )
}

/// A path below `products/` from the URL tail; `None` when a segment is empty, `.` or `..`,
/// or starts with `_` (the index), or holds a backslash or control character.
pub fn product_path(tail: &str) -> Option<String> {
    let parts: Vec<&str> = tail.split('/').collect();
    if parts.len() < 2 {
        return None;
    }
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty()
            || *p == "."
            || *p == ".."
            || (i == 0 && p.starts_with('_'))
            || p.chars().any(|c| c == '\\' || c.is_control())
        {
            return None;
        }
    }
    Some(parts.join("/"))
}

/// The one media type of every FITS product: ObsCore's `access_format`, SIA and SSA results,
/// DataLink's `content_type` and the download's `Content-Type` all say it. RFC 4047's type for
/// any FITS file (`image/fits` would be wrong for a spectrum or a file whose primary HDU is
/// empty); SIA's `FORMAT=image/fits` still finds FITS images.
pub const FITS: &str = catalogs::obscore::FITS_MEDIA_TYPE;

/// What a stored file is, as served: its media type and whether the stored bytes are that
/// type gzip-compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media {
    /// The media type of the content (of the decompressed bytes when `gzip`).
    pub content_type: &'static str,
    /// The stored bytes are gzip-compressed: `/data/` sends them with `Content-Encoding: gzip`
    /// to clients that accept it and decompressed to the others.
    pub gzip: bool,
}

/// The media type of a stored file, from its name: `x.fits.gz` is FITS, gzip-compressed; a
/// `.gz` of anything else is `application/gzip` as it is.
pub fn media(path: &str) -> Media {
    let p = path.to_ascii_lowercase();
    let (inner, gzip) = match p.strip_suffix(".gz") {
        Some(inner) => (inner, true),
        None => (p.as_str(), false),
    };
    let content_type =
        if inner.ends_with(".fits") || inner.ends_with(".fit") || inner.ends_with(".fts") {
            FITS
        } else if inner.ends_with(".xml") || inner.ends_with(".vot") {
            "application/x-votable+xml"
        } else if gzip {
            return Media {
                content_type: "application/gzip",
                gzip: false,
            };
        } else {
            "application/octet-stream"
        };
    Media { content_type, gzip }
}

/// The file name a client saves a stored file as (`Content-Disposition`): what the content is
/// as served, so `x.fits` for `x.fits.gz`.
pub fn saved_name(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or("file").replace('"', "");
    match (media(path).gzip, name.len().checked_sub(3)) {
        (true, Some(n)) if name.is_char_boundary(n) => name[..n].to_string(),
        _ => name,
    }
}

/// Parses an `obs_publisher_did` of this server (`ivo://{authority}/{collection}?{path}` with an
/// optional `#{hdu}`) into (collection, path, hdu).
pub fn parse_did(did: &str, authority: &str) -> Option<(String, String, Option<usize>)> {
    let rest = did.strip_prefix("ivo://")?;
    let (auth, rest) = rest.split_once('/')?;
    if !auth.eq_ignore_ascii_case(authority) {
        return None;
    }
    let (collection, path) = rest.split_once('?')?;
    let (path, hdu) = match path.rsplit_once('#') {
        Some((p, h)) => (p, Some(h.parse::<usize>().ok()?)),
        None => (path, None),
    };
    let rel = product_path(&format!("{collection}/{path}"))?;
    let (c, p) = rel.split_once('/')?;
    Some((c.to_string(), p.to_string(), hdu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dids() {
        assert_eq!(
            parse_did("ivo://x.org/demo?images/a.fits#2", "x.org"),
            Some(("demo".into(), "images/a.fits".into(), Some(2)))
        );
        assert_eq!(
            parse_did("ivo://x.org/demo?a.fits", "x.org"),
            Some(("demo".into(), "a.fits".into(), None))
        );
        assert_eq!(parse_did("ivo://y.org/demo?a.fits", "x.org"), None);
        assert_eq!(parse_did("ivo://x.org/demo?../a.fits", "x.org"), None);
        assert_eq!(parse_did("ivo://x.org/_index?a.fits", "x.org"), None);
        assert_eq!(parse_did("ivo://x.org/demo?a.fits#x", "x.org"), None);
    }

    #[test]
    fn media_types() {
        let fits_gz = Media {
            content_type: FITS,
            gzip: true,
        };
        assert_eq!(media("demo/spectra/r.UVES.fits.gz"), fits_gz);
        assert_eq!(media("demo/images/A.FITS.GZ"), fits_gz);
        assert_eq!(
            media("demo/images/a.fits"),
            Media {
                content_type: FITS,
                gzip: false
            }
        );
        assert_eq!(
            media("demo/x.tar.gz"),
            Media {
                content_type: "application/gzip",
                gzip: false
            }
        );
        assert_eq!(
            media("demo/t.vot").content_type,
            "application/x-votable+xml"
        );
        assert_eq!(
            media("demo/readme").content_type,
            "application/octet-stream"
        );
        assert_eq!(saved_name("demo/spectra/r.UVES.fits.gz"), "r.UVES.fits");
        assert_eq!(saved_name("demo/x.tar.gz"), "x.tar.gz");
    }

    #[test]
    fn paths() {
        assert_eq!(
            product_path("demo/images/a.fits").as_deref(),
            Some("demo/images/a.fits")
        );
        for bad in [
            "demo/../secret",
            "demo//a",
            "_index/demo/obscore.parquet",
            "demo/./a",
            "a",
            "demo/a\\b",
        ] {
            assert_eq!(product_path(bad), None, "{bad}");
        }
    }
}
