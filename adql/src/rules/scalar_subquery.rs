//! Correlated scalar subqueries that DataFusion cannot decorrelate.
//!
//! DataFusion 55 answers a correlated scalar subquery by pulling its correlated predicates up
//! into a join, which it can do only for an aggregated subquery correlated by equalities.
//! A non-aggregated one (`(SELECT b.vmag FROM t AS b WHERE b.hip = a.hip)`) was refused by the
//! analyzer ("Correlated scalar subquery must be aggregated to return at most one row"), and
//! one correlated by anything else (`… WHERE b.plx > a.plx + 5`) failed in the physical
//! planner ("Physical plan does not support logical expression ScalarSubquery"): valid SQL-92
//! (and ADQL with subqueries as values) refused.
//!
//! After type coercion this rule writes those subqueries, in a `WHERE` (Filter) or a select
//! list (Projection), as joins (a "magic set" decorrelation):
//!
//! ```text
//! D = SELECT DISTINCT c1 AS o1, … FROM I               the outer values the subquery reads
//! R = the subquery over D ⋈ (its FROM) ON (its WHERE, outer columns read from D), grouped by D
//! I LEFT JOIN R ON I.c1 IS NOT DISTINCT FROM R.o1 AND …  and the subquery replaced by R's value
//! ```
//!
//! An aggregate without GROUP BY gives one row even for no input (SQL-92 7.9: COUNT 0, the
//! others NULL): its join is a LEFT JOIN that keeps every D row, and each aggregate counts only
//! the rows that matched (`FILTER (WHERE marker IS NOT NULL)`, which avoids the "COUNT bug").
//! Every other subquery may give any number of rows: its join is an inner join, and its rows
//! are counted per D row; more than one is the error SQL-92 asks for (6.11, "cardinality
//! violation"), located at the subquery, and none is NULL (the LEFT JOIN back).
//!
//! In a WHERE, the terms without such a subquery are applied first, so that D holds the outer
//! values of the rows that can pass (the subquery is computed for those only, as it would be
//! evaluated for them only).
//!
//! D and I are the same plan read twice (DataFusion has no common subexpressions of plans;
//! an outer query with `RAND()` is left to DataFusion, as both reads must give the same rows);
//! the joins and aggregates are DataFusion's, bounded by the session's memory pool and the
//! query's time limit like any other. Shapes left to DataFusion (and refused as before): a
//! subquery with `TOP`/`LIMIT`, a correlation inside a join or a nested query of the subquery,
//! one reading columns of a query further out, and subqueries elsewhere than in WHERE or a
//! select list.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, DataFusionError, Result, ScalarValue};
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_aggregate::expr_fn::first_value;
use datafusion::logical_expr::expr::{AggregateFunction, Exists, InSubquery, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::logical_plan::check_subquery_expr;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, ColumnarValue, Distinct, Expr, ExprSchemable, Filter, JoinType,
    LogicalPlan, LogicalPlanBuilder, Operator, Projection, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Subquery, SubqueryAlias, Volatility,
};
use datafusion::optimizer::decorrelate::PullUpCorrelatedExpr;
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule (after type coercion).
#[derive(Debug, Default)]
pub(crate) struct CorrelatedScalarSubqueries;

impl AnalyzerRule for CorrelatedScalarSubqueries {
    fn name(&self) -> &str {
        "adql_correlated_scalar_subqueries"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Filter(_) | LogicalPlan::Projection(_) => rewrite_node(node),
            other => Ok(Transformed::no(other)),
        })
        .data()
    }
}

/// Whether DataFusion leaves `s` (a scalar subquery of `node`) undecorrelated.
fn datafusion_refuses(node: &LogicalPlan, s: &Subquery) -> bool {
    if s.outer_ref_columns.is_empty() || s.subquery.schema().fields().len() != 1 {
        return false;
    }
    if check_subquery_expr(node, &s.subquery, &Expr::ScalarSubquery(s.clone())).is_err() {
        return true;
    }
    let mut pull_up = PullUpCorrelatedExpr::new().with_need_handle_count_bug(true);
    match s.subquery.as_ref().clone().rewrite(&mut pull_up) {
        Ok(_) => !pull_up.can_pull_up,
        Err(_) => true,
    }
}

/// Whether `e` holds a scalar subquery of `node` that DataFusion leaves undecorrelated.
fn has_target(node: &LogicalPlan, e: &Expr) -> bool {
    e.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(s) if datafusion_refuses(node, s))))
        .unwrap_or(false)
}

