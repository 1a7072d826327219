//! A minimal client for the PostgreSQL frontend/backend protocol (version 3.0), on tokio only.
//!
//! Why not `tokio-postgres`: its dependencies (`rand` 0.10 with default features, the RustCrypto
//! 0.11 family that turns on `typenum/const-generics`) change the feature sets of crates that
//! DataFusion's `object_store` also uses, so any build of vostok together with this tool would
//! recompile DataFusion from scratch (40+ minutes in release on two cores). The protocol subset a
//! benchmark needs is small: startup with `trust` or cleartext-password authentication, the
//! simple query protocol, the extended protocol with named prepared statements and binary
//! parameters and results, and `COPY ... FROM STDIN` (binary).
//!
//! Every query's result columns are requested in binary format, as `tokio-postgres` does; the
//! caller decodes them (see [`Field`] and the type OIDs below).

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

/// `boolean`.
pub const BOOL: u32 = 16;
/// `bigint`.
pub const INT8: u32 = 20;
/// `smallint`.
pub const INT2: u32 = 21;
/// `integer`.
pub const INT4: u32 = 23;
/// `text`.
pub const TEXT: u32 = 25;
/// `real`.
pub const FLOAT4: u32 = 700;
/// `double precision`.
pub const FLOAT8: u32 = 701;
/// `character varying`.
pub const VARCHAR: u32 = 1043;

/// Connection parameters, parsed from a libpq-style `key=value` string.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// Host name or address; a value starting with `/` is a Unix-socket directory.
    pub host: String,
    /// TCP port (also names the Unix socket).
    pub port: u16,
    /// Role name.
    pub user: String,
    /// Database name.
    pub dbname: String,
    /// Password, for cleartext-password authentication only.
    pub password: Option<String>,
}

impl ConnInfo {
    /// Parses `host=127.0.0.1 port=5432 user=postgres dbname=postgres` (libpq's keyword/value
    /// form: values may be single-quoted with `\'` and `\\` escapes). Missing keys default to
    /// `$PGHOST`/127.0.0.1, `$PGPORT`/5432, `$PGUSER`/`$USER`/postgres and the user name.
    pub fn parse(s: &str) -> Result<ConnInfo> {
        let mut kv: Vec<(String, String)> = Vec::new();
        let mut chars = s.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut key = String::new();
            while let Some(&c) = chars.peek() {
                if c == '=' || c.is_whitespace() {
                    break;
                }
                key.push(c);
                chars.next();
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('=') {
                bail!("connection string: expected '=' after '{key}'");
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let mut value = String::new();
            if chars.peek() == Some(&'\'') {
                chars.next();
                loop {
                    match chars.next() {
                        None => bail!("connection string: unterminated quoted value for '{key}'"),
                        Some('\\') => match chars.next() {
                            Some(c) => value.push(c),
                            None => bail!("connection string: dangling backslash"),
                        },
                        Some('\'') => break,
                        Some(c) => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    if c == '\\' {
                        chars.next();
                        if let Some(e) = chars.next() {
                            value.push(e);
                        }
                        continue;
                    }
                    value.push(c);
                    chars.next();
                }
            }
            kv.push((key, value));
        }
        let get = |k: &str| {
            kv.iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        for (k, _) in &kv {
            if !matches!(
                k.as_str(),
                "host" | "hostaddr" | "port" | "user" | "dbname" | "password" | "sslmode"
            ) {
                bail!("connection string: unsupported keyword '{k}'");
            }
        }
        if let Some(mode) = get("sslmode") {
            if !matches!(mode.as_str(), "disable" | "allow" | "prefer") {
                bail!("connection string: sslmode={mode} is not supported (no TLS in this client)");
            }
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let host = get("hostaddr")
            .or_else(|| get("host"))
            .or_else(|| env("PGHOST"))
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = match get("port").or_else(|| env("PGPORT")) {
            Some(p) => p
                .parse()
                .map_err(|_| anyhow!("connection string: port '{p}' is not a number"))?,
            None => 5432,
        };
        let user = get("user")
            .or_else(|| env("PGUSER"))
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        let dbname = get("dbname")
            .or_else(|| env("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        Ok(ConnInfo {
            host,
            port,
            user,
            dbname,
            password: get("password").or_else(|| env("PGPASSWORD")),
        })
    }
}

/// A result column, from RowDescription.
#[derive(Clone, Debug)]
pub struct Column {
    /// Type OID.
    pub type_oid: u32,
}

/// What a query returned on the wire.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryStats {
    /// DataRow messages.
    pub rows: u64,
    /// Bytes of the DataRow messages, headers included (the result payload on the wire).
    pub bytes: u64,
}

type Reader = BufReader<Box<dyn AsyncRead + Unpin + Send>>;
type Writer = BufWriter<Box<dyn AsyncWrite + Unpin + Send>>;

/// One connection.
pub struct Conn {
    r: Reader,
    w: Writer,
    msg: Vec<u8>,
    out: Vec<u8>,
    /// The backend's process id (BackendKeyData).
    pub backend_pid: i32,
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Splits a NUL-terminated string off the front of `b`.
fn cstr(b: &[u8]) -> Result<(&str, &[u8])> {
    let end = b
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| anyhow!("protocol: unterminated string"))?;
    Ok((std::str::from_utf8(&b[..end])?, &b[end + 1..]))
}

/// The text of an ErrorResponse or NoticeResponse.
fn error_text(body: &[u8]) -> String {
    let mut sev = "";
    let mut code = "";
    let mut msg = "";
    let mut detail = "";
    let mut hint = "";
    let mut rest = body;
    while let Some((&t, tail)) = rest.split_first() {
        if t == 0 {
            break;
        }
        let Ok((v, tail)) = cstr(tail) else { break };
        match t {
            b'V' => sev = v,
            b'S' if sev.is_empty() => sev = v,
            b'C' => code = v,
            b'M' => msg = v,
            b'D' => detail = v,
            b'H' => hint = v,
            _ => {}
        }
        rest = tail;
    }
    let mut s = format!("PostgreSQL {sev} {code}: {msg}");
    if !detail.is_empty() {
        s.push_str(&format!(" (detail: {detail})"));
    }
    if !hint.is_empty() {
        s.push_str(&format!(" (hint: {hint})"));
    }
    s
}

/// Iterates over the fields of a DataRow body: `None` is SQL NULL.
pub fn fields(body: &[u8]) -> Fields<'_> {
    Fields {
        rest: body.get(2..).unwrap_or(&[]),
        left: if body.len() >= 2 { be_i16(body) } else { 0 },
    }
}

/// Iterator returned by [`fields`].
pub struct Fields<'a> {
    rest: &'a [u8],
    left: i16,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Option<&'a [u8]>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left <= 0 || self.rest.len() < 4 {
            return None;
        }
        self.left -= 1;
        let len = be_i32(self.rest);
        self.rest = &self.rest[4..];
        if len < 0 {
            return Some(None);
        }
        let len = (len as usize).min(self.rest.len());
        let (v, tail) = self.rest.split_at(len);
        self.rest = tail;
        Some(Some(v))
    }
}

