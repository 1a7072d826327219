//! ADQL geometry: values, DataFusion UDFs, spatial-predicate recognition and HEALPix coverage.
//!
//! # Values
//! A geometry is an Arrow `List<Float64>` (items non-null), its kind given by its length:
//! POINT = `[lon, lat]`, CIRCLE = `[lon, lat, radius]`, POLYGON = `[lon1, lat1, lon2, lat2, …]`
//! (≥ 3 vertices). All angles are degrees, ICRS. BOX is converted to a 4-vertex POLYGON when it
//! is built (see the construction below). Constructor results carry the field metadata
//! `xtype` = `point` / `circle` / `polygon` (DALI xtypes).
//!
//! # Semantics (exact spherical geometry)
//! * Positions are unit vectors: nothing is special at RA 0/360 or at the poles.
//! * CIRCLE is the spherical cap of all positions within `radius` of the centre (any radius;
//!   ≥ 180° is the whole sky).
//! * POLYGON edges are the minor great-circle arcs between consecutive vertices (the last one
//!   joins the first). The polygon must be simple (edges may not cross; consecutive vertices
//!   may not be antipodal); repeated consecutive vertices are dropped. Its inside is the
//!   **smaller** of the two regions bounded by the edges, whatever the order of the vertices;
//!   POLYGON returns its vertices counter-clockwise (inside on the left, as DALI wants). A
//!   polygon may contain a pole or straddle RA 0.
//! * BOX(lon, lat, w, h) is the STC box: a cross centred on (lon, lat) with arms along the
//!   meridian and along the great circle perpendicular to it, of half-lengths h/2 and w/2
//!   (measured on those great circles); the sides are the great circles crossing the arm ends at
//!   right angles. In the tangent frame (x → centre, y → east, z → north) the vertices are
//!   `normalize(1, ±tan(w/2), ±tan(h/2))`. 0 < w, h < 180.
//! * Boundaries count as inside (up to floating-point rounding).
//! * CONTAINS(a, b) is 1 when `a` lies wholly in `b`; INTERSECTS(a, b) when they share a point
//!   (INTERSECTS(point, x) = CONTAINS(point, x)). Both are exact for every pair of kinds.
//! * DISTANCE is the great-circle distance (Vincenty's atan2 form: accurate from 0 to 180°).
//! * COORD1/COORD2 give a POINT's longitude/latitude; AREA is in square degrees (exact for
//!   circles and polygons); CENTROID is the centre of mass (a POINT; the centre for a circle);
//!   COORDSYS is always 'ICRS'.
//! * A coordinate system argument ('', 'ICRS', 'ICRS GEOCENTER', 'J2000', …) is optional;
//!   anything but ICRS (and its aliases) is rejected.
//! * A NULL argument, or a non-finite coordinate, gives NULL. A latitude outside [-90, 90], a
//!   negative radius, or an invalid polygon is an execution error.
//!
//! # Pruning
//! [`spatial_filter`] / [`spatial_filters`] find `CONTAINS(POINT(ra, dec), shape) = 1`,
//! `INTERSECTS(..) = 1` and `DISTANCE(POINT(ra, dec), POINT(..)) < r` in planned expressions
//! (before or after constant folding); [`Region::healpix_ranges`] turns the region into order-29
//! NESTED HEALPix ranges (a superset of the region) for HATS catalogs, whose rows carry
//! [`healpix29`] of their position.

mod coverage;
pub(crate) mod filter;
mod sphere;
#[cfg(test)]
mod tests;
mod udf;

use std::ops::Range;

use datafusion::common::Column;
use datafusion::logical_expr::{Expr, ScalarUDF};

pub use coverage::healpix29;
pub use sphere::distance_deg;
pub use udf::geometry_type;

/// The vertices of ADQL's `BOX(lon, lat, width, height)` (degrees; great-circle sides, as the
/// geometry functions build it), counter-clockwise. Width and height in (0, 180).
pub fn box_polygon(lon: f64, lat: f64, width: f64, height: f64) -> Result<Vec<(f64, f64)>, String> {
    sphere::box_vertices(lon, lat, width, height)
}

/// All the geometry UDFs: point, circle, box, polygon, contains, intersects, distance, coord1,
/// coord2, area, centroid, coordsys.
pub fn udfs() -> Vec<ScalarUDF> {
    udf::all()
}

/// A region of the sky (degrees, ICRS) found in a spatial predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Region {
    /// All positions within `radius` degrees of (`lon`, `lat`), edge included.
    Circle {
        /// centre longitude (RA), degrees
        lon: f64,
        /// centre latitude (Dec), degrees
        lat: f64,
        /// radius, degrees (negative: empty; ≥ 180: whole sky)
        radius: f64,
    },
    /// A simple polygon with great-circle edges; inside = the smaller region.
    Polygon {
        /// vertices `(lon, lat)`, degrees
        vertices: Vec<(f64, f64)>,
    },
}

impl Region {
    /// Is the position (degrees) inside the region (same semantics as CONTAINS)? An invalid
    /// polygon contains nothing. For many points use [`Region::prepare`].
    pub fn contains_point(&self, lon: f64, lat: f64) -> bool {
        self.prepare().contains_point(lon, lat)
    }

    /// Precomputes the region for fast repeated [`PreparedRegion::contains_point`] tests.
    pub fn prepare(&self) -> PreparedRegion {
        PreparedRegion(match self {
            Region::Circle { lon, lat, radius } => {
                Some(sphere::Shape::Circle(sphere::Cap::new(*lon, *lat, *radius)))
            }
            Region::Polygon { vertices } => sphere::Polygon::new(vertices)
                .ok()
                .map(sphere::Shape::Polygon),
        })
    }

    /// Sorted, non-overlapping ranges of NESTED HEALPix order-29 indices whose union covers the
    /// region (a superset, at most a few dozen ranges); `None` when the region is too large to
    /// be worth pruning (radius > 60°) or when no coverage can be computed.
    pub fn healpix_ranges(&self) -> Option<Vec<Range<u64>>> {
        match self {
            Region::Circle { lon, lat, radius } => coverage::circle_ranges(*lon, *lat, *radius),
            Region::Polygon { vertices } => {
                coverage::polygon_ranges(&sphere::Polygon::new(vertices).ok()?)
            }
        }
    }
}

/// A [`Region`] ready for many point-in-region tests.
#[derive(Debug, Clone)]
pub struct PreparedRegion(Option<sphere::Shape>);

impl PreparedRegion {
    /// Is the position (degrees) inside the region (same semantics as CONTAINS)?
    pub fn contains_point(&self, lon: f64, lat: f64) -> bool {
        let Some(shape) = &self.0 else {
            return false;
        };
        if !lon.is_finite() || !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return false;
        }
        let p = sphere::Shape::Point(sphere::Pt::new(lon, lat));
        sphere::contains(&p, shape)
    }
}

/// A spatial predicate on a table: the position columns and the region they must fall in.
#[derive(Debug, Clone, PartialEq)]
pub struct SpatialFilter {
    /// longitude (RA) column
    pub lon: Column,
    /// latitude (Dec) column
    pub lat: Column,
    /// the region the position must be in (the rows kept by the predicate are a subset)
    pub region: Region,
}

/// The first spatial predicate among the top-level conjuncts of `expr`, if any.
pub fn spatial_filter(expr: &Expr) -> Option<SpatialFilter> {
    filter::recognise_all(expr).into_iter().next()
}

/// All spatial predicates among the top-level conjuncts (`AND`) of `expr`.
pub fn spatial_filters(expr: &Expr) -> Vec<SpatialFilter> {
    filter::recognise_all(expr)
}
