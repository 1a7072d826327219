//! Writer output, checked as text.

use std::sync::Arc;

use crate::common::{all_types, md, write_doc};
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, IntervalUnit, Schema};
use votable::{error_document, Encoding, EndStatus, Error, Info, Writer, WriterOptions};

fn td() -> WriterOptions {
    WriterOptions::default()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf8 output")
}

/// The `<TR>` lines of a TABLEDATA document.
fn rows(doc: &str) -> Vec<&str> {
    doc.lines().filter(|l| l.starts_with("<TR>")).collect()
}

#[test]
fn fields_for_every_type() {
    let batch = all_types();
    let doc = text(&write_doc(batch.schema(), td(), &[], EndStatus::Ok));
    for expected in [
        r#"<FIELD name="b" ID="b" datatype="boolean"/>"#,
        r#"<FIELD name="i8" ID="i8" datatype="short"/>"#,
        r#"<FIELD name="i16" ID="i16" datatype="short"/>"#,
        r#"<FIELD name="i32" ID="i32" datatype="int"/>"#,
        r#"<FIELD name="i64" ID="i64" datatype="long"/>"#,
        r#"<FIELD name="u8" ID="u8" datatype="unsignedByte"/>"#,
        r#"<FIELD name="u16" ID="u16" datatype="int"/>"#,
        r#"<FIELD name="u32" ID="u32" datatype="long"/>"#,
        r#"<FIELD name="u64" ID="u64" datatype="long"/>"#,
        r#"<FIELD name="f16" ID="f16" datatype="float"/>"#,
        r#"<FIELD name="f32" ID="f32" datatype="float" unit="mag" ucd="phot.mag"/>"#,
        "<FIELD name=\"f64\" ID=\"f64\" datatype=\"double\" unit=\"deg\" ucd=\"pos.eq.ra;meta.main\" \
         utype=\"stc:AstroCoords.Position2D.Value2.C1\">\n\
         <DESCRIPTION>Right ascension &lt;ICRS&gt; &amp; \"friends\"</DESCRIPTION>\n</FIELD>",
        r#"<FIELD name="dec" ID="dec" datatype="double"/>"#,
        r#"<FIELD name="s" ID="s" datatype="char" arraysize="*"/>"#,
        r#"<FIELD name="ls" ID="ls" datatype="char" arraysize="*"/>"#,
        r#"<FIELD name="sv" ID="sv" datatype="char" arraysize="*"/>"#,
        r#"<FIELD name="dict" ID="dict" datatype="char" arraysize="*"/>"#,
        r#"<FIELD name="d32" ID="d32" datatype="char" arraysize="*" xtype="timestamp"/>"#,
        r#"<FIELD name="d64" ID="d64" datatype="char" arraysize="*" xtype="timestamp"/>"#,
        r#"<FIELD name="ts" ID="ts" datatype="char" arraysize="*" xtype="timestamp"/>"#,
        r#"<FIELD name="lf64" ID="lf64" datatype="double" arraysize="*"/>"#,
        r#"<FIELD name="llf32" ID="llf32" datatype="float" arraysize="*"/>"#,
        r#"<FIELD name="fsl" ID="fsl" datatype="double" arraysize="2" unit="deg" xtype="point"/>"#,
        r#"<FIELD name="li32" ID="li32" datatype="int" arraysize="*"/>"#,
        r#"<FIELD name="bin" ID="bin" datatype="unsignedByte" arraysize="*"/>"#,
        // Nullable fixed-size binary is declared variable (no byte value is free for a null).
        r#"<FIELD name="fbin" ID="fbin" datatype="unsignedByte" arraysize="*"/>"#,
        r#"<FIELD name="nul" ID="nul" datatype="char" arraysize="*"/>"#,
        r#"<FIELD name="ustr" ID="ustr" datatype="unicodeChar" arraysize="*"/>"#,
    ] {
        assert!(doc.contains(expected), "missing {expected}\nin\n{doc}");
    }
}