impl Conn {
    /// Connects and authenticates (`trust`, or cleartext password).
    pub async fn connect(ci: &ConnInfo) -> Result<Conn> {
        let (r, w): (
            Box<dyn AsyncRead + Unpin + Send>,
            Box<dyn AsyncWrite + Unpin + Send>,
        ) = if ci.host.starts_with('/') {
            let path = format!("{}/.s.PGSQL.{}", ci.host, ci.port);
            let s = tokio::net::UnixStream::connect(&path)
                .await
                .with_context(|| format!("connecting to PostgreSQL at {path}"))?;
            let (r, w) = s.into_split();
            (Box::new(r), Box::new(w))
        } else {
            let s = tokio::net::TcpStream::connect((ci.host.as_str(), ci.port))
                .await
                .with_context(|| format!("connecting to PostgreSQL at {}:{}", ci.host, ci.port))?;
            s.set_nodelay(true)?;
            let (r, w) = s.into_split();
            (Box::new(r), Box::new(w))
        };
        let mut c = Conn {
            r: BufReader::with_capacity(256 * 1024, r),
            w: BufWriter::with_capacity(256 * 1024, w),
            msg: Vec::with_capacity(1024),
            out: Vec::with_capacity(1024),
            backend_pid: 0,
        };
        let mut body = Vec::new();
        body.extend_from_slice(&196_608i32.to_be_bytes()); // protocol 3.0
        for (k, v) in [
            ("user", ci.user.as_str()),
            ("database", ci.dbname.as_str()),
            ("application_name", "vostok-bench"),
            ("client_encoding", "UTF8"),
        ] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        c.w.write_all(&((body.len() + 4) as i32).to_be_bytes())
            .await?;
        c.w.write_all(&body).await?;
        c.w.flush().await?;
        loop {
            match c.read_msg().await? {
                b'R' => match be_i32(&c.msg) {
                    0 => {}
                    3 => {
                        let pw = ci.password.clone().ok_or_else(|| {
                            anyhow!("the server asks for a password; give password=... in the connection string")
                        })?;
                        let mut b = pw.into_bytes();
                        b.push(0);
                        c.put(b'p', &b);
                        c.send().await?;
                    }
                    n => bail!(
                        "PostgreSQL asks for authentication method {n} (MD5 is 5, SCRAM is 10); this client supports trust and cleartext password only: use trust on loopback for the benchmark cluster"
                    ),
                },
                b'K' => c.backend_pid = be_i32(&c.msg),
                b'S' | b'N' => {}
                b'E' => bail!(error_text(&c.msg)),
                b'Z' => return Ok(c),
                t => bail!("protocol: unexpected message '{}' during startup", t as char),
            }
        }
    }

