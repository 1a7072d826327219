//! ObsCore 1.1 records from FITS images, cubes and spectra.
//!
//! [`derive`] reads one stored file (possibly gzipped) and returns one [`ObsRecord`] per data
//! product it holds, one [`HeaderRow`] per header card of every HDU (for a searchable header
//! archive), and warnings for what the mapping could not understand. [`obscore_batch`] and
//! [`header_batch`] turn them into Arrow record batches whose fields carry the column metadata of
//! [`obscore_columns`] / [`header_columns`] (units, UCDs, utypes, descriptions), ready for
//! TAP_SCHEMA and VOTable FIELDs. Pure library code: no I/O, no HTTP.
//!
//! # What a file yields
//!
//! * **Images and cubes** (an HDU with ≥ 2 axes): one record per image HDU with a celestial WCS
//!   (so a multi-extension file with three science images gives three records, their
//!   `obs_publisher_did` ending in `#<hdu>`). Image HDUs without a celestial WCS are skipped with
//!   a warning when another HDU has one; when none has, the first image HDU still gives a record
//!   with a NULL position (and a warning): the product stays findable by collection, time and
//!   band. `cube` when a non-celestial axis has more than one pixel, `image` otherwise.
//! * **1-D spectra** stored as images (NAXIS = 1 with a spectral axis) and **spectra stored as
//!   binary tables** (a wavelength / frequency / velocity column, arrays in one row or one sample
//!   per row): one record, for the first such HDU.
//! * Anything else (only tables without a spectral column, empty primary): no record, a warning.
//!
//! Keywords are looked up in the described HDU first and then in the primary header (ESO and
//! HST put target, telescope and dates there); the WCS is always the HDU's own.
//!
//! # Positions and footprints
//!
//! `s_region` is the image border (pixel edges 0.5 and NAXIS + 0.5) mapped through the WCS to
//! ICRS: see [`celestial`] for frames, SIP and DSS plate solutions. Images whose border leaves
//! the sky (all-sky maps) have a NULL `s_region`, `s_fov` = 360 and a warning. Spectra have
//! `s_ra`/`s_dec` from RA/DEC-style keywords (decimal degrees or sexagesimal hours/degrees, any
//! FK4/FK5/ICRS frame brought to ICRS) and a NULL `s_region`.
//!
//! # Decisions
//!
//! * `s_resolution` is the beam (`BMAJ`, degrees → arcsec) or a seeing/FWHM keyword whose comment
//!   says arcsec; otherwise NULL (a pixel scale is not a resolution; it is in `s_pixel_scale`).
//! * `em_min`/`em_max` are in metres and cover pixel edges for WCS axes; for table spectra they
//!   are the extreme sample values. Images without a spectral axis get a band from the filter
//!   keyword when the filter is a well-known one (approximate band edges) or from `WAVELENG`.
//! * `t_min` is `MJD-OBS` (when plausible) or `DATE-OBS` (+ `TIME-OBS`/`UT`); `t_max` is `MJD-END`
//!   / `DATE-END`, else `t_min` + exposure, else `t_min`.
//! * `calib_level` is `CALIB_LEVEL`/`CALIBLEV` when given, 1 for ESO raw frames (`ESO DPR` without
//!   `ESO PRO` keywords), otherwise 2.

mod celestial;
mod spectral;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float64Array, Float64Builder, Int32Builder, Int64Builder,
    ListArray, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use crate::meta::ColumnMeta;
use crate::Error;
use celestial::{CelestialWcs, Frame, Keys};
use votable::fits::{self, Hdu};

/// The `access_format` of every product: `application/fits` (RFC 4047), the type of any FITS
/// file, images, cubes and spectra alike, and what DataLink and the download say too.
pub const FITS_MEDIA_TYPE: &str = "application/fits";

/// One ObsCore 1.1 record (`ivoa.obscore` row). Field names are the standard column names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObsRecord {
    /// `image`, `cube` or `spectrum`.
    pub dataproduct_type: String,
    /// 0 raw … 4 analysis; 2 (calibrated, science ready) for reduced data.
    pub calib_level: i32,
    pub obs_collection: String,
    pub obs_id: String,
    /// `ivo://{authority}/{collection}?{path}`, plus `#{hdu}` when the file gives several records.
    pub obs_publisher_did: String,
    /// `{collection}/{path}`: a path RELATIVE to the server's data root. The service prefixes its
    /// public base URL (`…/data/`) when it answers a query.
    pub access_url: String,
    /// [`FITS_MEDIA_TYPE`] for every product. The stored bytes may be gzip-compressed
    /// (`.fits.gz`); the media type names the FITS content all the same (the server sends such a
    /// file with `Content-Encoding: gzip`, or decompressed).
    pub access_format: String,
    /// Stored size in kB (rounded up).
    pub access_estsize: i64,
    pub target_name: Option<String>,
    /// ICRS, degrees: the central pixel of images, the pointing of spectra.
    pub s_ra: Option<f64>,
    pub s_dec: Option<f64>,
    /// Diameter (degrees) of the smallest circle about (s_ra, s_dec) that holds the footprint.
    pub s_fov: Option<f64>,
    /// Footprint: ICRS polygon vertices in degrees, counter-clockwise (inside on the left).
    pub s_region: Option<Vec<(f64, f64)>>,
    /// Spatial resolution (arcsec): beam or seeing, when the header states it.
    pub s_resolution: Option<f64>,
    pub s_xel1: Option<i64>,
    pub s_xel2: Option<i64>,
    pub t_xel: Option<i64>,
    /// MJD (UTC as written in the header).
    pub t_min: Option<f64>,
    pub t_max: Option<f64>,
    /// Seconds.
    pub t_exptime: Option<f64>,
    pub t_resolution: Option<f64>,
    pub em_xel: Option<i64>,
    /// Metres.
    pub em_min: Option<f64>,
    pub em_max: Option<f64>,
    pub em_res_power: Option<f64>,
    pub o_ucd: Option<String>,
    /// e.g. `/I/` or `/I/Q/U/V/`.
    pub pol_states: Option<String>,
    pub pol_xel: Option<i64>,
    pub facility_name: Option<String>,
    pub instrument_name: Option<String>,
    // Optional ObsCore columns.
    pub obs_title: Option<String>,
    pub dataproduct_subtype: Option<String>,
    pub target_class: Option<String>,
    /// `em.wl`, `em.freq` or `em.energy`: what the spectral axis of the data is.
    pub em_ucd: Option<String>,
    /// Arcsec.
    pub s_pixel_scale: Option<f64>,
    /// Which HDU (0 = primary) the record describes (column `hdu`, not part of ObsCore).
    pub hdu: Option<usize>,
}

/// One stored file to describe.
#[derive(Debug, Clone, Copy)]
pub struct Product<'a> {
    /// Collection name (`obs_collection`, first path segment of `access_url`).
    pub collection: &'a str,
    /// IVOA authority of the publisher DIDs (`ivo://{authority}/…`).
    pub authority: &'a str,
    /// Path of the file inside the collection, e.g. `images/dss.fits.gz`.
    pub path: &'a str,
    /// The stored bytes, possibly gzip-compressed.
    pub bytes: &'a [u8],
}

