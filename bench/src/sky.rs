//! Cone centres and the brute-force reference counts.

use anyhow::Result;

use crate::catalog::{f64_values, Catalog};

/// SplitMix64: a small deterministic generator, so that a seed gives the same cones everywhere.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A point uniform on the sphere: (ra, dec) in degrees, ra in [0, 360), dec in [-90, 90].
    pub fn sky_point(&mut self) -> (f64, f64) {
        let ra = 360.0 * self.next_f64();
        let z = 2.0 * self.next_f64() - 1.0;
        (ra, z.asin().to_degrees())
    }
}

/// Angular distance in degrees by the haversine formula, in f64 (stable for small angles).
pub fn distance_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (d1, d2) = (dec1.to_radians(), dec2.to_radians());
    let sdd = ((d2 - d1) * 0.5).sin();
    let sdr = ((ra2 - ra1).to_radians() * 0.5).sin();
    let h = (sdd * sdd + d1.cos() * d2.cos() * sdr * sdr).clamp(0.0, 1.0);
    (2.0 * h.sqrt().asin()).to_degrees()
}

/// Every (dec, ra) of a catalog, sorted by dec so that a cone only looks at its dec band.
pub struct SkyIndex {
    points: Vec<(f64, f64)>,
    /// Rows with `phot_g_mean_mag < 12` (when the column exists).
    pub bright_rows: Option<u64>,
}

/// A brute-force answer: `definite` rows are inside by more than the tolerance, `ambiguous`
/// ones within the tolerance of the edge; a correct count lies in
/// `definite ..= definite + ambiguous`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Rows surely inside.
    pub definite: u64,
    /// Rows on the edge (either answer is right).
    pub ambiguous: u64,
}

impl SkyIndex {
    /// Loads ra and dec (f64) of every row, file by file; also counts `phot_g_mean_mag < 12`.
    pub fn load(cat: &Catalog) -> Result<SkyIndex> {
        let has_mag = cat.schema()?.field_with_name("phot_g_mean_mag").is_ok();
        let cols: Vec<&str> = if has_mag {
            vec!["ra", "dec", "phot_g_mean_mag"]
        } else {
            vec!["ra", "dec"]
        };
        let mut points = Vec::with_capacity(cat.num_rows().unwrap_or(0) as usize);
        let mut bright = 0u64;
        cat.for_each_batch(Some(&cols), |b| {
            let ra = f64_values(b, "ra")?;
            let dec = f64_values(b, "dec")?;
            points.extend(dec.into_iter().zip(ra));
            if has_mag {
                bright += f64_values(b, "phot_g_mean_mag")?
                    .iter()
                    .filter(|m| **m < 12.0)
                    .count() as u64;
            }
            Ok(())
        })?;
        // Rows with a null position can match no cone: drop them.
        points.retain(|(d, r)| d.is_finite() && r.is_finite());
        points.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        Ok(SkyIndex {
            points,
            bright_rows: has_mag.then_some(bright),
        })
    }

    /// Rows with a position.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Every (ra, dec), in dec order.
    pub fn positions(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.points.iter().map(|&(dec, ra)| (ra, dec))
    }

    /// Counts rows within `r` degrees of (ra0, dec0), with `tol` degrees of edge ambiguity.
    pub fn count(&self, ra0: f64, dec0: f64, r: f64, tol: f64) -> Expected {
        // |dec - dec0| <= distance, so only the band [dec0 - r, dec0 + r] can match
        // (widened a little against rounding).
        let margin = r + tol + 1e-9;
        let lo = self.points.partition_point(|p| p.0 < dec0 - margin);
        let hi = self.points.partition_point(|p| p.0 <= dec0 + margin);
        let mut e = Expected {
            definite: 0,
            ambiguous: 0,
        };
        for &(dec, ra) in &self.points[lo..hi] {
            let d = distance_deg(ra0, dec0, ra, dec);
            if d < r - tol {
                e.definite += 1;
            } else if d <= r + tol {
                e.ambiguous += 1;
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert!((distance_deg(0.0, 0.0, 90.0, 0.0) - 90.0).abs() < 1e-12);
        assert!((distance_deg(10.0, 89.0, 190.0, 89.0) - 2.0).abs() < 1e-12);
        assert!((distance_deg(359.9, 0.0, 0.1, 0.0) - 0.2).abs() < 1e-12);
        let tiny = distance_deg(10.0, 20.0, 10.0, 20.0 + 1e-10);
        // 20 + 1e-10 is only known to f64 to about 4e-15.
        assert!((tiny - 1e-10).abs() < 1e-14, "{tiny}");
    }

    #[test]
    fn band_count_equals_full_scan() {
        let mut rng = Rng::new(7);
        let pts: Vec<(f64, f64)> = (0..20_000).map(|_| rng.sky_point()).collect();
        let mut idx = SkyIndex {
            points: pts.iter().map(|&(r, d)| (d, r)).collect(),
            bright_rows: None,
        };
        idx.points.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        for _ in 0..50 {
            let (ra0, dec0) = rng.sky_point();
            for r in [0.5, 3.0, 20.0] {
                let full = pts
                    .iter()
                    .filter(|&&(ra, dec)| distance_deg(ra0, dec0, ra, dec) < r)
                    .count() as u64;
                let e = idx.count(ra0, dec0, r, 1e-9);
                assert!(e.definite <= full && full <= e.definite + e.ambiguous);
            }
        }
        // Near a pole the band holds every ra.
        let e = idx.count(0.0, 90.0, 10.0, 0.0);
        let full = pts.iter().filter(|p| p.1 > 80.0).count() as u64;
        assert_eq!(e.definite, full);
    }

    #[test]
    fn uniform_centres_cover_the_sphere() {
        let mut rng = Rng::new(1);
        let n = 100_000;
        let north = (0..n).filter(|_| rng.sky_point().1 > 30.0).count() as f64 / n as f64;
        // The cap above dec 30 holds (1 - sin 30°)/2 = 25 % of the sphere.
        assert!((north - 0.25).abs() < 0.01, "{north}");
    }
}
