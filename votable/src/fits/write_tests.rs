//! The FITS card writer, the type mapping, the NULL choice, and whole files read back with a
//! small FITS parser (the conformance suite reads them with astropy and STILTS).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, Int8Array,
    LargeStringArray, ListArray, StringArray, UInt64Array, UInt8Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Schema, TimeUnit};

use super::*;

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("ascii")
}

#[test]
fn integer_and_logical_cards_are_fixed_format() {
    let mut h = Header::new();
    h.int("NAXIS2", 42, "number of rows");
    h.logical("SIMPLE", true, "");
    h.int("TNULL3", -9223372036854775808, "");
    h.uint("TZERO3", 1 << 63, "");
    let cards = h.buf.chunks(CARD).map(text).collect::<Vec<_>>();
    assert_eq!(h.buf.len(), 4 * CARD);
    assert_eq!(
        cards[0],
        format!("{:<80}", "NAXIS2  =                   42 / number of rows")
    );
    // Values end in column 30.
    assert_eq!(&cards[1][..30], "SIMPLE  =                    T");
    assert_eq!(cards[1].trim_end().len(), 30);
    assert_eq!(&cards[2][..30], "TNULL3  = -9223372036854775808");
    assert_eq!(&cards[3][..30], "TZERO3  =  9223372036854775808");
}

#[test]
fn string_cards_are_quoted_padded_and_cut() {
    let mut h = Header::new();
    h.string("TTYPE1", "ra", "");
    h.string("TCOMM1", "O'Brien's star", "a comment");
    h.string("TCOMM2", &"x".repeat(100), "dropped");
    // A doubled quote is never split at the end of the card.
    h.string("TCOMM3", &format!("{}'", "y".repeat(67)), "");
    h.string("TUNIT1", "µm/s", "");
    let cards = h.buf.chunks(CARD).map(text).collect::<Vec<_>>();
    assert_eq!(cards[0], format!("{:<80}", "TTYPE1  = 'ra      '"));
    assert_eq!(
        cards[1],
        format!("{:<80}", "TCOMM1  = 'O''Brien''s star' / a comment")
    );
    assert_eq!(cards[2], format!("TCOMM2  = '{}'", "x".repeat(68)));
    assert_eq!(
        cards[3],
        format!("{:<80}", format!("TCOMM3  = '{}'", "y".repeat(67)))
    );
    // Non-ASCII characters become '?'.
    assert_eq!(cards[4], format!("{:<80}", "TUNIT1  = '?m/s    '"));
    assert!(h.buf.iter().all(|b| (b' '..=b'~').contains(b)));
}

#[test]
fn commentary_cards_split_the_text() {
    let mut h = Header::new();
    h.commentary("COMMENT", &"a".repeat(150), 10);
    h.commentary("COMMENT", &"b".repeat(1000), 2);
    h.commentary("COMMENT", "", 2);
    let cards = h.buf.chunks(CARD).map(text).collect::<Vec<_>>();
    assert_eq!(cards.len(), 3 + 2 + 1);
    assert_eq!(cards[0], format!("COMMENT {}", "a".repeat(72)));
    assert_eq!(
        cards[2],
        format!("{:<80}", format!("COMMENT {}", "a".repeat(6)))
    );
    assert_eq!(cards[5], format!("{:<80}", "COMMENT"));
}

#[test]
fn headers_end_and_fill_whole_blocks() {
    for n in [0usize, 1, 35, 36, 37, 100] {
        let mut h = Header::new();
        for i in 0..n {
            h.int(&format!("K{i}"), i as i64, "");
        }
        let out = h.finish();
        assert_eq!(out.len() % BLOCK, 0, "{n} cards");
        assert_eq!(out.len(), (n + 1).div_ceil(36) * BLOCK);
        assert_eq!(
            text(&out[n * CARD..(n + 1) * CARD]),
            format!("{:<80}", "END")
        );
        assert!(out[(n + 1) * CARD..].iter().all(|b| *b == b' '));
    }
    let p = primary_header();
    assert_eq!(p.len(), BLOCK);
    assert!(text(&p).starts_with("SIMPLE  =                    T"));
}

