//! PNG quick-looks of FITS images and spectra (what a DataLink `#preview` link serves).
//!
//! [`preview_png`] takes a stored file (gzip allowed), picks what to draw and returns PNG bytes:
//!
//! * **Images** (an HDU with NAXIS1, NAXIS2 > 1): the pixel values (any BITPIX, BSCALE/BZERO
//!   applied, BLANK and NaN as no-data) are area-averaged into at most `max_side` pixels on the
//!   longer side (aspect ratio kept, never enlarged). Cubes are collapsed: each output pixel is
//!   the mean over the third axis of every finite value (a "moment 0" map, which shows the
//!   source whatever channel the emission is in); for axes 4 and up only the first index is
//!   used. The stretch is robust: the 0.5 and 99.5 percentiles of the averaged values set black
//!   and white, and an asinh curve is chosen so that the median lands at 25 % grey (linear when
//!   the median is already brighter than that), the "auto-stretch" of astronomical viewers.
//!   The output is 8-bit grey + alpha; no-data pixels are transparent. FITS row 1 is the bottom
//!   of the picture, as DS9 and Aladin show it. An image with a celestial WCS (any the ObsCore
//!   mapping reads: TAN/SIN/…, SIP, DSS plate solutions, galactic axes) gets a scale bar
//!   (bottom left, a round angle) and north/east arrows (top right) from the WCS at its
//!   centre, in yellow outlined in black (the PNG is then RGBA); not on previews under
//!   96 pixels or fields wider than 60°.
//! * **Spectra** (a 1-D image, or a binary table with a flux column): a line plot of flux
//!   against the spectral coordinate on a white RGB canvas `max_side` (at most 1200) wide and
//!   half as high, with an axes box, tick marks at round values, tick labels and axis titles
//!   with units (CTYPE1/CUNIT1 and BUNIT, or the columns' names and TUNITn), drawn with the
//!   bitmap font of [`text`]. The spectral
//!   coordinate comes from the 1-D WCS (linear, log10-lambda per `DC-FLAG`/`CRVAL1`, or
//!   `-LOG`) or from the table's wavelength/frequency/velocity column; every table row with
//!   array columns is one curve. The flux range is the 0.5–99.5 percentile range plus a margin,
//!   so a single spike does not flatten the plot; values beyond it are drawn at the edge.
//!   A 2-D image of at most 16 long rows (DESI `B_FLUX`, 2751 × 5) is a stack of spectra, one
//!   curve per row, its wavelengths from the matching `B_WAVELENGTH` HDU.
//!
//! Without an HDU number the choice is: the first image that is not extremely elongated, else
//! the first spectrum (1-D wavelength arrays such as `B_WAVELENGTH` are skipped), else
//! anything drawable.
//!
//! Everything read from the file is checked: malformed, truncated or empty input is an
//! [`Error::Source`], never a panic.

pub mod text;

use std::borrow::Cow;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};

use crate::source::maybe_gunzip;
use crate::Error;
use votable::fits::{self, Hdu};

/// Most rows of a 2-D image drawn as a stack of spectra rather than as a picture.
const STACK_ROWS: usize = 16;
/// Smallest `max_side` accepted.
pub const MIN_SIDE: u32 = 16;
/// `max_side` is clamped to this (bounds the memory a request can ask for).
pub const MAX_SIDE: u32 = 4096;
/// Widest spectrum plot, whatever `max_side` is.
const PLOT_MAX_WIDTH: u32 = 1200;
/// Most pixel values read from a cube: beyond this, planes are skipped evenly.
const CUBE_BUDGET: usize = 1 << 24;
/// Grey level (0..1) the median of an image is stretched to.
const MEDIAN_GREY: f64 = 0.25;
/// Largest asinh softening (for images whose median sits at the black point).
const MAX_SOFTENING: f64 = 1000.0;
/// Lower percentile: black (images) or the bottom of the flux range (spectra).
const LOW_PCT: f64 = 0.005;
/// Upper percentile: white (images) or the top of the flux range (spectra).
const HIGH_PCT: f64 = 0.995;

/// Renders a PNG quick-look of HDU `hdu` of a FITS file (or of the first HDU worth drawing).
///
/// `bytes` is the stored file, gzipped or not (decompressed to at most `max_bytes`). With `hdu` = `None` the first HDU holding an
/// image with NAXIS1, NAXIS2 > 1 is drawn; failing that, the first spectrum (a 1-D image, or
/// a binary table with a flux column). `max_side` bounds the longer side of the PNG; it must
/// be at least [`MIN_SIDE`] and is clamped to [`MAX_SIDE`].
pub fn preview_png(
    bytes: &[u8],
    hdu: Option<usize>,
    max_side: u32,
    max_bytes: u64,
) -> Result<Vec<u8>, Error> {
    if max_side < MIN_SIDE {
        return Err(fail(format!(
            "max_side = {max_side} is too small (at least {MIN_SIDE})"
        )));
    }
    let max_side = max_side.min(MAX_SIDE);
    let file: Cow<[u8]> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Cow::Owned(maybe_gunzip(bytes.to_vec(), max_bytes)?)
    } else {
        Cow::Borrowed(bytes)
    };
    let hdus = fits::hdus(&file)?;
    let (h, what) = match hdu {
        Some(i) => {
            let h = hdus.get(i).ok_or_else(|| {
                fail(format!(
                    "HDU {i} does not exist: the file has {} HDU{}",
                    hdus.len(),
                    if hdus.len() == 1 { "" } else { "s" }
                ))
            })?;
            let what = classify(h)
                .ok_or_else(|| fail(format!("HDU {i} has no image or spectrum to preview")))?;
            (h, what)
        }
        None => hdus
            .iter()
            .filter_map(|h| classify(h).map(|w| (rank(h, w), h, w)))
            .min_by_key(|(r, h, _)| (*r, h.index))
            .map(|(_, h, w)| (h, w))
            .ok_or_else(|| fail("the file has no image or spectrum to preview"))?,
    };
    match what {
        What::Image => image_png(&file, h, max_side),
        What::Spectrum1d => {
            let curve = spectrum_1d(&file, h)?;
            plot_png(&[curve], &Labels::of_image(h), h.index, max_side)
        }
        What::Stack => {
            let curves = stack_curves(&file, &hdus, h)?;
            plot_png(&curves, &Labels::of_image(h), h.index, max_side)
        }
        What::Table => {
            let (curves, labels) = table_curves(&file, h)?;
            plot_png(&curves, &labels, h.index, max_side)
        }
    }
}

/// A preview error.
fn fail(msg: impl std::fmt::Display) -> Error {
    Error::Source(format!("preview: {msg}"))
}

/// Preference when no HDU is asked for, lowest first: images (not extremely elongated), then
/// spectra (not wavelength arrays), then anything else drawable.
fn rank(h: &Hdu, what: What) -> u8 {
    let axes = h.axes();
    match what {
        What::Image if axes[0] < 32 * axes[1] && axes[1] < 32 * axes[0] => 0,
        What::Spectrum1d | What::Stack | What::Table if !is_axis_array(h) => 1,
        _ => 2,
    }
}

/// What an HDU can be drawn as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    /// An image (or cube) with NAXIS1, NAXIS2 > 1.
    Image,
    /// A 1-D image (every axis after the first of length 1).
    Spectrum1d,
    /// A 2-D image of a few long rows (at most [`STACK_ROWS`], each 32 times longer than the
    /// number of rows): one spectrum per row, as DESI and other multi-object files store them.
    /// Drawn as a picture it would be a line of a few pixels.
    Stack,
    /// A binary table with a flux column.
    Table,
}

fn classify(h: &Hdu) -> Option<What> {
    match h.kind() {
        "PRIMARY" | "IMAGE" => {
            Sample::of(h).ok()?;
            let axes = h.axes();
            let (&n1, rest) = axes.split_first()?;
            if axes.contains(&0) || n1 < 2 {
                None
            } else if rest.first().is_some_and(|&n2| n2 > 1) {
                let n2 = rest[0];
                let flat = rest[1..].iter().all(|&n| n == 1);
                if flat && n2 <= STACK_ROWS && n1 >= 32 * n2 {
                    Some(What::Stack)
                } else {
                    Some(What::Image)
                }
            } else if rest.iter().all(|&n| n == 1) {
                Some(What::Spectrum1d)
            } else {
                None
            }
        }
        "BINTABLE" => {
            let n = h.i64("TFIELDS").unwrap_or(0).clamp(0, 999);
            let names: Vec<String> = (1..=n)
                .map(|i| h.str(&format!("TTYPE{i}")).unwrap_or("").to_string())
                .collect();
            (h.i64("NAXIS2").unwrap_or(0) > 0 && Columns::pick(&names).is_some())
                .then_some(What::Table)
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Pixel values

/// How the data unit's values are stored and scaled.
#[derive(Debug, Clone, Copy)]
struct Sample {
    bitpix: i64,
    /// Bytes per value.
    size: usize,
    /// BLANK (integer BITPIX only), compared with the stored value.
    blank: Option<i64>,
    scale: f64,
    zero: f64,
}

impl Sample {
    fn of(h: &Hdu) -> Result<Self, Error> {
        let bitpix = h.i64("BITPIX").unwrap_or(0);
        let size = match bitpix {
            8 => 1,
            16 => 2,
            32 | -32 => 4,
            64 | -64 => 8,
            other => {
                return Err(fail(format!(
                    "HDU {}: BITPIX = {other} is not valid",
                    h.index
                )))
            }
        };
        let scale = h.f64("BSCALE").filter(|s| s.is_finite()).unwrap_or(1.0);
        let zero = h.f64("BZERO").filter(|z| z.is_finite()).unwrap_or(0.0);
        Ok(Sample {
            bitpix,
            size,
            blank: if bitpix > 0 { h.i64("BLANK") } else { None },
            scale,
            zero,
        })
    }

    /// Decodes `out.len()` values from `bytes` (exactly `out.len() * size` bytes); no-data
    /// becomes NaN.
    fn decode(&self, bytes: &[u8], out: &mut [f64]) {
        let (s, z, blank) = (self.scale, self.zero, self.blank);
        let int = |raw: i64| {
            if Some(raw) == blank {
                f64::NAN
            } else {
                z + s * raw as f64
            }
        };
        match self.bitpix {
            8 => {
                for (o, b) in out.iter_mut().zip(bytes) {
                    *o = int(i64::from(*b));
                }
            }
            16 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = int(i64::from(i16::from_be_bytes([c[0], c[1]])));
                }
            }
            32 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = int(i64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]])));
                }
            }
            64 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    *o = int(i64::from_be_bytes(a));
                }
            }
            -32 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = z + s * f64::from(f32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                }
            }
            _ => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    *o = z + s * f64::from_be_bytes(a);
                }
            }
        }
    }
}

