//! Function calls: the signatures of ADQL's built-in functions as a table, and the checks of
//! what a table row cannot say (`COUNT(*)`, the optional coordinate system of the geometry
//! constructors, DISTANCE's two forms, user-defined functions).

use datafusion::sql::sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    ObjectNamePart, Spanned, UnaryOperator, Value,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use super::{err, merge, unsigned_integer, Kind, Res, Validator};
use crate::{AdqlError, ErrorKind};

/// How one argument of a built-in function is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    /// Any value (not a condition); its kind counts for [`Returns::Arguments`].
    Value,
    /// A numeric operand.
    Numeric,
    /// A character operand.
    Character,
    /// A geometry (CONTAINS, INTERSECTS, AREA, …): any value but a condition.
    Geometry,
    /// `<coord_value>`, a point; the text names the argument in the error message.
    Point(&'static str),
    /// An unsigned integer literal; the text names it in the error message.
    Unsigned(&'static str),
    /// A signed integer literal, a number of digits (ROUND, TRUNCATE).
    Digits,
    /// A string literal; the text is the error message when it is something else.
    StringLiteral(&'static str),
}

/// The kind of value a call gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Returns {
    /// Always this kind.
    Always(Kind),
    /// The common kind of its [`Arg::Value`] arguments (MIN, MAX, COALESCE).
    Arguments,
}

/// The arguments a built-in function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Params {
    /// Positional arguments checked as listed: the first `min` are required, the others
    /// optional; `more`, when given, checks any number of further arguments.
    List {
        min: usize,
        args: &'static [Arg],
        more: Option<Arg>,
    },
    /// Forms a list cannot describe, checked by a function of their own.
    Own(Own),
}

/// The built-in functions whose arguments are checked by a function of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    /// `POINT([coordsys,] lon, lat)`.
    Point,
    /// `CIRCLE([coordsys,] lon, lat, radius)` or `CIRCLE([coordsys,] point, radius)`.
    Circle,
    /// `BOX([coordsys,] lon, lat, width, height)` or `BOX([coordsys,] point, width, height)`.
    Box,
    /// `POLYGON([coordsys,] lon1, lat1, …)` or `POLYGON([coordsys,] point1, …)`.
    Polygon,
    /// `DISTANCE(point, point)` or `DISTANCE(lon1, lat1, lon2, lat2)`.
    Distance,
}

/// What may come with the arguments besides plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// Nothing: plain arguments only.
    Scalar,
    /// An aggregate: `DISTINCT` or `ALL` may precede the argument.
    Aggregate,
    /// COUNT: an aggregate that may also take `*`.
    Count,
}

/// The signature of one or more built-in functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    /// The function names (lower case).
    names: &'static [&'static str],
    params: Params,
    returns: Returns,
    call: Call,
}

impl Signature {
    /// Scalar functions taking exactly `args`.
    const fn new(names: &'static [&'static str], args: &'static [Arg], returns: Returns) -> Self {
        Signature {
            names,
            params: Params::List {
                min: args.len(),
                args,
                more: None,
            },
            returns,
            call: Call::Scalar,
        }
    }

    /// Scalar functions whose arguments are checked by a function of their own.
    const fn own(names: &'static [&'static str], own: Own, returns: Returns) -> Self {
        Signature {
            names,
            params: Params::Own(own),
            returns,
            call: Call::Scalar,
        }
    }

    /// The same with only the first `min` listed arguments required.
    const fn optional_after(self, min: usize) -> Self {
        let params = match self.params {
            Params::List { args, more, .. } => Params::List { min, args, more },
            own @ Params::Own(_) => own,
        };
        Signature { params, ..self }
    }

    /// The same taking any number of further `more` arguments.
    const fn variadic(self, more: Arg) -> Self {
        let params = match self.params {
            Params::List { min, args, .. } => Params::List {
                min,
                args,
                more: Some(more),
            },
            own @ Params::Own(_) => own,
        };
        Signature { params, ..self }
    }

    /// The same called as `call`.
    const fn called(self, call: Call) -> Self {
        Signature { call, ..self }
    }
}

