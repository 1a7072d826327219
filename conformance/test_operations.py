"""What an operator watches (issue 19, first slice): Prometheus `/metrics`, `/health` and
`/health/ready`, against a server of the test's own whose `[metrics] token` is set.

* `/health` answers 200 while the process runs; `/health/ready` says which of the storage, the
  job database and the VOSpace database answer (200 when all do).
* `/metrics` is OpenMetrics text that the Prometheus project's Python parser reads, and every
  sample line fits the format's grammar: requests by protocol and status, the
  bytes of streamed bodies, the query memory pool, the query lanes, jobs, and each VOSpace
  user's stored bytes (after a real upload of known size).
* The metrics name users: a wrong bearer token gets 403; the right one, or a loopback caller
  without any, gets the metrics; a loopback request relayed by a proxy (X-Forwarded-For, …)
  needs the token.
"""

from __future__ import annotations

import re
import secrets

import pytest
import requests

from conftest import find_binary
from test_vospace import Vo
from vostok_helpers import OwnServer, data_files

TOKEN = "metrics-" + secrets.token_hex(8)
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$')


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    root = tmp_path_factory.mktemp("vostok-ops")
    config = root / "vostok.toml"
    config.write_text(f'demo = true\n\n[metrics]\ntoken = "{TOKEN}"\n')
    s = OwnServer(find_binary(), root / "data", root / "server.log", config=config)
    s.start()
    yield s
    s.stop()


