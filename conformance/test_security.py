"""Security of the multi-user server (issue 14): what one user, or an anonymous caller, must
not be able to do to another user's jobs, files and identity, and the limits that protect the
data. Every attack is made by a second user (B, with a token sent as `Authorization: Bearer`
and as `X-CADC-DelegationToken`) and by an anonymous caller against the first user (A);
every request has a timeout.

* TAP async job list (`/tap/async`): each user sees only their own jobs (every `ownerId` is
  theirs); the list of an anonymous caller is empty (even after it made a job) and is valid
  UWS 1.1 (xmllint).
* Reading another user's job: the job and each of its resources (phase, quote,
  executionduration, destruction, error, parameters, results, results/result, owner, and a
  blocking `WAIT`) answer HTTP 404 text/plain `no job '<id>' in this service` — exactly what a
  job that does not exist answers — to B and to anonymous callers, 200 to A; a token that
  names no one gets 401.
* Changing another user's PENDING job: POST /parameters (form and multipart with a table),
  PHASE=RUN and PHASE=ABORT (on the job and on /phase), EXECUTIONDURATION, DESTRUCTION,
  ACTION=DELETE and DELETE: all 404, and A's job is unchanged afterwards (parameters, phase,
  execution duration, destruction, still listed).
* The UPLOAD escalation: B rewrites A's PENDING job to `UPLOAD=t,vos://…/A/private.csv` and
  runs it, then asks for the result: 404 throughout, A's job untouched, the private rows never
  seen. B's own job, an anonymous job, and an anonymous job given the UPLOAD later through
  /parameters: 400 or ERROR, never the rows. (A's own job with the same UPLOAD returns them:
  the refusals are not an accident of the query.)
* The DEST escalation: `DEST=vos://…/A/x` on B's new job and on an anonymous one is refused at
  creation (400/401/403); set later through POST /parameters on B's own job or an anonymous
  one, the job never completes (refused, or ERROR); A's existing node keeps its MD5 and
  length, and a new node under A's home is not created.
* VOSpace transfer jobs (`/vospace/transfers`): the same ownership — list, read, run, abort,
  delete of A's transfer by B or anonymously → 404 (also results/transferDetails of A's
  negotiated transfer); A's PENDING move is untouched and still runs.
* OIDC identity (a fake issuer in this process, see test_vospace_oidc.py): a user is (iss,
  sub) from the first login; a token with another `sub` and the same `preferred_username` is
  refused (401) and cannot read the user's nodes, nor take over a local user; a token with the
  first `sub` and another `preferred_username` is still the first user. A `[vospace.oidc]`
  without `audience` makes `serve` fail at start with a message naming `audience`.
* URL uploads and DNS rebinding: `upload_url_hosts = ["localhost"]` with a table served on
  127.0.0.1 is refused (HTTP 400 naming the private/loopback address, the table never
  fetched) with the default ports and with the port listed; accepted with
  `upload_url_private = true` and the port in `upload_url_ports`; every redirect hop is
  checked (host, port, address).
* One writer of the data: `vostok user add` run five times while a 200 MiB upload is in
  progress loses nothing (the upload completes, the node's MD5 is the MD5 sent); a second
  `vostok serve` on the same data folder refuses to start (non-zero exit, "another vostok
  serve"); `vostok user add` on a missing data folder fails and creates nothing.
* Capability URLs in the access log: after a negotiated pull and push, `/vospace/data/<id>`
  is never logged with more than the first 4 characters of the id.

Users come from `vostok user add` (the session server's data folder, or a server of the
test's own); every test makes its own users, with a random suffix, so that no test sees
another's jobs.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import queue
import re
import secrets
import subprocess
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

from test_vospace import (P_CREATOR, P_TITLE, Vo, add_user, md5_hex, node_uri, parse_node,
                          transfer_doc, vostok_binary)
from vostok_helpers import (REPO, SCHEMAS, OwnServer, storage_config, without_request_id,
                            xmllint_schema)

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
UWS_XSD = SCHEMAS / "UWS-v1.1.xsd"
# (connect, read) for every request of this file.
TIMEOUT = (10, 120)
QUICK = "SELECT TOP 3 hip, ra FROM hipparcos.hip2 WHERE hip < 100 ORDER BY hip"
BAD_TOKEN = "0" * 64


def U(tag):
    return f"{{{UWS_NS}}}{tag}"


def suffix():
    return secrets.token_hex(3)


# ---------------------------------------------------------------------------------------
# Callers
# ---------------------------------------------------------------------------------------


class Who:
    """One caller: a user's token (sent as `Authorization: Bearer` or as
    `X-CADC-DelegationToken`), or nobody."""

    def __init__(self, base, name, token=None, header="bearer"):
        self.base, self.name, self.token, self.header = base, name, token, header

    def __repr__(self):
        return self.label

    @property
    def label(self):
        if self.token is None:
            return "anonymous"
        return f"{self.name} ({'Bearer' if self.header == 'bearer' else 'X-CADC-DelegationToken'})"

    def as_cadc(self):
        return Who(self.base, self.name, self.token, header="cadc")

    def auth(self):
        if self.token is None:
            return {}
        if self.header == "bearer":
            return {"Authorization": f"Bearer {self.token}"}
        return {"X-CADC-DelegationToken": self.token}

    def request(self, method, url, headers=None, **kw):
        if not url.startswith("http"):
            url = self.base + url
        h = self.auth()
        h.update(headers or {})
        kw.setdefault("timeout", TIMEOUT)
        kw.setdefault("allow_redirects", False)
        return requests.request(method, url, headers=h, **kw)

    def get(self, url, **kw):
        return self.request("GET", url, **kw)

    def post(self, url, **kw):
        return self.request("POST", url, **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, **kw)

    def vo(self, base=None):
        """The same caller as test_vospace's VOSpace client."""
        return Vo(base or self.base, self.token, name=self.name)