const NUM: Returns = Returns::Always(Kind::Num);
const STR: Returns = Returns::Always(Kind::Str);
const GEOM: Returns = Returns::Always(Kind::Geom);

/// The built-in functions of ADQL 2.1 (§2.3 and §2.4) and their signatures.
const SIGNATURES: &[Signature] = {
    use Arg::{Character, Digits, Geometry, Numeric, Point, StringLiteral, Unsigned, Value};
    &[
        // Aggregates.
        Signature::new(&["count"], &[Value], NUM).called(Call::Count),
        Signature::new(&["avg", "sum"], &[Numeric], NUM).called(Call::Aggregate),
        Signature::new(&["min", "max"], &[Value], Returns::Arguments).called(Call::Aggregate),
        // Mathematical and trigonometric functions.
        Signature::new(
            &[
                "abs", "ceiling", "degrees", "exp", "floor", "log", "log10", "radians", "sqrt",
                "acos", "asin", "atan", "cos", "cot", "sin", "tan",
            ],
            &[Numeric],
            NUM,
        ),
        Signature::new(&["mod", "power", "atan2"], &[Numeric, Numeric], NUM),
        Signature::new(&["pi"], &[], NUM),
        Signature::new(&["rand"], &[Unsigned("RAND's seed")], NUM).optional_after(0),
        Signature::new(&["round", "truncate"], &[Numeric, Digits], NUM).optional_after(1),
        // Strings and other values.
        Signature::new(&["lower", "upper"], &[Character], STR),
        Signature::new(&["coalesce"], &[Value], Returns::Arguments).variadic(Value),
        Signature::new(
            &["in_unit"],
            &[
                Numeric,
                StringLiteral(
                    "IN_UNIT's second argument is the unit, as a string literal: IN_UNIT(x, 'deg')",
                ),
            ],
            NUM,
        ),
        // Geometry.
        Signature::own(&["point"], Own::Point, GEOM),
        Signature::own(&["circle"], Own::Circle, GEOM),
        Signature::own(&["box"], Own::Box, GEOM),
        Signature::own(&["polygon"], Own::Polygon, GEOM),
        Signature::new(
            &["region"],
            &[StringLiteral(
                "REGION takes an STC-S string literal: REGION('Circle ICRS 10 20 1')",
            )],
            GEOM,
        ),
        Signature::new(&["centroid"], &[Geometry], GEOM),
        Signature::new(&["area"], &[Geometry], NUM),
        Signature::new(&["coordsys"], &[Geometry], STR),
        Signature::new(&["coord1"], &[Point("COORD1's argument")], NUM),
        Signature::new(&["coord2"], &[Point("COORD2's argument")], NUM),
        Signature::new(&["contains", "intersects"], &[Geometry, Geometry], NUM),
        Signature::own(&["distance"], Own::Distance, NUM),
    ]
};

/// The signature of the built-in function `name` (lower case).
fn signature(name: &str) -> Option<&'static Signature> {
    SIGNATURES.iter().find(|s| s.names.contains(&name))
}

