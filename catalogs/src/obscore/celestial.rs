//! The celestial WCS of an image HDU: pixel → ICRS, and the image footprint.
//!
//! Projections are done by the CDS `wcs` crate (TAN, SIN, ZPN, CAR, AIT, SFL, … and SIP
//! distortion). Its pixel coordinates are FITS 1-based (pixel *p* covers *p* − 0.5 … *p* + 0.5;
//! `CRPIXi` is subtracted as is), which was checked against astropy's `pixel_to_world(p − 1)`.
//! What the crate does not do is done here:
//!
//! * axis selection: the two celestial axes are found among all CTYPEn (any order, degenerate
//!   spectral/Stokes axes around them ignored) and handed to the crate as axes 1 and 2;
//! * frames: the crate is always given an equatorial `RA---xxx` CTYPE so that it returns the
//!   native frame's coordinates untouched; galactic, FK5 (any equinox) and FK4 (any equinox,
//!   E-terms removed) are converted to ICRS here, with the matrices astropy uses (the galactic and
//!   FK5 → ICRS matrices were computed with astropy 8.0.2 by transforming the basis vectors);
//! * the DSS plate solution (`PLTRAH`, `AMDXn`, … as in Digitized Sky Survey cutouts), which
//!   has no CTYPE at all: implemented after WCSTools' `dsspos` (the polynomial wcslib translates
//!   to TPD), and checked against astropy.
//!
//! The crate indexes string slices of CTYPE1 and may misbehave on odd headers, so CTYPEs are
//! validated first and every call into it runs under `catch_unwind`: a bad header is a warning.

use std::f64::consts::PI;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Read access to header keywords (implemented for [`votable::fits::Hdu`]).
pub(crate) trait Keys {
    /// A numeric value (also from a quoted number).
    fn num(&self, key: &str) -> Option<f64>;
    /// A string value.
    fn text(&self, key: &str) -> Option<&str>;
    /// Whether the header holds a DSS plate solution.
    fn has_dss(&self) -> bool {
        self.num("PLTRAH").is_some() && self.num("AMDX1").is_some() && self.num("PPO3").is_some()
    }
}

type V3 = [f64; 3];
type M3 = [[f64; 3]; 3];

/// Unit vector of (lon, lat) in degrees.
pub(crate) fn vec_of(lon: f64, lat: f64) -> V3 {
    let (sl, cl) = lon.to_radians().sin_cos();
    let (sb, cb) = lat.to_radians().sin_cos();
    [cb * cl, cb * sl, sb]
}

/// (lon in [0, 360), lat) in degrees of a vector.
pub(crate) fn lonlat_of(v: &V3) -> (f64, f64) {
    let lat = v[2].atan2((v[0] * v[0] + v[1] * v[1]).sqrt()).to_degrees();
    let mut lon = v[1].atan2(v[0]).to_degrees();
    if lon < 0.0 {
        lon += 360.0;
    }
    if lon >= 360.0 {
        lon -= 360.0;
    }
    (lon, lat)
}

