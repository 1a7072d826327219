//! The commonly used ADQL user-defined functions as DataFusion UDFs and UDAFs.
//!
//! Names, signatures and semantics follow the IVOA *Catalogue of ADQL User Defined Functions*
//! (EN 1.2, which takes the text functions over from RegTAP) and, where it is silent, DaCHS
//! (whose epoch propagation is pgSphere's `epoch_prop`).
//!
//! | function | result |
//! |---|---|
//! | `ivo_hasword(haystack, needle)` | 1 when every word of `needle` is a word of `haystack` (case-insensitive; words are runs of letters and digits; no stemming), else 0 |
//! | `ivo_nocasematch(value, pattern)` | 1 when `value ILIKE pattern`, else 0 |
//! | `ivo_healpix_index(order, ra, dec)`, `ivo_healpix_index(order, point)` | NESTED HEALPix index at `order` (0..=29) |
//! | `ivo_healpix_center(order, index)` | centre of a NESTED HEALPix cell, a POINT |
//! | `ivo_epoch_prop(ra, dec, parallax, pmra, pmdec, radial_velocity, ref_epoch, out_epoch)` | the six astrometric parameters at `out_epoch`, `DOUBLE[6]` |
//! | `ivo_epoch_prop_pos(…same…)` | the position at `out_epoch`, a POINT |
//! | `ivo_histogram(val, lower, upper, nbins)` (alias `gavo_histogram`) | aggregate: counts in `nbins + 2` bins |
//! | `ivo_string_agg(expr, delimiter)` | aggregate: the non-NULL values joined by `delimiter` |
//!
//! # NULLs
//! * `ivo_hasword` and `ivo_nocasematch` return 0 when an argument is NULL (as RegTAP's
//!   reference implementation does); they never return NULL.
//! * The HEALPix functions return NULL when an argument is NULL (or a coordinate is not
//!   finite). An order outside 0..=29, an index outside the order's range or a latitude outside
//!   [-90, 90] is an execution error.
//! * Epoch propagation: a NULL (or non-finite) parallax, proper motion or radial velocity is
//!   taken as 0 in the computation, as the UDF catalogue prescribes ("infinitely remote" for the
//!   parallax, which like pgSphere we replace by 1e-4 mas). In `ivo_epoch_prop`'s output, as in
//!   pgSphere and the UDF catalogue's draft rules, an item NULL on input is NULL on output, both
//!   proper motions are NULL when either is, and when the parallax is NULL or below 1e-4 mas the
//!   radial velocity is passed through unchanged. A NULL position or epoch gives a NULL result
//!   (the UDF catalogue says "an error"; a columnar engine evaluates a function on rows that a
//!   `WHERE` clause will drop, so NULL is the only usable choice).
//! * `ivo_histogram`: a NULL or NaN value counts as an underflow (UDF catalogue); NULL bounds or
//!   bin counts, or bounds that vary within a group, are errors; an empty group gives NULL.
//! * `ivo_string_agg`: NULL values are skipped; an empty group gives `''` (RegTAP 1.2).

use std::collections::HashMap;
use std::f64::consts::{FRAC_PI_2, PI};
use std::sync::Arc;

use cdshealpix::nested;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListBuilder, Float64Array, Float64Builder,
    Int32Array, Int64Array, Int64Builder, LargeStringArray, ListArray, ListBuilder, Scalar,
    StringArray, StringViewArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::comparison::ilike;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::geom::geometry_type;

/// The TAPRegExt `<form>` of each function and a one-sentence description, for
/// `languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-udf"`.
pub const DECLARATIONS: &[(&str, &str)] = &[
    (
        "ivo_hasword(haystack VARCHAR(*), needle VARCHAR(*)) -> INTEGER",
        "Returns 1 if every word of needle occurs as a whole word in haystack, compared \
         case-insensitively (words are runs of letters and digits; no stemming), 0 otherwise.",
    ),
    (
        "ivo_nocasematch(value VARCHAR(*), pattern VARCHAR(*)) -> INTEGER",
        "Returns 1 if value matches the SQL LIKE pattern compared case-insensitively \
         (value ILIKE pattern), 0 otherwise.",
    ),
    (
        "ivo_healpix_index(order INTEGER, ra DOUBLE, dec DOUBLE) -> BIGINT",
        "Returns the NESTED HEALPix index at order 0..29 of the cell containing the position \
         (ra, dec) in degrees.",
    ),
    (
        "ivo_healpix_index(order INTEGER, p POINT) -> BIGINT",
        "Returns the NESTED HEALPix index at order 0..29 of the cell containing the POINT p.",
    ),
    (
        "ivo_healpix_center(order INTEGER, hpx_index BIGINT) -> POINT",
        "Returns the centre of the NESTED HEALPix cell hpx_index at order 0..29 as a POINT.",
    ),
    (
        "ivo_epoch_prop(ra DOUBLE, dec DOUBLE, parallax DOUBLE, pmra DOUBLE, pmdec DOUBLE, \
         radial_velocity DOUBLE, ref_epoch DOUBLE, out_epoch DOUBLE) -> DOUBLE[6]",
        "Propagates an astrometric solution (deg, deg, mas, mas/yr with cos(dec) applied, mas/yr, \
         km/s) from ref_epoch to out_epoch (Julian years) with the rigorous treatment of ESA \
         SP-1200 vol. 1 sect. 1.5.5 and returns ra, dec, parallax, pmra, pmdec, radial_velocity \
         at out_epoch (NULL parallax, proper motion or radial velocity are taken as 0 and NULL \
         on output).",
    ),
    (
        "ivo_epoch_prop_pos(ra DOUBLE, dec DOUBLE, parallax DOUBLE, pmra DOUBLE, pmdec DOUBLE, \
         radial_velocity DOUBLE, ref_epoch DOUBLE, out_epoch DOUBLE) -> POINT",
        "Returns the position at out_epoch of an object with the given astrometric parameters at \
         ref_epoch, as a POINT (rigorous epoch propagation; NULL parallax, proper motion or \
         radial velocity are taken as 0).",
    ),
    (
        "ivo_histogram(val DOUBLE, lower DOUBLE, upper DOUBLE, nbins INTEGER) -> BIGINT[]",
        "Aggregate returning nbins+2 counts: element 0 counts values below lower (and NULLs), \
         elements 1..nbins the values in nbins equal bins [lower + (k-1)w, lower + kw) with \
         w = (upper-lower)/nbins, element nbins+1 the values at or above upper.",
    ),
    (
        "gavo_histogram(val DOUBLE, lower DOUBLE, upper DOUBLE, nbins INTEGER) -> BIGINT[]",
        "The same aggregate as ivo_histogram, under its DaCHS name.",
    ),
    (
        "ivo_string_agg(expr VARCHAR(*), delimiter VARCHAR(*)) -> VARCHAR(*)",
        "Aggregate returning the non-NULL values of expr in a group joined by delimiter \
         (an empty string for a group without values).",
    ),
];

