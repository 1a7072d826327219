//! HTTP range requests (RFC 9110 §14): what a `Range` header asks of a representation, so that
//! large downloads resume (stored products, VOSpace files).

use std::ops::Range;

/// What a `Range` header asks for, given the size.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// No (usable) range: send everything.
    Whole,
    /// One satisfiable range (end exclusive).
    Part(Range<u64>),
    /// A syntactically valid range that lies past the end.
    Unsatisfiable,
}

/// Parses a `Range` header value against a representation of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> Ranged {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole; // several ranges: allowed to answer with the whole file
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ranged::Whole,
        (true, false) => match num(b) {
            // Suffix: the last n bytes.
            Some(0) => Ranged::Unsatisfiable,
            Some(n) if size == 0 => {
                let _ = n;
                Ranged::Unsatisfiable
            }
            Some(n) => Ranged::Part(size.saturating_sub(n)..size),
            None => Ranged::Whole,
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return Ranged::Whole;
            };
            let end = if b.is_empty() {
                None
            } else {
                match num(b) {
                    Some(e) if e >= start => Some(e),
                    _ => return Ranged::Whole, // invalid: ignored
                }
            };
            if start >= size {
                return Ranged::Unsatisfiable;
            }
            let end = end.map(|e| e.min(size - 1)).unwrap_or(size - 1);
            Ranged::Part(start..end + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ranged::Part(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Ranged::Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Ranged::Part(90..100));
        assert_eq!(parse_range("bytes=-1000", 100), Ranged::Part(0..100));
        assert_eq!(parse_range("bytes=50-5000", 100), Ranged::Part(50..100));
        assert_eq!(parse_range("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ranged::Whole);
        assert_eq!(parse_range("bytes=9-2", 100), Ranged::Whole);
        assert_eq!(parse_range("items=0-1", 100), Ranged::Whole);
        assert_eq!(parse_range("bytes=x-1", 100), Ranged::Whole);
        assert_eq!(parse_range("bytes=0-0", 0), Ranged::Unsatisfiable);
    }
}
