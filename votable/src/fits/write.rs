//! FITS output (FITS 4.0): an empty primary HDU and one `BINTABLE` extension.
//!
//! A binary table header states the row count (`NAXIS2`), each string column's width
//! (`TFORMn = 'wA'`) and the heap size (`PCOUNT`) before the first row, and none of them is
//! known until the query ends. The encoder therefore collects the result first
//! ([`Spill`]: in memory up to 16 MiB, then an unlinked temporary file as Arrow IPC) while it
//! gathers those numbers, and writes the whole file at the end: headers, then the rows read
//! back batch by batch, then the heap (a second pass), then the padding. Memory stays at a
//! few batches whatever the size (measured: a 10M-row, 1.25 GB FITS download peaks ~120 MB
//! above the idle server, as a VOTable BINARY2 download does plus the 16 MiB kept before
//! spilling); disk takes about the result's Arrow size, only while the response lasts.
//! A count query first would run the query twice and still not know the string widths; so
//! the single run plus spill is the choice.
//!
//! Types (Arrow → `TFORMn`): Boolean → `L`, Int8/Int16 → `I`, UInt8 → `B`, Int32/UInt16 →
//! `J`, Int64/UInt32 → `K`, UInt64 → `K` with `TZERO = 2^63`, Float16/Float32 → `E`,
//! Float64/Decimal → `D`, strings (and dates, times, timestamps as ISO-8601 text) → `wA` with
//! `w` the longest value (at least 1; non-ASCII and control characters become `?`, as in
//! VOTable `char`), fixed-size lists → `nX` (DALI `point`: `2D`, `circle`: `3D`), lists →
//! `1PX(max)` descriptors into the heap (`1QX(max)` past 2 GiB of heap), Binary → `1PB(max)`,
//! FixedSizeBinary(n) → `nB`.
//!
//! NULLs: floats are NaN; integers get `TNULLn`, a value chosen outside the column's actual
//! range (the type's minimum, else its maximum; when the values fill the whole range the
//! column is widened, `B` → `I` → `J` → `K`); booleans are the byte 0; a NULL string is empty;
//! a NULL variable-length array has no elements.
//!
//! Column metadata: `TTYPEn` (name), `TUNITn`, and as STIL writes them `TUCDn`, `TUTYPn` and
//! `TCOMMn` (description), each cut to one 80-character card. The extension header says
//! `QRYSTAT = 'OK'` or `'OVERFLOW'` (MAXREC cut the result) and carries the result INFOs
//! (the query, ...) as `COMMENT` cards. A query that fails after its first row (nothing has
//! been sent yet then) gives [`error_file`]: a header saying `QRYSTAT = 'ERROR'` and why, and
//! no table.

use std::sync::Arc;

use crate::spill::{Pass, Spill, Spilled, DEFAULT_BUDGET};
use crate::{EndStatus, Info};
use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray,
    LargeListArray, StringArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Schema, SchemaRef,
    UInt64Type, UInt8Type,
};
use datafusion::arrow::record_batch::RecordBatch;

/// FITS blocks are 2880 bytes.
pub const BLOCK: usize = 2880;
/// Header cards are 80 characters.
pub const CARD: usize = 80;
/// A binary table has at most 999 columns (`TFIELDS`).
pub const MAX_COLUMNS: usize = 999;
/// Characters of a string value that fit one card (`KEYWORD= '...'`).
const MAX_STRING: usize = 68;
/// Characters of one commentary card after `COMMENT `.
const COMMENTARY: usize = 72;
/// At most this many `COMMENT` cards per result INFO.
const MAX_INFO_CARDS: usize = 40;

// ---------------------------------------------------------------------------- header cards

/// One character of header text: printable ASCII, anything else as `?`.
fn ascii_char(c: char) -> u8 {
    if (' '..='~').contains(&c) {
        c as u8
    } else {
        b'?'
    }
}

/// A FITS header being written: 80-character cards, closed by `END` and padded with spaces
/// to a multiple of 2880 bytes.
#[derive(Debug, Default)]
pub struct Header {
    buf: Vec<u8>,
}

impl Header {
    /// An empty header.
    pub fn new() -> Self {
        Header::default()
    }

    /// A value card: keyword in columns 1–8, `= ` in 9–10, then the value text and an
    /// optional ` / comment`, cut or padded to 80 characters.
    fn card(&mut self, key: &str, value: &[u8], comment: &str) {
        let start = self.buf.len();
        self.keyword(key);
        self.buf.extend_from_slice(b"= ");
        self.buf.extend_from_slice(value);
        if !comment.is_empty() && self.buf.len() - start + 3 < CARD {
            self.buf.extend_from_slice(b" / ");
            self.buf.extend(comment.chars().map(ascii_char));
        }
        self.buf.truncate(start + CARD);
        self.buf.resize(start + CARD, b' ');
    }

    fn keyword(&mut self, key: &str) {
        let k: Vec<u8> = key.chars().take(8).map(ascii_char).collect();
        self.buf.extend_from_slice(&k);
        self.buf.extend(std::iter::repeat_n(b' ', 8 - k.len()));
    }

