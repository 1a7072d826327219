//! Tests of the geometry module: values, UDFs (directly and through SQL), HEALPix coverage and
//! the recognition of spatial predicates.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{cast, col, lit, ColumnarValue, Expr, LogicalPlan, ScalarUDF};
use datafusion::prelude::SessionContext;

use super::udf::{evaluate, Kind};
use super::*;

// ---------------------------------------------------------------------------------------------
// helpers

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

    /// Uniform on the cap of radius `r` degrees around (lon, lat).
    fn in_cap(&mut self, lon: f64, lat: f64, r: f64) -> (f64, f64) {
        let cos_t = 1.0 - self.unit() * (1.0 - r.to_radians().cos());
        let t = cos_t.clamp(-1.0, 1.0).acos().to_degrees();
        self.at(lon, lat, t)
    }

    /// At distance `t` degrees from (lon, lat), in a random direction.
    fn at(&mut self, lon: f64, lat: f64, t: f64) -> (f64, f64) {
        let phi = 2.0 * std::f64::consts::PI * self.unit();
        let (sl, cl) = lon.to_radians().sin_cos();
        let (sb, cb) = lat.to_radians().sin_cos();
        let c = [cb * cl, cb * sl, sb];
        let e = [-sl, cl, 0.0];
        let n = [-sb * cl, -sb * sl, cb];
        let (st, ct) = t.to_radians().sin_cos();
        let (sp, cp) = phi.sin_cos();
        let p: Vec<f64> = (0..3)
            .map(|k| c[k] * ct + st * (e[k] * cp + n[k] * sp))
            .collect();
        let lon = p[1].atan2(p[0]).to_degrees().rem_euclid(360.0);
        let lat = p[2].atan2(p[0].hypot(p[1])).to_degrees();
        (lon, lat)
    }
}

fn udf(name: &str) -> ScalarUDF {
    udfs()
        .into_iter()
        .find(|u| u.name() == name)
        .expect("known UDF")
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    udf(name).call(args)
}

fn s(v: f64) -> ColumnarValue {
    ColumnarValue::Scalar(ScalarValue::Float64(Some(v)))
}

fn text(v: &str) -> ColumnarValue {
    ColumnarValue::Scalar(ScalarValue::Utf8(Some(v.to_string())))
}

/// Evaluates a geometry function on scalars.
fn eval(kind: Kind, args: &[ColumnarValue]) -> datafusion::common::Result<ScalarValue> {
    match evaluate(kind, args, 1)? {
        ColumnarValue::Scalar(v) => Ok(v),
        ColumnarValue::Array(_) => panic!("scalar in, array out"),
    }
}

fn geom(kind: Kind, args: &[ColumnarValue]) -> ColumnarValue {
    ColumnarValue::Scalar(eval(kind, args).expect("valid geometry"))
}

fn values(v: &ScalarValue) -> Vec<f64> {
    match v {
        ScalarValue::List(l) => l.value(0).as_primitive::<Float64Type>().values().to_vec(),
        other => panic!("not a list: {other:?}"),
    }
}

fn int(v: ScalarValue) -> Option<i32> {
    match v {
        ScalarValue::Int32(x) => x,
        other => panic!("not an int: {other:?}"),
    }
}

fn float(v: ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::Float64(x) => x,
        other => panic!("not a double: {other:?}"),
    }
}

fn point(lon: f64, lat: f64) -> ColumnarValue {
    geom(Kind::Point, &[s(lon), s(lat)])
}

fn circle(lon: f64, lat: f64, r: f64) -> ColumnarValue {
    geom(Kind::Circle, &[s(lon), s(lat), s(r)])
}

fn polygon(v: &[(f64, f64)]) -> ColumnarValue {
    let args: Vec<ColumnarValue> = v.iter().flat_map(|&(a, b)| [s(a), s(b)]).collect();
    geom(Kind::Polygon, &args)
}

fn bx(lon: f64, lat: f64, w: f64, h: f64) -> ColumnarValue {
    geom(Kind::Box, &[s(lon), s(lat), s(w), s(h)])
}

fn contains(a: &ColumnarValue, b: &ColumnarValue) -> bool {
    int(eval(Kind::Contains, &[a.clone(), b.clone()]).unwrap()) == Some(1)
}

fn intersects(a: &ColumnarValue, b: &ColumnarValue) -> bool {
    int(eval(Kind::Intersects, &[a.clone(), b.clone()]).unwrap()) == Some(1)
}

fn dist(l1: f64, b1: f64, l2: f64, b2: f64) -> f64 {
    float(eval(Kind::Distance, &[point(l1, b1), point(l2, b2)]).unwrap()).unwrap()
}

fn in_ranges(ranges: &[std::ops::Range<u64>], h: u64) -> bool {
    let i = ranges.partition_point(|r| r.end <= h);
    i < ranges.len() && ranges[i].contains(&h)
}

const SQUARE: [(f64, f64); 4] = [(10.0, 10.0), (20.0, 10.0), (20.0, 20.0), (10.0, 20.0)];

// ---------------------------------------------------------------------------------------------
// distances

#[test]
fn distance_known_values() {
    assert!((dist(0.0, 0.0, 0.0, 90.0) - 90.0).abs() < 1e-12);
    assert!((dist(0.0, 0.0, 90.0, 0.0) - 90.0).abs() < 1e-12);
    // the pole has any longitude
    assert!(dist(10.0, 90.0, 200.0, 90.0).abs() < 1e-12);
    assert!((dist(0.0, 89.0, 180.0, 89.0) - 2.0).abs() < 1e-12);
    assert!((dist(0.0, -89.0, 180.0, -89.0) - 2.0).abs() < 1e-12);
    // RA wrap
    assert!((dist(359.5, 0.0, 0.5, 0.0) - 1.0).abs() < 1e-12);
    assert!((dist(-0.5, 0.0, 360.5, 0.0) - 1.0).abs() < 1e-12);
    // antipodes and near-antipodes
    assert!((dist(0.0, 0.0, 180.0, 0.0) - 180.0).abs() < 1e-12);
    assert!((dist(10.0, 20.0, 190.0, -20.0) - 180.0).abs() < 1e-12);
    let d = dist(0.0, 0.0, 180.0, 1e-9);
    // (180 - 1e-9 is only representable to ~3e-14)
    assert!((180.0 - d - 1e-9).abs() < 1e-13, "{}", 180.0 - d);
    // tiny separations (the inputs themselves are only good to ~1e-15 degrees)
    let lat2 = 20.0 + 1e-10;
    let d = dist(10.0, 20.0, 10.0, lat2);
    assert!((d - (lat2 - 20.0)).abs() < 1e-14, "{d}");
    let lon2 = 10.0 + 1e-10 / 20f64.to_radians().cos();
    let d = dist(10.0, 20.0, lon2, 20.0);
    assert!(
        (d - (lon2 - 10.0) * 20f64.to_radians().cos()).abs() < 1e-14,
        "{d}"
    );
    let d = dist(0.0, 0.0, 1e-12, 0.0);
    assert!((d / 1e-12 - 1.0).abs() < 1e-12, "{d}");
    assert_eq!(dist(123.0, -45.0, 123.0, -45.0), 0.0);
    // a generic value against the spherical law of cosines (well conditioned here)
    let (a, b) = (10f64.to_radians(), 20f64.to_radians());
    let expect = (a.sin() * b.sin() + a.cos() * b.cos() * 10f64.to_radians().cos())
        .acos()
        .to_degrees();
    assert!((dist(10.0, 10.0, 20.0, 20.0) - expect).abs() < 1e-10);
    // four-argument form and the public helper agree
    let d4 = float(eval(Kind::Distance, &[s(10.0), s(10.0), s(20.0), s(20.0)]).unwrap()).unwrap();
    assert_eq!(d4, distance_deg(10.0, 10.0, 20.0, 20.0));
    assert_eq!(d4, dist(10.0, 10.0, 20.0, 20.0));
}

