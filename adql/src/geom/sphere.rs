//! Spherical geometry on unit vectors: points, caps (ADQL circles) and polygons whose edges
//! are minor great-circle arcs.
//!
//! Everything here works on 3-D unit vectors, so nothing is special about RA 0/360 or the poles.
//! Angles given in and returned from the public(crate) constructors are degrees; the internal
//! computations use radians.
//!
//! Polygon semantics: the edges are the minor great-circle arcs between consecutive vertices
//! (the last vertex connects back to the first), the polygon must be simple (no two edges
//! cross, no edge folds back onto the previous one), and its *inside* is the smaller of the two
//! regions the edges bound (the one of area ≤ 2π sr). The vertices are stored in the
//! counter-clockwise order (inside on the left when walking along the edges, seen from outside
//! the sphere; i.e. the order of the DALI `polygon` xtype).

use std::f64::consts::{FRAC_PI_2, PI};

/// A 3-D vector.
pub(crate) type V3 = [f64; 3];

#[inline]
pub(crate) fn dot(a: &V3, b: &V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline]
pub(crate) fn cross(a: &V3, b: &V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[inline]
fn add(a: &V3, b: &V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

#[inline]
fn sub(a: &V3, b: &V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[inline]
fn scale(a: &V3, k: f64) -> V3 {
    [a[0] * k, a[1] * k, a[2] * k]
}

#[inline]
pub(crate) fn neg(a: &V3) -> V3 {
    [-a[0], -a[1], -a[2]]
}

#[inline]
fn norm(a: &V3) -> f64 {
    dot(a, a).sqrt()
}

/// `a / |a|`, or `None` for a null (or non-finite) vector.
pub(crate) fn normalize(a: &V3) -> Option<V3> {
    let n = norm(a);
    (n > 0.0 && n.is_finite()).then(|| scale(a, 1.0 / n))
}

/// `a × b`, computed as `(a + b) × (b − a) / 2`: more accurate when `a ≈ b`.
#[inline]
fn robust_cross(a: &V3, b: &V3) -> V3 {
    scale(&cross(&add(a, b), &sub(b, a)), 0.5)
}

/// The triple product `(a × b) · c`: positive when `a, b, c` turn counter-clockwise.
#[inline]
fn det(a: &V3, b: &V3, c: &V3) -> f64 {
    dot(&cross(a, b), c)
}

/// Angle between two unit vectors, in radians, accurate at every separation.
#[inline]
pub(crate) fn angle(a: &V3, b: &V3) -> f64 {
    norm(&cross(a, b)).atan2(dot(a, b))
}

/// Squared chord length between two unit vectors (monotonic in the angle, precise when small).
#[inline]
fn chord2(a: &V3, b: &V3) -> f64 {
    let d = sub(a, b);
    dot(&d, &d)
}

/// Unit vector of the position `(lon, lat)` given in degrees.
pub(crate) fn from_lonlat(lon_deg: f64, lat_deg: f64) -> V3 {
    let (sl, cl) = lon_deg.to_radians().sin_cos();
    let (sb, cb) = lat_deg.to_radians().sin_cos();
    [cb * cl, cb * sl, sb]
}

/// `(lon, lat)` in degrees of a unit vector, lon in `[0, 360)`.
pub(crate) fn to_lonlat(v: &V3) -> (f64, f64) {
    let lon = v[1].atan2(v[0]).to_degrees();
    let lon = if lon < 0.0 { lon + 360.0 } else { lon };
    // 359.99999999999999 + 360 may round to 360.0
    let lon = if lon >= 360.0 { 0.0 } else { lon };
    let lat = v[2].atan2(v[0].hypot(v[1])).to_degrees();
    (lon, lat)
}

/// Great-circle distance in degrees between two positions given in degrees (Vincenty's
/// formula: an `atan2` of the sine and cosine of the separation, accurate from 0 to 180°).
pub fn distance_deg(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (s1, c1) = lat1.to_radians().sin_cos();
    let (s2, c2) = lat2.to_radians().sin_cos();
    let (sd, cd) = (lon2 - lon1).to_radians().sin_cos();
    let y = (c2 * sd).hypot(c1 * s2 - s1 * c2 * cd);
    let x = s1 * s2 + c1 * c2 * cd;
    y.atan2(x).to_degrees()
}

/// Checks a position given in degrees: `Ok(false)` when a coordinate is not finite (the
/// geometry is then NULL), an error when the latitude is outside [-90, 90].
pub(crate) fn check_lonlat(what: &str, lon: f64, lat: f64) -> Result<bool, String> {
    if !lon.is_finite() || !lat.is_finite() {
        return Ok(false);
    }
    if !(-90.0..=90.0).contains(&lat) {
        return Err(format!(
            "{what}: latitude {lat} is outside [-90, 90] degrees"
        ));
    }
    Ok(true)
}

/// A position on the sphere.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pt {
    pub lon: f64,
    pub lat: f64,
    pub v: V3,
}

impl Pt {
    pub(crate) fn new(lon: f64, lat: f64) -> Pt {
        Pt {
            lon,
            lat,
            v: from_lonlat(lon, lat),
        }
    }
}

/// Two positions closer than this squared chord (1e-15 rad) are the same POINT.
const POINT_EQ_CHORD2: f64 = 1e-30;

/// A spherical cap: all positions within `radius` degrees of a centre (ADQL CIRCLE).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cap {
    pub lon: f64,
    pub lat: f64,
    /// degrees; ≥ 180 is the whole sphere, negative or NaN is empty
    pub radius: f64,
    pub c: V3,
    /// squared chord of the radius (valid for 0 ≤ radius < 180)
    chord2_max: f64,
}

impl Cap {
    pub(crate) fn new(lon: f64, lat: f64, radius: f64) -> Cap {
        let half = (radius.clamp(0.0, 180.0) / 2.0).to_radians().sin() * 2.0;
        Cap {
            lon,
            lat,
            radius,
            c: from_lonlat(lon, lat),
            // a zero radius matches the tolerance of POINT equality
            chord2_max: (half * half).max(POINT_EQ_CHORD2),
        }
    }

    fn is_full(&self) -> bool {
        self.radius >= 180.0
    }

    fn is_empty(&self) -> bool {
        self.radius.is_nan() || self.radius < 0.0
    }

    fn radius_rad(&self) -> f64 {
        self.radius.to_radians()
    }

    /// Is the unit vector inside (or on the edge of) the cap?
    pub(crate) fn contains(&self, p: &V3) -> bool {
        if self.is_full() {
            return p.iter().all(|x| x.is_finite());
        }
        if self.is_empty() {
            return false;
        }
        chord2(p, &self.c) <= self.chord2_max
    }
}

/// A simple spherical polygon with great-circle edges; the inside is the smaller region.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Polygon {
    /// vertices in degrees, counter-clockwise (inside on the left)
    pub lonlat: Vec<(f64, f64)>,
    /// the same vertices as unit vectors
    v: Vec<V3>,
    /// `n[i]`: unit normal of the edge `v[i] → v[i+1]`, pointing to the inside half
    n: Vec<V3>,
    /// all turns are left turns: the inside is the intersection of the edges' hemispheres
    convex: bool,
    /// area of the inside, steradians, in (0, 2π]
    area: f64,
    /// a cap holding the whole polygon (centre, cosine of its radius), when one smaller than
    /// a hemisphere does: points outside it are outside at the cost of one dot product
    cap: Option<(V3, f64)>,
}

