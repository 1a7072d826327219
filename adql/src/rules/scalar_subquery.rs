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
//! A subquery with `TOP n` (and `OFFSET m`, after its `ORDER BY`) keeps the rows `m + 1` to
//! `m + n` of each D row's, numbered by `ROW_NUMBER() OVER (PARTITION BY D ORDER BY …)`. A
//! correlation in the ON of an inner join of the subquery is a term of its WHERE (an inner
//! join's ON is a WHERE over its rows).
//!
//! Outside WHERE and the select list: in `ORDER BY` and `GROUP BY` the subquery's value is
//! computed beside the rows first (a select list of the input's columns and the value), then
//! sorted or grouped by; in a join's ON, a subquery that reads one side only is computed beside
//! that side's rows (whatever the join type: its value is one of that row's), and one that reads
//! both sides of an inner join is a WHERE over the joined rows.
//!
//! D and I are the same plan read twice (DataFusion has no common subexpressions of plans;
//! an outer query with `RAND()` is left to DataFusion, as both reads must give the same rows);
//! the joins and aggregates are DataFusion's, bounded by the session's memory pool and the
//! query's time limit like any other. Still refused, with an ADQL error located at the
//! subquery ([`refuse_remaining`]): a correlation inside an outer join or a nested query of
//! the subquery that DataFusion does not decorrelate itself, a subquery reading columns of a
//! query two levels out, one in the ON of an outer join reading both of its sides.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, DataFusionError, Result, ScalarValue};
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_aggregate::expr_fn::first_value;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::expr::{AggregateFunction, Exists, InSubquery, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::logical_plan::check_subquery_expr;
use datafusion::logical_expr::logical_plan::{FetchType, Join, SkipType};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    lit, Aggregate, BinaryExpr, ColumnarValue, Distinct, Expr, ExprFunctionExt, ExprSchemable,
    Filter, JoinType, LogicalPlan, LogicalPlanBuilder, Operator, Projection, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, SortExpr, Subquery, SubqueryAlias, Volatility,
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
        let plan = plan
            .transform_up_with_subqueries(|node| match node {
                LogicalPlan::Filter(_) | LogicalPlan::Projection(_) => rewrite_node(node),
                LogicalPlan::Sort(_) => rewrite_sort(node),
                LogicalPlan::Join(_) => rewrite_join(node),
                LogicalPlan::Aggregate(_) => rewrite_aggregate(node),
                other => Ok(Transformed::no(other)),
            })
            .data()?;
        refuse_remaining(&plan)?;
        Ok(plan)
    }
}

/// The correlated scalar subqueries neither this rule nor DataFusion answers are refused here,
/// in ADQL's words and located (DataFusion's own refusal comes later and has no position).
fn refuse_remaining(plan: &LogicalPlan) -> Result<()> {
    let mut refused: Option<Subquery> = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarSubquery(s) = e {
                    if refused.is_none() && datafusion_refuses(node, s) {
                        refused = Some(s.clone());
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    let Some(s) = refused else {
        return Ok(());
    };
    let at = match position(&s.subquery) {
        Some((line, column)) => format!(" (line {line}, column {column})"),
        None => String::new(),
    };
    Err(DataFusionError::Plan(format!(
        "this correlated subquery used as a value is not supported{at}: a subquery that reads \
         columns of a query two levels out, that is correlated inside an outer join or a \
         nested query of its own, or that sits in the ON of an outer join and reads both of \
         its sides, cannot be answered; write it as a join, or with an aggregate (MAX, MIN, …)"
    )))
}

/// `exprs` (over the columns of `input`) computed as extra columns of `input`, named
/// `{prefix}{i}`, with their correlated scalar subqueries written as joins: the plan and the
/// columns that replace `exprs`.
fn computed_beside(
    input: &Arc<LogicalPlan>,
    exprs: Vec<Expr>,
    prefix: &str,
) -> Result<(LogicalPlan, Vec<Expr>)> {
    let mut columns: Vec<Expr> = input
        .schema()
        .iter()
        .map(|f| Expr::Column(Column::from(f)))
        .collect();
    let names: Vec<String> = (0..exprs.len()).map(|i| format!("{prefix}{i}")).collect();
    for (e, name) in exprs.into_iter().zip(&names) {
        columns.push(e.alias(name.clone()));
    }
    let projection = LogicalPlan::Projection(Projection::try_new(columns, Arc::clone(input))?);
    let plan = rewrite_node(projection)?.data;
    let replacements = names
        .into_iter()
        .map(|n| Expr::Column(Column::from_name(n)))
        .collect();
    Ok((plan, replacements))
}

/// The columns of `schema_of`, read from `plan` (which has them and more).
fn back_to(plan: LogicalPlan, schema_of: &LogicalPlan) -> Result<LogicalPlan> {
    let columns = schema_of
        .schema()
        .iter()
        .map(|f| Expr::Column(Column::from(f)))
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(plan),
    )?))
}

