//! Simple Spectral Access 1.1 at `/ssa`: `REQUEST=queryData` with `POS`, `SIZE`, `BAND`,
//! `TIME`, `FORMAT`, `MAXREC`, answered from the spectra in `ivoa.obscore` with the SSA utypes
//! (`ssa:Access.Reference`, `ssa:Char.SpatialAxis.Coverage.Location.Value`, …) that pyvo and
//! TOPCAT read. The position test is the spectrum's position (`s_ra`, `s_dec`) inside the
//! circle of diameter `SIZE`, as `CONTAINS(POINT, CIRCLE)`, so it is HEALPix-pruned.
//!
//! Units, as SSA 1.1 fixes them: positions and `SIZE` in degrees (ICRS), `BAND` in metres,
//! `TIME` in ISO 8601 (UTC), ranges written `start/stop` with either end optional.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{lit, Expr};
use votable::{Encoding, Format, Info};

use crate::dali::capabilities::{self, Capability, El, Interface};
use crate::dali::{self, vosi, DalError, Params, Service};
use crate::engine::Engine;
use crate::products::query::{column, obscore, overlaps, pos_pair, respond, udf, ColumnMeta};

/// Registers the SSA routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ssa", web::get().to(query))
        .route("/ssa", web::post().to(query))
        .route("/ssa/capabilities", web::get().to(capabilities))
        .route(
            "/ssa/availability",
            web::get().to(vosi::availability_response),
        );
}

/// Search diameter when `SIZE` is not given (degrees).
const DEFAULT_SIZE: f64 = 0.1;

/// SSA errors: a VOTable with `QUERY_STATUS` = `ERROR`, HTTP 200 as SSA 1.1 §8 has it.
fn error(message: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/x-votable+xml")
        .body(votable::error_document(message))
}

async fn query(
    engine: web::Data<Engine>,
    svc: web::Data<Service>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let p = Params::from_request(&req, &body);
    match run(&engine, &svc.base_url(&req), &p).await {
        Ok(r) => r,
        Err(e) => error(&e.message),
    }
}

/// An SSA range `a/b` (`a`, `a/`, `/b` allowed) of values parsed by `f`.
fn range<T: Copy>(
    name: &str,
    v: &str,
    f: impl Fn(&str) -> Option<T>,
) -> Result<(Option<T>, Option<T>), DalError> {
    let bad = || DalError::bad_request(format!("{name}={v}: expected 'start/stop' or a value"));
    // Several ranges (comma-separated) are not supported; one is.
    if v.contains(',') {
        return Err(DalError::bad_request(format!(
            "{name}={v}: only one range is supported"
        )));
    }
    let v = v.split(';').next().unwrap_or(v).trim();
    match v.split_once('/') {
        None => {
            let x = f(v).ok_or_else(bad)?;
            Ok((Some(x), Some(x)))
        }
        Some((a, b)) => {
            let a = if a.trim().is_empty() {
                None
            } else {
                Some(f(a.trim()).ok_or_else(bad)?)
            };
            let b = if b.trim().is_empty() {
                None
            } else {
                Some(f(b.trim()).ok_or_else(bad)?)
            };
            Ok((a, b))
        }
    }
}

/// ISO 8601 date or date-time (UTC) → MJD.
fn iso_to_mjd(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches('Z');
    let epoch = NaiveDate::from_ymd_opt(1858, 11, 17)?.and_hms_opt(0, 0, 0)?;
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    let d = t - epoch;
    Some(d.num_milliseconds() as f64 / 86_400_000.0)
}

/// Checks `REQUEST=queryData`.
fn check_request(p: &Params) -> Result<(), DalError> {
    match p.get_nonempty("REQUEST") {
        Some(r) if r.eq_ignore_ascii_case("queryData") => {}
        Some(r) => {
            return Err(DalError::bad_request(format!(
                "REQUEST={r} is not supported; use REQUEST=queryData"
            )))
        }
        None => return Err(DalError::bad_request("REQUEST=queryData is missing")),
    }
    Ok(())
}

