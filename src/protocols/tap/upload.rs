//! TAP_UPLOAD (TAP 1.1 §3.3.5, DALI UPLOAD): tables sent with a query, queried as
//! `TAP_UPLOAD.<name>` by that query only.
//!
//! `UPLOAD=name,URI` (several separated by `;`, or the parameter repeated) names a table and
//! where it is: `param:PART` is the multipart/form-data part called `PART` of the same request
//! (inline upload), `http(s)://…` a URL the service fetches (only from the hosts listed in
//! `[tap] upload_url_hosts`; none by default). Tables are VOTables (any serialisation the
//! votable crate reads; FIELD metadata such as `unit` and `ucd` is kept and flows into the
//! result's FIELDs) or CSV/TSV with a header line (column types found by scanning the values:
//! integer, else double, else string; an empty cell is NULL).
//!
//! Uploaded tables never enter the shared DataFusion context: each query with uploads is
//! planned with its own [`SessionState`] (built from the shared one, so functions and the
//! crossmatch optimizer rule are the same) whose catalog list wraps the shared catalogs and adds
//! a `tap_upload` schema holding the uploads in memory. Plans reference their tables' providers
//! directly, so the plan runs with the shared context like any other (see `query::execute`).
//!
//! The flow, for synchronous queries (`tap::sync_multipart`) and asynchronous jobs alike:
//!
//! 1. [`read_multipart`]: the request's plain parameters and its file parts (bytes), within
//!    the limits. Jobs store the file parts with the job.
//! 2. [`query_session`] (what `tap::prepare_query_with_uploads` calls): parses the UPLOAD
//!    parameters ([`parse_upload_params`]), takes each table from its part or URL
//!    ([`load_uploads`], which reads it with [`read_table`]) and builds the session
//!    ([`session_with_uploads`]) to plan the query with.
//!
//! Limits (`[tap]` in vostok.toml, declared in /tap/capabilities): `upload_max_bytes`, the
//! total size of one request's uploads; `upload_max_rows`, rows of one table. Parts are read
//! as they stream in and refused as soon as they pass the limit; the rest of an oversized
//! request is read and discarded (up to [`DRAIN_MAX_BYTES`]) so that the client gets the
//! HTTP 400 instead of a broken connection.

use std::sync::Arc;

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, HttpRequest};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use datafusion::arrow::array::{ArrayRef, Float64Builder, Int64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::execution::{SessionState, SessionStateBuilder};
use futures::{SinkExt, StreamExt};

use super::{Tap, TapConfig};
use crate::dali::capabilities::El;
use crate::dali::{DalError, Params};
use crate::engine::Engine;

/// The schema uploaded tables appear in (matched case-insensitively: `TAP_UPLOAD.t`).
pub const SCHEMA: &str = "tap_upload";

/// Largest total size of the plain (non-file) parameters of a multipart request, the same as
/// the largest urlencoded form body (`PayloadConfig` in `server::run`).
pub const PARAM_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// After a request passes a limit, at most this much more of its body is read (and dropped)
/// so that the client, still sending, gets the error response.
pub const DRAIN_MAX_BYTES: u64 = 1024 * 1024 * 1024;

/// Longest name of an uploaded table.
const MAX_NAME_CHARS: usize = 64;

/// Rows per record batch of a CSV upload.
const CSV_BATCH_ROWS: usize = 65_536;

/// Time allowed to fetch an upload URL.
const FETCH_TIMEOUT_SECS: u64 = 120;

/// The upload limits (`[tap] upload_max_bytes`, `upload_max_rows`, `upload_url_hosts`).
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// Largest total size in bytes of the uploads of one request.
    pub max_bytes: u64,
    /// Largest number of rows of one uploaded table.
    pub max_rows: u64,
    /// Hosts `http(s)://` uploads may be fetched from (empty: URL uploads refused).
    pub url_hosts: Vec<String>,
    /// Ports they may be fetched from.
    pub url_ports: Vec<u16>,
    /// Whether they may reach non-public addresses.
    pub url_private: bool,
}

impl UploadLimits {
    /// The limits configured in `[tap]`.
    pub fn from_config(tap: &TapConfig) -> Self {
        UploadLimits {
            max_bytes: tap.upload_max_bytes,
            max_rows: tap.upload_max_rows,
            url_hosts: tap.upload_url_hosts.clone(),
            url_ports: tap.upload_url_ports.clone(),
            url_private: tap.upload_url_private,
        }
    }

    fn too_many_bytes(&self) -> DalError {
        DalError::bad_request(format!(
            "the uploaded tables exceed the upload limit of {} bytes (upload_max_bytes)",
            self.max_bytes
        ))
    }
}

/// The TAPRegExt `uploadMethod` elements of /tap/capabilities (after `outputFormat`): inline
/// always; http and https only when `upload_url_hosts` allows some host. TAP 1.1 §3.5 expects
/// a service with uploads to fetch URLs too (taplint CAP reports "MUPM" without them), but a
/// default server refuses every URL upload (400: send the table inline), and declaring
/// methods it refuses misleads clients that pick the upload method from the capabilities.
pub fn capability_methods(tap: &TapConfig) -> Vec<El> {
    // URL uploads are declared only when `upload_url_hosts` lets some host through: a default
    // server refuses every URL, and a capability must not promise what the service refuses.
    let methods: &[&str] = if tap.upload_url_hosts.is_empty() {
        &["upload-inline"]
    } else {
        &["upload-inline", "upload-http", "upload-https"]
    };
    methods
        .iter()
        .map(|m| {
            El::new("uploadMethod").attr("ivo-id", format!("ivo://ivoa.net/std/TAPRegExt#{m}"))
        })
        .collect()
}

