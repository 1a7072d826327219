"""TAP_UPLOAD (TAP 1.1 §3.3.5, DALI UPLOAD) with real clients: pyvo, requests, STILTS.

* pyvo `run_sync(query, uploads={"mine": table})` crossmatched with hipparcos.hip2 through
  `1=CONTAINS(POINT(h.ra, h.dec), CIRCLE(m.ra, m.dec, r))` returns exactly the brute-force
  pairs (numpy over the raw hip2.dat positions; pairs within 1e-9 deg of the radius are ties,
  left out of the comparison). The table: Hipparcos stars moved by up to 1.5 r (some stay
  inside, some leave), random positions, and positions at RA 0/360 and the poles.
* `SELECT * FROM TAP_UPLOAD.mine` gives back the uploaded rows unchanged (ints, doubles,
  strings, NULLs), with the uploaded FIELD metadata (unit, ucd).
* CSV uploads (typed by their values), a URL upload from an allowed host, the limits (a second
  server with small limits), bad UPLOAD parameters and unknown upload names (400), and
  isolation: no query sees another one's uploads.
* `stilts tapskymatch`, which crossmatches by uploading blocks of its input table, finds the
  brute-force pairs.
"""

from __future__ import annotations

import csv
import io
import threading
import http.server
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from astropy.table import MaskedColumn, Table

from conftest import _stop, free_port, log_tail
from vostok_helpers import (BOUNDARY_TOL_DEG, HIP_TABLE, REPO, TimeoutSession,
                            angular_distance_deg, http_post, parse_votable, stilts)

pyvo = pytest.importorskip("pyvo")

RADIUS_DEG = 0.02
N_HIP = 400
N_RANDOM = 300


def brute_force(up, hip, r=RADIUS_DEG):
    """(pairs surely within r, pairs within 1e-9 deg of r) as sets of (id, hip)."""
    inside, ties = set(), set()
    for i, ra, dec in zip(up["id"], up["ra"], up["dec"]):
        d = angular_distance_deg(ra, dec, hip.ra, hip.dec)
        inside |= {(int(i), int(h)) for h in hip.ids[d < r - BOUNDARY_TOL_DEG]}
        ties |= {(int(i), int(h)) for h in hip.ids[np.abs(d - r) <= BOUNDARY_TOL_DEG]}
    return inside, ties


def offset(ra, dec, dist, pa):
    """Position at angular distance `dist` (deg) and position angle `pa` (rad) from (ra, dec)."""
    ra, dec, dist = np.radians(ra), np.radians(dec), np.radians(dist)
    sd = np.sin(dec) * np.cos(dist) + np.cos(dec) * np.sin(dist) * np.cos(pa)
    d2 = np.arcsin(np.clip(sd, -1, 1))
    ra2 = ra + np.arctan2(np.sin(pa) * np.sin(dist) * np.cos(dec),
                          np.cos(dist) - np.sin(dec) * sd)
    return np.degrees(ra2) % 360.0, np.degrees(d2)


@pytest.fixture(scope="module")
def upload_table(hip_truth):
    """The positions to upload, as an astropy Table with NULLs in `mag` and `label`."""
    rng = np.random.default_rng(11)
    hip = hip_truth
    ok = np.isfinite(hip.ra) & np.isfinite(hip.dec)
    edges = np.flatnonzero(ok & ((hip.ra < 0.05) | (hip.ra > 359.95) | (np.abs(hip.dec) > 88.5)))
    pick = np.concatenate((edges[:40], rng.choice(np.flatnonzero(ok), N_HIP, replace=False)))
    ra1, dec1 = offset(hip.ra[pick], hip.dec[pick], rng.uniform(0, 1.5 * RADIUS_DEG, len(pick)),
                       rng.uniform(0, 2 * np.pi, len(pick)))
    ra2 = rng.uniform(0, 360, N_RANDOM)
    dec2 = np.degrees(np.arcsin(rng.uniform(-1, 1, N_RANDOM)))
    # A pole, RA 0 and RA 360-ε with a Hipparcos star nearby or not.
    ra3 = np.array([0.0, 359.9999, 0.0001, 123.0, 45.0])
    dec3 = np.array([89.999, 10.0, -30.0, -89.9995, 0.0])
    ra = np.concatenate((ra1, ra2, ra3))
    dec = np.concatenate((dec1, dec2, dec3))
    n = len(ra)
    mag = rng.uniform(2, 12, n)
    mag_mask = rng.random(n) < 0.1
    labels = np.array([f"src-{i}" if i % 7 else "" for i in range(n)], dtype=object)
    label_mask = labels == ""
    t = Table()
    t["id"] = np.arange(1, n + 1, dtype=np.int64) * 10
    t["ra"] = ra
    t["ra"].unit = "deg"
    t["ra"].meta["ucd"] = "pos.eq.ra;meta.main"
    t["dec"] = dec
    t["dec"].unit = "deg"
    t["dec"].meta["ucd"] = "pos.eq.dec;meta.main"
    t["mag"] = MaskedColumn(mag, mask=mag_mask)
    t["label"] = MaskedColumn(np.where(label_mask, "x", labels).astype(str), mask=label_mask)
    t["small"] = (np.arange(n) % 100).astype(np.int32)
    return t


