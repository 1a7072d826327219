"""Differential testing of vostok's ADQL translation against SQLite.

adqlgen.py generates random, valid ADQL 2.1 queries (seeded, deterministic) together with
their SQLite translation. Each query runs on vostok (/tap/sync, VOTable BINARY2) and on an
in-memory SQLite database holding the same rows, loaded from the raw demo files (never
from vostok, so an ingest bug cannot hide): hipparcos.hip2 from data/demo/hip2.dat.gz with
the byte ranges, types and units of data/demo/hipparcos.hip2.toml; gaia.dr3_bright from
gaia_merged.bin.gz; only TAP_SCHEMA.columns (metadata, not ingested data) is read from
vostok itself. Results must agree: the same columns, the same number of rows, the same
values (floats to 1e-9 relative / 1e-12 absolute, or the generator's wider tolerance for
float32 arithmetic and floating sums), NULL where NULL, in the same order when the query
orders by a unique key, as multisets otherwise.

Environment: VOSTOK_DIFF_SEED (default 20261122), VOSTOK_DIFF_N (default 300),
VOSTOK_DIFF_ALL=1 (also generate the features adqlgen.SWITCHED_OFF lists),
VOSTOK_DIFF_FEATURES_OFF=a,b (switch more features off while exploring).
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import math
import os
import re
import sqlite3
import struct
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import adqlgen  # noqa: E402
from vostok_helpers import GAIA_DTYPE, GAIA_RAW, REPO, http_post  # noqa: E402

SEED = int(os.environ.get("VOSTOK_DIFF_SEED", "20261122"))
N = int(os.environ.get("VOSTOK_DIFF_N", "300"))
COVERAGE_N = max(N, 1000)  # cases the feature-coverage test generates (not run: cheap)
VOSTOK_TIMEOUT = (10, 60)  # seconds: connect, read — per query
SQLITE_BUDGET_S = 30.0  # seconds per query in SQLite before the generator is blamed
REL_TOL, ABS_TOL = 1e-9, 1e-12

DEMO = REPO / "data" / "demo"
VOT_NS = "{http://www.ivoa.net/xml/VOTable/v1.3}"

# ---------------------------------------------------------------------------------------
# The SQLite copy
# ---------------------------------------------------------------------------------------

DF_OF_TOML = {"int16": "i16", "int32": "i32", "int64": "i64", "float32": "f32", "float64": "f64",
              "string": "str", "char": "str"}
SQL_OF_DF = {"i16": "INTEGER", "i32": "INTEGER", "i64": "INTEGER", "f32": "REAL", "f64": "REAL", "str": "TEXT"}
DF_OF_VOT = {"short": "i16", "int": "i32", "long": "i64", "float": "f32", "double": "f64", "char": "str",
             "unicodeChar": "str", "unsignedByte": "i16", "boolean": "i16"}
UNIT_TO_DEG = {"rad": 180.0 / math.pi, "deg": 1.0, "arcmin": 1.0 / 60.0, "arcsec": 1.0 / 3600.0,
               "mas": 1.0 / 3_600_000.0}


def _create(conn, name, cols, key):
    """cols: [(name, df)]; key: primary-key column names."""
    body = ", ".join(f'"{n}" {SQL_OF_DF[df]}' for n, df in cols)
    pk = f', PRIMARY KEY ({", ".join(chr(34) + k + chr(34) for k in key)})' if key else ""
    conn.execute(f'CREATE TABLE "{name}" ({body}{pk})')


def load_hip2(conn):
    """hip2.dat.gz read with the byte ranges, types and source units of the toml file."""
    meta = tomllib.loads((DEMO / "hipparcos.hip2.toml").read_text())
    cols = []
    for c in meta["columns"]:
        a, _, b = c["bytes"].partition("-")
        start, end = int(a) - 1, int(b or a)
        df = DF_OF_TOML[c["type"]]
        scale = None
        if c.get("source_unit") and c.get("source_unit") != c.get("unit"):
            scale = UNIT_TO_DEG[c["source_unit"]]
        cols.append((c["name"], df, start, end, scale))
    rows = []
    with gzip.open(DEMO / meta["source"]["path"], "rt") as f:
        for line in f:
            if not line.strip():
                continue
            row = []
            for _, df, start, end, scale in cols:
                cell = line[start:end].strip()
                if not cell:
                    row.append(None)
                elif df.startswith("i"):
                    row.append(int(cell))
                elif df == "str":
                    row.append(cell)
                else:
                    v = float(cell) * (scale if scale else 1.0)
                    row.append(adqlgen.f32(v) if df == "f32" else v)
            rows.append(row)
    assert len(rows) == meta["source"]["rows"], len(rows)
    spec = [(n, df) for n, df, *_ in cols]
    _create(conn, "hip2", spec, [meta["table"]["id"]])
    conn.executemany(f'INSERT INTO "hip2" VALUES ({", ".join("?" * len(spec))})', rows)
    return spec


def load_gaia(conn):
    """gaia_merged.bin.gz: a 16-byte header, then little-endian records (the toml's columns)."""
    meta = tomllib.loads((DEMO / "gaia.dr3_bright.toml").read_text())
    spec = [(c["name"], DF_OF_TOML[c["type"]]) for c in meta["columns"]]
    assert [n for n, _ in spec] == list(GAIA_DTYPE.names), (spec, GAIA_DTYPE.names)
    with gzip.open(GAIA_RAW, "rb") as f:
        raw = f.read()
    a = np.frombuffer(raw, dtype=GAIA_DTYPE, offset=meta["source"]["header_bytes"])
    assert len(a) == meta["source"]["rows"]
    _create(conn, "gaia", spec, [meta["table"]["id"]])
    columns = [a[n].astype(np.int64 if df.startswith("i") else np.float64).tolist() for n, df in spec]
    conn.executemany(f'INSERT INTO "gaia" VALUES ({", ".join("?" * len(spec))})', zip(*columns))
    return spec


def load_tap_columns(conn, base_url):
    """TAP_SCHEMA.columns as vostok publishes it (metadata: the only table read from vostok).
    Strings come from the CSV form of the same rows: a VOTable char FIELD is ASCII, so vostok
    writes a non-ASCII character there as '?' (the synthetic table's "BP − RP colour"), while
    its queries compare and order the true text."""
    query = "SELECT * FROM TAP_SCHEMA.columns ORDER BY table_name, column_name"
    fields, rows = run_vostok(base_url, query)
    r = http_post(base_url + "/tap/sync", data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query,
                                                 "RESPONSEFORMAT": "csv", "MAXREC": "100000"}, timeout=VOSTOK_TIMEOUT)
    assert r.status_code == 200, r.text[:500]
    text_rows = list(csv.reader(io.StringIO(r.content.decode("utf-8"))))[1:]
    assert len(text_rows) == len(rows), (len(text_rows), len(rows))
    rows = [tuple(t if isinstance(v, str) else v for v, t in zip(row, trow)) for row, trow in zip(rows, text_rows)]
    spec = [(f["name"], DF_OF_VOT[f["datatype"]]) for f in fields]
    _create(conn, "tap_columns", spec, [])
    conn.executemany(f'INSERT INTO "tap_columns" VALUES ({", ".join("?" * len(spec))})', rows)
    return spec


