"""Live publishing: catalogs and image collections ingested, replaced and dropped while a
server runs on the same data folder, seen without a restart.

A server of its own (the shared server's catalogs and products copied, `[publish]
poll_ms = 250`, admins alice) serves while three threads run cone searches (SCS and TAP) on
hipparcos.hip2 and gaia.dr3_bright, each answer checked against the count the raw file gives.
Meanwhile `vostok ingest` adds a catalog generated here (live.stars, CSV) and an image
collection (two demo images copied to a folder of the test's), `--force` replaces the
catalog, and `vostok drop` removes both: each change must be visible in TAP, TAP_SCHEMA,
/tap/tables and SCS/SIA within 1 s of the command's end, and the cone searches must all
have succeeded with complete answers. A query streaming the old version while it is
replaced gets the old version's rows, all of them. The `/admin` API does the same for its
admins only: anonymous 401, another user 403, a path outside `[publish] sources` 403.
"""

import csv
import io
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

from vostok_helpers import (GAIA_TABLE, HIP_TABLE, REPO, OwnServer, data_copy, gaia, hipparcos,
                            parse_votable, query_status, storage_config, tap_sync)

# How long a change may take to be served after the command that made it ended.
WITHIN_S = 1.0
POLL_MS = 250

STARS_TOML = """
[table]
schema = "live"
name = "stars"
title = "Stars made up by test_live_publish"
ra = "ra"
dec = "dec"
id = "id"
partition_rows = {partition_rows}

[source]
path = "{csv}"
format = "csv"

[[columns]]
name = "id"
ucd = "meta.id;meta.main"

[[columns]]
name = "ra"
unit = "deg"
ucd = "pos.eq.ra;meta.main"

[[columns]]
name = "dec"
unit = "deg"
ucd = "pos.eq.dec;meta.main"
"""

# Cones of the background load: (table, id column, ra, dec, radius), each with its count
# from the raw catalog.
CONES = [(HIP_TABLE, "hip", 10.0, 10.0, 3.0), (HIP_TABLE, "hip", 200.0, -40.0, 2.0),
         (GAIA_TABLE, "source_id", 80.0, 20.0, 1.5)]


def write_stars(folder, name, n, first_id, seed, partition_rows=2000):
    """A CSV of `n` stars spread over the sky (ids from `first_id`) and its metadata file."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "ra", "dec"])
    for i in range(n):
        w.writerow([first_id + i, f"{ra[i]:.9f}", f"{dec[i]:.9f}"])
    (folder / f"{name}.csv").write_text(buf.getvalue())
    meta = folder / f"{name}.toml"
    meta.write_text(STARS_TOML.format(csv=f"{name}.csv", partition_rows=partition_rows))
    return meta


def csv_rows(r):
    assert r.status_code == 200, f"HTTP {r.status_code}: {r.text[:800]}"
    rows = list(csv.reader(io.StringIO(r.text)))
    return rows[1:]


def scs_rows(r):
    """The rows of a cone search answer (VOTable)."""
    assert r.status_code == 200, f"HTTP {r.status_code}: {r.text[:800]}"
    assert query_status(r.content) in ([], ["OK"]), r.text[:800]
    return len(parse_votable(r.content).get_first_table().array)


def count(base, table, where=""):
    """COUNT(*) of `table` by TAP; None when the query fails (no such table yet)."""
    r = tap_sync(base, f"SELECT COUNT(*) AS n FROM {table} {where}", RESPONSEFORMAT="csv")
    if r.status_code != 200:
        return None
    return int(csv_rows(r)[0][0])


def in_tap_schema(base, table):
    r = tap_sync(base, "SELECT table_name FROM TAP_SCHEMA.tables", RESPONSEFORMAT="csv")
    return table in {row[0] for row in csv_rows(r)}


def in_vosi_tables(base, table):
    r = requests.get(base + "/tap/tables", timeout=30)
    assert r.status_code == 200
    return f"<name>{table}</name>".encode() in r.content


def wait_until(what, check, since, limit=WITHIN_S):
    """Polls `check` until true; returns how long after `since` it became true. Fails when it
    is not true `limit` + 20 s after `since` (the assertion on `limit` is the caller's)."""
    while True:
        if check():
            took = time.monotonic() - since
            print(f"{what}: seen {took:.3f} s after the command ended")
            return took
        assert time.monotonic() - since < limit + 20, f"{what}: not seen 20 s after"
        time.sleep(0.02)


class ConeLoad:
    """Threads running cone searches until stopped; every answer's count checked."""

    def __init__(self, base, threads=3):
        self.base = base
        self.errors = []
        self.answers = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.expected = {}
        for table, id_col, ra, dec, r in CONES:
            raw = hipparcos() if table == HIP_TABLE else gaia()
            cone = raw.cone(ra, dec, r)
            assert not cone.ties, "a cone of the load has a star on its boundary"
            self.expected[(table, ra, dec, r)] = len(cone.inside)
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(threads)]

    def one(self, i, k):
        table, id_col, ra, dec, r = CONES[(i + k) % len(CONES)]
        want = self.expected[(table, ra, dec, r)]
        if k % 2 == 0:
            q = (f"SELECT {id_col} FROM {table} WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
                 f"CIRCLE('ICRS', {ra}, {dec}, {r}))")
            resp = tap_sync(self.base, q, RESPONSEFORMAT="csv", MAXREC=1_000_000)
            got = len(csv_rows(resp))
        else:
            resp = requests.get(f"{self.base}/scs/{table}",
                                params={"RA": ra, "DEC": dec, "SR": r}, timeout=60)
            got = scs_rows(resp)
        if got != want:
            raise AssertionError(f"{table} cone ({ra}, {dec}, {r}): {got} rows, not {want}")

    def run(self, i):
        k = 0
        while not self.stop.is_set():
            try:
                self.one(i, k)
                with self.lock:
                    self.answers += 1
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                with self.lock:
                    self.errors.append(repr(e)[:500])
            k += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)