// ---------------------------------------------------------------------------------------------
// containment

#[test]
fn circle_containment() {
    // near the pole
    let c = circle(0.0, 89.0, 2.0);
    assert!(contains(&point(180.0, 89.5), &c));
    assert!(contains(&point(123.0, 90.0), &c));
    assert!(!contains(&point(180.0, 88.9), &c));
    // around the pole itself
    let c = circle(0.0, 90.0, 1.0);
    for lon in [0.0, 90.0, 179.0, 359.9] {
        assert!(contains(&point(lon, 89.01), &c));
        assert!(!contains(&point(lon, 88.99), &c));
    }
    // across RA 0
    let c = circle(359.9, 0.0, 0.5);
    assert!(contains(&point(0.3, 0.0), &c));
    assert!(contains(&point(-0.3, 0.0), &c));
    assert!(!contains(&point(0.5, 0.0), &c));
    // radius above 90°
    let c = circle(0.0, 0.0, 120.0);
    assert!(!contains(&point(180.0, 0.0), &c));
    assert!(!contains(&point(150.0, 0.0), &c));
    assert!(contains(&point(110.0, 0.0), &c));
    assert!(contains(&point(0.0, -90.0), &c));
    assert!(!contains(&point(180.0, 59.0), &c));
    assert!(contains(&point(180.0, 61.0), &c));
    // whole sky
    assert!(contains(&point(180.0, 0.0), &circle(0.0, 0.0, 180.0)));
    // brute force against DISTANCE
    let mut rng = Rng(1);
    for _ in 0..2000 {
        let (clon, clat) = rng.in_cap(0.0, 0.0, 180.0);
        let r = rng.unit() * 179.0;
        let c = circle(clon, clat, r);
        let (plon, plat) = rng.in_cap(clon, clat, (r * 1.2).min(180.0));
        let d = dist(plon, plat, clon, clat);
        if (d - r).abs() < 1e-9 {
            continue;
        }
        assert_eq!(
            contains(&point(plon, plat), &c),
            d <= r,
            "{clon} {clat} {r} / {plon} {plat}"
        );
    }
}

#[test]
fn polygon_containment() {
    let sq = polygon(&SQUARE);
    assert!(contains(&point(15.0, 15.0), &sq));
    assert!(!contains(&point(25.0, 15.0), &sq));
    // the edges are great circles: the bottom edge bulges north to lat ≈ 10.038 at lon 15
    assert!(!contains(&point(15.0, 10.02), &sq));
    assert!(contains(&point(15.0, 10.05), &sq));
    // vertex order does not matter
    let mut rev = SQUARE;
    rev.reverse();
    let sq2 = polygon(&rev);
    assert_eq!(
        values(&scalar(&sq)),
        values(&scalar(&sq2)),
        "normalised to counter-clockwise"
    );
    assert!(contains(&point(15.0, 15.0), &sq2));
    assert!(!contains(&point(25.0, 15.0), &sq2));

    // concave: a square with a notch from the top
    let notch = polygon(&[
        (0.0, 0.0),
        (10.0, 0.0),
        (10.0, 10.0),
        (5.0, 3.0),
        (0.0, 10.0),
    ]);
    assert!(contains(&point(5.0, 1.0), &notch));
    assert!(!contains(&point(5.0, 8.0), &notch));
    assert!(contains(&point(9.0, 8.0), &notch));
    assert!(contains(&point(1.0, 8.0), &notch));
    assert!(!contains(&point(5.0, -1.0), &notch));

    // across RA 0
    let wrap = polygon(&[(350.0, -5.0), (10.0, -5.0), (10.0, 5.0), (350.0, 5.0)]);
    for lon in [0.0, 355.0, 5.0, -5.0] {
        assert!(contains(&point(lon, 0.0), &wrap), "{lon}");
    }
    assert!(!contains(&point(180.0, 0.0), &wrap));
    assert!(!contains(&point(20.0, 0.0), &wrap));
    assert!(!contains(&point(340.0, 0.0), &wrap));

    // around the north pole
    let cap = polygon(&[(0.0, 80.0), (90.0, 80.0), (180.0, 80.0), (270.0, 80.0)]);
    assert!(contains(&point(0.0, 90.0), &cap));
    assert!(contains(&point(10.0, 85.0), &cap));
    assert!(!contains(&point(45.0, 0.0), &cap));
    // great-circle edges: between the vertices the edge reaches lat ≈ 82.9 at lon 45
    assert!(!contains(&point(45.0, 81.0), &cap));
    assert!(contains(&point(45.0, 83.0), &cap));
    // the same around the south pole, given clockwise
    let scap = polygon(&[(0.0, -80.0), (90.0, -80.0), (180.0, -80.0), (270.0, -80.0)]);
    assert!(contains(&point(0.0, -90.0), &scap));
    assert!(!contains(&point(0.0, 90.0), &scap));
    assert!(!contains(&point(0.0, 0.0), &scap));

    // points as arguments, and a coordinate system
    let tri = geom(
        Kind::Polygon,
        &[
            text("ICRS"),
            point(0.0, 0.0),
            point(10.0, 0.0),
            point(0.0, 10.0),
        ],
    );
    assert!(contains(&point(2.0, 2.0), &tri));
    assert!(!contains(&point(8.0, 8.0), &tri));

    // invalid polygons are errors
    assert!(eval(
        Kind::Polygon,
        &[
            s(0.0),
            s(0.0),
            s(10.0),
            s(10.0),
            s(10.0),
            s(0.0),
            s(0.0),
            s(10.0)
        ]
    )
    .is_err());
    assert!(eval(Kind::Polygon, &[s(0.0), s(0.0), s(10.0), s(0.0)]).is_err());
}

fn scalar(v: &ColumnarValue) -> ScalarValue {
    match v {
        ColumnarValue::Scalar(s) => s.clone(),
        ColumnarValue::Array(_) => panic!("array"),
    }
}

#[test]
fn box_semantics() {
    let b = bx(10.0, 20.0, 2.0, 4.0);
    let v = values(&scalar(&b));
    assert_eq!(v.len(), 8);
    assert!(contains(&point(10.0, 20.0), &b));
    // arms: half-width 1° along the east-west great circle, half-height 2° along the meridian
    let east = |d: f64| {
        // the point at distance d along the great circle heading east from the centre
        let (lon, lat) = (10f64.to_radians(), 20f64.to_radians());
        let c = [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()];
        let e = [-lon.sin(), lon.cos(), 0.0];
        let (sd, cd) = d.to_radians().sin_cos();
        let p: Vec<f64> = (0..3).map(|k| c[k] * cd + e[k] * sd).collect();
        point(
            p[1].atan2(p[0]).to_degrees(),
            p[2].atan2(p[0].hypot(p[1])).to_degrees(),
        )
    };
    assert!(contains(&east(0.99), &b));
    assert!(!contains(&east(1.01), &b));
    assert!(contains(&east(-0.99), &b));
    assert!(!contains(&east(-1.01), &b));
    assert!(contains(&point(10.0, 21.99), &b));
    assert!(!contains(&point(10.0, 22.01), &b));
    assert!(contains(&point(10.0, 18.01), &b));
    assert!(!contains(&point(10.0, 17.99), &b));
    // at the pole, "north" of the tangent frame points to lon + 180
    let pb = bx(0.0, 90.0, 10.0, 10.0);
    assert!(contains(&point(123.0, 90.0), &pb));
    assert!(contains(&point(0.0, 86.0), &pb));
    assert!(!contains(&point(0.0, 84.0), &pb));
    // across RA 0
    let wb = geom(
        Kind::Box,
        &[text("ICRS GEOCENTER"), s(0.0), s(0.0), s(2.0), s(2.0)],
    );
    assert!(contains(&point(359.5, 0.5), &wb));
    assert!(contains(&point(0.5, -0.5), &wb));
    assert!(!contains(&point(358.9, 0.0), &wb));
    // errors
    assert!(eval(Kind::Box, &[s(0.0), s(0.0), s(0.0), s(2.0)]).is_err());
    assert!(eval(Kind::Box, &[s(0.0), s(0.0), s(200.0), s(2.0)]).is_err());
}

