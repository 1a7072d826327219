//! TLS to PostgreSQL, with libpq's settings: operators copy connection strings from libpq
//! (`psql`, `pg_dump`), so `sslmode`, `sslrootcert`, `sslcert` and `sslkey` mean here what
//! they mean there. tokio-postgres knows only `sslmode` disable/prefer/require, so these four
//! are taken out of the connection string (a `postgres://` URL or libpq's key-value form),
//! and the rest is handed to tokio-postgres as it was written.
//!
//! | sslmode | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (no sslmode, no root certificate named) | when the server offers it | not checked |
//! | `require` | always | not checked; with a root certificate named, as `verify-ca` (libpq) |
//! | `verify-ca` | always | signed by a trusted authority (any host name) |
//! | `verify-full` (no sslmode, a root certificate named) | always | signed by a trusted authority, for the host connected to |
//!
//! The trusted authorities: the PEM file `sslrootcert` names, else `[metadata] ca_file`, else
//! the system's (`sslrootcert=system` asks for them explicitly, and for `verify-full`, as in
//! libpq). A Unix socket carries no TLS whatever the mode (as in libpq).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` (without `allow`, which tries an unencrypted connection first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err("sslmode=allow is not supported (it tries an unencrypted \
                            connection first): use prefer, or disable"
                    .into())
            }
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, \
                     verify-full"
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The trusted certificate authorities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The certificates in a PEM file, and the setting that named it.
    File(PathBuf, &'static str),
    /// The system's (rustls-native-certs: `SSL_CERT_FILE`, `SSL_CERT_DIR`, the OS store).
    System,
}

impl fmt::Display for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Roots::File(p, from) => {
                write!(f, "the certificate authorities in {} ({from})", p.display())
            }
            Roots::System => f.write_str("the system's certificate authorities"),
        }
    }
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// No TLS at all.
    Off,
    /// Encrypted (or, under `prefer`, maybe not), the server not authenticated.
    Unverified,
    /// The chain up to a trusted authority, any host name.
    Chain(Roots),
    /// The chain and the host name.
    Full(Roots),
}

/// A PostgreSQL database to connect to: tokio-postgres's configuration, with what libpq's
/// TLS settings asked for.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    mode: SslMode,
    mode_given: bool,
    check: Check,
    client_cert: Option<(PathBuf, PathBuf)>,
    /// Only Unix sockets: TLS does not apply.
    unix: bool,
    shown: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.shown)
            .field("mode", &self.mode)
            .field("check", &self.check)
            .finish()
    }
}

/// The settings taken out of the connection string.
#[derive(Default)]
struct TlsKeys {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
}

impl TlsKeys {
    /// Takes `key` when it is one of ours.
    fn take(&mut self, key: &str, value: String) -> bool {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            _ => return false,
        };
        *slot = Some(value);
        true
    }
}

/// Keys whose values are secrets, in either form.
const SECRET_KEYS: [&str; 2] = ["password", "sslpassword"];

/// Which form a connection string is in.
enum Form {
    Url(url::Url),
    KeyValue(Vec<Pair>),
}

fn form(conn: &str) -> Result<Form, String> {
    match url::Url::parse(conn) {
        Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => Ok(Form::Url(u)),
        Ok(u) => Err(format!(
            "`{}:` is not a database vostok can use (postgres://…)",
            u.scheme()
        )),
        Err(url_error) => match key_values(conn) {
            Ok(pairs) if !pairs.is_empty() => Ok(Form::KeyValue(pairs)),
            Ok(_) => Err("empty connection string".into()),
            Err(_) if conn.contains("://") => Err(url_error.to_string()),
            Err(e) => Err(format!(
                "neither a postgres:// URL nor libpq's key=value form: {e}"
            )),
        },
    }
}

/// One `key=value` of libpq's key-value form: the key, the value (quotes and backslashes
/// undone), and where the pair is in the text.
struct Pair {
    key: String,
    value: String,
    span: Range<usize>,
    value_span: Range<usize>,
}

