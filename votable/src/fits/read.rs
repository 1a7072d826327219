//! FITS binary tables (BINTABLE extensions) read into Arrow record batches, for ingest.
//!
//! Used by catalog ingest (FITS tables as raw sources), ObsCore extraction and previews (the
//! `catalogs` crate): a hand-written reader of
//! the FITS 4.0 binary table (2880-byte blocks of 80-character cards, big-endian row data, the
//! heap for variable-length arrays). It walks the HDUs, decodes the chosen table column by column
//! from the row bytes, applies TSCALn/TZEROn/TNULLn, and carries TTYPEn/TUNITn/TUCDn/TCOMMn into
//! the Arrow schema. Every offset and length read from the file is checked: malformed or
//! truncated input is a [`FitsError`], never a panic. The caller has already gunzipped.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, ArrowPrimitiveType, BooleanBuilder, ListArray, NullBufferBuilder,
    PrimitiveArray, StringBuilder,
};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Schema,
    SchemaRef, UInt64Type, UInt8Type,
};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

/// What can go wrong reading a FITS file.
#[derive(Debug, thiserror::Error)]
pub enum FitsError {
    /// The file is malformed or truncated.
    #[error("FITS: {0}")]
    Malformed(String),
    /// Arrow refused the decoded columns.
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

type Error = FitsError;

/// FITS logical record (block) size in bytes.
const BLOCK: usize = 2880;
/// Header card size in bytes.
const CARD: usize = 80;
/// Most rows in one record batch.
const BATCH_ROWS: usize = 65_536;
/// Most row bytes in one record batch (keeps wide rows and list offsets within bounds).
const BATCH_BYTES: usize = 1 << 28;
/// Schema metadata key listing the columns that could not be read, with the reason.
pub const SKIPPED_KEY: &str = "fits_skipped_columns";

/// Reads the binary table at HDU `hdu` (or the first BINTABLE) of a FITS file.
///
/// HDUs are numbered from 0 (the primary HDU), as astropy does. Columns that cannot be
/// represented (complex numbers, zero-width fields, descriptor repeats above 1) are left out of
/// the schema; each is logged and listed under [`SKIPPED_KEY`] in the schema metadata.
pub fn read_bintable(
    bytes: &[u8],
    hdu: Option<usize>,
) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let (header, data_start) = find_table(bytes, hdu)?;
    let table = Table::new(&header)?;

    let main_len = table
        .naxis1
        .checked_mul(table.naxis2)
        .ok_or_else(|| err(format!("HDU {}: NAXIS1 × NAXIS2 overflows", header.index)))?;
    let has_vla = table
        .columns
        .iter()
        .any(|c| matches!(c.layout, Layout::Var { .. }));
    let heap_end = main_len
        .checked_add(table.pcount)
        .ok_or_else(|| err(format!("HDU {}: PCOUNT overflows", header.index)))?;
    let needed = if has_vla { heap_end } else { main_len };
    let Some(data) = bytes.get(data_start..).and_then(|d| d.get(..needed)) else {
        let available = bytes.len().saturating_sub(data_start);
        return Err(err(format!(
            "truncated: HDU {} needs {needed} bytes of table data from byte {data_start} \
             ({} rows of {} bytes{}), but the file has only {available}",
            header.index,
            table.naxis2,
            table.naxis1,
            if has_vla { " plus the heap" } else { "" }
        )));
    };
    let main = &data[..main_len];
    let heap = if has_vla {
        if table.theap > heap_end {
            return Err(err(format!(
                "HDU {}: THEAP = {} points past the end of the heap ({heap_end})",
                header.index, table.theap
            )));
        }
        &data[table.theap..heap_end]
    } else {
        &[][..]
    };

    let schema = table.schema();
    if table.naxis1 == 0 {
        // Rows of zero bytes hold no columns; NAXIS2 alone is not worth batches.
        return Ok((schema, Vec::new()));
    }
    let batch_rows = (BATCH_BYTES / table.naxis1).clamp(1, BATCH_ROWS);
    let mut batches = Vec::with_capacity(table.naxis2.div_ceil(batch_rows));
    let mut start = 0;
    while start < table.naxis2 {
        let mut end = (start + batch_rows).min(table.naxis2);
        if has_vla {
            end = vla_batch_end(&table, main, start, end);
        }
        let arrays = table
            .columns
            .iter()
            .map(|c| decode_column(c, main, heap, table.naxis1, start..end))
            .collect::<Result<Vec<_>, Error>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(end - start));
        batches.push(RecordBatch::try_new_with_options(
            schema.clone(),
            arrays,
            &options,
        )?);
        start = end;
    }
    Ok((schema, batches))
}

/// A malformed-input error.
fn err(msg: impl std::fmt::Display) -> Error {
    FitsError::Malformed(msg.to_string())
}

// ---------------------------------------------------------------------------------------------
// Headers and the HDU walk

/// A header value, as written in the card.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// A quoted string, trailing spaces removed.
    Str(String),
    /// `T` or `F`.
    Logical(bool),
    /// Anything else (numbers, undefined values), as text.
    Other(String),
}

/// The keyword cards of one HDU (the first occurrence of each keyword).
#[derive(Debug)]
struct Header {
    index: usize,
    cards: HashMap<String, Value>,
    /// Every card in file order, commentary cards included (for header archives).
    raw: Vec<Card>,
}

impl Header {
    fn string(&self, key: &str) -> Option<&str> {
        match self.cards.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn logical(&self, key: &str) -> Option<bool> {
        match self.cards.get(key) {
            Some(Value::Logical(b)) => Some(*b),
            _ => None,
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, Error> {
        match self.cards.get(key) {
            None => Ok(None),
            Some(Value::Other(t)) => t
                .parse::<i64>()
                .map(Some)
                .map_err(|_| err(format!("HDU {}: {key} = {t} is not an integer", self.index))),
            Some(v) => Err(err(format!(
                "HDU {}: {key} = {v:?} is not an integer",
                self.index
            ))),
        }
    }

    fn float(&self, key: &str) -> Result<Option<f64>, Error> {
        match self.cards.get(key) {
            None => Ok(None),
            Some(Value::Other(t)) => t
                .replace(['D', 'd'], "E")
                .parse::<f64>()
                .map(Some)
                .map_err(|_| err(format!("HDU {}: {key} = {t} is not a number", self.index))),
            Some(v) => Err(err(format!(
                "HDU {}: {key} = {v:?} is not a number",
                self.index
            ))),
        }
    }

    /// A non-negative integer keyword, `default` when absent (an error when absent and `None`).
    fn count(&self, key: &str, default: Option<usize>) -> Result<usize, Error> {
        match self.int(key)? {
            Some(v) => usize::try_from(v).map_err(|_| {
                err(format!(
                    "HDU {}: {key} = {v} must not be negative",
                    self.index
                ))
            }),
            None => default.ok_or_else(|| {
                err(format!(
                    "HDU {}: the mandatory keyword {key} is missing",
                    self.index
                ))
            }),
        }
    }

    /// What kind of HDU this is, for messages.
    fn kind(&self) -> String {
        if self.index == 0 {
            "the primary HDU".into()
        } else {
            match self.string("XTENSION") {
                Some(x) => format!(
                    "a{} {x} extension",
                    if x.starts_with(['A', 'I']) { "n" } else { "" }
                ),
                None => "an extension".into(),
            }
        }
    }

    fn is_bintable(&self) -> bool {
        self.index > 0 && matches!(self.string("XTENSION"), Some("BINTABLE" | "A3DTABLE"))
    }
}

/// Parses the text after a card's opening quote: `''` is a quote, a lone quote ends the string.
fn quoted(rest: &str) -> String {
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                out.push('\'');
            } else {
                break;
            }
        } else {
            out.push(c);
        }
    }
    out.truncate(out.trim_end_matches(' ').len());
    out
}

/// Parses a value field (the card from byte 10 on).
fn parse_value(field: &[u8]) -> Value {
    let text = String::from_utf8_lossy(field);
    let t = text.trim_start();
    if let Some(rest) = t.strip_prefix('\'') {
        return Value::Str(quoted(rest));
    }
    let v = t.split('/').next().unwrap_or("").trim();
    match v {
        "T" => Value::Logical(true),
        "F" => Value::Logical(false),
        _ => Value::Other(v.to_string()),
    }
}

/// Reads the header of HDU `index` starting at byte `start`; returns it and where its data starts.
fn read_header(bytes: &[u8], start: usize, index: usize) -> Result<(Header, usize), Error> {
    let mut cards: HashMap<String, Value> = HashMap::new();
    let mut raw: Vec<Card> = Vec::new();
    let mut last_string: Option<String> = None;
    let mut pos = start;
    loop {
        let card = bytes.get(pos..pos + CARD).ok_or_else(|| {
            err(format!(
                "truncated: the header of HDU {index} (from byte {start}) has no END card \
                 before the end of the file at byte {}",
                bytes.len()
            ))
        })?;
        let first = pos == start;
        pos += CARD;
        let key = String::from_utf8_lossy(&card[..8]);
        let key = key.trim_end();
        if first {
            let expected = if index == 0 { "SIMPLE" } else { "XTENSION" };
            if key != expected {
                return Err(err(if index == 0 {
                    "not a FITS file: it does not start with a SIMPLE card".to_string()
                } else {
                    format!("HDU {index} (at byte {start}) does not start with an XTENSION card")
                }));
            }
        }
        if key == "END" {
            break;
        }
        raw.push(Card::parse(card));
        if key == "CONTINUE" {
            // The long-string convention: a string ending in '&' goes on in CONTINUE cards.
            if let Some(Value::Str(s)) = last_string.as_ref().and_then(|k| cards.get_mut(k)) {
                if s.ends_with('&') {
                    s.pop();
                    let more = String::from_utf8_lossy(&card[8..]);
                    if let Some(rest) = more.trim_start().strip_prefix('\'') {
                        s.push_str(&quoted(rest));
                    }
                    continue;
                }
            }
            last_string = None;
            continue;
        }
        if matches!(key, "COMMENT" | "HISTORY" | "") || &card[8..10] != b"= " {
            last_string = None; // commentary card
            continue;
        }
        let value = parse_value(&card[10..]);
        let is_string = matches!(value, Value::Str(_));
        if cards.contains_key(key) {
            last_string = None;
        } else {
            last_string = is_string.then(|| key.to_string());
            cards.insert(key.to_string(), value);
        }
    }
    let data_start = start
        .checked_add((pos - start).div_ceil(BLOCK) * BLOCK)
        .ok_or_else(|| err("header size overflows"))?;
    Ok((Header { index, cards, raw }, data_start))
}

