//! The shared tail of the query path: a DataFusion logical plan is executed on the query
//! runtime and its record batches stream into the requested format, chunk by chunk. `MAXREC`
//! is applied as a limit of MAXREC+1 rows so that overflow is known exactly. A bounded channel
//! between execution and the consumer (an HTTP body, an asynchronous job's upload) keeps memory
//! flat whatever the size.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use tokio::sync::mpsc;
use votable::{Encoder, EndStatus, Format, TableInfo};

use super::{Engine, QueryError};

/// What to run and how to write it.
pub struct QueryRequest {
    /// The logical plan.
    pub plan: LogicalPlan,
    /// Row limit.
    pub maxrec: u64,
    /// Output format.
    pub format: Format,
    /// INFOs, table name and further VOTable resources.
    pub info: TableInfo,
    /// Output schema with metadata (default: the plan's schema).
    pub schema: Option<SchemaRef>,
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

/// A result being encoded: its MIME type and its bytes, chunk by chunk.
pub struct ResultStream {
    /// MIME type of the chunks.
    pub content_type: &'static str,
    /// The encoded result. Dropping it stops the query.
    pub chunks: futures::stream::BoxStream<'static, Bytes>,
    /// Set when the last chunk has been produced.
    pub end: Arc<Mutex<Option<StreamEnd>>>,
}

/// What the execution task sends.
enum Item {
    Batch(RecordBatch),
    Error(String),
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

impl Engine {
    /// Runs the plan and returns its encoded result as a stream of chunks. Errors before the
    /// first row (including the time limit) are returned as such; later ones end the stream
    /// with the format's error trailer and [`StreamEnd::Error`].
    pub async fn stream(
        &self,
        req: QueryRequest,
        limit: Option<TimeLimit>,
    ) -> Result<ResultStream, QueryError> {
        let schema: SchemaRef = req
            .schema
            .clone()
            .unwrap_or_else(|| Arc::new(req.plan.schema().as_arrow().clone()));
        let limited = LogicalPlanBuilder::from(req.plan)
            .limit(0, Some(req.maxrec.saturating_add(1) as usize))
            .and_then(|b| b.build())
            .map_err(|e| QueryError::Internal(e.to_string()))?;

        // Execute on the query runtime; batches come back through a bounded channel.
        let (tx, mut rx) = mpsc::channel::<Item>(2);
        let task = self.runtime.spawn(execute(self.ctx.clone(), limited, tx));
        let guard = AbortOnDrop(task);

        // Wait for the first batch so that an early failure is a proper error document.
        let first = match &limit {
            Some(l) => match tokio::time::timeout_at(l.deadline, rx.recv()).await {
                Ok(first) => first,
                Err(_) => return Err(QueryError::Invalid(l.message.clone())),
            },
            None => rx.recv().await,
        };
        if let Some(Item::Error(msg)) = &first {
            return Err(QueryError::Invalid(adql::humanise(msg)));
        }
        let mut encoder =
            Encoder::new(req.format, schema, &req.info).map_err(QueryError::Invalid)?;
        let head = encoder.begin();
        let end = Arc::new(Mutex::new(None));
        let state = Chunks {
            rx,
            pending: first,
            encoder,
            maxrec: req.maxrec,
            rows: 0,
            done: false,
            head: Some(head),
            limit,
            end: end.clone(),
            _guard: guard,
        };
        let chunks = futures::stream::unfold(state, |mut st| async move {
            st.next_chunk().await.map(|c| (c, st))
        });
        Ok(ResultStream {
            content_type: req.format.content_type(),
            chunks: chunks.boxed(),
            end,
        })
    }
}

/// The execution task: runs the plan and sends its non-empty batches, or its error.
async fn execute(ctx: SessionContext, plan: LogicalPlan, tx: mpsc::Sender<Item>) {
    let stream = match ctx.execute_logical_plan(plan).await {
        Ok(df) => df.execute_stream().await,
        Err(e) => Err(e),
    };
    let mut stream = match stream {
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
            return; // the consumer went away, or the query failed
        }
    }
}

/// The encoding side of a result stream: receives batches, cuts at MAXREC, and yields the
/// encoder's chunks until the end (and, for FITS, the rows written after the end).
struct Chunks {
    rx: mpsc::Receiver<Item>,
    /// The first item, received before the stream started.
    pending: Option<Item>,
    encoder: Encoder,
    maxrec: u64,
    rows: u64,
    done: bool,
    head: Option<Bytes>,
    limit: Option<TimeLimit>,
    end: Arc<Mutex<Option<StreamEnd>>>,
    _guard: AbortOnDrop,
}

impl Chunks {
    /// The next chunk; `None` after the last one.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(h) = self.head.take() {
            return Some(h);
        }
        if self.done {
            // FITS sends its rows only after the end (its header needs the row count).
            return self.encoder.tail();
        }
        let item = match self.pending.take() {
            Some(i) => Some(i),
            None => self.receive().await,
        };
        Some(match item {
            None => {
                let rows = self.rows;
                self.ended(StreamEnd::Complete { rows });
                self.encoder.finish(EndStatus::Ok)
            }
            Some(Item::Error(msg)) => self.failed(msg),
            Some(Item::Batch(batch)) => self.batch(&batch),
        })
    }

    /// The next item from the execution task, or the time limit's error.
    async fn receive(&mut self) -> Option<Item> {
        match &self.limit {
            Some(l) => match tokio::time::timeout_at(l.deadline, self.rx.recv()).await {
                Ok(i) => i,
                Err(_) => Some(Item::Error(l.message.clone())),
            },
            None => self.rx.recv().await,
        }
    }

    /// The chunk of one batch, cut (and the result ended with OVERFLOW) at MAXREC.
    fn batch(&mut self, batch: &RecordBatch) -> Bytes {
        let room = self.maxrec - self.rows;
        if (batch.num_rows() as u64) <= room {
            self.rows += batch.num_rows() as u64;
            return match self.encoder.write(batch) {
                Ok(b) => b,
                Err(e) => self.failed(e),
            };
        }
        let cut = batch.slice(0, room as usize);
        let mut out = match self.encoder.write(&cut) {
            Ok(b) => b.to_vec(),
            Err(e) => return self.failed(e),
        };
        self.rows += room;
        let rows = self.rows;
        self.ended(StreamEnd::Overflow { rows });
        out.extend_from_slice(&self.encoder.finish(EndStatus::Overflow));
        Bytes::from(out)
    }

    /// Ends the result with an error after its first row.
    fn failed(&mut self, message: String) -> Bytes {
        self.ended(StreamEnd::Error(message.clone()));
        self.encoder.finish(EndStatus::Error(message))
    }

    fn ended(&mut self, how: StreamEnd) {
        self.done = true;
        *self.end.lock().unwrap_or_else(|e| e.into_inner()) = Some(how);
    }
}