@pytest.fixture(scope="module")
def tap(base_url):
    return pyvo.dal.TAPService(base_url + "/tap", session=TimeoutSession())


def xmatch_query(r=RADIUS_DEG, name="mine"):
    return (f"SELECT m.id, h.hip FROM TAP_UPLOAD.{name} AS m JOIN {HIP_TABLE} AS h "
            f"ON 1=CONTAINS(POINT('ICRS', h.ra, h.dec), CIRCLE('ICRS', m.ra, m.dec, {r}))")


def compare_pairs(got_pairs, inside, ties, what):
    got = set(got_pairs)
    problems = []
    if len(got) != len(got_pairs):
        problems.append(f"{len(got_pairs) - len(got)} duplicate pairs")
    missing, extra = inside - got, got - inside - ties
    if missing:
        problems.append(f"{len(missing)} pairs missing, e.g. {sorted(missing)[:10]}")
    if extra:
        problems.append(f"{len(extra)} pairs outside the radius, e.g. {sorted(extra)[:10]}")
    assert not problems, f"{what}: {len(got_pairs)} pairs, {len(inside)} expected; " + "; ".join(problems)


def test_pyvo_crossmatch_equals_brute_force(tap, upload_table, hip_truth):
    inside, ties = brute_force(upload_table, hip_truth)
    assert len(inside) > 200, len(inside)  # the moved Hipparcos stars mostly stay in
    t0 = time.monotonic()
    res = tap.run_sync(xmatch_query(), uploads={"mine": upload_table}, maxrec=1_000_000)
    elapsed = time.monotonic() - t0
    got = res.to_table()
    pairs = list(zip(np.asarray(got["id"]).tolist(), np.asarray(got["hip"]).tolist()))
    print(f"\n[upload xmatch] {len(pairs)} pairs in {elapsed:.2f} s "
          f"(truth {len(inside)} + {len(ties)} ties; {len(upload_table)} uploaded rows)")
    compare_pairs(pairs, inside, ties, "pyvo upload crossmatch")


def test_pyvo_select_star_returns_the_upload(tap, upload_table):
    res = tap.run_sync("SELECT * FROM TAP_UPLOAD.mine", uploads={"mine": upload_table},
                       maxrec=100_000)
    got = res.to_table()
    assert got.colnames == upload_table.colnames
    assert len(got) == len(upload_table)
    order = np.argsort(np.asarray(got["id"]))
    got = got[order]
    assert np.array_equal(np.asarray(got["id"]), np.asarray(upload_table["id"]))
    assert np.array_equal(np.asarray(got["small"]), np.asarray(upload_table["small"]))
    for c in ("ra", "dec"):
        assert np.array_equal(np.asarray(got[c], dtype=float), np.asarray(upload_table[c])), c
    mag = got["mag"]
    want_mask = np.asarray(upload_table["mag"].mask)
    got_mask = np.asarray(getattr(mag, "mask", np.zeros(len(mag), bool))) | np.isnan(
        np.asarray(mag, dtype=float))
    assert np.array_equal(got_mask, want_mask)
    assert np.array_equal(np.asarray(mag, dtype=float)[~want_mask],
                          np.asarray(upload_table["mag"])[~want_mask])
    lab = got["label"]
    want = upload_table["label"]
    for i in range(len(want)):
        if want.mask[i]:
            assert (hasattr(lab, "mask") and lab.mask[i]) or str(lab[i]) == "", (i, lab[i])
        else:
            assert str(lab[i]) == str(want[i]), (i, lab[i], want[i])
    # FIELD metadata of the upload flows into the result.
    fields = {f.name: f for f in res.votable.get_first_table().fields}
    assert fields["ra"].unit == "deg" and fields["ra"].ucd == "pos.eq.ra;meta.main"
    assert fields["dec"].ucd == "pos.eq.dec;meta.main"


