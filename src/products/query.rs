//! ObsCore query expressions: what SIA 2.0, SIA 1.0 and SSA build their filters on
//! `ivoa.obscore` from, as DataFusion expressions (never as text). An image is found when its
//! **footprint** (`s_region`) meets the query shape, not its centre; a cone on the image centres
//! (the shape's bounding circle widened by the largest footprint radius) lets the catalog's
//! HEALPix partitions prune the scan.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::{Column, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{lit, Expr, ScalarUDF};

use crate::dali::{DalError, Params};
use crate::engine::Engine;

/// An unqualified column.
pub fn column(n: &str) -> Expr {
    Expr::Column(Column::new_unqualified(n))
}

/// A registered UDF (the ADQL geometry functions).
pub fn udf(engine: &Engine, name: &str) -> Result<Arc<ScalarUDF>, DalError> {
    Ok(engine.udf(name)?)
}

/// The served ObsCore table, or an error saying there is none.
pub async fn obscore(engine: &Engine) -> Result<DataFrame, DalError> {
    if engine.table("ivoa.obscore").is_none() {
        return Err(DalError::bad_request(
            "this server publishes no images or spectra (ivoa.obscore is empty); \
             ingest some with `vostok ingest <folder>`",
        ));
    }
    engine
        .ctx()
        .table(TableReference::partial("ivoa", "obscore"))
        .await
        .map_err(|e| DalError::internal(e.to_string()))
}

/// A number of a DALI value: decimal, or `-Inf`/`+Inf`/`Inf`.
pub fn dali_number(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "-inf" => Some(f64::NEG_INFINITY),
        "+inf" | "inf" => Some(f64::INFINITY),
        "nan" | "+nan" | "-nan" => None,
        t => t.parse::<f64>().ok(),
    }
}

/// A DALI interval: `lo hi` (or one number, the degenerate interval).
pub fn interval(name: &str, v: &str) -> Result<(f64, f64), DalError> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let bad = || {
        DalError::bad_request(format!(
            "{name}={v}: expected an interval of two numbers 'low high' (-Inf and +Inf allowed)"
        ))
    };
    let (lo, hi) = match parts.as_slice() {
        [a] => {
            let x = dali_number(a).ok_or_else(bad)?;
            (x, x)
        }
        [a, b] => (
            dali_number(a).ok_or_else(bad)?,
            dali_number(b).ok_or_else(bad)?,
        ),
        _ => return Err(bad()),
    };
    if lo > hi {
        return Err(DalError::bad_request(format!(
            "{name}={v}: the lower bound is above the upper bound"
        )));
    }
    Ok((lo, hi))
}

/// `lo <= c <= hi` with open ends left out.
pub fn within(c: &str, lo: f64, hi: f64) -> Expr {
    let mut e = column(c).is_not_null();
    if lo.is_finite() {
        e = e.and(column(c).gt_eq(lit(lo)));
    }
    if hi.is_finite() {
        e = e.and(column(c).lt_eq(lit(hi)));
    }
    e
}

/// `[cmin, cmax]` overlaps `[lo, hi]`.
pub fn overlaps(cmin: &str, cmax: &str, lo: f64, hi: f64) -> Expr {
    let mut e = column(cmin).is_not_null().and(column(cmax).is_not_null());
    if hi.is_finite() {
        e = e.and(column(cmin).lt_eq(lit(hi)));
    }
    if lo.is_finite() {
        e = e.and(column(cmax).gt_eq(lit(lo)));
    }
    e
}

/// OR of the alternatives (None when there are none).
pub fn any_of(v: Vec<Expr>) -> Option<Expr> {
    v.into_iter().reduce(Expr::or)
}

