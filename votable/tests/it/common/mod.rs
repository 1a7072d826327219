//! Shared fixtures: a batch with a column of every supported Arrow type (nulls included).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, Decimal128Array,
    DictionaryArray, FixedSizeBinaryArray, FixedSizeListArray, Float16Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, Int8Array, LargeListArray, LargeStringArray,
    ListArray, NullArray, RecordBatch, StringArray, StringViewArray, TimestampMicrosecondArray,
    UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float16Type, Float32Type, Float64Type, Int32Type, Schema,
    SchemaRef,
};
use votable::{EndStatus, Writer, WriterOptions};

type F16 = <Float16Type as ArrowPrimitiveType>::Native;

/// Field metadata from pairs.
pub fn md(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Three rows of every supported type; row 2 (index 2) is null in every column.
pub fn all_types() -> RecordBatch {
    let cols: Vec<(Field, ArrayRef)> = vec![
        (
            Field::new("b", DataType::Boolean, true),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ),
        (
            Field::new("i8", DataType::Int8, true),
            Arc::new(Int8Array::from(vec![Some(-128), Some(127), None])),
        ),
        (
            Field::new("i16", DataType::Int16, true),
            Arc::new(Int16Array::from(vec![Some(-32768), Some(32767), None])),
        ),
        (
            Field::new("i32", DataType::Int32, true),
            Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(i32::MAX), None])),
        ),
        (
            Field::new("i64", DataType::Int64, true),
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN + 1),
                Some(i64::MAX),
                None,
            ])),
        ),
        (
            Field::new("u8", DataType::UInt8, true),
            Arc::new(UInt8Array::from(vec![Some(0), Some(254), None])),
        ),
        (
            Field::new("u16", DataType::UInt16, true),
            Arc::new(UInt16Array::from(vec![Some(0), Some(65535), None])),
        ),
        (
            Field::new("u32", DataType::UInt32, true),
            Arc::new(UInt32Array::from(vec![Some(0), Some(u32::MAX), None])),
        ),
        (
            Field::new("u64", DataType::UInt64, true),
            Arc::new(UInt64Array::from(vec![
                Some(1),
                Some(i64::MAX as u64),
                None,
            ])),
        ),
        (
            Field::new("f16", DataType::Float16, true),
            Arc::new(Float16Array::from(vec![
                Some(F16::from_f32(1.5)),
                Some(F16::from_f32(-0.25)),
                None,
            ])),
        ),
        (
            Field::new("f32", DataType::Float32, true)
                .with_metadata(md(&[("unit", "mag"), ("ucd", "phot.mag")])),
            Arc::new(Float32Array::from(vec![Some(0.1f32), Some(f32::NAN), None])),
        ),
        (
            Field::new("f64", DataType::Float64, true).with_metadata(md(&[
                ("unit", "deg"),
                ("ucd", "pos.eq.ra;meta.main"),
                ("utype", "stc:AstroCoords.Position2D.Value2.C1"),
                ("description", "Right ascension <ICRS> & \"friends\""),
            ])),
            Arc::new(Float64Array::from(vec![
                Some(1.0 / 3.0),
                Some(f64::INFINITY),
                None,
            ])),
        ),
        (
            Field::new("f64b", DataType::Float64, true),
            Arc::new(Float64Array::from(vec![
                Some(-1.5e-300),
                Some(f64::NEG_INFINITY),
                None,
            ])),
        ),
        (
            Field::new("dec", DataType::Decimal128(10, 3), true),
            Arc::new(
                Decimal128Array::from(vec![Some(12_345), Some(-5), None])
                    .with_precision_and_scale(10, 3)
                    .expect("decimal"),
            ),
        ),
        (
            Field::new("s", DataType::Utf8, true),
            Arc::new(StringArray::from(vec![
                Some("a<b & c>\"d\" 'e'"),
                Some("Ångström"),
                None,
            ])),
        ),
        (
            Field::new("ls", DataType::LargeUtf8, true),
            Arc::new(LargeStringArray::from(vec![Some("large"), Some("x"), None])),
        ),
        (
            Field::new("sv", DataType::Utf8View, true),
            Arc::new(StringViewArray::from(vec![
                Some("a string longer than twelve bytes"),
                Some("v"),
                None,
            ])),
        ),
        (
            Field::new(
                "dict",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Arc::new(
                vec![Some("GALAXY"), Some("STAR"), None]
                    .into_iter()
                    .collect::<DictionaryArray<Int32Type>>(),
            ),
        ),
        (
            Field::new("d32", DataType::Date32, true),
            Arc::new(Date32Array::from(vec![Some(19_782), Some(-1), None])),
        ),
        (
            Field::new("d64", DataType::Date64, true),
            Arc::new(Date64Array::from(vec![Some(0), Some(86_400_000), None])),
        ),
        (
            Field::new(
                "ts",
                DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
                true,
            ),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_700_000_000_123_456), Some(0), None])
                    .with_timezone("UTC"),
            ),
        ),
        (
            Field::new(
                "lf64",
                DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
                true,
            ),
            Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
                Some(vec![Some(1.0), Some(2.5)]),
                Some(vec![Some(-0.5), None, Some(1e300)]),
                None,
            ])),
        ),
        (
            Field::new(
                "llf32",
                DataType::LargeList(Arc::new(Field::new("item", DataType::Float32, true))),
                true,
            ),
            Arc::new(LargeListArray::from_iter_primitive::<Float32Type, _, _>(
                vec![
                    Some(vec![Some(0.1f32)]),
                    Some(vec![Some(3.0), Some(4.0)]),
                    None,
                ],
            )),
        ),
        (
            Field::new(
                "fsl",
                DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float64, true)), 2),
                true,
            )
            .with_metadata(md(&[("xtype", "point"), ("unit", "deg")])),
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
        ),
        (
            Field::new(
                "li32",
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                true,
            ),
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                Some(vec![Some(1), Some(2), Some(3)]),
                Some(vec![Some(-7)]),
                None,
            ])),
        ),
        (
            Field::new("bin", DataType::Binary, true),
            Arc::new(BinaryArray::from(vec![
                Some(&b"\x00\xff"[..]),
                Some(&b"abc"[..]),
                None,
            ])),
        ),
        (
            Field::new("fbin", DataType::FixedSizeBinary(3), true),
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![Some(vec![1u8, 2, 3]), Some(vec![255, 0, 7]), None].into_iter(),
                    3,
                )
                .expect("fixed binary"),
            ),
        ),
        (
            Field::new("nul", DataType::Null, true),
            Arc::new(NullArray::new(3)),
        ),
        (
            Field::new("ustr", DataType::Utf8, true)
                .with_metadata(md(&[("datatype", "unicodeChar")])),
            Arc::new(StringArray::from(vec![
                Some("Ångström → α"),
                Some("plain"),
                None,
            ])),
        ),
    ];
    let (fields, arrays): (Vec<_>, Vec<_>) = cols.into_iter().unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch")
}

/// Writes a whole document from batches.
pub fn write_doc(
    schema: SchemaRef,
    opts: WriterOptions,
    batches: &[RecordBatch],
    end: EndStatus,
) -> Vec<u8> {
    let mut w = Writer::new(schema, opts).expect("writer");
    let mut out = w.begin().to_vec();
    for b in batches {
        out.extend_from_slice(&w.write_batch(b).expect("write_batch"));
    }
    out.extend_from_slice(&w.finish(end));
    out
}
