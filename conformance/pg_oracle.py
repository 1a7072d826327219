"""pg_oracle — PostgreSQL as a second, stricter oracle for the differential ADQL test.

SQLite (test_differential.py) types loosely: an INTEGER column holds any integer, REAL is
always 64 bits, compound SELECTs have one precedence. PostgreSQL implements SQL-92's
semantics itself (typed columns, three-valued logic, INTERSECT binding tighter than UNION,
INTERSECT ALL / EXCEPT ALL, outer joins, correlated subqueries), so the same ADQL is also
judged by an engine that does not need the generator's SQLite workarounds.

The cluster: a private, throw-away PostgreSQL (initdb + pg_ctl in a temporary directory, run
as the `postgres` user when the test runs as root, trust authentication on 127.0.0.1 and a
socket in that directory, a free port). It holds the rows the SQLite copy was loaded with
(read from the raw demo files, never from vostok) in tables with vostok's column types
(SMALLINT, INTEGER, BIGINT, REAL, DOUBLE PRECISION, VARCHAR) under the ADQL names
(hipparcos.hip2, gaia.dr3_bright, tap_schema.columns).

The translation: PostgreSQL runs the ADQL text itself, with the few differences between
ADQL 2.1 and PostgreSQL's SQL rewritten token by token (see `translate`):

* TOP n → LIMIT n at the end of the same query specification (after ORDER BY/OFFSET);
* numeric literals with a fraction or an exponent (1.5, 5., 1.5E+02) → DOUBLE PRECISION:
  the generator, vostok and the SQLite copy all read them as approximate numbers
  (PostgreSQL would compute exact NUMERIC arithmetic with them);
* the math functions of ADQL 2.1 Table 1 take and return DOUBLE: their arguments are cast to
  DOUBLE PRECISION (PostgreSQL's abs/ceiling/floor would keep an integer type); LOG → ln,
  LOG10 → log; ROUND(x[, n]) and TRUNCATE(x[, n]) → adql_round/adql_trunc (SQL functions
  created in the database: NUMERIC rounding of the double's shortest exact decimal, halves
  away from zero, result DOUBLE — the shortest decimal, not the exact binary value the SQLite
  side rounds: the generator only rounds values far from decimal ties); MOD(x, y) → adql_mod
  (C fmod: the exact remainder of the binary values, with the sign of x, DOUBLE);
* SUM of a REAL value adds and answers in DOUBLE PRECISION (an aggregate public.sum(real)
  found before pg_catalog's, whose 32-bit running sum loses digits that vostok and SQLite keep:
  SQL-92 leaves the precision of approximate sums to the implementation);
* comments are dropped.

Everything else — identifiers (regular ones fold to lower case, as the tables are named),
delimited identifiers, CASE, COALESCE, CAST, ||, LIKE/ILIKE, subqueries, joins, set
operations, WITH — is PostgreSQL's own reading of the SQL text.

Integer overflow: SQL-92 says a result the type cannot hold is the exception 22003
"numeric value out of range"; PostgreSQL raises it where SMALLINT * SMALLINT leaves
SMALLINT. ADQL leaves the result type of arithmetic to the service, and widening (as the
SQLite copy does) is allowed, so when PostgreSQL raises 22003 the query runs again on a
second database `wide` whose integer columns are all BIGINT (`Result.widened`).
"""

from __future__ import annotations

import decimal
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import psycopg
    from psycopg import sql as pgsql
except ImportError:  # reported by unavailable_reason()
    psycopg = None

PG_TYPE_OF_DF = {"i16": "smallint", "i32": "integer", "i64": "bigint", "f32": "real",
                 "f64": "double precision", "str": "varchar"}
STATEMENT_TIMEOUT_MS = 30_000  # per query; a longer one is the generator's fault

# ---------------------------------------------------------------------------------------
# finding and running PostgreSQL
# ---------------------------------------------------------------------------------------


