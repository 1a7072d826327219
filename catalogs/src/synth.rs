//! A synthetic sky for benchmarks and scale tests, written straight into the HATS layout.
//!
//! The sky is deterministic from `(rows, seed)`: the same arguments give the same files on
//! any machine (PCG64 streams seeded per partition, no platform-dependent generator).
//!
//! * **Density**: star counts per order-8 HEALPix pixel (0.05 deg²) follow a simple Galactic
//!   model: a thin disk falling off with |b| (scale 5°), brighter towards the centre, a
//!   Gaussian bulge (σ 7°), the Magellanic Clouds, and a floor for the halo. The densest pixels
//!   hold ~150× as many stars as the Galactic poles, roughly Gaia's contrast. Counts per pixel
//!   are exact (cumulative rounding), so the total is exactly `rows`.
//! * **Positions** are uniform inside each order-8 pixel: a uniform order-29 index in the
//!   pixel's range (HEALPix cells have equal area), its cell centre as (ra, dec). Sorting the
//!   indices gives the `_healpix_29` order the layout needs for free.
//! * **Columns** are Gaia-like (23 published): identifiers in Gaia's own `source_id` encoding
//!   (order-12 pixel × 2³⁵ + running number), magnitudes from a power-law luminosity
//!   function (counts ∝ 10^(0.35 G), 3 ≤ G ≤ 21), errors growing with G as Gaia DR3's do,
//!   parallaxes and proper motions from a log-normal distance and 30 km/s velocities,
//!   photometry and radial velocities null where Gaia has none (faint stars).
//! * **Partitions** are planned from the exact counts, adaptively, at most `partition_rows`
//!   rows each; they are generated and encoded on worker threads.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64Mcg;

use crate::hats::{HatsWriter, Pixel, WriteSummary, HEALPIX_COLUMN};
use crate::meta::{CatalogMeta, ColumnMeta, TableMeta};
use crate::Error;
use storage::Storage;

/// HEALPix order at which the density model is evaluated and counts are fixed.
pub const DENSITY_ORDER: u8 = 8;
/// Default rows per partition of a generated catalog.
pub const DEFAULT_PARTITION_ROWS: usize = 500_000;
/// Default rows per row group of a generated catalog.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 5_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Rows in all.
    pub rows: u64,
    /// Seed of every random stream.
    pub seed: u64,
    /// Maximum rows per partition file.
    pub partition_rows: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Partitions generated at once (worker threads).
    pub threads: usize,
}

impl SynthOptions {
    /// `rows` rows from `seed`, default layout, one worker per core.
    pub fn new(rows: u64, seed: u64) -> Self {
        SynthOptions {
            rows,
            seed,
            partition_rows: DEFAULT_PARTITION_ROWS,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        }
    }
}

/// ICRS → Galactic rotation (Hipparcos, ESA 1997 vol. 1 §1.5.3).
const ICRS_TO_GAL: [[f64; 3]; 3] = [
    [
        -0.054_875_560_416_215_4,
        -0.873_437_090_234_885,
        -0.483_835_015_548_713_2,
    ],
    [
        0.494_109_427_875_583_7,
        -0.444_829_629_960_011_2,
        0.746_982_244_497_219,
    ],
    [
        -0.867_666_149_019_004_7,
        -0.198_076_373_431_201_5,
        0.455_983_776_175_066_9,
    ],
];

/// Galactic (l, b) in degrees of an ICRS position in radians.
pub fn galactic(ra: f64, dec: f64) -> (f64, f64) {
    let (sa, ca) = ra.sin_cos();
    let (sd, cd) = dec.sin_cos();
    let v = [cd * ca, cd * sa, sd];
    let g = ICRS_TO_GAL.map(|r| r[0] * v[0] + r[1] * v[1] + r[2] * v[2]);
    let l = g[1].atan2(g[0]).to_degrees().rem_euclid(360.0);
    let b = g[2].clamp(-1.0, 1.0).asin().to_degrees();
    (l, b)
}

