//! TAP 1.1 (synchronous queries) and its VOSI resources at `/tap`: a thin translation of
//! DALI parameters into the shared query path.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use votable::Info;

use crate::params::Params;
use crate::query::{execute, DalError, Format, QueryRequest};
use crate::server::AppState;
use crate::vosi::{self, esc};

/// Registers the TAP routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tap", web::get().to(tap_root))
        .route("/tap/", web::get().to(tap_root))
        .route("/tap/sync", web::get().to(sync))
        // TAP_UPLOAD: multipart/form-data POSTs carry tables (src/upload.rs).
        .route(
            "/tap/sync",
            web::post()
                .guard(actix_web::guard::fn_guard(|ctx| {
                    crate::upload::is_multipart(ctx.head().headers())
                }))
                .to(sync_multipart),
        )
        .route("/tap/sync", web::post().to(sync))
        .route("/tap/capabilities", web::get().to(capabilities))
        .route("/tap/availability", web::get().to(availability))
        .route("/tap/examples", web::get().to(crate::examples::examples))
        .route("/tap/tables", web::get().to(tables))
        .route("/tap/tables/{name}", web::get().to(table));
    crate::uws::routes(cfg);
}

/// `/tap` itself: a pointer for people, TAP clients use the resources below it.
async fn tap_root(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let base = format!("{}/tap", state.base_url(&req));
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(format!(
        "TAP 1.1 service. Point TOPCAT, pyvo or STILTS at {base}\n\n{base}/sync\n{base}/async\n{base}/capabilities\n{base}/tables\n{base}/availability\n"
    ))
}

