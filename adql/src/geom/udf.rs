//! The ADQL geometry functions as DataFusion scalar UDFs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float64Array, Float64Builder, Int32Builder,
    LargeListArray, ListArray, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use super::sphere::{self, Shape};

/// Which geometry function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Point,
    Circle,
    Box,
    Polygon,
    Contains,
    Intersects,
    Distance,
    Coord1,
    Coord2,
    Area,
    Centroid,
    Coordsys,
}

impl Kind {
    pub(crate) const ALL: [Kind; 12] = [
        Kind::Point,
        Kind::Circle,
        Kind::Box,
        Kind::Polygon,
        Kind::Contains,
        Kind::Intersects,
        Kind::Distance,
        Kind::Coord1,
        Kind::Coord2,
        Kind::Area,
        Kind::Centroid,
        Kind::Coordsys,
    ];

    /// The (lowercase) UDF name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Point => "point",
            Kind::Circle => "circle",
            Kind::Box => "box",
            Kind::Polygon => "polygon",
            Kind::Contains => "contains",
            Kind::Intersects => "intersects",
            Kind::Distance => "distance",
            Kind::Coord1 => "coord1",
            Kind::Coord2 => "coord2",
            Kind::Area => "area",
            Kind::Centroid => "centroid",
            Kind::Coordsys => "coordsys",
        }
    }

    fn adql(self) -> &'static str {
        match self {
            Kind::Point => "POINT",
            Kind::Circle => "CIRCLE",
            Kind::Box => "BOX",
            Kind::Polygon => "POLYGON",
            Kind::Contains => "CONTAINS",
            Kind::Intersects => "INTERSECTS",
            Kind::Distance => "DISTANCE",
            Kind::Coord1 => "COORD1",
            Kind::Coord2 => "COORD2",
            Kind::Area => "AREA",
            Kind::Centroid => "CENTROID",
            Kind::Coordsys => "COORDSYS",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Kind::Point => "POINT([coordsys,] lon, lat)",
            Kind::Circle => {
                "CIRCLE([coordsys,] lon, lat, radius) or CIRCLE([coordsys,] point, radius)"
            }
            Kind::Box => "BOX([coordsys,] lon, lat, width, height)",
            Kind::Polygon => {
                "POLYGON([coordsys,] lon1, lat1, lon2, lat2, lon3, lat3, ...) or \
                 POLYGON([coordsys,] point1, point2, point3, ...)"
            }
            Kind::Contains => "CONTAINS(geometry, geometry)",
            Kind::Intersects => "INTERSECTS(geometry, geometry)",
            Kind::Distance => "DISTANCE(point, point) or DISTANCE(lon1, lat1, lon2, lat2)",
            Kind::Coord1 => "COORD1(point)",
            Kind::Coord2 => "COORD2(point)",
            Kind::Area => "AREA(geometry)",
            Kind::Centroid => "CENTROID(geometry)",
            Kind::Coordsys => "COORDSYS(geometry)",
        }
    }

    /// DALI xtype of the value returned by a constructor.
    fn xtype(self) -> Option<&'static str> {
        match self {
            Kind::Point | Kind::Centroid => Some("point"),
            Kind::Circle => Some("circle"),
            Kind::Box | Kind::Polygon => Some("polygon"),
            _ => None,
        }
    }

    fn return_type(self) -> DataType {
        match self {
            Kind::Point | Kind::Circle | Kind::Box | Kind::Polygon | Kind::Centroid => {
                geometry_type()
            }
            Kind::Coordsys => DataType::Utf8,
            Kind::Contains | Kind::Intersects => DataType::Int32,
            Kind::Distance | Kind::Coord1 | Kind::Coord2 | Kind::Area => DataType::Float64,
        }
    }
}

/// The Arrow type of geometry values: a list of non-null doubles.
pub fn geometry_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, false)))
}

/// What an argument is, from its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Null,
    Str,
    Num,
    Geom,
    Other,
}

