"""ADQL through the real HTTP path: identifier rules, joins, subqueries, aggregates, errors
with positions, and CORS headers for browser clients. Expected values come from the raw
catalog files (brute force in numpy), not from vostok."""

from __future__ import annotations

import numpy as np
import pytest

from vostok_helpers import REPO, http_get, query_status, tap_sync


def hip_nc():
    """The Nc column (4th field) of the raw hip2.dat."""
    import gzip
    with gzip.open(REPO / "data" / "demo" / "hip2.dat.gz", "rt") as f:
        return np.array([int(line.split()[3]) for line in f if line.strip()])


def csv_rows(resp):
    assert resp.status_code == 200, resp.text[:500]
    lines = resp.text.strip().splitlines()
    return lines[0].split(","), [l.split(",") for l in lines[1:]]


def test_regular_identifiers_are_case_insensitive(base_url):
    head, rows = csv_rows(tap_sync(base_url, "SELECT TOP 3 HIP, Ra FROM HIPPARCOS.Hip2 ORDER BY hip", RESPONSEFORMAT="csv"))
    assert head == ["hip", "ra"]
    assert [r[0] for r in rows] == ["1", "2", "3"]


def test_delimited_identifiers_are_exact(base_url):
    ok = tap_sync(base_url, 'SELECT TOP 1 "hip" FROM hipparcos.hip2', RESPONSEFORMAT="csv")
    assert ok.status_code == 200
    bad = tap_sync(base_url, 'SELECT TOP 1 "HIP" FROM hipparcos.hip2')
    assert bad.status_code == 400
    assert query_status(bad.content) == ["ERROR"]


def test_unknown_column_error_names_it_with_position(base_url):
    r = tap_sync(base_url, "SELECT hip,\n  nosuchcol FROM hipparcos.hip2")
    assert r.status_code == 400
    assert b"nosuchcol" in r.content
    assert b"line 2, column 3" in r.content, r.text


def test_syntax_error_has_position(base_url):
    r = tap_sync(base_url, "SELECT hip FROM hipparcos.hip2 WHERE")
    assert r.status_code == 400
    assert query_status(r.content) == ["ERROR"]
    assert b"line 1" in r.content, r.text


def test_group_by_having_order_by_position(base_url):
    head, rows = csv_rows(tap_sync(
        base_url,
        "SELECT nc, COUNT(*) AS n FROM hipparcos.hip2 GROUP BY nc HAVING COUNT(*) > 10 ORDER BY 1",
        RESPONSEFORMAT="csv"))
    assert head == ["nc", "n"]
    nc = hip_nc()
    values, counts = np.unique(nc, return_counts=True)
    want = [[str(int(v)), str(int(c))] for v, c in zip(values, counts) if c > 10]
    assert rows == want


def test_join_and_subqueries(base_url):
    # Self-join on the identifier, and IN / EXISTS subqueries, all against a known answer.
    q = ("SELECT a.hip, b.hpmag FROM hipparcos.hip2 AS a JOIN hipparcos.hip2 AS b ON a.hip = b.hip "
         "WHERE a.hip IN (SELECT hip FROM hipparcos.hip2 WHERE hip < 4) ORDER BY a.hip")
    head, rows = csv_rows(tap_sync(base_url, q, RESPONSEFORMAT="csv"))
    assert [r[0] for r in rows] == ["1", "2", "3"]
    q = ("SELECT COUNT(*) AS n FROM hipparcos.hip2 AS h WHERE EXISTS "
         "(SELECT 1 FROM hipparcos.hip2 AS k WHERE k.hip = h.hip AND k.hip <= 10)")
    _, rows = csv_rows(tap_sync(base_url, q, RESPONSEFORMAT="csv"))
    assert rows == [["10"]]


def test_math_functions_follow_adql(base_url):
    # ADQL LOG is the natural logarithm; MOD, POWER, TRUNCATE, CEILING exist.
    q = "SELECT TOP 1 LOG(EXP(2.0)) AS l, MOD(7, 3) AS m, POWER(2, 10) AS p, TRUNCATE(2.7) AS t, CEILING(2.1) AS c FROM hipparcos.hip2"
    head, rows = csv_rows(tap_sync(base_url, q, RESPONSEFORMAT="csv"))
    assert head == ["l", "m", "p", "t", "c"]
    l, m, p, t, c = (float(x) for x in rows[0])
    assert abs(l - 2.0) < 1e-12 and m == 1 and p == 1024 and t == 2 and c == 3