/// `a * b * c`, or an error naming the HDU.
fn product(h: &Hdu, factors: &[usize]) -> Result<usize, Error> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| fail(format!("HDU {}: the data size overflows", h.index)))
}

// ---------------------------------------------------------------------------------------------
// Images

/// Output size: the image size, shrunk so the longer side is at most `max_side`.
fn out_size(n1: usize, n2: usize, max_side: u32) -> (usize, usize) {
    let longest = n1.max(n2);
    let max = max_side as usize;
    if longest <= max {
        return (n1, n2);
    }
    let f = max as f64 / longest as f64;
    let side = |n: usize| ((n as f64 * f).round() as usize).clamp(1, max);
    (side(n1), side(n2))
}

fn image_png(file: &[u8], h: &Hdu, max_side: u32) -> Result<Vec<u8>, Error> {
    let axes = h.axes();
    let (n1, n2) = (axes[0], axes[1]);
    let n3 = axes.get(2).copied().unwrap_or(1);
    let sample = Sample::of(h)?;
    let plane_px = product(h, &[n1, n2])?;
    let row_bytes = product(h, &[n1, sample.size])?;
    let plane_bytes = product(h, &[plane_px, sample.size])?;
    let data = h.data(file);
    let needed = product(h, &[plane_bytes, n3])?;
    if data.len() < needed {
        return Err(fail(format!(
            "HDU {}: truncated: the image needs {needed} data bytes, the file has {}",
            h.index,
            data.len()
        )));
    }
    // Cubes: every plane, unless that is too much work; then evenly spaced planes.
    let step = (plane_px.saturating_mul(n3) / CUBE_BUDGET + 1).min(n3.max(1));

    let (ow, oh) = out_size(n1, n2, max_side);
    let xmap: Vec<usize> = (0..n1)
        .map(|x| ((x as u128 * ow as u128) / n1 as u128) as usize)
        .collect();
    let mut sum = vec![0f64; ow * oh];
    let mut count = vec![0u64; ow * oh];
    let mut row = vec![0f64; n1];
    for k in (0..n3).step_by(step) {
        let plane = &data[k * plane_bytes..(k + 1) * plane_bytes];
        for (y, raw) in plane.chunks_exact(row_bytes).enumerate() {
            sample.decode(raw, &mut row);
            let by = ((y as u128 * oh as u128) / n2 as u128) as usize;
            // FITS row 1 at the bottom.
            let base = (oh - 1 - by) * ow;
            let (sum_row, count_row) = (&mut sum[base..base + ow], &mut count[base..base + ow]);
            for (&v, &bx) in row.iter().zip(&xmap) {
                if v.is_finite() {
                    sum_row[bx] += v;
                    count_row[bx] += 1;
                }
            }
        }
    }
    drop(row);
    let mean: Vec<f64> = sum
        .iter()
        .zip(&count)
        .map(|(&s, &c)| if c > 0 { s / c as f64 } else { f64::NAN })
        .collect();
    drop(sum);
    drop(count);
    let mut finite: Vec<f64> = mean.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return Err(fail(format!(
            "HDU {}: the image has no finite pixel values",
            h.index
        )));
    }
    let stretch = Stretch::new(&mut finite);
    drop(finite);
    let mut pixels = Vec::with_capacity(mean.len() * 2);
    for &v in &mean {
        if v.is_finite() {
            pixels.extend_from_slice(&[stretch.grey(v), 255]);
        } else {
            pixels.extend_from_slice(&[0, 0]);
        }
    }
    match Orientation::of(h, (n1, n2), (ow, oh)) {
        Some(o) => {
            let mut rgba: Vec<u8> = pixels
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0], p[1]])
                .collect();
            o.draw(&mut rgba, ow, oh);
            encode(&rgba, ow, oh, png::ColorType::Rgba)
        }
        None => encode(&pixels, ow, oh, png::ColorType::GrayscaleAlpha),
    }
}

/// Colour of the scale bar, the compass and their labels on an image (each outlined in
/// black, so that they show on white and on black).
const OVERLAY: [u8; 4] = [255, 214, 0, 255];
const OUTLINE: [u8; 4] = [0, 0, 0, 255];
/// Smallest preview (either side, pixels) that gets a scale bar and a compass.
const OVERLAY_MIN_SIDE: usize = 96;
/// Widest field (degrees) with a scale bar and compass: beyond it, a bar from the centre's
/// scale and arrows from the centre's orientation would mislead (all-sky maps).
const OVERLAY_MAX_FIELD: f64 = 60.0;

/// Where north and east point on a preview, and its scale, from the image's WCS at its
/// centre.
#[derive(Debug, Clone, Copy)]
struct Orientation {
    /// Unit vectors on the preview (x right, y down) towards north and towards east.
    north: (f64, f64),
    east: (f64, f64),
    /// Arcseconds per preview pixel.
    arcsec_per_px: f64,
}

impl Orientation {
    fn of(h: &Hdu, (n1, n2): (usize, usize), (ow, oh): (usize, usize)) -> Option<Self> {
        if ow < OVERLAY_MIN_SIDE || oh < OVERLAY_MIN_SIDE {
            return None;
        }
        let (fx, fy) = (n1 as f64 / ow as f64, n2 as f64 / oh as f64);
        let centre = ((n1 as f64 + 1.0) / 2.0, (n2 as f64 + 1.0) / 2.0);
        let j = crate::obscore::sky_jacobian(h, centre, fx.max(1.0))?;
        // Per preview pixel; the preview's y runs down where FITS y runs up.
        let (a, b, c, d) = (j[0][0] * fx, -j[0][1] * fy, j[1][0] * fx, -j[1][1] * fy);
        let det = a * d - b * c;
        if !(det.is_finite() && det != 0.0) {
            return None;
        }
        // Preview pixel directions of a step east (1, 0) and north (0, 1) on the sky.
        let unit = |(x, y): (f64, f64)| {
            let n = (x * x + y * y).sqrt();
            (n > 0.0 && n.is_finite()).then(|| (x / n, y / n))
        };
        let east = unit((d / det, -c / det))?;
        let north = unit((-b / det, a / det))?;
        let arcsec_per_px = det.abs().sqrt().to_degrees() * 3600.0;
        let field = arcsec_per_px * ow.max(oh) as f64 / 3600.0;
        (arcsec_per_px > 0.0 && field <= OVERLAY_MAX_FIELD).then_some(Orientation {
            north,
            east,
            arcsec_per_px,
        })
    }

    /// The scale bar (bottom left) and the N/E arrows (top right) onto RGBA `px`.
    fn draw(&self, px: &mut [u8], w: usize, h: usize) {
        let mut put = |x: i64, y: i64, c: [u8; 4]| {
            if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
                let i = (y as usize * w + x as usize) * 4;
                px[i..i + 4].copy_from_slice(&c);
            }
        };
        let side = w.min(h) as i64;
        let scale = if side >= 700 { 2 } else { 1 };
        let cell = text::CELL * scale;
        let thick = scale;
        // Every mark twice: a black outline one pixel around it, then the colour.
        let mut strokes: Vec<((i64, i64), (i64, i64))> = Vec::new();
        let mut labels: Vec<(i64, i64, String)> = Vec::new();

        // Scale bar: the longest round angle within a quarter of the width.
        let max_arcsec = self.arcsec_per_px * w as f64 / 4.0;
        let nice = [
            1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0,
            1800.0, 3600.0, 7200.0, 18000.0, 36000.0, 72000.0, 108000.0,
        ];
        if let Some(&arcsec) = nice.iter().rev().find(|&&a| a <= max_arcsec) {
            let len = (arcsec / self.arcsec_per_px).round() as i64;
            let label = if arcsec >= 3600.0 {
                format!("{}\u{b0}", arcsec / 3600.0)
            } else if arcsec >= 60.0 {
                format!("{}'", arcsec / 60.0)
            } else {
                format!("{arcsec}\"")
            };
            let (x0, y0) = (cell, h as i64 - 1 - cell);
            strokes.push(((x0, y0), (x0 + len, y0)));
            strokes.push(((x0, y0 - cell / 2), (x0, y0 + cell / 2)));
            strokes.push(((x0 + len, y0 - cell / 2), (x0 + len, y0 + cell / 2)));
            let lw = text::width(&label, scale);
            labels.push((x0 + (len - lw) / 2, y0 - cell / 2 - 3 - cell, label));
        }

