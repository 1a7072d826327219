//! CSV and TSV: a header line with the column names, then one line per row. Arrays (geometry
//! values included) are their elements separated by spaces, as in VOTable TABLEDATA. Neither
//! format can say that MAXREC cut the result; a failure after the first row ends the text with
//! a `# ERROR: …` line.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::EndStatus;

/// Writes batches as delimited text.
pub struct TextEncoder {
    schema: SchemaRef,
    delimiter: u8,
    header_done: bool,
}

impl TextEncoder {
    /// An encoder of tables of `schema`, fields separated by `delimiter`.
    pub fn new(schema: SchemaRef, delimiter: u8) -> Self {
        TextEncoder {
            schema,
            delimiter,
            header_done: false,
        }
    }

    /// The lines of one batch (preceded by the header line for the first one).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<Bytes, String> {
        let batch = &flatten_lists(batch).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(!self.header_done)
                .with_delimiter(self.delimiter)
                .build(&mut buf);
            w.write(batch).map_err(|e| e.to_string())?;
        }
        self.header_done = true;
        Ok(Bytes::from(buf))
    }

    /// The end: the header line if no row came, and the error line if the result failed.
    pub fn finish(&mut self, status: EndStatus) -> Bytes {
        let mut out = Vec::new();
        if !self.header_done {
            let names: Vec<&str> = self
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            out.extend_from_slice(names.join(&(self.delimiter as char).to_string()).as_bytes());
            out.push(b'\n');
            self.header_done = true;
        }
        if let EndStatus::Error(m) = status {
            out.extend_from_slice(format!("# ERROR: {m}\n").as_bytes());
        }
        Bytes::from(out)
    }
}

/// CSV and TSV have no arrays: array cells become their values separated by spaces (as in
/// VOTable TABLEDATA), so that geometry and array columns can be written.
fn flatten_lists(batch: &RecordBatch) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::array::{Array, AsArray, StringBuilder};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let is_list = |t: &DataType| {
        matches!(
            t,
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
        )
    };
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| is_list(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let opts = FormatOptions::default();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if !is_list(f.data_type()) {
            fields.push(f.as_ref().clone());
            columns.push(c.clone());
            continue;
        }
        let mut b = StringBuilder::new();
        for i in 0..c.len() {
            if c.is_null(i) {
                b.append_null();
                continue;
            }
            let values = match f.data_type() {
                DataType::List(_) => c.as_list::<i32>().value(i),
                DataType::LargeList(_) => c.as_list::<i64>().value(i),
                _ => c.as_fixed_size_list().value(i),
            };
            let fmt = ArrayFormatter::try_new(values.as_ref(), &opts)?;
            let cell: Vec<String> = (0..values.len())
                .map(|j| fmt.value(j).to_string())
                .collect();
            b.append_value(cell.join(" "));
        }
        fields.push(Field::new(f.name(), DataType::Utf8, true));
        columns.push(Arc::new(b.finish()));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