/// The TAPRegExt `uploadLimit` element of /tap/capabilities (the last one of a capability).
pub fn capability_limit(tap: &TapConfig) -> El {
    El::new("uploadLimit")
        .child(El::text("default", tap.upload_max_bytes).attr("unit", "byte"))
        .child(El::text("hard", tap.upload_max_bytes).attr("unit", "byte"))
}

/// A POST route taken by multipart/form-data requests only (registered before the plain POST
/// of the same path).
pub fn multipart_post() -> actix_web::Route {
    web::post().guard(actix_web::guard::fn_guard(|ctx| {
        is_multipart(ctx.head().headers())
    }))
}

/// Where an uploaded table comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadSource {
    /// `param:PART`: the multipart/form-data part named `PART` of the same request.
    Param(String),
    /// An `http://` or `https://` URL to fetch.
    Url(String),
    /// A file in this server's VOSpace (`vos://AUTHORITY!vospace/path`), read with the
    /// request's identity.
    VoSpace(String),
}

/// One `name,URI` item of an UPLOAD parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSpec {
    /// Table name (an ADQL regular identifier): the query reads `TAP_UPLOAD.<name>`.
    pub name: String,
    /// Where the table is.
    pub source: UploadSource,
}

/// Parses one UPLOAD value: `name,URI` items separated by `;`. Names must be ADQL regular
/// identifiers (not reserved words); URIs `param:PART`, `http://…` or `https://…`.
pub fn parse_upload_param(value: &str) -> Result<Vec<UploadSpec>, DalError> {
    // A `;` inside a URL (`?a=1;b=2`) does not start an item: items start with `name,`.
    let mut items: Vec<String> = Vec::new();
    for piece in value.split(';') {
        let starts_item = piece
            .split_once(',')
            .is_some_and(|(n, _)| is_identifier_like(n.trim()));
        match items.last_mut() {
            Some(last) if !starts_item && is_url(last) => {
                last.push(';');
                last.push_str(piece);
            }
            _ => items.push(piece.to_string()),
        }
    }
    let mut out = Vec::new();
    for item in &items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (name, uri) = item.split_once(',').ok_or_else(|| {
            DalError::bad_request(format!(
                "UPLOAD item '{item}' is not of the form name,URI (e.g. UPLOAD=mytable,param:file1)"
            ))
        })?;
        let name = name.trim();
        check_name(name)?;
        let uri = uri.trim();
        let source = match uri.split_once(':') {
            Some((scheme, part)) if scheme.eq_ignore_ascii_case("param") => {
                if part.is_empty() {
                    return Err(DalError::bad_request(format!(
                        "UPLOAD {name},{uri}: param: needs the name of a multipart part"
                    )));
                }
                UploadSource::Param(part.to_string())
            }
            Some((scheme, _))
                if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
            {
                UploadSource::Url(uri.to_string())
            }
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("vos") => {
                UploadSource::VoSpace(uri.to_string())
            }
            _ => {
                return Err(DalError::bad_request(format!(
                    "UPLOAD {name},{uri}: the URI must be param:PART (a part of this \
                     multipart/form-data request), an http(s) URL or a vos:// file of this service"
                )))
            }
        };
        out.push(UploadSpec {
            name: name.to_string(),
            source,
        });
    }
    if out.is_empty() {
        return Err(DalError::bad_request(
            "UPLOAD is empty: give name,URI (e.g. UPLOAD=mytable,param:file1)",
        ));
    }
    Ok(out)
}

/// Parses every UPLOAD value of a request (the parameter may be repeated); a name given twice
/// (in any case) is an error.
pub fn parse_upload_params<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<UploadSpec>, DalError> {
    let mut out: Vec<UploadSpec> = Vec::new();
    for v in values {
        if v.trim().is_empty() {
            continue;
        }
        for spec in parse_upload_param(v)? {
            if out.iter().any(|s| s.name.eq_ignore_ascii_case(&spec.name)) {
                return Err(DalError::bad_request(format!(
                    "UPLOAD names the table '{}' more than once",
                    spec.name
                )));
            }
            out.push(spec);
        }
    }
    Ok(out)
}