/// The scalar UDFs: ivo_hasword, ivo_nocasematch, ivo_healpix_index, ivo_healpix_center,
/// ivo_epoch_prop, ivo_epoch_prop_pos.
pub fn scalar_udfs() -> Vec<ScalarUDF> {
    Func::ALL
        .iter()
        .map(|f| ScalarUDF::new_from_impl(IvoUdf::new(*f)))
        .collect()
}

/// The aggregate UDFs: ivo_histogram (alias gavo_histogram) and ivo_string_agg.
pub fn aggregate_udfs() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::new_from_impl(Histogram::new()),
        AggregateUDF::new_from_impl(StringAgg::new()),
    ]
}

// ---------------------------------------------------------------------------------------------
// argument types

/// Which scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Func {
    HasWord,
    NoCaseMatch,
    HealpixIndex,
    HealpixCenter,
    EpochProp,
    EpochPropPos,
}

impl Func {
    const ALL: [Func; 6] = [
        Func::HasWord,
        Func::NoCaseMatch,
        Func::HealpixIndex,
        Func::HealpixCenter,
        Func::EpochProp,
        Func::EpochPropPos,
    ];

    fn name(self) -> &'static str {
        match self {
            Func::HasWord => "ivo_hasword",
            Func::NoCaseMatch => "ivo_nocasematch",
            Func::HealpixIndex => "ivo_healpix_index",
            Func::HealpixCenter => "ivo_healpix_center",
            Func::EpochProp => "ivo_epoch_prop",
            Func::EpochPropPos => "ivo_epoch_prop_pos",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Func::HasWord => "ivo_hasword(haystack VARCHAR, needle VARCHAR) -> INTEGER",
            Func::NoCaseMatch => "ivo_nocasematch(value VARCHAR, pattern VARCHAR) -> INTEGER",
            Func::HealpixIndex => {
                "ivo_healpix_index(order INTEGER, ra DOUBLE, dec DOUBLE) -> BIGINT or \
                 ivo_healpix_index(order INTEGER, p POINT) -> BIGINT"
            }
            Func::HealpixCenter => {
                "ivo_healpix_center(order INTEGER, hpx_index BIGINT) -> POINT"
            }
            Func::EpochProp => {
                "ivo_epoch_prop(ra DOUBLE, dec DOUBLE, parallax DOUBLE, pmra DOUBLE, \
                 pmdec DOUBLE, radial_velocity DOUBLE, ref_epoch DOUBLE, out_epoch DOUBLE) \
                 -> DOUBLE[6]"
            }
            Func::EpochPropPos => {
                "ivo_epoch_prop_pos(ra DOUBLE, dec DOUBLE, parallax DOUBLE, pmra DOUBLE, \
                 pmdec DOUBLE, radial_velocity DOUBLE, ref_epoch DOUBLE, out_epoch DOUBLE) \
                 -> POINT"
            }
        }
    }

    fn return_type(self) -> DataType {
        match self {
            Func::HasWord | Func::NoCaseMatch => DataType::Int32,
            Func::HealpixIndex => DataType::Int64,
            Func::HealpixCenter | Func::EpochPropPos => geometry_type(),
            Func::EpochProp => epoch_prop_type(),
        }
    }
}

/// `DOUBLE[6]`: a fixed-size list of nullable doubles.
fn epoch_prop_type() -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Float64, true)), 6)
}

/// The role of an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// a string
    Str,
    /// a number (coerced to Float64)
    Num,
    /// an integer (coerced to Int64)
    Int,
    /// a POINT (a list of numbers)
    Point,
}

impl Slot {
    fn what(self) -> &'static str {
        match self {
            Slot::Str => "a string",
            Slot::Num => "a number",
            Slot::Int => "an integer",
            Slot::Point => "a POINT",
        }
    }

    fn accepts(self, dt: &DataType) -> bool {
        if dt == &DataType::Null {
            return true;
        }
        match self {
            Slot::Str => string_value_type(dt).is_some(),
            Slot::Num => dt.is_numeric(),
            Slot::Int => dt.is_integer(),
            Slot::Point => is_number_list(dt),
        }
    }
}

