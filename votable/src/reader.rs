//! Reading the first TABLE of a VOTable into Arrow (TABLEDATA, BINARY, BINARY2).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use datafusion::arrow::array::builder::{ArrayBuilder, NullBufferBuilder};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, FixedSizeListArray, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, ListArray, RecordBatch, StringBuilder, UInt8Builder,
};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use quick_xml::XmlVersion;

use crate::types::{parse_arraysize, Prim, Shape};
use crate::{meta, Error};

/// Rows per returned record batch.
const BATCH_ROWS: usize = 65_536;

/// Reads the first TABLE of a VOTable (TABLEDATA, BINARY, BINARY2; FIELD attributes →
/// Arrow field metadata with the keys of [`meta`](crate::meta)).
///
/// Mapping: `boolean`/`bit` → Boolean, `unsignedByte` → UInt8, `short` → Int16, `int` → Int32,
/// `long` → Int64, `float` → Float32, `double` → Float64, `char`/`unicodeChar` → Utf8 (of any
/// arraysize); numeric arrays → FixedSizeList (`N`, `AxB`) or List (`*`); complex values are
/// pairs of floats (a scalar is a FixedSizeList of 2). Text with an `xtype` (timestamps, …)
/// stays text. Nulls: empty TD, BINARY2 null flags, `<VALUES null>` matches, `?` booleans;
/// NaN stays NaN; TABLEDATA text that does not parse as the column's type reads as null (as
/// in STILTS); an integer outside its datatype's range is an error. Input that is not UTF-8 is read as ISO-8859-1. The result may hold no batch.
pub fn read(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text: Cow<'_, str> = match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    };
    let mut r = Reader::from_str(&text);
    loop {
        match next(&mut r)? {
            Event::Start(e) if local(&e) == "TABLE" => return read_table(&mut r),
            Event::Empty(e) if local(&e) == "TABLE" => {
                return Err(Error::Invalid("the first TABLE has no FIELD".into()))
            }
            Event::Eof => return Err(Error::Invalid("no TABLE element".into())),
            _ => {}
        }
    }
}

fn next<'a>(r: &mut Reader<&'a [u8]>) -> Result<Event<'a>, Error> {
    r.read_event().map_err(|source| Error::Xml {
        position: r.error_position(),
        source,
    })
}

fn local<'e>(e: &'e BytesStart<'_>) -> &'e str {
    e.local_name().into_inner()
}

fn skip(r: &mut Reader<&[u8]>, e: &BytesStart<'_>) -> Result<(), Error> {
    let name = e.name();
    r.read_to_end(name)
        .map(|_| ())
        .map_err(|source| Error::Xml {
            position: r.error_position(),
            source,
        })
}

fn attributes(e: &BytesStart<'_>) -> Result<HashMap<String, String>, Error> {
    let mut map = HashMap::new();
    for a in e.attributes() {
        let a = a.map_err(|err| Error::Xml {
            position: 0,
            source: quick_xml::Error::InvalidAttr(err),
        })?;
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|source| Error::Xml {
                position: 0,
                source,
            })?;
        map.insert(
            a.key.local_name().into_inner().to_owned(),
            value.into_owned(),
        );
    }
    Ok(map)
}

/// Appends the text of the current element (whose start was just read) up to its end tag,
/// resolving references and ignoring nested markup.
fn collect_text(r: &mut Reader<&[u8]>, out: &mut String) -> Result<(), Error> {
    let mut depth = 0usize;
    loop {
        match next(r)? {
            Event::Text(t) => out.push_str(&t.xml10_content()),
            Event::CData(c) => out.push_str(&c.xml10_content()),
            Event::GeneralRef(g) => {
                let ch = g.resolve_char_ref().map_err(|source| Error::Xml {
                    position: r.error_position(),
                    source,
                })?;
                match ch {
                    Some(c) => out.push(c),
                    None => match quick_xml::escape::resolve_predefined_entity(&g) {
                        Some(s) => out.push_str(s),
                        None => return Err(Error::Invalid(format!("unknown entity &{};", &*g))),
                    },
                }
            }
            Event::Start(_) => depth += 1,
            Event::End(_) if depth == 0 => return Ok(()),
            Event::End(_) => depth -= 1,
            Event::Eof => return Err(Error::Invalid("unexpected end of document".into())),
            _ => {}
        }
    }
}