    /// A fixed-format value: right-justified to column 30.
    fn fixed(&mut self, key: &str, text: &str, comment: &str) {
        self.card(key, format!("{text:>20}").as_bytes(), comment);
    }

    /// `KEY     =                    T`.
    pub fn logical(&mut self, key: &str, value: bool, comment: &str) {
        self.fixed(key, if value { "T" } else { "F" }, comment);
    }

    /// An integer value.
    pub fn int(&mut self, key: &str, value: i64, comment: &str) {
        self.fixed(key, &value.to_string(), comment);
    }

    /// An unsigned integer value (for `TZEROn = 9223372036854775808`).
    pub fn uint(&mut self, key: &str, value: u64, comment: &str) {
        self.fixed(key, &value.to_string(), comment);
    }

    /// A string value: quoted from column 11, quotes doubled, at least 8 characters between
    /// the quotes, cut to what one card holds (68 characters, a doubled quote never split).
    pub fn string(&mut self, key: &str, value: &str, comment: &str) {
        let mut v = Vec::with_capacity(MAX_STRING + 2);
        v.push(b'\'');
        for c in value.chars() {
            let b = ascii_char(c);
            let need = if b == b'\'' { 2 } else { 1 };
            if v.len() - 1 + need > MAX_STRING {
                break;
            }
            v.push(b);
            if b == b'\'' {
                v.push(b'\'');
            }
        }
        while v.len() < 9 {
            v.push(b' ');
        }
        v.push(b'\'');
        self.card(key, &v, comment);
    }

    /// Commentary cards (`COMMENT`, `HISTORY`): the text cut into 72-character cards, at most
    /// `max_cards` of them.
    pub fn commentary(&mut self, key: &str, text: &str, max_cards: usize) {
        let bytes: Vec<u8> = text.chars().map(ascii_char).collect();
        let chunks: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[][..]]
        } else {
            bytes.chunks(COMMENTARY).take(max_cards).collect()
        };
        for chunk in chunks {
            let start = self.buf.len();
            self.keyword(key);
            self.buf.extend_from_slice(chunk);
            self.buf.resize(start + CARD, b' ');
        }
    }

    /// The header: the cards, `END`, spaces up to the block boundary.
    pub fn finish(mut self) -> Vec<u8> {
        self.keyword("END");
        let start = self.buf.len() - 8;
        self.buf.resize(start + CARD, b' ');
        let padded = self.buf.len().div_ceil(BLOCK) * BLOCK;
        self.buf.resize(padded, b' ');
        self.buf
    }
}

/// The empty primary HDU that precedes the table.
pub fn primary_header() -> Vec<u8> {
    let mut h = Header::new();
    h.logical("SIMPLE", true, "conforms to FITS standard");
    h.int("BITPIX", 8, "array data type");
    h.int("NAXIS", 0, "no primary data array");
    h.logical("EXTEND", true, "a binary table extension follows");
    h.string("ORIGIN", "vostok", "Virtual Observatory data server");
    h.commentary(
        "COMMENT",
        concat!(
            "FITS (Flexible Image Transport System) format is defined in 'Astronomy and ",
            "Astrophysics', volume 376, page 359; bibcode: 2001A&A...376..359H"
        ),
        2,
    );
    h.finish()
}

// ---------------------------------------------------------------------------- type mapping

/// The element types of a binary table (the `TFORMn` letters used here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// Logical: `T`, `F`, or 0 for NULL.
    L,
    /// Unsigned byte.
    B,
    /// 16-bit integer.
    I,
    /// 32-bit integer.
    J,
    /// 64-bit integer.
    K,
    /// 32-bit float.
    E,
    /// 64-bit float.
    D,
    /// Character.
    A,
}

impl Elem {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::L | Elem::B | Elem::A => 1,
            Elem::I => 2,
            Elem::J | Elem::E => 4,
            Elem::K | Elem::D => 8,
        }
    }

    /// The `TFORMn` letter.
    pub fn letter(self) -> char {
        match self {
            Elem::L => 'L',
            Elem::B => 'B',
            Elem::I => 'I',
            Elem::J => 'J',
            Elem::K => 'K',
            Elem::E => 'E',
            Elem::D => 'D',
            Elem::A => 'A',
        }
    }

    /// Integer range (of the stored values).
    fn range(self) -> Option<(i64, i64)> {
        Some(match self {
            Elem::B => (0, 255),
            Elem::I => (i64::from(i16::MIN), i64::from(i16::MAX)),
            Elem::J => (i64::from(i32::MIN), i64::from(i32::MAX)),
            Elem::K => (i64::MIN, i64::MAX),
            _ => return None,
        })
    }

    /// The next wider integer type.
    fn wider(self) -> Option<Elem> {
        match self {
            Elem::B => Some(Elem::I),
            Elem::I => Some(Elem::J),
            Elem::J => Some(Elem::K),
            _ => None,
        }
    }
}

