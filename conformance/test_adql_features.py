"""Every ADQL 2.1 optional feature and user-defined function that /tap/capabilities declares,
run through /tap/sync and checked against answers computed here from the raw catalog file
(numpy) or from first principles — and the capabilities document declaring exactly them."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

from vostok_helpers import REPO, hipparcos, http_get, parse_votable, query_status, tap_sync


def rows(base_url, q, **kw):
    r = tap_sync(base_url, q, RESPONSEFORMAT="csv", **kw)
    assert r.status_code == 200, f"{q}\n{r.text[:800]}"
    lines = r.text.strip().splitlines()
    return lines[0].split(","), [l.split(",") for l in lines[1:]]


def error(base_url, q):
    r = tap_sync(base_url, q)
    assert r.status_code == 400, f"{q} answered {r.status_code}"
    assert query_status(r.content) == ["ERROR"]
    return r.text


@pytest.fixture(scope="module")
def hip():
    return hipparcos()


@pytest.fixture(scope="module")
def hpmag():
    """HIP → Hpmag (column 20 of hip2.dat)."""
    out = {}
    with gzip.open(REPO / "data" / "demo" / "hip2.dat.gz", "rt") as f:
        for line in f:
            p = line.split()
            out[int(p[0])] = float(p[19])
    return out


def test_set_operations_with_all_and_top_per_operand(base_url):
    q = "SELECT hip FROM hipparcos.hip2 WHERE hip < {a} {op} SELECT hip FROM hipparcos.hip2 WHERE hip > {b} AND hip < 9"
    want = {
        "UNION": {1, 2, 3, 6, 7, 8},
        "INTERSECT": set(),
        "EXCEPT": {1, 2, 3},
    }
    for op, expect in want.items():
        _, got = rows(base_url, q.format(a=4, b=5, op=op))
        assert {int(r[0]) for r in got} == expect, op
    _, got = rows(base_url, q.format(a=4, b=0, op="UNION ALL"))
    assert sorted(int(r[0]) for r in got) == [1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 8]
    _, got = rows(base_url, q.format(a=6, b=2, op="INTERSECT"))
    assert sorted(int(r[0]) for r in got) == [3, 4, 5]
    # TOP belongs to its own SELECT; ORDER BY and OFFSET to the whole.
    _, got = rows(base_url, "SELECT TOP 2 hip FROM hipparcos.hip2 WHERE hip < 10 "
                  "UNION SELECT TOP 1 hip FROM hipparcos.hip2 WHERE hip BETWEEN 50 AND 60 ORDER BY 1 DESC")
    hips = [int(r[0]) for r in got]
    assert len(hips) == 3 and hips == sorted(hips, reverse=True), hips
    assert 50 <= hips[0] <= 60 and all(h < 10 for h in hips[1:]), hips


def test_with_offset_and_top(base_url):
    _, got = rows(base_url, "WITH few AS (SELECT hip, ra FROM hipparcos.hip2 WHERE hip <= 20) "
                  "SELECT TOP 3 hip FROM few ORDER BY hip OFFSET 5")
    assert [r[0] for r in got] == ["6", "7", "8"]
    _, got = rows(base_url, "SELECT hip FROM hipparcos.hip2 WHERE hip <= 20 ORDER BY hip DESC OFFSET 18")
    assert [r[0] for r in got] == ["2", "1"]


def test_string_features(base_url):
    head, got = rows(base_url, "SELECT table_name, LOWER(table_name) AS l, UPPER(table_name) AS u "
                     "FROM tap_schema.tables WHERE table_name ILIKE 'HIPPARCOS.%'")
    assert got == [["hipparcos.hip2", "hipparcos.hip2", "HIPPARCOS.HIP2"]]
    _, got = rows(base_url, "SELECT table_name FROM tap_schema.tables WHERE table_name LIKE 'HIPPARCOS.%'")
    assert got == []  # LIKE is case-sensitive
    _, got = rows(base_url, "SELECT TOP 1 'ab' || 'cd' || 'e' AS s FROM hipparcos.hip2")
    assert got == [["abcde"]]


def test_cast_coalesce_case(base_url):
    _, got = rows(base_url, "SELECT CAST(hip AS VARCHAR(10)) || 'x' AS s, CAST(hip AS DOUBLE PRECISION) / 2 AS d, "
                  "CAST(hip AS SMALLINT) AS i, COALESCE(NULL, hip, 0) AS c, "
                  "CASE WHEN hip < 2 THEN 'one' WHEN hip < 3 THEN 'two' ELSE 'many' END AS w "
                  "FROM hipparcos.hip2 WHERE hip <= 3 ORDER BY hip")
    assert got == [["1x", "0.5", "1", "1", "one"], ["2x", "1.0", "2", "2", "two"], ["3x", "1.5", "3", "3", "many"]]
    error(base_url, "SELECT CAST(hip AS FLOAT) FROM hipparcos.hip2")


def test_bitwise_and_hexadecimal(base_url):
    _, got = rows(base_url, "SELECT hip, hip & 0x6 AS a, hip | 8 AS o, hip ^ 0x1 AS x, ~hip AS n "
                  "FROM hipparcos.hip2 WHERE hip BETWEEN 5 AND 7 ORDER BY hip")
    assert got == [[str(h), str(h & 6), str(h | 8), str(h ^ 1), str(~h)] for h in (5, 6, 7)]


def test_in_unit_converts_from_the_column_unit(base_url, tmp_path):
    r = tap_sync(base_url, "SELECT hip, ra, IN_UNIT(ra, 'rad') AS ra_rad, IN_UNIT(plx, 'arcsec') AS plx_as, "
                 "plx, IN_UNIT(pmra, 'deg/yr') AS pm FROM hipparcos.hip2 WHERE hip <= 5", RESPONSEFORMAT="votable")
    assert r.status_code == 200, r.text[:500]
    t = parse_votable(r.content).get_first_table()
    units = {f.name: str(f.unit) if f.unit is not None else None for f in t.fields}
    assert units["ra_rad"] == "rad" and units["plx_as"] == "arcsec"
    a = t.array
    assert np.allclose(a["ra_rad"], np.radians(a["ra"]), rtol=1e-13, atol=0)
    assert np.allclose(a["plx_as"], a["plx"] / 1000.0, rtol=1e-13, atol=0)
    msg = error(base_url, "SELECT IN_UNIT(ra, 'm') FROM hipparcos.hip2")
    assert "cannot be converted" in msg
    msg = error(base_url, "SELECT IN_UNIT(ra + 1, 'rad') FROM hipparcos.hip2")
    assert "unit is known" in msg


def test_region_geometry_and_cone(base_url, hip):
    _, got = rows(base_url, "SELECT hip FROM hipparcos.hip2 "
                  "WHERE 1 = CONTAINS(POINT(ra, dec), REGION('Circle ICRS GEOCENTER 30 10 2'))")
    truth = hip.cone(30, 10, 2)
    assert truth.inside <= {int(r[0]) for r in got} <= truth.inside | truth.ties
    _, got = rows(base_url, "SELECT TOP 1 AREA(REGION('Circle ICRS 0 0 1')) AS a, "
                  "COORD1(CENTROID(REGION('Polygon 10 -1 11 -1 11 1 10 1'))) AS c, "
                  "COORDSYS(REGION('Position 1 2')) AS s FROM hipparcos.hip2")
    area = 2 * math.pi * (1 - math.cos(math.radians(1))) * (180 / math.pi) ** 2
    assert abs(float(got[0][0]) - area) < 1e-9 and abs(float(got[0][1]) - 10.5) < 1e-9 and got[0][2] == "ICRS"
    assert "not supported" in error(base_url, "SELECT REGION('Union ICRS (Circle 1 2 3 Circle 4 5 6)') FROM hipparcos.hip2")


def test_ivo_udfs(base_url, hip, hpmag):
    # ivo_healpix_index against the HEALPix definition (Górski et al. 2005) at order 0:
    # the 12 base pixels; pixel 4 is centred on (0°, 0°), pixel 5 on (90°, 0°).
    _, got = rows(base_url, "SELECT TOP 1 ivo_healpix_index(0, 0.0, 0.0) AS a, ivo_healpix_index(0, 90.0, 0.0) AS b, "
                  "ivo_healpix_index(0, 45.0, 89.0) AS c, COORD1(ivo_healpix_center(0, 4)) AS d FROM hipparcos.hip2")
    assert got == [["4", "5", "0", "0.0"]]
    # ivo_histogram: counts in 5 bins of Hpmag over [0, 15) with under- and overflow.
    _, got = rows(base_url, "SELECT ivo_histogram(hpmag, 0, 15, 5) AS h FROM hipparcos.hip2")
    mags = np.array(list(hpmag.values()))
    want = [int((mags < 0).sum())] + [int(((mags >= 3 * i) & (mags < 3 * i + 3)).sum()) for i in range(5)] \
        + [int((mags >= 15).sum())]
    assert [int(x) for x in got[0][0].split()] == want
    _, got = rows(base_url, "SELECT table_name, ivo_hasword(description, 'hipparcos') AS w, "
                  "ivo_nocasematch(table_name, 'HIP%') AS m FROM tap_schema.tables WHERE schema_name = 'hipparcos'")
    assert got == [["hipparcos.hip2", "1", "1"]]
    # Epoch propagation: zero proper motion and parallax leave the position unchanged.
    _, got = rows(base_url, "SELECT COORD1(ivo_epoch_prop_pos(ra, dec, 0, 0, 0, 0, 1991.25, 2016.0)) - ra AS d "
                  "FROM hipparcos.hip2 WHERE hip = 1")
    assert abs(float(got[0][0])) < 1e-12


def test_capabilities_declare_the_features_that_work(base_url):
    caps = http_get(base_url + "/tap/capabilities").text
    for key, forms in {
        "features-adqlgeo": ["REGION", "CENTROID", "AREA", "COORDSYS"],
        "features-adql-string": ["LOWER", "UPPER", "ILIKE"],
        "features-adql-sets": ["UNION", "EXCEPT", "INTERSECT"],
        "features-adql-common-table": ["WITH"],
        "features-adql-type": ["CAST"],
        "features-adql-unit": ["IN_UNIT"],
        "features-adql-offset": ["OFFSET"],
        "features-adql-bitwise": ["BIT_AND", "BIT_OR", "BIT_XOR", "BIT_NOT"],
    }.items():
        block = caps.split(f"TAPRegExt#{key}\"", 1)
        assert len(block) == 2, key
        body = block[1].split("</languageFeatures>", 1)[0]
        for f in forms:
            assert f"<form>{f}</form>" in body, (key, f)
    udfs = caps.split("TAPRegExt#features-udf\"", 1)[1].split("</languageFeatures>", 1)[0]
    for name in ["ivo_hasword", "ivo_nocasematch", "ivo_healpix_index", "ivo_healpix_center",
                 "ivo_epoch_prop", "ivo_histogram", "ivo_string_agg"]:
        assert f"<form>{name}(" in udfs, name


@pytest.mark.parametrize("query, words", [
    ("SELECT ra FROM hipparcos.hip2 AS a, gaia.dr3_bright AS b", ["column 'ra'", "write a.ra or b.ra"]),
    ("SELECT hip, COUNT(*) FROM hipparcos.hip2", ["GROUP BY"]),
    ("SELECT hip FROM hipparcos.hip2 WHERE COUNT(*) > 1", ["HAVING"]),
    ("SELECT hip FROM hipparcos.hip2 WHERE ra = 'abc'", ["type mismatch", "'abc'"]),
    ("SELECT AVG(table_name) FROM tap_schema.tables", ["type mismatch", "AVG(VARCHAR)"]),
    ("SELECT nosuch(ra) FROM hipparcos.hip2", ["unknown function 'nosuch'"]),
    ("SELECT * FROM nosuch.t", ["unknown table 'nosuch.t'"]),
])
def test_semantic_errors_say_what_is_wrong(base_url, query, words):
    msg = error(base_url, query)
    for w in words:
        assert w in msg, msg
    for jargon in ("Internal error", "DataFusion", "caused by", "Arrow error"):
        assert jargon not in msg, msg


def test_explain_shows_the_healpix_ranges_a_cone_prunes_to(server):
    import re

    from test_xmatch import explain
    out = explain(server, "SELECT hip FROM hipparcos.hip2 WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(56.75, 24.12, 1))")
    assert "== logical plan" in out and "== physical plan" in out, out
    m = re.search(r"hipparcos\.hip2: (\d+) HEALPix range\(s\), (\d+) of (\d+) partitions scanned", out)
    assert m, out
    assert int(m.group(1)) >= 1 and int(m.group(2)) < int(m.group(3)), out
    assert re.search(r"order \d+ pixels? \d+", out), out
    out = explain(server, "SELECT COUNT(*) FROM hipparcos.hip2")
    assert "no spatial predicate" in out, out