/// One header card of one HDU.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderRow {
    /// The DID of the record describing this HDU, or (HDUs no record describes, such as the
    /// primary header of a multi-extension file) the file's DID without `#hdu`.
    pub obs_publisher_did: String,
    /// HDU number, 0 = primary.
    pub hdu: i32,
    /// Card number within the HDU header, from 1.
    pub seq: i32,
    pub keyword: String,
    pub value: Option<String>,
    pub comment: Option<String>,
    /// Position of the described record (or the file's first record), for the HEALPix layout.
    pub s_ra: Option<f64>,
    pub s_dec: Option<f64>,
}

/// What [`derive`] makes of a file.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    pub records: Vec<ObsRecord>,
    pub headers: Vec<HeaderRow>,
    /// Each names the file (and HDU).
    pub warnings: Vec<String>,
}

impl Keys for Hdu {
    fn num(&self, key: &str) -> Option<f64> {
        self.f64(key).filter(|v| v.is_finite())
    }
    fn text(&self, key: &str) -> Option<&str> {
        self.str(key)
    }
}

/// How an image HDU lies on the sky at FITS pixel `at` (1-based): the Jacobian of
/// (east, north) on the ICRS sphere, in radians, with respect to the pixel x and y, from
/// differences over `step` pixels: `[[d east/dx, d east/dy], [d north/dx, d north/dy]]`.
/// `None` without a usable celestial WCS, when the first pixel axis is not the longitude
/// axis, or off the sky. Previews draw their scale bar and N/E arrows from it.
pub(crate) fn sky_jacobian(h: &Hdu, at: (f64, f64), step: f64) -> Option<[[f64; 2]; 2]> {
    let ctype1 = h.str("CTYPE1").unwrap_or("").trim().to_ascii_uppercase();
    if ["DEC", "GLAT", "ELAT"]
        .iter()
        .any(|p| ctype1.starts_with(p))
    {
        return None;
    }
    let wcs = CelestialWcs::from_header(h, &h.axes()).ok()??;
    let v0 = wcs.pix2vec(at.0, at.1)?;
    let vx = wcs.pix2vec(at.0 + step, at.1)?;
    let vy = wcs.pix2vec(at.0, at.1 + step)?;
    let (ra, dec) = celestial::lonlat_of(&v0);
    let (sa, ca) = ra.to_radians().sin_cos();
    let (sd, cd) = dec.to_radians().sin_cos();
    let east = [-sa, ca, 0.0];
    let north = [-sd * ca, -sd * sa, cd];
    let d = |v: &[f64; 3], u: &[f64; 3]| {
        ((v[0] - v0[0]) * u[0] + (v[1] - v0[1]) * u[1] + (v[2] - v0[2]) * u[2]) / step
    };
    let j = [
        [d(&vx, &east), d(&vy, &east)],
        [d(&vx, &north), d(&vy, &north)],
    ];
    j.iter().flatten().all(|v| v.is_finite()).then_some(j)
}

/// An HDU with the primary header behind it for keywords it lacks.
struct Ctx<'a> {
    hdu: &'a Hdu,
    primary: &'a Hdu,
}

impl Keys for Ctx<'_> {
    fn num(&self, key: &str) -> Option<f64> {
        self.hdu.num(key).or_else(|| self.primary.num(key))
    }
    fn text(&self, key: &str) -> Option<&str> {
        self.hdu.text(key).or_else(|| self.primary.text(key))
    }
}

impl Ctx<'_> {
    /// A non-empty trimmed string value.
    fn string(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| {
            self.text(k)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
    }
    /// The comment of a card (described HDU first).
    fn comment(&self, key: &str) -> Option<&str> {
        [self.hdu, self.primary].iter().find_map(|h| {
            h.cards
                .iter()
                .find(|c| c.keyword == key && c.value.is_some())
                .map(|c| c.comment.as_deref().unwrap_or(""))
        })
    }
    /// The value of a card looked up by its full keyword (HIERARCH cards included), described
    /// HDU first.
    fn card_value(&self, key: &str) -> Option<String> {
        [self.hdu, self.primary].iter().find_map(|h| {
            h.cards
                .iter()
                .find(|c| c.keyword == key)
                .and_then(|c| c.value.as_deref())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        })
    }
    fn has_card(&self, key: &str) -> bool {
        [self.hdu, self.primary]
            .iter()
            .any(|h| h.cards.iter().any(|c| c.keyword == key))
    }
}

/// What an HDU is to the mapping.
enum Kind {
    Image,
    Spectrum1d,
    TableSpectrum,
}

/// Describes one stored FITS file. `Err` only when the bytes are not FITS or are truncated;
/// everything else the mapping does not understand is a warning.
pub fn derive(p: &Product) -> Result<Derived, Error> {
    let bytes = crate::source::maybe_gunzip(p.bytes.to_vec(), crate::source::MAX_INGEST_BYTES)?;
    let hdus = fits::hdus(&bytes)?;
    let Some(primary) = hdus.first() else {
        return Err(Error::Source("FITS: no HDU".into()));
    };
    let name = p.path;
    let mut warnings = Vec::new();

    // Classify.
    let mut images = Vec::new();
    let mut spectra1d = Vec::new();
    let mut tables = Vec::new();
    for h in &hdus {
        match classify(h) {
            Some(Kind::Image) => images.push(h),
            Some(Kind::Spectrum1d) => spectra1d.push(h),
            Some(Kind::TableSpectrum) => tables.push(h),
            None => {}
        }
    }

    let base_did = format!("ivo://{}/{}?{}", p.authority, p.collection, p.path);
    let access_url = format!("{}/{}", p.collection, p.path);
    let estsize = p.bytes.len().div_ceil(1024) as i64;
    let mut records = Vec::new();

    if !images.is_empty() {
        // Which images have a usable celestial WCS.
        let mut described: Vec<(&Hdu, Option<CelestialWcs>)> = Vec::new();
        let mut without = Vec::new();
        for h in &images {
            match CelestialWcs::from_header(*h, &h.axes()) {
                Ok(Some(w)) => described.push((h, Some(w))),
                Ok(None) => without.push((*h, None)),
                Err(e) => without.push((*h, Some(e))),
            }
        }
        if described.is_empty() {
            let (h, reason) = &without[0];
            warnings.push(match reason {
                Some(e) => format!(
                    "{name}: HDU {}: celestial WCS not usable ({e}): position left NULL",
                    h.index
                ),
                None => format!(
                    "{name}: HDU {}: no celestial WCS: position left NULL",
                    h.index
                ),
            });
            described.push((h, None));
        } else {
            for (h, reason) in &without {
                warnings.push(match reason {
                    Some(e) => format!(
                        "{name}: HDU {}: image skipped, its celestial WCS is not usable ({e})",
                        h.index
                    ),
                    None => format!(
                        "{name}: HDU {}: image without celestial WCS skipped",
                        h.index
                    ),
                });
            }
        }
        for (h, w) in described {
            let ctx = Ctx { hdu: h, primary };
            records.push(image_record(&ctx, w.as_ref(), name, &mut warnings));
        }
    } else if let Some(h) = spectra1d.first() {
        let ctx = Ctx { hdu: h, primary };
        records.push(spectrum_record(&ctx, None, name, &mut warnings));
    } else if let Some(h) = tables.first() {
        let ctx = Ctx { hdu: h, primary };
        let data = read_table_axis(&bytes, h, name, &mut warnings);
        records.push(spectrum_record(&ctx, Some(data), name, &mut warnings));
    } else {
        warnings.push(format!(
            "{name}: no image, cube or spectrum found in {} HDU(s): no ObsCore record",
            hdus.len()
        ));
    }

    // Identity and access, common to all records of the file.
    let several = records.len() > 1;
    for r in &mut records {
        r.obs_collection = p.collection.to_string();
        r.obs_publisher_did = match (several, r.hdu) {
            (true, Some(n)) => format!("{base_did}#{n}"),
            _ => base_did.clone(),
        };
        r.access_url = access_url.clone();
        r.access_estsize = estsize;
        r.access_format = FITS_MEDIA_TYPE.into();
        if r.obs_id.is_empty() {
            r.obs_id = file_stem(p.path);
        }
        if r.obs_title.is_none() {
            r.obs_title = Some(title(r));
        }
    }

    // Header archive.
    let mut headers = Vec::new();
    for h in &hdus {
        let rec = records
            .iter()
            .find(|r| r.hdu == Some(h.index))
            .or(records.first());
        let did = records
            .iter()
            .find(|r| r.hdu == Some(h.index))
            .map(|r| r.obs_publisher_did.clone())
            .unwrap_or_else(|| base_did.clone());
        for (i, c) in h.cards.iter().enumerate() {
            headers.push(HeaderRow {
                obs_publisher_did: did.clone(),
                hdu: h.index as i32,
                seq: i as i32 + 1,
                keyword: c.keyword.clone(),
                value: c.value.clone(),
                comment: c.comment.clone(),
                s_ra: rec.and_then(|r| r.s_ra),
                s_dec: rec.and_then(|r| r.s_dec),
            });
        }
    }
    Ok(Derived {
        records,
        headers,
        warnings,
    })
}