#[test]
fn arrow_types_map_to_tforms() {
    let item = |t: DataType| Arc::new(Field::new("item", t, true));
    let cases: Vec<(DataType, Elem, Shape, bool)> = vec![
        (DataType::Boolean, Elem::L, Shape::Scalar, false),
        (DataType::Int8, Elem::I, Shape::Scalar, false),
        (DataType::Int16, Elem::I, Shape::Scalar, false),
        (DataType::Int32, Elem::J, Shape::Scalar, false),
        (DataType::Int64, Elem::K, Shape::Scalar, false),
        (DataType::UInt8, Elem::B, Shape::Scalar, false),
        (DataType::UInt16, Elem::J, Shape::Scalar, false),
        (DataType::UInt32, Elem::K, Shape::Scalar, false),
        (DataType::UInt64, Elem::K, Shape::Scalar, true),
        (DataType::Float16, Elem::E, Shape::Scalar, false),
        (DataType::Float32, Elem::E, Shape::Scalar, false),
        (DataType::Float64, Elem::D, Shape::Scalar, false),
        (DataType::Decimal128(10, 3), Elem::D, Shape::Scalar, false),
        (DataType::Utf8, Elem::A, Shape::Scalar, false),
        (DataType::LargeUtf8, Elem::A, Shape::Scalar, false),
        (DataType::Utf8View, Elem::A, Shape::Scalar, false),
        (DataType::Null, Elem::A, Shape::Scalar, false),
        (
            DataType::Timestamp(TimeUnit::Microsecond, None),
            Elem::A,
            Shape::Scalar,
            false,
        ),
        (DataType::Date32, Elem::A, Shape::Scalar, false),
        (
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            Elem::A,
            Shape::Scalar,
            false,
        ),
        (
            DataType::FixedSizeList(item(DataType::Float64), 2),
            Elem::D,
            Shape::Fixed(2),
            false,
        ),
        (
            DataType::FixedSizeList(item(DataType::Float64), 3),
            Elem::D,
            Shape::Fixed(3),
            false,
        ),
        (
            DataType::List(item(DataType::Float32)),
            Elem::E,
            Shape::Var,
            false,
        ),
        (
            DataType::LargeList(item(DataType::Int32)),
            Elem::J,
            Shape::Var,
            false,
        ),
        (DataType::Binary, Elem::B, Shape::Var, false),
        (
            DataType::FixedSizeBinary(16),
            Elem::B,
            Shape::Fixed(16),
            false,
        ),
    ];
    for (dt, elem, shape, u64) in cases {
        let p = plan_type(&dt).unwrap_or_else(|| panic!("{dt} has a plan"));
        assert_eq!((p.elem, p.shape, p.unsigned64), (elem, shape, u64), "{dt}");
        // Every canonical type maps to itself.
        assert_eq!(
            plan_type(&p.canonical).map(|q| q.canonical),
            Some(p.canonical.clone())
        );
    }
    for dt in [
        DataType::Struct(vec![Field::new("a", DataType::Int32, true)].into()),
        DataType::List(item(DataType::Utf8)),
        DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::DayTime),
    ] {
        assert!(plan_type(&dt).is_none(), "{dt}");
    }
    let col = |elem, shape, repeat, max_elems| OutCol {
        elem,
        shape,
        repeat,
        max_elems,
        null: None,
        unsigned64: false,
        q: false,
    };
    assert_eq!(col(Elem::A, Shape::Scalar, 12, 0).tform(), "12A");
    assert_eq!(col(Elem::J, Shape::Scalar, 1, 0).tform(), "1J");
    assert_eq!(col(Elem::D, Shape::Fixed(2), 2, 0).tform(), "2D");
    assert_eq!(col(Elem::E, Shape::Var, 1, 7).tform(), "1PE(7)");
    assert_eq!(
        OutCol {
            q: true,
            ..col(Elem::E, Shape::Var, 1, 7)
        }
        .tform(),
        "1QE(7)"
    );
    assert_eq!(col(Elem::D, Shape::Var, 1, 7).width(), 8);
    assert_eq!(col(Elem::A, Shape::Scalar, 12, 0).width(), 12);
    assert_eq!(col(Elem::D, Shape::Fixed(3), 3, 0).width(), 24);
}

