//! The ADQL 2.1 grammar as a whitelist over sqlparser's AST.
//!
//! sqlparser reads a superset of ADQL (it knows many SQL dialects), so after parsing, every
//! node of the query is checked against the ADQL 2.1 BNF (REC-ADQL-2.1, §2 and its appendix
//! A): anything not listed there is refused with its position and what ADQL allows instead.
//! The check also follows the BNF's types where the grammar fixes them: a search condition
//! (WHERE, HAVING, ON, NOT, AND, OR) must be a predicate, not a value (so `WHERE CONTAINS(a,
//! b)` or `WHERE POINT(…)` are refused: ADQL writes `1 = CONTAINS(a, b)`); geometry values
//! cannot be operands of arithmetic or of `||`; the built-in functions take the arguments the
//! BNF gives them; identifiers cannot be reserved words unless delimited.
//!
//! Extensions vostok accepts beyond the BNF, each documented in the README: `CASE`, and a
//! `JOIN` without `ON`/`USING` (which the BNF allows: `<join_specification>` is optional),
//! but for `t1 INNER JOIN t2`, which the IVOA suite refuses.

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CaseWhen, CastKind, CeilFloorKind, DataType, Distinct, Expr, GroupByExpr,
    Ident, JoinConstraint, JoinOperator, LimitClause, ObjectName, ObjectNamePart, OffsetRows,
    OrderByKind, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, SetOperator,
    SetQuantifier, Spanned, TableAlias, TableFactor, TableWithJoins, TopQuantity, UnaryOperator,
    Value, WildcardAdditionalOptions,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use crate::{AdqlError, ErrorKind};

mod functions;

/// ADQL 2.1 reserved words (`<ADQL_reserved_word>` and `<SQL_reserved_word>` of the BNF):
/// a regular identifier may not be one of them.
const RESERVED: &[&str] = &[
    // ADQL
    "abs",
    "acos",
    "area",
    "asin",
    "atan",
    "atan2",
    "bigint",
    "box",
    "cast",
    "ceiling",
    "centroid",
    "char",
    "circle",
    "coalesce",
    "contains",
    "coord1",
    "coord2",
    "coordsys",
    "cos",
    "degrees",
    "distance",
    "double",
    "exp",
    "floor",
    "integer",
    "intersects",
    "in_unit",
    "log",
    "log10",
    "mod",
    "null",
    "pi",
    "point",
    "polygon",
    "power",
    "precision",
    "radians",
    "real",
    "region",
    "rand",
    "round",
    "sin",
    "smallint",
    "sqrt",
    "timestamp",
    "top",
    "tan",
    "truncate",
    "varchar",
    // SQL
    "absolute",
    "action",
    "add",
    "all",
    "allocate",
    "alter",
    "and",
    "any",
    "are",
    "as",
    "asc",
    "assertion",
    "at",
    "authorization",
    "avg",
    "begin",
    "between",
    "bit",
    "bit_length",
    "both",
    "by",
    "cascade",
    "cascaded",
    "case",
    "catalog",
    "character",
    "char_length",
    "character_length",
    "check",
    "close",
    "collate",
    "collation",
    "column",
    "commit",
    "connect",
    "connection",
    "constraint",
    "constraints",
    "continue",
    "convert",
    "corresponding",
    "count",
    "create",
    "cross",
    "current",
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "cursor",
    "date",
    "day",
    "deallocate",
    "decimal",
    "declare",
    "default",
    "deferrable",
    "deferred",
    "delete",
    "desc",
    "describe",
    "descriptor",
    "diagnostics",
    "disconnect",
    "distinct",
    "domain",
    "drop",
    "else",
    "end",
    "escape",
    "except",
    "exception",
    "exec",
    "execute",
    "exists",
    "external",
    "extract",
    "false",
    "fetch",
    "first",
    "float",
    "for",
    "foreign",
    "found",
    "from",
    "full",
    "get",
    "global",
    "go",
    "goto",
    "grant",
    "group",
    "having",
    "hour",
    "identity",
    "ilike",
    "immediate",
    "in",
    "indicator",
    "initially",
    "inner",
    "input",
    "insensitive",
    "insert",
    "int",
    "intersect",
    "interval",
    "into",
    "is",
    "isolation",
    "join",
    "key",
    "language",
    "last",
    "leading",
    "left",
    "level",
    "like",
    "local",
    "lower",
    "match",
    "max",
    "min",
    "minute",
    "module",
    "month",
    "names",
    "national",
    "natural",
    "nchar",
    "next",
    "no",
    "not",
    "nullif",
    "numeric",
    "octet_length",
    "of",
    "on",
    "only",
    "open",
    "option",
    "or",
    "order",
    "outer",
    "output",
    "overlaps",
    "pad",
    "partial",
    "position",
    "prepare",
    "preserve",
    "primary",
    "prior",
    "privileges",
    "procedure",
    "public",
    "read",
    "references",
    "relative",
    "restrict",
    "revoke",
    "right",
    "rollback",
    "rows",
    "schema",
    "scroll",
    "second",
    "section",
    "select",
    "session",
    "session_user",
    "set",
    "size",
    "some",
    "space",
    "sql",
    "sqlcode",
    "sqlerror",
    "sqlstate",
    "substring",
    "sum",
    "system_user",
    "table",
    "temporary",
    "then",
    "time",
    "timezone_hour",
    "timezone_minute",
    "to",
    "trailing",
    "transaction",
    "translate",
    "translation",
    "trim",
    "true",
    "union",
    "unique",
    "unknown",
    "update",
    "upper",
    "usage",
    "user",
    "using",
    "value",
    "values",
    "varying",
    "view",
    "when",
    "whenever",
    "where",
    "with",
    "work",
    "write",
    "year",
    "zone",
];