fn is_identifier_like(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_url(item: &str) -> bool {
    item.split_once(',').is_some_and(|(_, uri)| {
        let uri = uri.trim_start().to_ascii_lowercase();
        uri.starts_with("http://") || uri.starts_with("https://")
    })
}

/// Checks that `name` can name an uploaded table: an ADQL regular identifier (a letter, then
/// letters, digits or `_`) that is not a reserved word.
pub fn check_name(name: &str) -> Result<(), DalError> {
    if !is_identifier_like(name) || name.chars().count() > MAX_NAME_CHARS {
        return Err(DalError::bad_request(format!(
            "UPLOAD table name '{name}' is not valid: it must be an ADQL regular identifier \
             (a letter followed by letters, digits or '_', at most {MAX_NAME_CHARS} characters)"
        )));
    }
    if adql::validate::is_reserved(name) {
        return Err(DalError::bad_request(format!(
            "UPLOAD table name '{name}' is an ADQL reserved word; choose another name"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// multipart/form-data

/// One file part of a multipart/form-data request: what `param:NAME` refers to.
#[derive(Debug, Clone)]
pub struct UploadFile {
    /// Part (form field) name.
    pub name: String,
    /// File name the client gave, if any.
    pub filename: Option<String>,
    /// The part's Content-Type, if any.
    pub content_type: Option<String>,
    /// Its content.
    pub bytes: Bytes,
}

/// A multipart/form-data request: plain parameters (names as sent) and file parts.
#[derive(Debug, Clone, Default)]
pub struct MultipartForm {
    /// Parameters sent as plain parts (no file name), in order.
    pub params: Vec<(String, String)>,
    /// File parts, and plain parts an UPLOAD parameter names as `param:` (in any order).
    pub files: Vec<UploadFile>,
}

/// Whether a request is multipart/form-data (usable in a route guard:
/// `guard::fn_guard(|ctx| upload::is_multipart(ctx.head().headers()))`).
pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// Reads a multipart/form-data request body as it streams in: file parts (those with a file
/// name or a Content-Type other than text/plain) may total `limits.max_bytes`, plain
/// parameters [`PARAM_MAX_BYTES`]; past either the request is refused with a 400 naming the
/// limit (nothing beyond the limit is kept). Plain parts that an UPLOAD parameter of the same
/// request names as `param:PART` are returned as files.
pub async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
    limits: &UploadLimits,
) -> Result<MultipartForm, DalError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|e| {
        DalError::bad_request(format!("cannot read the multipart/form-data request: {e}"))
    })?;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Far too big whatever its parts: refuse before reading (the body is still drained).
    let early = declared
        .filter(|&n| n > limits.max_bytes.saturating_add(PARAM_MAX_BYTES))
        .map(|_| limits.too_many_bytes());

    // multer wants a Send stream and actix's payload is not: the payload is pumped through a
    // small channel by a future polled alongside the parser (same task, no spawn).
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let pump = pump(payload, tx);
    let parse = async move {
        match early {
            Some(e) => {
                drop(rx);
                Err(e)
            }
            None => parse_parts(multer::Multipart::new(rx, boundary), limits).await,
        }
    };
    let ((), form) = futures::join!(pump, parse);
    form
}

/// Forwards the payload to the parser; once the parser is gone (done or failed), reads and
/// drops the rest of the body, up to [`DRAIN_MAX_BYTES`].
async fn pump(
    mut payload: web::Payload,
    mut tx: futures::channel::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut forwarding = true;
    let mut drained: u64 = 0;
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(b) if forwarding => {
                if tx.send(Ok(b)).await.is_err() {
                    forwarding = false;
                }
            }
            Ok(b) => {
                drained = drained.saturating_add(b.len() as u64);
                if drained > DRAIN_MAX_BYTES {
                    return;
                }
            }
            Err(e) => {
                if forwarding {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                }
                return;
            }
        }
    }
}

fn multipart_error(e: multer::Error) -> DalError {
    DalError::bad_request(format!("cannot read the multipart/form-data request: {e}"))
}

async fn parse_parts(
    mut mp: multer::Multipart<'_>,
    limits: &UploadLimits,
) -> Result<MultipartForm, DalError> {
    let mut form = MultipartForm::default();
    let mut file_bytes: u64 = 0;
    let mut param_bytes: u64 = 0;
    while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(|m| m.to_string());
        let is_file = filename.is_some()
            || content_type
                .as_deref()
                .is_some_and(|c| !c.to_ascii_lowercase().starts_with("text/plain"));
        let mut buf = BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            let n = chunk.len() as u64;
            if is_file {
                file_bytes = file_bytes.saturating_add(n);
                if file_bytes > limits.max_bytes {
                    return Err(limits.too_many_bytes());
                }
            } else {
                param_bytes = param_bytes.saturating_add(n);
                if param_bytes > PARAM_MAX_BYTES {
                    return Err(DalError::bad_request(format!(
                        "the parameters of the request exceed {PARAM_MAX_BYTES} bytes (send \
                         tables as file parts)"
                    )));
                }
            }
            buf.extend_from_slice(&chunk);
        }
        let bytes = buf.freeze();
        if is_file {
            form.files.push(UploadFile {
                name,
                filename,
                content_type,
                bytes,
            });
        } else {
            match std::str::from_utf8(&bytes) {
                Ok(s) => form.params.push((name, s.to_string())),
                Err(_) => form.files.push(UploadFile {
                    name,
                    filename,
                    content_type,
                    bytes,
                }),
            }
        }
    }
    // Tables sent as plain parts (no file name): the parts UPLOAD names become files.
    let referenced: Vec<String> = form
        .params
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("UPLOAD"))
        .filter_map(|(_, v)| parse_upload_param(v).ok())
        .flatten()
        .filter_map(|s| match s.source {
            UploadSource::Param(p) => Some(p),
            UploadSource::Url(_) | UploadSource::VoSpace(_) => None,
        })
        .collect();
    if !referenced.is_empty() {
        let (tables, params): (Vec<_>, Vec<_>) = std::mem::take(&mut form.params)
            .into_iter()
            .partition(|(k, _)| {
                !k.eq_ignore_ascii_case("UPLOAD") && referenced.iter().any(|r| r == k)
            });
        form.params = params;
        for (name, value) in tables {
            file_bytes = file_bytes.saturating_add(value.len() as u64);
            if file_bytes > limits.max_bytes {
                return Err(limits.too_many_bytes());
            }
            form.files.push(UploadFile {
                name,
                filename: None,
                content_type: None,
                bytes: Bytes::from(value),
            });
        }
    }
    Ok(form)
}

// ---------------------------------------------------------------------------------------------
// Tables

/// An uploaded table, read into memory.
#[derive(Debug, Clone)]
pub struct UploadedTable {
    /// Its name as given in UPLOAD (matched case-insensitively by queries).
    pub name: String,
    /// Columns, with the VOTable FIELD metadata in Arrow field metadata.
    pub schema: SchemaRef,
    /// Rows.
    pub batches: Vec<RecordBatch>,
}

