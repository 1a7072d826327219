//! Where the VOSpace records are kept: an embedded SQLite file (the default) or a PostgreSQL
//! database shared by several servers. The store ([`crate::store`]) writes its statements once,
//! in the SQL both understand (`?1`-style parameters, rewritten to `$1` for PostgreSQL), and
//! runs them through a [`Conn`]; every value is a bound parameter, no statement is built from
//! user text.
//!
//! * SQLite: one connection behind a mutex (one process per file: the server's writer lock);
//!   a write transaction is `BEGIN IMMEDIATE`.
//! * PostgreSQL: a pool of connections driven by a runtime of its own (as the job store's);
//!   a write transaction takes the transaction-level advisory lock [`WRITE_LOCK`] first, so
//!   that write transactions follow one another across every process using the database, as
//!   SQLite's do within one file. Reads take no lock. The schema is versioned in
//!   `vostok_schema` (component `vospace`); migrations run under the advisory lock every
//!   vostok migration takes.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use rusqlite::types::ValueRef;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::model::Fault;

/// The advisory lock key every vostok migration takes ("vostok" in ASCII, as the job store's).
const MIGRATION_LOCK: i64 = 0x766f_7374_6f6b;
/// The advisory lock every VOSpace write transaction takes ("vospace" in ASCII).
pub(crate) const WRITE_LOCK: i64 = 0x0076_6f73_7061_6365;

/// The SQLite schema (`PRAGMA user_version` 2). Version 2 added the processes and the uploads
/// in progress (see `store`'s crash safety).
const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nodes (
    path TEXT PRIMARY KEY NOT NULL,
    parent TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    properties TEXT NOT NULL DEFAULT '[]',
    target TEXT,
    length INTEGER,
    md5 TEXT,
    content_type TEXT,
    object_key TEXT,
    ctime TEXT NOT NULL,
    mtime TEXT NOT NULL,
    busy INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS nodes_children ON nodes (parent, name);
CREATE INDEX IF NOT EXISTS nodes_owner ON nodes (owner);
CREATE UNIQUE INDEX IF NOT EXISTS nodes_object ON nodes (object_key) WHERE object_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY NOT NULL,
    token_sha256 TEXT UNIQUE,
    quota_bytes INTEGER,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS group_members (
    grp TEXT NOT NULL,
    user TEXT NOT NULL,
    PRIMARY KEY (grp, user)
);
CREATE INDEX IF NOT EXISTS group_members_user ON group_members (user);
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    phase TEXT NOT NULL,
    direction TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT,
    error TEXT,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS oidc_logins (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    username TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX IF NOT EXISTS transfers_owner ON transfers (owner, created);
CREATE INDEX IF NOT EXISTS transfers_created ON transfers (created);
CREATE TABLE IF NOT EXISTS vospace_processes (
    id TEXT PRIMARY KEY NOT NULL,
    seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vospace_uploads (
    object_key TEXT PRIMARY KEY NOT NULL,
    process TEXT NOT NULL,
    path TEXT
);
PRAGMA user_version = 2;
";
const SQLITE_VERSION: i64 = 2;

/// PostgreSQL, version 1: the tables of SQLite's version 2. Paths and names compare byte by
/// byte (`COLLATE \"C\"`), as in SQLite: a subtree is the range `[path/, path0)`.
const PG_SCHEMA_V1: &str = r#"
CREATE TABLE nodes (
    path TEXT COLLATE "C" PRIMARY KEY,
    parent TEXT COLLATE "C",
    name TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    properties TEXT NOT NULL DEFAULT '[]',
    target TEXT,
    length BIGINT,
    md5 TEXT,
    content_type TEXT,
    object_key TEXT,
    ctime TEXT NOT NULL,
    mtime TEXT NOT NULL,
    busy INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX nodes_children ON nodes (parent, name);
CREATE INDEX nodes_owner ON nodes (owner);
CREATE UNIQUE INDEX nodes_object ON nodes (object_key) WHERE object_key IS NOT NULL;
CREATE TABLE users (
    name TEXT COLLATE "C" PRIMARY KEY,
    token_sha256 TEXT UNIQUE,
    quota_bytes BIGINT,
    created TEXT NOT NULL
);
CREATE TABLE group_members (
    grp TEXT COLLATE "C" NOT NULL,
    "user" TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (grp, "user")
);
CREATE INDEX group_members_user ON group_members ("user");
CREATE TABLE transfers (
    id TEXT COLLATE "C" PRIMARY KEY,
    owner TEXT NOT NULL,
    phase TEXT NOT NULL,
    direction TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT,
    error TEXT,
    created TEXT COLLATE "C" NOT NULL
);
CREATE INDEX transfers_owner ON transfers (owner, created);
CREATE INDEX transfers_created ON transfers (created);
CREATE TABLE oidc_logins (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    username TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE TABLE vospace_processes (
    id TEXT PRIMARY KEY,
    seen BIGINT NOT NULL
);
CREATE TABLE vospace_uploads (
    object_key TEXT PRIMARY KEY,
    process TEXT NOT NULL,
    path TEXT COLLATE "C"
);
CREATE INDEX vospace_uploads_process ON vospace_uploads (process);
"#;
const PG_VERSION: i32 = 1;

/// A value bound to, or read from, a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// What can be bound to a statement.
pub(crate) trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// The parameters of a statement: `vals![a, b]` binds `a` to `?1`, `b` to `?2`.
macro_rules! vals {
    ($($x:expr),* $(,)?) => {
        &[$($crate::db::ToValue::to_value(&$x)),*][..]
    };
}
pub(crate) use vals;

/// A row read.
#[derive(Debug)]
pub(crate) struct Row(Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value, Fault> {
        self.0
            .get(i)
            .ok_or_else(|| db_fault(format!("no column {i}")))
    }

    pub fn text(&self, i: usize) -> Result<String, Fault> {
        self.opt_text(i)?
            .ok_or_else(|| db_fault(format!("column {i} is NULL")))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, Fault> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            Value::Int(v) => Ok(Some(v.to_string())),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, Fault> {
        self.opt_int(i)?
            .ok_or_else(|| db_fault(format!("column {i} is NULL")))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, Fault> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            Value::Text(s) => s
                .parse()
                .map(Some)
                .map_err(|_| db_fault(format!("column {i} is not an integer"))),
        }
    }
}

pub(crate) fn db_fault(e: impl std::fmt::Display) -> Fault {
    tracing::error!("VOSpace database: {e}");
    Fault::InternalFault(format!("database: {e}"))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                _ => v.to_string().as_str().to_sql(&Type::TEXT, out),
            },
            Value::Text(s) => match *ty {
                Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL => {
                    Err(format!("text bound to a {ty} parameter").into())
                }
                _ => s.as_str().to_sql(&Type::TEXT, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `?N` parameters as PostgreSQL's `$N` (the statements are the store's own constants).
fn pg_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A PostgreSQL error with the server's message (tokio-postgres shows only "db error").
fn pg_fault(e: tokio_postgres::Error) -> Fault {
    match e.as_db_error() {
        Some(d) => db_fault(format!("{}: {}", d.severity(), d.message())),
        None => db_fault(e),
    }
}

fn pg_row(r: &tokio_postgres::Row) -> Result<Row, Fault> {
    let mut v = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let value = match *col.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i).map(|x| x.map(Value::Int)),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)
                .map(|x| x.map(|x| Value::Int(x.into()))),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)
                .map(|x| x.map(|x| Value::Int(x.into()))),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)
                .map(|x| x.map(|x| Value::Int(x.into()))),
            _ => r
                .try_get::<_, Option<String>>(i)
                .map(|x| x.map(Value::Text)),
        }
        .map_err(db_fault)?;
        v.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(v))
}