/// libpq's key-value form: `key = value` pairs apart by white space; a value in single
/// quotes may hold white space; a backslash takes the next character as it is.
fn key_values(text: &str) -> Result<Vec<Pair>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.char_indices().peekable();
    let skip_space = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_space(&mut chars);
        let Some(&(start, _)) = chars.peek() else {
            return Ok(pairs);
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        skip_space(&mut chars);
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(format!("`=` missing after `{key}`"));
        }
        skip_space(&mut chars);
        let value_start = chars.peek().map_or(text.len(), |(i, _)| *i);
        let mut value = String::new();
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut closed = !quoted;
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, next)) => value.push(next),
                    None => return Err(format!("a lone backslash ends the value of `{key}`")),
                },
                '\'' if quoted => {
                    closed = true;
                    break;
                }
                c if !quoted && c.is_whitespace() => break,
                c => value.push(c),
            }
        }
        if !closed {
            return Err(format!("the quoted value of `{key}` is not closed"));
        }
        let end = chars.peek().map_or(text.len(), |(i, _)| *i);
        let value_end = text[..end].trim_end().len();
        pairs.push(Pair {
            key,
            value,
            span: start..end,
            value_span: value_start..value_end,
        });
    }
}

/// The connection string with its passwords as `***`, for messages and logs.
pub fn redact(conn: &str) -> String {
    match form(conn) {
        Ok(Form::Url(mut u)) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if let Some(q) = u.query() {
                let q: Vec<String> = q
                    .split('&')
                    .map(|seg| match query_pair(seg) {
                        Some((k, _)) if SECRET_KEYS.contains(&k.as_str()) => format!("{k}=***"),
                        _ => seg.to_string(),
                    })
                    .collect();
                u.set_query(Some(&q.join("&")));
            }
            u.to_string()
        }
        Ok(Form::KeyValue(pairs)) => {
            let mut out = String::new();
            let mut at = 0;
            for p in pairs
                .iter()
                .filter(|p| SECRET_KEYS.contains(&p.key.as_str()))
            {
                out.push_str(&conn[at..p.value_span.start]);
                out.push_str("***");
                at = p.value_span.end;
            }
            out.push_str(&conn[at..]);
            out.trim().to_string()
        }
        Err(_) => "(an unreadable connection string)".to_string(),
    }
}

/// One `key=value` of a URL's query, percent-decoded (as libpq and tokio-postgres decode it:
/// `+` stays `+`).
fn query_pair(segment: &str) -> Option<(String, String)> {
    let (k, v) = segment.split_once('=').unwrap_or((segment, ""));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .ok()
    };
    Some((decode(k)?, decode(v)?))
}

