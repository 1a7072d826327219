//! `/tap/capabilities`: the TAP capability with its TAPRegExt description (languages and
//! their optional features, output formats, upload methods and limits, job limits), then the
//! VOSI, DALI examples and VOSI tables capabilities; declared as data and rendered by
//! `dali::capabilities`.

use actix_web::{web, HttpRequest, HttpResponse};
use uws::Jobs;

use super::{upload, Tap};
use crate::dali::capabilities::{self, Capability, El, Interface, InterfaceType};
use crate::engine::Engine;

const TAPREGEXT: &str = "ivo://ivoa.net/std/TAPRegExt";

/// The ADQL optional features (ADQL 2.1 §4, TAPRegExt `languageFeatures`), each declared
/// because it works (conformance/test_adql_features.py runs them).
const FEATURES: &[(&str, &[(&str, &str)])] = &[
    (
        "features-adqlgeo",
        &[
            ("POINT", "A position on the sky (ICRS)"),
            ("CIRCLE", "A cone: centre and radius in degrees"),
            ("BOX", "An STC box: centre, width and height in degrees"),
            ("POLYGON", "A spherical polygon with great-circle edges"),
            (
                "REGION",
                "A region from STC-S (Position, Circle, Box, Polygon) or DALI text",
            ),
            ("CENTROID", "The centre of mass of a geometry"),
            ("CONTAINS", "1 when the first geometry lies within the second"),
            ("INTERSECTS", "1 when two geometries overlap"),
            ("DISTANCE", "Great-circle distance in degrees"),
            ("COORD1", "Longitude of a point"),
            ("COORD2", "Latitude of a point"),
            ("AREA", "Area of a geometry in square degrees"),
            (
                "COORDSYS",
                "The coordinate system of a geometry (always ICRS here)",
            ),
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
            (
                "EXCEPT",
                "Rows of the first query not in the second (ALL keeps m - n copies of a row)",
            ),
            (
                "INTERSECT",
                "Rows in both queries (ALL keeps min(m, n) copies of a row)",
            ),
        ],
    ),
    (
        "features-adql-common-table",
        &[("WITH", "Named subqueries before the main query")],
    ),
    (
        "features-adql-type",
        &[(
            "CAST",
            "Conversion to SMALLINT, INTEGER, BIGINT, REAL, DOUBLE PRECISION, CHAR(n), VARCHAR(n), TIMESTAMP",
        )],
    ),
    (
        "features-adql-unit",
        &[(
            "IN_UNIT",
            "Converts a column's value to another VOUnit of the same dimension",
        )],
    ),
    (
        "features-adql-offset",
        &[(
            "OFFSET",
            "Skips the first rows of the result (applied before TOP)",
        )],
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

/// One `languageFeatures` group.
fn features<'a>(kind: &str, forms: impl IntoIterator<Item = (&'a str, &'a str)>) -> El {
    El::new("languageFeatures")
        .attr("type", format!("{TAPREGEXT}#{kind}"))
        .children(forms.into_iter().map(|(form, description)| {
            El::new("feature")
                .child(El::text("form", form))
                .child(El::text("description", description))
        }))
}

/// The ADQL language element, with its optional features and user-defined functions.
fn language() -> El {
    El::new("language")
        .child(El::text("name", "ADQL"))
        .child(El::text("version", "2.1").attr("ivo-id", "ivo://ivoa.net/std/ADQL#v2.1"))
        .child(El::text("version", "2.0").attr("ivo-id", "ivo://ivoa.net/std/ADQL#v2.0"))
        .child(El::text(
            "description",
            "ADQL 2.1 (and 2.0), planned and executed by Apache DataFusion over HEALPix-partitioned Parquet",
        ))
        .children(FEATURES.iter().map(|(kind, f)| features(kind, f.iter().copied())))
        .child(features("features-udf", adql::ivo::DECLARATIONS.iter().copied()))
}

/// The output formats: (TAPRegExt identifier or "", MIME type, aliases).
const FORMATS: &[(&str, &str, &[&str])] = &[
    (
        "votable-td",
        "application/x-votable+xml",
        &["votable", "votable/td"],
    ),
    (
        "votable-binary2",
        "application/x-votable+xml;serialization=BINARY2",
        &["votable/b2"],
    ),
    (
        "votable-binary",
        "application/x-votable+xml;serialization=BINARY",
        &["votable/b"],
    ),
    ("", "text/csv", &["csv"]),
    ("", "text/tab-separated-values", &["tsv"]),
    ("", "application/fits", &["fits"]),
    // VOParquet (IVOA Note); application/x-parquet is accepted too.
    ("", "application/vnd.apache.parquet", &["parquet"]),
];

fn output_formats() -> impl Iterator<Item = El> {
    FORMATS.iter().map(|(id, mime, aliases)| {
        let mut e = El::new("outputFormat");
        // Only the VOTable formats have standard TAPRegExt identifiers.
        if !id.is_empty() {
            e = e.attr("ivo-id", format!("{TAPREGEXT}#output-{id}"));
        }
        e.child(El::text("mime", mime))
            .children(aliases.iter().map(|a| El::text("alias", a)))
    })
}

/// `GET /tap/capabilities`.
pub async fn capabilities(
    engine: web::Data<Engine>,
    tap: web::Data<Tap>,
    jobs: web::Data<Jobs>,
    req: HttpRequest,
) -> HttpResponse {
    let base = format!("{}/tap", tap.service.base_url(&req));
    let (main, after) = capability_list(&engine, &tap, &jobs, &base);
    capabilities::respond(&[NAMESPACE], &main, &base, &after)
}

/// The TAPRegExt XML namespace of the TAP capability's type.
pub const NAMESPACE: (&str, &str) = ("tr", "http://www.ivoa.net/xml/TAPRegExt/v1.0");

/// The capabilities of the TAP service at `base` (`…/tap`): the TAP one, then (after the VOSI
/// ones) its examples and tables.
pub fn capability_list(
    engine: &Engine,
    tap: &Tap,
    jobs: &Jobs,
    base: &str,
) -> (Vec<Capability>, Vec<Capability>) {
    let limits = &tap.config;
    let mut elements = Vec::new();
    // ObsCore 1.1 is declared when ivoa.obscore is served (taplint's OBS stage keys on it).
    if engine.table("ivoa.obscore").is_some() {
        elements.push(
            El::text("dataModel", "ObsCore-1.1")
                .attr("ivo-id", "ivo://ivoa.net/std/ObsCore#core-1.1"),
        );
    }
    elements.push(language());
    elements.extend(output_formats());
    // TAPRegExt order: ... uploadMethod, retentionPeriod, executionDuration, outputLimit,
    // uploadLimit.
    elements.extend(upload::capability_methods(limits));
    elements.extend(super::jobs::capability_limits(jobs.config()));
    elements.push(
        El::new("outputLimit")
            .child(
                El::text("default", limits.default_maxrec.min(limits.hard_maxrec))
                    .attr("unit", "row"),
            )
            .child(El::text("hard", limits.hard_maxrec).attr("unit", "row")),
    );
    elements.push(upload::capability_limit(limits));
    let tap_cap = Capability::new(
        "ivo://ivoa.net/std/TAP",
        Interface::param_http(base.to_string()).standard("1.1"),
    )
    .typed("tr:TableAccess")
    .elements(elements);
    let mut examples = Interface::param_http(format!("{base}/examples")).full();
    examples.kind = InterfaceType::WebBrowser;
    let mut tables = Interface::param_http(format!("{base}/tables")).full();
    tables.version = Some("1.1");
    (
        vec![tap_cap],
        vec![
            Capability::new("ivo://ivoa.net/std/DALI#examples", examples),
            Capability::new("ivo://ivoa.net/std/VOSI#tables", tables),
        ],
    )
}
