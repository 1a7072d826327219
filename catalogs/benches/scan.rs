//! Query benchmarks over a HATS catalog of 300,000 synthetic rows, written once into a temporary
//! folder: a 0.5° cone through the pruning [`HatsTable`] and through a plain Parquet listing
//! table over the same files, and a full scan with a magnitude filter.
//!
//! `cargo bench -p catalogs --bench scan` (release; add `-- --quick` for a fast pass).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test and benchmark code may panic

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalogs::hats::{write_catalog, WriteOptions};
use catalogs::meta::{CatalogMeta, ColumnMeta, TableMeta};
use catalogs::{open_catalog, store_url, HatsTable};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use datafusion::arrow::array::{Array, Float32Array, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use storage::Storage;
use tokio::runtime::Runtime;

const ROWS: usize = 300_000;
const ROOT: &str = "catalogs/gaia.dr3_bright";
/// Cone centre and radius (degrees).
const CONE: (f64, f64, f64) = (123.4, -45.6, 0.5);

/// Deterministic rows uniform in area over the sphere: source_id, ra, dec, and three float32
/// columns (pmra/pmdec with some nulls).
fn rows(n: usize) -> (Arc<Schema>, RecordBatch) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut ra = Vec::with_capacity(n);
    let mut dec = Vec::with_capacity(n);
    let mut g = Vec::with_capacity(n);
    for _ in 0..n {
        ra.push(next() * 360.0);
        dec.push((2.0 * next() - 1.0).asin().to_degrees());
        // Brighter stars are rarer: G from 3 to 15, about 38% below 12.
        g.push((3.0 + 12.0 * next().powf(0.3)) as f32);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("source_id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, false),
        Field::new("dec", DataType::Float64, false),
        Field::new("phot_g_mean_mag", DataType::Float32, true),
        Field::new("pmra", DataType::Float32, true),
        Field::new("pmdec", DataType::Float32, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                (0..n as i64).map(|i| i * 34_359_738_368),
            )),
            Arc::new(Float64Array::from(ra)),
            Arc::new(Float64Array::from(dec)),
            Arc::new(Float32Array::from(g)),
            Arc::new(Float32Array::from_iter((0..n).map(|i| {
                (i % 7 != 0).then_some(((i % 2_001) as f32 - 1_000.0) * 0.05)
            }))),
            Arc::new(Float32Array::from_iter((0..n).map(|i| {
                (i % 7 != 0).then_some(((i % 1_999) as f32 - 1_000.0) * 0.05)
            }))),
        ],
    )
    .expect("batch");
    (schema, batch)
}

fn meta() -> CatalogMeta {
    let col = |name: &str, datatype: &str| ColumnMeta {
        name: name.into(),
        datatype: Some(datatype.into()),
        ..Default::default()
    };
    CatalogMeta {
        table: TableMeta {
            id: Some("source_id".into()),
            ..TableMeta::new("gaia", "dr3_bright", "ra", "dec")
        },
        source: None,
        columns: vec![
            col("source_id", "int64"),
            col("ra", "float64"),
            col("dec", "float64"),
            col("phot_g_mean_mag", "float32"),
            col("pmra", "float32"),
            col("pmdec", "float32"),
        ],
    }
}

/// Writes the catalog and returns a context serving it twice: `gaia.dr3_bright` through
/// [`HatsTable`] and `plain.dr3_bright` as a plain Parquet listing table over the same files.
async fn setup(dir: &std::path::Path) -> (SessionContext, Arc<HatsTable>) {
    let storage = Storage::local(dir, storage::Missing::Create).expect("storage");
    let (schema, batch) = rows(ROWS);
    let started = Instant::now();
    let summary = write_catalog(
        &storage,
        ROOT,
        &meta(),
        schema,
        &[batch],
        &WriteOptions::default(),
    )
    .await
    .expect("write catalog");
    eprintln!(
        "wrote {} rows in {} partitions in {:.1?}",
        summary.rows,
        summary.partitions.len(),
        started.elapsed()
    );
    let cat = Arc::new(open_catalog(&storage, ROOT).await.expect("open catalog"));

    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(2)
            .with_information_schema(false)
            .with_default_catalog_and_schema("datafusion", "public"),
    );
    ctx.runtime_env()
        .register_object_store(&storage.url, storage.store.clone());
    adql::register(&ctx);
    let df_catalog = ctx.catalog("datafusion").expect("default catalog");
    for schema in ["gaia", "plain"] {
        df_catalog
            .register_schema(schema, Arc::new(MemorySchemaProvider::new()))
            .expect("schema");
    }
    let table = Arc::new(HatsTable::new(cat, store_url(&storage).expect("store url")));
    ctx.register_table(TableReference::partial("gaia", "dr3_bright"), table.clone())
        .expect("register hats table");
    let dataset = dir.join(ROOT).join("dataset");
    ctx.register_parquet(
        TableReference::partial("plain", "dr3_bright"),
        format!("{}/", dataset.display()),
        ParquetReadOptions::default(),
    )
    .await
    .expect("register listing table");
    (ctx, table)
}