/// The SSA filter on `ivoa.obscore`: spectra only, then `FORMAT`, `POS` and `SIZE`, `BAND`,
/// `TIME`.
fn filter(engine: &Engine, p: &Params) -> Result<Expr, DalError> {
    let format = p
        .get_nonempty("FORMAT")
        .unwrap_or("all")
        .trim()
        .to_ascii_lowercase();
    let metadata = format == "metadata";
    let mut conds: Vec<Expr> = vec![column("dataproduct_type").eq(lit("spectrum"))];
    if metadata {
        conds.push(lit(false));
    } else {
        match format.as_str() {
            "all" | "compliant" | "native" | "fits" | "application/fits" => {}
            // Spectra are served as the archived FITS files only.
            "votable" | "application/x-votable+xml" | "graphic" | "xml" => conds.push(lit(false)),
            other => {
                return Err(DalError::bad_request(format!(
                    "FORMAT={other}: use all, compliant, native, fits, votable or metadata"
                )))
            }
        }
        if let Some(pos) = p.get_nonempty("POS") {
            let (ra, dec) = pos_pair("POS", pos)?;
            let size = match p.get_nonempty("SIZE") {
                None => DEFAULT_SIZE,
                Some(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && (0.0..=360.0).contains(x))
                    .ok_or_else(|| {
                        DalError::bad_request(format!("SIZE={s}: expected a diameter in degrees"))
                    })?,
            };
            conds.push(
                udf(engine, "contains")?
                    .call(vec![
                        udf(engine, "point")?.call(vec![column("s_ra"), column("s_dec")]),
                        udf(engine, "circle")?.call(vec![lit(ra), lit(dec), lit(size / 2.0)]),
                    ])
                    .eq(lit(1i32)),
            );
        }
        if let Some(b) = p.get_nonempty("BAND") {
            let (lo, hi) = range("BAND", b, |s| {
                s.parse::<f64>().ok().filter(|x| x.is_finite())
            })?;
            conds.push(overlaps(
                "em_min",
                "em_max",
                lo.unwrap_or(f64::NEG_INFINITY),
                hi.unwrap_or(f64::INFINITY),
            ));
        }
        if let Some(t) = p.get_nonempty("TIME") {
            let (lo, hi) = range("TIME", t, iso_to_mjd)?;
            // A single date means that whole day.
            let (lo, hi) = match (lo, hi) {
                (Some(a), Some(b)) if a == b && !t.contains('T') && !t.contains('/') => {
                    (Some(a), Some(a + 1.0))
                }
                x => x,
            };
            conds.push(overlaps(
                "t_min",
                "t_max",
                lo.unwrap_or(f64::NEG_INFINITY),
                hi.unwrap_or(f64::INFINITY),
            ));
        }
    }
    Ok(conds.into_iter().reduce(Expr::and).unwrap_or(lit(true)))
}

/// MJD 40587 is 1970-01-01, the Unix epoch.
const MJD_UNIX_EPOCH: f64 = 40587.0;

/// `ssa:DataID.Date`: the start of the observation (`t_min`, from `MJD-OBS` or `DATE-OBS`) as
/// `YYYY-MM-DD hh:mm:ss.sss` (UTC), to the millisecond.
///
/// The space between date and time is deliberate: pyvo's `SSARecord.dateobs` reads this column
/// with astropy's `Time(value, format="iso")`, which refuses the `T` form of DALI timestamps,
/// so the column carries no `xtype="timestamp"` (DALI's form has the `T`).
fn date_obs() -> Expr {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    use datafusion::functions::expr_fn::{replace, round};
    use datafusion::logical_expr::cast;
    let millis = round(vec![
        (column("t_min") - lit(MJD_UNIX_EPOCH)) * lit(86_400_000.0),
    ]);
    let ts = cast(
        cast(millis, DataType::Int64),
        DataType::Timestamp(TimeUnit::Millisecond, None),
    );
    let text = cast(ts, DataType::Utf8);
    replace(text, lit("T"), lit(" "))
}

/// The SSA result columns from ObsCore's.
fn select(engine: &Engine, df: DataFrame) -> Result<DataFrame, DalError> {
    let point = udf(engine, "point")?;
    let title = datafusion::functions::expr_fn::coalesce(vec![
        column("obs_title"),
        column("target_name"),
        column("obs_id"),
    ]);
    let mid = |a: &str, b: &str| (column(a) + column(b)) / lit(2.0);
    df.select(vec![
        title.alias("title"),
        column("obs_publisher_did").alias("obs_publisher_did"),
        column("access_url").alias("access_url"),
        column("access_format").alias("access_format"),
        (column("access_estsize") * lit(1024i64)).alias("access_size"),
        column("target_name").alias("target_name"),
        point
            .call(vec![column("s_ra"), column("s_dec")])
            .alias("pos"),
        column("s_ra").alias("s_ra"),
        column("s_dec").alias("s_dec"),
        column("s_fov").alias("aperture"),
        mid("em_min", "em_max").alias("em_mid"),
        (column("em_max") - column("em_min")).alias("em_width"),
        column("em_min").alias("em_min"),
        column("em_max").alias("em_max"),
        column("em_res_power").alias("em_res_power"),
        mid("t_min", "t_max").alias("t_mid"),
        column("t_exptime").alias("t_exptime"),
        column("t_min").alias("t_min"),
        column("t_max").alias("t_max"),
        date_obs().alias("date_obs"),
        column("em_xel").alias("length"),
        column("facility_name").alias("facility_name"),
        column("instrument_name").alias("instrument_name"),
        column("obs_collection").alias("collection"),
        column("calib_level").alias("calib_level"),
        lit("Spectrum").alias("dataset_type"),
        lit("Spectrum-1.0").alias("data_model"),
    ])
    .map_err(|e| DalError::internal(e.to_string()))
}

