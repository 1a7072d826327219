"""TAP 1.1 / DALI basics through real clients (pyvo, astropy) and plain HTTP:
MAXREC and the overflow flag, RESPONSEFORMAT variants, error documents, TAP_SCHEMA,
column metadata in result FIELDs.
"""

import csv
import io

import numpy as np
import pytest
from pyvo.dal import DALQueryError, TAPService

from vostok_helpers import (GAIA_TABLE, HIP_TABLE, TimeoutSession, _local, hipparcos, http_get,
                            parse_votable,
                            query_status, raw_catalog, root_element, serialization_of, tap_sync)

# A mid-sky cone with a few hundred Hipparcos stars and no boundary ties.
CONE = (56.75, 24.12, 3.0)
CONE_WHERE = "1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', %r, %r, %r))" % CONE
DEFAULT_MAXREC = 100_000


@pytest.fixture(scope="module")
def tap(base_url):
    return TAPService(base_url + "/tap", session=TimeoutSession())


@pytest.fixture(scope="module")
def cone_hips():
    cone = hipparcos().cone(*CONE)
    assert not cone.ties and len(cone.inside) > 50
    return sorted(cone.inside)


def ok_response(resp, what):
    assert resp.status_code == 200, f"{what}: HTTP {resp.status_code}: {resp.text[:2000]}"
    return resp


def votable_table(content):
    vot = parse_votable(content)
    res = [r for r in vot.resources if r.type == "results"]
    assert res, "no RESOURCE type=\"results\" in the VOTable"
    return res[0].tables[0].to_table()


def col(table, name):
    for c in table.colnames:
        if c.lower() == name:
            return table[c]
    raise AssertionError(f"no column {name!r}; columns {table.colnames}")


def overflow_position(content):
    """(has OVERFLOW INFO, it comes after the TABLE inside the results RESOURCE)."""
    root = root_element(content)
    for res in root.iter():
        if _local(res.tag) != "RESOURCE" or res.get("type") != "results":
            continue
        kids = list(res)
        t = [i for i, k in enumerate(kids) if _local(k.tag) == "TABLE"]
        o = [i for i, k in enumerate(kids)
             if _local(k.tag) == "INFO" and (k.get("name") or "").upper() == "QUERY_STATUS"
             and (k.get("value") or "").upper() == "OVERFLOW"]
        if o:
            return True, bool(t) and min(o) > max(t)
    # an OVERFLOW anywhere else still counts as "present" (but misplaced)
    return "OVERFLOW" in [s.upper() for s in query_status(content)], False


# ---------------------------------------------------------------- MAXREC / overflow


@pytest.mark.parametrize("delta,expect_overflow", [(+5, False), (0, False), (-1, True)])
def test_maxrec_overflow_flag(base_url, cone_hips, delta, expect_overflow):
    n = len(cone_hips)
    maxrec = n + delta
    q = f"SELECT hip FROM {HIP_TABLE} WHERE {CONE_WHERE} ORDER BY hip"
    resp = ok_response(tap_sync(base_url, q, MAXREC=maxrec), q)
    got = [int(x) for x in col(votable_table(resp.content), "hip")]
    assert got == cone_hips[:min(n, maxrec)], f"MAXREC={maxrec} (true rows {n}): wrong rows"
    statuses = [s.upper() for s in query_status(resp.content)]
    assert statuses and statuses[0] == "OK", f"first QUERY_STATUS should be OK, got {statuses}"
    present, after_table = overflow_position(resp.content)
    assert present == expect_overflow, (
        f"MAXREC={maxrec}, query has {n} rows: OVERFLOW flag {'missing' if expect_overflow else 'present'}; "
        f"QUERY_STATUS infos: {statuses}")
    if present:
        assert after_table, "INFO QUERY_STATUS=OVERFLOW must come after the TABLE in the results RESOURCE"


def test_maxrec_one_with_pyvo(tap):
    res = tap.run_sync(f"SELECT hip FROM {HIP_TABLE} WHERE {CONE_WHERE}", maxrec=1)
    assert len(res) == 1
    assert res.query_status.upper() == "OVERFLOW"


@pytest.mark.parametrize("top,maxrec,rows,overflow", [(10, 10, 10, False), (10, 5, 5, True),
                                                      (10, 11, 10, False)])
