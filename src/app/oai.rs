//! `/oai`: the publishing registry, an OAI-PMH 2.0 repository (GET or a POSTed form) as the
//! IVOA Registry Interfaces describe it, which the Registry of Registries harvests. Its records
//! are VOResource 1.2 / VODataService 1.2 resources (`ivo_vor`, in `ri:Resource`) or unqualified
//! Dublin Core (`oai_dc`): the authority (`vg:Authority`), this registry (`vg:Registry`), the
//! TAP service with its tableset, one cone search service per table (as DaCHS publishes each
//! cone search as a service of its own: the Registry finds a catalog's cone search by the
//! catalog's description, and its one table), SIA 2.0 and 1.0, SSA, DataLink and VOSpace.
//! Every record is in the set `ivo_managed`.
//!
//! The table records (each cone search) and the SIA and SSA records carry their coverage
//! (VODataService 1.2 `coverage/spatial`, MOC-ASCII degraded to order 6 at most, and
//! `coverage/footprint` pointing at the full MOC under `/moc/`).
//!
//! Datestamps survive restarts: each record's is the latest of the software's and the
//! configuration's change (the executable's and the configuration file's modification times)
//! and of the ingest of the data it describes (a table's `vostok.toml`, written last at ingest;
//! for SIA, SSA and DataLink, `ivoa.obscore`'s; for TAP, the latest of every table's). So a
//! harvester's `from` gives the records changed since its last harvest.
//!
//! `ListIdentifiers` and `ListRecords` are paged (`[registry] page_size` records a page): a
//! resumption token carries the verb, the position, the latest datestamp of the records when it
//! was issued and the query (`metadataPrefix`, `from`, `until`, `set`) in plain text,
//! `v.position.latest.prefix.from.until.set`, and is checked as the arguments are; the server
//! keeps no state for it. A token issued before a record changed is refused
//! (`badResumptionToken`: the harvest starts again), as DaCHS does.

use std::fmt::Write;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use storage::Storage;
use uws::Jobs;
use votable::xml::escape;

use super::coverage::Coverages;

use crate::dali::capabilities::{self, Capability};
use crate::dali::{vosi, Service};
use crate::engine::Engine;
use crate::protocols::{datalink, scs, sia, ssa, tap, vospace};

/// `[registry]`: the curation metadata of every record.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// The organisation that publishes the resources (`curation/publisher`; the authority's
    /// managing organisation).
    pub publisher: String,
    /// Who made the data and services (`curation/creator`).
    pub creator: String,
    /// Whom to ask about them (`curation/contact`).
    pub contact_name: String,
    /// The contact's address; also the registry's `adminEmail`.
    pub contact_email: String,
    /// Subjects, preferably terms of the Unified Astronomy Thesaurus (`content/subject`).
    pub subjects: Vec<String>,
    /// Audiences (`content/contentLevel`: General, Elementary Education, Secondary Education,
    /// Community College, University, Research, Amateur, Informal Education).
    pub content_level: Vec<String>,
    /// What the data centre holds, for people (`content/description`).
    pub description: String,
    /// A page about the data centre; by default the server's portal (`content/referenceURL`).
    pub reference_url: Option<String>,
    /// Records in a page of `ListRecords` and `ListIdentifiers` (at least 1).
    pub page_size: usize,
    /// When the configuration file was last changed (set when it is read).
    #[serde(skip)]
    pub config_modified: Option<DateTime<Utc>>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            publisher: "vostok data centre".into(),
            creator: "vostok data centre".into(),
            contact_name: "vostok operator".into(),
            contact_email: "vo@vostok.example".into(),
            subjects: vec!["virtual-observatories".into()],
            content_level: vec!["Research".into()],
            description: "Astronomical catalogs, images and spectra served through the IVOA \
                          protocols by vostok."
                .into(),
            reference_url: None,
            page_size: 50,
            config_modified: None,
        }
    }
}

/// What `/oai` answers with: the curation metadata, the service's identity and the software's
/// datestamp.
pub struct Oai {
    config: RegistryConfig,
    service: Service,
    /// The datestamp of what the software and the configuration make of every record: the
    /// latest of the executable's and the configuration file's modification times (the
    /// server's start when neither is known).
    software: DateTime<Utc>,
}

/// A time to the second (OAI-PMH's finest granularity here).
fn second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