impl UploadedTable {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// What an upload is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableFormat {
    VoTable,
    Delimited(u8),
}

fn detect_format(bytes: &[u8], content_type: Option<&str>) -> Result<TableFormat, DalError> {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if ct.contains("votable") || ct.contains("xml") {
        return Ok(TableFormat::VoTable);
    }
    if ct.contains("tab-separated") || ct.contains("text/tsv") {
        return Ok(TableFormat::Delimited(b'\t'));
    }
    if ct.contains("csv") {
        return Ok(TableFormat::Delimited(b','));
    }
    // No useful type (pyvo and many clients send none, or application/octet-stream): sniff.
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let body = &body[start..];
    if body.starts_with(b"<") {
        Ok(TableFormat::VoTable)
    } else if body.starts_with(b"SIMPLE  =") {
        Err(DalError::bad_request(
            "FITS tables cannot be uploaded here: send a VOTable or CSV",
        ))
    } else if body.starts_with(b"PAR1") {
        Err(DalError::bad_request(
            "Parquet tables cannot be uploaded here: send a VOTable or CSV",
        ))
    } else {
        Ok(TableFormat::Delimited(b','))
    }
}

/// Reads an uploaded table: a VOTable (when the content type says VOTable or XML, or the
/// bytes start with `<`), else CSV (TSV for `text/tab-separated-values`) with a header line.
/// Column names that repeat (case-insensitively: ADQL names are) get `_2`, `_3`, … appended.
/// More rows than `limits.max_rows` is an error.
pub fn read_table(
    name: &str,
    bytes: &[u8],
    content_type: Option<&str>,
    limits: &UploadLimits,
) -> Result<UploadedTable, DalError> {
    let (schema, batches) = match detect_format(bytes, content_type)? {
        TableFormat::VoTable => votable::read(bytes).map_err(|e| {
            DalError::bad_request(format!("upload '{name}' is not a readable VOTable: {e}"))
        })?,
        TableFormat::Delimited(d) => read_delimited(name, bytes, d, limits)?,
    };
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if rows > limits.max_rows {
        return Err(too_many_rows(name, limits));
    }
    let (schema, batches) = unique_names(schema, batches)
        .map_err(|e| DalError::bad_request(format!("upload '{name}': {e}")))?;
    Ok(UploadedTable {
        name: name.to_string(),
        schema,
        batches,
    })
}

fn too_many_rows(name: &str, limits: &UploadLimits) -> DalError {
    DalError::bad_request(format!(
        "upload '{name}' has more rows than the upload limit of {} rows (upload_max_rows)",
        limits.max_rows
    ))
}

/// Renames columns whose names repeat (case-insensitively).
fn unique_names(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let mut seen: Vec<String> = Vec::new();
    let mut changed = false;
    let mut fields: Vec<Field> = Vec::new();
    for f in schema.fields() {
        let mut name = f.name().clone();
        let mut n = 1;
        while seen.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
            n += 1;
            name = format!("{}_{n}", f.name());
            changed = true;
        }
        seen.push(name.clone());
        fields.push(f.as_ref().clone().with_name(name));
    }
    if !changed {
        return Ok((schema, batches));
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let batches = batches
        .into_iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((schema, batches))
}

/// The type of a CSV column, widened as values are seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CsvType {
    /// No value yet (every cell empty).
    Empty,
    Integer,
    Double,
    Text,
}

fn classify(cell: &str) -> CsvType {
    let t = cell.trim();
    if t.is_empty() {
        CsvType::Empty
    } else if t.parse::<i64>().is_ok() {
        CsvType::Integer
    } else if t.parse::<f64>().is_ok() {
        CsvType::Double
    } else {
        CsvType::Text
    }
}

fn csv_error(name: &str, e: csv::Error) -> DalError {
    DalError::bad_request(format!("upload '{name}' is not readable CSV: {e}"))
}

