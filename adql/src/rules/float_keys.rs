//! `-0.0` and `0.0` are one value wherever values are looked up in a hash set.
//!
//! IEEE 754 and SQL say -0.0 = 0.0, and DataFusion's `=`, joins, GROUP BY and DISTINCT agree;
//! but its IN-list filter and the accumulators of `COUNT/SUM/AVG(DISTINCT x)` hash floats by
//! their bits, so `-0.0 * hip IN (0.0, 5.0)` was FALSE and `COUNT(DISTINCT CEILING(v_i))`
//! counted -0.0 and 0.0 as two values (differential test, `in_list_negative_zero`,
//! `distinct_negative_zero`). After type coercion this rule adds `+ 0.0` to the float value
//! of such an IN list (and to its items) and to the float arguments of DISTINCT aggregates:
//! IEEE addition turns -0.0 into 0.0 and leaves every other value (NaN included) as it is.
//! DataFusion's simplifier keeps `x + 0.0` (it has no rule that removes it).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule (after type coercion).
#[derive(Debug, Default)]
pub(crate) struct NormaliseFloatKeys;

impl AnalyzerRule for NormaliseFloatKeys {
    fn name(&self) -> &str {
        "adql_normalise_float_keys"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = merge_schema(&node.inputs());
            let names = NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let name = names.save(&expr);
                Ok(expr
                    .transform_up(|e| normalise(e, &schema))?
                    .update_data(|e| name.restore(e)))
            })
        })
        .data()
    }
}

/// `e + 0.0` when `e` is a float (of the same type), else None.
fn plus_zero(e: &Expr, schema: &DFSchema) -> Option<Expr> {
    let zero = match e.get_type(schema).ok()? {
        DataType::Float64 => ScalarValue::Float64(Some(0.0)),
        DataType::Float32 => ScalarValue::Float32(Some(0.0)),
        _ => return None,
    };
    Some(Expr::BinaryExpr(BinaryExpr::new(
        Box::new(e.clone()),
        Operator::Plus,
        Box::new(Expr::Literal(zero, None)),
    )))
}

fn normalise(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match e {
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => match plus_zero(&expr, schema) {
            Some(value) => {
                let list = list
                    .into_iter()
                    .map(|item| plus_zero(&item, schema).unwrap_or(item))
                    .collect();
                Ok(Transformed::yes(Expr::InList(InList {
                    expr: Box::new(value),
                    list,
                    negated,
                })))
            }
            None => Ok(Transformed::no(Expr::InList(InList {
                expr,
                list,
                negated,
            }))),
        },
        Expr::AggregateFunction(mut agg) if agg.params.distinct => {
            let mut changed = false;
            for arg in agg.params.args.iter_mut() {
                if let Some(normal) = plus_zero(arg, schema) {
                    *arg = normal;
                    changed = true;
                }
            }
            let e = Expr::AggregateFunction(agg);
            Ok(if changed {
                Transformed::yes(e)
            } else {
                Transformed::no(e)
            })
        }
        other => Ok(Transformed::no(other)),
    }
}