/// Spectral table column names, in order of preference.
const WAVE_COLUMNS: [&str; 9] = [
    "WAVE",
    "WAVELENGTH",
    "LAMBDA",
    "LOGLAM",
    "FREQ",
    "FREQUENCY",
    "VHELIO",
    "VELOCITY",
    "VLSR",
];

fn classify(h: &Hdu) -> Option<Kind> {
    let kind = h.kind().trim().to_ascii_uppercase();
    if kind == "BINTABLE" {
        let n = h.i64("TFIELDS").unwrap_or(0).clamp(0, 999);
        let has = (1..=n).any(|k| {
            h.str(&format!("TTYPE{k}"))
                .map(|t| WAVE_COLUMNS.contains(&t.trim().to_ascii_uppercase().as_str()))
                .unwrap_or(false)
        });
        return has.then_some(Kind::TableSpectrum);
    }
    if kind != "PRIMARY" && kind != "IMAGE" {
        return None;
    }
    let axes = h.axes();
    if axes.is_empty() || axes.contains(&0) || h.data_len == 0 {
        return None;
    }
    if axes.len() == 1
        || axes.iter().filter(|&&n| n > 1).count() == 1
            && h.has("CRVAL1")
            && axes[0] > 1
            && !has_celestial_ctype(h)
    {
        // A 1-D spectrum needs a spectral WCS on axis 1.
        let ct = h.str("CTYPE1").unwrap_or("").trim().to_ascii_uppercase();
        let spectral = h.has("CRVAL1")
            && (h.has("CDELT1") || h.has("CD1_1") || h.has("COEFF1"))
            && !ct.starts_with("RA")
            && !ct.starts_with("DEC")
            && !ct.starts_with("GL");
        return spectral.then_some(Kind::Spectrum1d);
    }
    Some(Kind::Image)
}

fn has_celestial_ctype(h: &Hdu) -> bool {
    (1..=4).any(|k| {
        h.str(&format!("CTYPE{k}"))
            .map(|t| {
                let t = t.trim().to_ascii_uppercase();
                ["RA", "DEC", "GLON", "GLAT", "ELON", "ELAT"]
                    .iter()
                    .any(|p| t.starts_with(p))
            })
            .unwrap_or(false)
    })
}

fn file_stem(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let mut s = base;
    for ext in [".gz", ".fz", ".fits", ".fit", ".fts", ".FITS", ".FIT"] {
        s = s.strip_suffix(ext).unwrap_or(s);
    }
    s.to_string()
}