/// Reads delimited text with a header line in two passes: one finds each column's type
/// (integer, else double, else string), the other builds the columns.
fn read_delimited(
    name: &str,
    bytes: &[u8],
    delimiter: u8,
    limits: &UploadLimits,
) -> Result<(SchemaRef, Vec<RecordBatch>), DalError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let reader = || {
        csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(false)
            .from_reader(bytes)
    };
    let mut r = reader();
    let headers = r.headers().map_err(|e| csv_error(name, e))?.clone();
    if headers.is_empty() || headers.iter().all(|h| h.trim().is_empty()) {
        return Err(DalError::bad_request(format!(
            "upload '{name}' has no header line (CSV uploads need the column names first)"
        )));
    }
    let mut types = vec![CsvType::Empty; headers.len()];
    let mut rows: u64 = 0;
    for rec in r.records() {
        let rec = rec.map_err(|e| csv_error(name, e))?;
        rows += 1;
        if rows > limits.max_rows {
            return Err(too_many_rows(name, limits));
        }
        for (t, cell) in types.iter_mut().zip(rec.iter()) {
            if *t != CsvType::Text {
                *t = (*t).max(classify(cell));
            }
        }
    }
    let fields: Vec<Field> = headers
        .iter()
        .zip(&types)
        .enumerate()
        .map(|(i, (h, t))| {
            let h = h.trim();
            let n = if h.is_empty() {
                format!("col{}", i + 1)
            } else {
                h.to_string()
            };
            let dt = match t {
                CsvType::Integer => DataType::Int64,
                CsvType::Double => DataType::Float64,
                CsvType::Empty | CsvType::Text => DataType::Utf8,
            };
            Field::new(n, dt, true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));

    enum Col {
        I(Int64Builder),
        D(Float64Builder),
        S(StringBuilder),
    }
    let new_cols = || -> Vec<Col> {
        types
            .iter()
            .map(|t| match t {
                CsvType::Integer => Col::I(Int64Builder::new()),
                CsvType::Double => Col::D(Float64Builder::new()),
                _ => Col::S(StringBuilder::new()),
            })
            .collect()
    };
    let finish = |cols: &mut Vec<Col>| -> Result<RecordBatch, DalError> {
        let arrays: Vec<ArrayRef> = cols
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    Col::I(b) => Arc::new(b.finish()),
                    Col::D(b) => Arc::new(b.finish()),
                    Col::S(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| DalError::internal(format!("upload '{name}': {e}")))
    };
    let mut batches = Vec::new();
    let mut cols = new_cols();
    let mut in_batch = 0usize;
    let mut r = reader();
    for rec in r.records() {
        let rec = rec.map_err(|e| csv_error(name, e))?;
        for (c, cell) in cols.iter_mut().zip(rec.iter()) {
            let t = cell.trim();
            match c {
                Col::I(b) => b.append_option(t.parse::<i64>().ok()),
                Col::D(b) => b.append_option(t.parse::<f64>().ok()),
                Col::S(b) if cell.is_empty() => b.append_null(),
                Col::S(b) => b.append_value(cell),
            }
        }
        in_batch += 1;
        if in_batch == CSV_BATCH_ROWS {
            batches.push(finish(&mut cols)?);
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        batches.push(finish(&mut cols)?);
    }
    Ok((schema, batches))
}

// ---------------------------------------------------------------------------------------------
// Loading the tables of a request

/// Takes each table of `specs` from its part in `files` (`param:`) or its URL, and reads it
/// ([`read_table`], off the async threads). The tables together may hold `limits.max_bytes`.
pub async fn load_uploads(
    specs: &[UploadSpec],
    files: &[UploadFile],
    limits: &UploadLimits,
    vospace: Option<VoSpaceAccess<'_>>,
) -> Result<Vec<UploadedTable>, DalError> {
    let mut total: u64 = 0;
    let mut tables = Vec::with_capacity(specs.len());
    for spec in specs {
        let (bytes, content_type) = match &spec.source {
            UploadSource::Param(part) => {
                let f = files
                    .iter()
                    .find(|f| f.name == *part)
                    .or_else(|| files.iter().find(|f| f.name.eq_ignore_ascii_case(part)))
                    .ok_or_else(|| {
                        DalError::bad_request(format!(
                            "UPLOAD {},param:{part}: the request has no part named '{part}' \
                             (inline uploads are sent as parts of a multipart/form-data POST)",
                            spec.name
                        ))
                    })?;
                tracing::debug!(
                    "upload {}: part {part} ({} bytes, file name {:?})",
                    spec.name,
                    f.bytes.len(),
                    f.filename
                );
                (f.bytes.clone(), f.content_type.clone())
            }
            UploadSource::Url(url) => {
                fetch(
                    &spec.name,
                    url,
                    limits,
                    limits.max_bytes.saturating_sub(total),
                )
                .await?
            }
            UploadSource::VoSpace(uri) => {
                let vo = vospace.ok_or_else(|| {
                    DalError::bad_request(format!(
                        "UPLOAD {},{uri}: this server has no VOSpace",
                        spec.name
                    ))
                })?;
                read_vospace(
                    &spec.name,
                    uri,
                    vo,
                    limits.max_bytes.saturating_sub(total),
                    limits,
                )
                .await?
            }
        };
        total = total.saturating_add(bytes.len() as u64);
        if total > limits.max_bytes {
            return Err(limits.too_many_bytes());
        }
        let name = spec.name.clone();
        let l = limits.clone();
        let table = tokio::task::spawn_blocking(move || {
            read_table(&name, &bytes, content_type.as_deref(), &l)
        })
        .await
        .map_err(|e| DalError::internal(format!("reading an upload failed: {e}")))??;
        tracing::info!(
            "upload {}: {} rows, {} columns",
            table.name,
            table.num_rows(),
            table.schema.fields().len()
        );
        tables.push(table);
    }
    Ok(tables)
}

/// What reading `vos://` uploads needs: the space, its authority and who asks.
#[derive(Clone, Copy)]
pub struct VoSpaceAccess<'a> {
    /// The space.
    pub store: &'a vospace::VoStore,
    /// Its authority (of `vos://` URIs).
    pub authority: &'a str,
    /// Who asks (`None`: anonymous).
    pub user: Option<&'a vospace::User>,
}

/// Reads a VOSpace file for UPLOAD: the caller must be allowed to read it (anonymous: public
/// files only); links inside the space are followed; at most `room` bytes.
async fn read_vospace(
    name: &str,
    uri: &str,
    vo: VoSpaceAccess<'_>,
    room: u64,
    limits: &UploadLimits,
) -> Result<(Bytes, Option<String>), DalError> {
    use vospace::Access;
    let fault = |f: vospace::Fault| DalError::bad_request(format!("UPLOAD {name},{uri}: {f}"));
    let path = vospace::xml::path_of_uri(uri, vo.authority).map_err(fault)?;
    let node = vo
        .store
        .get(&path)
        .await
        .map_err(fault)?
        .ok_or_else(|| fault(vospace::Fault::NodeNotFound(path.clone())))?;
    if vo.store.access(vo.user, &path).await.map_err(fault)? < Access::Read {
        return Err(fault(vospace::Fault::PermissionDenied(format!(
            "{path} is not readable{}",
            if vo.user.is_none() {
                " anonymously (send your token)"
            } else {
                ""
            }
        ))));
    }
    let node = vospace::transfer::resolve_links(vo.store, vo.authority, node)
        .await
        .map_err(fault)?;
    if node.path != path
        && vo.store.access(vo.user, &node.path).await.map_err(fault)? < Access::Read
    {
        return Err(fault(vospace::Fault::PermissionDenied(format!(
            "{} (the link's target) is not readable",
            node.path
        ))));
    }
    if node.length.unwrap_or(0) > room {
        return Err(limits.too_many_bytes());
    }
    let read = vo.store.read_data(&node.path).await.map_err(fault)?;
    let mut body = BytesMut::new();
    let mut stream = read.stream;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(fault)?;
        if (body.len() + chunk.len()) as u64 > room {
            return Err(limits.too_many_bytes());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), read.node.content_type.clone()))
}

