//! Readers for the raw sources a catalog is ingested from: CSV, Parquet, VOTable, FITS binary
//! tables, CDS-style fixed-width text and fixed-size binary records. Each reader yields Arrow
//! record batches in the published schema that the metadata file describes.

use std::io::{BufRead, BufReader, Cursor, Read};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float32Builder, Float64Array, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::compute::{cast, kernels::cmp::eq, nullif};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use crate::meta::{
    parse_type, to_degrees_factor, CatalogMeta, ColumnMeta, SourceFormat, SourceMeta,
};
use crate::Error;

/// Rows per batch produced by the text and binary readers.
const BATCH_ROWS: usize = 65_536;

/// Largest decompressed size of a file read for ingest (a raw catalog source, a FITS product):
/// ingest holds a file in memory, and a gzip bomb must not take the machine.
pub const MAX_INGEST_BYTES: u64 = 16 << 30;

/// Opens raw bytes, decompressing gzip when the data starts with the gzip magic; a file that
/// decompresses to more than `max` bytes is an error (a gzip bomb stops at `max`).
pub fn maybe_gunzip(bytes: Vec<u8>, max: u64) -> Result<Vec<u8>, Error> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(3).min(64 << 20));
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .take(max.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| Error::Source(format!("gzip: {e}")))?;
        if out.len() as u64 > max {
            return Err(Error::TooLarge(format!(
                "the file decompresses to more than {max} bytes"
            )));
        }
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// Reads a whole source (already loaded as bytes) into batches of the published schema.
pub fn read_source(
    meta: &CatalogMeta,
    bytes: Vec<u8>,
) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let source = meta
        .source
        .as_ref()
        .ok_or_else(|| Error::Metadata("the metadata file has no [source] section".into()))?;
    let bytes = maybe_gunzip(bytes, MAX_INGEST_BYTES)?;
    let (schema, batches) = match source.format {
        SourceFormat::Fixed => read_fixed(&meta.columns, &bytes)?,
        SourceFormat::Binary => read_binary(&meta.columns, source, &bytes)?,
        SourceFormat::Csv => select_columns(meta, read_csv(source, bytes)?)?,
        SourceFormat::Parquet => select_columns(meta, read_parquet(bytes)?)?,
        SourceFormat::Votable => {
            let (s, b) =
                votable::read(&bytes).map_err(|e| Error::Source(format!("VOTable: {e}")))?;
            select_columns(meta, (s, b))?
        }
        SourceFormat::Fits => {
            select_columns(meta, votable::fits::read_bintable(&bytes, source.hdu)?)?
        }
    };
    if let Some(expected) = source.rows {
        let got: usize = batches.iter().map(|b| b.num_rows()).sum();
        if got != expected {
            return Err(Error::Source(format!(
                "expected {expected} rows, read {got}"
            )));
        }
    }
    mark_unicode_columns(schema, batches)
}

/// Declares `datatype=unicodeChar` (the VOTable FIELD datatype, in the field's metadata) for
/// every string column holding a non-ASCII character: VOTable `char` is ASCII, and a result's
/// FIELD is written before its first value, so the content decides here, once, at ingest.
/// Columns whose metadata already names a datatype keep it.
pub fn mark_unicode_columns(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let non_ascii = |i: usize| {
        batches.iter().any(|b| {
            let col = b.column(i);
            match col.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    cast(col, &DataType::Utf8)
                        .ok()
                        .and_then(|c| {
                            c.as_any()
                                .downcast_ref::<datafusion::arrow::array::StringArray>()
                                .map(|s| s.iter().flatten().any(|v| !v.is_ascii()))
                        })
                        .unwrap_or(false)
                }
                _ => false,
            }
        })
    };
    let marked: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| {
            !schema
                .field(i)
                .metadata()
                .contains_key(votable::meta::DATATYPE)
        })
        .filter(|&i| non_ascii(i))
        .collect();
    if marked.is_empty() {
        return Ok((schema, batches));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let f = f.as_ref().clone();
            if marked.contains(&i) {
                let mut md = f.metadata().clone();
                md.insert(votable::meta::DATATYPE.into(), "unicodeChar".into());
                f.with_metadata(md)
            } else {
                f
            }
        })
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let batches = batches
        .into_iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Source(e.to_string()))?;
    Ok((schema, batches))
}