fn title(r: &ObsRecord) -> String {
    let what = match r.dataproduct_type.as_str() {
        "spectrum" => "spectrum",
        "cube" => "cube",
        _ => "image",
    };
    let by = [r.facility_name.as_deref(), r.instrument_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let of = r.target_name.as_deref().unwrap_or(r.obs_id.as_str());
    if by.is_empty() {
        format!("{of} {what}")
    } else {
        format!("{of} {what} ({by})")
    }
}

/// The fields every record takes from the headers alone.
fn common(ctx: &Ctx, name: &str, warnings: &mut Vec<String>) -> ObsRecord {
    let mut r = ObsRecord {
        calib_level: 2,
        hdu: Some(ctx.hdu.index),
        ..Default::default()
    };
    r.obs_id = ctx
        .string(&["OBS_ID", "OBSID", "ARCFILE", "ORIGFILE", "FILENAME"])
        .map(|s| file_stem(&s))
        .unwrap_or_default();
    // ESO pipelines overwrite OBJECT with the product category; the OB's target name is the
    // target.
    r.target_name = ctx
        .card_value("HIERARCH ESO OBS TARG NAME")
        .or_else(|| ctx.string(&["OBJECT", "TARGNAME", "OBJNAME", "TARGET"]));
    r.facility_name = ctx.string(&["TELESCOP", "OBSERVAT"]);
    r.instrument_name = ctx.string(&["INSTRUME"]);
    r.obs_title = ctx.string(&["OBS_TITLE", "TITLE"]);
    // Calibration level.
    if let Some(l) = ctx.num("CALIB_LEVEL").or_else(|| ctx.num("CALIBLEV")) {
        if (0.0..=4.0).contains(&l) {
            r.calib_level = l as i32;
        }
    } else if ctx.has_card("HIERARCH ESO DPR CATG")
        && !ctx.has_card("HIERARCH ESO PRO CATG")
        && !ctx.has_card("PRODCATG")
    {
        r.calib_level = 1;
    }
    // Time.
    let (t_min, t_max, exptime) = times(ctx, name, warnings);
    r.t_min = t_min;
    r.t_max = t_max;
    r.t_exptime = exptime;
    r.t_xel = t_min.map(|_| 1);
    // Resolution.
    r.s_resolution = ctx
        .num("BMAJ")
        .filter(|b| *b > 0.0)
        .map(|b| b * 3600.0)
        .or_else(|| {
            ["PSF_FWHM", "FWHM", "SEEING", "PSFFWHM"]
                .iter()
                .find_map(|k| {
                    let v = ctx.num(k).filter(|v| *v > 0.0)?;
                    let c = ctx.comment(k)?.to_ascii_lowercase();
                    (c.contains("arcsec") || c.contains("\"")).then_some(v)
                })
        });
    r.em_res_power = ctx
        .num("SPEC_RES")
        .or_else(|| ctx.num("SPECRES"))
        .filter(|v| *v > 0.0)
        .or_else(|| {
            ctx.num("RESVEL")
                .filter(|v| *v > 0.0)
                .map(|v| spectral::C / 1e3 / v)
        });
    r
}

/// (t_min, t_max, exposure) from the header.
fn times(
    ctx: &Ctx,
    name: &str,
    warnings: &mut Vec<String>,
) -> (Option<f64>, Option<f64>, Option<f64>) {
    let plausible = |m: f64| (-100_000.0..=200_000.0).contains(&m);
    let mut t_min = None;
    if let Some(m) = ctx.num("MJD-OBS") {
        if plausible(m) {
            t_min = Some(m);
        } else {
            warnings.push(format!("{name}: MJD-OBS = {m} is implausible; ignored"));
        }
    }
    if t_min.is_none() {
        if let Some(d) = ctx.string(&["DATE-OBS", "DATE_OBS"]) {
            let tod = ctx.string(&[
                "TIME-OBS", "TIME_OBS", "UT", "UTSTART", "UT-TIME", "UT-START",
            ]);
            match parse_date(&d, tod.as_deref()) {
                Some(m) => t_min = Some(m),
                None => warnings.push(format!("{name}: DATE-OBS = '{d}' is not a date I can read")),
            }
        }
    }
    let exptime = [
        "EXPTIME", "EXPOSURE", "ITIME", "TEXPTIME", "ELAPTIME", "TELAPSE",
    ]
    .iter()
    .find_map(|k| {
        let v = ctx.num(k).filter(|v| *v >= 0.0)?;
        let c = ctx.comment(k).unwrap_or("").to_ascii_lowercase();
        Some(
            if c.contains("minute") || c.contains("(min)") || c.contains("[min]") {
                v * 60.0
            } else {
                v
            },
        )
    });
    let mut t_max = ctx.num("MJD-END").filter(|m| plausible(*m));
    if t_max.is_none() {
        t_max = ctx
            .string(&["DATE-END", "DATE_END"])
            .and_then(|d| parse_date(&d, ctx.string(&["TIME-END"]).as_deref()));
    }
    if t_max.is_none() {
        t_max = t_min.map(|t| t + exptime.unwrap_or(0.0) / 86400.0);
    }
    if let (Some(a), Some(b)) = (t_min, t_max) {
        if b < a {
            warnings.push(format!(
                "{name}: the observation ends (MJD {b}) before it starts (MJD {a}); end ignored"
            ));
            t_max = Some(a + exptime.unwrap_or(0.0) / 86400.0);
        }
    }
    (t_min, t_max, exptime)
}

/// MJD of a calendar date and day fraction.
fn mjd(y: i64, m: i64, d: i64, frac: f64) -> f64 {
    let a = (14 - m) / 12;
    let yy = y + 4800 - a;
    let mm = m + 12 * a - 3;
    let jdn = d + (153 * mm + 2) / 5 + 365 * yy + yy.div_euclid(4) - yy.div_euclid(100)
        + yy.div_euclid(400)
        - 32045;
    (jdn - 2_400_001) as f64 + frac
}

/// Parses `hh:mm:ss[.s]` into a day fraction.
fn parse_tod(t: &str) -> Option<f64> {
    let mut it = t.trim().split(':');
    let h: f64 = it.next()?.trim().parse().ok()?;
    let m: f64 = it
        .next()
        .map(|s| s.trim().parse())
        .transpose()
        .ok()?
        .unwrap_or(0.0);
    let s: f64 = it
        .next()
        .map(|s| s.trim().parse())
        .transpose()
        .ok()?
        .unwrap_or(0.0);
    let f = (h + m / 60.0 + s / 3600.0) / 24.0;
    ((0.0..=1.0).contains(&f)).then_some(f)
}

/// A FITS date: `YYYY-MM-DD[Thh:mm:ss[.sss]]`, the old `DD/MM/YY`, or `YYYYMMDD`; the time of
/// day from `tod` when the date has none.
fn parse_date(s: &str, tod: Option<&str>) -> Option<f64> {
    let s = s.trim();
    let (date, time) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (y, m, d) = if date.contains('/') {
        let p: Vec<&str> = date.split('/').collect();
        if p.len() != 3 {
            return None;
        }
        let d: i64 = p[0].trim().parse().ok()?;
        let m: i64 = p[1].trim().parse().ok()?;
        let y: i64 = p[2].trim().parse().ok()?;
        (if y < 100 { 1900 + y } else { y }, m, d)
    } else if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) {
        (
            date[..4].parse().ok()?,
            date[4..6].parse().ok()?,
            date[6..].parse().ok()?,
        )
    } else {
        let p: Vec<&str> = date.split('-').collect();
        if p.len() != 3 {
            return None;
        }
        (p[0].parse().ok()?, p[1].parse().ok()?, p[2].parse().ok()?)
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1000..=3000).contains(&y) {
        return None;
    }
    let frac = match time.filter(|t| !t.trim().is_empty()) {
        Some(t) => parse_tod(t)?,
        None => tod.and_then(parse_tod).unwrap_or(0.0),
    };
    Some(mjd(y, m, d, frac))
}

/// `o_ucd` from a unit of the data values, best effort.
fn observable_ucd(bunit: &str, spectrum: bool) -> Option<String> {
    let u = bunit.trim().to_ascii_lowercase().replace(' ', "");
    if u.is_empty() {
        return None;
    }
    let s = |x: &str| Some(x.to_string());
    if u.contains("/sr") || u.contains("-sr") || u.contains("sr-1") || u.contains("sr**-1") {
        return s("phot.flux.density.sb");
    }
    if u.starts_with("mag") {
        return if u.contains("e(b-v)") {
            s("phot.color.excess")
        } else {
            s("phot.mag")
        };
    }
    if u.contains("jy") {
        return if spectrum {
            s("phot.flux.density;em.freq")
        } else {
            s("phot.flux.density")
        };
    }
    if u == "k" || u == "kelvin" {
        return s("phot.antennaTemp");
    }
    if u.contains("erg") || u.starts_with("w/m") || u.starts_with("wm") {
        let per_wl = [
            "/a",
            "/ang",
            "/nm",
            "/um",
            "ang**(-1)",
            "nm**(-1)",
            "a-1",
            "angstrom",
            "/aa",
        ]
        .iter()
        .any(|p| u.contains(p));
        return if per_wl {
            s("phot.flux.density;em.wl")
        } else if u.contains("hz") {
            s("phot.flux.density;em.freq")
        } else {
            s("phot.flux")
        };
    }
    let counts = [
        "adu", "count", "ct", "dn", "e-", "electron", "du/pix", "photon",
    ];
    if counts.iter().any(|c| u.starts_with(c)) {
        return s("phot.count");
    }
    None
}

/// STOKES codes → ObsCore names, in the canonical order of `pol_states`.
const STOKES: [(i64, &str); 12] = [
    (1, "I"),
    (2, "Q"),
    (3, "U"),
    (4, "V"),
    (-1, "RR"),
    (-2, "LL"),
    (-3, "RL"),
    (-4, "LR"),
    (-5, "XX"),
    (-6, "YY"),
    (-7, "XY"),
    (-8, "YX"),
];

/// (pol_states, pol_xel) from a STOKES axis.
fn polarization(h: &impl Keys, axes: &[usize]) -> Option<(String, i64)> {
    for k in 1..=axes.len().max(4) {
        let Some(t) = h.text(&format!("CTYPE{k}")) else {
            continue;
        };
        if !t.trim().eq_ignore_ascii_case("STOKES") {
            continue;
        }
        let n = axes.get(k - 1).copied().unwrap_or(1).clamp(1, 64);
        let crval = h.num(&format!("CRVAL{k}")).unwrap_or(1.0);
        let crpix = h.num(&format!("CRPIX{k}")).unwrap_or(1.0);
        let cdelt = h.num(&format!("CDELT{k}")).unwrap_or(1.0);
        let codes: Vec<i64> = (1..=n)
            .map(|p| (crval + (p as f64 - crpix) * cdelt).round() as i64)
            .collect();
        let names: Vec<&str> = STOKES
            .iter()
            .filter(|(c, _)| codes.contains(c))
            .map(|(_, s)| *s)
            .collect();
        if names.is_empty() {
            return None;
        }
        return Some((format!("/{}/", names.join("/")), n as i64));
    }
    None
}

