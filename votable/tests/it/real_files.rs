//! The reader on real VOTables written by other services and libraries (shared/data/votables).

use std::path::PathBuf;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int32Type, Int64Type, UInt8Type,
};

/// The shared data folder beside the repository, found at run time (VOSTOK_SHARED, else
/// ../shared from the crate): a compile-time path would point into whichever checkout built
/// this test binary first, since checkouts share one target folder.
fn shared_dir() -> PathBuf {
    if let Some(s) = std::env::var_os("VOSTOK_SHARED") {
        return PathBuf::from(s);
    }
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    crate_dir.join("../../shared")
}

fn data(rel: &str) -> PathBuf {
    shared_dir().join("data/votables").join(rel)
}

fn read(rel: &str) -> RecordBatch {
    let bytes = std::fs::read(data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let (schema, batches) = votable::read(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
    concat_batches(&schema, &batches).expect("concat")
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a dyn Array {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_ref()
}

fn meta<'a>(b: &'a RecordBatch, name: &str, key: &str) -> Option<&'a str> {
    let schema = b.schema_ref();
    let (_, f) = schema.column_with_name(name)?;
    f.metadata().get(key).map(String::as_str)
}

#[test]
fn starlink_tabledata() {
    let b = read("starlink/tgasmini.vot");
    assert_eq!((b.num_rows(), b.num_columns()), (4, 11));
    let ra = col(&b, "ra").as_primitive::<Float64Type>();
    assert_eq!(ra.value(0), 315.101337919417);
    assert_eq!(ra.value(3), 315.261345769788);
    assert_eq!(
        col(&b, "ref_epoch").as_primitive::<Float64Type>().value(1),
        2015.0
    );
    assert_eq!(meta(&b, "ra", "ucd"), Some("pos.eq.ra;meta.main"));
    assert_eq!(meta(&b, "ra", "unit"), Some("deg"));
    assert_eq!(
        meta(&b, "ra", "description"),
        Some("Barycentric Right Ascension in ICRS at ref_epoch")
    );
}

#[test]
fn gaia_binary2_with_null_flags() {
    let b = read("astropy/binary2_masked_strings.xml");
    assert_eq!(b.num_rows(), 3);
    assert_eq!(
        col(&b, "source_id").as_primitive::<Int64Type>().value(0),
        5_966_029_325_870_896_512
    );
    assert_eq!(
        col(&b, "ra").as_primitive::<Float64Type>().value(1),
        257.239372393368
    );
    assert_eq!(col(&b, "a_g_val").null_count(), 3);
    let url = col(&b, "datalink_url").as_string::<i32>();
    assert_eq!(
        url.value(2),
        "http://geadata.esac.esa.int/data-server/datalink/links?ID=5966018231972730624"
    );
    assert_eq!(col(&b, "epoch_photometry_url").null_count(), 3);
}

#[test]
fn vizier_binary2_fixed_width_strings() {
    let b = read("astropy/vizier_b2_votable.xml");
    assert_eq!(b.num_rows(), 20);
    assert_eq!(col(&b, "n_PNG").as_string::<i32>().value(0), "T");
    assert!(col(&b, "Name")
        .as_string::<i32>()
        .value(0)
        .starts_with("PHR0615-0025"));
    assert_eq!(
        col(&b, "ObsDate").as_primitive::<Int32Type>().value(0),
        2_453_377
    );
    assert_eq!(
        col(&b, "RAJ2000").as_primitive::<Float64Type>().value(0),
        93.835
    );
    assert_eq!(meta(&b, "PNG", "arraysize"), Some("12"));
}

#[test]
fn dachs_binary_v1() {
    let b = read("pyvo/dal/tests/data/scs/result.xml");
    assert_eq!(b.num_rows(), 1273);
    assert_eq!(
        col(&b, "raj2000").as_primitive::<Float64Type>().value(0),
        77.6581
    );
    assert_eq!(
        col(&b, "detection_time")
            .as_primitive::<Float64Type>()
            .value(0),
        1990.65777659664
    );
    assert_eq!(
        col(&b, "energy_cor").as_primitive::<Float32Type>().value(0),
        0.15
    );
    assert_eq!(
        col(&b, "id").as_string::<i32>().value(0),
        "1522124650242182041"
    );
}

#[test]
fn astropy_regression_types() {
    let b = read("astropy/regression.bin.tabledata.truth.1.3.xml");
    assert_eq!(b.num_rows(), 5);
    assert_eq!(
        col(&b, "unicode_test").as_string::<i32>().value(0),
        "Ceçi n'est pas un pipe"
    );
    assert_eq!(
        col(&b, "unsignedByte").as_primitive::<UInt8Type>().value(0),
        128
    );
    assert!(matches!(
        col(&b, "doubleComplex").data_type(),
        DataType::FixedSizeList(_, 2)
    ));
    assert!(matches!(
        col(&b, "bitarray").data_type(),
        DataType::FixedSizeList(_, 6)
    ));
    assert!(matches!(
        col(&b, "doublearray").data_type(),
        DataType::List(_)
    ));
    assert_eq!(
        col(&b, "long").as_primitive::<Int64Type>().value(0),
        922_337_203_685_477
    );
}

#[test]
fn many_real_files_parse() {
    for (rel, rows) in [
        ("starlink/gaiats.vot", 7),
        ("starlink/caom1.vot", 6),
        ("astropy/gaia_source_dr3_select_1_result.vot", 1),
        ("astropy/empty_table.xml", 0),
        ("astropy/irsa-nph-m31.xml", 0),
        ("pyvo/dal/tests/data/ssa/result.xml", 36),
        ("obscore/esa_hst_ehst_cone_search.vot", 317),
        ("astroquery/gaia/tests/data/1710099405832VAL-result.vot", 2),
        ("astroquery/ipac/ned/tests/data/query_photometry.xml", 556),
        (
            "astroquery/esa/euclid/tests/data/test_get_product_list.vot",
            4,
        ),
    ] {
        let b = read(rel);
        if rows > 0 {
            assert_eq!(b.num_rows(), rows, "{rel}");
        }
    }
}

#[test]
fn unsupported_and_invalid_inputs_are_errors() {
    for rel in ["astropy/parquet_binary.xml", "astropy/custom_datatype.xml"] {
        let bytes = std::fs::read(data(rel)).expect("file");
        assert!(votable::read(&bytes).is_err(), "{rel}");
    }
    assert!(votable::read(b"not xml at all").is_err());
    assert!(votable::read(b"<VOTABLE><RESOURCE/></VOTABLE>").is_err());
    assert!(votable::read(b"<VOTABLE><RESOURCE><TABLE><FIELD name='a' datatype='short'/><DATA><TABLEDATA><TR><TD>70000</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>").is_err());
    // Unparseable numbers are nulls (as in STILTS).
    let (_, b) = votable::read(b"<VOTABLE><RESOURCE><TABLE><FIELD name='a' datatype='int'/><DATA><TABLEDATA><TR><TD>x</TD></TR><TR><TD>2</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>").expect("lenient");
    assert!(b[0].column(0).is_null(0));
    assert!(b[0].column(0).is_valid(1));
    // Truncated binary stream.
    assert!(votable::read(b"<VOTABLE><RESOURCE><TABLE><FIELD name='a' datatype='long'/><DATA><BINARY2><STREAM encoding='base64'>AAAA</STREAM></BINARY2></DATA></TABLE></RESOURCE></VOTABLE>").is_err());
}

#[test]
fn namespaced_latin1_and_entities() {
    let doc = b"<?xml version='1.0' encoding='ISO-8859-1'?>\n<vot:VOTABLE xmlns:vot='http://www.ivoa.net/xml/VOTable/v1.3'><vot:RESOURCE><vot:TABLE>\
<vot:FIELD name='s' datatype='char' arraysize='*'><vot:DESCRIPTION>caf\xe9</vot:DESCRIPTION></vot:FIELD>\
<vot:FIELD name='n' datatype='int'><vot:VALUES null='-1'/></vot:FIELD>\
<vot:DATA><vot:TABLEDATA><vot:TR><vot:TD>a&amp;b&#x3C;&#65;<![CDATA[<c>]]></vot:TD><vot:TD>-1</vot:TD></vot:TR>\
<vot:TR><vot:TD/><vot:TD> 0x10 </vot:TD></vot:TR><vot:TR><vot:TD>only one</vot:TD></vot:TR></vot:TABLEDATA></vot:DATA></vot:TABLE></vot:RESOURCE></vot:VOTABLE>";
    let (schema, batches) = votable::read(doc).expect("read");
    assert_eq!(
        schema
            .field(0)
            .metadata()
            .get("description")
            .map(String::as_str),
        Some("café")
    );
    let b = &batches[0];
    let s = b.column(0).as_string::<i32>();
    assert_eq!(s.value(0), "a&b<A<c>");
    assert!(s.is_null(1));
    let n = b.column(1).as_primitive::<Int32Type>();
    assert!(n.is_null(0));
    assert_eq!(n.value(1), 16);
    assert!(n.is_null(2));
}