/// Is `word` (any case) an ADQL reserved word?
pub fn is_reserved(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    RESERVED.contains(&w.as_str())
}

/// What an expression is, as far as the grammar can tell without table metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A search condition (predicate): only where the grammar wants one.
    Bool,
    /// A numeric value.
    Num,
    /// A character string value.
    Str,
    /// A geometry value (POINT, CIRCLE, …).
    Geom,
    /// A numeric literal: the BNF lets literals stand wherever a value primary may, so a
    /// literal is accepted as a character operand too (`x || 9`).
    NumLit,
    /// A string literal (accepted as a numeric operand too, as the BNF has it: `'30' * 2`).
    StrLit,
    /// A column, a subquery, a UDF, NULL…: any value.
    Any,
}

type Res<T> = Result<T, AdqlError>;

fn err(message: impl Into<String>, span: Span) -> AdqlError {
    let (line, column) = if span.start.line > 0 {
        (Some(span.start.line), Some(span.start.column))
    } else {
        (None, None)
    };
    AdqlError {
        kind: ErrorKind::Syntax,
        message: message.into(),
        line,
        column,
    }
}

/// The validator: the set of further function names accepted (lower case).
pub(crate) struct Validator<'a> {
    pub(crate) extra_functions: &'a HashSet<String>,
    /// Names of the user-defined functions vostok registers (lower case).
    pub(crate) udfs: &'a [&'a str],
    /// Current expression nesting, bounded by [`MAX_DEPTH`].
    pub(crate) depth: std::cell::Cell<usize>,
    /// Whether a call of an undeclared function with a prefixed name is a user-defined
    /// function (see [`crate::Options::accept_undeclared_udfs`]).
    pub(crate) undeclared_udfs: bool,
}

/// Deepest expression nesting accepted: `1+1+…+1` with thousands of terms would otherwise
/// exhaust the stack here and in every later pass over the tree (found by cargo fuzz).
const MAX_DEPTH: usize = 400;