def multipart_sync(base_url, query, files, upload, **params):
    data = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query, "UPLOAD": upload}
    data.update({k.upper(): str(v) for k, v in params.items()})
    return http_post(base_url + "/tap/sync", data=data, files=files)


def csv_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_upload_typed_by_values(base_url):
    body = ("id,ra,dec,name,flag\n"
            "1,10.5,-5.25,alpha,3\n"
            "2,,7,\"b,c\",\n"
            "3,359.99,89.5,,-4\n")
    q = ("SELECT id, ra, dec, name, flag, id + 1 AS id1, ra * 2 AS ra2, UPPER(name) AS up "
         "FROM TAP_UPLOAD.cat ORDER BY id")
    for ctype in ("text/csv", None):
        part = ("cat.csv", body.encode(), ctype) if ctype else ("cat.csv", body.encode())
        r = multipart_sync(base_url, q, {"t1": part}, "cat,param:t1", RESPONSEFORMAT="votable")
        assert r.status_code == 200, r.text[:1000]
        vt = parse_votable(r.content).get_first_table()
        types = {f.name: f.datatype for f in vt.fields}
        assert types["id"] == "long" and types["flag"] == "long", types
        assert types["ra"] == "double" and types["dec"] == "double", types
        assert types["name"] in ("char", "unicodeChar"), types
        t = vt.to_table()
        assert t["id"].tolist() == [1, 2, 3]
        assert t["id1"].tolist() == [2, 3, 4]
        assert t["ra2"][0] == 21.0 and np.ma.is_masked(t["ra"][1]) or np.isnan(t["ra"][1])
        assert t["dec"].tolist() == [-5.25, 7.0, 89.5]
        assert str(t["name"][1]) == "b,c" and str(t["up"][0]) == "ALPHA"
        assert np.ma.is_masked(t["flag"][1])
    # pyvo with a CSV file object (no content type: the server sniffs it).
    tap = pyvo.dal.TAPService(base_url + "/tap", session=TimeoutSession())
    res = tap.run_sync("SELECT COUNT(*) AS n, SUM(id) AS s FROM TAP_UPLOAD.cat",
                       uploads={"cat": io.BytesIO(body.encode())})
    t = res.to_table()
    assert int(t["n"][0]) == 3 and int(t["s"][0]) == 6


def test_several_uploads_and_plain_part(base_url):
    a = "x\n1\n2\n3\n"
    b = "x\n2\n3\n4\n"
    q = "SELECT a.x FROM TAP_UPLOAD.a AS a JOIN TAP_UPLOAD.B AS b ON a.x = b.x ORDER BY a.x"
    # ';'-separated, a table sent as a plain (file-name-less) part.
    files = {"pa": ("a.csv", a.encode(), "text/csv"), "pb": (None, b.encode())}
    r = multipart_sync(base_url, q, files, "a,param:pa;b,param:pb", RESPONSEFORMAT="csv")
    assert r.status_code == 200, r.text[:1000]
    assert [int(x["x"]) for x in csv_rows(r.text)] == [2, 3]
    # Repeated UPLOAD parameters.
    data = [("REQUEST", "doQuery"), ("LANG", "ADQL"), ("QUERY", q), ("RESPONSEFORMAT", "csv"),
            ("UPLOAD", "a,param:pa"), ("UPLOAD", "b,param:pb")]
    r = http_post(base_url + "/tap/sync", data=data,
                  files={"pa": ("a.csv", a.encode()), "pb": ("b.csv", b.encode())})
    assert r.status_code == 200, r.text[:1000]
    assert [int(x["x"]) for x in csv_rows(r.text)] == [2, 3]