/// How a column's cells are laid out in the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One element (strings: `w` characters).
    Scalar,
    /// `n` elements.
    Fixed(usize),
    /// A descriptor (count, heap offset); the elements are in the heap.
    Var,
}

/// How an Arrow type is written: the Arrow type the values are cast to before they are
/// collected, the element type, the layout, and whether it is a UInt64 (`TZERO = 2^63`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypePlan {
    /// The Arrow type the collected values have.
    pub canonical: DataType,
    /// The element type (before any widening for a NULL value).
    pub elem: Elem,
    /// Scalar, fixed array or variable array.
    pub shape: Shape,
    /// UInt64 values, stored as `value - 2^63` with `TZEROn = 2^63`.
    pub unsigned64: bool,
}

/// The mapping of a scalar numeric or boolean type.
fn scalar_type(dt: &DataType) -> Option<(DataType, Elem, bool)> {
    use DataType as D;
    Some(match dt {
        D::Boolean => (D::Boolean, Elem::L, false),
        D::Int8 | D::Int16 => (D::Int16, Elem::I, false),
        D::UInt8 => (D::UInt8, Elem::B, false),
        D::Int32 | D::UInt16 => (D::Int32, Elem::J, false),
        D::Int64 | D::UInt32 => (D::Int64, Elem::K, false),
        D::UInt64 => (D::UInt64, Elem::K, true),
        D::Float16 | D::Float32 => (D::Float32, Elem::E, false),
        D::Float64 | D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) => {
            (D::Float64, Elem::D, false)
        }
        _ => return None,
    })
}