/// The string type of a string (or dictionary-of-string) type.
fn string_value_type(dt: &DataType) -> Option<DataType> {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(dt.clone()),
        DataType::Dictionary(_, v) => string_value_type(v),
        _ => None,
    }
}

fn is_number_list(dt: &DataType) -> bool {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().is_numeric() || f.data_type() == &DataType::Null
        }
        _ => false,
    }
}

/// One string type for all string arguments, so that they can be compared without copies:
/// Utf8View if any is, else LargeUtf8 if any is, else Utf8.
fn common_string_type(types: &[DataType]) -> DataType {
    let vals: Vec<DataType> = types.iter().filter_map(string_value_type).collect();
    if vals.contains(&DataType::Utf8View) {
        DataType::Utf8View
    } else if vals.contains(&DataType::LargeUtf8) {
        DataType::LargeUtf8
    } else {
        DataType::Utf8
    }
}

/// Checks the arguments against the slots; the error names the function and its usage.
fn check_slots(
    name: &str,
    usage: &str,
    slots: &[Slot],
    types: &[DataType],
) -> std::result::Result<(), String> {
    if slots.len() != types.len() {
        return Err(format!(
            "{name} takes {} arguments, not {} (usage: {usage})",
            slots.len(),
            types.len()
        ));
    }
    for (i, (slot, t)) in slots.iter().zip(types).enumerate() {
        if !slot.accepts(t) {
            return Err(format!(
                "{name}: argument {} must be {}, not {t} (usage: {usage})",
                i + 1,
                slot.what()
            ));
        }
    }
    Ok(())
}

/// The types the arguments are coerced to, given the slots.
fn coerced(slots: &[Slot], types: &[DataType]) -> Vec<DataType> {
    let string = common_string_type(types);
    slots
        .iter()
        .zip(types)
        .map(|(slot, t)| match slot {
            Slot::Str => string.clone(),
            Slot::Num => DataType::Float64,
            Slot::Int => DataType::Int64,
            Slot::Point => match t {
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
                    if f.data_type() == &DataType::Float64 =>
                {
                    t.clone()
                }
                _ => geometry_type(),
            },
        })
        .collect()
}

/// The slots of a call, or an error naming the function and its usage.
fn layout(func: Func, types: &[DataType]) -> std::result::Result<Vec<Slot>, String> {
    use Slot::*;
    let slots = match (func, types.len()) {
        (Func::HasWord | Func::NoCaseMatch, _) => vec![Str, Str],
        (Func::HealpixIndex, 2) => vec![Int, Point],
        (Func::HealpixIndex, 3) => vec![Int, Num, Num],
        (Func::HealpixIndex, n) => {
            return Err(format!(
                "{} takes 2 or 3 arguments, not {n} (usage: {})",
                func.name(),
                func.usage()
            ))
        }
        (Func::HealpixCenter, _) => vec![Int, Int],
        (Func::EpochProp | Func::EpochPropPos, _) => vec![Num; 8],
    };
    check_slots(func.name(), func.usage(), &slots, types)?;
    Ok(slots)
}

// ---------------------------------------------------------------------------------------------
// argument readers

fn exec(msg: String) -> DataFusionError {
    DataFusionError::Execution(msg)
}

/// The arguments as arrays, each with whether it is a broadcast scalar.
fn columns(args: &[ColumnarValue]) -> Result<Vec<(ArrayRef, bool)>> {
    args.iter()
        .map(|a| match a {
            ColumnarValue::Array(arr) => Ok((arr.clone(), false)),
            ColumnarValue::Scalar(s) => Ok((s.to_array_of_size(1)?, true)),
        })
        .collect()
}

#[inline]
fn row(scalar: bool, i: usize) -> usize {
    if scalar {
        0
    } else {
        i
    }
}

/// Float64 argument reader.
struct F64s {
    arr: Float64Array,
    scalar: bool,
}

impl F64s {
    fn new((a, scalar): &(ArrayRef, bool)) -> Result<F64s> {
        let a = if a.data_type() == &DataType::Float64 {
            a.clone()
        } else {
            cast(a, &DataType::Float64)?
        };
        Ok(F64s {
            arr: a.as_primitive::<Float64Type>().clone(),
            scalar: *scalar,
        })
    }

    #[inline]
    fn get(&self, i: usize) -> Option<f64> {
        let j = row(self.scalar, i);
        (!self.arr.is_null(j)).then(|| self.arr.value(j))
    }
}

/// Int64 argument reader.
struct I64s {
    arr: Int64Array,
    scalar: bool,
}

impl I64s {
    fn new((a, scalar): &(ArrayRef, bool)) -> Result<I64s> {
        let a = if a.data_type() == &DataType::Int64 {
            a.clone()
        } else {
            cast(a, &DataType::Int64)?
        };
        Ok(I64s {
            arr: a.as_primitive::<Int64Type>().clone(),
            scalar: *scalar,
        })
    }

    #[inline]
    fn get(&self, i: usize) -> Option<i64> {
        let j = row(self.scalar, i);
        (!self.arr.is_null(j)).then(|| self.arr.value(j))
    }
}

enum StrCol {
    Utf8(StringArray),
    Large(LargeStringArray),
    View(StringViewArray),
}

/// String argument reader over any string array.
struct Strs {
    col: StrCol,
    scalar: bool,
}