@pytest.mark.parametrize("upload,query,expect", [
    ("1bad,param:t", "SELECT * FROM TAP_UPLOAD.t", "not valid"),
    ("select,param:t", "SELECT * FROM TAP_UPLOAD.t", "reserved"),
    ("t", "SELECT * FROM TAP_UPLOAD.t", "name,URI"),
    ("t,param:nosuchpart", "SELECT * FROM TAP_UPLOAD.t", "nosuchpart"),
    ("t,ftp://example.org/t.vot", "SELECT * FROM TAP_UPLOAD.t", "URI"),
    ("t,http://example.org/t.vot", "SELECT * FROM TAP_UPLOAD.t", "URL"),
    ("t,param:t;T,param:t", "SELECT * FROM TAP_UPLOAD.t", "more than once"),
    ("t,param:t", "SELECT * FROM TAP_UPLOAD.other", "other"),
])
def test_bad_uploads_are_400(base_url, upload, query, expect):
    files = {"t": ("t.csv", b"a\n1\n", "text/csv")}
    r = multipart_sync(base_url, query, files, upload)
    assert r.status_code == 400, (r.status_code, r.text[:500])
    assert "QUERY_STATUS" in r.text and "ERROR" in r.text
    assert expect.lower() in r.text.lower(), r.text[:1000]


def test_unreadable_table_is_400(base_url):
    files = {"t": ("t.vot", b"<VOTABLE><RESOURCE><TABLE><FIELD name='a'/></TABLE>", "text/xml")}
    r = multipart_sync(base_url, "SELECT * FROM TAP_UPLOAD.t", files, "t,param:t")
    assert r.status_code == 400 and "VOTable" in r.text, r.text[:500]
    files = {"t": ("t.csv", b"a,b\n1,2\n3\n", "text/csv")}
    r = multipart_sync(base_url, "SELECT * FROM TAP_UPLOAD.t", files, "t,param:t")
    assert r.status_code == 400 and "CSV" in r.text, r.text[:500]


def test_get_upload_needs_multipart(base_url):
    r = requests.get(base_url + "/tap/sync", timeout=60, params={
        "REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
        "UPLOAD": "t,param:t"})
    assert r.status_code == 400 and "multipart" in r.text, r.text[:500]


def test_uploads_are_private_to_their_query(base_url, tap):
    mine = Table({"v": np.array([1, 2, 3], dtype=np.int64)})
    res = tap.run_sync("SELECT SUM(v) AS s FROM TAP_UPLOAD.mine", uploads={"mine": mine})
    assert int(res.to_table()["s"][0]) == 6
    # The next query, without the upload, does not see it.
    r = http_post(base_url + "/tap/sync", data={
        "REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.mine"})
    assert r.status_code == 400 and "mine" in r.text.lower(), r.text[:500]
    # Nor does TAP_SCHEMA list it.
    r = http_post(base_url + "/tap/sync", data={
        "REQUEST": "doQuery", "LANG": "ADQL", "RESPONSEFORMAT": "csv",
        "QUERY": "SELECT table_name FROM TAP_SCHEMA.tables WHERE table_name LIKE '%mine%'"})
    assert r.status_code == 200 and len(csv_rows(r.text)) == 0, r.text[:500]

    # Concurrent queries with the same upload name each see their own table.
    def one(k):
        body = "v\n" + "\n".join(str(k) for _ in range(k + 1)) + "\n"
        r = multipart_sync(base_url, "SELECT COUNT(*) AS n, MIN(v) AS m FROM TAP_UPLOAD.mine",
                           {"f": ("f.csv", body.encode(), "text/csv")}, "mine,param:f",
                           RESPONSEFORMAT="csv")
        assert r.status_code == 200, r.text[:500]
        row = csv_rows(r.text)[0]
        return k, int(row["n"]), int(row["m"])

    with ThreadPoolExecutor(8) as ex:
        for k, n, m in ex.map(one, range(1, 25)):
            assert (n, m) == (k + 1, k), (k, n, m)


# --------------------------------------------------------------------------------------------
# Limits and URL uploads: a second server with small limits, allowed to fetch from 127.0.0.1.

SMALL_BYTES = 200_000
SMALL_ROWS = 1_000