#[test]
fn shape_relations() {
    // circle / circle
    assert!(contains(&circle(0.0, 0.0, 1.0), &circle(0.0, 0.0, 2.0)));
    assert!(!contains(&circle(0.0, 0.0, 2.0), &circle(0.0, 0.0, 1.0)));
    assert!(contains(&circle(0.0, 0.0, 1.0), &circle(0.9, 0.0, 2.0)));
    assert!(!contains(&circle(0.0, 0.0, 1.0), &circle(1.5, 0.0, 2.0)));
    assert!(!contains(
        &circle(0.0, 0.0, 100.0),
        &circle(180.0, 0.0, 179.0)
    ));
    assert!(contains(
        &circle(10.0, 0.0, 100.0),
        &circle(0.0, 0.0, 150.0)
    ));
    assert!(intersects(&circle(0.0, 0.0, 1.0), &circle(1.9, 0.0, 1.0)));
    assert!(!intersects(&circle(0.0, 0.0, 1.0), &circle(2.1, 0.0, 1.0)));
    assert!(intersects(&circle(359.5, 0.0, 1.0), &circle(0.5, 0.0, 0.5)));
    assert!(intersects(
        &circle(0.0, 89.0, 1.0),
        &circle(180.0, 89.5, 0.6)
    ));

    // circle / polygon
    let sq = polygon(&SQUARE);
    assert!(contains(&circle(15.0, 15.0, 1.0), &sq));
    assert!(!contains(&circle(15.0, 15.0, 6.0), &sq));
    assert!(!contains(&circle(19.5, 15.0, 1.0), &sq));
    assert!(intersects(&circle(19.5, 15.0, 1.0), &sq));
    assert!(intersects(&sq, &circle(21.0, 15.0, 1.5)));
    assert!(!intersects(&sq, &circle(22.0, 15.0, 1.5)));
    assert!(intersects(&circle(15.0, 15.0, 30.0), &sq));
    assert!(contains(&sq, &circle(15.0, 15.0, 10.0)));
    assert!(!contains(&sq, &circle(15.0, 15.0, 5.0)));
    // polygon in a cap larger than a hemisphere: the hole around (0, 0) must miss it
    assert!(contains(&sq, &circle(180.0, 0.0, 179.0)));
    let around0 = polygon(&[(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]);
    assert!(!contains(&around0, &circle(180.0, 0.0, 179.0)));
    // vertices all in the cap but the hole inside the triangle
    let tri = polygon(&[(-5.0, -0.5), (5.0, -0.5), (0.0, 10.0)]);
    assert!(!contains(&tri, &circle(180.0, 0.0, 179.9)));
    // vertices all in the cap but an edge through the hole
    let tri2 = polygon(&[(-5.0, 0.0), (5.0, 0.0), (0.0, 10.0)]);
    assert!(!contains(&tri2, &circle(180.0, 0.05, 179.9)));
    assert!(contains(&tri2, &circle(180.0, 0.5, 179.9)));

    // polygon / polygon
    let small = polygon(&[(12.0, 12.0), (14.0, 12.0), (14.0, 14.0), (12.0, 14.0)]);
    assert!(contains(&small, &sq));
    assert!(!contains(&sq, &small));
    assert!(intersects(&small, &sq));
    let shifted = polygon(&[(18.0, 12.0), (24.0, 12.0), (24.0, 14.0), (18.0, 14.0)]);
    assert!(!contains(&shifted, &sq));
    assert!(intersects(&shifted, &sq));
    let far = polygon(&[(30.0, 12.0), (34.0, 12.0), (34.0, 14.0), (30.0, 14.0)]);
    assert!(!intersects(&far, &sq));
    // a plus sign: edges cross, no vertex of one inside the other
    let h = polygon(&[(0.0, -1.0), (10.0, -1.0), (10.0, 1.0), (0.0, 1.0)]);
    let v = polygon(&[(4.0, -5.0), (6.0, -5.0), (6.0, 5.0), (4.0, 5.0)]);
    assert!(intersects(&h, &v));
    assert!(!contains(&h, &v));
    // concave outer: the inner square sits in the notch
    let notch = polygon(&[
        (0.0, 0.0),
        (10.0, 0.0),
        (10.0, 10.0),
        (5.0, 3.0),
        (0.0, 10.0),
    ]);
    let in_notch = polygon(&[(4.5, 7.0), (5.5, 7.0), (5.5, 8.0), (4.5, 8.0)]);
    let in_body = polygon(&[(4.5, 0.5), (5.5, 0.5), (5.5, 1.5), (4.5, 1.5)]);
    assert!(!intersects(&in_notch, &notch));
    assert!(contains(&in_body, &notch));
    // a thin polygon crossing the notch: vertices outside, edges through it
    let bar = polygon(&[(-1.0, 5.0), (11.0, 5.0), (11.0, 5.5), (-1.0, 5.5)]);
    assert!(intersects(&bar, &notch));
    assert!(!contains(&bar, &notch));

    // points
    assert!(contains(&point(10.0, 20.0), &point(10.0, 20.0)));
    assert!(!contains(&point(10.0, 20.0), &point(10.0, 20.1)));
    assert!(intersects(&point(15.0, 15.0), &sq));
    assert!(intersects(&sq, &point(15.0, 15.0)));
    assert!(!contains(&sq, &point(15.0, 15.0)));
    assert!(!contains(&circle(15.0, 15.0, 1.0), &point(15.0, 15.0)));
}

#[test]
fn constructors_and_accessors() {
    // coordinate systems
    for cs in [
        "",
        "ICRS",
        "icrs",
        "ICRS GEOCENTER",
        "ICRS TOPOCENTER",
        "J2000",
        "FK5 J2000",
    ] {
        assert!(
            eval(Kind::Point, &[text(cs), s(1.0), s(2.0)]).is_ok(),
            "{cs}"
        );
    }
    for cs in ["GALACTIC", "FK4", "ICRS NOWHERE", "ECLIPTIC"] {
        let err = eval(Kind::Point, &[text(cs), s(1.0), s(2.0)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("only ICRS is supported"), "{err}");
    }
    // values and accessors
    let p = point(10.5, -20.25);
    assert_eq!(values(&scalar(&p)), vec![10.5, -20.25]);
    assert_eq!(
        float(eval(Kind::Coord1, std::slice::from_ref(&p)).unwrap()),
        Some(10.5)
    );
    assert_eq!(float(eval(Kind::Coord2, &[p]).unwrap()), Some(-20.25));
    assert!(eval(Kind::Coord1, &[circle(1.0, 2.0, 3.0)]).is_err());
    assert_eq!(values(&scalar(&circle(1.0, 2.0, 3.0))), vec![1.0, 2.0, 3.0]);
    let c2 = geom(Kind::Circle, &[text("ICRS"), point(1.0, 2.0), s(3.0)]);
    assert_eq!(values(&scalar(&c2)), vec![1.0, 2.0, 3.0]);
    let c3 = geom(Kind::Circle, &[point(1.0, 2.0), s(3.0)]);
    assert_eq!(values(&scalar(&c3)), vec![1.0, 2.0, 3.0]);
    // integers are fine
    let pi = eval(
        Kind::Point,
        &[
            ColumnarValue::Scalar(ScalarValue::Int64(Some(10))),
            ColumnarValue::Scalar(ScalarValue::Int32(Some(20))),
        ],
    )
    .unwrap();
    assert_eq!(values(&pi), vec![10.0, 20.0]);
    // NULLs
    let null = ColumnarValue::Scalar(ScalarValue::Float64(None));
    assert!(eval(Kind::Point, &[null.clone(), s(1.0)])
        .unwrap()
        .is_null());
    assert!(eval(Kind::Circle, &[s(1.0), s(1.0), null.clone()])
        .unwrap()
        .is_null());
    let null_geom = ColumnarValue::Scalar(ScalarValue::Null);
    assert!(
        eval(Kind::Contains, &[null_geom.clone(), circle(0.0, 0.0, 1.0)])
            .unwrap()
            .is_null()
    );
    assert!(eval(Kind::Distance, &[point(0.0, 0.0), null_geom])
        .unwrap()
        .is_null());
    assert!(eval(Kind::Point, &[s(f64::NAN), s(1.0)]).unwrap().is_null());
    // errors
    assert!(eval(Kind::Point, &[s(0.0), s(91.0)]).is_err());
    assert!(eval(Kind::Circle, &[s(0.0), s(0.0), s(-1.0)]).is_err());
    assert!(eval(Kind::Circle, &[circle(0.0, 0.0, 1.0), s(1.0)]).is_err());
    assert!(eval(Kind::Distance, &[circle(0.0, 0.0, 1.0), point(0.0, 0.0)]).is_err());
    assert!(eval(Kind::Point, &[s(0.0)]).is_err());
}

#[test]
fn area_centroid_coordsys() {
    let area =
        |g: &ColumnarValue| float(eval(Kind::Area, std::slice::from_ref(g)).unwrap()).unwrap();
    let cen = |g: &ColumnarValue| values(&eval(Kind::Centroid, std::slice::from_ref(g)).unwrap());
    let deg2 = (180.0 / std::f64::consts::PI).powi(2);
    let expect = 2.0 * std::f64::consts::PI * (1.0 - 1f64.to_radians().cos()) * deg2;
    assert!((area(&circle(10.0, 20.0, 1.0)) - expect).abs() < 1e-9);
    let tiny = 1.0 / 3600.0;
    let expect = std::f64::consts::PI * tiny * tiny;
    assert!((area(&circle(10.0, 20.0, tiny)) / expect - 1.0).abs() < 1e-9);
    let octant = polygon(&[(0.0, 0.0), (90.0, 0.0), (0.0, 90.0)]);
    assert!((area(&octant) - 4.0 * std::f64::consts::PI / 8.0 * deg2).abs() < 1e-8);
    assert_eq!(area(&point(1.0, 2.0)), 0.0);
    let c = cen(&octant);
    assert!(
        (c[0] - 45.0).abs() < 1e-9 && (c[1] - (1.0 / 2f64.sqrt()).atan().to_degrees()).abs() < 1e-9,
        "{c:?}"
    );
    let c = cen(&polygon(&[
        (350.0, -5.0),
        (10.0, -5.0),
        (10.0, 5.0),
        (350.0, 5.0),
    ]));
    assert!(
        (c[0].min(360.0 - c[0])).abs() < 1e-9 && c[1].abs() < 1e-9,
        "{c:?}"
    );
    assert_eq!(cen(&circle(10.0, 20.0, 1.0)), vec![10.0, 20.0]);
    let cs = eval(Kind::Coordsys, &[circle(10.0, 20.0, 1.0)]).unwrap();
    assert_eq!(cs, ScalarValue::Utf8(Some("ICRS".into())));
}

#[test]
fn udfs_on_arrays() {
    let ra: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(10.0),
        None,
        Some(10.5),
        Some(200.0),
    ]));
    let dec: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(20.0),
        Some(20.0),
        Some(20.0),
        Some(-30.0),
    ]));
    let p = evaluate(
        Kind::Point,
        &[
            text("ICRS"),
            ColumnarValue::Array(ra),
            ColumnarValue::Array(dec),
        ],
        4,
    )
    .unwrap();
    let c = evaluate(Kind::Contains, &[p.clone(), circle(10.0, 20.0, 1.0)], 4).unwrap();
    let ColumnarValue::Array(c) = c else { panic!() };
    let c = c.as_primitive::<Int32Type>();
    assert_eq!(
        c.iter().collect::<Vec<_>>(),
        vec![Some(1), None, Some(1), Some(0)]
    );
    let d = evaluate(Kind::Distance, &[point(10.0, 20.0), p], 4).unwrap();
    let ColumnarValue::Array(d) = d else { panic!() };
    let d = d.as_primitive::<Float64Type>();
    assert_eq!(d.value(0), 0.0);
    assert!(d.is_null(1));
    assert!((d.value(2) - 0.5 * 20f64.to_radians().cos()).abs() < 1e-4);

    // geometry columns of other list types (e.g. read from Parquet), sliced
    use datafusion::arrow::array::{FixedSizeListArray, LargeListArray};
    let pts = vec![
        Some(vec![Some(0.0), Some(0.0)]),
        Some(vec![Some(10.0), Some(20.0)]),
        None,
        Some(vec![Some(10.2), Some(20.1)]),
    ];
    let fixed: ArrayRef = Arc::new(
        FixedSizeListArray::from_iter_primitive::<Float64Type, _, _>(pts.clone(), 2).slice(1, 3),
    );
    let large: ArrayRef =
        Arc::new(LargeListArray::from_iter_primitive::<Float64Type, _, _>(pts).slice(1, 3));
    for arr in [fixed, large] {
        let c = evaluate(
            Kind::Contains,
            &[ColumnarValue::Array(arr), circle(10.0, 20.0, 1.0)],
            3,
        )
        .unwrap();
        let ColumnarValue::Array(c) = c else { panic!() };
        let c: Vec<Option<i32>> = c.as_primitive::<Int32Type>().iter().collect();
        assert_eq!(c, vec![Some(1), None, Some(1)]);
    }
}

