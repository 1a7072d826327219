//! Data products (FITS images and spectra) as served: the `ivoa.obscore` table with absolute
//! access URLs ([`table`]), the ObsCore query expressions SIA and SSA build their filters
//! from ([`query`]), product identifiers and paths, and the DataLink service descriptor. Their
//! ingest is `crate::publish::products`; the protocol fronts that find them (SIA, SSA), link
//! them (DataLink) and send them (`/data`) are in `crate::protocols`.

pub mod query;
pub mod table;

use std::collections::HashMap;
use std::sync::Arc;

use catalogs::HatsTable;
use datafusion::datasource::TableProvider;
use votable::xml::escape as esc;

use crate::engine::Engine;
use crate::publish::products::OBSCORE_ROOT;

/// What the product services know of the ObsCore table (application data).
#[derive(Debug, Clone, Default)]
pub struct Obscore {
    /// Half the largest `s_fov` of the images that have a footprint: how far an image centre
    /// can be from a region the image meets (SIA uses it to prune). `None` without images.
    pub max_half_fov: Option<f64>,
}

impl Obscore {
    /// Reads what the served ObsCore table holds (a fixed query, no user text).
    pub async fn load(engine: &Engine) -> Obscore {
        Obscore {
            max_half_fov: if engine.table("ivoa.obscore").is_some() {
                max_half_fov(engine).await
            } else {
                None
            },
        }
    }
}

/// The MD5 of every stored product as ingest recorded it (application data), for the
/// `Digest` header of downloads.
#[derive(Debug, Clone, Default)]
pub struct Checksums {
    /// Path below `products/` → (MD5 hex, size in bytes).
    by_path: HashMap<String, (String, u64)>,
}

impl Checksums {
    /// Reads the checksums of every collection; none when they cannot be read (downloads
    /// then go without `Digest`).
    pub async fn load(storage: &storage::Storage) -> Checksums {
        match crate::publish::products::checksums(storage).await {
            Ok(all) => Checksums {
                by_path: all
                    .into_iter()
                    .map(|(rel, md5, size)| (rel, (md5, size)))
                    .collect(),
            },
            Err(e) => {
                tracing::warn!("product checksums not read (downloads go without Digest): {e}");
                Checksums::default()
            }
        }
    }

    /// The MD5 (hex) of the product at `rel` (below `products/`), when it was recorded for a
    /// file of `size` bytes (a file replaced since has none).
    pub fn md5(&self, rel: &str, size: u64) -> Option<&str> {
        self.by_path
            .get(rel)
            .filter(|(_, s)| *s == size)
            .map(|(m, _)| m.as_str())
    }
}

/// Half the largest `s_fov` among the ObsCore records with a footprint, with a margin for
/// rounding; `None` when there is none or the query fails.
async fn max_half_fov(engine: &Engine) -> Option<f64> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float64Type;
    let df = engine
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

/// How a catalog is served (the engine's `Served` hook): `ivoa.obscore` with absolute
/// access URLs under `public_base`, the others as they are.
pub fn served(public_base: &str, root: &str, table: Arc<HatsTable>) -> Arc<dyn TableProvider> {
    if root == OBSCORE_ROOT {
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

/// The MIME type a stored file is served with.
pub fn content_type(path: &str) -> &'static str {
    let p = path.to_ascii_lowercase();
    if p.ends_with(".gz") {
        "application/gzip"
    } else if p.ends_with(".fits") || p.ends_with(".fit") || p.ends_with(".fts") {
        "application/fits"
    } else if p.ends_with(".xml") || p.ends_with(".vot") {
        "application/x-votable+xml"
    } else {
        "application/octet-stream"
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
