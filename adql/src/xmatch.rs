//! Crossmatch joins as HEALPix-bucketed hash joins.
//!
//! A join whose condition holds a positional crossmatch conjunct
//!
//! * `CONTAINS(POINT(a.lon, a.lat), CIRCLE(b.lon, b.lat, r)) = 1` (either way round, any
//!   comparison that rejects 0; `INTERSECTS` of a point and a circle; the coordinate system
//!   argument and `CIRCLE(POINT(..), r)` forms), or
//! * `DISTANCE(POINT(a.lon, a.lat), POINT(b.lon, b.lat)) < r` (also `<=`, `=`, `r > DISTANCE`,
//!   and `DISTANCE(lon1, lat1, lon2, lat2)`),
//!
//! with the two positions on different sides of the join and `r` a constant, would run as a
//! nested loop: every pair of rows tested. [`XmatchRule`] rewrites it into an equi-join on
//! NESTED HEALPix pixels at a depth whose cells are about the size of the cone:
//!
//! ```text
//! Projection: <the original join's columns>
//!   Join: on __xmatch_pixel = __xmatch_cone_pixel, filter: <the original condition>
//!     Projection: a.*, xmatch_pixel(depth, a.lon, a.lat) AS __xmatch_pixel
//!       <point side>
//!     Unnest: __xmatch_cone_pixel
//!       Projection: b.*, xmatch_cone_pixels(depth, b.lon, b.lat, r) AS __xmatch_cone_pixel
//!         <circle side>
//! ```
//!
//! * the point side gets the one pixel its position falls in (NULL for a NULL or non-finite
//!   position: never matched);
//! * the circle side gets the list of all the pixels the cap of radius `r` (plus a small margin)
//!   overlaps — cdshealpix's approximate cone coverage, a superset — unnested into one row per
//!   pixel (a NULL position gives no row);
//! * the exact condition stays as the join filter, so the result is exactly the nested loop's:
//!   a matching pair shares the point's pixel, and it appears once since the point has one
//!   pixel and a cone's pixels are distinct.
//!
//! Outer, semi and anti joins are rewritten only when the side whose rows are preserved (or
//! tested) is the point side, whose rows are not duplicated; for DISTANCE either position can
//! play the point (in an inner join the first one does, so the second one's table is the one
//! unnested: best the smaller). Radii above [`MAX_RADIUS_DEG`] are left alone, as are joins
//! that already have equi-join keys (which also makes the rewrite idempotent).
//!
//! The rule is appended after DataFusion's own rules, so it sees WHERE conditions over comma
//! joins once filter pushdown has made them join filters, with constants folded; the passes
//! after the first prune the columns of the new projections.
//!
//! Positions are validated as the geometry functions do: a latitude outside [-90, 90] is the
//! same execution error as POINT's (or CIRCLE's / DISTANCE's).

use crate::geom::filter::{
    flip, holds, strip_alias, strip_f64_casts, strip_geom_casts, strip_numeric_casts,
};
use std::collections::HashSet;
use std::f64::consts::{FRAC_PI_2, PI};
use std::sync::Arc;

use cdshealpix::nested;
use datafusion::arrow::array::{Array, AsArray, Float64Array, ListBuilder, UInt64Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{
    Column, DFSchema, DataFusionError, NullEquality, Result, ScalarValue, UnnestOptions,
};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::logical_plan::{Join, JoinConstraint, JoinType, Projection};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    lit, ColumnarValue, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Operator,
    ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::prelude::SessionContext;

use crate::geom;

/// Name of the UDF giving the pixel of a position.
pub const PIXEL_UDF: &str = "xmatch_pixel";
/// Name of the UDF giving the pixels a cone overlaps.
pub const CONE_UDF: &str = "xmatch_cone_pixels";
/// Name of the optimizer rule.
pub const RULE_NAME: &str = "xmatch_healpix_join";

/// Crossmatch radii above this (degrees) are left to the nested loop.
pub const MAX_RADIUS_DEG: f64 = 10.0;

/// Pixel key column of the point side.
const POINT_KEY: &str = "__xmatch_pixel";
/// Pixel key column of the circle side (after the unnest).
const CONE_KEY: &str = "__xmatch_cone_pixel";

/// The radius (degrees) of the cone whose coverage is computed for a crossmatch radius `r`: a
/// margin far above the rounding of the exact predicates and of cdshealpix.
fn padded_radius(r: f64) -> f64 {
    r.max(0.0) * (1.0 + 1e-9) + 1e-8
}

/// The HEALPix depth used for a crossmatch radius `r` (degrees): the deepest one at which a
/// cone of that radius overlaps at most 9 cells (the cell of its centre and its neighbours).
/// `None` when `r` is not a finite radius up to [`MAX_RADIUS_DEG`].
pub fn depth_for_radius(r: f64) -> Option<u8> {
    if !r.is_finite() || r > MAX_RADIUS_DEG {
        return None;
    }
    let rad = padded_radius(r).to_radians();
    if !cdshealpix::has_best_starting_depth(rad) {
        return None;
    }
    Some(cdshealpix::best_starting_depth(rad).min(29))
}

/// Registers the crossmatch rule (appended after DataFusion's own optimizer rules, so it sees
/// WHERE conditions already pushed into joins) and its UDFs.
pub fn register(ctx: &SessionContext) {
    for label in LABELS {
        ctx.register_udf(pixel_udf(label));
        ctx.register_udf(cone_udf(label));
    }
    ctx.add_optimizer_rule(Arc::new(XmatchRule::new()));
}

/// The geometry functions whose errors the crossmatch UDFs reproduce. Each UDF has one
/// variant per label, registered under a name of its own: a query worker finds the functions
/// of the plan it is sent by name, so the name must say everything the UDF holds.
const LABELS: [&str; 3] = ["POINT", "CIRCLE", "DISTANCE"];

/// The name of the pixel UDF whose errors name `label`.
fn pixel_name(label: &str) -> &'static str {
    match label {
        "CIRCLE" => "xmatch_pixel_of_circle",
        "DISTANCE" => "xmatch_pixel_of_distance",
        _ => PIXEL_UDF,
    }
}