impl Validator<'_> {
    /// Checks a whole query (the top level may have WITH).
    pub(crate) fn query(&self, q: &Query) -> Res<()> {
        self.query_at(q, true)
    }

    fn query_at(&self, q: &Query, top: bool) -> Res<()> {
        if let Some(with) = &q.with {
            if !top {
                return Err(err(
                    "WITH is only allowed at the start of the whole query, not in a subquery",
                    with.with_token.0.span,
                ));
            }
            if with.recursive {
                return Err(err("WITH RECURSIVE is not ADQL", with.with_token.0.span));
            }
            for cte in &with.cte_tables {
                self.ident(&cte.alias.name)?;
                if !cte.alias.columns.is_empty() {
                    return Err(err(
                        "a column list after a WITH name is not ADQL; name the columns in the SELECT",
                        cte.alias.name.span,
                    ));
                }
                if cte.materialized.is_some() || cte.from.is_some() {
                    return Err(err("this WITH syntax is not ADQL", cte.alias.name.span));
                }
                self.query_at(&cte.query, false)?;
            }
        }
        if q.fetch.is_some() {
            return Err(err(
                "FETCH FIRST is not ADQL; use SELECT TOP n",
                q.body.span(),
            ));
        }
        if !q.locks.is_empty()
            || q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
            || !q.pipe_operators.is_empty()
        {
            return Err(err("this clause is not ADQL", q.body.span()));
        }
        self.set_expr(&q.body)?;
        if let Some(ob) = &q.order_by {
            if ob.interpolate.is_some() {
                return Err(err("INTERPOLATE is not ADQL", q.body.span()));
            }
            match &ob.kind {
                OrderByKind::All(_) => {
                    return Err(err("ORDER BY ALL is not ADQL", q.body.span()));
                }
                OrderByKind::Expressions(items) => {
                    for item in items {
                        if item.options.nulls_first.is_some() {
                            return Err(err("NULLS FIRST/LAST is not ADQL", item.expr.span()));
                        }
                        if item.with_fill.is_some() {
                            return Err(err("WITH FILL is not ADQL", item.expr.span()));
                        }
                        self.value(&item.expr)?;
                    }
                }
            }
        }
        match &q.limit_clause {
            None => {}
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if let Some(l) = limit {
                    return Err(err(
                        "LIMIT is not ADQL; use SELECT TOP n (and OFFSET m)",
                        l.span(),
                    ));
                }
                if let Some(e) = limit_by.first() {
                    return Err(err("LIMIT BY is not ADQL", e.span()));
                }
                if let Some(off) = offset {
                    if off.rows != OffsetRows::None {
                        return Err(err(
                            "OFFSET … ROWS is not ADQL; write OFFSET n",
                            off.value.span(),
                        ));
                    }
                    unsigned_integer(&off.value, "OFFSET")?;
                }
            }
            Some(LimitClause::OffsetCommaLimit { offset, .. }) => {
                return Err(err("LIMIT a, b is not ADQL", offset.span()));
            }
        }
        Ok(())
    }

    fn set_expr(&self, body: &SetExpr) -> Res<()> {
        match body {
            SetExpr::Select(s) => self.select(s),
            SetExpr::Query(q) => self.query_at(q, false),
            SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => {
                match op {
                    SetOperator::Union | SetOperator::Except | SetOperator::Intersect => {}
                    SetOperator::Minus => {
                        return Err(err("MINUS is not ADQL; use EXCEPT", left.span()));
                    }
                }
                match set_quantifier {
                    SetQuantifier::None => {}
                    SetQuantifier::All => {}
                    _ => {
                        return Err(err(
                            format!("{op} {set_quantifier} is not ADQL; write {op} or {op} ALL"),
                            right.span(),
                        ));
                    }
                }
                self.set_expr(left)?;
                self.set_expr(right)
            }
            other => Err(err("only SELECT queries are ADQL", other.span())),
        }
    }

    fn select(&self, s: &Select) -> Res<()> {
        let here = s.select_token.0.span;
        if !s.optimizer_hints.is_empty()
            || s.select_modifiers.is_some()
            || s.exclude.is_some()
            || s.into.is_some()
            || !s.lateral_views.is_empty()
            || s.prewhere.is_some()
            || !s.connect_by.is_empty()
            || !s.cluster_by.is_empty()
            || !s.distribute_by.is_empty()
            || !s.sort_by.is_empty()
            || !s.named_window.is_empty()
            || s.qualify.is_some()
            || s.value_table_mode.is_some()
        {
            return Err(err("this SELECT syntax is not ADQL", here));
        }
        match &s.distinct {
            None | Some(Distinct::All) | Some(Distinct::Distinct) => {}
            Some(_) => return Err(err("DISTINCT ON is not ADQL", here)),
        }
        if let Some(top) = &s.top {
            if top.percent || top.with_ties {
                return Err(err("TOP … PERCENT / WITH TIES is not ADQL", here));
            }
            if s.top_before_distinct && s.distinct.is_some() {
                return Err(err(
                    "ADQL writes SELECT DISTINCT TOP n, not SELECT TOP n DISTINCT",
                    here,
                ));
            }
            match &top.quantity {
                Some(TopQuantity::Constant(_)) => {}
                Some(TopQuantity::Expr(e)) => {
                    return Err(err("TOP takes a plain unsigned integer", e.span()));
                }
                None => return Err(err("TOP needs a number of rows", here)),
            }
        }
        if s.from.is_empty() {
            return Err(err(
                "ADQL requires a FROM clause (SELECT … FROM table)",
                s.projection.first().map_or(here, |p| p.span()),
            ));
        }
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    self.value(e)?;
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    self.value(expr)?;
                    self.ident(alias)?;
                }
                SelectItem::ExprWithAliases { expr, .. } => {
                    return Err(err("only one alias per column is ADQL", expr.span()));
                }
                SelectItem::Wildcard(opts) => {
                    // The BNF has `*` alone, but `SELECT a, *` is common in archive
                    // documentation and VOLLT accepts it: accepted.
                    wildcard_options(opts)?;
                }
                SelectItem::QualifiedWildcard(kind, opts) => {
                    wildcard_options(opts)?;
                    match kind {
                        SelectItemQualifiedWildcardKind::ObjectName(name) => {
                            self.object_name(name, 3)?;
                        }
                        SelectItemQualifiedWildcardKind::Expr(e) => {
                            return Err(err("only table.* is ADQL here", e.span()));
                        }
                    }
                }
            }
        }
        for t in &s.from {
            self.table_with_joins(t)?;
        }
        if let Some(w) = &s.selection {
            self.condition(w, "WHERE")?;
        }
        match &s.group_by {
            GroupByExpr::All(_) => return Err(err("GROUP BY ALL is not ADQL", here)),
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(err("GROUP BY modifiers are not ADQL", here));
                }
                for e in exprs {
                    self.value(e)?;
                }
            }
        }
        if let Some(h) = &s.having {
            self.condition(h, "HAVING")?;
        }
        Ok(())
    }

    fn table_with_joins(&self, t: &TableWithJoins) -> Res<()> {
        self.table_factor(&t.relation)?;
        for j in &t.joins {
            self.table_factor(&j.relation)?;
            let constraint = match &j.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c) => c,
                JoinOperator::CrossJoin(_) => {
                    return Err(err(
                        "CROSS JOIN is not ADQL; list the tables separated by commas",
                        j.relation.span(),
                    ));
                }
                _ => return Err(err("this kind of JOIN is not ADQL", j.relation.span())),
            };
            match constraint {
                JoinConstraint::On(e) => self.condition(e, "ON")?,
                JoinConstraint::Using(cols) => {
                    for c in cols {
                        self.object_name(c, 1)?;
                    }
                }
                JoinConstraint::None => inner_join_condition(j)?,
                JoinConstraint::Natural => {}
            }
        }
        Ok(())
    }

    fn table_factor(&self, f: &TableFactor) -> Res<()> {
        match f {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_hints,
            } => {
                if args.is_some() {
                    return Err(err("table functions are not ADQL", f.span()));
                }
                if !with_hints.is_empty()
                    || version.is_some()
                    || *with_ordinality
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || sample.is_some()
                    || !index_hints.is_empty()
                {
                    return Err(err("this table syntax is not ADQL", f.span()));
                }
                self.object_name(name, 3)?;
                if let Some(a) = alias {
                    self.table_alias(a)?;
                }
                Ok(())
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                sample,
            } => {
                if *lateral || sample.is_some() {
                    return Err(err("this subquery syntax is not ADQL", f.span()));
                }
                let Some(a) = alias else {
                    return Err(err(
                        "a subquery in FROM needs a name: (SELECT …) AS name",
                        f.span(),
                    ));
                };
                self.table_alias(a)?;
                self.query_at(subquery, false)
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                if let Some(a) = alias {
                    return Err(err(
                        "a parenthesised join cannot be given a name in ADQL",
                        a.name.span,
                    ));
                }
                self.table_with_joins(table_with_joins)
            }
            other => Err(err("this FROM item is not ADQL", other.span())),
        }
    }

    fn table_alias(&self, a: &TableAlias) -> Res<()> {
        if !a.columns.is_empty() {
            return Err(err(
                "column names after a table alias are not ADQL",
                a.name.span,
            ));
        }
        self.ident(&a.name)
    }

    /// A dotted name of at most `max` parts.
    fn object_name(&self, name: &ObjectName, max: usize) -> Res<()> {
        if name.0.len() > max {
            return Err(err(
                format!(
                    "'{name}' has too many parts: ADQL allows at most {max} ({})",
                    if max == 3 {
                        "catalog.schema.table"
                    } else {
                        "a plain name"
                    }
                ),
                name.span(),
            ));
        }
        for p in &name.0 {
            match p {
                ObjectNamePart::Identifier(i) => self.ident(i)?,
                _ => return Err(err("this name is not ADQL", name.span())),
            }
        }
        Ok(())
    }

    /// A regular identifier may not be a reserved word; delimited ones may be anything.
    fn ident(&self, i: &Ident) -> Res<()> {
        match i.quote_style {
            None => {
                if is_reserved(&i.value) {
                    return Err(err(
                        format!(
                            "'{}' is a reserved word in ADQL; if it is a name, delimit it: \"{}\"",
                            i.value, i.value
                        ),
                        i.span,
                    ));
                }
                Ok(())
            }
            Some('"') => Ok(()),
            Some(_) => Err(err(
                "only double quotes delimit identifiers in ADQL",
                i.span,
            )),
        }
    }

    /// A search condition (WHERE, HAVING, ON, CASE WHEN, operands of AND/OR/NOT).
    fn condition(&self, e: &Expr, clause: &str) -> Res<()> {
        match self.expr(e)? {
            Kind::Bool => Ok(()),
            _ => Err(err(
                match predicate_function(e) {
                    Some(f) => format!(
                        "{f} gives 0 or 1, not a condition: write 1 = {f}(…) in {clause}"
                    ),
                    None => format!(
                        "{clause} needs a condition (a comparison, BETWEEN, LIKE, IN, IS NULL or EXISTS), not a value"
                    ),
                },
                e.span(),
            )),
        }
    }

    /// A value (not a condition).
    fn value(&self, e: &Expr) -> Res<Kind> {
        let k = self.expr(e)?;
        if k == Kind::Bool {
            return Err(err(
                "a condition cannot be used as a value in ADQL (CASE WHEN … THEN 1 ELSE 0 END gives one)",
                e.span(),
            ));
        }
        Ok(k)
    }

    /// A numeric operand: any value but a geometry or a computed character string.
    fn numeric(&self, e: &Expr) -> Res<()> {
        numeric_kind(self.value(e)?, e)
    }

    /// A character operand: any value but a geometry or a computed number.
    fn character(&self, e: &Expr) -> Res<()> {
        match self.value(e)? {
            Kind::Geom => Err(err(
                "a geometry cannot be used as a character string",
                e.span(),
            )),
            Kind::Num => Err(err(
                "a number cannot be used as a character string (CAST it to VARCHAR)",
                e.span(),
            )),
            _ => Ok(()),
        }
    }

    fn expr(&self, e: &Expr) -> Res<Kind> {
        let depth = self.depth.get() + 1;
        if depth > MAX_DEPTH {
            // No position: a span would walk the whole (deep) subtree.
            return Err(err(
                format!(
                    "the query is nested too deeply (more than {MAX_DEPTH} levels of expressions)"
                ),
                Span::empty(),
            ));
        }
        self.depth.set(depth);
        let k = self.expr_inner(e);
        self.depth.set(depth - 1);
        k
    }

    fn expr_inner(&self, e: &Expr) -> Res<Kind> {
        match e {
            Expr::Identifier(i) => {
                self.ident(i)?;
                Ok(Kind::Any)
            }
            Expr::CompoundIdentifier(parts) => self.column_reference(e, parts),
            Expr::Value(v) => literal(e, &v.value),
            Expr::Nested(inner) => self.expr(inner),
            Expr::UnaryOp { op, expr } => self.unary(e, op, expr),
            Expr::BinaryOp { left, op, right } => self.binary(e, left, op, right),
            Expr::IsNull(x) | Expr::IsNotNull(x) => {
                self.value(x)?;
                Ok(Kind::Bool)
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.value(expr)?;
                self.value(low)?;
                self.value(high)?;
                Ok(Kind::Bool)
            }
            Expr::InList { expr, list, .. } => {
                self.value(expr)?;
                if list.is_empty() {
                    return Err(err("IN needs at least one value", e.span()));
                }
                for v in list {
                    self.value(v)?;
                }
                Ok(Kind::Bool)
            }
            Expr::InSubquery { expr, subquery, .. } => {
                self.value(expr)?;
                self.query_at(subquery, false)?;
                Ok(Kind::Bool)
            }
            Expr::Exists { subquery, .. } => {
                self.query_at(subquery, false)?;
                Ok(Kind::Bool)
            }
            Expr::Subquery(q) => {
                self.query_at(q, false)?;
                Ok(Kind::Any)
            }
            Expr::Like {
                any,
                expr,
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                any,
                expr,
                pattern,
                escape_char,
                ..
            } => self.like(e, *any, expr, pattern, escape_char.is_some()),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(operand.as_deref(), conditions, else_result.as_deref()),
            Expr::Cast {
                kind,
                expr,
                data_type,
                array,
                format,
            } => {
                if *kind != CastKind::Cast || *array || format.is_some() {
                    return Err(err("only CAST(x AS type) is ADQL", e.span()));
                }
                self.value(expr)?;
                cast_target(data_type, e.span())
            }
            Expr::Floor { expr, field } => {
                match field {
                    CeilFloorKind::DateTimeField(
                        datafusion::sql::sqlparser::ast::DateTimeField::NoDateTime,
                    ) => {}
                    _ => return Err(err("FLOOR takes one argument in ADQL", e.span())),
                }
                self.numeric(expr)?;
                Ok(Kind::Num)
            }
            Expr::Ceil { .. } => Err(err("CEIL is not ADQL; use CEILING", e.span())),
            Expr::Function(f) => self.function(e, f),
            Expr::Substring { .. }
            | Expr::Trim { .. }
            | Expr::Position { .. }
            | Expr::Overlay { .. } => Err(err(
                "this SQL string function is not ADQL (ADQL has LOWER, UPPER, ||, LIKE and ILIKE)",
                e.span(),
            )),
            _ => Err(err("this expression is not ADQL", e.span())),
        }
    }

    /// `catalog.schema.table.column` and its shorter forms.
    fn column_reference(&self, e: &Expr, parts: &[Ident]) -> Res<Kind> {
        if parts.len() > 4 {
            return Err(err(
                "a column reference has at most 4 parts in ADQL (catalog.schema.table.column)",
                e.span(),
            ));
        }
        for p in parts {
            self.ident(p)?;
        }
        Ok(Kind::Any)
    }

    /// `+x`, `-x`, `NOT c`, `~x`.
    fn unary(&self, e: &Expr, op: &UnaryOperator, expr: &Expr) -> Res<Kind> {
        match op {
            UnaryOperator::Plus | UnaryOperator::Minus => {
                // One pass over the operand: evaluating it twice per sign made
                // `++++…x` exponential (found by cargo fuzz).
                let k = self.value(expr)?;
                numeric_kind(k, expr)?;
                Ok(if k == Kind::NumLit {
                    Kind::NumLit
                } else {
                    Kind::Num
                })
            }
            UnaryOperator::Not => {
                self.condition(expr, "NOT")?;
                Ok(Kind::Bool)
            }
            UnaryOperator::BitwiseNot => {
                self.numeric(expr)?;
                Ok(Kind::Num)
            }
            _ => Err(err(format!("the operator {op} is not ADQL"), e.span())),
        }
    }

    /// `x [NOT] LIKE pattern` and `x [NOT] ILIKE pattern`.
    fn like(&self, e: &Expr, any: bool, expr: &Expr, pattern: &Expr, escape: bool) -> Res<Kind> {
        if any {
            return Err(err("LIKE ANY is not ADQL", e.span()));
        }
        if escape {
            return Err(err("LIKE … ESCAPE is not ADQL", e.span()));
        }
        self.character(expr)?;
        self.character(pattern)?;
        Ok(Kind::Bool)
    }

    /// `CASE [operand] WHEN … THEN … [ELSE …] END`: the common kind of its results.
    fn case(
        &self,
        operand: Option<&Expr>,
        conditions: &[CaseWhen],
        else_result: Option<&Expr>,
    ) -> Res<Kind> {
        if let Some(o) = operand {
            self.value(o)?;
        }
        let mut kind = None;
        for w in conditions {
            if operand.is_some() {
                self.value(&w.condition)?;
            } else {
                self.condition(&w.condition, "WHEN")?;
            }
            let k = self.value(&w.result)?;
            kind = Some(merge(kind, k));
        }
        if let Some(x) = else_result {
            let k = self.value(x)?;
            kind = Some(merge(kind, k));
        }
        Ok(kind.unwrap_or(Kind::Any))
    }

    fn binary(&self, e: &Expr, left: &Expr, op: &BinaryOperator, right: &Expr) -> Res<Kind> {
        use BinaryOperator as B;
        match op {
            B::Plus | B::Minus | B::Multiply | B::Divide => {
                self.numeric(left)?;
                self.numeric(right)?;
                Ok(Kind::Num)
            }
            B::BitwiseAnd | B::BitwiseOr | B::BitwiseXor => {
                self.numeric(left)?;
                self.numeric(right)?;
                Ok(Kind::Num)
            }
            B::StringConcat => {
                self.character(left)?;
                self.character(right)?;
                Ok(Kind::Str)
            }
            B::Eq | B::NotEq | B::Lt | B::Gt | B::LtEq | B::GtEq => {
                self.value(left)?;
                self.value(right)?;
                Ok(Kind::Bool)
            }
            B::And | B::Or => {
                let word = if *op == B::And { "AND" } else { "OR" };
                self.condition(left, word)?;
                self.condition(right, word)?;
                Ok(Kind::Bool)
            }
            B::Modulo => Err(err("'%' is not ADQL; use MOD(a, b)", e.span())),
            _ => Err(err(format!("the operator {op} is not ADQL"), e.span())),
        }
    }
}

