//! Text on previews: the 8×8 bitmap glyphs of the `font8x8` crate (public-domain IBM PC
//! style glyphs for ASCII, Latin-1 and Greek), compiled into the binary: no font file is
//! looked up at run time, and every machine draws the same pixels.

use font8x8::{UnicodeFonts, BASIC_FONTS, GREEK_FONTS, LATIN_FONTS};

/// Side of a glyph cell, in pixels (at scale 1).
pub const CELL: i64 = 8;

fn glyph(c: char) -> [u8; 8] {
    BASIC_FONTS
        .get(c)
        .or_else(|| LATIN_FONTS.get(c))
        .or_else(|| GREEK_FONTS.get(c))
        .or_else(|| BASIC_FONTS.get('?'))
        .unwrap_or([0; 8])
}

/// Width of `text` in pixels at `scale`.
pub fn width(text: &str, scale: i64) -> i64 {
    text.chars().count() as i64 * CELL * scale
}

/// `text` cut to at most `max_width` pixels at `scale` (an ellipsis `..` marks the cut).
pub fn fit(text: &str, max_width: i64, scale: i64) -> String {
    let max_chars = (max_width / (CELL * scale)).max(0) as usize;
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let keep = max_chars.saturating_sub(2);
    let mut out: String = text.chars().take(keep).collect();
    if max_chars >= 2 {
        out.push_str("..");
    }
    out
}

/// Draws `text` with its top-left corner at (`x`, `y`), calling `set` for every pixel of a
/// glyph; `up`: the text runs upwards from (`x`, `y`), its bottom-left corner (a vertical
/// axis title).
pub fn draw(set: &mut impl FnMut(i64, i64), x: i64, y: i64, text: &str, scale: i64, up: bool) {
    for (k, c) in text.chars().enumerate() {
        let g = glyph(c);
        let origin = k as i64 * CELL * scale;
        for (gy, row) in g.iter().enumerate() {
            for gx in 0..8i64 {
                if row & (1 << gx) == 0 {
                    continue;
                }
                for sy in 0..scale {
                    for sx in 0..scale {
                        let (u, v) = (origin + gx * scale + sx, gy as i64 * scale + sy);
                        if up {
                            set(x + v, y - u);
                        } else {
                            set(x + u, y + v);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glyphs_are_drawn_and_fitted() {
        let mut n = 0;
        super::draw(&mut |_, _| n += 1, 0, 0, "1", 1, false);
        assert!(n > 5);
        let mut m = 0;
        super::draw(&mut |_, _| m += 1, 0, 0, "1", 2, true);
        assert_eq!(m, 4 * n);
        assert_eq!(super::fit("Wavelength", 48, 1), "Wave..");
        assert_eq!(super::fit("Flux", 48, 1), "Flux");
        assert_eq!(super::width("Å", 1), 8);
    }
}