/// A FIELD as declared.
struct FieldDesc {
    name: String,
    metadata: HashMap<String, String>,
    /// Element type (complex types become their float type, with `factor` 2).
    elem: Prim,
    factor: usize,
    shape: Shape,
    null: Option<String>,
    null_int: Option<i64>,
}

impl FieldDesc {
    fn new(attrs: HashMap<String, String>, index: usize) -> Result<FieldDesc, Error> {
        let name = attrs
            .get("name")
            .or_else(|| attrs.get("ID"))
            .cloned()
            .unwrap_or_else(|| format!("col{}", index + 1));
        let datatype = attrs
            .get("datatype")
            .ok_or_else(|| Error::Invalid(format!("FIELD {name:?} has no datatype")))?;
        let prim = Prim::parse(datatype).ok_or_else(|| {
            Error::Invalid(format!("FIELD {name:?}: unknown datatype {datatype:?}"))
        })?;
        let shape = match attrs.get("arraysize") {
            None => Shape::Scalar,
            Some(s) => parse_arraysize(s)
                .ok_or_else(|| Error::Invalid(format!("FIELD {name:?}: bad arraysize {s:?}")))?,
        };
        let (elem, factor) = match prim {
            Prim::FloatComplex => (Prim::Float, 2),
            Prim::DoubleComplex => (Prim::Double, 2),
            p => (p, 1),
        };
        let mut metadata = HashMap::new();
        for key in [
            meta::ID,
            meta::DATATYPE,
            meta::ARRAYSIZE,
            meta::UNIT,
            meta::UCD,
            meta::UTYPE,
            meta::XTYPE,
        ] {
            if let Some(v) = attrs.get(key).filter(|v| !v.trim().is_empty()) {
                metadata.insert(key.to_owned(), v.clone());
            }
        }
        Ok(FieldDesc {
            name,
            metadata,
            elem,
            factor,
            shape,
            null: None,
            null_int: None,
        })
    }

    fn set_null(&mut self, null: String) {
        self.null_int = parse_int(null.trim());
        self.null = Some(null);
    }

    fn element_type(&self) -> DataType {
        match self.elem {
            Prim::Boolean | Prim::Bit => DataType::Boolean,
            Prim::UnsignedByte => DataType::UInt8,
            Prim::Short => DataType::Int16,
            Prim::Int => DataType::Int32,
            Prim::Long => DataType::Int64,
            Prim::Float | Prim::FloatComplex => DataType::Float32,
            Prim::Double | Prim::DoubleComplex => DataType::Float64,
            Prim::Char | Prim::UnicodeChar => DataType::Utf8,
        }
    }

    /// The Arrow layout: text, scalar, fixed-size list of n, or variable list.
    fn layout(&self) -> Result<Layout, Error> {
        if self.elem.is_text() {
            return Ok(Layout::Text);
        }
        let fixed = |n: usize| -> Result<Layout, Error> {
            let total = n
                .checked_mul(self.factor)
                .filter(|t| *t > 0)
                .filter(|t| i32::try_from(*t).is_ok())
                .ok_or_else(|| {
                    Error::Invalid(format!("FIELD {:?}: arraysize too large", self.name))
                })?;
            Ok(Layout::Fixed(total))
        };
        match self.shape {
            Shape::Scalar if self.factor == 1 => Ok(Layout::Scalar),
            Shape::Fixed(1) if self.factor == 1 => Ok(Layout::Scalar),
            Shape::Scalar => fixed(1),
            Shape::Fixed(n) => fixed(n),
            Shape::Variable { .. } => Ok(Layout::Variable),
        }
    }

    fn arrow_field(&self) -> Result<Field, Error> {
        let item = Arc::new(Field::new("item", self.element_type(), true));
        let dt = match self.layout()? {
            Layout::Text | Layout::Scalar => self.element_type(),
            Layout::Fixed(n) => DataType::FixedSizeList(item, n as i32),
            Layout::Variable => DataType::List(item),
        };
        Ok(Field::new(self.name.clone(), dt, true).with_metadata(self.metadata.clone()))
    }
}