#[test]
fn tabledata_cells_for_every_type() {
    let batch = all_types();
    let doc = text(&write_doc(batch.schema(), td(), &[batch], EndStatus::Ok));
    let rows = rows(&doc);
    assert_eq!(rows.len(), 3);
    let cells = |r: &str| -> Vec<String> {
        r.trim_start_matches("<TR>")
            .trim_end_matches("</TR>")
            .split("</TD>")
            .filter(|c| !c.is_empty())
            .flat_map(|c| {
                // "<TD/><TD/><TD>x" → "", "", "x"
                let mut out: Vec<String> = Vec::new();
                let mut rest = c;
                while let Some(r) = rest.strip_prefix("<TD/>") {
                    out.push(String::new());
                    rest = r;
                }
                if let Some(v) = rest.strip_prefix("<TD>") {
                    out.push(v.to_owned());
                }
                out
            })
            .collect()
    };
    let row0 = cells(rows[0]);
    assert_eq!(
        row0,
        [
            "T",
            "-128",
            "-32768",
            "-2147483648",
            "-9223372036854775807",
            "0",
            "0",
            "0",
            "1",
            "1.5",
            "0.1",
            "0.3333333333333333",
            "-1.5e-300",
            "12.345",
            "a&lt;b &amp; c&gt;\"d\" 'e'",
            "large",
            "a string longer than twelve bytes",
            "GALAXY",
            "2024-02-29",
            "1970-01-01",
            "2023-11-14T22:13:20.123456",
            "1.0 2.5",
            "0.1",
            "10.0 20.0",
            "1 2 3",
            "0 255",
            "1 2 3",
            "",
            "Ångström → α",
        ]
    );
    let row1 = cells(rows[1]);
    assert_eq!(
        row1,
        [
            "F",
            "127",
            "32767",
            "2147483647",
            "9223372036854775807",
            "254",
            "65535",
            "4294967295",
            "9223372036854775807",
            "-0.25",
            "NaN",
            "+Inf",
            "-Inf",
            "-0.005",
            "?ngstr?m",
            "x",
            "v",
            "STAR",
            "1969-12-31",
            "1970-01-02",
            "1970-01-01T00:00:00",
            "-0.5 NaN 1e300",
            "3.0 4.0",
            "359.9 -89.9",
            "-7",
            "97 98 99",
            "255 0 7",
            "",
            "plain",
        ]
    );
    // Row 2 is null everywhere: empty cells, except the fixed-size array, which needs its
    // elements (NaN here; the declared `<VALUES null>` for integers).
    let row2 = cells(rows[2]);
    assert_eq!(row2.len(), batch_width());
    for (i, c) in row2.iter().enumerate() {
        let expected = match i {
            23 => "NaN NaN",
            _ => "",
        };
        assert_eq!(c, expected, "column {i}");
    }
}

fn batch_width() -> usize {
    all_types().num_columns()
}

#[test]
fn document_structure_and_infos() {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let opts = WriterOptions {
        encoding: Encoding::TableData,
        resource_infos: vec![
            Info::new("QUERY", "SELECT * FROM t WHERE a < 3 & b = \"x\""),
            Info {
                name: "citation".into(),
                value: "ref".into(),
                content: Some("Please cite <us> & them".into()),
            },
        ],
        table_name: Some("result<1>".into()),
        description: Some("A description & more".into()),
        extra_resources: None,
    };
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
        .expect("batch");
    let doc = text(&write_doc(schema, opts, &[batch], EndStatus::Ok));
    let expected = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
xsi:schemaLocation=\"http://www.ivoa.net/xml/VOTable/v1.3 http://www.ivoa.net/xml/VOTable/v1.3\">\n\
<RESOURCE type=\"results\">\n\
<DESCRIPTION>A description &amp; more</DESCRIPTION>\n\
<INFO name=\"QUERY_STATUS\" value=\"OK\"/>\n\
<INFO name=\"QUERY\" value=\"SELECT * FROM t WHERE a &lt; 3 &amp; b = &quot;x&quot;\"/>\n\
<INFO name=\"citation\" value=\"ref\">Please cite &lt;us&gt; &amp; them</INFO>\n\
<TABLE name=\"result&lt;1&gt;\">\n\
<FIELD name=\"x\" ID=\"x\" datatype=\"long\"/>\n\
<DATA>\n<TABLEDATA>\n\
<TR><TD>1</TD></TR>\n\
<TR><TD>2</TD></TR>\n\
</TABLEDATA>\n</DATA>\n</TABLE>\n</RESOURCE>\n</VOTABLE>\n";
    assert_eq!(doc, expected);
}

