//! Recognition of spatial predicates in (planned, possibly optimised) DataFusion expressions.
//!
//! Constants are evaluated here exactly as DataFusion would: literals, casts of constants
//! (emulated with `ScalarValue::cast_to`), negation, and calls of the geometry UDFs on
//! constants (evaluated with the UDF code itself). Anything not understood gives `None`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{ColumnarValue, Expr, Operator};

use super::sphere::{self, Shape};
use super::udf::{self, GeomUdf, Kind, Lists};
use super::{Region, SpatialFilter};

pub(crate) fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

/// The kind and arguments of a call of one of our geometry UDFs.
fn geom_call(e: &Expr) -> Option<(Kind, &[Expr])> {
    match strip_alias(e) {
        Expr::ScalarFunction(sf) => sf
            .func
            .inner()
            .downcast_ref::<GeomUdf>()
            .map(|g| (g.kind(), sf.args.as_slice())),
        _ => None,
    }
}

/// The value of a constant expression, if it is one we can evaluate exactly.
fn const_scalar(e: &Expr) -> Option<ScalarValue> {
    match strip_alias(e) {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => const_scalar(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::TryCast(c) => const_scalar(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::Negative(inner) => {
            let v = const_scalar(inner)?;
            if v.data_type().is_numeric() {
                v.arithmetic_negate().ok()
            } else {
                None
            }
        }
        other => {
            let (kind, args) = geom_call(other)?;
            let vals: Vec<ColumnarValue> = args
                .iter()
                .map(|a| const_scalar(a).map(ColumnarValue::Scalar))
                .collect::<Option<_>>()?;
            match udf::evaluate(kind, &vals, 1).ok()? {
                ColumnarValue::Scalar(s) => Some(s),
                ColumnarValue::Array(_) => None,
            }
        }
    }
}

/// A constant number.
fn const_f64(e: &Expr) -> Option<f64> {
    let v = const_scalar(e)?;
    if !v.data_type().is_numeric() {
        return None;
    }
    match v.cast_to(&DataType::Float64).ok()? {
        ScalarValue::Float64(Some(x)) => Some(x),
        _ => None,
    }
}

/// A constant geometry.
fn const_shape(e: &Expr) -> Option<Shape> {
    let v = const_scalar(e)?;
    if !matches!(
        v.data_type(),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
    ) {
        return None;
    }
    let arr = v.to_array_of_size(1).ok()?;
    let lists = Lists::new(&arr, true).ok()?;
    let vals = lists.get(0)?;
    Shape::from_values(vals).ok()?
}

/// A column, possibly cast to Float64 (exact or rounding-level conversions only).
fn column_of(e: &Expr) -> Option<Column> {
    match strip_alias(e) {
        Expr::Column(c) => Some(c.clone()),
        Expr::Cast(c) if *c.field.data_type() == DataType::Float64 => column_of(&c.expr),
        Expr::TryCast(c) if *c.field.data_type() == DataType::Float64 => column_of(&c.expr),
        _ => None,
    }
}

pub(crate) fn is_f64_list(dt: &DataType) -> bool {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type() == &DataType::Float64
        }
        _ => false,
    }
}

/// Looks through casts between list-of-double types.
pub(crate) fn strip_geom_casts(e: &Expr) -> &Expr {
    match strip_alias(e) {
        Expr::Cast(c) if is_f64_list(c.field.data_type()) => strip_geom_casts(&c.expr),
        Expr::TryCast(c) if is_f64_list(c.field.data_type()) => strip_geom_casts(&c.expr),
        other => other,
    }
}

/// `point([cs,] lon_col, lat_col)`.
fn column_point(e: &Expr) -> Option<(Column, Column)> {
    let (kind, args) = geom_call(strip_geom_casts(e))?;
    if kind != Kind::Point {
        return None;
    }
    let coords = match args.len() {
        2 => args,
        3 => {
            match const_scalar(&args[0])? {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)) => udf::check_coordsys(&s).ok()?,
                _ => return None,
            }
            &args[1..]
        }
        _ => return None,
    };
    Some((column_of(&coords[0])?, column_of(&coords[1])?))
}

fn region_of(shape: Shape) -> Region {
    match shape {
        Shape::Point(p) => Region::Circle {
            lon: p.lon,
            lat: p.lat,
            radius: 0.0,
        },
        Shape::Circle(c) => Region::Circle {
            lon: c.lon,
            lat: c.lat,
            radius: c.radius,
        },
        Shape::Polygon(g) => Region::Polygon { vertices: g.lonlat },
    }
}

/// `a op b` on numbers (`None`: not a comparison).
pub(crate) fn holds(a: f64, op: Operator, b: f64) -> Option<bool> {
    Some(match op {
        Operator::Eq => a == b,
        Operator::NotEq => a != b,
        Operator::Lt => a < b,
        Operator::LtEq => a <= b,
        Operator::Gt => a > b,
        Operator::GtEq => a >= b,
        _ => return None,
    })
}