/// `ORDER BY` a correlated scalar subquery: its value computed beside the rows first.
fn rewrite_sort(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Sort(sort) = &node else {
        return Ok(Transformed::no(node));
    };
    if !sort.expr.iter().any(|s| has_target(&node, &s.expr)) {
        return Ok(Transformed::no(node));
    }
    let targets: Vec<usize> = (0..sort.expr.len())
        .filter(|&i| has_target(&node, &sort.expr[i].expr))
        .collect();
    let exprs: Vec<Expr> = targets.iter().map(|&i| sort.expr[i].expr.clone()).collect();
    let input = with_outer_columns(&sort.input, &exprs)?;
    let (computed, columns) = computed_beside(&input, exprs, "__adql_sqk")?;
    let mut order = sort.expr.clone();
    for (&i, c) in targets.iter().zip(columns) {
        order[i].expr = c;
    }
    let sorted = LogicalPlanBuilder::from(computed)
        .sort_with_limit(order, sort.fetch)?
        .build()?;
    Ok(Transformed::yes(back_to(sorted, sort.input.as_ref())?))
}

/// `input`, or the select list it is with the columns the subqueries of `exprs` read added:
/// DataFusion adds the columns an `ORDER BY` reads to the select list below it, but not
/// those read in a subquery.
fn with_outer_columns(input: &Arc<LogicalPlan>, exprs: &[Expr]) -> Result<Arc<LogicalPlan>> {
    let LogicalPlan::Projection(p) = input.as_ref() else {
        return Ok(Arc::clone(input));
    };
    let mut missing: Vec<Column> = Vec::new();
    for e in exprs {
        e.apply(|e| {
            if let Expr::ScalarSubquery(s) = e {
                for r in &s.outer_ref_columns {
                    if let Expr::OuterReferenceColumn(_, c) = r {
                        if !p.schema.has_column(c)
                            && p.input.schema().has_column(c)
                            && !missing.contains(c)
                        {
                            missing.push(c.clone());
                        }
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
    }
    if missing.is_empty() {
        return Ok(Arc::clone(input));
    }
    let mut columns = p.expr.clone();
    columns.extend(missing.into_iter().map(Expr::Column));
    Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::clone(&p.input),
    )?)))
}

/// `GROUP BY` a correlated scalar subquery: its value computed beside the rows first.
fn rewrite_aggregate(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Aggregate(a) = &node else {
        return Ok(Transformed::no(node));
    };
    let targets: Vec<usize> = (0..a.group_expr.len())
        .filter(|&i| has_target(&node, &a.group_expr[i]))
        .collect();
    if targets.is_empty() || a.aggr_expr.iter().any(|e| has_target(&node, e)) {
        return Ok(Transformed::no(node));
    }
    // GROUPING SETS, CUBE and ROLLUP are not ADQL.
    if a.group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Ok(Transformed::no(node));
    }
    let exprs = targets.iter().map(|&i| a.group_expr[i].clone()).collect();
    let (computed, columns) = computed_beside(&a.input, exprs, "__adql_sqg")?;
    let names = NamePreserver::new_for_projection();
    let mut group = a.group_expr.clone();
    for (&i, c) in targets.iter().zip(columns) {
        let name = names.save(&group[i]);
        group[i] = name.restore(c);
    }
    let aggregate = Aggregate::try_new(Arc::new(computed), group, a.aggr_expr.clone())?;
    Ok(Transformed::yes(LogicalPlan::Aggregate(aggregate)))
}