/// Two vertices closer than this (radians, ~2e-8 arcsec) are one.
const SAME_VERTEX: f64 = 1e-13;

impl Polygon {
    /// Builds a polygon from vertices in degrees; fails (with a message) when the polygon is
    /// degenerate or self-intersecting.
    pub(crate) fn new(vertices: &[(f64, f64)]) -> Result<Polygon, String> {
        let mut lonlat: Vec<(f64, f64)> = Vec::with_capacity(vertices.len());
        let mut v: Vec<V3> = Vec::with_capacity(vertices.len());
        for &(lon, lat) in vertices {
            if !lon.is_finite() || !lat.is_finite() {
                return Err("POLYGON: vertex coordinates must be finite".into());
            }
            if !(-90.0..=90.0).contains(&lat) {
                return Err(format!(
                    "POLYGON: latitude {lat} is outside [-90, 90] degrees"
                ));
            }
            let p = from_lonlat(lon, lat);
            if let Some(last) = v.last() {
                if angle(last, &p) < SAME_VERTEX {
                    continue;
                }
            }
            lonlat.push((lon, lat));
            v.push(p);
        }
        // the closing vertex may repeat the first one
        while v.len() > 1 && angle(&v[0], &v[v.len() - 1]) < SAME_VERTEX {
            v.pop();
            lonlat.pop();
        }
        if v.len() < 3 {
            return Err("POLYGON needs at least 3 distinct vertices".into());
        }
        let (n, turns) = edges_and_turns(&v)?;
        let total: f64 = turns.iter().sum();
        let (lonlat, v, n, turns) = if total < 0.0 {
            // clockwise: the smaller region is on the right, walk the other way
            let mut lonlat = lonlat;
            let mut v = v;
            lonlat.reverse();
            v.reverse();
            let (n, turns) = edges_and_turns(&v)?;
            (lonlat, v, n, turns)
        } else {
            (lonlat, v, n, turns)
        };
        let total: f64 = turns.iter().sum();
        // Gauss-Bonnet: the area on the left of a simple closed curve of geodesic arcs.
        let area = 2.0 * PI - total;
        let convex = turns.iter().all(|t| *t >= -1e-12);
        let cap = bounding_cap(&v);
        let poly = Polygon {
            lonlat,
            v,
            n,
            convex,
            area,
            cap,
        };
        poly.check_simple()?;
        Ok(poly)
    }