@pytest.fixture(scope="module")
def table_host(tmp_path_factory):
    """A local HTTP server for URL uploads: serves a directory on 127.0.0.1."""
    root = tmp_path_factory.mktemp("upload-files")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def small_server(server, table_host, tmp_path_factory):
    """A second vostok (a data folder of its own, no demo data: one server per data folder),
    with small upload limits and URL uploads allowed from the table host on 127.0.0.1 (a
    loopback address, allowed with upload_url_private, its port listed)."""
    d = tmp_path_factory.mktemp("vostok-small")
    cfg = d / "vostok.toml"
    table_port = int(table_host[1].rsplit(":", 1)[1])
    cfg.write_text(f'[tap]\nupload_max_bytes = {SMALL_BYTES}\nupload_max_rows = {SMALL_ROWS}\n'
                   'upload_url_hosts = ["127.0.0.1"]\n'
                   f'upload_url_ports = [{table_port}]\nupload_url_private = true\n')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = d / "server.log"
    binary = server.proc.args[0]
    env = {"RUST_LOG": "info", "NO_COLOR": "1", "VOSTOK_DEMO_DIR": str(REPO / "data" / "demo"),
           "PATH": "/usr/bin:/bin"}
    with open(log, "wb") as f:
        proc = subprocess.Popen([binary, "--config", str(cfg), "serve", "--bind",
                                 f"127.0.0.1:{port}", "--data-dir", str(d / "data"),
                                 "--no-demo"],
                                cwd=d, stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"second server exited:\n{log_tail(log)}"
            try:
                if requests.get(base + "/tap/availability", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"second server not ready:\n{log_tail(log)}"
            time.sleep(0.3)
        yield base
    finally:
        _stop(proc)


def test_capabilities_declare_upload(base_url, small_server):
    import xml.etree.ElementTree as ET
    # URL uploads are declared only where `upload_url_hosts` allows a host: the default
    # server refuses every URL upload, the small server fetches from 127.0.0.1.
    for url, size, http_ok in ((base_url, 64 * 1024 * 1024, False),
                               (small_server, SMALL_BYTES, True)):
        root = ET.fromstring(requests.get(url + "/tap/capabilities", timeout=30).content)
        cap = [c for c in root if c.get("standardID") == "ivo://ivoa.net/std/TAP"][0]
        methods = [e.get("ivo-id") for e in cap if e.tag == "uploadMethod"]
        assert "ivo://ivoa.net/std/TAPRegExt#upload-inline" in methods
        assert ("ivo://ivoa.net/std/TAPRegExt#upload-http" in methods) == http_ok
        assert ("ivo://ivoa.net/std/TAPRegExt#upload-https" in methods) == http_ok
        lim = [e for e in cap if e.tag == "uploadLimit"][0]
        hard = [e for e in lim if e.tag == "hard"][0]
        assert hard.get("unit") == "byte" and int(hard.text) == size


def test_too_large_upload_is_400_naming_the_limit(small_server):
    big = ("x,y\n" + "".join(f"{i},{i * 0.5}\n" for i in range(40_000))).encode()
    assert len(big) > SMALL_BYTES
    r = multipart_sync(small_server, "SELECT COUNT(*) FROM TAP_UPLOAD.t",
                       {"t": ("t.csv", big, "text/csv")}, "t,param:t")
    assert r.status_code == 400, (r.status_code, r.text[:500])
    assert "upload_max_bytes" in r.text and str(SMALL_BYTES) in r.text, r.text[:500]
    # Far larger than the limit (refused from Content-Length, body drained): still a 400.
    huge = b"x\n" + b"1234567\n" * 2_000_000
    r = multipart_sync(small_server, "SELECT COUNT(*) FROM TAP_UPLOAD.t",
                       {"t": ("t.csv", huge, "text/csv")}, "t,param:t")
    assert r.status_code == 400 and "upload_max_bytes" in r.text, r.text[:500]
    # Too many rows.
    rows = ("x\n" + "".join(f"{i}\n" for i in range(SMALL_ROWS + 1))).encode()
    r = multipart_sync(small_server, "SELECT COUNT(*) FROM TAP_UPLOAD.t",
                       {"t": ("t.csv", rows, "text/csv")}, "t,param:t")
    assert r.status_code == 400, (r.status_code, r.text[:500])
    assert "upload_max_rows" in r.text and str(SMALL_ROWS) in r.text, r.text[:500]
    # Just under both limits: fine.
    ok = ("x\n" + "".join(f"{i}\n" for i in range(SMALL_ROWS))).encode()
    r = multipart_sync(small_server, "SELECT COUNT(*) AS n FROM TAP_UPLOAD.t",
                       {"t": ("t.csv", ok, "text/csv")}, "t,param:t", RESPONSEFORMAT="csv")
    assert r.status_code == 200 and csv_rows(r.text)[0]["n"] == str(SMALL_ROWS), r.text[:500]


def test_url_upload_from_allowed_host(small_server, table_host, upload_table):
    root, url = table_host
    upload_table[:50].write(root / "t.vot", format="votable", overwrite=True)
    (root / "big.csv").write_bytes(b"x\n" + b"1234567\n" * 40_000)
    q = "SELECT COUNT(*) AS n, SUM(small) AS s FROM TAP_UPLOAD.remote"
    r = requests.post(small_server + "/tap/sync", timeout=60, data={
        "REQUEST": "doQuery", "LANG": "ADQL", "QUERY": q, "RESPONSEFORMAT": "csv",
        "UPLOAD": f"remote,{url}/t.vot"})
    assert r.status_code == 200, r.text[:500]
    row = csv_rows(r.text)[0]
    assert int(row["n"]) == 50 and int(row["s"]) == int(np.sum(upload_table["small"][:50]))
    r = requests.post(small_server + "/tap/sync", timeout=60, data={
        "REQUEST": "doQuery", "LANG": "ADQL", "QUERY": q, "UPLOAD": f"remote,{url}/big.csv"})
    assert r.status_code == 400 and "upload_max_bytes" in r.text, r.text[:500]
    r = requests.post(small_server + "/tap/sync", timeout=60, data={
        "REQUEST": "doQuery", "LANG": "ADQL", "QUERY": q,
        "UPLOAD": f"remote,{url.replace('127.0.0.1', 'localhost')}/t.vot"})
    assert r.status_code == 400 and "only from 127.0.0.1" in r.text, r.text[:500]


# --------------------------------------------------------------------------------------------
# STILTS


def test_stilts_tapskymatch(base_url, upload_table, hip_truth, tmp_path):
    inp = tmp_path / "in.csv"
    with open(inp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "ra", "dec"])
        for i, ra, dec in zip(upload_table["id"], upload_table["ra"], upload_table["dec"]):
            w.writerow([int(i), repr(float(ra)), repr(float(dec))])
    inside, ties = brute_force(upload_table, hip_truth)
    out = tmp_path / "out.csv"
    p = stilts("tapskymatch", f"in={inp}", "ifmt=csv", "inlon=ra", "inlat=dec",
               f"tapurl={base_url}/tap", f"taptable={HIP_TABLE}", "taplon=ra", "taplat=dec",
               "tapcols=hip", f"sr={RADIUS_DEG}", "find=all", "sync=true", "blocksize=250",
               f"out={out}", "ofmt=csv")
    assert p.returncode == 0, f"stilts tapskymatch failed:\n{p.stderr[-3000:]}"
    rows = csv_rows(out.read_text())
    pairs = [(int(r["id"]), int(r["hip"])) for r in rows]
    print(f"\n[tapskymatch find=all] {len(pairs)} pairs (truth {len(inside)} + {len(ties)} ties)")
    compare_pairs(pairs, inside, ties, "stilts tapskymatch find=all")

    # find=each: one row per input row, the best match (if any).
    p = stilts("tapskymatch", f"in={inp}", "ifmt=csv", "inlon=ra", "inlat=dec",
               f"tapurl={base_url}/tap", f"taptable={HIP_TABLE}", "taplon=ra", "taplat=dec",
               "tapcols=hip", f"sr={RADIUS_DEG}", "find=each", "sync=true",
               f"out={out}", "ofmt=csv")
    assert p.returncode == 0, f"stilts tapskymatch failed:\n{p.stderr[-3000:]}"
    rows = csv_rows(out.read_text())
    assert len(rows) == len(upload_table), len(rows)
    matched = {int(r["id"]): r["hip"] for r in rows if r["hip"] not in ("", None)}
    want_ids = {i for i, _ in inside}
    assert want_ids <= set(matched) <= want_ids | {i for i, _ in ties}
    for i, h in matched.items():
        assert (i, int(h)) in inside | ties, (i, h)
