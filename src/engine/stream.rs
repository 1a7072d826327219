//! The shared tail of the query path: a DataFusion logical plan is planned physically, put in
//! its lane, executed by a task on that lane's runtime (never on an HTTP worker), and its
//! record batches are encoded into the requested format as the consumer (an HTTP body, an
//! asynchronous job's upload) asks for them; a bounded channel between the two keeps memory
//! flat whatever the size. `MAXREC` is applied as a limit of MAXREC+1 rows so that overflow is
//! known exactly. The time limit is kept on the consumer's side, so that an answer never waits
//! for a long computation to yield; when the consumer goes away (a client disconnects, a job
//! is aborted) the execution stops at once, even while the query produces nothing.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use votable::{Encoder, EndStatus, Format, TableInfo};

use super::{distributed, Engine, QueryError};

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

/// Where a query runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Decided from the plan: the fast lane when its catalog scans read little.
    Auto,
    /// The slow lane, whatever the plan (asynchronous jobs).
    Slow,
    /// The slow lane, on this server only: never on the query workers (a job run again
    /// after its workers failed while it ran).
    Here,
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

impl Engine {
    /// Runs the plan and returns its encoded result as a stream of chunks. Errors before the
    /// first row (including the time limit) are returned as such; later ones end the stream
    /// with the format's error trailer and [`StreamEnd::Error`]. A synchronous query (`sync`)
    /// takes a place in its lane's admission (the fast lane's `[limits] fast_queries`, or
    /// `sync_queries` and then `heavy_queries`), held until the result is complete.
    pub async fn stream(
        &self,
        req: QueryRequest,
        limit: Option<TimeLimit>,
        lane: Lane,
        sync: bool,
    ) -> Result<ResultStream, QueryError> {
        if self.draining() {
            return Err(QueryError::Busy(STOPPING.into()));
        }
        // The ADQL text, to locate what an error names in it.
        let query = req
            .info
            .infos
            .iter()
            .find(|i| i.name == "QUERY")
            .map(|i| i.value.clone());
        let located = |m: &str| failure_in(m, query.as_deref());
        let logical: SchemaRef = req
            .schema
            .clone()
            .unwrap_or_else(|| Arc::new(req.plan.schema().as_arrow().clone()));
        let limited = LogicalPlanBuilder::from(req.plan)
            .limit(0, Some(req.maxrec.saturating_add(1) as usize))
            .and_then(|b| b.build())
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        // Physical planning recurses over the plan: on the query runtime (large stacks). It
        // counts against the time limit (a 100,000-vertex polygon took it 20 s), and is
        // abandoned past it.
        let snapshot = self.snapshot();
        let ctx = snapshot.ctx.clone();
        let plan = limited.clone();
        let planning = AbortOnDrop(
            self.runtimes
                .fast
                .spawn(async move { ctx.state().create_physical_plan(&plan).await }),
        );
        let physical = timed(planning, &limit)
            .await
            .map_err(QueryError::Invalid)?
            .map_err(|e| QueryError::Internal(format!("planning failed: {e}")))?
            .map_err(|e| located(&e.strip_backtrace()))?;
        // Admission follows the lane: cheap queries never wait behind heavy ones.
        let fast = lane == Lane::Auto && self.is_light(&physical);
        // A query of the slow lane goes to the query workers when there are, and when the
        // distributed planner finds it large enough to cut into stages.
        // The spread plan's session, plan and the record of where its tasks go.
        let mut spread = None;
        let dist = match (fast, lane) {
            (false, Lane::Auto | Lane::Slow) => snapshot.distributed.as_ref(),
            _ => None,
        };
        if let Some(dist) = dist {
            let stays = distributed::stays_here(&physical, dist);
            if let Some(why) = &stays {
                tracing::info!("the query runs here, not on the workers: {why}");
            } else {
                let d = dist.clone();
                let planning = AbortOnDrop(
                    self.runtimes
                        .fast
                        .spawn(async move { d.state().create_physical_plan(&limited).await }),
                );
                match timed(planning, &limit).await.map_err(QueryError::Invalid)? {
                    Ok(Ok(p))
                        if distributed::is_distributed(&p) && p.schema() == physical.schema() =>
                    {
                        tracing::info!(
                            "query spread over the workers: {} network boundaries",
                            distributed::stages(&p)
                        );
                        let routing = Arc::new(distributed::Routing::default());
                        spread = Some((dist.clone(), p, routing));
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(
                        "distributed planning failed, the query runs here: {}",
                        e.strip_backtrace()
                    ),
                    Err(e) => return Err(QueryError::Internal(format!("planning failed: {e}"))),
                }
            }
        }
        let local = cooperative(physical)?;
        // What the client is told about the columns is decided here, before the first byte:
        // the types of the batches the physical plan produces, with the names and metadata
        // (units, UCDs, …) of the logical plan.
        let schema = writer_schema(&logical, &local.schema())?;
        let places = if fast {
            let place = match sync {
                true => Some(self.fast_place().await?),
                false => None,
            };
            (place, None)
        } else {
            let place = match sync {
                true => Some(self.sync_place().await?),
                false => None,
            };
            (place, Some(self.heavy_place(sync, &limit).await?))
        };
        // Execute on the lane's runtime; batches come back through a bounded channel. The
        // task holds the query's places until it ends.
        let places = Arc::new(places);
        let runtime = if fast {
            &self.runtimes.fast
        } else {
            &self.runtimes.slow
        };
        let run = |ctx: SessionContext,
                   plan: Arc<dyn ExecutionPlan>,
                   routing: Option<Arc<distributed::Routing>>| {
            let (tx, rx) = mpsc::channel::<Item>(2);
            let task = Execution {
                ctx,
                plan,
                routing,
                tx,
                _places: places.clone(),
            };
            (rx, AbortOnDrop(runtime.spawn(task.run())))
        };
        let (mut rx, mut guard) = match &spread {
            Some((ctx, plan, routing)) => run(ctx.clone(), plan.clone(), Some(routing.clone())),
            None => run(snapshot.ctx.clone(), local.clone(), None),
        };

        // Wait for the first batch so that an early failure is a proper error document. The
        // deadline is kept here, apart from the execution: a long computation there may not
        // yield for a while, the answer must not wait for it.
        let mut drain = self.drain.subscribe();
        let mut first = tokio::select! {
            first = timed(rx.recv(), &limit) => first.map_err(QueryError::Invalid)?,
            _ = drained(&mut drain) => return Err(QueryError::Busy(STOPPING.into())),
        };
        // The workers failed before a row was sent (one unreachable, stopped, refusing this
        // server): the query runs here instead.
        if let (Some(Item::Error(msg)), Some(_)) = (&first, &spread) {
            if distributed::is_worker_failure(msg) {
                tracing::warn!("the query workers failed, the query runs here: {msg}");
                (rx, guard) = run(snapshot.ctx.clone(), local, None);
                spread = None;
                first = tokio::select! {
                    first = timed(rx.recv(), &limit) => first.map_err(QueryError::Invalid)?,
                    _ = drained(&mut drain) => return Err(QueryError::Busy(STOPPING.into())),
                };
            }
        }
        // The tasks are routed before the first row: where each stage ran, for the log.
        if let (Some((_, plan, routing)), Some(Item::Batch(_)) | None) = (&spread, &first) {
            for line in routing.describe(plan) {
                tracing::info!("query on the workers: {line}");
            }
        }
        drop(places);
        match &first {
            Some(Item::Error(msg)) => return Err(located(msg)),
            // A batch that does not fit the declared columns fails the query now, as a clean
            // error document, not after the header has gone out.
            Some(Item::Batch(b)) => batch_fits(b, &schema)?,
            None => {}
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
            drain,
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

    /// A place in the slow lane. A synchronous query waits `[limits] sync_queue_ms` at most
    /// (then [`QueryError::Busy`]); a job waits as long as its time limit allows.
    async fn heavy_place(
        &self,
        sync: bool,
        limit: &Option<TimeLimit>,
    ) -> Result<OwnedSemaphorePermit, QueryError> {
        let places = self.heavy_places.clone();
        let busy = || {
            QueryError::Busy(format!(
                "the service is busy: {} large queries are running, as many as it runs at once \
                 ([limits] heavy_queries); retry in a few seconds, add conditions that select \
                 fewer rows, or submit the query as an asynchronous job",
                self.admission.heavy_queries
            ))
        };
        if sync {
            let wait = std::time::Duration::from_millis(self.admission.sync_queue_ms);
            return match tokio::time::timeout(wait, places.acquire_owned()).await {
                Ok(Ok(p)) => Ok(p),
                _ => Err(busy()),
            };
        }
        match limit {
            Some(l) => match tokio::time::timeout_at(l.deadline, places.acquire_owned()).await {
                Ok(Ok(p)) => Ok(p),
                _ => Err(QueryError::Invalid(l.message.clone())),
            },
            None => places.acquire_owned().await.map_err(|_| busy()),
        }
    }

    /// Whether a plan is light enough for the fast lane: it joins nothing, and its file
    /// scans (catalog partitions, after HEALPix pruning) read at most `[limits] fast_lane_mb`
    /// in all. Tables in memory (TAP_SCHEMA, uploads) count for nothing.
    pub fn is_light(&self, plan: &Arc<dyn ExecutionPlan>) -> bool {
        let budget = self.admission.fast_lane_mb.saturating_mul(1024 * 1024);
        let mut bytes: u64 = 0;
        let mut todo = vec![plan.clone()];
        while let Some(node) = todo.pop() {
            let name = node.name();
            if name.contains("Join") || name.contains("NestedLoop") {
                return false;
            }
            if let Some(scan) = node.downcast_ref::<DataSourceExec>() {
                if let Some(files) = scan.data_source().downcast_ref::<FileScanConfig>() {
                    let size: u64 = files
                        .file_groups
                        .iter()
                        .flat_map(|g| g.files())
                        .map(|f| f.object_meta.size)
                        .sum();
                    bytes = bytes.saturating_add(size);
                    if bytes > budget {
                        return false;
                    }
                }
            }
            todo.extend(node.children().into_iter().cloned());
        }
        true
    }
}

/// The plan with a yield point above every join and aggregation: their output counts
/// against the task's cooperative budget (tokio's coop, as DataFusion's own
/// [`CooperativeExec`]), so that the task returns to its runtime every few batches. Without
/// it a cross join feeding a TopK or a COUNT produces batch after batch in one poll for
/// seconds — DataFusion's own yield points are at the scans, which a join with a large build
/// side polls rarely — and a task that does not return cannot be aborted: the query went on
/// after its time limit, its job's execution duration or its client.
fn cooperative(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>, QueryError> {
    plan.transform_up(|node| {
        let name = node.name();
        let busy = name.contains("Join")
            || name.contains("NestedLoop")
            || node.downcast_ref::<AggregateExec>().is_some();
        Ok(if busy {
            Transformed::yes(Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>)
        } else {
            Transformed::no(node)
        })
    })
    .map(|t| t.data)
    .map_err(|e| QueryError::Internal(format!("planning failed: {e}")))
}

/// Stops a task (an execution, a physical planning) when what waits for it is dropped
/// (client gone, job aborted, time limit).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// One query's execution: its batches, or its error, into a channel.
struct Execution {
    ctx: SessionContext,
    plan: Arc<dyn ExecutionPlan>,
    /// Where a distributed plan's tasks are sent, recorded for the log.
    routing: Option<Arc<distributed::Routing>>,
    tx: mpsc::Sender<Item>,
    /// The query's places, released when it ends (and when the execution that stands in for
    /// it, if any, ends).
    _places: Arc<(Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>)>,
}

impl Execution {
    async fn run(self) {
        let task_ctx = match &self.routing {
            Some(routing) => distributed::task_ctx_recording(&self.ctx, routing.clone()),
            None => self.ctx.task_ctx(),
        };
        let mut stream = match execute_stream(self.plan.clone(), task_ctx) {
            Ok(s) => s,
            Err(e) => {
                let _ = self.tx.send(Item::Error(e.strip_backtrace())).await;
                return;
            }
        };
        loop {
            // The consumer gone (client disconnected, job aborted): stop now, even while the
            // query has produced nothing for a while.
            let next = tokio::select! {
                _ = self.tx.closed() => return,
                next = stream.next() => next,
            };
            let item = match next {
                None => return,
                Some(Ok(b)) if b.num_rows() == 0 => continue,
                Some(Ok(b)) => Item::Batch(b),
                Some(Err(e)) => Item::Error(e.strip_backtrace()),
            };
            let stop = matches!(item, Item::Error(_));
            if self.tx.send(item).await.is_err() || stop {
                return;
            }
        }
    }
}

/// The encoding side of a result stream: receives batches, cuts at MAXREC, keeps the time
/// limit, and yields the encoder's chunks until the end (and, for FITS, the rows written
/// after the end).
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
    /// When the service stops, the moment the result must end by.
    drain: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>,
    end: Arc<Mutex<Option<StreamEnd>>>,
    _guard: AbortOnDrop<()>,
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
            None => tokio::select! {
                next = timed(self.rx.recv(), &self.limit) => match next {
                    Ok(i) => i,
                    Err(message) => Some(Item::Error(message)),
                },
                _ = drained(&mut self.drain) => Some(Item::Error(STOPPING.into())),
            },
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
        let message = failure(&message).to_string();
        self.ended(StreamEnd::Error(message.clone()));
        self.encoder.finish(EndStatus::Error(message))
    }

    fn ended(&mut self, how: StreamEnd) {
        self.done = true;
        *self.end.lock().unwrap_or_else(|e| e.into_inner()) = Some(how);
    }
}

/// What a query is told when the service stops under it (SIGTERM).
const STOPPING: &str = "the service is stopping (a restart or maintenance): run the query again \
                        in a minute; an asynchronous job would run again by itself after the \
                        restart";

/// Resolves when the service is stopping and its drain time is over; never otherwise.
async fn drained(drain: &mut tokio::sync::watch::Receiver<Option<tokio::time::Instant>>) {
    loop {
        let until = *drain.borrow_and_update();
        if let Some(t) = until {
            tokio::time::sleep_until(t).await;
            return;
        }
        if drain.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// `fut` within the time limit, whose message is the error past it.
pub(crate) async fn timed<T>(
    fut: impl std::future::Future<Output = T>,
    limit: &Option<TimeLimit>,
) -> Result<T, String> {
    match limit {
        Some(l) => tokio::time::timeout_at(l.deadline, fut)
            .await
            .map_err(|_| l.message.clone()),
        None => Ok(fut.await),
    }
}

/// [`failure`], located in the ADQL text `query` when the message names something in it.
fn failure_in(message: &str, query: Option<&str>) -> QueryError {
    match (failure(message), query) {
        (QueryError::Invalid(_), Some(q)) if !message.contains("Resources exhausted") => {
            QueryError::Invalid(adql::humanise_in(q, message))
        }
        (other, _) => other,
    }
}

/// The result's schema: the physical plan's column types and nullability, with the logical
/// plan's (or the request's) names and column metadata, position by position.
fn writer_schema(logical: &Schema, physical: &Schema) -> Result<SchemaRef, QueryError> {
    if logical.fields().len() != physical.fields().len() {
        return Err(QueryError::Internal(format!(
            "the query plan gives {} columns where {} were planned",
            physical.fields().len(),
            logical.fields().len()
        )));
    }
    let fields: Vec<Field> = logical
        .fields()
        .iter()
        .zip(physical.fields())
        .map(|(l, p)| {
            Field::new(
                l.name(),
                p.data_type().clone(),
                p.is_nullable() || l.is_nullable(),
            )
            .with_metadata(l.metadata().clone())
        })
        .collect();
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        logical.metadata().clone(),
    )))
}

/// Whether a batch has the columns of the result's schema (count and types).
fn batch_fits(batch: &RecordBatch, schema: &Schema) -> Result<(), QueryError> {
    let mismatch = |what: String| {
        QueryError::Internal(format!(
            "the query's rows do not have the columns it declared ({what}); please report \
             the query"
        ))
    };
    if batch.num_columns() != schema.fields().len() {
        return Err(mismatch(format!(
            "{} columns, {} declared",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !column.data_type().equals_datatype(field.data_type()) {
            return Err(mismatch(format!(
                "column {} is {}, declared {}",
                field.name(),
                adql::humanise(&column.data_type().to_string()),
                adql::humanise(&field.data_type().to_string())
            )));
        }
    }
    Ok(())
}

/// An engine error as its user should read it: in ADQL terms, and a query that does not fit
/// in the memory pool said so.
fn failure(message: &str) -> QueryError {
    if message.contains("Resources exhausted") {
        return QueryError::Invalid(
            "the query needs more memory than the service allows (the queries running at once \
             share [limits] query_memory_mb): add conditions that select fewer rows, select \
             fewer columns, or ask for fewer rows (MAXREC); an asynchronous job may run it when \
             the service is less busy"
                .into(),
        );
    }
    QueryError::Invalid(adql::humanise(message))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int32Array, Int64Array};
    use datafusion::arrow::datatypes::DataType;
    use datafusion::catalog::streaming::StreamingTable;
    use datafusion::execution::{SendableRecordBatchStream, TaskContext};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use datafusion::physical_plan::streaming::PartitionStream;

    use super::*;
    use crate::engine::{Limits, LimitsConfig, Runtimes};

    /// A table source that declares the column `x INTEGER` and yields `batch`, whatever its
    /// columns are (as an operator whose declared schema is wrong would).
    #[derive(Debug)]
    struct Declared {
        schema: SchemaRef,
        batch: RecordBatch,
    }

    impl PartitionStream for Declared {
        fn schema(&self) -> &SchemaRef {
            &self.schema
        }

        fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
            let batch = self.batch.clone();
            Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::iter([Ok(batch)]),
            ))
        }
    }

