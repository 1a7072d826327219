//! Valid ADQL (SQL-92) that DataFusion 55's SQL planner refuses, rewritten in the AST before
//! planning so that DataFusion's planner needs no patch. Each rewrite keeps the query's
//! meaning and the names of its result columns:
//!
//! - **USING and NATURAL columns without a qualifier** (`a JOIN b USING (hip) WHERE hip < 3`):
//!   DataFusion calls them ambiguous in WHERE, GROUP BY, HAVING and inside some select-list
//!   expressions (`-pmdec`). SQL-92 7.5 makes such a column the coalesced join column, so it
//!   is written out: the left table's column for inner and left joins, the right table's for
//!   right joins, `COALESCE(left, right)` for full joins. A NATURAL join whose sides' columns
//!   are known is written as USING those columns first.
//! - **Aggregates whose arguments differ only by a CAST** (`MIN(sn)`, `MIN(CAST(sn AS DOUBLE
//!   PRECISION))`): a cast does not show in DataFusion's name of an expression, so both are
//!   `min(t.sn)` and the aggregate's schema refuses the duplicate (apache/datafusion#18975).
//!   The casts in such aggregates are wrapped in [`NAMED_CAST`], an identity function whose
//!   name shows the target type; the optimizer removes it again.
//! - **An ORDER BY column qualified by its table whose name is also an output alias**
//!   (`SELECT t.sn AS hip … ORDER BY t.hip`): DataFusion carries `t.hip` to the sort beside
//!   the output column `hip` and finds the two ambiguous (apache/datafusion#8391 fixed only
//!   the case where both name one column). The output column is planned under a name of its
//!   own and renamed back above the sort ([`rename_outputs`]); in a subquery or WITH query,
//!   by a SELECT around it ([`alias_apart_nested`]).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use crate::names::TableColumns;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, Result};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr as PlanExpr, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    JoinConstraint, JoinOperator, ObjectName, OrderByKind, Query, Select, SelectItem, SetExpr,
    TableFactor, Value, VisitMut, VisitorMut,
};

/// The identity function that names a cast (see the module documentation).
pub(crate) const NAMED_CAST: &str = "adql_named_cast";

/// Output columns planned under a name of their own: (planned name, name in the result).
pub(crate) type Renamed = Vec<(String, String)>;

/// Applies the rewrites to `query` (after names are resolved); returns the output columns
/// that [`rename_outputs`] must rename back after planning.
pub(crate) fn rewrite(query: &mut Query, tables: &TableColumns) -> Renamed {
    let _ = query.visit(&mut EachSelect { tables, depth: 0 });
    alias_apart_from_order(query)
}