        // Compass: arrows from a point near the top-right corner.
        let arm = (side as f64 * 0.12).max(3.0 * cell as f64);
        let margin = arm as i64 + cell * 2;
        let o = (w as i64 - margin, margin);
        for (dir, name) in [(self.north, "N"), (self.east, "E")] {
            let tip = (
                o.0 + (dir.0 * arm).round() as i64,
                o.1 + (dir.1 * arm).round() as i64,
            );
            strokes.push((o, tip));
            // The arrow head: two short strokes back from the tip, 30° either side.
            for turn in [150f64, -150f64] {
                let (s, c) = turn.to_radians().sin_cos();
                let back = (dir.0 * c - dir.1 * s, dir.0 * s + dir.1 * c);
                let head = arm * 0.25;
                strokes.push((
                    tip,
                    (
                        tip.0 + (back.0 * head).round() as i64,
                        tip.1 + (back.1 * head).round() as i64,
                    ),
                ));
            }
            let at = (
                o.0 + (dir.0 * (arm + cell as f64)).round() as i64 - cell / 2,
                o.1 + (dir.1 * (arm + cell as f64)).round() as i64 - cell / 2,
            );
            labels.push((at.0, at.1, name.to_string()));
        }

        for (colour, grow) in [(OUTLINE, thick), (OVERLAY, 0)] {
            for &(a, b) in &strokes {
                for dx in -grow..=grow + thick - 1 {
                    for dy in -grow..=grow + thick - 1 {
                        line_points((a.0 + dx, a.1 + dy), (b.0 + dx, b.1 + dy), &mut |x, y| {
                            put(x, y, colour)
                        });
                    }
                }
            }
            for (x, y, l) in &labels {
                let offsets: &[(i64, i64)] = if grow > 0 {
                    &[
                        (-1, 0),
                        (1, 0),
                        (0, -1),
                        (0, 1),
                        (-1, -1),
                        (1, 1),
                        (-1, 1),
                        (1, -1),
                    ]
                } else {
                    &[(0, 0)]
                };
                for &(dx, dy) in offsets {
                    text::draw(
                        &mut |px, py| put(px, py, colour),
                        x + dx,
                        y + dy,
                        l,
                        scale,
                        false,
                    );
                }
            }
        }
    }
}

/// The points of a Bresenham line from `a` to `b`.
fn line_points((mut x0, mut y0): (i64, i64), (x1, y1): (i64, i64), set: &mut impl FnMut(i64, i64)) {
    let dx = (x1 - x0).abs();
    let dy = -(y1 - y0).abs();
    let sx = if x0 < x1 { 1 } else { -1 };
    let sy = if y0 < y1 { 1 } else { -1 };
    let mut e = dx + dy;
    loop {
        set(x0, y0);
        if x0 == x1 && y0 == y1 {
            break;
        }
        let e2 = 2 * e;
        if e2 >= dy {
            e += dy;
            x0 += sx;
        }
        if e2 <= dx {
            e += dx;
            y0 += sy;
        }
    }
}

/// Value → grey level.
#[derive(Debug, Clone, Copy)]
struct Stretch {
    lo: f64,
    /// `hi - lo`; 0 for a constant image.
    span: f64,
    /// asinh softening; 0 means linear.
    soft: f64,
}

impl Stretch {
    fn new(values: &mut [f64]) -> Self {
        let [lo, med, hi] = percentiles(values, [LOW_PCT, 0.5, HIGH_PCT]);
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            // Nearly constant: fall back to the full range.
            let [min, max] = percentiles(values, [0.0, 1.0]);
            (min, max)
        };
        let span = hi - lo;
        if !(span > 0.0 && span.is_finite()) {
            return Stretch {
                lo,
                span: 0.0,
                soft: 0.0,
            };
        }
        let m = (med - lo) / span;
        let soft = if m >= MEDIAN_GREY {
            0.0
        } else if m <= 0.0 {
            MAX_SOFTENING
        } else {
            // asinh(a m) / asinh(a) grows with a: bisect for MEDIAN_GREY.
            let f = |a: f64| (a * m).asinh() / a.asinh();
            let (mut a, mut b) = (1e-3, MAX_SOFTENING);
            if f(b) < MEDIAN_GREY {
                b
            } else {
                for _ in 0..60 {
                    let c = (a * b).sqrt();
                    if f(c) < MEDIAN_GREY {
                        a = c;
                    } else {
                        b = c;
                    }
                }
                b
            }
        };
        Stretch { lo, span, soft }
    }

    fn grey(&self, v: f64) -> u8 {
        if self.span == 0.0 {
            return 128;
        }
        let t = ((v - self.lo) / self.span).clamp(0.0, 1.0);
        let g = if self.soft > 0.0 {
            (self.soft * t).asinh() / self.soft.asinh()
        } else {
            t
        };
        (g * 255.0).round().clamp(0.0, 255.0) as u8
    }
}

/// The values at quantiles `qs` (0..=1) of `values` (non-empty, finite), reordering them.
fn percentiles<const N: usize>(values: &mut [f64], qs: [f64; N]) -> [f64; N] {
    let mut out = [f64::NAN; N];
    if values.is_empty() {
        return out;
    }
    let last = values.len() - 1;
    for (o, q) in out.iter_mut().zip(qs) {
        let i = ((q.clamp(0.0, 1.0) * last as f64).round() as usize).min(last);
        let (_, v, _) = values.select_nth_unstable_by(i, f64::total_cmp);
        *o = *v;
    }
    out
}

fn encode(pixels: &[u8], w: usize, h: usize, color: png::ColorType) -> Result<Vec<u8>, Error> {
    let png_err = |e: png::EncodingError| fail(format!("PNG encoding: {e}"));
    let (w, h) = (
        u32::try_from(w).map_err(|_| fail("image too wide"))?,
        u32::try_from(h).map_err(|_| fail("image too high"))?,
    );
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(png_err)?;
        writer.write_image_data(pixels).map_err(png_err)?;
        writer.finish().map_err(png_err)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Spectra

/// One curve: spectral coordinate and flux, same length.
type Curve = (Vec<f64>, Vec<f64>);

/// A 1-D image spectrum with its WCS.
fn spectrum_1d(file: &[u8], h: &Hdu) -> Result<Curve, Error> {
    let n = h.axes()[0];
    let flux = read_values(file, h, n)?;
    Ok((spectral_axis(h, n), flux))
}

/// The first `n` values of an image HDU's data unit (scaled, no-data as NaN).
fn read_values(file: &[u8], h: &Hdu, n: usize) -> Result<Vec<f64>, Error> {
    let sample = Sample::of(h)?;
    let bytes = product(h, &[n, sample.size])?;
    let data = h.data(file);
    let raw = data.get(..bytes).ok_or_else(|| {
        fail(format!(
            "HDU {}: truncated: the data unit needs {bytes} bytes, the file has {}",
            h.index,
            data.len()
        ))
    })?;
    let mut values = vec![0f64; n];
    sample.decode(raw, &mut values);
    Ok(values)
}

/// Whether a 1-D image HDU holds a spectral coordinate rather than a spectrum (a DESI
/// `B_WAVELENGTH` array): skipped when choosing what to draw.
fn is_axis_array(h: &Hdu) -> bool {
    let name = h.str("EXTNAME").unwrap_or("").to_ascii_uppercase();
    let unit = h.str("BUNIT").unwrap_or("").trim().to_ascii_lowercase();
    let spectral_unit = [
        "angstrom", "nm", "um", "micron", "hz", "khz", "mhz", "ghz", "m/s", "km/s",
    ]
    .contains(&unit.as_str());
    h.axes().len() == 1 && (name.contains("WAVE") || name.contains("LAMBDA") || spectral_unit)
}

/// One curve per row of a [`What::Stack`] image. The spectral coordinate is the WCS of axis
/// 1, else a 1-D HDU of the same length named like this one with `WAVE…` for `FLUX`
/// (`B_FLUX` → `B_WAVELENGTH`), else the pixel number.
fn stack_curves(file: &[u8], hdus: &[Hdu], h: &Hdu) -> Result<Vec<Curve>, Error> {
    let axes = h.axes();
    let (n1, n2) = (axes[0], axes[1]);
    let values = read_values(file, h, product(h, &[n1, n2])?)?;
    let name = h.str("EXTNAME").unwrap_or("").trim().to_ascii_uppercase();
    let companion = name.rfind("FLUX").and_then(|at| {
        let prefix = &name[..at];
        hdus.iter().find(|o| {
            let other = o.str("EXTNAME").unwrap_or("").trim().to_ascii_uppercase();
            o.index != h.index
                && o.axes() == [n1]
                && other
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with("WAVE"))
        })
    });
    let x = match companion {
        Some(o) if h.f64("CRVAL1").is_none() => read_values(file, o, n1)?,
        _ => spectral_axis(h, n1),
    };
    Ok(values
        .chunks_exact(n1)
        .map(|row| (x.clone(), row.to_vec()))
        .collect())
}