#[test]
fn empty_result() {
    let schema = all_types().schema();
    for encoding in [Encoding::TableData, Encoding::Binary2, Encoding::Binary] {
        let opts = WriterOptions {
            encoding,
            ..Default::default()
        };
        let empty = RecordBatch::new_empty(schema.clone());
        let doc = write_doc(schema.clone(), opts, &[empty], EndStatus::Ok);
        let (read_schema, batches) = votable::read(&doc).expect("read empty");
        assert_eq!(read_schema.fields().len(), schema.fields().len());
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    }
    let doc = text(&write_doc(schema, td(), &[], EndStatus::Ok));
    assert!(doc.contains("<TABLEDATA>\n</TABLEDATA>"));
}

#[test]
fn duplicate_names_get_unique_ids() {
    let fields = vec![
        Field::new("ra", DataType::Float64, true),
        Field::new("ra", DataType::Float64, true),
        Field::new("ra_2", DataType::Float64, true),
        Field::new("1st", DataType::Float64, true),
        Field::new("count(*)", DataType::Int64, true),
        Field::new("x", DataType::Int64, true).with_metadata(md(&[("ID", "ra")])),
        Field::new("y", DataType::Int64, true).with_metadata(md(&[("ID", "good_id")])),
    ];
    let doc = text(&write_doc(
        Arc::new(Schema::new(fields)),
        td(),
        &[],
        EndStatus::Ok,
    ));
    for expected in [
        r#"name="ra" ID="ra""#,
        r#"name="ra" ID="ra_2""#,
        r#"name="ra_2" ID="ra_2_2""#,
        r#"name="1st" ID="_1st""#,
        r#"name="count(*)" ID="count___""#,
        r#"name="x" ID="x""#,
        r#"name="y" ID="good_id""#,
    ] {
        assert!(doc.contains(expected), "missing {expected} in\n{doc}");
    }
}

#[test]
fn overflow_and_mid_stream_error() {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![7]))])
        .expect("batch");
    let doc = text(&write_doc(
        schema.clone(),
        td(),
        std::slice::from_ref(&batch),
        EndStatus::Overflow,
    ));
    assert!(doc.ends_with(
        "</TABLEDATA>\n</DATA>\n</TABLE>\n<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"/>\n</RESOURCE>\n</VOTABLE>\n"
    ));
    let doc = text(&write_doc(
        schema,
        WriterOptions {
            encoding: Encoding::Binary2,
            ..Default::default()
        },
        &[batch],
        EndStatus::Error("disk <full> & \u{1}gone".into()),
    ));
    assert!(doc.ends_with(
        "</STREAM>\n</BINARY2>\n</DATA>\n</TABLE>\n<INFO name=\"QUERY_STATUS\" value=\"ERROR\">disk &lt;full&gt; &amp; \u{FFFD}gone</INFO>\n</RESOURCE>\n</VOTABLE>\n"
    ));
}

#[test]
fn error_document_is_complete() {
    let doc = error_document("Syntax error near 'SELEC' <here> & there");
    assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VOTABLE version=\"1.4\""));
    assert!(doc.contains(
        "<RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" value=\"ERROR\">Syntax error near 'SELEC' &lt;here&gt; &amp; there</INFO>\n</RESOURCE>\n</VOTABLE>\n"
    ));
}

#[test]
fn unsupported_types_name_the_column() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("ok", DataType::Int32, true),
        Field::new("span", DataType::Interval(IntervalUnit::DayTime), true),
    ]));
    match Writer::new(schema, td()) {
        Err(Error::UnsupportedType { column, .. }) => assert_eq!(column, "span"),
        other => panic!("expected UnsupportedType, got {other:?}"),
    }
    let schema = Arc::new(Schema::new(vec![Field::new(
        "st",
        DataType::Struct(Fields::from(vec![Field::new("a", DataType::Int32, true)])),
        true,
    )]));
    assert!(
        matches!(Writer::new(schema, td()), Err(Error::UnsupportedType { column, .. }) if column == "st")
    );
    let schema = Arc::new(Schema::new(vec![Field::new(
        "ls",
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        true,
    )]));
    assert!(matches!(
        Writer::new(schema, td()),
        Err(Error::UnsupportedType { .. })
    ));
    assert!(matches!(
        Writer::new(Arc::new(Schema::empty()), td()),
        Err(Error::NoColumns)
    ));
}

