//! VOTable primitive datatypes, array sizes, and XML ID helpers shared by writer and reader.

use std::collections::HashSet;

/// A VOTable primitive `datatype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prim {
    Boolean,
    Bit,
    UnsignedByte,
    Short,
    Int,
    Long,
    Char,
    UnicodeChar,
    Float,
    Double,
    FloatComplex,
    DoubleComplex,
}

impl Prim {
    /// The `datatype` attribute value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Prim::Boolean => "boolean",
            Prim::Bit => "bit",
            Prim::UnsignedByte => "unsignedByte",
            Prim::Short => "short",
            Prim::Int => "int",
            Prim::Long => "long",
            Prim::Char => "char",
            Prim::UnicodeChar => "unicodeChar",
            Prim::Float => "float",
            Prim::Double => "double",
            Prim::FloatComplex => "floatComplex",
            Prim::DoubleComplex => "doubleComplex",
        }
    }

    /// Parses a `datatype` attribute value (exact spelling, surrounding blanks ignored).
    pub(crate) fn parse(s: &str) -> Option<Prim> {
        Some(match s.trim() {
            "boolean" => Prim::Boolean,
            "bit" => Prim::Bit,
            "unsignedByte" => Prim::UnsignedByte,
            "short" => Prim::Short,
            "int" => Prim::Int,
            "long" => Prim::Long,
            "char" => Prim::Char,
            "unicodeChar" => Prim::UnicodeChar,
            "float" => Prim::Float,
            "double" => Prim::Double,
            "floatComplex" => Prim::FloatComplex,
            "doubleComplex" => Prim::DoubleComplex,
            _ => return None,
        })
    }

    /// Bytes of one element in BINARY/BINARY2 (bits are handled separately).
    pub(crate) fn size(self) -> usize {
        match self {
            Prim::Boolean | Prim::Bit | Prim::UnsignedByte | Prim::Char => 1,
            Prim::Short | Prim::UnicodeChar => 2,
            Prim::Int | Prim::Float => 4,
            Prim::Long | Prim::Double | Prim::FloatComplex => 8,
            Prim::DoubleComplex => 16,
        }
    }

    pub(crate) fn is_integer(self) -> bool {
        matches!(
            self,
            Prim::UnsignedByte | Prim::Short | Prim::Int | Prim::Long
        )
    }

    pub(crate) fn is_float(self) -> bool {
        matches!(self, Prim::Float | Prim::Double)
    }

    pub(crate) fn is_text(self) -> bool {
        matches!(self, Prim::Char | Prim::UnicodeChar)
    }
}

/// The shape given by `arraysize`, counted in elements (characters for strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// No arraysize: one element.
    Scalar,
    /// A fixed number of elements (the product of all dimensions).
    Fixed(usize),
    /// A variable number of elements (BINARY count prefix = number of elements), with an
    /// optional maximum (`N*`, multiplied by any fixed leading dimensions).
    Variable { max: Option<usize> },
}

/// Parses an `arraysize` attribute: `N`, `N*`, `*`, `AxB`, `AxB*`, `Ax*` (blanks ignored).
pub(crate) fn parse_arraysize(s: &str) -> Option<Shape> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut unit: usize = 1;
    let dims: Vec<&str> = s.split('x').map(str::trim).collect();
    let (last, fixed) = dims.split_last()?;
    for d in fixed {
        unit = unit.checked_mul(d.parse::<usize>().ok()?)?;
    }
    if let Some(max) = last.strip_suffix('*') {
        let max = if max.is_empty() {
            None
        } else {
            Some(max.parse::<usize>().ok()?.checked_mul(unit)?)
        };
        Some(Shape::Variable { max })
    } else {
        Some(Shape::Fixed(last.parse::<usize>().ok()?.checked_mul(unit)?))
    }
}

/// True for characters allowed in our XML IDs (an ASCII subset of NCName).
fn id_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (!first && (c.is_ascii_digit() || c == '-' || c == '.'))
}

/// True when `s` can be used verbatim as an XML ID.
pub(crate) fn is_valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if id_char(c, true) => chars.all(|c| id_char(c, false)),
        _ => false,
    }
}

/// Derives an XML-ID-safe identifier from a column name.
pub(crate) fn sanitize_id(name: &str) -> String {
    let mut id = String::with_capacity(name.len() + 1);
    for c in name.chars() {
        id.push(if id_char(c, false) { c } else { '_' });
    }
    match id.chars().next() {
        Some(c) if id_char(c, true) => id,
        _ => format!("_{id}"),
    }
}

/// Hands out unique XML IDs.
#[derive(Default)]
pub(crate) struct IdAllocator {
    used: HashSet<String>,
}

impl IdAllocator {
    /// `preferred` if it is a valid, unused ID; otherwise an ID derived from `name`, made unique
    /// with a `_2`, `_3`, … suffix.
    pub(crate) fn allocate(&mut self, preferred: Option<&str>, name: &str) -> String {
        if let Some(p) = preferred {
            if is_valid_id(p) && !self.used.contains(p) {
                self.used.insert(p.to_owned());
                return p.to_owned();
            }
        }
        let base = sanitize_id(name);
        let mut candidate = base.clone();
        let mut n = 2u64;
        while self.used.contains(&candidate) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        self.used.insert(candidate.clone());
        candidate
    }
}

/// True when `s` (trimmed) matches the VOTable `ucdType` pattern `[A-Za-z0-9_.:;\-]*`.
pub(crate) fn is_valid_ucd(s: &str) -> bool {
    s.trim()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b';' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arraysize_forms() {
        assert_eq!(parse_arraysize("*"), Some(Shape::Variable { max: None }));
        assert_eq!(parse_arraysize("12"), Some(Shape::Fixed(12)));
        assert_eq!(
            parse_arraysize("8*"),
            Some(Shape::Variable { max: Some(8) })
        );
        assert_eq!(parse_arraysize("2x3"), Some(Shape::Fixed(6)));
        assert_eq!(parse_arraysize("2x*"), Some(Shape::Variable { max: None }));
        assert_eq!(parse_arraysize(""), None);
        assert_eq!(parse_arraysize("x"), None);
        assert_eq!(parse_arraysize("abc"), None);
    }

    #[test]
    fn ids_are_valid_and_unique() {
        let mut ids = IdAllocator::default();
        assert_eq!(ids.allocate(None, "ra"), "ra");
        assert_eq!(ids.allocate(None, "ra"), "ra_2");
        assert_eq!(ids.allocate(None, "ra"), "ra_3");
        assert_eq!(ids.allocate(None, "ra_2"), "ra_2_2");
        assert_eq!(ids.allocate(None, "1st col"), "_1st_col");
        assert_eq!(ids.allocate(None, "count(*)"), "count___");
        assert_eq!(ids.allocate(None, ""), "_");
        assert_eq!(ids.allocate(Some("myid"), "x"), "myid");
        assert_eq!(ids.allocate(Some("myid"), "x"), "x");
        assert_eq!(ids.allocate(Some("bad id"), "y"), "y");
        assert!(is_valid_id("a.b-c_d1"));
        assert!(!is_valid_id("1a"));
    }

    #[test]
    fn ucd_pattern() {
        assert!(is_valid_ucd("pos.eq.ra;meta.main"));
        assert!(is_valid_ucd(" POS_EQ_RA_MAIN "));
        assert!(!is_valid_ucd("pos eq"));
        assert!(!is_valid_ucd("phot/mag"));
    }
}
