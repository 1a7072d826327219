"""TAP and VOSpace together, with real clients: a table a user keeps in their VOSpace is a
TAP upload (`UPLOAD=name,vos://…`, read with the caller's token), and an asynchronous TAP job
writes its result into the user's VOSpace (`DEST=vos://…`, as CADC's TAP services have it).

Users are made with `vostok user add` on the session server's data folder; pyvo sends the
token as `Authorization: Bearer`."""

import secrets

import pytest
import requests

from test_vospace import add_user, vostok_binary

AUTH = "vostok.example"


def vos_uri(path):
    return f"vos://{AUTH}!vospace/{path.strip('/')}"


@pytest.fixture(scope="module")
def people(server):
    suffix = secrets.token_hex(3)
    names = {w: f"{w}{suffix}" for w in ("tapa", "tapb")}
    binary = vostok_binary()
    tokens = {w: add_user(server.data_dir, n, binary=binary) for w, n in names.items()}
    return names, tokens


def session(token):
    s = requests.Session()
    if token:
        s.headers["Authorization"] = f"Bearer {token}"
    return s


def push(base, token, path, data: bytes, content_type="text/csv"):
    """A synchronous pushToVoSpace with the REQUEST=redirect form, then a PUT."""
    s = session(token)
    r = s.post(f"{base}/vospace/synctrans", params={
        "TARGET": vos_uri(path), "DIRECTION": "pushToVoSpace",
        "PROTOCOL": "ivo://ivoa.net/vospace/core#httpput", "REQUEST": "redirect"},
        allow_redirects=False, timeout=60)
    assert r.status_code == 303, r.text
    r = s.put(r.headers["Location"], data=data, headers={"Content-Type": content_type}, timeout=60)
    assert r.status_code in (200, 201), r.text


CSV = b"id,ra,dec\n1,10.5,20.25\n2,11.0,21.0\n3,12.0,-5.0\n"


def test_vospace_file_as_sync_upload(base_url, people):
    import pyvo
    names, tokens = people
    a = names["tapa"]
    push(base_url, tokens["tapa"], f"{a}/mine.csv", CSV)
    uri = vos_uri(f"{a}/mine.csv")
    q = "SELECT id, ra FROM TAP_UPLOAD.t ORDER BY id"
    tap = pyvo.dal.TAPService(f"{base_url}/tap", session=session(tokens["tapa"]))
    rows = tap.run_sync(q, uploads=None, UPLOAD=f"t,{uri}").to_table()
    assert list(rows["id"]) == [1, 2, 3]
    assert list(rows["ra"]) == [10.5, 11.0, 12.0]
    # Another user, and anonymous callers, may not read the private file.
    for token in (tokens["tapb"], None):
        r = session(token).post(f"{base_url}/tap/sync", data={
            "LANG": "ADQL", "QUERY": q, "UPLOAD": f"t,{uri}"}, timeout=60)
        assert r.status_code == 400 and b"PermissionDenied" in r.content, r.text[:500]
    # A bad token is refused outright.
    r = session("0" * 64).post(f"{base_url}/tap/sync", data={
        "LANG": "ADQL", "QUERY": "SELECT 1 AS x"}, timeout=60)
    assert r.status_code == 401, r.text[:500]


def test_async_result_into_vospace(base_url, people):
    import pyvo
    names, tokens = people
    a = names["tapa"]
    push(base_url, tokens["tapa"], f"{a}/in.csv", CSV)
    dest = vos_uri(f"{a}/out.csv")
    tap = pyvo.dal.TAPService(f"{base_url}/tap", session=session(tokens["tapa"]))
    job = tap.submit_job("SELECT id, ra * 2 AS r2 FROM TAP_UPLOAD.t ORDER BY id",
                         UPLOAD=f"t,{vos_uri(f'{a}/in.csv')}", DEST=dest,
                         RESPONSEFORMAT="csv")
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=120)
    assert job.phase == "COMPLETED", job.phase
    assert job.owner == a
    result = session(tokens["tapa"]).get(job.result_uri, timeout=60).content
    assert result.splitlines()[0] == b"id,r2"
    # The job is the owner's: anyone else (another user, or no token) finds no such job.
    for other in (requests, session(tokens["tapb"])):
        r = other.get(job.result_uri, timeout=60)
        assert r.status_code == 404, (r.status_code, r.text[:300])
    # The same bytes are in the user's VOSpace, with its MD5 and length.
    stored = session(tokens["tapa"]).get(f"{base_url}/vospace/files/{a}/out.csv", timeout=60)
    assert stored.status_code == 200 and stored.content == result
    node = session(tokens["tapa"]).get(f"{base_url}/vospace/nodes/{a}/out.csv", timeout=60).text
    assert f">{len(result)}<" in node


def test_dest_needs_write_permission(base_url, people):
    names, tokens = people
    a = names["tapa"]
    for token, status in ((tokens["tapb"], 403), (None, 401)):
        r = session(token).post(f"{base_url}/tap/async", data={
            "LANG": "ADQL", "QUERY": "SELECT 1 AS x", "DEST": vos_uri(f"{a}/stolen.csv")},
            allow_redirects=False, timeout=60)
        assert r.status_code == status, (status, r.status_code, r.text[:500])
    r = session(tokens["tapa"]).get(f"{base_url}/vospace/nodes/{a}/stolen.csv", timeout=60)
    assert r.status_code == 404


def test_transfer_job_list(base_url, people, tmp_path):
    """GET /vospace/transfers lists the caller's transfer jobs (UWS 1.1 job list), and only
    theirs."""
    from vostok_helpers import SCHEMAS, xmllint_schema
    names, tokens = people
    a = names["tapa"]
    push(base_url, tokens["tapa"], f"{a}/listed.csv", CSV)
    r = session(tokens["tapa"]).get(f"{base_url}/vospace/transfers", timeout=60)
    assert r.status_code == 200, r.text
    path = tmp_path / "jobs.xml"
    path.write_bytes(r.content)
    p = xmllint_schema(path, SCHEMAS / "local-all-vo.xsd")
    assert p.returncode == 0, p.stderr[-2000:]
    assert b"<uws:jobref" in r.content and f"<uws:ownerId>{a}<".encode() in r.content
    other = session(tokens["tapb"]).get(f"{base_url}/vospace/transfers", timeout=60)
    assert other.status_code == 200 and f">{a}<".encode() not in other.content
