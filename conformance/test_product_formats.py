"""What clients get for a data product: SSA's ssa:DataID.Date (pyvo's `dateobs`) and one media
type for gzip-compressed FITS files (`.fits.gz`) across ObsCore, SSA, SIA, DataLink and the
download itself, which sends such a file with `Content-Encoding: gzip` to clients that accept
gzip and decompressed to the others; pyvo and astropy open what they get as FITS."""

from __future__ import annotations

import gzip
import io
import math

import numpy as np
import pytest

from vostok_helpers import REPO, TimeoutSession, parse_votable, tap_sync

DEMO = REPO / "data" / "demo"
DID_PREFIX = "ivo://vostok.example/demo?"
GZ_FILES = sorted(p.relative_to(DEMO).as_posix()
                  for d in ("images", "spectra") for p in (DEMO / d).glob("*.fits.gz"))


@pytest.fixture(scope="module")
def session():
    return TimeoutSession()


def _rows(content):
    t = parse_votable(content).get_first_table().to_table()
    out = []
    for row in t:
        d = {}
        for c in t.colnames:
            v = row[c]
            d[c] = None if np.ma.is_masked(v) else (v.decode() if isinstance(v, bytes) else v)
        out.append(d)
    return t, out


def test_ssa_results_carry_dataid_date(base_url):
    """Every SSA record with a start time gives pyvo a `dateobs` equal to it (to the ms)."""
    from astropy.time import Time
    from pyvo.dal import SSAService
    res = SSAService(base_url + "/ssa").search()
    utypes = {(f.utype or "").lower() for f in res.resultstable.fields}
    assert "ssa:dataid.date" in utypes, sorted(utypes)
    dated = 0
    problems = []
    for rec in res:
        t_min = rec["t_min"]
        if t_min is None or np.ma.is_masked(t_min) or (isinstance(t_min, float) and math.isnan(t_min)):
            if rec.dateobs is not None:
                problems.append(f"{rec.acref}: no t_min but dateobs {rec.dateobs}")
            continue
        if rec.dateobs is None:
            problems.append(f"{rec.acref}: t_min {t_min} but dateobs None")
            continue
        dated += 1
        diff = abs((rec.dateobs - Time(float(t_min), format="mjd")).sec)
        if diff > 0.002:
            problems.append(f"{rec.acref}: dateobs {rec.dateobs.iso} is {diff} s from t_min {t_min}")
    assert not problems, "\n".join(problems)
    assert dated >= 10, dated


def test_fits_gz_is_fits_everywhere(base_url, session):
    assert len(GZ_FILES) >= 10, GZ_FILES
    r = tap_sync(base_url, "SELECT obs_publisher_did, access_format, access_url FROM ivoa.obscore")
    assert r.status_code == 200, r.text[:1000]
    _, obscore = _rows(r.content)
    formats = {row["access_format"] for row in obscore}
    assert formats == {"application/fits"}, formats
    # SSA and SIA v2 results say the same.
    r = session.get(base_url + "/ssa", params={"REQUEST": "queryData"})
    _, ssa = _rows(r.content)
    assert ssa and {row["access_format"] for row in ssa} == {"application/fits"}
    r = session.get(base_url + "/sia/v2/query", params={"MAXREC": "1000"})
    _, sia = _rows(r.content)
    assert sia and {row["access_format"] for row in sia} == {"application/fits"}
    problems = []
    for rel in GZ_FILES:
        stored = (DEMO / rel).read_bytes()
        plain = gzip.decompress(stored)
        did = DID_PREFIX + rel
        r = session.get(base_url + "/datalink/links", params={"ID": did})
        _, links = _rows(r.content)
        this = [x for x in links if x["semantics"] == "#this"]
        if len(this) != 1 or this[0]["content_type"] != "application/fits":
            problems.append(f"{rel}: DataLink #this {this}")
            continue
        url = this[0]["access_url"]
        # A client that accepts gzip: the stored bytes, encoded.
        g = session.get(url, headers={"Accept-Encoding": "gzip"}, stream=True)
        raw = g.raw.read(decode_content=False)
        if (g.status_code, g.headers.get("Content-Type"), g.headers.get("Content-Encoding")) != (
                200, "application/fits", "gzip") or raw != stored:
            problems.append(f"{rel} gzip: HTTP {g.status_code} {g.headers} same={raw == stored}")
        if this[0]["content_length"] != len(stored) or g.headers.get("Content-Length") != str(len(stored)):
            problems.append(f"{rel}: DataLink content_length {this[0]['content_length']}, "
                            f"Content-Length {g.headers.get('Content-Length')}, stored {len(stored)}")
        if not g.headers.get("Content-Disposition", "").endswith('.fits"'):
            problems.append(f"{rel}: Content-Disposition {g.headers.get('Content-Disposition')}")
        # A client that does not: the FITS file, decompressed.
        p = session.get(url, headers={"Accept-Encoding": "identity"}, stream=True)
        body = p.raw.read(decode_content=False)
        if (p.status_code, p.headers.get("Content-Type"), p.headers.get("Content-Encoding")) != (
                200, "application/fits", None) or body != plain:
            problems.append(f"{rel} identity: HTTP {p.status_code} {p.headers} "
                            f"{len(body)} bytes, same={body == plain}")
        h = session.head(url, headers={"Accept-Encoding": "identity"})
        if h.status_code != 200 or h.content or h.headers.get("Content-Encoding"):
            problems.append(f"{rel} HEAD identity: {h.status_code} {h.headers}")
    assert not problems, "\n".join(problems)


def test_pyvo_and_astropy_open_fits_gz(base_url):
    """pyvo's download (requests, gzip accepted) and astropy's fits.open on the URL (urllib,
    no gzip) both give the FITS file, with the data of the stored one."""
    from astropy.io import fits
    from pyvo.dal import SSAService
    from pyvo.utils.http import create_session
    res = SSAService(base_url + "/ssa").search()
    recs = [rec for rec in res if str(rec.acref).endswith(".fits.gz")]
    assert len(recs) >= 5, [str(r.acref) for r in res]
    for rec in recs[:3]:
        rel = str(rec.acref).split("/data/demo/", 1)[1]
        with fits.open(DEMO / rel) as want:
            want_data = [np.asarray(h.data) if h.data is not None else None for h in want]
        # What pyvo's getdataset does (`stream_decode_content`); the record's own call first
        # reads DataLink vocabularies from the network, which this test has not.
        resp = create_session().get(str(rec.acref), stream=True)
        got = resp.raw.read(decode_content=True)
        assert resp.headers.get("Content-Encoding") == "gzip", resp.headers
        assert got[:6] == b"SIMPLE", (rel, got[:16])
        with fits.open(io.BytesIO(got)) as h:
            assert len(h) == len(want_data)
            for a, b in zip(h, want_data):
                assert (a.data is None) == (b is None)
                if b is not None and a.data.dtype.names is None:
                    assert np.array_equal(np.asarray(a.data), b, equal_nan=True), rel
        with fits.open(str(rec.acref), cache=False) as h:
            assert len(h) == len(want_data), rel
