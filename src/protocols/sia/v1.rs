//! SIA 1.0 at `/sia/v1`, for older clients: `POS`, `SIZE`, `INTERSECT` (OVERLAPS, COVERS,
//! ENCLOSED, CENTER) and `FORMAT` on the images of `ivoa.obscore`, with the UCD1 column names
//! SIA 1.0 clients read; the same footprint predicates as SIA 2.0 (`products::query`).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use datafusion::arrow::array::{Array, AsArray, FixedSizeListBuilder, Int32Builder};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{
    lit, ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use votable::{Encoding, Format, Info};

use crate::dali::capabilities::{self, Capability, El, Interface};
use crate::dali::{self, DalError, Params, Service};
use crate::engine::Engine;
use crate::products::query::{
    column, footprint_frame, intersects_expr, obscore, pos_pair, respond, udf, ColumnMeta, Shape,
};
use crate::products::Obscore;

/// An SIA 1.0 error: a VOTable with `QUERY_STATUS` = `ERROR`, sent with HTTP 200 as SIA 1.0
/// (like SCS 1.03) expects.
fn error1(message: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(votable::error_document(message))
}

pub async fn query1(
    engine: web::Data<Engine>,
    obs: web::Data<Obscore>,
    svc: web::Data<Service>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let p = Params::from_request(&req, &body);
    match run_sia1(&engine, &obs, &p, &svc.base_url(&req)).await {
        Ok(r) => r,
        Err(e) => error1(&e.message),
    }
}

/// The SIA 1.0 spatial condition (`POS`, `SIZE`, `INTERSECT`) and `FORMAT` checks: the shape
/// the image must meet, the exact condition, whether whole-sky images count; further
/// conditions go to `conds`. `None` for `FORMAT=METADATA`.
fn region(
    engine: &Engine,
    p: &Params,
    format: &str,
    conds: &mut Vec<Expr>,
) -> Result<Option<(Shape, Expr, bool)>, DalError> {
    let metadata = format.eq_ignore_ascii_case("METADATA");
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
        let roi_expr = roi.expr(engine)?;
        // (shape the image must meet, exact condition, whole-sky images included)
        let (shape, exact, with_whole_sky) = match intersect.as_str() {
            "OVERLAPS" => {
                let e = intersects_expr(engine, &roi)?;
                (roi, e, true)
            }
            // The image covers the whole ROI.
            "COVERS" => {
                let e = udf(engine, "contains")?
                    .call(vec![roi_expr, region])
                    .eq(lit(1i32));
                (roi, e, true)
            }
            // The image lies inside the ROI.
            "ENCLOSED" => {
                let e = udf(engine, "contains")?
                    .call(vec![region, roi_expr])
                    .eq(lit(1i32));
                (roi, e, false)
            }
            // The image contains the centre of the ROI.
            "CENTER" => {
                let centre = Shape::Circle(ra, dec, 0.0);
                let e = intersects_expr(engine, &centre)?;
                (centre, e, true)
            }
            other => {
                return Err(DalError::bad_request(format!(
                    "INTERSECT={other}: use COVERS, ENCLOSED, CENTER or OVERLAPS"
                )))
            }
        };
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
        return Ok(Some((shape, exact, with_whole_sky)));
    }
    conds.push(lit(false));
    Ok(None)
}

