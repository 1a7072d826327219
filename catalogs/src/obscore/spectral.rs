//! Spectral coverage: WCS spectral axes, table columns, filter names → wavelengths in metres.

use super::celestial::Keys;

/// Speed of light, m/s.
pub(crate) const C: f64 = 299_792_458.0;
/// h·c in eV·m.
const HC_EV_M: f64 = 1.239_841_984e-6;

/// What a spectral quantity is, and its factor to SI (m, Hz, m/s, eV).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Quantity {
    /// Wavelength; factor to metres.
    Wave(f64),
    /// Frequency; factor to Hz.
    Freq(f64),
    /// Energy; factor to eV.
    Energy(f64),
    /// Velocity; factor to m/s.
    Velocity(f64),
}

/// Parses a spectral unit string (FITS/VOUnit and the usual variants).
pub(crate) fn unit(u: &str) -> Option<Quantity> {
    let u = u.trim().trim_matches(|c| c == '[' || c == ']').trim();
    let l = u.to_ascii_lowercase();
    Some(match l.as_str() {
        "m" | "meter" | "meters" | "metre" | "metres" => Quantity::Wave(1.0),
        "cm" => Quantity::Wave(1e-2),
        "mm" => Quantity::Wave(1e-3),
        "um" | "µm" | "micron" | "microns" | "mum" => Quantity::Wave(1e-6),
        "nm" | "nanometer" | "nanometers" => Quantity::Wave(1e-9),
        "a" | "aa" | "ang" | "angs" | "angstrom" | "angstroms" | "0.1nm" | "å" => {
            Quantity::Wave(1e-10)
        }
        "hz" => Quantity::Freq(1.0),
        "khz" => Quantity::Freq(1e3),
        "mhz" => Quantity::Freq(1e6),
        "ghz" => Quantity::Freq(1e9),
        "thz" => Quantity::Freq(1e12),
        "ev" => Quantity::Energy(1.0),
        "kev" => Quantity::Energy(1e3),
        "mev" => Quantity::Energy(1e6),
        "gev" => Quantity::Energy(1e9),
        "tev" => Quantity::Energy(1e12),
        "m/s" | "m.s-1" | "m s-1" => Quantity::Velocity(1.0),
        "km/s" | "km.s-1" | "km s-1" | "kms-1" => Quantity::Velocity(1e3),
        _ => {
            // `Mhz` and friends are caught above; `MHz` vs `mHz` is not worth the distinction.
            return None;
        }
    })
}

/// Converts a value of `q` to a wavelength in metres (`rest_hz` needed for velocities).
pub(crate) fn to_wavelength(
    q: Quantity,
    v: f64,
    kind: VelocityKind,
    rest_hz: Option<f64>,
) -> Option<f64> {
    let w = match q {
        Quantity::Wave(f) => v * f,
        Quantity::Freq(f) => C / (v * f),
        Quantity::Energy(f) => HC_EV_M / (v * f),
        Quantity::Velocity(f) => {
            let nu0 = rest_hz?;
            let v = v * f;
            match kind {
                VelocityKind::Radio => C / (nu0 * (1.0 - v / C)),
                VelocityKind::Optical => (C / nu0) * (1.0 + v / C),
                VelocityKind::Relativistic => C / (nu0 * ((C - v) / (C + v)).sqrt()),
            }
        }
    };
    (w.is_finite() && w > 0.0).then_some(w)
}

/// Velocity conventions (FITS WCS Paper III).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum VelocityKind {
    Radio,
    Optical,
    Relativistic,
}

/// A spectral axis of an image HDU.
#[derive(Debug, Clone)]
pub(crate) struct SpectralAxis {
    /// Pixels along it (1 when degenerate or beyond NAXIS).
    pub len: usize,
    /// Wavelength range in metres.
    pub em: Option<(f64, f64)>,
    /// `em.wl`, `em.freq` or `em.energy`.
    pub ucd: &'static str,
}