def make_people(base, data_dir, tag, binary=None):
    """Two new users A and B (`vostok user add`, names with a random suffix) and an anonymous
    caller."""
    sfx = suffix()
    a, b = f"{tag}a{sfx}", f"{tag}b{sfx}"
    binary = binary or vostok_binary()
    ta = add_user(data_dir, a, binary=binary)
    tb = add_user(data_dir, b, binary=binary)
    return Who(base, a, ta), Who(base, b, tb), Who(base, "anonymous")


@pytest.fixture
def people(server):
    """A function: people(tag) -> (A, B, anonymous) on the session server."""
    binary = vostok_binary()
    return lambda tag: make_people(server.base_url, server.data_dir, tag, binary)


def vos(path):
    return node_uri(path)


# ---------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------


def create_job(who, run=False, list_path="/tap/async", **params):
    """A TAP job of `who` (303 expected); its URL."""
    data = {"LANG": "ADQL", "QUERY": QUICK}
    data.update({k.upper(): str(v) for k, v in params.items()})
    if run:
        data["PHASE"] = "RUN"
    r = who.post(list_path, data=data)
    assert r.status_code == 303, f"{who}: job creation: HTTP {r.status_code} {r.text[:500]}"
    url = r.headers["Location"]
    assert url.startswith(who.base + list_path + "/"), url
    return url


def job_id(url):
    return url.rsplit("/", 1)[1]


def phase(who, url):
    r = who.get(url + "/phase")
    assert r.status_code == 200, f"{who}: GET {url}/phase: {r.status_code} {r.text[:300]}"
    return r.text.strip()


