//! The portal's name resolver, `GET /portal/api/resolve?name=…`: a position for an object
//! name without asking any outside service.
//!
//! 1. A list of common names compiled into the binary (`data/names/openngc.tsv`, written by
//!    `scripts/openngc-names.py` from OpenNGC, Mattia Verga, CC-BY-SA-4.0): the NGC, IC and
//!    Messier numbers and the common names of their objects ("M45", "NGC 224", "Pleiades").
//! 2. The identifiers of the served catalogs: the column a catalog's metadata names as its
//!    `id`, and any column whose UCD is `meta.id` (e.g. `meta.id;meta.main`). "HIP 32349"
//!    and "Gaia DR3 5853498713190525696" name such a value after words of the catalog's
//!    schema, table or column name ("hip": hipparcos.hip2's `hip`; "gaia dr3":
//!    gaia.dr3_bright). The value is compared as a typed literal in a DataFusion expression,
//!    never written into SQL, and the lookup is a synchronous query like any other (admitted
//!    in its lane, held to `[tap] sync_timeout`).
//! 3. Target names: a column whose UCD is `meta.id;src` (ObsCore's `target_name`) holding the
//!    whole name, without case, spaces, hyphens or underscores ("mn lup" finds "MN-Lup").
//!
//! Names are compared without case and spaces, and without leading zeros in their numbers:
//! "m45", "M 45" and "M045" are one name.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::{web, HttpRequest, HttpResponse};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::logical_expr::{lit, Expr};
use futures::StreamExt;
use serde_json::{json, Value};
use votable::{Format, TableInfo};

use crate::dali::Params;
use crate::engine::{Engine, Lane, QueryRequest};

/// The longest name accepted, in characters.
pub const NAME_MAX_CHARS: usize = 128;

/// The bundled list: `ra dec type names…` per line (see the file's header).
const OPENNGC: &str = include_str!("../../data/names/openngc.tsv");

/// What the bundled list credits.
const OPENNGC_CREDIT: &str = "OpenNGC, Mattia Verga (CC-BY-SA-4.0)";

/// One object of the bundled list.
struct Named {
    ra: f64,
    dec: f64,
    kind: &'static str,
    names: Vec<&'static str>,
}

/// The bundled list, and every name's key to its object (built at first use).
fn names() -> &'static (Vec<Named>, HashMap<String, usize>) {
    static LIST: OnceLock<(Vec<Named>, HashMap<String, usize>)> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut objects = Vec::new();
        let mut index = HashMap::new();
        for line in OPENNGC.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split('\t');
            let (Some(ra), Some(dec), Some(kind), Some(names)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let (Ok(ra), Ok(dec)) = (ra.parse(), dec.parse()) else {
                continue;
            };
            let names: Vec<&'static str> = names.split('|').collect();
            for n in &names {
                index.entry(key(n)).or_insert(objects.len());
            }
            objects.push(Named {
                ra,
                dec,
                kind,
                names,
            });
        }
        (objects, index)
    })
}

/// A name's key: lower case, without white space or underscores, without the leading zeros
/// of a number that follows a letter, "messier" as "m".
pub fn key(name: &str) -> String {
    let compact: String = name
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .flat_map(char::to_lowercase)
        .collect();
    let compact = match compact.strip_prefix("messier") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => format!("m{rest}"),
        _ => compact,
    };
    let mut out = String::with_capacity(compact.len());
    let mut chars = compact.chars().peekable();
    let mut after_letter = false;
    while let Some(c) = chars.next() {
        // A zero that starts a number after a letter, and is followed by another digit.
        if c == '0' && after_letter && chars.peek().is_some_and(char::is_ascii_digit) {
            continue;
        }
        after_letter = c.is_alphabetic();
        out.push(c);
    }
    out
}

/// The object of the bundled list with this name.
fn bundled(name: &str) -> Option<Value> {
    let (objects, index) = names();
    let o = &objects[*index.get(&key(name))?];
    Some(json!({
        "name": name,
        "ra": o.ra,
        "dec": o.dec,
        "source": "OpenNGC",
        "object": o.names.first(),
        "names": o.names,
        "type": o.kind,
        "credit": OPENNGC_CREDIT,
    }))
}

