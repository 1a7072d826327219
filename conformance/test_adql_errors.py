"""Every error speaks ADQL with a position: the invalid queries of the four ADQL corpora, and
the error classes issue 15 lists, through HTTP TAP (an error VOTable, QUERY_STATUS=ERROR,
HTTP 400) and through `vostok adql check`. No message may carry an engine's vocabulary."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import find_binary
from vostok_helpers import SHARED, query_status, tap_sync, xml_infos

CORPORA = SHARED / "conformance" / "adql"

# Words of sqlparser, DataFusion or Arrow that no ADQL user wrote.
JARGON = ["DataFusion", "Arrow", "logical plan", "LogicalPlan", "BIGINT(1)", "VALUES",
          "Expected:", "While expanding wildcard", "Schema error", "Error during planning"]

POSITION = re.compile(r"line \d+, column \d+")


def leaks(query: str, message: str) -> list[str]:
    out = [j for j in JARGON if j in message and j not in query]
    if "public." in message and "public." not in query.lower():
        out.append("public.")
    return out


def invalid_queries():
    seen, out = set(), []
    for name in ("lyonetia", "vollt", "dachs", "queryparser"):
        with open(CORPORA / f"{name}.jsonl") as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                q = r.get("query")
                if r.get("valid") is False and isinstance(q, str) and q.strip() and q not in seen:
                    seen.add(q)
                    out.append(q)
    return out


def error_text(content: bytes) -> str:
    return " ".join(t or v or "" for (n, v, t, _p) in xml_infos(content)
                    if (n or "").upper() == "QUERY_STATUS")


def test_invalid_corpus_queries_through_adql_check_speak_adql():
    bad = []
    queries = invalid_queries()
    assert len(queries) > 100
    for q in queries:
        r = subprocess.run([str(find_binary()), "adql", "check"], input=q,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode in (0, 1), f"crash on {q!r}: {r.stderr}"
        if r.returncode == 0:
            continue  # valid without table metadata
        msg = (r.stdout + r.stderr).strip()
        problems = leaks(q, msg) + ([] if POSITION.search(msg) else ["no position"])
        if problems:
            bad.append(f"{q!r}\n  -> {msg}  [{', '.join(problems)}]")
    assert not bad, f"{len(bad)} messages leak or lack a position:\n" + "\n".join(bad[:30])


def test_invalid_corpus_queries_through_tap_speak_adql(base_url):
    bad = []
    for q in invalid_queries():
        r = tap_sync(base_url, q)
        if r.status_code == 200:
            continue  # valid ADQL that happens to name the demo's tables, or refused later
        assert r.status_code == 400, (q, r.status_code, r.text[:300])
        assert query_status(r.content) == ["ERROR"], r.text[:300]
        msg = error_text(r.content)
        problems = leaks(q, msg) + ([] if POSITION.search(msg) else ["no position"])
        if problems:
            bad.append(f"{q!r}\n  -> {msg}  [{', '.join(problems)}]")
    assert not bad, f"{len(bad)} messages leak or lack a position:\n" + "\n".join(bad[:30])


@pytest.mark.parametrize("query, words", [
    ("SELEC hip FROM hipparcos.hip2", ["did you mean SELECT", "line 1, column 1"]),
    ("SELECT hip\nFORM hipparcos.hip2", ["did you mean FROM", "line 2, column 1"]),
    ("SELECT hpmg FROM hipparcos.hip2", ["unknown column 'hpmg'", "did you mean hpmag",
                                          "line 1, column 8"]),
    ("SELECT hip, COUNT(*) FROM hipparcos.hip2", ["hip must be in GROUP BY or in an aggregate",
                                                  "line 1, column 8"]),
    ("SELECT hip FROM hip2", ["unknown table 'hip2'", "did you mean hipparcos.hip2",
                              "line 1, column 17"]),
    ("SELECT TOP 1 hip,\n dec FROM hipparcos.hip2 AS h, gaia.dr3_bright AS g",
     ["ambiguous column 'dec'", "h.dec", "g.dec", "line 2, column 2"]),
])
def test_issue_examples_over_http(base_url, query, words):
    r = tap_sync(base_url, query)
    assert r.status_code == 400, r.text[:300]
    assert query_status(r.content) == ["ERROR"]
    msg = error_text(r.content)
    for w in words:
        assert w in msg, msg
    assert not leaks(query, msg), msg


def mutations():
    """Valid corpus queries broken the way people break them: a misspelt keyword, a ')'
    dropped, a column misspelt in a query over the demo tables."""
    out = []
    for name in ("lyonetia", "queryparser"):
        with open(CORPORA / f"{name}.jsonl") as f:
            for line in f:
                r = json.loads(line) if line.strip() else {}
                q = r.get("query")
                if r.get("valid") is not True or not isinstance(q, str):
                    continue
                for kw, typo in (("SELECT", "SELEC"), ("FROM", "FORM"), ("WHERE", "WHER")):
                    m = re.sub(rf"\b{kw}\b", typo, q, count=1, flags=re.I)
                    if m != q:
                        out.append(m)
                if ")" in q:
                    i = q.rindex(")")
                    out.append(q[:i] + q[i + 1:])
    for col in ("hpmag", "ra", "dec", "plx"):
        out.append(f"SELECT TOP 3 hip, {col}x FROM hipparcos.hip2 WHERE {col} IS NOT NULL")
        out.append(f"SELECT hip, MAX({col}) FROM hipparcos.hip2")
    return out


def test_mutated_queries_speak_adql_through_check_and_tap(base_url):
    bad, rejected = [], 0
    queries = mutations()
    assert len(queries) > 300
    for q in queries:
        r = subprocess.run([str(find_binary()), "adql", "check"], input=q,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode in (0, 1), f"crash on {q!r}: {r.stderr}"
        msgs = [(r.stdout + r.stderr).strip()] if r.returncode == 1 else []
        t = tap_sync(base_url, q)
        if t.status_code != 200:
            assert t.status_code == 400, (q, t.status_code, t.text[:300])
            assert query_status(t.content) == ["ERROR"], t.text[:300]
            msgs.append(error_text(t.content))
        for msg in msgs:
            rejected += 1
            problems = leaks(q, msg) + ([] if POSITION.search(msg) else ["no position"])
            if problems:
                bad.append(f"{q!r}\n  -> {msg}  [{', '.join(problems)}]")
    assert rejected > len(queries)
    assert not bad, f"{len(bad)} messages leak or lack a position:\n" + "\n".join(bad[:30])
