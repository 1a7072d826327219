//! ADQL 2.1 `IN_UNIT(value, 'unit')`: converts a value to another unit, from the unit its
//! column declares (the `unit` field metadata, VOUnits 1.0 syntax).
//!
//! A unit string is parsed into a scale factor and a dimension vector (SI base dimensions plus
//! angle, so that deg → rad converts but deg → m does not). The syntax is the VOUnits one:
//! factors joined by `.` or `*`, divided by `/`, powers with `**` (`**-2`, `**(1/2)` not
//! supported), SI prefixes, an optional leading numeric factor (`10**-3`, `1e-3`). Only
//! linear units convert (`mag` and `dex` are refused, as are unknown symbols), and the
//! result column carries the new unit.
//!
//! Hand-written: no Rust crate parses VOUnits (the IVOA's reference is a C/Java library).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

/// Dimensions: m, kg, s, A, K, mol, cd, rad, sr is rad².
const DIMS: usize = 8;

/// A parsed unit: `value_in_SI = scale × value`, and its dimensions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    /// Factor to SI (and radians).
    pub scale: f64,
    /// Powers of m, kg, s, A, K, mol, cd, rad.
    pub dims: [i32; DIMS],
}

const NONE: [i32; DIMS] = [0; DIMS];

fn dims(pairs: &[(usize, i32)]) -> [i32; DIMS] {
    let mut d = NONE;
    for &(i, p) in pairs {
        d[i] = p;
    }
    d
}

const M: usize = 0;
const KG: usize = 1;
const S: usize = 2;
const A: usize = 3;
const K: usize = 4;
const MOL: usize = 5;
const CD: usize = 6;
const RAD: usize = 7;

/// Known symbols: scale to SI, dimensions, whether SI prefixes apply.
fn symbol(sym: &str) -> Option<(f64, [i32; DIMS], bool)> {
    use std::f64::consts::PI;
    let deg = PI / 180.0;
    let jy = 1e-26;
    Some(match sym {
        "m" => (1.0, dims(&[(M, 1)]), true),
        "g" => (1e-3, dims(&[(KG, 1)]), true),
        "s" => (1.0, dims(&[(S, 1)]), true),
        "A" => (1.0, dims(&[(A, 1)]), true),
        "K" => (1.0, dims(&[(K, 1)]), true),
        "mol" => (1.0, dims(&[(MOL, 1)]), true),
        "cd" => (1.0, dims(&[(CD, 1)]), true),
        "rad" => (1.0, dims(&[(RAD, 1)]), true),
        "sr" => (1.0, dims(&[(RAD, 2)]), true),
        "deg" => (deg, dims(&[(RAD, 1)]), false),
        "arcmin" => (deg / 60.0, dims(&[(RAD, 1)]), true),
        "arcsec" => (deg / 3600.0, dims(&[(RAD, 1)]), true),
        "mas" => (deg / 3.6e6, dims(&[(RAD, 1)]), false),
        "uas" => (deg / 3.6e9, dims(&[(RAD, 1)]), false),
        "Hz" => (1.0, dims(&[(S, -1)]), true),
        "N" => (1.0, dims(&[(KG, 1), (M, 1), (S, -2)]), true),
        "J" => (1.0, dims(&[(KG, 1), (M, 2), (S, -2)]), true),
        "W" => (1.0, dims(&[(KG, 1), (M, 2), (S, -3)]), true),
        "Pa" => (1.0, dims(&[(KG, 1), (M, -1), (S, -2)]), true),
        "C" => (1.0, dims(&[(A, 1), (S, 1)]), true),
        "V" => (1.0, dims(&[(KG, 1), (M, 2), (S, -3), (A, -1)]), true),
        "T" => (1.0, dims(&[(KG, 1), (S, -2), (A, -1)]), true),
        "G" => (1e-4, dims(&[(KG, 1), (S, -2), (A, -1)]), true),
        "erg" => (1e-7, dims(&[(KG, 1), (M, 2), (S, -2)]), true),
        "eV" => (1.602176634e-19, dims(&[(KG, 1), (M, 2), (S, -2)]), true),
        "Jy" => (jy, dims(&[(KG, 1), (S, -2)]), true),
        "Angstrom" | "angstrom" => (1e-10, dims(&[(M, 1)]), false),
        "AU" | "au" => (1.495978707e11, dims(&[(M, 1)]), false),
        "pc" => (3.085677581491367e16, dims(&[(M, 1)]), true),
        "lyr" | "ly" => (9.4607304725808e15, dims(&[(M, 1)]), true),
        "solRad" => (6.957e8, dims(&[(M, 1)]), false),
        "solMass" => (1.98840987e30, dims(&[(KG, 1)]), false),
        "solLum" => (3.828e26, dims(&[(KG, 1), (M, 2), (S, -3)]), false),
        "min" => (60.0, dims(&[(S, 1)]), false),
        "h" => (3600.0, dims(&[(S, 1)]), false),
        "d" => (86400.0, dims(&[(S, 1)]), false),
        "yr" | "a" => (31557600.0, dims(&[(S, 1)]), true),
        "ct" | "count" | "ph" | "photon" | "pix" | "pixel" | "" => (1.0, NONE, false),
        _ => return None,
    })
}