#[derive(Clone, Copy)]
enum Layout {
    Text,
    Scalar,
    Fixed(usize),
    Variable,
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i128::from(u64::from_str_radix(hex, 16).ok()?)
    } else {
        i128::from(digits.parse::<u64>().ok()?)
    };
    i64::try_from(if neg { -v } else { v }).ok()
}

/// A TABLEDATA boolean; `?`, empty and anything unrecognised are null.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "T" | "t" | "1" | "true" | "TRUE" | "True" => Some(true),
        "F" | "f" | "0" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A builder for the elements of a non-text column.
enum Values {
    Bool(BooleanBuilder),
    U8(UInt8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
}

impl Values {
    fn new(elem: Prim) -> Values {
        match elem {
            Prim::Boolean | Prim::Bit | Prim::Char | Prim::UnicodeChar => {
                Values::Bool(BooleanBuilder::new())
            }
            Prim::UnsignedByte => Values::U8(UInt8Builder::new()),
            Prim::Short => Values::I16(Int16Builder::new()),
            Prim::Int => Values::I32(Int32Builder::new()),
            Prim::Long => Values::I64(Int64Builder::new()),
            Prim::Float | Prim::FloatComplex => Values::F32(Float32Builder::new()),
            Prim::Double | Prim::DoubleComplex => Values::F64(Float64Builder::new()),
        }
    }

    fn append_null(&mut self) {
        match self {
            Values::Bool(b) => b.append_null(),
            Values::U8(b) => b.append_null(),
            Values::I16(b) => b.append_null(),
            Values::I32(b) => b.append_null(),
            Values::I64(b) => b.append_null(),
            Values::F32(b) => b.append_null(),
            Values::F64(b) => b.append_null(),
        }
    }

    /// Appends an integer (null if it is the declared null); returns whether it was null.
    fn append_int(&mut self, v: i64, null_int: Option<i64>) -> Result<bool, String> {
        if null_int == Some(v) {
            self.append_null();
            return Ok(true);
        }
        let range = || format!("value {v} out of range");
        match self {
            Values::U8(b) => b.append_value(u8::try_from(v).map_err(|_| range())?),
            Values::I16(b) => b.append_value(i16::try_from(v).map_err(|_| range())?),
            Values::I32(b) => b.append_value(i32::try_from(v).map_err(|_| range())?),
            Values::I64(b) => b.append_value(v),
            Values::F32(b) => b.append_value(v as f32),
            Values::F64(b) => b.append_value(v as f64),
            Values::Bool(b) => b.append_value(v != 0),
        }
        Ok(false)
    }

    fn append_f64(&mut self, v: Option<f64>) -> bool {
        match self {
            Values::F32(b) => b.append_option(v.map(|v| v as f32)),
            Values::F64(b) => b.append_option(v),
            _ => self.append_null(),
        }
        v.is_none_or(f64::is_nan)
    }

    /// One TABLEDATA token; returns whether it was missing (null or NaN).
    fn append_text(
        &mut self,
        tok: &str,
        null: Option<&str>,
        null_int: Option<i64>,
    ) -> Result<bool, String> {
        if tok.is_empty() || null == Some(tok) {
            self.append_null();
            return Ok(true);
        }
        // Like STILTS, text that is not a value of the column's type ("null", "-", "n/a", …,
        // which some services write for missing values) reads as null.
        Ok(match self {
            Values::Bool(b) => {
                let v = parse_bool(tok);
                b.append_option(v);
                v.is_none()
            }
            Values::F32(_) | Values::F64(_) => self.append_f64(tok.parse::<f64>().ok()),
            _ => match parse_int(tok) {
                Some(v) => self.append_int(v, null_int)?,
                None => {
                    self.append_null();
                    true
                }
            },
        })
    }