/// Relative star density at an ICRS position (radians).
pub fn density(ra: f64, dec: f64) -> f64 {
    let (l, b) = galactic(ra, dec);
    let lw = if l > 180.0 { l - 360.0 } else { l };
    let disk =
        40.0 * (-b.abs() / 5.0).exp() * (0.35 + 0.65 * (-(lw * lw) / (2.0 * 70.0 * 70.0)).exp());
    let bulge = 110.0 * (-(lw * lw + b * b) / (2.0 * 7.0 * 7.0)).exp();
    let near = |ra0: f64, dec0: f64, sigma: f64| {
        let d = sep_deg(ra, dec, ra0.to_radians(), dec0.to_radians());
        (-(d * d) / (2.0 * sigma * sigma)).exp()
    };
    let clouds = 60.0 * near(80.894, -69.756, 3.0) + 25.0 * near(13.187, -72.829, 1.5);
    1.0 + disk + bulge + clouds
}

/// Angular separation in degrees between two positions in radians (haversine).
fn sep_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let s = ((dec2 - dec1) / 2.0).sin().powi(2)
        + dec1.cos() * dec2.cos() * ((ra2 - ra1) / 2.0).sin().powi(2);
    (2.0 * s.sqrt().min(1.0).asin()).to_degrees()
}

/// Exact star counts per order-[`DENSITY_ORDER`] pixel (nested order), summing to `rows`.
pub fn pixel_counts(rows: u64) -> Vec<u32> {
    let n = 12usize << (2 * DENSITY_ORDER as usize);
    let weights: Vec<f64> = (0..n as u64)
        .map(|p| {
            let (ra, dec) = cdshealpix::nested::center(DENSITY_ORDER, p);
            density(ra, dec)
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut counts = Vec::with_capacity(n);
    let mut cum = 0.0;
    let mut prev = 0u64;
    for w in weights {
        cum += w;
        let upto = ((cum / total) * rows as f64).round() as u64;
        let upto = upto.min(rows);
        counts.push((upto - prev) as u32);
        prev = upto;
    }
    // Rounding of the last cumulative sum is exact (cum == total), but be certain.
    if let Some(last) = counts.last_mut() {
        *last += (rows - prev) as u32;
    }
    counts
}

/// Adaptive partitions from per-pixel counts: each at most `max_rows` rows (or one pixel).
pub fn plan(counts: &[u32], max_rows: usize) -> Vec<(Pixel, u64)> {
    let mut prefix = Vec::with_capacity(counts.len() + 1);
    prefix.push(0u64);
    for &c in counts {
        let last = prefix.last().copied().unwrap_or(0);
        prefix.push(last + c as u64);
    }
    let count = |px: Pixel| {
        let shift = 2 * (DENSITY_ORDER - px.order) as u32;
        prefix[((px.pixel + 1) << shift) as usize] - prefix[(px.pixel << shift) as usize]
    };
    crate::hats::adaptive_partitions(&count, max_rows as u64, DENSITY_ORDER)
}

/// The published columns (name, type, nullable, unit, UCD, description).
const COLUMNS: &[(&str, DataType, bool, &str, &str, &str)] = &[
    (
        "source_id",
        DataType::Int64,
        false,
        "",
        "meta.id;meta.main",
        "Unique source identifier (Gaia encoding: HEALPix order-12 index × 2^35 + running number)",
    ),
    (
        "ra",
        DataType::Float64,
        false,
        "deg",
        "pos.eq.ra;meta.main",
        "Right ascension (ICRS, epoch 2016.0)",
    ),
    (
        "dec",
        DataType::Float64,
        false,
        "deg",
        "pos.eq.dec;meta.main",
        "Declination (ICRS, epoch 2016.0)",
    ),
    (
        "ra_error",
        DataType::Float32,
        false,
        "mas",
        "stat.error;pos.eq.ra",
        "Standard error of ra × cos(dec)",
    ),
    (
        "dec_error",
        DataType::Float32,
        false,
        "mas",
        "stat.error;pos.eq.dec",
        "Standard error of dec",
    ),
    (
        "parallax",
        DataType::Float32,
        false,
        "mas",
        "pos.parallax.trig",
        "Parallax",
    ),
    (
        "parallax_error",
        DataType::Float32,
        false,
        "mas",
        "stat.error;pos.parallax.trig",
        "Standard error of parallax",
    ),
    (
        "pmra",
        DataType::Float32,
        false,
        "mas/yr",
        "pos.pm;pos.eq.ra",
        "Proper motion in right ascension × cos(dec)",
    ),
    (
        "pmra_error",
        DataType::Float32,
        false,
        "mas/yr",
        "stat.error;pos.pm;pos.eq.ra",
        "Standard error of pmra",
    ),
    (
        "pmdec",
        DataType::Float32,
        false,
        "mas/yr",
        "pos.pm;pos.eq.dec",
        "Proper motion in declination",
    ),
    (
        "pmdec_error",
        DataType::Float32,
        false,
        "mas/yr",
        "stat.error;pos.pm;pos.eq.dec",
        "Standard error of pmdec",
    ),
    (
        "ruwe",
        DataType::Float32,
        false,
        "",
        "stat.fit.goodness",
        "Renormalised unit weight error of the astrometric solution",
    ),
    (
        "phot_g_mean_mag",
        DataType::Float32,
        false,
        "mag",
        "phot.mag;em.opt",
        "G-band mean magnitude",
    ),
    (
        "phot_bp_mean_mag",
        DataType::Float32,
        true,
        "mag",
        "phot.mag;em.opt.B",
        "BP mean magnitude (null for some faint stars)",
    ),
    (
        "phot_rp_mean_mag",
        DataType::Float32,
        true,
        "mag",
        "phot.mag;em.opt.R",
        "RP mean magnitude (null for some faint stars)",
    ),
    (
        "bp_rp",
        DataType::Float32,
        true,
        "mag",
        "phot.color;em.opt.B;em.opt.R",
        "BP − RP colour",
    ),
    (
        "radial_velocity",
        DataType::Float32,
        true,
        "km/s",
        "spect.dopplerVeloc.opt;em.opt.I",
        "Radial velocity (G < 15 only)",
    ),
    (
        "radial_velocity_error",
        DataType::Float32,
        true,
        "km/s",
        "stat.error;spect.dopplerVeloc.opt;em.opt.I",
        "Standard error of radial_velocity",
    ),
    (
        "teff_gspphot",
        DataType::Float32,
        true,
        "K",
        "phys.temperature.effective",
        "Effective temperature from BP/RP spectra (G < 19 only)",
    ),
    (
        "phot_variable_flag",
        DataType::Utf8,
        false,
        "",
        "meta.code;src.var",
        "Photometric variability flag: VARIABLE or NOT_AVAILABLE",
    ),
    (
        "l",
        DataType::Float64,
        false,
        "deg",
        "pos.galactic.lon",
        "Galactic longitude",
    ),
    (
        "b",
        DataType::Float64,
        false,
        "deg",
        "pos.galactic.lat",
        "Galactic latitude",
    ),
    (
        "ref_epoch",
        DataType::Float64,
        false,
        "yr",
        "meta.ref;time.epoch",
        "Reference epoch (Julian years)",
    ),
];

/// The published schema of a synthetic catalog.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        COLUMNS
            .iter()
            .map(|(n, t, null, ..)| Field::new(*n, t.clone(), *null))
            .collect::<Vec<_>>(),
    ))
}