# ---------------------------------------------------------------------------------------
# vostok: one query, VOTable BINARY2 decoded here (exact values, explicit NULL flags)
# ---------------------------------------------------------------------------------------


class VostokError(Exception):
    pass


_FMT = {"boolean": ("c", 1), "unsignedByte": ("B", 1), "short": (">h", 2), "int": (">i", 4), "long": (">q", 8),
        "float": (">f", 4), "double": (">d", 8), "char": ("s", 1), "unicodeChar": ("u", 2)}


def decode_binary2(fields, data: bytes):
    """Rows of a BINARY2 stream: a null-flag bitmap per row, then each field big-endian."""
    nflag = (len(fields) + 7) // 8
    rows = []
    pos = 0
    end = len(data)
    plan = []
    for f in fields:
        dt = f["datatype"]
        size = f.get("arraysize")
        if dt not in _FMT:
            raise VostokError(f"unsupported VOTable datatype {dt}")
        var = size is not None and size.endswith("*")
        fixed = None if (size is None or var) else int(size.split("x")[0])
        plan.append((dt, size, var, fixed))
    while pos < end:
        flags = data[pos:pos + nflag]
        pos += nflag
        row = []
        for i, (dt, size, var, fixed) in enumerate(plan):
            isnull = bool(flags[i // 8] & (0x80 >> (i % 8)))
            fmt, width = _FMT[dt]
            if size is None:
                count = 1
            elif var:
                count = struct.unpack_from(">I", data, pos)[0]
                pos += 4
            else:
                count = fixed
            nbytes = count * width
            chunk = data[pos:pos + nbytes]
            pos += nbytes
            if isnull:
                row.append(None)
                continue
            if dt == "char":
                row.append(chunk.split(b"\0", 1)[0].decode("utf-8"))
            elif dt == "unicodeChar":
                row.append(chunk.decode("utf-16-be").split("\0", 1)[0])
            elif dt == "boolean":
                v = chunk[:1]
                row.append(None if v in (b"?", b" ", b"\0") else v in (b"T", b"t", b"1"))
            elif size is None:
                row.append(struct.unpack(fmt, chunk)[0])
            else:
                row.append(list(struct.unpack(f">{count}{fmt[-1]}", chunk)))
        rows.append(tuple(row))
    return rows


def run_vostok(base_url, adql, timeout=VOSTOK_TIMEOUT):
    """(fields, rows) of a sync query; VostokError with vostok's message on failure."""
    try:
        r = http_post(base_url + "/tap/sync",
                      data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": adql, "RESPONSEFORMAT": "votable/b2",
                            "MAXREC": "100000"}, timeout=timeout)
    except Exception as e:  # noqa: BLE001 — timeouts and connection errors are failures too
        raise VostokError(f"HTTP request failed: {e!r}")
    try:
        root = ET.fromstring(r.content)
    except ET.ParseError as e:
        raise VostokError(f"HTTP {r.status_code}, not XML ({e}): {r.text[:500]!r}")
    statuses = [(i.get("value"), (i.text or "").strip()) for i in root.iter(f"{VOT_NS}INFO")
                if i.get("name") == "QUERY_STATUS"]
    if r.status_code != 200 or any(v != "OK" for v, _ in statuses):
        msg = "; ".join(f"{v}: {t}" for v, t in statuses if v != "OK") or r.text[:500]
        raise VostokError(f"HTTP {r.status_code}, QUERY_STATUS {msg}")
    table = root.find(f".//{VOT_NS}TABLE")
    fields = [{"name": f.get("name"), "datatype": f.get("datatype"), "arraysize": f.get("arraysize")}
              for f in table.findall(f"{VOT_NS}FIELD")]
    stream = table.find(f".//{VOT_NS}BINARY2/{VOT_NS}STREAM")
    data = base64.b64decode("".join((stream.text or "").split())) if stream is not None else b""
    return fields, decode_binary2(fields, data)


def run_sqlite(conn, sql):
    deadline = time.monotonic() + SQLITE_BUDGET_S
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10000)
    try:
        cur = conn.execute(sql)
        names = [d[0] for d in cur.description]
        return names, [tuple(r) for r in cur.fetchall()]
    finally:
        conn.set_progress_handler(None, 0)


# ---------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def same_value(v, w, tol):
    if v is None or w is None:
        return v is None and w is None
    if _num(v) and _num(w):
        if isinstance(v, float) and math.isnan(v) or isinstance(w, float) and math.isnan(w):
            return False
        if v == w:
            return True
        if isinstance(v, int) and isinstance(w, int):
            return False
        return abs(v - w) <= max(ABS_TOL, tol, REL_TOL * max(abs(v), abs(w)))
    return type(v) is type(w) and v == w


def same_row(r1, r2, tols):
    return len(r1) == len(r2) and all(same_value(a, b, t) for a, b, t in zip(r1, r2, tols))


def _sort_key(row):
    """Exact ordering key (NULL < numbers < strings); ints and floats compare as numbers."""
    return tuple((0, 0) if v is None else (1, float(v)) if _num(v) else (2, str(v)) for v in row)


def _exact_key(row):
    return tuple(float(v) if _num(v) else v for v in row)


def multiset_diff(got, want, tols):
    """Rows of got without a partner in want and vice versa: equal rows pair first, then
    the leftovers pair within the tolerances, nearest first."""
    pool = defaultdict(list)
    for i, r in enumerate(want):
        pool[_exact_key(r)].append(i)
    used, rest = set(), []
    for r in got:
        hit = pool.get(_exact_key(r))
        if hit:
            used.add(hit.pop())
        else:
            rest.append(r)
    left = [i for i in range(len(want)) if i not in used]
    extra = []
    for r in rest:
        best, best_d = None, None
        for i in left:
            w = want[i]
            if same_row(r, w, tols):
                d = sum(abs(float(a) - float(b)) for a, b in zip(r, w) if _num(a) and _num(b))
                if best is None or d < best_d:
                    best, best_d = i, d
        if best is None:
            extra.append(r)
        else:
            left.remove(best)
    return extra, [want[i] for i in left]


def _as_votable_char(vfields, rows):
    """The oracle's rows as a VOTable char FIELD (ASCII) carries them: vostok writes each
    non-ASCII character there as '?' (a known loss, test_differential_pg.KNOWN)."""
    chars = [j for j, f in enumerate(vfields) if f.get("datatype") == "char"]
    if not chars:
        return rows
    def conv(v):
        return "".join(ch if ord(ch) < 128 else "?" for ch in v) if isinstance(v, str) else v
    return [tuple(conv(v) if j in chars else v for j, v in enumerate(r)) for r in rows]


