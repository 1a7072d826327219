//! HEALPix (NESTED) coverage of regions, as sorted ranges of order-29 indices.
//!
//! Circles use cdshealpix's `cone_coverage_approx` (a documented superset). Polygons use a
//! recursive descent of the HEALPix tree in which each cell is replaced by a cap that contains
//! it (centre: the cell centre, radius: 1.1 × an upper bound of the centre-to-vertex distance);
//! the cap is tested against the polygon with the exact cap/polygon predicates of
//! [`super::sphere`], so a cell is dropped only when it certainly misses the polygon.

use std::f64::consts::PI;
use std::ops::Range;

use cdshealpix::nested;

use super::sphere::{self, Cap, Polygon};

/// HEALPix order of the `_healpix_29` column.
pub(crate) const ORDER: u8 = 29;

/// Coverage with more ranges than this is recomputed one order lower.
pub(crate) const MAX_RANGES: usize = 48;

/// Regions larger than this (radius of the bounding cap, degrees) are not worth pruning.
pub(crate) const MAX_RADIUS_DEG: f64 = 60.0;

/// Margin (degrees) added to circle radii before computing coverages, so that rounding in the
/// exact test and in cdshealpix can never drop a cell with a matching row.
const PAD_DEG: f64 = 1e-8;

/// Mean side of a HEALPix cell at order 0, degrees.
const CELL0_DEG: f64 = 58.6;

/// NESTED index at order 29 of a position in degrees (the HATS `_healpix_29` value).
/// Latitudes are clamped to [-90, 90]; non-finite coordinates give 0.
pub fn healpix29(lon_deg: f64, lat_deg: f64) -> u64 {
    if !lon_deg.is_finite() || !lat_deg.is_finite() {
        return 0;
    }
    let lon = lon_deg.rem_euclid(360.0).to_radians();
    let lat = lat_deg.clamp(-90.0, 90.0).to_radians();
    nested::hash(ORDER, lon, lat)
}

/// The order whose cells are about the size of a region of radius `radius_deg`.
fn natural_order(radius_deg: f64) -> u8 {
    if radius_deg <= 0.0 {
        return ORDER;
    }
    let o = (CELL0_DEG / radius_deg).log2().floor();
    if o.is_nan() || o < 0.0 {
        0
    } else if o >= ORDER as f64 {
        ORDER
    } else {
        o as u8
    }
}

/// Cells `(order, index)` in increasing NESTED order → merged order-29 ranges.
fn cells_to_ranges(cells: impl IntoIterator<Item = (u8, u64)>) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for (order, hash) in cells {
        let shift = 2 * u32::from(ORDER - order);
        let r = (hash << shift)..((hash + 1) << shift);
        match out.last_mut() {
            Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

fn bmoc_ranges(bmoc: &nested::bmoc::BMOC) -> Vec<Range<u64>> {
    let mut cells: Vec<(u8, u64)> = bmoc.into_iter().map(|c| (c.depth, c.hash)).collect();
    // BMOC cells are sorted, but sort at order 29 to be safe.
    cells.sort_by_key(|&(d, h)| h << (2 * u32::from(ORDER - d)));
    cells_to_ranges(cells)
}

/// Coverage of a circle (degrees); `None` when too large to prune.
pub(crate) fn circle_ranges(lon: f64, lat: f64, radius: f64) -> Option<Vec<Range<u64>>> {
    if !lon.is_finite() || !(-90.0..=90.0).contains(&lat) || radius.is_nan() {
        return None;
    }
    if radius < 0.0 {
        return Some(Vec::new());
    }
    if radius > MAX_RADIUS_DEG {
        return None;
    }
    let r = radius * (1.0 + 1e-9) + PAD_DEG;
    let lon_rad = lon.rem_euclid(360.0).to_radians();
    let lat_rad = lat.to_radians();
    let natural = natural_order(r);
    // try two orders finer than the natural one first, coarser when it gives too many ranges
    let mut order = (natural + 2).min(ORDER);
    loop {
        let bmoc = nested::cone_coverage_approx(order, lon_rad, lat_rad, r.to_radians());
        let ranges = bmoc_ranges(&bmoc);
        if ranges.len() <= MAX_RANGES || order == 0 {
            return Some(ranges);
        }
        order -= 1;
    }
}

/// A cap (centre, radius in radians) containing the HEALPix cell.
fn cell_cap(order: u8, hash: u64) -> Cap {
    let (clon, clat) = nested::center(order, hash);
    let c = sphere::from_lonlat(clon.to_degrees(), clat.to_degrees());
    let mut r = cdshealpix::largest_center_to_vertex_distance(order, clon, clat);
    for (vlon, vlat) in nested::vertices(order, hash) {
        let v = sphere::from_lonlat(vlon.to_degrees(), vlat.to_degrees());
        r = r.max(sphere::angle(&c, &v));
    }
    let r = (r * 1.1 + 1e-12).min(PI);
    Cap::new(clon.to_degrees(), clat.to_degrees(), r.to_degrees())
}

fn polygon_recur(
    poly: &Polygon,
    order: u8,
    hash: u64,
    target: u8,
    out: &mut Vec<(u8, u64)>,
    budget: &mut usize,
) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    let cap = cell_cap(order, hash);
    if !sphere::cap_intersects_polygon(&cap, poly) {
        return true;
    }
    if order == target || sphere::cap_in_polygon(&cap, poly) {
        out.push((order, hash));
        return true;
    }
    for child in 0..4 {
        if !polygon_recur(poly, order + 1, (hash << 2) | child, target, out, budget) {
            return false;
        }
    }
    true
}

/// Coverage of a polygon; `None` when too large to prune (or when it cannot be computed).
pub(crate) fn polygon_ranges(poly: &Polygon) -> Option<Vec<Range<u64>>> {
    let (_, radius) = poly.bounding_cap()?;
    let radius_deg = radius.to_degrees();
    if radius_deg.is_nan() || radius_deg > MAX_RADIUS_DEG {
        return None;
    }
    let natural = natural_order(radius_deg);
    let mut target = (natural + 2).min(ORDER);
    loop {
        let mut cells = Vec::new();
        let mut budget = 200_000usize;
        let mut complete = true;
        for base in 0..12 {
            if !polygon_recur(poly, 0, base, target, &mut cells, &mut budget) {
                complete = false;
                break;
            }
        }
        if complete {
            let ranges = cells_to_ranges(cells);
            if ranges.len() <= MAX_RANGES || target == 0 {
                return Some(ranges);
            }
        }
        if target == 0 {
            return None;
        }
        target -= 1;
    }
}