fn class(dt: &DataType) -> Class {
    match dt {
        DataType::Null => Class::Null,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Class::Str,
        DataType::Dictionary(_, v) if class(v) == Class::Str => Class::Str,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
            if f.data_type().is_numeric() || f.data_type() == &DataType::Null =>
        {
            Class::Geom
        }
        d if d.is_numeric() => Class::Num,
        _ => Class::Other,
    }
}

/// The role of an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// coordinate system string
    Cs,
    /// number (coerced to Float64)
    Num,
    /// geometry (list of doubles)
    Geom,
}

/// The roles of the arguments of a call, from their types.
fn layout(kind: Kind, types: &[DataType]) -> std::result::Result<Vec<Slot>, String> {
    let cls: Vec<Class> = types.iter().map(class).collect();
    let usage = || format!("{} expects {}", kind.adql(), kind.usage());
    let slots = slots_for(kind, &cls).ok_or_else(usage)?;
    check_classes(kind, &slots, &cls, types)?;
    Ok(slots)
}

/// The roles of the arguments from their number (and, where that is ambiguous, their classes);
/// `None` when the function takes no such call.
fn slots_for(kind: Kind, cls: &[Class]) -> Option<Vec<Slot>> {
    use Slot::*;
    let cs_first = cls.first() == Some(&Class::Str);
    let slots = match (kind, cls) {
        (Kind::Point, [_, _]) => vec![Num, Num],
        (Kind::Point, [_, _, _]) => vec![Cs, Num, Num],
        (Kind::Circle, [_, _]) => vec![Geom, Num],
        (Kind::Circle, [c0, c1, _]) => {
            if cs_first || (*c0 == Class::Null && *c1 == Class::Geom) {
                vec![Cs, Geom, Num]
            } else {
                vec![Num, Num, Num]
            }
        }
        (Kind::Circle, [_, _, _, _]) => vec![Cs, Num, Num, Num],
        (Kind::Box, [_, _, _, _]) => vec![Num; 4],
        (Kind::Box, [_, _, _, _, _]) => vec![Cs, Num, Num, Num, Num],
        (Kind::Polygon, [c0, _, _, ..]) => return polygon_slots(*c0, cls),
        (Kind::Contains | Kind::Intersects, [_, _]) => vec![Geom, Geom],
        (Kind::Distance, [_, _]) => vec![Geom, Geom],
        (Kind::Distance, [_, _, _, _]) => vec![Num; 4],
        (Kind::Coord1 | Kind::Coord2 | Kind::Area | Kind::Centroid | Kind::Coordsys, [_]) => {
            vec![Geom]
        }
        _ => return None,
    };
    Some(slots)
}

/// The roles of POLYGON's (at least 3) arguments, whose first has the class `first`: an
/// optional coordinate system, then points or pairs of numbers.
fn polygon_slots(first: Class, cls: &[Class]) -> Option<Vec<Slot>> {
    use Slot::*;
    let n = cls.len();
    let has_geom = cls.contains(&Class::Geom);
    let cs = first == Class::Str || (first == Class::Null && (has_geom || n % 2 == 1));
    let rest = n - usize::from(cs);
    let mut v = Vec::with_capacity(n);
    if cs {
        v.push(Cs);
    }
    if has_geom && rest >= 3 {
        v.extend(std::iter::repeat_n(Geom, rest));
    } else if !has_geom && rest >= 6 && rest.is_multiple_of(2) {
        v.extend(std::iter::repeat_n(Num, rest));
    } else {
        return None;
    }
    Some(v)
}

/// Checks that each argument's class fits its role.
fn check_classes(
    kind: Kind,
    slots: &[Slot],
    cls: &[Class],
    types: &[DataType],
) -> std::result::Result<(), String> {
    use Slot::*;
    for (i, ((slot, c), t)) in slots.iter().zip(cls).zip(types).enumerate() {
        let ok = match slot {
            Cs => matches!(c, Class::Str | Class::Null),
            Num => matches!(c, Class::Num | Class::Null),
            // A stored region may be text (STC-S or DALI, e.g. ObsCore's s_region) where a
            // whole geometry is expected.
            Geom => {
                matches!(c, Class::Geom | Class::Null)
                    || (*c == Class::Str
                        && matches!(
                            kind,
                            Kind::Contains
                                | Kind::Intersects
                                | Kind::Distance
                                | Kind::Coord1
                                | Kind::Coord2
                                | Kind::Area
                                | Kind::Centroid
                        ))
            }
        };
        if !ok {
            let what = match slot {
                Cs => "a coordinate system string",
                Num => "a number",
                Geom => "a geometry",
            };
            return Err(format!(
                "{}: argument {} must be {what}, not {t} (usage: {})",
                kind.adql(),
                i + 1,
                kind.usage()
            ));
        }
    }
    Ok(())
}

