//! DataFusion rules that give ADQL's (SQL-92's) answers where DataFusion 55's differ: they
//! are registered with a session by [`crate::register`]. Each module says what DataFusion does,
//! what ADQL asks and how the rule bridges them; the DataFusion bugs fixed in DataFusion itself
//! are in `vendor/` (vendor/README.md).

mod checked;
mod float_keys;
mod in_subquery;
mod offset_order;
mod scalar_subquery;
mod set_all;

use std::sync::Arc;

use datafusion::execution::FunctionRegistry;
use datafusion::prelude::SessionContext;

/// Adds the rules to `ctx` and sets the session options they need.
pub(crate) fn register(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    {
        let options = state.config_mut().options_mut();
        // Column references keep their place in the ADQL text: errors found while the query
        // runs (an integer overflow) can say where.
        options.sql_parser.collect_spans = true;
        // The optimizer may change the field metadata (units, UCDs) of a plan's inputs without
        // updating the plan above (a UNION of `x * 1`, simplified to `x`, whose inputs then
        // have metadata the union's schema has not), and the physical planner refused such
        // an aggregate as an internal error (differential test, `set_folded_column`,
        // `set_operand_always_empty`). Metadata does not change a value; the result's column
        // metadata is taken from the logical plan (engine::stream) and its types from the
        // physical plan.
        options.execution.skip_physical_aggregate_schema_check = true;
    }
    // Integer + - * before type coercion (it widens the types); the others after it.
    if let Err(e) = state.register_function_rewrite(Arc::new(checked::CheckedIntegerArithmetic)) {
        tracing::warn!("the checked integer arithmetic was not registered: {e}");
    }
    state.add_analyzer_rule(Arc::new(in_subquery::InSubqueryThreeValued));
    state.add_analyzer_rule(Arc::new(set_all::SetOperationsAll));
    state.add_analyzer_rule(Arc::new(scalar_subquery::CorrelatedScalarSubqueries));
    state.add_analyzer_rule(Arc::new(float_keys::NormaliseFloatKeys));
    state.add_analyzer_rule(Arc::new(offset_order::OffsetKeepsOrder));
}