/// The spectral coordinate of each pixel of a 1-D image (pixel numbers without a usable WCS).
fn spectral_axis(h: &Hdu, n: usize) -> Vec<f64> {
    let pixels = || (1..=n).map(|p| p as f64).collect::<Vec<_>>();
    let Some(crval) = h.f64("CRVAL1").filter(|v| v.is_finite()) else {
        return pixels();
    };
    let crpix = h.f64("CRPIX1").filter(|v| v.is_finite()).unwrap_or(1.0);
    let delt = h
        .f64("CD1_1")
        .or_else(|| h.f64("CDELT1"))
        .filter(|v| v.is_finite() && *v != 0.0)
        .unwrap_or(1.0);
    let ctype = h.str("CTYPE1").unwrap_or("").trim().to_ascii_uppercase();
    let cunit = h.str("CUNIT1").unwrap_or("").trim().to_ascii_lowercase();
    let dc_flag = h.f64("DC-FLAG");
    let linear = |p: f64| crval + (p - crpix) * delt;
    let axis: Vec<f64> = if ctype.ends_with("-LOG") && crval != 0.0 {
        // WCS Paper III logarithmic axis.
        (1..=n)
            .map(|p| crval * ((p as f64 - crpix) * delt / crval).exp())
            .collect()
    } else {
        let plain_type = ctype.is_empty()
            || ctype == "LINEAR"
            || ctype.starts_with("WAVE")
            || ctype.starts_with("AWAV")
            || ctype.starts_with("LAMBDA");
        let angstrom_unit = cunit.is_empty() || cunit.starts_with("angstrom");
        // IRAF/SDSS log10-lambda: DC-FLAG = 1, or a CRVAL1 that is only plausible as log10(Å).
        let guessed = dc_flag.is_none()
            && plain_type
            && angstrom_unit
            && crval > 2.0
            && crval < 5.0
            && linear(n as f64).abs() < 7.0;
        if dc_flag == Some(1.0) || ctype.contains("LOG10") || guessed {
            (1..=n).map(|p| 10f64.powf(linear(p as f64))).collect()
        } else {
            (1..=n).map(|p| linear(p as f64)).collect()
        }
    };
    let (lo, hi) = min_max(axis.iter().copied());
    if hi > lo && lo.is_finite() && hi.is_finite() {
        axis
    } else {
        pixels()
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// Which table columns hold the spectrum.
#[derive(Debug, Clone, PartialEq)]
struct Columns {
    flux: usize,
    /// The spectral coordinate (row numbers or array indices without one).
    x: Option<usize>,
    /// The x column holds log10 values.
    x_log: bool,
    /// Step of a scalar start wavelength (IUE `DELTAW`).
    step: Option<usize>,
    /// Number of valid points in each row's arrays (IUE `NPTS`).
    npts: Option<usize>,
}

/// Spectral coordinate columns, best first.
const X_NAMES: &[&str] = &[
    "WAVE",
    "WAVELENGTH",
    "LAMBDA",
    "LAM",
    "AWAV",
    "LOGLAM",
    "LOGLAMBDA",
    "LOGWAVE",
    "VHELIO",
    "VELOCITY",
    "VELO",
    "VRAD",
    "VOPT",
    "FREQ",
    "FREQUENCY",
    "ENERGY",
    "CHANNEL",
];
/// Flux columns, best first.
const FLUX_NAMES: &[&str] = &[
    "FLUX",
    "FLUXDENS",
    "FLUX_DENSITY",
    "FLUXDENSITY",
    "ABNET",
    "NET",
    "SPECTRUM",
    "SPEC",
    "INTENSITY",
    "COUNTS",
    "GROSS",
];
const STEP_NAMES: &[&str] = &["DELTAW", "DELTA_W", "DLAMBDA", "DISP"];
const NPTS_NAMES: &[&str] = &["NPTS", "NELEM", "N_POINTS"];

impl Columns {
    fn pick(names: &[String]) -> Option<Self> {
        let find = |list: &[&str]| {
            list.iter().find_map(|want| {
                names
                    .iter()
                    .position(|n| n.trim().eq_ignore_ascii_case(want))
            })
        };
        let flux = find(FLUX_NAMES)?;
        let x = find(X_NAMES);
        let x_log = x.is_some_and(|i| names[i].trim().to_ascii_uppercase().starts_with("LOG"));
        Some(Columns {
            flux,
            x,
            x_log,
            step: find(STEP_NAMES),
            npts: find(NPTS_NAMES),
        })
    }
}

/// The curves of a binary-table spectrum: one per row when the flux is an array column, else
/// one over all rows.
fn table_curves(file: &[u8], h: &Hdu) -> Result<(Vec<Curve>, Labels), Error> {
    let (schema, batches) = fits::read_bintable(file, Some(h.index))?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let cols = Columns::pick(&names).ok_or_else(|| {
        fail(format!(
            "HDU {} has no image or spectrum to preview",
            h.index
        ))
    })?;
    let unlog = |v: f64| if cols.x_log { 10f64.powf(v) } else { v };
    let mut curves = Vec::new();
    let mut scalar_curve: Curve = (Vec::new(), Vec::new());
    let mut row_number = 0usize;
    for batch in &batches {
        let flux_col = batch.column(cols.flux);
        if is_list(flux_col.data_type()) {
            for row in 0..batch.num_rows() {
                let Some(mut flux) = list_row(flux_col, row)? else {
                    continue;
                };
                let npts = match cols.npts {
                    Some(c) => scalar(batch.column(c), row)?,
                    None => None,
                };
                if let Some(npts) = npts {
                    if npts >= 0.0 && npts < flux.len() as f64 {
                        flux.truncate(npts as usize);
                    }
                }
                let x = match cols.x.map(|c| batch.column(c)) {
                    Some(xc) if is_list(xc.data_type()) => {
                        let mut x = list_row(xc, row)?.unwrap_or_default();
                        let n = x.len().min(flux.len());
                        x.truncate(n);
                        flux.truncate(n);
                        x.into_iter().map(unlog).collect()
                    }
                    Some(xc) => {
                        let start = scalar(xc, row)?.unwrap_or(f64::NAN);
                        let step = match cols.step {
                            Some(s) => scalar(batch.column(s), row)?.unwrap_or(1.0),
                            None => 1.0,
                        };
                        (0..flux.len())
                            .map(|i| unlog(start + i as f64 * step))
                            .collect()
                    }
                    None => (1..=flux.len()).map(|i| i as f64).collect(),
                };
                curves.push((x, flux));
            }
        } else {
            let flux = column_f64(flux_col)?;
            let x: Vec<f64> = match cols.x.map(|c| batch.column(c)) {
                Some(xc) if !is_list(xc.data_type()) => {
                    column_f64(xc)?.into_iter().map(unlog).collect()
                }
                _ => (row_number + 1..=row_number + flux.len())
                    .map(|i| i as f64)
                    .collect(),
            };
            scalar_curve.0.extend(x);
            scalar_curve.1.extend(flux);
        }
        row_number += batch.num_rows();
    }
    if !scalar_curve.1.is_empty() {
        curves.push(scalar_curve);
    }
    Ok((curves, Labels::of_table(h, &names, &cols)))
}

fn is_list(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    )
}

/// A numeric array as f64, nulls as NaN.
fn column_f64(a: &dyn Array) -> Result<Vec<f64>, Error> {
    let cast_err = |e| fail(format!("column is not numeric: {e}"));
    let c: ArrayRef = cast(a, &DataType::Float64).map_err(cast_err)?;
    let f = c.as_primitive::<Float64Type>();
    Ok((0..f.len())
        .map(|i| if f.is_null(i) { f64::NAN } else { f.value(i) })
        .collect())
}

/// One row of a list column as f64; `None` for a null row.
fn list_row(a: &ArrayRef, row: usize) -> Result<Option<Vec<f64>>, Error> {
    if row >= a.len() || a.is_null(row) {
        return Ok(None);
    }
    let values = if let Some(l) = a.as_list_opt::<i32>() {
        l.value(row)
    } else if let Some(l) = a.as_list_opt::<i64>() {
        l.value(row)
    } else if let Some(l) = a.as_fixed_size_list_opt() {
        l.value(row)
    } else {
        return Ok(None);
    };
    column_f64(values.as_ref()).map(Some)
}

/// One value of a scalar column as f64; `None` when null.
fn scalar(a: &ArrayRef, row: usize) -> Result<Option<f64>, Error> {
    if row >= a.len() || a.is_null(row) || is_list(a.data_type()) {
        return Ok(None);
    }
    Ok(column_f64(a.slice(row, 1).as_ref())?.first().copied())
}

// ---------------------------------------------------------------------------------------------
// The plot

/// The axis titles of a spectrum plot, with their units (`Wavelength [Angstrom]`).
#[derive(Debug, Clone, PartialEq)]
struct Labels {
    x: String,
    y: String,
}

/// `name [unit]`, or `name` alone without a unit.
fn titled(name: &str, unit: Option<&str>) -> String {
    match unit.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => format!("{name} [{u}]"),
        None => name.to_string(),
    }
}

/// The quantity a spectral axis type or column name stands for.
fn spectral_quantity(name: &str) -> Option<&'static str> {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("LOG").unwrap_or(&n);
    if ["WAVE", "AWAV", "LAMBDA", "LAM", "LINEAR"]
        .iter()
        .any(|p| n.starts_with(p))
    {
        Some("Wavelength")
    } else if n.starts_with("FREQ") {
        Some("Frequency")
    } else if ["VELO", "VRAD", "VOPT", "VHELIO", "ZOPT"]
        .iter()
        .any(|p| n.starts_with(p))
    {
        Some("Velocity")
    } else if n.starts_with("ENER") {
        Some("Energy")
    } else if n.starts_with("WAVN") {
        Some("Wavenumber")
    } else if n.starts_with("CHAN") {
        Some("Channel")
    } else {
        None
    }
}