/// Plans ADQL text and runs it; returns the first column of the first row as a count.
async fn count(ctx: &SessionContext, adql: &str) -> i64 {
    let plan = adql::plan(&ctx.state(), adql).await.expect("plan");
    let batches = ctx
        .execute_logical_plan(plan)
        .await
        .expect("execute")
        .collect()
        .await
        .expect("collect");
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("count column")
        .value(0)
}

/// Plans ADQL text and runs it; returns the number of rows.
async fn rows_of(ctx: &SessionContext, adql: &str) -> usize {
    let plan = adql::plan(&ctx.state(), adql).await.expect("plan");
    let batches = ctx
        .execute_logical_plan(plan)
        .await
        .expect("execute")
        .collect()
        .await
        .expect("collect");
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn scans(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (ctx, table) = rt.block_on(setup(dir.path()));

    let (ra, dec, r) = CONE;
    let cone = |t: &str, what: &str| {
        format!(
            "SELECT {what} FROM {t}.dr3_bright \
             WHERE 1=CONTAINS(POINT('ICRS',ra,dec),CIRCLE('ICRS',{ra},{dec},{r}))"
        )
    };
    let bright =
        |t: &str| format!("SELECT COUNT(*) AS n FROM {t}.dr3_bright WHERE phot_g_mean_mag < 12");
    let queries: Vec<(&str, String)> = vec![
        ("cone_count/hats", cone("gaia", "COUNT(*) AS n")),
        ("cone_count/listing", cone("plain", "COUNT(*) AS n")),
        ("full_scan_mag_lt_12/hats", bright("gaia")),
        ("full_scan_mag_lt_12/listing", bright("plain")),
    ];

    // Both tables give the same answers, and the cone really is pruned.
    rt.block_on(async {
        let pruned = count(&ctx, &queries[0].1).await;
        let plain = count(&ctx, &queries[1].1).await;
        assert_eq!(pruned, plain, "cone count, pruned vs listing");
        assert!(pruned > 0, "empty cone");
        let (_, _, opened, total) = table.stats.snapshot();
        eprintln!(
            "cone: {pruned} rows; the pruned scan opened {opened} of {total} partition files"
        );
        assert!(opened < total, "the cone was not pruned");
        // The 0.5° cone holds only a handful of rows: compare a wider one too.
        let wide = |t: &str| cone(t, "COUNT(*) AS n").replace(&format!(",{r})"), ",5)");
        let (a, b) = (
            count(&ctx, &wide("gaia")).await,
            count(&ctx, &wide("plain")).await,
        );
        assert_eq!(a, b, "5° cone count, pruned vs listing");
        assert!(a > 100, "5° cone: {a} rows");
        let a = count(&ctx, &queries[2].1).await;
        let b = count(&ctx, &queries[3].1).await;
        assert_eq!(a, b, "magnitude count, hats vs listing");
        eprintln!("phot_g_mean_mag < 12: {a} of {ROWS} rows");
    });

    let mut g = c.benchmark_group("scan");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (name, q) in &queries {
        g.bench_with_input(BenchmarkId::from_parameter(name), q, |b, q| {
            b.iter(|| rt.block_on(count(&ctx, black_box(q))))
        });
    }
    let all_columns = cone("gaia", "*");
    g.bench_with_input(
        BenchmarkId::from_parameter("cone_rows/hats"),
        &all_columns,
        |b, q| b.iter(|| rt.block_on(rows_of(&ctx, black_box(q)))),
    );
    g.finish();
}

criterion_group!(benches, scans);
criterion_main!(benches);