/// Checks an ADQL coordinate system string: only ICRS (and its J2000 / FK5 aliases, with any
/// reference position) is supported.
pub(crate) fn check_coordsys(s: &str) -> std::result::Result<(), String> {
    let up = s.trim().to_ascii_uppercase();
    let mut toks = up.split_whitespace().peekable();
    let Some(frame) = toks.next() else {
        return Ok(());
    };
    let mut ok = matches!(frame, "ICRS" | "J2000" | "FK5");
    if frame == "FK5" && toks.peek() == Some(&"J2000") {
        toks.next();
    }
    for t in toks {
        ok &= matches!(
            t,
            "GEOCENTER"
                | "TOPOCENTER"
                | "BARYCENTER"
                | "HELIOCENTER"
                | "UNKNOWNREFPOS"
                | "SPHERICAL2"
        );
    }
    if ok {
        Ok(())
    } else {
        Err(format!(
            "coordinate system '{s}' is not supported: only ICRS is supported \
             (give 'ICRS' or '', or leave the coordinate system out)"
        ))
    }
}

fn exec(msg: String) -> DataFusionError {
    DataFusionError::Execution(msg)
}

/// Numeric argument reader (scalars broadcast).
struct Nums {
    arr: Float64Array,
    scalar: bool,
}

impl Nums {
    fn new(a: &ArrayRef, scalar: bool) -> Result<Nums> {
        let a = if a.data_type() == &DataType::Float64 {
            a.clone()
        } else {
            cast(a, &DataType::Float64)?
        };
        Ok(Nums {
            arr: a.as_primitive::<Float64Type>().clone(),
            scalar,
        })
    }

    #[inline]
    fn get(&self, i: usize) -> Option<f64> {
        let j = if self.scalar { 0 } else { i };
        (!self.arr.is_null(j)).then(|| self.arr.value(j))
    }
}

/// Coordinate system argument reader: validates every value up front.
struct Coordsys {
    arr: StringArray,
    scalar: bool,
}

impl Coordsys {
    fn new(kind: Kind, a: &ArrayRef, scalar: bool) -> Result<Coordsys> {
        let a = if a.data_type() == &DataType::Utf8 {
            a.clone()
        } else {
            cast(a, &DataType::Utf8)?
        };
        let arr = a.as_string::<i32>().clone();
        for s in arr.iter().flatten() {
            check_coordsys(s).map_err(|e| exec(format!("{}: {e}", kind.adql())))?;
        }
        Ok(Coordsys { arr, scalar })
    }

    #[inline]
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(if self.scalar { 0 } else { i })
    }
}

enum ListKind {
    Small(ListArray),
    Large(LargeListArray),
    Fixed(FixedSizeListArray),
}

/// Geometry argument reader over any list-of-numbers array.
pub(crate) struct Lists {
    list: ListKind,
    values: Float64Array,
    scalar: bool,
}

impl Lists {
    pub(crate) fn new(a: &ArrayRef, scalar: bool) -> Result<Lists> {
        let a = match a.data_type() {
            DataType::Null => cast(a, &geometry_type())?,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => regions_from_text(a)?,
            _ => a.clone(),
        };
        let (list, child) = match a.data_type() {
            DataType::List(_) => {
                let l = a.as_list::<i32>().clone();
                let c = l.values().clone();
                (ListKind::Small(l), c)
            }
            DataType::LargeList(_) => {
                let l = a.as_list::<i64>().clone();
                let c = l.values().clone();
                (ListKind::Large(l), c)
            }
            DataType::FixedSizeList(_, _) => {
                let l = a.as_fixed_size_list().clone();
                let c = l.values().clone();
                (ListKind::Fixed(l), c)
            }
            other => {
                return Err(exec(format!(
                    "expected a geometry (list of doubles), got {other}"
                )))
            }
        };
        let child = if child.data_type() == &DataType::Float64 {
            child
        } else {
            cast(&child, &DataType::Float64)?
        };
        Ok(Lists {
            list,
            values: child.as_primitive::<Float64Type>().clone(),
            scalar,
        })
    }