impl Strs {
    fn new((a, scalar): &(ArrayRef, bool)) -> Result<Strs> {
        let col = match a.data_type() {
            DataType::Utf8 => StrCol::Utf8(a.as_string::<i32>().clone()),
            DataType::LargeUtf8 => StrCol::Large(a.as_string::<i64>().clone()),
            DataType::Utf8View => StrCol::View(a.as_string_view().clone()),
            _ => StrCol::Utf8(cast(a, &DataType::Utf8)?.as_string::<i32>().clone()),
        };
        Ok(Strs {
            col,
            scalar: *scalar,
        })
    }

    #[inline]
    fn get(&self, i: usize) -> Option<&str> {
        let j = row(self.scalar, i);
        match &self.col {
            StrCol::Utf8(a) => (!a.is_null(j)).then(|| a.value(j)),
            StrCol::Large(a) => (!a.is_null(j)).then(|| a.value(j)),
            StrCol::View(a) => (!a.is_null(j)).then(|| a.value(j)),
        }
    }
}

/// POINT argument reader (any list of numbers, read as `List<Float64>`).
struct Points {
    list: ListArray,
    values: Float64Array,
    scalar: bool,
}

impl Points {
    fn new((a, scalar): &(ArrayRef, bool)) -> Result<Points> {
        let a = match a.data_type() {
            DataType::List(f) if f.data_type() == &DataType::Float64 => a.clone(),
            _ => cast(
                a,
                &DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            )?,
        };
        let list = a.as_list::<i32>().clone();
        let values = list.values().as_primitive::<Float64Type>().clone();
        Ok(Points {
            list,
            values,
            scalar: *scalar,
        })
    }

    /// Row `i` as `(lon, lat)`; `None` when NULL; an error when it is not a POINT.
    fn get(&self, name: &str, i: usize) -> Result<Option<(f64, f64)>> {
        let j = row(self.scalar, i);
        if self.list.is_null(j) {
            return Ok(None);
        }
        let o = self.list.value_offsets();
        let (start, end) = (o[j] as usize, o[j + 1] as usize);
        if end - start != 2 {
            return Err(exec(format!(
                "{name} expects a POINT, not a geometry of {} values",
                end - start
            )));
        }
        if self.values.is_null(start) || self.values.is_null(start + 1) {
            return Ok(None);
        }
        Ok(Some((self.values.value(start), self.values.value(start + 1))))
    }
}

fn point_builder(capacity: usize) -> ListBuilder<Float64Builder> {
    ListBuilder::with_capacity(Float64Builder::with_capacity(capacity * 2), capacity)
        .with_field(Arc::new(Field::new_list_field(DataType::Float64, false)))
}

/// A longitude in degrees reduced to [0, 360).
fn norm_lon(lon: f64) -> f64 {
    let l = lon.rem_euclid(360.0);
    if l >= 360.0 {
        0.0
    } else {
        l
    }
}

// ---------------------------------------------------------------------------------------------
// text

/// The words of a text: maximal runs of letters and digits.
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The lower-cased words of a needle.
fn needle_words(needle: &str) -> Vec<String> {
    words(needle)
        .map(|w| w.chars().flat_map(char::to_lowercase).collect())
        .collect()
}

/// Whether `word` lower-cased equals `folded` (already lower-cased).
#[inline]
fn eq_folded(word: &str, folded: &str) -> bool {
    if word.is_ascii() && folded.is_ascii() {
        word.eq_ignore_ascii_case(folded)
    } else {
        word.chars().flat_map(char::to_lowercase).eq(folded.chars())
    }
}

/// `ivo_hasword`: every needle word is a word of the haystack (and there is one).
fn has_words(haystack: &str, needles: &[String]) -> bool {
    !needles.is_empty()
        && needles
            .iter()
            .all(|n| words(haystack).any(|w| eq_folded(w, n)))
}

fn eval_hasword(cols: &[(ArrayRef, bool)], rows: usize) -> Result<ArrayRef> {
    let hay = Strs::new(&cols[0])?;
    let needle = Strs::new(&cols[1])?;
    let fixed = if cols[1].1 {
        Some(needle.get(0).map(needle_words))
    } else {
        None
    };
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        let owned;
        let needles = match &fixed {
            Some(n) => n.as_deref(),
            None => {
                owned = needle.get(i).map(needle_words);
                owned.as_deref()
            }
        };
        let v = match (hay.get(i), needles) {
            (Some(h), Some(n)) => has_words(h, n),
            _ => false,
        };
        out.push(i32::from(v));
    }
    Ok(Arc::new(Int32Array::from(out)))
}

fn eval_nocasematch(cols: &[(ArrayRef, bool)], rows: usize) -> Result<ArrayRef> {
    // Both arguments have the same (string) type after coercion.
    let m: BooleanArray = match (cols[0].1, cols[1].1) {
        (true, true) => ilike(&cols[0].0, &cols[1].0)?,
        (false, true) => ilike(&cols[0].0, &Scalar::new(cols[1].0.clone()))?,
        (true, false) => ilike(&Scalar::new(cols[0].0.clone()), &cols[1].0)?,
        (false, false) => ilike(&cols[0].0, &cols[1].0)?,
    };
    if m.len() != rows {
        return Err(exec(format!(
            "ivo_nocasematch: internal error: {} results for {rows} rows",
            m.len()
        )));
    }
    let out: Int32Array = (0..rows)
        .map(|i| Some(i32::from(m.is_valid(i) && m.value(i))))
        .collect();
    Ok(Arc::new(out))
}