    /// Area of the inside in steradians.
    #[cfg(test)]
    pub(crate) fn area(&self) -> f64 {
        self.area
    }

    fn edge(&self, i: usize) -> (&V3, &V3, &V3) {
        let j = if i + 1 == self.v.len() { 0 } else { i + 1 };
        (&self.v[i], &self.v[j], &self.n[i])
    }

    /// Fails when two edges that do not share a vertex cross. Edges are compared only where
    /// their boxes overlap along the axis the vertices spread most on (sort and sweep): a
    /// polygon of 100,000 vertices takes O(n log n), not the 5·10⁹ edge pairs of comparing all.
    /// The first crossing pair in edge order is named, whichever the sweep meets first.
    fn check_simple(&self) -> Result<(), String> {
        let n = self.v.len();
        let boxes: Vec<([f64; 3], [f64; 3])> = (0..n)
            .map(|i| {
                let (a, b, _) = self.edge(i);
                arc_box(a, b)
            })
            .collect();
        let spread = |k: usize| {
            let (lo, hi) = self
                .v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                    (lo.min(p[k]), hi.max(p[k]))
                });
            hi - lo
        };
        let axis = (0..3)
            .max_by(|&x, &y| spread(x).total_cmp(&spread(y)))
            .unwrap_or(0);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&x, &y| boxes[x].0[axis].total_cmp(&boxes[y].0[axis]));
        let adjacent = |i: usize, j: usize| i.abs_diff(j) == 1 || i.abs_diff(j) == n - 1;
        let mut first: Option<(usize, usize)> = None;
        for (k, &i) in order.iter().enumerate() {
            let (lo_i, hi_i) = &boxes[i];
            for &j in &order[k + 1..] {
                let (lo_j, hi_j) = &boxes[j];
                if lo_j[axis] > hi_i[axis] {
                    break;
                }
                let overlap = (0..3).all(|c| lo_j[c] <= hi_i[c] && lo_i[c] <= hi_j[c]);
                if !overlap || adjacent(i, j) {
                    continue;
                }
                let (a, b, _) = self.edge(i);
                let (c, d, _) = self.edge(j);
                if arcs_cross(a, b, c, d) {
                    let pair = (i.min(j), i.max(j));
                    first = Some(first.map_or(pair, |f| f.min(pair)));
                }
            }
        }
        match first {
            Some((i, j)) => Err(format!(
                "POLYGON edges {} and {} cross: the polygon must be simple",
                i + 1,
                j + 1
            )),
            None => Ok(()),
        }
    }

    /// Is the unit vector inside (or, up to rounding, on the edge of) the polygon?
    pub(crate) fn contains(&self, q: &V3) -> bool {
        if let Some((c, cos_r)) = &self.cap {
            if dot(c, q) < *cos_r {
                return false;
            }
        }
        if self.convex {
            return self.n.iter().all(|n| dot(n, q) >= 0.0);
        }
        self.contains_by_area(q)
    }

    /// Point-in-polygon test valid for any simple polygon (convex or not).
    fn contains_by_area(&self, q: &V3) -> bool {
        // The sum of the signed areas of the triangles (-q, v[i], v[i+1]) is the area of the
        // left region when q is outside it, and that area minus 4π when q is inside it (the
        // sum jumps by 4π exactly when q crosses an edge).
        let x = neg(q);
        let mut sum = 0.0;
        for i in 0..self.v.len() {
            let (a, b, _) = self.edge(i);
            sum += triangle_signed_area(&x, a, b);
        }
        sum < self.area - 2.0 * PI
    }

    /// Smallest angular distance (radians) from the unit vector to the polygon's boundary.
    fn boundary_distance(&self, p: &V3) -> f64 {
        (0..self.v.len())
            .map(|i| {
                let (a, b, n) = self.edge(i);
                arc_distance(p, a, b, n)
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// Does any edge of `self` cross any edge of `other` (at points inside both edges)?
    fn edges_cross(&self, other: &Polygon) -> bool {
        (0..self.v.len()).any(|i| {
            let (a, b, _) = self.edge(i);
            (0..other.v.len()).any(|j| {
                let (c, d, _) = other.edge(j);
                arcs_cross(a, b, c, d)
            })
        })
    }

    /// A cap containing the whole polygon (centre: normalised vertex mean), if one of radius
    /// below 180° is found; radius in radians.
    pub(crate) fn bounding_cap(&self) -> Option<(V3, f64)> {
        let sum = self.v.iter().fold([0.0; 3], |acc, p| add(&acc, p));
        let c = normalize(&sum)?;
        let anti = neg(&c);
        if self.contains(&anti) {
            return None;
        }
        // the farthest boundary point from c is the closest one to -c
        let r = PI - self.boundary_distance(&anti);
        Some((c, r))
    }
}

/// Normals of the edges and the signed turning angles at the vertices (positive: left turn).
fn edges_and_turns(v: &[V3]) -> Result<(Vec<V3>, Vec<f64>), String> {
    let k = v.len();
    let mut n = Vec::with_capacity(k);
    for i in 0..k {
        let a = &v[i];
        let b = &v[(i + 1) % k];
        if angle(a, b) > PI - 1e-9 {
            return Err(format!(
                "POLYGON: vertices {} and {} are antipodal, the edge between them is undefined",
                i + 1,
                (i + 1) % k + 1
            ));
        }
        let ni =
            normalize(&robust_cross(a, b)).ok_or_else(|| "POLYGON: degenerate edge".to_string())?;
        n.push(ni);
    }
    let mut turns = Vec::with_capacity(k);
    for i in 0..k {
        let prev = &n[(i + k - 1) % k];
        let next = &n[i];
        let t = det(prev, next, &v[i]).atan2(dot(prev, next));
        if t.abs() > PI - 1e-10 {
            return Err(format!(
                "POLYGON: the edges at vertex {} fold back onto each other",
                i + 1
            ));
        }
        turns.push(t);
    }
    Ok((n, turns))
}

/// Signed area (steradians) of the spherical triangle `a, b, c` (Van Oosterom & Strackee),
/// in (-2π, 2π); positive when counter-clockwise.
#[inline]
fn triangle_signed_area(a: &V3, b: &V3, c: &V3) -> f64 {
    2.0 * det(a, b, c).atan2(1.0 + dot(a, b) + dot(b, c) + dot(c, a))
}

#[inline]
fn sign(x: f64) -> i8 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

/// Do the minor arcs `a→b` and `c→d` cross at a point interior to both?
/// A cap smaller than a hemisphere holding every edge of the polygon with vertices `v`, or
/// None. Its centre is the vertices' mean direction; every point of an edge lies within half
/// the edge's length of one of its ends. Below a hemisphere the region outside the cap, larger
/// than 2π and free of edges, is outside the polygon (whose inside is the smaller region).
fn bounding_cap(v: &[V3]) -> Option<(V3, f64)> {
    let sum = v.iter().fold([0.0; 3], |s, p| add(&s, p));
    let c = normalize(&sum)?;
    let n = v.len();
    let r = (0..n)
        .map(|i| {
            let (a, b) = (&v[i], &v[(i + 1) % n]);
            angle(&c, a).max(angle(&c, b)) + angle(a, b) / 2.0
        })
        .fold(0.0, f64::max)
        + 1e-9;
    (r < FRAC_PI_2).then(|| (c, r.cos()))
}

/// A box holding the minor arc `a→b`: the box of its ends grown by the arc's sagitta (no point
/// of the arc is farther than that from its chord) and a margin for rounding.
fn arc_box(a: &V3, b: &V3) -> ([f64; 3], [f64; 3]) {
    let sagitta = 1.0 - (angle(a, b) / 2.0).cos() + 1e-12;
    let mut lo = [0.0; 3];
    let mut hi = [0.0; 3];
    for k in 0..3 {
        lo[k] = a[k].min(b[k]) - sagitta;
        hi[k] = a[k].max(b[k]) + sagitta;
    }
    (lo, hi)
}

fn arcs_cross(a: &V3, b: &V3, c: &V3, d: &V3) -> bool {
    let acb = -sign(det(a, b, c));
    if acb == 0 {
        return false;
    }
    let bda = sign(det(a, b, d));
    if bda != acb {
        return false;
    }
    let cbd = -sign(det(c, d, b));
    if cbd != acb {
        return false;
    }
    let dac = sign(det(c, d, a));
    dac == acb
}

/// Angular distance (radians) from the unit vector `p` to the minor arc `a→b` whose unit
/// normal is `n`.
fn arc_distance(p: &V3, a: &V3, b: &V3, n: &V3) -> f64 {
    if det(a, p, n) >= 0.0 && det(p, b, n) >= 0.0 {
        // the closest point of the great circle lies on the arc
        let h = dot(p, n);
        let inplane = sub(p, &scale(n, h));
        let d = h.abs().atan2(norm(&inplane));
        if d.is_finite() {
            return d;
        }
    }
    angle(p, a).min(angle(p, b))
}

/// A geometry value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    Point(Pt),
    Circle(Cap),
    Polygon(Polygon),
}

impl Shape {
    /// The ADQL name of the kind.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Shape::Point(_) => "POINT",
            Shape::Circle(_) => "CIRCLE",
            Shape::Polygon(_) => "POLYGON",
        }
    }

    /// Parses the list-of-doubles representation; `Ok(None)` when a coordinate is not finite.
    pub(crate) fn from_values(vals: &[f64]) -> Result<Option<Shape>, String> {
        match vals.len() {
            2 => {
                if !check_lonlat("POINT", vals[0], vals[1])? {
                    return Ok(None);
                }
                Ok(Some(Shape::Point(Pt::new(vals[0], vals[1]))))
            }
            3 => {
                if !check_lonlat("CIRCLE", vals[0], vals[1])? || vals[2].is_nan() {
                    return Ok(None);
                }
                if vals[2] < 0.0 {
                    return Err(format!("CIRCLE: radius {} must not be negative", vals[2]));
                }
                Ok(Some(Shape::Circle(Cap::new(vals[0], vals[1], vals[2]))))
            }
            n if n >= 6 && n % 2 == 0 => {
                if vals.iter().any(|x| !x.is_finite()) {
                    return Ok(None);
                }
                let verts: Vec<(f64, f64)> = vals.chunks_exact(2).map(|c| (c[0], c[1])).collect();
                Ok(Some(Shape::Polygon(Polygon::new(&verts)?)))
            }
            n => Err(format!(
                "a geometry value is a list of 2 (POINT), 3 (CIRCLE) or an even number ≥ 6 \
                 (POLYGON) numbers, not {n}"
            )),
        }
    }

    /// Appends the list-of-doubles representation.
    pub(crate) fn write_values(&self, out: &mut Vec<f64>) {
        match self {
            Shape::Point(p) => out.extend([p.lon, p.lat]),
            Shape::Circle(c) => out.extend([c.lon, c.lat, c.radius]),
            Shape::Polygon(g) => out.extend(g.lonlat.iter().flat_map(|&(a, b)| [a, b])),
        }
    }
}