#[test]
fn null_values_avoid_the_data() {
    let i16min = i64::from(i16::MIN);
    let i16max = i64::from(i16::MAX);
    // No value seen at all.
    assert_eq!(null_value(Elem::I, i64::MAX, i64::MIN), (Elem::I, i16min));
    assert_eq!(null_value(Elem::B, 0, 254), (Elem::B, 255));
    assert_eq!(null_value(Elem::B, 1, 255), (Elem::B, 0));
    assert_eq!(null_value(Elem::B, 0, 255), (Elem::I, i16min));
    assert_eq!(null_value(Elem::I, -5, 5), (Elem::I, i16min));
    assert_eq!(null_value(Elem::I, i16min, 5), (Elem::I, i16max));
    assert_eq!(
        null_value(Elem::I, i16min, i16max),
        (Elem::J, i64::from(i32::MIN))
    );
    assert_eq!(
        null_value(Elem::J, i64::from(i32::MIN), i64::from(i32::MAX)),
        (Elem::K, i64::MIN)
    );
    assert_eq!(null_value(Elem::K, i64::MIN, i64::MAX), (Elem::K, i64::MIN));
}

// ---------------------------------------------------------------------------- whole files

/// A parsed header: keyword → value text (strings unquoted), and COMMENT texts.
struct Hdu {
    cards: HashMap<String, String>,
    comments: Vec<String>,
    /// Offset of the data after the header.
    data: usize,
}

fn parse_header(file: &[u8], at: usize) -> Hdu {
    let mut cards = HashMap::new();
    let mut comments = Vec::new();
    let mut pos = at;
    loop {
        let card = text(&file[pos..pos + CARD]);
        pos += CARD;
        let key = card[..8].trim_end().to_owned();
        if key == "END" {
            break;
        }
        if key == "COMMENT" {
            comments.push(card[8..].trim_end().to_owned());
            continue;
        }
        assert_eq!(&card[8..10], "= ", "{card}");
        let rest = &card[10..];
        let value = if let Some(s) = rest.strip_prefix('\'') {
            // Up to the closing quote (doubled quotes are literal).
            let mut out = String::new();
            let mut chars = s.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        out.push('\'');
                        continue;
                    }
                    break;
                }
                out.push(c);
            }
            out.trim_end().to_owned()
        } else {
            rest.split(" / ").next().unwrap_or("").trim().to_owned()
        };
        cards.insert(key, value);
    }
    assert_eq!(pos % CARD, 0);
    Hdu {
        cards,
        comments,
        data: pos.div_ceil(BLOCK) * BLOCK,
    }
}

impl Hdu {
    fn get(&self, k: &str) -> &str {
        self.cards
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k}"))
    }
    fn int(&self, k: &str) -> i64 {
        self.get(k)
            .parse()
            .unwrap_or_else(|_| panic!("{k} = {}", self.get(k)))
    }
}

fn encode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    status: EndStatus,
    budget: usize,
) -> Vec<u8> {
    let infos = [
        Info::new("QUERY", "SELECT * FROM t"),
        Info::new("LANG", "ADQL"),
    ];
    let mut e =
        FitsEncoder::with_budget(schema, &infos, Some("result".into()), budget).expect("encoder");
    for b in batches {
        e.write(b).expect("write");
    }
    let mut out = e.finish(&status).to_vec();
    while let Some(chunk) = e.next_chunk() {
        out.extend_from_slice(&chunk);
    }
    out
}

fn md(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn test_schema() -> SchemaRef {
    let point = DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float64, true)), 2);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false).with_metadata(md(&[("ucd", "meta.id;meta.main")])),
        Field::new("ra", DataType::Float64, true).with_metadata(md(&[
            ("unit", "deg"),
            ("ucd", "pos.eq.ra;meta.main"),
            ("utype", "stc:Position.C1"),
            ("description", "Right ascension"),
        ])),
        Field::new("mag", DataType::Float32, true),
        Field::new("n", DataType::Int16, true),
        Field::new("tiny", DataType::Int8, true),
        Field::new("big", DataType::Int64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("pos", point, true).with_metadata(md(&[("xtype", "point")])),
        Field::new(
            "spec",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            true,
        ),
        Field::new("u8", DataType::UInt8, true),
        Field::new("u64", DataType::UInt64, true),
        Field::new("ls", DataType::LargeUtf8, true),
    ]))
}