// ---------------------------------------------------------------------------------------------
// HEALPix

/// The HEALPix order as a depth, or an error.
fn depth(name: &str, order: i64) -> Result<u8> {
    match u8::try_from(order) {
        Ok(d) if d <= 29 => Ok(d),
        _ => Err(exec(format!(
            "{name}: HEALPix order {order} is out of range (0 to 29)"
        ))),
    }
}

/// The NESTED index of a position in degrees; `None` for non-finite coordinates.
fn healpix_index(name: &str, order: i64, lon: f64, lat: f64) -> Result<Option<i64>> {
    let d = depth(name, order)?;
    if !lon.is_finite() || !lat.is_finite() {
        return Ok(None);
    }
    if !(-90.0..=90.0).contains(&lat) {
        return Err(exec(format!(
            "{name}: latitude {lat} is outside [-90, 90]"
        )));
    }
    let lon = norm_lon(lon).to_radians();
    let lat = lat.to_radians().clamp(-FRAC_PI_2, FRAC_PI_2);
    let h = nested::hash(d, lon, lat);
    i64::try_from(h)
        .map(Some)
        .map_err(|_| exec(format!("{name}: HEALPix index {h} out of range")))
}

fn eval_healpix_index(cols: &[(ArrayRef, bool)], rows: usize) -> Result<ArrayRef> {
    let name = Func::HealpixIndex.name();
    let order = I64s::new(&cols[0])?;
    let mut b = Int64Builder::with_capacity(rows);
    if cols.len() == 2 {
        let p = Points::new(&cols[1])?;
        for i in 0..rows {
            match (order.get(i), p.get(name, i)?) {
                (Some(o), Some((lon, lat))) => b.append_option(healpix_index(name, o, lon, lat)?),
                _ => b.append_null(),
            }
        }
    } else {
        let ra = F64s::new(&cols[1])?;
        let dec = F64s::new(&cols[2])?;
        for i in 0..rows {
            match (order.get(i), ra.get(i), dec.get(i)) {
                (Some(o), Some(lon), Some(lat)) => {
                    b.append_option(healpix_index(name, o, lon, lat)?)
                }
                _ => b.append_null(),
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

fn eval_healpix_center(cols: &[(ArrayRef, bool)], rows: usize) -> Result<ArrayRef> {
    let name = Func::HealpixCenter.name();
    let order = I64s::new(&cols[0])?;
    let index = I64s::new(&cols[1])?;
    let mut b = point_builder(rows);
    for i in 0..rows {
        match (order.get(i), index.get(i)) {
            (Some(o), Some(h)) => {
                let d = depth(name, o)?;
                let n = nested::n_hash(d);
                let h = u64::try_from(h)
                    .ok()
                    .filter(|h| *h < n)
                    .ok_or_else(|| {
                        exec(format!(
                            "{name}: HEALPix index {h} is out of range for order {o} \
                             (0 to {})",
                            n - 1
                        ))
                    })?;
                let (lon, lat) = nested::center(d, h);
                b.values()
                    .append_slice(&[norm_lon(lon.to_degrees()), lat.to_degrees()]);
                b.append(true);
            }
            _ => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

// ---------------------------------------------------------------------------------------------
// epoch propagation

/// The astronomical unit in km (IAU 2012 Resolution B2).
const AU_KM: f64 = 149_597_870.7;
/// The Julian year in s.
const JULIAN_YEAR_S: f64 = 365.25 * 86_400.0;
/// A_v of ESA SP-1200 (1.2.3): the astronomical unit in km·yr/s.
const A_V: f64 = AU_KM / JULIAN_YEAR_S;
/// One milliarcsecond in radians.
const MAS: f64 = PI / (180.0 * 3_600_000.0);
/// The smallest parallax (mas) taken as physical; smaller ones (and NULL) are replaced by it,
/// as in pgSphere (after SOFA: 1e-7 arcsec).
const PX_MIN: f64 = 1e-4;

/// A propagated astrometric solution: ra, dec (deg), parallax (mas), pmra, pmdec (mas/yr),
/// radial velocity (km/s), each `None` where the output is NULL.
type Solution = [Option<f64>; 6];

fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The normal triad (r, p, q) at a position in radians: r towards it, p towards increasing
/// longitude, q towards increasing latitude (ESA SP-1200 eq. 1.2.15).
fn triad(lon: f64, lat: f64) -> ([f64; 3], [f64; 3], [f64; 3]) {
    let (sa, ca) = lon.sin_cos();
    let (sd, cd) = lat.sin_cos();
    (
        [cd * ca, cd * sa, sd],
        [-sa, ca, 0.0],
        [-sd * ca, -sd * sa, cd],
    )
}

/// Rigorous epoch propagation (ESA SP-1200 vol. 1 sect. 1.5.5, as in pgSphere's `epoch_prop`):
/// linear motion of star and Sun, no light-time or relativistic corrections.
///
/// `plx` in mas, `pmra` (cos dec applied) and `pmdec` in mas/yr, `rv` in km/s, `dt` in years.
/// Returns ra, dec (deg), parallax (mas), pmra, pmdec (mas/yr), rv (km/s); `None` when the
/// object would pass through the Sun.
fn propagate(
    ra: f64,
    dec: f64,
    plx: f64,
    pmra: f64,
    pmdec: f64,
    rv: f64,
    dt: f64,
) -> Option<[f64; 6]> {
    let (r0, p0, q0) = triad(ra.to_radians(), dec.to_radians());
    let (pma, pmd) = (pmra * MAS, pmdec * MAS);
    let mu0: [f64; 3] = std::array::from_fn(|k| p0[k] * pma + q0[k] * pmd);
    let mu0sq = pma * pma + pmd * pmd;
    // radial proper motion, rad/yr (eq. 1.5.24)
    let zeta0 = rv * plx / A_V * MAS;
    // distance factor squared (eq. 1.5.25)
    let f2 = 1.0 / (1.0 + 2.0 * zeta0 * dt + (mu0sq + zeta0 * zeta0) * dt * dt);
    if !f2.is_finite() || f2 <= 0.0 {
        return None;
    }
    let f = f2.sqrt();
    let g = 1.0 + zeta0 * dt;
    // position (1.5.26), proper motion vector (1.5.28), parallax (1.5.27), zeta (1.5.29)
    let u: [f64; 3] = std::array::from_fn(|k| (r0[k] * g + mu0[k] * dt) * f);
    let mu: [f64; 3] = std::array::from_fn(|k| (mu0[k] * g - r0[k] * mu0sq * dt) * f2 * f);
    let plx1 = plx * f;
    let zeta = (zeta0 + (mu0sq + zeta0 * zeta0) * dt) * f2;
    let lon = u[1].atan2(u[0]);
    let lat = u[2].atan2(u[0].hypot(u[1]));
    let (_, p, q) = triad(lon, lat);
    let out = [
        norm_lon(lon.to_degrees()),
        lat.to_degrees(),
        plx1,
        dot(&p, &mu) / MAS,
        dot(&q, &mu) / MAS,
        zeta / MAS * A_V / plx1,
    ];
    out[..5].iter().all(|v| v.is_finite()).then_some(out)
}

/// One row of ivo_epoch_prop: NULL handling around [`propagate`]. `None` when the position or
/// an epoch is NULL (or not finite).
fn epoch_row(name: &str, v: [Option<f64>; 8]) -> Result<Option<Solution>> {
    let fin = |x: Option<f64>| x.filter(|x| x.is_finite());
    let (Some(ra), Some(dec), Some(ref_ep), Some(out_ep)) = (fin(v[0]), fin(v[1]), fin(v[6]), fin(v[7]))
    else {
        return Ok(None);
    };
    if !(-90.0..=90.0).contains(&dec) {
        return Err(exec(format!("{name}: dec {dec} is outside [-90, 90]")));
    }
    let plx_in = fin(v[2]);
    let plx_valid = plx_in.is_some_and(|p| p.abs() > PX_MIN);
    let plx = if plx_valid {
        plx_in.unwrap_or(PX_MIN)
    } else {
        PX_MIN
    };
    let (pmra, pmdec) = (fin(v[3]), fin(v[4]));
    let rv_in = fin(v[5]);
    let Some(o) = propagate(
        ra,
        dec,
        plx,
        pmra.unwrap_or(0.0),
        pmdec.unwrap_or(0.0),
        rv_in.unwrap_or(0.0),
        out_ep - ref_ep,
    ) else {
        return Ok(None);
    };
    let pm_known = pmra.is_some() && pmdec.is_some();
    let rv = match rv_in {
        None => None,
        Some(rv) if !plx_valid => Some(rv),
        Some(_) => Some(o[5]).filter(|x| x.is_finite()),
    };
    Ok(Some([
        Some(o[0]),
        Some(o[1]),
        plx_in.map(|_| o[2]),
        pm_known.then_some(o[3]),
        pm_known.then_some(o[4]),
        rv,
    ]))
}

fn eval_epoch(func: Func, cols: &[(ArrayRef, bool)], rows: usize) -> Result<ArrayRef> {
    let name = func.name();
    let n: Vec<F64s> = cols.iter().map(F64s::new).collect::<Result<_>>()?;
    let vals = |i: usize| -> [Option<f64>; 8] { std::array::from_fn(|k| n[k].get(i)) };
    if func == Func::EpochPropPos {
        let mut b = point_builder(rows);
        for i in 0..rows {
            match epoch_row(name, vals(i))? {
                Some([Some(lon), Some(lat), ..]) => {
                    b.values().append_slice(&[lon, lat]);
                    b.append(true);
                }
                _ => b.append_null(),
            }
        }
        return Ok(Arc::new(b.finish()));
    }
    let mut b = FixedSizeListBuilder::with_capacity(Float64Builder::with_capacity(rows * 6), 6, rows)
        .with_field(Arc::new(Field::new_list_field(DataType::Float64, true)));
    for i in 0..rows {
        match epoch_row(name, vals(i))? {
            Some(sol) => {
                for x in sol {
                    b.values().append_option(x);
                }
                b.append(true);
            }
            None => {
                for _ in 0..6 {
                    b.values().append_null();
                }
                b.append(false);
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

// ---------------------------------------------------------------------------------------------
// the scalar UDF

/// One of the scalar ivo_ functions as a DataFusion UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IvoUdf {
    func: Func,
    signature: Signature,
}

impl IvoUdf {
    fn new(func: Func) -> IvoUdf {
        IvoUdf {
            func,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IvoUdf {
    fn name(&self) -> &str {
        self.func.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        layout(self.func, arg_types).map_err(DataFusionError::Plan)?;
        Ok(self.func.return_type())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let dt = self.return_type(&types)?;
        let field = match self.func {
            // never NULL (0 for NULL arguments)
            Func::HasWord | Func::NoCaseMatch => Field::new(self.name(), dt, false),
            Func::HealpixCenter | Func::EpochPropPos => Field::new(self.name(), dt, true)
                .with_metadata(HashMap::from([
                    ("xtype".to_string(), "point".to_string()),
                    ("arraysize".to_string(), "2".to_string()),
                ])),
            Func::EpochProp => Field::new(self.name(), dt, true).with_metadata(HashMap::from([(
                "arraysize".to_string(),
                "6".to_string(),
            )])),
            Func::HealpixIndex => Field::new(self.name(), dt, true),
        };
        Ok(Arc::new(field))
    }

    fn is_strict(&self) -> bool {
        matches!(self.func, Func::HealpixIndex | Func::HealpixCenter)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let slots = layout(self.func, arg_types).map_err(DataFusionError::Plan)?;
        Ok(coerced(&slots, arg_types))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<DataType> = args.args.iter().map(|a| a.data_type()).collect();
        layout(self.func, &types).map_err(exec)?;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let cols = columns(&args.args)?;
        let out = match self.func {
            Func::HasWord => eval_hasword(&cols, rows)?,
            Func::NoCaseMatch => eval_nocasematch(&cols, rows)?,
            Func::HealpixIndex => eval_healpix_index(&cols, rows)?,
            Func::HealpixCenter => eval_healpix_center(&cols, rows)?,
            Func::EpochProp | Func::EpochPropPos => eval_epoch(self.func, &cols, rows)?,
        };
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ivo_histogram

const HISTOGRAM_USAGE: &str =
    "ivo_histogram(val DOUBLE, lower DOUBLE, upper DOUBLE, nbins INTEGER) -> BIGINT[]";

/// The largest number of bins ivo_histogram accepts.
const MAX_BINS: i64 = 1_000_000;

fn histogram_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)))
}

/// `ivo_histogram(val, lower, upper, nbins)`: counts in nbins + 2 bins (DaCHS's gavo_histogram).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Histogram {
    signature: Signature,
    aliases: Vec<String>,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec!["gavo_histogram".to_string()],
        }
    }
}

impl AggregateUDFImpl for Histogram {
    fn name(&self) -> &str {
        "ivo_histogram"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.coerce_types(arg_types)?;
        Ok(histogram_type())
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let slots = [Slot::Num, Slot::Num, Slot::Num, Slot::Int];
        check_slots("ivo_histogram", HISTOGRAM_USAGE, &slots, arg_types)
            .map_err(DataFusionError::Plan)?;
        Ok(coerced(&slots, arg_types))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "lower"),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "upper"),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "nbins"),
                DataType::Int64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "counts"),
                histogram_type(),
                true,
            )),
        ])
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(HistogramAcc::default()))
    }
}

