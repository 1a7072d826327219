//! The streaming writer: Arrow record batches in, VOTable chunks out.

use std::ops::Range;

use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, FixedSizeBinaryArray,
    LargeBinaryArray, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Decimal128Type, Decimal32Type,
    Decimal64Type, Field, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};

use crate::format::{self, DATE_BUF};

/// Arrow's half-precision float.
type F16 = <Float16Type as ArrowPrimitiveType>::Native;
use crate::types::{parse_arraysize, IdAllocator, Prim, Shape};
use crate::xml::{self, attr};
use crate::{meta, Encoding, EndStatus, Error, WriterOptions};

/// The XML declaration and the opening `VOTABLE` tag.
pub(crate) fn write_preamble(out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
xsi:schemaLocation=\"http://www.ivoa.net/xml/VOTable/v1.3 http://www.ivoa.net/xml/VOTable/v1.3\">\n",
    );
}

/// Raw bytes per base64 line (76 characters).
const LINE_BYTES: usize = 57;
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the base64 of `input` (with `=` padding for a short final group).
fn base64_into(out: &mut Vec<u8>, input: &[u8]) {
    let mut chunks = input.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[
            B64[(n >> 18) as usize & 63],
            B64[(n >> 12) as usize & 63],
            B64[(n >> 6) as usize & 63],
            B64[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                B64[(n >> 18) as usize & 63],
                B64[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[
                B64[(n >> 18) as usize & 63],
                B64[(n >> 12) as usize & 63],
                B64[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

/// What kind of values a column holds, for checking datatype overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cat {
    Bool,
    Int,
    Float,
    Text,
    Time,
    Bytes,
}

/// The default VOTable mapping of an Arrow type that has a scalar VOTable counterpart.
fn scalar_plan(dt: &DataType) -> Option<(Cat, Prim)> {
    use DataType as D;
    Some(match dt {
        D::Boolean => (Cat::Bool, Prim::Boolean),
        D::Int8 | D::Int16 => (Cat::Int, Prim::Short),
        D::UInt8 => (Cat::Int, Prim::UnsignedByte),
        D::Int32 | D::UInt16 => (Cat::Int, Prim::Int),
        D::Int64 | D::UInt32 | D::UInt64 => (Cat::Int, Prim::Long),
        D::Float16 | D::Float32 => (Cat::Float, Prim::Float),
        D::Float64 | D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) => {
            (Cat::Float, Prim::Double)
        }
        _ => return None,
    })
}

/// The default VOTable mapping of any supported Arrow type.
fn plan_type(dt: &DataType) -> Option<(Cat, Prim, Shape)> {
    use DataType as D;
    let var = Shape::Variable { max: None };
    if let Some((cat, prim)) = scalar_plan(dt) {
        return Some((cat, prim, Shape::Scalar));
    }
    Some(match dt {
        D::Utf8 | D::LargeUtf8 | D::Utf8View | D::Null => (Cat::Text, Prim::Char, var),
        D::Date32 | D::Date64 | D::Timestamp(..) => (Cat::Time, Prim::Char, var),
        D::Binary | D::LargeBinary | D::BinaryView => (Cat::Bytes, Prim::UnsignedByte, var),
        D::FixedSizeBinary(n) => (
            Cat::Bytes,
            Prim::UnsignedByte,
            Shape::Fixed(usize::try_from(*n).ok()?),
        ),
        D::List(f) | D::LargeList(f) => {
            let (cat, prim) = scalar_plan(f.data_type())?;
            (cat, prim, var)
        }
        D::FixedSizeList(f, n) => {
            let (cat, prim) = scalar_plan(f.data_type())?;
            (cat, prim, Shape::Fixed(usize::try_from(*n).ok()?))
        }
        D::Dictionary(_, v) => match plan_type(v)? {
            p @ ((Cat::Text | Cat::Time, _, _) | (_, _, Shape::Scalar)) => p,
            _ => return None,
        },
        _ => return None,
    })
}

/// One output column: everything the FIELD says and how its cells are encoded.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    id: String,
    prim: Prim,
    shape: Shape,
    arraysize: Option<String>,
    xtype: Option<String>,
    unit: Option<String>,
    ucd: Option<String>,
    utype: Option<String>,
    description: Option<String>,
    data_type: DataType,
    /// BINARY only: the declared `<VALUES null>` of a nullable integer column.
    sentinel: Option<i64>,
}

fn non_empty(field: &Field, key: &str) -> Option<String> {
    field
        .metadata()
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl Column {
    fn plan(
        field: &Field,
        index: usize,
        ids: &mut IdAllocator,
        encoding: Encoding,
    ) -> Result<Column, Error> {
        let name = if field.name().trim().is_empty() {
            format!("col{}", index + 1)
        } else {
            field.name().clone()
        };
        let (cat, mut prim, mut shape) =
            plan_type(field.data_type()).ok_or_else(|| Error::UnsupportedType {
                column: name.clone(),
                data_type: field.data_type().to_string(),
            })?;
        if matches!(shape, Shape::Fixed(_)) && prim == Prim::UnsignedByte && field.is_nullable() {
            // A null fixed-size byte array has no VOTable spelling (no byte value is free to be
            // a null sentinel): declare it variable, where an empty array is the null.
            shape = Shape::Variable { max: None };
        }
        // datatype override, honoured when the values can be written that way.
        if let Some(p) = non_empty(field, meta::DATATYPE)
            .as_deref()
            .and_then(Prim::parse)
        {
            let ok = match cat {
                Cat::Text | Cat::Time => p.is_text(),
                Cat::Int => p.is_integer() || p.is_float(),
                Cat::Float => p.is_float(),
                Cat::Bool => p == Prim::Boolean,
                Cat::Bytes => false,
            };
            if ok {
                prim = p;
            }
        }
        // arraysize override, honoured when it describes the same values.
        if let Some(s) = non_empty(field, meta::ARRAYSIZE).as_deref() {
            match (cat, shape, parse_arraysize(s)) {
                (Cat::Text | Cat::Time, _, Some(new)) if !s.contains('x') => shape = new,
                (_, Shape::Fixed(n), Some(Shape::Fixed(m))) if n == m && cat != Cat::Bytes => {
                    return Ok(Column::finish(
                        field,
                        name,
                        cat,
                        prim,
                        shape,
                        Some(s.to_owned()),
                        ids,
                        encoding,
                    ));
                }
                _ => {}
            }
        }
        let arraysize = match shape {
            Shape::Scalar => None,
            // One character: no arraysize (VOTable 1.3 Erratum 3 deprecates arraysize="1").
            Shape::Fixed(1) if matches!(cat, Cat::Text | Cat::Time) => None,
            Shape::Fixed(n) => Some(n.to_string()),
            Shape::Variable { max: None } => Some("*".to_owned()),
            Shape::Variable { max: Some(n) } => Some(format!("{n}*")),
        };
        Ok(Column::finish(
            field, name, cat, prim, shape, arraysize, ids, encoding,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        field: &Field,
        name: String,
        cat: Cat,
        prim: Prim,
        shape: Shape,
        arraysize: Option<String>,
        ids: &mut IdAllocator,
        encoding: Encoding,
    ) -> Column {
        let id = ids.allocate(field.metadata().get(meta::ID).map(String::as_str), &name);
        let xtype = non_empty(field, meta::XTYPE)
            .or_else(|| (cat == Cat::Time).then(|| "timestamp".to_owned()));
        // A declared null for integers where no other null exists: BINARY scalars and null
        // rows of fixed-size arrays. (Null elements inside integer arrays keep their stored
        // value; a variable-length array's null is the empty array.)
        let needs_sentinel = field.is_nullable()
            && match (cat, shape) {
                (Cat::Int, Shape::Scalar) => encoding == Encoding::Binary,
                (Cat::Int, Shape::Fixed(_)) => true,
                _ => false,
            };
        let sentinel = needs_sentinel
            .then(|| match prim {
                Prim::UnsignedByte => Some(255),
                Prim::Short => Some(i64::from(i16::MIN)),
                Prim::Int => Some(i64::from(i32::MIN)),
                Prim::Long => Some(i64::MIN),
                _ => None,
            })
            .flatten();
        Column {
            name,
            id,
            prim,
            shape,
            arraysize,
            xtype,
            unit: non_empty(field, meta::UNIT),
            ucd: non_empty(field, meta::UCD).filter(|u| crate::types::is_valid_ucd(u)),
            utype: non_empty(field, meta::UTYPE),
            description: non_empty(field, meta::DESCRIPTION),
            data_type: field.data_type().clone(),
            sentinel,
        }
    }

    fn write_field(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<FIELD");
        attr(out, "name", &self.name);
        attr(out, "ID", &self.id);
        attr(out, "datatype", self.prim.name());
        for (key, value) in [
            ("arraysize", &self.arraysize),
            ("unit", &self.unit),
            ("ucd", &self.ucd),
            ("utype", &self.utype),
            ("xtype", &self.xtype),
        ] {
            if let Some(v) = value {
                attr(out, key, v);
            }
        }
        if self.description.is_none() && self.sentinel.is_none() {
            out.extend_from_slice(b"/>\n");
            return;
        }
        out.extend_from_slice(b">\n");
        if let Some(d) = &self.description {
            out.extend_from_slice(b"<DESCRIPTION>");
            xml::escape_text(out, d);
            out.extend_from_slice(b"</DESCRIPTION>\n");
        }
        if let Some(s) = self.sentinel {
            out.extend_from_slice(b"<VALUES null=\"");
            format::write_int(out, s);
            out.extend_from_slice(b"\"/>\n");
        }
        out.extend_from_slice(b"</FIELD>\n");
    }

    /// The most characters (or elements) a value may have, if bounded.
    fn limit(&self) -> Option<usize> {
        match self.shape {
            Shape::Scalar => Some(1),
            Shape::Fixed(n) | Shape::Variable { max: Some(n) } => Some(n),
            Shape::Variable { max: None } => None,
        }
    }
}

/// A batch column, downcast once per batch.
struct View<'a> {
    nulls: Option<NullBuffer>,
    data: Data<'a>,
}

enum Data<'a> {
    Null,
    Bool(&'a BooleanArray),
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
    F16(&'a [F16]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    Dec32(&'a [i32], i8),
    Dec64(&'a [i64], i8),
    Dec128(&'a [i128], i8),
    Str(&'a StringArray),
    LargeStr(&'a LargeStringArray),
    StrView(&'a StringViewArray),
    Date32(&'a [i32]),
    Date64(&'a [i64]),
    Ts(&'a [i64], TimeUnit),
    Bytes(&'a BinaryArray),
    LargeBytes(&'a LargeBinaryArray),
    BytesView(&'a BinaryViewArray),
    FixedBytes(&'a FixedSizeBinaryArray),
    List(&'a [i32], Box<View<'a>>),
    LargeList(&'a [i64], Box<View<'a>>),
    FixedList(usize, Box<View<'a>>),
    Dict(Vec<usize>, Box<View<'a>>),
}

/// One scalar value.
enum Val<'s> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    F32(f32),
    F64(f64),
    Dec(i128, i8),
    Str(&'s str),
    Date(i64),
    Ts(i64, TimeUnit),
}

fn mismatch(dt: &DataType) -> String {
    format!("unexpected column array of type {dt}")
}

impl<'a> View<'a> {
    fn new(array: &'a ArrayRef) -> Result<View<'a>, String> {
        Self::of(array.as_ref())
    }

    fn of(a: &'a dyn Array) -> Result<View<'a>, String> {
        use DataType as D;
        let dt = a.data_type();
        let err = || mismatch(dt);
        macro_rules! prim {
            ($t:ty) => {
                a.as_primitive_opt::<$t>()
                    .ok_or_else(err)?
                    .values()
                    .as_ref()
            };
        }
        let data = match dt {
            D::Null => Data::Null,
            D::Boolean => Data::Bool(a.as_boolean_opt().ok_or_else(err)?),
            D::Int8 => Data::I8(prim!(Int8Type)),
            D::Int16 => Data::I16(prim!(Int16Type)),
            D::Int32 => Data::I32(prim!(Int32Type)),
            D::Int64 => Data::I64(prim!(Int64Type)),
            D::UInt8 => Data::U8(prim!(UInt8Type)),
            D::UInt16 => Data::U16(prim!(UInt16Type)),
            D::UInt32 => Data::U32(prim!(UInt32Type)),
            D::UInt64 => Data::U64(prim!(UInt64Type)),
            D::Float16 => Data::F16(prim!(Float16Type)),
            D::Float32 => Data::F32(prim!(Float32Type)),
            D::Float64 => Data::F64(prim!(Float64Type)),
            D::Decimal32(_, s) => Data::Dec32(prim!(Decimal32Type), *s),
            D::Decimal64(_, s) => Data::Dec64(prim!(Decimal64Type), *s),
            D::Decimal128(_, s) => Data::Dec128(prim!(Decimal128Type), *s),
            D::Utf8 => Data::Str(a.as_string_opt::<i32>().ok_or_else(err)?),
            D::LargeUtf8 => Data::LargeStr(a.as_string_opt::<i64>().ok_or_else(err)?),
            D::Utf8View => Data::StrView(a.as_string_view_opt().ok_or_else(err)?),
            D::Date32 => Data::Date32(prim!(Date32Type)),
            D::Date64 => Data::Date64(prim!(Date64Type)),
            D::Timestamp(unit, _) => {
                let v = match unit {
                    TimeUnit::Second => prim!(TimestampSecondType),
                    TimeUnit::Millisecond => prim!(TimestampMillisecondType),
                    TimeUnit::Microsecond => prim!(TimestampMicrosecondType),
                    TimeUnit::Nanosecond => prim!(TimestampNanosecondType),
                };
                Data::Ts(v, *unit)
            }
            D::Binary => Data::Bytes(a.as_binary_opt::<i32>().ok_or_else(err)?),
            D::LargeBinary => Data::LargeBytes(a.as_binary_opt::<i64>().ok_or_else(err)?),
            D::BinaryView => Data::BytesView(a.as_binary_view_opt().ok_or_else(err)?),
            D::FixedSizeBinary(_) => {
                Data::FixedBytes(a.as_fixed_size_binary_opt().ok_or_else(err)?)
            }
            D::List(_) => {
                let l = a.as_list_opt::<i32>().ok_or_else(err)?;
                Data::List(l.value_offsets(), Box::new(View::of(l.values().as_ref())?))
            }
            D::LargeList(_) => {
                let l = a.as_list_opt::<i64>().ok_or_else(err)?;
                Data::LargeList(l.value_offsets(), Box::new(View::of(l.values().as_ref())?))
            }
            D::FixedSizeList(_, n) => {
                let l = a.as_fixed_size_list_opt().ok_or_else(err)?;
                let n = usize::try_from(*n).map_err(|_| err())?;
                Data::FixedList(n, Box::new(View::of(l.values().as_ref())?))
            }
            D::Dictionary(..) => {
                let d = a.as_any_dictionary_opt().ok_or_else(err)?;
                if d.values().is_empty() {
                    // Every key is null (arrow's normalized_keys needs a value to point at).
                    Data::Null
                } else {
                    Data::Dict(
                        d.normalized_keys(),
                        Box::new(View::of(d.values().as_ref())?),
                    )
                }
            }
            _ => return Err(err()),
        };
        let nulls = match data {
            Data::Null => Some(NullBuffer::new_null(a.len())),
            _ => a.logical_nulls(),
        };
        Ok(View { nulls, data })
    }

    #[inline]
    fn is_null(&self, i: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(i))
    }
}

impl Data<'_> {
    /// The scalar at `i` (not for list-like data).
    #[inline]
    fn get(&self, i: usize) -> Val<'_> {
        match self {
            Data::Null => Val::Null,
            Data::Bool(a) => Val::Bool(a.value(i)),
            Data::I8(v) => Val::Int(i64::from(v[i])),
            Data::I16(v) => Val::Int(i64::from(v[i])),
            Data::I32(v) => Val::Int(i64::from(v[i])),
            Data::I64(v) => Val::Int(v[i]),
            Data::U8(v) => Val::Int(i64::from(v[i])),
            Data::U16(v) => Val::Int(i64::from(v[i])),
            Data::U32(v) => Val::Int(i64::from(v[i])),
            Data::U64(v) => Val::UInt(v[i]),
            Data::F16(v) => Val::F32(v[i].to_f32()),
            Data::F32(v) => Val::F32(v[i]),
            Data::F64(v) => Val::F64(v[i]),
            Data::Dec32(v, s) => Val::Dec(i128::from(v[i]), *s),
            Data::Dec64(v, s) => Val::Dec(i128::from(v[i]), *s),
            Data::Dec128(v, s) => Val::Dec(v[i], *s),
            Data::Str(a) => Val::Str(a.value(i)),
            Data::LargeStr(a) => Val::Str(a.value(i)),
            Data::StrView(a) => Val::Str(a.value(i)),
            Data::Date32(v) => Val::Date(i64::from(v[i])),
            Data::Date64(v) => Val::Date(v[i].div_euclid(86_400_000)),
            Data::Ts(v, u) => Val::Ts(v[i], *u),
            Data::Dict(keys, values) => values.data.get(keys[i]),
            Data::Bytes(_)
            | Data::LargeBytes(_)
            | Data::BytesView(_)
            | Data::FixedBytes(_)
            | Data::List(..)
            | Data::LargeList(..)
            | Data::FixedList(..) => Val::Null,
        }
    }
}

/// Element range of row `row` of list-like data, or `None` for scalar data.
enum Elems<'v, 'a> {
    Values(&'v View<'a>, Range<usize>),
    Bytes(&'v [u8]),
}

#[inline]
fn elems<'v, 'a>(data: &'v Data<'a>, row: usize) -> Option<Elems<'v, 'a>> {
    Some(match data {
        Data::List(off, child) => Elems::Values(child, off[row] as usize..off[row + 1] as usize),
        Data::LargeList(off, child) => {
            Elems::Values(child, off[row] as usize..off[row + 1] as usize)
        }
        Data::FixedList(n, child) => Elems::Values(child, row * n..(row + 1) * n),
        Data::Bytes(a) => Elems::Bytes(a.value(row)),
        Data::LargeBytes(a) => Elems::Bytes(a.value(row)),
        Data::BytesView(a) => Elems::Bytes(a.value(row)),
        Data::FixedBytes(a) => Elems::Bytes(a.value(row)),
        _ => return None,
    })
}

fn out_of_range(v: impl std::fmt::Display, prim: Prim) -> String {
    format!("value {v} does not fit VOTable datatype {}", prim.name())
}

#[inline]
fn check_int(v: i64, prim: Prim) -> Result<(), String> {
    let ok = match prim {
        Prim::UnsignedByte => (0..=255).contains(&v),
        Prim::Short => i16::try_from(v).is_ok(),
        Prim::Int => i32::try_from(v).is_ok(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(out_of_range(v, prim))
    }
}

#[inline]
fn u64_to_i64(v: u64, prim: Prim) -> Result<i64, String> {
    i64::try_from(v).map_err(|_| out_of_range(v, prim))
}

/// Formats a date or timestamp value into `buf`; returns the text.
#[inline]
fn time_text(buf: &mut [u8; DATE_BUF], v: &Val<'_>) -> usize {
    match v {
        Val::Date(d) => format::format_date(buf, *d),
        Val::Ts(t, u) => format::format_timestamp(buf, *t, *u),
        _ => 0,
    }
}

// ---------------------------------------------------------------- TABLEDATA

fn td_str(out: &mut Vec<u8>, col: &Column, s: &str) {
    let s = match col.limit() {
        Some(n) => xml::truncate_chars(s, n),
        None => s,
    };
    if col.prim == Prim::UnicodeChar {
        xml::escape_text(out, s);
    } else {
        xml::escape_ascii_text(out, s);
    }
}

#[inline]
fn td_value(out: &mut Vec<u8>, col: &Column, v: Val<'_>) -> Result<(), String> {
    match v {
        Val::Null => {}
        Val::Bool(b) => out.push(if b { b'T' } else { b'F' }),
        Val::Int(x) => {
            check_int(x, col.prim)?;
            format::write_int(out, x);
        }
        Val::UInt(x) => {
            let x = u64_to_i64(x, col.prim)?;
            check_int(x, col.prim)?;
            format::write_int(out, x);
        }
        Val::F32(x) if col.prim == Prim::Double => format::write_f64(out, f64::from(x)),
        Val::F32(x) => format::write_f32(out, x),
        Val::F64(x) if col.prim == Prim::Float => format::write_f32(out, x as f32),
        Val::F64(x) => format::write_f64(out, x),
        Val::Dec(x, s) if col.prim == Prim::Float => {
            format::write_f32(out, format::decimal_to_f64(x, s) as f32)
        }
        Val::Dec(x, s) => format::write_decimal(out, x, s),
        Val::Str(s) => td_str(out, col, s),
        Val::Date(_) | Val::Ts(..) => {
            let mut buf = [0u8; DATE_BUF];
            let n = time_text(&mut buf, &v);
            let n = col.limit().map_or(n, |l| l.min(n));
            out.extend_from_slice(&buf[..n]);
        }
    }
    Ok(())
}

/// A null element inside an array cell: NaN for floats, `?` for booleans, the stored value
/// for integers (TABLEDATA has no null for integer array elements without `<VALUES null>`).
fn td_null_elem(out: &mut Vec<u8>, col: &Column, child: &View<'_>, j: usize) -> Result<(), String> {
    match col.prim {
        Prim::Float | Prim::Double => out.extend_from_slice(b"NaN"),
        Prim::Boolean => out.push(b'?'),
        _ => match col.sentinel {
            Some(s) => format::write_int(out, s),
            None => td_value(out, col, child.data.get(j))?,
        },
    }
    Ok(())
}

fn td_cell(out: &mut Vec<u8>, col: &Column, view: &View<'_>, row: usize) -> Result<(), String> {
    if view.is_null(row) {
        match col.shape {
            // A fixed-size array needs its N elements: NaN, ?, or the integer sentinel.
            Shape::Fixed(n) if !col.prim.is_text() => {
                out.extend_from_slice(b"<TD>");
                for k in 0..n {
                    if k > 0 {
                        out.push(b' ');
                    }
                    match col.prim {
                        Prim::Float | Prim::Double => out.extend_from_slice(b"NaN"),
                        Prim::Boolean => out.push(b'?'),
                        _ => format::write_int(out, col.sentinel.unwrap_or(0)),
                    }
                }
                out.extend_from_slice(b"</TD>");
            }
            _ => out.extend_from_slice(b"<TD/>"),
        }
        return Ok(());
    }
    out.extend_from_slice(b"<TD>");
    match elems(&view.data, row) {
        None => td_value(out, col, view.data.get(row))?,
        Some(Elems::Values(child, range)) => {
            let start = range.start;
            for j in range {
                if j > start {
                    out.push(b' ');
                }
                if child.is_null(j) {
                    td_null_elem(out, col, child, j)?;
                } else {
                    td_value(out, col, child.data.get(j))?;
                }
            }
        }
        Some(Elems::Bytes(bytes)) => {
            for (k, b) in bytes.iter().enumerate() {
                if k > 0 {
                    out.push(b' ');
                }
                format::write_int(out, *b);
            }
        }
    }
    out.extend_from_slice(b"</TD>");
    Ok(())
}

// ---------------------------------------------------------------- BINARY / BINARY2

#[inline]
fn bin_int(raw: &mut Vec<u8>, prim: Prim, x: i64) -> Result<(), String> {
    match prim {
        Prim::UnsignedByte => raw.push(u8::try_from(x).map_err(|_| out_of_range(x, prim))?),
        Prim::Short => raw.extend_from_slice(
            &i16::try_from(x)
                .map_err(|_| out_of_range(x, prim))?
                .to_be_bytes(),
        ),
        Prim::Int => raw.extend_from_slice(
            &i32::try_from(x)
                .map_err(|_| out_of_range(x, prim))?
                .to_be_bytes(),
        ),
        Prim::Long => raw.extend_from_slice(&x.to_be_bytes()),
        Prim::Float => raw.extend_from_slice(&(x as f32).to_be_bytes()),
        Prim::Double => raw.extend_from_slice(&(x as f64).to_be_bytes()),
        _ => return Err(out_of_range(x, prim)),
    }
    Ok(())
}

#[inline]
fn bin_float(raw: &mut Vec<u8>, prim: Prim, x: f64) {
    if prim == Prim::Float {
        raw.extend_from_slice(&(x as f32).to_be_bytes());
    } else {
        raw.extend_from_slice(&x.to_be_bytes());
    }
}

/// Writes characters (ASCII with `?` replacements for `char`, UCS-2 big-endian for
/// `unicodeChar`) honouring the column shape: count-prefixed, or padded with NULs.
fn bin_str(raw: &mut Vec<u8>, col: &Column, s: &str) {
    let limit = col.limit();
    let count_at = raw.len();
    let variable = matches!(col.shape, Shape::Variable { .. });
    if variable {
        raw.extend_from_slice(&[0; 4]);
    }
    let n = if col.prim == Prim::UnicodeChar {
        let mut n = 0usize;
        for c in s.chars() {
            if limit.is_some_and(|l| n >= l) {
                break;
            }
            let unit = u16::try_from(u32::from(c)).unwrap_or(0xFFFD);
            raw.extend_from_slice(&unit.to_be_bytes());
            n += 1;
        }
        n
    } else if s.is_ascii() {
        let b = s.as_bytes();
        let b = &b[..limit.map_or(b.len(), |l| l.min(b.len()))];
        raw.extend_from_slice(b);
        b.len()
    } else {
        let mut n = 0usize;
        for c in s.chars() {
            if limit.is_some_and(|l| n >= l) {
                break;
            }
            raw.push(if c.is_ascii() { c as u8 } else { b'?' });
            n += 1;
        }
        n
    };
    if variable {
        let count = u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
        raw[count_at..count_at + 4].copy_from_slice(&count);
    } else if let Some(l) = limit {
        let pad = (l - n) * col.prim.size();
        raw.resize(raw.len() + pad, 0);
    }
}

#[inline]
fn bin_value(raw: &mut Vec<u8>, col: &Column, v: Val<'_>) -> Result<(), String> {
    match v {
        Val::Null => bin_null_elem(raw, col),
        Val::Bool(b) => raw.push(if b { b'T' } else { b'F' }),
        Val::Int(x) => bin_int(raw, col.prim, x)?,
        Val::UInt(x) => bin_int(raw, col.prim, u64_to_i64(x, col.prim)?)?,
        Val::F32(x) => bin_float(raw, col.prim, f64::from(x)),
        Val::F64(x) => bin_float(raw, col.prim, x),
        Val::Dec(x, s) => bin_float(raw, col.prim, format::decimal_to_f64(x, s)),
        Val::Str(s) => bin_str(raw, col, s),
        Val::Date(_) | Val::Ts(..) => {
            let mut buf = [0u8; DATE_BUF];
            let n = time_text(&mut buf, &v);
            // Timestamp text is ASCII.
            bin_str(raw, col, std::str::from_utf8(&buf[..n]).unwrap_or(""));
        }
    }
    Ok(())
}

/// The filler of one null element: NaN, `?`, the integer sentinel (or 0), or NUL characters.
fn bin_null_elem(raw: &mut Vec<u8>, col: &Column) {
    match col.prim {
        Prim::Boolean => raw.push(b'?'),
        Prim::Float => raw.extend_from_slice(&f32::NAN.to_be_bytes()),
        Prim::Double => raw.extend_from_slice(&f64::NAN.to_be_bytes()),
        Prim::UnsignedByte | Prim::Short | Prim::Int | Prim::Long => {
            // The sentinel fits its datatype by construction.
            let _ = bin_int(raw, col.prim, col.sentinel.unwrap_or(0));
        }
        p => raw.resize(raw.len() + p.size(), 0),
    }
}

fn bin_null(raw: &mut Vec<u8>, col: &Column) {
    match col.shape {
        Shape::Variable { .. } => raw.extend_from_slice(&[0; 4]),
        Shape::Fixed(n) if col.prim.is_text() => raw.resize(raw.len() + n * col.prim.size(), 0),
        Shape::Fixed(n) => (0..n).for_each(|_| bin_null_elem(raw, col)),
        Shape::Scalar => bin_null_elem(raw, col),
    }
}

/// Appends one cell; returns whether it was null.
fn bin_cell(raw: &mut Vec<u8>, col: &Column, view: &View<'_>, row: usize) -> Result<bool, String> {
    if view.is_null(row) {
        bin_null(raw, col);
        return Ok(true);
    }
    let variable = matches!(col.shape, Shape::Variable { .. });
    match elems(&view.data, row) {
        None => bin_value(raw, col, view.data.get(row))?,
        Some(Elems::Values(child, range)) => {
            if variable {
                let count = u32::try_from(range.len()).map_err(|_| "array too long".to_owned())?;
                raw.extend_from_slice(&count.to_be_bytes());
            }
            for j in range {
                if child.is_null(j) {
                    if col.prim.is_integer() && col.sentinel.is_none() {
                        bin_value(raw, col, child.data.get(j))?;
                    } else {
                        bin_null_elem(raw, col);
                    }
                } else {
                    bin_value(raw, col, child.data.get(j))?;
                }
            }
        }
        Some(Elems::Bytes(bytes)) => {
            if variable {
                let count = u32::try_from(bytes.len()).map_err(|_| "array too long".to_owned())?;
                raw.extend_from_slice(&count.to_be_bytes());
            }
            raw.extend_from_slice(bytes);
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------- the writer

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Begun,
    Finished,
}

/// Streams one VOTable: [`begin`](Writer::begin), [`write_batch`](Writer::write_batch) per
/// batch, [`finish`](Writer::finish); each returns the next chunk of the document.
///
/// Strings go to `char` columns with non-ASCII characters replaced by `?` (VOTable 1.4 `char`
/// is ASCII), unless the field metadata says `datatype=unicodeChar`. Nulls: `<TD/>` in
/// TABLEDATA (a fixed-size array gets NaN / `?` / its declared integer null per element), the
/// null-flag bitmap in BINARY2. Null elements inside integer arrays keep their stored value.
///
/// Types: Int8/Int16 → `short`, UInt8 → `unsignedByte`, Int32/UInt16 → `int`,
/// Int64/UInt32/UInt64 → `long` (a UInt64 above `i64::MAX` is a value error), Float16/Float32 →
/// `float`, Float64/Decimal32/64/128 → `double` (decimals exact in TABLEDATA), Boolean →
/// `boolean`, Utf8/LargeUtf8/Utf8View/Null and dictionaries of them → `char` `*`,
/// Date32/Date64/Timestamp → `char` `*` `xtype="timestamp"` (ISO-8601, UTC), (Large)List and
/// FixedSizeList of numbers or booleans → that datatype with `*` or `N`, Binary → `unsignedByte`
/// `*` (FixedSizeBinary: `N` when not nullable). Metadata `datatype`/`arraysize` overrides
/// that do not fit the values are ignored; an invalid `ucd` is left out.
#[derive(Debug)]
pub struct Writer {
    opts: WriterOptions,
    columns: Vec<Column>,
    state: State,
    rows: u64,
    /// BINARY/BINARY2 raw bytes not yet base64-encoded (less than one line between calls).
    raw: Vec<u8>,
    /// Capacity hint for the next output chunk.
    last_len: usize,
}

impl Writer {
    /// Validates the schema (every Arrow type must map to a VOTable datatype, else Err naming the column).
    pub fn new(schema: SchemaRef, opts: WriterOptions) -> Result<Self, Error> {
        if schema.fields().is_empty() {
            return Err(Error::NoColumns);
        }
        let mut ids = IdAllocator::default();
        let columns = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| Column::plan(f, i, &mut ids, opts.encoding))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Writer {
            opts,
            columns,
            state: State::New,
            rows: 0,
            raw: Vec::new(),
            last_len: 4096,
        })
    }

    /// XML declaration, VOTABLE, RESOURCE, the QUERY_STATUS and extra INFOs, TABLE, FIELDs,
    /// and the opening of the data (`<TABLEDATA>` or `<BINARY2><STREAM encoding="base64">`).
    pub fn begin(&mut self) -> Bytes {
        if self.state != State::New {
            return Bytes::new();
        }
        let mut out = Vec::with_capacity(1024 + 256 * self.columns.len());
        self.write_header(&mut out);
        self.state = State::Begun;
        Bytes::from(out)
    }

    fn write_header(&self, out: &mut Vec<u8>) {
        self.write_table_head(out);
        out.extend_from_slice(match self.opts.encoding {
            Encoding::TableData => b"<DATA>\n<TABLEDATA>\n".as_slice(),
            Encoding::Binary2 => b"<DATA>\n<BINARY2>\n<STREAM encoding=\"base64\">\n",
            Encoding::Binary => b"<DATA>\n<BINARY>\n<STREAM encoding=\"base64\">\n",
        });
    }

    /// Everything before `<DATA>`: preamble, RESOURCE, INFOs, TABLE and its FIELDs.
    fn write_table_head(&self, out: &mut Vec<u8>) {
        write_preamble(out);
        out.extend_from_slice(b"<RESOURCE type=\"results\">\n");
        if let Some(d) = &self.opts.description {
            out.extend_from_slice(b"<DESCRIPTION>");
            xml::escape_text(out, d);
            out.extend_from_slice(b"</DESCRIPTION>\n");
        }
        out.extend_from_slice(b"<INFO name=\"QUERY_STATUS\" value=\"OK\"/>\n");
        for info in &self.opts.resource_infos {
            out.extend_from_slice(b"<INFO");
            attr(out, "name", &info.name);
            attr(out, "value", &info.value);
            match &info.content {
                Some(c) => {
                    out.push(b'>');
                    xml::escape_text(out, c);
                    out.extend_from_slice(b"</INFO>\n");
                }
                None => out.extend_from_slice(b"/>\n"),
            }
        }
        out.extend_from_slice(b"<TABLE");
        if let Some(name) = &self.opts.table_name {
            attr(out, "name", name);
        }
        out.extend_from_slice(b">\n");
        for col in &self.columns {
            col.write_field(out);
        }
    }

    /// Encodes the rows of one batch (columns by position; names may differ from the schema).
    /// On error nothing of the batch is emitted and the writer can still [`finish`](Writer::finish).
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<Bytes, Error> {
        if self.state == State::Finished {
            return Err(Error::Finished);
        }
        if batch.num_columns() != self.columns.len() {
            return Err(Error::SchemaMismatch(format!(
                "{} columns, expected {}",
                batch.num_columns(),
                self.columns.len()
            )));
        }
        let mut views = Vec::with_capacity(self.columns.len());
        for (col, array) in self.columns.iter().zip(batch.columns()) {
            if !array.data_type().equals_datatype(&col.data_type) {
                return Err(Error::SchemaMismatch(format!(
                    "column {:?} is {}, expected {}",
                    col.name,
                    array.data_type(),
                    col.data_type
                )));
            }
            views.push(View::new(array).map_err(Error::SchemaMismatch)?);
        }
        let mut out = Vec::with_capacity(self.last_len + self.last_len / 8);
        let header = self.state == State::New;
        if header {
            self.write_header(&mut out);
        }
        let n = batch.num_rows();
        let result = match self.opts.encoding {
            Encoding::TableData => self.tabledata_rows(&mut out, &views, n),
            Encoding::Binary2 | Encoding::Binary => self.binary_rows(&mut out, &views, n),
        };
        result?;
        // Emitted only now, so that a failed first batch leaves the header to `finish`.
        self.state = State::Begun;
        self.rows += n as u64;
        self.last_len = out.len().max(1024);
        Ok(Bytes::from(out))
    }

    fn cell_error(&self, c: usize, row: usize, reason: String) -> Error {
        Error::Value {
            column: self.columns[c].name.clone(),
            row: self.rows + row as u64,
            reason,
        }
    }

    fn tabledata_rows(&self, out: &mut Vec<u8>, views: &[View<'_>], n: usize) -> Result<(), Error> {
        let start = out.len();
        for row in 0..n {
            out.extend_from_slice(b"<TR>");
            for (c, (col, view)) in self.columns.iter().zip(views).enumerate() {
                if let Err(reason) = td_cell(out, col, view, row) {
                    out.truncate(start);
                    return Err(self.cell_error(c, row, reason));
                }
            }
            out.extend_from_slice(b"</TR>\n");
        }
        Ok(())
    }

    fn binary_rows(
        &mut self,
        out: &mut Vec<u8>,
        views: &[View<'_>],
        n: usize,
    ) -> Result<(), Error> {
        let mut raw = std::mem::take(&mut self.raw);
        let carried = raw.len();
        let flags = if self.opts.encoding == Encoding::Binary2 {
            self.columns.len().div_ceil(8)
        } else {
            0
        };
        for row in 0..n {
            let flags_at = raw.len();
            raw.resize(flags_at + flags, 0);
            for (c, (col, view)) in self.columns.iter().zip(views).enumerate() {
                match bin_cell(&mut raw, col, view, row) {
                    Ok(true) if flags > 0 => raw[flags_at + c / 8] |= 0x80 >> (c % 8),
                    Ok(_) => {}
                    Err(reason) => {
                        raw.truncate(carried);
                        self.raw = raw;
                        return Err(self.cell_error(c, row, reason));
                    }
                }
            }
        }
        let full = raw.len() / LINE_BYTES * LINE_BYTES;
        out.reserve(full / 3 * 4 + full / LINE_BYTES);
        for line in raw[..full].chunks_exact(LINE_BYTES) {
            base64_into(out, line);
            out.push(b'\n');
        }
        raw.drain(..full);
        self.raw = raw;
        Ok(())
    }

    /// Closes the data, the table and the document; `Overflow` and `Error` add a
    /// `QUERY_STATUS` INFO after `</TABLE>`.
    pub fn finish(&mut self, status: EndStatus) -> Bytes {
        if self.state == State::Finished {
            return Bytes::new();
        }
        let mut out = Vec::with_capacity(512);
        if self.state == State::New {
            self.write_header(&mut out);
        }
        self.state = State::Finished;
        match self.opts.encoding {
            Encoding::TableData => out.extend_from_slice(b"</TABLEDATA>\n</DATA>\n</TABLE>\n"),
            Encoding::Binary2 | Encoding::Binary => {
                if !self.raw.is_empty() {
                    base64_into(&mut out, &self.raw);
                    out.push(b'\n');
                    self.raw.clear();
                }
                out.extend_from_slice(if self.opts.encoding == Encoding::Binary2 {
                    b"</STREAM>\n</BINARY2>\n</DATA>\n</TABLE>\n".as_slice()
                } else {
                    b"</STREAM>\n</BINARY>\n</DATA>\n</TABLE>\n"
                });
            }
        }
        write_end(&mut out, &status, self.opts.extra_resources.as_deref());
        Bytes::from(out)
    }

    /// A complete document whose TABLE has the FIELDs and no DATA, with the `QUERY_STATUS`
    /// INFOs of `status` (as [`finish`](Writer::finish) writes them): the table metadata of a
    /// result serialized elsewhere, e.g. the `IVOA.VOTable-Parquet.content` of VOParquet.
    /// Independent of the writer's state.
    pub fn dataless_document(&self, status: &EndStatus) -> String {
        let mut out = Vec::with_capacity(1024 + 256 * self.columns.len());
        self.write_table_head(&mut out);
        out.extend_from_slice(b"</TABLE>\n");
        write_end(&mut out, status, self.opts.extra_resources.as_deref());
        // Everything written is valid UTF-8 (escaping copies whole characters).
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }
}

/// The `QUERY_STATUS` INFO after the TABLE (none for `Ok`) and the closing tags.
fn write_end(out: &mut Vec<u8>, status: &EndStatus, extra: Option<&str>) {
    match status {
        EndStatus::Ok => {}
        EndStatus::Overflow => {
            out.extend_from_slice(b"<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"/>\n")
        }
        EndStatus::Error(msg) => {
            out.extend_from_slice(b"<INFO name=\"QUERY_STATUS\" value=\"ERROR\">");
            xml::escape_text(out, msg);
            out.extend_from_slice(b"</INFO>\n");
        }
    }
    out.extend_from_slice(b"</RESOURCE>\n");
    if let Some(x) = extra {
        out.extend_from_slice(x.as_bytes());
    }
    out.extend_from_slice(b"</VOTABLE>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_reference() {
        use base64::Engine;
        for len in 0..200usize {
            let input: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let mut out = Vec::new();
            base64_into(&mut out, &input);
            assert_eq!(
                String::from_utf8(out).expect("ascii"),
                base64::engine::general_purpose::STANDARD.encode(&input)
            );
        }
    }
}
