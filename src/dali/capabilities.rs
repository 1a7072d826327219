//! VOSI capabilities declared as data: each protocol front says what it offers as
//! [`Capability`] values (standard, interfaces, parameters, the standard's own elements), and
//! [`render`] writes every capabilities document the same way, with the VOSI `capabilities`
//! and `availability` capabilities added. The elements follow VOResource 1.0 and
//! VODataService 1.1 (the conformance suite validates every document against the schemas).

use std::fmt::Write;

use actix_web::HttpResponse;
use votable::xml::escape;

/// An XML element of a capability (the standard's own elements: `maxRecords`, `testQuery`,
/// TAPRegExt's `language`, …): a name, attributes, and text or child elements.
#[derive(Debug, Clone)]
pub struct El {
    name: String,
    attrs: Vec<(String, String)>,
    text: Option<String>,
    children: Vec<El>,
}

impl El {
    /// An empty element.
    pub fn new(name: impl Into<String>) -> Self {
        El {
            name: name.into(),
            attrs: Vec::new(),
            text: None,
            children: Vec::new(),
        }
    }

    /// An element holding text.
    pub fn text(name: impl Into<String>, text: impl ToString) -> Self {
        let mut e = El::new(name);
        e.text = Some(text.to_string());
        e
    }

    /// The element with an attribute.
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attrs.push((name.into(), value.into()));
        self
    }

    /// The element with a child.
    pub fn child(mut self, c: El) -> Self {
        self.children.push(c);
        self
    }

    /// The element with children.
    pub fn children(mut self, cs: impl IntoIterator<Item = El>) -> Self {
        self.children.extend(cs);
        self
    }

    /// Writes the element at `indent`; `inline` writes children on the same line.
    fn render(&self, out: &mut String, indent: &str, inline: bool) {
        let _ = write!(out, "{indent}<{}", self.name);
        for (k, v) in &self.attrs {
            let _ = write!(out, " {k}=\"{}\"", escape(v));
        }
        match (&self.text, self.children.is_empty()) {
            (None, true) => out.push_str("/>"),
            (Some(t), true) => {
                let _ = write!(out, ">{}</{}>", escape(t), self.name);
            }
            (_, false) => {
                out.push('>');
                // Groups of text elements (a test query's position) stay on one line.
                let one_line = inline
                    || self
                        .children
                        .iter()
                        .all(|c| c.children.is_empty() && c.text.is_some());
                if one_line {
                    for c in &self.children {
                        c.render(out, "", true);
                    }
                } else {
                    out.push('\n');
                    let inner = format!("{indent}  ");
                    for c in &self.children {
                        c.render(out, &inner, false);
                        out.push('\n');
                    }
                    out.push_str(indent);
                }
                let _ = write!(out, "</{}>", self.name);
            }
        }
    }
}

/// A standard parameter of an interface (VODataService `param`).
#[derive(Debug, Clone)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// What it means.
    pub description: &'static str,
    /// Its unit.
    pub unit: Option<&'static str>,
    /// Its UCD.
    pub ucd: Option<&'static str>,
    /// Its VOTable data type.
    pub datatype: &'static str,
}

/// How an interface is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceType {
    /// `vs:ParamHTTP`: parameters in an HTTP GET or POST.
    ParamHttp,
    /// `vr:WebBrowser`: a page for people.
    WebBrowser,
}

/// An interface of a capability.
#[derive(Debug, Clone)]
pub struct Interface {
    /// Its type.
    pub kind: InterfaceType,
    /// Whether it is the standard's interface (`role="std"`).
    pub std: bool,
    /// The standard's version it implements.
    pub version: Option<&'static str>,
    /// Its URL.
    pub access_url: String,
    /// Whether the URL is used as it is (`full`) or as a base for parameters (`base`).
    pub full: bool,
    /// HTTP methods (`queryType`).
    pub query_types: Vec<&'static str>,
    /// MIME type of the responses (`resultType`).
    pub result_type: Option<&'static str>,
    /// Standard parameters.
    pub params: Vec<Param>,
}