/// The rest frequency in Hz, from RESTFRQ/RESTFREQ or RESTWAV.
fn rest_frequency(h: &impl Keys) -> Option<f64> {
    h.num("RESTFRQ")
        .or_else(|| h.num("RESTFREQ"))
        .filter(|f| *f > 0.0)
        .or_else(|| h.num("RESTWAV").filter(|w| *w > 0.0).map(|w| C / w))
}

/// Linear world coordinate of pixel `p` along axis `k`.
fn linear(h: &impl Keys, k: usize, p: f64) -> Option<f64> {
    let crval = h.num(&format!("CRVAL{k}"))?;
    let crpix = h.num(&format!("CRPIX{k}")).unwrap_or(1.0);
    let cdelt = h
        .num(&format!("CD{k}_{k}"))
        .or_else(|| {
            let pc = h.num(&format!("PC{k}_{k}")).unwrap_or(1.0);
            h.num(&format!("CDELT{k}")).map(|d| d * pc)
        })
        .unwrap_or(1.0);
    Some(crval + (p - crpix) * cdelt)
}

/// Finds the spectral axis among CTYPE1..max(NAXIS, 4) of an image (cubes, or the degenerate
/// FREQ axis of radio images) and its wavelength range over the pixel edges. Warnings for
/// what cannot be converted are pushed to `warn`.
pub(crate) fn image_axis(
    h: &impl Keys,
    axes: &[usize],
    warn: &mut Vec<String>,
) -> Option<SpectralAxis> {
    for k in 1..=axes.len().max(4) {
        let Some(ctype) = h.text(&format!("CTYPE{k}")) else {
            continue;
        };
        let ct = ctype.trim().to_ascii_uppercase();
        let head = ct.get(..4).unwrap_or(ct.as_str());
        let unit_key = h
            .text(&format!("CUNIT{k}"))
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let (default, vel, ucd) = match head {
            "FREQ" => (Quantity::Freq(1.0), VelocityKind::Radio, "em.freq"),
            "WAVE" | "AWAV" | "LAMB" => (Quantity::Wave(1.0), VelocityKind::Radio, "em.wl"),
            "ENER" => (Quantity::Energy(1.0), VelocityKind::Radio, "em.energy"),
            "VRAD" => (Quantity::Velocity(1.0), VelocityKind::Radio, "em.freq"),
            "VOPT" | "FELO" => (Quantity::Velocity(1.0), VelocityKind::Optical, "em.wl"),
            "VELO" => (
                Quantity::Velocity(1.0),
                VelocityKind::Relativistic,
                "em.freq",
            ),
            _ => continue,
        };
        let len = axes.get(k - 1).copied().unwrap_or(1).max(1);
        let q = match unit_key {
            Some(u) => match unit(u) {
                Some(q) => q,
                None => {
                    warn.push(format!("spectral axis {k} ({ctype}): unknown unit '{u}'"));
                    return Some(SpectralAxis { len, em: None, ucd });
                }
            },
            None => default,
        };
        if ct.len() > 4
            && ct.get(4..5) == Some("-")
            && !ct.ends_with("-LSR")
            && !ct.ends_with("-HEL")
            && !ct.ends_with("-OBS")
            && !ct.ends_with("-LSRK")
            && !ct.ends_with("-LSRD")
            && !ct.ends_with("-BAR")
            && !ct.ends_with("-TOP")
            && !ct.ends_with("-GEO")
        {
            warn.push(format!(
                "spectral axis {k} ({ctype}): non-linear spectral axes are not interpreted"
            ));
            return Some(SpectralAxis { len, em: None, ucd });
        }
        let rest = rest_frequency(h);
        if matches!(q, Quantity::Velocity(_)) && rest.is_none() {
            warn.push(format!(
                "spectral axis {k} ({ctype}) is a velocity but the header gives no rest frequency \
                 (RESTFRQ): em_min/em_max left NULL"
            ));
            return Some(SpectralAxis { len, em: None, ucd });
        }
        let degenerate = len == 1;
        let (a, b) = if degenerate {
            // One channel: its width is CDELT when that is sensible.
            let c = linear(h, k, 1.0);
            let d = h.num(&format!("CDELT{k}")).map(f64::abs);
            match (c, d) {
                (Some(c), Some(d)) if d > 0.0 && d < c.abs() && d != 1.0 => {
                    (c - d / 2.0, c + d / 2.0)
                }
                (Some(c), _) => (c, c),
                _ => continue,
            }
        } else {
            match (linear(h, k, 0.5), linear(h, k, len as f64 + 0.5)) {
                (Some(a), Some(b)) => (a, b),
                _ => continue,
            }
        };
        let wa = to_wavelength(q, a, vel, rest);
        let wb = to_wavelength(q, b, vel, rest);
        let em = match (wa, wb) {
            (Some(x), Some(y)) => Some((x.min(y), x.max(y))),
            _ => {
                warn.push(format!(
                    "spectral axis {k} ({ctype}): values {a}..{b} do not convert to wavelengths"
                ));
                None
            }
        };
        return Some(SpectralAxis { len, em, ucd });
    }
    None
}