    /// Element `k` of a BINARY array of `elem` values; returns whether it was missing.
    fn append_binary(
        &mut self,
        elem: Prim,
        bytes: &[u8],
        k: usize,
        null_int: Option<i64>,
    ) -> Result<bool, String> {
        let s = elem.size();
        let at = |n: usize| -> Result<&[u8], String> {
            bytes
                .get(k * n..(k + 1) * n)
                .ok_or_else(|| "truncated value".to_owned())
        };
        Ok(match (elem, &mut *self) {
            (Prim::Bit, Values::Bool(b)) => {
                let byte = bytes.get(k / 8).ok_or("truncated bit array")?;
                b.append_value(byte & (0x80 >> (k % 8)) != 0);
                false
            }
            (_, Values::Bool(b)) => {
                let v = match at(1)?[0] {
                    b'T' | b't' | b'1' | 1 => Some(true),
                    b'F' | b'f' | b'0' => Some(false),
                    _ => None,
                };
                b.append_option(v);
                v.is_none()
            }
            (_, Values::U8(_)) => self.append_int(i64::from(at(1)?[0]), null_int)?,
            (_, Values::I16(_)) => {
                let v = i16::from_be_bytes(at(s)?.try_into().map_err(|_| "bad short")?);
                self.append_int(i64::from(v), null_int)?
            }
            (_, Values::I32(_)) => {
                let v = i32::from_be_bytes(at(s)?.try_into().map_err(|_| "bad int")?);
                self.append_int(i64::from(v), null_int)?
            }
            (_, Values::I64(_)) => {
                let v = i64::from_be_bytes(at(s)?.try_into().map_err(|_| "bad long")?);
                self.append_int(v, null_int)?
            }
            (_, Values::F32(_)) => {
                let v = f32::from_be_bytes(at(4)?.try_into().map_err(|_| "bad float")?);
                self.append_f64(Some(f64::from(v)))
            }
            (_, Values::F64(_)) => {
                let v = f64::from_be_bytes(at(8)?.try_into().map_err(|_| "bad double")?);
                self.append_f64(Some(v))
            }
        })
    }

    fn len(&self) -> usize {
        match self {
            Values::Bool(b) => b.len(),
            Values::U8(b) => b.len(),
            Values::I16(b) => b.len(),
            Values::I32(b) => b.len(),
            Values::I64(b) => b.len(),
            Values::F32(b) => b.len(),
            Values::F64(b) => b.len(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Values::Bool(b) => Arc::new(b.finish()),
            Values::U8(b) => Arc::new(b.finish()),
            Values::I16(b) => Arc::new(b.finish()),
            Values::I32(b) => Arc::new(b.finish()),
            Values::I64(b) => Arc::new(b.finish()),
            Values::F32(b) => Arc::new(b.finish()),
            Values::F64(b) => Arc::new(b.finish()),
        }
    }
}

/// The builder of one column.
enum Builder {
    Text(StringBuilder),
    Scalar(Values),
    Fixed {
        n: usize,
        values: Values,
        nulls: NullBufferBuilder,
        item: FieldRef,
    },
    Variable {
        offsets: Vec<i32>,
        values: Values,
        nulls: NullBufferBuilder,
        item: FieldRef,
    },
}

impl Builder {
    fn new(f: &FieldDesc) -> Result<Builder, Error> {
        let item = Arc::new(Field::new("item", f.element_type(), true));
        Ok(match f.layout()? {
            Layout::Text => Builder::Text(StringBuilder::new()),
            Layout::Scalar => Builder::Scalar(Values::new(f.elem)),
            Layout::Fixed(n) => Builder::Fixed {
                n,
                values: Values::new(f.elem),
                nulls: NullBufferBuilder::new(0),
                item,
            },
            Layout::Variable => Builder::Variable {
                offsets: vec![0],
                values: Values::new(f.elem),
                nulls: NullBufferBuilder::new(0),
                item,
            },
        })
    }

    fn append_null(&mut self) {
        match self {
            Builder::Text(b) => b.append_null(),
            Builder::Scalar(v) => v.append_null(),
            Builder::Fixed {
                n, values, nulls, ..
            } => {
                (0..*n).for_each(|_| values.append_null());
                nulls.append_null();
            }
            Builder::Variable {
                offsets,
                values,
                nulls,
                ..
            } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                let _ = values;
                nulls.append_null();
            }
        }
    }

