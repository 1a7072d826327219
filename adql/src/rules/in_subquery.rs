//! `x [NOT] IN (subquery)` with SQL's three-valued logic wherever it appears.
//!
//! DataFusion 55 answers an IN subquery that is a top-level `AND` term of a `WHERE` with a
//! semi join, and NOT IN there with a null-aware anti join: both right. Elsewhere — under `OR`
//! or `NOT`, where UNKNOWN and FALSE differ — it uses a mark join whose mark is never NULL, so
//! `NULL NOT IN (non-empty)` and `x NOT IN (… NULL …)` came out TRUE (differential test,
//! `in_subquery_null_in_or`); a correlated NOT IN failed ("null_aware anti join only supports
//! single column join key"), and so did a correlated IN whose value was CAST to a wider type
//! (the cast column and the correlated column got one name; `correlated_in_widened`).
//!
//! After type coercion, this rule writes those IN subqueries with EXISTS, which DataFusion
//! decorrelates in every position and whose two-valued result is exact (SQL-92 8.4, 8.8):
//!
//! ```text
//! x IN (SELECT y FROM S)  =  E1 OR (U AND NULL)
//!   E1 = EXISTS (SELECT … FROM S WHERE y = x)
//!   U  = EXISTS (SELECT … FROM S WHERE y IS NULL) OR (x IS NULL AND EXISTS (SELECT … FROM S))
//! ```
//!
//! TRUE when a row matches, UNKNOWN when none does but a NULL could have (`U`), FALSE
//! otherwise; `x NOT IN (…)` is its negation. The parts of `U` that the nullability of `x`
//! and `y` rules out are left away, and an uncorrelated EXISTS reads one row (`LIMIT 1`). As
//! a top-level AND term only TRUE counts, so a correlated IN there is `E1` and a correlated
//! NOT IN is `NOT E1 AND NOT U`; uncorrelated top-level ones stay DataFusion's joins.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, Filter, LogicalPlan, LogicalPlanBuilder, Operator, Projection,
    Subquery,
};
use datafusion::optimizer::AnalyzerRule;

/// The name given to the value column of an IN subquery that is not a plain column.
const VALUE: &str = "__adql_in_value";

/// The analyzer rule (after type coercion).
#[derive(Debug, Default)]
pub(crate) struct InSubqueryThreeValued;

impl AnalyzerRule for InSubqueryThreeValued {
    fn name(&self) -> &str {
        "adql_in_subquery_three_valued"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Filter(filter) if has_in_subquery(&filter.predicate) => {
                rewrite_filter(filter)
            }
            other => Ok(Transformed::no(other)),
        })
        .data()
    }
}

fn has_in_subquery(e: &Expr) -> bool {
    e.exists(|e| Ok(matches!(e, Expr::InSubquery(_))))
        .unwrap_or(false)
}

fn is_correlated(s: &Subquery) -> bool {
    !s.outer_ref_columns.is_empty() || s.subquery.contains_outer_reference()
}

fn rewrite_filter(filter: Filter) -> Result<Transformed<LogicalPlan>> {
    let outer = filter.input.schema().clone();
    let mut terms = Vec::new();
    let mut changed = false;
    for term in split_conjunction_owned(filter.predicate) {
        // A top-level term: only TRUE keeps a row.
        let top = match &term {
            Expr::InSubquery(i) => Some((i, i.negated)),
            Expr::Not(inner) => match inner.as_ref() {
                Expr::InSubquery(i) => Some((i, !i.negated)),
                _ => None,
            },
            _ => None,
        };
        if let Some((i, negated)) = top {
            if is_correlated(&i.subquery) {
                if let Some(parts) = Parts::of(i, &outer)? {
                    changed = true;
                    if negated {
                        terms.push(Expr::Not(Box::new(parts.matches)));
                        if let Some(unknown) = parts.unknown {
                            terms.push(Expr::Not(Box::new(unknown)));
                        }
                    } else {
                        terms.push(parts.matches);
                    }
                    continue;
                }
            }
            terms.push(term);
            continue;
        }
        if !has_in_subquery(&term) {
            terms.push(term);
            continue;
        }
        let rewritten = term.transform_up(|e| match e {
            Expr::InSubquery(i) => match Parts::of(&i, &outer)? {
                Some(parts) => Ok(Transformed::yes(parts.three_valued(i.negated))),
                None => Ok(Transformed::no(Expr::InSubquery(i))),
            },
            other => Ok(Transformed::no(other)),
        })?;
        changed |= rewritten.transformed;
        terms.push(rewritten.data);
    }
    let predicate =
        conjunction(terms).unwrap_or(Expr::Literal(ScalarValue::Boolean(Some(true)), None));
    let plan = LogicalPlan::Filter(Filter::try_new(predicate, filter.input)?);
    Ok(if changed {
        Transformed::yes(plan)
    } else {
        Transformed::no(plan)
    })
}