fn image_record(
    ctx: &Ctx,
    w: Option<&CelestialWcs>,
    name: &str,
    warnings: &mut Vec<String>,
) -> ObsRecord {
    let h = ctx.hdu;
    let axes = h.axes();
    let mut r = common(ctx, name, warnings);
    let mut wv = Vec::new();
    // Spatial.
    match w {
        Some(w) => {
            let f = w.footprint();
            if let Some((ra, dec)) = f.centre {
                r.s_ra = Some(ra);
                r.s_dec = Some(dec);
            } else {
                wv.push("the central pixel has no sky position".to_string());
            }
            if f.whole_sky {
                wv.push("footprint covers the whole sky (its border leaves the projection): s_region left NULL, s_fov = 360".into());
            }
            r.s_region = f.polygon;
            r.s_fov = f.fov;
            r.s_pixel_scale = f.pixel_scale;
            r.s_xel1 = Some(w.size.0 as i64);
            r.s_xel2 = Some(w.size.1 as i64);
        }
        None => {
            r.s_xel1 = axes.first().map(|&n| n as i64);
            r.s_xel2 = axes.get(1).map(|&n| n as i64);
        }
    }
    // Spectral.
    let spec = spectral::image_axis(ctx.hdu, &axes, &mut wv);
    if let Some(s) = &spec {
        r.em_xel = Some(s.len as i64);
        r.em_ucd = Some(s.ucd.to_string());
        if let Some((a, b)) = s.em {
            r.em_min = Some(a);
            r.em_max = Some(b);
        }
    } else {
        let band = [
            "FILTER", "FILTER1", "FILTER2", "FILTNAM1", "FILTNAME", "BAND",
        ]
        .iter()
        .find_map(|k| ctx.text(k).and_then(spectral::filter_band));
        let wl = ["WAVELENG", "WAVELEN"].iter().find_map(|k| {
            let v = ctx.num(k).filter(|v| *v > 0.0)?;
            // A unit at the start of the comment (`1.12 / mm (avoids CO 2-1)`), else by size.
            let stated = ctx
                .comment(k)
                .and_then(|c| c.split_whitespace().next())
                .and_then(spectral::unit);
            if let Some(spectral::Quantity::Wave(f)) = stated {
                return Some(v * f);
            }
            Some(if v < 0.1 {
                v
            } else if v < 30.0 {
                v * 1e-6
            } else if v >= 900.0 {
                v * 1e-10
            } else {
                return None;
            })
        });
        if let Some((a, b)) = band.or(wl.map(|v| (v, v))) {
            r.em_min = Some(a);
            r.em_max = Some(b);
            r.em_xel = Some(1);
            r.em_ucd = Some("em.wl".into());
        }
    }
    // Polarization.
    if let Some((states, n)) = polarization(ctx.hdu, &axes) {
        r.pol_states = Some(states);
        r.pol_xel = Some(n);
    }
    // Type: a cube when a non-celestial axis has several pixels.
    let celestial_axes: Vec<usize> = match w {
        Some(_) => (1..=axes.len())
            .filter(|k| {
                h.str(&format!("CTYPE{k}"))
                    .map(|t| {
                        let t = t.trim().to_ascii_uppercase();
                        ["RA", "DEC", "GLON", "GLAT", "ELON", "ELAT"]
                            .iter()
                            .any(|p| t.starts_with(p))
                    })
                    .unwrap_or(false)
            })
            .collect(),
        None => vec![1, 2],
    };
    let celestial_axes = if celestial_axes.len() == 2 {
        celestial_axes
    } else {
        vec![1, 2]
    };
    let cube = (1..=axes.len()).any(|k| !celestial_axes.contains(&k) && axes[k - 1] > 1);
    r.dataproduct_type = if cube { "cube" } else { "image" }.into();
    r.o_ucd = ctx.text("BUNIT").and_then(|u| observable_ucd(u, false));
    for m in wv {
        warnings.push(format!("{name}: HDU {}: {m}", h.index));
    }
    r
}

/// Spectral samples of a table spectrum: (min, max) in metres and the number of samples.
struct TableAxis {
    em: Option<(f64, f64)>,
    n: Option<i64>,
    ucd: &'static str,
    flux_ucd: Option<String>,
    flux_unit: Option<String>,
}

/// Every finite value of a numeric or list column, as f64.
fn values(a: &ArrayRef) -> Vec<f64> {
    let inner: ArrayRef = if let Some(l) = a.as_any().downcast_ref::<ListArray>() {
        l.values().clone()
    } else if let Some(l) = a.as_any().downcast_ref::<FixedSizeListArray>() {
        l.values().clone()
    } else {
        a.clone()
    };
    let Ok(c) = cast(&inner, &DataType::Float64) else {
        return Vec::new();
    };
    let Some(f) = c.as_any().downcast_ref::<Float64Array>() else {
        return Vec::new();
    };
    f.iter().flatten().filter(|v| v.is_finite()).collect()
}