    /// One TABLEDATA cell.
    fn append_text(&mut self, f: &FieldDesc, text: &str) -> Result<(), String> {
        let null = f.null.as_deref();
        match self {
            Builder::Text(b) => {
                if text.is_empty() || null == Some(text) {
                    b.append_null();
                } else {
                    b.append_value(text);
                }
            }
            Builder::Scalar(v) => {
                v.append_text(text.trim(), null, f.null_int)?;
            }
            _ if text.trim().is_empty() => self.append_null(),
            Builder::Fixed {
                n, values, nulls, ..
            } => {
                let mut k = 0;
                let mut all_missing = *n > 0;
                for tok in tokens(text, f.elem) {
                    if k == *n {
                        break;
                    }
                    all_missing &= values.append_text(tok, null, f.null_int)?;
                    k += 1;
                }
                (k..*n).for_each(|_| values.append_null());
                // TABLEDATA has no null for a fixed-size array: all elements null/NaN is one.
                nulls.append(!all_missing);
            }
            Builder::Variable {
                offsets,
                values,
                nulls,
                ..
            } => {
                for tok in tokens(text, f.elem) {
                    values.append_text(tok, null, f.null_int)?;
                }
                offsets.push(i32::try_from(values.len()).map_err(|_| "column too large")?);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    /// One BINARY/BINARY2 cell starting at `*pos`.
    /// `flagged`: the stream has null flags (BINARY2), so no null is inferred from the values.
    fn append_binary(
        &mut self,
        f: &FieldDesc,
        data: &[u8],
        pos: &mut usize,
        is_null: bool,
        flagged: bool,
    ) -> Result<(), String> {
        let count = match f.shape {
            Shape::Scalar => 1,
            Shape::Fixed(n) => n,
            Shape::Variable { .. } => {
                let c = take(data, pos, 4)?;
                u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize
            }
        };
        let count = count.checked_mul(f.factor).ok_or("array too large")?;
        let nbytes = if f.elem == Prim::Bit {
            count.div_ceil(8)
        } else {
            count.checked_mul(f.elem.size()).ok_or("array too large")?
        };
        let bytes = take(data, pos, nbytes)?;
        if is_null {
            self.append_null();
            return Ok(());
        }
        match self {
            Builder::Text(b) => {
                let s = if f.elem == Prim::UnicodeChar {
                    let units = bytes
                        .chunks_exact(2)
                        .map(|u| u16::from_be_bytes([u[0], u[1]]))
                        .take_while(|u| *u != 0);
                    char::decode_utf16(units)
                        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                        .collect::<String>()
                } else {
                    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
                    String::from_utf8_lossy(&bytes[..end]).into_owned()
                };
                if f.null.as_deref() == Some(s.as_str()) {
                    b.append_null();
                } else {
                    b.append_value(s);
                }
            }
            Builder::Scalar(v) => {
                v.append_binary(f.elem, bytes, 0, f.null_int)?;
            }
            Builder::Fixed { values, nulls, .. } => {
                let mut all_missing = count > 0;
                for k in 0..count {
                    all_missing &= values.append_binary(f.elem, bytes, k, f.null_int)?;
                }
                // BINARY has no null for a fixed-size array: all elements null/NaN is one.
                nulls.append(flagged || !all_missing);
            }
            Builder::Variable {
                offsets,
                values,
                nulls,
                ..
            } => {
                for k in 0..count {
                    values.append_binary(f.elem, bytes, k, f.null_int)?;
                }
                offsets.push(i32::try_from(values.len()).map_err(|_| "column too large")?);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, Error> {
        Ok(match self {
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Scalar(v) => v.finish(),
            Builder::Fixed {
                n,
                values,
                nulls,
                item,
            } => Arc::new(FixedSizeListArray::try_new(
                item.clone(),
                *n as i32,
                values.finish(),
                nulls.finish(),
            )?),
            Builder::Variable {
                offsets,
                values,
                nulls,
                item,
            } => {
                let offs = std::mem::replace(offsets, vec![0]);
                Arc::new(ListArray::try_new(
                    item.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offs)),
                    values.finish(),
                    nulls.finish(),
                )?)
            }
        })
    }
}

/// The next `n` bytes of `data` from `*pos`, advancing `*pos`.
fn take<'d>(data: &'d [u8], pos: &mut usize, n: usize) -> Result<&'d [u8], String> {
    let end = pos
        .checked_add(n)
        .filter(|e| *e <= data.len())
        .ok_or("truncated stream")?;
    let s = &data[*pos..end];
    *pos = end;
    Ok(s)
}

/// Whitespace-separated tokens; a bit array may also be written as one run of 0/1 digits.
fn tokens(text: &str, elem: Prim) -> Box<dyn Iterator<Item = &str> + '_> {
    if elem == Prim::Bit {
        Box::new(
            text.split_whitespace()
                .flat_map(|t| (0..t.len()).filter_map(move |i| t.get(i..i + 1))),
        )
    } else {
        Box::new(text.split_whitespace())
    }
}

/// Rows being assembled into batches.
struct Table {
    fields: Vec<FieldDesc>,
    schema: SchemaRef,
    builders: Vec<Builder>,
    rows: usize,
    batches: Vec<RecordBatch>,
}

impl Table {
    fn new(fields: Vec<FieldDesc>) -> Result<Table, Error> {
        let schema = Arc::new(Schema::new(
            fields
                .iter()
                .map(FieldDesc::arrow_field)
                .collect::<Result<Vec<_>, _>>()?,
        ));
        let builders = fields
            .iter()
            .map(Builder::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Table {
            fields,
            schema,
            builders,
            rows: 0,
            batches: Vec::new(),
        })
    }