impl Interface {
    /// A `vs:ParamHTTP` interface at `url`, used as a base for parameters.
    pub fn param_http(url: impl Into<String>) -> Self {
        Interface {
            kind: InterfaceType::ParamHttp,
            std: false,
            version: None,
            access_url: url.into(),
            full: false,
            query_types: Vec::new(),
            result_type: None,
            params: Vec::new(),
        }
    }

    /// The standard's interface (`role="std"`) of version `version`.
    pub fn standard(mut self, version: &'static str) -> Self {
        self.std = true;
        self.version = Some(version);
        self
    }

    /// The URL is used as it is (`use="full"`).
    pub fn full(mut self) -> Self {
        self.full = true;
        self
    }

    fn render(&self, out: &mut String) {
        let kind = match self.kind {
            InterfaceType::ParamHttp => "vs:ParamHTTP",
            InterfaceType::WebBrowser => "vr:WebBrowser",
        };
        let _ = write!(out, "    <interface xsi:type=\"{kind}\"");
        if self.std {
            out.push_str(" role=\"std\"");
        }
        if let Some(v) = self.version {
            let _ = write!(out, " version=\"{v}\"");
        }
        let _ = writeln!(
            out,
            ">\n      <accessURL use=\"{}\">{}</accessURL>",
            if self.full { "full" } else { "base" },
            escape(&self.access_url)
        );
        for q in &self.query_types {
            let _ = writeln!(out, "      <queryType>{q}</queryType>");
        }
        if let Some(r) = self.result_type {
            let _ = writeln!(out, "      <resultType>{}</resultType>", escape(r));
        }
        for p in &self.params {
            let _ = write!(
                out,
                "      <param std=\"true\"><name>{}</name><description>{}</description>",
                escape(p.name),
                escape(p.description)
            );
            if let Some(u) = p.unit {
                let _ = write!(out, "<unit>{}</unit>", escape(u));
            }
            if let Some(u) = p.ucd {
                let _ = write!(out, "<ucd>{}</ucd>", escape(u));
            }
            let _ = writeln!(out, "<dataType>{}</dataType></param>", escape(p.datatype));
        }
        out.push_str("    </interface>\n");
    }
}

/// One capability of a service.
#[derive(Debug, Clone)]
pub struct Capability {
    /// The standard's identifier (`standardID`).
    pub standard_id: String,
    /// The capability's schema type (`xsi:type`, e.g. `tr:TableAccess`), if the standard has one.
    pub xsi_type: Option<&'static str>,
    /// How it is reached.
    pub interfaces: Vec<Interface>,
    /// The standard's own elements, after the interfaces.
    pub elements: Vec<El>,
}

impl Capability {
    /// A capability of `standard_id` reached by `interface`.
    pub fn new(standard_id: impl Into<String>, interface: Interface) -> Self {
        Capability {
            standard_id: standard_id.into(),
            xsi_type: None,
            interfaces: vec![interface],
            elements: Vec::new(),
        }
    }

    /// The capability with its schema type.
    pub fn typed(mut self, xsi_type: &'static str) -> Self {
        self.xsi_type = Some(xsi_type);
        self
    }

    /// The capability with the standard's own elements.
    pub fn elements(mut self, els: impl IntoIterator<Item = El>) -> Self {
        self.elements.extend(els);
        self
    }

    /// Writes the `<capability>` element (VOResource's, unqualified; the prefixes `xsi`,
    /// `vr`, `vs` and those of its type must be declared around it).
    pub fn render(&self, out: &mut String) {
        let _ = write!(
            out,
            "  <capability standardID=\"{}\"",
            escape(&self.standard_id)
        );
        if let Some(t) = self.xsi_type {
            let _ = write!(out, " xsi:type=\"{t}\"");
        }
        out.push_str(">\n");
        for i in &self.interfaces {
            i.render(out);
        }
        for e in &self.elements {
            e.render(out, "    ", false);
            out.push('\n');
        }
        out.push_str("  </capability>\n");
    }
}