fn read_table_axis(bytes: &[u8], h: &Hdu, name: &str, warnings: &mut Vec<String>) -> TableAxis {
    let mut out = TableAxis {
        em: None,
        n: None,
        ucd: "em.wl",
        flux_ucd: None,
        flux_unit: None,
    };
    let (schema, batches) = match fits::read_bintable(bytes, Some(h.index)) {
        Ok(x) => x,
        Err(e) => {
            warnings.push(format!(
                "{name}: HDU {}: the spectrum table cannot be read: {e}",
                h.index
            ));
            return out;
        }
    };
    let col = |n: &str| {
        schema
            .fields()
            .iter()
            .position(|f| f.name().trim().eq_ignore_ascii_case(n))
    };
    // Flux column: for o_ucd.
    if let Some(i) = ["FLUX", "FLUXDENS", "FLUX_DENSITY", "NET", "FLUXES"]
        .iter()
        .find_map(|n| col(n))
    {
        let f = &schema.fields()[i];
        out.flux_ucd = f.metadata().get("ucd").cloned();
        out.flux_unit = f.metadata().get("unit").cloned();
    }
    let Some((cname, i)) = WAVE_COLUMNS.iter().find_map(|n| col(n).map(|i| (*n, i))) else {
        return out;
    };
    let field = &schema.fields()[i];
    let all: Vec<f64> = batches.iter().flat_map(|b| values(b.column(i))).collect();
    if all.is_empty() {
        warnings.push(format!(
            "{name}: HDU {}: column {cname} has no values",
            h.index
        ));
        return out;
    }
    let mut lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let mut hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut n = all.len() as i64;
    // IUE-style: LAMBDA is the start, DELTAW the step, NPTS the count.
    if all.len() == batches.iter().map(|b| b.num_rows()).sum::<usize>() {
        let first = |c: &str| -> Option<f64> {
            let j = col(c)?;
            batches.iter().flat_map(|b| values(b.column(j))).next()
        };
        if let (Some(step), Some(npts)) = (first("DELTAW"), first("NPTS")) {
            if all.len() == 1 && npts >= 1.0 && step.is_finite() {
                hi = lo + step * (npts - 1.0);
                if hi < lo {
                    std::mem::swap(&mut lo, &mut hi);
                }
                n = npts as i64;
            }
        }
    }
    out.n = Some(n);
    let unit_text = field
        .metadata()
        .get("unit")
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    let upper = cname.to_ascii_uppercase();
    let (q, log10) = match (upper.as_str(), unit_text.as_deref()) {
        ("LOGLAM", _) => (spectral::Quantity::Wave(1e-10), true),
        (_, Some(u)) => match spectral::unit(u) {
            Some(q) => (q, false),
            None => {
                warnings.push(format!(
                    "{name}: HDU {}: column {cname}: unknown unit '{u}'",
                    h.index
                ));
                return out;
            }
        },
        ("FREQ" | "FREQUENCY", None) => (spectral::Quantity::Freq(1.0), false),
        ("VHELIO" | "VELOCITY" | "VLSR", None) => (spectral::Quantity::Velocity(1e3), false),
        (_, None) => {
            let mid = (lo + hi) / 2.0;
            if (900.0..=300_000.0).contains(&mid) {
                warnings.push(format!(
                    "{name}: HDU {}: column {cname} has no unit: Ångström assumed",
                    h.index
                ));
                (spectral::Quantity::Wave(1e-10), false)
            } else {
                warnings.push(format!(
                    "{name}: HDU {}: column {cname} has no unit",
                    h.index
                ));
                return out;
            }
        }
    };
    if matches!(
        q,
        spectral::Quantity::Freq(_) | spectral::Quantity::Velocity(_)
    ) {
        out.ucd = "em.freq";
    }
    let (lo, hi) = if log10 {
        (10f64.powf(lo), 10f64.powf(hi))
    } else {
        (lo, hi)
    };
    let rest = h
        .num("RESTFRQ")
        .or_else(|| h.num("RESTFREQ"))
        .filter(|f| *f > 0.0);
    let conv = |v| spectral::to_wavelength(q, v, spectral::VelocityKind::Optical, rest);
    match (conv(lo), conv(hi)) {
        (Some(a), Some(b)) => out.em = Some((a.min(b), a.max(b))),
        _ => warnings.push(format!(
            "{name}: HDU {}: column {cname} values {lo}..{hi} do not convert to wavelengths{}",
            h.index,
            if matches!(q, spectral::Quantity::Velocity(_)) && rest.is_none() {
                " (no RESTFRQ)"
            } else {
                ""
            }
        )),
    }
    out
}

/// A spectrum's pointing: RA/DEC-style keyword pairs, decimal or sexagesimal, to ICRS.
fn pointing(ctx: &Ctx, name: &str, warnings: &mut Vec<String>) -> Option<(f64, f64)> {
    const PAIRS: [(&str, &str); 6] = [
        ("RA", "DEC"),
        ("RA_TARG", "DEC_TARG"),
        ("RA-D", "DEC-D"),
        ("OBJCTRA", "OBJCTDEC"),
        ("RA_OBJ", "DEC_OBJ"),
        ("TARG_RA", "TARG_DEC"),
    ];
    for (kr, kd) in PAIRS {
        let ra = match (ctx.num(kr), ctx.text(kr)) {
            (Some(v), _) => Some(v),
            (None, Some(s)) => {
                let t = s.trim();
                let sexa = t.contains(':') || t.trim_start_matches(['+', '-']).contains(' ');
                celestial::parse_sexagesimal(t).map(|v| if sexa { v * 15.0 } else { v })
            }
            _ => None,
        };
        let dec = match (ctx.num(kd), ctx.text(kd)) {
            (Some(v), _) => Some(v),
            (None, Some(s)) => celestial::parse_sexagesimal(s),
            _ => None,
        };
        let (Some(ra), Some(dec)) = (ra, dec) else {
            continue;
        };
        if ra == 0.0 && dec == 0.0 {
            warnings.push(format!(
                "{name}: {kr}/{kd} are both 0: position treated as unknown"
            ));
            return None;
        }
        if !(0.0..=360.0).contains(&ra) || !(-90.0..=90.0).contains(&dec) {
            warnings.push(format!(
                "{name}: {kr}/{kd} = {ra}/{dec} out of range: ignored"
            ));
            continue;
        }
        let frame = match Frame::equatorial(ctx, "") {
            Ok(f) => f,
            Err(e) => {
                warnings.push(format!("{name}: {e}; position taken as ICRS"));
                Frame::Icrs
            }
        };
        return Some(frame.lonlat_to_icrs(ra, dec));
    }
    warnings.push(format!("{name}: no RA/DEC keywords: position left NULL"));
    None
}