impl Target {
    /// Reads a connection string (`postgres://…` or libpq's `host=… dbname=…`), with
    /// `ca_file` the trusted authorities when the string names none (`sslrootcert`).
    /// Reads no file: [`Target::connector`] does.
    pub fn parse(conn: &str, ca_file: Option<&Path>) -> Result<Target, String> {
        let shown = redact(conn);
        let mut keys = TlsKeys::default();
        let rest = match form(conn)? {
            Form::Url(mut u) => {
                if let Some(q) = u.query() {
                    let mut kept = Vec::new();
                    for seg in q.split('&').filter(|s| !s.is_empty()) {
                        let (k, v) = query_pair(seg)
                            .ok_or_else(|| format!("{shown}: a parameter is not UTF-8"))?;
                        if !keys.take(&k, v) {
                            kept.push(seg);
                        }
                    }
                    let kept = kept.join("&");
                    u.set_query(Some(&kept).filter(|q| !q.is_empty()).map(|q| q.as_str()));
                }
                u.to_string()
            }
            Form::KeyValue(pairs) => {
                let mut kept = Vec::new();
                for p in pairs {
                    if !keys.take(&p.key, p.value) {
                        kept.push(&conn[p.span]);
                    }
                }
                kept.join(" ")
            }
        };
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
            let mut msg = e.to_string();
            if let Some(cause) = std::error::Error::source(&e) {
                msg = format!("{msg}: {cause}");
            }
            format!("{shown}: {msg}")
        })?;
        let given = keys
            .sslmode
            .as_deref()
            .map(SslMode::parse)
            .transpose()
            .map_err(|e| format!("{shown}: {e}"))?;
        let roots = match keys.sslrootcert.as_deref() {
            Some("system") => Some(Roots::System),
            Some("") => None,
            Some(p) => Some(Roots::File(PathBuf::from(p), "sslrootcert")),
            None => ca_file.map(|p| Roots::File(p.to_path_buf(), "[metadata] ca_file")),
        };
        // Without sslmode: libpq's prefer, unless trusted authorities are named, which only
        // a check of the server's certificate uses.
        let mode = given.unwrap_or(if roots.is_some() {
            SslMode::VerifyFull
        } else {
            SslMode::Prefer
        });
        if roots == Some(Roots::System) && mode != SslMode::VerifyFull {
            return Err(format!(
                "{shown}: sslrootcert=system needs sslmode=verify-full (as in libpq: any \
                 certificate the system trusts would otherwise do, for any host)"
            ));
        }
        let check = match (mode, roots) {
            (SslMode::Disable, _) => Check::Off,
            (SslMode::Prefer, _) | (SslMode::Require, None) => Check::Unverified,
            (SslMode::Require | SslMode::VerifyCa, r) => Check::Chain(r.unwrap_or(Roots::System)),
            (SslMode::VerifyFull, r) => Check::Full(r.unwrap_or(Roots::System)),
        };
        let client_cert = match (keys.sslcert, keys.sslkey) {
            (None, None) => None,
            (Some(c), Some(k)) if !c.is_empty() && !k.is_empty() => {
                Some((PathBuf::from(c), PathBuf::from(k)))
            }
            _ => {
                return Err(format!(
                    "{shown}: a client certificate needs both sslcert and sslkey"
                ))
            }
        };
        if config.get_hosts().is_empty() {
            // hostaddr alone: the address is the name the certificate is checked against
            // (tokio-postgres does no TLS without a host name).
            let addrs: Vec<String> = config
                .get_hostaddrs()
                .iter()
                .map(|a| a.to_string())
                .collect();
            for a in addrs {
                config.host(&a);
            }
        }
        let hosts = config.get_hosts();
        let unix = !hosts.is_empty() && hosts.iter().all(|h| !matches!(h, Host::Tcp(_)));
        config.ssl_mode(match (&check, unix) {
            (Check::Off, _) | (_, true) => PgSslMode::Disable,
            (Check::Unverified, _) if mode == SslMode::Prefer => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        });
        Ok(Target {
            config,
            mode,
            mode_given: given.is_some(),
            check,
            client_cert,
            unix,
            shown,
        })
    }

    /// tokio-postgres's configuration (its sslmode: disable, prefer or require).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The connection string without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The sslmode in effect.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// How the server's certificate is checked.
    pub fn check(&self) -> &Check {
        &self.check
    }

    /// The TLS in effect, in words.
    pub fn describe(&self) -> String {
        let mode = if self.mode_given {
            format!("sslmode={}", self.mode.as_str())
        } else {
            format!("sslmode={} (no sslmode given)", self.mode.as_str())
        };
        if self.unix {
            return format!("no TLS: a Unix socket ({mode} does not apply)");
        }
        let mut s = match &self.check {
            Check::Off => format!("{mode}: no TLS, the records and the password travel in clear"),
            Check::Unverified if self.mode == SslMode::Prefer => format!(
                "{mode}: TLS when the server offers it, else in clear; the server is not \
                 authenticated"
            ),
            Check::Unverified => format!(
                "{mode}: TLS; the server is not authenticated (no certificate authority named)"
            ),
            Check::Chain(r) => format!(
                "{mode}: TLS; the server's certificate must be signed by {r} (its host name is \
                 not checked)"
            ),
            Check::Full(r) => format!(
                "{mode}: TLS; the server's certificate must be signed by {r} and name the host"
            ),
        };
        if let Some((cert, _)) = &self.client_cert {
            if self.check != Check::Off {
                s.push_str(&format!("; client certificate {}", cert.display()));
            }
        }
        s
    }

    /// A warning for the log when the server is not authenticated: always under `require`
    /// (as libpq's documentation warns), and under `disable` and `prefer` for a host other
    /// than this machine.
    pub fn warning(&self) -> Option<String> {
        if self.unix {
            return None;
        }
        let remote = self.config.get_hosts().iter().any(|h| match h {
            Host::Tcp(name) => {
                name != "localhost"
                    && !name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            _ => false,
        });
        let warn = match self.check {
            Check::Unverified => self.mode == SslMode::Require || remote,
            Check::Off => remote,
            _ => false,
        };
        warn.then(|| {
            format!(
                "PostgreSQL {}: {}. To authenticate the server: sslmode=verify-full with the \
                 database's certificate authority (sslrootcert or [metadata] ca_file)",
                self.shown,
                self.describe()
            )
        })
    }

    /// The TLS connector: reads the trusted authorities and the client certificate.
    pub fn connector(&self) -> Result<Connector, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &self.check {
            // Never used (tokio-postgres is told not to ask for TLS), but a connector is.
            Check::Off => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider))),
            Check::Unverified => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider))),
            Check::Chain(r) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly {
                    roots: Arc::new(root_store(r)?),
                    provider,
                })),
            Check::Full(r) => builder.with_root_certificates(root_store(r)?),
        };
        let config = match &self.client_cert {
            Some((cert, key)) if self.check != Check::Off && !self.unix => {
                let certs = read_pem(cert, "sslcert", |b| {
                    CertificateDer::pem_slice_iter(b).collect::<Result<Vec<_>, _>>()
                })?;
                if certs.is_empty() {
                    return Err(format!(
                        "sslcert {}: no certificate in it (PEM)",
                        cert.display()
                    ));
                }
                let key_der = read_pem(key, "sslkey", PrivateKeyDer::from_pem_slice)?;
                builder.with_client_auth_cert(certs, key_der).map_err(|e| {
                    format!(
                        "sslcert {} and sslkey {}: {e}",
                        cert.display(),
                        key.display()
                    )
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Connector {
            inner: MakeRustlsConnect::new(config),
            names_checked: matches!(self.check, Check::Full(_)),
        })
    }

    /// A failed connection's error in words, with its causes (tokio-postgres says only "db
    /// error" or "error performing TLS handshake" at the top) and what it means here.
    pub fn explain(&self, e: &(dyn std::error::Error + 'static)) -> String {
        let mut msg = e.to_string();
        let mut hint = None;
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            let text = c.to_string();
            if !msg.contains(&text) {
                msg.push_str(": ");
                msg.push_str(&text);
            }
            hint = hint.or_else(|| self.hint(c));
            cause = c.source();
        }
        match hint {
            Some(h) => format!("{msg}; {h}"),
            None => msg,
        }
    }

    /// [`Target::explain`] for the connection pool's error: the database's own when it is one.
    pub fn explain_pool(&self, e: &deadpool_postgres::PoolError) -> String {
        match e {
            deadpool_postgres::PoolError::Backend(inner) => self.explain(inner),
            other => self.explain(other),
        }
    }

    fn hint(&self, e: &(dyn std::error::Error + 'static)) -> Option<String> {
        let roots = match &self.check {
            Check::Chain(r) | Check::Full(r) => r.to_string(),
            _ => "the trusted certificate authorities".to_string(),
        };
        if let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() {
            if let Some(db) = pg.as_db_error() {
                if self.mode == SslMode::Disable
                    && *db.code()
                        == tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                {
                    return Some(
                        "sslmode=disable: the server may accept only encrypted connections \
                         (hostssl in its pg_hba.conf)"
                            .into(),
                    );
                }
            }
            return None;
        }
        let rustls_error = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .or_else(|| e.downcast_ref::<rustls::Error>());
        if let Some(rustls::Error::InvalidCertificate(c)) = rustls_error {
            return Some(match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                    "the server's certificate is not signed by {roots}; name the authority \
                     that signed it with sslrootcert or [metadata] ca_file"
                ),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => format!(
                    "the server's certificate does not name the host connected to: connect by \
                     a name it holds (sslmode={} checks the host name, verify-ca does not)",
                    self.mode.as_str()
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the server's certificate has expired".into()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the server's certificate is not valid yet (or this machine's clock is wrong)"
                        .into()
                }
                _ => format!(
                    "the server's certificate was refused (sslmode={})",
                    self.mode.as_str()
                ),
            });
        }
        if rustls_error.is_some() {
            return None;
        }
        if e.downcast_ref::<rustls::pki_types::InvalidDnsNameError>()
            .is_some()
        {
            return Some(format!(
                "sslmode={} checks the host name, and the host is neither a DNS name nor an IP \
                 address",
                self.mode.as_str()
            ));
        }
        let text = e.to_string();
        if text == "server does not support TLS" {
            return Some(format!(
                "sslmode={} needs TLS, and the server does not offer it (ssl = off in its \
                 postgresql.conf)",
                self.mode.as_str()
            ));
        }
        None
    }
}

/// Reads the PEM file `path` (the setting `what`) with `parse`.
fn read_pem<T>(
    path: &Path,
    what: &str,
    parse: impl FnOnce(&[u8]) -> Result<T, rustls::pki_types::pem::Error>,
) -> Result<T, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("{what} {}: cannot read: {e}", path.display()))?;
    parse(&bytes).map_err(|e| format!("{what} {}: not a PEM file as expected: {e}", path.display()))
}

