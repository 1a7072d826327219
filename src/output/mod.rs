//! Result formats beyond VOTable and CSV/TSV, as streaming encoders used by
//! [`crate::query`]'s `Encoder`:
//!
//! * [`fits`]: a FITS file with one binary table (`application/fits`); the result is
//!   collected first ([`spill`]) because the header needs the row count and string widths.
//! * [`voparquet`]: Parquet with the VOTable metadata of the IVOA VOParquet convention
//!   (`application/vnd.apache.parquet`), written row group by row group.
//!
//! A query that fails after its first row never yields a readable, silently incomplete
//! table: FITS then sends a file without table whose header says `QRYSTAT = 'ERROR'` and
//! why (nothing was sent before the end), VOParquet a file without footer ended by an error
//! line. A MAXREC cut is marked (FITS: `QRYSTAT = 'OVERFLOW'` in the table header;
//! VOParquet: the `QUERY_STATUS` INFO `OVERFLOW` after the TABLE of the embedded VOTable, as
//! in a VOTable result); CSV and TSV just stop at MAXREC rows.

pub mod fits;
mod spill;
pub mod voparquet;

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

/// `batch` with the columns of `schema`: each column whose type differs is cast (arrow's
/// `cast`: e.g. a geometry list to its fixed-size DALI array, Int8 to Int16, a timestamp to
/// text), and the batch takes `schema` (names, metadata, nullability).
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.num_columns() != schema.fields().len() {
        return Err(ArrowError::SchemaError(format!(
            "batch has {} columns, expected {}",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    let opts = datafusion::arrow::record_batch::RecordBatchOptions::new()
        .with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns, &opts)
}