/// Row `i` of the test data: NULLs in every nullable column at some rows.
fn test_batch(schema: &SchemaRef, start: i32, n: i32) -> RecordBatch {
    let ids: Vec<i32> = (start..start + n).collect();
    let opt = |i: i32, k: i32| i % k != 0;
    let pos = ListArray::from_iter_primitive::<Float64Type, _, _>(
        ids.iter()
            .map(|i| opt(*i, 7).then(|| vec![Some(f64::from(*i)), Some(-f64::from(*i))])),
    );
    let pos = datafusion::arrow::compute::cast(&pos, schema.field(8).data_type()).expect("cast");
    let spec = ListArray::from_iter_primitive::<Int32Type, _, _>(ids.iter().map(|i| {
        opt(*i, 9).then(|| {
            (0..(i % 4))
                .map(|k| if k == 1 { None } else { Some(i * 10 + k) })
                .collect::<Vec<_>>()
        })
    }));
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int32Array::from(ids.clone())),
            Arc::new(Float64Array::from_iter(
                ids.iter()
                    .map(|i| opt(*i, 2).then_some(f64::from(*i) / 3.0)),
            )),
            Arc::new(Float32Array::from_iter(
                ids.iter().map(|i| opt(*i, 3).then_some(*i as f32 * 0.5)),
            )),
            Arc::new(Int16Array::from_iter(
                ids.iter().map(|i| opt(*i, 4).then_some((*i % 1000) as i16)),
            )),
            Arc::new(Int8Array::from_iter(
                ids.iter().map(|i| opt(*i, 5).then_some((*i % 100) as i8)),
            )),
            Arc::new(Int64Array::from_iter(
                ids.iter()
                    .map(|i| opt(*i, 6).then_some(i64::from(*i) << 33)),
            )),
            Arc::new(BooleanArray::from_iter(
                ids.iter().map(|i| opt(*i, 8).then_some(i % 3 == 1)),
            )),
            Arc::new(StringArray::from_iter(ids.iter().map(|i| {
                opt(*i, 10).then(|| match i % 3 {
                    0 => format!("star {i}"),
                    1 => format!("étoile «{i}»"),
                    _ => "O'Brien".to_owned(),
                })
            }))),
            pos,
            Arc::new(spec),
            Arc::new(UInt8Array::from_iter(
                ids.iter().map(|i| opt(*i, 11).then_some((*i % 255) as u8)),
            )),
            Arc::new(UInt64Array::from_iter(
                ids.iter()
                    .map(|i| opt(*i, 12).then_some(u64::MAX - *i as u64)),
            )),
            Arc::new(LargeStringArray::from_iter(
                ids.iter()
                    .map(|i| opt(*i, 13).then(|| "x".repeat((*i % 5) as usize))),
            )),
        ],
    )
    .expect("batch")
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}
fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}
fn be_f64(b: &[u8]) -> f64 {
    f64::from_bits(be_i64(b) as u64)
}
fn be_f32(b: &[u8]) -> f32 {
    f32::from_bits(be_i32(b) as u32)
}

