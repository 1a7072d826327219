//! HEALPix-partitioned Parquet catalogs (the HATS layout that LSDB reads) in object storage.
//!
//! In the query path this crate sits under the ADQL planner: [`provider::HatsTable`] is the
//! DataFusion `TableProvider` that turns a spatial predicate into a HEALPix coverage and reads
//! only the partition files and row groups that can match. Beside it: the metadata files that
//! describe a catalog ([`meta`]), the readers for raw sources ([`source`]; FITS through
//! `votable::fits`), the HATS writer ([`hats`]), synthetic skies ([`synth`]), ObsCore records from
//! FITS files ([`obscore`]) and previews ([`preview`]). Storage is the `storage` crate's. Knows
//! no HTTP and no ADQL text.

pub mod catalog;
pub mod coverage;
pub mod hats;
pub mod meta;
pub mod obscore;
pub mod preview;
pub mod provider;
pub mod source;
pub mod synth;
pub mod versions;

pub use catalog::{open_catalog, HatsCatalog, PartitionFile};
pub use meta::CatalogMeta;
pub use provider::{HatsTable, ScanStats};

/// Everything that can go wrong reading, writing or serving a catalog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The metadata file is wrong.
    #[error("catalog metadata: {0}")]
    Metadata(String),
    /// The raw source cannot be read.
    #[error("source data: {0}")]
    Source(String),
    /// An input is larger than allowed (a decompressed size past its bound).
    #[error("too large: {0}")]
    TooLarge(String),
    /// A stored catalog is malformed.
    #[error("catalog layout: {0}")]
    Layout(String),
    /// Object storage failed.
    #[error("storage: {0}")]
    Storage(#[from] object_store::Error),
    /// The storage location failed.
    #[error("{0}")]
    Location(#[from] storage::Error),
    /// A FITS file cannot be read.
    #[error("source data: {0}")]
    Fits(#[from] votable::fits::FitsError),
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// DataFusion failed.
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

/// The URL DataFusion knows `storage`'s object store by: register the store under it, and give
/// it to [`HatsTable::new`].
pub fn store_url(
    storage: &storage::Storage,
) -> Result<datafusion::execution::object_store::ObjectStoreUrl, Error> {
    Ok(datafusion::execution::object_store::ObjectStoreUrl::parse(
        storage.url.as_str(),
    )?)
}