@pytest.fixture(scope="module")
def live(server, tmp_path_factory):
    from conftest import find_binary
    root = tmp_path_factory.mktemp("vostok-live")
    data = root / "data"
    data.mkdir()
    data_copy(server.data_dir, data, "catalogs")
    data_copy(server.data_dir, data, "products")
    sources = root / "sources"
    sources.mkdir()
    config = root / "vostok.toml"
    config.write_text(f"[publish]\npoll_ms = {POLL_MS}\nretention_seconds = 600\n"
                      f"admins = [\"alice\"]\nsources = [\"{sources}\"]\n")
    s = OwnServer(find_binary(), data, root / "server.log", config=config)
    s.start()
    s.sources = sources
    s.root = root
    yield s
    s.stop()


def vostok(s, *args):
    """A `vostok` command on the server's data folder (as an operator runs it beside it)."""
    data, config = storage_config(s.data_dir, s.config)
    cmd = [str(s.binary), "--config", str(config), *args, "--data-dir", data]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=s.root,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{' '.join(args)}: {p.stdout}\n{p.stderr[-3000:]}"
    return p.stdout


def test_publish_replace_drop_under_load(live):
    base = live.base_url
    src = live.root / "cli"
    src.mkdir()
    first = write_stars(src, "stars1", 3000, 1, seed=1)
    images = src / "images"
    images.mkdir()
    for name in ["cfht_megaprime_sa110.fits", "vla_first_J105007+304037.fits"]:
        shutil.copy(REPO / "data" / "demo" / "images" / name, images / name)

    with ConeLoad(base) as load:
        # A new catalog.
        assert count(base, "live.stars") is None
        vostok(live, "ingest", str(first))
        done = time.monotonic()
        took = wait_until("live.stars in TAP", lambda: count(base, "live.stars") == 3000, done)
        assert took <= WITHIN_S, f"live.stars served {took:.2f} s after the ingest ended"
        assert in_tap_schema(base, "live.stars")
        assert in_vosi_tables(base, "live.stars")
        assert requests.get(f"{base}/moc/live.stars", params={"format": "json"},
                            timeout=60).status_code == 200
        portal = requests.get(f"{base}/portal/api/tables", timeout=60).text
        assert "live.stars" in portal
        oai = requests.get(f"{base}/oai", params={"verb": "ListIdentifiers",
                                                 "metadataPrefix": "ivo_vor"}, timeout=60).text
        assert "scs/live.stars" in oai
        r = requests.get(f"{base}/scs/live.stars",
                         params={"RA": 0, "DEC": 90, "SR": 180, "MAXREC": 10_000}, timeout=60)
        assert scs_rows(r) == 3000

        # A new image collection.
        where = "WHERE obs_collection = 'live_images'"
        assert count(base, "ivoa.obscore", where) == 0
        vostok(live, "ingest", str(images), "--collection", "live_images")
        done = time.monotonic()
        took = wait_until("live_images in ivoa.obscore",
                          lambda: (count(base, "ivoa.obscore", where) or 0) >= 2, done)
        assert took <= WITHIN_S, f"live_images served {took:.2f} s after the ingest ended"
        r = requests.get(f"{base}/sia/v2/query",
                         params={"COLLECTION": "live_images", "RESPONSEFORMAT": "csv"}, timeout=60)
        assert len(csv_rows(r)) >= 2

        # Replaced (--force): the new row count.
        second = write_stars(src, "stars2", 4500, 1_000_001, seed=2)
        vostok(live, "ingest", str(second), "--force")
        done = time.monotonic()
        took = wait_until("live.stars replaced", lambda: count(base, "live.stars") == 4500, done)
        assert took <= WITHIN_S, f"the new live.stars served {took:.2f} s after the ingest ended"
        ids = [int(row[0]) for row in csv_rows(tap_sync(
            base, "SELECT id FROM live.stars", RESPONSEFORMAT="csv", MAXREC=10_000))]
        assert len(ids) == 4500 and min(ids) == 1_000_001

        # Dropped: gone from TAP_SCHEMA and /tap/tables, a query on it a clean TAP error.
        vostok(live, "drop", "live.stars")
        done = time.monotonic()
        took = wait_until("live.stars dropped", lambda: not in_tap_schema(base, "live.stars"),
                          done)
        assert took <= WITHIN_S, f"live.stars still served {took:.2f} s after the drop"
        assert not in_vosi_tables(base, "live.stars")
        assert requests.get(f"{base}/moc/live.stars", timeout=60).status_code == 404
        assert "live.stars" not in requests.get(f"{base}/portal/api/tables", timeout=60).text
        r = tap_sync(base, "SELECT COUNT(*) FROM live.stars")
        assert r.status_code == 400 and query_status(r.content) == ["ERROR"], r.text[:800]
        assert b"live.stars" in r.content
        r = requests.get(f"{base}/scs/live.stars", params={"RA": 0, "DEC": 0, "SR": 1}, timeout=60)
        assert query_status(r.content) == ["ERROR"] and b"live.stars" in r.content, r.text[:800]

        vostok(live, "drop", "--collection", "live_images")
        done = time.monotonic()
        took = wait_until("live_images dropped",
                          lambda: count(base, "ivoa.obscore", where) == 0, done)
        assert took <= WITHIN_S, f"live_images still served {took:.2f} s after the drop"
        # The demo collection is still there.
        assert (count(base, "ivoa.obscore", "WHERE obs_collection = 'demo'") or 0) > 0
        time.sleep(1)

    print(f"cone searches during the changes: {load.answers} answered, {len(load.errors)} failed")
    assert not load.errors, f"{len(load.errors)} failed cone searches: {load.errors[:5]}"
    assert load.answers > 20, f"only {load.answers} cone searches answered"