/// A served catalog's identifier column a name may refer to.
struct IdColumn {
    table: String,
    column: String,
    datatype: DataType,
    ra: String,
    dec: String,
    /// Words a name may use for it: those of the schema, table and column names.
    words: Vec<String>,
    /// A column of target names (UCD `meta.id;src`, as ObsCore's `target_name`), which a
    /// name matches whole, without the words of its catalog.
    target: bool,
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Every identifier column of the served catalogs.
fn id_columns(engine: &Engine) -> Vec<IdColumn> {
    let mut out = Vec::new();
    for (name, table) in engine.snapshot().tables() {
        let cat = table.catalog();
        let meta = &cat.meta.table;
        for field in cat.schema.fields() {
            let col = field.name();
            let named = meta
                .id
                .as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(col));
            let ucd: Vec<String> = cat
                .meta
                .column(col)
                .and_then(|c| c.ucd.as_deref())
                .map(|u| {
                    u.split(';')
                        .map(|a| a.trim().to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default();
            let ucd_id = ucd.first().is_some_and(|first| first == "meta.id");
            let target = ucd_id
                && ucd.iter().any(|a| a == "src")
                && matches!(
                    field.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                );
            if !(named || ucd_id) {
                continue;
            }
            let mut w: Vec<String> = words(name).chain(words(col)).collect();
            w.push(name.to_lowercase());
            w.push(col.to_lowercase());
            out.push(IdColumn {
                table: name.clone(),
                column: col.clone(),
                datatype: field.data_type().clone(),
                ra: meta.ra.clone(),
                dec: meta.dec.clone(),
                words: w,
                target,
            });
        }
    }
    out
}

/// The ways to read a name as "words of a catalog" then "a value": every split between its
/// words ("HIP32349" counts as "HIP 32349").
fn splits(name: &str) -> Vec<(Vec<String>, String)> {
    let mut tokens: Vec<String> = name.split_whitespace().map(str::to_string).collect();
    if tokens.len() == 1 {
        let t = &tokens[0];
        if let Some(i) = t.find(|c: char| c.is_ascii_digit()) {
            if i > 0 && t[i..].chars().all(|c| c.is_ascii_digit()) {
                tokens = vec![t[..i].to_string(), t[i..].to_string()];
            }
        }
    }
    (1..tokens.len())
        .map(|i| {
            let prefix = tokens[..i].iter().flat_map(|t| words(t)).collect();
            (prefix, tokens[i..].join(" "))
        })
        .collect()
}

/// A target name as [`target_expr`] compares it: lower case, without spaces, hyphens or
/// underscores ("MN Lup" and "MN-Lup" are one name).
fn target_key(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The value of a target-name column as [`target_key`] makes a name.
fn target_expr(column: Expr) -> Expr {
    use datafusion::functions::expr_fn::{lower, replace};
    let mut e = lower(column);
    for c in [" ", "-", "_"] {
        e = replace(e, lit(c), lit(""));
    }
    e
}

/// The position of the first row that meets `condition`, when there is one.
async fn lookup(
    engine: &Engine,
    id: &IdColumn,
    condition: Expr,
) -> Result<Option<(f64, f64)>, String> {
    let column = |n: &str| Expr::Column(Column::new_unqualified(n));
    let (schema, table) = id.table.split_once('.').unwrap_or(("", &id.table));
    let df = engine
        .ctx()
        .table(TableReference::partial(schema, table))
        .await
        .map_err(|e| e.to_string())?
        .filter(condition)
        .and_then(|d| d.select(vec![column(&id.ra), column(&id.dec)]))
        .map_err(|e| e.to_string())?;
    let req = QueryRequest {
        plan: df.into_unoptimized_plan(),
        maxrec: 1,
        format: Format::Tsv,
        info: TableInfo::default(),
        schema: None,
    };
    let mut stream = engine
        .stream(req, engine.sync_limit(), Lane::Auto, true)
        .await
        .map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    while let Some(chunk) = stream.chunks.next().await {
        text.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&text);
    // A header line, then the row.
    let Some(row) = text.lines().nth(1) else {
        return Ok(None);
    };
    let mut f = row.split('\t');
    match (
        f.next().map(str::parse::<f64>),
        f.next().map(str::parse::<f64>),
    ) {
        (Some(Ok(ra)), Some(Ok(dec))) => Ok(Some((ra, dec))),
        _ => Ok(None),
    }
}

/// The object in the served catalogs with this identifier.
async fn in_catalogs(engine: &Engine, name: &str) -> Result<Option<Value>, String> {
    let columns = id_columns(engine);
    for (prefix, value) in splits(name) {
        // Words must name the catalog: "- 5" names none.
        if prefix.is_empty() {
            continue;
        }
        for id in &columns {
            if !prefix.iter().all(|w| id.words.contains(w)) {
                continue;
            }
            // The value as the column's type; one that is not (not a number, too large) is
            // not this column's.
            let typed = match ScalarValue::try_from_string(value.clone(), &id.datatype) {
                Ok(v) if !v.is_null() => v,
                _ => continue,
            };
            let condition = Expr::Column(Column::new_unqualified(&id.column)).eq(lit(typed));
            if let Some(pos) = lookup(engine, id, condition).await? {
                return Ok(Some(found(name, id, pos, &value)));
            }
        }
    }
    // Target names ("W51", "MN Lup"), whole.
    let key = target_key(name);
    for id in columns.iter().filter(|c| c.target) {
        let condition =
            target_expr(Expr::Column(Column::new_unqualified(&id.column))).eq(lit(key.clone()));
        if let Some(pos) = lookup(engine, id, condition).await? {
            return Ok(Some(found(name, id, pos, name)));
        }
    }
    Ok(None)
}

/// The answer for `name`, found as `object` in the identifier column `id` at `(ra, dec)`.
fn found(name: &str, id: &IdColumn, (ra, dec): (f64, f64), object: &str) -> serde_json::Value {
    json!({
        "name": name,
        "ra": ra,
        "dec": dec,
        "source": id.table,
        "column": id.column,
        "object": object,
    })
}

fn answer(status: actix_web::http::StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

/// `GET /portal/api/resolve?name=…`: `{"name", "ra", "dec", "source", "object", …}`; 404
/// `{"error"}` for a name nothing knows, 400 for none or one longer than
/// [`NAME_MAX_CHARS`].
pub async fn resolve(engine: web::Data<Engine>, req: HttpRequest) -> HttpResponse {
    use actix_web::http::StatusCode;
    let p = Params::from_request(&req, &[]);
    let Some(raw) = p.get_nonempty("name") else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "give the object's name as ?name=…"}),
        );
    };
    if raw.chars().count() > NAME_MAX_CHARS {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("a name has at most {NAME_MAX_CHARS} characters")}),
        );
    }
    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(found) = bundled(&name) {
        return answer(StatusCode::OK, found);
    }
    match in_catalogs(&engine, &name).await {
        Ok(Some(found)) => answer(StatusCode::OK, found),
        Ok(None) => answer(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no object named “{name}” in the bundled list (NGC, IC, \
                   Messier, common names) or among the served catalogs' identifiers"),
                   "name": name}),
        ),
        Err(e) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": format!("the catalogs could not be searched now: {e}"), "name": name}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_spaces_and_leading_zeros() {
        assert_eq!(key("M45"), "m45");
        assert_eq!(key("m 45"), "m45");
        assert_eq!(key("M045"), "m45");
        assert_eq!(key("Messier 45"), "m45");
        assert_eq!(key("NGC0224"), "ngc224");
        assert_eq!(key("NGC 224"), "ngc224");
        assert_eq!(key("NGC 2000"), "ngc2000");
        assert_eq!(key("ESO056-115"), "eso56-115");
        assert_eq!(key("Andromeda  Galaxy"), "andromedagalaxy");
    }

    #[test]
    fn the_bundled_list_knows_messier_ngc_and_common_names() {
        let m45 = bundled("m 45").expect("M45");
        let pleiades = bundled("Pleiades").expect("Pleiades");
        assert_eq!(m45["ra"], pleiades["ra"]);
        let ra = m45["ra"].as_f64().unwrap_or(0.0);
        let dec = m45["dec"].as_f64().unwrap_or(0.0);
        // The Pleiades: 03h47m, +24°07'.
        assert!(
            (ra - 56.87).abs() < 0.05 && (dec - 24.1).abs() < 0.05,
            "{ra} {dec}"
        );
        let m31 = bundled("M31").expect("M31");
        assert_eq!(m31["object"], "NGC 224");
        assert_eq!(bundled("ngc224").expect("NGC 224")["ra"], m31["ra"]);
        assert_eq!(bundled("Andromeda Galaxy").expect("name")["ra"], m31["ra"]);
        assert!(bundled("M 999").is_none());
        assert!(bundled("").is_none());
    }

    #[test]
    fn target_names_ignore_case_spaces_and_hyphens() {
        assert_eq!(target_key("MN Lup"), "mnlup");
        assert_eq!(target_key("MN-Lup"), "mnlup");
        assert_eq!(target_key(" w_51 "), "w51");
    }

    #[test]
    fn names_split_into_catalog_words_and_a_value() {
        assert_eq!(
            splits("HIP 32349"),
            vec![(vec!["hip".to_string()], "32349".to_string())]
        );
        assert_eq!(
            splits("HIP32349"),
            vec![(vec!["hip".to_string()], "32349".to_string())]
        );
        let s = splits("Gaia DR3 42");
        assert!(s.contains(&(vec!["gaia".into(), "dr3".into()], "42".into())));
        assert!(splits("Pleiades").is_empty());
    }
}