fn spectrum_record(
    ctx: &Ctx,
    table: Option<TableAxis>,
    name: &str,
    warnings: &mut Vec<String>,
) -> ObsRecord {
    let mut r = common(ctx, name, warnings);
    r.dataproduct_type = "spectrum".into();
    if let Some((ra, dec)) = pointing(ctx, name, warnings) {
        r.s_ra = Some(ra);
        r.s_dec = Some(dec);
    }
    r.s_fov = ctx
        .hdu
        .num("APERTURE")
        .or_else(|| ctx.primary.num("APERTURE"))
        .filter(|a| *a > 0.0 && *a < 1.0);
    let mut wv = Vec::new();
    match table {
        Some(t) => {
            r.em_xel = t.n;
            r.em_ucd = Some(t.ucd.into());
            if let Some((a, b)) = t.em {
                r.em_min = Some(a);
                r.em_max = Some(b);
            }
            r.o_ucd = t
                .flux_ucd
                .map(|u| u.split(';').take(2).collect::<Vec<_>>().join(";"))
                .or_else(|| t.flux_unit.as_deref().and_then(|u| observable_ucd(u, true)));
        }
        None => {
            let n = ctx.hdu.axes().first().copied().unwrap_or(0);
            r.em_xel = Some(n as i64);
            r.em_ucd = Some(
                if ctx
                    .hdu
                    .str("CTYPE1")
                    .is_some_and(|c| c.trim().to_ascii_uppercase().starts_with("FREQ"))
                {
                    "em.freq"
                } else {
                    "em.wl"
                }
                .into(),
            );
            if let Some((a, b)) = spectral::spectrum_axis(ctx.hdu, n, &mut wv) {
                r.em_min = Some(a);
                r.em_max = Some(b);
            }
            r.o_ucd = ctx.text("BUNIT").and_then(|u| observable_ucd(u, true));
        }
    }
    for m in wv {
        warnings.push(format!("{name}: HDU {}: {m}", ctx.hdu.index));
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Arrow

fn col(
    name: &str,
    datatype: Option<&str>,
    unit: Option<&str>,
    ucd: &str,
    utype: Option<&str>,
    description: &str,
) -> ColumnMeta {
    ColumnMeta {
        name: name.into(),
        datatype: datatype.map(str::to_string),
        unit: unit.map(str::to_string),
        ucd: Some(ucd.into()).filter(|u: &String| !u.is_empty()),
        utype: utype.map(|u| format!("obscore:{u}")),
        description: Some(description.into()),
        principal: Some(true),
        ..Default::default()
    }
}

/// The `ivoa.obscore` columns, in order (ObsCore 1.1, table 5 and the optional columns used
/// here, then `hdu`). `s_region` is text, an STC-S `Polygon ICRS lon lat …` with xtype
/// `adql:REGION` as ObsCore 1.1 and taplint want (and as Aladin draws footprints); the ADQL
/// geometry functions read such text wherever a geometry is expected.
pub fn obscore_columns() -> Vec<ColumnMeta> {
    let s = Some("string");
    let i = Some("int32");
    let l = Some("int64");
    let d = Some("float64");
    let mut v = vec![
        col(
            "dataproduct_type",
            s,
            None,
            "meta.code.class",
            Some("ObsDataset.dataProductType"),
            "Data product type: image, cube or spectrum",
        ),
        col(
            "calib_level",
            i,
            None,
            "meta.code;obs.calib",
            Some("ObsDataset.calibLevel"),
            "Calibration level: 0 raw, 1 instrumental, 2 calibrated, 3 enhanced, 4 analysis",
        ),
        col(
            "obs_collection",
            s,
            None,
            "meta.id",
            Some("DataID.Collection"),
            "Name of the data collection",
        ),
        col(
            "obs_id",
            s,
            None,
            "meta.id",
            Some("DataID.observationID"),
            "Observation identifier",
        ),
        col(
            "obs_publisher_did",
            s,
            None,
            "meta.ref.ivoid",
            Some("Curation.PublisherDID"),
            "Publisher's dataset identifier (IVOA URI)",
        ),
        col(
            "access_url",
            s,
            None,
            "meta.ref.url",
            Some("Access.Reference"),
            "URL of the data file",
        ),
        col(
            "access_format",
            s,
            None,
            "meta.code.mime",
            Some("Access.Format"),
            "MIME type of the data file",
        ),
        col(
            "access_estsize",
            l,
            Some("kbyte"),
            "phys.size;meta.file",
            Some("Access.Size"),
            "Estimated size of the data file",
        ),
        col(
            "target_name",
            s,
            None,
            "meta.id;src",
            Some("Target.Name"),
            "Name of the observed target",
        ),
        col(
            "s_ra",
            d,
            Some("deg"),
            "pos.eq.ra",
            Some("Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1"),
            "Right ascension (ICRS) of the centre of the data",
        ),
        col(
            "s_dec",
            d,
            Some("deg"),
            "pos.eq.dec",
            Some("Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2"),
            "Declination (ICRS) of the centre of the data",
        ),
        col(
            "s_fov",
            d,
            Some("deg"),
            "phys.angSize;instr.fov",
            Some("Char.SpatialAxis.Coverage.Bounds.Extent.diameter"),
            "Diameter of the region covered",
        ),
        col(
            "s_region",
            s,
            None,
            "pos.outline;obs.field",
            Some("Char.SpatialAxis.Coverage.Support.Area"),
            "Footprint of the data: an STC-S ICRS polygon along the image border",
        ),
        col(
            "s_resolution",
            d,
            Some("arcsec"),
            "pos.angResolution",
            Some("Char.SpatialAxis.Resolution.Refval.value"),
            "Spatial resolution (beam or seeing FWHM)",
        ),
        col(
            "s_xel1",
            l,
            None,
            "meta.number",
            Some("Char.SpatialAxis.numBins1"),
            "Number of pixels along the first spatial axis",
        ),
        col(
            "s_xel2",
            l,
            None,
            "meta.number",
            Some("Char.SpatialAxis.numBins2"),
            "Number of pixels along the second spatial axis",
        ),
        col(
            "t_xel",
            l,
            None,
            "meta.number",
            Some("Char.TimeAxis.numBins"),
            "Number of time samples",
        ),
        col(
            "t_min",
            d,
            Some("d"),
            "time.start;obs.exposure",
            Some("Char.TimeAxis.Coverage.Bounds.Limits.StartTime"),
            "Start time (MJD)",
        ),
        col(
            "t_max",
            d,
            Some("d"),
            "time.end;obs.exposure",
            Some("Char.TimeAxis.Coverage.Bounds.Limits.StopTime"),
            "Stop time (MJD)",
        ),
        col(
            "t_exptime",
            d,
            Some("s"),
            "time.duration;obs.exposure",
            Some("Char.TimeAxis.Coverage.Support.Extent"),
            "Total exposure time",
        ),
        col(
            "t_resolution",
            d,
            Some("s"),
            "time.resolution",
            Some("Char.TimeAxis.Resolution.Refval.value"),
            "Temporal resolution",
        ),
        col(
            "em_xel",
            l,
            None,
            "meta.number",
            Some("Char.SpectralAxis.numBins"),
            "Number of spectral samples",
        ),
        col(
            "em_min",
            d,
            Some("m"),
            "em.wl;stat.min",
            Some("Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit"),
            "Shortest wavelength covered",
        ),
        col(
            "em_max",
            d,
            Some("m"),
            "em.wl;stat.max",
            Some("Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit"),
            "Longest wavelength covered",
        ),
        col(
            "em_res_power",
            d,
            None,
            "spect.resolution",
            Some("Char.SpectralAxis.Resolution.ResolPower.refVal"),
            "Spectral resolving power λ/δλ",
        ),
        col(
            "o_ucd",
            s,
            None,
            "meta.ucd",
            Some("Char.ObservableAxis.ucd"),
            "UCD of the observable (the data values)",
        ),
        col(
            "pol_states",
            s,
            None,
            "meta.code;phys.polarization",
            Some("Char.PolarizationAxis.stateList"),
            "Polarization states present, e.g. /I/Q/U/V/",
        ),
        col(
            "pol_xel",
            l,
            None,
            "meta.number",
            Some("Char.PolarizationAxis.numBins"),
            "Number of polarization samples",
        ),
        col(
            "facility_name",
            s,
            None,
            "meta.id;instr.tel",
            Some("Provenance.ObsConfig.Facility.name"),
            "Telescope or facility",
        ),
        col(
            "instrument_name",
            s,
            None,
            "meta.id;instr",
            Some("Provenance.ObsConfig.Instrument.name"),
            "Instrument",
        ),
        col(
            "obs_title",
            s,
            None,
            "meta.title;obs",
            Some("DataID.Title"),
            "Brief description of the data product",
        ),
        col(
            "dataproduct_subtype",
            s,
            None,
            "meta.code.class",
            Some("ObsDataset.dataProductSubtype"),
            "Data product subtype",
        ),
        col(
            "target_class",
            s,
            None,
            "src.class",
            Some("Target.Class"),
            "Class of the target",
        ),
        col(
            "em_ucd",
            s,
            None,
            "meta.ucd",
            Some("Char.SpectralAxis.ucd"),
            "Nature of the spectral axis",
        ),
        col(
            "s_pixel_scale",
            d,
            Some("arcsec"),
            "phys.angSize;instr.pixel",
            Some("Char.SpatialAxis.Sampling.RefVal.SamplingPeriod"),
            "Pixel size at the centre of the image",
        ),
    ];
    let mut hdu = col(
        "hdu",
        i,
        None,
        "meta.number",
        None,
        "FITS HDU described (0 = primary; not an ObsCore column)",
    );
    hdu.principal = Some(false);
    v.push(hdu);
    v[12].xtype = Some("adql:REGION".into());
    v
}

/// The Arrow fields of `cols`: types from `datatype` (geometry for `s_region`), all nullable
/// except the ObsCore NOT NULL columns, decorated with the column metadata.
fn fields(cols: &[ColumnMeta], not_null: &[&str]) -> Result<Vec<Field>, Error> {
    cols.iter()
        .map(|c| {
            let dt = match c.datatype.as_deref() {
                Some(t) => crate::meta::parse_type(t)?,
                None => adql::geom::geometry_type(),
            };
            let f = Field::new(&c.name, dt, !not_null.contains(&c.name.as_str()));
            Ok(c.decorate(&f))
        })
        .collect()
}

const OBSCORE_NOT_NULL: [&str; 7] = [
    "dataproduct_type",
    "calib_level",
    "obs_collection",
    "obs_id",
    "obs_publisher_did",
    "access_url",
    "access_format",
];

/// The records as one Arrow batch with the schema of [`obscore_columns`].
pub fn obscore_batch(records: &[ObsRecord]) -> Result<RecordBatch, Error> {
    let cols = obscore_columns();
    let schema = Arc::new(Schema::new(fields(&cols, &OBSCORE_NOT_NULL)?));
    let n = records.len();
    let strs = |f: &dyn Fn(&ObsRecord) -> Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * 16);
        for r in records {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let f64s = |f: &dyn Fn(&ObsRecord) -> Option<f64>| -> ArrayRef {
        let mut b = Float64Builder::with_capacity(n);
        for r in records {
            b.append_option(f(r).filter(|v| v.is_finite()));
        }
        Arc::new(b.finish())
    };
    let i64s = |f: &dyn Fn(&ObsRecord) -> Option<i64>| -> ArrayRef {
        let mut b = Int64Builder::with_capacity(n);
        for r in records {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let i32s = |f: &dyn Fn(&ObsRecord) -> Option<i32>| -> ArrayRef {
        let mut b = Int32Builder::with_capacity(n);
        for r in records {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let region: ArrayRef = {
        let mut b = StringBuilder::with_capacity(n, n * 200);
        for r in records {
            b.append_option(r.s_region.as_deref().and_then(stcs_polygon));
        }
        Arc::new(b.finish())
    };
    let arrays: Vec<ArrayRef> = vec![
        strs(&|r| Some(r.dataproduct_type.as_str())),
        i32s(&|r| Some(r.calib_level)),
        strs(&|r| Some(r.obs_collection.as_str())),
        strs(&|r| Some(r.obs_id.as_str())),
        strs(&|r| Some(r.obs_publisher_did.as_str())),
        strs(&|r| Some(r.access_url.as_str())),
        strs(&|r| Some(r.access_format.as_str())),
        i64s(&|r| Some(r.access_estsize)),
        strs(&|r| r.target_name.as_deref()),
        f64s(&|r| r.s_ra),
        f64s(&|r| r.s_dec),
        f64s(&|r| r.s_fov),
        region,
        f64s(&|r| r.s_resolution),
        i64s(&|r| r.s_xel1),
        i64s(&|r| r.s_xel2),
        i64s(&|r| r.t_xel),
        f64s(&|r| r.t_min),
        f64s(&|r| r.t_max),
        f64s(&|r| r.t_exptime),
        f64s(&|r| r.t_resolution),
        i64s(&|r| r.em_xel),
        f64s(&|r| r.em_min),
        f64s(&|r| r.em_max),
        f64s(&|r| r.em_res_power),
        strs(&|r| r.o_ucd.as_deref()),
        strs(&|r| r.pol_states.as_deref()),
        i64s(&|r| r.pol_xel),
        strs(&|r| r.facility_name.as_deref()),
        strs(&|r| r.instrument_name.as_deref()),
        strs(&|r| r.obs_title.as_deref()),
        strs(&|r| r.dataproduct_subtype.as_deref()),
        strs(&|r| r.target_class.as_deref()),
        strs(&|r| r.em_ucd.as_deref()),
        f64s(&|r| r.s_pixel_scale),
        i32s(&|r| r.hdu.map(|h| h as i32)),
    ];
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// An ICRS polygon as STC-S (`Polygon ICRS lon1 lat1 …`); `None` for fewer than 3 vertices or
/// a non-finite coordinate.
pub fn stcs_polygon(p: &[(f64, f64)]) -> Option<String> {
    if p.len() < 3 || !p.iter().all(|(a, b)| a.is_finite() && b.is_finite()) {
        return None;
    }
    let mut out = String::from("Polygon ICRS");
    for (lon, lat) in p {
        out.push_str(&format!(" {lon} {lat}"));
    }
    Some(out)
}

/// The header-archive columns: the DID, HDU and card number, keyword, value, comment, and the
/// position (`s_ra`, `s_dec`) the HATS layout partitions on.
pub fn header_columns() -> Vec<ColumnMeta> {
    vec![
        col("obs_publisher_did", Some("string"), None, "meta.ref.ivoid", Some("Curation.PublisherDID"), "Dataset the header belongs to (as in ivoa.obscore; for HDUs no record describes, the file's DID without #hdu)"),
        col("hdu", Some("int32"), None, "meta.number", None, "HDU number (0 = primary)"),
        col("seq", Some("int32"), None, "meta.number", None, "Card number within the header, from 1"),
        col("keyword", Some("string"), None, "meta.id", None, "Header keyword (HIERARCH keywords in full; empty for blank cards)"),
        col("card_value", Some("string"), None, "meta.note", None, "Value as written (strings unquoted); NULL for commentary cards"),
        col("comment", Some("string"), None, "meta.note", None, "Card comment, or the text of a COMMENT/HISTORY card"),
        col("s_ra", Some("float64"), Some("deg"), "pos.eq.ra", None, "Right ascension (ICRS) of the dataset"),
        col("s_dec", Some("float64"), Some("deg"), "pos.eq.dec", None, "Declination (ICRS) of the dataset"),
    ]
    .into_iter()
    .map(|mut c| {
        if c.name != "obs_publisher_did" {
            c.utype = None;
        }
        c
    })
    .collect()
}

/// Header rows as one Arrow batch with the schema of [`header_columns`].
pub fn header_batch(rows: &[HeaderRow]) -> Result<RecordBatch, Error> {
    let cols = header_columns();
    let schema = Arc::new(Schema::new(fields(
        &cols,
        &["obs_publisher_did", "hdu", "seq", "keyword"],
    )?));
    let n = rows.len();
    let mut did = StringBuilder::with_capacity(n, n * 48);
    let mut hdu = Int32Builder::with_capacity(n);
    let mut seq = Int32Builder::with_capacity(n);
    let mut key = StringBuilder::with_capacity(n, n * 8);
    let mut val = StringBuilder::with_capacity(n, n * 16);
    let mut com = StringBuilder::with_capacity(n, n * 24);
    let mut ra = Float64Builder::with_capacity(n);
    let mut dec = Float64Builder::with_capacity(n);
    for r in rows {
        did.append_value(&r.obs_publisher_did);
        hdu.append_value(r.hdu);
        seq.append_value(r.seq);
        key.append_value(&r.keyword);
        val.append_option(r.value.as_deref());
        com.append_option(r.comment.as_deref());
        ra.append_option(r.s_ra);
        dec.append_option(r.s_dec);
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(did.finish()),
        Arc::new(hdu.finish()),
        Arc::new(seq.finish()),
        Arc::new(key.finish()),
        Arc::new(val.finish()),
        Arc::new(com.finish()),
        Arc::new(ra.finish()),
        Arc::new(dec.finish()),
    ];
    Ok(RecordBatch::try_new(schema, arrays)?)
}

#[cfg(test)]
mod tests;
