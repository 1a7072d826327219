//! Ingest of data products (FITS images and spectra): a folder or an object-store prefix →
//! the original files in the data folder, their ObsCore records in `ivoa.obscore` and every
//! header card in `archive.fits_headers`.
//!
//! Layout in the data folder:
//! ```text
//! products/<collection>/<path>                  the files, byte for byte as ingested
//! products/_index/<collection>/obscore.parquet  the collection's ObsCore records
//! products/_index/<collection>/headers.parquet  its header cards
//! products/_index/<collection>/md5.tsv          each stored file's MD5, size and path
//! products/_index/<collection>/moc.fits         its coverage (see super::coverage)
//! catalogs/ivoa.obscore/v<N>/                   HATS table rebuilt from every collection's index
//! catalogs/archive.fits_headers/v<N>/           same, for the header cards
//! ```
//! Each rebuild writes new versions of both tables and publishes them together
//! (catalogs::versions); a replaced collection's files are written over the old ones.
//! A file the mapping cannot read is reported and skipped; one it only partly understands is
//! published with what could be derived, and each gap is reported per file.

use std::io::IsTerminal;

use anyhow::Context;
use catalogs::hats::{write_catalog, WriteOptions};
use catalogs::meta::{CatalogMeta, TableMeta};
use catalogs::obscore::{self, Product};
use catalogs::versions;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use object_store::ObjectStoreExt;
use storage::Storage;

/// Root of the stored files.
pub const PRODUCTS: &str = "products";
/// Where each collection's derived rows are kept.
const INDEX: &str = "products/_index";
/// The published ObsCore table.
pub const OBSCORE_ROOT: &str = "catalogs/ivoa.obscore";
/// The published header archive.
pub const HEADERS_ROOT: &str = "catalogs/archive.fits_headers";
/// Each collection's checksums (in its index folder): one line per stored file,
/// `<md5 hex>\t<size>\t<path in the collection>`.
const CHECKSUMS: &str = "md5.tsv";

/// File names taken as FITS.
pub fn is_fits_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz"]
        .iter()
        .any(|x| n.ends_with(x))
}

/// What an ingest did.
#[derive(Debug, Default)]
pub struct ProductSummary {
    /// Files stored and described.
    pub files: usize,
    /// ObsCore records written for this collection.
    pub records: usize,
    /// Files skipped (unreadable), with the reason.
    pub failed: Vec<(String, String)>,
    /// Per-file warnings (published, but something was not understood).
    pub warnings: Vec<(String, String)>,
    /// ObsCore records (of all collections) without a position: published with NULL
    /// `s_ra`/`s_dec`, found by collection, time or band but never by position.
    pub unpositioned: u64,
}

/// Checks a collection name: it becomes a path segment and part of identifiers.
pub fn check_collection(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.starts_with(['_', '.'])
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        anyhow::bail!(
            "collection name '{name}': use letters, digits, '-', '_' and '.', not starting with '_' or '.'"
        );
    }
    Ok(())
}

/// Whether the collection has been ingested.
pub async fn collection_exists(storage: &Storage, collection: &str) -> anyhow::Result<bool> {
    Ok(storage
        .exists(&storage.path(&format!("{INDEX}/{collection}/obscore.parquet")))
        .await?)
}