def test_top_and_maxrec(base_url, top, maxrec, rows, overflow):
    """TOP limits the query itself: a result cut by TOP alone is not an overflow."""
    q = f"SELECT TOP {top} hip FROM {HIP_TABLE} ORDER BY hip"
    resp = ok_response(tap_sync(base_url, q, MAXREC=maxrec), q)
    got = [int(x) for x in col(votable_table(resp.content), "hip")]
    assert got == sorted(hipparcos().ids.tolist())[:rows]
    present, _ = overflow_position(resp.content)
    assert present == overflow, f"{q} MAXREC={maxrec}: overflow flag present={present}"


def test_default_maxrec(base_url):
    """Without MAXREC the service default (100000) applies, flagged as overflow."""
    q = f"SELECT source_id FROM {GAIA_TABLE}"
    resp = ok_response(tap_sync(base_url, q, RESPONSEFORMAT="votable/b2"), q)
    t = votable_table(resp.content)
    assert len(t) == DEFAULT_MAXREC
    assert overflow_position(resp.content)[0], "default MAXREC truncated the result: OVERFLOW expected"


def test_maxrec_zero_is_metadata_only(base_url):
    """DALI: MAXREC=0 asks for metadata only — the FIELDs, no rows."""
    q = f"SELECT hip, ra, dec FROM {HIP_TABLE} WHERE {CONE_WHERE}"
    resp = ok_response(tap_sync(base_url, q, MAXREC=0), q)
    t = votable_table(resp.content)
    assert len(t) == 0
    assert [c.lower() for c in t.colnames] == ["hip", "ra", "dec"]


# ---------------------------------------------------------------- RESPONSEFORMAT

COLS = ["hip", "ra", "dec", "hpmag", "plx"]
FMT_QUERY = f"SELECT {', '.join(COLS)} FROM {HIP_TABLE} WHERE {CONE_WHERE} ORDER BY hip"

FORMATS = [
    # (RESPONSEFORMAT, kind, media type prefix, serialization)
    (None, "votable", "application/x-votable+xml", None),
    ("votable", "votable", "application/x-votable+xml", "TABLEDATA"),
    ("application/x-votable+xml", "votable", "application/x-votable+xml", None),
    ("votable/b2", "votable", "application/x-votable+xml", "BINARY2"),
    ("application/x-votable+xml;serialization=BINARY2", "votable", "application/x-votable+xml",
     "BINARY2"),
    ("csv", "csv", "text/csv", None),
    ("text/csv", "csv", "text/csv", None),
    ("tsv", "tsv", "text/tab-separated-values", None),
    ("text/tab-separated-values", "tsv", "text/tab-separated-values", None),
]


def read_delimited(text, delim):
    rows = list(csv.reader(io.StringIO(text), delimiter=delim))
    assert rows, "empty output"
    header = [h.strip().lower() for h in rows[0]]
    body = [r for r in rows[1:] if r]
    data = {h: [r[i] for r in body] for i, h in enumerate(header)}
    return header, data


@pytest.mark.parametrize("fmt,kind,media,ser", FORMATS, ids=[str(f[0]) for f in FORMATS])
def test_responseformat(base_url, cone_hips, fmt, kind, media, ser):
    params = {} if fmt is None else {"RESPONSEFORMAT": fmt}
    resp = ok_response(tap_sync(base_url, FMT_QUERY, **params), f"RESPONSEFORMAT={fmt}")
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.lower().startswith(media), f"RESPONSEFORMAT={fmt}: Content-Type {ctype!r}, expected {media}"
    if kind == "votable":
        if ser:
            assert serialization_of(resp.content) == {ser}, (
                f"RESPONSEFORMAT={fmt}: DATA serialization {serialization_of(resp.content)}, expected {ser}")
        t = votable_table(resp.content)
        assert [c.lower() for c in t.colnames] == COLS
        values = {c: np.asarray(col(t, c)) for c in COLS}
    else:
        header, data = read_delimited(resp.text, "," if kind == "csv" else "\t")
        assert header == COLS, f"header {header}"
        values = {"hip": np.array([int(x) for x in data["hip"]])}
        for c in COLS[1:]:
            values[c] = np.array([float(x) for x in data[c]])
    assert [int(x) for x in values["hip"]] == cone_hips, f"RESPONSEFORMAT={fmt}: wrong hip list"
    hip = hipparcos()
    idx = np.array([hip.index[h] for h in cone_hips])
    # positions are the raw radians converted to degrees: agree to far better than 1e-9 deg
    np.testing.assert_allclose(values["ra"].astype(float), hip.ra[idx], rtol=0, atol=1e-9)
    np.testing.assert_allclose(values["dec"].astype(float), hip.dec[idx], rtol=0, atol=1e-9)
    assert np.all(np.isfinite(values["hpmag"].astype(float)))