/// The trusted authorities of `roots`.
fn root_store(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path, what) => {
            let certs = read_pem(path, what, |b| {
                CertificateDer::pem_slice_iter(b).collect::<Result<Vec<_>, _>>()
            })?;
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| format!("{what} {}: {e}", path.display()))?;
            }
            if store.is_empty() {
                return Err(format!(
                    "{what} {}: no certificate in it (PEM: -----BEGIN CERTIFICATE-----)",
                    path.display()
                ));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(format!(
                    "no system certificate authority found{}: name the database's with \
                     sslrootcert or [metadata] ca_file",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", why.join("; "))
                    }
                ));
            }
        }
    }
    Ok(store)
}

/// tokio-postgres-rustls's connector, which also connects where no host name checks the
/// certificate: over a Unix socket (tokio-postgres asks for a TLS connector before it knows
/// whether TLS is used, with an empty name) or to a host whose name is not a DNS name.
#[derive(Clone)]
pub struct Connector {
    inner: MakeRustlsConnect,
    names_checked: bool,
}

impl<S> MakeTlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<Self::TlsConnect, Self::Error> {
        let name = if hostname.is_empty()
            || (!self.names_checked && ServerName::try_from(hostname).is_err())
        {
            // Not checked against the certificate, and sent as SNI only.
            "localhost"
        } else {
            hostname
        };
        MakeTlsConnect::<S>::make_tls_connect(&mut self.inner, name)
    }
}