/// `t1 INNER JOIN t2` needs ON or USING: the IVOA suite (lyonetia, ivoa/2_from) refuses it,
/// while its DaCHS records accept a join without a condition otherwise (`t1 JOIN t2`,
/// `t1 LEFT OUTER JOIN t2`, `t1 INNER JOIN (t2 JOIN t3)`), as the BNF's optional
/// `<join_specification>` allows.
fn inner_join_condition(j: &datafusion::sql::sqlparser::ast::Join) -> Res<()> {
    match (&j.join_operator, &j.relation) {
        (JoinOperator::Inner(_), TableFactor::NestedJoin { .. }) => Ok(()),
        (JoinOperator::Inner(_), r) => Err(err(
            "INNER JOIN needs a join condition: add ON … or USING (…), or write NATURAL JOIN",
            r.span(),
        )),
        _ => Ok(()),
    }
}

/// A literal: a number, a string or NULL.
fn literal(e: &Expr, v: &Value) -> Res<Kind> {
    match v {
        Value::Number(_, _) => Ok(Kind::NumLit),
        Value::SingleQuotedString(_) => Ok(Kind::StrLit),
        Value::Null => Ok(Kind::Any),
        Value::Boolean(_) => Err(err(
            "TRUE and FALSE are not ADQL values; use 1 and 0",
            e.span(),
        )),
        _ => Err(err("this literal is not ADQL", e.span())),
    }
}