    /// The doubles of row `i`, `None` when the value (or one of its items) is NULL.
    pub(crate) fn get(&self, i: usize) -> Option<&[f64]> {
        let i = if self.scalar { 0 } else { i };
        let (start, end) = match &self.list {
            ListKind::Small(l) => {
                if l.is_null(i) {
                    return None;
                }
                let o = l.value_offsets();
                (o[i] as usize, o[i + 1] as usize)
            }
            ListKind::Large(l) => {
                if l.is_null(i) {
                    return None;
                }
                let o = l.value_offsets();
                (o[i] as usize, o[i + 1] as usize)
            }
            ListKind::Fixed(l) => {
                if l.is_null(i) {
                    return None;
                }
                let s = l.value_offset(i) as usize;
                (s, s + l.value_length() as usize)
            }
        };
        if self.values.null_count() > 0 && (start..end).any(|k| self.values.is_null(k)) {
            return None;
        }
        Some(&self.values.values()[start..end])
    }
}

/// Geometry argument reader that parses the values into shapes (once for scalars).
struct Geoms {
    lists: Lists,
    parsed: Option<Option<Shape>>,
}

impl Geoms {
    fn new(a: &ArrayRef, scalar: bool) -> Result<Geoms> {
        let lists = Lists::new(a, scalar)?;
        let parsed = if scalar {
            Some(match lists.get(0) {
                None => None,
                Some(vals) => Shape::from_values(vals).map_err(exec)?,
            })
        } else {
            None
        };
        Ok(Geoms { lists, parsed })
    }

    fn get(&self, i: usize) -> Result<Option<Cow<'_, Shape>>> {
        if let Some(p) = &self.parsed {
            return Ok(p.as_ref().map(Cow::Borrowed));
        }
        match self.lists.get(i) {
            None => Ok(None),
            Some(vals) => Ok(Shape::from_values(vals).map_err(exec)?.map(Cow::Owned)),
        }
    }

    /// Row `i` as a POINT `(lon, lat)`; an error for other kinds of geometry.
    fn point(&self, kind: Kind, i: usize) -> Result<Option<(f64, f64)>> {
        match self.get(i)? {
            None => Ok(None),
            Some(s) => match s.as_ref() {
                Shape::Point(p) => Ok(Some((p.lon, p.lat))),
                other => Err(exec(format!(
                    "{} expects a POINT here, not a {}",
                    kind.adql(),
                    other.kind_name()
                ))),
            },
        }
    }
}

