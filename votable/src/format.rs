//! Number and date formatting into byte buffers, without allocation.

use datafusion::arrow::datatypes::TimeUnit;

/// Writes a double as VOTable text: the shortest representation that round-trips,
/// `NaN`, `+Inf` or `-Inf`.
#[inline]
pub(crate) fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        write_non_finite(out, v.is_nan(), v > 0.0);
    }
}

/// Writes a float as VOTable text (shortest single-precision representation).
#[inline]
pub(crate) fn write_f32(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        write_non_finite(out, v.is_nan(), v > 0.0);
    }
}

fn write_non_finite(out: &mut Vec<u8>, nan: bool, positive: bool) {
    out.extend_from_slice(if nan {
        b"NaN"
    } else if positive {
        b"+Inf"
    } else {
        b"-Inf"
    });
}

/// Writes an integer in decimal.
#[inline]
pub(crate) fn write_int<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Writes an Arrow decimal (`v` × 10^-`scale`) exactly, e.g. `-0.005`.
pub(crate) fn write_decimal(out: &mut Vec<u8>, v: i128, scale: i8) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(v.unsigned_abs()).as_bytes();
    if v < 0 {
        out.push(b'-');
    }
    if scale <= 0 {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', scale.unsigned_abs() as usize));
        return;
    }
    let scale = scale as usize;
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    } else {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits);
    }
}

/// A decimal as the nearest double.
pub(crate) fn decimal_to_f64(v: i128, scale: i8) -> f64 {
    const EXACT: i128 = 1 << 53;
    if (-EXACT..=EXACT).contains(&v) && (0..=22).contains(&scale) {
        // Both operands are exact doubles, and IEEE division rounds correctly.
        return v as f64 / 10f64.powi(i32::from(scale));
    }
    let mut buf = Vec::with_capacity(48);
    write_decimal(&mut buf, v, scale);
    // The text is a well-formed decimal literal, which f64 parsing always accepts.
    std::str::from_utf8(&buf)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Room for the longest date or timestamp text we produce.
pub(crate) const DATE_BUF: usize = 48;

/// A small stack cursor.
struct Cursor<'a> {
    buf: &'a mut [u8; DATE_BUF],
    len: usize,
}

impl Cursor<'_> {
    fn push(&mut self, b: u8) {
        if self.len < DATE_BUF {
            self.buf[self.len] = b;
            self.len += 1;
        }
    }
    fn digits(&mut self, v: u64, width: usize) {
        let mut tmp = [b'0'; 20];
        let mut n = v;
        let mut i = tmp.len();
        while n > 0 {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let start = i.min(tmp.len().saturating_sub(width));
        for &b in &tmp[start..] {
            self.push(b);
        }
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// algorithm). Not chrono's calendar: an Arrow Date32 spans ±5.8 million years, chrono ±262,000,
/// and a value must never be written as another.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn write_date(c: &mut Cursor<'_>, days: i64) {
    let (y, m, d) = civil_from_days(days);
    if y < 0 {
        c.push(b'-');
    }
    c.digits(y.unsigned_abs(), 4);
    c.push(b'-');
    c.digits(u64::from(m), 2);
    c.push(b'-');
    c.digits(u64::from(d), 2);
}

/// ISO-8601 date `YYYY-MM-DD` of days since the epoch; returns the length written.
pub(crate) fn format_date(buf: &mut [u8; DATE_BUF], days: i64) -> usize {
    let mut c = Cursor { buf, len: 0 };
    write_date(&mut c, days);
    c.len
}

/// ISO-8601 timestamp `YYYY-MM-DDThh:mm:ss[.f…]` (UTC, no zone designator: Arrow stores
/// zoned timestamps as UTC instants) with the fraction the unit allows, trailing zeros dropped.
pub(crate) fn format_timestamp(buf: &mut [u8; DATE_BUF], value: i64, unit: TimeUnit) -> usize {
    let per_sec: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let secs = value.div_euclid(per_sec);
    let frac = value.rem_euclid(per_sec);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let mut c = Cursor { buf, len: 0 };
    write_date(&mut c, days);
    c.push(b'T');
    c.digits((sod / 3600) as u64, 2);
    c.push(b':');
    c.digits((sod / 60 % 60) as u64, 2);
    c.push(b':');
    c.digits((sod % 60) as u64, 2);
    if frac != 0 {
        let mut width = per_sec.ilog10() as usize;
        let mut f = frac;
        while f % 10 == 0 {
            f /= 10;
            width -= 1;
        }
        c.push(b'.');
        c.digits(f as u64, width);
    }
    c.len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).expect("utf8")
    }

    #[test]
    fn floats() {
        assert_eq!(s(|o| write_f64(o, 0.1)), "0.1");
        assert_eq!(s(|o| write_f64(o, 315.101337919417)), "315.101337919417");
        assert_eq!(s(|o| write_f64(o, f64::NAN)), "NaN");
        assert_eq!(s(|o| write_f64(o, f64::INFINITY)), "+Inf");
        assert_eq!(s(|o| write_f64(o, f64::NEG_INFINITY)), "-Inf");
        assert_eq!(s(|o| write_f32(o, 0.1f32)), "0.1");
        assert_eq!(s(|o| write_f32(o, f32::NAN)), "NaN");
        let x = 1.0f64 / 3.0;
        assert_eq!(s(|o| write_f64(o, x)).parse::<f64>().ok(), Some(x));
    }

    #[test]
    fn decimals() {
        assert_eq!(s(|o| write_decimal(o, 12345, 2)), "123.45");
        assert_eq!(s(|o| write_decimal(o, -5, 3)), "-0.005");
        assert_eq!(s(|o| write_decimal(o, 7, 0)), "7");
        assert_eq!(s(|o| write_decimal(o, 7, -2)), "700");
        assert_eq!(decimal_to_f64(-12345, 2), -123.45);
    }

    #[test]
    fn dates() {
        let mut b = [0u8; DATE_BUF];
        let n = format_date(&mut b, 0);
        assert_eq!(&b[..n], b"1970-01-01");
        let n = format_date(&mut b, 19_782);
        assert_eq!(&b[..n], b"2024-02-29");
        let n = format_date(&mut b, -1);
        assert_eq!(&b[..n], b"1969-12-31");
        let n = format_timestamp(&mut b, 1_700_000_000_123, TimeUnit::Millisecond);
        assert_eq!(&b[..n], b"2023-11-14T22:13:20.123");
        let n = format_timestamp(&mut b, 1_700_000_000_100_000, TimeUnit::Microsecond);
        assert_eq!(&b[..n], b"2023-11-14T22:13:20.1");
        let n = format_timestamp(&mut b, -1, TimeUnit::Nanosecond);
        assert_eq!(&b[..n], b"1969-12-31T23:59:59.999999999");
        let n = format_timestamp(&mut b, 951_782_400, TimeUnit::Second);
        assert_eq!(&b[..n], b"2000-02-29T00:00:00");
    }
}
