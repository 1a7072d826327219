//! ADQL front-end micro-benchmarks: parsing, planning, and HEALPix coverage of regions.
//!
//! `cargo bench -p adql --bench adql` (release; add `-- --quick` for a fast pass).

use std::error::Error;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use adql::geom::Region;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use tokio::runtime::Runtime;

/// Typical queries, by name.
const QUERIES: &[(&str, &str)] = &[
    (
        "cone",
        "SELECT * FROM gaia.dr3_bright \
         WHERE 1=CONTAINS(POINT('ICRS',ra,dec),CIRCLE('ICRS',10,20,0.5))",
    ),
    (
        "top_order_by",
        "SELECT TOP 100 source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright \
         WHERE phot_g_mean_mag < 10 AND dec > -30 ORDER BY phot_g_mean_mag",
    ),
    (
        "group_by",
        "SELECT FLOOR(dec) AS band, COUNT(*) AS n, AVG(phot_g_mean_mag) AS mean_g, \
         MAX(pmra) AS max_pmra FROM gaia.dr3_bright \
         WHERE phot_g_mean_mag BETWEEN 6 AND 12 GROUP BY FLOOR(dec) ORDER BY band",
    ),
    (
        "self_join_distance",
        "SELECT a.source_id, b.source_id AS neighbour, \
         DISTANCE(POINT('ICRS',a.ra,a.dec),POINT('ICRS',b.ra,b.dec)) AS dist \
         FROM gaia.dr3_bright AS a JOIN gaia.dr3_bright AS b \
         ON DISTANCE(POINT('ICRS',a.ra,a.dec),POINT('ICRS',b.ra,b.dec)) < 0.01 \
         WHERE a.source_id <> b.source_id AND a.phot_g_mean_mag < 8",
    ),
];

/// A session with an empty in-memory `gaia.dr3_bright` and the ADQL functions.
fn session() -> Result<SessionContext, Box<dyn Error>> {
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(2)
            .with_information_schema(false)
            .with_default_catalog_and_schema("datafusion", "public"),
    );
    adql::register(&ctx);
    let schema = Arc::new(Schema::new(vec![
        Field::new("source_id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, false),
        Field::new("dec", DataType::Float64, false),
        Field::new("phot_g_mean_mag", DataType::Float32, true),
        Field::new("pmra", DataType::Float32, true),
        Field::new("pmdec", DataType::Float32, true),
    ]));
    let table = MemTable::try_new(schema.clone(), vec![vec![RecordBatch::new_empty(schema)]])?;
    ctx.catalog("datafusion")
        .ok_or("no default catalog")?
        .register_schema("gaia", Arc::new(MemorySchemaProvider::new()))?;
    ctx.register_table(
        TableReference::partial("gaia", "dr3_bright"),
        Arc::new(table),
    )?;
    Ok(ctx)
}

/// A runtime and a session state in which every query of [`QUERIES`] parses, plans and
/// optimizes: a benchmark of an error path would measure the wrong thing.
fn planning_setup() -> Result<(Runtime, SessionState), Box<dyn Error>> {
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let state: SessionState = session()?.state();
    for (name, q) in QUERIES {
        adql::parse(q).map_err(|e| format!("{name}: {e}"))?;
        let p = plan(&rt, &state, q).map_err(|e| format!("{name}: {e}"))?;
        state.optimize(&p).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok((rt, state))
}

fn parse_and_plan(c: &mut Criterion) {
    let (rt, state) = planning_setup().unwrap_or_else(|e| panic!("setup: {e}"));

    let mut g = c.benchmark_group("adql");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    // The queries were checked by the setup: the results below are all Ok.
    for (name, q) in QUERIES {
        g.bench_with_input(BenchmarkId::new("parse", name), q, |b, q| {
            b.iter(|| adql::parse(black_box(q)))
        });
        g.bench_with_input(BenchmarkId::new("parse_plan", name), q, |b, q| {
            b.iter(|| plan(&rt, &state, q))
        });
        g.bench_with_input(BenchmarkId::new("parse_plan_optimize", name), q, |b, q| {
            b.iter(|| plan(&rt, &state, q).map(|p| state.optimize(&p)))
        });
    }
    g.finish();
}

fn plan(rt: &Runtime, state: &SessionState, q: &str) -> Result<LogicalPlan, adql::AdqlError> {
    rt.block_on(adql::plan(state, black_box(q)))
}

/// A polygon of `n` vertices on a circle of `radius` degrees around (`lon`, `lat`).
fn regular_polygon(lon: f64, lat: f64, radius: f64, n: usize) -> Region {
    let vertices = (0..n)
        .map(|i| {
            let t = std::f64::consts::TAU * i as f64 / n as f64;
            (
                lon + radius * t.cos() / lat.to_radians().cos(),
                lat + radius * t.sin(),
            )
        })
        .collect();
    Region::Polygon { vertices }
}

fn coverage(c: &mut Criterion) {
    let (lon, lat) = (123.4, -45.6);
    let mut regions: Vec<(String, Region)> = [0.01, 0.1, 1.0, 10.0]
        .into_iter()
        .map(|radius| {
            (
                format!("circle_{radius}deg"),
                Region::Circle { lon, lat, radius },
            )
        })
        .collect();
    regions.push(("polygon_4_1deg".into(), regular_polygon(lon, lat, 1.0, 4)));
    regions.push(("polygon_12_1deg".into(), regular_polygon(lon, lat, 1.0, 12)));
    for (name, r) in &regions {
        let ranges = r
            .healpix_ranges()
            .unwrap_or_else(|| panic!("{name}: no coverage"));
        assert!(!ranges.is_empty(), "{name}: empty coverage");
    }

    let mut g = c.benchmark_group("healpix_ranges");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, r) in &regions {
        g.bench_with_input(BenchmarkId::from_parameter(name), r, |b, r| {
            b.iter(|| black_box(r).healpix_ranges())
        });
    }
    g.finish();
}

criterion_group!(benches, parse_and_plan, coverage);
criterion_main!(benches);