fn rewrite_node(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let mut targets = false;
    node.apply_expressions(|e| {
        targets |= has_target(&node, e);
        Ok(TreeNodeRecursion::Continue)
    })?;
    if !targets {
        return Ok(Transformed::no(node));
    }
    // The rows the subqueries are computed for. In a WHERE, the terms without such a
    // subquery select them first (AND is commutative), so that the outer values the
    // subqueries read are those of the rows that can pass, as a correlated subquery is
    // evaluated only for them.
    let (input, condition) = match &node {
        LogicalPlan::Filter(f) => {
            // (A term reading a query further out stays above: DataFusion decorrelates it.)
            let (with, without): (Vec<Expr>, Vec<Expr>) =
                split_conjunction_owned(f.predicate.clone())
                    .into_iter()
                    .partition(|t| has_target(&node, t) || t.contains_outer());
            let input = match conjunction(without) {
                Some(p) => Arc::new(LogicalPlan::Filter(Filter::try_new(
                    p,
                    Arc::clone(&f.input),
                )?)),
                None => Arc::clone(&f.input),
            };
            (input, conjunction(with))
        }
        _ => (Arc::new(node.inputs()[0].clone()), None),
    };
    let mut joined = input.as_ref().clone();
    let mut n = 0usize;
    let mut rewrite = |e: Expr, joined: &mut LogicalPlan| -> Result<Transformed<Expr>> {
        e.transform_up(|e| match e {
            Expr::ScalarSubquery(s) if datafusion_refuses(&node, &s) => {
                match decorrelate(&s, &input, n)? {
                    Some((r, on, value)) => {
                        n += 1;
                        *joined = LogicalPlanBuilder::from(joined.clone())
                            .join_on(r, JoinType::Left, on)?
                            .build()?;
                        Ok(Transformed::yes(value))
                    }
                    None => Ok(Transformed::no(Expr::ScalarSubquery(s))),
                }
            }
            other => Ok(Transformed::no(other)),
        })
    };
    let plan = match &node {
        LogicalPlan::Filter(_) => {
            let Some(condition) = condition else {
                return Ok(Transformed::no(node));
            };
            let predicate = rewrite(condition, &mut joined)?;
            if !predicate.transformed {
                return Ok(Transformed::no(node));
            }
            let filtered = LogicalPlan::Filter(Filter::try_new(predicate.data, Arc::new(joined))?);
            // Back to the columns of the input.
            let columns = input
                .schema()
                .iter()
                .map(|f| Expr::Column(Column::from(f)))
                .collect();
            LogicalPlan::Projection(Projection::try_new(columns, Arc::new(filtered))?)
        }
        LogicalPlan::Projection(p) => {
            let names = NamePreserver::new_for_projection();
            let mut changed = false;
            let mut exprs = Vec::with_capacity(p.expr.len());
            for e in &p.expr {
                let name = names.save(e);
                let r = rewrite(e.clone(), &mut joined)?;
                changed |= r.transformed;
                exprs.push(name.restore(r.data));
            }
            if !changed {
                return Ok(Transformed::no(node));
            }
            LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(joined))?)
        }
        _ => return Ok(Transformed::no(node)),
    };
    Ok(Transformed::yes(plan))
}

/// The nodes of a subquery above its correlated WHERE, top first.
enum Step {
    Project(Projection),
    Filter(Expr),
    Aggregate(Aggregate),
    Distinct,
    Alias(SubqueryAlias),
    /// A sort without a limit: the order of a scalar subquery's rows does not matter.
    Sort,
}

/// A subquery split into its steps, the correlated condition and its uncorrelated FROM.
struct Shape {
    steps: Vec<Step>,
    condition: Option<Expr>,
    from: LogicalPlan,
}

fn has_outer(plan: &LogicalPlan) -> bool {
    plan.exists(|p| Ok(p.contains_outer_reference()))
        .unwrap_or(true)
}