// ---------------------------------------------------------------------------------------------
// regions and HEALPix

#[test]
fn healpix29_matches_cdshealpix() {
    let h = healpix29(10.0, 20.0);
    assert_eq!(
        h,
        cdshealpix::nested::hash(29, 10f64.to_radians(), 20f64.to_radians())
    );
    assert_eq!(healpix29(370.0, 20.0), h);
    assert_eq!(healpix29(-350.0, 20.0), h);
    assert!(healpix29(0.0, 90.0) < 12 << 58);
    assert_eq!(healpix29(f64::NAN, 0.0), 0);
}

#[test]
fn region_contains_point_matches_udfs() {
    let mut rng = Rng(3);
    let regions = [
        Region::Circle {
            lon: 10.0,
            lat: 20.0,
            radius: 1.0,
        },
        Region::Polygon {
            vertices: SQUARE.to_vec(),
        },
    ];
    let shapes = [circle(10.0, 20.0, 1.0), polygon(&SQUARE)];
    for (r, shape) in regions.iter().zip(&shapes) {
        let prep = r.prepare();
        for _ in 0..2000 {
            let (lon, lat) = rng.in_cap(15.0, 15.0, 12.0);
            let expect = contains(&point(lon, lat), shape);
            assert_eq!(r.contains_point(lon, lat), expect);
            assert_eq!(prep.contains_point(lon, lat), expect);
        }
    }
    assert!(!Region::Circle {
        lon: 0.0,
        lat: 0.0,
        radius: -1.0
    }
    .contains_point(0.0, 0.0));
    // an invalid polygon contains nothing
    let bow = Region::Polygon {
        vertices: vec![(0.0, 0.0), (10.0, 10.0), (10.0, 0.0), (0.0, 10.0)],
    };
    assert!(!bow.contains_point(5.0, 2.0));
    assert_eq!(bow.healpix_ranges(), None);
}

