//! `/tap/examples`: DALI 1.1 §2.3 examples, XHTML with RDFa, as TOPCAT lists them in its
//! TAP window's examples menu. Each example is worked on the demo catalogs, so they are only
//! listed when those catalogs are served; conformance/test_examples.py runs every query and
//! checks it with STILTS's own ADQL parser.

use actix_web::{web, HttpResponse};

use crate::dali::examples::{document, Example};
use crate::engine::Engine;

/// The worked examples on the demo catalogs.
pub const EXAMPLES: &[Example] = &[
    Example {
        id: "cone",
        name: "Cone search: Hipparcos stars in the Pleiades",
        description: "All Hipparcos stars within 1 degree of the Pleiades, nearest first. \
                      CONTAINS(POINT, CIRCLE) prunes the catalog to the HEALPix cells that \
                      overlap the cone.",
        query: "SELECT hip, ra, dec, hpmag, plx,\n  \
                DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 56.75, 24.12)) AS dist\n\
                FROM hipparcos.hip2\n\
                WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 1.0))\n\
                ORDER BY dist",
        tables: &["hipparcos.hip2"],
    },
    Example {
        id: "brightest",
        name: "The twenty brightest Hipparcos stars",
        description: "TOP with ORDER BY: the smallest Hipparcos magnitudes.",
        query: "SELECT TOP 20 hip, ra, dec, hpmag, b_v\nFROM hipparcos.hip2\nORDER BY hpmag",
        tables: &["hipparcos.hip2"],
    },
    Example {
        id: "crossmatch",
        name: "Crossmatch Hipparcos with Gaia DR3 (bright) within 1 arcsecond",
        description: "A positional crossmatch: the join condition CONTAINS(POINT, CIRCLE) runs \
                      as a HEALPix-bucketed hash join, not a nested loop. Restricted here to \
                      the Hyades region to keep the answer short.",
        query: "SELECT h.hip, g.source_id, h.hpmag, g.phot_g_mean_mag,\n  \
                3600 * DISTANCE(POINT('ICRS', h.ra, h.dec), POINT('ICRS', g.ra, g.dec)) AS sep_arcsec\n\
                FROM hipparcos.hip2 AS h\n\
                JOIN gaia.dr3_bright AS g\n  \
                ON 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', h.ra, h.dec, 1.0 / 3600))\n\
                WHERE 1 = CONTAINS(POINT('ICRS', h.ra, h.dec), CIRCLE('ICRS', 66.75, 15.87, 5.0))",
        tables: &["hipparcos.hip2", "gaia.dr3_bright"],
    },
    Example {
        id: "nearby",
        name: "Stars within 10 parsecs",
        description: "A parallax cut (plx is in milliarcseconds): distance in parsecs is \
                      1000 / plx.",
        query: "SELECT hip, ra, dec, plx, e_plx, 1000.0 / plx AS dist_pc\n\
                FROM hipparcos.hip2\nWHERE plx > 100\nORDER BY plx DESC",
        tables: &["hipparcos.hip2"],
    },
    Example {
        id: "sky-density",
        name: "Sky density of Gaia bright stars per HEALPix cell",
        description: "Star counts in the 768 cells of HEALPix order 3 (ivo_healpix_index), \
                      grouped in an outer query.",
        query: "SELECT hpx3, COUNT(*) AS n\n\
                FROM (SELECT ivo_healpix_index(3, ra, dec) AS hpx3 FROM gaia.dr3_bright) AS cells\n\
                GROUP BY hpx3\nORDER BY n DESC",
        tables: &["gaia.dr3_bright"],
    },
    Example {
        id: "magnitude-counts",
        name: "Gaia bright stars per magnitude",
        description: "Counts of Gaia DR3 (bright) stars in bins of one G magnitude: a \
                      subquery in FROM, then GROUP BY.",
        query: "SELECT g_bin, COUNT(*) AS n\n\
                FROM (SELECT FLOOR(phot_g_mean_mag) AS g_bin FROM gaia.dr3_bright) AS binned\n\
                GROUP BY g_bin\nORDER BY g_bin",
        tables: &["gaia.dr3_bright"],
    },
    Example {
        id: "colour-magnitude",
        name: "Colour–magnitude diagram, binned",
        description: "Hipparcos B−V against absolute magnitude, for stars with a precise \
                      parallax, averaged in bins: a subquery in FROM, GROUP BY and HAVING.",
        query: "SELECT b_v_bin, AVG(abs_mag) AS abs_mag, COUNT(*) AS n\n\
                FROM (SELECT FLOOR(b_v * 10) / 10 AS b_v_bin,\n  \
                hpmag + 5 * LOG10(plx / 100) AS abs_mag\n  \
                FROM hipparcos.hip2\n  WHERE plx > 0 AND e_plx / plx < 0.1) AS stars\n\
                GROUP BY b_v_bin\nHAVING COUNT(*) >= 10\nORDER BY b_v_bin",
        tables: &["hipparcos.hip2"],
    },
    Example {
        id: "high-proper-motion",
        name: "Hipparcos stars moving faster than 2 arcseconds per year",
        description: "Total proper motion from its components (mas/yr), largest first.",
        query: "SELECT hip, ra, dec, pmra, pmdec,\n  \
                SQRT(POWER(pmra, 2) + POWER(pmdec, 2)) / 1000 AS pm_arcsec_per_yr\n\
                FROM hipparcos.hip2\n\
                WHERE SQRT(POWER(pmra, 2) + POWER(pmdec, 2)) > 2000\n\
                ORDER BY pm_arcsec_per_yr DESC",
        tables: &["hipparcos.hip2"],
    },
    Example {
        id: "polygon",
        name: "Gaia stars in a polygon around Orion's belt",
        description: "A spherical polygon (great-circle edges), vertices counter-clockwise.",
        query: "SELECT source_id, ra, dec, phot_g_mean_mag\nFROM gaia.dr3_bright\n\
                WHERE 1 = CONTAINS(POINT('ICRS', ra, dec),\n  \
                POLYGON('ICRS', 82.0, -3.0, 86.5, -3.0, 86.5, 1.0, 82.0, 1.0))",
        tables: &["gaia.dr3_bright"],
    },
    Example {
        id: "no-counterpart",
        name: "Pleiades stars without a Gaia DR3 (bright) counterpart",
        description: "A LEFT OUTER JOIN crossmatch keeps every Hipparcos star; those whose \
                      Gaia columns are NULL have no counterpart within 1 arcsecond.",
        query: "SELECT h.hip, h.ra, h.dec, h.hpmag\n\
                FROM hipparcos.hip2 AS h\n\
                LEFT OUTER JOIN gaia.dr3_bright AS g\n  \
                ON 1 = CONTAINS(POINT('ICRS', h.ra, h.dec), CIRCLE('ICRS', g.ra, g.dec, 1.0 / 3600))\n\
                WHERE 1 = CONTAINS(POINT('ICRS', h.ra, h.dec), CIRCLE('ICRS', 56.75, 24.12, 2.0))\n  \
                AND g.source_id IS NULL",
        tables: &["hipparcos.hip2", "gaia.dr3_bright"],
    },
    Example {
        id: "tables",
        name: "The tables of this service",
        description: "TAP_SCHEMA describes every table: name, type, row count and description.",
        query: "SELECT schema_name, table_name, table_type, description\n\
                FROM TAP_SCHEMA.tables\nORDER BY schema_name, table_name",
        tables: &["TAP_SCHEMA.tables"],
    },
    Example {
        id: "columns",
        name: "The columns of a table",
        description: "TAP_SCHEMA.columns: names, types, units and UCDs of hipparcos.hip2.",
        query: "SELECT column_name, datatype, unit, ucd, description\n\
                FROM TAP_SCHEMA.columns\nWHERE table_name = 'hipparcos.hip2'\n\
                ORDER BY column_index",
        tables: &["TAP_SCHEMA.columns"],
    },
];

/// The examples whose tables are all served (so a server without the demo shows only the
/// TAP_SCHEMA ones).
pub fn available(engine: &Engine) -> Vec<&'static Example> {
    EXAMPLES
        .iter()
        .filter(|e| {
            e.tables.iter().all(|t| {
                t.to_ascii_lowercase().starts_with("tap_schema.") || engine.table(t).is_some()
            })
        })
        .collect()
}

/// GET /tap/examples
pub async fn examples(engine: web::Data<Engine>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/xhtml+xml; charset=utf-8")
        .body(document("vostok TAP examples", &available(&engine)))
}