impl Oai {
    /// The registry of `service`.
    pub fn new(config: RegistryConfig, service: Service) -> Self {
        let exe = std::env::current_exe()
            .and_then(std::fs::metadata)
            .and_then(|m| m.modified())
            .ok()
            .map(DateTime::<Utc>::from);
        let now = Utc::now();
        let software = second(
            exe.into_iter()
                .chain(config.config_modified)
                .filter(|t| *t <= now)
                .max()
                .unwrap_or(now),
        );
        Oai {
            config,
            service,
            software,
        }
    }
}

/// What the records take from storage: each table's ingest time and coverage, and the
/// images' and spectra's.
#[derive(Default)]
pub struct Facts {
    /// By table name: when its `vostok.toml` was written, and its coverage as MOC-ASCII.
    tables: HashMap<String, (Option<DateTime<Utc>>, Option<String>)>,
    /// When `ivoa.obscore` was last rebuilt.
    products: Option<DateTime<Utc>>,
    /// The union of the collections' coverages of images (SIA), of spectra (SSA).
    images: Option<String>,
    spectra: Option<String>,
}

/// The order registry records give coverage at, at most (VODataService asks for at least 6
/// and a record of a few dozen kB at most; DaCHS writes 6).
pub const RECORD_MOC_ORDER: u8 = 6;

/// A coverage as a record carries it: MOC-ASCII at [`RECORD_MOC_ORDER`] at most; None when
/// it is empty.
fn record_moc(c: &catalogs::coverage::Coverage) -> Option<String> {
    if c.is_empty() {
        return None;
    }
    let c = if c.depth_max() > RECORD_MOC_ORDER {
        c.degraded(RECORD_MOC_ORDER)
    } else {
        c.clone()
    };
    catalogs::coverage::to_ascii(&c, Some(100))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The union of every collection's coverage of `products`, as a record carries it.
async fn union_of(
    storage: &Storage,
    products: crate::publish::coverage::Products,
) -> Option<String> {
    let mut union: Option<catalogs::coverage::Coverage> = None;
    match crate::publish::coverage::collection_coverages(storage, products).await {
        Ok(all) => {
            for (_, m) in all {
                union = Some(match union {
                    None => m,
                    Some(u) => u.or(&m),
                });
            }
        }
        Err(e) => tracing::warn!("collections' coverage: {e:#}"),
    }
    union.as_ref().and_then(record_moc)
}

/// When the object at `path` was last written.
async fn modified(storage: &Storage, path: &object_store::path::Path) -> Option<DateTime<Utc>> {
    use object_store::ObjectStoreExt;
    storage
        .store
        .head(path)
        .await
        .ok()
        .map(|m| second(m.last_modified))
}

impl Facts {
    /// Reads them: a `HEAD` per table, and each collection's `moc.fits`.
    pub async fn read(engine: &Engine, storage: &Storage, coverages: &Coverages) -> Facts {
        let mut facts = Facts::default();
        let snapshot = engine.snapshot();
        for (name, table) in snapshot.tables() {
            let meta = table
                .catalog()
                .root
                .clone()
                .join(catalogs::meta::METADATA_FILE);
            let stamp = modified(storage, &meta).await;
            let moc = match coverages.get(engine, storage, name).await {
                Some(Ok(c)) => record_moc(&c),
                _ => None,
            };
            facts.tables.insert(name.clone(), (stamp, moc));
        }
        let obscore = storage.path(&format!(
            "{}/{}",
            crate::publish::products::OBSCORE_ROOT,
            catalogs::meta::METADATA_FILE
        ));
        use crate::publish::coverage::Products;
        facts.products = modified(storage, &obscore).await;
        facts.images = union_of(storage, Products::Images).await;
        facts.spectra = union_of(storage, Products::Spectra).await;
        facts
    }
}

/// The routes: `/oai`, GET or POST.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oai", web::get().to(oai))
        .route("/oai", web::post().to(oai));
}

const ISO: &str = "%Y-%m-%dT%H:%M:%SZ";
const SET: &str = "ivo_managed";
const RI: &str = "http://www.ivoa.net/xml/RegistryInterface/v1.0";
const OAI_DC: &str = "http://www.openarchives.org/OAI/2.0/oai_dc/";

