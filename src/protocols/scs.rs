//! Simple Cone Search 1.03 (with the SCS 1.1 additions `MAXREC` and `RESPONSEFORMAT`), one
//! service per catalog at `/scs/{schema}.{table}`. The cone becomes the same
//! `CONTAINS(POINT, CIRCLE)` predicate an ADQL query would give, built as an expression
//! (never as text), so it is planned, pruned and streamed by the shared query path.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::Column;
use datafusion::common::TableReference;
use datafusion::logical_expr::{lit, Expr};
use votable::xml::escape as esc;
use votable::{Encoding, Format, Info, TableInfo};

use crate::dali::capabilities::{self, Capability, El, Interface, Param};
use crate::dali::{self, vosi, DalError, Params, Service};
use catalogs::HatsTable;

use crate::engine::{Engine, QueryRequest};

/// Registers the cone-search routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/scs/{table}", web::get().to(cone))
        .route("/scs/{table}", web::post().to(cone))
        .route("/scs/{table}/capabilities", web::get().to(capabilities))
        .route("/scs/{table}/availability", web::get().to(availability));
}

/// VOSI availability of the cone search on a table; 404 for a table that has none.
async fn availability(engine: web::Data<Engine>, path: web::Path<String>) -> HttpResponse {
    let name = path.into_inner();
    if engine.table(&name).is_none() {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no cone search service for '{name}'"));
    }
    vosi::availability_response().await
}

/// The SCS 1.03 error document: DALI's QUERY_STATUS and SCS 1.03's `Error` INFO.
fn error_response(e: &DalError) -> HttpResponse {
    let m = esc(&e.message);
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n\
  <RESOURCE type=\"results\">\n\
    <INFO name=\"QUERY_STATUS\" value=\"ERROR\">{m}</INFO>\n\
    <INFO ID=\"Error\" name=\"Error\" value=\"{m}\"/>\n\
  </RESOURCE>\n</VOTABLE>\n"
    );
    // SCS 1.03 reports errors inside a normal (HTTP 200) VOTable response; a busy service
    // answers 503 with Retry-After instead (DALI 1.1 §4.3), so that clients back off.
    let mut r = if e.status == StatusCode::SERVICE_UNAVAILABLE {
        let mut b = HttpResponse::ServiceUnavailable();
        b.insert_header((header::RETRY_AFTER, dali::error::RETRY_AFTER_SECS));
        b
    } else {
        HttpResponse::Ok()
    };
    r.content_type("application/x-votable+xml").body(doc)
}

fn number(p: &Params, name: &str) -> Result<f64, String> {
    let v = p
        .get_nonempty(name)
        .ok_or_else(|| format!("the {name} parameter is missing"))?;
    let x: f64 = v
        .parse()
        .map_err(|_| format!("{name}={v} is not a number"))?;
    if !x.is_finite() {
        return Err(format!("{name}={v} is not a finite number"));
    }
    Ok(x)
}