#[test]
fn whole_file_reads_back() {
    let schema = test_schema();
    let batches = [
        test_batch(&schema, 0, 1000),
        // A MAXREC-style slice.
        test_batch(&schema, 1000, 1000).slice(0, 234),
        test_batch(&schema, 1234, 766),
    ];
    let rows = 2000usize;
    let in_memory = encode(&schema, &batches, EndStatus::Overflow, usize::MAX);
    let spilled = encode(&schema, &batches, EndStatus::Overflow, 0);
    assert!(in_memory == spilled, "spilling changes nothing");
    let file = in_memory;
    assert_eq!(file.len() % BLOCK, 0);

    let primary = parse_header(&file, 0);
    assert_eq!(primary.get("SIMPLE"), "T");
    assert_eq!(primary.int("NAXIS"), 0);
    let t = parse_header(&file, primary.data);
    assert_eq!(t.get("XTENSION"), "BINTABLE");
    assert_eq!(t.int("NAXIS2"), rows as i64);
    assert_eq!(t.int("TFIELDS"), 13);
    assert_eq!(t.get("EXTNAME"), "result");
    assert_eq!(t.get("QRYSTAT"), "OVERFLOW");
    assert!(
        t.comments.iter().any(|c| c == "QUERY = SELECT * FROM t"),
        "{:?}",
        t.comments
    );
    let tforms: Vec<&str> = (1..=13).map(|n| t.get(&format!("TFORM{n}"))).collect();
    // name: "étoile «1999»" is 13 characters; ls: at most 4.
    assert_eq!(
        tforms,
        ["1J", "1D", "1E", "1I", "1I", "1K", "1L", "13A", "2D", "1PJ(3)", "1B", "1K", "4A"]
    );
    assert_eq!(t.get("TTYPE2"), "ra");
    assert_eq!(t.get("TUNIT2"), "deg");
    assert_eq!(t.get("TUCD2"), "pos.eq.ra;meta.main");
    assert_eq!(t.get("TUTYP2"), "stc:Position.C1");
    assert_eq!(t.get("TCOMM2"), "Right ascension");
    assert_eq!(t.get("TUCD1"), "meta.id;meta.main");
    assert!(!t.cards.contains_key("TNULL1"), "no NULL, no TNULL");
    assert_eq!(t.int("TNULL4"), i64::from(i16::MIN));
    assert_eq!(t.int("TNULL5"), i64::from(i16::MIN));
    assert_eq!(t.int("TNULL6"), i64::MIN);
    assert_eq!(t.int("TNULL10"), i64::from(i32::MIN));
    // u8 values are 0..=254: 255 is free for the NULL.
    assert_eq!(t.get("TFORM11"), "1B");
    assert_eq!(t.int("TNULL11"), 255);
    assert_eq!(t.get("TZERO12"), "9223372036854775808");

    let naxis1 = t.int("NAXIS1") as usize;
    assert_eq!(naxis1, 4 + 8 + 4 + 2 + 2 + 8 + 1 + 13 + 16 + 8 + 1 + 8 + 4);
    let heap_at = t.data + naxis1 * rows;
    let pcount = t.int("PCOUNT") as usize;
    let heap = &file[heap_at..heap_at + pcount];
    assert_eq!(
        file.len(),
        (t.data + naxis1 * rows + pcount).div_ceil(BLOCK) * BLOCK
    );
    for r in 0..rows {
        let i = r as i32;
        let row = &file[t.data + r * naxis1..t.data + (r + 1) * naxis1];
        assert_eq!(be_i32(&row[0..]), i);
        let ra = be_f64(&row[4..]);
        if i % 2 == 0 {
            assert!(ra.is_nan());
        } else {
            assert_eq!(ra, f64::from(i) / 3.0);
        }
        let mag = be_f32(&row[12..]);
        assert_eq!(mag.is_nan(), i % 3 == 0);
        let n = be_i16(&row[16..]);
        assert_eq!(
            n,
            if i % 4 == 0 {
                i16::MIN
            } else {
                (i % 1000) as i16
            }
        );
        let tiny = be_i16(&row[18..]);
        assert_eq!(
            tiny,
            if i % 5 == 0 {
                i16::MIN
            } else {
                (i % 100) as i16
            }
        );
        let big = be_i64(&row[20..]);
        assert_eq!(
            big,
            if i % 6 == 0 {
                i64::MIN
            } else {
                i64::from(i) << 33
            }
        );
        let flag = row[28];
        assert_eq!(
            flag,
            if i % 8 == 0 {
                0
            } else if i % 3 == 1 {
                b'T'
            } else {
                b'F'
            }
        );
        let name = text(&row[29..42]);
        let name = name.trim_end_matches('\0');
        let want = if i % 10 == 0 {
            String::new()
        } else {
            match i % 3 {
                0 => format!("star {i}"),
                1 => format!("?toile ?{i}?"),
                _ => "O'Brien".to_owned(),
            }
        };
        assert_eq!(name, want);
        let (x, y) = (be_f64(&row[42..]), be_f64(&row[50..]));
        if i % 7 == 0 {
            assert!(x.is_nan() && y.is_nan());
        } else {
            assert_eq!((x, y), (f64::from(i), -f64::from(i)));
        }
        let (count, offset) = (be_i32(&row[58..]) as usize, be_i32(&row[62..]) as usize);
        let want: Vec<i32> = if i % 9 == 0 {
            vec![]
        } else {
            (0..i % 4)
                .map(|k| if k == 1 { i32::MIN } else { i * 10 + k })
                .collect()
        };
        let got: Vec<i32> = (0..count)
            .map(|k| be_i32(&heap[offset + 4 * k..]))
            .collect();
        assert_eq!(got, want, "row {r}");
        assert_eq!(row[66], if i % 11 == 0 { 255 } else { (i % 255) as u8 });
        let u = be_i64(&row[67..]);
        if i % 12 == 0 {
            assert_eq!(
                Some(u),
                t.cards.get("TNULL12").map(|v| v.parse().expect("int"))
            );
        } else {
            assert_eq!((u as u64) ^ (1 << 63), u64::MAX - i as u64);
        }
        let ls = text(&row[75..79]);
        let want = if i % 13 == 0 {
            String::new()
        } else {
            "x".repeat((i % 5) as usize)
        };
        assert_eq!(ls.trim_end_matches('\0'), want);
    }
    assert!(file[heap_at + pcount..].iter().all(|b| *b == 0));
}