fn has_nested_correlated(plan: &LogicalPlan) -> bool {
    plan.exists(|p| {
        let mut found = false;
        p.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarSubquery(s)
                | Expr::Exists(Exists { subquery: s, .. })
                | Expr::InSubquery(InSubquery { subquery: s, .. }) = e
                {
                    found |= !s.outer_ref_columns.is_empty() || has_outer(&s.subquery);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(found)
    })
    .unwrap_or(true)
}

impl Shape {
    fn of(plan: &LogicalPlan) -> Option<Shape> {
        let mut steps = Vec::new();
        let mut p = plan.clone();
        loop {
            if !has_outer(&p) {
                return Some(Shape {
                    steps,
                    condition: None,
                    from: p,
                });
            }
            p = match p {
                LogicalPlan::Filter(f) => {
                    // The WHERE: this filter and those right below it, over a FROM without
                    // outer references.
                    let mut terms = vec![f.predicate.clone()];
                    let mut below = Arc::unwrap_or_clone(f.input);
                    while let LogicalPlan::Filter(g) = below {
                        terms.push(g.predicate.clone());
                        below = Arc::unwrap_or_clone(g.input);
                    }
                    if has_outer(&below) {
                        if steps.iter().any(|s| matches!(s, Step::Aggregate(_))) {
                            // A filter between an aggregate and the correlated WHERE (a
                            // HAVING of a derived table): not this rule's shape.
                            return None;
                        }
                        // A filter above the correlated one (of a projection's output, say).
                        steps.push(Step::Filter(conjunction(terms)?));
                        below
                    } else {
                        return Some(Shape {
                            steps,
                            condition: conjunction(terms),
                            from: below,
                        });
                    }
                }
                LogicalPlan::Projection(pr) => {
                    let input = Arc::clone(&pr.input);
                    steps.push(Step::Project(pr));
                    Arc::unwrap_or_clone(input)
                }
                LogicalPlan::Aggregate(a) => {
                    if steps.iter().any(|s| matches!(s, Step::Aggregate(_))) {
                        return None;
                    }
                    let input = Arc::clone(&a.input);
                    steps.push(Step::Aggregate(a));
                    Arc::unwrap_or_clone(input)
                }
                LogicalPlan::Distinct(Distinct::All(input)) => {
                    steps.push(Step::Distinct);
                    Arc::unwrap_or_clone(input)
                }
                LogicalPlan::SubqueryAlias(a) => {
                    let input = Arc::clone(&a.input);
                    steps.push(Step::Alias(a));
                    Arc::unwrap_or_clone(input)
                }
                LogicalPlan::Sort(s) if s.fetch.is_none() => {
                    steps.push(Step::Sort);
                    Arc::unwrap_or_clone(s.input)
                }
                _ => return None,
            };
        }
    }

    /// The aggregate without GROUP BY that makes this subquery give exactly one row.
    fn global_aggregate(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Aggregate(a) if a.group_expr.is_empty()))
    }
}

/// `outer_ref(c)` → the column of D that carries `c`.
fn substitute(e: Expr, outer: &[(Column, Column)]) -> Result<Expr> {
    e.transform_up(|e| match e {
        Expr::OuterReferenceColumn(f, c) => match outer.iter().find(|(o, _)| *o == c) {
            Some((_, d)) => Ok(Transformed::yes(Expr::Column(d.clone()))),
            None => Ok(Transformed::no(Expr::OuterReferenceColumn(f, c))),
        },
        other => Ok(Transformed::no(other)),
    })
    .data()
}

/// Every outer reference of `e` is one `outer` maps.
fn all_mapped(e: &Expr, outer: &[(Column, Column)]) -> bool {
    !e.exists(|e| {
        Ok(matches!(e, Expr::OuterReferenceColumn(_, c) if !outer.iter().any(|(o, _)| o == c)))
    })
    .unwrap_or(true)
}