/// The unit inside `log(...)` (a log10 column is drawn unlogged).
fn unlogged_unit(unit: &str) -> &str {
    let u = unit.trim();
    let lower = u.to_ascii_lowercase();
    for prefix in ["log10(", "log(", "dex("] {
        if lower.starts_with(prefix) && u.ends_with(')') {
            return &u[prefix.len()..u.len() - 1];
        }
    }
    u
}

impl Labels {
    /// A 1-D image (or a stack of them): the spectral axis from CTYPE1/CUNIT1 (the pixel
    /// number without a WCS), the values from BUNIT.
    fn of_image(h: &Hdu) -> Self {
        let ctype = h.str("CTYPE1").unwrap_or("").trim().to_string();
        let x = if h.f64("CRVAL1").is_some_and(f64::is_finite) {
            let quantity = spectral_quantity(&ctype)
                .or(ctype.is_empty().then_some("Wavelength"))
                .unwrap_or(ctype.as_str());
            let unit = h.str("CUNIT1").map(str::trim).filter(|u| !u.is_empty());
            // Ingest's rule: a wavelength axis without a unit is in Ångström.
            let unit = unit.or((quantity == "Wavelength").then_some("Angstrom"));
            titled(quantity, unit)
        } else {
            "Pixel".to_string()
        };
        let y = titled("Flux", h.str("BUNIT"));
        Labels { x, y }
    }

    /// A binary table: the titles are the columns' names with their TUNITn.
    fn of_table(h: &Hdu, names: &[String], cols: &Columns) -> Self {
        let unit_of = |i: usize| -> Option<String> {
            let n = h.i64("TFIELDS").unwrap_or(0).clamp(0, 999);
            let want = names.get(i)?.trim();
            (1..=n)
                .find(|k| {
                    h.str(&format!("TTYPE{k}"))
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case(want))
                })
                .and_then(|k| h.str(&format!("TUNIT{k}")))
                .map(|u| u.trim().to_string())
        };
        let x = match cols.x {
            Some(i) => {
                let name = names[i].trim();
                let quantity = spectral_quantity(name).unwrap_or(name);
                let unit = unit_of(i);
                let unit = unit
                    .as_deref()
                    .map(|u| if cols.x_log { unlogged_unit(u) } else { u });
                titled(quantity, unit)
            }
            None => "Point".to_string(),
        };
        let y = titled(names[cols.flux].trim(), unit_of(cols.flux).as_deref());
        Labels { x, y }
    }
}

/// Tick labels for `ticks`: fixed-point with the decimals the step needs, or `2.5e-17` style
/// for very large or small values; `0` for zero.
fn tick_labels(ticks: &[f64]) -> Vec<String> {
    let step = match ticks {
        [a, b, ..] => (b - a).abs(),
        _ => 1.0,
    };
    let step_exp = if step > 0.0 && step.is_finite() {
        step.log10().floor() as i32
    } else {
        0
    };
    let big = ticks.iter().map(|t| t.abs()).fold(0.0, f64::max);
    let scientific = big >= 1e6 || (big > 0.0 && big < 1e-3);
    ticks
        .iter()
        .map(|&t| {
            if t.abs() < step * 1e-6 {
                return "0".to_string();
            }
            if scientific {
                let e = t.abs().log10().floor() as i32;
                let decimals = (e - step_exp).clamp(0, 6) as usize;
                let m = t / 10f64.powi(e);
                format!("{m:.decimals$}e{e}")
            } else {
                let decimals = (-step_exp).clamp(0, 10) as usize;
                let s = format!("{t:.decimals$}");
                if s.trim_start_matches('-')
                    .chars()
                    .all(|c| c == '0' || c == '.')
                {
                    "0".to_string()
                } else {
                    s
                }
            }
        })
        .collect()
}

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const ZERO_LINE: [u8; 3] = [200, 200, 200];
const LINE_COLOURS: &[[u8; 3]] = &[
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [148, 103, 189],
    [255, 127, 14],
];

/// An RGB canvas.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: WHITE.repeat(w * h),
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Bresenham line.
    fn line(&mut self, a: (i64, i64), b: (i64, i64), c: [u8; 3]) {
        line_points(a, b, &mut |x, y| self.set(x, y, c));
    }
}

/// Round tick values in `lo..=hi` (about 6 of them).
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return Vec::new();
    }
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil();
    (0..50)
        .map(|k| (first + k as f64) * step)
        .take_while(|&t| t <= hi + step * 1e-9)
        .collect()
}

