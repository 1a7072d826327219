//! The shared tail of the query path: a DataFusion logical plan is executed on the query
//! runtime and its record batches stream into the requested format and out as a chunked HTTP
//! body. `MAXREC` is applied as a limit of MAXREC+1 rows so that overflow is known exactly.
//! A bounded channel between execution and the socket keeps memory flat whatever the size.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use futures::StreamExt;
use tokio::sync::mpsc;
use votable::{Encoding, EndStatus, Info, WriterOptions};

use crate::server::AppState;

/// An error a DAL service reports to its user with a VOTable error document.
#[derive(Debug)]
pub struct DalError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl DalError {
    /// A 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        DalError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// A 500: the service failed.
    pub fn internal(message: impl Into<String>) -> Self {
        DalError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// The DALI error document response.
    pub fn response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .content_type("application/x-votable+xml")
            .body(votable::error_document(&self.message))
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// VOTable with the given serialisation.
    VoTable(Encoding),
    /// Comma-separated values with a header line.
    Csv,
    /// Tab-separated values with a header line.
    Tsv,
    /// FITS binary table (`application/fits`), see [`crate::output::fits`].
    Fits,
    /// Parquet with VOTable metadata (VOParquet), see [`crate::output::voparquet`].
    Parquet,
}

impl Format {
    /// Parses a RESPONSEFORMAT value (MIME type or short name).
    pub fn parse(value: Option<&str>) -> Result<Format, DalError> {
        let Some(v) = value else {
            return Ok(Format::VoTable(Encoding::TableData));
        };
        let v = v.trim().to_ascii_lowercase();
        let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        Ok(match compact.as_str() {
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
            _ => {
                return Err(DalError::bad_request(format!(
                    "RESPONSEFORMAT '{v}' is not supported; use votable, votable/b, \
                     votable/b2, csv, tsv, fits or parquet"
                )))
            }
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

/// What to run and how to write it.
pub struct QueryRequest {
    /// The logical plan.
    pub plan: LogicalPlan,
    /// Row limit.
    pub maxrec: u64,
    /// Output format.
    pub format: Format,
    /// INFOs for the VOTable RESOURCE.
    pub infos: Vec<Info>,
    /// Output schema with metadata (default: the plan's schema).
    pub schema: Option<SchemaRef>,
    /// TABLE name.
    pub table_name: Option<String>,
    /// Further VOTable RESOURCEs (raw XML), e.g. DataLink service descriptors.
    pub extra_resources: Option<String>,
}

enum Item {
    Batch(RecordBatch),
    Error(String),
}

/// A time limit on a query: past `deadline` it stops, with `message` as its error.
#[derive(Debug, Clone)]
pub struct TimeLimit {
    /// When the query must have finished.
    pub deadline: tokio::time::Instant,
    /// What the error says (the rows written so far stay, followed by this error).
    pub message: String,
}

/// How a result stream ended; known once its last chunk has been produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// Every row was written.
    Complete { rows: u64 },
    /// MAXREC cut the result after `rows` rows.
    Overflow { rows: u64 },
    /// The query failed, or ran out of time, after its first row.
    Error(String),
}

/// A result being encoded: its MIME type and its bytes, chunk by chunk. Used as an HTTP body
/// by [`execute`] and written to object storage by asynchronous jobs (`src/jobs/runner.rs`).
pub struct ResultStream {
    /// MIME type of the chunks.
    pub content_type: &'static str,
    /// The encoded result. Dropping it stops the query.
    pub chunks: futures::stream::BoxStream<'static, Bytes>,
    /// Set when the last chunk has been produced.
    pub end: Arc<std::sync::Mutex<Option<StreamEnd>>>,
}

/// Stops the query task when the stream reading its batches is dropped (client gone, job
/// aborted, time limit): without it a query producing no batch for a long time (an
/// aggregate over a big join) would run on after nobody wants its answer.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The time limit of synchronous queries (`[tap] sync_timeout`; 0: none).
pub fn sync_limit(state: &AppState) -> Option<TimeLimit> {
    let secs = state.config.tap.sync_timeout;
    (secs > 0).then(|| TimeLimit {
        deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(secs),
        message: format!(
            "the query ran longer than the {secs} s allowed to synchronous queries and was \
             stopped; submit it as an asynchronous job at /tap/async (TAP async, e.g. pyvo's \
             TAPService.run_async), which may run longer"
        ),
    })
}

/// Runs the plan and streams the result. Errors before the first row become error documents.
pub async fn execute(state: &Arc<AppState>, req: QueryRequest) -> Result<HttpResponse, DalError> {
    let limit = sync_limit(state);
    let result = result_stream(state, req, limit).await?;
    Ok(HttpResponse::Ok()
        .content_type(result.content_type)
        .streaming(result.chunks.map(Ok::<Bytes, actix_web::Error>)))
}

/// Runs the plan and returns its encoded result as a stream of chunks. Errors before the first
/// row (including the time limit) are returned as such; later ones end the stream with the
/// format's error trailer and [`StreamEnd::Error`].
pub async fn result_stream(
    state: &Arc<AppState>,
    req: QueryRequest,
    limit: Option<TimeLimit>,
) -> Result<ResultStream, DalError> {
    let schema: SchemaRef = req
        .schema
        .clone()
        .unwrap_or_else(|| Arc::new(req.plan.schema().as_arrow().clone()));
    let limited = LogicalPlanBuilder::from(req.plan.clone())
        .limit(0, Some(req.maxrec.saturating_add(1) as usize))
        .and_then(|b| b.build())
        .map_err(|e| DalError::internal(e.to_string()))?;

    // Execute on the query runtime; batches come back through a bounded channel.
    let (tx, mut rx) = mpsc::channel::<Item>(2);
    let ctx = state.ctx.clone();
    let task = state.query_runtime.spawn(async move {
        let df = match ctx.execute_logical_plan(limited).await {
            Ok(df) => df,
            Err(e) => {
                let _ = tx.send(Item::Error(e.strip_backtrace())).await;
                return;
            }
        };
        let mut stream = match df.execute_stream().await {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Item::Error(e.strip_backtrace())).await;
                return;
            }
        };
        while let Some(next) = stream.next().await {
            let item = match next {
                Ok(b) if b.num_rows() == 0 => continue,
                Ok(b) => Item::Batch(b),
                Err(e) => Item::Error(e.strip_backtrace()),
            };
            let stop = matches!(item, Item::Error(_));
            if tx.send(item).await.is_err() || stop {
                return; // the client went away, or the query failed
            }
        }
    });
    let guard = AbortOnDrop(task);

    // Wait for the first batch so that an early failure is a proper error document.
    let first = match &limit {
        Some(l) => match tokio::time::timeout_at(l.deadline, rx.recv()).await {
            Ok(first) => first,
            Err(_) => return Err(DalError::bad_request(l.message.clone())),
        },
        None => rx.recv().await,
    };
    if let Some(Item::Error(msg)) = &first {
        return Err(DalError::bad_request(adql::humanise(msg)));
    }
    let mut encoder = Encoder::new(schema, &req)?;
    let head = encoder.begin();
    let maxrec = req.maxrec;
    let end = Arc::new(std::sync::Mutex::new(None));

    struct St {
        rx: mpsc::Receiver<Item>,
        pending: Option<Item>,
        encoder: Encoder,
        rows: u64,
        done: bool,
        head: Option<Bytes>,
        limit: Option<TimeLimit>,
        end: Arc<std::sync::Mutex<Option<StreamEnd>>>,
        _guard: AbortOnDrop,
    }
    impl St {
        fn ended(&mut self, how: StreamEnd) {
            self.done = true;
            *self.end.lock().unwrap_or_else(|e| e.into_inner()) = Some(how);
        }
    }
    let st = St {
        rx,
        pending: first,
        encoder,
        rows: 0,
        done: false,
        head: Some(head),
        limit,
        end: end.clone(),
        _guard: guard,
    };
    let body = futures::stream::unfold(st, move |mut st| async move {
        if let Some(h) = st.head.take() {
            return Some((h, st));
        }
        if st.done {
            // FITS sends its rows only after the end (its header needs the row count).
            return st.encoder.tail().map(|b| (b, st));
        }
        let item = match st.pending.take() {
            Some(i) => Some(i),
            None => match &st.limit {
                Some(l) => match tokio::time::timeout_at(l.deadline, st.rx.recv()).await {
                    Ok(i) => i,
                    Err(_) => Some(Item::Error(l.message.clone())),
                },
                None => st.rx.recv().await,
            },
        };
        let out = match item {
            None => {
                let rows = st.rows;
                st.ended(StreamEnd::Complete { rows });
                st.encoder.finish(EndStatus::Ok)
            }
            Some(Item::Error(msg)) => {
                st.ended(StreamEnd::Error(msg.clone()));
                st.encoder.finish(EndStatus::Error(msg))
            }
            Some(Item::Batch(batch)) => {
                let room = maxrec - st.rows;
                if (batch.num_rows() as u64) > room {
                    let cut = batch.slice(0, room as usize);
                    let mut out = match st.encoder.write(&cut) {
                        Ok(b) => b.to_vec(),
                        Err(e) => {
                            st.ended(StreamEnd::Error(e.clone()));
                            return Some((st.encoder.finish(EndStatus::Error(e)), st));
                        }
                    };
                    st.rows += room;
                    let rows = st.rows;
                    st.ended(StreamEnd::Overflow { rows });
                    out.extend_from_slice(&st.encoder.finish(EndStatus::Overflow));
                    Bytes::from(out)
                } else {
                    st.rows += batch.num_rows() as u64;
                    match st.encoder.write(&batch) {
                        Ok(b) => b,
                        Err(e) => {
                            st.ended(StreamEnd::Error(e.clone()));
                            st.encoder.finish(EndStatus::Error(e))
                        }
                    }
                }
            }
        };
        Some((out, st))
    });
    Ok(ResultStream {
        content_type: req.format.content_type(),
        chunks: body.boxed(),
        end,
    })
}

/// Writes batches in the chosen format.
enum Encoder {
    /// The writer, and the columns cast to fixed-size arrays on the way (see [`dali_arrays`]).
    VoTable(Box<votable::Writer>, Vec<(usize, DataType)>),
    Text {
        schema: SchemaRef,
        delimiter: u8,
        header_done: bool,
    },
    Fits(Box<crate::output::fits::FitsEncoder>),
    Parquet(Box<crate::output::voparquet::VoParquetEncoder>),
}

impl Encoder {
    fn new(schema: SchemaRef, req: &QueryRequest) -> Result<Self, DalError> {
        Ok(match req.format {
            Format::VoTable(encoding) => {
                let opts = WriterOptions {
                    encoding,
                    resource_infos: req.infos.clone(),
                    table_name: req.table_name.clone(),
                    description: None,
                    extra_resources: req.extra_resources.clone(),
                };
                let (schema, casts) = dali_arrays(&schema);
                let w = votable::Writer::new(schema, opts)
                    .map_err(|e| DalError::bad_request(e.to_string()))?;
                Encoder::VoTable(Box::new(w), casts)
            }
            Format::Csv => Encoder::Text {
                schema,
                delimiter: b',',
                header_done: false,
            },
            Format::Tsv => Encoder::Text {
                schema,
                delimiter: b'\t',
                header_done: false,
            },
            Format::Fits => {
                let (schema, _) = dali_arrays(&schema);
                let e = crate::output::fits::FitsEncoder::new(
                    &schema,
                    &req.infos,
                    req.table_name.clone(),
                )
                .map_err(DalError::bad_request)?;
                Encoder::Fits(Box::new(e))
            }
            Format::Parquet => {
                let (schema, _) = dali_arrays(&schema);
                let e = crate::output::voparquet::VoParquetEncoder::new(
                    &schema,
                    &req.infos,
                    req.table_name.clone(),
                )
                .map_err(DalError::bad_request)?;
                Encoder::Parquet(Box::new(e))
            }
        })
    }