    async fn read_msg(&mut self) -> Result<u8> {
        let tag = self.r.read_u8().await.context("reading from PostgreSQL")?;
        let len = self.r.read_i32().await? as usize;
        if len < 4 {
            bail!("protocol: bad message length {len}");
        }
        self.msg.resize(len - 4, 0);
        self.r.read_exact(&mut self.msg).await?;
        Ok(tag)
    }

    /// Appends one message to the output buffer.
    fn put(&mut self, tag: u8, body: &[u8]) {
        self.out.push(tag);
        self.out
            .extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        self.out.extend_from_slice(body);
    }

    async fn send(&mut self) -> Result<()> {
        self.w.write_all(&self.out).await?;
        self.w.flush().await?;
        self.out.clear();
        Ok(())
    }

    /// Runs SQL with the simple query protocol (several `;`-separated statements allowed) and
    /// returns the text rows of the last result set.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut b = sql.as_bytes().to_vec();
        b.push(0);
        self.put(b'Q', &b);
        self.send().await?;
        let mut rows = Vec::new();
        let mut err: Option<String> = None;
        loop {
            match self.read_msg().await? {
                b'T' => rows.clear(),
                b'D' => rows.push(
                    fields(&self.msg)
                        .map(|f| f.map(|v| String::from_utf8_lossy(v).into_owned()))
                        .collect(),
                ),
                b'G' => {
                    // COPY FROM STDIN through simple_query: refuse it.
                    self.put(b'f', b"use copy_in\0");
                    self.send().await?;
                }
                b'E' => {
                    err.get_or_insert_with(|| error_text(&self.msg));
                }
                b'Z' => break,
                _ => {}
            }
        }
        match err {
            Some(e) => Err(anyhow!(e)).with_context(|| format!("running: {}", short(sql))),
            None => Ok(rows),
        }
    }

    /// Prepares a named statement with the given parameter types; returns its result columns.
    pub async fn prepare(
        &mut self,
        name: &str,
        sql: &str,
        param_types: &[u32],
    ) -> Result<Vec<Column>> {
        let mut b = Vec::new();
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        b.extend_from_slice(sql.as_bytes());
        b.push(0);
        b.extend_from_slice(&(param_types.len() as i16).to_be_bytes());
        for t in param_types {
            b.extend_from_slice(&t.to_be_bytes());
        }
        self.put(b'P', &b);
        let mut d = vec![b'S'];
        d.extend_from_slice(name.as_bytes());
        d.push(0);
        self.put(b'D', &d);
        self.put(b'S', &[]);
        self.send().await?;
        let mut cols = Vec::new();
        let mut err: Option<String> = None;
        loop {
            match self.read_msg().await? {
                b'T' => {
                    let n = be_i16(&self.msg);
                    let mut rest = &self.msg[2..];
                    for _ in 0..n {
                        let (_name, tail) = cstr(rest)?;
                        cols.push(Column {
                            type_oid: be_i32(&tail[6..]) as u32,
                        });
                        rest = &tail[18..];
                    }
                }
                b'E' => {
                    err.get_or_insert_with(|| error_text(&self.msg));
                }
                b'Z' => break,
                _ => {}
            }
        }
        match err {
            Some(e) => Err(anyhow!(e)).with_context(|| format!("preparing: {}", short(sql))),
            None => Ok(cols),
        }
    }

    /// Executes a prepared statement with binary parameters (`None` = NULL), asking for binary
    /// results; `on_row` gets each DataRow body (read it with [`fields`]).
    pub async fn query<F>(
        &mut self,
        stmt: &str,
        params: &[Option<&[u8]>],
        mut on_row: F,
    ) -> Result<QueryStats>
    where
        F: FnMut(&[u8]) -> Result<()>,
    {
        let mut b = Vec::with_capacity(64);
        b.push(0); // unnamed portal
        b.extend_from_slice(stmt.as_bytes());
        b.push(0);
        b.extend_from_slice(&1i16.to_be_bytes()); // one format code for all parameters:
        b.extend_from_slice(&1i16.to_be_bytes()); // binary
        b.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for p in params {
            match p {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
            }
        }
        b.extend_from_slice(&1i16.to_be_bytes()); // one result format code:
        b.extend_from_slice(&1i16.to_be_bytes()); // binary
        self.put(b'B', &b);
        self.put(b'E', &[0, 0, 0, 0, 0]); // unnamed portal, no row limit
        self.put(b'S', &[]);
        self.send().await?;
        let mut stats = QueryStats::default();
        let mut err: Option<anyhow::Error> = None;
        loop {
            match self.read_msg().await? {
                b'D' => {
                    stats.rows += 1;
                    stats.bytes += 5 + self.msg.len() as u64;
                    if err.is_none() {
                        if let Err(e) = on_row(&self.msg) {
                            err = Some(e);
                        }
                    }
                }
                b'E' if err.is_none() => err = Some(anyhow!(error_text(&self.msg))),
                b'Z' => break,
                _ => {}
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }

    /// Starts `COPY ... FROM STDIN`; then [`Conn::copy_data`] and [`Conn::copy_done`].
    pub async fn copy_in(&mut self, sql: &str) -> Result<()> {
        let mut b = sql.as_bytes().to_vec();
        b.push(0);
        self.put(b'Q', &b);
        self.send().await?;
        let mut err: Option<String> = None;
        loop {
            match self.read_msg().await? {
                b'G' => return Ok(()),
                b'E' => {
                    err.get_or_insert_with(|| error_text(&self.msg));
                }
                b'Z' => {
                    return Err(anyhow!(err.unwrap_or_else(|| "COPY did not start".into())))
                        .with_context(|| format!("running: {}", short(sql)))
                }
                _ => {}
            }
        }
    }

    /// Sends one CopyData message.
    pub async fn copy_data(&mut self, data: &[u8]) -> Result<()> {
        self.w.write_u8(b'd').await?;
        self.w.write_i32((data.len() + 4) as i32).await?;
        self.w.write_all(data).await?;
        Ok(())
    }

    /// Ends the COPY; returns the number of rows the server reports.
    pub async fn copy_done(&mut self) -> Result<u64> {
        self.put(b'c', &[]);
        self.send().await?;
        let mut n = 0;
        let mut err: Option<String> = None;
        loop {
            match self.read_msg().await? {
                b'C' => {
                    let (tag, _) = cstr(&self.msg)?;
                    n = tag
                        .rsplit(' ')
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                }
                b'E' => {
                    err.get_or_insert_with(|| error_text(&self.msg));
                }
                b'Z' => break,
                _ => {}
            }
        }
        match err {
            Some(e) => Err(anyhow!(e)).context("COPY failed"),
            None => Ok(n),
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        self.put(b'X', &[]);
        let _ = self.send().await;
    }
}

fn short(sql: &str) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.len() > 160 {
        let mut end = 160;
        while !one.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &one[..end])
    } else {
        one
    }
}