/// The SSA metadata of each result column (utype, UCD, unit, xtype; an empty value removes
/// what ObsCore says).
const COLUMN_META: &ColumnMeta = &[
    (
        "title",
        &[
            ("utype", "ssa:DataID.Title"),
            ("ucd", "meta.title;meta.dataset"),
            ("unit", ""),
        ],
    ),
    (
        "obs_publisher_did",
        &[
            ("utype", "ssa:Curation.PublisherDID"),
            ("ucd", "meta.ref.ivoid"),
        ],
    ),
    (
        "access_url",
        &[("utype", "ssa:Access.Reference"), ("ucd", "meta.ref.url")],
    ),
    (
        "access_format",
        &[("utype", "ssa:Access.Format"), ("ucd", "meta.code.mime")],
    ),
    (
        "access_size",
        &[
            ("utype", "ssa:Access.Size"),
            ("ucd", "phys.size;meta.file"),
            ("unit", "byte"),
        ],
    ),
    (
        "target_name",
        &[("utype", "ssa:Target.Name"), ("ucd", "meta.id;src")],
    ),
    (
        "pos",
        &[
            ("utype", "ssa:Char.SpatialAxis.Coverage.Location.Value"),
            ("ucd", "pos.eq"),
            ("unit", "deg"),
            ("xtype", "point"),
        ],
    ),
    (
        "s_ra",
        &[
            ("utype", ""),
            ("ucd", "pos.eq.ra;meta.main"),
            ("unit", "deg"),
        ],
    ),
    (
        "s_dec",
        &[
            ("utype", ""),
            ("ucd", "pos.eq.dec;meta.main"),
            ("unit", "deg"),
        ],
    ),
    (
        "aperture",
        &[
            ("utype", "ssa:Char.SpatialAxis.Coverage.Bounds.Extent"),
            ("ucd", "phys.angSize;instr.fov"),
            ("unit", "deg"),
        ],
    ),
    (
        "em_mid",
        &[
            ("utype", "ssa:Char.SpectralAxis.Coverage.Location.Value"),
            ("ucd", "em.wl;instr.bandpass"),
            ("unit", "m"),
        ],
    ),
    (
        "em_width",
        &[
            ("utype", "ssa:Char.SpectralAxis.Coverage.Bounds.Extent"),
            ("ucd", "em.wl;instr.bandwidth"),
            ("unit", "m"),
        ],
    ),
    (
        "em_min",
        &[
            ("utype", "ssa:Char.SpectralAxis.Coverage.Bounds.Start"),
            ("ucd", "em.wl;stat.min"),
            ("unit", "m"),
        ],
    ),
    (
        "em_max",
        &[
            ("utype", "ssa:Char.SpectralAxis.Coverage.Bounds.Stop"),
            ("ucd", "em.wl;stat.max"),
            ("unit", "m"),
        ],
    ),
    (
        "em_res_power",
        &[
            ("utype", "ssa:Char.SpectralAxis.ResPower"),
            ("ucd", "spect.resolution"),
        ],
    ),
    (
        "t_mid",
        &[
            ("utype", "ssa:Char.TimeAxis.Coverage.Location.Value"),
            ("ucd", "time.epoch"),
            ("unit", "d"),
        ],
    ),
    (
        "t_exptime",
        &[
            ("utype", "ssa:Char.TimeAxis.Coverage.Support.Extent"),
            ("ucd", "time.duration;obs.exposure"),
            ("unit", "s"),
        ],
    ),
    (
        "t_min",
        &[
            ("utype", "ssa:Char.TimeAxis.Coverage.Bounds.Start"),
            ("ucd", "time.start;obs.exposure"),
            ("unit", "d"),
        ],
    ),
    (
        "t_max",
        &[
            ("utype", "ssa:Char.TimeAxis.Coverage.Bounds.Stop"),
            ("ucd", "time.end;obs.exposure"),
            ("unit", "d"),
        ],
    ),
    (
        "date_obs",
        &[
            ("utype", "ssa:DataID.Date"),
            ("ucd", "time;meta.dataset"),
            ("unit", ""),
            ("xtype", ""),
            (
                "description",
                "Start of the observation (UTC, ISO 8601 with a space before the time)",
            ),
        ],
    ),
    (
        "length",
        &[("utype", "ssa:Dataset.Length"), ("ucd", "meta.number")],
    ),
    (
        "facility_name",
        &[
            ("utype", "ssa:DataID.Collection"),
            ("ucd", "meta.id;instr.tel"),
        ],
    ),
    (
        "instrument_name",
        &[("utype", "ssa:DataID.Instrument"), ("ucd", "meta.id;instr")],
    ),
    (
        "collection",
        &[("utype", "ssa:DataID.Collection"), ("ucd", "meta.id")],
    ),
    (
        "calib_level",
        &[
            ("utype", "ssa:Dataset.Calibration"),
            ("ucd", "meta.code.qual"),
        ],
    ),
    (
        "dataset_type",
        &[("utype", "ssa:Dataset.Type"), ("ucd", "meta.code.class")],
    ),
    (
        "data_model",
        &[("utype", "ssa:Dataset.DataModel"), ("ucd", "meta.code")],
    ),
];

