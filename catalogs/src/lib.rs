//! HEALPix-partitioned Parquet catalogs (the HATS layout that LSDB reads) in object storage.
//!
//! In the query path this crate sits under the ADQL planner: [`provider::HatsTable`] is the
//! DataFusion `TableProvider` that turns a spatial predicate into a HEALPix coverage and reads
//! only the partition files and row groups that can match. Beside it: the metadata files that
//! describe a catalog ([`meta`]), the readers for raw sources ([`source`], [`fits`]), the HATS
//! writer ([`hats`]) and the object-store access ([`store`]). Knows no HTTP and no ADQL text.

pub mod catalog;
pub mod fits;
pub mod hats;
pub mod meta;
pub mod obscore;
pub mod preview;
pub mod provider;
pub mod source;
pub mod store;
pub mod synth;

pub use catalog::{open_catalog, HatsCatalog, PartitionFile};
pub use meta::CatalogMeta;
pub use provider::{HatsTable, ScanStats};
pub use store::Storage;

/// Everything that can go wrong reading, writing or serving a catalog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The metadata file is wrong.
    #[error("catalog metadata: {0}")]
    Metadata(String),
    /// The raw source cannot be read.
    #[error("source data: {0}")]
    Source(String),
    /// A stored catalog is malformed.
    #[error("catalog layout: {0}")]
    Layout(String),
    /// Object storage failed.
    #[error("storage: {0}")]
    Storage(#[from] object_store::Error),
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