/// The bins: lower, upper, nbins.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bins {
    lower: f64,
    upper: f64,
    nbins: i64,
}

impl Bins {
    fn new(lower: Option<f64>, upper: Option<f64>, nbins: Option<i64>) -> Result<Bins> {
        let (Some(lower), Some(upper), Some(nbins)) = (lower, upper, nbins) else {
            return Err(exec(
                "ivo_histogram: lower, upper and nbins must not be NULL".to_string(),
            ));
        };
        if !(lower.is_finite() && upper.is_finite() && lower < upper) {
            return Err(exec(format!(
                "ivo_histogram: lower ({lower}) must be less than upper ({upper}), both finite"
            )));
        }
        if !(1..=MAX_BINS).contains(&nbins) {
            return Err(exec(format!(
                "ivo_histogram: nbins ({nbins}) must be between 1 and {MAX_BINS}"
            )));
        }
        Ok(Bins {
            lower,
            upper,
            nbins,
        })
    }

    /// The bin of a value: 0 for NULL, NaN and values below lower, nbins + 1 for values at or
    /// above upper, else 1 + the index of the half-open bin (as SQL's width_bucket).
    #[inline]
    fn bin(&self, v: Option<f64>) -> usize {
        let n = self.nbins as usize;
        match v {
            Some(v) if v >= self.lower => {
                if v >= self.upper {
                    n + 1
                } else {
                    let k = ((v - self.lower) * self.nbins as f64 / (self.upper - self.lower))
                        .floor();
                    // k ≥ 0 here; rounding may give nbins just below upper
                    (k as usize).min(n - 1) + 1
                }
            }
            _ => 0,
        }
    }
}

