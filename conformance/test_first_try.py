"""What a new user's first try trips on (issue 16): out-of-range cone positions are the SCS
error, MAXREC above the hard limit is cut there with OVERFLOW and an INFO saying so, the
capabilities declare URL uploads only when the server fetches URLs, and the server's own
/capabilities lists every service (one ConeSearch per table) and validates."""
import xml.etree.ElementTree as ET

import pytest
import requests

from vostok_helpers import (OwnServer, SCHEMAS, http_get, query_status, stilts, xml_infos,
                            xmllint_schema)

HIP = "hipparcos.hip2"
TIMEOUT = 120


@pytest.mark.parametrize("params", [
    {"RA": "400", "DEC": "10", "SR": "0.1"},
    {"RA": "-1", "DEC": "10", "SR": "0.1"},
    {"RA": "10", "DEC": "91", "SR": "0.1"},
    {"RA": "10", "DEC": "10", "SR": "-0.5"},
    {"RA": "10", "DEC": "10", "SR": "181"},
])
def test_cone_out_of_range_is_the_scs_error(base_url, params):
    """SCS 1.03: an error is an HTTP 200 VOTable with INFO name="Error" (and DALI's
    QUERY_STATUS=ERROR); RA=400 is not wrapped to 40."""
    r = http_get(f"{base_url}/scs/{HIP}", params=params)
    assert r.status_code == 200, r.text[:500]
    infos = xml_infos(r.content)
    assert any(n == "Error" for n, _, _, _ in infos), r.text[:800]
    assert query_status(r.content)[:1] == ["ERROR"], r.text[:800]
    culprit = next(k for k in ("SR", "DEC", "RA") if params[k] not in ("10", "0.1"))
    assert any(t.startswith(f"{culprit}=") or (v or "").startswith(f"{culprit}=")
               for n, v, t, _ in infos if n == "Error"), (culprit, r.text[:800])


def test_cone_range_edges_are_accepted(base_url):
    for ra in ("0", "360", "359.99"):
        r = http_get(f"{base_url}/scs/{HIP}", params={"RA": ra, "DEC": "-90", "SR": "0.1"})
        assert r.status_code == 200 and query_status(r.content)[:1] != ["ERROR"], r.text[:800]


def _maxrec_info(content):
    return [(v, t) for n, v, t, _ in xml_infos(content) if n == "MAXREC"]


@pytest.mark.parametrize("path,params", [
    ("/tap/sync", {"LANG": "ADQL", "QUERY": "SELECT TOP 3 table_name FROM TAP_SCHEMA.tables"}),
    ("/sia/v2/query", {"POS": "CIRCLE 83.633 22.0145 0.05"}),
    ("/sia/v1", {"POS": "83.633,22.0145", "SIZE": "0.1"}),
    ("/ssa", {"REQUEST": "queryData", "POS": "230.876,-38.358", "SIZE": "0.01"}),
    (f"/scs/{HIP}", {"RA": "10", "DEC": "10", "SR": "0.1"}),
])
@pytest.mark.parametrize("maxrec", ["100000000000", "1e11"])
def test_maxrec_above_the_hard_limit_is_said(base_url, path, params, maxrec):
    """MAXREC above the hard limit (10,000,000 by default) is no error: the service uses the
    hard limit and says so in an INFO."""
    r = http_get(base_url + path, params=dict(params, MAXREC=maxrec))
    assert r.status_code == 200, r.text[:800]
    assert query_status(r.content)[:1] != ["ERROR"], r.text[:800]
    info = _maxrec_info(r.content)
    assert info and info[0][0] == "10000000", (info, r.text[:800])
    r = http_get(base_url + path, params=dict(params, MAXREC="50"))
    assert not _maxrec_info(r.content)


def test_maxrec_bad_value_is_an_error(base_url):
    r = http_get(base_url + "/tap/sync", params={
        "LANG": "ADQL", "QUERY": "SELECT TOP 1 * FROM TAP_SCHEMA.tables", "MAXREC": "1.5"})
    assert r.status_code == 400 and query_status(r.content)[:1] == ["ERROR"], r.text[:500]


@pytest.fixture(scope="module")
def small_limit_server(server, tmp_path_factory):
    """A server of its own (no demo data) whose hard MAXREC is 5, default 3."""
    root = tmp_path_factory.mktemp("vostok-hard-maxrec")
    data = root / "data"
    data.mkdir()
    config = root / "vostok.toml"
    config.write_text("demo = false\n\n[tap]\nhard_maxrec = 5\ndefault_maxrec = 3\n")
    s = OwnServer(server.proc.args[0], data, root / "server.log", config=config)
    try:
        s.start(timeout=180)
        yield s.base_url
    finally:
        s.stop()