/// Ingests every FITS file under `source` (a local folder or an object-store URL such as
/// `s3://bucket/prefix`) as collection `collection`, then publishes new versions of the
/// tables made from every collection (versions retired for longer than `retention` are
/// deleted).
#[allow(clippy::too_many_arguments)]
pub async fn ingest_products(
    storage: &Storage,
    source: &str,
    source_options: &[(String, String)],
    collection: &str,
    authority: &str,
    force: bool,
    show_progress: bool,
    retention: std::time::Duration,
) -> anyhow::Result<ProductSummary> {
    check_collection(collection)?;
    if !force && collection_exists(storage, collection).await? {
        anyhow::bail!(
            "collection '{collection}' exists in the data folder (use --force to replace it)"
        );
    }
    let src = Storage::open(source, source_options, storage::Missing::Refuse)
        .with_context(|| format!("opening the source {source}"))?;
    let mut objects: Vec<object_store::ObjectMeta> = src
        .store
        .list(Some(&src.prefix))
        .try_collect()
        .await
        .with_context(|| format!("listing {source}"))?;
    objects.retain(|o| o.location.filename().is_some_and(is_fits_name));
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    if objects.is_empty() {
        anyhow::bail!("no FITS files (.fits, .fit, .fts, optionally .gz) under {source}");
    }
    // Replacing: the old records stay published until the new ones are; the new files are
    // written over the old ones (each object is replaced whole), and the old files the new
    // collection does not have are deleted once its records are published.
    let old_files: Vec<object_store::path::Path> = if force {
        storage
            .store
            .list(Some(&storage.path(&format!("{PRODUCTS}/{collection}"))))
            .map_ok(|m| m.location)
            .try_collect()
            .await?
    } else {
        Vec::new()
    };
    let mut stored = std::collections::HashSet::new();

    let bar = if show_progress && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(objects.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} files")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.set_message(format!("{collection}: ingesting"));
        b
    } else {
        ProgressBar::hidden()
    };
    let prefix_parts = src.prefix.parts().count();
    let mut summary = ProductSummary::default();
    let mut records = Vec::new();
    let mut headers = Vec::new();
    let mut checksums = String::new();
    for o in &objects {
        let rel: Vec<String> = o
            .location
            .parts()
            .skip(prefix_parts)
            .map(|p| p.as_ref().to_string())
            .collect();
        let rel = rel.join("/");
        bar.set_message(format!("{collection}: {rel}"));
        let bytes = src
            .store
            .get(&o.location)
            .await
            .with_context(|| format!("reading {rel}"))?
            .bytes()
            .await
            .with_context(|| format!("reading {rel}"))?;
        let (c, a, r, b) = (
            collection.to_string(),
            authority.to_string(),
            rel.clone(),
            bytes.clone(),
        );
        let derived = tokio::task::spawn_blocking(move || {
            obscore::derive(&Product {
                collection: &c,
                authority: &a,
                path: &r,
                bytes: &b,
            })
        })
        .await?;
        match derived {
            Err(e) => {
                tracing::warn!("{rel}: skipped: {e}");
                summary.failed.push((rel.clone(), e.to_string()));
            }
            Ok(d) => {
                let path = storage.path(&format!("{PRODUCTS}/{collection}/{rel}"));
                storage
                    .put(&path, bytes.to_vec())
                    .await
                    .with_context(|| format!("storing {rel}"))?;
                stored.insert(path);
                // Paths with control characters are never served (products::product_path).
                if !rel.chars().any(char::is_control) {
                    checksums.push_str(&format!("{}\t{}\t{rel}\n", md5_hex(&bytes), bytes.len()));
                }
                for w in d.warnings {
                    // The mapping names the file itself.
                    let w = w
                        .strip_prefix(&format!("{rel}: "))
                        .map(str::to_string)
                        .unwrap_or(w);
                    tracing::info!("{rel}: {w}");
                    summary.warnings.push((rel.clone(), w));
                }
                summary.files += 1;
                summary.records += d.records.len();
                records.extend(d.records);
                headers.extend(d.headers);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let obs = obscore::obscore_batch(&records)?;
    let hdr = obscore::header_batch(&headers)?;
    // The index is written last: a collection counts as ingested only when it is complete.
    super::coverage::write_collection_coverage(storage, collection, &obs).await?;
    storage
        .put(
            &storage.path(&format!("{INDEX}/{collection}/{CHECKSUMS}")),
            checksums.into_bytes(),
        )
        .await?;
    storage
        .put(
            &storage.path(&format!("{INDEX}/{collection}/headers.parquet")),
            to_parquet(&hdr)?,
        )
        .await?;
    storage
        .put(
            &storage.path(&format!("{INDEX}/{collection}/obscore.parquet")),
            to_parquet(&obs)?,
        )
        .await?;
    summary.unpositioned = rebuild_tables(storage, retention).await?;
    for old in old_files.iter().filter(|p| !stored.contains(*p)) {
        if let Err(e) = storage.store.delete(old).await {
            tracing::warn!("{old}: a file of the replaced collection not deleted: {e}");
        }
    }
    Ok(summary)
}

/// Stops publishing collection `collection`: its records leave `ivoa.obscore` and
/// `archive.fits_headers` (new versions of both, published at once), then its files are
/// deleted.
pub async fn drop_collection(
    storage: &Storage,
    collection: &str,
    retention: std::time::Duration,
) -> anyhow::Result<()> {
    check_collection(collection)?;
    if !collection_exists(storage, collection).await? {
        anyhow::bail!("no collection '{collection}' is in the data folder");
    }
    storage
        .delete_prefix(&format!("{INDEX}/{collection}"))
        .await?;
    rebuild_tables(storage, retention).await?;
    storage
        .delete_prefix(&format!("{PRODUCTS}/{collection}"))
        .await?;
    Ok(())
}

/// The MD5 of `bytes`, in hex.
fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Each server's MD5s of files ingest recorded none for (in the collection's index folder):
/// one line per file, `<md5 hex>\t<size>\t<validator>\t<path in the collection>`.
const SERVED_CHECKSUMS: &str = "md5-served.tsv";

/// The collections that have an index folder (`products/_index/<collection>/`).
pub async fn index_collections(storage: &Storage) -> anyhow::Result<Vec<String>> {
    let base = storage.path(INDEX);
    let all: Vec<object_store::ObjectMeta> = storage.store.list(Some(&base)).try_collect().await?;
    let depth = base.parts().count();
    let mut out: Vec<String> = all
        .iter()
        .filter_map(|o| {
            o.location
                .parts()
                .nth(depth)
                .map(|p| p.as_ref().to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// When `collection`'s `md5.tsv` was written; `None` when it has none.
pub async fn checksums_written(
    storage: &Storage,
    collection: &str,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let path = storage.path(&format!("{INDEX}/{collection}/{CHECKSUMS}"));
    storage
        .store
        .head(&path)
        .await
        .ok()
        .map(|m| m.last_modified)
}

/// `collection`'s checksums as ingest recorded them: when they were written, and each file's
/// (path below `products/`, MD5 hex, size). A collection ingested before checksums were
/// recorded has none (`None`, no rows).
pub async fn read_checksums(
    storage: &Storage,
    collection: &str,
) -> anyhow::Result<(
    Option<chrono::DateTime<chrono::Utc>>,
    Vec<(String, String, u64)>,
)> {
    let path = storage.path(&format!("{INDEX}/{collection}/{CHECKSUMS}"));
    let got = match storage.store.get(&path).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok((None, Vec::new())),
        Err(e) => return Err(e.into()),
    };
    let written = got.meta.last_modified;
    let text = got.bytes().await?;
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&text).lines() {
        let mut f = line.splitn(3, '\t');
        if let (Some(md5), Some(Ok(size)), Some(rel)) =
            (f.next(), f.next().map(str::parse::<u64>), f.next())
        {
            out.push((format!("{collection}/{rel}"), md5.to_string(), size));
        }
    }
    Ok((Some(written), out))
}

/// The MD5s a server computed for `collection`'s files: (path below `products/`, MD5 hex,
/// size, validator of the file it was computed from).
pub async fn read_served_checksums(
    storage: &Storage,
    collection: &str,
) -> anyhow::Result<Vec<(String, String, u64, String)>> {
    let path = storage.path(&format!("{INDEX}/{collection}/{SERVED_CHECKSUMS}"));
    let text = match storage.get(&path).await {
        Ok(t) => t,
        Err(storage::Error::Store(object_store::Error::NotFound { .. })) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&text).lines() {
        let mut f = line.splitn(4, '\t');
        if let (Some(md5), Some(Ok(size)), Some(v), Some(rel)) = (
            f.next(),
            f.next().map(str::parse::<u64>),
            f.next(),
            f.next(),
        ) {
            out.push((
                format!("{collection}/{rel}"),
                md5.to_string(),
                size,
                v.to_string(),
            ));
        }
    }
    Ok(out)
}

/// Replaces the MD5s a server computed for `collection`'s files with `rows` (as
/// [`read_served_checksums`] gives them).
pub async fn write_served_checksums(
    storage: &Storage,
    collection: &str,
    rows: &[(String, String, u64, String)],
) -> anyhow::Result<()> {
    let prefix = format!("{collection}/");
    let mut text = String::new();
    for (rel, md5, size, v) in rows {
        let Some(r) = rel.strip_prefix(&prefix) else {
            continue;
        };
        text.push_str(&format!("{md5}\t{size}\t{v}\t{r}\n"));
    }
    storage
        .put(
            &storage.path(&format!("{INDEX}/{collection}/{SERVED_CHECKSUMS}")),
            text.into_bytes(),
        )
        .await?;
    Ok(())
}

fn to_parquet(batch: &RecordBatch) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None)?;
    w.write(batch)?;
    w.close()?;
    Ok(buf)
}

async fn read_index(storage: &Storage, file: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let base = storage.path(INDEX);
    let all: Vec<object_store::ObjectMeta> = storage.store.list(Some(&base)).try_collect().await?;
    let mut out = Vec::new();
    for o in all.iter().filter(|o| o.location.filename() == Some(file)) {
        let bytes = storage.get(&o.location).await?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
        for b in reader {
            out.push(b?);
        }
    }
    Ok(out)
}

/// Writes new versions of `ivoa.obscore` and `archive.fits_headers` from every collection's
/// index and publishes both (or drops both when no collection is left); returns how many
/// ObsCore records have no position (published with NULL s_ra/s_dec).
pub async fn rebuild_tables(
    storage: &Storage,
    retention: std::time::Duration,
) -> anyhow::Result<u64> {
    if index_collections(storage).await?.is_empty() {
        for folder in [OBSCORE_ROOT, HEADERS_ROOT] {
            versions::retire(storage, folder).await?;
        }
        versions::announce(storage, OBSCORE_ROOT).await?;
        return Ok(0);
    }
    let obs_schema = obscore::obscore_batch(&[])?.schema();
    let hdr_schema = obscore::header_batch(&[])?.schema();
    let obs = read_index(storage, "obscore.parquet").await?;
    let hdr = read_index(storage, "headers.parquet").await?;
    // Older indexes may lack newer columns: concat fails loudly rather than mixing schemas.
    let obs = concat_batches(&obs_schema, obs.iter()).context("combining ObsCore indexes")?;
    let hdr = concat_batches(&hdr_schema, hdr.iter()).context("combining header indexes")?;

    let mut meta = CatalogMeta {
        table: TableMeta::new("ivoa", "obscore", "s_ra", "s_dec"),
        source: None,
        columns: obscore::obscore_columns(),
    };
    meta.table.id = Some("obs_publisher_did".into());
    meta.table.title = Some("ObsCore 1.1 table of the images and spectra served here".into());
    meta.table.description = Some(
        "One row per data product (image, cube or spectrum): the IVOA ObsCore 1.1 data model, \
         derived from the FITS headers at ingest. s_region is the footprint from the WCS."
            .into(),
    );
    meta.table.schema_description = Some("IVOA standard tables".into());
    meta.table.partition_rows = Some(50_000);
    meta.table.row_group_rows = Some(5_000);
    let obs_version = versions::begin(storage, OBSCORE_ROOT, true)
        .await?
        .unwrap_or_default();
    let obs_root = versions::version_root(OBSCORE_ROOT, obs_version);
    let opts = WriteOptions {
        partition_rows: 50_000,
        row_group_rows: 5_000,
        progress: None,
        keep_unpositioned: true,
    };
    let written = write_catalog(storage, &obs_root, &meta, obs_schema, &[obs], &opts).await?;
    if written.dropped > 0 {
        tracing::info!(
            "{} ObsCore record(s) without a position (found by collection, time or band, not by position)",
            written.dropped
        );
    }

    let mut hmeta = CatalogMeta {
        table: TableMeta::new("archive", "fits_headers", "s_ra", "s_dec"),
        source: None,
        columns: obscore::header_columns(),
    };
    hmeta.table.title = Some("Every FITS header card of the served files".into());
    hmeta.table.description = Some(
        "One row per header card of every HDU of every ingested file, keyed by \
         obs_publisher_did (join with ivoa.obscore); s_ra/s_dec repeat the product's position."
            .into(),
    );
    hmeta.table.schema_description = Some("The archive behind ivoa.obscore".into());
    hmeta.table.partition_rows = Some(200_000);
    hmeta.table.row_group_rows = Some(20_000);
    let hdr_version = versions::begin(storage, HEADERS_ROOT, true)
        .await?
        .unwrap_or_default();
    let hdr_root = versions::version_root(HEADERS_ROOT, hdr_version);
    let hopts = WriteOptions {
        partition_rows: 200_000,
        row_group_rows: 20_000,
        progress: None,
        keep_unpositioned: true,
    };
    write_catalog(storage, &hdr_root, &hmeta, hdr_schema, &[hdr], &hopts).await?;
    // ivoa.obscore's coverage: the union of the collections' footprints (its partitions' cells
    // leave the sky area of each image out), in the new version before it is published.
    super::coverage::write_obscore_coverage(storage, &obs_root).await?;
    // Both complete: switch both, then tell the servers.
    versions::switch(storage, HEADERS_ROOT, hdr_version).await?;
    versions::switch(storage, OBSCORE_ROOT, obs_version).await?;
    versions::announce(storage, OBSCORE_ROOT).await?;
    for folder in [OBSCORE_ROOT, HEADERS_ROOT] {
        if let Err(e) = versions::collect(storage, folder, retention).await {
            tracing::warn!("{folder}: retired versions not deleted: {e}");
        }
    }
    Ok(written.dropped)
}
