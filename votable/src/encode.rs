//! One encoder over every result serialisation, the STIL shape: a table is an Arrow schema
//! (with the column metadata of [`crate::meta`]) and a stream of record batches; [`Format`]
//! names a serialisation and [`Encoder`] writes batches in it, chunk by chunk:
//!
//! * VOTable TABLEDATA, BINARY2, BINARY ([`crate::Writer`]);
//! * CSV and TSV with a header line ([`crate::text`]);
//! * FITS, one binary table ([`crate::fits::write`]): collected first (spilled to an unlinked
//!   file past 16 MiB) because the header needs the row count and string widths;
//! * VOParquet: Parquet with the VOTable metadata of the IVOA convention ([`crate::parquet`]),
//!   row group by row group.
//!
//! A result that fails after its first row never yields a readable, silently incomplete
//! table: VOTable ends with an ERROR INFO, CSV/TSV with a `# ERROR:` line, FITS is a file
//! without table whose header says `QRYSTAT = 'ERROR'` (nothing was sent before the end),
//! VOParquet a file without footer ended by an error line. A MAXREC cut is marked (VOTable:
//! the OVERFLOW INFO; FITS: `QRYSTAT = 'OVERFLOW'`; VOParquet: the OVERFLOW INFO in its
//! embedded VOTable); CSV and TSV just stop.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

use crate::fits::FitsEncoder;
use crate::parquet::VoParquetEncoder;
use crate::text::TextEncoder;
use crate::{Encoding, EndStatus, Info, Writer, WriterOptions};

/// A result serialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// VOTable with the given serialisation.
    VoTable(Encoding),
    /// Comma-separated values with a header line.
    Csv,
    /// Tab-separated values with a header line.
    Tsv,
    /// FITS binary table (`application/fits`).
    Fits,
    /// Parquet with VOTable metadata (VOParquet).
    Parquet,
}

impl Format {
    /// The format a DALI `RESPONSEFORMAT` value (a MIME type or a short name, case and
    /// white space ignored) names; `None` for one not supported.
    pub fn parse(value: &str) -> Option<Format> {
        let v = value.trim().to_ascii_lowercase();
        let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        Some(match compact.as_str() {
            "votable"
            | "vot"
            | "xml"
            | "text/xml"
            | "application/x-votable+xml"
            | "application/votable+xml"
            | "votable/td"
            | "votabletd"
            | "application/x-votable+xml;serialization=tabledata" => {
                Format::VoTable(Encoding::TableData)
            }
            "votable/b2"
            | "votableb2"
            | "binary2"
            | "application/x-votable+xml;serialization=binary2" => {
                Format::VoTable(Encoding::Binary2)
            }
            "votable/b" | "binary" | "application/x-votable+xml;serialization=binary" => {
                Format::VoTable(Encoding::Binary)
            }
            "csv" | "text/csv" | "text/csv;header=present" => Format::Csv,
            "tsv" | "text/tab-separated-values" | "text/tsv" => Format::Tsv,
            "fits" | "application/fits" | "application/x-fits" => Format::Fits,
            "parquet"
            | "voparquet"
            | "application/vnd.apache.parquet"
            | "application/x-parquet"
            | "application/parquet" => Format::Parquet,
            _ => return None,
        })
    }