/// R, the join condition of `I LEFT JOIN R` and the expression that replaces the subquery;
/// None when the subquery is not of a shape this rule writes.
fn decorrelate(
    s: &Subquery,
    input: &Arc<LogicalPlan>,
    n: usize,
) -> Result<Option<(LogicalPlan, Vec<Expr>, Expr)>> {
    let plan = s.subquery.as_ref();
    if has_nested_correlated(plan) {
        return Ok(None);
    }
    // The outer rows are read twice (D and the join back): both reads must give the same
    // rows, which RAND() in them would not.
    let volatile = input
        .exists(|p| Ok(p.expressions().iter().any(Expr::is_volatile)))
        .unwrap_or(true);
    if volatile {
        return Ok(None);
    }
    let Some(shape) = Shape::of(plan) else {
        return Ok(None);
    };
    // The outer columns the subquery reads, each of them a column of the input.
    let mut outer: Vec<(Column, Column)> = Vec::new();
    let mut keys = Vec::new();
    for r in &s.outer_ref_columns {
        let Expr::OuterReferenceColumn(_, c) = r else {
            return Ok(None);
        };
        if outer.iter().any(|(o, _)| o == c) {
            continue;
        }
        if input.schema().qualified_field_from_column(c).is_err() {
            return Ok(None);
        }
        let d = Column::from_name(format!("__adql_sq{n}_o{}", outer.len()));
        keys.push(Expr::Column(c.clone()).alias(d.name.clone()));
        outer.push((c.clone(), d));
    }
    if outer.is_empty() {
        return Ok(None);
    }
    let mapped_everywhere = {
        let mut ok = true;
        plan.apply(|p| {
            p.apply_expressions(|e| {
                ok &= all_mapped(e, &outer);
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        ok
    };
    if !mapped_everywhere {
        return Ok(None);
    }
    let d_columns: Vec<Expr> = outer.iter().map(|(_, d)| Expr::Column(d.clone())).collect();
    let distinct_outer = LogicalPlanBuilder::from(input.as_ref().clone())
        .project(keys)?
        .distinct()?
        .build()?;

    let global = shape.global_aggregate();
    let marker = Column::from_name(format!("__adql_sq{n}_m"));
    let condition = shape.condition.map(|c| substitute(c, &outer)).transpose()?;
    let mut cur = if global {
        // Every D row stays (an aggregate of no rows is a row); the marker tells the rows
        // that matched from the one a LEFT JOIN adds.
        let mut columns: Vec<Expr> = shape
            .from
            .schema()
            .iter()
            .map(|f| Expr::Column(Column::from(f)))
            .collect();
        columns.push(Expr::Literal(ScalarValue::Boolean(Some(true)), None).alias(&marker.name));
        let from = LogicalPlanBuilder::from(shape.from)
            .project(columns)?
            .build()?;
        LogicalPlanBuilder::from(distinct_outer.clone())
            .join_on(from, JoinType::Left, condition)?
            .build()?
    } else {
        LogicalPlanBuilder::from(distinct_outer.clone())
            .join_on(shape.from, JoinType::Inner, condition)?
            .build()?
    };
    let mut below_aggregate = true;
    for step in shape.steps.into_iter().rev() {
        cur = match step {
            Step::Filter(p) => {
                LogicalPlan::Filter(Filter::try_new(substitute(p, &outer)?, Arc::new(cur))?)
            }
            Step::Project(pr) => {
                let names = NamePreserver::new_for_projection();
                let mut exprs = Vec::with_capacity(pr.expr.len() + outer.len() + 1);
                for e in pr.expr {
                    let name = names.save(&e);
                    exprs.push(name.restore(substitute(e, &outer)?));
                }
                exprs.extend(d_columns.iter().cloned());
                if global && below_aggregate {
                    exprs.push(Expr::Column(marker.clone()));
                }
                LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(cur))?)
            }
            Step::Aggregate(a) => {
                below_aggregate = false;
                let names = NamePreserver::new_for_projection();
                let mut group = d_columns.clone();
                for e in a.group_expr {
                    let name = names.save(&e);
                    group.push(name.restore(substitute(e, &outer)?));
                }
                let mut aggr = Vec::with_capacity(a.aggr_expr.len());
                for e in a.aggr_expr {
                    let name = names.save(&e);
                    let mut e = substitute(e, &outer)?;
                    if global {
                        e = only_matched(e, &marker)?;
                    }
                    aggr.push(name.restore(e));
                }
                LogicalPlan::Aggregate(Aggregate::try_new(Arc::new(cur), group, aggr)?)
            }
            Step::Distinct => LogicalPlan::Distinct(Distinct::All(Arc::new(cur))),
            Step::Alias(a) => {
                LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(cur), a.alias)?)
            }
            Step::Sort => cur,
        };
    }
    // The subquery's value, beside the D columns.
    let (qualifier, field) = plan.schema().qualified_field(0);
    let value_name = format!("__adql_sq{n}_v");
    let value = Expr::Column(Column::from((qualifier, field)));
    let mut columns: Vec<Expr> = outer
        .iter()
        .map(|(_, d)| Expr::Column(Column::from_name(d.name.clone())))
        .collect();
    let (r, replacement) = if global {
        columns.push(value.alias(&value_name));
        let r = LogicalPlanBuilder::from(cur).project(columns)?.build()?;
        (r, Expr::Column(Column::from_name(value_name)))
    } else {
        let rows_name = format!("__adql_sq{n}_n");
        columns.push(value.alias(&value_name));
        let r = LogicalPlanBuilder::from(cur)
            .project(columns)?
            .aggregate(
                outer
                    .iter()
                    .map(|(_, d)| Expr::Column(Column::from_name(d.name.clone()))),
                vec![
                    count_all().alias(&rows_name),
                    first_value(Expr::Column(Column::from_name(value_name.clone())), vec![])
                        .alias(&value_name),
                ],
            )?
            .build()?;
        let at = position(plan);
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(
            OneRow::udf(at),
            vec![
                Expr::Column(Column::from_name(rows_name)),
                Expr::Column(Column::from_name(value_name)),
            ],
        ));
        (r, call)
    };
    let on = outer
        .iter()
        .map(|(c, d)| {
            Expr::BinaryExpr(BinaryExpr::new(
                Box::new(Expr::Column(c.clone())),
                Operator::IsNotDistinctFrom,
                Box::new(Expr::Column(Column::from_name(d.name.clone()))),
            ))
        })
        .collect();
    // The replacement keeps the subquery's type (a NULL-extended row gives NULL).
    let t = Expr::ScalarSubquery(s.clone()).get_type(input.schema())?;
    let replacement = if replacement.get_type(r.schema()).ok().as_ref() == Some(&t) {
        replacement
    } else {
        replacement.cast_to(&t, r.schema())?
    };
    Ok(Some((r, on, replacement)))
}