/// The wavelength range of a 1-D spectrum stored as an image (axis 1), over the pixel edges.
/// Handles linear axes (`WAVE`, `WAVELENGTH [Ang]`, `LINEAR`, `LAMBDA`), IRAF/SDSS log10
/// axes (`DC-FLAG = 1`, `COEFF0/COEFF1`), FITS `WAVE-LOG` and `FREQ`.
pub(crate) fn spectrum_axis(h: &impl Keys, n: usize, warn: &mut Vec<String>) -> Option<(f64, f64)> {
    let ctype = h
        .text("CTYPE1")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let ct = ctype.to_ascii_uppercase();
    // Pixel → axis value.
    let (a, b, log10) = if let (Some(c0), Some(c1)) = (h.num("COEFF0"), h.num("COEFF1")) {
        // SDSS: log10(λ/Å) = COEFF0 + COEFF1 · (p − 1)
        (c0 + c1 * -0.5, c0 + c1 * (n as f64 - 0.5), true)
    } else {
        let a = linear(h, 1, 0.5)?;
        let b = linear(h, 1, n as f64 + 0.5)?;
        let log10 = h.num("DC-FLAG") == Some(1.0) || ct.contains("LOG10");
        (a, b, log10)
    };
    // Unit: CUNIT1, then `[unit]` in CTYPE1, then IRAF's WAT1 `units=`.
    let bracket = ct.find('[').and_then(|i| {
        ct[i + 1..]
            .find(']')
            .map(|j| ctype[i + 1..i + 1 + j].to_string())
    });
    let wat = h.text("WAT1_001").and_then(|w| {
        w.split_whitespace()
            .find_map(|t| t.strip_prefix("units="))
            .map(str::to_string)
    });
    let unit_text = h
        .text("CUNIT1")
        .map(str::to_string)
        .filter(|u| !u.trim().is_empty())
        .or(bracket)
        .or(wat);
    let head = ct.get(..4).unwrap_or(ct.as_str());
    let q = match unit_text.as_deref().map(unit) {
        Some(Some(q)) => q,
        Some(None) => {
            warn.push(format!(
                "spectral axis (CTYPE1 = '{ctype}'): unknown unit '{}'",
                unit_text.unwrap_or_default()
            ));
            return None;
        }
        None => match head {
            "FREQ" => Quantity::Freq(1.0),
            "WAVE" | "AWAV" if !log10 && a.abs() < 1e-3 => Quantity::Wave(1.0),
            _ => {
                // No unit anywhere: optical spectra in Ångström are by far the commonest.
                let mid = if log10 {
                    10f64.powf((a + b) / 2.0)
                } else {
                    (a + b) / 2.0
                };
                if (900.0..=300_000.0).contains(&mid) {
                    warn.push(format!(
                        "spectral axis (CTYPE1 = '{ctype}') has no unit: Ångström assumed"
                    ));
                    Quantity::Wave(1e-10)
                } else {
                    warn.push(format!(
                        "spectral axis (CTYPE1 = '{ctype}') has no unit and values {a}..{b}: \
                         em_min/em_max left NULL"
                    ));
                    return None;
                }
            }
        },
    };
    let (a, b) = if log10 {
        (10f64.powf(a), 10f64.powf(b))
    } else if ct.starts_with("WAVE-LOG") {
        // Paper III: λ = λr · exp(w / λr)
        let r = h.num("CRVAL1")?;
        (r * (a / r).exp(), r * (b / r).exp())
    } else {
        (a, b)
    };
    let wa = to_wavelength(q, a, VelocityKind::Radio, None)?;
    let wb = to_wavelength(q, b, VelocityKind::Radio, None)?;
    Some((wa.min(wb), wa.max(wb)))
}

