//! FITS beside VOTable: the same Arrow table model, read and written as FITS 4.0.
//!
//! * [`write`]: a result as one `BINTABLE` (what `RESPONSEFORMAT=fits` sends), collected first
//!   (in memory, then spilled to an unlinked file) because its header needs the row count and
//!   string widths.
//! * [`read`]: every HDU's header cards, and `BINTABLE` extensions into Arrow record batches
//!   (catalog ingest, ObsCore extraction, previews).

pub mod read;
pub mod write;

pub use read::{hdus, read_bintable, Card, FitsError, Hdu};
pub use write::{error_file, FitsEncoder};