/// The plan of a query whose output columns were renamed by [`rewrite`], with their names
/// back (a projection above everything, as DataFusion puts above a sort by hidden columns).
pub(crate) fn rename_outputs(plan: LogicalPlan, renamed: &Renamed) -> Result<LogicalPlan> {
    if renamed.is_empty() {
        return Ok(plan);
    }
    let exprs: Vec<PlanExpr> = plan
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let col = PlanExpr::Column(Column::new(qualifier.cloned(), field.name()));
            match renamed.iter().find(|(planned, _)| planned == field.name()) {
                Some((_, name)) => col.alias(name),
                None => col,
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// The identity function whose second argument, a string literal, shows in its name.
pub(crate) fn named_cast_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(NamedCast {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NamedCast {
    signature: Signature,
}

impl ScalarUDFImpl for NamedCast {
    fn name(&self) -> &str {
        NAMED_CAST
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(t) => Ok(t.clone()),
            None => datafusion::common::plan_err!("{NAMED_CAST} takes two arguments"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.into_iter().next() {
            Some(v) => Ok(v),
            None => datafusion::common::exec_err!("{NAMED_CAST} takes two arguments"),
        }
    }

    fn simplify(&self, args: Vec<PlanExpr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let mut args = args.into_iter();
        match args.next() {
            Some(e) => Ok(ExprSimplifyResult::Simplified(e)),
            None => Ok(ExprSimplifyResult::Original(vec![])),
        }
    }
}

/// How an identifier is matched: unquoted ones case-insensitively.
fn norm(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

/// The name a relation is referred to by in expressions: its alias, or its name.
fn relation_name(t: &TableFactor) -> Option<Vec<Ident>> {
    match t {
        TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } => {
            Some(vec![a.name.clone()])
        }
        TableFactor::Table {
            name, alias: None, ..
        } => name
            .0
            .iter()
            .map(|p| p.as_ident().cloned())
            .collect::<Option<Vec<_>>>(),
        _ => None,
    }
}

/// The column names of a table or of a derived table whose every item has a name, as
/// DataFusion names them (unquoted names in lower case).
fn columns_of(t: &TableFactor, tables: &TableColumns) -> Option<Vec<String>> {
    match t {
        TableFactor::Table { name, .. } => {
            let written = name
                .0
                .iter()
                .map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
                .collect::<Option<Vec<_>>>()?
                .join(".");
            tables.get(&written).cloned()
        }
        TableFactor::Derived {
            subquery,
            alias: Some(alias),
            ..
        } if alias.columns.is_empty() => {
            let SetExpr::Select(s) = subquery.body.as_ref() else {
                return None;
            };
            s.projection
                .iter()
                .map(|item| match item {
                    SelectItem::ExprWithAlias { alias, .. } => Some(norm(alias)),
                    SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(norm(i)),
                    SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                        parts.last().map(norm)
                    }
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

/// Visits every query (at any depth) and the SELECTs of its body for the USING and aggregate
/// rewrites.
struct EachSelect<'a> {
    tables: &'a TableColumns,
    depth: usize,
}

impl VisitorMut for EachSelect<'_> {
    type Break = ();

    fn post_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > 1 {
            alias_apart_nested(q);
        }
        // The operands of set operations are SELECTs without a query of their own.
        fn operands(e: &mut SetExpr, tables: &TableColumns) {
            match e {
                SetExpr::SetOperation { left, right, .. } => {
                    operands(left, tables);
                    operands(right, tables);
                }
                SetExpr::Select(s) => {
                    using_columns(s, tables);
                    agg_cast_twins(s, Vec::new());
                }
                _ => {}
            }
        }
        match q.body.as_mut() {
            SetExpr::Select(s) => {
                using_columns(s, self.tables);
                let order: Vec<&mut Expr> = match q.order_by.as_mut().map(|o| &mut o.kind) {
                    Some(OrderByKind::Expressions(v)) => {
                        v.iter_mut().map(|e| &mut e.expr).collect()
                    }
                    _ => Vec::new(),
                };
                agg_cast_twins(s, order);
            }
            body => operands(body, self.tables),
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites the unqualified USING columns of `s`'s WHERE, GROUP BY and HAVING (not those of
/// nested queries, whose unqualified names are their own tables' first).
fn using_columns(s: &mut Select, tables: &TableColumns) {
    let mut columns: HashMap<String, Expr> = HashMap::new();
    for twj in s.from.iter_mut() {
        let mut left = relation_name(&twj.relation);
        let mut left_columns = columns_of(&twj.relation, tables);
        for join in twj.joins.iter_mut() {
            let right = relation_name(&join.relation);
            // NATURAL is USING of the columns both sides have (SQL-92 7.5), written out when
            // both sides' columns are known.
            if let (Some(l), Some(r)) = (&left_columns, columns_of(&join.relation, tables)) {
                let common: Vec<ObjectName> = l
                    .iter()
                    .filter(|c| r.contains(c))
                    .map(|c| ObjectName::from(vec![Ident::with_quote('"', c.clone())]))
                    .collect();
                if !common.is_empty() {
                    match &mut join.join_operator {
                        JoinOperator::Join(c)
                        | JoinOperator::Inner(c)
                        | JoinOperator::Left(c)
                        | JoinOperator::LeftOuter(c)
                        | JoinOperator::Right(c)
                        | JoinOperator::RightOuter(c)
                        | JoinOperator::FullOuter(c)
                            if matches!(c, JoinConstraint::Natural) =>
                        {
                            *c = JoinConstraint::Using(common);
                        }
                        _ => {}
                    }
                }
            }
            left_columns = None;
            let (constraint, kind) = match &join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (c, 'i'),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (c, 'l'),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (c, 'r'),
                JoinOperator::FullOuter(c) => (c, 'f'),
                _ => {
                    left = None;
                    continue;
                }
            };
            if let (JoinConstraint::Using(names), Some(l), Some(r)) = (constraint, &left, &right) {
                for name in names {
                    let Some(col) = name.0.last().and_then(|p| p.as_ident()) else {
                        continue;
                    };
                    let qualified = |rel: &Vec<Ident>| {
                        let mut parts = rel.clone();
                        parts.push(col.clone());
                        Expr::CompoundIdentifier(parts)
                    };
                    let e = match kind {
                        'r' => qualified(r),
                        'f' => Expr::Function(Function {
                            name: ObjectName::from(vec![Ident::new("coalesce")]),
                            uses_odbc_syntax: false,
                            parameters: FunctionArguments::None,
                            args: FunctionArguments::List(FunctionArgumentList {
                                duplicate_treatment: None,
                                args: vec![
                                    FunctionArg::Unnamed(FunctionArgExpr::Expr(qualified(l))),
                                    FunctionArg::Unnamed(FunctionArgExpr::Expr(qualified(r))),
                                ],
                                clauses: vec![],
                            }),
                            filter: None,
                            null_treatment: None,
                            over: None,
                            within_group: vec![],
                        }),
                        _ => qualified(l),
                    };
                    columns.entry(norm(col)).or_insert(e);
                }
            }
            // After a join, the left side is a join: its USING columns are not rewritten.
            left = None;
        }
    }
    if columns.is_empty() {
        return;
    }
    // Unqualified names of `columns` outside nested queries replaced.
    let mut v = |e: &mut Expr| {
        if let Expr::Identifier(i) = e {
            if let Some(r) = columns.get(&norm(i)) {
                *e = r.clone();
            }
        }
    };
    // Select items too: DataFusion resolves a bare USING column there but not inside every
    // expression (`-pmdec` was "ambiguous"), and for a FULL join SQL-92 gives the coalesced
    // value. A bare item keeps its name.
    for item in s.projection.iter_mut() {
        match item {
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => {
                if let Some(r) = columns.get(&norm(i)) {
                    *item = SelectItem::ExprWithAlias {
                        expr: r.clone(),
                        alias: i.clone(),
                    };
                }
            }
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                visit_outer(e, true, &mut v);
            }
            _ => {}
        }
    }
    if let Some(w) = s.selection.as_mut() {
        visit_outer(w, true, &mut v);
    }
    if let Some(h) = s.having.as_mut() {
        visit_outer(h, true, &mut v);
    }
    if let datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(exprs, _) = &mut s.group_by {
        for e in exprs {
            visit_outer(e, true, &mut v);
        }
    }
}

/// Calls `f` on every expression of `e` outside the queries nested in it, before its
/// children (`post` false) or after them (`post` true).
fn visit_outer(e: &mut Expr, post: bool, f: &mut dyn FnMut(&mut Expr)) {
    struct Outer<'a> {
        f: &'a mut dyn FnMut(&mut Expr),
        post: bool,
        depth: usize,
    }
    impl VisitorMut for Outer<'_> {
        type Break = ();

        fn pre_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }

        fn post_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }

        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if !self.post && self.depth == 0 {
                (self.f)(e);
            }
            ControlFlow::Continue(())
        }

        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if self.post && self.depth == 0 {
                (self.f)(e);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = e.visit(&mut Outer { f, post, depth: 0 });
}

const AGGREGATES: &[&str] = &["min", "max", "sum", "avg", "count"];

fn is_aggregate(f: &Function) -> bool {
    f.name.0.len() == 1
        && f.name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| AGGREGATES.contains(&i.value.to_ascii_lowercase().as_str()))
}

/// `e` with every CAST, every column qualifier and every identifier's quotes removed (then in
/// lower case): two aggregates with the same key may get the same name from DataFusion,
/// which names a column by its resolved qualifier (`MAX(c0)` and `MAX(CAST(d2.c0 AS
/// BIGINT))` are both `max(d2.c0)` there). Columns of two tables with one name share a key
/// too, as do two delimited identifiers that differ in case; naming their casts apart is
/// harmless.
fn without_casts(e: &Expr) -> String {
    let mut e = e.clone();
    struct Strip;
    impl VisitorMut for Strip {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            match e {
                Expr::Cast { expr, .. } => *e = (**expr).clone(),
                // Without its quotes too: `MAX(t1.dec)` and `MAX("dec")` are both `max(t1.dec)`
                // in DataFusion (differential test, seed 27 cases 19 and 846).
                Expr::Identifier(i) => *e = Expr::Identifier(Ident::new(i.value.clone())),
                Expr::CompoundIdentifier(parts) => {
                    if let Some(last) = parts.last() {
                        *e = Expr::Identifier(Ident::new(last.value.clone()));
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let _ = e.visit(&mut Strip);
    let key = e.to_string().to_ascii_lowercase();
    // DataFusion plans COUNT(*) as a count of the literal 1: `COUNT(CAST(1 AS INTEGER))` and
    // `COUNT(*)` have one name there (PostgreSQL seed 40 case 998).
    match key.as_str() {
        "count(*)" => "count(1)".into(),
        _ => key,
    }
}

/// Gives the casts in aggregates of `s` (and its query's ORDER BY) that DataFusion would name
/// like another aggregate a name of their own.
fn agg_cast_twins(s: &mut Select, order_by: Vec<&mut Expr>) {
    // The aggregates of this SELECT (not of nested queries), by DataFusion's name.
    let mut by_name: HashMap<String, HashSet<String>> = HashMap::new();
    let mut exprs: Vec<&mut Expr> = Vec::new();
    for item in s.projection.iter_mut() {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => exprs.push(e),
            _ => {}
        }
    }
    if let Some(h) = s.having.as_mut() {
        exprs.push(h);
    }
    exprs.extend(order_by);
    for e in exprs.iter_mut() {
        visit_outer(e, false, &mut |e| {
            if let Expr::Function(f) = e {
                if is_aggregate(f) {
                    by_name
                        .entry(without_casts(e))
                        .or_default()
                        .insert(e.to_string().to_ascii_lowercase());
                }
            }
        });
    }
    let twins: HashSet<String> = by_name
        .into_iter()
        .filter(|(_, texts)| texts.len() > 1)
        .map(|(name, _)| name)
        .collect();
    if twins.is_empty() {
        return;
    }
    for e in exprs {
        visit_outer(e, false, &mut |e| {
            if let Expr::Function(f) = e {
                if is_aggregate(f) && twins.contains(&without_casts(e)) {
                    let _ = e.visit(&mut NameCasts);
                }
            }
        });
    }
}

/// Wraps every CAST in [`NAMED_CAST`] with its target type as name.
struct NameCasts;

impl VisitorMut for NameCasts {
    type Break = ();

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast { data_type, .. } = e {
            let label = data_type.to_string().to_ascii_lowercase();
            let cast = e.clone();
            *e = Expr::Function(Function {
                name: ObjectName::from(vec![Ident::new(NAMED_CAST)]),
                uses_odbc_syntax: false,
                parameters: FunctionArguments::None,
                args: FunctionArguments::List(FunctionArgumentList {
                    duplicate_treatment: None,
                    args: vec![
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(cast)),
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
                            Value::SingleQuotedString(label),
                        ))),
                    ],
                    clauses: vec![],
                }),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: vec![],
            });
        }
        ControlFlow::Continue(())
    }
}

/// [`alias_apart_from_order`] for a nested query (a subquery, a WITH query), whose columns
/// other parts of the query refer to by name: the renamed query becomes a derived table of
/// a SELECT that gives every column its name back. Only where every item has a name of its
/// own.
fn alias_apart_nested(q: &mut Query) {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    let SetExpr::Select(s) = q.body.as_ref() else {
        return;
    };
    let names: Option<Vec<Ident>> = s
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.clone()),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.clone()),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p)) => p.last().cloned(),
            _ => None,
        })
        .collect();
    let Some(names) = names else {
        return;
    };
    let distinct: HashSet<String> = names.iter().map(norm).collect();
    if distinct.len() != names.len() {
        return;
    }
    let Ok(mut outer) = Parser::new(&GenericDialect {})
        .try_with_sql("SELECT 1 FROM (SELECT 1) AS \"__adql_sorted\"")
        .and_then(|mut p| p.parse_query())
    else {
        return;
    };
    let mut inner = q.clone();
    if alias_apart_from_order(&mut inner).is_empty() {
        return;
    }
    let SetExpr::Select(renamed) = inner.body.as_ref() else {
        return;
    };
    let table = Ident::with_quote('"', "__adql_sorted");
    let projection: Vec<SelectItem> = renamed
        .projection
        .iter()
        .zip(&names)
        .map(|(item, name)| match item {
            SelectItem::ExprWithAlias { alias, .. } if norm(alias) != norm(name) => {
                SelectItem::ExprWithAlias {
                    expr: Expr::CompoundIdentifier(vec![table.clone(), alias.clone()]),
                    alias: name.clone(),
                }
            }
            _ => {
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![table.clone(), name.clone()]))
            }
        })
        .collect();
    let SetExpr::Select(o) = outer.body.as_mut() else {
        return;
    };
    o.projection = projection;
    let Some(TableFactor::Derived { subquery, .. }) = o.from.first_mut().map(|t| &mut t.relation)
    else {
        return;
    };
    **subquery = inner;
    *q = *outer;
}