def test_formats_agree(base_url):
    """TABLEDATA, BINARY2, CSV and TSV carry the same values."""
    out = {}
    for fmt in ["votable", "votable/b2", "csv", "tsv"]:
        resp = ok_response(tap_sync(base_url, FMT_QUERY, RESPONSEFORMAT=fmt), fmt)
        if fmt.startswith("votable"):
            t = votable_table(resp.content)
            out[fmt] = {c: np.asarray(col(t, c), dtype=float) for c in COLS}
        else:
            _, data = read_delimited(resp.text, "," if fmt == "csv" else "\t")
            out[fmt] = {c: np.array([float(x) for x in data[c]]) for c in COLS}
    ref = out["votable/b2"]
    for fmt, vals in out.items():
        for c in COLS:
            np.testing.assert_allclose(vals[c], ref[c], rtol=1e-12, atol=0,
                                       err_msg=f"{fmt} vs BINARY2, column {c}")


def test_get_and_post_agree(base_url):
    q = f"SELECT hip FROM {HIP_TABLE} WHERE {CONE_WHERE} ORDER BY hip"
    a = ok_response(tap_sync(base_url, q, method="GET"), "GET " + q)
    b = ok_response(tap_sync(base_url, q, method="POST"), "POST " + q)
    assert list(col(votable_table(a.content), "hip")) == list(col(votable_table(b.content), "hip"))


# ---------------------------------------------------------------- errors