def test_maxrec_above_the_hard_limit_overflows_at_it(small_limit_server):
    """TAP sync: MAXREC=1000 on a server whose hard limit is 5 gives 5 rows, QUERY_STATUS
    OVERFLOW and the MAXREC INFO; TAP_SCHEMA.columns has far more than 5 rows."""
    r = requests.post(small_limit_server + "/tap/sync", timeout=TIMEOUT, data={
        "LANG": "ADQL", "QUERY": "SELECT column_name FROM TAP_SCHEMA.columns",
        "MAXREC": "1000"})
    assert r.status_code == 200, r.text[:800]
    root = ET.fromstring(r.content)
    rows = [e for e in root.iter() if e.tag.endswith("}TR") or e.tag == "TR"]
    assert len(rows) == 5, r.text[:2000]
    assert "OVERFLOW" in query_status(r.content), r.text[-1500:]
    assert _maxrec_info(r.content)[0][0] == "5", r.text[:2000]


def _upload_methods(base):
    root = ET.fromstring(requests.get(base + "/tap/capabilities", timeout=30).content)
    cap = [c for c in root if c.get("standardID") == "ivo://ivoa.net/std/TAP"][0]
    return {e.get("ivo-id").rsplit("#", 1)[-1] for e in cap if e.tag == "uploadMethod"}


def test_default_capabilities_declare_only_inline_upload(base_url, small_limit_server):
    """A default server refuses URL uploads, so it declares inline uploads only."""
    assert _upload_methods(base_url) == {"upload-inline"}
    assert _upload_methods(small_limit_server) == {"upload-inline"}


def _taplint_cap(base):
    import json
    p = stilts("taplint", f"tapurl={base}/tap", "stages=CAP", "report=EWF", "format=json",
               timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return [(r.get("level"), r.get("code")) for sec in json.loads(p.stdout).get("sections", [])
            for r in sec.get("reports", []) if r.get("level") in ("ERROR", "FAILURE")]


def test_url_uploads_declared_when_allowed(tmp_path_factory, server, small_limit_server):
    """With `upload_url_hosts` set, upload-http and upload-https are declared and taplint's CAP
    stage is clean; a default server's CAP has exactly the MUPM error (no upload-http)."""
    root = tmp_path_factory.mktemp("vostok-url-hosts")
    (root / "data").mkdir()
    config = root / "vostok.toml"
    config.write_text('demo = false\n\n[tap]\nupload_url_hosts = ["example.org"]\n')
    s = OwnServer(server.proc.args[0], root / "data", root / "server.log", config=config)
    try:
        s.start(timeout=180)
        assert _upload_methods(s.base_url) == {"upload-inline", "upload-http", "upload-https"}
        assert _taplint_cap(s.base_url) == []
    finally:
        s.stop()
    assert _taplint_cap(small_limit_server) == [("ERROR", "MUPM")]


# ---------------------------------------------------------------------------------------------
# The server's index: /capabilities

def _caps(base_url):
    r = http_get(base_url + "/capabilities")
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].startswith("text/xml")
    return r


def _access_urls(cap):
    return [e.text for e in cap.iter() if e.tag == "accessURL"]


def test_root_capabilities_validate(base_url, tmp_path):
    """VOSICapabilities with VODataService, TAPRegExt, ConeSearch, SIA and SSA types (the
    combined schema the other capability tests use)."""
    path = tmp_path / "capabilities.xml"
    path.write_bytes(_caps(base_url).content)
    p = xmllint_schema(path, SCHEMAS / "local-all-vo.xsd")
    assert p.returncode == 0, f"/capabilities does not validate:\n{p.stderr[-3000:]}"