def pg_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: $VOSTOK_PG_BINDIR, the newest
    /usr/lib/postgresql/*/bin (Debian), or the one of initdb on PATH."""
    cands = []
    if os.environ.get("VOSTOK_PG_BINDIR"):
        cands.append(Path(os.environ["VOSTOK_PG_BINDIR"]))
    cands += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
                    key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    w = shutil.which("initdb")
    if w:
        cands.append(Path(w).resolve().parent)
    for d in cands:
        if all((d / x).is_file() and os.access(d / x, os.X_OK) for x in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def unavailable_reason() -> str | None:
    """None when a private cluster can be started here, else why not."""
    if psycopg is None:
        return "the Python driver psycopg is not installed (scripts/install-test-deps.sh installs psycopg[binary])"
    if pg_bindir() is None:
        return ("no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin or on PATH "
                "(scripts/install-test-deps.sh installs Debian's postgresql-15)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run initdb/postgres as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A private PostgreSQL cluster in a temporary directory; stop() removes it.
    `configure(data_dir, chown)`, when given, runs between initdb and the start (files it
    writes into the data directory are given to the server's user with `chown(path)`);
    `options`: more `-c name=value` settings for the server."""

    def __init__(self, max_connections: int = 20, configure=None, options: str = ""):
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        self.bindir = pg_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="vostok-pgoracle-", dir=os.environ.get("VOSTOK_PG_TMPDIR")))
        self.port = _free_port()
        self.started = False
        self._as = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        try:
            self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust", "--no-sync",
                      "-E", "UTF8", "--locale=C", "--lc-ctype=C.UTF-8")
            if configure is not None:
                configure(self.dir / "data", self._chown)
            opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                    f"-c synchronous_commit=off -c full_page_writes=off -c max_connections={max_connections} "
                    f"-c work_mem=64MB -c shared_buffers=128MB {options}")
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-t", "60",
                      "-o", opts, "start")
            self.started = True
        except BaseException:
            self.stop()
            raise

    def _chown(self, path):
        if self._as:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _run(self, tool, *args):
        r = subprocess.run(self._as + [str(self.bindir / tool), *args], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            log = ""
            if (self.dir / "log").exists():
                log = (self.dir / "log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{tool} failed ({r.returncode}): {r.stderr[-2000:]}{r.stdout[-500:]}{log}")

    def connect(self, dbname="postgres"):
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True,
                               connect_timeout=10)

    def stop(self):
        if self.started:
            try:
                self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "-t", "60", "stop")
            except Exception:  # noqa: BLE001 — the directory goes anyway
                pass
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# the copy: the SQLite tables (raw demo files) under their ADQL names, vostok's types
# ---------------------------------------------------------------------------------------

# SQL functions giving ADQL 2.1 Table 1 semantics (DOUBLE in, DOUBLE out); the NUMERIC of
# a double is made from its shortest exact decimal text (PostgreSQL's float8 → numeric cast
# keeps only 15 significant digits).
FUNCTIONS = [
    "CREATE FUNCTION adql_round(x double precision, n integer DEFAULT 0) RETURNS double precision "
    "LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT round(x::text::numeric, n)::double precision $$",
    "CREATE FUNCTION adql_trunc(x double precision, n integer DEFAULT 0) RETURNS double precision "
    "LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT trunc(x::text::numeric, n)::double precision $$",
    # SUM of REAL accumulated and returned in DOUBLE, as vostok and SQLite do (PostgreSQL's own
    # sum(real) adds in 32 bits); found first through search_path = public, pg_catalog
    "CREATE FUNCTION adql_sum_step(s double precision, x real) RETURNS double precision "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN x IS NULL THEN s ELSE coalesce(s, 0) + x END $$",
    "CREATE AGGREGATE public.sum(real) (SFUNC = adql_sum_step, STYPE = double precision)",
    # fmod on the exact binary values (the remainder is exactly representable): subtract the
    # largest y * 2^k <= r until r < |y|; each subtraction is exact (Sterbenz)
    """CREATE FUNCTION adql_mod(x double precision, y double precision) RETURNS double precision
       LANGUAGE plpgsql IMMUTABLE STRICT AS $$
       DECLARE r double precision := abs(x); d double precision := abs(y); t double precision;
       BEGIN
         IF d = 0 THEN RAISE EXCEPTION 'division by zero' USING ERRCODE = '22012'; END IF;
         WHILE r >= d LOOP
           t := d;
           WHILE t * 2 <= r LOOP t := t * 2; END LOOP;
           r := r - t;
         END LOOP;
         RETURN CASE WHEN x < 0 OR x::text LIKE '-%' THEN -r ELSE r END;  -- the sign of x, also of -0
       END $$""",
]


@dataclass
class TableCopy:
    schema: str  # ADQL schema name, lower case
    name: str  # ADQL table name, lower case
    sqlite: str  # the SQLite table holding the rows
    spec: list  # [(column, df)]
    key: tuple  # primary-key columns


def load(pg, sqlite_conn, tables: list[TableCopy]):
    """CREATE the tables and COPY the SQLite copy's rows into them (identifiers quoted by
    psycopg.sql, values sent by COPY, never spliced into SQL text)."""
    types = PG_TYPE_OF_DF
    with pg.cursor() as cur:
        for stmt in FUNCTIONS:
            cur.execute(stmt)
        for t in tables:
            cur.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(t.schema)))
            cols = pgsql.SQL(", ").join(
                pgsql.SQL("{} {}").format(pgsql.Identifier(n), pgsql.SQL(types[df])) for n, df in t.spec)
            pk = pgsql.SQL("")
            if t.key:
                pk = pgsql.SQL(", PRIMARY KEY ({})").format(pgsql.SQL(", ").join(map(pgsql.Identifier, t.key)))
            cur.execute(pgsql.SQL("CREATE TABLE {}.{} ({}{})").format(
                pgsql.Identifier(t.schema), pgsql.Identifier(t.name), cols, pk))
            names = [n for n, _ in t.spec]
            rows = sqlite_conn.execute("SELECT " + ", ".join(f'"{n}"' for n in names)
                                       + f' FROM "{t.sqlite}"').fetchall()
            copy = pgsql.SQL("COPY {}.{} ({}) FROM STDIN").format(pgsql.Identifier(t.schema), pgsql.Identifier(t.name),
                                                                  pgsql.SQL(", ").join(map(pgsql.Identifier, names)))
            with cur.copy(copy) as cp:
                for r in rows:
                    cp.write_row(r)
            cur.execute(pgsql.SQL("ANALYZE {}.{}").format(pgsql.Identifier(t.schema), pgsql.Identifier(t.name)))
            n = cur.execute(pgsql.SQL("SELECT count(*) FROM {}.{}").format(
                pgsql.Identifier(t.schema), pgsql.Identifier(t.name))).fetchone()[0]
            assert n == len(rows), (t.schema, t.name, n, len(rows))


def widen(pg, tables: list[TableCopy]):
    """Every SMALLINT / INTEGER column of the copy becomes BIGINT."""
    with pg.cursor() as cur:
        for t in tables:
            alters = [pgsql.SQL("ALTER COLUMN {} TYPE bigint").format(pgsql.Identifier(n))
                      for n, df in t.spec if df in ("i16", "i32")]
            if alters:
                cur.execute(pgsql.SQL("ALTER TABLE {}.{} ").format(pgsql.Identifier(t.schema), pgsql.Identifier(t.name))
                            + pgsql.SQL(", ").join(alters))
                cur.execute(pgsql.SQL("ANALYZE {}.{}").format(pgsql.Identifier(t.schema), pgsql.Identifier(t.name)))


class Oracle:
    """The cluster with two databases: `strict` (vostok's column types) and `wide` (every
    integer column BIGINT, for the queries where PostgreSQL raises 22003 and vostok widens)."""

    def __init__(self, sqlite_conn, tables: list[TableCopy]):
        t0 = time.monotonic()
        self.cluster = Cluster()
        try:
            with self.cluster.connect() as c:
                c.execute("CREATE DATABASE strict")
            self.strict = self.cluster.connect("strict")
            t1 = time.monotonic()
            load(self.strict, sqlite_conn, tables)
            self.copy_seconds = time.monotonic() - t1
            self.strict.close()
            with self.cluster.connect() as c:
                c.execute("CREATE DATABASE wide TEMPLATE strict")
            self.strict = self.cluster.connect("strict")
            self.wide = self.cluster.connect("wide")
            widen(self.wide, tables)
            for conn in (self.strict, self.wide):
                conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
                conn.execute("SET search_path = public, pg_catalog")
            self.version = self.strict.execute("SHOW server_version").fetchone()[0]
        except BaseException:
            self.cluster.stop()
            raise
        self.load_seconds = time.monotonic() - t0

    def close(self):
        for c in (getattr(self, "strict", None), getattr(self, "wide", None)):
            if c is not None:
                c.close()
        self.cluster.stop()

    def run(self, adql: str) -> "Result":
        """Run the translation of an ADQL query; psycopg.Error when PostgreSQL refuses it."""
        text = translate(adql)
        try:
            names, rows = _fetch(self.strict, text)
            return Result(text, names, rows, False)
        except psycopg.errors.NumericValueOutOfRange:
            names, rows = _fetch(self.wide, text)
            return Result(text, names, rows, True)


@dataclass
class Result:
    sql: str
    names: list
    rows: list
    widened: bool  # run on the all-BIGINT database after 22003 on the strict one


def _fetch(conn, text):
    with conn.cursor(binary=True) as cur:  # binary: REAL arrives as the exact float32 value
        cur.execute(text, prepare=False)
        names = [d.name for d in cur.description]
        return names, [tuple(_py(v) for v in r) for r in cur.fetchall()]


def _py(v):
    """NUMERIC (SUM of BIGINT, AVG of integers) as int when integral, else float."""
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


# ---------------------------------------------------------------------------------------
# ADQL → PostgreSQL
# ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*)
  | (?P<str>'(?:[^']|'')*')
  | (?P<dq>"(?:[^"]|"")*")
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op>\|\||<>|!=|<=|>=|[(),.;*+\-/<>=])
""", re.X)

# ADQL 2.1 Table 1: DOUBLE arguments, DOUBLE result. name → (PostgreSQL function, how many
# leading arguments are DOUBLE; the rest (ROUND/TRUNCATE's n) stay integers)
_MATH = {"ABS": "abs", "CEILING": "ceiling", "FLOOR": "floor", "SQRT": "sqrt", "POWER": "power", "EXP": "exp",
         "LOG": "ln", "LOG10": "log", "SIN": "sin", "COS": "cos", "TAN": "tan", "COT": "cot", "ASIN": "asin",
         "ACOS": "acos", "ATAN": "atan", "ATAN2": "atan2", "DEGREES": "degrees", "RADIANS": "radians",
         "MOD": "adql_mod", "ROUND": "adql_round", "TRUNCATE": "adql_trunc"}
_ONE_DOUBLE = {"ROUND", "TRUNCATE"}
_SET_OPS = {"UNION", "INTERSECT", "EXCEPT"}


class TranslationError(ValueError):
    pass


def _tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise TranslationError(f"cannot tokenize ADQL at {pos}: {text[pos:pos + 30]!r}")
        kind = m.lastgroup
        if kind == "comment":
            out.append(("ws", " "))
        else:
            out.append((kind, m.group()))
        pos = m.end()
    return out


def _group(toks):
    """Nest the tokens by parentheses: a group is a list of tokens and groups."""
    stack = [[]]
    for t in toks:
        if t == ("op", "("):
            stack.append([])
        elif t == ("op", ")"):
            if len(stack) == 1:
                raise TranslationError("unbalanced )")
            g = stack.pop()
            stack[-1].append(g)
        else:
            stack[-1].append(t)
    if len(stack) != 1:
        raise TranslationError("unbalanced (")
    return stack[0]


def _is_word(t, *words):
    return isinstance(t, tuple) and t[0] == "word" and t[1].upper() in words


def _split_args(g):
    args, cur = [], []
    for t in g:
        if t == ("op", ","):
            args.append(cur)
            cur = []
        else:
            cur.append(t)
    args.append(cur)
    return args


def _render(g) -> str:
    out = []
    for t in g:
        out.append("(" + _render(t) + ")" if isinstance(t, list) else t[1])
    return "".join(out)


def _sig(g):
    """Indices of the non-whitespace items."""
    return [i for i, t in enumerate(g) if not (isinstance(t, tuple) and t[0] == "ws")]


def _xlate(g):
    """Translate one parenthesised level (recursively)."""
    out = []
    sig_prev = None  # the previous non-whitespace item of out
    i = 0
    while i < len(g):
        t = g[i]
        if isinstance(t, list):
            out.append(_xlate(t))
            sig_prev = out[-1]
            i += 1
            continue
        kind, text = t
        if kind == "num" and re.search(r"[.eE]", text):
            lit = text + "0" if text.endswith(".") else text
            out.append(("raw", f"CAST({lit} AS DOUBLE PRECISION)"))
        elif kind == "word" and text.upper() in _MATH and not (sig_prev == ("op", ".")):
            j = i + 1
            while j < len(g) and isinstance(g[j], tuple) and g[j][0] == "ws":
                j += 1
            if j < len(g) and isinstance(g[j], list):
                args = [_xlate(a) for a in _split_args(g[j])]
                n_double = 1 if text.upper() in _ONE_DOUBLE else len(args)
                parts = [f"CAST(({_render(a)}) AS DOUBLE PRECISION)" if k < n_double else _render(a)
                         for k, a in enumerate(args)]
                out.append(("raw", f"{_MATH[text.upper()]}({', '.join(parts)})"))
                sig_prev = out[-1]
                i = j + 1
                continue
            out.append(t)
        else:
            out.append(t)
        if kind != "ws":
            sig_prev = out[-1]
        i += 1
    return _move_top(out)


def _move_top(g):
    """SELECT [ALL|DISTINCT] TOP n … → SELECT [ALL|DISTINCT] … LIMIT n, the LIMIT at the end
    of that query specification in this parenthesised level (before a set operator at the
    same level, where the specification must have been parenthesised: an error otherwise)."""
    g = list(g)
    sig = _sig(g)
    for k, i in enumerate(sig):
        if not _is_word(g[i], "SELECT"):
            continue
        k2 = k + 1
        if k2 < len(sig) and _is_word(g[sig[k2]], "ALL", "DISTINCT"):
            k2 += 1
        if k2 + 1 < len(sig) and _is_word(g[sig[k2]], "TOP") and g[sig[k2 + 1]][0] == "num":
            top_i, n_i = sig[k2], sig[k2 + 1]
            n = g[n_i][1]
            end = len(g)
            for i2 in sig[k2 + 2:]:
                if _is_word(g[i2], *_SET_OPS):
                    raise TranslationError("SELECT TOP … directly followed by a set operator")
            g[end:end] = [("raw", f" LIMIT {n} ")]
            g[top_i] = ("ws", "")
            g[n_i] = ("ws", "")
            return _move_top(g)  # indices moved: look again for another SELECT TOP
    return g


def translate_or_error(adql: str) -> str:
    try:
        return translate(adql)
    except TranslationError as e:
        return f"(no translation: {e})"


def translate(adql: str) -> str:
    """The PostgreSQL text of an ADQL query (see the module docstring)."""
    return _render(_xlate(_group(_tokens(adql)))).strip().rstrip(";")
