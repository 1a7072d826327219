//! write → read gives back the values (with the reader's type mapping), nulls included.

use std::sync::Arc;

use crate::common::{all_types, write_doc};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, ListArray, RecordBatch, StringArray, UInt8Array,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int32Type, Schema, UInt8Type,
};
use votable::{Encoding, EndStatus, WriterOptions};

fn opts(encoding: Encoding) -> WriterOptions {
    WriterOptions {
        encoding,
        ..Default::default()
    }
}

/// What the reader gives back for `all_types()` written as TABLEDATA or BINARY2.
fn expected_all_types() -> Vec<ArrayRef> {
    vec![
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(Int16Array::from(vec![Some(-128), Some(127), None])),
        Arc::new(Int16Array::from(vec![Some(-32768), Some(32767), None])),
        Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(i32::MAX), None])),
        Arc::new(Int64Array::from(vec![
            Some(i64::MIN + 1),
            Some(i64::MAX),
            None,
        ])),
        Arc::new(UInt8Array::from(vec![Some(0), Some(254), None])),
        Arc::new(Int32Array::from(vec![Some(0), Some(65535), None])),
        Arc::new(Int64Array::from(vec![
            Some(0),
            Some(i64::from(u32::MAX)),
            None,
        ])),
        Arc::new(Int64Array::from(vec![Some(1), Some(i64::MAX), None])),
        Arc::new(Float32Array::from(vec![Some(1.5), Some(-0.25), None])),
        Arc::new(Float32Array::from(vec![Some(0.1), Some(f32::NAN), None])),
        Arc::new(Float64Array::from(vec![
            Some(1.0 / 3.0),
            Some(f64::INFINITY),
            None,
        ])),
        Arc::new(Float64Array::from(vec![
            Some(-1.5e-300),
            Some(f64::NEG_INFINITY),
            None,
        ])),
        Arc::new(Float64Array::from(vec![Some(12.345), Some(-0.005), None])),
        Arc::new(StringArray::from(vec![
            Some("a<b & c>\"d\" 'e'"),
            Some("?ngstr?m"),
            None,
        ])),
        Arc::new(StringArray::from(vec![Some("large"), Some("x"), None])),
        Arc::new(StringArray::from(vec![
            Some("a string longer than twelve bytes"),
            Some("v"),
            None,
        ])),
        Arc::new(StringArray::from(vec![Some("GALAXY"), Some("STAR"), None])),
        Arc::new(StringArray::from(vec![
            Some("2024-02-29"),
            Some("1969-12-31"),
            None,
        ])),
        Arc::new(StringArray::from(vec![
            Some("1970-01-01"),
            Some("1970-01-02"),
            None,
        ])),
        Arc::new(StringArray::from(vec![
            Some("2023-11-14T22:13:20.123456"),
            Some("1970-01-01T00:00:00"),
            None,
        ])),
        Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
            Some(vec![Some(1.0), Some(2.5)]),
            // A null element inside an array is written as NaN.
            Some(vec![Some(-0.5), Some(f64::NAN), Some(1e300)]),
            None,
        ])),
        Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(0.1f32)]),
            Some(vec![Some(3.0), Some(4.0)]),
            None,
        ])),
        Arc::new(
            FixedSizeListArray::from_iter_primitive::<Float64Type, _, _>(
                vec![
                    Some(vec![Some(10.0), Some(20.0)]),
                    Some(vec![Some(359.9), Some(-89.9)]),
                    None,
                ],
                2,
            ),
        ),
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2), Some(3)]),
            Some(vec![Some(-7)]),
            None,
        ])),
        Arc::new(ListArray::from_iter_primitive::<UInt8Type, _, _>(vec![
            Some(vec![Some(0), Some(255)]),
            Some(vec![Some(97), Some(98), Some(99)]),
            None,
        ])),
        // Nullable FixedSizeBinary is written with arraysize="*".
        Arc::new(ListArray::from_iter_primitive::<UInt8Type, _, _>(vec![
            Some(vec![Some(1), Some(2), Some(3)]),
            Some(vec![Some(255), Some(0), Some(7)]),
            None,
        ])),
        Arc::new(StringArray::from(vec![None::<&str>, None, None])),
        Arc::new(StringArray::from(vec![
            Some("Ångström → α"),
            Some("plain"),
            None,
        ])),
    ]
}

fn assert_columns(batch: &RecordBatch, expected: &[ArrayRef], rows: std::ops::Range<usize>) {
    assert_eq!(batch.num_columns(), expected.len());
    for (i, (got, want)) in batch.columns().iter().zip(expected).enumerate() {
        let want = want.slice(rows.start, rows.len());
        let got = got.slice(rows.start, rows.len());
        assert_eq!(
            got.as_ref(),
            want.as_ref(),
            "column {i} ({}): got {got:?}, want {want:?}",
            batch.schema().field(i).name()
        );
    }
}