/// Square degrees per steradian.
const DEG2_PER_SR: f64 = (180.0 / PI) * (180.0 / PI);

/// AREA: the area of a geometry in square degrees (0 for a point).
pub(crate) fn area_deg2(s: &Shape) -> f64 {
    match s {
        Shape::Point(_) => 0.0,
        Shape::Circle(c) => {
            let r = c.radius.clamp(0.0, 180.0).to_radians();
            // 2π(1 - cos r), written with sin² for precision at small radii
            let h = (r / 2.0).sin();
            4.0 * PI * h * h * DEG2_PER_SR
        }
        Shape::Polygon(g) => g.area * DEG2_PER_SR,
    }
}

/// CENTROID: the centre of mass of a geometry, `(lon, lat)` in degrees (lon in [0, 360));
/// `None` when undefined (the whole sky).
pub(crate) fn centroid(s: &Shape) -> Option<(f64, f64)> {
    match s {
        Shape::Point(p) => Some((p.lon, p.lat)),
        Shape::Circle(c) => (c.radius < 180.0).then_some((c.lon, c.lat)),
        Shape::Polygon(g) => {
            // ∫ x dA over the polygon = ½ Σ (edge length) × (unit inward edge normal)
            let mut sum = [0.0; 3];
            for i in 0..g.v.len() {
                let (a, b, n) = g.edge(i);
                sum = add(&sum, &scale(n, angle(a, b)));
            }
            normalize(&sum).map(|c| to_lonlat(&c))
        }
    }
}

