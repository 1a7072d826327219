"""Differential testing of vostok's ADQL against PostgreSQL, the stricter second oracle.

The queries come from adqlgen.py, as in test_differential.py; each runs on vostok, on a
private PostgreSQL cluster holding the same rows with vostok's column types (pg_oracle.py:
the ADQL text itself, with ADQL's few differences from PostgreSQL's SQL rewritten), and on the
SQLite copy. vostok must agree with PostgreSQL; PostgreSQL must agree with SQLite too (when
only SQLite differs, the generator's SQLite translation is wrong: that fails here as well).

Which queries: seed VOSTOK_DIFF_PG_SEED (default VOSTOK_DIFF_SEED + 1, so that CI runs
other queries here than in test_differential.py), VOSTOK_DIFF_PG_N of them (default
VOSTOK_DIFF_N, 300); VOSTOK_DIFF_ALL=1 and VOSTOK_DIFF_FEATURES_OFF as there.

PostgreSQL missing: the tests skip, with the reason printed loudly, unless
VOSTOK_REQUIRE_PG=1 (scripts/test.sh sets it; scripts/install-test-deps.sh installs
PostgreSQL), where they fail.

KNOWN lists the disagreements with PostgreSQL that are vostok's bugs (classified: vostok
wrong per SQL-92/ADQL 2.1), each as a minimal query run on both engines: xfail(strict)
while vostok is wrong, a failure (XPASS) once it is fixed — then delete the entry.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import adqlgen  # noqa: E402
import pg_oracle  # noqa: E402
import test_differential as td  # noqa: E402

SEED = int(os.environ.get("VOSTOK_DIFF_PG_SEED", str(td.SEED + 1)))
N = int(os.environ.get("VOSTOK_DIFF_PG_N", str(td.N)))
REQUIRE = os.environ.get("VOSTOK_REQUIRE_PG", "") in ("1", "true", "yes")


def _unavailable(reason):
    msg = f"PostgreSQL oracle NOT RUN: {reason}"
    print(f"\n{'!' * 78}\n[differential-pg] {msg}\n{'!' * 78}", file=sys.stderr)
    if REQUIRE:
        pytest.fail(f"{msg} (VOSTOK_REQUIRE_PG=1: PostgreSQL must run here; scripts/install-test-deps.sh "
                    "installs it)", pytrace=False)
    pytest.skip(msg)


class PgEnv:
    def __init__(self, base_url):
        self.sq = td.DiffEnv(base_url)  # the SQLite copy and the table descriptions
        copies = [pg_oracle.TableCopy(*self.sq.tables[fam].adql.lower().split("."), self.sq.tables[fam].sqlite,
                                      [(c.name, c.df) for c in self.sq.tables[fam].columns], key)
                  for fam, key in (("hip", ("hip",)), ("gaia", ("source_id",)), ("tap", ()))]
        self.pg = pg_oracle.Oracle(self.sq.conn, copies)
        self.gen = adqlgen.Generator(self.sq.tables, self.sq.features, SEED)
        self._cases = {}
        self.stats = Counter()

    def case(self, i):
        if i not in self._cases:
            self._cases[i] = self.gen.case(i)
        return self._cases[i]


@pytest.fixture(scope="module")
def pg_diff(base_url):
    reason = pg_oracle.unavailable_reason()
    if reason:
        _unavailable(reason)
    t0 = time.monotonic()
    try:
        env = PgEnv(base_url)
    except RuntimeError as e:  # the cluster did not start
        _unavailable(str(e))
    print(f"\n[differential-pg] PostgreSQL {env.pg.version}: private cluster up and loaded in "
          f"{env.pg.load_seconds:.1f}s (SQLite copy {env.sq.load_seconds:.1f}s); seed {SEED}, {N} queries; "
          f"features off: {sorted(set(adqlgen.FEATURES) - env.sq.features)}", file=sys.stderr)
    yield env
    s = env.stats
    print(f"\n[differential-pg] {s['run']} queries in {time.monotonic() - t0:.1f}s (vostok {s['vostok_ms'] / 1000:.1f}s, "
          f"PostgreSQL {s['pg_ms'] / 1000:.1f}s, SQLite {s['sqlite_ms'] / 1000:.1f}s); all three agree {s['agree3']}; "
          f"vostok = SQLite != PostgreSQL {s['v=s!=p']}; vostok = PostgreSQL != SQLite {s['v=p!=s']}; "
          f"PostgreSQL = SQLite != vostok {s['p=s!=v']}; all differ {s['all_differ']}; vostok refused {s['v_err']}; "
          f"PostgreSQL refused {s['p_err']}; SQLite failed {s['s_err']}; run on the all-BIGINT copy after 22003 "
          f"{s['widened']}", file=sys.stderr)
    env.pg.close()


def _report(case, what, sql="", detail=""):
    return (f"{what}\n--- case {case.index} (seed {SEED}); features: {', '.join(case.features)}\n"
            f"--- ADQL:\n{case.adql}\n--- PostgreSQL:\n{sql}\n--- SQLite:\n{case.sqlite}\n{detail}")


@pytest.mark.parametrize("i", range(N), ids=lambda i: f"q{i:03d}")
def test_query_matches_postgresql(pg_diff, i):
    env = pg_diff
    case = env.case(i)
    env.stats["run"] += 1
    t0 = time.monotonic()
    try:
        res = env.pg.run(case.adql)
    except (pg_oracle.TranslationError, pg_oracle.psycopg.Error) as e:
        env.stats["p_err"] += 1
        pytest.fail(_report(case, f"PostgreSQL refused the translation (a generator or translation bug): "
                                  f"{type(e).__name__}: {e}", pg_oracle.translate_or_error(case.adql)), pytrace=False)
    t1 = time.monotonic()
    env.stats["widened"] += res.widened
    try:
        snames, srows = td.run_sqlite(env.sq.conn, case.sqlite)
    except Exception as e:  # noqa: BLE001 — sqlite3.Error, or the time budget
        env.stats["s_err"] += 1
        snames, srows = None, f"SQLite failed: {e}"
    t2 = time.monotonic()
    try:
        vfields, vrows = td.run_vostok(env.sq.base_url, case.adql)
    except td.VostokError as e:
        env.stats["v_err"] += 1
        pytest.fail(_report(case, f"vostok refused or failed a valid ADQL query: {e}", res.sql,
                            f"--- PostgreSQL gives {len(res.rows)} rows, e.g. {res.rows[:3]}"), pytrace=False)
    t3 = time.monotonic()
    env.stats["pg_ms"] += (t1 - t0) * 1000
    env.stats["sqlite_ms"] += (t2 - t1) * 1000
    env.stats["vostok_ms"] += (t3 - t2) * 1000
    pfields = [{"name": n} for n in res.names]
    v_p = td.compare(case, vfields, vrows, res.names, res.rows, oracle="PostgreSQL")
    v_s = p_s = "no SQLite result"
    if snames is not None:
        v_s = td.compare(case, vfields, vrows, snames, srows)
        p_s = td.compare(case, pfields, res.rows, snames, srows)
    key = ("agree3" if not (v_p or v_s or p_s) else "v=s!=p" if not v_s else "v=p!=s" if not v_p
           else "p=s!=v" if not p_s else "all_differ")
    env.stats[key] += 1
    if v_p:
        types = ", ".join(f"{f['name']}:{f['datatype']}" for f in vfields)
        pytest.fail(_report(case, "vostok and PostgreSQL disagree"
                            + (" (SQLite agrees with PostgreSQL)" if not p_s else
                               " (SQLite agrees with vostok)" if not v_s else ""), res.sql,
                            f"--- {v_p}\n--- vostok columns: {types}; first rows vostok {vrows[:3]}, "
                            f"PostgreSQL {res.rows[:3]}"), pytrace=False)
    if p_s:
        pytest.fail(_report(case, "the SQLite oracle disagrees with PostgreSQL and vostok (a bug of the generator's "
                                  "SQLite translation); below, 'vostok' is PostgreSQL", res.sql, f"--- {p_s}"),
                    pytrace=False)


# ---------------------------------------------------------------------------------------
# disagreements found by PostgreSQL that are vostok's bugs
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    name: str
    adql: str
    cls: str  # "vostok wrong per SQL-92/ADQL 2.1" or "vostok refuses valid ADQL"
    why: str


KNOWN: list[Known] = []


@pytest.mark.parametrize("k", KNOWN, ids=lambda k: k.name)
def test_known_disagreement(pg_diff, k):
    """A minimal query where vostok and PostgreSQL disagree because vostok is wrong."""
    res = pg_diff.pg.run(k.adql)
    try:
        vfields, vrows = td.run_vostok(pg_diff.sq.base_url, k.adql, timeout=(10, 20))
    except td.VostokError as e:
        pytest.xfail(f"{k.cls}: {k.why}; vostok: {e}; PostgreSQL: {res.rows[:5]}")
    case = adqlgen.Case(0, k.adql, "", [], False, [], False)
    problem = td.compare(case, vfields, vrows, res.names, res.rows, oracle="PostgreSQL")
    if problem:
        pytest.xfail(f"{k.cls}: {k.why}\n{problem}")
    pytest.fail(f"vostok now agrees with PostgreSQL on '{k.name}' ({k.adql}): delete it from KNOWN",
                pytrace=False)


# ---------------------------------------------------------------------------------------
# the translation (no server needed)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("adql,pg", [
    ("SELECT TOP 3 hip FROM hipparcos.hip2 ORDER BY hip OFFSET 2",
     "SELECT  hip FROM hipparcos.hip2 ORDER BY hip OFFSET 2 LIMIT 3"),
    ("SELECT DISTINCT TOP 1 a FROM t WHERE x IN (SELECT TOP 2 y FROM u ORDER BY y)",
     "SELECT DISTINCT  a FROM t WHERE x IN (SELECT  y FROM u ORDER BY y LIMIT 2) LIMIT 1"),
    ("SELECT ABS(sn) / 2, ROUND(ra, 3), TRUNCATE(dec), MOD(hip, 7), LOG(plx), LOG10(plx) FROM x",
     "SELECT abs(CAST((sn) AS DOUBLE PRECISION)) / 2, adql_round(CAST((ra) AS DOUBLE PRECISION), 3), "
     "adql_trunc(CAST((dec) AS DOUBLE PRECISION)), adql_mod(CAST((hip) AS DOUBLE PRECISION), "
     "CAST(( 7) AS DOUBLE PRECISION)), ln(CAST((plx) AS DOUBLE PRECISION)), log(CAST((plx) AS DOUBLE PRECISION)) "
     "FROM x"),
    ("SELECT 1.5, 5., 1.5E+02, 'a -- b', t.log -- c\nFROM t",
     "SELECT CAST(1.5 AS DOUBLE PRECISION), CAST(5.0 AS DOUBLE PRECISION), CAST(1.5E+02 AS DOUBLE PRECISION), "
     "'a -- b', t.log  \nFROM t"),
    ("(SELECT TOP 2 a FROM t ORDER BY a) UNION SELECT b FROM u",
     "(SELECT  a FROM t ORDER BY a LIMIT 2 ) UNION SELECT b FROM u"),
])
def test_translation(adql, pg):
    def norm(text):  # whitespace is not part of the translation's meaning
        return re.sub(r"\s*([(),])\s*", r"\1", " ".join(text.split()))
    assert norm(pg_oracle.translate(adql)) == norm(pg)


def test_translation_refuses_top_before_set_operator():
    with pytest.raises(pg_oracle.TranslationError):
        pg_oracle.translate("SELECT TOP 2 a FROM t UNION SELECT b FROM u")
