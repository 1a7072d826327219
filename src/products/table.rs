//! `ivoa.obscore` as served: the stored HATS table, with `access_url` made absolute.
//!
//! Ingest stores `access_url` relative to the collection (`demo/images/x.fits`), because the
//! address clients reach the server by is not known then (and changes when a data centre moves
//! the server or puts a proxy in front). [`ObscoreTable`] wraps the stored table and prefixes
//! every value with `{base}/data/` as batches stream out, so TAP, SIA and SSA answers all carry
//! working URLs. The base is the configured `public_url`, else `http://{bind}`.
//!
//! Filters on `access_url` are not pushed into the scan (they are evaluated on the absolute
//! value above it); every other filter, and so HEALPix pruning, goes to the stored table as
//! before. The schema, field metadata included, is the stored table's.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

/// The served ObsCore table (see the module documentation).
#[derive(Debug)]
pub struct ObscoreTable {
    inner: Arc<dyn TableProvider>,
    /// Index of `access_url` in the schema.
    url_index: Option<usize>,
    /// What relative URLs are prefixed with (ends with `/`).
    prefix: Arc<str>,
}

impl ObscoreTable {
    /// Wraps the stored table; `base` is the server's public base URL (no trailing slash).
    pub fn new(inner: Arc<dyn TableProvider>, base: &str) -> Self {
        let schema = inner.schema();
        let url_index = schema
            .fields()
            .iter()
            .position(|f| f.name() == "access_url" && f.data_type() == &DataType::Utf8);
        ObscoreTable {
            inner,
            url_index,
            prefix: format!("{}/data/", base.trim_end_matches('/')).into(),
        }
    }
}

fn mentions_url(e: &Expr) -> bool {
    e.column_refs().iter().any(|c| c.name == "access_url")
}

#[async_trait]
impl TableProvider for ObscoreTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let inner = self.inner.supports_filters_pushdown(filters)?;
        Ok(filters
            .iter()
            .zip(inner)
            .map(|(f, p)| {
                if mentions_url(f) {
                    TableProviderFilterPushDown::Unsupported
                } else {
                    p
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let pushed: Vec<Expr> = filters
            .iter()
            .filter(|f| !mentions_url(f))
            .cloned()
            .collect();
        let plan = self.inner.scan(state, projection, &pushed, limit).await?;
        let Some(url) = self.url_index else {
            return Ok(plan);
        };
        let column = match projection {
            Some(p) => p.iter().position(|&i| i == url),
            None => Some(url),
        };
        match column {
            None => Ok(plan),
            Some(column) => Ok(Arc::new(PrefixExec::new(plan, column, self.prefix.clone()))),
        }
    }
}

/// Prefixes the values of one string column of its input; everything else passes through.
#[derive(Debug)]
pub struct PrefixExec {
    input: Arc<dyn ExecutionPlan>,
    column: usize,
    prefix: Arc<str>,
    properties: Arc<PlanProperties>,
}

impl PrefixExec {
    fn new(input: Arc<dyn ExecutionPlan>, column: usize, prefix: Arc<str>) -> Self {
        let properties = input.properties().clone();
        PrefixExec {
            input,
            column,
            prefix,
            properties,
        }
    }
}

impl DisplayAs for PrefixExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "PrefixExec: column={} prefix={}",
            self.column, self.prefix
        )
    }
}

/// `prefix` + each value of `a` (NULL stays NULL; values that are already absolute URLs are
/// kept as they are).
fn prefixed(a: &ArrayRef, prefix: &str) -> Result<ArrayRef> {
    let s = a.as_string_opt::<i32>().ok_or_else(|| {
        DataFusionError::Internal(format!("access_url is {}, not Utf8", a.data_type()))
    })?;
    let mut b =
        StringBuilder::with_capacity(s.len(), s.value_data().len() + s.len() * prefix.len());
    for v in s.iter() {
        match v {
            None => b.append_null(),
            Some(v) if v.contains("://") => b.append_value(v),
            Some(v) => b.append_value(format!("{prefix}{v}")),
        }
    }
    Ok(Arc::new(b.finish()))
}

impl ExecutionPlan for PrefixExec {
    fn name(&self) -> &str {
        "PrefixExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("PrefixExec needs one child".into()))?;
        Ok(Arc::new(PrefixExec::new(
            input,
            self.column,
            self.prefix.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let stream = self.input.execute(partition, context)?;
        let schema = stream.schema();
        let column = self.column;
        let prefix = self.prefix.clone();
        let mapped = stream.map(move |batch| {
            let batch = batch?;
            let mut columns = batch.columns().to_vec();
            if let Some(c) = columns.get_mut(column) {
                *c = prefixed(c, &prefix)?;
            }
            Ok(RecordBatch::try_new(batch.schema(), columns)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, mapped)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;

    #[test]
    fn prefixes_relative_urls_only() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("demo/images/a.fits"),
            None,
            Some("https://elsewhere.org/b.fits"),
        ]));
        let out = prefixed(&a, "http://h:1/data/").unwrap();
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "http://h:1/data/demo/images/a.fits");
        assert!(out.is_null(1));
        assert_eq!(out.value(2), "https://elsewhere.org/b.fits");
    }
}