/// Builds the polygon of an ADQL BOX.
///
/// Construction (STC "Box", as in the IVOA discussions of the ADQL BOX): a cross centred on
/// `(lon, lat)` has one arm along the meridian through the centre and one along the great
/// circle perpendicular to it at the centre; the arms extend `height/2` and `width/2` on either
/// side (measured along those great circles). The sides are the great circles crossing the arm
/// ends at right angles. In the tangent frame of the centre (x towards the centre, y east,
/// z north) the vertices are `normalize(1, ±tan(width/2), ±tan(height/2))`. Width and height
/// must be in (0, 180) degrees. At a pole "east" is the direction of longitude `lon + 90°`.
/// The vertices are returned counter-clockwise (SW, SE, NE, NW).
pub(crate) fn box_vertices(
    lon: f64,
    lat: f64,
    width: f64,
    height: f64,
) -> Result<Vec<(f64, f64)>, String> {
    if !(width > 0.0 && width < 180.0 && height > 0.0 && height < 180.0) {
        return Err(format!(
            "BOX: width ({width}) and height ({height}) must be in (0, 180) degrees"
        ));
    }
    let (sl, cl) = lon.to_radians().sin_cos();
    let (sb, cb) = lat.to_radians().sin_cos();
    let x = [cb * cl, cb * sl, sb];
    let east = [-sl, cl, 0.0];
    let north = [-sb * cl, -sb * sl, cb];
    let tw = (width / 2.0).to_radians().tan();
    let th = (height / 2.0).to_radians().tan();
    let mut out = Vec::with_capacity(4);
    for (ew, ns) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
        let p = add(&add(&x, &scale(&east, ew * tw)), &scale(&north, ns * th));
        let p = normalize(&p).ok_or_else(|| "BOX: degenerate box".to_string())?;
        out.push(to_lonlat(&p));
    }
    Ok(out)
}