def test_a_query_running_during_a_replace_finishes_on_the_old_version(live):
    base = live.base_url
    src = live.root / "long"
    src.mkdir()
    old = write_stars(src, "stars", 200_000, 1, seed=3, partition_rows=5000)
    vostok(live, "ingest", str(old))
    wait_until("live.stars", lambda: count(base, "live.stars") == 200_000, time.monotonic())
    # A large result, read slowly: the server's scan waits on the client mid-way.
    r = requests.post(base + "/tap/sync", stream=True, timeout=120,
                      data={"REQUEST": "doQuery", "LANG": "ADQL", "RESPONSEFORMAT": "csv",
                            "MAXREC": "1000000", "QUERY": "SELECT id, ra, dec FROM live.stars"})
    assert r.status_code == 200, r.text[:800]
    chunks = r.iter_content(chunk_size=16384)
    head = next(chunks)
    new = write_stars(src, "stars", 1000, 5_000_001, seed=4)
    vostok(live, "ingest", str(new), "--force")
    wait_until("the replacement", lambda: count(base, "live.stars") == 1000, time.monotonic())
    body = head + b"".join(chunks)
    rows = list(csv.reader(io.StringIO(body.decode())))[1:]
    ids = [int(row[0]) for row in rows]
    assert len(ids) == 200_000, f"{len(ids)} rows, not the old version's 200,000"
    assert max(ids) == 200_000 and len(set(ids)) == 200_000
    vostok(live, "drop", "live.stars")
    wait_until("the drop", lambda: count(base, "live.stars") is None, time.monotonic())


def admin(base, method, path, token=None, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, base + path, headers=headers, timeout=300, **kw)