/// The EXISTS parts of one `x IN (S)`.
struct Parts {
    /// E1: a row of S equals x.
    matches: Expr,
    /// U: no match would still leave the answer UNKNOWN; None when it cannot.
    unknown: Option<Expr>,
}

impl Parts {
    /// None when the IN subquery is not of a shape this rule writes (the value compared
    /// refers to a query further out; S has not one column).
    fn of(i: &InSubquery, outer: &DFSchema) -> Result<Option<Parts>> {
        let x = i.expr.as_ref();
        if x.exists(|e| Ok(matches!(e, Expr::OuterReferenceColumn(..))))? {
            return Ok(None);
        }
        let s = name_value(i.subquery.subquery.as_ref().clone())?;
        if s.schema().fields().len() != 1 {
            return Ok(None);
        }
        let (qualifier, field) = s.schema().qualified_field(0);
        let y = Expr::Column(Column::from((qualifier, field)));
        let y_nullable = field.is_nullable();
        let x_nullable = x.nullable(outer).unwrap_or(true);
        let correlated = is_correlated(&i.subquery);

        // x as seen from inside S: its columns are outer references.
        let mut x_refs = Vec::new();
        let x_inner = x
            .clone()
            .transform_up(|e| match e {
                Expr::Column(c) => {
                    let (_, f) = outer.qualified_field_from_column(&c)?;
                    let r = Expr::OuterReferenceColumn(Arc::clone(f), c);
                    if !x_refs.contains(&r) {
                        x_refs.push(r.clone());
                    }
                    Ok(Transformed::yes(r))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;

        let exists = |plan: LogicalPlan, extra_refs: &[Expr]| -> Expr {
            let mut refs = i.subquery.outer_ref_columns.clone();
            for r in extra_refs {
                if !refs.contains(r) {
                    refs.push(r.clone());
                }
            }
            Expr::Exists(Exists {
                subquery: Subquery {
                    subquery: Arc::new(plan),
                    outer_ref_columns: refs,
                    spans: i.subquery.spans.clone(),
                },
                negated: false,
            })
        };
        // An uncorrelated EXISTS needs one row only.
        let one_row = |plan: LogicalPlan| -> Result<LogicalPlan> {
            if correlated {
                Ok(plan)
            } else {
                LogicalPlanBuilder::from(plan).limit(0, Some(1))?.build()
            }
        };

        let equal = Expr::BinaryExpr(BinaryExpr::new(
            Box::new(y.clone()),
            Operator::Eq,
            Box::new(x_inner),
        ));
        let matches = exists(
            LogicalPlan::Filter(Filter::try_new(equal, Arc::new(s.clone()))?),
            &x_refs,
        );
        let null_in_s = if y_nullable {
            let is_null = Expr::IsNull(Box::new(y));
            Some(exists(
                one_row(LogicalPlan::Filter(Filter::try_new(
                    is_null,
                    Arc::new(s.clone()),
                )?))?,
                &[],
            ))
        } else {
            None
        };
        let null_x = if x_nullable {
            let any = exists(one_row(s)?, &[]);
            Some(Expr::IsNull(Box::new(x.clone())).and(any))
        } else {
            None
        };
        let unknown = match (null_in_s, null_x) {
            (Some(a), Some(b)) => Some(a.or(b)),
            (a, b) => a.or(b),
        };
        Ok(Some(Parts { matches, unknown }))
    }

    /// `x IN (S)` (or NOT IN) as a three-valued expression.
    fn three_valued(self, negated: bool) -> Expr {
        let value = match self.unknown {
            Some(u) => self
                .matches
                .or(u.and(Expr::Literal(ScalarValue::Boolean(None), None))),
            None => self.matches,
        };
        if negated {
            Expr::Not(Box::new(value))
        } else {
            value
        }
    }
}

/// S with its value column named apart when it is an expression (a CAST the type coercion
/// added is named like the column it casts, and decorrelation may add that column beside it).
fn name_value(s: LogicalPlan) -> Result<LogicalPlan> {
    match s {
        LogicalPlan::Projection(p)
            if p.expr.len() == 1 && !matches!(p.expr[0], Expr::Column(_) | Expr::Alias(_)) =>
        {
            let mut expr = p.expr;
            let first = expr.remove(0);
            Ok(LogicalPlan::Projection(Projection::try_new(
                vec![first.alias(VALUE)],
                p.input,
            )?))
        }
        other => Ok(other),
    }
}