/// Where a subquery is in the ADQL text, as well as its columns tell: the first column
/// reference with a position (DataFusion keeps the spans of column references only).
fn position(plan: &LogicalPlan) -> Option<(u64, u64)> {
    let mut at: Option<(u64, u64)> = None;
    let _ = plan.apply_with_subqueries(|p| {
        p.apply_expressions(|e| {
            e.apply(|e| {
                let span = match e {
                    Expr::Column(c) | Expr::OuterReferenceColumn(_, c) => c.spans().first(),
                    _ => None,
                };
                if let Some(span) = span {
                    let here = (span.start.line, span.start.column);
                    if at.is_none_or(|a| here < a) {
                        at = Some(here);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    at
}

/// An aggregate of `e` counts only the rows that matched the WHERE.
fn only_matched(e: Expr, marker: &Column) -> Result<Expr> {
    e.transform_up(|e| match e {
        Expr::AggregateFunction(mut f) => {
            let matched = Expr::Column(marker.clone()).is_not_null();
            f.params.filter = Some(Box::new(match f.params.filter.take() {
                Some(old) => old.and(matched),
                None => matched,
            }));
            Ok(Transformed::yes(Expr::AggregateFunction(
                AggregateFunction {
                    func: f.func,
                    params: f.params,
                },
            )))
        }
        other => Ok(Transformed::no(other)),
    })
    .data()
}

/// `adql_scalar_subquery_row(rows, value)`: `value` when the subquery gave at most one row,
/// else the error SQL-92 asks for. `at` is where the subquery is in the ADQL text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct OneRow {
    at: Option<(u64, u64)>,
    signature: Signature,
}

impl OneRow {
    fn udf(at: Option<(u64, u64)>) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(OneRow {
            at,
            signature: Signature::any(2, Volatility::Immutable),
        }))
    }
}

impl ScalarUDFImpl for OneRow {
    fn name(&self) -> &str {
        "adql_scalar_subquery_row"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        arg_types.get(1).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("{} takes two arguments", self.name()))
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [rows, value] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes two arguments",
                self.name()
            )));
        };
        let rows = rows.to_array(args.number_rows)?;
        let rows = rows
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| DataFusionError::Internal("the row count is not a BIGINT".into()))?;
        if rows.iter().any(|r| r.is_some_and(|r| r > 1)) {
            let at = match self.at {
                Some((line, column)) => format!(" (line {line}, column {column})"),
                None => String::new(),
            };
            return Err(DataFusionError::Execution(format!(
                "more than one row returned by a subquery used as a value{at}: a subquery \
                 used as a value must give at most one row (use an aggregate such as MAX, or \
                 a condition that selects one row)"
            )));
        }
        Ok(value.clone())
    }
}