/// The non-empty values of a (repeatable) parameter, case-insensitive name.
pub fn values<'a>(p: &'a Params, name: &'a str) -> Vec<&'a str> {
    p.get_all(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// Column metadata overrides of a protocol's result: (column, [(key, value)]); an empty value
/// removes what ObsCore says.
pub type ColumnMeta = [(&'static str, &'static [(&'static str, &'static str)])];

/// Output schema of `df` with `ID="obs_publisher_did"` on that column (for the DataLink
/// descriptor's `ref`) and the `overrides` applied.
pub fn output_schema(df: &DataFrame, overrides: &ColumnMeta) -> Arc<Schema> {
    let base = df.schema().as_arrow().clone();
    let fields: Vec<Field> = base
        .fields()
        .iter()
        .map(|f| {
            let mut md = f.metadata().clone();
            if f.name() == "obs_publisher_did" {
                md.insert("ID".into(), "obs_publisher_did".into());
            }
            for (_, o) in overrides.iter().filter(|(n, _)| *n == f.name()) {
                for (k, v) in o.iter() {
                    if v.is_empty() {
                        md.remove(*k);
                    } else {
                        md.insert((*k).to_string(), (*v).to_string());
                    }
                }
            }
            f.as_ref().clone().with_metadata(md)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Runs a product query (SIA, SSA) and streams its VOTable: `infos` in the RESOURCE, the
/// TABLE named `results`, and the DataLink service descriptor for the rows' identifiers
/// (links under `base`).
pub async fn respond(
    engine: &Engine,
    df: DataFrame,
    overrides: &ColumnMeta,
    maxrec: u64,
    format: votable::Format,
    infos: Vec<votable::Info>,
    base: &str,
) -> Result<actix_web::HttpResponse, DalError> {
    let schema = output_schema(&df, overrides);
    crate::dali::execute(
        engine,
        crate::engine::QueryRequest {
            plan: df.into_unoptimized_plan(),
            maxrec,
            format,
            info: votable::TableInfo {
                infos,
                table_name: Some("results".into()),
                extra_resources: Some(super::datalink_descriptor(base)),
            },
            schema: Some(schema),
        },
    )
    .await
}

/// Parses `ra,dec` or `ra dec` (SIA 1, SSA `POS`), with an optional `;ICRS`-style frame suffix.
pub fn pos_pair(name: &str, v: &str) -> Result<(f64, f64), DalError> {
    let (coords, frame) = match v.split_once(';') {
        Some((c, f)) => (c, Some(f.trim())),
        None => (v, None),
    };
    if let Some(f) = frame {
        let up = f.to_ascii_uppercase();
        if !(up.is_empty() || up == "ICRS" || up == "FK5" || up == "J2000" || up == "ICRS-TOPO") {
            return Err(DalError::bad_request(format!(
                "{name}={v}: only ICRS positions are supported"
            )));
        }
    }
    let nums: Vec<f64> = coords
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| DalError::bad_request(format!("{name}={v}: expected 'ra,dec' in degrees")))?;
    match nums.as_slice() {
        [ra, dec] if ra.is_finite() && (-90.0..=90.0).contains(dec) => {
            Ok((ra.rem_euclid(360.0), *dec))
        }
        _ => Err(DalError::bad_request(format!(
            "{name}={v}: expected 'ra,dec' in degrees with -90 <= dec <= 90"
        ))),
    }
}

/// A shape as the geometry UDFs build it.
pub enum Shape {
    Circle(f64, f64, f64),
    Polygon(Vec<(f64, f64)>),
}

impl Shape {
    pub fn expr(&self, engine: &Engine) -> Result<Expr, DalError> {
        Ok(match self {
            Shape::Circle(ra, dec, r) => {
                udf(engine, "circle")?.call(vec![lit(*ra), lit(*dec), lit(*r)])
            }
            Shape::Polygon(v) => udf(engine, "polygon")?
                .call(v.iter().flat_map(|(a, b)| [lit(*a), lit(*b)]).collect()),
        })
    }
}

/// `INTERSECTS(s_region, shape) = 1`: the footprint meets the shape.
pub fn intersects_expr(engine: &Engine, shape: &Shape) -> Result<Expr, DalError> {
    Ok(udf(engine, "intersects")?
        .call(vec![column("s_region"), shape.expr(engine)?])
        .eq(lit(1i32)))
}

/// Products whose footprint could not be drawn as a polygon because they cover the whole sky
/// (`s_region` NULL, `s_fov` 360): they meet every shape.
fn whole_sky() -> Expr {
    column("s_region")
        .is_null()
        .and(column("s_fov").gt_eq(lit(359.0)))
}

/// Images whose footprint intersects `shape` (whole-sky ones included).
pub fn footprint_intersects(engine: &Engine, shape: &Shape) -> Result<Expr, DalError> {
    Ok(intersects_expr(engine, shape)?.or(whole_sky()))
}

/// The smallest circle found around a shape's vertices: (lon, lat, radius), degrees. Every
/// point of a shape whose vertices lie within 90° of a point lies within the largest vertex
/// distance of it (distance along a great-circle arc has no interior maximum below 90°).
fn bounding_cap(shape: &Shape) -> Option<(f64, f64, f64)> {
    match shape {
        Shape::Circle(a, b, r) => Some((*a, *b, *r)),
        Shape::Polygon(v) => {
            let xyz = |(lon, lat): (f64, f64)| {
                let (l, b) = (lon.to_radians(), lat.to_radians());
                [b.cos() * l.cos(), b.cos() * l.sin(), b.sin()]
            };
            let mut c = [0.0f64; 3];
            for p in v {
                let q = xyz(*p);
                for k in 0..3 {
                    c[k] += q[k];
                }
            }
            let n = (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt();
            if n < 1e-9 {
                return None;
            }
            let lon = c[1].atan2(c[0]).to_degrees().rem_euclid(360.0);
            let lat = (c[2] / n).clamp(-1.0, 1.0).asin().to_degrees();
            let r = v
                .iter()
                .map(|(a, b)| adql::geom::distance_deg(lon, lat, *a, *b))
                .fold(0.0, f64::max);
            Some((lon, lat, r))
        }
    }
}

/// The ObsCore rows matching `rest` and `exact`, a footprint condition that implies the
/// footprint meets `shape`; whole-sky products are added when `with_whole_sky`.
///
/// An image meeting a shape has its centre within (shape's bounding radius + the image's
/// s_fov/2) of the shape's centre. With the largest s_fov of the table that is a cone on
/// (s_ra, s_dec) which HEALPix-prunes the scan: the query then reads only the partitions near
/// the shape, and the whole-sky products come from a second scan on s_fov (pruned by the
/// row-group statistics). `max_half_fov` is [`Obscore::max_half_fov`].
pub async fn footprint_frame(
    engine: &Engine,
    max_half_fov: Option<f64>,
    rest: Expr,
    shape: &Shape,
    exact: Expr,
    with_whole_sky: bool,
) -> Result<DataFrame, DalError> {
    let internal = |e: datafusion::error::DataFusionError| DalError::internal(e.to_string());
    let cone = match (bounding_cap(shape), max_half_fov) {
        (Some((lon, lat, r)), Some(h)) if r < 90.0 && h < 90.0 && r + h < 170.0 => {
            Some(Shape::Circle(lon, lat, r + h))
        }
        _ => None,
    };
    let Some(cone) = cone else {
        let cond = if with_whole_sky {
            exact.or(whole_sky())
        } else {
            exact
        };
        return obscore(engine)
            .await?
            .filter(rest.and(cond))
            .map_err(internal);
    };
    let near = udf(engine, "contains")?
        .call(vec![
            udf(engine, "point")?.call(vec![column("s_ra"), column("s_dec")]),
            cone.expr(engine)?,
        ])
        .eq(lit(1i32));
    let df = obscore(engine)
        .await?
        .filter(rest.clone().and(near).and(exact))
        .map_err(internal)?;
    if !with_whole_sky {
        return Ok(df);
    }
    let all_sky = obscore(engine)
        .await?
        .filter(rest.and(whole_sky()))
        .map_err(internal)?;
    df.union(all_sky).map_err(internal)
}