    fn end_row(&mut self) -> Result<(), Error> {
        self.rows += 1;
        if self.rows == BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        if self.rows == 0 {
            return Ok(());
        }
        let columns = self
            .builders
            .iter_mut()
            .map(Builder::finish)
            .collect::<Result<Vec<_>, _>>()?;
        self.batches
            .push(RecordBatch::try_new(self.schema.clone(), columns)?);
        self.rows = 0;
        Ok(())
    }

    fn cell_error(&self, row: usize, col: usize, reason: String) -> Error {
        let name = self.fields.get(col).map_or("?", |f| f.name.as_str());
        Error::Invalid(format!(
            "row {}, column {name:?}: {reason}",
            self.batches.len() * BATCH_ROWS + row + 1
        ))
    }

    fn read_tabledata(&mut self, r: &mut Reader<&[u8]>) -> Result<(), Error> {
        let mut cell = String::new();
        let mut col = 0usize;
        let mut in_row = false;
        loop {
            match next(r)? {
                Event::Start(e) => match local(&e) {
                    "TR" => {
                        in_row = true;
                        col = 0;
                    }
                    "TD" if in_row => {
                        cell.clear();
                        collect_text(r, &mut cell)?;
                        if let (Some(b), Some(f)) =
                            (self.builders.get_mut(col), self.fields.get(col))
                        {
                            if let Err(reason) = b.append_text(f, &cell) {
                                return Err(self.cell_error(self.rows, col, reason));
                            }
                        }
                        col += 1;
                    }
                    _ => skip(r, &e)?,
                },
                Event::Empty(e) => match local(&e) {
                    "TD" if in_row => {
                        if let Some(b) = self.builders.get_mut(col) {
                            b.append_null();
                        }
                        col += 1;
                    }
                    "TR" => {
                        self.builders.iter_mut().for_each(Builder::append_null);
                        self.end_row()?;
                    }
                    _ => {}
                },
                Event::End(e) => match e.local_name().into_inner() {
                    "TR" => {
                        for b in self.builders.iter_mut().skip(col) {
                            b.append_null();
                        }
                        in_row = false;
                        self.end_row()?;
                    }
                    _ => return Ok(()),
                },
                Event::Eof => return Err(Error::Invalid("unterminated TABLEDATA".into())),
                _ => {}
            }
        }
    }