/// Checks that the coverage of `region` is sorted, disjoint, small, and contains the cells of
/// `n` random points of the region drawn from the cap (lon, lat, r) around it.
fn check_coverage(region: &Region, lon: f64, lat: f64, r: f64, seed: u64) {
    let ranges = region.healpix_ranges().expect("coverage");
    assert!(!ranges.is_empty());
    assert!(ranges.len() <= 48, "{} ranges for {region:?}", ranges.len());
    for w in ranges.windows(2) {
        assert!(w[0].end < w[1].start, "sorted, disjoint and merged: {w:?}");
    }
    assert!(ranges.iter().all(|r| r.start < r.end && r.end <= 12 << 58));
    let prep = region.prepare();
    let mut rng = Rng(seed);
    let mut inside = 0;
    for k in 0..20_000 {
        // a third of the points close to the edge of the sampling cap
        let rr = if k % 3 == 0 { r } else { r * rng.unit().sqrt() };
        let (plon, plat) = rng.in_cap(lon, lat, rr.max(1e-12));
        if prep.contains_point(plon, plat) {
            inside += 1;
            let h = healpix29(plon, plat);
            assert!(
                in_ranges(&ranges, h),
                "{region:?}: ({plon}, {plat}) in region, cell {h} not covered"
            );
        }
    }
    assert!(inside > 100, "{region:?}: only {inside} points inside");
    // sanity: the coverage is not absurdly large (fraction of the sphere)
    let covered: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    let frac = covered as f64 / (12u64 << 58) as f64;
    let cap_frac = (1.0 - r.to_radians().cos()) / 2.0;
    assert!(
        frac < 64.0 * cap_frac + 1e-9,
        "{region:?}: covers {frac} for a cap of {cap_frac}"
    );
}

#[test]
fn circle_coverage_is_a_superset() {
    let cases = [
        (10.0, 20.0, 1.0),
        (0.0, 89.9, 0.5),
        (45.0, 90.0, 3.0),
        (200.0, -89.5, 2.0),
        (359.99, 0.0, 0.3),
        (0.0, 0.0, 1.0 / 3600.0),
        (123.4, -45.6, 0.1 / 3600.0),
        (300.0, 30.0, 30.0),
        (0.0, 0.0, 59.0),
        (42.0, 41.8, 5.0),
    ];
    for (i, (lon, lat, r)) in cases.into_iter().enumerate() {
        let region = Region::Circle {
            lon,
            lat,
            radius: r,
        };
        check_coverage(&region, lon, lat, r, 100 + i as u64);
        // points on the edge that the region contains are covered too
        let ranges = region.healpix_ranges().unwrap();
        let mut rng = Rng(7 + i as u64);
        let mut on_edge = 0;
        for _ in 0..2000 {
            let (plon, plat) = rng.at(lon, lat, r);
            if region.contains_point(plon, plat) {
                on_edge += 1;
                assert!(
                    in_ranges(&ranges, healpix29(plon, plat)),
                    "{region:?}: ({plon}, {plat})"
                );
            }
        }
        assert!(on_edge > 0, "{region:?}");
    }
    assert_eq!(
        Region::Circle {
            lon: 0.0,
            lat: 0.0,
            radius: 61.0
        }
        .healpix_ranges(),
        None
    );
    assert_eq!(
        Region::Circle {
            lon: 0.0,
            lat: 0.0,
            radius: -1.0
        }
        .healpix_ranges(),
        Some(vec![])
    );
}

#[test]
fn polygon_coverage_is_a_superset() {
    let boxed = |lon: f64, lat: f64, w: f64, h: f64| Region::Polygon {
        vertices: super::sphere::box_vertices(lon, lat, w, h).unwrap(),
    };
    let cases: Vec<(Region, (f64, f64, f64))> = vec![
        (
            Region::Polygon {
                vertices: SQUARE.to_vec(),
            },
            (15.0, 15.0, 8.0),
        ),
        (
            Region::Polygon {
                vertices: vec![
                    (0.0, 0.0),
                    (10.0, 0.0),
                    (10.0, 10.0),
                    (5.0, 3.0),
                    (0.0, 10.0),
                ],
            },
            (5.0, 5.0, 8.0),
        ),
        (
            Region::Polygon {
                vertices: vec![(350.0, -5.0), (10.0, -5.0), (10.0, 5.0), (350.0, 5.0)],
            },
            (0.0, 0.0, 8.0),
        ),
        (
            Region::Polygon {
                vertices: vec![(0.0, 80.0), (90.0, 80.0), (180.0, 80.0), (270.0, 80.0)],
            },
            (0.0, 90.0, 11.0),
        ),
        (
            Region::Polygon {
                vertices: vec![(0.0, -85.0), (120.0, -85.0), (240.0, -85.0)],
            },
            (0.0, -90.0, 6.0),
        ),
        (boxed(10.0, 20.0, 2.0, 4.0), (10.0, 20.0, 2.5)),
        (boxed(0.0, 90.0, 1.0, 1.0), (0.0, 90.0, 1.0)),
        (
            boxed(180.0, -30.0, 1.0 / 3600.0, 2.0 / 3600.0),
            (180.0, -30.0, 1.5 / 3600.0),
        ),
        // a long thin stripe
        (boxed(100.0, 10.0, 20.0, 0.1), (100.0, 10.0, 10.1)),
    ];
    for (i, (region, (lon, lat, r))) in cases.iter().enumerate() {
        check_coverage(region, *lon, *lat, *r, 200 + i as u64);
    }
    let huge = Region::Polygon {
        vertices: vec![(0.0, 0.0), (120.0, 0.0), (240.0, 0.0)],
    };
    assert_eq!(huge.healpix_ranges(), None);
}

// ---------------------------------------------------------------------------------------------
// spatial predicates

fn ra_dec_point() -> Expr {
    call("point", vec![lit("ICRS"), col("ra"), col("dec")])
}

fn circle_expr() -> Expr {
    call("circle", vec![lit("ICRS"), lit(10.0), lit(20.0), lit(1.0)])
}

fn folded(e: Expr) -> Expr {
    // evaluate a constant geometry call into a literal, as the simplifier does
    let Expr::ScalarFunction(sf) = &e else {
        panic!()
    };
    let args: Vec<ColumnarValue> = sf
        .args
        .iter()
        .map(|a| match a {
            Expr::Literal(v, _) => ColumnarValue::Scalar(v.clone()),
            _ => panic!("not a literal"),
        })
        .collect();
    let kind = super::udf::Kind::ALL
        .into_iter()
        .find(|k| k.name() == sf.func.name())
        .unwrap();
    Expr::Literal(eval(kind, &args).unwrap(), None)
}