/// `/tap/sync`: REQUEST=doQuery, LANG=ADQL, QUERY, RESPONSEFORMAT|FORMAT, MAXREC.
async fn sync(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let params = Params::from_request(&req, &body);
    let user = match vospace_user(&state, &req).await {
        Ok(u) => u,
        Err(e) => return e.response(),
    };
    match run_sync(state.into_inner(), &params, user.as_ref()).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

/// `/tap/sync` POSTed as multipart/form-data: the parameters are parts (and the query string),
/// tables for UPLOAD are file parts.
async fn sync_multipart(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let limits = crate::upload::UploadLimits::from_config(&state.config.tap);
    let form = match crate::upload::read_multipart(&req, payload, &limits).await {
        Ok(f) => f,
        Err(e) => return e.response(),
    };
    let mut pairs = Params::from_request(&req, &[]).pairs().to_vec();
    pairs.extend(form.params);
    let params = Params::from_pairs(pairs);
    let user = match vospace_user(&state, &req).await {
        Ok(u) => u,
        Err(e) => return e.response(),
    };
    let state = state.into_inner();
    let result = match prepare_query_with_uploads(&state, &params, &form.files, user.as_ref()).await
    {
        Ok(q) => execute(&state, q).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| e.response())
}

async fn run_sync(
    state: Arc<AppState>,
    p: &Params,
    user: Option<&crate::vospace::store::User>,
) -> Result<HttpResponse, DalError> {
    let req = prepare_query_with_uploads(&state, p, &[], user).await?;
    execute(&state, req).await
}

/// The VOSpace user a TAP request authenticates as (a bearer token), for `UPLOAD` of
/// `vos://` files; None when anonymous; an error for a token that names no one.
async fn vospace_user(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<crate::vospace::store::User>, DalError> {
    match &state.vospace {
        None => Ok(None),
        Some(store) => crate::vospace::http::caller(store, req)
            .await
            .map_err(|f| DalError {
                status: actix_web::http::StatusCode::UNAUTHORIZED,
                message: f.to_string(),
            }),
    }
}

/// Checks the TAP query parameters and plans the query: what `/sync` and asynchronous jobs
/// (`src/jobs/runner.rs`) share. `files` are the request's file parts
/// (`upload::read_multipart`): the tables its UPLOAD parameters name are `TAP_UPLOAD.<name>`
/// for this query only; `user` reads `vos://` uploads.
pub async fn prepare_query_with_uploads(
    state: &Arc<AppState>,
    p: &Params,
    files: &[crate::upload::UploadFile],
    user: Option<&crate::vospace::store::User>,
) -> Result<QueryRequest, DalError> {
    if let Some(r) = p.get_nonempty("REQUEST") {
        if !r.eq_ignore_ascii_case("doQuery") {
            return Err(DalError::bad_request(format!(
                "REQUEST={r} is not supported; use REQUEST=doQuery"
            )));
        }
    }
    if let Some(lang) = p.get_nonempty("LANG") {
        let l = lang.to_ascii_uppercase();
        if !(l == "ADQL" || l.starts_with("ADQL-2.")) {
            return Err(DalError::bad_request(format!(
                "LANG={lang} is not supported; use LANG=ADQL"
            )));
        }
    }
    let query = p
        .get_nonempty("QUERY")
        .ok_or_else(|| DalError::bad_request("the QUERY parameter is missing"))?;
    let format = Format::parse(
        p.get_nonempty("RESPONSEFORMAT")
            .or_else(|| p.get_nonempty("FORMAT")),
    )?;
    let maxrec = parse_maxrec(p.get_nonempty("MAXREC"), state)?;
    let session = crate::upload::query_session(state, p, files, user).await?;
    // Parsing and planning recurse over the query tree: they run on the query runtime, whose
    // threads have large stacks, not on an HTTP worker's 2 MiB (a 290-operator expression
    // overflowed one; adql caps nesting at 300 operators).
    let text = query.to_string();
    let plan = state
        .query_runtime
        .spawn(async move { adql::plan(&session, &text).await })
        .await
        .map_err(|e| DalError::internal(format!("planning failed: {e}")))?
        .map_err(|e| DalError::bad_request(e.to_string()))?;
    let infos = vec![Info::new("QUERY", query), Info::new("LANG", "ADQL")];
    // A result with ObsCore's obs_publisher_did links each row to DataLink, as SIA's does.
    let (schema, extra_resources) = datalink_links(&plan, state);
    Ok(QueryRequest {
        plan,
        maxrec,
        format,
        infos,
        schema,
        table_name: Some("result".into()),
        extra_resources,
    })
}

/// When the result has a column that is ObsCore's `obs_publisher_did` (by its utype), the
/// output schema with that column's VOTable ID set and a DataLink service descriptor for it.
fn datalink_links(
    plan: &datafusion::logical_expr::LogicalPlan,
    state: &AppState,
) -> (
    Option<datafusion::arrow::datatypes::SchemaRef>,
    Option<String>,
) {
    let base = plan.schema().as_arrow();
    let is_did = |f: &datafusion::arrow::datatypes::Field| {
        f.metadata().get("utype").map(String::as_str) == Some("obscore:Curation.PublisherDID")
    };
    let Some(did) = base.fields().iter().find(|f| is_did(f)) else {
        return (None, None);
    };
    let id = "obs_publisher_did";
    if did.name() != id && base.fields().iter().any(|f| f.name() == id) {
        return (None, None); // another column holds the name the descriptor refers to
    }
    let fields: Vec<datafusion::arrow::datatypes::Field> = base
        .fields()
        .iter()
        .map(|f| {
            let mut f = f.as_ref().clone();
            if is_did(&f) {
                let mut md = f.metadata().clone();
                md.insert("ID".into(), id.into());
                f = f.with_metadata(md);
            }
            f
        })
        .collect();
    let descriptor = crate::sia::datalink_descriptor(&crate::products::public_base(&state.config));
    (
        Some(std::sync::Arc::new(
            datafusion::arrow::datatypes::Schema::new(fields),
        )),
        Some(descriptor),
    )
}

/// Parses MAXREC: a non-negative integer, capped at the hard limit.
pub fn parse_maxrec(v: Option<&str>, state: &AppState) -> Result<u64, DalError> {
    let limits = &state.config.tap;
    match v {
        None => Ok(limits.default_maxrec.min(limits.hard_maxrec)),
        Some(s) => {
            let n: u64 = s.parse().map_err(|_| {
                DalError::bad_request(format!("MAXREC must be a non-negative integer, not '{s}'"))
            })?;
            Ok(n.min(limits.hard_maxrec))
        }
    }
}

/// The ADQL optional features (ADQL 2.1 §4, TAPRegExt `languageFeatures`) and user-defined
/// functions, each declared because it works (conformance/test_adql_features.py runs them).
fn language_features() -> String {
    const TAPREGEXT: &str = "ivo://ivoa.net/std/TAPRegExt";
    let groups: &[(&str, &[(&str, &str)])] = &[
        (
            "features-adqlgeo",
            &[
                ("POINT", "A position on the sky (ICRS)"),
                ("CIRCLE", "A cone: centre and radius in degrees"),
                ("BOX", "An STC box: centre, width and height in degrees"),
                ("POLYGON", "A spherical polygon with great-circle edges"),
                ("REGION", "A region from STC-S (Position, Circle, Box, Polygon) or DALI text"),
                ("CENTROID", "The centre of mass of a geometry"),
                ("CONTAINS", "1 when the first geometry lies within the second"),
                ("INTERSECTS", "1 when two geometries overlap"),
                ("DISTANCE", "Great-circle distance in degrees"),
                ("COORD1", "Longitude of a point"),
                ("COORD2", "Latitude of a point"),
                ("AREA", "Area of a geometry in square degrees"),
                ("COORDSYS", "The coordinate system of a geometry (always ICRS here)"),
            ],
        ),
        (
            "features-adql-string",
            &[
                ("LOWER", "Lower-cases a string"),
                ("UPPER", "Upper-cases a string"),
                ("ILIKE", "Case-insensitive LIKE"),
            ],
        ),
        (
            "features-adql-sets",
            &[
                ("UNION", "Rows of either query (ALL keeps duplicates)"),
                ("EXCEPT", "Rows of the first query not in the second (EXCEPT ALL is not supported yet)"),
                ("INTERSECT", "Rows in both queries (INTERSECT ALL is not supported yet)"),
            ],
        ),
        (
            "features-adql-common-table",
            &[("WITH", "Named subqueries before the main query")],
        ),
        (
            "features-adql-type",
            &[("CAST", "Conversion to SMALLINT, INTEGER, BIGINT, REAL, DOUBLE PRECISION, CHAR(n), VARCHAR(n), TIMESTAMP")],
        ),
        (
            "features-adql-unit",
            &[("IN_UNIT", "Converts a column's value to another VOUnit of the same dimension")],
        ),
        (
            "features-adql-offset",
            &[("OFFSET", "Skips the first rows of the result (applied before TOP)")],
        ),
        (
            "features-adql-bitwise",
            &[
                ("BIT_AND", "a & b on integers"),
                ("BIT_OR", "a | b on integers"),
                ("BIT_XOR", "a ^ b on integers"),
                ("BIT_NOT", "~a on integers"),
            ],
        ),
    ];
    let mut out = String::new();
    for (kind, features) in groups {
        out.push_str(&format!(
            "      <languageFeatures type=\"{TAPREGEXT}#{kind}\">\n"
        ));
        for (form, description) in *features {
            out.push_str(&format!(
                "        <feature><form>{}</form><description>{}</description></feature>\n",
                esc(form),
                esc(description)
            ));
        }
        out.push_str("      </languageFeatures>\n");
    }
    out.push_str(&format!(
        "      <languageFeatures type=\"{TAPREGEXT}#features-udf\">\n"
    ));
    for (form, description) in adql::ivo::DECLARATIONS {
        out.push_str(&format!(
            "        <feature><form>{}</form><description>{}</description></feature>\n",
            esc(form),
            esc(description)
        ));
    }
    out.push_str("      </languageFeatures>\n");
    out
}

async fn capabilities(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let base = format!("{}/tap", state.base_url(&req));
    let limits = &state.config.tap;
    let mut doc = vosi::capabilities_open(" xmlns:tr=\"http://www.ivoa.net/xml/TAPRegExt/v1.0\"");
    // ObsCore 1.1 is declared when ivoa.obscore is served (taplint's OBS stage keys on it).
    let datamodel = if state.table("ivoa.obscore").is_some() {
        "    <dataModel ivo-id=\"ivo://ivoa.net/std/ObsCore#core-1.1\">ObsCore-1.1</dataModel>\n"
    } else {
        ""
    };
    doc.push_str(&format!(
        "  <capability standardID=\"ivo://ivoa.net/std/TAP\" xsi:type=\"tr:TableAccess\">\n\
    <interface xsi:type=\"vs:ParamHTTP\" role=\"std\" version=\"1.1\">\n\
      <accessURL use=\"base\">{base}</accessURL>\n\
    </interface>\n{datamodel}\
    <language>\n\
      <name>ADQL</name>\n\
      <version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.1\">2.1</version>\n\
      <version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.0\">2.0</version>\n\
      <description>ADQL 2.1 (and 2.0), planned and executed by Apache DataFusion over HEALPix-partitioned Parquet</description>\n\
{features}\
    </language>\n{formats}\
{upload_methods}\
{async_limits}\
    <outputLimit>\n\
      <default unit=\"row\">{dmax}</default>\n\
      <hard unit=\"row\">{hmax}</hard>\n\
    </outputLimit>\n\
{upload_limit}\
  </capability>\n",
        base = esc(&base),
        features = language_features(),
        formats = [
            ("votable-td", "application/x-votable+xml", &["votable", "votable/td"][..]),
            ("votable-binary2", "application/x-votable+xml;serialization=BINARY2", &["votable/b2"][..]),
            ("votable-binary", "application/x-votable+xml;serialization=BINARY", &["votable/b"][..]),
            ("", "text/csv", &["csv"][..]),
            ("", "text/tab-separated-values", &["tsv"][..]),
            ("", "application/fits", &["fits"][..]),
            // VOParquet (IVOA Note); application/x-parquet is accepted too.
            ("", "application/vnd.apache.parquet", &["parquet"][..]),
        ]
        .iter()
        .map(|(id, mime, aliases)| {
            // Only the VOTable formats have standard TAPRegExt identifiers.
            let ivo_id = if id.is_empty() {
                String::new()
            } else {
                format!(" ivo-id=\"ivo://ivoa.net/std/TAPRegExt#output-{id}\"")
            };
            format!(
                "    <outputFormat{ivo_id}>\n      <mime>{}</mime>\n{}    </outputFormat>\n",
                esc(mime),
                aliases.iter().map(|a| format!("      <alias>{a}</alias>\n")).collect::<String>()
            )
        })
        .collect::<String>(),
        // TAPRegExt order: ... uploadMethod, retentionPeriod, executionDuration, outputLimit.
        async_limits = crate::uws::capability_limits(&state.config.uws),
        dmax = limits.default_maxrec.min(limits.hard_maxrec),
        hmax = limits.hard_maxrec,
        upload_methods = crate::upload::capability_methods(limits),
        upload_limit = crate::upload::capability_limit(limits),
    ));
    doc.push_str(&vosi::vosi_capabilities(&base));
    doc.push_str(&format!(
        "  <capability standardID=\"ivo://ivoa.net/std/DALI#examples\">\n    \
<interface xsi:type=\"vr:WebBrowser\">\n      <accessURL use=\"full\">{}/examples</accessURL>\n    \
</interface>\n  </capability>\n",
        esc(&base)
    ));
    doc.push_str(&format!(
        "  <capability standardID=\"ivo://ivoa.net/std/VOSI#tables\">\n    <interface xsi:type=\"vs:ParamHTTP\" version=\"1.1\">\n      <accessURL use=\"full\">{}/tables</accessURL>\n    </interface>\n  </capability>\n",
        esc(&base)
    ));
    doc.push_str("</vosi:capabilities>\n");
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(doc)
}

async fn availability() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(vosi::availability())
}

async fn tables(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let p = Params::from_request(&req, &[]);
    let min = match p.get_nonempty("DETAIL") {
        None | Some("max") => false,
        Some("min") => true,
        Some(other) => {
            return HttpResponse::BadRequest()
                .content_type("text/plain; charset=utf-8")
                .body(format!("detail={other}: use detail=min or detail=max"))
        }
    };
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(vosi::tableset(&state.metadata, min))
}

async fn table(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let name = path.into_inner();
    match state
        .metadata
        .tables()
        .find(|(_, t)| t.name.eq_ignore_ascii_case(&name))
    {
        Some((_, t)) => HttpResponse::Ok()
            .content_type("text/xml; charset=utf-8")
            .body(vosi::table_document(t)),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no table '{name}' in this service")),
    }
}