impl Validator<'_> {
    /// A function call: a built-in function of ADQL or a user-defined function.
    pub(super) fn function(&self, e: &Expr, f: &Function) -> Res<Kind> {
        let span = e.span();
        let name = function_name(f, span)?;
        let upper = name.to_uppercase();
        let (args, quantifier) = call_arguments(f, &upper, span)?;
        let sig = signature(&name);
        let call = sig.map_or(Call::Scalar, |s| s.call);
        let (exprs, star) = positional(args, call, &upper, span)?;
        check_quantifier(quantifier, star, call, &upper, span)?;
        match sig {
            // `positional` accepts `*` only in COUNT.
            Some(_) if star => count_star(&exprs, span),
            Some(sig) => self.builtin(sig, &exprs, &upper, span),
            None => self.user_function(f, &name, &exprs, span),
        }
    }

    /// A call of a built-in function (but `COUNT(*)`), checked against its signature.
    fn builtin(&self, sig: &Signature, exprs: &[&Expr], upper: &str, span: Span) -> Res<Kind> {
        let kind = match sig.params {
            Params::List { min, args, more } => {
                let max = if more.is_some() {
                    usize::MAX
                } else {
                    args.len()
                };
                arity(upper, min, max, exprs.len(), span)?;
                // Each argument has a rule: the listed ones, then `more` for any further.
                let rules = args
                    .iter()
                    .copied()
                    .chain(more.into_iter().flat_map(std::iter::repeat));
                let mut kind = None;
                for (x, rule) in exprs.iter().zip(rules) {
                    if let Some(k) = self.argument(rule, x, upper)? {
                        kind = Some(merge(kind, k));
                    }
                }
                kind
            }
            Params::Own(own) => {
                match own {
                    Own::Point => self.point(exprs, span)?,
                    Own::Circle => self.circle(exprs, span)?,
                    Own::Box => self.box_(exprs, span)?,
                    Own::Polygon => self.polygon(exprs, span)?,
                    Own::Distance => self.distance(exprs, span)?,
                }
                None
            }
        };
        Ok(match sig.returns {
            Returns::Always(k) => k,
            Returns::Arguments => kind.unwrap_or(Kind::Any),
        })
    }

    /// Checks one argument of a built-in function; the kind of an [`Arg::Value`].
    fn argument(&self, rule: Arg, x: &Expr, upper: &str) -> Res<Option<Kind>> {
        match rule {
            Arg::Value => return self.value(x).map(Some),
            Arg::Numeric => self.numeric(x)?,
            Arg::Character => self.character(x)?,
            Arg::Geometry => self.geometry(x)?,
            Arg::Point(what) => self.coord_value(x, what)?,
            Arg::Unsigned(what) => unsigned_integer(x, what)?,
            Arg::Digits => signed_integer(x, upper)?,
            Arg::StringLiteral(message) => {
                if !is_string_literal(x) {
                    return Err(err(message, x.span()));
                }
            }
        }
        Ok(None)
    }

    /// A user-defined function: one vostok registers or one the caller declared (or, in a
    /// check of the grammar alone, any prefixed name); its arguments are any values.
    fn user_function(&self, f: &Function, name: &str, exprs: &[&Expr], span: Span) -> Res<Kind> {
        let known = self.udfs.contains(&name) || self.extra_functions.contains(name);
        if !(known || self.undeclared_udfs && is_udf_name(name)) {
            return Err(AdqlError {
                kind: ErrorKind::Semantic,
                ..err(self.unknown_function(&f.name.to_string(), name), span)
            });
        }
        for x in exprs {
            self.value(x)?;
        }
        Ok(Kind::Any)
    }

    /// The message for a function neither ADQL nor the service defines, with the nearest
    /// name of one that exists.
    fn unknown_function(&self, written: &str, name: &str) -> String {
        let known = SIGNATURES
            .iter()
            .flat_map(|s| s.names.iter().copied())
            .chain(self.udfs.iter().copied())
            .chain(self.extra_functions.iter().map(String::as_str));
        match crate::messages::nearest(name, known) {
            Some(g) if g.starts_with("ivo_") || g.starts_with("gavo_") => {
                format!("unknown function '{written}': did you mean {g}?")
            }
            Some(g) => format!(
                "unknown function '{written}': did you mean {}?",
                g.to_ascii_uppercase()
            ),
            None if self.undeclared_udfs && !is_udf_name(name) => format!(
                "unknown function '{written}': ADQL has no such function, and the name of a user-defined function has a prefix (ivo_…)"
            ),
            None => format!(
                "unknown function '{written}': neither ADQL nor this service defines it (its user-defined functions are listed in /tap/capabilities)"
            ),
        }
    }

    /// `POINT([coordsys,] longitude, latitude)`.
    fn point(&self, exprs: &[&Expr], span: Span) -> Res<()> {
        let rest = without_coord_sys(exprs);
        if rest.len() != 2 {
            return Err(err("POINT takes ([coordsys,] longitude, latitude)", span));
        }
        rest.iter().try_for_each(|x| self.coordinate(x))
    }

    /// `CIRCLE([coordsys,] longitude, latitude, radius)` or `CIRCLE([coordsys,] point, radius)`.
    fn circle(&self, exprs: &[&Expr], span: Span) -> Res<()> {
        match without_coord_sys(exprs) {
            rest @ [_, _, _] => rest.iter().try_for_each(|x| self.coordinate(x)),
            [centre, radius] => {
                self.coord_value(centre, "CIRCLE's centre")?;
                self.coordinate(radius)
            }
            _ => Err(err(
                "CIRCLE takes ([coordsys,] longitude, latitude, radius) or ([coordsys,] point, radius)",
                span,
            )),
        }
    }

    /// `BOX([coordsys,] longitude, latitude, width, height)` or
    /// `BOX([coordsys,] point, width, height)`.
    fn box_(&self, exprs: &[&Expr], span: Span) -> Res<()> {
        match without_coord_sys(exprs) {
            rest @ [_, _, _, _] => rest.iter().try_for_each(|x| self.coordinate(x)),
            [centre, width, height] => {
                self.coord_value(centre, "BOX's centre")?;
                self.coordinate(width)?;
                self.coordinate(height)
            }
            _ => Err(err(
                "BOX takes ([coordsys,] longitude, latitude, width, height) or ([coordsys,] point, width, height)",
                span,
            )),
        }
    }

    /// `POLYGON([coordsys,] lon1, lat1, lon2, lat2, lon3, lat3, …)` or
    /// `POLYGON([coordsys,] point1, point2, point3, …)`.
    fn polygon(&self, exprs: &[&Expr], span: Span) -> Res<()> {
        let rest = without_coord_sys(exprs);
        // Each argument is looked at once (nested calls must not be re-walked).
        let kinds: Vec<Kind> = rest.iter().map(|x| self.value(x)).collect::<Res<_>>()?;
        let as_points =
            kinds.len() >= 3 && kinds.iter().all(|k| matches!(k, Kind::Geom | Kind::Any));
        let as_numbers = kinds.len() >= 6
            && kinds.len().is_multiple_of(2)
            && kinds.iter().all(|k| !matches!(k, Kind::Geom | Kind::Str));
        if !as_points && !as_numbers {
            return Err(err(
                "POLYGON takes ([coordsys,] lon1, lat1, lon2, lat2, lon3, lat3, …) with at least 3 vertices, or at least 3 points",
                span,
            ));
        }
        Ok(())
    }

    /// `DISTANCE(point, point)` or `DISTANCE(lon1, lat1, lon2, lat2)`.
    fn distance(&self, exprs: &[&Expr], span: Span) -> Res<()> {
        match exprs {
            [p, q] => {
                self.coord_value(p, "DISTANCE's first point")?;
                self.coord_value(q, "DISTANCE's second point")
            }
            [_, _, _, _] => exprs.iter().try_for_each(|x| self.coordinate(x)),
            _ => Err(err(
                "DISTANCE takes (point, point) or (lon1, lat1, lon2, lat2)",
                span,
            )),
        }
    }

    /// A coordinate or size of a geometry constructor: a numeric operand. (A string literal
    /// is allowed, as the BNF's value primaries and the IVOA test suite have it.)
    fn coordinate(&self, e: &Expr) -> Res<()> {
        self.numeric(e)
    }

    /// `<coord_value> ::= <point_value> | <column_reference>`: a point, not a number.
    fn coord_value(&self, e: &Expr, what: &str) -> Res<()> {
        let k = self.value(e)?;
        match (k, e) {
            (Kind::Geom | Kind::Any, _) => Ok(()),
            _ => Err(err(
                format!("{what} must be a point (POINT(…) or a point column)"),
                e.span(),
            )),
        }
    }

    /// A geometry argument (CONTAINS, INTERSECTS, AREA, …): any value but a condition.
    fn geometry(&self, e: &Expr) -> Res<()> {
        self.value(e).map(|_| ())
    }
}