#[test]
fn full_range_integers_with_nulls_are_widened() {
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("v", DataType::Int16, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int16Array::from(vec![
            Some(i16::MIN),
            None,
            Some(i16::MAX),
        ]))],
    )
    .expect("batch");
    let file = encode(&schema, &[batch], EndStatus::Ok, usize::MAX);
    let t = parse_header(&file, BLOCK);
    assert_eq!(t.get("TFORM1"), "1J");
    assert_eq!(t.int("TNULL1"), i64::from(i32::MIN));
    assert_eq!(t.get("QRYSTAT"), "OK");
    let d = &file[t.data..];
    assert_eq!(
        [be_i32(d), be_i32(&d[4..]), be_i32(&d[8..])],
        [i32::from(i16::MIN), i32::MIN, i32::from(i16::MAX)]
    );
}

#[test]
fn empty_result_is_a_valid_file() {
    let schema = test_schema();
    let file = encode(&schema, &[], EndStatus::Ok, usize::MAX);
    let t = parse_header(&file, BLOCK);
    // Two header blocks (13 columns take more than 36 cards), no data.
    assert_eq!(file.len(), 3 * BLOCK);
    assert_eq!(t.int("NAXIS2"), 0);
    assert_eq!(t.int("PCOUNT"), 0);
    assert_eq!(t.get("TFORM8"), "1A");
    assert_eq!(t.get("TFORM10"), "1PJ(0)");
    assert_eq!(t.data, file.len());
}

#[test]
fn a_failure_gives_no_file() {
    let schema = test_schema();
    let mut e = FitsEncoder::new(&schema, &[], None).expect("encoder");
    e.write(&test_batch(&schema, 0, 10)).expect("write");
    let file = e.finish(&EndStatus::Error("boom: it's broken".into()));
    assert_eq!(e.next_chunk(), None);
    assert_eq!(file.len(), BLOCK);
    let h = parse_header(&file, 0);
    assert_eq!(h.get("QRYSTAT"), "ERROR");
    assert_eq!(h.int("NAXIS"), 0);
    assert!(!h.cards.contains_key("EXTEND"));
    assert_eq!(h.comments, ["boom: it's broken"]);
    assert!(e.write(&test_batch(&schema, 0, 10)).is_err());
}

#[test]
fn unsupported_types_are_refused_up_front() {
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new(
        "s",
        DataType::Struct(vec![Field::new("a", DataType::Int32, true)].into()),
        true,
    )]));
    let err = FitsEncoder::new(&schema, &[], None).err().expect("refused");
    assert!(err.contains("\"s\""), "{err}");
    let empty: SchemaRef = Arc::new(Schema::empty());
    assert!(FitsEncoder::new(&empty, &[], None).is_err());
}

#[test]
fn fixed_size_lists_keep_their_slices() {
    // A FixedSizeList sliced mid-way (as a MAXREC cut does) reads its own rows.
    let schema = test_schema();
    let b = test_batch(&schema, 0, 50).slice(20, 5);
    let file = encode(&schema, &[b], EndStatus::Ok, usize::MAX);
    let t = parse_header(&file, BLOCK);
    let naxis1 = t.int("NAXIS1") as usize;
    // "étoile «22»" is the longest name of rows 20..25.
    assert_eq!(t.get("TFORM8"), "11A");
    for r in 0..5 {
        let row = &file[t.data + r * naxis1..];
        let i = 20 + r as i32;
        assert_eq!(be_i32(row), i);
        let (x, y) = (be_f64(&row[40..]), be_f64(&row[48..]));
        if i % 7 == 0 {
            assert!(x.is_nan() && y.is_nan());
        } else {
            assert_eq!((x, y), (f64::from(i), -f64::from(i)));
        }
    }
}