fn mul(m: &M3, v: &V3) -> V3 {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

fn normalise(v: V3) -> V3 {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    [v[0] / n, v[1] / n, v[2] / n]
}

pub(crate) fn dot(a: &V3, b: &V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn cross(a: &V3, b: &V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Angle between two unit vectors, in degrees (accurate at small angles).
pub(crate) fn angle(a: &V3, b: &V3) -> f64 {
    let c = cross(a, b);
    let s = (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt();
    s.atan2(dot(a, b)).to_degrees()
}

/// Galactic → ICRS (astropy 8.0.2, `Galactic` → `ICRS` applied to the basis vectors).
const GAL_TO_ICRS: M3 = [
    [
        -0.05487565771259163,
        0.4941094371927268,
        -0.8676661375596576,
    ],
    [
        -0.8734370519556159,
        -0.4448297212232952,
        -0.19807633727300053,
    ],
    [-0.48383507361671546, 0.7469821839866676, 0.4559838136873016],
];

/// FK5 J2000 → ICRS, the frame bias (astropy 8.0.2, from USNO circular 179).
const FK5_TO_ICRS: M3 = [
    [
        0.999_999_999_999_992,
        1.110_223_371_627_055_8e-7,
        4.411_803_424_865_382e-8,
    ],
    [
        -1.110_223_329_055_108_6e-7,
        0.999_999_999_999_988_8,
        -9.647_792_747_341_901e-8,
    ],
    [
        -4.411_804_498_096_771_5e-8,
        9.647_792_246_010_13e-8,
        0.999_999_999_999_994_2,
    ],
];

/// FK4 (no E-terms) B1950 → FK5 J2000 for a zero-proper-motion source observed at B1950
/// (Standish 1982; astropy's `_B1950_TO_J2000_M`).
const FK4_TO_FK5: M3 = [
    [0.9999256794956877, -0.0111814832204662, -0.0048590038153592],
    [0.0111814832391717, 0.9999374848933135, -0.0000271625947142],
    [0.0048590037723143, -0.0000271702937440, 0.9999881946023742],
];

/// Correction of [`FK4_TO_FK5`] per century of observation epoch after B1950 (the FK4
/// equinox drifts; astropy's `_FK4_CORR`, used with the FK4 equinox as the epoch as astropy
/// does by default).
const FK4_CORR: M3 = [
    [-0.0026455262e-6, -1.1539918689e-6, 2.1111346190e-6],
    [1.1540628161e-6, -0.0129042997e-6, 0.0236021478e-6],
    [-2.1112979048e-6, -0.0056024448e-6, 0.0102587734e-6],
];

/// The E-terms of aberration at B1950 (astropy's `fk4_e_terms`). They change by parts in 10⁵
/// per century, so the B1950 vector serves every FK4 equinox.
const E_TERMS: V3 = [-1.62557415e-06, -3.19190537e-07, -1.38429067e-07];

/// Rotation about axis 0 (x), 1 (y) or 2 (z) by `a` radians, astropy's `rotation_matrix`
/// convention (the frame rotates).
fn rot(axis: usize, a: f64) -> M3 {
    let (s, c) = a.sin_cos();
    match axis {
        0 => [[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]],
        1 => [[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]],
        _ => [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]],
    }
}

fn mat_mul(a: &M3, b: &M3) -> M3 {
    let mut m = [[0.0; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

/// Precession z·θ·ζ: R_z(−z) R_y(θ) R_z(−ζ), angles in arcsec.
fn precession(zeta: f64, z: f64, theta: f64) -> M3 {
    let r = |a: f64| (a / 3600.0).to_radians();
    mat_mul(
        &mat_mul(&rot(2, -r(z)), &rot(1, r(theta))),
        &rot(2, -r(zeta)),
    )
}

/// Precession (IAU 2006, Capitaine et al. 2003, without frame bias) from J2000 to Julian
/// epoch `to`.
fn precession_from_j2000(to: f64) -> M3 {
    let t = (to - 2000.0) / 100.0;
    let p = |c: [f64; 6]| c.iter().rev().fold(0.0, |acc, k| acc * t + k);
    let zeta = p([
        2.650545,
        2306.083227,
        0.2988499,
        0.01801828,
        -0.000005971,
        -0.0000003173,
    ]);
    let z = p([
        -2.650545,
        2306.077181,
        1.0927348,
        0.01826837,
        -0.000028596,
        -0.0000002904,
    ]);
    let theta = p([
        0.0,
        2004.191903,
        -0.4294934,
        -0.04182264,
        -0.000007089,
        -0.0000001274,
    ]);
    precession(zeta, z, theta)
}

fn transpose(m: &M3) -> M3 {
    let mut t = [[0.0; 3]; 3];
    for (i, row) in m.iter().enumerate() {
        for (j, x) in row.iter().enumerate() {
            t[j][i] = *x;
        }
    }
    t
}

/// FK5 precession between Julian epochs (as astropy's FK5 frame: IAU 2006 through J2000).
fn precess_fk5(from: f64, to: f64) -> M3 {
    mat_mul(
        &precession_from_j2000(to),
        &transpose(&precession_from_j2000(from)),
    )
}

/// FK4 precession (Newcomb, as astropy's `_precession_matrix_besselian`) between Besselian
/// epochs.
fn precess_fk4(from: f64, to: f64) -> M3 {
    let t1 = (from - 1850.0) / 1000.0;
    let t2 = (to - 1850.0) / 1000.0;
    let dt = t2 - t1;
    let poly = |c3: f64, c2: f64, c1: f64| ((c3 * dt + c2) * dt + c1) * dt;
    let zeta = poly(
        17.995,
        30.240 - 0.27 * t1,
        23035.545 + 139.720 * t1 + 0.060 * t1 * t1,
    );
    let z = poly(
        18.325,
        109.480 + 0.39 * t1,
        23035.545 + 139.720 * t1 + 0.060 * t1 * t1,
    );
    let theta = poly(
        -41.8,
        -42.65 - 0.37 * t1,
        20051.12 - 85.29 * t1 - 0.37 * t1 * t1,
    );
    precession(zeta, z, theta)
}

/// A celestial reference frame that can be brought to ICRS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Frame {
    Icrs,
    /// FK5 at a Julian equinox.
    Fk5(f64),
    /// FK4 at a Besselian equinox (`true`: with E-terms, i.e. `FK4`; `false`: `FK4-NO-E`).
    Fk4(f64, bool),
    Galactic,
}

impl Frame {
    /// The equatorial frame of a header (RADESYS/RADECSYS, EQUINOX/EPOCH), with the FITS WCS
    /// Paper II defaults. `Err` for a frame that cannot be converted (GAPPT, unknown).
    pub(crate) fn equatorial(h: &impl Keys, suffix: &str) -> Result<Frame, String> {
        let sys = h
            .text(&format!("RADESYS{suffix}"))
            .or_else(|| h.text("RADECSYS"))
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty());
        let equinox = h
            .num(&format!("EQUINOX{suffix}"))
            .or_else(|| h.num("EPOCH"))
            .filter(|e| e.is_finite() && *e > 0.0);
        Ok(match (sys.as_deref(), equinox) {
            (Some("ICRS"), _) => Frame::Icrs,
            (Some("FK5"), e) => Frame::Fk5(e.unwrap_or(2000.0)),
            (Some("FK4"), e) => Frame::Fk4(e.unwrap_or(1950.0), true),
            (Some("FK4-NO-E"), e) => Frame::Fk4(e.unwrap_or(1950.0), false),
            (Some(other), _) => {
                return Err(format!(
                    "reference frame RADESYS = '{other}' is not supported"
                ))
            }
            (None, None) => Frame::Icrs,
            (None, Some(e)) if e < 1984.0 => Frame::Fk4(e, true),
            (None, Some(e)) => Frame::Fk5(e),
        })
    }

    /// Converts a unit vector in this frame to ICRS.
    pub(crate) fn to_icrs(self, v: &V3) -> V3 {
        match self {
            Frame::Icrs => *v,
            Frame::Galactic => normalise(mul(&GAL_TO_ICRS, v)),
            Frame::Fk5(eq) => {
                let v = if (eq - 2000.0).abs() > 1e-9 {
                    mul(&precess_fk5(eq, 2000.0), v)
                } else {
                    *v
                };
                normalise(mul(&FK5_TO_ICRS, &v))
            }
            Frame::Fk4(eq, eterms) => {
                let mut r = *v;
                if eterms {
                    let a = E_TERMS;
                    let d = dot(&a, &r);
                    r = normalise([
                        r[0] - a[0] + d * r[0],
                        r[1] - a[1] + d * r[1],
                        r[2] - a[2] + d * r[2],
                    ]);
                }
                if (eq - 1950.0).abs() > 1e-9 {
                    r = mul(&precess_fk4(eq, 1950.0), &r);
                }
                // Besselian epoch → Julian years after 1950 for the drift term.
                let t = (1950.0 + (eq - 1950.0) * 365.242198781 / 365.25 - 1950.0) / 100.0;
                let mut b = FK4_TO_FK5;
                for (row, corr) in b.iter_mut().zip(FK4_CORR.iter()) {
                    for (x, c) in row.iter_mut().zip(corr.iter()) {
                        *x += c * t;
                    }
                }
                normalise(mul(&FK5_TO_ICRS, &mul(&b, &r)))
            }
        }
    }

    /// Converts (lon, lat) in degrees to ICRS.
    pub(crate) fn lonlat_to_icrs(self, lon: f64, lat: f64) -> (f64, f64) {
        lonlat_of(&self.to_icrs(&vec_of(lon, lat)))
    }
}

/// DSS plate solution (WCSTools `dsspos`).
#[derive(Debug, Clone)]
struct Dss {
    ra0: f64,
    dec0: f64,
    cnpix: (f64, f64),
    pixel_size: (f64, f64),
    ppo3: f64,
    ppo6: f64,
    amdx: [f64; 13],
    amdy: [f64; 13],
}

impl Dss {
    fn from_header(h: &impl Keys) -> Option<Dss> {
        let ra0 = 15.0
            * (h.num("PLTRAH")?
                + h.num("PLTRAM").unwrap_or(0.0) / 60.0
                + h.num("PLTRAS").unwrap_or(0.0) / 3600.0);
        let sign = if h.text("PLTDECSN").map(str::trim) == Some("-") {
            -1.0
        } else {
            1.0
        };
        let dec0 = sign
            * (h.num("PLTDECD")?
                + h.num("PLTDECM").unwrap_or(0.0) / 60.0
                + h.num("PLTDECS").unwrap_or(0.0) / 3600.0);
        let mut amdx = [0.0; 13];
        let mut amdy = [0.0; 13];
        for k in 0..13 {
            amdx[k] = h.num(&format!("AMDX{}", k + 1)).unwrap_or(0.0);
            amdy[k] = h.num(&format!("AMDY{}", k + 1)).unwrap_or(0.0);
        }
        if amdx[0] == 0.0 || amdy[0] == 0.0 {
            return None;
        }
        Some(Dss {
            ra0: ra0.to_radians(),
            dec0: dec0.to_radians(),
            cnpix: (
                h.num("CNPIX1").unwrap_or(0.0),
                h.num("CNPIX2").unwrap_or(0.0),
            ),
            pixel_size: (h.num("XPIXELSZ")?, h.num("YPIXELSZ")?),
            ppo3: h.num("PPO3")?,
            ppo6: h.num("PPO6")?,
            amdx,
            amdy,
        })
    }

    /// FITS 1-based pixel → (RA, Dec) in degrees, in the plate's frame.
    fn unproj(&self, px: f64, py: f64) -> Option<(f64, f64)> {
        let x = px + self.cnpix.0 - 0.5;
        let y = py + self.cnpix.1 - 0.5;
        let xmm = (self.ppo3 - x * self.pixel_size.0) / 1000.0;
        let ymm = (y * self.pixel_size.1 - self.ppo6) / 1000.0;
        let (x2, y2) = (xmm * xmm, ymm * ymm);
        let r2 = x2 + y2;
        let a = &self.amdx;
        let xi = a[0] * xmm
            + a[1] * ymm
            + a[2]
            + a[3] * x2
            + a[4] * xmm * ymm
            + a[5] * y2
            + a[6] * r2
            + a[7] * x2 * xmm
            + a[8] * x2 * ymm
            + a[9] * xmm * y2
            + a[10] * y2 * ymm
            + a[11] * xmm * r2
            + a[12] * xmm * r2 * r2;
        let b = &self.amdy;
        let eta = b[0] * ymm
            + b[1] * xmm
            + b[2]
            + b[3] * y2
            + b[4] * xmm * ymm
            + b[5] * x2
            + b[6] * r2
            + b[7] * y2 * ymm
            + b[8] * y2 * xmm
            + b[9] * ymm * x2
            + b[10] * x2 * xmm
            + b[11] * ymm * r2
            + b[12] * ymm * r2 * r2;
        let arcsec = 180.0 * 3600.0 / PI;
        let (xi, eta) = (xi / arcsec, eta / arcsec);
        let (ctan, ccos) = (self.dec0.tan(), self.dec0.cos());
        let raoff = (xi / ccos).atan2(1.0 - eta * ctan);
        let mut ra = (raoff + self.ra0).to_degrees();
        if ra < 0.0 {
            ra += 360.0;
        }
        let dec = (raoff.cos() * ((eta + ctan) / (1.0 - eta * ctan)))
            .atan()
            .to_degrees();
        (ra.is_finite() && dec.is_finite()).then_some((ra.rem_euclid(360.0), dec))
    }
}

enum Mapping {
    Crate(Box<wcs::WCS>),
    Dss(Box<Dss>),
}

/// A celestial WCS: FITS 1-based pixel coordinates along the longitude and latitude pixel
/// axes → ICRS.
pub(crate) struct CelestialWcs {
    mapping: Mapping,
    pub frame: Frame,
    /// Pixels along the longitude axis and along the latitude axis.
    pub size: (usize, usize),
    /// Projection code (`TAN`, `SIN`, …, `DSS` for a plate solution).
    pub projection: String,
    /// SIP distortion, applied before the crate's linear transformation.
    sip: Option<Sip>,
}

/// SIP distortion (Shupe et al. 2005): pixel offsets u, v from CRPIX become
/// u + Σ A_p_q u^p v^q, v + Σ B_p_q u^p v^q.
#[derive(Debug, Clone)]
struct Sip {
    crpix: (f64, f64),
    /// (p, q, A_p_q)
    a: Vec<(i32, i32, f64)>,
    b: Vec<(i32, i32, f64)>,
}

impl Sip {
    fn from_header(h: &impl Keys) -> Result<Sip, String> {
        let coeffs = |name: &str| -> Result<Vec<(i32, i32, f64)>, String> {
            let order = h
                .num(&format!("{name}_ORDER"))
                .ok_or_else(|| format!("SIP: {name}_ORDER is missing"))?;
            if !(0.0..=9.0).contains(&order) {
                return Err(format!("SIP: {name}_ORDER = {order} is out of range"));
            }
            let order = order as i32;
            let mut c = Vec::new();
            for p in 0..=order {
                for q in 0..=(order - p) {
                    if let Some(v) = h.num(&format!("{name}_{p}_{q}")).filter(|v| *v != 0.0) {
                        if !v.is_finite() {
                            return Err(format!("SIP: {name}_{p}_{q} is not finite"));
                        }
                        c.push((p, q, v));
                    }
                }
            }
            Ok(c)
        };
        Ok(Sip {
            crpix: (
                h.num("CRPIX1").unwrap_or(0.0),
                h.num("CRPIX2").unwrap_or(0.0),
            ),
            a: coeffs("A")?,
            b: coeffs("B")?,
        })
    }

    fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let (u, v) = (x - self.crpix.0, y - self.crpix.1);
        let poly = |c: &[(i32, i32, f64)]| -> f64 {
            c.iter().map(|&(p, q, k)| k * u.powi(p) * v.powi(q)).sum()
        };
        (x + poly(&self.a), y + poly(&self.b))
    }
}

/// Finds the celestial axes: (longitude axis, latitude axis, frame kind), 1-based.
fn celestial_axes(h: &impl Keys, naxis: usize) -> Option<(usize, usize, char)> {
    let mut lon = None;
    let mut lat = None;
    for k in 1..=naxis.max(2) {
        let Some(t) = h.text(&format!("CTYPE{k}")) else {
            continue;
        };
        let t = t.trim().to_ascii_uppercase();
        let head = t.get(..4).unwrap_or(t.as_str());
        match head {
            "RA--" | "RA" => lon = lon.or(Some((k, 'E'))),
            "GLON" => lon = lon.or(Some((k, 'G'))),
            "ELON" => lon = lon.or(Some((k, 'C'))),
            "DEC-" | "DEC" => lat = lat.or(Some(k)),
            "GLAT" | "ELAT" => lat = lat.or(Some(k)),
            _ => {}
        }
    }
    let ((i, kind), j) = (lon?, lat?);
    Some((i, j, kind))
}

impl CelestialWcs {
    /// The celestial WCS of an image HDU with the given NAXISn. `Ok(None)` when the header has
    /// no celestial axes at all; `Err(reason)` when it has some that cannot be used.
    pub(crate) fn from_header(
        h: &impl Keys,
        axes: &[usize],
    ) -> Result<Option<CelestialWcs>, String> {
        // A DSS plate solution wins over the approximate TAN WCS written beside it (as in
        // wcslib/astropy).
        let axes_found = celestial_axes(h, axes.len());
        let Some((i, j, kind)) = axes_found.filter(|_| !h.has_dss()) else {
            if let Some(dss) = Dss::from_header(h) {
                let frame = Frame::equatorial(h, "")?;
                let size = (
                    axes.first().copied().unwrap_or(0),
                    axes.get(1).copied().unwrap_or(0),
                );
                return Ok(Some(CelestialWcs {
                    mapping: Mapping::Dss(Box::new(dss)),
                    frame,
                    size,
                    projection: "DSS".into(),
                    sip: None,
                }));
            }
            return Ok(None);
        };
        if i > axes.len() || j > axes.len() {
            return Err(format!(
                "celestial axes {i} and {j} are not both pixel axes (NAXIS = {})",
                axes.len()
            ));
        }
        let size = (axes[i - 1], axes[j - 1]);
        if size.0 == 0 || size.1 == 0 {
            return Err("the celestial axes have no pixels".into());
        }
        let ctype = |k: usize| {
            h.text(&format!("CTYPE{k}"))
                .map(|t| t.trim().to_ascii_uppercase())
                .unwrap_or_default()
        };
        let (c1, c2) = (ctype(i), ctype(j));
        let proj_of = |c: &str| -> Option<String> {
            if !c.is_ascii() || c.len() < 8 || &c[4..5] != "-" {
                return None;
            }
            Some(c[5..8].to_string())
        };
        let (Some(p1), Some(p2)) = (proj_of(&c1), proj_of(&c2)) else {
            return Err(format!("CTYPE '{c1}'/'{c2}' names no projection"));
        };
        if p1 != p2 {
            return Err(format!(
                "CTYPE '{c1}' and '{c2}' name different projections"
            ));
        }
        let sip = c1.get(8..).map(str::trim) == Some("-SIP");
        if c1.len() > 8 && !sip {
            return Err(format!("CTYPE '{c1}': unsupported distortion code"));
        }
        let frame = match kind {
            'G' => Frame::Galactic,
            'E' => Frame::equatorial(h, "")?,
            _ => {
                return Err(format!(
                    "CTYPE '{c1}': ecliptic coordinates are not supported"
                ))
            }
        };
        for k in [i, j] {
            if let Some(u) = h.text(&format!("CUNIT{k}")) {
                let u = u.trim().to_ascii_lowercase();
                if !(u.is_empty() || u == "deg" || u == "degree" || u == "degrees") {
                    return Err(format!("CUNIT{k} = '{u}': only degrees are supported"));
                }
            }
        }

        // WCSParams, with the celestial axes renumbered 1 and 2.
        let mut m = serde_json::Map::new();
        let ij = [i, j];
        m.insert("NAXIS".into(), 2.into());
        m.insert("NAXIS1".into(), (size.0 as i64).into());
        m.insert("NAXIS2".into(), (size.1 as i64).into());
        let mut put = |key: &str, v: Option<f64>| {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                if let Some(n) = serde_json::Number::from_f64(v) {
                    m.insert(key.to_string(), serde_json::Value::Number(n));
                }
            }
        };
        for (a, &k) in ij.iter().enumerate() {
            let n = a + 1;
            put(&format!("CRPIX{n}"), h.num(&format!("CRPIX{k}")));
            put(&format!("CRVAL{n}"), h.num(&format!("CRVAL{k}")));
            put(&format!("CDELT{n}"), h.num(&format!("CDELT{k}")));
            for (b, &l) in ij.iter().enumerate() {
                let nb = b + 1;
                put(&format!("CD{n}_{nb}"), h.num(&format!("CD{k}_{l}")));
                put(&format!("PC{n}_{nb}"), h.num(&format!("PC{k}_{l}")));
            }
        }
        put(
            "CROTA2",
            h.num(&format!("CROTA{j}"))
                .or_else(|| h.num(&format!("CROTA{i}"))),
        );
        put("PV1_1", h.num(&format!("PV{i}_1")));
        put("PV1_2", h.num(&format!("PV{i}_2")));
        put(
            "LONPOLE",
            h.num("LONPOLE").or_else(|| h.num(&format!("PV{i}_3"))),
        );
        put(
            "LATPOLE",
            h.num("LATPOLE").or_else(|| h.num(&format!("PV{i}_4"))),
        );
        for p in 0..=20 {
            put(&format!("PV2_{p}"), h.num(&format!("PV{j}_{p}")));
        }
        let sip = if sip {
            if (i, j) != (1, 2) {
                return Err("SIP distortion on axes other than 1 and 2".into());
            }
            Some(Sip::from_header(h)?)
        } else {
            None
        };
        // SIP is applied here (the crate's SIP polynomial is wrong in mapproj 0.4.0: it
        // squares the running power instead of multiplying), so the crate sees plain CTYPEs.
        m.insert(
            "CTYPE1".into(),
            serde_json::Value::String(format!("RA---{p1}")),
        );
        m.insert(
            "CTYPE2".into(),
            serde_json::Value::String(format!("DEC--{p1}")),
        );
        let params: wcs::WCSParams = serde_json::from_value(serde_json::Value::Object(m))
            .map_err(|e| format!("WCS keywords: {e}"))?;
        let made = catch_unwind(AssertUnwindSafe(|| wcs::WCS::new(&params)))
            .map_err(|_| format!("the {p1} projection could not be set up from this header"))?;
        let w = made.map_err(|e| format!("WCS ({c1}): {e}"))?;
        Ok(Some(CelestialWcs {
            mapping: Mapping::Crate(Box::new(w)),
            frame,
            size,
            projection: p1,
            sip,
        }))
    }

    /// FITS 1-based pixel (along the longitude axis, along the latitude axis) → ICRS unit
    /// vector; `None` off the sky.
    pub(crate) fn pix2vec(&self, x: f64, y: f64) -> Option<V3> {
        let (lon, lat) = match &self.mapping {
            Mapping::Crate(w) => {
                let (x, y) = match &self.sip {
                    Some(s) => s.apply(x, y),
                    None => (x, y),
                };
                let ll =
                    catch_unwind(AssertUnwindSafe(|| w.unproj(&wcs::ImgXY::new(x, y)))).ok()??;
                (ll.lon().to_degrees(), ll.lat().to_degrees())
            }
            Mapping::Dss(d) => d.unproj(x, y)?,
        };
        if !lon.is_finite() || !lat.is_finite() || lat.abs() > 90.0 + 1e-9 {
            return None;
        }
        Some(self.frame.to_icrs(&vec_of(lon, lat.clamp(-90.0, 90.0))))
    }

    /// FITS 1-based pixel → ICRS (RA, Dec) in degrees.
    #[cfg(test)]
    pub(crate) fn pix2icrs(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        self.pix2vec(x, y).map(|v| lonlat_of(&v))
    }

    /// Whether straight pixel lines map onto great circles (plain gnomonic projection).
    fn straight_edges(&self) -> bool {
        self.projection == "TAN" && self.sip.is_none()
    }
}

/// What the footprint of an image is.
#[derive(Debug, Clone)]
pub(crate) struct Footprint {
    /// ICRS position of the central pixel.
    pub centre: Option<(f64, f64)>,
    /// Polygon vertices (ICRS degrees, counter-clockwise: the inside is on the left of each edge
    /// as `adql`'s geometry walks it), `None` when the border leaves the sky or the polygon
    /// would cover more than a hemisphere.
    pub polygon: Option<Vec<(f64, f64)>>,
    /// Diameter (degrees) of the smallest circle centred on `centre` that holds the footprint;
    /// 360 when the image covers (nearly) the whole sky.
    pub fov: Option<f64>,
    /// Mean pixel size in arcsec, from the central pixel's neighbours.
    pub pixel_scale: Option<f64>,
    /// Set when the footprint could not be drawn.
    pub whole_sky: bool,
}

/// Most vertices per image edge.
const MAX_PER_EDGE: usize = 256;

impl CelestialWcs {
    /// The footprint: the border of the pixel grid (pixel edges, 0.5 … NAXIS + 0.5) mapped to
    /// ICRS. Each edge is cut into ≥ 1 segment (≥ 4 for non-TAN or SIP images) and ≤ 1° per
    /// segment, and then segments are halved until the midpoint of each lies within 1% of a
    /// pixel (at least 1 mas) of the great-circle chord between its ends.
    pub(crate) fn footprint(&self) -> Footprint {
        let (n1, n2) = (self.size.0 as f64, self.size.1 as f64);
        let centre_v = self.pix2vec((n1 + 1.0) / 2.0, (n2 + 1.0) / 2.0);
        let centre = centre_v.map(|v| lonlat_of(&v));
        let pixel_scale = centre_v.and_then(|c| {
            let (x, y) = ((n1 + 1.0) / 2.0, (n2 + 1.0) / 2.0);
            let a = self.pix2vec(x + 0.5, y)?;
            let b = self.pix2vec(x - 0.5, y)?;
            let d = self.pix2vec(x, y + 0.5)?;
            let e = self.pix2vec(x, y - 0.5)?;
            let _ = c;
            let s = (angle(&a, &b) * angle(&d, &e)).sqrt() * 3600.0;
            (s.is_finite() && s > 0.0).then_some(s)
        });
        let none = |centre| Footprint {
            centre,
            polygon: None,
            fov: Some(360.0),
            pixel_scale,
            whole_sky: true,
        };
        let tol = pixel_scale
            .map(|s| (s / 3600.0) * 0.01)
            .unwrap_or(1e-6)
            .max(1e-3 / 3600.0);
        let corners = [
            (0.5, 0.5),
            (n1 + 0.5, 0.5),
            (n1 + 0.5, n2 + 0.5),
            (0.5, n2 + 0.5),
        ];
        let mut verts: Vec<V3> = Vec::new();
        for e in 0..4 {
            let (p, q) = (corners[e], corners[(e + 1) % 4]);
            let Some(edge) = self.edge(p, q, tol) else {
                return none(centre);
            };
            verts.extend(edge);
        }
        let Some(c) = centre_v else {
            return none(centre);
        };
        // Smallest circle about the centre: the farthest vertex.
        let far = verts.iter().map(|v| angle(&c, v)).fold(0.0, f64::max);
        if far >= 89.0 {
            return none(centre);
        }
        // Orientation: the centre must be on the left of the edges (a × b · c > 0).
        let k = verts.len();
        let turn: f64 = (0..k)
            .map(|i| dot(&cross(&verts[i], &verts[(i + 1) % k]), &c))
            .sum();
        if turn < 0.0 {
            verts.reverse();
        }
        // Drop vertices that coincide (closing or degenerate edges) and vertices that lie on
        // the great circle through their neighbours (all of them for TAN, the meridian edges
        // of CAR, …): they add nothing, and runs of coplanar edges are numerically degenerate
        // for the polygon tests of `adql`'s geometry.
        let mut poly: Vec<V3> = Vec::with_capacity(k);
        for v in verts {
            if poly.last().is_some_and(|l| angle(l, &v) < 1e-9) {
                continue;
            }
            poly.push(v);
        }
        while poly.len() > 1 && angle(&poly[0], &poly[poly.len() - 1]) < 1e-9 {
            poly.pop();
        }
        let mut i = 0;
        while poly.len() > 3 && i < poly.len() {
            let n = poly.len();
            let (a, v, b) = (&poly[(i + n - 1) % n], &poly[i], &poly[(i + 1) % n]);
            let nrm = cross(a, b);
            let nn = dot(&nrm, &nrm).sqrt();
            let between = angle(a, v) + angle(v, b) - angle(a, b) < 1e-9;
            if nn > 0.0 && between && (dot(&nrm, v) / nn).abs() < 1e-12 {
                poly.remove(i);
            } else {
                i += 1;
            }
        }
        if poly.len() < 3 {
            return Footprint {
                centre,
                polygon: None,
                fov: Some(2.0 * far),
                pixel_scale,
                whole_sky: false,
            };
        }
        Footprint {
            centre,
            polygon: Some(poly.iter().map(lonlat_of).collect()),
            fov: Some(2.0 * far),
            pixel_scale,
            whole_sky: false,
        }
    }

    /// Vertices of one image edge from `p` (included) to `q` (excluded).
    fn edge(&self, p: (f64, f64), q: (f64, f64), tol: f64) -> Option<Vec<V3>> {
        let at = |t: f64| (p.0 + (q.0 - p.0) * t, p.1 + (q.1 - p.1) * t);
        let vp = self.pix2vec(p.0, p.1)?;
        let vq = self.pix2vec(q.0, q.1)?;
        let min_segments = if self.straight_edges() { 1 } else { 4 };
        // Length in degrees, measured on 8 pieces.
        let mut len = 0.0;
        let mut prev = vp;
        for s in 1..=8 {
            let (x, y) = at(s as f64 / 8.0);
            let v = self.pix2vec(x, y)?;
            len += angle(&prev, &v);
            prev = v;
        }
        let n = (len.ceil() as usize).clamp(min_segments, MAX_PER_EDGE);
        let mut ts: Vec<f64> = (0..=n).map(|s| s as f64 / n as f64).collect();
        if !self.straight_edges() {
            // Refine where the curve leaves the chord.
            let mut depth = 0;
            loop {
                let mut out = vec![ts[0]];
                let mut split = false;
                for w in ts.windows(2) {
                    let (a, b) = (w[0], w[1]);
                    let m = (a + b) / 2.0;
                    let (xa, ya) = at(a);
                    let (xb, yb) = at(b);
                    let (xm, ym) = at(m);
                    let va = self.pix2vec(xa, ya)?;
                    let vb = self.pix2vec(xb, yb)?;
                    let vm = self.pix2vec(xm, ym)?;
                    let nrm = cross(&va, &vb);
                    let nn = dot(&nrm, &nrm).sqrt();
                    let off = if nn > 0.0 {
                        (dot(&nrm, &vm) / nn)
                            .clamp(-1.0, 1.0)
                            .asin()
                            .to_degrees()
                            .abs()
                    } else {
                        0.0
                    };
                    if off > tol && out.len() + ts.len() < 2 * MAX_PER_EDGE {
                        out.push(m);
                        split = true;
                    }
                    out.push(b);
                }
                ts = out;
                depth += 1;
                if !split || depth >= 8 || ts.len() > MAX_PER_EDGE {
                    break;
                }
            }
        }
        let mut v = Vec::with_capacity(ts.len());
        v.push(vp);
        for &t in &ts[1..ts.len() - 1] {
            let (x, y) = at(t);
            v.push(self.pix2vec(x, y)?);
        }
        let _ = vq;
        Some(v)
    }
}

/// Parses a sexagesimal or decimal angle: `"01:00:33.40"`, `"+13 00 10.0"`, `"-00:52:00.4"`,
/// `"230.876"`. Returns the value in the unit of its first field (hours or degrees).
pub(crate) fn parse_sexagesimal(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    let neg = t.starts_with('-');
    let body = t.trim_start_matches(['+', '-']);
    let parts: Vec<&str> = body
        .split(|c: char| c == ':' || c.is_whitespace() || c == 'h' || c == 'd' || c == 'm')
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut val = 0.0;
    let mut scale = 1.0;
    for p in &parts {
        let x: f64 = p.trim_end_matches(['s', '"', '\'']).parse().ok()?;
        if !x.is_finite() {
            return None;
        }
        val += x * scale;
        scale /= 60.0;
    }
    Some(if neg { -val } else { val })
}
