//! VOTable encoding throughput: one 100,000-row batch shaped like a Gaia result, written as a
//! whole document (header, rows, footer) into a `Vec<u8>`.
//!
//! `cargo bench -p votable --bench encode` (release; add `-- --quick` for a fast pass).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test and benchmark code may panic

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use datafusion::arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch,
    StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use votable::{Encoding, EndStatus, Writer, WriterOptions};

const ROWS: usize = 100_000;

const ENCODINGS: [(&str, Encoding); 3] = [
    ("tabledata", Encoding::TableData),
    ("binary2", Encoding::Binary2),
    ("binary", Encoding::Binary),
];

/// A deterministic Gaia-like batch: id, ra/dec, four float32 columns (three with nulls), a
/// string and a `double[2]` position.
fn gaia_batch(n: usize) -> RecordBatch {
    let ra = |i: usize| (i as f64 * 0.003_607_1) % 360.0;
    let dec = |i: usize| {
        ((i as f64 * 0.618_033_988_7) % 2.0 - 1.0)
            .asin()
            .to_degrees()
    };
    let pos = FixedSizeListArray::from_iter_primitive::<Float64Type, _, _>(
        (0..n).map(|i| Some([Some(ra(i)), Some(dec(i))])),
        2,
    );
    let unit = |u: &str| HashMap::from([("unit".to_string(), u.to_string())]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("source_id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, false).with_metadata(unit("deg")),
        Field::new("dec", DataType::Float64, false).with_metadata(unit("deg")),
        Field::new("phot_g_mean_mag", DataType::Float32, true).with_metadata(unit("mag")),
        Field::new("parallax", DataType::Float32, true).with_metadata(unit("mas")),
        Field::new("pmra", DataType::Float32, true).with_metadata(unit("mas/yr")),
        Field::new("pmdec", DataType::Float32, true).with_metadata(unit("mas/yr")),
        Field::new("designation", DataType::Utf8, true),
        Field::new("pos", pos.data_type().clone(), false).with_metadata(HashMap::from([
            ("unit".to_string(), "deg".to_string()),
            ("xtype".to_string(), "point".to_string()),
        ])),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..n as i64).map(|i| 4_295_806_720 + i * 34_359_738_368),
        )),
        Arc::new(Float64Array::from_iter_values((0..n).map(ra))),
        Arc::new(Float64Array::from_iter_values((0..n).map(dec))),
        Arc::new(Float32Array::from_iter_values(
            (0..n).map(|i| 3.0 + (i % 9_973) as f32 * 0.001),
        )),
        Arc::new(Float32Array::from_iter((0..n).map(|i| {
            (i % 5 != 0).then_some(0.05 + (i % 1_009) as f32 * 0.01)
        }))),
        Arc::new(Float32Array::from_iter((0..n).map(|i| {
            (i % 5 != 0).then_some(-40.0 + (i % 8_011) as f32 * 0.01)
        }))),
        Arc::new(Float32Array::from_iter((0..n).map(|i| {
            (i % 5 != 0).then_some(25.0 - (i % 5_003) as f32 * 0.01)
        }))),
        Arc::new(StringArray::from_iter((0..n).map(|i| {
            (i % 50 != 0).then(|| format!("Gaia DR3 {}", 4_295_806_720 + i as i64 * 34_359_738_368))
        }))),
        Arc::new(pos),
    ];
    RecordBatch::try_new(schema, cols).expect("batch")
}

/// The complete document for `batch`.
fn encode(batch: &RecordBatch, encoding: Encoding, out: &mut Vec<u8>) {
    out.clear();
    let mut w = Writer::new(
        batch.schema(),
        WriterOptions {
            encoding,
            ..Default::default()
        },
    )
    .expect("writer");
    out.extend_from_slice(&w.begin());
    out.extend_from_slice(&w.write_batch(batch).expect("encode"));
    out.extend_from_slice(&w.finish(EndStatus::Ok));
}

fn encode_benches(c: &mut Criterion) {
    let batch = gaia_batch(ROWS);
    let mut out = Vec::new();
    let sizes: Vec<usize> = ENCODINGS
        .iter()
        .map(|&(_, e)| {
            encode(&batch, e, &mut out);
            out.len()
        })
        .collect();

    let mut g = c.benchmark_group("votable_encode_bytes");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (&(name, encoding), &size) in ENCODINGS.iter().zip(&sizes) {
        g.throughput(Throughput::Bytes(size as u64));
        let mut out = Vec::with_capacity(size);
        g.bench_function(BenchmarkId::new(name, ROWS), |b| {
            b.iter(|| {
                encode(black_box(&batch), encoding, &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("votable_encode_rows");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(ROWS as u64));
    for (&(name, encoding), &size) in ENCODINGS.iter().zip(&sizes) {
        let mut out = Vec::with_capacity(size);
        g.bench_function(BenchmarkId::new(name, ROWS), |b| {
            b.iter(|| {
                encode(black_box(&batch), encoding, &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode_benches);
criterion_main!(benches);