fn expect_circle(e: &Expr, lon: f64, lat: f64, radius: f64) {
    let f = spatial_filter(e).unwrap_or_else(|| panic!("not recognised: {e}"));
    assert_eq!(f.lon, Column::from_name("ra"));
    assert_eq!(f.lat, Column::from_name("dec"));
    assert_eq!(f.region, Region::Circle { lon, lat, radius }, "{e}");
}

#[test]
fn recognises_contains_patterns() {
    let c = call("contains", vec![ra_dec_point(), circle_expr()]);
    expect_circle(&c.clone().eq(lit(1)), 10.0, 20.0, 1.0);
    expect_circle(&lit(1).eq(c.clone()), 10.0, 20.0, 1.0);
    expect_circle(&c.clone().eq(lit(1i64)), 10.0, 20.0, 1.0);
    expect_circle(
        &cast(c.clone(), DataType::Int64).eq(lit(1i64)),
        10.0,
        20.0,
        1.0,
    );
    expect_circle(
        &lit(1i64).eq(cast(c.clone(), DataType::Int64)),
        10.0,
        20.0,
        1.0,
    );
    expect_circle(
        &c.clone().eq(cast(lit(1i64), DataType::Int32)),
        10.0,
        20.0,
        1.0,
    );
    expect_circle(&c.clone().not_eq(lit(0)), 10.0, 20.0, 1.0);
    expect_circle(&c.clone().gt(lit(0)), 10.0, 20.0, 1.0);
    expect_circle(&lit(0).lt(c.clone()), 10.0, 20.0, 1.0);
    // constant folded into a list literal, with or without coordinate system
    let lit_circle = folded(circle_expr());
    let c2 = call("contains", vec![ra_dec_point(), lit_circle.clone()]);
    expect_circle(&c2.eq(lit(1)), 10.0, 20.0, 1.0);
    let bare = call("point", vec![col("ra"), col("dec")]);
    let c3 = call("contains", vec![bare.clone(), lit_circle.clone()]);
    expect_circle(&c3.eq(lit(1)), 10.0, 20.0, 1.0);
    // a list literal with nullable items (as from another source)
    let other = Expr::Literal(
        ScalarValue::List(Arc::new(
            ListArray::from_iter_primitive::<Float64Type, _, _>(vec![Some(vec![
                Some(10.0),
                Some(20.0),
                Some(1.0),
            ])]),
        )),
        None,
    );
    expect_circle(
        &call("contains", vec![bare.clone(), other]).eq(lit(1)),
        10.0,
        20.0,
        1.0,
    );
    // columns cast to double, integer literals cast to double
    let cast_point = call(
        "point",
        vec![
            cast(col("ra"), DataType::Float64),
            cast(col("dec"), DataType::Float64),
        ],
    );
    let int_circle = call(
        "circle",
        vec![
            cast(lit(10i64), DataType::Float64),
            lit(20i64),
            cast(lit(1i32), DataType::Float64),
        ],
    );
    expect_circle(
        &call("contains", vec![cast_point, int_circle]).eq(lit(1)),
        10.0,
        20.0,
        1.0,
    );
    // circle from a point
    let cp = call(
        "circle",
        vec![call("point", vec![lit(10.0), lit(20.0)]), lit(1.0)],
    );
    expect_circle(
        &call("contains", vec![bare.clone(), cp]).eq(lit(1)),
        10.0,
        20.0,
        1.0,
    );
    // polygon and box
    let poly = call(
        "polygon",
        vec![
            lit("ICRS"),
            lit(10.0),
            lit(10.0),
            lit(20.0),
            lit(10.0),
            lit(20.0),
            lit(20.0),
            lit(10.0),
            lit(20.0),
        ],
    );
    let f = spatial_filter(&call("contains", vec![bare.clone(), poly.clone()]).eq(lit(1))).unwrap();
    assert_eq!(
        f.region,
        Region::Polygon {
            vertices: SQUARE.to_vec()
        }
    );
    let f = spatial_filter(&call("contains", vec![bare.clone(), folded(poly)]).eq(lit(1))).unwrap();
    assert_eq!(
        f.region,
        Region::Polygon {
            vertices: SQUARE.to_vec()
        }
    );
    let b = call("box", vec![lit(10.0), lit(20.0), lit(2.0), lit(4.0)]);
    let f = spatial_filter(&call("contains", vec![bare.clone(), b]).eq(lit(1))).unwrap();
    let Region::Polygon { vertices } = &f.region else {
        panic!()
    };
    assert_eq!(
        vertices,
        &super::sphere::box_vertices(10.0, 20.0, 2.0, 4.0).unwrap()
    );
    // negative constants
    let neg = call(
        "circle",
        vec![lit(10.0), Expr::Negative(Box::new(lit(20.0))), lit(1.0)],
    );
    expect_circle(
        &call("contains", vec![bare.clone(), neg]).eq(lit(1)),
        10.0,
        -20.0,
        1.0,
    );
}

#[test]
fn recognises_intersects_and_distance_patterns() {
    let bare = call("point", vec![col("ra"), col("dec")]);
    expect_circle(
        &call("intersects", vec![ra_dec_point(), circle_expr()]).eq(lit(1)),
        10.0,
        20.0,
        1.0,
    );
    expect_circle(
        &call("intersects", vec![circle_expr(), ra_dec_point()]).eq(lit(1)),
        10.0,
        20.0,
        1.0,
    );
    expect_circle(
        &lit(1).eq(call(
            "intersects",
            vec![folded(circle_expr()), bare.clone()],
        )),
        10.0,
        20.0,
        1.0,
    );

    let centre = call("point", vec![lit("ICRS"), lit(10.0), lit(20.0)]);
    let d = call("distance", vec![ra_dec_point(), centre.clone()]);
    expect_circle(&d.clone().lt(lit(0.5)), 10.0, 20.0, 0.5);
    expect_circle(&d.clone().lt_eq(lit(0.5)), 10.0, 20.0, 0.5);
    expect_circle(&lit(0.5).gt(d.clone()), 10.0, 20.0, 0.5);
    expect_circle(&lit(0.5).gt_eq(d.clone()), 10.0, 20.0, 0.5);
    expect_circle(
        &d.clone().lt(cast(lit(1i64), DataType::Float64)),
        10.0,
        20.0,
        1.0,
    );
    let d_rev = call("distance", vec![folded(centre.clone()), bare.clone()]);
    expect_circle(&d_rev.lt(lit(0.5)), 10.0, 20.0, 0.5);
    let d4 = call(
        "distance",
        vec![col("ra"), col("dec"), lit(10.0), lit(20.0)],
    );
    expect_circle(&d4.clone().lt(lit(0.5)), 10.0, 20.0, 0.5);
    let d4r = call(
        "distance",
        vec![
            lit(10i64),
            lit(20i64),
            cast(col("ra"), DataType::Float64),
            col("dec"),
        ],
    );
    expect_circle(&d4r.lt_eq(lit(0.5)), 10.0, 20.0, 0.5);

    // conjunctions
    let both = col("mag").lt(lit(20)).and(d.clone().lt(lit(0.5)));
    expect_circle(&both, 10.0, 20.0, 0.5);
    let two = d
        .clone()
        .lt(lit(0.5))
        .and(col("mag").lt(lit(20)))
        .and(call("contains", vec![bare.clone(), circle_expr()]).eq(lit(1)));
    assert_eq!(spatial_filters(&two).len(), 2);
}