/// A numeric operand's kind: anything but a geometry or a computed character string.
fn numeric_kind(k: Kind, e: &Expr) -> Res<()> {
    match k {
        Kind::Geom => Err(err("a geometry cannot be used as a number", e.span())),
        Kind::Str => Err(err(
            "a character string cannot be used as a number (CAST it)",
            e.span(),
        )),
        _ => Ok(()),
    }
}

fn merge(acc: Option<Kind>, k: Kind) -> Kind {
    match acc {
        None => k,
        Some(a) if a == k => a,
        Some(_) => Kind::Any,
    }
}

/// `CONTAINS`/`INTERSECTS` when `e` is a call to one of them (for a helpful message).
fn predicate_function(e: &Expr) -> Option<&'static str> {
    let Expr::Function(f) = e else {
        return None;
    };
    let name = f.name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    match name.as_str() {
        "contains" => Some("CONTAINS"),
        "intersects" => Some("INTERSECTS"),
        _ => None,
    }
}

fn unsigned_integer(e: &Expr, what: &str) -> Res<()> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) if n.chars().all(|c| c.is_ascii_digit()) => Ok(()),
            _ => Err(err(format!("{what} takes an unsigned integer"), e.span())),
        },
        _ => Err(err(format!("{what} takes an unsigned integer"), e.span())),
    }
}