/// The name of a called function, lower case: one undelimited identifier.
fn function_name(f: &Function, span: Span) -> Res<String> {
    match f.name.0.as_slice() {
        [ObjectNamePart::Identifier(i)] if i.quote_style.is_none() => {
            Ok(i.value.to_ascii_lowercase())
        }
        _ => Err(err(
            format!("'{}' is not a function ADQL knows", f.name),
            span,
        )),
    }
}

/// The argument list of a call (and its DISTINCT or ALL), refusing the SQL syntax around
/// calls that ADQL does not have (`OVER`, `FILTER`, `WITHIN GROUP`, …).
fn call_arguments<'f>(
    f: &'f Function,
    upper: &str,
    span: Span,
) -> Res<(&'f [FunctionArg], Option<DuplicateTreatment>)> {
    if f.uses_odbc_syntax
        || f.filter.is_some()
        || f.null_treatment.is_some()
        || f.over.is_some()
        || !f.within_group.is_empty()
        || !matches!(f.parameters, FunctionArguments::None)
    {
        return Err(err(format!("this syntax for {upper} is not ADQL"), span));
    }
    match &f.args {
        FunctionArguments::None => Err(err(format!("{upper} needs parentheses"), span)),
        FunctionArguments::Subquery(_) => Err(err(
            format!("{upper} cannot take a subquery as its argument"),
            span,
        )),
        FunctionArguments::List(l) => {
            if !l.clauses.is_empty() {
                return Err(err(format!("this syntax for {upper} is not ADQL"), span));
            }
            Ok((&l.args, l.duplicate_treatment))
        }
    }
}