/// The name of the cone UDF whose errors name `label`.
fn cone_name(label: &str) -> &'static str {
    match label {
        "POINT" => "xmatch_cone_pixels_of_point",
        "DISTANCE" => "xmatch_cone_pixels_of_distance",
        _ => CONE_UDF,
    }
}

// ---------------------------------------------------------------------------------------------
// UDFs

/// `xmatch_pixel(depth, lon, lat)`: NESTED pixel at `depth` of a position in degrees.
fn pixel_udf(label: &'static str) -> ScalarUDF {
    ScalarUDF::new_from_impl(PixelUdf {
        label,
        name: pixel_name(label),
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// `xmatch_cone_pixels(depth, lon, lat, radius)`: NESTED pixels at `depth` overlapped by a cone.
fn cone_udf(label: &'static str) -> ScalarUDF {
    ScalarUDF::new_from_impl(ConeUdf {
        label,
        name: cone_name(label),
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

fn exec(msg: String) -> DataFusionError {
    DataFusionError::Execution(msg)
}

/// Coerces numeric arguments: the depth to Int64, the rest to Float64.
fn coerce(name: &str, types: &[DataType], n: usize) -> Result<Vec<DataType>> {
    if types.len() != n {
        return Err(DataFusionError::Plan(format!(
            "{name} expects {n} arguments, not {}",
            types.len()
        )));
    }
    types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if !(t.is_numeric() || *t == DataType::Null) {
                return Err(DataFusionError::Plan(format!(
                    "{name}: argument {} must be a number, not {t}",
                    i + 1
                )));
            }
            Ok(if i == 0 {
                DataType::Int64
            } else {
                DataType::Float64
            })
        })
        .collect()
}

/// The depth argument: a constant in [0, 29].
fn depth_arg(name: &str, v: &ColumnarValue) -> Result<u8> {
    if let ColumnarValue::Scalar(s) = v {
        if let Ok(ScalarValue::Int64(Some(d))) = s.cast_to(&DataType::Int64) {
            if (0..=29).contains(&d) {
                return Ok(d as u8);
            }
        }
    }
    Err(exec(format!(
        "{name}: the depth must be a constant in [0, 29]"
    )))
}

/// A numeric argument as a Float64 array of `n` rows.
fn f64_arg(v: &ColumnarValue, n: usize) -> Result<Float64Array> {
    let a = v.to_array(n)?;
    let a = if a.data_type() == &DataType::Float64 {
        a
    } else {
        cast(&a, &DataType::Float64)?
    };
    Ok(a.as_primitive::<Float64Type>().clone())
}

/// Row `i` as a position in radians: `None` for NULL or non-finite coordinates (the geometry
/// is then NULL), the geometry functions' error for a latitude outside [-90, 90].
fn position(
    label: &str,
    lon: &Float64Array,
    lat: &Float64Array,
    i: usize,
) -> Result<Option<(f64, f64)>> {
    if lon.is_null(i) || lat.is_null(i) {
        return Ok(None);
    }
    let (lo, la) = (lon.value(i), lat.value(i));
    if !lo.is_finite() || !la.is_finite() {
        return Ok(None);
    }
    if !(-90.0..=90.0).contains(&la) {
        return Err(exec(format!(
            "{label}: latitude {la} is outside [-90, 90] degrees"
        )));
    }
    Ok(Some((
        lo.rem_euclid(360.0).to_radians(),
        la.to_radians().clamp(-FRAC_PI_2, FRAC_PI_2),
    )))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PixelUdf {
    /// the geometry function whose errors this one reproduces
    label: &'static str,
    /// its name: [`PIXEL_UDF`], or one that names the label ([`pixel_name`])
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for PixelUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(PIXEL_UDF, arg_types, 3)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.len() != 3 {
            return Err(exec(format!("{PIXEL_UDF} expects 3 arguments")));
        }
        let n = args.number_rows;
        let layer = nested::get(depth_arg(PIXEL_UDF, &args.args[0])?);
        let lon = f64_arg(&args.args[1], n)?;
        let lat = f64_arg(&args.args[2], n)?;
        let mut b = UInt64Builder::with_capacity(n);
        for i in 0..n {
            match position(self.label, &lon, &lat, i)? {
                Some((lo, la)) => b.append_value(layer.hash(lo, la)),
                None => b.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ConeUdf {
    /// the geometry function whose errors this one reproduces
    label: &'static str,
    /// its name: [`CONE_UDF`], or one that names the label ([`cone_name`])
    name: &'static str,
    signature: Signature,
}

fn pixel_list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, false)))
}

impl ScalarUDFImpl for ConeUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(pixel_list_type())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(self.name, pixel_list_type(), true)))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(CONE_UDF, arg_types, 4)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.len() != 4 {
            return Err(exec(format!("{CONE_UDF} expects 4 arguments")));
        }
        let n = args.number_rows;
        let depth = depth_arg(CONE_UDF, &args.args[0])?;
        let lon = f64_arg(&args.args[1], n)?;
        let lat = f64_arg(&args.args[2], n)?;
        let radius = f64_arg(&args.args[3], n)?;
        let mut b = ListBuilder::with_capacity(UInt64Builder::with_capacity(n * 4), n)
            .with_field(Arc::new(Field::new_list_field(DataType::UInt64, false)));
        for i in 0..n {
            let pos = position(self.label, &lon, &lat, i)?;
            let r = (!radius.is_null(i)).then(|| radius.value(i));
            match (pos, r) {
                (Some((lo, la)), Some(r)) if r.is_finite() && r >= 0.0 => {
                    let rad = padded_radius(r).to_radians().min(PI);
                    let bmoc = nested::cone_coverage_approx(depth, lo, la, rad);
                    for h in bmoc.flat_iter() {
                        b.values().append_value(h);
                    }
                    b.append(true);
                }
                _ => b.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

// ---------------------------------------------------------------------------------------------
// the rule

/// Rewrites crossmatch joins into hash joins on HEALPix pixels (see the module documentation).
#[derive(Debug)]
pub struct XmatchRule {
    geo: Option<Geo>,
}

impl Default for XmatchRule {
    fn default() -> Self {
        Self::new()
    }
}

impl XmatchRule {
    /// The rule, recognising the geometry UDFs of [`crate::geom`].
    pub fn new() -> Self {
        XmatchRule { geo: Geo::new() }
    }
}

/// The geometry UDFs the rule recognises (compared by value, not by name).
#[derive(Debug)]
struct Geo {
    point: ScalarUDF,
    circle: ScalarUDF,
    contains: ScalarUDF,
    intersects: ScalarUDF,
    distance: ScalarUDF,
}

impl Geo {
    fn new() -> Option<Geo> {
        let all = geom::udfs();
        let find = |name: &str| all.iter().find(|u| u.name() == name).cloned();
        Some(Geo {
            point: find("point")?,
            circle: find("circle")?,
            contains: find("contains")?,
            intersects: find("intersects")?,
            distance: find("distance")?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// A position given by two expressions over one side of the join.
#[derive(Debug, Clone)]
struct Pos {
    lon: Expr,
    lat: Expr,
    side: Side,
    /// the geometry function that validates it (for the errors)
    label: &'static str,
}

/// A recognised crossmatch conjunct.
#[derive(Debug)]
struct Match {
    /// the position that gets one pixel
    point: Pos,
    /// the centre of the cone that gets the pixels it overlaps
    cone: Pos,
    /// degrees
    radius: f64,
    /// may the two roles be exchanged (DISTANCE)?
    symmetric: bool,
}

/// What the recognition needs to know about the join.
struct Cx<'a> {
    left: &'a DFSchema,
    right: &'a DFSchema,
    both: DFSchema,
    config: &'a dyn OptimizerConfig,
}

impl Cx<'_> {
    /// The value of a constant expression (folded as DataFusion would).
    fn constant(&self, e: &Expr) -> Option<ScalarValue> {
        let e = strip_alias(e);
        if let Expr::Literal(v, _) = e {
            return Some(v.clone());
        }
        if !e.column_refs().is_empty() || e.is_volatile() {
            return None;
        }
        let info = SimplifyContext::builder()
            .with_config_options(self.config.options())
            .with_query_execution_start_time(self.config.query_execution_start_time())
            .build();
        match ExprSimplifier::new(info).simplify(e.clone()).ok()? {
            Expr::Literal(v, _) => Some(v),
            _ => None,
        }
    }

    fn constant_f64(&self, e: &Expr) -> Option<f64> {
        let v = self.constant(e)?;
        if !v.data_type().is_numeric() {
            return None;
        }
        match v.cast_to(&DataType::Float64).ok()? {
            ScalarValue::Float64(Some(x)) => Some(x),
            _ => None,
        }
    }

    /// Does `f(args)` evaluate without error once constant (checks a coordinate system)?
    fn evaluates(&self, f: &ScalarUDF, args: Vec<Expr>) -> bool {
        self.constant(&f.call(args)).is_some()
    }

    /// A position given by two expressions: the side they both come from.
    fn pos(&self, lon: &Expr, lat: &Expr, label: &'static str) -> Option<Pos> {
        if lon.is_volatile() || lat.is_volatile() {
            return None;
        }
        for e in [lon, lat] {
            if !e.get_type(&self.both).ok()?.is_numeric() {
                return None;
            }
        }
        let cols: HashSet<&Column> = lon
            .column_refs()
            .union(&lat.column_refs())
            .copied()
            .collect();
        if cols.is_empty() {
            return None;
        }
        let in_left = cols.iter().all(|c| self.left.has_column(c));
        let in_right = cols.iter().all(|c| self.right.has_column(c));
        let side = match (in_left, in_right) {
            (true, false) => Side::Left,
            (false, true) => Side::Right,
            _ => return None,
        };
        Some(Pos {
            lon: lon.clone(),
            lat: lat.clone(),
            side,
            label,
        })
    }
}

impl Geo {
    /// The arguments of a call of `f`.
    fn args_of<'e>(&self, e: &'e Expr, f: &ScalarUDF) -> Option<&'e [Expr]> {
        match strip_geom_casts(e) {
            Expr::ScalarFunction(sf) if *sf.func == *f => Some(&sf.args),
            _ => None,
        }
    }

    /// `POINT([cs,] lon, lat)` over one side.
    fn point(&self, cx: &Cx, e: &Expr) -> Option<Pos> {
        let args = self.args_of(e, &self.point)?;
        let coords = match args.len() {
            2 => args,
            3 => {
                let probe = vec![args[0].clone(), lit(0.0), lit(0.0)];
                if !cx.evaluates(&self.point, probe) {
                    return None;
                }
                &args[1..]
            }
            _ => return None,
        };
        cx.pos(&coords[0], &coords[1], "POINT")
    }

    /// A constant, finite, non-negative radius.
    fn radius(&self, cx: &Cx, e: &Expr) -> Option<f64> {
        let r = cx.constant_f64(e)?;
        (r.is_finite() && r >= 0.0).then_some(r)
    }

    /// `CIRCLE([cs,] lon, lat, r)` / `CIRCLE([cs,] POINT(..), r)` over one side, constant r.
    fn circle(&self, cx: &Cx, e: &Expr) -> Option<(Pos, f64)> {
        let args = self.args_of(e, &self.circle)?;
        let origin = || self.point.call(vec![lit(0.0), lit(0.0)]);
        match args.len() {
            2 => Some((self.point(cx, &args[0])?, self.radius(cx, &args[1])?)),
            3 => {
                let first = args[0].get_type(&cx.both).ok()?;
                if matches!(
                    first,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
                ) {
                    let probe = vec![args[0].clone(), origin(), lit(0.0)];
                    if !cx.evaluates(&self.circle, probe) {
                        return None;
                    }
                    Some((self.point(cx, &args[1])?, self.radius(cx, &args[2])?))
                } else {
                    let pos = cx.pos(&args[0], &args[1], "CIRCLE")?;
                    Some((pos, self.radius(cx, &args[2])?))
                }
            }
            4 => {
                let probe = vec![args[0].clone(), lit(0.0), lit(0.0), lit(0.0)];
                if !cx.evaluates(&self.circle, probe) {
                    return None;
                }
                let pos = cx.pos(&args[1], &args[2], "CIRCLE")?;
                Some((pos, self.radius(cx, &args[3])?))
            }
            _ => None,
        }
    }

    /// `CONTAINS(point, circle)` / `INTERSECTS(..)` of positions on different sides.
    fn point_in_circle(&self, cx: &Cx, args: &[Expr], symmetric: bool) -> Option<Match> {
        let [a, b] = args else {
            return None;
        };
        let try_order = |p: &Expr, c: &Expr| -> Option<Match> {
            let point = self.point(cx, p)?;
            let (cone, radius) = self.circle(cx, c)?;
            (point.side != cone.side).then_some(Match {
                point,
                cone,
                radius,
                symmetric: false,
            })
        };
        let m = try_order(a, b);
        if symmetric {
            m.or_else(|| try_order(b, a))
        } else {
            m
        }
    }

    /// The positions compared by `DISTANCE(..)`, on different sides.
    fn distance(&self, cx: &Cx, args: &[Expr], radius: f64) -> Option<Match> {
        let (p, q) = match args {
            [a, b] => (self.point(cx, a)?, self.point(cx, b)?),
            [a, b, c, d] => (cx.pos(a, b, "DISTANCE")?, cx.pos(c, d, "DISTANCE")?),
            _ => return None,
        };
        (p.side != q.side).then_some(Match {
            point: p,
            cone: q,
            radius: radius.max(0.0),
            symmetric: true,
        })
    }

    /// `side op constant`.
    fn comparison(&self, cx: &Cx, side: &Expr, op: Operator, constant: &Expr) -> Option<Match> {
        if let Expr::ScalarFunction(sf) = strip_numeric_casts(side) {
            let intersects = *sf.func == self.intersects;
            if intersects || *sf.func == self.contains {
                let c = cx.constant_f64(constant)?;
                // CONTAINS gives 0, 1 or NULL: the comparison must reject 0
                if holds(0.0, op, c)? {
                    return None;
                }
                return self.point_in_circle(cx, &sf.args, intersects);
            }
        }
        let Expr::ScalarFunction(sf) = strip_f64_casts(side) else {
            return None;
        };
        if *sf.func != self.distance || !matches!(op, Operator::Lt | Operator::LtEq | Operator::Eq)
        {
            return None;
        }
        let r = cx.constant_f64(constant)?;
        if r.is_nan() {
            return None;
        }
        self.distance(cx, &sf.args, r)
    }

    /// One conjunct.
    fn conjunct(&self, cx: &Cx, e: &Expr) -> Option<Match> {
        let Expr::BinaryExpr(b) = strip_alias(e) else {
            return None;
        };
        self.comparison(cx, &b.left, b.op, &b.right)
            .or_else(|| self.comparison(cx, &b.right, flip(b.op)?, &b.left))
    }
}

/// A column name not used by either schema.
fn fresh_name(base: &str, a: &DFSchema, b: &DFSchema) -> String {
    let used = |n: &str| {
        a.fields().iter().any(|f| f.name() == n) || b.fields().iter().any(|f| f.name() == n)
    };
    let mut name = base.to_string();
    let mut k = 1;
    while used(&name) {
        k += 1;
        name = format!("{base}_{k}");
    }
    name
}

/// `e` as Float64.
fn as_f64(e: &Expr, schema: &DFSchema) -> Result<Expr> {
    Ok(if e.get_type(schema)? == DataType::Float64 {
        e.clone()
    } else {
        Expr::Cast(Cast::new(Box::new(e.clone()), DataType::Float64))
    })
}

/// `input` with one more column `key` = `value`.
fn with_key(input: &Arc<LogicalPlan>, value: Expr, key: &str) -> Result<LogicalPlan> {
    let mut exprs: Vec<Expr> = input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    exprs.push(value.alias(key));
    LogicalPlanBuilder::from(Arc::clone(input))
        .project(exprs)?
        .build()
}

impl XmatchRule {
    /// The rewritten join, or `None` when the join is not a crossmatch this rule handles.
    fn rewrite_join(
        &self,
        join: &Join,
        config: &dyn OptimizerConfig,
    ) -> Result<Option<LogicalPlan>> {
        let Some(geo) = &self.geo else {
            return Ok(None);
        };
        let Some(filter) = &join.filter else {
            return Ok(None);
        };
        // Joins with equi-join keys are hash joins already (and ours have one: idempotent).
        if !join.on.is_empty() || join.null_aware {
            return Ok(None);
        }
        // Which side must keep one row per input row (the preserved / tested side)?
        let required = match join.join_type {
            JoinType::Inner => None,
            JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti => Some(Side::Left),
            JoinType::Right | JoinType::RightSemi | JoinType::RightAnti => Some(Side::Right),
            _ => return Ok(None),
        };
        let left = join.left.schema().as_ref();
        let right = join.right.schema().as_ref();
        let cx = Cx {
            left,
            right,
            both: left.join(right)?,
            config,
        };
        let found = split_conjunction(filter).into_iter().find_map(|e| {
            let m = geo.conjunct(&cx, e)?;
            match required {
                Some(side) if m.point.side != side => m.symmetric.then(|| Match {
                    point: m.cone,
                    cone: m.point,
                    ..m
                }),
                _ => Some(m),
            }
        });
        let Some(m) = found else {
            return Ok(None);
        };
        let Some(depth) = depth_for_radius(m.radius) else {
            return Ok(None);
        };
        let depth = lit(i64::from(depth));

        let point_key = fresh_name(POINT_KEY, left, right);
        let cone_key = fresh_name(CONE_KEY, left, right);
        let (point_in, cone_in) = match m.point.side {
            Side::Left => (&join.left, &join.right),
            Side::Right => (&join.right, &join.left),
        };
        let ps = point_in.schema();
        let pixel = pixel_udf(m.point.label).call(vec![
            depth.clone(),
            as_f64(&m.point.lon, ps)?,
            as_f64(&m.point.lat, ps)?,
        ]);
        let point_plan = Arc::new(with_key(point_in, pixel, &point_key)?);
        let cs = cone_in.schema();
        let pixels = cone_udf(m.cone.label).call(vec![
            depth,
            as_f64(&m.cone.lon, cs)?,
            as_f64(&m.cone.lat, cs)?,
            lit(m.radius),
        ]);
        let cone_plan = LogicalPlanBuilder::from(with_key(cone_in, pixels, &cone_key)?)
            .unnest_column_with_options(
                Column::from_name(&cone_key),
                UnnestOptions::new().with_null_handling(datafusion::common::NullHandling::Drop),
            )?
            .build()?;
        let cone_plan = Arc::new(cone_plan);
        let point_col = Expr::Column(Column::from_name(&point_key));
        let cone_col = Expr::Column(Column::from_name(&cone_key));
        let (new_left, new_right, on) = match m.point.side {
            Side::Left => (point_plan, cone_plan, (point_col, cone_col)),
            Side::Right => (cone_plan, point_plan, (cone_col, point_col)),
        };
        let new_join = Join::try_new(
            new_left,
            new_right,
            vec![on],
            Some(filter.clone()),
            join.join_type,
            JoinConstraint::On,
            NullEquality::NullEqualsNothing,
            false,
        )?;
        let out = Projection::new_from_schema(
            Arc::new(LogicalPlan::Join(new_join)),
            Arc::clone(&join.schema),
        );
        Ok(Some(LogicalPlan::Projection(out)))
    }
}

impl OptimizerRule for XmatchRule {
    fn name(&self) -> &str {
        RULE_NAME
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(join) = &plan else {
            return Ok(Transformed::no(plan));
        };
        match self.rewrite_join(join, config) {
            Ok(Some(new)) => Ok(Transformed::yes(new)),
            Ok(None) => Ok(Transformed::no(plan)),
            Err(e) => {
                // never fail a query for an optimisation: the nested loop still works
                tracing::debug!("{RULE_NAME}: join left as it is: {e}");
                Ok(Transformed::no(plan))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{Int64Type, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::SessionConfig;

    use crate::geom::distance_deg;

    /// splitmix64: a small seeded PRNG for reproducible random tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Uniform on the cap of radius `r` degrees around (lon, lat).
        fn in_cap(&mut self, lon: f64, lat: f64, r: f64) -> (f64, f64) {
            let cos_t = 1.0 - self.unit() * (1.0 - r.to_radians().cos());
            let t = cos_t.clamp(-1.0, 1.0).acos().to_degrees();
            self.at(lon, lat, t)
        }

        /// At distance `t` degrees from (lon, lat), in a random direction.
        fn at(&mut self, lon: f64, lat: f64, t: f64) -> (f64, f64) {
            let phi = 2.0 * PI * self.unit();
            let (sl, cl) = lon.to_radians().sin_cos();
            let (sb, cb) = lat.to_radians().sin_cos();
            let c = [cb * cl, cb * sl, sb];
            let e = [-sl, cl, 0.0];
            let n = [-sb * cl, -sb * sl, cb];
            let (st, ct) = t.to_radians().sin_cos();
            let (sp, cp) = phi.sin_cos();
            let p: Vec<f64> = (0..3)
                .map(|k| c[k] * ct + st * (e[k] * cp + n[k] * sp))
                .collect();
            let lon = p[1].atan2(p[0]).to_degrees().rem_euclid(360.0);
            let lat = p[2].atan2(p[0].hypot(p[1])).to_degrees();
            (lon, lat)
        }
    }

    type Row = (i64, Option<f64>, Option<f64>);
    type Pairs = HashSet<(i64, i64)>;

    /// Positions clustered where HEALPix and longitudes are awkward: both poles, RA 0/360,
    /// plus the whole sky, exact poles and RA 0 / 360, longitudes outside [0, 360), NULLs
    /// and NaN.
    fn points_a(n: usize, seed: u64) -> Vec<Row> {
        let mut rng = Rng(seed);
        let mut rows = Vec::with_capacity(n + 16);
        for i in 0..n {
            let (lon, lat) = match i % 5 {
                0 => rng.in_cap(0.0, 90.0, 0.3),
                1 => rng.in_cap(0.0, -90.0, 0.3),
                2 => rng.in_cap(0.0, 0.0, 0.3),
                3 => rng.in_cap(0.0, 45.0, 180.0),
                _ => rng.in_cap(45.0, 41.8, 0.3), // a HEALPix base-cell corner
            };
            let lon = match i % 13 {
                0 => lon - 360.0,
                1 => lon + 360.0,
                _ => lon,
            };
            rows.push((i as i64, Some(lon), Some(lat)));
        }
        let extra = [
            (Some(0.0), Some(90.0)),
            (Some(123.0), Some(90.0)),
            (Some(0.0), Some(-90.0)),
            (Some(0.0), Some(0.0)),
            (Some(360.0), Some(0.0)),
            (Some(359.999_999_9), Some(0.0)),
            (None, Some(1.0)),
            (Some(1.0), None),
            (Some(f64::NAN), Some(0.0)),
            (Some(0.0), Some(f64::INFINITY)),
        ];
        for (k, (lon, lat)) in extra.into_iter().enumerate() {
            rows.push(((n + k) as i64, lon, lat));
        }
        rows
    }

    /// Positions near those of `a`: at random distances up to 2r, just inside and just
    /// outside r (ties for the brute force, exact for the nested loop), at 0; and random ones.
    fn points_b(a: &[Row], r: f64, n: usize, seed: u64) -> Vec<Row> {
        let mut rng = Rng(seed);
        let mut rows = Vec::with_capacity(n);
        let mut id = 100_000;
        while rows.len() < n {
            let (lon, lat) = match a[(rng.next() % a.len() as u64) as usize] {
                (_, Some(lon), Some(lat)) if lon.is_finite() && lat.is_finite() => (lon, lat),
                _ => continue,
            };
            let t = match rng.next() % 6 {
                0 => r * (1.0 - 1e-12),
                1 => r * (1.0 + 1e-12),
                2 => 0.0,
                3 => 1e3 * rng.unit(),
                _ => 2.0 * r * rng.unit(),
            };
            let (lon, lat) = if t > 180.0 {
                rng.in_cap(0.0, 0.0, 180.0)
            } else {
                rng.at(lon, lat, t)
            };
            rows.push((id, Some(lon), Some(lat)));
            id += 1;
        }
        rows.push((id, None, None));
        rows.push((id + 1, Some(0.0), Some(90.0)));
        rows.push((id + 2, Some(360.0), Some(0.0)));
        rows
    }

    fn mem(rows: &[Row]) -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ra", DataType::Float64, true),
            Field::new("dec", DataType::Float64, true),
        ]));
        // two partitions, as a scan of several files gives
        let parts = rows
            .chunks(rows.len().div_ceil(2).max(1))
            .map(|chunk| {
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from(
                            chunk.iter().map(|r| r.0).collect::<Vec<_>>(),
                        )),
                        Arc::new(Float64Array::from(
                            chunk.iter().map(|r| r.1).collect::<Vec<_>>(),
                        )),
                        Arc::new(Float64Array::from(
                            chunk.iter().map(|r| r.2).collect::<Vec<_>>(),
                        )),
                    ],
                )
                .expect("batch");
                vec![batch]
            })
            .collect();
        Arc::new(MemTable::try_new(schema, parts).expect("table"))
    }

    /// A context with tables `ta` and `tb`, with or without the crossmatch rule.
    fn context(with_rule: bool, a: &[Row], b: &[Row]) -> SessionContext {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        if with_rule {
            crate::register(&ctx);
        } else {
            for u in geom::udfs() {
                ctx.register_udf(u);
            }
        }
        ctx.register_table("ta", mem(a)).expect("ta");
        ctx.register_table("tb", mem(b)).expect("tb");
        ctx
    }

    struct Run {
        rows: Vec<Vec<Option<i64>>>,
        logical: String,
        physical: String,
    }

    /// Plans (as ADQL) and runs a query; the rows (Int64 columns) are sorted.
    async fn run(ctx: &SessionContext, adql: &str) -> Result<Run> {
        let state = ctx.state();
        let plan = crate::plan(&state, adql)
            .await
            .map_err(|e| DataFusionError::Plan(e.to_string()))?;
        let logical = state.optimize(&plan)?.display_indent().to_string();
        let physical = state.create_physical_plan(&plan).await?;
        let physical_text = displayable(physical.as_ref()).indent(true).to_string();
        let batches = collect(physical, ctx.task_ctx()).await?;
        let mut rows = Vec::new();
        for b in &batches {
            let cols: Vec<_> = b
                .columns()
                .iter()
                .map(|c| c.as_primitive::<Int64Type>())
                .collect();
            for i in 0..b.num_rows() {
                rows.push(
                    cols.iter()
                        .map(|c| (!c.is_null(i)).then(|| c.value(i)))
                        .collect(),
                );
            }
        }
        rows.sort_unstable();
        Ok(Run {
            rows,
            logical,
            physical: physical_text,
        })
    }

    /// Pairs (a.id, b.id) surely within `r` by the brute force, and those within 1e-9 degrees
    /// of the boundary (unknown).
    fn brute_force(a: &[Row], b: &[Row], r: f64) -> (Pairs, Pairs) {
        let valid = |row: &Row| match row {
            (id, Some(lon), Some(lat)) if lon.is_finite() && lat.is_finite() => {
                Some((*id, *lon, *lat))
            }
            _ => None,
        };
        let mut inside = HashSet::new();
        let mut ties = HashSet::new();
        for (ia, la, ba) in a.iter().filter_map(valid) {
            for (ib, lb, bb) in b.iter().filter_map(valid) {
                let d = distance_deg(la, ba, lb, bb);
                if (d - r).abs() <= 1e-9 {
                    ties.insert((ia, ib));
                } else if d < r {
                    inside.insert((ia, ib));
                }
            }
        }
        (inside, ties)
    }

    fn assert_spatial_join(run: &Run, what: &str) {
        // the UDFs' names, or their variants' (`xmatch_pixel_of_distance(`, …)
        let calls = |name: &str| {
            run.logical.contains(&format!("{name}("))
                || run.logical.contains(&format!("{name}_of_"))
        };
        assert!(
            calls(PIXEL_UDF) && calls(CONE_UDF),
            "{what}: no HEALPix join in the logical plan:\n{}",
            run.logical
        );
        assert!(
            run.physical.contains("HashJoinExec")
                && !run.physical.contains("NestedLoopJoinExec")
                && !run.physical.contains("CrossJoinExec"),
            "{what}: not a hash join:\n{}",
            run.physical
        );
    }

    fn assert_matches_brute_force(run: &Run, truth: &(Pairs, Pairs), what: &str) {
        let (inside, ties) = truth;
        let got: Vec<(i64, i64)> = run
            .rows
            .iter()
            .filter_map(|row| Some((row[0]?, row[1]?)))
            .collect();
        let set: HashSet<(i64, i64)> = got.iter().copied().collect();
        assert_eq!(set.len(), got.len(), "{what}: duplicate pairs");
        let missing: Vec<_> = inside.difference(&set).take(10).collect();
        let extra: Vec<_> = set
            .difference(inside)
            .filter(|p| !ties.contains(p))
            .take(10)
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{what}: {} pairs expected (+{} ties), {} got; missing {missing:?}, extra {extra:?}",
            inside.len(),
            ties.len(),
            got.len()
        );
        assert!(
            inside.len() > 100,
            "{what}: too few matches ({}) to test",
            inside.len()
        );
    }

    const R: f64 = 0.01;

    #[tokio::test]
    async fn crossmatch_forms_are_hash_joins_with_nested_loop_results() {
        let a = points_a(800, 7);
        let b = points_b(&a, R, 800, 11);
        let truth = brute_force(&a, &b, R);
        let with = context(true, &a, &b);
        let without = context(false, &a, &b);
        let point = "POINT('ICRS', a.ra, a.dec)";
        let cases = [
            format!("1 = CONTAINS({point}, CIRCLE('ICRS', b.ra, b.dec, {R}))"),
            "CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 36.0 / 3600)) = 1".to_string(),
            format!("CONTAINS(POINT(a.ra, a.dec), CIRCLE(POINT(b.ra, b.dec), {R})) >= 1"),
            format!("1 = INTERSECTS(CIRCLE('ICRS', b.ra, b.dec, {R}), {point})"),
            format!("DISTANCE({point}, POINT('ICRS', b.ra, b.dec)) < {R}"),
            format!("DISTANCE(POINT(b.ra, b.dec), POINT(a.ra, a.dec)) <= {R}"),
            format!("{R} > DISTANCE(a.ra, a.dec, b.ra, b.dec)"),
            format!("1 = CONTAINS(POINT(b.ra, b.dec), CIRCLE(a.ra, a.dec, {R}))"),
            format!("1 = CONTAINS({point}, CIRCLE(b.ra, b.dec, {R})) AND a.id <> b.id + 1"),
        ];
        for cond in &cases {
            for query in [
                format!("SELECT a.id, b.id FROM ta AS a JOIN tb AS b ON {cond}"),
                format!("SELECT a.id, b.id FROM ta AS a, tb AS b WHERE {cond}"),
            ] {
                let fast = run(&with, &query).await.expect("query with the rule");
                let slow = run(&without, &query).await.expect("nested loop");
                assert_spatial_join(&fast, &query);
                assert!(
                    slow.physical.contains("NestedLoopJoinExec"),
                    "{}",
                    slow.physical
                );
                assert_eq!(
                    fast.rows, slow.rows,
                    "{query}: differs from the nested loop"
                );
                if !cond.contains("<>") {
                    assert_matches_brute_force(&fast, &truth, &query);
                }
            }
        }
    }

    #[tokio::test]
    async fn radii_from_arcseconds_to_degrees() {
        for (r, seed) in [(2.0 / 3600.0, 1), (0.2, 2), (1.0, 3), (5.0, 4)] {
            let a = points_a(800, seed);
            let b = points_b(&a, r, 800, seed + 100);
            let truth = brute_force(&a, &b, r);
            let ctx = context(true, &a, &b);
            let query = format!(
                "SELECT a.id, b.id FROM ta AS a JOIN tb AS b \
                 ON 1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, {r}))"
            );
            let fast = run(&ctx, &query).await.expect("query");
            assert_spatial_join(&fast, &query);
            assert_matches_brute_force(&fast, &truth, &query);
            let query = format!(
                "SELECT a.id, b.id FROM ta AS a JOIN tb AS b \
                 ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < {r}"
            );
            let fast = run(&ctx, &query).await.expect("query");
            assert_spatial_join(&fast, &query);
            assert_matches_brute_force(&fast, &truth, &query);
        }
    }

    #[tokio::test]
    async fn outer_semi_and_anti_joins() {
        let a = points_a(600, 21);
        let b = points_b(&a, R, 600, 22);
        let with = context(true, &a, &b);
        let without = context(false, &a, &b);
        let contains_a_in_b = format!("1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, {R}))");
        let contains_b_in_a = format!("1 = CONTAINS(POINT(b.ra, b.dec), CIRCLE(a.ra, a.dec, {R}))");
        let distance = format!("DISTANCE(POINT(b.ra, b.dec), POINT(a.ra, a.dec)) < {R}");
        // (query, rewritten?)
        let cases = [
            (format!("SELECT a.id, b.id FROM ta AS a LEFT JOIN tb AS b ON {contains_a_in_b}"), true),
            (format!("SELECT a.id, b.id FROM ta AS a LEFT JOIN tb AS b ON {distance}"), true),
            (format!("SELECT a.id, b.id FROM ta AS a RIGHT JOIN tb AS b ON {contains_b_in_a}"), true),
            (format!("SELECT a.id, b.id FROM tb AS b RIGHT JOIN ta AS a ON {distance}"), true),
            // the preserved side would be duplicated: left alone
            (format!("SELECT a.id, b.id FROM ta AS a LEFT JOIN tb AS b ON {contains_b_in_a}"), false),
            (format!("SELECT a.id, b.id FROM ta AS a FULL JOIN tb AS b ON {distance}"), false),
            (
                format!("SELECT a.id FROM ta AS a WHERE EXISTS (SELECT b.id FROM tb AS b WHERE {distance})"),
                true,
            ),
            (
                format!(
                    "SELECT a.id FROM ta AS a WHERE NOT EXISTS (SELECT b.id FROM tb AS b WHERE {contains_a_in_b})"
                ),
                true,
            ),
        ];
        for (query, rewritten) in &cases {
            let fast = run(&with, query).await.expect("query with the rule");
            let slow = run(&without, query).await.expect("nested loop");
            if *rewritten {
                assert_spatial_join(&fast, query);
            } else {
                assert!(
                    !fast.logical.contains("xmatch_"),
                    "{query}:\n{}",
                    fast.logical
                );
            }
            assert_eq!(
                fast.rows, slow.rows,
                "{query}: differs from the nested loop"
            );
            assert!(!fast.rows.is_empty());
        }
    }

    #[tokio::test]
    async fn self_join_and_three_way_crossmatch() {
        let a = points_a(800, 31);
        let b = points_b(&a, R, 800, 32);
        let with = context(true, &a, &b);
        let without = context(false, &a, &b);
        let queries = [
            format!(
                "SELECT x.id, y.id FROM ta AS x JOIN ta AS y \
                 ON DISTANCE(POINT(x.ra, x.dec), POINT(y.ra, y.dec)) < {R} AND x.id < y.id"
            ),
            format!(
                "SELECT a.id, b.id, c.id FROM ta AS a \
                 JOIN tb AS b ON 1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, {R})) \
                 JOIN tb AS c ON 1 = CONTAINS(POINT(c.ra, c.dec), CIRCLE(b.ra, b.dec, {R}))"
            ),
        ];
        for query in &queries {
            let fast = run(&with, query).await.expect("query with the rule");
            let slow = run(&without, query).await.expect("nested loop");
            assert_spatial_join(&fast, query);
            assert_eq!(
                fast.rows, slow.rows,
                "{query}: differs from the nested loop"
            );
            assert!(fast.rows.len() > 50, "{query}: {} rows", fast.rows.len());
        }
    }

    #[tokio::test]
    async fn not_rewritten() {
        let a = points_a(100, 41);
        let b = points_b(&a, R, 100, 42);
        let ctx = context(true, &a, &b);
        for cond in [
            // too large
            "DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 30",
            // not a constant radius
            "1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, b.dec / 1000))",
            // both positions on one side
            "DISTANCE(POINT(a.ra, a.dec), POINT(a.dec, a.ra)) < 0.1 AND a.id = b.id + 0 * b.ra",
            // a comparison that 0 passes
            "CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 0.1)) < 1",
            // greater than a distance
            "DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) > 0.1",
            // an unsupported coordinate system: the query's error stays the nested loop's
            "1 = CONTAINS(POINT('GALACTIC', a.ra, a.dec), CIRCLE(b.ra, b.dec, 0.1))",
        ] {
            let query = format!("SELECT a.id, b.id FROM ta AS a JOIN tb AS b ON {cond}");
            let state = ctx.state();
            let plan = crate::plan(&state, &query).await.expect("plan");
            let optimized = state.optimize(&plan).expect("optimize");
            let text = optimized.display_indent().to_string();
            assert!(!text.contains("xmatch_"), "{query}:\n{text}");
        }
    }

    #[tokio::test]
    async fn rewrite_is_idempotent() {
        let a = points_a(50, 51);
        let b = points_b(&a, R, 50, 52);
        let ctx = context(true, &a, &b);
        let query = format!(
            "SELECT a.id, b.id FROM ta AS a JOIN tb AS b \
             ON 1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, {R}))"
        );
        let state = ctx.state();
        let plan = crate::plan(&state, &query).await.expect("plan");
        let once = state.optimize(&plan).expect("optimize");
        let twice = state.optimize(&once).expect("optimize again");
        let text = once.display_indent().to_string();
        assert_eq!(text, twice.display_indent().to_string());
        assert_eq!(text.matches("xmatch_pixel(").count(), 1, "{text}");
        assert_eq!(text.matches("xmatch_cone_pixels(").count(), 1, "{text}");
        // The join's output schema is unchanged by the rule.
        assert_eq!(once.schema(), plan.schema());
    }

    #[tokio::test]
    async fn invalid_positions_give_the_nested_loop_error() {
        let mut a = points_a(20, 61);
        let b = points_b(&a, R, 20, 62);
        a.push((999, Some(10.0), Some(95.0)));
        let mut b_bad = b.clone();
        b_bad.push((998, Some(10.0), Some(-91.0)));
        for (ta, tb) in [(&a, &b), (&points_a(20, 61), &b_bad)] {
            let with = context(true, ta, tb);
            let without = context(false, ta, tb);
            for cond in [
                format!("1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, {R}))"),
                format!("DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < {R}"),
                format!("DISTANCE(a.ra, a.dec, b.ra, b.dec) < {R}"),
                format!("1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(POINT(b.ra, b.dec), {R}))"),
            ] {
                let query = format!("SELECT a.id, b.id FROM ta AS a JOIN tb AS b ON {cond}");
                let fast = run(&with, &query).await.err().map(|e| e.strip_backtrace());
                let slow = run(&without, &query)
                    .await
                    .err()
                    .map(|e| e.strip_backtrace());
                let (Some(fast), Some(slow)) = (fast, slow) else {
                    panic!("{query}: an error expected");
                };
                let msg = |s: &str| s.rsplit(": latitude").next().map(str::to_string);
                let func = |s: &str| {
                    ["POINT", "CIRCLE", "DISTANCE"]
                        .into_iter()
                        .find(|f| s.contains(&format!("{f}: latitude")))
                };
                assert_eq!(msg(&fast), msg(&slow), "{query}: {fast} / {slow}");
                assert_eq!(func(&fast), func(&slow), "{query}: {fast} / {slow}");
            }
        }
    }

    #[test]
    fn depths() {
        assert_eq!(depth_for_radius(3.0 / 3600.0), Some(15));
        assert_eq!(depth_for_radius(0.0), Some(29));
        assert_eq!(depth_for_radius(f64::NAN), None);
        assert_eq!(depth_for_radius(f64::INFINITY), None);
        assert_eq!(depth_for_radius(MAX_RADIUS_DEG + 1.0), None);
        assert!(depth_for_radius(MAX_RADIUS_DEG).is_some());
    }

    #[test]
    fn cone_pixels_contain_the_pixel_of_every_point_inside() {
        let mut rng = Rng(5);
        for k in 0..20_000 {
            let r = [1e-6, 3.0 / 3600.0, 0.05, 2.0][k % 4];
            let depth = depth_for_radius(r).expect("depth");
            let (lon, lat) = match k % 3 {
                0 => rng.in_cap(0.0, 90.0, 1.0),
                1 => rng.in_cap(0.0, 0.0, 1.0),
                _ => rng.in_cap(0.0, 0.0, 180.0),
            };
            let t = r * (1.0 - 1e-12) * rng.unit().sqrt();
            let (plon, plat) = rng.at(lon, lat, t);
            let cone = nested::cone_coverage_approx(
                depth,
                lon.to_radians(),
                lat.to_radians(),
                padded_radius(r).to_radians(),
            );
            let cells: Vec<u64> = cone.flat_iter().collect();
            let h = nested::hash(depth, plon.to_radians(), plat.to_radians());
            assert!(
                cells.contains(&h),
                "r={r} centre=({lon}, {lat}) point=({plon}, {plat})"
            );
            assert!(cells.len() <= 16, "{} cells", cells.len());
            assert!(cells.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