/// The SIA 1.0 result columns from ObsCore's.
fn select1(df: DataFrame) -> Result<DataFrame, DalError> {
    let pair = ScalarUDF::new_from_impl(IntPair::new());
    let title =
        datafusion::functions::expr_fn::coalesce(vec![column("obs_title"), column("obs_id")]);
    df.select(vec![
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
    .map_err(|e| DalError::internal(e.to_string()))
}

/// The SIA 1.0 metadata of each result column (UCD1 names; an empty value removes what
/// ObsCore says).
const COLUMN_META: &ColumnMeta = &[
    (
        "title",
        &[("ucd", "VOX:Image_Title"), ("utype", ""), ("unit", "")],
    ),
    (
        "ra",
        &[("ucd", "POS_EQ_RA_MAIN"), ("utype", ""), ("unit", "deg")],
    ),
    (
        "dec",
        &[("ucd", "POS_EQ_DEC_MAIN"), ("utype", ""), ("unit", "deg")],
    ),
    (
        "naxes",
        &[
            ("ucd", "VOX:Image_Naxes"),
            ("ucd", "VOX:Image_Naxis"),
            ("xtype", ""),
            ("utype", ""),
            ("unit", ""),
        ],
    ),
    (
        "scale",
        &[
            ("ucd", "VOX:Image_Scale"),
            ("utype", ""),
            ("unit", "deg"),
            ("description", "Pixel scale (degrees per pixel)"),
        ],
    ),
    ("format", &[("ucd", "VOX:Image_Format"), ("utype", "")]),
    (
        "access_url",
        &[("ucd", "VOX:Image_AccessReference"), ("utype", "")],
    ),
    (
        "filesize",
        &[
            ("ucd", "VOX:Image_FileSize"),
            ("utype", ""),
            ("unit", "byte"),
        ],
    ),
    (
        "mjd_obs",
        &[("ucd", "VOX:Image_MJDateObs"), ("utype", ""), ("unit", "d")],
    ),
    (
        "instrument",
        &[
            ("ucd", "INST_ID"),
            ("utype", ""),
            ("ucd", "VOX:BandPass_LoLimit"),
            ("utype", ""),
            ("unit", "m"),
        ],
    ),
    (
        "bandpass_hi",
        &[
            ("ucd", "VOX:BandPass_HiLimit"),
            ("utype", ""),
            ("unit", "m"),
        ],
    ),
];

async fn run_sia1(
    engine: &Engine,
    obs: &Obscore,
    p: &Params,
    base: &str,
) -> Result<HttpResponse, DalError> {
    let format = p.get_nonempty("FORMAT").unwrap_or("ALL").trim().to_string();
    let mut conds: Vec<Expr> = vec![column("dataproduct_type")
        .eq(lit("image"))
        .or(column("dataproduct_type").eq(lit("cube")))];
    let spatial = region(engine, p, &format, &mut conds)?;
    let rest = conds.into_iter().reduce(Expr::and).unwrap_or(lit(true));
    let df = match spatial {
        Some((shape, exact, with_whole_sky)) => {
            footprint_frame(
                engine,
                obs.max_half_fov(),
                rest,
                &shape,
                exact,
                with_whole_sky,
            )
            .await?
        }
        None => obscore(engine)
            .await?
            .filter(rest)
            .map_err(|e| DalError::internal(e.to_string()))?,
    };
    let df = select1(df)?;
    let maxrec = dali::parse_maxrec(p.get_nonempty("MAXREC"), engine.limits())?;
    let mut infos = vec![Info::new("standardID", "ivo://ivoa.net/std/SIA")];
    infos.extend(dali::maxrec_note(p.get_nonempty("MAXREC"), engine.limits()));
    let format = Format::VoTable(Encoding::TableData);
    respond(engine, df, COLUMN_META, maxrec, format, infos, base).await
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

pub async fn capabilities1(
    engine: web::Data<Engine>,
    svc: web::Data<Service>,
    req: HttpRequest,
) -> HttpResponse {
    let base = format!("{}/sia/v1", svc.base_url(&req));
    let cap = capability1(engine.limits().hard_maxrec, &base);
    capabilities::respond(&[NAMESPACE], &[cap], &base, &[])
}

/// The SIA 1.0 XML namespace of the capability's type.
pub const NAMESPACE: (&str, &str) = ("sia", "http://www.ivoa.net/xml/SIA/v1.1");

/// The SIA 1.0 capability of the service at `base` (`…/sia/v1`).
pub fn capability1(hard_maxrec: u64, base: &str) -> Capability {
    let mut interface = Interface::param_http(format!("{base}?")).standard("1.0");
    interface.query_types = vec!["GET"];
    interface.result_type = Some("text/xml");
    let lon_lat = |name: &str, lon: f64, lat: f64| {
        El::new(name)
            .child(El::text("long", lon))
            .child(El::text("lat", lat))
    };
    Capability::new("ivo://ivoa.net/std/SIA", interface)
        .typed("sia:SimpleImageAccess")
        .elements([
            El::text("imageServiceType", "Pointed"),
            lon_lat("maxQueryRegionSize", 360.0, 180.0),
            lon_lat("maxImageExtent", 360.0, 180.0),
            El::text("maxImageSize", 100000),
            El::text("maxFileSize", 2000000000u64),
            El::text("maxRecords", hard_maxrec),
            El::new("testQuery")
                .child(lon_lat("pos", 83.633, 22.0145))
                .child(lon_lat("size", 0.1, 0.1)),
        ])
}