#[test]
fn value_errors_leave_a_valid_document() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int64, true).with_metadata(md(&[("datatype", "int")]))
    ]));
    let mut w = Writer::new(schema.clone(), td()).expect("writer");
    let mut out = w.begin().to_vec();
    let good = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from(vec![1, -5]))],
    )
    .expect("b");
    out.extend_from_slice(&w.write_batch(&good).expect("good batch"));
    let bad = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![3, 1 << 40]))])
        .expect("b");
    match w.write_batch(&bad) {
        Err(Error::Value { column, row, .. }) => {
            assert_eq!(column, "n");
            assert_eq!(row, 3);
        }
        other => panic!("expected a value error, got {other:?}"),
    }
    assert_eq!(w.rows_written(), 2);
    out.extend_from_slice(&w.finish(EndStatus::Error("value out of range".into())));
    let doc = text(&out);
    assert!(doc.contains(r#"datatype="int""#));
    assert_eq!(rows(&doc), ["<TR><TD>1</TD></TR>", "<TR><TD>-5</TD></TR>"]);
    assert!(matches!(w.write_batch(&good), Err(Error::Finished)));
    assert!(w.finish(EndStatus::Ok).is_empty());

    // u64 beyond long.
    let schema = Arc::new(Schema::new(vec![Field::new("u", DataType::UInt64, true)]));
    let mut w = Writer::new(schema.clone(), td()).expect("writer");
    let batch =
        RecordBatch::try_new(schema, vec![Arc::new(UInt64Array::from(vec![u64::MAX]))]).expect("b");
    assert!(matches!(w.write_batch(&batch), Err(Error::Value { .. })));
}

#[test]
fn batches_must_match_the_schema() {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
    let mut w = Writer::new(schema, td()).expect("writer");
    let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, true)]));
    let batch =
        RecordBatch::try_new(other, vec![Arc::new(StringArray::from(vec!["a"]))]).expect("b");
    assert!(matches!(
        w.write_batch(&batch),
        Err(Error::SchemaMismatch(_))
    ));
    // Different field names are fine: columns are matched by position.
    let renamed = Arc::new(Schema::new(vec![Field::new(
        "renamed",
        DataType::Float64,
        true,
    )]));
    let batch =
        RecordBatch::try_new(renamed, vec![Arc::new(Float64Array::from(vec![2.0]))]).expect("b");
    let out = w.write_batch(&batch).expect("renamed batch");
    // write_batch before begin() emitted the header itself.
    assert!(text(&out).contains("<TR><TD>2.0</TD></TR>"));
    assert!(text(&out).starts_with("<?xml"));
}

#[test]
fn datatype_and_arraysize_overrides() {
    let fields = vec![
        Field::new("code", DataType::Utf8, true).with_metadata(md(&[("arraysize", "4")])),
        Field::new("tag", DataType::Utf8, true).with_metadata(md(&[("arraysize", "3*")])),
        Field::new("mag", DataType::Float32, true).with_metadata(md(&[("datatype", "double")])),
        Field::new("n", DataType::Int16, true).with_metadata(md(&[("datatype", "long")])),
        Field::new("bad", DataType::Float64, true)
            .with_metadata(md(&[("datatype", "int"), ("ucd", "not a ucd")])),
        Field::new(
            "m",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float64, true)), 6),
            true,
        )
        .with_metadata(md(&[("arraysize", "2x3")])),
    ];
    let schema = Arc::new(Schema::new(fields));
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["ABCDEFG"])),
        Arc::new(StringArray::from(vec!["xyzzy"])),
        Arc::new(datafusion::arrow::array::Float32Array::from(vec![0.1f32])),
        Arc::new(datafusion::arrow::array::Int16Array::from(vec![3i16])),
        Arc::new(Float64Array::from(vec![2.5])),
        Arc::new(
            datafusion::arrow::array::FixedSizeListArray::from_iter_primitive::<
                datafusion::arrow::datatypes::Float64Type,
                _,
                _,
            >(
                vec![Some((0..6).map(|i| Some(f64::from(i))).collect::<Vec<_>>())],
                6,
            ),
        ),
    ];
    let batch = RecordBatch::try_new(schema.clone(), arrays).expect("batch");
    let doc = text(&write_doc(schema, td(), &[batch], EndStatus::Ok));
    for expected in [
        r#"<FIELD name="code" ID="code" datatype="char" arraysize="4"/>"#,
        r#"<FIELD name="tag" ID="tag" datatype="char" arraysize="3*"/>"#,
        r#"<FIELD name="mag" ID="mag" datatype="double"/>"#,
        r#"<FIELD name="n" ID="n" datatype="long"/>"#,
        r#"<FIELD name="bad" ID="bad" datatype="double"/>"#,
        r#"<FIELD name="m" ID="m" datatype="double" arraysize="2x3"/>"#,
        "<TR><TD>ABCD</TD><TD>xyz</TD><TD>0.10000000149011612</TD><TD>3</TD><TD>2.5</TD><TD>0.0 1.0 2.0 3.0 4.0 5.0</TD></TR>",
    ] {
        assert!(doc.contains(expected), "missing {expected} in\n{doc}");
    }
}