fn column_type(c: &ColumnMeta) -> Result<DataType, Error> {
    match &c.datatype {
        Some(t) => parse_type(t),
        None => Err(Error::Metadata(format!("column '{}' needs a type", c.name))),
    }
}

fn published_schema(columns: &[ColumnMeta]) -> Result<SchemaRef, Error> {
    let fields = columns
        .iter()
        .map(|c| Ok(c.decorate(&Field::new(&c.name, column_type(c)?, true))))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

fn scale_of(c: &ColumnMeta) -> Result<Option<f64>, Error> {
    match &c.source_unit {
        Some(u) if Some(u) != c.unit.as_ref() => Ok(Some(to_degrees_factor(u)?)),
        _ => Ok(None),
    }
}

/// Typed column builder for the text and binary readers.
enum Builder {
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

impl Builder {
    fn new(t: &DataType) -> Result<Self, Error> {
        Ok(match t {
            DataType::Int16 => Builder::I16(Int16Builder::new()),
            DataType::Int32 => Builder::I32(Int32Builder::new()),
            DataType::Int64 => Builder::I64(Int64Builder::new()),
            DataType::Float32 => Builder::F32(Float32Builder::new()),
            DataType::Float64 => Builder::F64(Float64Builder::new()),
            DataType::Boolean => Builder::Bool(BooleanBuilder::new()),
            DataType::Utf8 => Builder::Str(StringBuilder::new()),
            other => return Err(Error::Metadata(format!("unsupported type {other}"))),
        })
    }

    /// Appends a text cell (already trimmed); empty means null.
    fn push_text(&mut self, s: &str, scale: Option<f64>) -> Result<(), String> {
        if s.is_empty() {
            self.push_null();
            return Ok(());
        }
        let bad = |e: &dyn std::fmt::Display| format!("'{s}': {e}");
        match self {
            Builder::I16(b) => b.append_value(s.parse().map_err(|e| bad(&e))?),
            Builder::I32(b) => b.append_value(s.parse().map_err(|e| bad(&e))?),
            Builder::I64(b) => b.append_value(s.parse().map_err(|e| bad(&e))?),
            Builder::F32(b) => {
                let v: f64 = s.parse().map_err(|e| bad(&e))?;
                b.append_value((v * scale.unwrap_or(1.0)) as f32)
            }
            Builder::F64(b) => {
                let v: f64 = s.parse().map_err(|e| bad(&e))?;
                b.append_value(v * scale.unwrap_or(1.0))
            }
            Builder::Bool(b) => {
                b.append_value(matches!(s, "T" | "t" | "true" | "1" | "TRUE" | "True"))
            }
            Builder::Str(b) => b.append_value(s),
        }
        Ok(())
    }

    fn push_null(&mut self) {
        match self {
            Builder::I16(b) => b.append_null(),
            Builder::I32(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::F32(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Str(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::I16(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Str(b) => Arc::new(b.finish()),
        }
    }
}

/// Parses a CDS byte range `"16-28"` or `"14"` into a 0-based half-open range.
fn byte_range(c: &ColumnMeta) -> Result<std::ops::Range<usize>, Error> {
    let spec = c.bytes.as_deref().ok_or_else(|| {
        Error::Metadata(format!(
            "fixed-width column '{}' needs bytes = \"a-b\"",
            c.name
        ))
    })?;
    let bad = || Error::Metadata(format!("column '{}': bad byte range '{spec}'", c.name));
    let (a, b) = match spec.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (spec.trim(), spec.trim()),
    };
    let a: usize = a.parse().map_err(|_| bad())?;
    let b: usize = b.parse().map_err(|_| bad())?;
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok(a - 1..b)
}

fn read_fixed(
    columns: &[ColumnMeta],
    bytes: &[u8],
) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let schema = published_schema(columns)?;
    let ranges = columns
        .iter()
        .map(byte_range)
        .collect::<Result<Vec<_>, _>>()?;
    let scales = columns
        .iter()
        .map(scale_of)
        .collect::<Result<Vec<_>, _>>()?;
    let new_builders = || -> Result<Vec<Builder>, Error> {
        schema
            .fields()
            .iter()
            .map(|f| Builder::new(f.data_type()))
            .collect()
    };
    let mut builders = new_builders()?;
    let mut batches = Vec::new();
    let mut rows = 0usize;
    for (lineno, line) in BufReader::new(Cursor::new(bytes)).lines().enumerate() {
        let line = line.map_err(|e| Error::Source(format!("line {}: {e}", lineno + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        for (i, b) in builders.iter_mut().enumerate() {
            let r = &ranges[i];
            let cell = line
                .get(r.start.min(line.len())..r.end.min(line.len()))
                .unwrap_or("")
                .trim();
            let cell = if columns[i].null.as_deref() == Some(cell) {
                ""
            } else {
                cell
            };
            b.push_text(cell, scales[i]).map_err(|e| {
                Error::Source(format!(
                    "line {}, column '{}': {e}",
                    lineno + 1,
                    columns[i].name
                ))
            })?;
        }
        rows += 1;
        if rows == BATCH_ROWS {
            batches.push(finish(&schema, &mut builders)?);
            rows = 0;
        }
    }
    if rows > 0 {
        batches.push(finish(&schema, &mut builders)?);
    }
    Ok((schema, batches))
}

fn finish(schema: &SchemaRef, builders: &mut [Builder]) -> Result<RecordBatch, Error> {
    let arrays = builders.iter_mut().map(|b| b.finish()).collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

fn read_binary(
    columns: &[ColumnMeta],
    source: &SourceMeta,
    bytes: &[u8],
) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let schema = published_schema(columns)?;
    let big = match source.byte_order.as_deref() {
        None | Some("little") => false,
        Some("big") => true,
        Some(o) => return Err(Error::Metadata(format!("byte_order '{o}': little or big"))),
    };
    let widths: Vec<usize> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Int16 => Ok(2),
            DataType::Int32 | DataType::Float32 => Ok(4),
            DataType::Int64 | DataType::Float64 => Ok(8),
            t => Err(Error::Metadata(format!(
                "binary records cannot hold {t} ('{}')",
                f.name()
            ))),
        })
        .collect::<Result<_, _>>()?;
    let record: usize = widths.iter().sum();
    let start = source.header_bytes.unwrap_or(0);
    if bytes.len() < start || record == 0 || !(bytes.len() - start).is_multiple_of(record) {
        return Err(Error::Source(format!(
            "binary source of {} bytes is not a {start}-byte header plus {record}-byte records",
            bytes.len()
        )));
    }
    let scales = columns
        .iter()
        .map(scale_of)
        .collect::<Result<Vec<_>, _>>()?;
    let body = &bytes[start..];
    let mut batches = Vec::new();
    for chunk in body.chunks(record * BATCH_ROWS) {
        let mut builders: Vec<Builder> = schema
            .fields()
            .iter()
            .map(|f| Builder::new(f.data_type()))
            .collect::<Result<_, _>>()?;
        for rec in chunk.chunks_exact(record) {
            let mut off = 0;
            for (i, b) in builders.iter_mut().enumerate() {
                let w = widths[i];
                let mut raw = [0u8; 8];
                raw[..w].copy_from_slice(&rec[off..off + w]);
                if big {
                    raw[..w].reverse();
                }
                off += w;
                let scale = scales[i].unwrap_or(1.0);
                match b {
                    Builder::I16(b) => b.append_value(i16::from_le_bytes([raw[0], raw[1]])),
                    Builder::I32(b) => {
                        b.append_value(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
                    }
                    Builder::I64(b) => b.append_value(i64::from_le_bytes(raw)),
                    Builder::F32(b) => {
                        let v = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                        if v.is_nan() {
                            b.append_null()
                        } else {
                            b.append_value((v as f64 * scale) as f32)
                        }
                    }
                    Builder::F64(b) => {
                        let v = f64::from_le_bytes(raw);
                        if v.is_nan() {
                            b.append_null()
                        } else {
                            b.append_value(v * scale)
                        }
                    }
                    // Widths were checked above: binary records hold only numeric columns.
                    Builder::Bool(_) | Builder::Str(_) => {}
                }
            }
        }
        batches.push(finish(&schema, &mut builders)?);
    }
    Ok((schema, batches))
}

fn read_csv(source: &SourceMeta, bytes: Vec<u8>) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    use datafusion::arrow::csv::reader::{Format, ReaderBuilder};
    let delimiter = source.delimiter.unwrap_or(',');
    if !delimiter.is_ascii() {
        return Err(Error::Metadata(
            "the CSV delimiter must be one ASCII character".into(),
        ));
    }
    let format = Format::default()
        .with_header(true)
        .with_delimiter(delimiter as u8);
    let (schema, _) = format
        .infer_schema(Cursor::new(&bytes), Some(100_000))
        .map_err(|e| Error::Source(format!("CSV: {e}")))?;
    let schema = Arc::new(schema);
    let reader = ReaderBuilder::new(schema.clone())
        .with_format(format)
        .with_batch_size(BATCH_ROWS)
        .build(Cursor::new(bytes))
        .map_err(|e| Error::Source(format!("CSV: {e}")))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Source(format!("CSV: {e}")))?;
    Ok((schema, batches))
}

fn read_parquet(bytes: Vec<u8>) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?;
    let schema = builder.schema().clone();
    let reader = builder.with_batch_size(BATCH_ROWS).build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

/// Picks, renames, casts and converts the metadata's columns out of a self-describing source.
/// With no columns declared, every source column is published under a sanitised name.
fn select_columns(
    meta: &CatalogMeta,
    (schema, batches): (SchemaRef, Vec<RecordBatch>),
) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let columns: Vec<ColumnMeta> = if meta.columns.is_empty() {
        schema
            .fields()
            .iter()
            .map(|f| ColumnMeta {
                name: sanitise(f.name()),
                source: Some(f.name().clone()),
                unit: f.metadata().get("unit").cloned(),
                ucd: f.metadata().get("ucd").cloned(),
                utype: f.metadata().get("utype").cloned(),
                description: f.metadata().get("description").cloned(),
                ..Default::default()
            })
            .collect()
    } else {
        meta.columns.clone()
    };
    let mut picks = Vec::new();
    let mut fields = Vec::new();
    for c in &columns {
        let src = c.source.as_deref().unwrap_or(&c.name);
        let idx = schema
            .fields()
            .iter()
            .position(|f| f.name() == src)
            .or_else(|| {
                schema
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(src))
            })
            .ok_or_else(|| Error::Metadata(format!("source has no column '{src}'")))?;
        let from = schema.field(idx).data_type().clone();
        let to = match &c.datatype {
            Some(t) => parse_type(t)?,
            None => published_type(&from),
        };
        picks.push((idx, to.clone(), scale_of(c)?, c.null.clone()));
        fields.push(c.decorate(&Field::new(&c.name, to, true)));
    }
    let out_schema = Arc::new(Schema::new(fields));
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let mut arrays = Vec::with_capacity(picks.len());
        for (idx, to, scale, null) in &picks {
            let mut a = cast(b.column(*idx), to)?;
            if let Some(null) = null {
                let sentinel = cast(
                    &datafusion::arrow::array::StringArray::from(vec![null.as_str()]),
                    to,
                )?;
                if sentinel.is_valid(0) {
                    let scalar = datafusion::arrow::array::Scalar::new(sentinel);
                    let mask = eq(&a, &scalar)?;
                    a = nullif(&a, &mask)?;
                }
            }
            if let Some(s) = scale {
                let f = cast(&a, &DataType::Float64)?;
                let f = f
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .map(|f| f.unary::<_, datafusion::arrow::datatypes::Float64Type>(|v| v * s))
                    .ok_or_else(|| {
                        Error::Source("unit conversion needs a numeric column".into())
                    })?;
                a = cast(&f, to)?;
            }
            arrays.push(a);
        }
        out.push(RecordBatch::try_new(out_schema.clone(), arrays)?);
    }
    Ok((out_schema, out))
}

/// The type a source column is published as when the metadata does not say.
fn published_type(t: &DataType) -> DataType {
    match t {
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => DataType::Utf8,
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        other => other.clone(),
    }
}

/// Turns a source column name into an ADQL regular identifier.
pub fn sanitise(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s.insert(0, 'c');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float32Array, Int32Array, Int64Array, StringArray};

    fn meta(toml_text: &str) -> CatalogMeta {
        CatalogMeta::from_toml(toml_text).expect("metadata")
    }

    const HEAD: &str = "[table]\nschema = \"s\"\nname = \"t\"\nra = \"ra\"\ndec = \"dec\"\n";

    #[test]
    fn fixed_width_reads_byte_ranges_units_and_nulls() {
        let m = meta(&format!(
            "{HEAD}[source]\npath = \"x\"\nformat = \"fixed\"\n\
             [[columns]]\nname = \"id\"\ntype = \"int32\"\nbytes = \"1-3\"\n\
             [[columns]]\nname = \"ra\"\ntype = \"float64\"\nbytes = \"5-12\"\nsource_unit = \"rad\"\nunit = \"deg\"\n\
             [[columns]]\nname = \"dec\"\ntype = \"float64\"\nbytes = \"14-20\"\nnull = \"-99.0\"\n"
        ));
        let text = "  1 3.141593 12.5000\n 22 0.000000   -99.0\n333 1.570796        \n";
        let (_, batches) = read_source(&m, text.as_bytes().to_vec()).expect("read");
        let b = &batches[0];
        let id = b
            .column(0)
            .as_any()
            .downcast_ref::<Int32Array>()
            .expect("int");
        let ra = b
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64");
        let dec = b
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64");
        assert_eq!(id.values().to_vec(), vec![1, 22, 333]);
        assert!((ra.value(0) - 180.0).abs() < 1e-4 && (ra.value(2) - 90.0).abs() < 1e-4);
        assert_eq!(dec.value(0), 12.5);
        assert!(dec.is_null(1), "the null sentinel is a null");
        assert!(dec.is_null(2), "an empty field is a null");
    }

    #[test]
    fn binary_records_after_a_header() {
        let m = meta(&format!(
            "{HEAD}[source]\npath = \"x\"\nformat = \"binary\"\nheader_bytes = 4\nrows = 2\n\
             [[columns]]\nname = \"id\"\ntype = \"int64\"\n\
             [[columns]]\nname = \"ra\"\ntype = \"float64\"\n\
             [[columns]]\nname = \"dec\"\ntype = \"float64\"\n\
             [[columns]]\nname = \"mag\"\ntype = \"float32\"\n"
        ));
        let mut bytes = b"HEAD".to_vec();
        for (id, ra, dec, mag) in [
            (7i64, 10.0f64, -20.0f64, 5.5f32),
            (8, 350.0, 89.0, f32::NAN),
        ] {
            bytes.extend(id.to_le_bytes());
            bytes.extend(ra.to_le_bytes());
            bytes.extend(dec.to_le_bytes());
            bytes.extend(mag.to_le_bytes());
        }
        let (_, batches) = read_source(&m, bytes.clone()).expect("read");
        let b = &batches[0];
        assert_eq!(
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("i64")
                .values()
                .to_vec(),
            vec![7, 8]
        );
        let mag = b
            .column(3)
            .as_any()
            .downcast_ref::<Float32Array>()
            .expect("f32");
        assert_eq!(mag.value(0), 5.5);
        assert!(mag.is_null(1), "NaN is null");
        // A truncated record is an error, not a panic.
        assert!(read_source(&m, bytes[..bytes.len() - 3].to_vec()).is_err());
    }

    #[test]
    fn csv_columns_are_picked_renamed_and_converted() {
        let m = meta(&format!(
            "{HEAD}[source]\npath = \"x\"\nformat = \"csv\"\n\
             [[columns]]\nname = \"name\"\nsource = \"Name\"\n\
             [[columns]]\nname = \"ra\"\nsource = \"RAJ2000\"\nunit = \"deg\"\nucd = \"pos.eq.ra;meta.main\"\n\
             [[columns]]\nname = \"dec\"\nsource = \"DEJ2000\"\nsource_unit = \"arcsec\"\nunit = \"deg\"\n"
        ));
        let csv = "Name,RAJ2000,DEJ2000,Other\nM31,10.68,148287.6,x\nM33,23.46,110430.0,y\n";
        let (schema, batches) = read_source(&m, csv.as_bytes().to_vec()).expect("read");
        assert_eq!(
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>(),
            vec!["name", "ra", "dec"]
        );
        assert_eq!(
            schema.field(1).metadata().get("ucd").map(String::as_str),
            Some("pos.eq.ra;meta.main")
        );
        let b = &batches[0];
        let names = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("str");
        assert_eq!(names.value(1), "M33");
        let dec = b
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64");
        assert!((dec.value(0) - 41.191).abs() < 1e-9);
    }

    #[test]
    fn string_columns_with_non_ascii_text_are_declared_unicode_char() {
        let m = meta(&format!(
            "{HEAD}[source]\npath = \"x\"\nformat = \"csv\"\n\
             [[columns]]\nname = \"name\"\n[[columns]]\nname = \"place\"\n\
             [[columns]]\nname = \"ra\"\n[[columns]]\nname = \"dec\"\n"
        ));
        let csv = "name,place,ra,dec\nM31,Andromeda,10.68,41.27\nNGC 253,Sculptor,11.89,-25.29\n\
                   M 45,Plei\u{e1}des \u{2013} Taureau,56.75,24.12\n";
        let (schema, batches) = read_source(&m, csv.as_bytes().to_vec()).expect("read");
        let datatype = |i: usize| {
            schema
                .field(i)
                .metadata()
                .get(votable::meta::DATATYPE)
                .cloned()
        };
        assert_eq!(datatype(0), None, "an ASCII-only column stays char");
        assert_eq!(datatype(1).as_deref(), Some("unicodeChar"));
        assert_eq!(datatype(2), None, "a number column is left alone");
        // The batches carry the declared schema and the text unchanged.
        assert_eq!(batches[0].schema(), schema);
        let place = batches[0]
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("str");
        assert_eq!(place.value(2), "Plei\u{e1}des \u{2013} Taureau");
    }

    #[test]
    fn a_declared_votable_datatype_is_kept_and_checked() {
        let toml = |v: &str| {
            format!(
                "{HEAD}[source]\npath = \"x\"\nformat = \"csv\"\n\
                 [[columns]]\nname = \"place\"\nvotable_datatype = \"{v}\"\n\
                 [[columns]]\nname = \"ra\"\n[[columns]]\nname = \"dec\"\n"
            )
        };
        let err = CatalogMeta::from_toml(&toml("ucs2")).expect_err("not a string datatype");
        assert!(err.to_string().contains("votable_datatype"), "{err}");
        // Declared char: kept even though the text is not ASCII (the operator's choice).
        let m = meta(&toml("char"));
        let csv = "place,ra,dec\nPl\u{e9}iades,56.75,24.12\n";
        let (schema, _) = read_source(&m, csv.as_bytes().to_vec()).expect("read");
        assert_eq!(
            schema
                .field(0)
                .metadata()
                .get(votable::meta::DATATYPE)
                .map(String::as_str),
            Some("char")
        );
    }

    #[test]
    fn a_missing_source_column_is_named() {
        let m = meta(&format!("{HEAD}[source]\npath = \"x\"\nformat = \"csv\"\n[[columns]]\nname = \"ra\"\nsource = \"RA\"\n[[columns]]\nname = \"dec\"\n"));
        let err = read_source(&m, b"ra_x,dec\n1,2\n".to_vec()).expect_err("missing column");
        assert!(err.to_string().contains("'RA'"), "{err}");
    }
}
