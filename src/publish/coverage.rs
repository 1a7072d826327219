//! The coverage (MOC 2.0) of each collection of images and spectra, written at ingest beside
//! its index (`products/_index/<collection>/moc.fits`): the union of its ObsCore records'
//! footprints (`s_region` polygons where present, else a cone of `s_fov/2` about the position,
//! else the cell of the position), at an order from the products' sizes
//! (`catalogs::coverage::footprint_order`); beside it the coverage of its images and cubes
//! alone (`moc-images.fits`) and of its spectra alone (`moc-spectra.fits`), for the SIA and
//! SSA registry records. `ivoa.obscore`'s own `moc.fits` is the union of the collections'
//! coverages, so that `/moc/ivoa.obscore` shows footprints, not the cells of the products'
//! centres.

use anyhow::Context;
use catalogs::coverage::{self, Coverage, COVERAGE_FILE};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use storage::Storage;

use super::products::{check_collection, index_collections};

/// The products a coverage is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Products {
    /// Every product of the collection.
    All,
    /// Images and cubes (what SIA finds).
    Images,
    /// Spectra (what SSA finds).
    Spectra,
}

impl Products {
    /// Its file in the collection's index folder.
    fn file(self) -> &'static str {
        match self {
            Products::All => COVERAGE_FILE,
            Products::Images => "moc-images.fits",
            Products::Spectra => "moc-spectra.fits",
        }
    }

    /// The `dataproduct_type`s it takes (None: every row).
    fn types(self) -> Option<&'static [&'static str]> {
        match self {
            Products::All => None,
            Products::Images => Some(&["image", "cube"]),
            Products::Spectra => Some(&["spectrum"]),
        }
    }

    /// The coverage of `records` (ObsCore rows) it takes.
    async fn coverage(self, records: &RecordBatch) -> anyhow::Result<Coverage> {
        let rows = match self.types() {
            None => records.clone(),
            Some(types) => coverage::obscore_rows_of(records, types)?,
        };
        compute(rows).await
    }
}

/// Where a collection's index files are.
fn index(collection: &str) -> String {
    format!("products/_index/{collection}")
}

/// Computes the coverage of ObsCore records (off the async threads: polygons at a deep order
/// take a while).
async fn compute(batch: RecordBatch) -> anyhow::Result<Coverage> {
    Ok(tokio::task::spawn_blocking(move || coverage::obscore_coverage(&batch)).await??)
}

/// Writes `collection`'s coverages (every product's, the images', the spectra's) from its
/// ObsCore records (called by ingest, before the index's `obscore.parquet`, which marks the
/// collection complete).
pub async fn write_collection_coverage(
    storage: &Storage,
    collection: &str,
    records: &RecordBatch,
) -> anyhow::Result<()> {
    for products in [Products::All, Products::Images, Products::Spectra] {
        let moc = products.coverage(records).await?;
        storage
            .put(
                &storage.path(&format!("{}/{}", index(collection), products.file())),
                coverage::to_fits(&moc)?,
            )
            .await
            .with_context(|| format!("writing the coverage of {collection}"))?;
    }
    Ok(())
}

/// The coverage of `collection`: its stored `moc.fits`, else (a collection ingested before
/// coverages were written) computed from its index; None when there is no such collection.
pub async fn collection_coverage(
    storage: &Storage,
    collection: &str,
) -> anyhow::Result<Option<Coverage>> {
    collection_coverage_of(storage, collection, Products::All).await
}

/// The coverage of `products` of `collection` (see [`collection_coverage`]).
pub async fn collection_coverage_of(
    storage: &Storage,
    collection: &str,
    products: Products,
) -> anyhow::Result<Option<Coverage>> {
    if check_collection(collection).is_err() {
        return Ok(None);
    }
    let moc = storage.path(&format!("{}/{}", index(collection), products.file()));
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
    Ok(Some(products.coverage(&all).await?))
}

/// The collections with an index, each with the coverage of its `products` (the ones whose
/// coverage cannot be read are left out, with a warning).
pub async fn collection_coverages(
    storage: &Storage,
    products: Products,
) -> anyhow::Result<Vec<(String, Coverage)>> {
    let mut out = Vec::new();
    for c in index_collections(storage).await? {
        match collection_coverage_of(storage, &c, products).await {
            Ok(Some(m)) => out.push((c, m)),
            Ok(None) => {}
            Err(e) => tracing::warn!("collection {c}: no coverage: {e:#}"),
        }
    }
    Ok(out)
}

/// Writes `ivoa.obscore`'s coverage as the union of the collections' into the table's folder
/// `root` (the version just rebuilt, before it is published).
pub async fn write_obscore_coverage(storage: &Storage, root: &str) -> anyhow::Result<()> {
    let mut union: Option<Coverage> = None;
    for (_, m) in collection_coverages(storage, Products::All).await? {
        union = Some(match union {
            None => m,
            Some(u) => u.or(&m),
        });
    }
    let union = union.unwrap_or_else(|| Coverage::new_empty(3));
    storage
        .put(
            &storage.path(&format!("{root}/{COVERAGE_FILE}")),
            coverage::to_fits(&union)?,
        )
        .await?;
    Ok(())
}
