//! Simple Image Access: SIA 2.0 at `/sia/v2/query` and SIA 1.0 at `/sia/v1` for older clients.
//!
//! Both are thin translations of HTTP parameters into a filter on `ivoa.obscore`, built as
//! DataFusion expressions (never as text), then planned, run and streamed by the shared query
//! path like any ADQL query. An image is found when its **footprint** (`s_region`, the WCS
//! border) satisfies the query, not its centre: `INTERSECTS(s_region, <query shape>) = 1`.
//!
//! SIA 2.0 (with DALI 1.1): every parameter may repeat; values of one parameter are OR-ed,
//! different parameters AND-ed. Intervals are two numbers (`-Inf`/`+Inf` open an end), a single
//! number being the degenerate interval. Unknown parameters are ignored.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use datafusion::arrow::array::{Array, AsArray, FixedSizeListBuilder, Int32Builder};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Column, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    lit, ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use votable::{Encoding, Info};

use crate::params::Params;
use crate::query::{execute, DalError, Format, QueryRequest};
use crate::server::AppState;
use crate::vosi::{self, esc};

/// Registers the SIA routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sia/v2/query", web::get().to(query2))
        .route("/sia/v2/query", web::post().to(query2))
        .route("/sia/v2/capabilities", web::get().to(capabilities2))
        .route(
            "/sia/v2/availability",
            web::get().to(vosi::availability_response),
        )
        .route("/sia/v1", web::get().to(query1))
        .route("/sia/v1", web::post().to(query1))
        .route("/sia/v1/capabilities", web::get().to(capabilities1))
        .route(
            "/sia/v1/availability",
            web::get().to(vosi::availability_response),
        );
}

// ---------------------------------------------------------------------------------------------
// Helpers shared with SSA

/// An unqualified column.
pub(crate) fn column(n: &str) -> Expr {
    Expr::Column(Column::new_unqualified(n))
}

/// A registered UDF (the ADQL geometry functions).
pub(crate) fn udf(state: &AppState, name: &str) -> Result<Arc<ScalarUDF>, DalError> {
    state
        .ctx
        .udf(name)
        .map_err(|e| DalError::internal(e.to_string()))
}

/// The served ObsCore table, or an error saying there is none.
pub(crate) async fn obscore(state: &AppState) -> Result<DataFrame, DalError> {
    if state.table("ivoa.obscore").is_none() {
        return Err(DalError::bad_request(
            "this server publishes no images or spectra (ivoa.obscore is empty); \
             ingest some with `vostok ingest <folder>`",
        ));
    }
    state
        .ctx
        .table(TableReference::partial("ivoa", "obscore"))
        .await
        .map_err(|e| DalError::internal(e.to_string()))
}

/// A number of a DALI value: decimal, or `-Inf`/`+Inf`/`Inf`.
pub(crate) fn dali_number(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "-inf" => Some(f64::NEG_INFINITY),
        "+inf" | "inf" => Some(f64::INFINITY),
        "nan" | "+nan" | "-nan" => None,
        t => t.parse::<f64>().ok(),
    }
}