#[derive(Debug, Default)]
struct HistogramAcc {
    bins: Option<Bins>,
    counts: Vec<i64>,
}

impl HistogramAcc {
    /// Sets the bins at the first row; later rows must give the same ones.
    fn use_bins(&mut self, b: Bins) -> Result<()> {
        match self.bins {
            None => {
                self.bins = Some(b);
                self.counts = vec![0; b.nbins as usize + 2];
                Ok(())
            }
            Some(have) if have == b => Ok(()),
            Some(have) => Err(exec(format!(
                "ivo_histogram: lower, upper and nbins must be the same in all rows of a group \
                 (got {}, {}, {} and {}, {}, {})",
                have.lower, have.upper, have.nbins, b.lower, b.upper, b.nbins
            ))),
        }
    }
}

impl Accumulator for HistogramAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if values.len() != 4 {
            return Err(exec(format!("ivo_histogram expects {HISTOGRAM_USAGE}")));
        }
        let cols: Vec<(ArrayRef, bool)> = values.iter().map(|a| (a.clone(), false)).collect();
        let val = F64s::new(&cols[0])?;
        let lower = F64s::new(&cols[1])?;
        let upper = F64s::new(&cols[2])?;
        let nbins = I64s::new(&cols[3])?;
        let mut last: Option<(Option<f64>, Option<f64>, Option<i64>)> = None;
        for i in 0..values[0].len() {
            let params = (lower.get(i), upper.get(i), nbins.get(i));
            if last != Some(params) {
                self.use_bins(Bins::new(params.0, params.1, params.2)?)?;
                last = Some(params);
            }
            if let Some(b) = self.bins {
                let k = b.bin(val.get(i));
                if let Some(c) = self.counts.get_mut(k) {
                    *c += 1;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self.bins {
            None => ScalarValue::try_from(&histogram_type()),
            Some(_) => {
                let counts = Int64Array::from(self.counts.clone());
                let list = ListArray::try_new(
                    Arc::new(Field::new_list_field(DataType::Int64, true)),
                    OffsetBuffer::from_lengths([counts.len()]),
                    Arc::new(counts),
                    None,
                )?;
                Ok(ScalarValue::List(Arc::new(list)))
            }
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.counts.capacity() * std::mem::size_of::<i64>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let b = self.bins;
        Ok(vec![
            ScalarValue::Float64(b.map(|b| b.lower)),
            ScalarValue::Float64(b.map(|b| b.upper)),
            ScalarValue::Int64(b.map(|b| b.nbins)),
            self.evaluate()?,
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if states.len() != 4 {
            return Err(exec("ivo_histogram: bad partial state".to_string()));
        }
        let cols: Vec<(ArrayRef, bool)> = states.iter().map(|a| (a.clone(), false)).collect();
        let lower = F64s::new(&cols[0])?;
        let upper = F64s::new(&cols[1])?;
        let nbins = I64s::new(&cols[2])?;
        let counts = states[3].as_list_opt::<i32>().ok_or_else(|| {
            exec("ivo_histogram: bad partial state (counts are not a list)".to_string())
        })?;
        for i in 0..states[0].len() {
            if nbins.get(i).is_none() || counts.is_null(i) {
                continue; // a partial state without rows
            }
            self.use_bins(Bins::new(lower.get(i), upper.get(i), nbins.get(i))?)?;
            let part = counts.value(i);
            let part = part.as_primitive_opt::<Int64Type>().ok_or_else(|| {
                exec("ivo_histogram: bad partial state (counts are not BIGINT)".to_string())
            })?;
            if part.len() != self.counts.len() {
                return Err(exec(
                    "ivo_histogram: bad partial state (wrong number of bins)".to_string(),
                ));
            }
            for (c, p) in self.counts.iter_mut().zip(part.iter()) {
                *c += p.unwrap_or(0);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// ivo_string_agg

const STRING_AGG_USAGE: &str =
    "ivo_string_agg(expr VARCHAR, delimiter VARCHAR) -> VARCHAR";

/// `ivo_string_agg(expr, delimiter)`: the non-NULL values joined by the delimiter (each value
/// after the first is preceded by its row's delimiter, as in PostgreSQL's string_agg).
#[derive(Debug, PartialEq, Eq, Hash)]
struct StringAgg {
    signature: Signature,
}

impl StringAgg {
    fn new() -> StringAgg {
        StringAgg {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for StringAgg {
    fn name(&self) -> &str {
        "ivo_string_agg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.coerce_types(arg_types)?;
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let slots = [Slot::Str, Slot::Str];
        check_slots("ivo_string_agg", STRING_AGG_USAGE, &slots, arg_types)
            .map_err(DataFusionError::Plan)?;
        Ok(coerced(&slots, arg_types))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "value"),
                DataType::Utf8,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "first_delimiter"),
                DataType::Utf8,
                true,
            )),
        ])
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(StringAggAcc::default()))
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Utf8(Some(String::new())))
    }
}

#[derive(Debug, Default)]
struct StringAggAcc {
    /// the values so far, `None` before the first
    value: Option<String>,
    /// the delimiter of the first value (used when this state is appended to another)
    first_delimiter: String,
}

impl StringAggAcc {
    fn push(&mut self, value: &str, delimiter: &str) {
        match &mut self.value {
            None => {
                self.value = Some(value.to_string());
                self.first_delimiter = delimiter.to_string();
            }
            Some(acc) => {
                acc.push_str(delimiter);
                acc.push_str(value);
            }
        }
    }
}

impl Accumulator for StringAggAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if values.len() != 2 {
            return Err(exec(format!("ivo_string_agg expects {STRING_AGG_USAGE}")));
        }
        let v = Strs::new(&(values[0].clone(), false))?;
        let d = Strs::new(&(values[1].clone(), false))?;
        for i in 0..values[0].len() {
            if let Some(s) = v.get(i) {
                self.push(s, d.get(i).unwrap_or(""));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Utf8(Some(
            self.value.clone().unwrap_or_default(),
        )))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.value.as_ref().map_or(0, String::capacity)
            + self.first_delimiter.capacity()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Utf8(self.value.clone()),
            ScalarValue::Utf8(Some(self.first_delimiter.clone())),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if states.len() != 2 {
            return Err(exec("ivo_string_agg: bad partial state".to_string()));
        }
        let v = Strs::new(&(states[0].clone(), false))?;
        let d = Strs::new(&(states[1].clone(), false))?;
        for i in 0..states[0].len() {
            if let Some(s) = v.get(i) {
                self.push(s, d.get(i).unwrap_or(""));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
}
