"""Cone searches return exactly the rows a brute-force computation over the raw files finds.

Three ways in, each checked against numpy over data/demo/*.gz (never against vostok's
own code): TAP with 1=CONTAINS(POINT, CIRCLE), TAP with DISTANCE(POINT, POINT) < r, and
Simple Cone Search, the first two through pyvo's TAPService.run_sync, the last through
pyvo's SCSService.search.

Boundary ties: points whose true distance lies within 1e-9 deg (BOUNDARY_TOL_DEG) of
the radius are left out of the comparison — in or out there is floating-point rounding,
not correctness. Everything else must match exactly: no id missing, none extra, no
duplicates.
"""

import pytest
import pyvo
from pyvo.dal import SCSService, TAPService

from vostok_helpers import (GAIA_TABLE, HIP_TABLE, TimeoutSession, assert_cone_result,
                            hipparcos, parse_votable, query_status, raw_catalog, tap_sync)

BIG_MAXREC = 1_000_000

# (label, ra0, dec0, radius) — degrees
CONES = {
    HIP_TABLE: [
        ("mid-sky-pleiades", 56.75, 24.12, 3.0),
        ("mid-sky-south", 201.3, -43.0, 2.5),
        ("north-pole-ra0", 0.0, 90.0, 3.0),
        ("north-pole-ra217", 217.3, 90.0, 3.0),
        ("near-north-pole-crossing", 123.4, 89.5, 2.0),
        ("south-pole", 0.0, -90.0, 3.0),
        ("near-south-pole-crossing", 250.0, -89.3, 1.5),
        ("ra-wrap-359.8", 359.8, 12.5, 1.0),
        ("ra-wrap-0.1", 0.1, -30.0, 1.0),
        ("ra-wrap-wide-high-dec", 0.5, 60.0, 5.0),
        ("ra-negative", -0.2, 12.5, 1.0),      # same cone as ra0=359.8: RA is an angle
        ("ra-above-360", 719.8, 12.5, 1.0),
        ("radius-100", 200.0, -20.0, 100.0),
    ],
    GAIA_TABLE: [
        ("mid-sky-pleiades", 56.75, 24.12, 1.5),
        ("mid-sky-south", 201.3, -43.0, 1.0),
        ("north-pole", 0.0, 90.0, 2.0),
        ("near-north-pole-crossing", 123.4, 89.5, 2.0),
        ("south-pole", 0.0, -90.0, 2.0),
        ("near-south-pole-crossing", 250.0, -89.3, 1.5),
        ("ra-wrap-359.8", 359.8, 12.5, 1.0),
        ("ra-wrap-0.1", 0.1, -30.0, 1.0),
    ],
}

ID_COL = {HIP_TABLE: "hip", GAIA_TABLE: "source_id"}


def cone_params():
    for table, cones in CONES.items():
        for label, ra0, dec0, r in cones:
            yield pytest.param(table, ra0, dec0, r, id=f"{table}-{label}")


@pytest.fixture(scope="module")
def tap(base_url):
    return TAPService(base_url + "/tap", session=TimeoutSession())


def column(table, name):
    """A result column by ADQL name (regular identifiers are case-insensitive)."""
    for c in table.colnames:
        if c.lower() == name.lower():
            return table[c]
    raise AssertionError(f"no column {name!r} in result; columns: {table.colnames}")


def run_ids(tap, table, where):
    id_col = ID_COL[table]
    q = f"SELECT {id_col} FROM {table} WHERE {where}"
    res = tap.run_sync(q, maxrec=BIG_MAXREC)
    assert res.query_status.upper() == "OK", f"{q}: QUERY_STATUS {res.query_status}"
    return column(res.to_table(), id_col), q


@pytest.mark.parametrize("table,ra0,dec0,r", cone_params())
def test_tap_contains_circle(tap, table, ra0, dec0, r):
    where = f"1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0!r}, {dec0!r}, {r!r}))"
    ids, q = run_ids(tap, table, where)
    assert_cone_result(ids, raw_catalog(table), ra0, dec0, r, f"TAP {q}")


@pytest.mark.parametrize("table,ra0,dec0,r", cone_params())
def test_tap_distance(tap, table, ra0, dec0, r):
    where = f"DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra0!r}, {dec0!r})) < {r!r}"
    ids, q = run_ids(tap, table, where)
    assert_cone_result(ids, raw_catalog(table), ra0, dec0, r, f"TAP {q}")


@pytest.mark.parametrize("table,ra0,dec0,r", [
    pytest.param(HIP_TABLE, 359.8, 12.5, 1.0, id="hip-ra-wrap"),
    pytest.param(GAIA_TABLE, 123.4, 89.5, 2.0, id="gaia-near-north-pole"),
])
def test_tap_contains_reversed_operands(tap, table, ra0, dec0, r):
    """ADQL allows CONTAINS(...) = 1 as well as 1 = CONTAINS(...): same rows."""
    where = f"CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0!r}, {dec0!r}, {r!r})) = 1"
    ids, q = run_ids(tap, table, where)
    assert_cone_result(ids, raw_catalog(table), ra0, dec0, r, f"TAP {q}")