def test_cors_headers_on_every_kind_of_endpoint(base_url):
    origin = {"Origin": "https://aladin.example.org"}
    for path in ["/tap/capabilities", "/tap/sync?LANG=ADQL&QUERY=SELECT+TOP+1+hip+FROM+hipparcos.hip2",
                 "/scs/hipparcos.hip2?RA=10&DEC=10&SR=0.1", "/tap/tables"]:
        r = http_get(base_url + path, headers=origin)
        assert r.status_code == 200, path
        assert r.headers.get("Access-Control-Allow-Origin") in ("*", origin["Origin"]), path
    import requests
    pre = requests.options(base_url + "/tap/sync", headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"}, timeout=30)
    assert pre.status_code in (200, 204)
    assert "POST" in pre.headers.get("Access-Control-Allow-Methods", "").upper()


@pytest.mark.parametrize("fmt", ["votable", "votable/b2"])
def test_geometry_values_carry_dali_xtypes_and_pass_votlint(base_url, tmp_path, fmt):
    from vostok_helpers import parse_votable, stilts
    q = ("SELECT TOP 2 hip, POINT(ra, dec) AS p, CIRCLE(ra, dec, 1) AS c, "
         "POLYGON(ra, dec, ra + 1, dec, ra, dec + 1) AS g FROM hipparcos.hip2 ORDER BY hip")
    r = tap_sync(base_url, q, RESPONSEFORMAT=fmt)
    assert r.status_code == 200, r.text[:500]
    # votlint: the whole document in TABLEDATA. In BINARY2, votlint 3.4.7's polygon-xtype check
    # misreads variable-length arrays (it reports an absurd coordinate count although STIL and
    # astropy decode the same bytes correctly, see below), so there it checks point and circle only.
    checked = r if fmt == "votable" else tap_sync(
        base_url, q.replace(", POLYGON(ra, dec, ra + 1, dec, ra, dec + 1) AS g", ""), RESPONSEFORMAT=fmt)
    path = tmp_path / "geom.vot"
    path.write_bytes(checked.content)
    out = stilts("votlint", f"votable={path}")
    assert out.returncode == 0 and (out.stdout + out.stderr).strip() == "", out.stdout + out.stderr
    table = parse_votable(r.content).get_first_table()
    fields = {f.name: f for f in table.fields}
    assert (fields["p"].xtype, fields["p"].arraysize) == ("point", "2")
    assert (fields["c"].xtype, fields["c"].arraysize) == ("circle", "3")
    assert fields["g"].xtype == "polygon"
    row = table.array[0]
    assert len(row["p"]) == 2 and len(row["c"]) == 3 and len(row["g"]) == 6
    assert float(row["c"][2]) == 1.0
    assert abs(float(row["g"][2]) - float(row["g"][0]) - 1.0) < 1e-9


def test_deep_expressions_are_refused_and_the_server_survives(base_url):
    # 290 chained operators plan and run (on the query runtime's large stacks); 310 are refused
    # with a located message. Such chains once overflowed an HTTP worker's stack (cargo fuzz).
    q = "SELECT TOP 1 " + "+".join(["hip"] * 290) + " AS s FROM hipparcos.hip2 WHERE hip = 1"
    head, rows = csv_rows(tap_sync(base_url, q, RESPONSEFORMAT="csv"))
    assert rows == [["290"]]
    q = "SELECT TOP 1 " + "+".join(["hip"] * 310) + " AS s FROM hipparcos.hip2"
    r = tap_sync(base_url, q)
    assert r.status_code == 400 and b"nested too deeply" in r.content and b"column" in r.content
    q = "SELECT TOP 1 hip FROM hipparcos.hip2 WHERE " + "+" * 5000 + "hip = 1"
    assert tap_sync(base_url, q).status_code == 400
    head, rows = csv_rows(tap_sync(base_url, "SELECT TOP 1 hip FROM hipparcos.hip2 WHERE hip = 7", RESPONSEFORMAT="csv"))
    assert rows == [["7"]]