/// Bytes in the data unit of an HDU (without the padding to a whole block).
fn data_size(h: &Header) -> Result<usize, Error> {
    let overflow = || err(format!("HDU {}: the data size overflows", h.index));
    let bitpix = h.int("BITPIX")?.ok_or_else(|| {
        err(format!(
            "HDU {}: the mandatory keyword BITPIX is missing",
            h.index
        ))
    })?;
    let width: usize = match bitpix {
        8 => 1,
        16 => 2,
        32 | -32 => 4,
        64 | -64 => 8,
        other => {
            return Err(err(format!(
                "HDU {}: BITPIX = {other} is not valid",
                h.index
            )))
        }
    };
    let naxis = h.count("NAXIS", None)?;
    if naxis > 999 {
        return Err(err(format!(
            "HDU {}: NAXIS = {naxis} is more than 999",
            h.index
        )));
    }
    if naxis == 0 {
        return Ok(0);
    }
    let mut dims = Vec::with_capacity(naxis);
    for n in 1..=naxis {
        dims.push(h.count(&format!("NAXIS{n}"), None)?);
    }
    // Random groups (primary HDU only): NAXIS1 = 0 and GROUPS = T; NAXIS1 is not a dimension.
    let groups = h.index == 0 && dims[0] == 0 && h.logical("GROUPS") == Some(true);
    let axes = if groups { &dims[1..] } else { &dims[..] };
    let mut elements: usize = 1;
    for &d in axes {
        elements = elements.checked_mul(d).ok_or_else(overflow)?;
    }
    let pcount = h.count("PCOUNT", Some(0))?;
    let gcount = h.count("GCOUNT", Some(1))?;
    elements
        .checked_add(pcount)
        .and_then(|e| e.checked_mul(gcount))
        .and_then(|e| e.checked_mul(width))
        .ok_or_else(overflow)
}

/// The size of an HDU's data unit and where the next HDU starts; an error when the file ends
/// before the data does.
fn data_extent(header: &Header, data_start: usize, bytes: &[u8]) -> Result<(usize, usize), Error> {
    let index = header.index;
    let size = data_size(header)?;
    let data_end = data_start
        .checked_add(size)
        .ok_or_else(|| err(format!("HDU {index}: the data size overflows")))?;
    if data_end > bytes.len() {
        return Err(err(format!(
            "truncated: HDU {index} ({}) needs {size} data bytes from byte {data_start}, \
             but the file ends at byte {}",
            header.kind(),
            bytes.len()
        )));
    }
    let next = data_start
        .checked_add(size.div_ceil(BLOCK) * BLOCK)
        .ok_or_else(|| err(format!("HDU {index}: the data size overflows")))?;
    Ok((size, next))
}

/// Walks the HDUs to the requested binary table; returns its header and where its data starts.
fn find_table(bytes: &[u8], want: Option<usize>) -> Result<(Header, usize), Error> {
    if bytes.len() < CARD || !bytes.starts_with(b"SIMPLE  =") {
        return Err(err("not a FITS file: it does not start with a SIMPLE card"));
    }
    let mut start = 0;
    let mut index = 0;
    loop {
        let (header, data_start) = read_header(bytes, start, index)?;
        let compressed_image = header.logical("ZIMAGE") == Some(true);
        match want {
            Some(n) if n == index => {
                if !header.is_bintable() {
                    return Err(err(format!(
                        "HDU {n} is {}, not a binary table",
                        header.kind()
                    )));
                }
                if compressed_image {
                    return Err(err(format!(
                        "HDU {n} is a tile-compressed image, not a table"
                    )));
                }
                return Ok((header, data_start));
            }
            None if header.is_bintable() && !compressed_image => return Ok((header, data_start)),
            _ => {}
        }
        let (_, next) = data_extent(&header, data_start, bytes)?;
        let rest = bytes.get(next..).unwrap_or(&[]);
        if rest.iter().all(|&b| b == 0 || b == b' ') {
            let count = index + 1;
            let len = bytes.len();
            let hint = if !len.is_multiple_of(BLOCK) {
                " (not a whole number of 2880-byte blocks: the file may be truncated)"
            } else {
                ""
            };
            return Err(err(match want {
                Some(n) => format!("there is no HDU {n}: the file ends after {count} HDU(s), at byte {len}{hint}"),
                None => format!("the file has no BINTABLE extension: it ends after {count} HDU(s), at byte {len}{hint}"),
            }));
        }
        start = next;
        index += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// HDU listing (for image and spectrum ingest, previews and header archives)

/// One header card as written: keyword, value text (strings unquoted, `''` undone) and comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// The keyword (trimmed; empty for blank cards; `HIERARCH` cards keep their long name).
    pub keyword: String,
    /// The value: a string's content, or the text of a number, logical or undefined value.
    /// `None` for commentary cards (COMMENT, HISTORY, blank) and cards without `= `.
    pub value: Option<String>,
    /// Whether the value was a quoted string.
    pub is_string: bool,
    /// The comment after `/`, or the text of a commentary card.
    pub comment: Option<String>,
    /// The 80 characters of the card, trailing blanks removed.
    pub text: String,
}

impl Card {
    fn parse(card: &[u8]) -> Card {
        let text = String::from_utf8_lossy(card).trim_end().to_string();
        let key8 = String::from_utf8_lossy(&card[..8.min(card.len())])
            .trim_end()
            .to_string();
        let nonempty = |s: &str| {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_string())
        };
        // ESO's HIERARCH convention: `HIERARCH ESO DET WIN1 NX = 1024 / comment`.
        if key8 == "HIERARCH" {
            let rest = String::from_utf8_lossy(&card[8..]).to_string();
            if let Some(eq) = rest.find('=') {
                let keyword = format!("HIERARCH {}", rest[..eq].trim());
                let (value, is_string, comment) = split_value(&rest[eq + 1..]);
                return Card {
                    keyword,
                    value,
                    is_string,
                    comment,
                    text,
                };
            }
            return Card {
                keyword: key8,
                value: None,
                is_string: false,
                comment: nonempty(&rest),
                text,
            };
        }
        if card.len() >= 10
            && &card[8..10] == b"= "
            && !matches!(key8.as_str(), "COMMENT" | "HISTORY" | "")
        {
            let (value, is_string, comment) = split_value(&String::from_utf8_lossy(&card[10..]));
            return Card {
                keyword: key8,
                value,
                is_string,
                comment,
                text,
            };
        }
        let body = String::from_utf8_lossy(card.get(8..).unwrap_or(&[])).to_string();
        Card {
            keyword: key8,
            value: None,
            is_string: false,
            comment: nonempty(&body),
            text,
        }
    }
}

/// Splits a value field into (value, is_string, comment).
fn split_value(field: &str) -> (Option<String>, bool, Option<String>) {
    let t = field.trim_start();
    let comment_of = |rest: &str| {
        rest.trim_start()
            .strip_prefix('/')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
    };
    if let Some(rest) = t.strip_prefix('\'') {
        // Find the closing quote ('' is an escaped quote).
        let b = rest.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\'' {
                if b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                break;
            }
            i += 1;
        }
        let after = rest.get(i + 1..).unwrap_or("");
        return (Some(quoted(rest)), true, comment_of(after));
    }
    let (v, c) = match t.find('/') {
        Some(i) => (&t[..i], comment_of(&t[i..])),
        None => (t, None),
    };
    let v = v.trim();
    ((!v.is_empty()).then(|| v.to_string()), false, c)
}

/// One HDU of a FITS file: its cards, and where its data unit lies.
#[derive(Debug, Clone)]
pub struct Hdu {
    /// HDU number, 0 for the primary HDU (as astropy counts).
    pub index: usize,
    /// Every card, in order (CONTINUE cards included as written).
    pub cards: Vec<Card>,
    /// Keyword values (first occurrence; long strings joined across CONTINUE cards).
    values: HashMap<String, Value>,
    /// Byte offset of the data unit in the file.
    pub data_start: usize,
    /// Bytes in the data unit (without padding).
    pub data_len: usize,
}

impl Hdu {
    /// A string keyword (long-string convention applied).
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.values.get(key) {
            Some(Value::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// A numeric keyword (`D` exponents accepted); `None` when absent or not a number.
    pub fn f64(&self, key: &str) -> Option<f64> {
        match self.values.get(key) {
            Some(Value::Other(t)) => t.replace(['D', 'd'], "E").parse::<f64>().ok(),
            // Some writers quote numbers.
            Some(Value::Str(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
    }

    /// An integer keyword; `None` when absent or not an integer.
    pub fn i64(&self, key: &str) -> Option<i64> {
        match self.values.get(key) {
            Some(Value::Other(t)) => t.parse::<i64>().ok(),
            _ => None,
        }
    }

    /// A logical keyword.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.values.get(key) {
            Some(Value::Logical(b)) => Some(*b),
            _ => None,
        }
    }

    /// Whether the keyword is present (with a value).
    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// `XTENSION` value, or `"PRIMARY"` for HDU 0.
    pub fn kind(&self) -> &str {
        if self.index == 0 {
            "PRIMARY"
        } else {
            self.str("XTENSION").unwrap_or("")
        }
    }

    /// NAXISn values (empty when NAXIS = 0 or absent).
    pub fn axes(&self) -> Vec<usize> {
        let n = self.i64("NAXIS").unwrap_or(0).clamp(0, 999) as usize;
        (1..=n)
            .map(|k| self.i64(&format!("NAXIS{k}")).unwrap_or(0).max(0) as usize)
            .collect()
    }

    /// The data unit's bytes within `file` (empty when out of range).
    pub fn data<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        file.get(self.data_start..self.data_start.saturating_add(self.data_len))
            .unwrap_or(&[])
    }

    /// The header as text: one 80-character card per line (what a DataLink `#auxiliary`
    /// header link serves).
    pub fn header_text(&self) -> String {
        let mut s = String::with_capacity(self.cards.len() * 81 + 4);
        for c in &self.cards {
            s.push_str(&c.text);
            s.push('\n');
        }
        s.push_str("END\n");
        s
    }
}

/// Lists every HDU of a FITS file (already gunzipped), checking offsets: a truncated or
/// malformed file is a [`FitsError`], never a panic. A truncated last data unit is an
/// error too.
pub fn hdus(bytes: &[u8]) -> Result<Vec<Hdu>, Error> {
    if bytes.len() < CARD || !bytes.starts_with(b"SIMPLE  =") {
        return Err(err("not a FITS file: it does not start with a SIMPLE card"));
    }
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let index = out.len();
        let (header, data_start) = read_header(bytes, start, index)?;
        let (size, next) = data_extent(&header, data_start, bytes)?;
        out.push(Hdu {
            index,
            cards: header.raw,
            values: header.cards,
            data_start,
            data_len: size,
        });
        let rest = bytes.get(next..).unwrap_or(&[]);
        if rest.len() < CARD || !rest.starts_with(b"XTENSION") {
            return Ok(out);
        }
        start = next;
    }
}

// ---------------------------------------------------------------------------------------------
// Columns

/// The type of one stored element (TFORM letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    /// `L`: one byte, `T`, `F` or 0 (null).
    Logical,
    /// `X`: bits, packed; handled as whole bytes.
    Bit,
    /// `B`: unsigned byte.
    Byte,
    /// `I`: 16-bit integer.
    Short,
    /// `J`: 32-bit integer.
    Int,
    /// `K`: 64-bit integer.
    Long,
    /// `E`: 32-bit float.
    Float,
    /// `D`: 64-bit float.
    Double,
    /// `A`: character.
    Char,
}

impl Elem {
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            b'L' => Elem::Logical,
            b'X' => Elem::Bit,
            b'B' => Elem::Byte,
            b'I' => Elem::Short,
            b'J' => Elem::Int,
            b'K' => Elem::Long,
            b'E' => Elem::Float,
            b'D' => Elem::Double,
            b'A' => Elem::Char,
            _ => return None,
        })
    }

    /// Bytes per element (per byte of bits for `X`).
    fn size(self) -> usize {
        match self {
            Elem::Logical | Elem::Bit | Elem::Byte | Elem::Char => 1,
            Elem::Short => 2,
            Elem::Int | Elem::Float => 4,
            Elem::Long | Elem::Double => 8,
        }
    }

    /// Bytes taken by `n` elements.
    fn bytes(self, n: usize) -> Option<usize> {
        match self {
            Elem::Bit => Some(n.div_ceil(8)),
            _ => n.checked_mul(self.size()),
        }
    }
}