/// Fetches an `http(s)://` upload from an allowed host, at most `room` bytes.
async fn fetch(
    name: &str,
    url: &str,
    limits: &UploadLimits,
    room: u64,
) -> Result<(Bytes, Option<String>), DalError> {
    if limits.url_hosts.is_empty() {
        return Err(DalError::bad_request(format!(
            "UPLOAD {name},{url}: this service does not fetch uploads from URLs; send the \
             table inline (UPLOAD={name},param:PART with a multipart/form-data part PART)"
        )));
    }
    let parsed = url::Url::parse(url)
        .map_err(|e| DalError::bad_request(format!("UPLOAD {name},{url}: not a URL: {e}")))?;
    let policy = UrlPolicy {
        hosts: limits.url_hosts.clone(),
        ports: limits.url_ports.clone(),
        private: limits.url_private,
    };
    policy
        .check(&parsed)
        .map_err(|why| DalError::bad_request(format!("UPLOAD {name},{url}: {why}")))?;
    let check = policy.clone();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(FETCH_TIMEOUT_SECS))
        // Every host name is resolved here, and only to addresses the policy allows: a name
        // on the list that resolves to 127.0.0.1 or 169.254.169.254 (DNS rebinding) is refused.
        .dns_resolver(Arc::new(PolicyResolver {
            private: policy.private,
        }))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error("too many redirects");
            }
            match check.check(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(why) => attempt.error(format!("a redirect: {why}")),
            }
        }))
        .build()
        .map_err(|e| DalError::internal(format!("cannot fetch uploads: {e}")))?;
    let failed = |e: reqwest::Error| {
        // The causes say why (an address refused by the policy, a redirect refused, …).
        let mut why = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            why.push_str(": ");
            why.push_str(&c.to_string());
            cause = c.source();
        }
        DalError::bad_request(format!(
            "UPLOAD {name},{url}: fetching the table failed: {why}"
        ))
    };
    let resp = client.get(parsed).send().await.map_err(failed)?;
    if !resp.status().is_success() {
        return Err(DalError::bad_request(format!(
            "UPLOAD {name},{url}: fetching the table failed: HTTP {}",
            resp.status()
        )));
    }
    if resp.content_length().is_some_and(|n| n > room) {
        return Err(limits.too_many_bytes());
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = BytesMut::new();
    let mut stream = Box::pin(resp.bytes_stream());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(failed)?;
        if (body.len() + chunk.len()) as u64 > room {
            return Err(limits.too_many_bytes());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), content_type))
}

/// Where URL uploads may be fetched from: listed hosts, listed ports, public addresses
/// (unless non-public ones are allowed).
#[derive(Debug, Clone)]
struct UrlPolicy {
    hosts: Vec<String>,
    ports: Vec<u16>,
    private: bool,
}