/// CONTAINS(a, b): is `a` wholly inside `b`? Edges count as inside.
pub(crate) fn contains(a: &Shape, b: &Shape) -> bool {
    use Shape::*;
    match (a, b) {
        (Point(p), Point(q)) => chord2(&p.v, &q.v) <= POINT_EQ_CHORD2,
        (Point(p), Circle(c)) => c.contains(&p.v),
        (Point(p), Polygon(g)) => g.contains(&p.v),
        (Circle(c), Point(q)) => c.radius <= 0.0 && chord2(&c.c, &q.v) <= POINT_EQ_CHORD2,
        (Circle(c1), Circle(c2)) => cap_in_cap(c1, c2),
        (Circle(c), Polygon(g)) => cap_in_polygon(c, g),
        (Polygon(_), Point(_)) => false,
        (Polygon(g), Circle(c)) => polygon_in_cap(g, c),
        (Polygon(g), Polygon(h)) => polygon_in_polygon(g, h),
    }
}

/// INTERSECTS(a, b): do `a` and `b` have a point in common? Edges count as inside.
pub(crate) fn intersects(a: &Shape, b: &Shape) -> bool {
    use Shape::*;
    match (a, b) {
        (Point(_), _) => contains(a, b),
        (_, Point(_)) => contains(b, a),
        (Circle(c1), Circle(c2)) => {
            if c1.is_empty() || c2.is_empty() {
                return false;
            }
            angle(&c1.c, &c2.c) <= c1.radius_rad() + c2.radius_rad()
        }
        (Circle(c), Polygon(g)) | (Polygon(g), Circle(c)) => cap_intersects_polygon(c, g),
        (Polygon(g), Polygon(h)) => {
            g.edges_cross(h)
                || g.v.iter().any(|p| h.contains(p))
                || h.v.iter().any(|p| g.contains(p))
        }
    }
}

fn cap_in_cap(inner: &Cap, outer: &Cap) -> bool {
    if inner.is_empty() || outer.is_full() {
        return true;
    }
    if outer.is_empty() {
        return false;
    }
    angle(&inner.c, &outer.c) + inner.radius_rad() <= outer.radius_rad()
}

pub(crate) fn cap_in_polygon(c: &Cap, g: &Polygon) -> bool {
    if c.is_empty() {
        return true;
    }
    if c.is_full() {
        return false;
    }
    // the cap is connected: it is inside iff its centre is and it meets no edge
    g.contains(&c.c) && g.boundary_distance(&c.c) >= c.radius_rad()
}

fn polygon_in_cap(g: &Polygon, c: &Cap) -> bool {
    if c.is_full() {
        return true;
    }
    if c.is_empty() {
        return false;
    }
    // the complement of the cap is the cap of radius 180° - r around the antipode: it must
    // meet neither the boundary nor the inside of the polygon
    let anti = neg(&c.c);
    !g.contains(&anti) && g.boundary_distance(&anti) >= PI - c.radius_rad()
}

pub(crate) fn cap_intersects_polygon(c: &Cap, g: &Polygon) -> bool {
    if c.is_empty() {
        return false;
    }
    if c.is_full() {
        return true;
    }
    g.contains(&c.c) || g.boundary_distance(&c.c) <= c.radius_rad()
}

