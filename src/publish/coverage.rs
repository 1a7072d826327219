//! The coverage (MOC 2.0) of each collection of images and spectra, written at ingest beside
//! its index (`products/_index/<collection>/moc.fits`): the union of its ObsCore records'
//! footprints (`s_region` polygons where present, else a cone of `s_fov/2` about the position,
//! else the cell of the position), at an order from the products' sizes
//! (`catalogs::coverage::footprint_order`). `ivoa.obscore`'s own `moc.fits` is the union of
//! the collections' coverages, so that `/moc/ivoa.obscore` shows footprints, not the cells of
//! the products' centres.

use anyhow::Context;
use catalogs::coverage::{self, Coverage, COVERAGE_FILE};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use storage::Storage;

use super::products::{check_collection, index_collections, OBSCORE_ROOT};

/// Where a collection's index files are.
fn index(collection: &str) -> String {
    format!("products/_index/{collection}")
}

/// Computes the coverage of ObsCore records (off the async threads: polygons at a deep order
/// take a while).
async fn compute(batch: RecordBatch) -> anyhow::Result<Coverage> {
    Ok(tokio::task::spawn_blocking(move || coverage::obscore_coverage(&batch)).await??)
}

/// Writes `collection`'s coverage from its ObsCore records (called by ingest, before the
/// index's `obscore.parquet`, which marks the collection complete).
pub async fn write_collection_coverage(
    storage: &Storage,
    collection: &str,
    records: &RecordBatch,
) -> anyhow::Result<Coverage> {
    let moc = compute(records.clone()).await?;
    storage
        .put(
            &storage.path(&format!("{}/{COVERAGE_FILE}", index(collection))),
            coverage::to_fits(&moc)?,
        )
        .await
        .with_context(|| format!("writing the coverage of {collection}"))?;
    Ok(moc)
}

/// The coverage of `collection`: its stored `moc.fits`, else (a collection ingested before
/// coverages were written) computed from its index; None when there is no such collection.
pub async fn collection_coverage(
    storage: &Storage,
    collection: &str,
) -> anyhow::Result<Option<Coverage>> {
    if check_collection(collection).is_err() {
        return Ok(None);
    }
    let moc = storage.path(&format!("{}/{COVERAGE_FILE}", index(collection)));
    match storage.get(&moc).await {
        Ok(bytes) => return Ok(Some(coverage::from_fits(&bytes)?)),
        Err(storage::Error::Store(object_store::Error::NotFound { .. })) => {}
        Err(e) => return Err(e.into()),
    }
    let records = storage.path(&format!("{}/obscore.parquet", index(collection)));
    let bytes = match storage.get(&records).await {
        Ok(b) => b,
        Err(storage::Error::Store(object_store::Error::NotFound { .. })) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let Some(first) = batches.first() else {
        return Ok(Some(Coverage::new_empty(3)));
    };
    let all = datafusion::arrow::compute::concat_batches(&first.schema(), batches.iter())?;
    Ok(Some(compute(all).await?))
}

/// The collections with an index, each with its coverage (the ones whose coverage cannot be
/// read are left out, with a warning).
pub async fn collection_coverages(storage: &Storage) -> anyhow::Result<Vec<(String, Coverage)>> {
    let mut out = Vec::new();
    for c in index_collections(storage).await? {
        match collection_coverage(storage, &c).await {
            Ok(Some(m)) => out.push((c, m)),
            Ok(None) => {}
            Err(e) => tracing::warn!("collection {c}: no coverage: {e:#}"),
        }
    }
    Ok(out)
}

/// Writes `ivoa.obscore`'s coverage as the union of the collections' (after the table is
/// rebuilt).
pub async fn write_obscore_coverage(storage: &Storage) -> anyhow::Result<()> {
    let mut union: Option<Coverage> = None;
    for (_, m) in collection_coverages(storage).await? {
        union = Some(match union {
            None => m,
            Some(u) => u.or(&m),
        });
    }
    let union = union.unwrap_or_else(|| Coverage::new_empty(3));
    storage
        .put(
            &storage.path(&format!("{OBSCORE_ROOT}/{COVERAGE_FILE}")),
            coverage::to_fits(&union)?,
        )
        .await?;
    Ok(())
}