fn wildcard_options(o: &WildcardAdditionalOptions) -> Res<()> {
    if o.opt_ilike.is_some()
        || o.opt_exclude.is_some()
        || o.opt_except.is_some()
        || o.opt_replace.is_some()
        || o.opt_rename.is_some()
    {
        return Err(err("'*' takes no options in ADQL", o.wildcard_token.0.span));
    }
    Ok(())
}

/// `<cast_target>`: CHAR[(n)], VARCHAR[(n)], SMALLINT, INTEGER, BIGINT, REAL, DOUBLE PRECISION,
/// TIMESTAMP, POINT, CIRCLE, POLYGON.
fn cast_target(t: &DataType, span: Span) -> Res<Kind> {
    use DataType as D;
    match t {
        D::SmallInt(None) | D::Integer(None) | D::BigInt(None) | D::Real | D::DoublePrecision => {
            Ok(Kind::Num)
        }
        D::Char(_) | D::Character(_) | D::Varchar(_) | D::CharacterVarying(_) => Ok(Kind::Str),
        D::Timestamp(None, datafusion::sql::sqlparser::ast::TimezoneInfo::None) => Ok(Kind::Any),
        D::Custom(name, mods) if mods.is_empty() && name.0.len() == 1 => {
            let n = name.to_string().to_ascii_lowercase();
            if matches!(n.as_str(), "point" | "circle" | "polygon") {
                Ok(Kind::Geom)
            } else {
                Err(cast_err(t, span))
            }
        }
        _ => Err(cast_err(t, span)),
    }
}

fn cast_err(t: &DataType, span: Span) -> AdqlError {
    err(
        format!(
            "CAST to {t} is not ADQL; the types are SMALLINT, INTEGER, BIGINT, REAL, DOUBLE PRECISION, CHAR(n), VARCHAR(n), TIMESTAMP, POINT, CIRCLE, POLYGON"
        ),
        span,
    )
}
