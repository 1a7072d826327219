"""Smoke test of the containers (docker/compose.yaml) through nginx, with real clients.

Runs only when VOSTOK_DOCKER_URL names nginx's base URL (scripts/docker-test.sh starts the
compose project and sets it); without it every test here is skipped, with that reason, and
nothing is started. Each answer is checked against the raw demo files (data/demo/*.gz), never
against vostok's own code:

* TAP synchronous (pyvo): the row count of hipparcos.hip2 equals the raw file's;
* Simple Cone Search (pyvo): exactly the brute-force cone, boundary ties excepted;
* TAP asynchronous (pyvo: submit, run, wait, fetch, delete) with a cone count, its job URL
  and result URL on nginx's address (vostok builds them from the Host nginx passes on);
* a demo image through its ObsCore access_url (public_url names nginx): the file's bytes;
* readiness through nginx, and /metrics refused there (every proxied caller is loopback).
"""

import gzip
import hashlib
import os
from pathlib import Path

import pytest
from pyvo.dal import SCSService, TAPService

from vostok_helpers import (HIP_TABLE, REPO, TimeoutSession, assert_cone_result, hipparcos,
                            http_get)

BASE = os.environ.get("VOSTOK_DOCKER_URL", "").rstrip("/")
if not BASE:
    pytest.skip("VOSTOK_DOCKER_URL is not set: the container smoke test runs only from "
                "scripts/docker-test.sh (or by hand against a running docker/compose.yaml)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def tap():
    return TAPService(BASE + "/tap", session=TimeoutSession())


def column(table, name):
    for c in table.colnames:
        if c.lower() == name.lower():
            return table[c]
    raise AssertionError(f"no column {name!r} in result; columns: {table.colnames}")


def test_ready_through_nginx():
    r = http_get(BASE + "/health/ready")
    assert r.status_code == 200, f"/health/ready: HTTP {r.status_code}: {r.text[:500]}"
    assert r.headers.get("Server", "").startswith("nginx"), f"not through nginx: {r.headers}"
    # nginx's $request_id reaches vostok and comes back as the request's id
    assert len(r.headers.get("X-Request-Id", "")) == 32, r.headers


def test_metrics_refused_through_nginx():
    r = http_get(BASE + "/metrics")
    assert r.status_code == 403, f"/metrics through nginx: HTTP {r.status_code}"


def test_tap_sync_count(tap):
    res = tap.run_sync(f"SELECT COUNT(*) AS n FROM {HIP_TABLE}")
    assert res.query_status.upper() == "OK"
    assert int(column(res.to_table(), "n")[0]) == len(hipparcos().ids)


def test_cone_search(tap):
    ra0, dec0, r = 56.75, 24.12, 3.0  # the Pleiades
    scs = SCSService(f"{BASE}/scs/{HIP_TABLE}", session=TimeoutSession())
    res = scs.search(pos=(ra0, dec0), radius=r, verbosity=1)
    ids = column(res.to_table(), "hip")
    assert len(ids) > 0
    assert_cone_result(ids, hipparcos(), ra0, dec0, r, f"SCS through nginx RA={ra0} DEC={dec0} SR={r}")


def test_async_job(tap):
    ra0, dec0, r = 201.3, -43.0, 2.5
    q = (f"SELECT COUNT(*) AS n FROM {HIP_TABLE} "
         f"WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0!r}, {dec0!r}, {r!r}))")
    job = tap.submit_job(q, runid="docker-smoke")
    try:
        assert job.url.startswith(BASE + "/tap/async/"), f"job URL {job.url} is not on {BASE}"
        job.run()
        job.wait(phases={"COMPLETED", "ERROR", "ABORTED"}, timeout=300)
        assert job.phase == "COMPLETED", f"{job.url}: phase {job.phase}"
        assert job.result_uri.startswith(BASE + "/"), f"result {job.result_uri} is not on {BASE}"
        n = int(column(job.fetch_result().to_table(), "n")[0])
        cone = hipparcos().cone(ra0, dec0, r)
        assert len(cone.inside) <= n <= len(cone.inside) + len(cone.ties), (
            f"{q}: expected {len(cone.inside)} (+{len(cone.ties)} ties), got {n}")
    finally:
        job.delete()


def test_product_through_access_url(tap):
    res = tap.run_sync("SELECT TOP 1 access_url, obs_publisher_did FROM ivoa.obscore "
                       "WHERE dataproduct_type = 'image' ORDER BY obs_publisher_did")
    rows = res.to_table()
    assert len(rows) == 1, "no demo image in ivoa.obscore"
    url = str(rows["access_url"][0])
    assert url.startswith(BASE + "/"), f"access_url {url} is not on {BASE} (public_url)"
    r = http_get(url)
    assert r.status_code == 200, f"{url}: HTTP {r.status_code}"
    assert r.headers.get("Server", "").startswith("nginx"), r.headers
    # the same bytes as one of the demo files (stored byte for byte)
    demo = Path(REPO) / "data" / "demo"
    digests = set()
    for f in demo.rglob("*"):
        if f.is_file() and ".fits" in f.name:
            raw = f.read_bytes()
            digests.add(hashlib.sha256(raw).hexdigest())
            if f.name.endswith(".gz"):
                digests.add(hashlib.sha256(gzip.decompress(raw)).hexdigest())
    assert hashlib.sha256(r.content).hexdigest() in digests, f"{url}: not a demo file's bytes"