#[test]
fn rejects_other_predicates() {
    let bare = call("point", vec![col("ra"), col("dec")]);
    let c = call("contains", vec![bare.clone(), circle_expr()]);
    let d = call(
        "distance",
        vec![bare.clone(), call("point", vec![lit(10.0), lit(20.0)])],
    );
    let rejected = [
        c.clone().eq(lit(0)),
        c.clone().lt(lit(1)),
        c.clone().not_eq(lit(1)),
        c.clone(),
        d.clone().gt(lit(1.0)),
        lit(1.0).lt(d.clone()),
        d.clone().not_eq(lit(1.0)),
        cast(d.clone(), DataType::Float32).lt(lit(1.0f32)),
        cast(d.clone(), DataType::Int64).lt(lit(1i64)),
        d.clone().lt(col("r")),
        // not constant
        call(
            "contains",
            vec![
                bare.clone(),
                call("circle", vec![col("x"), lit(20.0), lit(1.0)]),
            ],
        )
        .eq(lit(1)),
        // not columns
        call(
            "contains",
            vec![
                call("point", vec![col("ra") + lit(1.0), col("dec")]),
                circle_expr(),
            ],
        )
        .eq(lit(1)),
        call(
            "contains",
            vec![
                call(
                    "point",
                    vec![cast(col("ra"), DataType::Float32), col("dec")],
                ),
                circle_expr(),
            ],
        )
        .eq(lit(1)),
        // CONTAINS(shape, point) is not a position-in-region predicate
        call("contains", vec![circle_expr(), bare.clone()]).eq(lit(1)),
        // unsupported frame
        call(
            "contains",
            vec![
                call("point", vec![lit("GALACTIC"), col("ra"), col("dec")]),
                circle_expr(),
            ],
        )
        .eq(lit(1)),
        // disjunction
        c.clone().eq(lit(1)).or(col("mag").lt(lit(20))),
        // NOT
        Expr::Not(Box::new(c.clone().eq(lit(1)))),
    ];
    for e in rejected {
        assert!(spatial_filter(&e).is_none(), "wrongly recognised: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// through DataFusion

type Row = (i64, Option<f64>, Option<f64>);

fn table(n: usize, seed: u64) -> (Vec<Row>, MemTable) {
    let mut rng = Rng(seed);
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let (lon, lat) = match i % 4 {
            0 => rng.in_cap(10.0, 20.0, 6.0),
            1 => rng.in_cap(0.0, 0.0, 3.0),
            2 => rng.in_cap(0.0, 89.0, 3.0),
            _ => rng.in_cap(0.0, 0.0, 180.0),
        };
        rows.push((i as i64, Some(lon), Some(lat)));
    }
    rows.push((n as i64, None, Some(20.0)));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, true),
        Field::new("dec", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    (rows, MemTable::try_new(schema, vec![vec![batch]]).unwrap())
}

fn context(t: MemTable) -> SessionContext {
    let ctx = SessionContext::new();
    for u in udfs() {
        ctx.register_udf(u);
    }
    ctx.register_table("t", Arc::new(t)).unwrap();
    ctx
}

async fn ids(ctx: &SessionContext, sql: &str) -> Vec<i64> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    out.sort_unstable();
    out
}

/// Predicates of the Filter nodes and TableScan filters of the optimised plan.
fn plan_filters(plan: &LogicalPlan) -> Vec<Expr> {
    let mut out = Vec::new();
    plan.apply(|node| {
        match node {
            LogicalPlan::Filter(f) => out.push(f.predicate.clone()),
            LogicalPlan::TableScan(s) => out.extend(s.filters.iter().cloned()),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap();
    out
}

#[tokio::test]
async fn spatial_filter_survives_datafusion_optimisation() {
    let (_, t) = table(10, 1);
    let ctx = context(t);
    let cases = [
        (
            "SELECT * FROM t WHERE contains(point('ICRS', ra, dec), circle('ICRS', 10, 20, 1)) = 1",
            Region::Circle { lon: 10.0, lat: 20.0, radius: 1.0 },
        ),
        (
            "SELECT id FROM t WHERE 1 = contains(point(ra, dec), circle(10.0, 20.0, 0.5)) AND id > 3",
            Region::Circle { lon: 10.0, lat: 20.0, radius: 0.5 },
        ),
        (
            "SELECT id FROM t WHERE intersects(circle('ICRS', 10, 20, 1.0/60), point('ICRS', ra, dec)) = 1",
            Region::Circle { lon: 10.0, lat: 20.0, radius: 1.0 / 60.0 },
        ),
        (
            "SELECT id FROM t WHERE distance(point('ICRS', ra, dec), point('ICRS', 10, 20)) < 2",
            Region::Circle { lon: 10.0, lat: 20.0, radius: 2.0 },
        ),
        (
            "SELECT id FROM t WHERE 0.5 >= distance(ra, dec, 10, -20)",
            Region::Circle { lon: 10.0, lat: -20.0, radius: 0.5 },
        ),
        (
            "SELECT id FROM t WHERE contains(point('ICRS', ra, dec), polygon('ICRS', 10, 10, 20, 10, 20, 20, 10, 20)) = 1",
            Region::Polygon { vertices: SQUARE.to_vec() },
        ),
        (
            "SELECT id FROM t WHERE contains(point(ra, dec), polygon(point(10, 20), point(10, 10), point(20, 10), point(20, 20))) = 1",
            Region::Polygon { vertices: vec![(10.0, 20.0), (20.0, 20.0), (20.0, 10.0), (10.0, 10.0)] },
        ),
    ];
    for (sql, region) in cases {
        let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        let filters = plan_filters(&plan);
        let found: Vec<SpatialFilter> = filters.iter().flat_map(spatial_filters).collect();
        assert_eq!(found.len(), 1, "{sql}\n{plan}");
        let f = &found[0];
        assert_eq!(f.lon.name, "ra");
        assert_eq!(f.lat.name, "dec");
        match (&f.region, &region) {
            (Region::Polygon { vertices: a }, Region::Polygon { vertices: b }) => {
                // same polygon, counter-clockwise, possibly starting elsewhere
                assert_eq!(a.len(), b.len());
                let ccw = Region::Polygon {
                    vertices: b.clone(),
                }
                .prepare();
                assert!(a.iter().all(|v| b.contains(v)), "{sql}: {a:?}");
                assert!(ccw.contains_point(15.0, 15.0));
            }
            _ => assert_eq!(f.region, region, "{sql}"),
        }
    }
    // BOX
    let plan = ctx
        .sql("SELECT id FROM t WHERE contains(point('ICRS', ra, dec), box('ICRS', 10, 20, 2, 4)) = 1")
        .await
        .unwrap()
        .into_optimized_plan()
        .unwrap();
    let found: Vec<SpatialFilter> = plan_filters(&plan)
        .iter()
        .flat_map(spatial_filters)
        .collect();
    assert_eq!(found.len(), 1, "{plan}");
    assert!(matches!(&found[0].region, Region::Polygon { vertices } if vertices.len() == 4));
}

#[tokio::test]
async fn sql_results_match_brute_force() {
    let (rows, t) = table(4000, 42);
    let ctx = context(t);
    let valid: Vec<(i64, f64, f64)> = rows
        .iter()
        .filter_map(|&(i, a, b)| Some((i, a?, b?)))
        .collect();
    let brute = |f: &dyn Fn(f64, f64) -> bool| -> Vec<i64> {
        valid
            .iter()
            .filter(|(_, a, b)| f(*a, *b))
            .map(|r| r.0)
            .collect()
    };

    let got = ids(
        &ctx,
        "SELECT id FROM t WHERE contains(point('ICRS', ra, dec), circle('ICRS', 10, 20, 3)) = 1",
    )
    .await;
    let want = brute(&|a, b| distance_deg(a, b, 10.0, 20.0) <= 3.0);
    assert!(want.len() > 100);
    assert_eq!(got, want);

    let got = ids(
        &ctx,
        "SELECT id FROM t WHERE distance(point(ra, dec), point(0, 90)) < 2.5",
    )
    .await;
    let want = brute(&|_, b| 90.0 - b < 2.5);
    assert!(want.len() > 100);
    assert_eq!(got, want);

    let got = ids(
        &ctx,
        "SELECT id FROM t WHERE contains(point(ra, dec), circle(359.5, 0, 2)) = 1",
    )
    .await;
    let want = brute(&|a, b| distance_deg(a, b, 359.5, 0.0) <= 2.0);
    assert!(want.len() > 100);
    assert_eq!(got, want);

    let got = ids(
        &ctx,
        "SELECT id FROM t WHERE contains(point(ra, dec), circle(10, 20, 120)) = 1",
    )
    .await;
    let want = brute(&|a, b| distance_deg(a, b, 10.0, 20.0) <= 120.0);
    assert_eq!(got, want);

    let square = Region::Polygon {
        vertices: SQUARE.to_vec(),
    }
    .prepare();
    let got = ids(&ctx, "SELECT id FROM t WHERE contains(point(ra, dec), polygon(10, 10, 20, 10, 20, 20, 10, 20)) = 1").await;
    let want = brute(&|a, b| square.contains_point(a, b));
    assert!(want.len() > 50);
    assert_eq!(got, want);

    let bx = Region::Polygon {
        vertices: super::sphere::box_vertices(0.0, 0.0, 3.0, 2.0).unwrap(),
    }
    .prepare();
    let got = ids(
        &ctx,
        "SELECT id FROM t WHERE intersects(box(0, 0, 3, 2), point(ra, dec)) = 1",
    )
    .await;
    let want = brute(&|a, b| bx.contains_point(a, b));
    assert!(want.len() > 50);
    assert_eq!(got, want);

    let got = ids(
        &ctx,
        "SELECT id FROM t WHERE intersects(circle(ra, dec, 0.5), circle(10, 20, 1)) = 1",
    )
    .await;
    let want = brute(&|a, b| distance_deg(a, b, 10.0, 20.0) <= 1.5);
    assert_eq!(got, want);

    // distance values, coord1/coord2 and NULLs
    let batches = ctx
        .sql("SELECT id, distance(point(ra, dec), point(10, 20)), coord1(point(ra, dec)), coord2(point(ra, dec)), \
              contains(point(ra, dec), circle(10, 20, 1)) FROM t ORDER BY id")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut k = 0;
    for b in &batches {
        let d = b.column(1).as_primitive::<Float64Type>();
        let c1 = b.column(2).as_primitive::<Float64Type>();
        let c2 = b.column(3).as_primitive::<Float64Type>();
        let inside = b.column(4).as_any().downcast_ref::<Int32Array>().unwrap();
        for i in 0..b.num_rows() {
            match rows[k] {
                (_, Some(a), Some(bb)) => {
                    assert_eq!(d.value(i), distance_deg(a, bb, 10.0, 20.0));
                    assert_eq!((c1.value(i), c2.value(i)), (a, bb));
                    assert_eq!(
                        inside.value(i),
                        i32::from(distance_deg(a, bb, 10.0, 20.0) <= 1.0)
                    );
                }
                _ => {
                    assert!(d.is_null(i) && c1.is_null(i) && inside.is_null(i));
                }
            }
            k += 1;
        }
    }
    assert_eq!(k, rows.len());
}

#[tokio::test]
async fn sql_xtypes_and_errors() {
    let (_, t) = table(10, 5);
    let ctx = context(t);
    let df = ctx
        .sql(
            "SELECT point('ICRS', ra, dec) AS p, circle(ra, dec, 1) AS c, box(ra, 0, 1, 1) AS b, \
              polygon(1, 2, 3, 4, 5, 7) AS g, distance(point(ra, dec), point(1, 2)) AS d FROM t",
        )
        .await
        .unwrap();
    let schema = df.schema().clone();
    let xtype = |i: usize| schema.field(i).metadata().get("xtype").cloned();
    assert_eq!(xtype(0).as_deref(), Some("point"));
    assert_eq!(xtype(1).as_deref(), Some("circle"));
    assert_eq!(xtype(2).as_deref(), Some("polygon"));
    assert_eq!(xtype(3).as_deref(), Some("polygon"));
    assert_eq!(xtype(4), None);
    assert_eq!(schema.field(0).data_type(), &geometry_type());
    let batches = df.collect().await.unwrap();
    assert_eq!(
        batches[0]
            .schema()
            .field(0)
            .metadata()
            .get("xtype")
            .map(String::as_str),
        Some("point")
    );

    let err = match ctx.sql("SELECT point('GALACTIC', ra, dec) FROM t").await {
        Ok(df) => df.collect().await.unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("only ICRS is supported"), "{err}");
    let err = match ctx.sql("SELECT point(ra, 95) FROM t").await {
        Ok(df) => df.collect().await.unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("latitude"), "{err}");
    let err = ctx
        .sql("SELECT circle(ra) FROM t")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("CIRCLE expects"), "{err}");
}

#[test]
fn text_regions_are_geometries() {
    // ObsCore's s_region is STC-S text: the predicates and accessors read it as the shape.
    let square = "Polygon ICRS 10 -1 12 -1 12 1 10 1";
    assert!(
        int(eval(Kind::Intersects, &[text(square), circle(12.5, 0.0, 0.6)]).unwrap()) == Some(1)
    );
    assert!(
        int(eval(Kind::Intersects, &[text(square), circle(13.0, 0.0, 0.6)]).unwrap()) == Some(0)
    );
    assert_eq!(
        int(eval(Kind::Contains, &[point(11.0, 0.5), text(square)]).unwrap()),
        Some(1)
    );
    assert_eq!(
        int(eval(
            Kind::Contains,
            &[text("Circle ICRS 11 0 0.1"), text(square)]
        )
        .unwrap()),
        Some(1)
    );
    // DALI numbers, a Position, and a Box with its frame, reference position and flavour.
    assert_eq!(
        int(eval(
            Kind::Contains,
            &[text("11 0.5"), text("10 -1 12 -1 12 1 10 1")]
        )
        .unwrap()),
        Some(1)
    );
    let area =
        float(eval(Kind::Area, &[text("Box ICRS GEOCENTER SPHERICAL2 0 0 2 2")]).unwrap()).unwrap();
    assert!((area - 4.0).abs() < 0.01, "{area}");
    assert!(
        (float(eval(Kind::Coord1, &[text("Position ICRS 33.5 -2")]).unwrap()).unwrap() - 33.5)
            .abs()
            < 1e-12
    );
    // Empty text is NULL; nonsense is an error, not a panic.
    assert_eq!(
        int(eval(Kind::Intersects, &[text(""), circle(0.0, 0.0, 1.0)]).unwrap()),
        None
    );
    for bad in [
        "Union ICRS (Circle 1 2 3)",
        "Polygon GALACTIC 1 2 3 4 5 6",
        "Circle 1 2",
        "x y z",
    ] {
        assert!(eval(Kind::Area, &[text(bad)]).is_err(), "{bad}");
    }
}