/// An OAI-PMH error: its code and message.
struct Error(&'static str, String);

fn bad_argument(msg: impl Into<String>) -> Error {
    Error("badArgument", msg.into())
}

/// One record: its identifier, datestamp and the metadata in both formats.
struct Record {
    id: String,
    stamp: DateTime<Utc>,
    resource: String,
    title: String,
    description: String,
    kind: &'static str,
}

/// The metadata formats: prefix, schema, namespace.
const FORMATS: [(&str, &str, &str); 2] = [
    (
        "ivo_vor",
        "http://www.ivoa.net/xml/RegistryInterface/RegistryInterface-v1.0.xsd",
        RI,
    ),
    (
        "oai_dc",
        "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
        OAI_DC,
    ),
];

/// The arguments of a request, each name at most once (a repeated one is `badArgument`).
struct Args(Vec<(String, String)>);

impl Args {
    fn parse(req: &HttpRequest, body: &[u8]) -> Result<Args, Error> {
        let mut pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(req.query_string().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        if req.method() == actix_web::http::Method::POST {
            pairs.extend(
                url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())),
            );
        }
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(j, _)| j == k) {
                return Err(if k == "verb" {
                    Error("badVerb", "the verb is given more than once".into())
                } else {
                    bad_argument(format!("the argument {k} is given more than once"))
                });
            }
        }
        Ok(Args(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `badArgument` unless every argument but the verb is one of `allowed` and every one of
    /// `required` is given.
    fn check(&self, allowed: &[&str], required: &[&str]) -> Result<(), Error> {
        if let Some((k, _)) = self
            .0
            .iter()
            .find(|(k, _)| k != "verb" && !allowed.contains(&k.as_str()))
        {
            return Err(bad_argument(format!("this verb takes no argument {k}")));
        }
        match required.iter().find(|r| self.get(r).is_none()) {
            Some(r) => Err(bad_argument(format!("this verb needs the argument {r}"))),
            None => Ok(()),
        }
    }
}

/// `from` or `until`: a day or a UTC second; the instant it starts (`from`) or ends (`until`),
/// and whether it was a day.
fn instant(text: &str, end: bool) -> Result<(DateTime<Utc>, bool), Error> {
    if let Ok(t) = NaiveDateTime::parse_from_str(text, ISO) {
        if text.len() == 20 {
            return Ok((t.and_utc(), false));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let t = if end {
            d.and_hms_opt(23, 59, 59)
        } else {
            d.and_hms_opt(0, 0, 0)
        };
        if let (Some(t), 10) = (t, text.len()) {
            return Ok((t.and_utc(), true));
        }
    }
    Err(bad_argument(format!(
        "{text} is not a date (YYYY-MM-DD) or a UTC time (YYYY-MM-DDThh:mm:ssZ)"
    )))
}

/// `POST` or `GET /oai`.
#[allow(clippy::too_many_arguments)]
async fn oai(
    oai: web::Data<Oai>,
    engine: web::Data<Engine>,
    tap_service: web::Data<tap::Tap>,
    jobs: web::Data<Jobs>,
    storage: web::Data<Storage>,
    coverages: web::Data<Coverages>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let root = oai.service.base_url(&req);
    let base = format!("{root}/oai");
    let args = Args::parse(&req, &body);
    let verb = args.as_ref().ok().and_then(|a| a.get("verb"));
    // Only the verbs that show records read what they take from storage.
    let needs_records = match verb {
        None | Some("ListSets") => false,
        Some("ListMetadataFormats") => args.as_ref().is_ok_and(|a| a.get("identifier").is_some()),
        Some(_) => true,
    };
    let facts = if needs_records {
        Facts::read(&engine, &storage, &coverages).await
    } else {
        Facts::default()
    };
    let answer = match &args {
        Err(e) => Err(Error(e.0, e.1.clone())),
        Ok(args) => {
            let records = || records(&oai, &engine, &tap_service, &jobs, &root, &facts);
            answer(&oai, args, &root, records)
        }
    };
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<OAI-PMH xmlns=\"http://www.openarchives.org/OAI/2.0/\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
xsi:schemaLocation=\"http://www.openarchives.org/OAI/2.0/ \
http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd\">\n\
  <responseDate>{}</responseDate>\n  <request",
        Utc::now().format(ISO)
    );
    // After badVerb or badArgument the request element carries the base URL only.
    let plain = matches!(&answer, Err(Error("badVerb" | "badArgument", _)));
    if let (false, Ok(args)) = (plain, &args) {
        for (k, v) in &args.0 {
            let _ = write!(out, " {}=\"{}\"", escape(k), escape(v));
        }
    }
    let _ = writeln!(out, ">{}</request>", escape(&base));
    match (answer, verb) {
        (Ok(body), Some(verb)) => {
            let _ = writeln!(out, "  <{verb}>\n{body}  </{verb}>");
        }
        (Err(Error(code, msg)), _) => {
            let _ = writeln!(out, "  <error code=\"{code}\">{}</error>", escape(&msg));
        }
        (Ok(_), None) => {
            out.push_str("  <error code=\"badVerb\">no verb</error>\n");
        }
    }
    out.push_str("</OAI-PMH>\n");
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(out)
}

/// The content of the verb's element, or the error.
fn answer(
    oai: &Oai,
    args: &Args,
    root: &str,
    records: impl Fn() -> Vec<Record>,
) -> Result<String, Error> {
    let mut out = String::new();
    match args.get("verb") {
        None => Err(Error("badVerb", "no verb".into())),
        Some("Identify") => {
            args.check(&[], &[])?;
            let earliest = records()
                .iter()
                .map(|r| r.stamp)
                .chain([oai.software])
                .min()
                .unwrap_or(oai.software);
            let stamp = earliest.format(ISO);
            let _ = write!(
                out,
                "    <repositoryName>{}</repositoryName>\n    <baseURL>{}/oai</baseURL>\n    \
<protocolVersion>2.0</protocolVersion>\n    <adminEmail>{}</adminEmail>\n    \
<earliestDatestamp>{stamp}</earliestDatestamp>\n    <deletedRecord>no</deletedRecord>\n    \
<granularity>YYYY-MM-DDThh:mm:ssZ</granularity>\n    <description>\n",
                escape(&oai.service.title),
                escape(root),
                escape(&oai.config.contact_email),
            );
            out.push_str(&registry(oai, root, oai.software).resource);
            out.push_str("    </description>\n");
            Ok(out)
        }
        Some("ListMetadataFormats") => {
            args.check(&["identifier"], &[])?;
            if let Some(id) = args.get("identifier") {
                find(&records(), id)?;
            }
            for (prefix, schema, ns) in FORMATS {
                let _ = writeln!(
                    out,
                    "    <metadataFormat><metadataPrefix>{prefix}</metadataPrefix>\
<schema>{schema}</schema><metadataNamespace>{ns}</metadataNamespace></metadataFormat>"
                );
            }
            Ok(out)
        }
        Some("ListSets") => {
            args.check(&["resumptionToken"], &[])?;
            no_token(args)?;
            let _ = writeln!(
                out,
                "    <set><setSpec>{SET}</setSpec><setName>the resources whose \
identifiers this registry manages</setName></set>"
            );
            Ok(out)
        }
        Some(verb @ ("ListIdentifiers" | "ListRecords")) => {
            let list = match args.get("resumptionToken") {
                Some(t) => {
                    args.check(&["resumptionToken"], &[])?;
                    List::from_token(verb, t)?
                }
                None => {
                    args.check(
                        &["metadataPrefix", "from", "until", "set"],
                        &["metadataPrefix"],
                    )?;
                    List {
                        verb: if verb == "ListRecords" { "r" } else { "i" },
                        prefix: format_of(args)?,
                        from: args.get("from").map(str::to_string),
                        until: args.get("until").map(str::to_string),
                        set: args.get("set").map(str::to_string),
                        position: 0,
                        latest: 0,
                    }
                }
            };
            let (from, until) = list.range()?;
            let all = records();
            let latest = all.iter().map(|r| r.stamp.timestamp()).max().unwrap_or(0);
            if list.position > 0 && list.latest != latest {
                return Err(Error(
                    "badResumptionToken",
                    "the records have changed since this token was issued: harvest again from \
                     the start"
                        .into(),
                ));
            }
            let matching: Vec<&Record> = if list.set.as_deref().is_none_or(|s| s == SET) {
                all.iter()
                    .filter(|r| {
                        from.is_none_or(|f| f <= r.stamp) && until.is_none_or(|u| r.stamp <= u)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            if matching.is_empty() && list.position == 0 {
                return Err(Error(
                    "noRecordsMatch",
                    "no record has a datestamp in that range or is in that set".into(),
                ));
            }
            if list.position >= matching.len() {
                return Err(Error(
                    "badResumptionToken",
                    "the list has changed since this token was issued: harvest again from the start"
                        .into(),
                ));
            }
            let size = oai.config.page_size.max(1);
            let end = (list.position + size).min(matching.len());
            for r in &matching[list.position..end] {
                if verb == "ListIdentifiers" {
                    header(&mut out, r);
                } else {
                    record(&mut out, oai, r, list.prefix);
                }
            }
            // A token for the next page; an empty one ends a list that was paged.
            if end < matching.len() || list.position > 0 {
                let next = if end < matching.len() {
                    List {
                        position: end,
                        latest,
                        ..list.clone()
                    }
                    .token()
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "    <resumptionToken completeListSize=\"{}\" cursor=\"{}\">{}</resumptionToken>",
                    matching.len(),
                    list.position,
                    escape(&next)
                );
            }
            Ok(out)
        }
        Some("GetRecord") => {
            args.check(
                &["identifier", "metadataPrefix"],
                &["identifier", "metadataPrefix"],
            )?;
            let prefix = format_of(args)?;
            let all = records();
            let r = find(&all, args.get("identifier").unwrap_or_default())?;
            record(&mut out, oai, r, prefix);
            Ok(out)
        }
        Some(other) => Err(Error("badVerb", format!("no verb {other}"))),
    }
}

/// `badResumptionToken` for a token given to `ListSets` (its one set is never paged).
fn no_token(args: &Args) -> Result<(), Error> {
    match args.get("resumptionToken") {
        Some(t) => Err(Error(
            "badResumptionToken",
            format!("{t} is not a resumption token of this list (it is never paged)"),
        )),
        None => Ok(()),
    }
}

/// `from` and `until`: the instants a list's datestamps lie between, when given.
type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A list request (`ListRecords` or `ListIdentifiers`) and where its next page starts: what a
/// resumption token carries.
#[derive(Clone, Debug, PartialEq)]
struct List {
    /// `r` (ListRecords) or `i` (ListIdentifiers).
    verb: &'static str,
    prefix: &'static str,
    from: Option<String>,
    until: Option<String>,
    set: Option<String>,
    /// Records already given.
    position: usize,
    /// The latest datestamp of the records (Unix seconds) when the token was issued.
    latest: i64,
}

impl List {
    /// The token: `verb.position.latest.prefix.from.until.set` (the arguments are checked
    /// before a token is made, and none of them can hold a `.`).
    fn token(&self) -> String {
        format!(
            "{}.{}.{}.{}.{}.{}.{}",
            self.verb,
            self.position,
            self.latest,
            self.prefix,
            self.from.as_deref().unwrap_or_default(),
            self.until.as_deref().unwrap_or_default(),
            self.set.as_deref().unwrap_or_default()
        )
    }

    /// The list a token given to `verb` continues; `badResumptionToken` for anything but a
    /// token this repository issued for that verb.
    fn from_token(verb: &str, token: &str) -> Result<List, Error> {
        let bad = || {
            Error(
                "badResumptionToken",
                format!("{token} is not a resumption token of this repository for {verb}"),
            )
        };
        let parts: Vec<&str> = token.split('.').collect();
        let [v, position, latest, prefix, from, until, set] = parts[..] else {
            return Err(bad());
        };
        let expected = if verb == "ListRecords" { "r" } else { "i" };
        if v != expected {
            return Err(bad());
        }
        let position: usize = position
            .parse()
            .ok()
            .filter(|p| *p > 0 && position.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?;
        let latest: i64 = latest
            .parse()
            .ok()
            .filter(|_| latest.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?;
        let prefix = FORMATS
            .iter()
            .map(|f| f.0)
            .find(|f| *f == prefix)
            .ok_or_else(bad)?;
        let opt = |t: &str| (!t.is_empty()).then(|| t.to_string());
        if !set.is_empty() && set != SET {
            return Err(bad());
        }
        let list = List {
            verb: expected,
            prefix,
            from: opt(from),
            until: opt(until),
            set: opt(set),
            position,
            latest,
        };
        list.range().map_err(|_| bad())?;
        Ok(list)
    }

    /// `from` and `until` as instants, checked.
    fn range(&self) -> Result<Range, Error> {
        let from = self
            .from
            .as_deref()
            .map(|t| instant(t, false))
            .transpose()?;
        let until = self
            .until
            .as_deref()
            .map(|t| instant(t, true))
            .transpose()?;
        if let (Some((f, fd)), Some((u, ud))) = (from, until) {
            if fd != ud {
                return Err(bad_argument("from and until differ in granularity"));
            }
            if f > u {
                return Err(bad_argument("from is later than until"));
            }
        }
        Ok((from.map(|f| f.0), until.map(|u| u.0)))
    }
}

/// The `metadataPrefix`, one this repository disseminates.
fn format_of(args: &Args) -> Result<&'static str, Error> {
    let p = args.get("metadataPrefix").unwrap_or_default();
    FORMATS
        .iter()
        .map(|f| f.0)
        .find(|f| *f == p)
        .ok_or_else(|| {
            Error(
                "cannotDisseminateFormat",
                format!("{p} is not a metadata format here (ivo_vor, oai_dc)"),
            )
        })
}

fn find<'a>(records: &'a [Record], id: &str) -> Result<&'a Record, Error> {
    records.iter().find(|r| r.id == id).ok_or_else(|| {
        Error(
            "idDoesNotExist",
            format!("{id} is not the identifier of a record here"),
        )
    })
}

fn header(out: &mut String, r: &Record) {
    let _ = writeln!(
        out,
        "    <header><identifier>{}</identifier><datestamp>{}</datestamp>\
<setSpec>{SET}</setSpec></header>",
        escape(&r.id),
        r.stamp.format(ISO)
    );
}

fn record(out: &mut String, oai: &Oai, r: &Record, prefix: &str) {
    out.push_str("   <record>\n");
    header(out, r);
    out.push_str("    <metadata>\n");
    if prefix == "oai_dc" {
        let c = &oai.config;
        let _ = writeln!(
            out,
            "<oai_dc:dc xmlns:oai_dc=\"{OAI_DC}\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n  \
<dc:title>{}</dc:title>\n  <dc:identifier>{}</dc:identifier>\n  <dc:creator>{}</dc:creator>\n  \
<dc:publisher>{}</dc:publisher>\n  <dc:description>{}</dc:description>\n  <dc:type>{}</dc:type>",
            escape(&r.title),
            escape(&r.id),
            escape(&c.creator),
            escape(&c.publisher),
            escape(&r.description),
            r.kind,
        );
        for s in &c.subjects {
            let _ = writeln!(out, "  <dc:subject>{}</dc:subject>", escape(s));
        }
        out.push_str("</oai_dc:dc>\n");
    } else {
        out.push_str(&r.resource);
    }
    out.push_str("    </metadata>\n   </record>\n");
}

/// What a resource record says beyond its curation: its type, identifier's path, title,
/// description, content type and datestamp.
struct About<'a> {
    stamp: DateTime<Utc>,
    /// When the data it serves were last ingested (`curation/date role="Updated"`).
    data_updated: Option<DateTime<Utc>>,
    xsi_type: &'static str,
    path: &'a str,
    title: String,
    description: String,
    kind: &'static str,
}

/// The `ri:Resource` of `about` with `capabilities` and then `tail` (the type's own elements).
fn resource(
    oai: &Oai,
    root: &str,
    about: About,
    capabilities: &[Capability],
    tail: &str,
) -> Record {
    let c = &oai.config;
    let auth = &oai.service.authority;
    let id = match about.path {
        "" => format!("ivo://{auth}"),
        p => format!("ivo://{auth}/{p}"),
    };
    let stamp = about.stamp.format(ISO);
    let mut out = format!(
        "<ri:Resource xmlns=\"\" xmlns:ri=\"{RI}\" \
xmlns:vr=\"http://www.ivoa.net/xml/VOResource/v1.0\" \
xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\" \
xmlns:vg=\"http://www.ivoa.net/xml/VORegistry/v1.0\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\""
    );
    for (prefix, uri) in [
        tap::capabilities::NAMESPACE,
        scs::NAMESPACE,
        sia::v1::NAMESPACE,
        ssa::NAMESPACE,
    ] {
        let _ = write!(out, " xmlns:{prefix}=\"{uri}\"");
    }
    let _ = write!(
        out,
        " xsi:type=\"{}\" created=\"{stamp}\" updated=\"{stamp}\" status=\"active\">\n  \
<title>{}</title>\n  <identifier>{}</identifier>\n  <curation>\n    \
<publisher>{}</publisher>\n    <creator><name>{}</name></creator>\n{}    \
<contact><name>{}</name><email>{}</email></contact>\n  </curation>\n  <content>\n",
        about.xsi_type,
        escape(&about.title),
        escape(&id),
        escape(&c.publisher),
        escape(&c.creator),
        about
            .data_updated
            .map(|t| format!("    <date role=\"Updated\">{}</date>\n", t.format(ISO)))
            .unwrap_or_default(),
        escape(&c.contact_name),
        escape(&c.contact_email),
    );
    for s in &c.subjects {
        let _ = writeln!(out, "    <subject>{}</subject>", escape(s));
    }
    let reference = c.reference_url.clone().unwrap_or(format!("{root}/"));
    let _ = writeln!(
        out,
        "    <description>{}</description>\n    <referenceURL>{}</referenceURL>\n    \
<type>{}</type>",
        escape(&about.description),
        escape(&reference),
        about.kind
    );
    for l in &c.content_level {
        let _ = writeln!(out, "    <contentLevel>{}</contentLevel>", escape(l));
    }
    out.push_str("  </content>\n");
    for cap in capabilities {
        cap.render(&mut out);
    }
    out.push_str(tail);
    out.push_str("</ri:Resource>\n");
    Record {
        id,
        stamp: about.stamp,
        resource: out,
        title: about.title,
        description: about.description,
        kind: about.kind,
    }
}

/// The registry's own record (`vg:Registry`), also Identify's description.
fn registry(oai: &Oai, root: &str, stamp: DateTime<Utc>) -> Record {
    let auth = &oai.service.authority;
    let harvest = format!(
        "  <capability standardID=\"ivo://ivoa.net/std/Registry\" xsi:type=\"vg:Harvest\">\n    \
<interface xsi:type=\"vg:OAIHTTP\" role=\"std\" version=\"1.0\">\n      \
<accessURL use=\"base\">{}/oai</accessURL>\n    </interface>\n    \
<maxRecords>0</maxRecords>\n  </capability>\n  <full>false</full>\n  \
<managedAuthority>{}</managedAuthority>\n",
        escape(root),
        escape(auth)
    );
    let about = About {
        stamp,
        data_updated: None,
        xsi_type: "vg:Registry",
        path: "registry",
        title: format!("{} publishing registry", oai.service.title),
        description: format!(
            "The OAI-PMH publishing registry of {}: the records of the authority {auth} and of \
             its services.",
            oai.service.title
        ),
        kind: "Registry",
    };
    resource(oai, root, about, &[], &harvest)
}

/// A record's `coverage`: the MOC-ASCII, and the full MOC at `footprint`.
fn coverage_xml(moc: &str, footprint: &str) -> String {
    format!(
        "  <coverage>\n    <spatial>{}</spatial>\n    \
<footprint ivo-id=\"ivo://ivoa.net/std/moc\">{}</footprint>\n  </coverage>\n",
        escape(moc),
        escape(footprint)
    )
}

/// Every record, the authority first.
fn records(
    oai: &Oai,
    engine: &Engine,
    tap_service: &tap::Tap,
    jobs: &Jobs,
    root: &str,
    facts: &Facts,
) -> Vec<Record> {
    let software = oai.software;
    let later = |t: Option<DateTime<Utc>>| t.map_or(software, |t| t.max(software));
    let title = &oai.service.title;
    let auth = &oai.service.authority;
    let service = |base: &str, main: Vec<Capability>, after: Vec<Capability>| {
        let mut caps = main;
        caps.extend(capabilities::vosi(base));
        caps.extend(after);
        caps
    };
    let mut out = Vec::new();
    let org = format!(
        "  <managingOrg>{}</managingOrg>\n",
        escape(&oai.config.publisher)
    );
    out.push(resource(
        oai,
        root,
        About {
            stamp: software,
            data_updated: None,
            xsi_type: "vg:Authority",
            path: "",
            title: format!("{title} authority"),
            description: format!(
                "The naming authority {auth}: the identifiers of the resources of {title}."
            ),
            kind: "Organisation",
        },
        &[],
        &org,
    ));
    out.push(registry(oai, root, software));
    let base = format!("{root}/tap");
    let (main, after) = tap::capabilities::capability_list(engine, tap_service, jobs, &base);
    let mut tableset = String::from("  <tableset>\n");
    let snapshot = engine.snapshot();
    vosi::schemas_xml(&mut tableset, snapshot.metadata(), false, "    ", None);
    tableset.push_str("  </tableset>\n");
    out.push(resource(
        oai,
        root,
        About {
            stamp: later(facts.tables.values().filter_map(|t| t.0).max()),
            data_updated: facts.tables.values().filter_map(|t| t.0).max(),
            xsi_type: "vs:CatalogService",
            path: "tap",
            title: format!("{title} TAP service"),
            description: format!(
                "Table Access Protocol service of {title}: ADQL queries on every table served. {}",
                oai.config.description
            ),
            kind: "Catalog",
        },
        &service(&base, main, after),
        &tableset,
    ));
    let hard_maxrec = engine.limits().hard_maxrec;
    for (name, table) in snapshot.tables() {
        let base = format!("{root}/scs/{name}");
        // The table is queried through TAP too: an auxiliary TAP capability (as DaCHS gives
        // every table it publishes), so that a registry search for TAP services over this
        // table's subject finds it.
        let tap_aux = Capability::new(
            "ivo://ivoa.net/std/TAP#aux",
            crate::dali::capabilities::Interface::param_http(format!("{root}/tap")).standard("1.1"),
        );
        let caps = service(
            &base,
            vec![scs::capability(hard_maxrec, table, &base)],
            vec![tap_aux],
        );
        let (stamp, moc) = facts.tables.get(name).cloned().unwrap_or_default();
        let mut tableset = moc
            .map(|m| coverage_xml(&m, &format!("{root}/moc/{name}")))
            .unwrap_or_default();
        tableset.push_str("  <tableset>\n");
        let only = |t: &crate::engine::tap_schema::TableDesc| &t.name == name;
        vosi::schemas_xml(
            &mut tableset,
            snapshot.metadata(),
            false,
            "    ",
            Some(&only),
        );
        tableset.push_str("  </tableset>\n");
        let described = snapshot
            .metadata()
            .tables()
            .find(|(_, t)| &t.name == name)
            .and_then(|(_, t)| t.description.clone())
            .unwrap_or_default();
        out.push(resource(
            oai,
            root,
            About {
                stamp: later(stamp),
                data_updated: stamp,
                xsi_type: "vs:CatalogService",
                path: &format!("scs/{name}"),
                title: format!("{name} cone search"),
                description: format!("Simple Cone Search on {name}. {described}")
                    .trim_end()
                    .to_string(),
                kind: "Catalog",
            },
            &caps,
            &tableset,
        ));
    }
    let simple: [(&str, &str, &'static str, &'static str, Vec<Capability>); 5] = [
        (
            "sia/v2",
            "SIA 2.0 image search",
            "vs:DataService",
            "Archive",
            vec![sia::capability2(&format!("{root}/sia/v2"))],
        ),
        (
            "sia/v1",
            "SIA 1.0 image search",
            "vs:DataService",
            "Archive",
            vec![sia::v1::capability1(hard_maxrec, &format!("{root}/sia/v1"))],
        ),
        (
            "ssa",
            "SSA 1.1 spectrum search",
            "vs:DataService",
            "Archive",
            vec![ssa::capability(engine.limits(), &format!("{root}/ssa"))],
        ),
        (
            "datalink",
            "DataLink 1.1 links to the images and spectra",
            "vs:DataService",
            "Archive",
            vec![datalink::capability(&format!("{root}/datalink"))],
        ),
        (
            "vospace",
            "VOSpace 2.1 user storage",
            "vr:Service",
            "Other",
            vospace::capability_list(&format!("{root}/vospace")),
        ),
    ];
    let products_stamp = &facts.products;
    for (path, what, xsi_type, kind, caps) in simple {
        let base = format!("{root}/{path}");
        // The image and spectrum services: the collections' coverage, ivoa.obscore's date.
        let products = matches!(path, "sia/v2" | "sia/v1" | "ssa" | "datalink");
        let moc = match path {
            "sia/v2" | "sia/v1" => facts.images.as_deref(),
            "ssa" => facts.spectra.as_deref(),
            _ => None,
        };
        let tail = moc
            .map(|m| coverage_xml(m, &format!("{root}/moc/ivoa.obscore")))
            .unwrap_or_default();
        out.push(resource(
            oai,
            root,
            About {
                stamp: if products {
                    later(*products_stamp)
                } else {
                    software
                },
                data_updated: if products { *products_stamp } else { None },
                xsi_type,
                path,
                title: format!("{title} {what}"),
                description: format!("{what} of {title}. {}", oai.config.description),
                kind,
            },
            &service(&base, caps, Vec::new()),
            &tail,
        ));
    }
    out
}