#[test]
fn binary2_chunks_are_whole_base64_lines() {
    let batch = all_types();
    let mut w = Writer::new(
        batch.schema(),
        WriterOptions {
            encoding: Encoding::Binary2,
            ..Default::default()
        },
    )
    .expect("writer");
    let head = text(&w.begin());
    assert!(head.ends_with("<DATA>\n<BINARY2>\n<STREAM encoding=\"base64\">\n"));
    for _ in 0..5 {
        let chunk = text(&w.write_batch(&batch).expect("batch"));
        assert_eq!(
            chunk.len() % 77,
            0,
            "a chunk holds only full 76-character lines"
        );
        assert!(chunk.lines().all(|l| l.len() == 76));
    }
    let tail = text(&w.finish(EndStatus::Ok));
    assert!(tail.ends_with("</STREAM>\n</BINARY2>\n</DATA>\n</TABLE>\n</RESOURCE>\n</VOTABLE>\n"));
    assert_eq!(w.rows_written(), 15);
}

#[test]
fn binary_declares_null_sentinels() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int32, true),
        Field::new("m", DataType::Int32, false),
    ]));
    let doc = text(&write_doc(
        schema,
        WriterOptions {
            encoding: Encoding::Binary,
            ..Default::default()
        },
        &[],
        EndStatus::Ok,
    ));
    assert!(doc.contains(
        "<FIELD name=\"n\" ID=\"n\" datatype=\"int\">\n<VALUES null=\"-2147483648\"/>\n</FIELD>"
    ));
    assert!(doc.contains("<FIELD name=\"m\" ID=\"m\" datatype=\"int\"/>"));
    assert!(doc.contains("<BINARY>\n<STREAM encoding=\"base64\">\n</STREAM>\n</BINARY>"));
}

#[test]
fn writer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Writer>();
    check::<Error>();
}

#[test]
fn dataless_document_has_fields_and_no_data() {
    let batch = all_types();
    let opts = WriterOptions {
        resource_infos: vec![Info::new("QUERY", "SELECT 1")],
        table_name: Some("result".into()),
        ..td()
    };
    let w = Writer::new(batch.schema(), opts).expect("writer");
    let doc = w.dataless_document(&EndStatus::Overflow);
    assert!(!doc.contains("<DATA>"), "{doc}");
    assert!(doc.contains(
        r#"<FIELD name="fsl" ID="fsl" datatype="double" arraysize="2" unit="deg" xtype="point"/>"#
    ));
    assert!(doc.contains("<INFO name=\"QUERY_STATUS\" value=\"OK\"/>"));
    assert!(doc.contains("<INFO name=\"QUERY\" value=\"SELECT 1\"/>"));
    assert!(doc.ends_with(
        "</TABLE>\n<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"/>\n</RESOURCE>\n</VOTABLE>\n"
    ));
    // It reads back as a VOTable with the same columns and no rows.
    let (schema, batches) = votable::read(doc.as_bytes()).expect("readable");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    assert_eq!(schema.fields().len(), batch.num_columns());
}