fn prefix(p: &str) -> Option<f64> {
    Some(match p {
        "y" => 1e-24,
        "z" => 1e-21,
        "a" => 1e-18,
        "f" => 1e-15,
        "p" => 1e-12,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "c" => 1e-2,
        "d" => 1e-1,
        "da" => 1e1,
        "h" => 1e2,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Z" => 1e21,
        "Y" => 1e24,
        _ => return None,
    })
}

/// One factor: `[prefix]symbol`, e.g. `km`, `mas`, `GHz`.
fn atom(s: &str) -> Option<(f64, [i32; DIMS])> {
    if let Some((scale, d, _)) = symbol(s) {
        return Some((scale, d));
    }
    for plen in [2, 1] {
        if s.len() > plen && s.is_char_boundary(plen) {
            let (p, rest) = s.split_at(plen);
            if let (Some(f), Some((scale, d, true))) = (prefix(p), symbol(rest)) {
                return Some((f * scale, d));
            }
        }
    }
    None
}

/// Parses a VOUnits string.
pub fn parse_unit(text: &str) -> std::result::Result<Unit, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an empty unit".into());
    }
    if matches!(t, "mag" | "dex" | "dB") || t.contains("mag") {
        return Err(format!(
            "'{t}' is logarithmic: IN_UNIT converts linear units only"
        ));
    }
    let mut unit = Unit {
        scale: 1.0,
        dims: NONE,
    };
    // Split into factors, remembering whether each is divided.
    let mut rest = t;
    let mut divide = false;
    let mut first = true;
    while !rest.is_empty() {
        let end = rest
            .char_indices()
            .skip(1)
            .find(|&(i, c)| {
                (c == '.' || c == '/' || (c == '*' && !rest[i..].starts_with("**")))
                    && !rest[..i].ends_with('*')
                    && !rest[..i].ends_with("**")
                    && !(c == '.'
                        && rest[..i].ends_with(|p: char| p.is_ascii_digit())
                        && rest[i + 1..].starts_with(|n: char| n.is_ascii_digit()))
            })
            .map_or(rest.len(), |(i, _)| i);
        let mut factor = &rest[..end];
        let sep = rest[end..].chars().next();
        rest = match sep {
            Some(c) => &rest[end + c.len_utf8()..],
            None => "",
        };
        if first {
            first = false;
            if factor.starts_with('/') {
                factor = &factor[1..];
                divide = true;
            }
        }
        // power
        let (base, power) = match factor.split_once("**") {
            Some((b, p)) => {
                let p = p.trim_start_matches('(').trim_end_matches(')');
                let p: i32 = p
                    .parse()
                    .map_err(|_| format!("the power '{p}' in '{t}' is not an integer"))?;
                (b, p)
            }
            None => (factor, 1),
        };
        let sign = if divide { -1 } else { 1 };
        if let Ok(num) = base.parse::<f64>() {
            unit.scale *= num.powi(power * sign);
        } else {
            let (scale, d) = atom(base)
                .ok_or_else(|| format!("'{base}' is not a unit vostok knows (in '{t}')"))?;
            unit.scale *= scale.powi(power * sign);
            for (u, v) in unit.dims.iter_mut().zip(d) {
                *u += v * power * sign;
            }
        }
        divide = sep == Some('/');
    }
    Ok(unit)
}

/// The factor that converts values in `from` to values in `to`.
pub fn conversion_factor(from: &str, to: &str) -> std::result::Result<f64, String> {
    let f = parse_unit(from)?;
    let t = parse_unit(to)?;
    if f.dims != t.dims {
        return Err(format!(
            "'{from}' cannot be converted to '{to}': different dimensions"
        ));
    }
    Ok(f.scale / t.scale)
}

/// The IN_UNIT function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct InUnit {
    signature: Signature,
}