/// Approximate band limits (metres) of common filters, by the filter keyword's value.
pub(crate) fn filter_band(name: &str) -> Option<(f64, f64)> {
    let t = name.trim();
    if t.is_empty() {
        return None;
    }
    let um = |a: f64, b: f64| Some((a * 1e-6, b * 1e-6));
    let up = t.to_ascii_uppercase();
    // HST-style FnnnW/M/N/LP (nnn in nm below 1000 nm, WFC3/IR F1nn in 10 nm).
    let hst = up.split(['_', ';', ',', ' ', '.']).find(|p| {
        p.len() >= 5
            && p.starts_with('F')
            && p.get(1..4)
                .is_some_and(|d| d.bytes().all(|c| c.is_ascii_digit()))
    });
    if let Some(f) = hst {
        let num: f64 = f[1..4].parse().ok()?;
        let kind = &f[4..];
        // WFC3/IR and NICMOS-like names count in 10 nm.
        const IR: [&str; 16] = [
            "F105W", "F110W", "F125W", "F140W", "F160W", "F098M", "F127M", "F139M", "F153M",
            "F126N", "F128N", "F130N", "F132N", "F164N", "F167N", "F187N",
        ];
        let centre = if IR.contains(&f) { num * 10.0 } else { num } * 1e-9;
        return match kind {
            "W" => Some((centre * 0.87, centre * 1.13)),
            "M" => Some((centre * 0.95, centre * 1.05)),
            "N" => Some((centre * 0.99, centre * 1.01)),
            "LP" => Some((centre, centre * 1.25)),
            _ => None,
        };
    }
    // First token, before dots/underscores (CFHT `g.MP9401`, `r_SDSS`, `Ks-band`…).
    let key = t
        .split(['.', '_', ' ', '-', '\''])
        .find(|s| !s.is_empty())
        .unwrap_or(t);
    match key {
        "u" | "sdss_u" => um(0.30, 0.40),
        "g" => um(0.40, 0.55),
        "r" => um(0.55, 0.69),
        "i" => um(0.69, 0.82),
        "z" => um(0.82, 1.10),
        "U" => um(0.32, 0.40),
        "B" => um(0.39, 0.49),
        "V" => um(0.50, 0.60),
        "R" | "Rc" => um(0.57, 0.72),
        "I" | "Ic" => um(0.71, 0.90),
        "Y" => um(0.97, 1.07),
        "J" | "j" => um(1.11, 1.36),
        "H" | "h" => um(1.50, 1.80),
        "K" | "k" | "Ks" | "KS" | "ks" | "Kshort" => um(2.00, 2.32),
        "L" => um(3.4, 4.1),
        "W1" => um(2.8, 3.8),
        "W2" => um(4.1, 5.2),
        "W3" => um(7.5, 16.5),
        "W4" => um(19.5, 27.5),
        _ => None,
    }
}
