//! `INTERSECT ALL` and `EXCEPT ALL` with multiset semantics.
//!
//! DataFusion 55 plans `a INTERSECT ALL b` as a semi join of a and b on all columns and `a
//! EXCEPT ALL b` as an anti join, which keeps every copy of a matching row (or none): SQL-92
//! 7.10 and ADQL 2.1 §4.6.5 want min(m, n) and max(m − n, 0) copies of a row that is m times
//! in a and n times in b (apache/datafusion#12955, #12956). This rule, after type coercion,
//! numbers the copies of each row on both sides (`ROW_NUMBER() OVER (PARTITION BY every
//! column)`) and joins on the columns and that number: the k-th copy of a row on the left is
//! kept by INTERSECT ALL when the right has a k-th copy, and by EXCEPT ALL when it has not.
//!
//! The planner's join for these is recognised by its shape, which no other ADQL construct
//! produces before optimisation: a left semi or anti join on every column pair (a column of
//! one side cast to the other's type when their types differ), NULLs equal, whose left input
//! is not DISTINCT (`INTERSECT` and `EXCEPT` make it DISTINCT first). The copies are numbered
//! and matched by the join's own keys, casts included.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{Column, NullEquality, Result, ScalarValue};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprFunctionExt, ExprSchemable, Join, JoinType, LogicalPlan,
    LogicalPlanBuilder, Operator,
};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule (after type coercion).
#[derive(Debug, Default)]
pub(crate) struct SetOperationsAll;

impl AnalyzerRule for SetOperationsAll {
    fn name(&self) -> &str {
        "adql_intersect_except_all"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Join(join) if is_set_all(&join) => rewrite(join).map(Transformed::yes),
            other => Ok(Transformed::no(other)),
        })
        .data()
    }
}

/// Whether a join is how DataFusion plans INTERSECT ALL or EXCEPT ALL.
fn is_set_all(join: &Join) -> bool {
    matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        && join.null_equality == NullEquality::NullEqualsNull
        && join.filter.is_none()
        && !join.null_aware
        && !matches!(join.left.as_ref(), LogicalPlan::Distinct(_))
        && join.on.len() == join.left.schema().fields().len()
        && join.on.len() == join.right.schema().fields().len()
        && join
            .on
            .iter()
            .all(|(l, r)| is_key_column(l) && is_key_column(r))
}

/// A column, or a column that type coercion cast to the other side's type (`CAST(a.v AS
/// Utf8View) = b.v` when one operand's VARCHAR is Utf8 and the other's Utf8View).
fn is_key_column(e: &Expr) -> bool {
    match e {
        Expr::Column(_) => true,
        Expr::Cast(c) => matches!(c.expr.as_ref(), Expr::Column(_)),
        Expr::TryCast(c) => matches!(c.expr.as_ref(), Expr::Column(_)),
        _ => false,
    }
}

/// The column names the rewrite gives the sides' columns, join keys and copy numbers.
fn value(i: usize) -> String {
    format!("__adql_v{i}")
}
fn key(i: usize) -> String {
    format!("__adql_k{i}")
}
const NUMBER: &str = "__adql_n";
const LEFT: &str = "__adql_l";
const RIGHT: &str = "__adql_r";

/// One side: its columns renamed by position, each row numbered among its copies, and the
/// names of its join keys. A key is the join's own key expression for that side: a column is
/// its renamed column; a cast (both sides' keys then have one type) is projected beside the
/// columns. (Projecting a plain column a second time, as a key, made DataFusion's window
/// planning fail with "Expects PARTITION BY expression to be ordered".)
fn numbered(
    side: &LogicalPlan,
    keys: Vec<Expr>,
    alias: &str,
) -> Result<(LogicalPlan, Vec<String>)> {
    let schema = side.schema();
    let mut renamed = (0..schema.fields().len())
        .map(|i| Expr::Column(Column::from(schema.qualified_field(i))).alias(value(i)))
        .collect::<Vec<_>>();
    let mut names = Vec::with_capacity(keys.len());
    let mut key_types = Vec::with_capacity(keys.len());
    for (i, k) in keys.into_iter().enumerate() {
        key_types.push(k.get_type(schema)?);
        match &k {
            Expr::Column(c) => {
                let at = schema.index_of_column(c)?;
                names.push(value(at));
            }
            _ => {
                renamed.push(k.alias(key(i)));
                names.push(key(i));
            }
        }
    }
    // Copies are rows that are not distinct: -0.0 and 0.0 are one value (a hash join
    // matches them), so a float is partitioned by its value + 0.0 (IEEE: -0.0 + 0.0 = 0.0).
    let partition = names
        .iter()
        .zip(&key_types)
        .map(|(name, t)| {
            let c = Expr::Column(Column::new_unqualified(name.clone()));
            match t {
                DataType::Float64 => plus_zero(c, ScalarValue::Float64(Some(0.0))),
                DataType::Float32 => plus_zero(c, ScalarValue::Float32(Some(0.0))),
                _ => c,
            }
        })
        .collect::<Vec<_>>();
    let number = row_number().partition_by(partition).build()?.alias(NUMBER);
    let plan = LogicalPlanBuilder::from(side.clone())
        .project(renamed)?
        .window(vec![number])?
        .alias(alias)?
        .build()?;
    Ok((plan, names))
}