/// Quotes an SQL identifier (`"..."` with doubled quotes).
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Validates a `schema.table` name for use in SQL and ADQL: two parts of lower-case letters,
/// digits and `_`, not starting with a digit. Returns (schema, table).
pub fn split_table_name(name: &str) -> Result<(&str, &str)> {
    let (s, t) = name
        .split_once('.')
        .ok_or_else(|| anyhow!("table name '{name}': expected schema.table"))?;
    for part in [s, t] {
        let ok = !part.is_empty()
            && part.len() <= 63
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !part.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            bail!("table name '{name}': each part must be lower-case letters, digits and _ (not starting with a digit)");
        }
    }
    Ok((s, t))
}

/// `"schema"."table"`, after [`split_table_name`].
pub fn quoted_table(name: &str) -> Result<String> {
    let (s, t) = split_table_name(name)?;
    Ok(format!("{}.{}", quote_ident(s), quote_ident(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo() {
        let c = ConnInfo::parse(
            "host=127.0.0.1 port=5433 user=postgres dbname='my db' password='a\\'b'",
        )
        .unwrap();
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 5433);
        assert_eq!(c.user, "postgres");
        assert_eq!(c.dbname, "my db");
        assert_eq!(c.password.as_deref(), Some("a'b"));
        assert!(ConnInfo::parse("host=x bogus=1").is_err());
        let c = ConnInfo::parse("host = /tmp  port= 7").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("/tmp", 7));
    }

    #[test]
    fn table_names() {
        assert_eq!(
            quoted_table("gaia.dr3_bright").unwrap(),
            "\"gaia\".\"dr3_bright\""
        );
        assert!(quoted_table("gaia.dr3; DROP TABLE x").is_err());
        assert!(quoted_table("Gaia.x").is_err());
        assert!(quoted_table("x").is_err());
        assert!(quoted_table("a.1b").is_err());
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn datarow_fields() {
        let mut b = Vec::new();
        b.extend_from_slice(&3i16.to_be_bytes());
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(b"hi");
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        let f: Vec<_> = fields(&b).collect();
        assert_eq!(f, vec![Some(&b"hi"[..]), None, Some(&b""[..])]);
    }
}