    /// Chunks after [`finish`](Encoder::finish): FITS writes its rows then; `None` at the end.
    fn tail(&mut self) -> Option<Bytes> {
        match self {
            Encoder::Fits(e) => e.next_chunk(),
            _ => None,
        }
    }

    fn begin(&mut self) -> Bytes {
        match self {
            Encoder::VoTable(w, _) => w.begin(),
            Encoder::Text { .. } | Encoder::Fits(_) => Bytes::new(),
            Encoder::Parquet(e) => e.begin(),
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<Bytes, String> {
        match self {
            Encoder::VoTable(w, casts) if casts.is_empty() => {
                w.write_batch(batch).map_err(|e| e.to_string())
            }
            Encoder::VoTable(w, casts) => {
                let mut columns = batch.columns().to_vec();
                for (i, t) in casts.iter() {
                    columns[*i] = datafusion::arrow::compute::cast(&columns[*i], t)
                        .map_err(|e| e.to_string())?;
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
            Encoder::Text {
                schema,
                delimiter,
                header_done,
            } => {
                let _ = schema;
                let batch = &flatten_lists(batch).map_err(|e| e.to_string())?;
                let mut buf = Vec::new();
                {
                    let mut w = datafusion::arrow::csv::WriterBuilder::new()
                        .with_header(!*header_done)
                        .with_delimiter(*delimiter)
                        .build(&mut buf);
                    w.write(batch).map_err(|e| e.to_string())?;
                }
                *header_done = true;
                Ok(Bytes::from(buf))
            }
            Encoder::Fits(e) => e.write(batch).map(|()| Bytes::new()),
            Encoder::Parquet(e) => e.write(batch),
        }
    }

    fn finish(&mut self, status: EndStatus) -> Bytes {
        match self {
            Encoder::VoTable(w, _) => w.finish(status),
            Encoder::Text {
                schema,
                delimiter,
                header_done,
            } => {
                // An empty result still gets its header line.
                let mut out = Vec::new();
                if !*header_done {
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    out.extend_from_slice(names.join(&(*delimiter as char).to_string()).as_bytes());
                    out.push(b'\n');
                    *header_done = true;
                }
                if let EndStatus::Error(m) = status {
                    out.extend_from_slice(format!("# ERROR: {m}\n").as_bytes());
                }
                Bytes::from(out)
            }
            Encoder::Fits(e) => e.finish(&status),
            Encoder::Parquet(e) => e.finish(&status),
        }
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
        columns.push(std::sync::Arc::new(b.finish()));
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
}

/// DALI geometry values have fixed sizes: a `point` is `double[2]` and a `circle` `double[3]`.
/// The geometry functions return variable-length lists; columns whose xtype says point or
/// circle are cast to fixed-size lists so that the VOTable FIELD says `arraysize="2"`/`"3"`.
fn dali_arrays(schema: &SchemaRef) -> (SchemaRef, Vec<(usize, DataType)>) {
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
