//! VOSI documents: availability and tables (VODataService); capabilities are in
//! [`super::capabilities`].

use std::fmt::Write;

use votable::xml::escape as esc;

use crate::engine::tap_schema::{TableDesc, TapMetadata};

/// The availability response every service shares.
pub async fn availability_response() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(availability())
}

/// The VOSI availability document.
pub fn availability() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<vosi:availability xmlns:vosi=\"http://www.ivoa.net/xml/VOSIAvailability/v1.0\">\n  \
<vosi:available>true</vosi:available>\n  <vosi:note>vostok is accepting queries</vosi:note>\n</vosi:availability>\n"
        .to_string()
}

fn opt_el(out: &mut String, indent: &str, name: &str, value: &Option<String>) {
    if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
        let _ = writeln!(out, "{indent}<{name}>{}</{name}>", esc(v));
    }
}

/// One `<table>` element (with columns unless `min`).
fn table_xml(out: &mut String, t: &TableDesc, min: bool, indent: &str, element: &str, ns: &str) {
    let _ = writeln!(
        out,
        "{indent}<{element} type=\"{}\"{ns}>",
        if t.table_type == "view" {
            "view"
        } else {
            "output"
        }
    );
    let _ = writeln!(out, "{indent}  <name>{}</name>", esc(&t.name));
    opt_el(out, &format!("{indent}  "), "description", &t.description);
    if let Some(n) = t.rows {
        let _ = writeln!(out, "{indent}  <nrows>{n}</nrows>");
    }
    if !min {
        for c in &t.columns {
            let i2 = format!("{indent}    ");
            let _ = writeln!(out, "{indent}  <column>");
            let _ = writeln!(out, "{i2}<name>{}</name>", esc(&c.name));
            opt_el(out, &i2, "description", &c.description);
            opt_el(out, &i2, "unit", &c.unit);
            opt_el(out, &i2, "ucd", &c.ucd);
            opt_el(out, &i2, "utype", &c.utype);
            // VODataService 1.1 has no <xtype> element: the xtype is the dataType's
            // extendedType attribute.
            let mut arraysize = c
                .arraysize
                .as_ref()
                .map(|a| format!(" arraysize=\"{}\"", esc(a)))
                .unwrap_or_default();
            if let Some(x) = c.xtype.as_ref().filter(|x| !x.is_empty()) {
                arraysize.push_str(&format!(" extendedType=\"{}\"", esc(x)));
            }
            let _ = writeln!(
                out,
                "{i2}<dataType xsi:type=\"vs:VOTableType\"{arraysize}>{}</dataType>",
                c.datatype
            );
            if c.indexed {
                let _ = writeln!(out, "{i2}<flag>indexed</flag>");
            }
            if c.principal {
                let _ = writeln!(out, "{i2}<flag>principal</flag>");
            }
            if c.std {
                let _ = writeln!(out, "{i2}<flag>std</flag>");
            }
            let _ = writeln!(out, "{indent}  </column>");
        }
        for k in &t.foreign_keys {
            let _ = writeln!(out, "{indent}  <foreignKey>");
            let _ = writeln!(
                out,
                "{indent}    <targetTable>{}</targetTable>",
                esc(&k.target_table)
            );
            for (from, to) in &k.columns {
                let _ = writeln!(
                    out,
                    "{indent}    <fkColumn><fromColumn>{}</fromColumn><targetColumn>{}</targetColumn></fkColumn>",
                    esc(from),
                    esc(to)
                );
            }
            let _ = writeln!(out, "{indent}  </foreignKey>");
        }
    }
    let _ = writeln!(out, "{indent}</{element}>");
}

const TABLES_NS: &str = "xmlns:vosi=\"http://www.ivoa.net/xml/VOSITables/v1.0\" \
xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";

/// The VOSI tableset document; `min` leaves the columns out (`detail=min`).
pub fn tableset(meta: &TapMetadata, min: bool) -> String {
    let mut out =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<vosi:tableset {TABLES_NS}>\n");
    schemas_xml(&mut out, meta, min, "  ", None);
    out.push_str("</vosi:tableset>\n");
    out
}

/// The `<schema>` elements of a tableset (VODataService `vs:TableSet`) at `indent`, each with
/// its tables, or only those `keep` keeps (a schema then left without a table is left out).
/// The prefixes `vs` and `xsi` must be declared around it.
pub fn schemas_xml(
    out: &mut String,
    meta: &TapMetadata,
    min: bool,
    indent: &str,
    keep: Option<&dyn Fn(&TableDesc) -> bool>,
) {
    let inner = format!("{indent}  ");
    let kept = |t: &TableDesc| keep.is_none_or(|k| k(t));
    for s in &meta.schemas {
        if keep.is_some() && !s.tables.iter().any(kept) {
            continue;
        }
        let _ = writeln!(out, "{indent}<schema>");
        let _ = writeln!(out, "{inner}<name>{}</name>", esc(&s.name));
        opt_el(out, &inner, "description", &s.description);
        for t in s.tables.iter().filter(|t| kept(t)) {
            table_xml(out, t, min, &inner, "table", "");
        }
        let _ = writeln!(out, "{indent}</schema>");
    }
}

/// The VOSI document of one table.
pub fn table_document(t: &TableDesc) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    table_xml(
        &mut out,
        t,
        false,
        "",
        "vosi:table",
        &format!(" {TABLES_NS}"),
    );
    out
}

/// `GET …/tables[?detail=min]`: the VOSI tableset of the engine's tables.
pub async fn tables(
    engine: actix_web::web::Data<crate::engine::Engine>,
    req: actix_web::HttpRequest,
) -> actix_web::HttpResponse {
    let p = super::Params::from_request(&req, &[]);
    let min = match p.get_nonempty("DETAIL") {
        None | Some("max") => false,
        Some("min") => true,
        Some(other) => {
            return actix_web::HttpResponse::BadRequest()
                .content_type("text/plain; charset=utf-8")
                .body(format!("detail={other}: use detail=min or detail=max"))
        }
    };
    actix_web::HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(tableset(engine.snapshot().metadata(), min))
}

/// `GET …/tables/{schema.table}`: the VOSI document of one table.
pub async fn table(
    engine: actix_web::web::Data<crate::engine::Engine>,
    path: actix_web::web::Path<String>,
) -> actix_web::HttpResponse {
    let name = path.into_inner();
    match engine
        .snapshot()
        .metadata()
        .tables()
        .find(|(_, t)| t.name.eq_ignore_ascii_case(&name))
    {
        Some((_, t)) => actix_web::HttpResponse::Ok()
            .content_type("text/xml; charset=utf-8")
            .body(table_document(t)),
        None => actix_web::HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no table '{name}' in this service")),
    }
}