fn polygon_in_polygon(inner: &Polygon, outer: &Polygon) -> bool {
    // the boundary of `inner` lies in `outer` iff its vertices do and no edges cross; the inner
    // region is then inside `outer` (both are the smaller regions of their boundaries)
    inner.area <= outer.area * (1.0 + 1e-12) + 1e-15
        && inner.v.iter().all(|p| outer.contains(p))
        && !inner.edges_cross(outer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: a small seeded PRNG for reproducible random tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
        fn sphere(&mut self) -> (f64, f64) {
            let lon = self.unit() * 360.0;
            let lat = (2.0 * self.unit() - 1.0).asin().to_degrees();
            (lon, lat)
        }
    }

    /// Independent point-in-polygon test: parity of the crossings of the arc from `q` to a
    /// reference point known to be outside.
    fn parity_contains(g: &Polygon, q: &V3, outside: &V3) -> bool {
        let mut c = false;
        for i in 0..g.v.len() {
            let (a, b, _) = g.edge(i);
            if arcs_cross(q, outside, a, b) {
                c = !c;
            }
        }
        c
    }

    fn poly(v: &[(f64, f64)]) -> Polygon {
        Polygon::new(v).expect("valid polygon")
    }

    #[test]
    fn box_vertices_are_counter_clockwise_and_symmetric() {
        let v = box_vertices(10.0, 20.0, 2.0, 4.0).unwrap();
        assert_eq!(v.len(), 4);
        // SW, SE, NE, NW
        assert!(v[0].0 < 10.0 && v[0].1 < 20.0);
        assert!(v[1].0 > 10.0 && v[1].1 < 20.0);
        assert!(v[2].0 > 10.0 && v[2].1 > 20.0);
        assert!(v[3].0 < 10.0 && v[3].1 > 20.0);
        let g = poly(&v);
        assert_eq!(g.lonlat, v, "already counter-clockwise");
        assert!(box_vertices(0.0, 0.0, 0.0, 1.0).is_err());
        assert!(box_vertices(0.0, 0.0, 180.0, 1.0).is_err());
    }

    #[test]
    fn polygon_orientation_does_not_matter() {
        let ccw = [(10.0, 10.0), (20.0, 10.0), (20.0, 20.0), (10.0, 20.0)];
        let mut cw = ccw;
        cw.reverse();
        let a = poly(&ccw);
        let b = poly(&cw);
        assert_eq!(a.lonlat, ccw);
        assert!((a.area() - b.area()).abs() < 1e-15);
        assert!(a.area() < 0.04 && a.area() > 0.02, "{}", a.area());
    }

    #[test]
    fn invalid_polygons_are_rejected() {
        // bow tie
        assert!(Polygon::new(&[(0.0, 0.0), (10.0, 10.0), (10.0, 0.0), (0.0, 10.0)]).is_err());
        // too few distinct vertices
        assert!(Polygon::new(&[(0.0, 0.0), (0.0, 0.0), (10.0, 0.0)]).is_err());
        // antipodal consecutive vertices
        assert!(Polygon::new(&[(0.0, 0.0), (180.0, 0.0), (90.0, 45.0)]).is_err());
        // spike: goes back along the same great circle
        assert!(Polygon::new(&[(0.0, 0.0), (10.0, 0.0), (5.0, 0.0), (5.0, 5.0)]).is_err());
        // latitude out of range
        assert!(Polygon::new(&[(0.0, 0.0), (10.0, 91.0), (5.0, 5.0)]).is_err());
        // closing vertex repeated is fine
        let g = poly(&[(0.0, 0.0), (10.0, 0.0), (5.0, 5.0), (0.0, 0.0)]);
        assert_eq!(g.v.len(), 3);
    }

    #[test]
    fn area_of_octant() {
        let g = poly(&[(0.0, 0.0), (90.0, 0.0), (0.0, 90.0)]);
        assert!((g.area() - PI / 2.0).abs() < 1e-12, "{}", g.area());
        assert!(g.convex);
    }

    #[test]
    fn convex_and_area_tests_agree() {
        let mut rng = Rng(7);
        let mut n_in = 0;
        for _ in 0..200 {
            let (lon, lat) = rng.sphere();
            let w = 0.01 + rng.unit() * 120.0;
            let h = 0.01 + rng.unit() * 120.0;
            let v = box_vertices(lon, lat, w, h).unwrap();
            let g = poly(&v);
            assert!(g.convex);
            for _ in 0..200 {
                let (plon, plat) = rng.sphere();
                let q = from_lonlat(plon, plat);
                if g.boundary_distance(&q) < 1e-9 {
                    continue;
                }
                let a = g.contains(&q);
                assert_eq!(
                    a,
                    g.contains_by_area(&q),
                    "box {lon} {lat} {w} {h}, point {plon} {plat}"
                );
                n_in += usize::from(a);
            }
        }
        assert!(n_in > 1000, "{n_in}");
    }

    #[test]
    fn concave_polygons_match_crossing_parity() {
        let mut rng = Rng(11);
        let mut checked = 0;
        for _ in 0..300 {
            // a random star-shaped polygon around a random centre
            let (clon, clat) = rng.sphere();
            let c = from_lonlat(clon, clat);
            let east = normalize(&cross(&[0.0, 0.0, 1.0], &c)).unwrap_or([0.0, 1.0, 0.0]);
            let north = cross(&c, &east);
            let n = 5 + (rng.next() % 10) as usize;
            let scale_deg = 0.001 + rng.unit() * 40.0;
            let mut verts = Vec::new();
            for k in 0..n {
                let phi = 2.0 * PI * (k as f64 + 0.8 * rng.unit()) / n as f64;
                let r = (scale_deg * (0.2 + rng.unit())).to_radians();
                let p = add(
                    &scale(&c, r.cos()),
                    &add(
                        &scale(&east, r.sin() * phi.cos()),
                        &scale(&north, r.sin() * phi.sin()),
                    ),
                );
                verts.push(to_lonlat(&p));
            }
            let Ok(g) = Polygon::new(&verts) else {
                continue;
            };
            // 90° away from the centre is outside (the polygon's radius is below 50°)
            let outside = east;
            for _ in 0..300 {
                let r = (scale_deg * 1.5 * rng.unit()).to_radians();
                let phi = 2.0 * PI * rng.unit();
                let q = add(
                    &scale(&c, r.cos()),
                    &add(
                        &scale(&east, r.sin() * phi.cos()),
                        &scale(&north, r.sin() * phi.sin()),
                    ),
                );
                if g.boundary_distance(&q) < 1e-12 {
                    continue;
                }
                assert_eq!(
                    g.contains(&q),
                    parity_contains(&g, &q, &outside),
                    "polygon {verts:?}, point {:?}",
                    to_lonlat(&q)
                );
                checked += 1;
            }
        }
        assert!(checked > 50_000, "{checked}");
    }

    /// The first crossing pair of edges by comparing every pair (what `check_simple`'s sweep
    /// must find).
    fn first_crossing_by_all_pairs(g: &Polygon) -> Option<(usize, usize)> {
        let n = g.v.len();
        for i in 0..n {
            for j in (i + 2)..n {
                if i == 0 && j == n - 1 {
                    continue;
                }
                let (a, b, _) = g.edge(i);
                let (c, d, _) = g.edge(j);
                if arcs_cross(a, b, c, d) {
                    return Some((i, j));
                }
            }
        }
        None
    }

    #[test]
    fn sweep_finds_the_crossings_all_pairs_find() {
        let mut rng = Rng(23);
        let (mut simple, mut crossed) = (0, 0);
        for _ in 0..2000 {
            // vertices around a centre in random order: often self-intersecting
            let (clon, clat) = rng.sphere();
            let n = 4 + (rng.next() % 12) as usize;
            let size = 0.001 + rng.unit() * 60.0;
            let verts: Vec<(f64, f64)> = (0..n)
                .map(|_| {
                    let lat = (clat + size * (rng.unit() - 0.5)).clamp(-90.0, 90.0);
                    (clon + size * (rng.unit() - 0.5), lat)
                })
                .collect();
            // a polygon of the vertices, without the simplicity check
            let Ok(g) = Polygon::new(&verts[..3]) else {
                continue;
            };
            let mut g = g;
            let v: Vec<V3> = verts.iter().map(|&(lo, la)| from_lonlat(lo, la)).collect();
            let Ok((n_edges, _)) = edges_and_turns(&v) else {
                continue;
            };
            g.v = v;
            g.n = n_edges;
            let expected = first_crossing_by_all_pairs(&g);
            let got = g.check_simple();
            match expected {
                None => {
                    assert!(got.is_ok(), "{verts:?}: {got:?}");
                    simple += 1;
                }
                Some((i, j)) => {
                    let msg = format!(
                        "POLYGON edges {} and {} cross: the polygon must be simple",
                        i + 1,
                        j + 1
                    );
                    assert_eq!(got, Err(msg), "{verts:?}");
                    crossed += 1;
                }
            }
        }
        assert!(
            simple > 100 && crossed > 100,
            "{simple} simple, {crossed} crossed"
        );
    }

    #[test]
    fn a_polygon_of_100000_vertices_is_checked_and_used() {
        // an ellipse of 0.5° around the Pleiades, as in the query-of-death test
        let (ra0, dec0, a) = (56.75f64, 24.12f64, 0.5f64);
        let n = 100_000;
        let cosd = dec0.to_radians().cos();
        let verts: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let t = 2.0 * PI * i as f64 / n as f64;
                (ra0 + a * t.cos() / cosd, dec0 + a * t.sin())
            })
            .collect();
        let g = poly(&verts);
        assert!(g.cap.is_some());
        assert!(g.contains(&from_lonlat(ra0, dec0)));
        assert!(g.contains(&from_lonlat(ra0, dec0 + 0.49)));
        assert!(!g.contains(&from_lonlat(ra0, dec0 + 0.51)));
        assert!(!g.contains(&from_lonlat(ra0 + 180.0, -dec0)));
        // one vertex moved across the ring makes two edges cross the far side
        let mut bad = verts.clone();
        bad[10] = (ra0, dec0 - 0.6);
        let err = Polygon::new(&bad).expect_err("self-intersecting");
        assert!(err.contains("cross"), "{err}");
    }

    #[test]
    fn arc_distance_cases() {
        let a = from_lonlat(0.0, 0.0);
        let b = from_lonlat(10.0, 0.0);
        let n = normalize(&robust_cross(&a, &b)).unwrap();
        let d = |lon, lat| arc_distance(&from_lonlat(lon, lat), &a, &b, &n).to_degrees();
        assert!((d(5.0, 3.0) - 3.0).abs() < 1e-12);
        assert!((d(5.0, -3.0) - 3.0).abs() < 1e-12);
        assert!((d(-3.0, 0.0) - 3.0).abs() < 1e-12);
        assert!((d(13.0, 0.0) - 3.0).abs() < 1e-12);
        assert!((d(185.0, 0.0) - 175.0).abs() < 1e-9);
        assert!((d(0.0, 90.0) - 90.0).abs() < 1e-12);
    }
}