/// The outermost query's output aliases that an ORDER BY column qualified by a table also
/// names get a name of their own (see the module documentation).
fn alias_apart_from_order(query: &mut Query) -> Renamed {
    let mut renamed = Renamed::new();
    let Some(order) = query.order_by.as_mut() else {
        return renamed;
    };
    let OrderByKind::Expressions(keys) = &mut order.kind else {
        return renamed;
    };
    let SetExpr::Select(s) = query.body.as_mut() else {
        return renamed;
    };
    // Names of columns qualified by a table in ORDER BY.
    struct Qualified(HashSet<String>);
    impl VisitorMut for Qualified {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = e {
                if let Some(last) = parts.last() {
                    self.0.insert(norm(last));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut q = Qualified(HashSet::new());
    for k in keys.iter_mut() {
        let _ = k.expr.visit(&mut q);
    }
    if q.0.is_empty() {
        return renamed;
    }
    // Every output name, to keep the new ones apart from them.
    let taken: HashSet<String> = s
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(norm(alias)),
            _ => None,
        })
        .collect();
    let mut old_to_new: HashMap<String, Ident> = HashMap::new();
    for item in s.projection.iter_mut() {
        let SelectItem::ExprWithAlias { alias, .. } = item else {
            continue;
        };
        let old = norm(alias);
        if !q.0.contains(&old) {
            continue;
        }
        let mut k = renamed.len();
        let mut planned = format!("__adql_output_{k}");
        while taken.contains(&planned) {
            k += 1;
            planned = format!("__adql_output_{k}");
        }
        renamed.push((planned.clone(), old.clone()));
        let new = Ident::with_quote('"', planned);
        old_to_new.insert(old, new.clone());
        *alias = new;
    }
    // ORDER BY keys naming an output column by its alias name it by its new name.
    if !old_to_new.is_empty() {
        for k in keys.iter_mut() {
            if let Expr::Identifier(i) = &k.expr {
                if let Some(new) = old_to_new.get(&norm(i)) {
                    k.expr = Expr::Identifier(new.clone());
                }
            }
        }
    }
    renamed
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    /// t(hip, sn): (1, 5), (2, 75), (3, NULL), (4, 5); u(hip, sn): (2, 20), (3, 30), (9, 90).
    fn context() -> SessionContext {
        let ctx = SessionContext::new();
        crate::register(&ctx);
        for (name, hips, sns) in [
            (
                "t",
                vec![1, 2, 3, 4],
                vec![Some(5), Some(75), None, Some(5)],
            ),
            ("u", vec![2, 3, 9], vec![Some(20), Some(30), Some(90)]),
        ] {
            let schema = Arc::new(Schema::new(vec![
                Field::new("hip", DataType::Int64, false),
                Field::new("sn", DataType::Int64, true),
            ]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(hips)),
                    Arc::new(Int64Array::from(sns)),
                ],
            )
            .expect("batch");
            let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
            ctx.register_table(name, Arc::new(table)).expect("register");
        }
        ctx
    }

    /// The result's column names and rows (every value as i64), in the result's order.
    async fn run(ctx: &SessionContext, adql: &str) -> (Vec<String>, Vec<Vec<Option<i64>>>) {
        let state = ctx.state();
        let plan = crate::plan(&state, adql)
            .await
            .unwrap_or_else(|e| panic!("{adql}: {e}"));
        let names = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let batches = ctx
            .execute_logical_plan(plan)
            .await
            .expect("dataframe")
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{adql}: {e}"));
        let mut rows = Vec::new();
        for b in &batches {
            let cols: Vec<Int64Array> = b
                .columns()
                .iter()
                .map(|c| {
                    let c = cast(c, &DataType::Int64).expect("cast");
                    c.as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("i64")
                        .clone()
                })
                .collect();
            for i in 0..b.num_rows() {
                rows.push(
                    cols.iter()
                        .map(|c| (!c.is_null(i)).then(|| c.value(i)))
                        .collect(),
                );
            }
        }
        (names, rows)
    }

    fn sorted(mut rows: Vec<Vec<Option<i64>>>) -> Vec<Vec<Option<i64>>> {
        rows.sort();
        rows
    }

    #[tokio::test]
    async fn using_columns_without_qualifier_are_the_join_columns() {
        let ctx = context();
        let (_, rows) = run(
            &ctx,
            "SELECT hip, b.sn FROM t AS a JOIN u AS b USING (hip) WHERE hip < 3",
        )
        .await;
        assert_eq!(rows, vec![vec![Some(2), Some(20)]]);
        // RIGHT: the right table's column; FULL: the coalesced one.
        let (_, rows) = run(
            &ctx,
            "SELECT b.hip FROM t AS a RIGHT OUTER JOIN u AS b USING (hip) WHERE hip > 2",
        )
        .await;
        assert_eq!(sorted(rows), vec![vec![Some(3)], vec![Some(9)]]);
        let (_, rows) = run(
            &ctx,
            "SELECT a.hip, b.hip FROM t AS a FULL OUTER JOIN u AS b USING (hip) \
             WHERE hip > 3 OR hip = 1 GROUP BY a.hip, b.hip",
        )
        .await;
        assert_eq!(
            sorted(rows),
            vec![
                vec![None, Some(9)],
                vec![Some(1), None],
                vec![Some(4), None]
            ]
        );
        // Inside select-list expressions too; a FULL join's column is the coalesced one.
        let (names, rows) = run(
            &ctx,
            "SELECT -hip AS m, hip FROM t AS a FULL OUTER JOIN u AS b USING (hip) WHERE hip > 3",
        )
        .await;
        assert_eq!(names, ["m", "hip"]);
        assert_eq!(
            sorted(rows),
            vec![vec![Some(-9), Some(9)], vec![Some(-4), Some(4)]]
        );
        // NATURAL: USING the columns both sides have (sn too, for two tables).
        let (_, rows) = run(
            &ctx,
            "SELECT a.hip FROM t AS a NATURAL JOIN (SELECT b.hip AS hip FROM u AS b) AS d \
             WHERE hip < 3",
        )
        .await;
        assert_eq!(rows, vec![vec![Some(2)]]);
        let (_, rows) = run(&ctx, "SELECT COUNT(*) FROM t NATURAL JOIN u WHERE hip > 0").await;
        assert_eq!(rows, vec![vec![Some(0)]]);
        // In a nested query, an unqualified name is that query's own column.
        let (_, rows) = run(
            &ctx,
            "SELECT a.hip FROM t AS a JOIN u AS b USING (hip) \
             WHERE EXISTS (SELECT * FROM t AS c WHERE hip = 3 AND c.hip = a.hip)",
        )
        .await;
        assert_eq!(rows, vec![vec![Some(3)]]);
    }

    #[tokio::test]
    async fn aggregates_that_differ_by_a_cast_are_apart() {
        let ctx = context();
        let (names, rows) = run(
            &ctx,
            "SELECT MIN(sn) AS a, MIN(CAST(sn AS DOUBLE PRECISION)) AS b, \
             MAX(CAST(hip AS INTEGER)) AS c, MAX(hip) FROM t",
        )
        .await;
        assert_eq!(names, ["a", "b", "c", "max"]);
        assert_eq!(rows, vec![vec![Some(5), Some(5), Some(4), Some(4)]]);
        let (_, rows) = run(
            &ctx,
            "SELECT sn, COUNT(*) AS n FROM t GROUP BY sn \
             HAVING SUM(hip) > SUM(CAST(hip AS SMALLINT)) - 1 ORDER BY MIN(CAST(hip AS BIGINT))",
        )
        .await;
        assert_eq!(
            rows,
            vec![
                vec![Some(5), Some(2)],
                vec![Some(75), Some(1)],
                vec![None, Some(1)]
            ]
        );
    }

    #[tokio::test]
    async fn an_alias_named_like_an_order_by_column_keeps_its_name() {
        let ctx = context();
        let (names, rows) = run(
            &ctx,
            "SELECT t.sn AS hip FROM t WHERE t.hip < 3 ORDER BY t.hip DESC",
        )
        .await;
        assert_eq!(names, ["hip"]);
        assert_eq!(rows, vec![vec![Some(75)], vec![Some(5)]]);
        let (names, rows) = run(
            &ctx,
            "SELECT TOP 2 t.hip AS sn, t.sn AS hip FROM t ORDER BY t.sn, hip, t.hip DESC",
        )
        .await;
        assert_eq!(names, ["sn", "hip"]);
        assert_eq!(rows, vec![vec![Some(4), Some(5)], vec![Some(1), Some(5)]]);
        // In a WITH query and a derived table, whose columns are referred to by name.
        let (names, rows) = run(
            &ctx,
            "WITH c AS (SELECT TOP 2 t.sn AS hip, t.hip AS k FROM t ORDER BY t.hip DESC) \
             SELECT c.hip, c.k, d.sn FROM c, \
             (SELECT TOP 1 t.hip AS sn FROM t ORDER BY t.sn, t.hip) AS d \
             WHERE c.hip = 5 OR d.sn = c.k",
        )
        .await;
        assert_eq!(names, ["hip", "k", "sn"]);
        assert_eq!(rows, vec![vec![Some(5), Some(4), Some(1)]]);
    }
}