def compare(case, vfields, vrows, snames, srows, oracle="SQLite"):
    """None when vostok's result equals the oracle's (SQLite, or PostgreSQL in
    test_differential_pg.py), else a description of the difference."""
    problems = []
    srows = _as_votable_char(vfields, srows)
    if len(vfields) != len(snames):
        return f"column count: vostok {len(vfields)} {[f['name'] for f in vfields]}, {oracle} {len(snames)} {snames}"
    vnames = [f["name"].lower() for f in vfields]
    if case.names_checked and vnames != [n.lower() for n in snames]:
        problems.append(f"column names: vostok {vnames}, {oracle} {[n.lower() for n in snames]}")
    tols = [oc.x.tol for oc in case.columns] if len(case.columns) == len(snames) else [0.0] * len(snames)
    if len(vrows) != len(srows):
        problems.append(f"row count: vostok {len(vrows)}, {oracle} {len(srows)}")
    if case.ordered:
        for i, (a, b) in enumerate(zip(vrows, srows)):
            if not same_row(a, b, tols):
                problems.append(f"ordered rows differ from row {i}:\n  vostok: {a}\n  {oracle}: {b}\n"
                                f"  (next vostok {vrows[i + 1:i + 4]}, next {oracle} {srows[i + 1:i + 4]})")
                break
    else:
        a_sorted, b_sorted = sorted(vrows, key=_sort_key), sorted(srows, key=_sort_key)
        if len(a_sorted) != len(b_sorted) or not all(same_row(a, b, tols) for a, b in zip(a_sorted, b_sorted)):
            extra, missing = multiset_diff(vrows, srows, tols)
            if extra or missing:
                problems.append(f"rows differ (as multisets): {len(extra)} only in vostok, {len(missing)} only in "
                                f"{oracle}\n  only vostok: {sorted(extra, key=_sort_key)[:5]}\n"
                                f"  only {oracle}: {sorted(missing, key=_sort_key)[:5]}")
    return "\n".join(problems) or None


# ---------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------


class DiffEnv:
    def __init__(self, base_url):
        t0 = time.monotonic()
        self.base_url = base_url
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        adqlgen.register_sqlite_functions(conn)
        hip = load_hip2(conn)
        gaia = load_gaia(conn)
        tap = load_tap_columns(conn, base_url)
        for c in ("sn", "so", "nc", "va"):
            conn.execute(f'CREATE INDEX "hip2_{c}" ON "hip2"("{c}")')
        conn.execute('CREATE INDEX "hip2_ra" ON "hip2"("ra")')
        conn.execute('CREATE INDEX "gaia_ra" ON "gaia"("ra")')
        conn.execute("ANALYZE")
        self.conn = conn
        self.tables = {
            "hip": adqlgen.table_info_from_sqlite(conn, "hipparcos.hip2", "hip2", ("hip",), hip, fine=("ra", "dec"),
                                                  ra_col="ra"),
            "gaia": adqlgen.table_info_from_sqlite(conn, "gaia.dr3_bright", "gaia", ("source_id",), gaia,
                                                   fine=("ra", "dec"), id_like=("source_id",), ra_col="ra"),
            "tap": adqlgen.table_info_from_sqlite(conn, "TAP_SCHEMA.columns", "tap_columns",
                                                  ("table_name", "column_name"), tap, reserved=("size",)),
        }
        self.features = adqlgen.enabled_features()
        self.gen = adqlgen.Generator(self.tables, self.features, SEED)
        self._cases = {}
        self.stats = Counter()
        self.load_seconds = time.monotonic() - t0

    def case(self, i):
        if i not in self._cases:
            self._cases[i] = self.gen.case(i)
        return self._cases[i]


@pytest.fixture(scope="module")
def diff(base_url):
    env = DiffEnv(base_url)
    print(f"\n[differential] SQLite copy loaded in {env.load_seconds:.1f}s; seed {SEED}, {N} queries; "
          f"features off: {sorted(set(adqlgen.FEATURES) - env.features)}", file=sys.stderr)
    t0 = time.monotonic()
    yield env
    print(f"\n[differential] {env.stats['run']} queries in {time.monotonic() - t0:.1f}s "
          f"(vostok {env.stats['vostok_ms'] / 1000:.1f}s, SQLite {env.stats['sqlite_ms'] / 1000:.1f}s), "
          f"{env.stats['rows']} rows compared, {env.stats['fail']} failed", file=sys.stderr)


# ---------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------


def _report(case, what, detail=""):
    return (f"{what}\n--- case {case.index} (seed {SEED}); features: {', '.join(case.features)}\n"
            f"--- ADQL:\n{case.adql}\n--- SQLite:\n{case.sqlite}\n{detail}")


@pytest.mark.parametrize("i", range(N), ids=lambda i: f"q{i:03d}")
def test_query_matches_sqlite(diff, i):
    case = diff.case(i)
    diff.stats["run"] += 1
    t0 = time.monotonic()
    try:
        snames, srows = run_sqlite(diff.conn, case.sqlite)
    except sqlite3.Error as e:
        diff.stats["fail"] += 1
        pytest.fail(_report(case, f"the SQLite translation failed (a generator bug): {e}"), pytrace=False)
    t1 = time.monotonic()
    try:
        vfields, vrows = run_vostok(diff.base_url, case.adql)
    except VostokError as e:
        diff.stats["fail"] += 1
        pytest.fail(_report(case, f"vostok refused or failed a valid ADQL query: {e}",
                            f"--- SQLite gives {len(srows)} rows, e.g. {srows[:3]}"), pytrace=False)
    t2 = time.monotonic()
    diff.stats["sqlite_ms"] += (t1 - t0) * 1000
    diff.stats["vostok_ms"] += (t2 - t1) * 1000
    diff.stats["rows"] += len(srows)
    problem = compare(case, vfields, vrows, snames, srows)
    if problem:
        diff.stats["fail"] += 1
        types = ", ".join(f"{f['name']}:{f['datatype']}" for f in vfields)
        pytest.fail(_report(case, "vostok and SQLite disagree", f"--- {problem}\n--- vostok columns: {types}; "
                            f"first rows vostok {vrows[:3]}, SQLite {srows[:3]}"), pytrace=False)


