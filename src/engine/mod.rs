//! The engine: one DataFusion session over every served catalog (and TAP_SCHEMA), the runtime
//! queries execute on, the query limits, and the result streams. Protocol fronts get an
//! [`Engine`] handle, never the whole application: they plan (ADQL text through
//! [`Engine::plan_adql`], or DataFusion expressions over [`Engine::ctx`]) and hand the plan to
//! [`Engine::stream`], which executes it and encodes the batches as they come.
//!
//! Knows no HTTP: what comes out is a stream of encoded chunks ([`ResultStream`]) and typed
//! errors ([`QueryError`]); `dali` turns them into responses.

mod error;
mod session;
mod stream;
pub mod tap_schema;

use std::sync::Arc;

use catalogs::HatsTable;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{LogicalPlan, ScalarUDF};
use datafusion::prelude::SessionContext;

pub use error::QueryError;
pub use session::open;
pub use stream::{QueryRequest, ResultStream, StreamEnd, TimeLimit};
pub use tap_schema::TapMetadata;

/// Limits every query is held to (`[tap]` in vostok.toml: they apply to every protocol).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Rows returned when the client gives no MAXREC.
    pub default_maxrec: u64,
    /// Largest MAXREC honoured.
    pub hard_maxrec: u64,
    /// Seconds a synchronous query may run (0: no limit).
    pub sync_timeout: u64,
}

/// A handle on the query engine: what every protocol front may use.
pub struct Engine {
    ctx: SessionContext,
    runtime: tokio::runtime::Handle,
    tables: Vec<(String, Arc<HatsTable>)>,
    metadata: TapMetadata,
    limits: Limits,
}

impl Engine {
    /// The DataFusion context with every table registered.
    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
    }

    /// A copy of the shared session state (to plan with, or to extend for one query).
    pub fn session(&self) -> SessionState {
        self.ctx.state()
    }

    /// The served catalogs, by qualified lower-case name.
    pub fn tables(&self) -> &[(String, Arc<HatsTable>)] {
        &self.tables
    }

    /// A served catalog by qualified name (case-insensitive).
    pub fn table(&self, name: &str) -> Option<&Arc<HatsTable>> {
        self.tables
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, t)| t)
    }

    /// Table and column metadata (TAP_SCHEMA, VOSI tables).
    pub fn metadata(&self) -> &TapMetadata {
        &self.metadata
    }

    /// The query limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A registered function (the ADQL geometry functions, …).
    pub fn udf(&self, name: &str) -> Result<Arc<ScalarUDF>, QueryError> {
        use datafusion::execution::FunctionRegistry;
        self.ctx
            .udf(name)
            .map_err(|e| QueryError::Internal(e.to_string()))
    }

    /// Parses, validates and plans ADQL with `session`. Parsing and planning recurse over the
    /// query tree: they run on the query runtime, whose threads have large stacks, not on an
    /// HTTP worker's 2 MiB (a 290-operator expression overflowed one; adql caps nesting at 300
    /// operators).
    pub async fn plan_adql(
        &self,
        session: SessionState,
        text: String,
    ) -> Result<LogicalPlan, QueryError> {
        self.runtime
            .spawn(async move { adql::plan(&session, &text).await })
            .await
            .map_err(|e| QueryError::Internal(format!("planning failed: {e}")))?
            .map_err(|e| QueryError::Invalid(e.to_string()))
    }

    /// The time limit of synchronous queries (`[tap] sync_timeout`; 0: none).
    pub fn sync_limit(&self) -> Option<TimeLimit> {
        let secs = self.limits.sync_timeout;
        (secs > 0).then(|| TimeLimit {
            deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(secs),
            message: format!(
                "the query ran longer than the {secs} s allowed to synchronous queries and was \
                 stopped; submit it as an asynchronous job at /tap/async (TAP async, e.g. pyvo's \
                 TAPService.run_async), which may run longer"
            ),
        })
    }
}
