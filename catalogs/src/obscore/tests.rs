//! Tests against real files in `data/demo`, with astropy 8.0.2 as the referee.
//!
//! The expected positions were computed with this snippet (`pixel_to_world` is 0-based, FITS
//! pixels 1-based; `.icrs` converts FK5/galactic to ICRS):
//!
//! ```python
//! from astropy.io import fits; from astropy.wcs import WCS
//! h = fits.open(f); w = WCS(h[i].header, fobj=h).celestial
//! n1, n2 = h[i].header['NAXIS1'], h[i].header['NAXIS2']
//! for x, y in [((n1+1)/2, (n2+1)/2), (0.5, 0.5), (n1+0.5, 0.5), (n1+0.5, n2+0.5), (0.5, n2+0.5)]:
//!     c = w.pixel_to_world(x - 1, y - 1).icrs; print(c.ra.deg, c.dec.deg)
//! ```

use super::*;
use datafusion::arrow::array::AsArray;

fn demo(rel: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/demo")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn derive_bytes(rel: &str, bytes: &[u8]) -> Result<Derived, Error> {
    derive(&Product {
        collection: "demo",
        authority: "example.org",
        path: rel,
        bytes,
    })
}

fn derive_demo(rel: &str) -> Derived {
    derive_bytes(rel, &demo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Angular distance in degrees.
fn dist(a: (f64, f64), b: (f64, f64)) -> f64 {
    celestial::angle(&celestial::vec_of(a.0, a.1), &celestial::vec_of(b.0, b.1))
}

/// (file, HDU, [centre, corner (0.5,0.5), (N1+0.5,0.5), (N1+0.5,N2+0.5), (0.5,N2+0.5)]) from
/// astropy, ICRS degrees.
#[allow(clippy::type_complexity)]
const ASTROPY: [(&str, usize, [(f64, f64); 5]); 18] = [
    (
        "ccd_apogee_alta_b_sip.fits",
        0,
        [
            (280.546101802, 0.112586829),
            (280.537821495, 0.110005463),
            (280.553119204, 0.107523825),
            (280.55438217, 0.115168133),
            (280.539084204, 0.117650291),
        ],
    ),
    (
        "ccd_aspen_ey_uma_tansip.fits.gz",
        0,
        [
            (135.02107775, 49.608673761),
            (134.981489689, 49.596688739),
            (135.039491621, 49.582976897),
            (135.060685223, 49.620642866),
            (135.002644359, 49.63436421),
        ],
    ),
    (
        "cfht_megaprime_sa110.fits",
        0,
        [
            (280.838175545, 0.390232529),
            (280.835552633, 0.392855511),
            (280.840798526, 0.392855335),
            (280.840798455, 0.387609546),
            (280.835552564, 0.38760972),
        ],
    ),
    (
        "cube_hcn_g283.2-1.0.fits.gz",
        0,
        [
            (153.623077673, -57.729992427),
            (153.679449135, -57.825047327),
            (153.436760977, -57.736716112),
            (153.567001688, -57.634912621),
            (153.809323722, -57.722995329),
        ],
    ),
    (
        "dss_poss1_m1_ned.fits",
        0,
        [
            (83.632963549, 22.014696945),
            (83.678433095, 21.973321585),
            (83.588356784, 21.972491657),
            (83.587466197, 22.05605847),
            (83.677597553, 22.056891025),
        ],
    ),
    (
        "dss_uks_1429-6241.fits.gz",
        0,
        [
            (217.48364601, -62.68516466),
            (217.533706429, -62.709383375),
            (217.430800733, -62.70812315),
            (217.433666413, -62.660928466),
            (217.536409504, -62.662186393),
        ],
    ),
    (
        "effelsberg_11cm_g10.5.fits",
        0,
        [
            (272.198765193, -19.853053909),
            (272.319197454, -19.820505407),
            (272.233312158, -19.966363821),
            (272.0782803, -19.88552707),
            (272.164264259, -19.739742906),
        ],
    ),
    (
        "fermi_lat_counts_gc.fits.gz",
        1,
        [
            (266.483508145, -28.919529541),
            (286.220450829, -15.935816743),
            (264.050098208, -51.17812633),
            (242.033560306, -38.328537679),
            (268.027279744, -6.631047512),
        ],
    ),
    (
        "hst_acs_candels_gn_3filters.fits",
        1,
        [
            (189.492069846, 62.206148756),
            (189.492959761, 62.205730397),
            (189.491172659, 62.205733786),
            (189.491179906, 62.206567111),
            (189.492967057, 62.206563721),
        ],
    ),
    (
        "hst_acs_candels_gn_3filters.fits",
        2,
        [
            (189.492069846, 62.206148756),
            (189.492959761, 62.205730397),
            (189.491172659, 62.205733786),
            (189.491179906, 62.206567111),
            (189.492967057, 62.206563721),
        ],
    ),
    (
        "hst_acs_candels_gn_3filters.fits",
        3,
        [
            (189.492069846, 62.206148756),
            (189.492959761, 62.205730397),
            (189.491172659, 62.205733786),
            (189.491179906, 62.206567111),
            (189.492967057, 62.206563721),
        ],
    ),
    (
        "irsa_sfd_dust_m51.fits",
        0,
        [
            (202.4952307, 47.231635792),
            (206.697131637, 49.40689957),
            (198.999480196, 49.931194925),
            (198.620371655, 44.905787957),
            (205.611781792, 44.468858241),
        ],
    ),
    (
        "msx_e_galactic_center.fits",
        0,
        [
            (266.407603002, -28.930490433),
            (267.186394119, -28.763102398),
            (266.597587443, -29.613048249),
            (265.626326658, -29.093382198),
            (266.22010454, -28.247669484),
        ],
    ),
    (
        "rosat_allsky_aitoff.fits",
        0,
        [
            (266.404988287, -28.936177762),
            (f64::NAN, f64::NAN),
            (f64::NAN, f64::NAN),
            (f64::NAN, f64::NAN),
            (f64::NAN, f64::NAN),
        ],
    ),
    (
        "spitzer_sha_1999AQ10.fits",
        0,
        [
            (138.891917517, 29.285293866),
            (138.868277459, 29.327664599),
            (138.845509236, 29.263562246),
            (138.916302741, 29.244158119),
            (138.93998664, 29.305490194),
        ],
    ),
    (
        "ukirt_wfcam_k_taurus.fits",
        1,
        [
            (83.633071948, 22.014512493),
            (83.62404423, 22.00613811),
            (83.642149037, 22.006109474),
            (83.642099175, 22.022887404),
            (83.623989696, 22.022918652),
        ],
    ),
    (
        "vla_first_J105007+304037.fits",
        0,
        [
            (162.529814661, 30.676922947),
            (162.539425055, 30.668688813),
            (162.520241869, 30.668656387),
            (162.520202618, 30.68515637),
            (162.539389081, 30.685188801),
        ],
    ),
    (
        "vla_nvas_w51.fits",
        0,
        [
            (290.924402404, 14.511487731),
            (290.941672966, 14.493299413),
            (290.907131865, 14.493299391),
            (290.907129003, 14.529674787),
            (290.94167578, 14.529674809),
        ],
    ),
];

#[test]
fn images_match_astropy() {
    // astropy values are rounded to 1e-9 deg; ZPN differs from wcslib by ~1e-8.
    const TOL: f64 = 1e-6;
    for (file, hdu, exp) in ASTROPY {
        let rel = format!("images/{file}");
        let out = derive_demo(&rel);
        let r = out
            .records
            .iter()
            .find(|r| r.hdu == Some(hdu))
            .unwrap_or_else(|| panic!("{rel}: no record for HDU {hdu}: {:?}", out.warnings));
        let centre = (r.s_ra.unwrap(), r.s_dec.unwrap());
        assert!(
            dist(centre, exp[0]) < TOL,
            "{rel}: centre {centre:?} vs astropy {:?}",
            exp[0]
        );
        if exp[1].0.is_nan() {
            assert!(r.s_region.is_none(), "{rel}");
            assert_eq!(r.s_fov, Some(360.0), "{rel}");
            assert!(
                out.warnings
                    .iter()
                    .any(|w| w.contains(file) && w.contains("whole sky")),
                "{rel}: {:?}",
                out.warnings
            );
            continue;
        }
        let poly = r
            .s_region
            .as_ref()
            .unwrap_or_else(|| panic!("{rel}: no s_region"));
        // Every astropy corner is a vertex of the footprint.
        for c in &exp[1..] {
            let best = poly.iter().map(|v| dist(*v, *c)).fold(f64::MAX, f64::min);
            assert!(
                best < TOL,
                "{rel}: corner {c:?} is {best}° from the nearest vertex"
            );
        }
        // s_fov: the farthest corner from the centre, doubled (vertices ⊇ corners).
        let far = exp[1..]
            .iter()
            .map(|c| dist(centre, *c))
            .fold(0.0, f64::max);
        let fov = r.s_fov.unwrap();
        assert!(
            fov >= 2.0 * far - 2.0 * TOL && fov < 2.0 * far * 1.01 + 1e-6,
            "{rel}: s_fov {fov} vs corners {}",
            2.0 * far
        );
        // The polygon is one adql's geometry accepts, the centre is inside, the antipode not.
        let region = adql::geom::Region::Polygon {
            vertices: poly.clone(),
        };
        let prepared = region.prepare();
        assert!(
            prepared.contains_point(centre.0, centre.1),
            "{rel}: centre not inside s_region"
        );
        assert!(
            !prepared.contains_point(centre.0 + 180.0, -centre.1),
            "{rel}: antipode inside"
        );
        // Counter-clockwise (inside on the left of each edge, as adql walks it).
        let c = celestial::vec_of(centre.0, centre.1);
        let k = poly.len();
        for i in 0..k {
            let a = celestial::vec_of(poly[i].0, poly[i].1);
            let b = celestial::vec_of(poly[(i + 1) % k].0, poly[(i + 1) % k].1);
            assert!(
                celestial::dot(&celestial::cross(&a, &b), &c) > 0.0,
                "{rel}: edge {i} clockwise"
            );
        }
        assert_eq!(
            r.dataproduct_type,
            if file.starts_with("cube") {
                "cube"
            } else {
                "image"
            },
            "{rel}"
        );
        assert_eq!(r.access_format, "application/fits");
    }
}

#[test]
fn footprint_edges_follow_the_wcs() {
    // Between the vertices, the true image border stays within 1% of a pixel of the
    // great-circle edges (checked at the midpoints of the edges of the SIP and SIN images).
    for (file, hdu) in [
        ("images/ccd_aspen_ey_uma_tansip.fits.gz", 0),
        ("images/fermi_lat_counts_gc.fits.gz", 1),
        ("images/irsa_sfd_dust_m51.fits", 0),
    ] {
        let bytes = crate::source::maybe_gunzip(demo(file), u64::MAX).unwrap();
        let hdus = fits::hdus(&bytes).unwrap();
        let h = &hdus[hdu];
        let w = CelestialWcs::from_header(h, &h.axes()).unwrap().unwrap();
        let f = w.footprint();
        let poly = f.polygon.unwrap();
        let scale = f.pixel_scale.unwrap() / 3600.0;
        let (n1, n2) = (w.size.0 as f64, w.size.1 as f64);
        // Sample the bottom edge finely: each sample lies within tolerance of some polygon edge.
        let k = poly.len();
        let vs: Vec<_> = poly.iter().map(|p| celestial::vec_of(p.0, p.1)).collect();
        for s in 0..=200 {
            let x = 0.5 + n1 * s as f64 / 200.0;
            for (px, py) in [(x, 0.5), (x, n2 + 0.5)] {
                let (ra, dec) = w.pix2icrs(px, py).unwrap();
                let p = celestial::vec_of(ra, dec);
                let off = (0..k)
                    .map(|i| {
                        let n = celestial::cross(&vs[i], &vs[(i + 1) % k]);
                        let nn = celestial::dot(&n, &n).sqrt();
                        (celestial::dot(&n, &p) / nn).asin().to_degrees().abs()
                    })
                    .fold(f64::MAX, f64::min);
                assert!(
                    off < 0.011 * scale + 1e-9,
                    "{file}: border point {s} is {} px off the polygon",
                    off / scale
                );
            }
        }
    }
}

#[test]
fn galactic_image_lands_in_icrs() {
    let r = &derive_demo("images/msx_e_galactic_center.fits").records[0];
    assert!((r.s_ra.unwrap() - 266.4076).abs() < 1e-3 && (r.s_dec.unwrap() + 28.9305).abs() < 1e-3);
    // Galactic centre region: the GC (Sgr A*, 266.417, -29.008) is inside the 1°×1° footprint.
    let region = adql::geom::Region::Polygon {
        vertices: r.s_region.clone().unwrap(),
    };
    assert!(region.contains_point(266.41683, -29.00781));
    assert_eq!(r.em_min, Some(2.134e-5), "WAVELENG");
}

#[test]
fn multi_extension_file_gives_one_record_per_image() {
    let out = derive_demo("images/hst_acs_candels_gn_3filters.fits");
    assert_eq!(out.records.len(), 3);
    let dids: Vec<_> = out
        .records
        .iter()
        .map(|r| r.obs_publisher_did.as_str())
        .collect();
    assert_eq!(
        dids,
        [
            "ivo://example.org/demo?images/hst_acs_candels_gn_3filters.fits#1",
            "ivo://example.org/demo?images/hst_acs_candels_gn_3filters.fits#2",
            "ivo://example.org/demo?images/hst_acs_candels_gn_3filters.fits#3"
        ]
    );
    // F606W, F814W, F850LP
    let em: Vec<_> = out
        .records
        .iter()
        .map(|r| (r.em_min.unwrap() * 1e9, r.em_max.unwrap() * 1e9))
        .collect();
    assert!(em[0].0 < 606.0 && em[0].1 > 606.0, "{em:?}");
    assert!(em[1].0 < 814.0 && em[1].1 > 814.0, "{em:?}");
    assert!(em[2].0 >= 849.0 && em[2].1 > 1000.0, "{em:?}");
    // Header rows: every card of all 4 HDUs; the primary's rows carry the file DID.
    let bytes = demo("images/hst_acs_candels_gn_3filters.fits");
    let hdus = fits::hdus(&bytes).unwrap();
    let cards: usize = hdus.iter().map(|h| h.cards.len()).sum();
    assert_eq!(out.headers.len(), cards);
    let h0 = out.headers.iter().find(|h| h.hdu == 0).unwrap();
    assert_eq!(
        h0.obs_publisher_did,
        "ivo://example.org/demo?images/hst_acs_candels_gn_3filters.fits"
    );
    assert_eq!(
        (h0.seq, h0.keyword.as_str(), h0.value.as_deref()),
        (1, "SIMPLE", Some("T"))
    );
    let h2 = out.headers.iter().find(|h| h.hdu == 2).unwrap();
    assert!(h2.obs_publisher_did.ends_with("#2"));
    assert!(out.headers.iter().all(|h| h.s_ra.is_some()));
}

#[test]
fn radio_images_and_cubes() {
    // VLA FIRST: degenerate FREQ (1364.9 MHz, 21.875 MHz wide) and STOKES axes.
    let r = &derive_demo("images/vla_first_J105007+304037.fits").records[0];
    let c = 299_792_458.0;
    assert!((r.em_min.unwrap() - c / (1364.9e6 + 21.875e6 / 2.0)).abs() < 1e-9);
    assert!((r.em_max.unwrap() - c / (1364.9e6 - 21.875e6 / 2.0)).abs() < 1e-9);
    assert_eq!((r.pol_states.as_deref(), r.pol_xel), (Some("/I/"), Some(1)));
    assert_eq!(r.dataproduct_type, "image");
    assert_eq!(r.s_resolution, Some(0.0015 * 3600.0));
    assert_eq!(r.o_ucd.as_deref(), Some("phot.flux.density"));
    // HCN cube: VRAD axis with RESTFRQ 88.6318473 GHz → λ ≈ 3.3824 mm.
    let r = &derive_demo("images/cube_hcn_g283.2-1.0.fits.gz").records[0];
    assert_eq!(r.dataproduct_type, "cube");
    assert_eq!(r.em_xel, Some(352));
    let nu0 = 8.86318473e10;
    let v = |p: f64| -9927.053778 + (p - 133.0) * 113.969328;
    let lam = |p: f64| c / (nu0 * (1.0 - v(p) / c));
    assert!(
        (r.em_min.unwrap() - lam(0.5)).abs() < 1e-12,
        "{:?}",
        r.em_min
    );
    assert!(
        (r.em_max.unwrap() - lam(352.5)).abs() < 1e-12,
        "{:?}",
        r.em_max
    );
}

#[test]
fn spectra() {
    // (file, em_min Å, em_max Å, tolerance Å): README ranges (pixel centres; ours are pixel
    // edges, so within a pixel).
    let cases = [
        (
            "spectra/r.UVES.2011-08-11T232352.266-A01_0000.fits.gz",
            3732.06,
            4999.74,
            0.05,
        ),
        ("spectra/keck_esi_q0100+13_flux.fits", 3812.0, 10932.0, 1.0),
        (
            "spectra/magellan_mage_um184_flux.fits",
            3042.0,
            10272.0,
            1.0,
        ),
        (
            "spectra/sdss_J220248.31+123656.3.fits",
            3554.0,
            10356.0,
            1.5,
        ),
        (
            "spectra/vlt_xshooter_xq100_BRJ2349-3712.fits.gz",
            9817.5,
            18235.0,
            0.5,
        ),
        (
            "spectra/iue_spectrum_pyvo.fits",
            1000.8,
            1000.8 + 375.0 * 2.6515958,
            0.01,
        ),
    ];
    for (file, lo, hi, tol) in cases {
        let out = derive_demo(file);
        assert_eq!(out.records.len(), 1, "{file}");
        let r = &out.records[0];
        assert_eq!(r.dataproduct_type, "spectrum");
        assert_eq!(r.access_format, "application/fits");
        let (a, b) = (r.em_min.unwrap() * 1e10, r.em_max.unwrap() * 1e10);
        assert!(
            (a - lo).abs() < tol && (b - hi).abs() < tol,
            "{file}: {a}..{b} Å vs {lo}..{hi}"
        );
    }
    // Arecibo: FREQ column in MHz, 1340.32..1365.30 MHz.
    let r = &derive_demo("spectra/arecibo_alfalfa_AGC100051.fits").records[0];
    let c = 299_792_458.0;
    assert!((r.em_min.unwrap() - c / 1365.2978480657112e6).abs() < 1e-12);
    assert!((r.em_max.unwrap() - c / 1340.3222621282112e6).abs() < 1e-12);
    assert_eq!(r.hdu, Some(1));
    // Position from the extension header (FK5 J2000 → ICRS moves it by the 20 mas frame bias).
    assert!(dist((r.s_ra.unwrap(), r.s_dec.unwrap()), (2.0037095, 14.839847)) < 2e-5);

    // UVES: time from MJD-OBS, exposure from EXPTIME, target from ESO OBS TARG NAME.
    let r = &derive_demo("spectra/r.UVES.2011-08-11T232352.266-A01_0000.fits.gz").records[0];
    assert_eq!(r.t_min, Some(55784.97491049));
    assert!((r.t_max.unwrap() - (55784.97491049 + 1200.0013 / 86400.0)).abs() < 1e-9);
    assert_eq!(r.target_name.as_deref(), Some("MN-Lup"));
    assert_eq!(r.facility_name.as_deref(), Some("ESO-VLT-U2"));
    // astropy: SkyCoord(230.876323, -38.35773, frame=FK5(equinox='J2000')).icrs
    assert!(dist((r.s_ra.unwrap(), r.s_dec.unwrap()), (230.876323, -38.35773)) < 2e-5);

    // Keck: RA/DEC '01:00:33.40' '+13:00:10.0' FK4 B1950. astropy:
    // SkyCoord('01:00:33.40 +13:00:10.0', unit=(u.hourangle, u.deg), frame=FK4(equinox='B1950')).icrs
    // = (15.797150401916, 13.271084924267617). MJD-OBS is corrupt: DATE-OBS + UT used.
    let out = derive_demo("spectra/keck_esi_q0100+13_flux.fits");
    let r = &out.records[0];
    assert!(
        dist(
            (r.s_ra.unwrap(), r.s_dec.unwrap()),
            (15.797150401916, 13.271084924267617)
        ) < 1e-6
    );
    let ut = (13.0 + 24.0 / 60.0 + 30.34 / 3600.0) / 24.0;
    assert!(
        (r.t_min.unwrap() - (51760.0 + ut)).abs() < 1e-9,
        "{:?}",
        r.t_min
    );
    assert!(out.warnings.iter().any(|w| w.contains("MJD-OBS")));

    // IUE: zeroed RA/DEC is no position.
    let out = derive_demo("spectra/iue_spectrum_pyvo.fits");
    assert_eq!(out.records[0].s_ra, None);
    assert!(out.warnings.iter().any(|w| w.contains("both 0")));
}

#[test]
fn frames_match_astropy() {
    // astropy 8.0.2: SkyCoord(..., frame=FK4(equinox=...)).icrs and FK5(equinox='J2010').
    let f = Frame::Fk4(1950.0, true).lonlat_to_icrs(10.0, 20.0);
    assert!(
        dist(f, (10.658967275715431, 20.2738672156196)) < 3e-7,
        "{f:?}"
    );
    let f = Frame::Fk4(1975.0, true).lonlat_to_icrs(230.0, -60.0);
    assert!(
        dist(f, (230.50634176996778, -60.08906598372144)) < 3e-6,
        "{f:?}"
    );
    let f = Frame::Fk5(2010.0).lonlat_to_icrs(230.0, -60.0);
    assert!(
        dist(f, (229.79816086842996, -59.96414357714248)) < 3e-6,
        "{f:?}"
    );
}

#[test]
fn dates() {
    assert_eq!(parse_date("1858-11-17", None), Some(0.0));
    assert_eq!(parse_date("2000-01-01T12:00:00", None), Some(51544.5));
    assert_eq!(parse_date("08/11/51", Some("09:36:00.00")), Some(33958.4));
    assert_eq!(parse_date("19930417", None), Some(49094.0));
    assert_eq!(parse_date("nn/nn/nn", None), None);
    assert_eq!(parse_date("", None), None);
    assert_eq!(parse_date("2011-13-01", None), None);
    // DSS: EXPOSURE in minutes.
    let r = &derive_demo("images/dss_poss1_m1_ned.fits").records[0];
    assert_eq!(r.t_exptime, Some(3000.0));
    assert_eq!(r.t_min, Some(33958.4));
}

/// A FITS file from (keyword, value) cards and `data` bytes.
fn fits_file(cards: &[(&str, &str)], data: usize) -> Vec<u8> {
    let mut h = String::new();
    for (k, v) in cards {
        h.push_str(
            &format!("{k:<8}= {v:>20}")
                .chars()
                .take(80)
                .collect::<String>(),
        );
        while !h.len().is_multiple_of(80) {
            h.push(' ');
        }
    }
    h.push_str(&format!("{:<80}", "END"));
    while !h.len().is_multiple_of(2880) {
        h.push(' ');
    }
    let mut b = h.into_bytes();
    b.extend(std::iter::repeat_n(0u8, data.div_ceil(2880) * 2880));
    b
}

#[test]
fn bad_input_is_an_error_or_a_warning_never_a_panic() {
    // Not FITS, empty, garbage gzip, truncated.
    assert!(derive_bytes("x.fits", b"hello world").is_err());
    assert!(derive_bytes("x.fits", b"").is_err());
    assert!(derive_bytes("x.fits.gz", &[0x1f, 0x8b, 1, 2, 3]).is_err());
    let bytes = demo("images/cfht_megaprime_sa110.fits");
    assert!(derive_bytes("x.fits", &bytes[..bytes.len() / 2]).is_err());
    assert!(derive_bytes("x.fits", &bytes[..2880 * 2 + 17]).is_err());

    // An image without any WCS: a record, NULL position, a warning.
    let f = fits_file(
        &[
            ("SIMPLE", "T"),
            ("BITPIX", "8"),
            ("NAXIS", "2"),
            ("NAXIS1", "10"),
            ("NAXIS2", "10"),
            ("DATE-OBS", "'2020-01-02'"),
        ],
        100,
    );
    let out = derive_bytes("plain.fits", &f).unwrap();
    assert_eq!(out.records.len(), 1);
    let r = &out.records[0];
    assert_eq!(
        (r.s_ra, r.s_region.as_ref(), r.dataproduct_type.as_str()),
        (None, None, "image")
    );
    assert_eq!(r.t_min, Some(58850.0));
    assert_eq!(r.obs_id, "plain");
    assert!(out
        .warnings
        .iter()
        .any(|w| w.contains("plain.fits") && w.contains("no celestial WCS")));
    obscore_batch(&out.records).unwrap();

    // Broken WCS headers: warnings, never panics.
    let broken: [&[(&str, &str)]; 7] = [
        &[("CTYPE1", "'RA---'"), ("CTYPE2", "'DEC--'")],
        &[("CTYPE1", "'RA---XYZ'"), ("CTYPE2", "'DEC--XYZ'")],
        &[("CTYPE1", "'RA---TAN'"), ("CTYPE2", "'DEC--SIN'")],
        &[
            ("CTYPE1", "'RA---TAN-SIP'"),
            ("CTYPE2", "'DEC--TAN-SIP'"),
            ("A_ORDER", "40"),
            ("B_ORDER", "2"),
        ],
        &[
            ("CTYPE1", "'RA---ZPN'"),
            ("CTYPE2", "'DEC--ZPN'"),
            ("PV2_1", "0"),
            ("PV2_3", "1e300"),
        ],
        &[
            ("CTYPE1", "'RA---TAN'"),
            ("CTYPE2", "'DEC--TAN'"),
            ("CDELT1", "0"),
            ("CDELT2", "0"),
            ("CRVAL2", "95"),
        ],
        &[
            ("CTYPE1", "'RA---CAR'"),
            ("CTYPE2", "'DEC--CAR'"),
            ("CDELT1", "1e10"),
            ("CDELT2", "1e10"),
        ],
    ];
    for extra in broken {
        let mut cards = vec![
            ("SIMPLE", "T"),
            ("BITPIX", "8"),
            ("NAXIS", "2"),
            ("NAXIS1", "10"),
            ("NAXIS2", "10"),
        ];
        cards.extend_from_slice(extra);
        let out = derive_bytes("broken.fits", &fits_file(&cards, 100)).unwrap();
        assert_eq!(out.records.len(), 1, "{extra:?}");
        obscore_batch(&out.records).unwrap();
    }

    // A table without a spectral column: no record, a warning.
    let out = derive_demo("images/dss_uks_1429-6241.fits.gz");
    assert_eq!(out.records.len(), 1);
}

#[test]
fn arrow_batches_carry_the_column_metadata() {
    let mut records = derive_demo("images/hst_acs_candels_gn_3filters.fits").records;
    records.extend(derive_demo("images/rosat_allsky_aitoff.fits").records);
    records.extend(derive_demo("spectra/arecibo_alfalfa_AGC100051.fits").records);
    let batch = obscore_batch(&records).unwrap();
    let cols = obscore_columns();
    assert_eq!(batch.num_columns(), cols.len());
    assert_eq!(batch.num_rows(), 5);
    for (f, c) in batch.schema().fields().iter().zip(&cols) {
        assert_eq!(f.name(), &c.name);
        assert_eq!(f.metadata(), &c.field_metadata());
    }
    let schema = batch.schema();
    let region = schema.field_with_name("s_region").unwrap();
    assert_eq!(region.data_type(), &DataType::Utf8);
    assert_eq!(
        region.metadata().get("xtype").map(String::as_str),
        Some("adql:REGION")
    );
    let s_region = batch.column_by_name("s_region").unwrap();
    assert_eq!(s_region.null_count(), 2, "all-sky image and spectrum");
    // STC-S that the ADQL geometry functions read back as the same polygon.
    let text = s_region.as_string::<i32>().value(0).to_string();
    assert!(text.starts_with("Polygon ICRS "), "{text}");
    let expected: Vec<f64> = records[0]
        .s_region
        .as_ref()
        .unwrap()
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .collect();
    let parsed: Vec<f64> = text
        .split_whitespace()
        .skip(2)
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(parsed, expected);
    let ucd = |n: &str| {
        schema
            .field_with_name(n)
            .unwrap()
            .metadata()
            .get("ucd")
            .cloned()
    };
    assert_eq!(ucd("em_min").as_deref(), Some("em.wl;stat.min"));
    assert_eq!(ucd("s_ra").as_deref(), Some("pos.eq.ra"));
    // Every mandatory ObsCore 1.1 column is there.
    for n in [
        "dataproduct_type",
        "calib_level",
        "obs_collection",
        "obs_id",
        "obs_publisher_did",
        "access_url",
        "access_format",
        "access_estsize",
        "target_name",
        "s_ra",
        "s_dec",
        "s_fov",
        "s_region",
        "s_resolution",
        "s_xel1",
        "s_xel2",
        "t_xel",
        "t_min",
        "t_max",
        "t_exptime",
        "t_resolution",
        "em_xel",
        "em_min",
        "em_max",
        "em_res_power",
        "o_ucd",
        "pol_states",
        "pol_xel",
        "facility_name",
        "instrument_name",
    ] {
        assert!(schema.field_with_name(n).is_ok(), "{n}");
    }

    let headers = derive_demo("spectra/vlt_xshooter_xq100_BRJ2349-3712.fits.gz").headers;
    let hb = header_batch(&headers).unwrap();
    assert_eq!(hb.num_columns(), header_columns().len());
    assert_eq!(hb.num_rows(), headers.len());
    assert!(headers
        .iter()
        .any(|h| h.keyword == "TTYPE1" && h.value.as_deref() == Some("WAVE")));
}

#[test]
fn access_fields() {
    let bytes = demo("images/dss_uks_1429-6241.fits.gz");
    let out = derive_demo("images/dss_uks_1429-6241.fits.gz");
    let r = &out.records[0];
    assert_eq!(r.access_url, "demo/images/dss_uks_1429-6241.fits.gz");
    assert_eq!(r.access_estsize, bytes.len().div_ceil(1024) as i64);
    assert_eq!(r.obs_collection, "demo");
    assert_eq!(
        r.obs_publisher_did,
        "ivo://example.org/demo?images/dss_uks_1429-6241.fits.gz"
    );
    assert_eq!(r.calib_level, 2);
}