def test_tap_tiny_cone_on_one_star(tap):
    """A 0.36-arcsec cone centred on a star's own position returns that star alone."""
    hip = hipparcos()
    i = int((hip.ids == 32349).nonzero()[0][0])  # Sirius
    ra0, dec0 = float(hip.ra[i]), float(hip.dec[i])
    where = f"1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0!r}, {dec0!r}, 0.0001))"
    ids, q = run_ids(tap, HIP_TABLE, where)
    assert [int(x) for x in ids] == [32349], f"{q}: got {list(ids)}"


@pytest.mark.parametrize("table,r", [(HIP_TABLE, 100.0), (GAIA_TABLE, 100.0), (HIP_TABLE, 90.0),
                                     (HIP_TABLE, 179.5), (HIP_TABLE, 180.0)])
def test_tap_count_large_radius(base_url, table, r):
    """COUNT(*) over a hemisphere, more, and the whole sky matches the brute-force count."""
    ra0, dec0 = 200.0, -20.0
    q = (f"SELECT COUNT(*) AS n FROM {table} "
         f"WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0!r}, {dec0!r}, {r!r}))")
    resp = tap_sync(base_url, q)
    assert resp.status_code == 200, f"{q}: HTTP {resp.status_code}: {resp.text[:1000]}"
    res = pyvo.dal.TAPResults(parse_votable(resp.content))
    n = int(column(res.to_table(), "n")[0])
    cone = raw_catalog(table).cone(ra0, dec0, r)
    assert len(cone.inside) <= n <= len(cone.inside) + len(cone.ties), (
        f"{q}: expected {len(cone.inside)} (+{len(cone.ties)} ties), got {n}")


@pytest.mark.parametrize("table", [HIP_TABLE, GAIA_TABLE])
def test_tap_full_table_count(base_url, table):
    """Every raw row was ingested: COUNT(*) equals the raw file's row count."""
    q = f"SELECT COUNT(*) AS n FROM {table}"
    resp = tap_sync(base_url, q)
    assert resp.status_code == 200, f"{q}: HTTP {resp.status_code}: {resp.text[:1000]}"
    assert query_status(resp.content)[:1] == ["OK"], f"{q}: {query_status(resp.content)}"
    res = pyvo.dal.TAPResults(parse_votable(resp.content))
    assert int(column(res.to_table(), "n")[0]) == len(raw_catalog(table).ids)


def scs_id_column(res):
    """The column SCS 1.03 marks with UCD1 ID_MAIN (required in every result)."""
    fields = res.resultstable.fields
    names = [f.name for f in fields if (f.ucd or "").upper() == "ID_MAIN"]
    assert len(names) == 1, (
        f"SCS result must have exactly one ID_MAIN column; fields: "
        f"{[(f.name, f.ucd) for f in fields]}")
    return res.to_table()[names[0]]


@pytest.mark.parametrize("table,ra0,dec0,r", cone_params())
def test_scs(base_url, table, ra0, dec0, r):
    scs = SCSService(f"{base_url}/scs/{table}", session=TimeoutSession())
    res = scs.search(pos=(ra0, dec0), radius=r, verbosity=1)  # raises on an error document
    ids = scs_id_column(res)
    assert_cone_result(ids, raw_catalog(table), ra0, dec0, r, f"SCS RA={ra0} DEC={dec0} SR={r}")


@pytest.mark.parametrize("params", [
    {"RA": "56.75", "SR": "1"},                 # DEC missing
    {"RA": "56.75", "DEC": "95", "SR": "1"},    # DEC out of range
    {"RA": "abc", "DEC": "10", "SR": "1"},      # not a number
    {"RA": "10", "DEC": "10", "SR": "-1"},      # negative radius
], ids=["missing-dec", "dec-95", "ra-not-a-number", "sr-negative"])
def test_scs_error_document(base_url, params):
    """SCS 1.03: a bad request gets a VOTable whose INFO (or PARAM) name="Error" says why
    (SCS 1.1/DALI: INFO QUERY_STATUS=ERROR; either form is accepted), never a 5xx."""
    from vostok_helpers import _local, http_get, root_element
    r = http_get(f"{base_url}/scs/{HIP_TABLE}", params=params)
    assert r.status_code < 500, f"SCS {params}: HTTP {r.status_code}: {r.text[:500]}"
    root = root_element(r.content)
    assert _local(root.tag) == "VOTABLE", f"SCS {params}: not a VOTable: {r.text[:500]}"
    marks = [e for e in root.iter() if _local(e.tag) in ("INFO", "PARAM") and (
        e.get("name") == "Error" or ((e.get("name") or "").upper() == "QUERY_STATUS"
                                     and (e.get("value") or "").upper() == "ERROR"))]
    assert marks, f"SCS {params}: no Error INFO/PARAM in {r.text[:800]}"
    assert not any(_local(e.tag) == "TR" or _local(e.tag) == "STREAM" for e in root.iter()), \
        "an error document carries no rows"
