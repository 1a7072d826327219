//! XML escaping: into a byte buffer without per-call allocation (the result writers), and
//! [`escape`] for whole documents.
//!
//! quick-xml's `escape` helpers return a `Cow<str>` and leave characters that XML 1.0 cannot
//! carry at all (C0 controls, U+FFFE, U+FFFF) untouched; result cells may contain anything, so
//! this module escapes and sanitizes in one pass straight into the output buffer.

/// What to escape.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Attribute value: also `"`, tab, newline.
    Attr,
    /// Element text, any Unicode character kept.
    Text,
    /// Element text of a VOTable `char` value: non-ASCII characters become `?`.
    Ascii,
}

const fn table(mode: Mode) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = !(matches!(mode, Mode::Text | Mode::Ascii)
            && (b == b'\t' as usize || b == b'\n' as usize));
        b += 1;
    }
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    if matches!(mode, Mode::Attr) {
        t[b'"' as usize] = true;
    }
    if matches!(mode, Mode::Ascii) {
        let mut b = 0x80;
        while b < 0x100 {
            t[b] = true;
            b += 1;
        }
    } else {
        // Lead byte of U+FFFE / U+FFFF (EF BF BE / EF BF BF), which XML forbids.
        t[0xEF] = true;
    }
    t
}

static ATTR: [bool; 256] = table(Mode::Attr);
static TEXT: [bool; 256] = table(Mode::Text);
static ASCII: [bool; 256] = table(Mode::Ascii);

#[inline]
fn escape_into(out: &mut Vec<u8>, s: &str, mode: Mode) {
    let bytes = s.as_bytes();
    let table = match mode {
        Mode::Attr => &ATTR,
        Mode::Text => &TEXT,
        Mode::Ascii => &ASCII,
    };
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !table[b as usize] {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        let mut step = 1;
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\t' => out.extend_from_slice(b"&#9;"),
            b'\n' => out.extend_from_slice(b"&#10;"),
            b'\r' => out.extend_from_slice(b"&#13;"),
            // What XML 1.0 cannot carry: U+FFFD, or `?` where the output must be ASCII.
            0..=0x1F if mode == Mode::Ascii => out.push(b'?'),
            0..=0x1F => out.extend_from_slice("\u{FFFD}".as_bytes()),
            0xEF if mode != Mode::Ascii => {
                if bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
                {
                    out.extend_from_slice("\u{FFFD}".as_bytes());
                    step = 3;
                } else {
                    // An ordinary character starting with EF: copy it with the next run.
                    start = i;
                    i += 1;
                    continue;
                }
            }
            _ => {
                // Mode::Ascii, at the lead byte of a multi-byte character (input is UTF-8).
                out.push(b'?');
                step = utf8_len(b);
            }
        }
        i += step;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// `s` escaped for XML element text or a double-quoted attribute value: `&`, `<`, `>` and `"`
/// as entities, tab, newline and carriage return as character references, and the characters
/// XML 1.0 cannot carry at all (the other C0 controls, U+FFFE, U+FFFF) as U+FFFD. The one
/// escaper behind every XML document vostok writes; result cells follow the same policy
/// (with `?` instead of U+FFFD in ASCII-only `char` cells).
pub fn escape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 8);
    escape_attr(&mut out, s);
    // Escaping copies whole characters and writes ASCII or U+FFFD: the result is UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Length of the UTF-8 sequence that starts with lead byte `b`.
#[inline]
pub(crate) fn utf8_len(b: u8) -> usize {
    if b >= 0xF0 {
        4
    } else if b >= 0xE0 {
        3
    } else if b >= 0xC0 {
        2
    } else {
        1
    }
}

/// Escapes an attribute value (to be written between double quotes).
pub(crate) fn escape_attr(out: &mut Vec<u8>, s: &str) {
    escape_into(out, s, Mode::Attr);
}

/// Escapes element text, keeping every Unicode character XML allows.
pub(crate) fn escape_text(out: &mut Vec<u8>, s: &str) {
    escape_into(out, s, Mode::Text);
}

/// Escapes element text for a VOTable `char` value: non-ASCII characters become `?`.
pub(crate) fn escape_ascii_text(out: &mut Vec<u8>, s: &str) {
    escape_into(out, s, Mode::Ascii);
}

/// The longest prefix of `s` with at most `n` characters.
pub(crate) fn truncate_chars(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    match s.char_indices().nth(n) {
        Some((pos, _)) => &s[..pos],
        None => s,
    }
}

/// Writes ` name="value"` with the value escaped.
pub(crate) fn attr(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    escape_attr(out, value);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: fn(&mut Vec<u8>, &str), s: &str) -> String {
        let mut out = Vec::new();
        f(&mut out, s);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn text_escaping() {
        assert_eq!(
            run(escape_text, "a<b & c>d \"q\" 'a'"),
            "a&lt;b &amp; c&gt;d \"q\" 'a'"
        );
        assert_eq!(
            run(escape_text, "tab\tnl\ncr\r\u{1}x"),
            "tab\tnl\ncr&#13;\u{FFFD}x"
        );
        assert_eq!(run(escape_text, "Ångström → ok"), "Ångström → ok");
        assert_eq!(
            run(escape_text, "bad\u{FFFE}\u{FFFF}\u{FFFD}\u{E000}"),
            "bad\u{FFFD}\u{FFFD}\u{FFFD}\u{E000}"
        );
    }

    #[test]
    fn ascii_escaping() {
        assert_eq!(
            run(escape_ascii_text, "Ångström <x> 😀!"),
            "?ngstr?m &lt;x&gt; ?!"
        );
        assert_eq!(run(escape_ascii_text, "plain"), "plain");
    }

    #[test]
    fn attr_escaping() {
        assert_eq!(
            run(escape_attr, "a\"b<c>&\td\ne\u{0}"),
            "a&quot;b&lt;c&gt;&amp;&#9;d&#10;e\u{FFFD}"
        );
        assert_eq!(run(escape_attr, "é"), "é");
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate_chars("abcdef", 3), "abc");
        assert_eq!(truncate_chars("ééé", 2), "éé");
        assert_eq!(truncate_chars("ab", 5), "ab");
    }
}