def samples(text):
    """{(name, labels): value} of an OpenMetrics text, every line checked against the format."""
    assert text.endswith("# EOF\n"), text[-200:]
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"not an OpenMetrics sample line: {line!r}"
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def scrape(base, **headers):
    r = requests.get(base + "/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("application/openmetrics-text"), r.headers
    return samples(r.text)


def value(s, name, **labels):
    want = {f'{k}="{v}"' for k, v in labels.items()}
    found = [v for (n, ls), v in s.items()
             if n == name and want <= set(ls.strip("{}").split(",") if ls else [])]
    assert found, f"no {name}{labels} among {sorted(k for k in s if k[0] == name)[:20]}"
    return sum(found)


def test_footers_are_cached_at_start_and_serve_the_first_cone(ops):
    """First in the module, so no query has read a footer yet: at start every partition's
    Parquet footer is read into the metadata cache (in the background); the first cone search
    into a partition is then served from it (its hits grow) instead of reading the footer
    again (its entries stay)."""
    import time
    parts = sum(1 for name in data_files(ops.data_dir, "catalogs") if name.endswith(".parquet"))
    assert parts > 0
    deadline = time.monotonic() + 120
    while True:
        s = scrape(ops.base_url)
        entries = value(s, "vostok_footer_cache", what="entries")
        if entries >= parts or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert entries >= parts, f"{entries} footers cached of {parts} partitions"
    hits = value(s, "vostok_footer_cache", what="hits")
    r = requests.post(ops.base_url + "/tap/sync", timeout=60, data={
        "LANG": "ADQL", "RESPONSEFORMAT": "csv", "QUERY":
        "SELECT hip FROM hipparcos.hip2 WHERE 1=CONTAINS(POINT('ICRS', ra, dec), "
        "CIRCLE('ICRS', 101.2, -16.7, 0.3))"})
    assert r.status_code == 200 and "32349" in r.text, r.text[:300]
    after = scrape(ops.base_url)
    assert value(after, "vostok_footer_cache", what="hits") > hits
    assert value(after, "vostok_footer_cache", what="entries") == entries


def test_health_and_readiness(ops):
    r = requests.get(ops.base_url + "/health", timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "alive", r.text
    r = requests.get(ops.base_url + "/health/ready", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready",
                        "checks": {"storage": "ok", "jobs": "ok", "vospace": "ok"}}
    h = requests.head(ops.base_url + "/health/ready", timeout=30)
    assert h.status_code == 200 and h.content == b""


def test_requests_and_streamed_bytes_are_counted(ops):
    before = scrape(ops.base_url)
    r = requests.post(ops.base_url + "/tap/sync", timeout=120, data={
        "LANG": "ADQL", "RESPONSEFORMAT": "csv",
        "QUERY": "SELECT TOP 2000 source_id, ra, dec FROM gaia.dr3_bright"})
    assert r.status_code == 200, r.text[:300]
    assert requests.get(ops.base_url + "/no/such/thing", timeout=30).status_code == 404
    after = scrape(ops.base_url)

    def grown(name, **labels):
        old = 0.0
        try:
            old = value(before, name, **labels)
        except AssertionError:
            pass
        return value(after, name, **labels) - old

    assert grown("vostok_http_requests_total", protocol="tap", status="200") >= 1
    assert grown("vostok_http_requests_total", protocol="other", status="404") >= 1
    # the body was streamed (no Content-Length), and every byte of it was counted
    assert grown("vostok_http_response_body_bytes_total", protocol="tap") >= len(r.content)
    assert grown("vostok_http_response_head_seconds_count", protocol="tap") >= 1
    assert value(after, "vostok_query_memory_bytes") >= 0
    for lane in ("fast", "sync", "heavy"):
        assert value(after, "vostok_sync_query_places_in_use", lane=lane) >= 0
    assert value(after, "vostok_jobs", kind="tap", phase="EXECUTING") >= 0


def test_vospace_bytes_per_user(ops):
    name = "ops" + secrets.token_hex(3)
    code, out = ops.user_add(name)
    assert code == 0, out
    vo = Vo(ops.base_url, out.split()[-1], name=name)
    data = secrets.token_bytes(12345)
    vo.push(f"{name}/m.bin", data)
    assert value(scrape(ops.base_url), "vostok_vospace_stored_bytes", user=name) == len(data)


def test_metrics_are_for_the_operator(ops):
    r = requests.get(ops.base_url + "/metrics", timeout=30,
                     headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403 and "token" in r.text, r.text
    assert "vostok_http_requests_total" not in r.text
    scrape(ops.base_url, Authorization=f"Bearer {TOKEN}")
    scrape(ops.base_url)  # a loopback caller without a token
    # ... but not a request a reverse proxy on this machine relays for someone else
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        r = requests.get(ops.base_url + "/metrics", timeout=30, headers={header: "203.0.113.7"})
        assert r.status_code == 403 and "vostok_http_requests_total" not in r.text, (header, r.text)
    scrape(ops.base_url, Authorization=f"Bearer {TOKEN}", **{"X-Forwarded-For": "203.0.113.7"})


def test_prometheus_parser_reads_the_metrics(ops):
    from prometheus_client.openmetrics import parser  # installed by install-test-deps.sh
    r = requests.get(ops.base_url + "/metrics", timeout=30)
    families = {f.name: f for f in parser.text_string_to_metric_families(r.text)}
    assert "vostok_http_requests" in families, sorted(families)
    assert families["vostok_http_response_head_seconds"].type == "histogram"


def test_request_ids_are_echoed_and_logged(ops):
    r = requests.get(ops.base_url + "/tap/availability", timeout=30)
    generated = r.headers.get("X-Request-Id", "")
    assert re.fullmatch(r"[0-9a-f]{16}", generated), r.headers
    again = requests.get(ops.base_url + "/tap/availability", timeout=30)
    assert again.headers["X-Request-Id"] != generated
    # a proxy's id is kept, on an error document too; a hostile one is replaced
    mine = "proxy-" + secrets.token_hex(6)
    bad = requests.get(ops.base_url + "/tap/sync", params={"LANG": "ADQL", "QUERY": "SELEC 1"},
                       headers={"X-Request-Id": mine}, timeout=30)
    assert bad.status_code == 400 and bad.headers["X-Request-Id"] == mine
    evil = requests.get(ops.base_url + "/health", headers={"X-Request-Id": "a b\"<x>"}, timeout=30)
    assert re.fullmatch(r"[0-9a-f]{16}", evil.headers["X-Request-Id"]), evil.headers
    log = ops.log.read_text(errors="replace")
    assert mine in log and generated in log


def test_error_documents_carry_the_request_id(ops):
    """The id of the X-Request-Id header is in the text of every kind of error document:
    VOTable (an INFO request_id after QUERY_STATUS, with 4xx or SCS's 200), OAI-PMH <error>,
    plain text (UWS, VOSpace, /moc), the portal's JSON."""
    import xml.etree.ElementTree as ET
    base = ops.base_url

    def get(path, **params):
        mine = "t-" + secrets.token_hex(6)
        r = requests.get(base + path, params=params, headers={"X-Request-Id": mine}, timeout=60)
        assert r.headers["X-Request-Id"] == mine
        return r, mine

    def infos(r):
        root = ET.fromstring(r.content)
        return {e.get("name"): e.get("value") for e in root.iter() if e.tag.endswith("INFO")}

    r, mine = get("/tap/sync", LANG="ADQL", QUERY="SELEC 1")
    assert r.status_code == 400
    got = infos(r)
    assert got["QUERY_STATUS"] == "ERROR" and got["request_id"] == mine
    r, mine = get("/scs/hipparcos.hip2", RA="x", DEC="0", SR="1")
    assert r.status_code == 200
    got = infos(r)
    assert got["QUERY_STATUS"] == "ERROR" and got["request_id"] == mine
    # A result has no request_id INFO.
    r, mine = get("/scs/hipparcos.hip2", RA="10", DEC="10", SR="0.1")
    assert "request_id" not in infos(r)
    r, mine = get("/oai", verb="Nope")
    err = ET.fromstring(r.content).find("{http://www.openarchives.org/OAI/2.0/}error")
    assert err.get("code") == "badVerb" and err.text.endswith(f"(request id {mine})")
    for path in ("/tap/async/nosuchjob", "/vospace/nodes/nosuchuser/x", "/moc/nosuch.table"):
        r, mine = get(path)
        assert r.status_code >= 400 and r.headers["Content-Type"].startswith("text/plain"), path
        assert r.text.endswith(f"request id: {mine}\n"), (path, r.text)
    r, mine = get("/portal/api/resolve", name="no such object xyzzy")
    assert r.status_code == 404 and r.json()["request_id"] == mine and r.json()["error"]


def test_sigterm_lets_streaming_results_end_cleanly(tmp_path):
    """SIGTERM while 8 clients stream large synchronous results: the server takes no new query,
    lets the running ones go on for `[limits] drain_seconds`, then ends each result with its
    format's error trailer; every client gets a whole document (a complete result or a clean
    error, never a cut one), and the process exits soon after."""
    import signal
    import threading
    import time
    import xml.etree.ElementTree as ET
    drain = 2
    config = tmp_path / "vostok.toml"
    config.write_text(f"demo = true\n\n[limits]\ndrain_seconds = {drain}\n")
    s = OwnServer(find_binary(), tmp_path / "data", tmp_path / "server.log", config=config)
    s.start()
    bodies, started = {}, threading.Barrier(9, timeout=120)

    def client(i):
        try:
            with requests.post(s.base_url + "/tap/sync", stream=True, timeout=(10, 120), data={
                    "LANG": "ADQL", "MAXREC": "1000000", "RESPONSEFORMAT": "votable",
                    "QUERY": "SELECT * FROM gaia.dr3_bright"}) as r:
                chunks = r.iter_content(65536)
                first = next(chunks)
                started.wait()
                bodies[i] = (r.status_code, first + b"".join(chunks))
        except Exception as e:  # noqa: BLE001 - recorded and reported below
            bodies[i] = (None, repr(e).encode())
            started.abort()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        started.wait()
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(timeout=drain + 30)
        exited = time.monotonic() - t0
        for t in threads:
            t.join(timeout=60)
    finally:
        s.stop()
    assert s.proc.returncode == 0, s.tail(30)
    assert exited <= drain + 10, f"exited {exited:.1f} s after SIGTERM"
    stopped = 0
    for i, (status, body) in sorted(bodies.items()):
        assert status == 200, (i, status, body[:300])
        root = ET.fromstring(body)  # a cut document does not parse
        infos = [e for e in root.iter() if e.tag.endswith("INFO") and e.get("name") == "QUERY_STATUS"]
        assert infos, (i, body[-500:])
        last = infos[-1]
        assert last.get("value") in ("OK", "OVERFLOW", "ERROR"), (i, last.attrib)
        if last.get("value") == "ERROR":
            assert "stopping" in (last.text or ""), (i, last.text)
            stopped += 1
    assert len(bodies) == 8
    assert stopped >= 1, "no result was still streaming at SIGTERM: the test proves nothing"