/// The positional arguments of a call, and whether it is `COUNT(*)` (`*` is only allowed
/// there).
fn positional<'f>(
    args: &'f [FunctionArg],
    call: Call,
    upper: &str,
    span: Span,
) -> Res<(Vec<&'f Expr>, bool)> {
    let mut exprs: Vec<&Expr> = Vec::with_capacity(args.len());
    let mut star = false;
    for a in args {
        match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => exprs.push(x),
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) if call == Call::Count => star = true,
            _ => return Err(err(format!("{upper} takes plain arguments"), span)),
        }
    }
    Ok((exprs, star))
}

/// DISTINCT and ALL only in aggregates, and not in `COUNT(DISTINCT *)`.
fn check_quantifier(
    quantifier: Option<DuplicateTreatment>,
    star: bool,
    call: Call,
    upper: &str,
    span: Span,
) -> Res<()> {
    if quantifier.is_some() && call == Call::Scalar {
        return Err(err(format!("{upper}(DISTINCT …) is not ADQL"), span));
    }
    if let Some(DuplicateTreatment::Distinct | DuplicateTreatment::All) = quantifier {
        if star {
            return Err(err("COUNT(DISTINCT *) is not ADQL", span));
        }
    }
    Ok(())
}

/// `COUNT(*)`: the `*` alone.
fn count_star(exprs: &[&Expr], span: Span) -> Res<Kind> {
    if !exprs.is_empty() {
        return Err(err("COUNT takes * or one value", span));
    }
    Ok(Kind::Num)
}

/// Checks the number of arguments of a call of `upper`: from `lo` to `hi` (`usize::MAX`: no
/// limit).
fn arity(upper: &str, lo: usize, hi: usize, n: usize, span: Span) -> Res<()> {
    if n < lo || n > hi {
        let want = if lo == hi {
            format!("{lo}")
        } else if hi == usize::MAX {
            format!("at least {lo}")
        } else {
            format!("{lo} to {hi}")
        };
        return Err(err(
            format!(
                "{upper} takes {want} argument{}, not {n}",
                if hi == 1 && lo == 1 { "" } else { "s" },
            ),
            span,
        ));
    }
    Ok(())
}