def test_generator_is_deterministic(diff):
    """The same seed gives the same queries (also from a fresh generator)."""
    other = adqlgen.Generator(diff.tables, diff.features, SEED)
    for i in (0, 1, N // 2, N - 1):
        a, b = diff.case(i), other.case(i)
        assert (a.adql, a.sqlite) == (b.adql, b.sqlite), i


def test_feature_coverage(diff):
    """Every feature the generator has switched on appears in the first COVERAGE_N queries,
    so that no feature is left out silently (the switched-off ones are listed in
    adqlgen.SWITCHED_OFF and tested below)."""
    used = Counter()
    for i in range(COVERAGE_N):
        used.update(diff.case(i).features)
    missing = sorted(f for f in diff.features if used[f] == 0)
    rare = {f: used[f] for f in sorted(diff.features) if 0 < used[f] < 3}
    print(f"\n[differential] feature use over {COVERAGE_N} queries: "
          + ", ".join(f"{f} {used[f]}" for f in sorted(diff.features)), file=sys.stderr)
    assert not missing, f"enabled features never generated in {COVERAGE_N} queries: {missing} (rare: {rare})"


# Defined only while a feature is switched off: with SWITCHED_OFF empty there is nothing to
# check (and an empty parameter set would show up as a skipped test).
if adqlgen.SWITCHED_OFF:
    @pytest.mark.parametrize("feature", sorted(adqlgen.SWITCHED_OFF))
    def test_switched_off_feature_still_fails(base_url, feature):
        """A feature switched off because vostok fails it. XFAIL while the bug is there; when
        vostok gives the ADQL 2.1 answer, this XPASSes (strict: a failure) — then delete the
        entry from adqlgen.SWITCHED_OFF to generate the feature again."""
        b = adqlgen.SWITCHED_OFF[feature]
        try:
            fields, rows = run_vostok(base_url, b.adql, timeout=(10, 20))  # one of them hangs
        except VostokError as e:
            got = f"error: {e}"
            ok = b.expected is None
        else:
            got = rows
            ok = b.expected is not None and len(rows) == len(b.expected) and all(
                same_row(r, e, [0.0] * len(e)) for r, e in zip(sorted(rows, key=_sort_key),
                                                               sorted(b.expected, key=_sort_key)))
        if not ok:
            pytest.xfail(f"{feature}: {b.adql} → {got}; ADQL 2.1: {b.expected} ({b.standard})")
        pytest.fail(f"vostok now gives the ADQL 2.1 answer for '{feature}' ({b.adql} → {got}): delete "
                    f"SWITCHED_OFF['{feature}'] in adqlgen.py so the generator uses it again", pytrace=False)


# Query shapes vostok once answered wrongly, refused or failed after HTTP 200 (found by this
# test and kept in adqlgen.SWITCHED_OFF until they were fixed), each with the answer ADQL 2.1
# gives: (name, ADQL, rows — or an error message part the refusal must contain).
REGRESSIONS = [
    # SMALLINT/INTEGER arithmetic is BIGINT; BIGINT overflow is an error with its position.
    ("narrow_int_overflow", "SELECT sn * sn * sn AS c FROM hipparcos.hip2 WHERE hip = 52538", [(1520875,)]),
    ("narrow_int_overflow_integer", "SELECT hip * hip * hip AS c FROM hipparcos.hip2 WHERE hip = 120082",
     [(1731544821191368,)]),
    ("narrow_int_overflow_negation", "SELECT -(sn * sn * sn) AS c FROM hipparcos.hip2 WHERE hip = 52538",
     [(-1520875,)]),
    ("bigint_overflow_is_an_error", "SELECT hip * 9223372036854775807 AS c FROM hipparcos.hip2 WHERE hip = 2",
     "numeric value out of range"),
    # INTERSECT ALL / EXCEPT ALL: min(m, n) and max(m - n, 0) copies.
    ("intersect_all", "SELECT sn FROM hipparcos.hip2 WHERE hip <= 10 "
     "INTERSECT ALL SELECT sn FROM hipparcos.hip2 WHERE hip BETWEEN 11 AND 12", [(5,), (5,)]),
    ("except_all", "SELECT sn FROM hipparcos.hip2 WHERE hip <= 10 "
     "EXCEPT ALL SELECT sn FROM hipparcos.hip2 WHERE hip BETWEEN 11 AND 12", [(5,)] * 7 + [(75,)]),
    ("intersect_all_three_copies", "SELECT va FROM hipparcos.hip2 WHERE hip <= 10 "
     "INTERSECT ALL SELECT va FROM hipparcos.hip2 WHERE hip BETWEEN 1 AND 3", [(0,)] * 3),
    ("except_all_three_copies", "SELECT va FROM hipparcos.hip2 WHERE hip <= 10 "
     "EXCEPT ALL SELECT va FROM hipparcos.hip2 WHERE hip BETWEEN 1 AND 3", [(0,)] * 6 + [(1,)]),
    ("intersect_all_two_columns", "SELECT sn, va FROM hipparcos.hip2 WHERE hip <= 10 "
     "INTERSECT ALL SELECT sn, va FROM hipparcos.hip2 WHERE hip BETWEEN 1 AND 3",
     [(5, 0), (75, 0), (5, 0)]),
    # The same when coercion casts one side's keys (TAP_SCHEMA's VARCHAR is Utf8, a computed
    # one Utf8View): seed 11 x 2,000, VOSTOK_DIFF_ALL=1, case 755, minimised.
    ("except_all_cast_keys", "SELECT t1.datatype AS v FROM TAP_SCHEMA.columns AS t1 "
     "WHERE t1.table_name = 'hipparcos.hip2' AND t1.datatype <> 'double' EXCEPT ALL "
     "SELECT CASE WHEN h.hip > 0 THEN 'short' ELSE CAST(h.hip AS VARCHAR) END AS v "
     "FROM hipparcos.hip2 AS h WHERE h.hip <= 2", [("int",)] + [("short",)] * 5),
    ("intersect_all_cast_keys", "SELECT t1.datatype AS v FROM TAP_SCHEMA.columns AS t1 "
     "WHERE t1.table_name = 'hipparcos.hip2' INTERSECT ALL "
     "SELECT CASE WHEN h.hip > 0 THEN 'short' ELSE CAST(h.hip AS VARCHAR) END AS v "
     "FROM hipparcos.hip2 AS h WHERE h.hip <= 2", [("short",)] * 2),
    # An output alias equal to a column name; ORDER BY the table's column (ordered).
    ("alias_shadows_column", "SELECT t.sn AS hip FROM hipparcos.hip2 AS t WHERE t.hip < 3 ORDER BY t.hip",
     [(5,), (75,)]),
    ("alias_shadows_column_order", "SELECT t.sn AS ra FROM hipparcos.hip2 AS t WHERE t.hip < 4 ORDER BY t.ra",
     [(5,), (75,), (5,)]),
    # CASE and UNION over mixed types: the common type, declared before the first byte.
    ("case_mixed_types", "SELECT CASE WHEN hip = 1 THEN sn ELSE hip END AS c FROM hipparcos.hip2 WHERE hip = 1",
     [(5,)]),
    ("set_mixed_string_types", "SELECT t1.datatype AS v FROM TAP_SCHEMA.columns AS t1 WHERE t1.column_name = 'hip' "
     "UNION ALL SELECT CAST(h.hip AS VARCHAR) AS v FROM hipparcos.hip2 AS h WHERE h.hip = 1", [("int",), ("1",)]),
    # IN subqueries: correlated, widened, under OR and NOT, with NULLs (three-valued logic).
    ("correlated_not_in", "SELECT t.hip FROM hipparcos.hip2 AS t WHERE t.hip < 5 AND "
     "t.sn NOT IN (SELECT s.sn FROM hipparcos.hip2 AS s WHERE s.hip = t.hip + 1)", [(1,), (2,)]),
    ("correlated_in_widened", "SELECT t.hip FROM hipparcos.hip2 AS t WHERE t.hip < 5 AND "
     "t.hip + 0 IN (SELECT s.hip FROM hipparcos.hip2 AS s WHERE s.hip = t.hip)", [(1,), (2,), (3,), (4,)]),
    ("in_subquery_null_in_or", "SELECT a.hip FROM hipparcos.hip2 AS a LEFT JOIN hipparcos.hip2 AS b "
     "ON b.hip = a.hip + 1000000 WHERE a.hip < 3 AND (b.sn NOT IN (SELECT s.sn FROM hipparcos.hip2 AS s) "
     "OR a.hip > 5)", []),
    ("in_subquery_null_under_not", "SELECT a.hip FROM hipparcos.hip2 AS a LEFT JOIN hipparcos.hip2 AS b "
     "ON b.hip = a.hip + 1000000 WHERE a.hip < 3 AND NOT (b.sn > 1 AND b.sn IN (SELECT s.sn FROM "
     "hipparcos.hip2 AS s))", []),
    ("not_in_subquery_with_nulls_in_or", "SELECT COUNT(*) AS n FROM TAP_SCHEMA.columns AS c WHERE "
     "c.column_name NOT IN (SELECT u.unit FROM TAP_SCHEMA.columns AS u) OR c.std > 5", [(0,)]),
    ("set_in_subquery_in_or", "SELECT hip FROM hipparcos.hip2 WHERE hip < 10 AND (hip IN (SELECT s.sn FROM "
     "hipparcos.hip2 AS s UNION SELECT u.sn FROM hipparcos.hip2 AS u) OR hip = 3)",
     [(1,), (3,), (5,), (7,), (9,)]),
    # Conditions on the NULL-extended side of outer joins (and NULL LIKE '%').
    ("like_all_wildcard_null", "SELECT COUNT(b.nc) AS n, SUM(b.sn) AS s FROM hipparcos.hip2 AS a RIGHT OUTER JOIN "
     "hipparcos.hip2 AS b ON a.hip = b.hip + 5 AND a.hip < 0 WHERE b.hip BETWEEN 20 AND 30 "
     "AND CAST(a.nc AS VARCHAR) LIKE '%'", [(0, None)]),
    ("outer_join_null_side_filter", "SELECT t2.sn FROM hipparcos.hip2 AS t1 RIGHT OUTER JOIN hipparcos.hip2 AS t2 "
     "ON t1.hip = t2.hip + 1000000 WHERE t2.hip BETWEEN 20 AND 30 AND (t2.sn < 0 OR t1.sn > 0)", []),
    ("outer_join_null_side_filter_full", "SELECT t2.sn FROM hipparcos.hip2 AS t1 FULL OUTER JOIN hipparcos.hip2 "
     "AS t2 ON t1.hip = t2.hip + 1000000 WHERE t2.hip BETWEEN 20 AND 30 AND (t2.sn < 0 OR t1.sn > 0)", []),
    ("outer_join_null_side_is_null", "SELECT t2.dec FROM hipparcos.hip2 AS t1 RIGHT OUTER JOIN hipparcos.hip2 AS t2 "
     "ON t1.hip = t2.hip + 1000000 WHERE t2.hip BETWEEN 20 AND 23 AND t1.dec IS NULL",
     [(23.52928426718045,), (8.007234299219437,), (-49.352266743696255,), (13.312210973059132,)]),
    # Two aggregates over x and CAST(x); USING columns unqualified.
    ("agg_cast_twins", "SELECT MIN(sn) AS a, MIN(CAST(sn AS DOUBLE PRECISION)) AS b FROM hipparcos.hip2",
     [(0, 0.0)]),
    ("agg_cast_twins_max", "SELECT MAX(t.hip) AS a, MAX(CAST(t.hip AS BIGINT)) AS b FROM hipparcos.hip2 AS t",
     [(120404, 120404)]),
    ("using_unqualified", "SELECT hip, b.sn FROM hipparcos.hip2 AS a JOIN hipparcos.hip2 AS b USING (hip) "
     "WHERE hip < 3", [(1, 5), (2, 75)]),
    # -0.0 = 0.0 in IN lists and DISTINCT aggregates.
    ("in_list_negative_zero", "SELECT hip FROM hipparcos.hip2 WHERE hip = 1 AND -0.0 * hip IN (0.0, 5.0)", [(1,)]),
    ("distinct_negative_zero", "SELECT COUNT(DISTINCT CEILING(v_i)) AS n, COUNT(*) AS m FROM hipparcos.hip2 "
     "WHERE hip IN (3, 63)", [(1, 2)]),
    # A filter above a one-row global aggregate stays above it.
    ("filter_over_global_aggregate", "SELECT d.k FROM (SELECT 5 AS k, COUNT(*) AS c FROM hipparcos.hip2 "
     "WHERE hip < 3) AS d WHERE d.k > 6", []),
    ("filter_over_global_aggregate_scalar", "SELECT d.k FROM (SELECT 5 AS k, COUNT(*) AS c FROM hipparcos.hip2 "
     "WHERE hip < 3) AS d WHERE 1 = (SELECT COUNT(*) FROM hipparcos.hip2 AS s WHERE s.hip < 0)", []),
    # Correlated scalar subqueries DataFusion does not decorrelate (adql/src/rules/scalar_subquery.rs):
    # correlated by a non-equality, with COUNT over no rows, HAVING, an outer column in the value,
    # and without an aggregate (one row, none: NULL, more than one: the SQL error).
    ("correlated_scalar_range", "SELECT a.hip, (SELECT COUNT(*) FROM hipparcos.hip2 AS b WHERE b.hip BETWEEN "
     "a.hip AND a.hip + 2) AS n FROM hipparcos.hip2 AS a WHERE a.hip < 5", [(1, 3), (2, 3), (3, 3), (4, 3)]),
    ("correlated_scalar_range_avg", "SELECT a.hip FROM hipparcos.hip2 AS a WHERE a.hip < 50 AND a.hpmag < "
     "(SELECT AVG(b.hpmag) FROM hipparcos.hip2 AS b WHERE b.plx > a.plx + 5)",
     [(h,) for h in (3, 4, 11, 14, 17, 19, 21, 23, 25, 30, 31, 33, 34, 36, 39, 42, 43, 44, 48)]),
    ("correlated_scalar_range_count_empty", "SELECT a.hip FROM hipparcos.hip2 AS a WHERE a.hip < 4 AND "
     "(SELECT COUNT(*) FROM hipparcos.hip2 AS b WHERE b.hip > a.hip + 1000000) = 0", [(1,), (2,), (3,)]),
    ("correlated_scalar_range_outer_value", "SELECT a.hip, (SELECT SUM(b.sn) + a.sn FROM hipparcos.hip2 AS b "
     "WHERE b.hip > a.hip AND b.hip < a.hip + 4) AS s FROM hipparcos.hip2 AS a WHERE a.hip < 6",
     [(1, 90), (2, 90), (3, 20), (4, 20), (5, 20)]),
    ("correlated_scalar_range_having", "SELECT a.hip, (SELECT COUNT(*) FROM hipparcos.hip2 AS b WHERE b.hip > a.hip "
     "AND b.hip < a.hip + 5 AND b.sn > 5 HAVING COUNT(*) > 0) AS s FROM hipparcos.hip2 AS a WHERE a.hip < 8",
     [(1, 1)] + [(h, None) for h in range(2, 8)]),
    # The outer WHERE's other terms select the rows first: the subquery is computed for 109
    # outer rows, not for the 117,955 of the table (which ran past the time limit).
    ("correlated_scalar_range_outer_filter_first", "SELECT COUNT(*) AS n FROM hipparcos.hip2 AS t1 WHERE "
     "t1.ra BETWEEN 193.09 AND 193.59 AND t1.plx > (SELECT MIN(s.plx) FROM hipparcos.hip2 AS s WHERE "
     "s.hip BETWEEN t1.hip + 1 AND t1.hip + 2)", [(109,)]),
    ("correlated_scalar_row", "SELECT a.hip, (SELECT b.sn FROM hipparcos.hip2 AS b WHERE b.hip = a.hip + 1) AS s "
     "FROM hipparcos.hip2 AS a WHERE a.hip < 4", [(1, 75), (2, 5), (3, 5)]),
    ("correlated_scalar_row_none", "SELECT a.hip, (SELECT b.sn FROM hipparcos.hip2 AS b WHERE b.hip = "
     "a.hip + 1000000) AS s FROM hipparcos.hip2 AS a WHERE a.hip < 3", [(1, None), (2, None)]),
    ("correlated_scalar_row_in_where", "SELECT a.hip FROM hipparcos.hip2 AS a WHERE a.hip < 30 AND a.sn = "
     "(SELECT b.sn FROM hipparcos.hip2 AS b WHERE b.hip = a.hip + 1)",
     [(h,) for h in list(range(3, 24)) + [26, 27, 28, 29]]),
    ("correlated_scalar_more_than_one_row", "SELECT a.hip, (SELECT b.sn FROM hipparcos.hip2 AS b WHERE b.hip "
     "BETWEEN a.hip AND a.hip + 1) AS s FROM hipparcos.hip2 AS a WHERE a.hip < 3",
     "more than one row returned by a subquery used as a value"),
    # An uncorrelated scalar subquery of more than one row is an error only where a row needs
    # its value (PostgreSQL seed 36 case 1810: no outer row, an empty result, not an error).
    ("uncorrelated_scalar_many_rows_no_outer_row_where", "SELECT a.hip FROM hipparcos.hip2 AS a WHERE "
     "a.hip < 0 AND a.sn = (SELECT b.sn FROM hipparcos.hip2 AS b WHERE b.hip < 3)", []),
    ("uncorrelated_scalar_many_rows_no_outer_row_select", "SELECT a.hip, (SELECT b.sn FROM hipparcos.hip2 "
     "AS b WHERE b.hip < 3) AS s FROM hipparcos.hip2 AS a WHERE a.hip < 0", []),
    ("uncorrelated_scalar_more_than_one_row", "SELECT a.hip, (SELECT b.sn FROM hipparcos.hip2 AS b WHERE "
     "b.hip < 3) AS s FROM hipparcos.hip2 AS a WHERE a.hip < 3",
     "more than one row returned by a subquery used as a value"),
    ("uncorrelated_scalar_one_row", "SELECT a.hip, (SELECT b.sn FROM hipparcos.hip2 AS b WHERE "
     "b.hip = 2) AS s FROM hipparcos.hip2 AS a WHERE a.hip < 3", [(1, 75), (2, 75)]),
    # Correlated scalar subqueries once refused: correlated in the ON of an inner join of the
    # subquery (COUNT over no rows: 0), and used in ORDER BY, GROUP BY and a join's ON (reading
    # one side of a LEFT JOIN; NULL when the subquery has no row). TOP in one: test_differential_pg.py.
    ("correlated_scalar_inner_join_on", "SELECT a.hip, (SELECT MAX(c.plx) FROM hipparcos.hip2 AS b JOIN "
     "hipparcos.hip2 AS c ON c.hip = b.hip + 1 AND b.hip = a.hip) AS m FROM hipparcos.hip2 AS a WHERE a.hip < 4",
     [(1, 20.85), (2, 2.26), (3, 7.45)]),
    ("correlated_scalar_inner_join_on_count_empty", "SELECT a.hip, (SELECT COUNT(*) FROM hipparcos.hip2 AS b "
     "JOIN hipparcos.hip2 AS c ON c.hip = b.hip AND b.hip = a.hip + 100000) AS n FROM hipparcos.hip2 AS a "
     "WHERE a.hip < 3 OR a.hip > 120402", [(1, 1), (2, 1), (120403, 0), (120404, 0)]),
    ("correlated_scalar_in_order_by", "SELECT a.hip FROM hipparcos.hip2 AS a WHERE a.hip < 8 ORDER BY "
     "(SELECT b.plx FROM hipparcos.hip2 AS b WHERE b.hip = a.hip + 1) DESC",
     [(1,), (5,), (6,), (3,), (7,), (4,), (2,)]),
    ("correlated_scalar_in_group_by", "SELECT (SELECT MAX(b.sn) FROM hipparcos.hip2 AS b WHERE b.hip > a.hip "
     "AND b.hip < a.hip + 3) AS g, COUNT(*) AS n FROM hipparcos.hip2 AS a WHERE a.hip < 20 GROUP BY "
     "(SELECT MAX(b.sn) FROM hipparcos.hip2 AS b WHERE b.hip > a.hip AND b.hip < a.hip + 3)", [(5, 18), (75, 1)]),
    ("correlated_scalar_in_join_on", "SELECT a.hip, c.hip AS c_hip FROM hipparcos.hip2 AS a JOIN hipparcos.hip2 "
     "AS c ON c.hip = (SELECT MIN(b.hip) FROM hipparcos.hip2 AS b WHERE b.hip > a.hip) WHERE a.hip < 4",
     [(1, 2), (2, 3), (3, 4)]),
    ("correlated_scalar_in_left_join_on", "SELECT a.hip, c.hip AS c_hip FROM hipparcos.hip2 AS a LEFT JOIN "
     "hipparcos.hip2 AS c ON c.hip = (SELECT MIN(b.hip) FROM hipparcos.hip2 AS b WHERE b.hip > a.hip + 1) "
     "WHERE a.hip < 3 OR a.hip > 120402", [(1, 3), (2, 4), (120403, None), (120404, None)]),
    # ORDER BY … OFFSET over a UNION ALL whose branches a sort below the union would order by
    # less: a constant that differs per branch, a column twice (seed 12 case 1716, seed 15
    # case 410, minimised; the plan failed DataFusion's order check).
    ("union_order_constant_per_branch", "SELECT hip AS v0, 100 AS v1, hip AS v2 FROM hipparcos.hip2 "
     "WHERE hip BETWEEN 1 AND 4 UNION ALL SELECT hip AS v0, 300 AS v1, hip AS v2 FROM hipparcos.hip2 "
     "WHERE hip BETWEEN 3 AND 6 ORDER BY v0 DESC, 2 DESC, 3 OFFSET 2",
     [(4, 300, 4), (4, 100, 4), (3, 300, 3), (3, 100, 3), (2, 100, 2), (1, 100, 1)]),
    ("union_order_column_twice", "SELECT hip AS v0, hip AS v1, sn AS v2 FROM hipparcos.hip2 WHERE hip <= 3 "
     "UNION ALL SELECT hip AS v0, hip AS v1, sn AS v2 FROM hipparcos.hip2 WHERE hip BETWEEN 2 AND 4 "
     "ORDER BY 1 DESC, v1, v2 OFFSET 1", [(3, 3, 5), (3, 3, 5), (2, 2, 75), (2, 2, 75), (1, 1, 5)]),
    # Two aggregates of one column, one through a CAST, the column qualified in one only
    # (seed 12 case 1047, seed 16 case 640, minimised: "duplicate unqualified field name").
    ("agg_cast_twins_qualified_once", "SELECT MAX(d.c0) AS a, MAX(CAST(c0 AS BIGINT)) AS b FROM "
     "(SELECT sn AS c0 FROM hipparcos.hip2 WHERE hip < 5) AS d", [(75, 75)]),
    # The same with a delimited identifier (seed 27 cases 19 and 846, PostgreSQL seed 38 case
    # 1585, minimised): `MAX("sn")` and `MAX(CAST(t1.sn …))`.
    ("agg_cast_twins_delimited", "SELECT MAX(t1.\"sn\") AS a, MAX(CAST(sn AS DOUBLE PRECISION)) AS b "
     "FROM hipparcos.hip2 AS t1 WHERE t1.hip < 5", [(75, 75.0)]),
    ("agg_cast_twins_delimited_difference", "SELECT MAX(CAST(t1.hpmag AS DOUBLE PRECISION)) - "
     "MAX(\"hpmag\") AS c FROM hipparcos.hip2 AS t1 WHERE t1.hip < 3", [(0.0,)]),
    # COUNT(*) beside a count of a cast literal 1 (PostgreSQL seed 40 case 998, minimised).
    ("agg_cast_twins_count_star", "SELECT COUNT(CAST(CAST(1 AS VARCHAR) AS INTEGER)) AS a, COUNT(*) AS b "
     "FROM hipparcos.hip2 WHERE hip < 5", [(4, 4)]),
    ("agg_cast_twins_qualified_other", "SELECT MAX(sn) AS a, MAX(CAST(t1.sn AS REAL)) + 1 AS b "
     "FROM hipparcos.hip2 AS t1 WHERE t1.hip < 5", [(75, 76.0)]),
    # Set operands the optimiser folds or removes (field metadata changes under a UNION).
    ("set_folded_column", "SELECT t1.sn * 1 AS v0 FROM hipparcos.hip2 AS t1 WHERE t1.hip = 1 "
     "UNION SELECT t3.sn * 1 AS v0 FROM hipparcos.hip2 AS t3 WHERE t3.hip = 2", [(5,), (75,)]),
    ("set_operand_always_empty", "SELECT t1.hpmag * 2 AS v0 FROM hipparcos.hip2 AS t1 WHERE t1.hip < 3 UNION ALL "
     "SELECT t2.hpmag * 3 AS v0 FROM hipparcos.hip2 AS t2 WHERE t2.hip < 3 UNION "
     "SELECT t3.plx AS v0 FROM hipparcos.hip2 AS t3 WHERE 1 = 0",
     [(18.4086,), (18.8034,), (27.6129,), (28.2051,)]),
    # A UNION's DISTINCT under the MAXREC limit, over a TOP … ORDER BY operand of an EXCEPT ALL
    # (seed 28 case 904, as generated: smaller forms do not reach it; "Internal error: Ordering
    # direction required for DISTINCT with limit", vendor/README.md).
    ("union_distinct_over_top_operand", "SELECT 100 AS v0 FROM \"hipparcos\".hip2 As t1 WHERE t1.HIP "
     "BETWEEN 2371 AND 2471 Union ((SELECT TOP 10 nc - 10 AS v0 FROM hipparcos.hip2 AS t2 WHERE t2.ra "
     "BETWEEN 173.75 AND 173.95 AND EXP(T2.\"dec\" / 20.0) BETWEEN 22.63 AND 84.138 ORDER BY t2.hip DESC) "
     "EXCEPT all (SELECT 100 AS v0 FROM hipparcos.hip2 AS t3 WHERE t3.ra BETWEEN 70.88 AND 71.38 AND 2 "
     "BETWEEN 2 AND 2 UNION Select 100 AS v0 FROM hipparcos.hip2 AS t4 WHERE t4.hip BETWEEN 19153 AND 19955))",
     [(-9,), (-8,), (100,)]),
    # A condition over a UNION whose other operand is always empty, of an INTERSECT ALL or
    # EXCEPT ALL (PostgreSQL seed 37 case 1315, minimised: refused with "No field named v0").
    ("set_all_under_union_with_empty_operand", "SELECT c.v0 FROM (SELECT hip AS v0, sn AS v1 FROM "
     "hipparcos.hip2 WHERE 1000.0 > 1000.00 UNION SELECT hip AS v0, sn AS v1 FROM hipparcos.hip2 WHERE "
     "hip < 5 INTERSECT ALL SELECT hip AS v0, sn AS v1 FROM hipparcos.hip2 WHERE hip > 1 AND hip < 8) AS c "
     "WHERE c.v0 < 4", [(2,), (3,)]),
    ("except_all_under_union_with_empty_operand", "SELECT c.v1 FROM (SELECT hip AS v0, sn AS v1 FROM "
     "hipparcos.hip2 WHERE 1 = 0 UNION ALL SELECT hip AS v0, sn AS v1 FROM hipparcos.hip2 WHERE hip < 6 "
     "EXCEPT ALL SELECT hip AS v0, sn AS v1 FROM hipparcos.hip2 WHERE hip < 3) AS c WHERE c.v0 > 3",
     [(5,), (5,)]),
]


def _regression_params():
    for name, adql, expected in REGRESSIONS:
        yield pytest.param(name, adql, expected, id=name)


def ordered_at_top(adql):
    """Whether the query's own ORDER BY (not one of a parenthesised operand) orders its rows."""
    at = adql.upper().rfind(" ORDER BY ")
    return at >= 0 and adql[:at].count("(") == adql[:at].count(")")


@pytest.mark.parametrize("name,adql,expected", list(_regression_params()))
def test_fixed_shape(base_url, name, adql, expected):
    """Each query shape vostok once got wrong gives the ADQL 2.1 answer (rows compared as
    multisets unless the query orders by a unique key), or the error it must give."""
    if isinstance(expected, str):
        with pytest.raises(VostokError) as e:
            run_vostok(base_url, adql)
        assert expected in str(e.value), str(e.value)
        return
    fields, rows = run_vostok(base_url, adql)
    if ordered_at_top(adql):
        assert len(rows) == len(expected) and all(same_row(r, w, [1e-12] * len(w)) for r, w in zip(rows, expected)), \
            (rows, expected)
        return
    tols = [1e-9] * (len(expected[0]) if expected else 0)
    extra, missing = multiset_diff(rows, expected, tols)
    assert not extra and not missing and len(rows) == len(expected), (rows, expected)


# The regressions whose answer SQLite cannot give, and why; every other one's expected rows
# are also SQLite's answer (test_fixed_shape_answer_is_sqlites).
NOT_IN_SQLITE = {
    "bigint_overflow_is_an_error": "SQLite turns an INTEGER overflow into a REAL",
    "correlated_scalar_more_than_one_row": "SQLite takes the first row of a scalar subquery",
    "uncorrelated_scalar_more_than_one_row": "SQLite takes the first row of a scalar subquery",
    "intersect_all": "SQLite has no INTERSECT ALL",
    "except_all": "SQLite has no EXCEPT ALL",
    "intersect_all_three_copies": "SQLite has no INTERSECT ALL",
    "except_all_three_copies": "SQLite has no EXCEPT ALL",
    "intersect_all_two_columns": "SQLite has no INTERSECT ALL",
    "except_all_cast_keys": "SQLite has no EXCEPT ALL",
    "intersect_all_cast_keys": "SQLite has no INTERSECT ALL",
    "set_all_under_union_with_empty_operand": "SQLite has no INTERSECT ALL",
    "except_all_under_union_with_empty_operand": "SQLite has no EXCEPT ALL",
    "union_distinct_over_top_operand": "SQLite has no EXCEPT ALL",
    # SQLite joins these 118,218 x 118,218 rows by a nested loop (no index on b.hip + k):
    # interrupted after SQLITE_BUDGET_S.
    "like_all_wildcard_null": "SQLite's RIGHT JOIN exceeds the time budget",
    "outer_join_null_side_filter": "SQLite's RIGHT JOIN exceeds the time budget",
    "outer_join_null_side_filter_full": "SQLite's FULL JOIN exceeds the time budget",
    "outer_join_null_side_is_null": "SQLite's RIGHT JOIN exceeds the time budget",
}


def sqlite_of(adql):
    """A regression query in SQLite's words: the SQLite copy's table names."""
    sql = adql.replace("hipparcos.hip2", "hip2").replace("TAP_SCHEMA.columns", "tap_columns")
    # SQLite has OFFSET only after a LIMIT
    return re.sub(r" OFFSET (\d+)$", r" LIMIT -1 OFFSET \1", sql)


@pytest.mark.parametrize("name,adql,expected", [r for r in REGRESSIONS if r[0] not in NOT_IN_SQLITE],
                         ids=[r[0] for r in REGRESSIONS if r[0] not in NOT_IN_SQLITE])
def test_fixed_shape_answer_is_sqlites(diff, name, adql, expected):
    """The expected rows of a regression are not made up: SQLite, on the same rows, gives
    them too."""
    _, rows = run_sqlite(diff.conn, sqlite_of(adql))
    tols = [1e-9] * (len(expected[0]) if expected else 0)
    if " ORDER BY " in adql:
        assert len(rows) == len(expected) and all(same_row(r, w, tols) for r, w in zip(rows, expected)), \
            (rows, expected)
        return
    extra, missing = multiset_diff(rows, expected, tols)
    assert not extra and not missing and len(rows) == len(expected), (rows, expected)


def test_binary2_decoder_roundtrip():
    """The little BINARY2 decoder used above (nulls, variable strings, all scalar types)."""
    fields = [{"name": "a", "datatype": "int", "arraysize": None},
              {"name": "b", "datatype": "char", "arraysize": "*"},
              {"name": "c", "datatype": "double", "arraysize": None},
              {"name": "d", "datatype": "short", "arraysize": None},
              {"name": "e", "datatype": "float", "arraysize": None},
              {"name": "f", "datatype": "long", "arraysize": None},
              {"name": "g", "datatype": "boolean", "arraysize": None},
              {"name": "h", "datatype": "double", "arraysize": "2"},
              {"name": "i", "datatype": "char", "arraysize": "*"}]
    row1 = bytes([0b00000000, 0]) + struct.pack(">i", -7) + struct.pack(">I", 3) + b"abc" + \
        struct.pack(">d", 1.5) + struct.pack(">h", 3) + struct.pack(">f", 0.25) + struct.pack(">q", 2 ** 40) + \
        b"T" + struct.pack(">2d", 1.0, 2.0) + struct.pack(">I", 0)
    row2 = bytes([0b01100000, 0b10000000]) + struct.pack(">i", 1) + struct.pack(">I", 0) + \
        struct.pack(">d", 0.0) + struct.pack(">h", 0) + struct.pack(">f", 0) + struct.pack(">q", 0) + b"F" + \
        struct.pack(">2d", 0, 0) + struct.pack(">I", 1) + b"x"
    rows = decode_binary2(fields, row1 + row2)
    assert rows == [(-7, "abc", 1.5, 3, 0.25, 2 ** 40, True, [1.0, 2.0], ""),
                    (1, None, None, 0, 0.0, 0, False, [0.0, 0.0], None)]


def test_compare_catches_differences():
    """compare() flags a wrong value, a missing row, a NULL for a value, an int for a str."""
    oc = adqlgen.OutCol("x", adqlgen.X("x", "x", "float", tol=0.0))
    case = adqlgen.Case(0, "", "", [oc, oc], False, [], True)
    f = [{"name": "x"}, {"name": "x"}]
    assert compare(case, f, [(1, 2.0)], ["x", "x"], [(1, 2.0)]) is None
    assert compare(case, f, [(1, 2.0 + 1e-12)], ["x", "x"], [(1.0, 2.0)]) is None
    assert compare(case, f, [(1, 2.0001)], ["x", "x"], [(1, 2.0)])
    assert compare(case, f, [(1, None)], ["x", "x"], [(1, 2.0)])
    assert compare(case, f, [(1, 2.0)], ["x", "x"], [(1, 2.0), (1, 2.0)])
    assert compare(case, f, [("1", 2.0)], ["x", "x"], [(1, 2.0)])
    assert compare(case, f, [(2, 1.0), (1, 2.0)], ["x", "x"], [(1, 2.0), (2, 1.0)]) is None