/// A DALI interval: `lo hi` (or one number, the degenerate interval).
pub(crate) fn interval(name: &str, v: &str) -> Result<(f64, f64), DalError> {
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
pub(crate) fn within(c: &str, lo: f64, hi: f64) -> Expr {
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
pub(crate) fn overlaps(cmin: &str, cmax: &str, lo: f64, hi: f64) -> Expr {
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
pub(crate) fn any_of(v: Vec<Expr>) -> Option<Expr> {
    v.into_iter().reduce(Expr::or)
}

/// The non-empty values of a (repeatable) parameter, case-insensitive name.
pub(crate) fn values<'a>(p: &'a Params, name: &'a str) -> Vec<&'a str> {
    p.get_all(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// The DataLink service descriptor pointing result rows (by `obs_publisher_did`) to
/// `/datalink/links`.
pub(crate) fn datalink_descriptor(base: &str) -> String {
    format!(
        "<RESOURCE type=\"meta\" utype=\"adhoc:service\" name=\"links\">\n\
<DESCRIPTION>DataLink: the file, a preview and the FITS header of each product</DESCRIPTION>\n\
<PARAM name=\"standardID\" datatype=\"char\" arraysize=\"*\" value=\"ivo://ivoa.net/std/DataLink#links-1.1\"/>\n\
<PARAM name=\"accessURL\" datatype=\"char\" arraysize=\"*\" value=\"{}/datalink/links\"/>\n\
<GROUP name=\"inputParams\">\n\
<PARAM name=\"ID\" datatype=\"char\" arraysize=\"*\" value=\"\" ref=\"obs_publisher_did\" ucd=\"meta.id;meta.main\"/>\n\
</GROUP>\n</RESOURCE>\n",
        esc(base)
    )
}

/// Output schema of `plan` with `ID="obs_publisher_did"` on that column (for the descriptor's
/// `ref`) and any `overrides` (name → metadata entries) applied.
pub(crate) fn output_schema(
    df: &DataFrame,
    overrides: &HashMap<&str, Vec<(&str, String)>>,
) -> Arc<Schema> {
    let base = df.schema().as_arrow().clone();
    let fields: Vec<Field> = base
        .fields()
        .iter()
        .map(|f| {
            let mut md = f.metadata().clone();
            if f.name() == "obs_publisher_did" {
                md.insert("ID".into(), "obs_publisher_did".into());
            }
            if let Some(o) = overrides.get(f.name().as_str()) {
                for (k, v) in o {
                    if v.is_empty() {
                        md.remove(*k);
                    } else {
                        md.insert((*k).to_string(), v.clone());
                    }
                }
            }
            f.as_ref().clone().with_metadata(md)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Metadata entries for [`output_schema`] overrides (an empty value removes the entry).
pub(crate) fn meta(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Parses `ra,dec` or `ra dec` (SIA 1, SSA `POS`), with an optional `;ICRS`-style frame suffix.
pub(crate) fn pos_pair(name: &str, v: &str) -> Result<(f64, f64), DalError> {
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
pub(crate) enum Shape {
    Circle(f64, f64, f64),
    Polygon(Vec<(f64, f64)>),
}

impl Shape {
    pub(crate) fn expr(&self, state: &AppState) -> Result<Expr, DalError> {
        Ok(match self {
            Shape::Circle(ra, dec, r) => {
                udf(state, "circle")?.call(vec![lit(*ra), lit(*dec), lit(*r)])
            }
            Shape::Polygon(v) => udf(state, "polygon")?
                .call(v.iter().flat_map(|(a, b)| [lit(*a), lit(*b)]).collect()),
        })
    }
}

/// `INTERSECTS(s_region, shape) = 1`: the footprint meets the shape.
pub(crate) fn intersects_expr(state: &AppState, shape: &Shape) -> Result<Expr, DalError> {
    Ok(udf(state, "intersects")?
        .call(vec![column("s_region"), shape.expr(state)?])
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
pub(crate) fn footprint_intersects(state: &AppState, shape: &Shape) -> Result<Expr, DalError> {
    Ok(intersects_expr(state, shape)?.or(whole_sky()))
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
/// row-group statistics).
pub(crate) async fn footprint_frame(
    state: &AppState,
    rest: Expr,
    shape: &Shape,
    exact: Expr,
    with_whole_sky: bool,
) -> Result<DataFrame, DalError> {
    let internal = |e: datafusion::error::DataFusionError| DalError::internal(e.to_string());
    let cone = match (bounding_cap(shape), state.obscore_max_half_fov) {
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
        return obscore(state)
            .await?
            .filter(rest.and(cond))
            .map_err(internal);
    };
    let near = udf(state, "contains")?
        .call(vec![
            udf(state, "point")?.call(vec![column("s_ra"), column("s_dec")]),
            cone.expr(state)?,
        ])
        .eq(lit(1i32));
    let df = obscore(state)
        .await?
        .filter(rest.clone().and(near).and(exact))
        .map_err(internal)?;
    if !with_whole_sky {
        return Ok(df);
    }
    let all_sky = obscore(state)
        .await?
        .filter(rest.and(whole_sky()))
        .map_err(internal)?;
    df.union(all_sky).map_err(internal)
}

/// A RANGE (lon1 lon2 lat1 lat2) as polygons: the edges of constant latitude are small circles,
/// so they are sampled every 0.5° (a great-circle chord between samples bulges by < 0.001°);
/// spans over 180° of longitude are split.
fn range_polygons(lon1: f64, lon2: f64, lat1: f64, lat2: f64) -> Vec<Vec<(f64, f64)>> {
    let span = if lon2 >= lon1 {
        lon2 - lon1
    } else {
        lon2 + 360.0 - lon1
    };
    let span = span.min(360.0);
    let pieces = (span / 120.0).ceil().max(1.0) as usize;
    let width = span / pieces as f64;
    let mut out = Vec::new();
    for k in 0..pieces {
        let a = lon1 + width * k as f64;
        let b = a + width;
        let n = ((b - a) / 0.5).ceil().max(1.0) as usize;
        let mut v = Vec::with_capacity(2 * n + 2);
        // Bottom edge west → east, top edge east → west (counter-clockwise seen from inside).
        for i in 0..=n {
            v.push(((a + (b - a) * i as f64 / n as f64).rem_euclid(360.0), lat1));
        }
        for i in (0..=n).rev() {
            v.push(((a + (b - a) * i as f64 / n as f64).rem_euclid(360.0), lat2));
        }
        // Degenerate edges at the poles collapse to one vertex.
        v.dedup_by(|x, y| (x.1.abs() >= 90.0 && x.1 == y.1) || x == y);
        out.push(v);
    }
    out
}

/// One SIA 2.0 `POS` value as shapes (OR-ed).
fn pos_shapes(v: &str) -> Result<Vec<Shape>, DalError> {
    let mut toks = v.split_whitespace();
    let kind = toks.next().unwrap_or("").to_ascii_uppercase();
    let nums: Vec<f64> = toks
        .map(dali_number)
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| DalError::bad_request(format!("POS={v}: not a number in the shape")))?;
    let lat_ok = |d: f64| (-90.0..=90.0).contains(&d);
    match (kind.as_str(), nums.as_slice()) {
        ("CIRCLE", [ra, dec, r]) if ra.is_finite() && lat_ok(*dec) && (0.0..=180.0).contains(r) => {
            Ok(vec![Shape::Circle(ra.rem_euclid(360.0), *dec, *r)])
        }
        ("RANGE", [l1, l2, b1, b2]) => {
            let (b1, b2) = (b1.max(-90.0), b2.min(90.0));
            if b1 > b2 {
                return Err(DalError::bad_request(format!(
                    "POS={v}: the latitude range is empty"
                )));
            }
            let full_lon = !l1.is_finite() || !l2.is_finite() || (l2 - l1) >= 360.0;
            let (l1, l2) = if full_lon {
                (0.0, 360.0)
            } else {
                (l1.rem_euclid(360.0), l2.rem_euclid(360.0))
            };
            if full_lon && b1 <= -90.0 && b2 >= 90.0 {
                return Ok(vec![Shape::Circle(0.0, 90.0, 180.0)]);
            }
            if full_lon && (b1 <= -90.0 || b2 >= 90.0) {
                // A polar cap: a circle around the pole.
                return Ok(vec![if b2 >= 90.0 {
                    Shape::Circle(0.0, 90.0, 90.0 - b1)
                } else {
                    Shape::Circle(0.0, -90.0, 90.0 + b2)
                }]);
            }
            Ok(
                range_polygons(l1, if full_lon { l1 + 360.0 } else { l2 }, b1, b2)
                    .into_iter()
                    .map(Shape::Polygon)
                    .collect(),
            )
        }
        ("POLYGON", n) if n.len() >= 6 && n.len() % 2 == 0 => {
            let v2: Vec<(f64, f64)> = n
                .chunks(2)
                .map(|c| (c[0].rem_euclid(360.0), c[1]))
                .collect();
            if v2.iter().any(|(a, b)| !a.is_finite() || !lat_ok(*b)) {
                return Err(DalError::bad_request(format!(
                    "POS={v}: a vertex is off the sphere"
                )));
            }
            Ok(vec![Shape::Polygon(v2)])
        }
        _ => Err(DalError::bad_request(format!(
            "POS={v}: expected 'CIRCLE ra dec radius', 'RANGE lon1 lon2 lat1 lat2' or \
             'POLYGON ra1 dec1 ra2 dec2 ra3 dec3 …' (degrees, ICRS)"
        ))),
    }
}

/// The Stokes and other polarisation states SIA 2.0 `POL` accepts.
const POL_STATES: [&str; 14] = [
    "I", "Q", "U", "V", "RR", "LL", "RL", "LR", "XX", "YY", "XY", "YX", "POLI", "POLA",
];

/// Builds the SIA 2.0 filter from the parameters: every condition but `POS`, and the `POS`
/// shapes (OR-ed).
fn sia2_filter(p: &Params) -> Result<(Expr, Vec<Shape>), DalError> {
    let mut conds: Vec<Expr> = Vec::new();
    let mut add = |alts: Vec<Expr>| {
        if let Some(e) = any_of(alts) {
            conds.push(e);
        }
    };
    let mut shapes = Vec::new();
    for v in values(p, "POS") {
        shapes.extend(pos_shapes(v)?);
    }
    // Numeric intervals: overlap for coverage, containment for single quantities.
    for (name, lo_col, hi_col) in [("BAND", "em_min", "em_max"), ("TIME", "t_min", "t_max")] {
        let mut alts = Vec::new();
        for v in values(p, name) {
            let (lo, hi) = interval(name, v)?;
            alts.push(overlaps(lo_col, hi_col, lo, hi));
        }
        add(alts);
    }
    for (name, c) in [
        ("FOV", "s_fov"),
        ("SPATRES", "s_resolution"),
        ("EXPTIME", "t_exptime"),
        ("TIMERES", "t_resolution"),
        ("SPECRP", "em_res_power"),
    ] {
        let mut alts = Vec::new();
        for v in values(p, name) {
            let (lo, hi) = interval(name, v)?;
            alts.push(within(c, lo, hi));
        }
        add(alts);
    }
    // POL: the state among the product's pol_states (`/I/Q/U/`).
    let mut alts = Vec::new();
    for v in values(p, "POL") {
        let up = v.to_ascii_uppercase();
        if !POL_STATES.contains(&up.as_str()) {
            return Err(DalError::bad_request(format!(
                "POL={v}: expected one of {}",
                POL_STATES.join(", ")
            )));
        }
        // The pattern is built from a fixed list, never from free text.
        alts.push(column("pol_states").like(lit(format!("%/{up}/%"))));
    }
    add(alts);
    // Exact string matches.
    for (name, c) in [
        ("ID", "obs_publisher_did"),
        ("COLLECTION", "obs_collection"),
        ("FACILITY", "facility_name"),
        ("INSTRUMENT", "instrument_name"),
        ("DPTYPE", "dataproduct_type"),
        ("TARGET", "target_name"),
        ("FORMAT", "access_format"),
    ] {
        let alts = values(p, name)
            .into_iter()
            .map(|v| column(c).eq(lit(v.to_string())))
            .collect();
        add(alts);
    }
    let mut alts = Vec::new();
    for v in values(p, "CALIB") {
        let n: i32 = v
            .parse()
            .ok()
            .filter(|n| (0..=4).contains(n))
            .ok_or_else(|| DalError::bad_request(format!("CALIB={v}: expected 0, 1, 2, 3 or 4")))?;
        alts.push(column("calib_level").eq(lit(n)));
    }
    add(alts);
    // SIA serves images and cubes (spectra are SSA's).
    conds.push(
        column("dataproduct_type")
            .eq(lit("image"))
            .or(column("dataproduct_type").eq(lit("cube"))),
    );
    Ok((
        conds.into_iter().reduce(Expr::and).unwrap_or(lit(true)),
        shapes,
    ))
}

async fn query2(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let p = Params::from_request(&req, &body);
    let base = state.base_url(&req);
    match run_sia2(state.into_inner(), &p, &base).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

async fn run_sia2(state: Arc<AppState>, p: &Params, base: &str) -> Result<HttpResponse, DalError> {
    let maxrec = crate::tap::parse_maxrec(p.get_nonempty("MAXREC"), &state)?;
    let format = Format::parse(p.get_nonempty("RESPONSEFORMAT"))?;
    let (rest, shapes) = sia2_filter(p)?;
    let df = match shapes.as_slice() {
        [] => obscore(&state)
            .await?
            .filter(rest)
            .map_err(|e| DalError::internal(e.to_string()))?,
        [one] => footprint_frame(&state, rest, one, intersects_expr(&state, one)?, true).await?,
        several => {
            let mut alts = Vec::new();
            for s in several {
                alts.push(footprint_intersects(&state, s)?);
            }
            let any = any_of(alts).unwrap_or(lit(false));
            obscore(&state)
                .await?
                .filter(rest.and(any))
                .map_err(|e| DalError::internal(e.to_string()))?
        }
    };
    let schema = output_schema(&df, &HashMap::new());
    let mut infos = vec![Info::new("standardID", "ivo://ivoa.net/std/SIA#query-2.0")];
    for (k, v) in p.pairs() {
        if !v.trim().is_empty() && !k.eq_ignore_ascii_case("MAXREC") {
            infos.push(Info::new(k.to_ascii_uppercase(), v.clone()));
        }
    }
    execute(
        &state,
        QueryRequest {
            plan: df.into_unoptimized_plan(),
            maxrec,
            format,
            infos,
            schema: Some(schema),
            table_name: Some("results".into()),
            extra_resources: Some(datalink_descriptor(base)),
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// SIA 1.0

/// An SIA 1.0 error: a VOTable with `QUERY_STATUS` = `ERROR`, sent with HTTP 200 as SIA 1.0
/// (like SCS 1.03) expects.
fn error1(message: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(votable::error_document(message))
}

async fn query1(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let p = Params::from_request(&req, &body);
    let base = state.base_url(&req);
    match run_sia1(state.into_inner(), &p, &base).await {
        Ok(r) => r,
        Err(e) => error1(&e.message),
    }
}

async fn run_sia1(state: Arc<AppState>, p: &Params, base: &str) -> Result<HttpResponse, DalError> {
    let format = p.get_nonempty("FORMAT").unwrap_or("ALL").trim().to_string();
    let metadata = format.eq_ignore_ascii_case("METADATA");
    let mut conds: Vec<Expr> = vec![column("dataproduct_type")
        .eq(lit("image"))
        .or(column("dataproduct_type").eq(lit("cube")))];
    let mut spatial: Option<(Shape, Expr, bool)> = None;
    if !metadata {
        let pos = p
            .get_nonempty("POS")
            .ok_or_else(|| DalError::bad_request("the POS parameter is missing (POS=ra,dec)"))?;
        let (ra, dec) = pos_pair("POS", pos)?;
        let size = p.get_nonempty("SIZE").ok_or_else(|| {
            DalError::bad_request("the SIZE parameter is missing (SIZE=deg or SIZE=w,h)")
        })?;
        let sizes: Vec<f64> = size
            .split(',')
            .map(|s| s.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| DalError::bad_request(format!("SIZE={size}: expected degrees")))?;
        let (w, h) = match sizes.as_slice() {
            [s] => (*s, *s),
            [w, h] => (*w, *h),
            _ => {
                return Err(DalError::bad_request(format!(
                    "SIZE={size}: expected one or two numbers"
                )))
            }
        };
        if !(w.is_finite() && h.is_finite() && w >= 0.0 && h >= 0.0 && w <= 360.0 && h <= 180.0) {
            return Err(DalError::bad_request(format!("SIZE={size}: out of range")));
        }
        // The region of interest: a box of w × h degrees centred on POS. SIZE=0 is the point.
        let roi = if w == 0.0 && h == 0.0 {
            Shape::Circle(ra, dec, 0.0)
        } else {
            let v = adql_box(ra, dec, w.clamp(1e-9, 179.999), h.clamp(1e-9, 179.999))?;
            Shape::Polygon(v)
        };
        let intersect = p
            .get_nonempty("INTERSECT")
            .unwrap_or("OVERLAPS")
            .to_ascii_uppercase();
        let region = column("s_region");
        let roi_expr = roi.expr(&state)?;
        // (shape the image must meet, exact condition, whole-sky images included)
        let (shape, exact, with_whole_sky) = match intersect.as_str() {
            "OVERLAPS" => {
                let e = intersects_expr(&state, &roi)?;
                (roi, e, true)
            }
            // The image covers the whole ROI.
            "COVERS" => {
                let e = udf(&state, "contains")?
                    .call(vec![roi_expr, region])
                    .eq(lit(1i32));
                (roi, e, true)
            }
            // The image lies inside the ROI.
            "ENCLOSED" => {
                let e = udf(&state, "contains")?
                    .call(vec![region, roi_expr])
                    .eq(lit(1i32));
                (roi, e, false)
            }
            // The image contains the centre of the ROI.
            "CENTER" => {
                let centre = Shape::Circle(ra, dec, 0.0);
                let e = intersects_expr(&state, &centre)?;
                (centre, e, true)
            }
            other => {
                return Err(DalError::bad_request(format!(
                    "INTERSECT={other}: use COVERS, ENCLOSED, CENTER or OVERLAPS"
                )))
            }
        };
        spatial = Some((shape, exact, with_whole_sky));
        let f = format.to_ascii_lowercase();
        if !(f == "all" || f == "image/fits" || f == "application/fits") {
            if f == "graphic" || f.starts_with("image/png") || f.starts_with("image/jpeg") {
                conds.push(lit(false)); // no graphics served, only FITS
            } else {
                return Err(DalError::bad_request(format!(
                    "FORMAT={format}: use image/fits, ALL, GRAPHIC or METADATA"
                )));
            }
        }
    } else {
        conds.push(lit(false));
    }
    let rest = conds.into_iter().reduce(Expr::and).unwrap_or(lit(true));
    let df = match spatial {
        Some((shape, exact, with_whole_sky)) => {
            footprint_frame(&state, rest, &shape, exact, with_whole_sky).await?
        }
        None => obscore(&state)
            .await?
            .filter(rest)
            .map_err(|e| DalError::internal(e.to_string()))?,
    };
    let pair = ScalarUDF::new_from_impl(IntPair::new());
    let title =
        datafusion::functions::expr_fn::coalesce(vec![column("obs_title"), column("obs_id")]);
    let df = df
        .select(vec![
            title.alias("title"),
            column("s_ra").alias("ra"),
            column("s_dec").alias("dec"),
            lit(2i32).alias("naxes"),
            pair.call(vec![column("s_xel1"), column("s_xel2")])
                .alias("naxis"),
            (column("s_pixel_scale") / lit(3600.0)).alias("scale"),
            column("access_format").alias("format"),
            column("access_url").alias("access_url"),
            (column("access_estsize") * lit(1024i64)).alias("filesize"),
            column("t_min").alias("mjd_obs"),
            column("instrument_name").alias("instrument"),
            column("em_min").alias("bandpass_lo"),
            column("em_max").alias("bandpass_hi"),
            column("obs_publisher_did").alias("obs_publisher_did"),
            column("s_region").alias("s_region"),
        ])
        .map_err(|e| DalError::internal(e.to_string()))?;
    let overrides: HashMap<&str, Vec<(&str, String)>> = HashMap::from([
        (
            "title",
            meta(&[("ucd", "VOX:Image_Title"), ("utype", ""), ("unit", "")]),
        ),
        (
            "ra",
            meta(&[("ucd", "POS_EQ_RA_MAIN"), ("utype", ""), ("unit", "deg")]),
        ),
        (
            "dec",
            meta(&[("ucd", "POS_EQ_DEC_MAIN"), ("utype", ""), ("unit", "deg")]),
        ),
        ("naxes", meta(&[("ucd", "VOX:Image_Naxes")])),
        (
            "naxis",
            meta(&[
                ("ucd", "VOX:Image_Naxis"),
                ("xtype", ""),
                ("utype", ""),
                ("unit", ""),
            ]),
        ),
        (
            "scale",
            meta(&[
                ("ucd", "VOX:Image_Scale"),
                ("utype", ""),
                ("unit", "deg"),
                ("description", "Pixel scale (degrees per pixel)"),
            ]),
        ),
        (
            "format",
            meta(&[("ucd", "VOX:Image_Format"), ("utype", "")]),
        ),
        (
            "access_url",
            meta(&[("ucd", "VOX:Image_AccessReference"), ("utype", "")]),
        ),
        (
            "filesize",
            meta(&[
                ("ucd", "VOX:Image_FileSize"),
                ("utype", ""),
                ("unit", "byte"),
            ]),
        ),
        (
            "mjd_obs",
            meta(&[("ucd", "VOX:Image_MJDateObs"), ("utype", ""), ("unit", "d")]),
        ),
        ("instrument", meta(&[("ucd", "INST_ID"), ("utype", "")])),
        (
            "bandpass_lo",
            meta(&[
                ("ucd", "VOX:BandPass_LoLimit"),
                ("utype", ""),
                ("unit", "m"),
            ]),
        ),
        (
            "bandpass_hi",
            meta(&[
                ("ucd", "VOX:BandPass_HiLimit"),
                ("utype", ""),
                ("unit", "m"),
            ]),
        ),
    ]);
    let schema = output_schema(&df, &overrides);
    let maxrec = crate::tap::parse_maxrec(p.get_nonempty("MAXREC"), &state)?;
    let infos = vec![Info::new("standardID", "ivo://ivoa.net/std/SIA")];
    execute(
        &state,
        QueryRequest {
            plan: df.into_unoptimized_plan(),
            maxrec,
            format: Format::VoTable(Encoding::TableData),
            infos,
            schema: Some(schema),
            table_name: Some("results".into()),
            extra_resources: Some(datalink_descriptor(base)),
        },
    )
    .await
}

/// `int_pair(a, b)`: the two integers as an `int[2]` value (SIA 1.0's `VOX:Image_Naxis`);
/// NULL when either is NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntPair {
    signature: Signature,
}

impl IntPair {
    fn new() -> Self {
        IntPair {
            signature: Signature::exact(
                vec![DataType::Int64, DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for IntPair {
    fn name(&self) -> &str {
        "int_pair"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::FixedSizeList(
            Arc::new(Field::new_list_field(DataType::Int32, true)),
            2,
        ))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (a, b) = (
            arrays[0].as_primitive::<Int64Type>(),
            arrays[1].as_primitive::<Int64Type>(),
        );
        let mut out = FixedSizeListBuilder::new(Int32Builder::new(), 2)
            .with_field(Arc::new(Field::new_list_field(DataType::Int32, true)));
        for i in 0..a.len() {
            if a.is_null(i) || b.is_null(i) {
                out.values().append_null();
                out.values().append_null();
                out.append(false);
            } else {
                out.values()
                    .append_value(a.value(i).clamp(0, i32::MAX as i64) as i32);
                out.values()
                    .append_value(b.value(i).clamp(0, i32::MAX as i64) as i32);
                out.append(true);
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// The vertices of ADQL's BOX(ra, dec, w, h) (great-circle edges, as the geometry UDFs use).
fn adql_box(ra: f64, dec: f64, w: f64, h: f64) -> Result<Vec<(f64, f64)>, DalError> {
    adql::geom::box_polygon(ra, dec, w, h).map_err(DalError::bad_request)
}

// ---------------------------------------------------------------------------------------------
// VOSI

async fn capabilities2(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let base = format!("{}/sia/v2", state.base_url(&req));
    let capability = format!(
        "  <capability standardID=\"ivo://ivoa.net/std/SIA#query-2.0\">\n\
    <interface xsi:type=\"vs:ParamHTTP\" role=\"std\" version=\"2.0\">\n\
      <accessURL use=\"base\">{}/query</accessURL>\n\
      <queryType>GET</queryType>\n\
      <resultType>application/x-votable+xml</resultType>\n\
    </interface>\n\
  </capability>\n",
        esc(&base)
    );
    vosi::capabilities_response("", &capability, &base)
}

async fn capabilities1(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let base = format!("{}/sia/v1", state.base_url(&req));
    let capability = format!(
        "  <capability standardID=\"ivo://ivoa.net/std/SIA\" xsi:type=\"sia:SimpleImageAccess\">\n\
    <interface xsi:type=\"vs:ParamHTTP\" role=\"std\" version=\"1.0\">\n\
      <accessURL use=\"base\">{b}?</accessURL>\n\
      <queryType>GET</queryType>\n\
      <resultType>text/xml</resultType>\n\
    </interface>\n\
    <imageServiceType>Pointed</imageServiceType>\n\
    <maxQueryRegionSize><long>360</long><lat>180</lat></maxQueryRegionSize>\n\
    <maxImageExtent><long>360</long><lat>180</lat></maxImageExtent>\n\
    <maxImageSize>100000</maxImageSize>\n\
    <maxFileSize>2000000000</maxFileSize>\n\
    <maxRecords>{m}</maxRecords>\n\
    <testQuery><pos><long>83.633</long><lat>22.0145</lat></pos><size><long>0.1</long><lat>0.1</lat></size></testQuery>\n\
  </capability>\n",
        b = esc(&base),
        m = state.config.tap.hard_maxrec
    );
    vosi::capabilities_response(
        " xmlns:sia=\"http://www.ivoa.net/xml/SIA/v1.1\"",
        &capability,
        &base,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(interval("BAND", "1e-7 2e-7").unwrap(), (1e-7, 2e-7));
        assert_eq!(interval("BAND", "5e-7").unwrap(), (5e-7, 5e-7));
        assert_eq!(
            interval("TIME", "-Inf 55000").unwrap(),
            (f64::NEG_INFINITY, 55000.0)
        );
        assert!(interval("TIME", "2 1").is_err());
        assert!(interval("TIME", "a b").is_err());
        assert!(interval("TIME", "1 2 3").is_err());
        assert!(interval("TIME", "NaN 1").is_err());
    }

    #[test]
    fn positions() {
        assert!(matches!(
            pos_shapes("CIRCLE 10 20 0.5").unwrap().as_slice(),
            [Shape::Circle(a, b, c)] if (*a, *b, *c) == (10.0, 20.0, 0.5)
        ));
        assert!(pos_shapes("CIRCLE 10 95 0.5").is_err());
        assert!(pos_shapes("BOX 1 2 3 4").is_err());
        assert!(pos_shapes("POLYGON 1 2 3 4").is_err());
        assert_eq!(pos_shapes("RANGE 10 20 -5 5").unwrap().len(), 1);
        assert_eq!(pos_shapes("RANGE 0 360 -5 5").unwrap().len(), 3);
        assert!(matches!(
            pos_shapes("RANGE -Inf +Inf 80 90").unwrap().as_slice(),
            [Shape::Circle(_, lat, r)] if *lat == 90.0 && *r == 10.0
        ));
        assert_eq!(pos_pair("POS", "10.5,-20").unwrap(), (10.5, -20.0));
        assert_eq!(pos_pair("POS", "-10,5;ICRS").unwrap(), (350.0, 5.0));
        assert!(pos_pair("POS", "10,-95").is_err());
        assert!(pos_pair("POS", "10,5;GALACTIC").is_err());
    }
}