/// The stored schema: `_healpix_29` first, then [`schema`].
pub fn file_schema() -> SchemaRef {
    let mut fields = vec![Arc::new(Field::new(HEALPIX_COLUMN, DataType::Int64, false))];
    fields.extend(schema().fields().iter().cloned());
    Arc::new(Schema::new(fields))
}

/// Catalog metadata of a synthetic table `schema.name`.
pub fn metadata(schema: &str, name: &str, opts: &SynthOptions) -> CatalogMeta {
    let mut table = TableMeta::new(schema, name, "ra", "dec");
    table.title = Some(format!("Synthetic Gaia-like sky, {} rows", opts.rows));
    table.description = Some(format!(
        "Synthetic catalog generated by `vostok generate --rows {} --seed {}`: Galactic disk, \
         bulge and Magellanic Clouds density model, Gaia-like columns. For benchmarks and tests; \
         not real data.",
        opts.rows, opts.seed
    ));
    table.id = Some("source_id".into());
    table.schema_description = Some("Synthetic catalogs for benchmarks".into());
    table.partition_rows = Some(opts.partition_rows);
    table.row_group_rows = Some(opts.row_group_rows);
    let columns = COLUMNS
        .iter()
        .map(|(n, t, _, unit, ucd, desc)| ColumnMeta {
            name: (*n).into(),
            datatype: Some(crate::hats::type_name(t).into()),
            unit: (!unit.is_empty()).then(|| (*unit).into()),
            ucd: Some((*ucd).into()),
            description: Some((*desc).into()),
            indexed: matches!(*n, "source_id" | "ra" | "dec"),
            ..Default::default()
        })
        .collect();
    CatalogMeta {
        table,
        source: None,
        columns,
    }
}

