//! vostok's table I/O: one table model (Arrow record batches, with VOTable column metadata in
//! the field metadata) and its serialisations, the STIL shape. VOTable 1.4 first — a streaming
//! writer from Arrow record batches (the hot path of every query result) and a reader (TAP
//! uploads, small tables to ingest) — and beside it FITS (a binary-table writer, and a reader
//! of headers and binary tables: [`fits`]), VOParquet ([`parquet`]) and CSV/TSV ([`text`]),
//! all behind one [`Encoder`] chosen by [`Format`].
//!
//! This crate knows Arrow, XML and FITS only: no HTTP, no ADQL, no catalogs. The server feeds
//! [`Writer`] the batches of a DataFusion stream and forwards the returned chunks as a chunked
//! HTTP body; nothing here holds more than one batch (plus a few carried base64 bytes).
//!
//! * [`Writer`] emits `TABLEDATA`, `BINARY2` (with per-row null flags) or `BINARY`
//!   (nulls as `NaN` / `<VALUES null>` sentinels), DALI-style `QUERY_STATUS` INFOs
//!   (`OK` before the table; `OVERFLOW` or `ERROR` after it).
//! * [`error_document`] is the complete DALI error response.
//! * [`read`] parses the first `TABLE` of a document (`TABLEDATA`, `BINARY`, `BINARY2`).
//!
//! Column metadata travels in the Arrow field metadata under the keys of [`meta`]
//! (`unit`, `ucd`, `utype`, `description`, `xtype`, `arraysize`, `datatype`, `ID`); the reader
//! fills the same keys, so read → write keeps a table's FIELD descriptions.
//!
//! Text in `char` columns: VOTable 1.4 `char` is 7-bit ASCII, so the writer replaces every
//! non-ASCII character of a `char` column by `?`. A string column whose metadata says
//! `datatype=unicodeChar` is written as `unicodeChar` instead (UCS-2: in BINARY/BINARY2
//! characters outside the Basic Multilingual Plane become U+FFFD; TABLEDATA keeps them as XML
//! text). Control characters that XML 1.0 cannot carry are written as U+FFFD in TABLEDATA (`?`
//! in `char` cells, which are ASCII).

pub mod encode;
pub mod fits;
mod format;
pub mod meta;
pub mod parquet;
mod reader;
mod spill;
pub mod text;
mod types;
mod writer;
pub mod xml;

pub use encode::{Encoder, Format, TableInfo};
pub use reader::read;
pub use writer::Writer;

use datafusion::arrow::error::ArrowError;

/// Errors of the writer and the reader.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A column whose Arrow type has no VOTable datatype.
    #[error("column {column:?}: Arrow type {data_type} has no VOTable datatype")]
    UnsupportedType {
        /// The column's name.
        column: String,
        /// The Arrow type, as text.
        data_type: String,
    },
    /// A schema without columns (a VOTable TABLE needs at least one FIELD).
    #[error("the result has no columns")]
    NoColumns,
    /// A batch whose columns differ from the writer's schema.
    #[error("record batch does not match the writer's schema: {0}")]
    SchemaMismatch(String),
    /// A value that cannot be written with its column's declared datatype.
    #[error("column {column:?}, row {row}: {reason}")]
    Value {
        /// The column's name.
        column: String,
        /// The row number within the whole result (0-based).
        row: u64,
        /// What is wrong.
        reason: String,
    },
    /// `write_batch` after `finish`.
    #[error("the VOTable writer is already finished")]
    Finished,
    /// A document that is not a readable VOTable.
    #[error("invalid VOTable: {0}")]
    Invalid(String),
    /// A VOTable feature this reader does not support (FITS, external streams, ...).
    #[error("unsupported VOTable feature: {0}")]
    Unsupported(String),
    /// Malformed XML.
    #[error("XML error at byte {position}: {source}")]
    Xml {
        /// Byte offset where the parser stopped.
        position: u64,
        /// The parser's error.
        source: quick_xml::Error,
    },
    /// An Arrow error while assembling read columns.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// How the table rows are serialized inside `<DATA>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// `<TABLEDATA>`: XML rows and cells; nulls are empty `<TD/>`.
    #[default]
    TableData,
    /// `<BINARY2>`: base64 of big-endian rows, each prefixed by a null-flag bitmap.
    Binary2,
    /// `<BINARY>` (VOTable 1.1): like BINARY2 without null flags; null floats are NaN, null
    /// integers of nullable columns use a sentinel declared in `<VALUES null>` (the type's
    /// minimum; 255 for `unsignedByte`), so a real value equal to it reads back as null.
    Binary,
}

/// An `INFO` element: `<INFO name=".." value="..">content</INFO>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Info {
    /// The `name` attribute.
    pub name: String,
    /// The `value` attribute.
    pub value: String,
    /// Optional text content.
    pub content: Option<String>,
}

impl Info {
    /// An INFO with a name and a value and no content.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Info {
            name: name.into(),
            value: value.into(),
            content: None,
        }
    }
}

/// Options of a [`Writer`].
#[derive(Debug, Clone, Default)]
pub struct WriterOptions {
    /// TABLEDATA, BINARY2 or BINARY.
    pub encoding: Encoding,
    /// INFOs emitted inside RESOURCE right after `<INFO name="QUERY_STATUS" value="OK"/>`.
    pub resource_infos: Vec<Info>,
    /// The TABLE `name` attribute.
    pub table_name: Option<String>,
    /// The RESOURCE `DESCRIPTION`.
    pub description: Option<String>,
    /// Further RESOURCE elements (raw XML, already escaped) written after the results
    /// RESOURCE, e.g. DataLink service descriptors (`<RESOURCE type="meta" utype="adhoc:service">`).
    pub extra_resources: Option<String>,
}

/// How a result ends, for [`Writer::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStatus {
    /// All rows were written.
    Ok,
    /// The row limit (MAXREC) cut the result: adds `QUERY_STATUS` = `OVERFLOW` after the table.
    Overflow,
    /// The query failed mid-stream: adds `QUERY_STATUS` = `ERROR` with this message after the table.
    Error(String),
}

/// A complete VOTable 1.4 error document (DALI 1.1 §4.3): a `RESOURCE type="results"` holding
/// `<INFO name="QUERY_STATUS" value="ERROR">message</INFO>`.
pub fn error_document(message: &str) -> String {
    let mut out = Vec::with_capacity(512 + message.len());
    writer::write_preamble(&mut out);
    out.extend_from_slice(
        b"<RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" value=\"ERROR\">",
    );
    xml::escape_text(&mut out, message);
    out.extend_from_slice(b"</INFO>\n</RESOURCE>\n</VOTABLE>\n");
    // Everything written is valid UTF-8 (escaping copies whole characters).
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