/// The FITS plan of an Arrow type, `None` when it has no FITS counterpart.
pub fn plan_type(dt: &DataType) -> Option<TypePlan> {
    use DataType as D;
    if let Some((canonical, elem, unsigned64)) = scalar_type(dt) {
        return Some(TypePlan {
            canonical,
            elem,
            shape: Shape::Scalar,
            unsigned64,
        });
    }
    let plan = |canonical, elem, shape| TypePlan {
        canonical,
        elem,
        shape,
        unsigned64: false,
    };
    Some(match dt {
        D::Utf8
        | D::LargeUtf8
        | D::Utf8View
        | D::Null
        | D::Date32
        | D::Date64
        | D::Timestamp(..)
        | D::Time32(_)
        | D::Time64(_) => plan(D::Utf8, Elem::A, Shape::Scalar),
        D::Binary | D::LargeBinary | D::BinaryView => plan(D::Binary, Elem::B, Shape::Var),
        D::FixedSizeBinary(n) => plan(
            D::FixedSizeBinary(*n),
            Elem::B,
            Shape::Fixed(usize::try_from(*n).ok()?),
        ),
        D::FixedSizeList(item, n) => {
            let (c, elem, unsigned64) = scalar_type(item.data_type())?;
            TypePlan {
                canonical: D::FixedSizeList(Arc::new(Field::new("item", c, true)), *n),
                elem,
                shape: Shape::Fixed(usize::try_from(*n).ok()?),
                unsigned64,
            }
        }
        D::List(item) | D::LargeList(item) | D::ListView(item) | D::LargeListView(item) => {
            let (c, elem, unsigned64) = scalar_type(item.data_type())?;
            TypePlan {
                canonical: D::LargeList(Arc::new(Field::new("item", c, true))),
                elem,
                shape: Shape::Var,
                unsigned64,
            }
        }
        D::Dictionary(_, values) => {
            let p = plan_type(values)?;
            // Dictionaries of arrays do not occur in results; keep to scalars.
            if p.shape != Shape::Scalar {
                return None;
            }
            p
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------- column access

/// The values of a column, or of a list column's elements.
enum Vals<'a> {
    Bool(&'a BooleanArray),
    U8(&'a [u8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U64(&'a [u64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
}

/// A stored integer value, or a float/boolean.
enum Num {
    Int(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
}

impl<'a> Vals<'a> {
    fn of(a: &'a dyn Array) -> Result<Vals<'a>, String> {
        let err = || format!("unexpected array of type {}", a.data_type());
        Ok(match a.data_type() {
            DataType::Boolean => Vals::Bool(a.as_boolean_opt().ok_or_else(err)?),
            DataType::UInt8 => {
                Vals::U8(a.as_primitive_opt::<UInt8Type>().ok_or_else(err)?.values())
            }
            DataType::Int16 => {
                Vals::I16(a.as_primitive_opt::<Int16Type>().ok_or_else(err)?.values())
            }
            DataType::Int32 => {
                Vals::I32(a.as_primitive_opt::<Int32Type>().ok_or_else(err)?.values())
            }
            DataType::Int64 => {
                Vals::I64(a.as_primitive_opt::<Int64Type>().ok_or_else(err)?.values())
            }
            DataType::UInt64 => {
                Vals::U64(a.as_primitive_opt::<UInt64Type>().ok_or_else(err)?.values())
            }
            DataType::Float32 => Vals::F32(
                a.as_primitive_opt::<Float32Type>()
                    .ok_or_else(err)?
                    .values(),
            ),
            DataType::Float64 => Vals::F64(
                a.as_primitive_opt::<Float64Type>()
                    .ok_or_else(err)?
                    .values(),
            ),
            _ => return Err(err()),
        })
    }

    #[inline]
    fn get(&self, i: usize) -> Num {
        match self {
            Vals::Bool(a) => Num::Bool(a.value(i)),
            Vals::U8(v) => Num::Int(i64::from(v[i])),
            Vals::I16(v) => Num::Int(i64::from(v[i])),
            Vals::I32(v) => Num::Int(i64::from(v[i])),
            Vals::I64(v) => Num::Int(v[i]),
            // Stored as value - 2^63 (TZERO = 2^63).
            Vals::U64(v) => Num::Int((v[i] ^ (1 << 63)) as i64),
            Vals::F32(v) => Num::F32(v[i]),
            Vals::F64(v) => Num::F64(v[i]),
        }
    }
}

/// One column of a collected batch.
enum Col<'a> {
    Num {
        vals: Vals<'a>,
        nulls: Option<&'a NullBuffer>,
    },
    Str(&'a StringArray),
    Bytes(&'a BinaryArray),
    FixedBytes(&'a FixedSizeBinaryArray),
    FixedList {
        list: &'a FixedSizeListArray,
        n: usize,
        vals: Vals<'a>,
        elem_nulls: Option<&'a NullBuffer>,
    },
    VarList {
        list: &'a LargeListArray,
        vals: Vals<'a>,
        elem_nulls: Option<&'a NullBuffer>,
    },
}

impl<'a> Col<'a> {
    fn of(a: &'a ArrayRef) -> Result<Col<'a>, String> {
        let err = || format!("unexpected array of type {}", a.data_type());
        Ok(match a.data_type() {
            DataType::Utf8 => Col::Str(a.as_string_opt::<i32>().ok_or_else(err)?),
            DataType::Binary => Col::Bytes(a.as_binary_opt::<i32>().ok_or_else(err)?),
            DataType::FixedSizeBinary(_) => {
                Col::FixedBytes(a.as_fixed_size_binary_opt().ok_or_else(err)?)
            }
            DataType::FixedSizeList(_, n) => {
                let list = a.as_fixed_size_list_opt().ok_or_else(err)?;
                Col::FixedList {
                    list,
                    n: usize::try_from(*n).map_err(|_| err())?,
                    vals: Vals::of(list.values().as_ref())?,
                    elem_nulls: list.values().nulls(),
                }
            }
            DataType::LargeList(_) => {
                let list = a.as_list_opt::<i64>().ok_or_else(err)?;
                Col::VarList {
                    list,
                    vals: Vals::of(list.values().as_ref())?,
                    elem_nulls: list.values().nulls(),
                }
            }
            _ => Col::Num {
                vals: Vals::of(a.as_ref())?,
                nulls: a.nulls(),
            },
        })
    }

    /// Element range of row `i` of a list column.
    #[inline]
    fn elems(&self, i: usize) -> std::ops::Range<usize> {
        match self {
            Col::FixedList { list, n, .. } => {
                let start = list.value_offset(i) as usize;
                start..start + n
            }
            Col::VarList { list, .. } => {
                if list.is_null(i) {
                    return 0..0;
                }
                let o = list.value_offsets();
                o[i] as usize..o[i + 1] as usize
            }
            Col::Bytes(b) => {
                if b.is_null(i) {
                    return 0..0;
                }
                let o = b.value_offsets();
                o[i] as usize..o[i + 1] as usize
            }
            _ => 0..0,
        }
    }
}

/// Characters of a string as written (one byte per character).
fn text_width(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

// ---------------------------------------------------------------------------- statistics

/// What the header needs to know about a column, gathered while collecting.
#[derive(Debug, Clone)]
struct Stats {
    /// A NULL integer value was seen (cell or array element).
    int_null: bool,
    /// Smallest and largest stored integer value seen.
    min: i64,
    max: i64,
    /// Strings: longest value; variable arrays: most elements.
    width: usize,
    /// Variable arrays: elements in all.
    elems: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            int_null: false,
            min: i64::MAX,
            max: i64::MIN,
            width: 0,
            elems: 0,
        }
    }
}

impl Stats {
    #[inline]
    fn value(&mut self, vals: &Vals<'_>, i: usize, null: bool) {
        if let Vals::Bool(_) | Vals::F32(_) | Vals::F64(_) = vals {
            return;
        }
        if null {
            self.int_null = true;
        } else if let Num::Int(v) = vals.get(i) {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    fn update(&mut self, col: &Col<'_>, rows: usize) {
        match col {
            Col::Num { vals, nulls } => {
                if matches!(vals, Vals::Bool(_) | Vals::F32(_) | Vals::F64(_)) {
                    return;
                }
                for i in 0..rows {
                    self.value(vals, i, nulls.is_some_and(|n| n.is_null(i)));
                }
            }
            Col::Str(a) => {
                for i in 0..rows {
                    if a.is_valid(i) {
                        self.width = self.width.max(text_width(a.value(i)));
                    }
                }
            }
            Col::Bytes(_) => {
                for i in 0..rows {
                    let n = col.elems(i).len();
                    self.width = self.width.max(n);
                    self.elems += n as u64;
                }
            }
            Col::FixedBytes(_) => {}
            Col::FixedList {
                list,
                vals,
                elem_nulls,
                ..
            } => {
                for i in 0..rows {
                    let row_null = list.is_null(i);
                    for j in col.elems(i) {
                        self.value(
                            vals,
                            j,
                            row_null || elem_nulls.is_some_and(|n| n.is_null(j)),
                        );
                    }
                }
            }
            Col::VarList {
                vals, elem_nulls, ..
            } => {
                for i in 0..rows {
                    let r = col.elems(i);
                    self.width = self.width.max(r.len());
                    self.elems += r.len() as u64;
                    for j in r {
                        self.value(vals, j, elem_nulls.is_some_and(|n| n.is_null(j)));
                    }
                }
            }
        }
    }
}

/// The integer type and NULL value of a column with NULLs: a value outside the column's
/// values (the type's minimum, else its maximum — for `B` 255 first), widening the type when
/// the values fill its range (a full-range `K` keeps its minimum).
fn null_value(elem: Elem, min: i64, max: i64) -> (Elem, i64) {
    let mut elem = elem;
    loop {
        let Some((lo, hi)) = elem.range() else {
            return (elem, 0);
        };
        let seen = min <= max;
        let (first, second) = if elem == Elem::B { (hi, lo) } else { (lo, hi) };
        if !seen || !(min..=max).contains(&first) {
            return (elem, first);
        }
        if !(min..=max).contains(&second) {
            return (elem, second);
        }
        match elem.wider() {
            Some(w) => elem = w,
            None => return (elem, lo),
        }
    }
}

// ---------------------------------------------------------------------------- layout

/// A column as the table writes it.
#[derive(Debug, Clone)]
struct OutCol {
    elem: Elem,
    shape: Shape,
    /// Strings: the width; fixed arrays: the element count.
    repeat: usize,
    /// Variable arrays: the most elements in a row.
    max_elems: usize,
    /// `TNULLn`.
    null: Option<i64>,
    unsigned64: bool,
    /// Variable arrays: 64-bit (`Q`) descriptors.
    q: bool,
}

impl OutCol {
    /// Bytes of this column in a row.
    fn width(&self) -> usize {
        match self.shape {
            Shape::Scalar if self.elem == Elem::A => self.repeat,
            Shape::Scalar => self.elem.size(),
            Shape::Fixed(_) => self.repeat * self.elem.size(),
            Shape::Var if self.q => 16,
            Shape::Var => 8,
        }
    }

    fn tform(&self) -> String {
        let l = self.elem.letter();
        match self.shape {
            Shape::Scalar if self.elem == Elem::A => format!("{}A", self.repeat),
            Shape::Scalar => format!("1{l}"),
            Shape::Fixed(_) => format!("{}{l}", self.repeat),
            Shape::Var => format!("1{}{l}({})", if self.q { 'Q' } else { 'P' }, self.max_elems),
        }
    }
}

/// Column metadata for the header.
#[derive(Debug, Clone, Default)]
struct ColMeta {
    name: String,
    unit: Option<String>,
    ucd: Option<String>,
    utype: Option<String>,
    description: Option<String>,
}

fn meta_of(field: &Field, index: usize) -> ColMeta {
    let get = |k: &str| {
        field
            .metadata()
            .get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    ColMeta {
        name: if field.name().trim().is_empty() {
            format!("col{}", index + 1)
        } else {
            field.name().clone()
        },
        unit: get(crate::meta::UNIT),
        ucd: get(crate::meta::UCD),
        utype: get(crate::meta::UTYPE),
        description: get(crate::meta::DESCRIPTION),
    }
}

// ---------------------------------------------------------------------------- cells

#[inline]
fn put_int(out: &mut Vec<u8>, elem: Elem, v: i64) {
    match elem {
        Elem::B => out.push(v as u8),
        Elem::I => out.extend_from_slice(&(v as i16).to_be_bytes()),
        Elem::J => out.extend_from_slice(&(v as i32).to_be_bytes()),
        _ => out.extend_from_slice(&v.to_be_bytes()),
    }
}

/// One element: `null` writes the column's NULL (NaN, TNULL, logical 0).
#[inline]
fn put_elem(out: &mut Vec<u8>, col: &OutCol, vals: &Vals<'_>, i: usize, null: bool) {
    match (vals, null) {
        (Vals::Bool(_), true) => out.push(0),
        (Vals::F32(_), true) => out.extend_from_slice(&f32::NAN.to_be_bytes()),
        (Vals::F64(_), true) => out.extend_from_slice(&f64::NAN.to_be_bytes()),
        (_, true) => put_int(out, col.elem, col.null.unwrap_or(0)),
        (_, false) => match vals.get(i) {
            Num::Bool(b) => out.push(if b { b'T' } else { b'F' }),
            Num::F32(x) => out.extend_from_slice(&x.to_be_bytes()),
            Num::F64(x) => out.extend_from_slice(&x.to_be_bytes()),
            Num::Int(v) => put_int(out, col.elem, v),
        },
    }
}

/// The elements of one array cell.
#[inline]
fn put_elems(out: &mut Vec<u8>, col: &OutCol, c: &Col<'_>, row: usize) {
    match c {
        Col::Bytes(b) => {
            if b.is_valid(row) {
                out.extend_from_slice(b.value(row));
            }
        }
        Col::FixedBytes(b) => {
            if b.is_valid(row) {
                out.extend_from_slice(b.value(row));
            } else {
                out.extend(std::iter::repeat_n(0u8, col.repeat));
            }
        }
        Col::FixedList {
            list,
            vals,
            elem_nulls,
            ..
        } => {
            let row_null = list.is_null(row);
            for j in c.elems(row) {
                put_elem(
                    out,
                    col,
                    vals,
                    j,
                    row_null || elem_nulls.is_some_and(|n| n.is_null(j)),
                );
            }
        }
        Col::VarList {
            vals, elem_nulls, ..
        } => {
            for j in c.elems(row) {
                put_elem(out, col, vals, j, elem_nulls.is_some_and(|n| n.is_null(j)));
            }
        }
        Col::Num { .. } | Col::Str(_) => {}
    }
}

/// Row cells of one batch into `out`; variable arrays get descriptors from `heap`.
fn put_rows(out: &mut Vec<u8>, cols: &[OutCol], views: &[Col<'_>], rows: usize, heap: &mut u64) {
    for row in 0..rows {
        for (col, c) in cols.iter().zip(views) {
            match c {
                Col::Num { vals, nulls } => {
                    put_elem(out, col, vals, row, nulls.is_some_and(|n| n.is_null(row)))
                }
                Col::Str(a) => {
                    let start = out.len();
                    if a.is_valid(row) {
                        let s = a.value(row);
                        if s.is_ascii() {
                            out.extend(
                                s.bytes()
                                    .map(|b| if b < b' ' || b == 127 { b'?' } else { b }),
                            );
                        } else {
                            out.extend(s.chars().map(ascii_char));
                        }
                    }
                    // Never more than the width (it is the longest value); NUL-padded.
                    out.truncate(start + col.repeat);
                    out.resize(start + col.repeat, 0);
                }
                Col::FixedBytes(_) | Col::FixedList { .. } => put_elems(out, col, c, row),
                Col::Bytes(_) | Col::VarList { .. } => {
                    let n = c.elems(row).len() as u64;
                    if col.q {
                        out.extend_from_slice(&n.to_be_bytes());
                        out.extend_from_slice(&heap.to_be_bytes());
                    } else {
                        out.extend_from_slice(&(n as u32).to_be_bytes());
                        out.extend_from_slice(&(*heap as u32).to_be_bytes());
                    }
                    *heap += n * col.elem.size() as u64;
                }
            }
        }
    }
}

/// Heap bytes of one batch (variable arrays, in row order then column order).
fn put_heap(out: &mut Vec<u8>, cols: &[OutCol], views: &[Col<'_>], rows: usize) {
    for row in 0..rows {
        for (col, c) in cols.iter().zip(views) {
            if col.shape == Shape::Var {
                put_elems(out, col, c, row);
            }
        }
    }
}

// ---------------------------------------------------------------------------- encoder

enum Stage {
    /// Batches arrive.
    Collecting(Box<Spill>),
    /// Main table rows from a pass.
    Rows {
        spilled: Spilled,
        pass: Pass,
        heap: u64,
    },
    /// Heap bytes from a second pass.
    Heap {
        pass: Pass,
    },
    /// Zeros up to the block boundary.
    Pad(usize),
    Done,
}

/// Writes a result as FITS: collects batches ([`write`](FitsEncoder::write)), then
/// [`finish`](FitsEncoder::finish) returns the headers and [`next_chunk`](FitsEncoder::next_chunk)
/// the data, one batch at a time.
pub struct FitsEncoder {
    canonical: SchemaRef,
    plans: Vec<TypePlan>,
    metas: Vec<ColMeta>,
    stats: Vec<Stats>,
    cols: Vec<OutCol>,
    rows: u64,
    data_bytes: u64,
    infos: Vec<Info>,
    table_name: Option<String>,
    stage: Stage,
}

impl FitsEncoder {
    /// An encoder for results of `schema` (its field metadata gives units, UCDs, ...);
    /// Err names a column whose type has no FITS counterpart.
    pub fn new(
        schema: &SchemaRef,
        infos: &[Info],
        table_name: Option<String>,
    ) -> Result<Self, String> {
        Self::with_budget(schema, infos, table_name, DEFAULT_BUDGET)
    }

    /// As [`new`](FitsEncoder::new), spilling to disk past `budget` bytes.
    pub fn with_budget(
        schema: &SchemaRef,
        infos: &[Info],
        table_name: Option<String>,
        budget: usize,
    ) -> Result<Self, String> {
        if schema.fields().is_empty() {
            return Err("the result has no columns".into());
        }
        if schema.fields().len() > MAX_COLUMNS {
            return Err(format!(
                "FITS tables have at most {MAX_COLUMNS} columns; the result has {}",
                schema.fields().len()
            ));
        }
        let mut plans = Vec::new();
        let mut metas = Vec::new();
        let mut fields = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            let plan = plan_type(f.data_type()).ok_or_else(|| {
                format!(
                    "column {:?}: Arrow type {} has no FITS counterpart",
                    f.name(),
                    f.data_type()
                )
            })?;
            fields.push(Field::new(f.name(), plan.canonical.clone(), true));
            plans.push(plan);
            metas.push(meta_of(f, i));
        }
        let canonical: SchemaRef = Arc::new(Schema::new(fields));
        Ok(FitsEncoder {
            stats: vec![Stats::default(); plans.len()],
            stage: Stage::Collecting(Box::new(Spill::new(canonical.clone(), budget))),
            canonical,
            plans,
            metas,
            cols: Vec::new(),
            rows: 0,
            data_bytes: 0,
            infos: infos.to_vec(),
            table_name,
        })
    }

    /// Collects one batch (nothing is written yet).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let Stage::Collecting(spill) = &mut self.stage else {
            return Err("the FITS writer is already finished".into());
        };
        let batch = crate::encode::conform(batch, &self.canonical).map_err(|e| e.to_string())?;
        for (stats, array) in self.stats.iter_mut().zip(batch.columns()) {
            stats.update(&Col::of(array)?, batch.num_rows());
        }
        self.rows += batch.num_rows() as u64;
        spill.push(batch).map_err(|e| e.to_string())
    }

    /// Ends the collection. `Ok` and `Overflow` return the primary and extension headers
    /// (the rest follows from [`next_chunk`](FitsEncoder::next_chunk)); `Error` returns the
    /// whole file: [`error_file`], no table.
    pub fn finish(&mut self, status: &EndStatus) -> Bytes {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        let Stage::Collecting(spill) = stage else {
            self.stage = stage;
            return Bytes::new();
        };
        let overflow = match status {
            EndStatus::Ok => false,
            EndStatus::Overflow => true,
            EndStatus::Error(msg) => return Bytes::from(error_file(msg)),
        };
        let spilled = match spill.finish().and_then(|s| {
            let pass = s.pass()?;
            Ok((s, pass))
        }) {
            Ok(s) => s,
            Err(e) => return Bytes::from(error_file(&e.to_string())),
        };
        self.layout();
        let mut out = primary_header();
        out.extend_from_slice(&self.table_header(overflow));
        self.stage = Stage::Rows {
            spilled: spilled.0,
            pass: spilled.1,
            heap: 0,
        };
        Bytes::from(out)
    }

    /// Column types and widths from the statistics.
    fn layout(&mut self) {
        self.cols = self
            .plans
            .iter()
            .zip(&self.stats)
            .map(|(p, s)| {
                let (elem, null) = if s.int_null {
                    let (e, n) = null_value(p.elem, s.min, s.max);
                    (e, Some(n))
                } else {
                    (p.elem, None)
                };
                OutCol {
                    elem,
                    shape: p.shape,
                    repeat: match p.shape {
                        Shape::Scalar if p.elem == Elem::A => s.width.max(1),
                        Shape::Fixed(n) => n,
                        _ => 1,
                    },
                    max_elems: s.width,
                    null,
                    unsigned64: p.unsigned64,
                    q: false,
                }
            })
            .collect();
        // Heap offsets past 2 GiB need 64-bit descriptors.
        if self.pcount() > i32::MAX as u64 {
            for c in &mut self.cols {
                c.q = true;
            }
        }
    }

    fn naxis1(&self) -> u64 {
        self.cols.iter().map(|c| c.width() as u64).sum()
    }

    fn pcount(&self) -> u64 {
        self.cols
            .iter()
            .zip(&self.stats)
            .filter(|(c, _)| c.shape == Shape::Var)
            .map(|(c, s)| s.elems * c.elem.size() as u64)
            .sum()
    }

    /// The `BINTABLE` header.
    fn table_header(&mut self, overflow: bool) -> Vec<u8> {
        let naxis1 = self.naxis1();
        let pcount = self.pcount();
        self.data_bytes = naxis1 * self.rows + pcount;
        let mut h = Header::new();
        h.string("XTENSION", "BINTABLE", "binary table extension");
        h.int("BITPIX", 8, "8-bit bytes");
        h.int("NAXIS", 2, "2-dimensional binary table");
        h.int("NAXIS1", naxis1 as i64, "width of table in bytes");
        h.int("NAXIS2", self.rows as i64, "number of rows in table");
        h.int("PCOUNT", pcount as i64, "size of special data area (heap)");
        h.int("GCOUNT", 1, "one data group");
        h.int(
            "TFIELDS",
            self.cols.len() as i64,
            "number of fields in each row",
        );
        for (i, (col, meta)) in self.cols.iter().zip(&self.metas).enumerate() {
            let n = i + 1;
            h.string(&format!("TTYPE{n}"), &meta.name, "");
            h.string(&format!("TFORM{n}"), &col.tform(), "");
            if let Some(v) = col.null {
                h.int(&format!("TNULL{n}"), v, "");
            }
            if col.unsigned64 {
                h.uint(&format!("TZERO{n}"), 1 << 63, "unsigned 64-bit integers");
            }
            if let Some(u) = &meta.unit {
                h.string(&format!("TUNIT{n}"), u, "");
            }
            if let Some(u) = &meta.ucd {
                h.string(&format!("TUCD{n}"), u, "");
            }
            if let Some(u) = &meta.utype {
                h.string(&format!("TUTYP{n}"), u, "");
            }
            if let Some(d) = &meta.description {
                h.string(&format!("TCOMM{n}"), d, "");
            }
        }
        if let Some(name) = &self.table_name {
            h.string("EXTNAME", name, "table name");
        }
        h.string(
            "QRYSTAT",
            if overflow { "OVERFLOW" } else { "OK" },
            if overflow {
                "MAXREC cut the result: more rows match"
            } else {
                "all matching rows"
            },
        );
        for info in &self.infos {
            let text = match &info.content {
                Some(c) if !c.is_empty() => format!("{} = {}: {}", info.name, info.value, c),
                _ => format!("{} = {}", info.name, info.value),
            };
            h.commentary("COMMENT", &text, MAX_INFO_CARDS);
        }
        h.finish()
    }

    /// The next piece of the data after [`finish`](FitsEncoder::finish): rows (one batch at a
    /// time), heap, padding; `None` at the end. Reading the collected rows back cannot fail
    /// short of a disk error; then the file ends short of what its header says (readers
    /// report it truncated) and the error is logged.
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            match self.step() {
                Ok(Some(b)) if b.is_empty() => continue,
                Ok(Some(b)) => return Some(b),
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!("FITS result cut short: {e}");
                    self.stage = Stage::Done;
                    return None;
                }
            }
        }
    }

    fn step(&mut self) -> Result<Option<Bytes>, String> {
        // On an error the stage stays `Done`.
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        let (next, out) = match stage {
            s @ (Stage::Collecting(_) | Stage::Done) => (s, None),
            Stage::Rows {
                spilled,
                mut pass,
                mut heap,
            } => match pass.next() {
                Some(batch) => {
                    let batch = batch.map_err(|e| e.to_string())?;
                    let views = batch
                        .columns()
                        .iter()
                        .map(Col::of)
                        .collect::<Result<Vec<_>, _>>()?;
                    let n = batch.num_rows();
                    let mut out = Vec::with_capacity(n * self.naxis1() as usize);
                    put_rows(&mut out, &self.cols, &views, n, &mut heap);
                    drop(views);
                    (
                        Stage::Rows {
                            spilled,
                            pass,
                            heap,
                        },
                        Some(Bytes::from(out)),
                    )
                }
                None if self.cols.iter().any(|c| c.shape == Shape::Var) => {
                    let pass = spilled.pass().map_err(|e| e.to_string())?;
                    (Stage::Heap { pass }, Some(Bytes::new()))
                }
                None => (Stage::Pad(pad_len(self.data_bytes)), Some(Bytes::new())),
            },
            Stage::Heap { mut pass } => match pass.next() {
                Some(batch) => {
                    let batch = batch.map_err(|e| e.to_string())?;
                    let views = batch
                        .columns()
                        .iter()
                        .map(Col::of)
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut out = Vec::new();
                    put_heap(&mut out, &self.cols, &views, batch.num_rows());
                    drop(views);
                    (Stage::Heap { pass }, Some(Bytes::from(out)))
                }
                None => (Stage::Pad(pad_len(self.data_bytes)), Some(Bytes::new())),
            },
            Stage::Pad(n) => (Stage::Done, Some(Bytes::from(vec![0u8; n]))),
        };
        self.stage = next;
        Ok(out)
    }
}

/// The FITS file of a query that failed after its first row: a primary HDU without data
/// whose header says `QRYSTAT = 'ERROR'` with the message in `COMMENT` cards, and no table,
/// so that a reader fails ("no table") instead of taking a partial result.
pub fn error_file(message: &str) -> Vec<u8> {
    let mut h = Header::new();
    h.logical("SIMPLE", true, "conforms to FITS standard");
    h.int("BITPIX", 8, "array data type");
    h.int("NAXIS", 0, "no primary data array");
    h.string("ORIGIN", "vostok", "Virtual Observatory data server");
    h.string("QRYSTAT", "ERROR", "the query failed: no table");
    h.commentary("COMMENT", message, MAX_INFO_CARDS);
    h.finish()
}

/// Zero bytes that complete the last block of `len` data bytes.
fn pad_len(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