/// The VOSI `capabilities` and `availability` capabilities of a service rooted at `base`.
pub fn vosi(base: &str) -> Vec<Capability> {
    ["capabilities", "availability"]
        .into_iter()
        .map(|r| {
            Capability::new(
                format!("ivo://ivoa.net/std/VOSI#{r}"),
                Interface::param_http(format!("{base}/{r}")).full(),
            )
        })
        .collect()
}

/// The capabilities document of a service rooted at `base`: `capabilities`, then the VOSI
/// ones, then `after` (TAP lists its examples and tables there). `namespaces` are the
/// (prefix, URI) pairs the capabilities' types use beyond VOResource and VODataService.
pub fn render(
    namespaces: &[(&str, &str)],
    capabilities: &[Capability],
    base: &str,
    after: &[Capability],
) -> String {
    document(
        namespaces,
        capabilities.iter().chain(&vosi(base)).chain(after),
    )
}

/// A capabilities document of exactly `capabilities` (the server's index at `/capabilities`
/// lists those of every service, each with its own VOSI ones).
pub fn document<'a>(
    namespaces: &[(&str, &str)],
    capabilities: impl IntoIterator<Item = &'a Capability>,
) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<vosi:capabilities xmlns:vosi=\"http://www.ivoa.net/xml/VOSICapabilities/v1.0\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
xmlns:vr=\"http://www.ivoa.net/xml/VOResource/v1.0\" \
xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\"",
    );
    for (prefix, uri) in namespaces {
        let _ = write!(out, " xmlns:{prefix}=\"{uri}\"");
    }
    out.push_str(">\n");
    for c in capabilities {
        c.render(&mut out);
    }
    out.push_str("</vosi:capabilities>\n");
    out
}

/// [`render`] as an HTTP response.
pub fn respond(
    namespaces: &[(&str, &str)],
    capabilities: &[Capability],
    base: &str,
    after: &[Capability],
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(render(namespaces, capabilities, base, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capability_renders_its_interfaces_params_and_elements() {
        let mut i = Interface::param_http("http://h/scs/a.b?").standard("1.03");
        i.query_types = vec!["GET"];
        i.result_type = Some("application/x-votable+xml");
        i.params = vec![Param {
            name: "RA",
            description: "Right ascension & more",
            unit: Some("deg"),
            ucd: Some("pos.eq.ra"),
            datatype: "double",
        }];
        let c = Capability::new("ivo://ivoa.net/std/ConeSearch", i)
            .typed("cs:ConeSearch")
            .elements([
                El::text("maxSR", 180),
                El::new("testQuery")
                    .child(El::text("ra", 1.5))
                    .child(El::text("dec", -2)),
                El::new("uploadMethod").attr("ivo-id", "ivo://x#y"),
            ]);
        let doc = render(
            &[("cs", "http://www.ivoa.net/xml/ConeSearch/v1.0")],
            &[c],
            "http://h/scs/a.b",
            &[],
        );
        assert!(
            doc.contains("xmlns:cs=\"http://www.ivoa.net/xml/ConeSearch/v1.0\">\n"),
            "{doc}"
        );
        assert!(doc.contains(
            "  <capability standardID=\"ivo://ivoa.net/std/ConeSearch\" xsi:type=\"cs:ConeSearch\">\n    \
<interface xsi:type=\"vs:ParamHTTP\" role=\"std\" version=\"1.03\">\n      \
<accessURL use=\"base\">http://h/scs/a.b?</accessURL>\n      <queryType>GET</queryType>\n"
        ), "{doc}");
        assert!(doc.contains("<param std=\"true\"><name>RA</name><description>Right ascension &amp; more</description><unit>deg</unit><ucd>pos.eq.ra</ucd><dataType>double</dataType></param>"), "{doc}");
        assert!(doc.contains("    <maxSR>180</maxSR>\n    <testQuery><ra>1.5</ra><dec>-2</dec></testQuery>\n    <uploadMethod ivo-id=\"ivo://x#y\"/>\n"), "{doc}");
        assert!(doc.contains("<accessURL use=\"full\">http://h/scs/a.b/availability</accessURL>"));
        assert!(doc.ends_with("</vosi:capabilities>\n"));
    }
}