/// Mixes the seed with a partition into an independent stream seed (SplitMix64 finaliser).
fn stream_seed(seed: u64, px: Pixel) -> u64 {
    let mut z = seed ^ (px.pixel.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ ((px.order as u64) << 58);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generates the rows of one partition, sorted by `_healpix_29`, in the stored schema.
pub fn generate_partition(px: Pixel, counts: &[u32], seed: u64) -> Result<RecordBatch, Error> {
    let mut rng = Pcg64Mcg::seed_from_u64(stream_seed(seed, px));
    let shift = 2 * (DENSITY_ORDER - px.order) as u32;
    let first = px.pixel << shift;
    let last = (px.pixel + 1) << shift;
    let n: usize = counts[first as usize..last as usize]
        .iter()
        .map(|&c| c as usize)
        .sum();

    // Positions: uniform order-29 cells inside each order-8 pixel, sorted.
    let mut hp: Vec<u64> = Vec::with_capacity(n);
    let sub = 2 * (29 - DENSITY_ORDER) as u32;
    for p8 in first..last {
        let c = counts[p8 as usize] as usize;
        if c == 0 {
            continue;
        }
        let start = hp.len();
        let lo = p8 << sub;
        let hi = (p8 + 1) << sub;
        for _ in 0..c {
            hp.push(rng.random_range(lo..hi));
        }
        hp[start..].sort_unstable();
    }

    let normal = |rng: &mut Pcg64Mcg| -> f64 { StandardNormal.sample(rng) };
    let mut c_hp = Vec::with_capacity(n);
    let mut c_id = Vec::with_capacity(n);
    let mut c_ra = Vec::with_capacity(n);
    let mut c_dec = Vec::with_capacity(n);
    let mut c_ra_err = Vec::with_capacity(n);
    let mut c_dec_err = Vec::with_capacity(n);
    let mut c_plx = Vec::with_capacity(n);
    let mut c_plx_err = Vec::with_capacity(n);
    let mut c_pmra = Vec::with_capacity(n);
    let mut c_pmra_err = Vec::with_capacity(n);
    let mut c_pmdec = Vec::with_capacity(n);
    let mut c_pmdec_err = Vec::with_capacity(n);
    let mut c_ruwe = Vec::with_capacity(n);
    let mut c_g = Vec::with_capacity(n);
    let mut c_bp = Vec::with_capacity(n);
    let mut c_rp = Vec::with_capacity(n);
    let mut c_bprp = Vec::with_capacity(n);
    let mut c_rv = Vec::with_capacity(n);
    let mut c_rv_err = Vec::with_capacity(n);
    let mut c_teff = Vec::with_capacity(n);
    let mut c_var = Vec::with_capacity(n);
    let mut c_l = Vec::with_capacity(n);
    let mut c_b = Vec::with_capacity(n);

    // G from counts ∝ 10^(0.35 G) on [3, 21]: inverse CDF.
    let k = 0.35 * std::f64::consts::LN_10;
    let g_lo = 3.0f64;
    let g_hi = 21.0f64;
    let span = 1.0 - (-k * (g_hi - g_lo)).exp();

    let mut prev12 = u64::MAX;
    let mut running = 0u64;
    for &h in &hp {
        let p12 = h >> (2 * (29 - 12));
        if p12 != prev12 {
            prev12 = p12;
            running = 0;
        }
        running += 1;
        let (lon, lat) = cdshealpix::nested::center(29, h);
        let (l, b) = galactic(lon, lat);

        let u: f64 = rng.random();
        let g = g_hi + (1.0 - u * span).ln() / k;
        // Gaia DR3-like astrometric precision: ~0.02 mas at G ≤ 13 to ~1.3 mas at G = 21.
        let z = 10f64.powf(0.4 * (g.max(13.0) - 15.0));
        let sigma_plx = (40.0 + 800.0 * z + 30.0 * z * z).sqrt() / 1000.0;
        let dist_kpc = (0.3f64.ln() + 0.9 * normal(&mut rng)).exp() * (1.0 + 0.1 * (21.0 - g));
        let plx_true = 1.0 / dist_kpc;
        let plx = plx_true + sigma_plx * normal(&mut rng);
        let vt = 4.74047;
        let pmra = plx_true * 30.0 * normal(&mut rng) / vt;
        let pmdec = plx_true * 30.0 * normal(&mut rng) / vt;
        let sigma_pm = 1.1 * sigma_plx;
        let reddening = 0.9 * (-b.abs() / 8.0).exp();
        let bprp = (0.85 + reddening + 0.35 * normal(&mut rng)).clamp(-0.5, 5.5);
        let has_bprp = g < 19.5 || rng.random::<f64>() < 0.85;
        let ruwe = if rng.random::<f64>() < 0.04 {
            1.4 + 4.0 * rng.random::<f64>()
        } else {
            1.0 + 0.08 * normal(&mut rng).abs()
        };

        c_hp.push(h as i64);
        c_id.push(((p12 << 35) | running) as i64);
        c_ra.push(lon.to_degrees());
        c_dec.push(lat.to_degrees());
        c_ra_err.push((0.7 * sigma_plx) as f32);
        c_dec_err.push((0.65 * sigma_plx) as f32);
        c_plx.push(plx as f32);
        c_plx_err.push(sigma_plx as f32);
        c_pmra.push((pmra + sigma_pm * normal(&mut rng)) as f32);
        c_pmra_err.push(sigma_pm as f32);
        c_pmdec.push((pmdec + sigma_pm * normal(&mut rng)) as f32);
        c_pmdec_err.push((sigma_pm * 0.95) as f32);
        c_ruwe.push(ruwe as f32);
        c_g.push(g as f32);
        if has_bprp {
            let bp = g + 0.45 * bprp + 0.05;
            c_bp.push(Some(bp as f32));
            c_rp.push(Some((bp - bprp) as f32));
            c_bprp.push(Some(bprp as f32));
        } else {
            c_bp.push(None);
            c_rp.push(None);
            c_bprp.push(None);
        }
        if g < 15.0 {
            let e = 0.2 + 3.0 * 10f64.powf(0.4 * (g - 15.0)).min(1.0) * 2.0;
            c_rv.push(Some((25.0 * normal(&mut rng) - 10.0) as f32));
            c_rv_err.push(Some(e as f32));
        } else {
            c_rv.push(None);
            c_rv_err.push(None);
        }
        if g < 19.0 && has_bprp {
            let teff = 7000.0 / (1.0 + 0.9 * (bprp - reddening).max(-0.3)).max(0.4);
            c_teff.push(Some(teff.clamp(2500.0, 40000.0) as f32));
        } else {
            c_teff.push(None);
        }
        c_var.push(if rng.random::<f64>() < 0.02 {
            "VARIABLE"
        } else {
            "NOT_AVAILABLE"
        });
        c_l.push(l);
        c_b.push(b);
    }
    let ref_epoch = Float64Array::from(vec![2016.0; n]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(c_hp)),
        Arc::new(Int64Array::from(c_id)),
        Arc::new(Float64Array::from(c_ra)),
        Arc::new(Float64Array::from(c_dec)),
        Arc::new(Float32Array::from(c_ra_err)),
        Arc::new(Float32Array::from(c_dec_err)),
        Arc::new(Float32Array::from(c_plx)),
        Arc::new(Float32Array::from(c_plx_err)),
        Arc::new(Float32Array::from(c_pmra)),
        Arc::new(Float32Array::from(c_pmra_err)),
        Arc::new(Float32Array::from(c_pmdec)),
        Arc::new(Float32Array::from(c_pmdec_err)),
        Arc::new(Float32Array::from(c_ruwe)),
        Arc::new(Float32Array::from(c_g)),
        Arc::new(Float32Array::from(c_bp)),
        Arc::new(Float32Array::from(c_rp)),
        Arc::new(Float32Array::from(c_bprp)),
        Arc::new(Float32Array::from(c_rv)),
        Arc::new(Float32Array::from(c_rv_err)),
        Arc::new(Float32Array::from(c_teff)),
        Arc::new(StringArray::from(c_var)),
        Arc::new(Float64Array::from(c_l)),
        Arc::new(Float64Array::from(c_b)),
        Arc::new(ref_epoch),
    ];
    Ok(RecordBatch::try_new(file_schema(), columns)?)
}

/// Generates the catalog into `root` of `storage`; `progress` is called with rows written.
pub async fn generate(
    storage: &Storage,
    root: &str,
    meta: &CatalogMeta,
    opts: &SynthOptions,
    progress: Option<&(dyn Fn(u64) + Sync)>,
) -> Result<WriteSummary, Error> {
    let counts = Arc::new(pixel_counts(opts.rows));
    let parts = plan(&counts, opts.partition_rows);
    let mut writer = HatsWriter::new(storage, root, file_schema(), opts.row_group_rows);
    let encoder = writer.encoder();
    let seed = opts.seed;
    let mut done = 0u64;
    let mut stream = futures::stream::iter(parts)
        .map(|(px, _)| {
            let counts = counts.clone();
            let encoder = encoder.clone();
            async move {
                let part = tokio::task::spawn_blocking(move || {
                    let batch = generate_partition(px, &counts, seed)?;
                    encoder.encode(&[batch])
                })
                .await
                .map_err(|e| Error::Layout(format!("generator thread failed: {e}")))??;
                Ok::<_, Error>((px, part))
            }
        })
        .buffer_unordered(opts.threads.max(1));
    while let Some(next) = stream.next().await {
        let (px, part) = next?;
        done += part.rows;
        writer.put(px, part).await?;
        if let Some(p) = progress {
            p(done);
        }
    }
    writer.finish(meta, &schema()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_and_the_plane_is_dense() {
        let counts = pixel_counts(10_000_000);
        assert_eq!(counts.iter().map(|&c| c as u64).sum::<u64>(), 10_000_000);
        // Galactic centre vs north Galactic pole (ICRS positions of both).
        let at = |ra: f64, dec: f64| {
            let p = cdshealpix::nested::hash(DENSITY_ORDER, ra.to_radians(), dec.to_radians());
            counts[p as usize]
        };
        let centre = at(266.405, -28.936);
        let pole = at(192.859, 27.128);
        assert!(centre > 50 * pole.max(1), "centre {centre} pole {pole}");
    }

    #[test]
    fn plan_respects_the_limit_and_covers_all_rows() {
        let counts = pixel_counts(2_000_000);
        let parts = plan(&counts, 50_000);
        assert_eq!(parts.iter().map(|p| p.1).sum::<u64>(), 2_000_000);
        assert!(parts
            .iter()
            .all(|(px, n)| *n <= 50_000 || px.order == DENSITY_ORDER));
        assert!(parts.len() > 40);
    }

    #[test]
    fn partitions_are_sorted_deterministic_and_inside_their_pixel() {
        let counts = pixel_counts(300_000);
        let parts = plan(&counts, 20_000);
        let (px, n) = parts[parts.len() / 2];
        let a = generate_partition(px, &counts, 7).unwrap();
        let b = generate_partition(px, &counts, 7).unwrap();
        let c = generate_partition(px, &counts, 8).unwrap();
        assert_eq!(a.num_rows() as u64, n);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let hp = a
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec();
        assert!(hp.windows(2).all(|w| w[0] <= w[1]));
        assert!(hp.iter().all(|&h| px.range29().contains(&(h as u64))));
        let ra = a.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        let dec = a.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
        for (i, &h) in hp.iter().enumerate() {
            assert_eq!(
                crate::hats::healpix29(ra.value(i), dec.value(i)),
                h as u64,
                "row {i}: position not in its own cell"
            );
        }
        let ids = a.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        let mut sorted: Vec<i64> = ids.values().to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), a.num_rows(), "source_id must be unique");
    }

    #[test]
    fn galactic_pole_and_centre() {
        let (_, b) = galactic(192.859_48f64.to_radians(), 27.128_25f64.to_radians());
        assert!((b - 90.0).abs() < 1e-3, "{b}");
        let (l, b) = galactic(266.404_99f64.to_radians(), (-28.936_17f64).to_radians());
        assert!(l.min(360.0 - l) < 1e-3 && b.abs() < 1e-3, "{l} {b}");
    }
}