    /// The MIME type results in this format are sent with.
    pub fn content_type(&self) -> &'static str {
        match self {
            Format::VoTable(Encoding::TableData) => "application/x-votable+xml",
            Format::VoTable(Encoding::Binary2) => "application/x-votable+xml;serialization=BINARY2",
            Format::VoTable(Encoding::Binary) => "application/x-votable+xml;serialization=BINARY",
            Format::Csv => "text/csv;header=present",
            Format::Tsv => "text/tab-separated-values",
            Format::Fits => "application/fits",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// What a serialisation says about the table besides its columns.
#[derive(Debug, Clone, Default)]
pub struct TableInfo {
    /// INFOs (VOTable RESOURCE INFOs, FITS COMMENT cards, VOParquet's embedded VOTable).
    pub infos: Vec<Info>,
    /// The table's name.
    pub table_name: Option<String>,
    /// Further VOTable RESOURCEs (raw XML), e.g. DataLink service descriptors.
    pub extra_resources: Option<String>,
}

/// Writes record batches in one [`Format`]: [`begin`](Encoder::begin), then
/// [`write`](Encoder::write) per batch, then [`finish`](Encoder::finish), then
/// [`tail`](Encoder::tail) until it gives `None`.
pub enum Encoder {
    /// The writer, and the columns cast to fixed-size arrays on the way (see [`dali_arrays`]).
    VoTable(Box<Writer>, Vec<(usize, DataType)>),
    /// CSV or TSV.
    Text(TextEncoder),
    /// FITS.
    Fits(Box<FitsEncoder>),
    /// VOParquet.
    Parquet(Box<VoParquetEncoder>),
}

impl Encoder {
    /// An encoder of tables of `schema` in `format`; an error names what the format cannot
    /// represent.
    pub fn new(format: Format, schema: SchemaRef, info: &TableInfo) -> Result<Self, String> {
        Ok(match format {
            Format::VoTable(encoding) => {
                let opts = WriterOptions {
                    encoding,
                    resource_infos: info.infos.clone(),
                    table_name: info.table_name.clone(),
                    description: None,
                    extra_resources: info.extra_resources.clone(),
                };
                let (schema, casts) = dali_arrays(&schema);
                let w = Writer::new(schema, opts).map_err(|e| e.to_string())?;
                Encoder::VoTable(Box::new(w), casts)
            }
            Format::Csv => Encoder::Text(TextEncoder::new(schema, b',')),
            Format::Tsv => Encoder::Text(TextEncoder::new(schema, b'\t')),
            Format::Fits => {
                let (schema, _) = dali_arrays(&schema);
                let e = FitsEncoder::new(&schema, &info.infos, info.table_name.clone())?;
                Encoder::Fits(Box::new(e))
            }
            Format::Parquet => {
                let (schema, _) = dali_arrays(&schema);
                let e = VoParquetEncoder::new(&schema, &info.infos, info.table_name.clone())?;
                Encoder::Parquet(Box::new(e))
            }
        })
    }

    /// The first bytes, before any row.
    pub fn begin(&mut self) -> Bytes {
        match self {
            Encoder::VoTable(w, _) => w.begin(),
            Encoder::Text(_) | Encoder::Fits(_) => Bytes::new(),
            Encoder::Parquet(e) => e.begin(),
        }
    }

    /// The bytes of one batch (FITS collects it and gives nothing yet).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<Bytes, String> {
        match self {
            Encoder::VoTable(w, casts) if casts.is_empty() => {
                w.write_batch(batch).map_err(|e| e.to_string())
            }
            Encoder::VoTable(w, casts) => {
                let mut columns = batch.columns().to_vec();
                for (i, t) in casts.iter() {
                    columns[*i] = cast(&columns[*i], t).map_err(|e| e.to_string())?;
                }
                let fields: Vec<Field> = batch
                    .schema()
                    .fields()
                    .iter()
                    .zip(&columns)
                    .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
                    .collect();
                let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
                    .map_err(|e| e.to_string())?;
                w.write_batch(&batch).map_err(|e| e.to_string())
            }
            Encoder::Text(t) => t.write(batch),
            Encoder::Fits(e) => e.write(batch).map(|()| Bytes::new()),
            Encoder::Parquet(e) => e.write(batch),
        }
    }

    /// The bytes that end the table as `status` says.
    pub fn finish(&mut self, status: EndStatus) -> Bytes {
        match self {
            Encoder::VoTable(w, _) => w.finish(status),
            Encoder::Text(t) => t.finish(status),
            Encoder::Fits(e) => e.finish(&status),
            Encoder::Parquet(e) => e.finish(&status),
        }
    }

    /// Chunks after [`finish`](Encoder::finish): FITS writes its rows then; `None` at the end.
    pub fn tail(&mut self) -> Option<Bytes> {
        match self {
            Encoder::Fits(e) => e.next_chunk(),
            _ => None,
        }
    }
}

/// DALI geometry values have fixed sizes: a `point` is `double[2]` and a `circle` `double[3]`.
/// The geometry functions return variable-length lists; columns whose xtype says point or
/// circle are cast to fixed-size lists so that the VOTable FIELD says `arraysize="2"`/`"3"`.
pub fn dali_arrays(schema: &SchemaRef) -> (SchemaRef, Vec<(usize, DataType)>) {
    let mut casts = Vec::new();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let n = match f.metadata().get("xtype").map(String::as_str) {
                Some("point") => 2,
                Some("circle") => 3,
                _ => return f.as_ref().clone(),
            };
            match f.data_type() {
                DataType::List(item) | DataType::LargeList(item) => {
                    let t = DataType::FixedSizeList(item.clone(), n);
                    casts.push((i, t.clone()));
                    let mut md = f.metadata().clone();
                    md.remove("arraysize");
                    Field::new(f.name(), t, true).with_metadata(md)
                }
                _ => f.as_ref().clone(),
            }
        })
        .collect();
    (
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        casts,
    )
}

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