fn target_unit(args: &ReturnFieldArgs) -> Result<String> {
    match args.scalar_arguments.get(1) {
        Some(Some(ScalarValue::Utf8(Some(s))))
        | Some(Some(ScalarValue::LargeUtf8(Some(s))))
        | Some(Some(ScalarValue::Utf8View(Some(s)))) => Ok(s.clone()),
        _ => plan_err!("IN_UNIT(value, 'unit'): the unit must be a string literal"),
    }
}

impl ScalarUDFImpl for InUnit {
    fn name(&self) -> &str {
        "in_unit"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if args.arg_fields.len() != 2 {
            return plan_err!("IN_UNIT takes (value, 'unit')");
        }
        if !args.arg_fields[0].data_type().is_numeric() {
            return plan_err!(
                "IN_UNIT converts numbers, not {}",
                args.arg_fields[0].data_type()
            );
        }
        let to = target_unit(&args)?;
        let Some(from) = args.arg_fields[0].metadata().get("unit") else {
            return plan_err!(
                "IN_UNIT needs a value whose unit is known (a column with a unit); '{}' has none",
                args.arg_fields[0].name()
            );
        };
        conversion_factor(from, &to).map_err(|e| DataFusionError::Plan(format!("IN_UNIT: {e}")))?;
        let md = HashMap::from([
            ("unit".to_string(), to),
            ("in_unit_from".to_string(), from.clone()),
        ]);
        Ok(Arc::new(
            Field::new("in_unit", DataType::Float64, true).with_metadata(md),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let md = args.return_field.metadata();
        let (Some(from), Some(to)) = (md.get("in_unit_from"), md.get("unit")) else {
            return Err(DataFusionError::Execution(
                "IN_UNIT lost its units between planning and execution".into(),
            ));
        };
        let factor = conversion_factor(from, to).map_err(DataFusionError::Execution)?;
        match &args.args[0] {
            ColumnarValue::Scalar(s) => {
                let v = s.cast_to(&DataType::Float64)?;
                Ok(ColumnarValue::Scalar(match v {
                    ScalarValue::Float64(x) => ScalarValue::Float64(x.map(|x| x * factor)),
                    _ => ScalarValue::Float64(None),
                }))
            }
            ColumnarValue::Array(a) => {
                let a = cast(a, &DataType::Float64)?;
                let out: datafusion::arrow::array::Float64Array =
                    a.as_primitive::<Float64Type>().unary(|x| x * factor);
                Ok(ColumnarValue::Array(Arc::new(out) as Arc<dyn Array>))
            }
        }
    }
}

/// The IN_UNIT UDF.
pub fn in_unit_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(InUnit {
        signature: Signature::new(TypeSignature::Any(2), Volatility::Immutable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
    }

    #[test]
    fn angles_lengths_times_and_composites_convert() {
        let pi = std::f64::consts::PI;
        assert!(close(conversion_factor("deg", "rad").unwrap(), pi / 180.0));
        assert!(close(conversion_factor("deg", "arcsec").unwrap(), 3600.0));
        assert!(close(
            conversion_factor("mas/yr", "arcsec/yr").unwrap(),
            1e-3
        ));
        assert!(close(
            conversion_factor("mas/yr", "rad/s").unwrap(),
            pi / 180.0 / 3.6e6 / 31557600.0
        ));
        assert!(close(conversion_factor("km/s", "m.s**-1").unwrap(), 1000.0));
        assert!(close(conversion_factor("kpc", "pc").unwrap(), 1000.0));
        assert!(close(
            conversion_factor("deg**2", "arcmin**2").unwrap(),
            3600.0
        ));
        assert!(close(conversion_factor("mJy", "Jy").unwrap(), 1e-3));
        assert!(close(conversion_factor("nm", "Angstrom").unwrap(), 10.0));
        assert!(close(conversion_factor("10**-3.m", "mm").unwrap(), 1.0));
        assert!(close(
            conversion_factor("erg/s/cm**2", "W/m**2").unwrap(),
            1e-7 / 1e-4
        ));
        assert!(close(conversion_factor("GHz", "Hz").unwrap(), 1e9));
    }

    #[test]
    fn incompatible_unknown_and_logarithmic_units_are_refused() {
        assert!(conversion_factor("deg", "m")
            .unwrap_err()
            .contains("dimensions"));
        assert!(conversion_factor("furlong", "m")
            .unwrap_err()
            .contains("furlong"));
        assert!(conversion_factor("mag", "Jy")
            .unwrap_err()
            .contains("logarithmic"));
        assert!(conversion_factor("m**x", "m").is_err());
    }
}
