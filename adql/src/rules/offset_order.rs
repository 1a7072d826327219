//! `ORDER BY … OFFSET m` without `TOP` below an aggregate or a join.
//!
//! DataFusion 55's physical optimizer (EnforceSorting) removes a sort whose order no operator
//! above requires; `GlobalLimitExec` with a skip and no fetch does not say it requires its
//! input's order, so under a `GROUP BY` the sort went and `OFFSET 1` skipped whichever row came
//! first: `SELECT d.v1, COUNT(*) FROM (SELECT … ORDER BY v0 OFFSET 1) AS d GROUP BY d.v1` counted
//! the wrong rows, silently (upstream apache/datafusion#23534, open).
//!
//! This rule numbers the rows in the order instead, and keeps those after the first `m`:
//!
//! ```text
//! Limit(skip m) → [Projection …] → Sort(e) → X
//!   ⇒ [Projection …] → Sort(e) → Projection(X's columns) → Filter(n > m)
//!        → Window(n = ROW_NUMBER() OVER (ORDER BY e)) → X
//! ```
//!
//! The window requires its order, which no optimizer removes; the sort above it stays for the
//! order of the result (on rows already in that order). A plan reading columns of an outer
//! query is left alone (its decorrelation is DataFusion's and `rules::scalar_subquery`'s).

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::logical_plan::{FetchType, SkipType};
use datafusion::logical_expr::{
    lit, Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, Projection, Sort,
};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule.
#[derive(Debug, Default)]
pub(crate) struct OffsetKeepsOrder;

impl AnalyzerRule for OffsetKeepsOrder {
    fn name(&self) -> &str {
        "adql_offset_keeps_order"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut n = 0usize;
        plan.transform_up_with_subqueries(|node| rewrite(node, &mut n))
            .data()
    }
}

fn rewrite(node: LogicalPlan, n: &mut usize) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Limit(limit) = &node else {
        return Ok(Transformed::no(node));
    };
    let (Ok(SkipType::Literal(skip)), Ok(FetchType::Literal(None))) =
        (limit.get_skip_type(), limit.get_fetch_type())
    else {
        return Ok(Transformed::no(node));
    };
    if skip == 0
        || node
            .exists(|p| Ok(p.contains_outer_reference()))
            .unwrap_or(true)
    {
        return Ok(Transformed::no(node));
    }
    // The projections between the limit and its sort, top first.
    let mut projections: Vec<Projection> = Vec::new();
    let mut below = limit.input.as_ref();
    while let LogicalPlan::Projection(p) = below {
        projections.push(p.clone());
        below = p.input.as_ref();
    }
    let LogicalPlan::Sort(sort) = below else {
        return Ok(Transformed::no(node));
    };
    if sort.fetch.is_some() {
        return Ok(Transformed::no(node));
    }
    let input = sort.input.as_ref().clone();
    let columns: Vec<Expr> = input
        .schema()
        .iter()
        .map(|f| Expr::Column(Column::from(f)))
        .collect();
    let rank = format!("__adql_offset{n}");
    *n += 1;
    let numbered = row_number()
        .order_by(sort.expr.clone())
        .build()?
        .alias(&rank);
    let kept = LogicalPlanBuilder::from(input)
        .window(vec![numbered])?
        .filter(Expr::Column(Column::from_name(rank)).gt(lit(skip as u64)))?
        .project(columns)?
        .build()?;
    let mut plan = LogicalPlan::Sort(Sort {
        expr: sort.expr.clone(),
        input: Arc::new(kept),
        fetch: None,
    });
    for p in projections.into_iter().rev() {
        plan = LogicalPlan::Projection(Projection::try_new(p.expr, Arc::new(plan))?);
    }
    Ok(Transformed::yes(plan))
}

#[cfg(test)]
mod tests {
    use crate::rules::scalar_subquery::tests::rows;

    #[tokio::test]
    async fn offset_skips_rows_of_the_order_below_a_group_by() {
        // t: hip 1..=6, sn 5, 75, 5, 15, 5, 55. Without the last two hips (6, 5): sn 15, 5, 75, 5.
        let q =
            "SELECT d.sn, COUNT(*) AS n FROM (SELECT hip, sn FROM t ORDER BY hip DESC OFFSET 2) \
                 AS d GROUP BY d.sn ORDER BY d.sn";
        assert_eq!(rows(q).await, ["5|2", "15|1", "75|1"]);
        // At the top the rows keep the order.
        let q = "SELECT hip FROM t ORDER BY hip DESC OFFSET 2";
        assert_eq!(rows(q).await, ["4", "3", "2", "1"]);
    }
}