/// Accepts any certificate (sslmode prefer and require without trusted authorities); the
/// handshake's signatures are still checked, so that the session is the certificate holder's.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The certificate chain up to a trusted authority, whatever host it names (sslmode
/// verify-ca, and require with trusted authorities given).
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(conn: &str) -> Target {
        Target::parse(conn, None).unwrap()
    }

    #[test]
    fn sslmode_is_read_as_libpq_reads_it() {
        let t = parse("postgres://vo@db.example/vostok");
        assert_eq!((t.mode(), t.check()), (SslMode::Prefer, &Check::Unverified));
        assert_eq!(t.config().get_ssl_mode(), PgSslMode::Prefer);
        let t = parse("postgres://vo@db.example/vostok?sslmode=disable");
        assert_eq!((t.mode(), t.check()), (SslMode::Disable, &Check::Off));
        assert_eq!(t.config().get_ssl_mode(), PgSslMode::Disable);
        let t = parse("postgres://vo@db.example/vostok?sslmode=require");
        assert_eq!(t.check(), &Check::Unverified);
        assert_eq!(t.config().get_ssl_mode(), PgSslMode::Require);
        let t = parse("postgres://vo@db.example/vostok?sslmode=verify-ca");
        assert_eq!(t.check(), &Check::Chain(Roots::System));
        assert_eq!(t.config().get_ssl_mode(), PgSslMode::Require);
        let t = parse("postgres://vo@db.example/vostok?sslmode=verify-full");
        assert_eq!(t.check(), &Check::Full(Roots::System));
        assert_eq!(t.config().get_ssl_mode(), PgSslMode::Require);
        for bad in ["allow", "verify_full", "", "VERIFY-FULL"] {
            let e = Target::parse(&format!("postgres://db/x?sslmode={bad}"), None).unwrap_err();
            assert!(e.contains("sslmode="), "{e}");
        }
    }

    #[test]
    fn a_root_certificate_makes_require_check_the_chain_and_is_the_default_check() {
        let ca = Path::new("/etc/vostok/db-ca.pem");
        let file = |from| Roots::File(ca.to_path_buf(), from);
        // Named in the URL.
        let t = parse("postgres://db/x?sslmode=require&sslrootcert=/etc/vostok/db-ca.pem");
        assert_eq!(t.check(), &Check::Chain(file("sslrootcert")));
        // [metadata] ca_file, and no sslmode: verify-full.
        let t = Target::parse("postgres://db/x", Some(ca)).unwrap();
        assert_eq!(
            (t.mode(), t.check()),
            (
                SslMode::VerifyFull,
                &Check::Full(file("[metadata] ca_file"))
            )
        );
        // The URL's wins over ca_file.
        let t = Target::parse(
            "postgres://db/x?sslrootcert=/other.pem&sslmode=verify-ca",
            Some(ca),
        )
        .unwrap();
        assert_eq!(
            t.check(),
            &Check::Chain(Roots::File("/other.pem".into(), "sslrootcert"))
        );
        // prefer never checks, as in libpq.
        let t = Target::parse("postgres://db/x?sslmode=prefer", Some(ca)).unwrap();
        assert_eq!(t.check(), &Check::Unverified);
        // sslrootcert=system: verify-full only.
        let t = parse("postgres://db/x?sslrootcert=system");
        assert_eq!(t.check(), &Check::Full(Roots::System));
        assert!(Target::parse("postgres://db/x?sslrootcert=system&sslmode=require", None).is_err());
    }

    #[test]
    fn the_tls_keys_are_taken_out_and_the_rest_kept_as_written() {
        let t = parse(
            "postgresql://vo:p%40ss@db.example:6543/vostok?application_name=a%20b&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fca%20x.pem&connect_timeout=7&sslcert=/c.pem&sslkey=/k.pem",
        );
        assert_eq!(
            t.check(),
            &Check::Full(Roots::File("/etc/ca x.pem".into(), "sslrootcert"))
        );
        assert_eq!(t.client_cert, Some(("/c.pem".into(), "/k.pem".into())));
        let c = t.config();
        assert_eq!(c.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(c.get_application_name(), Some("a b"));
        assert_eq!(c.get_ports(), &[6543]);
        assert_eq!(
            c.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(7))
        );
        assert_eq!(c.get_hosts(), &[Host::Tcp("db.example".into())]);
        // A client certificate needs its key.
        assert!(Target::parse("postgres://db/x?sslcert=/c.pem", None).is_err());
        // Options tokio-postgres does not know are its error, the password not shown.
        let e = Target::parse("postgres://vo:s3cret@db/x?sslcrl=/x", None).unwrap_err();
        assert!(e.contains("sslcrl") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn the_key_value_form_is_read_too() {
        let t = parse(
            "host=db.example port=6543 user=vo password='it\\'s' dbname = vostok \
             sslmode=verify-ca sslrootcert='/etc/my ca.pem' application_name=a\\ b",
        );
        assert_eq!(
            t.check(),
            &Check::Chain(Roots::File("/etc/my ca.pem".into(), "sslrootcert"))
        );
        let c = t.config();
        assert_eq!(c.get_dbname(), Some("vostok"));
        assert_eq!(c.get_application_name(), Some("a b"));
        assert_eq!(c.get_ports(), &[6543]);
        assert!(Target::parse("host=db sslmode", None).is_err());
        assert!(Target::parse("host='db", None).is_err());
        assert!(Target::parse("not a url", None).is_err());
        let e = Target::parse("mysql://db/vostok", None).unwrap_err();
        assert!(e.contains("`mysql:`"), "{e}");
    }

    #[test]
    fn passwords_are_never_shown() {
        for (conn, shown) in [
            ("postgres://vo:s3cret@db/x", "postgres://vo:***@db/x"),
            (
                "postgres://vo@db/x?password=s3cret&sslmode=require",
                "postgres://vo@db/x?password=***&sslmode=require",
            ),
            (
                "host=db password=s3cret user=vo",
                "host=db password=*** user=vo",
            ),
            (
                "host=db password='s3 cret' sslpassword=s3cret",
                "host=db password=*** sslpassword=***",
            ),
        ] {
            assert_eq!(redact(conn), shown);
            let t = parse(&conn.replace("sslpassword=s3cret", ""));
            assert!(!t.shown().contains("s3cret") && !t.describe().contains("s3cret"));
            assert!(!format!("{t:?}").contains("s3cret"));
        }
    }

    #[test]
    fn hostaddr_alone_is_the_name_checked() {
        let t = parse("hostaddr=10.0.0.5 dbname=vostok sslmode=verify-full");
        assert_eq!(t.config().get_hosts(), &[Host::Tcp("10.0.0.5".into())]);
        let t = parse("host=db.example hostaddr=10.0.0.5 dbname=vostok");
        assert_eq!(t.config().get_hosts(), &[Host::Tcp("db.example".into())]);
    }

    #[test]
    fn a_unix_socket_carries_no_tls() {
        let t = parse("host=/var/run/postgresql dbname=vostok sslmode=verify-full");
        assert_eq!(t.config().get_ssl_mode(), PgSslMode::Disable);
        assert!(
            t.describe().starts_with("no TLS: a Unix socket"),
            "{}",
            t.describe()
        );
        assert_eq!(t.warning(), None);
    }

    #[test]
    fn the_unauthenticated_modes_are_warned_of() {
        assert!(parse("postgres://db.example/x").warning().is_some());
        assert!(parse("postgres://127.0.0.1/x").warning().is_none());
        assert!(parse("postgres://localhost/x?sslmode=require")
            .warning()
            .is_some());
        assert!(parse("postgres://db.example/x?sslmode=verify-ca")
            .warning()
            .is_none());
        assert!(parse("postgres://db.example/x?sslmode=disable")
            .warning()
            .is_some());
    }

    #[test]
    fn unreadable_or_empty_certificate_files_are_named() {
        let dir = std::env::temp_dir().join(format!("vostok-pgtls-{}", crate::new_job_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let t = Target::parse("postgres://db/x", Some(&missing)).unwrap();
        let e = t.connector().err().unwrap();
        assert!(
            e.contains("[metadata] ca_file")
                && e.contains("missing.pem")
                && e.contains("cannot read"),
            "{e}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let t = Target::parse(
            &format!("postgres://db/x?sslrootcert={}", empty.display()),
            None,
        )
        .unwrap();
        let e = t.connector().err().unwrap();
        assert!(
            e.contains("sslrootcert") && e.contains("no certificate"),
            "{e}"
        );
        // No TLS asked for: no file read.
        let t = Target::parse("postgres://db/x?sslmode=disable", Some(&missing)).unwrap();
        assert!(t.connector().is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