fn plus_zero(e: Expr, zero: ScalarValue) -> Expr {
    Expr::BinaryExpr(BinaryExpr::new(
        Box::new(e),
        Operator::Plus,
        Box::new(Expr::Literal(zero, None)),
    ))
}

fn rewrite(join: Join) -> Result<LogicalPlan> {
    let n = join.left.schema().fields().len();
    let (left_keys, right_keys): (Vec<Expr>, Vec<Expr>) = join.on.iter().cloned().unzip();
    let (left, left_names) = numbered(&join.left, left_keys, LEFT)?;
    let (right, right_names) = numbered(&join.right, right_keys, RIGHT)?;
    let keys = |side: &str, names: &[String]| {
        names
            .iter()
            .map(|n| Column::new(Some(side), n.clone()))
            .chain(std::iter::once(Column::new(Some(side), NUMBER)))
            .collect::<Vec<_>>()
    };
    let joined = LogicalPlanBuilder::from(left)
        .join_detailed(
            right,
            join.join_type,
            (keys(LEFT, &left_names), keys(RIGHT, &right_names)),
            None,
            NullEquality::NullEqualsNull,
        )?
        .build()?;
    // The result has the left side's columns as they were (names and qualifiers). The
    // planner's left side is `SubqueryAlias: left`; the result is then that alias over the
    // columns' bare names, not a projection to qualified names: an optimizer rule that
    // puts a projection of bare names above the result (PropagateEmptyRelation, when the
    // other operand of a UNION of this is always empty) leaves filters that name `v0` where
    // this gives `left.v0`, and PushDownFilter, which matches names exactly, then moved such
    // a filter below the projection without rewriting it ("No field named v0").
    if let LogicalPlan::SubqueryAlias(alias) = join.left.as_ref() {
        let output = alias
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| Expr::Column(Column::new(Some(LEFT), value(i))).alias(field.name()))
            .collect::<Vec<_>>();
        return LogicalPlanBuilder::from(joined)
            .project(output)?
            .alias(alias.alias.clone())?
            .build();
    }
    let schema = Arc::clone(join.left.schema());
    let output = (0..n)
        .map(|i| {
            let (qualifier, field) = schema.qualified_field(i);
            let c = Expr::Column(Column::new(Some(LEFT), value(i)));
            match qualifier {
                Some(q) => c.alias_qualified(Some(q.clone()), field.name()),
                None => c.alias(field.name()),
            }
        })
        .collect::<Vec<_>>();
    LogicalPlanBuilder::from(joined).project(output)?.build()
}

#[cfg(test)]
mod tests {
    use super::super::scalar_subquery::tests::rows;

    #[tokio::test]
    async fn copies_are_kept_as_often_as_both_sides_have_them() {
        // sn of t: 5, 75, 5, 15, 5, 55; the copies of 5 are three on the left.
        let q = "SELECT sn FROM t INTERSECT ALL SELECT sn FROM t WHERE hip > 2 ORDER BY sn";
        assert_eq!(rows(q).await, ["5", "5", "15", "55"]);
        let q = "SELECT sn FROM t EXCEPT ALL SELECT sn FROM t WHERE hip > 2 ORDER BY sn";
        assert_eq!(rows(q).await, ["5", "75"]);
    }

    #[tokio::test]
    async fn a_filter_over_a_union_whose_other_operand_is_always_empty() {
        // The empty operand is dropped and the union becomes its other operand, which this
        // rule rewrote; the filter above is then pushed down through the rewrite.
        let q = "SELECT c.v0 FROM (SELECT hip AS v0, sn AS v1 FROM t WHERE 1 > 2 \
                 UNION SELECT hip AS v0, sn AS v1 FROM t WHERE hip < 5 \
                 INTERSECT ALL SELECT hip AS v0, sn AS v1 FROM t WHERE hip > 1) AS c \
                 WHERE c.v0 < 4 ORDER BY c.v0";
        assert_eq!(rows(q).await, ["2", "3"]);
        let q = "SELECT c.v1 FROM (SELECT hip AS v0, sn AS v1 FROM t WHERE 1 > 2 \
                 UNION ALL SELECT hip AS v0, sn AS v1 FROM t \
                 EXCEPT ALL SELECT hip AS v0, sn AS v1 FROM t WHERE hip < 3) AS c \
                 WHERE c.v0 > 3 AND c.v1 < 50 ORDER BY c.v1";
        assert_eq!(rows(q).await, ["5", "15"]);
        // Named by the operand's qualifier-free name in ORDER BY as well.
        let q = "SELECT v0 FROM t AS a, (SELECT hip AS v0 FROM t WHERE 1 > 2 UNION \
                 SELECT hip AS v0 FROM t INTERSECT ALL SELECT hip AS v0 FROM t WHERE hip > 4) AS c \
                 WHERE a.hip = c.v0 ORDER BY v0";
        assert_eq!(rows(q).await, ["5", "6"]);
    }
}
