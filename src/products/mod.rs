//! Data products (FITS images and spectra): their ingest, the served `ivoa.obscore` table, and
//! file downloads. The protocol fronts that find them (SIA, SSA) and link them (DataLink) are
//! `crate::sia`, `crate::ssa` and `crate::datalink`.

pub mod files;
pub mod ingest;
pub mod table;

/// The base URL written into `access_url` and links: the configured `public_url`, else
/// `http://{bind}` (with `0.0.0.0`/`[::]` read as `localhost`).
pub fn public_base(config: &crate::config::Config) -> String {
    if let Some(u) = &config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let bind = config
        .bind
        .replace("0.0.0.0", "localhost")
        .replace("[::]", "localhost");
    format!("http://{bind}")
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
    let rel = files::product_path(&format!("{collection}/{path}"))?;
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
}