pub(crate) fn flip(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Eq => Operator::Eq,
        Operator::NotEq => Operator::NotEq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        _ => return None,
    })
}

/// Looks through numeric casts (all exact on the values 0 and 1).
pub(crate) fn strip_numeric_casts(e: &Expr) -> &Expr {
    match strip_alias(e) {
        Expr::Cast(c) if c.field.data_type().is_numeric() => strip_numeric_casts(&c.expr),
        Expr::TryCast(c) if c.field.data_type().is_numeric() => strip_numeric_casts(&c.expr),
        other => other,
    }
}

/// Looks through casts to Float64 (exact on Float64 values).
pub(crate) fn strip_f64_casts(e: &Expr) -> &Expr {
    match strip_alias(e) {
        Expr::Cast(c) if *c.field.data_type() == DataType::Float64 => strip_f64_casts(&c.expr),
        Expr::TryCast(c) if *c.field.data_type() == DataType::Float64 => strip_f64_casts(&c.expr),
        other => other,
    }
}

/// `CONTAINS(point(cols), const)` / `INTERSECTS(..)` either way round.
fn shape_predicate(kind: Kind, args: &[Expr]) -> Option<SpatialFilter> {
    if args.len() != 2 {
        return None;
    }
    let try_order = |p: &Expr, s: &Expr| -> Option<SpatialFilter> {
        let (lon, lat) = column_point(p)?;
        let shape = const_shape(s)?;
        Some(SpatialFilter {
            lon,
            lat,
            region: region_of(shape),
        })
    };
    match kind {
        Kind::Contains => try_order(&args[0], &args[1]),
        Kind::Intersects => try_order(&args[0], &args[1]).or_else(|| try_order(&args[1], &args[0])),
        _ => None,
    }
}

/// `DISTANCE(point(cols), const point) < r` and its variants.
fn distance_predicate(args: &[Expr], radius: f64) -> Option<SpatialFilter> {
    let circle = |lon: Column, lat: Column, clon: f64, clat: f64| -> Option<SpatialFilter> {
        if !sphere::check_lonlat("DISTANCE", clon, clat).ok()? {
            return None;
        }
        Some(SpatialFilter {
            lon,
            lat,
            region: Region::Circle {
                lon: clon,
                lat: clat,
                radius,
            },
        })
    };
    match args.len() {
        2 => {
            let try_order = |p: &Expr, c: &Expr| -> Option<SpatialFilter> {
                let (lon, lat) = column_point(p)?;
                match const_shape(c)? {
                    Shape::Point(q) => circle(lon, lat, q.lon, q.lat),
                    _ => None,
                }
            };
            try_order(&args[0], &args[1]).or_else(|| try_order(&args[1], &args[0]))
        }
        4 => {
            let try_order = |c: &[Expr], k: &[Expr]| -> Option<SpatialFilter> {
                let lon = column_of(&c[0])?;
                let lat = column_of(&c[1])?;
                circle(lon, lat, const_f64(&k[0])?, const_f64(&k[1])?)
            };
            try_order(&args[..2], &args[2..]).or_else(|| try_order(&args[2..], &args[..2]))
        }
        _ => None,
    }
}

/// `udf_side op constant`.
fn comparison(side: &Expr, op: Operator, constant: &Expr) -> Option<SpatialFilter> {
    if let Some((kind, args)) = geom_call(strip_numeric_casts(side)) {
        if matches!(kind, Kind::Contains | Kind::Intersects) {
            let c = const_f64(constant)?;
            // the function gives 0 or 1: the predicate must reject 0
            if holds(0.0, op, c).unwrap_or(true) {
                return None;
            }
            return shape_predicate(kind, args);
        }
    }
    let (kind, args) = geom_call(strip_f64_casts(side))?;
    if kind != Kind::Distance || !matches!(op, Operator::Lt | Operator::LtEq | Operator::Eq) {
        return None;
    }
    let r = const_f64(constant)?;
    if r.is_nan() {
        return None;
    }
    distance_predicate(args, r)
}

/// One conjunct.
fn predicate(e: &Expr) -> Option<SpatialFilter> {
    let Expr::BinaryExpr(b) = strip_alias(e) else {
        return None;
    };
    comparison(&b.left, b.op, &b.right).or_else(|| comparison(&b.right, flip(b.op)?, &b.left))
}

/// All the spatial conjuncts of a predicate.
pub(crate) fn recognise_all(e: &Expr) -> Vec<SpatialFilter> {
    split_conjunction(e)
        .into_iter()
        .filter_map(predicate)
        .collect()
}