/// A join whose ON holds a correlated scalar subquery: a subquery that reads one side only is
/// computed beside that side's rows (whatever the join type: its value is one of that row);
/// one of an inner join that reads both sides is computed over the joined rows, as a WHERE.
fn rewrite_join(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(join) = &node else {
        return Ok(Transformed::no(node));
    };
    let Some(filter) = &join.filter else {
        return Ok(Transformed::no(node));
    };
    if !has_target(&node, filter) {
        return Ok(Transformed::no(node));
    }
    let reads_only = |e: &Expr, side: &LogicalPlan| {
        !e.exists(|e| {
            Ok(
                matches!(e, Expr::ScalarSubquery(s) if s.outer_ref_columns.iter().any(|r|
                !matches!(r, Expr::OuterReferenceColumn(_, c)
                    if side.schema().has_column(c)))),
            )
        })
        .unwrap_or(true)
    };
    let mut left_exprs = Vec::new();
    let mut right_exprs = Vec::new();
    let mut both = false;
    filter.apply(|e| {
        if let Expr::ScalarSubquery(s) = e {
            if datafusion_refuses(&node, s) {
                if reads_only(e, &join.left) {
                    left_exprs.push(e.clone());
                } else if reads_only(e, &join.right) {
                    right_exprs.push(e.clone());
                } else {
                    both = true;
                }
            }
            return Ok(TreeNodeRecursion::Jump);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if both {
        if join.join_type != JoinType::Inner {
            return Ok(Transformed::no(node));
        }
        // An inner join's ON is a WHERE over its rows.
        let unfiltered = LogicalPlan::Join(Join {
            filter: None,
            ..join.clone()
        });
        let filtered = LogicalPlan::Filter(Filter::try_new(filter.clone(), Arc::new(unfiltered))?);
        let rewritten = rewrite_node(filtered)?;
        return Ok(Transformed::yes(back_to(rewritten.data, &node)?));
    }
    let mut replace: Vec<(Expr, Expr)> = Vec::new();
    let mut side =
        |input: &Arc<LogicalPlan>, exprs: Vec<Expr>, prefix: &str| -> Result<Arc<LogicalPlan>> {
            if exprs.is_empty() {
                return Ok(Arc::clone(input));
            }
            let (plan, columns) = computed_beside(input, exprs.clone(), prefix)?;
            replace.extend(exprs.into_iter().zip(columns));
            Ok(Arc::new(plan))
        };
    let left = side(&join.left, left_exprs, "__adql_sql")?;
    let right = side(&join.right, right_exprs, "__adql_sqr")?;
    let filter = filter
        .clone()
        .transform_down(|e| match replace.iter().find(|(from, _)| *from == e) {
            Some((_, to)) => Ok(Transformed::new(to.clone(), true, TreeNodeRecursion::Jump)),
            None => Ok(Transformed::no(e)),
        })
        .data()?;
    let joined = LogicalPlan::Join(Join::try_new(
        left,
        right,
        join.on.clone(),
        Some(filter),
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )?);
    Ok(Transformed::yes(back_to(joined, &node)?))
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
    /// `TOP`/`OFFSET` (with the `ORDER BY` below it, if any): the rows `skip + 1` to
    /// `skip + fetch` of each outer row's, in that order.
    TopN {
        order: Vec<SortExpr>,
        skip: usize,
        fetch: Option<usize>,
    },
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
                        // The WHERE over an inner join correlated in its ON.
                        if let Some((from, more)) = split_join(&below) {
                            terms.extend(more);
                            return Some(Shape {
                                steps,
                                condition: conjunction(terms),
                                from,
                            });
                        }
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
                LogicalPlan::Limit(l) => {
                    let (Ok(SkipType::Literal(skip)), Ok(FetchType::Literal(fetch))) =
                        (l.get_skip_type(), l.get_fetch_type())
                    else {
                        return None;
                    };
                    // The ORDER BY the TOP takes its rows in, below the projections between.
                    let mut below = Arc::unwrap_or_clone(l.input);
                    let mut projections = Vec::new();
                    while let LogicalPlan::Projection(pr) = below {
                        below = pr.input.as_ref().clone();
                        projections.push(pr);
                    }
                    match below {
                        LogicalPlan::Sort(s) if s.fetch.is_none() => {
                            steps.extend(projections.into_iter().map(Step::Project));
                            steps.push(Step::TopN {
                                order: s.expr,
                                skip,
                                fetch,
                            });
                            Arc::unwrap_or_clone(s.input)
                        }
                        other => {
                            steps.push(Step::TopN {
                                order: Vec::new(),
                                skip,
                                fetch,
                            });
                            steps.extend(projections.into_iter().map(Step::Project));
                            other
                        }
                    }
                }
                LogicalPlan::Join(_) => {
                    let (from, terms) = split_join(&p)?;
                    return Some(Shape {
                        steps,
                        condition: conjunction(terms),
                        from,
                    });
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

/// An inner join correlated in its ON only (`b JOIN c ON c.x = b.x AND b.y = a.y`): the join
/// without the correlated terms, and those terms (an inner join's ON is a WHERE over it).
fn split_join(plan: &LogicalPlan) -> Option<(LogicalPlan, Vec<Expr>)> {
    let LogicalPlan::Join(join) = plan else {
        return None;
    };
    if join.join_type != JoinType::Inner
        || has_outer(&join.left)
        || has_outer(&join.right)
        || join
            .on
            .iter()
            .any(|(l, r)| l.contains_outer() || r.contains_outer())
    {
        return None;
    }
    let (correlated, own): (Vec<Expr>, Vec<Expr>) = join
        .filter
        .clone()
        .map(split_conjunction_owned)
        .unwrap_or_default()
        .into_iter()
        .partition(Expr::contains_outer);
    if correlated.iter().any(|t| {
        t.exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
            ))
        })
        .unwrap_or(true)
    }) {
        return None;
    }
    let from = LogicalPlan::Join(Join {
        filter: conjunction(own),
        ..join.clone()
    });
    Some((from, correlated))
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
            Step::TopN { order, skip, fetch } => {
                let order = order
                    .into_iter()
                    .map(|s| {
                        Ok(SortExpr {
                            expr: substitute(s.expr, &outer)?,
                            ..s
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let rank = Column::from_name(format!("__adql_sq{n}_r"));
                let numbered = row_number()
                    .partition_by(d_columns.clone())
                    .order_by(order)
                    .build()?
                    .alias(&rank.name);
                let first = Expr::Column(rank.clone()).gt(lit(skip as u64));
                let kept = match fetch {
                    Some(f) => {
                        first.and(Expr::Column(rank).lt_eq(lit(skip.saturating_add(f) as u64)))
                    }
                    None => first,
                };
                let columns: Vec<Expr> = cur
                    .schema()
                    .iter()
                    .map(|f| Expr::Column(Column::from(f)))
                    .collect();
                LogicalPlanBuilder::from(cur)
                    .window(vec![numbered])?
                    .filter(kept)?
                    .project(columns)?
                    .build()?
            }
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

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int16Array, Int32Array, RecordBatch};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    /// `t(hip, sn)`: hip 1..=6, sn 5, 75, 5, 15, 5, 55.
    fn context() -> SessionContext {
        let ctx = SessionContext::new();
        crate::register(&ctx);
        let schema = Arc::new(Schema::new(vec![
            Field::new("hip", DataType::Int32, false),
            Field::new("sn", DataType::Int16, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5, 6])),
                Arc::new(Int16Array::from(vec![5, 75, 5, 15, 5, 55])),
            ],
        )
        .expect("batch");
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
        ctx.register_table("t", Arc::new(table)).expect("register");
        ctx
    }

    async fn run(q: &str) -> std::result::Result<String, String> {
        let ctx = context();
        let plan = crate::plan(&ctx.state(), q)
            .await
            .map_err(|e| e.to_string())?;
        let batches = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| e.to_string())?
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(pretty_format_batches(&batches)
            .map_err(|e| e.to_string())?
            .to_string())
    }

    /// The rows of `q` over `t`, one string a row, values separated by `|`.
    pub(crate) async fn rows(q: &str) -> Vec<String> {
        let table = run(q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        table
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(1)
            .map(|l| {
                l.trim_matches('|')
                    .split('|')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    #[tokio::test]
    async fn top_in_a_correlated_subquery_takes_the_rows_of_each_outer_row() {
        // The next larger sn (by sn, then hip) of each row.
        let q = "SELECT a.hip, (SELECT TOP 1 b.hip FROM t AS b WHERE b.sn > a.sn ORDER BY b.sn, b.hip) \
                 AS nxt FROM t AS a ORDER BY a.hip";
        assert_eq!(rows(q).await, ["1|4", "2|", "3|4", "4|6", "5|4", "6|2"]);
        // OFFSET, and TOP 0 (no row: NULL).
        let q = "SELECT a.hip, (SELECT TOP 1 b.hip FROM t AS b WHERE b.hip > a.hip ORDER BY b.hip \
                 OFFSET 1) AS s, (SELECT TOP 0 b.hip FROM t AS b WHERE b.hip > a.hip) AS z \
                 FROM t AS a ORDER BY a.hip";
        assert_eq!(
            rows(q).await,
            ["1|3|", "2|4|", "3|5|", "4|6|", "5||", "6||"]
        );
        // TOP 2 of more than one row is SQL's cardinality error, located.
        let q = "SELECT a.hip, (SELECT TOP 2 b.hip FROM t AS b WHERE b.hip > a.hip ORDER BY b.hip) FROM t AS a";
        let e = run(q).await.expect_err("two rows");
        assert!(
            e.contains("more than one row") && e.contains("(line 1, column"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn correlated_subqueries_in_order_by_group_by_and_on() {
        let q = "SELECT a.hip FROM t AS a ORDER BY (SELECT COUNT(*) FROM t AS b WHERE b.sn < a.sn) DESC, a.hip";
        assert_eq!(rows(q).await, ["2", "6", "4", "1", "3", "5"]);
        let q = "SELECT (SELECT MAX(b.sn) FROM t AS b WHERE b.hip > a.hip) AS g, COUNT(*) AS n FROM t AS a \
                 GROUP BY (SELECT MAX(b.sn) FROM t AS b WHERE b.hip > a.hip) ORDER BY g";
        assert_eq!(rows(q).await, ["55|4", "75|1", "|1"]);
        // Reading one side of an outer join: computed beside that side's rows.
        let q = "SELECT a.hip, c.hip FROM t AS a LEFT JOIN t AS c ON c.hip = (SELECT MIN(b.hip) FROM t AS b \
                 WHERE b.hip > a.hip AND b.sn > a.sn) ORDER BY a.hip";
        assert_eq!(rows(q).await, ["1|2", "2|", "3|4", "4|6", "5|6", "6|"]);
        // Reading both sides of an inner join: a WHERE over its rows.
        let q = "SELECT a.hip, c.hip FROM t AS a JOIN t AS c ON c.hip > a.hip AND c.sn > (SELECT MAX(b.sn) \
                 FROM t AS b WHERE b.hip > a.hip AND b.hip < c.hip) ORDER BY a.hip, c.hip";
        assert_eq!(rows(q).await, ["2|4", "2|6", "3|6", "4|6"]);
    }

    #[tokio::test]
    async fn a_correlation_in_the_on_of_an_inner_join_of_the_subquery() {
        let q = "SELECT a.hip, (SELECT COUNT(*) FROM t AS b JOIN t AS c ON c.hip = b.hip + 1 AND b.sn < a.sn) \
                 AS n FROM t AS a ORDER BY a.hip";
        assert_eq!(rows(q).await, ["1|0", "2|4", "3|0", "4|3", "5|0", "6|4"]);
    }

    #[tokio::test]
    async fn what_remains_refused_is_refused_in_adql_terms_with_a_position() {
        // A subquery reading a query two levels out.
        let q =
            "SELECT a.hip FROM t AS a WHERE EXISTS (SELECT 1 FROM t AS b WHERE b.hip = a.hip + 1\n\
                 AND b.sn > (SELECT MIN(c.sn) FROM t AS c WHERE c.hip > a.hip AND c.hip < b.hip))";
        let e = run(q).await.expect_err("refused");
        assert!(e.contains("is not supported (line 2, column "), "{e}");
        assert!(
            !e.contains("ScalarSubquery") && !e.contains("plan nodes"),
            "{e}"
        );
    }
}
