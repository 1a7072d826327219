//! Integer arithmetic that never wraps around.
//!
//! DataFusion computes `+ - *` of integers in the operands' own type with wrapping kernels,
//! so SMALLINT `115 * 115 * 115` gave 13547 and INTEGER products wrapped in 32 bits: silently
//! wrong values (differential test, `narrow_int_overflow`). SQL-92 6.12 leaves the precision
//! of the result to the implementation but not its value: a result the type cannot hold is the
//! exception "numeric value out of range". So before type coercion every `a + b`, `a - b`,
//! `a * b` and `-a` of integer operands becomes a call of a checked function over BIGINT: the
//! arithmetic is widened to BIGINT (wide enough for any SMALLINT or INTEGER operation), and
//! where even BIGINT overflows the query fails with that error, located at the expression.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::FunctionRewrite;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

/// The operation of a checked function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
}

/// `adql_checked_add|sub|mul(a, b)`: BIGINT arithmetic that fails instead of wrapping. `at`
/// is where the expression is in the ADQL text (line, column), for the error.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    op: Op,
    at: Option<(u64, u64)>,
    signature: Signature,
}

impl Checked {
    fn udf(op: Op, at: Option<(u64, u64)>) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Checked {
            op,
            at,
            signature: Signature::user_defined(Volatility::Immutable),
        }))
    }

    fn overflow(&self) -> DataFusionError {
        let what = match self.op {
            Op::Add => "a sum",
            Op::Sub => "a difference",
            Op::Mul => "a product",
        };
        let at = match self.at {
            Some((line, column)) => format!(" (line {line}, column {column})"),
            None => String::new(),
        };
        DataFusionError::Execution(format!(
            "numeric value out of range: {what} of integers exceeds the range of BIGINT{at}; \
             CAST an operand to DOUBLE PRECISION to compute it approximately"
        ))
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        match self.op {
            Op::Add => "adql_checked_add",
            Op::Sub => "adql_checked_sub",
            Op::Mul => "adql_checked_mul",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(vec![DataType::Int64; arg_types.len()])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [a, b] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes two arguments",
                self.name()
            )));
        };
        let scalar = matches!((a, b), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let a = a.to_array(args.number_rows)?;
        let b = b.to_array(args.number_rows)?;
        let result: ArrayRef = match self.op {
            Op::Add => numeric::add(&a, &b),
            Op::Sub => numeric::sub(&a, &b),
            Op::Mul => numeric::mul(&a, &b),
        }
        .map_err(|_| self.overflow())?;
        if scalar && result.len() == 1 {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

/// Where an expression starts in the ADQL text, as well as its columns tell: the position of
/// its first column (DataFusion keeps the spans of column references only).
fn position(expr: &Expr) -> Option<(u64, u64)> {
    let mut at = None;
    let _ = expr.apply(|e| {
        if let Expr::Column(c) = e {
            if let Some(span) = c.spans().first() {
                at = Some((span.start.line, span.start.column));
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    at
}

/// The rewrite, applied by DataFusion's analyzer to every expression before type coercion.
#[derive(Debug, Default)]
pub(crate) struct CheckedIntegerArithmetic;

impl FunctionRewrite for CheckedIntegerArithmetic {
    fn name(&self) -> &str {
        "adql_checked_integer_arithmetic"
    }

    fn rewrite(
        &self,
        expr: Expr,
        schema: &DFSchema,
        _config: &ConfigOptions,
    ) -> Result<Transformed<Expr>> {
        let integer = |e: &Expr| e.get_type(schema).is_ok_and(|t| is_integer(&t));
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply)
                    && integer(&left)
                    && integer(&right) =>
            {
                let op_ = match op {
                    Operator::Plus => Op::Add,
                    Operator::Minus => Op::Sub,
                    _ => Op::Mul,
                };
                let at = position(&left).or_else(|| position(&right));
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(Checked::udf(op_, at), vec![*left, *right]),
                )))
            }
            Expr::Negative(inner) if !matches!(*inner, Expr::Literal(..)) && integer(&inner) => {
                let at = position(&inner);
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(
                        Checked::udf(Op::Sub, at),
                        vec![Expr::Literal(ScalarValue::Int64(Some(0)), None), *inner],
                    ),
                )))
            }
            other => Ok(Transformed::no(other)),
        }
    }
}