    /// `SELECT * FROM t` as CSV, over a table `t` that yields `batch`.
    async fn run(batch: RecordBatch) -> Result<String, QueryError> {
        let declared = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        let ctx = SessionContext::new();
        adql::register(&ctx);
        let table = StreamingTable::try_new(
            declared.clone(),
            vec![Arc::new(Declared {
                schema: declared,
                batch,
            })],
        )
        .map_err(|e| QueryError::Internal(e.to_string()))?;
        ctx.register_table("t", Arc::new(table))
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let plan = ctx
            .sql("SELECT * FROM t")
            .await
            .map_err(|e| QueryError::Internal(e.to_string()))?
            .into_unoptimized_plan();
        let engine = Engine::over(
            ctx,
            Runtimes::single(tokio::runtime::Handle::current()),
            Limits {
                default_maxrec: 100,
                hard_maxrec: 100,
                sync_timeout: 0,
            },
            LimitsConfig::default(),
        );
        let req = QueryRequest {
            plan,
            maxrec: 100,
            format: Format::Csv,
            info: TableInfo::default(),
            schema: None,
        };
        let result = engine.stream(req, None, Lane::Slow, false).await?;
        let chunks: Vec<Bytes> = result.chunks.collect().await;
        Ok(chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect())
    }

    fn batch_of(column: datafusion::arrow::array::ArrayRef) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "x",
            column.data_type().clone(),
            false,
        )]));
        RecordBatch::try_new(schema, vec![column]).expect("a batch of one column")
    }

    #[tokio::test]
    async fn a_batch_unlike_the_declared_columns_fails_before_the_first_byte() {
        // The declared INTEGER column streams.
        let ok = run(batch_of(Arc::new(Int32Array::from(vec![7, 8]))))
            .await
            .expect("the declared type streams");
        assert_eq!(ok.lines().collect::<Vec<_>>(), ["x", "7", "8"]);
        // A BIGINT batch where INTEGER was declared is an error, not a header and then a
        // failure: no chunk is produced at all.
        match run(batch_of(Arc::new(Int64Array::from(vec![7_i64, 8])))).await {
            Err(QueryError::Internal(m)) => {
                assert!(m.contains("do not have the columns it declared"), "{m}");
                assert!(m.contains("column x is BIGINT, declared INTEGER"), "{m}");
            }
            Err(e) => panic!("another error: {e:?}"),
            Ok(body) => panic!("streamed: {body:?}"),
        }
    }
}