fn lite_params(params: &[Value]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|p| match p {
            Value::Null => rusqlite::types::Value::Null,
            Value::Int(v) => rusqlite::types::Value::Integer(*v),
            Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
        })
        .collect()
}

fn lite_row(r: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Row> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        v.push(match r.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(x) => Value::Int(x),
            ValueRef::Real(x) => Value::Text(x.to_string()),
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                Value::Text(String::from_utf8_lossy(t).into_owned())
            }
        });
    }
    Ok(Row(v))
}

/// One connection, for the length of one call of [`Db::run`].
pub(crate) enum Conn<'a> {
    Lite(&'a rusqlite::Connection),
    Pg {
        client: &'a tokio_postgres::Client,
        rt: &'a tokio::runtime::Handle,
    },
}

impl Conn<'_> {
    /// Runs a statement; how many rows it changed.
    pub fn exec(&self, sql: &str, params: &[Value]) -> Result<u64, Fault> {
        match self {
            Conn::Lite(c) => {
                let n = c
                    .execute(sql, rusqlite::params_from_iter(lite_params(params)))
                    .map_err(db_fault)?;
                Ok(n as u64)
            }
            Conn::Pg { client, rt } => {
                let sql = pg_sql(sql);
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                rt.block_on(client.execute(sql.as_ref(), &refs))
                    .map_err(pg_fault)
            }
        }
    }

    /// The rows a query returns.
    pub fn rows(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, Fault> {
        match self {
            Conn::Lite(c) => {
                let mut st = c.prepare(sql).map_err(db_fault)?;
                let n = st.column_count();
                let rows = st
                    .query_map(rusqlite::params_from_iter(lite_params(params)), |r| {
                        lite_row(r, n)
                    })
                    .map_err(db_fault)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_fault)?;
                Ok(rows)
            }
            Conn::Pg { client, rt } => {
                let sql = pg_sql(sql);
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                let rows = rt
                    .block_on(client.query(sql.as_ref(), &refs))
                    .map_err(pg_fault)?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// The first row a query returns, if any.
    pub fn row(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, Fault> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    fn batch(&self, sql: &str) -> Result<(), Fault> {
        match self {
            Conn::Lite(c) => c.execute_batch(sql).map_err(db_fault),
            Conn::Pg { client, rt } => rt.block_on(client.batch_execute(sql)).map_err(pg_fault),
        }
    }

    /// PostgreSQL: the keys of the liveness locks held ([`Db::hold_liveness_lock`]), that is
    /// the processes alive. SQLite: None (one process per file).
    pub fn live_processes(&self) -> Result<Option<std::collections::HashSet<i64>>, Fault> {
        if let Conn::Lite(_) = self {
            return Ok(None);
        }
        let keys = self
            .rows(
                "SELECT (CAST(classid AS BIGINT) << 32) | CAST(objid AS BIGINT) FROM pg_locks \
                 WHERE locktype = 'advisory' AND objsubid = 1 AND granted",
                &[],
            )?
            .iter()
            .map(|r| r.int(0))
            .collect::<Result<_, _>>()?;
        Ok(Some(keys))
    }

    /// Runs `f` in a write transaction: committed when `f` succeeds, rolled back when it
    /// fails. Write transactions follow one another (SQLite's `BEGIN IMMEDIATE`; on
    /// PostgreSQL the advisory lock [`WRITE_LOCK`], held until the transaction ends, in
    /// every process).
    pub fn write<T>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T, Fault>) -> Result<T, Fault> {
        match self {
            Conn::Lite(_) => self.batch("BEGIN IMMEDIATE")?,
            Conn::Pg { .. } => {
                self.batch("BEGIN")?;
                if let Err(e) = self.exec("SELECT pg_advisory_xact_lock(?1)", vals![WRITE_LOCK]) {
                    let _ = self.batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        match f(self) {
            Ok(v) => match self.batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = self.batch("ROLLBACK");
                    Err(e)
                }
            },
            Err(e) => {
                if let Err(r) = self.batch("ROLLBACK") {
                    tracing::warn!("VOSpace database: rolling back: {r}");
                }
                Err(e)
            }
        }
    }
}

/// The database of the store.
#[derive(Clone)]
pub(crate) enum Db {
    Lite(Arc<Mutex<rusqlite::Connection>>),
    Pg(Arc<PgDb>),
}

pub(crate) struct PgDb {
    pool: Pool,
    /// Where the database is, to explain a failed connection.
    target: uws::pgtls::Target,
    rt: tokio::runtime::Handle,
    /// The connection holding this process's liveness lock (see [`Db::hold_liveness_lock`]).
    holder: Mutex<Option<deadpool_postgres::ClientWrapper>>,
}

impl Db {
    /// Opens (creating when missing) the SQLite database at `path` and brings its schema up
    /// to date.
    pub fn open_sqlite(path: &Path) -> Result<Db, Fault> {
        let internal = |e: String| Fault::InternalFault(e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| internal(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = rusqlite::Connection::open(path)
            .map_err(|e| internal(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(db_fault)?;
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db_fault)?;
        // FULL: a commit that makes a new version of a file visible (and after which its old
        // object is deleted) survives a power loss.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_fault)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_fault)?;
        if version > SQLITE_VERSION {
            return Err(internal(format!(
                "{} has schema version {version}, newer than this vostok's {SQLITE_VERSION}",
                path.display()
            )));
        }
        conn.execute_batch(SQLITE_SCHEMA).map_err(db_fault)?;
        Ok(Db::Lite(Arc::new(Mutex::new(conn))))
    }

    /// Connects to the PostgreSQL database `target` names with at most `connections`
    /// connections and brings its schema up to date.
    pub async fn open_postgres(
        target: &uws::pgtls::Target,
        connections: usize,
    ) -> Result<Db, Fault> {
        let shown = target.shown().to_string();
        let tls = target
            .connector()
            .map_err(|e| Fault::InternalFault(format!("{shown}: {e}")))?;
        let (pool, handle) = uws::postgres::pool_on_own_runtime(
            target.config(),
            tls,
            connections,
            "vostok-vospace-pg",
        )
        .map_err(|e| Fault::InternalFault(format!("{shown}: {e}")))?;
        let db = Db::Pg(Arc::new(PgDb {
            pool,
            target: target.clone(),
            rt: handle,
            holder: Mutex::new(None),
        }));
        db.run(move |c| migrate(c).map_err(|e| prefix(&shown, e)))
            .await?;
        Ok(db)
    }

    /// Runs `f` with a connection, on a thread that may block.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Conn<'_>) -> Result<T, Fault> + Send + 'static,
    ) -> Result<T, Fault> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.run_blocking(f))
            .await
            .map_err(|e| Fault::InternalFault(e.to_string()))?
    }

    /// [`Db::run`] on the calling thread (not a runtime's worker).
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&Conn<'_>) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        match self {
            Db::Lite(conn) => {
                let c = conn.lock().unwrap_or_else(|e| e.into_inner());
                f(&Conn::Lite(&c))
            }
            Db::Pg(pg) => {
                let client = pg
                    .rt
                    .block_on(pg.pool.get())
                    .map_err(|e| pg.cannot_connect(&e))?;
                f(&Conn::Pg {
                    client: &client,
                    rt: &pg.rt,
                })
            }
        }
    }

    /// PostgreSQL: takes the session advisory lock `key` on a connection of its own, kept
    /// as long as the process lives (taken again when that connection was lost). Other
    /// processes tell that this one is alive by the lock ([`Conn::live_processes`]); it goes
    /// with the connection when the process ends, however it ends.
    pub fn hold_liveness_lock(&self, key: i64) -> Result<(), Fault> {
        let Db::Pg(pg) = self else { return Ok(()) };
        let mut holder = pg.holder.lock().unwrap_or_else(|e| e.into_inner());
        if holder.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        let c = deadpool_postgres::Object::take(
            pg.rt
                .block_on(pg.pool.get())
                .map_err(|e| pg.cannot_connect(&e))?,
        );
        pg.rt
            .block_on(c.execute("SELECT pg_advisory_lock($1)", &[&key]))
            .map_err(pg_fault)?;
        *holder = Some(c);
        Ok(())
    }

    /// Whether several processes may share this database (PostgreSQL).
    pub fn shared(&self) -> bool {
        matches!(self, Db::Pg(_))
    }
}

impl PgDb {
    fn cannot_connect(&self, e: &deadpool_postgres::PoolError) -> Fault {
        Fault::InternalFault(format!(
            "VOSpace database {}: cannot connect: {}",
            self.target.shown(),
            self.target.explain_pool(e)
        ))
    }
}

fn prefix(shown: &str, e: Fault) -> Fault {
    Fault::InternalFault(format!("{shown}: {}", e.detail()))
}

/// Brings the PostgreSQL schema to [`PG_VERSION`] in one transaction, under the migration
/// lock; a database written by a newer vostok is refused rather than changed.
fn migrate(c: &Conn<'_>) -> Result<(), Fault> {
    c.batch("BEGIN")?;
    let r = (|| {
        c.exec("SELECT pg_advisory_xact_lock(?1)", vals![MIGRATION_LOCK])?;
        c.batch(
            "CREATE TABLE IF NOT EXISTS vostok_schema \
             (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
        )?;
        let version = match c.row(
            "SELECT version FROM vostok_schema WHERE component = 'vospace'",
            &[],
        )? {
            Some(r) => r.int(0)?,
            None => 0,
        };
        if version > i64::from(PG_VERSION) {
            return Err(Fault::InternalFault(format!(
                "the VOSpace database has schema version {version}, newer than this vostok's \
                 {PG_VERSION}"
            )));
        }
        let steps: [(i64, &str); 1] = [(1, PG_SCHEMA_V1)];
        for (to, sql) in steps {
            if version < to {
                c.batch(sql)?;
            }
        }
        if version < i64::from(PG_VERSION) {
            c.exec(
                "INSERT INTO vostok_schema (component, version) VALUES ('vospace', ?1) \
                 ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                vals![i64::from(PG_VERSION)],
            )?;
        }
        Ok(())
    })();
    match r {
        Ok(()) => c.batch("COMMIT"),
        Err(e) => {
            let _ = c.batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_for_postgres() {
        assert_eq!(
            pg_sql("SELECT a FROM t WHERE b = ?1 AND (?2 IS NULL OR c > ?2) LIMIT ?10"),
            "SELECT a FROM t WHERE b = $1 AND ($2 IS NULL OR c > $2) LIMIT $10"
        );
        assert_eq!(pg_sql("SELECT '?'"), "SELECT '?'");
    }
}