def test_admin_api(live):
    base = live.base_url
    rc, out = live.user_add("alice")
    assert rc == 0, out
    alice = out.split()[-1]
    rc, out = live.user_add("bob")
    assert rc == 0, out
    bob = out.split()[-1]
    meta = write_stars(live.sources, "admin_stars", 1200, 1, seed=5)
    body = {"source": str(meta)}

    r = admin(base, "POST", "/admin/catalogs", json=body)
    assert r.status_code == 401 and r.json()["status"] == "error", r.text
    assert admin(base, "POST", "/admin/catalogs", "not-a-token", json=body).status_code == 401
    r = admin(base, "POST", "/admin/catalogs", bob, json=body)
    assert r.status_code == 403 and "admins" in r.json()["message"], r.text
    assert admin(base, "GET", "/admin/publication", bob).status_code == 403
    assert admin(base, "POST", "/admin/reload").status_code == 401
    assert count(base, "live.stars") is None

    # Paths outside [publish] sources, and bad requests, are refused.
    outside = write_stars(live.root, "outside", 10, 1, seed=6)
    r = admin(base, "POST", "/admin/catalogs", alice, json={"source": str(outside)})
    assert r.status_code == 403 and "sources" in r.json()["message"], r.text
    sneaky = live.sources / ".." / "outside.toml"
    assert admin(base, "POST", "/admin/catalogs", alice,
                 json={"source": str(sneaky)}).status_code == 403
    # A metadata file inside whose source data is outside.
    (live.sources / "leak.toml").write_text(
        (live.sources / "admin_stars.toml").read_text().replace(
            'path = "admin_stars.csv"', f'path = "{live.root / "outside.csv"}"'))
    r = admin(base, "POST", "/admin/catalogs", alice, json={"source": str(live.sources / "leak.toml")})
    assert r.status_code == 403, r.text
    r = admin(base, "POST", "/admin/catalogs", alice, data=b"{not json")
    assert r.status_code == 400 and r.json()["status"] == "error", r.text

    # The admin publishes: served when the answer comes.
    r = admin(base, "POST", "/admin/catalogs", alice, json=body)
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text
    assert "live.stars" in {t["name"] for t in r.json()["tables"]}
    assert count(base, "live.stars") == 1200
    r = admin(base, "POST", "/admin/catalogs", alice, json=body)
    assert r.status_code == 409, r.text
    replacement = write_stars(live.sources, "admin_stars", 700, 9_000_001, seed=7)
    r = admin(base, "POST", "/admin/catalogs", alice, json={"source": str(replacement), "force": True})
    assert r.status_code == 200, r.text
    assert count(base, "live.stars") == 700

    # Collections.
    images = live.sources / "admin_images"
    images.mkdir()
    shutil.copy(REPO / "data" / "demo" / "images" / "cfht_megaprime_sa110.fits", images)
    outside_images = live.root / "outside_images"
    outside_images.mkdir()
    r = admin(base, "POST", "/admin/collections", alice, json={"source": str(outside_images)})
    assert r.status_code == 403, r.text
    r = admin(base, "POST", "/admin/collections", bob, json={"source": str(images)})
    assert r.status_code == 403, r.text
    r = admin(base, "POST", "/admin/collections", alice, json={"source": str(images)})
    assert r.status_code == 200, r.text
    assert count(base, "ivoa.obscore", "WHERE obs_collection = 'admin_images'") >= 1
    assert admin(base, "DELETE", "/admin/collections/admin_images", bob).status_code == 403
    r = admin(base, "DELETE", "/admin/collections/admin_images", alice)
    assert r.status_code == 200, r.text
    assert count(base, "ivoa.obscore", "WHERE obs_collection = 'admin_images'") == 0
    assert admin(base, "DELETE", "/admin/collections/admin_images", alice).status_code == 404

    # Drop.
    assert admin(base, "DELETE", "/admin/catalogs/live.stars").status_code == 401
    assert admin(base, "DELETE", "/admin/catalogs/live.stars", bob).status_code == 403
    r = admin(base, "DELETE", "/admin/catalogs/live.stars", alice)
    assert r.status_code == 200, r.text
    assert count(base, "live.stars") is None
    assert admin(base, "DELETE", "/admin/catalogs/live.stars", alice).status_code == 404
    r = admin(base, "POST", "/admin/reload", alice)
    assert r.status_code == 200 and r.json()["generation"] > 0, r.text
    generation = r.json()["generation"]
    metrics = requests.get(base + "/metrics", timeout=30).text
    assert f"vostok_publication_generation {generation}" in metrics, metrics[-2000:]
    reloads = [line for line in metrics.splitlines()
               if line.startswith("vostok_publication_reloads_total ")]
    assert reloads and int(reloads[0].split()[1]) > 0, metrics[-2000:]