/// Text regions (STC-S `Position`/`Circle`/`Box`/`Polygon` with optional frame, reference
/// position and flavour, or DALI numbers) as geometry values; empty text is NULL.
fn regions_from_text(a: &ArrayRef) -> Result<ArrayRef> {
    let a = cast(a, &DataType::Utf8)?;
    let s = a.as_string::<i32>();
    let mut b = geometry_builder(s.len());
    for v in s.iter() {
        match v.map(region_values).transpose().map_err(exec)?.flatten() {
            Some(vals) => {
                b.values().append_slice(&vals);
                b.append(true);
            }
            None => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// Parses one text region into the list-of-doubles representation (`None` for empty text).
pub(crate) fn region_values(text: &str) -> std::result::Result<Option<Vec<f64>>, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some(first) = words.first() else {
        return Ok(None);
    };
    let is_num = |w: &str| w.parse::<f64>().is_ok();
    let (shape, rest) = if is_num(first) {
        (String::new(), &words[..])
    } else {
        (first.to_ascii_lowercase(), &words[1..])
    };
    let from = rest.iter().position(|w| is_num(w)).unwrap_or(rest.len());
    for q in &rest[..from] {
        let q = q.to_ascii_uppercase();
        let known_frame = matches!(q.as_str(), "ICRS" | "FK5" | "J2000" | "UNKNOWNFRAME");
        let other = matches!(
            q.as_str(),
            "BARYCENTER"
                | "GEOCENTER"
                | "TOPOCENTER"
                | "HELIOCENTER"
                | "UNKNOWNREFPOS"
                | "SPHERICAL2"
        );
        if !known_frame && !other {
            return Err(format!(
                "region '{text}': frame '{q}' is not supported (ICRS is)"
            ));
        }
    }
    let nums: Vec<f64> = rest[from..]
        .iter()
        .map(|w| {
            w.parse::<f64>()
                .map_err(|_| format!("region '{text}': '{w}' is not a number"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let n = nums.len();
    let ok = match shape.as_str() {
        "" => n == 2 || n == 3 || (n >= 6 && n.is_multiple_of(2)),
        "position" => n == 2,
        "circle" => n == 3,
        "box" => n == 4,
        "polygon" => n >= 6 && n.is_multiple_of(2),
        _ => {
            return Err(format!(
                "region '{text}': only Position, Circle, Box and Polygon are supported"
            ))
        }
    };
    if !ok {
        return Err(format!(
            "region '{text}': wrong number of values for its shape"
        ));
    }
    if shape == "box" {
        let v = sphere::box_vertices(nums[0], nums[1], nums[2], nums[3])?;
        return Ok(Some(v.into_iter().flat_map(|(a, b)| [a, b]).collect()));
    }
    Ok(Some(nums))
}

fn geometry_builder(capacity: usize) -> ListBuilder<Float64Builder> {
    ListBuilder::with_capacity(Float64Builder::with_capacity(capacity * 2), capacity)
        .with_field(Arc::new(Field::new_list_field(DataType::Float64, false)))
}

/// Evaluates a geometry function on columnar arguments (scalars give a scalar).
pub(crate) fn evaluate(
    kind: Kind,
    args: &[ColumnarValue],
    number_rows: usize,
) -> Result<ColumnarValue> {
    let types: Vec<DataType> = args.iter().map(|a| a.data_type()).collect();
    let slots = layout(kind, &types).map_err(exec)?;
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let rows = if all_scalar { 1 } else { number_rows };
    let a = Args::decode(kind, args, &slots, rows)?;
    // The first argument after the optional coordinate system: a geometry or a number.
    let geom_first = slots.get(a.off) == Some(&Slot::Geom);
    let out: ArrayRef = match kind {
        Kind::Point => point(&a)?,
        Kind::Circle if geom_first => circle_around_point(&a)?,
        Kind::Circle => circle(&a)?,
        Kind::Box => box_(&a)?,
        Kind::Polygon if geom_first => polygon_of_points(&a)?,
        Kind::Polygon => polygon_of_numbers(&a)?,
        Kind::Contains | Kind::Intersects => relation(&a)?,
        Kind::Distance if geom_first => distance_of_points(&a)?,
        Kind::Distance => distance_of_numbers(&a)?,
        Kind::Coord1 | Kind::Coord2 => coord(&a)?,
        Kind::Area => area(&a)?,
        Kind::Centroid => centroid(&a)?,
        Kind::Coordsys => coordsys(&a)?,
    };
    if all_scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

/// The arguments of one call, decoded: each as an array (of one row for a scalar, which
/// broadcasts), and the coordinate system reader when the call starts with one.
struct Args {
    kind: Kind,
    /// Rows to produce (1 when every argument is a scalar).
    rows: usize,
    /// Each argument, with whether it is a scalar.
    cols: Vec<(ArrayRef, bool)>,
    /// The coordinate system argument (validated), when the call has one.
    cs: Option<Coordsys>,
    /// Index of the first argument after the coordinate system.
    off: usize,
}

impl Args {
    fn decode(kind: Kind, args: &[ColumnarValue], slots: &[Slot], rows: usize) -> Result<Args> {
        let mut cols: Vec<(ArrayRef, bool)> = Vec::with_capacity(args.len());
        for a in args {
            cols.push(match a {
                ColumnarValue::Array(arr) => (arr.clone(), false),
                ColumnarValue::Scalar(s) => (s.to_array_of_size(1)?, true),
            });
        }
        let cs = match (slots.first(), cols.first()) {
            (Some(Slot::Cs), Some((arr, scalar))) => Some(Coordsys::new(kind, arr, *scalar)?),
            _ => None,
        };
        let off = usize::from(cs.is_some());
        Ok(Args {
            kind,
            rows,
            cols,
            cs,
            off,
        })
    }

    /// Is the coordinate system of row `i` NULL?
    fn cs_null(&self, i: usize) -> bool {
        self.cs.as_ref().is_some_and(|c| c.is_null(i))
    }

    /// Argument `j` as numbers.
    fn num(&self, j: usize) -> Result<Nums> {
        let (arr, scalar) = &self.cols[j];
        Nums::new(arr, *scalar)
    }

    /// The `k` arguments after the coordinate system, as numbers.
    fn nums(&self, k: usize) -> Result<Vec<Nums>> {
        (self.off..self.off + k).map(|j| self.num(j)).collect()
    }

    /// Argument `j` as geometries.
    fn geoms(&self, j: usize) -> Result<Geoms> {
        let (arr, scalar) = &self.cols[j];
        Geoms::new(arr, *scalar)
    }

    /// The arguments after the coordinate system.
    fn rest(&self) -> usize {
        self.cols.len() - self.off
    }
}

/// POINT([coordsys,] lon, lat).
fn point(a: &Args) -> Result<ArrayRef> {
    let n = a.nums(2)?;
    let mut b = geometry_builder(a.rows);
    for i in 0..a.rows {
        match (a.cs_null(i), n[0].get(i), n[1].get(i)) {
            (false, Some(lon), Some(lat))
                if sphere::check_lonlat(a.kind.adql(), lon, lat).map_err(exec)? =>
            {
                b.values().append_slice(&[lon, lat]);
                b.append(true);
            }
            _ => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// CIRCLE([coordsys,] point, radius).
fn circle_around_point(a: &Args) -> Result<ArrayRef> {
    let g = a.geoms(a.off)?;
    let r = a.num(a.off + 1)?;
    let mut b = geometry_builder(a.rows);
    for i in 0..a.rows {
        let centre = if a.cs_null(i) {
            None
        } else {
            g.point(a.kind, i)?
        };
        match (centre, r.get(i)) {
            (Some((lon, lat)), Some(r)) => append_circle(&mut b, lon, lat, r)?,
            _ => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// CIRCLE([coordsys,] lon, lat, radius).
fn circle(a: &Args) -> Result<ArrayRef> {
    let n = a.nums(3)?;
    let mut b = geometry_builder(a.rows);
    for i in 0..a.rows {
        match (a.cs_null(i), n[0].get(i), n[1].get(i), n[2].get(i)) {
            (false, Some(lon), Some(lat), Some(r)) => append_circle(&mut b, lon, lat, r)?,
            _ => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// BOX([coordsys,] lon, lat, width, height).
fn box_(a: &Args) -> Result<ArrayRef> {
    let n = a.nums(4)?;
    let mut b = geometry_builder(a.rows);
    let mut buf = Vec::new();
    for i in 0..a.rows {
        let vals = (
            a.cs_null(i),
            n[0].get(i),
            n[1].get(i),
            n[2].get(i),
            n[3].get(i),
        );
        match vals {
            (false, Some(lon), Some(lat), Some(w), Some(h))
                if sphere::check_lonlat(a.kind.adql(), lon, lat).map_err(exec)?
                    && w.is_finite()
                    && h.is_finite() =>
            {
                let shape = box_shape(lon, lat, w, h).map_err(exec)?;
                buf.clear();
                shape.write_values(&mut buf);
                b.values().append_slice(&buf);
                b.append(true);
            }
            _ => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// POLYGON([coordsys,] point1, point2, point3, ...).
fn polygon_of_points(a: &Args) -> Result<ArrayRef> {
    let mut b = geometry_builder(a.rows);
    let mut buf = Vec::new();
    let mut verts: Vec<(f64, f64)> = Vec::new();
    let g: Vec<Geoms> = (a.off..a.off + a.rest())
        .map(|j| a.geoms(j))
        .collect::<Result<_>>()?;
    for i in 0..a.rows {
        verts.clear();
        let mut null = a.cs_null(i);
        for gj in &g {
            match gj.point(a.kind, i)? {
                Some(p) => verts.push(p),
                None => null = true,
            }
        }
        append_polygon(&mut b, &mut buf, null, &verts)?;
    }
    Ok(Arc::new(b.finish()))
}

/// POLYGON([coordsys,] lon1, lat1, lon2, lat2, lon3, lat3, ...).
fn polygon_of_numbers(a: &Args) -> Result<ArrayRef> {
    let mut b = geometry_builder(a.rows);
    let mut buf = Vec::new();
    let mut verts: Vec<(f64, f64)> = Vec::new();
    let n = a.nums(a.rest())?;
    for i in 0..a.rows {
        verts.clear();
        let mut null = a.cs_null(i);
        for pair in n.chunks_exact(2) {
            match (pair[0].get(i), pair[1].get(i)) {
                (Some(lon), Some(lat)) => verts.push((lon, lat)),
                _ => null = true,
            }
        }
        append_polygon(&mut b, &mut buf, null, &verts)?;
    }
    Ok(Arc::new(b.finish()))
}

/// CONTAINS(geometry, geometry) and INTERSECTS(geometry, geometry): 1 or 0.
fn relation(a: &Args) -> Result<ArrayRef> {
    let x = a.geoms(0)?;
    let y = a.geoms(1)?;
    let test = if a.kind == Kind::Contains {
        sphere::contains
    } else {
        sphere::intersects
    };
    let mut b = Int32Builder::with_capacity(a.rows);
    for i in 0..a.rows {
        match (x.get(i)?, y.get(i)?) {
            (Some(x), Some(y)) => b.append_value(i32::from(test(&x, &y))),
            _ => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// DISTANCE(point, point).
fn distance_of_points(a: &Args) -> Result<ArrayRef> {
    let p = a.geoms(0)?;
    let q = a.geoms(1)?;
    let mut b = Float64Builder::with_capacity(a.rows);
    for i in 0..a.rows {
        match (p.point(a.kind, i)?, q.point(a.kind, i)?) {
            (Some((l1, b1)), Some((l2, b2))) => {
                b.append_value(sphere::distance_deg(l1, b1, l2, b2))
            }
            _ => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// DISTANCE(lon1, lat1, lon2, lat2).
fn distance_of_numbers(a: &Args) -> Result<ArrayRef> {
    let adql = a.kind.adql();
    let n = a.nums(4)?;
    let mut b = Float64Builder::with_capacity(a.rows);
    for i in 0..a.rows {
        match (n[0].get(i), n[1].get(i), n[2].get(i), n[3].get(i)) {
            (Some(l1), Some(b1), Some(l2), Some(b2))
                if sphere::check_lonlat(adql, l1, b1).map_err(exec)?
                    && sphere::check_lonlat(adql, l2, b2).map_err(exec)? =>
            {
                b.append_value(sphere::distance_deg(l1, b1, l2, b2))
            }
            _ => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// COORD1(point) and COORD2(point): its longitude or latitude.
fn coord(a: &Args) -> Result<ArrayRef> {
    let g = a.geoms(0)?;
    let mut b = Float64Builder::with_capacity(a.rows);
    for i in 0..a.rows {
        match g.point(a.kind, i)? {
            Some((lon, lat)) => b.append_value(if a.kind == Kind::Coord1 { lon } else { lat }),
            None => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// AREA(geometry), in square degrees.
fn area(a: &Args) -> Result<ArrayRef> {
    let g = a.geoms(0)?;
    let mut b = Float64Builder::with_capacity(a.rows);
    for i in 0..a.rows {
        match g.get(i)? {
            Some(shape) => b.append_value(sphere::area_deg2(&shape)),
            None => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// CENTROID(geometry): a point.
fn centroid(a: &Args) -> Result<ArrayRef> {
    let g = a.geoms(0)?;
    let mut b = geometry_builder(a.rows);
    for i in 0..a.rows {
        match g.get(i)?.and_then(|shape| sphere::centroid(&shape)) {
            Some((lon, lat)) => {
                b.values().append_slice(&[lon, lat]);
                b.append(true);
            }
            None => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// COORDSYS(geometry): always 'ICRS' (NULL for a NULL geometry).
fn coordsys(a: &Args) -> Result<ArrayRef> {
    let (arr, scalar) = &a.cols[0];
    let g = Lists::new(arr, *scalar)?;
    let mut b = StringBuilder::with_capacity(a.rows, a.rows * 4);
    for i in 0..a.rows {
        match g.get(i) {
            Some(_) => b.append_value("ICRS"),
            None => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

fn append_circle(b: &mut ListBuilder<Float64Builder>, lon: f64, lat: f64, r: f64) -> Result<()> {
    if !sphere::check_lonlat("CIRCLE", lon, lat).map_err(exec)? || r.is_nan() {
        b.append_null();
        return Ok(());
    }
    if r < 0.0 {
        return Err(exec(format!("CIRCLE: radius {r} must not be negative")));
    }
    b.values().append_slice(&[lon, lat, r]);
    b.append(true);
    Ok(())
}

fn append_polygon(
    b: &mut ListBuilder<Float64Builder>,
    buf: &mut Vec<f64>,
    null: bool,
    verts: &[(f64, f64)],
) -> Result<()> {
    if null || verts.iter().any(|(a, c)| !a.is_finite() || !c.is_finite()) {
        b.append_null();
        return Ok(());
    }
    let poly = sphere::Polygon::new(verts).map_err(exec)?;
    buf.clear();
    Shape::Polygon(poly).write_values(buf);
    b.values().append_slice(buf);
    b.append(true);
    Ok(())
}

/// The polygon of BOX(lon, lat, width, height).
pub(crate) fn box_shape(
    lon: f64,
    lat: f64,
    width: f64,
    height: f64,
) -> std::result::Result<Shape, String> {
    let verts = sphere::box_vertices(lon, lat, width, height)?;
    Ok(Shape::Polygon(sphere::Polygon::new(&verts)?))
}

/// A geometry function as a DataFusion UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct GeomUdf {
    kind: Kind,
    signature: Signature,
}

impl GeomUdf {
    pub(crate) fn new(kind: Kind) -> GeomUdf {
        GeomUdf {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }
}

impl ScalarUDFImpl for GeomUdf {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        layout(self.kind, arg_types).map_err(DataFusionError::Plan)?;
        Ok(self.kind.return_type())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let dt = self.return_type(&types)?;
        let mut field = Field::new(self.name(), dt, true);
        if let Some(x) = self.kind.xtype() {
            // DALI: a point is double[2], a circle double[3], a polygon double[*].
            let mut md = HashMap::from([("xtype".to_string(), x.to_string())]);
            match x {
                "point" => md.insert("arraysize".to_string(), "2".to_string()),
                "circle" => md.insert("arraysize".to_string(), "3".to_string()),
                _ => None,
            };
            field = field.with_metadata(md);
        }
        Ok(Arc::new(field))
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let slots = layout(self.kind, arg_types).map_err(DataFusionError::Plan)?;
        Ok(slots
            .iter()
            .zip(arg_types)
            .map(|(slot, t)| match slot {
                Slot::Cs => DataType::Utf8,
                Slot::Num => DataType::Float64,
                Slot::Geom => match t {
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => t.clone(),
                    DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
                        if f.data_type() == &DataType::Float64 =>
                    {
                        t.clone()
                    }
                    DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
                        DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
                    }
                    _ => geometry_type(),
                },
            })
            .collect())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        evaluate(self.kind, &args.args, args.number_rows)
    }
}

/// All the geometry UDFs.
pub(crate) fn all() -> Vec<ScalarUDF> {
    Kind::ALL
        .iter()
        .map(|k| ScalarUDF::new_from_impl(GeomUdf::new(*k)))
        .collect()
}