/// A signed integer output type, the narrowest that holds an offset column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntOut {
    I8,
    I16,
    I32,
    I64,
}

/// How stored numbers become published values (TSCALn/TZEROn).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Conv {
    /// No scaling: the stored type.
    Plain,
    /// An integer offset (TSCAL = 1, integral TZERO): exact, in a wide enough signed type.
    Offset(i64, IntOut),
    /// `K` with TZERO = 2^63: unsigned 64-bit.
    Unsigned64,
    /// General scaling `stored × scale + zero`, as Float64.
    Scaled(f64, f64),
}

/// Where a column's elements are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// In the row: `repeat` elements (bytes for `X`).
    Fixed { repeat: usize },
    /// In the heap, through a `P` (32-bit) or `Q` (64-bit, `wide`) descriptor in the row.
    Var { wide: bool },
}

/// One readable column of the table.
#[derive(Debug, Clone)]
struct Column {
    field: Field,
    /// Byte offset in the row.
    offset: usize,
    /// Bytes in the row.
    width: usize,
    elem: Elem,
    layout: Layout,
    conv: Conv,
    /// TNULLn, compared with stored integers.
    tnull: Option<i64>,
    /// For `A` cells that hold several strings (TDIMn): the width of one.
    substring: Option<usize>,
    /// Whether each row is a list of elements.
    list: bool,
}

/// A parsed TFORMn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tform {
    repeat: usize,
    code: u8,
    /// For `P`/`Q`: the element code.
    var_code: Option<u8>,
}

fn parse_tform(s: &str) -> Option<Tform> {
    let s = s.trim().as_bytes();
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let repeat = if digits == 0 {
        1
    } else {
        std::str::from_utf8(&s[..digits]).ok()?.parse().ok()?
    };
    let code = s.get(digits)?.to_ascii_uppercase();
    let var_code = match code {
        b'P' | b'Q' => Some(s.get(digits + 1)?.to_ascii_uppercase()),
        _ => None,
    };
    Some(Tform {
        repeat,
        code,
        var_code,
    })
}

/// Bytes a TFORM takes in the row, for every code the standard defines.
fn tform_width(t: &Tform) -> Option<usize> {
    let size = match t.code {
        b'X' => return Some(t.repeat.div_ceil(8)),
        b'L' | b'B' | b'A' => 1,
        b'I' => 2,
        b'J' | b'E' => 4,
        b'K' | b'D' | b'C' | b'P' => 8,
        b'M' | b'Q' => 16,
        _ => return None,
    };
    t.repeat.checked_mul(size)
}

/// Parses TDIMn, `(d1,d2,...)`.
fn parse_tdim(s: &str) -> Option<Vec<usize>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner.split(',').map(|d| d.trim().parse().ok()).collect()
}

/// The narrowest signed type holding `lo..=hi`.
fn int_out(lo: i64, hi: i64) -> IntOut {
    let fits = |min: i64, max: i64| lo >= min && hi <= max;
    if fits(i8::MIN.into(), i8::MAX.into()) {
        IntOut::I8
    } else if fits(i16::MIN.into(), i16::MAX.into()) {
        IntOut::I16
    } else if fits(i32::MIN.into(), i32::MAX.into()) {
        IntOut::I32
    } else {
        IntOut::I64
    }
}

/// The conversion for an element type under TSCAL `scale` and TZERO `zero`.
fn conversion(elem: Elem, scale: f64, zero: f64) -> Conv {
    let range: Option<(i64, i64)> = match elem {
        Elem::Byte => Some((u8::MIN.into(), u8::MAX.into())),
        Elem::Short => Some((i16::MIN.into(), i16::MAX.into())),
        Elem::Int => Some((i32::MIN.into(), i32::MAX.into())),
        _ => None,
    };
    if scale == 1.0 && zero == 0.0 {
        return Conv::Plain;
    }
    if scale == 1.0 && elem == Elem::Long && zero == 9_223_372_036_854_775_808.0 {
        return Conv::Unsigned64;
    }
    if let Some((min, max)) = range {
        if scale == 1.0 && zero.fract() == 0.0 && zero.abs() < 9.0e15 {
            let z = zero as i64;
            if let (Some(lo), Some(hi)) = (min.checked_add(z), max.checked_add(z)) {
                return Conv::Offset(z, int_out(lo, hi));
            }
        }
    }
    Conv::Scaled(scale, zero)
}

impl Column {
    /// The Arrow type of one element.
    fn value_type(&self) -> DataType {
        match (self.elem, self.conv) {
            (Elem::Logical, _) => DataType::Boolean,
            (Elem::Bit, _) => DataType::UInt8,
            (Elem::Char, _) => DataType::Utf8,
            (_, Conv::Scaled(..)) => DataType::Float64,
            (_, Conv::Unsigned64) => DataType::UInt64,
            (_, Conv::Offset(_, out)) => match out {
                IntOut::I8 => DataType::Int8,
                IntOut::I16 => DataType::Int16,
                IntOut::I32 => DataType::Int32,
                IntOut::I64 => DataType::Int64,
            },
            (Elem::Byte, Conv::Plain) => DataType::UInt8,
            (Elem::Short, Conv::Plain) => DataType::Int16,
            (Elem::Int, Conv::Plain) => DataType::Int32,
            (Elem::Long, Conv::Plain) => DataType::Int64,
            (Elem::Float, Conv::Plain) => DataType::Float32,
            (Elem::Double, Conv::Plain) => DataType::Float64,
        }
    }
}

/// The binary table layout read from its header.
#[derive(Debug)]
struct Table {
    naxis1: usize,
    naxis2: usize,
    pcount: usize,
    theap: usize,
    columns: Vec<Column>,
    /// Columns left out, with the reason.
    skipped: Vec<String>,
}

impl Table {
    fn new(h: &Header) -> Result<Self, Error> {
        let i = h.index;
        if h.logical("ZTABLE") == Some(true) {
            return Err(err(format!(
                "HDU {i}: tile-compressed binary tables are not supported"
            )));
        }
        if h.int("BITPIX")? != Some(8) {
            return Err(err(format!("HDU {i}: a binary table needs BITPIX = 8")));
        }
        if h.int("NAXIS")? != Some(2) {
            return Err(err(format!("HDU {i}: a binary table needs NAXIS = 2")));
        }
        if h.count("GCOUNT", Some(1))? != 1 {
            return Err(err(format!("HDU {i}: a binary table needs GCOUNT = 1")));
        }
        let naxis1 = h.count("NAXIS1", None)?;
        let naxis2 = h.count("NAXIS2", None)?;
        let pcount = h.count("PCOUNT", Some(0))?;
        let theap = h.count("THEAP", Some(naxis1.saturating_mul(naxis2)))?;
        let tfields = h.count("TFIELDS", None)?;
        if tfields > 999 {
            return Err(err(format!(
                "HDU {i}: TFIELDS = {tfields} is more than 999"
            )));
        }

        let mut columns = Vec::with_capacity(tfields);
        let mut skipped = Vec::new();
        let mut names = HashSet::new();
        let mut offset = 0usize;
        for n in 1..=tfields {
            let tform_text = h
                .string(&format!("TFORM{n}"))
                .ok_or_else(|| err(format!("HDU {i}: TFORM{n} is missing")))?;
            let tform = parse_tform(tform_text)
                .ok_or_else(|| err(format!("HDU {i}: TFORM{n} = '{tform_text}' is not valid")))?;
            let width = tform_width(&tform)
                .ok_or_else(|| err(format!("HDU {i}: TFORM{n} = '{tform_text}' is not valid")))?;
            let col_offset = offset;
            offset = offset
                .checked_add(width)
                .filter(|&end| end <= naxis1)
                .ok_or_else(|| {
                    err(format!(
                        "HDU {i}: the columns up to {n} (TFORM{n} = '{tform_text}') \
                         do not fit in NAXIS1 = {naxis1} bytes"
                    ))
                })?;

            let mut name = h
                .string(&format!("TTYPE{n}"))
                .unwrap_or("")
                .trim()
                .to_string();
            if name.is_empty() {
                name = format!("col{n}");
            }
            while !names.insert(name.to_ascii_lowercase()) {
                name = format!("{name}_{n}");
            }
            let skip = |why: &str, skipped: &mut Vec<String>| {
                tracing::warn!(hdu = i, column = %name, "FITS: column {n} skipped: {why}");
                skipped.push(format!("{name} (TFORM{n} = '{tform_text}'): {why}"));
            };

            let (elem_code, layout) = match tform.var_code {
                None => (
                    tform.code,
                    Layout::Fixed {
                        repeat: tform.repeat,
                    },
                ),
                Some(code) => (
                    code,
                    Layout::Var {
                        wide: tform.code == b'Q',
                    },
                ),
            };
            let Some(elem) = Elem::from_code(elem_code) else {
                let why = match elem_code {
                    b'C' | b'M' => "complex numbers are not supported".to_string(),
                    c => format!("element type '{}' is not supported", c as char),
                };
                skip(&why, &mut skipped);
                continue;
            };
            let layout = match layout {
                Layout::Var { .. } if tform.repeat != 1 => {
                    skip(
                        "variable-length descriptors need a repeat count of 1",
                        &mut skipped,
                    );
                    continue;
                }
                Layout::Fixed { repeat: 0 } => {
                    skip("zero-width field (repeat count 0)", &mut skipped);
                    continue;
                }
                Layout::Fixed { repeat } if elem == Elem::Bit => Layout::Fixed {
                    repeat: repeat.div_ceil(8),
                },
                other => other,
            };

            let numeric = !matches!(elem, Elem::Logical | Elem::Bit | Elem::Char);
            let (scale, zero) = if numeric {
                (
                    h.float(&format!("TSCAL{n}"))?.unwrap_or(1.0),
                    h.float(&format!("TZERO{n}"))?.unwrap_or(0.0),
                )
            } else {
                (1.0, 0.0)
            };
            let conv = if numeric {
                conversion(elem, scale, zero)
            } else {
                Conv::Plain
            };
            let tnull = match elem {
                Elem::Byte | Elem::Short | Elem::Int | Elem::Long => {
                    match h.int(&format!("TNULL{n}")) {
                        Ok(v) => v,
                        Err(_) => {
                            tracing::warn!(hdu = i, column = %name, "FITS: TNULL{n} is not an integer; ignored");
                            None
                        }
                    }
                }
                _ => None,
            };
            let mut substring = None;
            let list = match (elem, layout) {
                (Elem::Char, Layout::Fixed { repeat }) => {
                    if let Some(dims) = h.string(&format!("TDIM{n}")).and_then(parse_tdim) {
                        let w = dims.first().copied().unwrap_or(0);
                        if w > 0 && w < repeat && repeat % w == 0 {
                            substring = Some(w);
                        }
                    }
                    substring.is_some()
                }
                (Elem::Char, Layout::Var { .. }) => false,
                (_, Layout::Var { .. }) => true,
                (_, Layout::Fixed { repeat }) => repeat > 1,
            };

            let mut column = Column {
                field: Field::new(&name, DataType::Null, true),
                offset: col_offset,
                width,
                elem,
                layout,
                conv,
                tnull,
                substring,
                list,
            };
            let value_type = column.value_type();
            let data_type = if list {
                DataType::List(Arc::new(Field::new_list_field(value_type, true)))
            } else {
                value_type
            };
            let mut metadata = HashMap::new();
            for (key, meta) in [("TUNIT", "unit"), ("TUCD", "ucd"), ("TCOMM", "description")] {
                if let Some(v) = h
                    .string(&format!("{key}{n}"))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                {
                    metadata.insert(meta.to_string(), v.to_string());
                }
            }
            column.field = Field::new(&name, data_type, true).with_metadata(metadata);
            columns.push(column);
        }
        if offset < naxis1 {
            tracing::warn!(
                hdu = i,
                "FITS: columns take {offset} of NAXIS1 = {naxis1} bytes per row"
            );
        }
        Ok(Table {
            naxis1,
            naxis2,
            pcount,
            theap,
            columns,
            skipped,
        })
    }

    fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self.columns.iter().map(|c| c.field.clone()).collect();
        let mut metadata = HashMap::new();
        if !self.skipped.is_empty() {
            metadata.insert(SKIPPED_KEY.to_string(), self.skipped.join("; "));
        }
        Arc::new(Schema::new_with_metadata(fields, metadata))
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// A big-endian stored number.
trait Stored: Copy {
    const WIDTH: usize;
    /// Reads one value from exactly `WIDTH` bytes.
    fn read(b: &[u8]) -> Self;
}

macro_rules! stored {
    ($t:ty, $w:expr) => {
        impl Stored for $t {
            const WIDTH: usize = $w;
            fn read(b: &[u8]) -> Self {
                <[u8; $w]>::try_from(b)
                    .map(<$t>::from_be_bytes)
                    .unwrap_or_default()
            }
        }
    };
}
stored!(u8, 1);
stored!(i16, 2);
stored!(i32, 4);
stored!(i64, 8);
stored!(u32, 4);
stored!(u64, 8);
stored!(f32, 4);
stored!(f64, 8);

/// A stored integer, widened for TNULL comparison and offsets.
trait StoredInt: Stored {
    fn raw(self) -> i64;
}

macro_rules! stored_int {
    ($($t:ty),*) => {
        $(impl StoredInt for $t {
            fn raw(self) -> i64 {
                self.into()
            }
        })*
    };
}
stored_int!(u8, i16, i32, i64);

/// Converts an element count to a list offset.
fn list_offset(n: usize) -> Result<i32, Error> {
    i32::try_from(n).map_err(|_| err("too many array elements for one batch"))
}

/// Decodes the elements of every cell with `f` (`None` is null); returns values and list offsets.
fn primitive<S: Stored, T: ArrowPrimitiveType>(
    cells: &[&[u8]],
    f: impl Fn(S) -> Option<T::Native>,
) -> Result<(ArrayRef, Vec<i32>), Error> {
    let total: usize = cells.iter().map(|c| c.len() / S::WIDTH).sum();
    let mut values = Vec::with_capacity(total);
    let mut nulls = NullBufferBuilder::new(total);
    let mut offsets = Vec::with_capacity(cells.len() + 1);
    offsets.push(0);
    for cell in cells {
        for b in cell.chunks_exact(S::WIDTH) {
            match f(S::read(b)) {
                Some(v) => {
                    values.push(v);
                    nulls.append_non_null();
                }
                None => {
                    values.push(T::Native::default());
                    nulls.append_null();
                }
            }
        }
        offsets.push(list_offset(values.len())?);
    }
    let array = PrimitiveArray::<T>::try_new(ScalarBuffer::from(values), nulls.finish())?;
    Ok((Arc::new(array), offsets))
}

/// `x`, or null when it is NaN.
fn not_nan(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

/// Decodes a numeric column (`B`, `I`, `J`, `K`, `E`, `D`).
fn numeric(col: &Column, cells: &[&[u8]]) -> Result<(ArrayRef, Vec<i32>), Error> {
    let tnull = col.tnull;
    let keep = move |raw: i64| tnull != Some(raw);
    macro_rules! integers {
        ($S:ty, $Plain:ty) => {
            match col.conv {
                Conv::Plain => primitive::<$S, $Plain>(cells, |v: $S| keep(v.raw()).then_some(v)),
                Conv::Offset(z, IntOut::I8) => primitive::<$S, Int8Type>(cells, |v: $S| {
                    keep(v.raw()).then(|| v.raw().wrapping_add(z) as i8)
                }),
                Conv::Offset(z, IntOut::I16) => primitive::<$S, Int16Type>(cells, |v: $S| {
                    keep(v.raw()).then(|| v.raw().wrapping_add(z) as i16)
                }),
                Conv::Offset(z, IntOut::I32) => primitive::<$S, Int32Type>(cells, |v: $S| {
                    keep(v.raw()).then(|| v.raw().wrapping_add(z) as i32)
                }),
                Conv::Offset(z, IntOut::I64) => primitive::<$S, Int64Type>(cells, |v: $S| {
                    keep(v.raw()).then(|| v.raw().wrapping_add(z))
                }),
                Conv::Unsigned64 => primitive::<$S, UInt64Type>(cells, |v: $S| {
                    keep(v.raw()).then(|| (v.raw() as u64) ^ (1 << 63))
                }),
                Conv::Scaled(s, z) => primitive::<$S, Float64Type>(cells, |v: $S| {
                    if keep(v.raw()) {
                        not_nan(v.raw() as f64 * s + z)
                    } else {
                        None
                    }
                }),
            }
        };
    }
    match col.elem {
        Elem::Byte => integers!(u8, UInt8Type),
        Elem::Short => integers!(i16, Int16Type),
        Elem::Int => integers!(i32, Int32Type),
        Elem::Long => integers!(i64, Int64Type),
        Elem::Float => match col.conv {
            Conv::Scaled(s, z) => {
                primitive::<f32, Float64Type>(cells, |v: f32| not_nan(f64::from(v) * s + z))
            }
            _ => primitive::<f32, Float32Type>(cells, |v: f32| (!v.is_nan()).then_some(v)),
        },
        Elem::Double => match col.conv {
            Conv::Scaled(s, z) => primitive::<f64, Float64Type>(cells, |v: f64| not_nan(v * s + z)),
            _ => primitive::<f64, Float64Type>(cells, not_nan),
        },
        Elem::Logical | Elem::Bit | Elem::Char => Err(err("internal: not a numeric column")),
    }
}

/// Decodes `L` cells: `T`, `F`, anything else (0 by the standard) is null.
fn logical(cells: &[&[u8]]) -> Result<(ArrayRef, Vec<i32>), Error> {
    let total: usize = cells.iter().map(|c| c.len()).sum();
    let mut builder = BooleanBuilder::with_capacity(total);
    let mut offsets = Vec::with_capacity(cells.len() + 1);
    offsets.push(0);
    for cell in cells {
        for &b in *cell {
            builder.append_option(match b {
                b'T' => Some(true),
                b'F' => Some(false),
                _ => None,
            });
        }
        offsets.push(list_offset(builder.len())?);
    }
    Ok((Arc::new(builder.finish()), offsets))
}

/// The text of an `A` field: up to the first NUL, trailing spaces removed.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    let s = &bytes[..end];
    let end = s.iter().rposition(|&c| c != b' ').map_or(0, |p| p + 1);
    String::from_utf8_lossy(&s[..end])
}

/// Decodes `A` cells, one string per cell or per `substring` bytes of it.
fn strings(cells: &[&[u8]], substring: Option<usize>) -> Result<(ArrayRef, Vec<i32>), Error> {
    let total_bytes: usize = cells.iter().map(|c| c.len()).sum();
    // Invalid UTF-8 can grow threefold when replaced; Arrow string offsets are i32.
    if total_bytes.saturating_mul(3) > i32::MAX as usize {
        return Err(err("too many string bytes for one batch"));
    }
    let items = match substring {
        Some(w) => total_bytes / w.max(1),
        None => cells.len(),
    };
    let mut builder = StringBuilder::with_capacity(items, total_bytes);
    let mut offsets = Vec::with_capacity(cells.len() + 1);
    offsets.push(0);
    for cell in cells {
        match substring {
            Some(w) => {
                for piece in cell.chunks_exact(w.max(1)) {
                    builder.append_value(text(piece));
                }
            }
            None => builder.append_value(text(cell)),
        }
        offsets.push(list_offset(builder.len())?);
    }
    Ok((Arc::new(builder.finish()), offsets))
}

/// Reads a `P` (two unsigned 32-bit) or `Q` (`wide`, two 64-bit) descriptor: count, heap offset.
fn descriptor(field: &[u8], wide: bool) -> (u64, u64) {
    if wide {
        (
            u64::read(field.get(..8).unwrap_or_default()),
            u64::read(field.get(8..16).unwrap_or_default()),
        )
    } else {
        (
            u64::from(u32::read(field.get(..4).unwrap_or_default())),
            u64::from(u32::read(field.get(4..8).unwrap_or_default())),
        )
    }
}

/// Where a batch from row `start` ends when its heap arrays should stay within [`BATCH_BYTES`]
/// (at least one row, at most `end`), so that rows pointing at large arrays, or many rows at the
/// same one, do not make one batch unboundedly large.
fn vla_batch_end(table: &Table, main: &[u8], start: usize, end: usize) -> usize {
    let mut total: usize = 0;
    for r in start..end {
        let mut row_bytes: usize = 0;
        for col in &table.columns {
            if let Layout::Var { wide } = col.layout {
                let at = r * table.naxis1 + col.offset;
                let field = main.get(at..at + col.width).unwrap_or_default();
                let n = usize::try_from(descriptor(field, wide).0).unwrap_or(usize::MAX);
                row_bytes = row_bytes.saturating_add(col.elem.bytes(n).unwrap_or(usize::MAX));
            }
        }
        total = total.saturating_add(row_bytes);
        if r > start && total > BATCH_BYTES {
            return r;
        }
    }
    end
}

/// The bytes of `col` in each row of `rows`: in the row, or in the heap through the descriptor.
fn cells<'a>(
    col: &Column,
    main: &'a [u8],
    heap: &'a [u8],
    naxis1: usize,
    rows: Range<usize>,
) -> Result<Vec<&'a [u8]>, Error> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let start = r * naxis1 + col.offset;
        let field = main.get(start..start + col.width).ok_or_else(|| {
            err(format!(
                "internal: row {r} of column '{}' is out of range",
                col.field.name()
            ))
        })?;
        match col.layout {
            Layout::Fixed { .. } => out.push(field),
            Layout::Var { wide } => {
                let (n, at) = descriptor(field, wide);
                let bad = || {
                    err(format!(
                        "row {} of column '{}': the array of {n} elements at heap offset {at} \
                         lies outside the heap ({} bytes)",
                        r + 1,
                        col.field.name(),
                        heap.len()
                    ))
                };
                let n = usize::try_from(n).map_err(|_| bad())?;
                let at = usize::try_from(at).map_err(|_| bad())?;
                let len = col.elem.bytes(n).ok_or_else(bad)?;
                let end = at.checked_add(len).ok_or_else(bad)?;
                out.push(heap.get(at..end).ok_or_else(bad)?);
            }
        }
    }
    Ok(out)
}