impl UrlPolicy {
    /// Whether `u` may be fetched (its host's addresses are checked when it is resolved,
    /// by [`PolicyResolver`]; an address written in the URL is checked here).
    fn check(&self, u: &url::Url) -> Result<(), String> {
        if !matches!(u.scheme(), "http" | "https") {
            return Err(format!(
                "the scheme {} is not fetched (http, https)",
                u.scheme()
            ));
        }
        let host = u.host_str().unwrap_or("");
        if !self.hosts.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            return Err(format!(
                "uploads are fetched only from {}",
                self.hosts.join(", ")
            ));
        }
        let port = u.port_or_known_default().unwrap_or(0);
        if !self.ports.contains(&port) {
            return Err(format!(
                "port {port} is not one uploads are fetched from ({}: [tap] upload_url_ports)",
                self.ports
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let literal = match u.host() {
            Some(url::Host::Ipv4(a)) => Some(std::net::IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => Some(std::net::IpAddr::V6(a)),
            _ => None,
        };
        if let Some(ip) = literal {
            if !self.private && !is_public(ip) {
                return Err(format!(
                    "{ip} is a private, loopback or link-local address, which uploads are not \
                     fetched from ([tap] upload_url_private)"
                ));
            }
        }
        Ok(())
    }
}

/// Whether an address is public: not loopback, private, link-local (cloud metadata services
/// included), unspecified, multicast, broadcast, shared (CGNAT), documentation or reserved.
fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// Resolves host names for URL uploads, keeping only the addresses the policy allows.
struct PolicyResolver {
    private: bool,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let private = self.private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<std::net::SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                let why = if found.is_empty() {
                    format!("{host} does not resolve")
                } else {
                    format!(
                        "{host} resolves to a private, loopback or link-local address, which \
                         uploads are not fetched from ([tap] upload_url_private)"
                    )
                };
                return Err(why.into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The session a query of this request is planned with: the shared one when the request has
/// no UPLOAD, else one with its uploads in `TAP_UPLOAD` ([`session_with_uploads`]). `files`
/// are the request's file parts ([`read_multipart`]; empty for GET and urlencoded POSTs).
pub async fn query_session(
    engine: &Engine,
    tap: &Tap,
    params: &Params,
    files: &[UploadFile],
    user: Option<&vospace::User>,
) -> Result<SessionState, DalError> {
    let values: Vec<&str> = params
        .pairs()
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("UPLOAD"))
        .map(|(_, v)| v.as_str())
        .collect();
    if values.iter().all(|v| v.trim().is_empty()) {
        return Ok(engine.session());
    }
    let specs = parse_upload_params(values)?;
    let limits = UploadLimits::from_config(&tap.config);
    let vospace = tap.vospace.as_deref().map(|store| VoSpaceAccess {
        store,
        authority: &tap.service.authority,
        user,
    });
    let tables = load_uploads(&specs, files, &limits, vospace).await?;
    session_with_uploads(engine, tables)
}

/// A session for one query: the shared session (functions, optimizer rules, configuration)
/// whose default catalog also has the schema `tap_upload` with `tables` (in memory). Nothing is
/// registered in the shared context.
pub fn session_with_uploads(
    engine: &Engine,
    tables: Vec<UploadedTable>,
) -> Result<SessionState, DalError> {
    session_from(engine.session(), tables)
}

/// [`session_with_uploads`] from a copy of the shared session.
fn session_from(
    shared: SessionState,
    tables: Vec<UploadedTable>,
) -> Result<SessionState, DalError> {
    let mut providers: Vec<(String, Arc<dyn TableProvider>)> = Vec::with_capacity(tables.len());
    for t in tables {
        check_name(&t.name)?;
        let key = t.name.to_ascii_lowercase();
        if providers.iter().any(|(k, _)| *k == key) {
            return Err(DalError::bad_request(format!(
                "UPLOAD names the table '{}' more than once",
                t.name
            )));
        }
        let mem = MemTable::try_new(t.schema, vec![t.batches])
            .map_err(|e| DalError::internal(format!("upload '{}': {e}", t.name)))?;
        let provider: Arc<dyn TableProvider> = Arc::new(mem);
        providers.push((key, provider));
    }
    let default_catalog = shared.config().options().catalog.default_catalog.clone();
    let list = Arc::new(UploadCatalogList {
        inner: shared.catalog_list().clone(),
        default_catalog,
        uploads: Arc::new(UploadSchema { tables: providers }),
    });
    Ok(SessionStateBuilder::new_from_existing(shared)
        .with_catalog_list(list)
        .build())
}

/// The shared catalogs, with [`UploadCatalog`] in place of the default catalog.
#[derive(Debug)]
struct UploadCatalogList {
    inner: Arc<dyn CatalogProviderList>,
    default_catalog: String,
    uploads: Arc<UploadSchema>,
}

impl CatalogProviderList for UploadCatalogList {
    /// Registering is refused (nothing reaches the shared catalogs): returns `None`.
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        self.inner.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let inner = self.inner.catalog(name)?;
        if name == self.default_catalog {
            Some(Arc::new(UploadCatalog {
                inner,
                uploads: self.uploads.clone(),
            }))
        } else {
            Some(inner)
        }
    }
}

/// A catalog with the schemas of `inner` plus `tap_upload` (matched case-insensitively).
#[derive(Debug)]
struct UploadCatalog {
    inner: Arc<dyn CatalogProvider>,
    uploads: Arc<UploadSchema>,
}

impl CatalogProvider for UploadCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.inner.schema_names();
        names.retain(|n| !n.eq_ignore_ascii_case(SCHEMA));
        names.push(SCHEMA.to_string());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name.eq_ignore_ascii_case(SCHEMA) {
            Some(self.uploads.clone())
        } else {
            self.inner.schema(name)
        }
    }
}

/// The uploaded tables of one query, by lower-case name (matched case-insensitively).
#[derive(Debug)]
struct UploadSchema {
    tables: Vec<(String, Arc<dyn TableProvider>)>,
}

impl UploadSchema {
    fn find(&self, name: &str) -> Option<&Arc<dyn TableProvider>> {
        self.tables
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, t)| t)
    }
}