async fn run(engine: &Engine, base: &str, p: &Params) -> Result<HttpResponse, DalError> {
    check_request(p)?;
    let df = obscore(engine)
        .await?
        .filter(filter(engine, p)?)
        .map_err(|e| DalError::internal(e.to_string()))?;
    let df = select(engine, df)?;
    let maxrec = dali::parse_maxrec(p.get_nonempty("MAXREC"), engine.limits())?;
    let mut infos = vec![Info::new("SERVICE_PROTOCOL", "1.1")];
    infos[0].content = Some("SSAP".into());
    infos.extend(dali::maxrec_note(p.get_nonempty("MAXREC"), engine.limits()));
    let format = Format::VoTable(Encoding::TableData);
    respond(engine, df, COLUMN_META, maxrec, format, infos, base).await
}

async fn capabilities(
    engine: web::Data<Engine>,
    svc: web::Data<Service>,
    req: HttpRequest,
) -> HttpResponse {
    let base = format!("{}/ssa", svc.base_url(&req));
    let cap = capability(engine.limits(), &base);
    capabilities::respond(&[NAMESPACE], &[cap], &base, &[])
}

/// The SSA XML namespace of the capability's type.
pub const NAMESPACE: (&str, &str) = ("ssa", "http://www.ivoa.net/xml/SSA/v1.1");

/// The SSA capability of the service at `base` (`…/ssa`).
pub fn capability(limits: &crate::engine::Limits, base: &str) -> Capability {
    let mut interface = Interface::param_http(format!("{base}?")).standard("1.1");
    interface.query_types = vec!["GET"];
    interface.result_type = Some("application/x-votable+xml");
    Capability::new("ivo://ivoa.net/std/SSA", interface)
        .typed("ssa:SimpleSpectralAccess")
        .elements([
            El::text("complianceLevel", "query"),
            El::text("dataSource", "pointed"),
            El::text("creationType", "archival"),
            El::text("supportedFrame", "ICRS"),
            El::text("maxSearchRadius", 180),
            El::text("maxRecords", limits.hard_maxrec),
            El::text("defaultMaxRecords", limits.default_maxrec),
            El::text("maxAperture", 180),
            El::new("testQuery")
                .child(
                    El::new("pos")
                        .child(El::text("long", 230.876))
                        .child(El::text("lat", -38.358)),
                )
                .child(El::text("size", 0.1)),
        ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(iso_to_mjd("1858-11-17"), Some(0.0));
        let t = iso_to_mjd("2011-08-11T23:23:52.266").unwrap();
        assert!((t - 55784.974910486).abs() < 1e-6, "{t}");
        assert_eq!(iso_to_mjd("yesterday"), None);
        let (a, b) = range("TIME", "2011-08-11/2011-08-12", iso_to_mjd).unwrap();
        assert_eq!((a, b), (Some(55784.0), Some(55785.0)));
        let (a, b) = range("BAND", "/5e-7", |s| s.parse::<f64>().ok()).unwrap();
        assert_eq!((a, b), (None, Some(5e-7)));
        assert!(range("BAND", "1/2,3/4", |s| s.parse::<f64>().ok()).is_err());
    }
}
