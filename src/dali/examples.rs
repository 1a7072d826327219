//! DALI 1.1 §2.3 examples: worked queries declared as data ([`Example`]) and rendered once
//! as XHTML with RDFa ([`document`]), as TOPCAT lists them in its TAP window.

use votable::xml::escape as esc;

/// One example: id, title, what it shows, the ADQL, the tables it reads.
pub struct Example {
    /// Fragment identifier.
    pub id: &'static str,
    /// Title.
    pub name: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// The ADQL.
    pub query: &'static str,
    /// The tables it reads.
    pub tables: &'static [&'static str],
}

/// The examples document.
pub fn document(title: &str, examples: &[&Example]) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML+RDFa 1.1//EN\" \"http://www.w3.org/MarkUp/DTD/xhtml-rdfa-2.dtd\">\n\
<html xmlns=\"http://www.w3.org/1999/xhtml\" version=\"XHTML+RDFa 1.1\" xml:lang=\"en\">\n\
<head>\n<title>{title}</title>\n\
<meta http-equiv=\"Content-Type\" content=\"application/xhtml+xml; charset=UTF-8\"/>\n</head>\n\
<body vocab=\"http://www.ivoa.net/rdf/examples#\">\n\
<h1>Example queries</h1>\n\
<p>Worked ADQL queries on the catalogs of this service (DALI examples: TOPCAT lists them in its TAP window).</p>\n",
        title = esc(title),
    );
    for e in examples {
        out.push_str(&format!(
            "<div typeof=\"example\" id=\"{id}\" resource=\"#{id}\">\n\
  <h2 property=\"name\">{name}</h2>\n\
  <p>{desc}</p>\n\
  <pre property=\"query\">{query}</pre>\n",
            id = esc(e.id),
            name = esc(e.name),
            desc = esc(e.description),
            query = esc(e.query),
        ));
        for t in e.tables {
            out.push_str(&format!(
                "  <p>Table: <span property=\"table\">{}</span></p>\n",
                esc(t)
            ));
        }
        out.push_str("</div>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}