BAD_REQUESTS = [
    ("syntax-error", {"QUERY": f"SELECT hip FRM {HIP_TABLE}"}),
    ("unknown-table", {"QUERY": "SELECT * FROM nosuchschema.nosuchtable"}),
    ("unknown-column", {"QUERY": f"SELECT no_such_column FROM {HIP_TABLE}"}),
    ("sql-not-adql-limit", {"QUERY": f"SELECT hip FROM {HIP_TABLE} LIMIT 5"}),
    ("missing-query", {}),
    ("bad-lang", {"LANG": "PQL-nonsense", "QUERY": f"SELECT hip FROM {HIP_TABLE}"}),
    ("bad-maxrec", {"MAXREC": "many", "QUERY": f"SELECT TOP 1 hip FROM {HIP_TABLE}"}),
    ("bad-responseformat", {"RESPONSEFORMAT": "application/x-no-such-format",
                            "QUERY": f"SELECT TOP 1 hip FROM {HIP_TABLE}"}),
]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("label,params", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_error_document(base_url, label, params, method):
    import requests
    data = {"REQUEST": "doQuery", "LANG": "ADQL"}
    data.update(params)
    url = base_url + "/tap/sync"
    resp = (requests.get(url, params=data, timeout=(10, 60)) if method == "GET"
            else requests.post(url, data=data, timeout=(10, 60)))
    assert resp.status_code == 400, f"{label}: HTTP {resp.status_code} (expected 400): {resp.text[:500]}"
    ctype = resp.headers.get("Content-Type", "").lower()
    assert "xml" in ctype, f"{label}: error document Content-Type {ctype!r}"
    root = root_element(resp.content)
    assert _local(root.tag) == "VOTABLE", f"{label}: error document root is {root.tag}"
    statuses = [s.upper() for s in query_status(resp.content)]
    assert statuses == ["ERROR"], f"{label}: QUERY_STATUS infos {statuses}"
    info = [i for i in root.iter() if _local(i.tag) == "INFO"
            and (i.get("name") or "").upper() == "QUERY_STATUS"][0]
    assert (info.text or "").strip(), f"{label}: the QUERY_STATUS=ERROR INFO carries no message"


def test_pyvo_raises_dalqueryerror(tap):
    with pytest.raises(DALQueryError) as e:
        tap.run_sync(f"SELECT hip FRM {HIP_TABLE}")
    assert str(e.value).strip(), "DALQueryError without a message"


# ---------------------------------------------------------------- metadata

HIP_COLUMNS = ["hip", "ra", "dec", "plx", "pmra", "pmdec", "e_ra", "e_dec", "e_plx", "e_pmra",
               "e_pmdec", "nc", "hpmag", "e_hpmag", "b_v", "e_b_v", "v_i"]
GAIA_COLUMNS = ["source_id", "ra", "dec", "phot_g_mean_mag", "pmra", "pmdec"]


def test_tap_schema_tables(tap):
    res = tap.run_sync("SELECT schema_name, table_name FROM TAP_SCHEMA.tables")
    t = res.to_table()
    names = {str(x).lower() for x in col(t, "table_name")}
    for want in [HIP_TABLE, GAIA_TABLE, "tap_schema.tables", "tap_schema.columns"]:
        assert want in names, f"TAP_SCHEMA.tables lacks {want}: {sorted(names)}"
    schemas = {str(x).lower() for x in col(t, "schema_name")}
    assert {"hipparcos", "gaia", "tap_schema"} <= schemas, schemas


@pytest.mark.parametrize("table,cols", [(HIP_TABLE, HIP_COLUMNS), (GAIA_TABLE, GAIA_COLUMNS)])
def test_tap_schema_columns(tap, table, cols):
    res = tap.run_sync("SELECT column_name, unit, ucd, datatype FROM TAP_SCHEMA.columns "
                       f"WHERE table_name = '{table}'")
    t = res.to_table()
    meta = {str(r["column_name"]).lower(): r for r in t}
    missing = [c for c in cols if c not in meta]
    assert not missing, f"TAP_SCHEMA.columns for {table} lacks {missing}; has {sorted(meta)}"
    assert str(meta["ra"]["unit"]) == "deg" and str(meta["ra"]["ucd"]) == "pos.eq.ra;meta.main"
    assert str(meta["dec"]["unit"]) == "deg" and str(meta["dec"]["ucd"]) == "pos.eq.dec;meta.main"


def test_vosi_tables_lists_catalogs(tap):
    names = {t.name.lower() for t in tap.tables}
    assert {HIP_TABLE, GAIA_TABLE} <= names, sorted(names)


def test_availability_and_capabilities(base_url, tap):
    r = http_get(base_url + "/tap/availability")
    assert r.status_code == 200
    avail = [e.text for e in root_element(r.content).iter() if _local(e.tag) == "available"]
    assert [(a or "").strip() for a in avail] == ["true"], f"availability document: {r.text[:500]}"
    ids = [c.standardid for c in tap.capabilities]
    assert any(str(i).startswith("ivo://ivoa.net/std/TAP") for i in ids), ids


@pytest.mark.parametrize("table", [HIP_TABLE, GAIA_TABLE])
@pytest.mark.parametrize("fmt", ["votable", "votable/b2"])
def test_result_field_metadata(base_url, table, fmt):
    q = f"SELECT TOP 3 ra, dec FROM {table}"
    resp = ok_response(tap_sync(base_url, q, RESPONSEFORMAT=fmt), q)
    vot = parse_votable(resp.content)
    fields = {f.name.lower(): f for f in vot.get_first_table().fields}
    assert str(fields["ra"].unit) == "deg", f"ra unit {fields['ra'].unit!r}"
    assert fields["ra"].ucd == "pos.eq.ra;meta.main", f"ra ucd {fields['ra'].ucd!r}"
    assert str(fields["dec"].unit) == "deg", f"dec unit {fields['dec'].unit!r}"
    assert fields["dec"].ucd == "pos.eq.dec;meta.main", f"dec ucd {fields['dec'].ucd!r}"
    assert fields["ra"].datatype == "double" and fields["dec"].datatype == "double"


def test_id_datatypes(base_url):
    """hip is an int, Gaia's source_id a 64-bit long (it does not fit an int)."""
    for table, c, dt in [(HIP_TABLE, "hip", "int"), (GAIA_TABLE, "source_id", "long")]:
        q = f"SELECT TOP 1 {c} FROM {table}"
        vot = parse_votable(ok_response(tap_sync(base_url, q), q).content)
        f = vot.get_first_table().fields[0]
        assert f.datatype == dt, f"{table}.{c}: datatype {f.datatype}, expected {dt}"
    # and the values survive: the largest source_id comes back intact
    g = raw_catalog(GAIA_TABLE)
    big = int(g.ids.max())
    q = f"SELECT source_id FROM {GAIA_TABLE} WHERE source_id = {big}"
    vot = parse_votable(ok_response(tap_sync(base_url, q), q).content)
    assert [int(x) for x in vot.get_first_table().array["source_id"]] == [big]