def wait_phase(who, url, phases=("COMPLETED", "ERROR", "ABORTED"), timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        ph = phase(who, url)
        if ph in phases:
            return ph
        assert time.monotonic() < deadline, f"{url} still {ph} after {timeout}s"
        who.get(url, params={"WAIT": "2", "PHASE": ph})


def job_doc(who, url):
    r = who.get(url)
    assert r.status_code == 200, f"{who}: GET {url}: {r.status_code} {r.text[:300]}"
    return ET.fromstring(r.content)


def job_state(who, url):
    """What must not change when someone else attacks the job."""
    doc = job_doc(who, url)
    params, results = doc.find(U("parameters")), doc.find(U("results"))
    return {
        "phase": doc.findtext(U("phase")),
        "parameters": {p.get("id"): (p.text or "") for p in (params if params is not None else [])},
        "executionDuration": doc.findtext(U("executionDuration")),
        "destruction": doc.findtext(U("destruction")),
        "results": [r.get("id") for r in (results if results is not None else [])],
    }


def listed(who, list_path="/tap/async", **params):
    """The job list as `who` sees it: (response, [(id, ownerId or None)])."""
    r = who.get(list_path, params=params)
    assert r.status_code == 200, f"{who}: GET {list_path}: {r.status_code} {r.text[:300]}"
    root = ET.fromstring(r.content)
    assert root.tag == U("jobs"), r.text[:300]
    refs = []
    for j in root.findall(U("jobref")):
        o = j.find(U("ownerId"))
        refs.append((j.get("id"), None if o is None or not (o.text or "").strip() else o.text))
    return r, refs


def no_job_problem(r, jid, what):
    """None if `r` is the answer for a job that does not exist, else what is wrong."""
    # The same text for every such job, whoever owns it: the request id (a last line, new
    # for each request) aside.
    body = without_request_id(r).decode("utf-8", "replace").strip()
    ctype = r.headers.get("Content-Type", "")
    expected = f"no job '{jid}' in this service"
    if r.status_code != 404 or body != expected or not ctype.startswith("text/plain"):
        return (f"{what}: expected HTTP 404 text/plain {expected!r}, got HTTP {r.status_code} "
                f"{ctype!r} {body[:200]!r}")
    return None


def validate_uws(content, tmp_path, name):
    path = tmp_path / f"{name}.xml"
    path.write_bytes(content)
    p = xmllint_schema(path, UWS_XSD)
    assert p.returncode == 0, (f"{name} is not valid UWS 1.1:\n{p.stderr[-3000:]}\n"
                               f"{content[:2000]!r}")


def soon_iso(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


# ---------------------------------------------------------------------------------------
# 1. Job lists
# ---------------------------------------------------------------------------------------


def test_tap_job_list_shows_only_own_jobs(people, tmp_path):
    A, B, anon = people("list")
    a_jobs = [create_job(A, RUNID="a-pending"), create_job(A, run=True, RUNID="a-run")]
    b_jobs = [create_job(B, RUNID="b-pending"), create_job(B, run=True, RUNID="b-run")]
    anon_job = create_job(anon, RUNID="anon")
    for who, url in ((A, a_jobs[1]), (B, b_jobs[1])):
        assert wait_phase(who, url) == "COMPLETED"
    a_ids, b_ids = {job_id(u) for u in a_jobs}, {job_id(u) for u in b_jobs}
    everyone = a_ids | b_ids | {job_id(anon_job)}

    problems = []
    for who, own in ((A, a_ids), (B, b_ids), (A.as_cadc(), a_ids), (B.as_cadc(), b_ids)):
        for params in ({}, {"PHASE": "COMPLETED"}, {"PHASE": ["PENDING", "COMPLETED"]}):
            r, refs = listed(who, **params)
            ids = {i for i, _ in refs}
            wanted = own if params.get("PHASE") != "COMPLETED" else {
                i for i in own if phase(who, f"{who.base}/tap/async/{i}") == "COMPLETED"}
            if not wanted <= ids:
                problems.append(f"{who} {params}: own jobs {sorted(wanted - ids)} not listed")
            if (everyone - own) & ids:
                problems.append(f"{who} {params}: other callers' jobs listed: "
                                f"{sorted((everyone - own) & ids)}")
            strangers = {(i, o) for i, o in refs if o != who.name}
            if strangers:
                problems.append(f"{who} {params}: {len(strangers)} jobs of other owners listed, "
                                f"e.g. {sorted(strangers, key=str)[:5]}")
        validate_uws(r.content, tmp_path, f"list-{who.name}-{who.header}")
    # An anonymous caller (who has just made a job of its own) sees no job at all.
    for params in ({}, {"PHASE": "PENDING"}, {"LAST": "5"}):
        r, refs = listed(anon, **params)
        if refs:
            problems.append(f"anonymous {params}: the list is not empty: {len(refs)} jobs, e.g. "
                            f"{refs[:5]}")
        validate_uws(r.content, tmp_path, f"list-anonymous-{len(params)}")
    # A token that names no one: 401, not the anonymous list.
    r = Who(A.base, "nobody", BAD_TOKEN).get("/tap/async")
    if r.status_code != 401:
        problems.append(f"a token that names no one: job list HTTP {r.status_code}, expected 401")
    for who, url in [(A, u) for u in a_jobs] + [(B, u) for u in b_jobs] + [(anon, anon_job)]:
        who.delete(url)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------
# 2. Reading another user's job
# ---------------------------------------------------------------------------------------

JOB_RESOURCES = ["", "/phase", "/quote", "/executionduration", "/destruction", "/error",
                 "/parameters", "/results", "/results/result", "/owner"]


def test_reading_another_users_job_is_404(people):
    A, B, anon = people("read")
    done = create_job(A, run=True, RUNID="read-me", RESPONSEFORMAT="csv")
    failed = create_job(A, run=True, QUERY="SELECT nosuchcolumn FROM hipparcos.hip2")
    assert wait_phase(A, done) == "COMPLETED"
    assert wait_phase(A, failed) == "ERROR"
    problems = []
    # The owner reads everything: the completed job all but /error, the failed one /error.
    for sub in JOB_RESOURCES:
        url = (failed if sub == "/error" else done) + sub
        r = A.get(url)
        if r.status_code != 200:
            problems.append(f"owner {A.name}: GET {sub or '(job)'}: HTTP {r.status_code} "
                            f"{r.text[:200]!r}")
    assert A.get(done + "/owner").text.strip() == A.name
    assert A.get(done + "/results/result").text.startswith("hip,ra")
    # A job that does not exist: the answer everybody else must get.
    ghost = f"{A.base}/tap/async/{secrets.token_hex(8)}"
    assert no_job_problem(A.get(ghost), job_id(ghost), "a job that does not exist") is None
    for who in (B, B.as_cadc(), anon):
        for url in (done, failed):
            for sub in JOB_RESOURCES:
                p = no_job_problem(who.get(url + sub), job_id(url), f"{who}: GET {sub or '(job)'}")
                if p:
                    problems.append(p)
            r = who.get(url, params={"WAIT": "5", "PHASE": "EXECUTING"})
            p = no_job_problem(r, job_id(url), f"{who}: GET (job)?WAIT=5")
            if p:
                problems.append(p)
    # A token that names no one: 401.
    nobody = Who(A.base, "nobody", BAD_TOKEN)
    for sub in ("", "/phase", "/results/result"):
        r = nobody.get(done + sub)
        if r.status_code != 401:
            problems.append(f"unknown token: GET {sub or '(job)'}: HTTP {r.status_code}, "
                            f"expected 401")
    A.delete(done)
    A.delete(failed)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------
# 3. Changing another user's job
# ---------------------------------------------------------------------------------------


def attacks_on(url):
    """(what, method, path, request keywords): every way to change a PENDING job, the
    destructive ones last."""
    evil = "SELECT TOP 1 hip FROM hipparcos.hip2 WHERE hip = 1"
    table = ("evil.csv", b"x\n1\n2\n", "text/csv")
    return [
        ("POST /parameters (form)", "POST", url + "/parameters",
         {"data": {"QUERY": evil, "MAXREC": "1", "RUNID": "pwned"}}),
        ("POST /parameters (multipart)", "POST", url + "/parameters",
         {"data": {"QUERY": "SELECT * FROM TAP_UPLOAD.evil", "UPLOAD": "evil,param:evil"},
          "files": {"evil": table}}),
        ("POST /parameters with PHASE=RUN", "POST", url + "/parameters",
         {"data": {"QUERY": evil, "PHASE": "RUN"}}),
        ("POST /executionduration", "POST", url + "/executionduration",
         {"data": {"EXECUTIONDURATION": "1"}}),
        ("POST (job) EXECUTIONDURATION", "POST", url, {"data": {"EXECUTIONDURATION": "2"}}),
        ("POST /destruction", "POST", url + "/destruction",
         {"data": {"DESTRUCTION": soon_iso(5)}}),
        ("POST (job) DESTRUCTION", "POST", url, {"data": {"DESTRUCTION": soon_iso(6)}}),
        ("POST /phase PHASE=RUN", "POST", url + "/phase", {"data": {"PHASE": "RUN"}}),
        ("POST (job) PHASE=RUN", "POST", url, {"data": {"PHASE": "RUN"}}),
        ("POST /phase PHASE=ABORT", "POST", url + "/phase", {"data": {"PHASE": "ABORT"}}),
        ("POST (job) PHASE=ABORT", "POST", url, {"data": {"PHASE": "ABORT"}}),
        ("POST (job) ACTION=DELETE", "POST", url, {"data": {"ACTION": "DELETE"}}),
        ("DELETE (job)", "DELETE", url, {}),
    ]


def test_changing_another_users_job_is_404(people):
    A, B, anon = people("chg")
    url = create_job(A, RUNID="mine", MAXREC=5, EXECUTIONDURATION=600)
    before = job_state(A, url)
    assert before["phase"] == "PENDING", before
    problems = []
    for who in (B, B.as_cadc(), anon):
        for what, method, target, kw in attacks_on(url):
            p = no_job_problem(who.request(method, target, **kw), job_id(url), f"{who}: {what}")
            if p:
                problems.append(p)
    after = job_state(A, url)
    if after != before:
        problems.append(f"A's job changed:\n  before {before}\n  after  {after}")
    ids = {i for i, _ in listed(A)[1]}
    if job_id(url) not in ids:
        problems.append("A's job is no longer in A's job list")
    # Still A's to use: it runs with A's own query.
    r = A.post(url + "/phase", data={"PHASE": "RUN"})
    assert r.status_code == 303, (r.status_code, r.text[:300])
    assert wait_phase(A, url) == "COMPLETED"
    A.delete(url)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------
# 4. The UPLOAD escalation
# ---------------------------------------------------------------------------------------


def push_csv(who, path, data: bytes):
    r, put = who.vo().push_redirect(path, data, headers={"Content-Type": "text/csv"})
    assert r.status_code == 303 and put is not None, (r.status_code, r.text[:300])
    assert put.status_code in (200, 201, 204), (put.status_code, put.text[:300])


def test_upload_of_another_users_private_file(people):
    A, B, anon = people("upl")
    secret = "s3cr3t" + secrets.token_hex(6)
    push_csv(A, f"{A.name}/private.csv", f"id,secret\n1,{secret}\n2,{secret}x\n".encode())
    upload = f"t,{vos(f'{A.name}/private.csv')}"
    steal = "SELECT * FROM TAP_UPLOAD.t"
    seen = []  # every body B and anonymous callers got

    def keep(r):
        seen.append(r.content)
        return r

    # A's PENDING job, with a harmless query.
    url = create_job(A, RUNID="harmless")
    before = job_state(A, url)
    problems = []
    for who in (B, B.as_cadc(), anon):
        steps = [
            ("POST /parameters UPLOAD+QUERY+PHASE=RUN", "POST", url + "/parameters",
             {"data": {"UPLOAD": upload, "QUERY": steal, "PHASE": "RUN",
                       "RESPONSEFORMAT": "csv"}}),
            ("POST /parameters UPLOAD+QUERY (multipart)", "POST", url + "/parameters",
             {"data": {"UPLOAD": upload, "QUERY": steal},
              "files": {"x": ("x.csv", b"x\n1\n", "text/csv")}}),
            ("POST /phase PHASE=RUN", "POST", url + "/phase", {"data": {"PHASE": "RUN"}}),
            ("GET /results/result", "GET", url + "/results/result", {}),
            ("GET /results", "GET", url + "/results", {}),
            ("GET (job)", "GET", url, {}),
        ]
        for what, method, target, kw in steps:
            p = no_job_problem(keep(who.request(method, target, **kw)), job_id(url),
                               f"{who}: {what}")
            if p:
                problems.append(p)
    after = job_state(A, url)
    if after != before:
        problems.append(f"A's job changed:\n  before {before}\n  after  {after}")
    A.delete(url)

    # B's own job, and anonymous jobs, with the UPLOAD: refused at creation (400) or ERROR.
    def own_job(who, late):
        data = {"LANG": "ADQL", "QUERY": steal, "RESPONSEFORMAT": "csv"}
        if not late:
            data.update(UPLOAD=upload, PHASE="RUN")
        r = keep(who.post("/tap/async", data=data))
        if r.status_code == 400:
            return "refused at creation"
        if r.status_code != 303:
            return f"creation: HTTP {r.status_code} {r.text[:200]!r}"
        job = r.headers["Location"]
        if late:
            r = keep(who.post(job + "/parameters", data={"UPLOAD": upload}))
            if r.status_code in (400, 401, 403):
                who.delete(job)
                return "refused by /parameters"
            keep(who.post(job + "/phase", data={"PHASE": "RUN"}))
        ph = wait_phase(who, job)
        keep(who.get(job))
        keep(who.get(job + "/results/result"))
        keep(who.get(job + "/error"))
        who.delete(job)
        return ph

    for who, late in ((B, False), (B, True), (anon, False), (anon, True)):
        outcome = own_job(who, late)
        if outcome not in ("refused at creation", "refused by /parameters", "ERROR"):
            problems.append(f"{who}'s own job with UPLOAD of A's private file"
                            f"{' (set later)' if late else ''}: {outcome}")
    # Synchronously too.
    for who in (B, anon):
        r = keep(who.post("/tap/sync", data={"LANG": "ADQL", "QUERY": steal, "UPLOAD": upload,
                                             "RESPONSEFORMAT": "csv"}))
        if r.status_code != 400:
            problems.append(f"{who}: /tap/sync with A's private file: HTTP {r.status_code}")
    leaked = [b[:200] for b in seen if secret.encode() in b]
    if leaked:
        problems.append(f"the private rows reached B or an anonymous caller: {leaked[:3]}")
    # The control: A's own job reads the file (so the refusals above are about who asks).
    mine = create_job(A, run=True, QUERY=steal, UPLOAD=upload, RESPONSEFORMAT="csv")
    assert wait_phase(A, mine) == "COMPLETED", A.get(mine + "/error").text[:500]
    assert secret in A.get(mine + "/results/result").text
    A.delete(mine)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------
# 5. The DEST escalation
# ---------------------------------------------------------------------------------------


def test_dest_into_another_users_space(people):
    A, B, anon = people("dst")
    a = A.vo()
    original = os.urandom(5000)
    a.push(f"{A.name}/x", original)
    x_before = a.node(f"{A.name}/x")
    assert x_before.md5 == md5_hex(original) and x_before.length == len(original)
    targets = [vos(f"{A.name}/x"), vos(f"{A.name}/y-new")]
    problems = []
    # At creation: refused.
    for who in (B, B.as_cadc(), anon):
        for dest in targets:
            for run in (False, True):
                data = {"LANG": "ADQL", "QUERY": QUICK, "DEST": dest}
                if run:
                    data["PHASE"] = "RUN"
                r = who.post("/tap/async", data=data)
                if r.status_code not in (400, 401, 403):
                    problems.append(f"{who}: creation with DEST={dest}"
                                    f"{' PHASE=RUN' if run else ''}: HTTP {r.status_code} "
                                    f"{r.text[:200]!r}, expected 400/401/403")
                    if r.status_code == 303:
                        wait_phase(who, r.headers["Location"])
                        who.delete(r.headers["Location"])
    # Set later on the caller's own PENDING job, then run: refused or ERROR, never COMPLETED.
    for who in (B, anon):
        for dest in targets:
            job = create_job(who, RESPONSEFORMAT="csv")
            r = who.post(job + "/parameters", data={"DEST": dest})
            if r.status_code in (400, 401, 403):
                who.delete(job)
                continue
            if r.status_code != 303:
                problems.append(f"{who}: POST /parameters DEST={dest}: HTTP {r.status_code}")
            r = who.post(job + "/phase", data={"PHASE": "RUN"})
            ph = wait_phase(who, job) if r.status_code == 303 else f"RUN refused {r.status_code}"
            if ph == "COMPLETED":
                problems.append(f"{who}: own job with DEST={dest} set through /parameters "
                                f"COMPLETED (expected ERROR)")
            who.delete(job)
    x_after = a.node(f"{A.name}/x")
    if (x_after.md5, x_after.length) != (x_before.md5, x_before.length):
        problems.append(f"A's node x changed: MD5 {x_before.md5} -> {x_after.md5}, length "
                        f"{x_before.length} -> {x_after.length}")
    if a.pull(f"{A.name}/x") != original:
        problems.append("A's node x has other bytes")
    g = a.get_node(f"{A.name}/y-new")
    if g.status_code != 404:
        problems.append(f"A's node y-new exists: HTTP {g.status_code} {g.text[:200]!r}")
    # The control: A writes there.
    mine = create_job(A, run=True, DEST=vos(f"{A.name}/y-mine"), RESPONSEFORMAT="csv")
    assert wait_phase(A, mine) == "COMPLETED", A.get(mine + "/error").text[:500]
    assert a.node(f"{A.name}/y-mine").length
    A.delete(mine)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------
# 6. VOSpace transfer jobs
# ---------------------------------------------------------------------------------------


def test_transfer_jobs_of_another_user(people):
    A, B, anon = people("xfr")
    a = A.vo()
    a.mkdir(f"{A.name}/src")
    payload = os.urandom(3000)
    a.push(f"{A.name}/src/f.bin", payload)
    # A's PENDING move (not run), and A's negotiated push (a finished job with transferDetails).
    r, move = a.async_transfer(transfer_doc(vos(f"{A.name}/src"), vos(f"{A.name}/moved")),
                               run=False)
    assert move, (r.status_code, r.text[:300])
    push_id = a.push(f"{A.name}/pushed.bin", os.urandom(100))
    push = f"{A.base}/vospace/transfers/{push_id}"
    problems = []
    # The owner.
    if phase(A, move) != "PENDING":
        problems.append(f"A's move is {phase(A, move)}, not PENDING")
    det = A.get(push + "/results/transferDetails")
    if det.status_code not in (200, 303):
        problems.append(f"A: GET results/transferDetails: HTTP {det.status_code}")
    ids = {i for i, _ in listed(A, "/vospace/transfers")[1]}
    if not {job_id(move), push_id} <= ids:
        problems.append(f"A's transfer list lacks A's jobs: "
                        f"{sorted({job_id(move), push_id} - ids)}")
    # Lists of the others.
    for who in (B, B.as_cadc(), anon):
        _, refs = listed(who, "/vospace/transfers")
        if {job_id(move), push_id} & {i for i, _ in refs}:
            problems.append(f"{who}: A's transfers are in their list")
        if who is anon and refs:
            problems.append(f"anonymous: the transfer list is not empty ({len(refs)} jobs)")
    # Reading, running, aborting, deleting.
    for who in (B, B.as_cadc(), anon):
        for url in (move, push):
            for sub in ("", "/phase", "/quote", "/executionduration", "/destruction", "/error",
                        "/parameters", "/results", "/results/transferDetails", "/owner"):
                p = no_job_problem(who.get(url + sub), job_id(url), f"{who}: GET {sub or '(job)'}")
                if p:
                    problems.append(p)
        for what, method, url, sub, kw in [
            ("POST /phase PHASE=RUN", "POST", move, "/phase", {"data": {"PHASE": "RUN"}}),
            ("POST (job) PHASE=RUN", "POST", move, "", {"data": {"PHASE": "RUN"}}),
            ("POST /executionduration", "POST", move, "/executionduration",
             {"data": {"EXECUTIONDURATION": "1"}}),
            ("POST /destruction", "POST", move, "/destruction",
             {"data": {"DESTRUCTION": soon_iso(5)}}),
            ("POST /phase PHASE=ABORT", "POST", move, "/phase", {"data": {"PHASE": "ABORT"}}),
            ("POST (job) ACTION=DELETE", "POST", move, "", {"data": {"ACTION": "DELETE"}}),
            ("DELETE (job)", "DELETE", move, "", {}),
            ("DELETE (push job)", "DELETE", push, "", {}),
        ]:
            p = no_job_problem(who.request(method, url + sub, **kw), job_id(url),
                               f"{who}: {what}")
            if p:
                problems.append(p)
    # A's move is untouched (nothing moved), and still runs as A's.
    if phase(A, move) != "PENDING":
        problems.append(f"A's move is {phase(A, move)} after the attacks, not PENDING")
    if not a.exists(f"{A.name}/src/f.bin") or a.exists(f"{A.name}/moved"):
        problems.append("A's move was carried out by someone else")
    if A.get(push).status_code != 200:
        problems.append("A's push job is gone")
    assert not problems, "\n".join(problems)
    r = A.post(move + "/phase", data={"PHASE": "RUN"})
    assert r.status_code == 303, (r.status_code, r.text[:300])
    assert wait_phase(A, move) == "COMPLETED", A.get(move + "/error").text[:300]
    assert a.pull(f"{A.name}/moved/f.bin") == payload


# ---------------------------------------------------------------------------------------
# 7. OIDC identity
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def issuer():
    from test_vospace_oidc import Issuer
    i = Issuer()
    yield i
    i.stop()


@pytest.fixture(scope="module")
def oidc_server(issuer, tmp_path_factory):
    from test_vospace_oidc import AUDIENCE
    root = tmp_path_factory.mktemp("vostok-sec-oidc")
    data = root / "data"
    data.mkdir()
    config = root / "vostok.toml"
    config.write_text("demo = false\n\n[vospace.oidc]\n"
                      f'issuer = "{issuer.url}"\naudience = "{AUDIENCE}"\n')
    s = OwnServer(vostok_binary(), data, root / "server.log", config=config,
                  ready="/vospace/availability")
    s.start()
    yield s
    s.stop()


def test_oidc_user_is_iss_and_sub(oidc_server, issuer):
    sfx = suffix()
    carol, renamed = f"carol{sfx}", f"carol{sfx}x"
    s1, s2 = f"sub-{secrets.token_hex(8)}", f"sub-{secrets.token_hex(8)}"
    base = oidc_server.base_url

    def who(name, sub):
        return Vo(base, issuer.token(name, sub=sub), name=f"{name} (sub {sub})")

    first = who(carol, s1)
    r = first.get_node(carol)
    assert r.status_code == 200, f"carol's first login: {r.status_code} {r.text[:300]}"
    r = first.put_node(f"{carol}/private.txt", props={P_TITLE: "carol's"})
    assert r.status_code == 201, (r.status_code, r.text[:300])
    problems = []
    # Another sub with carol's name: refused, reads nothing, writes nothing.
    impostor = who(carol, s2)
    for what, r in (("GET carol's node", impostor.get_node(f"{carol}/private.txt")),
                    ("GET carol's home", impostor.get_node(carol)),
                    ("PUT into carol's home", impostor.put_node(f"{carol}/evil.txt"))):
        if r.status_code != 401:
            problems.append(f"a token with another sub naming {carol}: {what}: HTTP "
                            f"{r.status_code} {r.text[:200]!r}, expected 401")
    if first.get_node(f"{carol}/evil.txt").status_code != 404:
        problems.append("the other sub's token wrote into carol's home")
    # The same sub with another preferred_username: still carol.
    same = who(renamed, s1)
    r = same.get_node(f"{carol}/private.txt")
    if r.status_code != 200:
        problems.append(f"sub {s1} renamed {renamed}: GET carol's node: HTTP {r.status_code} "
                        f"{r.text[:200]!r}, expected 200 (still carol)")
    r = same.put_node(f"{carol}/by-renamed.txt")
    if r.status_code != 201:
        problems.append(f"sub {s1} renamed {renamed}: PUT into carol's home: HTTP "
                        f"{r.status_code}, expected 201")
    else:
        creator = parse_node(first.get_node(f"{carol}/by-renamed.txt").content).props.get(
            P_CREATOR, "")
        if not creator.endswith(carol):
            problems.append(f"a node written by the renamed token has creator {creator!r}")
    # A local user (vostok user add) is not taken over by a token naming it.
    dave = f"dave{sfx}"
    code, out = oidc_server.user_add(dave)
    assert code == 0, out
    local = Vo(base, out.split()[-1], name=dave)
    assert local.put_node(f"{dave}/private.txt").status_code == 201
    r = who(dave, f"sub-{secrets.token_hex(8)}").get_node(f"{dave}/private.txt")
    if r.status_code != 401:
        problems.append(f"a JWT naming the local user {dave}: HTTP {r.status_code}, expected 401")
    # The first sub still works as carol after all this.
    assert first.get_node(f"{carol}/private.txt").status_code == 200
    assert not problems, "\n".join(problems)


def expect_start_failure(cmd, cwd, ready_url, timeout=120):
    """Runs `cmd` (a `vostok serve`); returns (exit status, stdout, stderr) once it exits. A
    server that becomes ready instead is stopped, and the test fails."""
    tag = secrets.token_hex(4)
    out_path, err_path = Path(cwd) / f"serve-{tag}.out", Path(cwd) / f"serve-{tag}.err"
    env = dict(os.environ, RUST_LOG="info", NO_COLOR="1",
               VOSTOK_DEMO_DIR=str(REPO / "data" / "demo"))
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            try:
                ready = requests.get(ready_url, timeout=5).status_code == 200
            except requests.RequestException:
                ready = False
            if ready:
                pytest.fail(f"{' '.join(map(str, cmd))} started and serves {ready_url}; it "
                            f"should have refused to start.\n"
                            f"{out_path.read_text(errors='replace')[-1500:]}"
                            f"{err_path.read_text(errors='replace')[-1500:]}", pytrace=False)
            assert time.monotonic() < deadline, f"still running after {timeout}s"
            time.sleep(0.3)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
    return (proc.returncode, out_path.read_text(errors="replace"),
            err_path.read_text(errors="replace"))


def test_oidc_without_audience_does_not_start(issuer, tmp_path):
    from conftest import free_port
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "vostok.toml"
    config.write_text(f'demo = false\n\n[vospace.oidc]\nissuer = "{issuer.url}"\n')
    port = free_port()
    code, out, err = expect_start_failure(
        [str(vostok_binary()), "--config", str(config), "serve", "--bind", f"127.0.0.1:{port}",
         "--data-dir", str(data)], tmp_path, f"http://127.0.0.1:{port}/vospace/availability")
    assert code != 0 and "audience" in out + err, f"exit {code}:\n{(out + err)[-2000:]}"


# ---------------------------------------------------------------------------------------
# 8. URL uploads: private addresses, DNS rebinding, redirects
# ---------------------------------------------------------------------------------------

TABLE_CSV = b"id,label\n1,first\n2,second\n3,third\n"


class TableHost:
    """An HTTP server on 127.0.0.1 serving /t.csv and redirects, counting the requests of
    each path. /to?u=URL answers 302 to URL."""

    def __init__(self):
        self.hits = {}
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                path, _, query = self.path.partition("?")
                host.hits[path] = host.hits.get(path, 0) + 1
                if path == "/t.csv":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/csv")
                    self.send_header("Content-Length", str(len(TABLE_CSV)))
                    self.end_headers()
                    self.wfile.write(TABLE_CSV)
                elif path.startswith("/to") and query.startswith("u="):
                    self.send_response(302)
                    self.send_header("Location", urllib.parse.unquote(query[2:]))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_error(404)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def redirect(self, host, to):
        quoted = urllib.parse.quote(to, safe="")
        return f"http://{host}:{self.port}/to{secrets.token_hex(3)}?u={quoted}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def table_hosts():
    hosts = (TableHost(), TableHost())
    yield hosts
    for h in hosts:
        h.stop()


def tap_server(tmp_path_factory, name, tap_config):
    """A server of its own (no demo data) with this [tap] section."""
    root = tmp_path_factory.mktemp(name)
    data = root / "data"
    data.mkdir()
    config = root / "vostok.toml"
    config.write_text("demo = false\n\n[tap]\n" + tap_config)
    s = OwnServer(vostok_binary(), data, root / "server.log", config=config)
    try:
        s.start(timeout=120)
        return s
    except AssertionError:
        s.stop()
    log = s.log.read_text(errors="replace")
    pytest.fail(f"vostok did not start with\n[tap]\n{tap_config}\n{log[:1500]}", pytrace=False)


def url_upload(base, url):
    return requests.post(base + "/tap/sync", timeout=TIMEOUT, data={
        "LANG": "ADQL", "QUERY": "SELECT id, label FROM TAP_UPLOAD.t ORDER BY id",
        "RESPONSEFORMAT": "csv", "UPLOAD": f"t,{url}"})


# The reason a refused address is given: private, loopback, or not public.
PRIVATE_MESSAGE = re.compile(r"(?i)private|loopback|public")


def test_url_upload_dns_rebinding_default_ports(tmp_path_factory, table_hosts):
    """The name passes `upload_url_hosts`, the address it resolves to (127.0.0.1) does not;
    the port (not 80/443) does not either: refused, and never fetched."""
    host = table_hosts[0]
    s = tap_server(tmp_path_factory, "vostok-sec-rebind", 'upload_url_hosts = ["localhost"]\n')
    try:
        before = host.hits.get("/t.csv", 0)
        r = url_upload(s.base_url, f"http://localhost:{host.port}/t.csv")
        fetched = host.hits.get("/t.csv", 0) - before
        assert r.status_code == 400 and b"third" not in r.content, (
            f"UPLOAD from localhost (127.0.0.1) with upload_url_hosts=[\"localhost\"]: HTTP "
            f"{r.status_code} {r.text[:300]!r}")
        assert fetched == 0, f"the table was fetched {fetched} time(s)"
    finally:
        s.stop()


def test_url_upload_dns_rebinding_port_listed(tmp_path_factory, table_hosts):
    """Name and port allowed, address loopback: HTTP 400 naming the reason; the same for
    127.0.0.1 written as such, and for a redirect from one to the other (with private
    addresses refused, the first hop of every local URL is refused already: the table host
    must not even be asked)."""
    host = table_hosts[0]
    s = tap_server(tmp_path_factory, "vostok-sec-rebind-port",
                   'upload_url_hosts = ["localhost", "127.0.0.1"]\n'
                   f"upload_url_ports = [{host.port}]\n")
    try:
        problems = []
        before = dict(host.hits)
        for url in (f"http://localhost:{host.port}/t.csv", f"http://127.0.0.1:{host.port}/t.csv",
                    host.redirect("localhost", f"http://127.0.0.1:{host.port}/t.csv")):
            r = url_upload(s.base_url, url)
            if r.status_code != 400 or not PRIVATE_MESSAGE.search(r.text) or b"third" in r.content:
                problems.append(f"{url}: HTTP {r.status_code} {r.text[:300]!r} (expected 400 "
                                f"naming the private/loopback address)")
        if host.hits != before:
            problems.append(f"the table host was asked: {host.hits} (before: {before})")
        assert not problems, "\n".join(problems)
    finally:
        s.stop()


def test_url_upload_private_allowed_and_redirect_hops(tmp_path_factory, table_hosts):
    """With `upload_url_private = true` and the port listed, the loopback table is fetched.
    Every redirect hop is checked like the first URL. A public first hop cannot be made on
    this machine (no public address to listen on), so the hop check is shown on what can
    differ between hops here: a hop to a host not in `upload_url_hosts` (127.0.0.1) and a hop
    to a port not in `upload_url_ports` (the second table host) are refused and never
    fetched, while a hop that passes every check is followed (so redirects are followed at
    all, and the refusals are the hop check). The private-address part of the hop check is
    test_url_upload_dns_rebinding_port_listed's redirect."""
    main, other = table_hosts
    s = tap_server(tmp_path_factory, "vostok-sec-private-ok",
                   'upload_url_hosts = ["localhost"]\nupload_url_private = true\n'
                   f"upload_url_ports = [{main.port}]\n")
    try:
        r = url_upload(s.base_url, f"http://localhost:{main.port}/t.csv")
        assert r.status_code == 200, (r.status_code, r.text[:500])
        assert r.text.replace("\r\n", "\n").strip().splitlines() == [
            "id,label", "1,first", "2,second", "3,third"], r.text[:500]
        ok = main.redirect("localhost", f"http://localhost:{main.port}/t.csv")
        r = url_upload(s.base_url, ok)
        assert r.status_code == 200 and "third" in r.text, (
            f"a redirect that passes every check: {r.status_code} {r.text[:300]!r}")
        problems = []
        for what, url, target_host, path in (
                ("a hop to 127.0.0.1 (not in upload_url_hosts)",
                 main.redirect("localhost", f"http://127.0.0.1:{main.port}/t.csv"), main,
                 "/t.csv"),
                ("a hop to a port not in upload_url_ports",
                 main.redirect("localhost", f"http://localhost:{other.port}/t.csv"), other,
                 "/t.csv")):
            before = target_host.hits.get(path, 0)
            r = url_upload(s.base_url, url)
            if r.status_code != 400 or "third" in r.text:
                problems.append(f"{what}: HTTP {r.status_code} {r.text[:300]!r}, expected 400")
            if target_host.hits.get(path, 0) != before:
                problems.append(f"{what}: the refused hop was fetched")
        assert not problems, "\n".join(problems)
    finally:
        s.stop()


# ---------------------------------------------------------------------------------------
# 9. One writer of the data
# ---------------------------------------------------------------------------------------

BIG_MIB = 200
USER_ADDS = 5


@pytest.fixture(scope="module")
def writer_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("vostok-sec-writer")
    data = root / "data"
    data.mkdir()
    config = root / "vostok.toml"
    config.write_text("demo = false\n")
    s = OwnServer(vostok_binary(), data, root / "server.log", config=config,
                  ready="/vospace/availability")
    s.start()
    yield s
    s.stop()


class GatedUpload:
    """BIG_MIB MiB of random bytes from a generator (one 1 MiB buffer in memory), MD5 computed
    as sent; it stops USER_ADDS times in the middle and waits for the test to let it go on."""

    CHUNK = 1024 * 1024

    def __init__(self):
        self.base = os.urandom(self.CHUNK)
        self.md5 = hashlib.md5()
        self.sent = 0
        self.pauses = {BIG_MIB * (k + 1) // (USER_ADDS + 2) for k in range(USER_ADDS)}
        self.paused, self.resume = queue.Queue(), queue.Queue()
        self.response = None
        self.error = None

    def body(self):
        for i in range(BIG_MIB):
            if i in self.pauses:
                self.paused.put(i)
                self.resume.get(timeout=300)
            chunk = i.to_bytes(8, "big") + self.base[8:]
            self.md5.update(chunk)
            self.sent += len(chunk)
            yield chunk

    def start(self, url):
        def run():
            try:
                self.response = requests.put(url, data=self.body(), timeout=(10, 600))
            except Exception as e:  # noqa: BLE001 (reported by the test)
                self.error = repr(e)
            finally:
                self.paused.put(None)  # wakes the test if the upload ended early
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()


def test_user_add_during_large_upload(writer_server):
    s = writer_server
    sfx = suffix()
    name = f"big{sfx}"
    code, out = s.user_add(name)
    assert code == 0, out
    vo = Vo(s.base_url, out.split()[-1], name=name)
    r = vo.redirect(f"{name}/big.bin", "pushToVoSpace")
    assert r.status_code == 303, (r.status_code, r.text[:300])
    up = GatedUpload()
    up.start(r.headers["Location"])
    adds = []
    for k in range(USER_ADDS):
        at = up.paused.get(timeout=300)
        assert at is not None, (f"the upload ended before `user add` #{k + 1}: "
                                f"{up.error or up.response.status_code}\n{s.tail()}")
        time.sleep(0.5)  # the server has taken in what was sent so far
        code, out = s.user_add(f"extra{k}{sfx}")
        adds.append((code, out))
        assert up.thread.is_alive(), "the upload ended during `user add`"
        up.resume.put(True)
    up.thread.join(timeout=600)
    assert not up.thread.is_alive(), "the upload did not finish"
    assert all(code == 0 for code, _ in adds), adds
    assert up.error is None, f"the upload failed: {up.error}\n{s.tail()}"
    assert up.response.status_code in (200, 201, 204), (
        f"the upload after {USER_ADDS} `user add`: HTTP {up.response.status_code} "
        f"{up.response.text[:300]!r}\n{s.tail()}")
    assert up.sent == BIG_MIB * GatedUpload.CHUNK
    node = vo.node(f"{name}/big.bin")
    assert (node.md5, node.length) == (up.md5.hexdigest(), up.sent), (
        f"stored MD5 {node.md5} length {node.length}; sent {up.md5.hexdigest()} {up.sent}")


def test_second_serve_on_same_data_refuses(writer_server, tmp_path):
    from conftest import free_port
    s = writer_server
    port = free_port()
    data, config = storage_config(s.data_dir, s.config)
    code, out, err = expect_start_failure(
        [str(s.binary), "--config", str(config), "serve", "--bind", f"127.0.0.1:{port}",
         "--data-dir", data], s.config.parent,
        f"http://127.0.0.1:{port}/vospace/availability")
    assert code != 0 and "another vostok serve" in err, (
        f"exit {code}:\nstderr: {err[-2000:]}\nstdout: {out[-1000:]}")
    # The first server is unharmed.
    assert requests.get(s.base_url + "/vospace/availability", timeout=TIMEOUT).status_code == 200


def test_user_add_on_missing_data_dir_fails(tmp_path):
    missing = tmp_path / "no-such-data"
    p = subprocess.run([str(vostok_binary()), "user", "add", f"ghost{suffix()}", "--data-dir",
                        str(missing)], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert p.returncode != 0, p.stdout + p.stderr
    assert not missing.exists(), f"{missing} was created"


# ---------------------------------------------------------------------------------------
# 10. Capability URLs in the access log
# ---------------------------------------------------------------------------------------


def test_capability_urls_not_logged(server, people):
    A, _, _ = people("log")
    a = A.vo()
    data = os.urandom(2048)
    r, put = a.push_redirect(f"{A.name}/logged.bin", data)
    assert r.status_code == 303 and put.status_code in (200, 201, 204), (r.status_code, put)
    push_id = r.headers["Location"].rsplit("/", 1)[1]
    r, got = a.pull_redirect(f"{A.name}/logged.bin")
    assert r.status_code == 303 and got.status_code == 200 and got.content == data
    pull_id = r.headers["Location"].rsplit("/", 1)[1]
    assert len(push_id) > 8 and len(pull_id) > 8, (push_id, pull_id)
    deadline = time.monotonic() + 15
    while True:
        log = server.log_path.read_text(errors="replace")
        logged = re.findall(r"/vospace/data/([A-Za-z0-9_.~%-]*)", log)
        # Every logged id that starts like one of ours.
        seen = {i: [t for t in logged if t[:4] == i[:4]] for i in (push_id, pull_id)}
        if all(seen.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert all(seen.values()), f"the data endpoint requests are not in the access log: {seen}"
    leaks = {i: found for i, ts in seen.items()
             if (found := [t for t in ts if len(os.path.commonprefix([t, i])) > 4])}
    assert not leaks, (
        f"capability ids logged beyond their first 4 characters: {leaks}\n"
        + "\n".join(line for line in log.splitlines()
                    if push_id in line or pull_id in line)[:2000])