    fn read_binary(&mut self, data: &[u8], flags: bool) -> Result<(), Error> {
        let nflags = if flags {
            self.fields.len().div_ceil(8)
        } else {
            0
        };
        let mut pos = 0usize;
        while pos < data.len() {
            let flag_bytes = data
                .get(pos..pos + nflags)
                .ok_or_else(|| self.cell_error(self.rows, 0, "truncated stream".into()))?;
            pos += nflags;
            for c in 0..self.fields.len() {
                let is_null = flags && flag_bytes[c / 8] & (0x80 >> (c % 8)) != 0;
                if let Err(reason) =
                    self.builders[c].append_binary(&self.fields[c], data, &mut pos, is_null, flags)
                {
                    return Err(self.cell_error(self.rows, c, reason));
                }
            }
            self.end_row()?;
        }
        Ok(())
    }
}

fn read_table(r: &mut Reader<&[u8]>) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let mut fields: Vec<FieldDesc> = Vec::new();
    let mut table: Option<Table> = None;
    let mut binary2 = false;
    loop {
        match next(r)? {
            Event::Start(e) => match local(&e) {
                "FIELD" => {
                    let mut f = FieldDesc::new(attributes(&e)?, fields.len())?;
                    read_field_children(r, &mut f)?;
                    fields.push(f);
                }
                "DATA" => {}
                "TABLEDATA" => {
                    ensure_table(&mut table, &mut fields)?.read_tabledata(r)?;
                }
                "BINARY" => binary2 = false,
                "BINARY2" => binary2 = true,
                "STREAM" => {
                    let attrs = attributes(&e)?;
                    if let Some(href) = attrs.get("href") {
                        return Err(Error::Unsupported(format!("external STREAM href={href:?}")));
                    }
                    match attrs.get("encoding").map(String::as_str) {
                        None | Some("base64") => {}
                        Some(other) => {
                            return Err(Error::Unsupported(format!("STREAM encoding {other:?}")))
                        }
                    }
                    let mut text = String::new();
                    collect_text(r, &mut text)?;
                    let data = decode_base64(&text)?;
                    ensure_table(&mut table, &mut fields)?.read_binary(&data, binary2)?;
                }
                "FITS" => return Err(Error::Unsupported("FITS serialization".into())),
                "PARQUET" => return Err(Error::Unsupported("PARQUET serialization".into())),
                _ => skip(r, &e)?,
            },
            Event::Empty(e) if local(&e) == "FIELD" => {
                fields.push(FieldDesc::new(attributes(&e)?, fields.len())?);
            }
            Event::End(e) if e.local_name().into_inner() == "TABLE" => break,
            Event::Eof => return Err(Error::Invalid("unterminated TABLE".into())),
            _ => {}
        }
    }
    let mut table = match table {
        Some(t) => t,
        None => Table::new(std::mem::take(&mut fields))?,
    };
    if table.fields.is_empty() {
        return Err(Error::Invalid("the first TABLE has no FIELD".into()));
    }
    table.flush()?;
    Ok((table.schema, table.batches))
}

fn ensure_table<'t>(
    table: &'t mut Option<Table>,
    fields: &mut Vec<FieldDesc>,
) -> Result<&'t mut Table, Error> {
    if table.is_none() {
        if fields.is_empty() {
            return Err(Error::Invalid("DATA before any FIELD".into()));
        }
        *table = Some(Table::new(std::mem::take(fields))?);
    }
    table
        .as_mut()
        .ok_or_else(|| Error::Invalid("internal: no table".into()))
}

fn read_field_children(r: &mut Reader<&[u8]>, f: &mut FieldDesc) -> Result<(), Error> {
    loop {
        match next(r)? {
            Event::Start(e) => match local(&e) {
                "DESCRIPTION" => {
                    let mut text = String::new();
                    collect_text(r, &mut text)?;
                    let text = text.trim();
                    if !text.is_empty() {
                        f.metadata
                            .insert(meta::DESCRIPTION.to_owned(), text.to_owned());
                    }
                }
                "VALUES" => {
                    if let Some(null) = attributes(&e)?.remove("null") {
                        f.set_null(null);
                    }
                    skip(r, &e)?;
                }
                _ => skip(r, &e)?,
            },
            Event::Empty(e) if local(&e) == "VALUES" => {
                if let Some(null) = attributes(&e)?.remove("null") {
                    f.set_null(null);
                }
            }
            Event::End(_) => return Ok(()),
            Event::Eof => return Err(Error::Invalid("unterminated FIELD".into())),
            _ => {}
        }
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, Error> {
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    engine
        .decode(&compact)
        .map_err(|e| Error::Invalid(format!("bad base64 in STREAM: {e}")))
}