def test_root_capabilities_list_every_service(base_url):
    root = ET.fromstring(_caps(base_url).content)
    caps = list(root)
    by_id = {}
    for c in caps:
        by_id.setdefault(c.get("standardID"), []).append(c)
    for std, url in [
        ("ivo://ivoa.net/std/TAP", "/tap"),
        ("ivo://ivoa.net/std/SIA#query-2.0", "/sia/v2/query"),
        ("ivo://ivoa.net/std/SIA", "/sia/v1?"),
        ("ivo://ivoa.net/std/SSA", "/ssa?"),
        ("ivo://ivoa.net/std/DataLink#links-1.1", "/datalink/links"),
        ("ivo://ivoa.net/std/VOSpace/v2.0#nodes", "/vospace/nodes"),
    ]:
        assert std in by_id, f"{std} missing from /capabilities"
        assert base_url + url in _access_urls(by_id[std][0]), (std, _access_urls(by_id[std][0]))
    # One ConeSearch capability per table served, the same set the TAP tables list has.
    tables = ET.fromstring(http_get(base_url + "/tap/tables").content)
    names = {e.text for e in tables.iter() if e.tag == "name" and e.text and "." in e.text}
    cones = {_access_urls(c)[0] for c in by_id["ivo://ivoa.net/std/ConeSearch"]}
    assert f"{base_url}/scs/{HIP}?" in cones
    assert all(u.startswith(base_url + "/scs/") and u.endswith("?") for u in cones)
    assert {u[len(base_url) + 5:-1] for u in cones} <= names
    # Every service's own VOSI capabilities URL is listed and answers.
    vosi = [_access_urls(c)[0] for c in by_id["ivo://ivoa.net/std/VOSI#capabilities"]]
    for svc in ["/tap", f"/scs/{HIP}", "/sia/v2", "/sia/v1", "/ssa", "/datalink", "/vospace"]:
        assert f"{base_url}{svc}/capabilities" in vosi, svc
    for u in vosi:
        assert requests.get(u, timeout=60).status_code == 200, u


def test_root_capabilities_head_and_landing_link(base_url):
    h = requests.head(base_url + "/capabilities", timeout=60)
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Type"].startswith("text/xml")
    landing = http_get(base_url + "/services").text
    assert f'href="{base_url}/capabilities"' in landing
    # The portal at / links to both.
    portal = http_get(base_url + "/").text
    assert 'href="capabilities"' in portal and 'href="services"' in portal


def test_pyvo_finds_the_cone_searches(base_url):
    """pyvo reads the index as any VOSI capabilities document."""
    vosi = pytest.importorskip("pyvo.io.vosi")
    import io
    caps = vosi.parse_capabilities(io.BytesIO(_caps(base_url).content))
    cone = [c for c in caps if c.standardid == "ivo://ivoa.net/std/ConeSearch"]
    assert cone and all(c.interfaces[0].accessurls[0].content.startswith(base_url) for c in cone)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_written_to_a_file_is_plain_or_json(server, tmp_path, fmt):
    """A log going to a file (not a terminal) carries no colour codes, even without NO_COLOR;
    `--log-format json` writes one JSON object per line, the request log among them."""
    import json
    import os
    import subprocess
    import time
    from conftest import free_port
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "RUST_LOG")}
    log = tmp_path / "server.log"
    cmd = [server.proc.args[0], "--log-format", fmt, "serve", "--no-demo",
           "--bind", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/tap/availability",
                                timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert "\x1b[" not in text, text[:500]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert any("GET /tap/availability" in ln for ln in lines), text[-1000:]
    if fmt == "json":
        records = [json.loads(ln) for ln in lines]
        assert all("level" in r and "timestamp" in r for r in records), records[:3]


def test_config_check_prints_the_effective_configuration(server, tmp_path):
    """`vostok config check` prints every setting in effect (the file's over the defaults) as
    TOML that reads back; an unknown key is an error naming the nearest known one."""
    import subprocess
    import tomllib
    binary = server.proc.args[0]
    good = tmp_path / "good.toml"
    good.write_text("[tap]\nsync_timeout = 42\n\n[limits]\nfast_queries = 7\n")
    p = subprocess.run([binary, "--config", str(good), "config", "check"], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    cfg = tomllib.loads(p.stdout)
    assert cfg["tap"]["sync_timeout"] == 42 and cfg["limits"]["fast_queries"] == 7
    assert cfg["tap"]["hard_maxrec"] == 10_000_000  # a default, written out
    assert cfg["limits"]["query_memory_mb"] == 1024 and cfg["bind"] == "127.0.0.1:8080"
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits]\nquery_memroy_mb = 64\n")
    p = subprocess.run([binary, "--config", str(bad), "config", "check"], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path, env={"RUST_BACKTRACE": "0"})
    assert p.returncode != 0 and p.stdout == ""
    assert "query_memroy_mb" in p.stderr and "did you mean `query_memory_mb`?" in p.stderr, p.stderr