#[async_trait]
impl SchemaProvider for UploadSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(|(k, _)| k.clone()).collect()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.find(name).cloned())
    }

    fn table_exist(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};

    fn limits() -> UploadLimits {
        UploadLimits {
            max_bytes: 1 << 20,
            max_rows: 1000,
            url_hosts: Vec::new(),
            url_ports: vec![80, 443],
            url_private: false,
        }
    }

    #[test]
    fn upload_parameter() {
        let s = parse_upload_param("a,param:x ; B_2,https://h.org/t?x=1;y=2;c,param:z;").unwrap();
        assert_eq!(
            s,
            vec![
                UploadSpec {
                    name: "a".into(),
                    source: UploadSource::Param("x".into())
                },
                UploadSpec {
                    name: "B_2".into(),
                    source: UploadSource::Url("https://h.org/t?x=1;y=2".into())
                },
                UploadSpec {
                    name: "c".into(),
                    source: UploadSource::Param("z".into())
                },
            ]
        );
        for bad in [
            "",
            "a",
            "1a,param:x",
            "a b,param:x",
            "select,param:x",
            "a,param:",
            "a,ftp://h/x",
            "a,file:///etc/passwd",
            "\"a\",param:x",
        ] {
            assert!(parse_upload_param(bad).is_err(), "{bad}");
        }
        assert!(parse_upload_params(["a,param:x", "A,param:y"]).is_err());
        assert_eq!(
            parse_upload_params(["a,param:x", "b,param:y"])
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn csv_types() {
        let t = read_table(
            "t",
            b"id,ra,name,empty,mixed\n1,10.5,a,,1\n2,,\"b,c\",,x\n,-3e2,,,2\n",
            None,
            &limits(),
        )
        .unwrap();
        let s = &t.schema;
        let types: Vec<_> = s.fields().iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(
            types,
            vec![
                DataType::Int64,
                DataType::Float64,
                DataType::Utf8,
                DataType::Utf8,
                DataType::Utf8
            ]
        );
        let b = &t.batches[0];
        assert_eq!(b.num_rows(), 3);
        let id = b.column(0).as_primitive::<Int64Type>();
        assert_eq!((id.value(1), id.is_null(2)), (2, true));
        let ra = b.column(1).as_primitive::<Float64Type>();
        assert_eq!(
            (ra.value(0), ra.is_null(1), ra.value(2)),
            (10.5, true, -300.0)
        );
        let name = b.column(2).as_string::<i32>();
        assert_eq!((name.value(1), name.is_null(2)), ("b,c", true));
        assert_eq!(b.column(4).as_string::<i32>().value(1), "x");
    }

    #[test]
    fn csv_limits_and_errors() {
        let mut l = limits();
        l.max_rows = 2;
        let e = read_table("t", b"a\n1\n2\n3\n", Some("text/csv"), &l).unwrap_err();
        assert!(e.message.contains("upload_max_rows"), "{}", e.message);
        assert!(read_table("t", b"a,b\n1\n", None, &limits()).is_err());
        let e = read_table("t", b"SIMPLE  = T", None, &limits()).unwrap_err();
        assert!(e.message.contains("FITS"));
        let t = read_table("t", b"x,X,x\n1,2,3\n", None, &limits()).unwrap();
        let names: Vec<_> = t.schema.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["x", "X_2", "x_3"]);
    }

    /// A shared context like the server's: ADQL functions and rules, a `cat.stars` table.
    fn shared_context() -> datafusion::prelude::SessionContext {
        use datafusion::arrow::array::Float64Array;
        use datafusion::catalog::MemorySchemaProvider;
        let ctx = datafusion::prelude::SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new()
                .with_default_catalog_and_schema("datafusion", "public"),
        );
        adql::register(&ctx);
        let schema = Arc::new(Schema::new(vec![
            Field::new("ra", DataType::Float64, true),
            Field::new("dec", DataType::Float64, true),
        ]));
        let ra: Vec<f64> = (0..2000).map(|i| (i as f64) * 0.18).collect();
        let dec: Vec<f64> = (0..2000).map(|i| ((i % 170) as f64) - 85.0).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(ra)),
                Arc::new(Float64Array::from(dec)),
            ],
        )
        .unwrap();
        let cat = ctx.catalog("datafusion").unwrap();
        cat.register_schema("cat", Arc::new(MemorySchemaProvider::new()))
            .unwrap();
        ctx.register_table(
            datafusion::common::TableReference::partial("cat", "stars"),
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        ctx
    }

    #[tokio::test]
    async fn uploads_are_planned_privately_and_crossmatched_by_healpix() {
        let ctx = shared_context();
        let up = read_table(
            "Mine",
            b"id,ra,dec\n1,0.0001,-85\n2,0.1801,-84.0001\n3,200,10\n",
            None,
            &limits(),
        )
        .unwrap();
        let session = session_from(ctx.state(), vec![up]).unwrap();
        // Case-insensitive schema and table, regular or delimited.
        for q in [
            "SELECT * FROM TAP_UPLOAD.mine",
            "SELECT * FROM tap_upload.MINE",
            "SELECT * FROM \"TAP_UPLOAD\".\"Mine\"",
        ] {
            adql::plan(&session, q).await.expect(q);
        }
        // Nothing reached the shared context.
        assert!(adql::plan(&ctx.state(), "SELECT * FROM TAP_UPLOAD.mine")
            .await
            .is_err());
        assert!(ctx
            .catalog("datafusion")
            .unwrap()
            .schema("tap_upload")
            .is_none());
        // The crossmatch runs as a HEALPix hash join, and executes with the shared context.
        let q = "SELECT m.id, s.ra FROM TAP_UPLOAD.mine AS m JOIN cat.stars AS s \
                 ON 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(m.ra, m.dec, 0.01))";
        let plan = adql::plan(&session, q).await.unwrap();
        let df = ctx.execute_logical_plan(plan).await.unwrap();
        let physical = df.clone().create_physical_plan().await.unwrap();
        let shown = datafusion::physical_plan::displayable(physical.as_ref())
            .indent(false)
            .to_string();
        assert!(
            shown.contains("HashJoinExec") && shown.contains("xmatch"),
            "{shown}"
        );
        let rows: usize = df
            .collect()
            .await
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, 2);
    }

    #[test]
    fn votable_keeps_metadata() {
        let vot = br#"<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>
<FIELD name="ra" datatype="double" unit="deg" ucd="pos.eq.ra"/>
<FIELD name="n" datatype="int"/>
<DATA><TABLEDATA><TR><TD>1.5</TD><TD>3</TD></TR><TR><TD>2</TD><TD></TD></TR></TABLEDATA></DATA>
</TABLE></RESOURCE></VOTABLE>"#;
        let t = read_table("v", vot, None, &limits()).unwrap();
        assert_eq!(t.num_rows(), 2);
        let f = t.schema.field(0);
        assert_eq!(f.metadata().get("unit").map(String::as_str), Some("deg"));
        assert_eq!(
            f.metadata().get("ucd").map(String::as_str),
            Some("pos.eq.ra")
        );
        assert!(t.batches[0].column(1).is_null(1));
    }
}