fn plot_png(
    curves: &[Curve],
    labels: &Labels,
    index: usize,
    max_side: u32,
) -> Result<Vec<u8>, Error> {
    let points = || {
        curves
            .iter()
            .flat_map(|(x, y)| x.iter().zip(y))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (xlo, xhi) = min_max(points().map(|(x, _)| *x));
    let mut ys: Vec<f64> = points().map(|(_, y)| *y).collect();
    if ys.len() < 2 || xhi.partial_cmp(&xlo) != Some(std::cmp::Ordering::Greater) {
        return Err(fail(format!(
            "HDU {index}: the spectrum has fewer than 2 finite points"
        )));
    }
    let [mut ylo, mut yhi] = percentiles(&mut ys, [LOW_PCT, HIGH_PCT]);
    drop(ys);
    if yhi > ylo {
        let pad = 0.08 * (yhi - ylo);
        ylo -= pad;
        yhi += pad;
    } else {
        let pad = (ylo.abs() * 0.1).max(1e-30);
        ylo -= pad;
        yhi += pad;
    }
    if !((yhi - ylo).is_finite() && (xhi - xlo).is_finite()) {
        return Err(fail(format!("HDU {index}: the spectrum's range overflows")));
    }

    let w = max_side.min(PLOT_MAX_WIDTH) as usize;
    let h = (w / 2).max(1);
    let mut canvas = Canvas::new(w, h);
    // Text: 8-pixel glyphs, doubled on large plots; none on plots too small to hold it.
    let scale: i64 = if w >= 1000 { 2 } else { 1 };
    let cell = text::CELL * scale;
    let with_text = w >= 200;
    let xticks = ticks(xlo, xhi);
    let yticks = ticks(ylo, yhi);
    let xlabels = tick_labels(&xticks);
    let ylabels = tick_labels(&yticks);
    let ylabel_width = ylabels
        .iter()
        .map(|l| text::width(l, scale))
        .max()
        .unwrap_or(0);
    let (left, bottom_margin, top, right_margin) = if with_text {
        // y title, gap, tick labels, gap | x tick labels and title below.
        (
            cell + cell / 2 + ylabel_width + cell / 2 + 2,
            cell / 2 + cell + cell / 2 + cell + cell / 2,
            cell,
            cell * 2,
        )
    } else {
        (
            ((w as f64 * 0.06).round() as i64).max(4),
            ((h as f64 * 0.08).round() as i64).max(4),
            ((h as f64 * 0.04).round() as i64).max(3),
            ((w as f64 * 0.02).round() as i64).max(3),
        )
    };
    let right = w as i64 - 1 - right_margin;
    let bottom = h as i64 - 1 - bottom_margin;
    if right - left < 16 || bottom - top < 16 {
        return Err(fail(format!("HDU {index}: the plot is too small to draw")));
    }
    let tick = ((h as f64 * 0.02).round() as i64).max(2);
    // Inner area, inside the box.
    let (ix0, ix1, iy0, iy1) = (left + 1, right - 1, top + 1, bottom - 1);
    let px = |x: f64| {
        let t = (x - xlo) / (xhi - xlo);
        (ix0 as f64 + t * (ix1 - ix0) as f64).round() as i64
    };
    let py = |y: f64| {
        let t = ((y - ylo) / (yhi - ylo)).clamp(0.0, 1.0);
        (iy1 as f64 - t * (iy1 - iy0) as f64).round() as i64
    };

    if ylo < 0.0 && yhi > 0.0 {
        let y = py(0.0);
        canvas.line((ix0, y), (ix1, y), ZERO_LINE);
    }
    for (k, (x, y)) in curves.iter().enumerate() {
        let colour = LINE_COLOURS[k % LINE_COLOURS.len()];
        let mut prev: Option<(i64, i64)> = None;
        for (&xv, &yv) in x.iter().zip(y) {
            if !(xv.is_finite() && yv.is_finite()) {
                prev = None;
                continue;
            }
            let p = (px(xv).clamp(ix0, ix1), py(yv));
            match prev {
                Some(q) => canvas.line(q, p, colour),
                None => canvas.set(p.0, p.1, colour),
            }
            prev = Some(p);
        }
    }
    // Axes box and ticks (drawn last, over the curves).
    canvas.line((left, top), (right, top), BLACK);
    canvas.line((left, bottom), (right, bottom), BLACK);
    canvas.line((left, top), (left, bottom), BLACK);
    canvas.line((right, top), (right, bottom), BLACK);
    for t in &xticks {
        let x = px(*t).clamp(ix0, ix1);
        canvas.line((x, bottom - tick), (x, bottom), BLACK);
        canvas.line((x, top), (x, top + tick), BLACK);
    }
    for t in &yticks {
        let y = py(*t);
        canvas.line((left, y), (left + tick, y), BLACK);
        canvas.line((right - tick, y), (right, y), BLACK);
    }
    if with_text {
        let mut ink = |x: i64, y: i64| canvas.set(x, y, BLACK);
        // x tick labels, centred under their ticks; one that would overlap the previous
        // label is left out.
        let mut free_from = i64::MIN;
        for (t, l) in xticks.iter().zip(&xlabels) {
            let lw = text::width(l, scale);
            let x = (px(*t) - lw / 2).clamp(0, w as i64 - lw);
            if x < free_from {
                continue;
            }
            text::draw(&mut ink, x, bottom + cell / 2, l, scale, false);
            free_from = x + lw + cell;
        }
        // y tick labels, right-aligned left of the box.
        let mut free_above = i64::MAX;
        for (t, l) in yticks.iter().zip(&ylabels) {
            let y = py(*t) - cell / 2;
            if y + cell > free_above {
                continue;
            }
            let lw = text::width(l, scale);
            text::draw(&mut ink, left - cell / 2 - lw, y, l, scale, false);
            free_above = y;
        }
        // Axis titles: x centred below, y upwards along the left edge.
        let xt = text::fit(&labels.x, right - left, scale);
        let xw = text::width(&xt, scale);
        let xt_top = bottom + cell / 2 + cell + cell / 2;
        text::draw(
            &mut ink,
            left + (right - left - xw) / 2,
            xt_top,
            &xt,
            scale,
            false,
        );
        let yt = text::fit(&labels.y, bottom - top, scale);
        let yw = text::width(&yt, scale);
        text::draw(
            &mut ink,
            cell / 2,
            bottom - (bottom - top - yw) / 2,
            &yt,
            scale,
            true,
        );
    }
    encode(&canvas.px, w, h, png::ColorType::Rgb)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_gzip_bomb_stops_at_the_bound() {
        use std::io::Write;
        // 64 MiB of zeros compress to about 64 KiB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let e = super::preview_png(&bomb, None, 256, 8 << 20).unwrap_err();
        assert!(matches!(e, crate::Error::TooLarge(_)), "{e}");
        assert!(e.to_string().contains("more than 8388608 bytes"), "{e}");
    }

    use super::*;
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};

    fn demo(dir: &str) -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/demo")
            .join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.ends_with(".fits") || n.ends_with(".fits.gz")
            })
            .collect();
        files.sort();
        files
    }

    /// Decodes a PNG: (width, height, colour type, pixel bytes).
    fn decode(png_bytes: &[u8]) -> (usize, usize, png::ColorType, Vec<u8>) {
        let decoder = png::Decoder::new(png_bytes);
        let mut reader = decoder.read_info().expect("PNG header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("PNG data");
        buf.truncate(info.buffer_size());
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        (
            info.width as usize,
            info.height as usize,
            info.color_type,
            buf,
        )
    }

    /// A FITS file from header cards and a data unit.
    fn fits_file(cards: &[(&str, &str)], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in cards {
            out.extend_from_slice(format!("{k:<8}= {v:>20}").as_bytes());
            out.resize(out.len().div_ceil(80) * 80, b' ');
        }
        out.extend_from_slice(b"END");
        out.resize(out.len().div_ceil(2880) * 2880, b' ');
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(2880) * 2880, 0);
        out
    }

    fn f32_image(n1: usize, n2: usize, f: impl Fn(usize, usize) -> f32) -> Vec<u8> {
        let mut data = Vec::with_capacity(n1 * n2 * 4);
        for y in 0..n2 {
            for x in 0..n1 {
                data.extend_from_slice(&f(x, y).to_be_bytes());
            }
        }
        let (s1, s2) = (n1.to_string(), n2.to_string());
        fits_file(
            &[
                ("SIMPLE", "T"),
                ("BITPIX", "-32"),
                ("NAXIS", "2"),
                ("NAXIS1", &s1),
                ("NAXIS2", &s2),
            ],
            &data,
        )
    }

    /// The first HDU with a 2-D image: (NAXIS1, NAXIS2).
    fn image_dims(bytes: &[u8]) -> (usize, usize) {
        let file = maybe_gunzip(bytes.to_vec(), u64::MAX).unwrap();
        let hdus = fits::hdus(&file).unwrap();
        let h = hdus
            .iter()
            .find(|h| classify(h) == Some(What::Image))
            .unwrap();
        let a = h.axes();
        (a[0], a[1])
    }

    /// A 200 x 100 TAN image around (RA, Dec) = (150, 30) with the given CD matrix.
    fn wcs_image(cd: [f64; 4]) -> Vec<u8> {
        let mut data = Vec::new();
        for y in 0..100 {
            for x in 0..200 {
                data.extend_from_slice(&(((x * 7 + y * 3) % 50) as f32).to_be_bytes());
            }
        }
        let v: Vec<String> = cd.iter().map(|c| format!("{c:e}")).collect();
        fits_file(
            &[
                ("SIMPLE", "T"),
                ("BITPIX", "-32"),
                ("NAXIS", "2"),
                ("NAXIS1", "200"),
                ("NAXIS2", "100"),
                ("CTYPE1", "'RA---TAN'"),
                ("CTYPE2", "'DEC--TAN'"),
                ("CRPIX1", "100.5"),
                ("CRPIX2", "50.5"),
                ("CRVAL1", "150.0"),
                ("CRVAL2", "30.0"),
                ("CD1_1", &v[0]),
                ("CD1_2", &v[1]),
                ("CD2_1", &v[2]),
                ("CD2_2", &v[3]),
            ],
            &data,
        )
    }

    #[test]
    fn image_orientation_and_scale_from_the_wcs() {
        let near =
            |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 0.02 && (a.1 - b.1).abs() < 0.02;
        // North up, east left (the sky as seen), 1"/pixel.
        let file = wcs_image([-1.0 / 3600.0, 0.0, 0.0, 1.0 / 3600.0]);
        let hdus = fits::hdus(&file).unwrap();
        let o = Orientation::of(&hdus[0], (200, 100), (200, 100)).unwrap();
        assert!(
            near(o.north, (0.0, -1.0)) && near(o.east, (-1.0, 0.0)),
            "{o:?}"
        );
        assert!((o.arcsec_per_px - 1.0).abs() < 0.01, "{o:?}");
        // Halved preview: 2"/pixel.
        let o = Orientation::of(&hdus[0], (200, 100), (100, 50));
        assert!(o.is_none(), "too small for an overlay");
        // Mirrored (RA grows to the right): east right.
        let file = wcs_image([1.0 / 3600.0, 0.0, 0.0, 1.0 / 3600.0]);
        let hdus = fits::hdus(&file).unwrap();
        let o = Orientation::of(&hdus[0], (200, 100), (200, 100)).unwrap();
        assert!(
            near(o.north, (0.0, -1.0)) && near(o.east, (1.0, 0.0)),
            "{o:?}"
        );
        // Rotated 90 degrees: north to the left (x decreasing), east down.
        let file = wcs_image([0.0, 1.0 / 3600.0, 1.0 / 3600.0, 0.0]);
        let hdus = fits::hdus(&file).unwrap();
        let o = Orientation::of(&hdus[0], (200, 100), (200, 100)).unwrap();
        assert!(
            near(o.north, (1.0, 0.0)) || near(o.north, (-1.0, 0.0)),
            "{o:?}"
        );
        assert!(
            near(o.east, (0.0, 1.0)) || near(o.east, (0.0, -1.0)),
            "{o:?}"
        );
        // Without a WCS: none.
        let file = f32_image(200, 100, |x, y| (x + y) as f32);
        let hdus = fits::hdus(&file).unwrap();
        assert!(Orientation::of(&hdus[0], (200, 100), (200, 100)).is_none());

        // The PNG: RGBA with the overlay's yellow in it; without a WCS, grey.
        let file = wcs_image([-1.0 / 3600.0, 0.0, 0.0, 1.0 / 3600.0]);
        let (w, h, c, px) = decode(&preview_png(&file, None, 512, u64::MAX).unwrap());
        assert_eq!((w, h, c), (200, 100, png::ColorType::Rgba));
        let yellow = px.chunks_exact(4).filter(|p| *p == OVERLAY).count();
        assert!(yellow > 50, "{yellow} overlay pixels");
        // The scale bar is bottom left, the compass top right.
        let at = |x: usize, y: usize| &px[(y * w + x) * 4..(y * w + x) * 4 + 4];
        let bottom_left = (0..w / 2)
            .flat_map(|x| (h / 2..h).map(move |y| (x, y)))
            .filter(|&(x, y)| at(x, y) == OVERLAY)
            .count();
        let top_right = (w / 2..w)
            .flat_map(|x| (0..h / 2).map(move |y| (x, y)))
            .filter(|&(x, y)| at(x, y) == OVERLAY)
            .count();
        assert!(
            bottom_left > 10 && top_right > 10,
            "{bottom_left} {top_right}"
        );
        let (_, _, c, _) = decode(
            &preview_png(&f32_image(200, 100, |x, _| x as f32), None, 512, u64::MAX).unwrap(),
        );
        assert_eq!(c, png::ColorType::GrayscaleAlpha);
    }

    #[test]
    fn image_orientation_agrees_with_astropy() {
        // Unit vectors (x right, y down) towards north and east at the image centre, from
        // astropy 8.0.2: WCS(header).celestial, pixel_to_world, directional_offset_by(0/90°,
        // 10"), world_to_pixel.
        for (name, north, east) in [
            ("msx_e_galactic_center.fits", (-0.85, -0.52), (-0.52, 0.85)),
            (
                "ccd_aspen_ey_uma_tansip.fits.gz",
                (-0.34, -0.94),
                (0.94, -0.34),
            ),
            ("dss_poss1_m1_ned.fits", (-0.01, -1.0), (-1.0, 0.01)),
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../data/demo/images")
                .join(name);
            let file = maybe_gunzip(std::fs::read(path).unwrap(), u64::MAX).unwrap();
            let hdus = fits::hdus(&file).unwrap();
            let (n1, n2) = (hdus[0].axes()[0], hdus[0].axes()[1]);
            let o = Orientation::of(&hdus[0], (n1, n2), (n1, n2)).unwrap();
            let near =
                |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 0.03 && (a.1 - b.1).abs() < 0.03;
            assert!(near(o.north, north) && near(o.east, east), "{name}: {o:?}");
        }
    }

    #[test]
    fn spectrum_labels_and_ticks() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/demo/spectra/keck_esi_q0100+13_flux.fits");
        let hdus = fits::hdus(&std::fs::read(path).unwrap()).unwrap();
        let l = Labels::of_image(&hdus[0]);
        assert_eq!(l.x, "Wavelength [Angstrom]");
        assert!(l.y.starts_with("Flux ["), "{l:?}");
        // IUE: the table's columns with their units.
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/demo/spectra/iue_spectrum_pyvo.fits");
        let file = std::fs::read(path).unwrap();
        let hdus = fits::hdus(&file).unwrap();
        let t = hdus
            .iter()
            .find(|h| classify(h) == Some(What::Table))
            .unwrap();
        let (_, l) = table_curves(&file, t).unwrap();
        assert!(
            l.x.starts_with("Wavelength [") && l.y.starts_with("ABNET ["),
            "{l:?}"
        );
        assert_eq!(unlogged_unit("log(Angstrom)"), "Angstrom");
        assert_eq!(spectral_quantity("VHELIO"), Some("Velocity"));

        assert_eq!(
            tick_labels(&[0.0, 2.0, 4.0]),
            vec!["0".to_string(), "2".into(), "4".into()]
        );
        assert_eq!(tick_labels(&[0.1, 0.15, 0.2]), vec!["0.10", "0.15", "0.20"]);
        assert_eq!(
            tick_labels(&[0.0, 2e-17, 4e-17]),
            vec!["0", "2e-17", "4e-17"]
        );
        assert_eq!(tick_labels(&[1e-16, 1.2e-16]), vec!["1.0e-16", "1.2e-16"]);
        assert_eq!(tick_labels(&[-5.0, 0.0, 5.0]), vec!["-5", "0", "5"]);

        // The plot carries text: black pixels left of the box and below it.
        let (w, h, _, px) = decode(
            &preview_png(
                &std::fs::read(
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../data/demo/spectra/keck_esi_q0100+13_flux.fits"),
                )
                .unwrap(),
                None,
                512,
                u64::MAX,
            )
            .unwrap(),
        );
        let black = |x0: usize, x1: usize, y0: usize, y1: usize| {
            (x0..x1)
                .flat_map(|x| (y0..y1).map(move |y| (x, y)))
                .filter(|&(x, y)| px[(y * w + x) * 3..(y * w + x) * 3 + 3] == BLACK)
                .count()
        };
        assert!(black(0, 20, 0, h) > 50, "no y title");
        assert!(black(40, w, h - 14, h) > 50, "no x title");
    }

    #[test]
    fn preview_every_demo_image() {
        for max_side in [256u32, 64] {
            for path in demo("images") {
                let bytes = std::fs::read(&path).unwrap();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                let png_bytes = preview_png(&bytes, None, max_side, u64::MAX)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let (w, h, color, px) = decode(&png_bytes);
                // Grey, or RGBA when a scale bar and compass are drawn over it.
                let px: Vec<u8> = match color {
                    png::ColorType::GrayscaleAlpha => px,
                    png::ColorType::Rgba => {
                        assert!(max_side >= OVERLAY_MIN_SIDE as u32, "{name}");
                        // The grey pixels (the overlay is yellow and black).
                        px.chunks_exact(4)
                            .flat_map(|p| {
                                if p[0] == p[1] && p[1] == p[2] {
                                    [p[0], p[3]]
                                } else {
                                    [0, 0]
                                }
                            })
                            .collect()
                    }
                    other => panic!("{name}: {other:?}"),
                };
                let (n1, n2) = image_dims(&bytes);
                assert!(w <= max_side as usize && h <= max_side as usize, "{name}");
                assert_eq!(w.max(h), n1.max(n2).min(max_side as usize), "{name}");
                // Aspect ratio within one pixel.
                let expect_h = w as f64 * n2 as f64 / n1 as f64;
                assert!(
                    (expect_h - h as f64).abs() <= 1.0,
                    "{name}: {w}x{h} vs {n1}x{n2}"
                );
                // More than a dozen grey levels: cfht_megaprime_sa110 at full size holds only 17
                // distinct integer values between its 0.5 and 99.5 percentiles.
                let greys: HashSet<u8> = px
                    .chunks_exact(2)
                    .filter(|p| p[1] == 255)
                    .map(|p| p[0])
                    .collect();
                assert!(
                    greys.len() > 12,
                    "{name} at {max_side}: {} grey levels",
                    greys.len()
                );
            }
        }
    }

    #[test]
    fn preview_every_demo_spectrum() {
        for path in demo("spectra") {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            for (max_side, w, h) in [(1000u32, 1000usize, 500usize), (300, 300, 150)] {
                let png_bytes = preview_png(&bytes, None, max_side, u64::MAX)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let (pw, ph, color, px) = decode(&png_bytes);
                assert_eq!((pw, ph, color), (w, h, png::ColorType::Rgb), "{name}");
                let line = px
                    .chunks_exact(3)
                    .filter(|p| LINE_COLOURS.iter().any(|c| c == *p))
                    .count();
                // The curve crosses the plot at least once.
                assert!(line > w * 8 / 10, "{name}: {line} line pixels");
                let black = px.chunks_exact(3).filter(|p| *p == BLACK).count();
                assert!(black > 2 * (w + h) * 8 / 10, "{name}: no axes box");
            }
        }
    }

    #[test]
    fn preview_orientation_row_one_is_at_the_bottom() {
        // 8 x 4, a bright pixel at FITS (x=1, y=1) and a fainter one at (8, 4).
        let file = f32_image(8, 4, |x, y| match (x, y) {
            (0, 0) => 100.0,
            (7, 3) => 50.0,
            _ => (x + y) as f32 * 0.1,
        });
        let (w, h, _, px) = decode(&preview_png(&file, None, 64, u64::MAX).unwrap());
        assert_eq!((w, h), (8, 4));
        let grey = |x: usize, y: usize| px[(y * w + x) * 2];
        assert_eq!(grey(0, 3), 255, "row 1 must be the bottom row");
        // The second brightest pixel, FITS (8, 4), is top right.
        let second = (0..w * h)
            .filter(|&i| px[i * 2] != 255)
            .max_by_key(|&i| px[i * 2]);
        assert_eq!(second, Some(7), "row 4 must be the top row");
        assert!(grey(0, 0) < 128 && grey(7, 3) < 128);
    }

    #[test]
    fn preview_integer_scaling_blank_and_nan() {
        // BITPIX 16 with BZERO, BLANK at (1,1): transparent; values increase along x.
        let mut data = Vec::new();
        for y in 0..3i16 {
            for x in 0..30i16 {
                let v: i16 = if (x, y) == (0, 0) {
                    -32768
                } else {
                    x * 100 - 1000
                };
                data.extend_from_slice(&v.to_be_bytes());
            }
        }
        let file = fits_file(
            &[
                ("SIMPLE", "T"),
                ("BITPIX", "16"),
                ("NAXIS", "2"),
                ("NAXIS1", "30"),
                ("NAXIS2", "3"),
                ("BZERO", "32768"),
                ("BSCALE", "2.0"),
                ("BLANK", "-32768"),
            ],
            &data,
        );
        let (w, h, _, px) = decode(&preview_png(&file, Some(0), 100, u64::MAX).unwrap());
        assert_eq!((w, h), (30, 3));
        assert_eq!(px[(2 * w) * 2 + 1], 0, "BLANK is transparent (bottom-left)");
        assert!(px.chunks_exact(2).filter(|p| p[1] == 0).count() == 1);
        // Monotonic along x on the top row.
        let top: Vec<u8> = (0..w).map(|x| px[x * 2]).collect();
        assert!(top.windows(2).all(|p| p[0] <= p[1]), "{top:?}");
        assert!(top[0] < top[w - 1]);

        // NaN in a float image is transparent too.
        let file = f32_image(4, 4, |x, y| if x == y { f32::NAN } else { (x * y) as f32 });
        let (_, _, _, px) = decode(&preview_png(&file, None, 100, u64::MAX).unwrap());
        assert_eq!(px.chunks_exact(2).filter(|p| p[1] == 0).count(), 4);
    }

    #[test]
    fn preview_downsampling_keeps_aspect() {
        let file = f32_image(1000, 300, |x, y| ((x * 7 + y * 13) % 101) as f32);
        let (w, h, _, _) = decode(&preview_png(&file, None, 128, u64::MAX).unwrap());
        assert_eq!((w, h), (128, 38));
        let file = f32_image(3, 5000, |x, y| (x + y) as f32);
        let (w, h, _, _) = decode(&preview_png(&file, None, 100, u64::MAX).unwrap());
        assert_eq!((w, h), (1, 100));
    }

    #[test]
    fn preview_chooses_hdus() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/demo/images/hst_acs_candels_gn_3filters.fits");
        let bytes = std::fs::read(path).unwrap();
        for hdu in 1..=3 {
            let (w, h, _, _) = decode(&preview_png(&bytes, Some(hdu), 512, u64::MAX).unwrap());
            assert_eq!((w, h), (100, 100));
        }
        let e = preview_png(&bytes, Some(0), 512, u64::MAX)
            .unwrap_err()
            .to_string();
        assert!(e.contains("HDU 0 has no image or spectrum"), "{e}");
        let e = preview_png(&bytes, Some(7), 512, u64::MAX)
            .unwrap_err()
            .to_string();
        assert!(e.contains("HDU 7 does not exist"), "{e}");

        // A table HDU that is not a spectrum.
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/demo/images/dss_uks_1429-6241.fits.gz");
        let bytes = std::fs::read(path).unwrap();
        let e = preview_png(&bytes, Some(1), 512, u64::MAX)
            .unwrap_err()
            .to_string();
        assert!(e.contains("HDU 1 has no image or spectrum"), "{e}");

        // A 1-D spectrum HDU of SDSS chosen explicitly, and its second array (HDU 1).
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/demo/spectra/sdss_J220248.31+123656.3.fits");
        let bytes = std::fs::read(path).unwrap();
        for hdu in [0, 1] {
            let (w, h, c, _) = decode(&preview_png(&bytes, Some(hdu), 400, u64::MAX).unwrap());
            assert_eq!((w, h, c), (400, 200, png::ColorType::Rgb));
        }
    }

    #[test]
    fn preview_spectral_axes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/demo/spectra/keck_esi_q0100+13_flux.fits");
        let hdus = fits::hdus(&std::fs::read(path).unwrap()).unwrap();
        let x = spectral_axis(&hdus[0], hdus[0].axes()[0]);
        assert!((x[0] - 3812.0).abs() < 2.0 && (x[x.len() - 1] - 10932.0).abs() < 10.0);
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/demo/spectra/r.UVES.2011-08-11T232352.266-A01_0000.fits.gz");
        let file = maybe_gunzip(std::fs::read(path).unwrap(), u64::MAX).unwrap();
        let hdus = fits::hdus(&file).unwrap();
        let x = spectral_axis(&hdus[0], hdus[0].axes()[0]);
        assert!((x[0] - 3732.056).abs() < 0.01 && (x[x.len() - 1] - 5000.0).abs() < 1.0);

        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let iue = Columns::pick(&names(&[
            "ORDER", "NPTS", "LAMBDA", "DELTAW", "GROSS", "BACK", "NET", "ABNET", "EPSILONS",
        ]))
        .unwrap();
        assert_eq!(
            (iue.flux, iue.x, iue.step, iue.npts),
            (7, Some(2), Some(3), Some(1))
        );
        let arecibo = Columns::pick(&names(&["VHELIO", "FREQ", "FLUXDENS", "BASELINE"])).unwrap();
        assert_eq!((arecibo.flux, arecibo.x), (2, Some(0)));
        assert_eq!(Columns::pick(&names(&["RA", "DEC", "MAG"])), None);
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    }

    #[test]
    fn preview_malformed_input_is_an_error() {
        let good = f32_image(16, 16, |x, y| (x * y) as f32);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            (
                "not FITS",
                b"hello, this is not a FITS file at all".repeat(100),
            ),
            ("gzip garbage", vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5]),
            ("truncated", good[..good.len() - 2880].to_vec()),
            ("header only", good[..2880].to_vec()),
            (
                "huge NAXIS",
                fits_file(
                    &[
                        ("SIMPLE", "T"),
                        ("BITPIX", "-64"),
                        ("NAXIS", "3"),
                        ("NAXIS1", "4000000000"),
                        ("NAXIS2", "4000000000"),
                        ("NAXIS3", "4000000000"),
                    ],
                    &[0; 100],
                ),
            ),
            (
                "large NAXIS, short data",
                fits_file(
                    &[
                        ("SIMPLE", "T"),
                        ("BITPIX", "16"),
                        ("NAXIS", "2"),
                        ("NAXIS1", "100000"),
                        ("NAXIS2", "100000"),
                    ],
                    &[0; 5760],
                ),
            ),
            ("all NaN", f32_image(20, 10, |_, _| f32::NAN)),
            ("all infinite", f32_image(20, 10, |_, _| f32::INFINITY)),
            (
                "zero-size axis",
                fits_file(
                    &[
                        ("SIMPLE", "T"),
                        ("BITPIX", "8"),
                        ("NAXIS", "2"),
                        ("NAXIS1", "0"),
                        ("NAXIS2", "10"),
                    ],
                    &[],
                ),
            ),
            (
                "bad BITPIX",
                fits_file(
                    &[
                        ("SIMPLE", "T"),
                        ("BITPIX", "12"),
                        ("NAXIS", "2"),
                        ("NAXIS1", "2"),
                        ("NAXIS2", "2"),
                    ],
                    &[0; 6],
                ),
            ),
            (
                "NaN spectrum",
                fits_file(
                    &[
                        ("SIMPLE", "T"),
                        ("BITPIX", "-32"),
                        ("NAXIS", "1"),
                        ("NAXIS1", "100"),
                    ],
                    &f32::NAN.to_be_bytes().repeat(100),
                ),
            ),
        ];
        for (what, bytes) in cases {
            for hdu in [None, Some(0)] {
                match preview_png(&bytes, hdu, 256, u64::MAX) {
                    Err(Error::Source(msg)) => assert!(!msg.is_empty()),
                    Err(Error::Fits(e)) => assert!(!e.to_string().is_empty()),
                    other => panic!("{what}: expected a source error, got {other:?}"),
                }
            }
        }
        // Every truncation of a real gzipped and a plain file.
        for name in [
            "images/dss_uks_1429-6241.fits.gz",
            "spectra/iue_spectrum_pyvo.fits",
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../data/demo")
                .join(name);
            let bytes = std::fs::read(path).unwrap();
            for cut in (0..bytes.len()).step_by(997) {
                let _ = preview_png(&bytes[..cut], None, 128, u64::MAX);
            }
        }
        assert!(preview_png(&good, None, 8, u64::MAX).is_err());
    }

    #[test]
    fn preview_stack_of_spectra() {
        // DESI layout: a wavelength array, then a 400 x 3 flux image (3 spectra).
        let mut file = fits_file(&[("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "0")], &[]);
        let wave: Vec<u8> = (0..400)
            .flat_map(|i| (3600.0 + 2.0 * i as f64).to_be_bytes())
            .collect();
        let ext = |name: &str, axes: &[(&str, &str)], bitpix: &str, data: &[u8]| {
            let mut cards = vec![("XTENSION", "'IMAGE   '"), ("BITPIX", bitpix)];
            cards.push(("NAXIS", ["0", "1", "2", "3"][axes.len()]));
            cards.extend_from_slice(axes);
            cards.extend_from_slice(&[("PCOUNT", "0"), ("GCOUNT", "1"), ("EXTNAME", name)]);
            fits_file(&cards, data)
        };
        file.extend(ext("'B_WAVELENGTH'", &[("NAXIS1", "400")], "-64", &wave));
        let flux: Vec<u8> = (0..3)
            .flat_map(|k| (0..400).map(move |i| ((i * (k + 1)) % 37) as f32 + 10.0 * k as f32))
            .flat_map(f32::to_be_bytes)
            .collect();
        file.extend(ext(
            "'B_FLUX  '",
            &[("NAXIS1", "400"), ("NAXIS2", "3")],
            "-32",
            &flux,
        ));
        // And a 400 x 11 x 3 cube after it (DESI resolution matrices), not chosen.
        file.extend(ext(
            "'B_RESOLUTION'",
            &[("NAXIS1", "400"), ("NAXIS2", "11"), ("NAXIS3", "3")],
            "8",
            &[1; 400 * 11 * 3],
        ));
        let hdus = fits::hdus(&file).unwrap();
        assert_eq!(classify(&hdus[3]), Some(What::Image));
        assert!(is_axis_array(&hdus[1]));
        assert_eq!(classify(&hdus[2]), Some(What::Stack));
        let curves = stack_curves(&file, &hdus, &hdus[2]).unwrap();
        assert_eq!(curves.len(), 3);
        assert_eq!((curves[0].0[0], curves[0].0[399]), (3600.0, 4398.0));
        for hdu in [None, Some(2)] {
            let (w, h, c, px) = decode(&preview_png(&file, hdu, 600, u64::MAX).unwrap());
            assert_eq!((w, h, c), (600, 300, png::ColorType::Rgb));
            for colour in &LINE_COLOURS[..3] {
                assert!(px.chunks_exact(3).filter(|p| p == colour).count() > 100);
            }
        }
    }

    #[test]
    fn preview_constant_image_is_grey() {
        let file = f32_image(10, 10, |_, _| 3.0);
        let (_, _, _, px) = decode(&preview_png(&file, None, 64, u64::MAX).unwrap());
        assert!(px.chunks_exact(2).all(|p| p == [128, 255]));
    }

    #[test]
    fn preview_of_a_large_float_image_is_shrunk() {
        let file = f32_image(1024, 1024, |x, y| {
            let (dx, dy) = (x as f32 - 500.0, y as f32 - 300.0);
            100.0 + ((x * 31 + y * 17) % 23) as f32 + 5000.0 / (1.0 + (dx * dx + dy * dy) / 50.0)
        });
        let png_bytes = preview_png(&file, None, 512, u64::MAX).unwrap();
        let (w, h, _, _) = decode(&png_bytes);
        assert_eq!((w, h), (512, 512));
    }
}