/// Whether `name` can name a user-defined function of some service: a regular identifier
/// that is no reserved word, with a prefix (`ivo_healpix_index`, `ESO_INTERSECTION`), as
/// lyonetia's DaCHS records have it (`ivo_foo(6)` parses, `TAN2(x)` does not).
fn is_udf_name(name: &str) -> bool {
    match name.split_once('_') {
        Some((prefix, rest)) => {
            !prefix.is_empty()
                && !rest.is_empty()
                && prefix.chars().all(|c| c.is_ascii_alphanumeric())
                && !super::is_reserved(name)
        }
        None => false,
    }
}

/// Geometry constructor arguments without an optional leading coordinate-system literal.
fn without_coord_sys<'a, 'e>(args: &'a [&'e Expr]) -> &'a [&'e Expr] {
    match args.split_first() {
        Some((first, rest)) if is_string_literal(first) || is_null(first) => rest,
        _ => args,
    }
}

fn is_string_literal(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)))
}

fn is_null(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::Null))
}

fn signed_integer(e: &Expr, what: &str) -> Res<()> {
    match e {
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => unsigned_integer(expr, what),
        _ => unsigned_integer(e, what),
    }
    .map_err(|_| {
        err(
            format!("{what}'s second argument is an integer number of digits"),
            e.span(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_one_lower_case_signature() {
        let mut seen = std::collections::HashSet::new();
        for s in SIGNATURES {
            for n in s.names {
                assert_eq!(*n, n.to_ascii_lowercase(), "{n}");
                assert!(seen.insert(*n), "{n} has two signatures");
                assert_eq!(signature(n), Some(s), "{n}");
            }
        }
    }

    /// The error of `query` as (kind, message, line, column), or `None` when it is accepted.
    fn error(query: &str, udfs: &[&str]) -> Option<(ErrorKind, String, u64, u64)> {
        let opts = crate::Options {
            extra_functions: udfs.iter().map(|u| u.to_string()).collect(),
            ..Default::default()
        };
        crate::parse_with(query, &opts).err().map(|e| {
            (
                e.kind,
                e.message,
                e.line.unwrap_or(0),
                e.column.unwrap_or(0),
            )
        })
    }

    fn syntax(message: &str, column: u64) -> Option<(ErrorKind, String, u64, u64)> {
        Some((ErrorKind::Syntax, message.to_string(), 1, column))
    }

    #[test]
    fn arity_from_the_table() {
        let cases = [
            ("SELECT abs() FROM t", "ABS takes 1 argument, not 0"),
            ("SELECT abs(1, 1) FROM t", "ABS takes 1 argument, not 2"),
            ("SELECT atan2(1) FROM t", "ATAN2 takes 2 arguments, not 1"),
            ("SELECT pi(1) FROM t", "PI takes 0 arguments, not 1"),
            (
                "SELECT rand(1, 2) FROM t",
                "RAND takes 0 to 1 arguments, not 2",
            ),
            (
                "SELECT round() FROM t",
                "ROUND takes 1 to 2 arguments, not 0",
            ),
            (
                "SELECT Truncate(1, 2, 3) FROM t",
                "TRUNCATE takes 1 to 2 arguments, not 3",
            ),
            (
                "SELECT coalesce() FROM t",
                "COALESCE takes at least 1 arguments, not 0",
            ),
            ("SELECT count() FROM t", "COUNT takes 1 argument, not 0"),
            ("SELECT max(a, b) FROM t", "MAX takes 1 argument, not 2"),
            ("SELECT region() FROM t", "REGION takes 1 argument, not 0"),
            (
                "SELECT contains(p) FROM t",
                "CONTAINS takes 2 arguments, not 1",
            ),
        ];
        for (q, message) in cases {
            assert_eq!(error(q, &[]), syntax(message, 8), "{q}");
        }
        for q in [
            "SELECT pi(), rand(), rand(7), round(a), round(a, -2), coalesce(a, b, c, 1) FROM t",
            "SELECT count(*), count(a), count(DISTINCT a), avg(ALL a), min(s), max(p) FROM t",
        ] {
            assert_eq!(error(q, &[]), None, "{q}");
        }
    }

    #[test]
    fn argument_kinds_from_the_table() {
        let cases = [
            ("SELECT sqrt(POINT(1, 2)) FROM t", "a geometry cannot be used as a number", 13),
            ("SELECT sum(LOWER(s)) FROM t", "a character string cannot be used as a number (CAST it)", 12),
            ("SELECT lower(a + 1) FROM t", "a number cannot be used as a character string (CAST it to VARCHAR)", 14),
            ("SELECT rand(-3) FROM t", "RAND's seed takes an unsigned integer", 14),
            ("SELECT round(a, 2.5) FROM t", "ROUND's second argument is an integer number of digits", 17),
            ("SELECT in_unit(a, s) FROM t", "IN_UNIT's second argument is the unit, as a string literal: IN_UNIT(x, 'deg')", 19),
            ("SELECT region(s) FROM t", "REGION takes an STC-S string literal: REGION('Circle ICRS 10 20 1')", 15),
            ("SELECT coord2(1) FROM t", "COORD2's argument must be a point (POINT(…) or a point column)", 15),
            ("SELECT area(1 = 1) FROM t", "a condition cannot be used as a value in ADQL (CASE WHEN … THEN 1 ELSE 0 END gives one)", 13),
        ];
        for (q, message, column) in cases {
            assert_eq!(error(q, &[]), syntax(message, column), "{q}");
        }
    }

    #[test]
    fn special_calls() {
        let cases = [
            ("SELECT abs(DISTINCT a) FROM t", "ABS(DISTINCT …) is not ADQL"),
            ("SELECT count(DISTINCT *) FROM t", "COUNT(DISTINCT *) is not ADQL"),
            ("SELECT count(a, *) FROM t", "COUNT takes * or one value"),
            ("SELECT abs(*) FROM t", "ABS takes plain arguments"),
            ("SELECT count(1) OVER () FROM t", "this syntax for COUNT is not ADQL"),
            ("SELECT \"abs\"(1) FROM t", "'\"abs\"' is not a function ADQL knows"),
            ("SELECT point(1) FROM t", "POINT takes ([coordsys,] longitude, latitude)"),
            ("SELECT distance(1, 2, 3) FROM t", "DISTANCE takes (point, point) or (lon1, lat1, lon2, lat2)"),
            ("SELECT polygon(1, 2, 3, 4) FROM t", "POLYGON takes ([coordsys,] lon1, lat1, lon2, lat2, lon3, lat3, …) with at least 3 vertices, or at least 3 points"),
        ];
        for (q, message) in cases {
            assert_eq!(error(q, &[]), syntax(message, 8), "{q}");
        }
        assert_eq!(
            error("SELECT circle(1, 2) FROM t", &[]),
            syntax(
                "CIRCLE's centre must be a point (POINT(…) or a point column)",
                15
            )
        );
        // User-defined functions: vostok's own and declared ones take any values; others
        // are unknown (a semantic error naming them as written).
        assert_eq!(
            error("SELECT ivo_hasword(s, 'x'), myudf(1, 2) FROM t", &["MyUdf"]),
            None
        );
        assert_eq!(
            error("SELECT Frobnicate(1) FROM t", &["myudf"]),
            Some((
                ErrorKind::Semantic,
                "unknown function 'Frobnicate': neither ADQL nor this service defines it (its user-defined functions are listed in /tap/capabilities)".to_string(),
                1,
                8
            ))
        );
        assert_eq!(
            error("SELECT myudf(DISTINCT a) FROM t", &["myudf"]),
            syntax("MYUDF(DISTINCT …) is not ADQL", 8)
        );
    }

    #[test]
    fn required_arguments_are_listed() {
        for s in SIGNATURES {
            if let Params::List { min, args, .. } = s.params {
                assert!(min <= args.len(), "{:?}", s.names);
            }
        }
    }
}
