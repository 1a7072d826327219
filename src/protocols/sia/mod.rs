//! Simple Image Access: SIA 2.0 at `/sia/v2/query`, and SIA 1.0 at `/sia/v1` for older clients
//! ([`v1`]).
//!
//! Both are thin translations of HTTP parameters into a filter on `ivoa.obscore`, built as
//! DataFusion expressions (never as text), then planned, run and streamed by the shared query
//! path like any ADQL query. An image is found when its **footprint** (`s_region`, the WCS
//! border) satisfies the query, not its centre: `INTERSECTS(s_region, <query shape>) = 1`.
//!
//! SIA 2.0 (with DALI 1.1): every parameter may repeat; values of one parameter are OR-ed,
//! different parameters AND-ed. Intervals are two numbers (`-Inf`/`+Inf` open an end), a single
//! number being the degenerate interval. Unknown parameters are ignored.

pub mod v1;

use actix_web::{web, HttpRequest, HttpResponse};
use datafusion::logical_expr::{lit, Expr};
use votable::Info;

use crate::dali::capabilities::{self, Capability, Interface};
use crate::dali::{self, vosi, DalError, Params, Service};
use crate::engine::Engine;
use crate::products::query::{
    any_of, column, dali_number, footprint_frame, footprint_intersects, intersects_expr, interval,
    obscore, overlaps, respond, values, within, Shape,
};
use crate::products::Obscore;

/// Registers the SIA routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sia/v2/query", web::get().to(query2))
        .route("/sia/v2/query", web::post().to(query2))
        .route("/sia/v2/capabilities", web::get().to(capabilities2))
        .route(
            "/sia/v2/availability",
            web::get().to(vosi::availability_response),
        )
        .route("/sia/v1", web::get().to(v1::query1))
        .route("/sia/v1", web::post().to(v1::query1))
        .route("/sia/v1/capabilities", web::get().to(v1::capabilities1))
        .route(
            "/sia/v1/availability",
            web::get().to(vosi::availability_response),
        );
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
            .map(|v| {
                // Every FITS product is `application/fits`; a client asking for the older
                // `image/fits` means the same files.
                let v = if name == "FORMAT"
                    && ["image/fits", "application/fits", "fits"]
                        .iter()
                        .any(|f| v.trim().eq_ignore_ascii_case(f))
                {
                    crate::products::FITS
                } else {
                    v
                };
                column(c).eq(lit(v.to_string()))
            })
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

async fn query2(
    engine: web::Data<Engine>,
    obs: web::Data<Obscore>,
    svc: web::Data<Service>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let p = Params::from_request(&req, &body);
    match run_sia2(&engine, &obs, &p, &svc.base_url(&req)).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

async fn run_sia2(
    engine: &Engine,
    obs: &Obscore,
    p: &Params,
    base: &str,
) -> Result<HttpResponse, DalError> {
    let maxrec = dali::parse_maxrec(p.get_nonempty("MAXREC"), engine.limits())?;
    let format = dali::parse_format(p.get_nonempty("RESPONSEFORMAT"))?;
    let (rest, shapes) = sia2_filter(p)?;
    let df = match shapes.as_slice() {
        [] => obscore(engine)
            .await?
            .filter(rest)
            .map_err(|e| DalError::internal(e.to_string()))?,
        [one] => {
            footprint_frame(
                engine,
                obs.max_half_fov(),
                rest,
                one,
                intersects_expr(engine, one)?,
                true,
            )
            .await?
        }
        several => {
            let mut alts = Vec::new();
            for s in several {
                alts.push(footprint_intersects(engine, s)?);
            }
            let any = any_of(alts).unwrap_or(lit(false));
            obscore(engine)
                .await?
                .filter(rest.and(any))
                .map_err(|e| DalError::internal(e.to_string()))?
        }
    };
    let mut infos = vec![Info::new("standardID", "ivo://ivoa.net/std/SIA#query-2.0")];
    for (k, v) in p.pairs() {
        if !v.trim().is_empty() && !k.eq_ignore_ascii_case("MAXREC") {
            infos.push(Info::new(k.to_ascii_uppercase(), v.clone()));
        }
    }
    infos.extend(dali::maxrec_note(p.get_nonempty("MAXREC"), engine.limits()));
    respond(engine, df, &[], maxrec, format, infos, base).await
}
// ---------------------------------------------------------------------------------------------
// VOSI

async fn capabilities2(svc: web::Data<Service>, req: HttpRequest) -> HttpResponse {
    let base = format!("{}/sia/v2", svc.base_url(&req));
    capabilities::respond(&[], &[capability2(&base)], &base, &[])
}

/// The SIA 2.0 query capability of the service at `base` (`…/sia/v2`).
pub fn capability2(base: &str) -> Capability {
    let mut interface = Interface::param_http(format!("{base}/query")).standard("2.0");
    interface.query_types = vec!["GET"];
    interface.result_type = Some("application/x-votable+xml");
    Capability::new("ivo://ivoa.net/std/SIA#query-2.0", interface)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::products::query::pos_pair;

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
