//! VOSI documents: capabilities, availability and tables (VODataService).

use std::fmt::Write;

use crate::tap_schema::{TableDesc, TapMetadata};

/// Escapes text for XML content and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The opening of a VOSI capabilities document.
pub fn capabilities_open(extra_ns: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<vosi:capabilities xmlns:vosi=\"http://www.ivoa.net/xml/VOSICapabilities/v1.0\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
xmlns:vr=\"http://www.ivoa.net/xml/VOResource/v1.0\" \
xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\"{extra_ns}>\n"
    )
}

/// The three VOSI capabilities of a service rooted at `base`.
pub fn vosi_capabilities(base: &str) -> String {
    let mut out = String::new();
    for (id, path) in [
        ("capabilities", "capabilities"),
        ("availability", "availability"),
    ] {
        let _ = write!(
            out,
            "  <capability standardID=\"ivo://ivoa.net/std/VOSI#{id}\">\n    <interface xsi:type=\"vs:ParamHTTP\">\n      <accessURL use=\"full\">{}/{path}</accessURL>\n    </interface>\n  </capability>\n",
            esc(base)
        );
    }
    out
}

/// A complete capabilities response: `capability` (one or more `<capability>` elements) and the
/// VOSI capabilities of the service rooted at `base`.
pub fn capabilities_response(
    extra_ns: &str,
    capability: &str,
    base: &str,
) -> actix_web::HttpResponse {
    let mut doc = capabilities_open(extra_ns);
    doc.push_str(capability);
    doc.push_str(&vosi_capabilities(base));
    doc.push_str("</vosi:capabilities>\n");
    actix_web::HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(doc)
}

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
    for s in &meta.schemas {
        out.push_str("  <schema>\n");
        let _ = writeln!(out, "    <name>{}</name>", esc(&s.name));
        opt_el(&mut out, "    ", "description", &s.description);
        for t in &s.tables {
            table_xml(&mut out, t, min, "    ", "table", "");
        }
        out.push_str("  </schema>\n");
    }
    out.push_str("</vosi:tableset>\n");
    out
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
