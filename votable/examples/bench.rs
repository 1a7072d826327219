//! Rough writer throughput: `cargo run --release -p votable --example bench [batches]`.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use votable::{Encoding, EndStatus, Writer, WriterOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let batches: usize = std::env::args().nth(1).map_or(Ok(100), |s| s.parse())?;
    let n = 8192usize;
    let schema = Arc::new(Schema::new(vec![
        Field::new("source_id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, true),
        Field::new("dec", DataType::Float64, true),
        Field::new("g", DataType::Float32, true),
        Field::new("bp", DataType::Float32, true),
        Field::new("rp", DataType::Float32, true),
        Field::new("flags", DataType::Int32, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..n as i64).map(|i| 5_966_029_325_870_896_512 + i * 7919),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..n).map(|i| 257.329_360_630_24 + i as f64 * 1.3e-5),
        )),
        Arc::new(Float64Array::from_iter((0..n).map(|i| {
            (i % 50 != 0).then_some(-41.379_704_620_304_61 - i as f64 * 1.7e-6)
        }))),
        Arc::new(Float32Array::from_iter_values(
            (0..n).map(|i| 12.0 + (i % 1000) as f32 * 0.001),
        )),
        Arc::new(Float32Array::from_iter(
            (0..n).map(|i| (i % 3 != 0).then_some(13.25 + (i % 77) as f32 * 0.01)),
        )),
        Arc::new(Float32Array::from_iter_values(
            (0..n).map(|i| 11.5 + (i % 91) as f32 * 0.02),
        )),
        Arc::new(Int32Array::from_iter_values(
            (0..n).map(|i| (i % 17) as i32),
        )),
        Arc::new(StringArray::from_iter(
            (0..n).map(|i| (i % 10 != 0).then(|| format!("Gaia DR3 {i}"))),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    for encoding in [Encoding::TableData, Encoding::Binary2] {
        let mut w = Writer::new(
            schema.clone(),
            WriterOptions {
                encoding,
                ..Default::default()
            },
        )?;
        let start = Instant::now();
        let mut bytes = w.begin().len();
        for _ in 0..batches {
            bytes += w.write_batch(&batch)?.len();
        }
        bytes += w.finish(EndStatus::Ok).len();
        let secs = start.elapsed().as_secs_f64();
        let rows = (batches * n) as f64;
        println!(
            "{encoding:?}: {:.2} Mrows/s, {:.0} MB/s of output ({:.0} bytes/row)",
            rows / secs / 1e6,
            bytes as f64 / secs / 1e6,
            bytes as f64 / rows
        );
    }
    Ok(())
}