async fn cone(
    engine: web::Data<Engine>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let name = path.into_inner();
    let p = Params::from_request(&req, &body);
    match run_cone(&engine, &name, &p).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn run_cone(engine: &Engine, name: &str, p: &Params) -> Result<HttpResponse, DalError> {
    let table = engine
        .table(name)
        .ok_or_else(|| DalError::bad_request(format!("no cone search service for '{name}'")))?
        .clone();
    let ra = number(p, "RA").map_err(DalError::bad_request)?;
    let dec = number(p, "DEC").map_err(DalError::bad_request)?;
    let sr = number(p, "SR").map_err(DalError::bad_request)?;
    // DALI 1.1 §3.3.3: longitudes are in [0, 360]; a value outside is an error, not wrapped.
    if !(0.0..=360.0).contains(&ra) {
        return Err(DalError::bad_request(format!(
            "RA={ra} is outside [0, 360]"
        )));
    }
    if !(-90.0..=90.0).contains(&dec) {
        return Err(DalError::bad_request(format!(
            "DEC={dec} is outside [-90, 90]"
        )));
    }
    if !(0.0..=180.0).contains(&sr) {
        return Err(DalError::bad_request(format!(
            "SR={sr} is outside [0, 180]"
        )));
    }
    let verb = match p.get_nonempty("VERB") {
        None => 2,
        Some(v) => match v.parse::<u8>() {
            Ok(n @ 1..=3) => n,
            _ => return Err(DalError::bad_request(format!("VERB={v}: use 1, 2 or 3"))),
        },
    };
    let maxrec = dali::parse_maxrec(p.get_nonempty("MAXREC"), engine.limits())?;
    let format = dali::parse_format(p.get_nonempty("RESPONSEFORMAT"))?;
    if !matches!(format, Format::VoTable(_)) {
        return Err(DalError::bad_request("cone search answers in VOTable only"));
    }

    let cat = table.catalog().clone();
    let meta = &cat.meta.table;
    let id_col = meta.id.clone();
    let udf = |n: &str| engine.udf(n);
    let column = |n: &str| Expr::Column(Column::new_unqualified(n));
    let inside = udf("contains")?
        .call(vec![
            udf("point")?.call(vec![column(&meta.ra), column(&meta.dec)]),
            udf("circle")?.call(vec![lit(ra.rem_euclid(360.0)), lit(dec), lit(sr)]),
        ])
        .eq(lit(1i32));

    // Columns by verbosity: 1 = id and position, 2 = principal columns, 3 = all.
    let principal = |c: &str| cat.meta.column(c).and_then(|m| m.principal).unwrap_or(true);
    let names: Vec<String> = cat
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| match verb {
            1 => {
                n.eq_ignore_ascii_case(&meta.ra)
                    || n.eq_ignore_ascii_case(&meta.dec)
                    || id_col
                        .as_deref()
                        .is_some_and(|id| n.eq_ignore_ascii_case(id))
            }
            2 => principal(n),
            _ => true,
        })
        .collect();
    let (schema_name, table_name) = name.split_once('.').unwrap_or(("", name));
    let df = engine
        .ctx()
        .table(TableReference::partial(
            schema_name.to_ascii_lowercase(),
            table_name.to_ascii_lowercase(),
        ))
        .await
        .map_err(|e| DalError::internal(e.to_string()))?;
    let df = df
        .filter(inside)
        .and_then(|d| d.select(names.iter().map(|n| column(n)).collect::<Vec<_>>()))
        .map_err(|e| DalError::internal(e.to_string()))?;
    let plan = df.into_unoptimized_plan();

    // SCS 1.03 wants UCD1 names on the identifier and position columns.
    let base = plan.schema().as_arrow().clone();
    let fields: Vec<Field> = base
        .fields()
        .iter()
        .map(|f| {
            let mut md: HashMap<String, String> = f.metadata().clone();
            let n = f.name();
            if id_col
                .as_deref()
                .is_some_and(|id| n.eq_ignore_ascii_case(id))
            {
                md.insert("ucd".into(), "ID_MAIN".into());
            } else if n.eq_ignore_ascii_case(&meta.ra) {
                md.insert("ucd".into(), "POS_EQ_RA_MAIN".into());
            } else if n.eq_ignore_ascii_case(&meta.dec) {
                md.insert("ucd".into(), "POS_EQ_DEC_MAIN".into());
            }
            f.as_ref().clone().with_metadata(md)
        })
        .collect();
    let mut infos = vec![
        Info::new("RA", ra.to_string()),
        Info::new("DEC", dec.to_string()),
        Info::new("SR", sr.to_string()),
        Info::new("VERB", verb.to_string()),
    ];
    infos.extend(dali::maxrec_note(p.get_nonempty("MAXREC"), engine.limits()));
    let format = match format {
        Format::VoTable(e) => Format::VoTable(e),
        _ => Format::VoTable(Encoding::TableData),
    };
    dali::execute(
        engine,
        QueryRequest {
            plan,
            maxrec,
            format,
            info: TableInfo {
                infos,
                table_name: Some(name.to_string()),
                extra_resources: None,
            },
            schema: Some(Arc::new(Schema::new(fields))),
        },
    )
    .await
}

/// The standard parameters of a cone search.
const PARAMS: [Param; 5] = [
    Param {
        name: "RA",
        description: "Right ascension of the cone centre (ICRS)",
        unit: Some("deg"),
        ucd: Some("pos.eq.ra"),
        datatype: "double",
    },
    Param {
        name: "DEC",
        description: "Declination of the cone centre (ICRS)",
        unit: Some("deg"),
        ucd: Some("pos.eq.dec"),
        datatype: "double",
    },
    Param {
        name: "SR",
        description: "Radius of the cone",
        unit: Some("deg"),
        ucd: None,
        datatype: "double",
    },
    Param {
        name: "VERB",
        description: "Verbosity: 1, 2 or 3",
        unit: None,
        ucd: None,
        datatype: "int",
    },
    Param {
        name: "MAXREC",
        description: "Maximum number of records",
        unit: None,
        ucd: None,
        datatype: "int",
    },
];

async fn capabilities(
    engine: web::Data<Engine>,
    svc: web::Data<Service>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let name = path.into_inner();
    let Some(table) = engine.table(&name) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no cone search service for '{name}'"));
    };
    let base = format!("{}/scs/{}", svc.base_url(&req), name);
    let cap = capability(engine.limits().hard_maxrec, &table, &base);
    capabilities::respond(&[NAMESPACE], &[cap], &base, &[])
}

/// The ConeSearch XML namespace of the capabilities' type.
pub const NAMESPACE: (&str, &str) = ("cs", "http://www.ivoa.net/xml/ConeSearch/v1.0");

/// The ConeSearch capability of the cone search on `table` at `base` (`…/scs/{table}`).
pub fn capability(hard_maxrec: u64, table: &HatsTable, base: &str) -> Capability {
    let cat = table.catalog();
    let (ra, dec) = cat
        .partitions
        .first()
        .map(|p| cdshealpix_center(p.pixel.order, p.pixel.pixel))
        .unwrap_or((0.0, 0.0));
    let mut interface = Interface::param_http(format!("{base}?")).standard("1.03");
    interface.query_types = vec!["GET"];
    interface.result_type = Some("application/x-votable+xml");
    interface.params = PARAMS.to_vec();
    Capability::new("ivo://ivoa.net/std/ConeSearch", interface)
        .typed("cs:ConeSearch")
        .elements([
            El::text("maxSR", 180),
            El::text("maxRecords", hard_maxrec),
            El::text("verbosity", "true"),
            El::new("testQuery")
                .child(El::text("ra", ra))
                .child(El::text("dec", dec))
                .child(El::text("sr", 0.1)),
        ])
}

fn cdshealpix_center(order: u8, pixel: u64) -> (f64, f64) {
    let (lon, lat) = cdshealpix::nested::center(order, pixel);
    (lon.to_degrees(), lat.to_degrees())
}
