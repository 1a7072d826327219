//! Checks an ADQL query AST for what sqlparser accepts but ADQL does not, and rewrites the
//! ADQL-only parts into what DataFusion plans: `TOP n` into a limit, ADQL function names
//! into DataFusion's, and names for unnamed select items.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Distinct, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, LimitClause, ObjectName, ObjectNamePart, Query, Select, SelectItem,
    SetExpr, TopQuantity, UnaryOperator, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use crate::{AdqlError, ErrorKind, Options};

/// Validates ADQL-only rules and rewrites the query in place.
pub(crate) fn check_and_rewrite(query: &mut Query, opts: &Options) -> Result<(), AdqlError> {
    let extra: HashSet<String> = opts
        .extra_functions
        .iter()
        .map(|f| f.to_ascii_lowercase())
        .collect();
    crate::validate::Validator {
        extra_functions: &extra,
        udfs: crate::UDF_NAMES,
        depth: std::cell::Cell::new(0),
        undeclared_udfs: opts.accept_undeclared_udfs,
    }
    .query(query)?;
    let mut v = Rewriter;
    if let ControlFlow::Break(e) = query.visit(&mut v) {
        return Err(e);
    }
    name_select_items(query);
    Ok(())
}

struct Rewriter;

fn err_at(message: impl Into<String>, span: Span) -> AdqlError {
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

fn not_adql(what: &str) -> ControlFlow<AdqlError> {
    ControlFlow::Break(AdqlError {
        kind: ErrorKind::Syntax,
        message: format!("{what} is not ADQL"),
        line: None,
        column: None,
    })
}

impl VisitorMut for Rewriter {
    type Break = AdqlError;

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<AdqlError> {
        if q.fetch.is_some() {
            return not_adql("FETCH FIRST");
        }
        if !q.locks.is_empty() {
            return not_adql("FOR UPDATE/SHARE");
        }
        if q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
            || !q.pipe_operators.is_empty()
        {
            return not_adql("this clause");
        }
        if let Some(w) = &q.with {
            if w.recursive {
                return not_adql("WITH RECURSIVE");
            }
        }
        if let Some(LimitClause::OffsetCommaLimit { .. }) = q.limit_clause {
            return not_adql("LIMIT a, b");
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &mut Query) -> ControlFlow<AdqlError> {
        // In a set operation, each SELECT's TOP limits that SELECT alone.
        if let SetExpr::SetOperation { left, right, .. } = q.body.as_mut() {
            limit_operands(left);
            limit_operands(right);
        }
        // TOP n → LIMIT n, keeping an ADQL OFFSET.
        let top = match q.body.as_mut() {
            SetExpr::Select(s) => s.top.take(),
            _ => None,
        };
        if let Some(top) = top {
            if top.percent || top.with_ties {
                return not_adql("TOP … PERCENT / WITH TIES");
            }
            let n = match top.quantity {
                Some(TopQuantity::Constant(n)) => Expr::value(Value::Number(n.to_string(), false)),
                Some(TopQuantity::Expr(e)) => e,
                None => return not_adql("TOP without a number"),
            };
            let offset = match q.limit_clause.take() {
                Some(LimitClause::LimitOffset { offset, .. }) => offset,
                _ => None,
            };
            q.limit_clause = Some(LimitClause::LimitOffset {
                limit: Some(n),
                offset,
                limit_by: vec![],
            });
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &mut Select) -> ControlFlow<AdqlError> {
        if let Some(Distinct::On(_)) = s.distinct {
            return not_adql("DISTINCT ON");
        }
        if s.into.is_some() {
            return not_adql("SELECT INTO");
        }
        if !s.lateral_views.is_empty()
            || s.qualify.is_some()
            || !s.named_window.is_empty()
            || s.prewhere.is_some()
        {
            return not_adql("this clause");
        }
        if !s.cluster_by.is_empty()
            || !s.distribute_by.is_empty()
            || !s.sort_by.is_empty()
            || !s.connect_by.is_empty()
        {
            return not_adql("this clause");
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<AdqlError> {
        // ~x → (-x - 1): two's complement, for DataFusion has no bitwise NOT.
        if let Expr::UnaryOp {
            op: UnaryOperator::BitwiseNot,
            expr,
        } = e
        {
            let inner = std::mem::replace(expr.as_mut(), Expr::value(Value::Null));
            *e = Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(Expr::UnaryOp {
                    op: UnaryOperator::Minus,
                    expr: Box::new(Expr::Nested(Box::new(inner))),
                }),
                op: BinaryOperator::Minus,
                right: Box::new(Expr::value(Value::Number("1".into(), false))),
            }));
            return ControlFlow::Continue(());
        }
        let Expr::Function(f) = e else {
            return ControlFlow::Continue(());
        };
        let Some(ObjectNamePart::Identifier(ident)) = f.name.0.last() else {
            return ControlFlow::Continue(());
        };
        let span = ident.span;
        if f.name.0.len() != 1 {
            return ControlFlow::Break(err_at(
                format!("'{}' is not a function ADQL knows", f.name),
                span,
            ));
        }
        if f.over.is_some() {
            return ControlFlow::Break(err_at("window functions (OVER) are not ADQL", span));
        }
        if f.filter.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
            return ControlFlow::Break(err_at("this function syntax is not ADQL", span));
        }
        let name = ident.value.to_ascii_lowercase();
        let rename =
            |to: &str| ObjectName(vec![ObjectNamePart::Identifier(Ident::with_span(span, to))]);
        // ADQL 2.1 §2.3 (Table 1): the math functions take and return DOUBLE. DataFusion
        // keeps integer (ABS, MOD, ROUND) or REAL (SQRT, EXP, …) types, so ABS(5) / 2 was 2
        // and SQRT of a REAL column was rounded to single precision (found by the differential
        // test): their value arguments are cast to DOUBLE first.
        let double_args: &[usize] = match name.as_str() {
            "abs" | "sqrt" | "exp" | "log" | "log10" | "sin" | "cos" | "tan" | "asin" | "acos"
            | "atan" | "cot" | "degrees" | "radians" | "ceiling" => &[0],
            "round" | "truncate" => &[0],
            "mod" | "power" | "atan2" => &[0, 1],
            _ => &[],
        };
        if !double_args.is_empty() {
            if let FunctionArguments::List(list) = &mut f.args {
                for &i in double_args {
                    if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(x))) =
                        list.args.get_mut(i)
                    {
                        let inner = std::mem::replace(x, Expr::value(Value::Null));
                        *x = Expr::Cast {
                            kind: CastKind::Cast,
                            expr: Box::new(inner),
                            data_type: DataType::DoublePrecision,
                            array: false,
                            format: None,
                        };
                    }
                }
            }
        }
        match name.as_str() {
            "log" => f.name = rename("ln"),
            "ceiling" => f.name = rename("ceil"),
            "truncate" => f.name = rename("trunc"),
            "rand" => {
                // RAND(seed): DataFusion's random() takes no seed.
                f.name = rename("random");
                f.args = FunctionArguments::List(
                    datafusion::sql::sqlparser::ast::FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![],
                        clauses: vec![],
                    },
                );
            }
            "mod" => {
                let args = plain_args(&f.args);
                match args.as_deref() {
                    Some([a, b]) => {
                        *e = Expr::Nested(Box::new(Expr::BinaryOp {
                            left: Box::new(a.clone()),
                            op: BinaryOperator::Modulo,
                            right: Box::new(b.clone()),
                        }));
                    }
                    _ => return ControlFlow::Break(err_at("MOD takes two arguments", span)),
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Turns every `SELECT TOP n …` operand of a set operation into `(SELECT … LIMIT n)`.
fn limit_operands(e: &mut SetExpr) {
    match e {
        SetExpr::SetOperation { left, right, .. } => {
            limit_operands(left);
            limit_operands(right);
        }
        SetExpr::Select(s) if s.top.is_some() => {
            let mut select = s.clone();
            let n = match select.top.take().and_then(|t| t.quantity) {
                Some(TopQuantity::Constant(n)) => Expr::value(Value::Number(n.to_string(), false)),
                Some(TopQuantity::Expr(x)) => x,
                None => return,
            };
            *e = SetExpr::Query(Box::new(Query {
                with: None,
                body: Box::new(SetExpr::Select(select)),
                order_by: None,
                limit_clause: Some(LimitClause::LimitOffset {
                    limit: Some(n),
                    offset: None,
                    limit_by: vec![],
                }),
                fetch: None,
                locks: vec![],
                for_clause: None,
                settings: None,
                format_clause: None,
                pipe_operators: vec![],
            }));
        }
        _ => {}
    }
}

/// Replaces `REGION('…')` by the geometry constructor it describes, for planning: STC-S
/// `Position`, `Circle`, `Box` and `Polygon` (with an optional frame, reference position and
/// flavour), or the DALI serialisation (2 numbers: a point, 3: a circle, 6 or more: a polygon).
/// Other STC-S (Union, Intersection, Not, …) is refused with a message.
pub(crate) fn expand_regions(query: &mut Query) -> Result<(), AdqlError> {
    struct Regions;
    impl VisitorMut for Regions {
        type Break = AdqlError;
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<AdqlError> {
            let Expr::Function(f) = e else {
                return ControlFlow::Continue(());
            };
            let Some(ident) = f.name.0.last().and_then(|p| p.as_ident()) else {
                return ControlFlow::Continue(());
            };
            if !ident.value.eq_ignore_ascii_case("region") {
                return ControlFlow::Continue(());
            }
            let span = ident.span;
            let text = match plain_args(&f.args).as_deref() {
                Some([Expr::Value(v)]) => match &v.value {
                    Value::SingleQuotedString(t) => t.clone(),
                    _ => return ControlFlow::Break(err_at("REGION takes a string literal", span)),
                },
                _ => return ControlFlow::Break(err_at("REGION takes a string literal", span)),
            };
            match region_call(&text, span) {
                Ok(call) => {
                    *e = call;
                    ControlFlow::Continue(())
                }
                Err(m) => ControlFlow::Break(AdqlError {
                    kind: ErrorKind::Semantic,
                    ..err_at(m, span)
                }),
            }
        }
    }
    match query.visit(&mut Regions) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn region_call(text: &str, span: Span) -> Result<Expr, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let is_num = |w: &str| w.parse::<f64>().is_ok_and(|v| v.is_finite());
    let (shape, rest) = match words.first() {
        Some(w) if !is_num(w) => (w.to_ascii_lowercase(), &words[1..]),
        Some(_) => (String::new(), &words[..]),
        None => return Err("REGION('') is empty".into()),
    };
    if !matches!(
        shape.as_str(),
        "" | "position" | "circle" | "box" | "polygon"
    ) {
        return Err(format!(
            "REGION: '{}' regions are not supported (Position, Circle, Box and Polygon are)",
            words.first().copied().unwrap_or("")
        ));
    }
    let numbers_from = rest.iter().position(|w| is_num(w)).unwrap_or(rest.len());
    let numbers: Vec<f64> = rest[numbers_from..]
        .iter()
        .map(|w| {
            w.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("REGION: '{w}' is not a number"))
        })
        .collect::<Result<_, _>>()?;
    // Frame, reference position and flavour may each be given; the reference position and
    // flavour do not change directions on the sky, the frame goes to the constructor (which
    // accepts ICRS only).
    let mut frame = "";
    for q in &rest[..numbers_from] {
        match q.to_ascii_uppercase().as_str() {
            "BARYCENTER" | "GEOCENTER" | "TOPOCENTER" | "HELIOCENTER" | "UNKNOWNREFPOS"
            | "SPHERICAL2" => {}
            _ if frame.is_empty() => frame = q,
            other => return Err(format!("REGION: '{other}' is not understood here")),
        }
    }
    let (name, want) = match (shape.as_str(), numbers.len()) {
        ("position", 2) | ("", 2) => ("POINT", true),
        ("circle", 3) | ("", 3) => ("CIRCLE", true),
        ("box", 4) => ("BOX", true),
        ("polygon", n) | ("", n) if n >= 6 && n % 2 == 0 => ("POLYGON", true),
        ("position" | "circle" | "box" | "polygon", _) => (shape.as_str(), false),
        _ => {
            return Err(format!(
                "REGION: '{}' regions are not supported (Position, Circle, Box and Polygon are)",
                words.first().copied().unwrap_or("")
            ))
        }
    };
    if !want {
        return Err(format!(
            "REGION: a {name} takes {}, not {} numbers",
            match name {
                "position" => "2",
                "circle" => "3",
                "box" => "4",
                _ => "an even number (at least 6) of",
            },
            numbers.len()
        ));
    }
    let mut args = vec![Expr::value(Value::SingleQuotedString(frame.to_string()))];
    for v in numbers {
        let lit = Expr::value(Value::Number(format!("{:?}", v.abs()), false));
        args.push(if v.is_sign_negative() && v != 0.0 {
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: Box::new(lit),
            }
        } else {
            lit
        });
    }
    Ok(Expr::Function(datafusion::sql::sqlparser::ast::Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::with_span(
            span, name,
        ))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(datafusion::sql::sqlparser::ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}

/// The plain positional arguments of a call, if that is all it has.
fn plain_args(args: &FunctionArguments) -> Option<Vec<Expr>> {
    match args {
        FunctionArguments::List(l) if l.clauses.is_empty() && l.duplicate_treatment.is_none() => l
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Gives every unnamed, non-column item of the outermost select list a readable unique name
/// (`count`, `distance`, `expr`, …), as TAP clients show column names to people.
fn name_select_items(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let mut used: HashSet<String> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.value.to_ascii_lowercase()),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                parts.last().map(|i| i.value.to_ascii_lowercase())
            }
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    for item in select.projection.iter_mut() {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            continue;
        }
        let base = match expr {
            Expr::Function(f) => f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| match i.value.to_ascii_lowercase().as_str() {
                    "ln" => "log".to_string(),
                    "ceil" => "ceiling".to_string(),
                    "trunc" => "truncate".to_string(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "expr".into()),
            _ => "expr".into(),
        };
        let mut name = base.clone();
        let mut k = 2;
        while used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        used.insert(name.clone());
        *item = SelectItem::ExprWithAlias {
            expr: expr.clone(),
            alias: Ident::with_quote('"', name),
        };
    }
}