#[test]
fn all_types_roundtrip_tabledata_and_binary2() {
    let batch = all_types();
    for encoding in [Encoding::TableData, Encoding::Binary2] {
        let doc = write_doc(
            batch.schema(),
            opts(encoding),
            std::slice::from_ref(&batch),
            EndStatus::Ok,
        );
        let (schema, batches) = votable::read(&doc).expect("read back");
        assert_eq!(batches.len(), 1);
        assert_columns(&batches[0], &expected_all_types(), 0..3);
        // FIELD attributes come back as metadata.
        let f64_meta = schema.field(11).metadata();
        assert_eq!(f64_meta.get("unit").map(String::as_str), Some("deg"));
        assert_eq!(
            f64_meta.get("ucd").map(String::as_str),
            Some("pos.eq.ra;meta.main")
        );
        assert_eq!(
            f64_meta.get("utype").map(String::as_str),
            Some("stc:AstroCoords.Position2D.Value2.C1")
        );
        assert_eq!(
            f64_meta.get("description").map(String::as_str),
            Some("Right ascension <ICRS> & \"friends\"")
        );
        assert_eq!(f64_meta.get("datatype").map(String::as_str), Some("double"));
        assert_eq!(f64_meta.get("ID").map(String::as_str), Some("f64"));
        let ts_meta = schema.field(20).metadata();
        assert_eq!(ts_meta.get("xtype").map(String::as_str), Some("timestamp"));
        assert_eq!(ts_meta.get("arraysize").map(String::as_str), Some("*"));
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let orig = batch.schema();
        let orig_names: Vec<&str> = orig.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, orig_names);
    }
}

#[test]
fn all_types_roundtrip_binary() {
    // BINARY has no null flags: compare row 1 (row 0 holds the integer minima, which are the
    // declared null sentinels and so read back as null), then the null conventions.
    let batch = all_types();
    let doc = write_doc(
        batch.schema(),
        opts(Encoding::Binary),
        std::slice::from_ref(&batch),
        EndStatus::Ok,
    );
    let (_, batches) = votable::read(&doc).expect("read back");
    assert_eq!(batches[0].num_rows(), 3);
    let mut expected = expected_all_types();
    // A NullArray column has no non-null row; BINARY writes its nulls as empty strings.
    expected[27] = Arc::new(StringArray::from(vec![""; 3]));
    assert_columns(&batches[0], &expected, 1..2);
    assert!(
        batches[0].column(2).is_null(0),
        "i16 minimum is the sentinel"
    );
    let b = &batches[0];
    // Integers use their declared sentinel, booleans '?': both read back as null.
    for c in [0, 1, 2, 3, 4, 5, 6, 7, 8] {
        assert!(b.column(c).is_null(2), "column {c} row 2 should be null");
    }
    // Floats are NaN.
    let f = b
        .column(11)
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("f64");
    assert!(f.value(2).is_nan());
}

#[test]
fn re_writing_a_read_table_keeps_its_fields() {
    let batch = all_types();
    let doc = write_doc(
        batch.schema(),
        opts(Encoding::TableData),
        &[batch],
        EndStatus::Ok,
    );
    let (schema, batches) = votable::read(&doc).expect("read");
    let doc2 = write_doc(
        schema.clone(),
        opts(Encoding::TableData),
        &batches,
        EndStatus::Ok,
    );
    let (schema2, batches2) = votable::read(&doc2).expect("read again");
    assert_eq!(schema, schema2);
    assert_eq!(batches.len(), batches2.len());
    for (a, b) in batches.iter().zip(&batches2) {
        for c in 0..a.num_columns() {
            assert_eq!(
                a.column(c).as_ref(),
                b.column(c).as_ref(),
                "column {c}: {:?} vs {:?}",
                a.column(c),
                b.column(c)
            );
        }
    }
}

/// A deterministic pseudo-random table, written in many batches of uneven sizes.
#[test]
fn multi_batch_binary2_roundtrip() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new(
            "v",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ),
        Field::new("s", DataType::Int16, true),
    ]));
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut batches = Vec::new();
    let mut id = 0i64;
    for size in [1usize, 2, 3, 0, 5, 19, 57, 100, 7, 1000, 4] {
        let mut ids = Vec::new();
        let mut xs = Vec::new();
        let mut names = Vec::new();
        let mut flags = Vec::new();
        let mut vs = Vec::new();
        let mut ss = Vec::new();
        for _ in 0..size {
            let r = rnd();
            ids.push(id);
            id += 1;
            xs.push((r % 5 != 0).then(|| f64::from_bits(r >> 2) % 1e6));
            names.push(match r % 4 {
                0 => None,
                1 => Some(String::new()),
                _ => Some(format!("obj{}", r % 100_000)),
            });
            flags.push(match r % 3 {
                0 => None,
                1 => Some(true),
                _ => Some(false),
            });
            vs.push((r % 7 != 0).then(|| {
                (0..(r % 4))
                    .map(|k| Some(k as f32 * 0.5))
                    .collect::<Vec<_>>()
            }));
            ss.push((r % 6 != 0).then_some((r % 30_000) as i16));
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Float64Array::from(xs)),
            Arc::new(StringArray::from(names)),
            Arc::new(BooleanArray::from(flags)),
            Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vs)),
            Arc::new(Int16Array::from(ss)),
        ];
        batches.push(RecordBatch::try_new(schema.clone(), arrays).expect("batch"));
    }
    let doc = write_doc(
        schema.clone(),
        opts(Encoding::Binary2),
        &batches,
        EndStatus::Ok,
    );
    let (read_schema, read) = votable::read(&doc).expect("read");
    let all = concat_batches(&schema, &batches).expect("concat");
    let got = concat_batches(&read_schema, &read).expect("concat read");
    assert_eq!(got.num_rows(), all.num_rows());
    for c in 0..schema.fields().len() {
        assert_eq!(got.column(c).as_ref(), all.column(c).as_ref(), "column {c}");
    }
}