/// Decodes one column over `rows` into an Arrow array.
fn decode_column(
    col: &Column,
    main: &[u8],
    heap: &[u8],
    naxis1: usize,
    rows: Range<usize>,
) -> Result<ArrayRef, Error> {
    let cells = cells(col, main, heap, naxis1, rows)?;
    let (values, offsets) = match col.elem {
        Elem::Logical => logical(&cells)?,
        Elem::Char => strings(&cells, col.substring)?,
        Elem::Bit => primitive::<u8, UInt8Type>(&cells, Some)?,
        _ => numeric(col, &cells)?,
    };
    if !col.list {
        return Ok(values);
    }
    let DataType::List(item) = col.field.data_type() else {
        return Err(err("internal: a list column without a list type"));
    };
    let list = ListArray::try_new(
        item.clone(),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        values,
        None,
    )?;
    Ok(Arc::new(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Int16Type, UInt64Type};
    use std::io::Read;

    // --- a tiny FITS writer ---------------------------------------------------------------

    /// A quoted FITS string value.
    fn q(s: &str) -> String {
        format!("'{:<8}'", s.replace('\'', "''"))
    }

    /// One 80-byte card `KEY     = value`, or a commentary card when `value` is `None`.
    fn card(key: &str, value: Option<&str>) -> String {
        let c = match value {
            Some(v) => format!("{key:<8}= {v:>20}"),
            None => key.to_string(),
        };
        assert!(c.len() <= 80, "card too long: {c}");
        format!("{c:<80}")
    }

    /// An HDU: the cards, END, blank padding, then `data` padded with zeros to whole blocks.
    fn hdu(cards: &[(String, String)], data: &[u8]) -> Vec<u8> {
        let mut h = String::new();
        for (k, v) in cards {
            h.push_str(&card(k, Some(v)));
        }
        h.push_str(&card("END", None));
        while !h.len().is_multiple_of(BLOCK) {
            h.push(' ');
        }
        let mut out = h.into_bytes();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        out
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A primary HDU without data.
    fn primary() -> Vec<u8> {
        hdu(
            &kv(&[
                ("SIMPLE", "T"),
                ("BITPIX", "8"),
                ("NAXIS", "0"),
                ("EXTEND", "T"),
            ]),
            &[],
        )
    }

    /// A BINTABLE extension: columns as (TTYPE, TFORM) (an empty TTYPE is left out), extra
    /// cards, rows of `naxis1` bytes, and a heap after the rows.
    fn bintable(
        cols: &[(&str, &str)],
        extra: &[(&str, &str)],
        naxis1: usize,
        rows: &[u8],
        heap: &[u8],
    ) -> Vec<u8> {
        let nrows = rows.len().checked_div(naxis1).unwrap_or(0);
        assert_eq!(nrows * naxis1, rows.len());
        let mut cards = kv(&[
            ("XTENSION", &q("BINTABLE")),
            ("BITPIX", "8"),
            ("NAXIS", "2"),
        ]);
        cards.push(("NAXIS1".into(), naxis1.to_string()));
        cards.push(("NAXIS2".into(), nrows.to_string()));
        cards.push(("PCOUNT".into(), heap.len().to_string()));
        cards.push(("GCOUNT".into(), "1".into()));
        cards.push(("TFIELDS".into(), cols.len().to_string()));
        for (i, (name, tform)) in cols.iter().enumerate() {
            if !name.is_empty() {
                cards.push((format!("TTYPE{}", i + 1), q(name)));
            }
            cards.push((format!("TFORM{}", i + 1), q(tform)));
        }
        cards.extend(kv(extra));
        let mut data = rows.to_vec();
        data.extend_from_slice(heap);
        hdu(&cards, &data)
    }

    /// A file of a primary HDU and one binary table.
    fn file(table: Vec<u8>) -> Vec<u8> {
        let mut out = primary();
        out.extend(table);
        out
    }

    fn read_one(bytes: &[u8]) -> (SchemaRef, RecordBatch) {
        let (schema, batches) = read_bintable(bytes, None).expect("readable");
        assert_eq!(batches.len(), 1);
        (schema, batches.into_iter().next().expect("one batch"))
    }

    fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
        b.column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    fn list_item_type(dt: &DataType) -> &DataType {
        match dt {
            DataType::List(f) => f.data_type(),
            other => panic!("not a list: {other}"),
        }
    }

    // --- synthetic tables -------------------------------------------------------------------

    /// Three rows covering every element type, repeats and nulls.
    fn all_types_file() -> Vec<u8> {
        let cols = [
            ("flag", "L"),
            ("bits", "12X"),
            ("b", "B"),
            ("i", "I"),
            ("j", "J"),
            ("k", "K"),
            ("e", "E"),
            ("d", "D"),
            ("name", "8A"),
            ("vec", "3E"),
            ("", "2J"),
            ("flags", "2L"),
            ("onebit", "1X"),
            ("nums", "2D"),
            ("bytes", "3B"),
            ("shorts", "2I"),
            ("longs", "2K"),
        ];
        let mut rows = Vec::new();
        #[allow(clippy::type_complexity)]
        let data: [(
            u8,
            [u8; 2],
            u8,
            i16,
            i32,
            i64,
            f32,
            f64,
            &[u8; 8],
            [f32; 3],
            [i32; 2],
            [u8; 2],
            u8,
        ); 3] = [
            (
                b'T',
                [0b1010_0000, 0b0001_0000],
                255,
                -2,
                100_000,
                1 << 40,
                1.5,
                -2.25,
                b"abc  \0\0\0",
                [1.0, 2.0, 3.0],
                [7, -7],
                [b'T', b'F'],
                0x80,
            ),
            (
                b'F',
                [0xFF, 0xF0],
                0,
                i16::MIN,
                i32::MIN,
                -1,
                f32::NAN,
                1e300,
                b"  lead  ",
                [f32::NAN, 0.0, -0.0],
                [0, 0],
                [0, b'T'],
                0,
            ),
            (
                0,
                [0, 0],
                7,
                i16::MAX,
                i32::MAX,
                i64::MIN,
                f32::NEG_INFINITY,
                f64::NAN,
                b"ab\0cd   ",
                [4.0, 5.0, 6.0],
                [1, 2],
                [b'F', b'F'],
                0x80,
            ),
        ];
        for (r, (l, x, b, i, j, k, e, d, a, v, jj, ll, bit)) in data.iter().enumerate() {
            rows.push(*l);
            rows.extend_from_slice(x);
            rows.push(*b);
            rows.extend_from_slice(&i.to_be_bytes());
            rows.extend_from_slice(&j.to_be_bytes());
            rows.extend_from_slice(&k.to_be_bytes());
            rows.extend_from_slice(&e.to_be_bytes());
            rows.extend_from_slice(&d.to_be_bytes());
            rows.extend_from_slice(*a);
            v.iter()
                .for_each(|x| rows.extend_from_slice(&x.to_be_bytes()));
            jj.iter()
                .for_each(|x| rows.extend_from_slice(&x.to_be_bytes()));
            rows.extend_from_slice(ll);
            rows.push(*bit);
            [r as f64, f64::NAN]
                .iter()
                .for_each(|x| rows.extend_from_slice(&x.to_be_bytes()));
            rows.extend_from_slice(&[1, 2, r as u8]);
            [1i16, -(r as i16)]
                .iter()
                .for_each(|x| rows.extend_from_slice(&x.to_be_bytes()));
            [i64::MIN, r as i64]
                .iter()
                .for_each(|x| rows.extend_from_slice(&x.to_be_bytes()));
        }
        let extra = [
            ("TUNIT7", "'deg'"),
            ("TUCD7", "'pos.eq.ra;meta.main'"),
            ("TCOMM7", "'Right ascension'"),
            ("TUNIT8", "''"),
        ];
        file(bintable(&cols, &extra, 100, &rows, &[]))
    }

    #[test]
    fn every_type() {
        let (schema, b) = read_one(&all_types_file());
        assert_eq!(b.num_rows(), 3);
        let types: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), f.data_type()))
            .collect();
        let expected = [
            "flag:Boolean",
            "bits:List(UInt8)",
            "b:UInt8",
            "i:Int16",
            "j:Int32",
            "k:Int64",
            "e:Float32",
            "d:Float64",
            "name:Utf8",
            "vec:List(Float32)",
            "col11:List(Int32)",
            "flags:List(Boolean)",
            "onebit:UInt8",
            "nums:List(Float64)",
            "bytes:List(UInt8)",
            "shorts:List(Int16)",
            "longs:List(Int64)",
        ];
        for (got, want) in types.iter().zip(expected) {
            assert!(
                got.starts_with(want.split('(').next().unwrap()),
                "{got} vs {want}"
            );
        }
        for (f, want) in schema.fields().iter().zip(expected) {
            if let Some(inner) = want.split_once('(').map(|(_, r)| r.trim_end_matches(')')) {
                assert_eq!(
                    list_item_type(f.data_type()).to_string(),
                    inner,
                    "{}",
                    f.name()
                );
            }
        }

        let flag = col(&b, "flag").as_boolean();
        assert_eq!(
            (flag.value(0), flag.value(1), flag.is_null(2)),
            (true, false, true)
        );
        let bits = col(&b, "bits").as_list::<i32>();
        assert_eq!(
            bits.value(0).as_primitive::<UInt8Type>().values(),
            &[0b1010_0000, 0b0001_0000]
        );
        assert_eq!(
            bits.value(1).as_primitive::<UInt8Type>().values(),
            &[0xFF, 0xF0]
        );
        assert_eq!(
            col(&b, "b").as_primitive::<UInt8Type>().values(),
            &[255, 0, 7]
        );
        assert_eq!(
            col(&b, "i").as_primitive::<Int16Type>().values(),
            &[-2, i16::MIN, i16::MAX]
        );
        assert_eq!(
            col(&b, "j").as_primitive::<Int32Type>().values(),
            &[100_000, i32::MIN, i32::MAX]
        );
        assert_eq!(
            col(&b, "k").as_primitive::<Int64Type>().values(),
            &[1 << 40, -1, i64::MIN]
        );
        let e = col(&b, "e").as_primitive::<Float32Type>();
        assert_eq!(
            (e.value(0), e.is_null(1), e.value(2)),
            (1.5, true, f32::NEG_INFINITY)
        );
        let d = col(&b, "d").as_primitive::<Float64Type>();
        assert_eq!((d.value(0), d.value(1), d.is_null(2)), (-2.25, 1e300, true));
        let name = col(&b, "name").as_string::<i32>();
        assert_eq!(
            (name.value(0), name.value(1), name.value(2)),
            ("abc", "  lead", "ab")
        );
        assert_eq!(name.null_count(), 0);
        let vec = col(&b, "vec").as_list::<i32>();
        assert_eq!(vec.value_length(0), 3);
        let v1 = vec.value(1);
        let v1 = v1.as_primitive::<Float32Type>();
        assert!(v1.is_null(0) && v1.value(1) == 0.0 && v1.value(2).is_sign_negative());
        assert_eq!(
            vec.value(2).as_primitive::<Float32Type>().values(),
            &[4.0, 5.0, 6.0]
        );
        let c11 = col(&b, "col11").as_list::<i32>();
        assert_eq!(c11.value(0).as_primitive::<Int32Type>().values(), &[7, -7]);
        let flags = col(&b, "flags").as_list::<i32>();
        let f1 = flags.value(1);
        let f1 = f1.as_boolean();
        assert!(f1.is_null(0) && f1.value(1));
        assert_eq!(
            col(&b, "onebit").as_primitive::<UInt8Type>().values(),
            &[0x80, 0, 0x80]
        );
        let nums = col(&b, "nums").as_list::<i32>();
        let n2 = nums.value(2);
        assert_eq!(
            (n2.as_primitive::<Float64Type>().value(0), n2.is_null(1)),
            (2.0, true)
        );
        let bytes = col(&b, "bytes").as_list::<i32>();
        assert_eq!(
            bytes.value(2).as_primitive::<UInt8Type>().values(),
            &[1, 2, 2]
        );
        let shorts = col(&b, "shorts").as_list::<i32>();
        assert_eq!(
            shorts.value(1).as_primitive::<Int16Type>().values(),
            &[1, -1]
        );
        let longs = col(&b, "longs").as_list::<i32>();
        assert_eq!(
            longs.value(2).as_primitive::<Int64Type>().values(),
            &[i64::MIN, 2]
        );

        let e_meta = schema.field_with_name("e").unwrap().metadata();
        assert_eq!(e_meta.get("unit").map(String::as_str), Some("deg"));
        assert_eq!(
            e_meta.get("ucd").map(String::as_str),
            Some("pos.eq.ra;meta.main")
        );
        assert_eq!(
            e_meta.get("description").map(String::as_str),
            Some("Right ascension")
        );
        assert!(
            schema.field_with_name("d").unwrap().metadata().is_empty(),
            "empty TUNIT is no unit"
        );
        assert!(schema.metadata().is_empty());
    }

    #[test]
    fn scaling_and_nulls() {
        let cols = [
            ("u16", "I"),
            ("u64", "K"),
            ("i8", "B"),
            ("scaled", "J"),
            ("escaled", "E"),
            ("joff", "J"),
            ("inull", "I"),
            ("u32", "J"),
            ("arr", "2I"),
            ("dzero", "D"),
            ("boff", "B"),
            ("kzero", "K"),
        ];
        let extra = [
            ("TZERO1", "32768"),
            ("TZERO2", "9223372036854775808"),
            ("TZERO3", "-128"),
            ("TSCAL4", "5.0D-1"),
            ("TZERO4", "10."),
            ("TNULL4", "-1"),
            ("TSCAL5", "2.0"),
            ("TZERO6", "1000"),
            ("TNULL7", "-99"),
            ("TZERO8", "2147483648"),
            ("TZERO9", "32768"),
            ("TNULL9", "-32768"),
            ("TZERO10", "1.5"),
            ("TZERO11", "1000"),
            ("TZERO12", "5"),
        ];
        let mut rows = Vec::new();
        for r in 0..2 {
            let first = r == 0;
            rows.extend_from_slice(&(if first { i16::MIN } else { i16::MAX }).to_be_bytes());
            rows.extend_from_slice(&(if first { i64::MIN } else { i64::MAX }).to_be_bytes());
            rows.push(if first { 0 } else { 255 });
            rows.extend_from_slice(&(if first { 4i32 } else { -1 }).to_be_bytes());
            rows.extend_from_slice(&(if first { 1.5f32 } else { f32::NAN }).to_be_bytes());
            rows.extend_from_slice(&5i32.to_be_bytes());
            rows.extend_from_slice(&(if first { -99i16 } else { 12 }).to_be_bytes());
            rows.extend_from_slice(&(if first { i32::MIN } else { i32::MAX }).to_be_bytes());
            rows.extend_from_slice(&i16::MIN.to_be_bytes());
            rows.extend_from_slice(&0i16.to_be_bytes());
            rows.extend_from_slice(&1.0f64.to_be_bytes());
            rows.push(255);
            rows.extend_from_slice(&(if first { 0i64 } else { 1 }).to_be_bytes());
        }
        let naxis1 = rows.len() / 2;
        let (schema, b) = read_one(&file(bintable(&cols, &extra, naxis1, &rows, &[])));
        let ty = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
        assert_eq!(ty("u16"), DataType::Int32);
        assert_eq!(
            col(&b, "u16").as_primitive::<Int32Type>().values(),
            &[0, 65535]
        );
        assert_eq!(ty("u64"), DataType::UInt64);
        assert_eq!(
            col(&b, "u64").as_primitive::<UInt64Type>().values(),
            &[0, u64::MAX]
        );
        assert_eq!(ty("i8"), DataType::Int8);
        assert_eq!(
            col(&b, "i8").as_primitive::<Int8Type>().values(),
            &[-128, 127]
        );
        assert_eq!(ty("scaled"), DataType::Float64);
        let scaled = col(&b, "scaled").as_primitive::<Float64Type>();
        assert_eq!((scaled.value(0), scaled.is_null(1)), (12.0, true));
        assert_eq!(ty("escaled"), DataType::Float64);
        let escaled = col(&b, "escaled").as_primitive::<Float64Type>();
        assert_eq!((escaled.value(0), escaled.is_null(1)), (3.0, true));
        assert_eq!(ty("joff"), DataType::Int64);
        assert_eq!(
            col(&b, "joff").as_primitive::<Int64Type>().values(),
            &[1005, 1005]
        );
        assert_eq!(ty("inull"), DataType::Int16);
        let inull = col(&b, "inull").as_primitive::<Int16Type>();
        assert_eq!((inull.is_null(0), inull.value(1)), (true, 12));
        assert_eq!(ty("u32"), DataType::Int64);
        assert_eq!(
            col(&b, "u32").as_primitive::<Int64Type>().values(),
            &[0, u32::MAX as i64]
        );
        assert_eq!(list_item_type(&ty("arr")), &DataType::Int32);
        let arr = col(&b, "arr").as_list::<i32>().value(0);
        let arr = arr.as_primitive::<Int32Type>();
        assert_eq!((arr.is_null(0), arr.value(1)), (true, 32768));
        assert_eq!(ty("dzero"), DataType::Float64);
        assert_eq!(
            col(&b, "dzero").as_primitive::<Float64Type>().values(),
            &[2.5, 2.5]
        );
        assert_eq!(ty("boff"), DataType::Int16);
        assert_eq!(
            col(&b, "boff").as_primitive::<Int16Type>().values(),
            &[1255, 1255]
        );
        assert_eq!(ty("kzero"), DataType::Float64);
        assert_eq!(
            col(&b, "kzero").as_primitive::<Float64Type>().values(),
            &[5.0, 6.0]
        );
    }

    /// Primary HDU with data, an IMAGE extension, then two binary tables.
    fn multi_hdu_file() -> Vec<u8> {
        let mut out = hdu(
            &kv(&[
                ("SIMPLE", "T"),
                ("BITPIX", "-32"),
                ("NAXIS", "1"),
                ("NAXIS1", "1000"),
                ("EXTEND", "T"),
            ]),
            &[0x42; 4000],
        );
        out.extend(hdu(
            &kv(&[
                ("XTENSION", "'IMAGE   '"),
                ("BITPIX", "16"),
                ("NAXIS", "2"),
                ("NAXIS1", "3"),
                ("NAXIS2", "5"),
                ("PCOUNT", "0"),
                ("GCOUNT", "1"),
            ]),
            &[0x11; 30],
        ));
        let rows: Vec<u8> = [1i32, 2].iter().flat_map(|v| v.to_be_bytes()).collect();
        out.extend(bintable(
            &[("first", "J")],
            &[("EXTNAME", "'ONE'")],
            4,
            &rows,
            &[],
        ));
        out.extend(bintable(
            &[("second", "4A")],
            &[("EXTNAME", "'TWO'")],
            4,
            b"wxyz",
            &[],
        ));
        out
    }

    #[test]
    fn table_after_other_hdus() {
        let bytes = multi_hdu_file();
        let (schema, batches) = read_bintable(&bytes, None).unwrap();
        assert_eq!(schema.field(0).name(), "first");
        assert_eq!(
            batches[0].column(0).as_primitive::<Int32Type>().values(),
            &[1, 2]
        );
        let (schema, _) = read_bintable(&bytes, Some(2)).unwrap();
        assert_eq!(schema.field(0).name(), "first");
        let (schema, batches) = read_bintable(&bytes, Some(3)).unwrap();
        assert_eq!(schema.field(0).name(), "second");
        assert_eq!(batches[0].column(0).as_string::<i32>().value(0), "wxyz");

        let msg = |r: Result<_, Error>| r.map(|_| ()).unwrap_err().to_string();
        assert!(msg(read_bintable(&bytes, Some(0))).contains("primary HDU"));
        assert!(msg(read_bintable(&bytes, Some(1))).contains("IMAGE"));
        assert!(msg(read_bintable(&bytes, Some(7))).contains("no HDU 7"));
        let images_only = &bytes[..BLOCK * 5];
        assert!(msg(read_bintable(images_only, None)).contains("no BINTABLE"));
    }

    /// One row of [`vla_file`]: each array's bytes and element count.
    type VlaRow<'a> = (
        Vec<u8>,
        usize,
        Vec<u8>,
        usize,
        &'a [u8],
        Vec<u8>,
        usize,
        &'a [u8],
    );

    /// Variable-length arrays in the heap (with a gap before it, THEAP).
    fn vla_file() -> Vec<u8> {
        let cols = [
            ("vj", "1PJ(3)"),
            ("ve", "1PE(2)"),
            ("vs", "1PA(10)"),
            ("vd", "1QD(2)"),
            ("vl", "1PL(2)"),
        ];
        let mut heap = vec![0u8; 16]; // the gap between the rows and the heap proper
        let mut place = |bytes: &[u8]| -> u64 {
            let at = heap.len() - 16;
            heap.extend_from_slice(bytes);
            at as u64
        };
        let be32 = |v: &[i32]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        let bef = |v: &[f32]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        let bed = |v: &[f64]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        let cells: [VlaRow; 3] = [
            (
                be32(&[1, 2, 3]),
                3,
                bef(&[0.5]),
                1,
                b"hello",
                bed(&[1.5, 2.5]),
                2,
                b"TF",
            ),
            (vec![], 0, vec![], 0, b"", vec![], 0, b""),
            (
                be32(&[-5]),
                1,
                bef(&[f32::NAN, 4.0]),
                2,
                b"x  \0",
                bed(&[-1.0]),
                1,
                b"\0",
            ),
        ];
        let mut rows = Vec::new();
        for (j, nj, e, ne, s, d, nd, l) in cells.iter() {
            let p = |n: usize, at: u64| {
                let mut v = (n as u32).to_be_bytes().to_vec();
                v.extend_from_slice(&(at as u32).to_be_bytes());
                v
            };
            let at = place(j);
            rows.extend(p(*nj, at));
            let at = place(e);
            rows.extend(p(*ne, at));
            let at = place(s);
            rows.extend(p(s.len(), at));
            let at = place(d);
            rows.extend_from_slice(&(*nd as u64).to_be_bytes());
            rows.extend_from_slice(&at.to_be_bytes());
            let at = place(l);
            rows.extend(p(l.len(), at));
        }
        let naxis1 = 8 * 4 + 16;
        let theap = (naxis1 * 3 + 16).to_string();
        file(bintable(
            &cols,
            &[("THEAP", &theap), ("TNULL1", "2")],
            naxis1,
            &rows,
            &heap,
        ))
    }

    #[test]
    fn variable_length_arrays() {
        let (schema, b) = read_one(&vla_file());
        assert_eq!(
            list_item_type(schema.field(0).data_type()),
            &DataType::Int32
        );
        assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
        assert_eq!(
            list_item_type(schema.field(3).data_type()),
            &DataType::Float64
        );
        assert_eq!(
            list_item_type(schema.field(4).data_type()),
            &DataType::Boolean
        );
        let vj = col(&b, "vj").as_list::<i32>();
        let vj0 = vj.value(0);
        let vj0 = vj0.as_primitive::<Int32Type>();
        assert_eq!(
            (vj0.value(0), vj0.is_null(1), vj0.value(2)),
            (1, true, 3),
            "TNULL applies to elements"
        );
        assert_eq!(vj.value_length(1), 0);
        assert_eq!(vj.value(2).as_primitive::<Int32Type>().values(), &[-5]);
        let ve = col(&b, "ve").as_list::<i32>();
        let ve2 = ve.value(2);
        assert!(ve2.is_null(0) && ve2.as_primitive::<Float32Type>().value(1) == 4.0);
        let vs = col(&b, "vs").as_string::<i32>();
        assert_eq!((vs.value(0), vs.value(1), vs.value(2)), ("hello", "", "x"));
        let vd = col(&b, "vd").as_list::<i32>();
        assert_eq!(
            vd.value(0).as_primitive::<Float64Type>().values(),
            &[1.5, 2.5]
        );
        let vl = col(&b, "vl").as_list::<i32>();
        let vl0 = vl.value(0);
        assert!(vl0.as_boolean().value(0) && !vl0.as_boolean().value(1));
        assert!(vl.value(2).is_null(0));
    }

    #[test]
    fn bad_heap_descriptors_are_errors() {
        let bytes = vla_file();
        let rows_at = 2 * BLOCK; // primary, then the table header fits one block
                                 // Point the first descriptor's offset far past the heap.
        let mut bad = bytes.clone();
        bad[rows_at + 4..rows_at + 8].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
        let e = read_bintable(&bad, None).unwrap_err().to_string();
        assert!(e.contains("outside the heap"), "{e}");
        // An element count that overflows the byte size.
        let mut bad = bytes.clone();
        bad[rows_at + 24..rows_at + 32].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(read_bintable(&bad, None).is_err());
        // THEAP past the heap.
        let text = String::from_utf8_lossy(&bytes[BLOCK..2 * BLOCK]).to_string();
        let at = BLOCK + text.find("THEAP").unwrap();
        let mut bad = bytes.clone();
        bad[at..at + 80].copy_from_slice(card("THEAP", Some("99999")).as_bytes());
        let e = read_bintable(&bad, None).unwrap_err().to_string();
        assert!(e.contains("THEAP"), "{e}");
    }

    #[test]
    fn batches_of_at_most_65536_rows() {
        let n = 70_000;
        let rows: Vec<u8> = (0..n as i32).flat_map(|v| v.to_be_bytes()).collect();
        let bytes = file(bintable(&[("n", "J")], &[], 4, &rows, &[]));
        let (_, batches) = read_bintable(&bytes, None).unwrap();
        let sizes: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
        assert_eq!(sizes, vec![65_536, n - 65_536]);
        assert_eq!(
            batches[1].column(0).as_primitive::<Int32Type>().value(0),
            65_536
        );
    }

    #[test]
    fn empty_tables() {
        let bytes = file(bintable(&[("a", "J"), ("b", "E")], &[], 8, &[], &[]));
        let (schema, batches) = read_bintable(&bytes, None).unwrap();
        assert_eq!(schema.fields().len(), 2);
        assert!(batches.is_empty());

        // No columns but three rows of padding.
        let bytes = file(bintable(&[], &[], 2, &[0; 6], &[]));
        let (schema, batches) = read_bintable(&bytes, None).unwrap();
        assert!(schema.fields().is_empty());
        assert_eq!(batches[0].num_rows(), 3);

        // Rows of zero bytes: nothing to read, however many NAXIS2 claims.
        let mut bytes = file(bintable(&[("none", "0J")], &[], 0, &[], &[]));
        let text = String::from_utf8_lossy(&bytes[BLOCK..2 * BLOCK]).to_string();
        let at = BLOCK + text.find("NAXIS2").unwrap();
        bytes[at..at + 80].copy_from_slice(card("NAXIS2", Some("9000000000000000000")).as_bytes());
        let (schema, batches) = read_bintable(&bytes, None).unwrap();
        assert!(schema.fields().is_empty() && batches.is_empty());
    }

    #[test]
    fn large_heap_arrays_make_smaller_batches() {
        // Three rows, each claiming 2^26 E elements (2^28 bytes): one row per batch. Only the
        // batch planning is run here; the heap itself would be 768 MiB.
        let mut cards = kv(&[("XTENSION", "'BINTABLE'"), ("BITPIX", "8"), ("NAXIS", "2")]);
        cards.extend(kv(&[
            ("NAXIS1", "8"),
            ("NAXIS2", "3"),
            ("PCOUNT", "0"),
            ("TFIELDS", "1"),
        ]));
        cards.extend(kv(&[("TFORM1", "'1PE'")]));
        let header = hdu(&cards, &[]);
        let (h, _) = read_header(&header, 0, 1).unwrap();
        let table = Table::new(&h).unwrap();
        let main: Vec<u8> = (0..3)
            .flat_map(|_| [(1u32 << 26).to_be_bytes(), [0; 4]].concat())
            .collect();
        assert_eq!(vla_batch_end(&table, &main, 0, 3), 1);
        assert_eq!(vla_batch_end(&table, &main, 1, 3), 2);
        assert_eq!(vla_batch_end(&table, &main[..8], 0, 1), 1);
        let small: Vec<u8> = (0..3)
            .flat_map(|_| [4u32.to_be_bytes(), [0; 4]].concat())
            .collect();
        assert_eq!(vla_batch_end(&table, &small, 0, 3), 3);
    }

    #[test]
    fn unsupported_columns_are_skipped_with_a_note() {
        let cols = [
            ("c", "C"),
            ("ok", "J"),
            ("none", "0J"),
            ("m", "2M"),
            ("v", "2PJ"),
        ];
        let rows = vec![0u8; 8 + 4 + 32 + 16];
        let (schema, b) = read_one(&file(bintable(&cols, &[], rows.len(), &rows, &[])));
        assert_eq!(schema.fields().len(), 1);
        assert_eq!(schema.field(0).name(), "ok");
        assert_eq!(b.num_rows(), 1);
        let note = &schema.metadata()[SKIPPED_KEY];
        for part in [
            "c (TFORM1 = 'C')",
            "complex",
            "none",
            "zero-width",
            "m (",
            "v (",
            "repeat count of 1",
        ] {
            assert!(note.contains(part), "{note}");
        }
    }

    #[test]
    fn names_and_string_arrays() {
        let cols = [("", "J"), ("a", "J"), ("A", "J"), ("strs", "12A")];
        let mut rows = vec![0u8; 12];
        rows.extend_from_slice(b"ab  cd\0\0ef  ");
        let extra = [("TDIM4", "'(4,3)'")];
        let (schema, b) = read_one(&file(bintable(&cols, &extra, 24, &rows, &[])));
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["col1", "a", "A_3", "strs"]);
        let strs = col(&b, "strs").as_list::<i32>().value(0);
        let strs = strs.as_string::<i32>();
        assert_eq!(
            (strs.len(), strs.value(0), strs.value(1), strs.value(2)),
            (3, "ab", "cd", "ef")
        );
    }

    #[test]
    fn header_values() {
        let cards = [
            card("XTENSION", Some("'BINTABLE'")),
            card("STR", Some("'it''s  '  / a comment")),
            card("LONG", Some("'first part &'")),
            card("CONTINUE  'second part&'", None),
            card("CONTINUE  'end'", None),
            card("NUM", Some("1.5D2 / hundred and fifty")),
            card("FLAG", Some("T")),
            card("COMMENT = not a value", None),
            card("STR", Some("'duplicate'")),
            card("END", None),
        ]
        .concat();
        let (h, data_start) = read_header(cards.as_bytes(), 0, 1).unwrap();
        assert_eq!(data_start, BLOCK);
        assert_eq!(h.string("STR"), Some("it's"));
        assert_eq!(h.string("LONG"), Some("first part second partend"));
        assert_eq!(h.float("NUM").unwrap(), Some(150.0));
        assert_eq!(h.logical("FLAG"), Some(true));
        assert!(!h.cards.contains_key("COMMENT"));
        assert!(h.int("NUM").is_err());
    }

    // --- malformed input --------------------------------------------------------------------

    /// A small xorshift generator, for reproducible noise.
    fn noise(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn garbage_is_an_error() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let random: Vec<u8> = (0..20_000).map(|_| noise(&mut seed) as u8).collect();
        assert!(read_bintable(&random, None).is_err());
        assert!(read_bintable(&[], None).is_err());
        assert!(read_bintable(b"SIMPLE  =", None).is_err());
        let mut no_end = card("SIMPLE", Some("T")).into_bytes();
        no_end.extend_from_slice(&random);
        assert!(read_bintable(&no_end, None).is_err());
        let e = read_bintable(b"<?xml version='1.0'?><VOTABLE/>", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a FITS file"), "{e}");

        // Headers with impossible values.
        let table = |extra: &[(&str, &str)], naxis1: &str, naxis2: &str, tform: &str| {
            let mut cards = kv(&[
                ("XTENSION", "'BINTABLE'"),
                ("BITPIX", "8"),
                ("NAXIS", "2"),
                ("NAXIS1", naxis1),
                ("NAXIS2", naxis2),
                ("PCOUNT", "0"),
                ("GCOUNT", "1"),
                ("TFIELDS", "1"),
                ("TFORM1", tform),
            ]);
            cards.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
            cards.extend(kv(extra));
            file(hdu(&cards, &[0; 64]))
        };
        for (extra, n1, n2, tform) in [
            (&[][..], "4", "2", "'Z'"),
            (&[], "4", "2", "''"),
            (&[], "4", "2", "'99999999999999999999J'"),
            (&[], "2", "2", "'J'"),
            (&[], "4", "-2", "'J'"),
            (&[], "4", "2.5", "'J'"),
            (&[], "9223372036854775807", "9223372036854775807", "'J'"),
            (&[], "4", "9223372036854775807", "'J'"),
            (&[], "4", "1000", "'J'"),
            (&[("TFIELDS", "-1")], "4", "2", "'J'"),
            (&[("ZTABLE", "T")], "4", "2", "'J'"),
        ] {
            let bytes = table(extra, n1, n2, tform);
            assert!(
                read_bintable(&bytes, None).is_err(),
                "{extra:?} {n1} {n2} {tform}"
            );
        }
        let huge_image = hdu(
            &kv(&[
                ("SIMPLE", "T"),
                ("BITPIX", "64"),
                ("NAXIS", "2"),
                ("NAXIS1", "4611686018427387904"),
                ("NAXIS2", "4"),
            ]),
            &[],
        );
        assert!(read_bintable(&huge_image, None).is_err());
        let bad_bitpix = hdu(
            &kv(&[("SIMPLE", "T"), ("BITPIX", "7"), ("NAXIS", "0")]),
            &[],
        );
        assert!(read_bintable(&bad_bitpix, None).is_err());
    }

    #[test]
    fn every_truncation_is_an_error_and_never_a_panic() {
        let empty = file(bintable(&[("a", "J")], &[], 4, &[], &[]));
        for bytes in [all_types_file(), vla_file(), multi_hdu_file(), empty] {
            let (_, full) = read_bintable(&bytes, None).unwrap();
            let rows: usize = full.iter().map(|b| b.num_rows()).sum();
            let (header, data_start) = find_table(&bytes, None).unwrap();
            let table = Table::new(&header).unwrap();
            let needed = data_start + table.naxis1 * table.naxis2 + table.pcount;
            for len in 0..bytes.len() {
                match read_bintable(&bytes[..len], None) {
                    Ok((_, batches)) => {
                        assert!(len >= needed, "cut at {len} of {needed} read as whole");
                        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), rows);
                    }
                    Err(e) => {
                        assert!(len < needed, "cut at {len} after the table: {e}");
                        let e = e.to_string();
                        let at_hdu_end = e.contains("no BINTABLE") && len.is_multiple_of(BLOCK);
                        assert!(
                            e.contains("truncated") || e.contains("not a FITS file") || at_hdu_end,
                            "at {len}: {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let mut seed = 42;
        for bytes in [all_types_file(), vla_file(), multi_hdu_file()] {
            for _ in 0..3000 {
                let mut bad = bytes.clone();
                for _ in 0..1 + noise(&mut seed) % 4 {
                    let at = (noise(&mut seed) as usize) % bad.len();
                    bad[at] = match noise(&mut seed) % 4 {
                        0 => b'9',
                        1 => b' ',
                        2 => b'\'',
                        _ => noise(&mut seed) as u8,
                    };
                }
                let _ = read_bintable(&bad, None);
            }
        }
    }

    // --- the Fermi-LAT catalogues -----------------------------------------------------------

    fn gunzip(path: &std::path::Path) -> Vec<u8> {
        let gz = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// The shared data folder beside the repository, found at run time (VOSTOK_SHARED, else
    /// ../shared from the crate): a compile-time path would point into whichever checkout built
    /// this test binary first, since checkouts share one target folder.
    fn shared_dir() -> std::path::PathBuf {
        use std::path::PathBuf;
        if let Some(s) = std::env::var_os("VOSTOK_SHARED") {
            return PathBuf::from(s);
        }
        let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        crate_dir.join("../../shared")
    }

    #[allow(non_snake_case)]
    fn FGL3() -> std::path::PathBuf {
        shared_dir().join("data/catalogs/gamma/3fgl_gll_psc_v16.fit.gz")
    }
    #[allow(non_snake_case)]
    fn FHL3() -> std::path::PathBuf {
        shared_dir().join("data/catalogs/gamma/3fhl_gll_psch_v13.fit.gz")
    }

    fn f32_at(b: &RecordBatch, name: &str, row: usize) -> Option<f32> {
        let a = col(b, name).as_primitive::<Float32Type>();
        a.is_valid(row).then(|| a.value(row))
    }

    fn list_f32(b: &RecordBatch, name: &str, row: usize) -> Vec<Option<f32>> {
        let l = col(b, name).as_list::<i32>().value(row);
        l.as_primitive::<Float32Type>().iter().collect()
    }

    // Expected values below come from astropy 6 (`Table.read(path, hdu=n)`), except that
    // astropy masks empty strings where this reader keeps "".
    #[test]
    fn fermi_3fgl() {
        let bytes = gunzip(&FGL3());
        let (schema, batches) = read_bintable(&bytes, None).unwrap();
        assert_eq!(schema.fields().len(), 77);
        assert!(schema.metadata().is_empty(), "nothing skipped");
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(b.num_rows(), 3034);
        let f = |n: &str| schema.field_with_name(n).unwrap().clone();
        assert_eq!(schema.field(0).name(), "Source_Name");
        assert_eq!(schema.field(76).name(), "Flags");
        assert_eq!(f("Source_Name").data_type(), &DataType::Utf8);
        assert_eq!(f("RAJ2000").data_type(), &DataType::Float32);
        assert_eq!(
            f("RAJ2000").metadata().get("unit").map(String::as_str),
            Some("deg")
        );
        assert_eq!(
            f("RAJ2000").metadata().get("ucd").map(String::as_str),
            Some("pos.eq.ra;meta.main")
        );
        assert_eq!(f("ROI_num").data_type(), &DataType::Int16);
        assert_eq!(f("Time_Peak").data_type(), &DataType::Float64);
        assert_eq!(
            list_item_type(f("Flux_History").data_type()),
            &DataType::Float32
        );
        assert_eq!(
            f("Flux_History").metadata().get("unit").map(String::as_str),
            Some("photon/cm**2/s")
        );

        let names = col(b, "Source_Name").as_string::<i32>();
        assert_eq!(names.value(0), "3FGL J0000.1+6545");
        assert_eq!(names.value(5), "3FGL J0001.6+3535");
        assert_eq!(names.value(3033), "3FGL J2359.5-2052");
        assert_eq!(f32_at(b, "RAJ2000", 0), Some(0.0377));
        assert_eq!(f32_at(b, "DEJ2000", 0), Some(65.7517));
        assert_eq!(f32_at(b, "RAJ2000", 3033), Some(359.8812));
        assert_eq!(f32_at(b, "DEJ2000", 3033), Some(-20.8826));
        assert_eq!(f32_at(b, "Pivot_Energy", 0), Some(1159.0813));
        assert_eq!(f32_at(b, "Variability_Index", 5), Some(32.394287));
        let roi = col(b, "ROI_num").as_primitive::<Int16Type>();
        assert_eq!((roi.value(0), roi.value(5)), (185, 282));
        let flags = col(b, "Flags").as_primitive::<Int16Type>();
        assert_eq!((flags.value(0), flags.value(5)), (4, 8));
        let peak = col(b, "Time_Peak").as_primitive::<Float64Type>();
        assert_eq!(peak.value(0), f64::NEG_INFINITY);
        assert_eq!(peak.null_count(), 0);
        // NaN floats are nulls: astropy masks the same counts.
        assert_eq!(col(b, "Unc_Flux30_100").null_count(), 3034);
        assert_eq!(col(b, "Conf_68_PosAng").null_count(), 28);
        assert_eq!(col(b, "Unc_beta").null_count(), 1);

        let hist = list_f32(b, "Flux_History", 0);
        assert_eq!(hist.len(), 48);
        assert_eq!(
            (hist[0], hist[1], hist[47]),
            (Some(6.361567e-08), Some(2.6776616e-08), Some(0.0))
        );
        assert_eq!(list_f32(b, "Flux_History", 3033)[0], Some(3.1120762e-09));
        // TDIM63 = (2,48): flattened to 96 values, astropy's [0][0][0], [0][0][1], [0][1][0], [0][1][1].
        let unc = list_f32(b, "Unc_Flux_History", 0);
        assert_eq!(unc.len(), 96);
        assert_eq!(
            &unc[..4],
            &[
                Some(-2.777_704e-8),
                Some(2.976_795_3e-8),
                None,
                Some(3.014_306e-8)
            ]
        );

        let class = col(b, "CLASS1").as_string::<i32>();
        assert_eq!(
            (
                class.value(0),
                class.value(2),
                class.value(3),
                class.value(4)
            ),
            ("", "spp", "bll", "fsrq")
        );
        assert_eq!(
            col(b, "ASSOC1").as_string::<i32>().value(3),
            "PMN J0001-0746"
        );
        assert_eq!(col(b, "TEVCAT_FLAG").as_string::<i32>().value(0), "N");

        // HDU 3, after the ROIs table: Hist_Start, 49 rows of D.
        let (schema, batches) = read_bintable(&bytes, Some(3)).unwrap();
        assert_eq!(schema.field(0).name(), "Hist_Start");
        let h = batches[0].column(0).as_primitive::<Float64Type>();
        assert_eq!(
            (h.len(), h.value(0), h.value(48)),
            (49, 239330000.0, 365467550.0)
        );
    }

    #[test]
    fn fermi_3fhl() {
        let bytes = gunzip(&FHL3());
        let (schema, batches) = read_bintable(&bytes, Some(1)).unwrap();
        assert_eq!(schema.fields().len(), 44);
        let b = &batches[0];
        assert_eq!(b.num_rows(), 1556);
        assert_eq!(
            col(b, "Source_Name").as_string::<i32>().value(0),
            "3FHL J0001.2-0748"
        );
        assert_eq!(
            col(b, "Source_Name").as_string::<i32>().value(1555),
            "3FHL J2359.3-2049"
        );
        assert_eq!(f32_at(b, "RAJ2000", 0), Some(0.31067517));
        assert_eq!(f32_at(b, "DEJ2000", 0), Some(-7.8075185));
        assert_eq!(f32_at(b, "RAJ2000", 1555), Some(359.8293));
        assert_eq!(f32_at(b, "Redshift", 0), None);
        assert_eq!(f32_at(b, "Redshift", 1555), Some(0.096));
        assert_eq!(col(b, "Redshift").null_count(), 1008);
        // TNULL33 = -1 on an I column: one null, at row 955.
        let bb = col(b, "Variability_BayesBlocks").as_primitive::<Int16Type>();
        assert_eq!(
            (bb.null_count(), bb.is_null(955), bb.value(8)),
            (1, true, 2)
        );
        assert_eq!(list_f32(b, "Flux_Band", 0)[0], Some(1.1127661e-11));
        let unc = list_f32(b, "Unc_Flux_Band", 0);
        assert_eq!(unc.len(), 10);
        assert_eq!(
            (unc[0], unc[6], unc[9]),
            (Some(-6.076_397_6e-12), None, Some(6.529_277e-12))
        );
        assert_eq!(col(b, "CLASS").as_string::<i32>().value(0), "bll");
        assert_eq!(
            col(b, "ASSOC_GAM").as_string::<i32>().value(0),
            "3FGL J0001.2-0748"
        );

        // The first BINTABLE is HDU 1; HDU 4 is the energy bands.
        let (first, _) = read_bintable(&bytes, None).unwrap();
        assert_eq!(first.fields().len(), 44);
        let (schema, batches) = read_bintable(&bytes, Some(4)).unwrap();
        assert_eq!(
            schema.field(0).metadata().get("unit").map(String::as_str),
            Some("GeV")
        );
        let low = batches[0].column(0).as_primitive::<Float32Type>();
        assert_eq!(low.values(), &[10.0, 20.0, 50.0, 150.0, 500.0]);
    }

    #[test]
    fn truncated_catalogue_names_what_is_missing() {
        let bytes = gunzip(&FGL3());
        let (header, data_start) = find_table(&bytes, None).unwrap();
        let table_end = data_start + 1082 * 3034;
        assert_eq!(header.index, 1);
        let e = read_bintable(&bytes[..BLOCK], None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no BINTABLE extension: it ends after 1 HDU(s), at byte 2880"),
            "{e}"
        );
        for len in [
            100,
            2880 + 1000,
            data_start,
            data_start + 5000,
            table_end - 1,
        ] {
            let e = read_bintable(&bytes[..len], None).unwrap_err().to_string();
            assert!(e.contains("truncated"), "at {len}: {e}");
            if len >= data_start {
                assert!(
                    e.contains("table data") && e.contains("3034 rows of 1082 bytes"),
                    "{e}"
                );
            } else {
                assert!(e.contains("no END card"), "{e}");
            }
        }
        assert!(read_bintable(&bytes[..table_end], None).is_ok());
        // Asking for a later HDU through a cut file fails on the HDU that is cut.
        let e = read_bintable(&bytes[..table_end], Some(3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
